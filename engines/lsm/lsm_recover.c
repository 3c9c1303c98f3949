/*
 * lsm_recover.c -- opening an lsm store: CURRENT -> MANIFEST replay ->
 * WAL replay -> flush to level 0 -> new WAL -> new MANIFEST -> cleanup.
 *
 * WAL replay reads every WAL whose number is >= the MANIFEST's log number,
 * oldest first, into memtables (flushed to level-0 tables when they fill).
 * A torn tail of the newest WAL (an append interrupted by a crash) is cut
 * and logged: it was never acknowledged under sync = always. The zeros
 * after the last record of a preallocated WAL are its end, in any WAL
 * (lsm_wal.h). A WAL is never appended to after an open: recovery always
 * starts a new one, so nothing has to find the end of the zeros. Damage that
 * valid records follow, or a torn end of an older WAL, is corruption, and
 * the corruption option decides: stop (keep the history up to the last
 * good batch: a prefix, and log what was lost), skip (leave out the
 * damaged bytes and replay the rest), paranoid (refuse to open).
 *
 * Nothing recovered is acted on before it is durable: the flushed tables
 * and the new WAL are synced, then a new MANIFEST naming them (and the new
 * WAL's number as log number) is written and CURRENT switched to it. Only
 * then are the old WALs, the old MANIFEST and every file the new MANIFEST
 * does not name deleted. A crash anywhere in between leaves CURRENT on the
 * old MANIFEST, whose WALs are all still there.
 *
 * Runs at open, before any other thread exists.
 */
#include "lsm_db.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum file_kind {
    FK_OTHER = 0,
    FK_LOG,
    FK_SST,
    FK_TMP,
    FK_MANIFEST,
};

/* Classify a directory entry; *number is set for numbered files. */
static int
classify(const char *name, uint64_t *number)
{
    size_t n = strlen(name);
    const char *p = name;
    uint64_t v = 0;
    int digits = 0;

    if (n > 4 && strcmp(name + n - 4, ".tmp") == 0) {
        return FK_TMP;
    }
    if (strncmp(name, "MANIFEST-", 9) == 0) {
        p += 9;
    }
    while (*p >= '0' && *p <= '9' && digits < 19) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0) {
        return FK_OTHER;
    }
    *number = v;
    if (name[0] == 'M') {
        return *p == '\0' ? FK_MANIFEST : FK_OTHER;
    }
    if (strcmp(p, ".log") == 0) {
        return FK_LOG;
    }
    if (strcmp(p, ".sst") == 0) {
        return FK_SST;
    }
    return FK_OTHER;
}

struct dirlist {
    uint64_t *logs;
    size_t nlogs;
    size_t cap;
    uint64_t max_number;
    bool has_tables;       /* *.sst */
    size_t nmanifests;     /* MANIFEST-* */
    uint64_t manifest_max; /* the newest one's number */
};

static int
u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static int
list_dir(lsm_db *db, struct dirlist *dl, struct kvd_err *err)
{
    DIR *d = opendir(db->dir);
    struct dirent *de;

    memset(dl, 0, sizeof(*dl));
    if (d == NULL) {
        return kvd_err_set(err, kvd_errno_status(errno), "lsm: opendir %s: %s",
                           db->dir, strerror(errno));
    }
    while ((de = readdir(d)) != NULL) {
        uint64_t num = 0;
        int k = classify(de->d_name, &num);
        if (k == FK_LOG || k == FK_SST || k == FK_MANIFEST) {
            if (num > dl->max_number) {
                dl->max_number = num;
            }
        }
        if (k == FK_SST) {
            dl->has_tables = true;
        }
        if (k == FK_MANIFEST) {
            dl->nmanifests++;
            if (num > dl->manifest_max) {
                dl->manifest_max = num;
            }
        }
        if (k != FK_LOG) {
            continue;
        }
        if (dl->nlogs == dl->cap) {
            size_t cap = dl->cap ? dl->cap * 2 : 8;
            uint64_t *nl = realloc(dl->logs, cap * sizeof(*nl));
            if (nl == NULL) {
                closedir(d);
                return kvd_err_set(err, KVD_ENOMEM, "lsm: out of memory");
            }
            dl->logs = nl;
            dl->cap = cap;
        }
        dl->logs[dl->nlogs++] = num;
    }
    closedir(d);
    if (dl->nlogs > 1) {
        qsort(dl->logs, dl->nlogs, sizeof(*dl->logs), u64_cmp);
    }
    return 0;
}

