/*
 * alog_index.h -- the in-memory index (keydir) of the log engine:
 * key -> (segment, offset, value length, expiry, sequence number).
 *
 * A hash table split into ALOG_SHARDS shards, each with its own rwlock so
 * readers never wait for each other and writers to different shards do not
 * contend. Keys are placed by a 64-bit hash: the top ALOG_SHARD_BITS pick
 * the shard and the next bits pick the bucket, so walking shards and buckets
 * in order visits hashes in ascending order whatever the table sizes are.
 * Iterators use the hash as their resume position (pos).
 *
 * Locking: every field of a shard (buckets, counters) is guarded by its
 * lock. Functions named *_locked expect the caller to hold the shard lock
 * (read for lookups, write for changes). The engine's writer lock is taken
 * before a shard lock, never after.
 */
#ifndef KVD_ALOG_INDEX_H
#define KVD_ALOG_INDEX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALOG_SHARD_BITS        8
#define ALOG_SHARDS            (1u << ALOG_SHARD_BITS)
#define ALOG_ARENA_BLOCK_BYTES (4u << 20)

struct alog_seg;

enum alog_ent_flag {
    ALOG_ENT_TOMBSTONE = 1u << 0, /* only during recovery: a delete */
    ALOG_ENT_ARENA = 1u << 1,     /* carved from the index arena: not freed
                                   * alone (alog_ent_create_bulk) */
};

/* One key. Allocated with the key inline; owned by its shard. */
struct alog_ent {
    struct alog_ent *next; /* bucket chain */
    uint64_t hash;
    uint64_t seq;
    int64_t expire_ms;
    struct alog_seg *seg; /* segment holding the record */
    uint32_t off;         /* offset of the record in the segment */
    uint32_t vlen;
    uint16_t klen;
    uint8_t flags; /* enum alog_ent_flag */
    unsigned char key[];
};

struct alog_shard {
    pthread_rwlock_t lock;
    struct alog_ent **buckets;
    unsigned bits;        /* log2 of the bucket count */
    uint64_t count;       /* entries, tombstones included */
    uint64_t live_keys;   /* entries that are not tombstones */
    uint64_t key_bytes;   /* of live_keys */
    uint64_t value_bytes; /* of live_keys */
    uint64_t expiring;    /* live entries with an expiry */
    uint64_t mem_bytes;   /* entries + buckets */
};

/* A block of the index arena (see alog_ent_create_bulk). */
struct alog_arena_blk;

struct alog_index {
    struct alog_shard shards[ALOG_SHARDS];
    /* recovery's entry arena: written only before other threads exist,
     * freed by alog_index_release */
    struct alog_arena_blk *arena;
    unsigned char *arena_pos;
    unsigned char *arena_end;
};

/* 64-bit hash of a key; never UINT64_MAX (a pos must stay below it). */
uint64_t alog_hash(const void *key, size_t klen);

int alog_index_init(struct alog_index *ix);
void alog_index_release(struct alog_index *ix);

static inline struct alog_shard *
alog_index_shard(struct alog_index *ix, uint64_t hash)
{
    return &ix->shards[hash >> (64 - ALOG_SHARD_BITS)];
}

/* Find the entry of key in shard (lock held). NULL when absent. */
struct alog_ent *alog_shard_find_locked(struct alog_shard *sh, uint64_t hash,
                                        const void *key, size_t klen);

/* Allocate an entry with the key copied in; NULL on ENOMEM. */
struct alog_ent *alog_ent_create(uint64_t hash, const void *key, size_t klen);

/* Bytes an entry with a klen-byte key takes in the arena. */
static inline size_t
alog_ent_bytes(size_t klen)
{
    return (sizeof(struct alog_ent) + klen + 7) & ~(size_t)7;
}

/*
 * An entry for a bulk load (recovery), carved from the index arena: blocks
 * of ALOG_ARENA_BLOCK_BYTES instead of one malloc per key, each block's
 * pages faulted in by one system call, entries of neighbouring records
 * next to each other. Arena entries are never freed one by one: a removed
 * one leaves its bytes unused until the index is released (recovery
 * removes only the tombstones it loaded; a later put of a key reuses its
 * entry). Falls back to alog_ent_create (a long key, or no memory for a
 * block). NULL on ENOMEM. No other thread may use the index.
 */
struct alog_ent *alog_ent_create_bulk(struct alog_index *ix, uint64_t hash,
                                      const void *key, size_t klen);

/* Link a new entry (write lock held; key not present). */
void alog_shard_insert_locked(struct alog_shard *sh, struct alog_ent *e);

/* Unlink and free an entry (write lock held). */
void alog_shard_remove_locked(struct alog_shard *sh, struct alog_ent *e);

/* Account for a change of an entry's value length or flags: call
 * _unaccount before changing, _account after (write lock held). */
void alog_shard_unaccount_locked(struct alog_shard *sh,
                                 const struct alog_ent *e);
void alog_shard_account_locked(struct alog_shard *sh, const struct alog_ent *e);

/* Grow the bucket array when the load passes 1 (write lock held). Failure
 * to grow is harmless (chains get longer). */
void alog_shard_maybe_grow_locked(struct alog_shard *sh);

/* Size every shard's bucket array for `keys` entries spread over the
 * index before they are inserted, so a bulk load (recovery) does not
 * rehash shard after shard as it grows. Rounds up to a power of two per
 * shard, the size growing would reach when every entry is a distinct key:
 * no rehash at all then (a rehash moves every entry of the shard, one
 * cache miss each). When the count overstates the keys (a key in several
 * hint files) the arrays are larger than needed, by 8 bytes per extra
 * record at most. Only grows; failure leaves the arrays as they were
 * (harmless). No other thread may use the index. */
void alog_index_reserve(struct alog_index *ix, uint64_t keys);

/* Bucket range helpers for hash-ordered walks (lock held). */
static inline size_t
alog_shard_bucket(const struct alog_shard *sh, uint64_t hash)
{
    if (sh->bits == 0) {
        return 0;
    }
    return (size_t)((hash << ALOG_SHARD_BITS) >> (64 - sh->bits));
}

/* The first entry of shard (lock held) whose 64-bit hash is `hash`, NULL
 * when none: for a caller that checks the key elsewhere (a get compares it
 * in the record it reads anyway), saving the entry's key cache line. Use
 * alog_shard_find_locked when that check fails. */
static inline struct alog_ent *
alog_shard_find_hash_locked(struct alog_shard *sh, uint64_t hash)
{
    struct alog_ent *e = sh->buckets[alog_shard_bucket(sh, hash)];

    while (e != NULL && e->hash != hash) {
        e = e->next;
    }
    return e;
}

/*
 * The bucket slot of hash: for a bulk load (recovery) that prefetches
 * (no lock: the caller is the only thread using the index). A lookup costs
 * two dependent cache misses, the slot and the entry it points at; a
 * loader that knows the next keys prefetches the slot a few keys ahead and
 * the entry (reading the now cached slot) a little later, so the misses of
 * several keys overlap. The prefetch itself is left to the caller: GCC
 * drops calls to a helper whose only effect is __builtin_prefetch.
 */
static inline struct alog_ent **
alog_index_slot(struct alog_index *ix, uint64_t hash)
{
    struct alog_shard *sh = alog_index_shard(ix, hash);
    return &sh->buckets[alog_shard_bucket(sh, hash)];
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_ALOG_INDEX_H */
