/*
 * test_lsm_model.c -- the seeded randomized model test of the lsm engine.
 *
 * A seeded sequence of puts (some with an expiry, some already expired,
 * some large), deletes (whose return must say whether the model had a live
 * key), atomic batches (later ops on a key win), gets, iterations from
 * random start keys and within random prefixes, clock steps, full
 * compactions, expiry sweeps and reopens runs against the engine with tiny
 * memtables and levels, so that background flushes and compactions run
 * all the time, and against an in-memory sorted model. The key touched by
 * every step is checked right after it; every key and a full iteration are
 * checked every CHECK_EVERY steps, after every compaction and reopen, and
 * at the end, together with the key count of stats.
 *
 * Some options come from the seed too (bloom filter on/off, block cache
 * none/tiny/large, table readers kept by files or only in the LRU), so
 * the no-filter, no-cache and evicting read paths get their share. A failure
 * prints the seed and the step; LSM_MODEL_SEED replays, LSM_MODEL_STEPS sets
 * the length (default 5000).
 */
#include "test_lsm_util.h"

#define NKEYS       300
#define CHECK_EVERY 250
#define T0_MS       1700000000000LL

static const struct kvd_engine_vtable *vt;
static uint64_t seed;

struct run {
    struct th_rng r;
    struct lt_model m;
    struct lsm_opts o;
    const char *dir;
    kvd_engine *e;
    int64_t now;
    long step;
    char what[128];
};

static size_t
pick_key(struct run *rn, char *k)
{
    uint64_t x = th_below(&rn->r, NKEYS);

    if (th_below(&rn->r, 20) == 0) {
        /* keys with a NUL inside, next to their C-string twins */
        k[0] = 'b';
        k[1] = '\0';
        return 2 + (size_t)snprintf(k + 2, 16, "%03d", (int)(x % 40));
    }
    return (size_t)snprintf(k, 16, "m%c%03d", (char)('a' + x % 5),
                            (int)(x / 5));
}

static size_t
pick_value(struct run *rn, char *v, size_t cap)
{
    size_t n;

    switch (th_below(&rn->r, 20)) {
    case 0:
        n = 0;
        break;
    case 1:
        n = 5000 + (size_t)th_below(&rn->r, 15000); /* bigger than a block */
        break;
    default:
        n = (size_t)th_below(&rn->r, 300);
        break;
    }
    if (n > cap) {
        n = cap;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = (char)th_next(&rn->r);
    }
    return n;
}

static int64_t
pick_expiry(struct run *rn)
{
    switch (th_below(&rn->r, 12)) {
    case 0:
        return rn->now - 1 - (int64_t)th_below(&rn->r, 1000); /* expired */
    case 1:
    case 2:
        return rn->now + 1 + (int64_t)th_below(&rn->r, 3000);
    default:
        return 0;
    }
}

static void
check_key(struct run *rn, const char *k, size_t kn)
{
    struct lt_model one = {0};
    const struct lt_ent *me = lt_find(&rn->m, k, kn);

    if (me != NULL) {
        lt_put(&one, me->key, me->klen, me->val, me->vlen, me->expire_ms);
        if (lt_check_get(vt, rn->e, &one, rn->now, rn->what) != 0) {
            fail_msg("seed %llu step %ld: %s", (unsigned long long)seed,
                     rn->step, rn->what);
        }
        lt_model_free(&one);
    } else {
        struct kvd_val v;
        int rc = vt->get(rn->e, k, kn, &v);
        if (rc == 0) {
            kvd_val_release(&v);
        }
        if (rc != KVD_ENOTFOUND) {
            fail_msg("seed %llu step %ld: %s: absent key gave %d",
                     (unsigned long long)seed, rn->step, rn->what, rc);
        }
    }
}

static void
check_all(struct run *rn)
{
    struct kvd_engine_stats st;

    if (lt_check_get(vt, rn->e, &rn->m, rn->now, rn->what) != 0 ||
        lt_check_iter(vt, rn->e, &rn->m, rn->now, NULL, 0, NULL, 0, rn->what) !=
            0) {
        fail_msg("seed %llu step %ld: %s", (unsigned long long)seed, rn->step,
                 rn->what);
    }
    th_stats(vt, rn->e, &st);
    if (st.keys != lt_live_count(&rn->m, rn->now)) {
        fail_msg("seed %llu step %ld: %s: stats say %llu keys, model %zu",
                 (unsigned long long)seed, rn->step, rn->what,
                 (unsigned long long)st.keys, lt_live_count(&rn->m, rn->now));
    }
    if (st.readonly) {
        fail_msg("seed %llu step %ld: read-only: %s", (unsigned long long)seed,
                 rn->step, st.state);
    }
}

