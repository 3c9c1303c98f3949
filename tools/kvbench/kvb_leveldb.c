/*
 * tools/kvbench/kvb_leveldb.c -- kvbench backend for LevelDB (C API).
 *
 * Compiled only when CMake finds leveldb/c.h and libleveldb; otherwise the
 * constructor says so. The point is a comparison measured in the same run,
 * with the same key and value streams as the kvd engines, so compression
 * is always off (the values are random bytes anyway) and every other
 * setting is LevelDB's default unless an --opt changes it:
 *
 *   write_buffer_size=SIZE  memtable size            (LevelDB default 4m)
 *   cache_size=SIZE         block cache, 0 = LevelDB's internal 8m
 *   bloom_bits=N            bloom filter bits per key, 0 = none (default)
 *   block_size=SIZE         data block size          (default 4k)
 *   max_open_files=N        table cache size         (default 1000)
 *   max_file_size=SIZE      table file size          (default 2m)
 *
 * fillsync uses WriteOptions.sync = true on every put.
 *
 * Threading: LevelDB's leveldb_t is thread-safe; the option objects are
 * read-only after open.
 */
#include "kvbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KVB_HAVE_LEVELDB

#include <leveldb/c.h>

struct ldb {
    leveldb_t *db;
    leveldb_options_t *options;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wopts;
    leveldb_writeoptions_t *wopts_sync;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    char desc[160];
};

struct ldb_iter {
    leveldb_iterator_t *it;
    int started;
};

/* Turn LevelDB's malloc'd error string into err and free it. */
static int
ldb_err(struct kvd_err *err, const char *what, char *msg)
{
    int rc = kvd_err_set(err, KVD_EIO, "leveldb %s: %s", what,
                         msg != NULL ? msg : "unknown error");
    leveldb_free(msg);
    return rc;
}

static const char *
ldb_describe(void *b)
{
    return ((struct ldb *)b)->desc;
}

static int
ldb_open(void *b, const char *dir, bool syncmode, struct kvd_err *err)
{
    struct ldb *l = b;
    char *msg = NULL;

    (void)syncmode; /* sync is per write: see ldb_put */
    l->db = leveldb_open(l->options, dir, &msg);
    if (msg != NULL) {
        l->db = NULL;
        return ldb_err(err, "open", msg);
    }
    return 0;
}

static int
ldb_close(void *b, struct kvd_err *err)
{
    struct ldb *l = b;

    (void)err;
    if (l->db != NULL) {
        leveldb_close(l->db);
        l->db = NULL;
    }
    return 0;
}

static const char *
ldb_sync_how(void *b)
{
    (void)b;
    return "WriteOptions.sync = true on every put";
}

static bool
ldb_persistent(void *b)
{
    (void)b;
    return true;
}

static int
ldb_put(void *b, const void *key, size_t klen, const void *val, size_t vlen,
        bool sync)
{
    struct ldb *l = b;
    char *msg = NULL;

    leveldb_put(l->db, sync ? l->wopts_sync : l->wopts, key, klen, val, vlen,
                &msg);
    if (msg != NULL) {
        leveldb_free(msg);
        return KVD_EIO;
    }
    return 0;
}

static int
ldb_get(void *b, const void *key, size_t klen, size_t *vlen)
{
    struct ldb *l = b;
    char *msg = NULL;
    char *v;

    v = leveldb_get(l->db, l->ropts, key, klen, vlen, &msg);
    if (msg != NULL) {
        leveldb_free(msg);
        return KVD_EIO;
    }
    if (v == NULL) {
        return KVD_ENOTFOUND;
    }
    leveldb_free(v);
    return 0;
}

static int
ldb_del(void *b, const void *key, size_t klen)
{
    struct ldb *l = b;
    char *msg = NULL;

    /* LevelDB cannot tell whether the key existed: report 0. */
    leveldb_delete(l->db, l->wopts, key, klen, &msg);
    if (msg != NULL) {
        leveldb_free(msg);
        return KVD_EIO;
    }
    return 0;
}

static int
ldb_iter_open(void *b, void **out, struct kvd_err *err)
{
    struct ldb *l = b;
    struct ldb_iter *it;

    it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory for an iterator");
    }
    it->it = leveldb_create_iterator(l->db, l->ropts);
    leveldb_iter_seek_to_first(it->it);
    *out = it;
    return 0;
}

static int
ldb_iter_next(void *p, size_t *klen, size_t *vlen)
{
    struct ldb_iter *it = p;
    char *msg = NULL;

    if (it->started) {
        leveldb_iter_next(it->it);
    }
    it->started = 1;
    if (!leveldb_iter_valid(it->it)) {
        leveldb_iter_get_error(it->it, &msg);
        if (msg != NULL) {
            leveldb_free(msg);
            return KVD_EIO;
        }
        return KVD_ENOTFOUND;
    }
    (void)leveldb_iter_key(it->it, klen);
    (void)leveldb_iter_value(it->it, vlen);
    return 0;
}

static void
ldb_iter_close(void *p)
{
    struct ldb_iter *it = p;

    if (it != NULL) {
        leveldb_iter_destroy(it->it);
        free(it);
    }
}

static int
ldb_compact(void *b, struct kvd_err *err)
{
    struct ldb *l = b;

    (void)err;
    leveldb_compact_range(l->db, NULL, 0, NULL, 0);
    return 0;
}

