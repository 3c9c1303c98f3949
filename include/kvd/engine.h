/*
 * kvd/engine.h -- the storage engine interface (ABI version 1).
 *
 * An engine is a shared object that exports exactly one symbol,
 * `kvd_engine_entry`, a const struct kvd_engine_vtable. The loader dlsym()s
 * it and checks abi_version, struct_size and every required method before it
 * calls anything in the plugin.
 *
 * Data model: keys are 1..max_key_bytes arbitrary bytes (NUL included; the
 * empty key is refused by the core before it reaches an engine), values are
 * 0..max_value_bytes arbitrary bytes. Each key has an optional absolute
 * expiry in Unix milliseconds (0 = none; a negative expiry is invalid,
 * KVD_EINVAL). A record whose expiry is <= host->now_ms() is expired
 * (kvd_expired below): the engine must treat it as absent in get,
 * iteration and stats, and persistent engines must persist the expiry.
 * The engine toolkit's kvd/kit_check.h has these checks.
 *
 * Thread-safety contract: after open() returns, every method below except
 * close() may be called concurrently from any number of threads on the same
 * handle. An iterator belongs to one thread at a time. close() is called
 * once, when no other call is in flight and every iterator is closed.
 * Read-modify-write atomicity across get+put is the core's job (striped key
 * locks), not the engine's: an engine only guarantees that each single call
 * is atomic, and that a batch is atomic when the caps say so.
 *
 * Ownership: every pointer argument is borrowed for the duration of the
 * call; an engine copies what it keeps. Results handed back (struct kvd_val,
 * struct kvd_entry) say in their own comments how long they stay valid.
 *
 * Growth: fields are only appended to these structs; a host reads a field
 * only if it lies within the plugin's struct_size (KVD_HAS), and each
 * appended member names the ABI minor it arrived in (host.h). Optional
 * methods may be NULL, meaning "unsupported" (the core then emulates or
 * answers KVD_ENOTSUP).
 */
#ifndef KVD_ENGINE_H
#define KVD_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kvd/host.h"
#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KVD_ENGINE_ENTRY "kvd_engine_entry"

/* No expiry. */
#define KVD_NO_EXPIRY 0

/* Whether a record with this expiry is expired at now_ms (the contract's
 * one rule, above). */
static inline int
kvd_expired(int64_t expire_ms, int64_t now_ms)
{
    return expire_ms != KVD_NO_EXPIRY && expire_ms <= now_ms;
}

/* Capability flags (struct kvd_engine_vtable.caps). */
enum kvd_engine_cap {
    KVD_CAP_PERSISTENT = 1u << 0,   /* survives close + open */
    KVD_CAP_ORDERED = 1u << 1,      /* iteration in memcmp key order */
    KVD_CAP_ATOMIC_BATCH = 1u << 2, /* every batch is all-or-nothing */
    /* a batch is all-or-nothing only when its keys share a partition;
     * otherwise it is refused with KVD_ECROSSSLOT and nothing is applied */
    KVD_CAP_BATCH_PARTITIONED = 1u << 3,
    KVD_CAP_REMOTE = 1u << 4,        /* data lives in another process */
    KVD_CAP_SNAPSHOT_ITER = 1u << 5, /* iterators see a point-in-time view */
    /* ABI 1.4: every write acknowledged by this store survives a crash of
     * the process or the machine (the log engines with sync = always);
     * usually reported through instance_caps, since it depends on the
     * options. kvd-conformance runs its crash and fault tests on it. */
    KVD_CAP_DURABLE = 1u << 6,
};

/* Opaque engine handle and iterator, defined by each engine. */
typedef struct kvd_engine kvd_engine;
typedef struct kvd_iter kvd_iter;

/*
 * A value returned by get(). The engine fills every field; the caller reads
 * data/len/expire_ms and must call kvd_val_release() exactly once when done
 * (from any thread). Until then the bytes stay valid and unchanged, whatever
 * other threads write. `release` may be NULL when nothing needs freeing.
 */
struct kvd_val {
    const void *data;
    size_t len;
    int64_t expire_ms; /* absolute Unix ms, or KVD_NO_EXPIRY */
    void (*release)(struct kvd_val *v);
    void *cookie[2]; /* engine-private: what release needs */
};

