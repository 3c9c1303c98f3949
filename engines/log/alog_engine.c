/*
 * alog_engine.c -- the "log" engine: an append-only log of records in
 * numbered segment files with an in-memory hash index (a Bitcask-style
 * design). Every read is one positioned read, every write one append.
 *
 * On-disk format: alog_format.h and docs/formats.md. Crash story: records
 * carry crc32c; recovery cuts a torn tail and resolves keys by sequence
 * number (alog_recover.c); new files appear by tmp + fsync + rename +
 * directory fsync; merges commit through a MERGE file (alog_merge.c).
 * Durability: sync = always (group commit before the reply), everysec
 * (background fdatasync) or never. A failed write or fsync turns the
 * engine read-only (alog_write.c).
 *
 * Threads: any number of callers; one background thread for hint files
 * and merges, and for sync = everysec the group commit's own syncing
 * thread (kvd/kit_commit.h). Lock order in alog.h.
 *
 * This file: options table, open/close, background thread, get,
 * iteration, stats, sync, maintain, and the exported vtable (last).
 */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvd/kit_lock.h"

#define ALOG_VERSION     "1.0.0"
#define ALOG_BG_IDLE_MS  1000
#define ALOG_CAPS        (KVD_CAP_PERSISTENT | KVD_CAP_ATOMIC_BATCH)
#define ALOG_MIN_SEGMENT 4096

/* ---- options ---- */

/* alog_opts.sync is handed to the group commit as its mode */
_Static_assert((int)ALOG_SYNC_ALWAYS == (int)KVD_SYNC_ALWAYS &&
                   (int)ALOG_SYNC_EVERYSEC == (int)KVD_SYNC_EVERYSEC &&
                   (int)ALOG_SYNC_NEVER == (int)KVD_SYNC_NEVER,
               "alog_sync_mode must match kvd_sync_mode");
static const char *const alog_corrupt_choices[] = {"skip", "fail", NULL};

static const struct kvd_option alog_options[] = {
    {"sync", KVD_OPT_ENUM, "everysec", 0, 0, offsetof(struct alog_opts, sync),
     kvd_sync_mode_names,
     "always: fdatasync before a write is acknowledged (concurrent writers "
     "share one fdatasync); everysec: a background fdatasync every "
     "sync_interval (a crash loses at most about that much); never: leave "
     "flushing to the OS"},
    {"segment_size", KVD_OPT_SIZE, "64m", ALOG_MIN_SEGMENT,
     (int64_t)ALOG_MAX_SEGMENT_BYTES, offsetof(struct alog_opts, segment_size),
     NULL,
     "the active segment file is sealed and a new one started when a write "
     "would take it past this size"},
    {"merge_ratio", KVD_OPT_INT, "50", 0, 100,
     offsetof(struct alog_opts, merge_ratio), NULL,
     "percent of dead (overwritten, deleted) bytes that makes a sealed "
     "segment a merge input; 0 turns automatic merges off"},
    {"merge_interval", KVD_OPT_DURATION, "10s", 10, 86400000,
     offsetof(struct alog_opts, merge_interval), NULL,
     "how often the background thread checks whether a merge is due"},
    {"merge_min_dead", KVD_OPT_SIZE, "16m", 0, 0,
     offsetof(struct alog_opts, merge_min_dead), NULL,
     "an automatic merge starts only when its inputs hold at least this "
     "many dead bytes"},
    {"corruption", KVD_OPT_ENUM, "skip", 0, 0,
     offsetof(struct alog_opts, corruption), alog_corrupt_choices,
     "damaged records found at open (other than a torn tail of the newest "
     "segment, which is always cut): skip = log file and offset, skip to the "
     "next valid record and open; fail = refuse to open"},
    {"hint_files", KVD_OPT_BOOL, "yes", 0, 0,
     offsetof(struct alog_opts, hint_files), NULL,
     "write a hint file (keys and offsets) for every sealed segment so that "
     "opening does not read values"},
    {"index_file", KVD_OPT_BOOL, "yes", 0, 0,
     offsetof(struct alog_opts, index_file), NULL,
     "write the whole in-memory index to a file at a clean close, so that "
     "the next open reads it back instead of rebuilding it from the hint "
     "files (used only when it matches the segments exactly)"},
    {"sync_interval", KVD_OPT_DURATION, "1s", 10, 60000,
     offsetof(struct alog_opts, sync_interval), NULL,
     "interval of the background fdatasync for sync = everysec"},
    {"merge_rate", KVD_OPT_SIZE, "64m", 0, 0,
     offsetof(struct alog_opts, merge_rate), NULL,
     "bytes per second a merge may write (it sleeps to keep below), so a "
     "merge does not starve requests of disk bandwidth; 0 = no limit"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* ---- background thread ---- */

static int reap_expired(alog_db *db);

/* The background worker's clock: kvd_worker sleeps in real
 * CLOCK_MONOTONIC time, so the merge deadline is read from that clock
 * too, not from the host's (kvd_mono_ms), which a test host may drive. */
static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write hint files for sealed segments that lack one. */
static void
write_pending_hints(alog_db *db)
{
    for (;;) {
        struct alog_seg *s = NULL;
        int rc;

        pthread_mutex_lock(&db->merge_mu);
        pthread_mutex_lock(&db->seg_mu);
        for (size_t i = 0; i < db->nsegs; i++) {
            if (db->segs[i]->need_hint && db->segs[i]->sealed &&
                !db->segs[i]->merging) {
                s = db->segs[i];
                s->need_hint = 0;
                alog_seg_ref(s);
                break;
            }
        }
        pthread_mutex_unlock(&db->seg_mu);
        if (s == NULL || alog_check_writable(db) != 0) {
            pthread_mutex_unlock(&db->merge_mu);
            alog_seg_unref(db, s);
            return;
        }
        rc = alog_hint_write(db, s);
        if (rc != 0) {
            kvd_ro_fail(db->ro, rc, "write hint file %s/%08u.hint", db->dir,
                        (unsigned)s->id);
        }
        pthread_mutex_unlock(&db->merge_mu);
        alog_seg_unref(db, s);
    }
}

/*
 * One round of the background worker: hint files for sealed segments (a
 * roll wakes it), and once merge_interval has passed the expiry reap and a
 * merge if one is due. The worker runs a round on every wake and every
 * bg_interval (a merge is late by less than that).
 */
static int
bg_round(void *arg)
{
    alog_db *db = arg;

    if (db->ixfile_pending) {
        alog_ixfile_own(db);
        db->ixfile_pending = 0;
        atomic_store(&db->ixfile_owned, 1);
    }
    write_pending_hints(db);
    if (db->opts.merge_ratio > 0 && mono_ms() >= db->bg_next_merge) {
        /* expired keys become dead bytes, which merges reclaim */
        reap_expired(db);
        alog_merge_maybe(db);
        db->bg_next_merge = mono_ms() + db->opts.merge_interval;
    }
    return 0;
}

static int64_t
bg_interval(const alog_db *db)
{
    if (db->opts.merge_ratio > 0 && db->opts.merge_interval < ALOG_BG_IDLE_MS) {
        return db->opts.merge_interval;
    }
    return ALOG_BG_IDLE_MS;
}

/* ---- open / close ---- */

static int
check_opts(const struct alog_opts *o, struct kvd_err *err)
{
    if (o->sync < ALOG_SYNC_ALWAYS || o->sync > ALOG_SYNC_NEVER) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "log: sync = %d: expected always, everysec or "
                           "never",
                           o->sync);
    }
    if (o->segment_size < ALOG_MIN_SEGMENT ||
        o->segment_size > ALOG_MAX_SEGMENT_BYTES) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "log: segment_size = %llu: expected %u to %llu "
                           "bytes",
                           (unsigned long long)o->segment_size,
                           ALOG_MIN_SEGMENT,
                           (unsigned long long)ALOG_MAX_SEGMENT_BYTES);
    }
    if (o->merge_ratio < 0 || o->merge_ratio > 100) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "log: merge_ratio = %lld: expected 0 to 100",
                           (long long)o->merge_ratio);
    }
    if (o->merge_interval < 10 || o->sync_interval < 10) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "log: merge_interval and sync_interval must be "
                           "at least 10 ms");
    }
    if (o->corruption != ALOG_CORRUPT_SKIP &&
        o->corruption != ALOG_CORRUPT_FAIL) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "log: corruption = %d: expected skip or fail",
                           o->corruption);
    }
    return 0;
}

