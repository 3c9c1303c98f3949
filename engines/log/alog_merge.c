/*
 * alog_merge.c -- merging immutable segments (compaction).
 *
 * A merge rewrites the live records of a set of sealed segments (the
 * inputs) into new segments with hint files, then switches them in:
 *
 *   1. pick inputs (sealed segments past merge_ratio dead bytes, or all
 *      sealed segments on demand) and the tombstone floor: the lowest
 *      sequence number any surviving segment may hold;
 *   2. scan the inputs; a record is copied (same seq, same bytes) when the
 *      index still points at it and it has not expired. A tombstone, or an
 *      expired or overwritten record with an expiry, is kept as a tombstone
 *      only if it is newer than the floor and no newer live version exists:
 *      otherwise no surviving file can hold an older version it would have
 *      to hide. This is what stops deleted keys from coming back;
 *   3. outputs are written as NNNNNNNN.data.tmp/.hint.tmp, synced, renamed,
 *      and the directory synced. Crash here: inputs and outputs coexist,
 *      the outputs only duplicate records (same seq) the inputs hold, so
 *      recovery resolves to the same state;
 *   4. the commit point: a MERGE file naming the inputs is written
 *      (tmp, fsync, rename, directory fsync). From here on recovery
 *      deletes every listed input before loading (alog_merge_commit_replay),
 *      so the inputs disappear as one, never partially;
 *   5. the index moves each copied key to its new place only if it still
 *      points at the old one (a write that raced the merge wins); entries
 *      still on an input (expired, or unreadable) are dropped;
 *   6. inputs are removed from the segment list and unlinked, then MERGE.
 *
 * Merge writes are paced to merge_rate bytes/s (merge_pace), and its
 * progress (input bytes scanned of the total) is in stats.
 *
 * Readers and writers run throughout: writers append to the active segment
 * (never an input), readers pread inputs until step 5 moves their entries
 * under the shard write locks.
 *
 * Locking: merge_mu is held for the whole merge (one at a time; the hint
 * writer takes it too, so it never races a merge deleting its segment).
 * Failure before the commit removes the outputs; any failed write or fsync
 * makes the engine read-only, as everywhere.
 */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALOG_MERGE_WBUF_BYTES (1u << 20)
#define ALOG_MERGE_FILE       "MERGE"

struct merge_reloc {
    struct alog_seg *old;
    uint32_t old_off;
    uint32_t new_off;
    size_t hint_pos; /* of the key's hint entry in the output's hint buffer */
};

struct merge_out {
    struct alog_seg *seg;
    struct alog_hint_buf hb;
    unsigned char *wbuf;
    size_t wlen;
    uint64_t flushed; /* file bytes already written */
    struct merge_reloc *rel;
    size_t nrel;
    size_t relcap;
    int renamed;
};

struct merge_ctx {
    alog_db *db;
    int64_t t0_ms;        /* when the merge started writing */
    uint64_t paced_bytes; /* written so far, for merge_rate */
    uint64_t inputs_done; /* input bytes of the inputs fully scanned */
    struct alog_seg **in;
    size_t nin;
    uint64_t floor;
    int64_t now;
    struct merge_out *outs;
    size_t nouts;
    uint64_t tombstones_kept;
};

/* ---- commit record ---- */

static void
merge_path(const alog_db *db, char *buf)
{
    snprintf(buf, ALOG_PATH_BYTES, "%s/%s", db->dir, ALOG_MERGE_FILE);
}

static int
commit_write(alog_db *db, struct alog_seg **in, size_t nin)
{
    uint32_t *ids = malloc((nin ? nin : 1) * sizeof(*ids));
    int rc;

    if (ids == NULL) {
        return KVD_ENOMEM;
    }
    for (size_t i = 0; i < nin; i++) {
        ids[i] = in[i]->id;
    }
    rc = alog_idlist_write(db, ALOG_MERGE_FILE, ALOG_FILE_MERGE_COMMIT, ids,
                           nin);
    free(ids);
    return rc;
}

