/*
 * engines/redis/rds_route.c -- hash slots, the slot map, and request
 * execution with redirects, retries and durability.
 *
 * Slots. A key's slot is CRC16-CCITT (XMODEM) of the key, or of its hash
 * tag (the bytes between the first '{' and the next '}', when that is not
 * empty), modulo 16384: the rule every Redis Cluster client follows, so
 * kvd and other clients agree on which keys share a slot. key_prefix is
 * part of the key but never contains '{' (open refuses it), so the tag is
 * always the user's.
 *
 * The slot map says which shard (a master and its replicas) serves each
 * slot. It is loaded from CLUSTER SLOTS at open and reloaded (a
 * "refresh") when a MOVED reply says it is stale or a node fails, so a
 * replica promoted by failover is found without a restart. Refreshes are
 * serialised by refresh_mu (a thread that finds one running skips its own)
 * and rate-limited to one per RDS_REFRESH_MIN_MS unless forced; the new
 * map is built unlocked and swapped in under the write lock, so readers
 * never wait for the network.
 *
 * Execution (rds_exec). One attempt = send the request through one of
 * the pipes of the node serving the slot (rds_pipe.c: it shares the
 * connection, and often the write, with other threads' requests) and
 * take its replies. Then:
 *   - MOVED slot host:port: point the slot at that node, refresh (rate
 *     limited), resend at once;
 *   - ASK slot host:port: resend once to that node with ASKING before
 *     each command (a slot in migration); the map stays as it is;
 *   - CLUSTERDOWN, TRYAGAIN, LOADING, MASTERDOWN, READONLY, or a
 *     connection error: refresh, back off (5 ms doubling, at most 100 ms)
 *     and retry, until command_timeout_ms has passed since the request
 *     began; then the last error is returned (KVD_EUNAVAIL for a node that
 *     cannot be reached or a cluster that is down, KVD_ETIMEDOUT for one
 *     that did not answer in time).
 * Every write is idempotent at the level kvd uses it (SET, DEL, a MULTI
 * of them), so resending after a lost reply is safe.
 *
 * Durability wait:N: every write request is followed, on the same
 * connection and in the same write, by WAIT N timeout (one WAIT per
 * pipelined batch, shared by the writes in it: rds_pipe.c); fewer than N
 * acknowledgements within the timeout make the write fail with
 * KVD_ETIMEDOUT (it may still be on the master: the caller was not told
 * it was durable).
 */
#include "rds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RDS_REFRESH_MIN_MS 100
#define RDS_RETRY_MIN_MS   5
#define RDS_RETRY_MAX_MS   100

/* ------------------------------------------------------------- CRC16 */

static uint16_t rds_crc_table[256];
static pthread_once_t rds_crc_once = PTHREAD_ONCE_INIT;

static void
rds_crc16_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint16_t crc = (uint16_t)(i << 8);

        for (int b = 0; b < 8; b++) {
            crc = (uint16_t)((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
        }
        rds_crc_table[i] = crc;
    }
}

static uint16_t
rds_crc16(uint16_t crc, const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++) {
        crc =
            (uint16_t)((crc << 8) ^ rds_crc_table[((crc >> 8) ^ s[i]) & 0xff]);
    }
    return crc;
}

/* The hash tag of key, if it has one (tag and taglen set): true. */
static bool
rds_hash_tag(const void *key, size_t klen, const unsigned char **tag,
             size_t *taglen)
{
    const unsigned char *s = key;
    const unsigned char *open = memchr(s, '{', klen);
    const unsigned char *close;

    if (open == NULL) {
        return false;
    }
    close = memchr(open + 1, '}', klen - (size_t)(open + 1 - s));
    if (close == NULL || close == open + 1) {
        return false;
    }
    *tag = open + 1;
    *taglen = (size_t)(close - open - 1);
    return true;
}

unsigned
rds_slot_raw(const void *key, size_t klen)
{
    const unsigned char *tag;
    size_t taglen;

    pthread_once(&rds_crc_once, rds_crc16_init);
    if (rds_hash_tag(key, klen, &tag, &taglen)) {
        return rds_crc16(0, tag, taglen) & (RDS_SLOTS - 1);
    }
    return rds_crc16(0, key, klen) & (RDS_SLOTS - 1);
}

