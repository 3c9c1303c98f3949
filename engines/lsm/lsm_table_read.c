/*
 * lsm_table_read.c -- the table reader: open (footer, index, filter and
 * meta read and checked once, then pinned), point lookups, and the
 * two-level table iterator (index -> data block).
 *
 * Open trusts nothing in the file: the footer has its own checksum, every
 * handle is checked to lie inside the file before it is read, every block
 * checksum is verified, and the index is decoded into an array with every
 * entry's handle and key order checked. A file that fails any of this is
 * KVD_ECORRUPT with a message that says what failed, never a crash.
 *
 * A get is: bloom filter (no I/O when it says "absent"), binary search of
 * the in-memory index array, one data block from the cache or one pread,
 * then a binary search of the block's restart points and a short scan.
 * On a cache hit it allocates nothing: the key is rebuilt in a stack
 * buffer and the value points into the pinned block.
 *
 * Thread-safety: after open a table is immutable except for its refcount
 * and statistics (atomics), so any number of threads may get and iterate.
 * pread on a shared fd is safe without a lock.
 */
#include "lsm_table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvd/kit_coding.h"
#include "kvd/kit_crc32c.h"
#include "lsm_block.h"

/* Key buffer on the stack for a get; longer keys fall back to malloc. */
#define LSM_GET_KEY_BYTES 256
#define LSM_FILTER_ALIGN  64

struct lsm_index_ent {
    const uint8_t *key; /* separator, points into index_buf */
    uint32_t klen;
    uint32_t size; /* data block contents bytes (trailer not counted) */
    uint64_t off;
};

/* Fields are fixed after open except `refs` and the counters. */
struct lsm_table {
    const struct kvd_host *host;
    int fd;
    uint64_t file_size;
    lsm_cache *cache; /* borrowed; may be NULL */
    uint64_t cache_id;
    _Atomic long refs;
    struct lsm_index_ent *index;
    size_t nindex;
    uint8_t *index_buf;
    size_t index_bytes;
    uint8_t *filter; /* 64-byte aligned; NULL = no filter */
    size_t filter_len;
    uint8_t *meta_buf;
    size_t meta_bytes;
    struct lsm_slice smallest;
    struct lsm_slice largest;
    uint64_t entries;
    uint64_t tombstones;
    /* Counters bumped by every get: on a cache line of their own, so
     * readers on other cores do not keep stealing the read-only fields. */
    _Alignas(64) _Atomic uint64_t bloom_checks;
    _Atomic uint64_t bloom_negatives;
    _Atomic uint64_t bloom_false_pos;
    _Atomic uint64_t block_reads;
};

#define LSM_STAT_INC(t, f)                                                     \
    atomic_fetch_add_explicit(&(t)->f, 1, memory_order_relaxed)

