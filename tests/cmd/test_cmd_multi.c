/*
 * tests/cmd/test_cmd_multi.c -- transactions: MULTI, EXEC, DISCARD, WATCH,
 * UNWATCH through kvd_cmd_call, on a real store over the memory engine
 * (cmd_fixture.h: replies as text, "nil*" is the null array).
 *
 * Three groups:
 *   - kvd's own tests: queueing, EXECABORT, reply shapes in RESP2 and
 *     RESP3, the transaction view (later commands see earlier writes, the
 *     whole-key-space commands see them too), commits that fail, watches
 *     touched by every write path, passes, isolation against concurrent
 *     writers and MGET;
 *   - "multi.tcl": the string and keyspace cases of Redis 7.0's
 *     tests/unit/multi.tcl, re-implemented (same names, same steps, same
 *     expected replies; lists replaced by strings where Redis used a list
 *     only as some value, DEBUG SET-ACTIVE-EXPIRE and `after` replaced by
 *     the test's clock).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "cmd_fixture.h"
#include "core/cmd.h"
#include "core/store.h"

#define RUN(fx, line)          cmdt_run((fx), (line))
#define EXPECT(fx, line, want) assert_string_equal(RUN((fx), (line)), (want))

/* Another client of the same layer: a session with its own recorder, whose
 * replies are checked one at a time. */
struct other {
    kvd_session *s;
    struct cmdt_rec rec;
};

static void
other_open(struct cmdt_fx *fx, struct other *o)
{
    memset(o, 0, sizeof(*o));
    o->s = cmdt_session(fx, &o->rec, NULL, KVD_SESSION_TRUSTED);
}

static const char *
other_run(struct other *o, const char *line)
{
    cmdt_rec_stream(&o->rec);
    assert_int_equal(cmdt_call(o->s, line), 0);
    return cmdt_rec_text(&o->rec);
}

static void
other_close(struct other *o)
{
    kvd_cmd_session_destroy(o->s);
    cmdt_rec_release(&o->rec);
}

/* ------------------------------------------------------------------------ */
/* Queueing and replies                                                     */

static void
test_exec_runs_the_queue_in_order(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET a 1", "QUEUED");
    EXPECT(fx, "INCR a", "QUEUED");
    EXPECT(fx, "GET a", "QUEUED");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "GET missing", "QUEUED");
    /* Nothing ran yet. */
    struct other o;
    other_open(fx, &o);
    assert_string_equal(other_run(&o, "GET a"), "nil");
    EXPECT(fx, "EXEC", "*5 OK :2 \"2\" PONG nil");
    assert_string_equal(other_run(&o, "GET a"), "\"2\"");
    other_close(&o);
    /* Out of the transaction again. */
    EXPECT(fx, "GET a", "\"2\"");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "EXEC", "*0");
}

static void
test_controls_outside_multi(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "EXEC", "!ERR EXEC without MULTI");
    EXPECT(fx, "DISCARD", "!ERR DISCARD without MULTI");
    EXPECT(fx, "UNWATCH", "OK");
    EXPECT(fx, "MULTI extra",
           "!ERR wrong number of arguments for 'multi' "
           "command");
    EXPECT(fx, "WATCH", "!ERR wrong number of arguments for 'watch' command");
}

static void
test_runtime_errors_do_not_stop_the_others(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET s text", "QUEUED");
    EXPECT(fx, "INCR s", "QUEUED");
    EXPECT(fx, "SET t 1", "QUEUED");
    EXPECT(fx, "SET u 1 EX 0", "QUEUED"); /* a bad expiry: at run time */
    EXPECT(fx, "EXEC",
           "*4 OK !ERR value is not an integer or out of range OK "
           "!ERR invalid expire time in 'set' command");
    EXPECT(fx, "GET t", "\"1\"");
    EXPECT(fx, "EXISTS u", ":0");
}

/* A session opened with KVD_SESSION_ATOMIC_EXEC (HTTP's POST /txn): a
 * runtime error of one queued command means nothing is applied, and the
 * replies still say which command failed. Without errors it commits. */
static void
test_atomic_exec_applies_nothing_on_error(void **state)
{
    struct cmdt_fx *fx = *state;
    struct other o;

    EXPECT(fx, "SET s text", "OK");
    memset(&o, 0, sizeof(o));
    o.s = cmdt_session(fx, &o.rec, NULL,
                       KVD_SESSION_TRUSTED | KVD_SESSION_ATOMIC_EXEC);
    assert_string_equal(other_run(&o, "MULTI"), "OK");
    assert_string_equal(other_run(&o, "SET t 1"), "QUEUED");
    assert_string_equal(other_run(&o, "INCR s"), "QUEUED");
    assert_string_equal(other_run(&o, "DEL s"), "QUEUED");
    assert_string_equal(other_run(&o, "EXEC"),
                        "*3 OK !ERR value is not an integer or out of range "
                        ":1");
    EXPECT(fx, "EXISTS t", ":0");
    EXPECT(fx, "GET s", "\"text\"");

    /* The session is usable again, and a clean queue commits. */
    assert_string_equal(other_run(&o, "MULTI"), "OK");
    assert_string_equal(other_run(&o, "SET t 2"), "QUEUED");
    assert_string_equal(other_run(&o, "DEL s"), "QUEUED");
    assert_string_equal(other_run(&o, "EXEC"), "*2 OK :1");
    EXPECT(fx, "GET t", "\"2\"");
    EXPECT(fx, "EXISTS s", ":0");
    other_close(&o);
}

