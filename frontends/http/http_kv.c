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
 * A request with a body (PUT, POST) is answered in two steps: the first
 * access-handler call checks everything the headers already tell
 * (method, key, query, Content-Length, Content-Type, readiness) so a
 * request that would fail is refused before its body is read; the body is
 * then collected into r->body (bounded by max_body_bytes) and the last
 * call executes. Everything here runs on the MHD worker that owns the
 * connection and touches only its own request.
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
check_args(struct http_req *r, struct MHD_Connection *c,
           const char *const *allowed, enum MHD_Result *ret)
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
        *ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST, msg);
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
parse_ttl(struct http_req *r, struct MHD_Connection *c, int64_t *expire_ms,
          enum MHD_Result *ret)
{
    const struct http_arg *a = http_arg_find(r, "ttl");
    uint64_t s;

    *expire_ms = KVD_NO_EXPIRY;
    if (a == NULL) {
        return 0;
    }
    if (arg_u64(a, 1, (uint64_t)HTTP_TTL_MAX_S, &s) != 0) {
        *ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "ttl must be a whole number of seconds "
                               "between 1 and 3153600000");
        return 1;
    }
    *expire_ms = r->fe->host->now_ms(r->fe->host) + (int64_t)s * 1000;
    return 0;
}

/* Writes are refused with 503 while the store does not serve them. */
static int
check_ready(struct http_req *r, struct MHD_Connection *c, enum MHD_Result *ret)
{
    char why[160], msg[200];

    if (http_ready(r->fe, why, sizeof(why), 0)) {
        return 0;
    }
    snprintf(msg, sizeof(msg), "not ready: %s", why);
    *ret = http_send_error(r, c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
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

/* The media type of a Content-Type value equals `want` (parameters such
 * as "; charset=" ignored, case-insensitive). */
static int
media_type_is(const char *ct, const char *want)
{
    size_t n = strlen(want);

    if (ct == NULL) {
        return 0;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    if (strncasecmp(ct, want, n) != 0) {
        return 0;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

/* ---- request bodies ------------------------------------------------------ */

/*
 * First call of a request with a body: check its headers and get ready to
 * receive. Returns 1 when a response was queued, 0 when the body is to be
 * received. `ctype` is the media type strict mode requires; `empty_msg`
 * the 400 message for an announced empty body.
 */
static int
body_begin(struct http_req *r, struct MHD_Connection *c, const char *ctype,
           const char *empty_msg, enum MHD_Result *ret)
{
    const struct http_opts *o = r->fe->opts;
    const char *cl = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    char msg[96];
    uint64_t len = 0;

    if (o->strict_content_type &&
        !media_type_is(MHD_lookup_connection_value(
                           c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
                       ctype)) {
        snprintf(msg, sizeof(msg), "Content-Type must be %s", ctype);
        *ret = http_send_error(r, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, msg);
        return 1;
    }
    if (cl == NULL) {
        if (te == NULL || strcasestr(te, "chunked") == NULL) {
            *ret = http_send_error(r, c, MHD_HTTP_LENGTH_REQUIRED,
                                   "Content-Length required");
            return 1;
        }
    } else {
        /* MHD has checked the syntax; an overflow means "too large". */
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        len = v;
        if (v > o->max_body_bytes || *end != '\0') {
            snprintf(msg, sizeof(msg),
                     "body larger than max_body_bytes "
                     "(%llu)",
                     (unsigned long long)o->max_body_bytes);
            *ret = http_send_error(r, c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
            return 1;
        }
        if (len == 0) {
            *ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST, empty_msg);
            return 1;
        }
    }
    /* Allocate what is announced, up to a bound: a client announcing a
     * large body and sending nothing must not pin that much memory. */
    r->body_cap = len > 0 ? (size_t)len : HTTP_BODY_CHUNK_BYTES;
    if (r->body_cap > HTTP_BODY_PREALLOC_BYTES) {
        r->body_cap = HTTP_BODY_PREALLOC_BYTES;
    }
    if (r->body_cap > o->max_body_bytes) {
        r->body_cap = (size_t)o->max_body_bytes;
    }
    r->body = malloc(r->body_cap);
    if (r->body == NULL) {
        *ret = http_send_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                               "out of memory");
        return 1;
    }
    r->receiving = 1;
    return 0;
}

/* Take n body bytes. MHD_NO drops the connection (a client that keeps
 * streaming far past the limit). */
static enum MHD_Result
body_take(struct http_req *r, const char *p, size_t n)
{
    uint64_t max = r->fe->opts->max_body_bytes;

    r->body_seen += n;
    if (r->body_over || r->body_len + n > max) {
        /* Over the limit (a chunked body, which announced no length):
         * read and drop the rest so the 413 can be sent, up to twice
         * the limit. */
        r->body_over = 1;
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
        return r->body_seen > 2 * max ? MHD_NO : MHD_YES;
    }
    if (r->body_len + n > r->body_cap) {
        size_t cap = r->body_cap * 2;
        char *nb;
        while (cap < r->body_len + n) {
            cap *= 2;
        }
        if (cap > max) {
            cap = (size_t)max;
        }
        nb = realloc(r->body, cap);
        if (nb == NULL) {
            return MHD_NO;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return MHD_YES;
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

static enum MHD_Result
kv_get(struct http_req *r, struct MHD_Connection *c)
{
    const struct http_arg *fmt = http_arg_find(r, "format");
    int json = 0;
    struct kvd_val v, *hold;
    struct MHD_Response *resp;
    int rc;

    if (fmt != NULL) {
        if (fmt->val_len == 4 && memcmp(fmt->val, "json", 4) == 0) {
            json = 1;
        } else if (!(fmt->val_len == 3 && memcmp(fmt->val, "raw", 3) == 0)) {
            return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                                   "format must be json or raw");
        }
    }
    rc = api(r)->get(store(r), r->key, r->klen, &v);
    if (rc != 0) {
        return http_send_status(r, c, rc, 1);
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
        return http_send_json(r, c, MHD_HTTP_OK, j);
    }
    /* Zero copy: MHD sends the engine's bytes and releases them when the
     * response is gone. */
    hold = malloc(sizeof(*hold));
    if (hold == NULL) {
        kvd_val_release(&v);
        return http_send(r, c, 0, NULL);
    }
    *hold = v;
    resp = MHD_create_response_from_buffer_with_free_callback_cls(
        v.len, (void *)v.data, val_free, hold);
    if (resp == NULL) {
        val_free(hold);
        return http_send(r, c, 0, NULL);
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (v.expire_ms != KVD_NO_EXPIRY) {
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_left_s(r, v.expire_ms));
        MHD_add_response_header(resp, "X-KV-TTL", ttl);
    }
    r->resp_bytes = is_method(r, MHD_HTTP_METHOD_HEAD) ? 0 : v.len;
    return http_send(r, c, MHD_HTTP_OK, resp);
}

static enum MHD_Result
kv_del(struct http_req *r, struct MHD_Connection *c)
{
    int rc = api(r)->del(store(r), r->key, r->klen);

    if (rc != 0) {
        return http_send_status(r, c, rc, 1);
    }
    return http_send_empty(r, c, MHD_HTTP_NO_CONTENT);
}

/* PUT, once the body is in. */
static enum MHD_Result
kv_put(struct http_req *r, struct MHD_Connection *c)
{
    unsigned flags = 0;
    int64_t expire;
    int created = 0, rc;
    enum MHD_Result ret;

    if (r->body_len == 0) {
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "value cannot be empty");
    }
    if (parse_ttl(r, c, &expire, &ret)) {
        return ret;
    }
    flags |= arg_flag(http_arg_find(r, "nx")) == 1 ? KVD_SET_NX : 0;
    flags |= arg_flag(http_arg_find(r, "xx")) == 1 ? KVD_SET_XX : 0;
    rc = api(r)->set(store(r), r->key, r->klen, r->body, r->body_len, expire,
                     flags, &created);
    if (rc == KVD_EEXIST) {
        return http_send_error(r, c, MHD_HTTP_PRECONDITION_FAILED,
                               "key already exists");
    }
    if (rc == KVD_ENOTFOUND && (flags & KVD_SET_XX)) {
        return http_send_error(r, c, MHD_HTTP_PRECONDITION_FAILED,
                               "key does not exist");
    }
    if (rc != 0) {
        return http_send_status(r, c, rc, 0);
    }
    return http_send_empty(r, c,
                           created ? MHD_HTTP_CREATED : MHD_HTTP_NO_CONTENT);
}

static enum MHD_Result
kv_key_begin(struct http_req *r, struct MHD_Connection *c)
{
    static const char *const get_args[] = {"format", NULL};
    static const char *const put_args[] = {"ttl", "nx", "xx", NULL};
    static const char *const no_args[] = {NULL};
    enum MHD_Result ret;
    int64_t expire;
    int nx, xx;

    if (is_method(r, MHD_HTTP_METHOD_GET)) {
        r->cmd = HTTP_CMD_GET;
    } else if (is_method(r, MHD_HTTP_METHOD_HEAD)) {
        r->cmd = HTTP_CMD_HEAD;
    } else if (is_method(r, MHD_HTTP_METHOD_PUT)) {
        r->cmd = HTTP_CMD_PUT;
    } else if (is_method(r, MHD_HTTP_METHOD_DELETE)) {
        r->cmd = HTTP_CMD_DELETE;
    } else {
        return http_send_405(r, c, "GET, HEAD, PUT, DELETE");
    }
    if (r->klen == 0) {
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "key cannot be empty");
    }
    switch (r->cmd) {
    case HTTP_CMD_GET:
    case HTTP_CMD_HEAD:
        if (check_args(r, c, get_args, &ret)) {
            return ret;
        }
        return kv_get(r, c);
    case HTTP_CMD_DELETE:
        if (check_args(r, c, no_args, &ret) || check_ready(r, c, &ret)) {
            return ret;
        }
        return kv_del(r, c);
    default:
        break;
    }
    /* PUT: everything the headers tell is checked before the body. */
    if (check_args(r, c, put_args, &ret) || parse_ttl(r, c, &expire, &ret)) {
        return ret;
    }
    nx = arg_flag(http_arg_find(r, "nx"));
    xx = arg_flag(http_arg_find(r, "xx"));
    if (nx < 0 || xx < 0) {
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "nx and xx take no value, 1/true or 0/false");
    }
    if (nx && xx) {
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "nx and xx cannot be combined");
    }
    if (check_ready(r, c, &ret) || body_begin(r, c, "application/octet-stream",
                                              "value cannot be empty", &ret)) {
        return ret;
    }
    return MHD_YES;
}

/* ---- /kv ----------------------------------------------------------------- */

/* The keys named by ?key=, checked. Returns 1 when a response was
 * queued. */
static int
check_multi_keys(struct http_req *r, struct MHD_Connection *c, size_t *nkeys,
                 enum MHD_Result *ret)
{
    size_t n = 0;

    for (size_t i = 0; i < r->nargs; i++) {
        if (!http_arg_is(&r->args[i], "key")) {
            continue;
        }
        if (r->args[i].val_len == 0) {
            *ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                                   "key cannot be empty");
            return 1;
        }
        n++;
    }
    if (n > HTTP_MULTI_KEYS_MAX) {
        *ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "too many keys (at most 1000)");
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

static enum MHD_Result
kv_mget(struct http_req *r, struct MHD_Connection *c)
{
    json_t *obj = json_object();

    if (obj == NULL) {
        return http_send(r, c, 0, NULL);
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
            return http_send_status(r, c, rc, 1);
        }
        rc =
            set_member(obj, a->val, a->val_len, http_json_bytes(v.data, v.len));
        kvd_val_release(&v);
        if (rc != 0) {
            json_decref(obj);
            return http_send(r, c, 0, NULL);
        }
    }
    return http_send_json(r, c, MHD_HTTP_OK, obj);
}

static enum MHD_Result
kv_mdel(struct http_req *r, struct MHD_Connection *c)
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
            return http_send_status(r, c, rc, 1);
        }
    }
    return http_send_json(r, c, MHD_HTTP_OK,
                          json_pack("{s:I}", "deleted", deleted));
}

