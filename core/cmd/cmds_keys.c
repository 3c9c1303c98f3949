/*
 * core/cmd/cmds_keys.c -- key-space commands: DEL, EXISTS, TYPE, RENAME, COPY,
 * RANDOMKEY, KEYS, SCAN, and the expiry commands (EXPIRE family, TTL
 * family, PERSIST).
 *
 * Multi-key writes (DEL/UNLINK of several keys, RENAME, COPY) run inside a
 * kvd_store_lock_keys() section so their result is exact and atomic;
 * expiry changes are kvd_store_update() read-modify-writes of one key.
 * Expiry semantics are Redis's: TTL -2 for a missing key, -1 for no
 * expiry; an expiry at or before now deletes the key.
 *
 * SCAN cursors: on unordered engines the cursor is the iterator position
 * (struct kvd_entry.pos): a SCAN call stops only where pos changes and
 * returns that pos + 1, so resuming with start_pos = cursor neither skips
 * nor repeats entries; 0 means the end. On ordered engines the next key
 * is kept in the layer's bounded cursor table (see cmd.c) and the cursor
 * is its id.
 *
 * Thread-safety: handlers use only their context and the store.
 */
#include "core/cmd/cmd_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Default SCAN COUNT (as Redis). */
#define KEYS_SCAN_COUNT_DEFAULT 10

/* --- DEL, UNLINK, EXISTS, TOUCH, TYPE
 * ------------------------------------------- */

/* Pointer arrays for the keys argv[first], argv[first+step], ... */
static int
keys_collect(const struct kvd_cmd_ctx *x, size_t first, size_t n,
             const void ***keys, size_t **klens)
{
    *keys = calloc(n, sizeof(**keys));
    *klens = calloc(n, sizeof(**klens));
    if (*keys == NULL || *klens == NULL) {
        free(*keys);
        free(*klens);
        *keys = NULL;
        *klens = NULL;
        return KVD_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        (*keys)[i] = x->argv[first + i];
        (*klens)[i] = x->argl[first + i];
    }
    return 0;
}

/* DEL/UNLINK of one key: one engine delete, here or in a pass. */
static bool
keys_del_prep(const struct kvd_cmd_ctx *x, struct kvd_mop *op)
{
    if (x->argc != 2) {
        return false;
    }
    memset(op, 0, sizeof(*op));
    op->type = KVD_MOP_DEL;
    op->key = x->argv[1];
    op->klen = x->argl[1];
    return true;
}

