/*
 * tests/unit/test_memory.c -- behaviour specific to the memory engine.
 *
 * The shared conformance suite covers what every engine must do; this file
 * covers what only the memory engine has: snapshot files (round trip,
 * corrupt and truncated files refused with file name and offset, a failed
 * rename leaving the previous snapshot intact, periodic snapshots), the
 * incremental resize under a running iterator, pos resume, TTL reclamation
 * by the sampler, value lifetime across overwrites, and concurrent readers
 * and writers (run it in the Asan build).
 *
 * The plugin is dlopen'd directly (argv[1], else $KVD_TEST_ENGINE) and
 * driven through its vtable with a hand-made struct kvd_host: a settable
 * clock and a POSIX I/O table whose rename can be made to fail. Options
 * are filled through the plugin's own option table (defaults, then
 * overrides by name), as the host's parser would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvd/engine.h"

#define T_BASE_MS 1700000000000LL

static const struct kvd_engine_vtable *vt;

/* ------------------------------------------------------------ fake host */

static atomic_llong t_fake_now;  /* 0: real clock */
static atomic_int t_fail_rename; /* fail the Nth rename from now; 0: never */

static int64_t
t_now_ms(const struct kvd_host *h)
{
    struct timespec ts;
    int64_t f = atomic_load(&t_fake_now);

    (void)h;
    if (f != 0) {
        return f;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void KVD_PRINTF(3, 4)
    t_log(const struct kvd_host *h, int level, const char *fmt, ...)
{
    va_list ap;

    (void)h;
    if (level > KVD_LOG_WARN && getenv("T_VERBOSE") == NULL) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int
t_log_enabled(const struct kvd_host *h, int level)
{
    (void)h;
    return level <= KVD_LOG_WARN;
}

static int
t_open(const char *p, int flags, mode_t mode)
{
    return open(p, flags, mode);
}

static ssize_t
t_pread(int fd, void *b, size_t n, off_t off)
{
    return pread(fd, b, n, off);
}

static ssize_t
t_pwrite(int fd, const void *b, size_t n, off_t off)
{
    return pwrite(fd, b, n, off);
}

static int
t_rename(const char *a, const char *b)
{
    int n = atomic_load(&t_fail_rename);
    if (n > 0 && atomic_fetch_sub(&t_fail_rename, 1) == 1) {
        errno = EIO;
        return -1;
    }
    return rename(a, b);
}

static int
t_mkdir(const char *p, mode_t m)
{
    return mkdir(p, m);
}

static const struct kvd_io t_io = {
    .struct_size = sizeof(struct kvd_io),
    .open = t_open,
    .close = close,
    .pread = t_pread,
    .pwrite = t_pwrite,
    .write = write,
    .fsync = fsync,
    .fdatasync = fdatasync,
    .ftruncate = ftruncate,
    .rename = t_rename,
    .unlink = unlink,
    .mkdir = t_mkdir,
};

static void
t_shutdown(const struct kvd_host *h, const char *why)
{
    (void)h;
    (void)why;
}

static const struct kvd_host t_host = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_host),
    .log = t_log,
    .log_enabled = t_log_enabled,
    .now_ms = t_now_ms,
    .io = &t_io,
    .request_shutdown = t_shutdown,
};

/* -------------------------------------------------------------- options */

static int64_t
t_parse_num(const char *s, int type)
{
    char *end;
    int64_t v = strtoll(s, &end, 10);

    if (type == KVD_OPT_DURATION) {
        if (strcmp(end, "s") == 0) {
            v *= 1000;
        } else if (strcmp(end, "m") == 0) {
            v *= 60000;
        }
    }
    return v;
}

static void
t_opt_set(void *opts, const char *name, const char *value)
{
    const struct kvd_option *o;

    for (o = vt->options; o->name != NULL; o++) {
        if (strcmp(o->name, name) == 0) {
            break;
        }
    }
    assert_non_null(o->name);
    switch (o->type & KVD_OPT_TYPE_MASK) {
    case KVD_OPT_INT:
    case KVD_OPT_DURATION:
        *(int64_t *)((char *)opts + o->offset) =
            t_parse_num(value, o->type & KVD_OPT_TYPE_MASK);
        break;
    case KVD_OPT_STRING:
        free(*(char **)((char *)opts + o->offset));
        *(char **)((char *)opts + o->offset) = strdup(value);
        break;
    default:
        fail_msg("option type %d not handled by the test", o->type);
    }
}

static void *
t_opts_new(void)
{
    void *opts = calloc(1, vt->options_size);

    assert_non_null(opts);
    for (const struct kvd_option *o = vt->options; o->name != NULL; o++) {
        t_opt_set(opts, o->name, o->def);
    }
    return opts;
}

static void
t_opts_free(void *opts)
{
    if (opts == NULL) {
        return;
    }
    for (const struct kvd_option *o = vt->options; o->name != NULL; o++) {
        if ((o->type & KVD_OPT_TYPE_MASK) == KVD_OPT_STRING) {
            free(*(char **)((char *)opts + o->offset));
        }
    }
    free(opts);
}

/* -------------------------------------------------------------- fixture */

struct t_fix {
    char dir[64];
    char snap[128];
    void *opts;
    kvd_engine *db;
};

static int
t_setup(void **state)
{
    struct t_fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    strcpy(f->dir, "/tmp/kvd-test-memory-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->snap, sizeof(f->snap), "%s/snap.kvd", f->dir);
    f->opts = t_opts_new();
    atomic_store(&t_fake_now, 0);
    atomic_store(&t_fail_rename, 0);
    *state = f;
    return 0;
}

static int
t_teardown(void **state)
{
    struct t_fix *f = *state;
    char cmd[128];

    if (f->db != NULL) {
        vt->close(f->db, NULL);
    }
    t_opts_free(f->opts);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    atomic_store(&t_fake_now, 0);
    return 0;
}

static void
t_open_db(struct t_fix *f)
{
    struct kvd_err err = {0};
    int rc = vt->open(&t_host, f->opts, f->dir, &f->db, &err);

    if (rc != 0) {
        fail_msg("open: %d %s", rc, err.msg);
    }
}

static void
t_close_db(struct t_fix *f)
{
    struct kvd_err err = {0};
    int rc = vt->close(f->db, &err);

    f->db = NULL;
    if (rc != 0) {
        fail_msg("close: %d %s", rc, err.msg);
    }
}

static void
t_put(struct t_fix *f, const char *k, const char *v, int64_t exp)
{
    assert_int_equal(vt->put(f->db, k, strlen(k), v, strlen(v), exp), 0);
}

/* Assert key k holds exactly v (n bytes). */
static void
t_expect(struct t_fix *f, const void *k, size_t klen, const void *v, size_t n)
{
    struct kvd_val val;

    assert_int_equal(vt->get(f->db, k, klen, &val), 0);
    assert_int_equal(val.len, n);
    assert_memory_equal(val.data, v, n);
    kvd_val_release(&val);
}

static void
t_expect_missing(struct t_fix *f, const char *k)
{
    struct kvd_val val;

    assert_int_equal(vt->get(f->db, k, strlen(k), &val), KVD_ENOTFOUND);
}

static uint64_t
t_keys(struct t_fix *f)
{
    struct kvd_engine_stats st = {.struct_size = sizeof(st)};

    assert_int_equal(vt->stats(f->db, &st, NULL, NULL), 0);
    return st.keys;
}

struct t_counter {
    const char *name;
    uint64_t value;
};

static void
t_counter_cb(void *ctx, const char *name, uint64_t value)
{
    struct t_counter *c = ctx;
    if (strcmp(name, c->name) == 0) {
        c->value = value;
    }
}

static uint64_t
t_counter(struct t_fix *f, const char *name)
{
    struct t_counter c = {.name = name, .value = UINT64_MAX};

    assert_int_equal(vt->stats(f->db, NULL, t_counter_cb, &c), 0);
    assert_true(c.value != UINT64_MAX);
    return c.value;
}

static void
t_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ snapshots */

/* A small snapshot at f->snap holding "alpha" = "one" (its first record
 * is that key: it is the only one). */
static void
t_make_snapshot(struct t_fix *f)
{
    t_opt_set(f->opts, "snapshot_path", "snap.kvd");
    t_open_db(f);
    t_put(f, "alpha", "one", KVD_NO_EXPIRY);
    t_close_db(f);
}

static void
t_flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char b;

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void
test_memory_snapshot_round_trip(void **state)
{
    struct t_fix *f = *state;
    static const char bkey[] = {'k', '\0', 'x'};
    static const char bval[] = {'v', '\0', '\xff'};
    size_t big_len = 1u << 20;
    char *big = malloc(big_len);
    struct kvd_val v;
    struct stat sb;
    char key[32];

    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (char)(i * 7);
    }
    atomic_store(&t_fake_now, T_BASE_MS);
    t_opt_set(f->opts, "snapshot_path", "snap.kvd");
    t_open_db(f);
    assert_int_equal(vt->put(f->db, bkey, 3, bval, 3, KVD_NO_EXPIRY), 0);
    t_put(f, "empty", "", KVD_NO_EXPIRY);
    t_put(f, "ttl", "later", T_BASE_MS + 3600000);
    t_put(f, "soon", "gone", T_BASE_MS + 1000);
    assert_int_equal(vt->put(f->db, "big", 3, big, big_len, KVD_NO_EXPIRY), 0);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        t_put(f, key, key + 4, KVD_NO_EXPIRY);
    }
    t_close_db(f);
    assert_int_equal(stat(f->snap, &sb), 0);
    assert_true(access("snap.kvd.tmp", F_OK) != 0);

    atomic_store(&t_fake_now, T_BASE_MS + 2000); /* "soon" has expired */
    t_open_db(f);
    t_expect(f, bkey, 3, bval, 3);
    t_expect(f, "empty", 5, "", 0);
    t_expect(f, "big", 3, big, big_len);
    t_expect_missing(f, "soon");
    assert_int_equal(vt->get(f->db, "ttl", 3, &v), 0);
    assert_int_equal(v.expire_ms, T_BASE_MS + 3600000);
    kvd_val_release(&v);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "key:%d", i);
        t_expect(f, key, strlen(key), key + 4, strlen(key + 4));
    }
    assert_int_equal(t_keys(f), 1004);
    {
        struct kvd_engine_stats st = {.struct_size = sizeof(st)};
        assert_int_equal(vt->stats(f->db, &st, NULL, NULL), 0);
        assert_int_equal(st.disk_bytes, (uint64_t)sb.st_size);
    }
    free(big);
}

