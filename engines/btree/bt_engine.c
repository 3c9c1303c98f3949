/*
 * bt_engine.c -- the "btree" engine: a copy-on-write B+tree in one file
 * of fixed-size pages, read through a read-only map without locks.
 *
 * Format: docs/formats.md ("btree engine"); internals: bt.h. Crash story:
 * a commit writes only pages no durable tree uses, then a checksummed
 * meta page in the slot not holding the last commit; open takes the newer
 * valid meta that checks out against the file, else the older one
 * (bt_commit.c, bt_file.c). Durability per `sync`: always (group commit,
 * fdatasync before the reply), everysec (a commit with fdatasync every
 * sync_interval), never (a commit every commit_interval, no fdatasync).
 * A failed write or fdatasync turns the engine read-only.
 *
 * Threads: any number of callers; readers lock nothing; writers take wmu
 * (sync = always: through the group-commit queue, qmu then wmu); one
 * background thread commits for everysec and never, releasing wmu while
 * it syncs (bt_commit), so writers do not wait for the disk.
 *
 * This file: options, open/close, the operations' argument checks, stats,
 * sync, maintain, and the exported vtable (last).
 */
#include "bt.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "kvd/kit_clock.h"
#include "kvd/kit_file.h"
#include "kvd/kit_lock.h"

#define BT_VERSION "0.1.0"

/* ---- options ---- */

static const char *const bt_sync_choices[] = {"always", "everysec", "never",
                                              NULL};

static const struct kvd_option bt_options[] = {
    {"sync", KVD_OPT_ENUM, "everysec", 0, 0, offsetof(struct bt_opts, sync),
     bt_sync_choices,
     "always: a write is committed and fdatasynced before it is "
     "acknowledged (concurrent writers share one commit); everysec: a "
     "commit with fdatasync every sync_interval (a crash loses at most "
     "about that much); never: a commit every commit_interval without "
     "fdatasync (a process crash loses at most that much; a power loss "
     "may lose more)"},
    {"sync_interval", KVD_OPT_DURATION, "1s", 10, 60000,
     offsetof(struct bt_opts, sync_interval), NULL,
     "time between commits for sync = everysec"},
    {"commit_interval", KVD_OPT_DURATION, "100ms", 1, 60000,
     offsetof(struct bt_opts, commit_interval), NULL,
     "time between commits for sync = never"},
    {"page_size", KVD_OPT_SIZE, "4k", BT_MIN_PAGE_BYTES, BT_MAX_PAGE_BYTES,
     offsetof(struct bt_opts, page_size), NULL,
     "bytes per page (a power of two) of a new data file; an existing file "
     "keeps its own"},
    {"dirty_limit", KVD_OPT_SIZE, "32m", 65536, 1LL << 40,
     offsetof(struct bt_opts, dirty_limit), NULL,
     "in-memory pages of uncommitted changes past which a writer writes "
     "them to the file"},
    {"fill_percent", KVD_OPT_INT, "90", 50, 100,
     offsetof(struct bt_opts, fill_percent), NULL,
     "how full compaction packs pages (room left for later inserts)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

static int
check_opts(const struct bt_opts *o, struct kvd_err *err)
{
    if (o->sync < BT_SYNC_ALWAYS || o->sync > BT_SYNC_NEVER) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "btree: sync = %d: expected always, everysec or "
                           "never",
                           o->sync);
    }
    if (o->page_size < BT_MIN_PAGE_BYTES || o->page_size > BT_MAX_PAGE_BYTES ||
        (o->page_size & (o->page_size - 1)) != 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "btree: page_size = %llu: expected a power of two "
                           "from 2k to 32k",
                           (unsigned long long)o->page_size);
    }
    if (o->sync_interval < 10 || o->commit_interval < 1) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "btree: sync_interval must be at least 10 ms and "
                           "commit_interval at least 1 ms");
    }
    if (o->fill_percent < 50 || o->fill_percent > 100) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "btree: fill_percent = %lld: expected 50 to 100",
                           (long long)o->fill_percent);
    }
    return 0;
}

/* vtable check_options: the same rules before open (kvd --check-config). */
static int
bt_check_options(const void *opts, const char **key, struct kvd_err *err)
{
    (void)key; /* the messages name their options */
    return check_opts((const struct bt_opts *)opts, err);
}

/* ---- open / close ---- */

