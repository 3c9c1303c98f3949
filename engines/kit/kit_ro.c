/*
 * kit_ro.c -- the read-only switch; see kvd/kit_ro.h.
 *
 * `cause` is the only field the hot path reads (an atomic); `state` is
 * guarded by mu, which is a leaf.
 */
#include "kvd/kit_ro.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIT_RO_STATE_BYTES 160

struct kvd_ro {
    const struct kvd_host *host;
    char who[32];
    kvd_ro_notify_fn notify;
    void *ctx;
    bool retry_nospace; /* fixed after open */
    _Atomic int cause;  /* 0 while writable */
    pthread_mutex_t mu;
    char state[KIT_RO_STATE_BYTES]; /* guarded by mu */
};

int
kvd_ro_create(const struct kvd_host *host, const char *who,
              kvd_ro_notify_fn notify, void *ctx, kvd_ro **out)
{
    kvd_ro *ro = calloc(1, sizeof(*ro));

    *out = NULL;
    if (ro == NULL) {
        return KVD_ENOMEM;
    }
    ro->host = host;
    snprintf(ro->who, sizeof(ro->who), "%s", who);
    ro->notify = notify;
    ro->ctx = ctx;
    atomic_init(&ro->cause, 0);
    pthread_mutex_init(&ro->mu, NULL);
    *out = ro;
    return 0;
}

void
kvd_ro_destroy(kvd_ro *ro)
{
    if (ro == NULL) {
        return;
    }
    pthread_mutex_destroy(&ro->mu);
    free(ro);
}

int
kvd_ro_fail(kvd_ro *ro, int rc, const char *fmt, ...)
{
    char what[KIT_RO_STATE_BYTES];
    va_list ap;
    bool first;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&ro->mu);
    first = atomic_load(&ro->cause) == 0;
    if (first) {
        /* a long path may be cut short in the state; the log has it all */
        if (snprintf(ro->state, sizeof(ro->state), "read-only: %s: %s", what,
                     kvd_strerror(rc)) < 0) {
            ro->state[0] = '\0';
        }
        atomic_store(&ro->cause, rc != 0 ? rc : KVD_EIO);
    }
    pthread_mutex_unlock(&ro->mu);
    if (first && rc == KVD_ENOSPC && ro->retry_nospace) {
        ro->host->log(ro->host, KVD_LOG_ERROR,
                      "%s: %s: %s; the store is read-only until there is "
                      "space again (the next write then retries)",
                      ro->who, what, kvd_strerror(rc));
    } else if (first) {
        ro->host->log(ro->host, KVD_LOG_ERROR,
                      "%s: %s: %s; the store is read-only from now on (a "
                      "failed write or fsync is never retried)",
                      ro->who, what, kvd_strerror(rc));
    }
    if (first) {
        if (ro->notify != NULL) {
            ro->notify(ro->ctx);
        }
    }
    return rc;
}

int
kvd_ro_open_readonly(kvd_ro *ro, int rc, const char *fmt, ...)
{
    va_list ap;
    bool first;

    pthread_mutex_lock(&ro->mu);
    first = atomic_load(&ro->cause) == 0;
    if (first) {
        va_start(ap, fmt);
        if (vsnprintf(ro->state, sizeof(ro->state), fmt, ap) < 0) {
            ro->state[0] = '\0';
        }
        va_end(ap);
        atomic_store(&ro->cause, rc != 0 ? rc : KVD_EIO);
    }
    pthread_mutex_unlock(&ro->mu);
    if (first && ro->notify != NULL) {
        ro->notify(ro->ctx);
    }
    return rc;
}

void
kvd_ro_retry_nospace(kvd_ro *ro)
{
    ro->retry_nospace = true;
}

int
kvd_ro_check(const kvd_ro *ro)
{
    return atomic_load(&((kvd_ro *)ro)->cause) != 0 ? KVD_EREADONLY : 0;
}

int
kvd_ro_cause(const kvd_ro *ro)
{
    return atomic_load(&((kvd_ro *)ro)->cause);
}

void
kvd_ro_state(kvd_ro *ro, char *buf, size_t n)
{
    if (n == 0) {
        return;
    }
    pthread_mutex_lock(&ro->mu);
    snprintf(buf, n, "%s", atomic_load(&ro->cause) != 0 ? ro->state : "");
    pthread_mutex_unlock(&ro->mu);
}

void
kvd_ro_clear(kvd_ro *ro, const char *why)
{
    bool was;

    pthread_mutex_lock(&ro->mu);
    was = atomic_load(&ro->cause) != 0;
    atomic_store(&ro->cause, 0);
    ro->state[0] = '\0';
    pthread_mutex_unlock(&ro->mu);
    if (was) {
        ro->host->log(ro->host, KVD_LOG_WARN, "%s: writable again: %s", ro->who,
                      why);
    }
}
