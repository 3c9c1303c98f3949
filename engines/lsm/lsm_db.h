/*
 * lsm_db.h -- internal declarations shared by the files of the lsm engine.
 *
 * The engine (a log-structured merge tree) is split in files with one job
 * each. Each file calls only files listed below it (and the toolkit,
 * kvd/kit*.h), never one above, so there are no call loops:
 *   lsm_engine.c   options table, open/close, stats, sync, maintain, the
 *                  exported vtable
 *   lsm_multi.c    multi(): a pass of independent operations, its writes
 *                  gathered into WAL batches
 *   lsm_write.c    put, del, batch: encode, append under the write lock,
 *                  insert, acknowledge through group commit
 *   lsm_recover.c  open: MANIFEST replay, WAL replay, cleanup
 *   lsm_dbiter.c   user iterators and the exact key count of stats
 *   lsm_room.c     room for writes: memtable and WAL switches, write
 *                  stalls
 *   lsm_compact.c  background work: memtable flush, leveled compaction,
 *                  applying version edits, deleting obsolete files
 *   lsm_walfile.c  WAL files: creation (preallocated), the writer's
 *                  current WAL, the group commit's sync of it
 *   lsm_manifest.c MANIFEST and CURRENT: loading, writing, rolling
 *   lsm_view.c     views (memtables + table set), point lookups, get
 *   lsm_merge.c    merging and level iterators over lsm_it children
 *   lsm_tcache.c   cache of open table readers by file number
 *   lsm_batch.c    the WAL batch record: encoding and decoding
 *   lsm_file.c     paths, file numbers, directory fsync
 *   lsm_wal.c      record log format (WAL, MANIFEST); lsm_mem.c memtable;
 *   lsm_edit.c, lsm_version.c  version edits and versions
 * The read-only switch (db->ro), group commit (db->commit) and the
 * background thread (db->bg) are the toolkit's.
 *
 * Lock order (outer first): wlock -> mu; cmu -> mu; the group commit's
 * lock and the read-only switch's are leaves (the commit's sync op takes
 * wlock with neither held). dead_mu and the table cache's shard locks are
 * leaves. Nobody waits for wlock while holding cmu, so a background flush
 * can always finish while writers wait on done_cv.
 *
 * Sequence numbers: the writer hands them out under wlock (db->seq) and,
 * after the batch is in the memtable, publishes the last one in
 * visible_seq (release). A reader loads visible_seq (acquire) and takes
 * the current view under mu together (lsm_view_get): the writers' memtable
 * only changes with a new view, installed under mu, so every entry up to
 * the snapshot is in that view, and the view's tables hold nothing newer
 * than the snapshot (flushes drop shadowed versions safely).
 */
#ifndef KVD_LSM_DB_H
#define KVD_LSM_DB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/engine.h"
#include "kvd/host.h"
#include "kvd/kit.h"
#include "kvd/status.h"
#include "lsm_iter.h"
#include "lsm_mem.h"
#include "lsm_opts.h"
#include "lsm_table.h"
#include "lsm_version.h"
#include "lsm_wal.h"

#define LSM_STATE_BYTES     160
#define LSM_PATH_BYTES      4096
#define LSM_MAX_KEY_BYTES   65535u
#define LSM_MAX_VALUE_BYTES (1u << 30) /* 1 GiB */
/* A batch record holds at most this many bytes (keeps sizes in u32). */
#define LSM_MAX_BATCH_BYTES (LSM_MAX_VALUE_BYTES + (512u << 20))
/* Batch payload header: seq u64, count u32. */
#define LSM_BATCH_HDR_BYTES 12
#define LSM_CURRENT_FILE    "CURRENT"

/* An open WAL file, shared by the writer and a syncing leader. */
struct lsm_walf {
    _Atomic int refs;
    int fd;
    uint64_t number;
    /* as created (header written, first chunk preallocated), for the
     * writer that attaches it: see struct lsm_logw */
    uint64_t off;
    uint64_t alloc;
    uint64_t chunk;
};

