/*
 * test_log_unit.c -- unit tests of the log engine, loaded as a plugin
 * (argv[1] = the engine .so) with the fault-injecting test host.
 *
 * Covers: crc32c (hardware vs table), basic operations and reopen, one
 * pread per get, the directory lock, atomic batches, torn tails at every
 * byte offset, flipped bytes, write and fsync failures, merges (values
 * survive, tombstones and expiry, concurrent writers), iteration
 * positions, group commit, hint files vs scans (a clean close leaves
 * only hinted segments, a hint that does not match its data file is
 * ignored), stats, options.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "alog_index.h"
#include "alog_test_host.h"
#include "kvd/kit_crc32c.h"

static const struct kvd_engine_vtable *vt;

/* ---- helpers ---- */

static kvd_engine *
open_ok(const char *dir, const struct alog_opts *o)
{
    struct kvd_err err = {0};
    kvd_engine *e = NULL;
    int rc = vt->open(&th_host, o, dir, &e, &err);
    if (rc != 0) {
        fail_msg("open %s: %d %s", dir, rc, err.msg);
    }
    return e;
}

static void
close_ok(kvd_engine *e)
{
    struct kvd_err err = {0};
    int rc = vt->close(e, &err);
    if (rc != 0) {
        fail_msg("close: %d %s", rc, err.msg);
    }
}

static void
put_ok(kvd_engine *e, const char *k, const char *v)
{
    assert_int_equal(vt->put(e, k, strlen(k), v, strlen(v), 0), 0);
}

static void
expect_val(kvd_engine *e, const char *k, const char *v)
{
    struct kvd_val val;
    int rc = vt->get(e, k, strlen(k), &val);
    if (rc != 0) {
        fail_msg("get %s: %d", k, rc);
    }
    assert_int_equal(val.len, strlen(v));
    assert_memory_equal(val.data, v, val.len);
    kvd_val_release(&val);
}

static void
expect_missing(kvd_engine *e, const char *k)
{
    struct kvd_val val;
    int rc = vt->get(e, k, strlen(k), &val);
    if (rc != KVD_ENOTFOUND) {
        if (rc == 0) {
            kvd_val_release(&val);
        }
        fail_msg("get %s: expected not found, got %d", k, rc);
    }
}

static uint64_t
keys_of(kvd_engine *e)
{
    struct kvd_engine_stats st;
    th_stats(vt, e, &st);
    return st.keys;
}

static int
setup_dir(void **state)
{
    *state = th_mkdtemp();
    th_io_reset();
    th_log_clear();
    th_clock_set(0);
    return 0;
}

static int
teardown_dir(void **state)
{
    th_io_reset();
    th_clock_set(0);
    th_rmrf(*state);
    free(*state);
    return 0;
}

static uint64_t
file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* Bytes of all NNNNNNNN.data files in dir. */
static uint64_t
dir_data_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint64_t sum = 0;
    char path[4096];

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n == 13 && strcmp(de->d_name + 8, ".data") == 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            sum += file_size(path);
        }
    }
    closedir(d);
    return sum;
}

/* ---- crc32c ---- */

static void
test_crc32c_known_vectors(void **state)
{
    unsigned char zeros[32] = {0};
    (void)state;
    assert_int_equal(kvd_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(kvd_crc32c_sw(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(kvd_crc32c_sw(0, zeros, 32), 0x8a9136aau);
    /* incremental == whole */
    assert_int_equal(kvd_crc32c_sw(kvd_crc32c_sw(0, "1234", 4), "56789", 5),
                     0xe3069283u);
    assert_int_equal(kvd_crc32c_unmask(kvd_crc32c_mask(0x12345678u)),
                     0x12345678u);
}

static void
test_crc32c_hw_matches_sw(void **state)
{
    unsigned char buf[4096];
    (void)state;
    if (!kvd_crc32c_hw_available()) {
        skip();
    }
    srand(7);
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char)rand();
    }
    for (size_t off = 0; off < 16; off++) {
        for (size_t n = 0; n + off <= sizeof(buf); n += 1 + n / 3) {
            assert_int_equal(kvd_crc32c_hw(0, buf + off, n),
                             kvd_crc32c_sw(0, buf + off, n));
            assert_int_equal(kvd_crc32c_hw(0x1234u, buf + off, n),
                             kvd_crc32c_sw(0x1234u, buf + off, n));
        }
    }
}

/* ---- basics ---- */

static void
test_log_put_get_del_reopen(void **state)
{
    struct alog_opts o;
    kvd_engine *e;
    const char bin_key[] = {'a', 0, 'b'};
    const char bin_val[] = {0, 1, 0, 2};
    struct kvd_val v;
    char k[32];
    char val[32];

    th_opts_default(&o);
    e = open_ok(*state, &o);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "key%03d", i);
        snprintf(val, sizeof(val), "value%d", i);
        put_ok(e, k, val);
    }
    put_ok(e, "key005", "overwritten");
    assert_int_equal(vt->del(e, "key006", 6), 0);
    assert_int_equal(vt->del(e, "key006", 6), KVD_ENOTFOUND);
    assert_int_equal(vt->del(e, "nokey", 5), KVD_ENOTFOUND);
    assert_int_equal(vt->put(e, bin_key, 3, bin_val, 4, 0), 0);
    assert_int_equal(vt->put(e, "empty", 5, "", 0, 0), 0);
    assert_int_equal(vt->put(e, "", 0, "x", 1, 0), KVD_EINVAL);
    assert_int_equal(keys_of(e), 101);
    close_ok(e);

    e = open_ok(*state, &o);
    expect_val(e, "key005", "overwritten");
    expect_missing(e, "key006");
    expect_val(e, "key099", "value99");
    assert_int_equal(vt->get(e, bin_key, 3, &v), 0);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.data, bin_val, 4);
    kvd_val_release(&v);
    assert_int_equal(vt->get(e, "empty", 5, &v), 0);
    assert_int_equal(v.len, 0);
    kvd_val_release(&v);
    assert_int_equal(keys_of(e), 101);
    close_ok(e);
}

static void
test_log_large_value_survives_reopen(void **state)
{
    struct alog_opts o;
    size_t n = 16u << 20;
    unsigned char *big = malloc(n);
    struct kvd_val v;
    kvd_engine *e;

    for (size_t i = 0; i < n; i++) {
        big[i] = (unsigned char)(i * 31 + 7);
    }
    th_opts_default(&o);
    o.segment_size = 1u << 20; /* a record larger than a segment */
    e = open_ok(*state, &o);
    assert_int_equal(vt->put(e, "big", 3, big, n, 0), 0);
    put_ok(e, "after", "x");
    close_ok(e);
    e = open_ok(*state, &o);
    assert_int_equal(vt->get(e, "big", 3, &v), 0);
    assert_int_equal(v.len, n);
    assert_memory_equal(v.data, big, n);
    kvd_val_release(&v);
    expect_val(e, "after", "x");
    close_ok(e);
    free(big);
}

static void
test_log_get_reads_no_file(void **state)
{
    struct alog_opts o;
    kvd_engine *e;
    char k[32];
    long before;
    uint64_t stat_before;
    uint64_t map_before;

    th_opts_default(&o);
    o.segment_size = 8192; /* several segments */
    e = open_ok(*state, &o);
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        put_ok(e, k, "some value bytes");
    }
    /* the active segment is read from its map too */
    expect_val(e, "k499", "some value bytes");
    assert_int_equal(th_stat(vt, e, "get_preads_total"), 0);
    close_ok(e);
    e = open_ok(*state, &o);
    before = atomic_load(&th_io.preads);
    stat_before = th_stat(vt, e, "get_preads_total");
    map_before = th_stat(vt, e, "get_map_reads_total");
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        expect_val(e, k, "some value bytes");
    }
    /* no pread at all: every hit is a copy from a segment map, counted by
     * the engine's own counters */
    assert_int_equal(atomic_load(&th_io.preads) - before, 0);
    assert_int_equal(th_stat(vt, e, "get_preads_total") - stat_before, 0);
    assert_int_equal(th_stat(vt, e, "get_map_reads_total") - map_before, 500);
    /* a miss costs no read at all */
    before = atomic_load(&th_io.preads);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "missing%d", i);
        expect_missing(e, k);
    }
    assert_int_equal(atomic_load(&th_io.preads) - before, 0);
    close_ok(e);
}

static void
test_log_multi_puts_are_one_write(void **state)
{
    struct alog_opts o;
    struct kvd_mop ops[203];
    char keys[100][16];
    char vals[100][16];
    long writes;
    kvd_engine *e;

    th_opts_default(&o);
    e = open_ok(*state, &o);
    memset(ops, 0, sizeof(ops));
    for (int i = 0; i < 100; i++) {
        snprintf(keys[i], sizeof(keys[i]), "m%03d", i);
        snprintf(vals[i], sizeof(vals[i]), "v%03d", i);
        ops[i] = (struct kvd_mop){.type = KVD_MOP_PUT,
                                  .key = keys[i],
                                  .klen = strlen(keys[i]),
                                  .val = vals[i],
                                  .vlen = strlen(vals[i])};
    }
    /* a get and a delete see the earlier put of their key in the array */
    ops[100] = (struct kvd_mop){.type = KVD_MOP_GET, .key = "m007", .klen = 4};
    ops[101] = (struct kvd_mop){.type = KVD_MOP_DEL, .key = "m008", .klen = 4};
    ops[102] = (struct kvd_mop){.type = KVD_MOP_GET, .key = "m008", .klen = 4};
    for (int i = 103; i < 203; i++) {
        ops[i] = ops[i - 103];
        ops[i].val = "again";
        ops[i].vlen = 5;
    }
    /* the first append preallocates the active segment */
    put_ok(e, "first", "preallocates");
    writes = atomic_load(&th_io.writes);
    assert_int_equal(vt->multi(e, ops, 203), 0);
    /* 100 puts: one append; the delete: one; 100 puts again: one; each
     * a copy into the preallocated map, not a system call */
    assert_int_equal(atomic_load(&th_io.writes) - writes, 0);
    for (int i = 0; i < 203; i++) {
        assert_int_equal(ops[i].status, i == 102 ? KVD_ENOTFOUND : 0);
    }
    assert_int_equal(ops[100].out.len, 4);
    assert_memory_equal(ops[100].out.data, "v007", 4);
    kvd_val_release(&ops[100].out);
    assert_int_equal(th_stat(vt, e, "multi_appends_total"), 2);
    close_ok(e);
    e = open_ok(*state, &o);
    expect_val(e, "m000", "again");
    expect_val(e, "m099", "again");
    expect_val(e, "m008", "again");
    close_ok(e);
}

static void
test_log_second_open_is_locked(void **state)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    kvd_engine *e;
    kvd_engine *e2 = NULL;

    th_opts_default(&o);
    e = open_ok(*state, &o);
    assert_int_equal(vt->open(&th_host, &o, *state, &e2, &err), KVD_ELOCKED);
    assert_null(e2);
    assert_int_equal(err.code, KVD_ELOCKED);
    assert_non_null(strstr(err.msg, "in use by another open store"));
    assert_non_null(strstr(err.msg, (const char *)*state));
    close_ok(e);
    e = open_ok(*state, &o);
    close_ok(e);
}

static void
test_log_batch_is_atomic_and_invalid_batch_changes_nothing(void **state)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    kvd_engine *e;
    struct kvd_op ok_ops[] = {
        {KVD_OP_PUT, "a", 1, "1", 1, 0},  {KVD_OP_PUT, "b", 1, "2", 1, 0},
        {KVD_OP_DEL, "a", 1, NULL, 0, 0}, {KVD_OP_PUT, "c", 1, "3", 1, 0},
        {KVD_OP_PUT, "c", 1, "4", 1, 0},
    };
    struct kvd_op bad_ops[] = {
        {KVD_OP_PUT, "x", 1, "1", 1, 0},
        {KVD_OP_DEL, "b", 1, NULL, 0, 0},
        {KVD_OP_PUT, "", 0, "1", 1, 0},
    };
    struct kvd_op bad_type[] = {
        {KVD_OP_PUT, "y", 1, "1", 1, 0},
        {77, "z", 1, "1", 1, 0},
    };

    th_opts_default(&o);
    e = open_ok(*state, &o);
    assert_int_equal(vt->batch(e, ok_ops, 5, &err), 0);
    expect_missing(e, "a");
    expect_val(e, "b", "2");
    expect_val(e, "c", "4");
    assert_int_equal(vt->batch(e, bad_ops, 3, &err), KVD_EINVAL);
    assert_non_null(strstr(err.msg, "batch op 2"));
    assert_int_equal(vt->batch(e, bad_type, 2, &err), KVD_EINVAL);
    assert_non_null(strstr(err.msg, "unknown type 77"));
    expect_missing(e, "x");
    expect_missing(e, "y");
    expect_val(e, "b", "2");
    assert_int_equal(keys_of(e), 2);
    close_ok(e);
    e = open_ok(*state, &o);
    expect_missing(e, "a");
    expect_missing(e, "x");
    expect_val(e, "b", "2");
    expect_val(e, "c", "4");
    close_ok(e);
}

