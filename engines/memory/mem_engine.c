/*
 * engines/memory/mem_engine.c -- the `memory` storage engine: options,
 * open/close, the vtable methods and the background thread.
 *
 * The engine is a sharded hash table of refcounted immutable entries
 * (mem_table.c) with optional snapshot persistence (mem_snapshot.c); see
 * mem_internal.h for the model and the lock order.
 *
 * Hot paths. get takes one shard lock shared, finds the entry, takes a
 * reference and returns a pointer into it: no copy, however large the
 * value, and the bytes stay valid after concurrent overwrites until
 * kvd_val_release. put builds the new entry (the value copy) before
 * locking, so the exclusive section is a chain walk and a pointer swap;
 * the replaced entry is released after unlocking.
 *
 * TTL. Expired entries are invisible at once (every read compares with
 * host->now_ms()) and are reclaimed three ways: writes to the same key,
 * KVD_MAINT_EXPIRE (a full pass), and a background sampler. The sampler
 * was chosen over a per-shard expiry heap because it costs no memory per
 * key (a heap needs a slot and a back-index for every key with a TTL, and
 * re-sifting on every overwrite) and its work is bounded per round. Every
 * expire_interval it visits each shard from a hash cursor, examining up to
 * expire_sample keys with an expiry and reclaiming the expired ones; while
 * more than a quarter of a round was expired it repeats on that shard,
 * within a time budget of a quarter of the interval. The cursor sweeps the
 * whole shard over time, so every expired key is reclaimed eventually even
 * when few keys expire. stats stays exact regardless: it subtracts expired
 * entries still linked (walking only shards whose earliest expiry passed).
 *
 * Persistence. With snapshot_path set, the snapshot is loaded at open,
 * written by the background thread every snapshot_interval (when anything
 * changed), on sync(), and on close.
 *
 * Threads: the caller's threads, plus one background thread per open
 * engine (a toolkit worker: expiry rounds and periodic snapshots), stopped
 * and joined by close before the final snapshot.
 */
#include "mem_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kvd/engine.h"
#include "kvd/kit_check.h"
#include "kvd/kit_clock.h"
#include "kvd/kit_hash.h"
#include "kvd/kit_worker.h"

#define MEM_ENGINE_VERSION     "1.0.0"
#define MEM_MAX_SHARDS         65536
#define MEM_ITER_CHUNK_KEYS    64
#define MEM_ITER_CHUNK_BUCKETS 1024
#define MEM_EXPIRE_BUSY_PCT    25 /* repeat a shard while more expired */

/* ---------------------------------------------------------------- options */

