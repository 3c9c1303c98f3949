/*
 * tests/redis/test_redis_multi.c -- the redis engine's multi(): many
 * independent get/put/del in one call, one pipelined request per node.
 *
 * Against the 3-master fixture cluster of its own (it moves a slot and
 * pauses a master) and a plain redis-server:
 *   - model: random mixes of GET, PUT (binary and empty values, some
 *     with an expiry) and DEL over keys of every slot, repeated keys
 *     within a call, checked operation by operation against an in-memory
 *     model, then every key read back with get (cluster and plain);
 *   - one key many times in one call takes effect in array order;
 *   - binary keys and values, empty and 1 MiB values; expiry (past,
 *     future, and lapsing between calls);
 *   - a paused master: that master's operations time out (or are
 *     unavailable) within command_timeout_ms and every other operation of
 *     the call succeeds; after SIGCONT everything is served again;
 *   - MOVED after a slot moved, and ASK during a migration, where the
 *     operations on one key still take effect in order;
 *   - durability wait:1 confirms, wait:2 (one replica per master) fails
 *     the writes with KVD_ETIMEDOUT while the reads of the same call
 *     succeed, as put/get do alone;
 *   - read_from_replicas sends read-only node requests to replicas;
 *   - threads calling multi (and get/put) at once each get their own
 *     replies.
 * Each test opens engine instances straight from the loaded plugin (the
 * store has no multi of its own here), with its own key_prefix.
 *
 * Usage: test_redis_multi ENGINE.so SCRIPT CLUSTER_DIR BASEPORT SINGLE_PORT
 * (the cluster is shared with redis.cluster and redis.failover, one test
 * binary at a time: it starts by waiting until the cluster is healthy).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/hostsvc.h"
#include "core/log.h"
#include "rt_util.h"

#define MT_SLACK_MS   1500 /* a noisy 2-core machine */
#define MT_NKEYS      1500
#define MT_HOT        40 /* keys drawn often, so calls repeat them */
#define MT_VAL_MAX    64
#define MT_THREADS    6
#define MT_THREAD_OPS 120 /* multi calls per thread */

static const char *mt_engine;
static const char *mt_script;
static const char *mt_dir;
static int mt_base;
static int mt_single;
static pid_t mt_paused; /* a node this test SIGSTOPped, 0 if none */

/* A loaded plugin and an engine instance opened straight from it. */
struct mt_eng {
    struct rt_eng e;
    const struct kvd_engine_vtable *vt;
    const struct kvd_host *host;
    kvd_engine *db;
};

static int
mt_open_port(struct mt_eng *me, int port, const char *const *extra,
             size_t nextra)
{
    const char *opts[8];
    char nodes[64];
    struct kvd_err err = {0};
    size_t n = 0;

    memset(me, 0, sizeof(*me));
    snprintf(nodes, sizeof(nodes), "nodes=127.0.0.1:%d", port);
    opts[n++] = nodes;
    for (size_t i = 0; i < nextra && n < 8; i++) {
        opts[n++] = extra[i];
    }
    if (rt_open(&me->e, mt_engine, opts, n, &err) != 0) {
        print_error("open: %s\n", err.msg);
        return -1;
    }
    me->vt = me->e.vt;
    me->host = kvd_hostsvc_default();
    if (me->vt->open(me->host, me->e.opts, "/tmp", &me->db, &err) != 0) {
        print_error("open: %s\n", err.msg);
        rt_close(&me->e);
        return -1;
    }
    return 0;
}

static void
mt_close(struct mt_eng *me)
{
    me->vt->close(me->db, NULL);
    rt_close(&me->e);
}

struct mt_stat {
    const char *name;
    uint64_t value;
};

static void
mt_stat_cb(void *ctx, const char *name, uint64_t value)
{
    struct mt_stat *s = ctx;

    if (strcmp(name, s->name) == 0) {
        s->value = value;
    }
}

static uint64_t
mt_stat(struct mt_eng *me, const char *name)
{
    struct mt_stat s = {.name = name, .value = UINT64_MAX};
    struct kvd_engine_stats st = {.struct_size = sizeof(st)};

    assert_int_equal(me->vt->stats(me->db, &st, mt_stat_cb, &s), 0);
    return s.value;
}

static int64_t
mt_now(const struct mt_eng *me)
{
    return me->host->now_ms(me->host);
}

/* Run ops through multi and insist the call itself succeeded. */
static void
mt_multi(struct mt_eng *me, struct kvd_mop *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ops[i].status = 12345; /* multi must set every one */
    }
    assert_int_equal(me->vt->multi(me->db, ops, n), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(ops[i].status, 12345);
    }
}

static void
mt_release(struct kvd_mop *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KVD_MOP_GET && ops[i].status == 0) {
            kvd_val_release(&ops[i].out);
        }
    }
}

static struct kvd_mop
mt_get(const void *k, size_t kl)
{
    return (struct kvd_mop){.type = KVD_MOP_GET, .key = k, .klen = kl};
}

static struct kvd_mop
mt_put(const void *k, size_t kl, const void *v, size_t vl, int64_t exp)
{
    return (struct kvd_mop){.type = KVD_MOP_PUT,
                            .key = k,
                            .klen = kl,
                            .val = v,
                            .vlen = vl,
                            .expire_ms = exp};
}

