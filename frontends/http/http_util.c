/*
 * frontends/http/http_util.c -- helpers of the http frontend: URL and
 * query decoding, base64, binary-safe JSON strings, Prometheus label
 * escaping and the response helpers every route uses.
 *
 * Decoding is kvd's own rather than MHD's: keys are any bytes, NUL
 * included, and a C-string URL (what MHD hands the access handler) cannot
 * carry "%00". Every function here works on (pointer, length) pairs and
 * touches only the request it is given, so none needs a lock.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- percent-decoding ---------------------------------------------------- */

static int
hex_val(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

long
http_pct_decode(const char *src, size_t len, char *dst, int plus)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len) {
                return -1;
            }
            hi = hex_val((unsigned char)src[i + 1]);
            lo = hex_val((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus) {
            dst[o++] = ' ';
        } else {
            dst[o++] = (char)c;
        }
    }
    return (long)o;
}

int
http_parse_target(struct http_req *r, size_t path_len, size_t key_at)
{
    const char *q = r->uri + path_len;
    size_t total = strlen(r->uri);
    size_t nmax = 0;
    char *out;
    long n;

    r->argbuf = malloc(total + 1);
    if (r->argbuf == NULL) {
        return KVD_ENOMEM;
    }
    out = r->argbuf;
    if (key_at != 0) {
        n = http_pct_decode(r->uri + key_at, path_len - key_at, out, 0);
        if (n < 0) {
            return KVD_EINVAL;
        }
        r->key = out;
        r->klen = (size_t)n;
        out += n;
    }
    if (*q != '?') {
        return 0;
    }
    q++;
    for (const char *p = q; *p != '\0'; p++) {
        nmax += *p == '&';
    }
    r->args = calloc(nmax + 1, sizeof(*r->args));
    if (r->args == NULL) {
        return KVD_ENOMEM;
    }
    while (*q != '\0') {
        const char *end = strchr(q, '&');
        const char *eq;
        struct http_arg *a;
        size_t seg = end != NULL ? (size_t)(end - q) : strlen(q);

        if (seg > 0) {
            a = &r->args[r->nargs++];
            eq = memchr(q, '=', seg);
            n = http_pct_decode(q, eq != NULL ? (size_t)(eq - q) : seg, out, 1);
            if (n < 0) {
                return KVD_EINVAL;
            }
            a->name = out;
            a->name_len = (size_t)n;
            out += n;
            if (eq != NULL) {
                size_t vl = seg - (size_t)(eq - q) - 1;
                n = http_pct_decode(eq + 1, vl, out, 1);
                if (n < 0) {
                    return KVD_EINVAL;
                }
                a->val = out;
                a->val_len = (size_t)n;
                a->has_val = 1;
                out += n;
            } else {
                a->val = "";
            }
        }
        q += seg;
        if (*q == '&') {
            q++;
        }
    }
    return 0;
}

int
http_arg_is(const struct http_arg *a, const char *s)
{
    size_t n = strlen(s);
    return a->name_len == n && memcmp(a->name, s, n) == 0;
}

const struct http_arg *
http_arg_find(const struct http_req *r, const char *name)
{
    const struct http_arg *found = NULL;

    for (size_t i = 0; i < r->nargs; i++) {
        if (http_arg_is(&r->args[i], name)) {
            found = &r->args[i];
        }
    }
    return found;
}

/* ---- base64 -------------------------------------------------------------- */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
http_b64_encode(const void *src, size_t len, int url)
{
    const unsigned char *s = src;
    const char *tab = url ? b64_url : b64_std;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    size_t o = 0, i = 0;

    if (out == NULL) {
        return NULL;
    }
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)s[i + 1] << 8;
        }
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < len) {
            out[o++] = tab[v >> 6 & 63];
        } else if (!url) {
            out[o++] = '=';
        }
        if (!url) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return out;
}

static int
b64_val(int c, int url)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == (url ? '-' : '+')) {
        return 62;
    }
    if (c == (url ? '_' : '/')) {
        return 63;
    }
    return -1;
}

long
http_b64_decode(const char *src, size_t len, char *dst, int url)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    /* Padding is optional; when present it must be complete. */
    if (len > 0 && src[len - 1] == '=') {
        if (len % 4 != 0) {
            return -1;
        }
        len--;
        if (len > 0 && src[len - 1] == '=') {
            len--;
        }
    }
    if (len % 4 == 1) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        int v = b64_val((unsigned char)src[i], url);
        if (v < 0) {
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (char)(acc >> bits & 0xff);
        }
    }
    /* Leftover bits must be zero, so every byte string has one encoding
     * (a cursor that decodes must be one we issued). */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return -1;
    }
    return (long)o;
}

json_t *
http_json_bytes(const void *p, size_t n)
{
    /* json_stringn validates UTF-8 (NUL allowed, as \u0000) and refuses
     * anything else: that refusal is the test for the base64 form. */
    json_t *s = json_stringn(p, n);
    char *b;

    if (s != NULL) {
        return s;
    }
    b = http_b64_encode(p, n, 0);
    if (b == NULL) {
        return NULL;
    }
    s = json_pack("{s:s}", "base64", b);
    free(b);
    return s;
}

