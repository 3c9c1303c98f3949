/*
 * tests/conformance/conformance.c -- kvd-conformance: the conformance
 * suite and the crash kit's driver.
 *
 * Usage: kvd-conformance ENGINE [--opt KEY=VALUE ...] [options]
 *
 * ENGINE is a plugin file (kvd_engine_NAME.so, any path) or a name found
 * in kvd's plugin directory; it falls back to $KVD_TEST_ENGINE. Each
 * --opt KEY=VALUE (or a bare KEY=VALUE) is a line of the engine's
 * [engine] section, parsed by kvd's own option parser for every test;
 * "{dir}" in a value is replaced by the test's temporary directory, so
 * e.g. `snapshot_path={dir}/snap` gives each test its own snapshot.
 *
 * Options:
 *   --persistent      run the close-and-reopen tests even when the caps do
 *                     not claim KVD_CAP_PERSISTENT (an engine persistent by
 *                     configuration that has no instance_caps)
 *   --durable         run the crash and fault tests even when the caps do
 *                     not claim KVD_CAP_DURABLE with the crash options
 *   --crash-opt K=V   an option for the crash and fault tests only; when
 *                     none is given and the engine has a `sync` option
 *                     with an "always" choice, sync=always
 *   --only=conformance|crash   one of the two groups (default: both)
 *   --filter=A,B      only the tests whose names contain A or B (the
 *                     ThreadSanitizer build runs the thread tests so)
 *   --rounds N        SIGKILL rounds of the crash loop (default 20)
 *   --seed N          seed of the crash histories (default: the time)
 *   --open-fails=K=V  a setting the parser accepts but open must refuse,
 *                     to check the engine's message reaches the caller
 *   --partition-tags=A,B  key prefixes of two different partitions, for
 *                     the batch tests of a partitioned engine
 *
 * The report: every test by name with OK, SKIPPED (and why: a capability
 * the engine does not declare) or FAILED (with the assertion and the
 * values); at the end a summary with the skip reasons. Exit status: 0
 * when nothing failed, 1 when a test failed, 2 for a usage error or an
 * engine that does not load.
 *
 * Sections: fixture (setup, teardown, options, clock), the cf_* operations
 * that dispatch to the raw vtable or to the store, shared checks, the
 * report, main with the test tables.
 */
#include "conformance.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/hostsvc.h"
#include "core/log.h"
#include "core/options.h"

/* Where option lines appear in messages ("<args>:3: [engine] ..."). */
#define CF_ARGS_FILE "<conformance args>"

static struct cf_suite cf_the_suite;

/*
 * The test's clock starts this far ahead of the real one. Expiry is then
 * decided by the test's clock alone: an engine whose server keeps its own
 * clock (Redis expires a PXAT key on its real clock) never sees a key of
 * "now + 500 ms" expire on its own while a slow, loaded run is still
 * between the put and the check, because the real clock would need a day
 * to get there. Local engines only ever see the test's clock.
 */
#define CF_CLOCK_AHEAD_MS (24 * 3600 * 1000LL)

/* --- fixture -------------------------------------------------------------- */

static int64_t
cf_clock_now_ms(const struct kvd_host *host)
{
    /* The engine is handed &clock.host, so the host is the first member
     * of its struct cf_clock_host. */
    const struct cf_clock_host *c = (const struct cf_clock_host *)host;

    return atomic_load(&c->now_ms);
}

int64_t
cf_now(const struct cf_fx *fx)
{
    return atomic_load(&fx->clock.now_ms);
}

void
cf_advance(struct cf_fx *fx, int64_t ms)
{
    atomic_fetch_add(&fx->clock.now_ms, ms);
}

void
cf_set_clock(struct cf_fx *fx, int64_t ms)
{
    atomic_store(&fx->clock.now_ms, ms);
}

/* Replace every "{dir}" in value by root; caller frees. */
static char *
cf_expand(const char *value, const char *root)
{
    static const char tag[] = "{dir}";
    size_t cap = strlen(value) + 1;
    const char *p;
    char *out;
    char *w;

    for (p = strstr(value, tag); p != NULL; p = strstr(p + 1, tag)) {
        cap += strlen(root);
    }
    out = malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    w = out;
    while ((p = strstr(value, tag)) != NULL) {
        memcpy(w, value, (size_t)(p - value));
        w += p - value;
        memcpy(w, root, strlen(root));
        w += strlen(root);
        value = p + sizeof(tag) - 1;
    }
    strcpy(w, value);
    return out;
}

static void
cf_free_items(struct kvd_conf_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
}