static void
test_memory_snapshot_bad_checksum_refused(void **state)
{
    struct t_fix *f = *state;
    struct kvd_err err = {0};

    t_make_snapshot(f);
    t_flip_byte(f->snap, 16 + 20 + 2); /* inside the first record's key */
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err),
                     KVD_ECORRUPT);
    assert_null(f->db);
    assert_non_null(strstr(err.msg, f->snap));
    assert_non_null(strstr(err.msg, "bad checksum in record at offset 16"));
}

static void
test_memory_snapshot_truncated_refused(void **state)
{
    struct t_fix *f = *state;
    struct kvd_err err = {0};
    struct stat sb;

    t_make_snapshot(f);
    assert_int_equal(stat(f->snap, &sb), 0);
    /* Cut into the end record: the data record is whole, the end is not. */
    assert_int_equal(truncate(f->snap, sb.st_size - 5), 0);
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err),
                     KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, f->snap));
    assert_non_null(strstr(err.msg, "truncated at offset 44"));

    /* Cut into the data record's value. */
    assert_int_equal(truncate(f->snap, 16 + 20 + 6), 0);
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err),
                     KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "truncated record at offset 16"));
}

static void
test_memory_snapshot_bad_magic_refused(void **state)
{
    struct t_fix *f = *state;
    struct kvd_err err = {0};
    FILE *fp = fopen(f->snap, "w");

    assert_non_null(fp);
    fputs("this is not a snapshot at all\n", fp);
    fclose(fp);
    t_opt_set(f->opts, "snapshot_path", "snap.kvd");
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err),
                     KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "bad magic at offset 0"));
}

