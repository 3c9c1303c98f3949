/*
 * lsm_write.c -- the write path of the lsm engine: put, del, batch, multi,
 * the WAL append, group commit, memtable switches, write stalls and the
 * read-only switch.
 *
 * A write encodes its WAL record (one batch: seq u64 | count u32 | ops)
 * outside any lock. Under wlock it makes room (switching to a fresh
 * memtable and WAL when the current one is full, delaying or waiting when
 * flushing or compaction falls behind), reserves the memtable bytes so the
 * insert cannot fail, takes sequence numbers, appends the record with one
 * pwrite, inserts into the memtable and publishes the new last sequence
 * number. A failed append is never retried: the engine turns read-only.
 *
 * Durability (sync = always): after the append a writer waits until the
 * WAL position it reached is durable. The first waiter becomes the leader
 * and calls fdatasync for everyone who appended up to then; the others
 * sleep on sync_cv (group commit). A switch to a new WAL syncs the old one
 * first (unless sync = never), so the durable position only ever covers a
 * prefix of the history. With sync = always the WAL is preallocated in
 * chunks of zeros (wal_chunk), so most of those syncs flush data only.
 *
 * Stalls: at l0_slowdown L0 tables each write sleeps 1 ms once; at
 * l0_stop, or while the previous memtable is still being flushed, writers
 * wait on done_cv. Each kind of stall is logged once when it starts, and
 * the time spent is counted in stall_us.
 */
#include "lsm_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lsm_coding.h"

#define LSM_STACK_REC_BYTES 1024
#define LSM_SLOWDOWN_US     1000
#define LSM_STALL_LOG_MS    10000

static int64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- read-only ---- */

int
lsm_fail(lsm_db *db, int rc, const char *fmt, ...)
{
    char what[LSM_STATE_BYTES];
    va_list ap;
    int first;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&db->state_mu);
    first = !atomic_load(&db->readonly);
    if (first) {
        /* a long path may be cut short in the state; the log has it all */
        if (snprintf(db->state, sizeof(db->state), "read-only: %s: %s", what,
                     lsm_status_text(rc)) < 0) {
            db->state[0] = '\0';
        }
        atomic_store(&db->readonly, 1);
    }
    pthread_mutex_unlock(&db->state_mu);
    if (first) {
        LSM_LOG(db, KVD_LOG_ERROR,
                "lsm: %s: %s; the store is read-only from now on (a failed "
                "write or fsync is never retried)",
                what, lsm_status_text(rc));
        /* wake writers waiting for a flush that will not come */
        pthread_mutex_lock(&db->mu);
        pthread_cond_broadcast(&db->done_cv);
        pthread_mutex_unlock(&db->mu);
        pthread_mutex_lock(&db->sync_mu);
        pthread_cond_broadcast(&db->sync_cv);
        pthread_mutex_unlock(&db->sync_mu);
    }
    return rc;
}

/* ---- batch encoding ---- */

static size_t
op_bytes(size_t klen, int type, size_t vlen)
{
    size_t n = 1 + lsm_varint_len(klen) + klen;
    if (type != LSM_T_DEL) {
        size_t stored = vlen + (type == LSM_T_PUTX ? 8 : 0);
        n += lsm_varint_len(stored) + stored;
    }
    return n;
}

static unsigned char *
op_encode(unsigned char *p, int type, const void *key, size_t klen,
          int64_t expire_ms, const void *val, size_t vlen)
{
    *p++ = (unsigned char)type;
    p = lsm_put_varint64(p, klen);
    memcpy(p, key, klen);
    p += klen;
    if (type == LSM_T_DEL) {
        return p;
    }
    p = lsm_put_varint64(p, vlen + (type == LSM_T_PUTX ? 8 : 0));
    if (type == LSM_T_PUTX) {
        lsm_store64(p, (uint64_t)expire_ms);
        p += 8;
    }
    if (vlen > 0) {
        memcpy(p, val, vlen);
    }
    return p + vlen;
}

static void
hdr_encode(unsigned char *p, uint64_t seq, uint32_t count)
{
    lsm_store64(p, seq);
    lsm_put32(p + 8, count);
}

