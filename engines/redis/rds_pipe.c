/*
 * engines/redis/rds_pipe.c -- auto-pipelining: concurrent requests to one
 * node share a connection and travel in one write.
 *
 * Why: the engine is called synchronously by many frontend threads at
 * once. With one blocking round trip per call on a connection of its
 * own, N calls cost N writes, N reads and N wake-ups on each side, and
 * Redis runs N tiny event-loop passes. Here they cost one write and a few
 * reads per batch, on both sides.
 *
 * Model. Each node has pool_size pipes; a pipe is one connection plus a
 * queue. Requests go to the first pipe unless it is loaded with big
 * requests (rds_pipe_pick); a pipe connects on first use. A caller
 * (rds_pipe_call) formats its request beforehand (one command, or several kept
 * contiguous: GET+PEXPIRETIME, a whole MULTI..EXEC, ASKING+command pairs),
 * appends a waiter to the queue of a pipe and then either waits, or, when no
 * thread leads that pipe, becomes its leader. The leader:
 *   1. connects if the pipe has no connection (rds_node_connect, with its
 *      backoff); a failure fails every queued waiter with that error;
 *   2. takes the queue (at most RDS_PIPE_MAX_BATCH waiters and about
 *      RDS_PIPE_MAX_BYTES), copies the requests into one buffer, in queue
 *      order, with one WAIT at the end when any of them wants one, and
 *      writes it (poll for POLLOUT when the socket is full);
 *   3. polls and reads, parses replies with the connection's hiredis
 *      reader, and hands each to its waiter in order; a waiter is woken
 *      (its own semaphore, posted once mu is released) as soon as its
 *      last reply is in;
 *   4. repeats while its own request is not answered; then gives up
 *      leadership and wakes the first queued waiter, which takes over.
 * The leader does its I/O with mu released, so callers keep queueing the
 * next batch while the current one is on the wire.
 *
 * WAIT (durability = wait:N). One WAIT after the last write of a batch
 * covers every write in it: WAIT waits until the replicas have the
 * master's replication offset as of the WAIT, which includes every
 * command before it on the connection. Its answer goes to every waiter of
 * the batch that asked for one. Reads of later batches on that pipe wait
 * behind it (Redis blocks the connection during WAIT).
 *
 * Deadlines. Every waiter has its own (its request's command_timeout_ms).
 * The leader polls only until the earliest deadline of the waiters whose
 * replies are still missing. A waiter whose deadline passes:
 *   - while still queued (never sent): leaves the queue; nothing else;
 *   - after its request was sent: the replies on the connection would be
 *     out of step, so it leaves and sets reset. The leader, on its next
 *     look at the pipe (under mu, before handing over any further reply),
 *     sees reset, drops the connection, frees what it read and fails every
 *     remaining in-flight waiter with KVD_ETIMEDOUT ("connection dropped");
 *     rds_exec resends those on a new connection while their time lasts.
 *     Replies are only ever handed over under mu with reset clear, in
 *     send order, so no caller can receive another's reply.
 * A leader whose poll runs out of time does the same itself: waiters past
 * their deadline get KVD_ETIMEDOUT "no reply within", the others
 * KVD_ETIMEDOUT "connection dropped"; both are resent by rds_exec while
 * their deadline allows.
 *
 * Locking: a pipe's mu guards its queue, batch, reset, leading and ctx
 * (the pointer); it is never held across I/O nor together with another
 * lock. A waiter lives on its caller's stack: the leader touches it only
 * under mu, and only while it is in the queue or in batch[], which the
 * waiter leaves (under mu) before returning.
 */
#include "rds.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RDS_PIPE_MAX_BATCH   256          /* waiters in one write */
#define RDS_PIPE_MAX_BYTES   (256 * 1024) /* then stop adding waiters */
#define RDS_PIPE_LEAD_ROUNDS 1            /* see rds_pipe_lead */
#define RDS_PIPE_SPILL_BYTES (64 * 1024)  /* see rds_pipe_pick */
#define RDS_PIPE_READ_BYTES  (16 * 1024)  /* one read() */
#define RDS_PIPE_PARSED      64           /* replies handed over per lock */

enum rds_wstate {
    RDS_W_QUEUED = 0,
    RDS_W_SENT,
    RDS_W_DONE,
};

