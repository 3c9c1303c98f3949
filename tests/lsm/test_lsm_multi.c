/*
 * test_lsm_multi.c -- the lsm engine's multi(): independent get/put/del
 * operations in one call, each with its own status.
 *
 * Beyond the contract the conformance suite checks for every engine, these
 * tests look at what the lsm engine does with it: consecutive writes go to
 * the WAL as one record (one pwrite, counted by the test host's I/O
 * table), with sync = always one fdatasync covers the whole call, a GET of
 * a key written earlier in the call sees that write, a DEL says whether
 * its key existed exactly as del() does (memtable, tables, expired, in the
 * same call), read-only and failing I/O give each op the status put/del
 * would, concurrent deleters each see a key deleted exactly once, and a
 * reopen replays it all.
 */
#include "test_lsm_util.h"

#include <errno.h>
#include <pthread.h>

#define T0_MS 1700000000000LL

static const struct kvd_engine_vtable *vt;
static uint64_t seed;

static int
setup_dir(void **state)
{
    th_io_reset();
    th_log_clear();
    th_clock_set(T0_MS);
    *state = th_mkdtemp();
    return 0;
}

static int
teardown_dir(void **state)
{
    th_io_reset();
    th_rmrf(*state);
    free(*state);
    th_clock_set(0);
    return 0;
}

static struct kvd_mop
mop(int type, const char *key, const char *val)
{
    struct kvd_mop m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.key = key;
    m.klen = strlen(key);
    if (val != NULL) {
        m.val = val;
        m.vlen = strlen(val);
    }
    m.status = 12345; /* must be overwritten */
    return m;
}

static void
release_all(struct kvd_mop *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KVD_MOP_GET && ops[i].status == 0) {
            kvd_val_release(&ops[i].out);
        }
    }
}

static void
assert_got(const struct kvd_mop *op, const char *val)
{
    assert_int_equal(op->status, 0);
    assert_int_equal(op->out.len, strlen(val));
    assert_memory_equal(op->out.data, val, strlen(val));
}

static void
put_str(kvd_engine *e, const char *k, const char *v)
{
    assert_int_equal(vt->put(e, k, strlen(k), v, strlen(v), 0), 0);
}

static int
get_str(kvd_engine *e, const char *k, const char *want)
{
    struct kvd_val v;
    int rc = vt->get(e, k, strlen(k), &v);

    if (rc != 0) {
        return rc;
    }
    rc = v.len == strlen(want) && memcmp(v.data, want, v.len) == 0 ? 0 : -1;
    kvd_val_release(&v);
    return rc;
}

/* multi, returning how many pwrites it made */
static long
multi_writes(kvd_engine *e, struct kvd_mop *ops, size_t n)
{
    long before = atomic_load(&th_io.writes);

    assert_int_equal(vt->multi(e, ops, n), 0);
    return atomic_load(&th_io.writes) - before;
}

static void
test_multi_is_in_the_vtable(void **state)
{
    (void)state;
    assert_true(KVD_ENGINE_HAS(vt, multi));
}