static struct kvd_mop
mt_del(const void *k, size_t kl)
{
    return (struct kvd_mop){.type = KVD_MOP_DEL, .key = k, .klen = kl};
}

/* GET op i found exactly value v (vl bytes). */
static void
mt_assert_val(const struct kvd_mop *op, const void *v, size_t vl)
{
    assert_int_equal(op->status, 0);
    assert_int_equal(op->out.len, vl);
    if (vl > 0) {
        assert_memory_equal(op->out.data, v, vl);
    }
}

/* ------------------------------------------------------------- topology */

/* slot -> port of its master, from CLUSTER SLOTS of node `port`. */
static void
mt_slot_table(int port, int *tbl)
{
    redisReply *r = rt_cmd(port, "CLUSTER SLOTS");

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (int s = 0; s < 16384; s++) {
        tbl[s] = -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];

        for (long long s = e->element[0]->integer; s <= e->element[1]->integer;
             s++) {
            tbl[s] = (int)e->element[2]->element[1]->integer;
        }
    }
    freeReplyObject(r);
}

static int
mt_keyslot(const char *prefix, const void *key, size_t kl)
{
    char full[128];
    size_t pl = strlen(prefix);
    redisReply *r;
    int slot;

    assert_true(pl + kl <= sizeof(full));
    memcpy(full, prefix, pl);
    memcpy(full + pl, key, kl);
    r = rt_cmd(mt_base, "CLUSTER KEYSLOT %b", full, pl + kl);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    slot = (int)r->integer;
    freeReplyObject(r);
    return slot;
}

static void
mt_ok(redisReply *r)
{
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) {
        print_error("redis: %s\n", r->str);
    }
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static void
mt_myid(int port, char *id, size_t len)
{
    redisReply *r = rt_cmd(port, "CLUSTER MYID");

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(id, len, "%s", r->str);
    freeReplyObject(r);
}

static bool
mt_is_master(int port)
{
    redisReply *r = rt_cmd(port, "ROLE");
    bool m = r != NULL && r->type == REDIS_REPLY_ARRAY &&
             strcmp(r->element[0]->str, "master") == 0;

    if (r != NULL) {
        freeReplyObject(r);
    }
    return m;
}

static int
mt_other_master(int port)
{
    for (int p = mt_base; p < mt_base + 6; p++) {
        if (p != port && mt_is_master(p)) {
            return p;
        }
    }
    fail_msg("no second master");
    return -1;
}

/* Tell every node that slot now belongs to node id. */
static void
mt_setslot_node(int slot, const char *id, int first_port)
{
    mt_ok(rt_cmd(first_port, "CLUSTER SETSLOT %d NODE %s", slot, id));
    for (int p = mt_base; p < mt_base + 6; p++) {
        redisReply *r = rt_cmd(p, "CLUSTER SETSLOT %d NODE %s", slot, id);

        if (r != NULL) {
            freeReplyObject(r); /* replicas refuse: fine */
        }
    }
}

/* The calls of cmdstat_<cmd> in INFO commandstats of node port. */
static long long
mt_cmd_calls(int port, const char *cmd)
{
    redisReply *r = rt_cmd(port, "INFO commandstats");
    char pat[64];
    const char *p;
    long long n = 0;

    assert_non_null(r);
    snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", cmd);
    if (r->type == REDIS_REPLY_STRING && (p = strstr(r->str, pat)) != NULL) {
        n = atoll(p + strlen(pat));
    }
    freeReplyObject(r);
    return n;
}

static void
mt_pause(int port)
{
    char path[512];
    FILE *f;
    int pid = 0;

    snprintf(path, sizeof(path), "%s/%d/redis.pid", mt_dir, port);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    assert_true(pid > 0);
    assert_int_equal(kill((pid_t)pid, SIGSTOP), 0);
    mt_paused = (pid_t)pid;
}

static void
mt_resume(void)
{
    if (mt_paused > 0) {
        kill(mt_paused, SIGCONT);
        mt_paused = 0;
    }
}

static int
mt_setup(void **state)
{
    (void)state;
    return rt_script(mt_script, "wait '%s'", mt_dir) == 0 ? 0 : -1;
}

static int
mt_teardown(void **state)
{
    (void)state;
    mt_resume(); /* even when an assertion failed mid-pause */
    return 0;
}

/* ---------------------------------------------------------------- model */

struct mt_model {
    bool live[MT_NKEYS];
    unsigned char val[MT_NKEYS][MT_VAL_MAX];
    size_t vlen[MT_NKEYS];
    int64_t exp[MT_NKEYS];
};

/* Key i: every seventh holds NUL and 0xff bytes, every fifth a hash
 * tag shared with the four next ones (same slot, different keys). */
static size_t
mt_key(char *buf, size_t len, int i)
{
    int n;

    if (i % 7 == 0) {
        n = snprintf(buf, len, "b%d", i);
        buf[n++] = '\0';
        buf[n++] = (char)0xff;
        buf[n++] = 'x';
        return (size_t)n;
    }
    if (i % 5 == 0) {
        return (size_t)snprintf(buf, len, "{t%d}k%d", i / 25, i);
    }
    return (size_t)snprintf(buf, len, "key%d", i);
}

struct mt_opbuf {
    char key[32];
    unsigned char val[MT_VAL_MAX];
    int k;          /* key index */
    bool exp_found; /* what the model expects (GET, DEL) */
    unsigned char want[MT_VAL_MAX];
    size_t want_len;
    int64_t want_exp;
};

