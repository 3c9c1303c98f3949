/*
 * lsm_manifest.c -- the MANIFEST (a record log of version edits, see
 * lsm_version.h) and CURRENT (the name of the live MANIFEST).
 *
 * A MANIFEST starts with the file header record and one snapshot edit
 * holding every table of the version plus the counters (log number, next
 * file number, last sequence number); every later record is one edit.
 * A new MANIFEST is written on every open and whenever the current one
 * passes manifest_size bytes: MANIFEST-N.tmp, fsync, rename,
 * directory fsync, then CURRENT is replaced the same way (CURRENT.tmp,
 * fsync, rename, directory fsync), and only then is the old MANIFEST
 * removed. A crash at any point leaves CURRENT naming a complete MANIFEST.
 *
 * An edit is durable once lsm_manifest_append returns (record appended,
 * fdatasync). Loading tolerates a torn last record (an edit whose append
 * was interrupted was never acted on) and refuses damage before it.
 *
 * Callers hold cmu (or are the only thread, at open).
 */
#include "lsm_db.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
manifest_path(const lsm_db *db, char *buf, uint64_t number, bool tmp)
{
    snprintf(buf, LSM_PATH_BYTES, "%s/MANIFEST-%06llu%s", db->dir,
             (unsigned long long)number, tmp ? ".tmp" : "");
}

/* Point CURRENT at MANIFEST-number (a durable replace). */
static int
set_current(lsm_db *db, uint64_t number)
{
    char path[LSM_PATH_BYTES];
    char body[64];
    int n = snprintf(body, sizeof(body), "MANIFEST-%06llu\n",
                     (unsigned long long)number);

    snprintf(path, sizeof(path), "%s/%s", db->dir, LSM_CURRENT_FILE);
    kvd_counter_add(&db->c.fsyncs, 2); /* the file and its directory */
    return kvd_file_replace(db->io, path, body, (size_t)n, NULL);
}

