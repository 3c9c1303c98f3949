/*
 * frontends/resp/resp_net.c -- listeners, worker threads and connections.
 *
 * Threads: resp_net_start() spawns fe->nworkers threads, one libevent loop
 * each (bases created with EVENT_BASE_FLAG_NOLOCK: a base is only ever
 * touched by its own thread). Worker 0 also watches the listeners. The
 * only cross-thread paths are the hand-off queue of accepted fds
 * (w->lock) and the eventfd that wakes a worker for a hand-off or a stop.
 * fe->stopping and fe->nclients are atomics.
 *
 * A connection's life, all on its worker's thread:
 *   readable -> read into the worker's read buffer (or into c->q when a
 *   request is already part-received) -> parse every complete request and
 *   hand it to the command layer (cmd_api->call on the connection's
 *   session), replies into the worker's write buffer, or later when the
 *   command waits in the worker's pass -> the replies move to c->o and
 *   the connection joins the worker's pending list -> at the end of the
 *   loop pass the worker's pass runs (its replies go the same way), then
 *   one write(2) per pending connection -> whatever the socket did not
 *   take stays in c->o, the read event is dropped and the write event
 *   armed until c->o drains; then requests still queued in c->q run and
 *   reading resumes.
 * Why the writes wait for the end of the iteration: a client with many
 * connections (redis-benchmark, a pooled client library) then wakes once
 * for a whole round of replies instead of once per reply, which is what
 * keeps unpipelined throughput up when client and server share few CPUs.
 * A protocol error, QUIT or a half-close sets RESP_CONN_CLOSE_AFTER: the
 * replies still owed (written or waiting in the pass) are written, then
 * the connection closes. I/O errors and allocation failures set
 * RESP_CONN_BROKEN: it closes at once (commands it queued still run; the
 * command layer drops their replies).
 *
 * Graceful stop: worker 0 closes the listeners (and removes the socket
 * file it created); every worker stops reading, closes idle connections
 * and lets the others write their pending replies for up to
 * RESP_DRAIN_MS; a loop exits when its last connection is gone.
 */
#include "resp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define RESP_LISTEN_BACKLOG  511
#define RESP_ACCEPT_PER_WAKE 64

static void conn_on_read(evutil_socket_t fd, short what, void *arg);
static void conn_on_write(evutil_socket_t fd, short what, void *arg);
static void conn_run_queued(struct resp_conn *c);

/* ------------------------------------------------------------------ */
/* Time and logging                                                    */

static int64_t
worker_now_ms(struct resp_worker *w)
{
    struct timeval tv;

    /* The loop's cached time: no syscall per request. */
    if (event_base_gettimeofday_cached(w->base, &tv) != 0) {
        return 0;
    }
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

#define LOG(fe, level, ...) (fe)->host->log((fe)->host, (level), __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Listening                                                           */

/*
 * Bind a Unix socket at `path`. A socket file already there is probed
 * first: when a server answers on it, refuse (never steal a live
 * server's socket); when nobody does, it is a stale leftover of a dead
 * server and is replaced.
 */
static int
listen_unix(struct resp_fe *fe, const char *path, int mode, struct kvd_err *err)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd = -1;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "[frontend.resp] unix_socket = %s: path longer "
                           "than %zu bytes",
                           path, sizeof(sa.sun_path) - 1);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);

    if (lstat(path, &st) == 0) {
        int probe;
        if (!S_ISSOCK(st.st_mode)) {
            return kvd_err_set(err, KVD_EEXIST,
                               "unix socket %s: file exists and is not a "
                               "socket",
                               path);
        }
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (probe < 0) {
            return kvd_err_set(err, -errno, "socket: %s", strerror(errno));
        }
        if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
            errno == EAGAIN || errno == EINPROGRESS) {
            close(probe);
            return kvd_err_set(err, KVD_EBUSY,
                               "unix socket %s is in use by a running "
                               "server (stop it or choose another "
                               "unix_socket)",
                               path);
        }
        close(probe);
        if (unlink(path) != 0 && errno != ENOENT) {
            return kvd_err_set(err, -errno, "remove stale unix socket %s: %s",
                               path, strerror(errno));
        }
        LOG(fe, KVD_LOG_INFO, "resp: replaced stale unix socket %s", path);
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return kvd_err_set(err, -errno, "socket: %s", strerror(errno));
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        return kvd_err_set(err, -e, "bind unix socket %s: %s", path,
                           strerror(e));
    }
    /* Set the mode before listen(): until then a connect is refused, so
     * nobody gets in through the umask's wider mode meanwhile. */
    if (chmod(path, (mode_t)mode) != 0 || stat(path, &st) != 0 ||
        listen(fd, RESP_LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return kvd_err_set(err, -e, "listen on unix socket %s: %s", path,
                           strerror(e));
    }
    fe->unix_path = strdup(path);
    if (fe->unix_path == NULL) {
        close(fd);
        unlink(path);
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    fe->unix_dev = st.st_dev;
    fe->unix_ino = st.st_ino;
    fe->unix_l.fd = fd;
    fe->unix_l.is_tcp = 0;
    return 0;
}

/*
 * "host:port", "[v6]:port", ":port" or "port"; without a host, loopback
 * only (a TCP listener is opened to the world only on purpose).
 */
static int
split_hostport(const char *spec, char *host, size_t hostlen, char *port,
               size_t portlen)
{
    const char *colon;
    size_t hl;

    if (spec[0] == '[') {
        const char *close_br = strchr(spec, ']');
        if (close_br == NULL || close_br[1] != ':') {
            return -1;
        }
        hl = (size_t)(close_br - spec - 1);
        colon = close_br + 1;
        if (hl >= hostlen) {
            return -1;
        }
        memcpy(host, spec + 1, hl);
        host[hl] = '\0';
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL) {
            colon = spec - 1; /* port only */
            hl = 0;
        } else {
            hl = (size_t)(colon - spec);
        }
        if (hl >= hostlen) {
            return -1;
        }
        memcpy(host, spec, hl);
        host[hl] = '\0';
    }
    if (host[0] == '\0') {
        snprintf(host, hostlen, "127.0.0.1");
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        return -1;
    }
    snprintf(port, portlen, "%s", colon + 1);
    return 0;
}

