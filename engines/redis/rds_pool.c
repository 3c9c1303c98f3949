/*
 * engines/redis/rds_pool.c -- Redis nodes and their connection pools.
 *
 * A node is one redis-server ("host:port") the engine has heard of: a
 * seed, or a master or replica named by CLUSTER SLOTS or by a redirect.
 * Nodes are created on first mention and live until close, so any thread
 * may keep a node pointer without a reference count.
 *
 * Each node has a pool of at most pool_size blocking hiredis connections.
 * A thread acquires one, does one pipelined round trip, and releases it:
 * connections are reused across requests and threads, never shared while
 * in use. A connection that saw any I/O or protocol error is closed (its
 * reply stream is out of step) and a new one is opened on demand.
 *
 * Reconnect backoff: when a connect fails, the node is "down" for a
 * backoff that doubles from RDS_BACKOFF_MIN_MS to RDS_BACKOFF_MAX_MS;
 * while down, acquire fails at once with KVD_EUNAVAIL instead of making
 * every request wait for a connect timeout. The first connect after the
 * backoff decides: success resets it.
 *
 * Timeouts: a connect is bounded by connect_timeout_ms (and the request's
 * deadline), each socket read and write by the time the request has left
 * (SO_RCVTIMEO/SO_SNDTIMEO through redisSetTimeout, changed only when a
 * retry has less than command_timeout_ms left), so no call blocks past its
 * deadline by more than one scheduling delay.
 *
 * Locking: a node's mu guards its pool fields (see rds.h); it is never
 * held across a connect or any other I/O.
 */
#include "rds.h"

#include <errno.h>
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

