/*
 * alog_write.c -- the write path of the log engine: put, del, batch,
 * segment roll and group commit.
 *
 * Every write encodes its record(s) outside any lock, then under wlock
 * takes sequence numbers, seals the crc, appends with one pwrite at the end
 * of the active segment and updates the index, so the index changes in log
 * order. Index entries are allocated before the append: once a record is
 * in the log nothing can fail before the index reflects it.
 *
 * Durability (sync = always): after the append a writer waits until the
 * log position it reached is durable (db->commit, kvd/kit_commit.h: the
 * first waiter leads one fdatasync for everyone who appended up to that
 * point, through alog_commit_ops). Under sync = always a write is
 * published to readers only after that fdatasync succeeded: its index
 * change waits in db->pend (log order) and the sync op publishes the group
 * before it reports the new durable position; a failed fdatasync drops
 * them, so a write whose fsync failed never becomes visible, not even
 * until a restart. A failed write or fsync is never
 * retried (the kernel may have dropped the dirty pages): the engine turns
 * read-only (db->ro, kvd/kit_ro.h), the failing request gets the error and
 * every later write KVD_EREADONLY. Readers keep working.
 */
#include "alog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvd/kit_check.h"

#define ALOG_STACK_REC_BYTES 4096
/* Keeps offsets inside a segment below 4 GiB (they are u32). */
#define ALOG_MAX_BATCH_BYTES (ALOG_MAX_VALUE_BYTES + (512u << 20))

/* ---- index updates (caller holds wlock or is the only writer) ---- */

static void
seg_live_add(struct alog_seg *s, uint64_t n)
{
    atomic_fetch_add_explicit(&s->live_bytes, n, memory_order_relaxed);
}

static void
seg_live_sub(struct alog_seg *s, uint64_t n)
{
    atomic_fetch_sub_explicit(&s->live_bytes, n, memory_order_relaxed);
}

/* Point e (in sh, write lock held) at a new record. 0, or KVD_ENOMEM (no
 * room for its expiry, or the segment table is full): e is unchanged. */
int
alog_index_set_locked(alog_db *db, struct alog_shard *sh, struct alog_ent *e,
                      struct alog_seg *seg, uint32_t off, uint32_t vlen,
                      uint64_t seq, int64_t expire_ms)
{
    struct alog_seg *old = alog_ent_seg(&db->ix, e);
    uint16_t slot = alog_index_seg_slot(&db->ix, seg);
    size_t klen = alog_ent_klen(sh, e);

    if (slot == 0) {
        return KVD_ENOMEM;
    }
    alog_shard_unaccount_locked(sh, e);
    if (alog_ent_set_expire_locked(sh, e, expire_ms) != 0) {
        alog_shard_account_locked(sh, e);
        return KVD_ENOMEM;
    }
    if (old != NULL && !(e->flags & ALOG_ENT_TOMBSTONE)) {
        seg_live_sub(old, alog_rec_bytes(klen, e->vlen));
    }
    e->seg = slot;
    e->off = off;
    e->vlen = vlen;
    e->flags &= (uint8_t)~ALOG_ENT_TOMBSTONE;
    if (sh->rseq != NULL) {
        *alog_ent_seq(sh, e) = seq;
    }
    alog_shard_account_locked(sh, e);
    seg_live_add(seg, alog_rec_bytes(klen, vlen));
    return 0;
}

void
alog_index_drop_locked(alog_db *db, struct alog_shard *sh, struct alog_ent *e)
{
    struct alog_seg *old = alog_ent_seg(&db->ix, e);

    if (old != NULL && !(e->flags & ALOG_ENT_TOMBSTONE)) {
        seg_live_sub(old, alog_rec_bytes(alog_ent_klen(sh, e), e->vlen));
    }
    alog_shard_remove_locked(sh, e);
}

/* A key of a write on its way to the index (the index copies it into its
 * arena); allocated before the append so nothing fails after it. */
struct alog_key {
    uint64_t hash;
    size_t klen;
    unsigned char key[];
};