static int
unlink_seg_files(alog_db *db, uint32_t id)
{
    char path[ALOG_PATH_BYTES];
    int rc = 0;

    alog_seg_path(db, path, id, "hint");
    if (db->io->unlink(path) != 0 && errno != ENOENT) {
        rc = kvd_errno_status(errno);
    }
    alog_seg_path(db, path, id, "data");
    if (db->io->unlink(path) != 0 && errno != ENOENT) {
        rc = kvd_errno_status(errno);
    }
    return rc;
}

int
alog_merge_commit_replay(alog_db *db, uint32_t **retired, size_t *nretired,
                         struct kvd_err *err)
{
    char path[ALOG_PATH_BYTES];
    uint32_t *ids = NULL;
    size_t n = 0;
    int rc;

    *retired = NULL;
    *nretired = 0;
    merge_path(db, path);
    rc =
        alog_idlist_read(db, ALOG_MERGE_FILE, ALOG_FILE_MERGE_COMMIT, &ids, &n);
    if (rc == KVD_ENOTFOUND) {
        return 0; /* no merge was interrupted after its commit */
    }
    if (rc != 0) {
        /* keeping every file is always safe: outputs only duplicate */
        ALOG_LOG(db, KVD_LOG_ERROR,
                 "log: merge commit file %s is damaged: ignored, all "
                 "segments kept",
                 path);
        kvd_counter_add(&db->c.corrupt_records, 1);
        rc = 0;
        goto out_remove;
    }
    ALOG_LOG(db, KVD_LOG_INFO,
             "log: finishing an interrupted merge: removing %zu input "
             "segments",
             n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = unlink_seg_files(db, ids[i]);
    }
    if (rc == 0) {
        rc = alog_fsync_dir(db);
    }
    if (rc != 0) {
        rc = kvd_err_set(err, rc,
                         "log: removing the inputs of an interrupted merge "
                         "in %s failed: %s",
                         db->dir, strerror(errno));
        free(ids);
        return rc;
    }
    *retired = ids;
    *nretired = n;
    ids = NULL;
out_remove:
    free(ids);
    if (db->io->unlink(path) != 0 || alog_fsync_dir(db) != 0) {
        rc = kvd_err_set(err, KVD_EIO, "log: unlink %s: %s", path,
                         strerror(errno));
    }
    return rc;
}

/* ---- outputs ---- */

