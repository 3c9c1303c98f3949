/*
 * core/posix_io.c -- the C library's file calls as a struct kvd_io (see
 * core/posix_io.h).
 */
#include "core/posix_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* open() is variadic; the table needs a fixed signature. */
static int
posix_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags | O_CLOEXEC, mode);
}

/* posix_fallocate returns the error instead of setting errno. */
static int
posix_alloc(int fd, off_t off, off_t len)
{
    int rc = posix_fallocate(fd, off, len);

    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

/* sync_file_range where it exists; "cannot here" (EINVAL: a file system
 * without it, ENOSYS, ESPIPE) is nothing done, not a failure. */
static int
posix_writeback(int fd, off_t off, off_t len)
{
#ifdef SYNC_FILE_RANGE_WRITE
    if (sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE) != 0 &&
        errno != EINVAL && errno != ENOSYS && errno != ESPIPE) {
        return -1;
    }
#else
    (void)fd;
    (void)off;
    (void)len;
#endif
    return 0;
}

const struct kvd_io kvd_posix_io = {
    .struct_size = sizeof(struct kvd_io),
    .open = posix_open,
    .close = close,
    .pread = pread,
    .pwrite = pwrite,
    .write = write,
    .fsync = fsync,
    .fdatasync = fdatasync,
    .ftruncate = ftruncate,
    .rename = rename,
    .unlink = unlink,
    .mkdir = mkdir,
    .fallocate = posix_alloc,
    .writeback = posix_writeback,
};