/* The bound port (the kernel's choice for port 0) goes into the log line
 * and to the command layer, so INFO tcp_port is right on every
 * connection. */
static void
announce_port(struct resp_fe *fe, int fd, const char *host, const char *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int bound = atoi(port);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    snprintf(fe->tcp_desc, sizeof(fe->tcp_desc), "%s:%d", host, bound);
    if (fe->srv != NULL && RESP_API_HAS(fe->srv->cmd_api, listening)) {
        fe->srv->cmd_api->listening(fe->srv->cmd, "resp", bound);
    }
}

static int
listen_tcp(struct resp_fe *fe, const char *spec, struct kvd_err *err)
{
    char host[64], port[8];
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, rc, e = 0;

    if (split_hostport(spec, host, sizeof(host), port, sizeof(port)) != 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "[frontend.resp] tcp = %s: expected host:port, "
                           ":port or port",
                           spec);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        return kvd_err_set(err, KVD_ECONFIG, "[frontend.resp] tcp = %s: %s",
                           spec, gai_strerror(rc));
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, RESP_LISTEN_BACKLOG) == 0) {
            break;
        }
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return kvd_err_set(err, -e, "listen on tcp %s: %s", spec, strerror(e));
    }
    fe->tcp_l.fd = fd;
    fe->tcp_l.is_tcp = 1;
    announce_port(fe, fd, host, port);
    return 0;
}

/* Unlinks the socket file. The path itself stays until resp_net_destroy:
 * the other workers read it (CLIENT LIST addresses of connections being
 * accepted) until they are joined. */
static void
unix_socket_remove(struct resp_fe *fe)
{
    struct stat st;

    if (fe->unix_path == NULL) {
        return;
    }
    /* Only the file we bound: a newer server may own the path by now. */
    if (stat(fe->unix_path, &st) == 0 && st.st_dev == fe->unix_dev &&
        st.st_ino == fe->unix_ino) {
        unlink(fe->unix_path);
    }
}

int
resp_net_listen(struct resp_fe *fe, struct kvd_err *err)
{
    const struct resp_opts *o = fe->opts;
    int rc;

    fe->unix_l.fe = fe;
    fe->unix_l.fd = -1;
    fe->tcp_l.fe = fe;
    fe->tcp_l.fd = -1;
    if (o->unix_socket != NULL && o->unix_socket[0] != '\0') {
        rc = listen_unix(fe, o->unix_socket, o->unix_socket_mode, err);
        if (rc != 0) {
            return rc;
        }
    }
    if (o->tcp != NULL && o->tcp[0] != '\0') {
        rc = listen_tcp(fe, o->tcp, err);
        if (rc != 0) {
            return rc;
        }
    }
    if (fe->unix_l.fd < 0 && fe->tcp_l.fd < 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "[frontend.resp] neither unix_socket nor tcp is "
                           "set: nothing to listen on");
    }
    return 0;
}

static void
listeners_close(struct resp_fe *fe, int events_added)
{
    struct resp_listener *ls[2] = {&fe->unix_l, &fe->tcp_l};

    for (int i = 0; i < 2; i++) {
        if (ls[i]->fd >= 0) {
            if (events_added) {
                event_del(&ls[i]->ev);
            }
            close(ls[i]->fd);
            ls[i]->fd = -1;
        }
    }
    unix_socket_remove(fe);
}

/* ------------------------------------------------------------------ */
/* Connections                                                         */

/* Leave the worker's loop at the end of this iteration. A flag, not only
 * event_base_loopbreak: a break asked for between two iterations (from the
 * pending-write flush) would be forgotten by the next one. */
static void
worker_exit(struct resp_worker *w)
{
    w->exiting = 1;
    event_base_loopbreak(w->base);
}

