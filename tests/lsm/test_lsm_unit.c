/*
 * test_lsm_unit.c -- unit tests of the lsm engine's own parts: the record
 * log (WAL and MANIFEST format), the memtable, version edits and versions
 * (compiled in from engines/lsm), and, through the plugin, the MANIFEST
 * and CURRENT on disk, WAL recovery (torn tails, the corruption policies),
 * iteration across the memtable and several tables against a model,
 * snapshot iterators, deletes, stats, stalls and the lock file.
 *
 * Random data comes from a seeded generator; LSM_TEST_SEED replays.
 */
#include "test_lsm_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsm_mem.h"
#include "lsm_version.h"
#include "lsm_wal.h"

static const struct kvd_engine_vtable *vt;
static uint64_t seed;

static int
setup_dir(void **state)
{
    th_io_reset();
    th_log_clear();
    th_clock_set(0);
    *state = th_mkdtemp();
    return 0;
}

static int
teardown_dir(void **state)
{
    th_rmrf(*state);
    free(*state);
    th_clock_set(0);
    return 0;
}

/* ---- record log ---- */

/* Encode recs[i] (lens[i] bytes) one after the other into a buffer. */
static unsigned char *
log_build(unsigned char **recs, const size_t *lens, size_t n, size_t *size,
          size_t *offs)
{
    size_t cap = 0;
    size_t block_off = 0;
    size_t len = 0;
    unsigned char *buf;

    for (size_t i = 0; i < n; i++) {
        size_t e = lsm_log_encoded_size(block_off, lens[i]);
        cap += e;
        block_off = (block_off + e) % LSM_LOG_BLOCK_BYTES;
    }
    buf = malloc(cap + 1);
    assert_non_null(buf);
    block_off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t e = lsm_log_encoded_size(block_off, lens[i]);
        if (offs != NULL) {
            offs[i] = len;
        }
        block_off = lsm_log_encode(block_off, recs[i], lens[i], buf + len);
        len += e;
    }
    assert_int_equal(len, cap);
    *size = len;
    return buf;
}

static void
make_recs(struct th_rng *r, unsigned char **recs, size_t *lens, size_t n)
{
    /* sizes that end exactly at a block, leave < 7 bytes, span blocks */
    static const size_t fixed[] = {0,
                                   1,
                                   LSM_LOG_BLOCK_BYTES - 7 - 7 - 1,
                                   LSM_LOG_BLOCK_BYTES - 7 - 3,
                                   100000,
                                   LSM_LOG_BLOCK_BYTES - 7};
    for (size_t i = 0; i < n; i++) {
        lens[i] =
            i < sizeof(fixed) / sizeof(fixed[0]) ? fixed[i] : th_below(r, 3000);
        recs[i] = malloc(lens[i] + 1);
        assert_non_null(recs[i]);
        for (size_t j = 0; j < lens[i]; j++) {
            recs[i][j] = (unsigned char)(th_next(r) >> 7);
        }
    }
}

static void
test_wal_records_roundtrip_across_blocks(void **state)
{
    struct th_rng r = {seed};
    unsigned char *recs[40];
    size_t lens[40];
    struct lsm_logr rd;
    unsigned char *buf;
    size_t size;
    const void *p;
    size_t n;

    (void)state;
    make_recs(&r, recs, lens, 40);
    buf = log_build(recs, lens, 40, &size, NULL);
    lsm_logr_init(&rd, buf, size);
    for (size_t i = 0; i < 40; i++) {
        assert_int_equal(lsm_logr_next(&rd, &p, &n), 0);
        assert_int_equal(n, lens[i]);
        if (n > 0) {
            assert_memory_equal(p, recs[i], n);
        }
    }
    assert_int_equal(lsm_logr_next(&rd, &p, &n), KVD_ENOTFOUND);
    assert_false(rd.torn);
    assert_int_equal(rd.ncorrupt, 0);
    lsm_logr_release(&rd);
    free(buf);
    for (size_t i = 0; i < 40; i++) {
        free(recs[i]);
    }
}

static void
test_wal_truncated_at_every_offset_keeps_whole_records(void **state)
{
    struct th_rng r = {seed + 1};
    unsigned char *recs[12];
    size_t lens[12];
    size_t offs[12];
    unsigned char *buf;
    size_t size;

    (void)state;
    make_recs(&r, recs, lens, 12);
    lens[4] = 40000; /* the last three: one spans a block boundary */
    lens[10] = 70000;
    free(recs[10]);
    recs[10] = calloc(1, lens[10]);
    free(recs[4]);
    recs[4] = calloc(1, lens[4]);
    buf = log_build(recs, lens, 12, &size, offs);
    for (size_t cut = offs[9]; cut <= size; cut++) {
        struct lsm_logr rd;
        const void *p;
        size_t n;
        size_t got = 0;

        lsm_logr_init(&rd, buf, cut);
        while (lsm_logr_next(&rd, &p, &n) == 0) {
            assert_int_equal(n, lens[got]);
            got++;
        }
        /* every record wholly before the cut, none after */
        for (size_t i = 0; i < 12; i++) {
            size_t end = i + 1 < 12 ? offs[i + 1] : size;
            if (end <= cut) {
                assert_true(got > i);
            } else {
                assert_true(got <= i);
                break;
            }
        }
        assert_int_equal(rd.ncorrupt, 0);
        lsm_logr_release(&rd);
    }
    free(buf);
    for (size_t i = 0; i < 12; i++) {
        free(recs[i]);
    }
}

static void
test_wal_flipped_byte_is_counted_and_skipped(void **state)
{
    struct th_rng r = {seed + 2};
    unsigned char *recs[20];
    size_t lens[20];
    size_t offs[20];
    struct lsm_logr rd;
    unsigned char *buf;
    size_t size;
    const void *p;
    size_t n;
    size_t got = 0;
    uint64_t corrupt_seen_at = 0;

    (void)state;
    make_recs(&r, recs, lens, 20);
    for (size_t i = 0; i < 20; i++) {
        lens[i] = 10 + i; /* all in the first block */
        free(recs[i]);
        recs[i] = calloc(1, lens[i]);
        assert_non_null(recs[i]);
    }
    buf = log_build(recs, lens, 20, &size, offs);
    buf[offs[7] + LSM_LOG_HEADER_BYTES + 3] ^= 0x10;
    lsm_logr_init(&rd, buf, size);
    while (lsm_logr_next(&rd, &p, &n) == 0) {
        if (rd.ncorrupt > 0 && corrupt_seen_at == 0) {
            corrupt_seen_at = got + 1;
            assert_int_equal(rd.corrupt_off, offs[7]);
        }
        got++;
    }
    /* record 7 lost, the length led on to record 8 */
    assert_int_equal(got, 19);
    assert_int_equal(corrupt_seen_at, 8);
    assert_int_equal(rd.ncorrupt, 1);
    assert_false(rd.torn);
    lsm_logr_release(&rd);

    /* damage in the last record only is a torn tail, not corruption */
    buf[offs[7] + LSM_LOG_HEADER_BYTES + 3] ^= 0x10;
    buf[offs[19] + LSM_LOG_HEADER_BYTES + 1] ^= 0x01;
    lsm_logr_init(&rd, buf, size);
    got = 0;
    while (lsm_logr_next(&rd, &p, &n) == 0) {
        got++;
    }
    assert_int_equal(got, 19);
    assert_int_equal(rd.ncorrupt, 0);
    assert_true(rd.torn);
    assert_int_equal(rd.torn_off, offs[19]);
    lsm_logr_release(&rd);
    free(buf);
    for (size_t i = 0; i < 20; i++) {
        free(recs[i]);
    }
}

