/*
 * bt_write.c -- copy-on-write changes to the btree engine's working tree.
 *
 * A change descends from the working root and makes every page on its
 * path writable: a page made earlier in the same unit of work (not yet
 * published) is edited in place; any other page is copied into a new
 * in-memory page and the original is retired (in memory) or freed (file
 * page), never modified, because a reader may be looking at it. A unit is
 * one put or delete, a batch, or the operations of a group commit; it
 * ends with bt_publish, which makes the new root visible to readers, or
 * with bt_rollback, which drops everything the unit made (atomic batches
 * rely on this).
 *
 * Leaves split at the byte middle (or, for an insert past the last key,
 * by moving only the new record, so ascending loads fill pages fully) and
 * pass up the shortest separator; a page under a quarter full is merged
 * into a sibling when both fit in one page; a root with one child gives
 * way to it.
 *
 * Values whose record would exceed a third of a page go to an overflow
 * run of whole pages, written at once (before the leaf that points to it
 * can be published). Everything here runs under wmu.
 */
#include "bt.h"

#include <errno.h>
#include <stdlib.h>

#include "kvd/kit_clock.h"
#include "kvd/kit_file.h"

struct bt_res {
    uint64_t ref; /* the page that replaces the one descended into */
    bool split;   /* ...and its new right sibling: */
    uint64_t rref;
    size_t seplen;
    bool under; /* less than a quarter full (deletes) */
    bool empty; /* no entries left (deletes) */
    unsigned char sep[BT_MAX_KEY_BYTES + 1];
};

/* What an insert replaced, for the counters and the overflow run. */
struct bt_old {
    bool found;
    unsigned flags;
    size_t klen;
    uint64_t vlen;
    uint64_t ovf;
    int64_t expire_ms;
};

static inline struct bt_mpage *
ref_mp(uint64_t ref)
{
    return (struct bt_mpage *)(uintptr_t)(ref & ~BT_REF_MEM);
}

static inline const unsigned char *
wpage(bt_db *db, uint64_t ref)
{
    if (ref & BT_REF_MEM) {
        return BT_MP_DATA(ref_mp(ref));
    }
    return db->map->base + ref * db->psize;
}

void
bt_mark(bt_db *db, struct bt_mark *m)
{
    m->freed = db->freed.n;
    m->runs = db->runs.n;
    m->created = db->created.n;
    m->retire_tail = db->retire_tail;
    m->retire_n = db->retire_n;
    m->dirty = db->dirty;
    m->mem_pages = db->mem_pages;
    m->work = db->work;
}

void
bt_rollback(bt_db *db, const struct bt_mark *m)
{
    /* pages retired by the unit are live again */
    db->retire_tail = m->retire_tail;
    if (m->retire_tail != NULL) {
        m->retire_tail->next = NULL;
    } else {
        db->retire_head = NULL;
    }
    db->retire_n = m->retire_n;
    /* pages the unit made go back to the pool */
    for (size_t i = m->created; i < db->created.n; i++) {
        struct bt_mpage *mp = (struct bt_mpage *)(uintptr_t)db->created.v[i];
        mp->next = db->pool;
        db->pool = mp;
        db->pool_n++;
    }
    db->created.n = m->created;
    db->dirty = m->dirty;
    db->mem_pages = m->mem_pages;
    db->freed.n = m->freed;
    /* overflow runs it wrote are free again */
    for (size_t i = m->runs; i + 1 < db->runs.n; i += 2) {
        uint64_t p = db->runs.v[i], n = db->runs.v[i + 1];
        for (uint64_t k = 0; k < n; k++) {
            if (p + k < m->work.npages) {
                bt_vec_push(&db->ready, p + k);
            }
        }
    }
    db->runs.n = m->runs;
    db->work = m->work;
}

/* Drop a page of the working tree. */
static int
drop_ref(bt_db *db, uint64_t ref)
{
    if (ref & BT_REF_MEM) {
        bt_mp_retire(db, ref_mp(ref));
        return 0;
    }
    return bt_free_pgno(db, ref,
                        BT_PG_TXN(db->map->base + ref * db->psize) <= db->txn);
}

