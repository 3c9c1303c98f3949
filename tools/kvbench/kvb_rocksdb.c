/*
 * tools/kvbench/kvb_rocksdb.c -- kvbench backend for RocksDB (C API).
 *
 * Compiled only when CMake finds rocksdb/c.h and librocksdb (Debian
 * librocksdb-dev); otherwise the constructor says so. As for LevelDB, the
 * point is a comparison in the same run with the same key and value
 * streams: compression is off and everything else is RocksDB's default
 * unless an --opt changes it:
 *
 *   write_buffer_size=SIZE  memtable size               (default 64m)
 *   cache_size=SIZE         block cache, 0 = RocksDB's default
 *   bloom_bits=N            bloom filter bits per key, 0 = none (default)
 *   block_size=SIZE         data block size             (default 4k)
 *   max_open_files=N        table cache size            (default unlimited)
 *   parallelism=N           background threads (IncreaseParallelism)
 *
 * fillsync uses WriteOptions.sync = true on every put.
 *
 * Threading: rocksdb_t is thread-safe; the option objects are read-only
 * after open.
 */
#include "kvbench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KVB_HAVE_ROCKSDB

#include <rocksdb/c.h>

#ifndef KVB_ROCKSDB_VERSION
#define KVB_ROCKSDB_VERSION "" /* set by CMake from rocksdb/version.h */
#endif

struct rdb {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_block_based_table_options_t *table;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writeoptions_t *wopts_sync;
    rocksdb_cache_t *cache;
    char desc[160];
};

struct rdb_iter {
    rocksdb_iterator_t *it;
    int started;
};

static const char *
rdb_describe(void *b)
{
    return ((struct rdb *)b)->desc;
}

static int
rdb_open(void *b, const char *dir, bool syncmode, struct kvd_err *err)
{
    struct rdb *r = b;
    char *msg = NULL;
    int rc;

    (void)syncmode; /* sync is per write: see rdb_put */
    r->db = rocksdb_open(r->options, dir, &msg);
    if (msg != NULL) {
        r->db = NULL;
        rc = kvd_err_set(err, KVD_EIO, "rocksdb open: %s", msg);
        rocksdb_free(msg);
        return rc;
    }
    return 0;
}

static int
rdb_close(void *b, struct kvd_err *err)
{
    struct rdb *r = b;

    (void)err;
    if (r->db != NULL) {
        rocksdb_close(r->db);
        r->db = NULL;
    }
    return 0;
}

static const char *
rdb_sync_how(void *b)
{
    (void)b;
    return "WriteOptions.sync = true on every put";
}

static bool
rdb_persistent(void *b)
{
    (void)b;
    return true;
}

static int
rdb_put(void *b, const void *key, size_t klen, const void *val, size_t vlen,
        bool sync)
{
    struct rdb *r = b;
    char *msg = NULL;

    rocksdb_put(r->db, sync ? r->wopts_sync : r->wopts, key, klen, val, vlen,
                &msg);
    if (msg != NULL) {
        rocksdb_free(msg);
        return KVD_EIO;
    }
    return 0;
}

static int
rdb_get(void *b, const void *key, size_t klen, size_t *vlen)
{
    struct rdb *r = b;
    char *msg = NULL;
    char *v;

    v = rocksdb_get(r->db, r->ropts, key, klen, vlen, &msg);
    if (msg != NULL) {
        rocksdb_free(msg);
        return KVD_EIO;
    }
    if (v == NULL) {
        return KVD_ENOTFOUND;
    }
    rocksdb_free(v);
    return 0;
}

static int
rdb_del(void *b, const void *key, size_t klen)
{
    struct rdb *r = b;
    char *msg = NULL;

    /* RocksDB cannot tell whether the key existed: report 0. */
    rocksdb_delete(r->db, r->wopts, key, klen, &msg);
    if (msg != NULL) {
        rocksdb_free(msg);
        return KVD_EIO;
    }
    return 0;
}

