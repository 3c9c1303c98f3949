/*
 * tests/conformance/cf_threads.c -- concurrent use of one store.
 *
 * test_threads_mixed_ops_match_model: CF_THREADS threads do random put,
 * get and del. Each thread owns a disjoint key set and keeps a model of it,
 * so every get on an own key must answer exactly what the model says, and
 * the final state must equal the union of the models. All threads also
 * hammer a few shared hot keys, whose values are self-describing
 * ("hot:K:tT:sS" + filler derived from K, T, S): any value read back must
 * be one that some thread wrote, byte for byte (no torn or mixed values).
 *
 * test_update_concurrent_increments_lose_nothing: CF_THREADS threads
 * increment shared counters through kvd_store_update(); the totals must be
 * exact, which fails if the store lets two read-modify-writes of one key
 * interleave.
 *
 * Workers never call cmocka assertions (they longjmp and are not
 * thread-safe); they count failures and keep the first message.
 */
#include "conformance.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CF_THREADS      4
#define CF_OWN_KEYS     400
#define CF_HOT_KEYS     8
#define CF_OPS          20000
#define CF_INCR_KEYS    2
#define CF_INCR_PER_THR 2500

struct cf_worker {
    struct cf_fx *fx;
    int id;
    uint32_t rng;
    int seq[CF_OWN_KEYS]; /* model: -1 absent, else the seq written */
    int failures;
    char first[256]; /* first failure, for the report */
};

static uint32_t
cf_rand(uint32_t *s)
{
    uint32_t x = *s;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static void cf_worker_fail(struct cf_worker *w, const char *fmt, ...)
    KVD_PRINTF(2, 3);

static void
cf_worker_fail(struct cf_worker *w, const char *fmt, ...)
{
    va_list ap;

    if (w->failures++ == 0) {
        va_start(ap, fmt);
        vsnprintf(w->first, sizeof(w->first), fmt, ap);
        va_end(ap);
    }
}

/* Value of an own key: its writer, key and sequence, plus filler whose
 * length depends on them (0..60 bytes, sometimes empty overall). */
static size_t
cf_own_value(char *buf, size_t len, int tid, int key, int seq)
{
    int n;

    if (seq % 17 == 0) {
        return 0; /* empty values belong in the mix too */
    }
    n = snprintf(buf, len, "t%d:k%d:s%d:", tid, key, seq);
    for (int i = 0; i < (seq * 7 + key) % 61 && (size_t)n + 1 < len; i++) {
        buf[n++] = (char)('a' + (key + seq + i) % 26);
    }
    return (size_t)n;
}

static size_t
cf_hot_value(char *buf, size_t len, int key, int tid, int seq)
{
    int n = snprintf(buf, len, "hot:%d:t%d:s%d:", key, tid, seq);

    for (int i = 0; i < (seq + tid * 13) % 97 && (size_t)n + 1 < len; i++) {
        buf[n++] = (char)('A' + (key + tid + seq + i) % 26);
    }
    return (size_t)n;
}

/* A hot value must parse and regenerate to exactly the bytes read. */
static bool
cf_hot_value_ok(const struct kvd_val *v, int key)
{
    char text[256];
    char again[256];
    int k;
    int t;
    int s;
    size_t n;

    if (v->len == 0 || v->len >= sizeof(text)) {
        return false;
    }
    memcpy(text, v->data, v->len);
    text[v->len] = '\0';
    if (sscanf(text, "hot:%d:t%d:s%d:", &k, &t, &s) != 3 || k != key || t < 0 ||
        t >= CF_THREADS || s < 0 || s >= CF_OPS) {
        return false;
    }
    n = cf_hot_value(again, sizeof(again), k, t, s);
    return n == v->len && memcmp(again, v->data, n) == 0;
}

static void *
cf_mixed_worker(void *arg)
{
    struct cf_worker *w = arg;
    char k[64];
    char v[256];
    char exp[256];

    for (int op = 0; op < CF_OPS; op++) {
        uint32_t r = cf_rand(&w->rng);
        bool hot = r % 8 == 0;
        int key =
            hot ? (int)((r >> 3) % CF_HOT_KEYS) : (int)((r >> 3) % CF_OWN_KEYS);
        int what = (int)((r >> 16) % 10); /* 0-3 put, 4-8 get, 9 del */
        struct kvd_val got = {0};
        size_t kl;
        size_t vl;
        int rc;

        kl = hot ? (size_t)snprintf(k, sizeof(k), "hot:%d", key)
                 : (size_t)snprintf(k, sizeof(k), "t%d:%d", w->id, key);
        if (what <= 3) {
            vl = hot ? cf_hot_value(v, sizeof(v), key, w->id, op)
                     : cf_own_value(v, sizeof(v), w->id, key, op);
            rc = cf_put(w->fx, k, kl, v, vl, KVD_NO_EXPIRY);
            if (rc != 0) {
                cf_worker_fail(w, "put %s: status %d", k, rc);
            } else if (!hot) {
                w->seq[key] = op;
            }
        } else if (what <= 8) {
            rc = cf_get(w->fx, k, kl, &got);
            if (hot) {
                if (rc == 0 && !cf_hot_value_ok(&got, key)) {
                    cf_worker_fail(w, "get %s: %zu bytes nobody wrote", k,
                                   got.len);
                } else if (rc != 0 && rc != KVD_ENOTFOUND) {
                    cf_worker_fail(w, "get %s: status %d", k, rc);
                }
            } else if (w->seq[key] < 0) {
                if (rc != KVD_ENOTFOUND) {
                    cf_worker_fail(w, "get %s: status %d, model: absent", k,
                                   rc);
                }
            } else {
                vl = cf_own_value(exp, sizeof(exp), w->id, key, w->seq[key]);
                if (rc != 0) {
                    cf_worker_fail(w, "get %s: status %d, model: present", k,
                                   rc);
                } else if (got.len != vl ||
                           (vl > 0 && memcmp(got.data, exp, vl) != 0)) {
                    cf_worker_fail(w,
                                   "get %s: wrong value (%zu bytes, "
                                   "expected %zu)",
                                   k, got.len, vl);
                }
            }
            if (rc == 0) {
                kvd_val_release(&got);
            }
        } else {
            rc = cf_del(w->fx, k, kl);
            if (hot) {
                if (rc != 0 && rc != KVD_ENOTFOUND) {
                    cf_worker_fail(w, "del %s: status %d", k, rc);
                }
            } else if (rc != (w->seq[key] < 0 ? KVD_ENOTFOUND : 0)) {
                cf_worker_fail(w, "del %s: status %d, model: %s", k, rc,
                               w->seq[key] < 0 ? "absent" : "present");
            } else {
                w->seq[key] = -1;
            }
        }
    }
    return NULL;
}

static void
cf_run_workers(struct cf_worker *w, void *(*fn)(void *))
{
    pthread_t th[CF_THREADS];

    for (int i = 0; i < CF_THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, fn, &w[i]), 0);
    }
    for (int i = 0; i < CF_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (int i = 0; i < CF_THREADS; i++) {
        if (w[i].failures > 0) {
            print_error("thread %d: %d failures, first: %s\n", i, w[i].failures,
                        w[i].first);
        }
    }
    for (int i = 0; i < CF_THREADS; i++) {
        assert_int_equal(w[i].failures, 0);
    }
}

