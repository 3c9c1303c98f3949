/*
 * test_lsm_table.c -- unit tests of the lsm table layer: the block format,
 * the bloom filter's measured false-positive rate, the block cache, and
 * tables written and read back against a sorted model, damaged on disk,
 * and read through a host whose pread or pwrite fails.
 *
 * The tests bring their own struct kvd_host: POSIX file calls behind a
 * table that can fail the Nth pread or pwrite (counted from when it is
 * armed), and a log that keeps the last message for assertions.
 *
 * Random data comes from a seeded generator; the seed is printed so a
 * failure can be replayed with LSM_TEST_SEED=<seed>.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lsm_block.h"
#include "lsm_iter.h"
#include "lsm_table.h"

/* ---- Test host ------------------------------------------------------ */

static _Atomic long tio_preads;
static _Atomic long tio_writes;
static _Atomic long tio_fail_pread_at; /* 0 = never; else the Nth fails */
static _Atomic long tio_fail_write_at;
static _Atomic int tio_fail_errno = EIO;
static char tlog_last[512];

static void
tio_reset(void)
{
    atomic_store(&tio_preads, 0);
    atomic_store(&tio_writes, 0);
    atomic_store(&tio_fail_pread_at, 0);
    atomic_store(&tio_fail_write_at, 0);
    atomic_store(&tio_fail_errno, EIO);
    tlog_last[0] = '\0';
}

static int
tio_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int
tio_close(int fd)
{
    return close(fd);
}

static ssize_t
tio_pread(int fd, void *buf, size_t n, off_t off)
{
    long c = atomic_fetch_add(&tio_preads, 1) + 1;
    long f = atomic_load(&tio_fail_pread_at);
    if (f > 0 && c == f) {
        errno = atomic_load(&tio_fail_errno);
        return -1;
    }
    return pread(fd, buf, n, off);
}

static ssize_t
tio_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    long c = atomic_fetch_add(&tio_writes, 1) + 1;
    long f = atomic_load(&tio_fail_write_at);
    if (f > 0 && c == f) {
        errno = atomic_load(&tio_fail_errno);
        return -1;
    }
    return pwrite(fd, buf, n, off);
}

static ssize_t
tio_write(int fd, const void *buf, size_t n)
{
    long c = atomic_fetch_add(&tio_writes, 1) + 1;
    long f = atomic_load(&tio_fail_write_at);
    if (f > 0 && c == f) {
        errno = atomic_load(&tio_fail_errno);
        return -1;
    }
    return write(fd, buf, n);
}

static int
tio_fsync(int fd)
{
    return fsync(fd);
}

static int
tio_fdatasync(int fd)
{
    return fdatasync(fd);
}

static int
tio_ftruncate(int fd, off_t len)
{
    return ftruncate(fd, len);
}

static int
tio_rename(const char *a, const char *b)
{
    return rename(a, b);
}

static int
tio_unlink(const char *p)
{
    return unlink(p);
}

static int
tio_mkdir(const char *p, mode_t m)
{
    return mkdir(p, m);
}

static const struct kvd_io tio_table = {
    .struct_size = sizeof(struct kvd_io),
    .open = tio_open,
    .close = tio_close,
    .pread = tio_pread,
    .pwrite = tio_pwrite,
    .write = tio_write,
    .fsync = tio_fsync,
    .fdatasync = tio_fdatasync,
    .ftruncate = tio_ftruncate,
    .rename = tio_rename,
    .unlink = tio_unlink,
    .mkdir = tio_mkdir,
};

static void KVD_PRINTF(3, 4)
    tlog(const struct kvd_host *host, int level, const char *fmt, ...)
{
    va_list ap;
    (void)host;
    (void)level;
    va_start(ap, fmt);
    vsnprintf(tlog_last, sizeof(tlog_last), fmt, ap);
    va_end(ap);
}

static int
tlog_enabled(const struct kvd_host *host, int level)
{
    (void)host;
    (void)level;
    return 1;
}

static int64_t
tnow(const struct kvd_host *host)
{
    (void)host;
    return 1700000000000;
}

static const struct kvd_host thost = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_host),
    .log = tlog,
    .log_enabled = tlog_enabled,
    .now_ms = tnow,
    .io = &tio_table,
};

/* ---- Helpers -------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t
rng(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void
rng_seed(const char *test)
{
    const char *s = getenv("LSM_TEST_SEED");
    uint64_t seed = s != NULL ? strtoull(s, NULL, 0) : UINT64_C(20240601);
    rng_state = seed;
    printf("[ %s ] seed %llu\n", test, (unsigned long long)seed);
}

/* An internal key in a malloc'd buffer. */
struct ent {
    uint8_t *k;
    size_t kn;
    uint8_t *v;
    size_t vn;
};

static uint8_t *
mk_ikey(const void *u, size_t un, uint64_t seq, int type, size_t *n)
{
    uint8_t *p = malloc(un + 8);
    assert_non_null(p);
    memcpy(p, u, un);
    kvd_put_le64(p + un, lsm_pack_trailer(seq, type));
    *n = un + 8;
    return p;
}

static struct lsm_slice
sl(const void *p, size_t n)
{
    struct lsm_slice s = {p, n};
    return s;
}

static int
ent_cmp(const void *a, const void *b)
{
    const struct ent *x = a;
    const struct ent *y = b;
    return lsm_ikey_cmp(sl(x->k, x->kn), sl(y->k, y->kn));
}

static void
ents_free(struct ent *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].k);
        free(e[i].v);
    }
    free(e);
}

static char tdir[256];

static int
group_setup(void **state)
{
    const char *base = getenv("TMPDIR");
    (void)state;
    snprintf(tdir, sizeof(tdir), "%s/lsmtable.XXXXXX",
             base != NULL ? base : "/tmp");
    return mkdtemp(tdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
    char p[512];
    (void)state;
    snprintf(p, sizeof(p), "%s/t.sst", tdir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/cut.sst", tdir);
    unlink(p);
    rmdir(tdir);
    return 0;
}

static void
tpath(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tdir, name);
}

/* Write ents[0..n) (sorted) to `name`; returns 0 or the writer's error. */
static int
write_table(const char *name, const struct ent *e, size_t n,
            const struct lsm_table_opts *opts, struct lsm_table_meta *meta,
            struct kvd_err *err)
{
    char path[512];
    lsm_tw *w;
    int fd;
    int rc;

    tpath(path, sizeof(path), name);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    rc = lsm_tw_open(&thost, fd, opts, &w, err);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < n; i++) {
        rc = lsm_tw_add(w, sl(e[i].k, e[i].kn), sl(e[i].v, e[i].vn), err);
        if (rc != 0) {
            lsm_tw_abandon(w);
            close(fd);
            return rc;
        }
    }
    rc = lsm_tw_finish(w, meta, err);
    close(fd);
    return rc;
}

static int
open_table(const char *name, lsm_cache *cache, lsm_table **t,
           struct kvd_err *err)
{
    char path[512];
    struct stat st;
    int fd;
    int rc;

    tpath(path, sizeof(path), name);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    rc = lsm_table_open(&thost, fd, (uint64_t)st.st_size, cache, t, err);
    if (rc != 0) {
        close(fd);
    }
    return rc;
}

/* A small table of n keys "key%06zu" seq 1 PUT, value "val%zu". */
static struct ent *
simple_ents(size_t n)
{
    struct ent *e = calloc(n, sizeof(*e));
    assert_non_null(e);
    for (size_t i = 0; i < n; i++) {
        char k[32];
        char v[32];
        int kn = snprintf(k, sizeof(k), "key%06zu", i);
        int vn = snprintf(v, sizeof(v), "val%zu", i);
        e[i].k = mk_ikey(k, (size_t)kn, 1, LSM_T_PUT, &e[i].kn);
        e[i].v = malloc((size_t)vn);
        memcpy(e[i].v, v, (size_t)vn);
        e[i].vn = (size_t)vn;
    }
    return e;
}

/* ---- Block format --------------------------------------------------- */

/* Entries for block tests: shared prefixes, NULs, empty values. */
static struct ent *
block_ents(size_t *n_out)
{
    size_t n = 200;
    struct ent *e = calloc(n, sizeof(*e));
    assert_non_null(e);
    for (size_t i = 0; i < n; i++) {
        uint8_t u[40];
        size_t un;
        switch (i % 4) {
        case 0: /* long shared prefix */
            un =
                (size_t)snprintf((char *)u, sizeof(u), "commonprefix/%05zu", i);
            break;
        case 1: /* NUL bytes inside */
            un = (size_t)snprintf((char *)u, sizeof(u), "n%05zu", i);
            u[un++] = 0;
            u[un++] = 0;
            u[un++] = (uint8_t)i;
            break;
        case 2: /* a prefix of the next key */
            un = (size_t)snprintf((char *)u, sizeof(u), "p%05zu", i);
            break;
        default:
            un = (size_t)snprintf((char *)u, sizeof(u), "p%05zux", i - 1);
            break;
        }
        e[i].k = mk_ikey(u, un, 100 + i, LSM_T_PUT, &e[i].kn);
        e[i].vn = i % 3 == 0 ? 0 : (size_t)(i % 50);
        e[i].v = malloc(e[i].vn + 1);
        memset(e[i].v, (int)('a' + i % 26), e[i].vn);
    }
    qsort(e, n, sizeof(*e), ent_cmp);
    *n_out = n;
    return e;
}

