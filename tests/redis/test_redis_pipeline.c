/*
 * tests/redis/test_redis_pipeline.c -- the redis engine's auto-pipelining:
 * many threads share one connection and must each get their own replies.
 *
 * Every value names its key, its writer and a sequence number
 * ("<key>|<thread>|<seq>|<padding>"), so a reply handed to the wrong
 * caller shows: a get whose value names another key, or (for a thread's
 * private keys) an older value than the thread was told it wrote.
 *
 *   - hammer: THREADS threads, pool_size=1 (one connection per node), a
 *     mix of puts (some with an expiry), gets, dels, one-key batches and
 *     multi calls (gets and puts, a key sometimes twice) over private and
 *     shared keys; every reply is checked, and the engine must have sent
 *     fewer writes than requests (they shared).
 *   - pause: the same load with command_timeout_ms = 500 while the server
 *     is SIGSTOPped mid-pipeline for 1.5 s: every call returns 0 or
 *     KVD_ETIMEDOUT within the timeout plus slack, calls that fail are
 *     ETIMEDOUT, and after SIGCONT the replies are still each caller's
 *     own (then every thread writes and reads back every key exactly).
 *   - flapping: the same load, with the threads pausing at random
 *     between calls (so requests queue at different times behind a
 *     stalled write and share the next one with spread-out deadlines),
 *     while the server is paused again and again for 250 to 650 ms
 *     against a 400 ms timeout: within one pipelined write some requests
 *     time out and leave while others still get their replies late, and
 *     nobody may get a reply that was another's.
 *
 * The threads call the engine directly (a second instance opened from the
 * loaded plugin), not through the store, whose per-key-stripe write lock
 * would make a writer wait for other writers' timeouts as well.
 *
 * Usage: test_redis_pipeline ENGINE.so SCRIPT SERVER_DIR PORT
 * (SERVER_DIR/PORT: a plain redis-server of its own, since it is paused).
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

#include "core/hostsvc.h"
#include "core/log.h"
#include "core/status.h"
#include "rt_util.h"

#define PL_THREADS    16
#define PL_KEYS       6 /* private keys per thread */
#define PL_SHARED     4 /* keys every thread writes */
#define PL_OPS        1500
#define PL_TIMEOUT_MS 500
#define PL_SLACK_MS   1500 /* a noisy 2-core machine */
#define PL_PAUSE_MS   1500
#define PL_MULTI      6 /* operations of a multi call, at most */
#define PL_FLAPS      6

static const char *pl_engine;
static const char *pl_script;
static const char *pl_dir;
static int pl_port;

/* The plugin loaded (through the store, for the loader and options), and
 * a direct engine instance opened with the same options. */
struct pl_eng {
    struct rt_eng e;
    const struct kvd_engine_vtable *vt;
    const struct kvd_host *host;
    kvd_engine *db;
};

struct pl_thread {
    pthread_t tid;
    int id;
    struct pl_eng *e;
    unsigned seed;
    atomic_bool *stop; /* NULL: run PL_OPS operations */
    int think_ms;      /* sleep 0..think_ms between calls (0: none) */
    /* per private key: sequence last acknowledged, and highest tried
     * (a put that timed out may still have landed) */
    long acked[PL_KEYS];
    long tried[PL_KEYS];
    int deleted[PL_KEYS]; /* 0: no del since the last put, 1: a del was
                           * acknowledged, 2: a del timed out (maybe) */
    /* results */
    atomic_long ops; /* read by the main thread while running */
    long timeouts;
    long other_errors;
    int64_t slowest_ms;
    char bad[256]; /* first wrong reply, "" if none */
};

static void
pl_key(char *buf, size_t len, int thread, int k, bool shared)
{
    if (shared) {
        snprintf(buf, len, "s%d", k);
    } else {
        snprintf(buf, len, "p%d.%d", thread, k);
    }
}

/* "<key>|<thread>|<seq>|" and a padding of 0..299 bytes. */
static size_t
pl_value(char *buf, size_t len, const char *key, int thread, long seq,
         unsigned *seed)
{
    int n = snprintf(buf, len, "%s|%d|%ld|", key, thread, seq);
    size_t pad = (size_t)(rand_r(seed) % 300);

    memset(buf + n, 'a' + (int)(seq % 26), pad);
    return (size_t)n + pad;
}

