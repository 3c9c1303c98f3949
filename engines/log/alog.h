/*
 * alog.h -- internal declarations shared by the files of the log engine.
 *
 * The engine (an append-only log with an in-memory hash index) is split in
 * files with one job each:
 *   alog_engine.c   open/close, get, iteration, stats, sync, maintain,
 *                   options table, the exported vtable
 *   alog_write.c    put/del/batch, segment roll, group commit
 *   alog_recover.c  rebuilding the index at open (hint files or scans)
 *   alog_scan.c     sequential segment reader with corruption handling
 *   alog_hint.c     writing and loading hint files
 *   alog_manifest.c the MANIFEST of segments, id lists in files
 *   alog_merge.c    background merge of immutable segments
 *   alog_file.c     file helpers (paths, full reads/writes, tmp+rename)
 *   alog_index.c    the sharded hash index
 *   alog_format.c   byte layout (checksums: the toolkit's kvd_crc32c)
 *
 * Lock order (outer first): merge_mu -> wlock -> manifest_mu -> seg_mu ->
 * shard lock.
 * The group commit's lock (kvd/kit_commit.h) is a leaf: the roll reports
 * its fdatasync under wlock; the commit's sync op takes wlock with no
 * commit lock held. The read-only switch's lock is a leaf.
 *
 * Segment lifetime: a segment is referenced by the segment list (one
 * reference) and, briefly, by a syncer. Index entries point at segments
 * without a reference; a merge removes a segment only after every index
 * entry has been moved off it under the shard write locks, and readers do
 * their pread while holding the shard read lock, so no reader can still be
 * using a removed segment.
 */
#ifndef KVD_ALOG_H
#define KVD_ALOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "alog_format.h"
#include "alog_index.h"
#include "alog_opts.h"
#include "kvd/engine.h"
#include "kvd/host.h"
#include "kvd/kit_buf.h"
#include "kvd/kit_clock.h"
#include "kvd/kit_commit.h"
#include "kvd/kit_counter.h"
#include "kvd/kit_crc32c.h"
#include "kvd/kit_file.h"
#include "kvd/kit_ro.h"
#include "kvd/kit_worker.h"
#include "kvd/status.h"

#define ALOG_STATE_BYTES   160
#define ALOG_PATH_BYTES    4096
#define ALOG_MANIFEST_FILE "MANIFEST"
#define ALOG_INDEX_FILE    "INDEX" /* alog_ixfile.c */
/* multi() appends consecutive puts in chunks of at most this many bytes
 * (or segment_size, when smaller) */
#define ALOG_MULTI_CHUNK_BYTES (4u << 20)
/* The active segment is preallocated this far ahead of its end (and at
 * most to the end of its map): one fallocate per this many bytes. */
#define ALOG_PREALLOC_BYTES (4u << 20)
/* ... and its map's pages are faulted in this far ahead of the appends,
 * by one madvise each step (alog_seg_populate). */
#define ALOG_POPULATE_BYTES (256u << 10)
/* ... and every this many bytes written, the pages behind the appends are
 * unmapped and handed to the kernel's writeback (alog_seg_writeback). */
#define ALOG_WRITEBACK_BYTES (4u << 20)

/*
 * A segment file. Every segment is mapped read-only (MAP_SHARED) over
 * map_len bytes when it is created or opened, so that a read is a copy from
 * memory: records below `size` are complete and never change (appends only
 * add bytes after them, and only recovery, before the map exists, truncates
 * a file), so a reader never touches a page past the end of the file. The
 * active segment's map covers segment_size, enough for every record but a
 * single one larger than that; such a record (and any segment whose map
 * failed) is read with pread. The map lives as long as the segment object.
 *
 * The active segment's map is also writable (when the host's kvd_io has
 * fallocate): an append stores its record into the map, no system call,
 * after the file was preallocated past it (ALOG_PREALLOC_BYTES at a time),
 * so a store can never fault for lack of disk space. The file then ends in
 * zeros beyond `size` until the segment is sealed or closed, which cut it
 * back to `size` (alog_seg_trim); recovery takes a tail of zeros after the
 * last record for that, not for a torn write.
 */
