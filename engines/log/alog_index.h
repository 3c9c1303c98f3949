/*
 * alog_index.h -- the in-memory index (keydir) of the log engine:
 * key -> (segment, offset, value length, expiry).
 *
 * A hash table split into ALOG_SHARDS shards, each with its own rwlock so
 * readers never wait for each other and writers to different shards do not
 * contend. The top ALOG_SHARD_BITS of a key's 64-bit hash pick the shard,
 * the next 32 bits are the key's tag.
 *
 * Compact layout (no object per key, no malloc per key):
 * - a shard is one array of 20-byte slots (struct alog_ent) with open
 *   addressing; a slot packs the tag, the record's offset and value length,
 *   the segment as a slot of the segment table (ix->segtab) and the key's
 *   place in the shard's key arena;
 * - the slots are kept sorted by tag (ordered linear probing): a key's home
 *   slot is tag * cap >> 32, it sits at its home or after it with no free
 *   slot in between, so a lookup scans from the home slot until a tag above
 *   its own (a miss usually reads one or two slots and no key), and walking
 *   shards and slots in order visits hashes in (nearly) ascending order:
 *   ascending by tag, entries of one tag in any order. Iterators use the
 *   full hash (recomputed from the key) as their resume position (pos);
 * - keys live in a per-shard arena of ALOG_KBLK_BYTES blocks (from the
 *   index-wide block pool, struct alog_kpool):
 *   [u16 klen][key][i64 expire_ms, only with ALOG_ENT_EXPIRES]. Removing a
 *   key leaves its bytes dead in the arena; a shard whose arena is more
 *   than half dead (and at least ALOG_KARENA_COMPACT_MIN bytes) is copied
 *   into fresh blocks under its write lock, and a shard whose slots are
 *   less than 30% used moves to a smaller array.
 * - the slot array grows and shrinks in place, inside an address-space
 *   reservation (struct alog_ixmap): the layout is the forward-greedy
 *   placement of the entries in tag order (each at max(home, previous
 *   entry's slot + 1)), and that placement is monotone in cap, so with a
 *   larger cap every entry's slot can only move up (moved last first),
 *   with a smaller one only down (moved first first).
 * The record's sequence number is not kept: only recovery needs it (which
 * of two records of a key is newer). Hint files are loaded by one bulk
 * build (alog_index_bulk_build) that resolves keys before any slot is
 * written; only data files scanned afterwards need a temporary seq array
 * beside the slots (alog_index_bulk_begin .. _end).
 *
 * Slot pointers are valid only until the next insert or remove in their
 * shard (both move slots) and never across a lock release.
 *
 * Locking: every field of a shard is guarded by its lock. Functions named
 * *_locked expect the caller to hold the shard lock (read for lookups,
 * write for changes). The engine's writer lock is taken before a shard
 * lock, never after. The segment table has its own leaf mutex for
 * assigning and freeing slots; reading an assigned slot needs only the
 * shard lock of the entry that names it. The block pool's mutex is a leaf
 * too (taken under a shard's write lock).
 */
#ifndef KVD_ALOG_INDEX_H
#define KVD_ALOG_INDEX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALOG_SHARD_BITS 8
#define ALOG_SHARDS     (1u << ALOG_SHARD_BITS)
/* segments the index can point at at once (slot 0 means none) */
#define ALOG_SEGTAB_SLOTS       65536u
#define ALOG_KBLK_SHIFT         12
#define ALOG_KBLK_BYTES         (1u << ALOG_KBLK_SHIFT)
#define ALOG_KBLK_MAX           (1u << (32 - ALOG_KBLK_SHIFT))
#define ALOG_KARENA_COMPACT_MIN (2u * ALOG_KBLK_BYTES)

struct alog_seg;

enum alog_ent_flag {
    ALOG_ENT_USED = 1u << 0,      /* the slot holds a key */
    ALOG_ENT_TOMBSTONE = 1u << 1, /* only during recovery: a delete */
    ALOG_ENT_EXPIRES = 1u << 2,   /* the arena entry has an expire_ms */
};

