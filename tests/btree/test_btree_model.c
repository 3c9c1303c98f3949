/*
 * test_btree_model.c -- the seeded randomized model test of the btree
 * engine.
 *
 * A seeded sequence of puts (small, page-sized and overflow values, some
 * with an expiry, some already expired), deletes (whose return must say
 * whether the model had a live key), atomic batches (later ops on a key
 * win), multi() calls, gets, iterations from random start keys and within
 * random prefixes, clock steps, compactions, expiry sweeps and reopens
 * runs against the engine with 2 KiB pages and a tiny dirty limit (deep
 * trees, overflow runs, flushes and commits all the time) and against a
 * model. The key touched by each step is checked right after it; every
 * key, a full iteration and the stats are checked every CHECK_EVERY steps
 * and after every reopen and compaction.
 *
 * A failure prints the seed and the step; BT_MODEL_SEED replays,
 * BT_MODEL_STEPS sets the length (default 6000).
 */
#include "bt_test.h"

#define NKEYS       600
#define CHECK_EVERY 300
#define T0_MS       1700000000000LL
#define MAX_VAL     5000

static const struct kvd_engine_vtable *vt;

struct run {
    struct bt_rng r;
    struct bt_model m;
    struct bt_opts o;
    const char *dir;
    kvd_engine *e;
    int64_t now;
    long step;
    uint64_t seed;
    char keys[NKEYS][24];
    size_t klens[NKEYS];
    size_t order[NKEYS]; /* key ids in key order */
    unsigned char val[MAX_VAL];
};

static struct run *cmp_run;

static int
cmp_ids(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return bt_key_cmp(cmp_run->keys[x], cmp_run->klens[x], cmp_run->keys[y],
                      cmp_run->klens[y]);
}

static void
make_keys(struct run *rn)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (i % 23 == 0) {
            /* keys with a NUL inside, next to their C-string twins */
            rn->keys[i][0] = 'k';
            rn->keys[i][1] = '\0';
            rn->klens[i] = 2 + (size_t)snprintf(rn->keys[i] + 2, 20, "%zu", i);
        } else {
            rn->klens[i] = (size_t)snprintf(
                rn->keys[i], 24, "%c%c%05zu", 'a' + (int)(i % 4),
                'a' + (int)(i % 3), i * 7919 % 99991);
        }
        rn->order[i] = i;
    }
    cmp_run = rn;
    qsort(rn->order, NKEYS, sizeof(size_t), cmp_ids);
    for (size_t i = 1; i < NKEYS; i++) {
        size_t a = rn->order[i - 1], b = rn->order[i];
        if (bt_key_cmp(rn->keys[a], rn->klens[a], rn->keys[b], rn->klens[b]) ==
            0) {
            fail_msg("duplicate test keys %zu and %zu", a, b);
        }
    }
}

static size_t
pick_value(struct run *rn)
{
    uint64_t kind = bt_below(&rn->r, 20);
    size_t n = kind < 14   ? (size_t)bt_below(&rn->r, 120)
               : kind < 18 ? 400 + (size_t)bt_below(&rn->r, 400)
                           : 1000 + (size_t)bt_below(&rn->r, MAX_VAL - 1000);
    uint64_t x = bt_mix(rn->seed ^ (uint64_t)rn->step);

    for (size_t i = 0; i < n; i++) {
        rn->val[i] = (unsigned char)(x >> (8 * (i % 8))) ^ (unsigned char)i;
    }
    return n;
}

static int64_t
pick_expiry(struct run *rn)
{
    uint64_t k = bt_below(&rn->r, 10);

    if (k < 7) {
        return 0;
    }
    if (k < 9) {
        return rn->now + 1 + (int64_t)bt_below(&rn->r, 5000);
    }
    return rn->now - 1 - (int64_t)bt_below(&rn->r, 1000); /* already gone */
}

static void
check_one(struct run *rn, size_t i)
{
    char why[200];

    if (bt_check_key(vt, rn->e, &rn->m, i, rn->keys[i], rn->klens[i], rn->now,
                     why, sizeof(why)) != 0) {
        fail_msg("seed %llu step %ld: %s", (unsigned long long)rn->seed,
                 rn->step, why);
    }
}

/* Iterate from position `from` of the key order (NKEYS: from the first
 * key), within a prefix when plen > 0, and compare with the model. */
