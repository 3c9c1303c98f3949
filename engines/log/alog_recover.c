/*
 * alog_recover.c -- rebuilding the index when a store is opened.
 *
 * Steps: finish or forget an interrupted merge (alog_merge_commit_replay),
 * delete temporary files, open every NNNNNNNN.data, then build the index
 * in one bulk pass from every valid hint file, and scan the segments that
 * have none on top of it. Keys resolve by the highest sequence number, so
 * the order of loading does not matter and merge outputs (new ids, old
 * records) need no special case.
 * Tombstones and expired records take part in that resolution (a delete
 * must hide older puts in files loaded later) and are removed from the
 * index at the end.
 *
 * The segment the previous run appended to last (the highest id written by
 * appends) may end in a torn record: it is cut there and a warning names
 * the file and offset. It may also end in zeros that appends preallocated
 * (alog.h): those are cut silently. Damage anywhere else follows the
 * corruption policy in alog_scan.c. After recovery writes always go to a
 * fresh segment.
 *
 * Runs before any other thread of the store exists: no locks are taken.
 * The bulk build (alog_hint_build) runs on this thread and one helper that
 * only touches its own shards, the block pool and the segment table
 * (those two have their own leaf locks) and joins before it returns.
 */
#include "alog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALOG_PROGRESS_MIN_BYTES (64ull << 20)
#define ALOG_PROGRESS_EVERY_MS  1000

struct rec_ctx {
    alog_db *db;
    int64_t now;
    uint64_t max_seq;
    uint64_t records;
    int64_t helper_cpu_us; /* CPU time of the bulk build's helper thread */
    int enomem;
};

/* Apply one record (from a hint or a scan) to the index. */
static int
rec_apply(void *arg, struct alog_seg *seg, const struct alog_scan_rec *r)
{
    struct rec_ctx *c = arg;
    uint64_t hash =
        r->hash != 0 ? r->hash : alog_hash(&c->db->ix, r->key, r->h.klen);
    struct alog_shard *sh = alog_index_shard(&c->db->ix, hash);
    struct alog_ent *e;
    int dead;

    c->records++;
    if (r->h.seq > c->max_seq) {
        c->max_seq = r->h.seq;
    }
    if (r->h.seq < atomic_load(&seg->min_seq)) {
        atomic_store(&seg->min_seq, r->h.seq);
    }
    if (r->h.seq > atomic_load(&seg->max_seq)) {
        atomic_store(&seg->max_seq, r->h.seq);
    }
    e = alog_shard_find_locked(sh, hash, r->key, r->h.klen);
    if (e != NULL && *alog_ent_seq(sh, e) >= r->h.seq) {
        return 0; /* an older version, or this very record again */
    }
    if (e == NULL) {
        e = alog_shard_insert_locked(sh, hash, r->key, r->h.klen);
        if (e == NULL) {
            c->enomem = 1;
            return KVD_ENOMEM;
        }
    }
    dead = r->h.kind == ALOG_REC_DEL || alog_is_expired(r->h.expire_ms, c->now);
    if (!dead) {
        if (alog_index_set_locked(c->db, sh, e, seg, r->off, r->h.vlen,
                                  r->h.seq, r->h.expire_ms) != 0) {
            c->enomem = 1;
            return KVD_ENOMEM;
        }
        return 0;
    }
    /* remember the delete (its seq) until every file is loaded */
    if (!(e->flags & ALOG_ENT_TOMBSTONE)) {
        struct alog_seg *old = alog_ent_seg(&c->db->ix, e);
        atomic_fetch_sub(&old->live_bytes,
                         alog_rec_bytes(alog_ent_klen(sh, e), e->vlen));
        alog_shard_unaccount_locked(sh, e);
        e->flags |= ALOG_ENT_TOMBSTONE;
    }
    e->vlen = 0;
    *alog_ent_seq(sh, e) = r->h.seq;
    return 0;
}

