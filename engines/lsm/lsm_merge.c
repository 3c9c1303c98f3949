/*
 * lsm_merge.c -- iterators built from other iterators (lsm_iter.h):
 *   - the merging iterator: n sorted children, one sorted stream, by a
 *     binary min-heap of the children's current keys (ties: the child
 *     listed first, which callers list newest first);
 *   - the level iterator: the files of one level >= 1 in key order, each
 *     table opened (through the table cache) only when reached;
 *   - the view iterator: memtables + L0 tables + levels of a view.
 *
 * Every entry of every version is returned; visibility (sequence numbers,
 * deletions, expiry) is the caller's business. An error in a child (a bad
 * block, a failed read) ends the stream and shows in status(): a merged
 * stream with a silently missing child would be wrong, not short.
 *
 * An iterator belongs to one thread at a time.
 */
#include "lsm_db.h"

#include <stdlib.h>
#include <string.h>

/* ---- merging iterator ---- */

/* A heap slot: a child and its current key, cached so that sifting
 * compares bytes instead of calling through the child's ops. */
struct heap_ent {
    struct lsm_slice key;
    size_t kid;
};

struct merge_it {
    lsm_it base;
    lsm_it **kids;
    size_t n;
    struct heap_ent *heap; /* valid children, smallest key first */
    size_t hn;
    /* The smaller of heap[1] and heap[2] (1 or 2), 0 = not known. A
     * next() whose child stays the smallest changes neither, so a scan
     * that reads a run from one child costs one comparison per step. */
    size_t second;
    int status;
};

static inline bool
ent_less(const struct heap_ent *a, const struct heap_ent *b)
{
    int c = lsm_ikey_cmp(a->key, b->key);

    return c < 0 || (c == 0 && a->kid < b->kid);
}

static void
sift_down(struct merge_it *m, size_t i)
{
    struct heap_ent *h = m->heap;
    struct heap_ent x = h[i];

    for (;;) {
        size_t l = 2 * i + 1;
        size_t s;
        if (l >= m->hn) {
            break;
        }
        s = l + 1 < m->hn && ent_less(&h[l + 1], &h[l]) ? l + 1 : l;
        if (!ent_less(&h[s], &x)) {
            break;
        }
        h[i] = h[s];
        i = s;
    }
    h[i] = x;
}

static void
rebuild(struct merge_it *m)
{
    m->hn = 0;
    m->second = 0;
    m->status = 0;
    for (size_t i = 0; i < m->n; i++) {
        lsm_it *k = m->kids[i];
        if (k->ops->valid(k)) {
            m->heap[m->hn].kid = i;
            m->heap[m->hn].key = k->ops->key(k);
            m->hn++;
        } else if (m->status == 0) {
            m->status = k->ops->status(k);
        }
    }
    if (m->status != 0) {
        m->hn = 0;
        return;
    }
    for (size_t i = m->hn / 2; i-- > 0;) {
        sift_down(m, i);
    }
}

static bool
mg_valid(lsm_it *it)
{
    struct merge_it *m = (struct merge_it *)it;
    return m->hn > 0;
}

static void
mg_seek_first(lsm_it *it)
{
    struct merge_it *m = (struct merge_it *)it;

    for (size_t i = 0; i < m->n; i++) {
        m->kids[i]->ops->seek_first(m->kids[i]);
    }
    rebuild(m);
}

static void
mg_seek(lsm_it *it, struct lsm_slice target)
{
    struct merge_it *m = (struct merge_it *)it;

    for (size_t i = 0; i < m->n; i++) {
        m->kids[i]->ops->seek(m->kids[i], target);
    }
    rebuild(m);
}

static void
mg_next(lsm_it *it)
{
    struct merge_it *m = (struct merge_it *)it;
    lsm_it *k = m->kids[m->heap[0].kid];

    k->ops->next(k);
    if (!k->ops->valid(k)) {
        int st = k->ops->status(k);
        if (st != 0) {
            m->status = st;
            m->hn = 0;
            return;
        }
        m->heap[0] = m->heap[--m->hn];
        m->second = 0;
    } else {
        m->heap[0].key = k->ops->key(k);
    }
    if (m->hn <= 1) {
        return;
    }
    if (m->second == 0) {
        m->second = m->hn > 2 && ent_less(&m->heap[2], &m->heap[1]) ? 2 : 1;
    }
    if (ent_less(&m->heap[0], &m->heap[m->second])) {
        return; /* still the smallest: the heap is unchanged */
    }
    sift_down(m, 0);
    m->second = 0;
}

