/*
 * alog_file.c -- file helpers of the log engine: paths, full reads and
 * writes, directory fsync, segment objects and the segment list.
 *
 * Every call that touches a file goes through db->io (struct kvd_io), so a
 * test can fail any write or fsync. Helpers return 0 or a negative kvd
 * status; they never turn the engine read-only themselves: the caller
 * knows whether the failure lost an acknowledged write and says so through
 * kvd_ro_fail().
 */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void
alog_seg_path(const alog_db *db, char *buf, uint32_t id, const char *ext)
{
    snprintf(buf, ALOG_PATH_BYTES, "%s/%08u.%s", db->dir, (unsigned)id, ext);
}

int
alog_fsync_dir(alog_db *db)
{
    return kvd_file_fsync_dir(db->io, db->dir);
}

int64_t
alog_thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct alog_seg *
alog_seg_new(uint32_t id, int fd, int kind, uint64_t created_seq)
{
    struct alog_seg *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->id = id;
    s->fd = fd;
    s->kind = kind;
    s->created_seq = created_seq;
    atomic_init(&s->size, ALOG_FILE_HDR_BYTES);
    atomic_init(&s->live_bytes, 0);
    atomic_init(&s->hint_bytes, 0);
    atomic_init(&s->min_seq, kind == ALOG_FILE_DATA ? created_seq : UINT64_MAX);
    atomic_init(&s->max_seq, 0);
    atomic_init(&s->refs, 1);
    atomic_init(&s->ixslot, 0);
    return s;
}

static void
seg_map(alog_db *db, struct alog_seg *s, uint64_t len, int writable)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    void *p;

    len = (len + page - 1) / page * page;
    if (len == 0 || len > SIZE_MAX) {
        return;
    }
    p = mmap(NULL, (size_t)len, PROT_READ | (writable ? PROT_WRITE : 0),
             MAP_SHARED, s->fd, 0);
    if (p == MAP_FAILED) {
        ALOG_LOG(db, KVD_LOG_DEBUG,
                 "log: mmap %s/%08u.data (%llu bytes): %s; reading it with "
                 "pread",
                 db->dir, (unsigned)s->id, (unsigned long long)len,
                 strerror(errno));
        return;
    }
    /* point reads: read-ahead would fill the page cache with neighbours */
    madvise(p, (size_t)len, MADV_RANDOM);
    s->map = p;
    s->map_len = len;
    s->writable = writable;
}

void
alog_seg_map(alog_db *db, struct alog_seg *s, uint64_t len)
{
    seg_map(db, s, len, 0);
}

/* Can appends to a new segment be stores into its map? Only when the host
 * can preallocate through db->io (ABI 1.6): without that a store past the
 * allocated blocks could fault on a full disk. */
static int
can_write_mapped(const alog_db *db)
{
    return KVD_HAS(db->io, struct kvd_io, fallocate) &&
           db->io->fallocate != NULL;
}

int
alog_seg_allocate(alog_db *db, struct alog_seg *s, uint64_t end)
{
    uint64_t want = (end + ALOG_PREALLOC_BYTES - 1) / ALOG_PREALLOC_BYTES *
                    ALOG_PREALLOC_BYTES;

    if (want > s->map_len) {
        want = s->map_len;
    }
    if (want <= s->alloc_end) {
        return 0;
    }
    if (db->io->fallocate(s->fd, (off_t)s->alloc_end,
                          (off_t)(want - s->alloc_end)) != 0) {
        return kvd_errno_status(errno);
    }
    s->alloc_end = want;
    return 0;
}

/*
 * Why: every store into a page of the map that no one touched yet is a
 * page fault, and a new page cache page besides, one per ~30 records of
 * 100 bytes. One MADV_POPULATE_WRITE a step maps them all at once, at a
 * fraction of the cost (docs/benchmarks.md: fillrandom +15-25%). Pages
 * populated but not yet written are dirty zeros, so a sync may write up
 * to one step of zeros more than it would have: the step is kept small.
 * (MADV_POPULATE_READ would leave a write fault per page: slower.)
 */
void
alog_seg_populate(struct alog_seg *s, uint64_t end)
{
#ifdef MADV_POPULATE_WRITE
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t from = s->pop_end / page * page;
    uint64_t to = (end + ALOG_POPULATE_BYTES - 1) / ALOG_POPULATE_BYTES *
                  ALOG_POPULATE_BYTES;

    if (to > s->alloc_end) {
        to = s->alloc_end / page * page;
    }
    if (s->map == NULL || !s->writable || to <= from) {
        return;
    }
    (void)madvise((void *)(uintptr_t)(s->map + from), (size_t)(to - from),
                  MADV_POPULATE_WRITE);
    s->pop_end = to;
#else
    (void)s;
    (void)end;
#endif
}

/*
 * Why: without it, the whole segment is written back by the fdatasync of
 * the roll that seals it, which the writer waits for (about 70 ms for a
 * 64 MiB segment here, 8% of a fillrandom). Started a few MiB at a time,
 * that writeback runs while appends go on, and the roll's (or the
 * everysec commit's) fdatasync finds little left to do. The pages are
 * unmapped first, like a sealed segment's (alog_seg_trim): writeback must
 * write-protect every page still mapped dirty, a TLB shootdown of the
 * other CPU each; the range is unmapped with one. Readers map them back.
 */