/* One random operation, checked by the model after the call. */
static void
mt_random_op(struct mt_eng *me, struct mt_model *m, struct kvd_mop *op,
             struct mt_opbuf *b, unsigned *seed)
{
    int r = rand_r(seed) % 10;
    int k =
        rand_r(seed) % 3 == 0 ? rand_r(seed) % MT_HOT : rand_r(seed) % MT_NKEYS;
    size_t kl = mt_key(b->key, sizeof(b->key), k);

    b->k = k;
    if (r < 4) {
        *op = mt_get(b->key, kl);
    } else if (r < 8) {
        size_t vl = (size_t)(rand_r(seed) % (MT_VAL_MAX + 1));
        int64_t exp = KVD_NO_EXPIRY;

        if (rand_r(seed) % 5 == 0) {
            exp = mt_now(me) + 3600 * 1000 + rand_r(seed) % 1000;
        }
        for (size_t i = 0; i < vl; i++) {
            b->val[i] = (unsigned char)rand_r(seed); /* any byte */
        }
        *op = mt_put(b->key, kl, b->val, vl, exp);
    } else {
        *op = mt_del(b->key, kl);
    }
    /* apply to the model in array order, noting the expected answer */
    b->exp_found = m->live[k];
    b->want_len = m->vlen[k];
    memcpy(b->want, m->val[k], m->vlen[k]);
    b->want_exp = m->exp[k];
    if (op->type == KVD_MOP_PUT) {
        m->live[k] = true;
        m->vlen[k] = op->vlen;
        memcpy(m->val[k], op->val, op->vlen);
        m->exp[k] = op->expire_ms;
    } else if (op->type == KVD_MOP_DEL) {
        m->live[k] = false;
    }
}

static void
mt_check_op(const struct kvd_mop *op, const struct mt_opbuf *b, size_t i)
{
    int want = 0;

    if (op->type != KVD_MOP_PUT && !b->exp_found) {
        want = KVD_ENOTFOUND;
    }
    if (op->status != want) {
        print_error("op %zu (type %d, key %d): status %d, expected %d\n", i,
                    op->type, b->k, op->status, want);
    }
    assert_int_equal(op->status, want);
    if (op->type == KVD_MOP_GET && want == 0) {
        mt_assert_val(op, b->want, b->want_len);
        assert_int_equal(op->out.expire_ms, b->want_exp);
    }
}

/* Random calls of 1..maxn operations, each checked; then every key read
 * back alone. */
static void
mt_model_run(struct mt_eng *me, int calls, int maxn, unsigned seed)
{
    struct mt_model *m = calloc(1, sizeof(*m));
    struct kvd_mop *ops = calloc((size_t)maxn, sizeof(*ops));
    struct mt_opbuf *b = calloc((size_t)maxn, sizeof(*b));
    uint64_t calls0 = mt_stat(me, "multi_calls_total");
    uint64_t ops0 = mt_stat(me, "multi_ops_total");
    uint64_t total = 0;

    assert_non_null(m);
    assert_non_null(ops);
    assert_non_null(b);
    /* start from nothing: delete every key (one big call) */
    for (int base = 0; base < MT_NKEYS; base += maxn) {
        int n = MT_NKEYS - base < maxn ? MT_NKEYS - base : maxn;

        for (int i = 0; i < n; i++) {
            ops[i] =
                mt_del(b[i].key, mt_key(b[i].key, sizeof(b[i].key), base + i));
        }
        mt_multi(me, ops, (size_t)n);
        for (int i = 0; i < n; i++) {
            assert_true(ops[i].status == 0 || ops[i].status == KVD_ENOTFOUND);
        }
        total += (uint64_t)n;
    }
    for (int c = 0; c < calls; c++) {
        int n = 1 + rand_r(&seed) % maxn;

        for (int i = 0; i < n; i++) {
            mt_random_op(me, m, &ops[i], &b[i], &seed);
        }
        mt_multi(me, ops, (size_t)n);
        for (int i = 0; i < n; i++) {
            mt_check_op(&ops[i], &b[i], (size_t)i);
        }
        mt_release(ops, (size_t)n);
        total += (uint64_t)n;
    }
    /* what multi wrote, get reads */
    for (int k = 0; k < MT_NKEYS; k++) {
        char key[32];
        size_t kl = mt_key(key, sizeof(key), k);
        struct kvd_val v = {0};
        int rc = me->vt->get(me->db, key, kl, &v);

        assert_int_equal(rc, m->live[k] ? 0 : KVD_ENOTFOUND);
        if (rc == 0) {
            assert_int_equal(v.len, m->vlen[k]);
            if (v.len > 0) {
                assert_memory_equal(v.data, m->val[k], v.len);
            }
            assert_int_equal(v.expire_ms, m->exp[k]);
            kvd_val_release(&v);
        }
    }
    assert_int_equal(mt_stat(me, "multi_ops_total") - ops0, total);
    assert_true(mt_stat(me, "multi_calls_total") - calls0 >= (uint64_t)calls);
    free(b);
    free(ops);
    free(m);
}