static void
test_memory_snapshot_trailing_garbage_refused(void **state)
{
    struct t_fix *f = *state;
    struct kvd_err err = {0};
    FILE *fp;

    t_make_snapshot(f);
    fp = fopen(f->snap, "a");
    assert_non_null(fp);
    fputs("x", fp);
    fclose(fp);
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err),
                     KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "after the end record at offset 64"));
}

static void
test_memory_failed_rename_keeps_old_snapshot(void **state)
{
    struct t_fix *f = *state;
    struct kvd_err err = {0};
    char tmp[160];

    t_make_snapshot(f);
    t_open_db(f);
    t_put(f, "alpha", "two", KVD_NO_EXPIRY);
    t_put(f, "beta", "new", KVD_NO_EXPIRY);
    atomic_store(&t_fail_rename, 1);
    assert_int_equal(vt->close(f->db, &err), KVD_EIO);
    f->db = NULL;
    assert_non_null(strstr(err.msg, "rename"));
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->snap);
    assert_int_not_equal(access(tmp, F_OK), 0); /* temp file removed */

    t_open_db(f);
    t_expect(f, "alpha", 5, "one", 3);
    t_expect_missing(f, "beta");
}

/* A snapshot named in the config that was written once and is gone now
 * is lost data: never an empty store without a word (issue 13). */
static void
test_memory_missing_snapshot_refused_once_written(void **state)
{
    struct t_fix *f = *state;
    struct kvd_err err = {0};
    char mark[300];

    /* the first open has none yet: a new store */
    t_opt_set(f->opts, "snapshot_path", "snap.kvd");
    t_open_db(f);
    t_put(f, "alpha", "one", KVD_NO_EXPIRY);
    t_close_db(f);
    assert_int_equal(access(f->snap, F_OK), 0);

    assert_int_equal(unlink(f->snap), 0);
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err),
                     KVD_ECORRUPT);
    assert_null(f->db);
    assert_non_null(strstr(err.msg, "snap.kvd is missing"));
    assert_non_null(strstr(err.msg, "snapshot.written"));

    /* removing the record is how an operator says: start empty */
    snprintf(mark, sizeof(mark), "%s/snapshot.written", f->dir);
    assert_int_equal(unlink(mark), 0);
    t_open_db(f);
    t_expect_missing(f, "alpha");
}

