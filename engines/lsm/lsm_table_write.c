/*
 * lsm_table_write.c -- the table writer: sorted entries in, one SSTable
 * file out (layout in docs/formats.md, "lsm engine: SSTable").
 *
 * File: 16-byte header | data blocks | filter block | meta block | index
 * block | 72-byte footer. Blocks are built in memory and appended to an
 * output buffer that goes to the file in LSM_TW_WRITE_BYTES chunks through
 * host->io->pwrite, so a table costs a few large writes, not one per
 * block. An index entry for a block is added only when the next block's
 * first key is known, so its separator can be shortened to the shortest
 * key >= the block's last key and < the next block's first key.
 *
 * The filter needs every user key, so the writer keeps one 64-bit hash per
 * distinct user key (8 bytes per key) until finish.
 *
 * A writer belongs to one thread. After any error it is "failed": every
 * later call returns the same code, and finish frees it.
 */
#include "lsm_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvd/kit_coding.h"
#include "kvd/kit_crc32c.h"
#include "lsm_block.h"

#define LSM_TW_WRITE_BYTES      (256u * 1024)
#define LSM_TW_DEFAULT_BLOCK    4096
#define LSM_TW_DEFAULT_RESTART  16
#define LSM_TW_DEFAULT_BITS     10
#define LSM_TW_MAX_BITS_PER_KEY 64

struct lsm_tw {
    const struct kvd_host *host;
    int fd;
    struct lsm_table_opts opts;
    struct kvd_buf out; /* bytes not yet written; file offset `flushed` */
    uint64_t flushed;
    struct lsm_bbuilder data;
    struct lsm_bbuilder index;
    bool pending; /* a finished block waits for its index entry */
    uint64_t pending_off;
    uint64_t pending_size;
    struct kvd_buf last_key; /* last internal key added */
    struct kvd_buf smallest;
    uint64_t *hashes; /* one per distinct user key, for the filter */
    size_t nhashes;
    size_t hashes_cap;
    uint64_t entries;
    uint64_t tombstones;
    uint64_t data_blocks;
    int failed;                        /* sticky status: 0 or the first error */
    uint8_t hdr[LSM_SST_HEADER_BYTES]; /* as written at offset 0 */
};

static int
lsm_tw_fail(lsm_tw *w, struct kvd_err *err, int code, const char *what)
{
    if (w->failed == 0) {
        w->failed = code;
    }
    return kvd_err_set(err, code, "sst writer: %s: %s", what,
                       kvd_strerror(code));
}

/* ---- Output --------------------------------------------------------- */

static int
lsm_tw_write_out(lsm_tw *w, struct kvd_err *err)
{
    const uint8_t *p = w->out.p;
    size_t left = w->out.len;

    while (left > 0) {
        ssize_t n = w->host->io->pwrite(w->fd, p, left, (off_t)w->flushed);
        if (n < 0) {
            int e = errno;
            if (e == EINTR) {
                continue;
            }
            if (w->failed == 0) {
                w->failed = e == ENOSPC ? KVD_ENOSPC : KVD_EIO;
            }
            return kvd_err_set(err, w->failed,
                               "sst writer: pwrite at offset %llu: %s",
                               (unsigned long long)w->flushed, strerror(e));
        }
        if (n == 0) {
            w->failed = KVD_EIO;
            return kvd_err_set(err, KVD_EIO,
                               "sst writer: pwrite at offset %llu wrote "
                               "nothing",
                               (unsigned long long)w->flushed);
        }
        p += n;
        left -= (size_t)n;
        w->flushed += (uint64_t)n;
    }
    w->out.len = 0;
    return 0;
}

/* Append contents + trailer to the output; *off gets the block's file
 * offset. Writes the buffer out once it is large. */
static int
lsm_tw_emit(lsm_tw *w, const void *contents, size_t n, int kind, uint64_t *off,
            struct kvd_err *err)
{
    uint8_t trailer[LSM_BLOCK_TRAILER_BYTES];

