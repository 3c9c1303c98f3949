/*
 * frontends/http/http.c -- the http frontend: a REST API for keys
 * (/kv/{key}, /kv), health (/healthz), readiness (/readyz) and Prometheus
 * metrics (/metrics), served by libmicrohttpd in its epoll thread-pool
 * mode.
 *
 * This file holds the [frontend.http] option table, the lifecycle, the
 * three MHD callbacks that frame a request (URI seen, access handler,
 * request completed), routing, authentication and the exported vtable.
 * See http.h for the threading model; the routes themselves are in
 * http_kv.c and http_ops.c.
 *
 * Lifecycle: create() binds the listening socket (a bad or busy address
 * fails before anything is served); start() runs the MHD daemon on it;
 * stop() stops accepting (MHD_quiesce_daemon) and marks every later
 * response "Connection: close"; destroy() waits until the requests in
 * flight have completed (at most drain_timeout), then stops the daemon,
 * which closes the remaining idle connections.
 */
#include "http.h"

#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Upper bound of the automatic thread count (threads = 0). */
#define HTTP_AUTO_THREADS_MAX 8
/* listen(2) backlog. */
#define HTTP_BACKLOG 511
/* How often destroy() looks whether the last request completed. */
#define HTTP_DRAIN_POLL_MS 5