/* The pass ran: no connection has commands waiting in it any more. */
static void
worker_pass_ran(struct resp_worker *w)
{
    for (size_t i = 0; i < w->nqconns; i++) {
        w->qconns[i]->nqueued = 0;
    }
    w->nqconns = 0;
}

/*
 * Bookkeeping after cmd_api->call for c returned rc: a call may run the
 * pass (another command of c that cannot wait, or a full pass), which
 * shows as fewer commands pending than before; then every connection's
 * count is back to 0. A pending reply counts for c.
 */
static void
worker_after_call(struct resp_worker *w, struct resp_conn *c, int rc)
{
    int pending = rc > 0 && (rc & KVD_EXEC_PENDING);
    size_t now;

    if (w->pass == NULL) {
        return;
    }
    now = w->fe->srv->cmd_api->pass_pending(w->pass);
    if (now < w->queued + (pending ? 1 : 0)) {
        worker_pass_ran(w);
    }
    w->queued = now;
    if (!pending) {
        return;
    }
    if (c->nqueued == 0) {
        if (w->nqconns == w->qconns_cap) {
            size_t cap = w->qconns_cap ? w->qconns_cap * 2 : 64;
            struct resp_conn **q = realloc(w->qconns, cap * sizeof(*q));
            if (q == NULL) {
                /* Cannot track it: run the pass now instead. */
                w->fe->srv->cmd_api->pass_end(w->pass);
                worker_pass_ran(w);
                w->queued = 0;
                return;
            }
            w->qconns = q;
            w->qconns_cap = cap;
        }
        c->qslot = w->nqconns;
        w->qconns[w->nqconns++] = c;
    }
    c->nqueued++;
}

/* Run the pass: every reply it owes is written (into the connections'
 * output), in queue order. */
static void
worker_pass_end(struct resp_worker *w)
{
    if (w->pass == NULL || w->queued == 0) {
        return;
    }
    w->fe->srv->cmd_api->pass_end(w->pass);
    worker_pass_ran(w);
    w->queued = 0;
}

static void
conn_free(struct resp_conn *c)
{
    struct resp_worker *w = c->w;
    const struct kvd_cmd_api *api = w->fe->srv->cmd_api;

    if (c->flags & RESP_CONN_READING) {
        event_del(&c->rev);
    }
    if (c->flags & RESP_CONN_WRITING) {
        event_del(&c->wev);
    }
    close(c->fd);
    if (c->nqueued > 0) {
        /* Its queued commands still run; the command layer drops their
         * replies (session_destroy). */
        struct resp_conn *last = w->qconns[--w->nqconns];
        w->qconns[c->qslot] = last;
        last->qslot = c->qslot;
        c->nqueued = 0;
    }
    if (w->out == c) {
        w->wbuf.len = 0; /* its replies go nowhere */
        w->out = NULL;
    }
    if (c->sess != NULL) {
        api->session_destroy(c->sess);
    }
    resp_parser_release(&c->parser);
    resp_buf_free(&c->q);
    resp_buf_free(&c->o);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (c->flags & RESP_CONN_PENDING) {
        resp_conn_unpend(c);
    }
    w->nconns--;
    atomic_fetch_sub(&w->fe->nclients, 1);
    free(c);
    if (w->stop_seen && w->nconns == 0) {
        worker_exit(w);
    }
}

static void
conn_set_reading(struct resp_conn *c, int on)
{
    if (on && !(c->flags & RESP_CONN_READING)) {
        event_add(&c->rev, NULL);
        c->flags |= RESP_CONN_READING;
    } else if (!on && (c->flags & RESP_CONN_READING)) {
        event_del(&c->rev);
        c->flags &= ~RESP_CONN_READING;
    }
}

static void
conn_set_writing(struct resp_conn *c, int on)
{
    if (on && !(c->flags & RESP_CONN_WRITING)) {
        event_add(&c->wev, NULL);
        c->flags |= RESP_CONN_WRITING;
    } else if (!on && (c->flags & RESP_CONN_WRITING)) {
        event_del(&c->wev);
        c->flags &= ~RESP_CONN_WRITING;
    }
}

/* "ip:port" or "[v6]:port" of a TCP socket address ("" if unknown). */
static void
format_addr(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];

    out[0] = '\0';
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip)) != NULL) {
            snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
        }
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip)) != NULL) {
            snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
        }
    }
}

/* The client's and our address as CLIENT LIST shows them: ip:port for
 * TCP, the socket's path (both) for a Unix socket. */
static void
conn_addrs(struct resp_fe *fe, int fd, int is_tcp, char *addr, char *laddr,
           size_t cap)
{
    struct sockaddr_storage sa;
    socklen_t len;

    if (!is_tcp) {
        snprintf(addr, cap, "%s", fe->unix_path != NULL ? fe->unix_path : "");
        snprintf(laddr, cap, "%s", addr);
        return;
    }
    len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0) {
        format_addr(&sa, addr, cap);
    } else {
        addr[0] = '\0';
    }
    len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        format_addr(&sa, laddr, cap);
    } else {
        laddr[0] = '\0';
    }
}

