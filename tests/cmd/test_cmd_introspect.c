/*
 * tests/cmd/test_cmd_introspect.c -- what kvd says about itself: INFO's
 * tcp_port and Replication section, ROLE, CONFIG GET of the parameters
 * that follow the host's configuration (appendfsync, port, maxclients,
 * save), and CLIENT LIST / CLIENT INFO in Redis's field order.
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

/* The recorder writes a bulk string's CR LF escaped. */
#define CRLF                   "\\x0d\\x0a"
#define RUN(fx, line)          cmdt_run((fx), (line))
#define EXPECT(fx, line, want) assert_string_equal(RUN((fx), (line)), (want))

/* A fresh layer with these host facts instead of the default fixture. */
static struct cmdt_fx *
reopen(void **state, const struct cmdt_params *p)
{
    cmdt_teardown(state);
    cmdt_setup_params(state, p);
    return *state;
}

static void
test_role_is_a_primary_without_replicas(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "ROLE", "*3 \"master\" :0 *0");
    EXPECT(fx, "ROLE x", "!ERR wrong number of arguments for 'role' command");
}

static void
test_info_replication(void **state)
{
    struct cmdt_fx *fx = *state;
    const char *r = RUN(fx, "INFO replication");

    assert_non_null(strstr(r, "# Replication" CRLF "role:master" CRLF
                              "connected_slaves:0" CRLF));
    assert_null(strstr(r, "# Server"));
    /* in the default sections, after Stats */
    r = RUN(fx, "INFO");
    assert_non_null(strstr(r, "connected_slaves:0" CRLF));
    assert_true(strstr(r, "# Replication") > strstr(r, "# Stats"));
}

/* Without host facts (no RESP frontend, an engine without a sync
 * policy): port 0, save "", appendfsync and maxclients left out. */
static void
test_config_get_without_host_facts(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "CONFIG GET appendfsync", "*0");
    EXPECT(fx, "CONFIG GET maxclients", "*0");
    EXPECT(fx, "CONFIG GET port save", "*4 \"port\" \"0\" \"save\" \"\"");
    EXPECT(fx, "CONFIG SET appendfsync always",
           "!ERR Unknown option or number of arguments for CONFIG SET - "
           "'appendfsync'");
    assert_non_null(strstr(RUN(fx, "INFO server"), CRLF "tcp_port:0" CRLF));
    assert_null(strstr(RUN(fx, "INFO clients"), "maxclients"));
    /* no sync policy: writes reach disk at snapshots only, if at all */
    EXPECT(fx, "CONFIG GET appendonly", "*2 \"appendonly\" \"no\"");
    assert_non_null(
        strstr(RUN(fx, "INFO persistence"), CRLF "aof_enabled:0" CRLF));
}

static void
test_config_get_follows_the_host(void **state)
{
    struct cmdt_params p = {.appendfsync = "always",
                            .save = "300 1",
                            .tcp_port = 6380,
                            .maxclients = 128};
    struct cmdt_fx *fx = reopen(state, &p);

    EXPECT(fx, "CONFIG GET appendfsync port",
           "*4 \"appendfsync\" \"always\" \"port\" \"6380\"");
    EXPECT(fx, "CONFIG GET maxclients save",
           "*4 \"maxclients\" \"128\" \"save\" \"300 1\"");
    EXPECT(fx, "CONFIG SET appendfsync always maxclients 128", "OK");
    EXPECT(fx, "CONFIG SET appendfsync no",
           "!ERR CONFIG SET failed (possibly related to argument "
           "'appendfsync') - kvd is configured by its INI file");
    assert_non_null(strstr(RUN(fx, "INFO server"), CRLF "tcp_port:6380" CRLF));
    assert_non_null(
        strstr(RUN(fx, "INFO clients"), CRLF "maxclients:128" CRLF));
    /* one glob, every parameter once */
    const char *r = RUN(fx, "CONFIG GET *");
    assert_non_null(strstr(r, "\"appendfsync\" \"always\""));
    assert_non_null(strstr(r, "\"port\" \"6380\""));
    /* a sync policy: every write reaches disk, as with Redis's AOF */
    EXPECT(fx, "CONFIG GET appendonly", "*2 \"appendonly\" \"yes\"");
    assert_non_null(
        strstr(RUN(fx, "INFO persistence"), CRLF "aof_enabled:1" CRLF));
}

/* A kernel-assigned port (tcp = HOST:0) is known on the TCP connections
 * of the RESP frontend: the port they reached. */
