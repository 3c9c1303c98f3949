/*
 * engines/redis/rds_multi.c -- multi(): many independent get, put and del
 * operations in one call, at the cost of about one round trip.
 *
 * The core calls multi with the requests that one pass of a frontend's
 * event loop gathered from its clients. Calling get/put/del for each
 * would cost one round trip after the other (the calls are synchronous),
 * so here:
 *
 *   1. Route. Every operation goes to the node that serves its key's hash
 *      slot: the slot's master, or, when read_from_replicas is on and
 *      every operation for that shard is a GET, one of its replicas (as
 *      get would pick). A plain server takes everything. All operations
 *      for one node form one request, in array order, so the operations
 *      on one key travel together, in order, over one connection, and a
 *      GET sees the PUT or DEL before it.
 *   2. Send. Each operation is the very commands get, put or del send
 *      (GET + PEXPIRETIME; SET ... [PXAT t], or DEL for a past expiry;
 *      PEXPIRETIME + DEL). With durability = wait:N a request holding
 *      writes is followed by one WAIT, which covers them all.
 *      rds_pipe_run queues every node's request and writes them all
 *      before waiting for any reply (rds_pipe.c), sharing each node's
 *      connection with the other threads' requests as a single call does.
 *   3. Answer. Each operation's replies are read exactly as get/put/del
 *      read theirs (the same functions, rds_engine.c); a write whose
 *      node's WAIT confirmed too few replicas (or did not answer in time)
 *      fails with KVD_ETIMEDOUT as put and del do. A GET that shares a
 *      request with writes waits for their WAIT, but never fails by it:
 *      its replies are kept when only WAIT's answer is missing.
 *   4. Run alone what could not be answered: an operation with a MOVED,
 *      ASK, TRYAGAIN, CLUSTERDOWN (...) reply, one whose slot no node
 *      serves, every later operation on the same key (so the order on a
 *      key holds), and the operations of a node whose request failed as a
 *      whole (connection lost, no reply in time). These go, in array
 *      order, through the path get/put/del take (rds_exec: redirects,
 *      slot-map refresh, retries with backoff), so they end as they would
 *      have alone.
 *
 * Time: the whole call has one deadline, command_timeout_ms from its
 * start, as if each operation had been called alone at that moment; the
 * retries of step 4 share it. Once it has passed, an operation whose node
 * failed gets that failure (KVD_ETIMEDOUT or KVD_EUNAVAIL, the node named
 * in the log) without another try, so a paused or dead node costs the
 * call one command_timeout_ms, not one per operation.
 *
 * Memory: one plan entry per operation, one request and reply array per
 * node; if they cannot be allocated nothing is sent and every status is
 * KVD_ENOMEM (the call's return too), as the contract asks.
 *
 * Threads: any number at once; nothing here is shared but the engine's
 * map (read under map_lock), nodes and pipes (rds_pipe.c's locking).
 */
#include "rds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One operation's place in the plan. */
struct rds_mplan {
    int group;  /* its node request; -1: none (run alone, or invalid) */
    int first;  /* its first reply within the group's */
    bool alone; /* step 4 runs it */
};

/* One node's request. */
struct rds_mgroup {
    struct rds_node *node;
    unsigned shard; /* the shard serving it (cluster) */
    bool writes;    /* holds a PUT or DEL: to the master, with WAIT */
    int ncmds;
    bool any_alone; /* an operation of it runs alone */
    int fail_rc;    /* its node's last failure, 0 if none */
};

static int
rds_mop_ncmds(const struct kvd_mop *op)
{
    switch (op->type) {
    case KVD_MOP_GET:
        return RDS_GET_CMDS;
    case KVD_MOP_PUT:
        return RDS_PUT_CMDS;
    default:
        return RDS_DEL_CMDS;
    }
}

static bool
rds_mop_valid(const struct kvd_mop *op)
{
    return (op->type == KVD_MOP_GET || op->type == KVD_MOP_PUT ||
            op->type == KVD_MOP_DEL) &&
           op->key != NULL && op->klen > 0 &&
           (op->type != KVD_MOP_PUT || op->val != NULL || op->vlen == 0);
}

/* The group of a new node request for shard, or the existing one. */
static int
rds_multi_group(struct rds_mgroup *g, int *ng, int *gidx, unsigned shard)
{
    if (gidx[shard] < 0) {
        gidx[shard] = *ng;
        g[*ng] = (struct rds_mgroup){.shard = shard};
        (*ng)++;
    }
    return gidx[shard];
}

/*
 * Step 1: a group per node, under one look at the slot map, for every
 * operation with no status yet (the others are invalid). gidx has room
 * for RDS_MAX_NODES (a shard per master node at most), all -1.
 * Operations whose slot no shard serves are left to run alone.
 */