static void
test_wal_writer_one_pwrite_per_record(void **state)
{
    char path[4096];
    struct lsm_logw w;
    unsigned char big[100000];
    struct lsm_logr rd;
    struct stat st;
    unsigned char *buf;
    const void *p;
    size_t n;
    long before;
    int fd;

    snprintf(path, sizeof(path), "%s/w.log", (char *)*state);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    memset(big, 'b', sizeof(big));
    lsm_logw_init(&w, th_host.io, fd, 0);
    before = atomic_load(&th_io.writes);
    assert_int_equal(lsm_logw_add(&w, "hello", 5), 0);
    assert_int_equal(lsm_logw_add(&w, big, sizeof(big)), 0);
    assert_int_equal(atomic_load(&th_io.writes) - before, 2);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, w.off);

    /* a failed pwrite is reported and leaves the offset alone */
    atomic_store(&th_io.fail_errno, ENOSPC);
    atomic_store(&th_io.fail_write_at, atomic_load(&th_io.writes) + 1);
    assert_int_equal(lsm_logw_add(&w, "x", 1), KVD_ENOSPC);
    assert_int_equal((uint64_t)st.st_size, w.off);
    lsm_logw_release(&w);

    buf = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    lsm_logr_init(&rd, buf, (size_t)st.st_size);
    assert_int_equal(lsm_logr_next(&rd, &p, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    assert_int_equal(lsm_logr_next(&rd, &p, &n), 0);
    assert_int_equal(n, sizeof(big));
    assert_memory_equal(p, big, n);
    assert_int_equal(lsm_logr_next(&rd, &p, &n), KVD_ENOTFOUND);
    lsm_logr_release(&rd);
    free(buf);
    close(fd);
}

/* ---- preallocated zero tails ---- */

/* n records of random, never-zero bytes (so a cut record cannot come
 * back whole from the zeros after it) */
static void
make_nonzero_recs(struct th_rng *r, unsigned char **recs, size_t *lens,
                  size_t n)
{
    make_recs(r, recs, lens, n);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < lens[i]; j++) {
            recs[i][j] |= 1;
        }
    }
}

/* Give record i a new length of n never-zero bytes. */
static void
resize_rec(struct th_rng *r, unsigned char **recs, size_t *lens, size_t i,
           size_t n)
{
    free(recs[i]);
    recs[i] = malloc(n + 1);
    assert_non_null(recs[i]);
    lens[i] = n;
    for (size_t j = 0; j < n; j++) {
        recs[i][j] = (unsigned char)(th_next(r) >> 7) | 1;
    }
}

static void
free_recs(unsigned char **recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(recs[i]);
    }
}

static void
test_wal_zero_tail_is_the_end_not_damage(void **state)
{
    static const size_t tails[] = {
        1, 6, 7, 100, LSM_LOG_BLOCK_BYTES, 3 * LSM_LOG_BLOCK_BYTES + 5};
    struct th_rng r = {seed + 3};
    unsigned char *recs[12];
    size_t lens[12];
    unsigned char *buf;
    size_t size;

    (void)state;
    make_nonzero_recs(&r, recs, lens, 12);
    buf = log_build(recs, lens, 12, &size, NULL);
    for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
        unsigned char *z = calloc(1, size + tails[t]);
        struct lsm_logr rd;
        const void *p;
        size_t n;

        assert_non_null(z);
        memcpy(z, buf, size);
        lsm_logr_init(&rd, z, size + tails[t]);
        assert_int_equal(rd.end, size);
        for (size_t i = 0; i < 12; i++) {
            assert_int_equal(lsm_logr_next(&rd, &p, &n), 0);
            assert_int_equal(n, lens[i]);
            assert_memory_equal(p, recs[i], n);
        }
        assert_int_equal(lsm_logr_next(&rd, &p, &n), KVD_ENOTFOUND);
        assert_false(rd.torn);
        assert_int_equal(rd.ncorrupt, 0);
        assert_int_equal(rd.valid_end, size);
        lsm_logr_release(&rd);
        free(z);
    }
    free(buf);
    free_recs(recs, 12);
}

/* A crash inside preallocated space: the file keeps its size, the bytes
 * of the interrupted appends from `cut` on are still zeros. Every cut
 * gives the records wholly before it, no corruption, and a torn tail
 * exactly when part of a record survived. */
static void
test_wal_cut_at_every_offset_before_zeros(void **state)
{
    struct th_rng r = {seed + 4};
    unsigned char *recs[12];
    size_t lens[12];
    size_t offs[12];
    unsigned char *buf;
    unsigned char *z;
    size_t size;
    size_t alloc;

    (void)state;
    make_nonzero_recs(&r, recs, lens, 12);
    resize_rec(&r, recs, lens, 10, 70000); /* FIRST, MIDDLE, LAST */
    buf = log_build(recs, lens, 12, &size, offs);
    alloc = size + 2 * LSM_LOG_BLOCK_BYTES;
    z = malloc(alloc);
    assert_non_null(z);
    for (size_t cut = offs[8]; cut <= size; cut++) {
        struct lsm_logr rd;
        const void *p;
        size_t n;
        size_t got = 0;
        size_t whole = 0;
        bool part = false;

        memset(z, 0, alloc);
        memcpy(z, buf, cut);
        for (size_t i = 0; i < 12; i++) {
            size_t end = i + 1 < 12 ? offs[i + 1] : size;
            if (end <= cut) {
                whole++;
            } else {
                /* a fragment header is never all zero: anything of the
                 * record before the cut makes the tail torn */
                for (size_t b = offs[i]; b < cut && !part; b++) {
                    part = buf[b] != 0;
                }
                break;
            }
        }
        lsm_logr_init(&rd, z, alloc);
        while (lsm_logr_next(&rd, &p, &n) == 0) {
            assert_int_equal(n, lens[got]);
            assert_memory_equal(p, recs[got], n);
            got++;
        }
        if (got != whole || rd.torn != part || rd.ncorrupt != 0) {
            fail_msg("cut %zu: %zu records (want %zu), torn %d (want %d), "
                     "%llu corrupt",
                     cut, got, whole, (int)rd.torn, (int)part,
                     (unsigned long long)rd.ncorrupt);
        }
        if (part) {
            assert_true(rd.torn_off >= offs[whole]);
            assert_true(rd.torn_off < cut);
        }
        lsm_logr_release(&rd);
    }
    free(z);
    free(buf);
    free_recs(recs, 12);
}

/* Zeros that valid records follow are damage, as any other bytes: a
 * hole left by a lost write must not pass for the end of the log. */
static void
test_wal_zeros_before_a_record_are_damage(void **state)
{
    struct th_rng r = {seed + 5};
    unsigned char *recs[20];
    size_t lens[20];
    size_t offs[20];
    unsigned char *buf;
    size_t size;
    struct lsm_logr rd;
    const void *p;
    size_t n;
    size_t got = 0;
    bool last_is_19 = false;

    (void)state;
    make_nonzero_recs(&r, recs, lens, 20);
    for (size_t i = 0; i < 20; i++) {
        resize_rec(&r, recs, lens, i, 3000); /* about 11 per block */
    }
    buf = log_build(recs, lens, 20, &size, offs);
    memset(buf + offs[2], 0, offs[3] - offs[2]);
    lsm_logr_init(&rd, buf, size);
    while (lsm_logr_next(&rd, &p, &n) == 0) {
        assert_int_equal(n, 3000);
        if (got < 2) {
            assert_memory_equal(p, recs[got], n);
        }
        assert_int_equal(rd.ncorrupt, got < 2 ? 0 : 1);
        last_is_19 = memcmp(p, recs[19], n) == 0;
        got++;
    }
    /* the rest of block 0 is lost, the records of block 1 are not */
    assert_true(last_is_19);
    assert_true(got > 2 && got < 19);
    assert_int_equal(rd.ncorrupt, 1);
    assert_int_equal(rd.corrupt_off, offs[2]);
    assert_false(rd.torn);
    lsm_logr_release(&rd);
    free(buf);
    free_recs(recs, 20);
}

/* The writer's preallocation: the file is extended in whole chunks of
 * zeros ahead of the records, and reads back as just the records. */