static int
ldb_stats(void *b, struct kvb_stats *st, kvb_counter_fn fn, void *ctx)
{
    struct ldb *l = b;
    char *v;

    /* LevelDB keeps no key count; kvbench counts by iteration. */
    st->keys = UINT64_MAX;
    st->value_bytes = UINT64_MAX;
    st->disk_bytes = UINT64_MAX;
    st->mem_bytes = UINT64_MAX;
    v = leveldb_property_value(l->db, "leveldb.approximate-memory-usage");
    if (v != NULL) {
        st->mem_bytes = strtoull(v, NULL, 10);
        leveldb_free(v);
    }
    if (fn != NULL) {
        for (int level = 0; level < 7; level++) {
            char prop[64];
            char name[32];
            snprintf(prop, sizeof(prop), "leveldb.num-files-at-level%d", level);
            v = leveldb_property_value(l->db, prop);
            if (v != NULL) {
                snprintf(name, sizeof(name), "files_level%d", level);
                fn(ctx, name, strtoull(v, NULL, 10));
                leveldb_free(v);
            }
        }
    }
    return 0;
}

static void
ldb_destroy(void *b)
{
    struct ldb *l = b;

    if (l == NULL) {
        return;
    }
    ldb_close(l, NULL);
    if (l->options != NULL) {
        leveldb_options_destroy(l->options);
    }
    if (l->ropts != NULL) {
        leveldb_readoptions_destroy(l->ropts);
    }
    if (l->wopts != NULL) {
        leveldb_writeoptions_destroy(l->wopts);
    }
    if (l->wopts_sync != NULL) {
        leveldb_writeoptions_destroy(l->wopts_sync);
    }
    if (l->cache != NULL) {
        leveldb_cache_destroy(l->cache);
    }
    if (l->filter != NULL) {
        leveldb_filterpolicy_destroy(l->filter);
    }
    free(l);
}

static const struct kvb_ops ldb_ops = {
    .del_reports_absent = false,
    .describe = ldb_describe,
    .open = ldb_open,
    .close = ldb_close,
    .sync_how = ldb_sync_how,
    .persistent = ldb_persistent,
    .put = ldb_put,
    .get = ldb_get,
    .del = ldb_del,
    .iter_open = ldb_iter_open,
    .iter_next = ldb_iter_next,
    .iter_close = ldb_iter_close,
    .compact = ldb_compact,
    .stats = ldb_stats,
    .destroy = ldb_destroy,
};

/* Apply one --opt to the options object. */
static int
ldb_apply(struct ldb *l, const struct kvb_kv *kv, struct kvd_err *err)
{
    uint64_t n;

    if (kvb_parse_size(kv->value, &n) != 0 || n > (uint64_t)1 << 40) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "--opt %s=%s: expected a number (suffix k, m, g)",
                           kv->key, kv->value);
    }
    if (strcmp(kv->key, "write_buffer_size") == 0) {
        leveldb_options_set_write_buffer_size(l->options, n);
    } else if (strcmp(kv->key, "cache_size") == 0) {
        if (l->cache != NULL) {
            leveldb_cache_destroy(l->cache);
            l->cache = NULL;
        }
        if (n > 0) {
            l->cache = leveldb_cache_create_lru(n);
            leveldb_options_set_cache(l->options, l->cache);
        }
    } else if (strcmp(kv->key, "bloom_bits") == 0) {
        if (l->filter != NULL) {
            leveldb_filterpolicy_destroy(l->filter);
            l->filter = NULL;
        }
        if (n > 0) {
            l->filter = leveldb_filterpolicy_create_bloom((int)n);
            leveldb_options_set_filter_policy(l->options, l->filter);
        }
    } else if (strcmp(kv->key, "block_size") == 0) {
        leveldb_options_set_block_size(l->options, n);
    } else if (strcmp(kv->key, "max_open_files") == 0) {
        leveldb_options_set_max_open_files(l->options, (int)n);
    } else if (strcmp(kv->key, "max_file_size") == 0) {
        leveldb_options_set_max_file_size(l->options, n);
    } else {
        return kvd_err_set(err, KVD_ECONFIG,
                           "--opt %s: unknown leveldb option: expected "
                           "write_buffer_size, cache_size, bloom_bits, "
                           "block_size, max_open_files or max_file_size",
                           kv->key);
    }
    return 0;
}

int
kvb_leveldb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                   void **out, struct kvd_err *err)
{
    struct ldb *l;
    int rc;

    *out = NULL;
    if (s->use_store) {
        return kvd_err_set(err, KVD_EINVAL,
                           "--store applies to kvd engines only");
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    l->options = leveldb_options_create();
    l->ropts = leveldb_readoptions_create();
    l->wopts = leveldb_writeoptions_create();
    l->wopts_sync = leveldb_writeoptions_create();
    leveldb_options_set_create_if_missing(l->options, 1);
    leveldb_options_set_compression(l->options, leveldb_no_compression);
    leveldb_writeoptions_set_sync(l->wopts_sync, 1);
    for (size_t i = 0; i < s->nopts; i++) {
        rc = ldb_apply(l, &s->opts[i], err);
        if (rc != 0) {
            ldb_destroy(l);
            return rc;
        }
    }
    snprintf(l->desc, sizeof(l->desc), "LevelDB %d.%d (C API), compression off",
             leveldb_major_version(), leveldb_minor_version());
    *ops = &ldb_ops;
    *out = l;
    return 0;
}

#else /* !KVB_HAVE_LEVELDB */

int
kvb_leveldb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                   void **out, struct kvd_err *err)
{
    (void)s;
    (void)ops;
    *out = NULL;
    return kvd_err_set(err, KVD_ENOTSUP,
                       "kvbench was built without LevelDB (leveldb/c.h not "
                       "found; install libleveldb-dev and rebuild)");
}

#endif /* KVB_HAVE_LEVELDB */