static void
test_multi_matches_model_on_cluster(void **state)
{
    const char *opts[] = {"key_prefix=mt1/", "command_timeout_ms=5000"};
    struct mt_eng me;
    uint64_t alone0;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_base, opts, 2), 0);
    alone0 = mt_stat(&me, "multi_ops_alone_total");
    mt_model_run(&me, 60, 300, 42);
    /* a stable cluster: nothing had to run alone */
    assert_int_equal(mt_stat(&me, "multi_ops_alone_total"), alone0);
    mt_close(&me);
}

static void
test_multi_matches_model_on_plain_server(void **state)
{
    const char *opts[] = {"key_prefix=mt2/", "command_timeout_ms=5000"};
    struct mt_eng me;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_single, opts, 2), 0);
    mt_model_run(&me, 40, 1024, 7);
    mt_close(&me);
}

/* PUT a, GET a, PUT a, GET a, DEL a, GET a, DEL a, PUT a "", GET a. */
static void
mt_same_key(struct mt_eng *me)
{
    struct kvd_mop ops[] = {
        mt_put("a", 1, "v1", 2, 0),
        mt_get("a", 1),
        mt_put("a", 1, "v2", 2, 0),
        mt_get("a", 1),
        mt_del("a", 1),
        mt_get("a", 1),
        mt_del("a", 1),
        mt_put("a", 1, "", 0, 0),
        mt_get("a", 1),
        mt_get("never-written", 13),
    };

    mt_multi(me, ops, 10);
    assert_int_equal(ops[0].status, 0);
    mt_assert_val(&ops[1], "v1", 2);
    assert_int_equal(ops[2].status, 0);
    mt_assert_val(&ops[3], "v2", 2);
    assert_int_equal(ops[4].status, 0);
    assert_int_equal(ops[5].status, KVD_ENOTFOUND);
    assert_int_equal(ops[6].status, KVD_ENOTFOUND);
    assert_int_equal(ops[7].status, 0);
    mt_assert_val(&ops[8], "", 0);
    assert_int_equal(ops[9].status, KVD_ENOTFOUND);
    mt_release(ops, 10);
}

static void
test_multi_same_key_in_array_order(void **state)
{
    const char *opts[] = {"key_prefix=mt3/"};
    struct mt_eng me;
    redisReply *r;
    int port;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_base, opts, 1), 0);
    mt_same_key(&me);
    /* the prefix is applied: the master of the slot holds mt3/a, "" */
    port = rt_master_of_slot(mt_base, mt_keyslot("mt3/", "a", 1));
    r = rt_cmd(port, "GET mt3/a");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 0);
    freeReplyObject(r);
    mt_close(&me);
    assert_int_equal(mt_open_port(&me, mt_single, opts, 1), 0);
    mt_same_key(&me);
    mt_close(&me);
}

static void
test_multi_binary_empty_and_big_values(void **state)
{
    const char *opts[] = {"key_prefix=mt4/"};
    static unsigned char all[256];
    const char nulkey[] = {'n', '\0', 'u', '\0'};
    size_t big_len = 1024 * 1024;
    unsigned char *big = malloc(big_len);
    struct mt_eng me;
    struct kvd_mop ops[8];

    (void)state;
    assert_non_null(big);
    for (int i = 0; i < 256; i++) {
        all[i] = (unsigned char)i;
    }
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (unsigned char)(i * 7 + 3);
    }
    assert_int_equal(mt_open_port(&me, mt_base, opts, 1), 0);
    ops[0] = mt_put(nulkey, sizeof(nulkey), all, sizeof(all), 0);
    ops[1] = mt_put("empty", 5, "", 0, 0);
    ops[2] = mt_put("big", 3, big, big_len, 0);
    ops[3] = mt_put("n", 1, "just n", 6, 0); /* a prefix of nulkey */
    mt_multi(&me, ops, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ops[i].status, 0);
    }
    ops[0] = mt_get(nulkey, sizeof(nulkey));
    ops[1] = mt_get("empty", 5);
    ops[2] = mt_get("big", 3);
    ops[3] = mt_get("n", 1);
    ops[4] = mt_get(nulkey, 2); /* "n\0": never written */
    mt_multi(&me, ops, 5);
    mt_assert_val(&ops[0], all, sizeof(all));
    mt_assert_val(&ops[1], "", 0);
    mt_assert_val(&ops[2], big, big_len);
    mt_assert_val(&ops[3], "just n", 6);
    assert_int_equal(ops[4].status, KVD_ENOTFOUND);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ops[i].out.expire_ms, KVD_NO_EXPIRY);
    }
    mt_release(ops, 5);
    mt_close(&me);
    free(big);
}

static void
test_multi_expiry(void **state)
{
    const char *opts[] = {"key_prefix=mt5/"};
    struct mt_eng me;
    struct kvd_mop ops[8];
    int64_t later;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_base, opts, 1), 0);
    later = mt_now(&me) + 3600 * 1000;
    ops[0] = mt_put("past", 4, "x", 1, 0);
    ops[1] = mt_put("past", 4, "y", 1, mt_now(&me) - 1000); /* a delete */
    ops[2] = mt_put("future", 6, "f", 1, later);
    ops[3] = mt_put("soon", 4, "s", 1, mt_now(&me) + 300);
    ops[4] = mt_get("past", 4);
    ops[5] = mt_get("future", 6);
    ops[6] = mt_del("past", 4);
    mt_multi(&me, ops, 7);
    assert_int_equal(ops[0].status, 0);
    assert_int_equal(ops[1].status, 0);
    assert_int_equal(ops[2].status, 0);
    assert_int_equal(ops[3].status, 0);
    assert_int_equal(ops[4].status, KVD_ENOTFOUND);
    mt_assert_val(&ops[5], "f", 1);
    assert_int_equal(ops[5].out.expire_ms, later);
    assert_int_equal(ops[6].status, KVD_ENOTFOUND);
    mt_release(ops, 7);
    rt_sleep_ms(450);
    ops[0] = mt_get("soon", 4);
    ops[1] = mt_del("soon", 4);
    ops[2] = mt_get("future", 6);
    mt_multi(&me, ops, 3);
    assert_int_equal(ops[0].status, KVD_ENOTFOUND);
    assert_int_equal(ops[1].status, KVD_ENOTFOUND);
    mt_assert_val(&ops[2], "f", 1);
    mt_release(ops, 3);
    mt_close(&me);
}