int
alog_seg_writeback(alog_db *db, struct alog_seg *s, uint64_t end)
{
    uint64_t from = s->wb_end;
    uint64_t page;
    uint64_t to;

    /* called for every append: the common case returns here */
    if (end < from + ALOG_WRITEBACK_BYTES || s->map == NULL || !s->writable) {
        return 0;
    }
    page = (uint64_t)sysconf(_SC_PAGESIZE);
    to = end / page * page;
    if (to < from + ALOG_WRITEBACK_BYTES) {
        return 0;
    }
    s->wb_end = to;
    (void)madvise((void *)(uintptr_t)(s->map + from), (size_t)(to - from),
                  MADV_DONTNEED);
    /* A host older than ABI 1.7 cannot start it: the fdatasyncs do all of
     * it, as before. An error of the writeback itself stays on the file
     * for the next fdatasync; one returned here (EIO, ENOSPC, ENOMEM)
     * fails this write like a failed pwrite. */
    if (KVD_HAS(db->io, struct kvd_io, writeback) &&
        db->io->writeback != NULL &&
        db->io->writeback(s->fd, (off_t)from, (off_t)(to - from)) != 0) {
        return kvd_errno_status(errno);
    }
    return 0;
}

int
alog_seg_trim(alog_db *db, struct alog_seg *s)
{
    uint64_t size = atomic_load(&s->size);

    if (s->alloc_end > size) {
        if (db->io->ftruncate(s->fd, (off_t)size) != 0) {
            return kvd_errno_status(errno);
        }
        s->alloc_end = size;
    }
    if (s->writable) {
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        uint64_t end = (size + page - 1) / page * page;

        /* sealed: no store may reach it any more */
        mprotect((void *)s->map, (size_t)s->map_len, PROT_READ);
        /* and the pages written since the last writeback step unmapped
         * from this process (the page cache keeps them, dirty ones stay
         * dirty: the map is shared; the ftruncate above removed those
         * past the end). Why: the sync that follows has to write-protect
         * every page still mapped dirty, one TLB shootdown of the other
         * CPU per page; unmapping the range takes one for all. Readers
         * fault pages back in, 16 at a time (docs/benchmarks.md). */
        if (end > s->wb_end && end <= s->map_len) {
            (void)madvise((void *)(uintptr_t)(s->map + s->wb_end),
                          (size_t)(end - s->wb_end), MADV_DONTNEED);
        }
        s->writable = 0;
    }
    return 0;
}

/*
 * Create segment `id`: the header is written to NNNNNNNN.data.tmp and
 * synced; unless `tmp` is set (a merge output, renamed when complete) the
 * file is then renamed into place and the directory synced, so a segment
 * either exists with a full header or not at all.
 */
int
alog_seg_create(alog_db *db, uint32_t id, int kind, uint64_t created_seq,
                int tmp, struct alog_seg **out)
{
    char tpath[ALOG_PATH_BYTES];
    char path[ALOG_PATH_BYTES];
    unsigned char hdr[ALOG_FILE_HDR_BYTES];
    struct alog_seg *s;
    int fd;
    int rc;

    alog_seg_path(db, tpath, id, "data.tmp");
    alog_seg_path(db, path, id, "data");
    fd = db->io->open(tpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return kvd_errno_status(errno);
    }
    alog_file_hdr_encode(hdr, kind, created_seq);
    rc = kvd_file_write_full(db->io, fd, hdr, sizeof(hdr), 0);
    if (rc == 0 && !tmp) {
        kvd_counter_add(&db->c.fsyncs, 1);
        if (db->io->fsync(fd) != 0) {
            rc = kvd_errno_status(errno);
        } else if (db->io->rename(tpath, path) != 0) {
            rc = kvd_errno_status(errno);
        } else {
            rc = alog_fsync_dir(db);
        }
    }
    if (rc != 0) {
        db->io->close(fd);
        return rc;
    }
    s = alog_seg_new(id, fd, kind, created_seq);
    if (s == NULL) {
        db->io->close(fd);
        return KVD_ENOMEM;
    }
    s->io = db->io;
    s->alloc_end = ALOG_FILE_HDR_BYTES;
    /* merge outputs (tmp) are written with pwrite and never preallocated */
    seg_map(db, s, db->opts.segment_size,
            kind == ALOG_FILE_DATA && !tmp && can_write_mapped(db));
    *out = s;
    return 0;
}

void
alog_seg_ref(struct alog_seg *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void
alog_seg_unref(alog_db *db, struct alog_seg *s)
{
    (void)db;
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        if (s->map != NULL) {
            munmap((void *)s->map, (size_t)s->map_len);
        }
        if (s->fd >= 0) {
            s->io->close(s->fd);
        }
        alog_hint_buf_free(s->hint_ready);
        free(s);
    }
}

int
alog_segs_add_locked(alog_db *db, struct alog_seg *s)
{
    size_t i;

    if (db->nsegs == db->segs_cap) {
        size_t cap = db->segs_cap ? db->segs_cap * 2 : 16;
        struct alog_seg **n = realloc(db->segs, cap * sizeof(*n));
        if (n == NULL) {
            return KVD_ENOMEM;
        }
        db->segs = n;
        db->segs_cap = cap;
    }
    i = db->nsegs;
    while (i > 0 && db->segs[i - 1]->id > s->id) {
        db->segs[i] = db->segs[i - 1];
        i--;
    }
    db->segs[i] = s;
    db->nsegs++;
    if (s->id >= db->next_id) {
        db->next_id = s->id + 1;
    }
    return 0;
}

void
alog_segs_remove_locked(alog_db *db, struct alog_seg *s)
{
    /* no index entry points at a segment that leaves the list */
    alog_index_seg_forget(&db->ix, s);
    for (size_t i = 0; i < db->nsegs; i++) {
        if (db->segs[i] == s) {
            for (size_t j = i + 1; j < db->nsegs; j++) {
                db->segs[j - 1] = db->segs[j];
            }
            db->nsegs--;
            return;
        }
    }
}
