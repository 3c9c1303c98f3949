/*
 * tests/cmd/test_cmd_batch.c -- deferred execution (kvd_cmd_defer,
 * kvd_cmd_batch_run, kvd_cmd_batch_reply).
 *
 * The engine is the memory engine with a multi method added by the test
 * (it loops over the memory engine's get/put/del and counts its calls), so
 * the command layer batches; the plain memory engine (no multi) must not.
 * The central check: every queued command replies exactly what
 * kvd_cmd_exec replies for it on a store without batching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd_fixture.h"
#include "core/cmd.h"
#include "kvd/frontend.h"

static struct kvd_engine_vtable multi_vt;
static int multi_calls;
static size_t multi_ops;

static int
test_multi(kvd_engine *e, struct kvd_mop *ops, size_t n)
{
    const struct kvd_engine_vtable *m = cmdt_memory_vt();

    multi_calls++;
    multi_ops += n;
    for (size_t i = 0; i < n; i++) {
        struct kvd_mop *op = &ops[i];
        if (op->type == KVD_MOP_GET) {
            op->status = m->get(e, op->key, op->klen, &op->out);
        } else if (op->type == KVD_MOP_PUT) {
            op->status = m->put(e, op->key, op->klen, op->val, op->vlen,
                                op->expire_ms);
        } else {
            op->status = m->del(e, op->key, op->klen);
        }
    }
    return 0;
}

static int
setup_multi(void **state)
{
    struct cmdt_params p = {.session_flags = KVD_SESSION_TRUSTED,
                            .max_value_bytes = 64,
                            .vt = &multi_vt};

    multi_vt = *cmdt_memory_vt();
    multi_vt.struct_size = sizeof(multi_vt);
    multi_vt.multi = test_multi;
    multi_calls = 0;
    multi_ops = 0;
    return cmdt_setup_params(state, &p);
}

static int
setup_plain(void **state)
{
    struct cmdt_params p = {.session_flags = KVD_SESSION_TRUSTED,
                            .max_value_bytes = 64};
    return cmdt_setup_params(state, &p);
}

/* Split a line into argv (static storage, valid until the next call). */
static size_t
split(const char *line, const char **argv, size_t *argl)
{
    static char buf[4096];
    struct kvd_err err = {0};
    int n = kvd_cmd_split(line, strlen(line), buf, 16, argv, argl, &err);

    assert_true(n >= 0);
    return (size_t)n;
}

static int
defer_line(kvd_cmd_batch *b, kvd_session *s, const char *line)
{
    const char *argv[16];
    size_t argl[16];
    size_t argc = split(line, argv, argl);

    return kvd_cmd_defer(b, s, argc, argv, argl);
}

static const char *
reply_of(kvd_cmd_batch *b, size_t t, struct cmdt_rec *rec)
{
    cmdt_rec_reset(rec);
    kvd_cmd_batch_reply(b, t, &cmdt_reply_ops, rec);
    assert_int_equal(rec->replies, 1);
    assert_int_equal(rec->pending, 0);
    return rec->buf;
}

static void
test_no_batch_without_engine_multi(void **state)
{
    struct cmdt_fx *fx = *state;

    assert_null(kvd_cmd_batch_create(fx->cmd));
}

