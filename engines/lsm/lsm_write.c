/*
 * lsm_write.c -- put, del and batch of the lsm engine.
 *
 * A write encodes its WAL record (one batch, lsm_batch.c) outside any
 * lock. Under wlock it makes room (lsm_room.c), reserves the memtable
 * bytes so the insert cannot fail, takes sequence numbers, appends the
 * record with one pwrite, inserts into the memtable and publishes the new
 * last sequence number. A failed append is never retried: the engine
 * turns read-only. Then, with sync = always, it waits for the group
 * commit (kvd/kit_commit.h) to make its WAL position durable.
 *
 * del reports whether the key was live, so it looks the key up first,
 * outside the write lock, and looks again under it only when another
 * write came in meanwhile.
 */
#include "lsm_db.h"

#include <stdlib.h>
#include <string.h>

#define LSM_STACK_REC_BYTES 1024

/* ---- the append ---- */

/*
 * Append payload (header seq not yet set) under wlock and insert its ops.
 * `one` describes a single op (put/del) inserted directly; otherwise ops
 * (n of them) are inserted. check_del: the single op is a delete that
 * must find a live key (snap is the sequence the caller's lookup saw).
 */
struct wreq {
    unsigned char *payload;
    size_t len;
    uint32_t count;
    size_t mem_bytes;
    /* single op */
    int type;
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    int64_t expire_ms;
    /* batch */
    const struct kvd_op *ops;
    /* delete with existence check */
    bool check_del;
    bool live;
    uint64_t snap;
};

static int
op_type(const struct kvd_op *op)
{
    return op->type == KVD_OP_DEL ? LSM_T_DEL : lsm_put_type(op->expire_ms);
}

static int
append(lsm_db *db, struct wreq *r)
{
    uint64_t target = 0;
    uint64_t seq;
    int rc;

    pthread_mutex_lock(&db->wlock);
    rc = lsm_make_room_locked(db, false);
    if (rc == 0 && r->check_del && db->seq != r->snap) {
        /* writes came in since the caller's lookup: look again, now
         * that no writer can change the key */
        uint64_t snap;
        rc = lsm_is_live(db, r->key, r->klen, &snap, &r->live);
    }
    if (rc == 0 && r->check_del && !r->live) {
        rc = KVD_ENOTFOUND;
    }
    if (rc == 0) {
        rc = lsm_mem_reserve(db->wmem, r->mem_bytes);
    }
    if (rc == 0) {
        seq = db->seq + 1;
        lsm_batch_hdr_encode(r->payload, seq, r->count);
        rc = lsm_wal_append_locked(db, r->payload, r->len);
    }
    if (rc == 0) {
        if (r->ops == NULL) {
            lsm_mem_add(db->wmem, seq, r->type, r->key, r->klen, r->expire_ms,
                        r->val, r->vlen);
        } else {
            for (uint32_t i = 0; i < r->count; i++) {
                const struct kvd_op *op = &r->ops[i];
                lsm_mem_add(db->wmem, seq + i, op_type(op), op->key, op->klen,
                            op->expire_ms, op->val, op->vlen);
            }
        }
        db->seq = seq + r->count - 1;
        atomic_store_explicit(&db->visible_seq, db->seq, memory_order_release);
        target = db->written;
    }
    pthread_mutex_unlock(&db->wlock);
    return rc == 0 ? kvd_commit_ack(db->commit, target) : rc;
}

int
lsm_check_key(const void *key, size_t klen)
{
    return kvd_check_key(key, klen, LSM_MAX_KEY_BYTES);
}

int
lsm_check_put(const void *key, size_t klen, const void *val, size_t vlen,
              int64_t expire_ms)
{
    return kvd_check_put(key, klen, val, vlen, expire_ms, LSM_MAX_KEY_BYTES,
                         LSM_MAX_VALUE_BYTES);
}

int
lsm_put(lsm_db *db, const void *key, size_t klen, const void *val, size_t vlen,
        int64_t expire_ms)
{
    unsigned char stackbuf[LSM_STACK_REC_BYTES];
    struct wreq r;
    int type = lsm_put_type(expire_ms);
    int rc = lsm_check_put(key, klen, val, vlen, expire_ms);

    if (rc != 0) {
        return rc;
    }
    if (lsm_refuses(db)) {
        return KVD_EREADONLY;
    }
    memset(&r, 0, sizeof(r));
    r.len = LSM_BATCH_HDR_BYTES + lsm_op_bytes(klen, type, vlen);
    r.payload = r.len <= sizeof(stackbuf) ? stackbuf : malloc(r.len);
    if (r.payload == NULL) {
        return KVD_ENOMEM;
    }
    lsm_op_encode(r.payload + LSM_BATCH_HDR_BYTES, type, key, klen, expire_ms,
                  val, vlen);
    r.count = 1;
    r.mem_bytes = lsm_mem_entry_bytes(klen, vlen);
    r.type = type;
    r.key = key;
    r.klen = klen;
    r.val = val;
    r.vlen = vlen;
    r.expire_ms = expire_ms;
    rc = append(db, &r);
    if (r.payload != stackbuf) {
        free(r.payload);
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.puts, 1);
        kvd_counter_add(&db->c.user_bytes, klen + vlen);
    }
    return rc;
}

