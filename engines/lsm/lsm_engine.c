/*
 * lsm_engine.c -- the "lsm" engine: a log-structured merge tree. Writes go
 * to a write-ahead log and a skip-list memtable; full memtables become
 * level-0 SSTables; a background thread merges tables down a leveled
 * hierarchy (L1 = 10 MiB, x10 per level). Reads look in the memtables,
 * then level 0 newest first, then one table per deeper level, skipping
 * tables by key range and bloom filter, with a block cache in front.
 *
 * On-disk format: lsm_wal.h (WAL, MANIFEST), lsm_version.h (edits),
 * lsm_table.h (SSTables); docs/formats.md has all of it. Crash story:
 * records carry crc32c; recovery cuts a torn WAL tail (lsm_recover.c);
 * new files appear by tmp + fsync + rename + directory fsync; the table
 * set changes only through edits synced to the MANIFEST before anything
 * acts on them. Durability: sync = always (group commit before the
 * reply), everysec (background fdatasync) or never. A failed write or
 * fsync turns the engine read-only.
 *
 * Threads: any number of callers; one background thread for flushes and
 * compactions; one more for sync = everysec. Lock order in lsm_db.h.
 *
 * This file: options table, open/close, views, get, stats, sync,
 * maintain, and the exported vtable (last). put, del, batch and multi
 * are in lsm_write.c.
 */
#include "lsm_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define LSM_VERSION           "1.0.0"
#define LSM_RESTART_INTERVAL  16
#define LSM_STATS_SAMPLE_KEYS 10000

/* ---- options ---- */

static const char *const lsm_sync_choices[] = {"always", "everysec", "never",
                                               NULL};
static const char *const lsm_corrupt_choices[] = {"stop", "skip", "paranoid",
                                                  NULL};