static void
conn_create(struct resp_worker *w, int fd, int is_tcp)
{
    struct resp_fe *fe = w->fe;
    const struct kvd_cmd_api *api = fe->srv->cmd_api;
    struct resp_conn *c = calloc(1, sizeof(*c));
    char addr[RESP_ADDR_BYTES], laddr[RESP_ADDR_BYTES];

    if (c == NULL) {
        LOG(fe, KVD_LOG_WARN, "resp: out of memory for a new connection");
        close(fd);
        atomic_fetch_sub(&fe->nclients, 1);
        return;
    }
    conn_addrs(fe, fd, is_tcp, addr, laddr, sizeof(addr));
    struct kvd_session_info info = {
        .struct_size = sizeof(info),
        .frontend = "resp",
        /* Local clients are trusted (the socket's mode is the access
         * control); TCP clients must AUTH whenever a password is set. */
        .flags = is_tcp ? 0 : KVD_SESSION_TRUSTED,
        .ops = &resp_reply_ops,
        .ops_size = sizeof(resp_reply_ops),
        .w = c,
        .pass = w->pass,
        .addr = addr,
        .laddr = laddr,
        .fd = fd,
        /* Unix sessions get the password too: trusted, they need no
         * AUTH, but clients that always send one (redis-cli -a) get it
         * checked rather than refused as "no password configured". */
        .password = fe->password,
        .password_len = fe->password_len,
    };
    c->sess = api->session_open(fe->srv->cmd, &info);
    if (c->sess == NULL) {
        LOG(fe, KVD_LOG_WARN, "resp: cannot create a session");
        close(fd);
        free(c);
        atomic_fetch_sub(&fe->nclients, 1);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->proto = 2;
    c->flags = is_tcp ? RESP_CONN_TCP : 0;
    c->last_in_ms = c->last_out_ms = worker_now_ms(w);
    resp_parser_init(&c->parser, &fe->limits);
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
    event_assign(&c->wev, w->base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
    c->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->nconns++;
    conn_set_reading(c, 1);
}

/* Write as much as the socket takes; -1 on a real error. MSG_NOSIGNAL:
 * a client that went away is an EPIPE here, never a SIGPIPE. */
static ssize_t
sock_write(int fd, const char *p, size_t n)
{
    ssize_t r;

    do {
        r = send(fd, p, n, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    return r;
}

/*
 * Write c->o. Returns 1 when it drained, 0 when the socket took only part
 * (the read event is dropped and the write event armed: requests only run
 * while the client keeps up), or -1 when the connection must close (an
 * I/O error, or the output buffer limit crossed).
 */
static int
conn_send(struct resp_conn *c)
{
    struct resp_worker *w = c->w;
    ssize_t n;

    if (c->o.len > c->o_off) {
        n = sock_write(c->fd, c->o.p + c->o_off, c->o.len - c->o_off);
        if (n < 0) {
            return -1;
        }
        if (n > 0) {
            c->last_out_ms = worker_now_ms(w);
        }
        c->o_off += (size_t)n;
    }
    if (c->o_off == c->o.len) {
        c->o.len = 0;
        c->o_off = 0;
        if (c->o.cap > RESP_CONN_KEEP_BYTES) {
            resp_buf_free(&c->o);
        }
        conn_set_writing(c, 0);
        return 1;
    }
    if (c->o.len - c->o_off > w->fe->opts->output_buffer_limit) {
        LOG(w->fe, KVD_LOG_INFO,
            "resp: closing client fd %d: output buffer limit reached "
            "(%zu bytes pending)",
            c->fd, c->o.len - c->o_off);
        return -1;
    }
    if (!(c->flags & RESP_CONN_WRITING)) {
        /* The stall is counted from when it starts to wait for the
         * client, not from its last write, which may be long ago. */
        c->last_out_ms = worker_now_ms(w);
    }
    conn_set_reading(c, 0);
    conn_set_writing(c, 1);
    return 0;
}

/* A protocol error: the replies c is still owed go first, then the
 * error, then the connection closes. */
static void
conn_protocol_error(struct resp_conn *c, const char *msg)
{
    if (c->nqueued > 0) {
        worker_pass_end(c->w);
    }
    resp_reply_error_str(c, msg);
    c->flags |= RESP_CONN_CLOSE_AFTER;
}

/* Run one complete request; the parser holds its arguments. */
static void
conn_exec(struct resp_conn *c, const char *req)
{
    struct resp_worker *w = c->w;
    const struct kvd_server *srv = w->fe->srv;
    struct resp_parser *p = &c->parser;
    const char *const *argv;
    int flags;

    if (p->kind == RESP_REQ_INLINE) {
        struct kvd_err err;
        int n;
        size_t maxn = p->inline_len / 2 + 1;

        if (resp_parser_reserve(p, maxn) != 0) {
            c->flags |= RESP_CONN_BROKEN;
            return;
        }
        n = srv->cmd_api->split(req + p->inline_off, p->inline_len,
                                w->split_buf, maxn, p->argv, p->argl, &err);
        if (n < 0) {
            conn_protocol_error(c, n == KVD_EINVAL
                                       ? "Protocol error: unbalanced "
                                         "quotes in request"
                                       : "Protocol error: invalid "
                                         "inline request");
            return;
        }
        p->argc = (size_t)n;
        argv = p->argv;
    } else {
        argv = resp_parser_args(p, req);
    }
    if (p->argc == 0) {
        return; /* empty request: no reply */
    }
    /* The reply is written through resp_reply_ops now, or when the pass
     * runs (PENDING); the layer keeps this client's replies in order. */
    flags = srv->cmd_api->call(c->sess, p->argc, argv, p->argl);
    worker_after_call(w, c, flags);
    if (flags > 0 && (flags & KVD_EXEC_CLOSE)) {
        c->flags |= RESP_CONN_CLOSE_AFTER;
    }
}

/*
 * Run every complete request in buf[0..len). Returns how many bytes were
 * consumed; the rest is an incomplete request, or requests deferred by
 * back-pressure or a pending close.
 */
static size_t
conn_process(struct resp_conn *c, const char *buf, size_t len)
{
    struct resp_worker *w = c->w;
    size_t off = 0;

    while (off < len &&
           !(c->flags & (RESP_CONN_CLOSE_AFTER | RESP_CONN_BROKEN))) {
        int rc = resp_parse(&c->parser, buf + off, len - off);
        if (rc == KVD_EAGAIN) {
            break;
        }
        if (rc == KVD_EPROTO) {
            LOG(w->fe, KVD_LOG_DEBUG, "resp: client fd %d: %s", c->fd,
                c->parser.error);
            conn_protocol_error(c, c->parser.error);
            break;
        }
        if (rc != 0) {
            c->flags |= RESP_CONN_BROKEN;
            break;
        }
        conn_exec(c, buf + off);
        off += c->parser.pos;
        resp_parser_reset(&c->parser);
        if (c->nqueued >= RESP_DEFER_PER_CONN) {
            /* A long pipeline: run what it queued, so its replies meet
             * the back-pressure check below (a client pipelining GETs of
             * big values must not make one pass fetch them all). */
            worker_pass_end(w);
        }
        if (w->wbuf.len >= RESP_FLUSH_BYTES ||
            (c->o.len >= RESP_FLUSH_BYTES &&
             !(c->flags & RESP_CONN_WRITING))) {
            /* A long pipeline of large replies: write now rather than
             * hold it all, and stop while the client is not keeping up. */
            resp_out_flush(w);
            if ((c->flags & RESP_CONN_BROKEN) ||
                (!(c->flags & RESP_CONN_WRITING) && conn_send(c) < 0)) {
                c->flags |= RESP_CONN_BROKEN;
                break;
            }
            if (c->o.len > 0) {
                break;
            }
        }
    }
    return off;
}

/*
 * After c's requests ran: its replies (and those of connections a pass
 * wrote meanwhile) go to the write at the end of the loop iteration
 * (worker_flush); close at once if nothing is left to say.
 */
static void
conn_finish_batch(struct resp_conn *c)
{
    resp_out_flush(c->w);
    if ((c->flags & RESP_CONN_BROKEN) ||
        ((c->flags & RESP_CONN_CLOSE_AFTER) && c->o.len == 0 &&
         c->nqueued == 0)) {
        conn_free(c);
        return;
    }
    if (c->flags & RESP_CONN_CLOSE_AFTER) {
        conn_set_reading(c, 0);
    }
    if (c->o.len > 0) {
        /* A connection waiting for writability is written by its write
         * event; the rest by the flush at the end of the iteration. */
        if (!(c->flags & (RESP_CONN_WRITING | RESP_CONN_PENDING))) {
            resp_conn_pend(c);
        }
    } else if (!(c->flags & RESP_CONN_CLOSE_AFTER)) {
        conn_set_reading(c, 1); /* after a drain, reading resumes here */
    }
}

/* c->o drained: close if that was asked and nothing more is owed (replies
 * still waiting in the pass come at the end of the loop pass), else run
 * what waited in c->q. */
static void
conn_after_drain(struct resp_conn *c)
{
    if (c->flags & RESP_CONN_CLOSE_AFTER) {
        if (c->nqueued == 0) {
            conn_free(c);
        }
        return;
    }
    conn_run_queued(c);
}

/* Keep buf[off..len) in c->q (which may be where buf lives). */
static int
conn_keep_rest(struct resp_conn *c, const char *buf, size_t off, size_t len)
{
    size_t rest = len - off;

    if (buf == c->q.p) {
        if (off > 0 && rest > 0) {
            memmove(c->q.p, c->q.p + off, rest);
        }
        c->q.len = rest;
    } else if (rest > 0) {
        if (resp_buf_reserve(&c->q, rest) != 0) {
            return KVD_ENOMEM;
        }
        memcpy(c->q.p + c->q.len, buf + off, rest);
        c->q.len += rest;
    }
    if (c->q.len == 0 && c->q.cap > RESP_KEEP_BYTES) {
        resp_buf_free(&c->q);
    }
    return 0;
}

static void
conn_limit_error(struct resp_conn *c, const char *what)
{
    LOG(c->w->fe, KVD_LOG_INFO, "resp: closing client fd %d: %s", c->fd, what);
    conn_protocol_error(c, what);
    conn_set_reading(c, 0);
    conn_finish_batch(c);
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct resp_conn *c = arg;
    struct resp_worker *w = c->w;
    uint64_t qlimit = w->fe->opts->query_buffer_limit;
    char *dst;
    size_t room;
    ssize_t n;

    (void)what;
    if (c->q.len == 0) {
        /* Nothing pending: read into the shared buffer, keep nothing. */
        dst = w->rbuf.p;
        room = w->rbuf.cap;
    } else {
        /* Part of a request is pending: append to it, and when the
         * parser knows the request's size, make room for all of it at
         * once (bounded by the query buffer limit, checked first). */
        size_t want = RESP_READ_BYTES;
        if (c->parser.need > c->q.len && c->parser.need - c->q.len > want) {
            want = c->parser.need - c->q.len;
        }
        if (c->q.len + want > qlimit) {
            want = c->q.len < qlimit ? (size_t)(qlimit - c->q.len) + 1 : 1;
        }
        if (resp_buf_reserve(&c->q, want) != 0) {
            conn_limit_error(c, "Protocol error: out of memory for query");
            return;
        }
        dst = c->q.p + c->q.len;
        room = c->q.cap - c->q.len;
    }
    do {
        n = read(fd, dst, room);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        conn_free(c);
        return;
    }
    if (n == 0) {
        /* The client is gone or half-closed: deliver what is pending
         * (replies waiting in the pass come at the end of the loop pass,
         * and the connection closes after them). */
        conn_set_reading(c, 0);
        c->flags |= RESP_CONN_CLOSE_AFTER;
        if (c->o.len == 0 && c->nqueued == 0) {
            conn_free(c);
        }
        return;
    }
    c->last_in_ms = worker_now_ms(w);
    if (dst == w->rbuf.p) {
        size_t used = conn_process(c, dst, (size_t)n);
        if (conn_keep_rest(c, dst, used, (size_t)n) != 0) {
            c->flags |= RESP_CONN_BROKEN;
        }
    } else {
        size_t used;
        c->q.len += (size_t)n;
        used = conn_process(c, c->q.p, c->q.len);
        conn_keep_rest(c, c->q.p, used, c->q.len);
    }
    if (c->q.len > qlimit && !(c->flags & RESP_CONN_CLOSE_AFTER)) {
        conn_limit_error(c, "Protocol error: query buffer limit reached");
        return;
    }
    if (c->parser.need > qlimit && !(c->flags & RESP_CONN_CLOSE_AFTER)) {
        conn_limit_error(c, "Protocol error: request larger than the "
                            "query buffer limit");
        return;
    }
    conn_finish_batch(c);
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct resp_conn *c = arg;
    int rc;

    (void)fd;
    (void)what;
    if (c->flags & RESP_CONN_BROKEN) {
        conn_free(c); /* a pass's reply to it could not be stored */
        return;
    }
    rc = conn_send(c);
    if (rc < 0) {
        conn_free(c);
    } else if (rc > 0) {
        conn_after_drain(c);
    }
}

/* Drained: run requests that waited in c->q, then read again. */
static void
conn_run_queued(struct resp_conn *c)
{
    if (c->w->stop_seen) {
        conn_free(c); /* stopping: what was in flight is written */
        return;
    }
    if (c->q.len > 0) {
        size_t used = conn_process(c, c->q.p, c->q.len);
        conn_keep_rest(c, c->q.p, used, c->q.len);
    }
    conn_finish_batch(c); /* may free c */
}

/* ------------------------------------------------------------------ */
/* Workers                                                             */

static void
worker_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct resp_listener *l = arg;
    struct resp_fe *fe = l->fe;
    struct resp_worker *w0;

    (void)what;
    w0 = &fe->workers[0];
    for (int i = 0; i < RESP_ACCEPT_PER_WAKE; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct resp_worker *w;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                LOG(fe, KVD_LOG_WARN, "resp: accept: %s", strerror(errno));
            }
            return;
        }
        if (atomic_fetch_add(&fe->nclients, 1) >= fe->opts->maxclients) {
            static const char msg[] = "-ERR max number of clients reached\r\n";
            atomic_fetch_sub(&fe->nclients, 1);
            if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0) {
                /* the client is being refused anyway */
            }
            close(fd);
            continue;
        }
        if (l->is_tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        w = &fe->workers[w0->next_worker++ % fe->nworkers];
        if (w == w0) {
            conn_create(w, fd, l->is_tcp);
            continue;
        }
        /* The sign bit marks TCP, so the queue stays an int array. */
        pthread_mutex_lock(&w->lock);
        if (w->nhandoff == w->handoff_cap) {
            size_t cap = w->handoff_cap ? w->handoff_cap * 2 : 64;
            int *q = realloc(w->handoff, cap * sizeof(*q));
            if (q == NULL) {
                pthread_mutex_unlock(&w->lock);
                close(fd);
                atomic_fetch_sub(&fe->nclients, 1);
                continue;
            }
            w->handoff = q;
            w->handoff_cap = cap;
        }
        w->handoff[w->nhandoff++] = l->is_tcp ? -fd - 1 : fd;
        pthread_mutex_unlock(&w->lock);
        uint64_t one = 1;
        if (write(w->wake_fd, &one, sizeof(one)) < 0) {
            /* eventfd counter overflow only: the worker is awake anyway */
        }
    }
}

static void
worker_begin_stop(struct resp_worker *w)
{
    struct resp_conn *c, *next;

    w->stop_seen = 1;
    w->drain_deadline_ms = worker_now_ms(w) + RESP_DRAIN_MS;
    if (w->id == 0) {
        listeners_close(w->fe, 1);
    }
    /* Replies still owed by the pass go out with the others. */
    worker_pass_end(w);
    resp_out_flush(w);
    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        conn_set_reading(c, 0);
        if (c->o.len == 0 && !(c->flags & RESP_CONN_BROKEN)) {
            conn_free(c);
        } else {
            c->flags |= RESP_CONN_CLOSE_AFTER;
        }
    }
    if (w->nconns == 0) {
        worker_exit(w);
    }
}