int
cf_parse_options(struct cf_fx *fx, const char *const *extra, size_t nextra,
                 void **out, struct kvd_err *err)
{
    const struct kvd_engine_vtable *vt = fx->vt;
    size_t n = (size_t)fx->suite->nargs + nextra;
    struct kvd_conf_item *items = calloc(n + 1, sizeof(*items));
    struct kvd_conf_section sec;
    void *opts = NULL;
    int rc = KVD_ENOMEM;

    *out = NULL;
    if (items == NULL) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *arg = i < (size_t)fx->suite->nargs
                              ? fx->suite->args[i]
                              : extra[i - (size_t)fx->suite->nargs];
        const char *eq = strchr(arg, '=');

        if (eq == NULL) {
            rc = kvd_err_set(err, KVD_EINVAL,
                             "engine option '%s' is not key=value", arg);
            goto out;
        }
        items[i].key = strndup(arg, (size_t)(eq - arg));
        items[i].value = cf_expand(eq + 1, fx->root);
        items[i].line = (int)i + 2; /* line 1 is "[engine]" */
        if (items[i].key == NULL || items[i].value == NULL) {
            goto out;
        }
    }
    sec.name = "engine";
    sec.line = 1;
    sec.n = n;
    sec.items = items;
    sec.file = CF_ARGS_FILE;

    opts = calloc(1, vt->options_size > 0 ? vt->options_size : 1);
    if (opts == NULL) {
        goto out;
    }
    rc = kvd_options_parse(vt->options, &sec, NULL, opts, err);
    if (rc != 0) {
        cf_free_options(vt, opts);
        opts = NULL;
        goto out;
    }
    *out = opts;
out:
    if (items != NULL) {
        cf_free_items(items, n);
    }
    if (rc == KVD_ENOMEM) {
        kvd_err_set(err, rc, "out of memory building engine options");
    }
    return rc;
}

void
cf_free_options(const struct kvd_engine_vtable *vt, void *opts)
{
    if (opts == NULL) {
        return;
    }
    if (vt->options != NULL) {
        kvd_options_release(vt->options, opts);
    }
    free(opts);
}

/* An engine persistent by configuration says so through instance_caps
 * once open (the memory engine with snapshot_path). */
static void
cf_note_instance_caps(struct cf_fx *fx)
{
    uint32_t caps = fx->vt->caps;
    if (fx->st != NULL) {
        caps = kvd_store_caps(fx->st);
    } else if (fx->eng != NULL && fx->vt->instance_caps != NULL) {
        caps = fx->vt->instance_caps(fx->eng);
    }
    if ((caps & KVD_CAP_PERSISTENT) != 0) {
        fx->suite->persistent = true;
    }
}

int
cf_open(struct cf_fx *fx, struct kvd_err *err)
{
    int rc;

    switch (fx->mode) {
    case CF_RAW:
        rc = fx->vt->open(&fx->clock.host, fx->opts, fx->dir, &fx->eng, err);
        break;
    case CF_STORE:
        rc = kvd_store_open(fx->vt, fx->opts, fx->dir, &fx->clock.host,
                            &fx->limits, &fx->st, err);
        break;
    default:
        return 0;
    }
    if (rc == 0) {
        cf_note_instance_caps(fx);
    }
    return rc;
}

int
cf_close(struct cf_fx *fx, struct kvd_err *err)
{
    int rc = 0;

    if (fx->eng != NULL) {
        rc = fx->vt->close(fx->eng, err);
        fx->eng = NULL;
    }
    if (fx->st != NULL) {
        rc = kvd_store_close(fx->st, err);
        fx->st = NULL;
    }
    return rc;
}

void
cf_reopen(struct cf_fx *fx)
{
    struct kvd_err err = {0};
    int rc;

    rc = cf_close(fx, &err);
    if (rc != 0) {
        print_error("close: %s (%d)\n", err.msg, rc);
    }
    assert_int_equal(rc, 0);
    rc = cf_open(fx, &err);
    if (rc != 0) {
        print_error("reopen: %s (%d)\n", err.msg, rc);
    }
    assert_int_equal(rc, 0);
}