static const struct kvd_option lsm_options[] = {
    {"sync", KVD_OPT_ENUM, "everysec", 0, 0, offsetof(struct lsm_opts, sync),
     lsm_sync_choices,
     "always: fdatasync the WAL before a write is acknowledged (concurrent "
     "writers share one fdatasync); everysec: a background fdatasync every "
     "sync_interval (a crash loses at most about that much); never: leave "
     "flushing to the OS"},
    {"sync_interval", KVD_OPT_DURATION, "1s", 10, 60000,
     offsetof(struct lsm_opts, sync_interval), NULL,
     "interval of the background fdatasync for sync = everysec"},
    {"memtable_size", KVD_OPT_SIZE, "4m", 4096, 1LL << 30,
     offsetof(struct lsm_opts, memtable_size), NULL,
     "a memtable is frozen and flushed to a level-0 table once it holds "
     "this many bytes (at most two exist: one filling, one flushing)"},
    {"block_size", KVD_OPT_SIZE, "4k", 256, 1LL << 20,
     offsetof(struct lsm_opts, block_size), NULL,
     "target size of an SSTable data block (the unit of reads and of the "
     "block cache)"},
    {"block_cache_size", KVD_OPT_SIZE, "64m", 0, 0,
     offsetof(struct lsm_opts, block_cache_size), NULL,
     "bytes of data blocks kept in memory (LRU); 0 reads every block from "
     "the file"},
    {"bloom_bits_per_key", KVD_OPT_INT, "10", 0, 32,
     offsetof(struct lsm_opts, bloom_bits_per_key), NULL,
     "bits of bloom filter per key in every table (10 gives about 1% false "
     "positives); 0 = no filter"},
    {"l0_compaction_trigger", KVD_OPT_INT, "4", 1, 64,
     offsetof(struct lsm_opts, l0_compaction_trigger), NULL,
     "level-0 tables that start a merge into level 1"},
    {"l0_slowdown", KVD_OPT_INT, "8", 1, 1000,
     offsetof(struct lsm_opts, l0_slowdown), NULL,
     "level-0 tables at which each write is delayed by 1 ms (logged), so "
     "compaction catches up before l0_stop"},
    {"l0_stop", KVD_OPT_INT, "12", 1, 1000, offsetof(struct lsm_opts, l0_stop),
     NULL, "level-0 tables at which writes wait for compaction (logged)"},
    {"level1_size", KVD_OPT_SIZE, "10m", 16384, 1LL << 40,
     offsetof(struct lsm_opts, level1_size), NULL,
     "bytes level 1 may hold before it is merged down; each deeper level "
     "holds ten times more"},
    {"table_size", KVD_OPT_SIZE, "2m", 4096, 1LL << 30,
     offsetof(struct lsm_opts, table_size), NULL,
     "target size of a table written by compaction"},
    {"corruption", KVD_OPT_ENUM, "stop", 0, 0,
     offsetof(struct lsm_opts, corruption), lsm_corrupt_choices,
     "a damaged WAL record that valid ones follow (a torn tail of the newest "
     "WAL is always cut): stop = recover up to the last good batch and log "
     "what was lost; skip = leave out the damaged bytes and replay the "
     "rest; paranoid = refuse to open"},
    {"max_open_files", KVD_OPT_INT, "1000", 16, 1000000,
     offsetof(struct lsm_opts, max_open_files), NULL,
     "table files kept open (their index and filter in memory); others are "
     "opened when needed"},
    {"auto_compaction", KVD_OPT_BOOL, "yes", 0, 0,
     offsetof(struct lsm_opts, auto_compact), NULL,
     "merge tables in the background; with no, only memtable flushes run "
     "by themselves and tables are merged on request (COMPACT)"},
    {"stats_scan_limit", KVD_OPT_INT, "4000000", 0, INT64_MAX,
     offsetof(struct lsm_opts, stats_scan_limit), NULL,
     "stats count live keys exactly (a scan, cached until the next write) "
     "while the store holds at most this many entries; above, keys and "
     "bytes are estimates from a sample"},
    {"manifest_size", KVD_OPT_SIZE, "64m", 4096, 1LL << 40,
     offsetof(struct lsm_opts, manifest_size), NULL,
     "the MANIFEST (the log of table-set changes) is rewritten as one "
     "snapshot record in a new file once it grows past this size"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* ---- views ---- */

struct lsm_view *
lsm_view_get(lsm_db *db, uint64_t *snap)
{
    struct lsm_view *vw;

    pthread_mutex_lock(&db->mu);
    vw = db->view;
    atomic_fetch_add_explicit(&vw->refs, 1, memory_order_relaxed);
    if (snap != NULL) {
        *snap = atomic_load_explicit(&db->visible_seq, memory_order_acquire);
    }
    pthread_mutex_unlock(&db->mu);
    return vw;
}

void
lsm_view_put(struct lsm_view *vw)
{
    if (vw == NULL ||
        atomic_fetch_sub_explicit(&vw->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    lsm_mem_unref(vw->mem);
    lsm_mem_unref(vw->imm);
    lsm_version_unref(vw->v);
    free(vw);
}

int
lsm_view_install_locked(lsm_db *db, lsm_mem *mem, lsm_mem *imm, lsm_version *v,
                        struct lsm_view **old)
{
    struct lsm_view *nv = calloc(1, sizeof(*nv));

    if (nv == NULL) {
        return KVD_ENOMEM;
    }
    atomic_init(&nv->refs, 1);
    nv->gen = ++db->view_gen;
    lsm_mem_ref(mem);
    nv->mem = mem;
    if (imm != NULL) {
        lsm_mem_ref(imm);
    }
    nv->imm = imm;
    lsm_version_ref(v);
    nv->v = v;
    *old = db->view;
    db->view = nv;
    atomic_store(&db->l0_files, (int)v->nfiles[0]);
    atomic_store(&db->imm_pending, imm != NULL);
    pthread_cond_broadcast(&db->done_cv);
    return 0;
}

/* ---- options check ---- */

static int
check_opts(const struct lsm_opts *o, struct kvd_err *err)
{
    if (o->sync < LSM_SYNC_ALWAYS || o->sync > LSM_SYNC_NEVER) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: sync = %d: expected always, everysec or "
                           "never",
                           o->sync);
    }
    if (o->corruption < LSM_CORRUPT_STOP ||
        o->corruption > LSM_CORRUPT_PARANOID) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: corruption = %d: expected stop, skip or "
                           "paranoid",
                           o->corruption);
    }
    if (o->memtable_size < 4096 || o->table_size < 4096 ||
        o->block_size < 256 || o->level1_size < 16384) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: memtable_size and table_size must be at "
                           "least 4k, block_size 256 and level1_size 16k");
    }
    if (o->sync_interval < 10) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: sync_interval must be at least 10 ms");
    }
    if (o->bloom_bits_per_key < 0 || o->bloom_bits_per_key > 32) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: bloom_bits_per_key = %lld: expected 0 to 32",
                           (long long)o->bloom_bits_per_key);
    }
    if (o->l0_compaction_trigger < 1 ||
        o->l0_slowdown < o->l0_compaction_trigger ||
        o->l0_stop < o->l0_slowdown) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: expected 1 <= l0_compaction_trigger (%lld) "
                           "<= l0_slowdown (%lld) <= l0_stop (%lld)",
                           (long long)o->l0_compaction_trigger,
                           (long long)o->l0_slowdown, (long long)o->l0_stop);
    }
    if (o->manifest_size < 4096) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: manifest_size must be at least 4k");
    }
    if (o->max_open_files < 16) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: max_open_files must be at least 16");
    }
    return 0;
}