static void
test_wal_writer_preallocates_in_chunks(void **state)
{
    char path[4096];
    struct lsm_logw w;
    unsigned char rec[1000];
    struct lsm_logr rd;
    struct stat st;
    unsigned char *buf;
    const void *p;
    size_t n;
    long before;
    int fd;
    int count = 0;

    snprintf(path, sizeof(path), "%s/p.log", (char *)*state);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    lsm_logw_init(&w, th_host.io, fd, 0);
    assert_int_equal(lsm_logw_add(&w, "head", 4), 0);
    assert_int_equal(lsm_logw_prealloc(&w, 8192), 0);
    assert_int_equal(w.alloc, 8192);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 8192);
    /* records inside the chunk: one pwrite each, the size stays */
    before = atomic_load(&th_io.writes);
    while (w.off + 1007 < 8192) {
        memset(rec, 'a' + count, sizeof(rec));
        assert_int_equal(lsm_logw_add(&w, rec, sizeof(rec)), 0);
        count++;
    }
    assert_int_equal(atomic_load(&th_io.writes) - before, count);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 8192);
    /* the record that reaches the end extends the file by a chunk */
    memset(rec, 'a' + count, sizeof(rec));
    assert_int_equal(lsm_logw_add(&w, rec, sizeof(rec)), 0);
    count++;
    assert_int_equal(w.alloc, 16384);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 16384);
    assert_true(w.off > 8192 && w.off < 16384);

    /* a failing zero fill stops preallocation; the record stands */
    while (w.off + 1007 < 16384) {
        memset(rec, 'a' + count, sizeof(rec));
        assert_int_equal(lsm_logw_add(&w, rec, sizeof(rec)), 0);
        count++;
    }
    atomic_store(&th_io.fail_errno, ENOSPC);
    atomic_store(&th_io.fail_write_at, atomic_load(&th_io.writes) + 2);
    memset(rec, 'a' + count, sizeof(rec));
    assert_int_equal(lsm_logw_add(&w, rec, sizeof(rec)), 0);
    count++;
    th_io_reset();
    assert_int_equal(w.chunk, 0);
    assert_int_equal(w.alloc, w.off);
    memset(rec, 'a' + count, sizeof(rec));
    assert_int_equal(lsm_logw_add(&w, rec, sizeof(rec)), 0);
    count++;
    assert_int_equal(w.alloc, w.off);
    lsm_logw_release(&w);

    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, w.off);
    buf = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    lsm_logr_init(&rd, buf, (size_t)st.st_size);
    assert_int_equal(lsm_logr_next(&rd, &p, &n), 0);
    assert_int_equal(n, 4);
    for (int i = 0; i < count; i++) {
        assert_int_equal(lsm_logr_next(&rd, &p, &n), 0);
        assert_int_equal(n, sizeof(rec));
        assert_int_equal(((const unsigned char *)p)[0], 'a' + i);
        assert_int_equal(((const unsigned char *)p)[n - 1], 'a' + i);
    }
    assert_int_equal(lsm_logr_next(&rd, &p, &n), KVD_ENOTFOUND);
    assert_false(rd.torn);
    assert_int_equal(rd.ncorrupt, 0);
    lsm_logr_release(&rd);
    free(buf);
    close(fd);
}

/* ---- memtable ---- */

static void
test_mem_get_respects_snapshot_and_order(void **state)
{
    lsm_mem *m;
    struct lsm_mhit h;
    lsm_it *it;
    int64_t exp = 123456789;
    int n = 0;

    (void)state;
    assert_int_equal(lsm_mem_create(7, &m), 0);
    assert_int_equal(lsm_mem_wal(m), 7);
    assert_int_equal(lsm_mem_add(m, 10, LSM_T_PUT, "b", 1, 0, "v10", 3), 0);
    assert_int_equal(lsm_mem_add(m, 11, LSM_T_PUT, "a", 1, 0, "a11", 3), 0);
    assert_int_equal(lsm_mem_add(m, 12, LSM_T_DEL, "b", 1, 0, NULL, 0), 0);
    assert_int_equal(lsm_mem_add(m, 13, LSM_T_PUTX, "b", 1, exp, "x", 1), 0);
    assert_int_equal(lsm_mem_add(m, 14, LSM_T_PUT, "b\0", 2, 0, "", 0), 0);

    assert_int_equal(lsm_mem_get(m, "b", 1, 9, &h), KVD_ENOTFOUND);
    assert_int_equal(lsm_mem_get(m, "b", 1, 10, &h), 0);
    assert_int_equal(h.type, LSM_T_PUT);
    assert_int_equal(h.seq, 10);
    assert_memory_equal(h.val.p, "v10", 3);
    assert_int_equal(lsm_mem_get(m, "b", 1, 12, &h), 0);
    assert_int_equal(h.type, LSM_T_DEL);
    assert_int_equal(lsm_mem_get(m, "b", 1, LSM_SEQ_MAX, &h), 0);
    assert_int_equal(h.type, LSM_T_PUTX);
    assert_int_equal(h.val.n, 9);
    assert_int_equal((int64_t)kvd_get_le64(h.val.p), exp);
    assert_int_equal(lsm_mem_get(m, "c", 1, LSM_SEQ_MAX, &h), KVD_ENOTFOUND);
    assert_int_equal(lsm_mem_get(m, "b\0", 2, 14, &h), 0);
    assert_int_equal(h.val.n, 0);
    assert_int_equal(lsm_mem_entries(m), 5);
    assert_int_equal(lsm_mem_last_seq(m), 14);

    /* internal-key order: a, then b newest first, then "b\0" */
    {
        static const struct {
            const char *k;
            size_t n;
            uint64_t seq;
        } want[] = {{"a", 1, 11},
                    {"b", 1, 13},
                    {"b", 1, 12},
                    {"b", 1, 10},
                    {"b\0", 2, 14}};
        assert_int_equal(lsm_mem_iter(m, &it), 0);
        lsm_mem_unref(m); /* the iterator keeps it alive */
        for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
            struct lsm_slice k = it->ops->key(it);
            struct lsm_slice u = lsm_ikey_user(k);
            assert_true(n < 5);
            assert_int_equal(u.n, want[n].n);
            assert_memory_equal(u.p, want[n].k, u.n);
            assert_int_equal(lsm_ikey_trailer(k) >> 8, want[n].seq);
            n++;
        }
        assert_int_equal(n, 5);
    }
    {
        unsigned char t[9];
        memcpy(t, "b", 1);
        kvd_put_le64(t + 1, lsm_pack_trailer(11, LSM_T_SEEK));
        it->ops->seek(it, (struct lsm_slice){t, 9});
        assert_true(it->ops->valid(it));
        assert_int_equal(lsm_ikey_trailer(it->ops->key(it)) >> 8, 10);
    }
    assert_int_equal(it->ops->status(it), 0);
    it->ops->destroy(it);
}

struct mem_race {
    lsm_mem *m;
    _Atomic uint64_t published; /* inserts 1..published are in */
    _Atomic int stop;
    _Atomic int bad;
};

#define MEM_RACE_KEYS 20000

static void
race_key(uint64_t j, char *key)
{
    /* insert j gets this key: a scrambled order, so inserts land all over
     * the list */
    snprintf(key, 16, "k%08llu",
             (unsigned long long)((j * 7919) % MEM_RACE_KEYS + 1));
}

/* Readers: every key inserted before `published` is found with its own
 * value, and iteration sees strictly increasing whole entries. */
static void *
mem_reader(void *arg)
{
    struct mem_race *mr = arg;
    uint64_t x = 1;
    char key[16];

    while (!atomic_load(&mr->stop)) {
        uint64_t pub = atomic_load(&mr->published);
        struct lsm_mhit h;
        lsm_it *it;
        if (pub > 0) {
            x = th_mix(x);
            race_key(x % pub + 1, key);
            if (lsm_mem_get(mr->m, key, 9, LSM_SEQ_MAX, &h) != 0 ||
                h.val.n != 9 || memcmp(h.val.p, key, 9) != 0) {
                atomic_fetch_add(&mr->bad, 1);
            }
        }
        if (lsm_mem_iter(mr->m, &it) == 0) {
            char last[16] = "";
            for (it->ops->seek_first(it); it->ops->valid(it);
                 it->ops->next(it)) {
                struct lsm_slice u = lsm_ikey_user(it->ops->key(it));
                struct lsm_slice v = it->ops->value(it);
                if (u.n != 9 || memcmp(last, u.p, 9) >= 0 || v.n != 9 ||
                    memcmp(v.p, u.p, 9) != 0) {
                    atomic_fetch_add(&mr->bad, 1);
                    break;
                }
                memcpy(last, u.p, 9);
            }
            it->ops->destroy(it);
        }
    }
    return NULL;
}

static void
test_mem_concurrent_readers_see_whole_entries(void **state)
{
    struct mem_race mr;
    pthread_t th[2];
    char key[16];

    (void)state;
    memset(&mr, 0, sizeof(mr));
    assert_int_equal(lsm_mem_create(1, &mr.m), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, mem_reader, &mr), 0);
    }
    for (uint64_t i = 1; i <= MEM_RACE_KEYS; i++) {
        race_key(i, key);
        assert_int_equal(lsm_mem_add(mr.m, i, LSM_T_PUT, key, 9, 0, key, 9), 0);
        atomic_store(&mr.published, i);
    }
    usleep(20000);
    atomic_store(&mr.stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(atomic_load(&mr.bad), 0);
    assert_int_equal(lsm_mem_entries(mr.m), MEM_RACE_KEYS);
    lsm_mem_unref(mr.m);
}

/* ---- edits and versions ---- */

static struct lsm_slice
ik(const char *user, uint64_t seq, unsigned char *buf)
{
    size_t n = strlen(user);
    memcpy(buf, user, n);
    kvd_put_le64(buf + n, lsm_pack_trailer(seq, LSM_T_PUT));
    return (struct lsm_slice){buf, n + 8};
}