static int
cf_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
cf_rm_tree(const char *root)
{
    if (root[0] != '\0') {
        nftw(root, cf_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static void
cf_fx_free(struct cf_fx *fx)
{
    if (fx == NULL) {
        return;
    }
    cf_free_options(fx->vt, fx->opts);
    cf_rm_tree(fx->root);
    free(fx);
}

static int
cf_setup(void **state, int mode)
{
    struct cf_suite *suite = *state;
    const char *tmp = getenv("TMPDIR");
    struct kvd_err err = {0};
    struct cf_fx *fx;
    int rc;

    fx = calloc(1, sizeof(*fx));
    if (fx == NULL) {
        return -1;
    }
    fx->suite = suite;
    fx->vt = suite->vt;
    fx->mode = mode;
    snprintf(fx->root, sizeof(fx->root), "%s/kvd-conf-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(fx->root) == NULL) {
        print_error("mkdtemp %s failed\n", fx->root);
        fx->root[0] = '\0';
        goto fail;
    }
    if (snprintf(fx->dir, sizeof(fx->dir), "%s/data", fx->root) >=
            (int)sizeof(fx->dir) ||
        mkdir(fx->dir, 0700) != 0) {
        print_error("mkdir %s failed\n", fx->dir);
        goto fail;
    }
    fx->clock.host = *kvd_hostsvc_default();
    fx->clock.host.now_ms = cf_clock_now_ms;
    atomic_store(&fx->clock.now_ms,
                 kvd_hostsvc_default()->now_ms(kvd_hostsvc_default()) +
                     CF_CLOCK_AHEAD_MS);

    rc = cf_parse_options(fx, NULL, 0, &fx->opts, &err);
    if (rc != 0) {
        print_error("engine options: %s (%d)\n", err.msg, rc);
        goto fail;
    }
    rc = cf_open(fx, &err);
    if (rc != 0) {
        print_error("open %s in %s: %s (%d)\n", fx->vt->name, fx->dir, err.msg,
                    rc);
        goto fail;
    }
    *state = fx;
    return 0;
fail:
    cf_fx_free(fx);
    return -1;
}

int
cf_setup_bare(void **state)
{
    return cf_setup(state, CF_BARE);
}

int
cf_setup_raw(void **state)
{
    return cf_setup(state, CF_RAW);
}

int
cf_setup_store(void **state)
{
    return cf_setup(state, CF_STORE);
}

/* On a partitioned engine given --partition-tags, every key of the test
 * goes to the first tag's partition. */
static int
cf_setup_grouped(void **state, int mode)
{
    struct cf_fx *fx;

    if (cf_setup(state, mode) != 0) {
        return -1;
    }
    fx = *state;
    if (cf_partitioned(fx) && fx->suite->partition_tags[0] != NULL) {
        fx->tag = fx->suite->partition_tags[0];
        fx->taglen = strlen(fx->tag);
    }
    return 0;
}

int
cf_setup_raw_grouped(void **state)
{
    return cf_setup_grouped(state, CF_RAW);
}

int
cf_setup_store_grouped(void **state)
{
    return cf_setup_grouped(state, CF_STORE);
}

int
cf_teardown(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_err err = {0};
    int rc;

    rc = cf_close(fx, &err);
    if (rc != 0) {
        print_error("close %s: %s (%d)\n", fx->vt->name, err.msg, rc);
    }
    cf_fx_free(fx);
    return rc == 0 ? 0 : -1;
}

/* --- operations in the fixture's mode ------------------------------------- */

/*
 * The key as the engine sees it: fx->tag + key in a grouped fixture (in
 * *heap, which the caller frees), else key itself. Empty keys stay empty.
 * NULL when out of memory.
 */
static const void *
cf_tag_key(const struct cf_fx *fx, const void *key, size_t *klen, void **heap)
{
    char *k;

    *heap = NULL;
    if (fx->tag == NULL || *klen == 0) {
        return key;
    }
    k = malloc(fx->taglen + *klen);
    if (k == NULL) {
        return NULL;
    }
    memcpy(k, fx->tag, fx->taglen);
    memcpy(k + fx->taglen, key, *klen);
    *klen += fx->taglen;
    *heap = k;
    return k;
}

int
cf_get(struct cf_fx *fx, const void *key, size_t klen, struct kvd_val *out)
{
    void *heap;
    int rc;

    key = cf_tag_key(fx, key, &klen, &heap);
    if (key == NULL) {
        return KVD_ENOMEM;
    }
    if (fx->mode == CF_STORE) {
        rc = kvd_store_get(fx->st, key, klen, out);
    } else {
        rc = fx->vt->get(fx->eng, key, klen, out);
    }
    free(heap);
    return rc;
}

int
cf_put(struct cf_fx *fx, const void *key, size_t klen, const void *val,
       size_t vlen, int64_t expire_ms)
{
    void *heap;
    int rc;

    key = cf_tag_key(fx, key, &klen, &heap);
    if (key == NULL) {
        return KVD_ENOMEM;
    }
    if (fx->mode == CF_STORE) {
        rc = kvd_store_set(fx->st, key, klen, val, vlen, expire_ms, 0, NULL);
    } else {
        rc = fx->vt->put(fx->eng, key, klen, val, vlen, expire_ms);
    }
    free(heap);
    return rc;
}

int
cf_del(struct cf_fx *fx, const void *key, size_t klen)
{
    void *heap;
    int rc;

    key = cf_tag_key(fx, key, &klen, &heap);
    if (key == NULL) {
        return KVD_ENOMEM;
    }
    if (fx->mode == CF_STORE) {
        rc = kvd_store_del(fx->st, key, klen);
    } else {
        rc = fx->vt->del(fx->eng, key, klen);
    }
    free(heap);
    return rc;
}

uint32_t
cf_caps(const struct cf_fx *fx)
{
    if (fx->st != NULL) {
        return kvd_store_caps(fx->st);
    }
    if (fx->eng != NULL && fx->vt->instance_caps != NULL) {
        return fx->vt->instance_caps(fx->eng);
    }
    return fx->vt->caps;
}

bool
cf_partitioned(const struct cf_fx *fx)
{
    uint32_t caps = cf_caps(fx);

    return (caps & KVD_CAP_BATCH_PARTITIONED) != 0 &&
           (caps & KVD_CAP_ATOMIC_BATCH) == 0;
}

bool
cf_has_batch(const struct cf_fx *fx)
{
    uint32_t caps = cf_caps(fx);

    if (fx->vt->batch == NULL) {
        return false;
    }
    if ((caps & KVD_CAP_ATOMIC_BATCH) != 0) {
        return true;
    }
    return cf_partitioned(fx) && fx->tag != NULL;
}

int
cf_batch(struct cf_fx *fx, const struct kvd_op *ops, size_t n,
         struct kvd_err *err)
{
    struct kvd_op *tagged = NULL;
    void **heap = NULL;
    int rc = KVD_ENOMEM;

    if (fx->tag != NULL && n > 0) {
        tagged = calloc(n, sizeof(*tagged));
        heap = calloc(n, sizeof(*heap));
        if (tagged == NULL || heap == NULL) {
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            tagged[i] = ops[i];
            tagged[i].key =
                cf_tag_key(fx, ops[i].key, &tagged[i].klen, &heap[i]);
            if (tagged[i].key == NULL) {
                goto out;
            }
        }
        ops = tagged;
    }
    if (fx->mode == CF_STORE) {
        rc = kvd_store_batch(fx->st, ops, n, err);
    } else {
        rc = fx->vt->batch(fx->eng, ops, n, err);
    }
out:
    for (size_t i = 0; heap != NULL && i < n; i++) {
        free(heap[i]);
    }
    free(heap);
    free(tagged);
    return rc;
}

int
cf_iter_open(struct cf_fx *fx, const struct kvd_iter_opts *opts, kvd_iter **out,
             struct kvd_err *err)
{
    struct kvd_iter_opts o = *opts;
    void *pheap = NULL;
    void *sheap = NULL;
    int rc = KVD_ENOMEM;

    if (fx->tag != NULL) {
        /* only the test's own (tagged) keys, resumed within them */
        size_t plen = opts->prefix != NULL ? opts->prefix_len : 0;

        pheap = malloc(fx->taglen + plen);
        if (pheap == NULL) {
            goto out;
        }
        memcpy(pheap, fx->tag, fx->taglen);
        if (plen > 0) {
            memcpy((char *)pheap + fx->taglen, opts->prefix, plen);
        }
        o.prefix = pheap;
        o.prefix_len = fx->taglen + plen;
        if (opts->start != NULL && opts->start_len > 0) {
            o.start = cf_tag_key(fx, opts->start, &o.start_len, &sheap);
            if (o.start == NULL) {
                goto out;
            }
        }
    }
    if (fx->mode == CF_STORE) {
        rc = kvd_store_iter_open(fx->st, &o, out, err);
    } else {
        rc = fx->vt->iter_open(fx->eng, &o, out, err);
    }
out:
    free(pheap);
    free(sheap);
    return rc;
}

int
cf_iter_next(struct cf_fx *fx, kvd_iter *it, struct kvd_entry *out)
{
    int rc;

    if (fx->mode == CF_STORE) {
        rc = kvd_store_iter_next(fx->st, it, out);
    } else {
        rc = fx->vt->iter_next(it, out);
    }
    if (rc == 0 && fx->tag != NULL && out->klen >= fx->taglen &&
        memcmp(out->key, fx->tag, fx->taglen) == 0) {
        out->key = (const char *)out->key + fx->taglen;
        out->klen -= fx->taglen;
    }
    return rc;
}

void
cf_iter_close(struct cf_fx *fx, kvd_iter *it)
{
    if (fx->mode == CF_STORE) {
        kvd_store_iter_close(fx->st, it);
        return;
    }
    fx->vt->iter_close(it);
}

int
cf_stats(struct cf_fx *fx, struct kvd_engine_stats *st)
{
    int rc;

    memset(st, 0, sizeof(*st));
    st->struct_size = sizeof(*st);
    if (fx->mode == CF_STORE) {
        rc = kvd_store_stats(fx->st, st, NULL, NULL);
    } else {
        rc = fx->vt->stats(fx->eng, st, NULL, NULL);
    }
    if (rc == 0 && fx->tag != NULL) {
        st->key_bytes -= st->keys * fx->taglen; /* the grouping prefix */
    }
    return rc;
}

int
cf_maintain(struct cf_fx *fx, int op, struct kvd_err *err)
{
    if (fx->mode == CF_STORE) {
        return kvd_store_maintain(fx->st, op, err);
    }
    if (fx->vt->maintain == NULL) {
        return KVD_ENOTSUP;
    }
    return fx->vt->maintain(fx->eng, op, err);
}

/* --- shared checks -------------------------------------------------------- */

int
cf_puts(struct cf_fx *fx, const char *key, const char *val)
{
    return cf_put(fx, key, strlen(key), val, strlen(val), KVD_NO_EXPIRY);
}

int
cf_check(struct cf_fx *fx, const void *key, size_t klen, const void *val,
         size_t vlen, int64_t exp_expire)
{
    struct kvd_val v = {0};
    int rc;

    rc = cf_get(fx, key, klen, &v);
    if (rc == KVD_ENOTFOUND) {
        return rc; /* often expected: the caller's assertion tells */
    }
    if (rc != 0) {
        print_error("get '%.*s' (%zu bytes): status %d, expected 0\n",
                    (int)(klen < 64 ? klen : 64), (const char *)key, klen, rc);
        return rc;
    }
    if (v.len != vlen || (vlen > 0 && memcmp(v.data, val, vlen) != 0)) {
        print_error("get '%.*s': %zu bytes '%.*s', expected %zu bytes "
                    "'%.*s'\n",
                    (int)(klen < 64 ? klen : 64), (const char *)key, v.len,
                    (int)(v.len < 64 ? v.len : 64), (const char *)v.data, vlen,
                    (int)(vlen < 64 ? vlen : 64), (const char *)val);
        rc = -1;
    } else if (exp_expire >= 0 && v.expire_ms != exp_expire) {
        print_error("get '%.*s': expire_ms %lld, expected %lld\n",
                    (int)(klen < 64 ? klen : 64), (const char *)key,
                    (long long)v.expire_ms, (long long)exp_expire);
        rc = -1;
    }
    kvd_val_release(&v);
    return rc;
}

int
cf_checks(struct cf_fx *fx, const char *key, const char *val)
{
    return cf_check(fx, key, strlen(key), val, strlen(val), -1);
}

int
cf_count_keys(struct cf_fx *fx, uint64_t *nkeys)
{
    struct kvd_iter_opts o = {.flags = KVD_ITER_KEYS_ONLY};
    struct kvd_err err = {0};
    struct kvd_entry e;
    kvd_iter *it = NULL;
    int rc;

    *nkeys = 0;
    rc = cf_iter_open(fx, &o, &it, &err);
    if (rc != 0) {
        print_error("iter_open: %s (%d)\n", err.msg, rc);
        return rc;
    }
    while ((rc = cf_iter_next(fx, it, &e)) == 0) {
        (*nkeys)++;
    }
    cf_iter_close(fx, it);
    return rc == KVD_ENOTFOUND ? 0 : rc;
}

/* --- the report ----------------------------------------------------------- */

#define CF_MAX_SKIP_REASONS 32

/* Skip reasons and how many tests each skipped (main thread only). */
static struct {
    char why[160];
    int count;
} cf_skips[CF_MAX_SKIP_REASONS];
static int cf_nskips;

void
cf_note_skip(const char *why)
{
    print_message("      skipped: %s\n", why);
    for (int i = 0; i < cf_nskips; i++) {
        if (strcmp(cf_skips[i].why, why) == 0) {
            cf_skips[i].count++;
            return;
        }
    }
    if (cf_nskips < CF_MAX_SKIP_REASONS) {
        snprintf(cf_skips[cf_nskips].why, sizeof(cf_skips[0].why), "%s", why);
        cf_skips[cf_nskips++].count = 1;
    }
}

static void
cf_report(const struct cf_suite *suite, const char *name, int failed_conf,
          int failed_crash, bool ran_conf, bool ran_crash)
{
    printf("\nkvd-conformance: engine %s (%s), caps:", name, suite->path);
    static const struct {
        uint32_t cap;
        const char *name;
    } caps[] = {
        {KVD_CAP_PERSISTENT, "persistent"},
        {KVD_CAP_ORDERED, "ordered"},
        {KVD_CAP_ATOMIC_BATCH, "atomic-batch"},
        {KVD_CAP_BATCH_PARTITIONED, "batch-partitioned"},
        {KVD_CAP_REMOTE, "remote"},
        {KVD_CAP_SNAPSHOT_ITER, "snapshot-iter"},
        {KVD_CAP_DURABLE, "durable"},
    };
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        if ((suite->vt->caps & caps[i].cap) != 0) {
            printf(" %s", caps[i].name);
        }
    }
    printf("%s%s\n", suite->persistent ? " (persistent here)" : "",
           suite->durable ? " (durable here)" : "");
    if (ran_conf) {
        printf("  conformance: %s\n",
               failed_conf == 0 ? "passed" : "FAILED (see above)");
    }
    if (ran_crash) {
        printf("  crash and fault: %s\n",
               failed_crash == 0 ? "passed" : "FAILED (see above)");
    }
    for (int i = 0; i < cf_nskips; i++) {
        printf("  skipped %d test%s: %s\n", cf_skips[i].count,
               cf_skips[i].count == 1 ? "" : "s", cf_skips[i].why);
    }
}

/* --- main ----------------------------------------------------------------- */

static int
cf_group_setup(void **state)
{
    struct cf_suite *suite = &cf_the_suite;

    *state = suite;
    return 0;
}

/* Load the engine: a path, or a name in kvd's plugin directory. */
static int
cf_load(struct cf_suite *suite)
{
    struct kvd_err err = {0};
    const void *vt = NULL;
    int rc;

    if (strchr(suite->path, '/') == NULL &&
        strstr(suite->path, ".so") == NULL) {
        const struct kvd_engine_vtable *evt = NULL;
        rc = kvd_loader_open_engine(kvd_loader_default_dir(), suite->path,
                                    &suite->plugin, &evt, &err);
        vt = evt;
    } else {
        rc = kvd_loader_open_path(suite->path, "engine", &suite->plugin, &vt,
                                  &err);
    }
    if (rc != 0) {
        fprintf(stderr, "kvd-conformance: load %s: %s\n", suite->path, err.msg);
        return -1;
    }
    suite->vt = vt;
    if ((suite->vt->caps & KVD_CAP_PERSISTENT) != 0) {
        suite->persistent = true;
    }
    if ((suite->vt->caps & KVD_CAP_DURABLE) != 0) {
        suite->durable = true;
    }
    return 0;
}

/* Engine name from ".../kvd_engine_NAME.so", for the group name. */
static void
cf_engine_name(const char *path, char *buf, size_t len)
{
    const char *base = strrchr(path, '/');
    const char *dot;

    base = base != NULL ? base + 1 : path;
    if (strncmp(base, "kvd_engine_", 11) == 0) {
        base += 11;
    }
    dot = strrchr(base, '.');
    snprintf(buf, len, "%.*s",
             (int)(dot != NULL ? (size_t)(dot - base) : strlen(base)), base);
}

/* No --crash-opt: sync=always when the engine has that setting. */
static void
cf_default_crash_args(struct cf_suite *suite)
{
    const struct kvd_option *o = suite->vt->options;

    if (suite->ncrash_args > 0 || o == NULL) {
        return;
    }
    for (; o->name != NULL; o++) {
        if (strcmp(o->name, "sync") != 0 || o->type != KVD_OPT_ENUM ||
            o->choices == NULL) {
            continue;
        }
        for (const char *const *c = o->choices; *c != NULL; c++) {
            if (strcmp(*c, "always") == 0) {
                suite->crash_args[suite->ncrash_args++] = "sync=always";
                return;
            }
        }
    }
}

static void
cf_usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s ENGINE [--opt KEY=VALUE ...] [--persistent] "
            "[--durable]\n"
            "         [--crash-opt KEY=VALUE ...] "
            "[--only=conformance|crash] [--rounds N]\n"
            "         [--seed N] [--open-fails=KEY=VALUE] "
            "[--partition-tags=A,B]\n"
            "         [--filter=A,B]  (only the tests whose names contain A "
            "or B)\n"
            "ENGINE is an engine plugin (.so) or its name in kvd's plugin "
            "directory\n(or $KVD_TEST_ENGINE). Runs the conformance suite "
            "and, for engines durable\nwith the crash options, the crash "
            "and fault tests.\n",
            argv0);
}

