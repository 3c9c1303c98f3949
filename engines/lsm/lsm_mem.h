/*
 * lsm_mem.h -- the memtable: an arena-allocated skip list of internal keys
 * (lsm_iter.h order: user key ascending, then sequence number descending).
 *
 * Concurrency: one writer at a time (the engine's write lock) and any
 * number of lock-free readers. A node is fully built before it is linked;
 * links are published with release stores and followed with acquire loads,
 * so a reader that reaches a node sees its bytes. Nodes are never removed
 * or changed, and the arena is freed only when the last reference goes, so
 * a pointer into a memtable stays valid while a reference is held.
 *
 * Values are stored as the table layer stores them: PUT = the bytes, PUTX
 * = 8-byte LE expiry then the bytes, DEL = nothing.
 */
#ifndef KVD_LSM_MEM_H
#define KVD_LSM_MEM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/status.h"
#include "lsm_iter.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lsm_mem lsm_mem;

/* A new empty memtable (refs = 1) for WAL file wal_number. */
int lsm_mem_create(uint64_t wal_number, lsm_mem **out);
void lsm_mem_ref(lsm_mem *m);
void lsm_mem_unref(lsm_mem *m); /* NULL: no-op */

uint64_t lsm_mem_wal(const lsm_mem *m);

/* Bytes allocated (arena), readable from any thread. */
size_t lsm_mem_bytes(const lsm_mem *m);
/* Entries added, readable from any thread. */
uint64_t lsm_mem_entries(const lsm_mem *m);
/* Highest sequence number added (0 if none). */
uint64_t lsm_mem_last_seq(const lsm_mem *m);

/* Upper bound of the arena bytes one entry takes. */
size_t lsm_mem_entry_bytes(size_t klen, size_t vlen);

/* Make sure the next adds of `bytes` (a sum of lsm_mem_entry_bytes)
 * cannot fail: 0 or KVD_ENOMEM. Writer only. */
int lsm_mem_reserve(lsm_mem *m, size_t bytes);

/*
 * Add an entry (writer only). For LSM_T_PUTX the stored value is
 * expire_ms (8 bytes LE) followed by val; for LSM_T_DEL val is ignored.
 * After lsm_mem_reserve covered it this cannot fail; otherwise 0 or
 * KVD_ENOMEM.
 */
int lsm_mem_add(lsm_mem *m, uint64_t seq, int type, const void *key,
                size_t klen, int64_t expire_ms, const void *val, size_t vlen);

/* Newest entry for key with seq <= snapshot. */
struct lsm_mhit {
    int type; /* enum lsm_vtype */
    uint64_t seq;
    struct lsm_slice val; /* as stored; valid while a reference is held */
};

/* 0 with *hit, or KVD_ENOTFOUND. Any thread. */
int lsm_mem_get(lsm_mem *m, const void *key, size_t klen, uint64_t snapshot,
                struct lsm_mhit *hit);

/* An iterator over every entry; it holds a reference on m. */
int lsm_mem_iter(lsm_mem *m, lsm_it **out);

#ifdef __cplusplus
}
#endif

#endif /* KVD_LSM_MEM_H */
