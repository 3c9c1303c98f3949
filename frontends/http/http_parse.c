/*
 * frontends/http/http_parse.c -- the HTTP/1.1 request parser (see
 * http_parse.h for the contract and what it refuses).
 *
 * Sections: finding the end of a head; the request line; header fields;
 * message framing from the fields (RFC 9112 section 6); the chunked
 * decoder (section 7.1), a byte-at-a-time state machine for the size and
 * trailer lines and a bulk copy for the data.
 */
#include "http_parse.h"

#include <string.h>
#include <strings.h>

/* ---- the end of a head --------------------------------------------------- */

size_t
http_head_end(const char *buf, size_t len, size_t *scanned)
{
    size_t i = *scanned;

    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t p;

        if (nl == NULL) {
            break;
        }
        p = (size_t)(nl - buf);
        /* The head ends at an empty line: "\n\n" or "\n\r\n". Until the
         * bytes after this LF are here, resume the scan at it. */
        if (p + 1 >= len) {
            *scanned = p;
            return 0;
        }
        if (buf[p + 1] == '\n') {
            return p + 2;
        }
        if (buf[p + 1] == '\r') {
            if (p + 2 >= len) {
                *scanned = p;
                return 0;
            }
            if (buf[p + 2] == '\n') {
                return p + 3;
            }
        }
        i = p + 1;
    }
    *scanned = len;
    return 0;
}

/* ---- lines and tokens ---------------------------------------------------- */

int
http_hex_digit(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* tchar of RFC 9110 5.6.2: what method and field names are made of. */
static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
refuse(struct http_head *h, int status, const char *why)
{
    h->error = why;
    return status;
}

/* The end of the line starting at p (its LF, which exists: the head ends
 * with one), and in *content_end where its content ends (before an
 * optional CR). */
static char *
line_end(char *p, const char *end, char **content_end)
{
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *le = nl;

    if (le > p && le[-1] == '\r') {
        le--;
    }
    *content_end = le;
    return nl;
}

static int
parse_request_line(char *p, char *le, struct http_head *h)
{
    const char *m = p, *t;
    size_t vlen;

    while (p < le && is_tchar((unsigned char)*p)) {
        p++;
    }
    if (p == m || p >= le || *p != ' ') {
        return refuse(h, 400, "malformed request line");
    }
    h->method = m;
    h->method_len = (size_t)(p - m);
    *p++ = '\0';
    /* Visible ASCII only: no control bytes, no spaces, nothing above 0x7e
     * (percent-encode those). */
    t = p;
    while (p < le && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f) {
        p++;
    }
    if (p == t || p >= le || *p != ' ') {
        return refuse(h, 400, "malformed request line");
    }
    h->target = t;
    h->target_len = (size_t)(p - t);
    *p++ = '\0';
    vlen = (size_t)(le - p);
    if (vlen == 8 && memcmp(p, "HTTP/1.", 7) == 0 &&
        (p[7] == '0' || p[7] == '1')) {
        h->minor = (unsigned)(p[7] - '0');
        return 0;
    }
    if (vlen == 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' && p[5] <= '9' &&
        p[6] == '.' && p[7] >= '0' && p[7] <= '9') {
        return refuse(h, 505, "HTTP version not supported");
    }
    return refuse(h, 400, "malformed request line");
}

/* One field line [p, le): name, colon, optional whitespace, value. */
static int
parse_field(char *p, char *le, struct http_head *h)
{
    struct http_field *f;
    const char *n = p;
    char *v, *ve;

    if (*p == ' ' || *p == '\t') {
        return refuse(h, 400, "obsolete line folding in the header");
    }
    while (p < le && is_tchar((unsigned char)*p)) {
        p++;
    }
    if (p == n || p >= le || *p != ':') {
        return refuse(h, 400, "malformed header field");
    }
    if (h->nfields == HTTP_FIELDS_MAX) {
        return refuse(h, 431, "too many header fields");
    }
    f = &h->fields[h->nfields++];
    f->name = n;
    f->name_len = (size_t)(p - n);
    *p++ = '\0';
    while (p < le && (*p == ' ' || *p == '\t')) {
        p++;
    }
    v = p;
    ve = le;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
        ve--;
    }
    for (const char *q = v; q < ve; q++) {
        unsigned char c = (unsigned char)*q;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return refuse(h, 400, "control character in a header field");
        }
    }
    f->value = v;
    f->value_len = (size_t)(ve - v);
    *ve = '\0';
    return 0;
}

/* ---- framing ------------------------------------------------------------- */

/* Field names compare case-insensitively; the length first, so most
 * fields are told apart without reading them. */
static int
name_is(const struct http_field *f, const char *name, size_t len)
{
    return f->name_len == len && strncasecmp(f->name, name, len) == 0;
}