/* GETs of other keys do not split the writes around them: one record. */
static void
test_multi_mixed_ops_one_wal_record(void **state)
{
    struct lsm_opts o;
    struct kvd_mop ops[10];
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, *state, &o);
    put_str(e, "have", "old");
    put_str(e, "doomed", "x");
    ops[0] = mop(KVD_MOP_PUT, "a", "1");
    ops[1] = mop(KVD_MOP_GET, "have", NULL);
    ops[2] = mop(KVD_MOP_PUT, "b", "2");
    ops[3] = mop(KVD_MOP_DEL, "doomed", NULL);
    ops[4] = mop(KVD_MOP_GET, "never", NULL);
    ops[5] = mop(KVD_MOP_DEL, "never", NULL);
    ops[6] = mop(KVD_MOP_PUT, "have", "new");
    ops[7] = mop(KVD_MOP_PUT, "timed", "t");
    ops[7].expire_ms = T0_MS + 60000;
    ops[8] = mop(KVD_MOP_PUT, "empty", "");
    ops[9] = mop(KVD_MOP_GET, "doomed", NULL); /* after the group */
    assert_int_equal(multi_writes(e, ops, 10), 1);
    assert_int_equal(ops[0].status, 0);
    assert_got(&ops[1], "old");
    assert_int_equal(ops[2].status, 0);
    assert_int_equal(ops[3].status, 0);
    assert_int_equal(ops[4].status, KVD_ENOTFOUND);
    assert_int_equal(ops[5].status, KVD_ENOTFOUND);
    assert_int_equal(ops[6].status, 0);
    assert_int_equal(ops[7].status, 0);
    assert_int_equal(ops[8].status, 0);
    assert_int_equal(ops[9].status, KVD_ENOTFOUND);
    release_all(ops, 10);
    assert_int_equal(th_stat(vt, e, "puts_total"), 2 + 5);
    assert_int_equal(th_stat(vt, e, "dels_total"), 1);
    assert_int_equal(get_str(e, "a", "1"), 0);
    assert_int_equal(get_str(e, "have", "new"), 0);
    assert_int_equal(get_str(e, "empty", ""), 0);
    assert_int_equal(get_str(e, "doomed", "x"), KVD_ENOTFOUND);
    th_engine_close(vt, e);

    /* the WAL replay gives the same */
    e = th_engine_open(vt, *state, &o);
    assert_int_equal(get_str(e, "a", "1"), 0);
    assert_int_equal(get_str(e, "b", "2"), 0);
    assert_int_equal(get_str(e, "have", "new"), 0);
    assert_int_equal(get_str(e, "timed", "t"), 0);
    assert_int_equal(get_str(e, "empty", ""), 0);
    assert_int_equal(get_str(e, "doomed", "x"), KVD_ENOTFOUND);
    th_clock_set(T0_MS + 60000);
    assert_int_equal(get_str(e, "timed", "t"), KVD_ENOTFOUND);
    th_engine_close(vt, e);
}

/* A GET of a key the call wrote before sees it: the writes before it
 * are committed first (a second record), and never more than needed. */
static void
test_multi_get_sees_earlier_put_and_del(void **state)
{
    struct lsm_opts o;
    struct kvd_mop ops[6];
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, *state, &o);
    put_str(e, "gone", "still here");
    ops[0] = mop(KVD_MOP_PUT, "k", "fresh");
    ops[1] = mop(KVD_MOP_DEL, "gone", NULL);
    ops[2] = mop(KVD_MOP_PUT, "other", "o");
    ops[3] = mop(KVD_MOP_GET, "k", NULL);
    ops[4] = mop(KVD_MOP_GET, "gone", NULL);
    ops[5] = mop(KVD_MOP_PUT, "last", "l");
    assert_int_equal(multi_writes(e, ops, 6), 2);
    assert_int_equal(ops[0].status, 0);
    assert_int_equal(ops[1].status, 0);
    assert_got(&ops[3], "fresh");
    assert_int_equal(ops[4].status, KVD_ENOTFOUND);
    assert_int_equal(ops[5].status, 0);
    release_all(ops, 6);
    assert_int_equal(get_str(e, "last", "l"), 0);
    th_engine_close(vt, e);
}