static void
test_edit_roundtrip_and_damage_is_refused(void **state)
{
    unsigned char a[32];
    unsigned char b[32];
    struct lsm_edit e;
    struct lsm_edit d;
    unsigned char *enc;
    size_t n;

    (void)state;
    lsm_edit_init(&e);
    lsm_edit_set_log_number(&e, 17);
    lsm_edit_set_next_file(&e, 99);
    lsm_edit_set_last_seq(&e, (1ull << 40) + 5);
    assert_int_equal(lsm_edit_del_file(&e, 3, 12), 0);
    assert_int_equal(lsm_edit_add_file(&e, 1, 42, 4096, 77, ik("apple", 3, a),
                                       ik("pear", 9, b)),
                     0);
    assert_int_equal(lsm_edit_encode(&e, &enc, &n), 0);
    lsm_edit_init(&d);
    assert_int_equal(lsm_edit_decode(&d, enc, n), 0);
    assert_int_equal(d.has, LSM_EDIT_HAS_LOG_NUMBER | LSM_EDIT_HAS_NEXT_FILE |
                                LSM_EDIT_HAS_LAST_SEQ);
    assert_int_equal(d.log_number, 17);
    assert_int_equal(d.next_file, 99);
    assert_int_equal(d.last_seq, (1ull << 40) + 5);
    assert_int_equal(d.ndels, 1);
    assert_int_equal(d.dels[0].level, 3);
    assert_int_equal(d.dels[0].number, 12);
    assert_int_equal(d.nadds, 1);
    assert_int_equal(d.adds[0].level, 1);
    assert_int_equal(d.adds[0].number, 42);
    assert_int_equal(d.adds[0].size, 4096);
    assert_int_equal(d.adds[0].entries, 77);
    assert_int_equal(d.adds[0].smallest.n, 13);
    assert_memory_equal(d.adds[0].smallest.p, a, 13);
    assert_memory_equal(d.adds[0].largest.p, b, 12);
    lsm_edit_release(&d);

    /* every truncation either decodes to fewer fields or is refused */
    for (size_t cut = 0; cut < n; cut++) {
        lsm_edit_init(&d);
        int rc = lsm_edit_decode(&d, enc, cut);
        assert_true(rc == 0 || rc == KVD_ECORRUPT);
        if (rc == 0) {
            assert_true(d.nadds == 0);
        }
        lsm_edit_release(&d);
    }
    /* an unknown tag and a level out of range are refused */
    lsm_edit_init(&d);
    assert_int_equal(lsm_edit_decode(&d, "\x09\x01", 2), KVD_ECORRUPT);
    lsm_edit_release(&d);
    lsm_edit_init(&d);
    assert_int_equal(lsm_edit_decode(&d, "\x04\x07\x01", 3), KVD_ECORRUPT);
    lsm_edit_release(&d);
    free(enc);
    lsm_edit_release(&e);
}

static int gone_calls;
static uint64_t gone_number;

static void
on_gone(void *ctx, struct lsm_file *f)
{
    (void)ctx;
    gone_calls++;
    gone_number = f->number;
}

static void
test_version_apply_checks_and_moves(void **state)
{
    struct lsm_vconf conf = {4, 1 << 20, on_gone, NULL, NULL};
    unsigned char a[32];
    unsigned char b[32];
    lsm_version *v0;
    lsm_version *v1;
    lsm_version *v2;
    lsm_version *bad;
    struct lsm_edit e;

    (void)state;
    gone_calls = 0;
    assert_int_equal(lsm_version_create(&conf, &v0), 0);
    lsm_edit_init(&e);
    assert_int_equal(
        lsm_edit_add_file(&e, 1, 5, 100, 1, ik("a", 1, a), ik("f", 1, b)), 0);
    assert_int_equal(
        lsm_edit_add_file(&e, 1, 6, 100, 1, ik("g", 1, a), ik("k", 1, b)), 0);
    assert_int_equal(
        lsm_edit_add_file(&e, 0, 7, 100, 1, ik("c", 2, a), ik("h", 2, b)), 0);
    assert_int_equal(
        lsm_edit_add_file(&e, 0, 8, 100, 1, ik("x", 3, a), ik("z", 3, b)), 0);
    assert_int_equal(lsm_version_apply(v0, &e, &v1), 0);
    lsm_edit_release(&e);
    assert_int_equal(v1->nfiles[0], 2);
    assert_int_equal(v1->files[0][0]->number, 8); /* newest first */
    assert_int_equal(v1->nfiles[1], 2);
    assert_int_equal(v1->level_bytes[1], 200);
    assert_int_equal(lsm_version_find(v1, 1, "h", 1), 1);
    assert_int_equal(lsm_version_find(v1, 1, "f", 1), 0);
    assert_int_equal(lsm_version_find(v1, 1, "fz", 2), -1);
    assert_int_equal(lsm_version_find(v1, 1, "l", 1), -1);
    assert_true(lsm_version_overlaps(v1, 1, &(struct lsm_slice){"fa", 2},
                                     &(struct lsm_slice){"gb", 2}));
    assert_false(lsm_version_overlaps(v1, 1, &(struct lsm_slice){"fa", 2},
                                      &(struct lsm_slice){"fb", 2}));

    /* overlapping files in a level >= 1 are refused */
    lsm_edit_init(&e);
    assert_int_equal(
        lsm_edit_add_file(&e, 1, 9, 1, 1, ik("e", 1, a), ik("h", 1, b)), 0);
    assert_int_equal(lsm_version_apply(v1, &e, &bad), KVD_ECORRUPT);
    lsm_edit_release(&e);
    /* deleting a file that is not there is refused */
    lsm_edit_init(&e);
    assert_int_equal(lsm_edit_del_file(&e, 2, 5), 0);
    assert_int_equal(lsm_version_apply(v1, &e, &bad), KVD_ECORRUPT);
    lsm_edit_release(&e);

    /* a move keeps the file object; a drop makes it obsolete */
    lsm_edit_init(&e);
    assert_int_equal(lsm_edit_del_file(&e, 1, 6), 0);
    assert_int_equal(
        lsm_edit_add_file(&e, 2, 6, 100, 1, ik("g", 1, a), ik("k", 1, b)), 0);
    assert_int_equal(lsm_edit_del_file(&e, 0, 7), 0);
    assert_int_equal(lsm_version_apply(v1, &e, &v2), 0);
    lsm_version_mark_obsolete(v1, &e);
    lsm_edit_release(&e);
    assert_ptr_equal(v2->files[2][0], v1->files[1][1]);
    assert_int_equal(v2->nfiles[0], 1);
    lsm_version_unref(v0);
    lsm_version_unref(v1);
    assert_int_equal(gone_calls, 1);
    assert_int_equal(gone_number, 7);
    lsm_version_unref(v2);
    assert_int_equal(gone_calls, 1); /* live files are not "gone" */
}

static void
test_version_l0_overlap_takes_every_overlapping_table(void **state)
{
    struct lsm_vconf conf = {4, 1 << 20, NULL, NULL, NULL};
    unsigned char a[32];
    unsigned char b[32];
    lsm_version *v0;
    lsm_version *v1;
    struct lsm_edit e;
    struct lsm_file **out = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(lsm_version_create(&conf, &v0), 0);
    lsm_edit_init(&e);
    /* b-d overlaps c-f overlaps e-g; x-y stands alone */
    assert_int_equal(
        lsm_edit_add_file(&e, 0, 1, 1, 1, ik("b", 1, a), ik("d", 1, b)), 0);
    assert_int_equal(
        lsm_edit_add_file(&e, 0, 2, 1, 1, ik("c", 2, a), ik("f", 2, b)), 0);
    assert_int_equal(
        lsm_edit_add_file(&e, 0, 3, 1, 1, ik("e", 3, a), ik("g", 3, b)), 0);
    assert_int_equal(
        lsm_edit_add_file(&e, 0, 4, 1, 1, ik("x", 4, a), ik("y", 4, b)), 0);
    assert_int_equal(lsm_version_apply(v0, &e, &v1), 0);
    lsm_edit_release(&e);
    assert_int_equal(lsm_version_overlapping(v1, 0, &(struct lsm_slice){"a", 1},
                                             &(struct lsm_slice){"b", 1}, &out,
                                             &n),
                     0);
    assert_int_equal(n, 3);
    n = 0;
    assert_int_equal(lsm_version_overlapping(v1, 0, &(struct lsm_slice){"x", 1},
                                             &(struct lsm_slice){"x", 1}, &out,
                                             &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0]->number, 4);
    free(out);
    assert_true(v1->cscore >= 1.0);
    assert_int_equal(v1->cscore_level, 0);
    lsm_version_unref(v0);
    lsm_version_unref(v1);
}

/* ---- through the plugin ---- */

