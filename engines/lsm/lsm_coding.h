/*
 * lsm_coding.h -- little-endian fixed integers and LEB128 varints for the
 * lsm table layer. Decoders take an end pointer and never read past it: a
 * truncated or overlong varint returns NULL, which callers turn into
 * KVD_ECORRUPT.
 *
 * Private to the lsm table layer. Little-endian hosts only (lsm_iter.h).
 */
#ifndef KVD_LSM_CODING_H
#define KVD_LSM_CODING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSM_VARINT32_MAX_BYTES 5
#define LSM_VARINT64_MAX_BYTES 10

static inline uint32_t
lsm_get32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void
lsm_put32(void *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline uint16_t
lsm_get16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline void
lsm_put16(void *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* Write v at p (room for LSM_VARINT64_MAX_BYTES); returns the end. */
static inline uint8_t *
lsm_put_varint64(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *
lsm_put_varint32(uint8_t *p, uint32_t v)
{
    return lsm_put_varint64(p, v);
}

static inline size_t
lsm_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Decode a varint of at most max_bytes from [p, end); NULL when it is
 * truncated, too long, or overflows 64 bits. */
static inline const uint8_t *
lsm_get_varint_n(const uint8_t *p, const uint8_t *end, uint64_t *v,
                 int max_bytes)
{
    uint64_t r = 0;
    int shift = 0;
    for (int i = 0; i < max_bytes && p < end; i++) {
        uint64_t b = *p++;
        if (shift == 63 && b > 1) {
            return NULL;
        }
        r |= (b & 0x7f) << shift;
        if (b < 0x80) {
            *v = r;
            return p;
        }
        shift += 7;
    }
    return NULL;
}

static inline const uint8_t *
lsm_get_varint64(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    return lsm_get_varint_n(p, end, v, LSM_VARINT64_MAX_BYTES);
}

static inline const uint8_t *
lsm_get_varint32(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
    uint64_t r;
    p = lsm_get_varint_n(p, end, &r, LSM_VARINT32_MAX_BYTES);
    if (p == NULL || r > UINT32_MAX) {
        return NULL;
    }
    *v = (uint32_t)r;
    return p;
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_LSM_CODING_H */