/*
 * One page of keys. Ordered engines resume by key: the cursor is the next
 * key, base64url. Unordered engines resume by position: entries come in
 * non-decreasing pos, and a page may only end where pos changes, so it
 * can hold a few more than `limit` keys when several share a position;
 * the cursor is the next entry's pos in decimal.
 */
static enum MHD_Result
kv_list(struct http_req *r, struct MHD_Connection *c)
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
    enum MHD_Result ret;
    int rc;

    memset(&io, 0, sizeof(io));
    io.flags = KVD_ITER_KEYS_ONLY;
    if (la != NULL && arg_u64(la, 1, HTTP_LIST_MAX, &limit) != 0) {
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "limit must be between 1 and 1000");
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
                return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                                       "invalid cursor");
            }
            io.start = start;
            io.start_len = (size_t)sl;
        } else if (arg_u64(ca, 0, UINT64_MAX - 1, &io.start_pos) != 0) {
            return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                                   "invalid cursor");
        }
    }
    rc = api(r)->iter_open(store(r), &io, &it, &err);
    if (rc != 0) {
        ret = http_send_status(r, c, rc, 0);
        goto out;
    }
    keys = json_array();
    if (keys == NULL) {
        ret = http_send(r, c, 0, NULL);
        goto out;
    }
    for (;;) {
        struct kvd_entry e;
        rc = api(r)->iter_next(store(r), it, &e);
        if (rc == KVD_ENOTFOUND) {
            break;
        }
        if (rc != 0) {
            ret = http_send_status(r, c, rc, 0);
            goto out;
        }
        if (n >= limit && (ordered || e.pos != last_pos)) {
            if (ordered) {
                next = http_b64_encode(e.key, e.klen, 1);
            } else if ((next = malloc(24)) != NULL) {
                snprintf(next, 24, "%" PRIu64, e.pos);
            }
            if (next == NULL) {
                ret = http_send(r, c, 0, NULL);
                goto out;
            }
            break;
        }
        if (json_array_append_new(keys, http_json_bytes(e.key, e.klen)) != 0) {
            ret = http_send(r, c, 0, NULL);
            goto out;
        }
        n++;
        last_pos = e.pos;
    }
    j = json_pack("{s:o,s:o}", "keys", keys, "next",
                  next != NULL ? json_string(next) : json_null());
    keys = NULL; /* json_pack took it, even on failure */
    ret = http_send_json(r, c, MHD_HTTP_OK, j);