static struct alog_key *
alog_key_create(uint64_t hash, const void *key, size_t klen)
{
    struct alog_key *k = malloc(sizeof(*k) + klen);

    if (k != NULL) {
        k->hash = hash;
        k->klen = klen;
        memcpy(k->key, key, klen);
    }
    return k;
}

/* An index change of an appended record (see db->pend). */
struct alog_pending {
    struct alog_key *ent; /* the key */
    struct alog_seg *seg;
    uint64_t end; /* log position after the record */
    uint64_t seq;
    int64_t expire_ms;
    uint32_t off;
    uint32_t vlen;
    int del;
};

/* Link or update key (hash, key, klen) to point at a new record. Only
 * running out of memory can fail (the index arena or slots): the record is
 * in the log, so the engine turns read-only rather than serve a stale
 * value silently. */
static void
index_apply_put(alog_db *db, uint64_t hash, const void *key, size_t klen,
                struct alog_seg *seg, uint32_t off, uint32_t vlen, uint64_t seq,
                int64_t expire_ms)
{
    struct alog_shard *sh = alog_index_shard(&db->ix, hash);
    struct alog_ent *e;
    int fresh = 0;
    int rc = KVD_ENOMEM;

    pthread_rwlock_wrlock(&sh->lock);
    e = alog_shard_find_locked(sh, hash, key, klen);
    if (e == NULL) {
        e = alog_shard_insert_locked(sh, hash, key, klen);
        fresh = 1;
    }
    if (e != NULL) {
        rc = alog_index_set_locked(db, sh, e, seg, off, vlen, seq, expire_ms);
        if (rc != 0 && fresh) {
            alog_shard_remove_locked(sh, e);
        }
    }
    pthread_rwlock_unlock(&sh->lock);
    if (rc != 0) {
        (void)kvd_ro_fail(db->ro, rc, "index: no memory for a key");
    }
}

static void
index_apply_del(alog_db *db, uint64_t hash, const void *key, size_t klen)
{
    struct alog_shard *sh = alog_index_shard(&db->ix, hash);
    struct alog_ent *e;

    pthread_rwlock_wrlock(&sh->lock);
    e = alog_shard_find_locked(sh, hash, key, klen);
    if (e != NULL) {
        alog_index_drop_locked(db, sh, e);
        alog_shard_maybe_shrink_locked(sh);
    }
    pthread_rwlock_unlock(&sh->lock);
}

static int
deferring(const alog_db *db)
{
    return db->opts.sync == ALOG_SYNC_ALWAYS;
}

/* Room for n more pending changes (wlock held), so that nothing can fail
 * between an append and its index change. */
static int
pending_reserve_locked(alog_db *db, size_t n)
{
    struct alog_pending *np;
    size_t cap = db->pend_cap ? db->pend_cap : 64;

    if (!deferring(db) || db->npend + n <= db->pend_cap) {
        return 0;
    }
    while (cap < db->npend + n) {
        cap *= 2;
    }
    np = realloc(db->pend, cap * sizeof(*np));
    if (np == NULL) {
        return KVD_ENOMEM;
    }
    db->pend = np;
    db->pend_cap = cap;
    return 0;
}

static void
pending_push_locked(alog_db *db, struct alog_key *ent, int del, uint32_t off,
                    uint32_t vlen, uint64_t seq, int64_t expire_ms)
{
    struct alog_pending *p = &db->pend[db->npend++];

    p->ent = ent;
    p->seg = db->active;
    alog_seg_ref(p->seg);
    p->end = db->written;
    p->seq = seq;
    p->expire_ms = expire_ms;
    p->off = off;
    p->vlen = vlen;
    p->del = del;
}