int
lsm_batch_decode(const void *buf, size_t n, uint64_t *first_seq,
                 uint32_t *count, lsm_batch_fn fn, void *ctx)
{
    const uint8_t *p = buf;
    const uint8_t *end = p + n;
    uint64_t seq;
    uint32_t cnt;

    if (n < LSM_BATCH_HDR_BYTES) {
        return KVD_ECORRUPT;
    }
    seq = lsm_load64(p);
    cnt = lsm_get32(p + 8);
    p += LSM_BATCH_HDR_BYTES;
    if (seq == 0 || seq > LSM_SEQ_MAX || cnt == 0 ||
        seq + cnt - 1 > LSM_SEQ_MAX) {
        return KVD_ECORRUPT;
    }
    for (uint32_t i = 0; i < cnt; i++) {
        int type;
        uint64_t klen;
        uint64_t vlen = 0;
        const uint8_t *key;
        struct lsm_slice v = {NULL, 0};
        int rc;

        if (p >= end) {
            return KVD_ECORRUPT;
        }
        type = *p++;
        if (type != LSM_T_DEL && type != LSM_T_PUT && type != LSM_T_PUTX) {
            return KVD_ECORRUPT;
        }
        p = lsm_get_varint64(p, end, &klen);
        if (p == NULL || klen == 0 || klen > LSM_MAX_KEY_BYTES ||
            klen > (uint64_t)(end - p)) {
            return KVD_ECORRUPT;
        }
        key = p;
        p += klen;
        if (type != LSM_T_DEL) {
            p = lsm_get_varint64(p, end, &vlen);
            if (p == NULL || vlen > (uint64_t)(end - p) ||
                (type == LSM_T_PUTX && vlen < 8)) {
                return KVD_ECORRUPT;
            }
            v.p = p;
            v.n = (size_t)vlen;
            p += vlen;
        }
        if (fn != NULL) {
            rc = fn(ctx, seq + i, type, key, (size_t)klen, v);
            if (rc != 0) {
                return rc;
            }
        }
    }
    if (p != end) {
        return KVD_ECORRUPT;
    }
    *first_seq = seq;
    *count = cnt;
    return 0;
}

/* ---- WAL files and memtable switch ---- */

/*
 * The WAL's preallocation step. With sync = always every write waits for
 * an fdatasync, and one after an append that grows the file also commits
 * the new size (a metadata journal commit: about 110 us against 80 us for
 * a pure data flush on the disk this was measured on). So the WAL is
 * extended ahead of its records by writing real zeros (fallocate's
 * unwritten extents would need a metadata change at the first write
 * into them), and only the sync after each extension pays for the size.
 * A quarter of the memtable, 4 KiB to 1 MiB, so a WAL (about a
 * memtable's worth of records) is extended a few times and a tiny
 * memtable does not leave big files. Not with everysec or never: one
 * sync a second gains nothing and the zeros double the WAL's disk
 * writes.
 */
static uint64_t
wal_chunk(const lsm_db *db)
{
    uint64_t c = db->opts.memtable_size / 4;

    if (db->opts.sync != LSM_SYNC_ALWAYS) {
        return 0;
    }
    c = (c + LSM_WAL_PREALLOC_MIN_BYTES - 1) / LSM_WAL_PREALLOC_MIN_BYTES *
        LSM_WAL_PREALLOC_MIN_BYTES;
    if (c < LSM_WAL_PREALLOC_MIN_BYTES) {
        c = LSM_WAL_PREALLOC_MIN_BYTES;
    }
    return c > LSM_WAL_PREALLOC_MAX_BYTES ? LSM_WAL_PREALLOC_MAX_BYTES : c;
}

int
lsm_wal_create(lsm_db *db, uint64_t number, struct lsm_walf **out)
{
    char tpath[LSM_PATH_BYTES];
    char path[LSM_PATH_BYTES];
    unsigned char hdr[LSM_FILE_HDR_BYTES];
    struct lsm_logw w;
    struct lsm_walf *wf;
    int fd;
    int rc;

    lsm_path(db, tpath, number, "log.tmp");
    lsm_path(db, path, number, "log");
    fd = db->io->open(tpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return kvd_errno_status(errno);
    }
    lsm_file_hdr_encode(hdr, LSM_FILE_KIND_WAL,
                        atomic_load(&db->visible_seq) + 1);
    lsm_logw_init(&w, db->io, fd, 0);
    rc = lsm_logw_add(&w, hdr, sizeof(hdr));
    if (rc == 0) {
        /* the first chunk of zeros goes out with the header's sync; a
         * failure only means no preallocation (the appends grow the
         * file instead, and report a bad disk themselves) */
        (void)lsm_logw_prealloc(&w, wal_chunk(db));
    }
    lsm_logw_release(&w);
    if (rc == 0) {
        lsm_count(&db->c.fsyncs, 1);
        if (db->io->fdatasync(fd) != 0) {
            rc = kvd_errno_status(errno);
        } else if (db->io->rename(tpath, path) != 0) {
            rc = kvd_errno_status(errno);
        } else {
            rc = lsm_fsync_dir(db);
        }
    }
    wf = rc == 0 ? calloc(1, sizeof(*wf)) : NULL;
    if (rc == 0 && wf == NULL) {
        rc = KVD_ENOMEM;
    }
    if (rc != 0) {
        db->io->close(fd);
        db->io->unlink(tpath);
        return rc;
    }
    atomic_init(&wf->refs, 1);
    wf->fd = fd;
    wf->number = number;
    wf->off = w.off;
    wf->alloc = w.alloc;
    wf->chunk = w.chunk;
    *out = wf;
    return 0;
}

void
lsm_wal_attach(lsm_db *db, struct lsm_walf *wf)
{
    struct lsm_walf *old = db->wal;

    db->wal = wf;
    db->walw.io = db->io;
    db->walw.fd = wf->fd;
    db->walw.off = wf->off;
    db->walw.alloc = wf->alloc;
    db->walw.chunk = wf->chunk;
    lsm_walf_unref(db, old);
}

/* Freeze the writers' memtable and start a new one with a new WAL
 * (wlock held). */