static const struct kvd_option mem_options[] = {
    {"shards", KVD_OPT_INT | KVD_OPT_POW2, "64", 1, MEM_MAX_SHARDS,
     offsetof(struct mem_opts, shards), NULL,
     "hash table shards, a power of two (more: less lock contention)"},
    {"snapshot_path", KVD_OPT_STRING, "", 0, 0,
     offsetof(struct mem_opts, snapshot_path), NULL,
     "snapshot file, relative to the engine's data directory; "
     "empty: no persistence"},
    {"snapshot_interval", KVD_OPT_DURATION, "0", 0, 7 * 24 * 3600 * 1000LL,
     offsetof(struct mem_opts, snapshot_interval_ms), NULL,
     "write a snapshot this often when data changed; 0: only on sync and "
     "clean shutdown"},
    {"expire_interval", KVD_OPT_DURATION, "100ms", 1, 60 * 1000,
     offsetof(struct mem_opts, expire_interval_ms), NULL,
     "how often the background sampler reclaims expired keys"},
    {"expire_sample", KVD_OPT_INT, "20", 1, 10000,
     offsetof(struct mem_opts, expire_sample), NULL,
     "keys with a TTL examined per shard per sampling round"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* Used when the host passes no options struct. */
static const struct mem_opts mem_default_opts = {
    .shards = 64,
    .snapshot_path = NULL,
    .snapshot_interval_ms = 0,
    .expire_interval_ms = 100,
    .expire_sample = 20,
};

/* --------------------------------------------------------------- helpers */

static int64_t
mem_now(const kvd_engine *db)
{
    return db->host->now_ms(db->host);
}

static void
mem_mutated(kvd_engine *db)
{
    atomic_fetch_add_explicit(&db->mutations, 1, memory_order_relaxed);
}

/* ---------------------------------------------------- background thread */

/* One expiry cycle over every shard (see the file header). */
static void
mem_expire_cycle(kvd_engine *db)
{
    int64_t deadline = kvd_mono_ms(db->host) + db->expire_interval_ms / 4 + 1;

    for (uint32_t i = 0; i < db->nshards; i++) {
        uint32_t examined;
        uint32_t expired;
        do {
            mem_shard_expire_round(db, &db->shards[i], mem_now(db),
                                   db->expire_sample, &examined, &expired);
            atomic_fetch_add_explicit(&db->expired_bg, expired,
                                      memory_order_relaxed);
        } while (expired * 100u > examined * MEM_EXPIRE_BUSY_PCT &&
                 kvd_mono_ms(db->host) < deadline);
    }
}

/* One round of the background worker, which wakes at the shorter of the
 * two intervals: an expiry cycle and a snapshot, each when due. */
static int
mem_bg_round(void *arg)
{
    kvd_engine *db = arg;
    const struct kvd_host *host = db->host;
    int64_t now = kvd_mono_ms(host);

    if (now >= db->next_expire_ms) {
        mem_expire_cycle(db);
        db->next_expire_ms = kvd_mono_ms(host) + db->expire_interval_ms;
    }
    if (db->snapshot_interval_ms > 0 && now >= db->next_snap_ms) {
        struct kvd_err err;
        kvd_err_clear(&err);
        if (mem_snapshot_write(db, false, &err) != 0) {
            host->log(host, KVD_LOG_ERROR,
                      "memory: periodic snapshot failed: %s", err.msg);
        }
        db->next_snap_ms = kvd_mono_ms(host) + db->snapshot_interval_ms;
    }
    return 0;
}

/* ------------------------------------------------------------ open/close */

/* Frees a handle in any state of construction. */
static void
mem_destroy(kvd_engine *db)
{
    if (db == NULL) {
        return;
    }
    kvd_worker_stop(db->bg);
    mem_table_destroy(db);
    pthread_mutex_destroy(&db->snap_lock);
    free(db->snap_path);
    free(db->mark_path);
    free(db);
}

/* Rules the host's per-option type and range checks cannot express. */
static int
mem_check_opts(const struct mem_opts *o, struct kvd_err *err)
{
    const char *path = o->snapshot_path != NULL ? o->snapshot_path : "";
    size_t plen = strlen(path);

    if (o->shards < 1 || o->shards > MEM_MAX_SHARDS ||
        (o->shards & (o->shards - 1)) != 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "[engine] shards = %" PRId64
                           ": expected a power of two from 1 to %d",
                           o->shards, MEM_MAX_SHARDS);
    }
    if (o->snapshot_interval_ms < 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "[engine] snapshot_interval = %" PRId64
                           " ms: expected 0 or more",
                           o->snapshot_interval_ms);
    }
    if (o->snapshot_interval_ms > 0 && plen == 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "[engine] snapshot_interval = %" PRId64
                           " ms needs snapshot_path to be set",
                           o->snapshot_interval_ms);
    }
    if (plen > 0 && path[plen - 1] == '/') {
        return kvd_err_set(err, KVD_ECONFIG,
                           "[engine] snapshot_path = %s: expected a file "
                           "name, not a directory",
                           path);
    }
    if (o->expire_interval_ms < 1 || o->expire_sample < 1 ||
        o->expire_sample > UINT32_MAX / 4) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "[engine] expire_interval and expire_sample must "
                           "be at least 1");
    }
    return 0;
}

/* vtable check_options: the same rules before open (kvd --check-config). */
static int
mem_check_options(const void *opts, const char **key, struct kvd_err *err)
{
    (void)key; /* the messages name their options */
    return mem_check_opts((const struct mem_opts *)opts, err);
}

