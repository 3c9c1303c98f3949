/*
 * tests/conformance/cf_multi.c -- multi(): independent operations in one
 * call (see struct kvd_engine_vtable.multi and kvd_store_multi).
 *
 * Each operation must end with what get/put/del would have returned for
 * it alone; operations on one key take effect in array order and a GET
 * sees the earlier writes of its key in the same call. The raw tests run
 * the engine's own multi (skipped when it has none); the store tests run
 * kvd_store_multi, which every engine supports (it loops when the engine
 * has no multi), so they check the core's TTL rules, validation and
 * metrics on top.
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run ops through the fixture's mode. */
static int
cf_multi(struct cf_fx *fx, struct kvd_mop *ops, size_t n)
{
    if (fx->mode == CF_STORE) {
        return kvd_store_multi(fx->st, ops, n);
    }
    CF_REQUIRE(KVD_ENGINE_HAS(fx->vt, multi), "the engine has no multi");
    return fx->vt->multi(fx->eng, ops, n);
}

static struct kvd_mop
mop(int type, const char *key, const char *val)
{
    struct kvd_mop m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.key = key;
    m.klen = strlen(key);
    if (val != NULL) {
        m.val = val;
        m.vlen = strlen(val);
    }
    m.status = 12345; /* must be overwritten */
    return m;
}

static void
release_all(struct kvd_mop *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].status == 0 && ops[i].type == KVD_MOP_GET) {
            kvd_val_release(&ops[i].out);
        }
    }
}

static void
assert_got(const struct kvd_mop *op, const char *val)
{
    assert_int_equal(op->status, 0);
    assert_int_equal(op->out.len, strlen(val));
    assert_memory_equal(op->out.data, val, strlen(val));
}

void
test_multi_results_match_single_calls(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_mop ops[8];

    assert_int_equal(cf_puts(fx, "have", "old"), 0);
    assert_int_equal(cf_puts(fx, "doomed", "x"), 0);
    ops[0] = mop(KVD_MOP_GET, "have", NULL);
    ops[1] = mop(KVD_MOP_GET, "never", NULL);
    ops[2] = mop(KVD_MOP_PUT, "fresh", "new value");
    ops[3] = mop(KVD_MOP_PUT, "have", "replaced");
    ops[4] = mop(KVD_MOP_DEL, "doomed", NULL);
    ops[5] = mop(KVD_MOP_DEL, "never", NULL);
    ops[6] = mop(KVD_MOP_PUT, "timed", "t");
    ops[6].expire_ms = cf_now(fx) + 60000;
    ops[7] = mop(KVD_MOP_GET, "fresh", NULL);
    assert_int_equal(cf_multi(fx, ops, 8), 0);
    assert_got(&ops[0], "old");
    assert_int_equal(ops[1].status, KVD_ENOTFOUND);
    assert_int_equal(ops[2].status, 0);
    assert_int_equal(ops[3].status, 0);
    assert_int_equal(ops[4].status, 0);
    assert_int_equal(ops[5].status, KVD_ENOTFOUND);
    assert_int_equal(ops[6].status, 0);
    assert_got(&ops[7], "new value");
    release_all(ops, 8);
    /* and the single calls agree afterwards */
    assert_int_equal(cf_checks(fx, "fresh", "new value"), 0);
    assert_int_equal(cf_checks(fx, "have", "replaced"), 0);
    assert_int_equal(cf_checks(fx, "doomed", "x"), KVD_ENOTFOUND);
    assert_int_equal(cf_check(fx, "timed", 5, "t", 1, cf_now(fx) + 60000), 0);
}

