/*
 * bt_io.c -- checked file I/O of the btree engine; see bt_io.h.
 */
#include "bt_io.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int
bt_io_status(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return KVD_ENOSPC;
    case ENOMEM:
        return KVD_ENOMEM;
    default:
        return KVD_EIO;
    }
}

int
bt_io_write(const struct kvd_io *io, int fd, const void *buf, size_t n,
            uint64_t off)
{
    const unsigned char *p = buf;

    while (n > 0) {
        ssize_t w = io->pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return bt_io_status(errno);
        }
        if (w == 0) {
            errno = EIO;
            return KVD_EIO;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int
bt_io_read(const struct kvd_io *io, int fd, void *buf, size_t n, uint64_t off,
           size_t *got)
{
    unsigned char *p = buf;
    size_t done = 0;

    while (done < n) {
        ssize_t r = io->pread(fd, p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *got = done;
            return bt_io_status(errno);
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int
bt_io_sync_dir(const struct kvd_io *io, const char *dir)
{
    int fd = io->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    int rc = 0;

    if (fd < 0) {
        return bt_io_status(errno);
    }
    if (io->fsync(fd) != 0) {
        rc = bt_io_status(errno);
    }
    io->close(fd);
    return rc;
}