/* ---- Prometheus label values --------------------------------------------- */

const char *
http_prom_label(char *out, size_t cap, const char *s)
{
    size_t o = 0;

    if (cap == 0) {
        return out;
    }
    for (; *s != '\0'; s++) {
        int esc = *s == '\\' || *s == '"' || *s == '\n';
        /* Room for this character's 1 or 2 bytes and the final NUL. */
        if (o + (esc ? 2u : 1u) >= cap) {
            break;
        }
        if (esc) {
            out[o++] = '\\';
            out[o++] = *s == '\n' ? 'n' : *s;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return out;
}

/* ---- responses ----------------------------------------------------------- */

enum MHD_Result
http_send(struct http_req *r, struct MHD_Connection *c, unsigned status,
          struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (resp == NULL) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
                                               MHD_RESPMEM_PERSISTENT);
        if (resp == NULL) {
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
    }
    /* While stopping, keep-alive connections are closed after their
     * current response, so a graceful stop does not wait on idle
     * clients that would otherwise keep sending. */
    if (atomic_load_explicit(&r->fe->stopping, memory_order_relaxed)) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    r->status = (int)status;
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

enum MHD_Result
http_send_json(struct http_req *r, struct MHD_Connection *c, unsigned status,
               json_t *j)
{
    struct MHD_Response *resp = NULL;
    char *s;

    if (j == NULL) {
        return http_send(r, c, status, NULL);
    }
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (s != NULL) {
        size_t n = strlen(s);
        /* One newline so `curl` output ends cleanly in a terminal. */
        char *t = realloc(s, n + 2);
        if (t != NULL) {
            s = t;
            s[n++] = '\n';
            s[n] = '\0';
        }
        resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL) {
            free(s);
        } else {
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    "application/json");
            r->resp_bytes = n;
        }
    }
    return http_send(r, c, status, resp);
}

enum MHD_Result
http_send_error(struct http_req *r, struct MHD_Connection *c, unsigned status,
                const char *msg)
{
    json_t *j = json_object();

    if (j != NULL) {
        json_t *s = json_string(msg);
        /* A message quoting client bytes may not be UTF-8: say less. */
        if (s == NULL) {
            s = json_string("invalid request");
        }
        json_object_set_new(j, "error", s);
    }
    return http_send_json(r, c, status, j);
}

enum MHD_Result
http_send_405(struct http_req *r, struct MHD_Connection *c, const char *allow)
{
    json_t *j = json_pack("{s:s}", "error", "method not allowed");
    struct MHD_Response *resp = NULL;
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    if (s != NULL) {
        resp = MHD_create_response_from_buffer(strlen(s), s,
                                               MHD_RESPMEM_MUST_FREE);
        if (resp == NULL) {
            free(s);
        } else {
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    "application/json");
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
            r->resp_bytes = strlen(s);
        }
    }
    return http_send(r, c, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

enum MHD_Result
http_send_empty(struct http_req *r, struct MHD_Connection *c, unsigned status)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    return http_send(r, c, status, resp);
}

enum MHD_Result
http_send_status(struct http_req *r, struct MHD_Connection *c, int rc,
                 int key_only)
{
    char msg[96];

    switch (rc) {
    case KVD_ENOTFOUND:
        return http_send_error(r, c, MHD_HTTP_NOT_FOUND, "key not found");
    case KVD_EINVAL:
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST, "invalid argument");
    case KVD_ETOOBIG:
        if (key_only) {
            return http_send_error(r, c, MHD_HTTP_URI_TOO_LONG, "key too long");
        }
        return http_send_error(r, c, MHD_HTTP_CONTENT_TOO_LARGE,
                               "key or value too large");
    case KVD_ECROSSSLOT:
        return http_send_error(r, c, MHD_HTTP_BAD_REQUEST,
                               "keys span partitions: give them a "
                               "common {hash tag}, e.g. {user42}:a and "
                               "{user42}:b");
    case KVD_ENOTSUP:
        return http_send_error(r, c, MHD_HTTP_NOT_IMPLEMENTED,
                               "not supported by this engine");
    case KVD_EREADONLY:
        return http_send_error(r, c, MHD_HTTP_SERVICE_UNAVAILABLE,
                               "store is read-only after an earlier error");
    case KVD_EUNAVAIL:
    case KVD_ECLOSED:
    case KVD_EBUSY:
        return http_send_error(r, c, MHD_HTTP_SERVICE_UNAVAILABLE,
                               "store unavailable");
    case KVD_ENOMEM:
        return http_send_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                               "out of memory");
    default:
        r->fe->host->log(r->fe->host, KVD_LOG_WARN,
                         "http: %s %s: store error %d", r->method, r->uri, rc);
        snprintf(msg, sizeof(msg), "internal error (status %d)", rc);
        return http_send_error(r, c, MHD_HTTP_INTERNAL_SERVER_ERROR, msg);
    }
}
