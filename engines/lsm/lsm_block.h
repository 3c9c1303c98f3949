/*
 * lsm_block.h -- the table layer's private parts: the file constants, the
 * block format (builder and reader), and the cache's pinned block handle.
 * docs/formats.md ("lsm engine: SSTable") has the byte layout.
 *
 * Block = entries, then the restart array (u32 offsets), then u32 restart
 * count. Entry = varint32 shared | varint32 non_shared | varint32 vlen |
 * key bytes after the shared prefix | value. The key of an entry at a
 * restart point has shared == 0, so a binary search over restart points
 * compares keys in place. On disk every block is followed by a 5-byte
 * trailer: a type byte (the block kind) and the masked crc32c of the block
 * contents and the type byte.
 *
 * Private to the lsm table layer and its tests.
 */
#ifndef KVD_LSM_BLOCK_H
#define KVD_LSM_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/kit_buf.h"
#include "lsm_iter.h"
#include "lsm_table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- File constants ------------------------------------------------ */

#define LSM_SST_MAGIC           "kvdS"
#define LSM_SST_VERSION         1
#define LSM_SST_KIND_TABLE      1
#define LSM_SST_HEADER_BYTES    16
#define LSM_SST_FOOTER_BYTES    72
#define LSM_SST_FOOTER_MAGIC    "kvdTable" /* 8 bytes, no NUL */
#define LSM_BLOCK_TRAILER_BYTES 5

/* The trailer's type byte: the block kind in the low 4 bits, the
 * compression in the high 4 (0 = none, the only one so far). */
enum lsm_block_kind {
    LSM_BLOCK_DATA = 1,
    LSM_BLOCK_INDEX = 2,
    LSM_BLOCK_FILTER = 3,
    LSM_BLOCK_META = 4,
};

/* A block must at least hold its restart count; no block may be larger
 * than this (a value is at most 1 GiB, see the engine's limits). */
#define LSM_BLOCK_MAX_BYTES (UINT64_C(1) << 31)

/* ---- Block builder ------------------------------------------------- */

struct lsm_bbuilder {
    struct kvd_buf buf; /* entries so far */
    uint32_t *restarts; /* offsets of restart entries */
    size_t nrestarts;
    size_t restarts_cap;
    int interval;            /* entries between restart points */
    int counter;             /* entries since the last restart */
    struct kvd_buf last_key; /* key of the last entry added */
    size_t entries;
};

void lsm_bbuilder_init(struct lsm_bbuilder *b, int interval);
void lsm_bbuilder_release(struct lsm_bbuilder *b);
void lsm_bbuilder_reset(struct lsm_bbuilder *b);
/* Keys must be added in increasing order (the caller checks). */
int lsm_bbuilder_add(struct lsm_bbuilder *b, const void *key, size_t klen,
                     const void *val, size_t vlen);
/* Bytes of the finished block contents (without the trailer). */
size_t lsm_bbuilder_size(const struct lsm_bbuilder *b);
/* Append the restart array; buf then holds the whole block contents. */
int lsm_bbuilder_finish(struct lsm_bbuilder *b);

/* Append the 5-byte trailer of `contents` (kind, masked crc32c) to out. */
void lsm_block_trailer(const void *contents, size_t n, int kind,
                       uint8_t out[LSM_BLOCK_TRAILER_BYTES]);
/* 0 when the trailer after contents[0..n) matches and is of `kind`;
 * KVD_ECORRUPT otherwise. */
int lsm_block_check(const void *contents, size_t n, int kind);

/* ---- Block reader -------------------------------------------------- */

/* A validated view of block contents (restart array in bounds). */
struct lsm_block {
    const uint8_t *data;
    uint32_t restarts_off; /* entries end here */
    uint32_t nrestarts;
};

/* KVD_ECORRUPT when the restart array does not fit or points outside
 * the entries. */
int lsm_block_init(struct lsm_block *b, const void *data, size_t n);