void
test_threads_mixed_ops_match_model(void **state)
{
    struct cf_fx *fx = *state;
    struct cf_worker *w = calloc(CF_THREADS, sizeof(*w));
    struct kvd_engine_stats st;
    uint64_t keys = 0;
    uint64_t counted;
    char k[64];
    char v[256];

    assert_non_null(w);
    for (int i = 0; i < CF_THREADS; i++) {
        w[i].fx = fx;
        w[i].id = i;
        w[i].rng = 0x9e3779b9u * (uint32_t)(i + 1);
        for (int j = 0; j < CF_OWN_KEYS; j++) {
            w[i].seq[j] = -1;
        }
    }
    cf_run_workers(w, cf_mixed_worker);

    /* the final state is the union of the models plus the hot keys */
    for (int i = 0; i < CF_THREADS; i++) {
        for (int j = 0; j < CF_OWN_KEYS; j++) {
            int kl = snprintf(k, sizeof(k), "t%d:%d", i, j);

            if (w[i].seq[j] < 0) {
                assert_int_equal(cf_check(fx, k, (size_t)kl, "", 0, -1),
                                 KVD_ENOTFOUND);
                continue;
            }
            keys++;
            assert_int_equal(
                cf_check(fx, k, (size_t)kl, v,
                         cf_own_value(v, sizeof(v), i, j, w[i].seq[j]), -1),
                0);
        }
    }
    for (int j = 0; j < CF_HOT_KEYS; j++) {
        int kl = snprintf(k, sizeof(k), "hot:%d", j);
        struct kvd_val got = {0};
        int rc = cf_get(fx, k, (size_t)kl, &got);

        if (rc == 0) {
            keys++;
            assert_true(cf_hot_value_ok(&got, j));
            kvd_val_release(&got);
        } else {
            assert_int_equal(rc, KVD_ENOTFOUND);
        }
    }
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, keys);
    assert_int_equal(cf_count_keys(fx, &counted), 0);
    assert_int_equal(counted, keys);
    free(w);
}