static void KVD_PRINTF(2, 3)
    lsm_table_log(const lsm_table *t, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (t->host == NULL || t->host->log == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    t->host->log(t->host, KVD_LOG_ERROR, "sst (fd %d, %llu bytes): %s", t->fd,
                 (unsigned long long)t->file_size, msg);
}

/* Read exactly n bytes at off: 0, KVD_EIO (errno kept in *e), or
 * KVD_ECORRUPT when the file ends first. */
static int
lsm_pread_full(const struct kvd_host *host, int fd, void *buf, size_t n,
               uint64_t off, int *e)
{
    uint8_t *p = buf;

    *e = 0;
    while (n > 0) {
        ssize_t r = host->io->pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *e = errno;
            return KVD_EIO;
        }
        if (r == 0) {
            return KVD_ECORRUPT;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* ---- Open ------------------------------------------------------------ */

struct lsm_handle {
    uint64_t off;
    uint64_t size;
};

/* The handle lies in [header, limit) with room for its trailer. */
static bool
lsm_handle_ok(struct lsm_handle h, uint64_t limit)
{
    return h.off >= LSM_SST_HEADER_BYTES && h.size <= LSM_BLOCK_MAX_BYTES &&
           h.off <= limit && limit - h.off >= h.size + LSM_BLOCK_TRAILER_BYTES;
}

/* Read and check one block at open into buf (size + trailer bytes). */
static int
lsm_open_block(lsm_table *t, struct lsm_handle h, int kind, const char *what,
               uint8_t *buf, struct kvd_err *err)
{
    int e;
    int rc =
        lsm_pread_full(t->host, t->fd, buf,
                       (size_t)h.size + LSM_BLOCK_TRAILER_BYTES, h.off, &e);
    if (rc == KVD_EIO) {
        return kvd_err_set(err, rc, "sst: pread %s block at offset %llu: %s",
                           what, (unsigned long long)h.off, strerror(e));
    }
    if (rc != 0) {
        return kvd_err_set(err, rc,
                           "sst: %s block at offset %llu: file ends early",
                           what, (unsigned long long)h.off);
    }
    if (lsm_block_check(buf, (size_t)h.size, kind) != 0) {
        return kvd_err_set(err, KVD_ECORRUPT,
                           "sst: bad checksum in %s block at offset %llu", what,
                           (unsigned long long)h.off);
    }
    return 0;
}

static int
lsm_open_meta(lsm_table *t, struct lsm_handle h, uint64_t footer_entries,
              struct kvd_err *err)
{
    const uint8_t *p;
    const uint8_t *end;
    uint32_t n;
    int rc;

    t->meta_buf = malloc((size_t)h.size + LSM_BLOCK_TRAILER_BYTES);
    if (t->meta_buf == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "sst: out of memory");
    }
    t->meta_bytes = (size_t)h.size + LSM_BLOCK_TRAILER_BYTES;
    rc = lsm_open_block(t, h, LSM_BLOCK_META, "meta", t->meta_buf, err);
    if (rc != 0) {
        return rc;
    }
    p = t->meta_buf;
    end = p + h.size;
    if (h.size < 32) {
        goto bad;
    }
    t->entries = kvd_get_le64(p);
    t->tombstones = kvd_get_le64(p + 8);
    p += 32;
    p = kvd_get_varint32(p, end, &n);
    if (p == NULL || n < LSM_TRAILER_BYTES || n > (size_t)(end - p)) {
        goto bad;
    }
    t->smallest.p = p;
    t->smallest.n = n;
    p += n;
    p = kvd_get_varint32(p, end, &n);
    if (p == NULL || n < LSM_TRAILER_BYTES || n != (size_t)(end - p)) {
        goto bad;
    }
    t->largest.p = p;
    t->largest.n = n;
    if (t->entries != footer_entries || t->entries == 0 ||
        t->tombstones > t->entries ||
        lsm_ikey_cmp(t->smallest, t->largest) > 0) {
        goto bad;
    }
    return 0;
bad:
    return kvd_err_set(err, KVD_ECORRUPT,
                       "sst: malformed meta block at offset %llu",
                       (unsigned long long)h.off);
}

static int
lsm_open_filter(lsm_table *t, struct lsm_handle h, struct kvd_err *err)
{
    size_t n = (size_t)h.size + LSM_BLOCK_TRAILER_BYTES;
    size_t alloc = (n + LSM_FILTER_ALIGN - 1) & ~(size_t)(LSM_FILTER_ALIGN - 1);

    if (h.size == 0 && h.off == 0) {
        return 0; /* written without a filter */
    }
    /* Aligned so that one 64-byte filter line is one cache line. */
    t->filter = aligned_alloc(LSM_FILTER_ALIGN, alloc);
    if (t->filter == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "sst: out of memory");
    }
    t->filter_len = (size_t)h.size;
    return lsm_open_block(t, h, LSM_BLOCK_FILTER, "filter", t->filter, err);
}

/* Decode the index block into t->index. Entries are written with a
 * restart at each one (shared == 0), so keys are used in place. */
static int
lsm_open_index(lsm_table *t, struct lsm_handle h, uint64_t data_end,
               struct kvd_err *err)
{
    struct lsm_block blk;
    const uint8_t *p;
    const uint8_t *end;
    size_t cap;
    int rc;

    t->index_buf = malloc((size_t)h.size + LSM_BLOCK_TRAILER_BYTES);
    if (t->index_buf == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "sst: out of memory");
    }
    t->index_bytes = (size_t)h.size + LSM_BLOCK_TRAILER_BYTES;
    rc = lsm_open_block(t, h, LSM_BLOCK_INDEX, "index", t->index_buf, err);
    if (rc != 0) {
        return rc;
    }
    if (lsm_block_init(&blk, t->index_buf, (size_t)h.size) != 0) {
        goto bad;
    }
    p = blk.data;
    end = blk.data + blk.restarts_off;
    cap = blk.nrestarts; /* one restart per entry */
    t->index = calloc(cap, sizeof(*t->index));
    if (t->index == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "sst: out of memory");
    }
    while (p < end) {
        uint32_t shared, ns, vlen;
        uint64_t off, size;
        const uint8_t *v;
        struct lsm_index_ent *e;

        p = kvd_get_varint32(p, end, &shared);
        p = p != NULL ? kvd_get_varint32(p, end, &ns) : NULL;
        p = p != NULL ? kvd_get_varint32(p, end, &vlen) : NULL;
        if (p == NULL || shared != 0 || ns < LSM_TRAILER_BYTES ||
            (uint64_t)ns + vlen > (uint64_t)(end - p) || t->nindex == cap) {
            goto bad;
        }
        v = kvd_get_varint64(p + ns, p + ns + vlen, &off);
        v = v != NULL ? kvd_get_varint64(v, p + ns + vlen, &size) : NULL;
        if (v != p + ns + vlen || size < 8 ||
            !lsm_handle_ok((struct lsm_handle){off, size}, data_end)) {
            goto bad;
        }
        e = &t->index[t->nindex];
        e->key = p;
        e->klen = ns;
        e->off = off;
        e->size = (uint32_t)size;
        if (t->nindex > 0) {
            struct lsm_index_ent *pe = e - 1;
            struct lsm_slice a = {pe->key, pe->klen};
            struct lsm_slice b = {e->key, e->klen};
            if (lsm_ikey_cmp(a, b) >= 0 || e->off < pe->off + pe->size) {
                goto bad;
            }
        }
        t->nindex++;
        p += ns + vlen;
    }
    if (t->nindex == 0 || t->nindex != cap) {
        goto bad;
    }
    return 0;