static void
check_block_roundtrip(int interval)
{
    size_t n;
    struct ent *e = block_ents(&n);
    struct lsm_bbuilder bb;
    struct lsm_block blk;
    struct lsm_bit it;
    uint8_t kbuf[8]; /* small on purpose: the cursor must grow it */
    size_t i;

    lsm_bbuilder_init(&bb, interval);
    for (i = 0; i < n; i++) {
        assert_int_equal(
            lsm_bbuilder_add(&bb, e[i].k, e[i].kn, e[i].v, e[i].vn), 0);
    }
    assert_int_equal(lsm_bbuilder_finish(&bb), 0);
    assert_int_equal(bb.nrestarts, (n + (size_t)interval - 1) / interval);
    assert_int_equal(lsm_block_init(&blk, bb.buf.p, bb.buf.len), 0);

    lsm_bit_init(&it, &blk, kbuf, sizeof(kbuf));
    lsm_bit_seek_first(&it);
    for (i = 0; i < n; i++) {
        assert_true(it.valid);
        assert_int_equal(it.klen, e[i].kn);
        assert_memory_equal(it.key, e[i].k, e[i].kn);
        assert_int_equal(it.vlen, e[i].vn);
        if (e[i].vn > 0) {
            assert_memory_equal(it.val, e[i].v, e[i].vn);
        }
        lsm_bit_next(&it);
    }
    assert_false(it.valid);
    assert_int_equal(it.status, 0);

    /* Seek to every key, and to a key just after it (same user key,
     * older seq): lands on the key itself, then on its successor. */
    for (i = 0; i < n; i++) {
        struct lsm_slice k = sl(e[i].k, e[i].kn);
        uint64_t tr = lsm_ikey_trailer(k);
        lsm_bit_seek(&it, k.p, k.n - 8, tr);
        assert_true(it.valid);
        assert_memory_equal(it.key, e[i].k, e[i].kn);
        lsm_bit_seek(&it, k.p, k.n - 8, tr - 1);
        if (i + 1 < n) {
            assert_true(it.valid);
            assert_int_equal(it.klen, e[i + 1].kn);
            assert_memory_equal(it.key, e[i + 1].k, e[i + 1].kn);
        } else {
            assert_false(it.valid);
            assert_int_equal(it.status, 0);
        }
    }
    /* Before everything and after everything. */
    lsm_bit_seek(&it, "", 0, lsm_pack_trailer(LSM_SEQ_MAX, LSM_T_SEEK));
    assert_true(it.valid);
    assert_memory_equal(it.key, e[0].k, e[0].kn);
    lsm_bit_seek(&it, "\xff\xff", 2, 0);
    assert_false(it.valid);
    assert_int_equal(it.status, 0);

    lsm_bit_release(&it);
    lsm_bbuilder_release(&bb);
    ents_free(e, n);
}

static void
test_block_roundtrip_interval_16(void **state)
{
    (void)state;
    check_block_roundtrip(16);
}

static void
test_block_roundtrip_interval_1_and_3(void **state)
{
    (void)state;
    check_block_roundtrip(1);
    check_block_roundtrip(3);
}

static void
test_block_seek_finds_newest_visible_version(void **state)
{
    struct ent e[40];
    struct lsm_bbuilder bb;
    struct lsm_block blk;
    struct lsm_bit it;
    uint8_t kbuf[64];
    size_t n = 0;

    (void)state;
    /* "a": one version; "b": seqs 30,20,...; "c": one version */
    e[n].k = mk_ikey("a", 1, 5, LSM_T_PUT, &e[n].kn);
    n++;
    for (uint64_t s = 30; s >= 1; s--) {
        e[n].k = mk_ikey("b", 1, s * 10, s % 5 == 0 ? LSM_T_DEL : LSM_T_PUT,
                         &e[n].kn);
        n++;
    }
    e[n].k = mk_ikey("c", 1, 7, LSM_T_PUT, &e[n].kn);
    n++;
    lsm_bbuilder_init(&bb, 4);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(lsm_bbuilder_add(&bb, e[i].k, e[i].kn, "v", 1), 0);
    }
    assert_int_equal(lsm_bbuilder_finish(&bb), 0);
    assert_int_equal(lsm_block_init(&blk, bb.buf.p, bb.buf.len), 0);
    lsm_bit_init(&it, &blk, kbuf, sizeof(kbuf));
    for (uint64_t snap = 0; snap <= 320; snap++) {
        lsm_bit_seek(&it, "b", 1, lsm_pack_trailer(snap, LSM_T_SEEK));
        assert_true(it.valid);
        if (snap < 10) {
            /* nothing of "b" visible: the next user key */
            assert_memory_equal(it.key, "c", 1);
        } else {
            uint64_t want = snap > 300 ? 300 : snap / 10 * 10;
            assert_memory_equal(it.key, "b", 1);
            assert_int_equal(it.klen, 9);
            assert_int_equal(kvd_get_le64(it.key + 1) >> 8, want);
        }
    }
    lsm_bit_release(&it);
    lsm_bbuilder_release(&bb);
    for (size_t i = 0; i < n; i++) {
        free(e[i].k);
    }
}

static void
test_block_rejects_malformed(void **state)
{
    struct lsm_block blk;
    struct lsm_bit it;
    uint8_t kbuf[64];
    uint8_t b[64];

    (void)state;
    memset(b, 0, sizeof(b));
    assert_int_equal(lsm_block_init(&blk, b, 3), KVD_ECORRUPT);
    /* restart count larger than the block */
    kvd_put_le64(b, 0);
    b[60] = 100;
    assert_int_equal(lsm_block_init(&blk, b, 64), KVD_ECORRUPT);
    /* restart count 0 */
    memset(b, 0, sizeof(b));
    assert_int_equal(lsm_block_init(&blk, b, 64), KVD_ECORRUPT);
    /* one restart at 0, one entry whose lengths run past the block */
    memset(b, 0, sizeof(b));
    b[0] = 0;   /* shared */
    b[1] = 100; /* non_shared: too long */
    b[2] = 0;
    b[56] = 0; /* restart[0] = 0 */
    b[60] = 1; /* one restart */
    assert_int_equal(lsm_block_init(&blk, b, 64), 0);
    lsm_bit_init(&it, &blk, kbuf, sizeof(kbuf));
    lsm_bit_seek_first(&it);
    assert_false(it.valid);
    assert_int_equal(it.status, KVD_ECORRUPT);
    lsm_bit_seek(&it, "x", 1, 0);
    assert_false(it.valid);
    assert_int_equal(it.status, KVD_ECORRUPT);
    /* a key shorter than an internal key trailer */
    b[1] = 3;
    lsm_bit_seek_first(&it);
    assert_int_equal(it.status, KVD_ECORRUPT);
    lsm_bit_release(&it);
}

static void
test_block_trailer_detects_flip(void **state)
{
    uint8_t b[100];

    (void)state;
    for (int i = 0; i < 95; i++) {
        b[i] = (uint8_t)(i * 7);
    }
    lsm_block_trailer(b, 95, LSM_BLOCK_DATA, b + 95);
    assert_int_equal(lsm_block_check(b, 95, LSM_BLOCK_DATA), 0);
    assert_int_equal(lsm_block_check(b, 95, LSM_BLOCK_INDEX), KVD_ECORRUPT);
    for (int i = 0; i < 100; i++) {
        b[i] ^= 0x10;
        assert_int_equal(lsm_block_check(b, 95, LSM_BLOCK_DATA), KVD_ECORRUPT);
        b[i] ^= 0x10;
    }
}

/* Mutated and random blocks (as if a damaged block slipped past its
 * checksum): the cursor reports KVD_ECORRUPT or returns entries, but never
 * reads out of bounds (ASan/UBSan check the rest). */