struct alog_seg {
    uint32_t id;                 /* fixed */
    int fd;                      /* fixed until the last reference goes */
    const struct kvd_io *io;     /* fixed: closes fd at the last unref */
    const unsigned char *map;    /* fixed; NULL: read with pread */
    uint64_t map_len;            /* fixed; bytes mapped */
    int kind;                    /* ALOG_FILE_DATA or ALOG_FILE_MERGED; fixed */
    uint64_t created_seq;        /* fixed */
    _Atomic uint64_t size;       /* bytes written, header included */
    _Atomic uint64_t live_bytes; /* record bytes the index points at */
    _Atomic uint64_t hint_bytes; /* size of the hint file, 0 if none */
    _Atomic uint64_t min_seq;    /* lowest seq a record may have */
    _Atomic uint64_t max_seq;
    _Atomic int refs;
    /* the index's segment table slot, 0 until the index points at it
     * (alog_index_seg_slot) */
    _Atomic uint32_t ixslot;
    /* the active segment: appends are stores into the map (mapped
     * writable), below alloc_end; fixed */
    int writable;
    /* guarded by wlock: the file is allocated (preallocated with zeros)
     * up to here, >= size; a seal or a clean close cuts it back to size */
    uint64_t alloc_end;
    /* guarded by wlock: the map's pages below here are faulted in
     * (alog_seg_populate), <= alloc_end */
    uint64_t pop_end;
    /* guarded by wlock: the map's pages below here were unmapped and
     * their writeback started (alog_seg_writeback) */
    uint64_t wb_end;
    /* guarded by seg_mu */
    int sealed;    /* no more appends: immutable */
    int merging;   /* input of the running merge */
    int need_hint; /* sealed, no hint file yet */
    /* the hint entries of every record, collected as they were appended
     * (set when the segment is sealed; NULL: scan it for its hint) */
    struct alog_hint_buf *hint_ready;
};

/* Counters reported by stats; relaxed atomics, exact but not ordered. */
struct alog_counters {
    _Atomic uint64_t get_preads;     /* preads done by get (no map) */
    _Atomic uint64_t get_map_reads;  /* gets served from a segment map */
    _Atomic uint64_t iter_preads;    /* preads done by iterators */
    _Atomic uint64_t iter_map_reads; /* iterator records read from a map */
    _Atomic uint64_t puts;
    _Atomic uint64_t dels;
    _Atomic uint64_t batches;
    _Atomic uint64_t multi_calls;   /* multi() calls */
    _Atomic uint64_t multi_appends; /* appends made by multi() for puts */
    _Atomic uint64_t fsyncs;        /* fdatasync/fsync calls on segments */
    _Atomic uint64_t merges;
    _Atomic uint64_t merge_running;     /* 1 while a merge runs */
    _Atomic uint64_t merge_input_bytes; /* of the running (or last) merge */
    _Atomic uint64_t merge_done_bytes;  /* of those, scanned so far */
    _Atomic uint64_t merge_throttle_ms; /* slept by merge_rate, in total */
    _Atomic uint64_t merge_bytes_written;
    _Atomic uint64_t merge_bytes_reclaimed;
    _Atomic uint64_t hint_files_written;
    _Atomic uint64_t hint_scans; /* hint files that needed a segment scan */
    _Atomic uint64_t corrupt_records; /* damaged regions seen */
    _Atomic uint64_t torn_tail_bytes; /* cut off at open */
    _Atomic uint64_t rolls;
};

struct kvd_engine {
    /* fixed after open */
    const struct kvd_host *host;
    const struct kvd_io *io;
    struct alog_opts opts;
    char *dir;
    int lock_fd; /* kvd_dirlock_acquire: flock on DIR/LOCK, -1 if none */

    struct alog_index ix;

