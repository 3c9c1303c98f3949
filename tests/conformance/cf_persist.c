/*
 * tests/conformance/cf_persist.c -- reopen, options, open failures and the
 * store's own rules.
 *
 * Reopen tests run for persistent engines (KVD_CAP_PERSISTENT, or the
 * suite's --persistent flag for engines persistent by configuration):
 * everything acknowledged before a clean close is there after open,
 * expiry included, and deletes stay deleted. Option tests feed the
 * engine's own option table through the real parser. Store tests check
 * what kvd_store adds over any engine: empty keys and size limits refused
 * before the engine sees them, and SET's NX/XX/KEEPTTL flags.
 */
#include "conformance.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/options.h"

#define CF_BULK_KEYS 1000

/* --- close and reopen ----------------------------------------------------- */

static void
cf_assert_same_stats(struct cf_fx *fx, const struct kvd_engine_stats *want)
{
    struct kvd_engine_stats st;

    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, want->keys);
    assert_int_equal(st.key_bytes, want->key_bytes);
    assert_int_equal(st.value_bytes, want->value_bytes);
}

void
test_reopen_keeps_everything(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_op ops[] = {
        {.type = KVD_OP_PUT,
         .key = "batch-1",
         .klen = 7,
         .val = "b1",
         .vlen = 2},
        {.type = KVD_OP_DEL, .key = "batch-gone", .klen = 10},
        {.type = KVD_OP_PUT,
         .key = "batch-2",
         .klen = 7,
         .val = "b2",
         .vlen = 2},
    };
    struct kvd_err err = {0};
    struct kvd_engine_stats before;
    uint64_t n;
    char k[32];
    char v[32];

    CF_REQUIRE(fx->suite->persistent, "engine is not persistent");
    assert_int_equal(cf_puts(fx, "plain", "value"), 0);
    assert_int_equal(cf_put(fx, "b\0in", 4, "\0\xff", 2, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_put(fx, "empty", 5, "", 0, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_puts(fx, "ow", "first"), 0);
    assert_int_equal(cf_puts(fx, "ow", "second"), 0);
    assert_int_equal(cf_puts(fx, "gone", "soon"), 0);
    assert_int_equal(cf_del(fx, "gone", 4), 0);
    if (cf_has_batch(fx)) {
        assert_int_equal(cf_puts(fx, "batch-gone", "x"), 0);
        assert_int_equal(cf_batch(fx, ops, 3, &err), 0);
    }
    for (int i = 0; i < CF_BULK_KEYS; i++) {
        int kl = snprintf(k, sizeof(k), "bulk:%d", i);
        int vl = snprintf(v, sizeof(v), "value-%d", i * 31);

        assert_int_equal(cf_put(fx, k, (size_t)kl, v, (size_t)vl, 0), 0);
    }
    assert_int_equal(cf_stats(fx, &before), 0);

    cf_reopen(fx);

    assert_int_equal(cf_checks(fx, "plain", "value"), 0);
    assert_int_equal(cf_check(fx, "b\0in", 4, "\0\xff", 2, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_check(fx, "empty", 5, "", 0, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_checks(fx, "ow", "second"), 0);
    assert_int_equal(cf_checks(fx, "gone", "soon"), KVD_ENOTFOUND);
    if (cf_has_batch(fx)) {
        assert_int_equal(cf_checks(fx, "batch-1", "b1"), 0);
        assert_int_equal(cf_checks(fx, "batch-2", "b2"), 0);
        assert_int_equal(cf_checks(fx, "batch-gone", "x"), KVD_ENOTFOUND);
    }
    for (int i = 0; i < CF_BULK_KEYS; i++) {
        int kl = snprintf(k, sizeof(k), "bulk:%d", i);
        int vl = snprintf(v, sizeof(v), "value-%d", i * 31);

        assert_int_equal(cf_check(fx, k, (size_t)kl, v, (size_t)vl, 0), 0);
    }
    cf_assert_same_stats(fx, &before);

    /* writes after a reopen survive the next one too */
    assert_int_equal(cf_puts(fx, "after", "1"), 0);
    assert_int_equal(cf_del(fx, "bulk:0", 6), 0);
    assert_int_equal(cf_puts(fx, "ow", "third"), 0);
    cf_reopen(fx);
    assert_int_equal(cf_checks(fx, "after", "1"), 0);
    assert_int_equal(cf_checks(fx, "bulk:0", ""), KVD_ENOTFOUND);
    assert_int_equal(cf_checks(fx, "ow", "third"), 0);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, before.keys);
}

void
test_reopen_keeps_expiry(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);
    struct kvd_engine_stats st;
    uint64_t n;

    CF_REQUIRE(fx->suite->persistent, "engine is not persistent");
    assert_int_equal(cf_put(fx, "ttl-long", 8, "L", 1, t + 60000), 0);
    assert_int_equal(cf_put(fx, "ttl-short", 9, "S", 1, t + 1000), 0);
    assert_int_equal(cf_puts(fx, "plain", "P"), 0);
    cf_advance(fx, 2000); /* ttl-short expires before the close */

    cf_reopen(fx);
    assert_int_equal(cf_check(fx, "ttl-long", 8, "L", 1, t + 60000), 0);
    assert_int_equal(cf_checks(fx, "ttl-short", "S"), KVD_ENOTFOUND);
    assert_int_equal(cf_check(fx, "plain", 5, "P", 1, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 2);

    /* the persisted deadline still applies after the reopen */
    cf_set_clock(fx, t + 60000);
    assert_int_equal(cf_checks(fx, "ttl-long", "L"), KVD_ENOTFOUND);
    cf_reopen(fx);
    assert_int_equal(cf_checks(fx, "ttl-long", "L"), KVD_ENOTFOUND);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 1);
}

/* --- engine options ------------------------------------------------------- */

/* Is key set by the suite's own arguments? */
static bool
cf_arg_sets(const struct cf_fx *fx, const char *key)
{
    size_t kl = strlen(key);

    for (int i = 0; i < fx->suite->nargs; i++) {
        if (strncmp(fx->suite->args[i], key, kl) == 0 &&
            fx->suite->args[i][kl] == '=') {
            return true;
        }
    }
    return false;
}

void
test_options_unknown_key_is_refused(void **state)
{
    struct cf_fx *fx = *state;
    const char *extra[] = {"no_such_option=1"};
    struct kvd_err err = {0};
    char where[64];
    void *opts = NULL;

    assert_int_equal(cf_parse_options(fx, extra, 1, &opts, &err), KVD_ECONFIG);
    assert_null(opts);
    assert_int_equal(err.code, KVD_ECONFIG);
    print_message("      refused: %s\n", err.msg);
    /* file:line of the offending line, then the key */
    snprintf(where, sizeof(where), "<conformance args>:%d",
             fx->suite->nargs + 2);
    assert_non_null(strstr(err.msg, where));
    assert_non_null(strstr(err.msg, "no_such_option"));
}

void
test_options_bad_value_is_refused(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_option *opt = NULL;
    struct kvd_err err = {0};
    char arg[128];
    const char *extra[1] = {arg};
    char where[64];
    void *opts = NULL;

    for (const struct kvd_option *o = fx->vt->options;
         o != NULL && o->name != NULL; o++) {
        if ((o->type & KVD_OPT_TYPE_MASK) != KVD_OPT_STRING &&
            !cf_arg_sets(fx, o->name)) {
            opt = o;
            break;
        }
    }
    CF_REQUIRE(opt != NULL, "engine has no typed option to get wrong");
    snprintf(arg, sizeof(arg), "%s=not-a-value", opt->name);
    assert_int_equal(cf_parse_options(fx, extra, 1, &opts, &err), KVD_ECONFIG);
    assert_null(opts);
    print_message("      refused: %s\n", err.msg);
    snprintf(where, sizeof(where), "<conformance args>:%d",
             fx->suite->nargs + 2);
    assert_non_null(strstr(err.msg, where));
    assert_non_null(strstr(err.msg, opt->name));
    assert_non_null(strstr(err.msg, "not-a-value"));
    assert_non_null(strstr(err.msg, "expected"));
    if (opt->type == KVD_OPT_ENUM) {
        /* an enum's message lists what is allowed */
        assert_non_null(strstr(err.msg, opt->choices[0]));
    }
}

void
test_options_defaults_parse(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_engine_vtable *vt = fx->vt;
    struct kvd_err err = {0};
    void *opts = calloc(1, vt->options_size > 0 ? vt->options_size : 1);

    assert_non_null(opts);
    /* no section at all: every default must be valid for its own type */
    assert_int_equal(kvd_options_parse(vt->options, NULL, NULL, opts, &err), 0);
    cf_free_options(vt, opts);
    /* the table drives docs/config.md and --list-options: complete rows */
    for (const struct kvd_option *o = vt->options; o != NULL && o->name != NULL;
         o++) {
        int type = o->type & KVD_OPT_TYPE_MASK;
        assert_true(type >= KVD_OPT_BOOL && type <= KVD_OPT_OCTAL);
        assert_non_null(o->help);
        assert_true(o->help[0] != '\0');
        assert_true(o->offset < vt->options_size);
        assert_true(o->min <= o->max);
        if (o->type == KVD_OPT_ENUM) {
            assert_non_null(o->choices);
            assert_non_null(o->choices[0]);
        }
    }
}

void
test_open_bad_dir_reports_engine_message(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_engine_vtable *vt = fx->vt;
    struct kvd_err err = {0};
    struct kvd_err serr = {0};
    kvd_engine *eng = NULL;
    kvd_store *st = NULL;
    char bad[CF_PATH_BYTES + 16];
    int fd;
    int rc;

    CF_REQUIRE((vt->caps & KVD_CAP_PERSISTENT) != 0 &&
                   (vt->caps & KVD_CAP_REMOTE) == 0,
               "engine keeps no files in its directory");
    /* a data "directory" that is a regular file */
    snprintf(bad, sizeof(bad), "%s/notadir", fx->root);
    fd = open(bad, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);

    rc = vt->open(&fx->clock.host, fx->opts, bad, &eng, &err);
    print_message("      engine refused: %s (%d)\n", err.msg, rc);
    assert_true(rc < 0);
    assert_int_equal(err.code, rc);
    assert_true(err.msg[0] != '\0');
    assert_non_null(strstr(err.msg, "notadir"));

    /* the store passes the engine's own message on */
    rc = kvd_store_open(vt, fx->opts, bad, &fx->clock.host, &fx->limits, &st,
                        &serr);
    print_message("      store refused: %s (%d)\n", serr.msg, rc);
    assert_true(rc < 0);
    assert_null(st);
    assert_non_null(strstr(serr.msg, "notadir"));
}

void
test_open_bad_option_reports_engine_message(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_engine_vtable *vt = fx->vt;
    const char *bad = fx->suite->open_fails;
    const char *extra[1] = {bad};
    struct kvd_err err = {0};
    struct kvd_err serr = {0};
    kvd_engine *eng = NULL;
    kvd_store *st = NULL;
    char key[64];
    void *opts = NULL;
    int rc;

    CF_REQUIRE(bad != NULL, "no --open-fails=KEY=VALUE given");
    snprintf(key, sizeof(key), "%.*s", (int)strcspn(bad, "="), bad);
    /* the table's type and range checks let it through ... */
    rc = cf_parse_options(fx, extra, 1, &opts, &err);
    if (rc != 0) {
        print_error("--open-fails=%s does not parse: %s\n", bad, err.msg);
    }
    assert_int_equal(rc, 0);

    /* ... the engine's open refuses it, saying which key ... */
    rc = vt->open(&fx->clock.host, opts, fx->dir, &eng, &err);
    print_message("      engine refused: %s (%d)\n", err.msg, rc);
    assert_true(rc < 0);
    assert_null(eng);
    assert_int_equal(err.code, rc);
    assert_non_null(strstr(err.msg, key));

    /* ... and the store hands that message on, naming the engine */
    assert_int_equal(kvd_store_open(vt, opts, fx->dir, &fx->clock.host,
                                    &fx->limits, &st, &serr),
                     rc);
    print_message("      store refused: %s\n", serr.msg);
    assert_null(st);
    assert_int_equal(serr.code, rc);
    assert_non_null(strstr(serr.msg, key));
    assert_non_null(strstr(serr.msg, vt->name));
    cf_free_options(vt, opts);
}

/* --- the store's own rules ------------------------------------------------ */

void
test_store_refuses_empty_key(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_val v = {0};
    uint64_t n;

    assert_int_equal(kvd_store_check_key(fx->st, 0), KVD_EINVAL);
    assert_int_equal(kvd_store_set(fx->st, "", 0, "v", 1, 0, 0, NULL),
                     KVD_EINVAL);
    assert_int_equal(kvd_store_get(fx->st, "", 0, &v), KVD_EINVAL);
    assert_int_equal(kvd_store_del(fx->st, "", 0), KVD_EINVAL);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 0);
}

/* Reopen the fixture's store with small limits. */
static void
cf_store_with_limits(struct cf_fx *fx, uint64_t kmax, uint64_t vmax)
{
    struct kvd_err err = {0};

    assert_int_equal(cf_close(fx, &err), 0);
    fx->limits.max_key_bytes = kmax;
    fx->limits.max_value_bytes = vmax;
    assert_int_equal(cf_open(fx, &err), 0);
}

void
test_store_refuses_oversized_key_and_value(void **state)
{
    struct cf_fx *fx = *state;
    char key[17];
    char val[65];
    uint64_t n;

    memset(key, 'k', sizeof(key));
    memset(val, 'v', sizeof(val));
    cf_store_with_limits(fx, 16, 64);

    assert_int_equal(kvd_store_check_key(fx->st, 16), 0);
    assert_int_equal(kvd_store_check_key(fx->st, 17), KVD_ETOOBIG);
    assert_int_equal(kvd_store_check_value(fx->st, 64), 0);
    assert_int_equal(kvd_store_check_value(fx->st, 65), KVD_ETOOBIG);

    /* at the limit is fine, one byte over is refused */
    assert_int_equal(kvd_store_set(fx->st, key, 16, "v", 1, 0, 0, NULL), 0);
    assert_int_equal(kvd_store_set(fx->st, key, 17, "v", 1, 0, 0, NULL),
                     KVD_ETOOBIG);
    assert_int_equal(kvd_store_set(fx->st, "big", 3, val, 64, 0, 0, NULL), 0);
    assert_int_equal(kvd_store_set(fx->st, "big", 3, val, 65, 0, 0, NULL),
                     KVD_ETOOBIG);
    /* a refused overwrite leaves the old value */
    assert_int_equal(cf_check(fx, "big", 3, val, 64, -1), 0);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 2);
}