static void
test_block_mutations_never_read_out_of_bounds(void **state)
{
    size_t n;
    struct ent *e = block_ents(&n);
    struct lsm_bbuilder bb;
    uint8_t *copy;
    uint8_t kbuf[16];
    int corrupt = 0;

    (void)state;
    rng_seed("block mutations");
    lsm_bbuilder_init(&bb, 16);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(
            lsm_bbuilder_add(&bb, e[i].k, e[i].kn, e[i].v, e[i].vn), 0);
    }
    assert_int_equal(lsm_bbuilder_finish(&bb), 0);
    copy = malloc(bb.buf.len);
    for (int r = 0; r < 3000; r++) {
        struct lsm_block blk;
        struct lsm_bit it;
        size_t len = bb.buf.len;
        memcpy(copy, bb.buf.p, len);
        if (r % 3 == 2) {
            len = (size_t)(rng() % len); /* random bytes, random length */
            for (size_t i = 0; i < len; i++) {
                copy[i] = (uint8_t)rng();
            }
        } else {
            for (int m = 0; m < 1 + r % 4; m++) {
                copy[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
            }
        }
        /* an exact-size heap copy, so ASan sees any overrun */
        uint8_t *b = malloc(len + 1);
        memcpy(b, copy, len);
        if (lsm_block_init(&blk, b, len) != 0) {
            corrupt++;
            free(b);
            continue;
        }
        lsm_bit_init(&it, &blk, kbuf, sizeof(kbuf));
        size_t steps = 0;
        for (lsm_bit_seek_first(&it); it.valid && steps < 1000;
             lsm_bit_next(&it)) {
            steps++;
        }
        assert_true(it.status == 0 || it.status == KVD_ECORRUPT);
        corrupt += it.status != 0;
        lsm_bit_seek(&it, e[r % n].k, e[r % n].kn - 8,
                     lsm_ikey_trailer(sl(e[r % n].k, e[r % n].kn)));
        assert_true(it.status == 0 || it.status == KVD_ECORRUPT);
        lsm_bit_release(&it);
        free(b);
    }
    printf("[ block mutations ] %d of 3000 detected as corrupt\n", corrupt);
    assert_true(corrupt > 1000);
    free(copy);
    lsm_bbuilder_release(&bb);
    ents_free(e, n);
}

/* ---- Bloom filter --------------------------------------------------- */

static double
bloom_fp_rate(size_t n, size_t probes)
{
    uint64_t *h = malloc(n * sizeof(*h));
    size_t len = lsm_bloom_size(n, 10);
    uint8_t *f = malloc(len);
    char k[32];
    size_t fp = 0;

    assert_non_null(h);
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        int kn = snprintf(k, sizeof(k), "user%012zu", i);
        h[i] = lsm_bloom_hash(k, (size_t)kn);
    }
    lsm_bloom_build(h, n, 10, f, len);
    for (size_t i = 0; i < n; i++) {
        /* no false negatives, ever */
        assert_true(lsm_bloom_may_contain(f, len, h[i]));
    }
    for (size_t i = 0; i < probes; i++) {
        int kn = snprintf(k, sizeof(k), "absent%010zu", i);
        fp += lsm_bloom_may_contain(f, len, lsm_bloom_hash(k, (size_t)kn));
    }
    free(h);
    free(f);
    return (double)fp / (double)probes;
}

static void
test_bloom_false_positive_rate(void **state)
{
    size_t ns[] = {1000, 10000, 100000};
    double sum = 0;

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        double r = bloom_fp_rate(ns[i], 10000);
        printf("[ bloom ] n=%zu bits/key=10 k=%d fp=%.3f%% (10000 absent)\n",
               ns[i], lsm_bloom_probes(10), r * 100);
        assert_true(r <= 0.02);
        sum += r;
    }
    printf("[ bloom ] average fp=%.3f%%\n", sum / 3 * 100);
    assert_true(sum / 3 <= 0.0125);
}

static void
test_bloom_malformed_filter_says_maybe(void **state)
{
    uint8_t f[66];

    (void)state;
    memset(f, 0, sizeof(f));
    f[65] = 1;
    f[64] = 6;
    /* a well-formed empty filter says no */
    assert_false(lsm_bloom_may_contain(f, sizeof(f), 12345));
    /* unknown format, bad k, bad length: maybe */
    f[65] = 9;
    assert_true(lsm_bloom_may_contain(f, sizeof(f), 12345));
    f[65] = 1;
    f[64] = 0;
    assert_true(lsm_bloom_may_contain(f, sizeof(f), 12345));
    f[64] = 6;
    assert_true(lsm_bloom_may_contain(f, 65, 12345));
    assert_true(lsm_bloom_may_contain(f, 0, 12345));
}

static void
test_bloom_hash_depends_on_every_byte(void **state)
{
    uint8_t k[40];

    (void)state;
    memset(k, 0, sizeof(k));
    for (size_t n = 0; n <= sizeof(k); n++) {
        uint64_t h = lsm_bloom_hash(k, n);
        if (n > 0) {
            assert_true(h != lsm_bloom_hash(k, n - 1)); /* length counts */
        }
        for (size_t i = 0; i < n; i++) {
            k[i] = 1;
            assert_true(lsm_bloom_hash(k, n) != h);
            k[i] = 0;
        }
    }
}

/* ---- Block cache ---------------------------------------------------- */

static struct lsm_cblock *
cache_put(lsm_cache *c, uint64_t id, uint64_t off, size_t size)
{
    struct lsm_cblock *b = lsm_cblock_alloc(size);
    assert_non_null(b);
    memset(b->data, (int)(off & 0xff), size);
    lsm_cache_insert(c, id, off, b);
    return b; /* still pinned by the caller */
}

static void
test_cache_respects_capacity_when_unpinned(void **state)
{
    lsm_cache *c;
    struct lsm_cache_stats st;
    size_t cap = 1u << 20;

    (void)state;
    assert_int_equal(lsm_cache_create(cap, &c), 0);
    for (uint64_t i = 0; i < 2000; i++) {
        lsm_cblock_release(cache_put(c, 1, i * 4096, 4096));
        lsm_cache_get_stats(c, &st);
        assert_true(st.bytes <= cap);
    }
    lsm_cache_get_stats(c, &st);
    assert_int_equal(st.inserts, 2000);
    assert_true(st.evictions > 0);
    assert_true(st.bytes > cap / 2); /* it does hold blocks */
    assert_int_equal(st.capacity, cap);
    lsm_cache_destroy(c);
}

static void
test_cache_pinned_blocks_survive_eviction(void **state)
{
    lsm_cache *c;
    struct lsm_cache_stats st;
    struct lsm_cblock *pinned;
    struct lsm_cblock *again;

    (void)state;
    assert_int_equal(lsm_cache_create(64 * 1024, &c), 0);
    pinned = cache_put(c, 7, 4242, 4096);
    for (uint64_t i = 0; i < 500; i++) {
        lsm_cblock_release(cache_put(c, 8, i * 4096, 4096));
    }
    /* still cached (never evicted while pinned) and its bytes intact */
    again = lsm_cache_lookup(c, 7, 4242);
    assert_ptr_equal(again, pinned);
    for (size_t i = 0; i < 4096; i++) {
        assert_int_equal(pinned->data[i], 4242 & 0xff);
    }
    lsm_cblock_release(again);
    lsm_cblock_release(pinned);
    /* unpinned now: enough new blocks push it out */
    for (uint64_t i = 500; i < 1000; i++) {
        lsm_cblock_release(cache_put(c, 8, i * 4096, 4096));
    }
    assert_null(lsm_cache_lookup(c, 7, 4242));
    lsm_cache_get_stats(c, &st);
    assert_true(st.bytes <= 64 * 1024);
    lsm_cache_destroy(c);
}

static void
test_cache_counts_hits_and_misses(void **state)
{
    lsm_cache *c;
    struct lsm_cache_stats st;
    struct lsm_cblock *b;

    (void)state;
    assert_int_equal(lsm_cache_create(8u << 20, &c), 0);
    assert_null(lsm_cache_lookup(c, 1, 0));
    lsm_cblock_release(cache_put(c, 1, 0, 100));
    for (int i = 0; i < 5; i++) {
        b = lsm_cache_lookup(c, 1, 0);
        assert_non_null(b);
        lsm_cblock_release(b);
    }
    assert_null(lsm_cache_lookup(c, 2, 0)); /* other table id */
    lsm_cache_get_stats(c, &st);
    assert_int_equal(st.hits, 5);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.inserts, 1);
    assert_true(lsm_cache_new_id(c) != lsm_cache_new_id(c));
    lsm_cache_destroy(c);
}

static void
test_cache_replaced_block_stays_valid_for_its_reader(void **state)
{
    lsm_cache *c;
    struct lsm_cblock *first;
    struct lsm_cblock *second;
    struct lsm_cblock *b;

    (void)state;
    assert_int_equal(lsm_cache_create(8u << 20, &c), 0);
    first = cache_put(c, 3, 0, 64);
    second = cache_put(c, 3, 0, 64); /* two readers loaded it at once */
    b = lsm_cache_lookup(c, 3, 0);
    assert_ptr_equal(b, second);
    lsm_cblock_release(b);
    assert_int_equal(first->data[10], 0); /* still readable (ASan) */
    lsm_cblock_release(first);
    lsm_cblock_release(second);
    lsm_cache_destroy(c);
}

/* ---- Tables: model test --------------------------------------------- */

struct model {
    struct ent *e;
    size_t n;
};

static void
rand_user_key(uint8_t *u, size_t *un)
{
    uint64_t r = rng();
    if (r % 3 == 0) {
        /* binary, NULs likely */
        size_t n = 1 + (size_t)(rng() % 20);
        for (size_t i = 0; i < n; i++) {
            u[i] = (uint8_t)(rng() % 4 == 0 ? 0 : rng());
        }
        *un = n;
    } else {
        *un = (size_t)snprintf((char *)u, 32, "user:%010llu",
                               (unsigned long long)(rng() % 10000000));
    }
}