/* WAL preallocation steps (sync = always; lsm_write.c). */
#define LSM_WAL_PREALLOC_MIN_BYTES 4096u
#define LSM_WAL_PREALLOC_MAX_BYTES (1u << 20)

/* What a reader needs: the memtables and the table set, refcounted
 * together so they always match (an entry is in exactly one of them). */
struct lsm_view {
    _Atomic int refs;
    uint64_t gen; /* db->view_gen when installed */
    lsm_mem *mem;
    lsm_mem *imm; /* NULL when no flush is pending */
    lsm_version *v;
};

/* ---- table cache ---- */

#define LSM_TC_SHARDS 16

struct lsm_tc_ent {
    struct lsm_tc_ent *hnext;
    struct lsm_tc_ent *prev; /* LRU, most recent at head.next */
    struct lsm_tc_ent *next;
    uint64_t number;
    lsm_table *t; /* one reference held by the cache */
};

struct lsm_tc_shard {
    pthread_mutex_t mu;
    struct lsm_tc_ent **buckets;
    size_t nbuckets;
    size_t count;
    struct lsm_tc_ent lru; /* sentinel */
};

struct lsm_tcache {
    struct lsm_tc_shard shards[LSM_TC_SHARDS];
    size_t per_shard; /* capacity of one shard */
    /* lookup counters of evicted tables (relaxed atomics) */
    _Atomic uint64_t bloom_checks;
    _Atomic uint64_t bloom_negatives;
    _Atomic uint64_t bloom_false_pos;
    _Atomic uint64_t block_reads;
    _Atomic uint64_t opens;
    /* readers held by file objects (lsm_file.table), at most `pinnable` */
    _Atomic uint64_t pinned;
    uint64_t pinnable;
};

/* ---- counters (relaxed atomics, exact but not ordered) ---- */

struct lsm_counters {
    _Atomic uint64_t puts;
    _Atomic uint64_t dels;
    _Atomic uint64_t batches;
    _Atomic uint64_t gets;
    _Atomic uint64_t user_bytes;  /* key + value bytes written by callers */
    _Atomic uint64_t wal_bytes;   /* bytes appended to WALs */
    _Atomic uint64_t flush_bytes; /* table bytes written by flushes */
    _Atomic uint64_t compact_read_bytes;
    _Atomic uint64_t compact_write_bytes;
    _Atomic uint64_t flushes;
    _Atomic uint64_t compactions;
    _Atomic uint64_t trivial_moves;
    _Atomic uint64_t fsyncs;
    _Atomic uint64_t stall_us;  /* time writers spent delayed/waiting */
    _Atomic uint64_t slowdowns; /* writes delayed 1 ms (L0 slowdown) */
    _Atomic uint64_t stops;     /* waits for a flush or compaction */
    _Atomic uint64_t dropped_tombstones;
    _Atomic uint64_t dropped_expired;
    _Atomic uint64_t dropped_shadowed;
    _Atomic uint64_t corrupt_records; /* damaged WAL regions seen at open */
    _Atomic uint64_t torn_tail_bytes; /* cut off at open */
    _Atomic uint64_t manifest_rolls;
};

/* Why writers last stalled, so each stall is logged once. */
enum lsm_stall {
    LSM_STALL_NONE = 0,
    LSM_STALL_SLOW = 1,    /* L0 at l0_slowdown: 1 ms per write */
    LSM_STALL_L0 = 2,      /* L0 at l0_stop: waiting for a compaction */
    LSM_STALL_MEMTABLE = 3 /* previous memtable not flushed yet */
};

/*
 * The engine handle.
 * Fixed after open: host, io, opts, vconf, topts, dir, lock_fd, bcache, ro,
 * commit, bg.
 * wlock: the WAL writer (wmem, wal, walw), seq, written.
 * mu: view, next_file, log_number, compact_ptr, stall.
 * cmu: held by whoever changes the table set (flush, compaction, the
 *      MANIFEST writer: manifest_*).
 */