static void
do_put(struct run *rn, char *v, size_t vcap)
{
    char k[32];
    size_t kn = pick_key(rn, k);
    size_t vn = pick_value(rn, v, vcap);
    int64_t exp = pick_expiry(rn);
    int rc = vt->put(rn->e, k, kn, v, vn, exp);

    snprintf(rn->what, sizeof(rn->what), "put %.*s (%zu bytes, expiry %lld)",
             (int)kn, k, vn, (long long)exp);
    if (rc != 0) {
        fail_msg("seed %llu step %ld: %s: %d", (unsigned long long)seed,
                 rn->step, rn->what, rc);
    }
    lt_put(&rn->m, k, kn, v, vn, exp);
    check_key(rn, k, kn);
}

static void
do_del(struct run *rn)
{
    char k[32];
    size_t kn = pick_key(rn, k);
    const struct lt_ent *me = lt_find(&rn->m, k, kn);
    bool live = me != NULL && lt_live(me, rn->now);
    int rc = vt->del(rn->e, k, kn);

    snprintf(rn->what, sizeof(rn->what), "del %.*s (model: %s)", (int)kn, k,
             live ? "live" : "absent");
    if (rc != (live ? 0 : KVD_ENOTFOUND)) {
        fail_msg("seed %llu step %ld: %s: gave %d", (unsigned long long)seed,
                 rn->step, rn->what, rc);
    }
    lt_del(&rn->m, k, kn);
    check_key(rn, k, kn);
}

static void
do_batch(struct run *rn, char *v, size_t vcap)
{
    struct kvd_op ops[8];
    char keys[8][32];
    size_t n = 1 + (size_t)th_below(&rn->r, 8);
    size_t used = 0;
    struct kvd_err err;
    int rc;

    for (size_t i = 0; i < n; i++) {
        size_t kn = pick_key(rn, keys[i]);
        ops[i].key = keys[i];
        ops[i].klen = kn;
        if (th_below(&rn->r, 3) == 0) {
            ops[i].type = KVD_OP_DEL;
            ops[i].val = NULL;
            ops[i].vlen = 0;
            ops[i].expire_ms = 0;
        } else {
            size_t vn = pick_value(rn, v + used, (vcap - used) / 8);
            ops[i].type = KVD_OP_PUT;
            ops[i].val = v + used;
            ops[i].vlen = vn;
            ops[i].expire_ms = pick_expiry(rn);
            used += vn;
        }
    }
    snprintf(rn->what, sizeof(rn->what), "batch of %zu ops", n);
    rc = vt->batch(rn->e, ops, n, &err);
    if (rc != 0) {
        fail_msg("seed %llu step %ld: %s: %s", (unsigned long long)seed,
                 rn->step, rn->what, err.msg);
    }
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KVD_OP_DEL) {
            lt_del(&rn->m, ops[i].key, ops[i].klen);
        } else {
            lt_put(&rn->m, ops[i].key, ops[i].klen, ops[i].val, ops[i].vlen,
                   ops[i].expire_ms);
        }
    }
    for (size_t i = 0; i < n; i++) {
        check_key(rn, ops[i].key, ops[i].klen);
    }
}

static void
do_iter(struct run *rn)
{
    char k[32];
    size_t kn = pick_key(rn, k);
    int rc;

    switch (th_below(&rn->r, 3)) {
    case 0:
        snprintf(rn->what, sizeof(rn->what), "iterate from %.*s", (int)kn, k);
        rc =
            lt_check_iter(vt, rn->e, &rn->m, rn->now, k, kn, NULL, 0, rn->what);
        break;
    case 1:
        kn = kn > 2 ? 2 + (size_t)th_below(&rn->r, kn - 2) : kn;
        snprintf(rn->what, sizeof(rn->what), "iterate prefix %.*s", (int)kn, k);
        rc =
            lt_check_iter(vt, rn->e, &rn->m, rn->now, NULL, 0, k, kn, rn->what);
        break;
    default:
        snprintf(rn->what, sizeof(rn->what), "iterate all");
        rc = lt_check_iter(vt, rn->e, &rn->m, rn->now, NULL, 0, NULL, 0,
                           rn->what);
        break;
    }
    if (rc != 0) {
        fail_msg("seed %llu step %ld: %s", (unsigned long long)seed, rn->step,
                 rn->what);
    }
}