static void
test_queue_time_errors_abort_exec(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET q1 1", "QUEUED");
    EXPECT(fx, "GET", "!ERR wrong number of arguments for 'get' command");
    EXPECT(fx, "SET q2 2", "QUEUED");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of previous errors.");
    assert_int_equal(fx->rec.last_status, KVD_EABORT);
    EXPECT(fx, "EXISTS q1 q2", ":0");
    /* Refused inside a transaction: SAVE, COMPACT. */
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SAVE", "!ERR Command not allowed inside a transaction");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of previous errors.");
    /* A container's unknown subcommand too. */
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "CLIENT NOPE",
           "!ERR unknown subcommand 'NOPE'. Try CLIENT "
           "HELP.");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of previous errors.");
}

static void
test_reset_and_auth_around_multi(void **state)
{
    struct cmdt_params p = {.requirepass = "pw"};
    struct cmdt_fx *fx;

    cmdt_teardown(state);
    cmdt_setup_params(state, &p);
    fx = *state;
    /* MULTI itself needs authentication. */
    EXPECT(fx, "MULTI", "!NOAUTH Authentication required.");
    EXPECT(fx, "AUTH pw", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET n 1", "QUEUED");
    EXPECT(fx, "RESET", "RESET"); /* runs at once: out of MULTI, no AUTH */
    EXPECT(fx, "GET n", "!NOAUTH Authentication required.");
    EXPECT(fx, "AUTH pw", "OK");
    EXPECT(fx, "EXEC", "!ERR EXEC without MULTI");
    EXPECT(fx, "EXISTS n", ":0");
}

static void
test_quit_and_reset_run_at_once(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET r 1", "QUEUED");
    EXPECT(fx, "QUIT", "OK");
    assert_true(fx->last_flags & KVD_EXEC_CLOSE);
    EXPECT(fx, "RESET", "RESET");
    EXPECT(fx, "EXEC", "!ERR EXEC without MULTI");
    EXPECT(fx, "EXISTS r", ":0");
}

static void
test_resp3_replies_inside_exec(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET w 1", "OK");
    EXPECT(fx, "WATCH w", "OK");
    EXPECT(fx, "SET w 2", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
    /* HELLO inside MULTI: the switch reaches the encoder in its place,
     * between the replies EXEC sends. */
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "CONFIG GET save", "QUEUED");
    EXPECT(fx, "HELLO 3", "QUEUED");
    EXPECT(fx, "CONFIG GET save", "QUEUED");
    assert_int_equal(fx->rec.proto, 0);
    const char *r = RUN(fx, "EXEC");
    assert_int_equal(fx->rec.proto, 3);
    assert_memory_equal(r, "*3 *2 \"save\" \"\" %7 ", 19);
    assert_non_null(strstr(r, " %1 \"save\" \"\""));
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "LCS a b IDX", "QUEUED");
    EXPECT(fx, "EXEC", "*1 %2 \"matches\" *0 \"len\" :0");
}

static void
test_client_list_shows_the_transaction(void **state)
{
    struct cmdt_fx *fx = *state;
    struct other o;

    other_open(fx, &o);
    assert_non_null(strstr(other_run(&o, "CLIENT INFO"), " flags=N "));
    assert_non_null(strstr(other_run(&o, "CLIENT INFO"), " multi=-1 "));
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET x 1", "QUEUED");
    EXPECT(fx, "SET y 1", "QUEUED");
    const char *list = other_run(&o, "CLIENT LIST");
    assert_non_null(strstr(list, " flags=x db=0 sub=0 psub=0 ssub=0 multi=2 "));
    EXPECT(fx, "DISCARD", "OK");
    list = other_run(&o, "CLIENT LIST");
    assert_null(strstr(list, "multi=2"));
    other_close(&o);
}

/* ------------------------------------------------------------------------ */
/* The transaction view                                                     */

