/*
 * tests/e2e/http_parse_test.c -- unit tests of the http frontend's
 * request parser (frontends/http/http_parse.c): finding the end of a head
 * received in pieces, the request line, header fields, and the framing
 * rules that keep two parsers from disagreeing about where a request ends
 * (duplicate or conflicting Content-Length, Content-Length with
 * Transfer-Encoding, obsolete folding, bare CR), and the chunked decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_parse.h"

/* Parse a whole head given as a C string (copied: the parser writes). */
static int
parse(const char *text, struct http_head *h)
{
    static char buf[8192];
    size_t n = strlen(text), scanned = 0;

    assert_true(n < sizeof(buf));
    memcpy(buf, text, n);
    assert_int_equal(http_head_end(buf, n, &scanned), n);
    return http_parse_head(buf, n, h);
}

static void
test_parse_head_end_found_byte_by_byte(void **state)
{
    const char *req = "GET /kv/a HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
    size_t scanned = 0, n = strlen(req) - 4;
    (void)state;

    for (size_t i = 1; i < n; i++) {
        assert_int_equal(http_head_end(req, i, &scanned), 0);
        assert_true(scanned <= i);
    }
    assert_int_equal(http_head_end(req, n, &scanned), n);
    scanned = 0;
    assert_int_equal(http_head_end("GET / HTTP/1.0\n\nX", 17, &scanned), 16);
}

static void
test_parse_request_line_and_fields(void **state)
{
    struct http_head h;
    (void)state;

    assert_int_equal(parse("PUT /kv/a%20b?ttl=5 HTTP/1.1\r\n"
                           "Host: example\r\n"
                           "Content-Length:  12 \r\n"
                           "X-Empty:\r\n"
                           "\r\n",
                           &h),
                     0);
    assert_string_equal(h.method, "PUT");
    assert_string_equal(h.target, "/kv/a%20b?ttl=5");
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.nfields, 3);
    assert_int_equal(h.body, HTTP_BODY_LENGTH);
    assert_int_equal(h.content_length, 12);
    assert_string_equal(http_head_field(&h, "content-length"), "12");
    assert_string_equal(http_head_field(&h, "x-empty"), "");
    assert_null(http_head_field(&h, "nope"));
}

static void
test_parse_http10_and_connection_tokens(void **state)
{
    struct http_head h;
    (void)state;

    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &h), 0);
    assert_int_equal(h.minor, 0);
    assert_int_equal(h.body, HTTP_BODY_NONE);
    assert_int_equal(
        parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h), 0);
    assert_true(h.flags & HTTP_HEAD_KEEP_ALIVE);
    assert_int_equal(
        parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n",
              &h),
        0);
    assert_true(h.flags & HTTP_HEAD_CLOSE);
    /* A bare LF ends lines too (RFC 9112 2.2). */
    assert_int_equal(parse("GET / HTTP/1.1\nHost: x\n\n", &h), 0);
}

static void
test_parse_refuses_duplicate_or_conflicting_content_length(void **state)
{
    struct http_head h;
    (void)state;

    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 1\r\nContent-Length: 40\r\n\r\n",
                           &h),
                     400);
    assert_string_equal(h.error, "more than one Content-Length");
    /* the same value twice is refused too: one framing, stated once */
    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 5\r\ncontent-length: 5\r\n\r\n",
                           &h),
                     400);
    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 5, 5\r\n\r\n",
                           &h),
                     400);
    assert_string_equal(h.error, "invalid Content-Length");
    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: +5\r\n\r\n",
                           &h),
                     400);
    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 99999999999999999999\r\n\r\n",
                           &h),
                     413);
}

static void
test_parse_refuses_content_length_with_transfer_encoding(void **state)
{
    struct http_head h;
    (void)state;

    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 3\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n",
                           &h),
                     400);
    assert_string_equal(h.error, "both Content-Length and Transfer-Encoding");
    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n",
                           &h),
                     0);
    assert_int_equal(h.body, HTTP_BODY_CHUNKED);
    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Transfer-Encoding: chunked, gzip\r\n\r\n",
                           &h),
                     400);
    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Transfer-Encoding: chunked\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n",
                           &h),
                     400);
    assert_int_equal(parse("PUT /kv/a HTTP/1.1\r\nHost: x\r\n"
                           "Transfer-Encoding: gzip, chunked\r\n\r\n",
                           &h),
                     501);
    assert_int_equal(parse("PUT /kv/a HTTP/1.0\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n",
                           &h),
                     400);
}

