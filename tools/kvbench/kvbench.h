/*
 * tools/kvbench/kvbench.h -- the backend interface of kvbench.
 *
 * kvbench runs db_bench-style workloads (kvbench.c) against a "backend":
 * a kvd engine plugin called through its vtable, the same engine behind the
 * core's store wrappers, or, for comparison in the same run, LevelDB,
 * RocksDB, tkrzw (HashDBM, TreeDBM) or LMDB through their C APIs. A backend is
 * a struct kvb_ops plus a private handle; kvbench.c never knows which one it
 * drives, so every backend runs exactly the same key and value streams.
 *
 * Threading: open, close, reopen, destroy and stats are called from the
 * main thread while no workload runs. put, get, del, sync and the
 * iterator calls may run concurrently from the workload threads (every
 * backend here is thread-safe for them; an iterator is used by one thread).
 */
#ifndef KVD_TOOLS_KVBENCH_H
#define KVD_TOOLS_KVBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/status.h"

/* One `--opt key=value` from the command line; index is its argv slot. */
struct kvb_kv {
    const char *key;
    const char *value;
    int index;
};

/* What the command line asks of the backend; borrowed for its lifetime. */
struct kvb_setup {
    const char *engine;     /* --engine NAME|PATH */
    const char *plugin_dir; /* --plugin_dir, NULL = loader default */
    bool use_store;         /* --store: go through the core's wrappers */
    size_t nopts;
    const struct kvb_kv *opts; /* --opt key=value, in order */
};

/* Numbers shown after the run. UINT64_MAX = unknown. */
struct kvb_stats {
    uint64_t keys;
    uint64_t value_bytes;
    uint64_t disk_bytes;
    uint64_t mem_bytes;
    const char *keys_how; /* where `keys` came from ("engine stats", ...) */
};

/* Called with every engine-specific counter (kvd engines only). */
typedef void (*kvb_counter_fn)(void *ctx, const char *name, uint64_t value);

struct kvb_ops {
    /* del returns KVD_ENOTFOUND for an absent key (LSM libraries cannot
     * tell, and always return 0). */
    bool del_reports_absent;

    /* Human-readable description, e.g. "kvd engine memory 0.1.0
     * (plugins/kvd_engine_memory.so) via the engine vtable". */
    const char *(*describe)(void *b);

    /* Open the database in `dir` (created by kvbench). With `syncmode`
     * the backend opens so that every put is durable before it returns
     * (fillsync). 0 or a negative status with err filled. */
    int (*open)(void *b, const char *dir, bool syncmode, struct kvd_err *err);

    /* Close the database (flushing it); the handle stays usable for
     * another open. */
    int (*close)(void *b, struct kvd_err *err);

    /* How fillsync achieves durability on this backend, for the report
     * (valid after open). */
    const char *(*sync_how)(void *b);

    /* Whether data survives close + open. */
    bool (*persistent)(void *b);

    /* Hot path. put: 0 or a status; with `sync` the write must be durable
     * on return (the backend either opened in syncmode or syncs here).
     * get: 0 and *vlen set, KVD_ENOTFOUND, or a status. del: 0,
     * KVD_ENOTFOUND when the backend can tell the key was absent, or a
     * status. */
    int (*put)(void *b, const void *key, size_t klen, const void *val,
               size_t vlen, bool sync);
    int (*get)(void *b, const void *key, size_t klen, size_t *vlen);
    int (*del)(void *b, const void *key, size_t klen);
    /* Optional: a delete that does not find out whether the key existed
     * (what LSM libraries' delete is; deleterandom uses it, deletecount
     * uses del). NULL: del is already blind. */
    int (*del_blind)(void *b, const void *key, size_t klen);

    /* Full iteration: iter_next returns 0 with the lengths of the entry,
     * KVD_ENOTFOUND at the end, or a status. */
    int (*iter_open)(void *b, void **it, struct kvd_err *err);
    int (*iter_next)(void *it, size_t *klen, size_t *vlen);
    void (*iter_close)(void *it);

    /* Compact everything now (KVD_ENOTSUP when the backend cannot). */
    int (*compact)(void *b, struct kvd_err *err);

    /* Fill *st; report engine-specific counters through fn (may be NULL). */
    int (*stats)(void *b, struct kvb_stats *st, kvb_counter_fn fn, void *ctx);

    /* Free the handle (the database is closed first if open). */
    void (*destroy)(void *b);
};

/*
 * Backend constructors: parse the setup (options are checked here, before
 * any workload runs) and return the ops table and a handle.
 * KVD_ENOTSUP when the backend was not compiled in.
 */
int kvb_kvd_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                   void **b, struct kvd_err *err);
int kvb_leveldb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                       void **b, struct kvd_err *err);
int kvb_rocksdb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                       void **b, struct kvd_err *err);
int kvb_tkrzw_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                     void **b, struct kvd_err *err);
int kvb_lmdb_create(const struct kvb_setup *s, const struct kvb_ops **ops,
                    void **b, struct kvd_err *err);

/* Parse "123", "64k", "4m", "1g" (powers of 2) for backend options.
 * 0 or KVD_EINVAL. */
int kvb_parse_size(const char *s, uint64_t *out);

/* Sum of the sizes of the regular files under dir (0 on error). */
uint64_t kvb_dir_bytes(const char *dir);

#endif /* KVD_TOOLS_KVBENCH_H */