/* One slot (20 bytes). */
struct alog_ent {
    uint32_t tag;  /* hash bits 55..24 */
    uint32_t off;  /* offset of the record in the segment */
    uint32_t vlen; /* value length */
    uint32_t kref; /* key in the arena: block << ALOG_KBLK_SHIFT | offset */
    uint16_t seg;  /* segment table slot; 0: none yet */
    uint8_t flags; /* enum alog_ent_flag */
    uint8_t spare;
};

/*
 * Index-wide pool of ALOG_KBLK_BYTES arena blocks, carved from
 * ALOG_KPOOL_CHUNK_BYTES mappings faulted in by one call each (a 4 KiB
 * malloc per block cost a page fault per block and the allocator's own
 * work; at recovery that was a large part of the open). Blocks freed by
 * arena compaction go to a free list and are reused; chunks are unmapped
 * only with the index. A key longer than a block gets a malloc'd block of
 * its own, marked by bit 0 of its pointer in alog_karena.blks (pool
 * blocks are page aligned). mu is a leaf lock (taken under shard locks).
 */
#define ALOG_KPOOL_CHUNK_BYTES (1u << 20)

struct alog_kpool {
    pthread_mutex_t mu;
    void **chunks; /* mapped, ALOG_KPOOL_CHUNK_BYTES each */
    size_t nchunks;
    size_t chunks_cap;
    unsigned char *carve; /* next block of the newest chunk */
    size_t carve_left;    /* bytes left there */
    void *free;           /* freed blocks, linked through their first bytes */
    int releasing;        /* set by alog_index_release: puts are dropped */
    /* the index file, mapped privately when the open read it
     * (alog_ixfile.c): slot arrays and arena blocks point into it until
     * they are replaced; a long key's block in it is never free()d.
     * Unmapped with the index, after the shards. NULL: none */
    unsigned char *fmap;
    size_t fmap_len;
};

struct alog_karena {
    struct alog_kpool *pool; /* the index's; fixed */
    unsigned char **blks;    /* bit 0 set: malloc'd (a long key) */
    uint32_t nblks;
    uint32_t blks_cap;
    uint32_t pos;   /* bytes used in the last block */
    uint64_t bytes; /* allocated block bytes */
};

/*
 * An address-space reservation an array grows in: resv bytes mapped
 * PROT_NONE (no memory, and not counted against strict overcommit), of
 * which the first rw are read-write. Growing within it is an mprotect of
 * more of the prefix, with no copy, no new mapping and no munmap (each
 * munmap is a TLB shootdown on every other CPU); only an array outgrowing
 * its reservation moves to a new one, 4 times larger.
 */
struct alog_ixmap {
    void *base;
    /* reserved bytes; 0: borrowed, base points into the index file's map
     * (alog_kpool.fmap), never unmapped or trimmed: the first growth
     * copies the array into a reservation of its own */
    size_t resv;
    size_t rw;   /* read-write prefix; beyond the array's end it is zero */
    size_t pop;  /* prefix faulted in by MADV_POPULATE_WRITE */
};

struct alog_shard {
    pthread_rwlock_t lock;
    struct alog_ent *slots; /* nslots, in smap (smap.base) */
    uint32_t cap;           /* home slots: tag * cap >> 32 */
    uint32_t nslots;        /* cap and an overflow tail (runs do not wrap) */
    uint64_t *rseq;         /* bulk load only: seq of each slot, in qmap */
    struct alog_ixmap smap;
    struct alog_ixmap qmap;
    uint32_t nreserve;    /* reservations made for slots (tests) */
    uint32_t fail_extend; /* tests: growing smap or qmap fails */
    struct alog_karena ka;
    uint64_t ka_dead;     /* arena bytes of removed keys */
    uint64_t count;       /* entries, tombstones included */
    uint64_t live_keys;   /* entries that are not tombstones */
    uint64_t key_bytes;   /* of live_keys */
    uint64_t value_bytes; /* of live_keys */
    uint64_t expiring;    /* live entries with an expiry */
    uint64_t mem_bytes;   /* home slots (and seqs), arena blocks, block
                           * table: see shard_mem_update */
};