/* ---- torn tails and corruption ---- */

/* Write records k00..k{n-1}, then `last` as the final record (a put or a
 * batch); return the offset where the final record starts. */
static uint64_t
write_then_last(const char *dir, int n, int last_is_batch)
{
    struct alog_opts o;
    char k[16];
    kvd_engine *e;
    uint64_t start;

    th_opts_default(&o);
    e = open_ok(dir, &o);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        put_ok(e, k, "value-of-some-length");
    }
    /* the written size: the file itself is preallocated beyond it */
    start = th_stat(vt, e, "data_bytes");
    if (last_is_batch) {
        struct kvd_op ops[] = {
            {KVD_OP_PUT, "b1", 2, "batch-one", 9, 0},
            {KVD_OP_DEL, "k00", 3, NULL, 0, 0},
            {KVD_OP_PUT, "b2", 2, "batch-two", 9, 0},
        };
        struct kvd_err err;
        assert_int_equal(vt->batch(e, ops, 3, &err), 0);
    } else {
        put_ok(e, "last", "the final record");
    }
    close_ok(e);
    return start;
}

/* Whether bytes [from, to) of the file at path are all zero. */
static int
bytes_are_zero(const char *path, uint64_t from, uint64_t to)
{
    FILE *f = fopen(path, "rb");
    int c = 0;

    assert_non_null(f);
    assert_int_equal(fseek(f, (long)from, SEEK_SET), 0);
    for (uint64_t i = from; i < to && c == 0; i++) {
        c = fgetc(f);
        assert_true(c != EOF);
    }
    fclose(f);
    return c == 0;
}

static void
check_cut(const char *dir, int n, int last_is_batch, uint64_t start,
          uint64_t cut, uint64_t end)
{
    struct alog_opts o;
    char *copy = th_mkdtemp();
    char seg[4096];
    char k[16];
    int zeros;
    kvd_engine *e;

    assert_int_equal(th_copy_dir(dir, copy), 0);
    /* a crash leaves no hint file for the segment it was appending to */
    th_remove_hints(copy);
    th_last_segment(copy, seg, sizeof(seg));
    zeros = bytes_are_zero(seg, start, cut);
    assert_int_equal(truncate(seg, (off_t)cut), 0);
    th_log_clear();
    th_opts_default(&o);
    e = open_ok(copy, &o);
    for (int i = 1; i < n; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        expect_val(e, k, "value-of-some-length");
    }
    if (cut == end) {
        if (last_is_batch) {
            expect_missing(e, "k00");
            expect_val(e, "b1", "batch-one");
        } else {
            expect_val(e, "last", "the final record");
        }
    } else {
        /* exactly the records before the cut, nothing of the torn one */
        expect_val(e, "k00", "value-of-some-length");
        expect_missing(e, "last");
        expect_missing(e, "b1");
        expect_missing(e, "b2");
        assert_int_equal(keys_of(e), (uint64_t)n);
        if (cut > start && !zeros) {
            assert_true(th_log_contains("torn write at the end of"));
            assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), cut - start);
        } else if (cut > start) {
            /* the torn bytes are all zeros (the crc's first byte is 0 in
             * about one run in 256: records carry the wall clock): no
             * different from the zeros appends preallocate, so they are
             * cut as a clean end, without a warning */
            assert_false(th_log_contains("torn write"));
        }
    }
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    close_ok(e);
    /* the cut is permanent: a second open finds nothing torn */
    th_log_clear();
    e = open_ok(copy, &o);
    assert_false(th_log_contains("torn write"));
    assert_int_equal(keys_of(e), (uint64_t)n + (cut == end ? 1 : 0));
    close_ok(e);
    th_rmrf(copy);
    free(copy);
}

static void
run_truncate_every_offset(const char *dir, int last_is_batch)
{
    char seg[4096];
    uint64_t start = write_then_last(dir, 20, last_is_batch);
    uint64_t end;

    th_last_segment(dir, seg, sizeof(seg));
    end = file_size(seg);
    assert_true(end > start);
    for (uint64_t cut = start; cut <= end; cut++) {
        check_cut(dir, 20, last_is_batch, start, cut, end);
    }
}

static void
test_log_truncate_last_record_at_every_offset(void **state)
{
    run_truncate_every_offset(*state, 0);
}

static void
test_log_truncate_last_batch_at_every_offset(void **state)
{
    run_truncate_every_offset(*state, 1);
}

/* A cleanly closed segment (its hint proves it complete) that lost its end
 * is damage: corruption = fail refuses to open, skip opens without cutting
 * the file and without calling it a torn write. */
static void
test_log_truncated_closed_segment_is_corruption(void **state)
{
    struct alog_opts o;
    struct kvd_err err;
    char seg[4096];
    uint64_t start = write_then_last(*state, 20, 0);
    uint64_t cut;
    kvd_engine *e = NULL;

    th_last_segment(*state, seg, sizeof(seg));
    cut = start + (file_size(seg) - start) / 2;
    assert_int_equal(truncate(seg, (off_t)cut), 0);
    th_opts_default(&o);
    o.corruption = ALOG_CORRUPT_FAIL;
    th_log_clear();
    assert_int_equal(vt->open(&th_host, &o, *state, &e, &err), KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "is truncated"));
    assert_true(th_log_contains("lost its end"));
    assert_int_equal(file_size(seg), cut);

    o.corruption = ALOG_CORRUPT_SKIP;
    th_log_clear();
    e = open_ok(*state, &o);
    assert_false(th_log_contains("torn write"));
    assert_true(th_log_contains("lost its end"));
    assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 0);
    assert_true(th_stat(vt, e, "corrupt_records_total") >= 1);
    expect_val(e, "k19", "value-of-some-length");
    expect_missing(e, "last");
    close_ok(e);
}

/* Append n bytes of value b to the file at path. */
static void
append_bytes(const char *path, int b, size_t n)
{
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fputc(b, f), b);
    }
    assert_int_equal(fclose(f), 0);
}

/* Open a copy of dir as a crash in its last segment would leave it (no
 * hint file), after flipping the byte at flip (0: none) and appending
 * `garbage` non-zero bytes, then `zeros` zero bytes to that segment. */
static kvd_engine *
open_crashed_copy(const char *dir, const char *copy, long flip, size_t garbage,
                  size_t zeros)
{
    struct alog_opts o;
    char seg[4096];

    th_rmrf(copy);
    assert_int_equal(mkdir(copy, 0700), 0);
    assert_int_equal(th_copy_dir(dir, copy), 0);
    th_remove_hints(copy);
    th_last_segment(copy, seg, sizeof(seg));
    if (flip > 0) {
        FILE *f = fopen(seg, "r+b");
        assert_non_null(f);
        assert_int_equal(fseek(f, flip, SEEK_SET), 0);
        assert_int_equal(fputc('#', f), '#');
        assert_int_equal(fclose(f), 0);
    }
    append_bytes(seg, 0xab, garbage);
    append_bytes(seg, 0, zeros);
    th_log_clear();
    th_opts_default(&o);
    return open_ok(copy, &o);
}

/* The segment a crash interrupted ends in the zeros its appends had
 * preallocated: that is its end, not a torn write (nothing reported, no
 * repair counted), and the zeros are cut so the sealed file is exactly
 * its records. Bytes that are not zero after the records are still a torn
 * tail, and damage before the zeros still corruption. */
static void
test_log_preallocated_zero_tail_is_a_clean_end(void **state)
{
    char *copy = th_mkdtemp();
    char orig[4096];
    char seg[8192];
    uint64_t end;
    kvd_engine *e;

    write_then_last(*state, 20, 0);
    th_last_segment(*state, orig, sizeof(orig));
    end = file_size(orig);
    /* the same file in the copy (an open adds a newer one) */
    snprintf(seg, sizeof(seg), "%s%s", copy, strrchr(orig, '/'));

    /* records, then zeros to the end of the file */
    e = open_crashed_copy(*state, copy, 0, 0, 3u << 20);
    assert_int_equal(keys_of(e), 21);
    expect_val(e, "k19", "value-of-some-length");
    expect_val(e, "last", "the final record");
    assert_false(th_log_contains("torn write"));
    assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 0);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    assert_int_equal(file_size(seg), end);
    close_ok(e);

    /* records, garbage, zeros: a torn write, cut at the last record */
    e = open_crashed_copy(*state, copy, 0, 50, 1u << 20);
    assert_int_equal(keys_of(e), 21);
    expect_val(e, "last", "the final record");
    assert_true(th_log_contains("torn write at the end of"));
    assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 50 + (1u << 20));
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    assert_int_equal(file_size(seg), end);
    close_ok(e);

    /* a damaged record in the middle, then zeros: corruption, reported;
     * the byte is in k01's value (records of 36 + 3 + 20 bytes) */
    e = open_crashed_copy(*state, copy, 16 + 2 * (36 + 3 + 20) - 5, 0,
                          1u << 20);
    assert_int_equal(keys_of(e), 20);
    expect_missing(e, "k01");
    expect_val(e, "last", "the final record");
    assert_true(th_log_contains("corrupt data in"));
    assert_false(th_log_contains("torn write"));
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 1);
    close_ok(e);
    th_rmrf(copy);
    free(copy);
}

/* While a segment is appended to, its file is preallocated beyond what
 * was written; a roll and a clean close cut it back, so every sealed file
 * is exactly its records (the sizes stats, hints and merges use). */
static void
test_log_sealed_and_closed_files_are_their_written_size(void **state)
{
    struct alog_opts o;
    char val[500];
    char k[16];
    uint64_t written;
    kvd_engine *e;

    th_opts_default(&o);
    o.segment_size = 64u << 10;
    e = open_ok(*state, &o);
    memset(val, 'r', sizeof(val));
    val[sizeof(val) - 1] = '\0';
    for (int i = 0; i < 400; i++) { /* about 3 segments */
        snprintf(k, sizeof(k), "r%04d", i);
        put_ok(e, k, val);
    }
    assert_true(th_stat(vt, e, "rolls_total") >= 2);
    written = th_stat(vt, e, "data_bytes");
    /* the active segment is preallocated (appends are stores into it) */
    assert_true(dir_data_bytes(*state) > written);
    close_ok(e);
    assert_int_equal(dir_data_bytes(*state), written);

    e = open_ok(*state, &o);
    for (int i = 0; i < 400; i++) {
        snprintf(k, sizeof(k), "r%04d", i);
        expect_val(e, k, val);
    }
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 0);
    /* and the new append segment's header */
    assert_int_equal(th_stat(vt, e, "data_bytes"), written + 16);
    close_ok(e);
    assert_int_equal(dir_data_bytes(*state), written);
}

/* The only NNNNNNNN.data file in dir (a new store before its first roll). */
static void
only_data_file(const char *dir, char *path, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int found = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (strlen(de->d_name) == 13 && strcmp(de->d_name + 8, ".data") == 0) {
            snprintf(path, n, "%s/%s", dir, de->d_name);
            found++;
        }
    }
    closedir(d);
    assert_int_equal(found, 1);
}

/* Does MADV_POPULATE_WRITE work here (the engine's faulting in)? */
static int
populate_write_works(void)
{
#ifdef MADV_POPULATE_WRITE
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int ok;

    assert_true(p != MAP_FAILED);
    ok = madvise(p, page, MADV_POPULATE_WRITE) == 0;
    munmap(p, page);
    return ok;
#else
    return 0;
#endif
}

/* Of the pages [from, to) of a mapped file, how many are in memory. */
static size_t
resident_pages(const unsigned char *vec, size_t from, size_t to)
{
    size_t n = 0;

    for (size_t i = from; i < to; i++) {
        n += vec[i] & 1;
    }
    return n;
}

/* Appends store into the active segment's map. Its pages are faulted in
 * one step (ALOG_POPULATE_BYTES) at a time just ahead of the appends, by
 * one call, not a fault each; never the whole preallocation, because a
 * page faulted in is a dirty page of zeros that the next sync writes. */
