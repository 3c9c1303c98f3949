/*
 * lsm_view.c -- what readers see of the lsm engine: views (the memtables
 * and the table set, refcounted together), point lookups through them
 * (memtables, then level 0 newest first, then one table per deeper level,
 * skipping tables by key range and bloom filter), and get.
 *
 * Thread-safe: a view is taken under mu and used without locks; values
 * handed out pin the memtable or the cached block they point into.
 */
#include "lsm_db.h"

#include <stdlib.h>
#include <string.h>

/* ---- views ---- */

struct lsm_view *
lsm_view_get(lsm_db *db, uint64_t *snap)
{
    struct lsm_view *vw;

    pthread_mutex_lock(&db->mu);
    vw = db->view;
    atomic_fetch_add_explicit(&vw->refs, 1, memory_order_relaxed);
    if (snap != NULL) {
        *snap = atomic_load_explicit(&db->visible_seq, memory_order_acquire);
    }
    pthread_mutex_unlock(&db->mu);
    return vw;
}

void
lsm_view_put(struct lsm_view *vw)
{
    if (vw == NULL ||
        atomic_fetch_sub_explicit(&vw->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    lsm_mem_unref(vw->mem);
    lsm_mem_unref(vw->imm);
    lsm_version_unref(vw->v);
    free(vw);
}

int
lsm_view_install_locked(lsm_db *db, lsm_mem *mem, lsm_mem *imm, lsm_version *v,
                        struct lsm_view **old)
{
    struct lsm_view *nv = calloc(1, sizeof(*nv));

    if (nv == NULL) {
        return KVD_ENOMEM;
    }
    atomic_init(&nv->refs, 1);
    nv->gen = ++db->view_gen;
    lsm_mem_ref(mem);
    nv->mem = mem;
    if (imm != NULL) {
        lsm_mem_ref(imm);
    }
    nv->imm = imm;
    lsm_version_ref(v);
    nv->v = v;
    *old = db->view;
    db->view = nv;
    atomic_store(&db->l0_files, (int)v->nfiles[0]);
    atomic_store(&db->imm_pending, imm != NULL);
    pthread_cond_broadcast(&db->done_cv);
    return 0;
}

/* ---- lookups ---- */

static bool
in_file_range(const struct lsm_file *f, const void *key, size_t klen)
{
    struct lsm_slice s = lsm_ikey_user(f->smallest);
    struct lsm_slice l = lsm_ikey_user(f->largest);

    return lsm_user_cmp(key, klen, s.p, s.n) >= 0 &&
           lsm_user_cmp(key, klen, l.p, l.n) <= 0;
}

static int
table_lookup(lsm_db *db, struct lsm_file *f, const void *key, size_t klen,
             uint64_t hash, uint64_t snap, struct lsm_lookup *out)
{
    lsm_table *t;
    bool owned;
    int rc = lsm_tcache_borrow(db, f, &t, &owned);

    if (rc != 0) {
        return rc;
    }
    rc = lsm_table_get(t, key, klen, hash, snap, &out->hit);
    if (owned) {
        lsm_table_unref(t); /* a hit pins its block, not the table */
    }
    if (rc == 0) {
        out->type = out->hit.type;
        out->val = out->hit.val;
    } else if (rc != KVD_ENOTFOUND) {
        LSM_LOG(db, KVD_LOG_ERROR, "lsm: read %s/%06llu.sst: %s", db->dir,
                (unsigned long long)f->number, kvd_strerror(rc));
    }
    return rc;
}

int
lsm_lookup(lsm_db *db, struct lsm_view *vw, const void *key, size_t klen,
           uint64_t snap, struct lsm_lookup *out)
{
    struct lsm_mhit mh;
    lsm_version *v = vw->v;
    uint64_t hash;
    int rc;

    memset(out, 0, sizeof(*out));
    if (lsm_mem_get(vw->mem, key, klen, snap, &mh) == 0) {
        lsm_mem_ref(vw->mem);
        out->mem = vw->mem;
        out->type = mh.type;
        out->val = mh.val;
        return 0;
    }
    if (vw->imm != NULL && lsm_mem_get(vw->imm, key, klen, snap, &mh) == 0) {
        lsm_mem_ref(vw->imm);
        out->mem = vw->imm;
        out->type = mh.type;
        out->val = mh.val;
        return 0;
    }
    hash = lsm_bloom_hash(key, klen);
    for (size_t i = 0; i < v->nfiles[0]; i++) {
        struct lsm_file *f = v->files[0][i];
        if (!in_file_range(f, key, klen)) {
            continue;
        }
        rc = table_lookup(db, f, key, klen, hash, snap, out);
        if (rc != KVD_ENOTFOUND) {
            return rc;
        }
    }
    for (int l = 1; l < LSM_LEVELS; l++) {
        ptrdiff_t i;
        if (v->nfiles[l] == 0) {
            continue;
        }
        i = lsm_version_find(v, l, key, klen);
        if (i < 0) {
            continue;
        }
        rc = table_lookup(db, v->files[l][i], key, klen, hash, snap, out);
        if (rc != KVD_ENOTFOUND) {
            return rc;
        }
    }
    return KVD_ENOTFOUND;
}

void
lsm_lookup_release(struct lsm_lookup *l)
{
    if (l->mem != NULL) {
        lsm_mem_unref(l->mem);
        l->mem = NULL;
    }
    if (l->hit.pin != NULL) {
        lsm_hit_release(&l->hit);
        l->hit.pin = NULL;
    }
}

/* ---- get ---- */

static void
val_release_mem(struct kvd_val *v)
{
    lsm_mem_unref(v->cookie[0]);
    v->cookie[0] = NULL;
}

static void
val_release_hit(struct kvd_val *v)
{
    struct lsm_hit h;

    memset(&h, 0, sizeof(h));
    h.pin = v->cookie[0];
    lsm_hit_release(&h);
    v->cookie[0] = NULL;
}

static void
val_release_free(struct kvd_val *v)
{
    free(v->cookie[0]);
    v->cookie[0] = NULL;
}

int
lsm_get(lsm_db *db, const void *key, size_t klen, struct kvd_val *out)
{
    struct lsm_lookup l;
    struct lsm_view *vw;
    struct lsm_slice val;
    int64_t expire = KVD_NO_EXPIRY;
    uint64_t snap;
    int rc;

    if (klen == 0 || klen > LSM_MAX_KEY_BYTES) {
        return klen == 0 ? KVD_EINVAL : KVD_ENOTFOUND;
    }
    kvd_counter_add(&db->c.gets, 1);
    vw = lsm_view_get(db, &snap);
    rc = lsm_lookup(db, vw, key, klen, snap, &l);
    lsm_view_put(vw);
    if (rc != 0) {
        return rc;
    }
    val = l.val;
    if (l.type == LSM_T_DEL) {
        lsm_lookup_release(&l);
        return KVD_ENOTFOUND;
    }
    if (l.type == LSM_T_PUTX) {
        expire = lsm_val_expiry(val);
        if (kvd_expired(expire, db->host->now_ms(db->host))) {
            lsm_lookup_release(&l);
            return KVD_ENOTFOUND;
        }
        val.p = (const unsigned char *)val.p + 8;
        val.n -= 8;
    }
    out->len = val.n;
    out->expire_ms = expire;
    out->cookie[0] = NULL;
    out->cookie[1] = NULL;
    if (l.mem != NULL) {
        /* zero copy: the memtable stays while the value is held */
        out->data = val.p;
        out->release = val_release_mem;
        out->cookie[0] = l.mem;
    } else if (l.hit.pin != NULL) {
        /* zero copy: the cached block stays pinned */
        out->data = val.p;
        out->release = val_release_hit;
        out->cookie[0] = l.hit.pin;
    } else {
        void *copy = malloc(val.n ? val.n : 1);
        if (copy == NULL) {
            lsm_lookup_release(&l);
            return KVD_ENOMEM;
        }
        memcpy(copy, val.p, val.n);
        lsm_lookup_release(&l);
        out->data = copy;
        out->release = val_release_free;
        out->cookie[0] = copy;
    }
    return 0;
}

/* ---- liveness (del, multi) ---- */

int
lsm_is_live(lsm_db *db, const void *key, size_t klen, uint64_t *snap,
            bool *live)
{
    struct lsm_view *vw = lsm_view_get(db, snap);
    struct lsm_lookup l;
    int rc = lsm_lookup(db, vw, key, klen, *snap, &l);

    *live = false;
    if (rc == 0) {
        if (l.type == LSM_T_PUT) {
            *live = true;
        } else if (l.type == LSM_T_PUTX) {
            *live =
                !kvd_expired(lsm_val_expiry(l.val), db->host->now_ms(db->host));
        }
        lsm_lookup_release(&l);
    }
    lsm_view_put(vw);
    return rc == KVD_ENOTFOUND ? 0 : rc;
}