static void
test_memory_snapshot_interval_writes_in_background(void **state)
{
    struct t_fix *f = *state;
    int waited = 0;

    t_opt_set(f->opts, "snapshot_path", "snap.kvd");
    t_opt_set(f->opts, "snapshot_interval", "20");
    t_open_db(f);
    t_put(f, "k", "v", KVD_NO_EXPIRY);
    while (t_counter(f, "snapshots_written_total") == 0 && waited < 5000) {
        t_sleep_ms(10);
        waited += 10;
    }
    assert_true(t_counter(f, "snapshots_written_total") >= 1);
    assert_int_equal(access(f->snap, F_OK), 0);
}

static void
test_memory_invalid_options_refused(void **state)
{
    struct t_fix *f = *state;
    struct kvd_err err = {0};

    t_opt_set(f->opts, "shards", "48");
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err),
                     KVD_ECONFIG);
    assert_null(f->db);
    assert_non_null(strstr(err.msg, "shards = 48: expected a power of two"));

    t_opt_set(f->opts, "shards", "64");
    t_opt_set(f->opts, "snapshot_interval", "5s");
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err),
                     KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "needs snapshot_path"));

    /* The directory of the snapshot must exist: fail at open, not at the
     * first snapshot. */
    t_opt_set(f->opts, "snapshot_interval", "0");
    t_opt_set(f->opts, "snapshot_path", "no/such/dir/snap.kvd");
    assert_int_equal(vt->open(&t_host, f->opts, f->dir, &f->db, &err), KVD_EIO);
    assert_null(f->db);
    assert_non_null(strstr(err.msg, "no/such/dir"));
    assert_non_null(strstr(err.msg, "No such file or directory"));
}

/* ------------------------------------------------------------ iteration */

static void
t_key_of(char *buf, size_t n, int i)
{
    snprintf(buf, n, "key:%06d", i);
}

static int
t_index_of(const struct kvd_entry *e)
{
    char buf[32];

    if (e->klen != 10 || memcmp(e->key, "key:", 4) != 0) {
        return -1;
    }
    memcpy(buf, e->key, e->klen);
    buf[e->klen] = '\0';
    return atoi(buf + 4);
}

static void
test_memory_iter_resize_returns_each_key_once(void **state)
{
    struct t_fix *f = *state;
    enum { N0 = 300, N1 = 30000 };
    unsigned char *seen = calloc(N0 + N1, 1);
    struct kvd_iter_opts io = {0};
    struct kvd_entry e;
    kvd_iter *it;
    uint64_t last_pos = 0;
    char key[32];
    int n = 0;
    int rc;

    assert_non_null(seen);
    t_opt_set(f->opts, "shards", "1"); /* one table: it must double often */
    t_open_db(f);
    for (int i = 0; i < N0; i++) {
        t_key_of(key, sizeof(key), i);
        t_put(f, key, "v", KVD_NO_EXPIRY);
    }
    assert_int_equal(vt->iter_open(f->db, &io, &it, NULL), 0);
    while ((rc = vt->iter_next(it, &e)) == 0) {
        int i = t_index_of(&e);
        assert_true(i >= 0 && i < N0 + N1);
        assert_int_equal(seen[i], 0); /* never twice */
        seen[i] = 1;
        assert_true(e.pos >= last_pos);
        assert_true(e.pos < UINT64_MAX);
        last_pos = e.pos;
        if (++n == N0 / 3) {
            /* 100x more keys: the table doubles ~11 times, partly while
             * this iterator is between calls. */
            for (int j = N0; j < N0 + N1; j++) {
                t_key_of(key, sizeof(key), j);
                t_put(f, key, "w", KVD_NO_EXPIRY);
            }
            assert_true(t_counter(f, "rehashes_started_total") >= 8);
        }
    }
    assert_int_equal(rc, KVD_ENOTFOUND);
    vt->iter_close(it);
    for (int i = 0; i < N0; i++) {
        assert_int_equal(seen[i], 1); /* live throughout: exactly once */
    }
    free(seen);
}