static int
switch_locked(lsm_db *db)
{
    struct lsm_walf *nw = NULL;
    struct lsm_view *old;
    lsm_mem *nm = NULL;
    uint64_t number;
    int rc;

    if (db->opts.sync != LSM_SYNC_NEVER && db->wal != NULL) {
        /* the old WAL must be complete on disk before the next one takes
         * writes, or a crash could keep a later write and lose an
         * earlier one */
        lsm_count(&db->c.fsyncs, 1);
        if (db->io->fdatasync(db->wal->fd) != 0) {
            rc = kvd_errno_status(errno);
            return lsm_fail(db, rc, "fdatasync %s/%06llu.log", db->dir,
                            (unsigned long long)db->wal->number);
        }
        pthread_mutex_lock(&db->sync_mu);
        if (db->synced < db->written) {
            db->synced = db->written;
        }
        pthread_cond_broadcast(&db->sync_cv);
        pthread_mutex_unlock(&db->sync_mu);
    }
    number = lsm_new_file_number(db);
    rc = lsm_wal_create(db, number, &nw);
    if (rc != 0) {
        return lsm_fail(db, rc, "create %s/%06llu.log", db->dir,
                        (unsigned long long)number);
    }
    rc = lsm_mem_create(number, &nm);
    if (rc != 0) {
        char path[LSM_PATH_BYTES];
        lsm_path(db, path, number, "log");
        db->io->unlink(path);
        lsm_walf_unref(db, nw);
        return rc;
    }
    pthread_mutex_lock(&db->mu);
    rc = lsm_view_install_locked(db, nm, db->view->mem, db->view->v, &old);
    pthread_mutex_unlock(&db->mu);
    if (rc != 0) {
        lsm_mem_unref(nm);
        lsm_walf_unref(db, nw);
        return rc;
    }
    lsm_view_put(old);
    lsm_mem_unref(nm); /* the view holds it */
    db->wmem = nm;
    lsm_wal_attach(db, nw);
    lsm_bg_wake(db);
    return 0;
}

static void
stall_note(lsm_db *db, int kind)
{
    static const char *const why[] = {
        "",
        "writes slowed down (1 ms each): level 0 has reached l0_slowdown "
        "tables and compaction is behind",
        "writes stopped: level 0 has reached l0_stop tables; waiting for "
        "compaction",
        "writes stopped: the previous memtable is still being flushed",
    };

    pthread_mutex_lock(&db->mu);
    if (atomic_load(&db->stall) != kind) {
        atomic_store(&db->stall, kind);
        /* once per episode, and at most every LSM_STALL_LOG_MS per kind
         * under a sustained overload */
        if (kind != LSM_STALL_NONE &&
            (db->stall_logged_ms[kind] == 0 ||
             mono_us() / 1000 >=
                 db->stall_logged_ms[kind] + LSM_STALL_LOG_MS)) {
            db->stall_logged_ms[kind] = mono_us() / 1000;
            LSM_LOG(db, KVD_LOG_WARN,
                    "lsm: %s (%d level-0 tables; stall_us counts the time)",
                    why[kind], atomic_load(&db->l0_files));
        }
    }
    pthread_mutex_unlock(&db->mu);
}

/* Wait on done_cv while cond holds (wlock held, mu not). */
static void
wait_progress(lsm_db *db, int kind)
{
    int64_t t0 = mono_us();

    stall_note(db, kind);
    lsm_count(&db->c.stops, 1);
    pthread_mutex_lock(&db->mu);
    for (;;) {
        bool still;
        if (atomic_load(&db->readonly) || db->bg_stop) {
            break;
        }
        if (kind == LSM_STALL_MEMTABLE) {
            still = atomic_load(&db->imm_pending);
        } else {
            still = atomic_load(&db->l0_files) >= db->opts.l0_stop;
        }
        if (!still) {
            break;
        }
        pthread_cond_wait(&db->done_cv, &db->mu);
    }
    pthread_mutex_unlock(&db->mu);
    lsm_count(&db->c.stall_us, (uint64_t)(mono_us() - t0));
}

/* Make sure the writers' memtable has room (wlock held). With force, a
 * non-empty memtable is frozen whatever its size. */
static int
make_room_locked(lsm_db *db, bool force)
{
    bool delayed = false;

    for (;;) {
        int l0 = atomic_load(&db->l0_files);

        if (atomic_load(&db->readonly)) {
            return KVD_EREADONLY;
        }
        if (!force && !delayed && db->opts.auto_compact &&
            l0 >= db->opts.l0_slowdown) {
            /* a short delay for every write spreads the cost of a
             * falling-behind compaction instead of one long stop */
            int64_t t0 = mono_us();
            stall_note(db, LSM_STALL_SLOW);
            pthread_mutex_unlock(&db->wlock);
            usleep(LSM_SLOWDOWN_US);
            pthread_mutex_lock(&db->wlock);
            lsm_count(&db->c.slowdowns, 1);
            lsm_count(&db->c.stall_us, (uint64_t)(mono_us() - t0));
            delayed = true;
            continue;
        }
        if (force ? lsm_mem_entries(db->wmem) == 0
                  : lsm_mem_bytes(db->wmem) < db->opts.memtable_size) {
            if (!delayed && atomic_load(&db->stall) != LSM_STALL_NONE) {
                stall_note(db, LSM_STALL_NONE);
            }
            return 0;
        }
        if (atomic_load(&db->imm_pending)) {
            wait_progress(db, LSM_STALL_MEMTABLE);
            continue;
        }
        if (!force && db->opts.auto_compact && l0 >= db->opts.l0_stop) {
            wait_progress(db, LSM_STALL_L0);
            continue;
        }
        return switch_locked(db);
    }
}

