/*
 * kvd/kit_commit.h -- group commit and periodic sync for an engine's log;
 * part of the engine toolkit (kvd/kit.h).
 *
 * An engine appends records to a log under its own append lock and counts
 * a log position (bytes appended since open, over every file). This
 * module makes positions durable:
 *
 *   sync = always    a write waits (kvd_commit_ack) until its position is
 *                    durable. The first waiter becomes the leader and has
 *                    the engine sync (ops.sync) everything appended so
 *                    far; writers that arrive meanwhile wait for that sync
 *                    or the next, so concurrent writers share one
 *                    fdatasync.
 *   sync = everysec  a worker thread syncs every `interval_ms`; writes do
 *                    not wait (a crash loses at most about an interval).
 *   sync = never     nothing syncs but kvd_commit_sync_all (the engine's
 *                    sync() and close).
 *
 * The engine provides two operations (struct kvd_commit_ops): `position`
 * (the current end, read under its append lock) and `sync` (under its
 * append lock take a reference on the file holding the end and read the
 * position, release the lock, fdatasync the file, and report the position
 * that is now durable). When the engine moves to a new file it syncs the
 * old one itself and reports it with kvd_commit_synced, so durable
 * positions always cover a prefix of the history.
 *
 * Failure: when a sync fails, the engine turns itself read-only (its sync
 * op does, through kvd/kit_ro.h) and the module remembers the status;
 * every waiter not yet covered and every later wait returns it until
 * kvd_commit_resume.
 *
 * Locking: the module's mutex is a leaf. kvd_commit_synced may be called
 * with the engine's append lock held; the ops are called without the
 * module's lock, so they may take the append lock. kvd_commit_ack,
 * kvd_commit_wait and kvd_commit_sync_all must not be called with the
 * append lock held. Thread-safe.
 */
#ifndef KVD_KIT_COMMIT_H
#define KVD_KIT_COMMIT_H

#include <stdint.h>

#include "kvd/host.h"
#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Durability modes; the index of each name in kvd_sync_mode_names, so an
 * option table can use those as its ENUM choices. */
enum kvd_sync_mode {
    KVD_SYNC_ALWAYS = 0,
    KVD_SYNC_EVERYSEC = 1,
    KVD_SYNC_NEVER = 2,
};

/* "always", "everysec", "never", NULL. */
extern const char *const kvd_sync_mode_names[];

typedef struct kvd_commit kvd_commit;

struct kvd_commit_ops {
    /* The log position of everything appended so far. */
    uint64_t (*position)(void *ctx);
    /* Make everything appended so far durable and set *pos to the
     * position that covers. 0 or the failure's status (after the engine
     * turned itself read-only). */
    int (*sync)(void *ctx, uint64_t *pos);
};

struct kvd_commit_conf {
    const struct kvd_commit_ops *ops; /* borrowed until destroy */
    void *ctx;                        /* passed to every op */
    int mode;                         /* enum kvd_sync_mode */
    int64_t interval_ms;              /* everysec: the period (> 0) */
    const char *name;                 /* everysec: the thread's name */
};

/* 0 with *out set (and, for everysec, its thread running), or KVD_ENOMEM /
 * KVD_EINVAL with err filled. */
int kvd_commit_create(const struct kvd_commit_conf *conf, kvd_commit **out,
                      struct kvd_err *err);

/* Stop the periodic sync and free (NULL: no-op). No final sync: call
 * kvd_commit_sync_all first when the engine closes cleanly. */
void kvd_commit_destroy(kvd_commit *c);

/* After an append that ended at `pos`: with sync = always wait until pos
 * is durable; otherwise return at once. 0 or the failure's status. */
int kvd_commit_ack(kvd_commit *c, uint64_t pos);

/* Wait until pos is durable, leading a sync when nobody is. */
int kvd_commit_wait(kvd_commit *c, uint64_t pos);

/* Make everything appended so far durable (sync(), close). */
int kvd_commit_sync_all(kvd_commit *c);

/* The engine made everything up to pos durable itself (it synced a file
 * it is leaving): wake the writers that covers. */
void kvd_commit_synced(kvd_commit *c, uint64_t pos);

/* Remember a failure the engine saw outside the sync op (a failed
 * append): waiters not covered return rc. */
void kvd_commit_fail(kvd_commit *c, int rc);

/* Forget the failure: the engine is writable again. */
void kvd_commit_resume(kvd_commit *c);

/* fdatasync calls made through ops.sync, and waits that found a sync in
 * progress (writers that shared one). */
void kvd_commit_stats(kvd_commit *c, uint64_t *syncs, uint64_t *waits);

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_COMMIT_H */
