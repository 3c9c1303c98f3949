/*
 * core/cmd/cmd_int.h -- internals shared by the command layer's files.
 *
 * The command layer is split by command group: cmd.c (table, lookup,
 * sessions, exec, counters), cmd_strings.c (string commands), cmd_keys.c
 * (key space, expiry, SCAN/KEYS), cmd_server.c (connection and server
 * commands, INFO), cmd_util.c (reply helpers, number parsing, the glob
 * matcher, status-to-error mapping) and cmd_split.c (the line tokenizer).
 * Each group file exports one table of struct kvd_cmd_def; cmd.c merges
 * them into one case-insensitive index when a kvd_cmd is created.
 *
 * A handler gets a struct kvd_cmd_ctx, reads its arguments from it, uses
 * only the store API (core/store.h), and writes exactly one reply through
 * the kvd_cmd_reply_* helpers below, which speak the session's protocol
 * version and record failures for INFO commandstats.
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

/* Command flags (struct kvd_cmd_def.flags); names as COMMAND INFO shows. */
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
};

struct kvd_cmd_ctx;

typedef void (*kvd_cmd_handler)(struct kvd_cmd_ctx *x);

/*
 * One command. `arity` follows the Redis convention: N > 0 means exactly N
 * arguments including the name, -N means at least N. A container command
 * (CLIENT, CONFIG, ...) has `subs` (terminated by name == NULL) and no fn;
 * its subcommands' arity counts the container's name too.
 */
struct kvd_cmd_def {
    const char *name; /* lowercase */
    int arity;
    unsigned flags; /* enum kvd_cmd_flag */
    kvd_cmd_handler fn;
    const struct kvd_cmd_def *subs;
    int first_key; /* key positions for COMMAND INFO (0 = no keys) */
    int last_key;  /* -1 = the last argument */
    int key_step;
    const char *group;   /* "string", "generic", "connection", "server" */
    const char *since;   /* version of the Redis API it follows */
    const char *summary; /* one line for COMMAND DOCS and docs */
    const char *syntax;  /* arguments after the name, docs notation */
};

/* The group tables (terminated by name == NULL). */
extern const struct kvd_cmd_def kvd_cmd_strings_defs[];
extern const struct kvd_cmd_def kvd_cmd_keys_defs[];
extern const struct kvd_cmd_def kvd_cmd_server_defs[];

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

/* One client's state; used by one thread at a time. name, lib_name and
 * lib_ver are written under cmd->sess_lock (CLIENT LIST reads them from
 * other threads); last_ms is atomic for the same reason. */
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
    char *pass_copy;         /* owned; set by kvd_cmd_session_set_password */
    bool pass_locked;        /* a password copy failed: AUTH never passes */
    int proto;               /* 2, or 3 after HELLO 3 */
    int64_t created_ms;      /* monotonic (kvd_cmd_mono_ms) */
    _Atomic int64_t last_ms; /* monotonic, end of the last command */
    kvd_session *prev;       /* cmd->sess_head list, under sess_lock */
    kvd_session *next;
    char frontend[KVD_CMD_FRONTEND_NAME_MAX];
    /* Its frontend's counters (cmd->fe_ctr[slot]), fixed at create. */
    struct kvd_cmd_counters *ctr;
    char name[KVD_CMD_CLIENT_NAME_MAX + 1];
    char lib_name[KVD_CMD_CLIENT_NAME_MAX + 1];
    char lib_ver[KVD_CMD_CLIENT_NAME_MAX + 1];
};

/* Everything a handler needs for one command. */
struct kvd_cmd_ctx {
    kvd_cmd *cmd;
    kvd_session *sess;
    kvd_store *st;
    const struct kvd_reply_ops *ops;
    void *w;
    size_t argc;
    const char *const *argv;
    const size_t *argl;
    const struct kvd_cmd_entry *ent;
    int result; /* enum kvd_exec_flag bits */
    bool failed;
};

/* --- reply helpers (cmd_util.c) ------------------------------------------ */

void kvd_cmd_reply_ok(struct kvd_cmd_ctx *x);
void kvd_cmd_reply_status(struct kvd_cmd_ctx *x, const char *s);
void kvd_cmd_reply_int(struct kvd_cmd_ctx *x, long long v);
void kvd_cmd_reply_bulk(struct kvd_cmd_ctx *x, const void *p, size_t n);
void kvd_cmd_reply_cstr(struct kvd_cmd_ctx *x, const char *s);
void kvd_cmd_reply_null(struct kvd_cmd_ctx *x);
void kvd_cmd_reply_array(struct kvd_cmd_ctx *x, size_t n);
/* n key/value pairs: a map in RESP3, a flat array of 2n in RESP2 */
void kvd_cmd_reply_map(struct kvd_cmd_ctx *x, size_t n);
/* A complete error line such as "ERR syntax error"; newlines become
 * spaces so a reply can never be split. Marks the command failed. */
void kvd_cmd_reply_error(struct kvd_cmd_ctx *x, const char *msg);
void kvd_cmd_reply_errorf(struct kvd_cmd_ctx *x, const char *fmt, ...)
    KVD_PRINTF(2, 3);
/* The error for a store status (KVD_ETOOBIG, KVD_EREADONLY, ...). */
void kvd_cmd_reply_status_error(struct kvd_cmd_ctx *x, int rc);
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

/* --- argument helpers (cmd_util.c) --------------------------------------- */

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

/* COMMAND DOCS "arguments" parsed from a syntax line (cmd_docs.c). */
bool kvd_cmd_docs_has_args(const char *syntax);
void kvd_cmd_docs_reply_args(struct kvd_cmd_ctx *x, const char *syntax);

/* Monotonic clock in ms (session age and idle time), and in ns. */
int64_t kvd_cmd_mono_ms(void);
uint64_t kvd_cmd_now_ns(void);

/* This thread's counters of command e on the session's frontend. */
struct kvd_cmd_counters *kvd_cmd_counters_of(const kvd_session *s,
                                             const struct kvd_cmd_entry *e);

/* Whether AUTH has a password to check on this session. */
bool kvd_cmd_session_has_password(const kvd_session *s);

/* Whether the session may skip AUTH: trusted, or no password. */
bool kvd_cmd_session_auth_free(const kvd_session *s);

/* Check p against the session's password (AUTH, HELLO AUTH), in time that
 * does not depend on the password's bytes. False when it has none. */
bool kvd_cmd_password_ok(const kvd_session *s, const char *p, size_t n);

#endif /* KVD_CORE_CMD_INT_H */