void
alog_pending_publish_locked(alog_db *db, uint64_t upto)
{
    size_t i = 0;

    for (; i < db->npend && db->pend[i].end <= upto; i++) {
        struct alog_pending *p = &db->pend[i];
        if (p->del) {
            index_apply_del(db, p->ent->hash, p->ent->key, p->ent->klen);
            free(p->ent);
        } else {
            index_apply_put(db, p->ent->hash, p->ent->key, p->ent->klen, p->seg,
                            p->off, p->vlen, p->seq, p->expire_ms);
            free(p->ent);
        }
        alog_seg_unref(db, p->seg);
    }
    if (i == 0) {
        return; /* also when nothing is pending and pend is NULL */
    }
    memmove(db->pend, db->pend + i, (db->npend - i) * sizeof(*db->pend));
    db->npend -= i;
}

void
alog_pending_drop_locked(alog_db *db)
{
    for (size_t i = 0; i < db->npend; i++) {
        free(db->pend[i].ent);
        alog_seg_unref(db, db->pend[i].seg);
    }
    db->npend = 0;
}

/* A put of key (hash, key, klen) appended at off in the active segment
 * (wlock held): applied now, or, under sync = always, once synced; spare
 * is a copy of the key, required under sync = always (else may be NULL),
 * consumed. */
static void
index_put(alog_db *db, struct alog_key *spare, uint64_t hash, const void *key,
          size_t klen, uint32_t off, uint32_t vlen, uint64_t seq,
          int64_t expire_ms)
{
    if (deferring(db)) {
        pending_push_locked(db, spare, 0, off, vlen, seq, expire_ms);
        return;
    }
    index_apply_put(db, hash, key, klen, db->active, off, vlen, seq, expire_ms);
    free(spare);
}

/* A delete appended (wlock held); dk is a preallocated entry holding the
 * key (required under sync = always, else may be NULL), consumed. */
static void
index_del(alog_db *db, struct alog_key *dk, uint64_t hash, const void *key,
          size_t klen)
{
    if (deferring(db)) {
        pending_push_locked(db, dk, 1, 0, 0, 0, 0);
        return;
    }
    index_apply_del(db, hash, key, klen);
    free(dk);
}

/* ---- appending ---- */

int
alog_roll_locked(alog_db *db)
{
    struct alog_seg *old = db->active;
    struct alog_seg *ns = NULL;
    uint32_t id;
    int rc;

    if (alog_check_writable(db) != 0) {
        return KVD_EREADONLY;
    }
    /* the sealed segment must be complete on disk, and exactly its
     * records long, before the next one exists: recovery treats only the
     * newest segment's tail as torn or preallocated (the fdatasync covers
     * the new length) */
    rc = alog_seg_trim(db, old);
    if (rc != 0) {
        alog_pending_drop_locked(db);
        return kvd_ro_fail(db->ro, rc, "truncate %s/%08u.data", db->dir,
                           (unsigned)old->id);
    }
    kvd_counter_add(&db->c.fsyncs, 1);
    if (db->io->fdatasync(old->fd) != 0) {
        rc = kvd_errno_status(errno);
        alog_pending_drop_locked(db);
        return kvd_ro_fail(db->ro, rc, "fdatasync %s/%08u.data", db->dir,
                           (unsigned)old->id);
    }
    alog_pending_publish_locked(db, db->written);
    kvd_commit_synced(db->commit, db->written);

    pthread_mutex_lock(&db->seg_mu);
    id = db->next_id++;
    pthread_mutex_unlock(&db->seg_mu);
    rc = alog_seg_create(db, id, ALOG_FILE_DATA, db->seq + 1, 0, &ns);
    if (rc != 0) {
        return kvd_ro_fail(db->ro, rc, "create segment %s/%08u.data", db->dir,
                           (unsigned)id);
    }
    pthread_mutex_lock(&db->seg_mu);
    rc = alog_segs_add_locked(db, ns);
    if (rc == 0) {
        old->sealed = 1;
        old->need_hint = db->opts.hint_files;
        old->hint_ready = db->ahint;
        db->ahint = alog_hint_collector(db);
    }
    pthread_mutex_unlock(&db->seg_mu);
    if (rc != 0) {
        alog_seg_unref(db, ns);
        return kvd_ro_fail(db->ro, rc, "add segment %08u", (unsigned)id);
    }
    db->active = ns;
    rc = alog_manifest_write(db);
    if (rc != 0) {
        return kvd_ro_fail(db->ro, rc, "write %s/%s", db->dir,
                           ALOG_MANIFEST_FILE);
    }
    kvd_counter_add(&db->c.rolls, 1);
    /* wake the background thread: a sealed segment wants a hint file */
    if (db->bg != NULL) {
        kvd_worker_wake(db->bg);
    }
    return 0;
}

