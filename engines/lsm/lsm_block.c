/*
 * lsm_block.c -- the block format of the lsm tables: building a block with
 * shared-prefix compression and restart points, its checksummed trailer,
 * and a bounds-checked cursor over a block (see lsm_block.h for the
 * layout).
 *
 * The cursor trusts nothing in the block: every varint, length and
 * restart offset is checked against the block's bounds before use, so a
 * damaged block that slips past its checksum still yields KVD_ECORRUPT,
 * never a read out of bounds.
 *
 * No shared state: a builder or cursor belongs to one thread.
 */
#include "lsm_block.h"

#include <stdlib.h>
#include <string.h>

#include "kvd/kit_coding.h"
#include "kvd/kit_crc32c.h"
#include "kvd/status.h"

/* ---- Builder ------------------------------------------------------- */

void
lsm_bbuilder_init(struct lsm_bbuilder *b, int interval)
{
    memset(b, 0, sizeof(*b));
    b->interval = interval < 1 ? 1 : interval;
}

void
lsm_bbuilder_release(struct lsm_bbuilder *b)
{
    kvd_buf_release(&b->buf);
    kvd_buf_release(&b->last_key);
    free(b->restarts);
    b->restarts = NULL;
}

void
lsm_bbuilder_reset(struct lsm_bbuilder *b)
{
    b->buf.len = 0;
    b->last_key.len = 0;
    b->nrestarts = 0;
    b->counter = 0;
    b->entries = 0;
}

static int
lsm_bbuilder_push_restart(struct lsm_bbuilder *b, uint32_t off)
{
    if (b->nrestarts == b->restarts_cap) {
        size_t cap = b->restarts_cap < 16 ? 16 : b->restarts_cap * 2;
        uint32_t *r = realloc(b->restarts, cap * sizeof(*r));
        if (r == NULL) {
            return KVD_ENOMEM;
        }
        b->restarts = r;
        b->restarts_cap = cap;
    }
    b->restarts[b->nrestarts++] = off;
    return 0;
}

int
lsm_bbuilder_add(struct lsm_bbuilder *b, const void *key, size_t klen,
                 const void *val, size_t vlen)
{
    size_t shared = 0;
    uint8_t hdr[3 * KVD_VARINT32_MAX_BYTES];
    uint8_t *e;
    int rc;

    if (klen > UINT32_MAX || vlen > UINT32_MAX ||
        b->buf.len > LSM_BLOCK_MAX_BYTES) {
        return KVD_ETOOBIG;
    }
    if (b->counter >= b->interval || b->entries == 0) {
        rc = lsm_bbuilder_push_restart(b, (uint32_t)b->buf.len);
        if (rc != 0) {
            return rc;
        }
        b->counter = 0;
    } else {
        const uint8_t *lk = b->last_key.p;
        size_t max = klen < b->last_key.len ? klen : b->last_key.len;
        while (shared < max && lk[shared] == ((const uint8_t *)key)[shared]) {
            shared++;
        }
    }
    e = kvd_put_varint64(hdr, (uint32_t)shared);
    e = kvd_put_varint64(e, (uint32_t)(klen - shared));
    e = kvd_put_varint64(e, (uint32_t)vlen);
    rc = kvd_buf_reserve(&b->buf, (size_t)(e - hdr) + klen - shared + vlen);
    if (rc != 0) {
        return rc;
    }
    kvd_buf_append(&b->buf, hdr, (size_t)(e - hdr));
    kvd_buf_append(&b->buf, (const uint8_t *)key + shared, klen - shared);
    kvd_buf_append(&b->buf, val, vlen);
    b->last_key.len = shared; /* keep the shared prefix, add the rest */
    rc = kvd_buf_append(&b->last_key, (const uint8_t *)key + shared,
                        klen - shared);
    if (rc != 0) {
        return rc;
    }
    b->counter++;
    b->entries++;
    return 0;
}

size_t
lsm_bbuilder_size(const struct lsm_bbuilder *b)
{
    return b->buf.len + b->nrestarts * 4 + 4;
}

