/*
 * lsm_dbiter.c -- user iterators: the live keys of a point-in-time view,
 * in key order, from a start key or within a prefix; and the exact live
 * key count stats report.
 *
 * An iterator holds a view (memtables + table set) and a snapshot
 * sequence number, both taken at open: writes and compactions after that
 * change nothing it returns (KVD_CAP_SNAPSHOT_ITER), and the files it
 * reads stay on disk until it closes. It walks the merged stream of every
 * version of every key (lsm_merge.c) and keeps, for each user key, the
 * newest version with seq <= snapshot; a deletion or an expired value
 * (against the clock read at open) hides the key.
 *
 * One thread at a time per iterator; no lock is held between calls.
 */
#include "lsm_db.h"

#include <stdlib.h>
#include <string.h>

struct kvd_iter {
    lsm_db *db;
    struct lsm_view *vw;
    lsm_it *it;
    uint64_t snap;
    int64_t now;
    unsigned char *prefix;
    size_t prefix_len;
    unsigned flags;
    unsigned char *key; /* user key of the entry last returned */
    size_t klen;
    size_t kcap;
    bool positioned; /* it is on the entry last returned */
    bool done;
};

static int
key_save(struct kvd_iter *di, struct lsm_slice u)
{
    if (u.n > di->kcap) {
        size_t cap = di->kcap ? di->kcap : 64;
        unsigned char *np;
        while (cap < u.n) {
            cap *= 2;
        }
        np = realloc(di->key, cap);
        if (np == NULL) {
            return KVD_ENOMEM;
        }
        di->key = np;
        di->kcap = cap;
    }
    memcpy(di->key, u.p, u.n);
    di->klen = u.n;
    return 0;
}

/* Move past every remaining version of di->key. */
static void
skip_key(struct kvd_iter *di)
{
    lsm_it *it = di->it;

    while (it->ops->valid(it)) {
        struct lsm_slice u = lsm_ikey_user(it->ops->key(it));
        if (!lsm_user_eq(u.p, u.n, di->key, di->klen)) {
            return;
        }
        it->ops->next(it);
    }
}

/* The next live entry: 0 with out filled (key in di->key, value in the
 * stream), KVD_ENOTFOUND at the end, or an error. */
static int
scan_next(struct kvd_iter *di, struct kvd_entry *out)
{
    lsm_it *it = di->it;

    if (di->done) {
        return KVD_ENOTFOUND;
    }
    if (di->positioned) {
        skip_key(di);
        di->positioned = false;
    }
    for (;;) {
        struct lsm_slice k;
        struct lsm_slice u;
        struct lsm_slice v;
        uint64_t tr;
        int type;
        int64_t expire = KVD_NO_EXPIRY;
        int rc;

        if (!it->ops->valid(it)) {
            di->done = true;
            rc = it->ops->status(it);
            return rc != 0 ? rc : KVD_ENOTFOUND;
        }
        k = it->ops->key(it);
        tr = lsm_ikey_trailer(k);
        if ((tr >> 8) > di->snap) {
            it->ops->next(it); /* written after the snapshot */
            continue;
        }
        u = lsm_ikey_user(k);
        if (di->prefix_len > 0 &&
            (u.n < di->prefix_len ||
             memcmp(u.p, di->prefix, di->prefix_len) != 0)) {
            /* the stream started at the prefix: past it now */
            di->done = true;
            return KVD_ENOTFOUND;
        }
        rc = key_save(di, u);
        if (rc != 0) {
            return rc;
        }
        type = (int)(tr & 0xff);
        v = it->ops->value(it);
        if (type == LSM_T_PUTX) {
            expire = lsm_val_expiry(v);
            v.p = (const unsigned char *)v.p + 8;
            v.n -= 8;
        }
        if (type == LSM_T_DEL || kvd_expired(expire, di->now)) {
            skip_key(di);
            continue;
        }
        di->positioned = true;
        out->key = di->key;
        out->klen = di->klen;
        out->val = v.p;
        out->vlen = v.n;
        out->expire_ms = expire;
        out->pos = 0;
        return 0;
    }
}

