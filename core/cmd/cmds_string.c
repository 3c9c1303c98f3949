/*
 * core/cmd/cmds_string.c -- string commands: GET, SET and options, MSET, MGET,
 * the INCR family, APPEND, ranges, bits, LCS.
 *
 * Semantics and error texts follow Redis's documentation and replies.
 * Every read-modify-write goes through kvd_store_update() (one key) or a
 * kvd_store_lock_keys() section (MSETNX, LCS), so it is atomic against
 * every other writer on every engine. Update callbacks run with the key's
 * stripe lock held: they only compute, never reply; the reply is written
 * after the store call returns, from what the callback left in its
 * context (old values are copied out for that).
 *
 * Thread-safety: handlers use only their context and the store.
 */
#include "core/cmd/cmd_int.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Values up to this size are copied out of update callbacks without a
 * heap allocation. */
#define STR_INLINE_BYTES 128

/* Room for any INCRBYFLOAT result (%.17Lf of the largest long double has
 * about 4950 digits before the point). */
#define STR_LD_BUF_BYTES (5 * 1024 + 32)

/* MSET/MGET batches up to this many keys use the stack. */
#define STR_STACK_KEYS 16

/* --- copied values
 * ------------------------------------------------------------ */

/* A value copied out of a callback (cur is only valid inside it). */
struct str_copy {
    bool found;
    char *p;
    size_t n;
    char inl[STR_INLINE_BYTES];
};

static int
str_copy_set(struct str_copy *c, const struct kvd_val *cur)
{
    c->found = cur != NULL;
    c->n = 0;
    c->p = c->inl;
    if (cur == NULL) {
        return 0;
    }
    if (cur->len > sizeof(c->inl)) {
        c->p = malloc(cur->len);
        if (c->p == NULL) {
            c->p = c->inl;
            return KVD_ENOMEM;
        }
    }
    if (cur->len > 0) {
        memcpy(c->p, cur->data, cur->len);
    }
    c->n = cur->len;
    return 0;
}

static void
str_copy_release(struct str_copy *c)
{
    if (c->p != c->inl) {
        free(c->p);
    }
    c->p = c->inl;
}

static void
str_reply_copy(struct kvd_cmd_ctx *x, const struct str_copy *c)
{
    if (c->found) {
        kvd_cmd_reply_bulk(x, c->p, c->n);
    } else {
        kvd_cmd_reply_null(x);
    }
}

/* --- SET option parsing
 * --------------------------------------------------------- */

enum str_opt {
    STR_NX = 1u << 0,
    STR_XX = 1u << 1,
    STR_GET = 1u << 2,
    STR_KEEPTTL = 1u << 3,
    STR_PERSIST = 1u << 4,
    STR_EX = 1u << 5,
    STR_PX = 1u << 6,
    STR_EXAT = 1u << 7,
    STR_PXAT = 1u << 8,
};

#define STR_ANY_EXPIRE (STR_EX | STR_PX | STR_EXAT | STR_PXAT)

/*
 * Parse SET (for_set) or GETEX options from argument `first` on. Like
 * Redis, an option may repeat (the last expiry wins) but may not combine
 * with an incompatible one (NX with XX, two expiry kinds, KEEPTTL or
 * PERSIST with an expiry); anything else is a syntax error.
 */
static bool
str_parse_opts(struct kvd_cmd_ctx *x, size_t first, bool for_set,
               unsigned *flags, size_t *exp_arg)
{
    *flags = 0;
    *exp_arg = 0;
    for (size_t j = first; j < x->argc; j++) {
        bool next = j + 1 < x->argc;
        unsigned f = *flags;
        if (for_set && kvd_cmd_arg_is(x, j, "nx") && !(f & STR_XX)) {
            *flags |= STR_NX;
        } else if (for_set && kvd_cmd_arg_is(x, j, "xx") && !(f & STR_NX)) {
            *flags |= STR_XX;
        } else if (for_set && kvd_cmd_arg_is(x, j, "get")) {
            *flags |= STR_GET;
        } else if (for_set && kvd_cmd_arg_is(x, j, "keepttl") &&
                   !(f & (STR_PERSIST | STR_ANY_EXPIRE))) {
            *flags |= STR_KEEPTTL;
        } else if (!for_set && kvd_cmd_arg_is(x, j, "persist") &&
                   !(f & (STR_KEEPTTL | STR_ANY_EXPIRE))) {
            *flags |= STR_PERSIST;
        } else if (next && kvd_cmd_arg_is(x, j, "ex") &&
                   !(f & (STR_KEEPTTL | STR_PERSIST |
                          (STR_ANY_EXPIRE & ~STR_EX)))) {
            *flags |= STR_EX;
            *exp_arg = ++j;
        } else if (next && kvd_cmd_arg_is(x, j, "px") &&
                   !(f & (STR_KEEPTTL | STR_PERSIST |
                          (STR_ANY_EXPIRE & ~STR_PX)))) {
            *flags |= STR_PX;
            *exp_arg = ++j;
        } else if (next && kvd_cmd_arg_is(x, j, "exat") &&
                   !(f & (STR_KEEPTTL | STR_PERSIST |
                          (STR_ANY_EXPIRE & ~STR_EXAT)))) {
            *flags |= STR_EXAT;
            *exp_arg = ++j;
        } else if (next && kvd_cmd_arg_is(x, j, "pxat") &&
                   !(f & (STR_KEEPTTL | STR_PERSIST |
                          (STR_ANY_EXPIRE & ~STR_PXAT)))) {
            *flags |= STR_PXAT;
            *exp_arg = ++j;
        } else {
            kvd_cmd_reply_syntax(x);
            return false;
        }
    }
    return true;
}

static void
str_reply_bad_expire(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_errorf(x, "ERR invalid expire time in '%s' command",
                         x->ent->fullname);
}

/*
 * The absolute expiry (Unix ms) of argument `arg` in the unit the flags
 * say. Must be positive; relative times are added to now; overflow is an
 * invalid expire time, as in Redis.
 */