static inline void
kvd_val_release(struct kvd_val *v)
{
    if (v->release != NULL) {
        v->release(v);
    }
    v->release = NULL;
    v->data = NULL;
    v->len = 0;
}

/* One operation of an atomic batch. */
enum kvd_op_type {
    KVD_OP_PUT = 1,
    KVD_OP_DEL = 2,
};

struct kvd_op {
    int type; /* enum kvd_op_type */
    const void *key;
    size_t klen;
    const void *val; /* PUT only */
    size_t vlen;
    int64_t expire_ms; /* PUT only: absolute Unix ms, or KVD_NO_EXPIRY */
};

/*
 * One operation of multi(): unlike a batch, the operations are independent
 * and each has its own result, as if get/put/del had been called for it.
 */
enum kvd_mop_type {
    KVD_MOP_GET = 1,
    KVD_MOP_PUT = 2,
    KVD_MOP_DEL = 3,
};

struct kvd_mop {
    /* in: */
    int type; /* enum kvd_mop_type */
    const void *key;
    size_t klen;
    const void *val; /* PUT only */
    size_t vlen;
    int64_t expire_ms; /* PUT only: absolute Unix ms, or KVD_NO_EXPIRY */
    /* out, set by multi() for every operation: */
    int status;         /* what get/put/del would have returned */
    struct kvd_val out; /* GET with status 0: release with kvd_val_release */
};

/* Iteration. */
enum kvd_iter_flag {
    KVD_ITER_KEYS_ONLY = 1u << 0, /* entries carry no value bytes */
};

struct kvd_iter_opts {
    /* Ordered engines: start at the first key >= start (NULL = first). */
    const void *start;
    size_t start_len;
    /* Unordered engines: start at the first entry with pos >= start_pos. */
    uint64_t start_pos;
    /* Only keys beginning with prefix (NULL or 0 = all). */
    const void *prefix;
    size_t prefix_len;
    unsigned flags; /* enum kvd_iter_flag */
};

/*
 * One entry produced by iter_next(); every pointer is valid until the next
 * iter_next() or iter_close() on the same iterator.
 *
 * `pos` is the resume position of unordered engines: entries come in
 * non-decreasing pos order, pos < UINT64_MAX, and reopening with
 * start_pos = pos + 1 continues after every entry with that pos. A caller
 * that stops early must therefore stop at a change of pos. An iteration
 * from start to end returns every key live for the whole iteration exactly
 * once; keys written or deleted meanwhile may or may not appear. Ordered
 * engines resume by key instead, and set pos to 0.
 */
struct kvd_entry {
    const void *key;
    size_t klen;
    const void *val; /* may be NULL when KVD_ITER_KEYS_ONLY was asked */
    size_t vlen;     /* the value's length, even when val is NULL */
    int64_t expire_ms;
    uint64_t pos;
};

/*
 * Engine statistics. Counts cover live (unexpired, undeleted) keys at the
 * time of the call, exactly unless `approximate` says otherwise.
 * Engine-specific counters go through the callback. Fill a whole struct
 * and hand it over with kvd_engine_stats_copy (below): the caller's
 * struct may be older or newer than the engine's.
 */
struct kvd_engine_stats {
    uint32_t struct_size; /* set by the caller: sizeof(struct ...) */
    uint64_t keys;
    uint64_t key_bytes;   /* sum of live key lengths */
    uint64_t value_bytes; /* sum of live value lengths */
    uint64_t disk_bytes;  /* bytes of files the engine owns, 0 if none */
    uint64_t mem_bytes;   /* engine's own memory (index, tables, cache) */
    int readonly;         /* nonzero after a failed write or fsync */
    int ready;            /* nonzero once open and recovery are done */
    char state[160];      /* why read-only, or "" */
    /* ABI 1.4: nonzero when keys, key_bytes and value_bytes are estimates.
     * Exact counts are the default; an engine for which they would take a
     * scan of its whole data set may estimate above some size, and says
     * so here. */
    int approximate;
};

/* One engine-specific stat. `name` is lowercase words joined by '_', at
 * most 56 bytes. Anything cumulative since open (events, bytes moved, time
 * spent) is a counter and its name ends in `_total` (`puts_total`,
 * `stall_us_total`); anything else is a gauge and does not. A unit is a
 * suffix before `_total` (`_bytes`; times `_seconds`, `_ms`, `_us` or
 * `_ns`). HTTP /metrics types and converts stats by name alone
 * (docs/writing-an-engine.md, "Naming stats"). */