static void
test_parse_refuses_malformed_fields(void **state)
{
    struct http_head h;
    (void)state;

    /* whitespace before the colon (RFC 9112 5.1) */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length : 5\r\n\r\n",
                           &h),
                     400);
    /* obsolete line folding */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n"
                           " folded\r\n\r\n",
                           &h),
                     400);
    /* bare CR and NUL in a value */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\rX: 1\r\n\r\n", &h), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\r\n\r\n", &h),
                     400);
    /* Host: exactly one in HTTP/1.1 */
    assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n", &h), 400);
    assert_string_equal(h.error, "missing Host header");
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &h),
                     400);
    /* an expectation kvd does not meet */
    assert_int_equal(
        parse("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", &h), 417);
    assert_int_equal(
        parse("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n", &h),
        0);
    assert_true(h.flags & HTTP_HEAD_CONTINUE);
}

static void
test_parse_refuses_bad_request_lines(void **state)
{
    struct http_head h;
    (void)state;

    assert_int_equal(parse("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", &h), 400);
    assert_int_equal(parse("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", &h), 400);
    assert_int_equal(parse("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", &h), 400);
    assert_int_equal(parse("GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", &h),
                     400);
    assert_int_equal(parse("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", &h), 400);
    assert_int_equal(parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n", &h), 505);
    assert_int_equal(parse("GET / HTTP/1.x\r\nHost: x\r\n\r\n", &h), 400);
    assert_int_equal(parse("this is not http\r\n\r\n", &h), 400);
}

static void
test_parse_too_many_fields_is_431(void **state)
{
    char text[4096];
    size_t n = 0;
    struct http_head h;
    (void)state;

    n += (size_t)snprintf(text + n, sizeof(text) - n,
                          "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < HTTP_FIELDS_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "X%d: y\r\n", i);
    }
    snprintf(text + n, sizeof(text) - n, "\r\n");
    assert_int_equal(parse(text, &h), 431);
}

/* Decode `in` fed in pieces of `step` bytes; returns the body and sets
 * *rest to the bytes after it. */
static int
dechunk(const char *in, size_t step, char *body, size_t *blen, size_t *rest)
{
    struct http_chunked c;
    char buf[256];
    size_t n = strlen(in), off = 0, have = 0;

    http_chunked_init(&c);
    *blen = 0;
    while (off < n || have > 0) {
        size_t take = n - off < step ? n - off : step, used, out;
        int rc;

        memcpy(buf + have, in + off, take);
        off += take;
        have += take;
        rc = http_chunked_decode(&c, buf, have, &used, &out);
        memcpy(body + *blen, buf, out);
        *blen += out;
        memmove(buf, buf + used, have - used);
        have -= used;
        if (rc != KVD_EAGAIN) {
            *rest = have + (n - off);
            return rc;
        }
        if (off == n) {
            break;
        }
    }
    return KVD_EAGAIN;
}

static void
test_chunked_decodes_in_any_pieces(void **state)
{
    const char *in = "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n"
                     "0\r\nTrailer: x\r\n\r\nGET";
    char body[64];
    size_t blen, rest;
    (void)state;

    for (size_t step = 1; step < 8; step++) {
        assert_int_equal(dechunk(in, step, body, &blen, &rest), 0);
        assert_int_equal(blen, 16);
        assert_memory_equal(body, "hello 0123456789", 16);
        assert_int_equal(rest, 3);
    }
    assert_int_equal(dechunk("3\n", 1, body, &blen, &rest), KVD_EAGAIN);
}

static void
test_chunked_refuses_bad_framing(void **state)
{
    char body[64];
    size_t blen, rest;
    (void)state;

    assert_int_equal(dechunk("x\r\n", 4, body, &blen, &rest), 400);
    assert_int_equal(dechunk("\r\n", 4, body, &blen, &rest), 400);
    assert_int_equal(dechunk("3\r\nabcX", 8, body, &blen, &rest), 400);
    assert_int_equal(dechunk("1000000000000000\r\n", 32, body, &blen, &rest),
                     400);
    assert_int_equal(dechunk("3\r\r", 8, body, &blen, &rest), 400);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_head_end_found_byte_by_byte),
        cmocka_unit_test(test_parse_request_line_and_fields),
        cmocka_unit_test(test_parse_http10_and_connection_tokens),
        cmocka_unit_test(
            test_parse_refuses_duplicate_or_conflicting_content_length),
        cmocka_unit_test(
            test_parse_refuses_content_length_with_transfer_encoding),
        cmocka_unit_test(test_parse_refuses_malformed_fields),
        cmocka_unit_test(test_parse_refuses_bad_request_lines),
        cmocka_unit_test(test_parse_too_many_fields_is_431),
        cmocka_unit_test(test_chunked_decodes_in_any_pieces),
        cmocka_unit_test(test_chunked_refuses_bad_framing),
    };
    return cmocka_run_group_tests_name("http_parse", tests, NULL, NULL);
}
