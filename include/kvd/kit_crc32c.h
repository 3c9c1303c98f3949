/*
 * kvd/kit_crc32c.h -- CRC-32C (Castagnoli) for on-disk checksums; part of
 * the engine toolkit (kvd/kit.h).
 *
 * kvd_crc32c() uses the CPU's crc32 instruction (SSE 4.2 on x86-64) when
 * there is one and a slicing-by-8 table otherwise; both give the same
 * result, which a test checks against known vectors. Values are
 * standard CRC-32C: kvd_crc32c(0, "123456789", 9) == 0xe3069283, and
 * kvd_crc32c(kvd_crc32c(0, a), b) is the CRC of a followed by b.
 *
 * A checksum stored inside data that is itself checksummed (a record in a
 * block, a block in a file) is stored masked (kvd_crc32c_mask), so the
 * outer CRC does not degenerate; the mask is the one of LevelDB's formats,
 * and every kvd format uses it.
 *
 * Thread-safe: the table is built once, on first use.
 */
#ifndef KVD_KIT_CRC32C_H
#define KVD_KIT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Extend `crc` (0 to start) over n bytes, with the fastest implementation
 * this CPU has. */
uint32_t kvd_crc32c(uint32_t crc, const void *buf, size_t n);

/* The portable table implementation (any CPU). */
uint32_t kvd_crc32c_sw(uint32_t crc, const void *buf, size_t n);

/* The hardware implementation; the table one where there is none. */
uint32_t kvd_crc32c_hw(uint32_t crc, const void *buf, size_t n);

/* Nonzero when kvd_crc32c_hw really uses the CPU's instruction. */
int kvd_crc32c_hw_available(void);

#define KVD_CRC32C_MASK_DELTA 0xa282ead8u

/* The stored form of a crc that sits in checksummed data. */
static inline uint32_t
kvd_crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + KVD_CRC32C_MASK_DELTA;
}

static inline uint32_t
kvd_crc32c_unmask(uint32_t masked)
{
    uint32_t rot = masked - KVD_CRC32C_MASK_DELTA;
    return (rot >> 17) | (rot << 15);
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_CRC32C_H */