/* Sleep as needed so the merge's writes stay within merge_rate. */
static void
merge_pace(struct merge_ctx *m, uint64_t bytes)
{
    alog_db *db = m->db;
    int64_t due;
    int64_t now;

    if (db->opts.merge_rate == 0) {
        return;
    }
    m->paced_bytes += bytes;
    due = m->t0_ms + (int64_t)(m->paced_bytes * 1000 / db->opts.merge_rate);
    now = kvd_mono_ms(db->host);
    if (due > now) {
        struct timespec ts = {(due - now) / 1000,
                              ((due - now) % 1000) * 1000000};
        kvd_counter_add(&db->c.merge_throttle_ms, (uint64_t)(due - now));
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}

static int
out_flush(struct merge_ctx *m, struct merge_out *o)
{
    alog_db *db = m->db;
    size_t n = o->wlen;
    int rc;

    if (n == 0) {
        return 0;
    }
    rc = kvd_file_write_full(db->io, o->seg->fd, o->wbuf, n, o->flushed);
    if (rc == 0) {
        o->flushed += n;
        kvd_counter_add(&db->c.merge_bytes_written, n);
        o->wlen = 0;
        merge_pace(m, n);
    }
    return rc;
}

static int
out_new(struct merge_ctx *m)
{
    alog_db *db = m->db;
    struct merge_out *outs;
    struct merge_out *o;
    uint32_t id;
    int rc;

    outs = realloc(m->outs, (m->nouts + 1) * sizeof(*outs));
    if (outs == NULL) {
        return KVD_ENOMEM;
    }
    m->outs = outs;
    o = &outs[m->nouts];
    memset(o, 0, sizeof(*o));
    o->wbuf = malloc(ALOG_MERGE_WBUF_BYTES);
    if (o->wbuf == NULL) {
        return KVD_ENOMEM;
    }
    pthread_mutex_lock(&db->seg_mu);
    id = db->next_id++;
    pthread_mutex_unlock(&db->seg_mu);
    rc = alog_seg_create(db, id, ALOG_FILE_MERGED, 0, 1, &o->seg);
    if (rc != 0) {
        free(o->wbuf);
        return kvd_ro_fail(db->ro, rc, "merge: create %s/%08u.data.tmp",
                           db->dir, (unsigned)id);
    }
    o->flushed = ALOG_FILE_HDR_BYTES;
    m->nouts++;
    return 0;
}

/* Append one record (raw bytes, flags cleared) to the current output. */
static int
out_append(struct merge_ctx *m, const struct alog_scan_rec *r, int kind,
           uint32_t *new_off, size_t *hint_pos)
{
    alog_db *db = m->db;
    struct merge_out *o = m->nouts ? &m->outs[m->nouts - 1] : NULL;
    uint64_t total = kind == ALOG_REC_DEL ? alog_rec_bytes(r->h.klen, 0)
                                          : alog_rec_total(&r->h);
    uint64_t size;
    struct alog_hint_ent he;
    unsigned char *p;
    int rc;

    if (o == NULL ||
        (atomic_load(&o->seg->size) > ALOG_FILE_HDR_BYTES &&
         atomic_load(&o->seg->size) + total > db->opts.segment_size)) {
        rc = out_new(m);
        if (rc != 0) {
            return rc;
        }
        o = &m->outs[m->nouts - 1];
    }
    if (o->wlen + total > ALOG_MERGE_WBUF_BYTES) {
        rc = out_flush(m, o);
        if (rc != 0) {
            return kvd_ro_fail(db->ro, rc, "merge: write %s/%08u.data.tmp",
                               db->dir, (unsigned)o->seg->id);
        }
    }
    if (total > ALOG_MERGE_WBUF_BYTES) {
        p = malloc(total); /* a record larger than the buffer */
        if (p == NULL) {
            return KVD_ENOMEM;
        }
    } else {
        p = o->wbuf + o->wlen;
    }
    if (kind == ALOG_REC_DEL && r->h.kind != ALOG_REC_DEL) {
        /* an expired put becomes a tombstone with the same seq */
        struct alog_rec_hdr h = r->h;
        h.kind = ALOG_REC_DEL;
        h.flags = 0;
        h.vlen = 0;
        h.expire_ms = 0;
        memcpy(p + ALOG_REC_HDR_BYTES, r->key, r->h.klen);
        alog_rec_seal(p, &h);
    } else if (r->h.flags != 0) {
        /* an operation of a batch stands alone in the output */
        struct alog_rec_hdr h = r->h;
        h.flags = 0;
        memcpy(p, r->raw, total);
        alog_rec_seal(p, &h);
    } else {
        memcpy(p, r->raw, total);
    }
    size = atomic_load(&o->seg->size);
    if (p != o->wbuf + o->wlen) {
        rc = out_flush(m, o);
        if (rc == 0) {
            rc = kvd_file_write_full(db->io, o->seg->fd, p, total, o->flushed);
        }
        free(p);
        if (rc != 0) {
            return kvd_ro_fail(db->ro, rc, "merge: write %s/%08u.data.tmp",
                               db->dir, (unsigned)o->seg->id);
        }
        o->flushed += total;
        kvd_counter_add(&db->c.merge_bytes_written, total);
        merge_pace(m, total);
    } else {
        o->wlen += total;
    }
    atomic_store(&o->seg->size, size + total);
    if (r->h.seq < atomic_load(&o->seg->min_seq)) {
        atomic_store(&o->seg->min_seq, r->h.seq);
    }
    if (r->h.seq > atomic_load(&o->seg->max_seq)) {
        atomic_store(&o->seg->max_seq, r->h.seq);
    }
    he.seq = r->h.seq;
    he.expire_ms = kind == ALOG_REC_DEL ? 0 : r->h.expire_ms;
    he.off = (uint32_t)size;
    he.vlen = kind == ALOG_REC_DEL ? 0 : r->h.vlen;
    he.klen = r->h.klen;
    he.kind = (uint8_t)kind;
    *hint_pos = o->hb.buf.len ? o->hb.buf.len : ALOG_FILE_HDR_BYTES;
    *new_off = (uint32_t)size;
    return alog_hint_add(&o->hb, &he, r->key);
}

static int
add_reloc(struct merge_out *o, struct alog_seg *old, uint32_t old_off,
          uint32_t new_off, size_t hint_pos)
{
    if (o->nrel == o->relcap) {
        size_t cap = o->relcap ? o->relcap * 2 : 1024;
        struct merge_reloc *n = realloc(o->rel, cap * sizeof(*n));
        if (n == NULL) {
            return KVD_ENOMEM;
        }
        o->rel = n;
        o->relcap = cap;
    }
    o->rel[o->nrel].old = old;
    o->rel[o->nrel].old_off = old_off;
    o->rel[o->nrel].new_off = new_off;
    o->rel[o->nrel].hint_pos = hint_pos;
    o->nrel++;
    return 0;
}

/* The seq of the record e points at (shard lock held: the segment stays),
 * 0 when it cannot be read (then a tombstone is kept: safe). */
static uint64_t
index_rec_seq(alog_db *db, const struct alog_ent *e)
{
    struct alog_seg *s = alog_ent_seg(&db->ix, e);
    unsigned char hdr[ALOG_REC_HDR_BYTES];
    const unsigned char *p = alog_seg_at(s, e->off, ALOG_REC_HDR_BYTES);
    struct alog_rec_hdr h;
    size_t got = 0;

    if (p == NULL) {
        if (kvd_file_read_full(db->io, s->fd, hdr, sizeof(hdr), e->off, &got) !=
                0 ||
            got != sizeof(hdr)) {
            return 0;
        }
        p = hdr;
    }
    alog_rec_hdr_decode(p, &h);
    return h.seq;
}

/* Decide the fate of one input record (see the file comment, step 2). */
static int
merge_rec(void *arg, struct alog_seg *seg, const struct alog_scan_rec *r)
{
    struct merge_ctx *m = arg;
    uint64_t hash = alog_hash(&m->db->ix, r->key, r->h.klen);

    atomic_store_explicit(&m->db->c.merge_done_bytes, m->inputs_done + r->off,
                          memory_order_relaxed);
    struct alog_shard *sh = alog_index_shard(&m->db->ix, hash);
    struct alog_ent *e;
    int live = 0;
    int newer = 0;
    uint32_t new_off;
    size_t hint_pos;
    int rc;

    pthread_rwlock_rdlock(&sh->lock);
    e = alog_shard_find_locked(sh, hash, r->key, r->h.klen);
    if (e != NULL) {
        live = alog_ent_seg(&m->db->ix, e) == seg && e->off == r->off;
        /* the index does not keep seqs: read the one of its record (a
         * delete not yet published under sync = always can be newer than
         * the index's record) */
        newer = !live && index_rec_seq(m->db, e) > r->h.seq;
    }
    pthread_rwlock_unlock(&sh->lock);

    if (r->h.kind == ALOG_REC_PUT && live &&
        !alog_is_expired(r->h.expire_ms, m->now)) {
        rc = out_append(m, r, ALOG_REC_PUT, &new_off, &hint_pos);
        if (rc == 0) {
            rc = add_reloc(&m->outs[m->nouts - 1], seg, r->off, new_off,
                           hint_pos);
        }
        return rc;
    }
    if ((r->h.kind == ALOG_REC_DEL || r->h.expire_ms != 0) && !newer &&
        r->h.seq > m->floor) {
        m->tombstones_kept++;
        return out_append(m, r, ALOG_REC_DEL, &new_off, &hint_pos);
    }
    return 0;
}

/* ---- switch-in ---- */

static int
in_inputs(const struct merge_ctx *m, const struct alog_seg *s)
{
    for (size_t i = 0; i < m->nin; i++) {
        if (m->in[i] == s) {
            return 1;
        }
    }
    return 0;
}

/* Step 5: move index entries from the inputs to the outputs. */
static void
switch_index(struct merge_ctx *m)
{
    alog_db *db = m->db;
    uint64_t dropped = 0;

    for (size_t i = 0; i < m->nouts; i++) {
        struct merge_out *o = &m->outs[i];
        for (size_t j = 0; j < o->nrel; j++) {
            const struct merge_reloc *rl = &o->rel[j];
            const unsigned char *key =
                o->hb.buf.p + rl->hint_pos + ALOG_HINT_ENT_BYTES;
            uint16_t klen = alog_get_u16(o->hb.buf.p + rl->hint_pos + 24);
            uint64_t hash = alog_hash(&db->ix, key, klen);
            struct alog_shard *sh = alog_index_shard(&db->ix, hash);
            struct alog_ent *e;
            uint64_t bytes;

            pthread_rwlock_wrlock(&sh->lock);
            e = alog_shard_find_locked(sh, hash, key, klen);
            if (e != NULL && alog_ent_seg(&db->ix, e) == rl->old &&
                e->off == rl->old_off) {
                uint16_t slot = alog_index_seg_slot(&db->ix, o->seg);
                if (slot != 0) {
                    bytes = alog_rec_bytes(klen, e->vlen);
                    atomic_fetch_sub(&rl->old->live_bytes, bytes);
                    atomic_fetch_add(&o->seg->live_bytes, bytes);
                    e->seg = slot;
                    e->off = rl->new_off;
                }
            }
            pthread_rwlock_unlock(&sh->lock);
        }
    }
    /* whatever still points at an input was not copied: expired since,
     * or unreadable (already logged by the scan) */
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &db->ix.shards[i];
        pthread_rwlock_wrlock(&sh->lock);
        for (size_t j = 0; j < sh->nslots;) {
            struct alog_ent *e = &sh->slots[j];
            struct alog_seg *es = alog_ent_seg(&db->ix, e);
            if ((e->flags & ALOG_ENT_USED) && es != NULL && es->merging) {
                if (!alog_is_expired(alog_ent_expire(sh, e), m->now)) {
                    dropped++;
                }
                alog_index_drop_locked(db, sh, e); /* j holds the next */
            } else {
                j++;
            }
        }
        alog_shard_maybe_shrink_locked(sh);
        pthread_rwlock_unlock(&sh->lock);
    }
    if (dropped > 0) {
        ALOG_LOG(db, KVD_LOG_ERROR,
                 "log: merge dropped %llu keys whose records were "
                 "unreadable (see the corruption messages above)",
                 (unsigned long long)dropped);
    }
}

