/*
 * Unit tests of the log engine's index slot arrays (alog_index.c is
 * compiled into this test, static functions and all): in-place regrowth
 * and shrinking keep the ordered-probing layout and every key, the
 * reservations an array needs stay logarithmic in its size, and a growth
 * that cannot extend its arrays leaves the shard as it was.
 *
 * The shard functions take the key's hash from the caller, so the tests
 * aim every key at shard 0 with random hashes (the key is its hash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "alog_index.c"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t
rng(void)
{
    /* splitmix64: deterministic, so a failure reproduces */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A random hash of shard 0 (never UINT64_MAX: the top byte is 0). */
static uint64_t
shard0_hash(void)
{
    return rng() >> ALOG_SHARD_BITS;
}

/* The layout property: every used slot at or after its home with no free
 * slot between, tags ascending, count used slots, nothing in the slots of
 * the read-write prefix past nslots. */
static void
check_layout(const struct alog_shard *sh)
{
    uint64_t used = 0;
    uint32_t last = 0;
    size_t free_at = 0; /* 1 + the last free slot seen */

    assert_true((size_t)sh->nslots * sizeof(*sh->slots) <= sh->smap.rw);
    for (size_t i = 0; i < sh->nslots; i++) {
        const struct alog_ent *e = &sh->slots[i];
        if (!(e->flags & ALOG_ENT_USED)) {
            free_at = i + 1;
            continue;
        }
        assert_true(alog_shard_home(sh, e->tag) <= i);
        assert_true(alog_shard_home(sh, e->tag) >= free_at);
        assert_true(used == 0 || e->tag >= last);
        last = e->tag;
        used++;
    }
    assert_int_equal(used, sh->count);
    for (size_t i = sh->nslots;
         (i + 1) * sizeof(*sh->slots) <= sh->smap.rw; i++) {
        assert_int_equal(sh->slots[i].flags, 0);
    }
}

static struct alog_ent *
put(struct alog_shard *sh, uint64_t h, uint32_t id)
{
    struct alog_ent *e = alog_shard_insert_locked(sh, h, &h, sizeof(h));

    if (e != NULL) {
        e->off = id;
        if (sh->rseq != NULL) {
            *alog_ent_seq(sh, e) = (uint64_t)id + 1;
        }
    }
    return e;
}

/* Every key in h[0..n) (alive[i]) is found with its id (and seq), and no
 * other. */
static void
check_keys(struct alog_shard *sh, const uint64_t *h, const char *alive,
           size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct alog_ent *e = alog_shard_find_locked(sh, h[i], &h[i], 8);
        if (!alive[i]) {
            assert_null(e);
            continue;
        }
        assert_non_null(e);
        assert_int_equal(e->off, i);
        if (sh->rseq != NULL) {
            assert_int_equal(*alog_ent_seq(sh, e), (uint64_t)i + 1);
        }
    }
}

/* Random inserts and removes through many regrowths and shrinks, with and
 * without the recovery seq array: every key stays findable with its data
 * and the layout keeps its order. */
static void
churn(int with_seq)
{
    enum { N = 60000 };
    struct alog_index ix;
    struct alog_shard *sh;
    uint64_t *h = malloc(N * sizeof(*h));
    char *alive = calloc(N, 1);
    uint32_t grew = 0;
    uint32_t shrank = 0;

    assert_non_null(h);
    assert_non_null(alive);
    assert_int_equal(alog_index_init(&ix), 0);
    if (with_seq) {
        assert_int_equal(alog_index_bulk_begin(&ix, 0), 0);
    }
    sh = &ix.shards[0];
    for (size_t i = 0; i < N; i++) {
        h[i] = shard0_hash();
    }
    for (int round = 0; round < 3; round++) {
        /* fill, then remove about 9 in 10 at random: the shard shrinks */
        for (size_t i = 0; i < N; i++) {
            uint32_t cap = sh->cap;
            if (alive[i]) {
                continue;
            }
            assert_non_null(put(sh, h[i], (uint32_t)i));
            alive[i] = 1;
            grew += sh->cap > cap;
            if (i % 4999 == 0) {
                check_layout(sh);
            }
        }
        check_layout(sh);
        check_keys(sh, h, alive, N);
        for (size_t i = 0; i < N; i++) {
            uint32_t cap = sh->cap;
            struct alog_ent *e;
            if (!alive[i] || rng() % 10 == 0) {
                continue;
            }
            e = alog_shard_find_locked(sh, h[i], &h[i], 8);
            assert_non_null(e);
            alog_shard_remove_locked(sh, e);
            alive[i] = 0;
            if (i % 64 == 0) {
                alog_shard_maybe_shrink_locked(sh);
                shrank += sh->cap < cap;
            }
            if (i % 4999 == 0) {
                check_layout(sh);
            }
        }
        alog_shard_maybe_shrink_locked(sh);
        check_layout(sh);
        check_keys(sh, h, alive, N);
        /* a shrink gives the pages past the array back */
        assert_true(sh->smap.rw <=
                    ix_page_up((size_t)sh->nslots * sizeof(*sh->slots)));
        if (with_seq) {
            assert_true(sh->qmap.rw <= ix_page_up((size_t)sh->nslots * 8));
        }
    }
    assert_true(grew > 50);
    assert_true(shrank >= 3);
    /* 60,000 keys need about 1.6 MB of slots: past the first 1 MiB
     * reservation once, and regrowing after each shrink stays in the
     * second (a shrink keeps its reservation) */
    assert_int_equal(sh->nreserve, 2);
    if (with_seq) {
        alog_index_bulk_end(&ix);
    }
    alog_index_release(&ix);
    free(h);
    free(alive);
}

