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
 * returns op->status; a GET with status 0 fills op->out (release it). The
 * direct form of the commands a pass defers, so both forms share one reply.
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