/* vtable check_options: the same rules before open (kvd --check-config). */
static int
alog_check_options(const void *opts, const char **key, struct kvd_err *err)
{
    (void)key; /* the messages name their options */
    return check_opts((const struct alog_opts *)opts, err);
}

static void
db_destroy(alog_db *db)
{
    if (db == NULL) {
        return;
    }
    kvd_worker_stop(db->bg);        /* first: its rounds use all below */
    kvd_commit_destroy(db->commit); /* its thread syncs segments */
    for (size_t i = 0; i < db->nsegs; i++) {
        alog_seg_unref(db, db->segs[i]);
    }
    alog_pending_drop_locked(db); /* a failed close: never published */
    free(db->pend);
    alog_hint_buf_free(db->ahint);
    free(db->segs);
    alog_index_release(&db->ix);
    kvd_dirlock_release(db->io, db->lock_fd);
    kvd_ro_destroy(db->ro);
    pthread_mutex_destroy(&db->wlock);
    pthread_mutex_destroy(&db->seg_mu);
    pthread_mutex_destroy(&db->merge_mu);
    pthread_mutex_destroy(&db->manifest_mu);
    free(db->dir);
    free(db);
}

/* The read-only switch flipped: writers waiting for a group commit that
 * will not come get KVD_EIO (the failing request itself its own status). */
static void
on_readonly(void *ctx)
{
    alog_db *db = ctx;

    if (db->commit != NULL) {
        kvd_commit_fail(db->commit, KVD_EIO);
    }
}

/* Group commit, once recovery has a segment to append to. */
static int
start_commit(alog_db *db, struct kvd_err *err)
{
    struct kvd_commit_conf cc = {
        .ops = &alog_commit_ops,
        .ctx = db,
        .mode = db->opts.sync,
        .interval_ms = db->opts.sync_interval,
        .name = "kvd-log-sync",
    };
    int rc = kvd_commit_create(&cc, &db->commit, err);

    if (rc == 0 && alog_check_writable(db) != 0) {
        /* switched during recovery, before there was a commit to tell */
        kvd_commit_fail(db->commit, KVD_EIO);
    }
    return rc;
}

static int
start_active(alog_db *db, struct kvd_err *err)
{
    struct alog_seg *s;
    uint32_t id = db->next_id++;
    int rc;

    rc = alog_seg_create(db, id, ALOG_FILE_DATA, db->seq + 1, 0, &s);
    if (rc != 0) {
        return kvd_err_set(err, rc, "log: create segment %s/%08u.data: %s",
                           db->dir, (unsigned)id, strerror(errno));
    }
    if (alog_segs_add_locked(db, s) != 0) {
        alog_seg_unref(db, s);
        return kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
    }
    db->active = s;
    db->ahint = alog_hint_collector(db);
    return 0;
}

