/*
 * th_host.c -- the test host of the conformance and crash kit (see
 * th_host.h). Thread-safe: counters are atomics and the log buffer has a
 * mutex, since engines log from their background threads.
 */
#include "th_host.h"

#include "core/posix_io.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct th_io_state th_io;

/* ---- fault-injecting I/O ---- */

static int
th_should_fail(_Atomic long *counter, _Atomic long *at)
{
    long n = atomic_fetch_add(counter, 1) + 1;
    long f = atomic_load(at);
    return f > 0 && n == f;
}

/* Count a mutation; at the armed one, die (after half of `torn` bytes
 * at `off` when the mutation is a write and torn kills are on). */
static void
th_mutation_torn(int fd, const void *buf, size_t n, off_t off, int positional)
{
    long m = atomic_fetch_add(&th_io.mutations, 1) + 1;
    long k = atomic_load(&th_io.kill_at_mutation);

    if (k <= 0 || m < k) {
        return;
    }
    if (buf != NULL && n > 1 && atomic_load(&th_io.torn_kill)) {
        ssize_t w =
            positional ? pwrite(fd, buf, n / 2, off) : write(fd, buf, n / 2);
        (void)w; /* dying anyway */
    }
    raise(SIGKILL);
}

static void
th_mutation(void)
{
    th_mutation_torn(-1, NULL, 0, 0, 0);
}

/* The file system is read-only: fail with EROFS. */
/* The disk is full: writes fail with ENOSPC. */
static int
th_full(void)
{
    if (atomic_load(&th_io.full_disk)) {
        errno = ENOSPC;
        return 1;
    }
    return 0;
}

static int
th_rofs(void)
{
    if (atomic_load(&th_io.readonly_fs)) {
        errno = EROFS;
        return 1;
    }
    return 0;
}

static int
th_open(const char *path, int flags, mode_t mode)
{
    if ((flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0 && th_rofs()) {
        return -1;
    }
    return open(path, flags, mode);
}

static int
th_close(int fd)
{
    return close(fd);
}

static ssize_t
th_pread(int fd, void *buf, size_t n, off_t off)
{
    atomic_fetch_add(&th_io.preads, 1);
    return pread(fd, buf, n, off);
}

static ssize_t
th_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    th_mutation_torn(fd, buf, n, off, 1);
    if (th_rofs() || th_full()) {
        return -1;
    }
    if (th_should_fail(&th_io.writes, &th_io.fail_write_at)) {
        errno = atomic_load(&th_io.fail_errno);
        return -1;
    }
    return pwrite(fd, buf, n, off);
}

static ssize_t
th_write(int fd, const void *buf, size_t n)
{
    th_mutation_torn(fd, buf, n, 0, 0);
    if (th_rofs() || th_full()) {
        return -1;
    }
    if (th_should_fail(&th_io.writes, &th_io.fail_write_at)) {
        errno = atomic_load(&th_io.fail_errno);
        return -1;
    }
    return write(fd, buf, n);
}

static int
th_sync_common(int fd, int data_only)
{
    int us;

    th_mutation();
    if (th_should_fail(&th_io.syncs, &th_io.fail_sync_at)) {
        errno = atomic_load(&th_io.fail_errno);
        return -1;
    }
    us = atomic_load(&th_io.sync_delay_us);
    if (us > 0) {
        usleep((useconds_t)us);
    }
    return data_only ? fdatasync(fd) : fsync(fd);
}

static int
th_fsync(int fd)
{
    return th_sync_common(fd, 0);
}

static int
th_fdatasync(int fd)
{
    return th_sync_common(fd, 1);
}

static int
th_ftruncate(int fd, off_t len)
{
    th_mutation();
    if (th_rofs()) {
        return -1;
    }
    return ftruncate(fd, len);
}

static int
th_rename(const char *from, const char *to)
{
    th_mutation();
    if (th_rofs()) {
        return -1;
    }
    return rename(from, to);
}

static int
th_unlink(const char *path)
{
    th_mutation();
    if (th_rofs()) {
        return -1;
    }
    return unlink(path);
}

