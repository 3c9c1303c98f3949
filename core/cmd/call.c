/*
 * core/cmd/call.c -- the executor: one command from argv to its reply.
 *
 * kvd_cmd_call() finds the command (cmd.c's index), checks arity, then
 * AUTH, in that order (so a wrong command is reported as such even before
 * AUTH). Inside MULTI it queues the command (multi.c) unless it is one of
 * the transaction's controls; a refusal then fails the transaction.
 * Otherwise it does one of three things:
 *   - queue it in the session's pass when its table entry can wait
 *     (prep/reply) and this invocation can (prep says yes): PENDING;
 *   - otherwise first run the pass if this session has commands waiting
 *     there (so its replies keep their order), then run it now;
 *   - a refusal (unknown, arity, NOAUTH) is a reply like any other: the
 *     session's waiting commands are replied first.
 * kvd_cmd_run() runs a resolved command (its handler) and counts it; EXEC
 * runs its queued commands through it too.
 *
 * kvd_cmd_exec() is the first edition's entry point: the same path with the
 * caller's encoder in place of the session's, and no pass.
 *
 * Thread-safety: a session's owner thread only (the session, its pass and
 * every session of that pass are that thread's).
 */
#include "core/cmd.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/cmd/cmd_int.h"

/* Bytes of arguments quoted in "unknown command" errors (as Redis). */
#define CALL_UNKNOWN_ARGS_BYTES 128

/* Why a command is refused before it runs. */
enum call_refusal {
    CALL_OK = 0,
    CALL_EMPTY,       /* no arguments at all */
    CALL_UNKNOWN,     /* no such command */
    CALL_NO_SUB,      /* a container without its subcommand */
    CALL_UNKNOWN_SUB, /* a container with an unknown subcommand */
    CALL_ARITY,       /* wrong number of arguments */
    CALL_NOAUTH,      /* not authenticated */
};

/* Length of an argument up to its first NUL, as a C string would read. */
static size_t
call_cstr_len(const char *p, size_t n)
{
    const char *z = memchr(p, '\0', n);
    return z != NULL ? (size_t)(z - p) : n;
}

static void
call_reply_unknown(struct kvd_cmd_ctx *x)
{
    char args[CALL_UNKNOWN_ARGS_BYTES + 8];
    size_t len = 0;

    args[0] = '\0';
    for (size_t i = 1; i < x->argc && len < CALL_UNKNOWN_ARGS_BYTES; i++) {
        int room = (int)(CALL_UNKNOWN_ARGS_BYTES - len);
        int alen = (int)call_cstr_len(x->argv[i], x->argl[i]);
        int n = snprintf(args + len, sizeof(args) - len, "'%.*s' ",
                         alen < room ? alen : room, x->argv[i]);
        if (n < 0) {
            break;
        }
        len += (size_t)n;
        if (len >= sizeof(args)) {
            len = sizeof(args) - 1;
        }
    }
    int nlen = (int)call_cstr_len(x->argv[0], x->argl[0]);
    kvd_cmd_reply_errorf_as(
        x, KVD_ENOTSUP,
        "ERR unknown command '%.*s', with args beginning with: %s",
        nlen < 128 ? nlen : 128, x->argv[0], args);
}

