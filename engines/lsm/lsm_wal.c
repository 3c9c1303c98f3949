/*
 * lsm_wal.c -- the record log format shared by the WAL and the MANIFEST
 * (lsm_wal.h has the layout): encoding, the single-pwrite writer and the
 * reader that reassembles fragments and tells a torn tail from damage in
 * the middle of a file.
 *
 * Reader rule: a damaged fragment (bad checksum, impossible length or
 * type, a record cut short) is "torn" when no valid fragment follows it in
 * the file, which is what an interrupted append leaves; anything else is
 * corruption, counted so the caller can apply its policy. After damage the
 * reader resumes at the next fragment when the damaged one's length still
 * leads to a valid header in the same block, else at the next block
 * boundary (every block starts with a fragment header). Everything after
 * the last non-zero byte of the file is preallocated space: a fragment
 * header is never all zero, so the log ends where the zeros start.
 *
 * No state beyond the structs: thread-compatible.
 */
#include "lsm_wal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvd/kit_coding.h"
#include "kvd/kit_crc32c.h"
#include "kvd/kit_file.h"
#include "kvd/status.h"

/* ---- file header ---- */

void
lsm_file_hdr_encode(unsigned char out[LSM_FILE_HDR_BYTES], int kind,
                    uint64_t created_seq)
{
    memcpy(out, LSM_FILE_MAGIC, 4);
    kvd_put_le16(out + 4, LSM_FILE_VERSION);
    kvd_put_le16(out + 6, (uint16_t)kind);
    memcpy(out + 8, &created_seq, 8);
}

int
lsm_file_hdr_check(const void *p, size_t n, int kind, uint64_t *created_seq)
{
    const unsigned char *b = p;

    if (n != LSM_FILE_HDR_BYTES || memcmp(b, LSM_FILE_MAGIC, 4) != 0 ||
        kvd_get_le16(b + 4) != LSM_FILE_VERSION ||
        kvd_get_le16(b + 6) != kind) {
        return KVD_ECORRUPT;
    }
    if (created_seq != NULL) {
        memcpy(created_seq, b + 8, 8);
    }
    return 0;
}

/* ---- encoding ---- */

static uint32_t
frag_crc(int type, const void *p, size_t n)
{
    unsigned char t = (unsigned char)type;
    uint32_t c = kvd_crc32c(0, &t, 1);

    return kvd_crc32c_mask(kvd_crc32c(c, p, n));
}

size_t
lsm_log_encoded_size(size_t block_off, size_t n)
{
    size_t total = 0;
    bool first = true;

    while (first || n > 0) {
        size_t left = LSM_LOG_BLOCK_BYTES - block_off;
        size_t avail;
        size_t take;

        if (left < LSM_LOG_HEADER_BYTES) {
            total += left; /* zero-filled trailer */
            block_off = 0;
            continue;
        }
        avail = left - LSM_LOG_HEADER_BYTES;
        take = n < avail ? n : avail;
        total += LSM_LOG_HEADER_BYTES + take;
        block_off += LSM_LOG_HEADER_BYTES + take;
        n -= take;
        first = false;
    }
    return total;
}

size_t
lsm_log_encode(size_t block_off, const void *rec, size_t n, unsigned char *out)
{
    const unsigned char *p = rec;
    bool first = true;

    while (first || n > 0) {
        size_t left = LSM_LOG_BLOCK_BYTES - block_off;
        size_t avail;
        size_t take;
        int type;

        if (left < LSM_LOG_HEADER_BYTES) {
            memset(out, 0, left);
            out += left;
            block_off = 0;
            continue;
        }
        avail = left - LSM_LOG_HEADER_BYTES;
        take = n < avail ? n : avail;
        if (first) {
            type = take == n ? LSM_LOG_FULL : LSM_LOG_FIRST;
        } else {
            type = take == n ? LSM_LOG_LAST : LSM_LOG_MIDDLE;
        }
        kvd_put_le32(out, frag_crc(type, p, take));
        kvd_put_le16(out + 4, (uint16_t)take);
        out[6] = (unsigned char)type;
        if (take > 0) {
            memcpy(out + LSM_LOG_HEADER_BYTES, p, take);
        }
        out += LSM_LOG_HEADER_BYTES + take;
        block_off += LSM_LOG_HEADER_BYTES + take;
        p += take;
        n -= take;
        first = false;
    }
    return block_off;
}