static void
keys_del_reply(struct kvd_cmd_ctx *x, struct kvd_mop *op)
{
    int rc = op->status;

    /* A key that cannot exist (empty, too long) was not there. */
    if (rc == 0 || rc == KVD_ENOTFOUND || rc == KVD_EINVAL ||
        rc == KVD_ETOOBIG) {
        kvd_cmd_reply_int(x, rc == 0 ? 1 : 0);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
}

static void
keys_del(struct kvd_cmd_ctx *x)
{
    const void **keys;
    size_t *klens;
    struct kvd_store_guard g;
    size_t n = x->argc - 1;
    long long deleted = 0;
    int err = 0;

    struct kvd_mop op;

    if (keys_del_prep(x, &op)) { /* one key: one engine delete */
        op.status = kvd_store_del(x->st, op.key, op.klen);
        keys_del_reply(x, &op);
        return;
    }
    if (keys_collect(x, 1, n, &keys, &klens) != 0) {
        kvd_cmd_reply_status_error(x, KVD_ENOMEM);
        return;
    }
    /* One section: the count is exact even against concurrent writers,
     * and a repeated key is deleted (and counted) once. */
    kvd_store_lock_keys(x->st, n, keys, klens, &g);
    for (size_t i = 0; i < n; i++) {
        int rc = kvd_store_del_locked(x->st, keys[i], klens[i]);
        if (rc == 0) {
            deleted++;
        } else if (rc != KVD_ENOTFOUND && rc != KVD_EINVAL &&
                   rc != KVD_ETOOBIG && err == 0) {
            err = rc;
        }
    }
    kvd_store_unlock_keys(x->st, &g);
    free(keys);
    free(klens);
    if (err != 0) {
        kvd_cmd_reply_status_error(x, err);
    } else {
        kvd_cmd_reply_int(x, deleted);
    }
}

/* EXISTS and TOUCH: a repeated key counts each time (as Redis). */
static void
keys_exists(struct kvd_cmd_ctx *x)
{
    long long found = 0;

    for (size_t i = 1; i < x->argc; i++) {
        struct kvd_val v;
        int rc = kvd_store_get(x->st, x->argv[i], x->argl[i], &v);
        if (rc == 0) {
            kvd_val_release(&v);
            found++;
        } else if (rc != KVD_ENOTFOUND && rc != KVD_EINVAL &&
                   rc != KVD_ETOOBIG) {
            kvd_cmd_reply_status_error(x, rc);
            return;
        }
    }
    kvd_cmd_reply_int(x, found);
}

static void
keys_type(struct kvd_cmd_ctx *x)
{
    struct kvd_val v;
    int rc = kvd_store_get(x->st, x->argv[1], x->argl[1], &v);

    if (rc == 0) {
        kvd_val_release(&v);
        kvd_cmd_reply_status(x, "string");
    } else if (rc == KVD_ENOTFOUND || rc == KVD_EINVAL || rc == KVD_ETOOBIG) {
        kvd_cmd_reply_status(x, "none");
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
}

/* --- RENAME, RENAMENX, COPY
 * --------------------------------------------------------- */

static bool
keys_same(const struct kvd_cmd_ctx *x, size_t a, size_t b)
{
    return x->argl[a] == x->argl[b] &&
           memcmp(x->argv[a], x->argv[b], x->argl[a]) == 0;
}

static void
keys_rename_generic(struct kvd_cmd_ctx *x, bool nx)
{
    const void *keys[2] = {x->argv[1], x->argv[2]};
    size_t klens[2] = {x->argl[1], x->argl[2]};
    struct kvd_store_guard g;
    struct kvd_val src;
    struct kvd_val dst;
    struct kvd_err err;
    bool exists = false;
    int rc;

    kvd_store_lock_keys(x->st, 2, keys, klens, &g);
    rc = kvd_store_get(x->st, keys[0], klens[0], &src);
    if (rc != 0) {
        kvd_store_unlock_keys(x->st, &g);
        if (rc == KVD_ENOTFOUND || rc == KVD_EINVAL || rc == KVD_ETOOBIG) {
            kvd_cmd_reply_error(x, KVD_CMD_ERR_NO_KEY);
        } else {
            kvd_cmd_reply_status_error(x, rc);
        }
        return;
    }
    if (keys_same(x, 1, 2)) {
        /* Renaming a key to itself changes nothing (RENAMENX: 0). */
        kvd_val_release(&src);
        kvd_store_unlock_keys(x->st, &g);
        if (nx) {
            kvd_cmd_reply_int(x, 0);
        } else {
            kvd_cmd_reply_ok(x);
        }
        return;
    }
    if (nx) {
        rc = kvd_store_get(x->st, keys[1], klens[1], &dst);
        if (rc == 0) {
            kvd_val_release(&dst);
            exists = true;
        } else if (rc == KVD_ENOTFOUND) {
            rc = 0;
        }
    }
    if (rc == 0 && !exists) {
        struct kvd_op ops[2] = {
            {.type = KVD_OP_PUT,
             .key = keys[1],
             .klen = klens[1],
             .val = src.data,
             .vlen = src.len,
             .expire_ms = src.expire_ms},
            {.type = KVD_OP_DEL, .key = keys[0], .klen = klens[0]},
        };
        rc = kvd_store_batch_locked(x->st, ops, 2, &err);
    }
    kvd_val_release(&src);
    kvd_store_unlock_keys(x->st, &g);
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
    } else if (nx) {
        kvd_cmd_reply_int(x, exists ? 0 : 1);
    } else {
        kvd_cmd_reply_ok(x);
    }
}

static void
keys_rename(struct kvd_cmd_ctx *x)
{
    keys_rename_generic(x, false);
}

static void
keys_renamenx(struct kvd_cmd_ctx *x)
{
    keys_rename_generic(x, true);
}

static void
keys_copy(struct kvd_cmd_ctx *x)
{
    bool replace = false;
    const void *keys[2] = {x->argv[1], x->argv[2]};
    size_t klens[2] = {x->argl[1], x->argl[2]};
    struct kvd_store_guard g;
    struct kvd_val src;
    struct kvd_val dst;
    long long result = 0;
    int rc;

    for (size_t j = 3; j < x->argc; j++) {
        if (kvd_cmd_arg_is(x, j, "replace")) {
            replace = true;
        } else if (kvd_cmd_arg_is(x, j, "db") && j + 1 < x->argc) {
            long long db;
            if (!kvd_cmd_arg_ll(x, j + 1, &db)) {
                return;
            }
            if (db != 0) {
                kvd_cmd_reply_error(x, KVD_CMD_ERR_DB_RANGE);
                return;
            }
            j++;
        } else {
            kvd_cmd_reply_syntax(x);
            return;
        }
    }
    if (keys_same(x, 1, 2)) {
        kvd_cmd_reply_error(x, KVD_CMD_ERR_SAME_OBJ);
        return;
    }
    kvd_store_lock_keys(x->st, 2, keys, klens, &g);
    rc = kvd_store_get(x->st, keys[0], klens[0], &src);
    if (rc == 0) {
        bool exists = false;
        int rc2 = kvd_store_get(x->st, keys[1], klens[1], &dst);
        if (rc2 == 0) {
            kvd_val_release(&dst);
            exists = true;
        } else if (rc2 != KVD_ENOTFOUND) {
            rc = rc2;
        }
        if (rc == 0 && (!exists || replace)) {
            rc = kvd_store_put_locked(x->st, keys[1], klens[1], src.data,
                                      src.len, src.expire_ms);
            result = rc == 0 ? 1 : 0;
        }
        kvd_val_release(&src);
    } else if (rc == KVD_ENOTFOUND || rc == KVD_EINVAL || rc == KVD_ETOOBIG) {
        rc = 0;
    }
    kvd_store_unlock_keys(x->st, &g);
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
    } else {
        kvd_cmd_reply_int(x, result);
    }
}

