/*
 * kit_file.c -- checked file I/O for engines; see kvd/kit_file.h.
 */
#include "kvd/kit_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int
kvd_errno_status(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return KVD_ENOSPC;
    case ENOMEM:
        return KVD_ENOMEM;
    case EROFS:
        return KVD_EROFS;
    default:
        return KVD_EIO;
    }
}

int
kvd_file_read_full(const struct kvd_io *io, int fd, void *buf, size_t n,
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
            *got = done;
            return kvd_errno_status(errno);
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
kvd_file_write_full(const struct kvd_io *io, int fd, const void *buf, size_t n,
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
            return kvd_errno_status(errno);
        }
        if (r == 0) {
            return KVD_ENOSPC;
        }
        done += (size_t)r;
    }
    return 0;
}

int
kvd_file_size(int fd, uint64_t *size)
{
    struct stat st;

    if (fstat(fd, &st) != 0) {
        return kvd_errno_status(errno);
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

int
kvd_file_read_all(const struct kvd_io *io, const char *path, size_t max,
                  unsigned char **out, size_t *n)
{
    unsigned char *buf = NULL;
    uint64_t size = 0;
    size_t got = 0;
    int fd;
    int rc;

    *out = NULL;
    *n = 0;
    fd = io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        return errno == ENOENT ? KVD_ENOTFOUND : kvd_errno_status(errno);
    }
    rc = kvd_file_size(fd, &size);
    if (rc == 0 && (size > SIZE_MAX / 2 || (max > 0 && size > max))) {
        rc = KVD_ETOOBIG;
    }
    if (rc == 0) {
        buf = malloc(size > 0 ? (size_t)size : 1);
        if (buf == NULL) {
            rc = KVD_ENOMEM;
        }
    }
    if (rc == 0) {
        /* a file that shrank meanwhile: use what is there */
        rc = kvd_file_read_full(io, fd, buf, (size_t)size, 0, &got);
    }
    io->close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *n = got;
    return 0;
}

int
kvd_file_fsync_dir(const struct kvd_io *io, const char *dir)
{
    int fd = io->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    int rc = 0;

    if (fd < 0) {
        return kvd_errno_status(errno);
    }
    if (io->fsync(fd) != 0) {
        rc = kvd_errno_status(errno);
    }
    io->close(fd);
    return rc;
}

int
kvd_file_fsync_parent(const struct kvd_io *io, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int rc;

    if (slash == NULL) {
        return kvd_file_fsync_dir(io, ".");
    }
    if (slash == path) {
        return kvd_file_fsync_dir(io, "/");
    }
    dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL) {
        return KVD_ENOMEM;
    }
    rc = kvd_file_fsync_dir(io, dir);
    free(dir);
    return rc;
}

/* ---- durable replace ---- */

static void
tmp_clear(struct kvd_file_tmp *t)
{
    free(t->path);
    free(t->tmp);
    t->path = NULL;
    t->tmp = NULL;
    t->fd = -1;
}

int
kvd_file_tmp_open(const struct kvd_io *io, const char *path,
                  struct kvd_file_tmp *t, struct kvd_err *err)
{
    int e;

    t->fd = -1;
    t->path = strdup(path);
    t->tmp = malloc(strlen(path) + sizeof(".tmp"));
    if (t->path == NULL || t->tmp == NULL) {
        tmp_clear(t);
        return kvd_err_set(err, KVD_ENOMEM, "%s: out of memory", path);
    }
    sprintf(t->tmp, "%s.tmp", path);
    t->fd = io->open(t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     KVD_FILE_MODE);
    if (t->fd < 0) {
        e = errno;
        kvd_err_set(err, kvd_errno_status(e), "open %s: %s", t->tmp,
                    strerror(e));
        tmp_clear(t);
        return kvd_errno_status(e);
    }
    return 0;
}

void
kvd_file_tmp_abort(const struct kvd_io *io, struct kvd_file_tmp *t)
{
    if (t->fd >= 0) {
        io->close(t->fd);
    }
    if (t->tmp != NULL) {
        io->unlink(t->tmp); /* best effort: the old file is intact */
    }
    tmp_clear(t);
}

int
kvd_file_tmp_commit(const struct kvd_io *io, struct kvd_file_tmp *t, int *fd,
                    struct kvd_err *err)
{
    int rc;

    if (t->fd < 0) {
        tmp_clear(t);
        return kvd_err_set(err, KVD_EINVAL, "commit of a file never opened");
    }
    if (io->fsync(t->fd) != 0) {
        int e = errno;
        rc = kvd_err_set(err, kvd_errno_status(e), "fsync %s: %s", t->tmp,
                         strerror(e));
        kvd_file_tmp_abort(io, t);
        return rc;
    }
    if (io->rename(t->tmp, t->path) != 0) {
        int e = errno;
        rc = kvd_err_set(err, kvd_errno_status(e), "rename %s to %s: %s",
                         t->tmp, t->path, strerror(e));
        kvd_file_tmp_abort(io, t);
        return rc;
    }
    /* the new file is in place from here: a failed directory fsync only
     * leaves its durability in doubt, so nothing is removed */
    rc = kvd_file_fsync_parent(io, t->path);
    if (rc != 0) {
        kvd_err_set(err, rc, "fsync the directory of %s: %s", t->path,
                    kvd_strerror(rc));
    }
    if (fd != NULL && rc == 0) {
        *fd = t->fd;
    } else {
        io->close(t->fd);
    }
    tmp_clear(t);
    return rc;
}

int
kvd_file_replace(const struct kvd_io *io, const char *path, const void *buf,
                 size_t n, struct kvd_err *err)
{
    struct kvd_file_tmp t;
    int rc = kvd_file_tmp_open(io, path, &t, err);

    if (rc != 0) {
        return rc;
    }
    rc = kvd_file_write_full(io, t.fd, buf, n, 0);
    if (rc != 0) {
        kvd_err_set(err, rc, "write %s: %s", t.tmp, kvd_strerror(rc));
        kvd_file_tmp_abort(io, &t);
        return rc;
    }
    return kvd_file_tmp_commit(io, &t, NULL, err);
}