unsigned
rds_slot(const kvd_engine *db, const void *key, size_t klen)
{
    const unsigned char *tag;
    size_t taglen;

    pthread_once(&rds_crc_once, rds_crc16_init);
    /* the prefix holds no '{', so a tag can only be in the user's key */
    if (rds_hash_tag(key, klen, &tag, &taglen)) {
        return rds_crc16(0, tag, taglen) & (RDS_SLOTS - 1);
    }
    return rds_crc16(rds_crc16(0, db->prefix, db->prefix_len), key, klen) &
           (RDS_SLOTS - 1);
}

/* ---------------------------------------------------------- slot map */

void
rds_map_free(struct rds_map *m)
{
    if (m != NULL) {
        free(m->shards);
        free(m);
    }
}

static struct rds_map *
rds_map_new(void)
{
    struct rds_map *m = calloc(1, sizeof(*m));

    if (m != NULL) {
        memset(m->slot_shard, 0xff, sizeof(m->slot_shard));
    }
    return m;
}

/* The shard whose master is n, added if there is none; -1 on ENOMEM. */
static int
rds_map_shard_of(struct rds_map *m, struct rds_node *n)
{
    struct rds_shard *s;

    for (int i = 0; i < m->nshards; i++) {
        if (m->shards[i].master == n) {
            return i;
        }
    }
    s = realloc(m->shards, (size_t)(m->nshards + 1) * sizeof(*s));
    if (s == NULL) {
        return -1;
    }
    m->shards = s;
    memset(&s[m->nshards], 0, sizeof(*s));
    s[m->nshards].master = n;
    s[m->nshards].first_slot = RDS_SLOTS;
    return m->nshards++;
}

/* A node of a CLUSTER SLOTS entry: [host, port, id, ...]. An empty host
 * means "the address you asked", as Redis documents. */
static struct rds_node *
rds_slots_node(kvd_engine *db, const redisReply *e, const struct rds_node *via)
{
    char host[RDS_HOST_BYTES];

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[0]->len + 1 > sizeof(host)) {
        return NULL;
    }
    if (e->element[0]->len == 0 || strcmp(e->element[0]->str, "?") == 0) {
        snprintf(host, sizeof(host), "%s", via->host);
    } else {
        memcpy(host, e->element[0]->str, e->element[0]->len);
        host[e->element[0]->len] = '\0';
    }
    return rds_node_get(db, host, (int)e->element[1]->integer);
}

static int
rds_map_parse(kvd_engine *db, const redisReply *rep, const struct rds_node *via,
              struct rds_map **out, char *why, size_t whylen)
{
    struct rds_map *m = rds_map_new();

    if (m == NULL) {
        return KVD_ENOMEM;
    }
    if (rep->type != REDIS_REPLY_ARRAY) {
        goto bad;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        struct rds_node *master;
        struct rds_shard *s;
        long long lo;
        long long hi;
        int idx;

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER) {
            goto bad;
        }
        lo = e->element[0]->integer;
        hi = e->element[1]->integer;
        master = rds_slots_node(db, e->element[2], via);
        if (lo < 0 || hi >= RDS_SLOTS || lo > hi || master == NULL) {
            goto bad;
        }
        idx = rds_map_shard_of(m, master);
        if (idx < 0) {
            rds_map_free(m);
            return KVD_ENOMEM;
        }
        s = &m->shards[idx];
        for (size_t r = 3; r < e->elements; r++) {
            struct rds_node *rep_node = rds_slots_node(db, e->element[r], via);
            bool known = false;

            for (int k = 0; k < s->nrep; k++) {
                known = known || s->rep[k] == rep_node;
            }
            if (rep_node != NULL && !known && s->nrep < RDS_MAX_REPLICAS) {
                s->rep[s->nrep++] = rep_node;
            }
        }
        if (lo < s->first_slot) {
            s->first_slot = (int)lo;
        }
        for (long long sl = lo; sl <= hi; sl++) {
            m->slot_shard[sl] = (uint16_t)idx;
        }
    }
    *out = m;
    return 0;
