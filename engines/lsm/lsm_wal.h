/*
 * lsm_wal.h -- the record log of the lsm engine: the write-ahead log and
 * the MANIFEST are both sequences of records in this format.
 *
 * Format (docs/formats.md, "lsm engine: WAL"): the file is cut into 32 KiB
 * blocks. A record is written as one or more fragments, each with a 7-byte
 * header: masked crc32c (u32 LE, over the type byte and the fragment's
 * bytes), length (u16 LE), type (FULL, FIRST, MIDDLE, LAST). A fragment
 * never crosses a block boundary; when fewer than 7 bytes are left in a
 * block they are zero-filled and the next fragment starts the next block.
 * So every block starts with a fragment header, which is what lets a
 * reader resynchronise after damage.
 *
 * The first record of every file is its 16-byte file header (magic
 * "kvdW", format version, file kind, creation sequence number).
 *
 * Zero tail: a writer may preallocate the file ahead of its records by
 * writing zeros (so that appending into it and syncing does not change
 * the file's size: a pure data flush). A fragment header can never be all
 * zero (type 0 is not a fragment type), so the reader takes the point
 * after which every byte is zero as the end of the log: not damage, not a
 * torn tail. A record cut short by a crash and followed by zeros is a
 * torn tail, as it is at the end of a file.
 *
 * Writer: not thread-safe (the caller serialises; the WAL under the write
 * lock, the MANIFEST under the compaction lock). A record goes to the file
 * with a single pwrite. Reader: pure, over a buffer holding the whole file.
 */
#ifndef KVD_LSM_WAL_H
#define KVD_LSM_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/host.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LSM_LOG_BLOCK_BYTES  32768
#define LSM_LOG_HEADER_BYTES 7

enum lsm_log_frag {
    LSM_LOG_ZERO = 0, /* never written: zeroed space */
    LSM_LOG_FULL = 1,
    LSM_LOG_FIRST = 2,
    LSM_LOG_MIDDLE = 3,
    LSM_LOG_LAST = 4,
};

/* The file header record (the first record of a WAL or MANIFEST). */
#define LSM_FILE_MAGIC         "kvdW"
#define LSM_FILE_VERSION       1
#define LSM_FILE_HDR_BYTES     16
#define LSM_FILE_KIND_WAL      2
#define LSM_FILE_KIND_MANIFEST 3

void lsm_file_hdr_encode(unsigned char out[LSM_FILE_HDR_BYTES], int kind,
                         uint64_t created_seq);
/* 0 when p (n bytes) is a header of `kind`; KVD_ECORRUPT otherwise. */
int lsm_file_hdr_check(const void *p, size_t n, int kind,
                       uint64_t *created_seq);

/* Bytes the fragments of an n-byte record take when the current block
 * already holds block_off bytes (padding included). */
size_t lsm_log_encoded_size(size_t block_off, size_t n);

/* Encode an n-byte record into out (lsm_log_encoded_size bytes) starting
 * at block offset block_off; returns the block offset after it. */
size_t lsm_log_encode(size_t block_off, const void *rec, size_t n,
                      unsigned char *out);

/* ---- writer ---- */

struct lsm_logw {
    const struct kvd_io *io;
    int fd;             /* borrowed; the owner closes it */
    uint64_t off;       /* end of the records: where the next one goes */
    uint64_t alloc;     /* bytes in the file (>= off; zeros after off) */
    uint64_t chunk;     /* preallocation step in bytes, 0 = none */
    unsigned char *buf; /* scratch for one encoded record */
    size_t cap;
};

/* Start writing at the end of fd, which holds `off` bytes already (no
 * preallocation). */
void lsm_logw_init(struct lsm_logw *w, const struct kvd_io *io, int fd,
                   uint64_t off);
void lsm_logw_release(struct lsm_logw *w);

/*
 * Preallocate from now on in steps of `chunk` bytes (0 turns it off):
 * zeros are written up to the next multiple of chunk after w->off now,
 * and whenever a record reaches w->alloc, in the same call as that
 * record. The caller syncs as usual: the sync that follows an extension
 * also makes the new size durable, and the syncs after it are pure data
 * flushes. 0, or the status of a failed write; w->alloc then covers what
 * was written and the file stays usable (zeros are never a record).
 */
int lsm_logw_prealloc(struct lsm_logw *w, uint64_t chunk);

/* Append one record with one pwrite (plus, with preallocation, a zero
 * fill when the record reaches the end of the file). 0, KVD_ENOMEM, or
 * KVD_EIO/KVD_ENOSPC (errno is kept from the failed call). On failure
 * w->off is unchanged, but the file may hold a partial record: the caller
 * stops using it. A failed zero fill after a written record is not a
 * failure: preallocation stops and the record stands. */
int lsm_logw_add(struct lsm_logw *w, const void *rec, size_t n);

/* Bytes lsm_logw_add of an n-byte record writes (fragments and padding):
 * what a failed add may have left after w->off. */
size_t lsm_logw_record_bytes(const struct lsm_logw *w, size_t n);

/* Write n zeros at w->off (w->off stays): wipes what a failed add left,
 * so the log ends there again (zeros are never a record). 0 or a status. */
int lsm_logw_zero(struct lsm_logw *w, uint64_t n);

/* ---- reader ---- */

struct lsm_logr {
    const unsigned char *data; /* the whole file, borrowed */
    size_t size;
    size_t end;         /* where the all-zero tail starts (size if none) */
    size_t pos;         /* next fragment header */
    unsigned char *rec; /* reassembled multi-fragment record (owned) */
    size_t rec_len;
    size_t rec_cap;
    uint64_t rec_off;   /* offset of the record last returned */
    uint64_t valid_end; /* end of the last good fragment consumed */
    /* damaged regions that valid fragments follow */
    uint64_t ncorrupt;
    uint64_t corrupt_off;   /* first byte of the latest such region */
    uint64_t corrupt_bytes; /* total bytes dropped for damage */
    /* a damaged or incomplete end of the file with nothing valid after */
    bool torn;
    uint64_t torn_off; /* where the torn tail starts */
};

void lsm_logr_init(struct lsm_logr *r, const void *data, size_t size);
void lsm_logr_release(struct lsm_logr *r);

/*
 * The next record: 0 with *p, *n set (valid until the next call), or
 * KVD_ENOTFOUND at the end of the file or at a zero tail (r->torn says
 * whether the end was torn), or KVD_ENOMEM. Damage followed by valid data is
 * skipped and counted in r->ncorrupt before the record after it is returned, so
 * a caller that compares ncorrupt before and after each call knows whether
 * anything was lost in between.
 */
int lsm_logr_next(struct lsm_logr *r, const void **p, size_t *n);

#ifdef __cplusplus
}
#endif

#endif /* KVD_LSM_WAL_H */