/* ---- open / close ---- */

static void
db_destroy(lsm_db *db)
{
    if (db == NULL) {
        return;
    }
    lsm_view_put(db->view);
    db->view = NULL;
    lsm_walf_unref(db, db->wal);
    lsm_logw_release(&db->walw);
    lsm_manifest_close(db);
    lsm_delete_dead(db);
    lsm_tcache_release(&db->tc);
    lsm_cache_destroy(db->bcache);
    for (int l = 0; l < LSM_LEVELS; l++) {
        free((void *)(uintptr_t)db->compact_ptr[l].p);
    }
    free(db->dead);
    if (db->lock_fd >= 0) {
        db->io->close(db->lock_fd); /* releases the flock */
    }
    pthread_mutex_destroy(&db->wlock);
    pthread_mutex_destroy(&db->sync_mu);
    pthread_cond_destroy(&db->sync_cv);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->work_cv);
    pthread_cond_destroy(&db->done_cv);
    pthread_mutex_destroy(&db->cmu);
    pthread_mutex_destroy(&db->dead_mu);
    pthread_mutex_destroy(&db->state_mu);
    pthread_mutex_destroy(&db->syncer_mu);
    pthread_cond_destroy(&db->syncer_cv);
    pthread_mutex_destroy(&db->stats_mu);
    free(db->dir);
    free(db);
}

static int
take_lock(lsm_db *db, struct kvd_err *err)
{
    char path[LSM_PATH_BYTES];

    snprintf(path, sizeof(path), "%s/%s", db->dir, LSM_LOCK_FILE);
    db->lock_fd = db->io->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (db->lock_fd < 0) {
        return kvd_err_set(err, kvd_errno_status(errno), "lsm: open %s: %s",
                           path, strerror(errno));
    }
    if (flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            return kvd_err_set(err, KVD_ELOCKED,
                               "lsm: data directory %s is in use by another "
                               "open store (flock on %s is held)",
                               db->dir, path);
        }
        return kvd_err_set(err, KVD_EIO, "lsm: flock %s: %s", path,
                           strerror(errno));
    }
    return 0;
}

static void
timespec_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void *
syncer_main(void *arg)
{
    lsm_db *db = arg;

    pthread_mutex_lock(&db->syncer_mu);
    while (!db->syncer_stop) {
        struct timespec ts;
        timespec_in(&ts, db->opts.sync_interval);
        pthread_cond_timedwait(&db->syncer_cv, &db->syncer_mu, &ts);
        if (db->syncer_stop) {
            break;
        }
        pthread_mutex_unlock(&db->syncer_mu);
        if (!atomic_load(&db->readonly)) {
            lsm_sync_all(db);
        }
        pthread_mutex_lock(&db->syncer_mu);
    }
    pthread_mutex_unlock(&db->syncer_mu);
    return NULL;
}

