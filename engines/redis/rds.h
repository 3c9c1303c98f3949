/*
 * engines/redis/rds.h -- internals of the `redis` engine, shared by its
 * files. Not installed.
 *
 * The engine keeps no data itself: every key lives in a Redis server or a
 * Redis Cluster. kvd key K is the Redis string <key_prefix>K; its value is
 * the string's bytes and its expiry the key's absolute expiry (SET ...
 * PXAT, read back with PEXPIRETIME, so Redis 7.0 or later is required).
 *
 * Files:
 *   rds_engine.c  options, open/close, get/put/del/batch, maintain, clear,
 *                 the exported vtable
 *   rds_multi.c   multi: many independent operations, one pipelined
 *                 request per node, every node's sent before any reply
 *                 is awaited
 *   rds_cmd.c     RESP request buffers (binary-safe argv formatting)
 *   rds_pool.c    nodes: connect (AUTH, READONLY), reconnect backoff
 *   rds_pipe.c    auto-pipelining: each node's few shared connections,
 *                 where concurrent requests are written together and
 *                 their replies handed back in order
 *   rds_route.c   CRC16 hash slots, the slot map (CLUSTER SLOTS), request
 *                 execution with MOVED/ASK redirects, retries and
 *                 durability (WAIT)
 *   rds_scan.c    iteration (SCAN on every master), the resume position
 *                 codec, and the scans behind stats, clear and expire
 *   rds_stats.c   stats
 *
 * Threading and locks (lock order: refresh_mu, then map_lock, then
 * nodes_mu, then a node's mu; a pipe's mu is never held with any other
 * lock; no lock is held across network I/O except refresh_mu, which only
 * serialises slot-map refreshes):
 *   - nodes[] is append-only under nodes_mu; a node, once added, lives
 *     until close, so a pointer read from the map stays valid.
 *   - the slot map (map) is guarded by map_lock: readers take it shared
 *     for the lookup only, a refresh builds the new map unlocked and
 *     swaps it in exclusively.
 *   - a node's reconnect backoff is guarded by the node's mu.
 *   - a node's pipes (pool_size of them, fixed after the node is made)
 *     each guard their queue and connection with their own mu; only the
 *     pipe's current leader does I/O on its connection (rds_pipe.c). A
 *     caller may lead several pipes at once, taking their mu one at a
 *     time, never two together.
 *   - counters are relaxed atomics.
 *   - everything else is fixed after open.
 */
#ifndef KVD_ENGINES_REDIS_RDS_H
#define KVD_ENGINES_REDIS_RDS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "kvd/engine.h"
#include "kvd/host.h"
#include "kvd/kit_buf.h"
#include "kvd/kit_clock.h"
#include "kvd/status.h"

#define RDS_SLOTS         16384
#define RDS_NO_SHARD      0xffffu
#define RDS_MAX_NODES     1024 /* masters + replicas kvd will track */
#define RDS_MAX_REPLICAS  8    /* per shard, for read_from_replicas */
#define RDS_HOST_BYTES    128
#define RDS_NAME_BYTES    (RDS_HOST_BYTES + 8)
#define RDS_BUF_INLINE    512
#define RDS_REQ_OFFS      8 /* command offsets kept for ASK rewrites */
#define RDS_ERRMSG_BYTES  KVD_ERR_MSG_BYTES
#define RDS_MAX_VALUE     (512ull * 1024 * 1024) /* Redis' proto limit */
#define RDS_MIN_VERSION   70000                  /* PEXPIRETIME: 7.0 */
#define RDS_MAX_REDIRECTS 16

/* ------------------------------------------------------------- options */

enum rds_stats_mode {
    RDS_STATS_DBSIZE = 0,
    RDS_STATS_SCAN = 1,
};

struct rds_opts {
    char *nodes;
    char *password;
    char *user;
    int64_t connect_timeout_ms;
    int64_t command_timeout_ms;
    int64_t pool_size;
    int read_from_replicas;
    char *key_prefix;
    char *durability;
    int stats; /* enum rds_stats_mode */
    int64_t scan_count;
};

/* ------------------------------------------------------- request buffer */

