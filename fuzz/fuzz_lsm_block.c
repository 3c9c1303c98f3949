/*
 * fuzz/fuzz_lsm_block.c -- the lsm engine's block decoder
 * (engines/lsm/lsm_block.c): restart array, prefix-compressed entries,
 * seek and scan, and the trailer check.
 *
 * Input: a block's contents, then (the last 9 bytes, when there are
 * enough) a seek target. Blocks reach the decoder only after their
 * checksum passed, so the contents are decoded as they are, with no
 * checksum in the way; a block that lsm_block_init accepts must then be
 * scanned and searched without reading outside it, whatever its entries
 * say.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lsm_block.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly `size` bytes, so ASan sees any read past it */
    uint8_t *blk = malloc(size > 0 ? size : 1);
    uint8_t kbuf[32]; /* small: longer keys take the malloc'd path */
    struct lsm_block b;
    struct lsm_bit it;
    size_t n = 0;
    /* seek target: user key of 0..8 bytes and a trailer from the end */
    const uint8_t *tkey = size >= 9 ? data + size - 8 : data;
    size_t tlen = size >= 9 ? data[size - 9] % 9 : 0;
    uint64_t ttr = size >= 9 ? fz_get64(data + size - 8) : 0;

    FZ_CHECK(blk != NULL);
    if (size > 0) {
        memcpy(blk, data, size);
    }
    if (size >= LSM_BLOCK_TRAILER_BYTES) {
        (void)lsm_block_check(blk, size - LSM_BLOCK_TRAILER_BYTES,
                              LSM_BLOCK_DATA);
    }
    if (lsm_block_init(&b, blk, size) == 0) {
        lsm_bit_init(&it, &b, kbuf, sizeof(kbuf));
        for (lsm_bit_seek_first(&it); it.valid && n < 100000;
             lsm_bit_next(&it)) {
            FZ_CHECK(it.val >= blk && it.vlen <= size &&
                     (size_t)(it.val - blk) <= size - it.vlen);
            n++;
        }
        lsm_bit_seek(&it, tkey, tlen, ttr);
        while (it.valid && n < 200000) {
            lsm_bit_next(&it);
            n++;
        }
        lsm_bit_release(&it);
    }
    free(blk);
    return 0;
}