static void
rds_multi_route(kvd_engine *db, struct kvd_mop *ops, size_t n,
                struct rds_mplan *plan, struct rds_mgroup *g, int *ng,
                int *gidx)
{
    *ng = 0;
    if (!db->cluster) {
        for (size_t i = 0; i < n; i++) {
            if (ops[i].status == 0) {
                plan[i].group = rds_multi_group(g, ng, gidx, 0);
                g[0].node = db->server;
                g[0].writes = g[0].writes || ops[i].type != KVD_MOP_GET;
            }
        }
        return;
    }
    pthread_rwlock_rdlock(&db->map_lock);
    for (size_t i = 0; i < n; i++) {
        unsigned shard;
        int gi;

        if (ops[i].status != 0) {
            continue; /* invalid */
        }
        shard = db->map->slot_shard[rds_slot(db, ops[i].key, ops[i].klen)];
        if (shard == RDS_NO_SHARD || shard >= RDS_MAX_NODES) {
            plan[i].group = -1;
            plan[i].alone = true;
            continue;
        }
        gi = rds_multi_group(g, ng, gidx, shard);
        plan[i].group = gi;
        g[gi].writes = g[gi].writes || ops[i].type != KVD_MOP_GET;
    }
    for (int k = 0; k < *ng; k++) {
        const struct rds_shard *s = &db->map->shards[g[k].shard];

        g[k].node = s->master;
        if (!g[k].writes && db->o->read_from_replicas && s->nrep > 0) {
            g[k].node = s->rep[atomic_fetch_add_explicit(&db->rr, 1,
                                                         memory_order_relaxed) %
                               (unsigned)s->nrep];
        }
    }
    pthread_rwlock_unlock(&db->map_lock);
}

/* Step 2's requests: every routed operation's commands, in array order,
 * into its group's request. 0 or KVD_ENOMEM. */