static int
lsm_open(const struct kvd_host *host, const void *opts, const char *dir,
         kvd_engine **out, struct kvd_err *err)
{
    pthread_condattr_t ca;
    lsm_db *db;
    int rc;

    if (opts == NULL || dir == NULL) {
        return kvd_err_set(err, KVD_EINVAL,
                           "lsm: options and directory are required");
    }
    rc = check_opts(opts, err);
    if (rc != 0) {
        return rc;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "lsm: out of memory");
    }
    db->host = host;
    db->io = host->io;
    db->opts = *(const struct lsm_opts *)opts;
    db->lock_fd = -1;
    db->manifest_fd = -1;
    db->dir = strdup(dir);
    db->vconf.l0_trigger = (int)db->opts.l0_compaction_trigger;
    db->vconf.level1_size = db->opts.level1_size;
    db->vconf.gone = lsm_file_gone;
    db->vconf.release = lsm_tcache_file_release;
    db->vconf.ctx = db;
    db->topts.block_size = (size_t)db->opts.block_size;
    db->topts.restart_interval = LSM_RESTART_INTERVAL;
    db->topts.bloom_bits_per_key = (int)db->opts.bloom_bits_per_key;
    pthread_mutex_init(&db->wlock, NULL);
    pthread_mutex_init(&db->sync_mu, NULL);
    pthread_cond_init(&db->sync_cv, NULL);
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->cmu, NULL);
    pthread_mutex_init(&db->dead_mu, NULL);
    pthread_mutex_init(&db->state_mu, NULL);
    pthread_mutex_init(&db->syncer_mu, NULL);
    pthread_mutex_init(&db->stats_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->work_cv, &ca);
    pthread_cond_init(&db->syncer_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&db->done_cv, NULL);
    atomic_init(&db->readonly, 0);
    if (db->dir == NULL) {
        db_destroy(db);
        return kvd_err_set(err, KVD_ENOMEM, "lsm: out of memory");
    }
    rc = lsm_tcache_init(&db->tc, (size_t)db->opts.max_open_files);
    if (rc == 0) {
        rc = lsm_cache_create((size_t)db->opts.block_cache_size, &db->bcache);
    }
    if (rc != 0) {
        rc = kvd_err_set(err, KVD_ENOMEM, "lsm: out of memory");
        goto fail;
    }
    if (db->io->mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = kvd_err_set(err, kvd_errno_status(errno), "lsm: mkdir %s: %s", dir,
                         strerror(errno));
        goto fail;
    }
    rc = take_lock(db, err);
    if (rc == 0) {
        rc = lsm_recover(db, err);
    }
    if (rc != 0) {
        goto fail;
    }
    if (pthread_create(&db->bg, NULL, lsm_bg_main, db) != 0) {
        rc = kvd_err_set(err, KVD_ENOMEM,
                         "lsm: cannot start the background thread");
        goto fail;
    }
    db->bg_started = true;
    if (db->opts.sync == LSM_SYNC_EVERYSEC) {
        if (pthread_create(&db->syncer, NULL, syncer_main, db) != 0) {
            rc = kvd_err_set(err, KVD_ENOMEM,
                             "lsm: cannot start the sync thread");
            goto fail;
        }
        db->syncer_started = true;
    }
    atomic_store(&db->ready, 1);
    *out = db;
    return 0;
fail:
    if (db->bg_started) {
        pthread_mutex_lock(&db->mu);
        db->bg_stop = true;
        pthread_cond_signal(&db->work_cv);
        pthread_mutex_unlock(&db->mu);
        pthread_join(db->bg, NULL);
    }
    db_destroy(db);
    return rc;
}

static int
lsm_close(kvd_engine *db, struct kvd_err *err)
{
    int rc = 0;

    if (db == NULL) {
        return 0;
    }
    if (db->syncer_started) {
        pthread_mutex_lock(&db->syncer_mu);
        db->syncer_stop = true;
        pthread_cond_signal(&db->syncer_cv);
        pthread_mutex_unlock(&db->syncer_mu);
        pthread_join(db->syncer, NULL);
    }
    if (db->bg_started) {
        atomic_store(&db->closing, true);
        pthread_mutex_lock(&db->mu);
        db->bg_stop = true;
        pthread_cond_signal(&db->work_cv);
        pthread_mutex_unlock(&db->mu);
        pthread_join(db->bg, NULL);
    }
    /* the WAL holds everything acknowledged; the next open replays it */
    if (!atomic_load(&db->readonly) && db->wal != NULL) {
        rc = lsm_sync_all(db);
    }
    if (rc != 0) {
        kvd_err_set(err, rc, "lsm: close %s: %s", db->dir, db->state);
    }
    db_destroy(db);
    return rc;
}

/* ---- lookups ---- */

static bool
in_file_range(const struct lsm_file *f, const void *key, size_t klen)
{
    struct lsm_slice s = lsm_ikey_user(f->smallest);
    struct lsm_slice l = lsm_ikey_user(f->largest);

    return lsm_user_cmp(key, klen, s.p, s.n) >= 0 &&
           lsm_user_cmp(key, klen, l.p, l.n) <= 0;
}

static int
table_lookup(lsm_db *db, struct lsm_file *f, const void *key, size_t klen,
             uint64_t hash, uint64_t snap, struct lsm_lookup *out)
{
    lsm_table *t;
    bool owned;
    int rc = lsm_tcache_borrow(db, f, &t, &owned);

    if (rc != 0) {
        return rc;
    }
    rc = lsm_table_get(t, key, klen, hash, snap, &out->hit);
    if (owned) {
        lsm_table_unref(t); /* a hit pins its block, not the table */
    }
    if (rc == 0) {
        out->type = out->hit.type;
        out->val = out->hit.val;
    } else if (rc != KVD_ENOTFOUND) {
        LSM_LOG(db, KVD_LOG_ERROR, "lsm: read %s/%06llu.sst: %s", db->dir,
                (unsigned long long)f->number, lsm_status_text(rc));
    }
    return rc;
}