    if (n > LSM_BLOCK_MAX_BYTES) {
        return lsm_tw_fail(w, err, KVD_ETOOBIG, "block too large");
    }
    *off = w->flushed + w->out.len;
    lsm_block_trailer(contents, n, kind, trailer);
    if (kvd_buf_reserve(&w->out, n + sizeof(trailer)) != 0) {
        return lsm_tw_fail(w, err, KVD_ENOMEM, "output buffer");
    }
    kvd_buf_append(&w->out, contents, n);
    kvd_buf_append(&w->out, trailer, sizeof(trailer));
    if (w->out.len >= LSM_TW_WRITE_BYTES) {
        return lsm_tw_write_out(w, err);
    }
    return 0;
}

/* ---- Separators ------------------------------------------------------ */

/*
 * The index key of a block whose last key is `a`, before a block that
 * starts at `b` (NULL for the last block): the shortest user key u with
 * a.user <= u < b.user, tagged (LSM_SEQ_MAX, LSM_T_SEEK) so it sorts
 * before every real entry of u; or `a` itself when no shorter key fits.
 * Either way a <= sep < b in internal-key order, which is what lets a
 * point get read only the one block the index names (docs/formats.md).
 */
static int
lsm_tw_separator(struct kvd_buf *out, struct lsm_slice a,
                 const struct lsm_slice *b)
{
    const uint8_t *au = a.p;
    size_t an = a.n - LSM_TRAILER_BYTES;
    size_t cut = 0; /* length of the shortened user key; 0 = none */
    uint8_t tr[LSM_TRAILER_BYTES];

    if (b != NULL) {
        const uint8_t *bu = b->p;
        size_t bn = b->n - LSM_TRAILER_BYTES;
        size_t min = an < bn ? an : bn;
        size_t d = 0;
        while (d < min && au[d] == bu[d]) {
            d++;
        }
        if (d < min && au[d] < 0xff && au[d] + 1 < bu[d]) {
            cut = d + 1;
        }
    } else {
        for (size_t i = 0; i < an; i++) {
            if (au[i] != 0xff) {
                cut = i + 1;
                break;
            }
        }
    }
    out->len = 0;
    if (cut == 0 || cut >= an) {
        return kvd_buf_append(out, a.p, a.n);
    }
    if (kvd_buf_append(out, au, cut) != 0) {
        return KVD_ENOMEM;
    }
    out->p[cut - 1]++;
    kvd_put_le64(tr, lsm_pack_trailer(LSM_SEQ_MAX, LSM_T_SEEK));
    return kvd_buf_append(out, tr, sizeof(tr));
}

static int
lsm_tw_add_index(lsm_tw *w, const struct lsm_slice *next, struct kvd_err *err)
{
    struct kvd_buf sep = KVD_BUF_INIT;
    struct lsm_slice last = {w->last_key.p, w->last_key.len};
    uint8_t h[2 * KVD_VARINT64_MAX_BYTES];
    uint8_t *e;
    int rc;

    rc = lsm_tw_separator(&sep, last, next);
    if (rc == 0) {
        e = kvd_put_varint64(h, w->pending_off);
        e = kvd_put_varint64(e, w->pending_size);
        rc = lsm_bbuilder_add(&w->index, sep.p, sep.len, h, (size_t)(e - h));
    }
    kvd_buf_release(&sep);
    if (rc != 0) {
        return lsm_tw_fail(w, err, rc, "index entry");
    }
    w->pending = false;
    return 0;
}

static int
lsm_tw_flush_block(lsm_tw *w, struct kvd_err *err)
{
    int rc;

    if (w->data.entries == 0) {
        return 0;
    }
    rc = lsm_bbuilder_finish(&w->data);
    if (rc != 0) {
        return lsm_tw_fail(w, err, rc, "data block");
    }
    w->pending_size = w->data.buf.len;
    rc = lsm_tw_emit(w, w->data.buf.p, w->data.buf.len, LSM_BLOCK_DATA,
                     &w->pending_off, err);
    lsm_bbuilder_reset(&w->data);
    if (rc != 0) {
        return rc;
    }
    w->pending = true;
    w->data_blocks++;
    return 0;
}

/* ---- API ------------------------------------------------------------ */

