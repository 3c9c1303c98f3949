/*
 * tests/e2e/resp_reply_test.c -- unit tests of the resp frontend's reply
 * encoder (frontends/resp/resp_reply.c), label unit: the exact bytes of
 * every reply type in RESP2 and RESP3, the protocol version taken from the
 * command layer's session (a fake accessor here), and CR/LF scrubbing in
 * status and error lines.
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
};

/* What the fake command layer says the session speaks. */
static int fake_session_proto_value;

static int
fake_session_proto(const kvd_session *s)
{
    (void)s;
    return fake_session_proto_value;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->fe.session_proto = fake_session_proto;
    f->w.fe = &f->fe;
    f->c.w = &f->w;
    f->c.proto = 2;
    fake_session_proto_value = 2;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    resp_buf_free(&f->w.wbuf);
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

    f->c.proto = 3;
    fake_session_proto_value = 3;
    o->null(&f->c);
    o->map(&f->c, 2);
    o->dbl(&f->c, -0.25);
    o->dbl(&f->c, INFINITY);
    ASSERT_OUT(f, "_\r\n%2\r\n,-0.25\r\n,inf\r\n");
}

static void
test_reply_map_follows_a_switch_inside_the_command(void **state)
{
    struct fixture *f = *state;
    const struct kvd_reply_ops *o = &resp_reply_ops;

    /* HELLO 3 switches the session, then writes its map reply: the map
     * is RESP3 although the copy still said 2 when the command began. */
    fake_session_proto_value = 3;
    o->map(&f->c, 7);
    ASSERT_OUT(f, "%7\r\n");
    assert_int_equal(f->c.proto, 3);
    o->null(&f->c);
    ASSERT_OUT(f, "_\r\n");
    /* HELLO 2 from RESP3: the map is a flat array again. */
    fake_session_proto_value = 2;
    o->map(&f->c, 7);
    ASSERT_OUT(f, "*14\r\n");
    o->null(&f->c);
    ASSERT_OUT(f, "$-1\r\n");
}

static void
test_reply_sync_proto_copies_the_session(void **state)
{
    struct fixture *f = *state;

    fake_session_proto_value = 3;
    resp_reply_sync_proto(&f->c);
    assert_int_equal(f->c.proto, 3);
    fake_session_proto_value = 2; /* RESET */
    resp_reply_sync_proto(&f->c);
    assert_int_equal(f->c.proto, 2);
    /* A host without the accessor: the connection stays where it is. */
    f->fe.session_proto = NULL;
    fake_session_proto_value = 3;
    resp_reply_sync_proto(&f->c);
    assert_int_equal(f->c.proto, 2);
    resp_reply_ops.map(&f->c, 1);
    ASSERT_OUT(f, "*2\r\n");
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
        cmocka_unit_test_setup_teardown(
            test_reply_map_follows_a_switch_inside_the_command, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_reply_sync_proto_copies_the_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_lines_cannot_be_split, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reply_large_bulk_grows_buffer,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("resp_reply", tests, NULL, NULL);
}