static void
check_iter(struct run *rn, size_t from, const char *prefix, size_t plen)
{
    struct kvd_iter_opts o;
    struct kvd_err err;
    struct kvd_entry ent;
    kvd_iter *it = NULL;
    size_t j = from;
    size_t i;

    memset(&o, 0, sizeof(o));
    if (from < NKEYS) {
        i = rn->order[from];
        o.start = rn->keys[i];
        o.start_len = rn->klens[i];
    } else {
        j = 0; /* from the first key */
    }
    o.prefix = prefix;
    o.prefix_len = plen;
    assert_int_equal(vt->iter_open(rn->e, &o, &it, &err), 0);
    for (;;) {
        int rc = vt->iter_next(it, &ent);
        /* the next live model key at or after j */
        while (j < NKEYS) {
            i = rn->order[j];
            if (bt_model_live(&rn->m, i, rn->now) &&
                (plen == 0 || (rn->klens[i] >= plen &&
                               memcmp(rn->keys[i], prefix, plen) == 0))) {
                break;
            }
            j++;
        }
        if (rc == KVD_ENOTFOUND) {
            if (j < NKEYS) {
                fail_msg("seed %llu step %ld: iteration ended before key %zu",
                         (unsigned long long)rn->seed, rn->step, rn->order[j]);
            }
            break;
        }
        assert_int_equal(rc, 0);
        if (j >= NKEYS) {
            fail_msg("seed %llu step %ld: iteration has an extra key",
                     (unsigned long long)rn->seed, rn->step);
        }
        i = rn->order[j];
        if (ent.klen != rn->klens[i] ||
            memcmp(ent.key, rn->keys[i], ent.klen) != 0 ||
            ent.vlen != rn->m.k[i].vlen ||
            memcmp(ent.val, rn->m.k[i].val, ent.vlen) != 0 ||
            ent.expire_ms != rn->m.k[i].exp) {
            fail_msg("seed %llu step %ld: iteration entry differs at key %zu",
                     (unsigned long long)rn->seed, rn->step, i);
        }
        j++;
    }
    vt->iter_close(it);
}

static void
check_all(struct run *rn)
{
    struct kvd_engine_stats st;
    uint64_t live = 0;

    for (size_t i = 0; i < NKEYS; i++) {
        check_one(rn, i);
        live += bt_model_live(&rn->m, i, rn->now);
    }
    check_iter(rn, NKEYS, NULL, 0);
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    assert_int_equal(vt->stats(rn->e, &st, NULL, NULL), 0);
    if (st.keys != live) {
        fail_msg("seed %llu step %ld: stats say %llu keys, model %llu",
                 (unsigned long long)rn->seed, rn->step,
                 (unsigned long long)st.keys, (unsigned long long)live);
    }
}

static void
do_batch(struct run *rn)
{
    struct kvd_op ops[6];
    unsigned char *vals[6];
    size_t n = 1 + (size_t)bt_below(&rn->r, 6);
    size_t ids[6];
    struct kvd_err err;

    for (size_t k = 0; k < n; k++) {
        size_t i = (size_t)bt_below(&rn->r, NKEYS);
        ids[k] = i;
        memset(&ops[k], 0, sizeof(ops[k]));
        ops[k].key = rn->keys[i];
        ops[k].klen = rn->klens[i];
        vals[k] = NULL;
        if (bt_below(&rn->r, 3) == 0) {
            ops[k].type = KVD_OP_DEL;
        } else {
            size_t vl = pick_value(rn);
            vals[k] = malloc(vl + 1);
            memcpy(vals[k], rn->val, vl);
            ops[k].type = KVD_OP_PUT;
            ops[k].val = vals[k];
            ops[k].vlen = vl;
            ops[k].expire_ms = pick_expiry(rn);
        }
    }
    assert_int_equal(vt->batch(rn->e, ops, n, &err), 0);
    for (size_t k = 0; k < n; k++) {
        if (ops[k].type == KVD_OP_DEL) {
            bt_model_del(&rn->m, ids[k]);
        } else {
            bt_model_put(&rn->m, ids[k], ops[k].val, ops[k].vlen,
                         ops[k].expire_ms);
        }
    }
    for (size_t k = 0; k < n; k++) {
        check_one(rn, ids[k]);
        free(vals[k]);
    }
}

static void
do_multi(struct run *rn)
{
    struct kvd_mop ops[5];
    unsigned char *vals[5];
    size_t ids[5];
    size_t n = 1 + (size_t)bt_below(&rn->r, 5);

    memset(ops, 0, sizeof(ops));
    for (size_t k = 0; k < n; k++) {
        size_t i = (size_t)bt_below(&rn->r, NKEYS);
        uint64_t t = bt_below(&rn->r, 3);
        ids[k] = i;
        vals[k] = NULL;
        ops[k].key = rn->keys[i];
        ops[k].klen = rn->klens[i];
        ops[k].type = t == 0 ? KVD_MOP_GET : t == 1 ? KVD_MOP_PUT : KVD_MOP_DEL;
        if (ops[k].type == KVD_MOP_PUT) {
            size_t vl = pick_value(rn);
            vals[k] = malloc(vl + 1);
            memcpy(vals[k], rn->val, vl);
            ops[k].val = vals[k];
            ops[k].vlen = vl;
        }
    }
    assert_int_equal(vt->multi(rn->e, ops, n), 0);
    for (size_t k = 0; k < n; k++) {
        size_t i = ids[k];
        bool live = bt_model_live(&rn->m, i, rn->now);
        switch (ops[k].type) {
        case KVD_MOP_GET:
            if (!live) {
                assert_int_equal(ops[k].status, KVD_ENOTFOUND);
            } else {
                assert_int_equal(ops[k].status, 0);
                assert_int_equal(ops[k].out.len, rn->m.k[i].vlen);
                assert_memory_equal(ops[k].out.data, rn->m.k[i].val,
                                    rn->m.k[i].vlen);
                kvd_val_release(&ops[k].out);
            }
            break;
        case KVD_MOP_PUT:
            assert_int_equal(ops[k].status, 0);
            bt_model_put(&rn->m, i, ops[k].val, ops[k].vlen, 0);
            break;
        default:
            assert_int_equal(ops[k].status, live ? 0 : KVD_ENOTFOUND);
            bt_model_del(&rn->m, i);
            break;
        }
    }
    for (size_t k = 0; k < n; k++) {
        check_one(rn, ids[k]);
        free(vals[k]);
    }
}

