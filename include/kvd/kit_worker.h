/*
 * kvd/kit_worker.h -- a background thread for an engine; part of the
 * engine toolkit (kvd/kit.h).
 *
 * The skeleton every engine with background work writes: a thread that
 * runs one function every interval and whenever it is woken, and that
 * stops cleanly at close. The function does one round of work and returns
 * nonzero when more is waiting (it is called again at once) or 0 (the
 * thread sleeps until the interval passes or kvd_worker_wake). A wake that
 * arrives while a round runs is not lost: another round follows.
 *
 * Intervals are real monotonic time (the thread sleeps on a condition
 * variable), not the host's clock. Thread-safe: wake from any thread,
 * start and stop from the owner.
 */
#ifndef KVD_KIT_WORKER_H
#define KVD_KIT_WORKER_H

#include <stdint.h>

#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvd_worker kvd_worker;

/* One round of work; nonzero: more is waiting, call again now. */
typedef int (*kvd_worker_fn)(void *ctx);

/*
 * Start a thread named `name` (at most 15 characters are kept) that calls
 * fn(ctx) every interval_ms (0 = only when woken) and when woken; the
 * first round runs after the first interval or wake. 0 with *out set, or
 * KVD_ENOMEM with err filled.
 */
int kvd_worker_start(const char *name, int64_t interval_ms, kvd_worker_fn fn,
                     void *ctx, kvd_worker **out, struct kvd_err *err);

/* Run a round soon (at once if the thread sleeps). */
void kvd_worker_wake(kvd_worker *w);

/* Nonzero once stop was asked: a long round may give up early. */
int kvd_worker_stopping(const kvd_worker *w);

/* Stop: let a running round finish, join the thread, free w (NULL: no-op).
 * fn never runs after this returns. Not from fn itself. */
void kvd_worker_stop(kvd_worker *w);

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_WORKER_H */
