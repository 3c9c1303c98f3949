/*
 * tools/kvbench/kvb_tkrzw.c -- kvbench backend for tkrzw (C API,
 * tkrzw_langc.h): HashDBM (the default) or TreeDBM.
 *
 * Compiled only when CMake finds tkrzw_langc.h and libtkrzw. The point is
 * a comparison measured in the same run, with the same key and value
 * streams as the kvd engines. Every setting is tkrzw's default unless an
 * --opt changes it:
 *
 *   dbm=hash|tree          HashDBM (casket.tkh) or TreeDBM (casket.tkt)
 *   num_buckets=N          bucket count (HashDBM default 1048583)
 *   update_mode=in_place|appending   HashDBM update mode
 *   max_cached_pages=N     TreeDBM page cache
 *
 * Nothing is synchronised unless asked: that is the equal of sync = never
 * for a kvd engine. fillsync calls tkrzw_dbm_synchronize(hard = true)
 * after every put (tkrzw has no per-write sync flag).
 *
 * Threading: a TkrzwDBM (PolyDBM) is thread-safe for get/set/remove and
 * iterators; open and close run while no workload thread exists.
 */
#include "kvbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KVB_HAVE_TKRZW

#include <tkrzw_langc.h>

#define KVB_TKRZW_PARAMS_BYTES 512

struct tkz {
    TkrzwDBM *db;
    int tree;
    char extra[KVB_TKRZW_PARAMS_BYTES]; /* ",key=value" from --opt */
    char params[KVB_TKRZW_PARAMS_BYTES + 16];
    char desc[KVB_TKRZW_PARAMS_BYTES + 64];
};

static int
tkz_status(struct kvd_err *err, const char *what)
{
    return kvd_err_set(err, KVD_EIO, "tkrzw %s: %s (%s)", what,
                       tkrzw_get_last_status_message(),
                       tkrzw_status_code_name(tkrzw_get_last_status_code()));
}

static const char *
tkz_describe(void *b)
{
    return ((struct tkz *)b)->desc;
}

static int
tkz_open(void *b, const char *dir, bool syncmode, struct kvd_err *err)
{
    struct tkz *t = b;
    char path[4096];

    (void)syncmode; /* synchronised per write: see tkz_put */
    snprintf(path, sizeof(path), "%s/casket.%s", dir, t->tree ? "tkt" : "tkh");
    t->db = tkrzw_dbm_open(path, true, t->params);
    if (t->db == NULL) {
        return tkz_status(err, "open");
    }
    return 0;
}

static int
tkz_close(void *b, struct kvd_err *err)
{
    struct tkz *t = b;
    int rc = 0;

    if (t->db != NULL) {
        if (!tkrzw_dbm_close(t->db)) {
            rc = tkz_status(err, "close");
        }
        t->db = NULL;
    }
    return rc;
}

static const char *
tkz_sync_how(void *b)
{
    (void)b;
    return "tkrzw_dbm_synchronize(hard) after every put";
}

static bool
tkz_persistent(void *b)
{
    (void)b;
    return true;
}

static int
tkz_put(void *b, const void *key, size_t klen, const void *val, size_t vlen,
        bool sync)
{
    struct tkz *t = b;

    if (!tkrzw_dbm_set(t->db, key, (int32_t)klen, val, (int32_t)vlen, true)) {
        return KVD_EIO;
    }
    if (sync && !tkrzw_dbm_synchronize(t->db, true, NULL, NULL, "")) {
        return KVD_EIO;
    }
    return 0;
}

static int
tkz_get(void *b, const void *key, size_t klen, size_t *vlen)
{
    struct tkz *t = b;
    int32_t n = 0;
    char *v = tkrzw_dbm_get(t->db, key, (int32_t)klen, &n);

    if (v == NULL) {
        return tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR
                   ? KVD_ENOTFOUND
                   : KVD_EIO;
    }
    free(v);
    *vlen = (size_t)n;
    return 0;
}

static int
tkz_del(void *b, const void *key, size_t klen)
{
    struct tkz *t = b;

    if (!tkrzw_dbm_remove(t->db, key, (int32_t)klen)) {
        return tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR
                   ? KVD_ENOTFOUND
                   : KVD_EIO;
    }
    return 0;
}

static int
tkz_iter_open(void *b, void **out, struct kvd_err *err)
{
    struct tkz *t = b;
    TkrzwDBMIter *it = tkrzw_dbm_make_iterator(t->db);

    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory for an iterator");
    }
    if (!tkrzw_dbm_iter_first(it)) {
        tkrzw_dbm_iter_free(it);
        return tkz_status(err, "iter_first");
    }
    *out = it;
    return 0;
}

static int
tkz_iter_next(void *p, size_t *klen, size_t *vlen)
{
    char *k = NULL;
    char *v = NULL;
    int32_t kn = 0;
    int32_t vn = 0;

    if (!tkrzw_dbm_iter_step(p, &k, &kn, &v, &vn)) {
        return tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR
                   ? KVD_ENOTFOUND
                   : KVD_EIO;
    }
    free(k);
    free(v);
    *klen = (size_t)kn;
    *vlen = (size_t)vn;
    return 0;
}

static void
tkz_iter_close(void *p)
{
    if (p != NULL) {
        tkrzw_dbm_iter_free(p);
    }
}