static void
test_log_appends_fault_in_the_map_a_step_ahead(void **state)
{
    struct alog_opts o;
    struct stat st;
    unsigned char vec[ALOG_PREALLOC_BYTES / 4096];
    char path[4096];
    char val[1000];
    char k[16];
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t step = ALOG_POPULATE_BYTES / page;
    size_t pages;
    kvd_engine *e;
    void *m;
    int fd;

    assert_true(page >= 4096);
    if (!populate_write_works()) {
        skip(); /* kernel before 5.14 or C library without the flag */
    }
    th_opts_default(&o);
    o.segment_size = 64u << 20;
    e = open_ok(*state, &o);
    put_ok(e, "first", "faults in one step");
    only_data_file(*state, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    /* the preallocation: the file is longer than what was written */
    assert_int_equal(st.st_size, ALOG_PREALLOC_BYTES);
    pages = (size_t)st.st_size / page;
    m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mincore(m, (size_t)st.st_size, vec), 0);
    if (resident_pages(vec, pages - 1, pages) != 0) {
        /* preallocated space is already in memory on this file system:
         * faulting in cannot be told from it */
        munmap(m, (size_t)st.st_size);
        close(fd);
        close_ok(e);
        skip();
    }
    assert_int_equal(resident_pages(vec, 0, step), step);
    assert_int_equal(resident_pages(vec, step, pages), 0);

    /* past the first step: the second is faulted in, nothing beyond */
    memset(val, 'p', sizeof(val));
    val[sizeof(val) - 1] = '\0';
    for (int i = 0; th_stat(vt, e, "data_bytes") <= ALOG_POPULATE_BYTES; i++) {
        snprintf(k, sizeof(k), "p%05d", i);
        put_ok(e, k, val);
    }
    assert_int_equal(mincore(m, (size_t)st.st_size, vec), 0);
    assert_int_equal(resident_pages(vec, 0, 2 * step), 2 * step);
    assert_int_equal(resident_pages(vec, 2 * step, pages), 0);
    assert_int_equal(munmap(m, (size_t)st.st_size), 0);
    close(fd);
    close_ok(e);
    /* what was written is all there, and the file is its records */
    e = open_ok(*state, &o);
    expect_val(e, "first", "faults in one step");
    expect_val(e, "p00000", val);
    close_ok(e);
}

/* A sealed segment deleted while the store was closed (its hint left
 * behind) is missing from the MANIFEST's list: corruption = fail refuses
 * to open; skip opens read-only with an error, never silently. */
static void
test_log_missing_segment_is_never_silent(void **state)
{
    struct alog_opts o;
    struct kvd_engine_stats st;
    struct kvd_err err;
    char path[4096];
    char k[16];
    kvd_engine *e = NULL;

    th_opts_default(&o);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        put_ok(e, k, "value-value-value-value");
    }
    assert_int_equal(vt->del(e, "k199", 4), 0);
    close_ok(e);
    snprintf(path, sizeof(path), "%s/00000002.data", (const char *)*state);
    assert_int_equal(unlink(path), 0);

    o.corruption = ALOG_CORRUPT_FAIL;
    th_log_clear();
    assert_int_equal(vt->open(&th_host, &o, *state, &e, &err), KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "missing"));
    assert_true(th_log_contains("00000002.data is listed in MANIFEST"));

    o.corruption = ALOG_CORRUPT_SKIP;
    th_log_clear();
    e = open_ok(*state, &o);
    th_stats(vt, e, &st);
    assert_int_equal(st.readonly, 1);
    assert_non_null(strstr(st.state, "missing"));
    assert_true(th_log_contains("00000002.data is listed in MANIFEST"));
    assert_int_equal(vt->put(e, "new", 3, "x", 1, 0), KVD_EREADONLY);
    expect_val(e, "k198", "value-value-value-value");
    close_ok(e);
}

static void
flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char b;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* 50 records of equal size in one segment; returns the segment path. */
static void
write_fifty(const char *dir, char *seg, size_t seglen)
{
    struct alog_opts o;
    char k[16];
    kvd_engine *e;

    th_opts_default(&o);
    e = open_ok(dir, &o);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        put_ok(e, k, "value-0123456789");
    }
    close_ok(e);
    th_last_segment(dir, seg, seglen);
}

#define REC25_OFF (16 + 25 * (36 + 3 + 16))

static void
check_flip(const char *dir, uint64_t flip_off)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    char seg[4096];
    char k[16];
    char msg[128];
    kvd_engine *e = NULL;

    write_fifty(dir, seg, sizeof(seg));
    th_remove_hints(dir);
    flip_byte(seg, flip_off);

    /* corruption = fail: refuse to open, naming the file */
    th_opts_default(&o);
    o.corruption = ALOG_CORRUPT_FAIL;
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "corrupt data in"));

    /* skip (default): the damaged record is skipped, reported with file
     * and offset, every later record is kept */
    th_log_clear();
    o.corruption = ALOG_CORRUPT_SKIP;
    e = open_ok(dir, &o);
    snprintf(msg, sizeof(msg), ".data at offset %d", REC25_OFF);
    assert_true(th_log_contains("corrupt data in"));
    assert_true(th_log_contains(msg));
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 1);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        if (i == 25) {
            expect_missing(e, k);
        } else {
            expect_val(e, k, "value-0123456789");
        }
    }
    close_ok(e);
}

static void
test_log_flipped_value_byte_skips_one_record(void **state)
{
    check_flip(*state, REC25_OFF + 36 + 3 + 5);
}

static void
test_log_flipped_header_byte_skips_one_record(void **state)
{
    check_flip(*state, REC25_OFF + 6); /* the key length */
}

static void
test_log_flipped_byte_with_hint_fails_that_get(void **state)
{
    struct alog_opts o;
    struct kvd_val v;
    char seg[4096];
    char k[16];
    kvd_engine *e;

    write_fifty(*state, seg, sizeof(seg));
    flip_byte(seg, REC25_OFF + 36 + 3 + 5);
    th_opts_default(&o);
    th_log_clear();
    e = open_ok(*state, &o); /* from the hint: values are not read */
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"), 1);
    assert_int_equal(vt->get(e, "k25", 3, &v), KVD_ECORRUPT);
    assert_true(th_log_contains("corrupt record in"));
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        if (i != 25) {
            expect_val(e, k, "value-0123456789");
        }
    }
    close_ok(e);
}

/* ---- write and fsync failures ---- */

/* Returns 0 when the workload no longer reaches the nth write. */
static int
run_write_failure(const char *dir, long nth, int err_no, int expect_rc)
{
    struct alog_opts o;
    struct kvd_engine_stats st;
    struct kvd_err err;
    char k[16];
    char val[128];
    int acked = 0;
    int failed_at = -1;
    kvd_engine *e;
    struct kvd_op op = {KVD_OP_PUT, "bx", 2, "1", 1, 0};

    th_opts_default(&o);
    o.segment_size = 4096; /* rolls happen among the writes */
    /* only this thread writes: a hint file or merge output written by
     * the background thread must not take the failing write */
    o.hint_files = 0;
    o.merge_ratio = 0;
    e = open_ok(dir, &o);
    atomic_store(&th_io.fail_errno, err_no);
    atomic_store(&th_io.fail_write_at, atomic_load(&th_io.writes) + nth);
    for (int i = 0; i < 60; i++) {
        int rc;
        snprintf(k, sizeof(k), "k%02d", i);
        memset(val, 'a' + i % 26, 100);
        val[100] = '\0';
        rc = vt->put(e, k, strlen(k), val, 100, 0);
        if (failed_at < 0 && rc == 0) {
            acked++;
            continue;
        }
        if (failed_at < 0) {
            assert_int_equal(rc, expect_rc);
            failed_at = i;
            continue;
        }
        /* never retried, never acknowledged afterwards */
        assert_int_equal(rc, KVD_EREADONLY);
    }
    if (failed_at < 0) {
        close_ok(e);
        return 0;
    }
    th_stats(vt, e, &st);
    assert_int_equal(st.readonly, 1);
    assert_non_null(strstr(st.state, "read-only"));
    assert_non_null(strstr(st.state, expect_rc == KVD_ENOSPC
                                         ? "no space left on device"
                                         : "I/O error"));
    assert_int_equal(vt->del(e, "k00", 3), KVD_EREADONLY);
    assert_int_equal(vt->batch(e, &op, 1, &err), KVD_EREADONLY);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), KVD_EREADONLY);
    if (acked > 0) { /* reads keep working */
        expect_val(e, "k00",
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    }
    assert_true(th_log_contains("the store is read-only"));
    vt->close(e, &err);
    th_io_reset();

    e = open_ok(dir, &o);
    for (int i = 0; i < 60; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        if (i < acked) {
            struct kvd_val v;
            assert_int_equal(vt->get(e, k, strlen(k), &v), 0);
            assert_int_equal(v.len, 100);
            assert_int_equal(((const char *)v.data)[0], 'a' + i % 26);
            kvd_val_release(&v);
        } else {
            expect_missing(e, k);
        }
    }
    close_ok(e);
    return 1;
}

static void
test_log_failed_write_turns_read_only(void **state)
{
    long allocs = atomic_load(&th_io.allocs);
    long nth;
    int faults = 0;
    int reached = 1;

    /* the Nth write fails, at every write the workload makes: the
     * preallocation of each new segment's space (appends themselves are
     * stores into the map), segment headers and the MANIFEST at a roll */
    for (nth = 1; reached; nth++) {
        char *dir = th_mkdtemp();
        reached = run_write_failure(dir, nth, nth % 2 ? ENOSPC : EIO,
                                    nth % 2 ? KVD_ENOSPC : KVD_EIO);
        faults += reached;
        th_rmrf(dir);
        free(dir);
    }
    print_message("failed write at %d points\n", faults);
    assert_true(faults >= 6);
    assert_true(atomic_load(&th_io.allocs) > allocs);
    (void)state;
}

/* The preallocation of a new segment's space fails (a full disk): the put
 * gets the error, the store turns read-only saying which call failed, and
 * every acknowledged put is still there, also after a reopen. */
static void
test_log_failed_preallocation_turns_read_only(void **state)
{
    struct alog_opts o;
    struct kvd_engine_stats st;
    char val[1000];
    char k[16];
    int acked = 0;
    int rc = 0;
    kvd_engine *e;

    th_opts_default(&o);
    o.segment_size = 64u << 10;
    o.hint_files = 0;
    e = open_ok(*state, &o);
    memset(val, 'p', sizeof(val));
    put_ok(e, "first", "preallocates segment 1");
    atomic_store(&th_io.fail_errno, ENOSPC);
    atomic_store(&th_io.fail_alloc_at, atomic_load(&th_io.allocs) + 1);
    while (acked < 1000) {
        snprintf(k, sizeof(k), "p%04d", acked);
        rc = vt->put(e, k, strlen(k), val, sizeof(val), 0);
        if (rc != 0) {
            break;
        }
        acked++;
    }
    /* segment 1 filled up; the roll's new segment could not get space */
    assert_int_equal(rc, KVD_ENOSPC);
    assert_true(acked > 30);
    assert_int_equal(th_stat(vt, e, "rolls_total"), 1);
    assert_int_equal(vt->put(e, "after", 5, "x", 1, 0), KVD_EREADONLY);
    th_stats(vt, e, &st);
    assert_int_equal(st.readonly, 1);
    assert_non_null(strstr(st.state, "allocate"));
    assert_non_null(strstr(st.state, "no space left on device"));
    assert_true(th_log_contains("the store is read-only"));
    expect_val(e, "first", "preallocates segment 1");
    {
        struct kvd_err err;
        vt->close(e, &err); /* may report the failure again */
    }
    th_io_reset();

    e = open_ok(*state, &o);
    for (int i = 0; i <= acked; i++) {
        struct kvd_val v;
        snprintf(k, sizeof(k), "p%04d", i);
        if (i == acked) {
            expect_missing(e, k);
            continue;
        }
        assert_int_equal(vt->get(e, k, strlen(k), &v), 0);
        assert_int_equal(v.len, sizeof(val));
        assert_memory_equal(v.data, val, sizeof(val));
        kvd_val_release(&v);
    }
    expect_missing(e, "after");
    assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 0);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    close_ok(e);
}

static void
test_log_failed_fsync_turns_read_only(void **state)
{
    struct alog_opts o;
    struct kvd_engine_stats st;
    struct kvd_err err;
    kvd_engine *e;

    th_opts_default(&o);
    o.sync = ALOG_SYNC_ALWAYS;
    e = open_ok(*state, &o);
    put_ok(e, "a", "1");
    put_ok(e, "b", "2");
    atomic_store(&th_io.fail_errno, ENOSPC);
    atomic_store(&th_io.fail_sync_at, atomic_load(&th_io.syncs) + 1);
    assert_int_equal(vt->put(e, "c", 1, "3", 1, 0), KVD_ENOSPC);
    /* a write whose fsync failed never becomes visible */
    expect_missing(e, "c");
    assert_int_equal(keys_of(e), 2);
    assert_int_equal(vt->put(e, "d", 1, "4", 1, 0), KVD_EREADONLY);
    assert_int_equal(vt->sync(e, &err), KVD_EREADONLY);
    th_stats(vt, e, &st);
    assert_int_equal(st.readonly, 1);
    assert_non_null(strstr(st.state, "fdatasync"));
    assert_non_null(strstr(st.state, "no space left on device"));
    vt->close(e, &err);
    th_io_reset();
    e = open_ok(*state, &o);
    expect_val(e, "a", "1");
    expect_val(e, "b", "2");
    expect_missing(e, "d");
    /* "c" was written but never acknowledged: either outcome is allowed */
    close_ok(e);
}

/* ---- merge ---- */