static void
db_destroy(bt_db *db)
{
    if (db == NULL) {
        return;
    }
    if (db->work.root & BT_REF_MEM) {
        /* in-memory pages still in the tree (read-only after a failed
         * write): free them with the rest */
        struct bt_vec64 stack = {0};
        bt_vec_push(&stack, db->work.root);
        while (stack.n > 0) {
            uint64_t ref = stack.v[--stack.n];
            struct bt_mpage *mp;
            if (!(ref & BT_REF_MEM)) {
                continue;
            }
            mp = (struct bt_mpage *)(uintptr_t)(ref & ~BT_REF_MEM);
            if (BT_PG_TYPE(BT_MP_DATA(mp)) == BT_PAGE_BRANCH) {
                for (unsigned i = 0; i < BT_PG_N(BT_MP_DATA(mp)); i++) {
                    bt_vec_push(&stack, bt_branch_child(BT_MP_DATA(mp), i));
                }
            }
            free(mp);
        }
        bt_vec_free(&stack);
    }
    free(atomic_load(&db->cur));
    bt_pool_free_all(db);
    bt_file_close(db);
    kvd_dirlock_release(db->io, db->lock_fd);
    bt_vec_free(&db->ready);
    free(db->freed.v);
    bt_vec_free(&db->chain);
    bt_vec_free(&db->runs);
    bt_vec_free(&db->created);
    bt_vec_free(&db->ovf_vers);
    free(db->slots);
    free(db->scratch);
    free(db->metabuf);
    free(db->recbuf);
    free(db->wbuf);
    free(db->ents);
    free(db->dir);
    pthread_mutex_destroy(&db->ovf_mu);
    pthread_mutex_destroy(&db->wmu);
    pthread_mutex_destroy(&db->qmu);
    pthread_cond_destroy(&db->commit_cv);
    free(db);
}

static int
bt_open(const struct kvd_host *host, const void *opts, const char *dir,
        kvd_engine **out, struct kvd_err *err)
{
    bt_db *db;
    int rc;

    if (opts == NULL || dir == NULL) {
        return kvd_err_set(err, KVD_EINVAL,
                           "btree: options and directory are required");
    }
    rc = check_opts(opts, err);
    if (rc != 0) {
        return rc;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "btree: out of memory");
    }
    db->host = host;
    db->io = host->io;
    db->opts = *(const struct bt_opts *)opts;
    db->fd = -1;
    db->lock_fd = -1;
    pthread_mutex_init(&db->ovf_mu, NULL);
    pthread_mutex_init(&db->wmu, NULL);
    pthread_mutex_init(&db->qmu, NULL);
    pthread_cond_init(&db->commit_cv, NULL);
    atomic_init(&db->cur, NULL);
    atomic_init(&db->ver, 0);
    atomic_init(&db->readonly, 0);
    db->dir = strdup(dir);
    db->slots = aligned_alloc(64, BT_NSLOTS * sizeof(struct bt_slot));
    if (db->dir == NULL || db->slots == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "btree: out of memory");
        goto fail;
    }
    for (unsigned i = 0; i < BT_NSLOTS; i++) {
        atomic_init(&db->slots[i].ver, BT_SLOT_FREE);
    }
    /* one open store per directory (made if missing) */
    rc = kvd_dirlock_acquire(db->io, dir, "btree", &db->lock_fd, err);
    if (rc != 0) {
        goto fail;
    }
    db->psize = (size_t)db->opts.page_size;
    db->scratch = malloc(BT_MAX_PAGE_BYTES);
    if (db->scratch == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "btree: out of memory");
        goto fail;
    }
    rc = bt_file_open(db, err);
    if (rc != 0) {
        goto fail;
    }
    db->max_rec = (db->psize - BT_HDR_BYTES) / 3 - BT_SLOT_BYTES;
    db->recbuf = malloc(db->psize);
    db->wbuf = malloc(BT_WRITE_CHUNK);
    db->metabuf = malloc(db->psize);
    db->ents = malloc((db->psize / BT_SLOT_BYTES + 4) * sizeof(struct bt_ent));
    if (db->recbuf == NULL || db->wbuf == NULL || db->ents == NULL ||
        db->metabuf == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "btree: out of memory");
        goto fail;
    }
    rc = bt_publish(db);
    if (rc == 0) {
        db->commit_ver = db->pub_ver;
        rc = bt_committer_start(db);
    }
    if (rc != 0) {
        rc = kvd_err_set(err, rc, "btree: cannot start");
        goto fail;
    }
    *out = db;
    return 0;
