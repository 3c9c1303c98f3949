/*
 * frontends/http/http_net.c -- workers, connections, admission and
 * deadlines of the http frontend.
 *
 * Threads: http_net_start() runs one worker per configured thread, each
 * an epoll loop (level-triggered) of its own. Every worker has the shared
 * listening socket in its epoll set with EPOLLEXCLUSIVE, so the kernel
 * wakes one idle worker per incoming connection, and that worker serves
 * the connection for its whole life. Cross-thread state: fe's atomics,
 * the per-address table (its own mutex), and each worker's eventfd, which
 * stop() writes to wake it.
 *
 * Admission: a connection is accepted at once, always, and then either
 * takes a slot (max_connections in all, max_connections_per_ip per
 * client address) or is refused on the spot with a complete response
 * (503, or 429 for the per-address limit, Connection: close), so an
 * excess client learns why within a round trip instead of waiting in the
 * kernel's backlog.
 *
 * A connection's life, all on its worker:
 *   IDLE  -> the first byte of a request -> HEAD: the head is collected
 *   (in the worker's read buffer, or in the connection's own buffer when
 *   it arrives in pieces) up to max_header_bytes, then parsed
 *   (http_parse.c) and routed (http_route.c). A route answers at once, or
 *   asks for the body -> BODY: Content-Length or chunked bytes go to the
 *   request until the body ends; the route then answers. Answers are
 *   encoded into the connection's output (large bodies are sent from
 *   their own memory, not copied) and written when the bytes read so far
 *   are processed; pipelined requests are served in order, and reading
 *   stops while output is blocked, so a client that does not read cannot
 *   make the server buffer without bound.
 *   A response that closes the connection (an error that leaves the
 *   framing unknown, Connection: close, HTTP/1.0, stopping) gives up the
 *   slot and LINGERs: the server shuts down its sending side and reads
 *   and drops what the client still sends for a short time, so the
 *   client's unread bytes do not turn into a reset that destroys the
 *   answer before the client read it.
 *
 * Deadlines (swept every HTTP_TICK_MS): a head must be complete within
 * header_timeout of its first byte (of the accept, for a connection's
 * first request) however slowly its bytes trickle in: an absolute
 * deadline, where an idle timeout would let a client that sends a byte
 * now and then hold the connection for ever. A body, a kept-alive
 * connection between requests and a blocked write each may stay idle
 * for `timeout`. A head or body cut by its deadline gets 408.
 *
 * Stop: workers drop the listening socket, close connections that have
 * no request in progress, and answer the rest with Connection: close;
 * a worker exits when its last connection is gone, or when
 * http_net_join's drain timeout passes.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* One recv(2): the worker's read buffer. */
#define HTTP_READ_BYTES (64 * 1024)
#define HTTP_EVENTS     256
/* Connections accepted per wake-up, so a flood cannot starve the
 * connections already served. */
#define HTTP_ACCEPT_PER_WAKE 64
/* The deadline sweep's period: deadlines are kept to within this. */
#define HTTP_TICK_MS 100
/* Closing gracefully: how long, and how many bytes, the client's late
 * bytes are read and dropped; and how many connections may linger at
 * once, as a multiple of max_connections (beyond it they close at once). */
#define HTTP_LINGER_MS    2000
#define HTTP_LINGER_BYTES (1024 * 1024)
#define HTTP_LINGER_CONNS 4
/* Out of file descriptors: how long a worker stops accepting. */
#define HTTP_ACCEPT_PAUSE_MS 100
/* Response bodies up to this size are copied behind their header; larger
 * ones are sent from their own memory. */
#define HTTP_COPY_BODY_BYTES (16 * 1024)
/* An output buffer up to this size is kept between responses. */
#define HTTP_OUT_KEEP_BYTES (16 * 1024)
/* A limit reached is logged at most this often. */
#define HTTP_LIMIT_LOG_MS 10000
/* How often http_net_join looks whether the workers are done. */
#define HTTP_DRAIN_POLL_MS 5

enum conn_state {
    CONN_IDLE = 0, /* between requests, before the first byte of one */
    CONN_HEAD,     /* receiving a request head */
    CONN_BODY,     /* receiving the body of a request whose route wants it */
    CONN_LINGER,   /* answered and closing: dropping the client's bytes */
};

enum conn_flag {
    CONN_CLOSE_AFTER = 1u << 0, /* close once the output is written */
    CONN_WANT_IN = 1u << 1,     /* registered for reading */
    CONN_WANT_OUT = 1u << 2,    /* registered for writing: output blocked */
    CONN_SLOT = 1u << 3,        /* holds a connection slot (and address) */
    CONN_INFLIGHT = 1u << 4,    /* its request counts in fe->inflight */
    CONN_LINGERING = 1u << 5,   /* counts in fe->nlinger */
    CONN_REQ_CLOSE = 1u << 6,   /* the request asked to close after it */
};

