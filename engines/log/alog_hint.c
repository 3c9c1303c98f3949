/*
 * alog_hint.c -- hint files: for each immutable segment NNNNNNNN.data a
 * NNNNNNNN.hint lists every record (key, seq, expiry, offset, value length,
 * kind) so that recovery rebuilds the index without reading values.
 *
 * A hint is an optimisation only: it is written whole under a temporary
 * name and renamed, it ends with a trailer holding the length of the data
 * file it describes and a crc over the whole file, and the record it
 * places last must be found, valid and identical in the data file; any
 * mismatch makes recovery scan the data file instead. A hint never stops
 * an open. Hints are written for sealed segments (in the background) and,
 * at a clean close, for the active one after it is synced. Their entries
 * are collected as records are appended (after the write succeeded, so a
 * hint never names a record its file lacks); only segments found at open
 * without a hint, or whose collection ran out of memory, are scanned. A
 * segment is
 * never appended to again once its run ends (recovery always starts a new
 * one), so a hint that matched when written keeps matching.
 */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

/*
 * Room for `extra` more bytes in m. Why a mapping of its own and not the
 * heap: a hint file is built whole, about 43 bytes a record (19 MB for a
 * 64 MiB segment of small records), by the worker, and freed once
 * written. From the heap, glibc kept that memory resident in the worker's
 * malloc arena (an arena's top is trimmed only past twice the largest
 * block ever freed, and malloc_trim does not trim it): 16-25 MB, up to 25
 * bytes a key at 1,000,000 keys. Unmapped, it goes back at once; grown
 * with mremap, the bytes are not copied. 0 or KVD_ENOMEM (m unchanged).
 */
static int
hint_mem_reserve(struct alog_hint_mem *m, size_t extra)
{
    size_t cap = m->cap ? m->cap : ((size_t)64 << 10);
    void *p;

    if (extra > SIZE_MAX / 4 - m->len) {
        return KVD_ENOMEM;
    }
    if (m->len + extra <= m->cap) {
        return 0;
    }
    while (cap < m->len + extra) {
        cap *= 2;
    }
    if (m->p == NULL) {
        p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
    } else {
#ifdef MREMAP_MAYMOVE
        p = mremap(m->p, m->cap, cap, MREMAP_MAYMOVE);
#else
        p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
        if (p != MAP_FAILED) {
            memcpy(p, m->p, m->len);
            munmap(m->p, m->cap);
        }
#endif
    }
    if (p == MAP_FAILED) {
        return KVD_ENOMEM;
    }
    m->p = p;
    m->cap = cap;
    return 0;
}

static void
hint_mem_release(struct alog_hint_mem *m)
{
    if (m->p != NULL) {
        munmap(m->p, m->cap);
    }
    memset(m, 0, sizeof(*m));
}

/* Room for `extra` bytes after the file header, written on first use. */
static int
hint_start(struct alog_hint_buf *hb, size_t extra)
{
    size_t hdr = hb->buf.len == 0 ? ALOG_FILE_HDR_BYTES : 0;

    if (hint_mem_reserve(&hb->buf, hdr + extra) != 0) {
        return KVD_ENOMEM;
    }
    if (hdr != 0) {
        alog_file_hdr_encode(hb->buf.p, ALOG_FILE_HINT, 0);
        hb->buf.len = ALOG_FILE_HDR_BYTES;
    }
    return 0;
}

int
alog_hint_add(struct alog_hint_buf *hb, const struct alog_hint_ent *e,
              const void *key)
{
    size_t need = ALOG_HINT_ENT_BYTES + (size_t)e->klen;
    unsigned char *p;

    /* room for the trailer is kept, so hint_finish cannot fail */
    if (hint_start(hb, need + ALOG_HINT_TRAILER_BYTES) != 0) {
        return KVD_ENOMEM;
    }
    p = hb->buf.p + hb->buf.len;
    alog_hint_ent_encode(p, e);
    memcpy(p + ALOG_HINT_ENT_BYTES, key, e->klen);
    hb->buf.len += need;
    hb->count++;
    return 0;
}

void
alog_hint_buf_release(struct alog_hint_buf *hb)
{
    free(hb->offs);
    hint_mem_release(&hb->buf);
    memset(hb, 0, sizeof(*hb));
}

