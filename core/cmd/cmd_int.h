/*
 * core/cmd/cmd_int.h -- internals shared by the files of the command layer.
 *
 * The layer, bottom up (each file one job):
 *
 *   executor   cmd.c      the layer object: the command index, counters,
 *                         the SCAN cursor ring, the API table
 *              session.c  sessions: everything per client (protocol,
 *                         authentication, names, addresses, encoder)
 *              call.c     call/exec: find a command, check it, queue it
 *                         (MULTI, pass) or run it, count it
 *              pass.c     deferred execution: a pass's queued commands run
 *                         as one kvd_store_multi, replies in queue order
 *              multi.c    transactions: MULTI/EXEC/DISCARD/WATCH/UNWATCH,
 *                         the queue, EXEC over a transaction view
 *   helpers    reply.c    reply helpers, errors, the reply recorder
 *              util.c     arguments, numbers, the glob matcher, buffers
 *              split.c    the line tokenizer;  docs.c  COMMAND DOCS
 *   commands   cmds_string.c, cmds_keys.c, cmds_conn.c, cmds_server.c:
 *              one table of struct kvd_cmd_def each, merged by cmd.c
 *
 * A handler gets a struct kvd_cmd_ctx, reads its arguments from it, uses
 * only the store API (core/store.h) on x->st, and writes exactly one
 * reply through the kvd_cmd_reply_* helpers, which write through x->enc
 * (the session's encoder, or EXEC's recorder) and record failures for
 * INFO commandstats. Inside EXEC, x->st is a transaction view of the
 * store: the same handlers, the same store calls.
 *
 * Nothing here is installed or visible to plugins.
 */
#ifndef KVD_CORE_CMD_INT_H
#define KVD_CORE_CMD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cmd.h"
#include "core/store.h"

/* --- command table ------------------------------------------------------ */

/*
 * Command flags (struct kvd_cmd_def.flags). The low ones are Redis's and
 * COMMAND INFO reports them by name (the order of the names in
 * cmds_server.c); the high ones are kvd's own and never reported.
 */
enum kvd_cmd_flag {
    KVD_CMDF_WRITE = 1u << 0,    /* may change the key space */
    KVD_CMDF_READONLY = 1u << 1, /* reads keys only */
    KVD_CMDF_DENYOOM = 1u << 2,  /* may grow memory use */
    KVD_CMDF_ADMIN = 1u << 3,    /* administrative */
    KVD_CMDF_FAST = 1u << 4,     /* O(1) or O(log N) */
    KVD_CMDF_NOAUTH = 1u << 5,   /* allowed before AUTH */
    KVD_CMDF_LOADING = 1u << 6,  /* allowed while loading */
    KVD_CMDF_STALE = 1u << 7,    /* allowed on a stale replica */
    KVD_CMDF_NOSCRIPT = 1u << 8, /* not from scripts */
    KVD_CMDF_NOMULTI = 1u << 9,  /* refused inside MULTI */
    /* Inside MULTI it runs at once instead of being queued (EXEC,
     * DISCARD, MULTI, WATCH, QUIT, RESET). */
    KVD_CMDF_TXCTL = 1u << 16,
    /* Reads or writes the whole key space (FLUSHDB, KEYS, SCAN, DBSIZE,
     * RANDOMKEY): a transaction that holds it locks every stripe. */
    KVD_CMDF_KEYSPACE = 1u << 17,
};

/* The flags COMMAND INFO reports. */
#define KVD_CMDF_REPORTED ((1u << 10) - 1)

struct kvd_cmd_ctx;

typedef void (*kvd_cmd_handler)(struct kvd_cmd_ctx *x);

/*
 * The two halves of a command that can wait in a pass (see pass.c), used
 * by its direct form too, so both write the same reply:
 *   prep:  parse the arguments into one operation (key, value and expiry
 *          pointing into argv); false means "not this invocation" (SET
 *          with options), and nothing was replied.
 *   reply: write the reply from the finished operation (its status, and
 *          for a GET its value, which reply releases).
 */
typedef bool (*kvd_cmd_prep_fn)(const struct kvd_cmd_ctx *x,
                                struct kvd_mop *op);
typedef void (*kvd_cmd_mop_reply_fn)(struct kvd_cmd_ctx *x, struct kvd_mop *op);

/*
 * One command. `arity` follows the Redis convention: N > 0 means exactly N
 * arguments including the name, -N means at least N. A container command
 * (CLIENT, CONFIG, ...) has `subs` (terminated by name == NULL) and no fn;
 * its subcommands' arity counts the container's name too. The key
 * positions serve COMMAND INFO and decide which stripes EXEC locks.
 */