struct http_conn {
    struct http_conn *prev; /* the worker's list */
    struct http_conn *next;
    struct http_worker *w;
    int fd;
    int state; /* enum conn_state */
    unsigned flags;
    unsigned requests;   /* answered on this connection */
    int64_t deadline_ms; /* the sweep acts then; what it means: state */
    struct http_peer_key peer;
    char peer_str[48]; /* the client's address, for the access log */

    /* Received and not consumed: a head arriving in pieces, or requests
     * waiting for blocked output to drain. */
    char *in;
    size_t in_len;
    size_t in_cap;
    size_t scanned; /* http_head_end's progress through the current head */

    /* Output not written yet: out[out_off, out_len), then a large body
     * sent from its own memory. */
    char *out;
    size_t out_len;
    size_t out_off;
    size_t out_cap;
    const char *big;
    size_t big_len;
    size_t big_off;
    void (*big_free)(void *);
    void *big_arg;

    /* The framing of the request body being received. */
    uint64_t body_left; /* Content-Length bytes still to come */
    int body_kind;      /* enum http_body_kind */
    struct http_chunked chunk;
    uint64_t dropped; /* bytes dropped while lingering */

    struct http_req req;
};

struct http_worker {
    struct http_fe *fe;
    pthread_t thread;
    int ep;
    int evfd;
    int listening;            /* the listening socket is in ep */
    int stop_seen;            /* acted on fe->stopping */
    int64_t accept_resume_ms; /* paused after EMFILE until then; 0: not */
    struct http_conn *conns;
    char *rbuf;            /* HTTP_READ_BYTES */
    struct http_head head; /* the head being routed */
    int64_t now_ms;        /* monotonic, taken once per wake-up */
    int64_t next_sweep_ms;
    int64_t date_s; /* the second `date` was made for */
    char date[40];
};

/* epoll tags of the two non-connection descriptors. */
static char tag_listen;
static char tag_wake;

static int conn_run(struct http_conn *c, char *buf, size_t len);

/* Take a place among the connections closing gracefully; 0 when there
 * are too many already (the caller closes at once). */
static int
linger_take(struct http_fe *fe)
{
    if (atomic_fetch_add(&fe->nlinger, 1) >=
        HTTP_LINGER_CONNS * fe->opts->max_connections) {
        atomic_fetch_sub(&fe->nlinger, 1);
        return 0;
    }
    return 1;
}

/* ---- time ---------------------------------------------------------------- */

static int64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
after_ms(const struct http_worker *w, int64_t ms)
{
    return ms > 0 ? w->now_ms + ms : INT64_MAX;
}

static const char *
worker_date(struct http_worker *w)
{
    int64_t t = (int64_t)time(NULL);

    if (t != w->date_s) {
        http_date(t, w->date, sizeof(w->date));
        w->date_s = t;
    }
    return w->date;
}

/* ---- connection bookkeeping ---------------------------------------------- */

static int
conn_events(struct http_conn *c, unsigned want)
{
    struct epoll_event ev;

    want &= CONN_WANT_IN | CONN_WANT_OUT;
    if ((c->flags & (CONN_WANT_IN | CONN_WANT_OUT)) == want) {
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = (want & CONN_WANT_IN ? EPOLLIN : 0) |
                (want & CONN_WANT_OUT ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        return -1;
    }
    c->flags = (c->flags & ~(unsigned)(CONN_WANT_IN | CONN_WANT_OUT)) | want;
    return 0;
}

/* Give back the connection slot (and the address's). */
static void
conn_release_slot(struct http_conn *c)
{
    struct http_fe *fe = c->w->fe;

    if (c->flags & CONN_SLOT) {
        atomic_fetch_sub(&fe->nconns, 1);
        if (fe->peers != NULL && c->peer.family != 0) {
            http_peers_release(fe->peers, &c->peer);
        }
        c->flags &= ~(unsigned)CONN_SLOT;
    }
}

static void
conn_drop_output(struct http_conn *c)
{
    if (c->big_free != NULL) {
        c->big_free(c->big_arg);
    }
    c->big = NULL;
    c->big_len = c->big_off = 0;
    c->big_free = NULL;
    c->big_arg = NULL;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = c->out_cap = 0;
}

static void
conn_close(struct http_conn *c)
{
    struct http_worker *w = c->w;
    struct http_fe *fe = w->fe;

    close(c->fd); /* also leaves the epoll set */
    conn_release_slot(c);
    if (c->flags & CONN_INFLIGHT) {
        atomic_fetch_sub(&fe->inflight, 1);
    }
    if (c->flags & CONN_LINGERING) {
        atomic_fetch_sub(&fe->nlinger, 1);
    }
    http_req_release(&c->req);
    conn_drop_output(c);
    free(c->in);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    free(c);
}

static struct http_conn *
conn_create(struct http_worker *w, int fd, unsigned flags)
{
    struct http_conn *c = calloc(1, sizeof(*c));
    struct epoll_event ev;

    if (c == NULL) {
        return NULL;
    }
    c->w = w;
    c->fd = fd;
    c->flags = flags | CONN_WANT_IN;
    c->req.fe = w->fe;
    c->req.cmd = HTTP_CMD_OTHER;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(c);
        return NULL;
    }
    c->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = c;
    }
    w->conns = c;
    return c;
}

