/*
 * fuzz/fuzz_lsm_table.c -- the lsm engine's SSTable reader at open
 * (engines/lsm/lsm_table_read.c): footer, its checksum and handles, the
 * meta, filter and index blocks, then a scan and lookups through the
 * two-level iterator and get.
 *
 * First input byte, low bit 0: the rest is the file as it is. Low bit 1:
 * the harness recomputes, after the input's bytes, the trailers of the
 * blocks the footer points at (index, filter, meta, each with its kind)
 * and the footer's own checksum, so mutations reach the decoding behind
 * them. Data blocks keep their stored checksums (fuzz_lsm_block decodes
 * blocks directly). The file is an in-memory file (memfd).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "lsm_block.h"
#include "lsm_iter.h"
#include "lsm_table.h"

static void
fix_block(uint8_t *f, size_t size, uint64_t off, uint64_t n, int kind)
{
    uint8_t type = (uint8_t)kind;
    uint32_t crc;

    if (off < LSM_SST_HEADER_BYTES || off > size || n > size - off ||
        size - off - n < LSM_BLOCK_TRAILER_BYTES + LSM_SST_FOOTER_BYTES) {
        return;
    }
    crc = fz_crc32c(fz_crc32c(0, f + off, n), &type, 1);
    f[off + n] = type;
    fz_put32(f + off + n + 1, fz_crc_mask(crc));
}

static void
fix_checksums(uint8_t *f, size_t size)
{
    uint8_t *ft;

    if (size < LSM_SST_HEADER_BYTES + LSM_SST_FOOTER_BYTES) {
        return;
    }
    ft = f + size - LSM_SST_FOOTER_BYTES;
    fix_block(f, size, fz_get64(ft), fz_get64(ft + 8), LSM_BLOCK_INDEX);
    fix_block(f, size, fz_get64(ft + 16), fz_get64(ft + 24), LSM_BLOCK_FILTER);
    fix_block(f, size, fz_get64(ft + 32), fz_get64(ft + 40), LSM_BLOCK_META);
    fz_put32(ft + 68, fz_crc_mask(fz_crc32c(fz_crc32c(0, f, 16), ft, 68)));
}

static void
scan(lsm_table *t)
{
    lsm_it *it = NULL;
    size_t n = 0;
    struct lsm_slice last = {NULL, 0};

    if (lsm_table_iter(t, false, &it) != 0) {
        return;
    }
    for (it->ops->seek_first(it); it->ops->valid(it) && n < 100000;
         it->ops->next(it)) {
        struct lsm_slice k = it->ops->key(it);
        struct lsm_slice v = it->ops->value(it);
        (void)v;
        if (n == 0) {
            last = k;
        }
        n++;
    }
    (void)it->ops->status(it);
    if (last.p != NULL && last.n >= 8) {
        it->ops->seek(it, last);
    }
    it->ops->destroy(it);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *f;
    size_t n;
    int fd;
    bool fix;
    lsm_table *t = NULL;
    struct kvd_err err = {0};

    if (size == 0) {
        return 0;
    }
    fix = data[0] & 1;
    n = size - 1;
    f = malloc(n > 0 ? n : 1);
    FZ_CHECK(f != NULL);
    if (n > 0) {
        memcpy(f, data + 1, n);
    }
    if (fix) {
        fix_checksums(f, n);
    }
    fd = fz_memfd(f, n);
    FZ_CHECK(fd >= 0);
    if (n >= LSM_SST_FOOTER_BYTES &&
        lsm_table_open(fz_host(), fd, n, NULL, &t, &err) == 0) {
        struct lsm_hit hit;
        struct lsm_slice lo = lsm_table_smallest(t);

        scan(t);
        if (lo.n >= 8 &&
            lsm_table_get(t, lo.p, lo.n - 8, lsm_bloom_hash(lo.p, lo.n - 8),
                          UINT64_MAX >> 8, &hit) == 0) {
            lsm_hit_release(&hit);
        }
        lsm_table_unref(t); /* closes fd */
    } else {
        close(fd);
    }
    free(f);
    return 0;
}
