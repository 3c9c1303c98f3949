/*
 * core/hostsvc.c -- the default struct kvd_host: logging through core/log.c,
 * the real-time clock, and the C library's file calls (core/posix_io.c).
 *
 * The tables are const objects with static storage, so plugins may keep
 * pointers to them for as long as the process lives.
 */
#include "core/hostsvc.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "core/log.h"
#include "core/posix_io.h"

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

static const struct kvd_host default_host = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_host),
    .ctx = NULL,
    .log = host_log,
    .log_enabled = host_log_enabled,
    .now_ms = host_now_ms,
    .io = &kvd_posix_io,
    .request_shutdown = host_request_shutdown,
    .mono_ns = host_mono_ns,
};

const struct kvd_host *
kvd_hostsvc_default(void)
{
    return &default_host;
}