/*
 * Close gracefully: the answer is written; give up the slot, shut down
 * the sending side and read what the client still sends for
 * HTTP_LINGER_MS (see the file comment). Closes at once when the client
 * is done already or too many connections linger.
 */
static void
conn_linger(struct http_conn *c)
{
    struct http_fe *fe = c->w->fe;

    conn_release_slot(c);
    /* Stopping: nobody waits for late bytes. */
    if (c->w->stop_seen) {
        conn_close(c);
        return;
    }
    if (!linger_take(fe)) {
        conn_close(c);
        return;
    }
    c->flags |= CONN_LINGERING;
    if (shutdown(c->fd, SHUT_WR) != 0 || conn_events(c, CONN_WANT_IN) != 0) {
        conn_close(c);
        return;
    }
    c->state = CONN_LINGER;
    c->deadline_ms = c->w->now_ms + HTTP_LINGER_MS;
    http_req_release(&c->req);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

static void
conn_linger_read(struct http_conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->w->rbuf, HTTP_READ_BYTES, 0);
        if (n > 0) {
            c->dropped += (uint64_t)n;
            if (c->dropped > HTTP_LINGER_BYTES) {
                break;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        break; /* the client closed, or an error */
    }
    conn_close(c);
}

/* ---- output -------------------------------------------------------------- */

static int
out_reserve(struct http_conn *c, size_t more)
{
    size_t need = c->out_len + more, cap;
    char *p;

    if (need <= c->out_cap) {
        return 0;
    }
    cap = c->out_cap > 0 ? c->out_cap : 4096;
    while (cap < need) {
        cap *= 2;
    }
    p = realloc(c->out, cap);
    if (p == NULL) {
        return -1;
    }
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static int
out_append(struct http_conn *c, const void *p, size_t n)
{
    if (out_reserve(c, n) != 0) {
        return -1;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

static int
output_pending(const struct http_conn *c)
{
    return c->out_off < c->out_len || c->big != NULL;
}

/*
 * Encode r's response behind the output already queued; the response's
 * body moves to the connection (copied, or kept as `big` and sent from
 * its own memory). Returns -1 on no memory (the connection must close).
 */
static int
queue_response(struct http_conn *c, struct http_req *r, int close)
{
    struct http_resp *resp = &r->resp;
    const char *date = worker_date(c->w);
    int body = !r->is_head && r->status >= 200 && r->status != 204 &&
               r->status != 304 && resp->body_len > 0;
    size_t room, n;
    int rc = 0;

    if (out_reserve(c, 256 + resp->hdrs_len) != 0) {
        http_resp_release(resp);
        return -1;
    }
    room = c->out_cap - c->out_len;
    n = http_resp_head(r, close, date, c->out + c->out_len, room);
    if (n >= room) {
        if (out_reserve(c, n + 1) != 0) {
            http_resp_release(resp);
            return -1;
        }
        http_resp_head(r, close, date, c->out + c->out_len, n + 1);
    }
    c->out_len += n;
    if (body && resp->body_len > HTTP_COPY_BODY_BYTES && c->big == NULL) {
        c->big = resp->body;
        c->big_len = resp->body_len;
        c->big_off = 0;
        c->big_free = resp->body_free;
        c->big_arg = resp->body_arg;
        resp->body_free = NULL;
        resp->body = NULL;
        resp->body_len = 0;
        return 0;
    }
    if (body) {
        rc = out_append(c, resp->body, resp->body_len);
    }
    http_resp_release(resp);
    return rc;
}

/* Write what is queued. Returns 0 when all of it went out, 1 when the
 * socket is full (the rest stays), -1 on an error. */
static int
conn_flush(struct http_conn *c)
{
    while (output_pending(c)) {
        struct iovec iov[2];
        struct msghdr msg;
        int cnt = 0;
        ssize_t n;

        if (c->out_off < c->out_len) {
            iov[cnt].iov_base = c->out + c->out_off;
            iov[cnt++].iov_len = c->out_len - c->out_off;
        }
        if (c->big != NULL) {
            iov[cnt].iov_base = (void *)(c->big + c->big_off);
            iov[cnt++].iov_len = c->big_len - c->big_off;
        }
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)cnt;
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? 1 : -1;
        }
        if (c->out_off < c->out_len) {
            size_t k = c->out_len - c->out_off;
            if ((size_t)n < k) {
                c->out_off += (size_t)n;
                continue;
            }
            c->out_off = c->out_len;
            n -= (ssize_t)k;
        }
        if (c->big != NULL) {
            c->big_off += (size_t)n;
            if (c->big_off == c->big_len) {
                if (c->big_free != NULL) {
                    c->big_free(c->big_arg);
                }
                c->big = NULL;
                c->big_free = NULL;
                c->big_arg = NULL;
                c->big_len = c->big_off = 0;
            }
        }
    }
    c->out_len = c->out_off = 0;
    if (c->out_cap > HTTP_OUT_KEEP_BYTES) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return 0;
}

/* ---- requests ------------------------------------------------------------ */

static void
access_log(struct http_conn *c, const struct http_req *r, int64_t elapsed_ns)
{
    r->fe->host->log(r->fe->host, KVD_LOG_DEBUG,
                     "http: %s \"%s %s\" %d %llu %.3f ms", c->peer_str,
                     r->method[0] ? r->method : "-",
                     r->uri != NULL && r->uri[0] ? r->uri : "-", r->status,
                     (unsigned long long)(r->is_head ? 0 : r->resp.body_len),
                     (double)elapsed_ns / 1e6);
}

/*
 * The request is answered: encode the answer, count it, and get ready
 * for the next one. Returns -1 when the connection must close at once.
 */
static int
finish_request(struct http_conn *c)
{
    struct http_req *r = &c->req;
    struct http_fe *fe = c->w->fe;
    int64_t elapsed = mono_ns() - r->t0_ns;
    int close = r->resp.close || (c->flags & CONN_REQ_CLOSE) ||
                atomic_load_explicit(&fe->stopping, memory_order_relaxed);
    int rc;

    if (r->status == 0) {
        /* A route that neither answered nor asked for the body. */
        http_send_error(r, 500, "internal error: no answer");
    }
    http_count(fe, r->cmd, (unsigned)r->status, elapsed);
    if (fe->host->log_enabled(fe->host, KVD_LOG_DEBUG)) {
        access_log(c, r, elapsed);
    }
    rc = queue_response(c, r, close);
    if (c->flags & CONN_INFLIGHT) {
        atomic_fetch_sub(&fe->inflight, 1);
        c->flags &= ~(unsigned)CONN_INFLIGHT;
    }
    c->requests++;
    http_req_reset(r);
    r->method[0] = '\0';
    if (r->uri != NULL) {
        r->uri[0] = '\0';
    }
    c->state = CONN_IDLE;
    c->deadline_ms = after_ms(c->w, fe->opts->timeout_ms);
    if (close) {
        c->flags |= CONN_CLOSE_AFTER;
    }
    return rc;
}

/* Answer a request the server refuses before (or instead of) routing:
 * a malformed or oversized head, a deadline. The connection closes
 * after the answer: where the next request would start is unknown. */
static int
answer_and_close(struct http_conn *c, unsigned status, const char *msg)
{
    struct http_req *r = &c->req;

    if (!(c->flags & CONN_INFLIGHT)) {
        r->t0_ns = mono_ns();
    }
    r->want_body = 0;
    http_send_error(r, status, msg);
    r->resp.close = 1;
    return finish_request(c);
}

static int
copy_target(struct http_req *r, const struct http_head *h)
{
    if (h->target_len + 1 > r->uri_cap) {
        char *p = realloc(r->uri, h->target_len + 1);
        if (p == NULL) {
            return -1;
        }
        r->uri = p;
        r->uri_cap = h->target_len + 1;
    }
    memcpy(r->uri, h->target, h->target_len + 1);
    r->uri_len = h->target_len;
    return 0;
}

/*
 * A head is complete and parsed: route it. `more` says whether bytes
 * follow the head in what was received (then no 100 Continue is due).
 * Returns -1 when the connection must close at once.
 */
static int
start_request(struct http_conn *c, const struct http_head *h, int more)
{
    struct http_fe *fe = c->w->fe;
    struct http_req *r = &c->req;
    size_t n;

    r->t0_ns = mono_ns();
    atomic_fetch_add(&fe->inflight, 1);
    c->flags |= CONN_INFLIGHT;
    c->flags &= ~(unsigned)CONN_REQ_CLOSE;
    if ((h->flags & HTTP_HEAD_CLOSE) ||
        (h->minor == 0 && !(h->flags & HTTP_HEAD_KEEP_ALIVE))) {
        c->flags |= CONN_REQ_CLOSE;
    }
    n = h->method_len < sizeof(r->method) ? h->method_len
                                          : sizeof(r->method) - 1;
    memcpy(r->method, h->method, n);
    r->method[n] = '\0';
    if (copy_target(r, h) != 0) {
        http_send_oom(r);
        r->resp.close = 1;
        return finish_request(c);
    }
    r->minor = h->minor;
    r->is_head = strcmp(h->method, "HEAD") == 0;
    r->head = h;
    c->body_kind = h->body;
    c->body_left = h->content_length;
    if (h->body == HTTP_BODY_CHUNKED) {
        http_chunked_init(&c->chunk);
    }
    http_route_head(r);
    r->head = NULL;
    if (r->status != 0 || !r->want_body) {
        /* Answered from the head. A body the route did not read is
         * still on its way: the connection cannot be reused. */
        if (h->body == HTTP_BODY_CHUNKED ||
            (h->body == HTTP_BODY_LENGTH && h->content_length > 0)) {
            r->resp.close = 1;
        }
        return finish_request(c);
    }
    if ((h->flags & HTTP_HEAD_CONTINUE) && !more) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (out_append(c, cont, sizeof(cont) - 1) != 0) {
            return -1;
        }
    }
    c->state = CONN_BODY;
    c->deadline_ms = after_ms(c->w, fe->opts->timeout_ms);
    return 0;
}

/*
 * Bytes of a head: find its end, parse and route it. Sets *used to the
 * bytes consumed; returns 0, 1 when the head is not complete yet (all of
 * p stays), or -1 when the connection must close at once.
 */
static int
on_head(struct http_conn *c, char *p, size_t n, size_t *used)
{
    size_t max = (size_t)c->w->fe->opts->max_header_bytes;
    size_t end = http_head_end(p, n, &c->scanned);
    struct http_head *h = &c->w->head;
    int rc;

    *used = 0;
    if (end == 0 && n < max) {
        return 1;
    }
    if (end == 0 || end > max) {
        /* No room for the rest: the request line alone did not fit
         * (414), or the header fields did not (431). */
        int line_fits = memchr(p, '\n', n < max ? n : max) != NULL;
        *used = n;
        return line_fits ? answer_and_close(c, 431,
                                            "request header fields "
                                            "larger than "
                                            "max_header_bytes")
                         : answer_and_close(c, 414,
                                            "request line larger than "
                                            "max_header_bytes");
    }
    *used = end;
    c->scanned = 0;
    rc = http_parse_head(p, end, h);
    if (rc != 0) {
        return answer_and_close(c, (unsigned)rc, h->error);
    }
    return start_request(c, h, end < n);
}

/*
 * Body bytes: to the request (chunked ones decoded in place first).
 * Sets *used; returns 0, or -1 when the connection must close at once.
 */
static int
on_body(struct http_conn *c, char *p, size_t n, size_t *used)
{
    struct http_req *r = &c->req;
    int done;

    if (c->body_kind == HTTP_BODY_CHUNKED) {
        size_t out;
        int rc = http_chunked_decode(&c->chunk, p, n, used, &out);
        if (rc > 0) {
            return answer_and_close(c, 400, "malformed chunked body");
        }
        if (out > 0 && http_body_take(r, p, out) != 0) {
            return -1;
        }
        done = rc == 0;
    } else {
        size_t k = n < c->body_left ? n : (size_t)c->body_left;
        if (http_body_take(r, p, k) != 0) {
            return -1;
        }
        c->body_left -= k;
        *used = k;
        done = c->body_left == 0;
    }
    c->deadline_ms = after_ms(c->w, c->w->fe->opts->timeout_ms);
    if (!done) {
        return 0;
    }
    http_route_body(r);
    return finish_request(c);
}

/*
 * Serve what buf[0, len) holds: requests, in order, until the bytes end,
 * the connection is to close, or a large body waits to be written.
 * Returns the bytes consumed, or -1 when the connection must close now.
 */
static long
conn_process(struct http_conn *c, char *buf, size_t len)
{
    size_t pos = 0, used;
    int rc;

    while (pos < len && !(c->flags & CONN_CLOSE_AFTER) && c->big == NULL) {
        switch (c->state) {
        case CONN_IDLE:
            /* Empty lines before a request line are ignored (RFC 9112
             * 2.2). */
            while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n')) {
                pos++;
            }
            if (pos < len) {
                c->state = CONN_HEAD;
                c->scanned = 0;
                /* The first request's deadline runs from the accept. */
                if (c->requests > 0) {
                    c->deadline_ms =
                        after_ms(c->w, c->w->fe->opts->header_timeout_ms);
                }
            }
            continue;
        case CONN_HEAD:
            rc = on_head(c, buf + pos, len - pos, &used);
            if (rc == 1) {
                return (long)pos;
            }
            break;
        default:
            rc = on_body(c, buf + pos, len - pos, &used);
            break;
        }
        if (rc < 0) {
            return -1;
        }
        pos += used;
    }
    if (c->flags & CONN_CLOSE_AFTER) {
        return (long)len; /* nothing after a closing answer is served */
    }
    return (long)pos;
}

