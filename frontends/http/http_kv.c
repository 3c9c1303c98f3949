/*
 * frontends/http/http_kv.c -- the key routes of the http frontend.
 *
 *   GET|HEAD|PUT|DELETE /kv/{key}     one key (value bytes as the body)
 *   GET|HEAD /kv?key=a&key=b          the values of those present (JSON)
 *   GET|HEAD /kv?prefix=&limit=&cursor=  list keys, a page at a time
 *   POST /kv                          set a JSON object of keys atomically
 *   DELETE /kv?key=a&key=b            delete keys, answer the count
 *
 * Every operation goes through the host's store (srv->store_api), so an
 * HTTP PUT and a RESP SET of the same key are indistinguishable: same size
 * limits, same TTL semantics, same per-key write serialisation.
 *
 * A request with a body (PUT, POST) is answered in two steps:
 * http_kv_head checks everything the head already tells (method, key,
 * query, Content-Length, Content-Type, readiness), so a request that
 * would fail is refused before its body is read; http_route.c then
 * collects the body into r->body (bounded by max_body_bytes) and
 * http_kv_body executes. Everything here runs on the worker that owns
 * the connection and touches only its own request.
 */
#include "http.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small helpers ------------------------------------------------------- */

static const struct kvd_store_api *
api(const struct http_req *r)
{
    return r->fe->srv->store_api;
}

static kvd_store *
store(const struct http_req *r)
{
    return r->fe->srv->store;
}

static int
is_method(const struct http_req *r, const char *m)
{
    return strcmp(r->method, m) == 0;
}

static int
utf8_ok(const void *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    int ok = s != NULL;
    json_decref(s);
    return ok;
}

/* Copy up to 40 bytes of an argument name into buf, printable ASCII only,
 * for an error message. */
static void
printable(char *buf, size_t len, const char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < len && i < 40; i++) {
        unsigned char ch = (unsigned char)p[i];
        buf[o++] = ch >= 0x20 && ch < 0x7f && ch != '"' ? (char)ch : '?';
    }
    buf[o] = '\0';
}

/* Refuse query parameters the route does not know (a typo such as ?tll=
 * must not be silently ignored). Returns 1 when a response was queued. */
static int
check_args(struct http_req *r, const char *const *allowed)
{
    for (size_t i = 0; i < r->nargs; i++) {
        const struct http_arg *a = &r->args[i];
        const char *const *al = allowed;
        char name[48], msg[96];

        while (*al != NULL && !http_arg_is(a, *al)) {
            al++;
        }
        if (*al != NULL) {
            continue;
        }
        printable(name, sizeof(name), a->name, a->name_len);
        snprintf(msg, sizeof(msg), "unknown query parameter '%s'", name);
        http_send_error(r, 400, msg);
        return 1;
    }
    return 0;
}

