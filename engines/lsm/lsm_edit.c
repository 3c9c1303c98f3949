/*
 * lsm_edit.c -- version edits: building, encoding and decoding the
 * records of the MANIFEST (layout in lsm_version.h and docs/formats.md).
 *
 * The decoder checks every length against the end of the record and
 * refuses unknown tags, levels out of range and internal keys shorter than
 * their trailer, so a damaged record is KVD_ECORRUPT, never a bad version.
 */
#include "lsm_version.h"

#include <stdlib.h>
#include <string.h>

#include "kvd/kit_coding.h"

void
lsm_edit_init(struct lsm_edit *e)
{
    memset(e, 0, sizeof(*e));
}

void
lsm_edit_release(struct lsm_edit *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; i < e->nadds; i++) {
        free((void *)(uintptr_t)e->adds[i].smallest.p);
    }
    free(e->adds);
    free(e->dels);
    memset(e, 0, sizeof(*e));
}

void
lsm_edit_set_log_number(struct lsm_edit *e, uint64_t n)
{
    e->has |= LSM_EDIT_HAS_LOG_NUMBER;
    e->log_number = n;
}

void
lsm_edit_set_next_file(struct lsm_edit *e, uint64_t n)
{
    e->has |= LSM_EDIT_HAS_NEXT_FILE;
    e->next_file = n;
}

void
lsm_edit_set_last_seq(struct lsm_edit *e, uint64_t n)
{
    e->has |= LSM_EDIT_HAS_LAST_SEQ;
    e->last_seq = n;
}

int
lsm_edit_add_file(struct lsm_edit *e, int level, uint64_t number, uint64_t size,
                  uint64_t entries, struct lsm_slice smallest,
                  struct lsm_slice largest)
{
    struct lsm_edit_add *a;
    unsigned char *keys;

    if (e->nadds == e->adds_cap) {
        size_t cap = e->adds_cap ? e->adds_cap * 2 : 8;
        struct lsm_edit_add *na = realloc(e->adds, cap * sizeof(*na));
        if (na == NULL) {
            return KVD_ENOMEM;
        }
        e->adds = na;
        e->adds_cap = cap;
    }
    /* one block: smallest then largest; freed through smallest.p */
    keys = malloc(smallest.n + largest.n + 1);
    if (keys == NULL) {
        return KVD_ENOMEM;
    }
    memcpy(keys, smallest.p, smallest.n);
    memcpy(keys + smallest.n, largest.p, largest.n);
    a = &e->adds[e->nadds++];
    a->level = level;
    a->number = number;
    a->size = size;
    a->entries = entries;
    a->smallest.p = keys;
    a->smallest.n = smallest.n;
    a->largest.p = keys + smallest.n;
    a->largest.n = largest.n;
    return 0;
}

int
lsm_edit_del_file(struct lsm_edit *e, int level, uint64_t number)
{
    if (e->ndels == e->dels_cap) {
        size_t cap = e->dels_cap ? e->dels_cap * 2 : 8;
        struct lsm_edit_del *nd = realloc(e->dels, cap * sizeof(*nd));
        if (nd == NULL) {
            return KVD_ENOMEM;
        }
        e->dels = nd;
        e->dels_cap = cap;
    }
    e->dels[e->ndels].level = level;
    e->dels[e->ndels].number = number;
    e->ndels++;
    return 0;
}

