/*
 * core/log.h -- leveled, timestamped logging to stderr or a file.
 *
 * One process-wide logger: lines are "2026-11-20T22:40:19.123Z I message",
 * written with one write(2) each so lines from many threads never
 * interleave. Filtering is one relaxed atomic load.
 */
#ifndef KVD_CORE_LOG_H
#define KVD_CORE_LOG_H

#include <stdarg.h>

#include "kvd/host.h"
#include "kvd/status.h"

/* Log to `path` (NULL or "" = stderr) at `level` and above. */
int kvd_log_open(const char *path, int level, struct kvd_err *err);
void kvd_log_close(void);
void kvd_log_set_level(int level);
int kvd_log_enabled(int level);

void kvd_log(int level, const char *fmt, ...) KVD_PRINTF(2, 3);
void kvd_logv(int level, const char *fmt, va_list ap);

/* "error", "warn", "info", "debug" -> level, or -1. */
int kvd_log_level_parse(const char *name);

#endif /* KVD_CORE_LOG_H */