/* Append the trailer; the buffer then holds the whole file. */
static int
hint_finish(struct alog_hint_buf *hb, uint64_t data_bytes)
{
    unsigned char *t;

    /* an empty segment gets its header here */
    if (hint_start(hb, ALOG_HINT_TRAILER_BYTES) != 0) {
        return KVD_ENOMEM;
    }
    t = hb->buf.p + hb->buf.len;
    alog_put_u64(t, data_bytes);
    alog_put_u64(t + 8, hb->count);
    alog_put_u32(t + 16, ALOG_HINT_TRAILER_MAGIC);
    alog_put_u32(t + 20,
                 kvd_crc32c_mask(kvd_crc32c(0, hb->buf.p, hb->buf.len + 20)));
    hb->buf.len += ALOG_HINT_TRAILER_BYTES;
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
        rc = kvd_file_replace(db->io, path, hb->buf.p, hb->buf.len, NULL);
    } else {
        /* a merge output: written and synced now, renamed at commit */
        alog_seg_path(db, tpath, seg->id, "hint.tmp");
        fd =
            db->io->open(tpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            return kvd_errno_status(errno);
        }
        rc = kvd_file_write_full(db->io, fd, hb->buf.p, hb->buf.len, 0);
        if (rc == 0 && db->io->fsync(fd) != 0) {
            rc = kvd_errno_status(errno);
        }
        db->io->close(fd);
    }
    if (rc == 0) {
        atomic_store(&seg->hint_bytes, hb->buf.len);
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

struct alog_hint_buf *
alog_hint_collector(alog_db *db)
{
    if (!db->opts.hint_files) {
        return NULL;
    }
    return calloc(1, sizeof(struct alog_hint_buf));
}

void
alog_hint_buf_free(struct alog_hint_buf *hb)
{
    if (hb != NULL) {
        alog_hint_buf_release(hb);
        free(hb);
    }
}

void
alog_hint_note_locked(alog_db *db, const unsigned char *buf, uint64_t total,
                      uint64_t at)
{
    struct alog_hint_buf *hb = db->ahint;
    uint64_t pos = 0;

    if (hb == NULL) {
        return;
    }
    while (pos < total) {
        struct alog_rec_hdr h;
        if (hb->noffs == hb->offs_cap) {
            size_t cap = hb->offs_cap ? hb->offs_cap * 2 : 4096;
            uint32_t *n = realloc(hb->offs, cap * sizeof(*n));
            if (n == NULL) {
                /* no memory: the segment gets a scan instead */
                alog_hint_buf_free(hb);
                db->ahint = NULL;
                return;
            }
            hb->offs = n;
            hb->offs_cap = cap;
        }
        hb->offs[hb->noffs++] = (uint32_t)(at + pos);
        alog_rec_hdr_decode(buf + pos, &h);
        pos += alog_rec_total(&h);
    }
}

/* The record at off in seg: from its map, or read into *heap (freed by
 * the caller). NULL when it cannot be read. */
static const unsigned char *
noted_rec(alog_db *db, struct alog_seg *seg, uint32_t off, unsigned char **heap)
{
    unsigned char hdr[ALOG_REC_HDR_BYTES];
    const unsigned char *p = alog_seg_at(seg, off, ALOG_REC_HDR_BYTES);
    struct alog_rec_hdr h;
    uint64_t total;
    size_t got = 0;

    if (p == NULL) {
        if (kvd_file_read_full(db->io, seg->fd, hdr, sizeof(hdr), off, &got) !=
                0 ||
            got != sizeof(hdr)) {
            return NULL;
        }
        p = hdr;
    }
    alog_rec_hdr_decode(p, &h);
    total = alog_rec_total(&h);
    p = alog_seg_at(seg, off, total);
    if (p != NULL) {
        return p;
    }
    free(*heap);
    *heap = malloc(total);
    if (*heap == NULL ||
        kvd_file_read_full(db->io, seg->fd, *heap, total, off, &got) != 0 ||
        got != total) {
        return NULL;
    }
    return *heap;
}

/* Hint entries of the records noted at their append (ready->offs): read
 * from the segment's map, no scan, no checksum (they were just written). */
static int
hint_from_offsets(alog_db *db, struct alog_seg *seg,
                  const struct alog_hint_buf *ready, struct alog_hint_buf *hb)
{
    unsigned char *heap = NULL;
    uint64_t records = 0;
    int rc = 0;

    for (size_t i = 0; i < ready->noffs && rc == 0; i++) {
        const unsigned char *p = noted_rec(db, seg, ready->offs[i], &heap);
        rc = p == NULL ? KVD_EIO
                       : alog_scan_emit(seg, p, ready->offs[i], hint_collect,
                                        hb, &records);
    }
    free(heap);
    return rc;
}

static int
hint_write(alog_db *db, struct alog_seg *seg)
{
    struct alog_hint_buf hb = {0};
    struct alog_hint_buf *ready;
    struct alog_scan_result res;
    uint64_t size = atomic_load(&seg->size);
    int rc;

    pthread_mutex_lock(&db->seg_mu);
    ready = seg->hint_ready;
    seg->hint_ready = NULL;
    pthread_mutex_unlock(&db->seg_mu);
    if (ready != NULL) {
        /* every record of the segment was noted when it was appended */
        rc = hint_from_offsets(db, seg, ready, &hb);
        alog_hint_buf_free(ready);
        if (rc == 0) {
            rc = alog_hint_save(db, seg, &hb, size, 0);
            alog_hint_buf_release(&hb);
            return rc;
        }
        alog_hint_buf_release(&hb);
        memset(&hb, 0, sizeof(hb));
    }
    kvd_counter_add(&db->c.hint_scans, 1);
    rc = alog_scan_segment(db, seg, size, 0, 0, hint_collect, &hb, &res);
    if (rc == 0) {
        rc = alog_hint_save(db, seg, &hb, size, 0);
    }
    alog_hint_buf_release(&hb);
    return rc;
}

/* Counted once the buffer is unmapped: without merges (whose outputs
 * count too), a count equal to the rolls means every sealed segment's
 * hint write is done and its memory back
 * (test_log_resident_memory_per_key). */
int
alog_hint_write(alog_db *db, struct alog_seg *seg)
{
    int rc = hint_write(db, seg);

    if (rc == 0) {
        kvd_counter_add(&db->c.hint_files_written, 1);
    }
    return rc;
}

/*
 * Check every entry's shape; *tail gets the position in buf of the entry
 * with the highest offset (0 when there is none). KVD_ECORRUPT if any
 * entry is malformed or the count is not the trailer's.
 */
static int
hint_check_entries(const unsigned char *buf, uint64_t end, uint64_t data_size,
                   uint64_t want_count, uint64_t *tail)
{
    uint64_t count = 0;
    uint64_t best_off = 0;
    uint64_t pos;

    *tail = 0;
    for (pos = ALOG_FILE_HDR_BYTES; pos < end;) {
        struct alog_hint_ent e;
        if (end - pos < ALOG_HINT_ENT_BYTES) {
            return KVD_ECORRUPT;
        }
        alog_hint_ent_decode(buf + pos, &e);
        if ((e.kind != ALOG_REC_PUT && e.kind != ALOG_REC_DEL) || e.klen == 0 ||
            end - pos - ALOG_HINT_ENT_BYTES < e.klen ||
            e.off < ALOG_FILE_HDR_BYTES ||
            (uint64_t)e.off + alog_rec_bytes(e.klen, e.vlen) > data_size) {
            return KVD_ECORRUPT;
        }
        if (*tail == 0 || e.off > best_off) {
            best_off = e.off;
            *tail = pos;
        }
        pos += ALOG_HINT_ENT_BYTES + e.klen;
        count++;
    }
    return count == want_count ? 0 : KVD_ECORRUPT;
}

/*
 * Does the hint belong to this data file? Its length matching (checked by
 * the caller) is not enough on its own, so the record the hint places last
 * is read back from the data file: it must be a valid record (crc) with
 * exactly the hint entry's kind, key, value length, seq and expiry. One
 * small pread per segment. A hint with no entry only fits a data file with
 * no record.
 */
static int
hint_matches_data(alog_db *db, struct alog_seg *seg, const unsigned char *buf,
                  uint64_t tail, uint64_t data_size)
{
    unsigned char stack[512];
    unsigned char *rec = stack;
    struct alog_hint_ent e;
    struct alog_rec_hdr h;
    uint64_t total;
    size_t got = 0;
    int ok = 0;

    if (tail == 0) {
        return data_size == ALOG_FILE_HDR_BYTES ? 0 : KVD_ECORRUPT;
    }
    alog_hint_ent_decode(buf + tail, &e);
    total = alog_rec_bytes(e.klen, e.vlen);
    if (total > sizeof(stack)) {
        rec = malloc(total);
        if (rec == NULL) {
            return KVD_ENOMEM;
        }
    }
    if (kvd_file_read_full(db->io, seg->fd, rec, total, e.off, &got) == 0 &&
        got == total) {
        alog_rec_hdr_decode(rec, &h);
        ok = (h.flags & (uint8_t)~ALOG_REC_IN_BATCH) == 0 && h.kind == e.kind &&
             h.klen == e.klen && h.vlen == e.vlen && h.seq == e.seq &&
             h.expire_ms == e.expire_ms &&
             memcmp(rec + ALOG_REC_HDR_BYTES, buf + tail + ALOG_HINT_ENT_BYTES,
                    e.klen) == 0 &&
             alog_rec_crc_ok(rec, total);
    }
    if (rec != stack) {
        free(rec);
    }
    return ok ? 0 : KVD_ECORRUPT;
}

int
alog_hint_open(alog_db *db, struct alog_seg *seg, uint64_t data_size,
               struct alog_hint_view *v, uint64_t *hinted_bytes)
{
    char path[ALOG_PATH_BYTES];
    struct alog_file_hdr fh;
    const unsigned char *buf;
    uint64_t size;
    uint64_t end;
    uint64_t tail;
    size_t got;
    int64_t t0 = kvd_mono_us(db->host);
    int fd;
    int rc;

    memset(v, 0, sizeof(*v));
    v->seg = seg;
    *hinted_bytes = 0;
    alog_seg_path(db, path, seg->id, "hint");
    fd = db->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        return errno == ENOENT ? KVD_ENOTFOUND : KVD_ECORRUPT;
    }
    rc = kvd_file_size(fd, &size);
    if (rc != 0 || size < ALOG_FILE_HDR_BYTES + ALOG_HINT_TRAILER_BYTES ||
        size > SIZE_MAX) {
        rc = KVD_ECORRUPT;
        goto out;
    }
    /* one mapping, its pages read in by one call: no copy into a buffer
     * (reading into the heap is the fallback when the mapping fails) */
    v->map =
        mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (v->map != MAP_FAILED) {
        v->map_bytes = (size_t)size;
        buf = v->map;
    } else {
        v->map = NULL;
        v->heap = malloc((size_t)size);
        if (v->heap == NULL) {
            rc = KVD_ENOMEM;
            goto out;
        }
        rc = kvd_file_read_full(db->io, fd, v->heap, size, 0, &got);
        if (rc != 0 || got != size) {
            rc = KVD_ECORRUPT;
            goto out;
        }
        buf = v->heap;
    }
    end = size - ALOG_HINT_TRAILER_BYTES;
    v->count = alog_get_u64(buf + end + 8);
    if (alog_file_hdr_decode(buf, &fh) != 0 || fh.kind != ALOG_FILE_HINT ||
        alog_get_u32(buf + end + 16) != ALOG_HINT_TRAILER_MAGIC ||
        kvd_crc32c_mask(kvd_crc32c(0, buf, size - 4)) !=
            alog_get_u32(buf + size - 4)) {
        rc = KVD_ECORRUPT;
        goto out;
    }
    *hinted_bytes = alog_get_u64(buf + end);
    if (*hinted_bytes != data_size) {
        rc = KVD_ECORRUPT;
        goto out;
    }
    /* Everything is checked before the first entry is used: a hint
     * rejected half way would leave entries in the index that the scan
     * which replaces it would not correct (same seq). */
    rc = hint_check_entries(buf, end, data_size, v->count, &tail);
    if (rc == 0) {
        rc = hint_matches_data(db, seg, buf, tail, data_size);
    }
    if (rc == 0) {
        v->buf = buf;
        v->end = end;
        v->bytes = size;
    }
out:
    db->io->close(fd);
    if (rc != 0) {
        alog_hint_close(v);
    }
    db->recovery_hint_read_us += kvd_mono_us(db->host) - t0;
    return rc;
}

