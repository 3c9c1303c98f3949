/*
 * engines/redis/rds_pipe.c -- auto-pipelining: concurrent requests to one
 * node share a connection and travel in one write, and one caller can
 * have requests in flight to several nodes at once.
 *
 * Why: the engine is called synchronously by many frontend threads at
 * once. With one blocking round trip per call on a connection of its
 * own, N calls cost N writes, N reads and N wake-ups on each side, and
 * Redis runs N tiny event-loop passes. Here they cost one write and a few
 * reads per batch, on both sides. And a multi() call, whose operations
 * are spread over every master, sends to all of them before it waits for
 * any, so it costs one round trip, not one per node.
 *
 * Model. Each node has pool_size pipes; a pipe is one connection plus a
 * queue. Requests go to the first pipe unless it is loaded with big
 * requests (rds_pipe_pick); a pipe connects on first use. A caller
 * formats its requests beforehand (each one command, or several kept
 * contiguous: GET+PEXPIRETIME, a whole MULTI..EXEC, ASKING+command pairs,
 * the operations of a multi() for one node), appends one waiter per
 * request to the queue of a pipe of its node (rds_pipe_call: one request;
 * rds_pipe_run: several, to several nodes) and then drives them
 * (rds_drive) until every one is answered:
 *   - a waiter whose pipe has no leader makes its caller that pipe's
 *     leader. A caller may lead several pipes at once;
 *   - a leader with nothing in flight on a pipe connects it if needed
 *     (rds_node_connect, with its backoff; a failure fails every queued
 *     waiter with that error), takes the queue (at most
 *     RDS_PIPE_MAX_BATCH waiters and about RDS_PIPE_MAX_BYTES), copies
 *     the requests into one buffer in queue order, with one WAIT at the
 *     end when any of them wants one, and starts writing it at once;
 *     connects come after the writes on connected pipes, so a slow
 *     connect does not hold the others back;
 *   - then it polls every pipe it leads together (writes left over when
 *     a socket was full, replies), parses replies with each connection's
 *     hiredis reader and hands each to its waiter in order; a waiter is
 *     woken as soon as its last reply is in;
 *   - a caller whose own waiters on a pipe are all answered gives up
 *     leading it once the batch in flight there is complete, and wakes
 *     the first queued waiter, whose caller takes over. A caller keeps
 *     leading a pipe only for its own requests, which hands the lead on
 *     quickly (measured best: a leader that keeps leading delays its own
 *     caller, and the next leader is woken anyway to get its reply).
 * A leader does its I/O with mu released, so callers keep queueing the
 * next batch while the current one is on the wire.
 *
 * Waking. Every caller has one waker for all its waiters: a semaphore
 * when it waits on one pipe, an eventfd when it waits on several, so it
 * can poll the pipes it leads and its wake-ups together (a caller
 * offered the lead of one pipe while it reads another must take it at
 * once, or that pipe stalls for a round trip).
 *
 * WAIT (durability = wait:N). One WAIT after the last write of a batch
 * covers every write in it: WAIT waits until the replicas have the
 * master's replication offset as of the WAIT, which includes every
 * command before it on the connection. Its answer goes to every waiter of
 * the batch that asked for one. Reads of later batches on that pipe wait
 * behind it (Redis blocks the connection during WAIT).
 *
 * Deadlines. Every waiter has its own (its request's command_timeout_ms).
 * A leader polls only until the earliest deadline of the waiters whose
 * replies are still missing. A waiter whose deadline passes:
 *   - while still queued (never sent): leaves the queue; nothing else;
 *   - after all its replies came, while only the batch's WAIT is
 *     missing: leaves with its replies and "WAIT: no reply within"
 *     (the connection stays in step: WAIT's reply is the batch's);
 *   - otherwise after its request was sent: the replies on the
 *     connection would be out of step, so it leaves and sets reset. The
 *     leader, on its next look at the pipe (under mu, before handing
 *     over any further reply), sees reset, drops the connection, frees
 *     what it read and fails every remaining in-flight waiter with
 *     KVD_ETIMEDOUT ("connection dropped"); rds_exec resends those on a
 *     new connection while their time lasts. Replies are only ever
 *     handed over under mu with reset clear, in send order, so no caller
 *     can receive another's reply.
 * A leader whose batch runs past its earliest deadline does the same
 * itself: waiters past their deadline get KVD_ETIMEDOUT "no reply
 * within", the others KVD_ETIMEDOUT "connection dropped".
 *
 * Locking: a pipe's mu guards its queue, batch, reset, leading and ctx
 * (the pointer); it is never held across I/O nor together with another
 * lock. The leader-only fields (inflight, out, out_len, out_off, next,
 * wait_due) are touched only by the caller that leads the pipe. A waiter
 * and its caller's waker live on the caller's stack: others touch a
 * waiter only under mu, and only while it is in the queue or in batch[],
 * which it leaves (under mu) before its caller returns; the caller then
 * waits for every wake-up promised to it before the waker goes.
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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RDS_PIPE_MAX_BATCH   256          /* waiters in one write */
#define RDS_PIPE_MAX_BYTES   (256 * 1024) /* then stop adding waiters */
#define RDS_PIPE_SPILL_BYTES (64 * 1024)  /* see rds_pipe_pick */
#define RDS_PIPE_READ_BYTES  (16 * 1024)  /* one read() */
#define RDS_PIPE_PARSED      64           /* replies handed over per lock */
#define RDS_PIPE_POLL_MAX_MS 60000        /* one poll() at most */
#define RDS_PIPE_STACK_JOBS  8            /* rds_pipe_run without malloc */

