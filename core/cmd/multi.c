/*
 * core/cmd/multi.c -- transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH,
 * with Redis 7's semantics and reply texts.
 *
 * MULTI starts queueing: every later command of the session except the
 * transaction controls (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET: flag
 * KVD_CMDF_TXCTL) is checked as usual (unknown, arity, NOAUTH, refused in
 * a transaction) and, if it passes, copied into the queue and answered
 * QUEUED; if not, it gets its error and the transaction is marked failed,
 * so EXEC answers EXECABORT and runs nothing.
 *
 * EXEC runs the queue atomically:
 *   1. the stripes: the keys of every queued command, from the command
 *      table's key positions (first/last/step), every stripe for a
 *      command that reads or writes the whole key space
 *      (KVD_CMDF_KEYSPACE), and the stripes of the watched keys;
 *   2. kvd_store_txn_begin locks them, so no other writer can come
 *      between, and gives a view of the store;
 *   3. a watched key written (or expired) since WATCH: the null array,
 *      nothing runs;
 *   4. every command runs, through the ordinary handlers, against the
 *      view; their replies are recorded, not sent;
 *   5. kvd_store_txn_commit applies the writes as one engine batch and
 *      unlocks; only then are the replies sent, as EXEC's array. A commit
 *      that fails (the engine's error, CROSSSLOT on a partitioned engine)
 *      applies nothing and answers EXECABORT with the reason, so a client
 *      never sees replies of writes that are not there.
 * EXEC, DISCARD and RESET end the transaction and drop every watch. A
 * runtime error of one queued command is that command's reply; the others
 * still run (as Redis: nothing is rolled back), except on a session opened
 * with KVD_SESSION_ATOMIC_EXEC, where the view is then dropped instead of
 * committed: the replies are sent, and nothing was applied.
 *
 * Thread-safety: a session's own thread only.
 */
#include "core/cmd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/cmd/cmd_int.h"

/* Replies of a queue up to this size are kept for the next EXEC. */
#define MULTI_KEEP_BYTES (1024 * 1024)

#define MULTI_ERR_NOT_ALLOWED "ERR Command not allowed inside a transaction"
#define MULTI_ERR_EXECABORT                                                    \
    "EXECABORT Transaction discarded because of previous errors."

/* One queued command: its entry and, at `off` in args, argc lengths
 * (size_t) followed by the arguments' bytes. */
struct multi_cmd {
    const struct kvd_cmd_entry *ent;
    size_t argc;
    size_t off;
};

struct kvd_cmd_multi {
    struct multi_cmd *cmds;
    size_t n;
    size_t cap;
    struct kvd_cmd_buf args;
    bool dirty;             /* a command was refused: EXEC aborts */
    kvd_store_txn *txn;     /* EXEC's, made on first use */
    struct kvd_cmd_buf rec; /* EXEC's recorded replies */
    const char **argv;      /* EXEC's view of one queued command */
    size_t *argl;
    size_t argv_cap;
};

/* ---- the queue ------------------------------------------------------------
 */

static struct kvd_cmd_multi *
multi_of(kvd_session *s)
{
    if (s->multi == NULL) {
        s->multi = calloc(1, sizeof(*s->multi));
    }
    return s->multi;
}

/* Empty the queue (the transaction ends). */
static void
multi_discard(kvd_session *s)
{
    struct kvd_cmd_multi *m = s->multi;

    s->in_multi = false;
    atomic_store_explicit(&s->mqueued, -1, memory_order_relaxed);
    if (m == NULL) {
        return;
    }
    m->n = 0;
    m->dirty = false;
    m->args.len = 0;
    if (m->args.cap > MULTI_KEEP_BYTES) {
        kvd_cmd_buf_release(&m->args);
    }
}

static void
multi_unwatch(kvd_session *s)
{
    if (s->watch != NULL) {
        kvd_store_watch_clear(s->watch);
    }
}

