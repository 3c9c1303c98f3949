/*
 * core/store.h -- the store: an engine behind the core's wrappers.
 *
 * Internal to the host. The store is what frontends and the command layer
 * use instead of the engine vtable. It adds, for every engine alike:
 *   - validation: empty keys are refused (KVD_EINVAL), keys and values over
 *     the configured limits are refused (KVD_ETOOBIG) before any I/O;
 *   - TTL semantics: an expired value is never returned, an expiry in the
 *     past deletes the key;
 *   - write serialisation per key: every write takes the stripe lock of its
 *     key (multi-key writes take their stripes in ascending order), so
 *     read-modify-write operations (kvd_store_update, kvd_store_lock_keys)
 *     are atomic against every other writer on every engine;
 *   - metrics without a global lock (per-thread counter stripes).
 * Reads take no lock: they go straight to the engine, which allows
 * concurrent readers by contract.
 *
 * Thread-safety: every function may be called from any thread once
 * kvd_store_open() returned, except kvd_store_close().
 */
#ifndef KVD_CORE_STORE_H
#define KVD_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/engine.h"
#include "kvd/frontend.h"
#include "kvd/host.h"
#include "kvd/status.h"

struct kvd_store_limits {
    uint64_t max_key_bytes;   /* 0 = the engine's limit */
    uint64_t max_value_bytes; /* 0 = the engine's limit */
};

/*
 * Open the engine `vt` with its parsed options `opts` (borrowed until
 * close) in directory `dir` and wrap it. On failure err holds the engine's
 * own message.
 */
int kvd_store_open(const struct kvd_engine_vtable *vt, const void *opts,
                   const char *dir, const struct kvd_host *host,
                   const struct kvd_store_limits *limits, kvd_store **out,
                   struct kvd_err *err);

/* Sync and close the engine, free the store (NULL: no-op). */
int kvd_store_close(kvd_store *st, struct kvd_err *err);

/* The API table handed to frontends (struct kvd_server.store_api). */
const struct kvd_store_api *kvd_store_api_table(void);

const struct kvd_engine_vtable *kvd_store_engine(kvd_store *st);

/* Capabilities of this open store (enum kvd_engine_cap): the engine's
 * instance_caps() when it has one, else its static caps. */
uint32_t kvd_store_caps(kvd_store *st);
const struct kvd_host *kvd_store_host(kvd_store *st);
int64_t kvd_store_now_ms(kvd_store *st);

/* Checks only: 0, KVD_EINVAL (empty key) or KVD_ETOOBIG. */
int kvd_store_check_key(kvd_store *st, size_t klen);
int kvd_store_check_value(kvd_store *st, size_t vlen);

/* --- plain operations (each takes what lock it needs) ------------------ */

int kvd_store_get(kvd_store *st, const void *key, size_t klen,
                  struct kvd_val *out);
int kvd_store_set(kvd_store *st, const void *key, size_t klen,
                  const void *val, size_t vlen, int64_t expire_ms,
                  unsigned flags, int *created);
int kvd_store_del(kvd_store *st, const void *key, size_t klen);
int kvd_store_batch(kvd_store *st, const struct kvd_op *ops, size_t n,
                    struct kvd_err *err);
int kvd_store_iter_open(kvd_store *st, const struct kvd_iter_opts *opts,
                        kvd_iter **out, struct kvd_err *err);
int kvd_store_iter_next(kvd_store *st, kvd_iter *it, struct kvd_entry *out);
void kvd_store_iter_close(kvd_store *st, kvd_iter *it);
int kvd_store_stats(kvd_store *st, struct kvd_engine_stats *s,
                    kvd_stat_fn fn, void *ctx);
int kvd_store_sync(kvd_store *st, struct kvd_err *err);
int kvd_store_maintain(kvd_store *st, int op, struct kvd_err *err);
int kvd_store_clear(kvd_store *st, struct kvd_err *err);
int kvd_store_ready(kvd_store *st, char *why, size_t why_len);

/*
 * Independent operations in one engine call (see the engine's multi): the
 * core gathers the simple commands of many clients and runs them here so an
 * engine can overlap them. Every op ends with its status and, for a GET
 * with status 0, its value (release it); the results, TTL rules and
 * metrics are those of kvd_store_get/set/del one by one, except that
 * operations on different keys may take effect in any order. An invalid
 * op gets KVD_EINVAL or KVD_ETOOBIG without reaching the engine. Returns 0,
 * or a status that every op then also carries (out of memory).
 */
