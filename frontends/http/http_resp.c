/*
 * frontends/http/http_resp.c -- responses of the http frontend: what a
 * route answers (the http_send* family records it in the request's
 * struct http_resp) and how the status line and header section are
 * written (http_resp_head, used by http_net.c).
 *
 * A response body is owned by the response from the moment it is
 * handed over: http_net.c sends it (without copying it when it is large)
 * and calls its free function once the socket took it or the connection
 * closed. Every function touches only the request it is given.
 */
#include "http.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- what routes answer -------------------------------------------------- */

void
http_resp_release(struct http_resp *resp)
{
    if (resp->body_free != NULL) {
        resp->body_free(resp->body_arg);
    }
    resp->body_free = NULL;
    resp->body_arg = NULL;
    resp->body = NULL;
    resp->body_len = 0;
}

void
http_send_body(struct http_req *r, unsigned status, const char *ctype,
               const void *body, size_t len, void (*body_free)(void *),
               void *arg)
{
    /* A second answer replaces the first (a route's bug, not the
     * client's): the connection still gets exactly one response. */
    http_resp_release(&r->resp);
    r->status = (int)status;
    r->resp.ctype = ctype;
    r->resp.body = body;
    r->resp.body_len = len;
    r->resp.body_free = body_free;
    r->resp.body_arg = arg;
}

void
http_send_oom(struct http_req *r)
{
    static const char oom[] = "{\"error\":\"out of memory\"}\n";

    http_send_body(r, 500, "application/json", oom, sizeof(oom) - 1, NULL,
                   NULL);
}

void
http_send_json(struct http_req *r, unsigned status, json_t *j)
{
    char *s;
    size_t n;

    if (j == NULL) {
        http_send_oom(r);
        return;
    }
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (s == NULL) {
        http_send_oom(r);
        return;
    }
    n = strlen(s);
    /* One newline so `curl` output ends cleanly in a terminal. */
    char *t = realloc(s, n + 2);
    if (t != NULL) {
        s = t;
        s[n++] = '\n';
        s[n] = '\0';
    }
    http_send_body(r, status, "application/json", s, n, free, s);
}

/* {"error": msg} without building a JSON tree: msg is almost always
 * plain ASCII; anything else goes through jansson, which also refuses
 * what is not UTF-8 (a message quoting client bytes). */
static char *
error_body(const char *msg, size_t *len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(msg), o = 0;
    char *out = malloc(n * 6 + 16);

    if (out == NULL) {
        return NULL;
    }
    memcpy(out, "{\"error\":\"", 10);
    o = 10;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c >= 0x80) {
            free(out);
            return NULL;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            out[o++] = (char)c;
        }
    }
    memcpy(out + o, "\"}\n", 3);
    *len = o + 3;
    return out;
}

void
http_send_error(struct http_req *r, unsigned status, const char *msg)
{
    size_t n;
    char *body = error_body(msg, &n);
    json_t *j;

    if (body != NULL) {
        http_send_body(r, status, "application/json", body, n, free, body);
        return;
    }
    j = json_object();
    if (j != NULL) {
        json_t *s = json_string(msg);
        /* A message quoting client bytes may not be UTF-8: say less. */
        if (s == NULL) {
            s = json_string("invalid request");
        }
        json_object_set_new(j, "error", s);
    }
    http_send_json(r, status, j);
}

void
http_send_405(struct http_req *r, const char *allow)
{
    http_send_error(r, 405, "method not allowed");
    http_resp_header(r, "Allow", allow);
}

void
http_send_empty(struct http_req *r, unsigned status)
{
    http_send_body(r, status, NULL, NULL, 0, NULL, NULL);
}

void
http_resp_header(struct http_req *r, const char *name, const char *value)
{
    struct http_resp *resp = &r->resp;
    size_t nl = strlen(name), vl = strlen(value);

    /* "name: value\r\n"; a line that does not fit is left out whole. */
    if (nl + vl + 4 > sizeof(resp->hdrs) - resp->hdrs_len) {
        return;
    }
    memcpy(resp->hdrs + resp->hdrs_len, name, nl);
    memcpy(resp->hdrs + resp->hdrs_len + nl, ": ", 2);
    memcpy(resp->hdrs + resp->hdrs_len + nl + 2, value, vl);
    memcpy(resp->hdrs + resp->hdrs_len + nl + 2 + vl, "\r\n", 2);
    resp->hdrs_len += nl + vl + 4;
}

