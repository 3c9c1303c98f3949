/*
 * test_btree_threads.c -- concurrent readers against committing writers.
 *
 * 1. Consistent scans: writers rewrite a group of GROUP keys in atomic
 *    batches, every key of the group getting the same generation number
 *    (and some batches a value in an overflow run); readers scan the whole
 *    store and get keys at random meanwhile. Every scan must see one
 *    generation per group (one snapshot), and every get a well-formed
 *    value. The writers run a fixed number of batches; the readers scan
 *    until the writers are done, and at least once after: no timing.
 *    Also under sync = everysec with slow fdatasyncs, so the background
 *    commits (which release the writer lock while they sync) overlap the
 *    writers and readers.
 * 2. Group commit: 8 writers with sync = always put distinct keys; every
 *    acknowledged key must be there after reopen, and the engine's commit
 *    count can never exceed the number of puts.
 * 3. The age of the oldest snapshot a reader holds, on the host's
 *    monotonic clock (frozen by the test host, so the age is exact).
 *
 * Worker threads record failures in their own structs; the test thread
 * asserts (cmocka is not thread-safe).
 */
#include "bt_test.h"

#include <pthread.h>

#define GROUPS  4
#define GROUP   40
#define WRITERS 2
#define READERS 4
#define BATCHES 400
#define BIG_VAL 3000

static const struct kvd_engine_vtable *vt;

struct shared {
    kvd_engine *e;
    _Atomic int writers_left;
};

struct worker {
    struct shared *sh;
    int id;
    pthread_t t;
    long scans;
    char fail[300];
};

static size_t
gkey(int g, int i, char *k)
{
    return (size_t)sprintf(k, "g%d-%03d", g, i);
}

static void *
writer_main(void *arg)
{
    struct worker *w = arg;
    struct kvd_op ops[GROUP];
    char keys[GROUP][16];
    static _Thread_local unsigned char val[BIG_VAL];
    struct kvd_err err;

    for (int b = 0; b < BATCHES && w->fail[0] == '\0'; b++) {
        int g = (w->id + b * WRITERS) % GROUPS;
        unsigned gen = (unsigned)(w->id * 100000 + b);
        size_t vlen = b % 10 == 0 ? BIG_VAL : 12;
        for (int i = 0; i < GROUP; i++) {
            ops[i].type = KVD_OP_PUT;
            ops[i].key = keys[i];
            ops[i].klen = gkey(g, i, keys[i]);
            ops[i].val = val;
            ops[i].vlen = vlen;
            ops[i].expire_ms = 0;
        }
        memset(val, 'v', sizeof(val));
        snprintf((char *)val, 12, "%011u", gen);
        int rc = vt->batch(w->sh->e, ops, GROUP, &err);
        if (rc != 0) {
            snprintf(w->fail, sizeof(w->fail), "batch: %d %s", rc, err.msg);
        }
    }
    atomic_fetch_sub(&w->sh->writers_left, 1);
    return NULL;
}

static void
scan_once(struct worker *w)
{
    struct kvd_iter_opts o;
    struct kvd_err err;
    struct kvd_entry e;
    kvd_iter *it;
    char gen[GROUPS][12];
    int count[GROUPS] = {0};

    memset(&o, 0, sizeof(o));
    memset(gen, 0, sizeof(gen));
    if (vt->iter_open(w->sh->e, &o, &it, &err) != 0) {
        snprintf(w->fail, sizeof(w->fail), "iter_open: %s", err.msg);
        return;
    }
    while (vt->iter_next(it, &e) == 0) {
        int g = ((const char *)e.key)[1] - '0';
        if (g < 0 || g >= GROUPS || e.vlen < 11) {
            snprintf(w->fail, sizeof(w->fail), "bad entry");
            break;
        }
        if (count[g]++ == 0) {
            memcpy(gen[g], e.val, 11);
        } else if (memcmp(gen[g], e.val, 11) != 0) {
            snprintf(w->fail, sizeof(w->fail),
                     "scan saw generations %.11s and %.11s in group %d", gen[g],
                     (const char *)e.val, g);
            break;
        }
    }
    vt->iter_close(it);
    for (int g = 0; g < GROUPS && w->fail[0] == '\0'; g++) {
        if (count[g] != 0 && count[g] != GROUP) {
            snprintf(w->fail, sizeof(w->fail), "scan saw %d keys of group %d",
                     count[g], g);
        }
    }
    w->scans++;
}