struct rds_waiter {
    struct rds_waiter *next; /* in the queue, or in the wake list */
    const struct rds_req *r; /* borrowed: the caller's request */
    bool want_wait;
    int64_t deadline; /* monotonic ms */
    /* under the pipe's mu: */
    enum rds_wstate state;
    int slot;             /* index in batch[] while sent */
    int got;              /* replies handed over so far */
    redisReply **replies; /* the caller's, r->ncmds */
    struct rds_wait_res *wres;
    int rc;
    char *why;
    size_t whylen;
    unsigned posts; /* sem_posts promised to it (done under mu) */
    sem_t sem;      /* woken: done, or maybe the lead is free */
};

int
rds_pipes_init(kvd_engine *db, struct rds_node *n)
{
    n->pipes = calloc((size_t)db->pool_size, sizeof(*n->pipes));
    if (n->pipes == NULL) {
        return KVD_ENOMEM;
    }
    for (int i = 0; i < db->pool_size; i++) {
        struct rds_pipe *p = &n->pipes[i];

        p->batch = calloc(RDS_PIPE_MAX_BATCH, sizeof(*p->batch));
        if (p->batch == NULL) {
            rds_pipes_free(n);
            return KVD_ENOMEM;
        }
        p->node = n;
        pthread_mutex_init(&p->mu, NULL);
        n->npipes = i + 1;
    }
    return 0;
}

void
rds_pipes_free(struct rds_node *n)
{
    for (int i = 0; i < n->npipes; i++) {
        struct rds_pipe *p = &n->pipes[i];

        redisFree(p->ctx);
        free(p->batch);
        free(p->out);
        pthread_mutex_destroy(&p->mu);
    }
    free(n->pipes);
    n->pipes = NULL;
    n->npipes = 0;
}

/* ------------------------------------------------------------ waiters */

/*
 * Waking waiters. A waiter sleeps on its own semaphore. A waiter that is
 * done is posted only after the pipe's mu is released (rds_pipe_unlock),
 * so it does not wake up only to block on mu held by its waker. A waiter
 * that wakes for its own deadline and finds itself done may not return
 * before every post promised to it (posts, counted under mu) has landed:
 * its semaphore lives on its stack.
 */

/* Under mu: w's request is over; its caller is posted at the unlock.
 * Done waiters are out of the queue and out of batch[]. */
static void
rds_waiter_finish(struct rds_pipe *p, struct rds_waiter *w, int rc)
{
    w->rc = rc;
    w->state = RDS_W_DONE;
    w->posts++;
    w->next = p->wake;
    p->wake = w;
}

/* Under mu: wake a queued waiter now (it may take the lead); it cannot
 * leave while we hold mu. */
static void
rds_waiter_nudge(struct rds_waiter *w)
{
    w->posts++;
    sem_post(&w->sem);
}

static void
rds_pipe_unlock(struct rds_pipe *p)
{
    struct rds_waiter *w = p->wake;

    p->wake = NULL;
    pthread_mutex_unlock(&p->mu);
    while (w != NULL) {
        struct rds_waiter *next = w->next; /* w may go once posted */

        sem_post(&w->sem);
        w = next;
    }
}

static void
rds_waiter_fail(struct rds_pipe *p, struct rds_waiter *w, int rc,
                const char *why)
{
    snprintf(w->why, w->whylen, "%s", why);
    rds_replies_free(w->replies, w->got);
    w->got = 0;
    rds_waiter_finish(p, w, rc);
}

static void
rds_queue_push(struct rds_pipe *p, struct rds_waiter *w)
{
    w->next = NULL;
    if (p->tail != NULL) {
        p->tail->next = w;
    } else {
        p->head = w;
    }
    p->tail = w;
}

static struct rds_waiter *
rds_queue_pop(struct rds_pipe *p)
{
    struct rds_waiter *w = p->head;

    p->head = w->next;
    if (p->head == NULL) {
        p->tail = NULL;
    }
    w->next = NULL;
    return w;
}

static void
rds_queue_unlink(struct rds_pipe *p, struct rds_waiter *w)
{
    struct rds_waiter *prev = NULL;

    for (struct rds_waiter *q = p->head; q != NULL; prev = q, q = q->next) {
        if (q != w) {
            continue;
        }
        if (prev != NULL) {
            prev->next = w->next;
        } else {
            p->head = w->next;
        }
        if (p->tail == w) {
            p->tail = prev;
        }
        w->next = NULL;
        return;
    }
}