static bool
str_expire_ms(struct kvd_cmd_ctx *x, size_t arg, unsigned flags, int64_t *out)
{
    long long v;

    if (!kvd_cmd_arg_ll(x, arg, &v)) {
        return false;
    }
    bool seconds = (flags & (STR_EX | STR_EXAT)) != 0;
    if (v <= 0 || (seconds && v > LLONG_MAX / 1000)) {
        str_reply_bad_expire(x);
        return false;
    }
    if (seconds) {
        v *= 1000;
    }
    if (flags & (STR_EX | STR_PX)) {
        int64_t now = kvd_store_now_ms(x->st);
        if (v > LLONG_MAX - now) {
            str_reply_bad_expire(x);
            return false;
        }
        v += now;
    }
    *out = v;
    return true;
}

/* --- GET, SET and friends
 * --------------------------------------------------------- */

/* GET key: one engine read, here or in a pass (prep/reply). */
static bool
str_get_prep(const struct kvd_cmd_ctx *x, struct kvd_mop *op)
{
    memset(op, 0, sizeof(*op));
    op->type = KVD_MOP_GET;
    op->key = x->argv[1];
    op->klen = x->argl[1];
    return true;
}

static void
str_get_reply(struct kvd_cmd_ctx *x, struct kvd_mop *op)
{
    if (op->status == 0) {
        kvd_cmd_reply_bulk(x, op->out.data, op->out.len);
        kvd_val_release(&op->out);
    } else if (op->status == KVD_ENOTFOUND) {
        kvd_cmd_reply_null(x);
    } else {
        kvd_cmd_reply_status_error(x, op->status);
    }
}

static void
str_get(struct kvd_cmd_ctx *x)
{
    struct kvd_mop op;

    str_get_prep(x, &op);
    op.status = kvd_store_get(x->st, op.key, op.klen, &op.out);
    str_get_reply(x, &op);
}

/* SET key value without options: one engine write (plain SET drops any
 * expiry), here or in a pass. Options take str_set's full path. */
static bool
str_set_prep(const struct kvd_cmd_ctx *x, struct kvd_mop *op)
{
    if (x->argc != 3) {
        return false;
    }
    memset(op, 0, sizeof(*op));
    op->type = KVD_MOP_PUT;
    op->key = x->argv[1];
    op->klen = x->argl[1];
    op->val = x->argv[2];
    op->vlen = x->argl[2];
    op->expire_ms = KVD_NO_EXPIRY;
    return true;
}

static void
str_set_reply(struct kvd_cmd_ctx *x, struct kvd_mop *op)
{
    if (op->status == 0) {
        kvd_cmd_reply_ok(x);
    } else {
        kvd_cmd_reply_status_error(x, op->status);
    }
}

/* SET ... GET: the old value comes back whether or not the set happens. */
struct str_setget {
    const void *val;
    size_t vlen;
    unsigned flags;
    int64_t when;
    struct str_copy old;
};

static int
str_setget_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct str_setget *c = vctx;
    int rc = str_copy_set(&c->old, cur);

    if (rc != 0) {
        return rc;
    }
    if (((c->flags & STR_NX) && cur != NULL) ||
        ((c->flags & STR_XX) && cur == NULL)) {
        return 0;
    }
    out->action = KVD_UPDATE_PUT;
    out->val = c->val;
    out->vlen = c->vlen;
    out->expire_ms = c->when;
    if ((c->flags & STR_KEEPTTL) && cur != NULL) {
        out->expire_ms = cur->expire_ms;
    }
    return 0;
}

/* The SET family after option parsing (SET, SETEX, PSETEX, SETNX). */
static void
str_set_generic(struct kvd_cmd_ctx *x, size_t val_arg, unsigned flags,
                int64_t when, bool reply_int)
{
    const char *key = x->argv[1];
    size_t klen = x->argl[1];
    int rc;

    if (flags & STR_GET) {
        struct str_setget c = {
            .val = x->argv[val_arg],
            .vlen = x->argl[val_arg],
            .flags = flags,
            .when = when,
        };
        rc = kvd_store_update(x->st, key, klen, str_setget_fn, &c);
        if (rc == 0) {
            str_reply_copy(x, &c.old);
        } else {
            kvd_cmd_reply_status_error(x, rc);
        }
        str_copy_release(&c.old);
        return;
    }
    unsigned sf = 0;
    sf |= (flags & STR_NX) ? KVD_SET_NX : 0;
    sf |= (flags & STR_XX) ? KVD_SET_XX : 0;
    sf |= (flags & STR_KEEPTTL) ? KVD_SET_KEEPTTL : 0;
    rc = kvd_store_set(x->st, key, klen, x->argv[val_arg], x->argl[val_arg],
                       when, sf, NULL);
    if (rc == 0) {
        if (reply_int) {
            kvd_cmd_reply_int(x, 1);
        } else {
            kvd_cmd_reply_ok(x);
        }
    } else if (rc == KVD_EEXIST || rc == KVD_ENOTFOUND) {
        if (reply_int) {
            kvd_cmd_reply_int(x, 0);
        } else {
            kvd_cmd_reply_null(x);
        }
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
}

static void
str_set(struct kvd_cmd_ctx *x)
{
    unsigned flags;
    size_t exp_arg;
    int64_t when = KVD_NO_EXPIRY;

    struct kvd_mop op;

    if (str_set_prep(x, &op)) { /* no options: one engine write */
        op.status = kvd_store_set(x->st, op.key, op.klen, op.val, op.vlen,
                                  op.expire_ms, 0, NULL);
        str_set_reply(x, &op);
        return;
    }
    if (!str_parse_opts(x, 3, true, &flags, &exp_arg)) {
        return;
    }
    if (exp_arg != 0 && !str_expire_ms(x, exp_arg, flags, &when)) {
        return;
    }
    str_set_generic(x, 2, flags, when, false);
}

static void
str_setnx(struct kvd_cmd_ctx *x)
{
    str_set_generic(x, 2, STR_NX, KVD_NO_EXPIRY, true);
}

static void
str_setex(struct kvd_cmd_ctx *x)
{
    int64_t when;

    if (!str_expire_ms(x, 2, STR_EX, &when)) {
        return;
    }
    str_set_generic(x, 3, 0, when, false);
}

static void
str_psetex(struct kvd_cmd_ctx *x)
{
    int64_t when;

    if (!str_expire_ms(x, 2, STR_PX, &when)) {
        return;
    }
    str_set_generic(x, 3, 0, when, false);
}

/* GETSET: set with no expiry, return the old value. */
static void
str_getset(struct kvd_cmd_ctx *x)
{
    str_set_generic(x, 2, STR_GET, KVD_NO_EXPIRY, false);
}

struct str_getex {
    unsigned flags;
    int64_t when;
    int64_t now;
    struct str_copy old;
};

static int
str_getdel_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct str_getex *c = vctx;
    int rc = str_copy_set(&c->old, cur);

    if (rc == 0 && cur != NULL) {
        out->action = KVD_UPDATE_DEL;
    }
    return rc;
}