static void
outs_release(alog_db *db, struct merge_ctx *m, int remove_files)
{
    char path[ALOG_PATH_BYTES];

    for (size_t i = 0; i < m->nouts; i++) {
        struct merge_out *o = &m->outs[i];
        if (remove_files) {
            /* A renamed output stays: the commit may have reached the disk
             * even though a later step failed, and then the next open
             * deletes the inputs. Outputs only duplicate input records, so
             * keeping them is safe either way. */
            if (!o->renamed) {
                alog_seg_path(db, path, o->seg->id, "data.tmp");
                db->io->unlink(path);
            }
            alog_seg_path(db, path, o->seg->id, "hint.tmp");
            db->io->unlink(path);
            alog_seg_unref(db, o->seg);
        }
        alog_hint_buf_release(&o->hb);
        free(o->wbuf);
        free(o->rel);
    }
    free(m->outs);
    m->outs = NULL;
    m->nouts = 0;
}

/* Steps 3 and 4. */
static int
outs_finish(struct merge_ctx *m)
{
    alog_db *db = m->db;
    char from[ALOG_PATH_BYTES];
    char to[ALOG_PATH_BYTES];
    int rc = 0;

    for (size_t i = 0; i < m->nouts && rc == 0; i++) {
        struct merge_out *o = &m->outs[i];
        rc = out_flush(m, o);
        if (rc == 0) {
            kvd_counter_add(&db->c.fsyncs, 1);
            if (db->io->fdatasync(o->seg->fd) != 0) {
                rc = kvd_errno_status(errno);
            }
        }
        if (rc == 0) {
            rc = alog_hint_save(db, o->seg, &o->hb, atomic_load(&o->seg->size),
                                1);
            if (rc == 0) {
                kvd_counter_add(&db->c.hint_files_written, 1);
            }
        }
        if (rc != 0) {
            return kvd_ro_fail(db->ro, rc, "merge: write %s/%08u.data.tmp",
                               db->dir, (unsigned)o->seg->id);
        }
    }
    for (size_t i = 0; i < m->nouts; i++) {
        struct merge_out *o = &m->outs[i];
        alog_seg_path(db, from, o->seg->id, "data.tmp");
        alog_seg_path(db, to, o->seg->id, "data");
        if (db->io->rename(from, to) != 0) {
            return kvd_ro_fail(db->ro, kvd_errno_status(errno),
                               "merge: rename %s", from);
        }
        o->renamed = 1;
        alog_seg_path(db, from, o->seg->id, "hint.tmp");
        alog_seg_path(db, to, o->seg->id, "hint");
        if (db->io->rename(from, to) != 0) {
            return kvd_ro_fail(db->ro, kvd_errno_status(errno),
                               "merge: rename %s", from);
        }
    }
    rc = alog_fsync_dir(db);
    if (rc == 0) {
        rc = commit_write(db, m->in, m->nin);
    }
    if (rc != 0) {
        return kvd_ro_fail(db->ro, rc, "merge: commit in %s", db->dir);
    }
    return 0;
}

