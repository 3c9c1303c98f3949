/*
 * lsm_iter.h -- internal keys and the one iterator shape every lsm layer
 * (memtable, block, table, level, merging) produces.
 *
 * Internal key = user key bytes followed by an 8-byte little-endian trailer
 * (seq << 8) | type. Internal keys sort by user key ascending (memcmp, the
 * shorter first on a tie), then by trailer descending, so the newest
 * version of a key comes first and a seek to (key, snapshot_seq,
 * LSM_T_SEEK) lands on the newest version visible at that snapshot.
 *
 * Values: type PUT carries the value bytes as they are; type PUTX carries
 * an 8-byte little-endian expiry (absolute Unix ms) followed by the value
 * bytes; type DEL carries no value.
 *
 * Private to the lsm engine and its tests.
 */
#ifndef KVD_LSM_ITER_H
#define KVD_LSM_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kvd/kit_coding.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lsm_vtype {
    LSM_T_DEL = 0,
    LSM_T_PUT = 1,
    LSM_T_PUTX = 2, /* value = expire_ms i64 LE | bytes */
};

/* The highest type: a seek key built with it sorts before every real
 * entry of the same user key and seq. */
#define LSM_T_SEEK LSM_T_PUTX

#define LSM_SEQ_MAX       ((UINT64_C(1) << 56) - 1)
#define LSM_TRAILER_BYTES 8

struct lsm_slice {
    const void *p;
    size_t n;
};

static inline uint64_t
lsm_pack_trailer(uint64_t seq, int type)
{
    return (seq << 8) | (uint64_t)type;
}

/* Parts of an internal key (n >= 8, checked by whoever decoded it). */
static inline struct lsm_slice
lsm_ikey_user(struct lsm_slice ik)
{
    struct lsm_slice u = {ik.p, ik.n - LSM_TRAILER_BYTES};
    return u;
}

static inline uint64_t
lsm_ikey_trailer(struct lsm_slice ik)
{
    return kvd_get_le64((const char *)ik.p + ik.n - LSM_TRAILER_BYTES);
}

/* 8 bytes as a big-endian integer, so that integer order is memcmp order
 * (one load and a byte swap on little-endian CPUs). */
static inline uint64_t
lsm_load64_be(const void *p)
{
    return __builtin_bswap64(kvd_get_le64(p));
}

/* memcmp order, the shorter first on a tie. Compares 8 bytes at a time
 * inline: keys are short, and this is the innermost call of every seek,
 * merge step and index search, where a libc call costs more than the
 * comparison itself. */
static inline int
lsm_user_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    const unsigned char *x = a;
    const unsigned char *y = b;
    size_t n = an < bn ? an : bn;

    for (; n >= 8; n -= 8, x += 8, y += 8) {
        uint64_t u = lsm_load64_be(x);
        uint64_t v = lsm_load64_be(y);
        if (u != v) {
            return u < v ? -1 : 1;
        }
    }
    for (; n > 0; n--, x++, y++) {
        if (*x != *y) {
            return *x < *y ? -1 : 1;
        }
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

/* Equal user keys (an inline lsm_user_cmp(...) == 0). */
static inline bool
lsm_user_eq(const void *a, size_t an, const void *b, size_t bn)
{
    const unsigned char *x = a;
    const unsigned char *y = b;

    if (an != bn) {
        return false;
    }
    for (; an >= 8; an -= 8, x += 8, y += 8) {
        if (kvd_get_le64(x) != kvd_get_le64(y)) {
            return false;
        }
    }
    return an == 0 || memcmp(x, y, an) == 0;
}

/* Internal-key order (see the top of this file). */
static inline int
lsm_ikey_cmp(struct lsm_slice a, struct lsm_slice b)
{
    int c = lsm_user_cmp(a.p, a.n - LSM_TRAILER_BYTES, b.p,
                         b.n - LSM_TRAILER_BYTES);
    if (c != 0) {
        return c;
    }
    uint64_t ta = lsm_ikey_trailer(a), tb = lsm_ikey_trailer(b);
    return ta > tb ? -1 : ta < tb ? 1 : 0;
}

/*
 * An iterator over internal keys in lsm_ikey_cmp order. key() and value()
 * stay valid until the next call that moves the iterator or destroys it.
 * Errors (a bad block checksum, a failed pread) make the iterator invalid
 * and status() return the code (KVD_ECORRUPT, KVD_EIO); status() is 0
 * otherwise, including at the end.
 */
typedef struct lsm_it lsm_it;

struct lsm_it_ops {
    bool (*valid)(lsm_it *it);
    void (*seek_first)(lsm_it *it);
    /* Position at the first entry >= target (an internal key). */
    void (*seek)(lsm_it *it, struct lsm_slice target);
    void (*next)(lsm_it *it);
    struct lsm_slice (*key)(lsm_it *it);
    struct lsm_slice (*value)(lsm_it *it);
    int (*status)(lsm_it *it);
    void (*destroy)(lsm_it *it);
};

struct lsm_it {
    const struct lsm_it_ops *ops;
};

#ifdef __cplusplus
}
#endif

#endif /* KVD_LSM_ITER_H */