static void
test_memory_iter_resumes_from_pos(void **state)
{
    struct t_fix *f = *state;
    enum { N = 2000, STEP = 37 };
    unsigned char seen[N] = {0};
    struct kvd_iter_opts io = {0};
    struct kvd_entry e;
    char key[32];
    int total = 0;
    bool more = true;

    t_open_db(f);
    for (int i = 0; i < N; i++) {
        t_key_of(key, sizeof(key), i);
        t_put(f, key, "v", KVD_NO_EXPIRY);
    }
    /* Read STEP entries at a time, stopping only at a change of pos, and
     * resume with a fresh iterator at pos + 1, as SCAN does. */
    while (more) {
        kvd_iter *it;
        int got = 0;
        int rc;
        uint64_t stop_pos = 0;
        assert_int_equal(vt->iter_open(f->db, &io, &it, NULL), 0);
        more = false;
        while ((rc = vt->iter_next(it, &e)) == 0) {
            int i = t_index_of(&e);
            if (got >= STEP && e.pos != stop_pos) {
                io.start_pos = stop_pos + 1;
                more = true;
                break;
            }
            assert_true(i >= 0 && i < N);
            assert_int_equal(seen[i], 0);
            seen[i] = 1;
            stop_pos = e.pos;
            got++;
            total++;
        }
        assert_true(rc == 0 || rc == KVD_ENOTFOUND);
        vt->iter_close(it);
    }
    assert_int_equal(total, N);
}

static void
test_memory_iter_prefix_and_keys_only(void **state)
{
    struct t_fix *f = *state;
    struct kvd_iter_opts io = {
        .prefix = "p:", .prefix_len = 2, .flags = KVD_ITER_KEYS_ONLY};
    struct kvd_entry e;
    kvd_iter *it;
    char key[32];
    int n = 0;

    t_open_db(f);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "%s:%d", i % 2 ? "p" : "q", i);
        t_put(f, key, "value", KVD_NO_EXPIRY);
    }
    t_put(f, "p", "too short for the prefix", KVD_NO_EXPIRY);
    assert_int_equal(vt->iter_open(f->db, &io, &it, NULL), 0);
    while (vt->iter_next(it, &e) == 0) {
        assert_true(e.klen > 2);
        assert_memory_equal(e.key, "p:", 2);
        assert_null(e.val);
        assert_int_equal(e.vlen, 5);
        n++;
    }
    vt->iter_close(it);
    assert_int_equal(n, 100);
}

/* ------------------------------------------------------------------ TTL */

static void
test_memory_expired_invisible_and_uncounted(void **state)
{
    struct t_fix *f = *state;
    struct kvd_engine_stats st = {.struct_size = sizeof(st)};
    struct kvd_iter_opts io = {0};
    struct kvd_entry e;
    kvd_iter *it;

    atomic_store(&t_fake_now, T_BASE_MS);
    t_open_db(f);
    t_put(f, "short", "12345", T_BASE_MS + 100);
    t_put(f, "forever", "x", KVD_NO_EXPIRY);
    assert_int_equal(t_keys(f), 2);
    atomic_store(&t_fake_now, T_BASE_MS + 100); /* expiry <= now: expired */
    t_expect_missing(f, "short");
    assert_int_equal(vt->stats(f->db, &st, NULL, NULL), 0);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.key_bytes, 7);
    assert_int_equal(st.value_bytes, 1);
    assert_int_equal(vt->iter_open(f->db, &io, &it, NULL), 0);
    assert_int_equal(vt->iter_next(it, &e), 0);
    assert_memory_equal(e.key, "forever", 7);
    assert_int_equal(vt->iter_next(it, &e), KVD_ENOTFOUND);
    vt->iter_close(it);
    assert_int_equal(vt->del(f->db, "short", 5), KVD_ENOTFOUND);
}

static void
test_memory_maintain_expire_reclaims_all(void **state)
{
    struct t_fix *f = *state;
    char key[32];

    atomic_store(&t_fake_now, T_BASE_MS);
    t_opt_set(f->opts, "expire_interval", "60s"); /* sampler stays idle */
    t_open_db(f);
    for (int i = 0; i < 500; i++) {
        t_key_of(key, sizeof(key), i);
        t_put(f, key, "v", T_BASE_MS + 10 + i % 2 * 100000);
    }
    atomic_store(&t_fake_now, T_BASE_MS + 20);
    assert_int_equal(vt->maintain(f->db, KVD_MAINT_EXPIRE, NULL), 0);
    assert_int_equal(t_counter(f, "expired_reclaimed_forced_total"), 250);
    assert_int_equal(t_keys(f), 250);
    assert_int_equal(vt->maintain(f->db, KVD_MAINT_COMPACT, NULL), KVD_ENOTSUP);
}

static void
test_memory_sampler_reclaims_in_background(void **state)
{
    struct t_fix *f = *state;
    char key[32];
    int waited = 0;

    atomic_store(&t_fake_now, T_BASE_MS);
    t_opt_set(f->opts, "expire_interval", "5");
    t_opt_set(f->opts, "shards", "4");
    t_open_db(f);
    for (int i = 0; i < 2000; i++) {
        t_key_of(key, sizeof(key), i);
        t_put(f, key, "v", i < 1500 ? T_BASE_MS + 50 : KVD_NO_EXPIRY);
    }
    atomic_store(&t_fake_now, T_BASE_MS + 100);
    while (t_counter(f, "expired_reclaimed_sampler_total") < 1500 &&
           waited < 10000) {
        t_sleep_ms(10);
        waited += 10;
    }
    assert_int_equal(t_counter(f, "expired_reclaimed_sampler_total"), 1500);
    assert_int_equal(t_keys(f), 500);
}

