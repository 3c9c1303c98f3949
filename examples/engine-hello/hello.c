/*
 * hello.c -- "hello", a small but complete kvd storage engine, built out
 * of tree against an installed kvd (see README.md and
 * docs/writing-an-engine.md, which walks through this file).
 *
 * Model: one append-only log file (DIR/hello.log) and an in-memory hash
 * table of every live key and its value. A write appends one record and
 * then changes the table; open replays the log into the table.
 *
 * Record: crc u32 | len u32 | payload (len bytes), integers little-endian,
 * crc = masked CRC-32C of len and payload. Payload: count u32, then count
 * operations: type u8 (1 put, 2 delete) | klen varint | key | and for a
 * put: expire_ms u64 | vlen varint | value. A put, a delete and an
 * atomic batch are each one record, so a crash keeps all of it or none.
 * Expired keys stay in the table (hidden from readers) until overwritten;
 * the log is never compacted: the next steps of a real engine.
 *
 * Crash story: a record is acknowledged after its pwrite and, with
 * sync = always, after the group commit's fdatasync covers it. At open the
 * first record that is short or fails its checksum starts a torn tail (an
 * append cut short by a crash): it and everything after is cut off. A
 * failed write or fsync turns the store read-only (the toolkit's switch).
 *
 * Threads: one mutex guards the table and the log's end; a write waits
 * for the fdatasync outside it, so concurrent writers share one.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kvd/kit.h>
#include <kvd/kvd.h>

#define HELLO_LOG_FILE    "hello.log"
#define HELLO_MAX_KEY     65535u
#define HELLO_MAX_VALUE   (64u << 20)
#define HELLO_REC_HDR     8 /* crc u32 | len u32 */
#define HELLO_OP_PUT      1
#define HELLO_OP_DEL      2
#define HELLO_MIN_BUCKETS 64
#define HELLO_SYNC_MS     1000 /* sync = everysec */

struct hello_opts {
    int sync; /* enum kvd_sync_mode */
};

