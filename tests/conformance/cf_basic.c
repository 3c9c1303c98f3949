/*
 * tests/conformance/cf_basic.c -- point operations and batches.
 *
 * CRUD, overwrite, misses, binary and empty data, a 16 MiB value, 100,000
 * keys, and the atomic batch: an invalid operation anywhere in a batch
 * changes nothing, a valid one applies every operation, later operations
 * on the same key win; on a partitioned engine, a batch across partitions
 * is refused whole (KVD_ECROSSSLOT). Each test runs in both fixture modes
 * (raw vtable and store); see conformance.h.
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CF_BIG_VALUE_BYTES ((size_t)16 * 1024 * 1024 + 13)
#define CF_MANY_KEYS       100000u

void
test_crud_put_get_del(void **state)
{
    struct cf_fx *fx = *state;

    assert_int_equal(cf_puts(fx, "alpha", "one"), 0);
    assert_int_equal(cf_check(fx, "alpha", 5, "one", 3, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_puts(fx, "beta", "two"), 0);
    assert_int_equal(cf_checks(fx, "beta", "two"), 0);
    assert_int_equal(cf_del(fx, "alpha", 5), 0);
    assert_int_equal(cf_checks(fx, "alpha", "one"), KVD_ENOTFOUND);
    /* the other key is untouched */
    assert_int_equal(cf_checks(fx, "beta", "two"), 0);
    assert_int_equal(cf_del(fx, "alpha", 5), KVD_ENOTFOUND);
}

void
test_get_value_outlives_overwrite(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_val a = {0};
    struct kvd_val b = {0};

    assert_int_equal(cf_puts(fx, "k", "original value"), 0);
    assert_int_equal(cf_get(fx, "k", 1, &a), 0);
    assert_int_equal(cf_puts(fx, "k", "second"), 0);
    assert_int_equal(cf_get(fx, "k", 1, &b), 0);
    assert_int_equal(cf_del(fx, "k", 1), 0);
    assert_int_equal(cf_puts(fx, "other", "reuses freed memory, maybe"), 0);
    /* a value handed out stays valid and unchanged until released */
    assert_int_equal(a.len, 14);
    assert_memory_equal(a.data, "original value", 14);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "second", 6);
    kvd_val_release(&a);
    kvd_val_release(&b);
    assert_null(a.release);
    assert_int_equal(a.len, 0);
}

void
test_put_overwrite_replaces_value(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_engine_stats st;

    assert_int_equal(cf_puts(fx, "k", "a long first value"), 0);
    assert_int_equal(cf_puts(fx, "k", "short"), 0);
    assert_int_equal(cf_checks(fx, "k", "short"), 0);
    assert_int_equal(cf_puts(fx, "k", "and a longer third value"), 0);
    assert_int_equal(cf_checks(fx, "k", "and a longer third value"), 0);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.key_bytes, 1);
    assert_int_equal(st.value_bytes, strlen("and a longer third value"));
}

void
test_get_missing_key_is_notfound(void **state)
{
    struct cf_fx *fx = *state;
    static const char sentinel[] = "untouched";
    struct kvd_val v = {.data = sentinel, .len = 9};

    assert_int_equal(cf_get(fx, "nope", 4, &v), KVD_ENOTFOUND);
    /* on error *out is untouched (and so must not be released) */
    assert_ptr_equal(v.data, sentinel);
    assert_int_equal(v.len, 9);

    assert_int_equal(cf_puts(fx, "nope2", "x"), 0);
    assert_int_equal(cf_get(fx, "nope", 4, &v), KVD_ENOTFOUND);
    /* a prefix or extension of a stored key is a different key */
    assert_int_equal(cf_get(fx, "nope23", 6, &v), KVD_ENOTFOUND);
}

void
test_del_missing_key_is_notfound(void **state)
{
    struct cf_fx *fx = *state;
    uint64_t n;

    assert_int_equal(cf_del(fx, "ghost", 5), KVD_ENOTFOUND);
    assert_int_equal(cf_puts(fx, "ghost-not", "v"), 0);
    assert_int_equal(cf_del(fx, "ghost", 5), KVD_ENOTFOUND);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 1);
}