/*
 * A pipeline of RESP commands for one node, formatted once so that a
 * retry or redirect resends the same bytes. off[i] is where command i
 * starts (kept for the first RDS_REQ_OFFS commands: an ASK redirect
 * rewrites the pipeline with ASKING before each of them).
 */
struct rds_req {
    struct kvd_buf buf;                /* on inl until it outgrows it */
    unsigned char inl[RDS_BUF_INLINE]; /* so never copied by value */
    int ncmds;
    size_t off[RDS_REQ_OFFS + 1];
    bool multi; /* MULTI ... EXEC: no ASK rewrite (retried instead) */
};

void rds_req_init(struct rds_req *r);
void rds_req_release(struct rds_req *r);
int rds_cmd_begin(struct rds_req *r, int argc);
int rds_cmd_arg(struct rds_req *r, const void *p, size_t n);
int rds_cmd_arg2(struct rds_req *r, const void *a, size_t an, const void *b,
                 size_t bn);
int rds_cmd_argi(struct rds_req *r, int64_t v);
int rds_cmd_str(struct rds_req *r, const char *s);
/* A whole command of C-string words: rds_cmd_words(r, "INFO", "x", NULL) */
int rds_cmd_words(struct rds_req *r, const char *w, ...);
/* The pipeline with "ASKING" before every command, into out. */
int rds_req_with_asking(const struct rds_req *r, struct rds_req *out);

/* ------------------------------------------------------ nodes and pipes */

struct rds_waiter; /* a request waiting in a pipe: rds_pipe.c */

/*
 * One pipelined connection to a node, shared by every thread that sends
 * to it (rds_pipe.c). Guarded by mu: head..nbatch. ctx (and its socket)
 * is only read or written by the leader, with mu released, and only the
 * leader opens or closes it. The leader-only fields are touched by the
 * thread that leads the pipe, with or without mu (the lead itself passes
 * from thread to thread under mu).
 */
struct rds_pipe {
    struct rds_node *node; /* fixed */
    pthread_mutex_t mu;
    redisContext *ctx;         /* NULL: not connected */
    bool leading;              /* a thread is the leader */
    bool reset;                /* an in-flight waiter left: reconnect */
    struct rds_waiter *head;   /* queued, not sent yet (FIFO) */
    struct rds_waiter *tail;   /* last queued */
    struct rds_waiter *wake;   /* done, to be posted after unlock */
    struct rds_waiter **batch; /* sent, in order; NULL: it left */
    int nbatch;                /* entries of batch in use */
    /* leader-only: */
    bool inflight;    /* batch[] is written or being written */
    char *out;        /* the batch's bytes */
    size_t out_cap;   /* bytes allocated at out */
    size_t out_len;   /* bytes of out to write */
    size_t out_off;   /* bytes of out written so far */
    int next;         /* batch[] index the next reply belongs to */
    bool wait_due;    /* the batch's WAIT reply is still to come */
    int64_t batch_dl; /* the latest deadline of the batch's waiters */
    /* any thread: */
    _Atomic size_t load; /* request bytes queued or in flight */
};

struct rds_node {
    char host[RDS_HOST_BYTES];
    int port;
    char name[RDS_NAME_BYTES]; /* "host:port", for messages */
    int npipes;                /* fixed: pool_size */
    struct rds_pipe *pipes;    /* fixed array of npipes */
    /* guarded by mu: */
    pthread_mutex_t mu;
    int64_t down_until_ms; /* monotonic: no connect before this */
    int64_t backoff_ms;    /* next backoff after a failed connect */
    char last_err[96];     /* why the last connect failed */
};

/* ------------------------------------------------------------ slot map */

struct rds_shard {
    struct rds_node *master;
    int nrep;
    struct rds_node *rep[RDS_MAX_REPLICAS];
    int first_slot; /* lowest slot served: the scan order of masters */
};

struct rds_map {
    int nshards;
    struct rds_shard *shards;
    uint16_t slot_shard[RDS_SLOTS]; /* RDS_NO_SHARD: uncovered */
};

/* ------------------------------------------------------------- counters */