static void
pl_bad(struct pl_thread *t, const char *fmt, ...)
{
    va_list ap;

    if (t->bad[0] != '\0') {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(t->bad, sizeof(t->bad), fmt, ap);
    va_end(ap);
}

/* A value read for key: it must name key; for a private key of ours its
 * sequence must be in [acked, tried]. */
static void
pl_check(struct pl_thread *t, const char *key, int k, bool shared,
         const struct kvd_val *v)
{
    size_t kl = strlen(key);
    int thread = -1;
    long seq = -1;

    if (v->len < kl + 1 || memcmp(v->data, key, kl) != 0 ||
        ((const char *)v->data)[kl] != '|' ||
        sscanf((const char *)v->data + kl + 1, "%d|%ld|", &thread, &seq) != 2) {
        pl_bad(t,
               "get %s returned a value of %zu bytes for another key: "
               "%.*s",
               key, v->len, (int)(v->len < 40 ? v->len : 40),
               (const char *)v->data);
        return;
    }
    if (!shared &&
        (thread != t->id || seq < t->acked[k] || seq > t->tried[k])) {
        pl_bad(t, "get %s: thread %d seq %ld, expected thread %d seq %ld..%ld",
               key, thread, seq, t->id, t->acked[k], t->tried[k]);
    }
}

static void
pl_count(struct pl_thread *t, int rc, int64_t t0)
{
    int64_t took = rt_ms() - t0;

    t->ops++;
    if (took > t->slowest_ms) {
        t->slowest_ms = took;
    }
    if (rc == KVD_ETIMEDOUT) {
        t->timeouts++;
    } else if (rc != 0 && rc != KVD_ENOTFOUND) {
        t->other_errors++;
        pl_bad(t, "status %d (%s)", rc, kvd_status_name(rc));
    }
}

/* The status of one operation, counted as pl_count counts a call's. */
static int
pl_worse(int worst, int rc)
{
    if (rc != 0 && rc != KVD_ENOTFOUND && rc != KVD_ETIMEDOUT) {
        return rc;
    }
    return worst == 0 || worst == KVD_ENOTFOUND ? rc : worst;
}

/* A get's answer for key k (shared or not): check it as pl_one_op does. */
static void
pl_check_get(struct pl_thread *t, const char *key, int k, bool shared, int rc,
             const struct kvd_val *v)
{
    if (rc == 0) {
        pl_check(t, key, k, shared, v);
        if (!shared && t->deleted[k] == 1 && t->tried[k] == t->acked[k]) {
            pl_bad(t, "get %s found a key deleted since", key);
        }
        if (v->expire_ms != KVD_NO_EXPIRY &&
            v->expire_ms < t->e->host->now_ms(t->e->host)) {
            pl_bad(t, "get %s: expiry %lld is in the past", key,
                   (long long)v->expire_ms);
        }
    } else if (rc == KVD_ENOTFOUND && !shared && t->deleted[k] == 0 &&
               t->acked[k] > 0 && t->tried[k] == t->acked[k]) {
        pl_bad(t, "get %s: not found after put seq %ld", key, t->acked[k]);
    }
}

/* One multi call of 2..PL_MULTI gets and puts (sequences seq + j, in
 * array order, so a get after a put of its key must see at least it). */
static void
pl_multi_op(struct pl_thread *t, long seq, int64_t t0)
{
    char keys[PL_MULTI][32];
    char vals[PL_MULTI][400];
    struct kvd_mop ops[PL_MULTI];
    bool shared[PL_MULTI];
    int kk[PL_MULTI];
    int n = 2 + rand_r(&t->seed) % (PL_MULTI - 1);
    int worst = 0;

    for (int j = 0; j < n; j++) {
        size_t kl;

        shared[j] = rand_r(&t->seed) % 4 == 0;
        kk[j] = rand_r(&t->seed) % (shared[j] ? PL_SHARED : PL_KEYS);
        pl_key(keys[j], sizeof(keys[j]), t->id, kk[j], shared[j]);
        kl = strlen(keys[j]);
        if (rand_r(&t->seed) % 2 == 0) {
            size_t vl = pl_value(vals[j], sizeof(vals[j]), keys[j], t->id,
                                 seq + j, &t->seed);

            ops[j] = (struct kvd_mop){.type = KVD_MOP_PUT,
                                      .key = keys[j],
                                      .klen = kl,
                                      .val = vals[j],
                                      .vlen = vl};
            if (!shared[j]) {
                t->tried[kk[j]] = seq + j;
            }
        } else {
            ops[j] = (struct kvd_mop){
                .type = KVD_MOP_GET, .key = keys[j], .klen = kl};
        }
    }
    if (t->e->vt->multi(t->e->db, ops, (size_t)n) != 0) {
        pl_bad(t, "multi failed as a whole");
    }
    for (int j = 0; j < n; j++) {
        int rc = ops[j].status;

        worst = pl_worse(worst, rc);
        if (ops[j].type == KVD_MOP_PUT) {
            if (rc == 0 && !shared[j]) {
                t->acked[kk[j]] = seq + j;
                t->deleted[kk[j]] = 0;
            }
            continue;
        }
        pl_check_get(t, keys[j], kk[j], shared[j], rc, &ops[j].out);
        if (rc == 0) {
            kvd_val_release(&ops[j].out);
        }
    }
    pl_count(t, worst, t0);
}

static void
pl_one_op(struct pl_thread *t, long seq)
{
    char key[32];
    char val[400];
    struct kvd_val v = {0};
    int op = rand_r(&t->seed) % 10;
    bool shared = rand_r(&t->seed) % 4 == 0;
    int k = rand_r(&t->seed) % (shared ? PL_SHARED : PL_KEYS);
    int64_t t0 = rt_ms();
    int64_t exp = 0;
    size_t vl;
    int rc;

    pl_key(key, sizeof(key), t->id, k, shared);
    if (op == 9) {
        pl_multi_op(t, seq, t0);
        return;
    }
    if (op < 4) { /* put, some with an expiry an hour away */
        vl = pl_value(val, sizeof(val), key, t->id, seq, &t->seed);
        if (op == 0) {
            exp = t->e->host->now_ms(t->e->host) + 3600 * 1000 + seq;
        }
        if (!shared) {
            t->tried[k] = seq;
        }
        rc = t->e->vt->put(t->e->db, key, strlen(key), val, vl, exp);
        if (rc == 0 && !shared) {
            t->acked[k] = seq;
            t->deleted[k] = 0;
        }
    } else if (op < 5 && !shared) { /* del */
        rc = t->e->vt->del(t->e->db, key, strlen(key));
        if (rc == 0 || rc == KVD_ENOTFOUND) {
            t->deleted[k] = 1;
        } else if (t->deleted[k] == 0) {
            t->deleted[k] = 2;
        }
    } else if (op < 6) { /* a one-key batch: MULTI/EXEC */
        struct kvd_op o = {.type = KVD_OP_PUT, .key = key, .klen = strlen(key)};
        struct kvd_err err = {0};

        vl = pl_value(val, sizeof(val), key, t->id, seq, &t->seed);
        o.val = val;
        o.vlen = vl;
        if (!shared) {
            t->tried[k] = seq;
        }
        rc = t->e->vt->batch(t->e->db, &o, 1, &err);
        if (rc == 0 && !shared) {
            t->acked[k] = seq;
            t->deleted[k] = 0;
        }
    } else { /* get */
        rc = t->e->vt->get(t->e->db, key, strlen(key), &v);
        pl_check_get(t, key, k, shared, rc, &v);
        if (rc == 0) {
            kvd_val_release(&v);
        }
    }
    pl_count(t, rc, t0);
}

static void *
pl_run(void *arg)
{
    struct pl_thread *t = arg;
    long seq = 1;

    /* a step of PL_MULTI: a multi call's operations use seq..seq+5 */
    if (t->stop == NULL) {
        for (long i = 0; i < PL_OPS; i++, seq += PL_MULTI) {
            pl_one_op(t, seq);
        }
    } else {
        while (!atomic_load(t->stop)) {
            pl_one_op(t, seq);
            seq += PL_MULTI;
            if (t->think_ms > 0) {
                rt_sleep_ms(rand_r(&t->seed) % t->think_ms);
            }
        }
    }
    return NULL;
}

/* prefix: "key_prefix=...", a fresh one per test (keys are not
 * cleared). */
static int
pl_open(struct pl_eng *pe, const char *prefix, const char *timeout)
{
    char nodes[64];
    const char *opts[] = {nodes, prefix, "pool_size=1", timeout,
                          "connect_timeout_ms=300"};
    struct kvd_err err = {0};

    memset(pe, 0, sizeof(*pe));
    snprintf(nodes, sizeof(nodes), "nodes=127.0.0.1:%d", pl_port);
    if (rt_open(&pe->e, pl_engine, opts, 5, &err) != 0) {
        print_error("open: %s\n", err.msg);
        return -1;
    }
    pe->vt = pe->e.vt;
    pe->host = kvd_hostsvc_default();
    if (pe->vt->open(pe->host, pe->e.opts, "/tmp", &pe->db, &err) != 0) {
        print_error("open: %s\n", err.msg);
        rt_close(&pe->e);
        return -1;
    }
    /* start from no keys, also when the server outlived an earlier run */
    for (int i = 0; i < PL_THREADS; i++) {
        for (int k = 0; k < PL_KEYS + PL_SHARED; k++) {
            char key[32];
            int rc;

            pl_key(key, sizeof(key), i, k % PL_KEYS, k >= PL_KEYS);
            rc = pe->vt->del(pe->db, key, strlen(key));
            if (rc != 0 && rc != KVD_ENOTFOUND) {
                print_error("del %s: %d\n", key, rc);
                pe->vt->close(pe->db, NULL);
                rt_close(&pe->e);
                return -1;
            }
        }
    }
    return 0;
}

static void
pl_close(struct pl_eng *pe)
{
    pe->vt->close(pe->db, NULL);
    rt_close(&pe->e);
}

struct pl_stat {
    const char *name;
    uint64_t value;
};

static void
pl_stat_cb(void *ctx, const char *name, uint64_t value)
{
    struct pl_stat *s = ctx;

    if (strcmp(name, s->name) == 0) {
        s->value = value;
    }
}

static uint64_t
pl_stat(struct pl_eng *pe, const char *name)
{
    struct pl_stat s = {.name = name, .value = UINT64_MAX};
    struct kvd_engine_stats st = {.struct_size = sizeof(st)};

    assert_int_equal(pe->vt->stats(pe->db, &st, pl_stat_cb, &s), 0);
    return s.value;
}

static void
pl_start(struct pl_thread *th, struct pl_eng *e, atomic_bool *stop,
         int think_ms)
{
    for (int i = 0; i < PL_THREADS; i++) {
        memset(&th[i], 0, sizeof(th[i]));
        th[i].id = i;
        th[i].e = e;
        th[i].seed = 1234u + (unsigned)i;
        th[i].stop = stop;
        th[i].think_ms = think_ms;
        assert_int_equal(pthread_create(&th[i].tid, NULL, pl_run, &th[i]), 0);
    }
}

static void
pl_join(struct pl_thread *th)
{
    for (int i = 0; i < PL_THREADS; i++) {
        pthread_join(th[i].tid, NULL);
    }
}

/* Write every private key of every thread and read it back exactly. */
static void
pl_verify_exact(struct pl_eng *e)
{
    for (int i = 0; i < PL_THREADS; i++) {
        for (int k = 0; k < PL_KEYS; k++) {
            char key[32];
            char val[400];
            unsigned seed = (unsigned)(i * 100 + k);
            struct kvd_val v = {0};
            size_t vl;

            pl_key(key, sizeof(key), i, k, false);
            vl = pl_value(val, sizeof(val), key, i, 999999, &seed);
            assert_int_equal(e->vt->put(e->db, key, strlen(key), val, vl, 0),
                             0);
            assert_int_equal(e->vt->get(e->db, key, strlen(key), &v), 0);
            assert_int_equal(v.len, vl);
            assert_memory_equal(v.data, val, vl);
            kvd_val_release(&v);
        }
    }
}

static void
test_pipeline_threads_get_their_own_replies(void **state)
{
    static struct pl_thread th[PL_THREADS];
    struct pl_eng e;
    long ops = 0;
    uint64_t writes;
    uint64_t reqs;

    (void)state;
    assert_int_equal(pl_open(&e, "key_prefix=pl1/", "command_timeout_ms=10000"),
                     0);
    pl_start(th, &e, NULL, 0);
    pl_join(th);
    for (int i = 0; i < PL_THREADS; i++) {
        if (th[i].bad[0] != '\0') {
            print_error("thread %d: %s\n", i, th[i].bad);
        }
        assert_string_equal(th[i].bad, "");
        assert_int_equal(th[i].timeouts, 0);
        ops += th[i].ops;
    }
    writes = pl_stat(&e, "pipeline_writes_total");
    reqs = pl_stat(&e, "pipeline_requests_total");
    print_message("      %ld operations: %llu requests in %llu writes\n", ops,
                  (unsigned long long)reqs, (unsigned long long)writes);
    assert_int_equal(ops, (long)PL_THREADS * PL_OPS);
    assert_true(reqs >= (uint64_t)ops);
    /* 16 threads on one connection: some requests went out together */
    assert_true(writes < reqs);
    pl_verify_exact(&e);
    pl_close(&e);
}

static void
test_pipeline_pause_times_out_each_caller_then_stays_aligned(void **state)
{
    static struct pl_thread th[PL_THREADS];
    atomic_bool stop = false;
    struct pl_eng e;
    long before[PL_THREADS];
    long timeouts = 0;
    int64_t slowest = 0;

    (void)state;
    assert_int_equal(pl_open(&e, "key_prefix=pl2/", "command_timeout_ms=500"),
                     0);
    pl_start(th, &e, &stop, 0);
    rt_sleep_ms(300);
    for (int i = 0; i < PL_THREADS; i++) {
        before[i] = th[i].ops;
    }
    assert_int_equal(rt_script(pl_script, "pause '%s'", pl_dir), 0);
    rt_sleep_ms(PL_PAUSE_MS);
    assert_int_equal(rt_script(pl_script, "resume '%s'", pl_dir), 0);
    rt_sleep_ms(1500); /* served again, with the checks running */
    atomic_store(&stop, true);
    pl_join(th);
    for (int i = 0; i < PL_THREADS; i++) {
        if (th[i].bad[0] != '\0' || th[i].timeouts == 0) {
            print_error("thread %d: %ld ops (%ld before the pause), %ld "
                        "timeouts, slowest %lld ms: %s\n",
                        i, th[i].ops, before[i], th[i].timeouts,
                        (long long)th[i].slowest_ms, th[i].bad);
        }
        assert_string_equal(th[i].bad, "");
        assert_int_equal(th[i].other_errors, 0);
        /* it was mid-load when the server stopped, and timed out */
        assert_true(before[i] > 0);
        assert_true(th[i].timeouts > 0);
        timeouts += th[i].timeouts;
        slowest = th[i].slowest_ms > slowest ? th[i].slowest_ms : slowest;
    }
    print_message("      %ld timeouts; slowest call %lld ms (timeout %d)\n",
                  timeouts, (long long)slowest, PL_TIMEOUT_MS);
    assert_true(slowest <= PL_TIMEOUT_MS + PL_SLACK_MS);
    pl_verify_exact(&e);
    pl_close(&e);
}

static void
test_pipeline_flapping_server_never_crosses_replies(void **state)
{
    static struct pl_thread th[PL_THREADS];
    atomic_bool stop = false;
    struct pl_eng e;
    long timeouts = 0;
    long ops = 0;

    (void)state;
    assert_int_equal(pl_open(&e, "key_prefix=pl3/", "command_timeout_ms=400"),
                     0);
    pl_start(th, &e, &stop, 40);
    rt_sleep_ms(200);
    for (int i = 0; i < PL_FLAPS; i++) {
        assert_int_equal(rt_script(pl_script, "pause '%s'", pl_dir), 0);
        rt_sleep_ms(250 + i * 80); /* around the timeout */
        assert_int_equal(rt_script(pl_script, "resume '%s'", pl_dir), 0);
        rt_sleep_ms(150);
    }
    atomic_store(&stop, true);
    pl_join(th);
    for (int i = 0; i < PL_THREADS; i++) {
        if (th[i].bad[0] != '\0') {
            print_error("thread %d: %s\n", i, th[i].bad);
        }
        assert_string_equal(th[i].bad, "");
        assert_int_equal(th[i].other_errors, 0);
        timeouts += th[i].timeouts;
        ops += th[i].ops;
    }
    print_message("      %ld calls, %ld timed out\n", ops, timeouts);
    assert_true(timeouts > 0);
    pl_verify_exact(&e);
    pl_close(&e);
}

int
main(int argc, char **argv)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_threads_get_their_own_replies),
        cmocka_unit_test(
            test_pipeline_pause_times_out_each_caller_then_stays_aligned),
        cmocka_unit_test(test_pipeline_flapping_server_never_crosses_replies),
    };

    if (argc != 5) {
        fprintf(stderr, "usage: %s ENGINE.so SCRIPT DIR PORT\n", argv[0]);
        return 2;
    }
    pl_engine = argv[1];
    pl_script = argv[2];
    pl_dir = argv[3];
    pl_port = atoi(argv[4]);
    kvd_log_set_level(KVD_LOG_ERROR);
    return cmocka_run_group_tests_name("redis_pipeline", tests, NULL, NULL);
}