/* n entries, about a third of user keys with several versions. */
static void
model_build(struct model *m, size_t n)
{
    size_t i = 0;
    m->e = calloc(n, sizeof(*m->e));
    m->n = n;
    assert_non_null(m->e);
    while (i < n) {
        uint8_t u[32];
        size_t un;
        size_t versions = rng() % 3 == 0 ? 1 + (size_t)(rng() % 4) : 1;
        rand_user_key(u, &un);
        for (size_t v = 0; v < versions && i < n; v++, i++) {
            int type = (int)(rng() % 10 == 0  ? LSM_T_DEL
                             : rng() % 5 == 0 ? LSM_T_PUTX
                                              : LSM_T_PUT);
            m->e[i].k = mk_ikey(u, un, i + 1, type, &m->e[i].kn);
            m->e[i].vn = type == LSM_T_DEL ? 0 : (size_t)(rng() % 120);
            if (type == LSM_T_PUTX && m->e[i].vn < 8) {
                m->e[i].vn = 8;
            }
            m->e[i].v = malloc(m->e[i].vn + 1);
            for (size_t j = 0; j < m->e[i].vn; j++) {
                m->e[i].v[j] = (uint8_t)rng();
            }
        }
    }
    qsort(m->e, n, sizeof(*m->e), ent_cmp);
    /* random binary keys may collide (same user key and seq cannot:
     * seqs are unique), so the sorted run is strictly increasing */
}

/* First model index >= (u, trailer). */
static size_t
model_lower_bound(const struct model *m, const void *u, size_t un, uint64_t tr)
{
    size_t lo = 0;
    size_t hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lsm_ikey_cmp_parts(m->e[mid].k, m->e[mid].kn, u, un, tr) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void
check_get(lsm_table *t, const struct model *m, const void *u, size_t un,
          uint64_t snap)
{
    struct lsm_hit hit;
    uint64_t tr = lsm_pack_trailer(snap, LSM_T_SEEK);
    size_t i = model_lower_bound(m, u, un, tr);
    int rc = lsm_table_get(t, u, un, lsm_bloom_hash(u, un), snap, &hit);
    bool present =
        i < m->n && lsm_user_cmp(m->e[i].k, m->e[i].kn - 8, u, un) == 0;
    if (!present) {
        assert_int_equal(rc, KVD_ENOTFOUND);
        assert_null(hit.pin);
        return;
    }
    assert_int_equal(rc, 0);
    uint64_t etr = kvd_get_le64(m->e[i].k + un);
    assert_int_equal(hit.seq, etr >> 8);
    assert_int_equal(hit.type, (int)(etr & 0xff));
    assert_int_equal(hit.val.n, m->e[i].vn);
    if (hit.val.n > 0) {
        assert_memory_equal(hit.val.p, m->e[i].v, hit.val.n);
    }
    lsm_hit_release(&hit);
    assert_null(hit.pin);
}

static void
test_table_matches_sorted_model(void **state)
{
    struct model m;
    struct lsm_table_meta meta;
    struct kvd_err err;
    struct lsm_table_stats st;
    struct lsm_table_stats st0;
    lsm_cache *c;
    lsm_table *t;
    lsm_it *it;
    size_t i;

    (void)state;
    rng_seed("table model");
    tio_reset();
    model_build(&m, 100000);
    assert_int_equal(write_table("t.sst", m.e, m.n, NULL, &meta, &err), 0);
    assert_int_equal(meta.entries, m.n);
    assert_int_equal(meta.smallest.n, m.e[0].kn);
    assert_memory_equal(meta.smallest.p, m.e[0].k, m.e[0].kn);
    assert_memory_equal(meta.largest.p, m.e[m.n - 1].k, m.e[m.n - 1].kn);
    /* the writer buffers: far fewer writes than 4 KiB blocks */
    assert_true(atomic_load(&tio_writes) < (long)(meta.file_size / 65536) + 4);

    assert_int_equal(lsm_cache_create(32u << 20, &c), 0);
    assert_int_equal(open_table("t.sst", c, &t, &err), 0);
    assert_int_equal(lsm_table_entries(t), m.n);
    assert_int_equal(lsm_table_file_size(t), meta.file_size);
    assert_int_equal(lsm_table_smallest(t).n, meta.smallest.n);
    assert_memory_equal(lsm_table_smallest(t).p, meta.smallest.p,
                        meta.smallest.n);
    assert_memory_equal(lsm_table_largest(t).p, meta.largest.p, meta.largest.n);
    assert_true(lsm_table_mem_bytes(t) > lsm_bloom_size(m.n / 2, 10));

    /* every entry by its own seq, and every user key at the newest */
    for (i = 0; i < m.n; i++) {
        uint64_t tr = kvd_get_le64(m.e[i].k + m.e[i].kn - 8);
        check_get(t, &m, m.e[i].k, m.e[i].kn - 8, tr >> 8);
        check_get(t, &m, m.e[i].k, m.e[i].kn - 8, LSM_SEQ_MAX);
        if (i % 7 == 0) {
            check_get(t, &m, m.e[i].k, m.e[i].kn - 8, rng() % (m.n + 2));
        }
    }
    /* absent keys: the filter answers almost all of them */
    lsm_table_get_stats(t, &st0);
    for (i = 0; i < 20000; i++) {
        char u[32];
        int un = snprintf(u, sizeof(u), "absent:%010llu",
                          (unsigned long long)(rng() % 10000000));
        check_get(t, &m, u, (size_t)un, LSM_SEQ_MAX);
    }
    check_get(t, &m, "", 0, LSM_SEQ_MAX);
    check_get(t, &m, "\xff\xff\xff\xff", 4, LSM_SEQ_MAX);
    lsm_table_get_stats(t, &st);
    assert_int_equal(st.bloom_checks - st0.bloom_checks, 20002);
    printf("[ table model ] absent keys: %llu of 20002 passed the filter\n",
           (unsigned long long)(st.bloom_false_pos - st0.bloom_false_pos));
    assert_true(st.bloom_false_pos - st0.bloom_false_pos <= 20002 / 50);
    assert_true(st.bloom_negatives - st0.bloom_negatives >= 20002 - 20002 / 50);
    assert_int_equal(st.bloom_negatives - st0.bloom_negatives +
                         st.bloom_false_pos - st0.bloom_false_pos,
                     20002);

    /* full iteration equals the model */
    assert_int_equal(lsm_table_iter(t, true, &it), 0);
    i = 0;
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
        struct lsm_slice k = it->ops->key(it);
        struct lsm_slice v = it->ops->value(it);
        assert_true(i < m.n);
        assert_int_equal(k.n, m.e[i].kn);
        assert_memory_equal(k.p, m.e[i].k, k.n);
        assert_int_equal(v.n, m.e[i].vn);
        if (v.n > 0) {
            assert_memory_equal(v.p, m.e[i].v, v.n);
        }
        i++;
    }
    assert_int_equal(i, m.n);
    assert_int_equal(it->ops->status(it), 0);

    /* seeks to random targets: existing keys, versions, random keys */
    for (int r = 0; r < 5000; r++) {
        uint8_t u[32];
        size_t un;
        uint64_t tr;
        size_t want;
        if (r % 2 == 0) {
            size_t j = (size_t)(rng() % m.n);
            un = m.e[j].kn - 8;
            memcpy(u, m.e[j].k, un);
        } else {
            rand_user_key(u, &un);
        }
        tr = lsm_pack_trailer(rng() % (m.n + 2), LSM_T_SEEK);
        uint8_t target[40];
        memcpy(target, u, un);
        kvd_put_le64(target + un, tr);
        want = model_lower_bound(&m, u, un, tr);
        it->ops->seek(it, sl(target, un + 8));
        for (int step = 0; step < 3; step++, want++) {
            if (want >= m.n) {
                assert_false(it->ops->valid(it));
                break;
            }
            assert_true(it->ops->valid(it));
            assert_int_equal(it->ops->key(it).n, m.e[want].kn);
            assert_memory_equal(it->ops->key(it).p, m.e[want].k, m.e[want].kn);
            it->ops->next(it);
        }
    }
    assert_int_equal(it->ops->status(it), 0);
    it->ops->destroy(it);

    lsm_table_unref(t);
    lsm_cache_destroy(c);
    lsm_table_meta_free(&meta);
    ents_free(m.e, m.n);
}

/* Many versions of one user key spread over many blocks, between
 * neighbours whose separators get shortened: a get at every snapshot
 * must find the right version reading one block. */