static int
count_files(const char *dir, const char *prefix, const char *suffix, char *last,
            size_t lastlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (last != NULL) {
        last[0] = '\0';
    }
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        size_t sl = strlen(suffix);
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 && l >= sl &&
            strcmp(de->d_name + l - sl, suffix) == 0) {
            n++;
            if (last != NULL && strcmp(de->d_name + 0, last) > 0) {
                snprintf(last, lastlen, "%s", de->d_name);
            }
        }
    }
    closedir(d);
    return n;
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

static void
test_manifest_new_on_each_open_old_removed(void **state)
{
    const char *dir = *state;
    struct lsm_opts o;
    char cur[64];
    char path[4096];
    char m1[256];
    char m2[256];
    kvd_engine *e;
    FILE *f;

    lt_opts_default(&o);
    o.auto_compact = 0;
    e = th_engine_open(vt, dir, &o);
    put_str(e, "k", "v1");
    th_engine_close(vt, e);
    assert_int_equal(count_files(dir, "MANIFEST-", "", m1, sizeof(m1)), 1);
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(cur, sizeof(cur), f));
    fclose(f);
    assert_string_equal(cur, strcat(strcpy(path, m1), "\n"));

    e = th_engine_open(vt, dir, &o);
    assert_int_equal(get_str(e, "k", "v1"), 0);
    th_engine_close(vt, e);
    assert_int_equal(count_files(dir, "MANIFEST-", "", m2, sizeof(m2)), 1);
    assert_string_not_equal(m1, m2);
    /* the WAL was replayed into a table and removed; one fresh WAL */
    assert_int_equal(count_files(dir, "", ".log", NULL, 0), 1);
    assert_int_equal(count_files(dir, "", ".sst", NULL, 0), 1);
    assert_int_equal(count_files(dir, "", ".tmp", NULL, 0), 0);
}

static void
test_manifest_damage_refuses_to_open(void **state)
{
    const char *dir = *state;
    struct lsm_opts o;
    struct kvd_err err;
    char path[4096];
    char man[256];
    char sst[256];
    kvd_engine *e = NULL;
    FILE *f;

    lt_opts_default(&o);
    e = th_engine_open(vt, dir, &o);
    put_str(e, "k", "v");
    th_engine_close(vt, e);
    e = th_engine_open(vt, dir, &o); /* the WAL becomes a table */
    th_engine_close(vt, e);

    /* a torn last MANIFEST record is cut, the store opens */
    assert_int_equal(count_files(dir, "MANIFEST-", "", man, sizeof(man)), 1);
    snprintf(path, sizeof(path), "%s/%s", dir, man);
    f = fopen(path, "a");
    fwrite("\x01\x02\x03\x04\x40\x00\x01", 1, 7, f);
    fclose(f);
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(get_str(e, "k", "v"), 0);
    th_engine_close(vt, e);

    /* a CURRENT that names nothing */
    assert_int_equal(count_files(dir, "MANIFEST-", "", man, sizeof(man)), 1);
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    f = fopen(path, "w");
    fputs("MANIFEST-999999\n", f);
    fclose(f);
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "MANIFEST-999999"));
    f = fopen(path, "w");
    fprintf(f, "%s\n", man);
    fclose(f);
    e = th_engine_open(vt, dir, &o);
    th_engine_close(vt, e);

    /* a table the MANIFEST lists is missing */
    assert_int_equal(count_files(dir, "", ".sst", sst, sizeof(sst)), 1);
    snprintf(path, sizeof(path), "%s/%s", dir, sst);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "missing"));

    /* no CURRENT but a MANIFEST: not silently a new empty store */
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    unlink(path);
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "no CURRENT"));
}

/* A first open killed between its MANIFEST and CURRENT leaves one
 * MANIFEST of no tables: the next open starts the store, and replays
 * whatever WALs are there (here: writes of a store that lost CURRENT
 * before its first flush). */
static void
test_manifest_without_current_and_tables_is_a_new_store(void **state)
{
    const char *dir = *state;
    struct lsm_opts o;
    char path[4096];
    kvd_engine *e;

    lt_opts_default(&o);
    o.corruption = LSM_CORRUPT_PARANOID;
    e = th_engine_open(vt, dir, &o);
    put_str(e, "a", "1");
    put_str(e, "b", "2");
    th_engine_close(vt, e);
    assert_int_equal(count_files(dir, "MANIFEST-", "", NULL, 0), 1);
    assert_int_equal(count_files(dir, "", ".sst", NULL, 0), 0);
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    assert_int_equal(unlink(path), 0);
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(get_str(e, "a", "1"), 0);
    assert_int_equal(get_str(e, "b", "2"), 0);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    th_engine_close(vt, e);
    /* and it has a CURRENT again, naming the one MANIFEST left */
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(count_files(dir, "MANIFEST-", "", NULL, 0), 1);
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(get_str(e, "b", "2"), 0);
    th_engine_close(vt, e);
}

static void
test_second_open_is_locked(void **state)
{
    struct lsm_opts o;
    struct kvd_err err;
    kvd_engine *e;
    kvd_engine *e2 = NULL;

    lt_opts_default(&o);
    e = th_engine_open(vt, *state, &o);
    assert_int_equal(vt->open(&th_host, &o, *state, &e2, &err), KVD_ELOCKED);
    assert_non_null(strstr(err.msg, "in use"));
    th_engine_close(vt, e);
    e = th_engine_open(vt, *state, &o);
    th_engine_close(vt, e);
}

/* Random puts/deletes/overwrites with tiny memtables and no automatic
 * compaction: the data ends up in the memtable and many L0 tables that
 * overlap; then every kind of iteration must match the model, before and
 * after a full compaction, and after a reopen. */
static void
test_iter_memtable_and_tables_match_model(void **state)
{
    const char *dir = *state;
    struct th_rng r = {seed + 3};
    struct lt_model m = {0};
    struct lsm_opts o;
    struct kvd_err err;
    kvd_engine *e;
    char k[32];
    char v[256];
    int64_t now = th_host.now_ms(&th_host);

    lt_opts_tiny(&o);
    o.auto_compact = 0;
    e = th_engine_open(vt, dir, &o);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1500; i++) {
            int kn = snprintf(k, sizeof(k), "key%04d", (int)th_below(&r, 800));
            uint64_t what = th_below(&r, 10);
            if (what < 7) {
                size_t vn = th_below(&r, 200);
                for (size_t j = 0; j < vn; j++) {
                    v[j] = (char)('a' + th_below(&r, 26));
                }
                assert_int_equal(vt->put(e, k, (size_t)kn, v, vn, 0), 0);
                lt_put(&m, k, (size_t)kn, v, vn, 0);
            } else {
                int rc = vt->del(e, k, (size_t)kn);
                assert_int_equal(rc,
                                 lt_del(&m, k, (size_t)kn) ? 0 : KVD_ENOTFOUND);
            }
        }
        if (th_stat(vt, e, "l0_tables") < 3) {
            fail_msg("expected several L0 tables, have %llu",
                     (unsigned long long)th_stat(vt, e, "l0_tables"));
        }
        assert_int_equal(lt_check_get(vt, e, &m, now, "get"), 0);
        assert_int_equal(
            lt_check_iter(vt, e, &m, now, NULL, 0, NULL, 0, "full"), 0);
        assert_int_equal(
            lt_check_iter(vt, e, &m, now, "key04", 5, NULL, 0, "from key04"),
            0);
        assert_int_equal(
            lt_check_iter(vt, e, &m, now, "key0450x", 8, NULL, 0, "start"), 0);
        assert_int_equal(
            lt_check_iter(vt, e, &m, now, NULL, 0, "key01", 5, "prefix"), 0);
        assert_int_equal(lt_check_iter(vt, e, &m, now, "key015", 6, "key01", 5,
                                       "start in prefix"),
                         0);
        assert_int_equal(
            lt_check_iter(vt, e, &m, now, NULL, 0, "kez", 3, "no prefix"), 0);
    }
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    assert_int_equal(th_stat(vt, e, "l0_tables"), 0);
    /* manifest_size = 4k: the MANIFEST was rewritten on the way */
    assert_true(th_stat(vt, e, "manifest_rolls_total") > 0);
    assert_int_equal(count_files(dir, "MANIFEST-", "", NULL, 0), 1);
    assert_int_equal(
        lt_check_iter(vt, e, &m, now, NULL, 0, NULL, 0, "after compaction"), 0);
    assert_int_equal(lt_check_get(vt, e, &m, now, "get after compaction"), 0);
    th_engine_close(vt, e);
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(
        lt_check_iter(vt, e, &m, now, NULL, 0, NULL, 0, "after reopen"), 0);
    {
        struct kvd_engine_stats st;
        th_stats(vt, e, &st);
        assert_int_equal(st.keys, lt_live_count(&m, now));
    }
    th_engine_close(vt, e);
    lt_model_free(&m);
}

