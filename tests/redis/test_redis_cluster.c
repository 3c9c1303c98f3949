/*
 * tests/redis/test_redis_cluster.c -- cluster routing of the redis engine.
 *
 * Against the 3-master fixture cluster given on the command line (it
 * moves slots, so it has a cluster of its own): the engine's slot of a
 * key agrees with the servers' CLUSTER KEYSLOT (checked by reading the
 * key straight from the master the servers name), a stable cluster costs
 * no redirects, MOVED after a slot moved and ASK during a migration are
 * followed, and a cross-slot batch is refused with a message that
 * suggests hash tags while a hash-tagged one applies.
 *
 * Usage: test_redis_cluster ENGINE.so BASEPORT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "rt_util.h"

#define RT_PREFIX "rtc/"

static const char *rt_engine_path;
static int rt_base;
static struct rt_eng rt_e;

static int
rt_setup(void **state)
{
    char nodes[64];
    const char *opts[] = {nodes, "key_prefix=" RT_PREFIX,
                          "command_timeout_ms=5000"};
    struct kvd_err err = {0};
    int rc;

    (void)state;
    snprintf(nodes, sizeof(nodes), "nodes=127.0.0.1:%d", rt_base);
    rc = rt_open(&rt_e, rt_engine_path, opts, 3, &err);
    if (rc != 0) {
        print_error("open: %s (%d)\n", err.msg, rc);
        return -1;
    }
    return 0;
}

static int
rt_teardown(void **state)
{
    (void)state;
    rt_close(&rt_e);
    return 0;
}

static int
rt_puts(const char *k, const char *v)
{
    return kvd_store_set(rt_e.st, k, strlen(k), v, strlen(v), 0, 0, NULL);
}

static int
rt_checks(const char *k, const char *v)
{
    struct kvd_val got = {0};
    int rc = kvd_store_get(rt_e.st, k, strlen(k), &got);

    if (rc != 0) {
        return rc;
    }
    rc = got.len == strlen(v) && memcmp(got.data, v, got.len) == 0 ? 0 : -1;
    if (rc != 0) {
        print_error("%s: got %.*s, expected %s\n", k, (int)got.len,
                    (const char *)got.data, v);
    }
    kvd_val_release(&got);
    return rc;
}

static int
rt_keyslot(const char *fullkey)
{
    redisReply *r = rt_cmd(rt_base, "CLUSTER KEYSLOT %s", fullkey);
    int slot;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    slot = (int)r->integer;
    freeReplyObject(r);
    return slot;
}

static void
rt_myid(int port, char *id, size_t len)
{
    redisReply *r = rt_cmd(port, "CLUSTER MYID");

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(id, len, "%s", r->str);
    freeReplyObject(r);
}

/* A master other than `port`. */
static int
rt_other_master(int port)
{
    for (int p = rt_base; p < rt_base + 6; p++) {
        redisReply *r = rt_cmd(p, "ROLE");
        bool master = r != NULL && r->type == REDIS_REPLY_ARRAY &&
                      strcmp(r->element[0]->str, "master") == 0;

        if (r != NULL) {
            freeReplyObject(r);
        }
        if (master && p != port) {
            return p;
        }
    }
    fail_msg("no second master");
    return -1;
}

static void
rt_ok(redisReply *r)
{
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) {
        print_error("redis: %s\n", r->str);
    }
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* Tell every master that slot now belongs to node id. */
static void
rt_setslot_node(int slot, const char *id, int first_port)
{
    rt_ok(rt_cmd(first_port, "CLUSTER SETSLOT %d NODE %s", slot, id));
    for (int p = rt_base; p < rt_base + 6; p++) {
        redisReply *r = rt_cmd(p, "CLUSTER SETSLOT %d NODE %s", slot, id);

        if (r != NULL) {
            freeReplyObject(r); /* replicas refuse: fine */
        }
    }
}