/* Under mu, by w's own thread: w's deadline passed before its replies
 * came. No post: w's thread is the one running. */
static void
rds_waiter_leave(kvd_engine *db, struct rds_pipe *p, struct rds_waiter *w)
{
    if (w->state == RDS_W_QUEUED) {
        rds_queue_unlink(p, w);
        snprintf(w->why, w->whylen,
                 "%s: no reply within %lld ms (the request was queued "
                 "behind others and never sent)",
                 p->node->name, (long long)db->cmd_timeout_ms);
        if (!p->leading && p->head != NULL) {
            /* it may have been handed the lead: pass it on */
            rds_waiter_nudge(p->head);
        }
    } else {
        /* sent: the connection's replies are now out of step with the
         * waiters; the leader drops it before handing over any more */
        p->batch[w->slot] = NULL;
        p->reset = true;
        snprintf(w->why, w->whylen, "%s: no reply within %lld ms",
                 p->node->name, (long long)db->cmd_timeout_ms);
    }
    atomic_fetch_add_explicit(&db->c.timeouts, 1, memory_order_relaxed);
    rds_replies_free(w->replies, w->got);
    w->got = 0;
    w->rc = KVD_ETIMEDOUT;
    w->state = RDS_W_DONE;
}

/* ----------------------------------------------------------- the leader */

/* Under mu: connect the pipe; on failure fail every queued waiter. */
static bool
rds_pipe_open(kvd_engine *db, struct rds_pipe *p)
{
    char why[RDS_ERRMSG_BYTES];
    redisContext *ctx = NULL;
    int64_t dl = p->head->deadline;
    int rc;

    for (struct rds_waiter *w = p->head; w != NULL; w = w->next) {
        dl = w->deadline < dl ? w->deadline : dl;
    }
    rds_pipe_unlock(p);
    rc = rds_node_connect(db, p->node, dl, &ctx, why, sizeof(why));
    pthread_mutex_lock(&p->mu);
    if (rc == 0) {
        p->ctx = ctx;
        return true;
    }
    while (p->head != NULL) {
        rds_waiter_fail(p, rds_queue_pop(p), rc, why);
    }
    return false;
}

/* Under mu: move queued waiters into batch[] and their requests (then a
 * WAIT if any wants one) into out. *len: bytes to write. */
static int
rds_pipe_take(kvd_engine *db, struct rds_pipe *p, size_t *len, bool *wait)
{
    size_t need = 0;
    size_t off = 0;
    bool ww = false;
    int nb = 0;

    for (struct rds_waiter *w = p->head; w != NULL && nb < RDS_PIPE_MAX_BATCH;
         w = w->next) {
        if (nb > 0 && need + w->r->buf.len > RDS_PIPE_MAX_BYTES) {
            break;
        }
        need += w->r->buf.len;
        ww = ww || w->want_wait;
        nb++;
    }
    if (ww) {
        need += db->wait_cmd.buf.len;
    }
    if (need > p->out_cap) {
        char *o = realloc(p->out, need);

        if (o == NULL) {
            return KVD_ENOMEM;
        }
        p->out = o;
        p->out_cap = need;
    }
    for (int i = 0; i < nb; i++) {
        struct rds_waiter *w = rds_queue_pop(p);

        memcpy(p->out + off, w->r->buf.p, w->r->buf.len);
        off += w->r->buf.len;
        w->state = RDS_W_SENT;
        w->slot = i;
        p->batch[i] = w;
    }
    if (ww) {
        memcpy(p->out + off, db->wait_cmd.buf.p, db->wait_cmd.buf.len);
        off += db->wait_cmd.buf.len;
    }
    p->nbatch = nb;
    *len = off;
    *wait = ww;
    atomic_fetch_add_explicit(&db->c.flushes, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&db->c.piped, (uint64_t)nb, memory_order_relaxed);
    return 0;
}

/* Wait until fd is ready for ev or deadline: 0, or KVD_ETIMEDOUT or
 * KVD_EUNAVAIL (why set). */