void
test_binary_keys_and_values_with_nul(void **state)
{
    struct cf_fx *fx = *state;
    /* distinct keys that C strings would confuse */
    static const struct {
        const char *k;
        size_t kl;
        const char *v;
        size_t vl;
    } kv[] = {
        {"a\0b", 3, "1\0\0x", 4}, {"a\0c", 3, "2", 1},
        {"a", 1, "\0", 1},        {"\0", 1, "\xff\xfe\0\x01", 4},
        {"\0\0", 2, "\0\0\0", 3}, {"\xff", 1, "ff", 2},
    };
    size_t n = sizeof(kv) / sizeof(kv[0]);
    uint64_t count;

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(
            cf_put(fx, kv[i].k, kv[i].kl, kv[i].v, kv[i].vl, KVD_NO_EXPIRY), 0);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(
            cf_check(fx, kv[i].k, kv[i].kl, kv[i].v, kv[i].vl, KVD_NO_EXPIRY),
            0);
    }
    assert_int_equal(cf_count_keys(fx, &count), 0);
    assert_int_equal(count, n);

    /* deleting "a\0b" leaves "a" and "a\0c" alone */
    assert_int_equal(cf_del(fx, "a\0b", 3), 0);
    assert_int_equal(cf_check(fx, "a\0b", 3, "", 0, -1), KVD_ENOTFOUND);
    assert_int_equal(cf_check(fx, "a", 1, "\0", 1, -1), 0);
    assert_int_equal(cf_check(fx, "a\0c", 3, "2", 1, -1), 0);
}

void
test_empty_value_is_stored(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_engine_stats st;
    struct kvd_val v = {0};

    assert_int_equal(cf_put(fx, "empty", 5, "", 0, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_get(fx, "empty", 5, &v), 0);
    assert_int_equal(v.len, 0);
    kvd_val_release(&v);
    /* an empty value is a present key, not a missing one */
    assert_int_equal(cf_check(fx, "empty", 5, "", 0, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.value_bytes, 0);
    /* a NULL value pointer with length 0 is as good as "" */
    assert_int_equal(cf_put(fx, "null", 4, NULL, 0, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_check(fx, "null", 4, "", 0, -1), 0);
    assert_int_equal(cf_del(fx, "empty", 5), 0);
    assert_int_equal(cf_check(fx, "empty", 5, "", 0, -1), KVD_ENOTFOUND);
}

void
test_value_16mib_roundtrip(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_engine_vtable *vt = fx->vt;
    struct kvd_engine_stats st;
    unsigned char *big;
    uint32_t x = 2463534242u;

    CF_REQUIRE(vt->max_value_bytes == 0 ||
                   vt->max_value_bytes >= CF_BIG_VALUE_BYTES,
               "engine's max_value_bytes is below 16 MiB");
    big = malloc(CF_BIG_VALUE_BYTES);
    assert_non_null(big);
    /* xorshift bytes: no run a broken copy could get right by accident */
    for (size_t i = 0; i < CF_BIG_VALUE_BYTES; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big[i] = (unsigned char)x;
    }
    assert_int_equal(
        cf_put(fx, "big", 3, big, CF_BIG_VALUE_BYTES, KVD_NO_EXPIRY), 0);
    assert_int_equal(
        cf_check(fx, "big", 3, big, CF_BIG_VALUE_BYTES, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.value_bytes, CF_BIG_VALUE_BYTES);
    /* shrink it again: the old bytes must not linger in the answer */
    assert_int_equal(cf_puts(fx, "big", "small"), 0);
    assert_int_equal(cf_checks(fx, "big", "small"), 0);
    free(big);
}

void
test_100k_keys_roundtrip(void **state)
{
    struct cf_fx *fx = *state;
    struct kvd_engine_stats st;
    uint64_t key_bytes = 0;
    uint64_t value_bytes = 0;
    uint64_t n;
    char k[32];
    char v[32];

    for (unsigned i = 0; i < CF_MANY_KEYS; i++) {
        int kl = snprintf(k, sizeof(k), "key:%08u", i * 7919u);
        int vl = snprintf(v, sizeof(v), "v%u", i);

        assert_int_equal(
            cf_put(fx, k, (size_t)kl, v, (size_t)vl, KVD_NO_EXPIRY), 0);
        key_bytes += (uint64_t)kl;
        value_bytes += (uint64_t)vl;
    }
    for (unsigned i = 0; i < CF_MANY_KEYS; i++) {
        int kl = snprintf(k, sizeof(k), "key:%08u", i * 7919u);
        int vl = snprintf(v, sizeof(v), "v%u", i);

        assert_int_equal(cf_check(fx, k, (size_t)kl, v, (size_t)vl, -1), 0);
    }
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, CF_MANY_KEYS);
    assert_int_equal(st.key_bytes, key_bytes);
    assert_int_equal(st.value_bytes, value_bytes);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, CF_MANY_KEYS);

    /* delete every third key; the rest stay */
    for (unsigned i = 0; i < CF_MANY_KEYS; i += 3) {
        int kl = snprintf(k, sizeof(k), "key:%08u", i * 7919u);

        assert_int_equal(cf_del(fx, k, (size_t)kl), 0);
    }
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, CF_MANY_KEYS - (CF_MANY_KEYS + 2) / 3);
    assert_int_equal(cf_check(fx, "key:00007919", 12, "v1", 2, -1), 0);
    assert_int_equal(cf_check(fx, "key:00000000", 12, "v0", 2, -1),
                     KVD_ENOTFOUND);
}

/* Keys the batch tests start from. */
static void
cf_batch_seed(struct cf_fx *fx)
{
    assert_int_equal(cf_puts(fx, "pre-a", "old-a"), 0);
    assert_int_equal(cf_puts(fx, "pre-b", "old-b"), 0);
}

/* The seed is intact and none of the batch's new keys exist. */
static void
cf_batch_assert_unchanged(struct cf_fx *fx)
{
    uint64_t n;

    assert_int_equal(cf_checks(fx, "pre-a", "old-a"), 0);
    assert_int_equal(cf_checks(fx, "pre-b", "old-b"), 0);
    assert_int_equal(cf_checks(fx, "new-1", ""), KVD_ENOTFOUND);
    assert_int_equal(cf_checks(fx, "new-2", ""), KVD_ENOTFOUND);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 2);
}