enum rds_wstate {
    RDS_W_QUEUED = 0,
    RDS_W_SENT,
    RDS_W_DONE,
};

/* What a caller sleeps on: see "Waking" above. Owned by one caller. */
struct rds_waker {
    int efd;        /* eventfd, or -1: sem */
    sem_t sem;      /* when efd < 0 */
    uint64_t taken; /* wake-ups consumed (the caller's own count) */
};

struct rds_waiter {
    struct rds_waiter *next; /* in the queue, or in the wake list */
    const struct rds_req *r; /* borrowed: the caller's request */
    bool want_wait;
    int64_t deadline;       /* monotonic ms */
    struct rds_pipe *p;     /* fixed: the pipe it queues on */
    int dp;                 /* fixed: its caller's index of p */
    struct rds_waker *wake; /* fixed: its caller's */
    /* under the pipe's mu: */
    enum rds_wstate state;
    int slot;             /* index in batch[] while sent */
    int got;              /* replies handed over so far */
    redisReply **replies; /* the caller's, r->ncmds */
    struct rds_wait_res *wres;
    int rc;
    char *why;
    size_t whylen;
    unsigned posts; /* wake-ups promised to its caller (under mu) */
};

/* A pipe one caller has waiters on (that caller's private view). */
struct rds_dpipe {
    struct rds_pipe *p;
    bool led;     /* this caller leads p */
    bool connect; /* p needs a connect before its next batch */
};

