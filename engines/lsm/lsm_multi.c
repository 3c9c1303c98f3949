/*
 * lsm_multi.c -- multi() of the lsm engine. It runs the operations in
 * array order, gathering consecutive writes into a group that is appended
 * as one WAL batch record (one pwrite, one memtable switch check, one
 * sequence range), and, with sync = always, waits for the group commit
 * once at the end of the call for all of them.
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
#include "lsm_db.h"

#include <stdlib.h>
#include <string.h>

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
    return op->type == KVD_MOP_DEL ? LSM_T_DEL : lsm_put_type(op->expire_ms);
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
        p = lsm_op_encode(p, mop_type(op), op->key, op->klen,
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
        rc = lsm_is_live(db, op->key, op->klen, &snap, &live);
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
    rc = lsm_make_room_locked(db, false);
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
        lsm_batch_hdr_encode(ms->payload, seq, count);
        rc = lsm_wal_append_locked(db, ms->payload, len);
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
            kvd_counter_add(put ? &db->c.puts : &db->c.dels, 1);
            kvd_counter_add(&db->c.user_bytes, op->klen + (put ? op->vlen : 0));
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
    int rc = op->type == KVD_MOP_PUT ? lsm_check_put(op->key, op->klen, op->val,
                                                     op->vlen, op->expire_ms)
                                     : lsm_check_key(op->key, op->klen);

    if (rc == 0 && lsm_refuses(db)) {
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
    size_t b = lsm_op_bytes(op->klen, mop_type(op), put ? op->vlen : 0);
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
                   !kvd_expired(prev->expire_ms, db->host->now_ms(db->host));
    } else if (!put) {
        uint64_t snap;
        bool live;
        int rc = lsm_is_live(db, op->key, op->klen, &snap, &live);
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
    if (ms.target > 0) {
        int src = kvd_commit_ack(db->commit, ms.target);
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
