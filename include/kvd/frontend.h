/*
 * kvd/frontend.h -- the frontend interface (ABI version 1).
 *
 * A frontend is a shared object that exports exactly one symbol,
 * `kvd_frontend_entry`, a const struct kvd_frontend_vtable. It speaks a
 * protocol to clients (stdin lines, RESP, HTTP) and executes requests
 * through two host-provided services:
 *
 *   - the store (struct kvd_store_api): the engine behind the core's
 *     wrappers, which enforce key/value size limits, apply TTL semantics,
 *     serialise writes to the same key (striped locks), count metrics and
 *     log. Frontends never see the engine vtable.
 *   - the command layer (struct kvd_cmd_api): one implementation of every
 *     command (SET, GET, MSET, EXPIRE, SCAN, INFO, ...), so all frontends
 *     execute the same commands with the same replies; each frontend only
 *     encodes the replies in its own wire format (struct kvd_reply_ops).
 *
 * Lifecycle, driven by the host: create (parse options, bind sockets, so
 * errors surface before anything is served) -> start (must not block; spawn
 * the frontend's own threads) -> stop (stop taking new work; may be called
 * from any thread, more than once) -> destroy (wait for work in flight,
 * join threads, close, free). The store outlives every frontend.
 *
 * Thread-safety: every kvd_store_api and kvd_cmd_api function is safe to
 * call from any thread, except that a kvd_session and a kvd_cmd_pass
 * belong to one thread at a time (the thread of the frontend's event
 * loop that serves the client), and every session of a pass to the
 * pass's thread.
 */
#ifndef KVD_FRONTEND_H
#define KVD_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "kvd/engine.h"
#include "kvd/host.h"
#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KVD_FRONTEND_ENTRY "kvd_frontend_entry"

typedef struct kvd_store kvd_store;     /* the core's wrapped store */
typedef struct kvd_cmd kvd_cmd;         /* the command layer */
typedef struct kvd_session kvd_session; /* one client's command state */
typedef struct kvd_frontend kvd_frontend;
typedef struct kvd_cmd_batch kvd_cmd_batch; /* first edition; unused */
typedef struct kvd_cmd_pass kvd_cmd_pass;   /* deferred commands */

/* Flags for kvd_store_api.set. */
enum kvd_set_flag {
    KVD_SET_NX = 1u << 0,      /* only if the key is absent */
    KVD_SET_XX = 1u << 1,      /* only if the key is present */
    KVD_SET_KEEPTTL = 1u << 2, /* keep the current expiry */
};

struct kvd_store_api {
    uint32_t abi_version;
    uint32_t struct_size;

    /* As the engine's get, with expiry applied: 0, KVD_ENOTFOUND or an
     * error. Release *out with kvd_val_release(). */
    int (*get)(kvd_store *st, const void *key, size_t klen,
               struct kvd_val *out);

    /* Store a value. expire_ms is absolute Unix ms or KVD_NO_EXPIRY; an
     * expiry in the past deletes the key. Returns 0 when stored,
     * KVD_EEXIST (NX, key present), KVD_ENOTFOUND (XX, key absent),
     * KVD_EINVAL (empty key), KVD_ETOOBIG (over a size limit) or an engine
     * error. *created (may be NULL) says whether the key was new. */
    int (*set)(kvd_store *st, const void *key, size_t klen, const void *val,
               size_t vlen, int64_t expire_ms, unsigned flags, int *created);

    /* 0 when deleted, KVD_ENOTFOUND when absent. */
    int (*del)(kvd_store *st, const void *key, size_t klen);

    /* Atomic batch (MSET, multi-key delete): all or nothing. */
    int (*batch)(kvd_store *st, const struct kvd_op *ops, size_t n,
                 struct kvd_err *err);

    /* Iteration over live keys; as the engine's iterator. */
    int (*iter_open)(kvd_store *st, const struct kvd_iter_opts *opts,
                     kvd_iter **out, struct kvd_err *err);
    int (*iter_next)(kvd_store *st, kvd_iter *it, struct kvd_entry *out);
    void (*iter_close)(kvd_store *st, kvd_iter *it);

    /* Engine capability flags (enum kvd_engine_cap). */
    uint32_t (*caps)(kvd_store *st);

    /* 1 when the store serves writes, 0 when not (why is filled). */
    int (*ready)(kvd_store *st, char *why, size_t why_len);

    /* Every metric as name/value pairs: core counters (cmd_get, ...,
     * keyspace_hits, keys, value_bytes, uptime_ms) then engine counters
     * prefixed "engine_". */
    int (*metrics)(kvd_store *st, kvd_stat_fn fn, void *ctx);

    /* Count one command executed by a frontend (for per-frontend metrics). */
    void (*count)(kvd_store *st, const char *frontend, const char *cmd);
};

