/*
 * fuzz/fuzz_lsm_log.c -- see fuzz_lsm_log.h.
 */
#include "fuzz_lsm_log.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "lsm_wal.h"

static size_t
frame_records(struct fz_in *in, int kind, uint8_t *out, size_t cap)
{
    uint8_t flags = fz_u8(in);
    uint32_t cut = fz_u32(in);
    size_t off = 0;
    size_t boff = 0;
    int first = 1;

    while (in->n > 0 || first) {
        uint8_t hdr[LSM_FILE_HDR_BYTES];
        const uint8_t *rec;
        size_t n;

        if (first && (flags & 2)) {
            lsm_file_hdr_encode(hdr, kind, fz_u32(in));
            rec = hdr;
            n = sizeof(hdr);
        } else {
            /* some records larger than a 32 KiB block: FIRST/MIDDLE/LAST */
            rec = fz_bytes(in, (flags & 4) ? 70000 : 600, &n);
        }
        first = 0;
        if (off + lsm_log_encoded_size(boff, n) > cap) {
            break;
        }
        size_t before = boff;
        boff = lsm_log_encode(boff, rec, n, out + off);
        off += lsm_log_encoded_size(before, n);
    }
    if ((flags & 8) && off > 0) {
        off -= cut % off; /* a torn tail */
    }
    if ((flags & 16) && off + 64 <= cap) {
        memset(out + off, 0, 64); /* a preallocated zero tail */
        off += 64;
    }
    return off;
}

void
fz_lsm_log_run(const uint8_t *data, size_t size, int kind, fz_rec_fn fn)
{
    struct fz_in in = {data, size};
    uint8_t *file;
    size_t n;
    struct lsm_logr r;
    const void *p;
    size_t rn;
    int first = 1;

    if (size == 0) {
        return;
    }
    if (fz_u8(&in) & 1) {
        /* room for every record the input can describe, framed: each
         * takes at least 2 input bytes, and framing adds at most 7 bytes
         * per fragment plus 6 of padding per block, and the header */
        size_t cap = 16 * in.n + 4096;
        file = malloc(cap);
        FZ_CHECK(file != NULL);
        n = frame_records(&in, kind, file, cap);
    } else {
        n = in.n;
        file = malloc(n > 0 ? n : 1); /* exact size: reads past it show */
        FZ_CHECK(file != NULL);
        if (n > 0) {
            memcpy(file, in.p, n);
        }
    }
    lsm_logr_init(&r, file, n);
    while (lsm_logr_next(&r, &p, &rn) == 0) {
        FZ_CHECK(r.pos <= n && r.valid_end <= n);
        if (first) {
            uint64_t seq;
            first = 0;
            if (lsm_file_hdr_check(p, rn, kind, &seq) != 0) {
                break; /* recovery refuses a file with a bad header */
            }
            continue;
        }
        fn(p, rn);
    }
    lsm_logr_release(&r);
    free(file);
}
