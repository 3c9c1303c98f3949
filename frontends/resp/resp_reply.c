/*
 * frontends/resp/resp_reply.c -- the reply encoder: struct kvd_reply_ops
 * writing RESP2 (or RESP3, once a session negotiated it with HELLO 3), and
 * the output side of connections it writes into.
 *
 * The command layer calls these with w = the struct resp_conn whose reply
 * it writes, which is not always the connection being served: a pass
 * writes the replies of many connections, in queue order, while one of
 * them is served. Replies land in the worker's write buffer, which holds
 * one connection's replies at a time (w->out); a reply for another
 * connection first moves the buffer's bytes to their connection's output
 * (o) and puts it on the pending-write list. No call allocates once the
 * buffers have grown to the batch size. If one cannot grow, the
 * connection is marked broken and the rest of the reply is dropped (the
 * connection is then closed: a client must never receive half a reply
 * followed by another).
 *
 * The protocol version lives in the command layer's session (HELLO 2/3
 * and RESET change it); the layer tells the encoder through the proto op
 * before the first reply in the new version, and c->proto keeps it.
 *
 * Status and error texts are written with CR and LF replaced by spaces:
 * they may quote client input (an unknown command's name), and a line
 * break there would split one reply into two.
 */
#include "resp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
resp_buf_reserve(struct resp_buf *b, size_t extra)
{
    size_t need = b->len + extra;
    size_t cap;
    char *p;

    if (need <= b->cap) {
        return 0;
    }
    if (need < b->len) {
        return KVD_ENOMEM; /* overflow */
    }
    cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        cap = cap * 2 > cap ? cap * 2 : need;
    }
    p = realloc(b->p, cap);
    if (p == NULL) {
        return KVD_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void
resp_buf_free(struct resp_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

/* ------------------------------------------------------------------ */
/* The output side                                                     */

void
resp_conn_pend(struct resp_conn *c)
{
    struct resp_worker *w = c->w;

    c->pend_prev = NULL;
    c->pend_next = w->pending;
    if (w->pending != NULL) {
        w->pending->pend_prev = c;
    }
    w->pending = c;
    c->flags |= RESP_CONN_PENDING;
}

void
resp_conn_unpend(struct resp_conn *c)
{
    if (c->pend_prev != NULL) {
        c->pend_prev->pend_next = c->pend_next;
    } else {
        c->w->pending = c->pend_next;
    }
    if (c->pend_next != NULL) {
        c->pend_next->pend_prev = c->pend_prev;
    }
    c->pend_prev = c->pend_next = NULL;
    c->flags &= ~RESP_CONN_PENDING;
}

/*
 * Move the worker's write buffer to c->o, behind whatever c->o still
 * holds. A large buffer moves by swapping the two when c->o is empty, so
 * it is not copied.
 */
static int
out_stash(struct resp_worker *w, struct resp_conn *c)
{
    struct resp_buf *b = &w->wbuf;

    if (b->len == 0) {
        return 0;
    }
    if (c->o.len == 0 && b->len > RESP_CONN_KEEP_BYTES) {
        struct resp_buf tmp = c->o;
        c->o = *b;
        c->o_off = 0;
        *b = tmp;
        b->len = 0;
        return 0;
    }
    if (resp_buf_reserve(&c->o, b->len) != 0) {
        b->len = 0;
        return KVD_ENOMEM;
    }
    memcpy(c->o.p + c->o.len, b->p, b->len);
    c->o.len += b->len;
    b->len = 0;
    if (b->cap > RESP_KEEP_BYTES) {
        resp_buf_free(b); /* after one huge batch, do not hoard it */
    }
    return 0;
}

void
resp_out_flush(struct resp_worker *w)
{
    struct resp_conn *c = w->out;

    if (c == NULL) {
        return;
    }
    w->out = NULL;
    if (out_stash(w, c) != 0) {
        c->flags |= RESP_CONN_BROKEN;
    }
    /* A connection waiting for writability is written by its write
     * event; the rest by the flush at the end of the loop iteration. */
    if ((c->o.len > 0 || (c->flags & RESP_CONN_BROKEN)) &&
        !(c->flags & (RESP_CONN_WRITING | RESP_CONN_PENDING))) {
        resp_conn_pend(c);
    }
}

/* out_reserve's rare cases: another connection's replies in the buffer,
 * or a buffer to grow. Kept apart so the usual case inlines. */
static struct resp_buf *
out_reserve_slow(struct resp_conn *c, size_t extra)
{
    struct resp_worker *w = c->w;
    struct resp_buf *b = &w->wbuf;

    if (w->out != c) {
        resp_out_flush(w);
        w->out = c;
    }
    if (resp_buf_reserve(b, extra) != 0) {
        c->flags |= RESP_CONN_BROKEN;
        b->len = 0; /* c's replies so far: a broken connection sends none */
        return NULL;
    }
    return b;
}

/* The write buffer, holding c's replies, or NULL when c is broken. */
static inline struct resp_buf *
out_reserve(struct resp_conn *c, size_t extra)
{
    struct resp_worker *w = c->w;
    struct resp_buf *b = &w->wbuf;

    if (c->flags & RESP_CONN_BROKEN) {
        return NULL;
    }
    if (w->out == c && extra <= b->cap - b->len) {
        return b;
    }
    return out_reserve_slow(c, extra);
}

/* Decimal digits of v, written backwards ending at `end`; returns start. */
static char *
fmt_u64(char *end, unsigned long long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/* "<type><signed number>\r\n" */
static void
put_header(struct resp_conn *c, char type, long long v)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    unsigned long long mag =
        v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *s = fmt_u64(end, mag);
    struct resp_buf *b;
    size_t n;

    if (v < 0) {
        *--s = '-';
    }
    n = (size_t)(end - s);
    b = out_reserve(c, n + 3);
    if (b == NULL) {
        return;
    }
    b->p[b->len++] = type;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

static void
put_line(struct resp_conn *c, char type, const char *s, size_t n)
{
    struct resp_buf *b = out_reserve(c, n + 3);
    char *d;

    if (b == NULL) {
        return;
    }
    d = b->p + b->len;
    *d++ = type;
    for (size_t i = 0; i < n; i++) {
        d[i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    }
    d += n;
    *d++ = '\r';
    *d++ = '\n';
    b->len = (size_t)(d - b->p);
}

static void
reply_status(void *w, const char *s, size_t n)
{
    put_line(w, '+', s, n);
}

static void
reply_error(void *w, const char *s, size_t n)
{
    put_line(w, '-', s, n);
}

void
resp_reply_error_str(struct resp_conn *c, const char *msg)
{
    char line[160];
    int n = snprintf(line, sizeof(line), "ERR %s", msg);
    put_line(c, '-', line, n < 0 ? 0 : (size_t)n);
}

static void
reply_integer(void *w, long long v)
{
    put_header(w, ':', v);
}

static void
reply_bulk(void *w, const void *p, size_t n)
{
    struct resp_conn *c = w;
    struct resp_buf *b;

    /* Reserve for the whole reply at once: header, bytes and CRLF. */
    b = out_reserve(c, n + 24 + 2);
    if (b == NULL) {
        return;
    }
    put_header(c, '$', (long long)n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

static void
reply_null(void *w)
{
    struct resp_conn *c = w;

    if (c->proto >= 3) {
        put_line(c, '_', "", 0);
    } else {
        put_header(c, '$', -1);
    }
}

static void
reply_array(void *w, size_t n)
{
    put_header(w, '*', (long long)n);
}

static void
reply_map(void *w, size_t n)
{
    struct resp_conn *c = w;

    /* RESP2 has no map: a flat array of key, value, key, value. */
    if (c->proto >= 3) {
        put_header(c, '%', (long long)n);
    } else {
        put_header(c, '*', (long long)(2 * n));
    }
}

static void
reply_dbl(void *w, double v)
{
    struct resp_conn *c = w;
    char tmp[40];
    int n;

    if (isinf(v)) {
        n = snprintf(tmp, sizeof(tmp), "%s", v > 0 ? "inf" : "-inf");
    } else if (isnan(v)) {
        n = snprintf(tmp, sizeof(tmp), "nan");
    } else {
        /* 17 significant digits round-trip every double. */
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    }
    if (n < 0) {
        n = 0;
    }
    /* RESP2 has no double: it travels as a bulk string. */
    if (c->proto >= 3) {
        put_line(c, ',', tmp, (size_t)n);
    } else {
        reply_bulk(c, tmp, (size_t)n);
    }
}

static void
reply_proto(void *w, int proto)
{
    struct resp_conn *c = w;

    c->proto = proto;
}

static void
reply_null_array(void *w)
{
    struct resp_conn *c = w;

    if (c->proto >= 3) {
        put_line(c, '_', "", 0);
    } else {
        put_header(c, '*', -1);
    }
}

/* No error_status: RESP sends the text, whatever the status. */
const struct kvd_reply_ops resp_reply_ops = {
    .status = reply_status,
    .error = reply_error,
    .integer = reply_integer,
    .bulk = reply_bulk,
    .null = reply_null,
    .array = reply_array,
    .map = reply_map,
    .dbl = reply_dbl,
    .proto = reply_proto,
    .null_array = reply_null_array,
};
