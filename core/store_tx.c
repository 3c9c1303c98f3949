/*
 * core/store_tx.c -- transactions: a view of the store whose writes go to
 * an overlay, applied to the engine as one batch at commit (see store.h).
 *
 * Why a view and not a second set of handlers: the commands of a
 * transaction are the ordinary ones (INCR, SET ... GET, RENAME, MSETNX,
 * ...), written against the kvd_store_* calls. Handing them a view keeps
 * one implementation of every command; the calls that act differently in
 * a view branch once at their top (store.c) and land here.
 *
 * The overlay: an open-addressing hash table of entries {key, value,
 * expiry} or tombstones, over an arena of chunks that never move, so a
 * value a read returned stays valid until the transaction ends, whatever
 * the transaction writes next (the kvd_val contract). Reads look in the
 * overlay first, then in the engine (with the stripes held, nothing else
 * writes those keys meanwhile). A delete records a tombstone only when
 * the key is there to delete (so an absent key is not "written" and
 * watchers of it are not disturbed).
 *
 * Commit: one struct kvd_op per entry (PUT, or DEL for a tombstone),
 * applied through kvd_store_batch_apply() to the store itself: one engine
 * batch (one WAL or log record on the persistent engines), which also
 * tells the watchers of every key. Out of memory while writing the
 * overlay fails the whole transaction (a command's partial writes must not
 * reach the engine).
 *
 * Thread-safety: a txn and its view belong to one thread; between begin
 * and commit/abort that thread holds the stripes listed in `stripes`
 * (every stripe when `all`).
 */
#include "core/store.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/store_int.h"

/* Arena chunks: this size, or one value's size when larger. */
#define TX_CHUNK_BYTES (64 * 1024)
/* Memory a txn keeps between transactions (beyond one chunk, freed). */
#define TX_KEEP_SLOTS 4096
/* First size of the overlay's index (a power of two). */
#define TX_MIN_SLOTS 16

struct tx_chunk {
    struct tx_chunk *next;
    size_t used;
    size_t cap;
    unsigned char data[];
};

struct tx_ent {
    uint64_t hash;
    const unsigned char *key;
    size_t klen;
    const unsigned char *val; /* NULL for a tombstone */
    size_t vlen;
    int64_t expire_ms;
};

struct kvd_store_txn {
    struct kvd_store view; /* what begin hands out: tx points back here */
    kvd_store *st;         /* the store itself */
    bool active;           /* between begin and commit/abort */
    int failed;            /* a segment or the overlay failed: all fail */
    /* The stripes to hold: stripes[0..nstripes) as added, sorted and
     * deduplicated by begin into stripes[0..nlocked). */
    uint32_t *stripes;
    size_t nstripes;
    size_t stripes_cap;
    size_t nlocked;
    bool all;
    /* The overlay. slots[i]: 0 free, else an index into ents plus 1. */
    struct tx_ent *ents;
    size_t nents;
    size_t ents_cap;
    uint32_t *slots;
    size_t nslots;
    struct tx_chunk *chunks; /* newest first */
    struct kvd_op *ops;      /* the commit's batch */
    size_t ops_cap;
};

/* ---- create, stripes, begin --------------------------------------------- */

kvd_store_txn *
kvd_store_txn_create(kvd_store *st)
{
    kvd_store_txn *t = calloc(1, sizeof(*t));
    kvd_store *b = st->base;

    if (t == NULL) {
        return NULL;
    }
    t->st = b;
    /* The view: the store's fixed fields, its own tx. */
    t->view.vt = b->vt;
    t->view.eng = b->eng;
    t->view.host = b->host;
    t->view.max_key_bytes = b->max_key_bytes;
    t->view.max_value_bytes = b->max_value_bytes;
    t->view.start_ms = b->start_ms;
    t->view.stripes = b->stripes;
    t->view.ctr = b->ctr;
    t->view.multi = b->multi;
    t->view.base = b;
    atomic_init(&t->view.nwatch, 0); /* unused: the base's counts */
    t->view.tx = t;
    return t;
}

static void
tx_free_chunks(struct tx_chunk *c)
{
    while (c != NULL) {
        struct tx_chunk *next = c->next;
        free(c);
        c = next;
    }
}

void
kvd_store_txn_destroy(kvd_store_txn *t)
{
    if (t == NULL) {
        return;
    }
    assert(!t->active);
    tx_free_chunks(t->chunks);
    free(t->stripes);
    free(t->ents);
    free(t->slots);
    free(t->ops);
    free(t);
}