/* Keep buf[used, len) for later: the head of a request arriving in
 * pieces, or requests behind blocked output. */
static int
keep_input(struct http_conn *c, char *buf, size_t len, size_t used)
{
    size_t rest = len - used;

    if (rest == 0) {
        /* Mostly a request arrives whole: no buffer of its own. */
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        return 0;
    }
    if (buf == c->in) {
        memmove(c->in, c->in + used, rest);
        c->in_len = rest;
        return 0;
    }
    if (rest > c->in_cap) {
        char *p = realloc(c->in, rest);
        if (p == NULL) {
            return -1;
        }
        c->in = p;
        c->in_cap = rest;
    }
    memcpy(c->in, buf + used, rest);
    c->in_len = rest;
    return 0;
}

/*
 * Process buf (the worker's read buffer, or c->in), write the answers,
 * and go on with kept input while the output drains. Returns -1 when the
 * connection is closed (c is gone), 0 otherwise.
 */
static int
conn_run(struct http_conn *c, char *buf, size_t len)
{
    for (;;) {
        long used = conn_process(c, buf, len);
        int rc;

        if (used < 0 || keep_input(c, buf, len, (size_t)used) != 0) {
            conn_close(c);
            return -1;
        }
        rc = conn_flush(c);
        if (rc < 0) {
            conn_close(c);
            return -1;
        }
        if (rc > 0) {
            /* Blocked: stop reading until the client reads. */
            c->deadline_ms = after_ms(c->w, c->w->fe->opts->timeout_ms);
            if (conn_events(c, CONN_WANT_OUT) != 0) {
                conn_close(c);
                return -1;
            }
            return 0;
        }
        if (c->flags & CONN_CLOSE_AFTER) {
            conn_linger(c);
            return -1;
        }
        /* Requests kept behind a large body: serve them now. */
        if (c->in_len > 0 && c->state != CONN_HEAD) {
            buf = c->in;
            len = c->in_len;
            continue;
        }
        if (conn_events(c, CONN_WANT_IN) != 0) {
            conn_close(c);
            return -1;
        }
        return 0;
    }
}

