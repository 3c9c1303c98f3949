/*
 * frontends/http/http_parse.h -- the HTTP/1.1 request parser of the http
 * frontend: the request head (request line, header fields, message
 * framing, RFC 9112) and chunked bodies.
 *
 * No I/O and no allocation: the caller owns the bytes and the structs,
 * and feeds whatever it has received. Nothing here keeps state between
 * calls except what the caller passes back in (the scan offset, the
 * chunked decoder), so the functions are safe from any thread on
 * distinct arguments, and every input is a valid fuzz input.
 *
 * What is refused, and why (request smuggling needs two parsers that
 * disagree on where a message ends; kvd never guesses):
 *   - more than one Content-Length field, a list value ("5, 5") or a
 *     value that is not all digits: 400;
 *   - Transfer-Encoding together with Content-Length, in HTTP/1.0, or
 *     with "chunked" not the one and only coding: 400; a coding kvd does
 *     not implement (gzip, ...): 501;
 *   - whitespace between a field name and its colon, obsolete line
 *     folding, bare CR, control characters in a value, a missing or
 *     repeated Host in HTTP/1.1: 400;
 *   - an HTTP version other than 1.0 and 1.1: 505.
 */
#ifndef KVD_HTTP_PARSE_H
#define KVD_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Header fields one request may carry; more is 431. */
#define HTTP_FIELDS_MAX 100
/* Longest chunk-size line (with extensions) and trailer section. */
#define HTTP_CHUNK_LINE_MAX    1024
#define HTTP_CHUNK_TRAILER_MAX 8192

/* How the request's body is framed. */
enum http_body_kind {
    HTTP_BODY_NONE = 0,
    HTTP_BODY_LENGTH,  /* Content-Length bytes */
    HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
};

/* Flags of a parsed head. */
enum http_head_flag {
    HTTP_HEAD_CLOSE = 1u << 0,      /* Connection: close */
    HTTP_HEAD_KEEP_ALIVE = 1u << 1, /* Connection: keep-alive */
    HTTP_HEAD_CONTINUE = 1u << 2,   /* Expect: 100-continue (HTTP/1.1) */
};

/* One header field; both strings are NUL-terminated in place. */
struct http_field {
    const char *name;
    size_t name_len;
    const char *value; /* without leading and trailing whitespace */
    size_t value_len;
};

/* A parsed request head. Every pointer points into the buffer given to
 * http_parse_head and is valid as long as that buffer is. */
struct http_head {
    const char *method; /* NUL-terminated in place */
    size_t method_len;
    const char *target; /* the raw request-target, NUL-terminated */
    size_t target_len;
    unsigned minor; /* HTTP/1.<minor>: 0 or 1 */
    struct http_field fields[HTTP_FIELDS_MAX];
    size_t nfields;
    int body;                /* enum http_body_kind */
    uint64_t content_length; /* HTTP_BODY_LENGTH only */
    unsigned flags;          /* enum http_head_flag */
    const char *error;       /* when refused: why, a static string */
};

/*
 * Where the request head in buf[0..len) ends: its length up to and
 * including the empty line, or 0 when it is not complete yet. *scanned
 * carries the progress between calls on a growing buffer (start at 0),
 * so a head received byte by byte is scanned once, not once per byte.
 * The head must not start with an empty line (skip those first).
 */
size_t http_head_end(const char *buf, size_t len, size_t *scanned);

/*
 * Parse a complete head (buf holds exactly the len bytes that
 * http_head_end found). Writes NUL bytes into buf to terminate the
 * strings it hands out. Returns 0, or the HTTP status to refuse the
 * request with (400, 413 for a Content-Length beyond 2^63, 431 for too
 * many fields, 501, 505; h->error says why). After a refusal the
 * connection must be closed: where the next request starts is unknown.
 */
int http_parse_head(char *buf, size_t len, struct http_head *h);

/* The value of the first field named `name` (case-insensitive), or NULL. */
const char *http_head_field(const struct http_head *h, const char *name);

/* The value of a hex digit, or -1. */
int http_hex_digit(unsigned char ch);

/* A chunked body decoder; zero it (or call http_chunked_init) first. */
struct http_chunked {
    int state;
    uint64_t left;  /* bytes of the current chunk still to come */
    size_t line;    /* bytes of the current size or trailer line */
    size_t trailer; /* bytes of the trailer section */
    int digits;     /* hex digits of the current size */
};

void http_chunked_init(struct http_chunked *c);

/*
 * Decode chunked body bytes in place: reads buf[0..len), moves the data
 * bytes to the front of buf and sets *out to their count, and *used to
 * the bytes it consumed (the bytes after the last chunk belong to the
 * next request). Returns 0 when the body ended (last chunk and trailer
 * read), KVD_EAGAIN when it needs more bytes (all of buf was used), or
 * 400 when the framing is malformed (c->state then stays failed).
 */
int http_chunked_decode(struct http_chunked *c, char *buf, size_t len,
                        size_t *used, size_t *out);

#ifdef __cplusplus
}
#endif

#endif /* KVD_HTTP_PARSE_H */