/* ---------------------------------------------------- values and batches */

static void
test_memory_value_outlives_overwrite_and_delete(void **state)
{
    struct t_fix *f = *state;
    size_t n = 16u << 20;
    char *big = malloc(n);
    struct kvd_val v;

    assert_non_null(big);
    memset(big, 'A', n);
    t_open_db(f);
    assert_int_equal(vt->put(f->db, "k", 1, big, n, KVD_NO_EXPIRY), 0);
    assert_int_equal(vt->get(f->db, "k", 1, &v), 0);
    memset(big, 'B', n);
    assert_int_equal(vt->put(f->db, "k", 1, big, n, KVD_NO_EXPIRY), 0);
    assert_int_equal(vt->del(f->db, "k", 1), 0);
    assert_int_equal(vt->clear(f->db, NULL), 0);
    memset(big, 'A', n);
    assert_int_equal(v.len, n);
    assert_memory_equal(v.data, big, n); /* still the bytes of the get */
    kvd_val_release(&v);
    free(big);
}

static void
test_memory_batch_with_invalid_op_changes_nothing(void **state)
{
    struct t_fix *f = *state;
    struct kvd_err err = {0};
    struct kvd_op ops[] = {
        {.type = KVD_OP_PUT, .key = "a", .klen = 1, .val = "2", .vlen = 1},
        {.type = KVD_OP_PUT, .key = "b", .klen = 1, .val = "3", .vlen = 1},
        {.type = KVD_OP_DEL, .key = "a", .klen = 1},
        {.type = KVD_OP_PUT, .key = "", .klen = 0, .val = "x", .vlen = 1},
    };

    t_open_db(f);
    t_put(f, "a", "1", KVD_NO_EXPIRY);
    assert_int_equal(vt->batch(f->db, ops, 4, &err), KVD_EINVAL);
    assert_non_null(strstr(err.msg, "batch op 3: empty key"));
    t_expect(f, "a", 1, "1", 1);
    t_expect_missing(f, "b");
    ops[3].type = 9;
    ops[3].klen = 1;
    assert_int_equal(vt->batch(f->db, ops, 4, &err), KVD_EINVAL);
    assert_non_null(strstr(err.msg, "batch op 3: unknown type 9"));
    assert_int_equal(t_keys(f), 1);
}

static void
test_memory_batch_later_ops_win(void **state)
{
    struct t_fix *f = *state;
    struct kvd_op ops[] = {
        {.type = KVD_OP_PUT, .key = "k", .klen = 1, .val = "1", .vlen = 1},
        {.type = KVD_OP_PUT, .key = "k", .klen = 1, .val = "2", .vlen = 1},
        {.type = KVD_OP_PUT, .key = "j", .klen = 1, .val = "x", .vlen = 1},
        {.type = KVD_OP_DEL, .key = "j", .klen = 1},
        {.type = KVD_OP_DEL, .key = "m", .klen = 1},
        {.type = KVD_OP_PUT, .key = "m", .klen = 1, .val = "5", .vlen = 1},
    };

    t_open_db(f);
    assert_int_equal(vt->batch(f->db, ops, 6, NULL), 0);
    t_expect(f, "k", 1, "2", 1);
    t_expect_missing(f, "j");
    t_expect(f, "m", 1, "5", 1);
    assert_int_equal(t_keys(f), 2);
}

/* --------------------------------------------------------- concurrency */

enum {
    T_WRITERS = 2,
    T_READERS = 3,
    T_PRIVATE = 400,
    T_SHARED = 50,
    T_ROUNDS = 20000
};

struct t_conc {
    struct t_fix *f;
    int id;
    atomic_int *stop;
    uint32_t model[T_PRIVATE]; /* writer: last seq written per key */
    int errors;
};

/* value = "<key>|<seq>|" + (seq % 200) bytes of ('a' + seq % 26) */
static size_t
t_make_val(char *buf, const char *key, uint32_t seq)
{
    size_t n = (size_t)sprintf(buf, "%s|%u|", key, seq);
    memset(buf + n, 'a' + (int)(seq % 26), seq % 200);
    return n + seq % 200;
}

