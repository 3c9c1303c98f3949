/*
 * lsm_batch.c -- the WAL batch record of the lsm engine: the payload of one
 * WAL record is one batch of operations (lsm_db.h has the layout), written
 * by put, del, batch and multi and read back by recovery.
 *
 * Pure functions over caller buffers: thread-safe.
 */
#include "lsm_db.h"

#include <string.h>

#include "kvd/kit_coding.h"

size_t
lsm_op_bytes(size_t klen, int type, size_t vlen)
{
    size_t n = 1 + kvd_varint_len(klen) + klen;
    if (type != LSM_T_DEL) {
        size_t stored = vlen + (type == LSM_T_PUTX ? 8 : 0);
        n += kvd_varint_len(stored) + stored;
    }
    return n;
}

unsigned char *
lsm_op_encode(unsigned char *p, int type, const void *key, size_t klen,
              int64_t expire_ms, const void *val, size_t vlen)
{
    *p++ = (unsigned char)type;
    p = kvd_put_varint64(p, klen);
    memcpy(p, key, klen);
    p += klen;
    if (type == LSM_T_DEL) {
        return p;
    }
    p = kvd_put_varint64(p, vlen + (type == LSM_T_PUTX ? 8 : 0));
    if (type == LSM_T_PUTX) {
        kvd_put_le64(p, (uint64_t)expire_ms);
        p += 8;
    }
    if (vlen > 0) {
        memcpy(p, val, vlen);
    }
    return p + vlen;
}

void
lsm_batch_hdr_encode(unsigned char *p, uint64_t seq, uint32_t count)
{
    kvd_put_le64(p, seq);
    kvd_put_le32(p + 8, count);
}

int
lsm_batch_decode(const void *buf, size_t n, uint64_t *first_seq,
                 uint32_t *count, lsm_batch_fn fn, void *ctx)
{
    const uint8_t *p = buf;
    const uint8_t *end = p + n;
    uint64_t seq;
    uint32_t cnt;

    if (n < LSM_BATCH_HDR_BYTES) {
        return KVD_ECORRUPT;
    }
    seq = kvd_get_le64(p);
    cnt = kvd_get_le32(p + 8);
    p += LSM_BATCH_HDR_BYTES;
    if (seq == 0 || seq > LSM_SEQ_MAX || cnt == 0 ||
        seq + cnt - 1 > LSM_SEQ_MAX) {
        return KVD_ECORRUPT;
    }
    for (uint32_t i = 0; i < cnt; i++) {
        int type;
        uint64_t klen;
        uint64_t vlen = 0;
        const uint8_t *key;
        struct lsm_slice v = {NULL, 0};
        int rc;

        if (p >= end) {
            return KVD_ECORRUPT;
        }
        type = *p++;
        if (type != LSM_T_DEL && type != LSM_T_PUT && type != LSM_T_PUTX) {
            return KVD_ECORRUPT;
        }
        p = kvd_get_varint64(p, end, &klen);
        if (p == NULL || klen == 0 || klen > LSM_MAX_KEY_BYTES ||
            klen > (uint64_t)(end - p)) {
            return KVD_ECORRUPT;
        }
        key = p;
        p += klen;
        if (type != LSM_T_DEL) {
            p = kvd_get_varint64(p, end, &vlen);
            if (p == NULL || vlen > (uint64_t)(end - p) ||
                (type == LSM_T_PUTX && vlen < 8)) {
                return KVD_ECORRUPT;
            }
            v.p = p;
            v.n = (size_t)vlen;
            p += vlen;
        }
        if (fn != NULL) {
            rc = fn(ctx, seq + i, type, key, (size_t)klen, v);
            if (rc != 0) {
                return rc;
            }
        }
    }
    if (p != end) {
        return KVD_ECORRUPT;
    }
    *first_seq = seq;
    *count = cnt;
    return 0;
}
