/*
 * frontends/http/http.c -- the http frontend: a REST API for keys
 * (/kv/{key}, /kv), health (/healthz), readiness (/readyz) and Prometheus
 * metrics (/metrics), served by kvd's own HTTP/1.1 server (http_net.c).
 *
 * This file holds the [frontend.http] option table, the listening
 * socket, the lifecycle and the exported vtable; see http.h for the
 * layers below it.
 *
 * Lifecycle: create() binds the listening socket (a bad or busy address
 * fails before anything is served); start() runs the workers on it;
 * stop() stops accepting and marks every later response "Connection:
 * close"; destroy() waits until the connections with requests in
 * progress are done (at most drain_timeout), closes the rest and joins
 * the workers.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Upper bound of the automatic thread count (threads = 0). */
#define HTTP_AUTO_THREADS_MAX 8
/* listen(2) backlog. */
#define HTTP_BACKLOG 511

static const struct kvd_option http_options[] = {
    {"listen", KVD_OPT_STRING | KVD_OPT_LISTEN, "127.0.0.1:8080", 0, 0,
     offsetof(struct http_opts, listen), NULL,
     "address to listen on as host:port ([v6addr]:port for IPv6); a "
     "port without a host (8080 or :8080) means 127.0.0.1; port 0 picks "
     "a free port (logged)"},
    {"threads", KVD_OPT_INT, "0", 0, 64, offsetof(struct http_opts, threads),
     NULL,
     "worker threads, each with its own epoll loop serving its own "
     "connections (0: one per CPU, at most 8)"},
    {"max_body_bytes", KVD_OPT_SIZE, "64m", 1, INT64_C(1) << 40,
     offsetof(struct http_opts, max_body_bytes), NULL,
     "largest request body (PUT value, POST /kv document); larger ones "
     "get 413"},
    {"token", KVD_OPT_STRING | KVD_OPT_SECRET, "", 0, 0,
     offsetof(struct http_opts, token), NULL,
     "bearer token every request except /healthz and /readyz must "
     "carry (Authorization: Bearer TOKEN); empty: no authentication"},
    {"max_connections", KVD_OPT_INT, "1024", 1, 1000000,
     offsetof(struct http_opts, max_connections), NULL,
     "connections served at once; more are answered 503 and closed"},
    {"max_connections_per_ip", KVD_OPT_INT, "256", 0, 1000000,
     offsetof(struct http_opts, max_connections_per_ip), NULL,
     "connections one client address (an IPv6 /64) may hold; more are "
     "answered 429 and closed (0: no limit)"},
    {"timeout", KVD_OPT_DURATION, "60s", 0, INT64_C(86400000),
     offsetof(struct http_opts, timeout_ms), NULL,
     "how long a kept-alive connection may sit idle, and a request body "
     "or a response may stall, before the connection is closed (0: "
     "never)"},
    {"header_timeout", KVD_OPT_DURATION, "10s", 0, INT64_C(3600000),
     offsetof(struct http_opts, header_timeout_ms), NULL,
     "a request's head (request line and header fields) must arrive "
     "within this time of its first byte, however it trickles in; "
     "else 408 and close (0: no limit)"},
    {"strict_content_type", KVD_OPT_BOOL, "no", 0, 0,
     offsetof(struct http_opts, strict_content_type), NULL,
     "require Content-Type application/octet-stream on PUT /kv/{key} and "
     "application/json on POST /kv (415 otherwise)"},
    {"max_header_bytes", KVD_OPT_SIZE, "64k", 4096, 16 << 20,
     offsetof(struct http_opts, max_header_bytes), NULL,
     "largest request head (request line and header fields); a longer "
     "request line gets 414, longer header fields 431"},
    {"drain_timeout", KVD_OPT_DURATION, "10s", 0, INT64_C(3600000),
     offsetof(struct http_opts, drain_timeout_ms), NULL,
     "on shutdown, how long requests in flight may take to finish"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

static void http_destroy(kvd_frontend *fe);

/* ---- listening socket ---------------------------------------------------- */

/*
 * Split "host:port", "[v6]:port", ":port" or "port" into host and port.
 * Without a host: 127.0.0.1, as every kvd listener does (a server is
 * opened to other machines only on purpose, by naming the address).
 */
static int
split_listen(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;
    size_t n;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':') {
            return -1;
        }
        n = (size_t)(end - s - 1);
        colon = end + 1;
        s++;
    } else if ((colon = strrchr(s, ':')) == NULL) {
        colon = s - 1; /* a port alone */
        n = 0;
    } else {
        n = (size_t)(colon - s);
    }
    if (n + 1 > hlen || strlen(colon + 1) + 1 > plen || colon[1] == '\0') {
        return -1;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    if (n == 0) {
        /* ":port" is loopback too, as in every kvd listen option: a
         * wildcard address is only ever spelled out. */
        snprintf(host, hlen, "127.0.0.1");
    }
    snprintf(port, plen, "%s", colon + 1);
    return 0;
}

/* The address actually bound (port 0 resolved), for messages. */
static void
describe_bound(struct http_fe *fe, const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(fe->addr, sizeof(fe->addr), "%s:%u", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        snprintf(fe->addr, sizeof(fe->addr), "[%s]:%u", ip, port);
    }
}

static int
http_bind(struct http_fe *fe, struct kvd_err *err)
{
    const char *spec = fe->opts->listen != NULL ? fe->opts->listen : "";
    struct addrinfo hints, *res = NULL, *ai;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[256], port[32];
    int fd = -1, one = 1, rc, saved = 0;

    if (split_listen(spec, host, sizeof(host), port, sizeof(port)) != 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "listen = %s: expected host:port, [v6addr]:port, "
                           ":port or port",
                           spec);
    }
    if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
        atoi(port) > 65535) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "listen = %s: the port must be a number from 0 "
                           "to 65535",
                           spec);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        return kvd_err_set(err, KVD_ECONFIG, "listen = %s: %s", spec,
                           gai_strerror(rc));
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, HTTP_BACKLOG) == 0) {
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return kvd_err_set(err, KVD_EIO, "listen on %s: %s", spec,
                           strerror(saved));
    }
    fe->listen_fd = fd;
    snprintf(fe->addr, sizeof(fe->addr), "%s", spec);
    memset(&ss, 0, sizeof(ss));
    /* The start-up checks warn about an address beyond loopback without
     * a token (KVD_OPT_LISTEN, KVD_OPT_SECRET); here the bound address
     * is only named, port 0 resolved. */
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        describe_bound(fe, &ss);
    }
    return 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

