/*
 * kit_commit.c -- group commit and periodic sync; see kvd/kit_commit.h.
 *
 * State under mu: synced (the durable position), syncing (a leader is in
 * ops.sync), err (a sticky failure), and the counters. Leader election:
 * a waiter whose position is not durable and who finds nobody syncing
 * becomes the leader, drops mu for the sync and wakes everyone after it;
 * the others sleep on cv and look again. One sync covers every append
 * made before its leader read the position, so under load each sync
 * serves a whole group of writers.
 */
#include "kvd/kit_commit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "kvd/kit_worker.h"

const char *const kvd_sync_mode_names[] = {"always", "everysec", "never", NULL};

struct kvd_commit {
    struct kvd_commit_ops ops;
    void *ctx;
    int mode;
    kvd_worker *worker; /* everysec only */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t synced; /* guarded by mu */
    bool syncing;    /* guarded by mu */
    int err;         /* guarded by mu: 0, or the failure's status */
    uint64_t syncs;  /* guarded by mu */
    uint64_t waits;  /* guarded by mu */
};

static int
commit_tick(void *arg)
{
    kvd_commit *c = arg;

    (void)kvd_commit_sync_all(c); /* a failure was logged by the engine */
    return 0;
}

int
kvd_commit_create(const struct kvd_commit_conf *conf, kvd_commit **out,
                  struct kvd_err *err)
{
    kvd_commit *c;
    int rc;

    *out = NULL;
    if (conf->ops == NULL || conf->ops->position == NULL ||
        conf->ops->sync == NULL || conf->mode < KVD_SYNC_ALWAYS ||
        conf->mode > KVD_SYNC_NEVER ||
        (conf->mode == KVD_SYNC_EVERYSEC && conf->interval_ms <= 0)) {
        return kvd_err_set(err, KVD_EINVAL,
                           "group commit: missing ops, unknown sync mode %d "
                           "or no interval",
                           conf->mode);
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "group commit: out of memory");
    }
    c->ops = *conf->ops;
    c->ctx = conf->ctx;
    c->mode = conf->mode;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (c->mode == KVD_SYNC_EVERYSEC) {
        rc = kvd_worker_start(conf->name != NULL ? conf->name : "kvd-sync",
                              conf->interval_ms, commit_tick, c, &c->worker,
                              err);
        if (rc != 0) {
            kvd_commit_destroy(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void
kvd_commit_destroy(kvd_commit *c)
{
    if (c == NULL) {
        return;
    }
    kvd_worker_stop(c->worker);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int
kvd_commit_wait(kvd_commit *c, uint64_t pos)
{
    bool waited = false;
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    while (c->synced < pos) {
        uint64_t got = 0;
        int src;

        if (c->err != 0) {
            rc = c->err;
            break;
        }
        if (c->syncing) {
            waited = true;
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        c->syncing = true;
        pthread_mutex_unlock(&c->mu);
        src = c->ops.sync(c->ctx, &got);
        pthread_mutex_lock(&c->mu);
        c->syncing = false;
        c->syncs++;
        if (src != 0) {
            if (c->err == 0) {
                c->err = src;
            }
        } else if (c->synced < got) {
            c->synced = got;
        }
        pthread_cond_broadcast(&c->cv);
        if (src != 0) {
            rc = src;
            break;
        }
    }
    if (waited) {
        c->waits++;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int
kvd_commit_ack(kvd_commit *c, uint64_t pos)
{
    if (c->mode != KVD_SYNC_ALWAYS) {
        return 0;
    }
    return kvd_commit_wait(c, pos);
}

int
kvd_commit_sync_all(kvd_commit *c)
{
    return kvd_commit_wait(c, c->ops.position(c->ctx));
}

void
kvd_commit_synced(kvd_commit *c, uint64_t pos)
{
    pthread_mutex_lock(&c->mu);
    if (c->synced < pos) {
        c->synced = pos;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void
kvd_commit_fail(kvd_commit *c, int rc)
{
    pthread_mutex_lock(&c->mu);
    if (c->err == 0) {
        c->err = rc != 0 ? rc : KVD_EIO;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void
kvd_commit_resume(kvd_commit *c)
{
    pthread_mutex_lock(&c->mu);
    c->err = 0;
    pthread_mutex_unlock(&c->mu);
}

void
kvd_commit_stats(kvd_commit *c, uint64_t *syncs, uint64_t *waits)
{
    pthread_mutex_lock(&c->mu);
    *syncs = c->syncs;
    *waits = c->waits;
    pthread_mutex_unlock(&c->mu);
}