static void
test_multi_same_key_repeated(void **state)
{
    struct lsm_opts o;
    struct kvd_mop ops[10];
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, *state, &o);
    put_str(e, "k", "stored");
    ops[0] = mop(KVD_MOP_DEL, "k", NULL); /* found in the store */
    ops[1] = mop(KVD_MOP_DEL, "k", NULL); /* gone by the first */
    ops[2] = mop(KVD_MOP_PUT, "k", "1");
    ops[3] = mop(KVD_MOP_PUT, "k", "22");
    ops[4] = mop(KVD_MOP_DEL, "k", NULL); /* found in the call */
    ops[5] = mop(KVD_MOP_DEL, "k", NULL);
    ops[6] = mop(KVD_MOP_PUT, "k", "333");
    ops[7] = mop(KVD_MOP_GET, "k", NULL);
    ops[8] = mop(KVD_MOP_PUT, "k", "4444");
    ops[9] = mop(KVD_MOP_GET, "k", NULL);
    assert_int_equal(multi_writes(e, ops, 10), 2);
    assert_int_equal(ops[0].status, 0);
    assert_int_equal(ops[1].status, KVD_ENOTFOUND);
    assert_int_equal(ops[2].status, 0);
    assert_int_equal(ops[3].status, 0);
    assert_int_equal(ops[4].status, 0);
    assert_int_equal(ops[5].status, KVD_ENOTFOUND);
    assert_int_equal(ops[6].status, 0);
    assert_got(&ops[7], "333");
    assert_int_equal(ops[8].status, 0);
    assert_got(&ops[9], "4444");
    release_all(ops, 10);
    /* two tombstones were written: the deletes that found the key */
    assert_int_equal(th_stat(vt, e, "dels_total"), 2);
    th_engine_close(vt, e);
    e = th_engine_open(vt, *state, &o);
    assert_int_equal(get_str(e, "k", "4444"), 0);
    th_engine_close(vt, e);
}

/* A DEL answers as del() does wherever the key lives, expired or not,
 * and a DEL that finds nothing writes nothing. */
static void
test_multi_del_reports_existence_like_del(void **state)
{
    struct lsm_opts o;
    struct kvd_err err;
    struct kvd_mop ops[8];
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, *state, &o);
    put_str(e, "intable", "t");
    assert_int_equal(vt->put(e, "expired", 7, "e", 1, T0_MS + 10), 0);
    assert_int_equal(vt->put(e, "tomb", 4, "x", 1, 0), 0);
    assert_int_equal(vt->del(e, "tomb", 4), 0);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    assert_true(th_stat(vt, e, "tables") > 0);
    put_str(e, "inmem", "m");
    th_clock_set(T0_MS + 10); /* "expired" is */

    ops[0] = mop(KVD_MOP_DEL, "nothing", NULL);
    ops[1] = mop(KVD_MOP_DEL, "expired", NULL);
    ops[2] = mop(KVD_MOP_DEL, "tomb", NULL);
    assert_int_equal(multi_writes(e, ops, 3), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ops[i].status, KVD_ENOTFOUND);
    }

    ops[0] = mop(KVD_MOP_DEL, "intable", NULL);
    ops[1] = mop(KVD_MOP_DEL, "inmem", NULL);
    ops[2] = mop(KVD_MOP_DEL, "nothing", NULL);
    /* a PUT already expired, then its DEL: nothing to delete */
    ops[3] = mop(KVD_MOP_PUT, "short", "s");
    ops[3].expire_ms = T0_MS + 5;
    ops[4] = mop(KVD_MOP_DEL, "short", NULL);
    /* and one still live */
    ops[5] = mop(KVD_MOP_PUT, "long", "l");
    ops[5].expire_ms = T0_MS + 50000;
    ops[6] = mop(KVD_MOP_DEL, "long", NULL);
    ops[7] = mop(KVD_MOP_GET, "intable", NULL);
    assert_int_equal(multi_writes(e, ops, 8), 1);
    assert_int_equal(ops[0].status, 0);
    assert_int_equal(ops[1].status, 0);
    assert_int_equal(ops[2].status, KVD_ENOTFOUND);
    assert_int_equal(ops[3].status, 0);
    assert_int_equal(ops[4].status, KVD_ENOTFOUND);
    assert_int_equal(ops[5].status, 0);
    assert_int_equal(ops[6].status, 0);
    assert_int_equal(ops[7].status, KVD_ENOTFOUND);
    release_all(ops, 8);
    assert_int_equal(get_str(e, "inmem", "m"), KVD_ENOTFOUND);
    assert_int_equal(get_str(e, "long", "l"), KVD_ENOTFOUND);
    th_engine_close(vt, e);
}