bad:
    rds_map_free(m);
    snprintf(why, whylen, "%s: CLUSTER SLOTS: unexpected reply", via->name);
    return KVD_EPROTO;
}

/* Ask one node for the slot map. */
static int
rds_map_fetch(kvd_engine *db, struct rds_node *n, int64_t deadline,
              struct rds_map **out, char *why, size_t whylen)
{
    redisReply *rep = NULL;
    struct rds_req r;
    int rc;

    rds_req_init(&r);
    rc = rds_cmd_words(&r, "CLUSTER", "SLOTS", NULL);
    if (rc == 0) {
        rc = rds_pipe_call(db, n, &r, false, deadline, &rep, NULL, why, whylen);
    }
    if (rc != 0) {
        goto out;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "%s: CLUSTER SLOTS: %s", n->name, rep->str);
        rc = KVD_EIO;
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 0) {
        snprintf(why, whylen, "%s: CLUSTER SLOTS: no slot is assigned",
                 n->name);
        rc = KVD_EUNAVAIL;
    } else {
        rc = rds_map_parse(db, rep, n, out, why, whylen);
    }
    freeReplyObject(rep);
out:
    rds_req_release(&r);
    return rc;
}

int
rds_map_refresh(kvd_engine *db, bool force, int64_t deadline, char *why,
                size_t whylen)
{
    struct rds_node *cand[RDS_MAX_NODES];
    struct rds_map *m = NULL;
    struct rds_map *old;
    int64_t now;
    int ncand;
    int start;
    int rc = KVD_EUNAVAIL;

    if (!db->cluster) {
        return 0;
    }
    if (force) {
        pthread_mutex_lock(&db->refresh_mu);
    } else if (pthread_mutex_trylock(&db->refresh_mu) != 0) {
        /* another thread is refreshing; waiting for it could take this
         * request past its own deadline */
        return 0;
    }
    now = rds_mono_ms();
    if (!force && db->last_refresh_ms != 0 &&
        now - db->last_refresh_ms < RDS_REFRESH_MIN_MS) {
        /* another thread just did it (perhaps while we waited) */
        pthread_mutex_unlock(&db->refresh_mu);
        return 0;
    }
    db->last_refresh_ms = now;
    pthread_mutex_lock(&db->nodes_mu);
    ncand = db->nnodes;
    memcpy(cand, db->nodes, (size_t)ncand * sizeof(cand[0]));
    pthread_mutex_unlock(&db->nodes_mu);
    /* start somewhere else each time, so one dead node that still
     * accepts connections does not stall every refresh */
    start =
        ncand > 0 ? (int)(atomic_fetch_add(&db->rr, 1) % (unsigned)ncand) : 0;
    snprintf(why, whylen, "no node known");
    for (int i = 0; i < ncand && rc != 0; i++) {
        if (rds_mono_ms() >= deadline) {
            break;
        }
        rc = rds_map_fetch(db, cand[(start + i) % ncand], deadline, &m, why,
                           whylen);
        if (rc == KVD_ENOMEM) {
            break;
        }
    }
    if (rc == 0) {
        pthread_rwlock_wrlock(&db->map_lock);
        old = db->map;
        db->map = m;
        pthread_rwlock_unlock(&db->map_lock);
        rds_map_free(old);
        atomic_fetch_add_explicit(&db->c.refreshes, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&db->refresh_mu);
    return rc;
}

int
rds_masters(kvd_engine *db, struct rds_node ***out, int *n, int *nrep)
{
    struct rds_node **v;
    int cnt = 0;

    *nrep = 0;
    if (!db->cluster) {
        v = malloc(sizeof(*v));
        if (v == NULL) {
            return KVD_ENOMEM;
        }
        v[0] = db->server;
        *out = v;
        *n = 1;
        return 0;
    }
    pthread_rwlock_rdlock(&db->map_lock);
    v = malloc((size_t)(db->map->nshards + 1) * sizeof(*v));
    if (v == NULL) {
        pthread_rwlock_unlock(&db->map_lock);
        return KVD_ENOMEM;
    }
    /* shards serving slots, by lowest slot: a stable scan order that
     * survives failover (the promoted replica serves the same slots) */
    for (int pass_slot = 0; pass_slot < RDS_SLOTS; pass_slot++) {
        unsigned idx = db->map->slot_shard[pass_slot];
        bool seen = false;

        if (idx == RDS_NO_SHARD) {
            continue;
        }
        for (int k = 0; k < cnt; k++) {
            seen = seen || v[k] == db->map->shards[idx].master;
        }
        if (!seen) {
            v[cnt++] = db->map->shards[idx].master;
            *nrep += db->map->shards[idx].nrep;
        }
    }
    pthread_rwlock_unlock(&db->map_lock);
    *out = v;
    *n = cnt;
    return 0;
}

/* The node for slot; NULL when no shard serves it. */
static struct rds_node *
rds_route(kvd_engine *db, int slot, unsigned flags)
{
    struct rds_node *n = NULL;
    unsigned idx;

    if (!db->cluster) {
        return db->server;
    }
    pthread_rwlock_rdlock(&db->map_lock);
    idx = db->map->slot_shard[slot];
    if (idx != RDS_NO_SHARD) {
        const struct rds_shard *s = &db->map->shards[idx];

        n = s->master;
        if ((flags & RDS_RT_READ) && db->o->read_from_replicas && s->nrep > 0) {
            n = s->rep[atomic_fetch_add_explicit(&db->rr, 1,
                                                 memory_order_relaxed) %
                       (unsigned)s->nrep];
        }
    }
    pthread_rwlock_unlock(&db->map_lock);
    return n;
}

/* MOVED: slot now lives at n. */
static void
rds_map_move(kvd_engine *db, int slot, struct rds_node *n)
{
    int idx;

    pthread_rwlock_wrlock(&db->map_lock);
    idx = rds_map_shard_of(db->map, n);
    if (idx >= 0) {
        db->map->slot_shard[slot] = (uint16_t)idx;
    }
    pthread_rwlock_unlock(&db->map_lock);
}

void
rds_replies_free(redisReply **replies, int n)
{
    for (int i = 0; i < n; i++) {
        if (replies[i] != NULL) {
            freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
    }
}

/* ----------------------------------------------------------- execution */

enum rds_verdict {
    RDS_V_OK = 0,
    RDS_V_MOVED,
    RDS_V_ASK,
    RDS_V_RETRY,
};

static bool
rds_err_is(const redisReply *r, const char *word)
{
    size_t n = strlen(word);

    return r->type == REDIS_REPLY_ERROR && r->len >= n &&
           memcmp(r->str, word, n) == 0 && (r->len == n || r->str[n] == ' ');
}

/* "MOVED 3999 127.0.0.1:6381": the slot and the node. */
static struct rds_node *
rds_redirect_node(kvd_engine *db, const redisReply *r,
                  const struct rds_node *via, int *slot)
{
    const char *sp1 = memchr(r->str, ' ', r->len);
    const char *sp2;
    char host[RDS_HOST_BYTES];
    int port;

    if (sp1 == NULL) {
        return NULL;
    }
    *slot = atoi(sp1 + 1);
    sp2 = memchr(sp1 + 1, ' ', r->len - (size_t)(sp1 + 1 - r->str));
    if (sp2 == NULL || *slot < 0 || *slot >= RDS_SLOTS) {
        return NULL;
    }
    if (sp2[1] == ':') { /* unknown endpoint: same host as asked */
        snprintf(host, sizeof(host), "%s", via->host);
        port = atoi(sp2 + 2);
        if (port <= 0 || port > 65535) {
            return NULL;
        }
    } else if (rds_parse_hostport(sp2 + 1, r->len - (size_t)(sp2 + 1 - r->str),
                                  host, sizeof(host), &port) != 0) {
        return NULL;
    }
    return rds_node_get(db, host, port);
}

/* The errors after which rds_exec retries the request. */
static const char *const rds_retry_errors[] = {
    "CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN", "READONLY", NULL};

bool
rds_reply_is_transient(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ERROR) {
        return false;
    }
    if (rds_err_is(r, "MOVED") || rds_err_is(r, "ASK")) {
        return true;
    }
    for (int k = 0; rds_retry_errors[k] != NULL; k++) {
        if (rds_err_is(r, rds_retry_errors[k])) {
            return true;
        }
    }
    return false;
}

/* Look at every reply (and inside EXEC's array) for the errors that
 * call for a redirect or a retry. */
static int
rds_verdict(kvd_engine *db, redisReply **rep, int n, struct rds_node *via,
            bool follow, struct rds_node **target, char *why, size_t whylen)
{
    const char *const *retry = rds_retry_errors;

    for (int i = 0; i < n; i++) {
        const redisReply *r = rep[i];
        int slot;

        if (r->type != REDIS_REPLY_ERROR) {
            continue;
        }
        if (follow && (rds_err_is(r, "MOVED") || rds_err_is(r, "ASK"))) {
            *target = rds_redirect_node(db, r, via, &slot);
            if (*target == NULL) {
                snprintf(why, whylen, "%s: bad redirect: %s", via->name,
                         r->str);
                return RDS_V_RETRY;
            }
            if (rds_err_is(r, "MOVED")) {
                rds_map_move(db, slot, *target);
                return RDS_V_MOVED;
            }
            return RDS_V_ASK;
        }
        for (int k = 0; retry[k] != NULL; k++) {
            if (rds_err_is(r, retry[k])) {
                snprintf(why, whylen, "%s: %s", via->name, r->str);
                return RDS_V_RETRY;
            }
        }
    }
    return RDS_V_OK;
}

/* Check WAIT's answer; the write itself already happened. */
int
rds_check_wait(kvd_engine *db, const struct rds_wait_res *w,
               const struct rds_node *n, char *why, size_t whylen)
{
    if (w->acks >= db->wait_replicas) {
        return 0;
    }
    atomic_fetch_add_explicit(&db->c.wait_short, 1, memory_order_relaxed);
    if (w->acks >= 0) {
        snprintf(why, whylen,
                 "%s: durability wait:%d: only %lld replica(s) confirmed the "
                 "write within %lld ms",
                 n->name, db->wait_replicas, w->acks,
                 (long long)db->cmd_timeout_ms);
    } else {
        snprintf(why, whylen, "%s: WAIT: %s", n->name, w->err);
    }
    return KVD_ETIMEDOUT;
}

/* One attempt on node n. *v tells what the replies asked for. */
static int
rds_attempt(kvd_engine *db, struct rds_node *n, bool follow,
            const struct rds_req *r, bool want_wait, int64_t deadline,
            redisReply **rep, struct rds_wait_res *wres, int *v,
            struct rds_node **target, char *why, size_t whylen)
{
    int rc;

    *v = RDS_V_OK;
    rc = rds_pipe_call(db, n, r, want_wait, deadline, rep, wres, why, whylen);
    if (rc != 0) {
        return rc;
    }
    *v = rds_verdict(db, rep, r->ncmds, n, follow, target, why, whylen);
    if (*v != RDS_V_OK) {
        rds_replies_free(rep, r->ncmds);
    }
    return 0;
}

int
rds_exec(kvd_engine *db, const struct rds_req *r, int slot,
         struct rds_node *node, unsigned flags, redisReply **replies, char *why,
         size_t whylen)
{
    return rds_exec_until(db, r, slot, node, flags,
                          rds_mono_ms() + db->cmd_timeout_ms, replies, why,
                          whylen);
}

int
rds_exec_until(kvd_engine *db, const struct rds_req *r, int slot,
               struct rds_node *node, unsigned flags, int64_t deadline,
               redisReply **replies, char *why, size_t whylen)
{
    bool want_wait = (flags & RDS_RT_WRITE) && db->wait_replicas > 0;
    struct rds_wait_res wres = {.acks = -1};
    struct rds_node *ask_node = NULL;
    struct rds_req asking;
    redisReply *stack[2 * RDS_REQ_OFFS];
    int64_t backoff = RDS_RETRY_MIN_MS;
    int redirects = 0;
    int rc;

    rds_req_init(&asking);
    for (;;) {
        struct rds_node *n = node;
        struct rds_node *target = NULL;
        int v;

        if (ask_node != NULL) {
            n = ask_node;
        } else if (n == NULL) {
            n = rds_route(db, slot, flags);
        }
        if (n == NULL) {
            snprintf(why, whylen,
                     "hash slot %d is served by no node (cluster down or "
                     "resharding)",
                     slot);
            rc = KVD_EUNAVAIL;
        } else if (ask_node != NULL) {
            /* replies of the ASKING commands are interleaved: compact */
            rc = asking.ncmds <= (int)(sizeof(stack) / sizeof(*stack))
                     ? rds_attempt(db, n, true, &asking, want_wait, deadline,
                                   stack, &wres, &v, &target, why, whylen)
                     : KVD_EBUSY;
            ask_node = NULL;
            if (rc == 0 && v == RDS_V_OK) {
                for (int i = 0; i < r->ncmds; i++) {
                    freeReplyObject(stack[2 * i]);
                    replies[i] = stack[2 * i + 1];
                }
            }
        } else {
            /* a request for a fixed node (scan) takes MOVED as an answer */
            rc = rds_attempt(db, n, node == NULL, r, want_wait, deadline,
                             replies, &wres, &v, &target, why, whylen);
        }
        if (rc == 0 && v == RDS_V_OK) {
            if (want_wait) {
                rc = rds_check_wait(db, &wres, n, why, whylen);
                if (rc != 0) {
                    rds_replies_free(replies, r->ncmds);
                }
            }
            goto out;
        }
        if (rc == 0 && (v == RDS_V_MOVED || v == RDS_V_ASK)) {
            if (++redirects > RDS_MAX_REDIRECTS) {
                snprintf(why, whylen, "%s: more than %d redirects for slot %d",
                         n->name, RDS_MAX_REDIRECTS, slot);
                rc = KVD_EIO;
                goto out;
            }
            if (v == RDS_V_MOVED) {
                atomic_fetch_add_explicit(&db->c.moved, 1,
                                          memory_order_relaxed);
                char ignored[RDS_ERRMSG_BYTES];
                rds_map_refresh(db, false, deadline, ignored, sizeof(ignored));
                continue;
            }
            atomic_fetch_add_explicit(&db->c.ask, 1, memory_order_relaxed);
            rds_req_release(&asking);
            if (rds_req_with_asking(r, &asking) == 0) {
                ask_node = target;
                continue;
            }
            /* a MULTI cannot be split with ASKING: wait out the move */
            snprintf(why, whylen,
                     "%s: hash slot %d is migrating; the batch is retried",
                     n->name, slot);
            rc = KVD_EBUSY;
        } else if (rc == 0) {
            rc = KVD_EUNAVAIL; /* CLUSTERDOWN and friends: why is set */
        }
        if (rc == KVD_ENOMEM || rc == KVD_ECONFIG || rc == KVD_EPROTO) {
            goto out;
        }
        /* connection error, timeout or a cluster in transition */
        if ((flags & RDS_RT_ONCE) || rds_mono_ms() + backoff >= deadline) {
            atomic_fetch_add_explicit(&db->c.timeouts, 1, memory_order_relaxed);
            goto out;
        }
        atomic_fetch_add_explicit(&db->c.retries, 1, memory_order_relaxed);
        if (node == NULL) {
            char ignored[RDS_ERRMSG_BYTES];
            rds_map_refresh(db, false, deadline, ignored, sizeof(ignored));
        }
        rds_sleep_ms(backoff);
        backoff =
            backoff * 2 > RDS_RETRY_MAX_MS ? RDS_RETRY_MAX_MS : backoff * 2;
    }
out:
    rds_req_release(&asking);
    return rc;
}
