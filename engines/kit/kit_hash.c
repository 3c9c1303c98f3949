/*
 * kit_hash.c -- a fast 64-bit hash of byte strings; see kvd/kit_hash.h.
 */
#include "kvd/kit_hash.h"

#include <sys/random.h>
#include <time.h>

#include "kvd/kit_coding.h"

/* Odd constants with well-spread bits (from the golden ratio and from
 * random draws). */
#define KIT_H0 UINT64_C(0xa0761d6478bd642f)
#define KIT_H1 UINT64_C(0xe7037ed1a0b428db)
#define KIT_H2 UINT64_C(0x8ebc6af09c88c6e3)
#define KIT_H3 UINT64_C(0x589965cc75374cc3)

__extension__ typedef unsigned __int128 kit_u128;

/* 64x64 -> 128-bit multiply, folded: the mixing step. */
static inline uint64_t
kit_mix(uint64_t a, uint64_t b)
{
    kit_u128 r = (kit_u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/*
 * 16 bytes per round, then the 0..16 byte tail read as two overlapping
 * words (or, under 4 bytes, first, middle and last byte), so the tail
 * needs no loop. Keys of different lengths differ through the start
 * state, which the seed also enters.
 */
uint64_t
kvd_hash64(uint64_t seed, const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = KIT_H0 ^ seed ^ kit_mix((uint64_t)n ^ KIT_H1, KIT_H2);
    uint64_t a = 0;
    uint64_t b = 0;
    size_t left = n;

    while (left > 16) {
        h = kit_mix(kvd_get_le64(p) ^ KIT_H1, kvd_get_le64(p + 8) ^ h);
        p += 16;
        left -= 16;
    }
    if (left >= 8) {
        a = kvd_get_le64(p);
        b = kvd_get_le64(p + left - 8);
    } else if (left >= 4) {
        a = kvd_get_le32(p);
        b = kvd_get_le32(p + left - 4);
    } else if (left > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[left >> 1] << 8) |
            p[left - 1];
    }
    h = kit_mix(a ^ KIT_H2, b ^ h);
    return kit_mix(h ^ KIT_H3, KIT_H1 ^ (uint64_t)n);
}

uint64_t
kvd_hash_seed(const void *salt)
{
    uint64_t seed;
    struct timespec ts;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) ==
        (ssize_t)sizeof(seed)) {
        return seed;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^
           (uint64_t)(uintptr_t)salt;
}
