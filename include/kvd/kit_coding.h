/*
 * kvd/kit_coding.h -- byte order helpers for on-disk formats; part of the
 * engine toolkit (kvd/kit.h).
 *
 * Fixed-width integers are little-endian at any alignment (compilers turn
 * the byte assembly into one load or store on little-endian CPUs); varints
 * are LEB128 (7 bits a byte, low first, at most 10 bytes for 64 bits, 5
 * for 32). Decoders take an end pointer and never read past it. All
 * inline, pure and thread-safe.
 */
#ifndef KVD_KIT_CODING_H
#define KVD_KIT_CODING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVD_VARINT32_MAX_BYTES 5
#define KVD_VARINT64_MAX_BYTES 10

static inline void
kvd_put_le16(void *to, uint16_t v)
{
    unsigned char *p = (unsigned char *)to;

    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void
kvd_put_le32(void *to, uint32_t v)
{
    unsigned char *p = (unsigned char *)to;

    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void
kvd_put_le64(void *to, uint64_t v)
{
    unsigned char *p = (unsigned char *)to;

    kvd_put_le32(p, (uint32_t)v);
    kvd_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t
kvd_get_le16(const void *from)
{
    const unsigned char *p = (const unsigned char *)from;

    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t
kvd_get_le32(const void *from)
{
    const unsigned char *p = (const unsigned char *)from;

    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t
kvd_get_le64(const void *from)
{
    const unsigned char *p = (const unsigned char *)from;

    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
           (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
           (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* Bytes the varint of v takes (1 to 10). */
static inline size_t
kvd_varint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write v as a varint at p; returns the byte after it. */
static inline unsigned char *
kvd_put_varint64(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* Read a varint from [p, end): the byte after it, or NULL when it is cut
 * short or longer than 64 bits. */
static inline const unsigned char *
kvd_get_varint64(const unsigned char *p, const unsigned char *end, uint64_t *v)
{
    uint64_t r = 0;

    for (unsigned shift = 0; shift <= 63 && p < end; shift += 7) {
        uint64_t b = *p++;
        if (shift == 63 && b > 1) {
            return NULL;
        }
        r |= (b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = r;
            return p;
        }
    }
    return NULL;
}

/* A varint of at most 5 bytes whose value fits 32 bits, else NULL. */
static inline const unsigned char *
kvd_get_varint32(const unsigned char *p, const unsigned char *end, uint32_t *v)
{
    uint64_t r;
    const unsigned char *q = kvd_get_varint64(
        p, end - p > KVD_VARINT32_MAX_BYTES ? p + KVD_VARINT32_MAX_BYTES : end,
        &r);

    if (q == NULL || r > UINT32_MAX) {
        return NULL;
    }
    *v = (uint32_t)r;
    return q;
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_CODING_H */