static void
str_getdel(struct kvd_cmd_ctx *x)
{
    struct str_getex c = {0};
    int rc = kvd_store_update(x->st, x->argv[1], x->argl[1], str_getdel_fn, &c);

    if (rc == 0) {
        str_reply_copy(x, &c.old);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
    str_copy_release(&c.old);
}

static int
str_getex_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct str_getex *c = vctx;
    int rc = str_copy_set(&c->old, cur);

    if (rc != 0 || cur == NULL) {
        return rc;
    }
    if (c->flags & STR_PERSIST) {
        if (cur->expire_ms == KVD_NO_EXPIRY) {
            return 0;
        }
        c->when = KVD_NO_EXPIRY;
    } else if (!(c->flags & STR_ANY_EXPIRE)) {
        return 0; /* plain GETEX reads only */
    } else if (c->when <= c->now) {
        out->action = KVD_UPDATE_DEL; /* already expired */
        return 0;
    }
    out->action = KVD_UPDATE_PUT;
    out->val = cur->data;
    out->vlen = cur->len;
    out->expire_ms = c->when;
    return 0;
}

static void
str_getex(struct kvd_cmd_ctx *x)
{
    struct str_getex c = {0};
    size_t exp_arg;
    int rc;

    if (!str_parse_opts(x, 2, false, &c.flags, &exp_arg)) {
        return;
    }
    if (exp_arg != 0 && !str_expire_ms(x, exp_arg, c.flags, &c.when)) {
        return;
    }
    c.now = kvd_store_now_ms(x->st);
    rc = kvd_store_update(x->st, x->argv[1], x->argl[1], str_getex_fn, &c);
    if (rc == 0) {
        str_reply_copy(x, &c.old);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
    str_copy_release(&c.old);
}

/* --- MSET, MSETNX, MGET
 * ------------------------------------------------------------ */

static void
str_mset(struct kvd_cmd_ctx *x)
{
    struct kvd_op stack_ops[STR_STACK_KEYS];
    struct kvd_op *ops = stack_ops;
    size_t n = (x->argc - 1) / 2;
    struct kvd_err err;

    if (x->argc % 2 == 0) {
        kvd_cmd_reply_arity(x);
        return;
    }
    if (n > STR_STACK_KEYS) {
        ops = malloc(n * sizeof(*ops));
        if (ops == NULL) {
            kvd_cmd_reply_status_error(x, KVD_ENOMEM);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        ops[i] = (struct kvd_op){
            .type = KVD_OP_PUT,
            .key = x->argv[1 + 2 * i],
            .klen = x->argl[1 + 2 * i],
            .val = x->argv[2 + 2 * i],
            .vlen = x->argl[2 + 2 * i],
            .expire_ms = KVD_NO_EXPIRY,
        };
    }
    int rc = kvd_store_batch(x->st, ops, n, &err);
    if (rc == 0) {
        kvd_cmd_reply_ok(x);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
    if (ops != stack_ops) {
        free(ops);
    }
}

/* MSETNX: under the locks of every key, set all or none. */
static void
str_msetnx(struct kvd_cmd_ctx *x)
{
    size_t n = (x->argc - 1) / 2;
    struct kvd_store_guard g;
    struct kvd_err err;
    const void **keys = NULL;
    size_t *klens = NULL;
    struct kvd_op *ops = NULL;
    int rc = 0;
    bool any = false;

    if (x->argc % 2 == 0) {
        kvd_cmd_reply_arity(x);
        return;
    }
    keys = calloc(n, sizeof(*keys));
    klens = calloc(n, sizeof(*klens));
    ops = calloc(n, sizeof(*ops));
    if (keys == NULL || klens == NULL || ops == NULL) {
        kvd_cmd_reply_status_error(x, KVD_ENOMEM);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = x->argv[1 + 2 * i];
        klens[i] = x->argl[1 + 2 * i];
        ops[i] = (struct kvd_op){
            .type = KVD_OP_PUT,
            .key = keys[i],
            .klen = klens[i],
            .val = x->argv[2 + 2 * i],
            .vlen = x->argl[2 + 2 * i],
            .expire_ms = KVD_NO_EXPIRY,
        };
    }
    kvd_store_lock_keys(x->st, n, keys, klens, &g);
    for (size_t i = 0; i < n && rc == 0 && !any; i++) {
        struct kvd_val v;
        rc = kvd_store_get(x->st, keys[i], klens[i], &v);
        if (rc == 0) {
            kvd_val_release(&v);
            any = true;
        } else if (rc == KVD_ENOTFOUND) {
            rc = 0;
        }
    }
    if (rc == 0 && !any) {
        rc = kvd_store_batch_locked(x->st, ops, n, &err);
    }
    kvd_store_unlock_keys(x->st, &g);
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
    } else {
        kvd_cmd_reply_int(x, any ? 0 : 1);
    }
out:
    free(keys);
    free(klens);
    free(ops);
}

/*
 * MGET reads every key under the stripe locks of all of them, so it sees
 * an MSET (which holds the same locks while it applies its batch) entirely
 * or not at all. The values stay valid after unlocking (kvd_val contract),
 * so the reply is written with no lock held. A single key needs no lock.
 */
static void
str_mget(struct kvd_cmd_ctx *x)
{
    struct kvd_val stack_vals[STR_STACK_KEYS];
    int stack_rcs[STR_STACK_KEYS];
    const void *stack_keys[STR_STACK_KEYS];
    size_t stack_klens[STR_STACK_KEYS];
    struct kvd_val *vals = stack_vals;
    int *rcs = stack_rcs;
    const void **keys = stack_keys;
    size_t *klens = stack_klens;
    size_t n = x->argc - 1;
    struct kvd_store_guard g;

    if (n > STR_STACK_KEYS) {
        vals = calloc(n, sizeof(*vals));
        rcs = calloc(n, sizeof(*rcs));
        keys = calloc(n, sizeof(*keys));
        klens = calloc(n, sizeof(*klens));
        if (vals == NULL || rcs == NULL || keys == NULL || klens == NULL) {
            kvd_cmd_reply_status_error(x, KVD_ENOMEM);
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = x->argv[i + 1];
        klens[i] = x->argl[i + 1];
    }
    if (n > 1) {
        kvd_store_lock_keys(x->st, n, keys, klens, &g);
    }
    for (size_t i = 0; i < n; i++) {
        rcs[i] = kvd_store_get(x->st, keys[i], klens[i], &vals[i]);
    }
    if (n > 1) {
        kvd_store_unlock_keys(x->st, &g);
    }
    kvd_cmd_reply_array(x, n);
    for (size_t i = 0; i < n; i++) {
        if (rcs[i] == 0) {
            kvd_cmd_reply_bulk(x, vals[i].data, vals[i].len);
            kvd_val_release(&vals[i]);
        } else if (rcs[i] == KVD_ENOTFOUND || rcs[i] == KVD_EINVAL ||
                   rcs[i] == KVD_ETOOBIG) {
            /* A key that cannot exist (empty, too long) is just absent. */
            kvd_cmd_reply_null(x);
        } else {
            kvd_cmd_reply_status_error(x, rcs[i]);
        }
    }
out:
    if (vals != stack_vals) {
        free(vals);
        free(rcs);
        free(keys);
        free(klens);
    }
}

/* --- APPEND, STRLEN, GETRANGE, SETRANGE
 * ----------------------------------------------- */

struct str_build {
    const char *arg; /* bytes to append or write */
    size_t alen;
    uint64_t offset;    /* SETRANGE */
    char *buf;          /* the new value (malloc'd) */
    size_t len;         /* its length: the reply */
    const char *errmsg; /* set by the callback instead of a status */
};

static int
str_append_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct str_build *c = vctx;
    size_t old = cur != NULL ? cur->len : 0;

    if (c->alen > KVD_CMD_MAX_STRING_BYTES ||
        old > KVD_CMD_MAX_STRING_BYTES - c->alen) {
        c->errmsg = KVD_CMD_ERR_STR_TOOBIG;
        return KVD_ETOOBIG;
    }
    c->len = old + c->alen;
    c->buf = malloc(c->len > 0 ? c->len : 1);
    if (c->buf == NULL) {
        return KVD_ENOMEM;
    }
    if (old > 0) {
        memcpy(c->buf, cur->data, old);
    }
    if (c->alen > 0) {
        memcpy(c->buf + old, c->arg, c->alen);
    }
    out->action = KVD_UPDATE_PUT;
    out->val = c->buf;
    out->vlen = c->len;
    out->expire_ms = cur != NULL ? cur->expire_ms : KVD_NO_EXPIRY;
    return 0;
}

static void
str_reply_build(struct kvd_cmd_ctx *x, struct str_build *c, int rc)
{
    if (rc == 0) {
        kvd_cmd_reply_int(x, (long long)c->len);
    } else if (c->errmsg != NULL) {
        kvd_cmd_reply_error_as(x, rc, c->errmsg);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
    free(c->buf);
}

static void
str_append(struct kvd_cmd_ctx *x)
{
    struct str_build c = {.arg = x->argv[2], .alen = x->argl[2]};
    int rc = kvd_store_update(x->st, x->argv[1], x->argl[1], str_append_fn, &c);
    str_reply_build(x, &c, rc);
}

static void
str_strlen(struct kvd_cmd_ctx *x)
{
    struct kvd_val v;
    int rc = kvd_store_get(x->st, x->argv[1], x->argl[1], &v);

    if (rc == 0) {
        kvd_cmd_reply_int(x, (long long)v.len);
        kvd_val_release(&v);
    } else if (rc == KVD_ENOTFOUND) {
        kvd_cmd_reply_int(x, 0);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
}

/*
 * Clamp a [start, end] range with negative indexes counting from the end
 * (GETRANGE, BITCOUNT). Returns false for an empty range.
 */
static bool
str_clamp_range(long long *start, long long *end, long long len)
{
    if (*start < 0 && *end < 0 && *start > *end) {
        return false;
    }
    if (*start < 0) {
        *start = len + *start;
    }
    if (*end < 0) {
        *end = len + *end;
    }
    if (*start < 0) {
        *start = 0;
    }
    if (*end < 0) {
        *end = 0;
    }
    if (*end >= len) {
        *end = len - 1;
    }
    return *start <= *end && len > 0;
}

static void
str_getrange(struct kvd_cmd_ctx *x)
{
    long long start;
    long long end;
    struct kvd_val v;
    int rc;

    if (!kvd_cmd_arg_ll(x, 2, &start) || !kvd_cmd_arg_ll(x, 3, &end)) {
        return;
    }
    rc = kvd_store_get(x->st, x->argv[1], x->argl[1], &v);
    if (rc == KVD_ENOTFOUND) {
        kvd_cmd_reply_bulk(x, "", 0);
        return;
    }
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
        return;
    }
    if (str_clamp_range(&start, &end, (long long)v.len)) {
        kvd_cmd_reply_bulk(x, (const char *)v.data + start,
                           (size_t)(end - start + 1));
    } else {
        kvd_cmd_reply_bulk(x, "", 0);
    }
    kvd_val_release(&v);
}

static int
str_setrange_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct str_build *c = vctx;
    size_t old = cur != NULL ? cur->len : 0;

    if (c->alen == 0) {
        c->len = old; /* nothing to write: report the length only */
        return 0;
    }
    if (c->offset > KVD_CMD_MAX_STRING_BYTES ||
        c->alen > KVD_CMD_MAX_STRING_BYTES - c->offset) {
        c->errmsg = KVD_CMD_ERR_STR_TOOBIG;
        return KVD_ETOOBIG;
    }
    size_t end = (size_t)c->offset + c->alen;
    c->len = end > old ? end : old;
    c->buf = malloc(c->len);
    if (c->buf == NULL) {
        return KVD_ENOMEM;
    }
    if (old > 0) {
        memcpy(c->buf, cur->data, old);
    }
    if (c->offset > old) {
        memset(c->buf + old, 0, (size_t)c->offset - old);
    }
    memcpy(c->buf + c->offset, c->arg, c->alen);
    out->action = KVD_UPDATE_PUT;
    out->val = c->buf;
    out->vlen = c->len;
    out->expire_ms = cur != NULL ? cur->expire_ms : KVD_NO_EXPIRY;
    return 0;
}

static void
str_setrange(struct kvd_cmd_ctx *x)
{
    struct str_build c = {.arg = x->argv[3], .alen = x->argl[3]};
    long long off;

    if (!kvd_cmd_arg_ll(x, 2, &off)) {
        return;
    }
    if (off < 0) {
        kvd_cmd_reply_error(x, "ERR offset is out of range");
        return;
    }
    c.offset = (uint64_t)off;
    int rc =
        kvd_store_update(x->st, x->argv[1], x->argl[1], str_setrange_fn, &c);
    str_reply_build(x, &c, rc);
}

/* --- INCR family
 * ------------------------------------------------------------------ */

struct str_incr {
    long long by;
    long long result;
    char buf[24];
    const char *errmsg;
};

static int
str_incr_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct str_incr *c = vctx;
    long long v = 0;

    if (cur != NULL && !kvd_cmd_parse_ll(cur->data, cur->len, &v)) {
        c->errmsg = KVD_CMD_ERR_NOT_INT;
        return KVD_EINVAL;
    }
    if ((c->by < 0 && v < 0 && c->by < LLONG_MIN - v) ||
        (c->by > 0 && v > 0 && c->by > LLONG_MAX - v)) {
        c->errmsg = "ERR increment or decrement would overflow";
        return KVD_EINVAL;
    }
    c->result = v + c->by;
    out->action = KVD_UPDATE_PUT;
    out->val = c->buf;
    out->vlen = kvd_cmd_fmt_ll(c->buf, c->result);
    out->expire_ms = cur != NULL ? cur->expire_ms : KVD_NO_EXPIRY;
    return 0;
}

static void
str_incr_generic(struct kvd_cmd_ctx *x, long long by)
{
    struct str_incr c = {.by = by};
    int rc = kvd_store_update(x->st, x->argv[1], x->argl[1], str_incr_fn, &c);

    if (rc == 0) {
        kvd_cmd_reply_int(x, c.result);
    } else if (c.errmsg != NULL) {
        kvd_cmd_reply_error(x, c.errmsg);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
}

static void
str_incr(struct kvd_cmd_ctx *x)
{
    str_incr_generic(x, 1);
}

static void
str_decr(struct kvd_cmd_ctx *x)
{
    str_incr_generic(x, -1);
}

static void
str_incrby(struct kvd_cmd_ctx *x)
{
    long long by;

    if (kvd_cmd_arg_ll(x, 2, &by)) {
        str_incr_generic(x, by);
    }
}

static void
str_decrby(struct kvd_cmd_ctx *x)
{
    long long by;

    if (!kvd_cmd_arg_ll(x, 2, &by)) {
        return;
    }
    if (by == LLONG_MIN) {
        kvd_cmd_reply_error(x, "ERR decrement would overflow");
        return;
    }
    str_incr_generic(x, -by);
}

struct str_incrf {
    long double by;
    char buf[STR_LD_BUF_BYTES];
    size_t len;
    const char *errmsg;
};

static int
str_incrf_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct str_incrf *c = vctx;
    long double v = 0;

    if (cur != NULL && !kvd_cmd_parse_ld(cur->data, cur->len, &v)) {
        c->errmsg = KVD_CMD_ERR_NOT_FLOAT;
        return KVD_EINVAL;
    }
    v += c->by;
    if (isnan(v) || isinf(v)) {
        c->errmsg = "ERR increment would produce NaN or Infinity";
        return KVD_EINVAL;
    }
    c->len = kvd_cmd_fmt_ld(c->buf, sizeof(c->buf), v);
    if (c->len == 0) {
        c->errmsg = "ERR increment would produce NaN or Infinity";
        return KVD_EINVAL;
    }
    out->action = KVD_UPDATE_PUT;
    out->val = c->buf;
    out->vlen = c->len;
    out->expire_ms = cur != NULL ? cur->expire_ms : KVD_NO_EXPIRY;
    return 0;
}

static void
str_incrbyfloat(struct kvd_cmd_ctx *x)
{
    struct str_incrf *c = calloc(1, sizeof(*c)); /* too big for a stack */
    int rc;

    if (c == NULL) {
        kvd_cmd_reply_status_error(x, KVD_ENOMEM);
        return;
    }
    if (!kvd_cmd_parse_ld(x->argv[2], x->argl[2], &c->by)) {
        kvd_cmd_reply_error(x, KVD_CMD_ERR_NOT_FLOAT);
        free(c);
        return;
    }
    rc = kvd_store_update(x->st, x->argv[1], x->argl[1], str_incrf_fn, c);
    if (rc == 0) {
        kvd_cmd_reply_bulk(x, c->buf, c->len);
    } else if (c->errmsg != NULL) {
        kvd_cmd_reply_error(x, c->errmsg);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
    free(c);
}

/* --- bits
 * ------------------------------------------------------------------------- */

static bool
str_bit_offset(struct kvd_cmd_ctx *x, size_t arg, uint64_t *out)
{
    long long v;

    if (!kvd_cmd_parse_ll(x->argv[arg], x->argl[arg], &v) || v < 0 ||
        ((unsigned long long)v >> 3) >= KVD_CMD_MAX_STRING_BYTES) {
        kvd_cmd_reply_error(x,
                            "ERR bit offset is not an integer or out of range");
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

struct str_setbit {
    uint64_t offset;
    int on;
    int old;
    char *buf;
};

static int
str_setbit_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct str_setbit *c = vctx;
    size_t byte = (size_t)(c->offset >> 3);
    int shift = 7 - (int)(c->offset & 7);
    size_t old = cur != NULL ? cur->len : 0;
    const unsigned char *p = cur != NULL ? cur->data : NULL;

    c->old = byte < old ? (p[byte] >> shift) & 1 : 0;
    if (cur != NULL && byte < old && c->old == c->on) {
        return 0; /* unchanged: no write needed */
    }
    size_t len = byte + 1 > old ? byte + 1 : old;
    c->buf = calloc(1, len);
    if (c->buf == NULL) {
        return KVD_ENOMEM;
    }
    if (old > 0) {
        memcpy(c->buf, p, old);
    }
    unsigned char b = (unsigned char)c->buf[byte];
    b = (unsigned char)(b & ~(1u << shift));
    b = (unsigned char)(b | ((unsigned)c->on << shift));
    c->buf[byte] = (char)b;
    out->action = KVD_UPDATE_PUT;
    out->val = c->buf;
    out->vlen = len;
    out->expire_ms = cur != NULL ? cur->expire_ms : KVD_NO_EXPIRY;
    return 0;
}

static void
str_setbit(struct kvd_cmd_ctx *x)
{
    struct str_setbit c = {0};
    long long on;

    if (!str_bit_offset(x, 2, &c.offset)) {
        return;
    }
    if (!kvd_cmd_parse_ll(x->argv[3], x->argl[3], &on) || (on & ~1LL)) {
        kvd_cmd_reply_error(x, "ERR bit is not an integer or out of range");
        return;
    }
    c.on = (int)on;
    int rc = kvd_store_update(x->st, x->argv[1], x->argl[1], str_setbit_fn, &c);
    if (rc == 0) {
        kvd_cmd_reply_int(x, c.old);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
    free(c.buf);
}

static void
str_getbit(struct kvd_cmd_ctx *x)
{
    uint64_t off;
    struct kvd_val v;
    int bit = 0;

    if (!str_bit_offset(x, 2, &off)) {
        return;
    }
    int rc = kvd_store_get(x->st, x->argv[1], x->argl[1], &v);
    if (rc != 0 && rc != KVD_ENOTFOUND) {
        kvd_cmd_reply_status_error(x, rc);
        return;
    }
    if (rc == 0) {
        size_t byte = (size_t)(off >> 3);
        if (byte < v.len) {
            bit =
                (((const unsigned char *)v.data)[byte] >> (7 - (off & 7))) & 1;
        }
        kvd_val_release(&v);
    }
    kvd_cmd_reply_int(x, bit);
}

static long long
str_popcount(const unsigned char *p, size_t n)
{
    long long count = 0;

    for (size_t i = 0; i < n; i++) {
        count += __builtin_popcount(p[i]);
    }
    return count;
}

static void
str_bitcount(struct kvd_cmd_ctx *x)
{
    long long start = 0;
    long long end = -1;
    bool isbit = false;
    struct kvd_val v;

    if (x->argc == 4 || x->argc == 5) {
        if (!kvd_cmd_arg_ll(x, 2, &start) || !kvd_cmd_arg_ll(x, 3, &end)) {
            return;
        }
        if (x->argc == 5) {
            if (kvd_cmd_arg_is(x, 4, "bit")) {
                isbit = true;
            } else if (!kvd_cmd_arg_is(x, 4, "byte")) {
                kvd_cmd_reply_syntax(x);
                return;
            }
        }
    } else if (x->argc != 2) {
        kvd_cmd_reply_syntax(x);
        return;
    }
    int rc = kvd_store_get(x->st, x->argv[1], x->argl[1], &v);
    if (rc == KVD_ENOTFOUND) {
        kvd_cmd_reply_int(x, 0);
        return;
    }
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
        return;
    }
    const unsigned char *p = v.data;
    long long total = (long long)v.len;
    unsigned first_mask = 0;
    unsigned last_mask = 0;
    long long count = 0;
    bool nonempty;

    if (x->argc == 2) {
        end = total - 1;
        nonempty = total > 0;
    } else {
        if (isbit) {
            total <<= 3;
        }
        nonempty = str_clamp_range(&start, &end, total);
        if (nonempty && isbit) {
            /* Bits of the edge bytes outside the range, to subtract. */
            first_mask = ~((1u << (8 - (start & 7))) - 1) & 0xFF;
            last_mask = (1u << (7 - (end & 7))) - 1;
            start >>= 3;
            end >>= 3;
        }
    }
    if (nonempty) {
        count = str_popcount(p + start, (size_t)(end - start + 1));
        unsigned char edges[2] = {(unsigned char)(p[start] & first_mask),
                                  (unsigned char)(p[end] & last_mask)};
        count -= str_popcount(edges, 2);
    }
    kvd_val_release(&v);
    kvd_cmd_reply_int(x, count);
}

/* --- LCS
 * ---------------------------------------------------------------------- */

struct str_lcs_range {
    uint32_t a0;
    uint32_t a1;
    uint32_t b0;
    uint32_t b1;
};

/*
 * The longest common subsequence by the textbook dynamic programme over an
 * (alen+1) x (blen+1) table, then a walk back from the end that collects
 * the subsequence and its matching ranges (last ranges first, as Redis
 * reports them).
 */
static void
str_lcs_reply(struct kvd_cmd_ctx *x, const unsigned char *a, uint32_t alen,
              const unsigned char *b, uint32_t blen, bool getlen, bool getidx,
              bool withlen, long long minlen)
{
    uint64_t cells = (uint64_t)(alen + 1) * (blen + 1);
    uint32_t *t;
    char *res = NULL;
    struct str_lcs_range *ranges = NULL;
    size_t nranges = 0;

    if (cells * sizeof(uint32_t) > KVD_CMD_MAX_STRING_BYTES) {
        kvd_cmd_reply_error_as(x, KVD_ENOMEM,
                               "ERR Insufficient memory, transient memory "
                               "for LCS exceeds proto-max-bulk-len");
        return;
    }
    t = malloc((size_t)cells * sizeof(uint32_t));
#define LCS_AT(i, j) t[(size_t)(j) + (size_t)(i) * (blen + 1)]
    if (t == NULL) {
        kvd_cmd_reply_error_as(x, KVD_ENOMEM,
                               "ERR Insufficient memory, failed allocating "
                               "transient memory for LCS");
        return;
    }
    for (uint32_t i = 0; i <= alen; i++) {
        for (uint32_t j = 0; j <= blen; j++) {
            if (i == 0 || j == 0) {
                LCS_AT(i, j) = 0;
            } else if (a[i - 1] == b[j - 1]) {
                LCS_AT(i, j) = LCS_AT(i - 1, j - 1) + 1;
            } else {
                uint32_t l1 = LCS_AT(i - 1, j);
                uint32_t l2 = LCS_AT(i, j - 1);
                LCS_AT(i, j) = l1 > l2 ? l1 : l2;
            }
        }
    }
    uint32_t total = LCS_AT(alen, blen);
    if (getlen && !getidx) {
        kvd_cmd_reply_int(x, total);
        free(t);
        return;
    }
    res = malloc(total > 0 ? total : 1);
    size_t maxr = (alen < blen ? alen : blen) + 1;
    ranges = getidx ? malloc(maxr * sizeof(*ranges)) : NULL;
    if (res == NULL || (getidx && ranges == NULL)) {
        kvd_cmd_reply_status_error(x, KVD_ENOMEM);
        goto out;
    }
    uint32_t idx = total;
    uint32_t i = alen;
    uint32_t j = blen;
    uint32_t as = alen; /* alen: no range open */
    uint32_t ae = 0;
    uint32_t bs = 0;
    uint32_t be = 0;
    while (i > 0 && j > 0) {
        bool emit = false;
        if (a[i - 1] == b[j - 1]) {
            res[idx - 1] = (char)a[i - 1];
            if (as == alen) {
                as = i - 1;
                ae = i - 1;
                bs = j - 1;
                be = j - 1;
            } else if (as == i && bs == j) {
                as--; /* contiguous: extend backwards */
                bs--;
            } else {
                emit = true;
            }
            if (as == 0 || bs == 0) {
                emit = true;
            }
            idx--;
            i--;
            j--;
        } else {
            if (LCS_AT(i - 1, j) > LCS_AT(i, j - 1)) {
                i--;
            } else {
                j--;
            }
            if (as != alen) {
                emit = true;
            }
        }
        if (emit) {
            uint32_t mlen = ae - as + 1;
            if (ranges != NULL && (minlen == 0 || mlen >= minlen)) {
                ranges[nranges++] = (struct str_lcs_range){as, ae, bs, be};
            }
            as = alen;
        }
    }
    if (!getidx) {
        kvd_cmd_reply_bulk(x, res, total);
        goto out;
    }
    kvd_cmd_reply_map(x, 2);
    kvd_cmd_reply_cstr(x, "matches");
    kvd_cmd_reply_array(x, nranges);
    for (size_t r = 0; r < nranges; r++) {
        kvd_cmd_reply_array(x, withlen ? 3 : 2);
        kvd_cmd_reply_array(x, 2);
        kvd_cmd_reply_int(x, ranges[r].a0);
        kvd_cmd_reply_int(x, ranges[r].a1);
        kvd_cmd_reply_array(x, 2);
        kvd_cmd_reply_int(x, ranges[r].b0);
        kvd_cmd_reply_int(x, ranges[r].b1);
        if (withlen) {
            kvd_cmd_reply_int(x, ranges[r].a1 - ranges[r].a0 + 1);
        }
    }
    kvd_cmd_reply_cstr(x, "len");
    kvd_cmd_reply_int(x, total);
out:
#undef LCS_AT
    free(t);
    free(res);
    free(ranges);
}

static void
str_lcs(struct kvd_cmd_ctx *x)
{
    bool getlen = false;
    bool getidx = false;
    bool withlen = false;
    long long minlen = 0;
    struct kvd_val va = {0};
    struct kvd_val vb = {0};
    bool have_a = false;
    bool have_b = false;
    struct kvd_store_guard g;
    int rc;

    for (size_t j = 3; j < x->argc; j++) {
        if (kvd_cmd_arg_is(x, j, "idx")) {
            getidx = true;
        } else if (kvd_cmd_arg_is(x, j, "len")) {
            getlen = true;
        } else if (kvd_cmd_arg_is(x, j, "withmatchlen")) {
            withlen = true;
        } else if (kvd_cmd_arg_is(x, j, "minmatchlen") && j + 1 < x->argc) {
            if (!kvd_cmd_arg_ll(x, j + 1, &minlen)) {
                return;
            }
            if (minlen < 0) {
                minlen = 0;
            }
            j++;
        } else {
            kvd_cmd_reply_syntax(x);
            return;
        }
    }
    if (getidx && getlen) {
        kvd_cmd_reply_error(x, "ERR If you want both the length and indexes, "
                               "please just use IDX.");
        return;
    }
    /* Both keys read under their locks: one consistent pair of values. */
    const void *keys[2] = {x->argv[1], x->argv[2]};
    size_t klens[2] = {x->argl[1], x->argl[2]};
    kvd_store_lock_keys(x->st, 2, keys, klens, &g);
    rc = kvd_store_get(x->st, keys[0], klens[0], &va);
    have_a = rc == 0;
    if (rc == 0 || rc == KVD_ENOTFOUND) {
        rc = kvd_store_get(x->st, keys[1], klens[1], &vb);
        have_b = rc == 0;
    }
    kvd_store_unlock_keys(x->st, &g);
    if (rc != 0 && rc != KVD_ENOTFOUND) {
        kvd_cmd_reply_status_error(x, rc);
        goto out;
    }
    if ((have_a && va.len >= UINT32_MAX - 1) ||
        (have_b && vb.len >= UINT32_MAX - 1)) {
        kvd_cmd_reply_error(x, "ERR String too long for LCS");
        goto out;
    }
    str_lcs_reply(
        x, have_a ? va.data : (const void *)"", have_a ? (uint32_t)va.len : 0,
        have_b ? vb.data : (const void *)"", have_b ? (uint32_t)vb.len : 0,
        getlen, getidx, withlen, minlen);
out:
    if (have_a) {
        kvd_val_release(&va);
    }
    if (have_b) {
        kvd_val_release(&vb);
    }
}

/* --- the table
 * --------------------------------------------------------------------- */

#define W  KVD_CMDF_WRITE
#define R  KVD_CMDF_READONLY
#define DO KVD_CMDF_DENYOOM
#define F  KVD_CMDF_FAST

const struct kvd_cmd_def kvd_cmd_strings_defs[] = {
    KVD_CMD_DEF_MOP("get", 2, R | F, str_get, NULL, 1, 1, 1, "string", "1.0.0",
                    "Returns the string value of a key.", "key", str_get_prep,
                    str_get_reply),
    KVD_CMD_DEF_MOP(
        "set", -3, W | DO, str_set, NULL, 1, 1, 1, "string", "1.0.0",
        "Sets the string value of a key, ignoring its type. The key is created "
        "if it doesn't exist.",
        "key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT "
        "unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]",
        str_set_prep, str_set_reply),
    KVD_CMD_DEF(
        "setnx", 3, W | DO | F, str_setnx, NULL, 1, 1, 1, "string", "1.0.0",
        "Set the string value of a key only when the key doesn't exist.",
        "key value"),
    KVD_CMD_DEF("setex", 4, W | DO, str_setex, NULL, 1, 1, 1, "string", "2.0.0",
                "Sets the string value and expiration time of a key. Creates "
                "the key if it doesn't exist.",
                "key seconds value"),
    KVD_CMD_DEF("psetex", 4, W | DO, str_psetex, NULL, 1, 1, 1, "string",
                "2.6.0",
                "Sets both string value and expiration time in milliseconds of "
                "a key. The key is created if it doesn't exist.",
                "key milliseconds value"),
    KVD_CMD_DEF("getset", 3, W | DO | F, str_getset, NULL, 1, 1, 1, "string",
                "1.0.0",
                "Returns the previous string value of a key after setting it "
                "to a new value.",
                "key value"),
    KVD_CMD_DEF(
        "getdel", 2, W | F, str_getdel, NULL, 1, 1, 1, "string", "6.2.0",
        "Returns the string value of a key after deleting the key.", "key"),
    KVD_CMD_DEF(
        "getex", -2, W | F, str_getex, NULL, 1, 1, 1, "string", "6.2.0",
        "Returns the string value of a key after setting its expiration time.",
        "key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT "
        "unix-time-milliseconds | PERSIST]"),
    KVD_CMD_DEF(
        "mset", -3, W | DO, str_mset, NULL, 1, -1, 2, "string", "1.0.1",
        "Atomically creates or modifies the string values of one or more keys.",
        "key value [key value ...]"),
    KVD_CMD_DEF("msetnx", -3, W | DO, str_msetnx, NULL, 1, -1, 2, "string",
                "1.0.1",
                "Atomically modifies the string values of one or more keys "
                "only when all keys don't exist.",
                "key value [key value ...]"),
    KVD_CMD_DEF("mget", -2, R | F, str_mget, NULL, 1, -1, 1, "string", "1.0.0",
                "Atomically returns the string values of one or more keys.",
                "key [key ...]"),
    KVD_CMD_DEF("append", 3, W | DO | F, str_append, NULL, 1, 1, 1, "string",
                "2.0.0",
                "Appends a string to the value of a key. Creates the key if it "
                "doesn't exist.",
                "key value"),
    KVD_CMD_DEF("strlen", 2, R | F, str_strlen, NULL, 1, 1, 1, "string",
                "2.2.0", "Returns the length of a string value.", "key"),
    KVD_CMD_DEF("getrange", 4, R, str_getrange, NULL, 1, 1, 1, "string",
                "2.4.0", "Returns a substring of the string stored at a key.",
                "key start end"),
    KVD_CMD_DEF("setrange", 4, W | DO, str_setrange, NULL, 1, 1, 1, "string",
                "2.2.0",
                "Overwrites a part of a string value with another by an "
                "offset. Creates the key if it doesn't exist.",
                "key offset value"),
    KVD_CMD_DEF("incr", 2, W | DO | F, str_incr, NULL, 1, 1, 1, "string",
                "1.0.0",
                "Increments the integer value of a key by one. Uses 0 as "
                "initial value if the key doesn't exist.",
                "key"),
    KVD_CMD_DEF("decr", 2, W | DO | F, str_decr, NULL, 1, 1, 1, "string",
                "1.0.0",
                "Decrements the integer value of a key by one. Uses 0 as "
                "initial value if the key doesn't exist.",
                "key"),
    KVD_CMD_DEF("incrby", 3, W | DO | F, str_incrby, NULL, 1, 1, 1, "string",
                "1.0.0",
                "Increments the integer value of a key by a number. Uses 0 as "
                "initial value if the key doesn't exist.",
                "key increment"),
    KVD_CMD_DEF("decrby", 3, W | DO | F, str_decrby, NULL, 1, 1, 1, "string",
                "1.0.0",
                "Decrements a number from the integer value of a key. Uses 0 "
                "as initial value if the key doesn't exist.",
                "key decrement"),
    KVD_CMD_DEF("incrbyfloat", 3, W | DO | F, str_incrbyfloat, NULL, 1, 1, 1,
                "string", "2.6.0",
                "Increment the floating point value of a key by a number. Uses "
                "0 as initial value if the key doesn't exist.",
                "key increment"),
    KVD_CMD_DEF("setbit", 4, W | DO, str_setbit, NULL, 1, 1, 1, "bitmap",
                "2.2.0",
                "Sets or clears the bit at offset of the string value. Creates "
                "the key if it doesn't exist.",
                "key offset value"),
    KVD_CMD_DEF("getbit", 3, R | F, str_getbit, NULL, 1, 1, 1, "bitmap",
                "2.2.0", "Returns a bit value by offset.", "key offset"),
    KVD_CMD_DEF(
        "bitcount", -2, R, str_bitcount, NULL, 1, 1, 1, "bitmap", "2.6.0",
        "Counts the number of set bits (population counting) in a string.",
        "key [start end [BYTE | BIT]]"),
    KVD_CMD_DEF(
        "lcs", -3, R, str_lcs, NULL, 1, 2, 1, "string", "7.0.0",
        "Finds the longest common substring.",
        "key1 key2 [LEN] [IDX] [MINMATCHLEN min-match-len] [WITHMATCHLEN]"),
    KVD_CMD_END,
};