static void
test_batch_runs_once_and_replies_in_place(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_batch *b = kvd_cmd_batch_create(fx->cmd);
    kvd_session *s2 = kvd_cmd_session_create(fx->cmd, "test", 0);
    struct cmdt_rec rec = {0};

    assert_non_null(b);
    assert_non_null(s2);
    assert_string_equal(cmdt_run(fx, "SET old v0"), "OK");
    assert_int_equal(defer_line(b, fx->sess, "SET a 1"), 0);
    assert_int_equal(defer_line(b, fx->sess, "GET a"), 1);
    assert_int_equal(defer_line(b, s2, "get old"), 2);
    assert_int_equal(defer_line(b, s2, "DEL old"), 3);
    assert_int_equal(defer_line(b, s2, "UNLINK nothing"), 4);
    assert_int_equal(defer_line(b, fx->sess, "GET nothing"), 5);
    assert_int_equal(defer_line(b, fx->sess, "SET empty \"\""), 6);
    assert_int_equal(kvd_cmd_batch_count(b), 7);
    assert_int_equal(multi_calls, 0); /* nothing ran yet */
    kvd_cmd_batch_run(b);
    assert_int_equal(multi_calls, 1);
    assert_int_equal(multi_ops, 7);
    assert_string_equal(reply_of(b, 0, &rec), "OK");
    assert_string_equal(reply_of(b, 1, &rec), "\"1\"");
    assert_string_equal(reply_of(b, 2, &rec), "\"v0\"");
    assert_string_equal(reply_of(b, 3, &rec), ":1");
    assert_string_equal(reply_of(b, 4, &rec), ":0");
    assert_string_equal(reply_of(b, 5, &rec), "nil");
    assert_string_equal(reply_of(b, 6, &rec), "OK");
    kvd_cmd_batch_clear(b);
    assert_int_equal(kvd_cmd_batch_count(b), 0);
    assert_string_equal(cmdt_run(fx, "GET a"), "\"1\"");
    assert_string_equal(cmdt_run(fx, "EXISTS old"), ":0");
    assert_string_equal(cmdt_run(fx, "STRLEN empty"), ":0");
    assert_string_equal(cmdt_run(fx, "EXISTS empty"), ":1");
    /* a second pass reuses the batch */
    assert_int_equal(defer_line(b, s2, "GET a"), 0);
    kvd_cmd_batch_run(b);
    assert_string_equal(reply_of(b, 0, &rec), "\"1\"");
    kvd_cmd_batch_clear(b);
    assert_int_equal(multi_calls, 2);
    cmdt_rec_release(&rec);
    kvd_cmd_session_destroy(s2);
    kvd_cmd_batch_destroy(b);
}

static void
test_only_simple_commands_wait(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_batch *b = kvd_cmd_batch_create(fx->cmd);
    static const char *const refused[] = {
        "SET a 1 EX 10", /* options: exec parses them */
        "SET a 1 NX",
        "INCR a",
        "MGET a b",
        "DEL a b",
        "GET",            /* arity: exec writes the error */
        "GET a b",
        "GET \"\"",       /* empty key: exec writes the error */
        "SET k 0123456789012345678901234567890123456789012345678901234567"
        "89012345", /* over max_value_bytes (64) */
        "PING",
        "EXISTS a",
    };

    assert_non_null(b);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (defer_line(b, fx->sess, refused[i]) != KVD_ENOTSUP) {
            fail_msg("'%s' was queued", refused[i]);
        }
    }
    assert_int_equal(kvd_cmd_batch_count(b), 0);
    /* after a run, nothing more is taken until the batch is cleared */
    assert_int_equal(defer_line(b, fx->sess, "GET a"), 0);
    kvd_cmd_batch_run(b);
    assert_int_equal(defer_line(b, fx->sess, "GET b"), KVD_ENOTSUP);
    kvd_cmd_batch_clear(b); /* releases what was never replied */
    assert_int_equal(defer_line(b, fx->sess, "GET b"), 0);
    kvd_cmd_batch_clear(b); /* cleared without running: nothing ran */
    assert_int_equal(multi_calls, 1);
    kvd_cmd_batch_destroy(b);
}

static void
test_unauthenticated_session_is_not_queued(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_batch *b = kvd_cmd_batch_create(fx->cmd);
    kvd_session *s = kvd_cmd_session_create(fx->cmd, "test", 0);

    kvd_cmd_session_set_password(s, "secret", 6);
    assert_int_equal(defer_line(b, s, "GET a"), KVD_ENOTSUP);
    assert_int_equal(defer_line(b, fx->sess, "GET a"), 0); /* trusted */
    kvd_cmd_batch_clear(b);
    kvd_cmd_session_destroy(s);
    kvd_cmd_batch_destroy(b);
}

static void
test_full_batch_says_busy(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_batch *b = kvd_cmd_batch_create(fx->cmd);
    int t = 0, n = 0;

    while ((t = defer_line(b, fx->sess, "SET k v")) >= 0) {
        assert_int_equal(t, n);
        n++;
        assert_true(n <= 100000);
    }
    assert_int_equal(t, KVD_EBUSY);
    assert_true(n >= 64);
    assert_int_equal(kvd_cmd_batch_count(b), (size_t)n);
    kvd_cmd_batch_run(b);
    kvd_cmd_batch_clear(b);
    assert_int_equal(defer_line(b, fx->sess, "SET k v"), 0);
    kvd_cmd_batch_clear(b);
    kvd_cmd_batch_destroy(b);
}

