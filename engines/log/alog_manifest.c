/*
 * alog_manifest.c -- lists of segment ids in a file: the MANIFEST (every
 * segment the store needs) and the merge commit record (MERGE, the inputs
 * a merge retires). Both are
 *
 *     file header (kind) | u32 count | u32 id * count | u32 masked crc32c
 *
 * written whole as NAME.tmp, synced, renamed, directory synced.
 *
 * Why a manifest: without it, a deleted segment file is silent data loss
 * (its keys vanish, older values or deleted keys come back). The MANIFEST
 * lists every segment from the moment the file exists with a header
 * (a roll writes it after creating the new segment; a merge after its
 * outputs are renamed and before its inputs are unlinked), so recovery
 * can tell a missing file from one never written. An unlisted segment is
 * harmless (a crash between creating a segment and listing it) and is
 * loaded as usual.
 *
 * Locking: manifest_mu serialises writers (a roll under wlock, a merge
 * under merge_mu) and is taken before seg_mu, which guards the list read.
 */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALOG_IDLIST_MAX_BYTES (1u << 24)

int
alog_idlist_write(alog_db *db, const char *name, int kind, const uint32_t *ids,
                  size_t n)
{
    char path[ALOG_PATH_BYTES];
    size_t len = ALOG_FILE_HDR_BYTES + 4 + 4 * n + 4;
    unsigned char *buf = malloc(len);
    int rc;

    if (buf == NULL) {
        return KVD_ENOMEM;
    }
    alog_file_hdr_encode(buf, kind, 0);
    alog_put_u32(buf + ALOG_FILE_HDR_BYTES, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        alog_put_u32(buf + ALOG_FILE_HDR_BYTES + 4 + 4 * i, ids[i]);
    }
    alog_put_u32(buf + len - 4, kvd_crc32c_mask(kvd_crc32c(0, buf, len - 4)));
    snprintf(path, sizeof(path), "%s/%s", db->dir, name);
    rc = kvd_file_replace(db->io, path, buf, len, NULL);
    free(buf);
    return rc;
}

int
alog_idlist_read(alog_db *db, const char *name, int kind, uint32_t **ids,
                 size_t *n)
{
    char path[ALOG_PATH_BYTES];
    unsigned char *buf = NULL;
    struct alog_file_hdr fh;
    uint64_t size = 0;
    size_t got = 0;
    uint32_t count = 0;
    int fd;
    int rc = KVD_ECORRUPT;

    *ids = NULL;
    *n = 0;
    snprintf(path, sizeof(path), "%s/%s", db->dir, name);
    fd = db->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        return errno == ENOENT ? KVD_ENOTFOUND : kvd_errno_status(errno);
    }
    if (kvd_file_size(fd, &size) != 0 || size > ALOG_IDLIST_MAX_BYTES ||
        size < ALOG_FILE_HDR_BYTES + 8 || (buf = malloc(size)) == NULL ||
        kvd_file_read_full(db->io, fd, buf, size, 0, &got) != 0 ||
        got != size || alog_file_hdr_decode(buf, &fh) != 0 || fh.kind != kind) {
        goto out;
    }
    count = alog_get_u32(buf + ALOG_FILE_HDR_BYTES);
    if (size != ALOG_FILE_HDR_BYTES + 4 + 4 * (uint64_t)count + 4 ||
        kvd_crc32c_mask(kvd_crc32c(0, buf, size - 4)) !=
            alog_get_u32(buf + size - 4)) {
        goto out;
    }
    *ids = malloc((count ? count : 1) * sizeof(**ids));
    if (*ids == NULL) {
        rc = KVD_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < count; i++) {
        (*ids)[i] = alog_get_u32(buf + ALOG_FILE_HDR_BYTES + 4 + 4 * i);
    }
    *n = count;
    rc = 0;
out:
    free(buf);
    db->io->close(fd);
    return rc;
}

int
alog_manifest_write(alog_db *db)
{
    uint32_t *ids;
    size_t n = 0;
    int rc;

    pthread_mutex_lock(&db->manifest_mu);
    pthread_mutex_lock(&db->seg_mu);
    ids = malloc((db->nsegs ? db->nsegs : 1) * sizeof(*ids));
    if (ids != NULL) {
        for (size_t i = 0; i < db->nsegs; i++) {
            ids[n++] = db->segs[i]->id;
        }
    }
    pthread_mutex_unlock(&db->seg_mu);
    rc = ids == NULL ? KVD_ENOMEM
                     : alog_idlist_write(db, ALOG_MANIFEST_FILE,
                                         ALOG_FILE_MANIFEST, ids, n);
    pthread_mutex_unlock(&db->manifest_mu);
    free(ids);
    return rc;
}

static int
has_id(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return 1;
        }
    }
    return 0;
}

int
alog_manifest_check(alog_db *db, const uint32_t *present, size_t npresent,
                    const uint32_t *retired, size_t nretired, int *missing,
                    struct kvd_err *err)
{
    char first[ALOG_PATH_BYTES] = "";
    uint32_t *ids = NULL;
    size_t n = 0;
    int rc;

    *missing = 0;
    rc = alog_idlist_read(db, ALOG_MANIFEST_FILE, ALOG_FILE_MANIFEST, &ids, &n);
    if (rc == KVD_ENOTFOUND) {
        return 0; /* a store from before manifests: written after recovery */
    }
    if (rc != 0) {
        free(ids);
        kvd_counter_add(&db->c.corrupt_records, 1);
        ALOG_LOG(db, KVD_LOG_ERROR,
                 "log: %s/%s is damaged: cannot tell whether segment files "
                 "are missing",
                 db->dir, ALOG_MANIFEST_FILE);
        if (db->opts.corruption == ALOG_CORRUPT_FAIL) {
            return kvd_err_set(err, KVD_ECORRUPT, "log: %s/%s is damaged",
                               db->dir, ALOG_MANIFEST_FILE);
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (has_id(present, npresent, ids[i]) ||
            has_id(retired, nretired, ids[i])) {
            continue;
        }
        if (*missing == 0) {
            alog_seg_path(db, first, ids[i], "data");
        }
        (*missing)++;
        kvd_counter_add(&db->c.corrupt_records, 1);
        ALOG_LOG(db, KVD_LOG_ERROR,
                 "log: segment %s/%08u.data is listed in %s but missing: its "
                 "keys are lost, and older values or deleted keys could come "
                 "back",
                 db->dir, (unsigned)ids[i], ALOG_MANIFEST_FILE);
    }
    free(ids);
    if (*missing > 0 && db->opts.corruption == ALOG_CORRUPT_FAIL) {
        return kvd_err_set(err, KVD_ECORRUPT,
                           "log: %d segment file(s) listed in %s are missing "
                           "(first: %s; corruption = fail)",
                           *missing, ALOG_MANIFEST_FILE, first);
    }
    return 0;
}