static int
mem_open(const struct kvd_host *host, const void *opts, const char *dir,
         kvd_engine **out, struct kvd_err *err)
{
    const struct mem_opts *o = opts != NULL ? opts : &mem_default_opts;
    kvd_engine *db;
    int rc;

    *out = NULL;
    rc = mem_check_opts(o, err);
    if (rc != 0) {
        return rc;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "memory: out of memory");
    }
    db->host = host;
    db->nshards = (uint32_t)o->shards;
    while ((1u << db->shard_bits) < db->nshards) {
        db->shard_bits++;
    }
    db->seed = kvd_hash_seed(db);
    db->snapshot_interval_ms = o->snapshot_interval_ms;
    db->expire_interval_ms = o->expire_interval_ms;
    db->expire_sample = (uint32_t)o->expire_sample;
    pthread_mutex_init(&db->snap_lock, NULL);

    if (o->snapshot_path != NULL && o->snapshot_path[0] != '\0') {
        int n = o->snapshot_path[0] == '/' || dir == NULL
                    ? asprintf(&db->snap_path, "%s", o->snapshot_path)
                    : asprintf(&db->snap_path, "%s/%s", dir, o->snapshot_path);
        if (n < 0) {
            db->snap_path = NULL;
            rc = kvd_err_set(err, KVD_ENOMEM, "memory: out of memory");
            goto fail;
        }
        if (dir != NULL &&
            asprintf(&db->mark_path, "%s/%s", dir, MEM_SNAP_MARK_FILE) < 0) {
            db->mark_path = NULL;
            rc = kvd_err_set(err, KVD_ENOMEM, "memory: out of memory");
            goto fail;
        }
    }
    rc = mem_table_init(db);
    if (rc != 0) {
        kvd_err_set(err, rc, "memory: out of memory for %" PRIu32 " shards",
                    db->nshards);
        goto fail;
    }
    rc = mem_snapshot_check_dir(db, err);
    if (rc == 0) {
        rc = mem_snapshot_load(db, err);
    }
    if (rc != 0) {
        goto fail;
    }
    db->saved_gen = atomic_load(&db->mutations);
    db->next_expire_ms = kvd_mono_ms(host) + db->expire_interval_ms;
    db->next_snap_ms = kvd_mono_ms(host) + db->snapshot_interval_ms;
    rc = kvd_worker_start("kvd-memory",
                          db->snapshot_interval_ms > 0 &&
                                  db->snapshot_interval_ms <
                                      db->expire_interval_ms
                              ? db->snapshot_interval_ms
                              : db->expire_interval_ms,
                          mem_bg_round, db, &db->bg, err);
    if (rc != 0) {
        goto fail;
    }
    *out = db;
    return 0;
fail:
    mem_destroy(db);
    return rc;
}

static int
mem_close(kvd_engine *db, struct kvd_err *err)
{
    int rc;

    if (db == NULL) {
        return 0;
    }
    kvd_worker_stop(db->bg);
    db->bg = NULL;
    rc = mem_snapshot_write(db, false, err);
    mem_destroy(db);
    return rc;
}

/* ------------------------------------------------------------- get / put */

static void
mem_val_release(struct kvd_val *v)
{
    mem_entry_unref(v->cookie[0]);
    v->cookie[0] = NULL;
}

static int
mem_get(kvd_engine *db, const void *key, size_t klen, struct kvd_val *out)
{
    uint64_t h;
    struct mem_shard *sh;
    struct mem_entry *e;

    if (klen == 0) {
        return KVD_EINVAL;
    }
    if (klen > MEM_MAX_KEY_BYTES) {
        return KVD_ENOTFOUND; /* cannot have been stored */
    }
    h = mem_hash(db, key, klen);
    sh = mem_shard_of(db, h);
    pthread_rwlock_rdlock(&sh->lock);
    e = mem_shard_find_locked(db, sh, h, key, klen);
    if (e != NULL && e->expire_ms != KVD_NO_EXPIRY &&
        mem_entry_expired(e, mem_now(db))) {
        e = NULL;
    }
    if (e != NULL) {
        mem_entry_ref(e);
    }
    pthread_rwlock_unlock(&sh->lock);
    if (e == NULL) {
        return KVD_ENOTFOUND;
    }
    out->data = e->kv + e->klen;
    out->len = e->vlen;
    out->expire_ms = e->expire_ms;
    out->release = mem_val_release;
    out->cookie[0] = e;
    out->cookie[1] = NULL;
    return 0;
}

static int
mem_del(kvd_engine *db, const void *key, size_t klen)
{
    uint64_t h;
    struct mem_shard *sh;
    struct mem_entry *old;
    bool live;

    if (klen == 0) {
        return KVD_EINVAL;
    }
    if (klen > MEM_MAX_KEY_BYTES) {
        return KVD_ENOTFOUND;
    }
    h = mem_hash(db, key, klen);
    sh = mem_shard_of(db, h);
    pthread_rwlock_wrlock(&sh->lock);
    old = mem_shard_del_locked(db, sh, h, key, klen, mem_now(db), &live);
    pthread_rwlock_unlock(&sh->lock);
    if (old != NULL) {
        mem_entry_unref(old);
        mem_mutated(db);
    }
    return live ? 0 : KVD_ENOTFOUND;
}

