/*
 * test_kit.c -- unit tests of the engine toolkit (include/kvd/kit*.h).
 *
 * Sections follow the modules: crc32c, coding, buf, clock, file (with a
 * failing I/O table), lock, worker, ro, commit. Threads only where the
 * module is about threads (worker, commit); every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/hostsvc.h"
#include "core/posix_io.h"
#include "kvd/kit.h"

/* ---- a host with a log capture and a failing I/O table ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[8192];
static _Atomic int fail_fsync;  /* the next N fsyncs fail with EIO */
static _Atomic int fail_rename; /* the next N renames fail with EIO */

static void KVD_PRINTF(3, 4)
    test_log(const struct kvd_host *host, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    (void)host;
    (void)level;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_mu);
    if (strlen(log_buf) + strlen(line) + 2 < sizeof(log_buf)) {
        strcat(log_buf, line);
        strcat(log_buf, "\n");
    }
    pthread_mutex_unlock(&log_mu);
}

static int
log_count(const char *needle)
{
    int n = 0;

    pthread_mutex_lock(&log_mu);
    for (const char *p = log_buf; (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    pthread_mutex_unlock(&log_mu);
    return n;
}

static int
take_fault(_Atomic int *n)
{
    int v = atomic_load(n);

    while (v > 0) {
        if (atomic_compare_exchange_weak(n, &v, v - 1)) {
            errno = EIO;
            return 1;
        }
    }
    return 0;
}

static int
test_fsync(int fd)
{
    return take_fault(&fail_fsync) ? -1 : fsync(fd);
}

static int
test_rename(const char *from, const char *to)
{
    return take_fault(&fail_rename) ? -1 : rename(from, to);
}

static struct kvd_io test_io;
static struct kvd_host test_host;
static _Atomic int64_t fake_mono;

static int64_t
test_mono_ns(const struct kvd_host *host)
{
    (void)host;
    return atomic_load(&fake_mono);
}

static int
setup_host(void **state)
{
    (void)state;
    test_io = kvd_posix_io;
    test_io.fsync = test_fsync;
    test_io.rename = test_rename;
    test_host = *kvd_hostsvc_default();
    test_host.io = &test_io;
    test_host.log = test_log;
    test_host.mono_ns = NULL;
    log_buf[0] = '\0';
    atomic_store(&fail_fsync, 0);
    atomic_store(&fail_rename, 0);
    return 0;
}

static char *
make_dir(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(512);

    snprintf(p, 512, "%s/kvd-kit-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    assert_non_null(mkdtemp(p));
    return p;
}

static void
remove_dir(char *dir)
{
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

/* ---- crc32c ---- */

/* The hardware path's long-buffer streams (three interleaved, joined by
 * shifting) give the table's result at every length around their round
 * size and at any start offset, and extending still composes. */
static void
test_crc32c_long_buffers_match_the_table(void **state)
{
    size_t max = 3 * 4096 * 3 + 64;
    unsigned char *buf = malloc(max + 8);
    static const size_t lens[] = {0, 1, 7, 12287, 12288, 12289, 12295,
                                  24575, 24576, 24577, 36863, 36864, 36871};
    uint32_t x = 2463534242u;

    (void)state;
    assert_non_null(buf);
    for (size_t i = 0; i < max + 8; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
    for (size_t off = 0; off < 3; off++) {
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            uint32_t want = kvd_crc32c_sw(0, buf + off, lens[i]);
            assert_int_equal(kvd_crc32c(0, buf + off, lens[i]), want);
            assert_int_equal(kvd_crc32c_sw(0x1234u, buf + off, lens[i]),
                             kvd_crc32c(0x1234u, buf + off, lens[i]));
            if (kvd_crc32c_hw_available()) {
                assert_int_equal(kvd_crc32c_hw(0, buf + off, lens[i]), want);
            }
        }
    }
    /* a long buffer in two parts, split inside a round */
    assert_int_equal(kvd_crc32c(kvd_crc32c(0, buf, 5000), buf + 5000, 30000),
                     kvd_crc32c_sw(0, buf, 35000));
    free(buf);
}

static void
test_crc32c_known_vectors(void **state)
{
    static const unsigned char zeros[32];
    unsigned char ones[32];
    unsigned char incr[32];

    (void)state;
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++) {
        incr[i] = (unsigned char)i;
    }
    /* RFC 3720 (iSCSI), appendix B.4, and the "123456789" check value */
    assert_int_equal(kvd_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(kvd_crc32c(0, zeros, 32), 0x8a9136aau);
    assert_int_equal(kvd_crc32c(0, ones, 32), 0x62a8ab43u);
    assert_int_equal(kvd_crc32c(0, incr, 32), 0x46dd794eu);
    assert_int_equal(kvd_crc32c_sw(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(kvd_crc32c_sw(0, incr, 32), 0x46dd794eu);
    assert_int_equal(kvd_crc32c_hw(0, incr, 32), 0x46dd794eu);
    /* extending: a followed by b */
    assert_int_equal(kvd_crc32c(kvd_crc32c(0, "1234", 4), "56789", 5),
                     0xe3069283u);
    assert_int_equal(kvd_crc32c(0, "", 0), 0);
    assert_int_equal(kvd_crc32c_unmask(kvd_crc32c_mask(0x12345678u)),
                     0x12345678u);
    assert_int_not_equal(kvd_crc32c_mask(0x12345678u), 0x12345678u);
}

static void
test_crc32c_hw_matches_sw_at_every_alignment(void **state)
{
    unsigned char buf[300];

    (void)state;
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char)(i * 131u + 7u);
    }
    print_message("      crc32c: %s\n", kvd_crc32c_hw_available()
                                            ? "hardware instruction"
                                            : "table only on this CPU");
    for (size_t off = 0; off < 9; off++) {
        for (size_t n = 0; n + off <= sizeof(buf); n += 13) {
            assert_int_equal(kvd_crc32c_hw(0, buf + off, n),
                             kvd_crc32c_sw(0, buf + off, n));
            assert_int_equal(kvd_crc32c_hw(0x1234u, buf + off, n),
                             kvd_crc32c_sw(0x1234u, buf + off, n));
            assert_int_equal(kvd_crc32c(7, buf + off, n),
                             kvd_crc32c_sw(7, buf + off, n));
        }
    }
}

/* ---- hash ---- */

static void
test_hash_is_stable_and_seeded(void **state)
{
    /* pinned: the lsm engine's bloom filters on disk hold these (seed 0) */
    static const struct {
        const char *key;
        uint64_t h;
    } v[] = {
        {"", UINT64_C(0xdbc400139e84c97a)},
        {"a", UINT64_C(0x311a43450ef2773f)},
        {"ab", UINT64_C(0x2e3f6b799ba42722)},
        {"abc", UINT64_C(0xd2e023aabc79522c)},
        {"abcd", UINT64_C(0x2a064e439fce036d)},
        {"abcdefg", UINT64_C(0x0c13c7c0b9b5b45c)},
        {"abcdefgh", UINT64_C(0xfe595f54e60ff9cc)},
        {"abcdefghi", UINT64_C(0x60b8f04ab693d517)},
        {"0123456789abcdef", UINT64_C(0xbeec585c03b32770)},
        {"0123456789abcdefg", UINT64_C(0x11f0fccd860eb480)},
        {"the quick brown fox jumps over the lazy dog",
         UINT64_C(0x3d5dbd12b6c3b824)},
    };
    unsigned char buf[40];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_true(kvd_hash64(0, v[i].key, strlen(v[i].key)) == v[i].h);
        assert_true(kvd_hash64(1, v[i].key, strlen(v[i].key)) != v[i].h);
    }
    /* the same bytes at any alignment */
    memcpy(buf + 1, "0123456789abcdefg", 17);
    assert_true(kvd_hash64(0, buf + 1, 17) == UINT64_C(0x11f0fccd860eb480));
}

/* Seeds for tables keyed by client data differ call to call (eight
 * random 64-bit draws colliding: about 1 in 2^58). */
static void
test_hash_seed_differs_per_call(void **state)
{
    uint64_t s[8];

    (void)state;
    for (size_t i = 0; i < 8; i++) {
        s[i] = kvd_hash_seed(&s[i]);
        for (size_t j = 0; j < i; j++) {
            assert_true(s[i] != s[j]);
        }
    }
}

/* ---- coding ---- */

static void
test_coding_roundtrips_and_rejects_bad_varints(void **state)
{
    static const uint64_t vals[] = {
        0,     1,          127,        128,        300,           16383,
        16384, UINT32_MAX, 1ull << 35, UINT64_MAX, UINT64_MAX - 1};
    unsigned char b[16];
    uint64_t v;

    (void)state;
    kvd_put_le16(b, 0xbeef);
    assert_int_equal(b[0], 0xef);
    assert_int_equal(kvd_get_le16(b), 0xbeef);
    kvd_put_le32(b, 0x01020304u);
    assert_int_equal(b[0], 4);
    assert_int_equal(kvd_get_le32(b), 0x01020304u);
    kvd_put_le64(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 8);
    assert_int_equal(b[7], 1);
    assert_true(kvd_get_le64(b) == 0x0102030405060708ull);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        unsigned char *end = kvd_put_varint64(b, vals[i]);
        assert_int_equal((size_t)(end - b), kvd_varint_len(vals[i]));
        assert_ptr_equal(kvd_get_varint64(b, end, &v), end);
        assert_true(v == vals[i]);
        /* cut short by one byte */
        assert_null(kvd_get_varint64(b, end - 1, &v));
    }
    /* 11 continuation bytes, and a 10th byte over 64 bits */
    memset(b, 0xff, sizeof(b));
    assert_null(kvd_get_varint64(b, b + 16, &v));
    memset(b, 0x80, 9);
    b[9] = 0x02;
    assert_null(kvd_get_varint64(b, b + 10, &v));
}

/* ---- buf ---- */

static void
test_buf_grows_keeps_bytes_and_resets(void **state)
{
    struct kvd_buf b = KVD_BUF_INIT;
    unsigned char *at;

    (void)state;
    assert_non_null(kvd_buf_extend(&b, 0));
    assert_int_equal(b.len, 0);
    for (int i = 0; i < 10000; i++) {
        unsigned char c = (unsigned char)i;
        assert_int_equal(kvd_buf_append(&b, &c, 1), 0);
    }
    assert_int_equal(b.len, 10000);
    assert_true(b.cap >= 10000 && b.cap < 40000);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(b.p[i], (unsigned char)i);
    }
    at = kvd_buf_extend(&b, 4);
    assert_non_null(at);
    kvd_put_le32(at, 7);
    assert_int_equal(kvd_get_le32(b.p + 10000), 7);
    assert_int_equal(kvd_buf_reserve(&b, SIZE_MAX), KVD_ENOMEM);
    assert_int_equal(b.len, 10004);
    kvd_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_true(b.cap > 0);
    kvd_buf_release(&b);
    assert_null(b.p);
    assert_int_equal(b.cap, 0);

    /* on the caller's storage until it outgrows it */
    {
        unsigned char small[8];
        kvd_buf_init_on(&b, small, sizeof(small));
        assert_int_equal(kvd_buf_append(&b, "12345678", 8), 0);
        assert_ptr_equal(b.p, small);
        assert_int_equal(kvd_buf_append(&b, "9", 1), 0);
        assert_ptr_not_equal(b.p, small);
        assert_memory_equal(b.p, "123456789", 9);
        kvd_buf_release(&b); /* frees the heap copy, never small */
        assert_null(b.p);
    }
}

/* ---- clock ---- */

static void
test_clock_uses_host_and_falls_back_for_old_hosts(void **state)
{
    struct kvd_host old;
    int64_t a;
    int64_t b;

    (void)state;
    test_host.mono_ns = test_mono_ns;
    atomic_store(&fake_mono, 5000000123);
    assert_true(kvd_mono_ns(&test_host) == 5000000123);
    assert_true(kvd_mono_ms(&test_host) == 5000);
    assert_true(kvd_mono_us(&test_host) == 5000000);
    /* a host of ABI 1.3 has no mono_ns: the real clock */
    old = test_host;
    old.struct_size = (uint32_t)offsetof(struct kvd_host, mono_ns);
    a = kvd_mono_ns(&old);
    b = kvd_mono_ns(NULL);
    assert_true(a > 0 && b >= a);
    assert_true(a != 5000000123);
    test_host.mono_ns = NULL;
    assert_true(kvd_mono_ns(&test_host) >= b);
}

/* ---- file ---- */

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_file_replace_is_all_or_nothing(void **state)
{
    char *dir = make_dir();
    char path[600];
    char tmp[620];
    struct kvd_err err = {0};
    unsigned char *data;
    size_t n;

    (void)state;
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(kvd_file_read_all(&test_io, path, 0, &data, &n),
                     KVD_ENOTFOUND);
    assert_int_equal(kvd_file_replace(&test_io, path, "first", 5, &err), 0);
    assert_int_equal(kvd_file_read_all(&test_io, path, 0, &data, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(data, "first", 5);
    free(data);
    assert_int_equal(kvd_file_read_all(&test_io, path, 4, &data, &n),
                     KVD_ETOOBIG);

    /* a failing fsync, then a failing rename: the old file stays, and no
     * temporary file is left behind */
    atomic_store(&fail_fsync, 1);
    assert_int_equal(kvd_file_replace(&test_io, path, "second", 6, &err),
                     KVD_EIO);
    assert_non_null(strstr(err.msg, "fsync"));
    assert_non_null(strstr(err.msg, "CURRENT.tmp"));
    assert_int_equal(access(tmp, F_OK), -1);
    atomic_store(&fail_rename, 1);
    assert_int_equal(kvd_file_replace(&test_io, path, "second", 6, &err),
                     KVD_EIO);
    assert_non_null(strstr(err.msg, "rename"));
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(kvd_file_read_all(&test_io, path, 0, &data, &n), 0);
    assert_int_equal(n, 5);
    free(data);

    /* streamed, keeping the descriptor */
    {
        struct kvd_file_tmp t;
        int fd = -1;
        uint64_t size = 0;

        assert_int_equal(kvd_file_tmp_open(&test_io, path, &t, &err), 0);
        assert_int_equal(kvd_file_write_full(&test_io, t.fd, "abc", 3, 0), 0);
        assert_int_equal(kvd_file_write_full(&test_io, t.fd, "de", 2, 3), 0);
        assert_int_equal(kvd_file_tmp_commit(&test_io, &t, &fd, &err), 0);
        assert_true(fd >= 0);
        assert_int_equal(t.fd, -1);
        assert_null(t.tmp);
        assert_int_equal(kvd_file_size(fd, &size), 0);
        assert_int_equal(size, 5);
        close(fd);
        /* abort keeps the old file */
        assert_int_equal(kvd_file_tmp_open(&test_io, path, &t, &err), 0);
        assert_int_equal(kvd_file_write_full(&test_io, t.fd, "zz", 2, 0), 0);
        kvd_file_tmp_abort(&test_io, &t);
        assert_int_equal(access(tmp, F_OK), -1);
        assert_int_equal(kvd_file_read_all(&test_io, path, 0, &data, &n), 0);
        assert_memory_equal(data, "abcde", 5);
        free(data);
    }
    /* an unwritable place: the message names the file */
    snprintf(path, sizeof(path), "%s/no/such/dir/file", dir);
    assert_int_equal(kvd_file_replace(&test_io, path, "x", 1, &err), KVD_EIO);
    assert_non_null(strstr(err.msg, "open"));
    assert_non_null(strstr(err.msg, "no/such/dir/file.tmp"));
    remove_dir(dir);
}

static void
test_file_read_full_stops_at_end_and_fsync_parent(void **state)
{
    char *dir = make_dir();
    char path[600];
    char buf[16];
    size_t got = 99;
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "%s/data", dir);
    write_file(path, "0123456789");
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(kvd_file_read_full(&test_io, fd, buf, 16, 4, &got), 0);
    assert_int_equal(got, 6);
    assert_memory_equal(buf, "456789", 6);
    close(fd);
    assert_int_equal(kvd_file_fsync_parent(&test_io, path), 0);
    assert_int_equal(kvd_file_fsync_dir(&test_io, dir), 0);
    atomic_store(&fail_fsync, 1);
    assert_int_equal(kvd_file_fsync_dir(&test_io, dir), KVD_EIO);
    assert_int_equal(kvd_errno_status(ENOSPC), KVD_ENOSPC);
    assert_int_equal(kvd_errno_status(EDQUOT), KVD_ENOSPC);
    assert_int_equal(kvd_errno_status(ENOMEM), KVD_ENOMEM);
    assert_int_equal(kvd_errno_status(EBADF), KVD_EIO);
    remove_dir(dir);
}

/* ---- lock ---- */

static void
test_dirlock_refuses_a_second_open(void **state)
{
    char *dir = make_dir();
    char sub[600];
    struct kvd_err err = {0};
    int a = -1;
    int b = -1;

    (void)state;
    snprintf(sub, sizeof(sub), "%s/store", dir);
    assert_int_equal(kvd_dirlock_acquire(&test_io, sub, "test", &a, &err), 0);
    assert_true(a >= 0);
    assert_int_equal(kvd_dirlock_acquire(&test_io, sub, "test", &b, &err),
                     KVD_ELOCKED);
    assert_int_equal(b, -1);
    assert_non_null(strstr(err.msg, "test: data directory"));
    assert_non_null(strstr(err.msg, "in use by another open store"));
    kvd_dirlock_release(&test_io, a);
    assert_int_equal(kvd_dirlock_acquire(&test_io, sub, "test", &b, &err), 0);
    kvd_dirlock_release(&test_io, b);
    kvd_dirlock_release(&test_io, -1);
    remove_dir(dir);
}

/* ---- worker ---- */

struct counter {
    _Atomic int runs;
    _Atomic int more; /* rounds that ask for another */
};

static int
count_round(void *ctx)
{
    struct counter *c = ctx;

    atomic_fetch_add(&c->runs, 1);
    if (atomic_load(&c->more) > 0) {
        atomic_fetch_sub(&c->more, 1);
        return 1;
    }
    return 0;
}

static void
wait_runs(struct counter *c, int at_least)
{
    for (int i = 0; i < 5000 && atomic_load(&c->runs) < at_least; i++) {
        usleep(1000);
    }
    assert_true(atomic_load(&c->runs) >= at_least);
}

static void
test_worker_runs_when_woken_and_stops(void **state)
{
    struct counter c;
    struct kvd_err err = {0};
    kvd_worker *w;

    (void)state;
    atomic_init(&c.runs, 0);
    atomic_init(&c.more, 3);
    /* no interval: only wakes run it */
    assert_int_equal(kvd_worker_start("kit-test", 0, count_round, &c, &w, &err),
                     0);
    usleep(20000);
    assert_int_equal(atomic_load(&c.runs), 0);
    kvd_worker_wake(w);
    wait_runs(&c, 4); /* one round, then three asked for more */
    assert_int_equal(kvd_worker_stopping(w), 0);
    kvd_worker_stop(w);
    assert_int_equal(atomic_load(&c.runs), 4);
    kvd_worker_stop(NULL);

    /* with an interval it runs by itself */
    atomic_store(&c.runs, 0);
    assert_int_equal(kvd_worker_start("kit-test", 5, count_round, &c, &w, &err),
                     0);
    wait_runs(&c, 3);
    kvd_worker_stop(w);
}

/* ---- ro ---- */

static void
count_notify(void *ctx)
{
    atomic_fetch_add((_Atomic int *)ctx, 1);
}

static void
test_ro_switches_once_and_clears(void **state)
{
    _Atomic int notified = 0;
    char st[64];
    kvd_ro *ro;

    (void)state;
    assert_int_equal(
        kvd_ro_create(&test_host, "eng", count_notify, &notified, &ro), 0);
    assert_int_equal(kvd_ro_check(ro), 0);
    assert_int_equal(kvd_ro_cause(ro), 0);
    kvd_ro_state(ro, st, sizeof(st));
    assert_string_equal(st, "");
    assert_int_equal(kvd_ro_fail(ro, KVD_ENOSPC, "write %s", "f.log"),
                     KVD_ENOSPC);
    assert_int_equal(kvd_ro_fail(ro, KVD_EIO, "fsync %s", "g.log"), KVD_EIO);
    assert_int_equal(kvd_ro_check(ro), KVD_EREADONLY);
    assert_int_equal(kvd_ro_cause(ro), KVD_ENOSPC);
    kvd_ro_state(ro, st, sizeof(st));
    assert_string_equal(st, "read-only: write f.log: no space left on device");
    kvd_ro_state(ro, st, 12); /* cut, still terminated */
    assert_string_equal(st, "read-only: ");
    assert_int_equal(atomic_load(&notified), 1);
    assert_int_equal(log_count("eng: write f.log: no space left on device; "
                               "the store is read-only from now on"),
                     1);
    assert_int_equal(log_count("g.log"), 0);
    kvd_ro_clear(ro, "space is back");
    assert_int_equal(kvd_ro_check(ro), 0);
    assert_int_equal(log_count("eng: writable again: space is back"), 1);
    kvd_ro_clear(ro, "twice");
    assert_int_equal(log_count("twice"), 0);
    kvd_ro_destroy(ro);
    kvd_ro_destroy(NULL);
}

/* Read-only from the start: the state is the engine's instruction word
 * for word, nothing is logged, and a later failure changes nothing. */
static void
test_ro_open_readonly_keeps_the_text(void **state)
{
    _Atomic int notified = 0;
    char st[160];
    kvd_ro *ro;

    (void)state;
    assert_int_equal(
        kvd_ro_create(&test_host, "eng", count_notify, &notified, &ro), 0);
    assert_int_equal(kvd_ro_open_readonly(ro, KVD_ECORRUPT,
                                          "read-only: %d file(s) are "
                                          "missing; restore them",
                                          2),
                     KVD_ECORRUPT);
    assert_int_equal(kvd_ro_check(ro), KVD_EREADONLY);
    assert_int_equal(kvd_ro_cause(ro), KVD_ECORRUPT);
    kvd_ro_state(ro, st, sizeof(st));
    assert_string_equal(st, "read-only: 2 file(s) are missing; restore them");
    assert_int_equal(atomic_load(&notified), 1);
    assert_string_equal(log_buf, "");

    /* the first cause stays, whichever way comes second */
    assert_int_equal(kvd_ro_fail(ro, KVD_EIO, "fsync %s", "g.log"), KVD_EIO);
    assert_int_equal(kvd_ro_open_readonly(ro, KVD_EIO, "other"), KVD_EIO);
    assert_int_equal(kvd_ro_cause(ro), KVD_ECORRUPT);
    kvd_ro_state(ro, st, sizeof(st));
    assert_string_equal(st, "read-only: 2 file(s) are missing; restore them");
    assert_int_equal(atomic_load(&notified), 1);
    assert_string_equal(log_buf, "");
    kvd_ro_destroy(ro);

    /* and an open switch after a failure keeps the failure */
    assert_int_equal(kvd_ro_create(&test_host, "eng", NULL, NULL, &ro), 0);
    assert_int_equal(kvd_ro_fail(ro, KVD_ENOSPC, "write %s", "f.log"),
                     KVD_ENOSPC);
    assert_int_equal(kvd_ro_open_readonly(ro, 0, "missing"), 0);
    assert_int_equal(kvd_ro_cause(ro), KVD_ENOSPC);
    kvd_ro_state(ro, st, sizeof(st));
    assert_string_equal(st, "read-only: write f.log: no space left on device");
    kvd_ro_destroy(ro);

    /* no cause given: KVD_EIO */
    assert_int_equal(kvd_ro_create(&test_host, "eng", NULL, NULL, &ro), 0);
    assert_int_equal(kvd_ro_open_readonly(ro, 0, "read-only: %s", "why"), 0);
    assert_int_equal(kvd_ro_cause(ro), KVD_EIO);
    kvd_ro_destroy(ro);
}

/* ---- commit ---- */

struct fake_log {
    pthread_mutex_t mu;
    uint64_t appended;   /* guarded by mu */
    _Atomic int syncs;   /* calls of the sync op */
    _Atomic int fail_at; /* the Nth sync fails (0: never) */
    uint64_t gate;       /* a sync first waits for this much appended */
};

static uint64_t
fake_position(void *ctx)
{
    struct fake_log *l = ctx;
    uint64_t p;

    pthread_mutex_lock(&l->mu);
    p = l->appended;
    pthread_mutex_unlock(&l->mu);
    return p;
}

static int
fake_sync(void *ctx, uint64_t *pos)
{
    struct fake_log *l = ctx;
    int n = atomic_fetch_add(&l->syncs, 1) + 1;

    /* bounded: 10 s at most */
    for (int i = 0; i < 10000 && fake_position(l) < l->gate; i++) {
        usleep(1000);
    }
    *pos = fake_position(l);
    return n == atomic_load(&l->fail_at) ? KVD_EIO : 0;
}

static const struct kvd_commit_ops fake_ops = {fake_position, fake_sync};

static uint64_t
fake_append(struct fake_log *l, uint64_t n)
{
    uint64_t p;

    pthread_mutex_lock(&l->mu);
    l->appended += n;
    p = l->appended;
    pthread_mutex_unlock(&l->mu);
    return p;
}

struct writer_arg {
    struct fake_log *l;
    kvd_commit *c;
    int writes;
    int failures;
};

static void *
writer_main(void *arg)
{
    struct writer_arg *w = arg;

    for (int i = 0; i < w->writes; i++) {
        uint64_t p = fake_append(w->l, 10);
        if (kvd_commit_ack(w->c, p) != 0) {
            w->failures++;
        }
    }
    return NULL;
}

static void
fake_init(struct fake_log *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    atomic_init(&l->syncs, 0);
    atomic_init(&l->fail_at, 0);
}

static void
test_commit_writers_share_syncs(void **state)
{
    struct kvd_commit_conf conf = {&fake_ops, NULL, KVD_SYNC_ALWAYS, 0, NULL};
    struct fake_log l;
    struct writer_arg wa[8];
    pthread_t th[8];
    struct kvd_err err = {0};
    kvd_commit *c;
    uint64_t syncs;
    uint64_t waits;

    (void)state;
    fake_init(&l);
    conf.ctx = &l;
    /* the first sync starts once all eight writers have appended: it
     * covers them all, and the seven others wait for it */
    l.gate = 8 * 10;
    assert_int_equal(kvd_commit_create(&conf, &c, &err), 0);
    for (int i = 0; i < 8; i++) {
        wa[i] = (struct writer_arg){&l, c, 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &wa[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(wa[i].failures, 0);
    }
    kvd_commit_stats(c, &syncs, &waits);
    assert_int_equal(syncs, 1);
    assert_true(waits <= 7);
    assert_int_equal(atomic_load(&l.syncs), 1);
    /* covered positions need no new sync */
    assert_int_equal(kvd_commit_wait(c, 10), 0);
    assert_int_equal(kvd_commit_sync_all(c), 0);
    assert_int_equal((uint64_t)atomic_load(&l.syncs), syncs);
    kvd_commit_destroy(c);
}

static void
test_commit_failure_is_sticky_until_resume(void **state)
{
    struct kvd_commit_conf conf = {&fake_ops, NULL, KVD_SYNC_ALWAYS, 0, NULL};
    struct fake_log l;
    struct kvd_err err = {0};
    kvd_commit *c;

    (void)state;
    fake_init(&l);
    conf.ctx = &l;
    assert_int_equal(kvd_commit_create(&conf, &c, &err), 0);
    assert_int_equal(kvd_commit_ack(c, fake_append(&l, 5)), 0);
    atomic_store(&l.fail_at, 2);
    assert_int_equal(kvd_commit_ack(c, fake_append(&l, 5)), KVD_EIO);
    /* nothing is tried again: every later wait fails at once */
    assert_int_equal(kvd_commit_ack(c, fake_append(&l, 5)), KVD_EIO);
    assert_int_equal(kvd_commit_sync_all(c), KVD_EIO);
    assert_int_equal(atomic_load(&l.syncs), 2);
    /* but what was durable before stays acknowledged */
    assert_int_equal(kvd_commit_wait(c, 5), 0);
    kvd_commit_resume(c);
    assert_int_equal(kvd_commit_sync_all(c), 0);
    /* a failure seen outside the sync op (a failed append) */
    kvd_commit_fail(c, KVD_ENOSPC);
    assert_int_equal(kvd_commit_ack(c, fake_append(&l, 5)), KVD_ENOSPC);
    kvd_commit_resume(c);
    /* the engine synced a file it left: covered without a sync */
    kvd_commit_synced(c, fake_append(&l, 5));
    assert_int_equal(kvd_commit_wait(c, fake_position(&l)), 0);
    assert_int_equal(atomic_load(&l.syncs), 3);
    kvd_commit_destroy(c);
}

static void
test_commit_modes(void **state)
{
    struct kvd_commit_conf conf = {&fake_ops, NULL, KVD_SYNC_NEVER, 0, NULL};
    struct fake_log l;
    struct kvd_err err = {0};
    kvd_commit *c;

    (void)state;
    fake_init(&l);
    conf.ctx = &l;
    /* never: acks do not sync; sync_all does */
    assert_int_equal(kvd_commit_create(&conf, &c, &err), 0);
    assert_int_equal(kvd_commit_ack(c, fake_append(&l, 5)), 0);
    assert_int_equal(atomic_load(&l.syncs), 0);
    assert_int_equal(kvd_commit_sync_all(c), 0);
    assert_int_equal(atomic_load(&l.syncs), 1);
    kvd_commit_destroy(c);
    /* everysec: a thread syncs by itself */
    conf.mode = KVD_SYNC_EVERYSEC;
    conf.interval_ms = 5;
    conf.name = "kit-sync";
    assert_int_equal(kvd_commit_create(&conf, &c, &err), 0);
    for (int round = 2; round <= 3; round++) {
        assert_int_equal(kvd_commit_ack(c, fake_append(&l, 5)), 0);
        for (int i = 0; i < 5000 && atomic_load(&l.syncs) < round; i++) {
            usleep(1000);
        }
        assert_int_equal(atomic_load(&l.syncs), round);
    }
    /* nothing new appended: the ticks sync nothing */
    usleep(30000);
    assert_int_equal(atomic_load(&l.syncs), 3);
    kvd_commit_destroy(c);
    /* refused configurations */
    conf.interval_ms = 0;
    assert_int_equal(kvd_commit_create(&conf, &c, &err), KVD_EINVAL);
    conf.mode = 7;
    assert_int_equal(kvd_commit_create(&conf, &c, &err), KVD_EINVAL);
    assert_string_equal(kvd_sync_mode_names[KVD_SYNC_EVERYSEC], "everysec");
    assert_null(kvd_sync_mode_names[3]);
}

/* ---- check ---- */

static void
test_check_refuses_what_the_contract_refuses(void **state)
{
    struct kvd_op ops[3] = {
        {KVD_OP_PUT, "a", 1, "v", 1, 0},
        {KVD_OP_DEL, "b", 1, NULL, 0, 0},
        {KVD_OP_PUT, "c", 1, "vv", 2, 5},
    };
    struct kvd_err err = {0};

    (void)state;
    assert_int_equal(kvd_check_key("k", 1, 4), 0);
    assert_int_equal(kvd_check_key("k", 0, 4), KVD_EINVAL);
    assert_int_equal(kvd_check_key(NULL, 1, 4), KVD_EINVAL);
    assert_int_equal(kvd_check_key("kkkkk", 5, 4), KVD_ETOOBIG);
    assert_int_equal(kvd_check_key("kkkkk", 5, 0), 0); /* 0: no limit */
    assert_int_equal(kvd_check_put("k", 1, "vv", 2, 0, 4, 2), 0);
    assert_int_equal(kvd_check_put("k", 1, "vvv", 3, 0, 4, 2), KVD_ETOOBIG);
    assert_int_equal(kvd_check_put("k", 1, NULL, 3, 0, 4, 8), KVD_EINVAL);
    assert_int_equal(kvd_check_put("k", 1, NULL, 0, 0, 4, 8), 0);
    assert_int_equal(kvd_check_put("k", 1, "v", 1, -1, 4, 8), KVD_EINVAL);
    assert_int_equal(kvd_check_batch(ops, 3, 4, 8, &err), 0);
    ops[2].klen = 9;
    assert_int_equal(kvd_check_batch(ops, 3, 4, 8, &err), KVD_ETOOBIG);
    assert_string_equal(err.msg,
                        "batch op 2: key of 9 bytes is over the limit of 4");
    ops[2].klen = 1;
    ops[2].expire_ms = -5;
    assert_int_equal(kvd_check_batch(ops, 3, 4, 8, &err), KVD_EINVAL);
    assert_string_equal(err.msg, "batch op 2: negative expiry -5");
    ops[1].type = 9;
    assert_int_equal(kvd_check_batch(ops, 3, 4, 8, &err), KVD_EINVAL);
    assert_string_equal(err.msg, "batch op 1: unknown type 9");
    ops[1].type = KVD_OP_DEL;
    ops[1].klen = 0;
    assert_int_equal(kvd_check_batch(ops, 3, 4, 8, &err), KVD_EINVAL);
    assert_string_equal(err.msg, "batch op 1: empty key");
    assert_true(kvd_expired(5, 5));
    assert_false(kvd_expired(6, 5));
    assert_false(kvd_expired(KVD_NO_EXPIRY, 5));
}

/* ---- status helpers of the ABI headers ---- */

static void
test_strerror_and_has(void **state)
{
    struct kvd_host h = test_host;

    (void)state;
    assert_string_equal(kvd_strerror(KVD_ENOTFOUND), "not found");
    assert_string_equal(kvd_strerror(-29999), "unknown status -29999");
    assert_string_equal(kvd_status_name(KVD_ECORRUPT), "KVD_ECORRUPT");
    assert_string_equal(kvd_status_name(1), "KVD_UNKNOWN");
    assert_true(KVD_HAS(&h, struct kvd_host, mono_ns));
    h.struct_size = (uint32_t)offsetof(struct kvd_host, mono_ns);
    assert_false(KVD_HAS(&h, struct kvd_host, mono_ns));
    assert_true(KVD_HAS(&h, struct kvd_host, request_shutdown));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_crc32c_known_vectors, setup_host),
        cmocka_unit_test_setup(test_crc32c_long_buffers_match_the_table,
                               setup_host),
        cmocka_unit_test_setup(test_crc32c_hw_matches_sw_at_every_alignment,
                               setup_host),
        cmocka_unit_test_setup(test_hash_is_stable_and_seeded, setup_host),
        cmocka_unit_test(test_hash_seed_differs_per_call),
        cmocka_unit_test_setup(test_coding_roundtrips_and_rejects_bad_varints,
                               setup_host),
        cmocka_unit_test_setup(test_buf_grows_keeps_bytes_and_resets,
                               setup_host),
        cmocka_unit_test_setup(
            test_clock_uses_host_and_falls_back_for_old_hosts, setup_host),
        cmocka_unit_test_setup(test_file_replace_is_all_or_nothing, setup_host),
        cmocka_unit_test_setup(
            test_file_read_full_stops_at_end_and_fsync_parent, setup_host),
        cmocka_unit_test_setup(test_dirlock_refuses_a_second_open, setup_host),
        cmocka_unit_test_setup(test_worker_runs_when_woken_and_stops,
                               setup_host),
        cmocka_unit_test_setup(test_ro_switches_once_and_clears, setup_host),
        cmocka_unit_test_setup(test_ro_open_readonly_keeps_the_text,
                               setup_host),
        cmocka_unit_test_setup(test_commit_writers_share_syncs, setup_host),
        cmocka_unit_test_setup(test_commit_failure_is_sticky_until_resume,
                               setup_host),
        cmocka_unit_test_setup(test_commit_modes, setup_host),
        cmocka_unit_test_setup(test_check_refuses_what_the_contract_refuses,
                               setup_host),
        cmocka_unit_test_setup(test_strerror_and_has, setup_host),
    };

    return cmocka_run_group_tests_name("kit", tests, NULL, NULL);
}
