/*
 * core/hostsvc.c -- the default struct kvd_host: logging through core/log.c,
 * the real-time clock, and the C library's file calls.
 *
 * The tables are const objects with static storage, so plugins may keep
 * pointers to them for as long as the process lives.
 */
#include "core/hostsvc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static void (*_Atomic shutdown_hook)(const char *why);

/* The attribute lets the compiler check callers and the vsnprintf below
 * (clang's -Wformat-nonliteral). */
static void host_log(const struct kvd_host *host, int level, const char *fmt,
                     ...) KVD_PRINTF(3, 4);

static void
host_log(const struct kvd_host *host, int level, const char *fmt, ...)
{
    va_list ap;
    (void)host;
    va_start(ap, fmt);
    kvd_logv(level, fmt, ap);
    va_end(ap);
}

static int
host_log_enabled(const struct kvd_host *host, int level)
{
    (void)host;
    return kvd_log_enabled(level);
}

static int64_t
host_now_ms(const struct kvd_host *host)
{
    struct timespec ts;
    (void)host;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
host_mono_ns(const struct kvd_host *host)
{
    struct timespec ts;
    (void)host;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
host_request_shutdown(const struct kvd_host *host, const char *why)
{
    void (*hook)(const char *) = atomic_load(&shutdown_hook);
    (void)host;
    if (hook != NULL) {
        hook(why);
    } else {
        kvd_log(KVD_LOG_INFO, "shutdown requested (%s), but nothing to stop",
                why);
    }
}

void
kvd_hostsvc_set_shutdown_hook(void (*hook)(const char *why))
{
    atomic_store(&shutdown_hook, hook);
}

/* open() is variadic; the table needs a fixed signature. */
static int
posix_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags | O_CLOEXEC, mode);
}

/* posix_fallocate returns the error instead of setting errno. */
static int
posix_alloc(int fd, off_t off, off_t len)
{
    int rc = posix_fallocate(fd, off, len);

    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

/* sync_file_range where it exists; "cannot here" (EINVAL: a file system
 * without it, ENOSYS, ESPIPE) is nothing done, not a failure. */
static int
posix_writeback(int fd, off_t off, off_t len)
{
#ifdef SYNC_FILE_RANGE_WRITE
    if (sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE) != 0 &&
        errno != EINVAL && errno != ENOSYS && errno != ESPIPE) {
        return -1;
    }
#else
    (void)fd;
    (void)off;
    (void)len;
#endif
    return 0;
}

static const struct kvd_io posix_io = {
    .struct_size = sizeof(struct kvd_io),
    .open = posix_open,
    .close = close,
    .pread = pread,
    .pwrite = pwrite,
    .write = write,
    .fsync = fsync,
    .fdatasync = fdatasync,
    .ftruncate = ftruncate,
    .rename = rename,
    .unlink = unlink,
    .mkdir = mkdir,
    .fallocate = posix_alloc,
    .writeback = posix_writeback,
};

static const struct kvd_host default_host = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_host),
    .ctx = NULL,
    .log = host_log,
    .log_enabled = host_log_enabled,
    .now_ms = host_now_ms,
    .io = &posix_io,
    .request_shutdown = host_request_shutdown,
    .mono_ns = host_mono_ns,
};

const struct kvd_host *
kvd_hostsvc_default(void)
{
    return &default_host;
}

const struct kvd_io *
kvd_hostsvc_posix_io(void)
{
    return &posix_io;
}
