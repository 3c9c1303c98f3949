/*
 * kvd/kit_file.h -- checked file I/O for engines; part of the engine
 * toolkit (kvd/kit.h).
 *
 * Every call that touches a file goes through the host's struct kvd_io, so
 * a test can fail any write or fsync. Reads and writes retry short
 * transfers and EINTR. Helpers return 0 or a negative kvd status and
 * change no engine state: whether a failure turns the store read-only is
 * the caller's decision (kvd/kit_ro.h). Thread-safe (no shared state).
 */
#ifndef KVD_KIT_FILE_H
#define KVD_KIT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "kvd/host.h"
#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Modes of files and directories the toolkit creates (before umask). */
#define KVD_FILE_MODE 0644
#define KVD_DIR_MODE  0755

/* An errno as a kvd status: ENOSPC and EDQUOT are KVD_ENOSPC, EROFS is
 * KVD_EROFS, ENOMEM is KVD_ENOMEM, everything else KVD_EIO. */
int kvd_errno_status(int e);

/* Read up to n bytes at off; *got is how many were read (less than n only
 * at the end of the file). 0 or a status. */
int kvd_file_read_full(const struct kvd_io *io, int fd, void *buf, size_t n,
                       uint64_t off, size_t *got);

/* Write all n bytes at off. 0 or a status (a write that makes no progress
 * is KVD_ENOSPC); on failure part of the bytes may be in the file. */
int kvd_file_write_full(const struct kvd_io *io, int fd, const void *buf,
                        size_t n, uint64_t off);

/* The size of an open file. */
int kvd_file_size(int fd, uint64_t *size);

/*
 * Read the whole file at path into a malloc'd buffer (*out, the caller
 * frees it; never NULL on success, even for an empty file). Files over
 * `max` bytes are refused with KVD_ETOOBIG (0 = no limit). Returns 0,
 * KVD_ENOTFOUND when the file does not exist, or a status.
 */
int kvd_file_read_all(const struct kvd_io *io, const char *path, size_t max,
                      unsigned char **out, size_t *n);

/* fsync a directory, so creations, renames and unlinks in it are durable. */
int kvd_file_fsync_dir(const struct kvd_io *io, const char *dir);

/* fsync the directory that holds `path` ("." for a bare name). */
int kvd_file_fsync_parent(const struct kvd_io *io, const char *path);

/*
 * Durable replace, in two steps for data written as a stream: open
 * PATH.tmp (created or truncated), write it through t->fd
 * (kvd_file_write_full or io->write), then commit: fsync, rename over
 * PATH, fsync PATH's directory. After a crash PATH is the old file or the
 * new one, never a mix. Commit hands the open file to *fd (the caller
 * closes it) or closes it when fd is NULL; when it fails it removes the
 * temporary file and reports the step ("fsync data/CURRENT.tmp: ...").
 * Abort (for the caller's own failure between the two) closes and
 * removes the temporary file. After commit or abort the struct is empty;
 * both accept one from a failed open.
 */
struct kvd_file_tmp {
    int fd;     /* open for writing; -1 when none */
    char *path; /* the final path (malloc'd) */
    char *tmp;  /* path + ".tmp" (malloc'd) */
};

int kvd_file_tmp_open(const struct kvd_io *io, const char *path,
                      struct kvd_file_tmp *t, struct kvd_err *err);
int kvd_file_tmp_commit(const struct kvd_io *io, struct kvd_file_tmp *t,
                        int *fd, struct kvd_err *err);
void kvd_file_tmp_abort(const struct kvd_io *io, struct kvd_file_tmp *t);

/* Durable replace of PATH by the n bytes at buf (the two steps above). */
int kvd_file_replace(const struct kvd_io *io, const char *path, const void *buf,
                     size_t n, struct kvd_err *err);

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_FILE_H */