int
lsm_del(lsm_db *db, const void *key, size_t klen)
{
    unsigned char stackbuf[LSM_STACK_REC_BYTES];
    struct wreq r;
    int rc = lsm_check_key(key, klen);

    if (rc != 0) {
        return rc;
    }
    if (lsm_refuses(db)) {
        return KVD_EREADONLY;
    }
    memset(&r, 0, sizeof(r));
    /* the lookup runs outside the write lock; append repeats it under
     * the lock only if another write came in meanwhile */
    rc = lsm_is_live(db, key, klen, &r.snap, &r.live);
    if (rc != 0) {
        return rc;
    }
    if (!r.live && atomic_load_explicit(&db->visible_seq,
                                        memory_order_acquire) == r.snap) {
        /* nothing was written since the lookup: it stands (a write still
         * in flight is ordered after this delete) */
        return KVD_ENOTFOUND;
    }
    r.len = LSM_BATCH_HDR_BYTES + lsm_op_bytes(klen, LSM_T_DEL, 0);
    r.payload = r.len <= sizeof(stackbuf) ? stackbuf : malloc(r.len);
    if (r.payload == NULL) {
        return KVD_ENOMEM;
    }
    lsm_op_encode(r.payload + LSM_BATCH_HDR_BYTES, LSM_T_DEL, key, klen, 0,
                  NULL, 0);
    r.count = 1;
    r.mem_bytes = lsm_mem_entry_bytes(klen, 0);
    r.type = LSM_T_DEL;
    r.key = key;
    r.klen = klen;
    r.check_del = true;
    rc = append(db, &r);
    if (r.payload != stackbuf) {
        free(r.payload);
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.dels, 1);
        kvd_counter_add(&db->c.user_bytes, klen);
    }
    return rc;
}

/* Check the batch and size its record (*len) and memtable bytes (*mem). */
static int
batch_check(const struct kvd_op *ops, size_t n, size_t *len, size_t *mem,
            struct kvd_err *err)
{
    uint64_t total = LSM_BATCH_HDR_BYTES;
    uint64_t membytes = 0;
    int rc =
        kvd_check_batch(ops, n, LSM_MAX_KEY_BYTES, LSM_MAX_VALUE_BYTES, err);

    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const struct kvd_op *op = &ops[i];
        size_t vlen = op->type == KVD_OP_PUT ? op->vlen : 0;

        total += lsm_op_bytes(op->klen, op_type(op), vlen);
        membytes += lsm_mem_entry_bytes(op->klen, vlen);
        if (total > LSM_MAX_BATCH_BYTES) {
            return kvd_err_set(err, KVD_ETOOBIG,
                               "batch of %zu ops is over the limit of %u "
                               "bytes",
                               n, LSM_MAX_BATCH_BYTES);
        }
    }
    if (n > UINT32_MAX) {
        return kvd_err_set(err, KVD_ETOOBIG, "batch of %zu ops is too long", n);
    }
    *len = (size_t)total;
    *mem = (size_t)membytes;
    return 0;
}

int
lsm_batch(lsm_db *db, const struct kvd_op *ops, size_t n, struct kvd_err *err)
{
    unsigned char stackbuf[LSM_STACK_REC_BYTES];
    struct wreq r;
    unsigned char *p;
    uint64_t user = 0;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = batch_check(ops, n, &r.len, &r.mem_bytes, err);
    if (rc != 0 || n == 0) {
        return rc;
    }
    if (lsm_refuses(db)) {
        char why[LSM_STATE_BYTES];
        return kvd_err_set(err, KVD_EREADONLY, "lsm: %s",
                           lsm_why(db, KVD_EREADONLY, why));
    }
    r.payload = r.len <= sizeof(stackbuf) ? stackbuf : malloc(r.len);
    if (r.payload == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "batch of %zu ops: out of memory",
                           n);
    }
    p = r.payload + LSM_BATCH_HDR_BYTES;
    for (size_t i = 0; i < n; i++) {
        const struct kvd_op *op = &ops[i];
        int put = op->type == KVD_OP_PUT;
        p = lsm_op_encode(p, op_type(op), op->key, op->klen, op->expire_ms,
                          op->val, put ? op->vlen : 0);
        user += op->klen + (put ? op->vlen : 0);
    }
    r.count = (uint32_t)n;
    r.ops = ops;
    rc = append(db, &r);
    if (r.payload != stackbuf) {
        free(r.payload);
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.batches, 1);
        kvd_counter_add(&db->c.user_bytes, user);
        return 0;
    }
    {
        char why[LSM_STATE_BYTES];
        return kvd_err_set(err, rc, "lsm: batch of %zu ops: %s", n,
                           lsm_why(db, rc, why));
    }
}
