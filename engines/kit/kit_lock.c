/*
 * kit_lock.c -- the data-directory lock; see kvd/kit_lock.h.
 *
 * flock rather than fcntl locks: an fcntl lock belongs to the process and
 * vanishes when any descriptor of the file is closed, so two opens of one
 * directory inside the same process would not exclude each other.
 */
#include "kvd/kit_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "kvd/kit_file.h"

int
kvd_dirlock_acquire(const struct kvd_io *io, const char *dir, const char *who,
                    int *fd, struct kvd_err *err)
{
    char path[4096];
    int e;

    *fd = -1;
    if (io->mkdir(dir, KVD_DIR_MODE) != 0 && errno != EEXIST) {
        e = errno;
        return kvd_err_set(err, kvd_errno_status(e), "%s: mkdir %s: %s", who,
                           dir, strerror(e));
    }
    if (snprintf(path, sizeof(path), "%s/%s", dir, KVD_DIRLOCK_FILE) >=
        (int)sizeof(path)) {
        return kvd_err_set(err, KVD_EINVAL, "%s: data directory path too long",
                           who);
    }
    *fd = io->open(path, O_RDWR | O_CREAT | O_CLOEXEC, KVD_FILE_MODE);
    if (*fd < 0 && errno == EROFS) {
        /* a read-only file system: flock works on a read descriptor, and
         * the engine can still serve reads */
        *fd = io->open(path, O_RDONLY | O_CLOEXEC, 0);
    }
    if (*fd < 0) {
        e = errno;
        return kvd_err_set(err, kvd_errno_status(e), "%s: open %s: %s", who,
                           path, strerror(e));
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        e = errno;
        io->close(*fd);
        *fd = -1;
        if (e == EWOULDBLOCK) {
            return kvd_err_set(err, KVD_ELOCKED,
                               "%s: data directory %s is in use by another "
                               "open store (flock on %s is held)",
                               who, dir, path);
        }
        return kvd_err_set(err, KVD_EIO, "%s: flock %s: %s", who, path,
                           strerror(e));
    }
    return 0;
}

void
kvd_dirlock_release(const struct kvd_io *io, int fd)
{
    if (fd >= 0) {
        io->close(fd); /* closing the descriptor releases the flock */
    }
}