static void
test_table_versions_span_blocks(void **state)
{
    size_t nv = 600;
    size_t n = nv + 4;
    struct ent *e = calloc(n, sizeof(*e));
    struct lsm_table_meta meta;
    struct kvd_err err;
    struct lsm_table_opts o = {512, 4, 10};
    lsm_table *t;
    size_t i = 0;

    (void)state;
    e[i].k = mk_ikey("apple", 5, 1, LSM_T_PUT, &e[i].kn);
    i++;
    e[i].k = mk_ikey("b", 1, 2, LSM_T_PUT, &e[i].kn);
    i++;
    for (size_t v = 0; v < nv; v++, i++) {
        /* seqs 2*nv+10 down to 12, even only */
        uint64_t seq = 2 * (nv - v) + 10;
        e[i].k = mk_ikey("mango", 5, seq, LSM_T_PUT, &e[i].kn);
    }
    e[i].k = mk_ikey("mz", 2, 3, LSM_T_PUT, &e[i].kn);
    i++;
    e[i].k = mk_ikey("zzz", 3, 4, LSM_T_DEL, &e[i].kn);
    i++;
    for (i = 0; i < n; i++) {
        e[i].vn = 16;
        e[i].v = malloc(16);
        memset(e[i].v, 'a' + (int)(i % 26), 16);
        kvd_put_le64(e[i].v, i);
    }
    assert_int_equal(write_table("t.sst", e, n, &o, &meta, &err), 0);
    assert_int_equal(open_table("t.sst", NULL, &t, &err), 0);
    for (uint64_t snap = 0; snap <= 2 * nv + 20; snap++) {
        struct lsm_hit hit;
        int rc = lsm_table_get(t, "mango", 5, lsm_bloom_hash("mango", 5), snap,
                               &hit);
        if (snap < 12) {
            assert_int_equal(rc, KVD_ENOTFOUND);
            continue;
        }
        uint64_t want = snap > 2 * nv + 10 ? 2 * nv + 10 : snap & ~1ull;
        assert_int_equal(rc, 0);
        assert_int_equal(hit.seq, want);
        assert_int_equal(kvd_get_le64(hit.val.p), 2 + (2 * nv + 10 - want) / 2);
        lsm_hit_release(&hit);
    }
    /* keys between neighbours (past shortened separators) are absent */
    const char *absent[] = {"a",  "apple\x01", "c",  "m",    "mango\x00", "mb",
                            "my", "n",         "zz", "zzzz", "\xff"};
    for (i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
        struct lsm_hit hit;
        size_t kn = strlen(absent[i]) + (i == 4);
        assert_int_equal(lsm_table_get(t, absent[i], kn,
                                       lsm_bloom_hash(absent[i], kn),
                                       LSM_SEQ_MAX, &hit),
                         KVD_ENOTFOUND);
    }
    {
        struct lsm_hit hit;
        assert_int_equal(lsm_table_get(t, "zzz", 3, lsm_bloom_hash("zzz", 3),
                                       LSM_SEQ_MAX, &hit),
                         0);
        assert_int_equal(hit.type, LSM_T_DEL);
        assert_int_equal(hit.seq, 4);
        lsm_hit_release(&hit);
    }
    lsm_table_unref(t);
    lsm_table_meta_free(&meta);
    ents_free(e, n);
}

static void
test_table_fill_cache_false_does_not_insert(void **state)
{
    struct ent *e = simple_ents(3000);
    struct lsm_table_meta meta;
    struct lsm_cache_stats cs;
    struct lsm_table_stats ts;
    struct kvd_err err;
    struct lsm_hit hit;
    lsm_cache *c;
    lsm_table *t;
    lsm_it *it;
    size_t n = 0;
    uint64_t reads;

    (void)state;
    assert_int_equal(write_table("t.sst", e, 3000, NULL, &meta, &err), 0);
    assert_int_equal(lsm_cache_create(8u << 20, &c), 0);
    assert_int_equal(open_table("t.sst", c, &t, &err), 0);
    assert_int_equal(lsm_table_iter(t, false, &it), 0);
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
        n++;
    }
    assert_int_equal(n, 3000);
    it->ops->destroy(it);
    lsm_cache_get_stats(c, &cs);
    assert_int_equal(cs.inserts, 0);
    assert_int_equal(cs.bytes, 0);
    lsm_table_get_stats(t, &ts);
    assert_true(ts.block_reads > 1);
    reads = ts.block_reads;

    /* fill_cache = true inserts each block once... */
    assert_int_equal(lsm_table_iter(t, true, &it), 0);
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
    }
    it->ops->destroy(it);
    lsm_cache_get_stats(c, &cs);
    assert_int_equal(cs.inserts, reads);
    /* ...and then gets are served from the cache, with no pread */
    long preads = atomic_load(&tio_preads);
    for (size_t i = 0; i < 3000; i += 10) {
        assert_int_equal(lsm_table_get(t, e[i].k, e[i].kn - 8,
                                       lsm_bloom_hash(e[i].k, e[i].kn - 8),
                                       LSM_SEQ_MAX, &hit),
                         0);
        assert_int_equal(hit.val.n, e[i].vn);
        assert_memory_equal(hit.val.p, e[i].v, e[i].vn);
        lsm_hit_release(&hit);
    }
    assert_int_equal(atomic_load(&tio_preads), preads);
    lsm_cache_get_stats(c, &cs);
    assert_int_equal(cs.hits, 300);
    lsm_table_get_stats(t, &ts);
    assert_int_equal(ts.block_reads, 2 * reads);

    lsm_table_unref(t);
    lsm_cache_destroy(c);
    lsm_table_meta_free(&meta);
    ents_free(e, 3000);
}

static void
test_table_without_filter_and_without_cache(void **state)
{
    struct ent *e = simple_ents(500);
    struct lsm_table_meta meta;
    struct lsm_table_opts o = {1024, 16, 0};
    struct lsm_table_stats ts;
    struct kvd_err err;
    struct lsm_hit hit;
    lsm_table *t;

    (void)state;
    assert_int_equal(write_table("t.sst", e, 500, &o, &meta, &err), 0);
    assert_int_equal(open_table("t.sst", NULL, &t, &err), 0);
    for (size_t i = 0; i < 500; i++) {
        assert_int_equal(lsm_table_get(t, e[i].k, e[i].kn - 8, 0, 1, &hit), 0);
        assert_memory_equal(hit.val.p, e[i].v, e[i].vn);
        lsm_hit_release(&hit);
    }
    assert_int_equal(lsm_table_get(t, "key000000x", 10, 0, 1, &hit),
                     KVD_ENOTFOUND);
    lsm_table_get_stats(t, &ts);
    assert_int_equal(ts.bloom_checks, 0);
    assert_int_equal(ts.block_reads, 501);
    lsm_table_unref(t);
    lsm_table_meta_free(&meta);
    ents_free(e, 500);
}

/* Keys far longer than the stack and iterator key buffers. */
static void
test_table_long_keys(void **state)
{
    size_t n = 300;
    struct ent *e = calloc(n, sizeof(*e));
    struct lsm_table_meta meta;
    struct kvd_err err;
    struct lsm_hit hit;
    lsm_table *t;
    lsm_it *it;
    uint8_t u[2100];
    size_t i = 0;

    (void)state;
    memset(u, 'L', sizeof(u));
    for (i = 0; i < n; i++) {
        size_t un = 300 + (i * 37) % 1700;
        snprintf((char *)u + un - 6, 7, "%06zu", i); /* distinct tails */
        u[un - 7] = 0;                               /* and a NUL */
        e[i].k = mk_ikey(u, un, i + 1, LSM_T_PUT, &e[i].kn);
        e[i].vn = i % 5;
        e[i].v = malloc(8);
        memset(e[i].v, 'v', 8);
        memset(u + un - 7, 'L', 7);
    }
    qsort(e, n, sizeof(*e), ent_cmp);
    assert_int_equal(write_table("t.sst", e, n, NULL, &meta, &err), 0);
    assert_int_equal(open_table("t.sst", NULL, &t, &err), 0);
    for (i = 0; i < n; i++) {
        size_t un = e[i].kn - 8;
        assert_int_equal(lsm_table_get(t, e[i].k, un,
                                       lsm_bloom_hash(e[i].k, un), LSM_SEQ_MAX,
                                       &hit),
                         0);
        assert_int_equal(hit.val.n, e[i].vn);
        lsm_hit_release(&hit);
        /* one byte short: absent */
        assert_int_equal(lsm_table_get(t, e[i].k, un - 1,
                                       lsm_bloom_hash(e[i].k, un - 1),
                                       LSM_SEQ_MAX, &hit),
                         KVD_ENOTFOUND);
    }
    assert_int_equal(lsm_table_iter(t, true, &it), 0);
    i = 0;
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
        assert_int_equal(it->ops->key(it).n, e[i].kn);
        assert_memory_equal(it->ops->key(it).p, e[i].k, e[i].kn);
        i++;
    }
    assert_int_equal(i, n);
    it->ops->seek(it, sl(e[n / 2].k, e[n / 2].kn));
    assert_true(it->ops->valid(it));
    assert_memory_equal(it->ops->key(it).p, e[n / 2].k, e[n / 2].kn);
    it->ops->destroy(it);
    lsm_table_unref(t);
    lsm_table_meta_free(&meta);
    ents_free(e, n);
}

/* Readers on several threads through a cache far smaller than the table,
 * so blocks are evicted while others are pinned (ASan watches). */
struct reader_arg {
    lsm_table *t;
    const struct ent *e;
    size_t n;
    uint64_t seed;
    int failures;
};