static const struct kvd_option hello_options[] = {
    {"sync", KVD_OPT_ENUM, "always", 0, 0, offsetof(struct hello_opts, sync),
     kvd_sync_mode_names,
     "always: fdatasync before a write is acknowledged; everysec: once a "
     "second; never: leave it to the OS"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* One key and its value (key bytes, then value bytes). */
struct hello_ent {
    struct hello_ent *next;
    uint64_t hash; /* also the iteration pos */
    int64_t expire_ms;
    uint32_t klen;
    uint32_t vlen;
    unsigned char kv[];
};

struct kvd_engine {
    const struct kvd_host *host;
    kvd_ro *ro;         /* the read-only switch */
    kvd_commit *commit; /* group commit of the log */
    int lock_fd;        /* flock of the data directory */
    char *path;         /* DIR/hello.log */
    uint64_t seed;      /* of the table's hash */
    int sync;           /* enum kvd_sync_mode */
    pthread_mutex_t mu; /* guards everything below */
    struct hello_ent **tab;
    size_t nbuckets;
    size_t count;
    int fd;
    uint64_t end;     /* bytes in the log file */
    uint64_t written; /* bytes appended since open (commit positions) */
};

/* ---- the table (mu held) ---- */

static struct hello_ent **
find(kvd_engine *db, uint64_t h, const void *key, size_t klen)
{
    struct hello_ent **p = &db->tab[h % db->nbuckets];

    for (; *p != NULL; p = &(*p)->next) {
        if ((*p)->hash == h && (*p)->klen == klen &&
            memcmp((*p)->kv, key, klen) == 0) {
            break;
        }
    }
    return p;
}

static uint64_t
hash_of(const kvd_engine *db, const void *key, size_t klen)
{
    uint64_t h = kvd_hash64(db->seed, key, klen);

    return h == UINT64_MAX ? h - 1 : h; /* pos must stay below UINT64_MAX */
}

/* Double the table when it gets full; on no memory, longer chains. */
static void
grow(kvd_engine *db)
{
    size_t n = db->nbuckets * 2;
    struct hello_ent **t;

    if (db->count < db->nbuckets || (t = calloc(n, sizeof(*t))) == NULL) {
        return;
    }
    for (size_t i = 0; i < db->nbuckets; i++) {
        while (db->tab[i] != NULL) {
            struct hello_ent *e = db->tab[i];
            db->tab[i] = e->next;
            e->next = t[e->hash % n];
            t[e->hash % n] = e;
        }
    }
    free(db->tab);
    db->tab = t;
    db->nbuckets = n;
}

static void
unlink_ent(kvd_engine *db, struct hello_ent **p)
{
    struct hello_ent *e = *p;

    *p = e->next;
    free(e);
    db->count--;
}

/* Apply one record's payload to the table: 0, or KVD_ECORRUPT. */
static int
apply(kvd_engine *db, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;
    uint32_t count;

    if (n < 4) {
        return KVD_ECORRUPT;
    }
    count = kvd_get_le32(p);
    p += 4;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t klen;
        uint64_t vlen = 0;
        int64_t exp = 0;
        const unsigned char *key;
        struct hello_ent **slot;
        struct hello_ent *e;
        int type = p < end ? *p++ : 0;

        p = kvd_get_varint64(p, end, &klen);
        if (p == NULL || klen > (uint64_t)(end - p)) {
            return KVD_ECORRUPT;
        }
        key = p;
        p += klen;
        if (type == HELLO_OP_PUT) {
            if (end - p < 8) {
                return KVD_ECORRUPT;
            }
            exp = (int64_t)kvd_get_le64(p);
            p = kvd_get_varint64(p + 8, end, &vlen);
            if (p == NULL || vlen > (uint64_t)(end - p)) {
                return KVD_ECORRUPT;
            }
        } else if (type != HELLO_OP_DEL) {
            return KVD_ECORRUPT;
        }
        slot = find(db, hash_of(db, key, klen), key, klen);
        if (*slot != NULL) {
            unlink_ent(db, slot);
        }
        if (type == HELLO_OP_PUT) {
            e = malloc(sizeof(*e) + klen + vlen);
            if (e == NULL) {
                return KVD_ENOMEM;
            }
            e->hash = hash_of(db, key, klen);
            e->expire_ms = exp;
            e->klen = (uint32_t)klen;
            e->vlen = (uint32_t)vlen;
            memcpy(e->kv, key, klen);
            memcpy(e->kv + klen, p, vlen);
            p += vlen;
            slot = &db->tab[e->hash % db->nbuckets];
            e->next = *slot;
            *slot = e;
            db->count++;
            grow(db);
        }
    }
    return p == end ? 0 : KVD_ECORRUPT;
}

/* ---- records ---- */

/* Append one operation to the payload in b (after its count). */
static int
encode_op(struct kvd_buf *b, int type, const void *key, size_t klen,
          const void *val, size_t vlen, int64_t expire_ms)
{
    unsigned char *p =
        kvd_buf_extend(b, 1 + 2 * KVD_VARINT64_MAX_BYTES + 8 + klen + vlen);

    if (p == NULL) {
        return KVD_ENOMEM;
    }
    *p++ = (unsigned char)type;
    p = kvd_put_varint64(p, klen);
    memcpy(p, key, klen);
    p += klen;
    if (type == HELLO_OP_PUT) {
        kvd_put_le64(p, (uint64_t)expire_ms);
        p = kvd_put_varint64(p + 8, vlen);
        if (vlen > 0) {
            memcpy(p, val, vlen);
        }
        p += vlen;
    }
    b->len = (size_t)(p - b->p);
    return 0;
}

/* Start a record in b: room for its header and the op count. */
static int
begin(struct kvd_buf *b)
{
    return kvd_buf_extend(b, HELLO_REC_HDR + 4) == NULL ? KVD_ENOMEM : 0;
}

/* Seal the record in b (count ops), append it and apply it, then wait
 * for durability as the sync mode asks. Caller holds mu; it is released.
 * The write happens before the table changes, so a failed write changes
 * nothing. */
static int
commit_unlock(kvd_engine *db, struct kvd_buf *b, uint32_t count)
{
    uint64_t pos;
    int rc = kvd_ro_check(db->ro);

    kvd_put_le32(b->p + 4, (uint32_t)(b->len - HELLO_REC_HDR));
    kvd_put_le32(b->p + HELLO_REC_HDR, count);
    kvd_put_le32(b->p, kvd_crc32c_mask(kvd_crc32c(0, b->p + 4, b->len - 4)));
    if (rc == 0) {
        rc = kvd_file_write_full(db->host->io, db->fd, b->p, b->len, db->end);
        if (rc != 0) {
            kvd_ro_fail(db->ro, rc, "write %s at offset %llu", db->path,
                        (unsigned long long)db->end);
        }
    }
    if (rc == 0) {
        db->end += b->len;
        db->written += b->len;
        rc = apply(db, b->p + HELLO_REC_HDR, b->len - HELLO_REC_HDR);
        if (rc != 0) {
            /* logged but not in the table: stop before they drift apart */
            kvd_ro_fail(db->ro, rc, "apply a record to the table");
        }
    }
    pos = db->written;
    pthread_mutex_unlock(&db->mu);
    kvd_buf_release(b);
    return rc == 0 ? kvd_commit_ack(db->commit, pos) : rc;
}

/* ---- group commit (kvd/kit_commit.h) ---- */

static uint64_t
log_position(void *ctx)
{
    kvd_engine *db = ctx;
    uint64_t pos;

    pthread_mutex_lock(&db->mu);
    pos = db->written;
    pthread_mutex_unlock(&db->mu);
    return pos;
}

static int
log_sync(void *ctx, uint64_t *pos)
{
    kvd_engine *db = ctx;

    *pos = log_position(db); /* fd never changes while the store is open */
    if (db->host->io->fdatasync(db->fd) != 0) {
        return kvd_ro_fail(db->ro, kvd_errno_status(errno), "fdatasync %s",
                           db->path);
    }
    return 0;
}

static const struct kvd_commit_ops hello_commit_ops = {log_position, log_sync};

/* The read-only switch flipped: writers waiting for a sync give up. */
static void
on_readonly(void *ctx)
{
    kvd_engine *db = ctx;

    if (db->commit != NULL) {
        kvd_commit_fail(db->commit, KVD_EIO);
    }
}

/* ---- open / close ---- */

/* Replay the log into the table; cut a torn tail. */
static int
replay(kvd_engine *db, struct kvd_err *err)
{
    unsigned char *buf;
    size_t n;
    size_t off = 0;
    int rc = kvd_file_read_all(db->host->io, db->path, 0, &buf, &n);

    if (rc == KVD_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return kvd_err_set(err, rc, "hello: read %s: %s", db->path,
                           kvd_strerror(rc));
    }
    while (n - off >= HELLO_REC_HDR) {
        uint32_t len = kvd_get_le32(buf + off + 4);
        if (len > n - off - HELLO_REC_HDR ||
            kvd_crc32c_unmask(kvd_get_le32(buf + off)) !=
                kvd_crc32c(0, buf + off + 4, len + 4) ||
            apply(db, buf + off + HELLO_REC_HDR, len) != 0) {
            break;
        }
        off += HELLO_REC_HDR + len;
    }
    free(buf);
    if (off < n) {
        db->host->log(db->host, KVD_LOG_WARN,
                      "hello: %s: cut a torn tail of %zu bytes at offset %zu",
                      db->path, n - off, off);
        if (db->host->io->ftruncate(db->fd, (off_t)off) != 0) {
            return kvd_err_set(err, kvd_errno_status(errno),
                               "hello: truncate %s: %s", db->path,
                               strerror(errno));
        }
    }
    db->end = off;
    return 0;
}

static int
hello_close(kvd_engine *db, struct kvd_err *err)
{
    int rc = 0;

    if (db == NULL) {
        return 0;
    }
    if (db->commit != NULL && kvd_ro_check(db->ro) == 0) {
        rc = kvd_commit_sync_all(db->commit);
        if (rc != 0) {
            kvd_err_set(err, rc, "hello: sync %s: %s", db->path,
                        kvd_strerror(rc));
        }
    }
    kvd_commit_destroy(db->commit);
    for (size_t i = 0; db->tab != NULL && i < db->nbuckets; i++) {
        while (db->tab[i] != NULL) {
            unlink_ent(db, &db->tab[i]);
        }
    }
    free(db->tab);
    if (db->fd >= 0) {
        db->host->io->close(db->fd);
    }
    kvd_dirlock_release(db->host->io, db->lock_fd);
    kvd_ro_destroy(db->ro);
    pthread_mutex_destroy(&db->mu);
    free(db->path);
    free(db);
    return rc;
}

static int
hello_open(const struct kvd_host *host, const void *options, const char *dir,
           kvd_engine **out, struct kvd_err *err)
{
    const struct hello_opts *o = options;
    struct kvd_commit_conf cc = {&hello_commit_ops, NULL, o->sync,
                                 HELLO_SYNC_MS, "kvd-hello-sync"};
    kvd_engine *db = calloc(1, sizeof(*db));
    int rc = KVD_ENOMEM;

    if (db == NULL) {
        return kvd_err_set(err, rc, "hello: out of memory");
    }
    db->host = host;
    db->sync = o->sync;
    db->fd = -1;
    db->lock_fd = -1;
    db->seed = (uint64_t)kvd_mono_ns(host) ^ (uint64_t)(uintptr_t)db;
    db->nbuckets = HELLO_MIN_BUCKETS;
    pthread_mutex_init(&db->mu, NULL);
    db->tab = calloc(db->nbuckets, sizeof(*db->tab));
    db->path = malloc(strlen(dir) + sizeof("/" HELLO_LOG_FILE));
    if (db->tab == NULL || db->path == NULL ||
        kvd_ro_create(host, "hello", on_readonly, db, &db->ro) != 0) {
        kvd_err_set(err, rc, "hello: out of memory");
        goto fail;
    }
    sprintf(db->path, "%s/%s", dir, HELLO_LOG_FILE);
    rc = kvd_dirlock_acquire(host->io, dir, "hello", &db->lock_fd, err);
    if (rc != 0) {
        goto fail;
    }
    db->fd =
        host->io->open(db->path, O_RDWR | O_CREAT | O_CLOEXEC, KVD_FILE_MODE);
    if (db->fd < 0) {
        rc = kvd_err_set(err, kvd_errno_status(errno), "hello: open %s: %s",
                         db->path, strerror(errno));
        goto fail;
    }
    rc = replay(db, err);
    if (rc == 0) {
        cc.ctx = db;
        rc = kvd_commit_create(&cc, &db->commit, err);
    }
    if (rc != 0) {
        goto fail;
    }
    *out = db;
    return 0;
fail:
    hello_close(db, NULL);
    return rc;
}

/* ---- operations ---- */

static int
is_live(const kvd_engine *db, const struct hello_ent *e)
{
    return e != NULL && !kvd_expired(e->expire_ms, db->host->now_ms(db->host));
}

static void
val_free(struct kvd_val *v)
{
    free(v->cookie[0]);
}

static int
hello_get(kvd_engine *db, const void *key, size_t klen, struct kvd_val *out)
{
    struct hello_ent *e;
    void *copy = NULL;

    pthread_mutex_lock(&db->mu);
    e = *find(db, hash_of(db, key, klen), key, klen);
    if (is_live(db, e) && (copy = malloc(e->vlen + 1)) != NULL) {
        memcpy(copy, e->kv + e->klen, e->vlen);
        out->len = e->vlen;
        out->expire_ms = e->expire_ms;
    }
    pthread_mutex_unlock(&db->mu);
    if (copy == NULL) {
        return is_live(db, e) ? KVD_ENOMEM : KVD_ENOTFOUND;
    }
    /* the caller owns the copy until kvd_val_release */
    out->data = copy;
    out->release = val_free;
    out->cookie[0] = copy;
    return 0;
}

/* One put or delete as a record of one op. A delete reports whether the
 * key was live, so it looks under the same lock as its write. */
static int
write_one(kvd_engine *db, int type, const void *key, size_t klen,
          const void *val, size_t vlen, int64_t expire_ms)
{
    struct kvd_buf b = KVD_BUF_INIT;
    int rc = begin(&b);

    if (rc == 0) {
        rc = encode_op(&b, type, key, klen, val, vlen, expire_ms);
    }
    if (rc != 0) {
        kvd_buf_release(&b);
        return rc;
    }
    pthread_mutex_lock(&db->mu);
    if (type == HELLO_OP_DEL &&
        !is_live(db, *find(db, hash_of(db, key, klen), key, klen))) {
        pthread_mutex_unlock(&db->mu);
        kvd_buf_release(&b);
        return KVD_ENOTFOUND;
    }
    return commit_unlock(db, &b, 1);
}

static int
hello_put(kvd_engine *db, const void *key, size_t klen, const void *val,
          size_t vlen, int64_t expire_ms)
{
    return write_one(db, HELLO_OP_PUT, key, klen, val, vlen, expire_ms);
}

static int
hello_del(kvd_engine *db, const void *key, size_t klen)
{
    return write_one(db, HELLO_OP_DEL, key, klen, NULL, 0, 0);
}

static int
hello_batch(kvd_engine *db, const struct kvd_op *ops, size_t n,
            struct kvd_err *err)
{
    struct kvd_buf b = KVD_BUF_INIT;
    int rc = kvd_check_batch(ops, n, HELLO_MAX_KEY, HELLO_MAX_VALUE, err);

    if (rc != 0 || n == 0) {
        return rc;
    }
    rc = begin(&b);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct kvd_op *op = &ops[i];
        rc = encode_op(&b, op->type == KVD_OP_PUT ? HELLO_OP_PUT : HELLO_OP_DEL,
                       op->key, op->klen, op->val, op->vlen, op->expire_ms);
    }
    if (rc != 0) {
        kvd_buf_release(&b);
        return kvd_err_set(err, rc, "hello: batch: out of memory");
    }
    pthread_mutex_lock(&db->mu);
    rc = commit_unlock(db, &b, (uint32_t)n);
    return rc == 0 ? 0
                   : kvd_err_set(err, rc, "hello: batch: %s", kvd_strerror(rc));
}