/* Many keys over tiny memtables, so that flushes and compactions run
 * between the calls: every op answers right, the reopen has it all. */
static void
test_multi_many_keys_through_flushes_and_reopen(void **state)
{
    enum { K = 500, CALLS = 6 };
    struct lsm_opts o;
    struct kvd_mop *ops = calloc(2 * K, sizeof(*ops));
    static char keys[K][16];
    static char vals[CALLS][K][32];
    kvd_engine *e;

    assert_non_null(ops);
    lt_opts_tiny(&o);
    e = th_engine_open(vt, *state, &o);
    for (int i = 0; i < K; i++) {
        snprintf(keys[i], sizeof(keys[i]), "many%04d", i);
    }
    for (int c = 0; c < CALLS; c++) {
        /* PUT every key, DEL every third right after its PUT, GET every
         * fifth's successor (written by the previous call) */
        size_t n = 0;
        for (int i = 0; i < K; i++) {
            snprintf(vals[c][i], sizeof(vals[c][i]), "v%d-%d", c, i);
            ops[n++] = mop(KVD_MOP_PUT, keys[i], vals[c][i]);
            if (i % 3 == 0) {
                ops[n++] = mop(KVD_MOP_DEL, keys[i], NULL);
            }
            if (i % 5 == 0 && i + 1 < K) {
                ops[n++] = mop(KVD_MOP_GET, keys[i + 1], NULL);
            }
        }
        assert_int_equal(vt->multi(e, ops, n), 0);
        for (size_t j = 0; j < n; j++) {
            const struct kvd_mop *op = &ops[j];
            int i = atoi((const char *)op->key + 4);
            if (op->type != KVD_MOP_GET) {
                assert_int_equal(op->status, 0); /* a DEL follows its PUT */
            } else if (c == 0 || i % 3 == 0) {
                assert_int_equal(op->status, KVD_ENOTFOUND);
            } else {
                assert_got(op, vals[c - 1][i]);
            }
        }
        release_all(ops, n);
    }
    assert_true(th_stat(vt, e, "flushes_total") > 0);
    th_engine_close(vt, e);
    e = th_engine_open(vt, *state, &o);
    for (int i = 0; i < K; i++) {
        assert_int_equal(get_str(e, keys[i], vals[CALLS - 1][i]),
                         i % 3 == 0 ? KVD_ENOTFOUND : 0);
    }
    th_engine_close(vt, e);
    free(ops);
}

/* sync = always: one fdatasync for the whole call, and the writes are
 * durable when it returns. */
static void
test_multi_sync_always_one_fdatasync(void **state)
{
    enum { N = 64 };
    struct lsm_opts o;
    struct kvd_mop ops[N + 1];
    char keys[N][16];
    kvd_engine *e;
    uint64_t fs;
    long syncs;

    lt_opts_default(&o);
    o.sync = LSM_SYNC_ALWAYS;
    e = th_engine_open(vt, *state, &o);
    put_str(e, "before", "b");
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "sync%02d", i);
        ops[i] = mop(i % 4 == 3 ? KVD_MOP_DEL : KVD_MOP_PUT, keys[i], keys[i]);
    }
    ops[N] = mop(KVD_MOP_DEL, "before", NULL);
    fs = th_stat(vt, e, "fsyncs_total");
    syncs = atomic_load(&th_io.syncs);
    assert_int_equal(multi_writes(e, ops, N + 1), 1);
    assert_int_equal(atomic_load(&th_io.syncs) - syncs, 1);
    assert_int_equal(th_stat(vt, e, "fsyncs_total") - fs, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ops[i].status, i % 4 == 3 ? KVD_ENOTFOUND : 0);
    }
    assert_int_equal(ops[N].status, 0);

    /* nothing to write: no sync at all */
    ops[0] = mop(KVD_MOP_DEL, "absent", NULL);
    ops[1] = mop(KVD_MOP_GET, keys[0], NULL);
    syncs = atomic_load(&th_io.syncs);
    assert_int_equal(multi_writes(e, ops, 2), 0);
    assert_int_equal(atomic_load(&th_io.syncs) - syncs, 0);
    assert_int_equal(ops[0].status, KVD_ENOTFOUND);
    assert_got(&ops[1], keys[0]);
    release_all(ops, 2);
    th_engine_close(vt, e);

    e = th_engine_open(vt, *state, &o);
    for (int i = 0; i < N; i++) {
        assert_int_equal(get_str(e, keys[i], keys[i]),
                         i % 4 == 3 ? KVD_ENOTFOUND : 0);
    }
    assert_int_equal(get_str(e, "before", "b"), KVD_ENOTFOUND);
    th_engine_close(vt, e);
}

