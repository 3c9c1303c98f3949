/*
 * bt_page.c -- one page of the btree engine: the slotted layout of bt.h,
 * binary search, record insert and removal, and rebuilding a page from a
 * list of records (splits, merges, compaction of dead bytes).
 *
 * Search cost is what this file is about. Every key of a page shares the
 * page's prefix (stored once in the header), and each slot carries the
 * next 4 key bytes as a big-endian "head", so a binary search compares
 * integers in the slot array and touches a record only when two heads are
 * equal. Keys of the benchmarks (zero-padded decimal numbers) share long
 * prefixes, which is exactly where a plain memcmp search misses the cache
 * on every probe.
 *
 * Pages passed here are writable copies owned by the writer (or fresh
 * buffers); nothing here knows about versions or files.
 */
#include "bt.h"

#include <assert.h>

int
bt_key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m > 0 ? memcmp(a, b, m) : 0;

    if (c != 0) {
        return c;
    }
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static inline uint32_t
head_of(const unsigned char *k, size_t klen, size_t pfx)
{
    uint32_t h = 0;
    size_t rem;

    if (klen >= pfx + 4) {
        memcpy(&h, k + pfx, 4);
        return __builtin_bswap32(h);
    }
    rem = klen > pfx ? klen - pfx : 0;
    for (size_t i = 0; i < rem; i++) {
        h |= (uint32_t)k[pfx + i] << (24 - 8 * i);
    }
    return h;
}

void
bt_page_init(unsigned char *p, size_t psize, int type)
{
    memset(p, 0, BT_HDR_BYTES);
    p[0] = (unsigned char)type;
    bt_put16(p + 4, BT_HDR_BYTES);
    bt_put16(p + 6, (uint16_t)(psize == 65536 ? 65535 : psize));
}

const unsigned char *
bt_page_key(const unsigned char *p, unsigned i, size_t *klen)
{
    const unsigned char *r = p + BT_SLOT_OFF(p, i);

    if (BT_PG_TYPE(p) == BT_PAGE_LEAF) {
        *klen = bt_get16(r + 1);
        return r + BT_LEAF_HDR + ((r[0] & BT_REC_EXP) ? 8 : 0);
    }
    *klen = bt_get16(r + 8);
    return r + BT_BRANCH_HDR;
}

void
bt_leaf_decode(const unsigned char *p, unsigned i, struct bt_rec *rec)
{
    const unsigned char *r = p + BT_SLOT_OFF(p, i);
    const unsigned char *q = r + BT_LEAF_HDR;

    rec->flags = r[0];
    rec->klen = bt_get16(r + 1);
    rec->vlen = bt_get32(r + 3);
    rec->expire_ms = 0;
    if (rec->flags & BT_REC_EXP) {
        rec->expire_ms = (int64_t)bt_get64(q);
        q += 8;
    }
    rec->key = q;
    q += rec->klen;
    if (rec->flags & BT_REC_OVF) {
        rec->val = NULL;
        rec->ovf = bt_get64(q);
    } else {
        rec->val = q;
        rec->ovf = 0;
    }
}

uint64_t
bt_branch_child(const unsigned char *p, unsigned i)
{
    return bt_get64(p + BT_SLOT_OFF(p, i));
}

void
bt_branch_set_child(unsigned char *p, unsigned i, uint64_t ref)
{
    bt_put64(p + BT_SLOT_OFF(p, i), ref);
}

/* Where k falls against the page prefix: -1 before every key of the
 * page, 1 after every key, 0 when it shares the prefix. */
static inline int
prefix_side(const unsigned char *p, const unsigned char *k, size_t klen)
{
    size_t pfx = BT_PG_PFX(p);
    size_t m = klen < pfx ? klen : pfx;
    int c = m > 0 ? memcmp(k, p + BT_PFX_OFF, m) : 0;

    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    return klen < pfx ? -1 : 0;
}

/* Compare k (sharing the prefix) with the key of slot i. */
static inline int
cmp_slot(const unsigned char *p, unsigned i, const unsigned char *k,
         size_t klen, uint32_t hk)
{
    uint32_t h = bt_get32(BT_SLOT(p, i));
    size_t pfx = BT_PG_PFX(p);
    const unsigned char *sk;
    size_t sl;

    if (h != hk) {
        return hk < h ? -1 : 1;
    }
    sk = bt_page_key(p, i, &sl);
    return bt_key_cmp(k + pfx, klen - pfx, sk + pfx, sl - pfx);
}

