/*
 * kvd/kit_lock.h -- the data-directory lock; part of the engine toolkit
 * (kvd/kit.h).
 *
 * One open store per directory: open takes an exclusive flock on DIR/LOCK
 * (created if missing; the file stays, empty), close releases it. A second
 * open of the same directory, in this process or another, is refused with
 * KVD_ELOCKED at once instead of two stores writing the same files. The
 * kernel drops the lock when the process dies, so a crash never leaves a
 * stale lock behind. On a read-only file system an existing lock file is
 * opened for reading (flock works on it), so a store can open read-only.
 */
#ifndef KVD_KIT_LOCK_H
#define KVD_KIT_LOCK_H

#include "kvd/host.h"
#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KVD_DIRLOCK_FILE "LOCK"

/*
 * Create directory `dir` if it does not exist, then lock it. `who` starts
 * the messages ("lsm"). On success *fd holds the lock (release it with
 * kvd_dirlock_release). Returns 0, KVD_ELOCKED (another open store holds
 * it; the message names the directory), or the status of the failed call
 * with err filled; *fd is -1 on failure.
 */
int kvd_dirlock_acquire(const struct kvd_io *io, const char *dir,
                        const char *who, int *fd, struct kvd_err *err);

/* Release the lock taken by kvd_dirlock_acquire (fd < 0: nothing). */
void kvd_dirlock_release(const struct kvd_io *io, int fd);

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_LOCK_H */
