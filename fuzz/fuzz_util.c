/*
 * fuzz/fuzz_util.c -- helpers shared by kvd's libFuzzer targets (see
 * fuzz_util.h).
 */
#include "fuzz_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void
fz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    abort();
}

uint32_t
fz_crc32c(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;

    crc = ~crc;
    while (n--) {
        crc ^= *b++;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

uint32_t
fz_crc_mask(uint32_t c)
{
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

void
fz_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void
fz_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

void
fz_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

uint64_t
fz_get64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

int
fz_memfd(const void *data, size_t size)
{
    int fd = memfd_create("kvd-fuzz", MFD_CLOEXEC);
    const uint8_t *p = data;

    if (fd < 0) {
        return -1;
    }
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        p += w;
        size -= (size_t)w;
    }
    return fd;
}

int
fz_tmpdir(char *out, size_t cap)
{
    const char *tmp = getenv("TMPDIR");

    if (snprintf(out, cap, "%s/kvd-fuzz-XXXXXX",
                 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp") >= (int)cap) {
        return -1;
    }
    return mkdtemp(out) != NULL ? 0 : -1;
}

static int
fz_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
fz_rmtree(const char *dir)
{
    nftw(dir, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

uint8_t
fz_u8(struct fz_in *in)
{
    uint8_t v = 0;

    if (in->n > 0) {
        v = in->p[0];
        in->p++;
        in->n--;
    }
    return v;
}

uint32_t
fz_u32(struct fz_in *in)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)fz_u8(in) << (8 * i);
    }
    return v;
}

const uint8_t *
fz_bytes(struct fz_in *in, size_t max, size_t *len)
{
    const uint8_t *p = in->p;
    size_t n = fz_u8(in);

    n = (n | (size_t)fz_u8(in) << 8) % (max + 1);
    if (n > in->n) {
        n = in->n;
    }
    p = in->p;
    in->p += n;
    in->n -= n;
    *len = n;
    return p;
}