typedef void (*kvd_stat_fn)(void *ctx, const char *name, uint64_t value);

/* Maintenance operations (struct kvd_engine_vtable.maintain). */
enum kvd_maint_op {
    KVD_MAINT_COMPACT = 1, /* merge/compact now; may block for long */
    KVD_MAINT_EXPIRE = 2,  /* reclaim every expired key now */
};

struct kvd_engine_vtable {
    uint32_t abi_version; /* KVD_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct kvd_engine_vtable) */
    const char *name;     /* "memory", "log", ...: the [engine] name */
    const char *version;  /* the engine's own version string */
    const char *description;
    uint32_t caps;            /* enum kvd_engine_cap */
    uint64_t max_key_bytes;   /* largest key the format holds (0 = any) */
    uint64_t max_value_bytes; /* largest value (0 = any) */

    /* Options of the [engine] section (NULL = none), parsed by the host
     * into a zeroed struct of options_size bytes and passed to open(). */
    const struct kvd_option *options;
    size_t options_size;

    /*
     * Open a store. `opts` is the parsed options struct (borrowed until
     * close returns; its strings too). `dir` is the engine's data
     * directory, created by the host; the engine owns its contents.
     * On success *out is set and 0 returned; on failure a status is
     * returned, err is filled and nothing is left behind to close.
     */
    int (*open)(const struct kvd_host *host, const void *opts, const char *dir,
                kvd_engine **out, struct kvd_err *err);

    /* Flush everything acknowledged, free the handle (NULL: no-op). The
     * handle is freed even when an error is returned. */
    int (*close)(kvd_engine *e, struct kvd_err *err);

    /* 0 and *out filled, or KVD_ENOTFOUND (absent or expired), or an
     * error (KVD_EIO, KVD_ECORRUPT, KVD_ENOMEM, ...). On error *out is
     * untouched and must not be released. */
    int (*get)(kvd_engine *e, const void *key, size_t klen,
               struct kvd_val *out);

    /*
     * Insert or replace. KVD_EREADONLY once a write has failed.
     *
     * Validation (put, del, batch, multi): the host has checked every key
     * (non-empty, at most max_key_bytes), value (at most
     * max_value_bytes), expiry (not negative) and batch operation type
     * before the call, so an engine may rely on them (ABI 1.4; multi
     * always said so). kvd/kit_check.h has the checks for an engine that
     * guards its own formats as well.
     */
    int (*put)(kvd_engine *e, const void *key, size_t klen, const void *val,
               size_t vlen, int64_t expire_ms);

    /*
     * 0 when a live key was deleted, KVD_ENOTFOUND when there was none
     * (absent or expired; nothing needs to be written then). The host
     * calls del only when it needs that answer (DEL, UNLINK, HTTP DELETE);
     * a delete whose answer nobody needs (a SET with a past expiry, a
     * FLUSHDB key by key) comes as a batch of one KVD_OP_DEL, which
     * reports nothing (ABI 1.4): an engine for which the answer costs a
     * read pays for it only when it is used.
     */
    int (*del)(kvd_engine *e, const void *key, size_t klen);

    /* Apply n operations; see KVD_CAP_ATOMIC_BATCH. An invalid op
     * (unknown type, empty or oversized key or value) makes the whole
     * batch fail with KVD_EINVAL or KVD_ETOOBIG and changes nothing (the
     * host refuses those before the call, see put). Later operations on
     * the same key win; a KVD_OP_DEL of an absent key is no error.
     * Optional only for engines without either batch capability. */
    int (*batch)(kvd_engine *e, const struct kvd_op *ops, size_t n,
                 struct kvd_err *err);

    /* Iteration: see struct kvd_iter_opts and struct kvd_entry.
     * iter_next returns 0 with *out filled, KVD_ENOTFOUND at the end, or
     * an error. Iterators hold no lock between calls. */
    int (*iter_open)(kvd_engine *e, const struct kvd_iter_opts *opts,
                     kvd_iter **out, struct kvd_err *err);
    int (*iter_next)(kvd_iter *it, struct kvd_entry *out);
    void (*iter_close)(kvd_iter *it);