/* --- expiry
 * ------------------------------------------------------------------------ */

enum keys_exp_flag {
    KEYS_EXP_NX = 1u << 0,
    KEYS_EXP_XX = 1u << 1,
    KEYS_EXP_GT = 1u << 2,
    KEYS_EXP_LT = 1u << 3,
};

struct keys_expire {
    unsigned flags;
    int64_t when;
    int64_t now;
    int result;
};

static int
keys_expire_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct keys_expire *c = vctx;

    c->result = 0;
    if (cur == NULL) {
        return 0;
    }
    /* -1 stands for "no expiry", which GT treats as infinite. */
    int64_t have = cur->expire_ms == KVD_NO_EXPIRY ? -1 : cur->expire_ms;
    if ((c->flags & KEYS_EXP_NX) && have != -1) {
        return 0;
    }
    if ((c->flags & KEYS_EXP_XX) && have == -1) {
        return 0;
    }
    if ((c->flags & KEYS_EXP_GT) && (c->when <= have || have == -1)) {
        return 0;
    }
    if ((c->flags & KEYS_EXP_LT) && have != -1 && c->when >= have) {
        return 0;
    }
    c->result = 1;
    if (c->when <= c->now) {
        out->action = KVD_UPDATE_DEL;
        return 0;
    }
    out->action = KVD_UPDATE_PUT;
    out->val = cur->data;
    out->vlen = cur->len;
    out->expire_ms = c->when;
    return 0;
}

