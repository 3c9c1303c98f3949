/*
 * tests/cmd/test_cmd_pass.c -- deferred execution: passes
 * (kvd_cmd_pass_create, kvd_cmd_call answering PENDING, kvd_cmd_pass_end).
 *
 * The engine is the memory engine with a multi method added by the test
 * (cmdt_loop_multi: the memory engine's get/put/del, counted), so
 * the command layer makes passes; the plain memory engine (no multi) must
 * not. Sessions record their replies in stream mode ("OK|\"1\"|nil"), so
 * the order of one session's replies is visible whenever they arrive. The
 * central check: every deferred command replies exactly what its direct
 * form replies on a store without passes.
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

static int
setup_multi(void **state)
{
    struct cmdt_params p = {.session_flags = KVD_SESSION_TRUSTED,
                            .max_value_bytes = 64,
                            .vt = &multi_vt};

    multi_vt = *cmdt_memory_vt();
    multi_vt.struct_size = sizeof(multi_vt);
    multi_vt.multi = cmdt_loop_multi;
    cmdt_multi_calls = 0;
    cmdt_multi_ops = 0;
    return cmdt_setup_params(state, &p);
}

static int
setup_plain(void **state)
{
    struct cmdt_params p = {.session_flags = KVD_SESSION_TRUSTED,
                            .max_value_bytes = 64};
    return cmdt_setup_params(state, &p);
}

#define PENDING KVD_EXEC_PENDING

static void
test_no_pass_without_engine_multi(void **state)
{
    struct cmdt_fx *fx = *state;

    assert_null(kvd_cmd_pass_create(fx->cmd));
    /* The first edition's batches are gone for every engine. */
    assert_null(kvd_cmd_api_table()->batch_create(fx->cmd));
}

static void
test_pass_runs_once_and_replies_in_order(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec r1 = {0}, r2 = {0};
    kvd_session *s1, *s2;

    assert_non_null(p);
    s1 = cmdt_session(fx, &r1, p, KVD_SESSION_TRUSTED);
    s2 = cmdt_session(fx, &r2, p, KVD_SESSION_TRUSTED);
    assert_string_equal(cmdt_run(fx, "SET old v0"), "OK");
    assert_int_equal(cmdt_call(s1, "SET a 1"), PENDING);
    assert_int_equal(cmdt_call(s1, "GET a"), PENDING);
    assert_int_equal(cmdt_call(s2, "get old"), PENDING);
    assert_int_equal(cmdt_call(s2, "DEL old"), PENDING);
    assert_int_equal(cmdt_call(s2, "UNLINK nothing"), PENDING);
    assert_int_equal(cmdt_call(s1, "GET nothing"), PENDING);
    assert_int_equal(cmdt_call(s1, "SET empty \"\""), PENDING);
    assert_int_equal(kvd_cmd_pass_pending(p), 7);
    assert_int_equal(cmdt_multi_calls, 0); /* nothing ran yet */
    assert_string_equal(cmdt_rec_text(&r1), "");
    assert_int_equal(kvd_cmd_pass_end(p), 7);
    assert_int_equal(cmdt_multi_calls, 1);
    assert_int_equal(cmdt_multi_ops, 7);
    assert_string_equal(cmdt_rec_text(&r1), "OK|\"1\"|nil|OK");
    assert_string_equal(cmdt_rec_text(&r2), "\"v0\"|:1|:0");
    assert_int_equal(kvd_cmd_pass_pending(p), 0);
    assert_int_equal(kvd_cmd_pass_end(p), 0); /* nothing left */
    assert_string_equal(cmdt_run(fx, "GET a"), "\"1\"");
    assert_string_equal(cmdt_run(fx, "EXISTS old"), ":0");
    assert_string_equal(cmdt_run(fx, "STRLEN empty"), ":0");
    assert_string_equal(cmdt_run(fx, "EXISTS empty"), ":1");
    /* the pass is reused */
    cmdt_rec_stream(&r2);
    assert_int_equal(cmdt_call(s2, "GET a"), PENDING);
    assert_int_equal(kvd_cmd_pass_end(p), 1);
    assert_string_equal(cmdt_rec_text(&r2), "\"1\"");
    assert_int_equal(cmdt_multi_calls, 2);
    kvd_cmd_session_destroy(s1);
    kvd_cmd_session_destroy(s2);
    kvd_cmd_pass_destroy(p);
    cmdt_rec_release(&r1);
    cmdt_rec_release(&r2);
}