void
alog_hint_close(struct alog_hint_view *v)
{
    if (v->map != NULL) {
        munmap(v->map, v->map_bytes);
    }
    free(v->heap);
    v->map = NULL;
    v->heap = NULL;
    v->buf = NULL;
}

/* The hash of every entry of v (stored at *h, advanced) and the records
 * per shard. */
static void
hint_hash_pass(const struct alog_index *ix, const struct alog_hint_view *v,
               uint64_t **h, uint64_t recs[ALOG_SHARDS],
               uint64_t bytes[ALOG_SHARDS])
{
    uint64_t *o = *h;

    for (uint64_t pos = ALOG_FILE_HDR_BYTES; pos < v->end;) {
        const unsigned char *p = v->buf + pos;
        uint16_t klen = alog_get_u16(p + 24);
        uint64_t hash = alog_hash(ix, p + ALOG_HINT_ENT_BYTES, klen);
        recs[hash >> (64 - ALOG_SHARD_BITS)]++;
        bytes[hash >> (64 - ALOG_SHARD_BITS)] +=
            alog_index_bulk_rec_bytes(klen);
        *o++ = hash;
        pos += ALOG_HINT_ENT_BYTES + klen;
    }
    *h = o;
}

/* Records whose staging line is prefetched ahead of the one staged. */
#define ALOG_STAGE_AHEAD 16

