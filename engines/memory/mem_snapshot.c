/*
 * engines/memory/mem_snapshot.c -- snapshot files of the memory engine:
 * writing and loading (checksums, byte order and the durable replace come
 * from the engine toolkit).
 *
 * Byte layout (format version 1; all integers little-endian):
 *
 *   header   16 B   magic "KVDM" (4 B) | version u16 = 1 | kind u16 = 1
 *                   (memory snapshot) | created_ms u64 (Unix ms)
 *   record*  20 B + klen + vlen
 *                   crc u32 | klen u32 (> 0) | vlen u32 | expire_ms i64
 *                   (0 = none) | key bytes | value bytes
 *   end      20 B   crc u32 | klen u32 = 0 | vlen u32 = 0 | count u64
 *                   (number of records before it)
 *
 * A record's crc is the masked crc32c of everything after its crc field
 * (the 16 B rest of its header, key, value). The end record's crc covers
 * the 16 B file header followed by the end record's 16 B after its crc, so
 * it also vouches for the header. Masked as usual for crc-in-data
 * (kvd_crc32c_mask). Nothing may follow the end record.
 * Records come in the engine's hash order, which is meaningless on disk;
 * expired keys are never written, and a record that has expired by load
 * time is skipped.
 *
 * Crash story: the snapshot is written by the toolkit's durable replace
 * (PATH.tmp, fsync, rename over PATH, directory fsync), so PATH is always
 * either the previous complete snapshot or the new one. A torn or corrupt file
 * is refused at open (KVD_ECORRUPT naming the file and the byte offset), never
 * loaded in part: a snapshot is all the data there is, so a silent partial load
 * would lose keys without a trace.
 *
 * Concurrency: mem_snapshot_write holds db->snap_lock (one snapshot at a
 * time) and reads the table through mem_table_collect, a few thousand
 * entries per shared-lock hold; the entries it writes are kept alive by
 * references, so writers are blocked for one collection at a time only,
 * never for the file I/O. The snapshot is not a point-in-time image: a key
 * written during it may appear with its old or its new value.
 * mem_snapshot_load runs inside open, before any other thread exists.
 *
 * All file I/O goes through host->io, so tests can inject failures.
 */
#include "mem_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvd/kit_buf.h"
#include "kvd/kit_coding.h"
#include "kvd/kit_crc32c.h"
#include "kvd/kit_file.h"

#define MEM_SNAP_MAGIC         "KVDM"
#define MEM_SNAP_VERSION       1
#define MEM_SNAP_KIND          1
#define MEM_SNAP_HEADER_BYTES  16
#define MEM_SNAP_REC_BYTES     20
#define MEM_SNAP_BUF_BYTES     (1u << 20)
#define MEM_SNAP_CHUNK_KEYS    1024
#define MEM_SNAP_CHUNK_BUCKETS 4096

/* --------------------------------------------------------------- writing */

/* A buffered writer over the temporary file of a durable replace. */
struct mem_writer {
    const struct kvd_io *io;
    struct kvd_file_tmp t;
    struct kvd_buf buf; /* up to MEM_SNAP_BUF_BYTES waiting to be written */
    uint64_t flushed;   /* file offset of buf.p[0] */
    uint64_t off;       /* bytes handed to the writer so far */
};

static int
mem_write_at(struct mem_writer *w, const void *p, size_t n, struct kvd_err *err)
{
    int rc = kvd_file_write_full(w->io, w->t.fd, p, n, w->flushed);

    if (rc != 0) {
        return kvd_err_set(err, rc, "write %s at offset %" PRIu64 ": %s",
                           w->t.tmp, w->flushed, kvd_strerror(rc));
    }
    w->flushed += n;
    return 0;
}

static int
mem_wflush(struct mem_writer *w, struct kvd_err *err)
{
    int rc = mem_write_at(w, w->buf.p, w->buf.len, err);

    kvd_buf_reset(&w->buf);
    return rc;
}