/* ---- WAL replay ---- */

struct replay {
    lsm_db *db;
    bool readonly; /* write nothing: keep everything in the memtable */
    lsm_mem *mem;
    struct lsm_edit *edit;
    uint64_t max_seq;
    uint64_t records;
    int64_t start_ms;
};

static int
replay_op(void *ctx, uint64_t seq, int type, const void *key, size_t klen,
          struct lsm_slice v)
{
    struct replay *rp = ctx;
    int64_t expire = 0;
    const unsigned char *val = v.p;
    size_t vlen = v.n;

    if (type == LSM_T_PUTX) {
        expire = lsm_val_expiry(v);
        val += 8;
        vlen -= 8;
    }
    if (seq > rp->max_seq) {
        rp->max_seq = seq;
    }
    return lsm_mem_add(rp->mem, seq, type, key, klen, expire, val, vlen);
}

/* Write the replay memtable to a level-0 table and start a new one. */
static int
replay_flush(struct replay *rp, struct kvd_err *err)
{
    lsm_db *db = rp->db;
    bool empty;
    int rc;

    if (lsm_mem_entries(rp->mem) == 0 || rp->readonly) {
        return 0;
    }
    rc = lsm_write_mem_table(db, rp->mem, rp->edit, &empty);
    if (rc != 0) {
        char why[LSM_STATE_BYTES];
        return kvd_err_set(err, rc, "lsm: recovery flush: %s",
                           lsm_why(db, rc, why));
    }
    lsm_mem_unref(rp->mem);
    rp->mem = NULL;
    rc = lsm_mem_create(0, &rp->mem);
    if (rc != 0) {
        return kvd_err_set(err, rc, "lsm: out of memory");
    }
    return 0;
}

/* Apply the corruption policy to damage found in `path` at `off`.
 * Returns 0 to go on, 1 to stop replaying, or an error. */
static int
on_damage(lsm_db *db, const char *path, uint64_t off, const char *what,
          struct kvd_err *err)
{
    kvd_counter_add(&db->c.corrupt_records, 1);
    switch (db->opts.corruption) {
    case LSM_CORRUPT_PARANOID:
        return kvd_err_set(err, KVD_ECORRUPT,
                           "lsm: %s: %s at offset %llu; corruption = "
                           "paranoid refuses to open",
                           path, what, (unsigned long long)off);
    case LSM_CORRUPT_SKIP:
        LSM_LOG(db, KVD_LOG_ERROR,
                "lsm: %s: %s at offset %llu; skipped (corruption = skip), "
                "replaying what follows",
                path, what, (unsigned long long)off);
        return 0;
    default:
        LSM_LOG(db, KVD_LOG_ERROR,
                "lsm: %s: %s at offset %llu; recovering up to the last good "
                "batch before it (corruption = stop): later writes are lost",
                path, what, (unsigned long long)off);
        return 1;
    }
}