static void
conn_read(struct http_conn *c)
{
    struct http_worker *w = c->w;
    size_t max = (size_t)w->fe->opts->max_header_bytes;
    char *dst = w->rbuf;
    size_t room = HTTP_READ_BYTES;
    ssize_t n;

    if (c->in_len > 0) {
        /* A head arriving in pieces collects in c->in, which never
         * holds more than a read beyond max_header_bytes. */
        size_t want = c->in_len + HTTP_READ_BYTES;
        if (want > max + HTTP_READ_BYTES) {
            want = max + HTTP_READ_BYTES;
        }
        if (want > c->in_cap) {
            char *p = realloc(c->in, want);
            if (p == NULL) {
                conn_close(c);
                return;
            }
            c->in = p;
            c->in_cap = want;
        }
        dst = c->in + c->in_len;
        room = c->in_cap - c->in_len;
    }
    n = recv(c->fd, dst, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        /* The client closed (or reset): what it started is abandoned,
         * and nothing is owed to it. */
        conn_close(c);
        return;
    }
    if (dst == w->rbuf) {
        conn_run(c, w->rbuf, (size_t)n);
    } else {
        c->in_len += (size_t)n;
        conn_run(c, c->in, c->in_len);
    }
}

static void
conn_event(struct http_conn *c, uint32_t events)
{
    if (c->state == CONN_LINGER) {
        conn_linger_read(c);
        return;
    }
    if (c->flags & CONN_WANT_OUT) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            /* Drained: serve what was kept, then read again. */
            conn_run(c, c->in, c->in_len);
        }
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        conn_read(c);
    }
}