static void
test_snapshot_iterator_ignores_later_writes_and_compaction(void **state)
{
    struct lsm_opts o;
    struct kvd_iter_opts io;
    struct kvd_err err;
    struct kvd_entry ent;
    kvd_iter *it;
    kvd_engine *e;
    char k[16];
    int n = 0;
    int rc;

    lt_opts_tiny(&o);
    e = th_engine_open(vt, *state, &o);
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof(k), "s%04d", i);
        put_str(e, k, "old");
    }
    memset(&io, 0, sizeof(io));
    assert_int_equal(vt->iter_open(e, &io, &it, &err), 0);
    assert_int_equal(vt->iter_next(it, &ent), 0); /* s0000 read already */
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof(k), "s%04d", i);
        if (i % 2) {
            assert_int_equal(vt->del(e, k, strlen(k)), 0);
        } else {
            put_str(e, k, "new-value");
        }
    }
    put_str(e, "s9999", "added");
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    n = 1;
    while ((rc = vt->iter_next(it, &ent)) == 0) {
        snprintf(k, sizeof(k), "s%04d", n);
        assert_int_equal(ent.klen, 5);
        assert_memory_equal(ent.key, k, 5);
        assert_int_equal(ent.vlen, 3);
        assert_memory_equal(ent.val, "old", 3);
        n++;
    }
    assert_int_equal(rc, KVD_ENOTFOUND);
    assert_int_equal(n, 500);
    vt->iter_close(it);
    /* a new iterator sees the new state */
    assert_int_equal(get_str(e, "s0001", "old"), KVD_ENOTFOUND);
    assert_int_equal(get_str(e, "s0002", "new-value"), 0);
    th_engine_close(vt, e);
}

static void
test_del_and_expiry_through_tables(void **state)
{
    struct lsm_opts o;
    struct kvd_err err;
    struct kvd_engine_stats st;
    kvd_engine *e;
    int64_t t0 = 1700000000000;

    th_clock_set(t0);
    lt_opts_default(&o);
    o.auto_compact = 0;
    e = th_engine_open(vt, *state, &o);
    put_str(e, "live", "1");
    assert_int_equal(vt->put(e, "exp", 3, "2", 1, t0 + 1000), 0);
    put_str(e, "gone", "3");
    assert_int_equal(vt->del(e, "gone", 4), 0);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    /* now in a table: del still tells live from absent */
    assert_int_equal(vt->del(e, "gone", 4), KVD_ENOTFOUND);
    assert_int_equal(vt->del(e, "never", 5), KVD_ENOTFOUND);
    th_clock_set(t0 + 1000);
    assert_int_equal(vt->del(e, "exp", 3), KVD_ENOTFOUND);
    th_stats(vt, e, &st);
    assert_int_equal(st.keys, 1);
    /* the expired value goes for good at the next compaction */
    assert_int_equal(vt->maintain(e, KVD_MAINT_EXPIRE, &err), 0);
    assert_true(th_stat(vt, e, "dropped_expired_total") >= 1);
    th_clock_set(t0);
    assert_int_equal(get_str(e, "exp", "2"), KVD_ENOTFOUND);
    assert_int_equal(vt->del(e, "live", 4), 0);
    assert_int_equal(vt->del(e, "live", 4), KVD_ENOTFOUND);
    th_engine_close(vt, e);
}

static void
test_stats_estimate_above_scan_limit(void **state)
{
    struct lsm_opts o;
    struct kvd_engine_stats st;
    kvd_engine *e;
    char k[16];

    lt_opts_default(&o);
    o.stats_scan_limit = 100;
    e = th_engine_open(vt, *state, &o);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof(k), "e%04d", i);
        put_str(e, k, "0123456789");
    }
    th_stats(vt, e, &st);
    assert_int_equal(th_stat(vt, e, "stats_exact"), 0);
    assert_int_equal(st.keys, 300); /* entries: no overwrites here */
    assert_int_equal(st.key_bytes, 300 * 5);
    assert_int_equal(st.value_bytes, 300 * 10);
    th_engine_close(vt, e);
}

/* ---- WAL recovery through the plugin ---- */

struct walrec {
    size_t n;
    uint64_t off[256];
    uint64_t end[256];
};

/* Record offsets of a WAL file (record 0 is the file header). */
static void
wal_records(const char *path, struct walrec *w, size_t *size)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    unsigned char *buf;
    struct lsm_logr r;
    const void *p;
    size_t n;

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    lsm_logr_init(&r, buf, (size_t)st.st_size);
    w->n = 0;
    while (lsm_logr_next(&r, &p, &n) == 0 && w->n < 256) {
        w->off[w->n] = r.rec_off;
        w->end[w->n] = r.valid_end;
        w->n++;
    }
    lsm_logr_release(&r);
    free(buf);
    *size = (size_t)st.st_size;
}

/* 40 puts left in the WAL of a closed store; returns the WAL path. With
 * sync = always the memtable is 64 KiB (the WAL is preallocated in 16 KiB
 * chunks). */
static void
wal_fixture(const char *dir, int sync, char *wal, size_t wlen)
{
    struct lsm_opts o;
    kvd_engine *e;
    char k[16];
    char v[64];
    char name[256];

    lt_opts_default(&o);
    o.sync = sync;
    if (sync == LSM_SYNC_ALWAYS) {
        o.memtable_size = 64u << 10;
    }
    e = th_engine_open(vt, dir, &o);
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "w%02d", i);
        snprintf(v, sizeof(v), "value-%02d-%.*s", i, i,
                 "xxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxx");
        put_str(e, k, v);
    }
    th_engine_close(vt, e);
    assert_int_equal(count_files(dir, "", ".log", name, sizeof(name)), 1);
    snprintf(wal, wlen, "%s/%s", dir, name);
}

static int
present_keys(kvd_engine *e, int *first_missing)
{
    char k[16];
    char v[64];
    int n = 0;

    *first_missing = -1;
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "w%02d", i);
        snprintf(v, sizeof(v), "value-%02d-%.*s", i, i,
                 "xxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxx");
        if (get_str(e, k, v) == 0) {
            n++;
        } else if (*first_missing < 0) {
            *first_missing = i;
        }
    }
    return n;
}

static void
test_wal_torn_tail_at_every_offset_loses_only_it(void **state)
{
    const char *dir = *state;
    char base[4096];
    char wal[4096];
    struct walrec w;
    size_t size;
    struct lsm_opts o;

    snprintf(base, sizeof(base), "%s/base", dir);
    mkdir(base, 0755);
    wal_fixture(base, LSM_SYNC_NEVER, wal, sizeof(wal));
    wal_records(wal, &w, &size);
    assert_int_equal(w.n, 41);
    lt_opts_default(&o);
    o.corruption = LSM_CORRUPT_PARANOID; /* a torn tail is not damage */
    for (uint64_t cut = w.off[38]; cut < size; cut++) {
        char copy[2048];
        char cwal[4096];
        kvd_engine *e;
        int missing;
        int want = 0;

        snprintf(copy, sizeof(copy), "%s/c%llu", dir, (unsigned long long)cut);
        mkdir(copy, 0755);
        assert_int_equal(th_copy_dir(base, copy), 0);
        snprintf(cwal, sizeof(cwal), "%s/%s", copy, strrchr(wal, '/') + 1);
        assert_int_equal(truncate(cwal, (off_t)cut), 0);
        for (size_t i = 1; i < w.n; i++) {
            want += w.end[i] <= cut;
        }
        e = th_engine_open(vt, copy, &o);
        assert_int_equal(present_keys(e, &missing), want);
        if (want < 40) {
            assert_int_equal(missing, want);
        }
        assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
        th_engine_close(vt, e);
        th_rmrf(copy);
    }
    th_rmrf(base);
}

