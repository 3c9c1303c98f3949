/*
 * lsm_file.c -- file helpers of the lsm engine: paths, full writes and
 * reads, directory fsync, WAL file objects, status text.
 *
 * Every call that touches a file goes through db->io (struct kvd_io), so a
 * test can fail any write or fsync. Helpers return 0 or a negative kvd
 * status and never turn the engine read-only themselves: the caller knows
 * whether the failure lost an acknowledged write and says so through
 * lsm_fail().
 */
#include "lsm_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

void
lsm_path(const lsm_db *db, char *buf, uint64_t number, const char *ext)
{
    snprintf(buf, LSM_PATH_BYTES, "%s/%06llu.%s", db->dir,
             (unsigned long long)number, ext);
}

const char *
lsm_status_text(int rc)
{
    switch (rc) {
#define LSM_XX_TEXT(name, value, msg)                                          \
    case value:                                                                \
        return msg;
        KVD_STATUS_MAP(LSM_XX_TEXT)
#undef LSM_XX_TEXT
    default:
        return "unknown error";
    }
}

/* Read a whole file into a malloc'd buffer. KVD_ENOTFOUND when it does
 * not exist. */
int
lsm_read_file(const lsm_db *db, const char *path, unsigned char **out,
              size_t *n)
{
    unsigned char *buf = NULL;
    uint64_t size;
    size_t done = 0;
    int fd;
    int rc;

    *out = NULL;
    *n = 0;
    fd = db->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        return errno == ENOENT ? KVD_ENOTFOUND : kvd_errno_status(errno);
    }
    rc = kvd_file_size(fd, &size);
    if (rc == 0 && size > SIZE_MAX / 2) {
        rc = KVD_ETOOBIG;
    }
    if (rc == 0) {
        buf = malloc(size ? (size_t)size : 1);
        if (buf == NULL) {
            rc = KVD_ENOMEM;
        }
    }
    while (rc == 0 && done < size) {
        ssize_t r =
            db->io->pread(fd, buf + done, (size_t)size - done, (off_t)done);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = kvd_errno_status(errno);
        } else if (r == 0) {
            break; /* shrank meanwhile: use what is there */
        } else {
            done += (size_t)r;
        }
    }
    db->io->close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *n = done;
    return 0;
}

int
lsm_fsync_dir(lsm_db *db)
{
    lsm_count(&db->c.fsyncs, 1);
    return kvd_file_fsync_dir(db->io, db->dir);
}

void
lsm_walf_unref(lsm_db *db, struct lsm_walf *w)
{
    if (w != NULL && atomic_fetch_sub(&w->refs, 1) == 1) {
        if (w->fd >= 0) {
            db->io->close(w->fd);
        }
        free(w);
    }
}