static int
th_mkdir(const char *path, mode_t mode)
{
    struct stat st;

    /* as the kernel: an existing name is EEXIST even on a read-only fs */
    if (stat(path, &st) != 0 && th_rofs()) {
        return -1;
    }
    return mkdir(path, mode);
}

/* A preallocation is a write: the Nth write may be one, and a full disk
 * or a read-only file system fails it the same way. */
static int
th_fallocate(int fd, off_t off, off_t len)
{
    int fail;

    th_mutation();
    if (th_rofs() || th_full()) {
        return -1;
    }
    fail = th_should_fail(&th_io.allocs, &th_io.fail_alloc_at);
    fail |= th_should_fail(&th_io.writes, &th_io.fail_write_at);
    if (fail) {
        errno = atomic_load(&th_io.fail_errno);
        return -1;
    }
    return kvd_posix_io.fallocate(fd, off, len);
}

/* Starting writeback changes no file: not a mutation, and a read-only
 * file system or a full disk does not fail it. Past the injected failure
 * it is the default host's call, where "cannot here" is nothing done. */
static int
th_writeback(int fd, off_t off, off_t len)
{
    if (th_should_fail(&th_io.writebacks, &th_io.fail_writeback_at)) {
        errno = atomic_load(&th_io.fail_errno);
        return -1;
    }
    return kvd_posix_io.writeback(fd, off, len);
}

const struct kvd_io th_io_table = {
    .struct_size = sizeof(struct kvd_io),
    .open = th_open,
    .close = th_close,
    .pread = th_pread,
    .pwrite = th_pwrite,
    .write = th_write,
    .fsync = th_fsync,
    .fdatasync = th_fdatasync,
    .ftruncate = th_ftruncate,
    .rename = th_rename,
    .unlink = th_unlink,
    .mkdir = th_mkdir,
    .fallocate = th_fallocate,
    .writeback = th_writeback,
};

void
th_io_reset(void)
{
    atomic_store(&th_io.preads, 0);
    atomic_store(&th_io.writes, 0);
    atomic_store(&th_io.allocs, 0);
    atomic_store(&th_io.syncs, 0);
    atomic_store(&th_io.mutations, 0);
    atomic_store(&th_io.fail_write_at, 0);
    atomic_store(&th_io.fail_alloc_at, 0);
    atomic_store(&th_io.fail_sync_at, 0);
    atomic_store(&th_io.writebacks, 0);
    atomic_store(&th_io.fail_writeback_at, 0);
    atomic_store(&th_io.kill_at_mutation, 0);
    atomic_store(&th_io.torn_kill, 0);
    atomic_store(&th_io.full_disk, 0);
    atomic_store(&th_io.readonly_fs, 0);
    atomic_store(&th_io.fail_errno, EIO);
    atomic_store(&th_io.sync_delay_us, 0);
}

/* ---- log capture ---- */

#define TH_LOG_BYTES (256 * 1024)

static pthread_mutex_t th_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char th_log_buf[TH_LOG_BYTES];
static size_t th_log_len;

static void KVD_PRINTF(3, 4)
    th_log(const struct kvd_host *host, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    size_t n;

    (void)host;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (getenv("KVD_TEST_VERBOSE") != NULL ||
        getenv("ALOG_TEST_VERBOSE") != NULL) {
        fprintf(stderr, "[log %d] %s\n", level, line);
    }
    n = strlen(line);
    pthread_mutex_lock(&th_log_mu);
    if (th_log_len + n + 2 < TH_LOG_BYTES) {
        memcpy(th_log_buf + th_log_len, line, n);
        th_log_len += n;
        th_log_buf[th_log_len++] = '\n';
        th_log_buf[th_log_len] = '\0';
    }
    pthread_mutex_unlock(&th_log_mu);
}

static int
th_log_enabled(const struct kvd_host *host, int level)
{
    (void)host;
    (void)level;
    return 1;
}

void
th_log_clear(void)
{
    pthread_mutex_lock(&th_log_mu);
    th_log_len = 0;
    th_log_buf[0] = '\0';
    pthread_mutex_unlock(&th_log_mu);
}