int
lsm_lookup(lsm_db *db, struct lsm_view *vw, const void *key, size_t klen,
           uint64_t snap, struct lsm_lookup *out)
{
    struct lsm_mhit mh;
    lsm_version *v = vw->v;
    uint64_t hash;
    int rc;

    memset(out, 0, sizeof(*out));
    if (lsm_mem_get(vw->mem, key, klen, snap, &mh) == 0) {
        lsm_mem_ref(vw->mem);
        out->mem = vw->mem;
        out->type = mh.type;
        out->val = mh.val;
        return 0;
    }
    if (vw->imm != NULL && lsm_mem_get(vw->imm, key, klen, snap, &mh) == 0) {
        lsm_mem_ref(vw->imm);
        out->mem = vw->imm;
        out->type = mh.type;
        out->val = mh.val;
        return 0;
    }
    hash = lsm_bloom_hash(key, klen);
    for (size_t i = 0; i < v->nfiles[0]; i++) {
        struct lsm_file *f = v->files[0][i];
        if (!in_file_range(f, key, klen)) {
            continue;
        }
        rc = table_lookup(db, f, key, klen, hash, snap, out);
        if (rc != KVD_ENOTFOUND) {
            return rc;
        }
    }
    for (int l = 1; l < LSM_LEVELS; l++) {
        ptrdiff_t i;
        if (v->nfiles[l] == 0) {
            continue;
        }
        i = lsm_version_find(v, l, key, klen);
        if (i < 0) {
            continue;
        }
        rc = table_lookup(db, v->files[l][i], key, klen, hash, snap, out);
        if (rc != KVD_ENOTFOUND) {
            return rc;
        }
    }
    return KVD_ENOTFOUND;
}

void
lsm_lookup_release(struct lsm_lookup *l)
{
    if (l->mem != NULL) {
        lsm_mem_unref(l->mem);
        l->mem = NULL;
    }
    if (l->hit.pin != NULL) {
        lsm_hit_release(&l->hit);
        l->hit.pin = NULL;
    }
}

/* ---- get ---- */

static void
val_release_mem(struct kvd_val *v)
{
    lsm_mem_unref(v->cookie[0]);
    v->cookie[0] = NULL;
}

static void
val_release_hit(struct kvd_val *v)
{
    struct lsm_hit h;

    memset(&h, 0, sizeof(h));
    h.pin = v->cookie[0];
    lsm_hit_release(&h);
    v->cookie[0] = NULL;
}

static void
val_release_free(struct kvd_val *v)
{
    free(v->cookie[0]);
    v->cookie[0] = NULL;
}

int
lsm_get(kvd_engine *db, const void *key, size_t klen, struct kvd_val *out)
{
    struct lsm_lookup l;
    struct lsm_view *vw;
    struct lsm_slice val;
    int64_t expire = KVD_NO_EXPIRY;
    uint64_t snap;
    int rc;

    if (klen == 0 || klen > LSM_MAX_KEY_BYTES) {
        return klen == 0 ? KVD_EINVAL : KVD_ENOTFOUND;
    }
    lsm_count(&db->c.gets, 1);
    vw = lsm_view_get(db, &snap);
    rc = lsm_lookup(db, vw, key, klen, snap, &l);
    lsm_view_put(vw);
    if (rc != 0) {
        return rc;
    }
    val = l.val;
    if (l.type == LSM_T_DEL) {
        lsm_lookup_release(&l);
        return KVD_ENOTFOUND;
    }
    if (l.type == LSM_T_PUTX) {
        expire = lsm_val_expiry(val);
        if (lsm_expired(expire, db->host->now_ms(db->host))) {
            lsm_lookup_release(&l);
            return KVD_ENOTFOUND;
        }
        val.p = (const unsigned char *)val.p + 8;
        val.n -= 8;
    }
    out->len = val.n;
    out->expire_ms = expire;
    out->cookie[0] = NULL;
    out->cookie[1] = NULL;
    if (l.mem != NULL) {
        /* zero copy: the memtable stays while the value is held */
        out->data = val.p;
        out->release = val_release_mem;
        out->cookie[0] = l.mem;
    } else if (l.hit.pin != NULL) {
        /* zero copy: the cached block stays pinned */
        out->data = val.p;
        out->release = val_release_hit;
        out->cookie[0] = l.hit.pin;
    } else {
        void *copy = malloc(val.n ? val.n : 1);
        if (copy == NULL) {
            lsm_lookup_release(&l);
            return KVD_ENOMEM;
        }
        memcpy(copy, val.p, val.n);
        lsm_lookup_release(&l);
        out->data = copy;
        out->release = val_release_free;
        out->cookie[0] = copy;
    }
    return 0;
}