struct kvd_cmd_def {
    const char *name; /* lowercase */
    int arity;
    unsigned flags; /* enum kvd_cmd_flag */
    kvd_cmd_handler fn;
    const struct kvd_cmd_def *subs;
    int first_key; /* first key argument (0 = no keys) */
    int last_key;  /* last key argument; -1 = the last argument */
    int key_step;
    const char *group;   /* "string", "generic", "connection", "server" */
    const char *since;   /* version of the Redis API it follows */
    const char *summary; /* one line for COMMAND DOCS and docs */
    const char *syntax;  /* arguments after the name, docs notation */
    /* Commands that can wait in a pass: both, or neither (NULL). */
    kvd_cmd_prep_fn prep;
    kvd_cmd_mop_reply_fn reply;
};

/* An entry of the group tables; designated, so a table lists only what
 * an entry has (prep and reply stay NULL unless named). */
#define KVD_CMD_DEF(n, ar, fl, f, sb, fk, lk, ks, gr, si, su, sy)              \
    {                                                                          \
        .name = (n), .arity = (ar), .flags = (fl), .fn = (f), .subs = (sb),    \
        .first_key = (fk), .last_key = (lk), .key_step = (ks), .group = (gr),  \
        .since = (si), .summary = (su), .syntax = (sy)                         \
    }
/* An entry whose command can wait in a pass. */
#define KVD_CMD_DEF_MOP(n, ar, fl, f, sb, fk, lk, ks, gr, si, su, sy, pr, rp)  \
    {                                                                          \
        .name = (n), .arity = (ar), .flags = (fl), .fn = (f), .subs = (sb),    \
        .first_key = (fk), .last_key = (lk), .key_step = (ks), .group = (gr),  \
        .since = (si), .summary = (su), .syntax = (sy), .prep = (pr),          \
        .reply = (rp)                                                          \
    }
#define KVD_CMD_END                                                            \
    {                                                                          \
        .name = NULL                                                           \
    }

/* The group tables (terminated by name == NULL). */
extern const struct kvd_cmd_def kvd_cmd_strings_defs[];
extern const struct kvd_cmd_def kvd_cmd_keys_defs[];
extern const struct kvd_cmd_def kvd_cmd_conn_defs[];
extern const struct kvd_cmd_def kvd_cmd_server_defs[];
extern const struct kvd_cmd_def kvd_cmd_multi_defs[];

/* --- the command layer object ------------------------------------------- */

/* Counter stripes: a thread picks one on first use and keeps it, so the
 * counters of different threads rarely share a cache line. */
#define KVD_CMD_STRIPES 32

/* Frontend names the counters tell apart (session_create's `frontend`).
 * The last slot is reserved for KVD_CMD_FRONTEND_OTHER: names beyond the
 * first KVD_CMD_FRONTENDS - 1 share it, so the table never grows. */
#define KVD_CMD_FRONTENDS      16
#define KVD_CMD_FRONTEND_OTHER "other"
/* The slot of a session created without a frontend name. */
#define KVD_CMD_FRONTEND_UNKNOWN "unknown"
/* Bytes kept of a frontend name, NUL included (longer names are cut). */
#define KVD_CMD_FRONTEND_NAME_MAX 16

/* Index slots for the case-insensitive name lookup (power of two, well
 * above the number of top-level commands so probes stay short). */
#define KVD_CMD_INDEX_SLOTS 512

/* Longest command name the index accepts (longer names are unknown). */
#define KVD_CMD_NAME_MAX 32

/* Server-side SCAN cursors of ordered engines: cursor id -> next key. */
#define KVD_CMD_SCAN_SLOTS 1024

/* A resolved command: every top-level command and every subcommand has
 * one entry; its position is the command's counter index. */
struct kvd_cmd_entry {
    const struct kvd_cmd_def *def;
    const struct kvd_cmd_entry *parent; /* NULL for top-level */
    size_t sub_first;                   /* index of the first subcommand */
    size_t nsub;
    char fullname[2 * KVD_CMD_NAME_MAX + 2]; /* "client|setname" */
};

struct kvd_cmd_counters {
    _Atomic uint64_t calls;
    _Atomic uint64_t nsec;
    _Atomic uint64_t failed;
    _Atomic uint64_t rejected;
};