static int
rds_multi_build(kvd_engine *db, struct kvd_mop *ops, size_t n,
                struct rds_mplan *plan, struct rds_mgroup *g,
                struct rds_req *reqs)
{
    for (size_t i = 0; i < n; i++) {
        struct rds_mgroup *gr;
        int rc;

        if (plan[i].group < 0) {
            continue;
        }
        gr = &g[plan[i].group];
        plan[i].first = gr->ncmds;
        gr->ncmds += rds_mop_ncmds(&ops[i]);
        rc = rds_cmd_mop(db, &reqs[plan[i].group], &ops[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Whether an earlier operation of op i's group, on the same key, runs
 * alone: then op i must too, after it. */
static bool
rds_multi_follows_alone(const struct kvd_mop *ops, const struct rds_mplan *plan,
                        size_t i)
{
    for (size_t h = 0; h < i; h++) {
        if (plan[h].alone && plan[h].group == plan[i].group &&
            ops[h].klen == ops[i].klen &&
            memcmp(ops[h].key, ops[i].key, ops[i].klen) == 0) {
            return true;
        }
    }
    return false;
}

/* Step 3 for operation i, whose group's request was answered. */
static void
rds_multi_answer(kvd_engine *db, struct kvd_mop *op, struct rds_mplan *pl,
                 struct rds_mgroup *gr, struct rds_pipe_job *job,
                 const struct kvd_mop *ops, const struct rds_mplan *plan,
                 size_t i)
{
    redisReply **rep = job->replies + pl->first;
    int k = rds_mop_ncmds(op);
    bool transient = false;

    for (int c = 0; c < k; c++) {
        transient = transient || rds_reply_is_transient(rep[c]);
    }
    if (transient || (gr->any_alone && rds_multi_follows_alone(ops, plan, i))) {
        rds_replies_free(rep, k);
        pl->alone = true;
        gr->any_alone = true;
        return;
    }
    if (op->type != KVD_MOP_GET && job->want_wait) {
        char why[RDS_ERRMSG_BYTES];
        int rc = rds_check_wait(db, &job->wres, gr->node, why, sizeof(why));

        if (rc != 0) {
            rds_warn(db, "%s: %s", op->type == KVD_MOP_PUT ? "put" : "del",
                     why);
            rds_replies_free(rep, k);
            op->status = rc;
            return;
        }
    }
    op->status = rds_mop_reply(db, op, rep, &op->out);
}

/* Step 3: every operation whose group was sent, in array order. */
static void
rds_multi_answers(kvd_engine *db, struct kvd_mop *ops, size_t n,
                  struct rds_mplan *plan, struct rds_mgroup *g,
                  struct rds_pipe_job *jobs, int ng)
{
    for (int k = 0; k < ng; k++) {
        int rc = jobs[k].rc;

        if (rc != 0) {
            rds_warn(db, "multi: %s", jobs[k].why);
            g[k].fail_rc = rc;
            g[k].any_alone = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct rds_mplan *pl = &plan[i];
        int rc;

        if (pl->group < 0) {
            continue;
        }
        rc = jobs[pl->group].rc;
        if (rc == KVD_ENOMEM || rc == KVD_ECONFIG || rc == KVD_EPROTO) {
            /* rds_exec gives these up at once too */
            ops[i].status = rc;
        } else if (rc != 0) {
            pl->alone = true;
        } else {
            rds_multi_answer(db, &ops[i], pl, &g[pl->group], &jobs[pl->group],
                             ops, plan, i);
        }
    }
}

/* Step 4: in array order, each operation left as get/put/del would run
 * it, until the call's deadline. */
static void
rds_multi_alone(kvd_engine *db, struct kvd_mop *ops, size_t n,
                struct rds_mplan *plan, struct rds_mgroup *g, int64_t deadline)
{
    for (size_t i = 0; i < n; i++) {
        struct rds_mgroup *gr = plan[i].group >= 0 ? &g[plan[i].group] : NULL;
        int rc;

        if (!plan[i].alone) {
            continue;
        }
        atomic_fetch_add_explicit(&db->c.multi_alone, 1, memory_order_relaxed);
        if (gr != NULL && gr->fail_rc != 0 && rds_mono_ms() >= deadline) {
            /* its node failed and no time is left to try again */
            ops[i].status = gr->fail_rc;
            continue;
        }
        rc = rds_mop_alone(db, &ops[i], deadline, &ops[i].out);
        if (gr != NULL && (rc == KVD_EUNAVAIL || rc == KVD_ETIMEDOUT)) {
            gr->fail_rc = rc;
        }
        ops[i].status = rc;
    }
}

int
rds_multi(kvd_engine *db, struct kvd_mop *ops, size_t n)
{
    int64_t deadline = rds_mono_ms() + db->cmd_timeout_ms;
    size_t maxg = n < RDS_MAX_NODES ? n : RDS_MAX_NODES;
    struct rds_mplan *plan = NULL;
    struct rds_mgroup *g = NULL;
    struct rds_req *reqs = NULL;
    struct rds_pipe_job *jobs = NULL;
    redisReply **replies = NULL;
    int *gidx = NULL;
    size_t nrep = 0;
    int ng = 0;
    int rc = KVD_ENOMEM;

    atomic_fetch_add_explicit(&db->c.multi_calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&db->c.multi_ops, n, memory_order_relaxed);
    if (n == 0) {
        return 0;
    }
    plan = calloc(n, sizeof(*plan));
    g = calloc(maxg, sizeof(*g));
    gidx = malloc(RDS_MAX_NODES * sizeof(*gidx));
    if (plan == NULL || g == NULL || gidx == NULL) {
        goto out;
    }
    memset(gidx, 0xff, RDS_MAX_NODES * sizeof(*gidx)); /* all -1 */
    for (size_t i = 0; i < n; i++) {
        plan[i].group = -1;
        /* the core validates; never send what get/put/del refuse */
        ops[i].status = rds_mop_valid(&ops[i]) ? 0 : KVD_EINVAL;
    }
    rds_multi_route(db, ops, n, plan, g, &ng, gidx);
    reqs = calloc((size_t)ng + 1, sizeof(*reqs));
    jobs = calloc((size_t)ng + 1, sizeof(*jobs));
    if (reqs == NULL || jobs == NULL) {
        goto out;
    }
    for (int k = 0; k < ng; k++) {
        rds_req_init(&reqs[k]);
    }
    if (rds_multi_build(db, ops, n, plan, g, reqs) != 0) {
        goto out;
    }
    for (int k = 0; k < ng; k++) {
        nrep += (size_t)g[k].ncmds;
    }
    replies = calloc(nrep + 1, sizeof(*replies));
    if (replies == NULL) {
        goto out;
    }
    nrep = 0;
    for (int k = 0; k < ng; k++) {
        jobs[k].node = g[k].node;
        jobs[k].r = &reqs[k];
        jobs[k].want_wait = g[k].writes && db->wait_replicas > 0;
        jobs[k].replies = replies + nrep;
        nrep += (size_t)g[k].ncmds;
    }
    rds_pipe_run(db, jobs, ng, deadline);
    rds_multi_answers(db, ops, n, plan, g, jobs, ng);
    rds_multi_alone(db, ops, n, plan, g, deadline);
    rc = 0;
out:
    if (rc != 0) {
        /* nothing was sent, no value handed out */
        for (size_t i = 0; i < n; i++) {
            ops[i].status = rc;
        }
    }
    for (int k = 0; reqs != NULL && k < ng; k++) {
        rds_req_release(&reqs[k]);
    }
    free(replies);
    free(jobs);
    free(reqs);
    free(gidx);
    free(g);
    free(plan);
    return rc;
}