static int
lsm_put_op(kvd_engine *db, const void *key, size_t klen, const void *val,
           size_t vlen, int64_t expire_ms)
{
    return lsm_put(db, key, klen, val, vlen, expire_ms);
}

static int
lsm_del_op(kvd_engine *db, const void *key, size_t klen)
{
    return lsm_del(db, key, klen);
}

static int
lsm_batch_op(kvd_engine *db, const struct kvd_op *ops, size_t n,
             struct kvd_err *err)
{
    return lsm_batch(db, ops, n, err);
}

static int
lsm_multi_op(kvd_engine *db, struct kvd_mop *ops, size_t n)
{
    return lsm_multi(db, ops, n);
}

static int
lsm_iter_open_op(kvd_engine *db, const struct kvd_iter_opts *opts,
                 kvd_iter **out, struct kvd_err *err)
{
    return lsm_iter_open(db, opts, out, err);
}

static int
lsm_iter_next_op(kvd_iter *it, struct kvd_entry *out)
{
    return lsm_iter_next(it, out);
}

static void
lsm_iter_close_op(kvd_iter *it)
{
    lsm_iter_close(it);
}

/* ---- stats ---- */

static uint64_t
view_entries(const struct lsm_view *vw)
{
    uint64_t n = lsm_mem_entries(vw->mem);

    if (vw->imm != NULL) {
        n += lsm_mem_entries(vw->imm);
    }
    for (int l = 0; l < LSM_LEVELS; l++) {
        for (size_t i = 0; i < vw->v->nfiles[l]; i++) {
            n += vw->v->files[l][i]->entries;
        }
    }
    return n;
}

/* Live keys and bytes: exact (scan, cached) or estimated (sample). */
static void
live_totals(lsm_db *db, struct kvd_engine_stats *st, bool *exact)
{
    uint64_t snap;
    struct lsm_view *vw = lsm_view_get(db, &snap);
    int64_t now = db->host->now_ms(db->host);
    uint64_t entries = view_entries(vw);
    struct lsm_live lv;

    *exact = entries <= (uint64_t)db->opts.stats_scan_limit;
    pthread_mutex_lock(&db->stats_mu);
    if (*exact && db->stats_cached && db->stats_gen == vw->gen &&
        db->stats_seq == snap && now < db->stats_valid_until) {
        st->keys = db->stats_keys;
        st->key_bytes = db->stats_key_bytes;
        st->value_bytes = db->stats_value_bytes;
        pthread_mutex_unlock(&db->stats_mu);
        lsm_view_put(vw);
        return;
    }
    pthread_mutex_unlock(&db->stats_mu);
    if (lsm_count_live(db, vw, snap, *exact ? 0 : LSM_STATS_SAMPLE_KEYS, &lv) !=
        0) {
        *exact = false;
        memset(&lv, 0, sizeof(lv));
    }
    if (!lv.complete) {
        /* a sample of the first keys: scale its sizes to every entry */
        *exact = false;
        st->keys = entries;
        st->key_bytes = lv.keys ? lv.key_bytes * entries / lv.keys : 0;
        st->value_bytes = lv.keys ? lv.value_bytes * entries / lv.keys : 0;
    } else {
        st->keys = lv.keys;
        st->key_bytes = lv.key_bytes;
        st->value_bytes = lv.value_bytes;
        pthread_mutex_lock(&db->stats_mu);
        db->stats_cached = true;
        db->stats_gen = vw->gen;
        db->stats_seq = snap;
        db->stats_valid_until = lv.next_expiry;
        db->stats_keys = lv.keys;
        db->stats_key_bytes = lv.key_bytes;
        db->stats_value_bytes = lv.value_bytes;
        pthread_mutex_unlock(&db->stats_mu);
    }
    lsm_view_put(vw);
}