static void
test_cluster_open_reports_topology(void **state)
{
    (void)state;
    assert_int_equal(kvd_store_caps(rt_e.st) & KVD_CAP_BATCH_PARTITIONED,
                     KVD_CAP_BATCH_PARTITIONED);
    assert_int_equal(kvd_store_caps(rt_e.st) & KVD_CAP_ATOMIC_BATCH, 0);
    assert_int_equal(rt_stat(&rt_e, "cluster"), 1);
    assert_int_equal(rt_stat(&rt_e, "masters"), 3);
    assert_true(rt_stat(&rt_e, "slot_map_refreshes_total") >= 1);
}

static void
test_cluster_slots_agree_with_servers(void **state)
{
    uint64_t moved0 = rt_stat(&rt_e, "moved_redirects_total");
    char k[64];
    char v[64];
    char full[80];

    (void)state;
    for (int i = 0; i < 3000; i++) {
        /* every fifth key has a hash tag, some of them empty ("{}") */
        int kl = i % 5 == 0 ? snprintf(k, sizeof(k), "{%s%d}:k%d",
                                       i % 10 == 0 ? "" : "t", i / 10, i)
                            : snprintf(k, sizeof(k), "key-%d", i);

        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(
            kvd_store_set(rt_e.st, k, (size_t)kl, v, strlen(v), 0, 0, NULL), 0);
    }
    /* a stable map routes every key right the first time */
    assert_int_equal(rt_stat(&rt_e, "moved_redirects_total"), moved0);
    /* and the servers agree: the master they name has the key */
    for (int i = 0; i < 3000; i += 97) {
        int port;
        redisReply *r;

        if (i % 5 == 0) {
            snprintf(k, sizeof(k), "{%s%d}:k%d", i % 10 == 0 ? "" : "t", i / 10,
                     i);
        } else {
            snprintf(k, sizeof(k), "key-%d", i);
        }
        snprintf(full, sizeof(full), RT_PREFIX "%s", k);
        port = rt_master_of_slot(rt_base, rt_keyslot(full));
        assert_true(port > 0);
        r = rt_cmd(port, "GET %s", full);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        snprintf(v, sizeof(v), "v%d", i);
        assert_string_equal(r->str, v);
        freeReplyObject(r);
    }
}