/* Staging memory of one bulk build pass: a store whose hint entries need
 * more is built in several passes over the hint files, each for a range
 * of shards, so an open never needs much more than the index itself. */
#define ALOG_STAGE_BUDGET_BYTES (256u << 20)

/* Shards [lo, hi) of a build pass. */
struct stage_range {
    unsigned lo;
    unsigned hi;
};

static int
in_range(const struct stage_range *r, uint64_t hash)
{
    unsigned s = (unsigned)(hash >> (64 - ALOG_SHARD_BITS));
    return s >= r->lo && s < r->hi;
}

/* Stage every entry of v whose shard is in r (hashes from *h, advanced;
 * hend: end of them). */
static int
hint_stage(alog_db *db, struct alog_index_bulk *b,
           const struct alog_hint_view *v, const struct stage_range *r,
           const uint64_t **h, const uint64_t *hend, int64_t now,
           uint64_t *max_seq)
{
    struct alog_seg *seg = v->seg;
    const uint64_t *hp = *h;
    uint64_t lo = atomic_load(&seg->min_seq);
    uint64_t hi = atomic_load(&seg->max_seq);
    uint16_t slot = alog_index_seg_slot(&db->ix, seg);

    if (slot == 0) {
        return KVD_ENOMEM;
    }
    for (uint64_t pos = ALOG_FILE_HDR_BYTES; pos < v->end;) {
        const unsigned char *p = v->buf + pos;
        uint64_t seq = alog_get_u64(p);
        int64_t expire_ms = (int64_t)alog_get_u64(p + 8);
        int dead = p[26] == ALOG_REC_DEL || alog_is_expired(expire_ms, now);
        uint64_t hash = *hp++;
        if (hp + ALOG_STAGE_AHEAD < hend && in_range(r, hp[ALOG_STAGE_AHEAD])) {
            alog_index_bulk_prefetch(b, hp[ALOG_STAGE_AHEAD]);
        }
        if (in_range(r, hash) &&
            alog_index_bulk_add(b, hash, p, slot, dead) != 0) {
            return KVD_ENOMEM;
        }
        lo = seq < lo ? seq : lo;
        hi = seq > hi ? seq : hi;
        pos += ALOG_HINT_ENT_BYTES + alog_get_u16(p + 24);
    }
    atomic_store(&seg->min_seq, lo);
    atomic_store(&seg->max_seq, hi);
    if (hi > *max_seq) {
        *max_seq = hi;
    }
    atomic_store(&seg->hint_bytes, v->bytes);
    *h = hp;
    return 0;
}