struct kvd_engine {
    const struct kvd_host *host;
    const struct kvd_io *io;
    struct lsm_opts opts;
    struct lsm_vconf vconf;
    struct lsm_table_opts topts;
    char *dir;
    int lock_fd;
    lsm_cache *bcache;
    struct lsm_tcache tc;
    kvd_ro *ro;         /* the read-only switch */
    kvd_commit *commit; /* group commit of the WAL; everysec's syncs */
    kvd_worker *bg;     /* flushes and compactions */

    pthread_mutex_t wlock;
    lsm_mem *wmem; /* the memtable writers insert into (the view's mem) */
    struct lsm_walf *wal;
    struct lsm_logw walw;
    uint64_t seq;     /* last sequence number handed out */
    uint64_t written; /* WAL bytes appended since open, over all WALs */

    _Atomic uint64_t visible_seq;
    /* mirrors of the view for the writers' fast path (set under mu) */
    _Atomic int l0_files;
    _Atomic bool imm_pending;

    pthread_mutex_t mu;
    pthread_cond_t done_cv; /* writers wait for a flush or compaction */
    struct lsm_view *view;
    uint64_t view_gen;
    uint64_t next_file;
    uint64_t log_number;
    _Atomic bool closing; /* long compactions give up, stalls end */
    _Atomic int stall;    /* enum lsm_stall last logged (changed under mu) */
    int64_t stall_logged_ms[4]; /* per enum lsm_stall, monotonic */
    struct lsm_slice compact_ptr[LSM_LEVELS]; /* malloc'd user keys */

    pthread_mutex_t cmu;
    _Atomic uint64_t manifest_bytes; /* mirror of manw.off for stats */
    int manifest_fd;
    uint64_t manifest_number;
    struct lsm_logw manw;

    pthread_mutex_t dead_mu;
    uint64_t *dead; /* numbers of obsolete tables to delete */
    size_t ndead;
    size_t dead_cap;

    /* the read-only switch's retry (lsm_room.c): a write that failed for
     * lack of space is retried once space is back, unless a sync failed
     * (then what is on disk is unknown) or the store was opened read-only
     * (no WAL: a full disk or a read-only file system at open) */
    _Atomic bool sync_failed;
    _Atomic bool opened_readonly;
    uint64_t wal_hole; /* wlock: bytes after walw.off a failed append may
                          have written, zeroed before the next append */

    _Atomic int ready;
    int64_t recovery_ms;
    uint64_t recovered_records;
    uint64_t recovered_wals;

    /* cached result of the exact stats scan (guarded by stats_mu) */
    pthread_mutex_t stats_mu;
    uint64_t stats_gen;
    uint64_t stats_seq;
    int64_t stats_valid_until; /* now_ms before which it still holds */
    bool stats_cached;
    uint64_t stats_keys;
    uint64_t stats_key_bytes;
    uint64_t stats_value_bytes;

    struct lsm_counters c;
};

typedef struct kvd_engine lsm_db;

#define LSM_LOG(db, level, ...) (db)->host->log((db)->host, level, __VA_ARGS__)

/* The expiry of a stored PUTX value (at least 8 bytes). */
static inline int64_t
lsm_val_expiry(struct lsm_slice v)
{
    return (int64_t)kvd_get_le64(v.p);
}

/* The read-only switch: turn read-only after a failed write or fsync
 * (kvd/kit_ro.h); returns rc. */
#define lsm_fail(db, rc, ...) kvd_ro_fail((db)->ro, rc, __VA_ARGS__)

/* The same for a failed fsync of a file the store goes on using: what the
 * kernel kept of it is unknown, so the store never becomes writable again
 * before a restart. */
#define lsm_fail_sync(db, rc, ...)                                             \
    (atomic_store(&(db)->sync_failed, true),                                   \
     kvd_ro_fail((db)->ro, rc, __VA_ARGS__))