/* What one pass over a caller's pipes found. */
struct rds_drive_sum {
    bool pending;  /* a waiter of the caller is not done */
    bool others;   /* ... on a pipe the caller does not lead */
    bool connect;  /* a led pipe needs a connect */
    int nio;       /* led pipes with a batch in flight */
    int64_t until; /* the earliest deadline that matters */
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

/* ------------------------------------------------------------- wakers */

static void
rds_waker_post(struct rds_waker *wk)
{
    if (wk->efd >= 0) {
        uint64_t one = 1;

        while (write(wk->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    } else {
        sem_post(&wk->sem);
    }
}

/* Consume what was posted; blocks until at least one post (call it for
 * an eventfd only when poll says it is readable, or to drain). */
static void
rds_waker_take(struct rds_waker *wk)
{
    if (wk->efd >= 0) {
        uint64_t v = 0;

        if (read(wk->efd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
            wk->taken += v;
        }
    } else if (sem_wait(&wk->sem) == 0) {
        wk->taken++;
    }
}

/* Sleep until a post or until (monotonic ms). */
static void
rds_waker_wait(struct rds_waker *wk, int64_t until)
{
    int64_t left = until - rds_mono_ms();

    if (left <= 0) {
        return;
    }
    if (wk->efd >= 0) {
        struct pollfd pfd = {.fd = wk->efd, .events = POLLIN};

        if (poll(&pfd, 1,
                 left > RDS_PIPE_POLL_MAX_MS ? RDS_PIPE_POLL_MAX_MS
                                             : (int)left) > 0) {
            rds_waker_take(wk);
        }
    } else {
        /* deadlines are CLOCK_MONOTONIC milliseconds (rds_mono_ms) */
        struct timespec ts = {.tv_sec = (time_t)(until / 1000),
                              .tv_nsec = (long)(until % 1000) * 1000000L};

        if (sem_clockwait(&wk->sem, CLOCK_MONOTONIC, &ts) == 0) {
            wk->taken++;
        }
    }
}

/* ------------------------------------------------------------ waiters */

/*
 * Waking waiters. A waiter that is done is posted only after the pipe's
 * mu is released (rds_pipe_unlock), so its caller does not wake up only
 * to block on mu held by its waker. A caller that finds its waiters done
 * may not return before every post promised to them (posts, counted
 * under mu) has landed: its waker lives on its stack.
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

/* Under mu: wake a queued waiter's caller now (it may take the lead);
 * the waiter cannot leave while we hold mu. */
static void
rds_waiter_nudge(struct rds_waiter *w)
{
    w->posts++;
    rds_waker_post(w->wake);
}

static void
rds_pipe_unlock(struct rds_pipe *p)
{
    struct rds_waiter *w = p->wake;

    p->wake = NULL;
    pthread_mutex_unlock(&p->mu);
    while (w != NULL) {
        struct rds_waiter *next = w->next; /* w may go once posted */

        rds_waker_post(w->wake);
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

/* Under mu: w is past its deadline with every reply in, and only its
 * batch's WAIT missing: it keeps its replies and the caller learns that
 * WAIT did not answer (a write not confirmed, a read as it was). */
static void
rds_waiter_wait_late(kvd_engine *db, struct rds_pipe *p, struct rds_waiter *w)
{
    w->wres->acks = -1;
    snprintf(w->wres->err, sizeof(w->wres->err), "no reply within %lld ms",
             (long long)db->cmd_timeout_ms);
    p->batch[w->slot] = NULL;
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

/* Under mu, by w's own caller: w's deadline passed before it was done.
 * No post: w's caller is the one running. */
static void
rds_waiter_leave(kvd_engine *db, struct rds_pipe *p, struct rds_waiter *w)
{
    if (w->state == RDS_W_SENT && w->want_wait && w->got == w->r->ncmds) {
        rds_waiter_wait_late(db, p, w);
        w->rc = 0;
        w->state = RDS_W_DONE;
        return;
    }
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

/* Under mu, as leader with nothing in flight and a queue: move queued
 * waiters into batch[] and their requests (then a WAIT if any wants
 * one) into out; the batch is then in flight. */
static int
rds_pipe_take(kvd_engine *db, struct rds_pipe *p)
{
    int64_t dl = INT64_MIN;
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
        dl = w->deadline > dl ? w->deadline : dl;
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
    p->inflight = true;
    p->out_len = off;
    p->out_off = 0;
    p->next = 0;
    p->wait_due = ww;
    p->batch_dl = dl;
    atomic_fetch_add_explicit(&db->c.flushes, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&db->c.piped, (uint64_t)nb, memory_order_relaxed);
    return 0;
}

/* Under mu: the batch in flight is fully answered. */
static void
rds_pipe_end(struct rds_pipe *p)
{
    p->inflight = false;
    p->nbatch = 0;
    if (p->out_cap > 4 * RDS_PIPE_MAX_BYTES) {
        /* a huge value went out: do not keep its buffer */
        free(p->out);
        p->out = NULL;
        p->out_cap = 0;
    }
}

/* Under mu: the earliest deadline of the sent waiters still waiting, or
 * when none is (they left, and only replies nobody waits for are due),
 * the latest deadline the batch had: then the connection is dropped
 * rather than waited on for ever. */
static int64_t
rds_pipe_deadline(const struct rds_pipe *p)
{
    int64_t dl = p->batch_dl;

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
        } else if (now >= w->deadline && w->want_wait &&
                   w->got == w->r->ncmds) {
            rds_waiter_wait_late(db, p, w);
            rds_waiter_finish(p, w, 0);
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
    p->inflight = false;
    p->reset = false;
}

/* Leader, mu released: write what the socket takes of the batch. 0 (all
 * written, or the socket is full), or KVD_EUNAVAIL with why. */
static int
rds_pipe_send(struct rds_pipe *p, char *why, size_t whylen)
{
    while (p->out_off < p->out_len) {
        /* MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE */
        ssize_t n = send(p->ctx->fd, p->out + p->out_off,
                         p->out_len - p->out_off, MSG_NOSIGNAL);

        if (n > 0) {
            p->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0; /* the poll waits for POLLOUT */
        }
        snprintf(why, whylen, "%s: %s", p->node->name,
                 n < 0 ? strerror(errno) : "connection lost");
        return KVD_EUNAVAIL;
    }
    return 0;
}

/* Leader, mu released: one read into the connection's reader. 0 with
 * *drained when the socket had nothing more. */
static int
rds_pipe_recv(struct rds_pipe *p, char *buf, size_t len, bool *drained,
              char *why, size_t whylen)
{
    redisContext *ctx = p->ctx;
    ssize_t n;

    do {
        n = recv(ctx->fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        if (redisReaderFeed(ctx->reader, buf, (size_t)n) != REDIS_OK) {
            snprintf(why, whylen, "%s: out of memory", p->node->name);
            return KVD_ENOMEM;
        }
        *drained = (size_t)n < len;
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        *drained = true;
        return 0;
    }
    snprintf(why, whylen, "%s: %s", p->node->name,
             n == 0 ? "connection closed by the server" : strerror(errno));
    return KVD_EUNAVAIL;
}

/* Leader, mu released: the complete replies the reader holds, up to
 * RDS_PIPE_PARSED. */
static int
rds_pipe_parse(struct rds_pipe *p, redisReply **parsed, int *nparsed, char *why,
               size_t whylen)
{
    *nparsed = 0;
    while (*nparsed < RDS_PIPE_PARSED) {
        void *rep = NULL;

        if (redisReaderGetReply(p->ctx->reader, &rep) != REDIS_OK) {
            snprintf(why, whylen, "%s: protocol error: %.80s", p->node->name,
                     p->ctx->reader->errstr);
            return KVD_EPROTO;
        }
        if (rep == NULL) {
            break;
        }
        parsed[(*nparsed)++] = rep;
    }
    return 0;
}

/* Under mu, as leader: hand parsed replies to their waiters in send
 * order (WAIT's to all that asked); frees what was not handed over. */
static int
rds_pipe_deliver(struct rds_pipe *p, redisReply **parsed, int nparsed,
                 char *why, size_t whylen)
{
    int rc = 0;

    if (p->reset) {
        snprintf(why, whylen, "%s: a request timed out", p->node->name);
        rc = KVD_ETIMEDOUT;
    }
    for (int i = 0; i < nparsed && rc == 0; i++) {
        if (p->next < p->nbatch) {
            /* not reset: every waiter not fully answered is there */
            struct rds_waiter *w = p->batch[p->next];

            w->replies[w->got++] = parsed[i];
            parsed[i] = NULL;
            if (w->got == w->r->ncmds) {
                p->next++;
                if (!w->want_wait) {
                    p->batch[w->slot] = NULL;
                    rds_waiter_finish(p, w, 0);
                }
            }
        } else if (p->wait_due) {
            rds_pipe_wait_reply(p, parsed[i]);
            p->wait_due = false;
        } else {
            snprintf(why, whylen, "%s: a reply nobody asked for",
                     p->node->name);
            rc = KVD_EPROTO;
        }
    }
    /* what was not handed over: WAIT's reply (copied out), or anything
     * after an error */
    for (int i = 0; i < nparsed; i++) {
        if (parsed[i] != NULL) {
            freeReplyObject(parsed[i]);
        }
    }
    if (rc == 0 && p->next == p->nbatch && !p->wait_due) {
        rds_pipe_end(p);
    }
    return rc;
}

/* Leader, mu released: poll said fd is ready (revents): write more,
 * then read until the socket is drained (a big value is many reads),
 * handing over replies as they complete. Returns with mu released. */
static void
rds_pipe_io(kvd_engine *db, struct rds_pipe *p, short revents)
{
    redisReply *parsed[RDS_PIPE_PARSED];
    char buf[RDS_PIPE_READ_BYTES];
    char why[RDS_ERRMSG_BYTES];
    bool drained = !(revents & (POLLIN | POLLERR | POLLHUP));
    int nparsed = 0;
    int rc = 0;

    if ((revents & (POLLOUT | POLLERR)) && p->out_off < p->out_len) {
        rc = rds_pipe_send(p, why, sizeof(why));
    }
    while (rc == 0 && !drained) {
        rc = rds_pipe_recv(p, buf, sizeof(buf), &drained, why, sizeof(why));
        do {
            if (rc == 0) {
                rc = rds_pipe_parse(p, parsed, &nparsed, why, sizeof(why));
            }
            if (rc == 0 && nparsed == 0) {
                break; /* a reply not complete yet: read on */
            }
            pthread_mutex_lock(&p->mu);
            if (rc == 0) {
                rc = rds_pipe_deliver(p, parsed, nparsed, why, sizeof(why));
            }
            if (rc != 0) {
                rds_pipe_abort(db, p, rc, why);
            }
            rds_pipe_unlock(p);
        } while (rc == 0 && nparsed == RDS_PIPE_PARSED);
        if (rc != 0 || !p->inflight) {
            /* an error (handled), or every reply of the batch is in */
            return;
        }
    }
}

/* ----------------------------------------------------------- the driver */

/*
 * Under p's mu: move one pipe of the caller forward, without I/O: leave
 * for waiters past their deadline, drop a connection that fell out of
 * step or out of time, take the lead of a pipe nobody leads, give it
 * back when the caller's waiters there are done, and take the next
 * batch. true: a batch was just taken (the caller writes it at once).
 */
static bool
rds_drive_step(kvd_engine *db, struct rds_dpipe *dp, struct rds_waiter *ws,
               int nw, int d, int64_t now)
{
    struct rds_pipe *p = dp->p;
    bool mine = false;

    for (int i = 0; i < nw; i++) {
        struct rds_waiter *w = &ws[i];

        if (w->dp != d || w->state == RDS_W_DONE) {
            continue;
        }
        if (now >= w->deadline) {
            rds_waiter_leave(db, p, w);
        } else {
            mine = true;
        }
    }
    if (dp->led && p->inflight && (p->reset || now >= rds_pipe_deadline(p))) {
        rds_pipe_abort(db, p, KVD_ETIMEDOUT, "");
    }
    if (!dp->led) {
        if (!mine || p->leading) {
            return false;
        }
        p->leading = true;
        dp->led = true;
    }
    if (p->inflight) {
        return false;
    }
    if (!mine) {
        dp->led = false;
        p->leading = false;
        if (p->head != NULL) {
            rds_waiter_nudge(p->head);
        }
        return false;
    }
    /* a waiter of ours is queued, so the queue is not empty */
    if (p->ctx == NULL) {
        dp->connect = true;
        return false;
    }
    if (rds_pipe_take(db, p) != 0) {
        char why[RDS_ERRMSG_BYTES];

        snprintf(why, sizeof(why), "%s: out of memory", p->node->name);
        rds_waiter_fail(p, rds_queue_pop(p), KVD_ENOMEM, why);
        return false;
    }
    return true;
}

/* Under p's mu: what the caller waits for on this pipe. */
static void
rds_drive_sum(const struct rds_dpipe *dp, const struct rds_waiter *ws, int nw,
              int d, struct rds_drive_sum *s)
{
    for (int i = 0; i < nw; i++) {
        if (ws[i].dp == d && ws[i].state != RDS_W_DONE) {
            s->pending = true;
            s->others = s->others || !dp->led;
            s->until = ws[i].deadline < s->until ? ws[i].deadline : s->until;
        }
    }
    if (dp->led && dp->p->inflight) {
        int64_t dl = rds_pipe_deadline(dp->p);

        s->nio++;
        s->until = dl < s->until ? dl : s->until;
    }
    s->connect = s->connect || dp->connect;
}

/* The led pipes that need a connect: connect them (mu released inside),
 * which fails their queue if it cannot. */
static void
rds_drive_connect(kvd_engine *db, struct rds_dpipe *dps, int ndp)
{
    for (int d = 0; d < ndp; d++) {
        struct rds_pipe *p = dps[d].p;

        if (!dps[d].connect) {
            continue;
        }
        dps[d].connect = false;
        pthread_mutex_lock(&p->mu);
        if (dps[d].led && !p->inflight && p->ctx == NULL && p->head != NULL) {
            rds_pipe_open(db, p);
        }
        rds_pipe_unlock(p);
    }
}

/* Poll the led pipes in flight (and the waker, when the caller also
 * waits on others' pipes) until something is ready or s->until; then do
 * the I/O that is ready. */
static void
rds_drive_poll(kvd_engine *db, struct rds_dpipe *dps, int ndp,
               struct rds_waker *wk, const struct rds_drive_sum *s,
               struct pollfd *pfds, int *pmap)
{
    int64_t left = s->until - rds_mono_ms();
    int k = 0;
    int n;

    for (int d = 0; d < ndp; d++) {
        struct rds_pipe *p = dps[d].p;

        /* inflight, ctx and out_*: ours to read while we lead p */
        if (!dps[d].led || !p->inflight) {
            continue;
        }
        pfds[k].fd = p->ctx->fd;
        pfds[k].events =
            (short)(POLLIN | (p->out_off < p->out_len ? POLLOUT : 0));
        pfds[k].revents = 0;
        pmap[k++] = d;
    }
    if (s->others && wk->efd >= 0) {
        pfds[k].fd = wk->efd;
        pfds[k].events = POLLIN;
        pfds[k].revents = 0;
        pmap[k++] = -1;
    }
    if (left < 0) {
        left = 0;
    }
    n = poll(pfds, (nfds_t)k,
             left > RDS_PIPE_POLL_MAX_MS ? RDS_PIPE_POLL_MAX_MS : (int)left);
    if (n < 0 && errno != EINTR) {
        char why[RDS_ERRMSG_BYTES];

        for (int i = 0; i < k; i++) {
            struct rds_pipe *p = pmap[i] >= 0 ? dps[pmap[i]].p : NULL;

            if (p == NULL) {
                continue;
            }
            snprintf(why, sizeof(why), "%s: poll: %s", p->node->name,
                     strerror(errno));
            pthread_mutex_lock(&p->mu);
            rds_pipe_abort(db, p, KVD_EIO, why);
            rds_pipe_unlock(p);
        }
        return;
    }
    for (int i = 0; i < k && n > 0; i++) {
        if (pfds[i].revents == 0) {
            continue;
        }
        if (pmap[i] < 0) {
            rds_waker_take(wk);
        } else {
            rds_pipe_io(db, dps[pmap[i]].p, pfds[i].revents);
        }
    }
}

/*
 * Drive waiters ws[0..nw), already queued on the pipes dps[0..ndp),
 * until every one is done; then wait for every post promised to them.
 * pfds and pmap have room for ndp + 1.
 */
static void
rds_drive(kvd_engine *db, struct rds_waiter *ws, int nw, struct rds_dpipe *dps,
          int ndp, struct rds_waker *wk, struct pollfd *pfds, int *pmap)
{
    uint64_t posts = 0;

    for (;;) {
        struct rds_drive_sum s = {.until = INT64_MAX};
        int64_t now = rds_mono_ms();

        for (int d = 0; d < ndp; d++) {
            struct rds_pipe *p = dps[d].p;
            char why[RDS_ERRMSG_BYTES];
            bool took;
            int rc = 0;

            pthread_mutex_lock(&p->mu);
            took = rds_drive_step(db, &dps[d], ws, nw, d, now);
            rds_pipe_unlock(p);
            if (!took) {
                continue;
            }
            /* write at once, before the next node's batch is taken */
            rc = rds_pipe_send(p, why, sizeof(why));
            if (rc != 0) {
                pthread_mutex_lock(&p->mu);
                rds_pipe_abort(db, p, rc, why);
                rds_pipe_unlock(p);
            }
        }
        for (int d = 0; d < ndp; d++) {
            pthread_mutex_lock(&dps[d].p->mu);
            rds_drive_sum(&dps[d], ws, nw, d, &s);
            pthread_mutex_unlock(&dps[d].p->mu);
        }
        if (s.connect) {
            /* after every connected pipe's batch went out */
            rds_drive_connect(db, dps, ndp);
            continue;
        }
        if (!s.pending && s.nio == 0) {
            break;
        }
        if (s.nio > 0) {
            rds_drive_poll(db, dps, ndp, wk, &s, pfds, pmap);
        } else {
            rds_waker_wait(wk, s.until);
        }
    }
    for (int i = 0; i < nw; i++) {
        /* final: nobody promises a done waiter more */
        pthread_mutex_lock(&ws[i].p->mu);
        posts += ws[i].posts;
        pthread_mutex_unlock(&ws[i].p->mu);
        atomic_fetch_sub_explicit(&ws[i].p->load, ws[i].r->buf.len,
                                  memory_order_relaxed);
    }
    /* posts promised but not taken yet: wait for them to land, as the
     * waker lives on the caller's stack */
    while (wk->taken < posts) {
        rds_waker_take(wk);
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

/* Queue w on a pipe of node n; its pipe joins dps (*ndp) if new. */
static void
rds_waiter_queue(struct rds_waiter *w, struct rds_node *n,
                 struct rds_dpipe *dps, int *ndp)
{
    struct rds_pipe *p = rds_pipe_pick(n);
    int d = 0;

    while (d < *ndp && dps[d].p != p) {
        d++;
    }
    if (d == *ndp) {
        dps[d] = (struct rds_dpipe){.p = p};
        (*ndp)++;
    }
    w->p = p;
    w->dp = d;
    atomic_fetch_add_explicit(&p->load, w->r->buf.len, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    rds_queue_push(p, w);
    pthread_mutex_unlock(&p->mu);
}

int
rds_pipe_call(kvd_engine *db, struct rds_node *n, const struct rds_req *r,
              bool want_wait, int64_t deadline, redisReply **replies,
              struct rds_wait_res *wres, char *why, size_t whylen)
{
    struct rds_waker wk = {.efd = -1};
    struct rds_waiter w = {
        .r = r,
        .want_wait = want_wait,
        .deadline = deadline,
        .wake = &wk,
        .replies = replies,
        .wres = wres,
        .why = why,
        .whylen = whylen,
    };
    struct rds_dpipe dp;
    struct pollfd pfds[2];
    int pmap[2];
    int ndp = 0;

    assert(r->ncmds > 0 && (!want_wait || wres != NULL));
    if (rds_mono_ms() >= deadline) {
        snprintf(why, whylen, "%s: no time left", n->name);
        return KVD_ETIMEDOUT;
    }
    sem_init(&wk.sem, 0, 0);
    rds_waiter_queue(&w, n, &dp, &ndp);
    rds_drive(db, &w, 1, &dp, ndp, &wk, pfds, pmap);
    sem_destroy(&wk.sem);
    return w.rc;
}

/* rds_pipe_run without a waker for several pipes (no memory or no
 * eventfd left): one request after the other, each on its own. */
static void
rds_pipe_run_each(kvd_engine *db, struct rds_pipe_job *jobs, int n,
                  int64_t deadline)
{
    for (int i = 0; i < n; i++) {
        struct rds_pipe_job *j = &jobs[i];

        j->rc = rds_pipe_call(db, j->node, j->r, j->want_wait, deadline,
                              j->replies, &j->wres, j->why, sizeof(j->why));
    }
}

void
rds_pipe_run(kvd_engine *db, struct rds_pipe_job *jobs, int n, int64_t deadline)
{
    struct rds_waiter ws_stack[RDS_PIPE_STACK_JOBS];
    struct rds_dpipe dps_stack[RDS_PIPE_STACK_JOBS];
    struct pollfd pfds_stack[RDS_PIPE_STACK_JOBS + 1];
    int pmap_stack[RDS_PIPE_STACK_JOBS + 1];
    struct rds_waiter *ws = ws_stack;
    struct rds_dpipe *dps = dps_stack;
    struct pollfd *pfds = pfds_stack;
    int *pmap = pmap_stack;
    struct rds_waker wk = {.efd = -1};
    int ndp = 0;

    for (int i = 0; i < n; i++) {
        jobs[i].wres.acks = -1;
        jobs[i].wres.err[0] = '\0';
        jobs[i].why[0] = '\0';
    }
    if (n <= 1) {
        rds_pipe_run_each(db, jobs, n, deadline);
        return;
    }
    if (n > RDS_PIPE_STACK_JOBS) {
        ws = calloc((size_t)n, sizeof(*ws));
        dps = calloc((size_t)n, sizeof(*dps));
        pfds = calloc((size_t)n + 1, sizeof(*pfds));
        pmap = calloc((size_t)n + 1, sizeof(*pmap));
    }
    /* waiting on several pipes: one fd to poll with the sockets */
    if (ws != NULL && dps != NULL && pfds != NULL && pmap != NULL) {
        wk.efd = eventfd(0, EFD_CLOEXEC);
    }
    if (wk.efd < 0 || rds_mono_ms() >= deadline) {
        rds_pipe_run_each(db, jobs, n, deadline);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct rds_pipe_job *j = &jobs[i];

        assert(j->r->ncmds > 0);
        ws[i] = (struct rds_waiter){
            .r = j->r,
            .want_wait = j->want_wait,
            .deadline = deadline,
            .wake = &wk,
            .replies = j->replies,
            .wres = &j->wres,
            .why = j->why,
            .whylen = sizeof(j->why),
        };
        rds_waiter_queue(&ws[i], j->node, dps, &ndp);
    }
    rds_drive(db, ws, n, dps, ndp, &wk, pfds, pmap);
    for (int i = 0; i < n; i++) {
        jobs[i].rc = ws[i].rc;
    }
out:
    if (wk.efd >= 0) {
        close(wk.efd);
    }
    if (ws != ws_stack) {
        free(ws);
        free(dps);
        free(pfds);
        free(pmap);
    }
}
