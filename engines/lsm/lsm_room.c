/*
 * lsm_room.c -- room for writes in the lsm engine: memtable and WAL
 * switches, and write stalls.
 *
 * A writer makes room under wlock before it appends. When the memtable is
 * full it is frozen (it becomes the view's immutable memtable, which the
 * background worker flushes to a level-0 table) and a new memtable starts
 * with a new WAL. The old WAL is synced first (unless sync = never), so
 * the durable position only ever covers a prefix of the history.
 *
 * Disk full: a write that failed for lack of space turned the store
 * read-only; the next write tries again (lsm_resume_locked): it wipes what
 * the failed append may have left in the WAL and, when that works, the
 * store is writable again. A failed fsync, or a store opened read-only,
 * is not retried.
 *
 * Stalls: at l0_slowdown L0 tables each write sleeps 1 ms once; at
 * l0_stop, or while the previous memtable is still being flushed, writers
 * wait on done_cv. Each kind of stall is logged once when it starts (and
 * at most every LSM_STALL_LOG_MS under a sustained overload), and the time
 * spent is counted in stall_us_total.
 */
#include "lsm_db.h"

#include <errno.h>
#include <unistd.h>

#define LSM_SLOWDOWN_US  1000
#define LSM_STALL_LOG_MS 10000

/* Freeze the writers' memtable and start a new one with a new WAL
 * (wlock held). */
static int
switch_locked(lsm_db *db)
{
    struct lsm_walf *nw = NULL;
    struct lsm_view *old;
    lsm_mem *nm = NULL;
    uint64_t number;
    int rc;

    if (db->opts.sync != LSM_SYNC_NEVER && db->wal != NULL) {
        /* the old WAL must be complete on disk before the next one takes
         * writes, or a crash could keep a later write and lose an
         * earlier one */
        kvd_counter_add(&db->c.fsyncs, 1);
        if (db->io->fdatasync(db->wal->fd) != 0) {
            rc = kvd_errno_status(errno);
            return lsm_fail_sync(db, rc, "fdatasync %s/%06llu.log", db->dir,
                                 (unsigned long long)db->wal->number);
        }
        kvd_commit_synced(db->commit, db->written);
    }
    number = lsm_new_file_number(db);
    rc = lsm_wal_create(db, number, &nw);
    if (rc != 0) {
        return lsm_fail(db, rc, "create %s/%06llu.log", db->dir,
                        (unsigned long long)number);
    }
    rc = lsm_mem_create(number, &nm);
    if (rc != 0) {
        char path[LSM_PATH_BYTES];
        lsm_path(db, path, number, "log");
        db->io->unlink(path);
        lsm_walf_unref(db, nw);
        return rc;
    }
    pthread_mutex_lock(&db->mu);
    rc = lsm_view_install_locked(db, nm, db->view->mem, db->view->v, &old);
    pthread_mutex_unlock(&db->mu);
    if (rc != 0) {
        lsm_mem_unref(nm);
        lsm_walf_unref(db, nw);
        return rc;
    }
    lsm_view_put(old);
    lsm_mem_unref(nm); /* the view holds it */
    db->wmem = nm;
    lsm_wal_attach(db, nw);
    kvd_worker_wake(db->bg);
    return 0;
}

static void
stall_note(lsm_db *db, int kind)
{
    static const char *const why[] = {
        "",
        "writes slowed down (1 ms each): level 0 has reached l0_slowdown "
        "tables and compaction is behind",
        "writes stopped: level 0 has reached l0_stop tables; waiting for "
        "compaction",
        "writes stopped: the previous memtable is still being flushed",
    };

    pthread_mutex_lock(&db->mu);
    if (atomic_load(&db->stall) != kind) {
        atomic_store(&db->stall, kind);
        /* once per episode, and at most every LSM_STALL_LOG_MS per kind
         * under a sustained overload */
        if (kind != LSM_STALL_NONE &&
            (db->stall_logged_ms[kind] == 0 ||
             kvd_mono_ms(db->host) >=
                 db->stall_logged_ms[kind] + LSM_STALL_LOG_MS)) {
            db->stall_logged_ms[kind] = kvd_mono_ms(db->host);
            LSM_LOG(
                db, KVD_LOG_WARN,
                "lsm: %s (%d level-0 tables; stall_us_total counts the time)",
                why[kind], atomic_load(&db->l0_files));
        }
    }
    pthread_mutex_unlock(&db->mu);
}

