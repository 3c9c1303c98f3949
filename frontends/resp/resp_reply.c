/*
 * frontends/resp/resp_reply.c -- the reply encoder: struct kvd_reply_ops
 * writing RESP2 (or RESP3, once a session negotiated it with HELLO 3).
 *
 * The command layer calls these with w = the struct resp_conn being
 * served; every reply lands in the connection's worker's write buffer, to
 * be written with the rest of the batch. No call allocates once that buffer
 * has grown to the batch size. If it cannot grow, the connection is marked
 * broken and the rest of the reply is dropped (the connection is then
 * closed: a client must never receive half a reply followed by another).
 *
 * The protocol version lives in the command layer's session (HELLO 2/3
 * and RESET change it); c->proto is a copy, refreshed after every command
 * (resp_reply_sync_proto) so that null and double replies need no call.
 * Only a map is refreshed again before it is written: HELLO switches the
 * version inside the command and answers in the new one (a RESP3 HELLO
 * reply is a map), and that reply has no null or double before its map.
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

/* The batch buffer, or NULL when the connection is already broken. */
static struct resp_buf *
out_reserve(struct resp_conn *c, size_t extra)
{
    struct resp_buf *b = &c->w->wbuf;

    if (c->flags & RESP_CONN_BROKEN) {
        return NULL;
    }
    if (resp_buf_reserve(b, extra) != 0) {
        c->flags |= RESP_CONN_BROKEN;
        return NULL;
    }
    return b;
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
resp_reply_sync_proto(struct resp_conn *c)
{
    const struct resp_fe *fe = c->w->fe;

    if (fe->session_proto != NULL) {
        c->proto = fe->session_proto(c->sess);
    }
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

    resp_reply_sync_proto(c); /* HELLO 3 may have switched just now */
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

const struct kvd_reply_ops resp_reply_ops = {
    .status = reply_status,
    .error = reply_error,
    .integer = reply_integer,
    .bulk = reply_bulk,
    .null = reply_null,
    .array = reply_array,
    .map = reply_map,
    .dbl = reply_dbl,
};
