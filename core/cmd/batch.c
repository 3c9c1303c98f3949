/*
 * core/cmd/batch.c -- deferred execution of simple commands (struct
 * kvd_cmd_api.defer, batch_run, batch_reply).
 *
 * Why: an engine whose operations cost a network round trip (redis) or a
 * WAL write (lsm) serves one command per call far below what it can do
 * with many in flight. A frontend event loop that reads the requests of
 * many clients in one pass queues the simple ones here, runs them through
 * one kvd_store_multi() call, and then writes each reply in its place.
 *
 * Only GET key, SET key value (no options) and DEL/UNLINK key are queued:
 * they map onto one engine operation each, with a reply that depends on
 * that operation's status alone. Everything else, and any command the
 * store would refuse (empty or oversized key or value), goes through
 * kvd_cmd_exec as before, so errors keep one code path.
 *
 * Keys and values are copied into one arena at defer time (a frontend may
 * reuse its read buffer before the batch runs); ops[] points into the
 * arena only once it stops growing, in kvd_cmd_batch_run.
 *
 * A batch belongs to one thread at a time; it shares nothing but the
 * counters (atomics) with other threads.
 */
#include <stdlib.h>
#include <string.h>

#include "core/cmd/cmd_int.h"

#define CMD_BATCH_MAX         512               /* tickets per batch */
#define CMD_BATCH_ARENA_BYTES (1024 * 1024)     /* then KVD_EBUSY */
#define CMD_BATCH_KEEP_BYTES  (4 * 1024 * 1024) /* arena kept between runs */

enum cmd_ticket_kind {
    CMD_T_GET = 1,
    CMD_T_SET = 2,
    CMD_T_DEL = 3,
};

struct cmd_ticket {
    kvd_session *sess;
    const struct kvd_cmd_entry *ent;
    int kind; /* enum cmd_ticket_kind */
    size_t koff;
    size_t klen;
    size_t voff;
    size_t vlen;
};

struct kvd_cmd_batch {
    kvd_cmd *cmd;
    const struct kvd_cmd_entry *e_get, *e_set, *e_del, *e_unlink;
    size_t n;
    bool ran;
    uint64_t nsec_each; /* the run's time, shared out for commandstats */
    int64_t end_ms;     /* when the run ended: each session's last_ms */
    struct kvd_cmd_buf arena;
    struct cmd_ticket t[CMD_BATCH_MAX];
    struct kvd_mop ops[CMD_BATCH_MAX];
};

