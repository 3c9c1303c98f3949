/*
 * tests/e2e/resp_parser_test.c -- unit tests of the resp frontend's
 * incremental request parser (frontends/resp/resp_parse.c), label unit.
 *
 * Each test feeds bytes the way a socket may deliver them (whole, byte by
 * byte, with the buffer moved between calls) and checks the exact status,
 * the arguments, and the Redis-worded protocol error messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp_parse.h"

static const struct resp_limits default_limits = {
    .max_bulk_len = 512ull * 1024 * 1024,
    .max_args = 1024 * 1024,
    .max_inline_len = 64 * 1024,
};

struct fixture {
    struct resp_parser p;
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    resp_parser_init(&f->p, &default_limits);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    resp_parser_release(&f->p);
    free(f);
    return 0;
}

static int
parse_str(struct resp_parser *p, const char *s)
{
    return resp_parse(p, s, strlen(s));
}

static void
assert_arg(struct resp_parser *p, const char *base, size_t i, const void *want,
           size_t wlen)
{
    assert_true(i < p->argc);
    assert_int_equal(p->argl[i], wlen);
    assert_memory_equal(base + p->argo[i], want, wlen);
}

static void
test_parse_multibulk_complete(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char *req = "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$5\r\nhello\r\n";

    assert_int_equal(parse_str(p, req), 0);
    assert_int_equal(p->kind, RESP_REQ_MULTIBULK);
    assert_int_equal(p->argc, 3);
    assert_int_equal(p->pos, strlen(req));
    assert_arg(p, req, 0, "SET", 3);
    assert_arg(p, req, 1, "a", 1);
    assert_arg(p, req, 2, "hello", 5);
    const char *const *argv = resp_parser_args(p, req);
    assert_memory_equal(argv[2], "hello", 5);
}

/* Every prefix is "need more bytes"; the whole request parses the same,
 * even when the caller moves its buffer between calls. */
static void
test_parse_resumes_byte_by_byte_in_a_moving_buffer(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char req[] = "*2\r\n$3\r\nGET\r\n$4\r\nk\0\r\n\r\n";
    size_t n = sizeof(req) - 1;

    for (size_t i = 1; i < n; i++) {
        char *copy = malloc(i); /* a fresh buffer each time */
        assert_non_null(copy);
        memcpy(copy, req, i);
        assert_int_equal(resp_parse(p, copy, i), KVD_EAGAIN);
        free(copy);
    }
    char *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, req, n);
    assert_int_equal(resp_parse(p, copy, n), 0);
    assert_int_equal(p->argc, 2);
    assert_int_equal(p->pos, n);
    assert_arg(p, copy, 1, "k\0\r\n", 4); /* binary-safe */
    free(copy);
}

static void
test_parse_pipeline_takes_one_request_at_a_time(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char *buf = "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n"
                      "*1\r\n$4\r\nPI";
    size_t len = strlen(buf), off = 0;

    assert_int_equal(resp_parse(p, buf, len), 0);
    assert_int_equal(p->argc, 1);
    assert_arg(p, buf, 0, "PING", 4);
    off += p->pos;
    resp_parser_reset(p);
    assert_int_equal(resp_parse(p, buf + off, len - off), 0);
    assert_int_equal(p->argc, 2);
    assert_arg(p, buf + off, 1, "hi", 2);
    off += p->pos;
    resp_parser_reset(p);
    assert_int_equal(resp_parse(p, buf + off, len - off), KVD_EAGAIN);
}

static void
test_parse_empty_bulk_and_empty_arrays(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char *req = "*2\r\n$3\r\nSET\r\n$0\r\n\r\n";

    assert_int_equal(parse_str(p, req), 0);
    assert_int_equal(p->argc, 2);
    assert_int_equal(p->argl[1], 0);
    resp_parser_reset(p);
    assert_int_equal(parse_str(p, "*0\r\n"), 0);
    assert_int_equal(p->argc, 0);
    assert_int_equal(p->pos, 4);
    resp_parser_reset(p);
    assert_int_equal(parse_str(p, "*-1\r\n"), 0);
    assert_int_equal(p->argc, 0);
    assert_int_equal(p->pos, 5);
}