/* Replay one WAL. Returns 0, 1 when replay must stop, or an error. */
static int
replay_wal(struct replay *rp, uint64_t number, bool newest, struct kvd_err *err)
{
    lsm_db *db = rp->db;
    char path[LSM_PATH_BYTES];
    unsigned char *buf = NULL;
    size_t size = 0;
    struct lsm_logr r;
    uint64_t seen = 0;
    const void *rec;
    size_t n;
    long recno = 0;
    int rc;

    lsm_path(db, path, number, "log");
    rc = kvd_file_read_all(db->io, path, 0, &buf, &size);
    if (rc != 0) {
        return kvd_err_set(err, rc, "lsm: read %s: %s", path, kvd_strerror(rc));
    }
    lsm_logr_init(&r, buf, size);
    while ((rc = lsm_logr_next(&r, &rec, &n)) == 0) {
        uint64_t first;
        uint32_t count;

        if (r.ncorrupt != seen) {
            seen = r.ncorrupt;
            rc = on_damage(db, path, r.corrupt_off, "damaged record", err);
            if (rc != 0) {
                goto out;
            }
        }
        if (recno++ == 0) {
            if (lsm_file_hdr_check(rec, n, LSM_FILE_KIND_WAL, NULL) != 0) {
                rc = on_damage(db, path, r.rec_off, "bad file header", err);
                if (rc != 0) {
                    goto out;
                }
            }
            continue;
        }
        rc = lsm_batch_decode(rec, n, &first, &count, NULL, NULL);
        if (rc == KVD_ECORRUPT) {
            rc = on_damage(db, path, r.rec_off, "malformed batch", err);
            if (rc != 0) {
                goto out;
            }
            continue;
        }
        if (rc == 0) {
            rc = lsm_batch_decode(rec, n, &first, &count, replay_op, rp);
        }
        if (rc != 0) {
            rc = kvd_err_set(err, rc, "lsm: replay %s: %s", path,
                             kvd_strerror(rc));
            goto out;
        }
        rp->records++;
        if (lsm_mem_bytes(rp->mem) >= db->opts.memtable_size) {
            rc = replay_flush(rp, err);
            if (rc != 0) {
                goto out;
            }
        }
    }
    if (rc != KVD_ENOTFOUND) {
        rc = kvd_err_set(err, rc, "lsm: read %s: %s", path, kvd_strerror(rc));
        goto out;
    }
    rc = 0;
    if (r.ncorrupt != seen) {
        rc = on_damage(db, path, r.corrupt_off, "damaged record", err);
    }
    if (rc == 0 && r.torn) {
        if (newest) {
            /* the bytes up to the zero tail (preallocated space) */
            uint64_t cut = r.end > r.torn_off ? r.end - r.torn_off : 0;
            kvd_counter_add(&db->c.torn_tail_bytes, cut);
            LSM_LOG(db, KVD_LOG_WARN,
                    "lsm: %s: cut a torn tail of %llu bytes at offset %llu "
                    "(a write interrupted by a crash)",
                    path, (unsigned long long)cut,
                    (unsigned long long)r.torn_off);
        } else {
            /* an older WAL was complete when the next one started */
            rc =
                on_damage(db, path, r.torn_off,
                          "damaged end of a WAL that a newer one follows", err);
        }
    }
out:
    lsm_logr_release(&r);
    free(buf);
    return rc;
}

/* ---- cleanup ---- */

static bool
version_has(const lsm_version *v, uint64_t number)
{
    for (int l = 0; l < LSM_LEVELS; l++) {
        for (size_t i = 0; i < v->nfiles[l]; i++) {
            if (v->files[l][i]->number == number) {
                return true;
            }
        }
    }
    return false;
}

/* Remove every file the live MANIFEST does not need. */
static void
remove_unreferenced(lsm_db *db, const lsm_version *v, uint64_t wal_number)
{
    DIR *d = opendir(db->dir);
    struct dirent *de;
    int removed = 0;

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char path[LSM_PATH_BYTES];
        uint64_t num = 0;
        int k = classify(de->d_name, &num);
        bool drop = k == FK_TMP || (k == FK_LOG && num < wal_number) ||
                    (k == FK_SST && !version_has(v, num)) ||
                    (k == FK_MANIFEST && num != db->manifest_number);
        if (!drop) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", db->dir, de->d_name);
        if (db->io->unlink(path) == 0) {
            removed++;
        }
    }
    closedir(d);
    if (removed > 0) {
        LSM_LOG(db, KVD_LOG_DEBUG, "lsm: removed %d unreferenced files in %s",
                removed, db->dir);
    }
}

/* No CURRENT: is every MANIFEST there what a first open writes before it
 * points CURRENT at it (one MANIFEST, no tables)? A MANIFEST that lists
 * tables means a store that lost its CURRENT, not a new one. */
static bool
first_open_crashed(lsm_db *db, const struct dirlist *dl)
{
    lsm_version *v = NULL;
    uint64_t log_number = 0;
    uint64_t next_file = 0;
    uint64_t last_seq = 0;
    bool empty = true;

    if (dl->nmanifests == 0) {
        return true;
    }
    if (dl->nmanifests > 1 ||
        lsm_manifest_read(db, dl->manifest_max, &v, &log_number, &next_file,
                          &last_seq, NULL) != 0) {
        return false;
    }
    for (int l = 0; l < LSM_LEVELS; l++) {
        empty = empty && v->nfiles[l] == 0;
    }
    lsm_version_unref(v);
    return empty;
}

static int
check_tables_exist(lsm_db *db, const lsm_version *v, struct kvd_err *err)
{
    for (int l = 0; l < LSM_LEVELS; l++) {
        for (size_t i = 0; i < v->nfiles[l]; i++) {
            char path[LSM_PATH_BYTES];
            struct stat st;
            lsm_path(db, path, v->files[l][i]->number, "sst");
            if (stat(path, &st) != 0) {
                return kvd_err_set(err, KVD_ECORRUPT,
                                   "lsm: %s (level %d in the MANIFEST) is "
                                   "missing: %s",
                                   path, l, strerror(errno));
            }
        }
    }
    return 0;
}