kvd_cmd_batch *
kvd_cmd_batch_create(kvd_cmd *c)
{
    kvd_cmd_batch *b;

    if (!kvd_store_has_multi(c->st)) {
        return NULL; /* one call per command costs the same: keep exec */
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->cmd = c;
    b->e_get = kvd_cmd_entry_find(c, "get", 3);
    b->e_set = kvd_cmd_entry_find(c, "set", 3);
    b->e_del = kvd_cmd_entry_find(c, "del", 3);
    b->e_unlink = kvd_cmd_entry_find(c, "unlink", 6);
    return b;
}

void
kvd_cmd_batch_destroy(kvd_cmd_batch *b)
{
    if (b == NULL) {
        return;
    }
    kvd_cmd_batch_clear(b);
    free(b->arena.p);
    free(b);
}

size_t
kvd_cmd_batch_count(const kvd_cmd_batch *b)
{
    return b->n;
}

/* Which simple command argv is, or 0 when it is none of them. */
static int
cmd_batch_kind(const kvd_cmd_batch *b, size_t argc, const char *const *argv,
               const size_t *argl, const struct kvd_cmd_entry **ent)
{
    if (argc == 2 && kvd_cmd_word_eq(argv[0], argl[0], "get")) {
        *ent = b->e_get;
        return CMD_T_GET;
    }
    if (argc == 3 && kvd_cmd_word_eq(argv[0], argl[0], "set")) {
        *ent = b->e_set;
        return CMD_T_SET;
    }
    if (argc == 2 && kvd_cmd_word_eq(argv[0], argl[0], "del")) {
        *ent = b->e_del;
        return CMD_T_DEL;
    }
    if (argc == 2 && kvd_cmd_word_eq(argv[0], argl[0], "unlink")) {
        *ent = b->e_unlink;
        return CMD_T_DEL;
    }
    return 0;
}

int
kvd_cmd_defer(kvd_cmd_batch *b, kvd_session *s, size_t argc,
              const char *const *argv, const size_t *argl)
{
    const struct kvd_cmd_entry *ent = NULL;
    struct cmd_ticket *t;
    size_t klen, vlen = 0;
    int kind;

    if (b->ran || !s->authed || argc < 2) {
        return KVD_ENOTSUP;
    }
    kind = cmd_batch_kind(b, argc, argv, argl, &ent);
    if (kind == 0 || ent == NULL) {
        return KVD_ENOTSUP;
    }
    klen = argl[1];
    if (kvd_store_check_key(b->cmd->st, klen) != 0) {
        return KVD_ENOTSUP; /* exec writes the error */
    }
    if (kind == CMD_T_SET) {
        vlen = argl[2];
        if (kvd_store_check_value(b->cmd->st, vlen) != 0) {
            return KVD_ENOTSUP;
        }
    }
    if (b->n == CMD_BATCH_MAX ||
        (b->n > 0 && b->arena.len + klen + vlen > CMD_BATCH_ARENA_BYTES)) {
        return KVD_EBUSY;
    }
    t = &b->t[b->n];
    t->sess = s;
    t->ent = ent;
    t->kind = kind;
    t->koff = b->arena.len;
    t->klen = klen;
    t->voff = t->koff + klen;
    t->vlen = vlen;
    if (kvd_cmd_buf_append(&b->arena, argv[1], klen) != 0 ||
        (vlen > 0 && kvd_cmd_buf_append(&b->arena, argv[2], vlen) != 0)) {
        b->arena.len = t->koff;
        return KVD_ENOTSUP; /* out of memory: exec reports it */
    }
    kvd_store_metric_add(b->cmd->st, KVD_M_COMMANDS, 1);
    return (int)b->n++;
}

void
kvd_cmd_batch_run(kvd_cmd_batch *b)
{
    static const int mop_of[] = {
        [CMD_T_GET] = KVD_MOP_GET,
        [CMD_T_SET] = KVD_MOP_PUT,
        [CMD_T_DEL] = KVD_MOP_DEL,
    };
    uint64_t t0, t1;

    if (b->ran || b->n == 0) {
        b->ran = true;
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct cmd_ticket *t = &b->t[i];
        struct kvd_mop *op = &b->ops[i];
        memset(op, 0, sizeof(*op));
        op->type = mop_of[t->kind];
        op->key = b->arena.p + t->koff;
        op->klen = t->klen;
        if (t->kind == CMD_T_SET) {
            /* A zero-length value still needs a non-NULL pointer. */
            op->val = b->arena.p + t->voff;
            op->vlen = t->vlen;
            op->expire_ms = KVD_NO_EXPIRY; /* plain SET drops any TTL */
        }
    }
    t0 = kvd_cmd_now_ns();
    kvd_store_multi(b->cmd->st, b->ops, b->n); /* every status is set */
    t1 = kvd_cmd_now_ns();
    b->nsec_each = (t1 - t0) / b->n;
    b->end_ms = (int64_t)(t1 / 1000000u);
    b->ran = true;
}

void
kvd_cmd_batch_reply(kvd_cmd_batch *b, size_t ticket,
                    const struct kvd_reply_ops *ops, void *w)
{
    const struct cmd_ticket *t;
    struct kvd_mop *op;
    struct kvd_cmd_counters *ctr;
    struct kvd_cmd_ctx x;
    int rc;

    if (!b->ran || ticket >= b->n) {
        return;
    }
    t = &b->t[ticket];
    op = &b->ops[ticket];
    rc = op->status;
    memset(&x, 0, sizeof(x));
    x.cmd = b->cmd;
    x.sess = t->sess;
    x.st = b->cmd->st;
    x.ops = ops;
    x.w = w;
    x.ent = t->ent;
    /* The replies of str_get, str_set and keys_del for one key. */
    switch (t->kind) {
    case CMD_T_GET:
        if (rc == 0) {
            kvd_cmd_reply_bulk(&x, op->out.data, op->out.len);
            kvd_val_release(&op->out);
        } else if (rc == KVD_ENOTFOUND) {
            kvd_cmd_reply_null(&x);
        } else {
            kvd_cmd_reply_status_error(&x, rc);
        }
        break;
    case CMD_T_SET:
        if (rc == 0) {
            kvd_cmd_reply_ok(&x);
        } else {
            kvd_cmd_reply_status_error(&x, rc);
        }
        break;
    default:
        if (rc == 0 || rc == KVD_ENOTFOUND) {
            kvd_cmd_reply_int(&x, rc == 0 ? 1 : 0);
        } else {
            kvd_cmd_reply_status_error(&x, rc);
        }
        break;
    }
    ctr = kvd_cmd_counters_of(t->sess, t->ent);
    atomic_fetch_add_explicit(&ctr->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->nsec, b->nsec_each, memory_order_relaxed);
    if (x.failed) {
        atomic_fetch_add_explicit(&ctr->failed, 1, memory_order_relaxed);
    }
    atomic_store_explicit(&t->sess->last_ms, b->end_ms, memory_order_relaxed);
}

void
kvd_cmd_batch_clear(kvd_cmd_batch *b)
{
    if (b->ran) {
        /* Values of tickets whose reply was never asked for. */
        for (size_t i = 0; i < b->n; i++) {
            kvd_val_release(&b->ops[i].out);
        }
    }
    b->n = 0;
    b->ran = false;
    b->arena.len = 0;
    if (b->arena.cap > CMD_BATCH_KEEP_BYTES) {
        free(b->arena.p);
        b->arena.p = NULL;
        b->arena.cap = 0;
    }
}