    /* Fill *st (keep st->struct_size as set by the caller) and report
     * engine-specific counters through fn (may be NULL). */
    int (*stats)(kvd_engine *e, struct kvd_engine_stats *st, kvd_stat_fn fn,
                 void *ctx);

    /* Optional. Make every acknowledged write durable. */
    int (*sync)(kvd_engine *e, struct kvd_err *err);

    /* Optional. Run a maintenance operation (enum kvd_maint_op);
     * KVD_ENOTSUP for operations the engine does not have. */
    int (*maintain)(kvd_engine *e, int op, struct kvd_err *err);

    /* Optional. Delete every key atomically (FLUSHDB). When NULL the core
     * deletes key by key through the iterator. */
    int (*clear)(kvd_engine *e, struct kvd_err *err);

    /* Optional. The capabilities of this open store, when they depend on
     * its options (the memory engine is persistent only with a snapshot
     * file). NULL means `caps` holds for every store. */
    uint32_t (*instance_caps)(kvd_engine *e);

    /*
     * ABI 1.3. Optional. Run n independent operations (struct kvd_mop) in
     * one call,
     * so that an engine can overlap them: one WAL record for all the
     * writes, one network round trip per server. The core calls it with
     * requests of many clients gathered in one event-loop pass.
     *
     * Each operation ends with ops[i].status set to what get, put or del
     * would have returned for it alone (0, KVD_ENOTFOUND, KVD_EIO, ...),
     * and a GET with status 0 fills ops[i].out, which the caller
     * releases. It is not atomic: some operations may fail while others
     * succeed, and a crash may keep any subset of the writes.
     *
     * Order: operations on the same key take effect in array order, and
     * a GET sees every earlier PUT or DEL of its key in the array.
     * Operations on different keys may take effect in any order, and
     * other threads may observe any interleaving of them.
     *
     * The caller has validated every key and value (non-empty, within
     * the limits) and holds the core's write locks of the keys written.
     * Returns 0 once every status is set; a negative return means the
     * call itself failed (out of memory): then every status is set to it
     * and no `out` needs releasing. When NULL the core loops over
     * get/put/del.
     */
    int (*multi)(kvd_engine *e, struct kvd_mop *ops, size_t n);

    /*
     * ABI 1.5. Optional. Check parsed options (the struct open would get)
     * for what the option table cannot say: rules across options (an
     * order of thresholds, an interval that needs a path) and syntax of
     * strings. Touches no file and no network. On failure fill err with
     * the rule and set *key to the option it is about (the host prefixes
     * file, line and value; NULL: the section). `kvd --check-config` and
     * start-up call it before open; open still checks on its own.
     */
    int (*check_options)(const void *opts, const char **key,
                         struct kvd_err *err);

    /* ABI 1 appends here only. */
};

/* The size of the first ABI 1 vtable (up to instance_caps): the smallest
 * struct_size a host accepts. Methods after it are read only when the
 * plugin's struct_size covers them. */
#define KVD_ENGINE_VTABLE_MIN_SIZE                                             \
    (offsetof(struct kvd_engine_vtable, instance_caps) +                       \
     sizeof(((struct kvd_engine_vtable *)0)->instance_caps))

/* Whether vtable vt (of a loaded plugin) has method m: its struct_size
 * covers it and it is not NULL. */
#define KVD_ENGINE_HAS(vt, m)                                                  \
    (KVD_HAS(vt, struct kvd_engine_vtable, m) && (vt)->m != NULL)

/*
 * Hand a filled stats struct to the caller of stats(): copies the fields
 * that both the engine's struct (`src`, of this header's size) and the
 * caller's (`out`, of out->struct_size bytes, which may be smaller when the
 * host is older, or larger when it is newer) have, and keeps
 * out->struct_size. An engine fills a local struct in full and ends with
 * this, instead of checking each field.
 */
static inline void
kvd_engine_stats_copy(struct kvd_engine_stats *out,
                      const struct kvd_engine_stats *src)
{
    uint32_t size = out->struct_size;
    size_t n = size < sizeof(*src) ? size : sizeof(*src);

    if (n > sizeof(uint32_t)) {
        memcpy((unsigned char *)out + sizeof(uint32_t),
               (const unsigned char *)src + sizeof(uint32_t),
               n - sizeof(uint32_t));
    }
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_ENGINE_H */
