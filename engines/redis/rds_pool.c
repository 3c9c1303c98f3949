/*
 * engines/redis/rds_pool.c -- Redis nodes and connecting to them.
 *
 * A node is one redis-server ("host:port") the engine has heard of: a
 * seed, or a master or replica named by CLUSTER SLOTS or by a redirect.
 * Nodes are created on first mention and live until close, so any thread
 * may keep a node pointer without a reference count. Each node has
 * pool_size pipes, shared pipelined connections (rds_pipe.c); this file
 * opens the connections behind them.
 *
 * A connection is opened blocking with connect_timeout_ms (bounded by the
 * request's deadline), gets TCP_NODELAY and keepalive, and sends AUTH and
 * READONLY (when configured) before any request; rds_pipe.c then switches
 * it to non-blocking and does its own I/O on it.
 *
 * Reconnect backoff: when a connect fails, the node is "down" for a
 * backoff that doubles from RDS_BACKOFF_MIN_MS to RDS_BACKOFF_MAX_MS;
 * while down, a connect fails at once with KVD_EUNAVAIL instead of making
 * every request wait for a connect timeout. The first connect after the
 * backoff decides: success resets it.
 *
 * Locking: a node's mu guards its backoff fields (see rds.h); it is never
 * held across a connect or any other I/O.
 */
#include "rds.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define RDS_BACKOFF_MIN_MS 20
#define RDS_BACKOFF_MAX_MS 1000
#define RDS_WARN_EVERY_MS  1000