int
lsm_force_switch(lsm_db *db)
{
    int rc;

    pthread_mutex_lock(&db->wlock);
    rc = make_room_locked(db, true);
    pthread_mutex_unlock(&db->wlock);
    return rc;
}

/* ---- group commit ---- */

int
lsm_sync_to(lsm_db *db, uint64_t target)
{
    int rc = 0;
    int waited = 0;

    pthread_mutex_lock(&db->sync_mu);
    while (db->synced < target) {
        struct lsm_walf *w;
        uint64_t pos;
        int frc = 0;

        if (atomic_load(&db->readonly)) {
            rc = KVD_EIO;
            break;
        }
        if (db->syncing) {
            waited = 1;
            pthread_cond_wait(&db->sync_cv, &db->sync_mu);
            continue;
        }
        db->syncing = 1;
        pthread_mutex_unlock(&db->sync_mu);

        /* everything appended so far is in the current WAL or in an
         * older one that the switch already synced */
        pthread_mutex_lock(&db->wlock);
        w = db->wal;
        atomic_fetch_add(&w->refs, 1);
        pos = db->written;
        pthread_mutex_unlock(&db->wlock);

        lsm_count(&db->c.fsyncs, 1);
        if (db->io->fdatasync(w->fd) != 0) {
            frc = kvd_errno_status(errno);
            lsm_fail(db, frc, "fdatasync %s/%06llu.log", db->dir,
                     (unsigned long long)w->number);
        }
        lsm_walf_unref(db, w);

        pthread_mutex_lock(&db->sync_mu);
        db->syncing = 0;
        if (frc == 0 && db->synced < pos) {
            db->synced = pos;
        }
        pthread_cond_broadcast(&db->sync_cv);
        if (frc != 0) {
            rc = frc;
            break;
        }
    }
    pthread_mutex_unlock(&db->sync_mu);
    if (waited) {
        lsm_count(&db->c.sync_waits, 1);
    }
    return rc;
}

int
lsm_sync_all(lsm_db *db)
{
    uint64_t target;

    pthread_mutex_lock(&db->wlock);
    target = db->written;
    pthread_mutex_unlock(&db->wlock);
    return lsm_sync_to(db, target);
}

static int
finish_write(lsm_db *db, int rc, uint64_t target)
{
    if (rc == 0 && db->opts.sync == LSM_SYNC_ALWAYS) {
        rc = lsm_sync_to(db, target);
    }
    return rc;
}

/* ---- the append ---- */

/*
 * Append payload (header seq not yet set) under wlock and insert its ops.
 * `one` describes a single op (put/del) inserted directly; otherwise ops
 * (n of them) are inserted. check_del: the single op is a delete that
 * must find a live key (snap is the sequence the caller's lookup saw).
 */
struct wreq {
    unsigned char *payload;
    size_t len;
    uint32_t count;
    size_t mem_bytes;
    /* single op */
    int type;
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    int64_t expire_ms;
    /* batch */
    const struct kvd_op *ops;
    /* delete with existence check */
    bool check_del;
    bool live;
    uint64_t snap;
};

/* Does key have a live value? *snap gets the snapshot looked at (under
 * wlock it is db->seq: no write can come in between). */
static int
is_live(lsm_db *db, const void *key, size_t klen, uint64_t *snap, bool *live)
{
    struct lsm_view *vw = lsm_view_get(db, snap);
    struct lsm_lookup l;
    int rc = lsm_lookup(db, vw, key, klen, *snap, &l);

    *live = false;
    if (rc == 0) {
        if (l.type == LSM_T_PUT) {
            *live = true;
        } else if (l.type == LSM_T_PUTX) {
            *live =
                !lsm_expired(lsm_val_expiry(l.val), db->host->now_ms(db->host));
        }
        lsm_lookup_release(&l);
    }
    lsm_view_put(vw);
    return rc == KVD_ENOTFOUND ? 0 : rc;
}

static int
op_type(const struct kvd_op *op)
{
    if (op->type == KVD_OP_DEL) {
        return LSM_T_DEL;
    }
    return op->expire_ms != 0 ? LSM_T_PUTX : LSM_T_PUT;
}