static inline bool
lsm_readonly(const lsm_db *db)
{
    return kvd_ro_check(db->ro) != 0;
}

/* Read-only for lack of space, with nothing worse behind it: the next
 * write tries again (lsm_room.c). */
static inline bool
lsm_retryable(const lsm_db *db)
{
    return kvd_ro_cause(db->ro) == KVD_ENOSPC &&
           !atomic_load(&((lsm_db *)db)->sync_failed) &&
           !atomic_load(&((lsm_db *)db)->opened_readonly);
}

/* Whether a write must be refused before it tries anything. */
static inline bool
lsm_refuses(const lsm_db *db)
{
    return lsm_readonly(db) && !lsm_retryable(db);
}

/* What went wrong, for a message: the read-only state when the store is
 * read-only, else the status text of rc. `buf` holds LSM_STATE_BYTES. */
const char *lsm_why(lsm_db *db, int rc, char *buf);

/* lsm_file.c */
void lsm_path(const lsm_db *db, char *buf, uint64_t number, const char *ext);
int lsm_fsync_dir(lsm_db *db);
uint64_t lsm_new_file_number(lsm_db *db);

/* lsm_batch.c: the payload of a WAL record, one batch of operations:
 * seq u64 | count u32 | count x (type u8, key varint-prefixed, value
 * varint-prefixed unless a deletion; a PUTX value starts with its expiry
 * as u64). */
/* Bytes one operation takes in a batch payload. */
size_t lsm_op_bytes(size_t klen, int type, size_t vlen);
/* Encode one operation at p; returns the byte after it. */
unsigned char *lsm_op_encode(unsigned char *p, int type, const void *key,
                             size_t klen, int64_t expire_ms, const void *val,
                             size_t vlen);
/* Fill in the header (the first LSM_BATCH_HDR_BYTES) of a payload. */
void lsm_batch_hdr_encode(unsigned char *p, uint64_t seq, uint32_t count);
/* Decode a batch payload: calls fn for each op (fn may be NULL: check
 * only). KVD_ECORRUPT when malformed. */
typedef int (*lsm_batch_fn)(void *ctx, uint64_t seq, int type, const void *key,
                            size_t klen, struct lsm_slice v);
int lsm_batch_decode(const void *p, size_t n, uint64_t *first_seq,
                     uint32_t *count, lsm_batch_fn fn, void *ctx);
/* The record type of a put with this expiry: LSM_T_PUTX or LSM_T_PUT. */
static inline int
lsm_put_type(int64_t expire_ms)
{
    return expire_ms != 0 ? LSM_T_PUTX : LSM_T_PUT;
}

/* lsm_view.c */
/* The current view, referenced, and (snap != NULL) the last published
 * sequence number read under the same lock: every entry up to *snap is in
 * the view's memtables or tables, and no version an entry up to *snap
 * needs was dropped from them. (Read apart, a flush could drop a version
 * the snapshot needs between the two reads.) */
struct lsm_view *lsm_view_get(lsm_db *db, uint64_t *snap);
void lsm_view_put(struct lsm_view *vw);
/* Replace the current view (mu held) and wake writers waiting for
 * progress. The old view goes to *old (NULL at open), which the caller
 * releases with lsm_view_put after unlocking. 0 or KVD_ENOMEM. */
int lsm_view_install_locked(lsm_db *db, lsm_mem *mem, lsm_mem *imm,
                            lsm_version *v, struct lsm_view **old);
/* Newest visible version of key: 0 and (*type, *val, pin) or
 * KVD_ENOTFOUND, or an error. *pin is a memtable reference or a table
 * hit to release with lsm_lookup_release. */
struct lsm_lookup {
    int type;
    struct lsm_slice val;
    lsm_mem *mem;       /* referenced, or NULL */
    struct lsm_hit hit; /* hit.pin set when a table block is pinned */
};
int lsm_lookup(lsm_db *db, struct lsm_view *vw, const void *key, size_t klen,
               uint64_t snap, struct lsm_lookup *out);