int
alog_trim_active(alog_db *db)
{
    struct alog_seg *s;
    int rc = 0;

    pthread_mutex_lock(&db->wlock);
    s = db->active;
    if (s != NULL && s->alloc_end > atomic_load(&s->size)) {
        rc = alog_seg_trim(db, s);
        if (rc != 0) {
            rc = kvd_ro_fail(db->ro, rc, "truncate %s/%08u.data", db->dir,
                             (unsigned)s->id);
        }
        /* the new length durable, whatever the sync policy (under
         * always the data already is, and the group commit would not
         * sync again); like the roll's, it covers every write */
        if (rc == 0) {
            kvd_counter_add(&db->c.fsyncs, 1);
            if (db->io->fdatasync(s->fd) != 0) {
                rc = kvd_errno_status(errno);
                alog_pending_drop_locked(db);
                rc = kvd_ro_fail(db->ro, rc, "fdatasync %s/%08u.data", db->dir,
                                 (unsigned)s->id);
            } else {
                alog_pending_publish_locked(db, db->written);
                kvd_commit_synced(db->commit, db->written);
            }
        }
    }
    pthread_mutex_unlock(&db->wlock);
    return rc;
}

int
alog_roll(alog_db *db)
{
    int rc = 0;

    pthread_mutex_lock(&db->wlock);
    if (atomic_load(&db->active->size) > ALOG_FILE_HDR_BYTES) {
        rc = alog_roll_locked(db);
    }
    pthread_mutex_unlock(&db->wlock);
    return rc;
}

/* Make room for `total` bytes (wlock held): roll when the active segment
 * would pass segment_size, unless it is empty. */
static int
reserve_locked(alog_db *db, uint64_t total)
{
    uint64_t size;

    if (alog_check_writable(db) != 0) {
        return KVD_EREADONLY;
    }
    size = atomic_load(&db->active->size);
    if (size > ALOG_FILE_HDR_BYTES && size + total > db->opts.segment_size) {
        return alog_roll_locked(db);
    }
    return 0;
}

/* Append sealed bytes at the end of the active segment (wlock held): a
 * copy into its map when the map covers them (preallocating first when
 * the allocated end does not), else one pwrite. */
static int
append_locked(alog_db *db, const unsigned char *buf, uint64_t total,
              uint64_t first_seq, uint64_t last_seq, uint32_t *off)
{
    struct alog_seg *s = db->active;
    uint64_t at = atomic_load(&s->size);
    int rc;

    if (s->writable && at + total <= s->map_len) {
        if (at + total > s->alloc_end) {
            rc = alog_seg_allocate(db, s, at + total);
            if (rc != 0) {
                return kvd_ro_fail(
                    db->ro, rc, "allocate %s/%08u.data at offset %llu", db->dir,
                    (unsigned)s->id, (unsigned long long)s->alloc_end);
            }
        }
        if (at + total > s->pop_end) {
            alog_seg_populate(s, at + total);
        }
        memcpy((unsigned char *)s->map + at, buf, total);
        rc = alog_seg_writeback(db, s, at + total);
        if (rc != 0) {
            return kvd_ro_fail(db->ro, rc,
                               "start writeback of %s/%08u.data before offset "
                               "%llu",
                               db->dir, (unsigned)s->id,
                               (unsigned long long)(at + total));
        }
    } else {
        rc = kvd_file_write_full(db->io, s->fd, buf, total, at);
        if (rc != 0) {
            return kvd_ro_fail(db->ro, rc, "write %s/%08u.data at offset %llu",
                               db->dir, (unsigned)s->id,
                               (unsigned long long)at);
        }
    }
    atomic_store(&s->size, at + total);
    alog_hint_note_locked(db, buf, total, at);
    if (first_seq < atomic_load(&s->min_seq)) {
        atomic_store(&s->min_seq, first_seq);
    }
    atomic_store(&s->max_seq, last_seq);
    db->written += total;
    *off = (uint32_t)at;
    return 0;
}

