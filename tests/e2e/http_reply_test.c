/*
 * tests/e2e/http_reply_test.c -- unit tests of the http frontend's reply
 * encoder (frontends/http/http_reply.c): the command layer's reply calls
 * become a tree a route can read, nested arrays included; error statuses
 * are kept; large bulk strings can be taken without a copy; a reply of a
 * broken shape is marked failed instead of being half read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static const struct kvd_reply_ops *ops = &http_reply_ops;

static void
test_reply_scalars(void **state)
{
    struct http_reply rep;
    (void)state;

    memset(&rep, 0, sizeof(rep));
    ops->bulk(&rep, "a\0b", 3);
    assert_false(rep.failed);
    assert_int_equal(rep.root->type, HTTP_R_BULK);
    assert_int_equal(rep.root->n, 3);
    assert_memory_equal(rep.root->p, "a\0b", 3);
    http_reply_reset(&rep);
    ops->integer(&rep, -42);
    assert_int_equal(rep.root->type, HTTP_R_INT);
    assert_int_equal(rep.root->i, -42);
    http_reply_reset(&rep);
    ops->null(&rep);
    assert_int_equal(rep.root->type, HTTP_R_NULL);
    http_reply_reset(&rep);
    ops->status(&rep, "OK", 2);
    assert_int_equal(rep.root->type, HTTP_R_STATUS);
    assert_string_equal(rep.root->p, "OK");
    http_reply_release(&rep);
}

static void
test_reply_error_keeps_its_status(void **state)
{
    struct http_reply rep;
    (void)state;

    memset(&rep, 0, sizeof(rep));
    ops->error_status(&rep, KVD_ETOOBIG, "ERR too big", 11);
    assert_int_equal(rep.root->type, HTTP_R_ERROR);
    assert_int_equal(rep.root->status, KVD_ETOOBIG);
    assert_string_equal(rep.root->p, "ERR too big");
    http_reply_reset(&rep);
    ops->error(&rep, "ERR x", 5);
    assert_int_equal(rep.root->status, 0);
    http_reply_release(&rep);
}

static void
test_reply_nested_arrays(void **state)
{
    struct http_reply rep;
    const struct http_rnode *keys;
    (void)state;

    /* SCAN's shape: [cursor, [k1, k2, k3]] */
    memset(&rep, 0, sizeof(rep));
    ops->array(&rep, 2);
    ops->bulk(&rep, "17", 2);
    ops->array(&rep, 3);
    ops->bulk(&rep, "k1", 2);
    ops->null(&rep);
    ops->bulk(&rep, "k3", 2);
    assert_false(rep.failed);
    assert_int_equal(rep.depth, 0);
    assert_int_equal(rep.root->type, HTTP_R_ARRAY);
    assert_int_equal(rep.root->nelem, 2);
    assert_string_equal(rep.root->elem[0].p, "17");
    keys = &rep.root->elem[1];
    assert_int_equal(keys->nelem, 3);
    assert_string_equal(keys->elem[0].p, "k1");
    assert_int_equal(keys->elem[1].type, HTTP_R_NULL);
    assert_string_equal(keys->elem[2].p, "k3");
    /* an empty array is complete at once; a map is its pairs flattened */
    http_reply_reset(&rep);
    ops->array(&rep, 2);
    ops->array(&rep, 0);
    ops->map(&rep, 1);
    ops->bulk(&rep, "f", 1);
    ops->integer(&rep, 1);
    assert_int_equal(rep.depth, 0);
    assert_int_equal(rep.root->elem[1].nelem, 2);
    http_reply_release(&rep);
}

static void
test_reply_large_bulk_is_taken_without_copy(void **state)
{
    struct http_reply rep;
    size_t n = HTTP_REPLY_OWN_BYTES + 10;
    char *big = malloc(n), *taken;
    (void)state;

    memset(big, 'x', n);
    memset(&rep, 0, sizeof(rep));
    ops->bulk(&rep, big, n);
    taken = http_reply_take(&rep, rep.root);
    assert_non_null(taken);
    assert_memory_equal(taken, big, n);
    /* a second take finds nothing: the caller owns it now */
    assert_null(http_reply_take(&rep, rep.root));
    http_reply_reset(&rep);
    free(taken);
    ops->bulk(&rep, "small", 5);
    assert_null(http_reply_take(&rep, rep.root)); /* lives in the arena */
    http_reply_release(&rep);
    free(big);
}

static void
test_reply_broken_shape_fails(void **state)
{
    struct http_reply rep;
    (void)state;

    /* two top-level replies */
    memset(&rep, 0, sizeof(rep));
    ops->integer(&rep, 1);
    ops->integer(&rep, 2);
    assert_true(rep.failed);
    /* an array announced and not filled stays open (depth > 0) */
    http_reply_reset(&rep);
    ops->array(&rep, 3);
    ops->integer(&rep, 1);
    assert_false(rep.failed);
    assert_int_equal(rep.depth, 1);
    /* deeper than HTTP_REPLY_DEPTH */
    http_reply_reset(&rep);
    for (int i = 0; i <= HTTP_REPLY_DEPTH; i++) {
        ops->array(&rep, 1);
    }
    assert_true(rep.failed);
    http_reply_release(&rep);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_scalars),
        cmocka_unit_test(test_reply_error_keeps_its_status),
        cmocka_unit_test(test_reply_nested_arrays),
        cmocka_unit_test(test_reply_large_bulk_is_taken_without_copy),
        cmocka_unit_test(test_reply_broken_shape_fails),
    };
    return cmocka_run_group_tests_name("http_reply", tests, NULL, NULL);
}