struct alog_index {
    struct alog_shard shards[ALOG_SHARDS];
    /* slot -> segment; written under segtab_mu, read under shard locks */
    struct alog_seg **segtab;
    uint32_t segtab_next;
    pthread_mutex_t segtab_mu;
    struct alog_kpool kpool;
    uint64_t seed; /* of alog_hash, random per open; read-only after init */
};

/* 64-bit hash of a key under ix's seed; never UINT64_MAX (a pos must stay
 * below it). */
uint64_t alog_hash(const struct alog_index *ix, const void *key, size_t klen);

int alog_index_init(struct alog_index *ix);
void alog_index_release(struct alog_index *ix);

static inline struct alog_shard *
alog_index_shard(struct alog_index *ix, uint64_t hash)
{
    return &ix->shards[hash >> (64 - ALOG_SHARD_BITS)];
}

static inline uint32_t
alog_hash_tag(uint64_t hash)
{
    return (uint32_t)(hash >> (32 - ALOG_SHARD_BITS));
}

static inline size_t
alog_shard_home(const struct alog_shard *sh, uint32_t tag)
{
    return (size_t)(((uint64_t)tag * sh->cap) >> 32);
}

/*
 * A hint that `hash` is about to be looked up: prefetch its home slot,
 * without the shard's lock. A put calls it as soon as it has the hash, so
 * the cache miss on the slot array overlaps the record's encoding and
 * copy instead of stalling the lookup under the lock. It reads the
 * shard's slots and cap with relaxed atomic loads, and every store to
 * them (under the lock) is a relaxed atomic store (below), so the race is
 * a defined one: a stale or mismatched pair only wastes the hint, and a
 * prefetch never faults.
 */
static inline void
alog_index_prefetch(struct alog_index *ix, uint64_t hash)
{
    const struct alog_shard *sh = alog_index_shard(ix, hash);
    const struct alog_ent *slots = __atomic_load_n(&sh->slots, __ATOMIC_RELAXED);
    uint32_t cap = __atomic_load_n(&sh->cap, __ATOMIC_RELAXED);

    if (slots != NULL) {
        __builtin_prefetch(
            &slots[((uint64_t)alog_hash_tag(hash) * cap) >> 32], 1, 3);
    }
}

/* Set a shard's slots or cap (write lock held, or before the shard is
 * shared), as relaxed atomic stores for alog_index_prefetch. */
static inline void
alog_shard_publish_slots(struct alog_shard *sh, struct alog_ent *slots)
{
    __atomic_store_n(&sh->slots, slots, __ATOMIC_RELAXED);
}

static inline void
alog_shard_publish_cap(struct alog_shard *sh, uint32_t cap)
{
    __atomic_store_n(&sh->cap, cap, __ATOMIC_RELAXED);
}

/* Index of the first slot that may hold tag (lock held): the first from
 * the home slot that is free or has a tag >= tag. Candidates follow while
 * slots are used with this tag. */
static inline size_t
alog_shard_probe_locked(const struct alog_shard *sh, uint32_t tag)
{
    size_t i = alog_shard_home(sh, tag);

    while (i < sh->nslots && (sh->slots[i].flags & ALOG_ENT_USED) &&
           sh->slots[i].tag < tag) {
        i++;
    }
    return i;
}

static inline int
alog_shard_is_tag_locked(const struct alog_shard *sh, size_t i, uint32_t tag)
{
    return i < sh->nslots && (sh->slots[i].flags & ALOG_ENT_USED) &&
           sh->slots[i].tag == tag;
}

/* The key bytes of e (lock held) and their length. */
static inline const unsigned char *
alog_ent_key(const struct alog_shard *sh, const struct alog_ent *e,
             size_t *klen)
{
    const unsigned char *p =
        (const unsigned char *)((uintptr_t)
                                    sh->ka.blks[e->kref >> ALOG_KBLK_SHIFT] &
                                ~(uintptr_t)1) +
        (e->kref & (ALOG_KBLK_BYTES - 1));
    uint16_t n;

    memcpy(&n, p, 2);
    *klen = n;
    return p + 2;
}