static const struct kvd_option http_options[] = {
    {"listen", KVD_OPT_STRING | KVD_OPT_LISTEN, "127.0.0.1:8080", 0, 0,
     offsetof(struct http_opts, listen), NULL,
     "address to listen on as host:port ([v6addr]:port for IPv6), or a "
     "port alone for 127.0.0.1:port; loopback by default"},
    {"threads", KVD_OPT_INT, "0", 0, 64, offsetof(struct http_opts, threads),
     NULL,
     "worker threads, each with its own epoll loop (0: one per CPU, "
     "at most 8)"},
    {"max_body_bytes", KVD_OPT_SIZE, "64m", 1, INT64_C(1) << 40,
     offsetof(struct http_opts, max_body_bytes), NULL,
     "largest request body (PUT value, POST /kv document); larger ones "
     "get 413"},
    {"token", KVD_OPT_STRING | KVD_OPT_SECRET, "", 0, 0, offsetof(struct http_opts, token), NULL,
     "bearer token every request except /healthz and /readyz must "
     "carry (Authorization: Bearer TOKEN); empty: no authentication"},
    {"max_connections", KVD_OPT_INT, "1024", 1, 1000000,
     offsetof(struct http_opts, max_connections), NULL,
     "connections served at once; more are refused"},
    {"timeout", KVD_OPT_DURATION, "60s", 0, INT64_C(86400000),
     offsetof(struct http_opts, timeout_ms), NULL,
     "close a connection idle for this long, rounded up to seconds (0: "
     "never)"},
    {"strict_content_type", KVD_OPT_BOOL, "no", 0, 0,
     offsetof(struct http_opts, strict_content_type), NULL,
     "require Content-Type application/octet-stream on PUT /kv/{key} and "
     "application/json on POST /kv (415 otherwise)"},
    {"max_header_bytes", KVD_OPT_SIZE, "64k", 4096, 16 << 20,
     offsetof(struct http_opts, max_header_bytes), NULL,
     "memory per connection for the request line and headers; a request "
     "whose headers do not fit gets 431"},
    {"drain_timeout", KVD_OPT_DURATION, "10s", 0, INT64_C(3600000),
     offsetof(struct http_opts, drain_timeout_ms), NULL,
     "on shutdown, how long requests in flight may take to finish"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

static void http_destroy(kvd_frontend *fe);

static int64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- listening socket ---------------------------------------------------- */

/* Split "host:port", "[v6]:port" or "port" into host and port strings. */
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
        /* A port alone: loopback. */
        snprintf(host, hlen, "127.0.0.1");
        if (strlen(s) + 1 > plen) {
            return -1;
        }
        snprintf(port, plen, "%s", s);
        return s[0] != '\0' ? 0 : -1;
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

static int
http_bind(struct http_fe *fe, struct kvd_err *err)
{
    const char *spec = fe->opts->listen != NULL ? fe->opts->listen : "";
    struct addrinfo hints, *res = NULL, *ai;
    char host[256], port[32];
    int fd = -1, one = 1, rc, saved = 0;

    if (split_listen(spec, host, sizeof(host), port, sizeof(port)) != 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "listen = %s: expected host:port, [v6addr]:port "
                           "or port",
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
    rc = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
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
    return 0;
}

/* ---- MHD callbacks ------------------------------------------------------- */

static void __attribute__((format(printf, 2, 0)))
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_fe *fe = cls;
    char buf[512];
    size_t n;

    /* MHD reports mostly what clients did wrong (malformed requests,
     * closed connections): debug, not noise at the default level. */
    if (!fe->host->log_enabled(fe->host, KVD_LOG_DEBUG)) {
        return;
    }
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        buf[--n] = '\0';
    }
    fe->host->log(fe->host, KVD_LOG_DEBUG, "http: %s", buf);
}

/* The request line was read: allocate the request (MHD passes the
 * return value to the access handler as *req_cls). The URI here is raw,
 * before MHD's own decoding, which is why the request starts here. */
static void *
http_uri_begin(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct http_fe *fe = cls;
    struct http_req *r = calloc(1, sizeof(*r));

    (void)c;
    if (r == NULL) {
        return NULL;
    }
    r->uri = strdup(uri);
    if (r->uri == NULL) {
        free(r);
        return NULL;
    }
    r->fe = fe;
    r->t0_ns = mono_ns();
    r->cmd = HTTP_CMD_OTHER;
    atomic_fetch_add(&fe->inflight, 1);
    return r;
}

static void
http_access_log(struct http_req *r, struct MHD_Connection *c,
                int64_t elapsed_ns, enum MHD_RequestTerminationCode toe)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char peer[NI_MAXHOST] = "?";

    if (ci != NULL && ci->client_addr != NULL) {
        socklen_t len = ci->client_addr->sa_family == AF_INET6
                            ? sizeof(struct sockaddr_in6)
                            : sizeof(struct sockaddr_in);
        getnameinfo(ci->client_addr, len, peer, sizeof(peer), NULL, 0,
                    NI_NUMERICHOST);
    }
    r->fe->host->log(
        r->fe->host, KVD_LOG_DEBUG, "http: %s \"%s %s\" %d %llu %.3f ms%s",
        peer, r->method, r->uri, r->status, (unsigned long long)r->resp_bytes,
        (double)elapsed_ns / 1e6,
        toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
}

static void
http_req_free(struct http_req *r)
{
    free(r->uri);
    free(r->args);
    free(r->argbuf);
    free(r->body);
    free(r);
}

static void
http_completed(void *cls, struct MHD_Connection *c, void **req_cls,
               enum MHD_RequestTerminationCode toe)
{
    struct http_fe *fe = cls;
    struct http_req *r = *req_cls;
    int64_t elapsed;

    if (r == NULL) {
        return;
    }
    *req_cls = NULL;
    elapsed = mono_ns() - r->t0_ns;
    /* A request that got no answer (client gone, malformed) has nothing
     * to count; it still shows in the access log. */
    if (r->status != 0) {
        http_count(fe, r->cmd, (unsigned)r->status, elapsed);
    }
    if (fe->host->log_enabled(fe->host, KVD_LOG_DEBUG)) {
        http_access_log(r, c, elapsed, toe);
    }
    http_req_free(r);
    atomic_fetch_sub(&fe->inflight, 1);
}

/* Constant-time comparison, so response timing says nothing about how
 * much of a guessed token was right. */
static int
token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    for (size_t i = 0; i < blen; i++) {
        d |= (unsigned char)(i < alen ? a[i] : 0) ^ (unsigned char)b[i];
    }
    return d == 0;
}

static int
http_authorized(struct http_fe *fe, struct MHD_Connection *c)
{
    const char *h;

    if (fe->token_len == 0) {
        return 1;
    }
    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return 0;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    return token_equal(h, strlen(h), fe->opts->token, fe->token_len);
}