/*
 * Reply encoder: the command layer describes a reply as calls on these
 * functions, and the frontend writes them in its wire format. Arrays and
 * maps are announced with their element count, then the elements follow.
 */
struct kvd_reply_ops {
    void (*status)(void *w, const char *s, size_t n); /* +OK */
    void (*error)(void *w, const char *s, size_t n);  /* "ERR ..." */
    void (*integer)(void *w, long long v);
    void (*bulk)(void *w, const void *p, size_t n); /* binary string */
    void (*null)(void *w);                          /* missing value */
    void (*array)(void *w, size_t n);               /* n elements follow */
    void (*map)(void *w, size_t n);                 /* n key/value pairs */
    void (*dbl)(void *w, double v);                 /* RESP3 double */

    /*
     * Appended in the second edition. The command layer reads a member
     * below only when the `ops_size` the frontend gave (struct
     * kvd_session_info) covers it and it is not NULL; otherwise it uses
     * the fallback named.
     */

    /* The session's protocol version is now `proto` (2 or 3): called
     * before the first reply element in the new version (HELLO 3 answers
     * in RESP3), so an encoder never needs to ask. Fallback: none (old
     * frontends read kvd_cmd_api.session_proto after each exec). */
    void (*proto)(void *w, int proto);
    /* A null array: EXEC after a watched key changed (RESP2 "*-1",
     * RESP3 "_"). Fallback: null(). */
    void (*null_array)(void *w);
    /* An error with the kvd status behind it (KVD_EINVAL for syntax and
     * argument errors, KVD_ENOTSUP for an unknown command, KVD_ENOAUTH,
     * KVD_ETOOBIG, KVD_EREADONLY, KVD_EABORT for EXECABORT, ...), so a
     * frontend can map statuses rather than parse texts. `s` is the same
     * text error() would get. Fallback: error(). */
    void (*error_status)(void *w, int status, const char *s, size_t n);
};

/* Result flags of kvd_cmd_api.exec and kvd_cmd_api.call. */
enum kvd_exec_flag {
    KVD_EXEC_CLOSE = 1u << 0, /* close the connection after the reply */
    /* call only: the reply was not written yet; it is written later, in
     * order, by a later call of any session of the same pass or by
     * pass_end. */
    KVD_EXEC_PENDING = 1u << 1,
};

enum kvd_session_flag {
    KVD_SESSION_TRUSTED = 1u << 0, /* no AUTH needed */
    /* EXEC applies nothing when a queued command replies an error; the
     * replies are still EXEC's array, so the error says which. For
     * frontends whose transactions are all or nothing (HTTP); Redis
     * clients expect the other commands applied. */
    KVD_SESSION_ATOMIC_EXEC = 1u << 1,
};

/*
 * What a frontend says about a client when it opens a session
 * (kvd_cmd_api.session_open). Every pointer is borrowed for the call:
 * strings are copied, `ops`, `w` and `pass` are kept.
 */
struct kvd_session_info {
    uint32_t struct_size;            /* sizeof(struct kvd_session_info) */
    const char *frontend;            /* "resp", "http", "stdin": metrics name */
    unsigned flags;                  /* enum kvd_session_flag */
    const struct kvd_reply_ops *ops; /* the frontend's encoder; must
                                        outlive the session */
    size_t ops_size;                 /* sizeof(struct kvd_reply_ops) as built */
    void *w;                         /* passed to every ops call */
    kvd_cmd_pass *pass;              /* NULL: the session never answers
                                        pending; else the pass of the thread
                                        that serves this client */
    const char *addr;  /* peer "ip:port", "[v6]:port" or the unix socket
                          path (copied; NULL: none) */
    const char *laddr; /* local address, same forms (copied; NULL: none) */
    int fd;            /* the client's descriptor for CLIENT LIST; -1: none */
    const char *password; /* the password AUTH checks on this session
                             (copied); NULL: the server's requirepass */
    size_t password_len;
};

/*
 * Callback of kvd_cmd_api.stats: the counters of one command executed by
 * one frontend. `frontend` is the name the frontend gave session_create
 * (cut to 15 bytes; "other" when more than 15 names were seen, "unknown"
 * for none); `command` is the lowercase command name, "container|sub"
 * for subcommands ("client|setname"). Both are borrowed for the call.
 * `calls` counts every call of the command (also those refused before
 * running: wrong arity, NOAUTH); `failed` those that replied an error
 * (failed <= calls); `usec` the time spent executing them.
 */
typedef void (*kvd_cmd_stat_fn)(void *ctx, const char *frontend,
                                const char *command, uint64_t calls,
                                uint64_t failed, uint64_t usec);

