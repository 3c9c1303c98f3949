/*
 * lsm_version.h -- table files, versions (the set of tables that make up
 * the store at one moment) and version edits (the MANIFEST's records).
 *
 * A version is immutable once built and refcounted: a get or an iterator
 * holds the version it started with, so the tables it reads stay open and
 * on disk however the current version moves on. Level 0 holds tables
 * flushed from memtables, newest (highest file number) first, and their
 * key ranges may overlap; levels 1..6 are sorted by key and their ranges
 * do not overlap.
 *
 * A file object is shared by every version that lists it (refcounted).
 * When an edit that drops a file is durable, the file is marked obsolete;
 * when its last version goes, the version's `gone` callback is told, and
 * the engine deletes the file. Refcounts are atomics; everything else in
 * a file or version is fixed after creation.
 *
 * Edit encoding (docs/formats.md, "lsm engine: MANIFEST"): a sequence of
 * tagged fields, tag varint then the field.
 */
#ifndef KVD_LSM_VERSION_H
#define KVD_LSM_VERSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/status.h"
#include "lsm_iter.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LSM_LEVELS 7

/* ---- version edits ---- */

enum lsm_edit_tag {
    LSM_TAG_LOG_NUMBER = 1, /* varint: WALs below this number are flushed */
    LSM_TAG_NEXT_FILE = 2,  /* varint: next file number to hand out */
    LSM_TAG_LAST_SEQ = 3,   /* varint: last sequence number used */
    LSM_TAG_DEL_FILE = 4,   /* varint level, varint number */
    LSM_TAG_ADD_FILE = 5,   /* varint level, number, size, entries,
                               varstr smallest, varstr largest */
};

#define LSM_EDIT_HAS_LOG_NUMBER 0x1u
#define LSM_EDIT_HAS_NEXT_FILE  0x2u
#define LSM_EDIT_HAS_LAST_SEQ   0x4u

struct lsm_edit_del {
    int level;
    uint64_t number;
};

struct lsm_edit_add {
    int level;
    uint64_t number;
    uint64_t size;
    uint64_t entries;
    struct lsm_slice smallest; /* internal keys, owned by the edit */
    struct lsm_slice largest;
};

struct lsm_edit {
    unsigned has; /* LSM_EDIT_HAS_* */
    uint64_t log_number;
    uint64_t next_file;
    uint64_t last_seq;
    struct lsm_edit_del *dels;
    size_t ndels;
    size_t dels_cap;
    struct lsm_edit_add *adds;
    size_t nadds;
    size_t adds_cap;
};

void lsm_edit_init(struct lsm_edit *e);
void lsm_edit_release(struct lsm_edit *e);
void lsm_edit_set_log_number(struct lsm_edit *e, uint64_t n);
void lsm_edit_set_next_file(struct lsm_edit *e, uint64_t n);
void lsm_edit_set_last_seq(struct lsm_edit *e, uint64_t n);
/* 0 or KVD_ENOMEM; keys are copied. */
int lsm_edit_add_file(struct lsm_edit *e, int level, uint64_t number,
                      uint64_t size, uint64_t entries,
                      struct lsm_slice smallest, struct lsm_slice largest);
int lsm_edit_del_file(struct lsm_edit *e, int level, uint64_t number);

/* Encode into a malloc'd buffer (*out, *n; the caller frees). */
int lsm_edit_encode(const struct lsm_edit *e, unsigned char **out, size_t *n);
/* Decode into e (initialised, empty). 0, KVD_ECORRUPT or KVD_ENOMEM. */
int lsm_edit_decode(struct lsm_edit *e, const void *p, size_t n);

/* ---- files and versions ---- */

struct lsm_table; /* lsm_table.h */

struct lsm_file {
    _Atomic int refs;
    _Atomic bool obsolete; /* a durable edit dropped it */
    /* the engine's open reader for this file, or NULL: set once (CAS),
     * owned by the file, handed to `release` when the file goes; a
     * reader holding a version that lists the file may use it without a
     * reference of its own */
    _Atomic(struct lsm_table *) table;
    uint64_t number;
    uint64_t size;
    uint64_t entries;
    struct lsm_slice smallest; /* internal keys, owned */
    struct lsm_slice largest;
};

/* Parameters of compaction scores (fixed, owned by the engine). */
struct lsm_vconf {
    int l0_trigger;       /* L0 files for a score of 1 */
    uint64_t level1_size; /* bytes of L1 for a score of 1; x10 per level */
    /* called when the last version listing an obsolete file goes */
    void (*gone)(void *ctx, struct lsm_file *f);
    /* called when any file object is freed and has a table (may be NULL) */
    void (*release)(void *ctx, struct lsm_file *f);
    void *ctx;
};

typedef struct lsm_version {
    _Atomic int refs;
    const struct lsm_vconf *conf;
    uint64_t id; /* increases with every version built */
    struct lsm_file **files[LSM_LEVELS];
    size_t nfiles[LSM_LEVELS];
    uint64_t level_bytes[LSM_LEVELS];
    /* the level most in need of compaction and its score (>= 1: due) */
    int cscore_level;
    double cscore;
} lsm_version;

/* An empty version. */
int lsm_version_create(const struct lsm_vconf *conf, lsm_version **out);
void lsm_version_ref(lsm_version *v);
void lsm_version_unref(lsm_version *v); /* NULL: no-op */

/* A new version: base with e's deletions, then its additions, applied.
 * KVD_ECORRUPT when e deletes a file base does not have, adds one twice,
 * or leaves two files overlapping in a level >= 1. */
int lsm_version_apply(const lsm_version *base, const struct lsm_edit *e,
                      lsm_version **out);

/* Mark the files e deletes (and does not add back) obsolete. */
void lsm_version_mark_obsolete(const lsm_version *base,
                               const struct lsm_edit *e);

/* Byte budget of a level >= 1. */
uint64_t lsm_level_max_bytes(const struct lsm_vconf *c, int level);

/* Index of the file of a level >= 1 whose range may hold user key k, or
 * -1. */
ptrdiff_t lsm_version_find(const lsm_version *v, int level, const void *k,
                           size_t kn);

/* Does any file of `level` overlap the user key range [lo, hi]? lo/hi
 * NULL = unbounded. */
bool lsm_version_overlaps(const lsm_version *v, int level,
                          const struct lsm_slice *lo,
                          const struct lsm_slice *hi);

/* Files of `level` overlapping [lo, hi] (user keys; NULL = unbounded),
 * appended to *out (realloc'd; *n updated). For level 0 the range grows
 * to cover every file it takes, until no other L0 file overlaps it. */
int lsm_version_overlapping(const lsm_version *v, int level,
                            const struct lsm_slice *lo,
                            const struct lsm_slice *hi, struct lsm_file ***out,
                            size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* KVD_LSM_VERSION_H */