static void
worker_on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct resp_worker *w = arg;
    uint64_t v;
    int *q;
    size_t n;

    (void)what;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: another wake already drained the counter */
    }
    pthread_mutex_lock(&w->lock);
    q = w->handoff;
    n = w->nhandoff;
    w->handoff = NULL;
    w->nhandoff = 0;
    w->handoff_cap = 0;
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; i++) {
        int is_tcp = q[i] < 0;
        int cfd = is_tcp ? -q[i] - 1 : q[i];
        if (atomic_load(&w->fe->stopping)) {
            close(cfd);
            atomic_fetch_sub(&w->fe->nclients, 1);
        } else {
            conn_create(w, cfd, is_tcp);
        }
    }
    free(q);
    if (atomic_load(&w->fe->stopping) && !w->stop_seen) {
        worker_begin_stop(w);
    }
}

/*
 * Once a second: idle timeout, slow readers (pending replies the client
 * has not taken any of for output_stall_ms), and the drain deadline of a
 * graceful stop.
 */
static void
worker_cron(evutil_socket_t fd, short what, void *arg)
{
    struct resp_worker *w = arg;
    const struct resp_opts *o = w->fe->opts;
    int64_t now = worker_now_ms(w);
    struct resp_conn *c, *next;

    (void)fd;
    (void)what;
    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (w->stop_seen && now >= w->drain_deadline_ms) {
            conn_free(c);
        } else if ((c->flags & RESP_CONN_WRITING) && o->output_stall_ms > 0 &&
                   now - c->last_out_ms >= o->output_stall_ms) {
            /* Only a connection waiting for the socket can stall: one
             * with replies still on the pending list of this iteration
             * has not had its write yet. */
            LOG(w->fe, KVD_LOG_INFO,
                "resp: closing client fd %d: it has not read its replies "
                "for %lld ms",
                c->fd, (long long)(now - c->last_out_ms));
            conn_free(c);
        } else if (c->o.len == 0 && o->timeout_ms > 0 &&
                   now - c->last_in_ms >= o->timeout_ms) {
            conn_free(c);
        } else if (now - c->last_in_ms >= 2000) {
            /* idle: give the memory back */
            if (c->q.len == 0 && c->q.cap > 0) {
                resp_buf_free(&c->q);
            }
            if (c->o.len == 0 && c->o.cap > 0) {
                resp_buf_free(&c->o);
            }
        }
    }
}

