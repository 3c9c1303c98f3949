/*
 * crc32c.h -- CRC-32C (Castagnoli) for the log engine's records.
 *
 * alog_crc32c() uses the SSE4.2 crc32 instruction when the CPU has it and a
 * slicing-by-8 table otherwise; both give identical results (a test checks
 * it). Records store the checksum masked, so that a checksum computed over
 * data that itself embeds checksums does not degenerate.
 *
 * Thread-safe: the table is built once under pthread_once.
 */
#ifndef KVD_ALOG_CRC32C_H
#define KVD_ALOG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Extend `crc` (0 to start) over n bytes; the best implementation. */
uint32_t alog_crc32c(uint32_t crc, const void *buf, size_t n);

/* The portable table implementation. */
uint32_t alog_crc32c_sw(uint32_t crc, const void *buf, size_t n);

/* The SSE4.2 implementation; only call when alog_crc32c_hw_available(). */
uint32_t alog_crc32c_hw(uint32_t crc, const void *buf, size_t n);

/* Nonzero when the CPU has the crc32 instruction. */
int alog_crc32c_hw_available(void);

#define ALOG_CRC_MASK_DELTA 0xa282ead8u

static inline uint32_t
alog_crc_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + ALOG_CRC_MASK_DELTA;
}

static inline uint32_t
alog_crc_unmask(uint32_t masked)
{
    uint32_t rot = masked - ALOG_CRC_MASK_DELTA;
    return (rot >> 17) | (rot << 15);
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_ALOG_CRC32C_H */