int
kvd_store_txn_add_stripe(kvd_store_txn *t, uint32_t stripe)
{
    if (t->nstripes == t->stripes_cap) {
        size_t cap = t->stripes_cap ? t->stripes_cap * 2 : 16;
        uint32_t *s = realloc(t->stripes, cap * sizeof(*s));
        if (s == NULL) {
            return KVD_ENOMEM;
        }
        t->stripes = s;
        t->stripes_cap = cap;
    }
    t->stripes[t->nstripes++] = stripe;
    return 0;
}

int
kvd_store_txn_add_key(kvd_store_txn *t, const void *key, size_t klen)
{
    if (t->all) {
        return 0;
    }
    return kvd_store_txn_add_stripe(t, kvd_store_stripe_of(key, klen));
}

void
kvd_store_txn_add_all(kvd_store_txn *t)
{
    t->all = true;
}

kvd_store *
kvd_store_txn_begin(kvd_store_txn *t)
{
    assert(!t->active);
    if (t->all) {
        for (uint32_t s = 0; s < STORE_STRIPES; s++) {
            kvd_store_stripe_lock(t->st, s);
        }
        t->nlocked = STORE_STRIPES;
    } else {
        t->nlocked = kvd_store_stripes_lock(t->st, t->stripes, t->nstripes);
    }
    t->active = true;
    t->failed = 0;
    return &t->view;
}

#ifndef NDEBUG
/* Whether the transaction holds stripe s (stripes[] is sorted by now). */
static bool
tx_holds(const kvd_store_txn *t, uint32_t s)
{
    size_t lo = 0, hi = t->nlocked;

    if (t->all) {
        return true;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->stripes[mid] < s) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < t->nlocked && t->stripes[lo] == s;
}
#endif

/* ---- the overlay ----------------------------------------------------------
 */

/* n bytes of arena that stay put until the transaction ends; NULL when
 * out of memory. */
static unsigned char *
tx_alloc(kvd_store_txn *t, size_t n)
{
    struct tx_chunk *c = t->chunks;

    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > TX_CHUNK_BYTES ? n : TX_CHUNK_BYTES;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL) {
            return NULL;
        }
        c->used = 0;
        c->cap = cap;
        c->next = t->chunks;
        t->chunks = c;
    }
    c->used += n;
    return c->data + c->used - n;
}

/* The entry of key, or NULL. */
static struct tx_ent *
tx_find(const kvd_store_txn *t, const void *key, size_t klen, uint64_t h)
{
    if (t->nslots == 0) {
        return NULL;
    }
    for (size_t i = h & (t->nslots - 1);; i = (i + 1) & (t->nslots - 1)) {
        uint32_t v = t->slots[i];
        if (v == 0) {
            return NULL;
        }
        struct tx_ent *e = &t->ents[v - 1];
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            return e;
        }
    }
}