static void
reopen(struct run *rn)
{
    bt_test_close(vt, rn->e);
    rn->e = bt_test_open(vt, rn->dir, &rn->o);
}

static void
run_model(uint64_t seed, long steps, bool small)
{
    struct run *rn = calloc(1, sizeof(*rn));
    char *dir = th_mkdtemp();
    struct kvd_err err;

    assert_non_null(rn);
    rn->seed = seed;
    rn->r.s = seed;
    rn->dir = dir;
    rn->now = T0_MS;
    th_clock_set(rn->now);
    make_keys(rn);
    bt_model_init(&rn->m, NKEYS);
    if (small) {
        bt_test_opts_small(&rn->o);
    } else {
        bt_test_opts(&rn->o);
    }
    /* sync = always is the crash test's; everysec for one seed in four */
    rn->o.sync = seed % 4 == 1 ? BT_SYNC_EVERYSEC : BT_SYNC_NEVER;
    rn->o.sync_interval = 10;
    rn->e = bt_test_open(vt, dir, &rn->o);
    for (rn->step = 0; rn->step < steps; rn->step++) {
        uint64_t k = bt_below(&rn->r, 100);
        size_t i = (size_t)bt_below(&rn->r, NKEYS);
        if (k < 45) {
            size_t vl = pick_value(rn);
            int64_t exp = pick_expiry(rn);
            assert_int_equal(
                vt->put(rn->e, rn->keys[i], rn->klens[i], rn->val, vl, exp), 0);
            bt_model_put(&rn->m, i, rn->val, vl, exp);
            check_one(rn, i);
        } else if (k < 65) {
            int want = bt_model_live(&rn->m, i, rn->now) ? 0 : KVD_ENOTFOUND;
            int rc = vt->del(rn->e, rn->keys[i], rn->klens[i]);
            if (rc != want) {
                fail_msg("seed %llu step %ld: del key %zu gave %d, want %d",
                         (unsigned long long)seed, rn->step, i, rc, want);
            }
            bt_model_del(&rn->m, i);
            check_one(rn, i);
        } else if (k < 72) {
            do_batch(rn);
        } else if (k < 78) {
            do_multi(rn);
        } else if (k < 86) {
            check_one(rn, i);
        } else if (k < 90) {
            check_iter(rn, (size_t)bt_below(&rn->r, NKEYS + 1), NULL, 0);
        } else if (k < 93) {
            char pfx[3] = {(char)('a' + bt_below(&rn->r, 4)),
                           (char)('a' + bt_below(&rn->r, 3)), '0'};
            check_iter(rn, NKEYS, pfx, 1 + (size_t)bt_below(&rn->r, 3));
        } else if (k < 96) {
            rn->now += (int64_t)bt_below(&rn->r, 2000);
            th_clock_set(rn->now);
        } else if (k < 97) {
            assert_int_equal(vt->maintain(rn->e, KVD_MAINT_COMPACT, &err), 0);
            check_all(rn);
        } else if (k < 98) {
            assert_int_equal(vt->maintain(rn->e, KVD_MAINT_EXPIRE, &err), 0);
        } else {
            reopen(rn);
            check_all(rn);
        }
        if (rn->step % CHECK_EVERY == CHECK_EVERY - 1) {
            check_all(rn);
        }
    }
    reopen(rn);
    check_all(rn);
    bt_test_close(vt, rn->e);
    bt_model_free(&rn->m);
    th_rmrf(dir);
    free(dir);
    free(rn);
    th_clock_set(0);
}

static void
test_model_small_pages(void **state)
{
    uint64_t seed = bt_seed("BT_MODEL_SEED", 20261205);
    long steps = (long)bt_seed("BT_MODEL_STEPS", 6000);

    (void)state;
    for (int round = 0; round < 3; round++) {
        run_model(seed + (uint64_t)round, steps, true);
    }
}

static void
test_model_default_pages(void **state)
{
    uint64_t seed = bt_seed("BT_MODEL_SEED", 77);
    long steps = (long)bt_seed("BT_MODEL_STEPS", 6000);

    (void)state;
    run_model(seed, steps, false);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_small_pages),
        cmocka_unit_test(test_model_default_pages),
    };

    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("btree.model", tests, NULL, NULL);
}