int64_t
rds_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
    pthread_condattr_t ca;

    if (n == NULL) {
        return NULL;
    }
    n->idle = calloc((size_t)db->pool_size, sizeof(*n->idle));
    if (n->idle == NULL) {
        free(n);
        return NULL;
    }
    snprintf(n->host, sizeof(n->host), "%s", host);
    n->port = port;
    snprintf(n->name, sizeof(n->name),
             strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
    pthread_mutex_init(&n->mu, NULL);
    /* deadlines are monotonic, so is the pool's wait */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    n->backoff_ms = RDS_BACKOFF_MIN_MS;
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

static void
rds_conn_free(struct rds_conn *c)
{
    if (c != NULL) {
        redisFree(c->ctx);
        free(c);
    }
}

void
rds_nodes_free(kvd_engine *db)
{
    for (int i = 0; i < db->nnodes; i++) {
        struct rds_node *n = db->nodes[i];

        for (int j = 0; j < n->nidle; j++) {
            rds_conn_free(n->idle[j]);
        }
        pthread_mutex_destroy(&n->mu);
        pthread_cond_destroy(&n->cv);
        free(n->idle);
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

/* Map a failed hiredis context to a status and a message naming node. */
static int
rds_ctx_error(kvd_engine *db, struct rds_conn *c, int saved_errno, char *why,
              size_t whylen)
{
    redisContext *ctx = c->ctx;
    int rc;

    switch (ctx->err) {
    case REDIS_ERR_IO:
        if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK ||
            saved_errno == ETIMEDOUT) {
            atomic_fetch_add_explicit(&db->c.timeouts, 1, memory_order_relaxed);
            snprintf(why, whylen, "%s: no reply within %lld ms", c->node->name,
                     (long long)c->timeout_ms);
            return KVD_ETIMEDOUT;
        }
        rc = KVD_EUNAVAIL;
        break;
    case REDIS_ERR_EOF:
        rc = KVD_EUNAVAIL;
        break;
    case REDIS_ERR_PROTOCOL:
        rc = KVD_EPROTO;
        break;
    case REDIS_ERR_OOM:
        rc = KVD_ENOMEM;
        break;
    default:
        rc = KVD_EIO;
        break;
    }
    atomic_fetch_add_explicit(&db->c.conn_errors, 1, memory_order_relaxed);
    snprintf(why, whylen, "%s: %s", c->node->name,
             ctx->errstr[0] != '\0' ? ctx->errstr : "connection lost");
    return rc;
}

/* The first commands on a new connection: AUTH, READONLY. */
static int
rds_conn_hello(kvd_engine *db, struct rds_conn *c, char *why, size_t whylen)
{
    const struct rds_opts *o = db->o;
    redisReply *rep[2] = {NULL, NULL};
    struct rds_req r;
    int rc = 0;

    rds_req_init(&r);
    if (o->password != NULL && o->password[0] != '\0') {
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
    rc = rds_conn_roundtrip(db, c, &r, NULL, rep, why, whylen);
    if (rc != 0) {
        goto out;
    }
    for (int i = 0; i < r.ncmds; i++) {
        if (rep[i]->type == REDIS_REPLY_ERROR) {
            snprintf(why, whylen, "%s: %s: %s", c->node->name,
                     i == 0 && o->password != NULL && o->password[0] != '\0'
                         ? "AUTH"
                         : "READONLY",
                     rep[i]->str);
            rc = KVD_ECONFIG;
            break;
        }
    }
    rds_replies_free(rep, r.ncmds);
out:
    rds_req_release(&r);
    return rc;
}

static int
rds_connect(kvd_engine *db, struct rds_node *n, int64_t deadline,
            struct rds_conn **out, char *why, size_t whylen)
{
    int64_t left = deadline - rds_mono_ms();
    int64_t ct = db->conn_timeout_ms < left ? db->conn_timeout_ms : left;
    struct rds_conn *c = calloc(1, sizeof(*c));
    int one = 1;
    int rc;

    if (c == NULL) {
        snprintf(why, whylen, "%s: out of memory", n->name);
        return KVD_ENOMEM;
    }
    c->node = n;
    c->ctx = redisConnectWithTimeout(n->host, n->port, rds_tv(ct));
    if (c->ctx == NULL) {
        free(c);
        snprintf(why, whylen, "%s: out of memory", n->name);
        return KVD_ENOMEM;
    }
    if (c->ctx->err != 0) {
        snprintf(why, whylen, "%s: %s", n->name, c->ctx->errstr);
        atomic_fetch_add_explicit(&db->c.conn_errors, 1, memory_order_relaxed);
        rds_conn_free(c);
        return KVD_EUNAVAIL;
    }
    /* one small request per round trip: never wait for Nagle */
    setsockopt(c->ctx->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    redisEnableKeepAlive(c->ctx);
    c->timeout_ms = db->cmd_timeout_ms;
    if (redisSetTimeout(c->ctx, rds_tv(c->timeout_ms)) != REDIS_OK) {
        snprintf(why, whylen, "%s: setting the socket timeout failed", n->name);
        rds_conn_free(c);
        return KVD_EIO;
    }
    rc = rds_conn_set_deadline(c, deadline);
    if (rc == 0) {
        rc = rds_conn_hello(db, c, why, whylen);
    }
    if (rc != 0) {
        if (rc == KVD_ETIMEDOUT) {
            snprintf(why, whylen, "%s: connected, but no reply in time",
                     n->name);
        }
        rds_conn_free(c);
        return rc;
    }
    atomic_fetch_add_explicit(&db->c.connects, 1, memory_order_relaxed);
    *out = c;
    return 0;
}

int
rds_conn_acquire(kvd_engine *db, struct rds_node *n, int64_t deadline,
                 struct rds_conn **out, char *why, size_t whylen)
{
    struct rds_conn *c = NULL;
    int64_t now;
    int rc;

    pthread_mutex_lock(&n->mu);
    for (;;) {
        if (n->nidle > 0) {
            *out = n->idle[--n->nidle];
            pthread_mutex_unlock(&n->mu);
            return 0;
        }
        if (n->nopen < db->pool_size) {
            break;
        }
        now = rds_mono_ms();
        if (now >= deadline) {
            pthread_mutex_unlock(&n->mu);
            snprintf(why, whylen,
                     "%s: all %d pooled connections stayed busy (raise "
                     "pool_size)",
                     n->name, db->pool_size);
            return KVD_ETIMEDOUT;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)((deadline - now) / 1000);
        ts.tv_nsec += (long)((deadline - now) % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&n->cv, &n->mu, &ts);
    }
    now = rds_mono_ms();
    if (now < n->down_until_ms) {
        snprintf(why, whylen, "%s: %s (next reconnect in %lld ms)", n->name,
                 n->last_err, (long long)(n->down_until_ms - now));
        pthread_mutex_unlock(&n->mu);
        return KVD_EUNAVAIL;
    }
    n->nopen++;
    pthread_mutex_unlock(&n->mu);

    rc = rds_connect(db, n, deadline, &c, why, whylen);

    pthread_mutex_lock(&n->mu);
    if (rc != 0) {
        n->nopen--;
        if (rc == KVD_EUNAVAIL || rc == KVD_ETIMEDOUT) {
            n->down_until_ms = rds_mono_ms() + n->backoff_ms;
            n->backoff_ms = n->backoff_ms * 2 > RDS_BACKOFF_MAX_MS
                                ? RDS_BACKOFF_MAX_MS
                                : n->backoff_ms * 2;
            snprintf(n->last_err, sizeof(n->last_err), "%s",
                     strncmp(why, n->name, strlen(n->name)) == 0
                         ? why + strlen(n->name) + 2
                         : why);
        }
        pthread_cond_signal(&n->cv);
    } else {
        n->backoff_ms = RDS_BACKOFF_MIN_MS;
        n->down_until_ms = 0;
        *out = c;
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

void
rds_conn_release(kvd_engine *db, struct rds_conn *c, bool broken)
{
    struct rds_node *n = c->node;

    if (!broken && c->timeout_ms != db->cmd_timeout_ms) {
        /* a retry shortened it; the next user gets the full timeout */
        c->timeout_ms = db->cmd_timeout_ms;
        broken = redisSetTimeout(c->ctx, rds_tv(c->timeout_ms)) != REDIS_OK;
    }
    pthread_mutex_lock(&n->mu);
    if (broken) {
        n->nopen--;
    } else {
        n->idle[n->nidle++] = c;
    }
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    if (broken) {
        rds_conn_free(c);
    }
}

int
rds_conn_set_deadline(struct rds_conn *c, int64_t deadline)
{
    int64_t left = deadline - rds_mono_ms();

    if (left <= 0) {
        return KVD_ETIMEDOUT;
    }
    if (left < c->timeout_ms) {
        c->timeout_ms = left;
        if (redisSetTimeout(c->ctx, rds_tv(left)) != REDIS_OK) {
            return KVD_EIO;
        }
    }
    return 0;
}

int
rds_conn_roundtrip(kvd_engine *db, struct rds_conn *c, const struct rds_req *r,
                   const struct rds_req *tail, redisReply **replies, char *why,
                   size_t whylen)
{
    int n = r->ncmds + (tail != NULL ? tail->ncmds : 0);
    int i;

    /* both parts go out in one write: hiredis buffers until the read */
    if (redisAppendFormattedCommand(c->ctx, r->buf.p, r->buf.len) != REDIS_OK ||
        (tail != NULL && redisAppendFormattedCommand(
                             c->ctx, tail->buf.p, tail->buf.len) != REDIS_OK)) {
        snprintf(why, whylen, "%s: out of memory", c->node->name);
        return KVD_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        void *rep = NULL;

        errno = 0;
        if (redisGetReply(c->ctx, &rep) != REDIS_OK || rep == NULL) {
            int saved = errno;

            rds_replies_free(replies, i);
            return rds_ctx_error(db, c, saved, why, whylen);
        }
        replies[i] = rep;
    }
    return 0;
}