static void
fill_model(kvd_engine *e, int rounds)
{
    char k[16];
    char v[64];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 300; i++) {
            snprintf(k, sizeof(k), "key%03d", i);
            snprintf(v, sizeof(v), "round%d-value%03d-padding-padding", r, i);
            put_ok(e, k, v);
        }
    }
    for (int i = 0; i < 300; i += 3) {
        snprintf(k, sizeof(k), "key%03d", i);
        assert_int_equal(vt->del(e, k, strlen(k)), 0);
    }
}

/* The values fill_model left, whatever else the store holds. */
static void
check_model_values(kvd_engine *e, int rounds)
{
    char k[16];
    char v[64];
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "key%03d", i);
        if (i % 3 == 0) {
            expect_missing(e, k);
        } else {
            snprintf(v, sizeof(v), "round%d-value%03d-padding-padding",
                     rounds - 1, i);
            expect_val(e, k, v);
        }
    }
}

static void
check_model(kvd_engine *e, int rounds)
{
    check_model_values(e, rounds);
    assert_int_equal(keys_of(e), 200);
}

static void
test_log_compact_keeps_values_and_drops_dead_bytes(void **state)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    struct kvd_engine_stats before;
    struct kvd_engine_stats after;
    kvd_engine *e;

    th_opts_default(&o);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    fill_model(e, 4);
    th_stats(vt, e, &before);
    assert_true(th_stat(vt, e, "dead_bytes") > 0);
    assert_true(th_stat(vt, e, "segments") > 10);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    th_stats(vt, e, &after);
    assert_int_equal(th_stat(vt, e, "merges_total"), 1);
    assert_int_equal(th_stat(vt, e, "dead_bytes"), 0);
    assert_true(after.disk_bytes < before.disk_bytes / 2);
    check_model(e, 4);
    close_ok(e);
    e = open_ok(*state, &o);
    check_model(e, 4);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    /* writes after a merge and a second merge */
    fill_model(e, 5);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    check_model(e, 5);
    close_ok(e);
    e = open_ok(*state, &o);
    check_model(e, 5);
    close_ok(e);
}

static int
wait_merges(kvd_engine *e, uint64_t n)
{
    for (int i = 0; i < 500; i++) {
        if (th_stat(vt, e, "merges_total") >= n) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

/*
 * A partial merge takes a segment holding a tombstone but not the older
 * segment holding the key's put: the tombstone must survive, or the key
 * would come back after a restart.
 */
/* merge_rate paces a merge's writes; its progress is in stats. */
static void
test_log_merge_is_rate_limited(void **state)
{
    struct alog_opts o;
    struct kvd_err err;
    char k[32];
    char v[1000];
    kvd_engine *e;
    struct timespec t0, t1;
    long elapsed_ms;

    th_opts_default(&o);
    o.segment_size = 1u << 20;
    o.merge_rate = 4u << 20; /* 3 MB of live records: >= 0.5 s of pacing */
    e = open_ok(*state, &o);
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof(k), "rate%04d", i);
        put_ok(e, k, v);
    }
    assert_int_equal(th_stat(vt, e, "merge_throttle_ms_total"), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* The pacing is a lower bound on the merge's duration: about 3 MB
     * written at 4 MiB/s cannot finish in under 0.5 s however fast the
     * machine is (a slow one sleeps less, so the time asleep is not
     * asserted: under a sanitizer the copying alone can use the budget). */
    elapsed_ms =
        (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(elapsed_ms >= 500);
    assert_int_equal(th_stat(vt, e, "merge_running"), 0);
    assert_true(th_stat(vt, e, "merge_input_bytes") > 3000u * 1000u);
    assert_int_equal(th_stat(vt, e, "merge_done_bytes"),
                     th_stat(vt, e, "merge_input_bytes"));
    expect_val(e, "rate0000", v);
    expect_val(e, "rate2999", v);
    close_ok(e);
}

static void
test_log_partial_merge_keeps_needed_tombstone(void **state)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    char k[16];
    kvd_engine *e;

    th_opts_default(&o);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    put_ok(e, "victim", "old value");
    for (int i = 0; i < 60; i++) { /* live filler: segment 1 stays cold */
        snprintf(k, sizeof(k), "fill%02d", i);
        put_ok(e, k, "filler-filler-filler-filler-filler");
    }
    assert_int_equal(vt->del(e, "victim", 6), 0);
    for (int r = 0; r < 40; r++) { /* hot, mostly dead segments */
        put_ok(e, "churn", "churn-churn-churn-churn-churn-churn-churn");
    }
    for (int r = 0; r < 300; r++) {
        put_ok(e, "churn", "churn-churn-churn-churn-churn-churn-churn");
    }
    close_ok(e);

    o.merge_ratio = 50;
    o.merge_min_dead = 0;
    o.merge_interval = 10;
    e = open_ok(*state, &o);
    assert_true(wait_merges(e, 1));
    close_ok(e);
    o.merge_ratio = 0;
    e = open_ok(*state, &o);
    expect_missing(e, "victim");
    expect_val(e, "fill00", "filler-filler-filler-filler-filler");
    /* a full merge may drop it: nothing older survives */
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    close_ok(e);
    e = open_ok(*state, &o);
    expect_missing(e, "victim");
    assert_int_equal(keys_of(e), 61);
    close_ok(e);
}

static void
test_log_merge_drops_expired_keys(void **state)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    char k[16];
    kvd_engine *e;
    int64_t t0 = 1700000000000;

    th_clock_set(t0);
    th_opts_default(&o);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "ttl%02d", i);
        assert_int_equal(vt->put(e, k, strlen(k), "v", 1, t0 + 1000), 0);
    }
    put_ok(e, "keep", "forever");
    assert_int_equal(keys_of(e), 101);
    th_clock_set(t0 + 1000);
    assert_int_equal(keys_of(e), 1);
    expect_missing(e, "ttl05");
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    assert_int_equal(th_stat(vt, e, "live_bytes"),
                     36 + 4 + 7); /* only "keep" is left */
    close_ok(e);
    th_clock_set(t0); /* even with the clock turned back they are gone */
    e = open_ok(*state, &o);
    expect_val(e, "keep", "forever");
    expect_missing(e, "ttl05");
    close_ok(e);
}

struct writer_arg {
    kvd_engine *e;
    int id;
    int last[100];
    int stop;
};

static void *
writer_main(void *p)
{
    struct writer_arg *w = p;
    char k[32];
    char v[32];
    for (int n = 0; n < 3000; n++) {
        int i = (n * 7) % 100;
        snprintf(k, sizeof(k), "w%d-%02d", w->id, i);
        snprintf(v, sizeof(v), "n%d", n);
        if (n % 11 == 0) {
            int rc = vt->del(w->e, k, strlen(k));
            assert_true(rc == 0 || rc == KVD_ENOTFOUND);
            w->last[i] = -1;
        } else {
            assert_int_equal(vt->put(w->e, k, strlen(k), v, strlen(v), 0), 0);
            w->last[i] = n;
        }
    }
    return NULL;
}

static void
check_writers(kvd_engine *e, struct writer_arg *w, int nw)
{
    char k[32];
    char v[32];
    for (int t = 0; t < nw; t++) {
        for (int i = 0; i < 100; i++) {
            snprintf(k, sizeof(k), "w%d-%02d", t, i);
            if (w[t].last[i] < 0) {
                expect_missing(e, k);
            } else if (w[t].last[i] > 0) {
                snprintf(v, sizeof(v), "n%d", w[t].last[i]);
                expect_val(e, k, v);
            }
        }
    }
}

static void
test_log_merge_runs_alongside_writers(void **state)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    struct writer_arg w[2];
    pthread_t th[2];
    kvd_engine *e;
    int merges = 0;

    th_opts_default(&o);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    memset(w, 0, sizeof(w));
    for (int t = 0; t < 2; t++) {
        w[t].e = e;
        w[t].id = t;
        pthread_create(&th[t], NULL, writer_main, &w[t]);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
        merges++;
        usleep(2000);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
    }
    check_writers(e, w, 2);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    check_writers(e, w, 2);
    close_ok(e);
    e = open_ok(*state, &o);
    check_writers(e, w, 2);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    close_ok(e);
}

/* ---- iteration ---- */

/* "itNNNN" -> NNNN (keys are not NUL-terminated) */
static int
key_index(const struct kvd_entry *ent)
{
    char buf[16] = {0};
    assert_int_equal(ent->klen, 6);
    memcpy(buf, ent->key, ent->klen);
    return atoi(buf + 2);
}

static void
test_log_iteration_resumes_by_pos(void **state)
{
    struct alog_opts o;
    struct kvd_iter_opts io;
    struct kvd_err err = {0};
    struct kvd_entry ent;
    kvd_engine *e;
    kvd_iter *it;
    char k[16];
    char seen[1000] = {0};
    uint64_t last_pos = 0;
    int count = 0;
    int rc;

    th_opts_default(&o);
    e = open_ok(*state, &o);
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "it%04d", i);
        put_ok(e, k, k);
    }
    put_ok(e, "other", "x");
    memset(&io, 0, sizeof(io));
    io.prefix = "it";
    io.prefix_len = 2;
    /* stop after 300 at a change of pos, resume at pos + 1 */
    assert_int_equal(vt->iter_open(e, &io, &it, &err), 0);
    while ((rc = vt->iter_next(it, &ent)) == 0) {
        int i = key_index(&ent);
        if (count >= 300 && ent.pos != last_pos) {
            break;
        }
        assert_true(ent.pos >= last_pos);
        assert_int_equal(ent.vlen, ent.klen);
        assert_memory_equal(ent.val, ent.key, ent.klen);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        last_pos = ent.pos;
        count++;
    }
    vt->iter_close(it);
    io.start_pos = last_pos + 1;
    io.flags = KVD_ITER_KEYS_ONLY;
    assert_int_equal(vt->iter_open(e, &io, &it, &err), 0);
    while ((rc = vt->iter_next(it, &ent)) == 0) {
        int i = key_index(&ent);
        assert_true(ent.pos > last_pos || count == 300);
        assert_null(ent.val);
        assert_int_equal(ent.vlen, 6);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        count++;
    }
    assert_int_equal(rc, KVD_ENOTFOUND);
    vt->iter_close(it);
    assert_int_equal(count, 1000);
    close_ok(e);
}

/* ---- group commit ---- */

struct gc_arg {
    kvd_engine *e;
    int id;
};

static void *
gc_main(void *p)
{
    struct gc_arg *a = p;
    char k[32];
    for (int i = 0; i < 25; i++) {
        snprintf(k, sizeof(k), "t%d-%d", a->id, i);
        assert_int_equal(vt->put(a->e, k, strlen(k), "v", 1, 0), 0);
    }
    return NULL;
}

static void
test_log_group_commit_shares_fdatasync(void **state)
{
    struct alog_opts o;
    struct gc_arg a[8];
    pthread_t th[8];
    kvd_engine *e;
    uint64_t syncs;

    th_opts_default(&o);
    o.sync = ALOG_SYNC_ALWAYS;
    e = open_ok(*state, &o);
    /* a slow disk makes writers overlap for sure */
    atomic_store(&th_io.sync_delay_us, 2000);
    syncs = th_stat(vt, e, "fsyncs_total");
    for (int t = 0; t < 8; t++) {
        a[t].e = e;
        a[t].id = t;
        pthread_create(&th[t], NULL, gc_main, &a[t]);
    }
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
    }
    syncs = th_stat(vt, e, "fsyncs_total") - syncs;
    atomic_store(&th_io.sync_delay_us, 0);
    print_message("group commit: 200 acknowledged writes, %llu fdatasyncs\n",
                  (unsigned long long)syncs);
    assert_true(syncs >= 1);
    assert_true(syncs < 100); /* shared, not one per write */
    assert_true(th_stat(vt, e, "sync_waits_total") > 0);
    assert_int_equal(keys_of(e), 200);
    close_ok(e);
}

/* ---- recovery ---- */

static void
test_log_hint_and_scan_recover_the_same_state(void **state)
{
    struct alog_opts o;
    kvd_engine *e;

    th_opts_default(&o);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    fill_model(e, 3);
    close_ok(e);
    e = open_ok(*state, &o);
    assert_true(th_stat(vt, e, "recovery_hint_files") > 5);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 0);
    check_model(e, 3);
    close_ok(e);
    th_remove_hints(*state);
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"), 0);
    assert_true(th_stat(vt, e, "recovery_scanned_files") > 5);
    check_model(e, 3);
    close_ok(e);
}

/* Some segments from hints (one bulk build), others scanned on top of it:
 * the scans must still lose to newer deletes the build saw (it keeps them
 * as tombstones while scans follow) and win over older puts. */