/*
 * EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT. Options are checked before the
 * time argument, as in Redis; negative times are allowed (they delete).
 */
static void
keys_expire_generic(struct kvd_cmd_ctx *x, bool relative, bool seconds)
{
    struct keys_expire c = {0};
    long long when;

    for (size_t j = 3; j < x->argc; j++) {
        if (kvd_cmd_arg_is(x, j, "nx")) {
            c.flags |= KEYS_EXP_NX;
        } else if (kvd_cmd_arg_is(x, j, "xx")) {
            c.flags |= KEYS_EXP_XX;
        } else if (kvd_cmd_arg_is(x, j, "gt")) {
            c.flags |= KEYS_EXP_GT;
        } else if (kvd_cmd_arg_is(x, j, "lt")) {
            c.flags |= KEYS_EXP_LT;
        } else {
            const char *z = memchr(x->argv[j], '\0', x->argl[j]);
            int n = z ? (int)(z - x->argv[j]) : (int)x->argl[j];
            kvd_cmd_reply_errorf(x, "ERR Unsupported option %.*s",
                                 n < 256 ? n : 256, x->argv[j]);
            return;
        }
    }
    if ((c.flags & KEYS_EXP_NX) &&
        (c.flags & (KEYS_EXP_XX | KEYS_EXP_GT | KEYS_EXP_LT))) {
        kvd_cmd_reply_error(x, "ERR NX and XX, GT or LT options at the same "
                               "time are not compatible");
        return;
    }
    if ((c.flags & KEYS_EXP_GT) && (c.flags & KEYS_EXP_LT)) {
        kvd_cmd_reply_error(x, "ERR GT and LT options at the same time are "
                               "not compatible");
        return;
    }
    if (!kvd_cmd_arg_ll(x, 2, &when)) {
        return;
    }
    c.now = kvd_store_now_ms(x->st);
    if (seconds) {
        if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000) {
            kvd_cmd_reply_errorf(x, "ERR invalid expire time in '%s' command",
                                 x->ent->fullname);
            return;
        }
        when *= 1000;
    }
    if (relative) {
        if (when > LLONG_MAX - c.now) {
            kvd_cmd_reply_errorf(x, "ERR invalid expire time in '%s' command",
                                 x->ent->fullname);
            return;
        }
        when += c.now;
    }
    c.when = when;
    int rc =
        kvd_store_update(x->st, x->argv[1], x->argl[1], keys_expire_fn, &c);
    if (rc == 0) {
        kvd_cmd_reply_int(x, c.result);
    } else if (rc == KVD_EINVAL || rc == KVD_ETOOBIG) {
        kvd_cmd_reply_int(x, 0); /* no such key can exist */
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
}

static void
keys_expire(struct kvd_cmd_ctx *x)
{
    keys_expire_generic(x, true, true);
}

static void
keys_pexpire(struct kvd_cmd_ctx *x)
{
    keys_expire_generic(x, true, false);
}

static void
keys_expireat(struct kvd_cmd_ctx *x)
{
    keys_expire_generic(x, false, true);
}

static void
keys_pexpireat(struct kvd_cmd_ctx *x)
{
    keys_expire_generic(x, false, false);
}

enum keys_ttl_kind {
    KEYS_TTL_S,
    KEYS_TTL_MS,
    KEYS_AT_S,
    KEYS_AT_MS,
};

static void
keys_ttl_generic(struct kvd_cmd_ctx *x, int kind)
{
    struct kvd_val v;
    int rc = kvd_store_get(x->st, x->argv[1], x->argl[1], &v);

    if (rc == KVD_ENOTFOUND || rc == KVD_EINVAL || rc == KVD_ETOOBIG) {
        kvd_cmd_reply_int(x, -2);
        return;
    }
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
        return;
    }
    int64_t exp = v.expire_ms;
    kvd_val_release(&v);
    if (exp == KVD_NO_EXPIRY) {
        kvd_cmd_reply_int(x, -1);
        return;
    }
    if (kind == KEYS_AT_S) {
        kvd_cmd_reply_int(x, exp / 1000);
        return;
    }
    if (kind == KEYS_AT_MS) {
        kvd_cmd_reply_int(x, exp);
        return;
    }
    int64_t ttl = exp - kvd_store_now_ms(x->st);
    if (ttl < 0) {
        ttl = 0;
    }
    kvd_cmd_reply_int(x, kind == KEYS_TTL_S ? (ttl + 500) / 1000 : ttl);
}