void
kvd_cmd_multi_reset(kvd_session *s)
{
    multi_discard(s);
    multi_unwatch(s);
}

void
kvd_cmd_multi_release(kvd_session *s)
{
    struct kvd_cmd_multi *m = s->multi;

    kvd_store_watch_destroy(s->watch);
    s->watch = NULL;
    if (m != NULL) {
        kvd_store_txn_destroy(m->txn);
        kvd_cmd_buf_release(&m->args);
        kvd_cmd_buf_release(&m->rec);
        free(m->cmds);
        free(m->argv);
        free(m->argl);
        free(m);
        s->multi = NULL;
    }
}

void
kvd_cmd_multi_refused(kvd_session *s)
{
    if (s->in_multi && s->multi != NULL) {
        s->multi->dirty = true;
    }
}

/* Copy x's arguments into the queue. */
static int
multi_push(struct kvd_cmd_multi *m, const struct kvd_cmd_ctx *x)
{
    size_t off = m->args.len;

    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct multi_cmd *c = realloc(m->cmds, cap * sizeof(*c));
        if (c == NULL) {
            return KVD_ENOMEM;
        }
        m->cmds = c;
        m->cap = cap;
    }
    size_t bytes = x->argc * sizeof(size_t);
    for (size_t i = 0; i < x->argc; i++) {
        bytes += x->argl[i];
    }
    if (kvd_cmd_buf_reserve(&m->args, bytes) != 0) {
        return KVD_ENOMEM;
    }
    char *p = m->args.p + off;
    memcpy(p, x->argl, x->argc * sizeof(size_t));
    p += x->argc * sizeof(size_t);
    for (size_t i = 0; i < x->argc; i++) {
        if (x->argl[i] > 0) {
            memcpy(p, x->argv[i], x->argl[i]);
        }
        p += x->argl[i];
    }
    m->args.len += bytes;
    m->cmds[m->n++] = (struct multi_cmd){
        .ent = x->ent,
        .argc = x->argc,
        .off = off,
    };
    return 0;
}

void
kvd_cmd_multi_queue(struct kvd_cmd_ctx *x)
{
    kvd_session *s = x->sess;
    struct kvd_cmd_multi *m = s->multi;
    unsigned flags = x->ent->def->flags;

    if (x->ent->parent != NULL) {
        flags |= x->ent->parent->def->flags & KVD_CMDF_NOMULTI;
    }
    if (flags & KVD_CMDF_NOMULTI) {
        atomic_fetch_add_explicit(&kvd_cmd_counters_of(s, x->ent)->rejected, 1,
                                  memory_order_relaxed);
        kvd_cmd_reply_error(x, MULTI_ERR_NOT_ALLOWED);
        m->dirty = true;
        return;
    }
    if (multi_push(m, x) != 0) {
        kvd_cmd_reply_status_error(x, KVD_ENOMEM);
        m->dirty = true;
        return;
    }
    atomic_store_explicit(&s->mqueued,
                          (int)(m->n < INT32_MAX ? m->n : INT32_MAX),
                          memory_order_relaxed);
    kvd_cmd_reply_status(x, "QUEUED");
}

/* Point m->argv/argl at queued command c. */
static int
multi_args(struct kvd_cmd_multi *m, const struct multi_cmd *c)
{
    const char *p = m->args.p + c->off;

    if (c->argc > m->argv_cap) {
        const char **argv = realloc(m->argv, c->argc * sizeof(*argv));
        if (argv == NULL) {
            return KVD_ENOMEM;
        }
        m->argv = argv;
        size_t *argl = realloc(m->argl, c->argc * sizeof(*argl));
        if (argl == NULL) {
            return KVD_ENOMEM;
        }
        m->argl = argl;
        m->argv_cap = c->argc;
    }
    memcpy(m->argl, p, c->argc * sizeof(size_t));
    p += c->argc * sizeof(size_t);
    for (size_t i = 0; i < c->argc; i++) {
        m->argv[i] = p;
        p += m->argl[i];
    }
    return 0;
}

