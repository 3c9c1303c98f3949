/*
 * engines/memory/mem_internal.h -- shared declarations of the memory engine.
 *
 * Private to engines/memory: nothing here is part of the plugin ABI, and
 * every function declared here has hidden visibility (the plugin exports
 * only kvd_engine_entry).
 *
 * Files: mem_table.c (the sharded hash table: hashing, entries, incremental
 * rehash, range collection for iteration, expiry scans), mem_snapshot.c
 * (snapshot write and load), mem_engine.c (options, open/close, the
 * vtable methods, the background work). Checksums, byte order, durable
 * replace and the background thread come from the engine toolkit.
 *
 * Model. The key space is ordered by a 64-bit keyed hash `h` (never
 * UINT64_MAX, so that it can serve as the iteration pos). The top
 * `shard_bits` of h pick the shard; the remaining bits, shifted to the top
 * ("local hash" l = h << shard_bits), index the shard's bucket array by its
 * top `bits` bits. So every shard owns one contiguous range of h, and every
 * bucket one contiguous sub-range; doubling a table splits bucket i into
 * 2i and 2i+1 and hash order stays bucket order. Iteration, snapshots and
 * the expiry sampler walk the space with a hash cursor, which stays
 * meaningful across resizes.
 *
 * Locking. Each shard has one rwlock guarding every field of the shard and
 * the `next` links of the entries in its table. Readers (get, iteration,
 * snapshot collection, stats) take it shared; writers take it exclusive.
 * Lock order: mem_db.snap_lock, then shard locks in ascending shard index
 * (batch and clear take several; everyone else takes one at a time).
 *
 * Entries are immutable once published (except `next`) and refcounted:
 * the table holds one reference, each get()/iterator/snapshot holder one
 * more, so bytes handed out stay valid after concurrent overwrites. An
 * overwrite allocates a new entry and swaps it in.
 */
#ifndef KVD_MEM_INTERNAL_H
#define KVD_MEM_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/engine.h"
#include "kvd/kit_worker.h"

#define MEM_CACHELINE_BYTES 64
#define MEM_MIN_BUCKET_BITS 4
#define MEM_MAX_BUCKET_BITS 40
/* Old buckets moved to the new table on every write while a shard is
 * being resized. With growth at load 1.5 and >= 1 step per insert, a
 * rehash always ends before the next one is due. */
#define MEM_REHASH_STEP_BUCKETS 2
#define MEM_MAX_KEY_BYTES       UINT32_MAX
#define MEM_MAX_VALUE_BYTES     UINT32_MAX
#define MEM_SNAP_MARK_FILE      "snapshot.written"

/*
 * One key and its value. Allocated as one block of
 * offsetof(struct mem_entry, kv) + klen + vlen bytes (28 B of header).
 * Everything but `next` is fixed at creation. The hash is not stored:
 * recomputing it when a bucket is split or iterated costs less than 8 B
 * on every key.
 */
struct mem_entry {
    struct mem_entry *next; /* chain link; guarded by the shard lock */
    int64_t expire_ms;      /* absolute Unix ms, or KVD_NO_EXPIRY */
    atomic_uint refs;       /* 1 for the table + 1 per outside holder */
    uint32_t klen;
    uint32_t vlen;
    unsigned char kv[]; /* key bytes, then value bytes */
};

#define MEM_ENTRY_HEADER_BYTES offsetof(struct mem_entry, kv)

/*
 * One shard. Every field is guarded by `lock`. During a resize tab[1] is
 * the new table (bits[1] == bits[0] + 1) and old buckets below rehash_idx
 * have been moved to it; otherwise tab[1] is NULL.
 */
struct mem_shard {
    alignas(MEM_CACHELINE_BYTES) pthread_rwlock_t lock;
    struct mem_entry **tab[2];
    unsigned bits[2];
    size_t rehash_idx;
    uint64_t count;       /* entries in the table, expired ones included */
    uint64_t key_bytes;   /* of those entries */
    uint64_t value_bytes; /* of those entries */
    uint64_t alloc_bytes; /* entry blocks + bucket arrays */
    uint64_t n_expiring;  /* entries with an expiry */
    int64_t min_expire;   /* <= every expiry in the table; INT64_MAX: none */
    int64_t wrap_min;     /* sampler: min expiry seen in the current lap */
    uint64_t expire_cur;  /* sampler: local hash where the next round starts */
};

/* Parsed options (the host fills it from the [engine] section). */
struct mem_opts {
    int64_t shards;
    char *snapshot_path;
    int64_t snapshot_interval_ms;
    int64_t expire_interval_ms;
    int64_t expire_sample;
};

/*
 * The engine handle. Fields above `snap_lock` are fixed after open. The
 * counters are atomics. saved_gen and disk_bytes are guarded by snap_lock.
 */
struct kvd_engine {
    const struct kvd_host *host;
    struct mem_shard *shards;
    uint32_t nshards;
    unsigned shard_bits;
    uint64_t seed;
    char *snap_path; /* absolute or dir-relative full path; NULL: none */
    /* DIR/snapshot.written: names snap_path once a snapshot was written
     * there, so that a missing one is known to be lost; NULL: no dir */
    char *mark_path;
    int64_t snapshot_interval_ms;
    int64_t expire_interval_ms;
    uint32_t expire_sample;

    pthread_mutex_t snap_lock;
    uint64_t saved_gen; /* value of `mutations` the last snapshot saw */
    bool snap_exists;   /* a snapshot file is in place */