void lsm_lookup_release(struct lsm_lookup *l);
/* The vtable's get. */
int lsm_get(lsm_db *db, const void *key, size_t klen, struct kvd_val *out);
/* Does key have a live value? *snap gets the snapshot looked at (under
 * wlock it is db->seq: no write can come in between). */
int lsm_is_live(lsm_db *db, const void *key, size_t klen, uint64_t *snap,
                bool *live);

/* lsm_tcache.c */
int lsm_tcache_init(struct lsm_tcache *tc, size_t capacity);
void lsm_tcache_release(struct lsm_tcache *tc);
/*
 * The reader of table f, which the caller keeps alive (it holds a version
 * listing f). *owned = false: the reader belongs to f (no reference taken,
 * valid while f is); *owned = true: the caller holds a reference and drops
 * it with lsm_table_unref. Readers are kept in the file object up to
 * max_open_files, beyond that in an LRU by file number.
 */
int lsm_tcache_borrow(lsm_db *db, struct lsm_file *f, lsm_table **out,
                      bool *owned);
/* A referenced reader of table f (release with lsm_table_unref). */
int lsm_tcache_get(lsm_db *db, struct lsm_file *f, lsm_table **out);
void lsm_tcache_evict(lsm_db *db, uint64_t number);
/* vconf.release: a file object with a reader is freed. */
void lsm_tcache_file_release(void *ctx, struct lsm_file *f);
void lsm_tcache_stats(lsm_db *db, struct lsm_table_stats *st,
                      uint64_t *open_tables, uint64_t *index_bytes);

/* lsm_merge.c */
/* A merging iterator over n children (takes ownership of them, also on
 * failure). */
int lsm_merge_iter(lsm_it **children, size_t n, lsm_it **out);
/* An iterator over the files of a level >= 1 of v (holds a reference on
 * v); tables are opened as it reaches them. */
int lsm_level_iter(lsm_db *db, lsm_version *v, int level, bool fill_cache,
                   lsm_it **out);
/* An iterator over every entry of a view: memtables, L0 tables, levels. */
int lsm_view_iter(lsm_db *db, struct lsm_view *vw, lsm_it **out);

/* lsm_manifest.c */
/* Start MANIFEST `number` holding v and the counters, point CURRENT at
 * it, remove the previous one (cmu held or open). */
int lsm_manifest_create(lsm_db *db, const lsm_version *v, uint64_t number,
                        uint64_t log_number, uint64_t last_seq,
                        struct kvd_err *err);
/* Append an edit and sync it. */
int lsm_manifest_append(lsm_db *db, const struct lsm_edit *e);
/* Read CURRENT and replay its MANIFEST. KVD_ENOTFOUND when there is no
 * CURRENT (a new store). */
int lsm_manifest_load(lsm_db *db, lsm_version **v, uint64_t *log_number,
                      uint64_t *next_file, uint64_t *last_seq,
                      struct kvd_err *err);
/* Replay MANIFEST-number (what lsm_manifest_load does after CURRENT). */
int lsm_manifest_read(lsm_db *db, uint64_t number, lsm_version **v,
                      uint64_t *log_number, uint64_t *next_file,
                      uint64_t *last_seq, struct kvd_err *err);
void lsm_manifest_close(lsm_db *db);

/* lsm_walfile.c */
/* Create WAL `number` (header written, first chunk preallocated with
 * sync = always, synced, renamed into place). */
int lsm_wal_create(lsm_db *db, uint64_t number, struct lsm_walf **out);
/* Make the WAL writer append to wf, which it takes over (wlock held, or
 * open); the previous WAL is unreferenced. */
void lsm_wal_attach(lsm_db *db, struct lsm_walf *wf);
void lsm_walf_unref(lsm_db *db, struct lsm_walf *w);
/* Append one record to the current WAL (wlock held) and count it in
 * db->written. A failure turns the store read-only and remembers how far
 * the failed write may have reached, to wipe before the next append. */