static void
keys_ttl(struct kvd_cmd_ctx *x)
{
    keys_ttl_generic(x, KEYS_TTL_S);
}

static void
keys_pttl(struct kvd_cmd_ctx *x)
{
    keys_ttl_generic(x, KEYS_TTL_MS);
}

static void
keys_expiretime(struct kvd_cmd_ctx *x)
{
    keys_ttl_generic(x, KEYS_AT_S);
}

static void
keys_pexpiretime(struct kvd_cmd_ctx *x)
{
    keys_ttl_generic(x, KEYS_AT_MS);
}

static int
keys_persist_fn(void *vctx, const struct kvd_val *cur, struct kvd_update *out)
{
    int *result = vctx;

    *result = 0;
    if (cur == NULL || cur->expire_ms == KVD_NO_EXPIRY) {
        return 0;
    }
    *result = 1;
    out->action = KVD_UPDATE_PUT;
    out->val = cur->data;
    out->vlen = cur->len;
    out->expire_ms = KVD_NO_EXPIRY;
    return 0;
}

static void
keys_persist(struct kvd_cmd_ctx *x)
{
    int result = 0;
    int rc = kvd_store_update(x->st, x->argv[1], x->argl[1], keys_persist_fn,
                              &result);

    if (rc == 0 || rc == KVD_EINVAL || rc == KVD_ETOOBIG) {
        kvd_cmd_reply_int(x, rc == 0 ? result : 0);
    } else {
        kvd_cmd_reply_status_error(x, rc);
    }
}

/* --- listing: KEYS, SCAN, RANDOMKEY
 * ----------------------------------------------- */

/* Keys collected before replying (the count goes first): each record is
 * a size_t length then the bytes, unaligned. */
struct keys_list {
    struct kvd_cmd_buf buf;
    size_t n;
};

static int
keys_list_add(struct keys_list *l, const void *key, size_t klen)
{
    int rc = kvd_cmd_buf_append(&l->buf, &klen, sizeof(klen));
    if (rc == 0) {
        rc = kvd_cmd_buf_append(&l->buf, key, klen);
    }
    if (rc == 0) {
        l->n++;
    }
    return rc;
}

static void
keys_list_reply(struct kvd_cmd_ctx *x, const struct keys_list *l)
{
    size_t off = 0;

    kvd_cmd_reply_array(x, l->n);
    for (size_t i = 0; i < l->n; i++) {
        size_t klen;
        memcpy(&klen, l->buf.p + off, sizeof(klen));
        off += sizeof(klen);
        kvd_cmd_reply_bulk(x, l->buf.p + off, klen);
        off += klen;
    }
}

static bool
keys_pattern_all(const char *pat, size_t plen)
{
    return plen == 1 && pat[0] == '*';
}

static void
keys_keys(struct kvd_cmd_ctx *x)
{
    const char *pat = x->argv[1];
    size_t plen = x->argl[1];
    bool all = keys_pattern_all(pat, plen);
    struct kvd_iter_opts o = {.flags = KVD_ITER_KEYS_ONLY};
    struct keys_list l = {0};
    struct kvd_entry e;
    kvd_iter *it;
    int rc;

    o.prefix = pat;
    o.prefix_len = kvd_cmd_glob_prefix(pat, plen);
    rc = kvd_store_iter_open(x->st, &o, &it, NULL);
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
        return;
    }
    while ((rc = kvd_store_iter_next(x->st, it, &e)) == 0) {
        if (all || kvd_cmd_glob_match(pat, plen, e.key, e.klen, false)) {
            rc = keys_list_add(&l, e.key, e.klen);
            if (rc != 0) {
                break;
            }
        }
    }
    kvd_store_iter_close(x->st, it);
    if (rc != KVD_ENOTFOUND) {
        kvd_cmd_reply_status_error(x, rc);
    } else {
        keys_list_reply(x, &l);
    }
    kvd_cmd_buf_release(&l.buf);
}