/* ---- the reply recorder --------------------------------------------------
 *
 * EXEC's commands reply into a byte log: one tag byte, then the call's
 * arguments. Replayed through the session's encoder after the commit.
 */

enum rec_tag {
    REC_STATUS = 'S',
    REC_ERROR = 'E', /* struct rec_error_hdr, then the text */
    REC_INT = 'I',
    REC_BULK = 'B',
    REC_NULL = 'N',
    REC_ARRAY = 'A',
    REC_MAP = 'M',
    REC_DBL = 'D',
    REC_PROTO = 'P',
    REC_NULL_ARRAY = 'Z',
};

static void
rec_put(void *w, char tag, const void *a, size_t an, const void *b, size_t bn)
{
    struct kvd_cmd_buf *r = w;
    char *p;

    /* Out of memory poisons the log: EXEC then answers an error rather
     * than replay part of its replies (multi_exec). */
    if (kvd_cmd_buf_reserve(r, 1 + an + bn) != 0) {
        r->len = SIZE_MAX;
        return;
    }
    p = r->p + r->len;
    *p++ = tag;
    if (an > 0) {
        memcpy(p, a, an);
    }
    if (bn > 0) {
        memcpy(p + an, b, bn);
    }
    r->len += 1 + an + bn;
}

static bool
rec_poisoned(const struct kvd_cmd_buf *r)
{
    return r->len == SIZE_MAX;
}

static void
rec_bytes(void *w, char tag, const void *p, size_t n)
{
    if (!rec_poisoned(w)) {
        rec_put(w, tag, &n, sizeof(n), p, n);
    }
}

static void
rec_status(void *w, const char *s, size_t n)
{
    rec_bytes(w, REC_STATUS, s, n);
}

/* An error's record: this header, then the n bytes of its text. */
struct rec_error_hdr {
    int status;
    size_t n;
};

static void
rec_error_status(void *w, int status, const char *s, size_t n)
{
    struct rec_error_hdr h = {.status = status, .n = n};

    if (!rec_poisoned(w)) {
        rec_put(w, REC_ERROR, &h, sizeof(h), s, n);
    }
}

static void
rec_error(void *w, const char *s, size_t n)
{
    rec_error_status(w, KVD_EINVAL, s, n);
}

static void
rec_integer(void *w, long long v)
{
    if (!rec_poisoned(w)) {
        rec_put(w, REC_INT, &v, sizeof(v), NULL, 0);
    }
}

static void
rec_bulk(void *w, const void *p, size_t n)
{
    rec_bytes(w, REC_BULK, p, n);
}

static void
rec_null(void *w)
{
    if (!rec_poisoned(w)) {
        rec_put(w, REC_NULL, NULL, 0, NULL, 0);
    }
}

static void
rec_array(void *w, size_t n)
{
    if (!rec_poisoned(w)) {
        rec_put(w, REC_ARRAY, &n, sizeof(n), NULL, 0);
    }
}

static void
rec_map(void *w, size_t n)
{
    if (!rec_poisoned(w)) {
        rec_put(w, REC_MAP, &n, sizeof(n), NULL, 0);
    }
}

static void
rec_dbl(void *w, double v)
{
    if (!rec_poisoned(w)) {
        rec_put(w, REC_DBL, &v, sizeof(v), NULL, 0);
    }
}

static void
rec_proto(void *w, int proto)
{
    if (!rec_poisoned(w)) {
        rec_put(w, REC_PROTO, &proto, sizeof(proto), NULL, 0);
    }
}

static void
rec_null_array(void *w)
{
    if (!rec_poisoned(w)) {
        rec_put(w, REC_NULL_ARRAY, NULL, 0, NULL, 0);
    }
}