#define MT_PAUSE_KEYS 90

static void
test_multi_paused_master_times_out_only_its_ops(void **state)
{
    const char *opts[] = {"key_prefix=mt6/", "command_timeout_ms=400",
                          "connect_timeout_ms=300"};
    static int tbl[16384];
    char keys[MT_PAUSE_KEYS][16];
    struct kvd_mop ops[2 * MT_PAUSE_KEYS];
    int owner[MT_PAUSE_KEYS];
    struct mt_eng me;
    int victim = -1;
    int nvictim = 0;
    int64_t t0;
    int64_t took;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_base, opts, 3), 0);
    mt_slot_table(mt_base, tbl);
    for (int i = 0; i < MT_PAUSE_KEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "p%d", i);
        owner[i] = tbl[mt_keyslot("mt6/", keys[i], strlen(keys[i]))];
        assert_true(owner[i] > 0);
        ops[i] = mt_put(keys[i], strlen(keys[i]), keys[i], strlen(keys[i]), 0);
    }
    mt_multi(&me, ops, MT_PAUSE_KEYS);
    for (int i = 0; i < MT_PAUSE_KEYS; i++) {
        assert_int_equal(ops[i].status, 0);
    }
    victim = owner[0];
    mt_pause(victim);
    /* a GET and a PUT of every key, spread over all three masters */
    for (int i = 0; i < MT_PAUSE_KEYS; i++) {
        ops[2 * i] = mt_get(keys[i], strlen(keys[i]));
        ops[2 * i + 1] = mt_put(keys[i], strlen(keys[i]), "new", 3, 0);
    }
    t0 = rt_ms();
    mt_multi(&me, ops, 2 * MT_PAUSE_KEYS);
    took = rt_ms() - t0;
    mt_resume();
    print_message("      master :%d paused: the call took %lld ms "
                  "(timeout 400)\n",
                  victim, (long long)took);
    assert_true(took <= 400 + MT_SLACK_MS);
    for (int i = 0; i < MT_PAUSE_KEYS; i++) {
        if (owner[i] == victim) {
            nvictim++;
            assert_true(ops[2 * i].status == KVD_ETIMEDOUT ||
                        ops[2 * i].status == KVD_EUNAVAIL);
            assert_true(ops[2 * i + 1].status == KVD_ETIMEDOUT ||
                        ops[2 * i + 1].status == KVD_EUNAVAIL);
        } else {
            mt_assert_val(&ops[2 * i], keys[i], strlen(keys[i]));
            assert_int_equal(ops[2 * i + 1].status, 0);
        }
    }
    assert_true(nvictim > 0 && nvictim < MT_PAUSE_KEYS);
    mt_release(ops, 2 * MT_PAUSE_KEYS);
    /* served again: every key (retry while the connection comes back) */
    t0 = rt_ms();
    for (;;) {
        bool all = true;

        for (int i = 0; i < MT_PAUSE_KEYS; i++) {
            ops[i] = mt_put(keys[i], strlen(keys[i]), "back", 4, 0);
        }
        mt_multi(&me, ops, MT_PAUSE_KEYS);
        for (int i = 0; i < MT_PAUSE_KEYS; i++) {
            all = all && ops[i].status == 0;
        }
        if (all || rt_ms() - t0 > 10000) {
            break;
        }
        rt_sleep_ms(100);
    }
    for (int i = 0; i < MT_PAUSE_KEYS; i++) {
        ops[i] = mt_get(keys[i], strlen(keys[i]));
    }
    mt_multi(&me, ops, MT_PAUSE_KEYS);
    for (int i = 0; i < MT_PAUSE_KEYS; i++) {
        mt_assert_val(&ops[i], "back", 4);
    }
    mt_release(ops, MT_PAUSE_KEYS);
    mt_close(&me);
    assert_int_equal(rt_script(mt_script, "wait '%s'", mt_dir), 0);
}