#define CF_T(prefix, f, setup)                                                 \
    {                                                                          \
        prefix #f, f, setup, cf_teardown, NULL                                 \
    }
#define CF_RAW_T(f)   CF_T("raw/", f, cf_setup_raw)
#define CF_STORE_T(f) CF_T("store/", f, cf_setup_store)
#define CF_BARE_T(f)  CF_T("", f, cf_setup_bare)
#define CF_BOTH(f)    CF_RAW_T(f), CF_STORE_T(f)
/* batch tests: keys grouped into one partition on partitioned engines */
#define CF_STORE_BATCH_T(f) CF_T("store/", f, cf_setup_store_grouped)
#define CF_BATCH_BOTH(f)                                                       \
    CF_T("raw/", f, cf_setup_raw_grouped), CF_STORE_BATCH_T(f)
#define CF_CRASH_T(f) CF_T("", f, cf_setup_crash)

/* --filter=A,B: a test runs when its name contains A or B. */
static bool
cf_name_matches(const char *name, const char *filter)
{
    size_t len = strlen(name);

    while (*filter != '\0') {
        size_t n = strcspn(filter, ",");

        for (size_t at = 0; n > 0 && at + n <= len; at++) {
            if (strncmp(name + at, filter, n) == 0) {
                return true;
            }
        }
        filter += n;
        if (*filter == ',') {
            filter++;
        }
    }
    return false;
}