fail:
    db_destroy(db);
    return rc;
}

static int
bt_close(kvd_engine *db, struct kvd_err *err)
{
    int rc = 0;

    if (db == NULL) {
        return 0;
    }
    bt_committer_stop(db);
    pthread_mutex_lock(&db->wmu);
    if (!atomic_load(&db->readonly) &&
        (db->commit_ver != db->pub_ver || db->dirty > 0)) {
        rc = bt_flush(db, true, true);
        if (rc != 0) {
            kvd_err_set(err, rc, "btree: final commit failed: %s", db->state);
        }
    }
    pthread_mutex_unlock(&db->wmu);
    db_destroy(db);
    return rc;
}

/* ---- operations ---- */

static int
check_key(size_t klen)
{
    if (klen == 0) {
        return KVD_EINVAL;
    }
    return klen > BT_MAX_KEY_BYTES ? KVD_ETOOBIG : 0;
}

static int
bt_get_op(kvd_engine *db, const void *key, size_t klen, struct kvd_val *out)
{
    int rc = check_key(klen);

    return rc != 0 ? rc : bt_get(db, key, klen, out);
}

static int
bt_put_op(kvd_engine *db, const void *key, size_t klen, const void *val,
          size_t vlen, int64_t expire_ms)
{
    struct kvd_mop m;
    int rc = check_key(klen);

    if (rc != 0) {
        return rc;
    }
    if (vlen > BT_MAX_VALUE_BYTES) {
        return KVD_ETOOBIG;
    }
    if (expire_ms < 0) {
        return KVD_EINVAL;
    }
    memset(&m, 0, sizeof(m));
    m.type = KVD_MOP_PUT;
    m.key = key;
    m.klen = klen;
    m.val = val;
    m.vlen = vlen;
    m.expire_ms = expire_ms;
    rc = bt_group_write(db, &m, 1, NULL, 0, NULL);
    return rc != 0 ? rc : m.status;
}

static int
bt_del_op(kvd_engine *db, const void *key, size_t klen)
{
    struct kvd_mop m;
    int rc = check_key(klen);

    if (rc != 0) {
        return rc;
    }
    memset(&m, 0, sizeof(m));
    m.type = KVD_MOP_DEL;
    m.key = key;
    m.klen = klen;
    rc = bt_group_write(db, &m, 1, NULL, 0, NULL);
    return rc != 0 ? rc : m.status;
}

static int
bt_batch_op(kvd_engine *db, const struct kvd_op *ops, size_t n,
            struct kvd_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct kvd_op *op = &ops[i];
        int rc;
        if (op->type != KVD_OP_PUT && op->type != KVD_OP_DEL) {
            return kvd_err_set(err, KVD_EINVAL, "batch op %zu: unknown type %d",
                               i, op->type);
        }
        rc = check_key(op->klen);
        if (rc != 0) {
            return kvd_err_set(err, rc, "batch op %zu: key of %zu bytes: %s", i,
                               op->klen,
                               op->klen == 0 ? "empty key" : "too long");
        }
        if (op->type == KVD_OP_PUT) {
            if (op->vlen > BT_MAX_VALUE_BYTES) {
                return kvd_err_set(err, KVD_ETOOBIG,
                                   "batch op %zu: value of %zu bytes is over "
                                   "the limit of %u",
                                   i, op->vlen, BT_MAX_VALUE_BYTES);
            }
            if (op->expire_ms < 0) {
                return kvd_err_set(err, KVD_EINVAL,
                                   "batch op %zu: negative expiry", i);
            }
        }
    }
    if (n == 0) {
        return 0;
    }
    return bt_group_write(db, NULL, 0, ops, n, err);
}

static int
bt_multi_op(kvd_engine *db, struct kvd_mop *ops, size_t n)
{
    size_t writes = 0;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        memset(&ops[i].out, 0, sizeof(ops[i].out));
        ops[i].status = KVD_EAGAIN;
        writes += ops[i].type != KVD_MOP_GET;
    }
    /* the writes (and the gets a later write of their key must not
     * see) go through the writer; the other gets read the published
     * snapshot afterwards, lock-free */
    if (writes > 0) {
        rc = bt_group_write(db, ops, n, NULL, 0, NULL);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (ops[i].type == KVD_MOP_GET && ops[i].status == KVD_EAGAIN) {
            ops[i].status = bt_get(db, ops[i].key, ops[i].klen, &ops[i].out);
        }
    }
    return rc;
}

