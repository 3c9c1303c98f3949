/*
 * frontends/http/http.h -- internals shared by the files of the http
 * frontend (not installed, not part of any ABI).
 *
 * Shape: kvd's own HTTP/1.1 server. create() binds the listening socket,
 * so a bad address fails before anything is served; start() runs
 * `threads` workers, each an epoll loop that accepts connections from the
 * shared listening socket and serves them start to finish. A request is
 * parsed, routed and executed on the worker that owns its connection.
 *
 * Layers, each calling only the ones below it:
 *   http.c        options, lifecycle, the exported vtable
 *   http_net.c    workers, connections, admission (connection caps),
 *                 deadlines, reading, writing, keep-alive, pipelining
 *   http_parse.c  request heads and chunked bodies (no I/O)
 *   http_peer.c   connections per client address
 *   http_route.c  routing, authentication, request bodies
 *   http_kv.c     the /kv routes: each maps to commands of the command
 *                 layer; http_cond.c conditional PUT/DELETE (If-Match);
 *                 http_txn.c POST /txn; http_ops.c health, readiness,
 *                 metrics
 *   http_cmd.c    a command-layer session per connection, running a
 *                 command, and the kvd status -> HTTP status table
 *   http_reply.c  the reply encoder: a command's reply as a tree
 *   http_resp.c   responses: what routes answer and how it is encoded
 *   http_util.c   URL and query decoding, base64, JSON bytes, labels
 *
 * A request is a struct http_req embedded in its connection and reused
 * for the next request on it; it belongs to one worker thread, so it
 * needs no lock. Shared state (struct http_fe): options, host and store
 * pointers are fixed after create(); the rest are atomics, and the
 * per-address table has its own lock. Counters and the latency histogram
 * live in cache-line-aligned slots; a thread picks its slot once, so
 * workers rarely share a line and never take a lock to count.
 */
#ifndef KVD_HTTP_H
#define KVD_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "http_parse.h"
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
/* Room for a response's extra header lines (Allow, ETag, X-KV-TTL, ...). */
#define HTTP_RESP_HDRS_BYTES 512

/* The parsed [frontend.http] section (see the table in http.c). */
struct http_opts {
    char *listen;
    int64_t threads;
    uint64_t max_body_bytes;
    char *token;
    int64_t max_connections;
    int64_t max_connections_per_ip;
    int64_t timeout_ms;
    int64_t header_timeout_ms;
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
    XX(TXN, "txn")                                                             \
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
    200, 201, 204, 304, 400, 401, 404, 405, 408, 409, 411, 412, 413, 414, 415, \
        417, 429, 431, 500, 501, 503, 505
#define HTTP_CODE_COUNT 23 /* the list above plus "other" */

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

/* Why a connection was refused or closed early, for /metrics. */
enum http_refusal {
    HTTP_REFUSED_TOTAL = 0, /* max_connections reached */
    HTTP_REFUSED_PER_IP,    /* max_connections_per_ip reached */
    HTTP_REFUSAL_COUNT
};

enum http_timeout_kind {
    HTTP_TIMEOUT_HEADER = 0, /* header_timeout: the head did not arrive */
    HTTP_TIMEOUT_BODY,       /* timeout: the body stopped arriving */
    HTTP_TIMEOUT_IDLE,       /* timeout: no request on a kept-alive one */
    HTTP_TIMEOUT_WRITE,      /* timeout: the client stopped reading */
    HTTP_TIMEOUT_COUNT
};

struct http_worker; /* http_net.c */
struct http_conn;   /* http_net.c */
struct http_peers;  /* http_peer.c */

struct http_fe {
    /* fixed after create() */
    const struct kvd_host *host;
    const struct kvd_server *srv;
    const struct http_opts *opts;
    unsigned nthreads;
    size_t token_len;
    int listen_fd;  /* closed by destroy(), after the workers are gone */
    char addr[128]; /* the bound address, for messages */
    struct http_ctr_slot *ctr; /* HTTP_CTR_SLOTS */
    struct http_peers *peers;  /* NULL: no per-address limit */
    struct http_worker *workers;
    unsigned nworkers; /* started */