static const struct CMUnitTest cf_tests[] = {
    /* cf_basic.c */
    CF_BOTH(test_crud_put_get_del),
    CF_BOTH(test_get_value_outlives_overwrite),
    CF_BOTH(test_put_overwrite_replaces_value),
    CF_BOTH(test_get_missing_key_is_notfound),
    CF_BOTH(test_del_missing_key_is_notfound),
    CF_BOTH(test_binary_keys_and_values_with_nul),
    CF_BOTH(test_empty_value_is_stored),
    CF_BOTH(test_value_16mib_roundtrip),
    CF_BOTH(test_100k_keys_roundtrip),
    /* the host refuses invalid input before the engine sees it (engine.h,
     * put): through the store only */
    CF_STORE_BATCH_T(test_batch_invalid_op_changes_nothing),
    CF_STORE_BATCH_T(test_batch_empty_key_changes_nothing),
    CF_BATCH_BOTH(test_batch_valid_applies_all),
    CF_BATCH_BOTH(test_batch_later_op_wins),
    CF_BOTH(test_batch_cross_partition_changes_nothing),
    /* cf_multi.c */
    CF_BOTH(test_multi_results_match_single_calls),
    CF_BOTH(test_multi_same_key_in_array_order),
    CF_BOTH(test_multi_random_against_model),
    CF_BOTH(test_multi_expiry_rules),
    CF_STORE_T(test_store_multi_validates_and_counts),
    /* cf_ttl_iter.c */
    CF_BOTH(test_ttl_get_returns_expiry),
    CF_BOTH(test_ttl_expired_key_is_absent),
    CF_BOTH(test_ttl_past_expiry_put_is_absent),
    CF_BOTH(test_ttl_overwrite_clears_expiry),
    CF_BOTH(test_ttl_maint_expire_reclaims),
    CF_BOTH(test_iter_empty_store_ends_at_once),
    CF_BOTH(test_iter_returns_exactly_live_keys),
    CF_BOTH(test_iter_resumes_where_it_stopped),
    CF_BOTH(test_iter_prefix_filter),
    CF_BOTH(test_iter_keys_only_reports_lengths),
    CF_BOTH(test_stats_match_written),
    /* cf_threads.c */
    CF_BOTH(test_threads_mixed_ops_match_model),
    CF_STORE_T(test_update_concurrent_increments_lose_nothing),
    CF_STORE_T(test_update_fn_decides_action),
    CF_BOTH(test_iter_concurrent_with_writes_sees_stable_keys),
    /* cf_persist.c */
    CF_BATCH_BOTH(test_reopen_keeps_everything),
    CF_BOTH(test_reopen_keeps_expiry),
    CF_BOTH(test_compact_keeps_data),
    CF_BARE_T(test_options_unknown_key_is_refused),
    CF_BARE_T(test_options_bad_value_is_refused),
    CF_BARE_T(test_options_defaults_parse),
    CF_BARE_T(test_open_bad_dir_reports_engine_message),
    CF_BARE_T(test_open_bad_option_reports_engine_message),
    CF_STORE_T(test_store_refuses_empty_key),
    CF_STORE_T(test_store_refuses_oversized_key_and_value),
    CF_STORE_BATCH_T(test_store_batch_over_limit_changes_nothing),
    CF_STORE_T(test_store_set_nx_xx),
    CF_STORE_T(test_store_metrics_count_commands),
    CF_STORE_T(test_store_clear_removes_everything),
};