static int
rdb_iter_open(void *b, void **out, struct kvd_err *err)
{
    struct rdb *r = b;
    struct rdb_iter *it;

    it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory for an iterator");
    }
    it->it = rocksdb_create_iterator(r->db, r->ropts);
    rocksdb_iter_seek_to_first(it->it);
    *out = it;
    return 0;
}

static int
rdb_iter_next(void *p, size_t *klen, size_t *vlen)
{
    struct rdb_iter *it = p;
    char *msg = NULL;

    if (it->started) {
        rocksdb_iter_next(it->it);
    }
    it->started = 1;
    if (!rocksdb_iter_valid(it->it)) {
        rocksdb_iter_get_error(it->it, &msg);
        if (msg != NULL) {
            rocksdb_free(msg);
            return KVD_EIO;
        }
        return KVD_ENOTFOUND;
    }
    (void)rocksdb_iter_key(it->it, klen);
    (void)rocksdb_iter_value(it->it, vlen);
    return 0;
}

static void
rdb_iter_close(void *p)
{
    struct rdb_iter *it = p;

    if (it != NULL) {
        rocksdb_iter_destroy(it->it);
        free(it);
    }
}

static int
rdb_compact(void *b, struct kvd_err *err)
{
    struct rdb *r = b;

    (void)err;
    rocksdb_compact_range(r->db, NULL, 0, NULL, 0);
    return 0;
}

/* A numeric RocksDB property, or UINT64_MAX. */
static uint64_t
rdb_prop(struct rdb *r, const char *name)
{
    uint64_t n = UINT64_MAX;
    char *v = rocksdb_property_value(r->db, name);

    if (v != NULL) {
        n = strtoull(v, NULL, 10);
        rocksdb_free(v);
    }
    return n;
}

static int
rdb_stats(void *b, struct kvb_stats *st, kvb_counter_fn fn, void *ctx)
{
    struct rdb *r = b;

    /* rocksdb.estimate-num-keys is only an estimate; kvbench counts by
     * iteration instead, as for LevelDB. */
    st->keys = UINT64_MAX;
    st->value_bytes = UINT64_MAX;
    st->disk_bytes = UINT64_MAX;
    st->mem_bytes = rdb_prop(r, "rocksdb.cur-size-all-mem-tables");
    if (fn != NULL) {
        for (int level = 0; level < 7; level++) {
            char prop[64];
            char name[32];
            uint64_t n;
            snprintf(prop, sizeof(prop), "rocksdb.num-files-at-level%d", level);
            n = rdb_prop(r, prop);
            if (n != UINT64_MAX) {
                snprintf(name, sizeof(name), "files_level%d", level);
                fn(ctx, name, n);
            }
        }
    }
    return 0;
}

static void
rdb_destroy(void *b)
{
    struct rdb *r = b;

    if (r == NULL) {
        return;
    }
    rdb_close(r, NULL);
    if (r->options != NULL) {
        rocksdb_options_destroy(r->options);
    }
    if (r->table != NULL) {
        rocksdb_block_based_options_destroy(r->table);
    }
    if (r->ropts != NULL) {
        rocksdb_readoptions_destroy(r->ropts);
    }
    if (r->wopts != NULL) {
        rocksdb_writeoptions_destroy(r->wopts);
    }
    if (r->wopts_sync != NULL) {
        rocksdb_writeoptions_destroy(r->wopts_sync);
    }
    if (r->cache != NULL) {
        rocksdb_cache_destroy(r->cache);
    }
    free(r);
}

static const struct kvb_ops rdb_ops = {
    .del_reports_absent = false,
    .describe = rdb_describe,
    .open = rdb_open,
    .close = rdb_close,
    .sync_how = rdb_sync_how,
    .persistent = rdb_persistent,
    .put = rdb_put,
    .get = rdb_get,
    .del = rdb_del,
    .iter_open = rdb_iter_open,
    .iter_next = rdb_iter_next,
    .iter_close = rdb_iter_close,
    .compact = rdb_compact,
    .stats = rdb_stats,
    .destroy = rdb_destroy,
};