/*
 * Callback of kvd_cmd_api.clients: `connected` sessions of `frontend`
 * (named as for kvd_cmd_stat_fn) are open now. `frontend` is borrowed
 * for the call.
 */
typedef void (*kvd_cmd_client_fn)(void *ctx, const char *frontend,
                                  uint64_t connected);

struct kvd_cmd_api {
    uint32_t abi_version;
    uint32_t struct_size;

    /* First edition (kept working; new frontends use session_open): a
     * session without an encoder, for exec. The frontend names itself
     * ("stdin", "resp", ...) for metrics; `flags` is 0 or
     * KVD_SESSION_TRUSTED (no AUTH needed). */
    kvd_session *(*session_create)(kvd_cmd *c, const char *frontend,
                                   unsigned flags);
    /* Close any session (NULL: no-op); see pass_create for queued
     * commands. Its encoder is not called during or after this call. */
    void (*session_destroy)(kvd_session *s);

    /*
     * First edition (kept working; new frontends use call): execute one
     * command and write exactly one reply, now, through ops/w (the base
     * members only) instead of the session's encoder. Never pending:
     * commands the session has queued in its pass run first. Every
     * argument is borrowed for the call. Returns enum kvd_exec_flag bits
     * (>= 0).
     */
    int (*exec)(kvd_session *s, size_t argc, const char *const *argv,
                const size_t *argl, const struct kvd_reply_ops *ops, void *w);

    /*
     * Split one text line into arguments: whitespace separates them,
     * "double quotes" understand \n \r \t \\ \" \xHH escapes, 'single
     * quotes' are literal. `buf` must hold len bytes; argv[i] points into
     * it. Returns the number of arguments, or KVD_EINVAL (unbalanced
     * quotes) or KVD_ETOOBIG (more than max_args) with err filled.
     */
    int (*split)(const char *line, size_t len, char *buf, size_t max_args,
                 const char **argv, size_t *argl, struct kvd_err *err);

    /*
     * Require AUTH with this password before any other command on this
     * session (NULL/0: none of its own, as session_create left it). The
     * bytes are copied. A trusted session (KVD_SESSION_TRUSTED) still
     * needs no AUTH, but AUTH on it checks this password, so clients that
     * always send one work. Call it between two execs (usually before the
     * first); an untrusted session with a password must AUTH afterwards.
     */
    void (*session_set_password)(kvd_session *s, const char *password,
                                 size_t len);

    /* The session's protocol version, 2 or 3 (HELLO and RESET change it).
     * First edition: read it after each exec to encode the following
     * replies (second-edition encoders get ops->proto instead). */
    int (*session_proto)(const kvd_session *s);

    /*
     * Counters of the commands executed through this layer, by frontend
     * and command: calls fn once per (frontend, command) pair with
     * nonzero calls (see kvd_cmd_stat_fn). The values are monotonic
     * counters since the layer was created, except that CONFIG RESETSTAT
     * sets them back to zero (a counter reset, to Prometheus). Safe from
     * any thread and takes no lock; a report taken while commands run may
     * be slightly behind. Returns the number of pairs reported (>= 0).
     * Present when struct_size covers it (hosts before it lack it).
     */
    int (*stats)(kvd_cmd *c, kvd_cmd_stat_fn fn, void *ctx);

    /*
     * First edition of deferred execution, replaced by passes (below).
     * batch_create now always returns NULL, which its contract allowed
     * ("gathering gains nothing"), so a frontend built against it runs
     * every command with exec; the other members do nothing (defer
     * answers KVD_ENOTSUP, batch_count 0).
     */
    kvd_cmd_batch *(*batch_create)(kvd_cmd *c);
    void (*batch_destroy)(kvd_cmd_batch *b);
    int (*defer)(kvd_cmd_batch *b, kvd_session *s, size_t argc,
                 const char *const *argv, const size_t *argl);
    size_t (*batch_count)(const kvd_cmd_batch *b);
    void (*batch_run)(kvd_cmd_batch *b);
    void (*batch_reply)(kvd_cmd_batch *b, size_t ticket,
                        const struct kvd_reply_ops *ops, void *w);
    void (*batch_clear)(kvd_cmd_batch *b);

    /* --- second edition: sessions own everything per client ------------
     *
     * Present when struct_size covers them. A session opened here holds
     * the client's protocol version, authentication, name, MULTI queue,
     * WATCH set, addresses, and its encoder: every reply, including
     * deferred ones, goes through info->ops with info->w. Frontends never
     * poll session state: protocol changes arrive through ops->proto.
     */

    /* Open a session (see struct kvd_session_info). Returns NULL when out
     * of memory. Close it with session_destroy. */
    kvd_session *(*session_open)(kvd_cmd *c,
                                 const struct kvd_session_info *info);