static void
drop_tombstones(alog_db *db)
{
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &db->ix.shards[i];
        /* every entry is a tombstone or a live key: walking a shard
         * without tombstones would touch each of its slots for nothing */
        if (sh->count == sh->live_keys) {
            continue;
        }
        for (size_t j = 0; j < sh->nslots;) {
            struct alog_ent *e = &sh->slots[j];
            if ((e->flags & ALOG_ENT_USED) && (e->flags & ALOG_ENT_TOMBSTONE)) {
                alog_shard_remove_locked(sh, e); /* j holds the next now */
            } else {
                j++;
            }
        }
        alog_shard_maybe_shrink_locked(sh);
    }
}

static int
parse_name(const char *name, const char *ext, uint32_t *id)
{
    char *end;
    unsigned long v;

    if (strlen(name) != 9 + strlen(ext) || name[8] != '.' ||
        strcmp(name + 9, ext) != 0) {
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return 0;
        }
    }
    v = strtoul(name, &end, 10);
    *id = (uint32_t)v;
    return end == name + 8;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* List data segment ids (sorted) and delete leftovers of interrupted
 * writes: *.tmp files and hint files without a data file. */
static int
list_dir(alog_db *db, uint32_t **ids_out, size_t *n_out, struct kvd_err *err)
{
    DIR *d = opendir(db->dir);
    struct dirent *de;
    uint32_t *ids = NULL;
    size_t n = 0;
    size_t cap = 0;
    char path[ALOG_PATH_BYTES];

    if (d == NULL) {
        return kvd_err_set(err, KVD_EIO, "log: opendir %s: %s", db->dir,
                           strerror(errno));
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        uint32_t id;
        if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
            snprintf(path, sizeof(path), "%s/%s", db->dir, de->d_name);
            ALOG_LOG(db, KVD_LOG_INFO,
                     "log: removing %s left by an interrupted write", path);
            db->io->unlink(path);
            continue;
        }
        if (!parse_name(de->d_name, "data", &id)) {
            continue;
        }
        if (n == cap) {
            uint32_t *nn;
            cap = cap ? cap * 2 : 64;
            nn = realloc(ids, cap * sizeof(*ids));
            if (nn == NULL) {
                free(ids);
                closedir(d);
                return kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
            }
            ids = nn;
        }
        ids[n++] = id;
    }
    closedir(d);
    if (n > 1) {
        qsort(ids, n, sizeof(*ids), cmp_u32);
    }
    *ids_out = ids;
    *n_out = n;
    return 0;
}

/* Open segment `id` and add it to the list; a damaged header is handled by
 * the corruption policy (skip: the file is left alone and ignored). */
static int
open_seg(alog_db *db, uint32_t id, struct kvd_err *err)
{
    char path[ALOG_PATH_BYTES];
    unsigned char hdr[ALOG_FILE_HDR_BYTES];
    struct alog_file_hdr fh;
    struct alog_seg *s;
    uint64_t size = 0;
    size_t got = 0;
    int fd;
    int rc;

    alog_seg_path(db, path, id, "data");
    fd = db->io->open(path, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        return kvd_err_set(err, kvd_errno_status(errno), "log: open %s: %s",
                           path, strerror(errno));
    }
    rc = kvd_file_size(fd, &size);
    if (rc == 0) {
        rc = kvd_file_read_full(db->io, fd, hdr, sizeof(hdr), 0, &got);
    }
    if (rc != 0) {
        db->io->close(fd);
        return kvd_err_set(err, rc, "log: read %s: %s", path, strerror(errno));
    }
    rc = got == sizeof(hdr) ? alog_file_hdr_decode(hdr, &fh) : KVD_ECORRUPT;
    if (rc == KVD_ENOTSUP) {
        db->io->close(fd);
        return kvd_err_set(err, rc,
                           "log: %s has format version %u; this engine "
                           "reads version %d",
                           path, (unsigned)fh.version, ALOG_FORMAT_VERSION);
    }
    if (rc == 0 && fh.kind != ALOG_FILE_DATA && fh.kind != ALOG_FILE_MERGED) {
        rc = KVD_ECORRUPT;
    }
    if (rc != 0) {
        db->io->close(fd);
        kvd_counter_add(&db->c.corrupt_records, 1);
        ALOG_LOG(db, KVD_LOG_ERROR,
                 "log: corrupt file header in %s at offset 0: file ignored",
                 path);
        if (db->opts.corruption == ALOG_CORRUPT_FAIL) {
            return kvd_err_set(err, KVD_ECORRUPT,
                               "log: corrupt file header in %s at offset 0",
                               path);
        }
        if (id >= db->next_id) {
            db->next_id = id + 1; /* never reuse its name */
        }
        return 0;
    }
    s = alog_seg_new(id, fd, fh.kind, fh.created_seq);
    if (s == NULL || alog_segs_add_locked(db, s) != 0) {
        free(s);
        db->io->close(fd);
        return kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
    }
    s->io = db->io;
    /* sealed for good: a torn tail cut later only shortens it */
    alog_seg_map(db, s, size);
    atomic_store(&s->size, size);
    if (fh.kind == ALOG_FILE_DATA && fh.created_seq > 0 &&
        fh.created_seq - 1 > db->seq) {
        db->seq = fh.created_seq - 1;
    }
    return 0;
}

