/*
 * bt_read.c -- the read side of the btree engine: reader slots, get,
 * iterators, and counting scans. No lock is taken here.
 *
 * A reader claims a slot (one cache line; a thread tries the slot its
 * number picks first, so threads rarely meet), stores the current version
 * number in it with a sequentially consistent compare-and-swap, and only
 * then loads db->cur. The writer publishes a snapshot before it bumps the
 * version and scans the slots only after both, so either its scan sees
 * the slot, or the reader's later load of db->cur sees the new snapshot:
 * everything the reader can reach stays unreclaimed until it clears the
 * slot. A version in the slot older than the snapshot read only makes the
 * writer keep more. When every slot is taken, the version goes into a
 * mutex-guarded list instead (ovf_vers), the one place a reader locks.
 *
 * get hands out the value in place (a page of the map or an in-memory
 * page) and keeps the slot until the value is released.
 */
#include "bt.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>

static _Atomic unsigned bt_thread_seq;
static _Thread_local unsigned bt_thread_hint = UINT_MAX;

/* How many records ahead a scan prefetches. */
#define BT_ITER_AHEAD 4u

struct kvd_iter {
    bt_db *db;
    struct bt_reader rd;
    const struct bt_snap *s;
    int64_t now;
    unsigned flags;
    unsigned char *prefix;
    size_t plen;
    unsigned depth;
    bool done;
    bool pinned; /* rd holds a reader registration */
    const unsigned char *pg[BT_MAX_DEPTH];
    unsigned idx[BT_MAX_DEPTH];
};

void
bt_reader_enter(bt_db *db, struct bt_reader *r)
{
    unsigned h = bt_thread_hint;
    uint64_t v = atomic_load(&db->ver);

    if (h == UINT_MAX) {
        h = atomic_fetch_add(&bt_thread_seq, 1);
        bt_thread_hint = h;
    }
    for (;;) {
        for (unsigned k = 0; k < BT_NSLOTS; k++) {
            struct bt_slot *sl = &db->slots[(h + k) % BT_NSLOTS];
            uint64_t expect = BT_SLOT_FREE;
            if (atomic_load_explicit(&sl->ver, memory_order_relaxed) ==
                    BT_SLOT_FREE &&
                atomic_compare_exchange_strong(&sl->ver, &expect, v)) {
                r->slot = sl;
                r->ver = v;
                r->snap = atomic_load(&db->cur);
                return;
            }
        }
        pthread_mutex_lock(&db->ovf_mu);
        if (bt_vec_push(&db->ovf_vers, v) == 0) {
            pthread_mutex_unlock(&db->ovf_mu);
            r->slot = NULL;
            r->ver = v;
            r->snap = atomic_load(&db->cur);
            return;
        }
        /* out of memory for the list: wait for a slot */
        pthread_mutex_unlock(&db->ovf_mu);
        sched_yield();
    }
}

void
bt_reader_leave(bt_db *db, struct bt_reader *r)
{
    if (r->slot != NULL) {
        atomic_store_explicit(&r->slot->ver, BT_SLOT_FREE,
                              memory_order_release);
        r->slot = NULL;
        return;
    }
    pthread_mutex_lock(&db->ovf_mu);
    for (size_t i = 0; i < db->ovf_vers.n; i++) {
        if (db->ovf_vers.v[i] == r->ver) {
            db->ovf_vers.v[i] = db->ovf_vers.v[--db->ovf_vers.n];
            break;
        }
    }
    pthread_mutex_unlock(&db->ovf_mu);
}

/* Ask for every line of p's slot array at once. A binary search probes
 * about log2(n) slots, each a load that depends on the one before: on a
 * page not in cache that is one miss after another. Prefetched together
 * the misses overlap, and the probes then hit. (The header line, read
 * for the slot count, is the one miss that cannot overlap: asking for the
 * first slot lines before reading it measured no better and cost 4.5%
 * more instructions per get.) */
static inline void
prefetch_slots(const unsigned char *p)
{
    size_t lower = BT_PG_LOWER(p);

    for (size_t o = BT_HDR_BYTES; o < lower; o += 64) {
        BT_PREFETCH(p + o);
    }
}

int
bt_lookup(bt_db *db, const struct bt_snap *s, const void *key, size_t klen,
          struct bt_rec *rec)
{
    uint64_t ref = s->root;
    const unsigned char *p;
    bool eq;
    unsigned i;