static int
tkz_compact(void *b, struct kvd_err *err)
{
    struct tkz *t = b;

    if (!tkrzw_dbm_rebuild(t->db, "")) {
        return tkz_status(err, "rebuild");
    }
    return 0;
}

static int
tkz_stats(void *b, struct kvb_stats *st, kvb_counter_fn fn, void *ctx)
{
    struct tkz *t = b;
    int64_t n = tkrzw_dbm_count(t->db);
    int64_t size = tkrzw_dbm_get_file_size(t->db);

    st->keys = n >= 0 ? (uint64_t)n : UINT64_MAX;
    st->value_bytes = UINT64_MAX;
    st->disk_bytes = size >= 0 ? (uint64_t)size : UINT64_MAX;
    st->mem_bytes = UINT64_MAX;
    if (fn != NULL) {
        fn(ctx, "should_be_rebuilt", tkrzw_dbm_should_be_rebuilt(t->db));
    }
    return 0;
}

static void
tkz_destroy(void *b)
{
    if (b != NULL) {
        tkz_close(b, NULL);
        free(b);
    }
}

static const struct kvb_ops tkz_ops = {
    .del_reports_absent = true,
    .describe = tkz_describe,
    .open = tkz_open,
    .close = tkz_close,
    .sync_how = tkz_sync_how,
    .persistent = tkz_persistent,
    .put = tkz_put,
    .get = tkz_get,
    .del = tkz_del,
    .iter_open = tkz_iter_open,
    .iter_next = tkz_iter_next,
    .iter_close = tkz_iter_close,
    .compact = tkz_compact,
    .stats = tkz_stats,
    .destroy = tkz_destroy,
};

/* Append ",key=value" to the open parameters. */
static int
tkz_param(struct tkz *t, const char *key, const char *value,
          struct kvd_err *err)
{
    size_t used = strlen(t->extra);
    int n = snprintf(t->extra + used, sizeof(t->extra) - used, ",%s=%s", key,
                     value);

    if (n < 0 || (size_t)n >= sizeof(t->extra) - used) {
        return kvd_err_set(err, KVD_ECONFIG, "--opt %s=%s: too long", key,
                           value);
    }
    return 0;
}

static int
tkz_apply(struct tkz *t, const struct kvb_kv *kv, struct kvd_err *err)
{
    uint64_t n;

    if (strcmp(kv->key, "dbm") == 0) {
        if (strcmp(kv->value, "hash") != 0 && strcmp(kv->value, "tree") != 0) {
            return kvd_err_set(err, KVD_ECONFIG,
                               "--opt dbm=%s: expected hash or tree",
                               kv->value);
        }
        t->tree = strcmp(kv->value, "tree") == 0;
        return 0;
    }
    if (strcmp(kv->key, "update_mode") == 0) {
        if (strcmp(kv->value, "in_place") != 0 &&
            strcmp(kv->value, "appending") != 0) {
            return kvd_err_set(err, KVD_ECONFIG,
                               "--opt update_mode=%s: expected in_place or "
                               "appending",
                               kv->value);
        }
        return tkz_param(t, "update_mode",
                         strcmp(kv->value, "in_place") == 0
                             ? "UPDATE_IN_PLACE"
                             : "UPDATE_APPENDING",
                         err);
    }
    if (strcmp(kv->key, "num_buckets") == 0 ||
        strcmp(kv->key, "max_cached_pages") == 0) {
        if (kvb_parse_size(kv->value, &n) != 0 || n == 0 ||
            n > ((uint64_t)1 << 40)) {
            return kvd_err_set(err, KVD_ECONFIG,
                               "--opt %s=%s: expected a positive number",
                               kv->key, kv->value);
        }
        return tkz_param(t, kv->key, kv->value, err);
    }
    return kvd_err_set(err, KVD_ECONFIG,
                       "--opt %s: unknown tkrzw option: expected dbm, "
                       "num_buckets, update_mode or max_cached_pages",
                       kv->key);
}

int
kvb_tkrzw_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                 void **out, struct kvd_err *err)
{
    struct tkz *t;
    int rc;

    *out = NULL;
    if (s->use_store) {
        return kvd_err_set(err, KVD_EINVAL,
                           "--store applies to kvd engines only");
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < s->nopts; i++) {
        rc = tkz_apply(t, &s->opts[i], err);
        if (rc != 0) {
            free(t);
            return rc;
        }
    }
    /* the class goes first; "truncate" is never set: kvbench wipes the
     * directory itself for a fresh db, and reopen must find the data */
    snprintf(t->params, sizeof(t->params), "dbm=%s%s",
             t->tree ? "TreeDBM" : "HashDBM", t->extra);
    snprintf(t->desc, sizeof(t->desc), "tkrzw %s %.16s (C API; %s)",
             t->tree ? "TreeDBM" : "HashDBM", TKRZW_PACKAGE_VERSION, t->params);
    *ops = &tkz_ops;
    *out = t;
    return 0;
}

#else /* !KVB_HAVE_TKRZW */

int
kvb_tkrzw_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                 void **out, struct kvd_err *err)
{
    (void)s;
    (void)ops;
    *out = NULL;
    return kvd_err_set(err, KVD_ENOTSUP,
                       "kvbench was built without tkrzw (tkrzw_langc.h not "
                       "found; install libtkrzw-dev and rebuild)");
}

#endif /* KVB_HAVE_TKRZW */