static int
alog_open(const struct kvd_host *host, const void *opts, const char *dir,
          kvd_engine **out, struct kvd_err *err)
{
    alog_db *db;
    int rc;

    if (opts == NULL || dir == NULL) {
        return kvd_err_set(err, KVD_EINVAL,
                           "log: options and directory "
                           "are required");
    }
    rc = check_opts(opts, err);
    if (rc != 0) {
        return rc;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
    }
    db->host = host;
    db->io = host->io;
    db->opts = *(const struct alog_opts *)opts;
    db->lock_fd = -1;
    db->dir = strdup(dir);
    pthread_mutex_init(&db->wlock, NULL);
    pthread_mutex_init(&db->seg_mu, NULL);
    pthread_mutex_init(&db->merge_mu, NULL);
    pthread_mutex_init(&db->manifest_mu, NULL);
    if (db->dir == NULL ||
        kvd_ro_create(host, "log", on_readonly, db, &db->ro) != 0 ||
        alog_index_init(&db->ix) != 0) {
        db_destroy(db);
        return kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
    }
    rc = kvd_dirlock_acquire(db->io, dir, "log", &db->lock_fd, err);
    if (rc == 0) {
        rc = alog_recover(db, err);
    }
    /* read-only from the start (a segment is missing): no new files */
    if (rc == 0 && alog_check_writable(db) == 0) {
        rc = start_active(db, err);
        if (rc == 0 && alog_manifest_write(db) != 0) {
            rc = kvd_err_set(err, KVD_EIO, "log: write %s/%s: %s", db->dir,
                             ALOG_MANIFEST_FILE, strerror(errno));
        }
    }
    if (rc == 0) {
        rc = start_commit(db, err);
    }
    if (rc != 0) {
        goto fail;
    }
    db->bg_next_merge = mono_ms() + db->opts.merge_interval;
    db->ixfile_pending = db->recovered_from_index;
    rc = kvd_worker_start("kvd-log", bg_interval(db), bg_round, db, &db->bg,
                          err);
    if (rc != 0) {
        goto fail;
    }
    if (db->ixfile_pending) {
        kvd_worker_wake(db->bg); /* now, not after an interval */
    }
    atomic_store(&db->ready, 1);
    *out = db;
    return 0;
fail:
    db_destroy(db);
    return rc;
}

static int
alog_close(kvd_engine *db, struct kvd_err *err)
{
    char why[ALOG_STATE_BYTES];
    char path[ALOG_PATH_BYTES];
    int rc = 0;

    if (db == NULL) {
        return 0;
    }
    kvd_worker_stop(db->bg);
    db->bg = NULL;
    if (alog_check_writable(db) == 0 && db->active != NULL &&
        atomic_load(&db->active->size) > ALOG_FILE_HDR_BYTES) {
        /* the file exactly its records, then synced with that length */
        rc = alog_trim_active(db);
        if (rc == 0) {
            rc = kvd_commit_sync_all(db->commit);
        }
    }
    /* no periodic sync from here on: the active segment may go */
    kvd_commit_destroy(db->commit);
    db->commit = NULL;
    if (rc == 0 && alog_check_writable(db) == 0 && db->active != NULL) {
        struct alog_seg *a = db->active;
        if (atomic_load(&a->size) <= ALOG_FILE_HDR_BYTES) {
            /* nothing was written: leave no empty file behind (out of the
             * MANIFEST first, so it is never listed but missing) */
            pthread_mutex_lock(&db->seg_mu);
            alog_segs_remove_locked(db, a);
            pthread_mutex_unlock(&db->seg_mu);
            db->active = NULL;
            rc = alog_manifest_write(db);
            if (rc == 0) {
                alog_seg_path(db, path, a->id, "data");
                db->io->unlink(path);
                alog_fsync_dir(db);
            }
            alog_seg_unref(db, a);
        } else {
            /* sealed segments the background thread did not get to */
            write_pending_hints(db);
            if (db->opts.hint_files) {
                /* from the entries noted at each append: no scan */
                pthread_mutex_lock(&db->seg_mu);
                a->hint_ready = db->ahint;
                db->ahint = NULL;
                pthread_mutex_unlock(&db->seg_mu);
                rc = alog_hint_write(db, a);
                if (rc != 0) {
                    kvd_ro_fail(db->ro, rc, "write hint file %s/%08u.hint",
                                db->dir, (unsigned)a->id);
                }
            }
        }
    }
    if (rc == 0 && alog_check_writable(db) == 0 && db->opts.index_file &&
        db->nsegs > 0) {
        /* a cache for the next open: failing to write it loses nothing */
        int irc = alog_ixfile_write(db);
        if (irc != 0) {
            ALOG_LOG(db, KVD_LOG_WARN,
                     "log: could not write %s/%s (%s): the next open reads "
                     "the hint files",
                     db->dir, ALOG_INDEX_FILE, kvd_strerror(irc));
        }
    }
    if (rc != 0) {
        kvd_err_set(err, rc, "log: close %s: %s", db->dir, alog_why(db, why));
    }
    db_destroy(db);
    return rc;
}

/* ---- get ---- */

static void
val_free(struct kvd_val *v)
{
    free(v->cookie[0]);
    v->cookie[0] = NULL;
}

/* A value that points into a segment map: the reference taken by the get
 * keeps the map alive (a merge may retire the segment meanwhile). */
static void
val_unref(struct kvd_val *v)
{
    alog_seg_unref(NULL, v->cookie[0]);
    v->cookie[0] = NULL;
}

/* Check a record read back (got bytes) with the index's view of it: a put
 * of a klen-byte key with a vlen-byte value and this expiry, intact. */
static int
rec_hdr_matches(const unsigned char *buf, size_t got, size_t klen,
                uint32_t vlen, int64_t expire_ms)
{
    struct alog_rec_hdr h;
    uint64_t total = alog_rec_bytes(klen, vlen);

    if (got != total) {
        return 0;
    }
    alog_rec_hdr_decode(buf, &h);
    return (h.flags & (uint8_t)~ALOG_REC_IN_BATCH) == 0 &&
           h.kind == ALOG_REC_PUT && h.klen == klen && h.vlen == vlen &&
           h.expire_ms == expire_ms && alog_rec_crc_ok(buf, total);
}

/* rec_hdr_matches, and the record's key is key. */
static int
rec_matches(const unsigned char *buf, size_t got, const void *key, size_t klen,
            uint32_t vlen, int64_t expire_ms)
{
    return got == alog_rec_bytes(klen, vlen) &&
           memcmp(buf + ALOG_REC_HDR_BYTES, key, klen) == 0 &&
           rec_hdr_matches(buf, got, klen, vlen, expire_ms);
}

static int
report_corrupt(alog_db *db, uint32_t seg_id, uint32_t off)
{
    kvd_counter_add(&db->c.corrupt_records, 1);
    ALOG_LOG(db, KVD_LOG_ERROR,
             "log: corrupt record in %s/%08u.data at offset %u (crc or "
             "header mismatch on read)",
             db->dir, (unsigned)seg_id, (unsigned)off);
    return KVD_ECORRUPT;
}

/* Is e (lock held) the entry of key? Compared in the record (in its
 * segment's map), which the get reads next anyway; only when that differs
 * (another key with the same tag, or a damaged record that the get then
 * reports) or the record is outside every map is the arena's key read. */