/* A failed WAL write fails the writes of its record with the write's
 * status, later writes get KVD_EREADONLY, reads go on. (An I/O error: a
 * full disk is retried by the next write, see test_lsm_files.c.) */
static void
test_multi_failed_write_then_read_only(void **state)
{
    struct lsm_opts o;
    struct kvd_mop ops[6];
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, *state, &o);
    put_str(e, "have", "h");
    atomic_store(&th_io.fail_errno, EIO);
    atomic_store(&th_io.fail_write_at, atomic_load(&th_io.writes) + 1);
    ops[0] = mop(KVD_MOP_PUT, "a", "1");
    ops[1] = mop(KVD_MOP_DEL, "have", NULL);
    ops[2] = mop(KVD_MOP_GET, "a", NULL); /* commits the two above */
    ops[3] = mop(KVD_MOP_PUT, "b", "2");
    ops[4] = mop(KVD_MOP_DEL, "have", NULL);
    ops[5] = mop(KVD_MOP_GET, "have", NULL);
    assert_int_equal(vt->multi(e, ops, 6), 0);
    th_io_reset();
    assert_int_equal(ops[0].status, KVD_EIO);
    assert_int_equal(ops[1].status, KVD_EIO);
    assert_int_equal(ops[2].status, KVD_ENOTFOUND);
    assert_int_equal(ops[3].status, KVD_EREADONLY);
    assert_int_equal(ops[4].status, KVD_EREADONLY);
    assert_got(&ops[5], "h");
    release_all(ops, 6);

    /* read-only from the start of a call: each op as put/del/get */
    ops[0] = mop(KVD_MOP_PUT, "c", "3");
    ops[1] = mop(KVD_MOP_GET, "have", NULL);
    ops[2] = mop(KVD_MOP_DEL, "nothing", NULL);
    assert_int_equal(vt->multi(e, ops, 3), 0);
    assert_int_equal(ops[0].status, vt->put(e, "c", 1, "3", 1, 0));
    assert_int_equal(ops[0].status, KVD_EREADONLY);
    assert_got(&ops[1], "h");
    assert_int_equal(ops[2].status, vt->del(e, "nothing", 7));
    assert_int_equal(ops[2].status, KVD_EREADONLY);
    release_all(ops, 3);
    vt->close(e, NULL);
}

/* sync = always and the fdatasync fails: every write of the call fails
 * with KVD_EIO, as put/del would; the GETs stand. */
static void
test_multi_failed_sync_fails_every_write(void **state)
{
    struct lsm_opts o;
    struct kvd_mop ops[5];
    kvd_engine *e;

    lt_opts_default(&o);
    o.sync = LSM_SYNC_ALWAYS;
    e = th_engine_open(vt, *state, &o);
    put_str(e, "have", "h");
    atomic_store(&th_io.fail_errno, EIO);
    atomic_store(&th_io.fail_sync_at, atomic_load(&th_io.syncs) + 1);
    ops[0] = mop(KVD_MOP_PUT, "a", "1");
    ops[1] = mop(KVD_MOP_GET, "a", NULL);
    ops[2] = mop(KVD_MOP_DEL, "have", NULL);
    ops[3] = mop(KVD_MOP_DEL, "nothing", NULL);
    ops[4] = mop(KVD_MOP_GET, "have", NULL);
    assert_int_equal(vt->multi(e, ops, 5), 0);
    th_io_reset();
    assert_int_equal(ops[0].status, KVD_EIO);
    assert_got(&ops[1], "1"); /* seen before the sync, as other readers */
    assert_int_equal(ops[2].status, KVD_EIO);
    assert_int_equal(ops[3].status, KVD_ENOTFOUND);
    assert_int_equal(ops[4].status, KVD_ENOTFOUND);
    release_all(ops, 5);
    assert_int_equal(vt->put(e, "b", 1, "2", 1, 0), KVD_EREADONLY);
    vt->close(e, NULL);
}