int
lsm_bbuilder_finish(struct lsm_bbuilder *b)
{
    int rc = kvd_buf_reserve(&b->buf, b->nrestarts * 4 + 4);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < b->nrestarts; i++) {
        kvd_put_le32(b->buf.p + b->buf.len, b->restarts[i]);
        b->buf.len += 4;
    }
    kvd_put_le32(b->buf.p + b->buf.len, (uint32_t)b->nrestarts);
    b->buf.len += 4;
    return 0;
}

/* ---- Trailer ------------------------------------------------------- */

void
lsm_block_trailer(const void *contents, size_t n, int kind,
                  uint8_t out[LSM_BLOCK_TRAILER_BYTES])
{
    uint8_t type = (uint8_t)kind;
    uint32_t crc = kvd_crc32c(0, contents, n);
    crc = kvd_crc32c(crc, &type, 1);
    out[0] = type;
    kvd_put_le32(out + 1, kvd_crc32c_mask(crc));
}

int
lsm_block_check(const void *contents, size_t n, int kind)
{
    const uint8_t *t = (const uint8_t *)contents + n;
    uint32_t crc = kvd_crc32c(0, contents, n + 1); /* contents + type */

    if (kvd_crc32c_unmask(kvd_get_le32(t + 1)) != crc) {
        return KVD_ECORRUPT;
    }
    /* Checked after the crc: a good crc with a wrong kind means a handle
     * that points at the wrong block. */
    if (t[0] != (uint8_t)kind) {
        return KVD_ECORRUPT;
    }
    return 0;
}

/* ---- Reader -------------------------------------------------------- */

int
lsm_block_init(struct lsm_block *b, const void *data, size_t n)
{
    uint32_t nr;
    size_t roff;

    if (n < 4 || n > LSM_BLOCK_MAX_BYTES) {
        return KVD_ECORRUPT;
    }
    nr = kvd_get_le32((const uint8_t *)data + n - 4);
    if (nr == 0 || nr > (n - 4) / 4) {
        return KVD_ECORRUPT;
    }
    roff = n - 4 - (size_t)nr * 4;
    b->data = data;
    b->restarts_off = (uint32_t)roff;
    b->nrestarts = nr;
    /* The first restart must be the first entry; the rest are checked
     * when a seek reads them. */
    if (kvd_get_le32(b->data + roff) != 0 || roff == 0) {
        return KVD_ECORRUPT;
    }
    return 0;
}

void
lsm_bit_init(struct lsm_bit *it, const struct lsm_block *b, uint8_t *kbuf,
             size_t kcap)
{
    memset(it, 0, sizeof(*it));
    it->b = b;
    it->key = kbuf;
    it->kcap = kcap;
    it->next = b != NULL ? b->restarts_off : 0;
}

void
lsm_bit_reset(struct lsm_bit *it, const struct lsm_block *b)
{
    it->b = b;
    it->valid = false;
    it->status = 0;
    it->klen = 0;
    it->cur = it->next = b->restarts_off;
}

void
lsm_bit_release(struct lsm_bit *it)
{
    if (it->key_owned) {
        free(it->key);
    }
    it->key = NULL;
    it->key_owned = false;
    it->kcap = 0;
    it->valid = false;
}

static void
lsm_bit_corrupt(struct lsm_bit *it, int code)
{
    it->status = code;
    it->valid = false;
    it->cur = it->next = it->b->restarts_off;
}

static int
lsm_bit_key_room(struct lsm_bit *it, size_t need)
{
    uint8_t *p;
    size_t cap;

    if (need <= it->kcap) {
        return 0;
    }
    cap = it->kcap < 64 ? 64 : it->kcap;
    while (cap < need) {
        cap *= 2;
    }
    p = malloc(cap);
    if (p == NULL) {
        return KVD_ENOMEM;
    }
    if (it->klen > 0) {
        memcpy(p, it->key, it->klen);
    }
    if (it->key_owned) {
        free(it->key);
    }
    it->key = p;
    it->kcap = cap;
    it->key_owned = true;
    return 0;
}

/* Decode the entry header at off: (shared, non_shared, vlen) and the
 * offset of its key bytes. False when it does not fit in the entries. */