static void
test_log_hints_and_scans_mixed_recover_the_same_state(void **state)
{
    struct alog_opts o;
    char path[4200];
    kvd_engine *e;
    int last = -1;

    th_opts_default(&o);
    o.segment_size = 4096;
    o.merge_ratio = 0;
    e = open_ok(*state, &o);
    fill_model(e, 3);
    close_ok(e);
    for (int id = 0; id < 1000; id++) {
        snprintf(path, sizeof(path), "%s/%08d.hint", (const char *)*state, id);
        if (access(path, F_OK) == 0) {
            last = id;
        }
    }
    assert_true(last > 5);
    /* the oldest puts, a middle segment and the newest (the deletes) */
    for (int id = 0; id <= last; id++) {
        if (id == 0 || id == last / 2 || id == last) {
            snprintf(path, sizeof(path), "%s/%08d.hint", (const char *)*state,
                     id);
            assert_int_equal(unlink(path), 0);
        }
    }
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 3);
    assert_true(th_stat(vt, e, "recovery_hint_files") > 3);
    check_model(e, 3);
    close_ok(e);
    /* and once more, from what the first open left */
    e = open_ok(*state, &o);
    check_model(e, 3);
    close_ok(e);
}

/* ---- the index file ---- */

/* A store that exercises every part of the index file: several segments,
 * deletes, keys with an expiry, and keys longer than an arena block (their
 * own blocks), one of them deleted (a dead block) and one moved by an
 * expiry set later (a dead block too). */
#define IXF_LONG 5000

static void
ixf_long_key(char *k, char c)
{
    memset(k, c, IXF_LONG);
    k[IXF_LONG] = '\0';
}

static void
ixf_fill(kvd_engine *e, int64_t expire_ms)
{
    char k[IXF_LONG + 1];

    fill_model(e, 3);
    assert_int_equal(vt->put(e, "ttl-key", 7, "ttl-val", 7, expire_ms), 0);
    ixf_long_key(k, 'a');
    put_ok(e, k, "long-a");
    ixf_long_key(k, 'b');
    put_ok(e, k, "long-b");
    assert_int_equal(vt->del(e, k, IXF_LONG), 0);
    ixf_long_key(k, 'c');
    put_ok(e, k, "long-c");
    assert_int_equal(vt->put(e, k, IXF_LONG, "long-c2", 7, expire_ms), 0);
}

static void
ixf_check(kvd_engine *e, int64_t expire_ms)
{
    char k[IXF_LONG + 1];
    struct kvd_val val;

    check_model_values(e, 3);
    assert_int_equal(vt->get(e, "ttl-key", 7, &val), 0);
    assert_int_equal(val.expire_ms, expire_ms);
    assert_int_equal(val.len, 7);
    assert_memory_equal(val.data, "ttl-val", 7);
    kvd_val_release(&val);
    ixf_long_key(k, 'a');
    expect_val(e, k, "long-a");
    ixf_long_key(k, 'b');
    expect_missing(e, k);
    ixf_long_key(k, 'c');
    assert_int_equal(vt->get(e, k, IXF_LONG, &val), 0);
    assert_int_equal(val.expire_ms, expire_ms);
    assert_int_equal(val.len, 7);
    assert_memory_equal(val.data, "long-c2", 7);
    kvd_val_release(&val);
}

/* Small segments (many of them), the index file on. */
static kvd_engine *
ixf_open(void **state, struct alog_opts *o)
{
    th_opts_default(o);
    o->segment_size = 4096;
    o->index_file = 1;
    return open_ok(*state, o);
}

static void
ixf_path(void **state, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/INDEX", (const char *)*state);
}

/* Rss and Anonymous (kB) of this process's mapping named `want` (a path,
 * with " (deleted)" once unlinked), from /proc/self/smaps; 0 when it is
 * not mapped. */
static int
proc_mapping(const char *want, long *rss, long *anon)
{
    char line[5200];
    FILE *f = fopen("/proc/self/smaps", "r");
    int in = 0;
    int found = 0;

    assert_non_null(f);
    *rss = *anon = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        /* a mapping's header starts with its address range in lower-case
         * hex; its fields ("Rss:") with a capital */
        int header = (line[0] >= '0' && line[0] <= '9') ||
                     (line[0] >= 'a' && line[0] <= 'f');
        if (header && in) {
            break;
        }
        if (header && strstr(line, want) != NULL) {
            in = 1;
            found = 1;
            continue;
        }
        if (in) {
            sscanf(line, "Rss: %ld kB", rss);
            sscanf(line, "Anonymous: %ld kB", anon);
        }
    }
    fclose(f);
    return found;
}

static int
ixf_mapping(const char *path, long *rss, long *anon)
{
    char want[5100];

    snprintf(want, sizeof(want), "%s (deleted)", path);
    return proc_mapping(want, rss, anon);
}

/* A sealed segment's pages are unmapped from the process at the seal
 * (the page cache keeps them), so the sync that seals it need not
 * write-protect them one by one; a read maps them back, same bytes. */
static void
test_log_sealed_segment_is_unmapped_until_read(void **state)
{
    struct alog_opts o;
    char path[4096];
    char val[500];
    char k[16];
    long rss;
    long anon;
    kvd_engine *e;
    int i;

    th_opts_default(&o);
    o.segment_size = 64u << 10;
    /* nothing in the background reads sealed segments (the hint writer
     * reads each record once, through the map) */
    o.hint_files = 0;
    e = open_ok(*state, &o);
    memset(val, 's', sizeof(val));
    val[sizeof(val) - 1] = '\0';
    for (i = 0; th_stat(vt, e, "rolls_total") < 2; i++) {
        snprintf(k, sizeof(k), "s%04d", i);
        put_ok(e, k, val);
    }
    /* a sealed segment: written through its map, sealed, synced */
    snprintf(path, sizeof(path), "%s/00000001.data", (const char *)*state);
    assert_int_equal(proc_mapping(path, &rss, &anon), 1);
    assert_int_equal(rss, 0);
    /* its records, read back through the map */
    for (int j = 0; j < i; j++) {
        snprintf(k, sizeof(k), "s%04d", j);
        expect_val(e, k, val);
    }
    assert_int_equal(proc_mapping(path, &rss, &anon), 1);
    assert_true(rss > 0);
    assert_int_equal(anon, 0);
    close_ok(e);
}

/* While a segment is appended to, the pages behind the appends are
 * unmapped and their writeback started every ALOG_WRITEBACK_BYTES, so the
 * fdatasync of the roll or of everysec finds little left; the mapping
 * never holds much more than that step, and what was written reads back. */
static void
test_log_active_segment_is_written_back_behind_the_appends(void **state)
{
    struct alog_opts o;
    char path[4096];
    char val[1000];
    char k[16];
    long rss;
    long anon;
    kvd_engine *e;
    int i;

    th_opts_default(&o);
    o.segment_size = 64u << 20;
    o.hint_files = 0;
    e = open_ok(*state, &o);
    memset(val, 'w', sizeof(val));
    val[sizeof(val) - 1] = '\0';
    for (i = 0; th_stat(vt, e, "data_bytes") < 3 * ALOG_WRITEBACK_BYTES; i++) {
        snprintf(k, sizeof(k), "w%05d", i);
        put_ok(e, k, val);
    }
    assert_int_equal(th_stat(vt, e, "rolls_total"), 0);
    /* started through the host's table, a step at a time */
    assert_true(atomic_load(&th_io.writebacks) >= 2);
    only_data_file(*state, path, sizeof(path));
    assert_int_equal(proc_mapping(path, &rss, &anon), 1);
    /* at most a step behind the appends and a populate step ahead */
    assert_true((uint64_t)rss * 1024 <=
                ALOG_WRITEBACK_BYTES + ALOG_POPULATE_BYTES + 8192);
    assert_int_equal(anon, 0);
    for (int j = 0; j < i; j++) {
        snprintf(k, sizeof(k), "w%05d", j);
        expect_val(e, k, val);
    }
    close_ok(e);
    e = open_ok(*state, &o);
    expect_val(e, "w00000", val);
    snprintf(k, sizeof(k), "w%05d", i - 1);
    expect_val(e, k, val);
    close_ok(e);
}

/* Starting the writeback behind the appends can fail (EIO, ENOSPC,
 * ENOMEM): that put fails like a failed write, the store turns read-only,
 * and every put acknowledged before it is there after a reopen. */
static void
test_log_failed_writeback_turns_read_only(void **state)
{
    struct alog_opts o;
    struct kvd_engine_stats st;
    struct kvd_err err;
    char val[1000];
    char k[16];
    uint64_t bytes;
    kvd_engine *e;
    int rc = 0;
    int i;

    th_opts_default(&o);
    o.hint_files = 0;
    e = open_ok(*state, &o);
    memset(val, 'f', sizeof(val));
    val[sizeof(val) - 1] = '\0';
    atomic_store(&th_io.fail_errno, EIO);
    atomic_store(&th_io.fail_writeback_at, atomic_load(&th_io.writebacks) + 1);
    for (i = 0; i < 3 * (int)(ALOG_WRITEBACK_BYTES / sizeof(val)); i++) {
        snprintf(k, sizeof(k), "f%05d", i);
        rc = vt->put(e, k, strlen(k), val, strlen(val), 0);
        if (rc != 0) {
            break;
        }
    }
    assert_int_equal(rc, KVD_EIO);
    assert_int_equal(atomic_load(&th_io.writebacks), 1);
    /* it failed at the first step, a writeback step into the segment */
    bytes = th_stat(vt, e, "data_bytes");
    assert_true(bytes + sizeof(val) + 4096 >= ALOG_WRITEBACK_BYTES);
    assert_true(bytes <= ALOG_WRITEBACK_BYTES + 4096);
    /* the failed put is not visible, and nothing more is taken */
    expect_missing(e, k);
    assert_int_equal(keys_of(e), i);
    assert_int_equal(vt->put(e, "after", 5, "x", 1, 0), KVD_EREADONLY);
    th_stats(vt, e, &st);
    assert_int_equal(st.readonly, 1);
    assert_non_null(strstr(st.state, "writeback"));
    assert_non_null(strstr(st.state, "I/O error"));
    vt->close(e, &err);
    th_io_reset();
    e = open_ok(*state, &o);
    for (int j = 0; j < i; j++) {
        snprintf(k, sizeof(k), "f%05d", j);
        expect_val(e, k, val);
    }
    expect_missing(e, "after");
    /* f<i> was written but never acknowledged: either outcome is allowed */
    close_ok(e);
}

/* A host older than ABI 1.7 has no writeback in its table: nothing past
 * the table's struct_size is called, and the appends still go unmapped
 * behind them and read back. */
static void
test_log_host_without_writeback_is_not_asked(void **state)
{
    struct kvd_io io = th_io_table;
    struct kvd_host host = th_host;
    struct alog_opts o;
    struct kvd_err err = {0};
    char path[4096];
    char val[1000];
    char k[16];
    long rss;
    long anon;
    kvd_engine *e = NULL;
    int i;

    io.struct_size = (uint32_t)offsetof(struct kvd_io, writeback);
    host.io = &io;
    th_opts_default(&o);
    o.hint_files = 0;
    assert_int_equal(vt->open(&host, &o, *state, &e, &err), 0);
    memset(val, 'o', sizeof(val));
    val[sizeof(val) - 1] = '\0';
    for (i = 0; th_stat(vt, e, "data_bytes") < 3 * ALOG_WRITEBACK_BYTES; i++) {
        snprintf(k, sizeof(k), "o%05d", i);
        put_ok(e, k, val);
    }
    assert_int_equal(atomic_load(&th_io.writebacks), 0);
    only_data_file(*state, path, sizeof(path));
    assert_int_equal(proc_mapping(path, &rss, &anon), 1);
    assert_true((uint64_t)rss * 1024 <=
                ALOG_WRITEBACK_BYTES + ALOG_POPULATE_BYTES + 8192);
    for (int j = 0; j < i; j++) {
        snprintf(k, sizeof(k), "o%05d", j);
        expect_val(e, k, val);
    }
    assert_int_equal(vt->close(e, &err), 0);
    e = open_ok(*state, &o);
    snprintf(k, sizeof(k), "o%05d", i - 1);
    expect_val(e, k, val);
    close_ok(e);
}