static int
commit(lsm_db *db, struct wreq *r)
{
    uint64_t target = 0;
    uint64_t seq;
    uint64_t before;
    int rc;

    pthread_mutex_lock(&db->wlock);
    rc = make_room_locked(db, false);
    if (rc == 0 && r->check_del && db->seq != r->snap) {
        /* writes came in since the caller's lookup: look again, now
         * that no writer can change the key */
        uint64_t snap;
        rc = is_live(db, r->key, r->klen, &snap, &r->live);
    }
    if (rc == 0 && r->check_del && !r->live) {
        rc = KVD_ENOTFOUND;
    }
    if (rc == 0) {
        rc = lsm_mem_reserve(db->wmem, r->mem_bytes);
    }
    if (rc == 0) {
        seq = db->seq + 1;
        hdr_encode(r->payload, seq, r->count);
        before = db->walw.off;
        rc = lsm_logw_add(&db->walw, r->payload, r->len);
        if (rc != 0) {
            lsm_fail(db, rc, "write %s/%06llu.log at offset %llu", db->dir,
                     (unsigned long long)db->wal->number,
                     (unsigned long long)before);
        }
    }
    if (rc == 0) {
        if (r->ops == NULL) {
            lsm_mem_add(db->wmem, seq, r->type, r->key, r->klen, r->expire_ms,
                        r->val, r->vlen);
        } else {
            for (uint32_t i = 0; i < r->count; i++) {
                const struct kvd_op *op = &r->ops[i];
                lsm_mem_add(db->wmem, seq + i, op_type(op), op->key, op->klen,
                            op->expire_ms, op->val, op->vlen);
            }
        }
        db->seq = seq + r->count - 1;
        db->written += db->walw.off - before;
        lsm_count(&db->c.wal_bytes, db->walw.off - before);
        atomic_store_explicit(&db->visible_seq, db->seq, memory_order_release);
        target = db->written;
    }
    pthread_mutex_unlock(&db->wlock);
    return finish_write(db, rc, target);
}

static int
check_key(size_t klen)
{
    if (klen == 0) {
        return KVD_EINVAL;
    }
    return klen > LSM_MAX_KEY_BYTES ? KVD_ETOOBIG : 0;
}

int
lsm_put(lsm_db *db, const void *key, size_t klen, const void *val, size_t vlen,
        int64_t expire_ms)
{
    unsigned char stackbuf[LSM_STACK_REC_BYTES];
    struct wreq r;
    int type = expire_ms != 0 ? LSM_T_PUTX : LSM_T_PUT;
    int rc = check_key(klen);

    if (rc != 0) {
        return rc;
    }
    if (vlen > LSM_MAX_VALUE_BYTES) {
        return KVD_ETOOBIG;
    }
    if (expire_ms < 0) {
        return KVD_EINVAL;
    }
    if (atomic_load(&db->readonly)) {
        return KVD_EREADONLY;
    }
    memset(&r, 0, sizeof(r));
    r.len = LSM_BATCH_HDR_BYTES + op_bytes(klen, type, vlen);
    r.payload = r.len <= sizeof(stackbuf) ? stackbuf : malloc(r.len);
    if (r.payload == NULL) {
        return KVD_ENOMEM;
    }
    op_encode(r.payload + LSM_BATCH_HDR_BYTES, type, key, klen, expire_ms, val,
              vlen);
    r.count = 1;
    r.mem_bytes = lsm_mem_entry_bytes(klen, vlen);
    r.type = type;
    r.key = key;
    r.klen = klen;
    r.val = val;
    r.vlen = vlen;
    r.expire_ms = expire_ms;
    rc = commit(db, &r);
    if (r.payload != stackbuf) {
        free(r.payload);
    }
    if (rc == 0) {
        lsm_count(&db->c.puts, 1);
        lsm_count(&db->c.user_bytes, klen + vlen);
    }
    return rc;
}

int
lsm_del(lsm_db *db, const void *key, size_t klen)
{
    unsigned char stackbuf[LSM_STACK_REC_BYTES];
    struct wreq r;
    int rc = check_key(klen);

    if (rc != 0) {
        return rc;
    }
    if (atomic_load(&db->readonly)) {
        return KVD_EREADONLY;
    }
    memset(&r, 0, sizeof(r));
    /* the lookup runs outside the write lock; commit repeats it under
     * the lock only if another write came in meanwhile */
    rc = is_live(db, key, klen, &r.snap, &r.live);
    if (rc != 0) {
        return rc;
    }
    if (!r.live && atomic_load_explicit(&db->visible_seq,
                                        memory_order_acquire) == r.snap) {
        /* nothing was written since the lookup: it stands (a write still
         * in flight is ordered after this delete) */
        return KVD_ENOTFOUND;
    }
    r.len = LSM_BATCH_HDR_BYTES + op_bytes(klen, LSM_T_DEL, 0);
    r.payload = r.len <= sizeof(stackbuf) ? stackbuf : malloc(r.len);
    if (r.payload == NULL) {
        return KVD_ENOMEM;
    }
    op_encode(r.payload + LSM_BATCH_HDR_BYTES, LSM_T_DEL, key, klen, 0, NULL,
              0);
    r.count = 1;
    r.mem_bytes = lsm_mem_entry_bytes(klen, 0);
    r.type = LSM_T_DEL;
    r.key = key;
    r.klen = klen;
    r.check_del = true;
    rc = commit(db, &r);
    if (r.payload != stackbuf) {
        free(r.payload);
    }
    if (rc == 0) {
        lsm_count(&db->c.dels, 1);
        lsm_count(&db->c.user_bytes, klen);
    }
    return rc;
}