static void
test_wal_damage_follows_the_corruption_policy(void **state)
{
    const char *dir = *state;
    static const int policies[] = {LSM_CORRUPT_STOP, LSM_CORRUPT_SKIP,
                                   LSM_CORRUPT_PARANOID};
    char base[4096];
    char wal[4096];
    struct walrec w;
    size_t size;

    snprintf(base, sizeof(base), "%s/base", dir);
    mkdir(base, 0755);
    wal_fixture(base, LSM_SYNC_NEVER, wal, sizeof(wal));
    wal_records(wal, &w, &size);
    for (int p = 0; p < 3; p++) {
        char copy[2048];
        char cwal[4096];
        struct lsm_opts o;
        struct kvd_err err;
        kvd_engine *e = NULL;
        int missing;
        int fd;
        unsigned char b;
        int rc;

        snprintf(copy, sizeof(copy), "%s/p%d", dir, p);
        mkdir(copy, 0755);
        assert_int_equal(th_copy_dir(base, copy), 0);
        snprintf(cwal, sizeof(cwal), "%s/%s", copy, strrchr(wal, '/') + 1);
        /* flip a byte inside record 21 (key w20) */
        fd = open(cwal, O_RDWR);
        assert_int_equal(pread(fd, &b, 1, (off_t)w.off[21] + 12), 1);
        b ^= 0x40;
        assert_int_equal(pwrite(fd, &b, 1, (off_t)w.off[21] + 12), 1);
        close(fd);
        lt_opts_default(&o);
        o.corruption = policies[p];
        th_log_clear();
        rc = vt->open(&th_host, &o, copy, &e, &err);
        if (policies[p] == LSM_CORRUPT_PARANOID) {
            assert_int_equal(rc, KVD_ECORRUPT);
            assert_non_null(strstr(err.msg, "paranoid"));
            th_rmrf(copy);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 1);
        if (policies[p] == LSM_CORRUPT_STOP) {
            /* a prefix: everything before w20, nothing after */
            assert_int_equal(present_keys(e, &missing), 20);
            assert_int_equal(missing, 20);
            assert_true(th_log_contains("corruption = stop"));
        } else {
            assert_int_equal(present_keys(e, &missing), 39);
            assert_int_equal(missing, 20);
            assert_true(th_log_contains("corruption = skip"));
        }
        th_engine_close(vt, e);
        /* the recovered state is durable: no second damage report */
        e = th_engine_open(vt, copy, &o);
        assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
        assert_int_equal(present_keys(e, &missing),
                         policies[p] == LSM_CORRUPT_STOP ? 20 : 39);
        th_engine_close(vt, e);
        th_rmrf(copy);
    }
    th_rmrf(base);
}

/* Bytes of file `path` from `from` on are all zero. */
static bool
zero_from(const char *path, uint64_t from)
{
    FILE *f = fopen(path, "rb");
    bool zero = true;
    int c;

    assert_non_null(f);
    assert_int_equal(fseeko(f, (off_t)from, SEEK_SET), 0);
    while ((c = fgetc(f)) != EOF) {
        zero = zero && c == 0;
    }
    fclose(f);
    return zero;
}

/* With sync = always the WAL ends in preallocated zeros: a reopen reads
 * every record, reports no damage and no torn tail, and the next WAL is
 * preallocated again. */
static void
test_wal_preallocated_reopen_loses_nothing(void **state)
{
    const char *dir = *state;
    char wal[4096];
    char name[256];
    struct walrec w;
    struct lsm_opts o;
    size_t size;
    kvd_engine *e;
    int missing;

    wal_fixture(dir, LSM_SYNC_ALWAYS, wal, sizeof(wal));
    wal_records(wal, &w, &size);
    assert_int_equal(w.n, 41);
    /* memtable 64 KiB: chunks of 16 KiB, the 40 records fill one */
    assert_int_equal(size, 16384);
    assert_true(w.end[40] < size);
    assert_true(zero_from(wal, w.end[40]));

    lt_opts_default(&o);
    o.sync = LSM_SYNC_ALWAYS;
    o.memtable_size = 64u << 10;
    o.corruption = LSM_CORRUPT_PARANOID;
    th_log_clear();
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(present_keys(e, &missing), 40);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 0);
    assert_int_equal(th_stat(vt, e, "recovery_records"), 40);
    assert_false(th_log_contains("torn"));
    put_str(e, "after", "reopen");
    th_engine_close(vt, e);
    assert_int_equal(count_files(dir, "", ".log", name, sizeof(name)), 1);
    snprintf(wal, sizeof(wal), "%s/%s", dir, name);
    wal_records(wal, &w, &size);
    assert_int_equal(w.n, 2); /* header, "after" */
    assert_int_equal(size, 16384);

    e = th_engine_open(vt, dir, &o);
    assert_int_equal(present_keys(e, &missing), 40);
    assert_int_equal(get_str(e, "after", "reopen"), 0);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 0);
    th_engine_close(vt, e);

    /* everysec does not preallocate: the file ends with its records */
    o.sync = LSM_SYNC_EVERYSEC;
    e = th_engine_open(vt, dir, &o);
    put_str(e, "every", "sec");
    th_engine_close(vt, e);
    assert_int_equal(count_files(dir, "", ".log", name, sizeof(name)), 1);
    snprintf(wal, sizeof(wal), "%s/%s", dir, name);
    wal_records(wal, &w, &size);
    assert_int_equal(w.n, 2);
    assert_int_equal(size, w.end[1]);
}

/* A crash inside the preallocated space keeps the file's size: the
 * interrupted appends are zeros from some byte on. For every such byte
 * in the last three records, the reopen keeps the records wholly before
 * it, reports no damage, and cuts a torn tail only inside a record. */
static void
test_wal_preallocated_cut_at_every_offset_loses_only_it(void **state)
{
    const char *dir = *state;
    char base[4096];
    char wal[4096];
    struct walrec w;
    size_t size;
    struct lsm_opts o;
    static const unsigned char zeros[4096];

    snprintf(base, sizeof(base), "%s/base", dir);
    mkdir(base, 0755);
    wal_fixture(base, LSM_SYNC_ALWAYS, wal, sizeof(wal));
    wal_records(wal, &w, &size);
    assert_int_equal(w.n, 41);
    lt_opts_default(&o);
    o.corruption = LSM_CORRUPT_PARANOID; /* a torn tail is not damage */
    for (uint64_t cut = w.off[38]; cut <= w.end[40]; cut++) {
        char copy[2048];
        char cwal[4096];
        kvd_engine *e;
        int missing;
        int want = 0;
        bool at_end = false;
        int fd;

        snprintf(copy, sizeof(copy), "%s/c%llu", dir, (unsigned long long)cut);
        mkdir(copy, 0755);
        assert_int_equal(th_copy_dir(base, copy), 0);
        snprintf(cwal, sizeof(cwal), "%s/%s", copy, strrchr(wal, '/') + 1);
        fd = open(cwal, O_WRONLY);
        assert_true(fd >= 0);
        assert_true(w.end[40] - cut <= sizeof(zeros));
        assert_int_equal(pwrite(fd, zeros, w.end[40] - cut, (off_t)cut),
                         (ssize_t)(w.end[40] - cut));
        close(fd);
        for (size_t i = 1; i < w.n; i++) {
            want += w.end[i] <= cut;
            at_end = at_end || w.end[i] == cut;
        }
        e = th_engine_open(vt, copy, &o);
        assert_int_equal(present_keys(e, &missing), want);
        if (want < 40) {
            assert_int_equal(missing, want);
        }
        assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
        if (at_end) {
            assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 0);
        }
        th_engine_close(vt, e);
        th_rmrf(copy);
    }
    th_rmrf(base);
}

/* ---- stalls ---- */

static void
test_slow_flushes_stall_writers_with_a_log_line(void **state)
{
    struct lsm_opts o;
    kvd_engine *e;
    char k[16];
    char v[200];

    lt_opts_tiny(&o);
    o.l0_compaction_trigger = 1;
    o.l0_slowdown = 1;
    o.l0_stop = 3;
    e = th_engine_open(vt, *state, &o);
    memset(v, 'v', sizeof(v));
    /* every fsync (table, directory, MANIFEST) takes 20 ms: flushing and
     * compaction fall behind the writers */
    atomic_store(&th_io.sync_delay_us, 20000);
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "st%04d", i);
        assert_int_equal(vt->put(e, k, strlen(k), v, sizeof(v), 0), 0);
    }
    atomic_store(&th_io.sync_delay_us, 0);
    assert_true(th_stat(vt, e, "stall_us_total") > 0);
    assert_true(th_log_contains("lsm: writes slowed down") ||
                th_log_contains("lsm: writes stopped"));
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof(k), "st%04d", i);
        struct kvd_val val;
        assert_int_equal(vt->get(e, k, strlen(k), &val), 0);
        kvd_val_release(&val);
    }
    th_engine_close(vt, e);
}

/* ---- durability ---- */

struct gc_arg {
    kvd_engine *e;
    int id;
    int bad;
};

static void *
gc_writer(void *arg)
{
    struct gc_arg *a = arg;
    char k[32];

    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "gc-%d-%03d", a->id, i);
        if (vt->put(a->e, k, strlen(k), k, strlen(k), 0) != 0) {
            a->bad++;
        }
    }
    return NULL;
}