void
test_store_batch_over_limit_changes_nothing(void **state)
{
    struct cf_fx *fx = *state;
    char val[65];
    struct kvd_op ops[] = {
        {.type = KVD_OP_PUT, .key = "a", .klen = 1, .val = "1", .vlen = 1},
        {.type = KVD_OP_DEL, .key = "pre", .klen = 3},
        {.type = KVD_OP_PUT, .key = "b", .klen = 1, .val = val, .vlen = 65},
    };
    struct kvd_err err = {0};
    uint64_t n;

    CF_REQUIRE(cf_has_batch(fx), "engine has no atomic batch");
    memset(val, 'v', sizeof(val));
    cf_store_with_limits(fx, 16, 64);
    assert_int_equal(cf_puts(fx, "pre", "kept"), 0);

    assert_int_equal(cf_batch(fx, ops, 3, &err), KVD_ETOOBIG);
    assert_int_equal(err.code, KVD_ETOOBIG);
    print_message("      batch refused: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "65"));
    assert_non_null(strstr(err.msg, "64"));
    assert_int_equal(cf_checks(fx, "pre", "kept"), 0);
    assert_int_equal(cf_checks(fx, "a", "1"), KVD_ENOTFOUND);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 1);

    /* the same batch within the limit applies */
    ops[2].vlen = 64;
    assert_int_equal(cf_batch(fx, ops, 3, &err), 0);
    assert_int_equal(cf_checks(fx, "pre", "kept"), KVD_ENOTFOUND);
    assert_int_equal(cf_checks(fx, "a", "1"), 0);
    assert_int_equal(cf_check(fx, "b", 1, val, 64, -1), 0);
}