void
test_multi_same_key_in_array_order(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_mop ops[9];

    ops[0] = mop(KVD_MOP_GET, "k", NULL);
    ops[1] = mop(KVD_MOP_PUT, "k", "1");
    ops[2] = mop(KVD_MOP_GET, "k", NULL);
    ops[3] = mop(KVD_MOP_PUT, "k", "22");
    ops[4] = mop(KVD_MOP_GET, "k", NULL);
    ops[5] = mop(KVD_MOP_DEL, "k", NULL);
    ops[6] = mop(KVD_MOP_GET, "k", NULL);
    ops[7] = mop(KVD_MOP_DEL, "k", NULL);
    ops[8] = mop(KVD_MOP_PUT, "k", "333");
    assert_int_equal(cf_multi(fx, ops, 9), 0);
    assert_int_equal(ops[0].status, KVD_ENOTFOUND);
    assert_int_equal(ops[1].status, 0);
    assert_got(&ops[2], "1");
    assert_int_equal(ops[3].status, 0);
    assert_got(&ops[4], "22");
    assert_int_equal(ops[5].status, 0);
    assert_int_equal(ops[6].status, KVD_ENOTFOUND);
    assert_int_equal(ops[7].status, KVD_ENOTFOUND);
    assert_int_equal(ops[8].status, 0);
    release_all(ops, 9);
    assert_int_equal(cf_checks(fx, "k", "333"), 0);
}

/* A seeded random sequence over a few keys (binary, some with NUL bytes,
 * empty values), checked op by op against a per-key model: keys do not
 * interact, so array order per key is the whole contract. */
#define CF_MULTI_KEYS   40
#define CF_MULTI_OPS    600
#define CF_MULTI_ROUNDS 3

void
test_multi_random_against_model(void **state)
{
    struct cf_fx *fx = *state;
    static char keys[CF_MULTI_KEYS][8];
    static char vals[CF_MULTI_ROUNDS * CF_MULTI_OPS][12];
    int model[CF_MULTI_KEYS]; /* index into vals, -1 absent */
    int expect[CF_MULTI_OPS]; /* the value index expected, -1 absent */
    struct kvd_mop *ops;
    unsigned seed = 20261121;

    if (fx->mode == CF_RAW) { /* before anything is allocated */
        CF_REQUIRE(KVD_ENGINE_HAS(fx->vt, multi), "the engine has no multi");
    }
    ops = calloc(CF_MULTI_OPS, sizeof(*ops));
    assert_non_null(ops);
    for (int k = 0; k < CF_MULTI_KEYS; k++) {
        keys[k][0] = 'm';
        keys[k][1] = (char)k;
        keys[k][2] = '\0'; /* NUL inside the key */
        keys[k][3] = (char)(0xf0 + k % 16);
        model[k] = -1;
    }
    for (int round = 0; round < CF_MULTI_ROUNDS; round++) {
        for (int i = 0; i < CF_MULTI_OPS; i++) {
            int k, r, v = round * CF_MULTI_OPS + i;
            seed = seed * 1103515245u + 12345u;
            k = (int)((seed >> 8) % CF_MULTI_KEYS);
            r = (int)((seed >> 20) % 10);
            memset(&ops[i], 0, sizeof(ops[i]));
            ops[i].key = keys[k];
            ops[i].klen = 4;
            ops[i].status = 12345;
            expect[i] = -2;
            if (r < 4) {
                ops[i].type = KVD_MOP_GET;
                expect[i] = model[k];
            } else if (r < 8) {
                int n = snprintf(vals[v], sizeof(vals[v]), "%d.%d", round, i);
                ops[i].type = KVD_MOP_PUT;
                ops[i].val = vals[v];
                ops[i].vlen = (r == 7) ? 0 : (size_t)n; /* some empty */
                if (r == 7) {
                    vals[v][0] = '\0';
                }
                model[k] = v;
            } else {
                ops[i].type = KVD_MOP_DEL;
                expect[i] = model[k]; /* existed before? */
                model[k] = -1;
            }
        }
        assert_int_equal(cf_multi(fx, ops, CF_MULTI_OPS), 0);
        for (int i = 0; i < CF_MULTI_OPS; i++) {
            const struct kvd_mop *op = &ops[i];
            if (op->type == KVD_MOP_PUT) {
                assert_int_equal(op->status, 0);
            } else if (op->type == KVD_MOP_DEL) {
                assert_int_equal(op->status,
                                 expect[i] >= 0 ? 0 : KVD_ENOTFOUND);
            } else if (expect[i] < 0) {
                if (op->status != KVD_ENOTFOUND) {
                    print_message("round %d op %d: GET found a deleted key\n",
                                  round, i);
                }
                assert_int_equal(op->status, KVD_ENOTFOUND);
            } else {
                size_t n = strlen(vals[expect[i]]);
                assert_int_equal(op->status, 0);
                assert_int_equal(op->out.len, n);
                assert_memory_equal(op->out.data, vals[expect[i]], n);
            }
        }
        release_all(ops, CF_MULTI_OPS);
        /* The state after the call is the model's. */
        for (int k = 0; k < CF_MULTI_KEYS; k++) {
            if (model[k] >= 0) {
                const char *v = vals[model[k]];
                assert_int_equal(cf_check(fx, keys[k], 4, v, strlen(v), -1), 0);
            } else {
                assert_int_equal(cf_check(fx, keys[k], 4, "", 0, -1),
                                 KVD_ENOTFOUND);
            }
        }
    }
    free(ops);
}

