/*
 * alog_format.c -- encoding and decoding of the log engine's file headers,
 * records and hint entries. The layout is described in alog_format.h and
 * docs/formats.md; this file is the only code that knows byte offsets.
 */
#include "alog_format.h"

#include "kvd/kit_crc32c.h"
#include "kvd/status.h"

void
alog_file_hdr_encode(unsigned char *p, int kind, uint64_t created_seq)
{
    memcpy(p, ALOG_FILE_MAGIC, 4);
    alog_put_u16(p + 4, ALOG_FORMAT_VERSION);
    alog_put_u16(p + 6, (uint16_t)kind);
    alog_put_u64(p + 8, created_seq);
}

int
alog_file_hdr_decode(const unsigned char *p, struct alog_file_hdr *h)
{
    if (memcmp(p, ALOG_FILE_MAGIC, 4) != 0) {
        return KVD_ECORRUPT;
    }
    h->version = alog_get_u16(p + 4);
    h->kind = alog_get_u16(p + 6);
    h->created_seq = alog_get_u64(p + 8);
    if (h->version != ALOG_FORMAT_VERSION) {
        return KVD_ENOTSUP;
    }
    return 0;
}

void
alog_rec_seal(unsigned char *p, const struct alog_rec_hdr *h)
{
    uint64_t total;

    p[4] = h->kind;
    p[5] = h->flags;
    alog_put_u16(p + 6, h->klen);
    alog_put_u32(p + 8, h->vlen);
    alog_put_u64(p + 12, h->seq);
    alog_put_u64(p + 20, (uint64_t)h->expire_ms);
    alog_put_u64(p + 28, (uint64_t)h->ts_ms);
    total = alog_rec_total(h);
    alog_put_u32(p, kvd_crc32c_mask(kvd_crc32c(0, p + 4, total - 4)));
}

void
alog_rec_hdr_decode(const unsigned char *p, struct alog_rec_hdr *h)
{
    h->crc = alog_get_u32(p);
    h->kind = p[4];
    h->flags = p[5];
    h->klen = alog_get_u16(p + 6);
    h->vlen = alog_get_u32(p + 8);
    h->seq = alog_get_u64(p + 12);
    h->expire_ms = (int64_t)alog_get_u64(p + 20);
    h->ts_ms = (int64_t)alog_get_u64(p + 28);
}

int
alog_rec_hdr_sane(const struct alog_rec_hdr *h, int in_batch)
{
    if (h->flags != (in_batch ? ALOG_REC_IN_BATCH : 0)) {
        return 0;
    }
    switch (h->kind) {
    case ALOG_REC_PUT:
        return h->klen > 0 && h->vlen <= ALOG_MAX_VALUE_BYTES &&
               h->expire_ms >= 0;
    case ALOG_REC_DEL:
        return h->klen > 0 && h->vlen == 0;
    case ALOG_REC_BATCH:
        if (in_batch) {
            return 0;
        }
        /* at least one op of at least a header and a one-byte key */
        return h->klen == 0 && h->expire_ms > 0 &&
               (uint64_t)h->vlen >=
                   (uint64_t)h->expire_ms * (ALOG_REC_HDR_BYTES + 1);
    default:
        return 0;
    }
}

uint64_t
alog_rec_total(const struct alog_rec_hdr *h)
{
    return alog_rec_bytes(h->klen, h->vlen);
}

int
alog_rec_crc_ok(const unsigned char *p, uint64_t total)
{
    uint32_t want = alog_get_u32(p);
    return kvd_crc32c_mask(kvd_crc32c(0, p + 4, total - 4)) == want;
}

void
alog_hint_ent_encode(unsigned char *p, const struct alog_hint_ent *e)
{
    alog_put_u64(p, e->seq);
    alog_put_u64(p + 8, (uint64_t)e->expire_ms);
    alog_put_u32(p + 16, e->off);
    alog_put_u32(p + 20, e->vlen);
    alog_put_u16(p + 24, e->klen);
    p[26] = e->kind;
}

void
alog_hint_ent_decode(const unsigned char *p, struct alog_hint_ent *e)
{
    e->seq = alog_get_u64(p);
    e->expire_ms = (int64_t)alog_get_u64(p + 8);
    e->off = alog_get_u32(p + 16);
    e->vlen = alog_get_u32(p + 20);
    e->klen = alog_get_u16(p + 24);
    e->kind = p[26];
}