/* Cut the tail segment after its last record: a torn write, or (zeros)
 * the zero bytes appends had preallocated, which is no damage at all. */
static int
cut_torn_tail(alog_db *db, struct alog_seg *s, uint64_t size,
              uint64_t valid_end, int zeros, struct kvd_err *err)
{
    if (zeros) {
        ALOG_LOG(db, KVD_LOG_DEBUG,
                 "log: %s/%08u.data ends at offset %llu; cutting %llu "
                 "preallocated bytes",
                 db->dir, (unsigned)s->id, (unsigned long long)valid_end,
                 (unsigned long long)(size - valid_end));
    } else {
        ALOG_LOG(db, KVD_LOG_WARN,
                 "log: torn write at the end of %s/%08u.data at offset %llu "
                 "(%llu bytes): cut off",
                 db->dir, (unsigned)s->id, (unsigned long long)valid_end,
                 (unsigned long long)(size - valid_end));
        kvd_counter_add(&db->c.torn_tail_bytes, size - valid_end);
    }
    if (db->io->ftruncate(s->fd, (off_t)valid_end) != 0 ||
        db->io->fsync(s->fd) != 0) {
        int rc = kvd_errno_status(errno);
        return kvd_err_set(err, rc, "log: truncate %s/%08u.data to %llu: %s",
                           db->dir, (unsigned)s->id,
                           (unsigned long long)valid_end, strerror(errno));
    }
    atomic_store(&s->size, valid_end);
    return 0;
}

/* A data file shorter than its intact hint says: report it; refuse to open
 * under corruption = fail. */
static int
truncated_segment(alog_db *db, struct alog_seg *s, uint64_t size,
                  uint64_t hinted, struct kvd_err *err)
{
    kvd_counter_add(&db->c.corrupt_records, 1);
    ALOG_LOG(db, KVD_LOG_ERROR,
             "log: %s/%08u.data is %llu bytes but its hint file shows it "
             "complete at %llu bytes: the file lost its end (damage: only "
             "the segment a crash interrupted can end short)%s",
             db->dir, (unsigned)s->id, (unsigned long long)size,
             (unsigned long long)hinted,
             db->opts.corruption == ALOG_CORRUPT_FAIL
                 ? ""
                 : "; loading the records that remain");
    if (db->opts.corruption == ALOG_CORRUPT_FAIL) {
        return kvd_err_set(err, KVD_ECORRUPT,
                           "log: %s/%08u.data is truncated (%llu of %llu "
                           "bytes; corruption = fail)",
                           db->dir, (unsigned)s->id, (unsigned long long)size,
                           (unsigned long long)hinted);
    }
    return 0;
}