static void *
reader_main(void *p)
{
    struct reader_arg *a = p;
    uint64_t x = a->seed;

    for (int r = 0; r < 20000; r++) {
        struct lsm_hit hit;
        size_t i;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        i = (size_t)(x % a->n);
        if (lsm_table_get(a->t, a->e[i].k, a->e[i].kn - 8,
                          lsm_bloom_hash(a->e[i].k, a->e[i].kn - 8),
                          LSM_SEQ_MAX, &hit) != 0 ||
            hit.val.n != a->e[i].vn ||
            memcmp(hit.val.p, a->e[i].v, hit.val.n) != 0) {
            a->failures++;
        }
        lsm_hit_release(&hit);
    }
    return NULL;
}

static void
test_table_concurrent_gets_small_cache(void **state)
{
    size_t n = 20000;
    struct ent *e = simple_ents(n);
    struct lsm_table_meta meta;
    struct lsm_cache_stats cs;
    struct kvd_err err;
    struct reader_arg args[4];
    pthread_t th[4];
    lsm_cache *c;
    lsm_table *t;

    (void)state;
    tio_reset();
    assert_int_equal(write_table("t.sst", e, n, NULL, &meta, &err), 0);
    assert_int_equal(lsm_cache_create(64 * 1024, &c), 0);
    assert_int_equal(open_table("t.sst", c, &t, &err), 0);
    for (int i = 0; i < 4; i++) {
        args[i] = (struct reader_arg){t, e, n, 0x1234567ull * (i + 1), 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &args[i]),
                         0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    lsm_cache_get_stats(c, &cs);
    assert_int_equal(cs.hits + cs.misses, 80000);
    assert_true(cs.evictions > 0);
    assert_true(cs.bytes <= 64 * 1024);
    lsm_table_unref(t);
    lsm_cache_destroy(c);
    lsm_table_meta_free(&meta);
    ents_free(e, n);
}

/* ---- Tables: writer errors ------------------------------------------ */

static void
test_writer_rejects_bad_input(void **state)
{
    char path[512];
    struct kvd_err err;
    struct lsm_table_meta meta;
    uint8_t *k1;
    uint8_t *k2;
    size_t n1;
    size_t n2;
    lsm_tw *w;
    int fd;

    (void)state;
    tpath(path, sizeof(path), "t.sst");
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    /* empty table */
    assert_int_equal(lsm_tw_open(&thost, fd, NULL, &w, &err), 0);
    assert_int_equal(lsm_tw_finish(w, &meta, &err), KVD_EINVAL);
    assert_non_null(strstr(err.msg, "empty"));
    /* out of order, and the same key twice */
    k1 = mk_ikey("b", 1, 5, LSM_T_PUT, &n1);
    k2 = mk_ikey("a", 1, 9, LSM_T_PUT, &n2);
    assert_int_equal(lsm_tw_open(&thost, fd, NULL, &w, &err), 0);
    assert_int_equal(lsm_tw_add(w, sl(k1, n1), sl("", 0), &err), 0);
    assert_int_equal(lsm_tw_add(w, sl(k2, n2), sl("", 0), &err), KVD_EINVAL);
    assert_non_null(strstr(err.msg, "out of order"));
    assert_int_equal(lsm_tw_add(w, sl(k1, n1), sl("", 0), &err), KVD_EINVAL);
    /* too short for an internal key */
    assert_int_equal(lsm_tw_add(w, sl("abc", 3), sl("", 0), &err), KVD_EINVAL);
    assert_int_equal(lsm_tw_entries(w), 1);
    lsm_tw_abandon(w);
    /* bad options */
    struct lsm_table_opts o = {4096, 16, -1};
    assert_int_equal(lsm_tw_open(&thost, fd, &o, &w, &err), KVD_EINVAL);
    assert_null(w);
    free(k1);
    free(k2);
    close(fd);
}

static void
test_writer_write_failure_is_sticky(void **state)
{
    char path[512];
    struct ent *e = simple_ents(20000);
    struct kvd_err err;
    struct lsm_table_meta meta;
    lsm_tw *w;
    int fd;
    int rc = 0;
    size_t i;

    (void)state;
    tpath(path, sizeof(path), "t.sst");
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    tio_reset();
    atomic_store(&tio_fail_write_at, 1);
    atomic_store(&tio_fail_errno, ENOSPC);
    assert_int_equal(lsm_tw_open(&thost, fd, NULL, &w, &err), 0);
    for (i = 0; i < 20000 && rc == 0; i++) {
        rc = lsm_tw_add(w, sl(e[i].k, e[i].kn), sl(e[i].v, e[i].vn), &err);
    }
    assert_int_equal(rc, KVD_ENOSPC);
    assert_non_null(strstr(err.msg, "pwrite"));
    assert_non_null(strstr(err.msg, "No space left"));
    assert_true(lsm_tw_size(w) > 256 * 1024);
    assert_int_equal(lsm_tw_add(w, sl(e[i].k, e[i].kn), sl("", 0), &err),
                     KVD_ENOSPC);
    assert_int_equal(lsm_tw_finish(w, &meta, &err), KVD_ENOSPC);
    assert_null(meta.smallest.p);

    /* a failure while finishing (the footer's write) */
    tio_reset();
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(lsm_tw_open(&thost, fd, NULL, &w, &err), 0);
    for (i = 0; i < 100; i++) {
        assert_int_equal(
            lsm_tw_add(w, sl(e[i].k, e[i].kn), sl(e[i].v, e[i].vn), &err), 0);
    }
    atomic_store(&tio_fail_write_at, 1);
    assert_int_equal(lsm_tw_finish(w, &meta, &err), KVD_EIO);
    assert_non_null(strstr(err.msg, "Input/output error"));
    tio_reset();
    close(fd);
    ents_free(e, 20000);
}

/* ---- Tables: damage ------------------------------------------------- */

static uint8_t *
read_file(const char *name, size_t *n)
{
    char path[512];
    struct stat st;
    uint8_t *p;
    int fd;

    tpath(path, sizeof(path), name);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    p = malloc((size_t)st.st_size + 1);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *n = (size_t)st.st_size;
    return p;
}

static void
write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    int fd;

    tpath(path, sizeof(path), name);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, 0), (ssize_t)n);
    close(fd);
}

static void
test_table_flipped_data_byte_is_corruption(void **state)
{
    struct ent *e = simple_ents(2000);
    struct lsm_table_meta meta;
    struct kvd_err err;
    struct lsm_hit hit;
    uint8_t *f;
    size_t fn;
    lsm_cache *c;
    lsm_table *t;
    lsm_it *it;
    size_t n = 0;

    (void)state;
    tio_reset();
    assert_int_equal(write_table("t.sst", e, 2000, NULL, &meta, &err), 0);
    f = read_file("t.sst", &fn);
    f[16 + 100] ^= 0x01; /* inside the first data block */
    write_file("t.sst", f, fn);
    assert_int_equal(lsm_cache_create(8u << 20, &c), 0);
    assert_int_equal(open_table("t.sst", c, &t, &err), 0);
    /* a key in the first block: corruption, never data */
    assert_int_equal(lsm_table_get(t, e[0].k, e[0].kn - 8,
                                   lsm_bloom_hash(e[0].k, e[0].kn - 8),
                                   LSM_SEQ_MAX, &hit),
                     KVD_ECORRUPT);
    assert_null(hit.pin);
    assert_non_null(strstr(tlog_last, "bad checksum in data block"));
    /* keys in later blocks still read */
    assert_int_equal(lsm_table_get(t, e[1999].k, e[1999].kn - 8,
                                   lsm_bloom_hash(e[1999].k, e[1999].kn - 8),
                                   LSM_SEQ_MAX, &hit),
                     0);
    lsm_hit_release(&hit);
    /* iteration stops with the error */
    assert_int_equal(lsm_table_iter(t, true, &it), 0);
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
        n++;
    }
    assert_int_equal(n, 0);
    assert_int_equal(it->ops->status(it), KVD_ECORRUPT);
    /* a seek past the bad block works, a seek into it fails */
    it->ops->seek(it, sl(e[1500].k, e[1500].kn));
    assert_true(it->ops->valid(it));
    assert_memory_equal(it->ops->key(it).p, e[1500].k, e[1500].kn);
    it->ops->seek(it, sl(e[1].k, e[1].kn));
    assert_false(it->ops->valid(it));
    assert_int_equal(it->ops->status(it), KVD_ECORRUPT);
    it->ops->destroy(it);
    lsm_table_unref(t);
    lsm_cache_destroy(c);
    free(f);
    lsm_table_meta_free(&meta);
    ents_free(e, 2000);
}

static void
expect_open_corrupt(const char *name, const char *msg_part)
{
    struct kvd_err err;
    lsm_table *t = NULL;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = open_table(name, NULL, &t, &err);
    if (rc != KVD_ECORRUPT) {
        fail_msg("%s: open returned %d (%s), not KVD_ECORRUPT", name, rc,
                 err.msg);
    }
    assert_null(t);
    assert_int_equal(err.code, KVD_ECORRUPT);
    if (msg_part != NULL && strstr(err.msg, msg_part) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg_part);
    }
}