    /* guarded by wlock: the append position */
    pthread_mutex_t wlock;
    struct alog_seg *active;
    uint64_t seq;     /* last sequence number handed out */
    uint64_t written; /* log position: bytes appended since open */
    /* offsets of the active segment's records, added after each
     * successful append, so that sealing it or a clean close writes its
     * hint file without scanning it (the entries are read from the map); NULL
     * when collecting failed (no memory) or hint_files = no: the segment is
     * scanned then */
    struct alog_hint_buf *ahint;
    /* sync = always: index changes of appended records not yet synced, in
     * log order; published once the fdatasync covering them succeeds,
     * dropped when it fails (alog_write.c) */
    struct alog_pending *pend;
    size_t npend;
    size_t pend_cap;

    /* guarded by seg_mu */
    pthread_mutex_t seg_mu;
    struct alog_seg **segs; /* sorted by id */
    size_t nsegs;
    size_t segs_cap;
    uint32_t next_id;

    /* group commit (sync modes, everysec's thread); NULL until recovery
     * is done and again once close no longer wants periodic syncs */
    kvd_commit *commit;

    /* read-only after a failed write or fsync, or from the open on when
     * segments are missing (alog_recover.c); fixed pointer, thread-safe */
    kvd_ro *ro;

    /* background worker (hint files, expiry reaping, merges; everysec
     * syncs are kvd_commit's own): set before the first client write,
     * woken from any thread (kvd/kit_worker.h) */
    kvd_worker *bg;
    int64_t bg_next_merge; /* the worker's own: when the next merge is due */

    pthread_mutex_t merge_mu;    /* one merge at a time */
    pthread_mutex_t manifest_mu; /* one MANIFEST writer at a time */

    _Atomic int ready;
    int64_t recovery_ms;
    /* where the open's recovery time went, in microseconds: opening the
     * segment files, reading and checking hint files, applying their
     * entries to the index, scanning segments without a usable hint, and
     * the final pass (tombstones, empty segments, directory fsync) */
    int64_t recovery_files_us;
    int64_t recovery_hint_read_us;
    int64_t recovery_index_us;
    int64_t recovery_scan_us;
    int64_t recovery_tidy_us;
    /* CPU time of the recovering thread: on a shared machine the wall
     * times above include waiting for a CPU */
    int64_t recovery_cpu_us;
    uint64_t recovered_hint_files;
    uint64_t recovered_scanned_files;
    uint64_t recovered_records;
    int recovered_from_index; /* the open read the index file */
    /* the worker's: alog_ixfile_own is still to run (set before the
     * worker starts); the stat index_file_owned says when it has */
    int ixfile_pending;
    _Atomic int ixfile_owned;

    struct alog_counters c;
};

typedef struct kvd_engine alog_db;

#define ALOG_LOG(db, level, ...) (db)->host->log((db)->host, level, __VA_ARGS__)

/* CPU time of the calling thread in microseconds. */
int64_t alog_thread_cpu_us(void);

static inline int
alog_is_expired(int64_t expire_ms, int64_t now)
{
    return expire_ms != 0 && expire_ms <= now;
}

/* alog_file.c */
void alog_seg_path(const alog_db *db, char *buf, uint32_t id, const char *ext);
int alog_fsync_dir(alog_db *db);
int alog_seg_create(alog_db *db, uint32_t id, int kind, uint64_t created_seq,
                    int tmp, struct alog_seg **out);
struct alog_seg *alog_seg_new(uint32_t id, int fd, int kind,
                              uint64_t created_seq);
/* Map seg read-only over len bytes (rounded up to pages); on failure the
 * segment is read with pread (logged at debug level, not an error). Only
 * before the segment is shared with other threads. */
void alog_seg_map(alog_db *db, struct alog_seg *s, uint64_t len);
/* The record of `total` bytes at off, from the map, or NULL when it lies
 * outside it (read it with pread). */
static inline const unsigned char *
alog_seg_at(const struct alog_seg *s, uint64_t off, uint64_t total)
{
    if (s->map == NULL || off + total > s->map_len) {
        return NULL;
    }
    return s->map + off;
}
/* Preallocate the writable segment s (wlock held) so that alloc_end
 * covers `end`, in ALOG_PREALLOC_BYTES steps, up to its map's end. 0 or
 * the failure (nothing changed: the caller turns read-only). */