static int
mem_wput(struct mem_writer *w, const void *p, size_t n, struct kvd_err *err)
{
    int rc;

    w->off += n;
    if (n > MEM_SNAP_BUF_BYTES - w->buf.len) {
        rc = mem_wflush(w, err);
        if (rc != 0) {
            return rc;
        }
        if (n >= MEM_SNAP_BUF_BYTES / 2) {
            return mem_write_at(w, p, n, err); /* big values: no copy */
        }
    }
    if (kvd_buf_append(&w->buf, p, n) != 0) {
        return kvd_err_set(err, KVD_ENOMEM, "snapshot %s: out of memory",
                           w->t.path);
    }
    return 0;
}

static int
mem_write_record(struct mem_writer *w, const struct mem_entry *e,
                 struct kvd_err *err)
{
    unsigned char h[MEM_SNAP_REC_BYTES];
    uint32_t crc;
    int rc;

    kvd_put_le32(h + 4, e->klen);
    kvd_put_le32(h + 8, e->vlen);
    kvd_put_le64(h + 12, (uint64_t)e->expire_ms);
    crc = kvd_crc32c(0, h + 4, MEM_SNAP_REC_BYTES - 4);
    crc = kvd_crc32c(crc, e->kv, (size_t)e->klen + e->vlen);
    kvd_put_le32(h, kvd_crc32c_mask(crc));
    rc = mem_wput(w, h, sizeof(h), err);
    if (rc == 0) {
        rc = mem_wput(w, e->kv, e->klen, err);
    }
    if (rc == 0 && e->vlen > 0) {
        rc = mem_wput(w, e->kv + e->klen, e->vlen, err);
    }
    return rc;
}

/* Write header, every live entry and the end record to w. */
static int
mem_write_body(kvd_engine *db, struct mem_writer *w, struct kvd_err *err)
{
    const struct kvd_host *host = db->host;
    unsigned char hdr[MEM_SNAP_HEADER_BYTES];
    unsigned char end[MEM_SNAP_REC_BYTES];
    struct mem_collect c = {0};
    uint64_t cur = 0;
    uint64_t count = 0;
    bool done = false;
    uint32_t crc;
    int rc;

    memcpy(hdr, MEM_SNAP_MAGIC, 4);
    kvd_put_le16(hdr + 4, MEM_SNAP_VERSION);
    kvd_put_le16(hdr + 6, MEM_SNAP_KIND);
    kvd_put_le64(hdr + 8, (uint64_t)host->now_ms(host));
    rc = mem_wput(w, hdr, sizeof(hdr), err);
    while (rc == 0 && !done) {
        c.now_ms = host->now_ms(host);
        rc = mem_table_collect(db, &cur, &done, &c, MEM_SNAP_CHUNK_KEYS,
                               MEM_SNAP_CHUNK_BUCKETS);
        if (rc != 0) {
            kvd_err_set(err, rc, "snapshot %s: out of memory", w->t.path);
        }
        for (size_t i = 0; rc == 0 && i < c.n; i++) {
            rc = mem_write_record(w, c.v[i].e, err);
            count++;
        }
        mem_collect_release(&c);
    }
    free(c.v);
    if (rc != 0) {
        return rc;
    }
    memset(end, 0, sizeof(end));
    kvd_put_le64(end + 12, count);
    crc = kvd_crc32c(0, hdr, sizeof(hdr));
    crc = kvd_crc32c(crc, end + 4, sizeof(end) - 4);
    kvd_put_le32(end, kvd_crc32c_mask(crc));
    rc = mem_wput(w, end, sizeof(end), err);
    return rc != 0 ? rc : mem_wflush(w, err);
}

int
mem_snapshot_check_dir(kvd_engine *db, struct kvd_err *err)
{
    int rc;

    if (db->snap_path == NULL) {
        return 0;
    }
    rc = kvd_file_fsync_parent(db->host->io, db->snap_path);
    if (rc != 0) {
        return kvd_err_set(err, rc,
                           "snapshot_path %s: its directory cannot be "
                           "opened and synced: %s",
                           db->snap_path, strerror(errno));
    }
    return 0;
}

/* Whether the data directory records a snapshot written at snap_path. */
static bool
mem_mark_says_written(kvd_engine *db)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    size_t plen = strlen(db->snap_path);
    bool same;

    if (db->mark_path == NULL || kvd_file_read_all(db->host->io, db->mark_path,
                                                   1 << 16, &buf, &n) != 0) {
        return false;
    }
    same = n == plen + 1 && memcmp(buf, db->snap_path, plen) == 0;
    free(buf);
    return same;
}