static void
test_later_commands_see_earlier_writes(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET old v", "OK");
    EXPECT(fx, "MULTI", "OK");
    const char *queue[] = {
        "SET k 10",
        "INCRBY k 5",
        "GET k",
        "APPEND k 0",
        "STRLEN k",
        "GETSET k x",
        "GET k",
        "DEL k",
        "GET k",
        "EXISTS k",
        "RENAME old new",
        "GET old",
        "GET new",
        "COPY new cp",
        "MGET new cp k",
        "MSETNX m1 1 new 2",
        "MSETNX m1 1 m2 2",
        "SETRANGE m1 2 z",
        "GET m1",
        "SET e v EX 100",
        "TTL e",
        "PERSIST e",
        "TTL e",
        "SETNX e w",
        "GETDEL e",
        "EXISTS e",
        "SET f 1 XX",
        "SET f 1 NX GET",
        "GETEX f PX 5000",
        "PTTL f",
        "INCRBYFLOAT f 0.5",
        "SETBIT b 7 1",
        "GETBIT b 7",
        "BITCOUNT b",
        "LCS new cp",
    };
    for (size_t i = 0; i < sizeof(queue) / sizeof(queue[0]); i++) {
        EXPECT(fx, queue[i], "QUEUED");
    }
    EXPECT(fx, "EXEC",
           "*35 OK :15 \"15\" :3 :3 \"150\" \"x\" :1 nil :0 OK nil \"v\" :1 "
           "*3 \"v\" \"v\" nil :0 :1 :3 \"1\\x00z\" OK :100 :1 :-1 :0 \"v\" "
           ":0 nil nil \"1\" :5000 \"1.5\" :0 :1 :1 \"v\"");
    /* And all of it reached the store. */
    EXPECT(fx, "MGET old new cp k m1 m2 e f b",
           "*9 nil \"v\" \"v\" nil \"1\\x00z\" \"2\" nil \"1.5\" \"\\x01\"");
    EXPECT(fx, "PTTL f", ":5000");
}

static void
test_keyspace_commands_see_the_transaction(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET before 1", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET t1 1", "QUEUED");
    EXPECT(fx, "DBSIZE", "QUEUED");
    EXPECT(fx, "KEYS t*", "QUEUED");
    EXPECT(fx, "DEL before", "QUEUED");
    EXPECT(fx, "SCAN 0 COUNT 100", "QUEUED");
    EXPECT(fx, "FLUSHDB", "QUEUED");
    EXPECT(fx, "SET t2 2", "QUEUED");
    EXPECT(fx, "DBSIZE", "QUEUED");
    EXPECT(fx, "RANDOMKEY", "QUEUED");
    EXPECT(fx, "EXEC",
           "*9 OK :2 *1 \"t1\" :1 *2 \"0\" *1 \"t1\" OK OK :1 "
           "\"t2\"");
    EXPECT(fx, "KEYS *", "*1 \"t2\"");
}

/* An engine whose batch fails when asked to: the commit's error. */
static struct kvd_engine_vtable fail_vt;
static atomic_int fail_batch_with;

static int
failing_batch(kvd_engine *e, const struct kvd_op *ops, size_t n,
              struct kvd_err *err)
{
    int rc = atomic_load(&fail_batch_with);

    if (rc != 0) {
        return kvd_err_set(err, rc, "test: batch refused");
    }
    return cmdt_memory_vt()->batch(e, ops, n, err);
}

static int
setup_failing(void **state)
{
    struct cmdt_params p = {.session_flags = KVD_SESSION_TRUSTED,
                            .vt = &fail_vt};

    fail_vt = *cmdt_memory_vt();
    fail_vt.batch = failing_batch;
    atomic_store(&fail_batch_with, 0);
    return cmdt_setup_params(state, &p);
}

static void
test_failed_commit_applies_nothing_and_says_why(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET keep 1", "OK");
    atomic_store(&fail_batch_with, KVD_EREADONLY);
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET keep 2", "QUEUED");
    EXPECT(fx, "INCR other", "QUEUED");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of: ERR the "
           "store is read-only after a failed write or sync; see "
           "the server log");
    assert_int_equal(fx->rec.last_status, KVD_EABORT);
    atomic_store(&fail_batch_with, 0);
    EXPECT(fx, "MGET keep other", "*2 \"1\" nil");
    /* A partitioned engine refusing writes that span partitions. */
    atomic_store(&fail_batch_with, KVD_ECROSSSLOT);
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET {a}x 1", "QUEUED");
    EXPECT(fx, "SET {b}y 1", "QUEUED");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of: "
           "CROSSSLOT Keys in request don't hash to the same slot "
           "(give them a common {hash tag}, e.g. {user42}:a "
           "{user42}:b)");
    assert_int_equal(fx->rec.last_status, KVD_ECROSSSLOT);
    atomic_store(&fail_batch_with, 0);
    EXPECT(fx, "EXISTS {a}x {b}y", ":0");
    /* Reads only: nothing to commit, nothing to refuse. */
    atomic_store(&fail_batch_with, KVD_EIO);
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "GET keep", "QUEUED");
    EXPECT(fx, "EXEC", "*1 \"1\"");
    /* A segment (before KEYS) that fails fails the whole transaction. */
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET seg 1", "QUEUED");
    EXPECT(fx, "KEYS *", "QUEUED");
    EXPECT(fx, "SET seg2 1", "QUEUED");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of: ERR I/O "
           "error in the storage engine; see the server log");
    atomic_store(&fail_batch_with, 0);
    EXPECT(fx, "EXISTS seg seg2", ":0");
}