out:
    if (it != NULL) {
        api(r)->iter_close(store(r), it);
    }
    json_decref(keys);
    free(next);
    free(start);
    return ret;
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
static enum MHD_Result
kv_mset(struct http_req *r, struct MHD_Connection *c)
{
    json_error_t jerr;
    json_t *doc;
    struct kvd_op *ops = NULL;
    char **owned = NULL;
    size_t n = 0, cap;
    int64_t expire;
    struct kvd_err err;
    char msg[KVD_ERR_MSG_BYTES + 64];
    enum MHD_Result ret;
    void *iter;
    int rc;

    if (parse_ttl(r, c, &expire, &ret)) {
        return ret;
    }
    doc = json_loadb(r->body, r->body_len,
                     JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (doc == NULL) {
        snprintf(msg, sizeof(msg), "invalid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST, msg);
    }
    if (!json_is_object(doc) || json_object_size(doc) == 0) {
        json_decref(doc);
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "body must be a non-empty JSON object of "
                               "key: value");
    }
    cap = json_object_size(doc);
    ops = calloc(cap, sizeof(*ops));
    owned = calloc(cap, sizeof(*owned));
    if (ops == NULL || owned == NULL) {
        ret = http_send(r, c, 0, NULL);
        goto out;
    }
    for (iter = json_object_iter(doc); iter != NULL;
         iter = json_object_iter_next(doc, iter)) {
        const char *k = json_object_iter_key(iter);
        size_t kl = json_object_iter_key_len(iter);
        const char *vp = NULL;
        long vl = mset_value(json_object_iter_value(iter), &vp, &owned[n]);

        if (kl == 0) {
            ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                                  "key cannot be empty");
            goto out;
        }
        if (vl < 0) {
            char name[48];
            printable(name, sizeof(name), k, kl);
            snprintf(msg, sizeof(msg),
                     "value of \"%s\" must be a string or "
                     "{\"base64\": \"...\"}",
                     name);
            ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST, msg);
            goto out;
        }
        if (vl == 0) {
            ret = http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                                  "value cannot be empty");
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
        ret = http_send_json(r, c, MHD_HTTP_OK,
                             json_pack("{s:I}", "stored", (json_int_t)n));
    } else if ((rc == KVD_EINVAL || rc == KVD_ETOOBIG) && err.msg[0]) {
        snprintf(msg, sizeof(msg), "batch refused: %s", err.msg);
        ret = http_send_error(r, c,
                              rc == KVD_EINVAL ? MHD_HTTP_BAD_REQUEST
                                               : MHD_HTTP_CONTENT_TOO_LARGE,
                              msg);
    } else {
        ret = http_send_status(r, c, rc, 0);
    }
