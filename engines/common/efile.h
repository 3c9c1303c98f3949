/*
 * efile.h -- file helpers shared by the persistent engines (log, lsm).
 *
 * Every call that touches a file goes through the host's struct kvd_io, so
 * a test can fail any read, write or fsync. Each helper returns 0 or a
 * negative kvd status and changes no engine state: whether a failure turns
 * the engine read-only is the caller's decision.
 *
 * Compiled into each engine plugin (hidden, like the rest of the plugin);
 * not part of the installed ABI.
 */
#ifndef KVD_EFILE_H
#define KVD_EFILE_H

#include <stddef.h>
#include <stdint.h>

#include "kvd/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An errno as a kvd status: ENOSPC/EDQUOT, ENOMEM, everything else EIO. */
int efile_errno_status(int e);

/* Read up to n bytes at off, retrying short reads and EINTR; *got is how
 * many were read (less than n only at end of file). */
int efile_read_full(const struct kvd_io *io, int fd, void *buf, size_t n,
                    uint64_t off, size_t *got);

/* Write all n bytes at off, retrying short writes and EINTR. */
int efile_write_full(const struct kvd_io *io, int fd, const void *buf,
                     size_t n, uint64_t off);

/* fsync a directory, so creations, renames and unlinks in it are durable. */
int efile_fsync_dir(const struct kvd_io *io, const char *dir);

/* The size of an open file. */
int efile_file_size(int fd, uint64_t *size);

#ifdef __cplusplus
}
#endif

#endif /* KVD_EFILE_H */