static void *
reader_main(void *arg)
{
    struct worker *w = arg;
    struct bt_rng r = {(uint64_t)w->id};

    for (;;) {
        bool last = atomic_load(&w->sh->writers_left) == 0;
        scan_once(w);
        for (int i = 0; i < 50 && w->fail[0] == '\0'; i++) {
            char k[32];
            struct kvd_val v;
            size_t kl =
                gkey((int)bt_below(&r, GROUPS), (int)bt_below(&r, GROUP), k);
            int rc = vt->get(w->sh->e, k, kl, &v);
            if (rc == 0) {
                if (v.len != 12 && v.len != BIG_VAL) {
                    snprintf(w->fail, sizeof(w->fail), "get: %zu bytes", v.len);
                }
                kvd_val_release(&v);
            } else if (rc != KVD_ENOTFOUND) {
                snprintf(w->fail, sizeof(w->fail), "get: %d", rc);
            }
        }
        if (last || w->fail[0] != '\0') {
            break;
        }
    }
    return NULL;
}

static void
run_scans(int sync)
{
    char *dir = th_mkdtemp();
    struct bt_opts o;
    struct shared sh;
    struct worker ws[WRITERS + READERS];

    bt_test_opts_small(&o);
    o.sync = sync;
    o.sync_interval = 10;
    sh.e = bt_test_open(vt, dir, &o);
    atomic_init(&sh.writers_left, WRITERS);
    memset(ws, 0, sizeof(ws));
    for (int i = 0; i < WRITERS + READERS; i++) {
        ws[i].sh = &sh;
        ws[i].id = i;
        assert_int_equal(pthread_create(&ws[i].t, NULL,
                                        i < WRITERS ? writer_main : reader_main,
                                        &ws[i]),
                         0);
    }
    for (int i = 0; i < WRITERS + READERS; i++) {
        pthread_join(ws[i].t, NULL);
    }
    for (int i = 0; i < WRITERS + READERS; i++) {
        if (ws[i].fail[0] != '\0') {
            fail_msg("thread %d: %s", i, ws[i].fail);
        }
        if (i >= WRITERS) {
            assert_true(ws[i].scans >= 1);
        }
    }
    bt_test_close(vt, sh.e);
    th_rmrf(dir);
    free(dir);
}

static void
test_scans_see_one_snapshot(void **state)
{
    (void)state;
    run_scans(BT_SYNC_NEVER);
}

static void
test_scans_see_one_snapshot_group_commit(void **state)
{
    (void)state;
    run_scans(BT_SYNC_ALWAYS);
}

static void
test_scans_see_one_snapshot_during_commit_syncs(void **state)
{
    (void)state;
    atomic_store(&th_io.sync_delay_us, 2000);
    run_scans(BT_SYNC_EVERYSEC);
    atomic_store(&th_io.sync_delay_us, 0);
}

/* ---- group commit ---- */

#define PUTTERS    8
#define PER_PUTTER 60

struct putter {
    kvd_engine *e;
    int id;
    pthread_t t;
    int fail;
};

static void *
putter_main(void *arg)
{
    struct putter *p = arg;

    for (int i = 0; i < PER_PUTTER; i++) {
        char k[32];
        int n = sprintf(k, "p%d-%03d", p->id, i);
        if (vt->put(p->e, k, (size_t)n, k, (size_t)n, 0) != 0) {
            p->fail = 1;
        }
    }
    return NULL;
}

static void
count_stat(void *ctx, const char *name, uint64_t v)
{
    if (strcmp(name, "commits_total") == 0) {
        *(uint64_t *)ctx = v;
    }
}