static void
test_group_commit_shares_fdatasync(void **state)
{
    struct lsm_opts o;
    struct gc_arg a[4];
    pthread_t th[4];
    kvd_engine *e;
    uint64_t fsyncs;
    uint64_t waits;

    lt_opts_default(&o);
    o.sync = LSM_SYNC_ALWAYS;
    e = th_engine_open(vt, *state, &o);
    /* each fdatasync takes 2 ms: writers that append meanwhile wait for
     * the next one instead of each calling their own */
    atomic_store(&th_io.sync_delay_us, 2000);
    fsyncs = th_stat(vt, e, "fsyncs_total");
    for (int i = 0; i < 4; i++) {
        a[i].e = e;
        a[i].id = i;
        a[i].bad = 0;
        assert_int_equal(pthread_create(&th[i], NULL, gc_writer, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].bad, 0);
    }
    atomic_store(&th_io.sync_delay_us, 0);
    fsyncs = th_stat(vt, e, "fsyncs_total") - fsyncs;
    waits = th_stat(vt, e, "sync_waits_total");
    print_message("160 acknowledged puts, %llu fdatasyncs, %llu waits\n",
                  (unsigned long long)fsyncs, (unsigned long long)waits);
    assert_true(fsyncs < 160);
    assert_true(waits > 0);
    th_engine_close(vt, e);
    /* every one of them is there after a reopen */
    e = th_engine_open(vt, *state, &o);
    for (int t = 0; t < 4; t++) {
        for (int i = 0; i < 40; i++) {
            char k[32];
            snprintf(k, sizeof(k), "gc-%d-%03d", t, i);
            assert_int_equal(get_str(e, k, k), 0);
        }
    }
    th_engine_close(vt, e);
}

static void
test_everysec_syncs_in_the_background(void **state)
{
    struct lsm_opts o;
    kvd_engine *e;
    uint64_t before;

    lt_opts_default(&o);
    o.sync = LSM_SYNC_EVERYSEC;
    o.sync_interval = 10;
    e = th_engine_open(vt, *state, &o);
    before = th_stat(vt, e, "fsyncs_total");
    put_str(e, "k", "v");
    /* no fdatasync on the write path */
    assert_int_equal(th_stat(vt, e, "fsyncs_total"), before);
    for (int i = 0; i < 200 && th_stat(vt, e, "fsyncs_total") == before; i++) {
        usleep(5000);
    }
    assert_true(th_stat(vt, e, "fsyncs_total") > before);
    th_engine_close(vt, e);
}

/* ---- readers during flushes and compactions ---- */

#define RACE_KEYS 64

struct race {
    kvd_engine *e;
    _Atomic int stop;
    _Atomic long misses;
    _Atomic long bad_iters;
    _Atomic long reads;
};

static void *
race_reader(void *arg)
{
    struct race *rc = arg;
    char k[16];
    unsigned x = 7;

    while (!atomic_load(&rc->stop)) {
        struct kvd_val v;
        x = x * 1103515245u + 12345u;
        snprintf(k, sizeof(k), "race%03u", (x >> 8) % RACE_KEYS);
        if (vt->get(rc->e, k, strlen(k), &v) != 0) {
            atomic_fetch_add(&rc->misses, 1);
        } else {
            kvd_val_release(&v);
        }
        atomic_fetch_add(&rc->reads, 1);
        if ((x & 63) == 0) {
            struct kvd_iter_opts o;
            struct kvd_entry ent;
            struct kvd_err err;
            kvd_iter *it;
            int n = 0;
            memset(&o, 0, sizeof(o));
            if (vt->iter_open(rc->e, &o, &it, &err) == 0) {
                while (vt->iter_next(it, &ent) == 0) {
                    n++;
                }
                vt->iter_close(it);
            }
            if (n != RACE_KEYS) {
                atomic_fetch_add(&rc->bad_iters, 1);
            }
        }
    }
    return NULL;
}

/* Every key exists all along (only overwritten), while tiny memtables
 * are frozen, flushed and compacted all the time: no get may miss and
 * no iteration may see another number of keys. */
static void
test_reads_during_flushes_never_miss_live_keys(void **state)
{
    struct lsm_opts o;
    struct race rc;
    pthread_t th[2];
    char k[16];
    char v[64];

    lt_opts_tiny(&o);
    memset(&rc, 0, sizeof(rc));
    rc.e = th_engine_open(vt, *state, &o);
    for (int i = 0; i < RACE_KEYS; i++) {
        snprintf(k, sizeof(k), "race%03d", i);
        put_str(rc.e, k, "initial");
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, race_reader, &rc), 0);
    }
    for (int round = 0; round < 150; round++) {
        for (int i = 0; i < RACE_KEYS; i++) {
            snprintf(k, sizeof(k), "race%03d", i);
            snprintf(v, sizeof(v), "round-%d-%.*s", round, round % 40,
                     "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv");
            put_str(rc.e, k, v);
        }
    }
    atomic_store(&rc.stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    print_message("%ld reads, %llu flushes, %llu compactions\n",
                  (long)atomic_load(&rc.reads),
                  (unsigned long long)th_stat(vt, rc.e, "flushes_total"),
                  (unsigned long long)th_stat(vt, rc.e, "compactions_total"));
    assert_int_equal(atomic_load(&rc.misses), 0);
    assert_int_equal(atomic_load(&rc.bad_iters), 0);
    assert_true(th_stat(vt, rc.e, "flushes_total") > 10);
    th_engine_close(vt, rc.e);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_records_roundtrip_across_blocks),
        cmocka_unit_test(
            test_wal_truncated_at_every_offset_keeps_whole_records),
        cmocka_unit_test(test_wal_flipped_byte_is_counted_and_skipped),
        cmocka_unit_test_setup_teardown(test_wal_writer_one_pwrite_per_record,
                                        setup_dir, teardown_dir),
        cmocka_unit_test(test_wal_zero_tail_is_the_end_not_damage),
        cmocka_unit_test(test_wal_cut_at_every_offset_before_zeros),
        cmocka_unit_test(test_wal_zeros_before_a_record_are_damage),
        cmocka_unit_test_setup_teardown(test_wal_writer_preallocates_in_chunks,
                                        setup_dir, teardown_dir),
        cmocka_unit_test(test_mem_get_respects_snapshot_and_order),
        cmocka_unit_test(test_mem_concurrent_readers_see_whole_entries),
        cmocka_unit_test(test_edit_roundtrip_and_damage_is_refused),
        cmocka_unit_test(test_version_apply_checks_and_moves),
        cmocka_unit_test(test_version_l0_overlap_takes_every_overlapping_table),
        cmocka_unit_test_setup_teardown(
            test_manifest_new_on_each_open_old_removed, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(test_manifest_damage_refuses_to_open,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_manifest_without_current_and_tables_is_a_new_store, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(test_second_open_is_locked, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_iter_memtable_and_tables_match_model, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_snapshot_iterator_ignores_later_writes_and_compaction,
            setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_del_and_expiry_through_tables,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_stats_estimate_above_scan_limit,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_wal_torn_tail_at_every_offset_loses_only_it, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_wal_damage_follows_the_corruption_policy, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_wal_preallocated_reopen_loses_nothing, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_wal_preallocated_cut_at_every_offset_loses_only_it, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_slow_flushes_stall_writers_with_a_log_line, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(test_group_commit_shares_fdatasync,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_everysec_syncs_in_the_background,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_reads_during_flushes_never_miss_live_keys, setup_dir,
            teardown_dir),
    };

    const char *only = getenv("LSM_UNIT_ONLY");
    struct CMUnitTest sel[sizeof(tests) / sizeof(tests[0])];
    size_t nsel = 0;

    seed = lt_seed("LSM_TEST_SEED");
    vt = th_engine(argc, argv);
    if (only == NULL || only[0] == '\0') {
        return cmocka_run_group_tests_name("lsm.unit", tests, NULL, NULL);
    }
    /* LSM_UNIT_ONLY=A,B: the tests whose names contain A or B (the
     * ThreadSanitizer build runs the ones with threads; the single-threaded
     * cut-at-every-offset loops take most of an hour under it) */
    for (size_t k = 0; k < sizeof(tests) / sizeof(tests[0]); k++) {
        for (const char *p = only; *p != '\0';) {
            size_t n = strcspn(p, ",");

            if (n > 0 && strlen(tests[k].name) >= n) {
                char part[128];

                snprintf(part, sizeof(part), "%.*s", (int)n, p);
                if (strstr(tests[k].name, part) != NULL) {
                    sel[nsel++] = tests[k];
                    break;
                }
            }
            p += n;
            if (*p == ',') {
                p++;
            }
        }
    }
    return _cmocka_run_group_tests("lsm.unit", sel, nsel, NULL, NULL);
}
