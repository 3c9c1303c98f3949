/*
 * tools/kvbench/kvb_lmdb.c -- kvbench backend for LMDB (lmdb.h).
 *
 * Compiled only when CMake finds lmdb.h and liblmdb. The point is a
 * comparison measured in the same run, with the same key and value streams
 * as the kvd engines, each operation as the kvd engines see it:
 *
 *   put/del  one write transaction each (begin, put/del, commit), as an
 *            acknowledged single write must be;
 *   get      a read transaction per thread, kept and renewed for each get
 *            (mdb_txn_renew/mdb_txn_reset: LMDB's fast path for many
 *            short reads; no malloc, no reader-table search);
 *   readseq  one read transaction and a cursor (MDB_NEXT, zero copy).
 *
 * Durability: MDB_NOSYNC (nothing synced unless asked) is the equal of
 * sync = never for a kvd engine; fillsync opens without it, so every
 * commit does LMDB's fdatasync + meta write. Options (--opt):
 *
 *   map_size=SIZE   the map (address space, file grows as used; 16g)
 *   writemap=0|1    MDB_WRITEMAP (0)
 *   nometasync=0|1  MDB_NOMETASYNC for fillsync (0)
 *   nordahead=0|1   MDB_NORDAHEAD (0)
 *
 * Threading: MDB_NOTLS, so each cached read transaction owns its reader
 * slot and can be aborted by close from the main thread after its worker
 * is gone. The list of cached read transactions is guarded by mu; each
 * entry is used only by the thread that created it (found through a
 * thread-local pointer tagged with the open's generation).
 */
#include "kvbench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef KVB_HAVE_LMDB

#include <lmdb.h>

#define KVB_LMDB_DEFAULT_MAP ((uint64_t)16 << 30)

struct lmr {
    struct lmr *next;
    MDB_txn *txn;
};

struct lmb {
    MDB_env *env;
    MDB_dbi dbi;
    uint64_t gen; /* of the current open; tags thread-local read txns */
    uint64_t map_size;
    unsigned flags; /* env flags besides NOSYNC */
    bool nometasync;
    bool opened_sync;
    pthread_mutex_t mu; /* guards readers */
    struct lmr *readers;
    char desc[160];
};

struct lmb_tl {
    const struct lmb *owner;
    uint64_t gen;
    MDB_txn *txn;
};

static _Thread_local struct lmb_tl lmb_tl;
static atomic_uint_fast64_t lmb_gen; /* distinct for every open */

struct lmb_iter {
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_cursor_op op;
};

static int
lmb_status(int rc)
{
    return rc == MDB_NOTFOUND   ? KVD_ENOTFOUND
           : rc == ENOMEM       ? KVD_ENOMEM
           : rc == MDB_MAP_FULL ? KVD_ENOSPC
                                : KVD_EIO;
}

static const char *
lmb_describe(void *b)
{
    return ((struct lmb *)b)->desc;
}

static int
lmb_open(void *b, const char *dir, bool syncmode, struct kvd_err *err)
{
    struct lmb *l = b;
    unsigned flags = l->flags | MDB_NOTLS;
    MDB_txn *txn = NULL;
    int rc;

    if (!syncmode) {
        flags |= MDB_NOSYNC;
    } else if (l->nometasync) {
        flags |= MDB_NOMETASYNC;
    }
    rc = mdb_env_create(&l->env);
    if (rc == 0) {
        rc = mdb_env_set_mapsize(l->env, (size_t)l->map_size);
    }
    if (rc == 0) {
        rc = mdb_env_set_maxreaders(l->env, 1024);
    }
    if (rc == 0) {
        rc = mdb_env_open(l->env, dir, flags, 0644);
    }
    if (rc == 0) {
        rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    }
    if (rc == 0) {
        rc = mdb_dbi_open(txn, NULL, 0, &l->dbi);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc != 0) {
        if (txn != NULL) {
            mdb_txn_abort(txn);
        }
        if (l->env != NULL) {
            mdb_env_close(l->env);
            l->env = NULL;
        }
        return kvd_err_set(err, KVD_EIO, "lmdb open %s: %s", dir,
                           mdb_strerror(rc));
    }
    l->opened_sync = syncmode;
    l->gen = atomic_fetch_add(&lmb_gen, 1) + 1;
    return 0;
}

static int
lmb_close(void *b, struct kvd_err *err)
{
    struct lmb *l = b;

    (void)err;
    pthread_mutex_lock(&l->mu);
    while (l->readers != NULL) {
        struct lmr *r = l->readers;
        l->readers = r->next;
        mdb_txn_abort(r->txn);
        free(r);
    }
    pthread_mutex_unlock(&l->mu);
    if (l->env != NULL) {
        mdb_env_close(l->env);
        l->env = NULL;
    }
    return 0;
}