static void
test_cluster_crossslot_batch_suggests_hash_tags(void **state)
{
    const struct kvd_op cross[] = {
        {.type = KVD_OP_PUT, .key = "{u1}:a", .klen = 6, .val = "1", .vlen = 1},
        {.type = KVD_OP_PUT, .key = "{u2}:b", .klen = 6, .val = "2", .vlen = 1},
    };
    const struct kvd_op same[] = {
        {.type = KVD_OP_PUT, .key = "{u1}:a", .klen = 6, .val = "1", .vlen = 1},
        {.type = KVD_OP_PUT, .key = "{u1}:b", .klen = 6, .val = "2", .vlen = 1},
    };
    struct kvd_err err = {0};
    struct kvd_val v;

    (void)state;
    assert_int_equal(kvd_store_batch(rt_e.st, cross, 2, &err), KVD_ECROSSSLOT);
    print_message("      refused: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "hash tag"));
    assert_non_null(strstr(err.msg, "{user42}"));
    assert_int_equal(kvd_store_get(rt_e.st, "{u1}:a", 6, &v), KVD_ENOTFOUND);
    assert_int_equal(rt_stat(&rt_e, "crossslot_batches_total"), 1);

    assert_int_equal(kvd_store_batch(rt_e.st, same, 2, &err), 0);
    assert_int_equal(rt_checks("{u1}:a", "1"), 0);
    assert_int_equal(rt_checks("{u1}:b", "2"), 0);
}

static void
test_cluster_follows_moved(void **state)
{
    const char *key = "{rt-moved}k";
    uint64_t moved0 = rt_stat(&rt_e, "moved_redirects_total");
    uint64_t moved1;
    int slot = rt_keyslot(RT_PREFIX "{rt-moved}k");
    int src = rt_master_of_slot(rt_base, slot);
    int dst = rt_other_master(src);
    char src_id[64];
    char dst_id[64];

    (void)state;
    assert_int_equal(rt_puts(key, "before"), 0);
    rt_myid(src, src_id, sizeof(src_id));
    rt_myid(dst, dst_id, sizeof(dst_id));
    /* move the slot and its key the way redis-cli --cluster reshard does */
    rt_ok(rt_cmd(dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, src_id));
    rt_ok(rt_cmd(src, "CLUSTER SETSLOT %d MIGRATING %s", slot, dst_id));
    rt_ok(rt_cmd(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst,
                 RT_PREFIX "{rt-moved}k"));
    rt_setslot_node(slot, dst_id, dst);
    print_message("      slot %d moved from :%d to :%d\n", slot, src, dst);

    /* the engine's map still says src: MOVED, followed */
    assert_int_equal(rt_checks(key, "before"), 0);
    moved1 = rt_stat(&rt_e, "moved_redirects_total");
    assert_true(moved1 != UINT64_MAX && moved1 > moved0);
    /* and the map learnt it: the next requests go to dst directly. (Not
     * the refresh counter: a MOVED also asks for a whole new map, but
     * that refresh is skipped within RDS_REFRESH_MIN_MS of the last one
     * and can time out under load; the redirect itself patches the
     * slot.) */
    assert_int_equal(rt_puts(key, "after"), 0);
    assert_int_equal(rt_checks(key, "after"), 0);
    assert_int_equal(rt_stat(&rt_e, "moved_redirects_total"), moved1);
}

static void
test_cluster_follows_ask_during_migration(void **state)
{
    uint64_t ask0 = rt_stat(&rt_e, "ask_redirects_total");
    int slot = rt_keyslot(RT_PREFIX "{rt-ask}old");
    int src = rt_master_of_slot(rt_base, slot);
    int dst = rt_other_master(src);
    char src_id[64];
    char dst_id[64];
    struct kvd_val v;
    redisReply *r;

    (void)state;
    assert_int_equal(rt_puts("{rt-ask}old", "on-source"), 0);
    rt_myid(src, src_id, sizeof(src_id));
    rt_myid(dst, dst_id, sizeof(dst_id));
    rt_ok(rt_cmd(dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, src_id));
    rt_ok(rt_cmd(src, "CLUSTER SETSLOT %d MIGRATING %s", slot, dst_id));

    /* a key still on the source is served there, without redirect */
    assert_int_equal(rt_checks("{rt-ask}old", "on-source"), 0);
    assert_int_equal(rt_stat(&rt_e, "ask_redirects_total"), ask0);
    /* a key the source does not have: ASK, then ASKING at the target */
    assert_int_equal(kvd_store_get(rt_e.st, "{rt-ask}new", 11, &v),
                     KVD_ENOTFOUND);
    assert_true(rt_stat(&rt_e, "ask_redirects_total") > ask0);
    assert_int_equal(rt_puts("{rt-ask}new", "on-target"), 0);
    r = rt_cmd(dst, "CLUSTER COUNTKEYSINSLOT %d", slot);
    assert_non_null(r);
    assert_int_equal(r->integer, 1); /* the new key went to the target */
    freeReplyObject(r);

    /* finish the migration; both keys read back through MOVED */
    rt_ok(rt_cmd(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst,
                 RT_PREFIX "{rt-ask}old"));
    rt_setslot_node(slot, dst_id, dst);
    assert_int_equal(rt_checks("{rt-ask}old", "on-source"), 0);
    assert_int_equal(rt_checks("{rt-ask}new", "on-target"), 0);
}

int
main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_open_reports_topology),
        cmocka_unit_test(test_cluster_slots_agree_with_servers),
        cmocka_unit_test(test_cluster_crossslot_batch_suggests_hash_tags),
        cmocka_unit_test(test_cluster_follows_moved),
        cmocka_unit_test(test_cluster_follows_ask_during_migration),
    };

    if (argc != 3) {
        fprintf(stderr, "usage: %s ENGINE.so BASEPORT\n", argv[0]);
        return 2;
    }
    rt_engine_path = argv[1];
    rt_base = atoi(argv[2]);
    kvd_log_set_level(KVD_LOG_WARN);
    return cmocka_run_group_tests_name("redis_cluster", tests, rt_setup,
                                       rt_teardown);
}