bad:
    return kvd_err_set(err, KVD_ECORRUPT,
                       "sst: malformed index block at offset %llu",
                       (unsigned long long)h.off);
}

static void
lsm_table_free(lsm_table *t)
{
    free(t->index);
    free(t->index_buf);
    free(t->filter);
    free(t->meta_buf);
    free(t);
}

int
lsm_table_open(const struct kvd_host *host, int fd, uint64_t file_size,
               lsm_cache *cache, lsm_table **out, struct kvd_err *err)
{
    uint8_t ft[LSM_SST_FOOTER_BYTES];
    uint8_t hdr[LSM_SST_HEADER_BYTES];
    struct lsm_handle ih, fh, mh;
    uint64_t limit, data_end, fentries;
    uint32_t version;
    lsm_table *t;
    int rc;
    int e;

    *out = NULL;
    if (file_size < LSM_SST_HEADER_BYTES + LSM_SST_FOOTER_BYTES) {
        return kvd_err_set(err, KVD_ECORRUPT,
                           "sst: file too short for a table (%llu bytes)",
                           (unsigned long long)file_size);
    }
    /* sizeof is a multiple of the struct's 64-byte alignment */
    t = aligned_alloc(_Alignof(lsm_table), sizeof(*t));
    if (t == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "sst: out of memory");
    }
    memset(t, 0, sizeof(*t));
    t->host = host;
    t->fd = fd;
    t->file_size = file_size;
    t->cache = cache;
    atomic_init(&t->refs, 1);
    limit = file_size - LSM_SST_FOOTER_BYTES;

    rc = lsm_pread_full(host, fd, ft, sizeof(ft), limit, &e);
    if (rc == 0) {
        rc = lsm_pread_full(host, fd, hdr, sizeof(hdr), 0, &e);
    }
    if (rc == KVD_EIO) {
        kvd_err_set(err, rc, "sst: pread footer: %s", strerror(e));
        goto fail;
    }
    if (rc != 0) {
        kvd_err_set(err, rc, "sst: file shorter than its stated size %llu",
                    (unsigned long long)file_size);
        goto fail;
    }
    if (memcmp(ft + 56, LSM_SST_FOOTER_MAGIC, 8) != 0) {
        rc = kvd_err_set(err, KVD_ECORRUPT,
                         "sst: bad footer magic (not a table, or truncated)");
        goto fail;
    }
    if (kvd_crc32c_unmask(kvd_get_le32(ft + 68)) !=
        kvd_crc32c(kvd_crc32c(0, hdr, sizeof(hdr)), ft, 68)) {
        rc = kvd_err_set(
            err, KVD_ECORRUPT,
            "sst: footer checksum mismatch (footer or file header damaged)");
        goto fail;
    }
    version = kvd_get_le32(ft + 64);
    if (version != LSM_SST_VERSION) {
        rc = kvd_err_set(err, KVD_ENOTSUP,
                         "sst: format version %u, this build reads %u",
                         (unsigned)version, (unsigned)LSM_SST_VERSION);
        goto fail;
    }
    if (memcmp(hdr, LSM_SST_MAGIC, 4) != 0 ||
        kvd_get_le16(hdr + 4) != LSM_SST_VERSION ||
        kvd_get_le16(hdr + 6) != LSM_SST_KIND_TABLE) {
        rc = kvd_err_set(err, KVD_ECORRUPT, "sst: bad file header");
        goto fail;
    }
    ih = (struct lsm_handle){kvd_get_le64(ft), kvd_get_le64(ft + 8)};
    fh = (struct lsm_handle){kvd_get_le64(ft + 16), kvd_get_le64(ft + 24)};
    mh = (struct lsm_handle){kvd_get_le64(ft + 32), kvd_get_le64(ft + 40)};
    fentries = kvd_get_le64(ft + 48);
    if (!lsm_handle_ok(ih, limit) || !lsm_handle_ok(mh, limit) ||
        (!(fh.off == 0 && fh.size == 0) && !lsm_handle_ok(fh, limit))) {
        rc =
            kvd_err_set(err, KVD_ECORRUPT,
                        "sst: footer handles outside the file "
                        "(index %llu+%llu, filter %llu+%llu, meta "
                        "%llu+%llu, file %llu bytes)",
                        (unsigned long long)ih.off, (unsigned long long)ih.size,
                        (unsigned long long)fh.off, (unsigned long long)fh.size,
                        (unsigned long long)mh.off, (unsigned long long)mh.size,
                        (unsigned long long)file_size);
        goto fail;
    }
    /* Data blocks end where the first of the other blocks starts. */
    data_end = ih.off < mh.off ? ih.off : mh.off;
    if (fh.size > 0 && fh.off < data_end) {
        data_end = fh.off;
    }
    rc = lsm_open_meta(t, mh, fentries, err);
    if (rc == 0) {
        rc = lsm_open_filter(t, fh, err);
    }
    if (rc == 0) {
        rc = lsm_open_index(t, ih, data_end, err);
    }
    if (rc != 0) {
        goto fail;
    }
    t->cache_id = cache != NULL ? lsm_cache_new_id(cache) : 0;
    *out = t;
    return 0;
