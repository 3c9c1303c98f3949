/*
 * core/server.h -- wire a configuration into a running server.
 *
 * Start-up order: log -> engine plugin -> engine options -> store (engine
 * open and recovery) -> command layer -> every frontend's create (binds,
 * so a bad address fails before anything is served) -> every start.
 * Shutdown (SIGINT, SIGTERM, or a frontend's request_shutdown): every
 * frontend's stop (no new work) -> destroy (work in flight finishes) ->
 * command layer -> store close (engine flushes) -> pid file removed.
 */
#ifndef KVD_CORE_SERVER_H
#define KVD_CORE_SERVER_H

#include <stdbool.h>

#include "core/config.h"
#include "kvd/status.h"

struct kvd_run_opts {
    bool daemonize;
    const char *pid_file; /* overrides [server] pid_file when set */
};

/* Run until asked to stop. Returns the process exit status. */
int kvd_server_run(const struct kvd_config *cfg, const struct kvd_run_opts *ro);

/* Everything start-up checks before it opens data or binds: the
 * directories of the files kvd creates (pid_file overrides [server]
 * pid_file when not NULL), the plugin directory's ownership, every plugin
 * the config names (loaded, validated, never called) and every option with
 * its constraints. Warnings (an open listener without a password) are
 * logged. 0 or a status with err filled. */
int kvd_server_check_config(const struct kvd_config *cfg, const char *pid_file,
                            struct kvd_err *err);

#endif /* KVD_CORE_SERVER_H */