static void
iter_free(struct kvd_iter *di)
{
    if (di == NULL) {
        return;
    }
    if (di->it != NULL) {
        di->it->ops->destroy(di->it);
    }
    lsm_view_put(di->vw);
    free(di->prefix);
    free(di->key);
    free(di);
}

/* Open di over vw at snap, positioned at the first key >= start. */
static int
iter_start(lsm_db *db, struct kvd_iter *di, struct lsm_view *vw,
           const void *start, size_t start_len)
{
    unsigned char *target;
    struct lsm_slice t;
    int rc;

    di->db = db;
    di->vw = vw;
    di->now = db->host->now_ms(db->host);
    rc = lsm_view_iter(db, vw, &di->it);
    if (rc != 0) {
        return rc;
    }
    if (start == NULL || start_len == 0) {
        di->it->ops->seek_first(di->it);
        return 0;
    }
    target = malloc(start_len + LSM_TRAILER_BYTES);
    if (target == NULL) {
        return KVD_ENOMEM;
    }
    memcpy(target, start, start_len);
    kvd_put_le64(target + start_len, lsm_pack_trailer(di->snap, LSM_T_SEEK));
    t.p = target;
    t.n = start_len + LSM_TRAILER_BYTES;
    di->it->ops->seek(di->it, t);
    free(target);
    return 0;
}

int
lsm_iter_open(lsm_db *db, const struct kvd_iter_opts *opts, kvd_iter **out,
              struct kvd_err *err)
{
    struct kvd_iter *di = calloc(1, sizeof(*di));
    const void *start = NULL;
    size_t start_len = 0;
    int rc;

    if (di == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "lsm: out of memory");
    }
    if (opts != NULL) {
        di->flags = opts->flags;
        start = opts->start;
        start_len = opts->start != NULL ? opts->start_len : 0;
        if (opts->prefix != NULL && opts->prefix_len > 0) {
            di->prefix = malloc(opts->prefix_len);
            if (di->prefix == NULL) {
                free(di);
                return kvd_err_set(err, KVD_ENOMEM, "lsm: out of memory");
            }
            memcpy(di->prefix, opts->prefix, opts->prefix_len);
            di->prefix_len = opts->prefix_len;
            /* start at the later of the start key and the prefix */
            if (start_len == 0 || lsm_user_cmp(di->prefix, di->prefix_len,
                                               start, start_len) > 0) {
                start = di->prefix;
                start_len = di->prefix_len;
            }
        }
    }
    rc = iter_start(db, di, lsm_view_get(db, &di->snap), start, start_len);
    if (rc != 0) {
        iter_free(di);
        return kvd_err_set(err, rc, "lsm: open iterator: %s", kvd_strerror(rc));
    }
    *out = di;
    return 0;
}

int
lsm_iter_next(kvd_iter *di, struct kvd_entry *out)
{
    return scan_next(di, out);
}

void
lsm_iter_close(kvd_iter *di)
{
    iter_free(di);
}

int
lsm_count_live(lsm_db *db, struct lsm_view *vw, uint64_t snap, uint64_t limit,
               struct lsm_live *out)
{
    struct kvd_iter *di = calloc(1, sizeof(*di));
    struct kvd_entry e;
    int rc;

    memset(out, 0, sizeof(*out));
    out->next_expiry = INT64_MAX;
    if (di == NULL) {
        return KVD_ENOMEM;
    }
    di->snap = snap;
    atomic_fetch_add(&vw->refs, 1); /* di holds a reference of its own */
    rc = iter_start(db, di, vw, NULL, 0);
    while (rc == 0 && (limit == 0 || out->keys < limit) &&
           (rc = scan_next(di, &e)) == 0) {
        out->keys++;
        out->key_bytes += e.klen;
        out->value_bytes += e.vlen;
        if (e.expire_ms != KVD_NO_EXPIRY && e.expire_ms < out->next_expiry) {
            out->next_expiry = e.expire_ms;
        }
    }
    if (rc == KVD_ENOTFOUND) {
        out->complete = true;
        rc = 0;
    }
    iter_free(di);
    return rc;
}