/* ------------------------------------------------------------------------ */
/* WATCH                                                                    */

/* Every write path of the store, from another session, aborts EXEC. */
static void
test_every_write_path_touches_watchers(void **state)
{
    struct cmdt_fx *fx = *state;
    static const char *const writes[] = {
        "SET w x",   "SET w x NX", /* no: exists, nothing written */
        "DEL w",     "INCR w",         "MSET w 1 z 2",     "EXPIRE w 100",
        "PERSIST w", "RENAME w w2",    "COPY z w REPLACE", "APPEND w 1",
        "GETDEL w",  "SETRANGE w 0 y", "FLUSHDB",          "MSETNX w 1",
        "UNLINK w",
    };
    /* Which writes change w (starting from w = "1" each time). */
    static const bool changes[] = {
        true, false, true, true, true, true,  false, true,
        true, true,  true, true, true, false, true,
    };
    struct other o;

    other_open(fx, &o);
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        assert_string_equal(other_run(&o, "FLUSHDB"), "OK");
        assert_string_equal(other_run(&o, "MSET w 1 z 2"), "OK");
        EXPECT(fx, "WATCH w", "OK");
        other_run(&o, writes[i]);
        EXPECT(fx, "MULTI", "OK");
        EXPECT(fx, "PING", "QUEUED");
        const char *r = RUN(fx, "EXEC");
        if (strcmp(r, changes[i] ? "nil*" : "*1 PONG") != 0) {
            fail_msg("after '%s': EXEC gave %s", writes[i], r);
        }
    }
    /* Writes to other keys never do. */
    EXPECT(fx, "WATCH w", "OK");
    other_run(&o, "SET other 1");
    other_run(&o, "DEL nothing");
    other_run(&o, "MSET a 1 b 2");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
    /* Another session's transaction writing it does. */
    EXPECT(fx, "WATCH w", "OK");
    other_run(&o, "MULTI");
    other_run(&o, "SET w tx");
    assert_string_equal(other_run(&o, "EXEC"), "*1 OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
    other_close(&o);
}

/* Writes straight through the store API (what the HTTP frontend calls)
 * touch watchers too: the registry is the store's, not the layer's. */