void
test_store_set_nx_xx(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);
    int created = -1;

    assert_int_equal(
        kvd_store_set(fx->st, "k", 1, "v1", 2, 0, KVD_SET_XX, &created),
        KVD_ENOTFOUND);
    assert_int_equal(cf_checks(fx, "k", "v1"), KVD_ENOTFOUND);
    assert_int_equal(
        kvd_store_set(fx->st, "k", 1, "v1", 2, 0, KVD_SET_NX, &created), 0);
    assert_int_equal(created, 1);
    assert_int_equal(
        kvd_store_set(fx->st, "k", 1, "v2", 2, 0, KVD_SET_NX, &created),
        KVD_EEXIST);
    assert_int_equal(cf_checks(fx, "k", "v1"), 0);
    assert_int_equal(
        kvd_store_set(fx->st, "k", 1, "v3", 2, t + 5000, KVD_SET_XX, &created),
        0);
    assert_int_equal(created, 0);
    assert_int_equal(cf_check(fx, "k", 1, "v3", 2, t + 5000), 0);
    /* KEEPTTL keeps the deadline the key had */
    assert_int_equal(
        kvd_store_set(fx->st, "k", 1, "v4", 2, 0, KVD_SET_KEEPTTL, &created),
        0);
    assert_int_equal(cf_check(fx, "k", 1, "v4", 2, t + 5000), 0);
    /* an expired key counts as absent for NX */
    cf_advance(fx, 5000);
    assert_int_equal(
        kvd_store_set(fx->st, "k", 1, "v5", 2, 0, KVD_SET_NX, &created), 0);
    assert_int_equal(created, 1);
    assert_int_equal(cf_check(fx, "k", 1, "v5", 2, KVD_NO_EXPIRY), 0);
}