static const struct kvd_reply_ops multi_rec_ops = {
    .status = rec_status,
    .error = rec_error,
    .integer = rec_integer,
    .bulk = rec_bulk,
    .null = rec_null,
    .array = rec_array,
    .map = rec_map,
    .dbl = rec_dbl,
    .proto = rec_proto,
    .null_array = rec_null_array,
    .error_status = rec_error_status,
};

/* Read n bytes of the log at *off. */
static const char *
rec_take(const struct kvd_cmd_buf *r, size_t *off, void *dst, size_t n)
{
    const char *p = r->p + *off;

    if (dst != NULL) {
        memcpy(dst, p, n);
    }
    *off += n;
    return p;
}

/* Write the recorded replies through enc. */
static void
multi_replay(const struct kvd_cmd_buf *r, const struct kvd_cmd_enc *enc)
{
    const struct kvd_reply_ops *o = enc->ops;
    size_t off = 0;

    while (off < r->len) {
        char tag = r->p[off++];
        size_t n = 0;
        long long v;
        double d;
        int i;
        const char *p;

        switch (tag) {
        case REC_STATUS:
        case REC_BULK:
            rec_take(r, &off, &n, sizeof(n));
            p = rec_take(r, &off, NULL, n);
            if (tag == REC_STATUS) {
                o->status(enc->w, p, n);
            } else {
                o->bulk(enc->w, p, n);
            }
            break;
        case REC_ERROR: {
            struct rec_error_hdr h;
            rec_take(r, &off, &h, sizeof(h));
            p = rec_take(r, &off, NULL, h.n);
            if (enc->error_status != NULL) {
                enc->error_status(enc->w, h.status, p, h.n);
            } else {
                o->error(enc->w, p, h.n);
            }
            break;
        }
        case REC_INT:
            rec_take(r, &off, &v, sizeof(v));
            o->integer(enc->w, v);
            break;
        case REC_NULL:
            o->null(enc->w);
            break;
        case REC_ARRAY:
        case REC_MAP:
            rec_take(r, &off, &n, sizeof(n));
            if (tag == REC_MAP && o->map != NULL) {
                o->map(enc->w, n);
            } else {
                o->array(enc->w, tag == REC_MAP ? 2 * n : n);
            }
            break;
        case REC_DBL:
            rec_take(r, &off, &d, sizeof(d));
            o->dbl(enc->w, d);
            break;
        case REC_PROTO:
            rec_take(r, &off, &i, sizeof(i));
            if (enc->proto != NULL) {
                enc->proto(enc->w, i);
            }
            break;
        default: /* REC_NULL_ARRAY */
            if (enc->null_array != NULL) {
                enc->null_array(enc->w);
            } else {
                o->null(enc->w);
            }
            break;
        }
    }
}

/* ---- EXEC ------------------------------------------------------------------
 */

/* The stripes queued command c's keys need (the command table's key
 * positions; the whole key space for KVD_CMDF_KEYSPACE commands). */