static void
test_store_api_writes_touch_watchers(void **state)
{
    struct cmdt_fx *fx = *state;
    const struct kvd_store_api *api = kvd_store_api_table();
    struct kvd_op op = {
        .type = KVD_OP_PUT, .key = "h", .klen = 1, .val = "2", .vlen = 1};
    struct kvd_mop mop = {.type = KVD_MOP_DEL, .key = "h", .klen = 1};

    for (int i = 0; i < 4; i++) {
        EXPECT(fx, "SET h 1", "OK");
        EXPECT(fx, "WATCH h", "OK");
        switch (i) {
        case 0:
            assert_int_equal(
                api->set(fx->st, "h", 1, "x", 1, KVD_NO_EXPIRY, 0, NULL), 0);
            break;
        case 1:
            assert_int_equal(api->del(fx->st, "h", 1), 0);
            break;
        case 2:
            assert_int_equal(api->batch(fx->st, &op, 1, NULL), 0);
            break;
        default:
            assert_int_equal(kvd_store_multi(fx->st, &mop, 1), 0);
            assert_int_equal(mop.status, 0);
            break;
        }
        EXPECT(fx, "MULTI", "OK");
        EXPECT(fx, "PING", "QUEUED");
        EXPECT(fx, "EXEC", "nil*");
    }
    /* A refused NX set and a delete of nothing write nothing. */
    EXPECT(fx, "SET h 1", "OK");
    EXPECT(fx, "WATCH h", "OK");
    assert_int_equal(
        api->set(fx->st, "h", 1, "x", 1, KVD_NO_EXPIRY, KVD_SET_NX, NULL),
        KVD_EEXIST);
    assert_int_equal(api->del(fx->st, "other", 5), KVD_ENOTFOUND);
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* A transaction's own writes never abort it (EXEC checks first). */
static void
test_own_writes_do_not_abort(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "WATCH own", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET own 1", "QUEUED");
    EXPECT(fx, "UNWATCH", "QUEUED");
    EXPECT(fx, "EXEC", "*2 OK OK");
    EXPECT(fx, "GET own", "\"1\"");
}

/* Passes: a session's queued commands are replied before MULTI's OK, and
 * a write that waited in a pass touches watchers when it runs. */
static struct kvd_engine_vtable multi_vt;

static int
setup_pass(void **state)
{
    struct cmdt_params p = {.session_flags = KVD_SESSION_TRUSTED,
                            .vt = &multi_vt};

    multi_vt = *cmdt_memory_vt();
    multi_vt.struct_size = sizeof(multi_vt);
    multi_vt.multi = cmdt_loop_multi;
    return cmdt_setup_params(state, &p);
}

static void
test_transactions_and_passes(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_cmd_pass *p = kvd_cmd_pass_create(fx->cmd);
    struct cmdt_rec r1 = {0}, r2 = {0};
    kvd_session *s1 = cmdt_session(fx, &r1, p, KVD_SESSION_TRUSTED);
    kvd_session *s2 = cmdt_session(fx, &r2, p, KVD_SESSION_TRUSTED);

    assert_non_null(p);
    assert_int_equal(cmdt_call(s1, "SET p 1"), KVD_EXEC_PENDING);
    /* WATCH cannot wait: s1's SET is replied first. */
    assert_int_equal(cmdt_call(s1, "WATCH q"), 0);
    assert_string_equal(cmdt_rec_text(&r1), "OK|OK");
    assert_int_equal(cmdt_call(s1, "MULTI"), 0);
    /* Inside MULTI nothing waits in the pass: QUEUED at once. */
    assert_int_equal(cmdt_call(s1, "GET p"), 0);
    assert_int_equal(cmdt_call(s2, "SET q 1"), KVD_EXEC_PENDING);
    assert_int_equal(cmdt_call(s1, "SET p 2"), 0);
    /* Commands of different sessions in a pass are concurrent: EXEC may
     * come before s2's waiting SET, and here it does. */
    assert_int_equal(cmdt_call(s1, "EXEC"), 0);
    assert_string_equal(cmdt_rec_text(&r1),
                        "OK|OK|OK|QUEUED|QUEUED|*2 \"1\" OK");
    assert_string_equal(cmdt_rec_text(&r2), "");
    kvd_cmd_pass_end(p);
    assert_string_equal(cmdt_rec_text(&r2), "OK");
    /* A write that waited in a pass touches watchers when it runs. */
    cmdt_rec_stream(&r1);
    assert_int_equal(cmdt_call(s1, "WATCH q"), 0);
    assert_int_equal(cmdt_call(s2, "SET q 2"), KVD_EXEC_PENDING);
    kvd_cmd_pass_end(p);
    assert_int_equal(cmdt_call(s1, "MULTI"), 0);
    assert_int_equal(cmdt_call(s1, "PING"), 0);
    assert_int_equal(cmdt_call(s1, "EXEC"), 0);
    assert_string_equal(cmdt_rec_text(&r1), "OK|OK|QUEUED|nil*");
    kvd_cmd_session_destroy(s1);
    kvd_cmd_session_destroy(s2);
    kvd_cmd_pass_destroy(p);
    cmdt_rec_release(&r1);
    cmdt_rec_release(&r2);
}

/* A session that ends watching keys leaves nothing registered. */
static void
test_closing_a_watching_session(void **state)
{
    struct cmdt_fx *fx = *state;
    struct other o;

    other_open(fx, &o);
    assert_string_equal(other_run(&o, "WATCH a b c"), "OK");
    assert_string_equal(other_run(&o, "MULTI"), "OK");
    assert_string_equal(other_run(&o, "SET a 1"), "QUEUED");
    other_close(&o); /* in MULTI, watching */
    EXPECT(fx, "SET a 1", "OK");
    EXPECT(fx, "WATCH a", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "GET a", "QUEUED");
    EXPECT(fx, "EXEC", "*1 \"1\"");
}

/* ------------------------------------------------------------------------ */
/* Isolation: threads                                                       */

#define ISO_THREADS 4
#define ISO_ROUNDS  2000

struct iso_arg {
    struct cmdt_fx *fx;
    int id;
    atomic_bool *stop;
    int torn;
};

/* Call one command given as words (thread-safe: no shared buffer). */
static const char *
iso_call(kvd_session *s, struct cmdt_rec *rec, size_t argc,
         const char *const *argv)
{
    size_t argl[8];

    for (size_t i = 0; i < argc; i++) {
        argl[i] = strlen(argv[i]);
    }
    cmdt_rec_stream(rec);
    kvd_cmd_call(s, argc, argv, argl);
    return cmdt_rec_text(rec);
}

/* Writers: MULTI INCRBY a 1 DECRBY b 1 EXEC, so a + b never changes. */
static void *
iso_writer(void *p)
{
    struct iso_arg *a = p;
    struct cmdt_rec rec = {0};
    kvd_session *s = cmdt_session(a->fx, &rec, NULL, KVD_SESSION_TRUSTED);
    static const char *const m[] = {"MULTI"};
    static const char *const inc[] = {"INCRBY", "a", "1"};
    static const char *const dec[] = {"DECRBY", "b", "1"};
    static const char *const ex[] = {"EXEC"};

    for (int i = 0; i < ISO_ROUNDS; i++) {
        iso_call(s, &rec, 1, m);
        iso_call(s, &rec, 3, inc);
        iso_call(s, &rec, 3, dec);
        if (iso_call(s, &rec, 1, ex)[0] != '*') {
            a->torn++;
        }
    }
    kvd_cmd_session_destroy(s);
    cmdt_rec_release(&rec);
    return NULL;
}

static long long
iso_sum(const char *r)
{
    long long x = 0, y = 0;
    /* "*2 \"x\" \"y\"" */
    if (sscanf(r, "*2 \"%lld\" \"%lld\"", &x, &y) != 2) {
        return -1;
    }
    return x + y;
}

static void *
iso_reader(void *p)
{
    struct iso_arg *a = p;
    struct cmdt_rec rec = {0};
    kvd_session *s = cmdt_session(a->fx, &rec, NULL, KVD_SESSION_TRUSTED);
    static const char *const mget[] = {"MGET", "a", "b"};
    static const char *const m[] = {"MULTI"};
    static const char *const ga[] = {"GET", "a"};
    static const char *const gb[] = {"GET", "b"};
    static const char *const ex[] = {"EXEC"};

    while (!atomic_load(a->stop)) {
        /* MGET takes the stripes of its keys: a transaction is all in or
         * all out. So is a reading transaction. */
        if (iso_sum(iso_call(s, &rec, 3, mget)) != 0) {
            a->torn++;
        }
        iso_call(s, &rec, 1, m);
        iso_call(s, &rec, 2, ga);
        iso_call(s, &rec, 2, gb);
        if (iso_sum(iso_call(s, &rec, 1, ex)) != 0) {
            a->torn++;
        }
    }
    kvd_cmd_session_destroy(s);
    cmdt_rec_release(&rec);
    return NULL;
}

static void
test_transactions_are_isolated(void **state)
{
    struct cmdt_fx *fx = *state;
    pthread_t w[ISO_THREADS], r;
    struct iso_arg wa[ISO_THREADS], ra;
    atomic_bool stop;
    char want[64];

    atomic_init(&stop, false);
    EXPECT(fx, "MSET a 0 b 0", "OK");
    ra = (struct iso_arg){.fx = fx, .stop = &stop};
    assert_int_equal(pthread_create(&r, NULL, iso_reader, &ra), 0);
    for (int i = 0; i < ISO_THREADS; i++) {
        wa[i] = (struct iso_arg){.fx = fx, .id = i, .stop = &stop};
        assert_int_equal(pthread_create(&w[i], NULL, iso_writer, &wa[i]), 0);
    }
    for (int i = 0; i < ISO_THREADS; i++) {
        pthread_join(w[i], NULL);
        assert_int_equal(wa[i].torn, 0);
    }
    atomic_store(&stop, true);
    pthread_join(r, NULL);
    assert_int_equal(ra.torn, 0);
    snprintf(want, sizeof(want), "*2 \"%d\" \"-%d\"", ISO_THREADS * ISO_ROUNDS,
             ISO_THREADS * ISO_ROUNDS);
    EXPECT(fx, "MGET a b", want);
}

/* ------------------------------------------------------------------------ */
/* multi.tcl (Redis 7.0.15): the string and keyspace cases                 */

/* MULTI / EXEC basics (a string instead of the list) */
static void
tcl_multi_exec_basics(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL mylist", ":0");
    EXPECT(fx, "SET mylist abc", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "GET mylist", "QUEUED");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*2 \"abc\" PONG");
}