/* Step 6. */
static int
inputs_remove(struct merge_ctx *m)
{
    alog_db *db = m->db;
    char path[ALOG_PATH_BYTES];
    int rc = 0;

    pthread_mutex_lock(&db->seg_mu);
    for (size_t i = 0; i < m->nouts; i++) {
        struct merge_out *o = &m->outs[i];
        o->seg->sealed = 1;
        if (alog_segs_add_locked(db, o->seg) != 0) {
            rc = KVD_ENOMEM;
        }
    }
    for (size_t i = 0; i < m->nin; i++) {
        alog_segs_remove_locked(db, m->in[i]);
    }
    pthread_mutex_unlock(&db->seg_mu);
    if (rc != 0) {
        return kvd_ro_fail(db->ro, rc, "merge: segment list");
    }
    /* the inputs leave the MANIFEST before their files go */
    rc = alog_manifest_write(db);
    if (rc != 0) {
        return kvd_ro_fail(db->ro, rc, "merge: write %s/%s", db->dir,
                           ALOG_MANIFEST_FILE);
    }
    for (size_t i = 0; i < m->nin && rc == 0; i++) {
        rc = unlink_seg_files(db, m->in[i]->id);
    }
    if (rc == 0) {
        rc = alog_fsync_dir(db);
    }
    merge_path(db, path);
    if (rc == 0 && db->io->unlink(path) != 0) {
        rc = kvd_errno_status(errno);
    }
    if (rc == 0) {
        rc = alog_fsync_dir(db);
    }
    if (rc != 0) {
        /* MERGE stays: the next open finishes the removal */
        return kvd_ro_fail(db->ro, rc, "merge: removing inputs in %s", db->dir);
    }
    return 0;
}