static void
progress(alog_db *db, int64_t t0, int64_t *last, size_t i, size_t n,
         uint64_t done, uint64_t total, uint64_t records)
{
    int64_t now = kvd_mono_ms(db->host);
    double secs;

    if (total < ALOG_PROGRESS_MIN_BYTES ||
        now - *last < ALOG_PROGRESS_EVERY_MS) {
        return;
    }
    *last = now;
    secs = (double)(now - t0) / 1000.0;
    ALOG_LOG(db, KVD_LOG_INFO,
             "log: recovery %.0f%% (%zu of %zu segments, %llu records, "
             "%.0f records/s)",
             total ? 100.0 * (double)done / (double)total : 100.0, i, n,
             (unsigned long long)records,
             secs > 0 ? (double)records / secs : 0.0);
}

/* Scan seg's data file into the index record by record (no usable hint). */
static int
scan_seg(alog_db *db, struct rec_ctx *c, struct alog_seg *s, int is_tail,
         struct kvd_err *err)
{
    uint64_t size = atomic_load(&s->size);
    struct alog_scan_result res;
    int64_t t_scan = kvd_mono_us(db->host);
    int rc;

    atomic_store(&s->hint_bytes, 0);
    rc = alog_scan_segment(db, s, size, is_tail,
                           db->opts.corruption == ALOG_CORRUPT_FAIL, rec_apply,
                           c, &res);
    db->recovery_scan_us += kvd_mono_us(db->host) - t_scan;
    if (rc != 0) {
        return kvd_err_set(err, rc,
                           rc == KVD_ECORRUPT
                               ? "log: corrupt data in %s/%08u.data "
                                 "(corruption = fail; see the log "
                                 "for the offset)"
                               : "log: reading %s/%08u.data failed",
                           db->dir, (unsigned)s->id);
    }
    if (res.torn || res.zeros) {
        rc = cut_torn_tail(db, s, size, res.valid_end, res.zeros, err);
        if (rc != 0) {
            return rc;
        }
    }
    s->need_hint = db->opts.hint_files;
    db->recovered_scanned_files++;
    return 0;
}

/* What recovery does with a segment. */
enum seg_load {
    SEG_HINT = 0,  /* its hint file is in the bulk build */
    SEG_SCAN,      /* scanned */
    SEG_SCAN_TAIL, /* scanned; may end in a torn write or zeros */
};

/*
 * Hint files first, all of them checked, then one bulk build of the index
 * from them (alog_hint_build); then the segments without a usable hint
 * are scanned record by record on top (keys still resolve by seq: the
 * build keeps deletes as tombstones when scans follow).
 */
static int
load_segments(alog_db *db, struct rec_ctx *c, struct kvd_err *err)
{
    size_t nsegs = db->nsegs;
    struct alog_hint_view *views = calloc(nsegs + 1, sizeof(*views));
    unsigned char *how = calloc(nsegs + 1, 1);
    struct alog_seg *tail = NULL;
    size_t nviews = 0;
    size_t nscan = 0;
    uint64_t total = 0;
    uint64_t done = 0;
    int64_t t0 = kvd_mono_ms(db->host);
    int64_t last = t0;
    int64_t t;
    int rc = 0;

    if (views == NULL || how == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        total += atomic_load(&s->size);
        if (s->kind == ALOG_FILE_DATA) {
            tail = s;
        }
    }
    for (size_t i = 0; i < nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        uint64_t size = atomic_load(&s->size);
        uint64_t hint_says = 0;
        int is_tail = s == tail;

        rc = alog_hint_open(db, s, size, &views[nviews], &hint_says);
        if (rc == KVD_ECORRUPT && hint_says > size) {
            /* its intact hint proves the file was complete: lost bytes are
             * damage, never a torn write to cut, even in the tail */
            rc = truncated_segment(db, s, size, hint_says, err);
            if (rc != 0) {
                goto out;
            }
            rc = KVD_ECORRUPT;
            is_tail = 0;
        }
        if (rc == 0) {
            nviews++;
            db->recovered_hint_files++;
            how[i] = SEG_HINT;
            continue;
        }
        if (rc == KVD_ENOMEM) {
            rc = kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
            goto out;
        }
        if (rc == KVD_ECORRUPT) {
            ALOG_LOG(db, KVD_LOG_WARN,
                     "log: hint file %s/%08u.hint is unusable or does "
                     "not match its data file: scanning the data file "
                     "instead",
                     db->dir, (unsigned)s->id);
        }
        how[i] = is_tail ? SEG_SCAN_TAIL : SEG_SCAN;
        nscan++;
        rc = 0;
    }
    t = kvd_mono_us(db->host);
    if (nviews > 0) {
        rc = alog_hint_build(db, views, nviews, nscan > 0, c->now, &c->max_seq,
                             &c->records, &c->helper_cpu_us);
    }
    for (size_t i = 0; i < nviews; i++) {
        alog_hint_close(&views[i]);
    }
    nviews = 0;
    if (rc == 0 && nscan > 0 && alog_index_bulk_begin(&db->ix, 0) != 0) {
        rc = KVD_ENOMEM;
    }
    db->recovery_index_us += kvd_mono_us(db->host) - t;
    if (rc != 0) {
        rc = kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        if (how[i] != SEG_HINT) {
            rc = scan_seg(db, c, s, how[i] == SEG_SCAN_TAIL, err);
            if (rc != 0) {
                goto out;
            }
        }
        s->sealed = 1;
        done += atomic_load(&s->size);
        progress(db, t0, &last, i + 1, nsegs, done, total, c->records);
    }
out:
    for (size_t i = 0; views != NULL && i < nviews; i++) {
        alog_hint_close(&views[i]);
    }
    free(views);
    free(how);
    return rc;
}

