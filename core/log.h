/*
 * core/log.h -- leveled, timestamped logging to stderr, a file or syslog.
 *
 * One process-wide logger: lines are
 * "2026-11-20T22:40:19.123Z I [pid] message", written with one write(2)
 * each so lines from many threads never interleave. Filtering is one
 * relaxed atomic load. When stderr is the systemd journal ($JOURNAL_STREAM
 * names it), each line also starts with its priority ("<6>"), so the
 * journal records the level. With syslog, the level is the priority and
 * syslog adds the time.
 */
#ifndef KVD_CORE_LOG_H
#define KVD_CORE_LOG_H

#include <stdarg.h>

#include "kvd/host.h"
#include "kvd/status.h"

/* Log to `path` (NULL or "" = stderr) at `level` and above. */
int kvd_log_open(const char *path, int level, struct kvd_err *err);
/* Log to syslog instead, as "kvd" with LOG_PID, at facility "daemon",
 * "user" or "local0".."local7" (anything else: daemon). */
void kvd_log_open_syslog(const char *facility, int level);
/* Reopen the log file by its path (SIGHUP: logrotate moved it away). Lines
 * written meanwhile by other threads go to the old or the new file, never
 * lost: the new file replaces the old one under the same descriptor. 0
 * (also when logging to stderr or syslog), or a status with err filled
 * (the old file stays in use). */
int kvd_log_reopen(struct kvd_err *err);
void kvd_log_close(void);
void kvd_log_set_level(int level);
int kvd_log_enabled(int level);

void kvd_log(int level, const char *fmt, ...) KVD_PRINTF(2, 3);
void kvd_logv(int level, const char *fmt, va_list ap) KVD_PRINTF(2, 0);

/* "error", "warn", "info", "debug" -> level, or -1. */
int kvd_log_level_parse(const char *name);

#endif /* KVD_CORE_LOG_H */