/* The value is one some writer wrote whole for this key. */
static bool
t_val_ok(const char *key, const void *data, size_t len)
{
    char buf[512];
    char *bar;
    size_t klen = strlen(key);
    uint32_t seq;

    if (len <= klen + 2 || len >= sizeof(buf) || memcmp(data, key, klen) != 0) {
        return false;
    }
    memcpy(buf, data, len);
    buf[len] = '\0';
    seq = (uint32_t)strtoul(buf + klen + 1, &bar, 10);
    return *bar == '|' && t_make_val(buf, key, seq) == len &&
           memcmp(buf, data, len) == 0;
}

static void *
t_writer(void *arg)
{
    struct t_conc *c = arg;
    char key[32];
    char val[512];
    unsigned r = (unsigned)c->id * 7919u;

    for (uint32_t seq = 1; seq <= T_ROUNDS; seq++) {
        int i;
        r = r * 1103515245u + 12345u;
        if (seq % 3 == 0) { /* overlapping keys: any writer, any order */
            snprintf(key, sizeof(key), "shared:%u", (r >> 8) % T_SHARED);
            i = -1;
        } else {
            i = (int)((r >> 8) % T_PRIVATE);
            snprintf(key, sizeof(key), "w%d:%d", c->id, i);
        }
        if (seq % 17 == 0) {
            int rc = vt->del(c->f->db, key, strlen(key));
            c->errors += rc != 0 && rc != KVD_ENOTFOUND;
            if (i >= 0) {
                c->model[i] = 0;
            }
        } else if (seq % 29 == 0) {
            struct kvd_op op = {.type = KVD_OP_PUT,
                                .key = key,
                                .klen = strlen(key),
                                .val = val};
            op.vlen = t_make_val(val, key, seq);
            c->errors += vt->batch(c->f->db, &op, 1, NULL) != 0;
            if (i >= 0) {
                c->model[i] = seq;
            }
        } else {
            size_t n = t_make_val(val, key, seq);
            /* shared keys carry a TTL that never runs out in the test,
             * so the sampler has work to scan */
            int64_t exp = i < 0 ? t_now_ms(NULL) + 3600000 : KVD_NO_EXPIRY;
            c->errors += vt->put(c->f->db, key, strlen(key), val, n, exp) != 0;
            if (i >= 0) {
                c->model[i] = seq;
            }
        }
    }
    return NULL;
}

static void *
t_reader(void *arg)
{
    struct t_conc *c = arg;
    char key[32];
    unsigned r = (unsigned)c->id * 104729u;

    while (!atomic_load(c->stop)) {
        struct kvd_val v;
        int rc;
        r = r * 1103515245u + 12345u;
        if (r % 3 == 0) {
            snprintf(key, sizeof(key), "shared:%u", (r >> 8) % T_SHARED);
        } else {
            snprintf(key, sizeof(key), "w%u:%u", (r >> 4) % T_WRITERS,
                     (r >> 8) % T_PRIVATE);
        }
        rc = vt->get(c->f->db, key, strlen(key), &v);
        if (rc == KVD_ENOTFOUND) {
            continue;
        }
        if (rc != 0 || !t_val_ok(key, v.data, v.len)) {
            c->errors++;
        } else {
            sched_yield(); /* let a writer replace it, then re-check */
            c->errors += !t_val_ok(key, v.data, v.len);
        }
        if (rc == 0) {
            kvd_val_release(&v);
        }
    }
    return NULL;
}

static void *
t_scanner(void *arg)
{
    struct t_conc *c = arg;

    while (!atomic_load(c->stop)) {
        struct kvd_iter_opts io = {0};
        struct kvd_entry e;
        kvd_iter *it;
        uint64_t last = 0;
        int rc;
        if (vt->iter_open(c->f->db, &io, &it, NULL) != 0) {
            c->errors++;
            return NULL;
        }
        while ((rc = vt->iter_next(it, &e)) == 0) {
            char key[32];
            size_t k = e.klen < sizeof(key) - 1 ? e.klen : sizeof(key) - 1;
            memcpy(key, e.key, k);
            key[k] = '\0';
            c->errors += e.pos < last || !t_val_ok(key, e.val, e.vlen);
            last = e.pos;
        }
        c->errors += rc != KVD_ENOTFOUND;
        vt->iter_close(it);
        {
            struct kvd_engine_stats st = {.struct_size = sizeof(st)};
            c->errors += vt->stats(c->f->db, &st, NULL, NULL) != 0;
        }
    }
    return NULL;
}