/* Choose inputs under seg_mu. all: every sealed segment. */
static int
select_inputs(struct merge_ctx *m, int all)
{
    alog_db *db = m->db;
    uint64_t dead_total = 0;
    int rc = 0;

    pthread_mutex_lock(&db->seg_mu);
    m->in = calloc(db->nsegs ? db->nsegs : 1, sizeof(*m->in));
    if (m->in == NULL) {
        rc = KVD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < db->nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        uint64_t bytes = atomic_load(&s->size) - ALOG_FILE_HDR_BYTES;
        uint64_t dead = bytes - atomic_load(&s->live_bytes);
        if (!s->sealed || s->merging) {
            continue;
        }
        if (all || (db->opts.merge_ratio > 0 &&
                    dead * 100 >= (uint64_t)db->opts.merge_ratio * bytes)) {
            m->in[m->nin++] = s;
            dead_total += dead;
        }
    }
    /* on demand, merge even without dead bytes: expired keys and
     * tombstones only go away by being rewritten */
    if (m->nin == 0 ||
        (!all && (dead_total == 0 || dead_total < db->opts.merge_min_dead))) {
        m->nin = 0;
        goto out;
    }
    m->floor = UINT64_MAX;
    for (size_t i = 0; i < db->nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        uint64_t ms = atomic_load(&s->min_seq);
        if (!in_inputs(m, s) && ms < m->floor) {
            m->floor = ms;
        }
    }
    /* segments created later hold only records newer than the active
     * segment's min_seq, which is part of the minimum above */
    for (size_t i = 0; i < m->nin; i++) {
        m->in[i]->merging = 1;
    }
out:
    pthread_mutex_unlock(&db->seg_mu);
    return rc;
}