/* --- read-modify-write through the store ---------------------------------- */

struct cf_incr {
    char buf[32]; /* the new value; valid until kvd_store_update returns */
};

/* Parse the decimal counter (absent = 0), add one, store it. */
static int
cf_incr_fn(void *ctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct cf_incr *c = ctx;
    char text[32];
    long long n = 0;
    int len;

    if (cur != NULL) {
        if (cur->len == 0 || cur->len >= sizeof(text)) {
            return KVD_EINVAL;
        }
        memcpy(text, cur->data, cur->len);
        text[cur->len] = '\0';
        n = strtoll(text, NULL, 10);
    }
    /* widen the read-to-write window, so that a store which does not hold
     * the key's lock across it loses updates reliably */
    if (n % 4 == 0) {
        sched_yield();
    }
    len = snprintf(c->buf, sizeof(c->buf), "%lld", n + 1);
    out->action = KVD_UPDATE_PUT;
    out->val = c->buf;
    out->vlen = (size_t)len;
    out->expire_ms = KVD_NO_EXPIRY;
    return 0;
}

static void *
cf_incr_worker(void *arg)
{
    struct cf_worker *w = arg;
    struct cf_incr ctx;
    char k[32];

    for (int i = 0; i < CF_INCR_PER_THR; i++) {
        /* threads walk the keys in different orders */
        int key = (i + w->id) % CF_INCR_KEYS;
        int kl = snprintf(k, sizeof(k), "counter:%d", key);
        int rc = kvd_store_update(w->fx->st, k, (size_t)kl, cf_incr_fn, &ctx);

        if (rc != 0) {
            cf_worker_fail(w, "update %s: status %d", k, rc);
        }
    }
    return NULL;
}

void
test_update_concurrent_increments_lose_nothing(void **state)
{
    struct cf_fx *fx = *state;
    struct cf_worker *w = calloc(CF_THREADS, sizeof(*w));
    long long total = 0;
    char k[32];

    assert_non_null(w);
    for (int i = 0; i < CF_THREADS; i++) {
        w[i].fx = fx;
        w[i].id = i;
    }
    cf_run_workers(w, cf_incr_worker);
    for (int key = 0; key < CF_INCR_KEYS; key++) {
        int kl = snprintf(k, sizeof(k), "counter:%d", key);
        struct kvd_val v = {0};
        char text[32];

        assert_int_equal(kvd_store_get(fx->st, k, (size_t)kl, &v), 0);
        assert_true(v.len < sizeof(text));
        memcpy(text, v.data, v.len);
        text[v.len] = '\0';
        kvd_val_release(&v);
        /* every thread increments every key equally often */
        assert_int_equal(strtoll(text, NULL, 10),
                         CF_THREADS * CF_INCR_PER_THR / CF_INCR_KEYS);
        total += strtoll(text, NULL, 10);
    }
    assert_int_equal(total, CF_THREADS * CF_INCR_PER_THR);
    free(w);
}

/* The update callback's decision is applied, and its error aborts. */
struct cf_decide {
    int action;
    int status;
    bool had_cur; /* was there a current value? */
};

static int
cf_decide_fn(void *ctx, const struct kvd_val *cur, struct kvd_update *out)
{
    struct cf_decide *d = ctx;

    d->had_cur = cur != NULL;
    out->action = d->action;
    out->val = "decided";
    out->vlen = 7;
    out->expire_ms = KVD_NO_EXPIRY;
    return d->status;
}

void
test_update_fn_decides_action(void **state)
{
    struct cf_fx *fx = *state;
    struct cf_decide d = {0};

    /* absent key: fn sees NULL, PUT creates it */
    d.action = KVD_UPDATE_PUT;
    assert_int_equal(kvd_store_update(fx->st, "u", 1, cf_decide_fn, &d), 0);
    assert_false(d.had_cur);
    assert_int_equal(cf_checks(fx, "u", "decided"), 0);

    /* fn's error comes back unchanged and nothing is written */
    assert_int_equal(cf_puts(fx, "u", "before"), 0);
    d.status = KVD_EEXIST;
    assert_int_equal(kvd_store_update(fx->st, "u", 1, cf_decide_fn, &d),
                     KVD_EEXIST);
    assert_true(d.had_cur);
    assert_int_equal(cf_checks(fx, "u", "before"), 0);

    /* KEEP changes nothing, DEL deletes */
    d.status = 0;
    d.action = KVD_UPDATE_KEEP;
    assert_int_equal(kvd_store_update(fx->st, "u", 1, cf_decide_fn, &d), 0);
    assert_int_equal(cf_checks(fx, "u", "before"), 0);
    d.action = KVD_UPDATE_DEL;
    assert_int_equal(kvd_store_update(fx->st, "u", 1, cf_decide_fn, &d), 0);
    assert_int_equal(cf_checks(fx, "u", "before"), KVD_ENOTFOUND);

    /* the store's key rules hold for updates too */
    d.action = KVD_UPDATE_PUT;
    assert_int_equal(kvd_store_update(fx->st, "", 0, cf_decide_fn, &d),
                     KVD_EINVAL);
}