int
th_log_count(const char *needle)
{
    int n = 0;
    const char *p;

    pthread_mutex_lock(&th_log_mu);
    for (p = th_log_buf; (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    pthread_mutex_unlock(&th_log_mu);
    return n;
}

int
th_log_contains(const char *needle)
{
    return th_log_count(needle) > 0;
}

/* ---- clock ---- */

static _Atomic int64_t th_fake_now;

void
th_clock_set(int64_t now_ms)
{
    atomic_store(&th_fake_now, now_ms);
}

static int64_t
th_now_ms(const struct kvd_host *host)
{
    struct timespec ts;
    int64_t f = atomic_load(&th_fake_now);

    (void)host;
    if (f != 0) {
        return f;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static _Atomic int64_t th_fake_mono;

void
th_mono_set(int64_t now_ns)
{
    atomic_store(&th_fake_mono, now_ns);
}

static int64_t
th_mono_ns(const struct kvd_host *host)
{
    struct timespec ts;
    int64_t f = atomic_load(&th_fake_mono);

    (void)host;
    if (f != 0) {
        return f;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
th_request_shutdown(const struct kvd_host *host, const char *why)
{
    (void)host;
    (void)why;
}

const struct kvd_host th_host = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_host),
    .ctx = NULL,
    .log = th_log,
    .log_enabled = th_log_enabled,
    .now_ms = th_now_ms,
    .io = &th_io_table,
    .request_shutdown = th_request_shutdown,
    .mono_ns = th_mono_ns,
};

/* ---- plugin ---- */

const struct kvd_engine_vtable *
th_engine(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("KVD_TEST_ENGINE");
    const struct kvd_engine_vtable *vt;
    void *h;

    if (path == NULL || path[0] == '\0') {
        fprintf(stderr, "usage: %s ENGINE.so (or $KVD_TEST_ENGINE)\n",
                argc > 0 ? argv[0] : "test");
        exit(2);
    }
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(2);
    }
    vt = dlsym(h, KVD_ENGINE_ENTRY);
    if (vt == NULL || vt->abi_version != KVD_ABI_VERSION ||
        vt->struct_size < KVD_ENGINE_VTABLE_MIN_SIZE) {
        fprintf(stderr, "%s: not a kvd engine of ABI %d\n", path,
                KVD_ABI_VERSION);
        exit(2);
    }
    th_io_reset();
    return vt; /* never dlclosed: the tests exit */
}

/* ---- directories ---- */

char *
th_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *p;

    if (base == NULL) {
        base = "/tmp";
    }
    p = malloc(strlen(base) + 32);
    sprintf(p, "%s/kvdtest.XXXXXX", base);
    if (mkdtemp(p) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    return p;
}

static int
th_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
th_rmrf(const char *dir)
{
    if (dir != NULL && dir[0] != '\0') {
        nftw(dir, th_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

int
th_copy_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *de;
    char src[4096];
    char dst[4096];
    char buf[65536];

    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        int in;
        int out;
        ssize_t n;
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(src, sizeof(src), "%s/%s", from, de->d_name);
        snprintf(dst, sizeof(dst), "%s/%s", to, de->d_name);
        in = open(src, O_RDONLY);
        out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0) {
            closedir(d);
            return -1;
        }
        while ((n = read(in, buf, sizeof(buf))) > 0) {
            if (write(out, buf, (size_t)n) != n) {
                closedir(d);
                return -1;
            }
        }
        close(in);
        close(out);
    }
    closedir(d);
    return 0;
}

struct th_stat_find {
    const char *name;
    uint64_t value;
};

static void
th_stat_cb(void *ctx, const char *name, uint64_t value)
{
    struct th_stat_find *f = ctx;
    if (strcmp(name, f->name) == 0) {
        f->value = value;
    }
}

uint64_t
th_stat(const struct kvd_engine_vtable *vt, kvd_engine *e, const char *name)
{
    struct kvd_engine_stats st;
    struct th_stat_find f = {name, UINT64_MAX};

    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    vt->stats(e, &st, th_stat_cb, &f);
    return f.value;
}

void
th_stats(const struct kvd_engine_vtable *vt, kvd_engine *e,
         struct kvd_engine_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->struct_size = sizeof(*st);
    vt->stats(e, st, NULL, NULL);
}
