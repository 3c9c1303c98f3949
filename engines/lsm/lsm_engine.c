/*
 * lsm_engine.c -- the "lsm" engine: a log-structured merge tree. Writes go
 * to a write-ahead log and a skip-list memtable; full memtables become
 * level-0 SSTables; a background thread merges tables down a leveled
 * hierarchy (L1 = 10 MiB, x10 per level). Reads look in the memtables,
 * then level 0 newest first, then one table per deeper level, skipping
 * tables by key range and bloom filter, with a block cache in front.
 *
 * On-disk format: lsm_wal.h (WAL, MANIFEST), lsm_version.h (edits),
 * lsm_table.h (SSTables); docs/formats.md has all of it. Crash story:
 * records carry crc32c; recovery cuts a torn WAL tail (lsm_recover.c);
 * new files appear by tmp + fsync + rename + directory fsync; the table
 * set changes only through edits synced to the MANIFEST before anything
 * acts on them. Durability: sync = always (group commit before the
 * reply), everysec (background fdatasync) or never. A failed write or
 * fsync turns the engine read-only.
 *
 * Threads: any number of callers; one background thread for flushes and
 * compactions; one more for sync = everysec. Lock order in lsm_db.h.
 *
 * This file: options table, open/close, stats, sync, maintain, and the
 * exported vtable (last). lsm_db.h lists the files below it.
 */
#include "lsm_db.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LSM_VERSION           "1.0.0"
#define LSM_RESTART_INTERVAL  16
#define LSM_STATS_SAMPLE_KEYS 10000
#define LSM_BG_IDLE_MS        1000 /* the worker's round when nothing wakes it */
#define LSM_CAPS                                                               \
    (KVD_CAP_PERSISTENT | KVD_CAP_ORDERED | KVD_CAP_ATOMIC_BATCH |             \
     KVD_CAP_SNAPSHOT_ITER)

/* ---- options ---- */

static const char *const lsm_corrupt_choices[] = {"stop", "skip", "paranoid",
                                                  NULL};

