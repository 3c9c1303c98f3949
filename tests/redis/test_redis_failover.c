/*
 * tests/redis/test_redis_failover.c -- the redis engine through a master
 * failover.
 *
 * Two writer threads put through the store with durability = wait:1: one
 * writes keys of a single hash slot ({fo}), the other keys spread over
 * every slot. After a second the test SIGKILLs the master serving {fo},
 * waits until its replica has been promoted, and restarts the killed node
 * (it rejoins as the new master's replica, so WAIT 1 can be satisfied
 * again). The writers keep going the whole time without any help: the
 * engine must find the promoted replica by itself. Then every write that
 * was acknowledged must read back with its value, and the test prints the
 * gap: kill to first acknowledged write to the killed shard.
 *
 * Usage: test_redis_failover ENGINE.so SCRIPT CLUSTER_DIR BASEPORT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "rt_util.h"

#define FO_MAX_OPS  200000
#define FO_BOUND_MS 60000 /* recovery must happen within this */
#define FO_AFTER_OK 50    /* successes after the kill to stop at */

static const char *fo_engine;
static const char *fo_script;
static const char *fo_dir;
static int fo_base;

struct fo_writer {
    struct rt_eng *e;
    const char *kp; /* key prefix; the sequence number follows */
    _Atomic bool *stop;
    int n;
    signed char rc_ok[FO_MAX_OPS]; /* 1 acknowledged, 0 failed */
    signed char unav[FO_MAX_OPS];  /* failed with KVD_EUNAVAIL */
    int64_t t_ms[FO_MAX_OPS];
    int unavail;
    int timedout;
    int other;
};

static void *
fo_write_loop(void *arg)
{
    struct fo_writer *w = arg;
    char k[64];
    char v[64];

    while (!atomic_load(w->stop) && w->n < FO_MAX_OPS) {
        int kl = snprintf(k, sizeof(k), "%s%d", w->kp, w->n);
        int vl = snprintf(v, sizeof(v), "value-%d", w->n);
        int rc =
            kvd_store_set(w->e->st, k, (size_t)kl, v, (size_t)vl, 0, 0, NULL);

        w->t_ms[w->n] = rt_ms();
        w->rc_ok[w->n] = rc == 0;
        w->unav[w->n] = rc == KVD_EUNAVAIL;
        w->unavail += rc == KVD_EUNAVAIL;
        w->timedout += rc == KVD_ETIMEDOUT;
        w->other += rc != 0 && rc != KVD_EUNAVAIL && rc != KVD_ETIMEDOUT;
        w->n++;
    }
    return NULL;
}

/* The replica port of master `port` (from its INFO replication). */
static int
fo_replica_of(int port)
{
    redisReply *r = rt_cmd(port, "INFO replication");
    const char *p;
    int rep = -1;

    assert_non_null(r);
    p = strstr(r->str, "slave0:");
    if (p != NULL && (p = strstr(p, "port=")) != NULL) {
        rep = atoi(p + 5);
    }
    freeReplyObject(r);
    return rep;
}

static bool
fo_is_master(int port)
{
    redisReply *r = rt_cmd(port, "ROLE");
    bool m = r != NULL && r->type == REDIS_REPLY_ARRAY &&
             strcmp(r->element[0]->str, "master") == 0;

    if (r != NULL) {
        freeReplyObject(r);
    }
    return m;
}

/* Every acknowledged write of w reads back; returns how many did not. */
static int
fo_verify(struct fo_writer *w)
{
    int lost = 0;
    char k[64];
    char v[64];

    for (int i = 0; i < w->n; i++) {
        struct kvd_val got = {0};
        int kl;
        int rc;

        if (!w->rc_ok[i]) {
            continue;
        }
        kl = snprintf(k, sizeof(k), "%s%d", w->kp, i);
        snprintf(v, sizeof(v), "value-%d", i);
        rc = kvd_store_get(w->e->st, k, (size_t)kl, &got);
        if (rc != 0 || got.len != strlen(v) ||
            memcmp(got.data, v, got.len) != 0) {
            if (lost++ < 5) {
                print_error("acknowledged %s lost (status %d)\n", k, rc);
            }
        }
        if (rc == 0) {
            kvd_val_release(&got);
        }
    }
    return lost;
}

/* The first acknowledged write after the first failure at or after t:
 * writes that completed just after the kill had reached the old master
 * before it died. -1 if none. */
static int64_t
fo_first_ok_after(const struct fo_writer *w, int64_t t)
{
    bool failed = false;

    for (int i = 0; i < w->n; i++) {
        if (w->t_ms[i] < t) {
            continue;
        }
        if (!w->rc_ok[i]) {
            failed = true;
        } else if (failed) {
            return w->t_ms[i];
        }
    }
    return -1;
}

/* The first write after the kill that reached a master again (acknowledged,
 * or refused only because WAIT found no replica yet), or -1. */