static void
test_multi_follows_moved_and_ask_in_order(void **state)
{
    const char *opts[] = {"key_prefix=mt7/", "command_timeout_ms=5000"};
    struct mt_eng me;
    struct kvd_mop ops[8];
    int slot = mt_keyslot("mt7/", "{mv}a", 5);
    int src = rt_master_of_slot(mt_base, slot);
    int dst = mt_other_master(src);
    int aslot;
    int asrc;
    int adst;
    char src_id[64];
    char dst_id[64];
    uint64_t moved0;
    uint64_t alone0;
    redisReply *r;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_base, opts, 2), 0);
    ops[0] = mt_put("{mv}a", 5, "A", 1, 0);
    ops[1] = mt_put("other", 5, "O", 1, 0);
    mt_multi(&me, ops, 2);
    assert_int_equal(ops[0].status, 0);
    assert_int_equal(ops[1].status, 0);
    /* move the slot (and its key) to another master behind the engine */
    mt_myid(src, src_id, sizeof(src_id));
    mt_myid(dst, dst_id, sizeof(dst_id));
    mt_ok(rt_cmd(dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, src_id));
    mt_ok(rt_cmd(src, "CLUSTER SETSLOT %d MIGRATING %s", slot, dst_id));
    mt_ok(rt_cmd(src, "MIGRATE 127.0.0.1 %d mt7/{mv}a 0 5000", dst));
    mt_setslot_node(slot, dst_id, dst);
    moved0 = mt_stat(&me, "moved_redirects_total");
    alone0 = mt_stat(&me, "multi_ops_alone_total");
    ops[0] = mt_get("{mv}a", 5);
    ops[1] = mt_put("{mv}a", 5, "A2", 2, 0);
    ops[2] = mt_get("{mv}a", 5);
    ops[3] = mt_get("other", 5);
    ops[4] = mt_del("{mv}b", 5);
    mt_multi(&me, ops, 5);
    mt_assert_val(&ops[0], "A", 1);
    assert_int_equal(ops[1].status, 0);
    mt_assert_val(&ops[2], "A2", 2);
    mt_assert_val(&ops[3], "O", 1);
    assert_int_equal(ops[4].status, KVD_ENOTFOUND);
    mt_release(ops, 5);
    assert_true(mt_stat(&me, "moved_redirects_total") > moved0);
    assert_true(mt_stat(&me, "multi_ops_alone_total") - alone0 >= 4);
    r = rt_cmd(dst, "GET mt7/{mv}a");
    assert_non_null(r);
    assert_string_equal(r->str, "A2");
    freeReplyObject(r);

    /* ASK: a slot in migration; "old" still on the source, "new" not */
    aslot = mt_keyslot("mt7/", "{ask}old", 8);
    asrc = rt_master_of_slot(mt_base, aslot);
    adst = mt_other_master(asrc);
    ops[0] = mt_put("{ask}old", 8, "on-source", 9, 0);
    mt_multi(&me, ops, 1);
    assert_int_equal(ops[0].status, 0);
    mt_myid(asrc, src_id, sizeof(src_id));
    mt_myid(adst, dst_id, sizeof(dst_id));
    mt_ok(rt_cmd(adst, "CLUSTER SETSLOT %d IMPORTING %s", aslot, src_id));
    mt_ok(rt_cmd(asrc, "CLUSTER SETSLOT %d MIGRATING %s", aslot, dst_id));
    ops[0] = mt_get("{ask}old", 8);            /* served by the source */
    ops[1] = mt_get("{ask}new", 8);            /* ASK: absent at target */
    ops[2] = mt_put("{ask}new", 8, "N", 1, 0); /* ASK: to the target */
    ops[3] = mt_get("{ask}new", 8);            /* sees the put */
    ops[4] = mt_del("{ask}new", 8);
    ops[5] = mt_get("{ask}new", 8);
    mt_multi(&me, ops, 6);
    mt_assert_val(&ops[0], "on-source", 9);
    assert_int_equal(ops[1].status, KVD_ENOTFOUND);
    assert_int_equal(ops[2].status, 0);
    mt_assert_val(&ops[3], "N", 1);
    assert_int_equal(ops[4].status, 0);
    assert_int_equal(ops[5].status, KVD_ENOTFOUND);
    mt_release(ops, 6);
    /* finish the migration */
    mt_ok(rt_cmd(asrc, "MIGRATE 127.0.0.1 %d mt7/{ask}old 0 5000", adst));
    mt_setslot_node(aslot, dst_id, adst);
    ops[0] = mt_get("{ask}old", 8);
    mt_multi(&me, ops, 1);
    mt_assert_val(&ops[0], "on-source", 9);
    mt_release(ops, 1);
    mt_close(&me);
}

static void
test_multi_durability_wait(void **state)
{
    const char *ok_opts[] = {"key_prefix=mt8/", "durability=wait:1",
                             "command_timeout_ms=5000"};
    const char *short_opts[] = {"key_prefix=mt8/", "durability=wait:2",
                                "command_timeout_ms=300"};
    struct mt_eng me;
    struct kvd_mop ops[6];
    int64_t t0;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_base, ok_opts, 3), 0);
    ops[0] = mt_put("w1", 2, "one", 3, 0);
    ops[1] = mt_put("{w}2", 4, "two", 3, 0);
    ops[2] = mt_get("w1", 2);
    ops[3] = mt_del("nothing", 7);
    mt_multi(&me, ops, 4);
    assert_int_equal(ops[0].status, 0);
    assert_int_equal(ops[1].status, 0);
    mt_assert_val(&ops[2], "one", 3);
    assert_int_equal(ops[3].status, KVD_ENOTFOUND);
    mt_release(ops, 4);
    mt_close(&me);

    /* one replica per master: WAIT 2 cannot be satisfied */
    assert_int_equal(mt_open_port(&me, mt_base, short_opts, 3), 0);
    assert_int_equal(me.vt->put(me.db, "w3", 2, "x", 1, 0), KVD_ETIMEDOUT);
    ops[0] = mt_put("w1", 2, "uno", 3, 0);
    ops[1] = mt_get("w1", 2); /* the same node request as the put */
    ops[2] = mt_get("{w}2", 4);
    ops[3] = mt_del("{w}2", 4);
    t0 = rt_ms();
    mt_multi(&me, ops, 4);
    print_message("      wait:2 with one replica: %lld ms\n",
                  (long long)(rt_ms() - t0));
    assert_true(rt_ms() - t0 <= 300 + MT_SLACK_MS);
    assert_int_equal(ops[0].status, KVD_ETIMEDOUT);
    mt_assert_val(&ops[1], "uno", 3); /* a read as get reads it */
    mt_assert_val(&ops[2], "two", 3);
    assert_int_equal(ops[3].status, KVD_ETIMEDOUT);
    mt_release(ops, 4);
    assert_true(mt_stat(&me, "durability_wait_short_total") >= 3);
    mt_close(&me);
}