static int
lsm_stats(kvd_engine *db, struct kvd_engine_stats *out, kvd_stat_fn fn,
          void *ctx)
{
    struct kvd_engine_stats st;
    struct lsm_cache_stats cs;
    struct lsm_table_stats ts;
    struct lsm_view *vw;
    uint64_t tables = 0;
    uint64_t table_bytes = 0;
    uint64_t open_tables;
    uint64_t index_bytes;
    uint64_t mem_bytes;
    uint64_t imm_bytes;
    uint64_t wal_bytes;
    uint64_t level_n[LSM_LEVELS];
    uint64_t level_b[LSM_LEVELS];
    uint64_t user;
    uint64_t written;
    bool exact;
    size_t n;

    memset(&st, 0, sizeof(st));
    live_totals(db, &st, &exact);
    lsm_tcache_stats(db, &ts, &open_tables, &index_bytes);
    vw = lsm_view_get(db, NULL);
    for (int l = 0; l < LSM_LEVELS; l++) {
        level_n[l] = vw->v->nfiles[l];
        level_b[l] = vw->v->level_bytes[l];
        tables += level_n[l];
        table_bytes += level_b[l];
        /* readers kept by the files themselves */
        for (size_t i = 0; i < vw->v->nfiles[l]; i++) {
            lsm_table *t = atomic_load(&vw->v->files[l][i]->table);
            struct lsm_table_stats fs;
            if (t == NULL) {
                continue;
            }
            lsm_table_get_stats(t, &fs);
            ts.bloom_checks += fs.bloom_checks;
            ts.bloom_negatives += fs.bloom_negatives;
            ts.bloom_false_pos += fs.bloom_false_pos;
            ts.block_reads += fs.block_reads;
            index_bytes += lsm_table_mem_bytes(t);
        }
    }
    mem_bytes = lsm_mem_bytes(vw->mem);
    imm_bytes = vw->imm != NULL ? lsm_mem_bytes(vw->imm) : 0;
    lsm_view_put(vw);
    pthread_mutex_lock(&db->wlock);
    wal_bytes = db->walw.alloc; /* preallocated zeros included */
    pthread_mutex_unlock(&db->wlock);
    lsm_cache_get_stats(db->bcache, &cs);

    st.disk_bytes = table_bytes + wal_bytes + atomic_load(&db->manifest_bytes);
    st.mem_bytes = mem_bytes + imm_bytes + cs.bytes + index_bytes + sizeof(*db);
    st.readonly = atomic_load(&db->readonly);
    st.ready = atomic_load(&db->ready);
    pthread_mutex_lock(&db->state_mu);
    memcpy(st.state, db->state, sizeof(st.state));
    pthread_mutex_unlock(&db->state_mu);

    n = out->struct_size < sizeof(st) ? out->struct_size : sizeof(st);
    st.struct_size = out->struct_size;
    memcpy(out, &st, n);
    if (fn == NULL) {
        return 0;
    }
    for (int l = 0; l < LSM_LEVELS; l++) {
        char name[32];
        snprintf(name, sizeof(name), "l%d_tables", l);
        fn(ctx, name, level_n[l]);
        snprintf(name, sizeof(name), "l%d_bytes", l);
        fn(ctx, name, level_b[l]);
    }
    user = lsm_load(&db->c.user_bytes);
    written = lsm_load(&db->c.wal_bytes) + lsm_load(&db->c.flush_bytes) +
              lsm_load(&db->c.compact_write_bytes);
    fn(ctx, "tables", tables);
    fn(ctx, "table_bytes", table_bytes);
    fn(ctx, "memtable_bytes", mem_bytes);
    fn(ctx, "imm_memtable_bytes", imm_bytes);
    fn(ctx, "wal_bytes", lsm_load(&db->c.wal_bytes));
    fn(ctx, "user_bytes_written", user);
    fn(ctx, "flush_bytes", lsm_load(&db->c.flush_bytes));
    fn(ctx, "compact_read_bytes", lsm_load(&db->c.compact_read_bytes));
    fn(ctx, "compact_write_bytes", lsm_load(&db->c.compact_write_bytes));
    /* (WAL + flush + compaction bytes) / user bytes, times 100 */
    fn(ctx, "write_amp_x100", user ? written * 100 / user : 0);
    fn(ctx, "flushes", lsm_load(&db->c.flushes));
    fn(ctx, "compactions", lsm_load(&db->c.compactions));
    fn(ctx, "trivial_moves", lsm_load(&db->c.trivial_moves));
    fn(ctx, "dropped_shadowed", lsm_load(&db->c.dropped_shadowed));
    fn(ctx, "dropped_tombstones", lsm_load(&db->c.dropped_tombstones));
    fn(ctx, "dropped_expired", lsm_load(&db->c.dropped_expired));
    fn(ctx, "bloom_checks", ts.bloom_checks);
    fn(ctx, "bloom_negatives", ts.bloom_negatives);
    fn(ctx, "bloom_false_positives", ts.bloom_false_pos);
    fn(ctx, "block_reads", ts.block_reads);
    fn(ctx, "block_cache_hits", cs.hits);
    fn(ctx, "block_cache_misses", cs.misses);
    fn(ctx, "block_cache_evictions", cs.evictions);
    fn(ctx, "block_cache_bytes", cs.bytes);
    fn(ctx, "block_cache_capacity", cs.capacity);
    fn(ctx, "open_tables", open_tables);
    fn(ctx, "table_opens", lsm_load(&db->tc.opens));
    fn(ctx, "index_filter_bytes", index_bytes);
    fn(ctx, "stall_us", lsm_load(&db->c.stall_us));
    fn(ctx, "stall_slowdowns", lsm_load(&db->c.slowdowns));
    fn(ctx, "stall_stops", lsm_load(&db->c.stops));
    fn(ctx, "puts", lsm_load(&db->c.puts));
    fn(ctx, "dels", lsm_load(&db->c.dels));
    fn(ctx, "batches", lsm_load(&db->c.batches));
    fn(ctx, "gets", lsm_load(&db->c.gets));
    fn(ctx, "fsyncs", lsm_load(&db->c.fsyncs));
    fn(ctx, "sync_waits", lsm_load(&db->c.sync_waits));
    fn(ctx, "manifest_rolls", lsm_load(&db->c.manifest_rolls));
    fn(ctx, "corrupt_records", lsm_load(&db->c.corrupt_records));
    fn(ctx, "torn_tail_bytes", lsm_load(&db->c.torn_tail_bytes));
    fn(ctx, "recovery_ms", (uint64_t)db->recovery_ms);
    fn(ctx, "recovery_records", db->recovered_records);
    fn(ctx, "recovery_wals", db->recovered_wals);
    fn(ctx, "stats_exact", exact ? 1 : 0);
    fn(ctx, "readonly", (uint64_t)st.readonly);
    return 0;
}