void
test_store_metrics_count_commands(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_val v = {0};

    assert_int_equal(cf_puts(fx, "m", "1"), 0);
    assert_int_equal(cf_puts(fx, "n", "2"), 0);
    assert_int_equal(kvd_store_get(fx->st, "m", 1, &v), 0);
    kvd_val_release(&v);
    assert_int_equal(kvd_store_get(fx->st, "x", 1, &v), KVD_ENOTFOUND);
    assert_int_equal(kvd_store_get(fx->st, "y", 1, &v), KVD_ENOTFOUND);
    assert_int_equal(cf_del(fx, "n", 1), 0);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_CMD_SET), 2);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_CMD_GET), 3);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_HITS), 1);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_MISSES), 2);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_CMD_DEL), 1);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_ERRORS), 0);
}

void
test_store_clear_removes_everything(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_err err = {0};
    struct kvd_engine_stats st;
    uint64_t n;
    char k[32];

    for (int i = 0; i < 500; i++) {
        int kl = snprintf(k, sizeof(k), "clr:%d", i);

        assert_int_equal(cf_put(fx, k, (size_t)kl, "v", 1, 0), 0);
    }
    assert_int_equal(kvd_store_clear(fx->st, &err), 0);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.value_bytes, 0);
    assert_int_equal(cf_checks(fx, "clr:7", "v"), KVD_ENOTFOUND);
    /* and the store works on afterwards */
    assert_int_equal(cf_puts(fx, "clr:7", "again"), 0);
    assert_int_equal(cf_checks(fx, "clr:7", "again"), 0);
}