static int
ent_holds_key(alog_db *db, const struct alog_shard *sh,
              const struct alog_ent *e, const void *key, size_t klen)
{
    struct alog_seg *seg = alog_ent_seg(&db->ix, e);
    const unsigned char *rec =
        seg != NULL ? alog_seg_at(seg, e->off, alog_rec_bytes(klen, e->vlen))
                    : NULL;
    const unsigned char *k;
    size_t n;

    if (rec != NULL && alog_get_u16(rec + 6) == klen &&
        memcmp(rec + ALOG_REC_HDR_BYTES, key, klen) == 0) {
        return 1;
    }
    k = alog_ent_key(sh, e, &n);
    return n == klen && memcmp(k, key, klen) == 0;
}

/* The get of a record outside every map: one pread into a buffer the value
 * owns. Called with the shard lock held (it keeps the segment open);
 * releases it. */
static int
get_by_pread(alog_db *db, struct alog_shard *sh, const struct alog_ent *e,
             const void *key, size_t klen, struct kvd_val *out)
{
    struct alog_seg *seg = alog_ent_seg(&db->ix, e);
    uint64_t total = alog_rec_bytes(klen, e->vlen);
    uint32_t vlen = e->vlen;
    uint32_t seg_id = seg->id;
    uint32_t off = e->off;
    int64_t expire = alog_ent_expire(sh, e);
    unsigned char *buf = malloc(total);
    ssize_t got;

    if (buf == NULL) {
        pthread_rwlock_unlock(&sh->lock);
        return KVD_ENOMEM;
    }
    kvd_counter_add(&db->c.get_preads, 1);
    got = db->io->pread(seg->fd, buf, total, (off_t)off);
    pthread_rwlock_unlock(&sh->lock);
    if (got < 0) {
        int rc = kvd_errno_status(errno);
        free(buf);
        ALOG_LOG(db, KVD_LOG_ERROR, "log: pread %s/%08u.data at %u: %s",
                 db->dir, (unsigned)seg_id, (unsigned)off, strerror(errno));
        return rc;
    }
    if (!rec_matches(buf, (size_t)got, key, klen, vlen, expire)) {
        free(buf);
        return report_corrupt(db, seg_id, off);
    }
    out->data = buf + ALOG_REC_HDR_BYTES + klen;
    out->len = vlen;
    out->expire_ms = expire;
    out->release = val_free;
    out->cookie[0] = buf;
    out->cookie[1] = NULL;
    return 0;
}

/*
 * A get is a lookup and, on a hit, a check (crc, key, expiry) of the
 * record in the segment map; the value handed out points into the map and
 * holds a reference to the segment. No system call; a miss touches no
 * file and usually no key (the tags differ).
 */
static int
alog_get(kvd_engine *db, const void *key, size_t klen, struct kvd_val *out)
{
    uint64_t hash;
    uint32_t tag;
    struct alog_shard *sh;
    const struct alog_ent *e = NULL;
    struct alog_seg *seg;
    const unsigned char *rec;
    uint64_t total;
    uint32_t vlen;
    uint32_t off;
    int64_t expire;

    if (klen == 0 || klen > ALOG_MAX_KEY_BYTES) {
        return klen == 0 ? KVD_EINVAL : KVD_ENOTFOUND;
    }
    hash = alog_hash(&db->ix, key, klen);
    tag = alog_hash_tag(hash);
    sh = alog_index_shard(&db->ix, hash);
    pthread_rwlock_rdlock(&sh->lock);
    for (size_t i = alog_shard_probe_locked(sh, tag);
         alog_shard_is_tag_locked(sh, i, tag); i++) {
        if (ent_holds_key(db, sh, &sh->slots[i], key, klen)) {
            e = &sh->slots[i];
            break;
        }
    }
    expire = e != NULL ? alog_ent_expire(sh, e) : 0;
    if (e == NULL || alog_is_expired(expire, db->host->now_ms(db->host))) {
        pthread_rwlock_unlock(&sh->lock);
        return KVD_ENOTFOUND;
    }
    seg = alog_ent_seg(&db->ix, e);
    vlen = e->vlen;
    total = alog_rec_bytes(klen, vlen);
    rec = alog_seg_at(seg, e->off, total);
    if (rec == NULL) {
        return get_by_pread(db, sh, e, key, klen, out);
    }
    off = e->off;
    alog_seg_ref(seg);
    pthread_rwlock_unlock(&sh->lock);
    kvd_counter_add(&db->c.get_map_reads, 1);
    if (!rec_matches(rec, total, key, klen, vlen, expire)) {
        uint32_t id = seg->id;
        alog_seg_unref(db, seg);
        return report_corrupt(db, id, off);
    }
    out->data = rec + ALOG_REC_HDR_BYTES + klen;
    out->len = vlen;
    out->expire_ms = expire;
    out->release = val_unref;
    out->cookie[0] = seg;
    out->cookie[1] = NULL;
    return 0;
}

static int
alog_put_op(kvd_engine *db, const void *key, size_t klen, const void *val,
            size_t vlen, int64_t expire_ms)
{
    return alog_put(db, key, klen, val, vlen, expire_ms);
}

static int
alog_del_op(kvd_engine *db, const void *key, size_t klen)
{
    return alog_del(db, key, klen);
}

static int
alog_batch_op(kvd_engine *db, const struct kvd_op *ops, size_t n,
              struct kvd_err *err)
{
    return alog_batch(db, ops, n, err);
}

/*
 * multi(): consecutive puts (up to ALOG_MULTI_CHUNK_BYTES) become one
 * append and one write(2); gets and deletes run one by one, in array
 * order, so a get sees every earlier write of its key.
 */