static inline bool
lsm_bit_decode(const struct lsm_block *b, uint32_t off, uint32_t *shared,
               uint32_t *non_shared, uint32_t *vlen, uint32_t *kpos)
{
    const uint8_t *p = b->data + off;
    const uint8_t *end = b->data + b->restarts_off;

    if (end - p >= 3 && (p[0] | p[1] | p[2]) < 0x80) {
        /* The common case: all three fit in one byte each. */
        *shared = p[0];
        *non_shared = p[1];
        *vlen = p[2];
        p += 3;
    } else {
        p = kvd_get_varint32(p, end, shared);
        p = p != NULL ? kvd_get_varint32(p, end, non_shared) : NULL;
        p = p != NULL ? kvd_get_varint32(p, end, vlen) : NULL;
        if (p == NULL) {
            return false;
        }
    }
    if ((uint64_t)*non_shared + *vlen > (uint64_t)(end - p)) {
        return false;
    }
    *kpos = (uint32_t)(p - b->data);
    return true;
}

/* Parse the entry at it->next into the cursor. */
static void
lsm_bit_parse_next(struct lsm_bit *it)
{
    const struct lsm_block *b = it->b;
    uint32_t shared, ns, vlen, kpos;

    it->cur = it->next;
    if (it->cur >= b->restarts_off) {
        it->valid = false;
        it->cur = it->next = b->restarts_off;
        return;
    }
    if (!lsm_bit_decode(b, it->cur, &shared, &ns, &vlen, &kpos) ||
        shared > it->klen || (size_t)shared + ns < LSM_TRAILER_BYTES) {
        lsm_bit_corrupt(it, KVD_ECORRUPT);
        return;
    }
    if (lsm_bit_key_room(it, (size_t)shared + ns) != 0) {
        lsm_bit_corrupt(it, KVD_ENOMEM);
        return;
    }
    memcpy(it->key + shared, b->data + kpos, ns);
    it->klen = (size_t)shared + ns;
    it->val = b->data + kpos + ns;
    it->vlen = vlen;
    it->next = kpos + ns + vlen;
    it->valid = true;
}

/* Position before the entry at restart point i (next() reads it). */
static bool
lsm_bit_to_restart(struct lsm_bit *it, uint32_t i)
{
    uint32_t off = kvd_get_le32(it->b->data + it->b->restarts_off + 4 * i);
    if (off >= it->b->restarts_off) {
        lsm_bit_corrupt(it, KVD_ECORRUPT);
        return false;
    }
    it->klen = 0;
    it->next = off;
    return true;
}

void
lsm_bit_seek_first(struct lsm_bit *it)
{
    it->status = 0;
    if (lsm_bit_to_restart(it, 0)) {
        lsm_bit_parse_next(it);
    }
}

void
lsm_bit_next(struct lsm_bit *it)
{
    if (it->valid) {
        lsm_bit_parse_next(it);
    }
}

void
lsm_bit_seek(struct lsm_bit *it, const void *tu, size_t tun, uint64_t ttr)
{
    const struct lsm_block *b = it->b;
    uint32_t left = 0;
    uint32_t right = b->nrestarts - 1;

    it->status = 0;
    /* Find the last restart point whose key is < target: every entry
     * before it is smaller too, and the answer is at most one restart
     * interval after it. */
    while (left < right) {
        uint32_t mid = left + (right - left + 1) / 2;
        uint32_t off = kvd_get_le32(b->data + b->restarts_off + 4 * mid);
        uint32_t shared, ns, vlen, kpos;
        if (off >= b->restarts_off ||
            !lsm_bit_decode(b, off, &shared, &ns, &vlen, &kpos) ||
            shared != 0 || ns < LSM_TRAILER_BYTES) {
            lsm_bit_corrupt(it, KVD_ECORRUPT);
            return;
        }
        if (lsm_ikey_cmp_parts(b->data + kpos, ns, tu, tun, ttr) < 0) {
            left = mid;
        } else {
            right = mid - 1;
        }
    }
    if (!lsm_bit_to_restart(it, left)) {
        return;
    }
    for (;;) {
        lsm_bit_parse_next(it);
        if (!it->valid) {
            return;
        }
        if (lsm_ikey_cmp_parts(it->key, it->klen, tu, tun, ttr) >= 0) {
            return;
        }
    }
}