/* --- compaction ---------------------------------------------------------- */

/* Model of test_compact_keeps_data: generation per key, -1 = deleted. */
#define CF_COMPACT_KEYS 3000

static void
cf_compact_check(struct cf_fx *fx, const int *gen)
{
    uint64_t n;
    uint64_t live = 0;
    char k[32];
    char v[64];

    for (int i = 0; i < CF_COMPACT_KEYS; i++) {
        int kl = snprintf(k, sizeof(k), "cmp:%d", i);
        int vl = snprintf(v, sizeof(v), "g%d-%d-%.*s", gen[i], i, i % 40,
                          "0123456789012345678901234567890123456789");

        if (gen[i] < 0) {
            assert_int_equal(cf_check(fx, k, (size_t)kl, "", 0, -1),
                             KVD_ENOTFOUND);
            continue;
        }
        live++;
        assert_int_equal(cf_check(fx, k, (size_t)kl, v, (size_t)vl, -1), 0);
    }
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, live);
}

void
test_compact_keeps_data(void **state)
{
    struct cf_fx *fx = *state;
    static int gen[CF_COMPACT_KEYS];
    struct kvd_err err = {0};
    char k[32];
    char v[64];
    int rc;

    /* three rounds of overwrites and deletes: most bytes are dead */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < CF_COMPACT_KEYS; i++) {
            int kl = snprintf(k, sizeof(k), "cmp:%d", i);
            int vl;

            if ((i + round) % 4 == 0) {
                rc = cf_del(fx, k, (size_t)kl);
                assert_true(rc == 0 || rc == KVD_ENOTFOUND);
                gen[i] = -1;
                continue;
            }
            vl = snprintf(v, sizeof(v), "g%d-%d-%.*s", round, i, i % 40,
                          "0123456789012345678901234567890123456789");
            assert_int_equal(cf_put(fx, k, (size_t)kl, v, (size_t)vl, 0), 0);
            gen[i] = round;
        }
    }
    rc = cf_maintain(fx, KVD_MAINT_COMPACT, &err);
    CF_REQUIRE(rc != KVD_ENOTSUP, "engine has no KVD_MAINT_COMPACT");
    if (rc != 0) {
        print_error("maintain(COMPACT): %s (%d)\n", err.msg, rc);
    }
    assert_int_equal(rc, 0);
    cf_compact_check(fx, gen);

    /* writes after a compaction, a second one, and (persistent) a reopen:
     * a deleted key must not come back from an older file */
    for (int i = 0; i < CF_COMPACT_KEYS; i += 7) {
        int kl = snprintf(k, sizeof(k), "cmp:%d", i);

        rc = cf_del(fx, k, (size_t)kl);
        assert_true(rc == 0 || rc == KVD_ENOTFOUND);
        gen[i] = -1;
    }
    assert_int_equal(cf_maintain(fx, KVD_MAINT_COMPACT, &err), 0);
    cf_compact_check(fx, gen);
    if (fx->suite->persistent) {
        cf_reopen(fx);
        cf_compact_check(fx, gen);
    }
}