/* Write the replies of every connection the iteration left pending. */
static void
worker_flush(struct resp_worker *w)
{
    struct resp_conn *c;

    /* Each turn takes the head off the list; conn_after_drain may run
     * queued requests and put the connection back, with a shorter c->q. */
    while ((c = w->pending) != NULL) {
        int rc;

        resp_conn_unpend(c);
        if (c->flags & RESP_CONN_BROKEN) {
            conn_free(c);
            continue;
        }
        rc = conn_send(c);
        if (rc < 0) {
            conn_free(c);
        } else if (rc > 0) {
            conn_after_drain(c);
        }
    }
}

/*
 * End of a loop pass: run the commands the pass queued, then write every
 * pending reply. Writing may let queued requests of a drained client run
 * and queue more, so repeat until nothing is left.
 */
static void
worker_end_pass(struct resp_worker *w)
{
    do {
        worker_pass_end(w);
        resp_out_flush(w);
        worker_flush(w);
    } while (w->queued > 0);
}

/*
 * The loop: one pass over the ready events (EVLOOP_ONCE), then the
 * queued commands and the pending writes, so every reply of a pass leaves before the thread
 * sleeps again (see the top of this file for why).
 */
static void *
worker_main(void *arg)
{
    struct resp_worker *w = arg;

    while (!w->exiting) {
        int rc = event_base_loop(w->base, EVLOOP_ONCE);
        worker_end_pass(w);
        if (rc != 0) {
            break; /* -1: error; 1: no events left to wait for */
        }
    }
    return NULL;
}