static int
batch_check(const struct kvd_op *ops, size_t n, size_t *len, size_t *mem,
            struct kvd_err *err)
{
    uint64_t total = LSM_BATCH_HDR_BYTES;
    uint64_t membytes = 0;

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
            if (op->vlen > LSM_MAX_VALUE_BYTES) {
                return kvd_err_set(err, KVD_ETOOBIG,
                                   "batch op %zu: value of %zu bytes is "
                                   "over the limit of %u",
                                   i, op->vlen, LSM_MAX_VALUE_BYTES);
            }
            if (op->expire_ms < 0) {
                return kvd_err_set(err, KVD_EINVAL,
                                   "batch op %zu: negative expiry", i);
            }
        }
        total += op_bytes(op->klen, op_type(op),
                          op->type == KVD_OP_PUT ? op->vlen : 0);
        membytes += lsm_mem_entry_bytes(op->klen,
                                        op->type == KVD_OP_PUT ? op->vlen : 0);
        if (total > LSM_MAX_BATCH_BYTES) {
            return kvd_err_set(err, KVD_ETOOBIG,
                               "batch of %zu ops is over the limit of %u "
                               "bytes",
                               n, LSM_MAX_BATCH_BYTES);
        }
    }
    if (n > UINT32_MAX) {
        return kvd_err_set(err, KVD_ETOOBIG, "batch of %zu ops is too long", n);
    }
    *len = (size_t)total;
    *mem = (size_t)membytes;
    return 0;
}

int
lsm_batch(lsm_db *db, const struct kvd_op *ops, size_t n, struct kvd_err *err)
{
    unsigned char stackbuf[LSM_STACK_REC_BYTES];
    struct wreq r;
    unsigned char *p;
    uint64_t user = 0;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = batch_check(ops, n, &r.len, &r.mem_bytes, err);
    if (rc != 0 || n == 0) {
        return rc;
    }
    if (atomic_load(&db->readonly)) {
        return kvd_err_set(err, KVD_EREADONLY, "lsm: %s", db->state);
    }
    r.payload = r.len <= sizeof(stackbuf) ? stackbuf : malloc(r.len);
    if (r.payload == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "batch of %zu ops: out of memory",
                           n);
    }
    p = r.payload + LSM_BATCH_HDR_BYTES;
    for (size_t i = 0; i < n; i++) {
        const struct kvd_op *op = &ops[i];
        int put = op->type == KVD_OP_PUT;
        p = op_encode(p, op_type(op), op->key, op->klen, op->expire_ms, op->val,
                      put ? op->vlen : 0);
        user += op->klen + (put ? op->vlen : 0);
    }
    r.count = (uint32_t)n;
    r.ops = ops;
    rc = commit(db, &r);
    if (r.payload != stackbuf) {
        free(r.payload);
    }
    if (rc == 0) {
        lsm_count(&db->c.batches, 1);
        lsm_count(&db->c.user_bytes, user);
        return 0;
    }
    return kvd_err_set(err, rc, "lsm: batch of %zu ops: %s", n,
                       rc == KVD_EREADONLY ? db->state : lsm_status_text(rc));
}

/* ---- multi ---- */

/*
 * multi() runs the operations in array order, gathering consecutive
 * writes into a group that is appended as one WAL batch record (one
 * pwrite, one memtable switch check, one sequence range), and, with
 * sync = always, syncs once at the end of the call for all of them.
 *
 * A group is not atomic to the caller: each op has its own status. A
 * GET of a key the pending group writes commits the group first (so it
 * sees those writes); any other GET runs at once (different keys may take
 * effect in any order). A DEL reports whether its key existed: from the
 * group's own earlier op on that key when there is one, else from a
 * lookup in the store. A DEL that finds nothing writes nothing, as del()
 * does. Lookups run outside the write lock, like del()'s; under it the
 * group checks that nothing was written since the first of them, and
 * looks again if something was.
 *
 * Pending keys are found through a small open-addressing table of op
 * indices (generation-tagged, so a new group starts empty for free).
 */

struct mslot {
    size_t op;    /* index into ops */
    bool write;   /* a record goes to the WAL (a DEL that found the key) */
    bool from_db; /* a DEL whose answer came from a store lookup */
};

struct mhash_ent {
    size_t op1;   /* op index + 1 */
    uint64_t gen; /* valid in group generation gen only */
};

struct mstate {
    lsm_db *db;
    struct kvd_mop *ops;
    struct mslot *slots; /* the pending group */
    size_t nslots;
    struct mhash_ent *hash;
    size_t hmask;
    uint64_t gen;
    uint64_t snap; /* store snapshot of the group's first lookup */
    bool looked;   /* some DEL of the group asked the store */
    size_t bytes;  /* payload bytes of the group if every DEL writes */
    unsigned char *payload;
    size_t payload_cap;
    uint64_t target; /* WAL position to sync at the end (0 = none) */
};

static uint64_t
mhash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < klen; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

/* The pending op on key (the latest), or NULL. With `add`, op `idx`
 * becomes the key's latest. */