static int64_t
fo_first_routed_after(const struct fo_writer *w, int64_t t)
{
    bool failed = false;

    for (int i = 0; i < w->n; i++) {
        if (w->t_ms[i] < t) {
            continue;
        }
        if (w->unav[i]) {
            failed = true;
        } else if (failed) {
            return w->t_ms[i];
        }
    }
    return -1;
}

static int
fo_ok_after(const struct fo_writer *w, int64_t t)
{
    int n = 0;

    for (int i = 0; i < w->n; i++) {
        n += w->rc_ok[i] && w->t_ms[i] >= t;
    }
    return n;
}

static void
test_failover_keeps_acknowledged_writes(void **state)
{
    static struct fo_writer a;
    static struct fo_writer b;
    _Atomic bool stop = false;
    struct rt_eng e;
    struct kvd_err err = {0};
    char nodes[64];
    const char *opts[] = {nodes, "key_prefix=fo/", "durability=wait:1",
                          "command_timeout_ms=1000", "connect_timeout_ms=500"};
    pthread_t ta;
    pthread_t tb;
    redisReply *r;
    int64_t t_kill;
    int64_t t_promoted = -1;
    int64_t t_first;
    int master;
    int replica;
    int slot;

    (void)state;
    snprintf(nodes, sizeof(nodes), "nodes=127.0.0.1:%d", fo_base);
    assert_int_equal(rt_open(&e, fo_engine, opts, 5, &err), 0);
    r = rt_cmd(fo_base, "CLUSTER KEYSLOT {fo}");
    assert_non_null(r);
    slot = (int)r->integer;
    freeReplyObject(r);
    master = rt_master_of_slot(fo_base, slot);
    assert_true(master > 0);
    replica = fo_replica_of(master);
    assert_true(replica > 0);

    a.e = &e;
    a.kp = "{fo}:";
    a.stop = &stop;
    b.e = &e;
    b.kp = "spread:";
    b.stop = &stop;
    assert_int_equal(pthread_create(&ta, NULL, fo_write_loop, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, fo_write_loop, &b), 0);
    rt_sleep_ms(1000);

    t_kill = rt_ms();
    assert_int_equal(rt_script(fo_script, "kill '%s' %d", fo_dir, master), 0);
    while (rt_ms() - t_kill < FO_BOUND_MS) {
        if (fo_is_master(replica)) {
            t_promoted = rt_ms();
            break;
        }
        rt_sleep_ms(50);
    }
    assert_true(t_promoted > 0);
    /* back as a replica of the promoted one: WAIT 1 can succeed again */
    assert_int_equal(rt_script(fo_script, "restart '%s'", fo_dir), 0);
    while (rt_ms() - t_kill < FO_BOUND_MS &&
           fo_ok_after(&a, t_promoted) < FO_AFTER_OK) {
        rt_sleep_ms(50);
    }
    atomic_store(&stop, true);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);

    t_first = fo_first_ok_after(&a, t_kill);
    print_message("      killed master :%d (slot %d); replica :%d promoted "
                  "after %lld ms\n",
                  master, slot, replica, (long long)(t_promoted - t_kill));
    print_message("      writes reach the promoted master %lld ms after the "
                  "kill (acknowledged once a replica confirms them)\n",
                  (long long)(fo_first_routed_after(&a, t_kill) - t_kill));
    print_message("      failover gap (kill to first acknowledged wait:1 "
                  "write to that shard): %lld ms\n",
                  (long long)(t_first >= 0 ? t_first - t_kill : -1));
    print_message("      shard writer: %d writes, %d failed unavailable, %d "
                  "timed out, %d other; spread writer: %d writes, %d/%d/%d\n",
                  a.n, a.unavail, a.timedout, a.other, b.n, b.unavail,
                  b.timedout, b.other);
    print_message("      slot-map refreshes: %llu\n",
                  (unsigned long long)rt_stat(&e, "slot_map_refreshes_total"));
    assert_true(t_first > t_kill);
    assert_int_equal(a.other + b.other, 0);
    assert_true(fo_ok_after(&a, t_promoted) >= FO_AFTER_OK);

    assert_int_equal(fo_verify(&a), 0);
    assert_int_equal(fo_verify(&b), 0);
    rt_close(&e);
    assert_int_equal(rt_script(fo_script, "wait '%s'", fo_dir), 0);
}

int
main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_keeps_acknowledged_writes),
    };

    if (argc != 5) {
        fprintf(stderr, "usage: %s ENGINE.so SCRIPT DIR BASEPORT\n", argv[0]);
        return 2;
    }
    fo_engine = argv[1];
    fo_script = argv[2];
    fo_dir = argv[3];
    fo_base = atoi(argv[4]);
    kvd_log_set_level(KVD_LOG_ERROR);
    return cmocka_run_group_tests_name("redis_failover", tests, NULL, NULL);
}