/* One worker of the bulk build: the shard ranges first, first + 2, ... */
struct build_job {
    alog_db *db;
    struct alog_hint_view *v;
    size_t n;
    const uint64_t *hashes;
    uint64_t total;
    const uint64_t *recs;
    const uint64_t *bytes;
    const struct stage_range *ranges;
    size_t nranges;
    size_t first;
    int keep_dead;
    int64_t now;
    uint64_t max_seq;
    int64_t cpu_us;
    int rc;
};

static void *
build_main(void *arg)
{
    struct build_job *j = arg;
    int64_t cpu0 = alog_thread_cpu_us();

    for (size_t k = j->first; k < j->nranges && j->rc == 0; k += 2) {
        const struct stage_range *r = &j->ranges[k];
        uint64_t rrecs[ALOG_SHARDS] = {0};
        uint64_t rbytes[ALOG_SHARDS] = {0};
        struct alog_index_bulk b;
        const uint64_t *hc = j->hashes;

        for (unsigned s = r->lo; s < r->hi; s++) {
            rrecs[s] = j->recs[s];
            rbytes[s] = j->bytes[s];
        }
        if (alog_index_bulk_init(&b, rrecs, rbytes) != 0) {
            j->rc = KVD_ENOMEM;
            break;
        }
        for (size_t i = 0; i < j->n && j->rc == 0; i++) {
            j->rc = hint_stage(j->db, &b, &j->v[i], r, &hc,
                               j->hashes + j->total, j->now, &j->max_seq);
        }
        if (j->rc == 0 &&
            alog_index_bulk_build(&j->db->ix, &b, j->keep_dead) != 0) {
            j->rc = KVD_ENOMEM;
        }
        alog_index_bulk_release(&b);
    }
    j->cpu_us = alog_thread_cpu_us() - cpu0;
    return NULL;
}

