/*
 * core/log.c -- the process-wide logger (stderr, a file, or syslog).
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so lines from concurrent threads never interleave (POSIX makes a single
 * write to a regular file or pipe atomic with respect to other writes in
 * O_APPEND mode, and stderr lines here stay under PIPE_BUF in practice).
 * The level is an atomic int, so a filtered call costs one relaxed load.
 * The fd number changes only at open/close, which run single-threaded at
 * start-up and shutdown; a reopen (SIGHUP) swaps the file under the same
 * number with dup2.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_BYTES 2048

static atomic_int log_level = KVD_LOG_INFO;
static int log_fd = STDERR_FILENO;
static char log_path[PATH_MAX]; /* the file's path, for reopen */
static atomic_bool log_syslog;  /* lines go to syslog() */
static bool log_journal;        /* stderr is the journal: "<N>" prefixes */

/* Whether stderr is the stream systemd connected to the journal: the
 * documented test is $JOURNAL_STREAM = "DEV:INODE" of that stream. */
static bool
stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
        fstat(STDERR_FILENO, &st) != 0) {
        return false;
    }
    return (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

static int
log_open_file(const char *path, struct kvd_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        return kvd_err_set(err, KVD_EIO, "open log file %s: %s", path,
                           strerror(errno));
    }
    return fd;
}

int
kvd_log_open(const char *path, int level, struct kvd_err *err)
{
    int fd;

    kvd_log_set_level(level);
    if (path == NULL || path[0] == '\0') {
        log_journal = stderr_is_journal();
        return 0;
    }
    if (strlen(path) >= sizeof(log_path)) {
        return kvd_err_set(err, KVD_EINVAL, "log file path too long: %s", path);
    }
    fd = log_open_file(path, err);
    if (fd < 0) {
        return fd;
    }
    if (log_fd != STDERR_FILENO) {
        close(log_fd);
    }
    log_fd = fd;
    log_journal = false;
    snprintf(log_path, sizeof(log_path), "%s", path);
    return 0;
}

void
kvd_log_open_syslog(const char *facility, int level)
{
    static const struct {
        const char *name;
        int facility;
    } map[] = {
        {"user", LOG_USER},     {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1},
        {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4},
        {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7}};
    int fac = LOG_DAEMON;

    for (size_t i = 0; facility != NULL && i < sizeof(map) / sizeof(map[0]);
         i++) {
        if (strcasecmp(facility, map[i].name) == 0) {
            fac = map[i].facility;
        }
    }
    kvd_log_set_level(level);
    openlog("kvd", LOG_PID | LOG_NDELAY, fac);
    atomic_store(&log_syslog, true);
}

int
kvd_log_reopen(struct kvd_err *err)
{
    int fd;

    if (log_fd == STDERR_FILENO || log_path[0] == '\0') {
        return 0;
    }
    fd = log_open_file(log_path, err);
    if (fd < 0) {
        return fd;
    }
    /* dup2 swaps the file under log_fd in one step: a thread writing at
     * that moment writes to one file or the other, never to a closed fd. */
    if (dup2(fd, log_fd) < 0) {
        int e = errno;
        close(fd);
        return kvd_err_set(err, KVD_EIO, "reopen log file %s: %s", log_path,
                           strerror(e));
    }
    close(fd);
    return 0;
}

void
kvd_log_close(void)
{
    if (log_fd != STDERR_FILENO) {
        close(log_fd);
        log_fd = STDERR_FILENO;
    }
    log_path[0] = '\0';
    if (atomic_exchange(&log_syslog, false)) {
        closelog();
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
    /* syslog and journal priorities of ERROR, WARN, INFO, DEBUG */
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char line[LOG_LINE_BYTES];
    int lv = level < 0 ? 0 : (level > 3 ? 3 : level);
    struct timeval tv;
    struct tm tm;
    size_t n = 0;
    int r;

    if (!kvd_log_enabled(level)) {
        return;
    }
    if (atomic_load_explicit(&log_syslog, memory_order_relaxed)) {
        /* syslog records the time, the pid and the priority itself */
        r = snprintf(line, sizeof(line), "%c ", tags[lv]);
        vsnprintf(line + r, sizeof(line) - (size_t)r, fmt, ap);
        syslog(prio[lv], "%s", line);
        return;
    }
    if (log_journal) {
        n = (size_t)snprintf(line, sizeof(line), "<%d>", prio[lv]);
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n += strftime(line + n, sizeof(line) - n, "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03dZ %c [%d] ",
                 (int)(tv.tv_usec / 1000), tags[lv], (int)getpid());
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