static const struct kvd_option lsm_options[] = {
    {"sync", KVD_OPT_ENUM, "everysec", 0, 0, offsetof(struct lsm_opts, sync),
     kvd_sync_mode_names,
     "always: fdatasync the WAL before a write is acknowledged (concurrent "
     "writers share one fdatasync); everysec: a background fdatasync every "
     "sync_interval (a crash loses at most about that much); never: leave "
     "flushing to the OS"},
    {"sync_interval", KVD_OPT_DURATION, "1s", 10, 60000,
     offsetof(struct lsm_opts, sync_interval), NULL,
     "interval of the background fdatasync for sync = everysec"},
    {"memtable_size", KVD_OPT_SIZE, "4m", 4096, 1LL << 30,
     offsetof(struct lsm_opts, memtable_size), NULL,
     "a memtable is frozen and flushed to a level-0 table once it holds "
     "this many bytes (at most two exist: one filling, one flushing)"},
    {"block_size", KVD_OPT_SIZE, "4k", 256, 1LL << 20,
     offsetof(struct lsm_opts, block_size), NULL,
     "target size of an SSTable data block (the unit of reads and of the "
     "block cache)"},
    {"block_cache_size", KVD_OPT_SIZE, "64m", 0, 0,
     offsetof(struct lsm_opts, block_cache_size), NULL,
     "bytes of data blocks kept in memory (LRU); 0 reads every block from "
     "the file"},
    {"bloom_bits_per_key", KVD_OPT_INT, "10", 0, 32,
     offsetof(struct lsm_opts, bloom_bits_per_key), NULL,
     "bits of bloom filter per key in every table (10 gives about 1% false "
     "positives); 0 = no filter"},
    {"l0_compaction_trigger", KVD_OPT_INT, "4", 1, 64,
     offsetof(struct lsm_opts, l0_compaction_trigger), NULL,
     "level-0 tables that start a merge into level 1"},
    {"l0_slowdown", KVD_OPT_INT, "8", 1, 1000,
     offsetof(struct lsm_opts, l0_slowdown), NULL,
     "level-0 tables at which each write is delayed by 1 ms (logged), so "
     "compaction catches up before l0_stop"},
    {"l0_stop", KVD_OPT_INT, "12", 1, 1000, offsetof(struct lsm_opts, l0_stop),
     NULL, "level-0 tables at which writes wait for compaction (logged)"},
    {"level1_size", KVD_OPT_SIZE, "10m", 16384, 1LL << 40,
     offsetof(struct lsm_opts, level1_size), NULL,
     "bytes level 1 may hold before it is merged down; each deeper level "
     "holds ten times more"},
    {"table_size", KVD_OPT_SIZE, "2m", 4096, 1LL << 30,
     offsetof(struct lsm_opts, table_size), NULL,
     "target size of a table written by compaction"},
    {"corruption", KVD_OPT_ENUM, "stop", 0, 0,
     offsetof(struct lsm_opts, corruption), lsm_corrupt_choices,
     "a damaged WAL record that valid ones follow (a torn tail of the newest "
     "WAL is always cut): stop = recover up to the last good batch and log "
     "what was lost; skip = leave out the damaged bytes and replay the "
     "rest; paranoid = refuse to open"},
    {"max_open_files", KVD_OPT_INT, "1000", 16, 1000000,
     offsetof(struct lsm_opts, max_open_files), NULL,
     "table files kept open (their index and filter in memory); others are "
     "opened when needed"},
    {"auto_compaction", KVD_OPT_BOOL, "yes", 0, 0,
     offsetof(struct lsm_opts, auto_compact), NULL,
     "merge tables in the background; with no, only memtable flushes run "
     "by themselves and tables are merged on request (COMPACT)"},
    {"stats_scan_limit", KVD_OPT_INT, "4000000", 0, INT64_MAX,
     offsetof(struct lsm_opts, stats_scan_limit), NULL,
     "stats count live keys exactly (a scan, cached until the next write) "
     "while the store holds at most this many entries; above, keys and "
     "bytes are estimates from a sample"},
    {"manifest_size", KVD_OPT_SIZE, "64m", 4096, 1LL << 40,
     offsetof(struct lsm_opts, manifest_size), NULL,
     "the MANIFEST (the log of table-set changes) is rewritten as one "
     "snapshot record in a new file once it grows past this size"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* ---- options check ---- */

static int
check_opts(const struct lsm_opts *o, struct kvd_err *err)
{
    if (o->sync < LSM_SYNC_ALWAYS || o->sync > LSM_SYNC_NEVER) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: sync = %d: expected always, everysec or "
                           "never",
                           o->sync);
    }
    if (o->corruption < LSM_CORRUPT_STOP ||
        o->corruption > LSM_CORRUPT_PARANOID) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: corruption = %d: expected stop, skip or "
                           "paranoid",
                           o->corruption);
    }
    if (o->memtable_size < 4096 || o->table_size < 4096 ||
        o->block_size < 256 || o->level1_size < 16384) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: memtable_size and table_size must be at "
                           "least 4k, block_size 256 and level1_size 16k");
    }
    if (o->sync_interval < 10) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: sync_interval must be at least 10 ms");
    }
    if (o->bloom_bits_per_key < 0 || o->bloom_bits_per_key > 32) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: bloom_bits_per_key = %lld: expected 0 to 32",
                           (long long)o->bloom_bits_per_key);
    }
    if (o->l0_compaction_trigger < 1 ||
        o->l0_slowdown < o->l0_compaction_trigger ||
        o->l0_stop < o->l0_slowdown) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: expected 1 <= l0_compaction_trigger (%lld) "
                           "<= l0_slowdown (%lld) <= l0_stop (%lld)",
                           (long long)o->l0_compaction_trigger,
                           (long long)o->l0_slowdown, (long long)o->l0_stop);
    }
    if (o->manifest_size < 4096) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: manifest_size must be at least 4k");
    }
    if (o->max_open_files < 16) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "lsm: max_open_files must be at least 16");
    }
    return 0;
}

/* vtable check_options: the same rules before open (kvd --check-config). */
static int
lsm_check_options(const void *opts, const char **key, struct kvd_err *err)
{
    (void)key; /* the messages name their options */
    return check_opts((const struct lsm_opts *)opts, err);
}

/* ---- open / close ---- */