struct kvd_cmd_scan_slot {
    uint64_t id; /* cursor id; 0 = free */
    void *key;   /* malloc'd resume key */
    size_t klen;
};

/*
 * Shared by all threads. Fixed after kvd_cmd_create(): store, config
 * strings, entries, index, stripe_len, run_id, start_ms. Atomics:
 * counters, client counts, next ids. scan_lock guards scan[] and
 * scan_next.
 *
 * Per-frontend counters: fe_name[f] and fe_ctr[f] are written once, under
 * sess_lock, when a session first names frontend f, and then nfrontends
 * is raised with release order; they never change afterwards (freed by
 * kvd_cmd_destroy only). So the hot path (a session keeps its fe_ctr
 * block) and the reports (load nfrontends with acquire, read slots below
 * it) take no lock. fe_ctr[f] holds KVD_CMD_STRIPES stripes of
 * stripe_len counters each; counter i of a stripe is entries[i].
 */
struct kvd_cmd {
    kvd_store *st;
    char *requirepass; /* NULL: no AUTH */
    size_t requirepass_len;
    char *version;
    char *config_file;
    char *appendfsync; /* NULL: the engine has no sync policy */
    char *save;        /* never NULL */
    int tcp_port;      /* configured; 0: none or kernel-assigned */
    _Atomic int tcp_bound; /* the resp frontend's bound port; 0: unknown */
    int maxclients;    /* 0: unknown */
    char run_id[41];
    int64_t start_ms;

    size_t nentries;
    struct kvd_cmd_entry *entries;
    uint16_t index[KVD_CMD_INDEX_SLOTS]; /* entry + 1; 0 = empty */

    /* Counters per stripe: nentries rounded up so that every stripe
     * starts on its own cache line. */
    size_t stripe_len;
    _Atomic unsigned nfrontends; /* slots of fe_name/fe_ctr in use */
    char fe_name[KVD_CMD_FRONTENDS][KVD_CMD_FRONTEND_NAME_MAX];
    struct kvd_cmd_counters *fe_ctr[KVD_CMD_FRONTENDS];

    _Atomic uint64_t next_client_id;
    _Atomic uint64_t clients_connected;
    _Atomic uint64_t clients_total;
    _Atomic uint64_t unknown_commands;

    pthread_mutex_t sess_lock; /* guards sess_head, the list links,
                                  every session's name/lib fields and
                                  the registration of fe_name/fe_ctr */
    kvd_session *sess_head;

    pthread_mutex_t scan_lock;
    uint64_t scan_next;
    struct kvd_cmd_scan_slot scan[KVD_CMD_SCAN_SLOTS];
};

/*
 * A session's encoder: the frontend's reply ops and its cookie, with the
 * members appended to struct kvd_reply_ops in the second edition resolved
 * once (NULL when the frontend's ops_size does not cover them), so the
 * helpers never compare sizes per reply.
 */
struct kvd_cmd_enc {
    const struct kvd_reply_ops *ops; /* NULL: none (session_create) */
    void *w;
    void (*proto)(void *w, int proto);
    void (*null_array)(void *w);
    void (*error_status)(void *w, int status, const char *s, size_t n);
};

/* Fill e from ops (the first ops_size bytes of it are the frontend's). */
void kvd_cmd_enc_init(struct kvd_cmd_enc *e, const struct kvd_reply_ops *ops,
                      size_t ops_size, void *w);

/* Bytes kept of a client's address (longer ones are cut). */
#define KVD_CMD_ADDR_MAX 128

/*
 * One client's state. Owned by the thread that serves the client (one at
 * a time), except:
 *   - name, lib_name, lib_ver and the list links are written under
 *     cmd->sess_lock, because CLIENT LIST reads them from other threads;
 *   - proto, mqueued and last_ms are relaxed atomics for the same reason
 *     (CLIENT LIST reads them without stopping the owner);
 *   - id, flags, frontend, ctr, addr, laddr, fd and created_ms are fixed
 *     after open.
 * The pass (if any) belongs to the same thread; `queued` counts this
 * session's commands waiting in it.
 */
#define KVD_CMD_CLIENT_NAME_MAX 128