/* Apply one --opt to the option objects. */
static int
rdb_apply(struct rdb *r, const struct kvb_kv *kv, struct kvd_err *err)
{
    uint64_t n;

    if (kvb_parse_size(kv->value, &n) != 0 || n > (uint64_t)1 << 40) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "--opt %s=%s: expected a number (suffix k, m, g)",
                           kv->key, kv->value);
    }
    if (strcmp(kv->key, "write_buffer_size") == 0) {
        rocksdb_options_set_write_buffer_size(r->options, n);
    } else if (strcmp(kv->key, "cache_size") == 0) {
        if (r->cache != NULL) {
            rocksdb_cache_destroy(r->cache);
            r->cache = NULL;
        }
        if (n > 0) {
            r->cache = rocksdb_cache_create_lru(n);
            rocksdb_block_based_options_set_block_cache(r->table, r->cache);
        }
    } else if (strcmp(kv->key, "bloom_bits") == 0) {
        /* The table options take ownership of the policy. */
        if (n > 0) {
            rocksdb_block_based_options_set_filter_policy(
                r->table, rocksdb_filterpolicy_create_bloom((double)n));
        }
    } else if (strcmp(kv->key, "block_size") == 0) {
        rocksdb_block_based_options_set_block_size(r->table, n);
    } else if (strcmp(kv->key, "max_open_files") == 0) {
        rocksdb_options_set_max_open_files(r->options, (int)n);
    } else if (strcmp(kv->key, "parallelism") == 0) {
        rocksdb_options_increase_parallelism(r->options, (int)n);
    } else {
        return kvd_err_set(err, KVD_ECONFIG,
                           "--opt %s: unknown rocksdb option: expected "
                           "write_buffer_size, cache_size, bloom_bits, "
                           "block_size, max_open_files or parallelism",
                           kv->key);
    }
    return 0;
}

int
kvb_rocksdb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                   void **out, struct kvd_err *err)
{
    struct rdb *r;
    int rc;

    *out = NULL;
    if (s->use_store) {
        return kvd_err_set(err, KVD_EINVAL,
                           "--store applies to kvd engines only");
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    r->options = rocksdb_options_create();
    r->table = rocksdb_block_based_options_create();
    r->ropts = rocksdb_readoptions_create();
    r->wopts = rocksdb_writeoptions_create();
    r->wopts_sync = rocksdb_writeoptions_create();
    rocksdb_options_set_create_if_missing(r->options, 1);
    rocksdb_options_set_compression(r->options, rocksdb_no_compression);
    rocksdb_writeoptions_set_sync(r->wopts_sync, 1);
    for (size_t i = 0; i < s->nopts; i++) {
        rc = rdb_apply(r, &s->opts[i], err);
        if (rc != 0) {
            rdb_destroy(r);
            return rc;
        }
    }
    /* The factory copies the table options, so set it after the --opts. */
    rocksdb_options_set_block_based_table_factory(r->options, r->table);
    snprintf(r->desc, sizeof(r->desc), "RocksDB %s (C API), compression off",
             KVB_ROCKSDB_VERSION);
    *ops = &rdb_ops;
    *out = r;
    return 0;
}

#else /* !KVB_HAVE_ROCKSDB */

int
kvb_rocksdb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                   void **out, struct kvd_err *err)
{
    (void)s;
    (void)ops;
    *out = NULL;
    return kvd_err_set(err, KVD_ENOTSUP,
                       "kvbench was built without RocksDB (rocksdb/c.h not "
                       "found; install librocksdb-dev and rebuild)");
}

#endif /* KVB_HAVE_ROCKSDB */