static inline size_t
alog_ent_klen(const struct alog_shard *sh, const struct alog_ent *e)
{
    size_t n;
    (void)alog_ent_key(sh, e, &n);
    return n;
}

/* e's expiry (lock held); 0: none. */
static inline int64_t
alog_ent_expire(const struct alog_shard *sh, const struct alog_ent *e)
{
    const unsigned char *k;
    size_t klen;
    int64_t v;

    if (!(e->flags & ALOG_ENT_EXPIRES)) {
        return 0;
    }
    k = alog_ent_key(sh, e, &klen);
    memcpy(&v, k + klen, 8);
    return v;
}

/* The segment e points at (shard lock held); NULL for none. */
static inline struct alog_seg *
alog_ent_seg(const struct alog_index *ix, const struct alog_ent *e)
{
    return ix->segtab[e->seg];
}

/* The segment table slot of seg, assigned on first use (the segment must
 * be one the index may point at until alog_index_seg_forget). 0 when the
 * table is full. */
uint16_t alog_index_seg_slot(struct alog_index *ix, struct alog_seg *seg);
/* seg leaves the table: no entry points at it any more. */
void alog_index_seg_forget(struct alog_index *ix, struct alog_seg *seg);

/* Find the entry of key in shard (lock held). NULL when absent. */
struct alog_ent *alog_shard_find_locked(struct alog_shard *sh, uint64_t hash,
                                        const void *key, size_t klen);

/* Insert key (write lock held; key not present) as a tombstone with no
 * segment, not yet accounted: alog_index_set_locked makes it live. NULL
 * on ENOMEM. Moves other slots. */
struct alog_ent *alog_shard_insert_locked(struct alog_shard *sh, uint64_t hash,
                                          const void *key, size_t klen);

/* Remove e (write lock held); its arena bytes become dead. Moves other
 * slots: a loop over slots looks at index i again after removing it. */
void alog_shard_remove_locked(struct alog_shard *sh, struct alog_ent *e);

/* Move sh to a smaller slot array when less than 30% of it is used (write
 * lock held). Moves every slot: call it after a loop over slots. */
void alog_shard_maybe_shrink_locked(struct alog_shard *sh);

/* Set e's expiry (write lock held): 0, or -1 on ENOMEM (e unchanged). */
int alog_ent_set_expire_locked(struct alog_shard *sh, struct alog_ent *e,
                               int64_t expire_ms);

/* Account for a change of an entry's value length, expiry or flags: call
 * _unaccount before changing, _account after (write lock held). */
void alog_shard_unaccount_locked(struct alog_shard *sh,
                                 const struct alog_ent *e);
void alog_shard_account_locked(struct alog_shard *sh, const struct alog_ent *e);

/*
 * Record-by-record load (recovery of data files without a usable hint; no
 * other thread may use the index): size every shard for `keys` entries
 * spread over the index, so the load does not regrow shard after shard,
 * and keep a sequence number per slot (alog_ent_seq) until
 * alog_index_bulk_end frees it. 0 or -1 (ENOMEM).
 */
int alog_index_bulk_begin(struct alog_index *ix, uint64_t keys);
void alog_index_bulk_end(struct alog_index *ix);

static inline uint64_t *
alog_ent_seq(struct alog_shard *sh, const struct alog_ent *e)
{
    return &sh->rseq[e - sh->slots];
}

/*
 * Bulk build (recovery from hint files; no other thread may use the
 * index, which must still be empty). Every record of every hint file is
 * known up front, so instead of one random insert per record (a cache
 * miss each, a seq array beside the slots) each record is copied once, in
 * file order, into its shard's staging area, and each shard is then built
 * from there in one pass, all of it in cache: a counting sort by tag,
 * equal keys resolved by seq, deletes and expired records dropped, the
 * slot array sized once for the keys that remain, their keys copied into
 * the arena in slot order (no dead arena bytes for overwritten keys).
 *
 *   alog_index_bulk_init(&b, recs, bytes)  per shard: records, bytes
 *                                          (alog_index_bulk_rec_bytes)
 *   alog_index_bulk_add(ix, &b, ...)       once per record, any order
 *   alog_index_bulk_build(ix, &b, keep_dead)
 *   alog_index_bulk_release(&b)
 *
 * keep_dead keeps the winning deletes and expired records as tombstones
 * with their seq (alog_ent_seq), for data files scanned afterwards:
 * those go through the per-record path, which needs them.
 *
 * A staged record: [u32 tag][u16 segment table slot][u8 flags][u8 0]
 * then the hint entry as in the hint file (alog_format.h) and its key.
 */