static void
test_multi_reads_from_replicas(void **state)
{
    const char *wopts[] = {"key_prefix=mt9/", "durability=wait:1"};
    const char *ropts[] = {"key_prefix=mt9/", "read_from_replicas=yes"};
    struct kvd_mop ops[30];
    char keys[30][16];
    struct mt_eng me;
    long long rep0 = 0;
    long long rep1 = 0;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_base, wopts, 2), 0);
    for (int i = 0; i < 30; i++) {
        snprintf(keys[i], sizeof(keys[i]), "r%d", i);
        ops[i] = mt_put(keys[i], strlen(keys[i]), keys[i], strlen(keys[i]), 0);
    }
    mt_multi(&me, ops, 30); /* confirmed by a replica: readable there */
    for (int i = 0; i < 30; i++) {
        assert_int_equal(ops[i].status, 0);
    }
    mt_close(&me);
    assert_int_equal(mt_open_port(&me, mt_base, ropts, 2), 0);
    for (int p = mt_base; p < mt_base + 6; p++) {
        rep0 += mt_is_master(p) ? 0 : mt_cmd_calls(p, "get");
    }
    for (int i = 0; i < 30; i++) {
        ops[i] = mt_get(keys[i], strlen(keys[i]));
    }
    mt_multi(&me, ops, 30);
    for (int i = 0; i < 30; i++) {
        mt_assert_val(&ops[i], keys[i], strlen(keys[i]));
    }
    mt_release(ops, 30);
    for (int p = mt_base; p < mt_base + 6; p++) {
        rep1 += mt_is_master(p) ? 0 : mt_cmd_calls(p, "get");
    }
    /* every GET of the call was answered by a replica */
    assert_true(rep1 - rep0 >= 30);
    mt_close(&me);
}

/* ------------------------------------------------------------- threads */

struct mt_thread {
    pthread_t tid;
    int id;
    struct mt_eng *me;
    char bad[256];
};

