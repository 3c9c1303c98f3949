/*
 * tests/conformance/cf_ttl_iter.c -- expiry, iteration and statistics.
 *
 * Expiry runs on the fixture's fake clock (struct cf_clock_host): a key
 * whose expire_ms <= now is absent from get, iteration and stats, and
 * KVD_MAINT_EXPIRE really removes it. Iteration must return exactly the
 * live keys, each once, in memcmp order for KVD_CAP_ORDERED engines, and
 * resume by start key (ordered) or by pos (unordered) even when keys are
 * added between the pieces. Stats must match a model of what was written.
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one iteration produced: copies, so they outlive the iterator. */
struct cf_seen {
    size_t n;
    size_t cap;
    char **keys;
    size_t *klens;
    uint64_t *pos;
};

static void
cf_seen_add(struct cf_seen *s, const struct kvd_entry *e)
{
    if (s->n == s->cap) {
        s->cap = s->cap != 0 ? s->cap * 2 : 256;
        s->keys = realloc(s->keys, s->cap * sizeof(*s->keys));
        s->klens = realloc(s->klens, s->cap * sizeof(*s->klens));
        s->pos = realloc(s->pos, s->cap * sizeof(*s->pos));
        assert_non_null(s->keys);
        assert_non_null(s->klens);
        assert_non_null(s->pos);
    }
    s->keys[s->n] = malloc(e->klen + 1);
    assert_non_null(s->keys[s->n]);
    memcpy(s->keys[s->n], e->key, e->klen);
    s->keys[s->n][e->klen] = '\0';
    s->klens[s->n] = e->klen;
    s->pos[s->n] = e->pos;
    s->n++;
}

static void
cf_seen_free(struct cf_seen *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->keys[i]);
    }
    free(s->keys);
    free(s->klens);
    free(s->pos);
    memset(s, 0, sizeof(*s));
}

/* memcmp order of byte strings, shorter first on a common prefix. */
static int
cf_keycmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    if (c != 0) {
        return c;
    }
    return al < bl ? -1 : al > bl ? 1 : 0;
}

/* Iterate with opts to the end, keeping every entry; checks the order
 * (ordered engines) or the pos rule (unordered) on the way. */
static void
cf_collect(struct cf_fx *fx, const struct kvd_iter_opts *opts,
           struct cf_seen *out)
{
    bool ordered = (fx->vt->caps & KVD_CAP_ORDERED) != 0;
    struct kvd_err err = {0};
    struct kvd_entry e;
    kvd_iter *it = NULL;
    size_t first = out->n;
    int rc;

    rc = cf_iter_open(fx, opts, &it, &err);
    if (rc != 0) {
        print_error("iter_open: %s (%d)\n", err.msg, rc);
    }
    assert_int_equal(rc, 0);
    while ((rc = cf_iter_next(fx, it, &e)) == 0) {
        cf_seen_add(out, &e);
        if (out->n - first < 2) {
            continue;
        }
        if (ordered) {
            size_t p = out->n - 2;
            size_t c = out->n - 1;

            if (cf_keycmp(out->keys[p], out->klens[p], out->keys[c],
                          out->klens[c]) >= 0) {
                print_error("ordered engine: '%s' came after '%s'\n",
                            out->keys[c], out->keys[p]);
                fail();
            }
        } else {
            assert_true(out->pos[out->n - 1] >= out->pos[out->n - 2]);
            assert_true(out->pos[out->n - 1] < UINT64_MAX);
        }
    }
    cf_iter_close(fx, it);
    assert_int_equal(rc, KVD_ENOTFOUND);
}

/* --- TTL ------------------------------------------------------------------ */

void
test_ttl_get_returns_expiry(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);

    assert_int_equal(cf_put(fx, "ttl", 3, "v", 1, t + 5000), 0);
    assert_int_equal(cf_puts(fx, "plain", "v"), 0);
    assert_int_equal(cf_check(fx, "ttl", 3, "v", 1, t + 5000), 0);
    assert_int_equal(cf_check(fx, "plain", 5, "v", 1, KVD_NO_EXPIRY), 0);
    /* one millisecond before the deadline the key still lives */
    cf_advance(fx, 4999);
    assert_int_equal(cf_check(fx, "ttl", 3, "v", 1, t + 5000), 0);
}