/* ---- admission ----------------------------------------------------------- */

static void
log_limit(struct http_worker *w, int why)
{
    struct http_fe *fe = w->fe;
    int64_t last = atomic_load(&fe->limit_logged[why]);

    if (last != 0 && w->now_ms - last < HTTP_LIMIT_LOG_MS) {
        return;
    }
    if (!atomic_compare_exchange_strong(&fe->limit_logged[why], &last,
                                        w->now_ms)) {
        return;
    }
    if (why == HTTP_REFUSED_TOTAL) {
        fe->host->log(fe->host, KVD_LOG_WARN,
                      "http: max_connections (%lld) reached; refusing "
                      "connections with 503",
                      (long long)fe->opts->max_connections);
    } else {
        fe->host->log(fe->host, KVD_LOG_WARN,
                      "http: a client address reached "
                      "max_connections_per_ip (%lld); refusing its "
                      "connections with 429",
                      (long long)fe->opts->max_connections_per_ip);
    }
}

/* Refuse a connection on the spot: a whole answer, then a graceful
 * close (it fits in an empty socket buffer, so one send does). */
static void
refuse(struct http_worker *w, int fd, int why)
{
    static const char total[] = "{\"error\":\"too many connections\"}\n";
    static const char per_ip[] =
        "{\"error\":\"too many connections from this address\"}\n";
    struct http_fe *fe = w->fe;
    const char *body = why == HTTP_REFUSED_TOTAL ? total : per_ip;
    unsigned status = why == HTTP_REFUSED_TOTAL ? 503 : 429;
    char buf[512];
    struct http_conn *c;
    int n;

    atomic_fetch_add(&fe->refused[why], 1);
    log_limit(w, why);
    n = snprintf(buf, sizeof(buf),
                 "HTTP/1.1 %u %s\r\nDate: %s\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\nRetry-After: "
                 "1\r\nConnection: close\r\n\r\n%s",
                 status, http_reason(status), worker_date(w), strlen(body),
                 body);
    if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return;
    }
    if (!linger_take(fe)) {
        close(fd);
        return;
    }
    if (shutdown(fd, SHUT_WR) != 0 ||
        (c = conn_create(w, fd, CONN_LINGERING)) == NULL) {
        atomic_fetch_sub(&fe->nlinger, 1);
        close(fd);
        return;
    }
    c->state = CONN_LINGER;
    c->deadline_ms = w->now_ms + HTTP_LINGER_MS;
}