static int
rds_pipe_poll(const struct rds_pipe *p, int fd, short ev, int64_t deadline,
              char *why, size_t whylen)
{
    struct pollfd pfd = {.fd = fd, .events = ev};

    for (;;) {
        int64_t left = deadline - rds_mono_ms();
        int n;

        if (left <= 0) {
            snprintf(why, whylen, "%s: no reply in time", p->node->name);
            return KVD_ETIMEDOUT;
        }
        n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0) {
            return 0; /* POLLERR and POLLHUP: the read or write says why */
        }
        if (n < 0 && errno != EINTR) {
            snprintf(why, whylen, "%s: poll: %s", p->node->name,
                     strerror(errno));
            return KVD_EIO;
        }
    }
}

static int
rds_pipe_write(const struct rds_pipe *p, int fd, const char *buf, size_t len,
               int64_t deadline, char *why, size_t whylen)
{
    size_t off = 0;

    while (off < len) {
        /* MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE */
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        int rc;

        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = rds_pipe_poll(p, fd, POLLOUT, deadline, why, whylen);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        snprintf(why, whylen, "%s: %s", p->node->name,
                 n < 0 ? strerror(errno) : "connection lost");
        return KVD_EUNAVAIL;
    }
    return 0;
}

/* Parse what the reader holds into parsed[] (up to RDS_PIPE_PARSED);
 * when that is nothing, poll and read once more, until deadline. */