/* Frees a handle in any state of construction (threads stopped). */
static void
db_destroy(lsm_db *db)
{
    if (db == NULL) {
        return;
    }
    kvd_commit_destroy(db->commit);
    lsm_view_put(db->view);
    db->view = NULL;
    lsm_walf_unref(db, db->wal);
    lsm_logw_release(&db->walw);
    lsm_manifest_close(db);
    lsm_delete_dead(db);
    lsm_tcache_release(&db->tc);
    lsm_cache_destroy(db->bcache);
    for (int l = 0; l < LSM_LEVELS; l++) {
        free((void *)(uintptr_t)db->compact_ptr[l].p);
    }
    free(db->dead);
    kvd_dirlock_release(db->io, db->lock_fd);
    kvd_ro_destroy(db->ro);
    pthread_mutex_destroy(&db->wlock);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->done_cv);
    pthread_mutex_destroy(&db->cmu);
    pthread_mutex_destroy(&db->dead_mu);
    pthread_mutex_destroy(&db->stats_mu);
    free(db->dir);
    free(db);
}

/* The read-only switch flipped: wake whoever waits for a write, a flush or
 * a sync that will not come. */
static void
on_readonly(void *ctx)
{
    lsm_db *db = ctx;

    pthread_mutex_lock(&db->mu);
    pthread_cond_broadcast(&db->done_cv);
    pthread_mutex_unlock(&db->mu);
    if (db->commit != NULL) {
        /* writers waiting for a sync get the cause: KVD_ENOSPC is not an
         * I/O error */
        kvd_commit_fail(db->commit, kvd_ro_cause(db->ro) == KVD_ENOSPC
                                        ? KVD_ENOSPC
                                        : KVD_EIO);
    }
}

/* Threads and group commit, once recovery has a WAL to write to. */
static int
start_threads(lsm_db *db, struct kvd_err *err)
{
    struct kvd_commit_conf cc = {
        .ops = &lsm_wal_commit_ops,
        .ctx = db,
        .mode = db->opts.sync,
        .interval_ms = db->opts.sync_interval,
        .name = "kvd-lsm-sync",
    };
    int rc = kvd_commit_create(&cc, &db->commit, err);

    if (rc == 0) {
        rc = kvd_worker_start("kvd-lsm", LSM_BG_IDLE_MS, lsm_bg_round, db,
                              &db->bg, err);
    }
    return rc;
}

static void
stop_threads(lsm_db *db)
{
    atomic_store(&db->closing, true);
    kvd_worker_stop(db->bg);
    db->bg = NULL;
}

static int
lsm_open(const struct kvd_host *host, const void *opts, const char *dir,
         kvd_engine **out, struct kvd_err *err)
{
    lsm_db *db;
    int rc;

    if (opts == NULL || dir == NULL) {
        return kvd_err_set(err, KVD_EINVAL,
                           "lsm: options and directory are required");
    }
    rc = check_opts(opts, err);
    if (rc != 0) {
        return rc;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "lsm: out of memory");
    }
    db->host = host;
    db->io = host->io;
    db->opts = *(const struct lsm_opts *)opts;
    db->lock_fd = -1;
    db->manifest_fd = -1;
    db->dir = strdup(dir);
    db->vconf.l0_trigger = (int)db->opts.l0_compaction_trigger;
    db->vconf.level1_size = db->opts.level1_size;
    db->vconf.gone = lsm_file_gone;
    db->vconf.release = lsm_tcache_file_release;
    db->vconf.ctx = db;
    db->topts.block_size = (size_t)db->opts.block_size;
    db->topts.restart_interval = LSM_RESTART_INTERVAL;
    db->topts.bloom_bits_per_key = (int)db->opts.bloom_bits_per_key;
    pthread_mutex_init(&db->wlock, NULL);
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->cmu, NULL);
    pthread_mutex_init(&db->dead_mu, NULL);
    pthread_mutex_init(&db->stats_mu, NULL);
    pthread_cond_init(&db->done_cv, NULL);
    if (db->dir == NULL ||
        kvd_ro_create(host, "lsm", on_readonly, db, &db->ro) != 0 ||
        lsm_tcache_init(&db->tc, (size_t)db->opts.max_open_files) != 0 ||
        lsm_cache_create((size_t)db->opts.block_cache_size, &db->bcache) != 0) {
        rc = kvd_err_set(err, KVD_ENOMEM, "lsm: out of memory");
        goto fail;
    }
    kvd_ro_retry_nospace(db->ro);
    rc = kvd_dirlock_acquire(db->io, dir, "lsm", &db->lock_fd, err);
    if (rc == 0) {
        rc = lsm_recover(db, err);
    }
    if (rc == 0) {
        rc = start_threads(db, err);
    }
    if (rc != 0) {
        goto fail;
    }
    atomic_store(&db->ready, 1);
    *out = db;
    return 0;
fail:
    stop_threads(db);
    db_destroy(db);
    return rc;
}