int lsm_wal_append_locked(lsm_db *db, const void *rec, size_t n);
/* The group commit's operations on the WAL (kvd/kit_commit.h). */
extern const struct kvd_commit_ops lsm_wal_commit_ops;

/* lsm_compact.c */
/* One round of the background worker (kvd/kit_worker.h): a flush or a
 * compaction when one is due; nonzero when more is waiting. */
int lsm_bg_round(void *arg);
/* Flush the immutable memtable if there is one (cmu held). */
int lsm_flush_imm(lsm_db *db);
/* Compact everything down (maintain), after the caller froze the
 * memtable. */
int lsm_compact_all(lsm_db *db, struct kvd_err *err);
/* Write memtable m (newest version of each key) as a level-0 table added
 * to edit; *empty when there was nothing to write (recovery, flush). */
int lsm_write_mem_table(lsm_db *db, lsm_mem *m, struct lsm_edit *edit,
                        bool *empty);
/* Log e to the MANIFEST and install the new version (cmu held).
 * flushed: the view's imm is now in a table. */
int lsm_log_and_apply(lsm_db *db, struct lsm_edit *e, bool flushed);
void lsm_file_gone(void *ctx, struct lsm_file *f);
void lsm_delete_dead(lsm_db *db);

/* lsm_room.c */
/* Make sure the writers' memtable has room (wlock held): wait for or
 * delay behind a falling-behind flush or compaction, switch to a new
 * memtable and WAL when the current one is full. With force, a non-empty
 * memtable is frozen whatever its size. 0, KVD_EREADONLY, or the failure
 * that turned the store read-only. */
int lsm_make_room_locked(lsm_db *db, bool force);
/* Freeze a non-empty memtable now (maintain): 0 or a status. */
int lsm_force_switch(lsm_db *db);
/* Read-only for lack of space and retryable: wipe what the failed append
 * left and become writable again (wlock held). 0, KVD_EREADONLY when the
 * failure was not one to retry, or the status of the wipe. */
int lsm_resume_locked(lsm_db *db);

/* lsm_dbiter.c */
int lsm_iter_open(lsm_db *db, const struct kvd_iter_opts *opts, kvd_iter **out,
                  struct kvd_err *err);
int lsm_iter_next(kvd_iter *it, struct kvd_entry *out);
void lsm_iter_close(kvd_iter *it);
/* Live keys and their bytes in view vw at snapshot snap, counting at
 * most `limit` keys (0 = all); *complete says whether the scan reached
 * the end, *next_expiry is the earliest expiry among the keys counted
 * (INT64_MAX if none). */
struct lsm_live {
    uint64_t keys;
    uint64_t key_bytes;
    uint64_t value_bytes;
    int64_t next_expiry;
    bool complete;
};
int lsm_count_live(lsm_db *db, struct lsm_view *vw, uint64_t snap,
                   uint64_t limit, struct lsm_live *out);

/* lsm_recover.c */
int lsm_recover(lsm_db *db, struct kvd_err *err);

/* lsm_write.c */
int lsm_put(lsm_db *db, const void *key, size_t klen, const void *val,
            size_t vlen, int64_t expire_ms);
int lsm_del(lsm_db *db, const void *key, size_t klen);
int lsm_batch(lsm_db *db, const struct kvd_op *ops, size_t n,
              struct kvd_err *err);
/* The contract's checks (kvd/kit_check.h) with this engine's limits: 0,
 * KVD_EINVAL or KVD_ETOOBIG. */
int lsm_check_key(const void *key, size_t klen);
int lsm_check_put(const void *key, size_t klen, const void *val, size_t vlen,
                  int64_t expire_ms);

/* lsm_multi.c */
/* The vtable's multi: 0, or KVD_ENOMEM with every status set to it. */
int lsm_multi(lsm_db *db, struct kvd_mop *ops, size_t n);

#endif /* KVD_LSM_DB_H */
