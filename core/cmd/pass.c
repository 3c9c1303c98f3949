/*
 * core/cmd/pass.c -- deferred execution: the commands of one event-loop
 * pass, run as one kvd_store_multi() call.
 *
 * Why: an engine whose operations cost a network round trip (redis) or a
 * WAL write (lsm) serves one command per call far below what it can do
 * with many in flight. A frontend event loop that reads the requests of
 * many clients in one pass lets kvd_cmd_call() queue the ones that can
 * wait; the pass then runs them through one kvd_store_multi() and writes
 * each reply, in queue order, through its session's encoder.
 *
 * Which commands can wait is the command table's business: an entry with
 * prep and reply (cmd_int.h) maps an invocation onto one engine operation
 * whose reply depends on that operation's result alone (GET key, SET key
 * value, DEL key). The direct form of the same command uses the same two
 * functions, so a reply cannot depend on which path ran it. An operation
 * the store would refuse before reaching the engine (empty or oversized
 * key or value) is not queued: the direct form writes its error, so
 * errors keep one code path.
 *
 * When it runs: pass_end (the frontend's end of the loop pass, or its
 * back-pressure), a call of a session with queued commands whose command
 * cannot wait (call.c), or a full pass (tickets or arena bytes) before it
 * takes one more.
 *
 * Keys and values are copied into one arena when queued (a frontend may
 * reuse its read buffer before the pass runs); the operations point into
 * the arena only once it stops growing, when the pass runs.
 *
 * Thread-safety: a pass and its sessions belong to one thread; a pass
 * shares nothing with other threads but the counters (atomics) and the
 * store.
 */
#include "core/cmd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/cmd/cmd_int.h"

#define PASS_MAX         512               /* tickets per pass */
#define PASS_ARENA_BYTES (1024 * 1024)     /* then it runs */
#define PASS_KEEP_BYTES  (4 * 1024 * 1024) /* arena kept between runs */

struct pass_ticket {
    kvd_session *sess; /* NULL once the session was destroyed */
    const struct kvd_cmd_entry *ent;
    int type; /* enum kvd_mop_type */
    int64_t expire_ms;
    size_t koff;
    size_t klen;
    size_t voff;
    size_t vlen;
};

struct kvd_cmd_pass {
    kvd_cmd *cmd;
    size_t n;
    bool running;
    struct kvd_cmd_buf arena;
    struct pass_ticket t[PASS_MAX];
    struct kvd_mop ops[PASS_MAX];
};

kvd_cmd_pass *
kvd_cmd_pass_create(kvd_cmd *c)
{
    kvd_cmd_pass *p;

    if (!kvd_store_has_multi(c->st)) {
        return NULL; /* one call per command costs the same: run directly */
    }
    p = calloc(1, sizeof(*p));
    if (p != NULL) {
        p->cmd = c;
    }
    return p;
}

size_t
kvd_cmd_pass_pending(const kvd_cmd_pass *p)
{
    return p->n;
}

/* Run every ticket and write its reply. Returns the replies written. */
static size_t
pass_run(kvd_cmd_pass *p)
{
    size_t n = p->n, written = 0;
    uint64_t t0, t1, nsec_each;
    int64_t end_ms;

    if (n == 0 || p->running) {
        return 0;
    }
    p->running = true;
    for (size_t i = 0; i < n; i++) {
        const struct pass_ticket *t = &p->t[i];
        struct kvd_mop *op = &p->ops[i];
        memset(op, 0, sizeof(*op));
        op->type = t->type;
        op->key = p->arena.p + t->koff;
        op->klen = t->klen;
        if (t->type == KVD_MOP_PUT) {
            /* A zero-length value still needs a non-NULL pointer. */
            op->val = p->arena.p + t->voff;
            op->vlen = t->vlen;
            op->expire_ms = t->expire_ms;
        }
    }
    t0 = kvd_cmd_now_ns();
    kvd_store_multi(p->cmd->st, p->ops, n); /* every status is set */
    t1 = kvd_cmd_now_ns();
    nsec_each = (t1 - t0) / n;
    end_ms = (int64_t)(t1 / 1000000u);
    for (size_t i = 0; i < n; i++) {
        struct pass_ticket *t = &p->t[i];
        struct kvd_mop *op = &p->ops[i];
        kvd_session *s = t->sess;
        if (s == NULL) {
            if (op->status == 0 && op->type == KVD_MOP_GET) {
                kvd_val_release(&op->out);
            }
            continue;
        }
        struct kvd_cmd_ctx x = {
            .cmd = p->cmd,
            .sess = s,
            .st = p->cmd->st,
            .enc = &s->enc,
            .ent = t->ent,
        };
        t->ent->def->reply(&x, op);
        s->queued--;
        written++;
        struct kvd_cmd_counters *ctr = kvd_cmd_counters_of(s, t->ent);
        atomic_fetch_add_explicit(&ctr->calls, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&ctr->nsec, nsec_each, memory_order_relaxed);
        if (x.failed) {
            atomic_fetch_add_explicit(&ctr->failed, 1, memory_order_relaxed);
        }
        atomic_store_explicit(&s->last_ms, end_ms, memory_order_relaxed);
        atomic_store_explicit(&s->last_ent, t->ent, memory_order_relaxed);
    }
    p->n = 0;
    p->arena.len = 0;
    if (p->arena.cap > PASS_KEEP_BYTES) {
        kvd_cmd_buf_release(&p->arena);
    }
    p->running = false;
    return written;
}

size_t
kvd_cmd_pass_end(kvd_cmd_pass *p)
{
    return p != NULL ? pass_run(p) : 0;
}

void
kvd_cmd_pass_destroy(kvd_cmd_pass *p)
{
    if (p == NULL) {
        return;
    }
    pass_run(p);
    kvd_cmd_buf_release(&p->arena);
    free(p);
}

int
kvd_cmd_pass_queue(kvd_cmd_pass *p, struct kvd_cmd_ctx *x,
                   const struct kvd_mop *op)
{
    kvd_store *st = p->cmd->st;
    size_t vlen = op->type == KVD_MOP_PUT ? op->vlen : 0;
    struct pass_ticket *t;

    if (p->running || kvd_store_check_key(st, op->klen) != 0 ||
        (op->type == KVD_MOP_PUT && kvd_store_check_value(st, vlen) != 0)) {
        return KVD_EINVAL; /* the direct form writes the error */
    }
    if (p->n == PASS_MAX ||
        (p->n > 0 && p->arena.len + op->klen + vlen > PASS_ARENA_BYTES)) {
        pass_run(p);
    }
    t = &p->t[p->n];
    t->koff = p->arena.len;
    if (kvd_cmd_buf_append(&p->arena, op->key, op->klen) != 0 ||
        (vlen > 0 && kvd_cmd_buf_append(&p->arena, op->val, vlen) != 0)) {
        p->arena.len = t->koff;
        return KVD_ENOMEM; /* the direct form reports it */
    }
    t->sess = x->sess;
    t->ent = x->ent;
    t->type = op->type;
    t->expire_ms = op->expire_ms;
    t->klen = op->klen;
    t->voff = t->koff + op->klen;
    t->vlen = vlen;
    p->n++;
    x->sess->queued++;
    return 0;
}

void
kvd_cmd_pass_forget(kvd_cmd_pass *p, kvd_session *s)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->t[i].sess == s) {
            p->t[i].sess = NULL;
        }
    }
    s->queued = 0;
}