struct rds_counters {
    _Atomic uint64_t refreshes;   /* slot-map refreshes that succeeded */
    _Atomic uint64_t moved;       /* MOVED redirects followed */
    _Atomic uint64_t ask;         /* ASK redirects followed */
    _Atomic uint64_t retries;     /* requests re-sent after an error */
    _Atomic uint64_t connects;    /* connections opened */
    _Atomic uint64_t conn_errors; /* connections lost or refused */
    _Atomic uint64_t timeouts;    /* requests that ran out of time */
    _Atomic uint64_t wait_short;  /* writes WAIT could not confirm */
    _Atomic uint64_t crossslot;   /* batches refused as cross-slot */
    _Atomic uint64_t flushes;     /* pipeline writes (one per batch) */
    _Atomic uint64_t piped;       /* requests sent through pipelines */
    _Atomic uint64_t multi_calls; /* multi() calls */
    _Atomic uint64_t multi_ops;   /* operations of multi() calls */
    _Atomic uint64_t multi_alone; /* ... run alone after the parallel
                                     phase (redirect, retry, node error) */
};

/* ------------------------------------------------------------ the engine */

struct kvd_engine {
    const struct kvd_host *host;
    /* fixed after open: */
    const struct rds_opts *o;
    bool cluster;
    int wait_replicas;  /* durability wait:N, 0 = none */
    const char *prefix; /* key_prefix bytes */
    size_t prefix_len;
    int pool_size;
    int64_t cmd_timeout_ms;
    int64_t conn_timeout_ms;
    struct rds_req wait_cmd; /* WAIT N timeout, formatted at open */
    int nseeds;
    struct rds_node **seeds; /* in nodes[] too */
    /* nodes[] append-only under nodes_mu */
    pthread_mutex_t nodes_mu;
    int nnodes;
    struct rds_node *nodes[RDS_MAX_NODES];
    /* slot map (cluster) or the one server (plain) */
    pthread_rwlock_t map_lock;
    struct rds_map *map;     /* cluster; guarded by map_lock */
    struct rds_node *server; /* plain server mode; fixed */
    /* refresh_mu serialises refreshes; last_refresh_ms guarded by it */
    pthread_mutex_t refresh_mu;
    int64_t last_refresh_ms;
    _Atomic uint32_t rr; /* round robin over replicas */
    _Atomic int64_t last_warn_ms;
    struct rds_counters c;
};

/* Deadlines are CLOCK_MONOTONIC milliseconds: the toolkit's clock with no
 * host, the one sem_clockwait and poll timeouts count in. */
static inline int64_t
rds_mono_ms(void)
{
    return kvd_mono_ms(NULL);
}

/* rds_pool.c */
void rds_sleep_ms(int64_t ms);
struct rds_node *rds_node_get(kvd_engine *db, const char *host, int port);
void rds_nodes_free(kvd_engine *db);
/* A new blocking connection to n, AUTH and READONLY done, unless n is in
 * its reconnect backoff. 0 and *out (caller frees with redisFree), or
 * KVD_EUNAVAIL, KVD_ETIMEDOUT, KVD_ECONFIG (AUTH refused), KVD_EIO or
 * KVD_ENOMEM with why naming the node. Takes n->mu. */
int rds_node_connect(kvd_engine *db, struct rds_node *n, int64_t deadline,
                     redisContext **out, char *why, size_t whylen);
int rds_parse_hostport(const char *s, size_t n, char *host, size_t hostlen,
                       int *port);
void rds_warn(kvd_engine *db, const char *fmt, ...) KVD_PRINTF(2, 3);

/* rds_pipe.c */
int rds_pipes_init(kvd_engine *db, struct rds_node *n);
void rds_pipes_free(struct rds_node *n);

/* What WAIT answered for a write sent with want_wait. */
struct rds_wait_res {
    long long acks; /* replicas that confirmed; -1: WAIT failed */
    char err[96];   /* WAIT's error reply when acks == -1 */
};