static int
bt_iter_open_op(kvd_engine *db, const struct kvd_iter_opts *o, kvd_iter **out,
                struct kvd_err *err)
{
    return bt_iter_open(db, o, out, err);
}

/* ---- stats, sync, maintain, clear ---- */

static int
bt_stats(kvd_engine *db, struct kvd_engine_stats *st, kvd_stat_fn fn, void *ctx)
{
    struct bt_reader rd;
    struct stat fs;
    uint64_t nfree, minv, age_ms = 0, depth, npages, records;
    const struct bt_snap *s;

    bt_reader_enter(db, &rd);
    s = rd.snap;
    if (s->expiring == 0) {
        st->keys = s->records;
        st->key_bytes = s->key_bytes;
        st->value_bytes = s->value_bytes;
    } else {
        bt_count_live(db, s, db->host->now_ms(db->host), &st->keys,
                      &st->key_bytes, &st->value_bytes);
    }
    depth = s->depth;
    npages = s->npages;
    records = s->records;
    bt_reader_leave(db, &rd);

    pthread_mutex_lock(&db->wmu);
    nfree = db->ready.n + db->freed.n;
    minv = bt_min_reader(db);
    if (minv < db->pub_ver) {
        for (const struct bt_snap *o = db->sretire_head; o != NULL;
             o = o->next) {
            if (o->ver >= minv) {
                age_ms = (uint64_t)(kvd_mono_us(db->host) - o->born_us) / 1000;
                break;
            }
        }
    }
    st->disk_bytes = fstat(db->fd, &fs) == 0 ? (uint64_t)fs.st_size : 0;
    st->mem_bytes = (uint64_t)db->mem_pages * (db->psize + BT_MPAGE_HDR) +
                    BT_NSLOTS * sizeof(struct bt_slot) +
                    (db->ready.cap + db->chain.cap) * sizeof(uint64_t) +
                    db->freed.cap * sizeof(struct bt_freed);
    st->readonly = atomic_load(&db->readonly);
    st->ready = 1;
    snprintf(st->state, sizeof(st->state), "%s", st->readonly ? db->state : "");
    if (fn != NULL) {
        fn(ctx, "records", records);
        fn(ctx, "pages", npages);
        fn(ctx, "free_pages", nfree);
        fn(ctx, "page_size", db->psize);
        fn(ctx, "depth", depth);
        fn(ctx, "oldest_snapshot_age_ms", age_ms);
        fn(ctx, "mem_pages", db->mem_pages);
        fn(ctx, "dirty_pages", db->dirty);
        fn(ctx, "commits_total", db->commits);
        fn(ctx, "flushes_total", db->flushes);
        fn(ctx, "syncs_total", db->syncs);
        fn(ctx, "pages_written_total", db->pages_written);
        fn(ctx, "compactions_total", db->compactions);
        fn(ctx, "txn", db->txn);
    }
    pthread_mutex_unlock(&db->wmu);
    return 0;
}

static int
bt_sync_op(kvd_engine *db, struct kvd_err *err)
{
    int rc = 0;

    pthread_mutex_lock(&db->wmu);
    /* a commit under way may cover everything: wait for it first */
    bt_commit_wait(db);
    if (atomic_load(&db->readonly)) {
        rc = kvd_err_set(err, KVD_EREADONLY, "%s", db->state);
    } else if (db->commit_ver != db->pub_ver || db->durable != db->txn ||
               db->opts.sync == BT_SYNC_NEVER) {
        rc = bt_commit(db, true);
        if (rc != 0) {
            kvd_err_set(err, rc, "%s", db->state);
        }
    }
    pthread_mutex_unlock(&db->wmu);
    return rc;
}

