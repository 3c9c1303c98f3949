/*
 * frontends/http/http_route.c -- from a request head to a route: the
 * path decides the route, the bearer token is checked, the
 * request-target is decoded, and requests with a body get it collected
 * (bounded by max_body_bytes) before their route executes.
 *
 * http_net.c calls http_route_head once per request, with the parsed
 * head, and, when the route asked for the body, http_body_take for each
 * piece of it and http_route_body at its end. Header fields are only
 * readable during http_route_head (they live in the connection's input);
 * whatever a route needs later it copies.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Buffers of a request kept for the next one on the connection, up to
 * these sizes. */
#define HTTP_KEEP_URI_BYTES 8192
#define HTTP_KEEP_ARGS      256

/* ---- authentication ------------------------------------------------------ */

/* Constant-time comparison, so response timing says nothing about how
 * much of a guessed token was right. */
static int
token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char d = alen != blen;
    for (size_t i = 0; i < blen; i++) {
        d |= (unsigned char)(i < alen ? a[i] : 0) ^ (unsigned char)b[i];
    }
    return d == 0;
}

static int
authorized(const struct http_req *r)
{
    struct http_fe *fe = r->fe;
    const char *h;

    if (fe->token_len == 0) {
        return 1;
    }
    h = http_head_field(r->head, "authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return 0;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    return token_equal(h, strlen(h), fe->opts->token, fe->token_len);
}

static void
send_401(struct http_req *r)
{
    static const char body[] =
        "{\"error\":\"missing or invalid bearer token\"}\n";

    http_send_body(r, 401, "application/json", body, sizeof(body) - 1, NULL,
                   NULL);
    http_resp_header(r, "WWW-Authenticate", "Bearer realm=\"kvd\"");
}

/* ---- routing
 * ------------------------------------------------------------------ */

/* The route of a raw request-target; *path_end and *key_at are offsets
 * into it. */
static int
route_of(const char *uri, size_t *path_end, size_t *key_at)
{
    size_t off = 0, plen;
    const char *p;

    /* absolute-form (RFC 9112 3.2.2): skip scheme and authority */
    if (strncasecmp(uri, "http://", 7) == 0 ||
        strncasecmp(uri, "https://", 8) == 0) {
        const char *slash = strchr(strstr(uri, "//") + 2, '/');
        off = slash != NULL ? (size_t)(slash - uri) : strlen(uri);
    }
    p = uri + off;
    plen = strcspn(p, "?");
    *path_end = off + plen;
    *key_at = 0;
    if (plen >= 4 && memcmp(p, "/kv/", 4) == 0) {
        *key_at = off + 4;
        return HTTP_ROUTE_KEY;
    }
    if (plen == 3 && memcmp(p, "/kv", 3) == 0) {
        return HTTP_ROUTE_COLLECTION;
    }
    if (plen == 4 && memcmp(p, "/txn", 4) == 0) {
        return HTTP_ROUTE_TXN;
    }
    if (plen == 8 && memcmp(p, "/healthz", 8) == 0) {
        return HTTP_ROUTE_HEALTHZ;
    }
    if (plen == 7 && memcmp(p, "/readyz", 7) == 0) {
        return HTTP_ROUTE_READYZ;
    }
    if (plen == 8 && memcmp(p, "/metrics", 8) == 0) {
        return HTTP_ROUTE_METRICS;
    }
    return HTTP_ROUTE_NONE;
}

/* GET and HEAD only: health, readiness and metrics. */
static void
ops_route(struct http_req *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        http_send_405(r, "GET, HEAD");
        return;
    }
    switch (r->route) {
    case HTTP_ROUTE_HEALTHZ:
        http_healthz(r);
        return;
    case HTTP_ROUTE_READYZ:
        http_readyz(r);
        return;
    default:
        http_metrics(r);
        return;
    }
}

/* POST only; no query parameters; the operations come as the body. */
static void
txn_route(struct http_req *r)
{
    r->cmd = HTTP_CMD_TXN;
    if (strcmp(r->method, "POST") != 0) {
        http_send_405(r, "POST");
        return;
    }
    if (strchr(r->uri, '?') != NULL) {
        http_send_error(r, 400, "/txn takes no query parameters");
        return;
    }
    http_body_expect(r, "application/json",
                     "body must be {\"ops\": [operation, ...]}");
}

/* If-Match and If-None-Match outlive the head (a PUT evaluates them once
 * its body is in). */
static int
copy_conditions(struct http_req *r)
{
    const char *m = http_head_field(r->head, "if-match");
    const char *nm = http_head_field(r->head, "if-none-match");

    if (m != NULL && (r->if_match = strdup(m)) == NULL) {
        return -1;
    }
    if (nm != NULL && (r->if_none_match = strdup(nm)) == NULL) {
        return -1;
    }
    return 0;
}