/* After the first snapshot at snap_path: record it (durably) in the data
 * directory. */
static int
mem_mark_written(kvd_engine *db, struct kvd_err *err)
{
    char *line;
    int rc;

    if (db->mark_path == NULL || mem_mark_says_written(db)) {
        return 0;
    }
    if (asprintf(&line, "%s\n", db->snap_path) < 0) {
        return kvd_err_set(err, KVD_ENOMEM, "snapshot %s: out of memory",
                           db->snap_path);
    }
    rc = kvd_file_replace(db->host->io, db->mark_path, line, strlen(line), err);
    free(line);
    return rc;
}

int
mem_snapshot_write(kvd_engine *db, bool force, struct kvd_err *err)
{
    const struct kvd_io *io = db->host->io;
    struct mem_writer w = {.io = io, .t = {.fd = -1}};
    uint64_t gen;
    int rc = 0;

    if (db->snap_path == NULL) {
        return 0;
    }
    pthread_mutex_lock(&db->snap_lock);
    gen = atomic_load(&db->mutations);
    if (!force && db->snap_exists && gen == db->saved_gen) {
        goto out; /* nothing changed since the file in place */
    }
    if (kvd_buf_reserve(&w.buf, MEM_SNAP_BUF_BYTES) != 0) {
        rc = kvd_err_set(err, KVD_ENOMEM, "snapshot %s: out of memory",
                         db->snap_path);
        goto out;
    }
    rc = kvd_file_tmp_open(io, db->snap_path, &w.t, err);
    if (rc == 0) {
        rc = mem_write_body(db, &w, err);
        if (rc != 0) {
            kvd_file_tmp_abort(io, &w.t);
        }
    }
    if (rc == 0) {
        /* a failure of its last step (the directory fsync) leaves the new
         * file in place but not known durable: not counted as saved, so
         * the next snapshot writes again */
        rc = kvd_file_tmp_commit(io, &w.t, NULL, err);
    }
    if (rc == 0) {
        rc = mem_mark_written(db, err);
    }
    if (rc == 0) {
        db->snap_exists = true;
        atomic_store(&db->disk_bytes, w.off);
        db->saved_gen = gen;
        atomic_fetch_add(&db->snapshots_written, 1);
    }
out:
    if (rc != 0) {
        atomic_fetch_add(&db->snapshot_errors, 1);
    }
    pthread_mutex_unlock(&db->snap_lock);
    kvd_buf_release(&w.buf);
    return rc;
}

/* --------------------------------------------------------------- loading */

struct mem_reader {
    const struct kvd_io *io;
    int fd;
    const char *path;
    unsigned char *buf;
    size_t pos;   /* next unread byte in buf */
    size_t len;   /* bytes valid in buf */
    uint64_t off; /* file offset of buf[pos] */
};

static size_t
mem_rbuffered(const struct mem_reader *r)
{
    return r->len - r->pos;
}

static int
mem_rpread(struct mem_reader *r, void *dst, size_t n, uint64_t off, size_t *got,
           struct kvd_err *err)
{
    int rc = kvd_file_read_full(r->io, r->fd, dst, n, off, got);

    if (rc != 0) {
        return kvd_err_set(err, rc, "read %s at offset %" PRIu64 ": %s",
                           r->path, off + *got, strerror(errno));
    }
    return 0;
}

/* Buffer at least `want` (<= buffer size) bytes unless the file ends. */
static int
mem_rfill(struct mem_reader *r, size_t want, struct kvd_err *err)
{
    size_t have = mem_rbuffered(r);
    size_t got;
    int rc;

    if (have >= want) {
        return 0;
    }
    memmove(r->buf, r->buf + r->pos, have);
    r->pos = 0;
    r->len = have;
    rc = mem_rpread(r, r->buf + have, MEM_SNAP_BUF_BYTES - have, r->off + have,
                    &got, err);
    r->len += got;
    return rc;
}

/* Read exactly n bytes into dst; *short_read set when the file ends. */
static int
mem_rread(struct mem_reader *r, void *dst, size_t n, bool *short_read,
          struct kvd_err *err)
{
    unsigned char *d = dst;
    size_t take;
    size_t got;
    int rc;