/*
 * The WAL the MANIFEST's log number names holds every write not yet in a
 * table: the newest WAL except between a memtable switch and the end of
 * its flush (then the one before it), never removed while the MANIFEST
 * names it. Missing, it is lost data, never an empty store: refused,
 * unless corruption = skip, which opens without those writes (logged).
 */
static int
check_live_wal(lsm_db *db, uint64_t log_number, struct kvd_err *err)
{
    char path[LSM_PATH_BYTES];
    struct stat st;

    lsm_path(db, path, log_number, "log");
    if (stat(path, &st) == 0) {
        return 0;
    }
    if (db->opts.corruption == LSM_CORRUPT_SKIP) {
        LSM_LOG(db, KVD_LOG_ERROR,
                "lsm: %s, the write-ahead log the MANIFEST names, is "
                "missing: the writes it held since the last flush are lost "
                "(corruption = skip opens without them)",
                path);
        return 0;
    }
    return kvd_err_set(err, KVD_ECORRUPT,
                       "lsm: %s, the write-ahead log the MANIFEST names "
                       "(writes not yet in a table), is missing: %s; restore "
                       "it, or set corruption = skip to open without those "
                       "writes",
                       path, strerror(errno));
}

/* Serve what is there without writing: the tables the MANIFEST names and
 * every replayed WAL in the memtable, no WAL to append to. */
static int
install_readonly(lsm_db *db, struct replay *rp, lsm_version *v,
                 uint64_t log_number, uint64_t last_seq, struct kvd_err *err)
{
    struct lsm_view *old = NULL;
    int rc;

    db->log_number = log_number;
    db->seq = last_seq;
    atomic_store(&db->visible_seq, last_seq);
    pthread_mutex_lock(&db->mu);
    rc = lsm_view_install_locked(db, rp->mem, NULL, v, &old);
    pthread_mutex_unlock(&db->mu);
    if (rc != 0) {
        return kvd_err_set(err, rc, "lsm: out of memory");
    }
    lsm_view_put(old);
    db->wmem = rp->mem; /* never written: the store is read-only */
    return 0;
}

/* Recovery proper; with readonly, it writes nothing and leaves the
 * replayed WALs in the memtable (a full or read-only disk). */