struct kvd_session {
    kvd_cmd *cmd;
    uint64_t id;
    unsigned flags; /* enum kvd_session_flag */
    bool authed;
    /* The password AUTH checks: NULL (none), cmd->requirepass (borrowed,
     * fixed for the layer's life) or pass_copy. */
    const char *pass;
    size_t pass_len;
    char *pass_copy;        /* owned; set by kvd_cmd_session_set_password */
    bool pass_locked;       /* a password copy failed: AUTH never passes */
    _Atomic int proto;      /* 2, or 3 after HELLO 3 */
    struct kvd_cmd_enc enc; /* the frontend's encoder (session_open) */
    kvd_cmd_pass *cpass;    /* the pass of its thread, or NULL */
    size_t queued;          /* its commands waiting in cpass */
    /* Transactions (multi.c): in_multi from MULTI to EXEC/DISCARD,
     * in_exec while EXEC runs the queue; the queue and the watch set are
     * made on first use and kept. */
    bool in_multi;
    bool in_exec;
    struct kvd_cmd_multi *multi;
    kvd_store_watch *watch;
    _Atomic int mqueued;     /* commands queued in MULTI; -1 outside */
    int64_t created_ms;      /* monotonic (kvd_cmd_mono_ms) */
    _Atomic int64_t last_ms; /* monotonic, end of the last command */
    /* The command running or last run (CLIENT LIST cmd=); NULL before
     * the first. Entries live as long as the layer. */
    const struct kvd_cmd_entry *_Atomic last_ent;
    kvd_session *prev; /* cmd->sess_head list, under sess_lock */
    kvd_session *next;
    char frontend[KVD_CMD_FRONTEND_NAME_MAX];
    /* Its frontend's counters (cmd->fe_ctr[slot]), fixed at create. */
    struct kvd_cmd_counters *ctr;
    char addr[KVD_CMD_ADDR_MAX];  /* "" = none */
    char laddr[KVD_CMD_ADDR_MAX]; /* "" = none */
    int fd;
    char name[KVD_CMD_CLIENT_NAME_MAX + 1];
    char lib_name[KVD_CMD_CLIENT_NAME_MAX + 1];
    char lib_ver[KVD_CMD_CLIENT_NAME_MAX + 1];
};

/* The session's protocol version (2 or 3). */
static inline int
kvd_cmd_proto(const kvd_session *s)
{
    return atomic_load_explicit(&s->proto, memory_order_relaxed);
}

/* Everything a handler needs for one command. */
struct kvd_cmd_ctx {
    kvd_cmd *cmd;
    kvd_session *sess;
    kvd_store *st; /* the store, or a transaction view of it (EXEC) */
    const struct kvd_cmd_enc *enc;
    size_t argc;
    const char *const *argv;
    const size_t *argl;
    const struct kvd_cmd_entry *ent;
    int result; /* enum kvd_exec_flag bits */
    bool failed;
};

/* --- the executor (call.c) ------------------------------------------------ */

/* Run the resolved command x->ent now (its handler, or prep, one store
 * operation and reply) and count it. */
void kvd_cmd_run(struct kvd_cmd_ctx *x);

/* Change the session's protocol version and tell the encoder, before the
 * first reply element in the new version (HELLO, RESET). */
void kvd_cmd_set_proto(struct kvd_cmd_ctx *x, int proto);

/* --- passes (pass.c) -------------------------------------------------------
 */

/* Queue op (prepared from x's arguments, which are copied) for x's
 * session in pass p. 0 when queued; KVD_EINVAL when op would fail
 * before reaching the engine (run it directly: the direct form writes
 * the error); KVD_ENOMEM. A full pass runs first. */
int kvd_cmd_pass_queue(kvd_cmd_pass *p, struct kvd_cmd_ctx *x,
                       const struct kvd_mop *op);

/* Session s is going away: its queued commands still run, their replies
 * are dropped. */
void kvd_cmd_pass_forget(kvd_cmd_pass *p, kvd_session *s);

/* --- transactions (multi.c) ------------------------------------------------
 */

struct kvd_cmd_multi; /* a session's MULTI queue and EXEC's tools */

/* Inside MULTI: queue x's resolved command (or refuse it with Redis's
 * error and mark the transaction failed); writes QUEUED or the error. */
void kvd_cmd_multi_queue(struct kvd_cmd_ctx *x);

/* A command was refused before it could be queued (unknown, arity,
 * NOAUTH): inside MULTI that makes EXEC abort. */
void kvd_cmd_multi_refused(kvd_session *s);

/* Drop the queue and every watch (RESET). */
void kvd_cmd_multi_reset(kvd_session *s);

/* Free what the session's transactions hold (session end). */
void kvd_cmd_multi_release(kvd_session *s);

/* --- reply helpers (reply.c) ------------------------------------------ */

