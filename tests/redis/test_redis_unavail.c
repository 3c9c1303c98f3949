/*
 * tests/redis/test_redis_unavail.c -- the redis engine when Redis is not
 * there.
 *
 * Opening with seeds nobody listens on (sockets bound here and never
 * listened on, see rt_dead_port) fails with KVD_EUNAVAIL and a
 * message naming every seed. An open engine whose cluster stops answering
 * (every node SIGSTOPped) fails each request with KVD_ETIMEDOUT or
 * KVD_EUNAVAIL within command_timeout_ms (plus scheduling slack), never
 * hangs; when the nodes are killed it fails the same way; and when the
 * cluster comes back (SIGCONT, or the nodes restarted from their cluster
 * config) the same engine handle serves again by itself.
 *
 * Usage: test_redis_unavail ENGINE.so SCRIPT CLUSTER_DIR BASEPORT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "rt_util.h"

#define UA_TIMEOUT_MS 500
#define UA_SLACK_MS   1500  /* a noisy 2-core machine */
#define UA_RECOVER_MS 60000 /* the cluster re-forming after a restart */

static const char *ua_engine;
static const char *ua_script;
static const char *ua_dir;
static int ua_base;
static struct rt_eng ua_e;

static int
ua_setup(void **state)
{
    char nodes[64];
    const char *opts[] = {nodes, "key_prefix=ua/", "command_timeout_ms=500",
                          "connect_timeout_ms=300"};
    struct kvd_err err = {0};

    (void)state;
    snprintf(nodes, sizeof(nodes), "nodes=127.0.0.1:%d", ua_base);
    if (rt_open(&ua_e, ua_engine, opts, 4, &err) != 0) {
        print_error("open: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int
ua_teardown(void **state)
{
    (void)state;
    rt_close(&ua_e);
    return 0;
}

/* Each of get, put and del fails unavailable or timed out, in time. */
static void
ua_assert_fails_in_time(void)
{
    for (int i = 0; i < 3; i++) {
        struct kvd_val v;
        int64_t t0 = rt_ms();
        int64_t took;
        int rc;

        rc = i == 0   ? kvd_store_get(ua_e.st, "k1", 2, &v)
             : i == 1 ? kvd_store_set(ua_e.st, "k2", 2, "v", 1, 0, 0, NULL)
                      : kvd_store_del(ua_e.st, "k3", 2);
        took = rt_ms() - t0;
        print_message("      %s: status %d after %lld ms\n",
                      i == 0   ? "get"
                      : i == 1 ? "put"
                               : "del",
                      rc, (long long)took);
        assert_true(rc == KVD_EUNAVAIL || rc == KVD_ETIMEDOUT);
        assert_true(took <= UA_TIMEOUT_MS + UA_SLACK_MS);
    }
}

/* Puts succeed again within UA_RECOVER_MS; how long it took. */
static int64_t
ua_wait_recovered(void)
{
    int64_t t0 = rt_ms();
    int rc;

    do {
        rc = kvd_store_set(ua_e.st, "back", 4, "yes", 3, 0, 0, NULL);
        if (rc != 0) {
            rt_sleep_ms(100);
        }
    } while (rc != 0 && rt_ms() - t0 < UA_RECOVER_MS);
    assert_int_equal(rc, 0);
    return rt_ms() - t0;
}

static void
test_open_with_dead_seeds_names_them(void **state)
{
    struct rt_eng e;
    struct kvd_err err = {0};
    char nodes[96];
    char a[32];
    char b[32];
    const char *opts[] = {nodes, "connect_timeout_ms=300",
                          "command_timeout_ms=500"};
    int fd[2] = {-1, -1};
    int port[2];
    int64_t t0;
    int rc;

    (void)state;
    port[0] = rt_dead_port(&fd[0]);
    port[1] = rt_dead_port(&fd[1]);
    assert_true(port[0] > 0 && port[1] > 0);
    snprintf(a, sizeof(a), "127.0.0.1:%d", port[0]);
    snprintf(b, sizeof(b), "127.0.0.1:%d", port[1]);
    snprintf(nodes, sizeof(nodes), "nodes=%s, %s", a, b);
    t0 = rt_ms();
    rc = rt_open(&e, ua_engine, opts, 3, &err);
    close(fd[0]);
    close(fd[1]);
    assert_int_equal(rc, KVD_EUNAVAIL);
    print_message("      refused: %s\n", err.msg);
    assert_non_null(strstr(err.msg, a));
    assert_non_null(strstr(err.msg, b));
    assert_non_null(strstr(err.msg, "no seed"));
    assert_true(rt_ms() - t0 <= 2 * (300 + 500) + UA_SLACK_MS);
}

static void
test_paused_cluster_times_out_then_recovers(void **state)
{
    (void)state;
    assert_int_equal(kvd_store_set(ua_e.st, "k", 1, "v", 1, 0, 0, NULL), 0);
    assert_int_equal(rt_script(ua_script, "pause '%s'", ua_dir), 0);
    ua_assert_fails_in_time();
    assert_int_equal(rt_script(ua_script, "resume '%s'", ua_dir), 0);
    print_message("      served again %lld ms after SIGCONT\n",
                  (long long)ua_wait_recovered());
}

static void
test_killed_cluster_is_unavailable_then_recovers(void **state)
{
    struct kvd_val v = {0};

    (void)state;
    for (int p = ua_base; p < ua_base + 6; p++) {
        assert_int_equal(rt_script(ua_script, "kill '%s' %d", ua_dir, p), 0);
    }
    ua_assert_fails_in_time();
    assert_int_equal(rt_script(ua_script, "restart '%s'", ua_dir), 0);
    print_message("      served again %lld ms after the restart\n",
                  (long long)ua_wait_recovered());
    assert_int_equal(kvd_store_get(ua_e.st, "back", 4, &v), 0);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.data, "yes", 3);
    kvd_val_release(&v);
    assert_int_equal(rt_script(ua_script, "wait '%s'", ua_dir), 0);
}

int
main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_with_dead_seeds_names_them),
        cmocka_unit_test(test_paused_cluster_times_out_then_recovers),
        cmocka_unit_test(test_killed_cluster_is_unavailable_then_recovers),
    };

    if (argc != 5) {
        fprintf(stderr, "usage: %s ENGINE.so SCRIPT DIR BASEPORT\n", argv[0]);
        return 2;
    }
    ua_engine = argv[1];
    ua_script = argv[2];
    ua_dir = argv[3];
    ua_base = atoi(argv[4]);
    kvd_log_set_level(KVD_LOG_ERROR);
    return cmocka_run_group_tests_name("redis_unavailable", tests, ua_setup,
                                       ua_teardown);
}