static int
hello_stats(kvd_engine *db, struct kvd_engine_stats *out, kvd_stat_fn fn,
            void *ctx)
{
    struct kvd_engine_stats st = {.ready = 1};

    pthread_mutex_lock(&db->mu);
    for (size_t i = 0; i < db->nbuckets; i++) {
        for (struct hello_ent *e = db->tab[i]; e != NULL; e = e->next) {
            if (is_live(db, e)) {
                st.keys++;
                st.key_bytes += e->klen;
                st.value_bytes += e->vlen;
            }
            st.mem_bytes += sizeof(*e) + e->klen + e->vlen;
        }
    }
    st.mem_bytes += db->nbuckets * sizeof(*db->tab);
    st.disk_bytes = db->end;
    pthread_mutex_unlock(&db->mu);
    st.readonly = kvd_ro_check(db->ro) != 0;
    kvd_ro_state(db->ro, st.state, sizeof(st.state));
    kvd_engine_stats_copy(out, &st);
    (void)fn; /* no engine-specific counters */
    (void)ctx;
    return 0;
}

static int
hello_sync(kvd_engine *db, struct kvd_err *err)
{
    int rc = kvd_commit_sync_all(db->commit);

    return rc == 0 ? 0
                   : kvd_err_set(err, rc, "hello: sync: %s", kvd_strerror(rc));
}