void
test_batch_invalid_op_changes_nothing(void **state)
{
    struct cf_fx *fx = *state;
    /* valid operations first, so an engine applying as it goes is caught */
    const struct kvd_op ops[] = {
        {.type = KVD_OP_PUT, .key = "new-1", .klen = 5, .val = "1", .vlen = 1},
        {.type = KVD_OP_PUT,
         .key = "pre-a",
         .klen = 5,
         .val = "new",
         .vlen = 3},
        {.type = KVD_OP_DEL, .key = "pre-b", .klen = 5},
        {.type = KVD_OP_PUT, .key = "new-2", .klen = 5, .val = "2", .vlen = 1},
        {.type = 99, .key = "bad", .klen = 3, .val = "x", .vlen = 1},
    };
    struct kvd_err err = {0};

    CF_REQUIRE(cf_has_batch(fx), "engine has no atomic batch");
    cf_batch_seed(fx);
    assert_int_equal(cf_batch(fx, ops, 5, &err), KVD_EINVAL);
    assert_int_equal(err.code, KVD_EINVAL);
    /* the message must point at the offending operation */
    print_message("      batch refused: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "4"));
    assert_non_null(strstr(err.msg, "99"));
    cf_batch_assert_unchanged(fx);
}

void
test_batch_empty_key_changes_nothing(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_op ops[] = {
        {.type = KVD_OP_PUT, .key = "new-1", .klen = 5, .val = "1", .vlen = 1},
        {.type = KVD_OP_DEL, .key = "pre-a", .klen = 5},
        {.type = KVD_OP_PUT, .key = "", .klen = 0, .val = "x", .vlen = 1},
    };
    struct kvd_err err = {0};

    CF_REQUIRE(cf_has_batch(fx), "engine has no atomic batch");
    cf_batch_seed(fx);
    assert_int_equal(cf_batch(fx, ops, 3, &err), KVD_EINVAL);
    assert_int_equal(err.code, KVD_EINVAL);
    print_message("      batch refused: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "2"));
    assert_non_null(strstr(err.msg, "empty"));
    cf_batch_assert_unchanged(fx);
}

void
test_batch_valid_applies_all(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_op ops[] = {
        {.type = KVD_OP_PUT, .key = "new-1", .klen = 5, .val = "1", .vlen = 1},
        {.type = KVD_OP_PUT,
         .key = "pre-a",
         .klen = 5,
         .val = "new-a",
         .vlen = 5},
        {.type = KVD_OP_DEL, .key = "pre-b", .klen = 5},
        {.type = KVD_OP_PUT,
         .key = "new\0 2",
         .klen = 6,
         .val = "\0",
         .vlen = 1},
        {.type = KVD_OP_PUT, .key = "new-3", .klen = 5, .val = "", .vlen = 0},
        /* deleting an absent key inside a batch is not an error */
        {.type = KVD_OP_DEL, .key = "absent", .klen = 6},
    };
    struct kvd_err err = {0};
    struct kvd_engine_stats st;

    CF_REQUIRE(cf_has_batch(fx), "engine has no atomic batch");
    cf_batch_seed(fx);
    assert_int_equal(cf_batch(fx, ops, 6, &err), 0);
    assert_int_equal(cf_checks(fx, "new-1", "1"), 0);
    assert_int_equal(cf_checks(fx, "pre-a", "new-a"), 0);
    assert_int_equal(cf_checks(fx, "pre-b", ""), KVD_ENOTFOUND);
    assert_int_equal(cf_check(fx, "new\0 2", 6, "\0", 1, KVD_NO_EXPIRY), 0);
    assert_int_equal(cf_checks(fx, "new-3", ""), 0);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 4);
    assert_int_equal(st.key_bytes, 5 + 5 + 6 + 5);
    assert_int_equal(st.value_bytes, 1 + 5 + 1 + 0);
}

void
test_batch_later_op_wins(void **state)
{
    struct cf_fx *fx = *state;
    const struct kvd_op ops[] = {
        {.type = KVD_OP_PUT, .key = "k", .klen = 1, .val = "first", .vlen = 5},
        {.type = KVD_OP_PUT, .key = "k", .klen = 1, .val = "second", .vlen = 6},
        {.type = KVD_OP_DEL, .key = "j", .klen = 1},
        {.type = KVD_OP_PUT, .key = "j", .klen = 1, .val = "back", .vlen = 4},
        {.type = KVD_OP_PUT, .key = "x", .klen = 1, .val = "gone", .vlen = 4},
        {.type = KVD_OP_DEL, .key = "x", .klen = 1},
    };
    struct kvd_err err = {0};
    struct kvd_engine_stats st;

    CF_REQUIRE(cf_has_batch(fx), "engine has no atomic batch");
    assert_int_equal(cf_puts(fx, "j", "old"), 0);
    assert_int_equal(cf_puts(fx, "x", "old"), 0);
    assert_int_equal(cf_batch(fx, ops, 6, &err), 0);
    assert_int_equal(cf_checks(fx, "k", "second"), 0);
    assert_int_equal(cf_checks(fx, "j", "back"), 0);
    assert_int_equal(cf_checks(fx, "x", ""), KVD_ENOTFOUND);
    assert_int_equal(cf_stats(fx, &st), 0);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.value_bytes, 6 + 4);
}

