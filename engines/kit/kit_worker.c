/*
 * kit_worker.c -- a background thread for an engine; see kvd/kit_worker.h.
 *
 * State under mu: `wake` (a round was asked for), `stop`. The thread waits
 * on cv, a CLOCK_MONOTONIC condition variable, so wall-clock jumps do not
 * stretch or shorten the interval.
 */
#include "kvd/kit_worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kvd_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wake; /* guarded by mu */
    bool stop; /* guarded by mu */
    int64_t interval_ms;
    kvd_worker_fn fn;
    void *ctx;
    char name[16];
};

static void
deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void *
worker_main(void *arg)
{
    kvd_worker *w = arg;
    struct timespec due;

    pthread_setname_np(pthread_self(), w->name);
    if (w->interval_ms > 0) {
        deadline_in(&due, w->interval_ms);
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        int more;

        if (!w->wake) {
            int rc = 0;
            if (w->interval_ms > 0) {
                rc = pthread_cond_timedwait(&w->cv, &w->mu, &due);
            } else {
                pthread_cond_wait(&w->cv, &w->mu);
            }
            if (w->stop) {
                break;
            }
            if (!w->wake && rc == 0) {
                continue; /* spurious */
            }
        }
        w->wake = false;
        pthread_mutex_unlock(&w->mu);
        do {
            more = w->fn(w->ctx);
        } while (more && !kvd_worker_stopping(w));
        if (w->interval_ms > 0) {
            deadline_in(&due, w->interval_ms);
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int
kvd_worker_start(const char *name, int64_t interval_ms, kvd_worker_fn fn,
                 void *ctx, kvd_worker **out, struct kvd_err *err)
{
    pthread_condattr_t ca;
    kvd_worker *w;
    int rc;

    *out = NULL;
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "%s: out of memory", name);
    }
    w->interval_ms = interval_ms > 0 ? interval_ms : 0;
    w->fn = fn;
    w->ctx = ctx;
    snprintf(w->name, sizeof(w->name), "%s", name);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return kvd_err_set(err, KVD_ENOMEM, "%s: cannot start a thread: %s",
                           name, strerror(rc));
    }
    *out = w;
    return 0;
}

void
kvd_worker_wake(kvd_worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->wake = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int
kvd_worker_stopping(const kvd_worker *w)
{
    kvd_worker *mw = (kvd_worker *)w;
    bool stop;

    pthread_mutex_lock(&mw->mu);
    stop = mw->stop;
    pthread_mutex_unlock(&mw->mu);
    return stop ? 1 : 0;
}

void
kvd_worker_stop(kvd_worker *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