/* --- iteration while other threads write ---------------------------------- */

#define CF_STABLE_KEYS 1500
#define CF_SCANS       6

struct cf_churn {
    struct cf_fx *fx;
    int id;
    _Atomic bool *stop;
    int failures;
    char first[256];
};

/* Put and delete keys that no scan is required to see. */
static void *
cf_churn_worker(void *arg)
{
    struct cf_churn *c = arg;
    uint32_t rng = 0x2545f491u * (uint32_t)(c->id + 1);
    char k[32];
    char v[128];

    while (!atomic_load(c->stop)) {
        uint32_t r = cf_rand(&rng);
        int kl = snprintf(k, sizeof(k), "churn:%u", r % 3000);
        int rc;

        if (r % 3 != 0) {
            size_t vl = r % 100;

            memset(v, 'c', vl);
            rc = cf_put(c->fx, k, (size_t)kl, v, vl, KVD_NO_EXPIRY);
        } else {
            rc = cf_del(c->fx, k, (size_t)kl);
            rc = rc == KVD_ENOTFOUND ? 0 : rc;
        }
        if (rc != 0 && c->failures++ == 0) {
            snprintf(c->first, sizeof(c->first), "%s: status %d", k, rc);
        }
    }
    return NULL;
}

void
test_iter_concurrent_with_writes_sees_stable_keys(void **state)
{
    struct cf_fx *fx = *state;
    static int count[CF_STABLE_KEYS];
    struct cf_churn c[CF_THREADS - 1];
    pthread_t th[CF_THREADS - 1];
    _Atomic bool stop = false;
    struct kvd_iter_opts o = {0};
    struct kvd_err err = {0};
    int bad = 0;
    char k[32];
    char v[32];

    for (int i = 0; i < CF_STABLE_KEYS; i++) {
        int kl = snprintf(k, sizeof(k), "stable:%05d", i);
        int vl = snprintf(v, sizeof(v), "sv%d", i);

        assert_int_equal(cf_put(fx, k, (size_t)kl, v, (size_t)vl, 0), 0);
    }
    for (int i = 0; i < CF_THREADS - 1; i++) {
        c[i] = (struct cf_churn){.fx = fx, .id = i, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, cf_churn_worker, &c[i]),
                         0);
    }
    /* Full scans while the churn runs: every stable key exactly once per
     * scan, with its own value; churn keys are read (under ASan, any
     * entry freed under the iterator shows) but not counted. */
    for (int scan = 0; scan < CF_SCANS && bad == 0; scan++) {
        struct kvd_entry e;
        kvd_iter *it = NULL;
        int rc;

        memset(count, 0, sizeof(count));
        if (cf_iter_open(fx, &o, &it, &err) != 0) {
            bad++;
            break;
        }
        while ((rc = cf_iter_next(fx, it, &e)) == 0) {
            unsigned sum = 0;
            int idx;

            for (size_t j = 0; j < e.vlen; j++) {
                sum += ((const unsigned char *)e.val)[j];
            }
            (void)sum;
            if (e.klen != 12 || memcmp(e.key, "stable:", 7) != 0) {
                continue;
            }
            memcpy(k, e.key, 12);
            k[12] = '\0';
            idx = atoi(k + 7);
            count[idx]++;
            snprintf(v, sizeof(v), "sv%d", idx);
            if (e.vlen != strlen(v) || memcmp(e.val, v, e.vlen) != 0) {
                bad++;
            }
        }
        cf_iter_close(fx, it);
        if (rc != KVD_ENOTFOUND) {
            print_error("scan %d ended with status %d\n", scan, rc);
            bad++;
        }
        for (int i = 0; i < CF_STABLE_KEYS; i++) {
            if (count[i] != 1) {
                print_error("scan %d: stable:%05d seen %d times\n", scan, i,
                            count[i]);
                bad++;
            }
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < CF_THREADS - 1; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (int i = 0; i < CF_THREADS - 1; i++) {
        if (c[i].failures > 0) {
            print_error("churn %d: %d failures, first: %s\n", i, c[i].failures,
                        c[i].first);
        }
        assert_int_equal(c[i].failures, 0);
    }
    assert_int_equal(bad, 0);
}
