/*
 * kit_buf.c -- a growable byte buffer; see kvd/kit_buf.h.
 */
#include "kvd/kit_buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvd/status.h"

#define KIT_BUF_MIN_BYTES 64

void
kvd_buf_init_on(struct kvd_buf *b, void *storage, size_t n)
{
    b->fixed = storage;
    b->p = storage;
    b->len = 0;
    b->cap = n;
}

int
kvd_buf_reserve(struct kvd_buf *b, size_t extra)
{
    size_t cap = b->cap > 0 ? b->cap : KIT_BUF_MIN_BYTES;
    unsigned char *np;

    if (extra > SIZE_MAX - b->len) {
        return KVD_ENOMEM;
    }
    if (b->len + extra <= b->cap) {
        return 0;
    }
    while (cap < b->len + extra) {
        cap = cap > SIZE_MAX / 2 ? b->len + extra : cap * 2;
    }
    if (b->p != NULL && b->p == b->fixed) {
        /* off the caller's storage onto the heap */
        np = malloc(cap);
        if (np != NULL && b->len > 0) {
            memcpy(np, b->p, b->len);
        }
    } else {
        np = realloc(b->p, cap);
    }
    if (np == NULL) {
        return KVD_ENOMEM;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

unsigned char *
kvd_buf_extend(struct kvd_buf *b, size_t n)
{
    unsigned char *at;

    /* never NULL + 0: an empty buffer gets its first block */
    if (kvd_buf_reserve(b, n > 0 ? n : 1) != 0) {
        return NULL;
    }
    at = b->p + b->len;
    b->len += n;
    return at;
}

int
kvd_buf_append_grow(struct kvd_buf *b, const void *p, size_t n)
{
    unsigned char *at = kvd_buf_extend(b, n);

    if (at == NULL) {
        return KVD_ENOMEM;
    }
    if (n > 0) {
        memcpy(at, p, n);
    }
    return 0;
}

void
kvd_buf_reset(struct kvd_buf *b)
{
    b->len = 0;
}

void
kvd_buf_release(struct kvd_buf *b)
{
    if (b->p != b->fixed) {
        free(b->p);
    }
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->fixed = NULL;
}