static void
call_reply_unknown_sub(struct kvd_cmd_ctx *x)
{
    char upper[KVD_CMD_NAME_MAX + 1];
    size_t n = x->argl[0] < KVD_CMD_NAME_MAX ? x->argl[0] : KVD_CMD_NAME_MAX;
    int slen = (int)call_cstr_len(x->argv[1], x->argl[1]);

    for (size_t i = 0; i < n; i++) {
        char ch = x->argv[0][i];
        upper[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
    }
    upper[n] = '\0';
    kvd_cmd_reply_errorf_as(x, KVD_ENOTSUP,
                            "ERR unknown subcommand '%.*s'. Try %s HELP.",
                            slen < 128 ? slen : 128, x->argv[1], upper);
}

static bool
call_arity_ok(int arity, size_t argc)
{
    if (arity >= 0) {
        return argc == (size_t)arity;
    }
    return argc >= (size_t)-arity;
}

/* Find x's command and check it; x->ent is set to the (sub)command found
 * (the container when the subcommand is not). Replies nothing. */
static int
call_resolve(struct kvd_cmd_ctx *x)
{
    const struct kvd_cmd_entry *e;

    if (x->argc == 0) {
        return CALL_EMPTY;
    }
    e = kvd_cmd_entry_find(x->cmd, x->argv[0], x->argl[0]);
    if (e == NULL) {
        return CALL_UNKNOWN;
    }
    x->ent = e;
    if (e->nsub > 0) {
        if (x->argc < 2) {
            return CALL_NO_SUB;
        }
        e = kvd_cmd_sub_find(x->cmd, e, x->argv[1], x->argl[1]);
        if (e == NULL) {
            return CALL_UNKNOWN_SUB;
        }
        x->ent = e;
    }
    if (!call_arity_ok(e->def->arity, x->argc)) {
        return CALL_ARITY;
    }
    if (!x->sess->authed) {
        unsigned f = e->def->flags;
        if (e->parent != NULL) {
            f |= e->parent->def->flags & KVD_CMDF_NOAUTH;
        }
        if (!(f & KVD_CMDF_NOAUTH)) {
            return CALL_NOAUTH;
        }
    }
    return CALL_OK;
}

/* Write the refusal and count it (rejected_calls). */
static void
call_refuse(struct kvd_cmd_ctx *x, int why)
{
    if (why == CALL_EMPTY) {
        kvd_cmd_reply_error(x, "ERR empty command");
        return;
    }
    if (why == CALL_UNKNOWN) {
        atomic_fetch_add_explicit(&x->cmd->unknown_commands, 1,
                                  memory_order_relaxed);
        call_reply_unknown(x);
        return;
    }
    atomic_fetch_add_explicit(&kvd_cmd_counters_of(x->sess, x->ent)->rejected,
                              1, memory_order_relaxed);
    switch (why) {
    case CALL_UNKNOWN_SUB:
        call_reply_unknown_sub(x);
        break;
    case CALL_NOAUTH:
        kvd_cmd_reply_error_as(x, KVD_ENOAUTH, KVD_CMD_ERR_NOAUTH);
        break;
    default: /* CALL_NO_SUB, CALL_ARITY */
        kvd_cmd_reply_arity(x);
        break;
    }
}

void
kvd_cmd_run(struct kvd_cmd_ctx *x)
{
    struct kvd_cmd_counters *ctr = kvd_cmd_counters_of(x->sess, x->ent);
    uint64_t t0 = kvd_cmd_now_ns();

    atomic_store_explicit(&x->sess->last_ent, x->ent, memory_order_relaxed);
    x->ent->def->fn(x);
    uint64_t t1 = kvd_cmd_now_ns();
    atomic_store_explicit(&x->sess->last_ms, (int64_t)(t1 / 1000000u),
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->nsec, t1 - t0, memory_order_relaxed);
    if (x->failed) {
        atomic_fetch_add_explicit(&ctr->failed, 1, memory_order_relaxed);
    }
}

void
kvd_cmd_set_proto(struct kvd_cmd_ctx *x, int proto)
{
    if (kvd_cmd_proto(x->sess) == proto) {
        return;
    }
    atomic_store_explicit(&x->sess->proto, proto, memory_order_relaxed);
    if (x->enc->proto != NULL) {
        x->enc->proto(x->enc->w, proto);
    }
}

int
kvd_cmd_call(kvd_session *s, size_t argc, const char *const *argv,
             const size_t *argl)
{
    kvd_cmd *c = s->cmd;
    struct kvd_cmd_ctx x = {
        .cmd = c,
        .sess = s,
        .st = c->st,
        .enc = &s->enc,
        .argc = argc,
        .argv = argv,
        .argl = argl,
    };
    int why;

    if (s->enc.ops == NULL) {
        return KVD_EINVAL; /* a first-edition session: use exec */
    }
    kvd_store_metric_add(c->st, KVD_M_COMMANDS, 1);
    why = call_resolve(&x);
    if (s->in_multi &&
        (why != CALL_OK || !(x.ent->def->flags & KVD_CMDF_TXCTL))) {
        if (s->queued > 0) {
            kvd_cmd_pass_end(s->cpass);
        }
        if (why != CALL_OK) {
            call_refuse(&x, why);
            kvd_cmd_multi_refused(s);
        } else {
            kvd_cmd_multi_queue(&x);
        }
        return 0;
    }
    if (why == CALL_OK && s->cpass != NULL && x.ent->def->prep != NULL) {
        struct kvd_mop op;
        if (x.ent->def->prep(&x, &op) &&
            kvd_cmd_pass_queue(s->cpass, &x, &op) == 0) {
            return KVD_EXEC_PENDING;
        }
    }
    if (s->queued > 0) {
        kvd_cmd_pass_end(s->cpass); /* its earlier replies go first */
    }
    if (why != CALL_OK) {
        call_refuse(&x, why);
        return 0;
    }
    kvd_cmd_run(&x);
    return x.result;
}

int
kvd_cmd_exec(kvd_session *s, size_t argc, const char *const *argv,
             const size_t *argl, const struct kvd_reply_ops *ops, void *w)
{
    struct kvd_cmd_enc saved = s->enc;
    kvd_cmd_pass *pass = s->cpass;
    int rc;

    if (s->queued > 0) {
        kvd_cmd_pass_end(pass);
    }
    /* The first edition's encoder has the base members only. */
    kvd_cmd_enc_init(&s->enc, ops, offsetof(struct kvd_reply_ops, proto), w);
    s->cpass = NULL;
    rc = kvd_cmd_call(s, argc, argv, argl);
    s->enc = saved;
    s->cpass = pass;
    return rc;
}