static void
test_log_index_file_reopens_the_same_state(void **state)
{
    struct alog_opts o;
    struct kvd_engine_stats before;
    struct kvd_engine_stats after;
    char path[IXF_LONG + 1];
    struct stat st;
    int64_t exp = th_host.now_ms(&th_host) + 3600 * 1000;
    uint64_t live;
    uint64_t dead;
    kvd_engine *e;

    e = ixf_open(state, &o);
    ixf_fill(e, exp);
    th_stats(vt, e, &before);
    close_ok(e);
    ixf_path(state, path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    {
        /* the mode of every file of the store (0644 less the umask) */
        struct stat seg;
        char data[4200];
        th_last_segment(*state, data, sizeof(data));
        assert_int_equal(stat(data, &seg), 0);
        assert_int_equal(st.st_mode & 0777, seg.st_mode & 0777);
    }
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 1);
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"), 0);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 0);
    /* read once: it would not match the segments after this run */
    assert_int_equal(access(path, F_OK), -1);
    /* the worker makes the index in its map the process's own memory:
     * no page of it is left a file page (bounded wait, 20 s) */
    for (int i = 0; i < 2000 && th_stat(vt, e, "index_file_owned") == 0; i++) {
        usleep(10000);
    }
    assert_int_equal(th_stat(vt, e, "index_file_owned"), 1);
    {
        long rss;
        long anon;
        assert_true(ixf_mapping(path, &rss, &anon));
        assert_true(rss > 0);
        assert_int_equal(anon, rss);
    }
    th_stats(vt, e, &after);
    assert_int_equal(after.keys, before.keys);
    assert_int_equal(after.keys, 203);
    assert_int_equal(after.key_bytes, before.key_bytes);
    assert_int_equal(after.value_bytes, before.value_bytes);
    ixf_check(e, exp);
    live = th_stat(vt, e, "live_bytes");
    dead = th_stat(vt, e, "dead_bytes");
    close_ok(e);
    /* the hint files give the same store, byte for byte in the stats */
    o.index_file = 0;
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 0);
    assert_true(th_stat(vt, e, "recovery_hint_files") > 3);
    th_stats(vt, e, &before);
    assert_int_equal(before.keys, after.keys);
    assert_int_equal(before.key_bytes, after.key_bytes);
    assert_int_equal(before.value_bytes, after.value_bytes);
    assert_int_equal(before.disk_bytes, after.disk_bytes);
    assert_int_equal(th_stat(vt, e, "live_bytes"), live);
    assert_int_equal(th_stat(vt, e, "dead_bytes"), dead);
    ixf_check(e, exp);
    close_ok(e);
    /* still a working index: writes, deletes and a merge on top of it */
    o.index_file = 1;
    e = open_ok(*state, &o); /* no index file left: from the hints */
    close_ok(e);
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 1);
    put_ok(e, "after", "reopen");
    assert_int_equal(vt->del(e, "key001", 6), 0);
    expect_val(e, "after", "reopen");
    expect_missing(e, "key001");
    {
        struct kvd_err err = {0};
        assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    }
    close_ok(e);
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 1);
    expect_val(e, "after", "reopen");
    expect_missing(e, "key001");
    ixf_long_key(path, 'a');
    expect_val(e, path, "long-a");
    assert_int_equal(keys_of(e), 203);
    close_ok(e);
    o.index_file = 0;
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 0);
    expect_val(e, "after", "reopen");
    expect_missing(e, "key001");
    assert_int_equal(keys_of(e), 203);
    close_ok(e);
    /* index_file = no writes none */
    ixf_path(state, path, sizeof(path));
    assert_int_equal(access(path, F_OK), -1);
}

/* Copy file from to to. */
static void
ixf_copy(const char *from, const char *to)
{
    char cmd[9000];

    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static void
test_log_stale_index_file_is_not_used(void **state)
{
    struct alog_opts o;
    char path[4200];
    char saved[4210];
    kvd_engine *e;

    e = ixf_open(state, &o);
    fill_model(e, 2);
    close_ok(e);
    ixf_path(state, path, sizeof(path));
    snprintf(saved, sizeof(saved), "%s.saved", path);
    ixf_copy(path, saved);
    /* the store moves on: a write, and a merge that replaces segments */
    e = open_ok(*state, &o);
    put_ok(e, "newer", "write");
    assert_int_equal(vt->del(e, "key002", 6), 0);
    close_ok(e);
    /* an older index file put back (as a crash could leave one whose
     * deletion was lost) lacks that write: it must not be used */
    ixf_copy(saved, path);
    th_log_clear();
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 0);
    assert_true(th_log_contains("not used"));
    expect_val(e, "newer", "write");
    expect_missing(e, "key002");
    expect_val(e, "key004", "round1-value004-padding-padding");
    assert_int_equal(access(path, F_OK), -1);
    close_ok(e);
    unlink(saved);
}

/* Flip one byte of the file at off (from the end when negative). */
static void
ixf_flip(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    int c;

    assert_non_null(f);
    assert_int_equal(fseek(f, off, off < 0 ? SEEK_END : SEEK_SET), 0);
    c = fgetc(f);
    assert_true(c != EOF);
    assert_int_equal(fseek(f, -1, SEEK_CUR), 0);
    assert_int_not_equal(fputc(c ^ 0x5a, f), EOF);
    assert_int_equal(fclose(f), 0);
}

static void
test_log_damaged_index_file_is_not_used(void **state)
{
    struct alog_opts o;
    char path[4200];
    struct stat st;
    int64_t exp = th_host.now_ms(&th_host) + 3600 * 1000;
    kvd_engine *e;

    e = ixf_open(state, &o);
    ixf_fill(e, exp);
    close_ok(e);
    ixf_path(state, path, sizeof(path));
    for (int round = 0; round < 4; round++) {
        assert_int_equal(stat(path, &st), 0);
        if (round == 0) {
            ixf_flip(path, (long)st.st_size / 2); /* slots or keys */
        } else if (round == 1) {
            ixf_flip(path, -1); /* the crc */
        } else if (round == 2) {
            assert_int_equal(truncate(path, st.st_size - 100), 0);
        } else {
            ixf_flip(path, 20); /* the layout words */
        }
        th_log_clear();
        e = open_ok(*state, &o);
        assert_int_equal(th_stat(vt, e, "recovery_index_file"), 0);
        assert_true(th_log_contains("not used"));
        ixf_check(e, exp);
        assert_int_equal(keys_of(e), 203);
        close_ok(e);
        /* the close wrote a good one again: it is used */
        e = open_ok(*state, &o);
        assert_int_equal(th_stat(vt, e, "recovery_index_file"), 1);
        ixf_check(e, exp);
        close_ok(e);
    }
}

static int count_files(const char *dir, const char *ext);

static void
ixf_put_many(kvd_engine *e, int n)
{
    char k[32];
    char v[32];

    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key%06d", i);
        snprintf(v, sizeof(v), "v%d", i);
        put_ok(e, k, v);
    }
}

static void
ixf_check_many(kvd_engine *e, int n)
{
    char k[32];
    char v[32];

    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key%06d", i);
        snprintf(v, sizeof(v), "v%d", i);
        expect_val(e, k, v);
    }
    assert_int_equal(keys_of(e), (uint64_t)n);
}

/* Ids come back once every segment is gone: an older index file whose
 * segment 0 had the same size must still not be taken for the new one. */
static void
test_log_index_file_of_a_reused_segment_id_is_not_used(void **state)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    char path[4200];
    char saved[4210];
    kvd_engine *e;

    e = ixf_open(state, &o);
    put_ok(e, "k1", "AAAA");
    close_ok(e);
    ixf_path(state, path, sizeof(path));
    snprintf(saved, sizeof(saved), "%s.saved", path);
    ixf_copy(path, saved);
    e = open_ok(*state, &o);
    assert_int_equal(vt->del(e, "k1", 2), 0);
    close_ok(e);
    e = open_ok(*state, &o);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    close_ok(e);
    assert_int_equal(count_files(*state, ".data"), 0);
    e = open_ok(*state, &o);
    put_ok(e, "k2", "BBBB"); /* segment 00000000 again, the same size */
    close_ok(e);
    ixf_copy(saved, path);
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 0);
    expect_val(e, "k2", "BBBB");
    expect_missing(e, "k1");
    close_ok(e);
    unlink(saved);
}

/* Enough keys that shards grow past their first arrays, then growth,
 * removal and shrinking on top of arrays that lie in the file's map. */
static void
test_log_index_file_shards_grow_and_shrink_after_it(void **state)
{
    struct alog_opts o;
    char k[32];
    char v[32];
    kvd_engine *e;

    e = ixf_open(state, &o);
    ixf_put_many(e, 20000);
    close_ok(e);
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 1);
    for (int i = 20000; i < 40000; i++) {
        snprintf(k, sizeof(k), "key%06d", i);
        snprintf(v, sizeof(v), "v%d", i);
        put_ok(e, k, v);
    }
    for (int i = 0; i < 40000; i++) {
        if (i % 8 != 0) {
            snprintf(k, sizeof(k), "key%06d", i);
            assert_int_equal(vt->del(e, k, strlen(k)), 0);
        }
    }
    assert_int_equal(keys_of(e), 5000);
    close_ok(e);
    for (int round = 0; round < 2; round++) {
        e = open_ok(*state, &o);
        assert_int_equal(th_stat(vt, e, "recovery_index_file"), 1);
        assert_int_equal(keys_of(e), 5000);
        for (int i = 0; i < 40000; i++) {
            snprintf(k, sizeof(k), "key%06d", i);
            if (i % 8 != 0) {
                expect_missing(e, k);
            } else {
                snprintf(v, sizeof(v), "v%d", i);
                expect_val(e, k, v);
            }
        }
        close_ok(e);
    }
}

/* A damaged file whose crc was made to match: the structure checks must
 * refuse it, without allocating what its sizes say. */
static void
test_log_index_file_with_a_matching_crc_is_still_checked(void **state)
{
    struct alog_opts o;
    char path[4200];
    kvd_engine *e;

    e = ixf_open(state, &o);
    ixf_put_many(e, 5000); /* every shard has keys, in blocks */
    close_ok(e);
    ixf_path(state, path, sizeof(path));
    for (int round = 0; round < 3; round++) {
        FILE *f = fopen(path, "r+b");
        unsigned char *buf;
        long size;
        uint32_t nsegs;
        long shard0;
        uint32_t crc;

        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        buf = malloc((size_t)size);
        assert_non_null(buf);
        assert_int_equal(fseek(f, 0, SEEK_SET), 0);
        assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
        memcpy(&nsegs, buf + 16 + 12, 4);
        shard0 = 16 + 40 + (long)nsegs * 72;
        if (round == 0) {
            uint32_t nblks = 0x7fffffffu; /* blocks: far more than fit */
            memcpy(buf + shard0 + 8, &nblks, 4);
        } else if (round == 1) {
            uint32_t pos = 0; /* the last block's keys past its use */
            uint32_t nblks;
            memcpy(&nblks, buf + shard0 + 8, 4);
            assert_true(nblks > 0);
            memcpy(buf + shard0 + 12, &pos, 4);
        } else {
            uint64_t count = 12345; /* entries: a count that lies */
            memcpy(buf + shard0 + 16, &count, 8);
        }
        crc = kvd_crc32c_mask(kvd_crc32c(0, buf, (size_t)size - 4));
        memcpy(buf + size - 4, &crc, 4);
        assert_int_equal(fseek(f, 0, SEEK_SET), 0);
        assert_int_equal(fwrite(buf, 1, (size_t)size, f), (size_t)size);
        assert_int_equal(fclose(f), 0);
        free(buf);
        th_log_clear();
        e = open_ok(*state, &o);
        assert_int_equal(th_stat(vt, e, "recovery_index_file"), 0);
        assert_true(th_log_contains("shard 0 is damaged"));
        ixf_check_many(e, 5000);
        close_ok(e);
    }
}

static void
test_log_failed_index_file_write_keeps_the_close_clean(void **state)
{
    struct alog_opts o;
    char path[4200];
    char tmp[4210];
    kvd_engine *e;

    e = ixf_open(state, &o);
    fill_model(e, 2);
    /* a directory where the temporary file goes: creating it fails */
    ixf_path(state, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(mkdir(tmp, 0700), 0);
    th_log_clear();
    close_ok(e); /* a cache it could not write: the close still succeeds */
    assert_true(th_log_contains("could not write"));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(rmdir(tmp), 0);
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_index_file"), 0);
    assert_true(th_stat(vt, e, "recovery_hint_files") > 0);
    check_model(e, 2);
    close_ok(e);
}

/* Number of files in dir whose name ends with ext. */
static int
count_files(const char *dir, const char *ext)
{
    char cmd[4200];
    int n = 0;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "ls -1 '%s' | grep -c '%s$'", dir, ext);
    f = popen(cmd, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

/* seg ("DIR/NNNNNNNN.data") with its extension replaced by ext. */
static void
sibling(const char *seg, const char *ext, char *out, size_t outlen)
{
    size_t n = strlen(seg);
    assert_true(n > 5);
    snprintf(out, outlen, "%.*s.%s", (int)(n - 5), seg, ext);
}

static void
test_log_clean_close_reopens_from_hints_only(void **state)
{
    struct alog_opts o;
    char seg[4096];
    char hint[4096];
    kvd_engine *e;

    /* one segment, never rolled: only close can have written its hint */
    th_opts_default(&o);
    e = open_ok(*state, &o);
    fill_model(e, 2);
    close_ok(e);
    th_last_segment(*state, seg, sizeof(seg));
    sibling(seg, "hint", hint, sizeof(hint));
    assert_int_equal(access(hint, F_OK), 0);
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"), 1);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 0);
    check_model(e, 2);

    /* several sealed segments plus a half-full active one */
    close_ok(e);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    fill_model(e, 3);
    close_ok(e);
    e = open_ok(*state, &o);
    assert_true(count_files(*state, ".data") > 3);
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"),
                     (uint64_t)count_files(*state, ".data") - 1);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 0);
    check_model(e, 3);
    close_ok(e);
}