unsigned
bt_leaf_search(const unsigned char *p, const void *key, size_t klen, bool *eq)
{
    const unsigned char *k = key;
    unsigned n = BT_PG_N(p);
    unsigned lo = 0, hi = n;
    int side;
    uint32_t hk;

    *eq = false;
    if (n == 0) {
        return 0;
    }
    side = prefix_side(p, k, klen);
    if (side != 0) {
        return side < 0 ? 0 : n;
    }
    hk = head_of(k, klen, BT_PG_PFX(p));
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        int c = cmp_slot(p, mid, k, klen, hk);
        if (c > 0) {
            lo = mid + 1;
        } else if (c < 0) {
            hi = mid;
        } else {
            *eq = true;
            return mid;
        }
    }
    return lo;
}

unsigned
bt_branch_search(const unsigned char *p, const void *key, size_t klen)
{
    const unsigned char *k = key;
    unsigned n = BT_PG_N(p);
    unsigned lo = 1, hi = n;
    int side;
    uint32_t hk;

    if (n <= 1) {
        return 0;
    }
    side = prefix_side(p, k, klen);
    if (side != 0) {
        return side < 0 ? 0 : n - 1;
    }
    hk = head_of(k, klen, BT_PG_PFX(p));
    /* first slot in [1, n) whose key is > k, minus one */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cmp_slot(p, mid, k, klen, hk) >= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo - 1;
}

size_t
bt_page_free_bytes(const unsigned char *p, size_t psize)
{
    (void)psize;
    return (size_t)(BT_PG_UPPER(p) - BT_PG_LOWER(p)) + BT_PG_GARB(p);
}

size_t
bt_page_used_bytes(const unsigned char *p, size_t psize)
{
    return psize - BT_HDR_BYTES - bt_page_free_bytes(p, psize);
}

/* Shorten the page prefix to what k shares with it and recompute every
 * head. Records do not move. */
static void
shrink_prefix(unsigned char *p, const unsigned char *k, size_t klen)
{
    size_t pfx = BT_PG_PFX(p);
    size_t l = 0;
    unsigned n = BT_PG_N(p);

    while (l < pfx && l < klen && k[l] == p[BT_PFX_OFF + l]) {
        l++;
    }
    p[1] = (unsigned char)l;
    for (unsigned i = 0; i < n; i++) {
        size_t sl;
        const unsigned char *sk = bt_page_key(p, i, &sl);
        bt_put32(BT_SLOT(p, i), sl == 0 ? 0 : head_of(sk, sl, l));
    }
}

void
bt_page_entries(const unsigned char *p, struct bt_ent *e)
{
    unsigned n = BT_PG_N(p);

    for (unsigned i = 0; i < n; i++) {
        e[i].rec = p + BT_SLOT_OFF(p, i);
        e[i].len = BT_SLOT_LEN(p, i);
        e[i].key = bt_page_key(p, i, &e[i].klen);
    }
}

void
bt_page_build(unsigned char *p, size_t psize, int type, const struct bt_ent *e,
              unsigned n, unsigned char *scratch)
{
    size_t upper = psize;
    size_t pfx = 0;
    unsigned first = type == BT_PAGE_BRANCH ? 1 : 0;
    uint64_t txn = BT_PG_TXN(p);

    bt_page_init(scratch, psize, type);
    bt_put64(scratch + 16, txn);
    if (n > first) {
        const struct bt_ent *a = &e[first], *b = &e[n - 1];
        size_t m = a->klen < b->klen ? a->klen : b->klen;
        if (m > BT_PFX_MAX) {
            m = BT_PFX_MAX;
        }
        while (pfx < m && a->key[pfx] == b->key[pfx]) {
            pfx++;
        }
        memcpy(scratch + BT_PFX_OFF, a->key, pfx);
    }
    scratch[1] = (unsigned char)pfx;
    for (unsigned i = 0; i < n; i++) {
        unsigned char *s = BT_SLOT(scratch, i);
        /* the key moves with the record: find its offset in the record */
        size_t koff = (size_t)(e[i].key - e[i].rec);
        upper -= e[i].len;
        memcpy(scratch + upper, e[i].rec, e[i].len);
        bt_put32(s, e[i].klen == 0
                        ? 0
                        : head_of(scratch + upper + koff, e[i].klen, pfx));
        bt_put16(s + 4, (uint16_t)upper);
        bt_put16(s + 6, (uint16_t)e[i].len);
    }
    bt_put16(scratch + 2, (uint16_t)n);
    bt_put16(scratch + 4, (uint16_t)(BT_HDR_BYTES + n * BT_SLOT_BYTES));
    bt_put16(scratch + 6, (uint16_t)upper);
    memcpy(p, scratch, psize);
}