#define HELLO_CAPS                                                             \
    (KVD_CAP_PERSISTENT | KVD_CAP_ATOMIC_BATCH | KVD_CAP_SNAPSHOT_ITER)

/* Durable only when every write waits for its fdatasync. */
static uint32_t
hello_instance_caps(kvd_engine *db)
{
    return db->sync == KVD_SYNC_ALWAYS ? HELLO_CAPS | KVD_CAP_DURABLE
                                       : HELLO_CAPS;
}

/* ---- iteration ---- */

/*
 * A copy of the matching live entries taken at open, sorted by pos (the
 * key's hash): a point-in-time view, in non-decreasing pos order, and a
 * caller that reopens at start_pos = pos + 1 continues after every entry
 * with that pos, as unordered engines must (struct kvd_entry).
 */
struct kvd_iter {
    struct hello_ent **v; /* private copies (keys only: no value bytes) */
    size_t n;
    size_t next;
    int keys_only;
};

static int
by_pos(const void *a, const void *b)
{
    uint64_t x = (*(struct hello_ent *const *)a)->hash;
    uint64_t y = (*(struct hello_ent *const *)b)->hash;

    return x < y ? -1 : x > y;
}

static void
hello_iter_close(kvd_iter *it)
{
    for (size_t i = 0; it != NULL && i < it->n; i++) {
        free(it->v[i]);
    }
    if (it != NULL) {
        free(it->v);
    }
    free(it);
}