static int
alog_multi(kvd_engine *db, struct kvd_mop *ops, size_t n)
{
    uint64_t chunk = db->opts.segment_size < ALOG_MULTI_CHUNK_BYTES
                         ? db->opts.segment_size
                         : ALOG_MULTI_CHUNK_BYTES;
    size_t i = 0;

    kvd_counter_add(&db->c.multi_calls, 1);
    while (i < n) {
        struct kvd_mop *op = &ops[i];
        size_t j = i;
        uint64_t bytes = 0;

        switch (op->type) {
        case KVD_MOP_GET:
            op->status = alog_get(db, op->key, op->klen, &op->out);
            i++;
            continue;
        case KVD_MOP_DEL:
            op->status = alog_del(db, op->key, op->klen);
            i++;
            continue;
        case KVD_MOP_PUT:
            break;
        default:
            op->status = KVD_EINVAL;
            i++;
            continue;
        }
        while (j < n && ops[j].type == KVD_MOP_PUT &&
               (j == i ||
                bytes + alog_rec_bytes(ops[j].klen, ops[j].vlen) <= chunk)) {
            bytes += alog_rec_bytes(ops[j].klen, ops[j].vlen);
            j++;
        }
        alog_put_many(db, ops + i, j - i);
        i = j;
    }
    return 0;
}

/* ---- iteration ---- */

/*
 * Iterators walk the index in hash order, a batch at a time: under one
 * shard read lock they take whole tag groups (the slots of one shard with
 * the same 32 hash bits after the shard's, contiguous in slot order) until
 * ALOG_ITER_BATCH entries or ALOG_ITER_BATCH_BYTES are taken, and copy keys
 * and values from the segment maps into the iterator's buffer, prefetching
 * a few records ahead so the cache misses overlap. Hash order is what
 * keeps a cursor stateless and exactly-once across merges: a merge moves
 * records to other files but never changes a key's hash.
 *
 * Every entry of a tag group reports the same pos, the group's highest
 * possible hash (iter_group_pos), so resuming at pos + 1 starts at the next
 * tag. That needs neither the key's full hash nor its arena bytes: a
 * record is read once, from its segment map, where its key and expiry are
 * checked against the crc. Only a start_pos inside a group (a cursor
 * built by hand) needs full hashes, for that one group.
 */
#define ALOG_ITER_BATCH       256
#define ALOG_ITER_BATCH_BYTES (256u << 10)
#define ALOG_ITER_AHEAD       8
#define ALOG_ITER_AHEAD_LINES 4

struct iter_item {
    size_t koff; /* key bytes at buf + koff */
    size_t klen;
    size_t voff; /* value bytes at buf + voff */
    size_t vlen;
    int64_t expire_ms;
    uint64_t pos;
};

struct kvd_iter {
    alog_db *db;
    unsigned char *prefix;
    size_t prefix_len;
    unsigned flags;
    uint64_t pos; /* next hash to look at */
    int done;
    struct iter_item *items; /* the current batch */
    size_t nitems;
    size_t next;
    const struct alog_ent **ents; /* scratch: the batch's entries */
    uint64_t *poss;               /* scratch: their positions */
    size_t ecap;
    uint64_t map_reads; /* counted once per batch, not per record */
    uint64_t preads;
    unsigned char *buf; /* the batch's key and value bytes */
    size_t blen;
    size_t bcap;
};

static int
alog_iter_open(kvd_engine *db, const struct kvd_iter_opts *opts, kvd_iter **out,
               struct kvd_err *err)
{
    struct kvd_iter *it = calloc(1, sizeof(*it));

    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
    }
    it->db = db;
    if (opts != NULL) {
        it->pos = opts->start_pos;
        it->flags = opts->flags;
        if (opts->prefix != NULL && opts->prefix_len > 0) {
            it->prefix = malloc(opts->prefix_len);
            if (it->prefix == NULL) {
                free(it);
                return kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
            }
            memcpy(it->prefix, opts->prefix, opts->prefix_len);
            it->prefix_len = opts->prefix_len;
        }
    }
    if (it->pos == UINT64_MAX) {
        it->done = 1;
    }
    *out = it;
    return 0;
}

static int
iter_wants(const struct kvd_iter *it, const struct alog_shard *sh,
           const struct alog_ent *e, int64_t now)
{
    const unsigned char *k;
    size_t klen;

    if (e->flags & ALOG_ENT_TOMBSTONE) {
        return 0;
    }
    if (alog_is_expired(alog_ent_expire(sh, e), now)) {
        return 0;
    }
    if (it->prefix_len == 0) {
        return 1;
    }
    k = alog_ent_key(sh, e, &klen);
    return klen >= it->prefix_len && memcmp(k, it->prefix, it->prefix_len) == 0;
}

/* The pos of every entry in tag group `tag` of shard `si`: the highest hash
 * the group can hold (below UINT64_MAX, which alog_hash never returns). */
static uint64_t
iter_group_pos(unsigned si, uint32_t tag)
{
    uint64_t pos = ((uint64_t)si << (64 - ALOG_SHARD_BITS)) |
                   ((uint64_t)tag << (32 - ALOG_SHARD_BITS)) |
                   ((UINT64_C(1) << (32 - ALOG_SHARD_BITS)) - 1);

    return pos < UINT64_MAX ? pos : UINT64_MAX - 1;
}

/* Room for n more bytes in the batch buffer. */
static int
iter_reserve(struct kvd_iter *it, size_t n)
{
    if (it->blen + n > it->bcap) {
        size_t cap = it->bcap ? it->bcap : 64 * 1024;
        unsigned char *nb;
        while (cap < it->blen + n) {
            cap *= 2;
        }
        nb = realloc(it->buf, cap);
        if (nb == NULL) {
            return KVD_ENOMEM;
        }
        it->buf = nb;
        it->bcap = cap;
    }
    return 0;
}

/* Copy entry e (shard lock held), reported at pos, into the batch. A
 * record inside its segment's map is read there once: its key length comes
 * from its header, and the header and crc are checked against the slot. */