/* ---- writer ---- */

/* The scratch buffer is kept between records up to this size. */
#define LSM_LOGW_KEEP_BYTES (1u << 20)
/* Preallocation writes zeros in pieces of this size. */
#define LSM_LOGW_ZERO_BYTES 65536

static const unsigned char lsm_zeros[LSM_LOGW_ZERO_BYTES];

void
lsm_logw_init(struct lsm_logw *w, const struct kvd_io *io, int fd, uint64_t off)
{
    memset(w, 0, sizeof(*w));
    w->io = io;
    w->fd = fd;
    w->off = off;
    w->alloc = off;
}

void
lsm_logw_release(struct lsm_logw *w)
{
    if (w != NULL) {
        free(w->buf);
        w->buf = NULL;
        w->cap = 0;
    }
}

/* Zeros from w->alloc to the first multiple of w->chunk above w->off, so
 * that at least one byte is free for the next record. On failure
 * preallocation stops (w->alloc keeps what was written). */
static int
zero_fill(struct lsm_logw *w)
{
    uint64_t target = (w->off / w->chunk + 1) * w->chunk;

    while (w->alloc < target) {
        uint64_t left = target - w->alloc;
        size_t n =
            left < LSM_LOGW_ZERO_BYTES ? (size_t)left : LSM_LOGW_ZERO_BYTES;
        int rc = kvd_file_write_full(w->io, w->fd, lsm_zeros, n, w->alloc);
        if (rc != 0) {
            w->chunk = 0;
            return rc;
        }
        w->alloc += n;
    }
    return 0;
}

int
lsm_logw_prealloc(struct lsm_logw *w, uint64_t chunk)
{
    w->chunk = chunk;
    if (w->alloc < w->off) {
        w->alloc = w->off;
    }
    return chunk != 0 ? zero_fill(w) : 0;
}

int
lsm_logw_add(struct lsm_logw *w, const void *rec, size_t n)
{
    size_t block_off = (size_t)(w->off % LSM_LOG_BLOCK_BYTES);
    size_t total = lsm_log_encoded_size(block_off, n);
    int rc;

    if (total > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        unsigned char *nb;
        while (cap < total) {
            cap *= 2;
        }
        nb = realloc(w->buf, cap);
        if (nb == NULL) {
            return KVD_ENOMEM;
        }
        w->buf = nb;
        w->cap = cap;
    }
    lsm_log_encode(block_off, rec, n, w->buf);
    rc = kvd_file_write_full(w->io, w->fd, w->buf, total, w->off);
    if (rc != 0) {
        return rc;
    }
    w->off += total;
    if (w->cap > LSM_LOGW_KEEP_BYTES) {
        /* one huge record must not pin its buffer for good */
        lsm_logw_release(w);
    }
    if (w->off >= w->alloc) {
        w->alloc = w->off;
        if (w->chunk != 0) {
            /* the record is written: a failed zero fill only ends the
             * preallocation (the sync that follows reports a bad disk) */
            (void)zero_fill(w);
        }
    }
    return 0;
}

size_t
lsm_logw_record_bytes(const struct lsm_logw *w, size_t n)
{
    return lsm_log_encoded_size((size_t)(w->off % LSM_LOG_BLOCK_BYTES), n);
}

int
lsm_logw_zero(struct lsm_logw *w, uint64_t n)
{
    uint64_t at = w->off;

    while (n > 0) {
        size_t k = n < LSM_LOGW_ZERO_BYTES ? (size_t)n : LSM_LOGW_ZERO_BYTES;
        int rc = kvd_file_write_full(w->io, w->fd, lsm_zeros, k, at);
        if (rc != 0) {
            return rc;
        }
        at += k;
        n -= k;
    }
    if (at > w->alloc) {
        w->alloc = at;
    }
    return 0;
}