/* Puts, deletes, a batch and a multi(), with a roll in between. */
static void
fill_every_kind(kvd_engine *e)
{
    struct kvd_err err = {0};
    struct kvd_op bops[] = {
        {KVD_OP_PUT, "b1", 2, "batch-one", 9, 0},
        {KVD_OP_DEL, "key004", 6, NULL, 0, 0},
        {KVD_OP_PUT, "b2", 2, "batch-two", 9, 0},
    };
    struct kvd_mop mops[] = {
        {.type = KVD_MOP_PUT,
         .key = "m1",
         .klen = 2,
         .val = "multi",
         .vlen = 5},
        {.type = KVD_MOP_PUT,
         .key = "m2",
         .klen = 2,
         .val = "multi",
         .vlen = 5},
        {.type = KVD_MOP_DEL, .key = "key005", .klen = 6},
    };

    fill_model(e, 2);
    assert_int_equal(vt->batch(e, bops, 3, &err), 0);
    assert_int_equal(vt->multi(e, mops, 3), 0);
}

static void
check_every_kind(kvd_engine *e)
{
    expect_val(e, "b1", "batch-one");
    expect_val(e, "b2", "batch-two");
    expect_val(e, "m1", "multi");
    expect_val(e, "m2", "multi");
    expect_missing(e, "key004");
    expect_missing(e, "key005");
    expect_val(e, "key007", "round1-value007-padding-padding");
    assert_int_equal(keys_of(e), 202);
}

static void
test_log_hints_come_from_appends_without_a_scan(void **state)
{
    struct alog_opts o;
    kvd_engine *e;

    /* many rolls: every sealed segment's hint, and the active one's at
     * close, is written from the entries noted at each append */
    th_opts_default(&o);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    fill_every_kind(e);
    assert_int_equal(th_stat(vt, e, "hint_scans_total"), 0);
    close_ok(e);
    e = open_ok(*state, &o);
    assert_true(th_stat(vt, e, "recovery_hint_files") > 5);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 0);
    check_every_kind(e);
    close_ok(e);

    /* the hints say exactly what a scan finds */
    th_remove_hints(*state);
    e = open_ok(*state, &o);
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"), 0);
    check_every_kind(e);
    close_ok(e);
}

/* Flip the byte from_end bytes before the end of every hint file in dir. */
static void
flip_hint_bytes(const char *dir, long from_end)
{
    char cmd[4200];
    char name[256];
    char path[4600];
    FILE *f;

    snprintf(cmd, sizeof(cmd), "ls -1 '%s' | grep '\\.hint$'", dir);
    f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(name, sizeof(name), f) != NULL) {
        name[strcspn(name, "\n")] = '\0';
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        flip_byte(path, file_size(path) - (uint64_t)from_end);
    }
    pclose(f);
}

static void
test_log_hint_failing_its_checksum_is_scanned_instead(void **state)
{
    struct alog_opts o;
    kvd_engine *e;

    th_opts_default(&o);
    o.segment_size = 4096;
    e = open_ok(*state, &o);
    fill_every_kind(e);
    close_ok(e);
    /* a byte inside the last entry's key: the whole-file crc fails, so
     * not one entry of the file is applied */
    flip_hint_bytes(*state, 30);
    th_log_clear();
    e = open_ok(*state, &o);
    assert_true(th_log_contains("hint file"));
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"), 0);
    assert_true(th_stat(vt, e, "recovery_scanned_files") > 5);
    check_every_kind(e);
    close_ok(e);
}

static void
test_log_crash_after_close_hint_is_consistent(void **state)
{
    struct alog_opts o;
    char *copy = th_mkdtemp();
    char seg[4096];
    char hint[4096];
    char path[4096];
    kvd_engine *e;

    th_opts_default(&o);
    e = open_ok(*state, &o);
    fill_model(e, 2); /* segment 0, hinted by the close */
    close_ok(e);

    /* the next run writes and dies without a close: the image of its
     * directory has the hinted old segment and an unhinted new one */
    e = open_ok(*state, &o);
    put_ok(e, "after", "the-crash");
    assert_int_equal(vt->del(e, "key001", 6), 0);
    assert_int_equal(th_copy_dir(*state, copy), 0);
    close_ok(e);
    e = open_ok(copy, &o);
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"), 1);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 1);
    expect_val(e, "after", "the-crash");
    expect_missing(e, "key001");
    expect_val(e, "key002", "round1-value002-padding-padding");
    assert_int_equal(keys_of(e), 200);
    close_ok(e);
    th_rmrf(copy);
    free(copy);

    /* a crash inside close, between writing the hint and renaming it:
     * the leftover is removed and the segment scanned */
    copy = th_mkdtemp();
    assert_int_equal(th_copy_dir(*state, copy), 0);
    th_last_segment(copy, seg, sizeof(seg));
    sibling(seg, "hint", hint, sizeof(hint));
    sibling(seg, "hint.tmp", path, sizeof(path));
    assert_int_equal(rename(hint, path), 0);
    e = open_ok(copy, &o);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 1);
    expect_val(e, "after", "the-crash");
    expect_missing(e, "key001");
    assert_int_equal(keys_of(e), 200);
    close_ok(e);
    th_rmrf(copy);
    free(copy);

    /* the data file lost its last bytes but the hint survived (the order
     * sync data, then write the hint rules this out for a crash): the
     * intact hint proves the file was complete, so this is damage, not a
     * torn write: reported, nothing cut, what remains loaded (skip) */
    copy = th_mkdtemp();
    assert_int_equal(th_copy_dir(*state, copy), 0);
    th_last_segment(copy, seg, sizeof(seg));
    assert_int_equal(truncate(seg, (off_t)(file_size(seg) - 3)), 0);
    th_log_clear();
    e = open_ok(copy, &o);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 1);
    assert_true(th_log_contains("lost its end"));
    assert_false(th_log_contains("torn write at the end of"));
    assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 0);
    /* the damaged record was the delete, the last write */
    expect_val(e, "key001", "round1-value001-padding-padding");
    expect_val(e, "after", "the-crash");
    assert_int_equal(keys_of(e), 201);
    close_ok(e);
    th_rmrf(copy);
    free(copy);
}

static void
test_log_hint_of_another_segment_is_ignored(void **state)
{
    struct alog_opts o;
    char *other = th_mkdtemp();
    char seg[4096];
    char oseg[4096];
    char hint[4096];
    char ohint[4096];
    char k[16];
    kvd_engine *e;

    /* two stores whose first segments have the same length and the same
     * record sizes, but hold the keys in opposite orders */
    th_opts_default(&o);
    e = open_ok(*state, &o);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        put_ok(e, k, "mine-0123456789");
    }
    close_ok(e);
    e = open_ok(other, &o);
    for (int i = 49; i >= 0; i--) {
        snprintf(k, sizeof(k), "k%02d", i);
        put_ok(e, k, "else-0123456789");
    }
    close_ok(e);
    th_last_segment(*state, seg, sizeof(seg));
    th_last_segment(other, oseg, sizeof(oseg));
    assert_int_equal(file_size(seg), file_size(oseg));
    sibling(seg, "hint", hint, sizeof(hint));
    sibling(oseg, "hint", ohint, sizeof(ohint));
    assert_int_equal(rename(ohint, hint), 0);

    /* a valid hint file with the right length, but not this segment's:
     * it must not be trusted (it would point every key at another's
     * record) */
    th_log_clear();
    e = open_ok(*state, &o);
    assert_true(th_log_contains("does not match its data file"));
    assert_int_equal(th_stat(vt, e, "recovery_hint_files"), 0);
    assert_int_equal(th_stat(vt, e, "recovery_scanned_files"), 1);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "k%02d", i);
        expect_val(e, k, "mine-0123456789");
    }
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    close_ok(e);
    th_rmrf(other);
    free(other);
}

static void
test_log_leftover_tmp_files_are_removed(void **state)
{
    struct alog_opts o;
    char path[4096];
    kvd_engine *e;
    int fd;

    th_opts_default(&o);
    e = open_ok(*state, &o);
    put_ok(e, "a", "1");
    close_ok(e);
    snprintf(path, sizeof(path), "%s/00000099.data.tmp", (char *)*state);
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "garbage", 7), 7);
    close(fd);
    e = open_ok(*state, &o);
    expect_val(e, "a", "1");
    assert_int_equal(access(path, F_OK), -1);
    close_ok(e);
}

/* ---- stats and options ---- */

static void
test_log_stats_count_live_keys_only(void **state)
{
    struct alog_opts o;
    struct kvd_engine_stats st;
    kvd_engine *e;
    int64_t t0 = 1700000000000;

    th_clock_set(t0);
    th_opts_default(&o);
    e = open_ok(*state, &o);
    put_ok(e, "aa", "1234");
    put_ok(e, "bbb", "12");
    assert_int_equal(vt->put(e, "ttl", 3, "123456", 6, t0 + 10), 0);
    put_ok(e, "gone", "x");
    assert_int_equal(vt->del(e, "gone", 4), 0);
    th_stats(vt, e, &st);
    assert_int_equal(st.keys, 3);
    assert_int_equal(st.key_bytes, 8);
    assert_int_equal(st.value_bytes, 12);
    assert_true(st.mem_bytes > 0);
    assert_true(st.disk_bytes > 0);
    assert_int_equal(st.ready, 1);
    assert_int_equal(st.readonly, 0);
    assert_string_equal(st.state, "");
    th_clock_set(t0 + 10);
    th_stats(vt, e, &st);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.key_bytes, 5);
    assert_int_equal(st.value_bytes, 6);
    assert_int_equal(th_stat(vt, e, "live_bytes"),
                     (36 + 2 + 4) + (36 + 3 + 2) + (36 + 3 + 6));
    assert_int_equal(vt->maintain(e, KVD_MAINT_EXPIRE, NULL), 0);
    assert_int_equal(th_stat(vt, e, "live_bytes"), (36 + 2 + 4) + (36 + 3 + 2));
    assert_true(th_stat(vt, e, "index_bytes_per_key") > 0);
    close_ok(e);
}

/* ---- the compact index ---- */

static void
put_key_n(kvd_engine *e, unsigned i, int64_t expire_ms)
{
    char k[17];
    snprintf(k, sizeof(k), "key-%012u", i); /* 16 bytes */
    assert_int_equal(vt->put(e, k, 16, "v", 1, expire_ms), 0);
}

static int
get_key_n(kvd_engine *e, unsigned i)
{
    char k[17];
    struct kvd_val val;
    int rc;
    snprintf(k, sizeof(k), "key-%012u", i);
    rc = vt->get(e, k, 16, &val);
    if (rc == 0) {
        kvd_val_release(&val);
    }
    return rc;
}

/* 16-byte keys take at most 48 bytes of index each (slot, key in the
 * arena, the arena's block slack), as reported by stats; no entry object
 * per key. */
static void
test_log_index_is_compact(void **state)
{
    struct alog_opts o;
    const unsigned n = 250000;
    kvd_engine *e;
    uint64_t per_key;

    th_opts_default(&o);
    o.sync = ALOG_SYNC_NEVER;
    e = open_ok(*state, &o);
    for (unsigned i = 0; i < n; i++) {
        put_key_n(e, i, 0);
    }
    per_key = th_stat(vt, e, "index_bytes_per_key");
    print_message("index_bytes_per_key %llu\n", (unsigned long long)per_key);
    /* at least a slot (20) and the key with its length (18) */
    assert_true(per_key >= 38);
    assert_true(per_key <= 48);
    assert_int_equal(get_key_n(e, 0), 0);
    assert_int_equal(get_key_n(e, n - 1), 0);
    assert_int_equal(get_key_n(e, n), KVD_ENOTFOUND);
    close_ok(e);
    /* recovery fills the slots straight from the hint entries */
    e = open_ok(*state, &o);
    assert_int_equal(keys_of(e), n);
    assert_true(th_stat(vt, e, "index_bytes_per_key") <= 48);
    for (unsigned i = 0; i < n; i += 997) {
        assert_int_equal(get_key_n(e, i), 0);
    }
    close_ok(e);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LOG_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LOG_TEST_SANITIZED 1
#endif
#endif

#ifndef LOG_TEST_SANITIZED
/* Anonymous memory resident in this process, in bytes (0: unknown).
 * From smaps_rollup, which counts pages exactly; RssAnon in
 * /proc/self/status is a per-CPU approximation on some kernels. */
static uint64_t
rss_anon_bytes(void)
{
    char line[256];
    unsigned long long kb = 0;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "Anonymous: %llu kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return (uint64_t)kb * 1024;
}
#endif

/* What the operator sees: anonymous memory the process gains per key,
 * index and everything else the engine keeps, at 1,000,000 16-byte keys
 * with 100-byte values (at most 48 bytes a key). The stat above is the
 * index's own accounting; this is the kernel's count of resident pages,
 * which also holds pages faulted in but not yet used. Sanitizer builds
 * allocate their own way: skipped there. */
static void
test_log_resident_memory_per_key(void **state)
{
#ifdef LOG_TEST_SANITIZED
    (void)state;
    skip();
#else
    struct alog_opts o;
    const unsigned n = 1000000;
    char val[100];
    char k[17];
    uint64_t before;
    uint64_t after;
    kvd_engine *e;

    /* Transparent huge pages set to "always" would round anonymous
     * memory up to 2 MiB pages (operators of key-value servers turn
     * them off, and the default is "madvise"): off for this process. */
    (void)prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    before = rss_anon_bytes();
    if (before == 0) {
        skip(); /* no /proc */
    }
    th_opts_default(&o);
    e = open_ok(*state, &o);
    memset(val, 'r', sizeof(val));
    for (unsigned i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "key-%012u", i);
        assert_int_equal(vt->put(e, k, 16, val, sizeof(val), 0), 0);
    }
    /* at rest: the worker has written the hint file of every sealed
     * segment (while it builds one, its entries are held in memory, about
     * 43 bytes a record of the segment; bounded wait, 60 s) */
    for (int w = 0; w < 6000 && th_stat(vt, e, "hint_files_written_total") <
                                    th_stat(vt, e, "rolls_total");
         w++) {
        usleep(10000);
    }
    assert_true(th_stat(vt, e, "rolls_total") > 0);
    assert_int_equal(th_stat(vt, e, "hint_files_written_total"),
                     th_stat(vt, e, "rolls_total"));
    after = rss_anon_bytes();
    print_message("anonymous %llu -> %llu bytes: %.1f bytes a key\n",
                  (unsigned long long)before, (unsigned long long)after,
                  (double)(after - before) / n);
    assert_true(after > before);
    assert_true(after - before <= 48ull * n);
    assert_int_equal(keys_of(e), n);
    close_ok(e);
#endif
}