static const struct CMUnitTest cf_crash_tests[] = {
    CF_CRASH_T(test_crash_sigkill_keeps_an_acknowledged_prefix),
    CF_CRASH_T(test_crash_torn_write_at_every_step_keeps_acknowledged),
    CF_CRASH_T(test_fault_failed_write_then_nothing_acknowledged),
    CF_CRASH_T(test_fault_failed_fsync_then_nothing_acknowledged),
};

/* Parse argv into the suite; 0, or 2 for a usage error (printed). */
static int
cf_parse_args(struct cf_suite *suite, int argc, char **argv, const char **only)
{
    int i = 1;

    if (argc > 1 && argv[1][0] != '-' && strchr(argv[1], '=') == NULL) {
        suite->path = argv[1];
        i = 2;
    } else {
        suite->path = getenv("KVD_TEST_ENGINE");
    }
    suite->args = calloc((size_t)argc + 1, sizeof(char *));
    suite->crash_args = calloc((size_t)argc + 2, sizeof(char *));
    if (suite->args == NULL || suite->crash_args == NULL) {
        return 2;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cf_usage(stdout, argv[0]);
            exit(0);
        } else if (strcmp(a, "--persistent") == 0) {
            suite->persistent = true;
        } else if (strcmp(a, "--durable") == 0) {
            suite->durable = true;
        } else if (strcmp(a, "--opt") == 0 && val != NULL &&
                   strchr(val, '=') != NULL) {
            suite->args[suite->nargs++] = argv[++i];
        } else if (strcmp(a, "--crash-opt") == 0 && val != NULL &&
                   strchr(val, '=') != NULL) {
            suite->crash_args[suite->ncrash_args++] = argv[++i];
        } else if (strncmp(a, "--only=", 7) == 0 &&
                   (strcmp(a + 7, "conformance") == 0 ||
                    strcmp(a + 7, "crash") == 0)) {
            *only = a + 7;
        } else if (strcmp(a, "--rounds") == 0 && val != NULL && atoi(val) > 0) {
            suite->crash_rounds = atoi(argv[++i]);
        } else if (strcmp(a, "--seed") == 0 && val != NULL) {
            suite->seed = strtoull(argv[++i], NULL, 10);
        } else if (strncmp(a, "--open-fails=", 13) == 0) {
            suite->open_fails = a + 13;
        } else if (strncmp(a, "--partition-tags=", 17) == 0 &&
                   strchr(a + 17, ',') != NULL) {
            const char *comma = strchr(a + 17, ',');

            suite->partition_tags[0] =
                strndup(a + 17, (size_t)(comma - a - 17));
            suite->partition_tags[1] = strdup(comma + 1);
        } else if (strncmp(a, "--filter=", 9) == 0 && a[9] != '\0') {
            suite->filter = a + 9;
        } else if (a[0] != '-' && strchr(a, '=') != NULL) {
            suite->args[suite->nargs++] = argv[i];
        } else {
            fprintf(stderr, "%s: '%s' is not an option nor KEY=VALUE\n",
                    argv[0], a);
            cf_usage(stderr, argv[0]);
            return 2;
        }
    }
    if (suite->path == NULL || suite->path[0] == '\0') {
        cf_usage(stderr, argv[0]);
        return 2;
    }
    return 0;
}