/* The page at ref, writable in this unit; *ref is updated. */
static unsigned char *
cow(bt_db *db, uint64_t *ref, int *rc)
{
    struct bt_mpage *mp;
    const unsigned char *src;

    if (*ref & BT_REF_MEM) {
        mp = ref_mp(*ref);
        if (mp->born > db->pub_ver) {
            return BT_MP_DATA(mp);
        }
    }
    src = wpage(db, *ref);
    mp = bt_mp_new(db);
    if (mp == NULL) {
        *rc = KVD_ENOMEM;
        return NULL;
    }
    {
        /* the used parts only: header and slots, then the records */
        unsigned char *d = BT_MP_DATA(mp);
        size_t lower = BT_PG_LOWER(src), upper = BT_PG_UPPER(src);
        memcpy(d, src, lower);
        memcpy(d + upper, src + upper, db->psize - upper);
    }
    *rc = drop_ref(db, *ref);
    if (*rc != 0) {
        return NULL;
    }
    *ref = bt_mp_ref(mp);
    return BT_MP_DATA(mp);
}

static bool
run_is_new(bt_db *db, uint64_t pgno)
{
    for (size_t i = 0; i + 1 < db->runs.n; i += 2) {
        if (pgno >= db->runs.v[i] && pgno < db->runs.v[i] + db->runs.v[i + 1]) {
            return true;
        }
    }
    return false;
}

