/*
 * frontends/resp/resp_parse.c -- incremental, bounded RESP2 request parser.
 *
 * See resp_parse.h for the contract. Invariants between calls:
 *   - p->pos only ever advances past whole header lines and whole bulk
 *     strings (plus their "\r\n"), so a call resumes at a token boundary
 *     and never rescans completed arguments;
 *   - for an inline request, p->pos is how far the line has been searched
 *     for its '\n' without finding it;
 *   - p->argc arguments of the current request are recorded in argo/argl.
 * A header line that is still incomplete is rescanned on the next call;
 * that costs at most RESP_HEADER_MAX_BYTES, the length at which such a
 * line is refused.
 */
#include "resp_parse.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First size of the argument arrays: most commands have few arguments. */
#define RESP_ARGS_INITIAL 16

void
resp_parser_init(struct resp_parser *p, const struct resp_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->lim = lim;
    resp_parser_reset(p);
}

void
resp_parser_release(struct resp_parser *p)
{
    free(p->argo);
    free(p->argl);
    free(p->argv);
    p->argo = NULL;
    p->argl = NULL;
    p->argv = NULL;
    p->argcap = 0;
}

void
resp_parser_reset(struct resp_parser *p)
{
    p->kind = RESP_REQ_NONE;
    p->pos = 0;
    p->expected = -1;
    p->bulklen = -1;
    p->argc = 0;
    p->need = 0;
    p->inline_off = 0;
    p->inline_len = 0;
}

int
resp_parser_reserve(struct resp_parser *p, size_t n)
{
    size_t cap = p->argcap ? p->argcap : RESP_ARGS_INITIAL;
    size_t *o, *l;
    const char **v;

    if (n <= p->argcap) {
        return 0;
    }
    while (cap < n) {
        cap *= 2;
    }
    /* Each array is replaced as soon as it is grown, so a failure half
     * way leaves consistent (merely larger) arrays behind. */
    o = realloc(p->argo, cap * sizeof(*o));
    if (o == NULL) {
        return KVD_ENOMEM;
    }
    p->argo = o;
    l = realloc(p->argl, cap * sizeof(*l));
    if (l == NULL) {
        return KVD_ENOMEM;
    }
    p->argl = l;
    v = realloc(p->argv, cap * sizeof(*v));
    if (v == NULL) {
        return KVD_ENOMEM;
    }
    p->argv = v;
    p->argcap = cap;
    return 0;
}

const char *const *
resp_parser_args(struct resp_parser *p, const char *base)
{
    for (size_t i = 0; i < p->argc; i++) {
        p->argv[i] = base + p->argo[i];
    }
    return p->argv;
}

static int
proto_error(struct resp_parser *p, const char *what)
{
    snprintf(p->error, sizeof(p->error), "Protocol error: %s", what);
    return KVD_EPROTO;
}

/*
 * Strict decimal: optional '-', then digits without leading zeros, no
 * spaces or '+', no overflow. Lengths and counts must be written exactly
 * so, which keeps "$ 5" or "$05" from being read two ways.
 */