/* Wait on done_cv while cond holds (wlock held, mu not). */
static void
wait_progress(lsm_db *db, int kind)
{
    int64_t t0 = kvd_mono_us(db->host);

    stall_note(db, kind);
    kvd_counter_add(&db->c.stops, 1);
    pthread_mutex_lock(&db->mu);
    for (;;) {
        bool still;
        if (lsm_readonly(db) || atomic_load(&db->closing)) {
            break;
        }
        if (kind == LSM_STALL_MEMTABLE) {
            still = atomic_load(&db->imm_pending);
        } else {
            still = atomic_load(&db->l0_files) >= db->opts.l0_stop;
        }
        if (!still) {
            break;
        }
        pthread_cond_wait(&db->done_cv, &db->mu);
    }
    pthread_mutex_unlock(&db->mu);
    kvd_counter_add(&db->c.stall_us, (uint64_t)(kvd_mono_us(db->host) - t0));
}

/* Make sure the writers' memtable has room (wlock held). With force, a
 * non-empty memtable is frozen whatever its size. */
int
lsm_make_room_locked(lsm_db *db, bool force)
{
    bool delayed = false;

    for (;;) {
        int l0 = atomic_load(&db->l0_files);

        if (lsm_readonly(db)) {
            int rc = lsm_resume_locked(db);
            if (rc != 0) {
                return rc;
            }
        }
        if (!force && !delayed && db->opts.auto_compact &&
            l0 >= db->opts.l0_slowdown) {
            /* a short delay for every write spreads the cost of a
             * falling-behind compaction instead of one long stop */
            int64_t t0 = kvd_mono_us(db->host);
            stall_note(db, LSM_STALL_SLOW);
            pthread_mutex_unlock(&db->wlock);
            usleep(LSM_SLOWDOWN_US);
            pthread_mutex_lock(&db->wlock);
            kvd_counter_add(&db->c.slowdowns, 1);
            kvd_counter_add(&db->c.stall_us,
                            (uint64_t)(kvd_mono_us(db->host) - t0));
            delayed = true;
            continue;
        }
        if (force ? lsm_mem_entries(db->wmem) == 0
                  : lsm_mem_bytes(db->wmem) < db->opts.memtable_size) {
            if (!delayed && atomic_load(&db->stall) != LSM_STALL_NONE) {
                stall_note(db, LSM_STALL_NONE);
            }
            return 0;
        }
        if (atomic_load(&db->imm_pending)) {
            wait_progress(db, LSM_STALL_MEMTABLE);
            continue;
        }
        if (!force && db->opts.auto_compact && l0 >= db->opts.l0_stop) {
            wait_progress(db, LSM_STALL_L0);
            continue;
        }
        return switch_locked(db);
    }
}

int
lsm_resume_locked(lsm_db *db)
{
    int rc;

    if (!lsm_retryable(db)) {
        return KVD_EREADONLY;
    }
    if (db->wal_hole > 0) {
        rc = lsm_logw_zero(&db->walw, db->wal_hole);
        if (rc != 0) {
            return rc; /* still no space: stays read-only */
        }
        db->wal_hole = 0;
    }
    kvd_ro_clear(db->ro, "there is space again: writes resume");
    kvd_commit_resume(db->commit);
    kvd_worker_wake(db->bg);
    return 0;
}

int
lsm_force_switch(lsm_db *db)
{
    int rc;

    pthread_mutex_lock(&db->wlock);
    rc = lsm_make_room_locked(db, true);
    pthread_mutex_unlock(&db->wlock);
    return rc;
}