static void
peer_string(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    const void *a = NULL;

    if (ss->ss_family == AF_INET) {
        a = &((const struct sockaddr_in *)ss)->sin_addr;
    } else if (ss->ss_family == AF_INET6) {
        a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    }
    if (a == NULL || inet_ntop(ss->ss_family, a, out, (socklen_t)cap) == NULL) {
        snprintf(out, cap, "?");
    }
}

/* A new connection: a slot, or a refusal. */
static void
admit(struct http_worker *w, int fd, const struct sockaddr_storage *ss)
{
    struct http_fe *fe = w->fe;
    struct http_peer_key key;
    struct http_conn *c;
    int one = 1, rc;

    http_peer_key_of(ss, &key);
    if (fe->peers != NULL && key.family != 0) {
        rc = http_peers_acquire(fe->peers, &key);
        if (rc <= 0) {
            if (rc == 0) {
                refuse(w, fd, HTTP_REFUSED_PER_IP);
            } else {
                close(fd);
            }
            return;
        }
    }
    if (atomic_fetch_add(&fe->nconns, 1) >= fe->opts->max_connections) {
        atomic_fetch_sub(&fe->nconns, 1);
        if (fe->peers != NULL && key.family != 0) {
            http_peers_release(fe->peers, &key);
        }
        refuse(w, fd, HTTP_REFUSED_TOTAL);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = conn_create(w, fd, CONN_SLOT);
    if (c == NULL) {
        atomic_fetch_sub(&fe->nconns, 1);
        if (fe->peers != NULL && key.family != 0) {
            http_peers_release(fe->peers, &key);
        }
        close(fd);
        return;
    }
    c->peer = key;
    c->req.fd = fd;
    peer_string(ss, c->peer_str, sizeof(c->peer_str));
    c->state = CONN_IDLE;
    c->deadline_ms = after_ms(w, fe->opts->header_timeout_ms);
}

static void
listen_pause(struct http_worker *w, int err)
{
    struct http_fe *fe = w->fe;

    if (w->listening) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, fe->listen_fd, NULL);
        w->listening = 0;
    }
    w->accept_resume_ms = w->now_ms + HTTP_ACCEPT_PAUSE_MS;
    fe->host->log(fe->host, KVD_LOG_WARN,
                  "http: accept: %s; not accepting for %d ms", strerror(err),
                  HTTP_ACCEPT_PAUSE_MS);
}

static int
listen_resume(struct http_worker *w)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.ptr = &tag_listen;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->fe->listen_fd, &ev) != 0) {
        return -1;
    }
    w->listening = 1;
    w->accept_resume_ms = 0;
    return 0;
}

static void
on_accept(struct http_worker *w)
{
    for (int i = 0; i < HTTP_ACCEPT_PER_WAKE; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(w->fe->listen_fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            admit(w, fd, &ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            /* Level-triggered: the pending connection would wake this
             * worker again at once. Pause instead of spinning. */
            listen_pause(w, errno);
        }
        return;
    }
}

/* ---- deadlines and stop -------------------------------------------------- */

/* A deadline passed: close, with a 408 to a request begun. */
static void
conn_timeout(struct http_conn *c)
{
    struct http_fe *fe = c->w->fe;
    int kind;

    if (c->state == CONN_LINGER) {
        conn_close(c);
        return;
    }
    if (c->flags & CONN_WANT_OUT) {
        kind = HTTP_TIMEOUT_WRITE;
    } else if (c->state == CONN_BODY) {
        kind = HTTP_TIMEOUT_BODY;
    } else if (c->state == CONN_HEAD || c->requests == 0) {
        kind = HTTP_TIMEOUT_HEADER;
    } else {
        kind = HTTP_TIMEOUT_IDLE;
    }
    atomic_fetch_add(&fe->timeouts[kind], 1);
    if (kind == HTTP_TIMEOUT_WRITE ||
        (c->state == CONN_IDLE && c->in_len == 0)) {
        conn_close(c);
        return;
    }
    /* A head or body that did not arrive in time. */
    c->in_len = 0;
    if (answer_and_close(c, 408,
                         kind == HTTP_TIMEOUT_HEADER
                             ? "request head not received within "
                               "header_timeout"
                             : "request body stalled for longer than "
                               "timeout") != 0) {
        conn_close(c);
        return;
    }
    conn_run(c, c->in, 0);
}

static void
sweep(struct http_worker *w)
{
    struct http_conn *c, *next;

    w->next_sweep_ms = w->now_ms + HTTP_TICK_MS;
    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (w->now_ms >= c->deadline_ms) {
            conn_timeout(c);
        }
    }
    if (!w->listening && w->accept_resume_ms != 0 &&
        w->now_ms >= w->accept_resume_ms && !w->stop_seen) {
        if (listen_resume(w) != 0) {
            w->accept_resume_ms = w->now_ms + HTTP_ACCEPT_PAUSE_MS;
        }
    }
}

/* fe->stopping was set: stop accepting, close what has no request in
 * progress; the rest finish with Connection: close. */