/*
 * Send r to node n over one of its shared pipelined connections, behind
 * or together with other threads' requests, and wait until its replies
 * are read or deadline (monotonic ms) passes. With want_wait, a WAIT
 * follows r on the same connection (one WAIT after a batch of writes
 * covers them all) and its answer lands in *wres; when r's replies are
 * all in but WAIT's answer is not by the deadline, that is 0 with
 * wres->acks = -1 (the write is not confirmed, a read is as good as
 * ever).
 * 0: replies[0..r->ncmds) hold r's replies in order (caller frees each
 * with freeReplyObject; Redis error replies included). Otherwise no reply
 * is kept and: KVD_ETIMEDOUT (no reply by the deadline, or the
 * connection was dropped because another request on it timed out: it may
 * be resent), KVD_EUNAVAIL (cannot connect, connection lost), KVD_EPROTO,
 * KVD_ECONFIG (AUTH refused), KVD_EIO or KVD_ENOMEM, with why naming the
 * node. Thread-safe; blocks at most until deadline plus scheduling.
 */
int rds_pipe_call(kvd_engine *db, struct rds_node *n, const struct rds_req *r,
                  bool want_wait, int64_t deadline, redisReply **replies,
                  struct rds_wait_res *wres, char *why, size_t whylen);

/* One request of rds_pipe_run. */
struct rds_pipe_job {
    /* in: */
    struct rds_node *node;
    const struct rds_req *r; /* borrowed until rds_pipe_run returns */
    bool want_wait;          /* a WAIT follows (see rds_pipe_call) */
    redisReply **replies;    /* room for r->ncmds */
    /* out: */
    int rc;                     /* as rds_pipe_call returns */
    struct rds_wait_res wres;   /* with want_wait and rc == 0 */
    char why[RDS_ERRMSG_BYTES]; /* rc != 0: names the node */
};

/*
 * rds_pipe_call for n requests at once, each to its own node (or
 * several to one): every request is queued, and the batches of the pipes
 * this thread gets to lead are all written, before it waits for any
 * reply, so the whole costs about one round trip. Each job ends with rc,
 * replies and wres set as rds_pipe_call would set them; all share one
 * deadline. Requests to one pipe are sent in job order. Thread-safe;
 * returns by deadline plus scheduling (and one connect_timeout_ms per
 * node that needs a new connection).
 */
void rds_pipe_run(kvd_engine *db, struct rds_pipe_job *jobs, int n,
                  int64_t deadline);

/* rds_route.c */
unsigned rds_slot(const kvd_engine *db, const void *key, size_t klen);
unsigned rds_slot_raw(const void *key, size_t klen);
int rds_map_refresh(kvd_engine *db, bool force, int64_t deadline, char *why,
                    size_t whylen);
void rds_map_free(struct rds_map *m);
/* Masters in scan order (lowest slot first); caller frees *out. */
int rds_masters(kvd_engine *db, struct rds_node ***out, int *n, int *nrep);

enum rds_route_flag {
    RDS_RT_READ = 1u << 0,  /* a replica may answer (read_from_replicas) */
    RDS_RT_WRITE = 1u << 1, /* add WAIT for durability = wait:N */
    RDS_RT_ONCE = 1u << 2,  /* one attempt, no retry (probing seeds) */
};

/*
 * Send r to the node serving `slot` (or to `node` when not NULL, with no
 * redirects), following MOVED and ASK, refreshing the slot map and
 * retrying with backoff on connection errors and on CLUSTERDOWN,
 * TRYAGAIN, LOADING, MASTERDOWN and READONLY, until command_timeout_ms
 * has passed. On 0, replies[0..r->ncmds) hold the replies (caller frees
 * each with freeReplyObject); error replies other than those are returned
 * as they are. Otherwise KVD_EUNAVAIL, KVD_ETIMEDOUT, KVD_EIO, KVD_EPROTO,
 * KVD_EBUSY or KVD_ENOMEM, with why filled (naming the node).
 * replies must have room for r->ncmds.
 */
int rds_exec(kvd_engine *db, const struct rds_req *r, int slot,
             struct rds_node *node, unsigned flags, redisReply **replies,
             char *why, size_t whylen);
/* rds_exec with a deadline of the caller's (monotonic ms) instead of
 * command_timeout_ms from now. */
int rds_exec_until(kvd_engine *db, const struct rds_req *r, int slot,
                   struct rds_node *node, unsigned flags, int64_t deadline,
                   redisReply **replies, char *why, size_t whylen);
