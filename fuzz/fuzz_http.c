/*
 * fuzz/fuzz_http.c -- the HTTP frontend's request-target decoding as kvd
 * sees it (frontends/http/http_util.c): the /kv/{key} percent-decoding,
 * the query string split into arguments, argument lookup, and the base64
 * and label helpers applied to request bytes.
 *
 * Input: a request-target ("/kv/a%20b?key=x&key=y"); the harness routes
 * it as the frontend does (a key from offset 4 under /kv/, a query after
 * '?'). Every decoded key and argument must lie inside the decode buffer
 * the parser sized from the target.
 *
 * The request head, header fields and chunked bodies before this point
 * (http_parse.c) are fuzz_http_parse.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "http.h"

static void
check_inside(const struct http_req *r, const char *p, size_t n, size_t cap)
{
    FZ_CHECK(p >= r->argbuf && n <= cap && (size_t)(p - r->argbuf) <= cap - n);
}

static void
target(const char *uri, size_t len)
{
    struct http_req r;
    size_t path_end = strcspn(uri, "?");
    size_t key_at = strncmp(uri, "/kv/", 4) == 0 && path_end >= 4 ? 4 : 0;

    memset(&r, 0, sizeof(r));
    r.uri = (char *)uri;
    r.uri_len = len; /* the server sets both when it copies the target */
    if (http_parse_target(&r, path_end, key_at) == 0) {
        if (r.key != NULL) {
            check_inside(&r, r.key, r.klen, len + 1);
        }
        for (size_t i = 0; i < r.nargs; i++) {
            check_inside(&r, r.args[i].name, r.args[i].name_len, len + 1);
            if (r.args[i].has_val) {
                check_inside(&r, r.args[i].val, r.args[i].val_len, len + 1);
            }
        }
        (void)http_arg_find(&r, "key");
        (void)http_arg_find(&r, "limit");
    }
    free(r.args);
    free(r.argbuf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *uri = malloc(size + 1);
    char *dst = malloc(size * 3 / 4 + 3);
    char *label = malloc(2 * size + 1);
    char *enc;
    long n;

    FZ_CHECK(uri != NULL && dst != NULL && label != NULL);
    if (size > 0) {
        memcpy(uri, data, size);
    }
    uri[size] = '\0';
    /* the parser hands the route a NUL-terminated target: it ends at the
     * first NUL */
    target(uri, strlen(uri));
    n = http_b64_decode((const char *)data, size, dst, (int)(size & 1));
    FZ_CHECK(n <= (long)(size * 3 / 4 + 3));
    if (n > 0) {
        enc = http_b64_encode(dst, (size_t)n, (int)(size & 1));
        free(enc);
    }
    (void)http_prom_label(label, 2 * size + 1, uri);
    (void)http_prom_label(label, size / 2 + 1, uri);
    free(uri);
    free(dst);
    free(label);
    return 0;
}