void kvd_cmd_reply_ok(struct kvd_cmd_ctx *x);
void kvd_cmd_reply_status(struct kvd_cmd_ctx *x, const char *s);
void kvd_cmd_reply_int(struct kvd_cmd_ctx *x, long long v);
void kvd_cmd_reply_bulk(struct kvd_cmd_ctx *x, const void *p, size_t n);
void kvd_cmd_reply_cstr(struct kvd_cmd_ctx *x, const char *s);
void kvd_cmd_reply_null(struct kvd_cmd_ctx *x);
void kvd_cmd_reply_array(struct kvd_cmd_ctx *x, size_t n);
/* n key/value pairs: a map in RESP3, a flat array of 2n in RESP2 */
void kvd_cmd_reply_map(struct kvd_cmd_ctx *x, size_t n);
/* A null array (EXEC after a watched key changed); encoders without
 * null_array get null. */
void kvd_cmd_reply_null_array(struct kvd_cmd_ctx *x);
/*
 * A complete error line such as "ERR syntax error"; newlines become
 * spaces so a reply can never be split. Marks the command failed. The
 * _as forms name the kvd status behind the error, for encoders with
 * error_status (HTTP maps statuses); the plain forms say KVD_EINVAL
 * (syntax and argument errors, the usual case).
 */
void kvd_cmd_reply_error(struct kvd_cmd_ctx *x, const char *msg);
void kvd_cmd_reply_errorf(struct kvd_cmd_ctx *x, const char *fmt, ...)
    KVD_PRINTF(2, 3);
void kvd_cmd_reply_error_as(struct kvd_cmd_ctx *x, int status, const char *msg);
void kvd_cmd_reply_errorf_as(struct kvd_cmd_ctx *x, int status, const char *fmt,
                             ...) KVD_PRINTF(3, 4);
/* The error for a store status (KVD_ETOOBIG, KVD_EREADONLY, ...). */
void kvd_cmd_reply_status_error(struct kvd_cmd_ctx *x, int rc);
/* Its text: a constant, or buf (cap >= 96 bytes) filled. */
const char *kvd_cmd_status_text(int rc, char *buf, size_t cap);
/* The lines of a HELP subcommand (NULL-terminated), as status replies. */
void kvd_cmd_reply_help(struct kvd_cmd_ctx *x, const char *const *lines);
/* Shared replies with Redis's wording. */
void kvd_cmd_reply_syntax(struct kvd_cmd_ctx *x);
void kvd_cmd_reply_not_int(struct kvd_cmd_ctx *x);
void kvd_cmd_reply_arity(struct kvd_cmd_ctx *x);

/* Common error texts (Redis's wording). */
#define KVD_CMD_ERR_SYNTAX    "ERR syntax error"
#define KVD_CMD_ERR_NOT_INT   "ERR value is not an integer or out of range"
#define KVD_CMD_ERR_NOT_FLOAT "ERR value is not a valid float"
#define KVD_CMD_ERR_NOAUTH    "NOAUTH Authentication required."
#define KVD_CMD_ERR_DB_RANGE  "ERR DB index is out of range"
#define KVD_CMD_ERR_NO_KEY    "ERR no such key"
#define KVD_CMD_ERR_SAME_OBJ  "ERR source and destination objects are the same"
#define KVD_CMD_ERR_STR_TOOBIG                                                 \
    "ERR string exceeds maximum allowed size (proto-max-bulk-len)"

/* Redis's proto-max-bulk-len default: the largest string SETRANGE,
 * APPEND and SETBIT may build, and the bit-offset bound. */
#define KVD_CMD_MAX_STRING_BYTES (512ull * 1024 * 1024)

/* --- argument helpers (util.c) --------------------------------------- */

/* Case-insensitive compare of argument i with a lowercase ASCII word. */
bool kvd_cmd_arg_is(const struct kvd_cmd_ctx *x, size_t i, const char *word);

/* Byte string equal to a lowercase ASCII word, ignoring case. */
bool kvd_cmd_word_eq(const char *p, size_t n, const char *word);

/* Strict integer parse with Redis's rules: optional '-', no '+', no
 * spaces, no leading zeros, fits in long long. */
bool kvd_cmd_parse_ll(const char *p, size_t n, long long *out);

/* Long double parse (strtold, no leading space, no trailing bytes, no NaN,
 * no overflow to infinity from a finite input). */
bool kvd_cmd_parse_ld(const char *p, size_t n, long double *out);

/* Parse argument i as long long; on failure reply the standard error
 * and return false. */