    /*
     * Execute one command (argv[0] is its name, any case; every argument
     * is borrowed for the call) and write its reply through the session's
     * encoder, now or later. Returns enum kvd_exec_flag bits (>= 0):
     * KVD_EXEC_PENDING when the command was queued in the session's pass
     * (its arguments were copied; the reply is written by a later call of
     * any session of the pass, or by pass_end); KVD_EXEC_CLOSE when the
     * connection should close once the reply is written (QUIT).
     *
     * While a call runs, the encoder of any session of the same pass may
     * be called (the replies of queued commands of other sessions), on
     * this thread, in queue order. An encoder must therefore accept
     * interleaved calls for different w, and must not call the command
     * layer itself. Replies of one session always keep its command order.
     */
    int (*call)(kvd_session *s, size_t argc, const char *const *argv,
                const size_t *argl);

    /*
     * Passes: deferred execution for an event loop that serves many
     * clients. Commands that can wait (simple GET, SET, DEL) are queued
     * during a loop pass and run together in one engine call (the
     * engine's multi: one WAL write, one network round trip per server)
     * when the pass ends, a session's next command cannot wait, or the
     * pass is full. Commands of different sessions in one pass are
     * concurrent (they may take effect in any order); those of one
     * session keep their order. A pass belongs to the thread that created
     * it; so do the sessions opened with it.
     *
     * pass_create: NULL when deferring gains nothing for this store (its
     * engine has no multi) or out of memory: then open sessions without
     * a pass. pass_end: run everything queued and write every reply;
     * returns the number of replies written (call it at the end of each
     * loop pass, and whenever the frontend wants the replies out, e.g.
     * every 64 queued commands of one connection for back-pressure).
     * pass_pending: commands queued and not yet replied. pass_destroy:
     * runs what is queued (replies are written) and frees the pass;
     * destroy every session of the pass first or afterwards, but never
     * use the pass again (NULL: no-op).
     *
     * session_destroy of a session with queued commands: they still run,
     * their replies are dropped, and its encoder is never called again.
     */
    kvd_cmd_pass *(*pass_create)(kvd_cmd *c);
    size_t (*pass_end)(kvd_cmd_pass *p);
    size_t (*pass_pending)(const kvd_cmd_pass *p);
    void (*pass_destroy)(kvd_cmd_pass *p);

    /*
     * Open sessions by frontend (a gauge for /metrics): calls fn once per
     * frontend that ever opened a session, 0 included, after taking the
     * count under the session lock (fn runs without it, so it may call
     * the layer). Returns the number of frontends reported (>= 0).
     * Present when struct_size covers it.
     */
    int (*clients)(kvd_cmd *c, kvd_cmd_client_fn fn, void *ctx);

    /*
     * The frontend named `frontend` listens on TCP port `port`, the bound
     * one (also when the kernel chose it for port 0). For "resp" it is
     * what INFO tcp_port and CONFIG GET port answer, on every connection
     * (Unix-socket ones too); other names are ignored. Call once after
     * binding, before serving; safe from any thread.
     * Present when struct_size covers it.
     */
    void (*listening)(kvd_cmd *c, const char *frontend, int port);
};

/* Everything a frontend gets from the host. Borrowed until destroy. */
struct kvd_server {
    uint32_t abi_version;
    uint32_t struct_size;
    kvd_store *store;
    const struct kvd_store_api *store_api;
    kvd_cmd *cmd;
    const struct kvd_cmd_api *cmd_api;
};

struct kvd_frontend_vtable {
    uint32_t abi_version; /* KVD_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct kvd_frontend_vtable) */
    const char *name;     /* "stdin", "resp", ...: [frontend.NAME] */
    const char *version;
    const char *description;

    /* Options of the [frontend.NAME] section, as for engines. */
    const struct kvd_option *options;
    size_t options_size;

    /* Parse nothing (the host did), acquire resources (bind sockets).
     * On failure fill err and leave nothing behind. */
    int (*create)(const struct kvd_host *host, const struct kvd_server *srv,
                  const void *opts, kvd_frontend **out, struct kvd_err *err);
    /* Begin serving; must not block. */
    int (*start)(kvd_frontend *fe, struct kvd_err *err);
    /* Stop taking new work; idempotent, callable from any thread. */
    void (*stop)(kvd_frontend *fe);
    /* Finish work in flight, join threads, free (NULL: no-op). */
    void (*destroy)(kvd_frontend *fe);

    /* ABI 1.5. Optional. As kvd_engine_vtable.check_options: rules across
     * the section's options (something to listen on), checked by
     * `kvd --check-config` and before create. */
    int (*check_options)(const void *opts, const char **key,
                         struct kvd_err *err);

    /* ABI 1 appends here only. */
};

#ifdef __cplusplus
}
#endif

#endif /* KVD_FRONTEND_H */