/* A command that cannot wait runs the pass first: the replies of every
 * session it holds are written then, each through its own encoder. */
static void
test_command_that_cannot_wait_runs_the_pass_first(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec r1 = {0}, r2 = {0};
    kvd_session *s1 = cmdt_session(fx, &r1, p, KVD_SESSION_TRUSTED);
    kvd_session *s2 = cmdt_session(fx, &r2, p, KVD_SESSION_TRUSTED);

    assert_int_equal(cmdt_call(s1, "SET n 1"), PENDING);
    assert_int_equal(cmdt_call(s2, "GET n"), PENDING);
    assert_int_equal(cmdt_call(s1, "GET n"), PENDING);
    /* INCR cannot wait: s1's two replies, and s2's, come first. */
    assert_int_equal(cmdt_call(s1, "INCR n"), 0);
    assert_string_equal(cmdt_rec_text(&r1), "OK|\"1\"|:2");
    assert_string_equal(cmdt_rec_text(&r2), "\"1\"");
    assert_int_equal(kvd_cmd_pass_pending(p), 0);
    /* Options make SET an invocation that cannot wait, errors too (they
     * are written at once, after what the session was owed). */
    assert_int_equal(cmdt_call(s2, "SET n 5"), PENDING);
    assert_int_equal(cmdt_call(s2, "SET n 6 XX"), 0);
    assert_int_equal(cmdt_call(s2, "GET \"\""), 0);
    assert_int_equal(cmdt_call(s2, "GET a b"), 0);
    assert_int_equal(cmdt_call(s2, "NOSUCH"), 0);
    assert_int_equal(cmdt_call(s2, "SET k "
                                   "01234567890123456789012345678901234567890"
                                   "1234567890123456789012345"),
                     0); /* over max_value_bytes (64) */
    assert_string_equal(
        cmdt_rec_text(&r2),
        "\"1\"|OK|OK|!ERR invalid argument: empty keys are not allowed|"
        "!ERR wrong number of arguments for 'get' command|"
        "!ERR unknown command 'NOSUCH', with args beginning with: |"
        "!ERR key or value too large for this server (see max_key_bytes "
        "and max_value_bytes)");
    assert_string_equal(cmdt_run(fx, "GET n"), "\"6\"");
    /* PING, MGET, DEL of two keys: not one engine operation each. */
    cmdt_rec_stream(&r1);
    assert_int_equal(cmdt_call(s1, "PING"), 0);
    assert_int_equal(cmdt_call(s1, "MGET n"), 0);
    assert_int_equal(cmdt_call(s1, "DEL x y"), 0);
    assert_string_equal(cmdt_rec_text(&r1), "PONG|*1 \"6\"|:0");
    kvd_cmd_session_destroy(s1);
    kvd_cmd_session_destroy(s2);
    kvd_cmd_pass_destroy(p);
    cmdt_rec_release(&r1);
    cmdt_rec_release(&r2);
}

static void
test_unauthenticated_session_is_not_queued(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec r = {0}, t = {0};
    kvd_session *s = cmdt_session(fx, &r, p, 0);
    kvd_session *trusted = cmdt_session(fx, &t, p, KVD_SESSION_TRUSTED);

    kvd_cmd_session_set_password(s, "secret", 6);
    assert_int_equal(cmdt_call(s, "GET a"), 0);
    assert_string_equal(cmdt_rec_text(&r), "!NOAUTH Authentication required.");
    assert_int_equal(r.last_status, KVD_ENOAUTH);
    assert_int_equal(cmdt_call(trusted, "GET a"), PENDING);
    assert_int_equal(cmdt_call(s, "AUTH secret"), 0);
    assert_int_equal(cmdt_call(s, "GET a"), PENDING);
    kvd_cmd_pass_end(p);
    assert_string_equal(cmdt_rec_text(&r),
                        "!NOAUTH Authentication required.|OK|nil");
    assert_string_equal(cmdt_rec_text(&t), "nil");
    kvd_cmd_session_destroy(s);
    kvd_cmd_session_destroy(trusted);
    kvd_cmd_pass_destroy(p);
    cmdt_rec_release(&r);
    cmdt_rec_release(&t);
}