    *short_read = false;
    if (n <= MEM_SNAP_BUF_BYTES) {
        rc = mem_rfill(r, n, err);
        if (rc != 0) {
            return rc;
        }
    }
    take = mem_rbuffered(r) < n ? mem_rbuffered(r) : n;
    memcpy(d, r->buf + r->pos, take);
    r->pos += take;
    r->off += take;
    if (take == n) {
        return 0;
    }
    /* Larger than the buffer: read the rest straight into place. */
    rc = mem_rpread(r, d + take, n - take, r->off, &got, err);
    r->off += got;
    *short_read = got < n - take;
    return rc;
}

/* Insert a loaded entry; the caller's reference passes to the table. */
static void
mem_load_insert(kvd_engine *db, struct mem_entry *e)
{
    uint64_t hash = mem_hash(db, e->kv, e->klen);
    struct mem_shard *sh = mem_shard_of(db, hash);
    struct mem_entry *old;

    pthread_rwlock_wrlock(&sh->lock);
    old = mem_shard_put_locked(db, sh, hash, e);
    pthread_rwlock_unlock(&sh->lock);
    mem_entry_unref(old);
}

/* One record at r->off: 1 with *end set at the end record, 0 after a
 * data record, or a status. */
static int
mem_load_record(kvd_engine *db, struct mem_reader *r,
                const unsigned char *file_hdr, uint64_t *count, bool *end,
                int64_t now_ms, struct kvd_err *err)
{
    unsigned char h[MEM_SNAP_REC_BYTES];
    uint64_t off = r->off;
    uint32_t klen;
    uint32_t vlen;
    uint64_t total;
    uint32_t crc;
    bool short_read;
    struct mem_entry *e;
    int rc;

    rc = mem_rread(r, h, sizeof(h), &short_read, err);
    if (rc != 0) {
        return rc;
    }
    if (short_read) {
        return kvd_err_set(err, KVD_ECORRUPT,
                           "snapshot %s: truncated at offset %" PRIu64
                           " (no end record)",
                           r->path, off);
    }
    klen = kvd_get_le32(h + 4);
    vlen = kvd_get_le32(h + 8);
    crc = kvd_crc32c(0, h + 4, sizeof(h) - 4);
    if (klen == 0) {
        uint64_t n = kvd_get_le64(h + 12);
        unsigned char extra;
        uint32_t ecrc =
            kvd_crc32c(kvd_crc32c(0, file_hdr, MEM_SNAP_HEADER_BYTES), h + 4,
                       sizeof(h) - 4);
        if (vlen != 0 || kvd_crc32c_mask(ecrc) != kvd_get_le32(h)) {
            return kvd_err_set(err, KVD_ECORRUPT,
                               "snapshot %s: bad end record at offset %" PRIu64,
                               r->path, off);
        }
        if (n != *count) {
            return kvd_err_set(err, KVD_ECORRUPT,
                               "snapshot %s: end record at offset %" PRIu64
                               " counts %" PRIu64 " records, found %" PRIu64,
                               r->path, off, n, *count);
        }
        rc = mem_rread(r, &extra, 1, &short_read, err);
        if (rc == 0 && !short_read) {
            return kvd_err_set(err, KVD_ECORRUPT,
                               "snapshot %s: unexpected bytes after the end "
                               "record at offset %" PRIu64,
                               r->path, r->off - 1);
        }
        *end = true;
        return rc != 0 ? rc : 1;
    }
    total = (uint64_t)klen + vlen;
    /* Check the bytes exist before allocating what a corrupt length asks
     * for: one probe read at the record's last byte. */
    if (total > mem_rbuffered(r)) {
        unsigned char probe;
        size_t got;
        rc = mem_rpread(r, &probe, 1, r->off + total - 1, &got, err);
        if (rc != 0) {
            return rc;
        }
        if (got == 0) {
            return kvd_err_set(
                err, KVD_ECORRUPT,
                "snapshot %s: truncated record at offset %" PRIu64
                " (key %" PRIu32 " B, value %" PRIu32 " B)",
                r->path, off, klen, vlen);
        }
    }
    e = malloc(MEM_ENTRY_HEADER_BYTES + total);
    if (e == NULL) {
        return kvd_err_set(
            err, KVD_ENOMEM,
            "snapshot %s: out of memory for the record of %" PRIu64
            " B at offset %" PRIu64,
            r->path, total, off);
    }
    rc = mem_rread(r, e->kv, total, &short_read, err);
    if (rc == 0 && short_read) {
        rc = kvd_err_set(err, KVD_ECORRUPT,
                         "snapshot %s: truncated record at offset %" PRIu64,
                         r->path, off);
    }
    if (rc == 0 &&
        kvd_crc32c_mask(kvd_crc32c(crc, e->kv, total)) != kvd_get_le32(h)) {
        rc = kvd_err_set(
            err, KVD_ECORRUPT,
            "snapshot %s: bad checksum in record at offset %" PRIu64, r->path,
            off);
    }
    if (rc != 0) {
        free(e);
        return rc;
    }
    (*count)++;
    e->next = NULL;
    e->expire_ms = (int64_t)kvd_get_le64(h + 12);
    e->klen = klen;
    e->vlen = vlen;
    atomic_init(&e->refs, 1);
    if (mem_entry_expired(e, now_ms)) {
        free(e);
        return 0;
    }
    mem_load_insert(db, e);
    return 0;
}