static struct lsm_slice
mg_key(lsm_it *it)
{
    struct merge_it *m = (struct merge_it *)it;
    return m->heap[0].key;
}

static struct lsm_slice
mg_value(lsm_it *it)
{
    struct merge_it *m = (struct merge_it *)it;
    lsm_it *k = m->kids[m->heap[0].kid];
    return k->ops->value(k);
}

static int
mg_status(lsm_it *it)
{
    return ((struct merge_it *)it)->status;
}

static void
mg_destroy(lsm_it *it)
{
    struct merge_it *m = (struct merge_it *)it;

    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (m->kids[i] != NULL) {
            m->kids[i]->ops->destroy(m->kids[i]);
        }
    }
    free(m->kids);
    free(m->heap);
    free(m);
}

static const struct lsm_it_ops merge_ops = {
    .valid = mg_valid,
    .seek_first = mg_seek_first,
    .seek = mg_seek,
    .next = mg_next,
    .key = mg_key,
    .value = mg_value,
    .status = mg_status,
    .destroy = mg_destroy,
};

int
lsm_merge_iter(lsm_it **children, size_t n, lsm_it **out)
{
    struct merge_it *m = calloc(1, sizeof(*m));

    if (m != NULL) {
        m->kids = malloc((n ? n : 1) * sizeof(*m->kids));
        m->heap = malloc((n ? n : 1) * sizeof(*m->heap));
    }
    if (m == NULL || m->kids == NULL || m->heap == NULL) {
        for (size_t i = 0; i < n; i++) {
            children[i]->ops->destroy(children[i]);
        }
        if (m != NULL) {
            free(m->kids);
            free(m->heap);
            free(m);
        }
        return KVD_ENOMEM;
    }
    m->base.ops = &merge_ops;
    memcpy(m->kids, children, n * sizeof(*children));
    m->n = n;
    *out = &m->base;
    return 0;
}

/* ---- level iterator ---- */

struct level_it {
    lsm_it base;
    lsm_db *db;
    lsm_version *v;
    int level;
    bool fill;
    size_t idx; /* file of cur */
    lsm_it *cur;
    int status;
};

static void
lv_set_file(struct level_it *l, size_t idx)
{
    lsm_table *t;
    int rc;

    if (l->cur != NULL) {
        l->cur->ops->destroy(l->cur);
        l->cur = NULL;
    }
    l->idx = idx;
    if (idx >= l->v->nfiles[l->level]) {
        return;
    }
    rc = lsm_tcache_get(l->db, l->v->files[l->level][idx], &t);
    if (rc == 0) {
        rc = lsm_table_iter(t, l->fill, &l->cur);
        lsm_table_unref(t); /* the iterator holds its own reference */
    }
    if (rc != 0) {
        l->status = rc;
        l->cur = NULL;
    }
}

/* Move on to the next file while the current one is exhausted. */
static void
lv_skip_empty(struct level_it *l)
{
    while (l->status == 0 && l->cur != NULL && !l->cur->ops->valid(l->cur)) {
        int st = l->cur->ops->status(l->cur);
        if (st != 0) {
            l->status = st;
            return;
        }
        lv_set_file(l, l->idx + 1);
        if (l->cur != NULL) {
            l->cur->ops->seek_first(l->cur);
        }
    }
}

static bool
lv_valid(lsm_it *it)
{
    struct level_it *l = (struct level_it *)it;
    return l->status == 0 && l->cur != NULL && l->cur->ops->valid(l->cur);
}

static void
lv_seek_first(lsm_it *it)
{
    struct level_it *l = (struct level_it *)it;

    l->status = 0;
    lv_set_file(l, 0);
    if (l->cur != NULL) {
        l->cur->ops->seek_first(l->cur);
    }
    lv_skip_empty(l);
}