static void
test_table_truncated_anywhere_fails_open(void **state)
{
    struct ent *e = simple_ents(1500);
    struct lsm_table_meta meta;
    struct kvd_err err;
    uint8_t *f;
    size_t fn;
    size_t cuts = 0;

    (void)state;
    assert_int_equal(write_table("t.sst", e, 1500, NULL, &meta, &err), 0);
    f = read_file("t.sst", &fn);
    assert_int_equal(fn, meta.file_size);
    for (size_t cut = 0; cut < fn; cut++) {
        /* every byte of the head and of the tail (footer, index, meta,
         * filter), a stride through the data blocks */
        if (cut > 64 && cut + 2048 < fn && cut % 61 != 0) {
            continue;
        }
        write_file("cut.sst", f, cut);
        expect_open_corrupt("cut.sst", "sst: ");
        cuts++;
    }
    printf("[ truncate ] %zu cuts of a %zu-byte table, all KVD_ECORRUPT\n",
           cuts, fn);
    free(f);
    lsm_table_meta_free(&meta);
    ents_free(e, 1500);
}

static void
test_table_damaged_tail_fails_open(void **state)
{
    struct ent *e = simple_ents(1500);
    struct lsm_table_meta meta;
    struct kvd_err err;
    uint8_t *f;
    uint8_t *g;
    size_t fn;

    (void)state;
    assert_int_equal(write_table("t.sst", e, 1500, NULL, &meta, &err), 0);
    f = read_file("t.sst", &fn);
    g = malloc(fn);
    /* a flip anywhere in the last 2 KiB (filter tail, meta, index,
     * footer) or in the header fails open */
    for (size_t i = 0; i < fn; i++) {
        if (i >= 16 && i + 2048 < fn) {
            continue;
        }
        memcpy(g, f, fn);
        g[i] ^= 0x40;
        write_file("cut.sst", g, fn);
        expect_open_corrupt("cut.sst", "sst: ");
    }
    memcpy(g, f, fn);
    g[fn - 1] ^= 1;
    write_file("cut.sst", g, fn);
    expect_open_corrupt("cut.sst", "footer checksum");
    memcpy(g, f, fn);
    g[fn - 10] ^= 1;
    write_file("cut.sst", g, fn);
    expect_open_corrupt("cut.sst", "magic");
    /* garbage of the right size */
    for (size_t i = 0; i < fn; i++) {
        g[i] = (uint8_t)rng();
    }
    write_file("cut.sst", g, fn);
    expect_open_corrupt("cut.sst", "sst: ");
    free(f);
    free(g);
    lsm_table_meta_free(&meta);
    ents_free(e, 1500);
}

/* ---- Tables: I/O errors --------------------------------------------- */

static void
test_table_pread_failure_is_eio(void **state)
{
    struct ent *e = simple_ents(2000);
    struct lsm_table_meta meta;
    struct kvd_err err;
    struct lsm_hit hit;
    lsm_table *t;
    lsm_it *it;

    (void)state;
    assert_int_equal(write_table("t.sst", e, 2000, NULL, &meta, &err), 0);
    /* at open: each of its preads in turn */
    for (long at = 1; at <= 5; at++) {
        tio_reset();
        atomic_store(&tio_fail_pread_at, at);
        t = NULL;
        assert_int_equal(open_table("t.sst", NULL, &t, &err), KVD_EIO);
        assert_null(t);
        assert_non_null(strstr(err.msg, "Input/output error"));
    }
    tio_reset();
    assert_int_equal(open_table("t.sst", NULL, &t, &err), 0);
    assert_int_equal(atomic_load(&tio_preads), 5); /* footer, header, 3 */
    /* on a get's block read */
    tio_reset();
    atomic_store(&tio_fail_pread_at, 1);
    assert_int_equal(lsm_table_get(t, e[5].k, e[5].kn - 8,
                                   lsm_bloom_hash(e[5].k, e[5].kn - 8),
                                   LSM_SEQ_MAX, &hit),
                     KVD_EIO);
    assert_null(hit.pin);
    assert_non_null(strstr(tlog_last, "pread data block"));
    /* on an iterator's first read (a read-ahead window) */
    tio_reset();
    atomic_store(&tio_fail_pread_at, 1);
    assert_int_equal(lsm_table_iter(t, true, &it), 0);
    it->ops->seek_first(it);
    assert_false(it->ops->valid(it));
    assert_int_equal(it->ops->status(it), KVD_EIO);
    assert_non_null(strstr(tlog_last, "pread data blocks"));
    it->ops->destroy(it);
    /* on an iterator's second read: a seek reads one block, the step
     * past it the next window */
    tio_reset();
    atomic_store(&tio_fail_pread_at, 2);
    assert_int_equal(lsm_table_iter(t, true, &it), 0);
    size_t n = 0;
    for (it->ops->seek(it, sl(e[0].k, e[0].kn)); it->ops->valid(it);
         it->ops->next(it)) {
        n++;
    }
    assert_true(n > 0 && n < 2000);
    assert_int_equal(it->ops->status(it), KVD_EIO);
    /* the fault is gone: a new seek works again */
    it->ops->seek_first(it);
    assert_true(it->ops->valid(it));
    assert_int_equal(it->ops->status(it), 0);
    it->ops->destroy(it);
    tio_reset();
    lsm_table_unref(t);
    lsm_table_meta_free(&meta);
    ents_free(e, 2000);
}

static void
test_table_iterator_keeps_table_alive(void **state)
{
    struct ent *e = simple_ents(100);
    struct lsm_table_meta meta;
    struct kvd_err err;
    lsm_table *t;
    lsm_it *it;
    size_t n = 0;

    (void)state;
    assert_int_equal(write_table("t.sst", e, 100, NULL, &meta, &err), 0);
    assert_int_equal(open_table("t.sst", NULL, &t, &err), 0);
    assert_int_equal(lsm_table_iter(t, true, &it), 0);
    lsm_table_unref(t); /* the iterator's reference remains */
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
        n++;
    }
    assert_int_equal(n, 100);
    it->ops->destroy(it); /* closes the table (ASan checks the rest) */
    lsm_table_meta_free(&meta);
    ents_free(e, 100);
}

/* ---- Tables: read-ahead of sequential iterators --------------------- */

#define RA_N 30000 /* ~ 400 KiB of 1 KiB blocks: several read-ahead windows */

/* Scan it from where it stands to the end, checking every entry against
 * e[from..); returns the count. */
static size_t
scan_check(lsm_it *it, const struct ent *e, size_t from, size_t total)
{
    size_t n = 0;

    for (; it->ops->valid(it); it->ops->next(it), n++) {
        struct lsm_slice k = it->ops->key(it);
        struct lsm_slice v = it->ops->value(it);
        assert_true(from + n < total);
        assert_int_equal(k.n, e[from + n].kn);
        assert_memory_equal(k.p, e[from + n].k, k.n);
        assert_int_equal(v.n, e[from + n].vn);
        assert_memory_equal(v.p, e[from + n].v, v.n);
    }
    return n;
}

static size_t
find_bytes(const uint8_t *f, size_t fn, const char *s)
{
    size_t sn = strlen(s);
    size_t at = SIZE_MAX;

    for (size_t i = 0; i + sn <= fn; i++) {
        if (memcmp(f + i, s, sn) == 0) {
            assert_true(at == SIZE_MAX); /* unique */
            at = i;
        }
    }
    assert_true(at != SIZE_MAX);
    return at;
}

static void
test_table_readahead_crosses_blocks_and_windows(void **state)
{
    struct ent *e = simple_ents(RA_N);
    struct lsm_table_opts o = {1024, 16, 10};
    struct lsm_table_meta meta;
    struct lsm_table_stats ts;
    struct lsm_cache_stats cs;
    struct kvd_err err;
    lsm_cache *c;
    lsm_table *t;
    lsm_it *it;
    long preads;
    uint64_t blocks;

    (void)state;
    tio_reset();
    assert_int_equal(write_table("t.sst", e, RA_N, &o, &meta, &err), 0);
    assert_true(meta.file_size > 300u * 1024);
    assert_int_equal(lsm_cache_create(8u << 20, &c), 0);
    assert_int_equal(open_table("t.sst", c, &t, &err), 0);

    /* a full scan without filling the cache: every entry, every block
     * read once, in far fewer preads than blocks */
    preads = atomic_load(&tio_preads);
    assert_int_equal(lsm_table_iter(t, false, &it), 0);
    it->ops->seek_first(it);
    assert_int_equal(scan_check(it, e, 0, RA_N), RA_N);
    assert_int_equal(it->ops->status(it), 0);
    preads = atomic_load(&tio_preads) - preads;
    lsm_table_get_stats(t, &ts);
    printf("[ read-ahead ] %llu blocks in %ld preads\n",
           (unsigned long long)ts.block_reads, preads);
    blocks = ts.block_reads;
    assert_true(blocks > 300);
    assert_true(preads >= 2 && (uint64_t)preads * 20 < blocks);
    lsm_cache_get_stats(c, &cs);
    assert_int_equal(cs.inserts, 0);

    /* seeks anywhere, then scans on across block and window edges */
    for (size_t from = 0; from < RA_N; from += 977) {
        it->ops->seek(it, sl(e[from].k, e[from].kn));
        assert_int_equal(scan_check(it, e, from, RA_N), RA_N - from);
        assert_int_equal(it->ops->status(it), 0);
    }
    /* a seek to an entry between two keys lands on the next one */
    {
        size_t kn;
        uint8_t *k = mk_ikey(e[12345].k, e[12345].kn - 8, 0, LSM_T_DEL, &kn);
        it->ops->seek(it, sl(k, kn));
        assert_true(it->ops->valid(it));
        assert_memory_equal(it->ops->key(it).p, e[12346].k, e[12346].kn);
        free(k);
    }
    it->ops->destroy(it);

    /* fill_cache = true reads ahead too, and inserts each block once */
    lsm_table_get_stats(t, &ts);
    uint64_t before = ts.block_reads;
    assert_int_equal(lsm_table_iter(t, true, &it), 0);
    it->ops->seek_first(it);
    assert_int_equal(scan_check(it, e, 0, RA_N), RA_N);
    it->ops->destroy(it);
    lsm_cache_get_stats(c, &cs);
    lsm_table_get_stats(t, &ts);
    assert_int_equal(ts.block_reads, before + blocks);
    assert_int_equal(cs.inserts, blocks);
    /* ...so a second scan reads nothing from the file */
    preads = atomic_load(&tio_preads);
    assert_int_equal(lsm_table_iter(t, false, &it), 0);
    it->ops->seek_first(it);
    assert_int_equal(scan_check(it, e, 0, RA_N), RA_N);
    it->ops->destroy(it);
    assert_int_equal(atomic_load(&tio_preads), preads);

    lsm_table_unref(t);
    lsm_cache_destroy(c);
    lsm_table_meta_free(&meta);
    ents_free(e, RA_N);
}

