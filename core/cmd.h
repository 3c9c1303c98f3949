/*
 * core/cmd.h -- the command layer shared by every frontend.
 *
 * One table of commands (name, arity, flags, handler) executed against the
 * store. A frontend opens a session per client with its struct
 * kvd_reply_ops encoder, turns its wire format into argv/argl and calls
 * kvd_cmd_call(); the layer writes the reply through the encoder, so
 * "SET a 1" means the same thing on stdin, RESP and anything later.
 * Replies and error texts follow Redis's wording, so Redis clients and
 * tooling behave the same against kvd. The implementation is core/cmd/
 * (see core/cmd/cmd_int.h for its files).
 *
 * Thread-safety: kvd_cmd is shared by all threads; a kvd_session and a
 * kvd_cmd_pass belong to one thread at a time, and the sessions of a pass
 * to the pass's thread.
 */
#ifndef KVD_CORE_CMD_H
#define KVD_CORE_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/frontend.h"
#include "kvd/status.h"

struct kvd_cmd_config {
    const char *requirepass; /* NULL or "": no AUTH needed */
    const char *version;     /* reported by INFO */
    const char *config_file; /* reported by INFO */
    /* What the host runs with, for CONFIG GET and INFO (docs/protocol.md):
     * appendfsync is the engine's sync policy in Redis's words ("always",
     * "everysec", "no"), NULL when the engine has none (the parameter is
     * then left out); save is Redis's form of the engine's snapshot
     * schedule ("300 1"), NULL or "" for none; tcp_port is the RESP
     * frontend's configured port (0: none, or chosen by the kernel);
     * maxclients its connection limit (0: no RESP frontend, left out). */
    const char *appendfsync;
    const char *save;
    int tcp_port;
    int maxclients;
};

/*
 * Create the command layer over `st` (borrowed; must outlive the layer).
 * The config strings are copied. Returns 0, or KVD_ENOMEM with err filled.
 */
int kvd_cmd_create(kvd_store *st, const struct kvd_cmd_config *cfg,
                   kvd_cmd **out, struct kvd_err *err);

/* Free the layer (NULL: no-op). Every session must be destroyed first. */
void kvd_cmd_destroy(kvd_cmd *c);

/* The table handed to frontends (struct kvd_server.cmd_api). */
const struct kvd_cmd_api *kvd_cmd_api_table(void);

/* --- sessions and execution (struct kvd_cmd_api) ------------------------ */

/*
 * Open a session (kvd_cmd_api.session_open): info's strings are copied,
 * its ops, w and pass kept (they must outlive the session). The frontend
 * name is copied (first 15 bytes); the first time a name is seen it gets
 * its own counters (up to 15 names; later ones are counted as "other", a
 * NULL or empty name as "unknown"). Takes cmd's session lock. Returns
 * NULL when out of memory. The session belongs to the calling thread
 * (the thread of its pass).
 */
kvd_session *kvd_cmd_session_open(kvd_cmd *c,
                                  const struct kvd_session_info *info);

/* First edition: a session without an encoder, for kvd_cmd_exec. */
kvd_session *kvd_cmd_session_create(kvd_cmd *c, const char *frontend,
                                    unsigned flags);

/* Close a session (NULL: no-op). Commands it queued in its pass still
 * run; their replies are dropped. Takes cmd's session lock. */
void kvd_cmd_session_destroy(kvd_session *s);

/*
 * Give the session a password of its own (struct
 * kvd_cmd_api.session_set_password): AUTH and HELLO AUTH check it instead
 * of the layer's requirepass, and an untrusted session needs AUTH before
 * any other command. `password` (len bytes, any bytes) is copied;
 * NULL or len 0 drops it, back to the layer's requirepass. If the copy
 * cannot be allocated the session is left unable to authenticate (fail
 * closed) rather than open: every AUTH gets WRONGPASS.
 */
void kvd_cmd_session_set_password(kvd_session *s, const char *password,
                                  size_t len);

/* The session's protocol version: 2, or 3 after HELLO 3 (until HELLO 2 or
 * RESET). */
int kvd_cmd_session_proto(const kvd_session *s);

/*
 * Execute one command through the session's encoder (kvd_cmd_api.call):
 * returns enum kvd_exec_flag bits (>= 0), KVD_EXEC_PENDING when it waits
 * in the session's pass. Owner thread only.
 */