#define NAME_IS(f, lit) name_is((f), (lit), sizeof(lit) - 1)

/* Call fn on each element of a comma-separated list value, trimmed;
 * empty elements are skipped (RFC 9110 5.6.1). */
static void
each_element(const char *v, void (*fn)(void *ctx, const char *p, size_t n),
             void *ctx)
{
    while (*v != '\0') {
        const char *e = strchr(v, ',');
        size_t n = e != NULL ? (size_t)(e - v) : strlen(v);
        const char *s = v;
        size_t k = n;

        while (k > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            k--;
        }
        while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t')) {
            k--;
        }
        if (k > 0) {
            fn(ctx, s, k);
        }
        v += n;
        if (*v == ',') {
            v++;
        }
    }
}

struct te_state {
    unsigned codings;
    unsigned chunked;
    unsigned unknown;
    int last_chunked;
};

static void
te_element(void *ctx, const char *p, size_t n)
{
    struct te_state *s = ctx;
    int chunked = n == 7 && strncasecmp(p, "chunked", 7) == 0;

    s->codings++;
    s->chunked += chunked;
    s->unknown += !chunked;
    s->last_chunked = chunked;
}

static void
conn_element(void *ctx, const char *p, size_t n)
{
    unsigned *flags = ctx;

    if (n == 5 && strncasecmp(p, "close", 5) == 0) {
        *flags |= HTTP_HEAD_CLOSE;
    } else if (n == 10 && strncasecmp(p, "keep-alive", 10) == 0) {
        *flags |= HTTP_HEAD_KEEP_ALIVE;
    }
}

/* Content-Length: digits only, one field, one value. */
static int
parse_content_length(const struct http_field *f, struct http_head *h)
{
    uint64_t v = 0;

    if (f->value_len == 0) {
        return refuse(h, 400, "invalid Content-Length");
    }
    for (size_t i = 0; i < f->value_len; i++) {
        unsigned d = (unsigned char)f->value[i] - '0';
        if (d > 9) {
            return refuse(h, 400, "invalid Content-Length");
        }
        if (v > (UINT64_C(1) << 62) / 10) {
            return refuse(h, 413, "Content-Length too large");
        }
        v = v * 10 + d;
    }
    h->content_length = v;
    return 0;
}

static int
parse_framing(struct http_head *h)
{
    struct te_state te = {0, 0, 0, 0};
    unsigned cl = 0, host = 0, te_fields = 0;
    int rc;

    for (size_t i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];

        if (NAME_IS(f, "content-length")) {
            if (++cl > 1) {
                return refuse(h, 400, "more than one Content-Length");
            }
            if ((rc = parse_content_length(f, h)) != 0) {
                return rc;
            }
        } else if (NAME_IS(f, "transfer-encoding")) {
            te_fields++;
            each_element(f->value, te_element, &te);
        } else if (NAME_IS(f, "host")) {
            host++;
        } else if (NAME_IS(f, "connection")) {
            each_element(f->value, conn_element, &h->flags);
        } else if (NAME_IS(f, "expect") && h->minor == 1) {
            /* HTTP/1.0 requests' Expect is ignored (RFC 9110 10.1.1). */
            if (strcasecmp(f->value, "100-continue") != 0) {
                return refuse(h, 417, "unsupported expectation");
            }
            h->flags |= HTTP_HEAD_CONTINUE;
        }
    }
    if (host > 1 || (h->minor == 1 && host == 0)) {
        return refuse(h, 400,
                      host ? "more than one Host" : "missing Host header");
    }
    if (te_fields > 0) {
        if (h->minor == 0) {
            return refuse(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
        }
        if (cl > 0) {
            return refuse(h, 400, "both Content-Length and Transfer-Encoding");
        }
        if (!te.last_chunked || te.chunked > 1) {
            return refuse(h, 400,
                          "chunked must be the last transfer "
                          "coding, applied once");
        }
        if (te.unknown > 0) {
            return refuse(h, 501, "unsupported transfer coding");
        }
        h->body = HTTP_BODY_CHUNKED;
    } else if (cl > 0) {
        h->body = HTTP_BODY_LENGTH;
    }
    return 0;
}

int
http_parse_head(char *buf, size_t len, struct http_head *h)
{
    char *end = buf + len, *p = buf, *le, *nl;
    int rc;

    h->nfields = 0;
    h->body = HTTP_BODY_NONE;
    h->content_length = 0;
    h->flags = 0;
    h->error = NULL;
    if (len == 0 || buf[len - 1] != '\n') {
        return refuse(h, 400, "incomplete request head");
    }
    nl = line_end(p, end, &le);
    if ((rc = parse_request_line(p, le, h)) != 0) {
        return rc;
    }
    for (p = nl + 1; p < end; p = nl + 1) {
        nl = line_end(p, end, &le);
        if (le == p) {
            break; /* the empty line */
        }
        if ((rc = parse_field(p, le, h)) != 0) {
            return rc;
        }
    }
    return parse_framing(h);
}