/* ---- group commit ---- */

static uint64_t
commit_position(void *ctx)
{
    alog_db *db = ctx;
    uint64_t pos;

    pthread_mutex_lock(&db->wlock);
    pos = db->written;
    pthread_mutex_unlock(&db->wlock);
    return pos;
}

static int
commit_sync(void *ctx, uint64_t *pos)
{
    alog_db *db = ctx;
    struct alog_seg *s;
    int rc = 0;

    /* everything appended so far is in the active segment or in a sealed
     * one that the roll already synced */
    pthread_mutex_lock(&db->wlock);
    s = db->active;
    alog_seg_ref(s);
    *pos = db->written;
    pthread_mutex_unlock(&db->wlock);

    kvd_counter_add(&db->c.fsyncs, 1);
    if (db->io->fdatasync(s->fd) != 0) {
        rc = kvd_ro_fail(db->ro, kvd_errno_status(errno),
                         "fdatasync %s/%08u.data", db->dir, (unsigned)s->id);
    }
    alog_seg_unref(db, s);
    /* publish (or drop) before anyone learns the position is durable */
    pthread_mutex_lock(&db->wlock);
    if (rc == 0) {
        alog_pending_publish_locked(db, *pos);
    } else {
        alog_pending_drop_locked(db);
    }
    pthread_mutex_unlock(&db->wlock);
    return rc;
}

const struct kvd_commit_ops alog_commit_ops = {
    .position = commit_position,
    .sync = commit_sync,
};

static int
finish_write(alog_db *db, int rc, uint64_t target)
{
    return rc == 0 ? kvd_commit_ack(db->commit, target) : rc;
}

/* ---- operations ---- */

static void
fill_rec(unsigned char *p, int kind, uint8_t flags, const void *key,
         size_t klen, const void *val, size_t vlen, int64_t expire_ms,
         uint64_t seq, int64_t now)
{
    struct alog_rec_hdr h = {
        .kind = (uint8_t)kind,
        .flags = flags,
        .klen = (uint16_t)klen,
        .vlen = (uint32_t)vlen,
        .seq = seq,
        .expire_ms = expire_ms,
        .ts_ms = now,
    };
    memcpy(p + ALOG_REC_HDR_BYTES, key, klen);
    if (vlen > 0) {
        memcpy(p + ALOG_REC_HDR_BYTES + klen, val, vlen);
    }
    alog_rec_seal(p, &h);
}

int
alog_put(alog_db *db, const void *key, size_t klen, const void *val,
         size_t vlen, int64_t expire_ms)
{
    unsigned char stackbuf[ALOG_STACK_REC_BYTES];
    unsigned char *buf = stackbuf;
    uint64_t total = alog_rec_bytes(klen, vlen);
    uint64_t hash;
    uint64_t target = 0;
    struct alog_key *spare = NULL;
    uint32_t off;
    int64_t now;
    int rc;

    rc = kvd_check_key(key, klen, ALOG_MAX_KEY_BYTES);
    if (rc != 0) {
        return rc;
    }
    if (vlen > ALOG_MAX_VALUE_BYTES) {
        return KVD_ETOOBIG;
    }
    if (expire_ms < 0) {
        return KVD_EINVAL;
    }
    if (alog_check_writable(db) != 0) {
        return KVD_EREADONLY;
    }
    hash = alog_hash(&db->ix, key, klen);
    alog_index_prefetch(&db->ix, hash);
    /* a copy of the key only to wait for the fdatasync: applied at once,
     * the caller's key is enough */
    if (deferring(db)) {
        spare = alog_key_create(hash, key, klen);
        if (spare == NULL) {
            return KVD_ENOMEM;
        }
    }
    if (total > sizeof(stackbuf)) {
        buf = malloc(total);
        if (buf == NULL) {
            free(spare);
            return KVD_ENOMEM;
        }
    }
    now = db->host->now_ms(db->host);

    pthread_mutex_lock(&db->wlock);
    rc = reserve_locked(db, total);
    if (rc == 0) {
        rc = pending_reserve_locked(db, 1);
    }
    if (rc == 0) {
        uint64_t seq = db->seq + 1;
        fill_rec(buf, ALOG_REC_PUT, 0, key, klen, val, vlen, expire_ms, seq,
                 now);
        rc = append_locked(db, buf, total, seq, seq, &off);
        if (rc == 0) {
            db->seq = seq;
            index_put(db, spare, hash, key, klen, off, (uint32_t)vlen, seq,
                      expire_ms);
            spare = NULL;
            target = db->written;
        }
    }
    pthread_mutex_unlock(&db->wlock);

    free(spare);
    if (buf != stackbuf) {
        free(buf);
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.puts, 1);
    }
    return finish_write(db, rc, target);
}