static enum MHD_Result
http_send_401(struct http_req *r, struct MHD_Connection *c)
{
    static const char body[] =
        "{\"error\":\"missing or invalid bearer token\"}\n";
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);

    if (resp != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"kvd\"");
        r->resp_bytes = sizeof(body) - 1;
    }
    return http_send(r, c, MHD_HTTP_UNAUTHORIZED, resp);
}

/* Decide the route from the raw URI; fill *path_end and *key_at (offsets
 * into r->uri). */
static int
http_route_of(const char *uri, size_t *path_end, size_t *key_at)
{
    size_t off = 0, plen;
    const char *p;

    /* absolute-form (RFC 9112 3.2.2): skip scheme and authority */
    if (strncasecmp(uri, "http://", 7) == 0 ||
        strncasecmp(uri, "https://", 8) == 0) {
        const char *slash = strchr(strstr(uri, "//") + 2, '/');
        off = slash != NULL ? (size_t)(slash - uri) : strlen(uri);
    }
    p = uri + off;
    plen = strcspn(p, "?");
    *path_end = off + plen;
    *key_at = 0;
    if (plen >= 4 && memcmp(p, "/kv/", 4) == 0) {
        *key_at = off + 4;
        return HTTP_ROUTE_KEY;
    }
    if (plen == 3 && memcmp(p, "/kv", 3) == 0) {
        return HTTP_ROUTE_COLLECTION;
    }
    if (plen == 8 && memcmp(p, "/healthz", 8) == 0) {
        return HTTP_ROUTE_HEALTHZ;
    }
    if (plen == 7 && memcmp(p, "/readyz", 7) == 0) {
        return HTTP_ROUTE_READYZ;
    }
    if (plen == 8 && memcmp(p, "/metrics", 8) == 0) {
        return HTTP_ROUTE_METRICS;
    }
    return HTTP_ROUTE_NONE;
}

/* First call of a request: route, authenticate, decode. Returns 1 when a
 * response was queued (or the connection must close: *ret says which),
 * 0 to go on to the route. */
static int
http_begin(struct http_req *r, struct MHD_Connection *c, const char *method,
           enum MHD_Result *ret)
{
    struct http_fe *fe = r->fe;
    size_t path_end, key_at;
    int rc;

    r->started = 1;
    snprintf(r->method, sizeof(r->method), "%s", method);
    r->route = http_route_of(r->uri, &path_end, &key_at);
    if (r->route == HTTP_ROUTE_NONE) {
        *ret = http_send_error(r, c, MHD_HTTP_NOT_FOUND, "no such endpoint");
        return 1;
    }
    if (r->route != HTTP_ROUTE_HEALTHZ && r->route != HTTP_ROUTE_READYZ &&
        !http_authorized(fe, c)) {
        *ret = http_send_401(r, c);
        return 1;
    }
    if (r->route == HTTP_ROUTE_KEY || r->route == HTTP_ROUTE_COLLECTION) {
        rc = http_parse_target(r, path_end, key_at);
        if (rc == KVD_EINVAL) {
            *ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                                   "bad percent-encoding in the URL");
            return 1;
        }
        if (rc != 0) {
            *ret = http_send(r, c, 0, NULL);
            return 1;
        }
    }
    return 0;
}