unsigned
http_status_for(int rc, int key_only, const char *detail, char *msg, size_t cap)
{
    const char *m;
    unsigned st;

    switch (rc) {
    case KVD_ENOTFOUND:
        st = 404, m = "key not found";
        break;
    case KVD_EEXIST:
        st = 412, m = "key already exists";
        break;
    case KVD_EINVAL:
        st = 400, m = detail != NULL ? detail : "invalid argument";
        break;
    case KVD_ETOOBIG:
        st = key_only ? 414 : 413;
        m = key_only ? "key too long" : "key or value too large";
        break;
    case KVD_ECROSSSLOT:
        st = 400, m = "keys span partitions: give them a common {hash tag}, "
                      "e.g. {user42}:a and {user42}:b";
        break;
    case KVD_EABORT:
        st = 409, m = "transaction aborted: nothing was applied";
        break;
    case KVD_ENOTSUP:
        st = 501, m = detail != NULL ? detail : "not supported by this engine";
        break;
    case KVD_EREADONLY:
        st = 503, m = "store is read-only after an earlier error";
        break;
    case KVD_EUNAVAIL:
    case KVD_ECLOSED:
    case KVD_EBUSY:
    case KVD_ETIMEDOUT:
        st = 503, m = "store unavailable";
        break;
    case KVD_ENOMEM:
        st = 500, m = "out of memory";
        break;
    default:
        snprintf(msg, cap, "internal error (status %d)%s%s", rc,
                 detail != NULL ? ": " : "", detail != NULL ? detail : "");
        return 500;
    }
    snprintf(msg, cap, "%s", m);
    return st;
}

void
http_send_status(struct http_req *r, int rc, int key_only, const char *detail)
{
    char msg[256];
    unsigned st = http_status_for(rc, key_only, detail, msg, sizeof(msg));

    if (st == 500 && rc != KVD_ENOMEM) {
        r->fe->host->log(r->fe->host, KVD_LOG_WARN, "http: %s %s: %s",
                         r->method, r->uri, msg);
    }
    http_send_error(r, st, msg);
}

/* ---- the wire form ------------------------------------------------------- */

const char *
http_reason(unsigned status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

void
http_date(int64_t t, char *out, size_t cap)
{
    /* By hand rather than strftime: the day and month names must be
     * English whatever the process locale is. */
    static const char days[7][4] = {"Thu", "Fri", "Sat", "Sun",
                                    "Mon", "Tue", "Wed"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    int64_t z = t / 86400, sec = t % 86400;
    int64_t era, doe, yoe, doy, mp, y, m, d;

    /* Civil date from days since 1970-01-01 (H. Hinnant's algorithm). */
    z += 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[(t / 86400) % 7], (int)d, months[m - 1], (int)y,
             (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
}

/* A bounded string builder: writes what fits, counts everything, so the
 * caller learns the length it needs (snprintf's contract, without its
 * format parsing on the path of every response). */
struct sbuf {
    char *p;
    size_t cap;
    size_t n;
};

static void
sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n < b->cap) {
        memcpy(b->p + b->n, s, n);
    }
    b->n += n;
}

static void
sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void
sb_uint(struct sbuf *b, uint64_t v)
{
    char t[24];
    size_t i = sizeof(t);

    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    sb_put(b, t + i, sizeof(t) - i);
}

size_t
http_resp_head(const struct http_req *r, int close, const char *date, char *dst,
               size_t cap)
{
    const struct http_resp *resp = &r->resp;
    unsigned st = (unsigned)r->status;
    struct sbuf b = {dst, cap, 0};

    sb_str(&b, "HTTP/1.1 ");
    sb_uint(&b, st);
    sb_put(&b, " ", 1);
    sb_str(&b, http_reason(st));
    sb_str(&b, "\r\nDate: ");
    sb_str(&b, date);
    sb_put(&b, "\r\n", 2);
    if (resp->ctype != NULL) {
        sb_str(&b, "Content-Type: ");
        sb_str(&b, resp->ctype);
        sb_put(&b, "\r\n", 2);
    }
    if (st >= 200 && st != 204 && st != 304) {
        sb_str(&b, "Content-Length: ");
        sb_uint(&b, resp->body_len);
        sb_put(&b, "\r\n", 2);
    }
    sb_put(&b, resp->hdrs, resp->hdrs_len);
    if (close) {
        sb_str(&b, "Connection: close\r\n");
    } else if (r->minor == 0) {
        sb_str(&b, "Connection: keep-alive\r\n");
    }
    sb_put(&b, "\r\n", 2);
    if (b.n < cap) {
        dst[b.n] = '\0';
    }
    return b.n;
}