/* Is key live (present, unexpired)? Drops an expired entry on the way. */
static int
key_live(alog_db *db, uint64_t hash, const void *key, size_t klen)
{
    struct alog_shard *sh = alog_index_shard(&db->ix, hash);
    struct alog_ent *e;
    int live = 0;

    pthread_rwlock_wrlock(&sh->lock);
    e = alog_shard_find_locked(sh, hash, key, klen);
    if (e != NULL) {
        if (alog_is_expired(alog_ent_expire(sh, e),
                            db->host->now_ms(db->host))) {
            alog_index_drop_locked(db, sh, e);
        } else {
            live = 1;
        }
    }
    pthread_rwlock_unlock(&sh->lock);
    return live;
}

int
alog_del(alog_db *db, const void *key, size_t klen)
{
    unsigned char stackbuf[ALOG_STACK_REC_BYTES];
    unsigned char *buf = stackbuf;
    uint64_t total = alog_rec_bytes(klen, 0);
    uint64_t hash;
    uint64_t target = 0;
    struct alog_key *dk = NULL;
    uint32_t off;
    int64_t now;
    int rc;

    rc = kvd_check_key(key, klen, ALOG_MAX_KEY_BYTES);
    if (rc != 0) {
        return rc;
    }
    if (alog_check_writable(db) != 0) {
        return KVD_EREADONLY;
    }
    if (total > sizeof(stackbuf)) {
        buf = malloc(total);
        if (buf == NULL) {
            return KVD_ENOMEM;
        }
    }
    hash = alog_hash(&db->ix, key, klen);
    now = db->host->now_ms(db->host);
    if (deferring(db)) {
        dk = alog_key_create(hash, key, klen);
        if (dk == NULL) {
            if (buf != stackbuf) {
                free(buf);
            }
            return KVD_ENOMEM;
        }
    }

    pthread_mutex_lock(&db->wlock);
    /* under wlock no other writer can create or delete the key */
    if (!key_live(db, hash, key, klen)) {
        rc = KVD_ENOTFOUND;
    } else {
        rc = reserve_locked(db, total);
    }
    if (rc == 0) {
        rc = pending_reserve_locked(db, 1);
    }
    if (rc == 0) {
        uint64_t seq = db->seq + 1;
        fill_rec(buf, ALOG_REC_DEL, 0, key, klen, NULL, 0, 0, seq, now);
        rc = append_locked(db, buf, total, seq, seq, &off);
        if (rc == 0) {
            db->seq = seq;
            index_del(db, dk, hash, key, klen);
            dk = NULL;
            target = db->written;
        }
    }
    pthread_mutex_unlock(&db->wlock);
    free(dk);

    if (buf != stackbuf) {
        free(buf);
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.dels, 1);
    }
    return finish_write(db, rc, target);
}

