/*
 * tests/e2e/resp_reply_test.c -- unit tests of the resp frontend's reply
 * encoder (frontends/resp/resp_reply.c), label unit: the exact bytes of
 * every reply type in RESP2 and RESP3, protocol switches pushed by the
 * command layer (the proto op), the write buffer changing hands when
 * replies of another connection arrive (a pass writes many), and CR/LF
 * scrubbing in status and error lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

struct fixture {
    struct resp_fe fe;
    struct resp_worker w;
    struct resp_conn c;
    struct resp_conn d; /* a second connection of the same worker */
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->w.fe = &f->fe;
    f->c.w = &f->w;
    f->c.proto = 2;
    f->d.w = &f->w;
    f->d.proto = 2;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    resp_buf_free(&f->w.wbuf);
    resp_buf_free(&f->c.o);
    resp_buf_free(&f->d.o);
    free(f);
    return 0;
}

static void
assert_out(struct fixture *f, const char *want, size_t n)
{
    assert_int_equal(f->w.wbuf.len, n);
    assert_memory_equal(f->w.wbuf.p, want, n);
    f->w.wbuf.len = 0;
}

#define ASSERT_OUT(f, lit) assert_out((f), (lit), sizeof(lit) - 1)

static void
test_reply_resp2_types(void **state)
{
    struct fixture *f = *state;
    const struct kvd_reply_ops *o = &resp_reply_ops;

    o->status(&f->c, "OK", 2);
    ASSERT_OUT(f, "+OK\r\n");
    o->error(&f->c, "ERR bad", 7);
    ASSERT_OUT(f, "-ERR bad\r\n");
    o->integer(&f->c, 0);
    o->integer(&f->c, -42);
    o->integer(&f->c, LLONG_MIN);
    ASSERT_OUT(f, ":0\r\n:-42\r\n:-9223372036854775808\r\n");
    o->bulk(&f->c, "a\0\r\n", 4);
    o->bulk(&f->c, "", 0);
    ASSERT_OUT(f, "$4\r\na\0\r\n\r\n$0\r\n\r\n");
    o->null(&f->c);
    ASSERT_OUT(f, "$-1\r\n");
    o->array(&f->c, 3);
    o->map(&f->c, 2);
    ASSERT_OUT(f, "*3\r\n*4\r\n");
    o->dbl(&f->c, 1.5);
    ASSERT_OUT(f, "$3\r\n1.5\r\n");
}

static void
test_reply_resp3_types(void **state)
{
    struct fixture *f = *state;
    const struct kvd_reply_ops *o = &resp_reply_ops;

    o->proto(&f->c, 3);
    o->null(&f->c);
    o->map(&f->c, 2);
    o->dbl(&f->c, -0.25);
    o->dbl(&f->c, INFINITY);
    ASSERT_OUT(f, "_\r\n%2\r\n,-0.25\r\n,inf\r\n");
}

static void
test_reply_follows_the_proto_op(void **state)
{
    struct fixture *f = *state;
    const struct kvd_reply_ops *o = &resp_reply_ops;

    /* HELLO 3: the layer pushes the switch, then writes the map reply. */
    o->proto(&f->c, 3);
    o->map(&f->c, 7);
    ASSERT_OUT(f, "%7\r\n");
    assert_int_equal(f->c.proto, 3);
    o->null(&f->c);
    o->null_array(&f->c);
    ASSERT_OUT(f, "_\r\n_\r\n");
    /* HELLO 2 from RESP3: the map is a flat array again. */
    o->proto(&f->c, 2);
    o->map(&f->c, 7);
    ASSERT_OUT(f, "*14\r\n");
    o->null(&f->c);
    o->null_array(&f->c);
    ASSERT_OUT(f, "$-1\r\n*-1\r\n");
    /* The version is the connection's: another one stays in RESP2. */
    o->proto(&f->c, 3);
    o->null(&f->d);
    resp_out_flush(&f->w);
    assert_int_equal(f->d.o.len, 5);
    assert_memory_equal(f->d.o.p, "$-1\r\n", 5);
}

static void
test_reply_for_another_connection_moves_the_buffer(void **state)
{
    struct fixture *f = *state;
    const struct kvd_reply_ops *o = &resp_reply_ops;

    o->status(&f->c, "OK", 2);
    o->integer(&f->c, 1);
    assert_ptr_equal(f->w.out, &f->c);
    /* A pass writes d's reply: c's bytes move to c->o, c waits for the
     * end-of-iteration write. */
    o->bulk(&f->d, "v", 1);
    assert_ptr_equal(f->w.out, &f->d);
    assert_int_equal(f->c.o.len, 9);
    assert_memory_equal(f->c.o.p, "+OK\r\n:1\r\n", 9);
    assert_true(f->c.flags & RESP_CONN_PENDING);
    assert_ptr_equal(f->w.pending, &f->c);
    /* Back to c: its next reply goes behind its earlier ones. */
    o->null(&f->c);
    assert_int_equal(f->d.o.len, 7);
    assert_memory_equal(f->d.o.p, "$1\r\nv\r\n", 7);
    resp_out_flush(&f->w);
    assert_null(f->w.out);
    assert_int_equal(f->w.wbuf.len, 0);
    assert_int_equal(f->c.o.len, 14);
    assert_memory_equal(f->c.o.p, "+OK\r\n:1\r\n$-1\r\n", 14);
    /* Both wait once on the pending list. */
    assert_true(f->d.flags & RESP_CONN_PENDING);
    resp_conn_unpend(&f->c);
    resp_conn_unpend(&f->d);
    assert_null(f->w.pending);
}

static void
test_reply_lines_cannot_be_split(void **state)
{
    struct fixture *f = *state;

    resp_reply_ops.error(&f->c, "ERR a\r\nb", 8);
    ASSERT_OUT(f, "-ERR a  b\r\n");
    resp_reply_error_str(&f->c, "Protocol error: x\ny");
    ASSERT_OUT(f, "-ERR Protocol error: x y\r\n");
}

static void
test_reply_large_bulk_grows_buffer(void **state)
{
    struct fixture *f = *state;
    size_t n = 3 << 20;
    char *big = malloc(n);

    assert_non_null(big);
    memset(big, 'z', n);
    resp_reply_ops.bulk(&f->c, big, n);
    assert_int_equal(f->w.wbuf.len, n + strlen("$3145728\r\n") + 2);
    assert_memory_equal(f->w.wbuf.p, "$3145728\r\nzz", 12);
    assert_false(f->c.flags & RESP_CONN_BROKEN);
    f->w.wbuf.len = 0;
    free(big);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reply_resp2_types, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reply_resp3_types, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reply_follows_the_proto_op, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_reply_for_another_connection_moves_the_buffer, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_reply_lines_cannot_be_split, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reply_large_bulk_grows_buffer,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("resp_reply", tests, NULL, NULL);
}