/* The index from the index file when there is one that matches the
 * segments, else from their hint files and scans. */
static int
load_index(alog_db *db, struct rec_ctx *c, struct kvd_err *err)
{
    char path[ALOG_PATH_BYTES];
    int64_t t = kvd_mono_us(db->host);
    uint64_t keys = 0;
    int rc = KVD_ENOTFOUND;

    if (db->nsegs > 0 && db->opts.index_file) {
        rc = alog_ixfile_load(db, &c->max_seq, &keys);
    } else if (alog_check_writable(db) == 0) {
        /* not wanted (or nothing to index): gone, so that it cannot be
         * read later */
        snprintf(path, sizeof(path), "%s/%s", db->dir, ALOG_INDEX_FILE);
        db->io->unlink(path);
    }
    if (rc == KVD_ENOMEM) {
        return kvd_err_set(err, KVD_ENOMEM, "log: out of memory");
    }
    if (rc != 0) {
        return load_segments(db, c, err);
    }
    for (size_t i = 0; i < db->nsegs; i++) {
        db->segs[i]->sealed = 1;
    }
    c->records = keys;
    db->recovered_from_index = 1;
    db->recovery_index_us += kvd_mono_us(db->host) - t;
    return 0;
}

/* Delete segments that hold no record at all (an empty active segment of
 * a crashed run, or one whose only record was torn). They leave the
 * MANIFEST first, so a crash between cannot look like a lost file. */
static int
drop_empty(alog_db *db)
{
    char path[ALOG_PATH_BYTES];
    struct alog_seg **gone = calloc(db->nsegs ? db->nsegs : 1, sizeof(*gone));
    size_t ngone = 0;
    int rc = 0;

    if (gone == NULL) {
        return KVD_ENOMEM;
    }
    for (size_t i = 0; i < db->nsegs;) {
        struct alog_seg *s = db->segs[i];
        if (atomic_load(&s->size) > ALOG_FILE_HDR_BYTES) {
            i++;
            continue;
        }
        alog_segs_remove_locked(db, s);
        gone[ngone++] = s;
    }
    if (ngone > 0 && alog_check_writable(db) == 0) {
        rc = alog_manifest_write(db);
    }
    for (size_t i = 0; i < ngone; i++) {
        if (rc == 0 && alog_check_writable(db) == 0) {
            alog_seg_path(db, path, gone[i]->id, "hint");
            db->io->unlink(path);
            alog_seg_path(db, path, gone[i]->id, "data");
            db->io->unlink(path);
        }
        alog_seg_unref(db, gone[i]);
    }
    free(gone);
    return rc;
}