static void
test_group_commit_keeps_every_write(void **state)
{
    char *dir = th_mkdtemp();
    struct bt_opts o;
    struct putter ps[PUTTERS];
    struct kvd_engine_stats st;
    uint64_t commits = 0;
    kvd_engine *e;

    (void)state;
    bt_test_opts(&o);
    o.sync = BT_SYNC_ALWAYS;
    e = bt_test_open(vt, dir, &o);
    for (int i = 0; i < PUTTERS; i++) {
        ps[i].e = e;
        ps[i].id = i;
        ps[i].fail = 0;
        assert_int_equal(pthread_create(&ps[i].t, NULL, putter_main, &ps[i]),
                         0);
    }
    for (int i = 0; i < PUTTERS; i++) {
        pthread_join(ps[i].t, NULL);
        assert_int_equal(ps[i].fail, 0);
    }
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    assert_int_equal(vt->stats(e, &st, count_stat, &commits), 0);
    assert_int_equal(st.keys, PUTTERS * PER_PUTTER);
    assert_true(commits >= 1 && commits <= PUTTERS * PER_PUTTER);
    print_message("%d puts from %d threads in %llu commits\n",
                  PUTTERS * PER_PUTTER, PUTTERS, (unsigned long long)commits);
    bt_test_close(vt, e);
    e = bt_test_open(vt, dir, &o);
    for (int t = 0; t < PUTTERS; t++) {
        for (int i = 0; i < PER_PUTTER; i++) {
            char k[32];
            struct kvd_val v;
            int n = sprintf(k, "p%d-%03d", t, i);
            assert_int_equal(vt->get(e, k, (size_t)n, &v), 0);
            assert_memory_equal(v.data, k, (size_t)n);
            kvd_val_release(&v);
        }
    }
    bt_test_close(vt, e);
    th_rmrf(dir);
    free(dir);
}

static void
age_stat(void *ctx, const char *name, uint64_t v)
{
    if (strcmp(name, "oldest_snapshot_age_ms") == 0) {
        *(uint64_t *)ctx = v;
    }
}

static uint64_t
oldest_snapshot_age_ms(kvd_engine *e)
{
    struct kvd_engine_stats st;
    uint64_t age = UINT64_MAX;

    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    assert_int_equal(vt->stats(e, &st, age_stat, &age), 0);
    assert_int_not_equal(age, UINT64_MAX);
    return age;
}

static void
put_and_see(kvd_engine *e, const char *k)
{
    struct kvd_val v;

    assert_int_equal(vt->put(e, k, strlen(k), "v", 1, 0), 0);
    /* a get that finds the key reads a snapshot with the put published */
    assert_int_equal(vt->get(e, k, strlen(k), &v), 0);
    kvd_val_release(&v);
}

static void
test_oldest_snapshot_age_uses_the_host_clock(void **state)
{
    const int64_t t0 = INT64_C(1000) * 1000000000;
    char *dir = th_mkdtemp();
    struct kvd_err err = {0};
    struct bt_opts o;
    kvd_iter *it = NULL;
    kvd_engine *e;

    (void)state;
    th_mono_set(t0);
    bt_test_opts(&o);
    e = bt_test_open(vt, dir, &o);
    put_and_see(e, "a");
    assert_int_equal(vt->iter_open(e, NULL, &it, &err), 0); /* holds it */
    put_and_see(e, "b"); /* a newer snapshot: the held one is the oldest */
    th_mono_set(t0 + INT64_C(5250) * 1000000);
    assert_int_equal(oldest_snapshot_age_ms(e), 5250);
    vt->iter_close(it);
    put_and_see(e, "c");
    assert_int_equal(oldest_snapshot_age_ms(e), 0);
    th_mono_set(0);
    bt_test_close(vt, e);
    th_rmrf(dir);
    free(dir);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scans_see_one_snapshot),
        cmocka_unit_test(test_scans_see_one_snapshot_group_commit),
        cmocka_unit_test(test_scans_see_one_snapshot_during_commit_syncs),
        cmocka_unit_test(test_group_commit_keeps_every_write),
        cmocka_unit_test(test_oldest_snapshot_age_uses_the_host_clock),
    };

    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("btree.threads", tests, NULL, NULL);
}