int kvd_store_multi(kvd_store *st, struct kvd_mop *ops, size_t n);

/*
 * One operation of the kind kvd_store_multi takes, run alone: GET is
 * kvd_store_get, PUT kvd_store_set (no flags), DEL kvd_store_del. Sets and
 * returns op->status; a GET with status 0 fills op->out (release it).
 * (kvd_store_multi in a transaction view runs its operations so.)
 */
int kvd_store_mop(kvd_store *st, struct kvd_mop *op);

/* Whether the engine has a multi method of its own: when it does not,
 * kvd_store_multi only loops, and gathering commands gains nothing. */
bool kvd_store_has_multi(kvd_store *st);

/* --- read-modify-write ------------------------------------------------- */

enum kvd_update_action {
    KVD_UPDATE_KEEP = 0, /* change nothing */
    KVD_UPDATE_PUT = 1,  /* store val/vlen/expire_ms */
    KVD_UPDATE_DEL = 2,  /* delete the key */
};

struct kvd_update {
    int action; /* enum kvd_update_action */
    const void *val;
    size_t vlen;
    int64_t expire_ms;
};

/*
 * Called with the key's write lock held. `cur` is the current live value,
 * or NULL when the key is absent or expired. The function fills *out (the
 * bytes it points to must stay valid until kvd_store_update returns) and
 * returns 0, or a status that aborts the update and is returned as is.
 */
typedef int (*kvd_update_fn)(void *ctx, const struct kvd_val *cur,
                             struct kvd_update *out);

/*
 * Atomic read-modify-write of one key: lock, read, call fn, write what fn
 * decided, unlock. No other write to the key can come between the read and
 * the write. Returns fn's status or the write's.
 */
int kvd_store_update(kvd_store *st, const void *key, size_t klen,
                     kvd_update_fn fn, void *ctx);

/*
 * Multi-key atomic sections (RENAME, MSETNX, COPY, DEL k1 k2 ...): lock
 * the stripes of all n keys (deadlock-free: ascending stripe order, each
 * once), do any mix of kvd_store_get and the *_locked writes below, then
 * unlock. The guard lives on the caller's stack.
 */
#define KVD_STORE_GUARD_MAX 64

struct kvd_store_guard {
    size_t n;
    uint32_t stripes[KVD_STORE_GUARD_MAX];
    bool all; /* more keys than stripes: every stripe is held */
};

void kvd_store_lock_keys(kvd_store *st, size_t n, const void *const *keys,
                         const size_t *klens, struct kvd_store_guard *g);
void kvd_store_unlock_keys(kvd_store *st, struct kvd_store_guard *g);

/* Writes for use inside a locked section; same results as the plain
 * calls (the set flags are not applied: the caller decided already). */
int kvd_store_put_locked(kvd_store *st, const void *key, size_t klen,
                         const void *val, size_t vlen, int64_t expire_ms);
int kvd_store_del_locked(kvd_store *st, const void *key, size_t klen);
int kvd_store_batch_locked(kvd_store *st, const struct kvd_op *ops, size_t n,
                           struct kvd_err *err);

/* --- transactions (MULTI/EXEC) ------------------------------------------ */

/*
 * A transaction: its commands run against a *view* of the store, and their
 * writes reach the engine as one batch at the end.
 *
 *   kvd_store_txn_add_key / _add_all / _add_watch: the stripes it will
 *       hold (every key its commands read or write, the keys its session
 *       watches; _add_all when a command reads or writes the whole key
 *       space);
 *   kvd_store_txn_begin: lock them (ascending, the order of every
 *       multi-key section) and return the view: a kvd_store* for the
 *       usual kvd_store_* calls, whose reads see the transaction's own
 *       writes over the store, and whose writes go to an overlay (the
 *       kvd_store_lock_keys sections of handlers hold nothing more: the
 *       transaction holds every stripe they need);
 *   kvd_store_txn_commit: apply the overlay as one engine batch (atomic
 *       and one log record on engines with KVD_CAP_ATOMIC_BATCH; on
 *       KVD_CAP_BATCH_PARTITIONED engines refused whole with
 *       KVD_ECROSSSLOT when the writes span partitions; emulated, not
 *       crash-atomic, on engines without batch), tell the watchers of the
 *       keys written, unlock. Returns 0 or the batch's error, with
 *       nothing of the overlay applied;
 *   kvd_store_txn_abort: unlock, drop the overlay (before begin: forget
 *       the stripes added).
 *
 * Whole-key-space calls in a view (iteration, stats, clear, sync,
 * maintenance) first apply the overlay so far as a batch of its own (a
 * segment), so they see it; with every stripe held no other writer comes
 * between, but a crash keeps whole segments, not the whole transaction.
 * If a segment fails, every later call of the view and the commit return
 * its error.
 *
 * Keys outside the stripes held must not be written through the view (a
 * debug build asserts it). A txn belongs to one thread, is reused from
 * transaction to transaction, and keeps its memory between them.
 */