static struct kvd_mop *
mhash_find(struct mstate *ms, const void *key, size_t klen, bool add,
           size_t idx)
{
    size_t i = (size_t)mhash(key, klen) & ms->hmask;

    for (;; i = (i + 1) & ms->hmask) {
        struct mhash_ent *e = &ms->hash[i];
        struct kvd_mop *o;
        if (e->gen != ms->gen || e->op1 == 0) {
            if (add) {
                e->gen = ms->gen;
                e->op1 = idx + 1;
            }
            return NULL;
        }
        o = &ms->ops[e->op1 - 1];
        if (o->klen == klen && memcmp(o->key, key, klen) == 0) {
            if (add) {
                e->op1 = idx + 1;
            }
            return o;
        }
    }
}

static int
mop_type(const struct kvd_mop *op)
{
    if (op->type == KVD_MOP_DEL) {
        return LSM_T_DEL;
    }
    return op->expire_ms != 0 ? LSM_T_PUTX : LSM_T_PUT;
}

/* Encode the group's writes into ms->payload; returns the count. */
static uint32_t
mgroup_encode(struct mstate *ms, size_t *len, size_t *mem)
{
    unsigned char *p = ms->payload + LSM_BATCH_HDR_BYTES;
    uint32_t count = 0;

    *mem = 0;
    for (size_t i = 0; i < ms->nslots; i++) {
        const struct kvd_mop *op = &ms->ops[ms->slots[i].op];
        int put = op->type == KVD_MOP_PUT;
        if (!ms->slots[i].write) {
            continue;
        }
        p = op_encode(p, mop_type(op), op->key, op->klen,
                      put ? op->expire_ms : 0, put ? op->val : NULL,
                      put ? op->vlen : 0);
        *mem += lsm_mem_entry_bytes(op->klen, put ? op->vlen : 0);
        count++;
    }
    *len = (size_t)(p - ms->payload);
    return count;
}

/* Under wlock: when something was written since the group's lookups,
 * look again at the DELs that asked the store. True if an answer
 * changed. */
static int
mgroup_recheck_locked(struct mstate *ms, bool *changed)
{
    lsm_db *db = ms->db;

    *changed = false;
    if (!ms->looked || db->seq == ms->snap) {
        return 0;
    }
    for (size_t i = 0; i < ms->nslots; i++) {
        struct mslot *s = &ms->slots[i];
        struct kvd_mop *op = &ms->ops[s->op];
        uint64_t snap;
        bool live;
        int rc;
        if (!s->from_db) {
            continue;
        }
        rc = is_live(db, op->key, op->klen, &snap, &live);
        if (rc != 0) {
            return rc;
        }
        if (live != s->write) {
            s->write = live;
            op->status = live ? 0 : KVD_ENOTFOUND;
            *changed = true;
        }
    }
    return 0;
}

/* Append the pending group as one batch record and empty it. Statuses
 * of its ops are final afterwards (but for the sync at the end). */
static void
mgroup_commit(struct mstate *ms)
{
    lsm_db *db = ms->db;
    size_t len = 0;
    size_t mem = 0;
    uint32_t count;
    uint64_t seq = 0;
    uint64_t before;
    bool changed = false;
    int rc = 0;

    if (ms->nslots == 0) {
        return;
    }
    if (ms->bytes > ms->payload_cap) {
        unsigned char *nb = realloc(ms->payload, ms->bytes);
        if (nb == NULL) {
            rc = KVD_ENOMEM;
            goto out;
        }
        ms->payload = nb;
        ms->payload_cap = ms->bytes;
    }
    count = mgroup_encode(ms, &len, &mem);
    if (count == 0 && (!ms->looked || atomic_load_explicit(
                                          &db->visible_seq,
                                          memory_order_acquire) == ms->snap)) {
        goto out; /* only DELs that found nothing, and that still holds */
    }
    pthread_mutex_lock(&db->wlock);
    rc = make_room_locked(db, false);
    if (rc == 0) {
        rc = mgroup_recheck_locked(ms, &changed);
    }
    if (rc == 0 && changed) {
        count = mgroup_encode(ms, &len, &mem);
    }
    if (rc == 0 && count > 0) {
        rc = lsm_mem_reserve(db->wmem, mem);
    }
    if (rc == 0 && count > 0) {
        seq = db->seq + 1;
        hdr_encode(ms->payload, seq, count);
        before = db->walw.off;
        rc = lsm_logw_add(&db->walw, ms->payload, len);
        if (rc != 0) {
            lsm_fail(db, rc, "write %s/%06llu.log at offset %llu", db->dir,
                     (unsigned long long)db->wal->number,
                     (unsigned long long)before);
        }
    }
    if (rc == 0 && count > 0) {
        for (size_t i = 0; i < ms->nslots; i++) {
            const struct kvd_mop *op = &ms->ops[ms->slots[i].op];
            bool put = op->type == KVD_MOP_PUT;
            if (ms->slots[i].write) {
                lsm_mem_add(db->wmem, seq++, mop_type(op), op->key, op->klen,
                            put ? op->expire_ms : 0, put ? op->val : NULL,
                            put ? op->vlen : 0);
            }
        }
        db->seq = seq - 1;
        db->written += db->walw.off - before;
        lsm_count(&db->c.wal_bytes, db->walw.off - before);
        atomic_store_explicit(&db->visible_seq, db->seq, memory_order_release);
        ms->target = db->written;
    }
    pthread_mutex_unlock(&db->wlock);
out:
    for (size_t i = 0; i < ms->nslots; i++) {
        struct kvd_mop *op = &ms->ops[ms->slots[i].op];
        if (!ms->slots[i].write) {
            continue; /* a DEL that found nothing stays KVD_ENOTFOUND */
        }
        op->status = rc;
        if (rc == 0) {
            bool put = op->type == KVD_MOP_PUT;
            lsm_count(put ? &db->c.puts : &db->c.dels, 1);
            lsm_count(&db->c.user_bytes, op->klen + (put ? op->vlen : 0));
        }
    }
    ms->nslots = 0;
    ms->bytes = LSM_BATCH_HDR_BYTES;
    ms->looked = false;
    ms->gen++;
}