void rds_replies_free(redisReply **replies, int n);
/* Whether r is an error that rds_exec would not return as it is: a
 * redirect (MOVED, ASK) or one it retries (CLUSTERDOWN, TRYAGAIN,
 * LOADING, MASTERDOWN, READONLY). */
bool rds_reply_is_transient(const redisReply *r);
/* WAIT's answer for a write sent to n: 0, or KVD_ETIMEDOUT with why when
 * fewer than wait:N replicas confirmed (counted in wait_short). */
int rds_check_wait(kvd_engine *db, const struct rds_wait_res *w,
                   const struct rds_node *n, char *why, size_t whylen);

/* rds_scan.c */
struct rds_scan_acc {
    uint64_t keys;
    uint64_t key_bytes;
    uint64_t value_bytes;
};
int rds_scan_count(kvd_engine *db, struct rds_scan_acc *acc, char *why,
                   size_t whylen);
int rds_scan_delete(kvd_engine *db, bool expired_only, char *why,
                    size_t whylen);
int rds_iter_open(kvd_engine *db, const struct kvd_iter_opts *opts,
                  kvd_iter **out, struct kvd_err *err);
int rds_iter_next(kvd_iter *it, struct kvd_entry *out);
void rds_iter_close(kvd_iter *it);
/* The resume-position codec, exposed for the unit test of its rules. */
uint64_t rds_pos_encode(unsigned node, uint64_t cursor, bool *fits);
void rds_pos_decode(uint64_t pos, unsigned *node, uint64_t *cursor);

/* rds_stats.c */
int rds_stats(kvd_engine *db, struct kvd_engine_stats *st, kvd_stat_fn fn,
              void *ctx);

/* rds_engine.c: reply helpers shared with the scan */
int rds_reply_expiry(const redisReply *r, int64_t *expire_ms);
bool rds_is_expired(const kvd_engine *db, int64_t expire_ms);

/*
 * rds_engine.c: the requests of get, put and del and what their replies
 * mean, shared by the single operations and multi so that both answer
 * alike. The cmd functions append the operation's commands to r
 * (RDS_GET_CMDS, RDS_PUT_CMDS, RDS_DEL_CMDS of them); 0 or KVD_ENOMEM.
 * The reply functions take the operation's replies (and free them, but
 * for the value a get hands to *out) and return its status, warning in
 * the log on an error reply.
 */
#define RDS_GET_CMDS 2 /* GET; PEXPIRETIME */
#define RDS_PUT_CMDS 1 /* SET ... [PXAT t], or DEL for a past expiry */
#define RDS_DEL_CMDS 2 /* PEXPIRETIME; DEL */
int rds_slot_of(kvd_engine *db, const void *key, size_t klen);
int rds_cmd_get(kvd_engine *db, struct rds_req *r, const void *key,
                size_t klen);
int rds_cmd_put(kvd_engine *db, struct rds_req *r, const void *key, size_t klen,
                const void *val, size_t vlen, int64_t expire_ms);
int rds_cmd_del(kvd_engine *db, struct rds_req *r, const void *key,
                size_t klen);
int rds_get_reply(kvd_engine *db, redisReply **rep, struct kvd_val *out);
int rds_put_reply(kvd_engine *db, redisReply **rep);
int rds_del_reply(kvd_engine *db, redisReply **rep);
/* The same for a struct kvd_mop of any type (op->type valid). */
int rds_cmd_mop(kvd_engine *db, struct rds_req *r, const struct kvd_mop *op);
int rds_mop_reply(kvd_engine *db, const struct kvd_mop *op, redisReply **rep,
                  struct kvd_val *out);
/* Run op as get, put or del run it: rds_exec with redirects and retries
 * until deadline (monotonic ms). Its status; a GET with status 0 fills
 * *out. Failures are logged (rate limited) with the node's name. */
int rds_mop_alone(kvd_engine *db, const struct kvd_mop *op, int64_t deadline,
                  struct kvd_val *out);

/* rds_multi.c: the vtable's multi (see include/kvd/engine.h). */
int rds_multi(kvd_engine *db, struct kvd_mop *ops, size_t n);

#endif /* KVD_ENGINES_REDIS_RDS_H */
