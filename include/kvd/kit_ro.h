/*
 * kvd/kit_ro.h -- the read-only switch of a persistent engine; part of the
 * engine toolkit (kvd/kit.h).
 *
 * When a write or fsync fails, the engine cannot know what reached the
 * disk (after a failed fsync the kernel may have dropped the dirty pages),
 * so it stops taking writes: the failing request gets the error, every
 * later write KVD_EREADONLY, and reads keep working. kvd_ro_fail does that
 * switch once: it records the cause ("read-only: fdatasync
 * data/000007.log: I/O error", shown in stats' `state`), logs it once at
 * error level, and calls the engine's notify hook, which wakes whatever
 * waits for a write that will not come (group commit, stalled writers).
 * Later failures only return their status.
 *
 * Thread-safe; kvd_ro_check is one atomic load.
 */
#ifndef KVD_KIT_RO_H
#define KVD_KIT_RO_H

#include <stddef.h>

#include "kvd/host.h"
#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvd_ro kvd_ro;

/* Called once, by the thread whose failure switched the store, with no
 * lock of the switch held. */
typedef void (*kvd_ro_notify_fn)(void *ctx);

/* A writable switch. `who` starts the log lines ("lsm"); host is borrowed
 * until destroy; notify may be NULL. 0 or KVD_ENOMEM. */
int kvd_ro_create(const struct kvd_host *host, const char *who,
                  kvd_ro_notify_fn notify, void *ctx, kvd_ro **out);
void kvd_ro_destroy(kvd_ro *ro); /* NULL: no-op */

/* Tell the switch that the engine retries writes once space is back after
 * KVD_ENOSPC (and clears the switch when one gets through), so that the
 * log line says so instead of "never retried". Call it at open. */
void kvd_ro_retry_nospace(kvd_ro *ro);

/* Turn read-only because `rc` (a failed I/O's status) happened while
 * doing what fmt says ("write %s at offset %llu"). Returns rc, so a
 * failure path reads `return kvd_ro_fail(ro, rc, ...);`. */
int kvd_ro_fail(kvd_ro *ro, int rc, const char *fmt, ...) KVD_PRINTF(3, 4);

/* Open read-only because of what the engine found at open (for example
 * files its catalogue lists are missing), not because an I/O call failed:
 * the state becomes exactly the text fmt says, an instruction for the
 * operator ("read-only: 2 segment file(s) ... are missing; restore them,
 * or ..."), with no ": <strerror>" appended, and nothing is logged (the
 * engine logs its findings itself). `rc` becomes the cause (KVD_EIO when
 * 0); the notify hook runs as for kvd_ro_fail. A store that is read-only
 * already keeps its first cause and state. Returns rc. */
int kvd_ro_open_readonly(kvd_ro *ro, int rc, const char *fmt, ...)
    KVD_PRINTF(3, 4);

/* 0 while writable, KVD_EREADONLY after a failure. */
int kvd_ro_check(const kvd_ro *ro);

/* The status that switched the store (0 while writable). */
int kvd_ro_cause(const kvd_ro *ro);

/* The reason for stats' state ("" while writable), cut to n bytes. */
void kvd_ro_state(kvd_ro *ro, char *buf, size_t n);

/* Writable again: the engine repaired what failed (for example space
 * came back after KVD_ENOSPC and it cut the partial record). Logs `why`
 * at warning level. No-op when writable. */
void kvd_ro_clear(kvd_ro *ro, const char *why);

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_RO_H */
