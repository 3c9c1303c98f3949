/*
 * alog_scan.c -- sequential reader of one segment, shared by recovery, the
 * hint writer and the merge.
 *
 * Reads from the segment's map (alog.h) where it covers the bytes, else
 * through a window buffer (ALOG_SCAN_WINDOW_BYTES, grown for larger
 * records) with positioned reads. Each record is checked: a sane header, a
 * length inside the file, a matching crc; a batch frame must also hold
 * exactly its operations, each valid, before any of them is reported.
 *
 * Damage policy (docs/formats.md):
 *   - a bad record is followed by a search, byte by byte, for the next
 *     valid top-level record (batch operations never qualify, so a torn
 *     batch can never be half applied);
 *   - found: the bytes in between are a corrupt region, logged with file
 *     and offset at error level and counted; scanning resumes there, so no
 *     later valid record is lost;
 *   - in the tail segment (the one the last run appended to) a bad
 *     record followed by nothing but zero bytes is the end of the
 *     records: appends preallocate the file ahead with zeros (alog.h);
 *     reported as such (not torn, not corrupt) and cut by recovery;
 *   - not found in the tail segment: a torn write; reported as torn so
 *     recovery cuts the file there;
 *   - not found elsewhere: a corrupt tail, logged and counted, left alone.
 */
#include "alog.h"

#include <stdlib.h>
#include <string.h>

#define ALOG_SCAN_WINDOW_BYTES (1u << 20)

struct scan_win {
    unsigned char *buf;
    size_t cap;
    uint64_t start; /* file offset of buf[0] */
    size_t len;     /* valid bytes in buf */
};

/*
 * Make [off, off + n) available in the window. Returns 0 with *p pointing
 * at off when all n bytes exist, KVD_ENOTFOUND when the file is shorter,
 * or an I/O error.
 */
static int
win_get(alog_db *db, struct alog_seg *seg, struct scan_win *w,
        uint64_t file_size, uint64_t off, uint64_t n, const unsigned char **p)
{
    size_t want;
    size_t got;
    int rc;

    if (off + n > file_size) {
        return KVD_ENOTFOUND;
    }
    /* inside the file and the map: no copy, no system call */
    if (seg->map != NULL && off + n <= seg->map_len) {
        *p = seg->map + off;
        return 0;
    }
    if (off >= w->start && off + n <= w->start + w->len) {
        *p = w->buf + (off - w->start);
        return 0;
    }
    want = n > ALOG_SCAN_WINDOW_BYTES ? (size_t)n : ALOG_SCAN_WINDOW_BYTES;
    if (want > file_size - off) {
        want = (size_t)(file_size - off);
    }
    if (want > w->cap) {
        unsigned char *nb = realloc(w->buf, want);
        if (nb == NULL) {
            return KVD_ENOMEM;
        }
        w->buf = nb;
        w->cap = want;
    }
    rc = kvd_file_read_full(db->io, seg->fd, w->buf, want, off, &got);
    if (rc != 0) {
        return rc;
    }
    w->start = off;
    w->len = got;
    if (got < n) {
        return KVD_ENOTFOUND;
    }
    *p = w->buf;
    return 0;
}

/* Are the bytes [off, file_size) of seg all zero? 1/0, or an I/O error. */
static int
zeros_to_end(alog_db *db, struct alog_seg *seg, struct scan_win *w,
             uint64_t file_size, uint64_t off)
{
    while (off < file_size) {
        uint64_t n = file_size - off;
        const unsigned char *p;
        int rc;

        if (n > ALOG_SCAN_WINDOW_BYTES) {
            n = ALOG_SCAN_WINDOW_BYTES;
        }
        rc = win_get(db, seg, w, file_size, off, n, &p);
        if (rc != 0) {
            return rc == KVD_ENOTFOUND ? 0 : rc;
        }
        /* p[0] == 0 and every byte equal to its successor */
        if (p[0] != 0 || (n > 1 && memcmp(p, p + 1, (size_t)n - 1) != 0)) {
            return 0;
        }
        off += n;
    }
    return 1;
}

/* Check the body of a batch frame: `count` valid operations filling it
 * exactly. */
static int
batch_body_ok(const unsigned char *body, uint64_t len, uint64_t count)
{
    uint64_t pos = 0;
    uint64_t seen = 0;

    while (pos < len) {
        struct alog_rec_hdr h;
        uint64_t total;
        if (len - pos < ALOG_REC_HDR_BYTES) {
            return 0;
        }
        alog_rec_hdr_decode(body + pos, &h);
        if (!alog_rec_hdr_sane(&h, 1)) {
            return 0;
        }
        total = alog_rec_total(&h);
        if (total > len - pos || !alog_rec_crc_ok(body + pos, total)) {
            return 0;
        }
        pos += total;
        seen++;
    }
    return seen == count;
}

/*
 * Is there a valid top-level record at off? Returns 1/0, or a negative
 * status on I/O error. *total gets its length.
 */