void
test_ttl_expired_key_is_absent(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);
    struct kvd_engine_stats st;
    struct kvd_iter_opts all = {0};
    struct cf_seen seen = {0};

    assert_int_equal(cf_puts(fx, "live", "1"), 0);
    assert_int_equal(cf_put(fx, "short", 5, "22", 2, t + 1000), 0);
    assert_int_equal(cf_put(fx, "long", 4, "333", 3, t + 100000), 0);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 3);

    /* expire_ms <= now means expired: exactly at the deadline it is gone */
    cf_advance(fx, 1000);
    assert_int_equal(cf_checks(fx, "short", "22"), KVD_ENOTFOUND);
    assert_int_equal(cf_checks(fx, "live", "1"), 0);
    assert_int_equal(cf_check(fx, "long", 4, "333", 3, t + 100000), 0);

    cf_collect(fx, &all, &seen);
    assert_int_equal(seen.n, 2);
    for (size_t i = 0; i < seen.n; i++) {
        assert_string_not_equal(seen.keys[i], "short");
    }
    cf_seen_free(&seen);

    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.key_bytes, 4 + 4);
    assert_int_equal(st.value_bytes, 1 + 3);
    /* an expired key is not there to delete */
    assert_int_equal(cf_del(fx, "short", 5), KVD_ENOTFOUND);
}

void
test_ttl_past_expiry_put_is_absent(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);
    struct kvd_engine_stats st;
    uint64_t n;

    assert_int_equal(cf_put(fx, "past", 4, "v", 1, t - 1), 0);
    assert_int_equal(cf_checks(fx, "past", "v"), KVD_ENOTFOUND);
    /* writing an already-expired value over a live key removes it */
    assert_int_equal(cf_puts(fx, "was-live", "v"), 0);
    assert_int_equal(cf_put(fx, "was-live", 8, "w", 1, t - 1000), 0);
    assert_int_equal(cf_checks(fx, "was-live", "w"), KVD_ENOTFOUND);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.value_bytes, 0);
}

void
test_ttl_overwrite_clears_expiry(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);

    assert_int_equal(cf_put(fx, "k", 1, "v1", 2, t + 1000), 0);
    assert_int_equal(cf_put(fx, "k", 1, "v2", 2, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_check(fx, "k", 1, "v2", 2, KVD_NO_EXPIRY), 0);
    cf_advance(fx, 2000);
    assert_int_equal(cf_check(fx, "k", 1, "v2", 2, KVD_NO_EXPIRY), 0);

    /* an expired key can be written again, and then lives */
    assert_int_equal(cf_put(fx, "e", 1, "old", 3, cf_now(fx) + 10), 0);
    cf_advance(fx, 10);
    assert_int_equal(cf_checks(fx, "e", "old"), KVD_ENOTFOUND);
    assert_int_equal(cf_put(fx, "e", 1, "new", 3, cf_now(fx) + 60000), 0);
    assert_int_equal(cf_check(fx, "e", 1, "new", 3, cf_now(fx) + 60000), 0);
}

void
test_ttl_maint_expire_reclaims(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);
    struct kvd_err err = {0};
    struct kvd_engine_stats st;
    uint64_t n;
    char k[32];
    int rc;

    for (int i = 0; i < 200; i++) {
        int kl = snprintf(k, sizeof(k), "exp:%d", i);

        assert_int_equal(cf_put(fx, k, (size_t)kl, "x", 1, t + 1000), 0);
    }
    for (int i = 0; i < 10; i++) {
        int kl = snprintf(k, sizeof(k), "keep:%d", i);

        assert_int_equal(cf_put(fx, k, (size_t)kl, "y", 1, KVD_NO_EXPIRY), 0);
    }
    cf_advance(fx, 2000);
    rc = cf_maintain(fx, KVD_MAINT_EXPIRE, &err);
    CF_REQUIRE(rc != KVD_ENOTSUP, "engine has no KVD_MAINT_EXPIRE");
    if (rc != 0) {
        print_error("maintain(EXPIRE): %s (%d)\n", err.msg, rc);
    }
    assert_int_equal(rc, 0);

    /* Turn the clock back to before the deadline: a key merely hidden by
     * the clock would come back, a reclaimed one cannot. */
    cf_set_clock(fx, t);
    assert_int_equal(cf_checks(fx, "exp:0", "x"), KVD_ENOTFOUND);
    assert_int_equal(cf_checks(fx, "exp:199", "x"), KVD_ENOTFOUND);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 10);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 10);
    assert_int_equal(cf_checks(fx, "keep:9", "y"), 0);
}

/* --- iteration ------------------------------------------------------------ */

#define CF_ITER_KEYS 2000

static int
cf_iter_key(char *buf, size_t len, int i)
{
    return snprintf(buf, len, "it:%05d", i);
}

static int
cf_iter_val(char *buf, size_t len, int i, int gen)
{
    /* lengths vary with i, so a value from the wrong key shows */
    return snprintf(buf, len, "val-%d-%d-%.*s", i, gen, i % 23,
                    "abcdefghijklmnopqrstuvw");
}

