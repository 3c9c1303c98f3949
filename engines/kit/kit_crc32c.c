/*
 * kit_crc32c.c -- CRC-32C, hardware (SSE4.2) with a slicing-by-8 fallback;
 * see kvd/kit_crc32c.h.
 *
 * The reflected polynomial 0x82f63b78. The hardware path is compiled with a
 * per-function target attribute, so the plugin runs on any x86-64 and
 * chooses at run time; other architectures always use the table.
 */
#include "kvd/kit_crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>
#define KIT_HAVE_SSE42_PATH 1
#else
#define KIT_HAVE_SSE42_PATH 0
#endif

#define CRC32C_POLY 0x82f63b78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw; /* written once under crc_once */

/*
 * Long buffers (hint files, the log engine's index file: tens of MB) are
 * checked as three interleaved streams of CRC_STREAM bytes: the crc32
 * instruction has a latency of 3 cycles and a throughput of 1, so one
 * dependent chain uses a third of it. The three states are joined with
 * crc_shift: the CRC is linear, so the state after A then B is the state
 * after A shifted over |B| zero bytes, xor B's state from zero; the shift
 * over CRC_STREAM bytes is a table per byte of the state, built at init
 * from its 32 one-bit images.
 */
#define CRC_STREAM 4096u
static uint32_t crc_shift_table[4][256];

static uint32_t
crc_shift(uint32_t x)
{
    return crc_shift_table[0][x & 0xff] ^ crc_shift_table[1][(x >> 8) & 0xff] ^
           crc_shift_table[2][(x >> 16) & 0xff] ^ crc_shift_table[3][x >> 24];
}

static void
crc_shift_init(void)
{
    uint32_t bit[32];

    for (int j = 0; j < 32; j++) {
        uint32_t x = 1u << j;
        for (uint32_t k = 0; k < CRC_STREAM; k++) {
            x = crc_table[0][x & 0xff] ^ (x >> 8); /* one zero byte */
        }
        bit[j] = x;
    }
    for (int b = 0; b < 4; b++) {
        crc_shift_table[b][0] = 0;
        for (uint32_t v = 1; v < 256; v++) {
            crc_shift_table[b][v] = crc_shift_table[b][v & (v - 1)] ^
                                    bit[8 * b + __builtin_ctz(v)];
        }
    }
}

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[t][i] = c;
        }
    }
    crc_shift_init();
#if KIT_HAVE_SSE42_PATH
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

int
kvd_crc32c_hw_available(void)
{
    pthread_once(&crc_once, crc_init);
    return crc_hw;
}

uint32_t
kvd_crc32c_sw(uint32_t crc, const void *buf, size_t n)
{
    const unsigned char *p = buf;

    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w = (uint64_t)p[0] | (uint64_t)p[1] << 8 |
                     (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
                     (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
                     (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
        /* little-endian assembly: the same on any byte order */
        w ^= crc;
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    return ~crc;
}

#if KIT_HAVE_SSE42_PATH
__attribute__((target("sse4.2"))) uint32_t
kvd_crc32c_hw(uint32_t crc, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    uint64_t c = ~crc;

    /* No alignment prologue: x86 loads need none, and records sit at any
     * offset, so a byte loop at each end cost more than the 8-byte body
     * for the ~150-byte records engines check on every read. */
    if (n >= 3 * CRC_STREAM) {
        pthread_once(&crc_once, crc_init); /* the shift table */
    }
    while (n >= 3 * CRC_STREAM) {
        uint64_t b = 0;
        uint64_t d = 0;
        for (size_t i = 0; i < CRC_STREAM; i += 8) {
            uint64_t x, y, z;
            memcpy(&x, p + i, 8);
            memcpy(&y, p + CRC_STREAM + i, 8);
            memcpy(&z, p + 2 * CRC_STREAM + i, 8);
            c = _mm_crc32_u64(c, x);
            b = _mm_crc32_u64(b, y);
            d = _mm_crc32_u64(d, z);
        }
        c = crc_shift((uint32_t)c) ^ (uint32_t)b;
        c = crc_shift((uint32_t)c) ^ (uint32_t)d;
        p += 3 * CRC_STREAM;
        n -= 3 * CRC_STREAM;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        c = _mm_crc32_u32((uint32_t)c, w);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        c = _mm_crc32_u16((uint32_t)c, w);
        p += 2;
        n -= 2;
    }
    if (n > 0) {
        c = _mm_crc32_u8((uint32_t)c, *p);
    }
    return ~(uint32_t)c;
}
#else
uint32_t
kvd_crc32c_hw(uint32_t crc, const void *buf, size_t n)
{
    return kvd_crc32c_sw(crc, buf, n);
}
#endif

uint32_t
kvd_crc32c(uint32_t crc, const void *buf, size_t n)
{
    if (kvd_crc32c_hw_available()) {
        return kvd_crc32c_hw(crc, buf, n);
    }
    return kvd_crc32c_sw(crc, buf, n);
}
