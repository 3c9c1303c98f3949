/*
 * kvd/kit_buf.h -- a growable byte buffer; part of the engine toolkit
 * (kvd/kit.h).
 *
 * A plain struct the caller owns (stack, or inside its own structs):
 * `p` holds `len` bytes of `cap` allocated. Start it zeroed
 * (KVD_BUF_INIT), or on storage of the caller's (kvd_buf_init_on: no
 * allocation until it outgrows that); release it with kvd_buf_release.
 * Growth doubles, so n appends cost O(n) copies. Not thread-safe: one
 * owner at a time.
 */
#ifndef KVD_KIT_BUF_H
#define KVD_KIT_BUF_H

#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kvd_buf {
    unsigned char *p;     /* malloc'd, `fixed`, or NULL while cap == 0 */
    size_t len;           /* bytes in use */
    size_t cap;           /* bytes available at p */
    unsigned char *fixed; /* the caller's storage, never freed; or NULL */
};

#define KVD_BUF_INIT                                                           \
    {                                                                          \
        NULL, 0, 0, NULL                                                       \
    }

/* Start empty on n bytes of the caller's storage, which must outlive the
 * buffer (or its move to the heap, the first time it grows past n). */
void kvd_buf_init_on(struct kvd_buf *b, void *storage, size_t n);

/* Make room for `extra` more bytes after len: 0 or KVD_ENOMEM (the buffer
 * is unchanged then). */
int kvd_buf_reserve(struct kvd_buf *b, size_t extra);

/* The growing path of kvd_buf_append. */
int kvd_buf_append_grow(struct kvd_buf *b, const void *p, size_t n);

/* Append n bytes: 0 or KVD_ENOMEM. Inline while the bytes fit, so an
 * append costs a compare and a copy. */
static inline int
kvd_buf_append(struct kvd_buf *b, const void *p, size_t n)
{
    if (n <= b->cap - b->len && n > 0) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
        return 0;
    }
    return kvd_buf_append_grow(b, p, n);
}

/* Extend len by n bytes and return where they start (the caller fills
 * them), or NULL when out of memory. The pointer is valid until the next
 * call that may grow the buffer. */
unsigned char *kvd_buf_extend(struct kvd_buf *b, size_t n);

/* Empty it, keeping the memory for reuse. */
void kvd_buf_reset(struct kvd_buf *b);

/* Free the memory; the buffer is empty and reusable afterwards (on the
 * heap: kvd_buf_init_on again to go back to the caller's storage). */
void kvd_buf_release(struct kvd_buf *b);

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_BUF_H */