static int
iter_take(struct kvd_iter *it, const struct alog_shard *sh,
          const struct alog_ent *e, uint64_t pos)
{
    alog_db *db = it->db;
    struct iter_item *item = &it->items[it->nitems];
    struct alog_seg *seg = alog_ent_seg(&db->ix, e);
    int64_t expire = alog_ent_expire(sh, e);
    const unsigned char *rec = alog_seg_at(seg, e->off, ALOG_REC_HDR_BYTES);
    const unsigned char *key = NULL;
    size_t klen;
    uint64_t total;
    int rc;

    if ((it->flags & KVD_ITER_KEYS_ONLY) || rec == NULL) {
        key = alog_ent_key(sh, e, &klen);
    } else {
        klen = alog_get_u16(rec + 6);
    }
    total = alog_rec_bytes(klen, e->vlen);
    rc = iter_reserve(it, key != NULL && rec != NULL ? klen : (size_t)total);
    if (rc != 0) {
        return rc;
    }
    item->klen = klen;
    item->vlen = e->vlen;
    item->expire_ms = expire;
    item->pos = pos;
    item->koff = it->blen;
    item->voff = it->blen + klen;
    if (it->flags & KVD_ITER_KEYS_ONLY) {
        memcpy(it->buf + it->blen, key, klen);
        it->blen += klen;
        it->nitems++;
        return 0;
    }
    if (rec != NULL) {
        rec = alog_seg_at(seg, e->off, total);
    }
    if (rec != NULL) {
        it->map_reads++;
        if (!rec_hdr_matches(rec, total, klen, e->vlen, expire)) {
            return report_corrupt(db, seg->id, e->off);
        }
    } else {
        unsigned char *p = it->buf + it->blen;
        it->preads++;
        if (key == NULL) { /* the header was mapped, the record is not */
            key = alog_ent_key(sh, e, &klen);
            if (alog_rec_bytes(klen, e->vlen) != total) {
                return report_corrupt(db, seg->id, e->off);
            }
        }
        if (db->io->pread(seg->fd, p, total, (off_t)e->off) != (ssize_t)total) {
            return report_corrupt(db, seg->id, e->off);
        }
        rec = p;
        if (!rec_matches(rec, total, key, klen, e->vlen, expire)) {
            return report_corrupt(db, seg->id, e->off);
        }
    }
    /* key and value, header dropped (memmove: a pread put rec here) */
    memmove(it->buf + it->blen, rec + ALOG_REC_HDR_BYTES, klen + e->vlen);
    it->blen += klen + e->vlen;
    it->nitems++;
    return 0;
}

static int
iter_grow_ents(struct kvd_iter *it, size_t need)
{
    const struct alog_ent **ne;
    uint64_t *nh;
    struct iter_item *ni;
    size_t cap = it->ecap ? it->ecap : ALOG_ITER_BATCH * 2;

    if (need <= it->ecap) {
        return 0;
    }
    while (cap < need) {
        cap *= 2;
    }
    ne = realloc(it->ents, cap * sizeof(*ne));
    if (ne == NULL) {
        return KVD_ENOMEM;
    }
    it->ents = ne;
    nh = realloc(it->poss, cap * sizeof(*nh));
    if (nh == NULL) {
        return KVD_ENOMEM;
    }
    it->poss = nh;
    ni = realloc(it->items, cap * sizeof(*ni));
    if (ni == NULL) {
        return KVD_ENOMEM;
    }
    it->items = ni;
    it->ecap = cap;
    return 0;
}

/* Gather wanted entries of shard si (lock held) from it->pos on, in slot
 * (= tag) order, each with its group's pos. Whole tag groups are taken: a
 * batch ends only where the tag changes. Returns the count (or a negative
 * status); *end is set when the shard has no more slots. */
static long
iter_gather(struct kvd_iter *it, unsigned si, int64_t now, int *end)
{
    struct alog_shard *sh = &it->db->ix.shards[si];
    uint32_t ptag = alog_hash_tag(it->pos);
    /* a start inside ptag's group (a hand-made cursor): that group is
     * filtered by full hash */
    int inside = (it->pos & ((UINT64_C(1) << (32 - ALOG_SHARD_BITS)) - 1)) != 0;
    uint32_t prev = 0;
    size_t n = 0;
    size_t bytes = 0;
    size_t i;

    /* an entry with a tag >= ptag sits at or after ptag's home slot */
    for (i = alog_shard_home(sh, ptag); i < sh->nslots; i++) {
        const struct alog_ent *e = &sh->slots[i];

        if (i + 8 < sh->nslots) {
            __builtin_prefetch(&sh->slots[i + 8], 0, 1);
        }
        if (!(e->flags & ALOG_ENT_USED) || e->tag < ptag) {
            continue;
        }
        if ((n >= ALOG_ITER_BATCH || bytes >= ALOG_ITER_BATCH_BYTES) &&
            e->tag != prev) {
            break;
        }
        prev = e->tag;
        if (!iter_wants(it, sh, e, now)) {
            continue;
        }
        if (inside && e->tag == ptag) {
            size_t klen;
            const unsigned char *k = alog_ent_key(sh, e, &klen);
            if (alog_hash(&it->db->ix, k, klen) < it->pos) {
                continue;
            }
        }
        if (iter_grow_ents(it, n + 1) != 0) {
            return KVD_ENOMEM;
        }
        it->ents[n] = e;
        it->poss[n] = iter_group_pos(si, e->tag);
        n++;
        bytes += e->vlen + 16; /* the key's length is not read here */
    }
    *end = i >= sh->nslots;
    return (long)n;
}

/* Prefetch the cache lines of the record at p with a vlen-byte value,
 * up to ALOG_ITER_AHEAD_LINES of them: the crc check reads every line of
 * the record (a 16-byte key and a 100-byte value make 152 bytes, three or
 * four lines); a longer value is streamed by the copy anyway. A 16-byte
 * key is assumed: its length is in the key arena, one more load. */
static inline void
iter_prefetch_rec(const unsigned char *p, uint32_t vlen)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)63;
    uintptr_t end = (uintptr_t)p + ALOG_REC_HDR_BYTES + 16 + vlen;
    unsigned n = 0;

    for (; a < end && n < ALOG_ITER_AHEAD_LINES; a += 64, n++) {
        __builtin_prefetch((const void *)a, 0, 0);
    }
}

/* Fill the next batch. Returns 1 when something was buffered, 0 at the
 * end, or an error. */