void
http_route_head(struct http_req *r)
{
    size_t path_end, key_at;
    int rc;

    r->route = route_of(r->uri, &path_end, &key_at);
    if (r->route == HTTP_ROUTE_NONE) {
        http_send_error(r, 404, "no such endpoint");
        return;
    }
    if (r->route != HTTP_ROUTE_HEALTHZ && r->route != HTTP_ROUTE_READYZ &&
        !authorized(r)) {
        send_401(r);
        return;
    }
    if (r->route == HTTP_ROUTE_TXN) {
        txn_route(r);
        return;
    }
    if (r->route != HTTP_ROUTE_KEY && r->route != HTTP_ROUTE_COLLECTION) {
        ops_route(r);
        return;
    }
    if (copy_conditions(r) != 0) {
        http_send_oom(r);
        return;
    }
    rc = http_parse_target(r, path_end, key_at);
    if (rc == KVD_EINVAL) {
        http_send_error(r, 400, "bad percent-encoding in the URL");
        return;
    }
    if (rc != 0) {
        http_send_oom(r);
        return;
    }
    http_kv_head(r);
}

void
http_route_body(struct http_req *r)
{
    char msg[96];

    r->want_body = 0;
    if (r->body_over) {
        snprintf(msg, sizeof(msg), "body larger than max_body_bytes (%llu)",
                 (unsigned long long)r->fe->opts->max_body_bytes);
        http_send_error(r, 413, msg);
        return;
    }
    if (r->route == HTTP_ROUTE_TXN) {
        http_txn_body(r);
        return;
    }
    http_kv_body(r);
}

/* ---- request bodies
 * ------------------------------------------------------------ */

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

int
http_body_expect(struct http_req *r, const char *ctype, const char *empty_msg)
{
    const struct http_opts *o = r->fe->opts;
    const struct http_head *h = r->head;
    char msg[96];
    uint64_t len = h->content_length;

    if (o->strict_content_type &&
        !media_type_is(http_head_field(h, "content-type"), ctype)) {
        snprintf(msg, sizeof(msg), "Content-Type must be %s", ctype);
        http_send_error(r, 415, msg);
        return 1;
    }
    if (h->body == HTTP_BODY_NONE) {
        http_send_error(r, 411, "Content-Length required");
        return 1;
    }
    if (h->body == HTTP_BODY_LENGTH) {
        if (len > o->max_body_bytes) {
            snprintf(msg, sizeof(msg), "body larger than max_body_bytes (%llu)",
                     (unsigned long long)o->max_body_bytes);
            http_send_error(r, 413, msg);
            return 1;
        }
        if (len == 0) {
            http_send_error(r, 400, empty_msg);
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
        http_send_oom(r);
        return 1;
    }
    r->want_body = 1;
    return 0;
}

int
http_body_take(struct http_req *r, const char *p, size_t n)
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
        r->body_cap = 0;
        return r->body_seen > 2 * max ? -1 : 0;
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
            return -1;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return 0;
}

/* ---- request lifetime
 * ------------------------------------------------------------ */

void
http_req_reset(struct http_req *r)
{
    http_resp_release(&r->resp);
    r->resp.ctype = NULL;
    r->resp.hdrs_len = 0;
    r->resp.close = 0;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->body_cap = 0;
    free(r->if_match);
    free(r->if_none_match);
    r->if_match = NULL;
    r->if_none_match = NULL;
    r->body_seen = 0;
    r->body_over = 0;
    r->want_body = 0;
    r->head = NULL;
    r->status = 0;
    r->route = HTTP_ROUTE_NONE;
    r->cmd = HTTP_CMD_OTHER;
    r->key = NULL;
    r->klen = 0;
    r->nargs = 0;
    if (r->uri_cap > HTTP_KEEP_URI_BYTES) {
        free(r->uri);
        r->uri = NULL;
        r->uri_cap = 0;
    }
    if (r->argbuf_cap > HTTP_KEEP_URI_BYTES) {
        free(r->argbuf);
        r->argbuf = NULL;
        r->argbuf_cap = 0;
    }
    if (r->args_cap > HTTP_KEEP_ARGS) {
        free(r->args);
        r->args = NULL;
        r->args_cap = 0;
    }
}

void
http_req_release(struct http_req *r)
{
    http_req_reset(r);
    http_cmd_release(r);
    free(r->uri);
    free(r->argbuf);
    free(r->args);
    r->uri = NULL;
    r->argbuf = NULL;
    r->args = NULL;
    r->uri_cap = r->argbuf_cap = r->args_cap = 0;
}
