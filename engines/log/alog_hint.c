/*
 * alog_hint.c -- hint files: for each immutable segment NNNNNNNN.data a
 * NNNNNNNN.hint lists every record (key, seq, expiry, offset, value length,
 * kind) so that recovery rebuilds the index without reading values.
 *
 * A hint is an optimisation only: it is written whole under a temporary
 * name and renamed, it ends with a trailer holding the length of the data
 * file it describes and a crc over the whole file, and any mismatch makes
 * recovery scan the data file instead. A hint never stops an open.
 */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

int
alog_hint_add(struct alog_hint_buf *hb, const struct alog_hint_ent *e,
              const void *key)
{
    size_t need = ALOG_HINT_ENT_BYTES + (size_t)e->klen;

    if (hb->len + need + ALOG_HINT_TRAILER_BYTES > hb->cap) {
        size_t cap = hb->cap ? hb->cap * 2 : 64 * 1024;
        unsigned char *p;
        while (cap < hb->len + need + ALOG_HINT_TRAILER_BYTES) {
            cap *= 2;
        }
        p = realloc(hb->p, cap);
        if (p == NULL) {
            return KVD_ENOMEM;
        }
        hb->p = p;
        hb->cap = cap;
    }
    if (hb->len == 0) {
        alog_file_hdr_encode(hb->p, ALOG_FILE_HINT, 0);
        hb->len = ALOG_FILE_HDR_BYTES;
    }
    alog_hint_ent_encode(hb->p + hb->len, e);
    memcpy(hb->p + hb->len + ALOG_HINT_ENT_BYTES, key, e->klen);
    hb->len += need;
    hb->count++;
    return 0;
}

void
alog_hint_buf_release(struct alog_hint_buf *hb)
{
    free(hb->p);
    memset(hb, 0, sizeof(*hb));
}

/* Append the trailer; the buffer then holds the whole file. */
static int
hint_finish(struct alog_hint_buf *hb, uint64_t data_bytes)
{
    unsigned char *t;

    if (hb->len == 0 || hb->cap - hb->len < ALOG_HINT_TRAILER_BYTES) {
        /* an empty segment: make room for header + trailer */
        unsigned char *p =
            realloc(hb->p, ALOG_FILE_HDR_BYTES + ALOG_HINT_TRAILER_BYTES);
        if (p == NULL) {
            return KVD_ENOMEM;
        }
        hb->p = p;
        hb->cap = ALOG_FILE_HDR_BYTES + ALOG_HINT_TRAILER_BYTES;
        alog_file_hdr_encode(hb->p, ALOG_FILE_HINT, 0);
        hb->len = ALOG_FILE_HDR_BYTES;
    }
    t = hb->p + hb->len;
    alog_put_u64(t, data_bytes);
    alog_put_u64(t + 8, hb->count);
    alog_put_u32(t + 16, ALOG_HINT_TRAILER_MAGIC);
    alog_put_u32(t + 20, alog_crc_mask(alog_crc32c(0, hb->p, hb->len + 20)));
    hb->len += ALOG_HINT_TRAILER_BYTES;
    return 0;
}

int
alog_hint_save(alog_db *db, struct alog_seg *seg, struct alog_hint_buf *hb,
               uint64_t data_bytes, int leave_tmp)
{
    char path[ALOG_PATH_BYTES];
    char tpath[ALOG_PATH_BYTES];
    int rc;
    int fd;

    rc = hint_finish(hb, data_bytes);
    if (rc != 0) {
        return rc;
    }
    alog_seg_path(db, path, seg->id, "hint");
    if (!leave_tmp) {
        rc = alog_write_tmp_file(db, path, hb->p, hb->len);
    } else {
        /* a merge output: written and synced now, renamed at commit */
        alog_seg_path(db, tpath, seg->id, "hint.tmp");
        fd =
            db->io->open(tpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            return alog_errno_status(errno);
        }
        rc = alog_write_full(db, fd, hb->p, hb->len, 0);
        if (rc == 0 && db->io->fsync(fd) != 0) {
            rc = alog_errno_status(errno);
        }
        db->io->close(fd);
    }
    if (rc == 0) {
        atomic_store(&seg->hint_bytes, hb->len);
        alog_count(&db->c.hint_files_written, 1);
    }
    return rc;
}