/* The status put/del would return before doing anything, or 0. */
static int
mop_check(lsm_db *db, const struct kvd_mop *op)
{
    int rc = check_key(op->klen);

    if (rc == 0 && op->type == KVD_MOP_PUT) {
        if (op->vlen > LSM_MAX_VALUE_BYTES) {
            rc = KVD_ETOOBIG;
        } else if (op->expire_ms < 0) {
            rc = KVD_EINVAL;
        }
    }
    if (rc == 0 && atomic_load(&db->readonly)) {
        rc = KVD_EREADONLY;
    }
    return rc;
}

/* Add write op i to the pending group (its status set provisionally). */
static void
mgroup_add(struct mstate *ms, size_t i)
{
    lsm_db *db = ms->db;
    struct kvd_mop *op = &ms->ops[i];
    bool put = op->type == KVD_MOP_PUT;
    size_t b = op_bytes(op->klen, mop_type(op), put ? op->vlen : 0);
    struct mslot *s;
    const struct kvd_mop *prev;

    if (ms->nslots > 0 &&
        (ms->bytes + b > LSM_MAX_BATCH_BYTES || ms->nslots == UINT32_MAX)) {
        mgroup_commit(ms);
    }
    s = &ms->slots[ms->nslots];
    s->op = i;
    s->write = true;
    s->from_db = false;
    prev = mhash_find(ms, op->key, op->klen, put, i);
    if (!put && prev != NULL) {
        /* the group's own earlier op on the key answers */
        s->write = prev->type == KVD_MOP_PUT &&
                   !lsm_expired(prev->expire_ms, db->host->now_ms(db->host));
    } else if (!put) {
        uint64_t snap;
        bool live;
        int rc = is_live(db, op->key, op->klen, &snap, &live);
        if (rc != 0) {
            op->status = rc; /* as del() would fail; not in the group */
            return;
        }
        if (!ms->looked) {
            ms->snap = snap;
            ms->looked = true;
        }
        s->write = live;
        s->from_db = true;
    }
    if (!put) {
        (void)mhash_find(ms, op->key, op->klen, true, i);
    }
    op->status = s->write ? 0 : KVD_ENOTFOUND;
    ms->bytes += b;
    ms->nslots++;
}

int
lsm_multi(lsm_db *db, struct kvd_mop *ops, size_t n)
{
    struct mstate ms;
    size_t hsize = 16;
    int rc = 0;

    memset(&ms, 0, sizeof(ms));
    ms.db = db;
    ms.ops = ops;
    ms.gen = 1;
    ms.bytes = LSM_BATCH_HDR_BYTES;
    while (hsize < 2 * n) {
        hsize *= 2;
    }
    ms.hmask = hsize - 1;
    ms.slots = n > 0 ? malloc(n * sizeof(*ms.slots)) : NULL;
    ms.hash = calloc(hsize, sizeof(*ms.hash));
    if ((n > 0 && ms.slots == NULL) || ms.hash == NULL) {
        rc = KVD_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            ops[i].status = rc;
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct kvd_mop *op = &ops[i];
        switch (op->type) {
        case KVD_MOP_GET:
            if (mhash_find(&ms, op->key, op->klen, false, 0) != NULL) {
                mgroup_commit(&ms); /* it must see the pending writes */
            }
            op->status = lsm_get(db, op->key, op->klen, &op->out);
            break;
        case KVD_MOP_PUT:
        case KVD_MOP_DEL:
            op->status = mop_check(db, op);
            if (op->status == 0) {
                mgroup_add(&ms, i);
            }
            break;
        default:
            op->status = KVD_EINVAL;
            break;
        }
    }
    mgroup_commit(&ms);
    if (ms.target > 0 && db->opts.sync == LSM_SYNC_ALWAYS) {
        int src = lsm_sync_to(db, ms.target);
        /* every write of the call is at or before ms.target: each
         * fails as its put/del would have */
        for (size_t i = 0; src != 0 && i < n; i++) {
            if (ops[i].type != KVD_MOP_GET && ops[i].status == 0) {
                ops[i].status = src;
            }
        }
    }
out:
    free(ms.slots);
    free(ms.hash);
    free(ms.payload);
    return rc;
}