/* DISCARD */
static void
tcl_discard(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET mylist abc", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "DEL mylist", "QUEUED");
    EXPECT(fx, "DISCARD", "OK");
    EXPECT(fx, "GET mylist", "\"abc\"");
}

/* Nested MULTI are not allowed */
static void
tcl_nested_multi(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "MULTI", "!ERR MULTI calls can not be nested");
    EXPECT(fx, "EXEC", "*0");
}

/* WATCH inside MULTI is not allowed */
static void
tcl_watch_inside_multi(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "WATCH x", "!ERR WATCH inside MULTI is not allowed");
    EXPECT(fx, "EXEC", "*0");
}

/* EXEC fails if there are errors while queueing commands #1 */
static void
tcl_exec_fails_on_queueing_errors(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL foo1{t} foo2{t}", ":0");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET foo1{t} bar1", "QUEUED");
    EXPECT(fx, "non-existing-command",
           "!ERR unknown command 'non-existing-command', with args beginning "
           "with: ");
    EXPECT(fx, "SET foo2{t} bar2", "QUEUED");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of previous errors.");
    EXPECT(fx, "EXISTS foo1{t}", ":0");
    EXPECT(fx, "EXISTS foo2{t}", ":0");
}

/* If EXEC aborts, the client MULTI state is cleared */
static void
tcl_aborted_exec_clears_multi(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET foo1{t} bar1", "QUEUED");
    RUN(fx, "non-existing-command");
    EXPECT(fx, "SET foo2{t} bar2", "QUEUED");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of previous errors.");
    EXPECT(fx, "PING", "PONG");
}