/* Segments listed in the MANIFEST are missing and corruption = skip: open
 * read-only, so that nothing written now can make the loss permanent. */
static void
open_read_only(alog_db *db, int missing)
{
    char why[ALOG_STATE_BYTES];

    kvd_ro_open_readonly(db->ro, KVD_ECORRUPT,
                         "read-only: %d segment file(s) listed in %s are "
                         "missing (see the log); restore them, or move %s "
                         "away to accept the loss",
                         missing, ALOG_MANIFEST_FILE, ALOG_MANIFEST_FILE);
    ALOG_LOG(db, KVD_LOG_ERROR, "log: %s: %s", db->dir, alog_why(db, why));
}

int
alog_recover(alog_db *db, struct kvd_err *err)
{
    struct rec_ctx c = {.db = db};
    uint32_t *ids = NULL;
    uint32_t *retired = NULL;
    size_t nretired = 0;
    size_t n = 0;
    int missing = 0;
    int64_t t0 = kvd_mono_us(db->host);
    int64_t cpu0 = alog_thread_cpu_us();
    int64_t t_load;
    int64_t t_tidy;
    int rc;

    c.now = db->host->now_ms(db->host);
    rc = alog_merge_commit_replay(db, &retired, &nretired, err);
    if (rc != 0) {
        return rc;
    }
    rc = list_dir(db, &ids, &n, err);
    if (rc == 0) {
        rc = alog_manifest_check(db, ids, n, retired, nretired, &missing, err);
    }
    free(retired);
    if (rc == 0 && missing > 0) {
        open_read_only(db, missing);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = open_seg(db, ids[i], err);
    }
    free(ids);
    t_load = kvd_mono_us(db->host);
    db->recovery_files_us = t_load - t0;
    if (rc == 0) {
        rc = load_index(db, &c, err);
    }
    if (rc != 0) {
        return rc;
    }
    t_tidy = kvd_mono_us(db->host);
    if (!db->recovered_from_index) {
        drop_tombstones(db);
    }
    alog_index_bulk_end(&db->ix);
    rc = drop_empty(db);
    if (rc != 0) {
        return kvd_err_set(err, rc, "log: write %s/%s: %s", db->dir,
                           ALOG_MANIFEST_FILE, strerror(errno));
    }
    if (alog_fsync_dir(db) != 0) {
        return kvd_err_set(err, KVD_EIO, "log: fsync directory %s: %s", db->dir,
                           strerror(errno));
    }
    if (c.max_seq > db->seq) {
        db->seq = c.max_seq;
    }
    db->recovered_records = c.records;
    db->recovery_tidy_us = kvd_mono_us(db->host) - t_tidy;
    db->recovery_ms = (kvd_mono_us(db->host) - t0) / 1000;
    db->recovery_cpu_us = alog_thread_cpu_us() - cpu0 + c.helper_cpu_us;
    if (db->nsegs > 0) {
        uint64_t keys = 0;
        for (unsigned i = 0; i < ALOG_SHARDS; i++) {
            keys += db->ix.shards[i].live_keys;
        }
        ALOG_LOG(db, KVD_LOG_INFO,
                 "log: recovered %llu keys from %zu segments (%s%llu from "
                 "hint files, %llu scanned, %llu records) in %lld ms, %.1f ms "
                 "CPU (ms: files %.1f, hint read %.1f, index %.1f, scan "
                 "%.1f, tidy %.1f)",
                 (unsigned long long)keys, db->nsegs,
                 db->recovered_from_index ? "the index file, " : "",
                 (unsigned long long)db->recovered_hint_files,
                 (unsigned long long)db->recovered_scanned_files,
                 (unsigned long long)c.records, (long long)db->recovery_ms,
                 (double)db->recovery_cpu_us / 1000.0,
                 (double)db->recovery_files_us / 1000.0,
                 (double)db->recovery_hint_read_us / 1000.0,
                 (double)db->recovery_index_us / 1000.0,
                 (double)db->recovery_scan_us / 1000.0,
                 (double)db->recovery_tidy_us / 1000.0);
    }
    return 0;
}