void
rds_sleep_ms(int64_t ms)
{
    struct timespec ts;

    if (ms <= 0) {
        return;
    }
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Hot paths have no error buffer: say what failed in the log, at most
 * once a second, so a dead cluster does not flood it. */
void
rds_warn(kvd_engine *db, const char *fmt, ...)
{
    int64_t now = rds_mono_ms();
    int64_t last =
        atomic_load_explicit(&db->last_warn_ms, memory_order_relaxed);
    char msg[RDS_ERRMSG_BYTES + 64];
    va_list ap;

    if (now - last < RDS_WARN_EVERY_MS ||
        !atomic_compare_exchange_strong(&db->last_warn_ms, &last, now)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    db->host->log(db->host, KVD_LOG_WARN, "redis: %s", msg);
}

/* "host:port" or "[v6addr]:port". */
int
rds_parse_hostport(const char *s, size_t n, char *host, size_t hostlen,
                   int *port)
{
    const char *colon = NULL;
    const char *h = s;
    size_t hl;
    long p = 0;

    for (size_t i = n; i-- > 0;) {
        if (s[i] == ':') {
            colon = s + i;
            break;
        }
    }
    if (colon == NULL || colon == s || (size_t)(colon - s) + 1 >= n) {
        return KVD_EINVAL;
    }
    hl = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']') {
            return KVD_EINVAL;
        }
        h++;
        hl -= 2;
    }
    for (const char *c = colon + 1; c < s + n; c++) {
        if (*c < '0' || *c > '9' || p > 65535) {
            return KVD_EINVAL;
        }
        p = p * 10 + (*c - '0');
    }
    if (p < 1 || p > 65535 || hl + 1 > hostlen) {
        return KVD_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static struct rds_node *
rds_node_create(kvd_engine *db, const char *host, int port)
{
    struct rds_node *n = calloc(1, sizeof(*n));

    if (n == NULL) {
        return NULL;
    }
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    snprintf(n->name, sizeof(n->name),
             strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
    pthread_mutex_init(&n->mu, NULL);
    n->backoff_ms = RDS_BACKOFF_MIN_MS;
    if (rds_pipes_init(db, n) != 0) {
        pthread_mutex_destroy(&n->mu);
        free(n);
        return NULL;
    }
    return n;
}

struct rds_node *
rds_node_get(kvd_engine *db, const char *host, int port)
{
    struct rds_node *n = NULL;

    pthread_mutex_lock(&db->nodes_mu);
    for (int i = 0; i < db->nnodes; i++) {
        if (db->nodes[i]->port == port &&
            strcmp(db->nodes[i]->host, host) == 0) {
            n = db->nodes[i];
            goto out;
        }
    }
    if (db->nnodes < RDS_MAX_NODES) {
        n = rds_node_create(db, host, port);
        if (n != NULL) {
            db->nodes[db->nnodes++] = n;
        }
    }
out:
    pthread_mutex_unlock(&db->nodes_mu);
    return n;
}

void
rds_nodes_free(kvd_engine *db)
{
    for (int i = 0; i < db->nnodes; i++) {
        struct rds_node *n = db->nodes[i];

        rds_pipes_free(n);
        pthread_mutex_destroy(&n->mu);
        free(n);
        db->nodes[i] = NULL;
    }
    db->nnodes = 0;
}

static struct timeval
rds_tv(int64_t ms)
{
    struct timeval tv;

    if (ms < 1) {
        ms = 1;
    }
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

/* The first commands on a new connection: AUTH, READONLY, sent and read
 * with hiredis' blocking calls (the socket timeout bounds each read). */
static int
rds_conn_hello(kvd_engine *db, struct rds_node *n, redisContext *ctx, char *why,
               size_t whylen)
{
    const struct rds_opts *o = db->o;
    bool auth = o->password != NULL && o->password[0] != '\0';
    struct rds_req r;
    int rc = 0;

    rds_req_init(&r);
    if (auth) {
        if (o->user != NULL && o->user[0] != '\0') {
            rc = rds_cmd_words(&r, "AUTH", o->user, o->password, NULL);
        } else {
            rc = rds_cmd_words(&r, "AUTH", o->password, NULL);
        }
    }
    if (rc == 0 && db->cluster && o->read_from_replicas) {
        /* lets a replica answer reads; a master ignores it */
        rc = rds_cmd_words(&r, "READONLY", NULL);
    }
    if (rc != 0 || r.ncmds == 0) {
        goto out;
    }
    if (redisAppendFormattedCommand(ctx, (const char *)r.buf.p, r.buf.len) !=
        REDIS_OK) {
        snprintf(why, whylen, "%s: out of memory", n->name);
        rc = KVD_ENOMEM;
        goto out;
    }
    for (int i = 0; i < r.ncmds; i++) {
        redisReply *rep = NULL;
        void *v = NULL;

        errno = 0;
        if (redisGetReply(ctx, &v) != REDIS_OK || v == NULL) {
            int saved = errno;

            if (saved == EAGAIN || saved == EWOULDBLOCK) {
                snprintf(why, whylen, "%s: connected, but no reply in time",
                         n->name);
                rc = KVD_ETIMEDOUT;
            } else {
                snprintf(why, whylen, "%s: %s", n->name,
                         ctx->errstr[0] != '\0' ? ctx->errstr
                                                : "connection lost");
                rc = KVD_EUNAVAIL;
            }
            goto out;
        }
        rep = v;
        if (rep->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(why, whylen, "%s: %s: %s", n->name,
                     i == 0 && auth ? "AUTH" : "READONLY", rep->str);
            rc = KVD_ECONFIG;
        }
        freeReplyObject(rep);
    }
out:
    rds_req_release(&r);
    return rc;
}

static int
rds_connect(kvd_engine *db, struct rds_node *n, int64_t deadline,
            redisContext **out, char *why, size_t whylen)
{
    int64_t left = deadline - rds_mono_ms();
    int64_t ct = db->conn_timeout_ms < left ? db->conn_timeout_ms : left;
    redisContext *ctx;
    int one = 1;
    int fl;
    int rc;

    ctx = redisConnectWithTimeout(n->host, n->port, rds_tv(ct));
    if (ctx == NULL) {
        snprintf(why, whylen, "%s: out of memory", n->name);
        return KVD_ENOMEM;
    }
    if (ctx->err != 0) {
        snprintf(why, whylen, "%s: %s", n->name, ctx->errstr);
        atomic_fetch_add_explicit(&db->c.conn_errors, 1, memory_order_relaxed);
        redisFree(ctx);
        return KVD_EUNAVAIL;
    }
    /* small requests: never wait for Nagle */
    setsockopt(ctx->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    redisEnableKeepAlive(ctx);
    if (redisSetTimeout(ctx, rds_tv(deadline - rds_mono_ms())) != REDIS_OK) {
        snprintf(why, whylen, "%s: setting the socket timeout failed", n->name);
        redisFree(ctx);
        return KVD_EIO;
    }
    rc = rds_conn_hello(db, n, ctx, why, whylen);
    /* from here on the pipe polls with its own deadlines */
    fl = fcntl(ctx->fd, F_GETFL);
    if (rc == 0 && (fl < 0 || fcntl(ctx->fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
        snprintf(why, whylen, "%s: fcntl(O_NONBLOCK): %s", n->name,
                 strerror(errno));
        rc = KVD_EIO;
    }
    if (rc != 0) {
        redisFree(ctx);
        return rc;
    }
    atomic_fetch_add_explicit(&db->c.connects, 1, memory_order_relaxed);
    *out = ctx;
    return 0;
}

int
rds_node_connect(kvd_engine *db, struct rds_node *n, int64_t deadline,
                 redisContext **out, char *why, size_t whylen)
{
    int64_t now = rds_mono_ms();
    int rc;

    if (deadline - now < 1) {
        /* the request's time is up, not the node's fault: no backoff */
        snprintf(why, whylen, "%s: no time left to connect", n->name);
        return KVD_ETIMEDOUT;
    }
    pthread_mutex_lock(&n->mu);
    if (now < n->down_until_ms) {
        snprintf(why, whylen, "%s: %s (next reconnect in %lld ms)", n->name,
                 n->last_err, (long long)(n->down_until_ms - now));
        pthread_mutex_unlock(&n->mu);
        return KVD_EUNAVAIL;
    }
    pthread_mutex_unlock(&n->mu);

    rc = rds_connect(db, n, deadline, out, why, whylen);

    pthread_mutex_lock(&n->mu);
    if (rc == KVD_EUNAVAIL || rc == KVD_ETIMEDOUT) {
        n->down_until_ms = rds_mono_ms() + n->backoff_ms;
        n->backoff_ms = n->backoff_ms * 2 > RDS_BACKOFF_MAX_MS
                            ? RDS_BACKOFF_MAX_MS
                            : n->backoff_ms * 2;
        snprintf(n->last_err, sizeof(n->last_err), "%s",
                 strncmp(why, n->name, strlen(n->name)) == 0
                     ? why + strlen(n->name) + 2
                     : why);
    } else if (rc == 0) {
        n->backoff_ms = RDS_BACKOFF_MIN_MS;
        n->down_until_ms = 0;
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}