/* A partitioned engine refuses a batch across partitions as a whole, and
 * applies one within a partition. Keys get the suite's partition tags. */
void
test_batch_cross_partition_changes_nothing(void **state)
{
    struct cf_fx *fx = *state;
    const char *a = fx->suite->partition_tags[0];
    const char *b = fx->suite->partition_tags[1];
    char pre_a[64], pre_b[64], new_1[64], new_2[64];
    struct kvd_op ops[3];
    struct kvd_err err = {0};
    uint64_t n;

    CF_REQUIRE(cf_partitioned(fx), "engine's batches are not partitioned");
    CF_REQUIRE(a != NULL, "no --partition-tags=A,B given");
    snprintf(pre_a, sizeof(pre_a), "%spre-a", a);
    snprintf(pre_b, sizeof(pre_b), "%spre-b", b);
    snprintf(new_1, sizeof(new_1), "%snew-1", a);
    snprintf(new_2, sizeof(new_2), "%snew-2", b);
    assert_int_equal(cf_puts(fx, pre_a, "old-a"), 0);
    assert_int_equal(cf_puts(fx, pre_b, "old-b"), 0);

    /* the first two ops share a partition: an engine applying as it goes
     * would have changed something before meeting the third */
    ops[0] = (struct kvd_op){.type = KVD_OP_PUT,
                             .key = new_1,
                             .klen = strlen(new_1),
                             .val = "1",
                             .vlen = 1};
    ops[1] = (struct kvd_op){
        .type = KVD_OP_DEL, .key = pre_a, .klen = strlen(pre_a)};
    ops[2] = (struct kvd_op){.type = KVD_OP_PUT,
                             .key = new_2,
                             .klen = strlen(new_2),
                             .val = "2",
                             .vlen = 1};
    assert_int_equal(cf_batch(fx, ops, 3, &err), KVD_ECROSSSLOT);
    assert_int_equal(err.code, KVD_ECROSSSLOT);
    print_message("      batch refused: %s\n", err.msg);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(cf_checks(fx, pre_a, "old-a"), 0);
    assert_int_equal(cf_checks(fx, pre_b, "old-b"), 0);
    assert_int_equal(cf_checks(fx, new_1, ""), KVD_ENOTFOUND);
    assert_int_equal(cf_checks(fx, new_2, ""), KVD_ENOTFOUND);
    assert_int_equal(cf_count_keys(fx, &n), 0);
    assert_int_equal(n, 2);

    /* the same kind of batch within one partition applies */
    ops[1] = (struct kvd_op){
        .type = KVD_OP_DEL, .key = pre_b, .klen = strlen(pre_b)};
    assert_int_equal(cf_batch(fx, &ops[1], 2, &err), 0);
    assert_int_equal(cf_checks(fx, pre_b, ""), KVD_ENOTFOUND);
    assert_int_equal(cf_checks(fx, new_2, "2"), 0);
    assert_int_equal(cf_checks(fx, pre_a, "old-a"), 0);
}