static void
sum_calls(void *ctx, const struct kvd_cmd_stat *s)
{
    uint64_t *c = ctx;
    if (strcmp(s->name, "get") == 0) {
        c[0] += s->calls;
    } else if (strcmp(s->name, "set") == 0) {
        c[1] += s->calls;
    }
}

static void
test_queued_commands_are_counted(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_batch *b = kvd_cmd_batch_create(fx->cmd);
    struct cmdt_rec rec = {0};
    uint64_t calls[2] = {0, 0};
    uint64_t before = kvd_store_metric_get(fx->st, KVD_M_COMMANDS);

    assert_int_equal(defer_line(b, fx->sess, "SET x 1"), 0);
    assert_int_equal(defer_line(b, fx->sess, "GET x"), 1);
    assert_int_equal(defer_line(b, fx->sess, "GET y"), 2);
    kvd_cmd_batch_run(b);
    for (size_t t = 0; t < 3; t++) {
        reply_of(b, t, &rec);
    }
    kvd_cmd_batch_clear(b);
    kvd_cmd_stats(fx->cmd, false, sum_calls, calls);
    assert_int_equal(calls[0], 2);
    assert_int_equal(calls[1], 1);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_COMMANDS),
                     before + 3);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_HITS), 1);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_MISSES), 1);
    cmdt_rec_release(&rec);
    kvd_cmd_batch_destroy(b);
}

/* A seeded mix run through the batch and, on a second store without
 * batching, through exec: the replies must be the same, byte for byte. */
static void
test_replies_equal_exec(void **state)
{
    struct cmdt_fx *fx = *state;
    struct cmdt_fx *ref;
    kvd_cmd_batch *b = kvd_cmd_batch_create(fx->cmd);
    struct cmdt_rec rec = {0};
    static char lines[300][64];
    unsigned seed = 7;

    assert_int_equal(setup_plain((void **)&ref), 0);
    for (int round = 0; round < 4; round++) {
        size_t n = 0;
        for (int i = 0; i < 300; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned k = (seed >> 8) % 12, r = (seed >> 20) % 3;
            snprintf(lines[i], sizeof(lines[i]), "%s key%u%s",
                     r == 0 ? "GET" : r == 1 ? "SET" : "DEL", k,
                     r == 1 ? (k % 4 == 0 ? " \"\"" : " value") : "");
            assert_int_equal(defer_line(b, fx->sess, lines[i]), (int)n);
            n++;
        }
        kvd_cmd_batch_run(b);
        for (size_t t = 0; t < n; t++) {
            char got[256];
            snprintf(got, sizeof(got), "%s", reply_of(b, t, &rec));
            const char *want = cmdt_run(ref, lines[t]);
            if (strcmp(got, want) != 0) {
                fail_msg("round %d '%s': batch %s, exec %s", round, lines[t],
                         got, want);
            }
        }
        kvd_cmd_batch_clear(b);
    }
    cmdt_rec_release(&rec);
    kvd_cmd_batch_destroy(b);
    cmdt_teardown((void **)&ref);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_batch_without_engine_multi,
                                        setup_plain, cmdt_teardown),
        cmocka_unit_test_setup_teardown(
            test_batch_runs_once_and_replies_in_place, setup_multi,
            cmdt_teardown),
        cmocka_unit_test_setup_teardown(test_only_simple_commands_wait,
                                        setup_multi, cmdt_teardown),
        cmocka_unit_test_setup_teardown(
            test_unauthenticated_session_is_not_queued, setup_multi,
            cmdt_teardown),
        cmocka_unit_test_setup_teardown(test_full_batch_says_busy,
                                        setup_multi, cmdt_teardown),
        cmocka_unit_test_setup_teardown(test_queued_commands_are_counted,
                                        setup_multi, cmdt_teardown),
        cmocka_unit_test_setup_teardown(test_replies_equal_exec, setup_multi,
                                        cmdt_teardown),
    };
    return cmocka_run_group_tests_name("cmd_batch", tests, cmdt_group_setup,
                                       cmdt_group_teardown);
}
