/*
 * bt_crc.c -- crc32c (Castagnoli) for the btree engine's meta pages and
 * commit verification lists: the SSE4.2 instruction when the CPU has it,
 * else a byte-wise table.
 *
 * Kept to this one function so that it can be swapped for the shared
 * engine toolkit's crc32c without touching the callers.
 */
#include "bt.h"

#include <pthread.h>

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw;

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        crc_table[i] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t
crc_hw_run(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = crc;

    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    return (uint32_t)c;
}
#endif

uint32_t
bt_crc32c(uint32_t crc, const void *buf, size_t n)
{
    const unsigned char *p = buf;

    pthread_once(&crc_once, crc_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (crc_hw) {
        return ~crc_hw_run(crc, p, n);
    }
#endif
    while (n-- > 0) {
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}