int
lsm_edit_encode(const struct lsm_edit *e, unsigned char **out, size_t *n)
{
    size_t cap = 3 * (1 + KVD_VARINT64_MAX_BYTES) +
                 e->ndels * (1 + 2 * KVD_VARINT64_MAX_BYTES);
    unsigned char *buf;
    uint8_t *p;

    for (size_t i = 0; i < e->nadds; i++) {
        cap += 1 + 6 * KVD_VARINT64_MAX_BYTES + e->adds[i].smallest.n +
               e->adds[i].largest.n;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        return KVD_ENOMEM;
    }
    p = buf;
    if (e->has & LSM_EDIT_HAS_LOG_NUMBER) {
        p = kvd_put_varint64(p, LSM_TAG_LOG_NUMBER);
        p = kvd_put_varint64(p, e->log_number);
    }
    if (e->has & LSM_EDIT_HAS_NEXT_FILE) {
        p = kvd_put_varint64(p, LSM_TAG_NEXT_FILE);
        p = kvd_put_varint64(p, e->next_file);
    }
    if (e->has & LSM_EDIT_HAS_LAST_SEQ) {
        p = kvd_put_varint64(p, LSM_TAG_LAST_SEQ);
        p = kvd_put_varint64(p, e->last_seq);
    }
    for (size_t i = 0; i < e->ndels; i++) {
        p = kvd_put_varint64(p, LSM_TAG_DEL_FILE);
        p = kvd_put_varint64(p, (uint32_t)e->dels[i].level);
        p = kvd_put_varint64(p, e->dels[i].number);
    }
    for (size_t i = 0; i < e->nadds; i++) {
        const struct lsm_edit_add *a = &e->adds[i];
        p = kvd_put_varint64(p, LSM_TAG_ADD_FILE);
        p = kvd_put_varint64(p, (uint32_t)a->level);
        p = kvd_put_varint64(p, a->number);
        p = kvd_put_varint64(p, a->size);
        p = kvd_put_varint64(p, a->entries);
        p = kvd_put_varint64(p, a->smallest.n);
        memcpy(p, a->smallest.p, a->smallest.n);
        p += a->smallest.n;
        p = kvd_put_varint64(p, a->largest.n);
        memcpy(p, a->largest.p, a->largest.n);
        p += a->largest.n;
    }
    *out = buf;
    *n = (size_t)(p - buf);
    return 0;
}

static const uint8_t *
get_level(const uint8_t *p, const uint8_t *end, int *level)
{
    uint32_t v;

    p = kvd_get_varint32(p, end, &v);
    if (p == NULL || v >= LSM_LEVELS) {
        return NULL;
    }
    *level = (int)v;
    return p;
}

static const uint8_t *
get_ikey(const uint8_t *p, const uint8_t *end, struct lsm_slice *s)
{
    uint64_t n;

    p = kvd_get_varint64(p, end, &n);
    if (p == NULL || n < LSM_TRAILER_BYTES || n > (uint64_t)(end - p)) {
        return NULL;
    }
    s->p = p;
    s->n = (size_t)n;
    return p + n;
}

int
lsm_edit_decode(struct lsm_edit *e, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    const uint8_t *end = p + n;

    while (p < end) {
        uint32_t tag;
        uint64_t v;
        int level;

        p = kvd_get_varint32(p, end, &tag);
        if (p == NULL) {
            return KVD_ECORRUPT;
        }
        switch (tag) {
        case LSM_TAG_LOG_NUMBER:
        case LSM_TAG_NEXT_FILE:
        case LSM_TAG_LAST_SEQ:
            p = kvd_get_varint64(p, end, &v);
            if (p == NULL) {
                return KVD_ECORRUPT;
            }
            if (tag == LSM_TAG_LOG_NUMBER) {
                lsm_edit_set_log_number(e, v);
            } else if (tag == LSM_TAG_NEXT_FILE) {
                lsm_edit_set_next_file(e, v);
            } else {
                lsm_edit_set_last_seq(e, v);
            }
            break;
        case LSM_TAG_DEL_FILE:
            p = get_level(p, end, &level);
            p = p ? kvd_get_varint64(p, end, &v) : NULL;
            if (p == NULL) {
                return KVD_ECORRUPT;
            }
            if (lsm_edit_del_file(e, level, v) != 0) {
                return KVD_ENOMEM;
            }
            break;
        case LSM_TAG_ADD_FILE: {
            uint64_t size;
            uint64_t entries;
            struct lsm_slice lo;
            struct lsm_slice hi;

            p = get_level(p, end, &level);
            p = p ? kvd_get_varint64(p, end, &v) : NULL;
            p = p ? kvd_get_varint64(p, end, &size) : NULL;
            p = p ? kvd_get_varint64(p, end, &entries) : NULL;
            p = p ? get_ikey(p, end, &lo) : NULL;
            p = p ? get_ikey(p, end, &hi) : NULL;
            if (p == NULL || lsm_ikey_cmp(lo, hi) > 0) {
                return KVD_ECORRUPT;
            }
            if (lsm_edit_add_file(e, level, v, size, entries, lo, hi) != 0) {
                return KVD_ENOMEM;
            }
            break;
        }
        default:
            return KVD_ECORRUPT;
        }
    }
    return 0;
}