static int
recover(lsm_db *db, bool readonly, struct kvd_err *err)
{
    int64_t t0 = kvd_mono_ms(db->host);
    struct dirlist dl;
    struct replay rp;
    struct lsm_edit edit;
    struct lsm_walf *wal = NULL;
    struct lsm_view *old = NULL;
    lsm_version *v = NULL;
    lsm_version *v2 = NULL;
    lsm_mem *mem = NULL;
    uint64_t log_number = 0;
    uint64_t next_file = 1;
    uint64_t last_seq = 0;
    uint64_t wal_number;
    uint64_t man_number;
    int rc;

    memset(&rp, 0, sizeof(rp));
    memset(&dl, 0, sizeof(dl));
    lsm_edit_init(&edit);
    rc = list_dir(db, &dl, err);
    if (rc != 0) {
        goto out;
    }
    rc = lsm_manifest_load(db, &v, &log_number, &next_file, &last_seq, err);
    if (rc == KVD_ENOTFOUND) {
        if (dl.has_tables || !first_open_crashed(db, &dl)) {
            rc = kvd_err_set(err, KVD_ECORRUPT,
                             "lsm: %s has tables or a MANIFEST but no "
                             "CURRENT file; refusing to start an empty "
                             "store over them",
                             db->dir);
            goto out;
        }
        /* a new store. WALs (and one MANIFEST of no tables) without
         * CURRENT come from a first open that crashed before CURRENT
         * existed, so before it took any write: its WALs hold no batch.
         * They are replayed all the same (log number 0), so that a store
         * that lost CURRENT before its first flush keeps its writes. */
        log_number = 0;
        rc = lsm_version_create(&db->vconf, &v);
        if (rc != 0) {
            kvd_err_set(err, rc, "lsm: out of memory");
            goto out;
        }
    } else if (rc != 0) {
        goto out;
    } else {
        rc = check_tables_exist(db, v, err);
        if (rc == 0) {
            rc = check_live_wal(db, log_number, err);
        }
        if (rc != 0) {
            goto out;
        }
    }
    db->next_file = next_file > dl.max_number ? next_file : dl.max_number + 1;

    rp.db = db;
    rp.readonly = readonly;
    rp.edit = &edit;
    rp.max_seq = last_seq;
    rc = lsm_mem_create(0, &rp.mem);
    if (rc != 0) {
        kvd_err_set(err, rc, "lsm: out of memory");
        goto out;
    }
    for (size_t i = 0; i < dl.nlogs; i++) {
        if (dl.logs[i] < log_number) {
            continue;
        }
        rc = replay_wal(&rp, dl.logs[i], i + 1 == dl.nlogs, err);
        db->recovered_wals++;
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc != 0) {
            goto out;
        }
    }
    rc = replay_flush(&rp, err);
    if (rc != 0) {
        goto out;
    }
    last_seq = rp.max_seq;
    db->recovered_records = rp.records;
    if (readonly) {
        rc = install_readonly(db, &rp, v, log_number, last_seq, err);
        goto out;
    }

    /* the new WAL, then the MANIFEST that makes everything above live */
    wal_number = lsm_new_file_number(db);
    rc = lsm_wal_create(db, wal_number, &wal);
    if (rc != 0) {
        kvd_err_set(err, rc, "lsm: create %s/%06llu.log: %s", db->dir,
                    (unsigned long long)wal_number, kvd_strerror(rc));
        goto out;
    }
    lsm_edit_set_log_number(&edit, wal_number);
    rc = lsm_version_apply(v, &edit, &v2);
    if (rc != 0) {
        kvd_err_set(err, rc, "lsm: apply recovered tables: %s",
                    kvd_strerror(rc));
        goto out;
    }
    man_number = lsm_new_file_number(db);
    rc = lsm_manifest_create(db, v2, man_number, wal_number, last_seq, err);
    if (rc != 0) {
        goto out;
    }
    db->log_number = wal_number;
    db->seq = last_seq;
    atomic_store(&db->visible_seq, last_seq);
    rc = lsm_mem_create(wal_number, &mem);
    if (rc != 0) {
        kvd_err_set(err, rc, "lsm: out of memory");
        goto out;
    }
    pthread_mutex_lock(&db->mu);
    rc = lsm_view_install_locked(db, mem, NULL, v2, &old);
    pthread_mutex_unlock(&db->mu);
    if (rc != 0) {
        kvd_err_set(err, rc, "lsm: out of memory");
        goto out;
    }
    lsm_view_put(old);
    db->wmem = mem;
    lsm_wal_attach(db, wal);
    wal = NULL;
    remove_unreferenced(db, v2, wal_number);
    db->recovery_ms = kvd_mono_ms(db->host) - t0;
    if (rp.records > 0) {
        LSM_LOG(db, KVD_LOG_INFO,
                "lsm: %s: replayed %llu WAL records from %llu WALs in %lld ms",
                db->dir, (unsigned long long)rp.records,
                (unsigned long long)db->recovered_wals,
                (long long)db->recovery_ms);
    }
out:
    lsm_mem_unref(mem);
    lsm_mem_unref(rp.mem);
    lsm_version_unref(v);
    lsm_version_unref(v2);
    if (wal != NULL) {
        lsm_walf_unref(db, wal);
    }
    lsm_edit_release(&edit);
    free(dl.logs);
    return rc;
}

int
lsm_recover(lsm_db *db, struct kvd_err *err)
{
    struct kvd_err first = {0};
    int rc = recover(db, false, &first);

    if (rc != KVD_ENOSPC && rc != KVD_EROFS) {
        if (rc != 0) {
            kvd_err_set(err, rc, "%s", first.msg);
        }
        return rc;
    }
    /* A full or read-only disk: the data is all there, only recovery's
     * own writes failed. Serve it read-only rather than not at all. */
    db->recovered_wals = 0;
    db->recovered_records = 0;
    atomic_store(&db->c.corrupt_records, 0);
    atomic_store(&db->c.torn_tail_bytes, 0);
    rc = recover(db, true, err);
    if (rc != 0) {
        return rc;
    }
    atomic_store(&db->opened_readonly, true);
    LSM_LOG(db, KVD_LOG_ERROR,
            "lsm: %s: %s; opened read-only: reads are served, writes are "
            "refused until the store is opened again with room to write",
            db->dir, first.msg);
    lsm_fail(db, first.code, "open %s on a %s", db->dir,
             first.code == KVD_EROFS ? "read-only file system" : "full disk");
    return 0;
}