/*
 * A cursor over one block. The key is rebuilt in `key` (the caller's
 * buffer of kcap bytes, replaced by a malloc'd one when a key is longer;
 * lsm_bit_release frees that). The value points into the block.
 */
struct lsm_bit {
    const struct lsm_block *b;
    uint32_t cur;  /* offset of the current entry */
    uint32_t next; /* offset just past it (== restarts_off at the end) */
    uint8_t *key;
    size_t klen;
    size_t kcap;
    bool key_owned;
    bool valid;
    const uint8_t *val;
    uint32_t vlen;
    int status; /* 0 or KVD_ECORRUPT / KVD_ENOMEM */
};

void lsm_bit_init(struct lsm_bit *it, const struct lsm_block *b, uint8_t *kbuf,
                  size_t kcap);
/* Point at another block, keeping the key buffer. */
void lsm_bit_reset(struct lsm_bit *it, const struct lsm_block *b);
void lsm_bit_release(struct lsm_bit *it);
void lsm_bit_seek_first(struct lsm_bit *it);
/* First entry >= (user key tu, trailer ttr) in internal-key order. */
void lsm_bit_seek(struct lsm_bit *it, const void *tu, size_t tun, uint64_t ttr);
void lsm_bit_next(struct lsm_bit *it);

/* Internal key (ek, ekn >= 8) against (tu, trailer ttr). */
static inline int
lsm_ikey_cmp_parts(const uint8_t *ek, size_t ekn, const void *tu, size_t tun,
                   uint64_t ttr)
{
    int c = lsm_user_cmp(ek, ekn - LSM_TRAILER_BYTES, tu, tun);
    if (c != 0) {
        return c;
    }
    uint64_t et = kvd_get_le64(ek + ekn - LSM_TRAILER_BYTES);
    return et > ttr ? -1 : et < ttr ? 1 : 0;
}

/* ---- Cached blocks ------------------------------------------------- */

struct lsm_cache_shard;

/* LRU list links; a block's first member, so a link is its block. */
struct lsm_clink {
    struct lsm_clink *prev;
    struct lsm_clink *next;
};

/*
 * One data block read from a file, checked and decoded. `refs` counts the
 * cache's own reference (while in_cache) and every pin; it and the list
 * links are guarded by the shard's mutex, or belong to the one owner when
 * shard is NULL (a block read with no cache, or not inserted). The bytes
 * never change after the block is built, so pinned readers use them with
 * no lock.
 */
struct lsm_cblock {
    struct lsm_clink link;         /* shard LRU or in-use list (first) */
    struct lsm_cblock *hnext;      /* shard hash chain */
    struct lsm_cache_shard *shard; /* NULL: not in a cache */
    uint64_t id;
    uint64_t off;
    uint32_t hash;
    uint32_t refs;
    bool in_cache;
    size_t charge;
    struct lsm_block blk;
    size_t size;    /* block contents bytes */
    uint8_t data[]; /* contents + trailer */
};

/* A new unpinned-by-cache block of `size` content bytes (+ trailer room),
 * refs = 1. NULL on allocation failure. */
struct lsm_cblock *lsm_cblock_alloc(size_t size);
/* Drop one reference (frees the block when it was the last). */
void lsm_cblock_release(struct lsm_cblock *b);

/* A pinned block, or NULL (counts a hit or a miss). c may be NULL. */
struct lsm_cblock *lsm_cache_lookup(lsm_cache *c, uint64_t id, uint64_t off);
/* Hand b (pinned once by the caller, who keeps that pin) to the cache.
 * Does nothing when c is NULL or its capacity is 0. */
void lsm_cache_insert(lsm_cache *c, uint64_t id, uint64_t off,
                      struct lsm_cblock *b);

/* ---- Bloom (shared with the writer) --------------------------------- */

/* Probes per key for bits_per_key (see lsm_bloom.c). */
int lsm_bloom_probes(int bits_per_key);

#ifdef __cplusplus
}
#endif

#endif /* KVD_LSM_BLOCK_H */
