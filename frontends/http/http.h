/*
 * frontends/http/http.h -- internals shared by the files of the http
 * frontend (not installed, not part of any ABI).
 *
 * Shape: libmicrohttpd (MHD) in its epoll thread-pool mode. create() binds
 * the listening socket itself, so a bad address fails before anything is
 * served; start() hands that socket to an MHD daemon whose `threads`
 * workers each run an epoll loop over their own connections. Every
 * callback below runs on one of those workers.
 *
 * A request is a struct http_req, allocated when MHD has read the request
 * line (the URI callback, which also sees the raw, still percent-encoded
 * request-target: kvd decodes keys itself, binary-safe, NUL included) and
 * freed in the completion callback. It belongs to one worker thread at a
 * time, so it needs no lock.
 *
 * Shared state (struct http_fe): options, host and store pointers are fixed
 * after create(). `stopping`, `inflight` and the readiness cache are
 * atomics. Counters and the latency histogram live in cache-line-aligned
 * slots; a thread picks its slot once, so workers rarely share a line and
 * never take a lock to count.
 *
 * Files: http.c (options, lifecycle, MHD callbacks, dispatch, the vtable),
 * http_kv.c (the /kv routes), http_ops.c (health, readiness, metrics and
 * the counters behind them), http_util.c (URL and query decoding, base64,
 * JSON and response helpers).
 */
#ifndef KVD_HTTP_H
#define KVD_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "kvd/frontend.h"
#include "kvd/host.h"

/* GET /kv?prefix=: keys per page by default and at most. */
#define HTTP_LIST_DEFAULT 100
#define HTTP_LIST_MAX     1000
/* Keys one GET/DELETE /kv?key=... may name. */
#define HTTP_MULTI_KEYS_MAX 1000
/* Largest ?ttl= accepted: 100 years, far below int64 ms overflow. */
#define HTTP_TTL_MAX_S INT64_C(3153600000)
/* First allocation of a body whose length is not announced (chunked). */
#define HTTP_BODY_CHUNK_BYTES (64 * 1024)
/* Most allocated up front for an announced Content-Length; the buffer
 * grows by doubling as the bytes actually arrive. */
#define HTTP_BODY_PREALLOC_BYTES (1024 * 1024)
/* How long the readiness answer of the store is reused by writes. */
#define HTTP_READY_CACHE_MS 250
/* Counter slots (see the file comment). */
#define HTTP_CTR_SLOTS 16

/* The parsed [frontend.http] section (see the table in http.c). */
struct http_opts {
    char *listen;
    int64_t threads;
    uint64_t max_body_bytes;
    char *token;
    int64_t max_connections;
    int64_t timeout_ms;
    int strict_content_type;
    uint64_t max_header_bytes;
    int64_t drain_timeout_ms;
};

/* What a request did, for the per-command counters. */
#define HTTP_CMD_MAP(XX)                                                       \
    XX(GET, "get")                                                             \
    XX(HEAD, "head")                                                           \
    XX(PUT, "put")                                                             \
    XX(DELETE, "delete")                                                       \
    XX(MGET, "mget")                                                           \
    XX(MSET, "mset")                                                           \
    XX(MDEL, "mdel")                                                           \
    XX(LIST, "list")                                                           \
    XX(HEALTHZ, "healthz")                                                     \
    XX(READYZ, "readyz")                                                       \
    XX(METRICS, "metrics")                                                     \
    XX(OTHER, "other")

enum http_cmd {
#define HTTP_XX_CMD(id, name) HTTP_CMD_##id,
    HTTP_CMD_MAP(HTTP_XX_CMD)
#undef HTTP_XX_CMD
        HTTP_CMD_COUNT
};

/* Status codes counted one by one; anything else counts as "other". */
#define HTTP_CODES                                                             \
    200, 201, 204, 400, 401, 404, 405, 411, 412, 413, 414, 415, 500, 501, 503
#define HTTP_CODE_COUNT 16 /* the list above plus "other" */

/* Latency histogram upper bounds, nanoseconds (then +Inf). */
#define HTTP_HIST_BOUNDS_NS                                                    \
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,        \
        25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,       \
        2500000000u, 5000000000u, 10000000000u
#define HTTP_HIST_BUCKETS 18 /* the bounds above plus +Inf */

struct http_ctr_slot {
    _Atomic uint64_t req[HTTP_CMD_COUNT][HTTP_CODE_COUNT];
    _Atomic uint64_t hist[HTTP_HIST_BUCKETS];
    _Atomic uint64_t sum_ns;
} __attribute__((aligned(64)));

struct http_fe {
    /* fixed after create() */
    const struct kvd_host *host;
    const struct kvd_server *srv;
    const struct http_opts *opts;
    unsigned nthreads;
    size_t token_len;
    int listen_fd;  /* ours until MHD_stop_daemon returned; then closed */
    char addr[128]; /* the bound address, for messages */
    struct MHD_Daemon *daemon;
    struct http_ctr_slot *ctr; /* HTTP_CTR_SLOTS */

    atomic_int stopping;      /* stop() was called */
    atomic_int quiesced;      /* MHD no longer accepts */
    atomic_long inflight;     /* requests begun and not completed */
    atomic_llong ready_until; /* ready cache: valid until this ms */
};

/* Where a request goes, from its path. */
enum http_route {
    HTTP_ROUTE_NONE = 0,
    HTTP_ROUTE_KEY,        /* /kv/{key} */
    HTTP_ROUTE_COLLECTION, /* /kv */
    HTTP_ROUTE_HEALTHZ,
    HTTP_ROUTE_READYZ,
    HTTP_ROUTE_METRICS,
};