static int
valid_at(alog_db *db, struct alog_seg *seg, struct scan_win *w,
         uint64_t file_size, uint64_t off, uint64_t *total)
{
    const unsigned char *p;
    struct alog_rec_hdr h;
    int rc;

    rc = win_get(db, seg, w, file_size, off, ALOG_REC_HDR_BYTES, &p);
    if (rc != 0) {
        return rc == KVD_ENOTFOUND ? 0 : rc;
    }
    alog_rec_hdr_decode(p, &h);
    if (!alog_rec_hdr_sane(&h, 0)) {
        return 0;
    }
    *total = alog_rec_total(&h);
    rc = win_get(db, seg, w, file_size, off, *total, &p);
    if (rc != 0) {
        return rc == KVD_ENOTFOUND ? 0 : rc;
    }
    if (!alog_rec_crc_ok(p, *total)) {
        return 0;
    }
    if (h.kind == ALOG_REC_BATCH &&
        !batch_body_ok(p + ALOG_REC_HDR_BYTES, h.vlen, (uint64_t)h.expire_ms)) {
        return 0;
    }
    return 1;
}

/* Report the records of a valid record at off (a batch: each op). */
int
alog_scan_emit(struct alog_seg *seg, const unsigned char *p, uint64_t off,
               alog_scan_fn fn, void *ctx, uint64_t *records)
{
    struct alog_scan_rec r;
    uint64_t pos;
    uint64_t end;

    alog_rec_hdr_decode(p, &r.h);
    r.hash = 0;
    if (r.h.kind != ALOG_REC_BATCH) {
        r.off = (uint32_t)off;
        r.raw = p;
        r.key = p + ALOG_REC_HDR_BYTES;
        r.val = r.key + r.h.klen;
        (*records)++;
        return fn(ctx, seg, &r);
    }
    pos = ALOG_REC_HDR_BYTES;
    end = ALOG_REC_HDR_BYTES + (uint64_t)r.h.vlen;
    while (pos < end) {
        int rc;
        alog_rec_hdr_decode(p + pos, &r.h);
        r.off = (uint32_t)(off + pos);
        r.raw = p + pos;
        r.key = r.raw + ALOG_REC_HDR_BYTES;
        r.val = r.key + r.h.klen;
        (*records)++;
        rc = fn(ctx, seg, &r);
        if (rc != 0) {
            return rc;
        }
        pos += alog_rec_total(&r.h);
    }
    return 0;
}

int
alog_scan_segment(alog_db *db, struct alog_seg *seg, uint64_t file_size,
                  int is_tail, int fail_on_corrupt, alog_scan_fn fn, void *ctx,
                  struct alog_scan_result *res)
{
    struct scan_win w = {0};
    uint64_t off = ALOG_FILE_HDR_BYTES;
    int rc = 0;

    res->valid_end = off;
    res->records = 0;
    res->corrupt_regions = 0;
    res->torn = 0;
    res->zeros = 0;
    while (off < file_size) {
        uint64_t total = 0;
        uint64_t next;
        const unsigned char *p;

        rc = valid_at(db, seg, &w, file_size, off, &total);
        if (rc < 0) {
            goto out;
        }
        if (rc == 1) {
            rc = win_get(db, seg, &w, file_size, off, total, &p);
            if (rc == 0) {
                rc = alog_scan_emit(seg, p, off, fn, ctx, &res->records);
            }
            if (rc != 0) {
                goto out;
            }
            off += total;
            res->valid_end = off;
            continue;
        }
        if (is_tail) {
            rc = zeros_to_end(db, seg, &w, file_size, off);
            if (rc < 0) {
                goto out;
            }
            if (rc == 1) {
                rc = 0;
                res->zeros = 1;
                break;
            }
        }
        /* damaged: look for the next valid record */
        rc = 0;
        for (next = off + 1; next + ALOG_REC_HDR_BYTES <= file_size; next++) {
            rc = valid_at(db, seg, &w, file_size, next, &total);
            if (rc != 0) {
                break;
            }
        }
        if (rc < 0) {
            goto out;
        }
        if (rc == 1) {
            res->corrupt_regions++;
            kvd_counter_add(&db->c.corrupt_records, 1);
            ALOG_LOG(db, KVD_LOG_ERROR,
                     "log: corrupt data in %s/%08u.data at offset %llu: "
                     "skipped %llu bytes to the next valid record at %llu",
                     db->dir, (unsigned)seg->id, (unsigned long long)off,
                     (unsigned long long)(next - off),
                     (unsigned long long)next);
            if (fail_on_corrupt) {
                rc = KVD_ECORRUPT;
                goto out;
            }
            rc = 0;
            off = next;
            continue;
        }
        if (is_tail) {
            res->torn = 1;
        } else {
            res->corrupt_regions++;
            kvd_counter_add(&db->c.corrupt_records, 1);
            ALOG_LOG(db, KVD_LOG_ERROR,
                     "log: corrupt tail in %s/%08u.data at offset %llu "
                     "(%llu bytes, no valid record after it): ignored",
                     db->dir, (unsigned)seg->id, (unsigned long long)off,
                     (unsigned long long)(file_size - off));
            if (fail_on_corrupt) {
                rc = KVD_ECORRUPT;
                goto out;
            }
        }
        break;
    }
out:
    free(w.buf);
    return rc;
}