/* ---- reader ---- */

enum phys_result {
    PH_OK,
    PH_EOF,
    PH_BAD, /* damaged fragment; r->pos moved past it */
};

void
lsm_logr_init(struct lsm_logr *r, const void *data, size_t size)
{
    memset(r, 0, sizeof(*r));
    r->data = data;
    r->size = size;
    r->end = size;
    while (r->end > 0 && r->data[r->end - 1] == 0) {
        r->end--;
    }
}

void
lsm_logr_release(struct lsm_logr *r)
{
    if (r != NULL) {
        free(r->rec);
        r->rec = NULL;
        r->rec_cap = 0;
    }
}

static size_t
next_block(size_t pos)
{
    return (pos / LSM_LOG_BLOCK_BYTES + 1) * LSM_LOG_BLOCK_BYTES;
}

/* Is there a well-formed fragment with a good checksum at pos? */
static bool
frag_ok_at(const struct lsm_logr *r, size_t pos)
{
    size_t left = LSM_LOG_BLOCK_BYTES - pos % LSM_LOG_BLOCK_BYTES;
    const unsigned char *h;
    size_t len;
    int type;

    if (left < LSM_LOG_HEADER_BYTES || pos + LSM_LOG_HEADER_BYTES > r->size) {
        return false;
    }
    h = r->data + pos;
    len = kvd_get_le16(h + 4);
    type = h[6];
    if (type < LSM_LOG_FULL || type > LSM_LOG_LAST ||
        LSM_LOG_HEADER_BYTES + len > left ||
        pos + LSM_LOG_HEADER_BYTES + len > r->size) {
        return false;
    }
    return kvd_get_le32(h) == frag_crc(type, h + LSM_LOG_HEADER_BYTES, len);
}

/* The next physical fragment at or after r->pos. */
static int
phys_next(struct lsm_logr *r, int *type, const unsigned char **frag,
          size_t *len, size_t *start)
{
    for (;;) {
        size_t left = LSM_LOG_BLOCK_BYTES - r->pos % LSM_LOG_BLOCK_BYTES;
        const unsigned char *h;
        size_t n;
        int t;

        if (r->pos >= r->size) {
            r->pos = r->size;
            return PH_EOF;
        }
        if (left < LSM_LOG_HEADER_BYTES) {
            r->pos += left; /* block trailer */
            continue;
        }
        if (r->pos >= r->end) {
            /* nothing but zeros from here: preallocated space, the end */
            r->pos = r->size;
            return PH_EOF;
        }
        *start = r->pos;
        if (r->size - r->pos < LSM_LOG_HEADER_BYTES) {
            r->pos = r->size; /* a header cut short */
            return PH_BAD;
        }
        h = r->data + r->pos;
        n = kvd_get_le16(h + 4);
        t = h[6];
        if (t < LSM_LOG_FULL || t > LSM_LOG_LAST ||
            LSM_LOG_HEADER_BYTES + n > left) {
            r->pos = next_block(r->pos);
            if (r->pos > r->size) {
                r->pos = r->size;
            }
            return PH_BAD;
        }
        if (r->pos + LSM_LOG_HEADER_BYTES + n > r->size) {
            r->pos = r->size; /* a fragment cut short */
            return PH_BAD;
        }
        if (kvd_get_le32(h) != frag_crc(t, h + LSM_LOG_HEADER_BYTES, n)) {
            /* the length may be the damaged part: trust it only when it
             * leads to a valid fragment */
            size_t cand = r->pos + LSM_LOG_HEADER_BYTES + n;
            r->pos = frag_ok_at(r, cand) ? cand : next_block(r->pos);
            if (r->pos > r->size) {
                r->pos = r->size;
            }
            return PH_BAD;
        }
        *type = t;
        *frag = h + LSM_LOG_HEADER_BYTES;
        *len = n;
        r->pos += LSM_LOG_HEADER_BYTES + n;
        return PH_OK;
    }
}

