/*
 * core/store_int.h -- internals shared by the store's files.
 *
 *   store.c        the store and its plain operations (store.h)
 *   store_tx.c     transaction views: an overlay of a transaction's
 *                  writes over the store, committed as one engine batch
 *   store_watch.c  the WATCH registry: key -> watchers, marked dirty by
 *                  every write path
 *
 * A transaction view is a struct kvd_store too: a copy of the store's
 * struct with `tx` set, so the handlers of the command layer use the same
 * kvd_store_* calls on it. Every call whose behaviour differs in a view
 * branches on st->tx once at its top; shared mutable state is reached
 * through pointers (stripes, counters) or through st->base (the store
 * itself, whose `base` points to itself).
 *
 * Locks: one mutex per stripe (STORE_STRIPES, by a hash of the key). A
 * stripe's mutex guards the writes of its keys and the watch nodes of its
 * keys (struct store_stripe.watch). Several stripes are always taken in
 * ascending order, each once (kvd_store_stripes_lock); a transaction
 * holds its stripes from begin to commit.
 *
 * Nothing here is installed, and nothing outside core/store*.c includes
 * this header.
 */
#ifndef KVD_CORE_STORE_INT_H
#define KVD_CORE_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/store.h"

#define STORE_STRIPES     1024u /* power of two */
#define STORE_CTR_SLOTS   32u
#define STORE_CACHE_BYTES 64

struct store_watch_node; /* store_watch.c */

struct store_stripe {
    pthread_mutex_t mu;
    /* The watched keys of this stripe, a list guarded by mu. */
    struct store_watch_node *watch;
} __attribute__((aligned(STORE_CACHE_BYTES)));

struct store_ctr_slot {
    _Atomic uint64_t v[KVD_M_COUNT];
} __attribute__((aligned(STORE_CACHE_BYTES)));

/*
 * The store. Every field is fixed after kvd_store_open() except nwatch
 * (atomic) and what the stripes guard; a transaction view copies the
 * struct and sets tx.
 */
struct kvd_store {
    const struct kvd_engine_vtable *vt;
    kvd_engine *eng;
    const struct kvd_host *host;
    uint64_t max_key_bytes;
    uint64_t max_value_bytes;
    int64_t start_ms;
    struct store_stripe *stripes; /* STORE_STRIPES */
    struct store_ctr_slot *ctr;   /* STORE_CTR_SLOTS */
    /* the engine's multi, when its vtable has one (else NULL) */
    int (*multi)(kvd_engine *e, struct kvd_mop *ops, size_t n);
    /* The store itself (a view's base; the store's is itself). */
    struct kvd_store *base;
    /* Watch nodes registered in all stripes: writers skip the registry
     * while it is 0 (one relaxed load per write). Changed only with the
     * node's stripe held, so a writer holding a stripe sees every node of
     * it. Used on base only. */
    _Atomic size_t nwatch;
    /* NULL for the store; a view's transaction. */
    struct kvd_store_txn *tx;
};

/* --- store.c ------------------------------------------------------------ */

/* The 64-bit hash of a key; its low bits are its stripe. */
uint64_t kvd_store_key_hash(const void *key, size_t klen);
uint32_t kvd_store_stripe_of(const void *key, size_t klen);
void kvd_store_stripe_lock(kvd_store *st, uint32_t s);
void kvd_store_stripe_unlock(kvd_store *st, uint32_t s);

/* Sort the m stripe numbers in s, drop repeats, lock them in ascending
 * order. Returns how many were locked, listed at the start of s. */
size_t kvd_store_stripes_lock(kvd_store *st, uint32_t *s, size_t m);

/* The engine's get with expiry applied; counts nothing. */
int kvd_store_get_raw(kvd_store *st, const void *key, size_t klen,
                      struct kvd_val *out);

/* Whether an absolute expiry has passed (KVD_NO_EXPIRY never does). */
bool kvd_store_expired(kvd_store *st, int64_t expire_ms);

/* Validate a batch (every op; err filled); *past says whether a put has
 * an expiry already past. */
int kvd_store_batch_check(kvd_store *st, const struct kvd_op *ops, size_t n,
                          bool *past, struct kvd_err *err);

/* Apply a checked batch to the engine (one atomic batch on engines with
 * a batch capability); the caller holds the stripes of its keys. Touches
 * the watchers of every key when it succeeds. */
int kvd_store_batch_apply(kvd_store *st, const struct kvd_op *ops, size_t n,
                          bool past, struct kvd_err *err);

/* Count a write's result in the error metric (ENOTFOUND and EEXIST are
 * answers, not errors); returns rc. */
int kvd_store_counted(kvd_store *st, int rc);

/* FLUSHDB's work with every stripe held: tell the watchers of existing
 * keys, then clear the engine. */
int kvd_store_clear_locked(kvd_store *st, struct kvd_err *err);

/* --- store_watch.c -------------------------------------------------------- */

/* Mark the watchers of key dirty (the caller holds its stripe). */
void kvd_store_watch_mark_locked(kvd_store *st, const void *key, size_t klen);

/* A write to key succeeded: tell its watchers. The caller holds the key's
 * stripe. Inline, so a write while nobody watches anything costs one
 * relaxed load and a branch. */
static inline void
kvd_store_watch_touch_locked(kvd_store *st, const void *key, size_t klen)
{
    if (atomic_load_explicit(&st->base->nwatch, memory_order_relaxed) != 0) {
        kvd_store_watch_mark_locked(st, key, klen);
    }
}

/* The store is about to be cleared (FLUSHDB), every stripe held: mark the
 * watchers of every watched key that exists. */
void kvd_store_watch_clear_locked(kvd_store *st);

/* --- store_tx.c ---------------------------------------------------------- */

/* One more stripe for the transaction to hold (kvd_store_txn_add_key
 * without the hash). 0 or KVD_ENOMEM. */
int kvd_store_txn_add_stripe(kvd_store_txn *t, uint32_t stripe);

/*
 * The view's side of the kvd_store_* calls: each has the contract of the plain
 * call it stands for (store.h), applied to the transaction's overlay over the
 * store; `st` is a view.
 */
int kvd_store_tx_get(kvd_store *st, const void *key, size_t klen,
                     struct kvd_val *out);
int kvd_store_tx_set(kvd_store *st, const void *key, size_t klen,
                     const void *val, size_t vlen, int64_t expire_ms,
                     unsigned flags, int *created);
int kvd_store_tx_put(kvd_store *st, const void *key, size_t klen,
                     const void *val, size_t vlen, int64_t expire_ms);
int kvd_store_tx_del(kvd_store *st, const void *key, size_t klen);
int kvd_store_tx_batch(kvd_store *st, const struct kvd_op *ops, size_t n,
                       struct kvd_err *err);
int kvd_store_tx_update(kvd_store *st, const void *key, size_t klen,
                        kvd_update_fn fn, void *ctx);
int kvd_store_tx_multi(kvd_store *st, struct kvd_mop *ops, size_t n);
int kvd_store_tx_clear(kvd_store *st, struct kvd_err *err);

/* Before a call that reads or writes the engine beyond the overlay
 * (iteration, stats, sync, maintenance): apply the overlay so far as one
 * batch and start a new one. Returns 0, or the commit's error (which
 * every later call of the transaction then returns too). */
int kvd_store_tx_segment(kvd_store *st);

#endif /* KVD_CORE_STORE_INT_H */