/* Parse an unsigned decimal argument in [min, max]; -1 if it is not. */
static int
arg_u64(const struct http_arg *a, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (a->val_len == 0 || a->val_len > 20) {
        return -1;
    }
    for (size_t i = 0; i < a->val_len; i++) {
        unsigned d = (unsigned char)a->val[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    if (v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* ?nx, ?nx=1, ?nx=true: on; ?nx=0, ?nx=false: off; else -1. */
static int
arg_flag(const struct http_arg *a)
{
    if (a == NULL) {
        return 0;
    }
    if (!a->has_val || (a->val_len == 1 && a->val[0] == '1') ||
        (a->val_len == 4 && memcmp(a->val, "true", 4) == 0)) {
        return 1;
    }
    if ((a->val_len == 1 && a->val[0] == '0') ||
        (a->val_len == 5 && memcmp(a->val, "false", 5) == 0)) {
        return 0;
    }
    return -1;
}

/* ?ttl=SECONDS into an absolute expiry (KVD_NO_EXPIRY without one).
 * Returns 1 when a response was queued. */
static int
parse_ttl(struct http_req *r, int64_t *expire_ms)
{
    const struct http_arg *a = http_arg_find(r, "ttl");
    uint64_t s;

    *expire_ms = KVD_NO_EXPIRY;
    if (a == NULL) {
        return 0;
    }
    if (arg_u64(a, 1, (uint64_t)HTTP_TTL_MAX_S, &s) != 0) {
        http_send_error(r, 400,
                        "ttl must be a whole number of seconds "
                        "between 1 and 3153600000");
        return 1;
    }
    *expire_ms = r->fe->host->now_ms(r->fe->host) + (int64_t)s * 1000;
    return 0;
}

/* Writes are refused with 503 while the store does not serve them. */
static int
check_ready(struct http_req *r)
{
    char why[160], msg[200];

    if (http_ready(r->fe, why, sizeof(why), 0)) {
        return 0;
    }
    snprintf(msg, sizeof(msg), "not ready: %s", why);
    http_send_error(r, 503, msg);
    return 1;
}

int
http_ready(struct http_fe *fe, char *why, size_t why_len, int fresh)
{
    int64_t now = fe->host->now_ms(fe->host);
    int ok;

    if (!fresh &&
        now < atomic_load_explicit(&fe->ready_until, memory_order_relaxed)) {
        return 1;
    }
    ok = fe->srv->store_api->ready(fe->srv->store, why, why_len);
    /* Only "ready" is cached: a store that recovers is seen at once, a
     * store that fails is seen within HTTP_READY_CACHE_MS (its writes
     * fail with their own status meanwhile). */
    atomic_store_explicit(&fe->ready_until, ok ? now + HTTP_READY_CACHE_MS : 0,
                          memory_order_relaxed);
    return ok;
}

/* ---- /kv/{key} ----------------------------------------------------------- */

static void
val_free(void *cls)
{
    struct kvd_val *v = cls;
    kvd_val_release(v);
    free(v);
}

/* Remaining TTL in whole seconds, rounded up (a live key never says 0). */
static int64_t
ttl_left_s(struct http_req *r, int64_t expire_ms)
{
    int64_t left = expire_ms - r->fe->host->now_ms(r->fe->host);
    return left <= 0 ? 1 : (left + 999) / 1000;
}

static void
kv_get(struct http_req *r)
{
    const struct http_arg *fmt = http_arg_find(r, "format");
    int json = 0;
    struct kvd_val v, *hold;
    int rc;

    if (fmt != NULL) {
        if (fmt->val_len == 4 && memcmp(fmt->val, "json", 4) == 0) {
            json = 1;
        } else if (!(fmt->val_len == 3 && memcmp(fmt->val, "raw", 3) == 0)) {
            http_send_error(r, 400, "format must be json or raw");
            return;
        }
    }
    rc = api(r)->get(store(r), r->key, r->klen, &v);
    if (rc != 0) {
        http_send_status(r, rc, 1);
        return;
    }
    if (json) {
        json_t *j = json_object();
        if (j != NULL) {
            json_object_set_new(j, "key", http_json_bytes(r->key, r->klen));
            json_object_set_new(j, "value", http_json_bytes(v.data, v.len));
            if (v.expire_ms != KVD_NO_EXPIRY) {
                json_object_set_new(j, "ttl",
                                    json_integer(ttl_left_s(r, v.expire_ms)));
            }
        }
        kvd_val_release(&v);
        http_send_json(r, 200, j);
        return;
    }
    /* Zero copy: the engine's bytes are sent as they are and released
     * once the socket took them. */
    hold = malloc(sizeof(*hold));
    if (hold == NULL) {
        kvd_val_release(&v);
        http_send_oom(r);
        return;
    }
    *hold = v;
    http_send_body(r, 200, "application/octet-stream", v.data, v.len, val_free,
                   hold);
    http_resp_header(r, "X-Content-Type-Options", "nosniff");
    if (v.expire_ms != KVD_NO_EXPIRY) {
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_left_s(r, v.expire_ms));
        http_resp_header(r, "X-KV-TTL", ttl);
    }
}

static void
kv_del(struct http_req *r)
{
    int rc = api(r)->del(store(r), r->key, r->klen);

    if (rc != 0) {
        http_send_status(r, rc, 1);
        return;
    }
    http_send_empty(r, 204);
}

/* PUT, once the body is in. */
static void
kv_put(struct http_req *r)
{
    unsigned flags = 0;
    int64_t expire;
    int created = 0, rc;

    if (r->body_len == 0) {
        http_send_error(r, 400, "value cannot be empty");
        return;
    }
    if (parse_ttl(r, &expire)) {
        return;
    }
    flags |= arg_flag(http_arg_find(r, "nx")) == 1 ? KVD_SET_NX : 0;
    flags |= arg_flag(http_arg_find(r, "xx")) == 1 ? KVD_SET_XX : 0;
    rc = api(r)->set(store(r), r->key, r->klen, r->body, r->body_len, expire,
                     flags, &created);
    if (rc == KVD_EEXIST) {
        http_send_error(r, 412, "key already exists");
        return;
    }
    if (rc == KVD_ENOTFOUND && (flags & KVD_SET_XX)) {
        http_send_error(r, 412, "key does not exist");
        return;
    }
    if (rc != 0) {
        http_send_status(r, rc, 0);
        return;
    }
    http_send_empty(r, created ? 201 : 204);
}

static void
kv_key_begin(struct http_req *r)
{
    static const char *const get_args[] = {"format", NULL};
    static const char *const put_args[] = {"ttl", "nx", "xx", NULL};
    static const char *const no_args[] = {NULL};
    int64_t expire;
    int nx, xx;

    if (is_method(r, "GET")) {
        r->cmd = HTTP_CMD_GET;
    } else if (is_method(r, "HEAD")) {
        r->cmd = HTTP_CMD_HEAD;
    } else if (is_method(r, "PUT")) {
        r->cmd = HTTP_CMD_PUT;
    } else if (is_method(r, "DELETE")) {
        r->cmd = HTTP_CMD_DELETE;
    } else {
        http_send_405(r, "GET, HEAD, PUT, DELETE");
        return;
    }
    if (r->klen == 0) {
        http_send_error(r, 400, "key cannot be empty");
        return;
    }
    switch (r->cmd) {
    case HTTP_CMD_GET:
    case HTTP_CMD_HEAD:
        if (check_args(r, get_args)) {
            return;
        }
        kv_get(r);
        return;
    case HTTP_CMD_DELETE:
        if (check_args(r, no_args) || check_ready(r)) {
            return;
        }
        kv_del(r);
        return;
    default:
        break;
    }
    /* PUT: everything the headers tell is checked before the body. */
    if (check_args(r, put_args) || parse_ttl(r, &expire)) {
        return;
    }
    nx = arg_flag(http_arg_find(r, "nx"));
    xx = arg_flag(http_arg_find(r, "xx"));
    if (nx < 0 || xx < 0) {
        http_send_error(r, 400, "nx and xx take no value, 1/true or 0/false");
        return;
    }
    if (nx && xx) {
        http_send_error(r, 400, "nx and xx cannot be combined");
        return;
    }
    if (check_ready(r)) {
        return;
    }
    http_body_expect(r, "application/octet-stream", "value cannot be empty");
}

/* ---- /kv ----------------------------------------------------------------- */

/* The keys named by ?key=, checked. Returns 1 when a response was
 * queued. */
static int
check_multi_keys(struct http_req *r, size_t *nkeys)
{
    size_t n = 0;

    for (size_t i = 0; i < r->nargs; i++) {
        if (!http_arg_is(&r->args[i], "key")) {
            continue;
        }
        if (r->args[i].val_len == 0) {
            http_send_error(r, 400, "key cannot be empty");
            return 1;
        }
        n++;
    }
    if (n > HTTP_MULTI_KEYS_MAX) {
        http_send_error(r, 400, "too many keys (at most 1000)");
        return 1;
    }
    *nkeys = n;
    return 0;
}

/* JSON object member name for a key: the key when it is UTF-8, else
 * "base64:" and its base64 (JSON names cannot hold other bytes). */
static int
set_member(json_t *obj, const char *k, size_t klen, json_t *val)
{
    char *b, *name;
    size_t bl;
    int rc;

    if (utf8_ok(k, klen)) {
        return json_object_setn_new(obj, k, klen, val);
    }
    b = http_b64_encode(k, klen, 0);
    if (b == NULL) {
        json_decref(val);
        return -1;
    }
    bl = strlen(b);
    name = malloc(bl + 8);
    if (name == NULL) {
        free(b);
        json_decref(val);
        return -1;
    }
    memcpy(name, "base64:", 7);
    memcpy(name + 7, b, bl + 1);
    rc = json_object_setn_new(obj, name, bl + 7, val);
    free(name);
    free(b);
    return rc;
}

static void
kv_mget(struct http_req *r)
{
    json_t *obj = json_object();

    if (obj == NULL) {
        http_send_oom(r);
        return;
    }
    for (size_t i = 0; i < r->nargs; i++) {
        const struct http_arg *a = &r->args[i];
        struct kvd_val v;
        int rc;

        if (!http_arg_is(a, "key")) {
            continue;
        }
        rc = api(r)->get(store(r), a->val, a->val_len, &v);
        if (rc == KVD_ENOTFOUND) {
            continue;
        }
        if (rc != 0) {
            json_decref(obj);
            http_send_status(r, rc, 1);
            return;
        }
        rc =
            set_member(obj, a->val, a->val_len, http_json_bytes(v.data, v.len));
        kvd_val_release(&v);
        if (rc != 0) {
            json_decref(obj);
            http_send_oom(r);
            return;
        }
    }
    http_send_json(r, 200, obj);
}

static void
kv_mdel(struct http_req *r)
{
    long long deleted = 0;

    /* Key by key: each delete is atomic, the set is not (the count is
     * exact either way). */
    for (size_t i = 0; i < r->nargs; i++) {
        const struct http_arg *a = &r->args[i];
        int rc;

        if (!http_arg_is(a, "key")) {
            continue;
        }
        rc = api(r)->del(store(r), a->val, a->val_len);
        if (rc == 0) {
            deleted++;
        } else if (rc != KVD_ENOTFOUND) {
            http_send_status(r, rc, 1);
            return;
        }
    }
    http_send_json(r, 200, json_pack("{s:I}", "deleted", deleted));
}

/*
 * One page of keys. Ordered engines resume by key: the cursor is the next
 * key, base64url. Unordered engines resume by position: entries come in
 * non-decreasing pos, and a page may only end where pos changes, so it
 * can hold a few more than `limit` keys when several share a position;
 * the cursor is the next entry's pos in decimal.
 */
static void
kv_list(struct http_req *r)
{
    const struct http_arg *pa = http_arg_find(r, "prefix");
    const struct http_arg *la = http_arg_find(r, "limit");
    const struct http_arg *ca = http_arg_find(r, "cursor");
    int ordered = (api(r)->caps(store(r)) & KVD_CAP_ORDERED) != 0;
    struct kvd_iter_opts io;
    struct kvd_err err;
    uint64_t limit = HTTP_LIST_DEFAULT, n = 0, last_pos = 0;
    char *start = NULL, *next = NULL;
    json_t *keys = NULL, *j;
    kvd_iter *it = NULL;
    int rc;

    memset(&io, 0, sizeof(io));
    io.flags = KVD_ITER_KEYS_ONLY;
    if (la != NULL && arg_u64(la, 1, HTTP_LIST_MAX, &limit) != 0) {
        http_send_error(r, 400, "limit must be between 1 and 1000");
        return;
    }
    if (pa != NULL && pa->val_len > 0) {
        io.prefix = pa->val;
        io.prefix_len = pa->val_len;
    }
    if (ca != NULL && ca->val_len > 0) {
        if (ordered) {
            long sl;
            start = malloc(ca->val_len + 3);
            sl = start != NULL ? http_b64_decode(ca->val, ca->val_len, start, 1)
                               : -1;
            if (sl <= 0) {
                free(start);
                http_send_error(r, 400, "invalid cursor");
                return;
            }
            io.start = start;
            io.start_len = (size_t)sl;
        } else if (arg_u64(ca, 0, UINT64_MAX - 1, &io.start_pos) != 0) {
            http_send_error(r, 400, "invalid cursor");
            return;
        }
    }
    rc = api(r)->iter_open(store(r), &io, &it, &err);
    if (rc != 0) {
        http_send_status(r, rc, 0);
        goto out;
    }
    keys = json_array();
    if (keys == NULL) {
        http_send_oom(r);
        goto out;
    }
    for (;;) {
        struct kvd_entry e;
        rc = api(r)->iter_next(store(r), it, &e);
        if (rc == KVD_ENOTFOUND) {
            break;
        }
        if (rc != 0) {
            http_send_status(r, rc, 0);
            goto out;
        }
        if (n >= limit && (ordered || e.pos != last_pos)) {
            if (ordered) {
                next = http_b64_encode(e.key, e.klen, 1);
            } else if ((next = malloc(24)) != NULL) {
                snprintf(next, 24, "%" PRIu64, e.pos);
            }
            if (next == NULL) {
                http_send_oom(r);
                goto out;
            }
            break;
        }
        if (json_array_append_new(keys, http_json_bytes(e.key, e.klen)) != 0) {
            http_send_oom(r);
            goto out;
        }
        n++;
        last_pos = e.pos;
    }
    j = json_pack("{s:o,s:o}", "keys", keys, "next",
                  next != NULL ? json_string(next) : json_null());
    keys = NULL; /* json_pack took it, even on failure */
    http_send_json(r, 200, j);
out:
    if (it != NULL) {
        api(r)->iter_close(store(r), it);
    }
    json_decref(keys);
    free(next);
    free(start);
}

/* A POST /kv member's value: a string, or {"base64": "..."}. Returns the
 * bytes (pointing into v, or into *owned, which the caller frees) or -1
 * if the value has neither form. */
static long
mset_value(json_t *v, const char **p, char **owned)
{
    json_t *b;
    const char *s;
    size_t n;
    long dl;

    if (json_is_string(v)) {
        *p = json_string_value(v);
        return (long)json_string_length(v);
    }
    if (!json_is_object(v) || json_object_size(v) != 1 ||
        (b = json_object_get(v, "base64")) == NULL || !json_is_string(b)) {
        return -1;
    }
    s = json_string_value(b);
    n = json_string_length(b);
    *owned = malloc(n * 3 / 4 + 3);
    if (*owned == NULL) {
        return -1;
    }
    dl = http_b64_decode(s, n, *owned, 0);
    *p = *owned;
    return dl;
}

/* POST /kv, once the body is in: all keys or none (one store batch). */
static void
kv_mset(struct http_req *r)
{
    json_error_t jerr;
    json_t *doc;
    struct kvd_op *ops = NULL;
    char **owned = NULL;
    size_t n = 0, cap;
    int64_t expire;
    struct kvd_err err;
    char msg[KVD_ERR_MSG_BYTES + 64];
    void *iter;
    int rc;

    if (parse_ttl(r, &expire)) {
        return;
    }
    doc = json_loadb(r->body, r->body_len,
                     JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (doc == NULL) {
        snprintf(msg, sizeof(msg), "invalid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        http_send_error(r, 400, msg);
        return;
    }
    if (!json_is_object(doc) || json_object_size(doc) == 0) {
        json_decref(doc);
        http_send_error(r, 400,
                        "body must be a non-empty JSON object of "
                        "key: value");
        return;
    }
    cap = json_object_size(doc);
    ops = calloc(cap, sizeof(*ops));
    owned = calloc(cap, sizeof(*owned));
    if (ops == NULL || owned == NULL) {
        http_send_oom(r);
        goto out;
    }
    for (iter = json_object_iter(doc); iter != NULL;
         iter = json_object_iter_next(doc, iter)) {
        const char *k = json_object_iter_key(iter);
        size_t kl = json_object_iter_key_len(iter);
        const char *vp = NULL;
        long vl = mset_value(json_object_iter_value(iter), &vp, &owned[n]);

        if (kl == 0) {
            http_send_error(r, 400, "key cannot be empty");
            goto out;
        }
        if (vl < 0) {
            char name[48];
            printable(name, sizeof(name), k, kl);
            snprintf(msg, sizeof(msg),
                     "value of \"%s\" must be a string or "
                     "{\"base64\": \"...\"}",
                     name);
            http_send_error(r, 400, msg);
            goto out;
        }
        if (vl == 0) {
            http_send_error(r, 400, "value cannot be empty");
            goto out;
        }
        ops[n].type = KVD_OP_PUT;
        ops[n].key = k;
        ops[n].klen = kl;
        ops[n].val = vp;
        ops[n].vlen = (size_t)vl;
        ops[n].expire_ms = expire;
        n++;
    }
    kvd_err_clear(&err);
    rc = api(r)->batch(store(r), ops, n, &err);
    if (rc == 0) {
        http_send_json(r, 200, json_pack("{s:I}", "stored", (json_int_t)n));
    } else if ((rc == KVD_EINVAL || rc == KVD_ETOOBIG) && err.msg[0]) {
        snprintf(msg, sizeof(msg), "batch refused: %s", err.msg);
        http_send_error(r, rc == KVD_EINVAL ? 400 : 413, msg);
    } else {
        http_send_status(r, rc, 0);
    }
out:
    for (size_t i = 0; owned != NULL && i < cap; i++) {
        free(owned[i]);
    }
    free(owned);
    free(ops);
    json_decref(doc);
}

static void
kv_collection_begin(struct http_req *r)
{
    static const char *const mget_args[] = {"key", NULL};
    static const char *const list_args[] = {"prefix", "limit", "cursor", NULL};
    static const char *const post_args[] = {"ttl", NULL};
    int64_t expire;
    size_t nkeys = 0;

    if (is_method(r, "GET") || is_method(r, "HEAD")) {
        if (http_arg_find(r, "key") != NULL) {
            r->cmd = HTTP_CMD_MGET;
            if (check_args(r, mget_args) || check_multi_keys(r, &nkeys)) {
                return;
            }
            kv_mget(r);
            return;
        }
        r->cmd = HTTP_CMD_LIST;
        if (check_args(r, list_args)) {
            return;
        }
        kv_list(r);
        return;
    }
    if (is_method(r, "DELETE")) {
        r->cmd = HTTP_CMD_MDEL;
        if (check_args(r, mget_args) || check_multi_keys(r, &nkeys)) {
            return;
        }
        if (nkeys == 0) {
            http_send_error(r, 400, "no key given (DELETE /kv?key=...)");
            return;
        }
        if (check_ready(r)) {
            return;
        }
        kv_mdel(r);
        return;
    }
    if (is_method(r, "POST")) {
        r->cmd = HTTP_CMD_MSET;
        if (check_args(r, post_args) || parse_ttl(r, &expire) ||
            check_ready(r)) {
            return;
        }
        http_body_expect(r, "application/json",
                         "body must be a non-empty JSON object of key: value");
        return;
    }
    http_send_405(r, "GET, HEAD, POST, DELETE");
}

/* ---- entry --------------------------------------------------------------- */

void
http_kv_head(struct http_req *r)
{
    if (r->route == HTTP_ROUTE_KEY) {
        kv_key_begin(r);
    } else {
        kv_collection_begin(r);
    }
}

void
http_kv_body(struct http_req *r)
{
    if (r->route == HTTP_ROUTE_KEY) {
        kv_put(r);
    } else {
        kv_mset(r);
    }
}