/* Delete every expired record (under wmu). */
static int
expire_all(bt_db *db)
{
    struct bt_snap s = db->work;
    int64_t now = db->host->now_ms(db->host);
    struct bt_vec64 offs = {0};
    unsigned char *keys = NULL;
    size_t used = 0, cap = 0;
    kvd_iter *it;
    struct kvd_entry e;
    int rc;

    if (db->work.expiring == 0) {
        return 0;
    }
    s.map = db->map;
    /* collect the keys first: the tree changes as they are deleted */
    rc = bt_iter_open_at(db, &s, true, &it);
    if (rc != 0) {
        return rc;
    }
    while (rc == 0 && bt_iter_next(it, &e) == 0) {
        if (e.expire_ms == 0 || e.expire_ms > now) {
            continue;
        }
        if (used + e.klen + 2 > cap) {
            size_t nc = cap ? cap * 2 : 4096;
            while (nc < used + e.klen + 2) {
                nc *= 2;
            }
            unsigned char *nk = realloc(keys, nc);
            if (nk == NULL) {
                rc = KVD_ENOMEM;
                break;
            }
            keys = nk;
            cap = nc;
        }
        bt_put16(keys + used, (uint16_t)e.klen);
        memcpy(keys + used + 2, e.key, e.klen);
        rc = bt_vec_push(&offs, used);
        used += e.klen + 2;
    }
    bt_iter_close(it);
    for (size_t i = 0; rc == 0 && i < offs.n; i++) {
        struct bt_mark mk;
        unsigned char *k = keys + offs.v[i];
        bt_mark(db, &mk);
        rc = bt_apply_del(db, k + 2, bt_get16(k), now);
        if (rc == KVD_ENOTFOUND) {
            rc = 0;
        } else if (rc != 0) {
            bt_rollback(db, &mk);
        }
    }
    free(keys);
    bt_vec_free(&offs);
    if (rc == 0) {
        rc = bt_publish(db);
    }
    if (rc == 0) {
        rc = db->opts.sync == BT_SYNC_ALWAYS ? bt_flush(db, true, true)
                                             : bt_commit_policy(db);
    }
    return rc;
}

static int
bt_maintain(kvd_engine *db, int op, struct kvd_err *err)
{
    int rc;

    if (op != KVD_MAINT_COMPACT && op != KVD_MAINT_EXPIRE) {
        return kvd_err_set(err, KVD_ENOTSUP, "btree: maintenance op %d", op);
    }
    pthread_mutex_lock(&db->wmu);
    if (atomic_load(&db->readonly)) {
        pthread_mutex_unlock(&db->wmu);
        return kvd_err_set(err, KVD_EREADONLY, "%s", db->state);
    }
    if (op == KVD_MAINT_EXPIRE) {
        rc = expire_all(db);
        if (rc != 0) {
            kvd_err_set(err, rc, "btree: expiry sweep failed");
        }
    } else {
        rc = bt_compact(db, err);
    }
    pthread_mutex_unlock(&db->wmu);
    return rc;
}

static int
bt_clear_op(kvd_engine *db, struct kvd_err *err)
{
    struct bt_mark mk;
    int rc;

    pthread_mutex_lock(&db->wmu);
    if (atomic_load(&db->readonly)) {
        pthread_mutex_unlock(&db->wmu);
        return kvd_err_set(err, KVD_EREADONLY, "%s", db->state);
    }
    bt_mark(db, &mk);
    rc = bt_apply_clear(db);
    if (rc != 0) {
        bt_rollback(db, &mk);
    } else {
        rc = bt_publish(db);
    }
    if (rc == 0) {
        rc = db->opts.sync == BT_SYNC_ALWAYS ? bt_flush(db, true, true)
                                             : bt_commit_policy(db);
    }
    if (rc != 0) {
        kvd_err_set(err, rc, "btree: clear failed");
    }
    pthread_mutex_unlock(&db->wmu);
    return rc;
}

KVD_EXPORT const struct kvd_engine_vtable kvd_engine_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_engine_vtable),
    .name = "btree",
    .version = BT_VERSION,
    .description = "copy-on-write B+tree in one file of pages: lock-free "
                   "snapshot reads through a read-only map, group commit, "
                   "ordered",
    .caps = KVD_CAP_PERSISTENT | KVD_CAP_ORDERED | KVD_CAP_ATOMIC_BATCH |
            KVD_CAP_SNAPSHOT_ITER,
    .max_key_bytes = BT_MAX_KEY_BYTES,
    .max_value_bytes = BT_MAX_VALUE_BYTES,
    .options = bt_options,
    .options_size = sizeof(struct bt_opts),
    .open = bt_open,
    .close = bt_close,
    .get = bt_get_op,
    .put = bt_put_op,
    .del = bt_del_op,
    .batch = bt_batch_op,
    .iter_open = bt_iter_open_op,
    .iter_next = bt_iter_next,
    .iter_close = bt_iter_close,
    .stats = bt_stats,
    .sync = bt_sync_op,
    .maintain = bt_maintain,
    .clear = bt_clear_op,
    .instance_caps = NULL,
    .multi = bt_multi_op,
    .check_options = bt_check_options,
};