/* Does a valid fragment that starts a record follow r->pos? (r is not
 * moved.) Later fragments of the damaged record itself do not count: an
 * interrupted write may leave its pages out of order. */
static bool
valid_follows(const struct lsm_logr *r)
{
    struct lsm_logr probe = *r;

    for (;;) {
        const unsigned char *f;
        size_t n;
        size_t s;
        int t = 0;
        int st = phys_next(&probe, &t, &f, &n, &s);
        if (st == PH_OK && (t == LSM_LOG_FULL || t == LSM_LOG_FIRST)) {
            return true;
        }
        if (st == PH_EOF) {
            return false;
        }
    }
}

static int
rec_append(struct lsm_logr *r, const unsigned char *p, size_t n)
{
    if (r->rec_len + n > r->rec_cap) {
        size_t cap = r->rec_cap ? r->rec_cap : 4096;
        unsigned char *nb;
        while (cap < r->rec_len + n) {
            cap *= 2;
        }
        nb = realloc(r->rec, cap);
        if (nb == NULL) {
            return KVD_ENOMEM;
        }
        r->rec = nb;
        r->rec_cap = cap;
    }
    memcpy(r->rec + r->rec_len, p, n);
    r->rec_len += n;
    return 0;
}

static void
count_damage(struct lsm_logr *r, size_t from, size_t to)
{
    r->ncorrupt++;
    r->corrupt_off = from;
    r->corrupt_bytes += to > from ? to - from : 0;
}

int
lsm_logr_next(struct lsm_logr *r, const void **p, size_t *n)
{
    bool in_rec = false;
    bool dropping = false; /* orphans right after damage belong to it */
    size_t rec_start = 0;

    r->rec_len = 0;
    for (;;) {
        const unsigned char *frag = NULL;
        size_t len = 0;
        size_t start = 0;
        int type = 0;
        int st = phys_next(r, &type, &frag, &len, &start);
        int rc;

        if (st == PH_EOF) {
            if (in_rec) {
                r->torn = true;
                r->torn_off = rec_start;
            }
            return KVD_ENOTFOUND;
        }
        if (st == PH_BAD) {
            size_t dmg = in_rec ? rec_start : start;
            if (!valid_follows(r)) {
                r->torn = true;
                r->torn_off = dmg;
                r->pos = r->size;
                return KVD_ENOTFOUND;
            }
            count_damage(r, dmg, r->pos);
            dropping = true;
            in_rec = false;
            r->rec_len = 0;
            continue;
        }
        switch (type) {
        case LSM_LOG_FULL:
            if (in_rec) {
                count_damage(r, rec_start, start); /* FIRST without LAST */
            }
            r->rec_off = start;
            r->valid_end = r->pos;
            *p = frag;
            *n = len;
            return 0;
        case LSM_LOG_FIRST:
            if (in_rec) {
                count_damage(r, rec_start, start);
            }
            dropping = false;
            in_rec = true;
            rec_start = start;
            r->rec_len = 0;
            rc = rec_append(r, frag, len);
            if (rc != 0) {
                return rc;
            }
            break;
        case LSM_LOG_MIDDLE:
        case LSM_LOG_LAST:
            if (!in_rec) {
                /* an orphan fragment */
                if (dropping) {
                    r->corrupt_bytes += r->pos - start;
                } else {
                    count_damage(r, start, r->pos);
                    dropping = true;
                }
                break;
            }
            rc = rec_append(r, frag, len);
            if (rc != 0) {
                return rc;
            }
            if (type == LSM_LOG_LAST) {
                r->rec_off = rec_start;
                r->valid_end = r->pos;
                *p = r->rec;
                *n = r->rec_len;
                return 0;
            }
            break;
        default:
            break;
        }
    }
}