#define ALOG_BULK_HDR_BYTES 8

struct alog_index_bulk {
    unsigned char *buf; /* mapped; shard s: [start[s], fill[s]) */
    uint64_t start[ALOG_SHARDS + 1];
    uint64_t fill[ALOG_SHARDS];
    uint64_t recs[ALOG_SHARDS];
};

/* Staging bytes of a record with a klen-byte key. */
size_t alog_index_bulk_rec_bytes(size_t klen);
/* Stage room for recs[s] records of bytes[s] bytes for each shard s. 0, or
 * -1 (ENOMEM, or a shard's records past 4 GiB). */
int alog_index_bulk_init(struct alog_index_bulk *b,
                         const uint64_t recs[ALOG_SHARDS],
                         const uint64_t bytes[ALOG_SHARDS]);
/* Stage the record whose hint entry and key are at ent (copied; its key's
 * hash under ix's seed is hash, and that shard must have room left from
 * alog_index_bulk_init). dead: a delete, or expired. 0, or -1 (no room). */
int alog_index_bulk_add(struct alog_index_bulk *b, uint64_t hash,
                        const unsigned char *ent, uint16_t seg, int dead);
/* Warm the cache line the next record of hash's shard goes to: staging
 * writes go to every shard at random, a miss each unless they are
 * prefetched a few records ahead. */
static inline void
alog_index_bulk_prefetch(const struct alog_index_bulk *b, uint64_t hash)
{
    unsigned s = (unsigned)(hash >> (64 - ALOG_SHARD_BITS));

    __builtin_prefetch(b->buf + b->fill[s], 1, 3);
    __builtin_prefetch(b->buf + b->fill[s] + 63, 1, 3);
}
/* Build every shard from the staged records and add the record bytes of
 * the keys kept to their segments' live_bytes. 0, or -1 (ENOMEM: the
 * index is then left partly built; the open fails). */
int alog_index_bulk_build(struct alog_index *ix, struct alog_index_bulk *b,
                          int keep_dead);
void alog_index_bulk_release(struct alog_index_bulk *b);

/*
 * Loading a shard from the index file (alog_ixfile.c; no other thread may
 * use the index). The file holds each shard's slot array as it was and
 * its arena blocks in order, mapped privately (copy-on-write) by the
 * open, so a shard takes them in place: no copy, and no page of it is
 * touched before a lookup or a write needs it. Every slot's kref and
 * the layout stay valid unchanged.
 *
 * alog_shard_load_borrow: the empty shard sh uses the nslots slots at
 * `slots` (inside ix->kpool.fmap; cap home slots, nslots == cap and its
 * overflow tail, else -1). Its first growth copies them into memory of
 * its own (struct alog_ixmap, resv 0).
 * alog_karena_borrow_block: append the block of n bytes at p (inside
 * ix->kpool.fmap, 2-byte aligned): a pool block (n == ALOG_KBLK_BYTES;
 * freed later, it serves as any pool block), a long key's own block
 * (n > ALOG_KBLK_BYTES; freed, it is dropped), or with n == 0 a place
 * holder for a block nothing points at any more (a removed long key's):
 * it keeps the block numbers and takes no memory. 0, or -1 (ENOMEM).
 * alog_shard_load_end: the caller has set the counters and ka.pos: account
 * the memory.
 */
int alog_shard_load_borrow(struct alog_shard *sh, uint32_t cap,
                           uint32_t nslots, struct alog_ent *slots);
int alog_karena_borrow_block(struct alog_karena *ka, unsigned char *p,
                             size_t n);
void alog_shard_load_end(struct alog_shard *sh);

#ifdef __cplusplus
}
#endif

#endif /* KVD_ALOG_INDEX_H */