/* GET and HEAD only: health, readiness and metrics. */
static enum MHD_Result
http_ops_route(struct http_req *r, struct MHD_Connection *c)
{
    if (strcmp(r->method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(r->method, MHD_HTTP_METHOD_HEAD) != 0) {
        return http_send_405(r, c, "GET, HEAD");
    }
    switch (r->route) {
    case HTTP_ROUTE_HEALTHZ:
        return http_healthz(r, c);
    case HTTP_ROUTE_READYZ:
        return http_readyz(r, c);
    default:
        return http_metrics(r, c);
    }
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *c, const char *url,
            const char *method, const char *version, const char *upload,
            size_t *upload_size, void **req_cls)
{
    struct http_req *r = *req_cls;
    enum MHD_Result ret;

    (void)cls;
    (void)url;
    (void)version;
    if (r == NULL) {
        return MHD_NO; /* no memory for the request: drop the connection */
    }
    if (!r->started) {
        /* A response queued on the first call, before MHD knows the
         * request is complete, makes MHD close the connection after it.
         * So only requests with a body (PUT, POST: refused before the
         * body when the headers already say why) start here; the others
         * are answered on the next call and keep their connection. */
        if (!r->deferred && strcmp(method, MHD_HTTP_METHOD_PUT) != 0 &&
            strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
            r->deferred = 1;
            return MHD_YES;
        }
        if (*upload_size > 0) {
            *upload_size = 0; /* a body nobody asked for (GET) */
            return MHD_YES;
        }
        if (http_begin(r, c, method, &ret)) {
            return ret;
        }
    }
    if (r->route == HTTP_ROUTE_KEY || r->route == HTTP_ROUTE_COLLECTION) {
        return http_kv_handle(r, c, upload, upload_size);
    }
    return http_ops_route(r, c);
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
    atomic_init(&fe->quiesced, 0);
    atomic_init(&fe->inflight, 0);
    atomic_init(&fe->ready_until, 0);
    fe->ctr = aligned_alloc(64, sizeof(*fe->ctr) * HTTP_CTR_SLOTS);
    if (fe->ctr == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "out of memory");
        goto fail;
    }
    memset(fe->ctr, 0, sizeof(*fe->ctr) * HTTP_CTR_SLOTS);
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
    unsigned timeout_s = (unsigned)((o->timeout_ms + 999) / 1000);
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;

    fe->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, http_access, fe, MHD_OPTION_LISTEN_SOCKET,
        fe->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, fe->nthreads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)o->max_header_bytes,
        MHD_OPTION_URI_LOG_CALLBACK, http_uri_begin, fe,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, fe,
        MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, fe, MHD_OPTION_END);
    if (fe->daemon == NULL) {
        return kvd_err_set(err, KVD_EIO, "cannot start the HTTP daemon on %s",
                           fe->addr);
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
    if (fe->daemon != NULL &&
        MHD_quiesce_daemon(fe->daemon) != MHD_INVALID_SOCKET) {
        /* The listening socket is ours again; it is closed once the
         * daemon has stopped (a worker may still look at it). */
        atomic_store(&fe->quiesced, 1);
    }
}

static void
http_destroy(kvd_frontend *f)
{
    struct http_fe *fe = (struct http_fe *)f;
    int fd_ours = 1;

    if (fe == NULL) {
        return;
    }
    http_stop(f);
    if (fe->daemon != NULL) {
        int64_t deadline =
            mono_ns() + fe->opts->drain_timeout_ms * INT64_C(1000000);
        long left;
        while ((left = atomic_load(&fe->inflight)) > 0 &&
               mono_ns() < deadline) {
            struct timespec ts = {0, HTTP_DRAIN_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (left > 0) {
            fe->host->log(fe->host, KVD_LOG_WARN,
                          "http: %ld request(s) still running after the "
                          "drain timeout; closing them",
                          left);
        }
        /* Without a successful quiesce the daemon still owns (and
         * closes) the listening socket. */
        fd_ours = atomic_load(&fe->quiesced);
        MHD_stop_daemon(fe->daemon);
        fe->daemon = NULL;
    }
    if (fe->listen_fd >= 0 && fd_ours) {
        close(fe->listen_fd);
    }
    free(fe->ctr);
    free(fe);
}

KVD_EXPORT const struct kvd_frontend_vtable kvd_frontend_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_frontend_vtable),
    .name = "http",
    .version = "1.0.0",
    .description = "REST API for keys, health, readiness and Prometheus "
                   "metrics (libmicrohttpd)",
    .options = http_options,
    .options_size = sizeof(struct http_opts),
    .create = http_create,
    .start = http_start,
    .stop = http_stop,
    .destroy = http_destroy,
};
