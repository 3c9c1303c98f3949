/*
 * frontends/http/http_kv.c -- the key routes of the http frontend, each
 * mapped to commands of the shared command layer:
 *
 *   GET|HEAD /kv/{key}           GET key, then PTTL key (X-KV-TTL)
 *   PUT /kv/{key}                SET key value [EX s]: NX then XX to tell
 *                                201 from 204; ?nx: NX; ?xx: XX
 *   DELETE /kv/{key}             DEL key
 *   GET|HEAD /kv?key=a&key=b     MGET a b
 *   DELETE /kv?key=a&key=b       DEL a b
 *   GET|HEAD /kv?prefix=&limit=&cursor=
 *                                SCAN cursor MATCH <prefix>* COUNT limit
 *   POST /kv                     MSET k v ...; with ?ttl=: MULTI,
 *                                SET k v EX s ..., EXEC
 *
 * So an HTTP request and the same commands sent over RESP have one set of
 * semantics (sizes, expiry, NX/XX, errors, WATCH: an HTTP write aborts a
 * RESP client's EXEC). What stays HTTP's own is the contract of its API,
 * documented in docs/http.md: an empty PUT body or POST value is 400
 * (RESP stores empty strings), ttl is whole seconds, at most 1,000 keys
 * per request, unknown query parameters are refused.
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

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PUT without ?nx/?xx: how many NX/XX rounds before a plain SET (each
 * round loses only to a concurrent create or delete of the key). */
#define HTTP_PUT_ROUNDS 4

/* ---- small helpers ------------------------------------------------------- */

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

/* ?ttl=SECONDS: the whole seconds, as given, for the command's EX (the
 * command layer decides which values it accepts, for every frontend).
 * *ttl is NULL without one. Returns 1 when a response was queued. */