static int
hint_collect(void *ctx, struct alog_seg *seg, const struct alog_scan_rec *r)
{
    struct alog_hint_ent e = {
        .seq = r->h.seq,
        .expire_ms = r->h.expire_ms,
        .off = r->off,
        .vlen = r->h.vlen,
        .klen = r->h.klen,
        .kind = r->h.kind,
    };
    (void)seg;
    return alog_hint_add(ctx, &e, r->key);
}

int
alog_hint_write(alog_db *db, struct alog_seg *seg)
{
    struct alog_hint_buf hb = {0};
    struct alog_scan_result res;
    uint64_t size = atomic_load(&seg->size);
    int rc;

    rc = alog_scan_segment(db, seg, size, 0, 0, hint_collect, &hb, &res);
    if (rc == 0) {
        rc = alog_hint_save(db, seg, &hb, size, 0);
    }
    alog_hint_buf_release(&hb);
    return rc;
}

int
alog_hint_load(alog_db *db, struct alog_seg *seg, uint64_t data_size,
               alog_scan_fn fn, void *ctx)
{
    char path[ALOG_PATH_BYTES];
    unsigned char *buf = NULL;
    struct alog_file_hdr fh;
    uint64_t size;
    uint64_t pos;
    uint64_t end;
    uint64_t count = 0;
    size_t got;
    int fd;
    int rc;

    alog_seg_path(db, path, seg->id, "hint");
    fd = db->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        return errno == ENOENT ? KVD_ENOTFOUND : KVD_ECORRUPT;
    }
    rc = alog_file_size(fd, &size);
    if (rc != 0 || size < ALOG_FILE_HDR_BYTES + ALOG_HINT_TRAILER_BYTES) {
        rc = KVD_ECORRUPT;
        goto out;
    }
    buf = malloc(size);
    if (buf == NULL) {
        rc = KVD_ENOMEM;
        goto out;
    }
    rc = alog_read_full(db, fd, buf, size, 0, &got);
    if (rc != 0 || got != size) {
        rc = KVD_ECORRUPT;
        goto out;
    }
    end = size - ALOG_HINT_TRAILER_BYTES;
    if (alog_file_hdr_decode(buf, &fh) != 0 || fh.kind != ALOG_FILE_HINT ||
        alog_get_u32(buf + end + 16) != ALOG_HINT_TRAILER_MAGIC ||
        alog_get_u64(buf + end) != data_size ||
        alog_crc_mask(alog_crc32c(0, buf, size - 4)) !=
            alog_get_u32(buf + size - 4)) {
        rc = KVD_ECORRUPT;
        goto out;
    }
    for (pos = ALOG_FILE_HDR_BYTES; pos < end;) {
        struct alog_hint_ent e;
        struct alog_scan_rec r;
        if (end - pos < ALOG_HINT_ENT_BYTES) {
            rc = KVD_ECORRUPT;
            goto out;
        }
        alog_hint_ent_decode(buf + pos, &e);
        if ((e.kind != ALOG_REC_PUT && e.kind != ALOG_REC_DEL) || e.klen == 0 ||
            end - pos - ALOG_HINT_ENT_BYTES < e.klen ||
            (uint64_t)e.off + alog_rec_bytes(e.klen, e.vlen) > data_size) {
            rc = KVD_ECORRUPT;
            goto out;
        }
        memset(&r, 0, sizeof(r));
        r.off = e.off;
        r.h.kind = e.kind;
        r.h.klen = e.klen;
        r.h.vlen = e.vlen;
        r.h.seq = e.seq;
        r.h.expire_ms = e.expire_ms;
        r.key = buf + pos + ALOG_HINT_ENT_BYTES;
        rc = fn(ctx, seg, &r);
        if (rc != 0) {
            goto out;
        }
        pos += ALOG_HINT_ENT_BYTES + e.klen;
        count++;
    }
    if (count != alog_get_u64(buf + end + 8)) {
        rc = KVD_ECORRUPT;
        goto out;
    }
    atomic_store(&seg->hint_bytes, size);
out:
    free(buf);
    db->io->close(fd);
    return rc;
}