void
bt_page_pack(const unsigned char *p, unsigned char *out, size_t psize)
{
    unsigned n = BT_PG_N(p);
    size_t lower = BT_HDR_BYTES + (size_t)n * BT_SLOT_BYTES;
    size_t total = 0, off;

    for (unsigned i = 0; i < n; i++) {
        total += BT_SLOT_LEN(p, i);
    }
    off = psize - total;
    memcpy(out, p, lower);
    memset(out + lower, 0, off - lower);
    bt_put16(out + 4, (uint16_t)lower);
    bt_put16(out + 6, (uint16_t)off);
    bt_put16(out + 8, 0);
    for (unsigned i = 0; i < n; i++) {
        size_t len = BT_SLOT_LEN(p, i);
        memcpy(out + off, p + BT_SLOT_OFF(p, i), len);
        bt_put16(BT_SLOT(out, i) + 4, (uint16_t)off);
        off += len;
    }
}

bool
bt_page_insert(unsigned char *p, size_t psize, unsigned i,
               const unsigned char *rec, size_t len, const unsigned char *key,
               size_t klen)
{
    unsigned n = BT_PG_N(p);
    size_t lower = BT_PG_LOWER(p), upper = BT_PG_UPPER(p);
    size_t pfx;
    unsigned char *s;

    (void)psize;
    assert(i <= n);
    if (len + BT_SLOT_BYTES > upper - lower) {
        if (len + BT_SLOT_BYTES > upper - lower + BT_PG_GARB(p)) {
            return false;
        }
        return false; /* caller compacts first (needs scratch) */
    }
    if (klen > 0) {
        bool first_key = n == 0 || (BT_PG_TYPE(p) == BT_PAGE_BRANCH && n == 1);
        if (first_key) {
            size_t m = klen < BT_PFX_MAX ? klen : BT_PFX_MAX;
            memcpy(p + BT_PFX_OFF, key, m);
            p[1] = (unsigned char)m;
        } else if (prefix_side(p, key, klen) != 0 ||
                   klen < (size_t)BT_PG_PFX(p)) {
            shrink_prefix(p, key, klen);
        }
    }
    pfx = BT_PG_PFX(p);
    upper -= len;
    memcpy(p + upper, rec, len);
    s = BT_SLOT(p, i);
    memmove(s + BT_SLOT_BYTES, s, (size_t)(n - i) * BT_SLOT_BYTES);
    bt_put32(s, klen == 0 ? 0 : head_of(key, klen, pfx));
    bt_put16(s + 4, (uint16_t)upper);
    bt_put16(s + 6, (uint16_t)len);
    bt_put16(p + 2, (uint16_t)(n + 1));
    bt_put16(p + 4, (uint16_t)(lower + BT_SLOT_BYTES));
    bt_put16(p + 6, (uint16_t)upper);
    return true;
}

void
bt_page_remove(unsigned char *p, unsigned i)
{
    unsigned n = BT_PG_N(p);
    unsigned char *s = BT_SLOT(p, i);
    size_t len = BT_SLOT_LEN(p, i);
    size_t off = BT_SLOT_OFF(p, i);

    if (off == BT_PG_UPPER(p)) {
        bt_put16(p + 6, (uint16_t)(off + len)); /* the lowest record */
    } else {
        bt_put16(p + 8, (uint16_t)(BT_PG_GARB(p) + len));
    }
    memmove(s, s + BT_SLOT_BYTES, (size_t)(n - i - 1) * BT_SLOT_BYTES);
    bt_put16(p + 2, (uint16_t)(n - 1));
    bt_put16(p + 4, (uint16_t)(BT_PG_LOWER(p) - BT_SLOT_BYTES));
}

size_t
bt_leaf_encode(unsigned char *out, const void *key, size_t klen,
               const void *val, size_t vlen, uint64_t ovf, int64_t expire_ms)
{
    unsigned char *q = out + BT_LEAF_HDR;

    out[0] = (unsigned char)((expire_ms != 0 ? BT_REC_EXP : 0) |
                             (ovf != 0 ? BT_REC_OVF : 0));
    bt_put16(out + 1, (uint16_t)klen);
    bt_put32(out + 3, (uint32_t)vlen);
    if (expire_ms != 0) {
        bt_put64(q, (uint64_t)expire_ms);
        q += 8;
    }
    memcpy(q, key, klen);
    q += klen;
    if (ovf != 0) {
        bt_put64(q, ovf);
        q += 8;
    } else if (vlen > 0) {
        memcpy(q, val, vlen);
        q += vlen;
    }
    return (size_t)(q - out);
}

size_t
bt_branch_encode(unsigned char *out, uint64_t child, const void *key,
                 size_t klen)
{
    bt_put64(out, child);
    bt_put16(out + 8, (uint16_t)klen);
    if (klen > 0) {
        memcpy(out + BT_BRANCH_HDR, key, klen);
    }
    return BT_BRANCH_HDR + klen;
}