void
test_iter_empty_store_ends_at_once(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_iter_opts o = {0};
    struct kvd_err err = {0};
    struct kvd_entry e;
    kvd_iter *it = NULL;

    assert_int_equal(cf_iter_open(fx, &o, &it, &err), 0);
    assert_int_equal(cf_iter_next(fx, it, &e), KVD_ENOTFOUND);
    /* asking again past the end stays at the end */
    assert_int_equal(cf_iter_next(fx, it, &e), KVD_ENOTFOUND);
    cf_iter_close(fx, it);
}

void
test_iter_returns_exactly_live_keys(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);
    static int gen[CF_ITER_KEYS]; /* -1 = absent */
    static bool seen[CF_ITER_KEYS];
    struct kvd_iter_opts o = {0};
    struct kvd_err err = {0};
    struct kvd_entry e;
    kvd_iter *it = NULL;
    size_t live = 0;
    size_t got = 0;
    char k[32];
    char v[64];
    char prev[32] = "";
    int rc;

    for (int i = 0; i < CF_ITER_KEYS; i++) {
        int kl = cf_iter_key(k, sizeof(k), i);
        int vl = cf_iter_val(v, sizeof(v), i, 0);
        int64_t exp = i % 11 == 0 ? t + 1000 : KVD_NO_EXPIRY;

        assert_int_equal(cf_put(fx, k, (size_t)kl, v, (size_t)vl, exp), 0);
        gen[i] = i % 11 == 0 ? -1 : 0; /* expires below */
        seen[i] = false;
    }
    for (int i = 0; i < CF_ITER_KEYS; i++) {
        int kl = cf_iter_key(k, sizeof(k), i);

        if (i % 5 == 0) {
            rc = cf_del(fx, k, (size_t)kl);
            assert_true(rc == 0 || rc == KVD_ENOTFOUND);
            gen[i] = -1;
        } else if (i % 7 == 0 && gen[i] == 0) {
            int vl = cf_iter_val(v, sizeof(v), i, 1);

            assert_int_equal(
                cf_put(fx, k, (size_t)kl, v, (size_t)vl, KVD_NO_EXPIRY), 0);
            gen[i] = 1;
        }
    }
    cf_advance(fx, 1000);
    for (int i = 0; i < CF_ITER_KEYS; i++) {
        live += gen[i] >= 0;
    }

    assert_int_equal(cf_iter_open(fx, &o, &it, &err), 0);
    while ((rc = cf_iter_next(fx, it, &e)) == 0) {
        int idx;
        int vl;

        if (e.klen != 8 || memcmp(e.key, "it:", 3) != 0) {
            print_error("unexpected key of %zu bytes\n", e.klen);
            fail();
        }
        memcpy(k, e.key, e.klen);
        k[e.klen] = '\0';
        idx = atoi(k + 3);
        if (gen[idx] < 0 || seen[idx]) {
            print_error("key %s: %s\n", k,
                        seen[idx] ? "returned twice" : "is not live");
            fail();
        }
        seen[idx] = true;
        got++;
        vl = cf_iter_val(v, sizeof(v), idx, gen[idx]);
        assert_non_null(e.val);
        assert_int_equal(e.vlen, (size_t)vl);
        assert_memory_equal(e.val, v, (size_t)vl);
        assert_int_equal(e.expire_ms, KVD_NO_EXPIRY);
        if ((fx->vt->caps & KVD_CAP_ORDERED) != 0) {
            assert_true(strcmp(prev, k) < 0);
            strcpy(prev, k);
        }
    }
    cf_iter_close(fx, it);
    assert_int_equal(rc, KVD_ENOTFOUND);
    assert_int_equal(got, live);
}

/* Iterate in pieces of about `piece` entries, reopening the iterator
 * between pieces the way SCAN does, and adding `churn` new keys between
 * pieces. Returns how often each of the n original keys was seen. */