/* A SCAN cursor: decimal digits of an unsigned 64-bit number. */
static bool
keys_parse_cursor(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 20) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

struct keys_scan {
    uint64_t cursor;
    long long count;
    const char *pat;
    size_t plen;
    bool match_all;
    bool type_none; /* TYPE other than string: nothing matches */
};

static bool
keys_scan_wants(const struct keys_scan *sc, const struct kvd_entry *e)
{
    if (sc->type_none) {
        return false;
    }
    return sc->match_all ||
           kvd_cmd_glob_match(sc->pat, sc->plen, e->key, e->klen, false);
}

static void
keys_scan_reply(struct kvd_cmd_ctx *x, uint64_t next, const struct keys_list *l)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)next);

    kvd_cmd_reply_array(x, 2);
    kvd_cmd_reply_bulk(x, buf, (size_t)n);
    keys_list_reply(x, l);
}

/* Run one SCAN step; fills l and *next, returns a status. */
static int
keys_scan_step(struct kvd_cmd_ctx *x, const struct keys_scan *sc,
               struct keys_list *l, uint64_t *next)
{
    bool ordered = (kvd_store_caps(x->st) & KVD_CAP_ORDERED) != 0;
    struct kvd_iter_opts o = {.flags = KVD_ITER_KEYS_ONLY};
    struct kvd_entry e;
    void *start = NULL;
    kvd_iter *it;
    long long seen = 0;
    int rc;

    o.prefix = sc->pat;
    o.prefix_len = sc->type_none ? 0 : kvd_cmd_glob_prefix(sc->pat, sc->plen);
    if (ordered && sc->cursor != 0) {
        rc = kvd_cmd_scan_take(x->cmd, sc->cursor, &start, &o.start_len);
        if (rc != 0) {
            return rc;
        }
        o.start = start;
    } else if (!ordered) {
        o.start_pos = sc->cursor;
    }
    rc = kvd_store_iter_open(x->st, &o, &it, NULL);
    free(start);
    if (rc != 0) {
        return rc;
    }
    *next = 0;
    uint64_t last_pos = 0;
    while ((rc = kvd_store_iter_next(x->st, it, &e)) == 0) {
        if (seen >= sc->count) {
            if (ordered) {
                *next = kvd_cmd_scan_save(x->cmd, e.key, e.klen);
                rc = *next == 0 ? KVD_ENOMEM : 0;
                break;
            }
            if (e.pos != last_pos) {
                *next = last_pos + 1; /* resume after every entry of it */
                rc = 0;
                break;
            }
        }
        seen++;
        last_pos = e.pos;
        if (keys_scan_wants(sc, &e)) {
            rc = keys_list_add(l, e.key, e.klen);
            if (rc != 0) {
                break;
            }
        }
    }
    kvd_store_iter_close(x->st, it);
    return rc == KVD_ENOTFOUND ? 0 : rc;
}