int alog_seg_allocate(alog_db *db, struct alog_seg *s, uint64_t end);
/* Fault in the writable segment's map (wlock held) from pop_end to past
 * `end`, ALOG_POPULATE_BYTES at a time and at most to alloc_end. Only
 * speed: a failure leaves the pages to fault one by one. */
void alog_seg_populate(struct alog_seg *s, uint64_t end);
/* The writable segment s has whole pages written up to `end` (wlock
 * held): once ALOG_WRITEBACK_BYTES of them are past wb_end, unmap them
 * from the process and start their writeback, without waiting for it
 * (db->io->writeback, ABI 1.7; an older host: only the unmap).
 * 0, or the status of a failed start (the caller turns read-only); an
 * error of the writeback itself is the next fdatasync's. */
int alog_seg_writeback(alog_db *db, struct alog_seg *s, uint64_t end);
/* Cut the preallocated zeros after `size` off s and make its map
 * read-only (wlock held, or the only thread): at a seal and a clean
 * close, so that sealed files are exactly their records. 0 or the
 * failed ftruncate's status. */
int alog_seg_trim(alog_db *db, struct alog_seg *s);
void alog_seg_ref(struct alog_seg *s);
/* The last unref closes the file and unmaps it; db may be NULL. */
void alog_seg_unref(alog_db *db, struct alog_seg *s);
int alog_segs_add_locked(alog_db *db, struct alog_seg *s);
void alog_segs_remove_locked(alog_db *db, struct alog_seg *s);

/* 0 while writable, KVD_EREADONLY once read-only. */
static inline int
alog_check_writable(alog_db *db)
{
    return kvd_ro_check(db->ro);
}

/* Why the store is read-only ("" while writable), in buf
 * (ALOG_STATE_BYTES); returns buf. */
static inline const char *
alog_why(alog_db *db, char *buf)
{
    kvd_ro_state(db->ro, buf, ALOG_STATE_BYTES);
    return buf;
}

/* alog_write.c */
int alog_put(alog_db *db, const void *key, size_t klen, const void *val,
             size_t vlen, int64_t expire_ms);
int alog_del(alog_db *db, const void *key, size_t klen);
int alog_batch(alog_db *db, const struct kvd_op *ops, size_t n,
               struct kvd_err *err);
/* Puts ops[0..n) (all KVD_MOP_PUT) with one append; sets every status.
 * The caller keeps the records within one chunk (alog_multi). Returns 0. */
int alog_put_many(alog_db *db, struct kvd_mop *ops, size_t n);
/* Publish the pending index changes of records up to log position upto
 * (the fdatasync covering them succeeded), or drop them all (it failed).
 * wlock held. */
void alog_pending_publish_locked(alog_db *db, uint64_t upto);
void alog_pending_drop_locked(alog_db *db);
/* The group commit's operations on the log (ctx: the db). */
extern const struct kvd_commit_ops alog_commit_ops;
int alog_roll(alog_db *db);
int alog_roll_locked(alog_db *db);
/* Cut the active segment's preallocated zeros and fdatasync it (a clean
 * close); on failure the store turns read-only. */
int alog_trim_active(alog_db *db);
/* Point e at a new record (shard write lock held); seq is kept only during
 * a bulk load. 0, or KVD_ENOMEM with e unchanged. */
int alog_index_set_locked(alog_db *db, struct alog_shard *sh,
                          struct alog_ent *e, struct alog_seg *seg,
                          uint32_t off, uint32_t vlen, uint64_t seq,
                          int64_t expire_ms);
void alog_index_drop_locked(alog_db *db, struct alog_shard *sh,
                            struct alog_ent *e);