/* Deleting keys gives their arena bytes back (the shard's arena is copied
 * once more than half of it is dead); expiries that come and go move keys
 * in the arena without losing them. */
static void
test_log_index_reclaims_deleted_keys(void **state)
{
    struct alog_opts o;
    const unsigned n = 100000;
    kvd_engine *e;
    uint64_t full;
    uint64_t after;
    char k[17];

    th_opts_default(&o);
    o.sync = ALOG_SYNC_NEVER;
    e = open_ok(*state, &o);
    for (unsigned i = 0; i < n; i++) {
        put_key_n(e, i, i % 3 == 0 ? INT64_MAX / 2 : 0);
    }
    full = th_stat(vt, e, "index_bytes");
    for (unsigned i = 0; i < n; i++) {
        if (i % 100 != 0) {
            snprintf(k, sizeof(k), "key-%012u", i);
            assert_int_equal(vt->del(e, k, 16), 0);
        }
    }
    after = th_stat(vt, e, "index_bytes");
    print_message("index_bytes %llu -> %llu\n", (unsigned long long)full,
                  (unsigned long long)after);
    assert_true(after < full / 2);
    /* expiry added to and dropped from the keys left */
    for (unsigned i = 0; i < n; i += 100) {
        put_key_n(e, i, i % 200 == 0 ? INT64_MAX / 2 : 0);
    }
    for (unsigned i = 0; i < n; i++) {
        int rc = get_key_n(e, i);
        if (rc != (i % 100 == 0 ? 0 : KVD_ENOTFOUND)) {
            fail_msg("key %u: get %d", i, rc);
        }
    }
    assert_int_equal(keys_of(e), n / 100);
    close_ok(e);
    e = open_ok(*state, &o);
    assert_int_equal(keys_of(e), n / 100);
    for (unsigned i = 0; i < n; i += 50) {
        assert_int_equal(get_key_n(e, i), i % 100 == 0 ? 0 : KVD_ENOTFOUND);
    }
    close_ok(e);
}

/* A full iteration sees every key once, in ascending pos, also across
 * batches that end inside a shard. */
static void
test_log_iteration_is_hash_ordered_and_complete(void **state)
{
    struct alog_opts o;
    const unsigned n = 20000;
    kvd_engine *e;
    kvd_iter *it = NULL;
    struct kvd_entry ent;
    struct kvd_err err = {0};
    unsigned char *seen = calloc(n, 1);
    uint64_t last = 0;
    unsigned count = 0;
    int rc;

    assert_non_null(seen);
    th_opts_default(&o);
    o.sync = ALOG_SYNC_NEVER;
    e = open_ok(*state, &o);
    for (unsigned i = 0; i < n; i++) {
        put_key_n(e, i, 0);
    }
    assert_int_equal(vt->iter_open(e, NULL, &it, &err), 0);
    while ((rc = vt->iter_next(it, &ent)) == 0) {
        char kb[17];
        unsigned idx;
        assert_int_equal(ent.klen, 16);
        memcpy(kb, ent.key, 16);
        kb[16] = '\0';
        idx = (unsigned)strtoul(kb + 4, NULL, 10);
        assert_true(idx < n);
        assert_int_equal(seen[idx], 0);
        seen[idx] = 1;
        /* keys whose hashes share a tag (rare) share a pos */
        assert_true(ent.pos >= last);
        last = ent.pos;
        count++;
    }
    assert_int_equal(rc, KVD_ENOTFOUND);
    assert_int_equal(count, n);
    vt->iter_close(it);
    free(seen);
    close_ok(e);
}

/* The key number and pos of the entry after skipping `skip` from start. */
static unsigned
key_at(kvd_engine *e, uint64_t start, unsigned skip, uint64_t *pos)
{
    struct kvd_iter_opts io = {0};
    kvd_iter *it = NULL;
    struct kvd_entry ent;
    struct kvd_err err = {0};
    char kb[17];

    io.start_pos = start;
    assert_int_equal(vt->iter_open(e, &io, &it, &err), 0);
    for (unsigned i = 0; i <= skip; i++) {
        assert_int_equal(vt->iter_next(it, &ent), 0);
    }
    memcpy(kb, ent.key, 16);
    kb[16] = '\0';
    *pos = ent.pos;
    vt->iter_close(it);
    return (unsigned)strtoul(kb + 4, NULL, 10);
}

/* An entry's pos is the highest hash its tag group can hold, so resuming
 * at pos + 1 needs no full hash. A start_pos inside a group (a cursor made
 * by hand, e.g. SCAN 12345) still filters that group by full hash: from
 * the group's first possible hash the entry comes first, from one below
 * its pos it does not (its hash sits that high with odds of 2^-23). */
static void
test_log_iteration_starts_inside_a_tag_group(void **state)
{
    struct alog_opts o;
    const uint64_t low = (UINT64_C(1) << (32 - ALOG_SHARD_BITS)) - 1;
    uint64_t pos;
    uint64_t p2;
    unsigned k;
    unsigned next;
    kvd_engine *e;

    th_opts_default(&o);
    o.sync = ALOG_SYNC_NEVER;
    e = open_ok(*state, &o);
    for (unsigned i = 0; i < 100; i++) {
        put_key_n(e, i, 0);
    }
    k = key_at(e, 0, 50, &pos);
    next = key_at(e, 0, 51, &p2);
    assert_int_equal(pos & low, low);
    assert_true(p2 > pos);
    assert_int_equal(key_at(e, pos & ~low, 0, &p2), k);
    assert_int_equal(p2, pos);
    assert_int_equal(key_at(e, pos - 1, 0, &p2), next);
    assert_int_equal(key_at(e, pos + 1, 0, &p2), next);
    close_ok(e);
}

/* The first keys of a full iteration, as key numbers. */
static void
first_keys(kvd_engine *e, unsigned *out, unsigned n)
{
    kvd_iter *it = NULL;
    struct kvd_entry ent;
    struct kvd_err err = {0};

    assert_int_equal(vt->iter_open(e, NULL, &it, &err), 0);
    for (unsigned i = 0; i < n; i++) {
        char kb[17];
        assert_int_equal(vt->iter_next(it, &ent), 0);
        memcpy(kb, ent.key, 16);
        kb[16] = '\0';
        out[i] = (unsigned)strtoul(kb + 4, NULL, 10);
    }
    vt->iter_close(it);
}

/* The index hashes keys under a seed drawn at each open, so a client
 * cannot choose keys that pile into one run of slots: the hash order of
 * the same keys differs between two opens (64 keys in the same order
 * twice by chance: about 1 in 64!). */
static void
test_log_hash_seed_differs_per_open(void **state)
{
    struct alog_opts o;
    enum { N = 64 };
    unsigned a[N];
    unsigned b[N];
    kvd_engine *e;

    th_opts_default(&o);
    o.sync = ALOG_SYNC_NEVER;
    e = open_ok(*state, &o);
    for (unsigned i = 0; i < N; i++) {
        put_key_n(e, i, 0);
    }
    first_keys(e, a, N);
    close_ok(e);
    e = open_ok(*state, &o);
    first_keys(e, b, N);
    close_ok(e);
    assert_true(memcmp(a, b, sizeof(a)) != 0);
}

static void
test_log_rejects_bad_options(void **state)
{
    struct alog_opts o;
    struct kvd_err err = {0};
    kvd_engine *e = NULL;
    int found = 0;

    th_opts_default(&o);
    o.segment_size = 100;
    assert_int_equal(vt->open(&th_host, &o, *state, &e, &err), KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "segment_size = 100"));
    th_opts_default(&o);
    o.merge_ratio = 101;
    assert_int_equal(vt->open(&th_host, &o, *state, &e, &err), KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "merge_ratio = 101"));
    assert_null(e);
    for (const struct kvd_option *op = vt->options; op->name != NULL; op++) {
        assert_non_null(op->help);
        assert_true(op->offset < vt->options_size);
        if (strcmp(op->name, "sync") == 0 ||
            strcmp(op->name, "segment_size") == 0 ||
            strcmp(op->name, "merge_ratio") == 0 ||
            strcmp(op->name, "merge_interval") == 0) {
            found++;
        }
    }
    assert_int_equal(found, 4);
    assert_int_equal(vt->options_size, sizeof(struct alog_opts));
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_vectors),
        cmocka_unit_test(test_crc32c_hw_matches_sw),
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
        T(test_log_put_get_del_reopen),
        T(test_log_large_value_survives_reopen),
        T(test_log_get_reads_no_file),
        T(test_log_multi_puts_are_one_write),
        T(test_log_second_open_is_locked),
        T(test_log_batch_is_atomic_and_invalid_batch_changes_nothing),
        T(test_log_truncate_last_record_at_every_offset),
        T(test_log_truncate_last_batch_at_every_offset),
        T(test_log_truncated_closed_segment_is_corruption),
        T(test_log_preallocated_zero_tail_is_a_clean_end),
        T(test_log_sealed_and_closed_files_are_their_written_size),
        T(test_log_missing_segment_is_never_silent),
        T(test_log_flipped_value_byte_skips_one_record),
        T(test_log_flipped_header_byte_skips_one_record),
        T(test_log_flipped_byte_with_hint_fails_that_get),
        T(test_log_failed_write_turns_read_only),
        T(test_log_failed_preallocation_turns_read_only),
        T(test_log_appends_fault_in_the_map_a_step_ahead),
        T(test_log_sealed_segment_is_unmapped_until_read),
        T(test_log_active_segment_is_written_back_behind_the_appends),
        T(test_log_failed_writeback_turns_read_only),
        T(test_log_host_without_writeback_is_not_asked),
        T(test_log_failed_fsync_turns_read_only),
        T(test_log_compact_keeps_values_and_drops_dead_bytes),
        T(test_log_merge_is_rate_limited),
        T(test_log_partial_merge_keeps_needed_tombstone),
        T(test_log_merge_drops_expired_keys),
        T(test_log_merge_runs_alongside_writers),
        T(test_log_iteration_resumes_by_pos),
        T(test_log_index_is_compact),
        T(test_log_resident_memory_per_key),
        T(test_log_index_reclaims_deleted_keys),
        T(test_log_iteration_is_hash_ordered_and_complete),
        T(test_log_hash_seed_differs_per_open),
        T(test_log_iteration_starts_inside_a_tag_group),
        T(test_log_group_commit_shares_fdatasync),
        T(test_log_hint_and_scan_recover_the_same_state),
        T(test_log_hints_and_scans_mixed_recover_the_same_state),
        T(test_log_index_file_reopens_the_same_state),
        T(test_log_stale_index_file_is_not_used),
        T(test_log_damaged_index_file_is_not_used),
        T(test_log_failed_index_file_write_keeps_the_close_clean),
        T(test_log_index_file_of_a_reused_segment_id_is_not_used),
        T(test_log_index_file_shards_grow_and_shrink_after_it),
        T(test_log_index_file_with_a_matching_crc_is_still_checked),
        T(test_log_clean_close_reopens_from_hints_only),
        T(test_log_crash_after_close_hint_is_consistent),
        T(test_log_hints_come_from_appends_without_a_scan),
        T(test_log_hint_failing_its_checksum_is_scanned_instead),
        T(test_log_hint_of_another_segment_is_ignored),
        T(test_log_leftover_tmp_files_are_removed),
        T(test_log_stats_count_live_keys_only),
        T(test_log_rejects_bad_options),
#undef T
    };
    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