int
lsm_tw_open(const struct kvd_host *host, int fd,
            const struct lsm_table_opts *opts, lsm_tw **out,
            struct kvd_err *err)
{
    struct lsm_table_opts o = {LSM_TW_DEFAULT_BLOCK, LSM_TW_DEFAULT_RESTART,
                               LSM_TW_DEFAULT_BITS};
    uint8_t *hdr;
    lsm_tw *w;

    *out = NULL;
    if (opts != NULL) {
        o = *opts;
        if (o.block_size == 0) {
            o.block_size = LSM_TW_DEFAULT_BLOCK;
        }
        if (o.restart_interval == 0) {
            o.restart_interval = LSM_TW_DEFAULT_RESTART;
        }
    }
    if (o.restart_interval < 1 || o.bloom_bits_per_key < 0 ||
        o.bloom_bits_per_key > LSM_TW_MAX_BITS_PER_KEY ||
        o.block_size > (size_t)(64u << 20)) {
        return kvd_err_set(err, KVD_EINVAL,
                           "sst writer: bad options (block_size %zu, "
                           "restart_interval %d, bloom_bits_per_key %d)",
                           o.block_size, o.restart_interval,
                           o.bloom_bits_per_key);
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "sst writer: out of memory");
    }
    w->host = host;
    w->fd = fd;
    w->opts = o;
    lsm_bbuilder_init(&w->data, o.restart_interval);
    /* Index: a restart at every entry, so a search compares keys in
     * place and the reader can point at them without copying. */
    lsm_bbuilder_init(&w->index, 1);
    hdr = w->hdr;
    memcpy(hdr, LSM_SST_MAGIC, 4);
    kvd_put_le16(hdr + 4, LSM_SST_VERSION);
    kvd_put_le16(hdr + 6, LSM_SST_KIND_TABLE);
    kvd_put_le64(hdr + 8, 0); /* creation seq: the keys carry theirs */
    if (kvd_buf_reserve(&w->out, LSM_TW_WRITE_BYTES + o.block_size * 2) != 0) {
        lsm_tw_abandon(w);
        return kvd_err_set(err, KVD_ENOMEM, "sst writer: out of memory");
    }
    kvd_buf_append(&w->out, hdr, LSM_SST_HEADER_BYTES);
    *out = w;
    return 0;
}

static int
lsm_tw_push_hash(lsm_tw *w, uint64_t h)
{
    if (w->nhashes == w->hashes_cap) {
        size_t cap = w->hashes_cap < 1024 ? 1024 : w->hashes_cap * 2;
        uint64_t *p = realloc(w->hashes, cap * sizeof(*p));
        if (p == NULL) {
            return KVD_ENOMEM;
        }
        w->hashes = p;
        w->hashes_cap = cap;
    }
    w->hashes[w->nhashes++] = h;
    return 0;
}

int
lsm_tw_add(lsm_tw *w, struct lsm_slice ikey, struct lsm_slice val,
           struct kvd_err *err)
{
    struct lsm_slice last = {w->last_key.p, w->last_key.len};
    bool new_user = true;
    int type;
    int rc;