/*
 * Independent puts appended with one write: ops[0..n) are all KVD_MOP_PUT.
 * Each op's status is set. The records are ordinary top-level records (not
 * a batch frame), so after a crash any prefix of them may survive, as with
 * n separate puts; with sync = always one group commit covers them all.
 */
int
alog_put_many(alog_db *db, struct kvd_mop *ops, size_t n)
{
    struct alog_key **spares;
    unsigned char *buf;
    uint64_t total = 0;
    uint64_t target = 0;
    size_t good = 0;
    int64_t now;
    uint32_t off;
    int rc;

    for (size_t i = 0; i < n; i++) {
        struct kvd_mop *op = &ops[i];
        op->status = kvd_check_key(op->key, op->klen, ALOG_MAX_KEY_BYTES);
        if (op->status == 0 && op->vlen > ALOG_MAX_VALUE_BYTES) {
            op->status = KVD_ETOOBIG;
        }
        if (op->status == 0 && op->expire_ms < 0) {
            op->status = KVD_EINVAL;
        }
        if (op->status == 0) {
            total += alog_rec_bytes(op->klen, op->vlen);
            good++;
        }
    }
    if (good == 0) {
        return 0;
    }
    spares = calloc(n, sizeof(*spares));
    buf = malloc(total);
    rc = spares == NULL || buf == NULL ? KVD_ENOMEM : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ops[i].status == 0) {
            uint64_t hash = alog_hash(&db->ix, ops[i].key, ops[i].klen);
            alog_index_prefetch(&db->ix, hash);
            spares[i] = alog_key_create(hash, ops[i].key, ops[i].klen);
            rc = spares[i] == NULL ? KVD_ENOMEM : 0;
        }
    }
    now = db->host->now_ms(db->host);
    if (rc == 0) {
        pthread_mutex_lock(&db->wlock);
        rc = reserve_locked(db, total);
        if (rc == 0) {
            rc = pending_reserve_locked(db, good);
        }
        if (rc == 0) {
            uint64_t seq = db->seq;
            uint64_t pos = 0;
            for (size_t i = 0; i < n; i++) {
                const struct kvd_mop *op = &ops[i];
                if (op->status != 0) {
                    continue;
                }
                fill_rec(buf + pos, ALOG_REC_PUT, 0, op->key, op->klen, op->val,
                         op->vlen, op->expire_ms, ++seq, now);
                pos += alog_rec_bytes(op->klen, op->vlen);
            }
            rc = append_locked(db, buf, total, db->seq + 1, seq, &off);
            if (rc == 0) {
                uint64_t at = off;
                seq = db->seq;
                for (size_t i = 0; i < n; i++) {
                    const struct kvd_mop *op = &ops[i];
                    if (op->status != 0) {
                        continue;
                    }
                    index_put(db, spares[i], spares[i]->hash, op->key, op->klen,
                              (uint32_t)at, (uint32_t)op->vlen, ++seq,
                              op->expire_ms);
                    spares[i] = NULL;
                    at += alog_rec_bytes(op->klen, op->vlen);
                }
                db->seq = seq;
                target = db->written;
            }
        }
        pthread_mutex_unlock(&db->wlock);
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.puts, good);
        kvd_counter_add(&db->c.multi_appends, 1);
        rc = finish_write(db, rc, target);
    }
    for (size_t i = 0; i < n; i++) {
        if (spares != NULL) {
            free(spares[i]);
        }
        if (ops[i].status == 0) {
            ops[i].status = rc;
        }
    }
    free(spares);
    free(buf);
    return 0;
}

static int
batch_check(const struct kvd_op *ops, size_t n, uint64_t *body,
            struct kvd_err *err)
{
    int rc =
        kvd_check_batch(ops, n, ALOG_MAX_KEY_BYTES, ALOG_MAX_VALUE_BYTES, err);

    *body = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        *body += alog_rec_bytes(ops[i].klen,
                                ops[i].type == KVD_OP_PUT ? ops[i].vlen : 0);
    }
    if (rc == 0 && *body > ALOG_MAX_BATCH_BYTES) {
        return kvd_err_set(err, KVD_ETOOBIG,
                           "batch of %llu bytes is over the limit of %u",
                           (unsigned long long)*body, ALOG_MAX_BATCH_BYTES);
    }
    return rc;
}