static int
merge_run(alog_db *db, int all, struct kvd_err *err)
{
    char why[ALOG_STATE_BYTES];
    struct merge_ctx m = {.db = db};
    uint64_t in_bytes = 0;
    uint64_t out_bytes = 0;
    int rc;

    if (alog_check_writable(db) != 0) {
        return kvd_err_set(err, KVD_EREADONLY, "log: %s", alog_why(db, why));
    }
    m.now = db->host->now_ms(db->host);
    rc = select_inputs(&m, all);
    if (rc != 0 || m.nin == 0) {
        free(m.in);
        return rc == 0 ? 0 : kvd_err_set(err, rc, "log: merge: no memory");
    }
    for (size_t i = 0; i < m.nin; i++) {
        in_bytes += atomic_load(&m.in[i]->size);
    }
    atomic_store(&db->c.merge_input_bytes, in_bytes);
    atomic_store(&db->c.merge_done_bytes, 0);
    atomic_store(&db->c.merge_running, 1);
    m.t0_ms = kvd_mono_ms(db->host);
    for (size_t i = 0; i < m.nin && rc == 0; i++) {
        struct alog_scan_result res;
        rc = alog_scan_segment(db, m.in[i], atomic_load(&m.in[i]->size), 0, 0,
                               merge_rec, &m, &res);
        m.inputs_done += atomic_load(&m.in[i]->size);
        atomic_store(&db->c.merge_done_bytes, m.inputs_done);
        if (rc != 0 && alog_check_writable(db) == 0) {
            kvd_ro_fail(db->ro, rc, "merge: reading %s/%08u.data", db->dir,
                        (unsigned)m.in[i]->id);
        }
    }
    if (rc == 0) {
        rc = outs_finish(&m);
    }
    if (rc != 0) {
        outs_release(db, &m, 1);
        pthread_mutex_lock(&db->seg_mu);
        for (size_t i = 0; i < m.nin; i++) {
            m.in[i]->merging = 0;
        }
        pthread_mutex_unlock(&db->seg_mu);
        free(m.in);
        atomic_store(&db->c.merge_running, 0);
        return kvd_err_set(err, rc, "log: merge failed: %s", alog_why(db, why));
    }
    switch_index(&m);
    rc = inputs_remove(&m);
    for (size_t i = 0; i < m.nouts; i++) {
        out_bytes += atomic_load(&m.outs[i].seg->size);
    }
    ALOG_LOG(db, KVD_LOG_INFO,
             "log: merged %zu segments (%llu bytes) into %zu (%llu bytes), "
             "%llu tombstones kept",
             m.nin, (unsigned long long)in_bytes, m.nouts,
             (unsigned long long)out_bytes,
             (unsigned long long)m.tombstones_kept);
    kvd_counter_add(&db->c.merges, 1);
    atomic_store(&db->c.merge_running, 0);
    if (in_bytes > out_bytes) {
        kvd_counter_add(&db->c.merge_bytes_reclaimed, in_bytes - out_bytes);
    }
    outs_release(db, &m, 0);
    for (size_t i = 0; i < m.nin; i++) {
        alog_seg_unref(db, m.in[i]);
    }
    free(m.in);
    if (rc != 0) {
        return kvd_err_set(err, rc, "log: merge: %s", alog_why(db, why));
    }
    return 0;
}

int
alog_merge_maybe(alog_db *db)
{
    int rc;

    pthread_mutex_lock(&db->merge_mu);
    rc = merge_run(db, 0, NULL);
    pthread_mutex_unlock(&db->merge_mu);
    return rc;
}

int
alog_merge_all(alog_db *db, struct kvd_err *err)
{
    char why[ALOG_STATE_BYTES];
    int rc;

    /* seal the active segment so that everything written so far merges */
    rc = alog_roll(db);
    if (rc != 0) {
        return kvd_err_set(err, rc, "log: compact: %s", alog_why(db, why));
    }
    pthread_mutex_lock(&db->merge_mu);
    rc = merge_run(db, 1, err);
    pthread_mutex_unlock(&db->merge_mu);
    return rc;
}