static const char *
lmb_sync_how(void *b)
{
    return ((struct lmb *)b)->nometasync
               ? "one transaction per put, MDB_NOMETASYNC"
               : "one transaction per put, synced at commit";
}

static bool
lmb_persistent(void *b)
{
    (void)b;
    return true;
}

static int
lmb_put(void *b, const void *key, size_t klen, const void *val, size_t vlen,
        bool sync)
{
    struct lmb *l = b;
    MDB_val k = {klen, (void *)key};
    MDB_val v = {vlen, (void *)val};
    MDB_txn *txn;
    int rc;

    rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc != 0) {
        return lmb_status(rc);
    }
    rc = mdb_put(txn, l->dbi, &k, &v, 0);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lmb_status(rc);
    }
    rc = mdb_txn_commit(txn);
    if (rc == 0 && sync && !l->opened_sync) {
        rc = mdb_env_sync(l->env, 1);
    }
    return rc == 0 ? 0 : lmb_status(rc);
}

/* This thread's read transaction, renewed; NULL and *rc on failure. */
static MDB_txn *
lmb_reader(struct lmb *l, int *rc)
{
    struct lmr *r;

    if (lmb_tl.owner == l && lmb_tl.gen == l->gen) {
        *rc = mdb_txn_renew(lmb_tl.txn);
        return *rc == 0 ? lmb_tl.txn : NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        *rc = ENOMEM;
        return NULL;
    }
    *rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &r->txn);
    if (*rc != 0) {
        free(r);
        return NULL;
    }
    pthread_mutex_lock(&l->mu);
    r->next = l->readers;
    l->readers = r;
    pthread_mutex_unlock(&l->mu);
    lmb_tl.owner = l;
    lmb_tl.gen = l->gen;
    lmb_tl.txn = r->txn;
    return r->txn;
}

static int
lmb_get(void *b, const void *key, size_t klen, size_t *vlen)
{
    struct lmb *l = b;
    MDB_val k = {klen, (void *)key};
    MDB_val v;
    MDB_txn *txn;
    int rc;

    txn = lmb_reader(l, &rc);
    if (txn == NULL) {
        return lmb_status(rc);
    }
    rc = mdb_get(txn, l->dbi, &k, &v);
    if (rc == 0) {
        *vlen = v.mv_size;
    }
    mdb_txn_reset(txn);
    return rc == 0 ? 0 : lmb_status(rc);
}

static int
lmb_del(void *b, const void *key, size_t klen)
{
    struct lmb *l = b;
    MDB_val k = {klen, (void *)key};
    MDB_txn *txn;
    int rc;

    rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc != 0) {
        return lmb_status(rc);
    }
    rc = mdb_del(txn, l->dbi, &k, NULL);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lmb_status(rc);
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? 0 : lmb_status(rc);
}

static int
lmb_iter_open(void *b, void **out, struct kvd_err *err)
{
    struct lmb *l = b;
    struct lmb_iter *it = calloc(1, sizeof(*it));
    int rc;

    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory for an iterator");
    }
    rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &it->txn);
    if (rc == 0) {
        rc = mdb_cursor_open(it->txn, l->dbi, &it->cur);
        if (rc != 0) {
            mdb_txn_abort(it->txn);
        }
    }
    if (rc != 0) {
        free(it);
        return kvd_err_set(err, lmb_status(rc), "lmdb iterator: %s",
                           mdb_strerror(rc));
    }
    it->op = MDB_FIRST;
    *out = it;
    return 0;
}

static int
lmb_iter_next(void *p, size_t *klen, size_t *vlen)
{
    struct lmb_iter *it = p;
    MDB_val k;
    MDB_val v;
    int rc = mdb_cursor_get(it->cur, &k, &v, it->op);

    it->op = MDB_NEXT;
    if (rc != 0) {
        return lmb_status(rc);
    }
    *klen = k.mv_size;
    *vlen = v.mv_size;
    return 0;
}

static void
lmb_iter_close(void *p)
{
    struct lmb_iter *it = p;

    if (it != NULL) {
        mdb_cursor_close(it->cur);
        mdb_txn_abort(it->txn);
        free(it);
    }
}

static int
lmb_compact(void *b, struct kvd_err *err)
{
    (void)b;
    return kvd_err_set(err, KVD_ENOTSUP,
                       "LMDB has no in-place compaction (mdb_env_copy2 "
                       "with MDB_CP_COMPACT writes a copy)");
}