out:
    for (size_t i = 0; owned != NULL && i < cap; i++) {
        free(owned[i]);
    }
    free(owned);
    free(ops);
    json_decref(doc);
    return ret;
}

static enum MHD_Result
kv_collection_begin(struct http_req *r, struct MHD_Connection *c)
{
    static const char *const mget_args[] = {"key", NULL};
    static const char *const list_args[] = {"prefix", "limit", "cursor", NULL};
    static const char *const post_args[] = {"ttl", NULL};
    enum MHD_Result ret;
    int64_t expire;
    size_t nkeys = 0;

    if (is_method(r, MHD_HTTP_METHOD_GET) ||
        is_method(r, MHD_HTTP_METHOD_HEAD)) {
        if (http_arg_find(r, "key") != NULL) {
            r->cmd = HTTP_CMD_MGET;
            if (check_args(r, c, mget_args, &ret) ||
                check_multi_keys(r, c, &nkeys, &ret)) {
                return ret;
            }
            return kv_mget(r, c);
        }
        r->cmd = HTTP_CMD_LIST;
        if (check_args(r, c, list_args, &ret)) {
            return ret;
        }
        return kv_list(r, c);
    }
    if (is_method(r, MHD_HTTP_METHOD_DELETE)) {
        r->cmd = HTTP_CMD_MDEL;
        if (check_args(r, c, mget_args, &ret) ||
            check_multi_keys(r, c, &nkeys, &ret)) {
            return ret;
        }
        if (nkeys == 0) {
            return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                                   "no key given (DELETE /kv?key=...)");
        }
        if (check_ready(r, c, &ret)) {
            return ret;
        }
        return kv_mdel(r, c);
    }
    if (is_method(r, MHD_HTTP_METHOD_POST)) {
        r->cmd = HTTP_CMD_MSET;
        if (check_args(r, c, post_args, &ret) ||
            parse_ttl(r, c, &expire, &ret) || check_ready(r, c, &ret) ||
            body_begin(r, c, "application/json",
                       "body must be a non-empty JSON object of key: value",
                       &ret)) {
            return ret;
        }
        return MHD_YES;
    }
    return http_send_405(r, c, "GET, HEAD, POST, DELETE");
}

/* ---- entry --------------------------------------------------------------- */

enum MHD_Result
http_kv_handle(struct http_req *r, struct MHD_Connection *c, const char *upload,
               size_t *upload_size)
{
    char msg[96];

    if (r->receiving) {
        if (*upload_size > 0) {
            enum MHD_Result ok = body_take(r, upload, *upload_size);
            *upload_size = 0;
            return ok;
        }
        r->receiving = 0;
        if (r->body_over) {
            snprintf(msg, sizeof(msg),
                     "body larger than max_body_bytes "
                     "(%llu)",
                     (unsigned long long)r->fe->opts->max_body_bytes);
            return http_send_error(r, c, MHD_HTTP_CONTENT_TOO_LARGE, msg);
        }
        return r->route == HTTP_ROUTE_KEY ? kv_put(r, c) : kv_mset(r, c);
    }
    if (r->status != 0) {
        return MHD_YES; /* answered already */
    }
    if (r->route == HTTP_ROUTE_KEY) {
        return kv_key_begin(r, c);
    }
    return kv_collection_begin(r, c);
}
