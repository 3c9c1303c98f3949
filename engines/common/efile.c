/*
 * efile.c -- file helpers shared by the persistent engines; see efile.h.
 */
#include "efile.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "kvd/status.h"

int
efile_errno_status(int e)
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
efile_read_full(const struct kvd_io *io, int fd, void *buf, size_t n,
                uint64_t off, size_t *got)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r =
            io->pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return efile_errno_status(errno);
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
efile_write_full(const struct kvd_io *io, int fd, const void *buf, size_t n,
                 uint64_t off)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = io->pwrite(fd, (const char *)buf + done, n - done,
                               (off_t)(off + done));
        if (r < 0) {
            /* EINTR before any byte moved is not a failed write */
            if (errno == EINTR) {
                continue;
            }
            return efile_errno_status(errno);
        }
        if (r == 0) {
            return KVD_ENOSPC;
        }
        done += (size_t)r;
    }
    return 0;
}

int
efile_fsync_dir(const struct kvd_io *io, const char *dir)
{
    int fd = io->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    int rc = 0;

    if (fd < 0) {
        return efile_errno_status(errno);
    }
    if (io->fsync(fd) != 0) {
        rc = efile_errno_status(errno);
    }
    io->close(fd);
    return rc;
}

int
efile_file_size(int fd, uint64_t *size)
{
    struct stat st;

    if (fstat(fd, &st) != 0) {
        return efile_errno_status(errno);
    }
    *size = (uint64_t)st.st_size;
    return 0;
}
