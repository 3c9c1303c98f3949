/*
 * core/log.c -- the process-wide logger.
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so lines from concurrent threads never interleave (POSIX makes a single
 * write to a regular file or pipe atomic with respect to other writes in
 * O_APPEND mode, and stderr lines here stay under PIPE_BUF in practice).
 * The level is an atomic int, so a filtered call costs one relaxed load.
 * The fd changes only at open/close, which run single-threaded at start-up
 * and shutdown.
 */
#include "core/log.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_BYTES 2048

static atomic_int log_level = KVD_LOG_INFO;
static int log_fd = STDERR_FILENO;

int
kvd_log_open(const char *path, int level, struct kvd_err *err)
{
    kvd_log_set_level(level);
    if (path == NULL || path[0] == '\0') {
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        return kvd_err_set(err, KVD_EIO, "open log file %s: %s", path,
                           strerror(errno));
    }
    if (log_fd != STDERR_FILENO) {
        close(log_fd);
    }
    log_fd = fd;
    return 0;
}

void
kvd_log_close(void)
{
    if (log_fd != STDERR_FILENO) {
        close(log_fd);
        log_fd = STDERR_FILENO;
    }
}

void
kvd_log_set_level(int level)
{
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int
kvd_log_enabled(int level)
{
    return level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int
kvd_log_level_parse(const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void
kvd_logv(int level, const char *fmt, va_list ap)
{
    static const char tags[] = "EWID";
    char line[LOG_LINE_BYTES];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;

    if (!kvd_log_enabled(level)) {
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03dZ %c [%d] ",
                 (int)(tv.tv_usec / 1000),
                 tags[level < 0 ? 0 : (level > 3 ? 3 : level)], (int)getpid());
    n += (size_t)r;
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (r < 0) {
        return;
    }
    n += (size_t)r;
    if (n > sizeof(line) - 2) {
        n = sizeof(line) - 2; /* truncated: keep the newline */
    }
    line[n++] = '\n';
    /* Best effort: a failed log write has nowhere to be reported. */
    ssize_t w = write(log_fd, line, n);
    (void)w;
}

void
kvd_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvd_logv(level, fmt, ap);
    va_end(ap);
}