/* A block with a bad checksum in the middle of a read-ahead window is
 * KVD_ECORRUPT, with or without the cache; the blocks around it read. */
static void
test_table_readahead_corrupt_block_in_window(void **state)
{
    struct ent *e = simple_ents(RA_N);
    struct lsm_table_opts o = {1024, 16, 10};
    struct lsm_table_meta meta;
    struct kvd_err err;
    struct lsm_hit hit;
    uint8_t *f;
    size_t fn;
    size_t at;
    lsm_cache *c;
    lsm_table *t;
    lsm_it *it;
    const size_t bad = 5000; /* an entry well inside the first windows */

    (void)state;
    tio_reset();
    assert_int_equal(write_table("t.sst", e, RA_N, &o, &meta, &err), 0);
    f = read_file("t.sst", &fn);
    at = find_bytes(f, fn, "val5000");
    f[at + 3] ^= 0x01; /* the value's first digit: only the crc sees it */
    write_file("t.sst", f, fn);
    assert_int_equal(lsm_cache_create(8u << 20, &c), 0);
    assert_int_equal(open_table("t.sst", c, &t, &err), 0);

    for (int fill = 0; fill < 2; fill++) {
        size_t n;
        assert_int_equal(lsm_table_iter(t, fill == 1, &it), 0);
        tlog_last[0] = '\0';
        it->ops->seek_first(it);
        n = scan_check(it, e, 0, RA_N);
        /* stops at the bad block: everything before it, none of it */
        assert_true(n <= bad && n + 200 > bad);
        assert_int_equal(it->ops->status(it), KVD_ECORRUPT);
        assert_non_null(strstr(tlog_last, "bad checksum in data block"));
        /* a seek into the bad block fails again, a seek past it works */
        it->ops->seek(it, sl(e[bad].k, e[bad].kn));
        assert_false(it->ops->valid(it));
        assert_int_equal(it->ops->status(it), KVD_ECORRUPT);
        it->ops->seek(it, sl(e[bad + 300].k, e[bad + 300].kn));
        assert_int_equal(scan_check(it, e, bad + 300, RA_N), RA_N - bad - 300);
        assert_int_equal(it->ops->status(it), 0);
        it->ops->destroy(it);
    }
    /* the bad block never reached the cache */
    assert_int_equal(lsm_table_get(t, e[bad].k, e[bad].kn - 8,
                                   lsm_bloom_hash(e[bad].k, e[bad].kn - 8),
                                   LSM_SEQ_MAX, &hit),
                     KVD_ECORRUPT);
    assert_null(hit.pin);
    lsm_table_unref(t);
    lsm_cache_destroy(c);
    free(f);
    lsm_table_meta_free(&meta);
    ents_free(e, RA_N);
}

/* A table smaller than one window reads in one pread; a file cut short
 * after open makes the window read KVD_ECORRUPT, not data. */
static void
test_table_readahead_short_file(void **state)
{
    struct ent *e = simple_ents(RA_N);
    struct lsm_table_opts o = {1024, 16, 10};
    struct lsm_table_meta meta;
    struct kvd_err err;
    char path[512];
    lsm_table *t;
    lsm_it *it;
    long preads;

    (void)state;
    tio_reset();
    /* small: 100 entries, a few blocks, one window */
    assert_int_equal(write_table("t.sst", e, 100, &o, &meta, &err), 0);
    assert_true(meta.file_size < 16u * 1024);
    assert_int_equal(open_table("t.sst", NULL, &t, &err), 0);
    assert_int_equal(lsm_table_iter(t, false, &it), 0);
    preads = atomic_load(&tio_preads);
    it->ops->seek_first(it);
    assert_int_equal(scan_check(it, e, 0, 100), 100);
    assert_int_equal(it->ops->status(it), 0);
    assert_int_equal(atomic_load(&tio_preads) - preads, 1);
    it->ops->destroy(it);
    lsm_table_unref(t);
    lsm_table_meta_free(&meta);

    /* large, then cut to 40 KiB under the open reader */
    assert_int_equal(write_table("t.sst", e, RA_N, &o, &meta, &err), 0);
    assert_int_equal(open_table("t.sst", NULL, &t, &err), 0);
    tpath(path, sizeof(path), "t.sst");
    assert_int_equal(truncate(path, 40 * 1024), 0);
    assert_int_equal(lsm_table_iter(t, false, &it), 0);
    tlog_last[0] = '\0';
    it->ops->seek_first(it); /* a 64 KiB window: past the end */
    assert_false(it->ops->valid(it));
    assert_int_equal(it->ops->status(it), KVD_ECORRUPT);
    assert_non_null(strstr(tlog_last, "file ends early"));
    /* a seek reads one block, which is still there; the window grown
     * from it runs past the end again */
    it->ops->seek(it, sl(e[10].k, e[10].kn));
    assert_true(it->ops->valid(it));
    assert_memory_equal(it->ops->key(it).p, e[10].k, e[10].kn);
    size_t n = scan_check(it, e, 10, RA_N);
    assert_true(n > 0 && n < 3000);
    assert_int_equal(it->ops->status(it), KVD_ECORRUPT);
    it->ops->destroy(it);
    lsm_table_unref(t);
    lsm_table_meta_free(&meta);
    ents_free(e, RA_N);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_roundtrip_interval_16),
        cmocka_unit_test(test_block_roundtrip_interval_1_and_3),
        cmocka_unit_test(test_block_seek_finds_newest_visible_version),
        cmocka_unit_test(test_block_rejects_malformed),
        cmocka_unit_test(test_block_trailer_detects_flip),
        cmocka_unit_test(test_block_mutations_never_read_out_of_bounds),
        cmocka_unit_test(test_bloom_false_positive_rate),
        cmocka_unit_test(test_bloom_malformed_filter_says_maybe),
        cmocka_unit_test(test_bloom_hash_depends_on_every_byte),
        cmocka_unit_test(test_cache_respects_capacity_when_unpinned),
        cmocka_unit_test(test_cache_pinned_blocks_survive_eviction),
        cmocka_unit_test(test_cache_counts_hits_and_misses),
        cmocka_unit_test(test_cache_replaced_block_stays_valid_for_its_reader),
        cmocka_unit_test(test_table_matches_sorted_model),
        cmocka_unit_test(test_table_versions_span_blocks),
        cmocka_unit_test(test_table_fill_cache_false_does_not_insert),
        cmocka_unit_test(test_table_without_filter_and_without_cache),
        cmocka_unit_test(test_table_long_keys),
        cmocka_unit_test(test_table_concurrent_gets_small_cache),
        cmocka_unit_test(test_writer_rejects_bad_input),
        cmocka_unit_test(test_writer_write_failure_is_sticky),
        cmocka_unit_test(test_table_flipped_data_byte_is_corruption),
        cmocka_unit_test(test_table_truncated_anywhere_fails_open),
        cmocka_unit_test(test_table_damaged_tail_fails_open),
        cmocka_unit_test(test_table_pread_failure_is_eio),
        cmocka_unit_test(test_table_iterator_keeps_table_alive),
        cmocka_unit_test(test_table_readahead_crosses_blocks_and_windows),
        cmocka_unit_test(test_table_readahead_corrupt_block_in_window),
        cmocka_unit_test(test_table_readahead_short_file),
    };
    return cmocka_run_group_tests_name("lsm.table", tests, group_setup,
                                       group_teardown);
}