static bool
parse_i64(const char *s, size_t n, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0;
    size_t i = 0;

    if (n > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == n || n - i > 19 || (s[i] == '0' && n - i > 1)) {
        return false;
    }
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/*
 * Find the header line starting at buf[from]: on success *val is its
 * number and the returned offset is past its "\r\n". Returns 0 for
 * "incomplete" and (size_t)-1 for "malformed" (number, terminator or
 * length); the caller words the error.
 */
#define HDR_MALFORMED ((size_t)-1)
#define HDR_TOO_LONG  ((size_t)-2)

static size_t
header_line(const char *buf, size_t len, size_t from, int64_t *val)
{
    const char *start = buf + from + 1; /* past '*' or '$' */
    const char *cr;
    size_t avail = len - from;
    size_t scan = avail < RESP_HEADER_MAX_BYTES ? avail : RESP_HEADER_MAX_BYTES;

    cr = memchr(buf + from, '\r', scan);
    if (cr == NULL) {
        return avail >= RESP_HEADER_MAX_BYTES ? HDR_TOO_LONG : 0;
    }
    if ((size_t)(cr - buf) + 1 >= len) {
        return 0; /* the '\n' has not arrived yet */
    }
    if (cr[1] != '\n' || !parse_i64(start, (size_t)(cr - start), val)) {
        return HDR_MALFORMED;
    }
    return (size_t)(cr - buf) + 2;
}

static int
parse_inline(struct resp_parser *p, const char *buf, size_t len)
{
    uint64_t max = p->lim->max_inline_len;
    size_t scan_end = len;
    const char *nl;

    /* Never search (or wait) beyond the longest line allowed. */
    if (scan_end > max + 2) {
        scan_end = (size_t)max + 2;
    }
    nl = p->pos < scan_end ? memchr(buf + p->pos, '\n', scan_end - p->pos)
                           : NULL;
    if (nl == NULL) {
        if (len > max + 1) {
            return proto_error(p, "too big inline request");
        }
        p->pos = len;
        return KVD_EAGAIN;
    }
    p->inline_off = 0;
    p->inline_len = (size_t)(nl - buf);
    if (p->inline_len > 0 && buf[p->inline_len - 1] == '\r') {
        p->inline_len--;
    }
    if (p->inline_len > max) {
        return proto_error(p, "too big inline request");
    }
    p->pos = (size_t)(nl - buf) + 1;
    return 0;
}

static int
parse_bulk_header(struct resp_parser *p, const char *buf, size_t len)
{
    char msg[48];
    int64_t v;
    size_t next;
    unsigned char c = (unsigned char)buf[p->pos];

    if (c != '$') {
        if (c >= 0x20 && c < 0x7f) {
            snprintf(msg, sizeof(msg), "expected '$', got '%c'", c);
        } else {
            snprintf(msg, sizeof(msg), "expected '$', got '\\x%02x'", c);
        }
        return proto_error(p, msg);
    }
    next = header_line(buf, len, p->pos, &v);
    if (next == 0) {
        return KVD_EAGAIN;
    }
    if (next == HDR_TOO_LONG) {
        return proto_error(p, "too big bulk count string");
    }
    if (next == HDR_MALFORMED || v < 0 || (uint64_t)v > p->lim->max_bulk_len) {
        return proto_error(p, "invalid bulk length");
    }
    p->pos = next;
    p->bulklen = v;
    return 0;
}

/*
 * p->need for a request of `total` bytes of which `len` have arrived: the
 * total, capped at twice what arrived (see resp_parse.h). The cap is what
 * keeps an announced size from reserving memory: a client must send
 * half of any buffer it makes kvd hold.
 */
static size_t
need_for(size_t total, size_t len)
{
    size_t step = len > RESP_NEED_STEP_BYTES ? len : RESP_NEED_STEP_BYTES;

    return total - len > step ? len + step : total;
}

static int
parse_multibulk(struct resp_parser *p, const char *buf, size_t len)
{
    int rc;

    if (p->expected < 0) {
        int64_t v;
        size_t next = header_line(buf, len, 0, &v);
        if (next == 0) {
            return KVD_EAGAIN;
        }
        if (next == HDR_TOO_LONG) {
            return proto_error(p, "too big mbulk count string");
        }
        if (next == HDR_MALFORMED || v > (int64_t)p->lim->max_args) {
            return proto_error(p, "invalid multibulk length");
        }
        p->pos = next;
        if (v <= 0) {
            return 0; /* an empty request: nothing to run, no reply */
        }
        p->expected = v;
    }
    while ((int64_t)p->argc < p->expected) {
        if (p->bulklen < 0) {
            if (p->pos >= len) {
                return KVD_EAGAIN;
            }
            rc = parse_bulk_header(p, buf, len);
            if (rc != 0) {
                return rc;
            }
        }
        /* bulklen <= max_bulk_len, so this sum cannot overflow. */
        size_t end = p->pos + (size_t)p->bulklen;
        if (p->lim->max_request_len != 0 && end + 2 > p->lim->max_request_len) {
            return proto_error(p, "request larger than the query buffer "
                                  "limit");
        }
        if (len < end + 2) {
            p->need = need_for(end + 2, len);
            return KVD_EAGAIN;
        }
        if (buf[end] != '\r' || buf[end + 1] != '\n') {
            return proto_error(p, "bulk string not followed by CRLF");
        }
        if (resp_parser_reserve(p, p->argc + 1) != 0) {
            return KVD_ENOMEM;
        }
        p->argo[p->argc] = p->pos;
        p->argl[p->argc] = (size_t)p->bulklen;
        p->argc++;
        p->pos = end + 2;
        p->bulklen = -1;
        p->need = 0;
    }
    return 0;
}

int
resp_parse(struct resp_parser *p, const char *buf, size_t len)
{
    if (p->kind == RESP_REQ_NONE) {
        if (len == 0) {
            return KVD_EAGAIN;
        }
        p->kind = buf[0] == '*' ? RESP_REQ_MULTIBULK : RESP_REQ_INLINE;
    }
    if (p->kind == RESP_REQ_INLINE) {
        return parse_inline(p, buf, len);
    }
    return parse_multibulk(p, buf, len);
}