static void
reopen(struct run *rn)
{
    th_engine_close(vt, rn->e);
    rn->e = th_engine_open(vt, rn->dir, &rn->o);
}

static void
test_lsm_model_random_ops(void **state)
{
    const char *env = getenv("LSM_MODEL_STEPS");
    long steps = env ? atol(env) : 5000;
    struct run rn;
    struct kvd_err err;
    char *v = malloc(64 * 1024);
    long compactions = 0;
    long reopens = 0;

    memset(&rn, 0, sizeof(rn));
    rn.r.s = seed;
    rn.dir = *state;
    rn.now = T0_MS;
    th_clock_set(rn.now);
    lt_opts_tiny(&rn.o);
    rn.o.bloom_bits_per_key = th_below(&rn.r, 3) == 0 ? 0 : 10;
    switch (th_below(&rn.r, 3)) {
    case 0:
        rn.o.block_cache_size = 0;
        break;
    case 1:
        rn.o.block_cache_size = 8192;
        break;
    default:
        break;
    }
    /* 16: no reader kept by a file object, all through the LRU */
    rn.o.max_open_files = th_below(&rn.r, 2) == 0 ? 16 : 1000;
    print_message("bloom_bits_per_key %lld, block_cache_size %llu, "
                  "max_open_files %lld\n",
                  (long long)rn.o.bloom_bits_per_key,
                  (unsigned long long)rn.o.block_cache_size,
                  (long long)rn.o.max_open_files);
    rn.e = th_engine_open(vt, rn.dir, &rn.o);
    for (rn.step = 0; rn.step < steps; rn.step++) {
        uint64_t x = th_below(&rn.r, 10000);
        if (x < 4400) {
            do_put(&rn, v, 64 * 1024);
        } else if (x < 6200) {
            do_del(&rn);
        } else if (x < 7400) {
            do_batch(&rn, v, 64 * 1024);
        } else if (x < 9200) {
            char k[32];
            size_t kn = pick_key(&rn, k);
            snprintf(rn.what, sizeof(rn.what), "get %.*s", (int)kn, k);
            check_key(&rn, k, kn);
        } else if (x < 9700) {
            do_iter(&rn);
        } else if (x < 9940) {
            rn.now += (int64_t)th_below(&rn.r, 1500);
            th_clock_set(rn.now);
        } else if (x < 9970) {
            int op = x < 9960 ? KVD_MAINT_COMPACT : KVD_MAINT_EXPIRE;
            snprintf(rn.what, sizeof(rn.what), "after maintain(%d)", op);
            if (vt->maintain(rn.e, op, &err) != 0) {
                fail_msg("seed %llu step %ld: maintain: %s",
                         (unsigned long long)seed, rn.step, err.msg);
            }
            compactions++;
            check_all(&rn);
        } else if (x < 9990) {
            reopen(&rn);
            reopens++;
            snprintf(rn.what, sizeof(rn.what), "after reopen");
            check_all(&rn);
        } else {
            snprintf(rn.what, sizeof(rn.what), "full check");
            check_all(&rn);
        }
        if (rn.step % CHECK_EVERY == CHECK_EVERY - 1) {
            snprintf(rn.what, sizeof(rn.what), "periodic check");
            check_all(&rn);
        }
    }
    snprintf(rn.what, sizeof(rn.what), "final check");
    check_all(&rn);
    print_message("model test: %ld steps, %ld compactions asked, %ld "
                  "reopens; since the last open: %llu background "
                  "compactions, %llu flushes, %llu MANIFEST rolls; %zu live "
                  "keys\n",
                  steps, compactions, reopens,
                  (unsigned long long)th_stat(vt, rn.e, "compactions_total"),
                  (unsigned long long)th_stat(vt, rn.e, "flushes_total"),
                  (unsigned long long)th_stat(vt, rn.e, "manifest_rolls_total"),
                  lt_live_count(&rn.m, rn.now));
    reopen(&rn);
    snprintf(rn.what, sizeof(rn.what), "final reopen");
    check_all(&rn);
    th_engine_close(vt, rn.e);
    lt_model_free(&rn.m);
    free(v);
    th_clock_set(0);
}

static int
setup_dir(void **state)
{
    th_io_reset();
    *state = th_mkdtemp();
    return 0;
}

static int
teardown_dir(void **state)
{
    th_rmrf(*state);
    free(*state);
    return 0;
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lsm_model_random_ops, setup_dir,
                                        teardown_dir),
    };

    seed = lt_seed("LSM_MODEL_SEED");
    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("lsm.model", tests, NULL, NULL);
}