static int
iter_fill(struct kvd_iter *it)
{
    alog_db *db = it->db;
    int64_t now = db->host->now_ms(db->host);

    it->nitems = 0;
    it->next = 0;
    it->blen = 0;
    while (!it->done) {
        unsigned si = (unsigned)(it->pos >> (64 - ALOG_SHARD_BITS));
        struct alog_shard *sh = &db->ix.shards[si];
        int end = 0;
        long n;
        int rc = 0;

        pthread_rwlock_rdlock(&sh->lock);
        n = iter_gather(it, si, now, &end);
        for (long i = 0; i < n && rc == 0; i++) {
            /* keys only: the keys come from the arena, not the record */
            if (i + ALOG_ITER_AHEAD < n &&
                !(it->flags & KVD_ITER_KEYS_ONLY)) {
                const struct alog_ent *a = it->ents[i + ALOG_ITER_AHEAD];
                const unsigned char *p =
                    alog_seg_at(alog_ent_seg(&db->ix, a), a->off, 1);
                if (p != NULL) {
                    iter_prefetch_rec(p, a->vlen);
                }
            }
            rc = iter_take(it, sh, it->ents[i], it->poss[i]);
        }
        pthread_rwlock_unlock(&sh->lock);
        kvd_counter_add(&db->c.iter_map_reads, it->map_reads);
        kvd_counter_add(&db->c.iter_preads, it->preads);
        it->map_reads = 0;
        it->preads = 0;
        if (n < 0 || rc != 0) {
            it->nitems = 0;
            return n < 0 ? (int)n : rc;
        }
        if (n > 0) {
            /* whole tag groups were taken: nothing at or below the last
             * group's pos is left (iter_group_pos < UINT64_MAX) */
            it->pos = it->items[n - 1].pos + 1;
            return 1;
        }
        if (!end) {
            continue; /* cannot happen: an empty gather reaches the end */
        }
        if (si + 1 >= ALOG_SHARDS) {
            it->done = 1;
        } else {
            it->pos = (uint64_t)(si + 1) << (64 - ALOG_SHARD_BITS);
        }
    }
    return 0;
}

static int
alog_iter_next(kvd_iter *it, struct kvd_entry *out)
{
    const struct iter_item *item;

    if (it->next >= it->nitems) {
        int rc = iter_fill(it);
        if (rc <= 0) {
            return rc == 0 ? KVD_ENOTFOUND : rc;
        }
    }
    item = &it->items[it->next++];
    out->key = it->buf + item->koff;
    out->klen = item->klen;
    out->val = (it->flags & KVD_ITER_KEYS_ONLY) ? NULL : it->buf + item->voff;
    out->vlen = item->vlen;
    out->expire_ms = item->expire_ms;
    out->pos = item->pos;
    return 0;
}

static void
alog_iter_close(kvd_iter *it)
{
    if (it == NULL) {
        return;
    }
    free(it->items);
    free(it->ents);
    free(it->poss);
    free(it->buf);
    free(it->prefix);
    free(it);
}

/* ---- stats ---- */

static void
index_totals(alog_db *db, struct kvd_engine_stats *st)
{
    int64_t now = db->host->now_ms(db->host);

    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &db->ix.shards[i];
        pthread_rwlock_rdlock(&sh->lock);
        st->keys += sh->live_keys;
        st->key_bytes += sh->key_bytes;
        st->value_bytes += sh->value_bytes;
        st->mem_bytes += sh->mem_bytes;
        /* expired keys are not live: only shards with expiring keys need
         * a walk */
        if (sh->expiring > 0) {
            for (size_t j = 0; j < sh->nslots; j++) {
                const struct alog_ent *e = &sh->slots[j];
                if ((e->flags & ALOG_ENT_USED) &&
                    !(e->flags & ALOG_ENT_TOMBSTONE) &&
                    alog_is_expired(alog_ent_expire(sh, e), now)) {
                    st->keys--;
                    st->key_bytes -= alog_ent_klen(sh, e);
                    st->value_bytes -= e->vlen;
                }
            }
        }
        pthread_rwlock_unlock(&sh->lock);
    }
}