static void
cf_iter_in_pieces(struct cf_fx *fx, size_t piece, int churn, int *count, int n)
{
    bool ordered = (fx->vt->caps & KVD_CAP_ORDERED) != 0;
    struct kvd_iter_opts o = {0};
    struct kvd_err err = {0};
    struct kvd_entry e;
    char start[64];
    size_t start_len = 0;
    uint64_t start_pos = 0;
    int added = 0;
    int pieces = 0;
    bool done = false;
    char k[64];
    int rc;

    while (!done) {
        kvd_iter *it = NULL;
        size_t taken = 0;
        uint64_t last_pos = 0;

        o.start = start_len > 0 ? start : NULL;
        o.start_len = start_len;
        o.start_pos = start_pos;
        assert_int_equal(cf_iter_open(fx, &o, &it, &err), 0);
        for (;;) {
            rc = cf_iter_next(fx, it, &e);
            if (rc == KVD_ENOTFOUND) {
                done = true;
                break;
            }
            assert_int_equal(rc, 0);
            /* unordered: stop only where pos changes (see kvd_entry) */
            if (!ordered && taken >= piece && e.pos != last_pos) {
                break;
            }
            if (e.klen == 8 && memcmp(e.key, "it:", 3) == 0) {
                memcpy(k, e.key, 8);
                k[8] = '\0';
                count[atoi(k + 3)]++;
            }
            taken++;
            last_pos = e.pos;
            if (ordered) {
                /* resume at the smallest key after this one: key + NUL */
                assert_true(e.klen + 1 <= sizeof(start));
                memcpy(start, e.key, e.klen);
                start[e.klen] = '\0';
                start_len = e.klen + 1;
                if (taken >= piece) {
                    break;
                }
            }
        }
        cf_iter_close(fx, it);
        if (!ordered) {
            start_pos = last_pos + 1;
            if (taken == 0) {
                done = true;
            }
        }
        /* new keys meanwhile: may or may not be seen, and must not
         * disturb the keys that were there all along (hash resizes) */
        for (int i = 0; i < churn && !done; i++, added++) {
            int kl = snprintf(k, sizeof(k), "churn:%06d", added);

            assert_int_equal(cf_put(fx, k, (size_t)kl, "c", 1, 0), 0);
        }
        pieces++;
        assert_true(pieces < 10 * n); /* no progress means a loop */
    }
}