static void
test_index_churn_keeps_keys_and_order(void **state)
{
    (void)state;
    churn(0);
}

static void
test_index_churn_with_seq_keeps_seqs(void **state)
{
    (void)state;
    churn(1);
}

/* Growing from 16 home slots to about 230,000 takes some 80 regrowths, but only a new reservation each time the array passes 4
 * times the last one's size: 1 MiB, then 4x (about 5 MiB of slots). */
static void
test_index_regrowth_reserves_logarithmically(void **state)
{
    enum { N = 200000 };
    struct alog_index ix;
    struct alog_shard *sh;
    uint32_t grew = 0;

    (void)state;
    assert_int_equal(alog_index_init(&ix), 0);
    sh = &ix.shards[0];
    assert_int_equal(sh->nreserve, 1);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t cap = sh->cap;
        assert_non_null(put(sh, shard0_hash(), i));
        grew += sh->cap > cap;
    }
    check_layout(sh);
    assert_true(grew > 60);
    /* 1 + log4(bytes / 1 MiB) rounded up, and one to spare */
    assert_true(sh->nreserve <= 3);
    assert_true(sh->smap.resv >= (size_t)sh->nslots * sizeof(*sh->slots));
    alog_index_release(&ix);
}

/* A growth whose arrays cannot be extended (the test hook) fails and
 * leaves the shard exactly as it was, slots and seqs byte for byte; an
 * insert into the full shard then fails too, with nothing changed. */
static void
test_index_failed_growth_leaves_shard_unchanged(void **state)
{
    struct alog_index ix;
    struct alog_shard *sh;
    struct alog_shard before;
    struct alog_ent *slots;
    uint64_t *seqs;
    uint32_t i = 0;

    (void)state;
    assert_int_equal(alog_index_init(&ix), 0);
    assert_int_equal(alog_index_bulk_begin(&ix, 0), 0);
    sh = &ix.shards[0];
    for (; i < 3000; i++) {
        assert_non_null(put(sh, shard0_hash(), i));
    }
    sh->fail_extend = 1;
    before = *sh;
    slots = malloc((size_t)sh->nslots * sizeof(*slots));
    seqs = malloc((size_t)sh->nslots * 8);
    assert_non_null(slots);
    assert_non_null(seqs);
    memcpy(slots, sh->slots, (size_t)sh->nslots * sizeof(*slots));
    memcpy(seqs, sh->rseq, (size_t)sh->nslots * 8);

    /* past the read-write prefix, and past the reservation */
    assert_int_equal(shard_resize_locked(sh, sh->cap * 2), -1);
    assert_int_equal(shard_resize_locked(sh, sh->cap * 64), -1);
    assert_memory_equal(sh, &before, sizeof(before));
    assert_memory_equal(sh->slots, slots, (size_t)sh->nslots * sizeof(*slots));
    assert_memory_equal(sh->rseq, seqs, (size_t)sh->nslots * 8);

    /* inserts go on, growing within the read-write prefix while they can,
     * then past 90% load (growth failing is harmless) until a run would
     * pass the overflow tail or the shard is full */
    for (;; i++) {
        uint64_t h = shard0_hash();
        if (put(sh, h, i) == NULL) {
            assert_null(alog_shard_find_locked(sh, h, &h, 8));
            break;
        }
    }
    assert_true(sh->smap.base == before.smap.base);
    assert_int_equal(sh->smap.rw, before.smap.rw);
    assert_int_equal(sh->qmap.rw, before.qmap.rw);
    assert_true(sh->count + 1 > (uint64_t)sh->cap * ALOG_LOAD_NUM /
                                    ALOG_LOAD_DEN);
    check_layout(sh);
    before.cap = sh->cap;
    sh->fail_extend = 0;
    assert_non_null(put(sh, shard0_hash(), i));
    assert_true(sh->cap > before.cap);
    assert_true(sh->smap.rw > before.smap.rw);
    check_layout(sh);

    free(slots);
    free(seqs);
    alog_index_bulk_end(&ix);
    alog_index_release(&ix);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_churn_keeps_keys_and_order),
        cmocka_unit_test(test_index_churn_with_seq_keeps_seqs),
        cmocka_unit_test(test_index_regrowth_reserves_logarithmically),
        cmocka_unit_test(test_index_failed_growth_leaves_shard_unchanged),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