/* EXEC works on WATCHed key not modified */
static void
tcl_watched_not_modified(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "WATCH x{t} y{t} z{t}", "OK");
    EXPECT(fx, "WATCH k{t}", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* EXEC fail on WATCHed key modified (1 key of 1 watched) */
static void
tcl_watched_modified_1_of_1(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET x 30", "OK");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "SET x 40", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
}

/* EXEC fail on WATCHed key modified (1 key of 5 watched) */
static void
tcl_watched_modified_1_of_5(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET x{t} 30", "OK");
    EXPECT(fx, "WATCH a{t} b{t} x{t} k{t} z{t}", "OK");
    EXPECT(fx, "SET x{t} 40", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
}

/* EXEC fail on lazy expired WATCHed key */
static void
tcl_lazy_expired_watched(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL key", ":0");
    EXPECT(fx, "SET key 1 PX 100", "OK");
    EXPECT(fx, "WATCH key", "OK");
    cmdt_advance(fx, 101);
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "INCR key", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
}

/* WATCH stale keys should not fail EXEC */
static void
tcl_watch_stale_key(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL x", ":0");
    EXPECT(fx, "SET x foo PX 1", "OK");
    cmdt_advance(fx, 2);
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* Delete WATCHed stale keys should not fail EXEC */
static void
tcl_delete_watched_stale_key(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL x", ":0");
    EXPECT(fx, "SET x foo PX 1", "OK");
    cmdt_advance(fx, 2);
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "EXISTS x", ":0");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* FLUSHDB while watching stale keys should not fail EXEC */
static void
tcl_flushdb_watching_stale_key(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL x", ":0");
    EXPECT(fx, "SET x foo PX 1", "OK");
    cmdt_advance(fx, 2);
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "FLUSHDB", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* After successful EXEC key is no longer watched */
static void
tcl_after_exec_unwatched(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET x 30", "OK");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
    EXPECT(fx, "SET x 40", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* After failed EXEC key is no longer watched */
static void
tcl_after_failed_exec_unwatched(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET x 30", "OK");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "SET x 40", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
    EXPECT(fx, "SET x 40", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* It is possible to UNWATCH */
static void
tcl_unwatch(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET x 30", "OK");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "SET x 40", "OK");
    EXPECT(fx, "UNWATCH", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* UNWATCH when there is nothing watched works as expected */
static void
tcl_unwatch_nothing(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "UNWATCH", "OK");
}

/* FLUSHALL is able to touch the watched keys */
static void
tcl_flushall_touches(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET x 30", "OK");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "FLUSHALL", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
}

/* FLUSHALL does not touch non affected keys */
static void
tcl_flushall_spares_absent(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL x", ":0");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "FLUSHALL", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* FLUSHDB is able to touch the watched keys */
static void
tcl_flushdb_touches(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET x 30", "OK");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "FLUSHDB", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
}

/* FLUSHDB does not touch non affected keys */
static void
tcl_flushdb_spares_absent(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL x", ":0");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "FLUSHDB", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*1 PONG");
}

/* WATCH will consider touched keys target of EXPIRE */
static void
tcl_expire_touches(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "DEL x", ":0");
    EXPECT(fx, "SET x foo", "OK");
    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "EXPIRE x 10", ":1");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
}

/* WATCH will consider touched expired keys */
static void
tcl_expired_keys_touch(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "FLUSHALL", "OK");
    EXPECT(fx, "DEL x", ":0");
    EXPECT(fx, "SET x foo", "OK");
    EXPECT(fx, "EXPIRE x 1", ":1");
    EXPECT(fx, "WATCH x", "OK");
    cmdt_advance(fx, 1000); /* the key expires */
    EXPECT(fx, "DBSIZE", ":0");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "nil*");
}

/* DISCARD should clear the WATCH dirty flag on the client */
static void
tcl_discard_clears_dirty(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "SET x 10", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "DISCARD", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "INCR x", "QUEUED");
    EXPECT(fx, "EXEC", "*1 :11");
}

/* DISCARD should UNWATCH all the keys */
static void
tcl_discard_unwatches(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "WATCH x", "OK");
    EXPECT(fx, "SET x 10", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "DISCARD", "OK");
    EXPECT(fx, "SET x 10", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "INCR x", "QUEUED");
    EXPECT(fx, "EXEC", "*1 :11");
}

/* MULTI where commands alter argc/argv: SPOP has no string counterpart;
 * GETDEL alters the key space the same way (read and delete). */
static void
tcl_commands_that_read_and_delete(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET myset a", "OK");
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "GETDEL myset", "QUEUED");
    EXPECT(fx, "EXEC", "*1 \"a\"");
    EXPECT(fx, "EXISTS myset", ":0");
}

/* EXEC with only read commands should not be rejected when OOM (kvd: a
 * transaction of reads writes nothing, so a store refusing writes still
 * runs it) */
static void
tcl_read_only_exec_when_writes_fail(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET x value", "OK");
    atomic_store(&fail_batch_with, KVD_ENOSPC);
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "GET x", "QUEUED");
    EXPECT(fx, "PING", "QUEUED");
    EXPECT(fx, "EXEC", "*2 \"value\" PONG");
    atomic_store(&fail_batch_with, 0);
}

/* EXEC with at least one use-memory command should fail (kvd: a write the
 * store refuses at commit aborts the whole transaction) */
static void
tcl_write_exec_when_writes_fail(void **state)
{
    struct cmdt_fx *fx = *state;

    atomic_store(&fail_batch_with, KVD_ENOMEM);
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "SET x 1", "QUEUED");
    EXPECT(fx, "GET x", "QUEUED");
    EXPECT(fx, "EXEC",
           "!EXECABORT Transaction discarded because of: OOM "
           "out of memory while executing the command");
    atomic_store(&fail_batch_with, 0);
    EXPECT(fx, "EXISTS x", ":0");
}