void
test_iter_resumes_where_it_stopped(void **state)
{
    struct cf_fx *fx = *state;
    static int count[CF_ITER_KEYS];
    char k[32];
    char v[64];
    int bad = 0;

    for (int i = 0; i < CF_ITER_KEYS; i++) {
        int kl = cf_iter_key(k, sizeof(k), i);
        int vl = cf_iter_val(v, sizeof(v), i, 0);

        assert_int_equal(cf_put(fx, k, (size_t)kl, v, (size_t)vl, 0), 0);
    }
    /* without writes in between */
    memset(count, 0, sizeof(count));
    cf_iter_in_pieces(fx, 97, 0, count, CF_ITER_KEYS);
    for (int i = 0; i < CF_ITER_KEYS; i++) {
        if (count[i] != 1) {
            print_error("it:%05d seen %d times\n", i, count[i]);
            bad++;
        }
    }
    assert_int_equal(bad, 0);

    /* with 300 new keys after every piece: enough to grow a hash table */
    memset(count, 0, sizeof(count));
    cf_iter_in_pieces(fx, 97, 300, count, CF_ITER_KEYS);
    for (int i = 0; i < CF_ITER_KEYS; i++) {
        if (count[i] != 1) {
            print_error("with writes between pieces: it:%05d seen %d "
                        "times\n",
                        i, count[i]);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

void
test_iter_prefix_filter(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_iter_opts o = {0};
    struct cf_seen seen = {0};
    char k[32];

    for (int i = 0; i < 50; i++) {
        int kl = snprintf(k, sizeof(k), "a:%d", i);

        assert_int_equal(cf_put(fx, k, (size_t)kl, "v", 1, 0), 0);
    }
    for (int i = 0; i < 30; i++) {
        int kl = snprintf(k, sizeof(k), "ab:%d", i);

        assert_int_equal(cf_put(fx, k, (size_t)kl, "v", 1, 0), 0);
    }
    for (int i = 0; i < 10; i++) {
        int kl = snprintf(k, sizeof(k), "p%c%d", '\0', i);

        assert_int_equal(cf_put(fx, k, (size_t)kl, "v", 1, 0), 0);
        kl = snprintf(k, sizeof(k), "p%d", i);
        assert_int_equal(cf_put(fx, k, (size_t)kl, "v", 1, 0), 0);
    }
    assert_int_equal(cf_puts(fx, "a", "v"), 0);
    assert_int_equal(cf_puts(fx, "b:1", "v"), 0);

    o.prefix = "a:";
    o.prefix_len = 2;
    cf_collect(fx, &o, &seen);
    assert_int_equal(seen.n, 50);
    for (size_t i = 0; i < seen.n; i++) {
        assert_memory_equal(seen.keys[i], "a:", 2);
    }
    cf_seen_free(&seen);

    o.prefix = "a";
    o.prefix_len = 1;
    cf_collect(fx, &o, &seen);
    assert_int_equal(seen.n, 50 + 30 + 1);
    cf_seen_free(&seen);

    /* a prefix with a NUL in it is bytes, not a C string */
    o.prefix = "p\0";
    o.prefix_len = 2;
    cf_collect(fx, &o, &seen);
    assert_int_equal(seen.n, 10);
    for (size_t i = 0; i < seen.n; i++) {
        assert_int_equal(seen.klens[i], 3);
        assert_memory_equal(seen.keys[i], "p\0", 2);
    }
    cf_seen_free(&seen);

    o.prefix = "zzz";
    o.prefix_len = 3;
    cf_collect(fx, &o, &seen);
    assert_int_equal(seen.n, 0);
    cf_seen_free(&seen);
}

void
test_iter_keys_only_reports_lengths(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);
    struct kvd_iter_opts o = {.flags = KVD_ITER_KEYS_ONLY};
    struct kvd_err err = {0};
    struct kvd_entry e;
    kvd_iter *it = NULL;
    int seen[40] = {0};
    char k[32];
    char v[64];
    int rc;

    for (int i = 0; i < 40; i++) {
        int kl = snprintf(k, sizeof(k), "ko:%02d", i);
        int64_t exp = i % 2 ? t + 1000 * (i + 1) : KVD_NO_EXPIRY;

        memset(v, 'a' + i % 26, (size_t)i);
        assert_int_equal(cf_put(fx, k, (size_t)kl, v, (size_t)i, exp), 0);
    }
    assert_int_equal(cf_iter_open(fx, &o, &it, &err), 0);
    while ((rc = cf_iter_next(fx, it, &e)) == 0) {
        int i;

        assert_int_equal(e.klen, 5);
        memcpy(k, e.key, 5);
        k[5] = '\0';
        i = atoi(k + 3);
        seen[i]++;
        /* the value's length is reported even when its bytes are not */
        assert_int_equal(e.vlen, (size_t)i);
        if (e.val != NULL && i > 0) {
            memset(v, 'a' + i % 26, (size_t)i);
            assert_memory_equal(e.val, v, (size_t)i);
        }
        assert_int_equal(e.expire_ms,
                         i % 2 ? t + 1000 * (i + 1) : KVD_NO_EXPIRY);
    }
    cf_iter_close(fx, it);
    assert_int_equal(rc, KVD_ENOTFOUND);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(seen[i], 1);
    }
}

/* --- stats ---------------------------------------------------------------- */

void
test_stats_match_written(void **state)
{
    struct cf_fx *fx = *state;
    int64_t t = cf_now(fx);
    struct kvd_engine_stats st;
    uint64_t keys = 0;
    uint64_t key_bytes = 0;
    uint64_t value_bytes = 0;
    char k[64];
    char v[128];

    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.struct_size, sizeof(st));
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.key_bytes, 0);
    assert_int_equal(st.value_bytes, 0);
    assert_int_not_equal(st.ready, 0);
    assert_int_equal(st.readonly, 0);

    for (int i = 0; i < 300; i++) {
        /* key lengths 5..35, value lengths 0..99 */
        int kl = snprintf(k, sizeof(k), "s%04d%.*s", i, i % 31,
                          "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
        size_t vl = (size_t)(i * 37 % 100);
        /* no expiry on keys the test deletes: a remote engine expires on
         * its own clock, which under load can pass the 500 ms before the
         * delete comes (then del is KVD_ENOTFOUND, rightly) */
        int64_t exp = i % 13 == 0 && i % 4 != 0 ? t + 500 : KVD_NO_EXPIRY;

        memset(v, 'v', vl);
        assert_int_equal(cf_put(fx, k, (size_t)kl, v, vl, exp), 0);
        if (i % 4 == 0) { /* delete a quarter */
            assert_int_equal(cf_del(fx, k, (size_t)kl), 0);
            continue;
        }
        if (i % 3 == 0) { /* overwrite a third with another length */
            vl = (size_t)(i % 7);
            assert_int_equal(cf_put(fx, k, (size_t)kl, v, vl, exp), 0);
        }
        if (exp != KVD_NO_EXPIRY) {
            continue; /* expires below */
        }
        keys++;
        key_bytes += (uint64_t)kl;
        value_bytes += vl;
    }
    cf_advance(fx, 500);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.struct_size, sizeof(st));
    CF_REQUIRE(!st.approximate, "the engine's counts are estimates here");
    assert_int_equal(st.keys, keys);
    assert_int_equal(st.key_bytes, key_bytes);
    assert_int_equal(st.value_bytes, value_bytes);
}