    atomic_int stopping;      /* stop() was called */
    atomic_int force_close;   /* the drain timeout passed: close all */
    atomic_uint running;      /* workers whose loop has not exited */
    atomic_long inflight;     /* requests begun and not answered */
    atomic_long nconns;       /* connections holding a slot */
    atomic_long nlinger;      /* connections closing gracefully */
    atomic_llong ready_until; /* ready cache: valid until this ms */
    _Atomic uint64_t refused[HTTP_REFUSAL_COUNT];
    _Atomic uint64_t timeouts[HTTP_TIMEOUT_COUNT];
    /* when each limit was last logged (monotonic ms): one message per
     * interval, not one per refused connection */
    _Atomic int64_t limit_logged[HTTP_REFUSAL_COUNT];
};

/* Where a request goes, from its path. */
enum http_route {
    HTTP_ROUTE_NONE = 0,
    HTTP_ROUTE_KEY,        /* /kv/{key} */
    HTTP_ROUTE_COLLECTION, /* /kv */
    HTTP_ROUTE_TXN,        /* /txn */
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

/* A command's reply, as recorded by the encoder (http_reply.c). */
enum http_rtype {
    HTTP_R_STATUS = 1, /* +OK */
    HTTP_R_ERROR,      /* p/n: the text; status: the kvd status behind it */
    HTTP_R_INT,
    HTTP_R_BULK,
    HTTP_R_NULL,
    HTTP_R_ARRAY, /* elem[nelem]; a map comes as key, value, key, ... */
    HTTP_R_DOUBLE,
    HTTP_R_NULL_ARRAY, /* EXEC after a watched key changed */
};

struct http_rnode {
    int type;      /* enum http_rtype */
    int status;    /* HTTP_R_ERROR: a kvd status, 0 when none was given */
    const char *p; /* STATUS, ERROR, BULK: the bytes (NUL-terminated
                      when shorter than HTTP_REPLY_OWN_BYTES) */
    size_t n;
    long long i;
    double d;
    size_t nelem;
    struct http_rnode *elem;
};

/* Bulk strings this long get an allocation of their own, which a route
 * can take as a response body (http_reply_take). */
#define HTTP_REPLY_OWN_BYTES 4096
#define HTTP_REPLY_DEPTH     8

struct http_arena_chunk;

struct http_rframe {
    struct http_rnode *node;
    size_t filled;
};

/* The encoder's state: the `w` of http_reply_ops, one per connection.
 * Valid from one command's call until the next command's. */
struct http_reply {
    struct http_rnode *root; /* NULL until the reply came */
    int failed;              /* no memory, or a reply of a broken shape */
    struct http_arena_chunk *chunks;
    size_t arena_bytes;
    char **owned; /* bulk strings with their own allocation */
    size_t nowned;
    size_t owned_cap;
    struct http_rframe stack[HTTP_REPLY_DEPTH]; /* open arrays */
    size_t depth;
};

/* What a route answers (http_resp.c fills it; http_net.c sends it). */
struct http_resp {
    const char *ctype;               /* static string; NULL: none */
    char hdrs[HTTP_RESP_HDRS_BYTES]; /* extra "Name: value\r\n" lines */
    size_t hdrs_len;
    const void *body;
    size_t body_len;
    void (*body_free)(void *arg); /* NULL: the body is static */
    void *body_arg;
    int close; /* close the connection after this response */
};

/* One request; see the file comment. Buffers (uri, args, argbuf) are kept
 * for the next request on the connection unless they grew large. */
struct http_req {
    struct http_fe *fe;
    const struct http_head *head; /* during http_route_head only */
    int64_t t0_ns;
    int cmd;    /* enum http_cmd */
    int status; /* status answered, 0 until then */
    int route;  /* enum http_route */
    int is_head;
    unsigned minor; /* HTTP/1.<minor> */
    char method[16];