static int
rds_pipe_read(const struct rds_pipe *p, redisContext *ctx, redisReply **parsed,
              int *nparsed, int64_t deadline, char *why, size_t whylen)
{
    char buf[RDS_PIPE_READ_BYTES];

    for (;;) {
        ssize_t n;
        int rc;

        while (*nparsed < RDS_PIPE_PARSED) {
            void *rep = NULL;

            if (redisReaderGetReply(ctx->reader, &rep) != REDIS_OK) {
                snprintf(why, whylen, "%s: protocol error: %.80s",
                         p->node->name, ctx->reader->errstr);
                return KVD_EPROTO;
            }
            if (rep == NULL) {
                break;
            }
            parsed[(*nparsed)++] = rep;
        }
        if (*nparsed > 0) {
            return 0;
        }
        rc = rds_pipe_poll(p, ctx->fd, POLLIN, deadline, why, whylen);
        if (rc != 0) {
            return rc;
        }
        n = recv(ctx->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (redisReaderFeed(ctx->reader, buf, (size_t)n) != REDIS_OK) {
                snprintf(why, whylen, "%s: out of memory", p->node->name);
                return KVD_ENOMEM;
            }
            continue;
        }
        if (n < 0 &&
            (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        }
        snprintf(why, whylen, "%s: %s", p->node->name,
                 n == 0 ? "connection closed by the server" : strerror(errno));
        return KVD_EUNAVAIL;
    }
}

/* Under mu: the earliest deadline of the sent waiters still waiting. */
static int64_t
rds_pipe_deadline(const struct rds_pipe *p)
{
    int64_t dl = INT64_MAX;

    for (int i = 0; i < p->nbatch; i++) {
        if (p->batch[i] != NULL && p->batch[i]->deadline < dl) {
            dl = p->batch[i]->deadline;
        }
    }
    return dl;
}

/* Under mu: hand the WAIT reply to every waiter that asked for it. */
static void
rds_pipe_wait_reply(struct rds_pipe *p, const redisReply *rep)
{
    for (int i = 0; i < p->nbatch; i++) {
        struct rds_waiter *w = p->batch[i];

        if (w == NULL || !w->want_wait) {
            continue;
        }
        if (rep->type == REDIS_REPLY_INTEGER) {
            w->wres->acks = rep->integer;
        } else {
            w->wres->acks = -1;
            snprintf(w->wres->err, sizeof(w->wres->err), "%s",
                     rep->type == REDIS_REPLY_ERROR ? rep->str
                                                    : "unexpected reply");
        }
        p->batch[i] = NULL;
        rds_waiter_finish(p, w, 0);
    }
}

/* Under mu: the connection is dropped; every sent waiter still waiting
 * fails with rc (KVD_ETIMEDOUT: by how its deadline stands). */
static void
rds_pipe_abort(kvd_engine *db, struct rds_pipe *p, int rc, const char *why)
{
    char msg[RDS_ERRMSG_BYTES];
    int64_t now = rds_mono_ms();

    redisFree(p->ctx);
    p->ctx = NULL;
    if (rc == KVD_ETIMEDOUT) {
        atomic_fetch_add_explicit(&db->c.timeouts, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&db->c.conn_errors, 1, memory_order_relaxed);
    }
    for (int i = 0; i < p->nbatch; i++) {
        struct rds_waiter *w = p->batch[i];

        if (w == NULL) {
            continue;
        }
        p->batch[i] = NULL;
        if (rc != KVD_ETIMEDOUT) {
            rds_waiter_fail(p, w, rc, why);
        } else if (now >= w->deadline) {
            snprintf(msg, sizeof(msg), "%s: no reply within %lld ms",
                     p->node->name, (long long)db->cmd_timeout_ms);
            rds_waiter_fail(p, w, KVD_ETIMEDOUT, msg);
        } else {
            /* not its own deadline: rds_exec resends it */
            snprintf(msg, sizeof(msg),
                     "%s: connection dropped: another request on it got "
                     "no reply in time",
                     p->node->name);
            rds_waiter_fail(p, w, KVD_ETIMEDOUT, msg);
        }
    }
    p->nbatch = 0;
    p->reset = false;
}

/* Under mu, with a batch taken: write it, read and hand over its replies
 * (mu released for the I/O). Returns with every batch waiter finished. */
static void
rds_pipe_flush(kvd_engine *db, struct rds_pipe *p, size_t len, bool wait)
{
    redisContext *ctx = p->ctx;
    redisReply *parsed[RDS_PIPE_PARSED];
    char why[RDS_ERRMSG_BYTES];
    int64_t dl = rds_pipe_deadline(p);
    int nparsed = 0;
    int bi = 0; /* batch[] index the next reply belongs to */
    int rc;

    rds_pipe_unlock(p);
    rc = rds_pipe_write(p, ctx->fd, p->out, len, dl, why, sizeof(why));
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int i;

        if (rc == 0 && p->reset) {
            snprintf(why, sizeof(why), "%s: a request timed out",
                     p->node->name);
            rc = KVD_ETIMEDOUT;
        }
        if (rc != 0) {
            break;
        }
        for (i = 0; i < nparsed && rc == 0; i++) {
            struct rds_waiter *w;

            if (bi < p->nbatch) {
                /* not reset: every waiter not yet answered is there */
                w = p->batch[bi];
                w->replies[w->got++] = parsed[i];
                parsed[i] = NULL;
                if (w->got == w->r->ncmds) {
                    bi++;
                    if (!w->want_wait) {
                        p->batch[w->slot] = NULL;
                        rds_waiter_finish(p, w, 0);
                    }
                }
            } else if (wait) {
                rds_pipe_wait_reply(p, parsed[i]);
                wait = false;
            } else {
                snprintf(why, sizeof(why), "%s: a reply nobody asked for",
                         p->node->name);
                rc = KVD_EPROTO;
            }
        }
        /* what was not handed over: WAIT's reply (copied out), or
         * anything after an error */
        for (i = 0; i < nparsed; i++) {
            if (parsed[i] != NULL) {
                freeReplyObject(parsed[i]);
            }
        }
        nparsed = 0;
        if (rc != 0 || (bi == p->nbatch && !wait)) {
            break;
        }
        dl = rds_pipe_deadline(p);
        rds_pipe_unlock(p);
        rc = rds_pipe_read(p, ctx, parsed, &nparsed, dl, why, sizeof(why));
        pthread_mutex_lock(&p->mu);
    }
    for (int i = 0; i < nparsed; i++) {
        freeReplyObject(parsed[i]);
    }
    if (rc != 0) {
        rds_pipe_abort(db, p, rc, why);
    }
    p->nbatch = 0;
    if (p->out_cap > 4 * RDS_PIPE_MAX_BYTES) {
        /* a huge value went out: do not keep its buffer */
        free(p->out);
        p->out = NULL;
        p->out_cap = 0;
    }
}

/* Under mu, as leader: send batches until self is answered and then,
 * for at most RDS_PIPE_LEAD_ROUNDS in all, while more is queued; then
 * hand the lead to the first queued waiter. One round (hand over as soon
 * as our own reply is in) measured best: a leader that keeps leading
 * delays its own caller, and the next leader is woken anyway to get its
 * reply. */