static void
worker_stop(struct http_worker *w)
{
    struct http_conn *c, *next;

    w->stop_seen = 1;
    if (w->listening) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, w->fe->listen_fd, NULL);
        w->listening = 0;
    }
    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == CONN_LINGER || c->state == CONN_HEAD ||
            (c->state == CONN_IDLE && !output_pending(c))) {
            conn_close(c);
        }
    }
}

static void *
worker_main(void *arg)
{
    struct http_worker *w = arg;
    struct http_fe *fe = w->fe;
    struct epoll_event ev[HTTP_EVENTS];

    for (;;) {
        int n = epoll_wait(w->ep, ev, HTTP_EVENTS, HTTP_TICK_MS);

        w->now_ms = mono_ns() / 1000000;
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &tag_listen) {
                if (!w->stop_seen) {
                    on_accept(w);
                }
            } else if (p == &tag_wake) {
                uint64_t v;
                (void)!read(w->evfd, &v, sizeof(v));
            } else {
                conn_event(p, ev[i].events);
            }
        }
        if (atomic_load(&fe->force_close)) {
            while (w->conns != NULL) {
                conn_close(w->conns);
            }
            break;
        }
        if (atomic_load(&fe->stopping) && !w->stop_seen) {
            worker_stop(w);
        }
        if (w->now_ms >= w->next_sweep_ms) {
            sweep(w);
        }
        if (w->stop_seen && w->conns == NULL) {
            break;
        }
    }
    atomic_fetch_sub(&fe->running, 1);
    return NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

static void
worker_free(struct http_worker *w)
{
    if (w->ep >= 0) {
        close(w->ep);
    }
    if (w->evfd >= 0) {
        close(w->evfd);
    }
    free(w->rbuf);
}

static int
worker_init(struct http_fe *fe, struct http_worker *w, struct kvd_err *err)
{
    struct epoll_event ev;

    w->fe = fe;
    w->evfd = -1;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0) {
        return kvd_err_set(err, KVD_EIO, "epoll_create1: %s", strerror(errno));
    }
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->evfd < 0) {
        return kvd_err_set(err, KVD_EIO, "eventfd: %s", strerror(errno));
    }
    w->rbuf = malloc(HTTP_READ_BYTES);
    if (w->rbuf == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = &tag_wake;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &ev) != 0 ||
        listen_resume(w) != 0) {
        return kvd_err_set(err, KVD_EIO, "epoll_ctl: %s", strerror(errno));
    }
    return 0;
}

static void
wake_all(struct http_fe *fe)
{
    uint64_t one = 1;

    for (unsigned i = 0; i < fe->nworkers; i++) {
        (void)!write(fe->workers[i].evfd, &one, sizeof(one));
    }
}

static void
join_all(struct http_fe *fe)
{
    for (unsigned i = 0; i < fe->nworkers; i++) {
        pthread_join(fe->workers[i].thread, NULL);
    }
}

static void
free_workers(struct http_fe *fe, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        worker_free(&fe->workers[i]);
    }
    free(fe->workers);
    fe->workers = NULL;
    fe->nworkers = 0;
}

int
http_net_start(struct http_fe *fe, struct kvd_err *err)
{
    unsigned n = fe->nthreads;
    int rc;

    fe->workers = calloc(n, sizeof(*fe->workers));
    if (fe->workers == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < n; i++) {
        fe->workers[i].ep = fe->workers[i].evfd = -1;
    }
    for (unsigned i = 0; i < n; i++) {
        rc = worker_init(fe, &fe->workers[i], err);
        if (rc != 0) {
            free_workers(fe, n);
            return rc;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        atomic_fetch_add(&fe->running, 1);
        rc = pthread_create(&fe->workers[i].thread, NULL, worker_main,
                            &fe->workers[i]);
        if (rc != 0) {
            atomic_fetch_sub(&fe->running, 1);
            atomic_store(&fe->force_close, 1);
            wake_all(fe);
            join_all(fe);
            free_workers(fe, n);
            return kvd_err_set(err, KVD_EIO, "pthread_create: %s",
                               strerror(rc));
        }
        fe->nworkers = i + 1;
    }
    return 0;
}

void
http_net_stop(struct http_fe *fe)
{
    wake_all(fe);
}

void
http_net_join(struct http_fe *fe)
{
    int64_t deadline =
        mono_ns() + fe->opts->drain_timeout_ms * INT64_C(1000000);

    if (fe->workers == NULL) {
        return;
    }
    wake_all(fe);
    while (atomic_load(&fe->running) > 0 && mono_ns() < deadline) {
        struct timespec ts = {0, HTTP_DRAIN_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&fe->running) > 0) {
        fe->host->log(fe->host, KVD_LOG_WARN,
                      "http: %ld request(s) still running after the drain "
                      "timeout; closing them",
                      atomic_load(&fe->inflight));
        atomic_store(&fe->force_close, 1);
        wake_all(fe);
    }
    join_all(fe);
    free_workers(fe, fe->nworkers);
}

long
http_net_connections(const struct http_fe *fe)
{
    return atomic_load(&((struct http_fe *)fe)->nconns);
}
