/*
 * alog_format.h -- the on-disk format of the log engine (docs/formats.md).
 *
 * All integers are little-endian. Every file starts with a 16-byte file
 * header (magic, format version, file kind, creation sequence number).
 *
 * Data record (ALOG_REC_HDR_BYTES = 36, then key, then value):
 *     0  u32 crc       masked crc32c of bytes 4 .. end of the record
 *     4  u8  kind      1 put, 2 tombstone, 3 batch frame
 *     5  u8  flags     bit0: operation inside a batch frame; others 0
 *     6  u16 klen      key bytes (batch frame: 0)
 *     8  u32 vlen      value bytes (batch frame: body bytes)
 *    12  u64 seq       global sequence number (batch frame: first op's)
 *    20  i64 expire_ms absolute Unix ms, 0 = none (batch frame: op count)
 *    28  i64 ts_ms     wall clock when written
 * A batch frame's body is its operations as ordinary put/tombstone records
 * (each with its own crc, so a point read checks one record); the frame's
 * crc covers the whole body, so recovery applies all of it or none.
 *
 * Hint entry (ALOG_HINT_ENT_BYTES = 27, then key):
 *     0 u64 seq, 8 i64 expire_ms, 16 u32 offset, 20 u32 vlen, 24 u16 klen,
 *    26 u8 kind
 * followed at the end of the file by the trailer (ALOG_HINT_TRAILER_BYTES):
 *     0 u64 data_bytes (length of the data file described), 8 u64 count,
 *    16 u32 magic, 20 u32 masked crc32c of everything before it.
 *
 * Pure functions, no state: thread-safe.
 */
#ifndef KVD_ALOG_FORMAT_H
#define KVD_ALOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALOG_FORMAT_VERSION     1
#define ALOG_FILE_MAGIC         "kvdL"
#define ALOG_FILE_HDR_BYTES     16
#define ALOG_REC_HDR_BYTES      36
#define ALOG_HINT_ENT_BYTES     27
#define ALOG_HINT_TRAILER_BYTES 24
#define ALOG_HINT_TRAILER_MAGIC 0x544e4948u /* "HINT" */
#define ALOG_MAX_KEY_BYTES      65535u
#define ALOG_MAX_VALUE_BYTES    (1u << 30) /* 1 GiB */
/* Offsets are u32, so a segment never grows past 4 GiB: the largest
 * segment_size plus one largest record stays below that. */
#define ALOG_MAX_SEGMENT_BYTES (2ull << 30)

enum alog_file_kind {
    ALOG_FILE_DATA = 1,   /* a segment written by appends */
    ALOG_FILE_MERGED = 2, /* a segment written by a merge */
    ALOG_FILE_HINT = 3,
    ALOG_FILE_MERGE_COMMIT = 4,
    ALOG_FILE_MANIFEST = 5,
    ALOG_FILE_INDEX = 6, /* the index file (alog_ixfile.c): a cache */
};

/* Record flags. A record inside a batch frame carries ALOG_REC_IN_BATCH so
 * that resynchronising after damage never picks up a lone operation of a
 * batch whose frame failed its crc (that would break all-or-nothing). */
#define ALOG_REC_IN_BATCH 0x01u

enum alog_rec_kind {
    ALOG_REC_PUT = 1,
    ALOG_REC_DEL = 2,
    ALOG_REC_BATCH = 3,
};

struct alog_file_hdr {
    uint16_t version;
    uint16_t kind;
    uint64_t created_seq;
};

struct alog_rec_hdr {
    uint32_t crc; /* as stored (masked) */
    uint8_t kind;
    uint8_t flags;
    uint16_t klen;
    uint32_t vlen;
    uint64_t seq;
    int64_t expire_ms;
    int64_t ts_ms;
};

struct alog_hint_ent {
    uint64_t seq;
    int64_t expire_ms;
    uint32_t off;
    uint32_t vlen;
    uint16_t klen;
    uint8_t kind;
};

/* Little-endian fixed-width integers. On a little-endian host these are
 * plain unaligned loads and stores (memcpy compiles to one move); the byte
 * loops are the portable definition. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ALOG_LE_HOST 1
#else
#define ALOG_LE_HOST 0
#endif

static inline void
alog_put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void
alog_put_u32(unsigned char *p, uint32_t v)
{
    if (ALOG_LE_HOST) {
        memcpy(p, &v, 4);
        return;
    }
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static inline void
alog_put_u64(unsigned char *p, uint64_t v)
{
    if (ALOG_LE_HOST) {
        memcpy(p, &v, 8);
        return;
    }
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static inline uint16_t
alog_get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t
alog_get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    if (ALOG_LE_HOST) {
        memcpy(&v, p, 4);
        return v;
    }
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline uint64_t
alog_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    if (ALOG_LE_HOST) {
        memcpy(&v, p, 8);
        return v;
    }
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Total bytes of a put/tombstone record. */
static inline uint64_t
alog_rec_bytes(size_t klen, size_t vlen)
{
    return ALOG_REC_HDR_BYTES + (uint64_t)klen + (uint64_t)vlen;
}

void alog_file_hdr_encode(unsigned char *p, int kind, uint64_t created_seq);
/* 0, or KVD_ECORRUPT (bad magic) or KVD_ENOTSUP (unknown version). */
int alog_file_hdr_decode(const unsigned char *p, struct alog_file_hdr *h);

/* Write the header of a record whose key and value (or batch body) already
 * follow it at p + ALOG_REC_HDR_BYTES, then compute and store the crc. */
void alog_rec_seal(unsigned char *p, const struct alog_rec_hdr *h);

/* Decode the fixed header; no crc check. */
void alog_rec_hdr_decode(const unsigned char *p, struct alog_rec_hdr *h);

/* Plausibility of a decoded header: known kind, the flags expected at top
 * level (in_batch = 0) or inside a batch body (in_batch = 1), lengths in
 * range. Cheap; used before a crc is worth computing. */
int alog_rec_hdr_sane(const struct alog_rec_hdr *h, int in_batch);

/* Bytes the record occupies, header included (after a sane header). */
uint64_t alog_rec_total(const struct alog_rec_hdr *h);

/* Nonzero when the crc of the `total` bytes at p matches. */
int alog_rec_crc_ok(const unsigned char *p, uint64_t total);

void alog_hint_ent_encode(unsigned char *p, const struct alog_hint_ent *e);
void alog_hint_ent_decode(const unsigned char *p, struct alog_hint_ent *e);

#ifdef __cplusplus
}
#endif

#endif /* KVD_ALOG_FORMAT_H */