static void
rds_pipe_lead(kvd_engine *db, struct rds_pipe *p, struct rds_waiter *self)
{
    int rounds = 0;

    while (p->head != NULL &&
           (self->state != RDS_W_DONE || rounds < RDS_PIPE_LEAD_ROUNDS)) {
        size_t len = 0;
        bool wait = false;

        rounds++;
        if (self->state == RDS_W_QUEUED && rds_mono_ms() >= self->deadline) {
            rds_waiter_leave(db, p, self);
            continue;
        }
        if (p->ctx == NULL && !rds_pipe_open(db, p)) {
            continue;
        }
        if (rds_pipe_take(db, p, &len, &wait) != 0) {
            char why[RDS_ERRMSG_BYTES];

            snprintf(why, sizeof(why), "%s: out of memory", p->node->name);
            rds_waiter_fail(p, rds_queue_pop(p), KVD_ENOMEM, why);
            continue;
        }
        rds_pipe_flush(db, p, len, wait);
    }
    p->leading = false;
    if (p->head != NULL) {
        rds_waiter_nudge(p->head);
    }
}

/* ------------------------------------------------------------ callers */

/*
 * The first pipe with less than RDS_PIPE_SPILL_BYTES queued or in flight,
 * else the least loaded. Small requests thus all share the node's first
 * connection, where they batch best (measured on 2 CPUs: spreading them
 * over two connections per node cost a third of the throughput, as each
 * batch shrinks and each connection needs a leader woken); the others
 * carry traffic only while a big value or a long scan step occupies it.
 */
static struct rds_pipe *
rds_pipe_pick(struct rds_node *n)
{
    struct rds_pipe *best = &n->pipes[0];
    size_t best_load = SIZE_MAX;

    for (int i = 0; i < n->npipes; i++) {
        struct rds_pipe *p = &n->pipes[i];
        size_t l = atomic_load_explicit(&p->load, memory_order_relaxed);

        if (l < RDS_PIPE_SPILL_BYTES) {
            return p;
        }
        if (l < best_load) {
            best = p;
            best_load = l;
        }
    }
    return best;
}

int
rds_pipe_call(kvd_engine *db, struct rds_node *n, const struct rds_req *r,
              bool want_wait, int64_t deadline, redisReply **replies,
              struct rds_wait_res *wres, char *why, size_t whylen)
{
    struct rds_pipe *p = rds_pipe_pick(n);
    struct rds_waiter w = {
        .r = r,
        .want_wait = want_wait,
        .deadline = deadline,
        .replies = replies,
        .wres = wres,
        .why = why,
        .whylen = whylen,
    };
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000),
                          .tv_nsec = (long)(deadline % 1000) * 1000000L};
    unsigned taken = 0;
    unsigned posts;

    assert(r->ncmds > 0 && (!want_wait || wres != NULL));
    if (rds_mono_ms() >= deadline) {
        snprintf(why, whylen, "%s: no time left", n->name);
        return KVD_ETIMEDOUT;
    }
    sem_init(&w.sem, 0, 0);
    atomic_fetch_add_explicit(&p->load, r->buf.len, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    rds_queue_push(p, &w);
    while (w.state != RDS_W_DONE) {
        if (!p->leading) {
            p->leading = true;
            rds_pipe_lead(db, p, &w);
            continue;
        }
        rds_pipe_unlock(p);
        /* deadlines are CLOCK_MONOTONIC milliseconds (rds_mono_ms) */
        if (sem_clockwait(&w.sem, CLOCK_MONOTONIC, &ts) == 0) {
            taken++;
        }
        pthread_mutex_lock(&p->mu);
        if (w.state != RDS_W_DONE && rds_mono_ms() >= deadline) {
            rds_waiter_leave(db, p, &w);
        }
    }
    posts = w.posts; /* final: nobody promises a done waiter more */
    rds_pipe_unlock(p);
    atomic_fetch_sub_explicit(&p->load, r->buf.len, memory_order_relaxed);
    /* posts promised but not taken yet: wait for them to land, as the
     * semaphore lives on this stack */
    for (; taken < posts; taken++) {
        while (sem_wait(&w.sem) != 0) {
        }
    }
    sem_destroy(&w.sem);
    return w.rc;
}