static int
multi_add_keys(struct kvd_cmd_multi *m, const struct multi_cmd *c)
{
    const struct kvd_cmd_def *d = c->ent->def;
    int last;
    int step = d->key_step > 0 ? d->key_step : 1;

    if (d->flags & KVD_CMDF_KEYSPACE) {
        kvd_store_txn_add_all(m->txn);
        return 0;
    }
    if (d->first_key <= 0) {
        return 0;
    }
    last = d->last_key >= 0 ? d->last_key : (int)c->argc + d->last_key;
    for (int i = d->first_key; i <= last && (size_t)i < c->argc; i += step) {
        int rc = kvd_store_txn_add_key(m->txn, m->argv[i], m->argl[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The stripes of the whole queue and of the watched keys. */
static int
multi_plan(kvd_session *s, struct kvd_cmd_multi *m)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < m->n; i++) {
        rc = multi_args(m, &m->cmds[i]);
        if (rc == 0) {
            rc = multi_add_keys(m, &m->cmds[i]);
        }
    }
    if (rc == 0 && s->watch != NULL) {
        rc = kvd_store_txn_add_watch(m->txn, s->watch);
    }
    return rc;
}

/* Run the queue against view; the replies go to m->rec. Returns how
 * many commands replied an error. */
static size_t
multi_run(struct kvd_cmd_ctx *x, struct kvd_cmd_multi *m, kvd_store *view)
{
    struct kvd_cmd_enc rec;
    size_t failed = 0;

    kvd_cmd_enc_init(&rec, &multi_rec_ops, sizeof(multi_rec_ops), &m->rec);
    m->rec.len = 0;
    x->sess->in_exec = true;
    for (size_t i = 0; i < m->n; i++) {
        const struct multi_cmd *c = &m->cmds[i];
        if (multi_args(m, c) != 0) {
            rec_error_status(&m->rec, KVD_ENOMEM, "OOM", 3);
            failed++;
            continue;
        }
        struct kvd_cmd_ctx y = {
            .cmd = x->cmd,
            .sess = x->sess,
            .st = view,
            .enc = &rec,
            .argc = c->argc,
            .argv = m->argv,
            .argl = m->argl,
            .ent = c->ent,
        };
        kvd_cmd_run(&y);
        failed += y.failed;
    }
    x->sess->in_exec = false;
    return failed;
}

static void
multi_exec_abort(struct kvd_cmd_ctx *x, int rc)
{
    char buf[128];

    kvd_cmd_reply_errorf_as(x, rc == KVD_ECROSSSLOT ? rc : KVD_EABORT,
                            "EXECABORT Transaction discarded because of: %s",
                            kvd_cmd_status_text(rc, buf, sizeof(buf)));
}

static void
multi_exec(struct kvd_cmd_ctx *x)
{
    kvd_session *s = x->sess;
    struct kvd_cmd_multi *m = s->multi;
    struct kvd_err err = {0};
    kvd_store *view;
    size_t n;
    bool applied;
    int rc;

    if (!s->in_multi) {
        kvd_cmd_reply_error(x, "ERR EXEC without MULTI");
        return;
    }
    if (m->dirty) {
        kvd_cmd_multi_reset(s);
        kvd_cmd_reply_error_as(x, KVD_EABORT, MULTI_ERR_EXECABORT);
        return;
    }
    if (m->txn == NULL) {
        m->txn = kvd_store_txn_create(x->st);
    }
    rc = m->txn != NULL ? multi_plan(s, m) : KVD_ENOMEM;
    if (rc != 0) {
        if (m->txn != NULL) {
            kvd_store_txn_abort(m->txn); /* drops the stripes planned */
        }
        kvd_cmd_multi_reset(s);
        multi_exec_abort(x, rc);
        return;
    }
    view = kvd_store_txn_begin(m->txn);
    if (s->watch != NULL && kvd_store_watch_changed(s->watch)) {
        kvd_store_txn_abort(m->txn);
        kvd_cmd_multi_reset(s);
        kvd_cmd_reply_null_array(x);
        return;
    }
    applied =
        !(multi_run(x, m, view) > 0 && (s->flags & KVD_SESSION_ATOMIC_EXEC));
    if (applied) {
        rc = kvd_store_txn_commit(m->txn, &err);
    } else {
        kvd_store_txn_abort(m->txn);
        rc = 0;
    }
    n = m->n;
    multi_discard(s);
    multi_unwatch(s);
    if (rc != 0) {
        multi_exec_abort(x, rc);
    } else if (rec_poisoned(&m->rec)) {
        /* Its replies could not be kept: say whether it was applied rather
         * than claim a discard or send part of them. */
        kvd_cmd_reply_error_as(x, KVD_ENOMEM,
                               applied ? "OOM the transaction was applied, "
                                         "but out of memory for its replies"
                                       : "OOM out of memory for the "
                                         "transaction's replies; nothing "
                                         "was applied");
    } else {
        kvd_cmd_reply_array(x, n);
        multi_replay(&m->rec, x->enc);
    }
    if (m->rec.cap > MULTI_KEEP_BYTES) {
        kvd_cmd_buf_release(&m->rec);
    }
    m->rec.len = 0;
}

/* ---- MULTI, DISCARD, WATCH, UNWATCH ----------------------------------------
 */

static void
multi_multi(struct kvd_cmd_ctx *x)
{
    kvd_session *s = x->sess;

    if (s->in_multi) {
        /* Redis: an error, but the transaction goes on unharmed. */
        kvd_cmd_reply_error(x, "ERR MULTI calls can not be nested");
        return;
    }
    if (multi_of(s) == NULL) {
        kvd_cmd_reply_status_error(x, KVD_ENOMEM);
        return;
    }
    s->in_multi = true;
    atomic_store_explicit(&s->mqueued, 0, memory_order_relaxed);
    kvd_cmd_reply_ok(x);
}

static void
multi_discard_cmd(struct kvd_cmd_ctx *x)
{
    if (!x->sess->in_multi) {
        kvd_cmd_reply_error(x, "ERR DISCARD without MULTI");
        return;
    }
    kvd_cmd_multi_reset(x->sess);
    kvd_cmd_reply_ok(x);
}

static void
multi_watch(struct kvd_cmd_ctx *x)
{
    kvd_session *s = x->sess;

    if (s->in_multi) {
        kvd_cmd_reply_error(x, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    if (s->watch == NULL) {
        s->watch = kvd_store_watch_create(x->st);
        if (s->watch == NULL) {
            kvd_cmd_reply_status_error(x, KVD_ENOMEM);
            return;
        }
    }
    for (size_t i = 1; i < x->argc; i++) {
        int rc = kvd_store_watch_key(s->watch, x->argv[i], x->argl[i]);
        if (rc != 0) {
            kvd_cmd_reply_status_error(x, rc);
            return;
        }
    }
    kvd_cmd_reply_ok(x);
}

static void
multi_unwatch_cmd(struct kvd_cmd_ctx *x)
{
    /* Queued in a transaction: EXEC drops every watch when it ends (and
     * holds the watched keys' stripes until then), so there is nothing to
     * do now. */
    if (!x->sess->in_exec) {
        multi_unwatch(x->sess);
    }
    kvd_cmd_reply_ok(x);
}

#define F  KVD_CMDF_FAST
#define LD KVD_CMDF_LOADING
#define ST KVD_CMDF_STALE
#define NS KVD_CMDF_NOSCRIPT
#define NM KVD_CMDF_NOMULTI
#define TX KVD_CMDF_TXCTL

const struct kvd_cmd_def kvd_cmd_multi_defs[] = {
    KVD_CMD_DEF("multi", 1, NS | LD | ST | F | TX, multi_multi, NULL, 0, 0, 0,
                "transactions", "1.2.0", "Starts a transaction.", ""),
    KVD_CMD_DEF("exec", 1, NS | LD | ST | TX, multi_exec, NULL, 0, 0, 0,
                "transactions", "1.2.0",
                "Executes all commands in a transaction.", ""),
    KVD_CMD_DEF("discard", 1, NS | LD | ST | F | TX, multi_discard_cmd, NULL, 0,
                0, 0, "transactions", "2.0.0", "Discards a transaction.", ""),
    KVD_CMD_DEF("watch", -2, NS | LD | ST | F | NM | TX, multi_watch, NULL, 1,
                -1, 1, "transactions", "2.2.0",
                "Monitors changes to keys to determine the execution of a "
                "transaction.",
                "key [key ...]"),
    KVD_CMD_DEF("unwatch", 1, NS | LD | ST | F, multi_unwatch_cmd, NULL, 0, 0,
                0, "transactions", "2.2.0",
                "Forgets about watched keys of a transaction.", ""),
    KVD_CMD_END,
};