static void
keys_scan(struct kvd_cmd_ctx *x)
{
    struct keys_scan sc = {.count = KEYS_SCAN_COUNT_DEFAULT};
    struct keys_list l = {0};
    uint64_t next = 0;

    if (!keys_parse_cursor(x->argv[1], x->argl[1], &sc.cursor)) {
        kvd_cmd_reply_error(x, "ERR invalid cursor");
        return;
    }
    sc.match_all = true;
    for (size_t i = 2; i < x->argc; i += 2) {
        bool more = i + 1 < x->argc;
        if (more && kvd_cmd_arg_is(x, i, "count")) {
            if (!kvd_cmd_arg_ll(x, i + 1, &sc.count)) {
                return;
            }
            if (sc.count < 1) {
                kvd_cmd_reply_syntax(x);
                return;
            }
        } else if (more && kvd_cmd_arg_is(x, i, "match")) {
            sc.pat = x->argv[i + 1];
            sc.plen = x->argl[i + 1];
            sc.match_all = keys_pattern_all(sc.pat, sc.plen);
        } else if (more && kvd_cmd_arg_is(x, i, "type")) {
            sc.type_none = !kvd_cmd_arg_is(x, i + 1, "string");
        } else {
            kvd_cmd_reply_syntax(x);
            return;
        }
    }
    if (sc.match_all) {
        sc.pat = NULL;
        sc.plen = 0;
    }
    int rc = keys_scan_step(x, &sc, &l, &next);
    if (rc == KVD_ENOTFOUND) {
        kvd_cmd_reply_error(x, "ERR invalid cursor");
    } else if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
    } else {
        keys_scan_reply(x, next, &l);
    }
    kvd_cmd_buf_release(&l.buf);
}

/* Per-thread generator for RANDOMKEY (quality is not a concern). */
static uint64_t
keys_random(kvd_store *st)
{
    static _Thread_local uint64_t s;

    if (s == 0) {
        s = (uint64_t)kvd_store_now_ms(st) ^ (uint64_t)(uintptr_t)&s ^
            0x9e3779b97f4a7c15ull;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/*
 * RANDOMKEY: skip a random number of keys from the start. Linear in the
 * number of keys, but needs nothing from the engine beyond iteration.
 */
static void
keys_randomkey(struct kvd_cmd_ctx *x)
{
    struct kvd_engine_stats stats;
    struct kvd_iter_opts o = {.flags = KVD_ITER_KEYS_ONLY};
    struct kvd_cmd_buf pick = {0};
    struct kvd_entry e;
    kvd_iter *it;
    bool found = false;
    int rc = kvd_store_stats(x->st, &stats, NULL, NULL);

    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
        return;
    }
    if (stats.keys == 0) {
        kvd_cmd_reply_null(x);
        return;
    }
    uint64_t skip = keys_random(x->st) % stats.keys;
    rc = kvd_store_iter_open(x->st, &o, &it, NULL);
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
        return;
    }
    while ((rc = kvd_store_iter_next(x->st, it, &e)) == 0) {
        pick.len = 0;
        rc = kvd_cmd_buf_append(&pick, e.key, e.klen);
        if (rc != 0) {
            break;
        }
        found = true;
        if (skip-- == 0) {
            break;
        }
    }
    kvd_store_iter_close(x->st, it);
    if (rc != 0 && rc != KVD_ENOTFOUND) {
        kvd_cmd_reply_status_error(x, rc);
    } else if (found) {
        kvd_cmd_reply_bulk(x, pick.p, pick.len);
    } else {
        kvd_cmd_reply_null(x);
    }
    kvd_cmd_buf_release(&pick);
}

/* --- the table
 * ---------------------------------------------------------------------- */

#define W  KVD_CMDF_WRITE
#define R  KVD_CMDF_READONLY
#define F  KVD_CMDF_FAST
#define DO KVD_CMDF_DENYOOM
#define KS KVD_CMDF_KEYSPACE