static int
snapshot_edit(lsm_db *db, const lsm_version *v, uint64_t log_number,
              uint64_t last_seq, struct lsm_edit *e)
{
    lsm_edit_set_log_number(e, log_number);
    pthread_mutex_lock(&db->mu);
    lsm_edit_set_next_file(e, db->next_file);
    pthread_mutex_unlock(&db->mu);
    lsm_edit_set_last_seq(e, last_seq);
    for (int l = 0; l < LSM_LEVELS; l++) {
        for (size_t i = 0; i < v->nfiles[l]; i++) {
            const struct lsm_file *f = v->files[l][i];
            int rc = lsm_edit_add_file(e, l, f->number, f->size, f->entries,
                                       f->smallest, f->largest);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int
lsm_manifest_create(lsm_db *db, const lsm_version *v, uint64_t number,
                    uint64_t log_number, uint64_t last_seq, struct kvd_err *err)
{
    char path[LSM_PATH_BYTES];
    unsigned char hdr[LSM_FILE_HDR_BYTES];
    struct kvd_file_tmp t;
    struct kvd_err ferr = {0};
    struct lsm_edit e;
    struct lsm_logw w;
    unsigned char *rec = NULL;
    size_t n = 0;
    int fd = -1;
    int rc;

    manifest_path(db, path, number, false);
    rc = kvd_file_tmp_open(db->io, path, &t, &ferr);
    if (rc != 0) {
        return kvd_err_set(err, rc, "lsm: %s", ferr.msg);
    }
    lsm_logw_init(&w, db->io, t.fd, 0);
    lsm_edit_init(&e);
    lsm_file_hdr_encode(hdr, LSM_FILE_KIND_MANIFEST, last_seq);
    rc = lsm_logw_add(&w, hdr, sizeof(hdr));
    if (rc == 0) {
        rc = snapshot_edit(db, v, log_number, last_seq, &e);
    }
    if (rc == 0) {
        rc = lsm_edit_encode(&e, &rec, &n);
    }
    if (rc == 0) {
        rc = lsm_logw_add(&w, rec, n);
    }
    free(rec);
    lsm_edit_release(&e);
    if (rc != 0) {
        kvd_file_tmp_abort(db->io, &t);
        lsm_logw_release(&w);
        return kvd_err_set(err, rc, "lsm: write %s.tmp: %s", path,
                           kvd_strerror(rc));
    }
    kvd_counter_add(&db->c.fsyncs, 2); /* the file and its directory */
    rc = kvd_file_tmp_commit(db->io, &t, &fd, &ferr);
    if (rc == 0) {
        rc = set_current(db, number);
        if (rc != 0) {
            db->io->close(fd);
            kvd_err_set(&ferr, rc, "point CURRENT at %s: %s", path,
                        kvd_strerror(rc));
        }
    }
    if (rc != 0) {
        /* the new MANIFEST is not live: CURRENT names the old one */
        db->io->unlink(path);
        lsm_logw_release(&w);
        return kvd_err_set(err, rc, "lsm: %s", ferr.msg);
    }
    /* the new MANIFEST is live: the old one can go */
    if (db->manifest_fd >= 0) {
        char old[LSM_PATH_BYTES];
        manifest_path(db, old, db->manifest_number, false);
        lsm_logw_release(&db->manw);
        db->io->close(db->manifest_fd);
        if (db->manifest_number != number) {
            db->io->unlink(old);
        }
    }
    db->manifest_fd = fd;
    db->manifest_number = number;
    db->manw = w;
    atomic_store(&db->manifest_bytes, w.off);
    return 0;
}

int
lsm_manifest_append(lsm_db *db, const struct lsm_edit *e)
{
    unsigned char *rec = NULL;
    size_t n = 0;
    int rc;

    rc = lsm_edit_encode(e, &rec, &n);
    if (rc != 0) {
        return rc;
    }
    rc = lsm_logw_add(&db->manw, rec, n);
    free(rec);
    atomic_store(&db->manifest_bytes, db->manw.off);
    if (rc == 0) {
        kvd_counter_add(&db->c.fsyncs, 1);
        if (db->io->fdatasync(db->manifest_fd) != 0) {
            /* the edit may or may not be on disk: no retry on this file */
            rc = kvd_errno_status(errno);
            atomic_store(&db->sync_failed, true);
        }
    }
    return rc;
}

void
lsm_manifest_close(lsm_db *db)
{
    if (db->manifest_fd >= 0) {
        db->io->close(db->manifest_fd);
        db->manifest_fd = -1;
    }
    lsm_logw_release(&db->manw);
}

/* Parse CURRENT's "MANIFEST-NNNNNN\n". */
static int
parse_current(const unsigned char *p, size_t n, uint64_t *number)
{
    static const char pre[] = "MANIFEST-";
    uint64_t v = 0;
    size_t i = sizeof(pre) - 1;

    if (n < i + 2 || memcmp(p, pre, i) != 0 || p[n - 1] != '\n') {
        return KVD_ECORRUPT;
    }
    for (; i < n - 1; i++) {
        if (p[i] < '0' || p[i] > '9' || v > UINT64_MAX / 10 - 10) {
            return KVD_ECORRUPT;
        }
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *number = v;
    return 0;
}

int
lsm_manifest_load(lsm_db *db, lsm_version **out, uint64_t *log_number,
                  uint64_t *next_file, uint64_t *last_seq, struct kvd_err *err)
{
    char path[LSM_PATH_BYTES];
    unsigned char *buf = NULL;
    size_t size = 0;
    uint64_t number;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", db->dir, LSM_CURRENT_FILE);
    rc = kvd_file_read_all(db->io, path, 0, &buf, &size);
    if (rc == KVD_ENOTFOUND) {
        return rc;
    }
    if (rc != 0) {
        return kvd_err_set(err, rc, "lsm: read %s: %s", path, kvd_strerror(rc));
    }
    rc = parse_current(buf, size, &number);
    free(buf);
    if (rc != 0) {
        return kvd_err_set(err, rc, "lsm: %s does not name a MANIFEST", path);
    }
    return lsm_manifest_read(db, number, out, log_number, next_file, last_seq,
                             err);
}

int
lsm_manifest_read(lsm_db *db, uint64_t number, lsm_version **out,
                  uint64_t *log_number, uint64_t *next_file, uint64_t *last_seq,
                  struct kvd_err *err)
{
    char path[LSM_PATH_BYTES];
    unsigned char *buf = NULL;
    size_t size = 0;
    struct lsm_logr r;
    lsm_version *v = NULL;
    unsigned have = 0;
    const void *rec;
    size_t n;
    long recno = 0;
    int rc;

    manifest_path(db, path, number, false);
    rc = kvd_file_read_all(db->io, path, 0, &buf, &size);
    if (rc != 0) {
        return kvd_err_set(err, rc == KVD_ENOTFOUND ? KVD_ECORRUPT : rc,
                           "lsm: read %s (named by CURRENT): %s", path,
                           rc == KVD_ENOTFOUND ? "no such file"
                                               : kvd_strerror(rc));
    }
    rc = lsm_version_create(&db->vconf, &v);
    if (rc != 0) {
        free(buf);
        return kvd_err_set(err, rc, "lsm: out of memory");
    }
    lsm_logr_init(&r, buf, size);
    while ((rc = lsm_logr_next(&r, &rec, &n)) == 0) {
        struct lsm_edit e;
        lsm_version *nv;

        if (r.ncorrupt > 0) {
            rc = kvd_err_set(err, KVD_ECORRUPT,
                             "lsm: %s: damaged record at offset %llu", path,
                             (unsigned long long)r.corrupt_off);
            goto out;
        }
        if (recno++ == 0) {
            if (lsm_file_hdr_check(rec, n, LSM_FILE_KIND_MANIFEST, NULL) != 0) {
                rc = kvd_err_set(err, KVD_ECORRUPT,
                                 "lsm: %s: not a MANIFEST (bad file header)",
                                 path);
                goto out;
            }
            continue;
        }
        lsm_edit_init(&e);
        rc = lsm_edit_decode(&e, rec, n);
        if (rc == 0) {
            rc = lsm_version_apply(v, &e, &nv);
        }
        if (rc == 0) {
            lsm_version_unref(v);
            v = nv;
            if (e.has & LSM_EDIT_HAS_LOG_NUMBER) {
                *log_number = e.log_number;
            }
            if (e.has & LSM_EDIT_HAS_NEXT_FILE) {
                *next_file = e.next_file;
            }
            if (e.has & LSM_EDIT_HAS_LAST_SEQ) {
                *last_seq = e.last_seq;
            }
            have |= e.has;
        }
        lsm_edit_release(&e);
        if (rc != 0) {
            rc = kvd_err_set(
                err, rc, "lsm: %s: edit at offset %llu does not apply: %s",
                path, (unsigned long long)r.rec_off, kvd_strerror(rc));
            goto out;
        }
    }
    if (rc != KVD_ENOTFOUND) {
        rc = kvd_err_set(err, rc, "lsm: read %s: %s", path, kvd_strerror(rc));
        goto out;
    }
    if (r.ncorrupt > 0) {
        rc = kvd_err_set(err, KVD_ECORRUPT,
                         "lsm: %s: damaged record at offset %llu", path,
                         (unsigned long long)r.corrupt_off);
        goto out;
    }
    if (have != (LSM_EDIT_HAS_LOG_NUMBER | LSM_EDIT_HAS_NEXT_FILE |
                 LSM_EDIT_HAS_LAST_SEQ)) {
        rc = kvd_err_set(err, KVD_ECORRUPT,
                         "lsm: %s: no snapshot record (file cut short?)", path);
        goto out;
    }
    if (r.torn) {
        LSM_LOG(db, KVD_LOG_WARN,
                "lsm: %s: cut a torn last record at offset %llu (an edit "
                "interrupted by a crash, never acted on)",
                path, (unsigned long long)r.torn_off);
    }
    rc = 0;
out:
    lsm_logr_release(&r);
    free(buf);
    if (rc != 0) {
        lsm_version_unref(v);
        return rc;
    }
    *out = v;
    return 0;
}