static int
free_run(bt_db *db, uint64_t pgno, uint64_t vlen)
{
    uint64_t n = (vlen + db->psize - 1) / db->psize;
    bool durable = !run_is_new(db, pgno);

    for (uint64_t k = 0; k < n; k++) {
        int rc = bt_free_pgno(db, pgno + k, durable);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Write a value to a new overflow run. */
static int
write_run(bt_db *db, const void *val, size_t vlen, uint64_t *pgno)
{
    uint64_t n = (vlen + db->psize - 1) / db->psize;
    size_t whole = (size_t)(vlen / db->psize) * db->psize;
    int rc = bt_alloc_run(db, n, pgno);

    if (rc != 0) {
        return rc;
    }
    if (bt_vec_push(&db->runs, *pgno) != 0 || bt_vec_push(&db->runs, n) != 0) {
        return KVD_ENOMEM;
    }
    if (whole > 0) {
        rc = kvd_file_write_full(db->io, db->fd, val, whole, *pgno * db->psize);
    }
    if (rc == 0 && whole < vlen) {
        /* the last page is written whole, so the file never ends
         * inside a page */
        memset(db->scratch, 0, db->psize);
        memcpy(db->scratch, (const unsigned char *)val + whole, vlen - whole);
        rc = kvd_file_write_full(db->io, db->fd, db->scratch, db->psize,
                                 (*pgno + n - 1) * db->psize);
    }
    if (rc != 0) {
        bt_set_readonly(db, rc, "write of an overflow run");
    }
    return rc;
}

/* Make room for len bytes plus a slot, compacting dead bytes away. */
static bool
make_room(bt_db *db, unsigned char *p, size_t len)
{
    unsigned n = BT_PG_N(p);

    if (len + BT_SLOT_BYTES > bt_page_free_bytes(p, db->psize)) {
        return false;
    }
    if (len + BT_SLOT_BYTES > (size_t)(BT_PG_UPPER(p) - BT_PG_LOWER(p))) {
        bt_page_entries(p, db->ents);
        bt_page_build(p, db->psize, BT_PG_TYPE(p), db->ents, n, db->scratch);
    }
    return true;
}

/* Index at which entries [0, n) split: left gets [0, s). */
static unsigned
split_point(const struct bt_ent *e, unsigned n, unsigned ins, bool append)
{
    size_t total = 0, acc = 0;
    unsigned s;

    if (append && ins == n - 1 && n >= 2) {
        return n - 1;
    }
    for (unsigned i = 0; i < n; i++) {
        total += e[i].len + BT_SLOT_BYTES;
    }
    for (s = 0; s < n - 1; s++) {
        size_t next = acc + e[s].len + BT_SLOT_BYTES;
        if (next > total / 2 && s > 0) {
            break;
        }
        acc = next;
    }
    if (s == 0) {
        s = 1;
    }
    return s;
}

/*
 * Insert rec at slot i of the writable page p (whose ref is *ref), or
 * split it: p keeps the left part, a new page the right part, and res
 * gets the separator. For branches the right page's first key moves up.
 */
static int
insert_or_split(bt_db *db, unsigned char *p, unsigned i,
                const unsigned char *rec, size_t len, const unsigned char *key,
                size_t klen, bool rightmost, struct bt_res *res)
{
    unsigned n = BT_PG_N(p);
    int type = BT_PG_TYPE(p);
    struct bt_ent *e = db->ents;
    struct bt_mpage *rmp;
    unsigned s;
    unsigned char first[BT_BRANCH_HDR];

    if (make_room(db, p, len)) {
        bt_page_insert(p, db->psize, i, rec, len, key, klen);
        return 0;
    }
    bt_page_entries(p, e);
    memmove(e + i + 1, e + i, (size_t)(n - i) * sizeof(*e));
    e[i].rec = rec;
    e[i].len = len;
    e[i].key = key;
    e[i].klen = klen;
    n++;
    s = split_point(e, n, i, rightmost);
    rmp = bt_mp_new(db);
    if (rmp == NULL) {
        return KVD_ENOMEM;
    }
    if (type == BT_PAGE_LEAF) {
        const unsigned char *a = e[s - 1].key, *b = e[s].key;
        size_t l = 0, m = e[s - 1].klen < e[s].klen ? e[s - 1].klen : e[s].klen;
        while (l < m && a[l] == b[l]) {
            l++;
        }
        res->seplen = l + 1 <= e[s].klen ? l + 1 : e[s].klen;
        memcpy(res->sep, b, res->seplen);
        bt_put64(BT_MP_DATA(rmp) + 16, 0);
        bt_page_build(BT_MP_DATA(rmp), db->psize, type, e + s, n - s,
                      db->scratch);
    } else {
        /* the right page's first child keeps its pointer, loses its key */
        res->seplen = e[s].klen;
        memcpy(res->sep, e[s].key, e[s].klen);
        bt_branch_encode(first, bt_get64(e[s].rec), NULL, 0);
        e[s].rec = first;
        e[s].len = BT_BRANCH_HDR;
        e[s].key = first + BT_BRANCH_HDR;
        e[s].klen = 0;
        bt_put64(BT_MP_DATA(rmp) + 16, 0);
        bt_page_build(BT_MP_DATA(rmp), db->psize, type, e + s, n - s,
                      db->scratch);
    }
    bt_page_build(p, db->psize, type, e, s, db->scratch);
    res->split = true;
    res->rref = bt_mp_ref(rmp);
    return 0;
}

static int
put_rec(bt_db *db, uint64_t ref, unsigned level, bool rightmost,
        const unsigned char *key, size_t klen, const unsigned char *rec,
        size_t len, struct bt_old *old, struct bt_res *res)
{
    const unsigned char *view = wpage(db, ref);
    unsigned char *p;
    unsigned i;
    int rc = 0;

    res->split = false;
    if (level + 1 == db->work.depth) {
        bool eq;
        i = bt_leaf_search(view, key, klen, &eq);
        if (eq) {
            struct bt_rec r;
            bt_leaf_decode(view, i, &r);
            old->found = true;
            old->flags = r.flags;
            old->klen = r.klen;
            old->vlen = r.vlen;
            old->ovf = r.ovf;
            old->expire_ms = r.expire_ms;
        }
        p = cow(db, &ref, &rc);
        if (p == NULL) {
            return rc;
        }
        res->ref = ref;
        if (eq && BT_SLOT_LEN(p, i) == len) {
            /* same key, same record size (an overwrite of a value of the
             * same length): replace the bytes in the writable copy; no
             * slot moves and no dead bytes are left for a rebuild */
            memcpy(p + BT_SLOT_OFF(p, i), rec, len);
            return 0;
        }
        if (eq) {
            bt_page_remove(p, i);
        }
        return insert_or_split(db, p, i, rec, len, key, klen, rightmost, res);
    }
    {
        struct bt_res cres;
        uint64_t child;
        unsigned char brec[BT_BRANCH_HDR + BT_MAX_KEY_BYTES];
        size_t blen;

        i = bt_branch_search(view, key, klen);
        child = bt_branch_child(view, i);
        rc = put_rec(db, child, level + 1, rightmost && i + 1 == BT_PG_N(view),
                     key, klen, rec, len, old, &cres);
        if (rc != 0) {
            return rc;
        }
        if (cres.ref == child && !cres.split) {
            res->ref = ref; /* child edited in place */
            return 0;
        }
        p = cow(db, &ref, &rc);
        if (p == NULL) {
            return rc;
        }
        res->ref = ref;
        bt_branch_set_child(p, i, cres.ref);
        if (!cres.split) {
            return 0;
        }
        blen = bt_branch_encode(brec, cres.rref, cres.sep, cres.seplen);
        return insert_or_split(db, p, i + 1, brec, blen, brec + BT_BRANCH_HDR,
                               cres.seplen, rightmost, res);
    }
}

static int
new_root(bt_db *db, uint64_t left, const struct bt_res *res)
{
    struct bt_mpage *mp = bt_mp_new(db);
    unsigned char rec[BT_BRANCH_HDR + BT_MAX_KEY_BYTES];
    unsigned char *p;
    size_t len;

    if (mp == NULL) {
        return KVD_ENOMEM;
    }
    p = BT_MP_DATA(mp);
    bt_page_init(p, db->psize, BT_PAGE_BRANCH);
    len = bt_branch_encode(rec, left, NULL, 0);
    bt_page_insert(p, db->psize, 0, rec, len, rec + BT_BRANCH_HDR, 0);
    len = bt_branch_encode(rec, res->rref, res->sep, res->seplen);
    bt_page_insert(p, db->psize, 1, rec, len, rec + BT_BRANCH_HDR, res->seplen);
    db->work.root = bt_mp_ref(mp);
    db->work.depth++;
    return 0;
}

int
bt_apply_put(bt_db *db, const void *key, size_t klen, const void *val,
             size_t vlen, int64_t expire_ms)
{
    struct bt_old old;
    struct bt_res res;
    uint64_t ovf = 0;
    const unsigned char *rk;
    size_t len;
    size_t inl = BT_LEAF_HDR + (expire_ms != 0 ? 8 : 0) + klen + vlen;
    int rc;

    memset(&old, 0, sizeof(old));
    if (inl > db->max_rec) {
        rc = write_run(db, val, vlen, &ovf);
        if (rc != 0) {
            return rc;
        }
    }
    len = bt_leaf_encode(db->recbuf, key, klen, val, vlen, ovf, expire_ms);
    rk = db->recbuf + BT_LEAF_HDR + (expire_ms != 0 ? 8 : 0);
    if (db->work.root == 0) {
        struct bt_mpage *mp = bt_mp_new(db);
        if (mp == NULL) {
            return KVD_ENOMEM;
        }
        bt_page_init(BT_MP_DATA(mp), db->psize, BT_PAGE_LEAF);
        bt_page_insert(BT_MP_DATA(mp), db->psize, 0, db->recbuf, len, rk, klen);
        db->work.root = bt_mp_ref(mp);
        db->work.depth = 1;
    } else {
        rc = put_rec(db, db->work.root, 0, true, rk, klen, db->recbuf, len,
                     &old, &res);
        if (rc != 0) {
            return rc;
        }
        db->work.root = res.ref;
        if (res.split) {
            rc = new_root(db, res.ref, &res);
            if (rc != 0) {
                return rc;
            }
        }
    }
    if (old.found) {
        db->work.records--;
        db->work.key_bytes -= old.klen;
        db->work.value_bytes -= old.vlen;
        if (old.flags & BT_REC_EXP) {
            db->work.expiring--;
        }
        if (old.flags & BT_REC_OVF) {
            rc = free_run(db, old.ovf, old.vlen);
            if (rc != 0) {
                return rc;
            }
        }
    }
    db->work.records++;
    db->work.key_bytes += klen;
    db->work.value_bytes += vlen;
    if (expire_ms != 0) {
        db->work.expiring++;
    }
    return 0;
}

/* Merge child slot `left` of branch p with slot left + 1. */
static int
merge_children(bt_db *db, unsigned char *p, unsigned left, bool *merged)
{
    uint64_t lref = bt_branch_child(p, left);
    uint64_t rref = bt_branch_child(p, left + 1);
    const unsigned char *lv = wpage(db, lref), *rv = wpage(db, rref);
    int type = BT_PG_TYPE(lv);
    size_t sepl = 0, cap = db->psize - BT_HDR_BYTES;
    const unsigned char *sep = bt_page_key(p, left + 1, &sepl);
    unsigned ln = BT_PG_N(lv), rn = BT_PG_N(rv);
    unsigned char first[BT_BRANCH_HDR + BT_MAX_KEY_BYTES];
    unsigned char sepcopy[BT_MAX_KEY_BYTES];
    struct bt_ent *e = db->ents;
    unsigned char *lp;
    size_t need = bt_page_used_bytes(lv, db->psize) +
                  bt_page_used_bytes(rv, db->psize) +
                  (type == BT_PAGE_BRANCH ? sepl : 0);
    int rc = 0;

    *merged = false;
    if (need > cap) {
        return 0;
    }
    memcpy(sepcopy, sep, sepl);
    lp = cow(db, &lref, &rc);
    if (lp == NULL) {
        return rc;
    }
    bt_page_entries(lp, e);
    bt_page_entries(rv, e + ln);
    if (type == BT_PAGE_BRANCH && rn > 0) {
        size_t len =
            bt_branch_encode(first, bt_branch_child(rv, 0), sepcopy, sepl);
        e[ln].rec = first;
        e[ln].len = len;
        e[ln].key = first + BT_BRANCH_HDR;
        e[ln].klen = sepl;
    }
    bt_page_build(lp, db->psize, type, e, ln + rn, db->scratch);
    rc = drop_ref(db, rref);
    if (rc != 0) {
        return rc;
    }
    bt_branch_set_child(p, left, lref);
    bt_page_remove(p, left + 1);
    *merged = true;
    return 0;
}

static bool
underfull(bt_db *db, const unsigned char *p)
{
    return bt_page_used_bytes(p, db->psize) < (db->psize - BT_HDR_BYTES) / 4;
}

static int
del_rec(bt_db *db, uint64_t ref, unsigned level, const unsigned char *key,
        size_t klen, struct bt_old *old, struct bt_res *res)
{
    const unsigned char *view = wpage(db, ref);
    unsigned char *p;
    unsigned i;
    int rc = 0;

    res->split = false;
    res->under = false;
    res->empty = false;
    res->ref = ref;
    if (level + 1 == db->work.depth) {
        bool eq;
        struct bt_rec r;
        i = bt_leaf_search(view, key, klen, &eq);
        if (!eq) {
            return KVD_ENOTFOUND;
        }
        bt_leaf_decode(view, i, &r);
        old->found = true;
        old->flags = r.flags;
        old->klen = r.klen;
        old->vlen = r.vlen;
        old->ovf = r.ovf;
        old->expire_ms = r.expire_ms;
        p = cow(db, &ref, &rc);
        if (p == NULL) {
            return rc;
        }
        bt_page_remove(p, i);
        res->ref = ref;
        res->empty = BT_PG_N(p) == 0;
        res->under = underfull(db, p);
        return 0;
    }
    {
        struct bt_res cres;
        uint64_t child;

        i = bt_branch_search(view, key, klen);
        child = bt_branch_child(view, i);
        rc = del_rec(db, child, level + 1, key, klen, old, &cres);
        if (rc != 0) {
            return rc;
        }
        if (cres.ref == child && !cres.under && !cres.empty) {
            return 0;
        }
        p = cow(db, &ref, &rc);
        if (p == NULL) {
            return rc;
        }
        res->ref = ref;
        bt_branch_set_child(p, i, cres.ref);
        if (cres.empty) {
            rc = drop_ref(db, cres.ref);
            if (rc != 0) {
                return rc;
            }
            bt_page_remove(p, i);
            if (i == 0 && BT_PG_N(p) > 0) {
                /* the new first child covers everything below */
                unsigned char first[BT_BRANCH_HDR];
                size_t len =
                    bt_branch_encode(first, bt_branch_child(p, 0), NULL, 0);
                bt_page_remove(p, 0);
                bt_page_insert(p, db->psize, 0, first, len, first, 0);
            }
        } else if (cres.under && BT_PG_N(p) > 1) {
            bool merged;
            unsigned left = i + 1 < BT_PG_N(p) ? i : i - 1;
            rc = merge_children(db, p, left, &merged);
            if (rc != 0) {
                return rc;
            }
        }
        res->empty = BT_PG_N(p) == 0;
        res->under = underfull(db, p);
        return 0;
    }
}

int
bt_apply_del(bt_db *db, const void *key, size_t klen, int64_t now)
{
    struct bt_old old;
    struct bt_res res;
    int rc;

    memset(&old, 0, sizeof(old));
    if (db->work.root == 0) {
        return KVD_ENOTFOUND;
    }
    rc = del_rec(db, db->work.root, 0, key, klen, &old, &res);
    if (rc != 0) {
        return rc;
    }
    db->work.root = res.ref;
    if (res.empty) {
        rc = drop_ref(db, res.ref);
        db->work.root = 0;
        db->work.depth = 0;
    }
    /* a root branch with one child gives way to it */
    while (rc == 0 && db->work.depth > 1 &&
           BT_PG_N(wpage(db, db->work.root)) == 1) {
        uint64_t child = bt_branch_child(wpage(db, db->work.root), 0);
        rc = drop_ref(db, db->work.root);
        db->work.root = child;
        db->work.depth--;
    }
    if (rc != 0) {
        return rc;
    }
    db->work.records--;
    db->work.key_bytes -= old.klen;
    db->work.value_bytes -= old.vlen;
    if (old.flags & BT_REC_EXP) {
        db->work.expiring--;
    }
    if (old.flags & BT_REC_OVF) {
        rc = free_run(db, old.ovf, old.vlen);
        if (rc != 0) {
            return rc;
        }
    }
    if (old.expire_ms != 0 && old.expire_ms <= now) {
        return KVD_ENOTFOUND; /* it was there, but not live */
    }
    return 0;
}

static int
drop_tree(bt_db *db, uint64_t ref, unsigned level)
{
    const unsigned char *p = wpage(db, ref);
    unsigned n = BT_PG_N(p);
    int rc = 0;

    for (unsigned i = 0; i < n && rc == 0; i++) {
        if (level + 1 < db->work.depth) {
            rc = drop_tree(db, bt_branch_child(p, i), level + 1);
        } else {
            struct bt_rec r;
            bt_leaf_decode(p, i, &r);
            if (r.flags & BT_REC_OVF) {
                rc = free_run(db, r.ovf, r.vlen);
            }
        }
    }
    return rc != 0 ? rc : drop_ref(db, ref);
}

int
bt_apply_clear(bt_db *db)
{
    int rc = 0;

    if (db->work.root != 0) {
        rc = drop_tree(db, db->work.root, 0);
    }
    if (rc == 0) {
        db->work.root = 0;
        db->work.depth = 0;
        db->work.records = 0;
        db->work.key_bytes = 0;
        db->work.value_bytes = 0;
        db->work.expiring = 0;
    }
    return rc;
}

int
bt_publish(bt_db *db)
{
    struct bt_snap *s = db->spool, *old;
    int rc = bt_map_ensure(db, db->work.npages);

    if (rc != 0) {
        return rc;
    }
    if (s != NULL) {
        db->spool = s->next;
    } else {
        s = malloc(sizeof(*s));
        if (s == NULL) {
            return KVD_ENOMEM;
        }
    }
    *s = db->work;
    s->next = NULL;
    s->retired = 0;
    s->ver = db->pub_ver + 1;
    s->map = db->map;
    s->txn = db->txn;
    s->born_us = kvd_mono_us(db->host);
    old = atomic_load(&db->cur);
    atomic_store(&db->cur, s);
    atomic_store(&db->ver, s->ver);
    db->pub_ver = s->ver;
    db->created.n = 0;
    if (old != NULL) {
        old->retired = s->ver;
        old->next = NULL;
        if (db->sretire_tail != NULL) {
            db->sretire_tail->next = old;
        } else {
            db->sretire_head = old;
        }
        db->sretire_tail = old;
    }
    if (db->pool == NULL || db->retire_n >= 256) {
        bt_reclaim(db);
    }
    return 0;
}

void
bt_unit_done(bt_db *db)
{
    db->created.n = 0;
}