/* alog_scan.c */
struct alog_scan_rec {
    uint32_t off; /* of the record in the segment */
    struct alog_rec_hdr h;
    const unsigned char *raw; /* the whole record, header first */
    const unsigned char *key;
    const unsigned char *val; /* NULL from a hint file */
    uint64_t hash;            /* alog_hash of key, or 0: not computed */
};

/* Called for every valid put/tombstone record (batch operations one by
 * one, after the whole frame checked out). Nonzero return stops the scan
 * and is returned by alog_scan_segment. */
typedef int (*alog_scan_fn)(void *ctx, struct alog_seg *seg,
                            const struct alog_scan_rec *r);

/* Call fn for the record at p (offset off in seg): once for a put or
 * tombstone, once per operation for a batch frame. The record must be
 * valid (checked by the scan, or just written). */
int alog_scan_emit(struct alog_seg *seg, const unsigned char *p, uint64_t off,
                   alog_scan_fn fn, void *ctx, uint64_t *records);

struct alog_scan_result {
    uint64_t valid_end; /* end of the last valid record */
    uint64_t records;
    uint64_t corrupt_regions;
    int torn; /* an invalid tail, cut at valid_end if tail_cut */
    /* the tail segment has only zero bytes after valid_end: space
     * preallocated for appends, not a torn write (also cut) */
    int zeros;
};

/* Read seg sequentially from its header to file_size. is_tail: the
 * segment the last run appended to, whose invalid tail is a torn write,
 * or, when it is zeros to the end, its preallocated space.
 * Damage elsewhere is logged with file and offset, counted, and skipped to
 * the next valid record (or fails with KVD_ECORRUPT when the corruption
 * policy says so and fail_on_corrupt is set). */
int alog_scan_segment(alog_db *db, struct alog_seg *seg, uint64_t file_size,
                      int is_tail, int fail_on_corrupt, alog_scan_fn fn,
                      void *ctx, struct alog_scan_result *res);

/* alog_hint.c */
/* A hint file being built, in an anonymous mapping of its own (grown by
 * hint_start, unmapped by alog_hint_buf_release; never malloc'd). */
struct alog_hint_mem {
    unsigned char *p;
    size_t len; /* bytes in use */
    size_t cap; /* bytes mapped */
};

struct alog_hint_buf {
    struct alog_hint_mem buf; /* the hint file: header, entries, trailer */
    uint64_t count;
    /* a collector of the active segment keeps only the offsets of the
     * records appended (4 bytes each instead of a hint entry and the key):
     * the hint file is built from the segment's map when it is written */
    uint32_t *offs;
    size_t noffs;
    size_t offs_cap;
};

int alog_hint_add(struct alog_hint_buf *hb, const struct alog_hint_ent *e,
                  const void *key);
void alog_hint_buf_release(struct alog_hint_buf *hb);
/* Write NNNNNNNN.hint for seg from hb (which gets its trailer); with
 * leave_tmp the file stays NNNNNNNN.hint.tmp, synced, for a merge commit.
 * The caller counts it in hint_files_written (alog_hint_write once its
 * buffer is released). */
int alog_hint_save(alog_db *db, struct alog_seg *seg, struct alog_hint_buf *hb,
                   uint64_t data_bytes, int leave_tmp);
/* Write seg's hint file from the entries collected as it was appended to
 * (seg->hint_ready), or else by scanning it. */
int alog_hint_write(alog_db *db, struct alog_seg *seg);
/* A fresh collection buffer for the active segment's hint entries, or
 * NULL (hint_files = no, or no memory: the segment is scanned later). */
struct alog_hint_buf *alog_hint_collector(alog_db *db);
/* Note the records in buf[0..total), just appended to the active segment
 * at offset at (wlock held), for its hint file. On failure (no memory)
 * the collection is dropped: the segment will be scanned instead. */
void alog_hint_note_locked(alog_db *db, const unsigned char *buf,
                           uint64_t total, uint64_t at);