static void
test_tcp_port_of_a_kernel_assigned_listener(void **state)
{
    struct cmdt_fx *fx = *state;
    struct cmdt_rec rec = {0};
    struct kvd_session_info info = {
        .struct_size = sizeof(info),
        .frontend = "resp",
        .flags = KVD_SESSION_TRUSTED,
        .ops = &cmdt_reply_ops,
        .ops_size = sizeof(cmdt_reply_ops),
        .w = &rec,
        .addr = "127.0.0.1:50000",
        .laddr = "127.0.0.1:41234",
        .fd = 9,
    };
    kvd_session *s;

    cmdt_rec_stream(&rec);
    s = kvd_cmd_session_open(fx->cmd, &info);
    assert_non_null(s);
    assert_int_equal(cmdt_call(s, "CONFIG GET port"), 0);
    assert_string_equal(cmdt_rec_text(&rec), "*2 \"port\" \"41234\"");
    cmdt_rec_stream(&rec);
    assert_int_equal(cmdt_call(s, "INFO server"), 0);
    assert_non_null(strstr(cmdt_rec_text(&rec), CRLF "tcp_port:41234" CRLF));
    kvd_cmd_session_destroy(s);

    /* a Unix socket session of the same frontend: not known, flag U */
    info.addr = "/run/kvd/kvd.sock";
    info.laddr = "/run/kvd/kvd.sock";
    cmdt_rec_stream(&rec);
    s = kvd_cmd_session_open(fx->cmd, &info);
    assert_non_null(s);
    assert_int_equal(cmdt_call(s, "CONFIG GET port"), 0);
    assert_string_equal(cmdt_rec_text(&rec), "*2 \"port\" \"0\"");
    cmdt_rec_stream(&rec);
    assert_int_equal(cmdt_call(s, "CLIENT INFO"), 0);
    assert_non_null(strstr(cmdt_rec_text(&rec), " flags=U "));

    /* once the frontend announced its bound port, every session knows it
     * (another frontend's port is not Redis's tcp_port) */
    kvd_cmd_api_table()->listening(fx->cmd, "http", 8080);
    cmdt_rec_stream(&rec);
    assert_int_equal(cmdt_call(s, "CONFIG GET port"), 0);
    assert_string_equal(cmdt_rec_text(&rec), "*2 \"port\" \"0\"");
    kvd_cmd_api_table()->listening(fx->cmd, "resp", 41234);
    cmdt_rec_stream(&rec);
    assert_int_equal(cmdt_call(s, "CONFIG GET port"), 0);
    assert_string_equal(cmdt_rec_text(&rec), "*2 \"port\" \"41234\"");
    cmdt_rec_stream(&rec);
    assert_int_equal(cmdt_call(s, "INFO server"), 0);
    assert_non_null(strstr(cmdt_rec_text(&rec), CRLF "tcp_port:41234" CRLF));
    kvd_cmd_session_destroy(s);
    cmdt_rec_release(&rec);
}

/* Redis 7.2's fields, in its order (without the buffer fields kvd has no
 * figure for); cmd= is the command running. */
static void
test_client_info_in_redis_order(void **state)
{
    struct cmdt_fx *fx = *state;
    const char *r;
    static const char *const order[] = {
        "id=",    "addr=", "laddr=",    "fd=",      "name=",
        "age=",   "idle=", "flags=",    "db=",      "sub=",
        "psub=",  "ssub=", "multi=",    "cmd=",     "user=",
        "redir=", "resp=", "lib-name=", "lib-ver=",
    };
    const char *at;

    EXPECT(fx, "CLIENT SETINFO lib-ver 1.2", "OK");
    r = RUN(fx, "CLIENT INFO");
    at = r;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        char field[16];
        snprintf(field, sizeof(field), "%s%s", i == 0 ? "" : " ", order[i]);
        const char *f = strstr(at, field);
        if (f == NULL) {
            fail_msg("field %s missing or out of order in: %s", order[i], r);
        }
        at = f + strlen(field);
    }
    assert_non_null(strstr(r, " flags=N "));
    assert_non_null(strstr(r, " multi=-1 cmd=client|info user=default "
                              "redir=-1 resp=2 lib-name= lib-ver=1.2"));
    /* in MULTI: flags x, seen from another session */
    struct cmdt_rec rec = {0};
    kvd_session *other = cmdt_session(fx, &rec, NULL, KVD_SESSION_TRUSTED);
    EXPECT(fx, "MULTI", "OK");
    EXPECT(fx, "PING", "QUEUED");
    cmdt_rec_stream(&rec);
    assert_int_equal(cmdt_call(other, "CLIENT LIST"), 0);
    assert_non_null(strstr(cmdt_rec_text(&rec),
                           " flags=x db=0 sub=0 psub=0 ssub=0 multi=1 "));
    kvd_cmd_session_destroy(other);
    cmdt_rec_release(&rec);
    EXPECT(fx, "DISCARD", "OK");
    /* the command running, also when it is not the first */
    EXPECT(fx, "GET k", "nil");
    r = RUN(fx, "CLIENT LIST");
    assert_non_null(strstr(r, " cmd=client|list "));
}

#define T(f) cmocka_unit_test_setup_teardown(f, cmdt_setup, cmdt_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_role_is_a_primary_without_replicas),
        T(test_info_replication),
        T(test_config_get_without_host_facts),
        T(test_config_get_follows_the_host),
        T(test_tcp_port_of_a_kernel_assigned_listener),
        T(test_client_info_in_redis_order),
    };
    return cmocka_run_group_tests_name("cmd_introspect", tests,
                                       cmdt_group_setup, cmdt_group_teardown);
}