static int
mem_put(kvd_engine *db, const void *key, size_t klen, const void *val,
        size_t vlen, int64_t expire_ms)
{
    int rc = kvd_check_put(key, klen, val, vlen, expire_ms, MEM_MAX_KEY_BYTES,
                           MEM_MAX_VALUE_BYTES);
    uint64_t h;
    struct mem_shard *sh;
    struct mem_entry *e;
    struct mem_entry *old;

    if (rc != 0) {
        return rc;
    }
    if (expire_ms != KVD_NO_EXPIRY && expire_ms <= mem_now(db)) {
        /* Born expired: storing it would only use memory. */
        rc = mem_del(db, key, klen);
        return rc == KVD_ENOTFOUND ? 0 : rc;
    }
    h = mem_hash(db, key, klen);
    e = mem_entry_create(key, klen, val, vlen, expire_ms);
    if (e == NULL) {
        return KVD_ENOMEM;
    }
    sh = mem_shard_of(db, h);
    pthread_rwlock_wrlock(&sh->lock);
    old = mem_shard_put_locked(db, sh, h, e);
    pthread_rwlock_unlock(&sh->lock);
    mem_entry_unref(old);
    mem_mutated(db);
    return 0;
}

/* ----------------------------------------------------------------- batch */

/* Batches up to this many ops keep their bookkeeping on the stack (a
 * transaction of a few SETs must not pay three mallocs for it). */
#define MEM_BATCH_STACK_OPS 16

/* Sort the m shard indexes in s and drop repeats; returns how many stay. */
static size_t
mem_shards_sorted(uint32_t *s, size_t m)
{
    size_t u = 0;

    for (size_t i = 1; i < m; i++) { /* insertion sort: m is small */
        uint32_t v = s[i];
        size_t j = i;
        for (; j > 0 && s[j - 1] > v; j--) {
            s[j] = s[j - 1];
        }
        s[j] = v;
    }
    for (size_t i = 0; i < m; i++) {
        if (u == 0 || s[u - 1] != s[i]) {
            s[u++] = s[i];
        }
    }
    return u;
}

/*
 * All or nothing: validate every op, build every new entry (the only
 * allocations), and only then lock the affected shards in ascending order
 * and apply the ops in order, so later ops on a key win and no reader sees
 * half of the batch. A small batch locks its distinct shards from a sorted
 * list; a large one marks them in a table of every shard.
 */
static int
mem_batch(kvd_engine *db, const struct kvd_op *ops, size_t n,
          struct kvd_err *err)
{
    int64_t now = mem_now(db);
    uint64_t hashes_stack[MEM_BATCH_STACK_OPS];
    struct mem_entry *ents_stack[MEM_BATCH_STACK_OPS];
    uint32_t shards_stack[MEM_BATCH_STACK_OPS];
    bool small = n <= MEM_BATCH_STACK_OPS;
    uint64_t *hashes = hashes_stack;
    struct mem_entry **ents = ents_stack;
    unsigned char *locked = NULL;
    size_t nshards = 0;
    int rc;