void
test_multi_expiry_rules(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_mop ops[4];
    int64_t now = cf_now(fx);

    assert_int_equal(cf_put(fx, "short", 5, "s", 1, now + 1000), 0);
    assert_int_equal(cf_puts(fx, "gone", "soon"), 0);
    cf_advance(fx, 2000);
    ops[0] = mop(KVD_MOP_GET, "short", NULL); /* expired */
    ops[1] = mop(KVD_MOP_DEL, "short", NULL); /* expired: nothing to delete */
    ops[2] = mop(KVD_MOP_PUT, "gone", "again");
    ops[2].expire_ms = cf_now(fx) - 1; /* in the past: the key goes */
    ops[3] = mop(KVD_MOP_GET, "gone", NULL);
    assert_int_equal(cf_multi(fx, ops, 4), 0);
    assert_int_equal(ops[0].status, KVD_ENOTFOUND);
    assert_int_equal(ops[1].status, KVD_ENOTFOUND);
    assert_int_equal(ops[2].status, 0);
    assert_int_equal(ops[3].status, KVD_ENOTFOUND);
    release_all(ops, 4);
    assert_int_equal(cf_checks(fx, "gone", "again"), KVD_ENOTFOUND);
}

/* Store only: an invalid operation gets its own error and the others
 * still run; metrics count every operation as the single calls would. */
void
test_store_multi_validates_and_counts(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_mop ops[5];
    uint64_t gets = kvd_store_metric_get(fx->st, KVD_M_CMD_GET);
    uint64_t sets = kvd_store_metric_get(fx->st, KVD_M_CMD_SET);
    uint64_t dels = kvd_store_metric_get(fx->st, KVD_M_CMD_DEL);
    uint64_t hits = kvd_store_metric_get(fx->st, KVD_M_HITS);
    uint64_t misses = kvd_store_metric_get(fx->st, KVD_M_MISSES);

    ops[0] = mop(KVD_MOP_PUT, "a", "1");
    ops[1] = mop(KVD_MOP_PUT, "", "empty key");
    ops[2] = mop(KVD_MOP_GET, "a", NULL);
    ops[3] = mop(KVD_MOP_GET, "b", NULL);
    ops[4] = mop(KVD_MOP_DEL, "a", NULL);
    ops[1].klen = 0;
    assert_int_equal(kvd_store_multi(fx->st, ops, 5), 0);
    assert_int_equal(ops[0].status, 0);
    assert_int_equal(ops[1].status, KVD_EINVAL);
    assert_got(&ops[2], "1");
    assert_int_equal(ops[3].status, KVD_ENOTFOUND);
    assert_int_equal(ops[4].status, 0);
    release_all(ops, 5);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_CMD_GET), gets + 2);
    /* the invalid put counts as a SET, as kvd_store_set counts it */
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_CMD_SET), sets + 2);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_CMD_DEL), dels + 1);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_HITS), hits + 1);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_MISSES), misses + 1);
    assert_int_equal(cf_checks(fx, "a", "1"), KVD_ENOTFOUND);
}