/* Free a collection buffer (NULL: nothing). */
void alog_hint_buf_free(struct alog_hint_buf *hb);
/* A validated, mapped hint file of one segment (recovery). */
struct alog_hint_view {
    struct alog_seg *seg;
    const unsigned char *buf; /* the whole file; NULL when closed */
    uint64_t end;             /* where the trailer starts */
    uint64_t count;           /* entries */
    uint64_t bytes;           /* file length */
    void *map;
    size_t map_bytes;
    unsigned char *heap; /* the file read, when mapping failed */
};
/* Map seg's hint file and check all of it (crc, every entry's shape, the
 * last record against the data file) before anything uses it. Returns 0
 * (close v with alog_hint_close), or KVD_ENOTFOUND (no file) /
 * KVD_ECORRUPT (unusable or not this segment's: scan instead) /
 * KVD_ENOMEM, v then closed. *hinted_bytes gets the data file length an
 * intact hint (whole-file crc good) describes, 0 when there is none: a
 * data file shorter than that was complete once and lost bytes. */
int alog_hint_open(alog_db *db, struct alog_seg *seg, uint64_t data_size,
                   struct alog_hint_view *v, uint64_t *hinted_bytes);
void alog_hint_close(struct alog_hint_view *v);
/* Build the (empty) index from the n hint files at once (recovery only:
 * no other thread may use the index), on this thread and one helper
 * thread; see alog_index_bulk_build for keep_dead. Raises *max_seq, adds
 * the entries to *records and the helper's CPU time to *helper_cpu_us. 0
 * or KVD_ENOMEM. */
int alog_hint_build(alog_db *db, struct alog_hint_view *v, size_t n,
                    int keep_dead, int64_t now, uint64_t *max_seq,
                    uint64_t *records, int64_t *helper_cpu_us);

/* alog_recover.c */
int alog_recover(alog_db *db, struct kvd_err *err);

/*
 * The index file (alog_ixfile.c), a cache of the whole index for the next
 * open. alog_ixfile_write: at a clean close, once nothing changes any
 * more; 0 or a status (the close goes on without it). alog_ixfile_load:
 * at open, after the segments are opened and before anything else fills
 * the index: 0 (loaded: *max_seq is the last sequence number, *keys the
 * live keys), KVD_ENOTFOUND (no file), KVD_ECORRUPT (stale or damaged,
 * logged; the index is empty again), or KVD_ENOMEM. The file is deleted
 * once read.
 */
int alog_ixfile_write(alog_db *db);
int alog_ixfile_load(alog_db *db, uint64_t *max_seq, uint64_t *keys);
/* After a load, from the background worker: the index lies in a private
 * map of the file; make every page of it the process's own memory. */
void alog_ixfile_own(alog_db *db);

/* alog_manifest.c */
/* Write dir/name (kind, ids) whole: tmp, fsync, rename, directory fsync. */
int alog_idlist_write(alog_db *db, const char *name, int kind,
                      const uint32_t *ids, size_t n);
/* Read dir/name; *ids (caller frees) and *n. KVD_ENOTFOUND when there is
 * no such file, KVD_ECORRUPT when it is damaged or of another kind. */
int alog_idlist_read(alog_db *db, const char *name, int kind, uint32_t **ids,
                     size_t *n);
/* Rewrite MANIFEST from the segment list. */
int alog_manifest_write(alog_db *db);
/* Compare MANIFEST with the data files present (and those an interrupted
 * merge just retired). Each missing one is logged at error level and
 * counted in *missing; under corruption = fail that is KVD_ECORRUPT. A
 * damaged MANIFEST counts as corruption too. */
int alog_manifest_check(alog_db *db, const uint32_t *present, size_t npresent,
                        const uint32_t *retired, size_t nretired, int *missing,
                        struct kvd_err *err);

/* alog_merge.c */
int alog_merge_maybe(alog_db *db);
int alog_merge_all(alog_db *db, struct kvd_err *err);
/* Finish a merge interrupted after its commit: delete its inputs. *retired
 * (caller frees) lists them. */
int alog_merge_commit_replay(alog_db *db, uint32_t **retired, size_t *nretired,
                             struct kvd_err *err);

#endif /* KVD_ALOG_H */