    rc = kvd_check_batch(ops, n, MEM_MAX_KEY_BYTES, MEM_MAX_VALUE_BYTES, err);
    if (rc != 0 || n == 0) {
        return rc;
    }
    if (small) {
        memset(ents_stack, 0, n * sizeof(ents_stack[0]));
    } else {
        hashes = malloc(n * sizeof(*hashes));
        ents = calloc(n, sizeof(*ents));
        locked = calloc(db->nshards, 1);
        if (hashes == NULL || ents == NULL || locked == NULL) {
            rc = kvd_err_set(err, KVD_ENOMEM, "batch of %zu ops: out of memory",
                             n);
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct kvd_op *op = &ops[i];
        uint32_t s;
        hashes[i] = mem_hash(db, op->key, op->klen);
        s = (uint32_t)(mem_shard_of(db, hashes[i]) - db->shards);
        if (small) {
            shards_stack[i] = s;
        } else {
            locked[s] = 1;
        }
        if (op->type == KVD_OP_PUT &&
            (op->expire_ms == KVD_NO_EXPIRY || op->expire_ms > now)) {
            ents[i] = mem_entry_create(op->key, op->klen, op->val, op->vlen,
                                       op->expire_ms);
            if (ents[i] == NULL) {
                rc = kvd_err_set(err, KVD_ENOMEM, "batch op %zu: out of memory",
                                 i);
                goto out;
            }
        }
    }
    if (small) {
        nshards = mem_shards_sorted(shards_stack, n);
        for (size_t k = 0; k < nshards; k++) {
            pthread_rwlock_wrlock(&db->shards[shards_stack[k]].lock);
        }
    } else {
        for (uint32_t s = 0; s < db->nshards; s++) {
            if (locked[s]) {
                pthread_rwlock_wrlock(&db->shards[s].lock);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct mem_shard *sh = mem_shard_of(db, hashes[i]);
        struct mem_entry *old;
        bool live;
        if (ents[i] != NULL) {
            old = mem_shard_put_locked(db, sh, hashes[i], ents[i]);
        } else {
            /* a delete, or a put that is already expired */
            old = mem_shard_del_locked(db, sh, hashes[i], ops[i].key,
                                       ops[i].klen, now, &live);
        }
        ents[i] = old; /* released after unlocking */
    }
    if (small) {
        for (size_t k = nshards; k-- > 0;) {
            pthread_rwlock_unlock(&db->shards[shards_stack[k]].lock);
        }
    } else {
        for (uint32_t s = db->nshards; s-- > 0;) {
            if (locked[s]) {
                pthread_rwlock_unlock(&db->shards[s].lock);
            }
        }
    }
    mem_mutated(db);
out:
    if (ents != NULL) {
        for (size_t i = 0; i < n; i++) {
            mem_entry_unref(ents[i]);
        }
    }
    if (!small) {
        free(ents);
        free(hashes);
        free(locked);
    }
    return rc;
}

/* ------------------------------------------------------------- iteration */

/*
 * An iterator is a hash cursor plus the entries of the last chunk, each
 * held by a reference, so nothing is locked between calls and the bytes
 * of the returned entry stay valid until the next call. pos = the key's
 * hash; resuming at start_pos works across resizes because buckets are
 * hash ranges (see mem_table_collect).
 */
struct kvd_iter {
    kvd_engine *db;
    uint64_t cur;
    bool done;
    unsigned flags;
    unsigned char *prefix;
    size_t idx;
    struct mem_collect c;
};

static void
mem_iter_close(kvd_iter *it)
{
    if (it == NULL) {
        return;
    }
    mem_collect_release(&it->c);
    free(it->c.v);
    free(it->prefix);
    free(it);
}

static int
mem_iter_open(kvd_engine *db, const struct kvd_iter_opts *opts, kvd_iter **out,
              struct kvd_err *err)
{
    kvd_iter *it = calloc(1, sizeof(*it));

    *out = NULL;
    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "iterator: out of memory");
    }
    it->db = db;
    if (opts != NULL) {
        it->cur = opts->start_pos;
        it->flags = opts->flags;
        if (opts->prefix != NULL && opts->prefix_len > 0) {
            it->prefix = malloc(opts->prefix_len);
            if (it->prefix == NULL) {
                mem_iter_close(it);
                return kvd_err_set(err, KVD_ENOMEM, "iterator: out of memory");
            }
            memcpy(it->prefix, opts->prefix, opts->prefix_len);
            it->c.prefix = it->prefix;
            it->c.prefix_len = opts->prefix_len;
        }
    }
    /* pos is never UINT64_MAX, so nothing lies at or after it. */
    it->done = it->cur == UINT64_MAX;
    *out = it;
    return 0;
}

static int
mem_iter_next(kvd_iter *it, struct kvd_entry *out)
{
    const struct mem_item *item;
    const struct mem_entry *e;

    while (it->idx == it->c.n) {
        int rc;
        mem_collect_release(&it->c);
        it->idx = 0;
        if (it->done) {
            return KVD_ENOTFOUND;
        }
        it->c.now_ms = mem_now(it->db);
        rc = mem_table_collect(it->db, &it->cur, &it->done, &it->c,
                               MEM_ITER_CHUNK_KEYS, MEM_ITER_CHUNK_BUCKETS);
        if (rc != 0) {
            return rc;
        }
    }
    item = &it->c.v[it->idx++];
    e = item->e;
    out->key = e->kv;
    out->klen = e->klen;
    out->val = (it->flags & KVD_ITER_KEYS_ONLY) ? NULL : e->kv + e->klen;
    out->vlen = e->vlen;
    out->expire_ms = e->expire_ms;
    out->pos = item->hash;
    return 0;
}

/* ------------------------------------------------------ stats and admin */

static int
mem_stats(kvd_engine *db, struct kvd_engine_stats *st, kvd_stat_fn fn,
          void *ctx)
{
    int64_t now = mem_now(db);
    uint64_t keys = 0;
    uint64_t kbytes = 0;
    uint64_t vbytes = 0;
    uint64_t mem = sizeof(*db) + (uint64_t)db->nshards * sizeof(*db->shards);
    uint64_t rehashing = 0;

    for (uint32_t i = 0; i < db->nshards; i++) {
        uint64_t k, kb, vb, ab;
        bool rh;
        mem_shard_stats(db, &db->shards[i], now, &k, &kb, &vb, &ab, &rh);
        keys += k;
        kbytes += kb;
        vbytes += vb;
        mem += ab;
        rehashing += rh;
    }
    if (st != NULL) {
        struct kvd_engine_stats full = {
            .keys = keys,
            .key_bytes = kbytes,
            .value_bytes = vbytes,
            .disk_bytes = atomic_load(&db->disk_bytes),
            .mem_bytes = mem,
            .readonly = 0,
            .ready = 1,
        };
        kvd_engine_stats_copy(st, &full);
    }
    if (fn != NULL) {
        fn(ctx, "shards", db->nshards);
        fn(ctx, "persistent", db->snap_path != NULL);
        fn(ctx, "rehashing_shards", rehashing);
        fn(ctx, "rehashes_started_total", atomic_load(&db->rehash_started));
        fn(ctx, "expired_reclaimed_sampler_total",
           atomic_load(&db->expired_bg));
        fn(ctx, "expired_reclaimed_forced_total", atomic_load(&db->expired_fg));
        fn(ctx, "snapshots_written_total", atomic_load(&db->snapshots_written));
        fn(ctx, "snapshot_errors_total", atomic_load(&db->snapshot_errors));
    }
    return 0;
}

static int
mem_sync(kvd_engine *db, struct kvd_err *err)
{
    /* Without a snapshot path there is nothing to make durable; with one,
     * durability means a snapshot (skipped when nothing changed). */
    return mem_snapshot_write(db, false, err);
}

static int
mem_maintain(kvd_engine *db, int op, struct kvd_err *err)
{
    if (op == KVD_MAINT_EXPIRE) {
        int64_t now = mem_now(db);
        uint64_t n = 0;
        for (uint32_t i = 0; i < db->nshards; i++) {
            n += mem_shard_expire_all(db, &db->shards[i], now);
        }
        atomic_fetch_add(&db->expired_fg, n);
        return 0;
    }
    return kvd_err_set(err, KVD_ENOTSUP,
                       "memory engine: maintenance operation %d not "
                       "supported (nothing to compact)",
                       op);
}

static int
mem_clear(kvd_engine *db, struct kvd_err *err)
{
    int rc = mem_table_clear(db);

    if (rc != 0) {
        return kvd_err_set(err, rc, "memory: clear: out of memory");
    }
    mem_mutated(db);
    return 0;
}

/* Persistent exactly when a snapshot file is configured. */
static uint32_t
mem_instance_caps(kvd_engine *e)
{
    struct kvd_engine *db = e;
    return KVD_CAP_ATOMIC_BATCH |
           (db->snap_path != NULL ? KVD_CAP_PERSISTENT : 0u);
}

/* ------------------------------------------------------------ the vtable */

KVD_EXPORT const struct kvd_engine_vtable kvd_engine_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_engine_vtable),
    .name = "memory",
    .version = MEM_ENGINE_VERSION,
    .description = "sharded in-memory hash table, optional snapshot file",
    /* KVD_CAP_PERSISTENT depends on snapshot_path: see instance_caps. */
    .caps = KVD_CAP_ATOMIC_BATCH,
    .max_key_bytes = MEM_MAX_KEY_BYTES,
    .max_value_bytes = MEM_MAX_VALUE_BYTES,
    .options = mem_options,
    .options_size = sizeof(struct mem_opts),
    .open = mem_open,
    .close = mem_close,
    .get = mem_get,
    .put = mem_put,
    .del = mem_del,
    .batch = mem_batch,
    .iter_open = mem_iter_open,
    .iter_next = mem_iter_next,
    .iter_close = mem_iter_close,
    .stats = mem_stats,
    .sync = mem_sync,
    .maintain = mem_maintain,
    .clear = mem_clear,
    .instance_caps = mem_instance_caps,
    .check_options = mem_check_options,
};
