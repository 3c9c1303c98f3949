/*
 * lsm_table.h -- SSTables: the writer, the reader, the bloom filter and the
 * block cache they share. The byte layout is in docs/formats.md.
 *
 * A table is an immutable sorted run of internal keys (lsm_iter.h): data
 * blocks of about block_size bytes with shared-prefix compression and
 * restart points, one index block (one entry per data block: a separator
 * key >= the block's last key and < the next block's first key, and the
 * block's offset and size), one whole-file bloom filter over the user keys,
 * the smallest and largest internal keys, and a fixed footer with a magic
 * number. Every block ends in a type byte and a masked crc32c; a mismatch
 * is KVD_ECORRUPT, never data.
 *
 * All file access goes through host->io, so tests can inject faults.
 *
 * Private to the lsm engine and its tests.
 */
#ifndef KVD_LSM_TABLE_H
#define KVD_LSM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "kvd/host.h"
#include "kvd/status.h"
#include "lsm_iter.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Bloom filter over user keys ---------------------------------- */

/* Bytes of a filter for n keys at bits_per_key (>= 1). */
size_t lsm_bloom_size(size_t n, int bits_per_key);

/* Build a filter for n keys (given by their 64-bit hashes, see
 * lsm_bloom_hash) into out (lsm_bloom_size bytes). */
void lsm_bloom_build(const uint64_t *hashes, size_t n, int bits_per_key,
                     void *out, size_t out_len);

uint64_t lsm_bloom_hash(const void *key, size_t n);

/* false: the key is certainly absent. A malformed filter answers true. */
bool lsm_bloom_may_contain(const void *filter, size_t len, uint64_t hash);

/* ---- Block cache --------------------------------------------------- */

/*
 * A sharded LRU cache of decoded data blocks keyed by (table id, block
 * offset), charged by block size. Thread-safe. Entries in use are pinned
 * (refcounted) and never freed under a reader; the cache may exceed its
 * capacity by the pinned blocks. capacity 0 = cache nothing (every read
 * goes to the file).
 */
typedef struct lsm_cache lsm_cache;

int lsm_cache_create(size_t capacity, lsm_cache **out);
void lsm_cache_destroy(lsm_cache *c); /* every pin released first */

struct lsm_cache_stats {
    uint64_t hits, misses, inserts, evictions;
    uint64_t bytes, capacity;
};
void lsm_cache_get_stats(lsm_cache *c, struct lsm_cache_stats *st);

/* A table id unique for the life of the cache (so a reused file number
 * never finds stale blocks). */
uint64_t lsm_cache_new_id(lsm_cache *c);

/* ---- Table writer -------------------------------------------------- */

struct lsm_table_opts {
    size_t block_size;      /* target data block bytes (default 4096) */
    int restart_interval;   /* keys between restart points (default 16) */
    int bloom_bits_per_key; /* 0 = no filter (default 10) */
};

typedef struct lsm_tw lsm_tw;

/* Start a table in fd (open for writing, empty). The writer does not own
 * fd: the caller fsyncs and closes it after lsm_tw_finish. */
int lsm_tw_open(const struct kvd_host *host, int fd,
                const struct lsm_table_opts *opts, lsm_tw **out,
                struct kvd_err *err);

/* Append one entry; internal keys must strictly increase. */
int lsm_tw_add(lsm_tw *w, struct lsm_slice ikey, struct lsm_slice val,
               struct kvd_err *err);

/* Bytes written or buffered so far (to cut output files by size). */
uint64_t lsm_tw_size(const lsm_tw *w);
uint64_t lsm_tw_entries(const lsm_tw *w);

/* What a finished table holds. smallest/largest are malloc'd copies of
 * internal keys owned by the struct (free with lsm_table_meta_free). */
struct lsm_table_meta {
    uint64_t file_size;
    uint64_t entries;
    uint64_t tombstones;
    struct lsm_slice smallest, largest;
};
void lsm_table_meta_free(struct lsm_table_meta *m);

/* Write the filter, index, and footer, and free the writer (also on
 * error). A table with no entries is an error (KVD_EINVAL). */
int lsm_tw_finish(lsm_tw *w, struct lsm_table_meta *meta, struct kvd_err *err);

/* Free the writer without finishing (the file is garbage). */
void lsm_tw_abandon(lsm_tw *w);

/* ---- Table reader -------------------------------------------------- */

/*
 * An open table: footer, index block and filter are read once at open and
 * stay in memory; data blocks come from the cache, or one pread each for a
 * get, or a read-ahead window of consecutive blocks per pread for an
 * iterator (each block still checked when reached).
 * Refcounted and thread-safe: any number of threads may get and iterate
 * at once. The reader owns fd from a successful open on, and closes it
 * when the last reference goes.
 */
typedef struct lsm_table lsm_table;

int lsm_table_open(const struct kvd_host *host, int fd, uint64_t file_size,
                   lsm_cache *cache, lsm_table **out, struct kvd_err *err);
void lsm_table_ref(lsm_table *t);
void lsm_table_unref(lsm_table *t);

/* Metadata as read from the file (slices point into the table). */
struct lsm_slice lsm_table_smallest(const lsm_table *t);
struct lsm_slice lsm_table_largest(const lsm_table *t);
uint64_t lsm_table_entries(const lsm_table *t);
uint64_t lsm_table_file_size(const lsm_table *t);
size_t lsm_table_mem_bytes(const lsm_table *t); /* index + filter */

/*
 * Look up the newest entry for user key `key` with seq <= snapshot_seq.
 * Returns KVD_ENOTFOUND when the table has none (the bloom filter answers
 * most of these with no I/O), 0 with *hit filled, or an error. A hit pins
 * the block its value points into until lsm_hit_release (from any thread).
 * `hash` is lsm_bloom_hash(key), computed once by the caller for all the
 * tables it consults.
 */
struct lsm_hit {
    int type; /* enum lsm_vtype */
    uint64_t seq;
    struct lsm_slice val; /* raw value bytes as stored (PUTX: expiry first) */
    void *pin;            /* owned; NULL when nothing is pinned */
};

int lsm_table_get(lsm_table *t, const void *key, size_t klen, uint64_t hash,
                  uint64_t snapshot_seq, struct lsm_hit *hit);
void lsm_hit_release(struct lsm_hit *hit);

/* Counters of one table's lookups (bloom negatives, etc.). */
struct lsm_table_stats {
    uint64_t bloom_checks;    /* lookups that consulted the filter */
    uint64_t bloom_negatives; /* ... that the filter answered "absent" */
    uint64_t bloom_false_pos; /* passed the filter, key not in the table */
    uint64_t block_reads;     /* data blocks read from the file */
};
void lsm_table_get_stats(const lsm_table *t, struct lsm_table_stats *st);

/*
 * An iterator over every entry of the table. It holds a reference on the
 * table. fill_cache = false keeps a compaction's sequential reads from
 * evicting the hot set (blocks are still looked up in the cache).
 */
int lsm_table_iter(lsm_table *t, bool fill_cache, lsm_it **out);

#ifdef __cplusplus
}
#endif

#endif /* KVD_LSM_TABLE_H */