static int
parse_ttl(struct http_req *r, const struct http_arg **ttl)
{
    const struct http_arg *a = http_arg_find(r, "ttl");
    uint64_t s;

    *ttl = NULL;
    if (a == NULL) {
        return 0;
    }
    if (arg_u64(a, 0, UINT64_MAX, &s) != 0) {
        http_send_error(r, 400, "ttl must be a whole number of seconds");
        return 1;
    }
    *ttl = a;
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

/* The arguments of one command, built on the stack for the usual few
 * and on the heap for many (MGET, DEL, MSET). */
struct args {
    const char **v;
    size_t *l;
    size_t n;
    size_t cap;
    const char *sv[8];
    size_t sl[8];
};

static void
args_init(struct args *a)
{
    a->v = a->sv;
    a->l = a->sl;
    a->n = 0;
    a->cap = 8;
}

/* Room for `more` arguments; -1 on no memory. */
static int
args_reserve(struct args *a, size_t more)
{
    const char **v;
    size_t *l, cap = a->n + more;

    if (cap <= a->cap) {
        return 0;
    }
    v = malloc(cap * sizeof(*v));
    l = malloc(cap * sizeof(*l));
    if (v == NULL || l == NULL) {
        free(v);
        free(l);
        return -1;
    }
    memcpy(v, a->v, a->n * sizeof(*v));
    memcpy(l, a->l, a->n * sizeof(*l));
    if (a->v != a->sv) {
        free(a->v);
        free(a->l);
    }
    a->v = v;
    a->l = l;
    a->cap = cap;
    return 0;
}

/* Append one argument (room reserved, or within the first 8). */
static void
args_add(struct args *a, const void *p, size_t n)
{
    a->v[a->n] = p;
    a->l[a->n++] = n;
}

static void
args_str(struct args *a, const char *s)
{
    args_add(a, s, strlen(s));
}

static void
args_release(struct args *a)
{
    if (a->v != a->sv) {
        free(a->v);
        free(a->l);
    }
}

static const struct http_rnode *
call_args(struct http_req *r, const struct args *a)
{
    return http_call(r, a->n, a->v, a->l);
}

/* A copy of a bulk reply's bytes the response can own (taken from the
 * reply when it has its own allocation). NULL on no memory; an empty
 * value is a valid, non-NULL empty copy. */
static char *
bulk_copy(struct http_req *r, const struct http_rnode *n)
{
    char *p = http_reply_take(&r->rep, n);

    if (p == NULL) {
        p = malloc(n->n > 0 ? n->n : 1);
        if (p != NULL) {
            memcpy(p, n->p, n->n);
        }
    }
    return p;
}

/* ---- /kv/{key} ----------------------------------------------------------- */

/* Milliseconds left (PTTL) as whole seconds, rounded up: a live key
 * never says 0. */
static long long
ttl_seconds(long long ms)
{
    return ms <= 0 ? 1 : (ms + 999) / 1000;
}

static void
kv_get(struct http_req *r)
{
    const struct http_arg *fmt = http_arg_find(r, "format");
    const struct http_rnode *n;
    struct args a;
    long long ttl_ms = -1;
    char etag[HTTP_ETAG_BYTES];
    size_t len;
    char *value;
    int json = 0;

    if (fmt != NULL) {
        if (fmt->val_len == 4 && memcmp(fmt->val, "json", 4) == 0) {
            json = 1;
        } else if (!(fmt->val_len == 3 && memcmp(fmt->val, "raw", 3) == 0)) {
            http_send_error(r, 400, "format must be json or raw");
            return;
        }
    }
    args_init(&a);
    args_str(&a, "GET");
    args_add(&a, r->key, r->klen);
    n = call_args(r, &a);
    if (!http_expect(r, n, 1, HTTP_R_BULK, HTTP_R_NULL)) {
        return;
    }
    if (n->type == HTTP_R_NULL) {
        /* Conditions are for present keys: a 404 stays a 404. */
        http_send_error(r, 404, "key not found");
        return;
    }
    len = n->n;
    http_etag(n->p, n->n, etag);
    /* RFC 9110 13.2.2: If-Match, then If-None-Match (304 for a GET). */
    if (r->if_match != NULL && !http_etag_match(r->if_match, etag, 0)) {
        http_send_412(r, "precondition failed: If-Match", etag);
        return;
    }
    if (r->if_none_match != NULL &&
        http_etag_match(r->if_none_match, etag, 1)) {
        http_send_empty(r, 304);
        http_resp_header(r, "ETag", etag);
        return;
    }
    value = bulk_copy(r, n);
    if (value == NULL) {
        http_send_oom(r);
        return;
    }
    /* The expiry, read just after: -1 none, -2 gone meanwhile (the value
     * read is still what the key held). */
    a.v[0] = "PTTL";
    a.l[0] = 4;
    n = call_args(r, &a);
    if (n != NULL && n->type == HTTP_R_INT) {
        ttl_ms = n->i;
    }
    if (json) {
        json_t *j = json_object();
        if (j != NULL) {
            json_object_set_new(j, "key", http_json_bytes(r->key, r->klen));
            json_object_set_new(j, "value", http_json_bytes(value, len));
            if (ttl_ms >= 0) {
                json_object_set_new(j, "ttl",
                                    json_integer(ttl_seconds(ttl_ms)));
            }
        }
        free(value);
        http_send_json(r, 200, j);
        http_resp_header(r, "ETag", etag);
        return;
    }
    http_send_body(r, 200, "application/octet-stream", value, len, free, value);
    http_resp_header(r, "ETag", etag);
    http_resp_header(r, "X-Content-Type-Options", "nosniff");
    if (ttl_ms >= 0) {
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%lld", ttl_seconds(ttl_ms));
        http_resp_header(r, "X-KV-TTL", ttl);
    }
}

static void
kv_del(struct http_req *r)
{
    const char *argv[2] = {"DEL", r->key};
    size_t argl[2] = {3, r->klen};
    const struct http_rnode *n;

    if (r->if_match != NULL || r->if_none_match != NULL) {
        http_del_conditional(r);
        return;
    }
    n = http_call(r, 2, argv, argl);

    if (!http_expect(r, n, 1, HTTP_R_INT, HTTP_R_INT)) {
        return;
    }
    if (n->i == 0) {
        http_send_error(r, 404, "key not found");
        return;
    }
    http_send_empty(r, 204);
}

/* SET key value [EX ttl] with `cond` (NX, XX or NULL). Returns the reply:
 * +OK when written, null when the condition failed. */
static const struct http_rnode *
put_set(struct http_req *r, const struct http_arg *ttl, const char *cond)
{
    struct args a;

    args_init(&a);
    args_str(&a, "SET");
    args_add(&a, r->key, r->klen);
    args_add(&a, r->body, r->body_len);
    if (ttl != NULL) {
        args_str(&a, "EX");
        args_add(&a, ttl->val, ttl->val_len);
    }
    if (cond != NULL) {
        args_str(&a, cond);
    }
    return call_args(r, &a);
}

/* PUT, once the body is in. */
static void
kv_put(struct http_req *r)
{
    const struct http_arg *ttl;
    const struct http_rnode *n;
    int nx, xx;

    if (r->body_len == 0) {
        http_send_error(r, 400, "value cannot be empty");
        return;
    }
    if (parse_ttl(r, &ttl)) {
        return;
    }
    nx = arg_flag(http_arg_find(r, "nx")) == 1;
    xx = arg_flag(http_arg_find(r, "xx")) == 1;
    if (r->if_match != NULL || r->if_none_match != NULL) {
        http_put_conditional(r, ttl, nx, xx);
        return;
    }
    if (nx || xx) {
        n = put_set(r, ttl, nx ? "NX" : "XX");
        if (!http_expect(r, n, 0, HTTP_R_STATUS, HTTP_R_NULL)) {
            return;
        }
        if (n->type == HTTP_R_NULL) {
            http_send_error(r, 412,
                            nx ? "key already exists" : "key does not exist");
            return;
        }
        http_put_answer(r, nx ? 201 : 204);
        return;
    }
    /* Created (201) or replaced (204): SET NX creates; when the key is
     * there, SET XX replaces. Each is atomic, and a round fails only when
     * another client creates or deletes the key in between. */
    for (int round = 0; round < HTTP_PUT_ROUNDS; round++) {
        n = put_set(r, ttl, "NX");
        if (!http_expect(r, n, 0, HTTP_R_STATUS, HTTP_R_NULL)) {
            return;
        }
        if (n->type == HTTP_R_STATUS) {
            http_put_answer(r, 201);
            return;
        }
        n = put_set(r, ttl, "XX");
        if (!http_expect(r, n, 0, HTTP_R_STATUS, HTTP_R_NULL)) {
            return;
        }
        if (n->type == HTTP_R_STATUS) {
            http_put_answer(r, 204);
            return;
        }
    }
    n = put_set(r, ttl, NULL);
    if (http_expect(r, n, 0, HTTP_R_STATUS, HTTP_R_STATUS)) {
        http_put_answer(r, 204);
    }
}

static void
kv_key_begin(struct http_req *r)
{
    static const char *const get_args[] = {"format", NULL};
    static const char *const put_args[] = {"ttl", "nx", "xx", NULL};
    static const char *const no_args[] = {NULL};
    const struct http_arg *ttl;
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
        if (!check_args(r, get_args)) {
            kv_get(r);
        }
        return;
    case HTTP_CMD_DELETE:
        if (!check_args(r, no_args) && !check_ready(r)) {
            kv_del(r);
        }
        return;
    default:
        break;
    }
    /* PUT: everything the head tells is checked before the body. */
    if (check_args(r, put_args) || parse_ttl(r, &ttl)) {
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
    const struct http_rnode *n;
    struct args a;
    json_t *obj;
    size_t k = 0;

    args_init(&a);
    if (args_reserve(&a, r->nargs + 1) != 0) {
        http_send_oom(r);
        return;
    }
    args_str(&a, "MGET");
    for (size_t i = 0; i < r->nargs; i++) {
        if (http_arg_is(&r->args[i], "key")) {
            args_add(&a, r->args[i].val, r->args[i].val_len);
        }
    }
    n = call_args(r, &a);
    if (!http_expect(r, n, 1, HTTP_R_ARRAY, HTTP_R_ARRAY)) {
        args_release(&a);
        return;
    }
    if (n->nelem != a.n - 1) {
        args_release(&a);
        http_send_unexpected(r, n);
        return;
    }
    obj = json_object();
    if (obj == NULL) {
        args_release(&a);
        http_send_oom(r);
        return;
    }
    /* Missing keys are left out; a key named twice appears once. */
    for (size_t i = 0; i < n->nelem; i++) {
        const struct http_rnode *e = &n->elem[i];
        if (e->type != HTTP_R_BULK) {
            continue;
        }
        k = i + 1;
        if (set_member(obj, a.v[k], a.l[k], http_json_bytes(e->p, e->n)) != 0) {
            json_decref(obj);
            args_release(&a);
            http_send_oom(r);
            return;
        }
    }
    args_release(&a);
    http_send_json(r, 200, obj);
}

static void
kv_mdel(struct http_req *r)
{
    const struct http_rnode *n;
    struct args a;

    args_init(&a);
    if (args_reserve(&a, r->nargs + 1) != 0) {
        http_send_oom(r);
        return;
    }
    args_str(&a, "DEL");
    for (size_t i = 0; i < r->nargs; i++) {
        if (http_arg_is(&r->args[i], "key")) {
            args_add(&a, r->args[i].val, r->args[i].val_len);
        }
    }
    n = call_args(r, &a);
    args_release(&a);
    if (http_expect(r, n, 1, HTTP_R_INT, HTTP_R_INT)) {
        http_send_json(r, 200, json_pack("{s:I}", "deleted", (json_int_t)n->i));
    }
}

/* The prefix as a glob pattern matching every key that starts with it:
 * the bytes with * ? [ ] \ escaped, then "*". Caller frees. */
static char *
prefix_pattern(const char *p, size_t n, size_t *len)
{
    char *out = malloc(2 * n + 2), *o = out;

    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", p[i]) != NULL && p[i] != '\0') {
            *o++ = '\\';
        }
        *o++ = p[i];
    }
    *o++ = '*';
    *len = (size_t)(o - out);
    return out;
}