static void
mt_bad(struct mt_thread *t, const char *fmt, ...)
{
    va_list ap;

    if (t->bad[0] != '\0') {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(t->bad, sizeof(t->bad), fmt, ap);
    va_end(ap);
}

#define MT_TKEYS 50

/* Private keys "t<id>.<k>" hold "t<id>.<k>=<seq>"; shared keys "s<k>"
 * hold "s<k>=..." from any thread. Every GET must name its key, and a
 * private key the sequence this thread wrote last. */
static void *
mt_thread_run(void *arg)
{
    struct mt_thread *t = arg;
    unsigned seed = 99u + (unsigned)t->id;
    long last[MT_TKEYS] = {0}; /* 0: absent */
    char keys[40][32];
    char vals[40][64];
    struct kvd_mop ops[40];
    int kidx[40];
    long want[40];

    for (long seq = 1; seq <= MT_THREAD_OPS && t->bad[0] == '\0'; seq++) {
        int n = 1 + rand_r(&seed) % 40;

        for (int i = 0; i < n; i++) {
            bool shared = rand_r(&seed) % 4 == 0;
            int k = rand_r(&seed) % (shared ? 8 : MT_TKEYS);
            int r = rand_r(&seed) % 3;
            size_t kl;

            kl = shared ? (size_t)snprintf(keys[i], sizeof(keys[i]), "s%d", k)
                        : (size_t)snprintf(keys[i], sizeof(keys[i]), "t%d.%d",
                                           t->id, k);
            kidx[i] = shared ? -1 : k;
            if (r == 0) {
                int vl = snprintf(vals[i], sizeof(vals[i]), "%s=%ld", keys[i],
                                  seq * 100 + i);

                ops[i] = mt_put(keys[i], kl, vals[i], (size_t)vl, 0);
                if (!shared) {
                    last[k] = seq * 100 + i;
                }
            } else if (r == 1 && !shared) {
                ops[i] = mt_del(keys[i], kl);
                want[i] = last[k];
                last[k] = 0;
            } else {
                ops[i] = mt_get(keys[i], kl);
                want[i] = shared ? -1 : last[k];
            }
        }
        if (t->me->vt->multi(t->me->db, ops, (size_t)n) != 0) {
            mt_bad(t, "multi failed");
        }
        for (int i = 0; i < n; i++) {
            const struct kvd_mop *op = &ops[i];
            size_t kl = op->klen;

            if (op->type == KVD_MOP_PUT && op->status != 0) {
                mt_bad(t, "put %s: %d", keys[i], op->status);
            } else if (op->type == KVD_MOP_DEL &&
                       op->status != (want[i] ? 0 : KVD_ENOTFOUND)) {
                mt_bad(t, "del %s: %d", keys[i], op->status);
            } else if (op->type == KVD_MOP_GET && op->status == 0) {
                const char *v = op->out.data;
                long got = -1;

                if (op->out.len <= kl || memcmp(v, keys[i], kl) != 0 ||
                    v[kl] != '=') {
                    mt_bad(t, "get %s: a value of another key: %.*s", keys[i],
                           (int)op->out.len, v);
                } else if (kidx[i] >= 0 &&
                           (sscanf(v + kl + 1, "%ld", &got) != 1 ||
                            got != want[i])) {
                    mt_bad(t, "get %s: %ld, expected %ld", keys[i], got,
                           want[i]);
                }
                kvd_val_release(&ops[i].out);
            } else if (op->type == KVD_MOP_GET &&
                       (op->status != KVD_ENOTFOUND ||
                        (kidx[i] >= 0 && want[i] != 0))) {
                mt_bad(t, "get %s: status %d, expected %ld", keys[i],
                       op->status, want[i]);
            }
        }
        /* single calls share the pipes with the multi calls */
        if (seq % 5 == 0) {
            char key[32];
            struct kvd_val v = {0};
            int k = rand_r(&seed) % MT_TKEYS;
            int rc;

            snprintf(key, sizeof(key), "t%d.%d", t->id, k);
            rc = t->me->vt->get(t->me->db, key, strlen(key), &v);
            if (rc != (last[k] ? 0 : KVD_ENOTFOUND)) {
                mt_bad(t, "get %s alone: %d", key, rc);
            }
            if (rc == 0) {
                kvd_val_release(&v);
            }
        }
    }
    return NULL;
}

static void
test_multi_threads_get_their_own_replies(void **state)
{
    const char *opts[] = {"key_prefix=mt10/", "command_timeout_ms=10000",
                          "pool_size=1"};
    static struct mt_thread th[MT_THREADS];
    struct mt_eng me;
    struct kvd_mop ops[MT_THREADS * MT_TKEYS];
    char keys[MT_THREADS * MT_TKEYS][32];
    int n = 0;

    (void)state;
    assert_int_equal(mt_open_port(&me, mt_base, opts, 3), 0);
    for (int i = 0; i < MT_THREADS; i++) { /* start from nothing */
        for (int k = 0; k < MT_TKEYS; k++, n++) {
            snprintf(keys[n], sizeof(keys[n]), "t%d.%d", i, k);
            ops[n] = mt_del(keys[n], strlen(keys[n]));
        }
    }
    mt_multi(&me, ops, (size_t)n);
    for (int i = 0; i < MT_THREADS; i++) {
        th[i] = (struct mt_thread){.id = i, .me = &me};
        assert_int_equal(
            pthread_create(&th[i].tid, NULL, mt_thread_run, &th[i]), 0);
    }
    for (int i = 0; i < MT_THREADS; i++) {
        pthread_join(th[i].tid, NULL);
    }
    for (int i = 0; i < MT_THREADS; i++) {
        if (th[i].bad[0] != '\0') {
            print_error("thread %d: %s\n", i, th[i].bad);
        }
        assert_string_equal(th[i].bad, "");
    }
    print_message("      %llu multi calls, %llu requests in %llu writes\n",
                  (unsigned long long)mt_stat(&me, "multi_calls_total"),
                  (unsigned long long)mt_stat(&me, "pipeline_requests_total"),
                  (unsigned long long)mt_stat(&me, "pipeline_writes_total"));
    mt_close(&me);
}

int
main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_multi_matches_model_on_cluster,
                                  mt_teardown),
        cmocka_unit_test_teardown(test_multi_matches_model_on_plain_server,
                                  mt_teardown),
        cmocka_unit_test_teardown(test_multi_same_key_in_array_order,
                                  mt_teardown),
        cmocka_unit_test_teardown(test_multi_binary_empty_and_big_values,
                                  mt_teardown),
        cmocka_unit_test_teardown(test_multi_expiry, mt_teardown),
        cmocka_unit_test_teardown(
            test_multi_paused_master_times_out_only_its_ops, mt_teardown),
        cmocka_unit_test_teardown(test_multi_follows_moved_and_ask_in_order,
                                  mt_teardown),
        cmocka_unit_test_teardown(test_multi_durability_wait, mt_teardown),
        cmocka_unit_test_teardown(test_multi_reads_from_replicas, mt_teardown),
        cmocka_unit_test_teardown(test_multi_threads_get_their_own_replies,
                                  mt_teardown),
    };

    if (argc != 6) {
        fprintf(stderr,
                "usage: %s ENGINE.so SCRIPT CLUSTER_DIR BASEPORT "
                "SINGLE_PORT\n",
                argv[0]);
        return 2;
    }
    mt_engine = argv[1];
    mt_script = argv[2];
    mt_dir = argv[3];
    mt_base = atoi(argv[4]);
    mt_single = atoi(argv[5]);
    kvd_log_set_level(KVD_LOG_ERROR);
    return cmocka_run_group_tests_name("redis_multi", tests, mt_setup, NULL);
}