static void
test_parse_inline_lines(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char *buf = "SET a \"b c\"\r\nPING\nGE";

    assert_int_equal(parse_str(p, buf), 0);
    assert_int_equal(p->kind, RESP_REQ_INLINE);
    assert_int_equal(p->inline_len, strlen("SET a \"b c\""));
    assert_int_equal(p->pos, strlen("SET a \"b c\"\r\n"));
    size_t off = p->pos;
    resp_parser_reset(p);
    assert_int_equal(parse_str(p, buf + off), 0);
    assert_int_equal(p->inline_len, 4); /* a bare \n ends a line too */
    off += p->pos;
    resp_parser_reset(p);
    assert_int_equal(parse_str(p, buf + off), KVD_EAGAIN);
}

static void
test_parse_rejects_too_big_inline(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    size_t n = 64 * 1024 + 2;
    char *buf = malloc(n);

    assert_non_null(buf);
    memset(buf, 'a', n);
    /* Up to the limit (plus room for "\r\n") it waits for the newline. */
    assert_int_equal(resp_parse(p, buf, 64 * 1024 + 1), KVD_EAGAIN);
    assert_int_equal(resp_parse(p, buf, n), KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: too big inline request");
    free(buf);
}

static void
test_parse_rejects_huge_bulk_length(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;

    /* 2^40: refused from the header, before any byte of it is awaited. */
    assert_int_equal(parse_str(p, "*2\r\n$3\r\nGET\r\n$1099511627776\r\n"),
                     KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: invalid bulk length");
}

static void
test_parse_rejects_bad_bulk_lengths(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char *bad[] = {"*1\r\n$-1\r\n",
                         "*1\r\n$01\r\nx\r\n",
                         "*1\r\n$+1\r\nx\r\n",
                         "*1\r\n$ 1\r\nx\r\n",
                         "*1\r\n$1x\r\nx\r\n",
                         "*1\r\n$\r\n",
                         "*1\r\n$99999999999999999999\r\n",
                         "*1\r\n$1\rx"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        resp_parser_reset(p);
        assert_int_equal(parse_str(p, bad[i]), KVD_EPROTO);
        assert_string_equal(p->error, "Protocol error: invalid bulk length");
    }
}

static void
test_parse_rejects_bad_multibulk_counts(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char *bad[] = {"*abc\r\n", "*1048577\r\n", "*\r\n", "*-\r\n",
                         "*2x\r\n"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        resp_parser_reset(p);
        assert_int_equal(parse_str(p, bad[i]), KVD_EPROTO);
        assert_string_equal(p->error,
                            "Protocol error: invalid multibulk length");
    }
}

static void
test_parse_rejects_missing_dollar(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;

    assert_int_equal(parse_str(p, "*1\r\n:5\r\n"), KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: expected '$', got ':'");
    resp_parser_reset(p);
    assert_int_equal(resp_parse(p, "*1\r\n\x01", 5), KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: expected '$', got '\\x01'");
}

static void
test_parse_rejects_bulk_without_crlf(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;

    assert_int_equal(parse_str(p, "*1\r\n$2\r\nabcd\r\n"), KVD_EPROTO);
    assert_string_equal(p->error,
                        "Protocol error: bulk string not followed by CRLF");
}

static void
test_parse_rejects_endless_header_lines(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    size_t n = RESP_HEADER_MAX_BYTES + 8;
    char *buf = malloc(n);

    assert_non_null(buf);
    memset(buf, '1', n);
    buf[0] = '*';
    assert_int_equal(resp_parse(p, buf, 1000), KVD_EAGAIN);
    assert_int_equal(resp_parse(p, buf, n), KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: too big mbulk count string");
    resp_parser_reset(p);
    memcpy(buf, "*1\r\n$", 5);
    assert_int_equal(resp_parse(p, buf, n), KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: too big bulk count string");
    free(buf);
}

/* need runs ahead of what arrived by at most RESP_NEED_STEP_BYTES or the
 * bytes received, whichever is more, and ends at the request's size. */
static void
test_parse_need_grows_with_bytes_received(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char *head = "*1\r\n$200000\r\n";
    size_t hl = strlen(head);
    size_t total = hl + 200000 + 2;
    char *buf = malloc(total);

    assert_non_null(buf);
    memcpy(buf, head, hl);
    memset(buf + hl, 'x', 200000);
    memcpy(buf + total - 2, "\r\n", 2);
    assert_int_equal(resp_parse(p, buf, hl + 2), KVD_EAGAIN);
    assert_int_equal(p->need, hl + 2 + RESP_NEED_STEP_BYTES);
    assert_int_equal(resp_parse(p, buf, 100000), KVD_EAGAIN);
    assert_int_equal(p->need, 200000);
    assert_int_equal(resp_parse(p, buf, 150000), KVD_EAGAIN);
    assert_int_equal(p->need, total);
    assert_int_equal(resp_parse(p, buf, total), 0);
    assert_int_equal(p->argc, 1);
    assert_int_equal(p->argl[0], 200000);
    free(buf);
}

/* A 17-byte header announcing 512 MiB asks for 64 KiB more, not 512 MiB:
 * a connection holds no more than about twice what it sent. */
static void
test_parse_huge_announced_bulk_needs_little(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    const char *head = "*1\r\n$536870912\r\n";

    assert_int_equal(parse_str(p, head), KVD_EAGAIN);
    assert_true(p->need > strlen(head));
    assert_true(p->need <= strlen(head) + RESP_NEED_STEP_BYTES);
}

/* A header announcing more than max_request_len is refused at once. */
static void
test_parse_refuses_request_over_limit_early(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    static const struct resp_limits lim = {.max_bulk_len = 1 << 20,
                                           .max_args = 8,
                                           .max_inline_len = 1024,
                                           .max_request_len = 1000};

    p->lim = &lim;
    assert_int_equal(parse_str(p, "*2\r\n$3\r\nSET\r\n$900\r\n"), KVD_EAGAIN);
    resp_parser_reset(p);
    assert_int_equal(parse_str(p, "*2\r\n$3\r\nSET\r\n$1000\r\n"), KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: request larger than the "
                                  "query buffer limit");
}

static void
test_parse_limits_are_configurable(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    static const struct resp_limits small = {
        .max_bulk_len = 4, .max_args = 2, .max_inline_len = 1024};

    p->lim = &small;
    assert_int_equal(parse_str(p, "*1\r\n$4\r\nabcd\r\n"), 0);
    resp_parser_reset(p);
    assert_int_equal(parse_str(p, "*1\r\n$5\r\n"), KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: invalid bulk length");
    resp_parser_reset(p);
    assert_int_equal(parse_str(p, "*3\r\n"), KVD_EPROTO);
    assert_string_equal(p->error, "Protocol error: invalid multibulk length");
}

/* Thousands of arguments: the arrays grow with what arrives. */
static void
test_parse_thousands_of_args(void **state)
{
    struct resp_parser *p = &((struct fixture *)*state)->p;
    size_t nargs = 5000, cap = 16 + nargs * 16, len = 0;
    char *buf = malloc(cap);

    assert_non_null(buf);
    len += (size_t)snprintf(buf, cap, "*%zu\r\n", nargs);
    for (size_t i = 0; i < nargs; i++) {
        len += (size_t)snprintf(buf + len, cap - len, "$4\r\n%04zu\r\n", i);
    }
    /* An announced count costs nothing until the arguments come. */
    assert_int_equal(resp_parse(p, buf, 12), KVD_EAGAIN);
    assert_true(p->argcap <= 16);
    assert_int_equal(resp_parse(p, buf, len), 0);
    assert_int_equal(p->argc, nargs);
    assert_arg(p, buf, 4999, "4999", 4);
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse_multibulk_complete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_parse_resumes_byte_by_byte_in_a_moving_buffer, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_parse_pipeline_takes_one_request_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_empty_bulk_and_empty_arrays,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_inline_lines, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_parse_rejects_too_big_inline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_rejects_huge_bulk_length,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_rejects_bad_bulk_lengths,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_rejects_bad_multibulk_counts,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_rejects_missing_dollar,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_rejects_bulk_without_crlf,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_rejects_endless_header_lines,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_parse_need_grows_with_bytes_received, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_parse_huge_announced_bulk_needs_little, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_parse_refuses_request_over_limit_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_limits_are_configurable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_thousands_of_args, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("resp_parser", tests, NULL, NULL);
}