int kvd_cmd_call(kvd_session *s, size_t argc, const char *const *argv,
                 const size_t *argl);

/*
 * Execute one command and write exactly one reply now through ops/w
 * (kvd_cmd_api.exec, the first edition; the base members of ops only).
 * Commands the session queued in its pass run first. Returns enum
 * kvd_exec_flag bits (>= 0), never KVD_EXEC_PENDING.
 */
int kvd_cmd_exec(kvd_session *s, size_t argc, const char *const *argv,
                 const size_t *argl, const struct kvd_reply_ops *ops, void *w);

/*
 * Split one text line into arguments (see struct kvd_cmd_api.split).
 * argv[i] points into buf and is not NUL-terminated: use argl[i].
 * Returns the argument count, KVD_EINVAL ("unbalanced quotes in request")
 * or KVD_ETOOBIG (more than max_args arguments), err filled on failure.
 */
int kvd_cmd_split(const char *line, size_t len, char *buf, size_t max_args,
                  const char **argv, size_t *argl, struct kvd_err *err);

/* --- passes: deferred execution (struct kvd_cmd_api.pass_*) -------------- */

/*
 * A pass belongs to the thread that creates it, and so does every session
 * opened with it. pass_create: NULL when the store's engine has no multi
 * (deferring gains nothing) or out of memory. pass_end: run what is
 * queued, write every reply in queue order through each session's
 * encoder; returns the number of replies written. pass_pending: commands
 * queued and not replied yet. pass_destroy: pass_end, then free (NULL:
 * no-op).
 */
kvd_cmd_pass *kvd_cmd_pass_create(kvd_cmd *c);
size_t kvd_cmd_pass_end(kvd_cmd_pass *p);
size_t kvd_cmd_pass_pending(const kvd_cmd_pass *p);
void kvd_cmd_pass_destroy(kvd_cmd_pass *p);

/* --- metrics ----------------------------------------------------------- */

/* One command's counters, summed over all threads and frontends. */
struct kvd_cmd_stat {
    const char *name;        /* "get", "client|setname" */
    uint64_t calls;          /* executed (reply success or failure) */
    uint64_t usec;           /* total time in the handler */
    uint64_t failed_calls;   /* executed and replied an error */
    uint64_t rejected_calls; /* refused before running: arity, NOAUTH */
};

/* (kvd_cmd_stat_fn, the per-frontend report's callback, is in
 * kvd/frontend.h.) */
typedef void (*kvd_cmd_stat_sum_fn)(void *ctx, const struct kvd_cmd_stat *s);

/*
 * Report the counters of every command called at least once (all of
 * them when `all`), in table order, summed over frontends (INFO
 * commandstats). Lock-free: each value is a relaxed snapshot, so a
 * report taken while commands run may be slightly behind. Safe from any
 * thread. Returns the number of commands reported.
 */
size_t kvd_cmd_stats(kvd_cmd *c, bool all, kvd_cmd_stat_sum_fn fn, void *ctx);

/*
 * Report the counters by frontend and command (struct kvd_cmd_api.stats):
 * fn(ctx, frontend, command, calls, failed, usec) once for every pair
 * with calls > 0, frontends in the order they were first seen, commands
 * in table order. Here `calls` counts every call of a known command,
 * those refused before running (arity, NOAUTH) included, and `failed`
 * those that replied an error (refused ones included), so failed <= calls;
 * `usec` is time in the handlers. The strings are borrowed for the call.
 * Lock-free and safe from any thread, as kvd_cmd_stats(). Returns the
 * number of pairs reported (>= 0).
 */
int kvd_cmd_frontend_stats(kvd_cmd *c, kvd_cmd_stat_fn fn, void *ctx);

/* Zero every command counter (CONFIG RESETSTAT). */
void kvd_cmd_stats_reset(kvd_cmd *c);

/* Sessions now open, and ever created. */
uint64_t kvd_cmd_clients_connected(kvd_cmd *c);
uint64_t kvd_cmd_clients_total(kvd_cmd *c);

/* Sessions now open, by frontend (kvd_cmd_api.clients). */
int kvd_cmd_frontend_clients(kvd_cmd *c, kvd_cmd_client_fn fn, void *ctx);

#endif /* KVD_CORE_CMD_H */
