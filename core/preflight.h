/*
 * core/preflight.h -- the checks start-up would fail on that need the file
 * system or the resolver but bind, open and run nothing: directories of the
 * files kvd and its plugins create, whether the data directory can be
 * created, whether listen addresses resolve, and the insecure-listener
 * warning.
 *
 * `kvd --check-config` and start-up run the same checks, before any plugin
 * code, so a file the checker calls valid starts (short of a busy port or
 * a damaged data directory). Every message names the file, the line (or
 * "(default)"), the section, the key, the value and the rule broken:
 *   kvd.ini:9: [frontend.resp] unix_socket = /run/kvd/kvd.sock: directory
 *   /run/kvd does not exist (the file's directory must exist and be
 *   writable)
 *
 * Thread-safety: call from one thread (start-up).
 */
#ifndef KVD_CORE_PREFLIGHT_H
#define KVD_CORE_PREFLIGHT_H

#include "core/config.h"
#include "core/options.h"
#include "kvd/status.h"

/*
 * [server]: data_dir (and DATA_DIR/ENGINE) exists as a writable directory
 * or can be created; the directories of pid_file (or `pid_override`, the
 * --pidfile argument, when not NULL or empty) and log_file exist and are
 * writable; the pid file is not a symbolic link; syslog and log_file are
 * not both set. 0 or KVD_ECONFIG with err filled.
 */
int kvd_preflight_server(const struct kvd_config *cfg, const char *engine,
                         const char *pid_override, struct kvd_err *err);

/*
 * A plugin's section, after kvd_options_parse filled `opts` from it with
 * `table`: every KVD_OPT_NEWFILE path's directory exists and is writable,
 * every KVD_OPT_LISTEN host resolves. `section` is the section's name, for
 * messages when `sec` is NULL. 0 or KVD_ECONFIG with err filled.
 */
int kvd_preflight_section(const struct kvd_config *cfg, const char *section,
                          const struct kvd_option *table,
                          const struct kvd_conf_section *sec, const void *opts,
                          struct kvd_err *err);

/* A plugin's check_options (kvd_engine_vtable, kvd_frontend_vtable). */
typedef int (*kvd_preflight_rules_fn)(const void *opts, const char **key,
                                      struct kvd_err *err);

/*
 * A plugin's own rules across its section's options: calls check (NULL:
 * nothing to check) on `opts` and, when it refuses, prefixes its message
 * with "FILE:LINE: [SECTION] KEY = VALUE" for the option it names; when it
 * names none, "FILE:LINE: [SECTION]" with the line of the first option of
 * the section its message mentions (else the section's line). 0 or
 * KVD_ECONFIG with err filled.
 */
int kvd_preflight_rules(const struct kvd_config *cfg, const char *section,
                        const struct kvd_option *table,
                        const struct kvd_conf_section *sec, const void *opts,
                        kvd_preflight_rules_fn check, struct kvd_err *err);

/*
 * Log a warning for every KVD_OPT_LISTEN option of the section that
 * resolves to a non-loopback address while every KVD_OPT_SECRET option of
 * the section is empty (anyone who reaches the port can read and write
 * every key). Returns the number of warnings.
 */
int kvd_preflight_warn(const struct kvd_config *cfg, const char *section,
                       const struct kvd_option *table,
                       const struct kvd_conf_section *sec, const void *opts);

#endif /* KVD_CORE_PREFLIGHT_H */