static int
lmb_stats(void *b, struct kvb_stats *st, kvb_counter_fn fn, void *ctx)
{
    struct lmb *l = b;
    MDB_stat ms;
    MDB_envinfo info;
    MDB_txn *txn;
    int rc;

    st->keys = UINT64_MAX;
    st->value_bytes = UINT64_MAX;
    st->disk_bytes = UINT64_MAX;
    st->mem_bytes = UINT64_MAX;
    rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return lmb_status(rc);
    }
    rc = mdb_stat(txn, l->dbi, &ms);
    mdb_txn_abort(txn);
    if (rc != 0) {
        return lmb_status(rc);
    }
    st->keys = ms.ms_entries;
    if (mdb_env_info(l->env, &info) == 0) {
        st->disk_bytes = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    }
    if (fn != NULL) {
        fn(ctx, "depth", ms.ms_depth);
        fn(ctx, "branch_pages", ms.ms_branch_pages);
        fn(ctx, "leaf_pages", ms.ms_leaf_pages);
        fn(ctx, "overflow_pages", ms.ms_overflow_pages);
    }
    return 0;
}

static void
lmb_destroy(void *b)
{
    struct lmb *l = b;

    if (l != NULL) {
        lmb_close(l, NULL);
        pthread_mutex_destroy(&l->mu);
        free(l);
    }
}

static const struct kvb_ops lmb_ops = {
    .del_reports_absent = true,
    .describe = lmb_describe,
    .open = lmb_open,
    .close = lmb_close,
    .sync_how = lmb_sync_how,
    .persistent = lmb_persistent,
    .put = lmb_put,
    .get = lmb_get,
    .del = lmb_del,
    .iter_open = lmb_iter_open,
    .iter_next = lmb_iter_next,
    .iter_close = lmb_iter_close,
    .compact = lmb_compact,
    .stats = lmb_stats,
    .destroy = lmb_destroy,
};

static int
lmb_flag(const struct kvb_kv *kv, bool *on, struct kvd_err *err)
{
    if (strcmp(kv->value, "0") != 0 && strcmp(kv->value, "1") != 0) {
        return kvd_err_set(err, KVD_ECONFIG, "--opt %s=%s: expected 0 or 1",
                           kv->key, kv->value);
    }
    *on = kv->value[0] == '1';
    return 0;
}

static int
lmb_apply(struct lmb *l, const struct kvb_kv *kv, struct kvd_err *err)
{
    bool on = false;
    int rc;

    if (strcmp(kv->key, "map_size") == 0) {
        if (kvb_parse_size(kv->value, &l->map_size) != 0 ||
            l->map_size < (1u << 20)) {
            return kvd_err_set(err, KVD_ECONFIG,
                               "--opt map_size=%s: expected a size of at "
                               "least 1m",
                               kv->value);
        }
        return 0;
    }
    if (strcmp(kv->key, "writemap") == 0 || strcmp(kv->key, "nordahead") == 0) {
        unsigned f = kv->key[0] == 'w' ? MDB_WRITEMAP : MDB_NORDAHEAD;
        rc = lmb_flag(kv, &on, err);
        if (rc == 0) {
            l->flags = on ? l->flags | f : l->flags & ~f;
        }
        return rc;
    }
    if (strcmp(kv->key, "nometasync") == 0) {
        return lmb_flag(kv, &l->nometasync, err);
    }
    return kvd_err_set(err, KVD_ECONFIG,
                       "--opt %s: unknown lmdb option: expected map_size, "
                       "writemap, nometasync or nordahead",
                       kv->key);
}

int
kvb_lmdb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                void **out, struct kvd_err *err)
{
    struct lmb *l;
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
    pthread_mutex_init(&l->mu, NULL);
    l->map_size = KVB_LMDB_DEFAULT_MAP;
    for (size_t i = 0; i < s->nopts; i++) {
        rc = lmb_apply(l, &s->opts[i], err);
        if (rc != 0) {
            lmb_destroy(l);
            return rc;
        }
    }
    snprintf(l->desc, sizeof(l->desc),
             "%s (MDB_NOSYNC except fillsync; map %llu MiB%s%s)",
             MDB_VERSION_STRING, (unsigned long long)(l->map_size >> 20),
             (l->flags & MDB_WRITEMAP) ? ", MDB_WRITEMAP" : "",
             (l->flags & MDB_NORDAHEAD) ? ", MDB_NORDAHEAD" : "");
    *ops = &lmb_ops;
    *out = l;
    return 0;
}

#else /* !KVB_HAVE_LMDB */

int
kvb_lmdb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                void **out, struct kvd_err *err)
{
    (void)s;
    (void)ops;
    *out = NULL;
    return kvd_err_set(err, KVD_ENOTSUP,
                       "kvbench was built without LMDB (lmdb.h not found; "
                       "install liblmdb-dev and rebuild)");
}

#endif /* KVB_HAVE_LMDB */