/* ---- sync / maintain ---- */

static int
lsm_sync_op(kvd_engine *db, struct kvd_err *err)
{
    int rc;

    if (atomic_load(&db->readonly)) {
        return kvd_err_set(err, KVD_EREADONLY, "lsm: %s", db->state);
    }
    rc = lsm_sync_all(db);
    if (rc != 0) {
        return kvd_err_set(err, rc, "lsm: sync: %s", db->state);
    }
    return 0;
}

static int
lsm_maintain(kvd_engine *db, int op, struct kvd_err *err)
{
    switch (op) {
    case KVD_MAINT_COMPACT:
    case KVD_MAINT_EXPIRE:
        /* a full compaction rewrites every table and drops every expired
         * key and tombstone on the way */
        return lsm_compact_all(db, err);
    default:
        return kvd_err_set(err, KVD_ENOTSUP,
                           "lsm: maintenance operation %d is not supported",
                           op);
    }
}

/* ---- the exported vtable ---- */

KVD_EXPORT const struct kvd_engine_vtable kvd_engine_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_engine_vtable),
    .name = "lsm",
    .version = LSM_VERSION,
    .description = "log-structured merge tree: WAL + skip-list memtable + "
                   "leveled SSTables with bloom filters and a block cache; "
                   "ordered, for data sets larger than memory",
    .caps = KVD_CAP_PERSISTENT | KVD_CAP_ORDERED | KVD_CAP_ATOMIC_BATCH |
            KVD_CAP_SNAPSHOT_ITER,
    .max_key_bytes = LSM_MAX_KEY_BYTES,
    .max_value_bytes = LSM_MAX_VALUE_BYTES,
    .options = lsm_options,
    .options_size = sizeof(struct lsm_opts),
    .open = lsm_open,
    .close = lsm_close,
    .get = lsm_get,
    .put = lsm_put_op,
    .del = lsm_del_op,
    .batch = lsm_batch_op,
    .iter_open = lsm_iter_open_op,
    .iter_next = lsm_iter_next_op,
    .iter_close = lsm_iter_close_op,
    .stats = lsm_stats,
    .sync = lsm_sync_op,
    .maintain = lsm_maintain,
    .clear = NULL,
    .instance_caps = NULL,
    .multi = lsm_multi_op,
};