const char *
http_head_field(const struct http_head *h, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < h->nfields; i++) {
        if (name_is(&h->fields[i], name, len)) {
            return h->fields[i].value;
        }
    }
    return NULL;
}

/* ---- chunked bodies ------------------------------------------------------ */

enum {
    CH_SIZE = 0,   /* hex digits of a chunk size */
    CH_EXT,        /* chunk extensions, skipped */
    CH_SIZE_LF,    /* the LF after a size line's CR */
    CH_DATA,       /* chunk data */
    CH_DATA_CR,    /* the CRLF after chunk data */
    CH_DATA_LF,    /* its LF */
    CH_TRAILER,    /* trailer field lines, skipped */
    CH_TRAILER_LF, /* the LF of the final empty line */
    CH_DONE,
    CH_FAILED,
};

void
http_chunked_init(struct http_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
}

/* A size line ended: data follows, or the trailer after the last chunk. */
static int
size_line_done(struct http_chunked *c)
{
    if (c->digits == 0) {
        return -1;
    }
    c->line = 0;
    c->state = c->left > 0 ? CH_DATA : CH_TRAILER;
    return 0;
}

/* One byte of a size, extension or trailer line, or of a CRLF after data.
 * Returns 0 to go on, 1 at the end of the body, -1 on bad framing. */
static int
chunked_byte(struct http_chunked *c, unsigned char ch)
{
    int d;

    switch (c->state) {
    case CH_SIZE:
        if (++c->line > HTTP_CHUNK_LINE_MAX) {
            return -1;
        }
        if ((d = http_hex_digit(ch)) >= 0) {
            /* 15 digits: sizes up to 2^60, no overflow to think about. */
            if (c->digits++ == 15) {
                return -1;
            }
            c->left = c->left << 4 | (uint64_t)d;
            return 0;
        }
        if (c->digits == 0) {
            return -1;
        }
        if (ch == ';' || ch == ' ' || ch == '\t') {
            c->state = CH_EXT;
            return 0;
        }
        if (ch == '\r') {
            c->state = CH_SIZE_LF;
            return 0;
        }
        return ch == '\n' ? size_line_done(c) : -1;
    case CH_EXT:
        if (++c->line > HTTP_CHUNK_LINE_MAX) {
            return -1;
        }
        if (ch == '\r') {
            c->state = CH_SIZE_LF;
        } else if (ch == '\n') {
            return size_line_done(c);
        } else if (ch < 0x20 && ch != '\t') {
            return -1;
        }
        return 0;
    case CH_SIZE_LF:
        return ch == '\n' ? size_line_done(c) : -1;
    case CH_DATA_CR:
    case CH_DATA_LF:
        if (ch == '\r' && c->state == CH_DATA_CR) {
            c->state = CH_DATA_LF;
            return 0;
        }
        if (ch != '\n') { /* a bare LF ends the data too */
            return -1;
        }
        c->state = CH_SIZE;
        c->digits = 0;
        c->line = 0;
        return 0;
    case CH_TRAILER:
        if (++c->trailer > HTTP_CHUNK_TRAILER_MAX) {
            return -1;
        }
        if (c->line == 0 && ch == '\r') {
            c->state = CH_TRAILER_LF;
            return 0;
        }
        if (ch == '\n') {
            if (c->line == 0) {
                c->state = CH_DONE;
                return 1;
            }
            c->line = 0;
            return 0;
        }
        c->line++;
        return 0;
    case CH_TRAILER_LF:
        if (ch != '\n') {
            return -1;
        }
        c->state = CH_DONE;
        return 1;
    default:
        return -1;
    }
}

int
http_chunked_decode(struct http_chunked *c, char *buf, size_t len, size_t *used,
                    size_t *out)
{
    size_t i = 0, o = 0;

    *used = 0;
    *out = 0;
    if (c->state == CH_DONE) {
        return 0;
    }
    while (i < len) {
        int rc;

        if (c->state == CH_DATA) {
            size_t n = len - i;
            if (n > c->left) {
                n = (size_t)c->left;
            }
            memmove(buf + o, buf + i, n);
            o += n;
            i += n;
            c->left -= n;
            if (c->left == 0) {
                c->state = CH_DATA_CR;
            }
            continue;
        }
        rc = chunked_byte(c, (unsigned char)buf[i++]);
        if (rc < 0) {
            c->state = CH_FAILED;
            *used = i;
            *out = o;
            return 400;
        }
        if (rc > 0) {
            *used = i;
            *out = o;
            return 0;
        }
    }
    *used = i;
    *out = o;
    return KVD_EAGAIN;
}