/* Double the index (or make the first one) and put every entry back. */
static int
tx_grow_index(kvd_store_txn *t)
{
    size_t n = t->nslots ? t->nslots * 2 : TX_MIN_SLOTS;
    uint32_t *slots = calloc(n, sizeof(*slots));

    if (slots == NULL) {
        return KVD_ENOMEM;
    }
    for (size_t k = 0; k < t->nents; k++) {
        size_t i = t->ents[k].hash & (n - 1);
        while (slots[i] != 0) {
            i = (i + 1) & (n - 1);
        }
        slots[i] = (uint32_t)(k + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    return 0;
}

/* The entry of key, made (key copied, no value yet) when there is none. */
static struct tx_ent *
tx_upsert(kvd_store_txn *t, const void *key, size_t klen, uint64_t h)
{
    struct tx_ent *e = tx_find(t, key, klen, h);
    unsigned char *kcopy;

    if (e != NULL) {
        return e;
    }
    if ((t->nents + 1) * 2 > t->nslots && tx_grow_index(t) != 0) {
        return NULL;
    }
    if (t->nents == t->ents_cap) {
        size_t cap = t->ents_cap ? t->ents_cap * 2 : 16;
        struct tx_ent *ents = realloc(t->ents, cap * sizeof(*ents));
        if (ents == NULL) {
            return NULL;
        }
        t->ents = ents;
        t->ents_cap = cap;
    }
    kcopy = tx_alloc(t, klen);
    if (kcopy == NULL) {
        return NULL;
    }
    memcpy(kcopy, key, klen);
    e = &t->ents[t->nents];
    *e = (struct tx_ent){.hash = h, .key = kcopy, .klen = klen};
    size_t i = h & (t->nslots - 1);
    while (t->slots[i] != 0) {
        i = (i + 1) & (t->nslots - 1);
    }
    t->slots[i] = (uint32_t)(++t->nents);
    return e;
}

/* The transaction's version of key: the overlay's, else the store's.
 * 0 with *out filled (release it: the overlay's need nothing), or
 * KVD_ENOTFOUND, or an engine error. */
static int
tx_read(kvd_store_txn *t, const void *key, size_t klen, uint64_t h,
        struct kvd_val *out)
{
    const struct tx_ent *e = tx_find(t, key, klen, h);

    if (e == NULL) {
        return kvd_store_get_raw(t->st, key, klen, out);
    }
    if (e->val == NULL || kvd_store_expired(t->st, e->expire_ms)) {
        return KVD_ENOTFOUND;
    }
    memset(out, 0, sizeof(*out));
    out->data = e->val;
    out->len = e->vlen;
    out->expire_ms = e->expire_ms;
    return 0;
}

/* Out of memory in the overlay: the transaction cannot be applied as
 * written, so it fails whole. */
static int
tx_fail(kvd_store_txn *t, int rc)
{
    if (t->failed == 0) {
        t->failed = rc;
    }
    return rc;
}

/* Record a delete of key, which the caller found live. */
static int
tx_tombstone(kvd_store_txn *t, const void *key, size_t klen, uint64_t h)
{
    struct tx_ent *e;

    assert(tx_holds(t, (uint32_t)(h & (STORE_STRIPES - 1))));
    e = tx_upsert(t, key, klen, h);

    if (e == NULL) {
        return tx_fail(t, KVD_ENOMEM);
    }
    e->val = NULL;
    e->vlen = 0;
    e->expire_ms = KVD_NO_EXPIRY;
    return 0;
}

/* Whether key is live for the transaction: 1, 0, or an engine error. */
static int
tx_live(kvd_store_txn *t, const void *key, size_t klen, uint64_t h)
{
    struct kvd_val cur;
    int rc = tx_read(t, key, klen, h, &cur);

    if (rc == 0) {
        kvd_val_release(&cur);
        return 1;
    }
    return rc == KVD_ENOTFOUND ? 0 : rc;
}

/* Delete key (sizes checked): 0, KVD_ENOTFOUND, or an error. */
static int
tx_del_checked(kvd_store_txn *t, const void *key, size_t klen, uint64_t h)
{
    int live = tx_live(t, key, klen, h);

    if (live < 0) {
        return live;
    }
    if (live == 0) {
        return KVD_ENOTFOUND;
    }
    return tx_tombstone(t, key, klen, h);
}

/* Store val under key (sizes checked); an expiry already past deletes. */
static int
tx_put_checked(kvd_store_txn *t, const void *key, size_t klen, uint64_t h,
               const void *val, size_t vlen, int64_t expire_ms)
{
    struct tx_ent *e;
    unsigned char *vcopy;

    assert(tx_holds(t, (uint32_t)(h & (STORE_STRIPES - 1))));
    if (kvd_store_expired(t->st, expire_ms)) {
        int rc = tx_del_checked(t, key, klen, h);
        return rc == KVD_ENOTFOUND ? 0 : rc;
    }
    /* The copy first: val may point into the arena (an older value of
     * this very key, PERSIST and EXPIRE rewrite it so). */
    vcopy = tx_alloc(t, vlen > 0 ? vlen : 1);
    e = vcopy != NULL ? tx_upsert(t, key, klen, h) : NULL;
    if (e == NULL) {
        return tx_fail(t, KVD_ENOMEM);
    }
    if (vlen > 0) {
        memcpy(vcopy, val, vlen);
    }
    e->val = vcopy;
    e->vlen = vlen;
    e->expire_ms = expire_ms;
    return 0;
}

/* The checks every write of the plain calls makes first. */
static int
tx_check(kvd_store *st, size_t klen, const size_t *vlen)
{
    int rc = kvd_store_check_key(st, klen);

    if (rc == 0 && vlen != NULL) {
        rc = kvd_store_check_value(st, *vlen);
    }
    if (rc == 0) {
        rc = st->tx->failed;
    }
    return rc;
}

/* ---- the view's calls ------------------------------------------------------
 */

int
kvd_store_tx_get(kvd_store *st, const void *key, size_t klen,
                 struct kvd_val *out)
{
    int rc = tx_check(st, klen, NULL);

    kvd_store_metric_add(st, KVD_M_CMD_GET, 1);
    if (rc != 0) {
        return rc;
    }
    rc = tx_read(st->tx, key, klen, kvd_store_key_hash(key, klen), out);
    kvd_store_metric_add(st,
                         rc == 0               ? KVD_M_HITS
                         : rc == KVD_ENOTFOUND ? KVD_M_MISSES
                                               : KVD_M_ERRORS,
                         1);
    return rc;
}

int
kvd_store_tx_put(kvd_store *st, const void *key, size_t klen, const void *val,
                 size_t vlen, int64_t expire_ms)
{
    int rc = tx_check(st, klen, &vlen);

    if (rc != 0) {
        return rc;
    }
    return tx_put_checked(st->tx, key, klen, kvd_store_key_hash(key, klen), val,
                          vlen, expire_ms);
}

int
kvd_store_tx_set(kvd_store *st, const void *key, size_t klen, const void *val,
                 size_t vlen, int64_t expire_ms, unsigned flags, int *created)
{
    uint64_t h = kvd_store_key_hash(key, klen);
    bool exists = false;
    int rc = tx_check(st, klen, &vlen);

    kvd_store_metric_add(st, KVD_M_CMD_SET, 1);
    if (rc != 0) {
        return kvd_store_counted(st, rc);
    }
    if (flags != 0 || created != NULL) {
        struct kvd_val cur;
        rc = tx_read(st->tx, key, klen, h, &cur);
        if (rc == 0) {
            exists = true;
            if (flags & KVD_SET_KEEPTTL) {
                expire_ms = cur.expire_ms;
            }
            kvd_val_release(&cur);
        } else if (rc != KVD_ENOTFOUND) {
            return kvd_store_counted(st, rc);
        }
        if ((flags & KVD_SET_NX) && exists) {
            return KVD_EEXIST;
        }
        if ((flags & KVD_SET_XX) && !exists) {
            return KVD_ENOTFOUND;
        }
    }
    rc = tx_put_checked(st->tx, key, klen, h, val, vlen, expire_ms);
    if (rc == 0 && created != NULL) {
        *created = !exists;
    }
    return kvd_store_counted(st, rc);
}

int
kvd_store_tx_del(kvd_store *st, const void *key, size_t klen)
{
    int rc = tx_check(st, klen, NULL);

    kvd_store_metric_add(st, KVD_M_CMD_DEL, 1);
    if (rc != 0) {
        return kvd_store_counted(st, rc);
    }
    return kvd_store_counted(
        st, tx_del_checked(st->tx, key, klen, kvd_store_key_hash(key, klen)));
}

int
kvd_store_tx_update(kvd_store *st, const void *key, size_t klen,
                    kvd_update_fn fn, void *ctx)
{
    kvd_store_txn *t = st->tx;
    uint64_t h = kvd_store_key_hash(key, klen);
    struct kvd_update upd = {.action = KVD_UPDATE_KEEP};
    struct kvd_val cur;
    bool have = false;
    int rc = tx_check(st, klen, NULL);

    kvd_store_metric_add(st, KVD_M_CMD_UPDATE, 1);
    if (rc != 0) {
        return kvd_store_counted(st, rc);
    }
    rc = tx_read(t, key, klen, h, &cur);
    if (rc == 0) {
        have = true;
    } else if (rc != KVD_ENOTFOUND) {
        return kvd_store_counted(st, rc);
    }
    rc = fn(ctx, have ? &cur : NULL, &upd);
    if (rc == 0 && upd.action == KVD_UPDATE_PUT) {
        rc = kvd_store_check_value(st, upd.vlen);
        if (rc == 0) {
            rc = tx_put_checked(t, key, klen, h, upd.val, upd.vlen,
                                upd.expire_ms);
        }
    } else if (rc == 0 && upd.action == KVD_UPDATE_DEL && have) {
        rc = tx_tombstone(t, key, klen, h);
    }
    /* Released only now: upd.val may point into the old value. */
    if (have) {
        kvd_val_release(&cur);
    }
    return kvd_store_counted(st, rc);
}

int
kvd_store_tx_batch(kvd_store *st, const struct kvd_op *ops, size_t n,
                   struct kvd_err *err)
{
    kvd_store_txn *t = st->tx;
    bool past;
    int rc;

    kvd_store_metric_add(st, KVD_M_CMD_BATCH, 1);
    rc = kvd_store_batch_check(st, ops, n, &past, err);
    if (rc == 0 && t->failed != 0) {
        rc = kvd_err_set(err, t->failed, "transaction failed earlier");
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct kvd_op *op = &ops[i];
        uint64_t h = kvd_store_key_hash(op->key, op->klen);
        if (op->type == KVD_OP_PUT) {
            rc = tx_put_checked(t, op->key, op->klen, h, op->val, op->vlen,
                                op->expire_ms);
        } else {
            rc = tx_del_checked(t, op->key, op->klen, h);
            rc = rc == KVD_ENOTFOUND ? 0 : rc;
        }
        if (rc != 0) {
            /* Part of the batch is in the overlay: all of it fails. */
            tx_fail(t, rc);
            kvd_err_set(err, rc, "batch operation %zu: %s", i,
                        kvd_strerror(rc));
        }
    }
    return kvd_store_counted(st, rc);
}

int
kvd_store_tx_multi(kvd_store *st, struct kvd_mop *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ops[i].out.release = NULL;
        kvd_store_mop(st, &ops[i]);
    }
    return 0;
}

/* Apply the overlay to the store as one batch (the caller holds every
 * stripe of its keys), and empty it. The arena stays: values returned
 * earlier stay valid until the transaction ends. */
static int
tx_apply(kvd_store_txn *t, struct kvd_err *err)
{
    bool past;
    int rc;

    if (t->nents == 0) {
        return 0;
    }
    if (t->nents > t->ops_cap) {
        struct kvd_op *ops = realloc(t->ops, t->nents * sizeof(*ops));
        if (ops == NULL) {
            return kvd_err_set(err, KVD_ENOMEM, "transaction: out of memory");
        }
        t->ops = ops;
        t->ops_cap = t->nents;
    }
    for (size_t i = 0; i < t->nents; i++) {
        const struct tx_ent *e = &t->ents[i];
        t->ops[i] = (struct kvd_op){
            .type = e->val != NULL ? KVD_OP_PUT : KVD_OP_DEL,
            .key = e->key,
            .klen = e->klen,
            .val = e->val,
            .vlen = e->vlen,
            .expire_ms = e->expire_ms,
        };
    }
    rc = kvd_store_batch_check(t->st, t->ops, t->nents, &past, err);
    if (rc == 0) {
        rc = kvd_store_batch_apply(t->st, t->ops, t->nents, past, err);
    }
    if (rc == 0) {
        memset(t->slots, 0, t->nslots * sizeof(*t->slots));
        t->nents = 0;
    }
    return rc;
}

int
kvd_store_tx_segment(kvd_store *st)
{
    kvd_store_txn *t = st->tx;

    if (t->failed == 0) {
        int rc = tx_apply(t, NULL);
        if (rc != 0) {
            tx_fail(t, rc);
        }
    }
    return t->failed;
}

int
kvd_store_tx_clear(kvd_store *st, struct kvd_err *err)
{
    kvd_store_txn *t = st->tx;
    int rc = kvd_store_tx_segment(st);

    if (rc != 0) {
        return kvd_err_set(err, rc, "transaction: %s", kvd_strerror(rc));
    }
    /* FLUSHDB reads and writes the whole key space: its transaction holds
     * every stripe (the command table says so). */
    assert(t->all);
    return kvd_store_clear_locked(t->st, err);
}

/* ---- commit, abort
 * ----------------------------------------------------------- */

/* Unlock, and make the txn ready for the next transaction. */
static void
tx_end(kvd_store_txn *t)
{
    if (t->all) {
        for (uint32_t s = STORE_STRIPES; s-- > 0;) {
            kvd_store_stripe_unlock(t->st, s);
        }
    } else {
        for (size_t i = t->nlocked; i-- > 0;) {
            kvd_store_stripe_unlock(t->st, t->stripes[i]);
        }
    }
    t->active = false;
    t->all = false;
    t->nstripes = 0;
    t->nlocked = 0;
    t->nents = 0;
    t->failed = 0;
    if (t->nslots > TX_KEEP_SLOTS) {
        free(t->slots);
        t->slots = NULL;
        t->nslots = 0;
    } else if (t->nslots > 0) {
        memset(t->slots, 0, t->nslots * sizeof(*t->slots));
    }
    /* Keep the newest chunk, emptied; a big transaction's rest goes. */
    if (t->chunks != NULL) {
        tx_free_chunks(t->chunks->next);
        t->chunks->next = NULL;
        t->chunks->used = 0;
        if (t->chunks->cap > TX_CHUNK_BYTES) {
            free(t->chunks);
            t->chunks = NULL;
        }
    }
}

int
kvd_store_txn_commit(kvd_store_txn *t, struct kvd_err *err)
{
    int rc = t->failed;

    assert(t->active);
    if (rc != 0) {
        kvd_err_set(err, rc, "transaction: %s", kvd_strerror(rc));
    } else {
        rc = tx_apply(t, err);
    }
    tx_end(t);
    return rc;
}

void
kvd_store_txn_abort(kvd_store_txn *t)
{
    if (!t->active) {
        /* before begin: only the stripes added so far to forget */
        t->all = false;
        t->nstripes = 0;
        return;
    }
    tx_end(t);
}