    if (w->failed != 0) {
        return kvd_err_set(err, w->failed, "sst writer: failed earlier: %s",
                           kvd_strerror(w->failed));
    }
    if (ikey.n < LSM_TRAILER_BYTES || ikey.n > UINT32_MAX ||
        val.n > UINT32_MAX) {
        return kvd_err_set(err, KVD_EINVAL,
                           "sst writer: bad entry (key %zu bytes, value %zu "
                           "bytes)",
                           ikey.n, val.n);
    }
    type = (int)(lsm_ikey_trailer(ikey) & 0xff);
    if (type > LSM_T_PUTX) {
        return kvd_err_set(err, KVD_EINVAL, "sst writer: bad entry type %d",
                           type);
    }
    if (w->entries > 0) {
        if (lsm_ikey_cmp(last, ikey) >= 0) {
            return kvd_err_set(err, KVD_EINVAL,
                               "sst writer: keys out of order");
        }
        new_user = lsm_user_cmp(last.p, last.n - LSM_TRAILER_BYTES, ikey.p,
                                ikey.n - LSM_TRAILER_BYTES) != 0;
    }
    if (w->pending) {
        rc = lsm_tw_add_index(w, &ikey, err);
        if (rc != 0) {
            return rc;
        }
    }
    if (w->opts.bloom_bits_per_key > 0 && new_user) {
        rc = lsm_tw_push_hash(
            w, lsm_bloom_hash(ikey.p, ikey.n - LSM_TRAILER_BYTES));
        if (rc != 0) {
            return lsm_tw_fail(w, err, rc, "filter keys");
        }
    }
    rc = lsm_bbuilder_add(&w->data, ikey.p, ikey.n, val.p, val.n);
    if (rc == 0) {
        w->last_key.len = 0;
        rc = kvd_buf_append(&w->last_key, ikey.p, ikey.n);
    }
    if (rc == 0 && w->entries == 0) {
        rc = kvd_buf_append(&w->smallest, ikey.p, ikey.n);
    }
    if (rc != 0) {
        return lsm_tw_fail(w, err, rc, "data block");
    }
    w->entries++;
    w->tombstones += type == LSM_T_DEL;
    if (lsm_bbuilder_size(&w->data) >= w->opts.block_size) {
        return lsm_tw_flush_block(w, err);
    }
    return 0;
}

uint64_t
lsm_tw_size(const lsm_tw *w)
{
    return w->flushed + w->out.len +
           (w->data.entries > 0 ? lsm_bbuilder_size(&w->data) : 0);
}

uint64_t
lsm_tw_entries(const lsm_tw *w)
{
    return w->entries;
}

void
lsm_table_meta_free(struct lsm_table_meta *m)
{
    if (m == NULL) {
        return;
    }
    free((void *)m->smallest.p);
    free((void *)m->largest.p);
    m->smallest.p = m->largest.p = NULL;
    m->smallest.n = m->largest.n = 0;
}

void
lsm_tw_abandon(lsm_tw *w)
{
    if (w == NULL) {
        return;
    }
    kvd_buf_release(&w->out);
    lsm_bbuilder_release(&w->data);
    lsm_bbuilder_release(&w->index);
    kvd_buf_release(&w->last_key);
    kvd_buf_release(&w->smallest);
    free(w->hashes);
    free(w);
}

static int
lsm_tw_write_filter(lsm_tw *w, uint64_t *off, uint64_t *size,
                    struct kvd_err *err)
{
    size_t n;
    uint8_t *f;
    int rc;

    *off = 0;
    *size = 0;
    if (w->opts.bloom_bits_per_key == 0) {
        return 0;
    }
    n = lsm_bloom_size(w->nhashes, w->opts.bloom_bits_per_key);
    f = malloc(n);
    if (f == NULL) {
        return lsm_tw_fail(w, err, KVD_ENOMEM, "filter block");
    }
    lsm_bloom_build(w->hashes, w->nhashes, w->opts.bloom_bits_per_key, f, n);
    rc = lsm_tw_emit(w, f, n, LSM_BLOCK_FILTER, off, err);
    free(f);
    *size = n;
    return rc;
}

/* Meta block: u64 entries | u64 tombstones | u64 data blocks | u64
 * distinct user keys | varint32 len + smallest | varint32 len + largest */
static int
lsm_tw_write_meta(lsm_tw *w, uint64_t *off, uint64_t *size, struct kvd_err *err)
{
    struct kvd_buf m = KVD_BUF_INIT;
    uint8_t v[KVD_VARINT32_MAX_BYTES];
    uint8_t fx[32];
    int rc;

    kvd_put_le64(fx, w->entries);
    kvd_put_le64(fx + 8, w->tombstones);
    kvd_put_le64(fx + 16, w->data_blocks);
    kvd_put_le64(fx + 24, w->nhashes);
    rc = kvd_buf_append(&m, fx, sizeof(fx));
    if (rc == 0) {
        rc = kvd_buf_append(
            &m, v,
            (size_t)(kvd_put_varint64(v, (uint32_t)w->smallest.len) - v));
    }
    if (rc == 0) {
        rc = kvd_buf_append(&m, w->smallest.p, w->smallest.len);
    }
    if (rc == 0) {
        rc = kvd_buf_append(
            &m, v,
            (size_t)(kvd_put_varint64(v, (uint32_t)w->last_key.len) - v));
    }
    if (rc == 0) {
        rc = kvd_buf_append(&m, w->last_key.p, w->last_key.len);
    }
    if (rc != 0) {
        kvd_buf_release(&m);
        return lsm_tw_fail(w, err, rc, "meta block");
    }
    *size = m.len;
    rc = lsm_tw_emit(w, m.p, m.len, LSM_BLOCK_META, off, err);
    kvd_buf_release(&m);
    return rc;
}