static void
test_memory_concurrent_readers_and_writers(void **state)
{
    struct t_fix *f = *state;
    enum { NT = T_WRITERS + T_READERS + 1 };
    static struct t_conc c[NT];
    pthread_t th[NT];
    atomic_int stop = 0;
    char key[32];
    uint64_t live = 0;

    t_opt_set(f->opts, "shards", "4"); /* few shards: more contention */
    /* Snapshots and expiry rounds run all the time alongside. */
    t_opt_set(f->opts, "snapshot_path", "snap.kvd");
    t_opt_set(f->opts, "snapshot_interval", "1");
    t_opt_set(f->opts, "expire_interval", "1");
    t_open_db(f);
    for (int i = 0; i < NT; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].f = f;
        c[i].id = i < T_WRITERS ? i : i - T_WRITERS;
        c[i].stop = &stop;
        assert_int_equal(pthread_create(&th[i], NULL,
                                        i < T_WRITERS               ? t_writer
                                        : i < T_WRITERS + T_READERS ? t_reader
                                                                    : t_scanner,
                                        &c[i]),
                         0);
    }
    for (int i = 0; i < T_WRITERS; i++) {
        pthread_join(th[i], NULL);
    }
    atomic_store(&stop, 1);
    for (int i = T_WRITERS; i < NT; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < NT; i++) {
        assert_int_equal(c[i].errors, 0);
    }
    assert_int_equal(t_counter(f, "snapshot_errors_total"), 0);
    /* Private keys must match each writer's model exactly, before and
     * after a restart from the final snapshot. */
    for (int round = 0; round < 2; round++) {
        live = 0;
        if (round == 1) {
            t_close_db(f);
            t_open_db(f);
        }
        for (int w = 0; w < T_WRITERS; w++) {
            for (int i = 0; i < T_PRIVATE; i++) {
                struct kvd_val v;
                char val[512];
                int rc;
                snprintf(key, sizeof(key), "w%d:%d", w, i);
                rc = vt->get(f->db, key, strlen(key), &v);
                if (c[w].model[i] == 0) {
                    assert_int_equal(rc, KVD_ENOTFOUND);
                    continue;
                }
                assert_int_equal(rc, 0);
                assert_int_equal(v.len, t_make_val(val, key, c[w].model[i]));
                assert_memory_equal(v.data, val, v.len);
                kvd_val_release(&v);
                live++;
            }
        }
        for (int i = 0; i < T_SHARED; i++) {
            struct kvd_val v;
            snprintf(key, sizeof(key), "shared:%d", i);
            if (vt->get(f->db, key, strlen(key), &v) == 0) {
                assert_true(t_val_ok(key, v.data, v.len));
                kvd_val_release(&v);
                live++;
            }
        }
        assert_int_equal(t_keys(f), live);
    }
}

static void
test_memory_clear_empties_everything(void **state)
{
    struct t_fix *f = *state;
    char key[32];

    t_open_db(f);
    for (int i = 0; i < 1000; i++) {
        t_key_of(key, sizeof(key), i);
        t_put(f, key, "v", KVD_NO_EXPIRY);
    }
    assert_int_equal(vt->clear(f->db, NULL), 0);
    assert_int_equal(t_keys(f), 0);
    t_expect_missing(f, "key:000001");
    t_put(f, "again", "1", KVD_NO_EXPIRY);
    assert_int_equal(t_keys(f), 1);
}

/* ----------------------------------------------------------------- main */

static void *t_dl;

static int
t_group_setup(void **state)
{
    (void)state;
    vt = dlsym(t_dl, KVD_ENGINE_ENTRY);
    return vt == NULL ? -1 : 0;
}

int
main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("KVD_TEST_ENGINE");
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, t_setup, t_teardown)
        T(test_memory_snapshot_round_trip),
        T(test_memory_snapshot_bad_checksum_refused),
        T(test_memory_snapshot_truncated_refused),
        T(test_memory_snapshot_bad_magic_refused),
        T(test_memory_snapshot_trailing_garbage_refused),
        T(test_memory_failed_rename_keeps_old_snapshot),
        T(test_memory_missing_snapshot_refused_once_written),
        T(test_memory_snapshot_interval_writes_in_background),
        T(test_memory_invalid_options_refused),
        T(test_memory_iter_resize_returns_each_key_once),
        T(test_memory_iter_resumes_from_pos),
        T(test_memory_iter_prefix_and_keys_only),
        T(test_memory_expired_invisible_and_uncounted),
        T(test_memory_maintain_expire_reclaims_all),
        T(test_memory_sampler_reclaims_in_background),
        T(test_memory_value_outlives_overwrite_and_delete),
        T(test_memory_batch_with_invalid_op_changes_nothing),
        T(test_memory_batch_later_ops_win),
        T(test_memory_concurrent_readers_and_writers),
        T(test_memory_clear_empties_everything),
#undef T
    };
    int rc;

    if (path == NULL) {
        fprintf(stderr, "usage: %s PATH/kvd_engine_memory.so\n", argv[0]);
        return 2;
    }
    t_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (t_dl == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return 2;
    }
    rc = cmocka_run_group_tests_name("memory", tests, t_group_setup, NULL);
    /* No dlclose: sanitizer reports of unloaded modules are unreadable. */
    return rc;
}