    if (ref == 0) {
        return KVD_ENOTFOUND;
    }
    for (unsigned d = 1; d < s->depth; d++) {
        p = bt_ref_page(s, ref, db->psize);
        prefetch_slots(p);
        ref = bt_branch_child(p, bt_branch_search(p, key, klen));
    }
    p = bt_ref_page(s, ref, db->psize);
    prefetch_slots(p);
    i = bt_leaf_search(p, key, klen, &eq);
    if (!eq) {
        return KVD_ENOTFOUND;
    }
    bt_leaf_decode(p, i, rec);
    return 0;
}

const unsigned char *
bt_rec_value(const struct bt_snap *s, const struct bt_rec *rec, size_t psize)
{
    if (rec->flags & BT_REC_OVF) {
        return s->map->base + rec->ovf * psize;
    }
    return rec->val;
}

static void
val_release(struct kvd_val *v)
{
    atomic_store_explicit(&((struct bt_slot *)v->cookie[0])->ver, BT_SLOT_FREE,
                          memory_order_release);
}

static void
val_free(struct kvd_val *v)
{
    free(v->cookie[0]);
}

int
bt_get(bt_db *db, const void *key, size_t klen, struct kvd_val *out)
{
    struct bt_reader rd;
    struct bt_rec rec;
    const unsigned char *v;
    int rc;

    bt_reader_enter(db, &rd);
    rc = bt_lookup(db, rd.snap, key, klen, &rec);
    if (rc == 0 && (rec.flags & BT_REC_EXP) &&
        rec.expire_ms <= db->host->now_ms(db->host)) {
        rc = KVD_ENOTFOUND;
    }
    if (rc != 0) {
        bt_reader_leave(db, &rd);
        return rc;
    }
    v = bt_rec_value(rd.snap, &rec, db->psize);
    out->len = rec.vlen;
    out->expire_ms = rec.expire_ms;
    if (rd.slot != NULL) {
        /* zero copy: the slot pins the snapshot until release */
        out->data = v;
        out->release = val_release;
        out->cookie[0] = rd.slot;
        out->cookie[1] = NULL;
        return 0;
    }
    out->cookie[0] = malloc(rec.vlen > 0 ? rec.vlen : 1);
    if (out->cookie[0] == NULL) {
        bt_reader_leave(db, &rd);
        return KVD_ENOMEM;
    }
    memcpy(out->cookie[0], v, rec.vlen);
    bt_reader_leave(db, &rd);
    out->data = out->cookie[0];
    out->release = val_free;
    out->cookie[1] = NULL;
    return 0;
}

/* ---- iterators ---- */

/* Ask for the head of the leaf after the current one (its header and
 * first slots). Leaves lie anywhere in the file, so the step from one
 * leaf to the next is a miss that hardware prefetch cannot guess; asked
 * for a whole leaf ahead, it overlaps with the scan of the current one. */
static void
iter_prefetch_next_leaf(const kvd_iter *it)
{
    const unsigned char *pp, *np;
    unsigned l;

    if (it->depth < 2) {
        return;
    }
    l = it->depth - 2;
    pp = it->pg[l];
    if (it->idx[l] + 1 >= BT_PG_N(pp)) {
        return;
    }
    np = bt_ref_page(it->s, bt_branch_child(pp, it->idx[l] + 1), it->db->psize);
    for (size_t o = 0; o < 4 * 64; o += 64) {
        BT_PREFETCH(np + o);
    }
}

/* Position it at the first key >= start. */
static void
iter_seek(kvd_iter *it, const void *start, size_t slen)
{
    const struct bt_snap *s = it->s;
    size_t psize = it->db->psize;
    uint64_t ref = s->root;
    unsigned d;

    it->depth = s->depth;
    if (ref == 0) {
        it->done = true;
        return;
    }
    for (d = 0; d + 1 < s->depth; d++) {
        const unsigned char *p = bt_ref_page(s, ref, psize);
        unsigned i = start != NULL ? bt_branch_search(p, start, slen) : 0;
        it->pg[d] = p;
        it->idx[d] = i;
        ref = bt_branch_child(p, i);
    }
    it->pg[d] = bt_ref_page(s, ref, psize);
    if (start != NULL) {
        bool eq;
        it->idx[d] = bt_leaf_search(it->pg[d], start, slen, &eq);
    } else {
        it->idx[d] = 0;
    }
    iter_prefetch_next_leaf(it);
}