static int
worker_init(struct resp_fe *fe, struct resp_worker *w, unsigned id,
            struct kvd_err *err)
{
    struct event_config *cfg;
    struct timeval sec = {1, 0};

    w->fe = fe;
    w->id = id;
    w->wake_fd = -1;
    pthread_mutex_init(&w->lock, NULL);
    cfg = event_config_new();
    if (cfg == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "event_config_new failed");
    }
    /* One thread per base: libevent's own locks would be pure cost. */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (w->base == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "event_base_new failed");
    }
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        return kvd_err_set(err, -errno, "eventfd: %s", strerror(errno));
    }
    if (resp_buf_reserve(&w->rbuf, RESP_READ_BYTES) != 0 ||
        (w->split_buf = malloc(fe->limits.max_inline_len + 1)) == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    /* NULL when the engine has no multi: every command runs at once,
     * which is as fast for it. */
    w->pass = fe->srv->cmd_api->pass_create(fe->srv->cmd);
    event_assign(&w->wake_ev, w->base, w->wake_fd, EV_READ | EV_PERSIST,
                 worker_on_wake, w);
    event_add(&w->wake_ev, NULL);
    event_assign(&w->cron_ev, w->base, -1, EV_PERSIST, worker_cron, w);
    event_add(&w->cron_ev, &sec);
    return 0;
}