static int
lsm_close(kvd_engine *db, struct kvd_err *err)
{
    int rc = 0;

    if (db == NULL) {
        return 0;
    }
    stop_threads(db);
    /* the WAL holds everything acknowledged; the next open replays it */
    if (!lsm_readonly(db) && db->wal != NULL) {
        rc = kvd_commit_sync_all(db->commit);
    }
    if (rc != 0) {
        char why[LSM_STATE_BYTES];
        kvd_err_set(err, rc, "lsm: close %s: %s", db->dir,
                    lsm_why(db, rc, why));
    }
    db_destroy(db);
    return rc;
}

/* ---- stats ---- */

static uint64_t
view_entries(const struct lsm_view *vw)
{
    uint64_t n = lsm_mem_entries(vw->mem);

    if (vw->imm != NULL) {
        n += lsm_mem_entries(vw->imm);
    }
    for (int l = 0; l < LSM_LEVELS; l++) {
        for (size_t i = 0; i < vw->v->nfiles[l]; i++) {
            n += vw->v->files[l][i]->entries;
        }
    }
    return n;
}

/* Live keys and bytes: exact (scan, cached) or estimated (sample). */
static void
live_totals(lsm_db *db, struct kvd_engine_stats *st, bool *exact)
{
    uint64_t snap;
    struct lsm_view *vw = lsm_view_get(db, &snap);
    int64_t now = db->host->now_ms(db->host);
    uint64_t entries = view_entries(vw);
    struct lsm_live lv;

    *exact = entries <= (uint64_t)db->opts.stats_scan_limit;
    pthread_mutex_lock(&db->stats_mu);
    if (*exact && db->stats_cached && db->stats_gen == vw->gen &&
        db->stats_seq == snap && now < db->stats_valid_until) {
        st->keys = db->stats_keys;
        st->key_bytes = db->stats_key_bytes;
        st->value_bytes = db->stats_value_bytes;
        pthread_mutex_unlock(&db->stats_mu);
        lsm_view_put(vw);
        return;
    }
    pthread_mutex_unlock(&db->stats_mu);
    if (lsm_count_live(db, vw, snap, *exact ? 0 : LSM_STATS_SAMPLE_KEYS, &lv) !=
        0) {
        *exact = false;
        memset(&lv, 0, sizeof(lv));
    }
    if (!lv.complete) {
        /* a sample of the first keys: scale its sizes to every entry */
        *exact = false;
        st->keys = entries;
        st->key_bytes = lv.keys ? lv.key_bytes * entries / lv.keys : 0;
        st->value_bytes = lv.keys ? lv.value_bytes * entries / lv.keys : 0;
    } else {
        st->keys = lv.keys;
        st->key_bytes = lv.key_bytes;
        st->value_bytes = lv.value_bytes;
        pthread_mutex_lock(&db->stats_mu);
        db->stats_cached = true;
        db->stats_gen = vw->gen;
        db->stats_seq = snap;
        db->stats_valid_until = lv.next_expiry;
        db->stats_keys = lv.keys;
        db->stats_key_bytes = lv.key_bytes;
        db->stats_value_bytes = lv.value_bytes;
        pthread_mutex_unlock(&db->stats_mu);
    }
    lsm_view_put(vw);
}