static void
test_full_pass_runs_itself(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec r = {0};
    kvd_session *s = cmdt_session(fx, &r, p, KVD_SESSION_TRUSTED);
    size_t n = 0;

    while (cmdt_multi_calls == 0) {
        assert_int_equal(cmdt_call(s, "SET k v"), PENDING);
        n++;
        assert_true(n <= 100000);
    }
    /* It ran before taking the command that did not fit. */
    assert_true(n >= 64);
    assert_int_equal(kvd_cmd_pass_pending(p), 1);
    assert_int_equal(cmdt_multi_ops, n - 1);
    assert_int_equal(kvd_cmd_pass_end(p), 1);
    assert_int_equal(r.replies, n); /* every reply is there */
    kvd_cmd_session_destroy(s);
    kvd_cmd_pass_destroy(p);
    cmdt_rec_release(&r);
}

/* A session closed with commands queued: they still run, and nothing is
 * written through its encoder any more. */
static void
test_destroyed_session_loses_only_its_replies(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec r1 = {0}, r2 = {0};
    kvd_session *s1 = cmdt_session(fx, &r1, p, KVD_SESSION_TRUSTED);
    kvd_session *s2 = cmdt_session(fx, &r2, p, KVD_SESSION_TRUSTED);

    assert_int_equal(cmdt_call(s1, "SET gone 1"), PENDING);
    assert_int_equal(cmdt_call(s2, "GET gone"), PENDING);
    assert_int_equal(cmdt_call(s1, "GET gone"), PENDING);
    kvd_cmd_session_destroy(s1);
    assert_int_equal(kvd_cmd_pass_pending(p), 3);
    assert_int_equal(kvd_cmd_pass_end(p), 1);
    assert_string_equal(cmdt_rec_text(&r1), "");
    assert_string_equal(cmdt_rec_text(&r2), "\"1\"");
    assert_string_equal(cmdt_run(fx, "GET gone"), "\"1\"");
    /* pass_destroy runs what is left, replies to who is still there. */
    assert_int_equal(cmdt_call(s2, "DEL gone"), PENDING);
    kvd_cmd_pass_destroy(p);
    assert_string_equal(cmdt_rec_text(&r2), "\"1\"|:1");
    kvd_cmd_session_destroy(s2);
    cmdt_rec_release(&r1);
    cmdt_rec_release(&r2);
}

/* The first edition's exec on a session of a pass: the session's queued
 * replies go first (through its own encoder), then exec's, through the
 * caller's. */
static void
test_first_edition_exec_on_a_pass_session(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec r = {0}, once = {0};
    kvd_session *s = cmdt_session(fx, &r, p, KVD_SESSION_TRUSTED);
    const char *argv[] = {"GET", "e"};
    size_t argl[] = {3, 1};

    assert_int_equal(cmdt_call(s, "SET e 1"), PENDING);
    cmdt_rec_reset(&once);
    assert_int_equal(kvd_cmd_exec(s, 2, argv, argl, &cmdt_reply_ops, &once), 0);
    assert_string_equal(cmdt_rec_text(&r), "OK");
    assert_string_equal(once.buf, "\"1\"");
    assert_int_equal(once.replies, 1);
    /* and the session's own encoder is back */
    assert_int_equal(cmdt_call(s, "GET e"), PENDING);
    kvd_cmd_pass_end(p);
    assert_string_equal(cmdt_rec_text(&r), "OK|\"1\"");
    kvd_cmd_session_destroy(s);
    kvd_cmd_pass_destroy(p);
    cmdt_rec_release(&r);
    cmdt_rec_release(&once);
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
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec r = {0};
    kvd_session *s = cmdt_session(fx, &r, p, KVD_SESSION_TRUSTED);
    uint64_t calls[2] = {0, 0};
    uint64_t before = kvd_store_metric_get(fx->st, KVD_M_COMMANDS);

    assert_int_equal(cmdt_call(s, "SET x 1"), PENDING);
    assert_int_equal(cmdt_call(s, "GET x"), PENDING);
    assert_int_equal(cmdt_call(s, "GET y"), PENDING);
    kvd_cmd_pass_end(p);
    kvd_cmd_stats(fx->cmd, false, sum_calls, calls);
    assert_int_equal(calls[0], 2);
    assert_int_equal(calls[1], 1);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_COMMANDS), before + 3);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_HITS), 1);
    assert_int_equal(kvd_store_metric_get(fx->st, KVD_M_MISSES), 1);
    kvd_cmd_session_destroy(s);
    kvd_cmd_pass_destroy(p);
    cmdt_rec_release(&r);
}