/* Move to the next leaf; false at the end. */
static bool
iter_next_leaf(kvd_iter *it)
{
    size_t psize = it->db->psize;
    int l = (int)it->depth - 2;

    while (l >= 0 && it->idx[l] + 1 >= BT_PG_N(it->pg[l])) {
        l--;
    }
    if (l < 0) {
        return false;
    }
    it->idx[l]++;
    for (unsigned d = (unsigned)l + 1; d < it->depth; d++) {
        it->pg[d] = bt_ref_page(
            it->s, bt_branch_child(it->pg[d - 1], it->idx[d - 1]), psize);
        it->idx[d] = 0;
    }
    iter_prefetch_next_leaf(it);
    return true;
}

int
bt_iter_open(bt_db *db, const struct kvd_iter_opts *o, kvd_iter **out,
             struct kvd_err *err)
{
    kvd_iter *it = calloc(1, sizeof(*it));
    const void *start = o != NULL ? o->start : NULL;
    size_t slen = o != NULL ? o->start_len : 0;

    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "btree: out of memory");
    }
    it->db = db;
    it->flags = o != NULL ? o->flags : 0;
    if (o != NULL && o->prefix != NULL && o->prefix_len > 0) {
        it->prefix = malloc(o->prefix_len);
        if (it->prefix == NULL) {
            free(it);
            return kvd_err_set(err, KVD_ENOMEM, "btree: out of memory");
        }
        memcpy(it->prefix, o->prefix, o->prefix_len);
        it->plen = o->prefix_len;
        if (start == NULL ||
            bt_key_cmp(start, slen, it->prefix, it->plen) < 0) {
            start = it->prefix;
            slen = it->plen;
        }
    }
    if (start != NULL && slen == 0) {
        start = NULL;
    }
    it->now = db->host->now_ms(db->host);
    bt_reader_enter(db, &it->rd);
    it->pinned = true;
    it->s = it->rd.snap;
    iter_seek(it, start, slen);
    *out = it;
    return 0;
}

int
bt_iter_next(kvd_iter *it, struct kvd_entry *out)
{
    size_t psize = it->db->psize;

    while (!it->done) {
        unsigned d = it->depth - 1;
        const unsigned char *p = it->pg[d];
        struct bt_rec r;

        if (it->idx[d] >= BT_PG_N(p)) {
            if (!iter_next_leaf(it)) {
                it->done = true;
            }
            continue;
        }
        if (it->idx[d] + BT_ITER_AHEAD < BT_PG_N(p)) {
            /* file pages are written with their records in key order
             * (bt_page_pack), but an in-memory page has them in insertion
             * order: a scan jumps around it, which hardware prefetch does
             * not follow; ask for a record a few steps ahead */
            BT_PREFETCH(p + BT_SLOT_OFF(p, it->idx[d] + BT_ITER_AHEAD));
        }
        bt_leaf_decode(p, it->idx[d]++, &r);
        if (it->plen > 0 &&
            (r.klen < it->plen || memcmp(r.key, it->prefix, it->plen) != 0)) {
            it->done = true;
            break;
        }
        if ((r.flags & BT_REC_EXP) && r.expire_ms <= it->now) {
            continue;
        }
        out->key = r.key;
        out->klen = r.klen;
        out->vlen = r.vlen;
        out->val = (it->flags & KVD_ITER_KEYS_ONLY)
                       ? NULL
                       : bt_rec_value(it->s, &r, psize);
        out->expire_ms = r.expire_ms;
        out->pos = 0;
        return 0;
    }
    return KVD_ENOTFOUND;
}

void
bt_iter_close(kvd_iter *it)
{
    if (it == NULL) {
        return;
    }
    if (it->pinned) {
        bt_reader_leave(it->db, &it->rd);
    }
    free(it->prefix);
    free(it);
}

int
bt_iter_open_at(bt_db *db, const struct bt_snap *s, bool all, kvd_iter **out)
{
    kvd_iter *it = calloc(1, sizeof(*it));

    if (it == NULL) {
        return KVD_ENOMEM;
    }
    it->db = db;
    it->s = s;
    it->now = all ? INT64_MIN : db->host->now_ms(db->host);
    iter_seek(it, NULL, 0);
    *out = it;
    return 0;
}

void
bt_count_live(bt_db *db, const struct bt_snap *s, int64_t now, uint64_t *keys,
              uint64_t *kbytes, uint64_t *vbytes)
{
    kvd_iter it;
    struct kvd_entry e;

    memset(&it, 0, sizeof(it));
    it.db = db;
    it.s = s;
    it.now = now;
    it.flags = KVD_ITER_KEYS_ONLY;
    iter_seek(&it, NULL, 0);
    *keys = *kbytes = *vbytes = 0;
    while (bt_iter_next(&it, &e) == 0) {
        (*keys)++;
        *kbytes += e.klen;
        *vbytes += e.vlen;
    }
}