bool kvd_cmd_arg_ll(struct kvd_cmd_ctx *x, size_t i, long long *out);

/* Format v into buf (>= 24 bytes); returns the length. */
size_t kvd_cmd_fmt_ll(char *buf, long long v);

/* Format a long double the way INCRBYFLOAT stores it: %.17Lf with
 * trailing zeros removed. Returns the length, or 0 when it does not fit. */
size_t kvd_cmd_fmt_ld(char *buf, size_t cap, long double v);

/* Glob match with Redis's KEYS/SCAN MATCH rules: '*', '?', '[...]' with
 * '^' negation and a-z ranges, '\' escapes. */
bool kvd_cmd_glob_match(const char *pat, size_t plen, const char *s,
                        size_t slen, bool nocase);

/* The literal prefix of a glob pattern (bytes before the first special
 * character), for pruning iterations; returns its length. */
size_t kvd_cmd_glob_prefix(const char *pat, size_t plen);

/* --- a growable byte buffer for replies built before sending -------------- */

struct kvd_cmd_buf {
    char *p;
    size_t len;
    size_t cap;
};

/* Room for n more bytes after len: 0 or KVD_ENOMEM. */
int kvd_cmd_buf_reserve(struct kvd_cmd_buf *b, size_t n);
int kvd_cmd_buf_append(struct kvd_cmd_buf *b, const void *p, size_t n);
int kvd_cmd_buf_printf(struct kvd_cmd_buf *b, const char *fmt, ...)
    KVD_PRINTF(2, 3);
void kvd_cmd_buf_release(struct kvd_cmd_buf *b);

/* --- cross-file services -------------------------------------------------- */

/* SCAN cursor table of ordered engines (cmd.c): remember `key` and return
 * a cursor id, or find a cursor and copy its key out (caller frees). */
uint64_t kvd_cmd_scan_save(kvd_cmd *c, const void *key, size_t klen);
int kvd_cmd_scan_take(kvd_cmd *c, uint64_t id, void **key, size_t *klen);

/* Entries for COMMAND and commandstats. */
size_t kvd_cmd_entry_count(const kvd_cmd *c);
const struct kvd_cmd_entry *kvd_cmd_entry_at(const kvd_cmd *c, size_t i);
const struct kvd_cmd_entry *kvd_cmd_entry_find(const kvd_cmd *c,
                                               const char *name, size_t n);
/* The subcommand `name` of container `parent`, or NULL. */
const struct kvd_cmd_entry *kvd_cmd_sub_find(const kvd_cmd *c,
                                             const struct kvd_cmd_entry *parent,
                                             const char *name, size_t n);

/* COMMAND DOCS "arguments" parsed from a syntax line (docs.c). */
bool kvd_cmd_docs_has_args(const char *syntax);
void kvd_cmd_docs_reply_args(struct kvd_cmd_ctx *x, const char *syntax);

/* Monotonic clock in ms (session age and idle time), and in ns. */
int64_t kvd_cmd_mono_ms(void);
uint64_t kvd_cmd_now_ns(void);

/* This thread's counters of command e on the session's frontend. */
struct kvd_cmd_counters *kvd_cmd_counters_of(const kvd_session *s,
                                             const struct kvd_cmd_entry *e);

/* The counter block of frontend `name`, registered the first time it is
 * seen (NULL: out of memory). Expects c->sess_lock held. */
struct kvd_cmd_counters *kvd_cmd_frontend_counters_locked(kvd_cmd *c,
                                                          const char *name);

/* One CLIENT LIST / CLIENT INFO line of s; the caller holds sess_lock. */
void kvd_cmd_session_line(struct kvd_cmd_buf *b, const kvd_session *s,
                          int64_t now);

/* The local port of s when it is a TCP connection (its laddr is
 * "ip:port" or "[v6]:port"), else 0 (Unix socket, stdin). */
int kvd_cmd_session_tcp_port(const kvd_session *s);

/* Whether AUTH has a password to check on this session. */
bool kvd_cmd_session_has_password(const kvd_session *s);

/* Whether the session may skip AUTH: trusted, or no password. */
bool kvd_cmd_session_auth_free(const kvd_session *s);

/* Check p against the session's password (AUTH, HELLO AUTH), in time that
 * does not depend on the password's bytes. False when it has none. */
bool kvd_cmd_password_ok(const kvd_session *s, const char *p, size_t n);

#endif /* KVD_CORE_CMD_INT_H */
