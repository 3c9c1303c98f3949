/*
 * kvd/kit_hash.h -- a fast 64-bit hash of byte strings; part of the engine
 * toolkit (kvd/kit.h).
 *
 * A multiply-fold hash (64x64 -> 128-bit products folded to 64 bits), 16
 * bytes per round: a short key costs two or three multiplies and no byte
 * loop, and every output bit depends on every input bit, so the top bits
 * can pick a shard and the low bits a bucket. Not cryptographic.
 *
 * The output is part of on-disk formats (the lsm engine's bloom filters
 * use seed 0), so it never changes: a test pins known values. An engine
 * that hashes client keys into an in-memory table passes a random seed
 * chosen at open, so clients cannot aim many keys at one bucket; one whose
 * hashes must stay the same across restarts passes a constant.
 *
 * Pure and thread-safe; the same on every byte order.
 */
#ifndef KVD_KIT_HASH_H
#define KVD_KIT_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

uint64_t kvd_hash64(uint64_t seed, const void *key, size_t n);

/* A seed for a table keyed by client data: random per call (getrandom),
 * or, before the kernel has entropy (early boot), built from the clock
 * and `salt` (any address of the caller's), so it still differs per
 * open. Iteration positions derived from seeded hashes are valid only
 * while the table that made them is open. */
uint64_t kvd_hash_seed(const void *salt);

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_HASH_H */
