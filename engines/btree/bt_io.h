/*
 * bt_io.h -- checked file I/O of the btree engine over the host's
 * struct kvd_io: whole reads and writes (short counts and EINTR retried),
 * an errno as a kvd status, directory fsync.
 *
 * Kept small and apart so that it can give way to the shared engine
 * toolkit's checked file I/O.
 */
#ifndef KVD_BT_IO_H
#define KVD_BT_IO_H

#include <stddef.h>
#include <stdint.h>

#include "kvd/host.h"

/* ENOSPC/EDQUOT -> KVD_ENOSPC, ENOMEM -> KVD_ENOMEM, else KVD_EIO. */
int bt_io_status(int e);

/* Write all n bytes at off. 0 or a status (errno kept). */
int bt_io_write(const struct kvd_io *io, int fd, const void *buf, size_t n,
                uint64_t off);

/* Read up to n bytes at off; *got is what was read (less only at EOF). */
int bt_io_read(const struct kvd_io *io, int fd, void *buf, size_t n,
               uint64_t off, size_t *got);

/* fsync the directory dir. */
int bt_io_sync_dir(const struct kvd_io *io, const char *dir);

#endif /* KVD_BT_IO_H */