fail:
    lsm_table_free(t); /* the caller still owns fd */
    return rc;
}

void
lsm_table_ref(lsm_table *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void
lsm_table_unref(lsm_table *t)
{
    if (t == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        t->host->io->close(t->fd);
        lsm_table_free(t);
    }
}

struct lsm_slice
lsm_table_smallest(const lsm_table *t)
{
    return t->smallest;
}

struct lsm_slice
lsm_table_largest(const lsm_table *t)
{
    return t->largest;
}

uint64_t
lsm_table_entries(const lsm_table *t)
{
    return t->entries;
}

uint64_t
lsm_table_file_size(const lsm_table *t)
{
    return t->file_size;
}

size_t
lsm_table_mem_bytes(const lsm_table *t)
{
    return sizeof(*t) + t->index_bytes + t->nindex * sizeof(*t->index) +
           (t->filter != NULL ? t->filter_len : 0) + t->meta_bytes;
}

void
lsm_table_get_stats(const lsm_table *t, struct lsm_table_stats *st)
{
    st->bloom_checks = atomic_load(&t->bloom_checks);
    st->bloom_negatives = atomic_load(&t->bloom_negatives);
    st->bloom_false_pos = atomic_load(&t->bloom_false_pos);
    st->block_reads = atomic_load(&t->block_reads);
}

/* ---- Blocks ---------------------------------------------------------- */

/* First index entry whose separator is >= (tu, ttr); nindex if none. */
static size_t
lsm_index_find(const lsm_table *t, const void *tu, size_t tun, uint64_t ttr)
{
    size_t lo = 0;
    size_t hi = t->nindex;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct lsm_index_ent *e = &t->index[mid];
        if (lsm_ikey_cmp_parts(e->key, e->klen, tu, tun, ttr) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Pin data block i: from the cache, else one pread (checked, then
 * inserted when fill). */
static int
lsm_table_block(lsm_table *t, size_t i, bool fill, struct lsm_cblock **out)
{
    const struct lsm_index_ent *e = &t->index[i];
    struct lsm_cblock *b;
    int rc;
    int en;

    *out = NULL;
    b = lsm_cache_lookup(t->cache, t->cache_id, e->off);
    if (b != NULL) {
        *out = b;
        return 0;
    }
    b = lsm_cblock_alloc(e->size);
    if (b == NULL) {
        return KVD_ENOMEM;
    }
    rc = lsm_pread_full(t->host, t->fd, b->data,
                        e->size + LSM_BLOCK_TRAILER_BYTES, e->off, &en);
    LSM_STAT_INC(t, block_reads);
    if (rc == KVD_EIO) {
        lsm_table_log(t, "pread data block at offset %llu: %s",
                      (unsigned long long)e->off, strerror(en));
    } else if (rc != 0) {
        lsm_table_log(t, "data block at offset %llu: file ends early",
                      (unsigned long long)e->off);
    } else if (lsm_block_check(b->data, e->size, LSM_BLOCK_DATA) != 0) {
        lsm_table_log(t, "bad checksum in data block at offset %llu",
                      (unsigned long long)e->off);
        rc = KVD_ECORRUPT;
    } else if (lsm_block_init(&b->blk, b->data, e->size) != 0) {
        lsm_table_log(t, "malformed data block at offset %llu",
                      (unsigned long long)e->off);
        rc = KVD_ECORRUPT;
    }
    if (rc != 0) {
        lsm_cblock_release(b);
        return rc;
    }
    if (fill) {
        lsm_cache_insert(t->cache, t->cache_id, e->off, b);
    }
    *out = b;
    return 0;
}

/* ---- Get ------------------------------------------------------------- */

int
lsm_table_get(lsm_table *t, const void *key, size_t klen, uint64_t hash,
              uint64_t snapshot_seq, struct lsm_hit *hit)
{
    uint8_t kbuf[LSM_GET_KEY_BYTES];
    struct lsm_cblock *b;
    struct lsm_bit it;
    uint64_t ttr;
    size_t i;
    int rc;

    hit->pin = NULL;
    if (t->filter != NULL) {
        LSM_STAT_INC(t, bloom_checks);
        if (!lsm_bloom_may_contain(t->filter, t->filter_len, hash)) {
            LSM_STAT_INC(t, bloom_negatives);
            return KVD_ENOTFOUND;
        }
    }
    if (snapshot_seq > LSM_SEQ_MAX) {
        snapshot_seq = LSM_SEQ_MAX;
    }
    ttr = lsm_pack_trailer(snapshot_seq, LSM_T_SEEK);
    i = lsm_index_find(t, key, klen, ttr);
    if (i == t->nindex) {
        goto miss;
    }
    rc = lsm_table_block(t, i, true, &b);
    if (rc != 0) {
        return rc;
    }
    /* The separators make block i the only one that can hold the answer:
     * if the seek runs off its end, the key is not in the table. */
    lsm_bit_init(&it, &b->blk, kbuf, sizeof(kbuf));
    lsm_bit_seek(&it, key, klen, ttr);
    if (it.valid &&
        lsm_user_cmp(it.key, it.klen - LSM_TRAILER_BYTES, key, klen) == 0) {
        uint64_t tr = kvd_get_le64(it.key + klen);
        int type = (int)(tr & 0xff);
        if (type > LSM_T_PUTX) {
            lsm_table_log(t, "bad entry type %d in data block at offset %llu",
                          type, (unsigned long long)t->index[i].off);
            rc = KVD_ECORRUPT;
        } else {
            hit->type = type;
            hit->seq = tr >> 8;
            hit->val.p = it.val;
            hit->val.n = it.vlen;
            hit->pin = b;
            b = NULL;
        }
    } else {
        rc = it.status != 0 ? it.status : KVD_ENOTFOUND;
    }
    lsm_bit_release(&it);
    lsm_cblock_release(b);
    if (rc == KVD_ENOTFOUND) {
        goto miss;
    }
    return rc;
miss:
    if (t->filter != NULL) {
        LSM_STAT_INC(t, bloom_false_pos);
    }
    return KVD_ENOTFOUND;
}

void
lsm_hit_release(struct lsm_hit *hit)
{
    lsm_cblock_release(hit->pin);
    hit->pin = NULL;
}

/* ---- Iterator -------------------------------------------------------- */

/*
 * Read-ahead: a table iterator moving forward block after block reads
 * several consecutive data blocks with one pread into a buffer it owns and
 * reuses (no malloc and no syscall per block). Each block is still checked
 * (checksum, then restart array) when the iterator reaches it, so a bad
 * block inside a window is KVD_ECORRUPT exactly as with single reads, and
 * blocks of the window never reached are never trusted. The window starts
 * at one block after a seek (a short range scan reads no more than it
 * did) and doubles with every sequential step up to LSM_RA_MAX_BYTES;
 * seek_first (a full scan) starts at LSM_RA_FIRST_BYTES. With fill_cache
 * the reached block is copied into its own cache block and inserted, so
 * the cache only ever holds checked blocks.
 */
#define LSM_RA_MIN_BYTES   (16u * 1024)
#define LSM_RA_FIRST_BYTES (64u * 1024)
#define LSM_RA_MAX_BYTES   (256u * 1024)

struct lsm_tit {
    lsm_it base;
    lsm_table *t;
    bool fill;
    size_t idx;                  /* index entry of the current block */
    const struct lsm_block *cur; /* blk->blk or rblk; NULL = no block */
    struct lsm_cblock *blk;      /* pinned, or NULL */
    struct lsm_block rblk;       /* a block decoded in place in ra_buf */
    struct lsm_bit bit;
    int status;
    /* The read-ahead window: ra_buf holds data blocks [ra_lo, ra_hi) of
     * the index, the first at file offset ra_off. */
    uint8_t *ra_buf;
    size_t ra_cap;
    uint64_t ra_off;
    size_t ra_lo, ra_hi;
    size_t ra_next;    /* window bytes for the next read (0 = one block) */
    uint8_t kbuf[128]; /* bit.key starts here; the struct never moves */
};

/* Read a window of blocks starting at block idx (blocks that follow it
 * without a gap, up to ti->ra_next bytes, at least the one block). */
static int
lsm_tit_read_window(struct lsm_tit *ti, size_t idx)
{
    const lsm_table *t = ti->t;
    const struct lsm_index_ent *e = &t->index[idx];
    uint64_t end = e->off + e->size + LSM_BLOCK_TRAILER_BYTES;
    size_t hi = idx + 1;
    size_t n;
    int rc;
    int en;

    while (hi < t->nindex && t->index[hi].off == end &&
           end - e->off + t->index[hi].size + LSM_BLOCK_TRAILER_BYTES <=
               ti->ra_next) {
        end += t->index[hi].size + LSM_BLOCK_TRAILER_BYTES;
        hi++;
    }
    n = (size_t)(end - e->off);
    ti->ra_lo = ti->ra_hi = 0;
    if (n > ti->ra_cap) {
        /* One size for the whole scan: a window never exceeds the max
         * unless a single block does. */
        size_t cap = n < LSM_RA_MAX_BYTES ? LSM_RA_MAX_BYTES : n;
        uint8_t *p = malloc(cap);
        if (p == NULL) {
            return KVD_ENOMEM;
        }
        free(ti->ra_buf);
        ti->ra_buf = p;
        ti->ra_cap = cap;
    }
    rc = lsm_pread_full(t->host, t->fd, ti->ra_buf, n, e->off, &en);
    if (rc == KVD_EIO) {
        lsm_table_log(t, "pread data blocks at offset %llu (%zu bytes): %s",
                      (unsigned long long)e->off, n, strerror(en));
        return rc;
    }
    if (rc != 0) {
        lsm_table_log(t, "data blocks at offset %llu: file ends early",
                      (unsigned long long)e->off);
        return rc;
    }
    ti->ra_off = e->off;
    ti->ra_lo = idx;
    ti->ra_hi = hi;
    return 0;
}

/* Make block idx current from the window (read first when it is not in
 * it): checked, then decoded in place or copied into a cache block. */
static int
lsm_tit_from_window(struct lsm_tit *ti, size_t idx)
{
    lsm_table *t = ti->t;
    const struct lsm_index_ent *e = &t->index[idx];
    const uint8_t *p;
    int rc;

    if (idx < ti->ra_lo || idx >= ti->ra_hi) {
        rc = lsm_tit_read_window(ti, idx);
        if (rc != 0) {
            return rc;
        }
    }
    p = ti->ra_buf + (e->off - ti->ra_off);
    LSM_STAT_INC(t, block_reads);
    if (lsm_block_check(p, e->size, LSM_BLOCK_DATA) != 0) {
        lsm_table_log(t, "bad checksum in data block at offset %llu",
                      (unsigned long long)e->off);
        return KVD_ECORRUPT;
    }
    if (!ti->fill || t->cache == NULL) {
        if (lsm_block_init(&ti->rblk, p, e->size) != 0) {
            goto malformed;
        }
        ti->cur = &ti->rblk;
        return 0;
    }
    ti->blk = lsm_cblock_alloc(e->size);
    if (ti->blk == NULL) {
        return KVD_ENOMEM;
    }
    memcpy(ti->blk->data, p, e->size + LSM_BLOCK_TRAILER_BYTES);
    if (lsm_block_init(&ti->blk->blk, ti->blk->data, e->size) != 0) {
        lsm_cblock_release(ti->blk);
        ti->blk = NULL;
        goto malformed;
    }
    lsm_cache_insert(t->cache, t->cache_id, e->off, ti->blk);
    ti->cur = &ti->blk->blk;
    return 0;
malformed:
    lsm_table_log(t, "malformed data block at offset %llu",
                  (unsigned long long)e->off);
    return KVD_ECORRUPT;
}

/* Make block idx current (releasing the one before), positioned nowhere:
 * from the cache, else from the read-ahead window. `seq` says the scan
 * stepped here from block idx - 1 (grow the window) rather than seeked. */
static void
lsm_tit_load(struct lsm_tit *ti, size_t idx, bool seq)
{
    int rc;

    lsm_cblock_release(ti->blk);
    ti->blk = NULL;
    ti->cur = NULL;
    ti->bit.valid = false;
    ti->idx = idx;
    if (idx >= ti->t->nindex) {
        return;
    }
    if (seq) {
        size_t n = ti->ra_next * 2;
        ti->ra_next = n < LSM_RA_MIN_BYTES   ? LSM_RA_MIN_BYTES
                      : n > LSM_RA_MAX_BYTES ? LSM_RA_MAX_BYTES
                                             : n;
    }
    ti->blk =
        lsm_cache_lookup(ti->t->cache, ti->t->cache_id, ti->t->index[idx].off);
    if (ti->blk != NULL) {
        ti->cur = &ti->blk->blk;
    } else {
        rc = lsm_tit_from_window(ti, idx);
        if (rc != 0) {
            ti->status = rc;
            ti->cur = NULL;
            return;
        }
    }
    lsm_bit_reset(&ti->bit, ti->cur);
}

/* After a move inside a block: take its error, or step to the next
 * block when it ran off the end. */
static void
lsm_tit_settle(struct lsm_tit *ti)
{
    while (ti->cur != NULL && !ti->bit.valid) {
        if (ti->bit.status != 0) {
            ti->status = ti->bit.status;
            lsm_cblock_release(ti->blk);
            ti->blk = NULL;
            ti->cur = NULL;
            return;
        }
        lsm_tit_load(ti, ti->idx + 1, true);
        if (ti->cur != NULL) {
            lsm_bit_seek_first(&ti->bit);
        }
    }
}

static bool
lsm_tit_valid(lsm_it *it)
{
    struct lsm_tit *ti = (struct lsm_tit *)it;
    return ti->status == 0 && ti->cur != NULL && ti->bit.valid;
}

static void
lsm_tit_seek_first(lsm_it *it)
{
    struct lsm_tit *ti = (struct lsm_tit *)it;

    ti->status = 0;
    ti->ra_next = LSM_RA_FIRST_BYTES;
    lsm_tit_load(ti, 0, false);
    if (ti->cur != NULL) {
        lsm_bit_seek_first(&ti->bit);
    }
    lsm_tit_settle(ti);
}

static void
lsm_tit_seek(lsm_it *it, struct lsm_slice target)
{
    struct lsm_tit *ti = (struct lsm_tit *)it;
    size_t tun;
    uint64_t ttr;

    ti->status = 0;
    if (target.n < LSM_TRAILER_BYTES) {
        lsm_tit_load(ti, ti->t->nindex, false);
        ti->status = KVD_EINVAL; /* not an internal key: a caller bug */
        return;
    }
    tun = target.n - LSM_TRAILER_BYTES;
    ttr = lsm_ikey_trailer(target);
    /* A point in the table: one block, until a scan goes on from it. */
    ti->ra_next = 0;
    lsm_tit_load(ti, lsm_index_find(ti->t, target.p, tun, ttr), false);
    if (ti->cur != NULL) {
        lsm_bit_seek(&ti->bit, target.p, tun, ttr);
    }
    lsm_tit_settle(ti);
}

static void
lsm_tit_next(lsm_it *it)
{
    struct lsm_tit *ti = (struct lsm_tit *)it;

    if (!lsm_tit_valid(it)) {
        return;
    }
    lsm_bit_next(&ti->bit);
    lsm_tit_settle(ti);
}

static struct lsm_slice
lsm_tit_key(lsm_it *it)
{
    struct lsm_tit *ti = (struct lsm_tit *)it;
    struct lsm_slice s = {ti->bit.key, ti->bit.klen};
    return s;
}

static struct lsm_slice
lsm_tit_value(lsm_it *it)
{
    struct lsm_tit *ti = (struct lsm_tit *)it;
    struct lsm_slice s = {ti->bit.val, ti->bit.vlen};
    return s;
}

static int
lsm_tit_status(lsm_it *it)
{
    return ((struct lsm_tit *)it)->status;
}

static void
lsm_tit_destroy(lsm_it *it)
{
    struct lsm_tit *ti = (struct lsm_tit *)it;

    if (ti == NULL) {
        return;
    }
    lsm_cblock_release(ti->blk);
    lsm_bit_release(&ti->bit);
    lsm_table_unref(ti->t);
    free(ti->ra_buf);
    free(ti);
}

static const struct lsm_it_ops lsm_tit_ops = {
    .valid = lsm_tit_valid,
    .seek_first = lsm_tit_seek_first,
    .seek = lsm_tit_seek,
    .next = lsm_tit_next,
    .key = lsm_tit_key,
    .value = lsm_tit_value,
    .status = lsm_tit_status,
    .destroy = lsm_tit_destroy,
};

int
lsm_table_iter(lsm_table *t, bool fill_cache, lsm_it **out)
{
    struct lsm_tit *ti = calloc(1, sizeof(*ti));

    *out = NULL;
    if (ti == NULL) {
        return KVD_ENOMEM;
    }
    ti->base.ops = &lsm_tit_ops;
    ti->t = t;
    ti->fill = fill_cache;
    ti->idx = t->nindex;
    lsm_bit_init(&ti->bit, NULL, ti->kbuf, sizeof(ti->kbuf));
    lsm_table_ref(t);
    *out = &ti->base;
    return 0;
}