/*
 * One page of keys: SCAN with the prefix as a pattern. The cursor is
 * SCAN's, in decimal; "next" is null at the end. A page holds at most
 * `limit` keys examined (a few more on engines whose entries share a
 * position), and may hold fewer, even none, before the end.
 */
static void
kv_list(struct http_req *r)
{
    const struct http_arg *pa = http_arg_find(r, "prefix");
    const struct http_arg *la = http_arg_find(r, "limit");
    const struct http_arg *ca = http_arg_find(r, "cursor");
    const struct http_rnode *n, *cur, *keys;
    uint64_t limit = HTTP_LIST_DEFAULT, cursor = 0;
    char count[24], *pat = NULL;
    size_t plen = 0;
    struct args a;
    json_t *arr;

    if (la != NULL && arg_u64(la, 1, HTTP_LIST_MAX, &limit) != 0) {
        http_send_error(r, 400, "limit must be between 1 and 1000");
        return;
    }
    if (ca != NULL && ca->val_len > 0 &&
        arg_u64(ca, 0, UINT64_MAX, &cursor) != 0) {
        http_send_error(r, 400, "invalid cursor");
        return;
    }
    args_init(&a);
    args_str(&a, "SCAN");
    if (ca != NULL && ca->val_len > 0) {
        args_add(&a, ca->val, ca->val_len);
    } else {
        args_str(&a, "0");
    }
    if (pa != NULL && pa->val_len > 0) {
        pat = prefix_pattern(pa->val, pa->val_len, &plen);
        if (pat == NULL) {
            http_send_oom(r);
            return;
        }
        args_str(&a, "MATCH");
        args_add(&a, pat, plen);
    }
    snprintf(count, sizeof(count), "%" PRIu64, limit);
    args_str(&a, "COUNT");
    args_str(&a, count);
    n = call_args(r, &a);
    free(pat);
    if (!http_expect(r, n, 0, HTTP_R_ARRAY, HTTP_R_ARRAY)) {
        return;
    }
    if (n->nelem != 2 || (cur = &n->elem[0])->type != HTTP_R_BULK ||
        (keys = &n->elem[1])->type != HTTP_R_ARRAY) {
        http_send_unexpected(r, n);
        return;
    }
    arr = json_array();
    for (size_t i = 0; arr != NULL && i < keys->nelem; i++) {
        const struct http_rnode *k = &keys->elem[i];
        if (k->type == HTTP_R_BULK &&
            json_array_append_new(arr, http_json_bytes(k->p, k->n)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (arr == NULL) {
        http_send_oom(r);
        return;
    }
    http_send_json(r, 200,
                   json_pack("{s:o,s:o}", "keys", arr, "next",
                             cur->n == 1 && cur->p[0] == '0'
                                 ? json_null()
                                 : json_stringn(cur->p, cur->n)));
}

/* The keys and values of a (MSET-shaped) POST with ?ttl=, as one
 * transaction of SET key value EX s. */
static void
mset_ttl(struct http_req *r, const struct args *kv, const struct http_arg *ttl,
         size_t cnt)
{
    const char *multi[1] = {"MULTI"}, *exec[1] = {"EXEC"};
    size_t ml[1] = {5}, el[1] = {4};
    const struct http_rnode *n;

    n = http_call(r, 1, multi, ml);
    if (!http_expect(r, n, 0, HTTP_R_STATUS, HTTP_R_STATUS)) {
        return;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *argv[5] = {"SET", kv->v[1 + 2 * i], kv->v[2 + 2 * i], "EX",
                               ttl->val};
        size_t argl[5] = {3, kv->l[1 + 2 * i], kv->l[2 + 2 * i], 2,
                          ttl->val_len};
        n = http_call(r, 5, argv, argl);
        if (n == NULL || n->type != HTTP_R_STATUS) {
            /* Not queued: EXEC will discard the transaction. */
            break;
        }
    }
    n = http_call(r, 1, exec, el);
    if (!http_expect(r, n, 0, HTTP_R_ARRAY, HTTP_R_ARRAY)) {
        return;
    }
    for (size_t i = 0; i < n->nelem; i++) {
        if (n->elem[i].type == HTTP_R_ERROR) {
            http_send_cmd_error(r, &n->elem[i], 0);
            return;
        }
    }
    http_send_json(r, 200, json_pack("{s:I}", "stored", (json_int_t)cnt));
}

/* POST /kv, once the body is in: all keys or none. Without ?ttl one
 * MSET; with it, SET key value EX s for each key in one transaction
 * (MULTI ... EXEC), which the command layer applies as one batch. */
static void
kv_mset(struct http_req *r)
{
    json_error_t jerr;
    json_t *doc;
    const struct http_arg *ttl;
    const struct http_rnode *n;
    struct args a;
    char **owned = NULL;
    size_t cnt = 0, cap;
    char msg[KVD_ERR_MSG_BYTES + 64];
    void *iter;

    args_init(&a);
    if (parse_ttl(r, &ttl)) {
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
                        "body must be a non-empty JSON object of key: value");
        return;
    }
    cap = json_object_size(doc);
    owned = calloc(cap, sizeof(*owned));
    if (owned == NULL || args_reserve(&a, 2 * cap + 1) != 0) {
        http_send_oom(r);
        goto out;
    }
    args_str(&a, "MSET");
    for (iter = json_object_iter(doc); iter != NULL;
         iter = json_object_iter_next(doc, iter)) {
        const char *k = json_object_iter_key(iter);
        size_t kl = json_object_iter_key_len(iter);
        const char *vp = NULL;
        long vl =
            http_json_to_bytes(json_object_iter_value(iter), &vp, &owned[cnt]);

        cnt++;
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
        args_add(&a, k, kl);
        args_add(&a, vp, (size_t)vl);
    }
    if (ttl == NULL) {
        n = call_args(r, &a);
        if (http_expect(r, n, 0, HTTP_R_STATUS, HTTP_R_STATUS)) {
            http_send_json(r, 200,
                           json_pack("{s:I}", "stored", (json_int_t)cnt));
        }
        goto out;
    }
    mset_ttl(r, &a, ttl, cnt);
out:
    for (size_t i = 0; owned != NULL && i < cap; i++) {
        free(owned[i]);
    }
    free(owned);
    args_release(&a);
    json_decref(doc);
}

static void
kv_collection_begin(struct http_req *r)
{
    static const char *const mget_args[] = {"key", NULL};
    static const char *const list_args[] = {"prefix", "limit", "cursor", NULL};
    static const char *const post_args[] = {"ttl", NULL};
    const struct http_arg *ttl;
    size_t nkeys = 0;

    if (is_method(r, "GET") || is_method(r, "HEAD")) {
        if (http_arg_find(r, "key") != NULL) {
            r->cmd = HTTP_CMD_MGET;
            if (!check_args(r, mget_args) && !check_multi_keys(r, &nkeys)) {
                kv_mget(r);
            }
            return;
        }
        r->cmd = HTTP_CMD_LIST;
        if (!check_args(r, list_args)) {
            kv_list(r);
        }
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
        if (!check_ready(r)) {
            kv_mdel(r);
        }
        return;
    }
    if (is_method(r, "POST")) {
        r->cmd = HTTP_CMD_MSET;
        if (check_args(r, post_args) || parse_ttl(r, &ttl) || check_ready(r)) {
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
