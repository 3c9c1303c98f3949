/*
 * frontends/resp/resp_parse.h -- incremental, bounded RESP2 request parser.
 *
 * A request is either a multibulk array ("*2\r\n$3\r\nGET\r\n$1\r\na\r\n")
 * or an inline line ("GET a\r\n"). The parser is resumable: it is handed
 * the bytes of one request from its first byte on, possibly incomplete,
 * and returns KVD_EAGAIN ("need more bytes") until the request is whole.
 * Its progress lives in struct resp_parser as offsets relative to the
 * first byte of the request, so the caller may move or grow its buffer
 * between calls (only the bytes already handed over must come back, at
 * the start of the next call's buffer).
 *
 * Every length read from the wire is checked against struct resp_limits
 * before anything is allocated or waited for; the argument arrays grow
 * with the arguments actually received, never with a count announced by
 * the client. Nothing here allocates once the arrays are big enough for
 * the largest request seen, so the request path is allocation-free in the
 * steady state.
 *
 * Not thread-safe: one parser per connection.
 */
#ifndef KVD_RESP_PARSE_H
#define KVD_RESP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "kvd/status.h"

/* Longest "*<count>\r\n" or "$<len>\r\n" header line accepted. */
#define RESP_HEADER_MAX_BYTES (64 * 1024)

/* Smallest step by which p->need runs ahead of the bytes received. */
#define RESP_NEED_STEP_BYTES (64 * 1024)

struct resp_limits {
    uint64_t max_bulk_len;   /* bytes of one bulk string */
    uint64_t max_args;       /* elements of one multibulk request */
    uint64_t max_inline_len; /* bytes of one inline line */
    /* bytes of one whole multibulk request, refused as soon as a header
     * announces more (the query buffer limit); 0 = no such limit */
    uint64_t max_request_len;
};

enum resp_req_kind {
    RESP_REQ_NONE = 0,
    RESP_REQ_MULTIBULK = 1,
    RESP_REQ_INLINE = 2,
};

struct resp_parser {
    const struct resp_limits *lim; /* borrowed; fixed after init */

    /* Progress through the current request (offsets from its 1st byte). */
    int kind;         /* enum resp_req_kind; NONE before the 1st byte */
    size_t pos;       /* bytes parsed so far; the request's size when done */
    int64_t expected; /* multibulk elements announced */
    int64_t bulklen;  /* length of the bulk being read, -1 = header next */

    /* Result of a complete request. argo/argl grow to argcap entries. */
    size_t argc;
    size_t argcap;
    size_t *argo;      /* offset of each argument from the request start */
    size_t *argl;      /* length of each argument */
    const char **argv; /* filled by resp_parser_args() */
    size_t inline_off; /* INLINE: the line without its "\r\n" ... */
    size_t inline_len; /* ... which the caller splits into arguments */

    /* On KVD_EAGAIN: how many bytes in all the caller's buffer should be
     * able to hold before its next read (0 = no advice). It is the
     * request's known size, but never more than twice the bytes received
     * so far (at least RESP_NEED_STEP_BYTES more): a header announcing a
     * 512 MiB bulk must not make every connection reserve 512 MiB before
     * the bytes arrive. Growing to `need` read after read doubles the
     * buffer with what is received (amortised linear copying), and the
     * last step is the request's exact size. */
    size_t need;

    /* On KVD_EPROTO: "Protocol error: ...", the text of the -ERR reply. */
    char error[96];
};

void resp_parser_init(struct resp_parser *p, const struct resp_limits *lim);

/* Free the argument arrays (the struct itself belongs to the caller). */
void resp_parser_release(struct resp_parser *p);

/* Forget the current request; call after consuming a complete one. */
void resp_parser_reset(struct resp_parser *p);

/*
 * Parse the request that starts at buf[0]; len bytes are available (they
 * may hold more than one request: only the first is parsed). Returns
 *   0            a complete request of p->pos bytes. For MULTIBULK,
 *                p->argc arguments at p->argo/p->argl (argc 0 for an
 *                empty array, "*0" or "*-1", which has no reply); for
 *                INLINE, the line at p->inline_off/p->inline_len.
 *   KVD_EAGAIN   more bytes are needed (p->need may say how many).
 *   KVD_EPROTO   the bytes break the protocol or a limit (a header
 *                announcing more than max_request_len in all is refused
 *                before its bytes arrive); p->error holds
 *                the message. The connection should be answered and
 *                closed: the parser cannot resynchronise.
 *   KVD_ENOMEM   the argument arrays could not grow.
 */
int resp_parse(struct resp_parser *p, const char *buf, size_t len);

/*
 * Ensure room for n arguments in argo/argl/argv (used by callers that split
 * inline lines into the same arrays). 0 or KVD_ENOMEM.
 */
int resp_parser_reserve(struct resp_parser *p, size_t n);

/* Point p->argv[i] at base + p->argo[i] for every argument; returns
 * p->argv. `base` is where the request starts now. */
const char *const *resp_parser_args(struct resp_parser *p, const char *base);

#endif /* KVD_RESP_PARSE_H */
