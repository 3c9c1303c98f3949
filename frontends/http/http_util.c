/*
 * frontends/http/http_util.c -- helpers of the http frontend: URL and
 * query decoding, base64, binary-safe JSON strings and Prometheus label
 * escaping.
 *
 * Keys are any bytes, NUL included: the request-target is decoded here,
 * from its raw form, into (pointer, length) pairs. Every function touches
 * only the request it is given, so none needs a lock.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- percent-decoding ---------------------------------------------------- */

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
            hi = http_hex_digit((unsigned char)src[i + 1]);
            lo = http_hex_digit((unsigned char)src[i + 2]);
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

/* p, or p grown to hold `need` elements of `size` bytes, contents kept;
 * the capacity only grows (http_req_reset frees big buffers). On no
 * memory returns p unchanged and sets *failed. */
static void *
reserve(void *p, size_t *cap, size_t need, size_t size, int *failed)
{
    void *np;

    if (*cap >= need) {
        return p;
    }
    np = realloc(p, need * size);
    if (np == NULL) {
        *failed = 1;
        return p;
    }
    *cap = need;
    return np;
}

int
http_parse_target(struct http_req *r, size_t path_len, size_t key_at)
{
    const char *q = r->uri + path_len;
    size_t nmax = 0;
    int failed = 0;
    char *out;
    long n;

    r->key = NULL;
    r->klen = 0;
    r->nargs = 0;
    r->argbuf = reserve(r->argbuf, &r->argbuf_cap, r->uri_len + 1, 1, &failed);
    if (failed) {
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
    r->args =
        reserve(r->args, &r->args_cap, nmax + 1, sizeof(*r->args), &failed);
    if (failed) {
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
                a->val_len = 0;
                a->has_val = 0;
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

/* ---- JSON bytes in ------------------------------------------------------- */

long
http_json_to_bytes(json_t *v, const char **p, char **owned)
{
    json_t *b;
    const char *s;
    size_t n;
    long dl;

    *owned = NULL;
    if (v != NULL && json_is_string(v)) {
        *p = json_string_value(v);
        return (long)json_string_length(v);
    }
    if (v == NULL || !json_is_object(v) || json_object_size(v) != 1 ||
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

/* ---- entity tags ----------------------------------------------------------
 */

uint64_t
http_hash64(const void *data, size_t len)
{
    /* MurmurHash64A's structure: 8 bytes at a time, multiply and
     * shift-xor, then a final avalanche; the length is in the seed, so
     * values that differ only in trailing zero bytes differ. */
    const uint64_t m = UINT64_C(0xc6a4a7935bd1e995);
    const unsigned char *p = data;
    uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ (len * m);
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t k;
        memcpy(&k, p + i, 8);
        k *= m;
        k ^= k >> 47;
        k *= m;
        h ^= k;
        h *= m;
    }
    if (i < len) {
        uint64_t k = 0;
        for (size_t j = len; j > i; j--) {
            k = k << 8 | p[j - 1];
        }
        h ^= k;
        h *= m;
    }
    h ^= h >> 47;
    h *= m;
    h ^= h >> 47;
    return h;
}

void
http_etag(const void *value, size_t len, char out[HTTP_ETAG_BYTES])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h = http_hash64(value, len);

    out[0] = '"';
    for (int i = 0; i < 16; i++) {
        out[1 + i] = hex[(h >> (60 - 4 * i)) & 15];
    }
    out[17] = '"';
    out[18] = '\0';
}

int
http_etag_match(const char *list, const char *etag, int weak)
{
    const char *p = list;

    if (etag == NULL) {
        return 0; /* nothing is there: no tag and no "*" can match */
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (p[0] == '*') {
        return 1;
    }
    /* entity-tag = [ W/ ] DQUOTE *etagc DQUOTE, in a comma list */
    while (*p != '\0') {
        int is_weak = 0;
        const char *q;

        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (p[0] == 'W' && p[1] == '/') {
            is_weak = 1;
            p += 2;
        }
        if (*p != '"' || (q = strchr(p + 1, '"')) == NULL) {
            return 0; /* malformed: nothing after it counts */
        }
        /* kvd's own tags are strong, so a weak one only ever matches a
         * weak comparison (RFC 9110 8.8.3.2). */
        if ((weak || !is_weak) && (size_t)(q + 1 - p) == strlen(etag) &&
            memcmp(p, etag, (size_t)(q + 1 - p)) == 0) {
            return 1;
        }
        p = q + 1;
    }
    return 0;
}