static void
worker_release(struct resp_worker *w)
{
    if (w->fe == NULL) {
        return; /* never initialised (start failed before it) */
    }
    while (w->conns != NULL) {
        conn_free(w->conns);
    }
    if (w->base != NULL) {
        event_del(&w->wake_ev);
        event_del(&w->cron_ev);
        event_base_free(w->base);
        w->base = NULL;
    }
    if (w->wake_fd >= 0) {
        close(w->wake_fd);
    }
    for (size_t i = 0; i < w->nhandoff; i++) {
        int fd = w->handoff[i] < 0 ? -w->handoff[i] - 1 : w->handoff[i];
        close(fd);
    }
    free(w->handoff);
    resp_buf_free(&w->rbuf);
    resp_buf_free(&w->wbuf);
    free(w->split_buf);
    /* Every session is gone: what is still queued runs, unreplied. */
    w->fe->srv->cmd_api->pass_destroy(w->pass);
    w->pass = NULL;
    free(w->qconns);
    w->qconns = NULL;
    pthread_mutex_destroy(&w->lock);
}

int
resp_net_start(struct resp_fe *fe, struct kvd_err *err)
{
    struct resp_listener *ls[2] = {&fe->unix_l, &fe->tcp_l};
    int rc;

    fe->workers = calloc(fe->nworkers, sizeof(*fe->workers));
    if (fe->workers == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    for (unsigned i = 0; i < fe->nworkers; i++) {
        rc = worker_init(fe, &fe->workers[i], i, err);
        if (rc != 0) {
            return rc;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (ls[i]->fd >= 0) {
            event_assign(&ls[i]->ev, fe->workers[0].base, ls[i]->fd,
                         EV_READ | EV_PERSIST, worker_accept, ls[i]);
            event_add(&ls[i]->ev, NULL);
        }
    }
    for (unsigned i = 0; i < fe->nworkers; i++) {
        struct resp_worker *w = &fe->workers[i];
        rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            resp_net_stop(fe);
            return kvd_err_set(err, -rc, "pthread_create: %s", strerror(rc));
        }
        w->started = 1;
    }
    LOG(fe, KVD_LOG_INFO, "resp: listening on %s%s%s%s (%u threads)",
        fe->unix_path ? "unix:" : "", fe->unix_path ? fe->unix_path : "",
        fe->unix_path && fe->tcp_desc[0] ? ", tcp:" : "", fe->tcp_desc,
        fe->nworkers);
    return 0;
}

void
resp_net_stop(struct resp_fe *fe)
{
    uint64_t one = 1;

    if (atomic_exchange(&fe->stopping, 1) != 0) {
        return;
    }
    for (unsigned i = 0; fe->workers != NULL && i < fe->nworkers; i++) {
        if (fe->workers[i].wake_fd >= 0 &&
            write(fe->workers[i].wake_fd, &one, sizeof(one)) < 0) {
            /* cannot fail for an eventfd below its maximum */
        }
    }
}

void
resp_net_destroy(struct resp_fe *fe)
{
    resp_net_stop(fe);
    for (unsigned i = 0; fe->workers != NULL && i < fe->nworkers; i++) {
        if (fe->workers[i].started) {
            pthread_join(fe->workers[i].thread, NULL);
        }
    }
    /* Threads are gone; whatever is left is freed from this thread. */
    listeners_close(fe, 0);
    free(fe->unix_path);
    fe->unix_path = NULL;
    for (unsigned i = 0; fe->workers != NULL && i < fe->nworkers; i++) {
        worker_release(&fe->workers[i]);
    }
    free(fe->workers);
    fe->workers = NULL;
}