/*
 * A seeded mix run through a pass and, on a second store without passes,
 * one by one through the direct form: every reply must be the same, byte
 * for byte (the recorder's text is an exact image of the reply calls).
 * Several sessions share the pass, each with its own keys, so ordering
 * across sessions cannot change a reply.
 */
#define MIX_SESSIONS 3
#define MIX_LINES    300

static void
test_deferred_replies_equal_direct_ones(void **state)
{
    struct cmdt_fx *fx = *state;
    struct cmdt_fx *ref;
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec rec[MIX_SESSIONS] = {0};
    kvd_session *s[MIX_SESSIONS];
    static char lines[MIX_LINES][64];
    static char want[MIX_SESSIONS][MIX_LINES * 16];
    unsigned seed = 7;

    assert_int_equal(setup_plain((void **)&ref), 0);
    for (int i = 0; i < MIX_SESSIONS; i++) {
        s[i] = cmdt_session(fx, &rec[i], p, KVD_SESSION_TRUSTED);
    }
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < MIX_SESSIONS; i++) {
            cmdt_rec_stream(&rec[i]);
            want[i][0] = '\0';
        }
        for (int i = 0; i < MIX_LINES; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned k = (seed >> 8) % 12, r = (seed >> 20) % 4;
            unsigned who = (seed >> 4) % MIX_SESSIONS;
            snprintf(lines[i], sizeof(lines[i]), "%s s%u:key%u%s",
                     r == 0   ? "GET"
                     : r == 1 ? "SET"
                     : r == 2 ? "DEL"
                              : "INCR",
                     who, k, r == 1 ? (k % 4 == 0 ? " \"\"" : " value") : "");
            int rc = cmdt_call(s[who], lines[i]);
            assert_true(rc == 0 || rc == PENDING);
            const char *direct = cmdt_run(ref, lines[i]);
            size_t len = strlen(want[who]);
            snprintf(want[who] + len, sizeof(want[who]) - len, "%s%s",
                     len > 0 ? "|" : "", direct);
        }
        kvd_cmd_pass_end(p);
        for (int i = 0; i < MIX_SESSIONS; i++) {
            if (strcmp(cmdt_rec_text(&rec[i]), want[i]) != 0) {
                fail_msg("round %d session %d:\npass:   %s\ndirect: %s", round,
                         i, cmdt_rec_text(&rec[i]), want[i]);
            }
        }
    }
    assert_true(cmdt_multi_calls > 4); /* the INCRs ran passes early */
    for (int i = 0; i < MIX_SESSIONS; i++) {
        kvd_cmd_session_destroy(s[i]);
        cmdt_rec_release(&rec[i]);
    }
    kvd_cmd_pass_destroy(p);
    cmdt_teardown((void **)&ref);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_pass_without_engine_multi,
                                        setup_plain, cmdt_teardown),
        cmocka_unit_test_setup_teardown(
            test_pass_runs_once_and_replies_in_order, setup_multi,
            cmdt_teardown),
        cmocka_unit_test_setup_teardown(
            test_command_that_cannot_wait_runs_the_pass_first, setup_multi,
            cmdt_teardown),
        cmocka_unit_test_setup_teardown(
            test_unauthenticated_session_is_not_queued, setup_multi,
            cmdt_teardown),
        cmocka_unit_test_setup_teardown(test_full_pass_runs_itself, setup_multi,
                                        cmdt_teardown),
        cmocka_unit_test_setup_teardown(
            test_destroyed_session_loses_only_its_replies, setup_multi,
            cmdt_teardown),
        cmocka_unit_test_setup_teardown(
            test_first_edition_exec_on_a_pass_session, setup_multi,
            cmdt_teardown),
        cmocka_unit_test_setup_teardown(test_queued_commands_are_counted,
                                        setup_multi, cmdt_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_replies_equal_direct_ones,
                                        setup_multi, cmdt_teardown),
    };
    return cmocka_run_group_tests_name("cmd_pass", tests, cmdt_group_setup,
                                       cmdt_group_teardown);
}