static void
lv_seek(lsm_it *it, struct lsm_slice target)
{
    struct level_it *l = (struct level_it *)it;
    size_t lo = 0;
    size_t hi = l->v->nfiles[l->level];

    /* the first file whose largest key >= target */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lsm_ikey_cmp(l->v->files[l->level][mid]->largest, target) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    l->status = 0;
    lv_set_file(l, lo);
    if (l->cur != NULL) {
        l->cur->ops->seek(l->cur, target);
    }
    lv_skip_empty(l);
}

static void
lv_next(lsm_it *it)
{
    struct level_it *l = (struct level_it *)it;

    l->cur->ops->next(l->cur);
    lv_skip_empty(l);
}

static struct lsm_slice
lv_key(lsm_it *it)
{
    struct level_it *l = (struct level_it *)it;
    return l->cur->ops->key(l->cur);
}

static struct lsm_slice
lv_value(lsm_it *it)
{
    struct level_it *l = (struct level_it *)it;
    return l->cur->ops->value(l->cur);
}

static int
lv_status(lsm_it *it)
{
    struct level_it *l = (struct level_it *)it;

    if (l->status != 0) {
        return l->status;
    }
    return l->cur != NULL ? l->cur->ops->status(l->cur) : 0;
}

static void
lv_destroy(lsm_it *it)
{
    struct level_it *l = (struct level_it *)it;

    if (l == NULL) {
        return;
    }
    if (l->cur != NULL) {
        l->cur->ops->destroy(l->cur);
    }
    lsm_version_unref(l->v);
    free(l);
}

static const struct lsm_it_ops level_ops = {
    .valid = lv_valid,
    .seek_first = lv_seek_first,
    .seek = lv_seek,
    .next = lv_next,
    .key = lv_key,
    .value = lv_value,
    .status = lv_status,
    .destroy = lv_destroy,
};

int
lsm_level_iter(lsm_db *db, lsm_version *v, int level, bool fill_cache,
               lsm_it **out)
{
    struct level_it *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        return KVD_ENOMEM;
    }
    l->base.ops = &level_ops;
    l->db = db;
    lsm_version_ref(v);
    l->v = v;
    l->level = level;
    l->fill = fill_cache;
    l->idx = v->nfiles[level];
    *out = &l->base;
    return 0;
}

/* ---- view iterator ---- */

int
lsm_view_iter(lsm_db *db, struct lsm_view *vw, lsm_it **out)
{
    lsm_it **kids;
    size_t n = 0;
    size_t cap = 2 + vw->v->nfiles[0] + LSM_LEVELS;
    uint64_t bytes = 0;
    bool fill;
    int rc = 0;

    /* a scan fills the block cache only when every table fits in it;
     * otherwise it would push out the blocks gets keep hot, for blocks
     * it reads once (cached blocks are used either way) */
    for (int l = 0; l < LSM_LEVELS; l++) {
        bytes += vw->v->level_bytes[l];
    }
    fill = bytes <= db->opts.block_cache_size;

    kids = calloc(cap, sizeof(*kids));
    if (kids == NULL) {
        return KVD_ENOMEM;
    }
    rc = lsm_mem_iter(vw->mem, &kids[n]);
    n += rc == 0;
    if (rc == 0 && vw->imm != NULL) {
        rc = lsm_mem_iter(vw->imm, &kids[n]);
        n += rc == 0;
    }
    for (size_t i = 0; rc == 0 && i < vw->v->nfiles[0]; i++) {
        lsm_table *t;
        rc = lsm_tcache_get(db, vw->v->files[0][i], &t);
        if (rc == 0) {
            rc = lsm_table_iter(t, fill, &kids[n]);
            n += rc == 0;
            lsm_table_unref(t);
        }
    }
    for (int l = 1; rc == 0 && l < LSM_LEVELS; l++) {
        if (vw->v->nfiles[l] > 0) {
            rc = lsm_level_iter(db, vw->v, l, fill, &kids[n]);
            n += rc == 0;
        }
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            kids[i]->ops->destroy(kids[i]);
        }
        free(kids);
        return rc;
    }
    rc = lsm_merge_iter(kids, n, out);
    free(kids);
    return rc;
}