    int fd; /* the connection's socket (for the session's addresses) */
    kvd_session *sess;     /* opened at the connection's first command */
    struct http_reply rep; /* the last command's reply */

    char *uri; /* raw request-target, NUL-terminated */
    size_t uri_len;
    size_t uri_cap;

    /* decoded from uri by http_parse_target */
    char *key; /* /kv/{key}; NULL on other routes */
    size_t klen;
    struct http_arg *args;
    size_t nargs;
    size_t args_cap;
    char *argbuf; /* backing store of args[] and key */
    size_t argbuf_cap;

    /* conditions (copied from the head; NULL when absent) */
    char *if_match;
    char *if_none_match;

    /* request body (PUT, POST) */
    int want_body; /* the route reads the body: http_route_body follows */
    char *body;
    size_t body_len;
    size_t body_cap;
    uint64_t body_seen; /* bytes received, kept or not */
    int body_over;      /* exceeded max_body_bytes: answer 413 */

    struct http_resp resp;
};

/* --- http_util.c --------------------------------------------------------- */

/* Percent-decode src (len bytes) into dst (room for len bytes); `plus`
 * turns '+' into a space (query strings). Returns the decoded length, or
 * -1 on a malformed escape. */
long http_pct_decode(const char *src, size_t len, char *dst, int plus);

/* Split r->uri into the decoded key of /kv/{key} (when `key_at` is not
 * 0: the path offset where the key starts) and the decoded query
 * arguments. Fills r->key, r->klen, r->args, r->nargs, reusing r's
 * buffers. Returns 0, KVD_EINVAL (bad percent-encoding) or KVD_ENOMEM. */
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

/* A 64-bit hash of bytes, for entity tags (not keyed, so a tag is the
 * same after a restart). */
uint64_t http_hash64(const void *data, size_t len);

/* A value's strong entity tag: "\"<16 hex digits>\"", NUL-terminated. */
#define HTTP_ETAG_BYTES 19
void http_etag(const void *value, size_t len, char out[HTTP_ETAG_BYTES]);

/* Whether an If-Match (weak = 0: strong comparison) or If-None-Match
 * (weak = 1) field value matches the current value's tag `etag` (NULL:
 * the key is absent, which nothing matches, not even "*"). */
int http_etag_match(const char *list, const char *etag, int weak);

/* --- http_resp.c --------------------------------------------------------- */

/* Answer with `status` and a body, which the response owns from now on:
 * body_free(arg) is called once it is sent or dropped (body_free NULL: a
 * static body). Every http_send* records the status in r->status; a
 * request is answered once. */
void http_send_body(struct http_req *r, unsigned status, const char *ctype,
                    const void *body, size_t len, void (*body_free)(void *),
                    void *arg);
/* A JSON body (takes ownership of j; NULL: 500 out of memory). */
void http_send_json(struct http_req *r, unsigned status, json_t *j);
/* {"error": msg}. */
void http_send_error(struct http_req *r, unsigned status, const char *msg);
/* 405 with the Allow header. */
void http_send_405(struct http_req *r, const char *allow);
/* The error that a kvd status stands for (the table in docs/http.md,
 * "Errors"). `key_only`: the routes where KVD_ETOOBIG can only mean the
 * key (414 rather than 413). `detail`: the command layer's text, used
 * where the status alone does not say what was wrong (KVD_EINVAL, an
 * unexpected status); NULL for none. */
void http_send_status(struct http_req *r, int rc, int key_only,
                      const char *detail);
/* The same table without answering: the HTTP status, and the message
 * into msg (cap bytes). */
unsigned http_status_for(int rc, int key_only, const char *detail, char *msg,
                         size_t cap);
/* An empty body with `status`. */
void http_send_empty(struct http_req *r, unsigned status);
/* 500 out of memory. */
void http_send_oom(struct http_req *r);
/* Add "name: value" to the response (before or after http_send*);
 * left out when HTTP_RESP_HDRS_BYTES has no room for the line. */
void http_resp_header(struct http_req *r, const char *name, const char *value);
/* Release the response's body and clear it. */
void http_resp_release(struct http_resp *resp);

/* The reason phrase of a status ("Not Found"). */
const char *http_reason(unsigned status);
/* The IMF-fixdate of Unix second `t` ("Sun, 06 Nov 1994 08:49:37 GMT")
 * into out (at least 30 bytes). */
void http_date(int64_t t, char *out, size_t cap);
/* Write the status line and header section of r's response to dst (cap
 * bytes): Date, Content-Type, Content-Length, the extra lines, and
 * Connection when `close` or an HTTP/1.0 keep-alive needs saying so.
 * Returns the length it needs, like snprintf (write again with more room
 * when that is >= cap). */
size_t http_resp_head(const struct http_req *r, int close, const char *date,
                      char *dst, size_t cap);

/* --- http_route.c -------------------------------------------------------- */

/* A request head arrived (r->head, r->method, r->uri set): route,
 * authenticate, decode, then answer or set r->want_body. */
void http_route_head(struct http_req *r);
/* Take n body bytes of a request that wants its body. Returns 0, or -1
 * when the connection must be dropped (no memory, or a client streaming
 * far past the limit). */
int http_body_take(struct http_req *r, const char *p, size_t n);
/* The whole body arrived: execute and answer. */
void http_route_body(struct http_req *r);
/* Ready r for the next request on its connection; free big buffers. */
void http_req_reset(struct http_req *r);
/* Free everything r holds (the connection is closing). */
void http_req_release(struct http_req *r);

/*
 * Called by a route when its request has a body: check what the headers
 * already tell (Content-Length, Content-Type in strict mode) and get
 * ready to receive it. Answers (411, 413, 415, 400 with empty_msg) and
 * returns 1 when the request is refused, 0 when the body is to come.
 */
int http_body_expect(struct http_req *r, const char *ctype,
                     const char *empty_msg);

/* --- http_reply.c -------------------------------------------------------- */

extern const struct kvd_reply_ops http_reply_ops;

/* Forget the last reply (keeping a small arena for the next). */
void http_reply_reset(struct http_reply *rep);
/* Free everything. */
void http_reply_release(struct http_reply *rep);
/* Take the bytes of bulk node n when they have their own allocation
 * (caller frees them); NULL when they live in the arena (copy them). */
void *http_reply_take(struct http_reply *rep, const struct http_rnode *n);

/* --- http_cmd.c ---------------------------------------------------------- */

/* Whether the host's command layer has sessions (second edition). */
int http_cmd_available(const struct kvd_server *srv);
/*
 * Run one command (argv[0] is its name) on the connection's session,
 * opening the session first if needed. Returns the reply, valid until
 * the next call on r; NULL when out of memory or the reply could not be
 * recorded (answer 500: http_send_oom).
 */
const struct http_rnode *http_call(struct http_req *r, size_t argc,
                                   const char *const *argv, const size_t *argl);
/* Answer with what an error reply stands for (see http_send_status). */
void http_send_cmd_error(struct http_req *r, const struct http_rnode *e,
                         int key_only);
/* An error reply's kvd status (KVD_EINVAL when it gave none) and its
 * text without the "ERR " prefix. */
int http_cmd_error_of(const struct http_rnode *e, const char **text);
/* Whether reply n is of type t1 or t2; if not, it was answered (an
 * error by its status, NULL as 500 out of memory, anything else 500) and
 * 0 is returned. `key_only` as for http_send_status. */
int http_expect(struct http_req *r, const struct http_rnode *n, int key_only,
                int t1, int t2);
/* Run a command without arguments whose reply does not matter (UNWATCH,
 * DISCARD). */
void http_call0(struct http_req *r, const char *cmd);
/* Answer 500 for a reply a route did not expect. */
void http_send_unexpected(struct http_req *r, const struct http_rnode *n);
/* Close the session and free the reply (the connection is closing). */
void http_cmd_release(struct http_req *r);

/* --- http_kv.c ----------------------------------------------------------- */

/* --- http_cond.c --------------------------------------------------------- */

/* 412 with `why`, and the current value's tag when there is one. */
void http_send_412(struct http_req *r, const char *why, const char *etag);
/* A PUT's success: 201 or 204 with the tag of the value stored. */
void http_put_answer(struct http_req *r, unsigned status);
/* PUT /kv/{key} with If-Match or If-None-Match (and ?nx/?xx, ?ttl=). */
void http_put_conditional(struct http_req *r, const struct http_arg *ttl,
                          int nx, int xx);
/* DELETE /kv/{key} with If-Match or If-None-Match. */
void http_del_conditional(struct http_req *r);

/* --- http_txn.c ---------------------------------------------------------- */

/* POST /txn, once the body is in: run the operations, all or nothing. */
void http_txn_body(struct http_req *r);

/* Bytes from JSON: a string, or {"base64": "..."}. Returns the length
 * and sets *p (into v, or into *owned, which the caller frees), or -1
 * when v has neither form. */
long http_json_to_bytes(json_t *v, const char **p, char **owned);

/* The /kv routes (r->route is HTTP_ROUTE_KEY or _COLLECTION), from the
 * head: answers, or asks for the body (http_body_expect). r->key and
 * r->args are decoded already. */
void http_kv_head(struct http_req *r);
/* The body of a PUT or POST under /kv arrived: execute and answer. */
void http_kv_body(struct http_req *r);

/* The ready check writes go through; 1 ready, 0 not (why filled). */
int http_ready(struct http_fe *fe, char *why, size_t why_len, int fresh);

/* --- http_ops.c ---------------------------------------------------------- */

void http_healthz(struct http_req *r);
void http_readyz(struct http_req *r);
void http_metrics(struct http_req *r);

/* Count a finished request: command, status and latency. */
void http_count(struct http_fe *fe, int cmd, unsigned status,
                int64_t elapsed_ns);

/* --- http_peer.c --------------------------------------------------------- */

/* A client address as counted: IPv4, or the /64 of an IPv6 address
 * (one host usually owns a whole /64); v4-mapped IPv6 counts as IPv4. */
struct http_peer_key {
    uint8_t family; /* AF_INET or AF_INET6; 0 for other sockets */
    uint8_t addr[8];
};

void http_peer_key_of(const void *sockaddr, struct http_peer_key *k);
/* A table for `limit` connections per address; NULL on no memory. */
struct http_peers *http_peers_create(unsigned limit, size_t expected);
void http_peers_destroy(struct http_peers *p);
/* Take a slot for k: 1 taken, 0 the address is at its limit, -1 no
 * memory. Thread-safe (one mutex, held for a lookup). */
int http_peers_acquire(struct http_peers *p, const struct http_peer_key *k);
/* Give back a slot taken by http_peers_acquire. */
void http_peers_release(struct http_peers *p, const struct http_peer_key *k);

/* --- http_net.c ---------------------------------------------------------- */

/* Start the workers on fe->listen_fd. Fills err on failure (no worker
 * left running). */
int http_net_start(struct http_fe *fe, struct kvd_err *err);
/* Stop accepting; close idle connections; answer the rest with
 * Connection: close. Any thread, idempotent. */
void http_net_stop(struct http_fe *fe);
/* Wait up to drain_timeout for the connections to finish, then close
 * the rest and join the workers. */
void http_net_join(struct http_fe *fe);
/* Open connections (slot holders), for /metrics. */
long http_net_connections(const struct http_fe *fe);

/* --- http_proc.c --------------------------------------------------------- */

/* The process_* metrics of the Prometheus client conventions, read from
 * /proc/self. A field that could not be read is negative. */
struct http_proc {
    double cpu_seconds;    /* user + system CPU time */
    double start_time;     /* seconds since the epoch */
    double resident_bytes; /* resident set size */
    double virtual_bytes;  /* virtual memory size */
    double open_fds;       /* entries of /proc/self/fd */
    double max_fds;        /* RLIMIT_NOFILE, soft limit */
};

void http_proc_read(struct http_proc *p);

#endif /* KVD_HTTP_H */