static void *
lsm_dup(const void *p, size_t n)
{
    void *d = malloc(n > 0 ? n : 1);
    if (d != NULL && n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

int
lsm_tw_finish(lsm_tw *w, struct lsm_table_meta *meta, struct kvd_err *err)
{
    uint64_t foff = 0, fsize = 0, moff = 0, msize = 0, ioff = 0, isize = 0;
    uint8_t ft[LSM_SST_FOOTER_BYTES];
    int rc;

    memset(meta, 0, sizeof(*meta));
    if (w->failed != 0) {
        rc = kvd_err_set(err, w->failed, "sst writer: failed earlier: %s",
                         kvd_strerror(w->failed));
        goto out;
    }
    if (w->entries == 0) {
        rc = kvd_err_set(err, KVD_EINVAL, "sst writer: table is empty");
        goto out;
    }
    rc = lsm_tw_flush_block(w, err);
    if (rc == 0 && w->pending) {
        rc = lsm_tw_add_index(w, NULL, err);
    }
    if (rc == 0) {
        rc = lsm_tw_write_filter(w, &foff, &fsize, err);
    }
    if (rc == 0) {
        rc = lsm_tw_write_meta(w, &moff, &msize, err);
    }
    if (rc == 0) {
        rc = lsm_bbuilder_finish(&w->index);
        if (rc != 0) {
            rc = lsm_tw_fail(w, err, rc, "index block");
        }
    }
    if (rc == 0) {
        isize = w->index.buf.len;
        rc = lsm_tw_emit(w, w->index.buf.p, w->index.buf.len, LSM_BLOCK_INDEX,
                         &ioff, err);
    }
    if (rc != 0) {
        goto out;
    }
    kvd_put_le64(ft + 0, ioff);
    kvd_put_le64(ft + 8, isize);
    kvd_put_le64(ft + 16, foff);
    kvd_put_le64(ft + 24, fsize);
    kvd_put_le64(ft + 32, moff);
    kvd_put_le64(ft + 40, msize);
    kvd_put_le64(ft + 48, w->entries);
    memcpy(ft + 56, LSM_SST_FOOTER_MAGIC, 8);
    kvd_put_le32(ft + 64, LSM_SST_VERSION);
    /* The footer's crc also covers the file header, which has no
     * checksum of its own. */
    kvd_put_le32(ft + 68, kvd_crc32c_mask(kvd_crc32c(
                              kvd_crc32c(0, w->hdr, sizeof(w->hdr)), ft, 68)));
    if (kvd_buf_append(&w->out, ft, sizeof(ft)) != 0) {
        rc = lsm_tw_fail(w, err, KVD_ENOMEM, "footer");
        goto out;
    }
    rc = lsm_tw_write_out(w, err);
    if (rc != 0) {
        goto out;
    }
    meta->file_size = w->flushed;
    meta->entries = w->entries;
    meta->tombstones = w->tombstones;
    meta->smallest.p = lsm_dup(w->smallest.p, w->smallest.len);
    meta->smallest.n = w->smallest.len;
    meta->largest.p = lsm_dup(w->last_key.p, w->last_key.len);
    meta->largest.n = w->last_key.len;
    if (meta->smallest.p == NULL || meta->largest.p == NULL) {
        lsm_table_meta_free(meta);
        memset(meta, 0, sizeof(*meta));
        rc = kvd_err_set(err, KVD_ENOMEM, "sst writer: out of memory");
    }
out:
    lsm_tw_abandon(w);
    return rc;
}