static int
alog_stats(kvd_engine *db, struct kvd_engine_stats *out, kvd_stat_fn fn,
           void *ctx)
{
    struct kvd_engine_stats st;
    uint64_t live = 0;
    uint64_t dead = 0;
    uint64_t data_bytes = 0;
    uint64_t hint_bytes = 0;
    uint64_t syncs;
    uint64_t sync_waits;
    size_t nsegs;
    size_t n;

    memset(&st, 0, sizeof(st));
    index_totals(db, &st);
    pthread_mutex_lock(&db->seg_mu);
    nsegs = db->nsegs;
    for (size_t i = 0; i < db->nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        uint64_t size = atomic_load(&s->size);
        uint64_t l = atomic_load(&s->live_bytes);
        live += l;
        dead += size - ALOG_FILE_HDR_BYTES - l;
        data_bytes += size;
        hint_bytes += atomic_load(&s->hint_bytes);
    }
    st.mem_bytes += db->segs_cap * sizeof(*db->segs) +
                    nsegs * sizeof(struct alog_seg) + sizeof(*db);
    pthread_mutex_unlock(&db->seg_mu);
    st.disk_bytes = data_bytes + hint_bytes;
    st.readonly = alog_check_writable(db) != 0;
    st.ready = atomic_load(&db->ready);
    kvd_ro_state(db->ro, st.state, sizeof(st.state));

    n = out->struct_size < sizeof(st) ? out->struct_size : sizeof(st);
    st.struct_size = out->struct_size;
    memcpy(out, &st, n);
    if (fn == NULL) {
        return 0;
    }
    /* fsyncs also counts the roll's, merges' and new files' fdatasyncs */
    kvd_commit_stats(db->commit, &syncs, &sync_waits);
    fn(ctx, "live_bytes", live);
    fn(ctx, "dead_bytes", dead);
    fn(ctx, "segments", nsegs);
    fn(ctx, "data_bytes", data_bytes);
    fn(ctx, "hint_bytes", hint_bytes);
    fn(ctx, "index_bytes", st.mem_bytes);
    fn(ctx, "index_bytes_per_key", st.keys ? st.mem_bytes / st.keys : 0);
    fn(ctx, "get_preads_total", kvd_counter_get(&db->c.get_preads));
    fn(ctx, "get_map_reads_total", kvd_counter_get(&db->c.get_map_reads));
    fn(ctx, "iter_preads_total", kvd_counter_get(&db->c.iter_preads));
    fn(ctx, "iter_map_reads_total", kvd_counter_get(&db->c.iter_map_reads));
    fn(ctx, "puts_total", kvd_counter_get(&db->c.puts));
    fn(ctx, "dels_total", kvd_counter_get(&db->c.dels));
    fn(ctx, "batches_total", kvd_counter_get(&db->c.batches));
    fn(ctx, "multi_calls_total", kvd_counter_get(&db->c.multi_calls));
    fn(ctx, "multi_appends_total", kvd_counter_get(&db->c.multi_appends));
    fn(ctx, "fsyncs_total", kvd_counter_get(&db->c.fsyncs));
    fn(ctx, "sync_waits_total", sync_waits);
    fn(ctx, "rolls_total", kvd_counter_get(&db->c.rolls));
    fn(ctx, "merges_total", kvd_counter_get(&db->c.merges));
    fn(ctx, "merge_running", kvd_counter_get(&db->c.merge_running));
    fn(ctx, "merge_input_bytes", kvd_counter_get(&db->c.merge_input_bytes));
    fn(ctx, "merge_done_bytes", kvd_counter_get(&db->c.merge_done_bytes));
    fn(ctx, "merge_throttle_ms_total",
       kvd_counter_get(&db->c.merge_throttle_ms));
    fn(ctx, "merge_written_bytes_total",
       kvd_counter_get(&db->c.merge_bytes_written));
    fn(ctx, "merge_reclaimed_bytes_total",
       kvd_counter_get(&db->c.merge_bytes_reclaimed));
    fn(ctx, "hint_files_written_total",
       kvd_counter_get(&db->c.hint_files_written));
    fn(ctx, "hint_scans_total", kvd_counter_get(&db->c.hint_scans));
    fn(ctx, "corrupt_records_total", kvd_counter_get(&db->c.corrupt_records));
    fn(ctx, "torn_tail_bytes", kvd_counter_get(&db->c.torn_tail_bytes));
    fn(ctx, "recovery_ms", (uint64_t)db->recovery_ms);
    fn(ctx, "recovery_cpu_us", (uint64_t)db->recovery_cpu_us);
    fn(ctx, "recovery_files_us", (uint64_t)db->recovery_files_us);
    fn(ctx, "recovery_hint_read_us", (uint64_t)db->recovery_hint_read_us);
    fn(ctx, "recovery_index_us", (uint64_t)db->recovery_index_us);
    fn(ctx, "recovery_scan_us", (uint64_t)db->recovery_scan_us);
    fn(ctx, "recovery_tidy_us", (uint64_t)db->recovery_tidy_us);
    fn(ctx, "recovery_records", db->recovered_records);
    fn(ctx, "recovery_index_file", (uint64_t)db->recovered_from_index);
    fn(ctx, "index_file_owned", (uint64_t)atomic_load(&db->ixfile_owned));
    fn(ctx, "recovery_hint_files", db->recovered_hint_files);
    fn(ctx, "recovery_scanned_files", db->recovered_scanned_files);
    fn(ctx, "readonly", (uint64_t)st.readonly);
    return 0;
}

/* ---- sync / maintain ---- */

static int
alog_sync_op(kvd_engine *db, struct kvd_err *err)
{
    char why[ALOG_STATE_BYTES];
    int rc;

    if (alog_check_writable(db) != 0) {
        return kvd_err_set(err, KVD_EREADONLY, "log: %s", alog_why(db, why));
    }
    rc = kvd_commit_sync_all(db->commit);
    if (rc != 0) {
        return kvd_err_set(err, rc, "log: sync: %s", alog_why(db, why));
    }
    return 0;
}

/* Drop expired keys from the index; their records become dead bytes. */
static int
reap_expired(alog_db *db)
{
    int64_t now = db->host->now_ms(db->host);

    pthread_mutex_lock(&db->wlock);
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &db->ix.shards[i];
        pthread_rwlock_wrlock(&sh->lock);
        for (size_t j = 0; sh->expiring > 0 && j < sh->nslots;) {
            struct alog_ent *e = &sh->slots[j];
            if ((e->flags & ALOG_ENT_USED) &&
                alog_is_expired(alog_ent_expire(sh, e), now)) {
                alog_index_drop_locked(db, sh, e); /* j holds the next */
            } else {
                j++;
            }
        }
        alog_shard_maybe_shrink_locked(sh);
        pthread_rwlock_unlock(&sh->lock);
    }
    pthread_mutex_unlock(&db->wlock);
    return 0;
}

static int
alog_maintain(kvd_engine *db, int op, struct kvd_err *err)
{
    switch (op) {
    case KVD_MAINT_COMPACT:
        return alog_merge_all(db, err);
    case KVD_MAINT_EXPIRE:
        return reap_expired(db);
    default:
        return kvd_err_set(err, KVD_ENOTSUP,
                           "log: maintenance operation %d is not supported",
                           op);
    }
}

/* Durable only when every write waits for its fdatasync. */
static uint32_t
alog_instance_caps(kvd_engine *db)
{
    return db->opts.sync == ALOG_SYNC_ALWAYS ? ALOG_CAPS | KVD_CAP_DURABLE
                                             : ALOG_CAPS;
}

/* ---- the exported vtable ---- */

KVD_EXPORT const struct kvd_engine_vtable kvd_engine_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_engine_vtable),
    .name = "log",
    .version = ALOG_VERSION,
    .description = "append-only log segments with an in-memory hash index: "
                   "gets from read-only maps, crash-safe, background merge",
    .caps = ALOG_CAPS,
    .max_key_bytes = ALOG_MAX_KEY_BYTES,
    .max_value_bytes = ALOG_MAX_VALUE_BYTES,
    .options = alog_options,
    .options_size = sizeof(struct alog_opts),
    .open = alog_open,
    .close = alog_close,
    .get = alog_get,
    .put = alog_put_op,
    .del = alog_del_op,
    .batch = alog_batch_op,
    .iter_open = alog_iter_open,
    .iter_next = alog_iter_next,
    .iter_close = alog_iter_close,
    .stats = alog_stats,
    .sync = alog_sync_op,
    .maintain = alog_maintain,
    .clear = NULL,
    .instance_caps = alog_instance_caps,
    .multi = alog_multi,
    .check_options = alog_check_options,
};