static int
hello_iter_open(kvd_engine *db, const struct kvd_iter_opts *o, kvd_iter **out,
                struct kvd_err *err)
{
    kvd_iter *it = calloc(1, sizeof(*it));
    size_t plen = o->prefix != NULL ? o->prefix_len : 0;
    int rc = 0;

    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "hello: out of memory");
    }
    it->keys_only = (o->flags & KVD_ITER_KEYS_ONLY) != 0;
    pthread_mutex_lock(&db->mu);
    it->v = malloc((db->count + 1) * sizeof(*it->v));
    for (size_t i = 0; it->v != NULL && rc == 0 && i < db->nbuckets; i++) {
        for (struct hello_ent *e = db->tab[i]; e != NULL; e = e->next) {
            size_t vn = it->keys_only ? 0 : e->vlen;
            struct hello_ent *c;

            if (!is_live(db, e) || e->hash < o->start_pos || e->klen < plen ||
                (plen != 0 && memcmp(e->kv, o->prefix, plen) != 0)) {
                continue;
            }
            c = malloc(sizeof(*e) + e->klen + vn);
            if (c == NULL) {
                rc = KVD_ENOMEM;
                break;
            }
            memcpy(c, e, sizeof(*e) + e->klen + vn);
            it->v[it->n++] = c;
        }
    }
    pthread_mutex_unlock(&db->mu);
    if (it->v == NULL || rc != 0) {
        hello_iter_close(it);
        return kvd_err_set(err, KVD_ENOMEM, "hello: out of memory");
    }
    qsort(it->v, it->n, sizeof(*it->v), by_pos);
    *out = it;
    return 0;
}