/* Split the shards into ranges of about half the staging bytes each (so
 * two workers share the build), at most ALOG_STAGE_BUDGET_BYTES / 2 a
 * range (two are staged at once). Returns the count. */
static size_t
split_ranges(const uint64_t bytes[ALOG_SHARDS],
             struct stage_range ranges[ALOG_SHARDS])
{
    uint64_t all = 0;
    uint64_t most;
    size_t k = 0;

    for (unsigned s = 0; s < ALOG_SHARDS; s++) {
        all += bytes[s];
    }
    most = all / 2 + 1;
    if (most > ALOG_STAGE_BUDGET_BYTES / 2) {
        most = ALOG_STAGE_BUDGET_BYTES / 2;
    }
    for (unsigned lo = 0; lo < ALOG_SHARDS;) {
        uint64_t sum = bytes[lo];
        unsigned hi = lo + 1;
        while (hi < ALOG_SHARDS && sum + bytes[hi] <= most) {
            sum += bytes[hi++];
        }
        ranges[k].lo = lo;
        ranges[k].hi = hi;
        k++;
        lo = hi;
    }
    return k;
}

int
alog_hint_build(alog_db *db, struct alog_hint_view *v, size_t n, int keep_dead,
                int64_t now, uint64_t *max_seq, uint64_t *records,
                int64_t *helper_cpu_us)
{
    struct stage_range ranges[ALOG_SHARDS];
    struct build_job jobs[2];
    uint64_t recs[ALOG_SHARDS] = {0};
    uint64_t bytes[ALOG_SHARDS] = {0};
    uint64_t total = 0;
    uint64_t *hashes;
    uint64_t *h;
    pthread_t th;
    int threaded;
    int rc;

    for (size_t i = 0; i < n; i++) {
        total += v[i].count;
    }
    hashes = malloc((total ? total : 1) * sizeof(*hashes));
    if (hashes == NULL) {
        return KVD_ENOMEM;
    }
    /* pass 1: hashes and shard sizes, so staging is sized exactly */
    h = hashes;
    for (size_t i = 0; i < n; i++) {
        hint_hash_pass(&db->ix, &v[i], &h, recs, bytes);
    }
    /* then two workers, each staging and building its ranges of shards
     * (shards are independent; the arena pool and the segment table have
     * their own locks) */
    for (int w = 0; w < 2; w++) {
        jobs[w] = (struct build_job){
            .db = db,
            .v = v,
            .n = n,
            .hashes = hashes,
            .total = total,
            .recs = recs,
            .bytes = bytes,
            .ranges = ranges,
            .first = (size_t)w,
            .keep_dead = keep_dead,
            .now = now,
        };
    }
    jobs[0].nranges = jobs[1].nranges = split_ranges(bytes, ranges);
    threaded = jobs[1].nranges > 1 &&
               pthread_create(&th, NULL, build_main, &jobs[1]) == 0;
    build_main(&jobs[0]);
    if (threaded) {
        pthread_join(th, NULL);
    } else if (jobs[1].nranges > 1) {
        build_main(&jobs[1]);
    }
    free(hashes);
    rc = jobs[0].rc != 0 ? jobs[0].rc : jobs[1].rc;
    for (int w = 0; w < 2; w++) {
        if (jobs[w].max_seq > *max_seq) {
            *max_seq = jobs[w].max_seq;
        }
    }
    *helper_cpu_us += threaded ? jobs[1].cpu_us : 0;
    if (rc == 0) {
        *records += total;
    }
    return rc;
}