/* One query parameter, decoded (binary-safe). */
struct http_arg {
    const char *name;
    size_t name_len;
    const char *val;
    size_t val_len;
    int has_val; /* "x=..." rather than a bare "x" */
};

/* One request; see the file comment. */
struct http_req {
    struct http_fe *fe;
    char *uri; /* raw request-target as received, NUL-terminated */
    int64_t t0_ns;
    int cmd;    /* enum http_cmd */
    int status; /* status queued, 0 until then */
    uint64_t resp_bytes;
    int deferred;  /* the first access-handler call was let pass */
    int started;   /* routed and checked (http_begin ran) */
    int route;     /* enum http_route */
    int receiving; /* a body is being received (PUT, POST) */
    char method[16];

    /* decoded from uri on the first call */
    char *key; /* /kv/{key}; NULL on other routes */
    size_t klen;
    struct http_arg *args;
    size_t nargs;
    char *argbuf; /* backing store of args[] and key */

    /* request body (PUT, POST) */
    char *body;
    size_t body_len;
    size_t body_cap;
    uint64_t body_seen; /* bytes received, kept or not */
    int body_over;      /* exceeded max_body_bytes: answer 413 */
};

/* --- http_util.c --------------------------------------------------------- */

/* Percent-decode src (len bytes) into dst (room for len bytes); `plus`
 * turns '+' into a space (query strings). Returns the decoded length, or
 * -1 on a malformed escape. */
long http_pct_decode(const char *src, size_t len, char *dst, int plus);

/* Split the raw URI into the decoded key of /kv/{key} (when `key_at` is
 * not 0: the path offset where the key starts) and the decoded query
 * arguments. Fills r->key, r->klen, r->args, r->nargs, r->argbuf.
 * Returns 0, KVD_EINVAL (bad percent-encoding) or KVD_ENOMEM. */
int http_parse_target(struct http_req *r, size_t path_len, size_t key_at);

/* The argument named `name` (the last one when repeated), or NULL. */
const struct http_arg *http_arg_find(const struct http_req *r,
                                     const char *name);
/* 1 if name (name_len bytes) equals the C string s. */
int http_arg_is(const struct http_arg *a, const char *s);

/* Base64 (standard alphabet with padding, or URL-safe without). The
 * encoders return a malloc'd NUL-terminated string (NULL: no memory);
 * the decoder returns the decoded length into dst (room for
 * len * 3 / 4 + 3 bytes) or -1 on bad input. */
char *http_b64_encode(const void *src, size_t len, int url);
long http_b64_decode(const char *src, size_t len, char *dst, int url);

/* JSON for arbitrary bytes: a string when they are valid UTF-8, else
 * {"base64": "..."}. NULL on no memory. */
json_t *http_json_bytes(const void *p, size_t n);

/* A Prometheus label value for the text format: backslash, double quote
 * and newline escaped, written to out (cap bytes, NUL included; cap >=
 * 2 * strlen(s) + 1 holds any s, a smaller one cuts the value between
 * characters, never inside an escape). Returns out. */
const char *http_prom_label(char *out, size_t cap, const char *s);

/* Queue a response and record its status for counters and the access
 * log. Adds the headers every response carries. Takes ownership of resp
 * (NULL: answer 500). */
enum MHD_Result http_send(struct http_req *r, struct MHD_Connection *c,
                          unsigned status, struct MHD_Response *resp);
/* Queue a JSON body (takes ownership of j; NULL: 500). */
enum MHD_Result http_send_json(struct http_req *r, struct MHD_Connection *c,
                               unsigned status, json_t *j);
/* Queue {"error": msg}. */
enum MHD_Result http_send_error(struct http_req *r, struct MHD_Connection *c,
                                unsigned status, const char *msg);
/* 405 with the Allow header. */
enum MHD_Result http_send_405(struct http_req *r, struct MHD_Connection *c,
                              const char *allow);
/* Queue the error that a store status stands for. `what` tells apart the
 * routes where KVD_ETOOBIG can only mean the key. */
enum MHD_Result http_send_status(struct http_req *r, struct MHD_Connection *c,
                                 int rc, int key_only);
/* Queue an empty body with `status`. */
enum MHD_Result http_send_empty(struct http_req *r, struct MHD_Connection *c,
                                unsigned status);

/* --- http_kv.c ----------------------------------------------------------- */

/* Routes under /kv (r->route is HTTP_ROUTE_KEY or _COLLECTION), on
 * every access-handler call of such a request: the first one validates
 * and either answers or starts receiving a body; later ones take body
 * bytes, and the one with *upload_size == 0 executes. r->key and
 * r->args are decoded already. */
enum MHD_Result http_kv_handle(struct http_req *r, struct MHD_Connection *c,
                               const char *upload, size_t *upload_size);

/* The ready check writes go through; 1 ready, 0 not (why filled). */
int http_ready(struct http_fe *fe, char *why, size_t why_len, int fresh);

/* --- http_ops.c ---------------------------------------------------------- */

enum MHD_Result http_healthz(struct http_req *r, struct MHD_Connection *c);
enum MHD_Result http_readyz(struct http_req *r, struct MHD_Connection *c);
enum MHD_Result http_metrics(struct http_req *r, struct MHD_Connection *c);

/* Count a finished request: command, status and latency. */
void http_count(struct http_fe *fe, int cmd, unsigned status,
                int64_t elapsed_ns);

#endif /* KVD_HTTP_H */
