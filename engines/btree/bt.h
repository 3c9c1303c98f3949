/*
 * bt.h -- internals of the btree engine, shared by its files.
 *
 * The engine is a copy-on-write B+tree in one file of fixed-size pages
 * (docs/formats.md, "btree engine"). Pieces, bottom up:
 *
 *   bt_page.c    one page: slotted layout, search, insert, remove, split
 *   bt_alloc.c   file pages: free lists (ready / pending) and allocation;
 *                in-memory pages, retirement and reclamation
 *   bt_write.c   copy-on-write updates of the in-memory working tree
 *   bt_commit.c  flushes, commits (meta pages, the persisted free list),
 *                group commit and the background committer
 *   bt_read.c    reader slots, get, iterators, counting scans
 *   bt_file.c    open/recover, map management, compaction, close
 *   bt_engine.c  options, the vtable and its thin wrappers
 *   (file I/O and crc32c: the engine toolkit, kvd/kit_file.h, kit_crc32c.h)
 *
 * Versions and snapshots. The writer builds new trees out of in-memory
 * pages (struct bt_mpage) that copy the file pages or earlier in-memory
 * pages they change; nothing a reader can see is ever modified. Each
 * change is published as a struct bt_snap (root, depth, map, counts) with
 * a version number one higher than the last. A reader registers the
 * version it reads in a reader slot, then reads db->cur; whatever it
 * reaches from that snapshot stays untouched until it releases the slot.
 * An object the writer drops (a page, a snapshot, a map, a file page) is
 * tagged with the version from which on it is unreachable and reclaimed
 * once every registered reader is at that version or later.
 *
 * Durability. A flush writes the in-memory pages of the working tree to
 * file pages that no durable tree uses and publishes the resulting file
 * root; a commit is a flush plus a meta page (root, free list, counts)
 * written to the meta slot not holding the last commit, with fdatasync
 * as the sync policy asks. See bt_commit.c.
 *
 * Locks, outermost first: qmu (the group-commit queue, sync = always),
 * then wmu (every change of the working tree, the allocator, flushes,
 * commits, compaction); ovf_mu (readers that found no free slot) is a
 * leaf lock. Readers take no lock: they use the slots and db->cur. The
 * background commit releases wmu for its fdatasyncs and meta write
 * (bt_commit, db->committing); commits stay serialized.
 */
#ifndef KVD_BT_H
#define KVD_BT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kvd/engine.h"
#include "kvd/host.h"
#include "kvd/kit_crc32c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits and constants ---- */

#define BT_MAX_KEY_BYTES   511u
#define BT_MAX_VALUE_BYTES (1u << 30) /* 1 GiB */
#define BT_MIN_PAGE_BYTES  2048u
#define BT_MAX_PAGE_BYTES  32768u
#define BT_MAX_DEPTH       32
#define BT_NSLOTS          128 /* reader slots */
#define BT_SLOT_FREE       UINT64_MAX
#define BT_PATH_BYTES      4096
#define BT_DATA_FILE       "data.btree"
#define BT_TMP_FILE        "data.btree.tmp"
#define BT_FORMAT_VERSION  1u
#define BT_MAGIC           "KVDBTREE"
#define BT_META_PAGES      2u
#define BT_MIN_MAP_BYTES   ((uint64_t)1 << 30)
#define BT_WRITE_CHUNK     (1u << 20) /* bytes per pwrite of a flush */

/* ---- page layout (every tree and free-list page) ----
 *
 *   0  u8  type            4  u16 lower (end of the slot array)
 *   1  u8  prefix length   6  u16 upper (start of the record area)
 *   2  u16 slots           8  u16 garbage (dead record bytes)
 *  16  u64 txnid of the commit that wrote the page
 *  24  prefix bytes (BT_PFX_MAX), shared by every key of the page
 *  64  slots: u32 head (4 key bytes after the prefix, big-endian), u16
 *      record offset, u16 record length; records fill the page from the
 *      end downwards.
 *
 * Leaf record:   u8 flags, u16 klen, u32 vlen, [i64 expire_ms], key,
 *                value or (BT_REC_OVF) u64 first page of the value's run.
 * Branch record: u64 child, u16 klen, key (slot 0: the empty key, -inf).
 * A child is a file page number, or in memory (bit 63 set) a pointer to
 * a struct bt_mpage.
 */