/* Deleters racing on the same keys, through multi (two threads, chunks
 * of different sizes and orders) and del(): each key is reported deleted
 * exactly once. */
#define RACE_KEYS 3000

struct racer {
    kvd_engine *e;
    int kind; /* 0, 1: multi; 2: del */
    char (*keys)[16];
    _Atomic int *found;
};

static void *
racer_main(void *arg)
{
    struct racer *r = arg;
    struct kvd_mop ops[16];
    size_t chunk = r->kind == 0 ? 16 : 7;

    for (int base = 0; base < RACE_KEYS; base += (int)chunk) {
        size_t n = 0;
        for (size_t j = 0; j < chunk && base + (int)j < RACE_KEYS; j++) {
            int k =
                r->kind == 1 ? RACE_KEYS - 1 - (base + (int)j) : base + (int)j;
            if (r->kind == 2) {
                if (vt->del(r->e, r->keys[k], strlen(r->keys[k])) == 0) {
                    atomic_fetch_add(&r->found[k], 1);
                }
                continue;
            }
            ops[n++] = mop(KVD_MOP_DEL, r->keys[k], NULL);
        }
        if (n > 0 && vt->multi(r->e, ops, n) != 0) {
            return NULL;
        }
        for (size_t j = 0; j < n; j++) {
            if (ops[j].status == 0) {
                int k = atoi((const char *)ops[j].key + 4);
                atomic_fetch_add(&r->found[k], 1);
            } else if (ops[j].status != KVD_ENOTFOUND) {
                return NULL;
            }
        }
    }
    return NULL;
}

static void
test_multi_concurrent_deleters_each_key_once(void **state)
{
    struct lsm_opts o;
    static char keys[RACE_KEYS][16];
    static _Atomic int found[RACE_KEYS];
    struct racer rs[3];
    pthread_t th[3];
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, *state, &o);
    for (int i = 0; i < RACE_KEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "race%05d", i);
        put_str(e, keys[i], "v");
        atomic_store(&found[i], 0);
    }
    for (int t = 0; t < 3; t++) {
        rs[t].e = e;
        rs[t].kind = t;
        rs[t].keys = keys;
        rs[t].found = found;
        assert_int_equal(pthread_create(&th[t], NULL, racer_main, &rs[t]), 0);
    }
    for (int t = 0; t < 3; t++) {
        pthread_join(th[t], NULL);
    }
    for (int i = 0; i < RACE_KEYS; i++) {
        if (atomic_load(&found[i]) != 1) {
            fail_msg("%s reported deleted %d times", keys[i],
                     atomic_load(&found[i]));
        }
    }
    assert_int_equal(th_stat(vt, e, "dels_total"), RACE_KEYS);
    th_engine_close(vt, e);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_is_in_the_vtable),
        cmocka_unit_test_setup_teardown(test_multi_mixed_ops_one_wal_record,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_multi_get_sees_earlier_put_and_del,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_multi_same_key_repeated, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_multi_del_reports_existence_like_del, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_multi_many_keys_through_flushes_and_reopen, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(test_multi_sync_always_one_fdatasync,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_multi_failed_write_then_read_only,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_multi_failed_sync_fails_every_write, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_multi_concurrent_deleters_each_key_once, setup_dir,
            teardown_dir),
    };

    seed = lt_seed("LSM_TEST_SEED");
    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("lsm.multi", tests, NULL, NULL);
}