static int
lsm_stats(kvd_engine *db, struct kvd_engine_stats *out, kvd_stat_fn fn,
          void *ctx)
{
    struct kvd_engine_stats st;
    struct lsm_cache_stats cs;
    struct lsm_table_stats ts;
    struct lsm_view *vw;
    uint64_t tables = 0;
    uint64_t table_bytes = 0;
    uint64_t open_tables;
    uint64_t index_bytes;
    uint64_t mem_bytes;
    uint64_t imm_bytes;
    uint64_t wal_bytes;
    uint64_t level_n[LSM_LEVELS];
    uint64_t level_b[LSM_LEVELS];
    uint64_t user;
    uint64_t written;
    uint64_t syncs;
    uint64_t sync_waits;
    bool exact;

    memset(&st, 0, sizeof(st));
    live_totals(db, &st, &exact);
    lsm_tcache_stats(db, &ts, &open_tables, &index_bytes);
    vw = lsm_view_get(db, NULL);
    for (int l = 0; l < LSM_LEVELS; l++) {
        level_n[l] = vw->v->nfiles[l];
        level_b[l] = vw->v->level_bytes[l];
        tables += level_n[l];
        table_bytes += level_b[l];
        /* readers kept by the files themselves */
        for (size_t i = 0; i < vw->v->nfiles[l]; i++) {
            lsm_table *t = atomic_load(&vw->v->files[l][i]->table);
            struct lsm_table_stats fs;
            if (t == NULL) {
                continue;
            }
            lsm_table_get_stats(t, &fs);
            ts.bloom_checks += fs.bloom_checks;
            ts.bloom_negatives += fs.bloom_negatives;
            ts.bloom_false_pos += fs.bloom_false_pos;
            ts.block_reads += fs.block_reads;
            index_bytes += lsm_table_mem_bytes(t);
        }
    }
    mem_bytes = lsm_mem_bytes(vw->mem);
    imm_bytes = vw->imm != NULL ? lsm_mem_bytes(vw->imm) : 0;
    lsm_view_put(vw);
    pthread_mutex_lock(&db->wlock);
    wal_bytes = db->walw.alloc; /* preallocated zeros included */
    pthread_mutex_unlock(&db->wlock);
    lsm_cache_get_stats(db->bcache, &cs);

    st.disk_bytes = table_bytes + wal_bytes + atomic_load(&db->manifest_bytes);
    st.mem_bytes = mem_bytes + imm_bytes + cs.bytes + index_bytes + sizeof(*db);
    st.readonly = lsm_readonly(db);
    st.ready = atomic_load(&db->ready);
    st.approximate = !exact;
    kvd_ro_state(db->ro, st.state, sizeof(st.state));
    kvd_engine_stats_copy(out, &st);
    if (fn == NULL) {
        return 0;
    }
    for (int l = 0; l < LSM_LEVELS; l++) {
        char name[32];
        snprintf(name, sizeof(name), "l%d_tables", l);
        fn(ctx, name, level_n[l]);
        snprintf(name, sizeof(name), "l%d_bytes", l);
        fn(ctx, name, level_b[l]);
    }
    user = kvd_counter_get(&db->c.user_bytes);
    written = kvd_counter_get(&db->c.wal_bytes) +
              kvd_counter_get(&db->c.flush_bytes) +
              kvd_counter_get(&db->c.compact_write_bytes);
    fn(ctx, "tables", tables);
    fn(ctx, "table_bytes", table_bytes);
    fn(ctx, "memtable_bytes", mem_bytes);
    fn(ctx, "imm_memtable_bytes", imm_bytes);
    fn(ctx, "wal_bytes_total", kvd_counter_get(&db->c.wal_bytes));
    fn(ctx, "user_written_bytes_total", user);
    fn(ctx, "flush_bytes_total", kvd_counter_get(&db->c.flush_bytes));
    fn(ctx, "compact_read_bytes_total",
       kvd_counter_get(&db->c.compact_read_bytes));
    fn(ctx, "compact_write_bytes_total",
       kvd_counter_get(&db->c.compact_write_bytes));
    /* (WAL + flush + compaction bytes) / user bytes, times 100 */
    fn(ctx, "write_amp_x100", user ? written * 100 / user : 0);
    fn(ctx, "flushes_total", kvd_counter_get(&db->c.flushes));
    fn(ctx, "compactions_total", kvd_counter_get(&db->c.compactions));
    fn(ctx, "trivial_moves_total", kvd_counter_get(&db->c.trivial_moves));
    fn(ctx, "dropped_shadowed_total", kvd_counter_get(&db->c.dropped_shadowed));
    fn(ctx, "dropped_tombstones_total",
       kvd_counter_get(&db->c.dropped_tombstones));
    fn(ctx, "dropped_expired_total", kvd_counter_get(&db->c.dropped_expired));
    fn(ctx, "bloom_checks_total", ts.bloom_checks);
    fn(ctx, "bloom_negatives_total", ts.bloom_negatives);
    fn(ctx, "bloom_false_positives_total", ts.bloom_false_pos);
    fn(ctx, "block_reads_total", ts.block_reads);
    fn(ctx, "block_cache_hits_total", cs.hits);
    fn(ctx, "block_cache_misses_total", cs.misses);
    fn(ctx, "block_cache_evictions_total", cs.evictions);
    fn(ctx, "block_cache_bytes", cs.bytes);
    fn(ctx, "block_cache_capacity", cs.capacity);
    fn(ctx, "open_tables", open_tables);
    fn(ctx, "table_opens_total", kvd_counter_get(&db->tc.opens));
    fn(ctx, "index_filter_bytes", index_bytes);
    fn(ctx, "stall_us_total", kvd_counter_get(&db->c.stall_us));
    fn(ctx, "stall_slowdowns_total", kvd_counter_get(&db->c.slowdowns));
    fn(ctx, "stall_stops_total", kvd_counter_get(&db->c.stops));
    fn(ctx, "puts_total", kvd_counter_get(&db->c.puts));
    fn(ctx, "dels_total", kvd_counter_get(&db->c.dels));
    fn(ctx, "batches_total", kvd_counter_get(&db->c.batches));
    fn(ctx, "gets_total", kvd_counter_get(&db->c.gets));
    fn(ctx, "fsyncs_total", kvd_counter_get(&db->c.fsyncs));
    kvd_commit_stats(db->commit, &syncs, &sync_waits);
    fn(ctx, "sync_waits_total", sync_waits);
    fn(ctx, "manifest_rolls_total", kvd_counter_get(&db->c.manifest_rolls));
    fn(ctx, "corrupt_records_total", kvd_counter_get(&db->c.corrupt_records));
    fn(ctx, "torn_tail_bytes", kvd_counter_get(&db->c.torn_tail_bytes));
    fn(ctx, "recovery_ms", (uint64_t)db->recovery_ms);
    fn(ctx, "recovery_records", db->recovered_records);
    fn(ctx, "recovery_wals", db->recovered_wals);
    fn(ctx, "stats_exact", exact ? 1 : 0);
    fn(ctx, "readonly", (uint64_t)st.readonly);
    return 0;
}