static int
hello_iter_next(kvd_iter *it, struct kvd_entry *out)
{
    struct hello_ent *e;

    if (it->next == it->n) {
        return KVD_ENOTFOUND;
    }
    e = it->v[it->next++];
    out->key = e->kv;
    out->klen = e->klen;
    out->val = it->keys_only ? NULL : e->kv + e->klen;
    out->vlen = e->vlen;
    out->expire_ms = e->expire_ms;
    out->pos = e->hash;
    return 0;
}

/* ---- the exported vtable ---- */

KVD_EXPORT const struct kvd_engine_vtable kvd_engine_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_engine_vtable),
    .name = "hello",
    .version = "1.0.0",
    .description = "an example: one append-only log and an in-memory hash "
                   "table (examples/engine-hello)",
    .caps = HELLO_CAPS,
    .max_key_bytes = HELLO_MAX_KEY,
    .max_value_bytes = HELLO_MAX_VALUE,
    .options = hello_options,
    .options_size = sizeof(struct hello_opts),
    .open = hello_open,
    .close = hello_close,
    .get = hello_get,
    .put = hello_put,
    .del = hello_del,
    .batch = hello_batch,
    .iter_open = hello_iter_open,
    .iter_next = hello_iter_next,
    .iter_close = hello_iter_close,
    .stats = hello_stats,
    .sync = hello_sync,
    .instance_caps = hello_instance_caps,
};