static unsigned
http_thread_count(const struct http_opts *o)
{
    long n;

    if (o->threads > 0) {
        return (unsigned)o->threads;
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) {
        n = 1;
    }
    return n > HTTP_AUTO_THREADS_MAX ? HTTP_AUTO_THREADS_MAX : (unsigned)n;
}

static int
http_create(const struct kvd_host *host, const struct kvd_server *srv,
            const void *opts, kvd_frontend **out, struct kvd_err *err)
{
    const struct http_opts *o = opts;
    struct http_fe *fe;
    int rc;

    if (srv->store_api == NULL || srv->store == NULL) {
        return kvd_err_set(err, KVD_EINVAL, "the host provides no store");
    }
    if (!http_cmd_available(srv)) {
        return kvd_err_set(err, KVD_EINVAL,
                           "the host's command layer has no sessions "
                           "(kvd_cmd_api.session_open)");
    }
    fe = calloc(1, sizeof(*fe));
    if (fe == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    fe->host = host;
    fe->srv = srv;
    fe->opts = o;
    fe->listen_fd = -1;
    fe->nthreads = http_thread_count(o);
    fe->token_len = o->token != NULL ? strlen(o->token) : 0;
    atomic_init(&fe->stopping, 0);
    atomic_init(&fe->force_close, 0);
    atomic_init(&fe->running, 0);
    atomic_init(&fe->inflight, 0);
    atomic_init(&fe->nconns, 0);
    atomic_init(&fe->nlinger, 0);
    atomic_init(&fe->ready_until, 0);
    fe->ctr = aligned_alloc(64, sizeof(*fe->ctr) * HTTP_CTR_SLOTS);
    if (fe->ctr == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "out of memory");
        goto fail;
    }
    memset(fe->ctr, 0, sizeof(*fe->ctr) * HTTP_CTR_SLOTS);
    if (o->max_connections_per_ip > 0) {
        fe->peers = http_peers_create((unsigned)o->max_connections_per_ip,
                                      (size_t)o->max_connections);
        if (fe->peers == NULL) {
            rc = kvd_err_set(err, KVD_ENOMEM, "out of memory");
            goto fail;
        }
    }
    rc = http_bind(fe, err);
    if (rc != 0) {
        goto fail;
    }
    *out = (kvd_frontend *)fe;
    return 0;
fail:
    http_destroy((kvd_frontend *)fe);
    return rc;
}

static int
http_start(kvd_frontend *f, struct kvd_err *err)
{
    struct http_fe *fe = (struct http_fe *)f;
    const struct http_opts *o = fe->opts;
    int rc = http_net_start(fe, err);

    if (rc != 0) {
        return rc;
    }
    fe->host->log(fe->host, KVD_LOG_INFO,
                  "http: listening on %s (%u threads, max body %llu bytes%s)",
                  fe->addr, fe->nthreads, (unsigned long long)o->max_body_bytes,
                  fe->token_len ? ", bearer token required" : "");
    return 0;
}

static void
http_stop(kvd_frontend *f)
{
    struct http_fe *fe = (struct http_fe *)f;

    if (fe == NULL || atomic_exchange(&fe->stopping, 1) != 0) {
        return;
    }
    http_net_stop(fe);
}

static void
http_destroy(kvd_frontend *f)
{
    struct http_fe *fe = (struct http_fe *)f;

    if (fe == NULL) {
        return;
    }
    http_stop(f);
    http_net_join(fe);
    if (fe->listen_fd >= 0) {
        close(fe->listen_fd);
    }
    http_peers_destroy(fe->peers);
    free(fe->ctr);
    free(fe);
}

KVD_EXPORT const struct kvd_frontend_vtable kvd_frontend_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_frontend_vtable),
    .name = "http",
    .version = "1.1.0",
    .description = "REST API for keys, health, readiness and Prometheus "
                   "metrics (HTTP/1.1)",
    .options = http_options,
    .options_size = sizeof(struct http_opts),
    .create = http_create,
    .start = http_start,
    .stop = http_stop,
    .destroy = http_destroy,
};
