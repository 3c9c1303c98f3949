/*
 * fuzz/fuzz_http_parse.c -- the http frontend's HTTP/1.1 request parser
 * (frontends/http/http_parse.c): where a request head ends, the head
 * itself (request line, header fields, message framing) and chunked
 * bodies.
 *
 * Input: any bytes, read three ways.
 *   - Head: leading empty lines skipped as the server skips them, then
 *     http_head_end on the whole input and again on a buffer growing by
 *     pieces (the scan offset carried between calls, as the server does):
 *     both must find the same end. A complete head is parsed; every
 *     pointer handed out must lie inside the head, a refusal must carry a
 *     status and a reason, an acceptance a known body framing.
 *   - Chunked: the bytes decoded as a chunked body whole, and again in
 *     pieces of sizes taken from the input; both must agree on the
 *     outcome, on the bytes consumed and on the data decoded.
 *   - Field lookup: http_head_field for the framing fields.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "http_parse.h"

static void
inside(const char *buf, size_t len, const char *p, size_t n)
{
    FZ_CHECK(p >= buf && n <= len && (size_t)(p - buf) <= len - n);
    FZ_CHECK(p[n] == '\0');
}

static void
head(const uint8_t *data, size_t size)
{
    size_t skip = 0, scanned = 0, end, end2 = 0, grow = 0, piece;
    char *buf;
    struct http_head *h;
    int rc;

    while (skip < size && (data[skip] == '\r' || data[skip] == '\n')) {
        skip++;
    }
    data += skip;
    size -= skip;
    end = http_head_end((const char *)data, size, &scanned);
    FZ_CHECK(end <= size);
    /* The same bytes arriving in pieces of 1 to 16 bytes. */
    scanned = 0;
    piece = size > 0 ? (size_t)(data[0] % 16) + 1 : 1;
    while (grow < size && end2 == 0) {
        grow = grow + piece < size ? grow + piece : size;
        end2 = http_head_end((const char *)data, grow, &scanned);
    }
    FZ_CHECK(end2 == end);
    if (end == 0) {
        return;
    }
    buf = malloc(end + 1);
    h = malloc(sizeof(*h));
    FZ_CHECK(buf != NULL && h != NULL);
    memcpy(buf, data, end);
    buf[end] = '\0';
    memset(h, 0, sizeof(*h));
    rc = http_parse_head(buf, end, h);
    if (rc != 0) {
        FZ_CHECK(rc >= 400 && rc <= 599 && h->error != NULL);
    } else {
        inside(buf, end, h->method, h->method_len);
        inside(buf, end, h->target, h->target_len);
        FZ_CHECK(h->minor <= 1 && h->nfields <= HTTP_FIELDS_MAX);
        for (size_t i = 0; i < h->nfields; i++) {
            inside(buf, end, h->fields[i].name, h->fields[i].name_len);
            inside(buf, end, h->fields[i].value, h->fields[i].value_len);
        }
        FZ_CHECK(h->body == HTTP_BODY_NONE || h->body == HTTP_BODY_LENGTH ||
                 h->body == HTTP_BODY_CHUNKED);
        (void)http_head_field(h, "content-length");
        (void)http_head_field(h, "host");
        (void)http_head_field(h, "if-match");
    }
    free(h);
    free(buf);
}

static void
chunked(const uint8_t *data, size_t size)
{
    struct http_chunked c;
    char *whole = malloc(size + 1), *part = malloc(size + 1), *out;
    size_t used = 0, n = 0, at = 0, got = 0, piece, u, o;
    int rc, rc2 = KVD_EAGAIN;

    FZ_CHECK(whole != NULL && part != NULL);
    memcpy(whole, data, size);
    http_chunked_init(&c);
    rc = http_chunked_decode(&c, whole, size, &used, &n);
    FZ_CHECK(rc == 0 || rc == KVD_EAGAIN || rc == 400);
    if (rc != 400) {
        FZ_CHECK(used <= size && n <= used);
        FZ_CHECK(rc == 0 || used == size);
    }
    /* In pieces: each piece decoded in place, its data appended to out. */
    out = malloc(size + 1);
    FZ_CHECK(out != NULL);
    http_chunked_init(&c);
    piece = size > 0 ? (size_t)(data[size - 1] % 7) + 1 : 1;
    while (at < size && rc2 == KVD_EAGAIN) {
        size_t len = at + piece < size ? piece : size - at;

        memcpy(part, data + at, len);
        u = o = 0;
        rc2 = http_chunked_decode(&c, part, len, &u, &o);
        if (rc2 == 400) {
            break;
        }
        FZ_CHECK(u <= len && o <= u);
        memcpy(out + got, part, o);
        got += o;
        at += u;
    }
    if (size == 0) {
        rc2 = rc;
    }
    FZ_CHECK(rc2 == rc);
    if (rc != 400) {
        FZ_CHECK(at == used && got == n && memcmp(out, whole, n) == 0);
    }
    free(out);
    free(part);
    free(whole);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    head(data, size);
    chunked(data, size);
    return 0;
}