    kvd_worker *bg;         /* expiry rounds, periodic snapshots */
    int64_t next_expire_ms; /* monotonic ms; used by the worker only */
    int64_t next_snap_ms;   /* monotonic ms; used by the worker only */

    atomic_uint_fast64_t mutations; /* bumped by every change */
    atomic_uint_fast64_t expired_bg;
    atomic_uint_fast64_t expired_fg;
    atomic_uint_fast64_t snapshots_written;
    atomic_uint_fast64_t snapshot_errors;
    atomic_uint_fast64_t disk_bytes;
    atomic_uint_fast64_t rehash_started;
};

/* One collected entry and its hash (= its iteration pos). */
struct mem_item {
    struct mem_entry *e;
    uint64_t hash;
};

/* Filter and output buffer for mem_table_collect. Holds a reference on
 * every entry in v[0..n). */
struct mem_collect {
    struct mem_item *v;
    size_t n;
    size_t cap;
    const void *prefix;
    size_t prefix_len;
    int64_t now_ms;
};

/* --- mem_table.c ------------------------------------------------------- */

uint64_t mem_hash(const kvd_engine *db, const void *key, size_t klen);
struct mem_shard *mem_shard_of(const kvd_engine *db, uint64_t hash);

int mem_table_init(kvd_engine *db);
/* Frees every table and drops the table's references; no locking. */
void mem_table_destroy(kvd_engine *db);

/* A new entry holding one reference, or NULL (out of memory). */
struct mem_entry *mem_entry_create(const void *key, size_t klen,
                                   const void *val, size_t vlen,
                                   int64_t expire_ms);
void mem_entry_ref(struct mem_entry *e);
void mem_entry_unref(struct mem_entry *e);
/* Unref a list linked through `next` (entries already unlinked). */
void mem_entry_unref_list(struct mem_entry *head);

static inline bool
mem_entry_expired(const struct mem_entry *e, int64_t now_ms)
{
    return kvd_expired(e->expire_ms, now_ms);
}

/* Shard lock held (any mode). The entry for key, expired or not, or NULL. */
struct mem_entry *mem_shard_find_locked(const kvd_engine *db,
                                        struct mem_shard *sh, uint64_t hash,
                                        const void *key, size_t klen);

/* Shard lock held exclusive. Link `e`, whose key hashes to `hash`
 * (taking over its reference), replacing any entry with the same key;
 * returns the replaced entry, now
 * unlinked, for the caller to unref after unlocking (or NULL). Never
 * fails: when the table cannot grow it keeps longer chains. */
struct mem_entry *mem_shard_put_locked(kvd_engine *db, struct mem_shard *sh,
                                       uint64_t hash, struct mem_entry *e);

/* Shard lock held exclusive. Unlink the key's entry, if any, and return
 * it for the caller to unref after unlocking (or NULL). *was_live says
 * whether it had not expired at now_ms. */
struct mem_entry *mem_shard_del_locked(kvd_engine *db, struct mem_shard *sh,
                                       uint64_t hash, const void *key,
                                       size_t klen, int64_t now_ms,
                                       bool *was_live);

/*
 * Take the shard lock of *cur shared and append to c the live entries
 * (prefix-matching) of the bucket holding hash *cur with hash >= *cur,
 * sorted by hash; then advance *cur past the bucket and go on in the same
 * shard until at least `want` entries were added, or `max_buckets` were
 * visited, or the shard ends. Sets *done when the whole hash space has
 * been covered. 0 or KVD_ENOMEM (c keeps what was added).
 */
int mem_table_collect(kvd_engine *db, uint64_t *cur, bool *done,
                      struct mem_collect *c, size_t want, size_t max_buckets);
void mem_collect_release(struct mem_collect *c);

/* Live totals of one shard at now_ms, under its shared lock. */
void mem_shard_stats(kvd_engine *db, struct mem_shard *sh, int64_t now_ms,
                     uint64_t *keys, uint64_t *key_bytes, uint64_t *value_bytes,
                     uint64_t *alloc_bytes, bool *rehashing);

/* Reclaim every expired entry of the shard; returns how many. */
uint64_t mem_shard_expire_all(kvd_engine *db, struct mem_shard *sh,
                              int64_t now_ms);

/* One sampling round on a shard: examine up to `sample` entries with an
 * expiry from the shard's sampler cursor, reclaim the expired ones.
 * *examined and *expired report the round. */
void mem_shard_expire_round(kvd_engine *db, struct mem_shard *sh,
                            int64_t now_ms, uint32_t sample, uint32_t *examined,
                            uint32_t *expired);

/* Delete everything, atomically for every reader: all shard locks are
 * taken (ascending) before anything changes. 0 or KVD_ENOMEM (then
 * nothing changed). */
int mem_table_clear(kvd_engine *db);

/* --- mem_snapshot.c ---------------------------------------------------- */

/* Write a snapshot now unless nothing changed since the last one
 * (force: write anyway). 0, or KVD_EIO/KVD_ENOSPC/KVD_ENOMEM with err. */
int mem_snapshot_write(kvd_engine *db, bool force, struct kvd_err *err);

/* Check at open that the snapshot's directory exists and can be synced,
 * so that a bad snapshot_path fails now rather than at shutdown. */
int mem_snapshot_check_dir(kvd_engine *db, struct kvd_err *err);

/* Load db->snap_path into the (empty) table; a missing file is fine.
 * KVD_ECORRUPT names the file and the offset of the bad bytes. */
int mem_snapshot_load(kvd_engine *db, struct kvd_err *err);

#endif /* KVD_MEM_INTERNAL_H */