const struct kvd_cmd_def kvd_cmd_keys_defs[] = {
    KVD_CMD_DEF_MOP("del", -2, W, keys_del, NULL, 1, -1, 1, "generic", "1.0.0",
                    "Deletes one or more keys.", "key [key ...]", keys_del_prep,
                    keys_del_reply),
    KVD_CMD_DEF_MOP("unlink", -2, W | F, keys_del, NULL, 1, -1, 1, "generic",
                    "4.0.0", "Asynchronously deletes one or more keys.",
                    "key [key ...]", keys_del_prep, keys_del_reply),
    KVD_CMD_DEF("exists", -2, R | F, keys_exists, NULL, 1, -1, 1, "generic",
                "1.0.0", "Determines whether one or more keys exist.",
                "key [key ...]"),
    KVD_CMD_DEF("touch", -2, R | F, keys_exists, NULL, 1, -1, 1, "generic",
                "3.2.1",
                "Returns the number of existing keys out of those specified "
                "after updating the time they were last accessed.",
                "key [key ...]"),
    KVD_CMD_DEF("type", 2, R | F, keys_type, NULL, 1, 1, 1, "generic", "1.0.0",
                "Determines the type of value stored at a key.", "key"),
    KVD_CMD_DEF("rename", 3, W, keys_rename, NULL, 1, 2, 1, "generic", "1.0.0",
                "Renames a key and overwrites the destination.", "key newkey"),
    KVD_CMD_DEF("renamenx", 3, W | F, keys_renamenx, NULL, 1, 2, 1, "generic",
                "1.0.0",
                "Renames a key only when the target key name doesn't exist.",
                "key newkey"),
    KVD_CMD_DEF("copy", -3, W | DO, keys_copy, NULL, 1, 2, 1, "generic",
                "6.2.0", "Copies the value of a key to a new key.",
                "source destination [DB destination-db] [REPLACE]"),
    KVD_CMD_DEF("randomkey", 1, R | KS, keys_randomkey, NULL, 0, 0, 0,
                "generic", "1.0.0",
                "Returns a random key name from the database.", ""),
    KVD_CMD_DEF("keys", 2, R | KS, keys_keys, NULL, 0, 0, 0, "generic", "1.0.0",
                "Returns all key names that match a pattern.", "pattern"),
    KVD_CMD_DEF("scan", -2, R | KS, keys_scan, NULL, 0, 0, 0, "generic",
                "2.8.0", "Iterates over the key names in the database.",
                "cursor [MATCH pattern] [COUNT count] [TYPE type]"),
    KVD_CMD_DEF("expire", -3, W | F, keys_expire, NULL, 1, 1, 1, "generic",
                "1.0.0", "Sets the expiration time of a key in seconds.",
                "key seconds [NX | XX | GT | LT]"),
    KVD_CMD_DEF("pexpire", -3, W | F, keys_pexpire, NULL, 1, 1, 1, "generic",
                "2.6.0", "Sets the expiration time of a key in milliseconds.",
                "key milliseconds [NX | XX | GT | LT]"),
    KVD_CMD_DEF("expireat", -3, W | F, keys_expireat, NULL, 1, 1, 1, "generic",
                "1.2.0",
                "Sets the expiration time of a key to a Unix timestamp.",
                "key unix-time-seconds [NX | XX | GT | LT]"),
    KVD_CMD_DEF(
        "pexpireat", -3, W | F, keys_pexpireat, NULL, 1, 1, 1, "generic",
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        "key unix-time-milliseconds [NX | XX | GT | LT]"),
    KVD_CMD_DEF("ttl", 2, R | F, keys_ttl, NULL, 1, 1, 1, "generic", "1.0.0",
                "Returns the expiration time in seconds of a key.", "key"),
    KVD_CMD_DEF("pttl", 2, R | F, keys_pttl, NULL, 1, 1, 1, "generic", "2.6.0",
                "Returns the expiration time in milliseconds of a key.", "key"),
    KVD_CMD_DEF("expiretime", 2, R | F, keys_expiretime, NULL, 1, 1, 1,
                "generic", "7.0.0",
                "Returns the expiration time of a key as a Unix timestamp.",
                "key"),
    KVD_CMD_DEF("pexpiretime", 2, R | F, keys_pexpiretime, NULL, 1, 1, 1,
                "generic", "7.0.0",
                "Returns the expiration time of a key as a Unix milliseconds "
                "timestamp.",
                "key"),
    KVD_CMD_DEF("persist", 2, W | F, keys_persist, NULL, 1, 1, 1, "generic",
                "2.2.0", "Removes the expiration time of a key.", "key"),
    KVD_CMD_END,
};