/* Runs the tests of a group whose names match suite->filter (all without
 * one); the number that failed, or 1 when out of memory. */
static int
cf_run_group(const struct cf_suite *suite, const char *group,
             const struct CMUnitTest *tests, size_t n)
{
    struct CMUnitTest *sel;
    size_t nsel = 0;
    int failed;

    if (suite->filter == NULL) {
        return _cmocka_run_group_tests(group, tests, n, cf_group_setup, NULL);
    }
    sel = malloc(n * sizeof(*sel));
    if (sel == NULL) {
        return 1;
    }
    for (size_t k = 0; k < n; k++) {
        if (cf_name_matches(tests[k].name, suite->filter)) {
            sel[nsel++] = tests[k];
        }
    }
    failed = nsel == 0 ? 0
                       : _cmocka_run_group_tests(group, sel, nsel,
                                                 cf_group_setup, NULL);
    free(sel);
    return failed;
}

int
main(int argc, char **argv)
{
    struct cf_suite *suite = &cf_the_suite;
    const char *only = NULL;
    char name[128];
    char group[160];
    bool run_conf;
    bool run_crash;
    int failed_conf = 0;
    int failed_crash = 0;
    int rc;

    /* the store logs every open at info level: noise in test output */
    kvd_log_set_level(KVD_LOG_WARN);
    suite->crash_rounds = 20;
    suite->seed = (uint64_t)time(NULL);
    rc = cf_parse_args(suite, argc, argv, &only);
    if (rc == 0 && cf_load(suite) != 0) {
        rc = 2;
    }
    if (rc != 0) {
        return rc;
    }
    cf_engine_name(suite->path, name, sizeof(name));
    run_conf = only == NULL || strcmp(only, "conformance") == 0;
    run_crash = only == NULL || strcmp(only, "crash") == 0;
    print_message("[ ENGINE   ] %s %s caps=0x%x%s\n", suite->vt->name,
                  suite->vt->version != NULL ? suite->vt->version : "",
                  (unsigned)suite->vt->caps,
                  suite->persistent ? " (persistent)" : "");
    if (run_conf) {
        failed_conf = cf_run_group(suite, name, cf_tests,
                                   sizeof(cf_tests) / sizeof(cf_tests[0]));
    }
    if (run_crash) {
        cf_default_crash_args(suite);
        cf_crash_group_setup(suite);
        if (suite->durable) {
            print_message("[ CRASH    ] options:");
            for (int i = 0; i < suite->nargs; i++) {
                print_message(" %s", suite->args[i]);
            }
            for (int i = 0; i < suite->ncrash_args; i++) {
                print_message(" %s", suite->crash_args[i]);
            }
            print_message("; seed %llu, %d rounds\n",
                          (unsigned long long)suite->seed, suite->crash_rounds);
        }
        snprintf(group, sizeof(group), "%s crash and fault", name);
        failed_crash = cf_run_group(
            suite, group, cf_crash_tests,
            sizeof(cf_crash_tests) / sizeof(cf_crash_tests[0]));
    }
    cf_report(suite, name, failed_conf, failed_crash, run_conf, run_crash);
    kvd_loader_close(suite->plugin);
    free(suite->args);
    free(suite->crash_args);
    free(suite->partition_tags[0]);
    free(suite->partition_tags[1]);
    return failed_conf != 0 || failed_crash != 0 ? 1 : 0;
}