int
mem_snapshot_load(kvd_engine *db, struct kvd_err *err)
{
    const struct kvd_host *host = db->host;
    struct mem_reader r = {.io = host->io, .fd = -1, .path = db->snap_path};
    unsigned char hdr[MEM_SNAP_HEADER_BYTES];
    int64_t now_ms = host->now_ms(host);
    uint64_t count = 0;
    bool short_read;
    bool end = false;
    int rc;

    if (db->snap_path == NULL) {
        return 0;
    }
    r.fd = r.io->open(db->snap_path, O_RDONLY | O_CLOEXEC, 0);
    if (r.fd < 0) {
        if (errno == ENOENT && mem_mark_says_written(db)) {
            return kvd_err_set(err, KVD_ECORRUPT,
                               "snapshot %s is missing, but one was written "
                               "there (%s says so): restore it, or remove "
                               "%s to start empty",
                               db->snap_path, db->mark_path, db->mark_path);
        }
        if (errno == ENOENT) {
            host->log(host, KVD_LOG_WARN,
                      "memory: no snapshot at %s yet: starting empty (the "
                      "first snapshot creates it)",
                      db->snap_path);
            return 0;
        }
        return kvd_err_set(err, kvd_errno_status(errno), "open %s: %s",
                           db->snap_path, strerror(errno));
    }
    r.buf = malloc(MEM_SNAP_BUF_BYTES);
    if (r.buf == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "snapshot %s: out of memory", r.path);
        goto out;
    }
    rc = mem_rread(&r, hdr, sizeof(hdr), &short_read, err);
    if (rc != 0) {
        goto out;
    }
    if (short_read) {
        rc = kvd_err_set(err, KVD_ECORRUPT,
                         "snapshot %s: truncated header at offset 0", r.path);
        goto out;
    }
    if (memcmp(hdr, MEM_SNAP_MAGIC, 4) != 0) {
        rc = kvd_err_set(err, KVD_ECORRUPT,
                         "snapshot %s: bad magic at offset 0 (not a kvd "
                         "memory snapshot)",
                         r.path);
        goto out;
    }
    if (kvd_get_le16(hdr + 4) != MEM_SNAP_VERSION ||
        kvd_get_le16(hdr + 6) != MEM_SNAP_KIND) {
        rc = kvd_err_set(err, KVD_ECORRUPT,
                         "snapshot %s: format version %u kind %u at offset 4"
                         " not supported (expected version %u kind %u)",
                         r.path, kvd_get_le16(hdr + 4), kvd_get_le16(hdr + 6),
                         MEM_SNAP_VERSION, MEM_SNAP_KIND);
        goto out;
    }
    while (!end) {
        rc = mem_load_record(db, &r, hdr, &count, &end, now_ms, err);
        if (rc < 0) {
            goto out;
        }
    }
    rc = 0;
    db->snap_exists = true;
    atomic_store(&db->disk_bytes, r.off);
    host->log(host, KVD_LOG_INFO, "memory: loaded %" PRIu64 " records from %s",
              count, r.path);
out:
    r.io->close(r.fd);
    free(r.buf);
    return rc;
}