typedef struct kvd_store_txn kvd_store_txn;
typedef struct kvd_store_watch kvd_store_watch;

/* NULL when out of memory. */
kvd_store_txn *kvd_store_txn_create(kvd_store *st);
/* Free (NULL: no-op); it must not be between begin and commit/abort. */
void kvd_store_txn_destroy(kvd_store_txn *t);
/* 0 or KVD_ENOMEM (the transaction must then not begin). */
int kvd_store_txn_add_key(kvd_store_txn *t, const void *key, size_t klen);
void kvd_store_txn_add_all(kvd_store_txn *t);
int kvd_store_txn_add_watch(kvd_store_txn *t, const kvd_store_watch *w);
kvd_store *kvd_store_txn_begin(kvd_store_txn *t);
int kvd_store_txn_commit(kvd_store_txn *t, struct kvd_err *err);
void kvd_store_txn_abort(kvd_store_txn *t);

/*
 * WATCH: a watch set belongs to one session (one thread at a time); the
 * store keeps a registry key -> watchers, guarded by each key's stripe,
 * and every write path of the store marks the watchers of the keys it
 * wrote (deletes of absent keys and NX/XX sets that did not set write
 * nothing; FLUSHDB marks only watched keys that existed). Nothing is
 * measurable while nobody watches: one relaxed atomic load per write.
 *
 * kvd_store_watch_key: watch one more key (a key already watched by this
 *     set is not added twice; an empty or oversized key, which can never
 *     exist, is accepted and never changes). Takes the key's stripe.
 *     Returns 0 or KVD_ENOMEM.
 * kvd_store_watch_changed: whether a watched key was written since it was
 *     watched, or was live with an expiry then and has expired by now.
 *     Call it holding the stripes of every watched key (between
 *     kvd_store_txn_begin and commit/abort, with _add_watch).
 * kvd_store_watch_clear: forget every key (takes their stripes: never
 *     between begin and commit/abort of a transaction).
 */
kvd_store_watch *kvd_store_watch_create(kvd_store *st);
void kvd_store_watch_destroy(kvd_store_watch *w); /* clears; NULL: no-op */
int kvd_store_watch_key(kvd_store_watch *w, const void *key, size_t klen);
bool kvd_store_watch_changed(kvd_store_watch *w);
void kvd_store_watch_clear(kvd_store_watch *w);
size_t kvd_store_watch_count(const kvd_store_watch *w);

/* --- metrics ----------------------------------------------------------- */

/* Per-command counters, indexed by enum kvd_metric. */
#define KVD_METRIC_MAP(XX)                                                    \
    XX(CMD_GET, "cmd_get")                                                    \
    XX(CMD_SET, "cmd_set")                                                    \
    XX(CMD_DEL, "cmd_del")                                                    \
    XX(CMD_BATCH, "cmd_batch")                                                \
    XX(CMD_ITER, "cmd_iter")                                                  \
    XX(CMD_UPDATE, "cmd_update")                                              \
    XX(HITS, "keyspace_hits")                                                 \
    XX(MISSES, "keyspace_misses")                                             \
    XX(EXPIRED, "expired_keys")                                               \
    XX(ERRORS, "errors")                                                      \
    XX(COMMANDS, "commands_processed")

enum kvd_metric {
#define KVD_XX_METRIC(id, name) KVD_M_##id,
    KVD_METRIC_MAP(KVD_XX_METRIC)
#undef KVD_XX_METRIC
        KVD_M_COUNT
};

void kvd_store_metric_add(kvd_store *st, int metric, uint64_t n);
uint64_t kvd_store_metric_get(kvd_store *st, int metric);

/* Every metric as name/value pairs (see kvd_store_api.metrics). */
int kvd_store_metrics(kvd_store *st, kvd_stat_fn fn, void *ctx);

#endif /* KVD_CORE_STORE_H */