int
alog_batch(alog_db *db, const struct kvd_op *ops, size_t n, struct kvd_err *err)
{
    char why[ALOG_STATE_BYTES];
    struct alog_key **spares = NULL;
    unsigned char *buf = NULL;
    uint64_t body;
    uint64_t total;
    uint64_t target = 0;
    uint32_t off;
    int64_t now;
    int rc;

    rc = batch_check(ops, n, &body, err);
    if (rc != 0 || n == 0) {
        return rc;
    }
    if (alog_check_writable(db) != 0) {
        return kvd_err_set(err, KVD_EREADONLY, "log: %s", alog_why(db, why));
    }
    total = ALOG_REC_HDR_BYTES + body;
    spares = calloc(n, sizeof(*spares));
    buf = malloc(total);
    if (spares == NULL || buf == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "batch of %zu ops: out of memory", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KVD_OP_PUT || deferring(db)) {
            spares[i] =
                alog_key_create(alog_hash(&db->ix, ops[i].key, ops[i].klen),
                                ops[i].key, ops[i].klen);
            if (spares[i] == NULL) {
                rc = kvd_err_set(err, KVD_ENOMEM, "batch: out of memory");
                goto out;
            }
        }
    }
    now = db->host->now_ms(db->host);

    pthread_mutex_lock(&db->wlock);
    rc = reserve_locked(db, total);
    if (rc == 0) {
        rc = pending_reserve_locked(db, n);
    }
    if (rc == 0) {
        uint64_t first = db->seq + 1;
        uint64_t pos = ALOG_REC_HDR_BYTES;
        struct alog_rec_hdr fh = {
            .kind = ALOG_REC_BATCH,
            .vlen = (uint32_t)body,
            .seq = first,
            .expire_ms = (int64_t)n,
            .ts_ms = now,
        };
        for (size_t i = 0; i < n; i++) {
            const struct kvd_op *op = &ops[i];
            int put = op->type == KVD_OP_PUT;
            fill_rec(buf + pos, put ? ALOG_REC_PUT : ALOG_REC_DEL,
                     ALOG_REC_IN_BATCH, op->key, op->klen, op->val,
                     put ? op->vlen : 0, put ? op->expire_ms : 0, first + i,
                     now);
            pos += alog_rec_bytes(op->klen, put ? op->vlen : 0);
        }
        alog_rec_seal(buf, &fh);
        rc = append_locked(db, buf, total, first, first + n - 1, &off);
        if (rc == 0) {
            db->seq = first + n - 1;
            pos = off + (uint64_t)ALOG_REC_HDR_BYTES;
            for (size_t i = 0; i < n; i++) {
                const struct kvd_op *op = &ops[i];
                if (op->type == KVD_OP_PUT) {
                    index_put(db, spares[i], spares[i]->hash, op->key, op->klen,
                              (uint32_t)pos, (uint32_t)op->vlen, first + i,
                              op->expire_ms);
                } else {
                    index_del(db, spares[i],
                              alog_hash(&db->ix, op->key, op->klen), op->key,
                              op->klen);
                }
                spares[i] = NULL;
                pos += alog_rec_bytes(op->klen,
                                      op->type == KVD_OP_PUT ? op->vlen : 0);
            }
            target = db->written;
        }
    }
    pthread_mutex_unlock(&db->wlock);
    if (rc == 0) {
        kvd_counter_add(&db->c.batches, 1);
        rc = finish_write(db, rc, target);
    }
    if (rc != 0) {
        kvd_err_set(err, rc, "log: batch of %zu ops: %s", n,
                    rc == KVD_EREADONLY ? alog_why(db, why) : kvd_strerror(rc));
    }
out:
    if (spares != NULL) {
        for (size_t i = 0; i < n; i++) {
            free(spares[i]);
        }
    }
    free(spares);
    free(buf);
    return rc;
}