#define BT_PAGE_LEAF   1
#define BT_PAGE_BRANCH 2
#define BT_PAGE_FREE   3

#define BT_HDR_BYTES  64u
#define BT_PFX_OFF    24u
#define BT_PFX_MAX    40u
#define BT_SLOT_BYTES 8u

#define BT_REC_EXP 0x01u /* an expiry follows the lengths */
#define BT_REC_OVF 0x02u /* the value lives in an overflow run */

#define BT_LEAF_HDR   7u
#define BT_BRANCH_HDR 10u

#define BT_REF_MEM ((uint64_t)1 << 63)

/* Free-list page: the header's prefix area holds u64 next page and u32
 * count; entries are u32 page numbers from offset BT_HDR_BYTES. */
#define BT_FREE_NEXT_OFF  24u
#define BT_FREE_COUNT_OFF 32u

static inline uint16_t
bt_get16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline uint32_t
bt_get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t
bt_get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void
bt_put16(unsigned char *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static inline void
bt_put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline void
bt_put64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* Ask for the cache line holding address a. GCC deletes a loop whose body
 * is only __builtin_prefetch once it can prove the loop ends (it counts
 * the builtin as free of side effects), so on x86 the instruction is
 * emitted as volatile asm, which stays. */
#if defined(__x86_64__) || defined(__i386__)
#define BT_PREFETCH(a) __asm__ volatile("prefetcht0 (%0)" : : "r"(a))
#else
#define BT_PREFETCH(a) __builtin_prefetch(a)
#endif

#define BT_PG_TYPE(p)     ((p)[0])
#define BT_PG_PFX(p)      ((p)[1])
#define BT_PG_N(p)        bt_get16((p) + 2)
#define BT_PG_LOWER(p)    bt_get16((p) + 4)
#define BT_PG_UPPER(p)    bt_get16((p) + 6)
#define BT_PG_GARB(p)     bt_get16((p) + 8)
#define BT_PG_TXN(p)      bt_get64((p) + 16)
#define BT_SLOT(p, i)     ((p) + BT_HDR_BYTES + (size_t)(i)*BT_SLOT_BYTES)
#define BT_SLOT_OFF(p, i) bt_get16(BT_SLOT(p, i) + 4)
#define BT_SLOT_LEN(p, i) bt_get16(BT_SLOT(p, i) + 6)

/* A decoded leaf record (pointers into the page, or the overflow run). */
struct bt_rec {
    unsigned flags;
    const unsigned char *key;
    size_t klen;
    uint64_t vlen;
    int64_t expire_ms;
    const unsigned char *val; /* inline bytes (NULL for overflow) */
    uint64_t ovf;             /* first page of the run (BT_REC_OVF) */
};

/* An entry to build a page from (bt_page_build). */
struct bt_ent {
    const unsigned char *rec; /* the record bytes */
    size_t len;
    const unsigned char *key;
    size_t klen;
};

/* ---- bt_page.c ---- */

void bt_page_init(unsigned char *p, size_t psize, int type);
void bt_leaf_decode(const unsigned char *p, unsigned i, struct bt_rec *r);
const unsigned char *bt_page_key(const unsigned char *p, unsigned i,
                                 size_t *klen);
uint64_t bt_branch_child(const unsigned char *p, unsigned i);
void bt_branch_set_child(unsigned char *p, unsigned i, uint64_t ref);
/* Lower bound in a leaf: first slot with key >= k; *eq when equal. */
unsigned bt_leaf_search(const unsigned char *p, const void *k, size_t klen,
                        bool *eq);
/* The slot of the child that covers k in a branch. */
unsigned bt_branch_search(const unsigned char *p, const void *k, size_t klen);
size_t bt_page_free_bytes(const unsigned char *p, size_t psize);
size_t bt_page_used_bytes(const unsigned char *p, size_t psize);
/* Insert a record at slot i; false when it does not fit (page unchanged). */
bool bt_page_insert(unsigned char *p, size_t psize, unsigned i,
                    const unsigned char *rec, size_t len,
                    const unsigned char *key, size_t klen);
void bt_page_remove(unsigned char *p, unsigned i);
/* Rebuild p from entries (which may point into p). */
void bt_page_build(unsigned char *p, size_t psize, int type,
                   const struct bt_ent *e, unsigned n, unsigned char *scratch);
/* Copy tree page p to out (psize bytes, not overlapping p) with its
 * records in slot order, ascending from the start of the record area,
 * no dead bytes, and zeroes between the slots and the records. */
void bt_page_pack(const unsigned char *p, unsigned char *out, size_t psize);
/* Fill e[0..n) from p's slots. */
void bt_page_entries(const unsigned char *p, struct bt_ent *e);
size_t bt_leaf_encode(unsigned char *out, const void *key, size_t klen,
                      const void *val, size_t vlen, uint64_t ovf,
                      int64_t expire_ms);
size_t bt_branch_encode(unsigned char *out, uint64_t child, const void *key,
                        size_t klen);
int bt_key_cmp(const void *a, size_t al, const void *b, size_t bl);

/* ---- in-memory structures ---- */

/* An in-memory page; data follows the struct (BT_MPAGE_HDR bytes in). */
struct bt_mpage {
    struct bt_mpage *next; /* retire list, pool, or flush list */
    uint64_t born;         /* the version being built when it was made */
    uint64_t retired;      /* unreachable from this version on */
    uint64_t pgno;         /* file page assigned by a flush, else 0 */
};
#define BT_MPAGE_HDR   64u
#define BT_MP_DATA(mp) ((unsigned char *)(mp) + BT_MPAGE_HDR)

/* A mapping of the data file. */
struct bt_map {
    struct bt_map *next; /* retire list */
    uint64_t retired;
    unsigned char *base;
    uint64_t bytes;
};

/* A published snapshot: immutable once db->cur points to it. */
struct bt_snap {
    struct bt_snap *next; /* retire list / pool */
    uint64_t retired;
    uint64_t ver;
    uint64_t root; /* ref; 0 = empty tree */
    uint32_t depth;
    const struct bt_map *map;
    uint64_t npages;
    uint64_t records;
    uint64_t key_bytes;
    uint64_t value_bytes;
    uint64_t expiring; /* records with an expiry */
    uint64_t txn;      /* the last commit */
    int64_t born_us;   /* monotonic, for the oldest-snapshot age */
};

/* A file page freed by the working tree, reusable once no reader sees the
 * version it was dropped in and (txn != 0) that commit is durable. */
struct bt_freed {
    uint64_t pgno;
    uint64_t ver;
    uint64_t txn;
};

struct bt_vec64 {
    uint64_t *v;
    size_t n;
    size_t cap;
};

struct bt_freedvec {
    struct bt_freed *v;
    size_t n;
    size_t cap;
};

/* Reader slot: one cache line each. */
struct bt_slot {
    _Atomic uint64_t ver;
    char pad[64 - sizeof(uint64_t)];
};

enum bt_sync_mode {
    BT_SYNC_ALWAYS = 0,
    BT_SYNC_EVERYSEC = 1,
    BT_SYNC_NEVER = 2,
};

struct bt_opts {
    int sync;                /* enum bt_sync_mode */
    int64_t sync_interval;   /* ms, everysec */
    int64_t commit_interval; /* ms, never */
    uint64_t page_size;
    uint64_t dirty_limit; /* bytes of in-memory pages that force a flush */
    int64_t fill_percent; /* page fill of compaction and appends */
};

/* A pending group-commit request (sync = always). */
struct bt_wreq;

/* Rollback marks of one atomic unit of work. */
struct bt_mark {
    size_t freed;
    size_t runs;
    size_t created;
    struct bt_mpage *retire_tail;
    size_t retire_n;
    size_t dirty;
    size_t mem_pages;
    struct bt_snap work;
};

/*
 * The engine handle.
 *
 * Fixed after open: host, io, opts, dir, psize, sync.
 * Readers touch only: cur, ver, slots, ovf_* (under ovf_mu), readonly.
 * Everything else is the writer's and guarded by wmu, except the queue
 * fields (qmu) and the committer (open and close only).
 */
struct kvd_engine {
    const struct kvd_host *host;
    const struct kvd_io *io;
    struct bt_opts opts;
    char *dir;
    size_t psize;
    int fd;
    int lock_fd;

    /* readers */
    _Atomic(struct bt_snap *) cur;
    _Atomic uint64_t ver;
    struct bt_slot *slots;
    pthread_mutex_t ovf_mu;
    struct bt_vec64 ovf_vers; /* versions of readers without a slot */
    _Atomic int readonly;
    char state[160]; /* why read-only (set once, under wmu) */

    /* writer (wmu) */
    pthread_mutex_t wmu;
    struct bt_snap work;          /* the working tree: root, depth, counts */
    uint64_t pub_ver;             /* last published version */
    uint64_t commit_ver;          /* the version the last commit wrote */
    struct bt_map *map;           /* current map */
    uint64_t txn;                 /* last commit written (meta) */
    uint64_t durable;             /* last commit known durable */
    unsigned meta_slot;           /* meta page holding txn */
    struct bt_vec64 ready;        /* reusable file pages */
    size_t ready_nsorted;         /* ready[0, this) is sorted descending
                                     (lowest last); the rest unsorted */
    struct bt_freedvec freed;     /* waiting for readers / durability */
    struct bt_vec64 chain;        /* pages of the persisted free list */
    struct bt_vec64 runs;         /* overflow runs written since the commit:
                                     pgno, npages pairs */
    struct bt_vec64 created;      /* mpages made by the current unit */
    struct bt_mpage *retire_head; /* FIFO by version */
    struct bt_mpage *retire_tail;
    size_t retire_n;
    struct bt_snap *sretire_head;
    struct bt_snap *sretire_tail;
    struct bt_map *mretire_head;
    struct bt_mpage *pool;
    size_t pool_n;
    struct bt_snap *spool;
    size_t mem_pages; /* live mpages (working tree + retired) */
    size_t dirty;     /* mpages in the working tree */
    unsigned char *scratch; /* psize bytes for page rebuilds */
    unsigned char *recbuf;  /* psize bytes: the record being inserted */
    struct bt_ent *ents;    /* psize / 8 + 4 entries for splits, merges */
    size_t max_rec;         /* largest record kept inline in a leaf */
    unsigned char *wbuf;    /* flush staging */
    uint64_t commits;
    uint64_t flushes;
    uint64_t pages_written;
    uint64_t syncs;
    uint64_t compactions;
    /* A commit released wmu for its syncs (bt_commit). Meanwhile writers
     * go on, but nothing else may commit, change db->fd or use metabuf:
     * they wait on commit_cv (with wmu) until it is false again. */
    bool committing;
    pthread_cond_t commit_cv;
    unsigned char *metabuf; /* psize bytes: the meta page being committed */

    /* group commit (qmu) */
    pthread_mutex_t qmu;
    struct bt_wreq *qhead;
    struct bt_wreq *qtail;

    /* background committer (everysec, never); set at open, stopped first
     * at close */
    struct kvd_worker *committer;
};
typedef struct kvd_engine bt_db;

/* ---- bt_alloc.c (all under wmu) ---- */

int bt_vec_push(struct bt_vec64 *v, uint64_t x);
void bt_vec_free(struct bt_vec64 *v);
uint64_t bt_min_reader(bt_db *db);
struct bt_mpage *bt_mp_new(bt_db *db);
void bt_mp_retire(bt_db *db, struct bt_mpage *mp);
void bt_reclaim(bt_db *db);
void bt_pool_free_all(bt_db *db);
int bt_free_pgno(bt_db *db, uint64_t pgno, bool durable_page);
int bt_alloc_page(bt_db *db, uint64_t *pgno);
int bt_alloc_run(bt_db *db, uint64_t n, uint64_t *pgno);
void bt_promote(bt_db *db, uint64_t minv);

/* ---- bt_write.c (under wmu) ---- */

static inline const unsigned char *
bt_ref_page(const struct bt_snap *s, uint64_t ref, size_t psize)
{
    if (ref & BT_REF_MEM) {
        return BT_MP_DATA((struct bt_mpage *)(uintptr_t)(ref & ~BT_REF_MEM));
    }
    return s->map->base + ref * psize;
}

static inline uint64_t
bt_mp_ref(const struct bt_mpage *mp)
{
    return (uint64_t)(uintptr_t)mp | BT_REF_MEM;
}

void bt_mark(bt_db *db, struct bt_mark *m);
void bt_rollback(bt_db *db, const struct bt_mark *m);
void bt_unit_done(bt_db *db);
int bt_apply_put(bt_db *db, const void *key, size_t klen, const void *val,
                 size_t vlen, int64_t expire_ms);
/* 0 when a live key was removed, KVD_ENOTFOUND otherwise. */
int bt_apply_del(bt_db *db, const void *key, size_t klen, int64_t now);
int bt_publish(bt_db *db);
int bt_apply_clear(bt_db *db);

/* ---- bt_commit.c ---- */

/* Under wmu. Flush the working tree's in-memory pages to the file; with
 * meta, commit them (meta page; fdatasync when sync), holding wmu
 * throughout. Waits for a commit under way first (bt_commit_wait). */
int bt_flush(bt_db *db, bool meta, bool sync);
/* Under wmu. Commit like bt_flush(db, true, sync), but release wmu for the
 * fdatasyncs and the meta write, so writers go on meanwhile; returns with
 * wmu held, once the commit is durable (0) or the store read-only. */
int bt_commit(bt_db *db, bool sync);
/* Under wmu: wait until no commit is under way (one released wmu). */
void bt_commit_wait(bt_db *db);
int bt_commit_policy(bt_db *db);
void bt_set_readonly(bt_db *db, int rc, const char *what);
void bt_meta_image(bt_db *db, unsigned char *m, const struct bt_snap *s,
                   uint64_t txn, uint64_t freehead, uint64_t nfree,
                   const uint64_t *items, size_t nitems);
/* bt_meta_image into db->scratch, written to meta slot `slot` of fd. */
int bt_write_meta(bt_db *db, int fd, unsigned slot, const struct bt_snap *s,
                  uint64_t txn, uint64_t freehead, uint64_t nfree,
                  const uint64_t *items, size_t nitems);
int bt_write_pages(bt_db *db, int fd, struct bt_mpage **list, size_t n,
                   uint64_t txn);
int bt_group_write(bt_db *db, struct kvd_mop *ops, size_t n,
                   const struct kvd_op *bops, size_t nb, struct kvd_err *err);
int bt_committer_start(bt_db *db);
void bt_committer_stop(bt_db *db);

/* ---- bt_read.c ---- */

struct bt_reader {
    struct bt_slot *slot; /* NULL: registered in ovf_vers */
    uint64_t ver;
    const struct bt_snap *snap;
};

void bt_reader_enter(bt_db *db, struct bt_reader *r);
void bt_reader_leave(bt_db *db, struct bt_reader *r);
int bt_lookup(bt_db *db, const struct bt_snap *s, const void *key, size_t klen,
              struct bt_rec *rec);
const unsigned char *bt_rec_value(const struct bt_snap *s,
                                  const struct bt_rec *rec, size_t psize);
int bt_get(bt_db *db, const void *key, size_t klen, struct kvd_val *out);
int bt_iter_open(bt_db *db, const struct kvd_iter_opts *o, kvd_iter **out,
                 struct kvd_err *err);
int bt_iter_next(kvd_iter *it, struct kvd_entry *out);
/* An iterator over s without a reader registration (the caller keeps s
 * alive: the writer, over its working tree, under wmu); `all` includes
 * expired records. */
int bt_iter_open_at(bt_db *db, const struct bt_snap *s, bool all,
                    kvd_iter **out);
void bt_iter_close(kvd_iter *it);
/* Count live records of snapshot s at time now. */
void bt_count_live(bt_db *db, const struct bt_snap *s, int64_t now,
                   uint64_t *keys, uint64_t *kbytes, uint64_t *vbytes);

/* ---- bt_file.c ---- */

int bt_file_open(bt_db *db, struct kvd_err *err);
int bt_map_ensure(bt_db *db, uint64_t npages);
int bt_compact(bt_db *db, struct kvd_err *err);
void bt_file_close(bt_db *db);

#ifdef __cplusplus
}
#endif

#endif /* KVD_BT_H */