#define T(f)  cmocka_unit_test_setup_teardown(f, cmdt_setup, cmdt_teardown)
#define TF(f) cmocka_unit_test_setup_teardown(f, setup_failing, cmdt_teardown)

int
main(void)
{
    const struct CMUnitTest own[] = {
        T(test_exec_runs_the_queue_in_order),
        T(test_controls_outside_multi),
        T(test_runtime_errors_do_not_stop_the_others),
        T(test_atomic_exec_applies_nothing_on_error),
        T(test_queue_time_errors_abort_exec),
        T(test_reset_and_auth_around_multi),
        T(test_quit_and_reset_run_at_once),
        T(test_resp3_replies_inside_exec),
        T(test_client_list_shows_the_transaction),
        T(test_later_commands_see_earlier_writes),
        T(test_keyspace_commands_see_the_transaction),
        TF(test_failed_commit_applies_nothing_and_says_why),
        T(test_every_write_path_touches_watchers),
        T(test_store_api_writes_touch_watchers),
        T(test_own_writes_do_not_abort),
        cmocka_unit_test_setup_teardown(test_transactions_and_passes,
                                        setup_pass, cmdt_teardown),
        T(test_closing_a_watching_session),
        T(test_transactions_are_isolated),
    };
    /* tests/unit/multi.tcl, in its order */
    const struct CMUnitTest tcl[] = {
        T(tcl_multi_exec_basics),
        T(tcl_discard),
        T(tcl_nested_multi),
        T(tcl_commands_that_read_and_delete),
        T(tcl_watch_inside_multi),
        T(tcl_exec_fails_on_queueing_errors),
        T(tcl_aborted_exec_clears_multi),
        T(tcl_watched_not_modified),
        T(tcl_watched_modified_1_of_1),
        T(tcl_watched_modified_1_of_5),
        T(tcl_lazy_expired_watched),
        T(tcl_watch_stale_key),
        T(tcl_delete_watched_stale_key),
        T(tcl_flushdb_watching_stale_key),
        T(tcl_after_exec_unwatched),
        T(tcl_after_failed_exec_unwatched),
        T(tcl_unwatch),
        T(tcl_unwatch_nothing),
        T(tcl_flushall_touches),
        T(tcl_flushall_spares_absent),
        T(tcl_flushdb_touches),
        T(tcl_flushdb_spares_absent),
        T(tcl_expire_touches),
        T(tcl_expired_keys_touch),
        T(tcl_discard_clears_dirty),
        T(tcl_discard_unwatches),
        TF(tcl_read_only_exec_when_writes_fail),
        TF(tcl_write_exec_when_writes_fail),
    };
    int failed = cmocka_run_group_tests_name("cmd_multi", own, cmdt_group_setup,
                                             cmdt_group_teardown);
    failed += cmocka_run_group_tests_name(
        "redis_multi_tcl", tcl, cmdt_group_setup, cmdt_group_teardown);
    return failed;
}