/* ---- sync / maintain ---- */

static int
lsm_sync_op(kvd_engine *db, struct kvd_err *err)
{
    char why[LSM_STATE_BYTES];
    int rc;

    if (lsm_readonly(db)) {
        return kvd_err_set(err, KVD_EREADONLY, "lsm: %s",
                           lsm_why(db, KVD_EREADONLY, why));
    }
    rc = kvd_commit_sync_all(db->commit);
    if (rc != 0) {
        return kvd_err_set(err, rc, "lsm: sync: %s", lsm_why(db, rc, why));
    }
    return 0;
}

static int
lsm_maintain(kvd_engine *db, int op, struct kvd_err *err)
{
    char why[LSM_STATE_BYTES];
    int rc;

    switch (op) {
    case KVD_MAINT_COMPACT:
    case KVD_MAINT_EXPIRE:
        /* a full compaction rewrites every table and drops every expired
         * key and tombstone on the way; the memtable goes first */
        rc = lsm_force_switch(db);
        if (rc != 0) {
            return kvd_err_set(err, rc, "lsm: compact: %s",
                               lsm_why(db, rc, why));
        }
        return lsm_compact_all(db, err);
    default:
        return kvd_err_set(err, KVD_ENOTSUP,
                           "lsm: maintenance operation %d is not supported",
                           op);
    }
}

/* Durable only when every write waits for its fdatasync. */
static uint32_t
lsm_instance_caps(kvd_engine *db)
{
    return db->opts.sync == LSM_SYNC_ALWAYS ? LSM_CAPS | KVD_CAP_DURABLE
                                            : LSM_CAPS;
}

/* ---- the exported vtable ---- */

KVD_EXPORT const struct kvd_engine_vtable kvd_engine_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_engine_vtable),
    .name = "lsm",
    .version = LSM_VERSION,
    .description = "log-structured merge tree: WAL + skip-list memtable + "
                   "leveled SSTables with bloom filters and a block cache; "
                   "ordered, for data sets larger than memory",
    .caps = LSM_CAPS,
    .max_key_bytes = LSM_MAX_KEY_BYTES,
    .max_value_bytes = LSM_MAX_VALUE_BYTES,
    .options = lsm_options,
    .options_size = sizeof(struct lsm_opts),
    .open = lsm_open,
    .close = lsm_close,
    .get = lsm_get,
    .put = lsm_put,
    .del = lsm_del,
    .batch = lsm_batch,
    .iter_open = lsm_iter_open,
    .iter_next = lsm_iter_next,
    .iter_close = lsm_iter_close,
    .stats = lsm_stats,
    .sync = lsm_sync_op,
    .maintain = lsm_maintain,
    .clear = NULL,
    .instance_caps = lsm_instance_caps,
    .multi = lsm_multi,
    .check_options = lsm_check_options,
};
