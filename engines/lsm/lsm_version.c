/*
 * lsm_version.c -- immutable versions of the table set (lsm_version.h):
 * building one from a base and an edit, compaction scores, and the range
 * queries the get path and the compaction picker need.
 *
 * Thread-safety: a version never changes after lsm_version_apply returns
 * it, so any thread holding a reference reads it without locks. Refcounts
 * of versions and files are atomics; the last unref frees, and an
 * obsolete file's last unref calls the engine's `gone` hook first.
 */
#include "lsm_version.h"

#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t version_ids;

/* ---- files ---- */

static struct lsm_file *
file_new(const struct lsm_edit_add *a)
{
    struct lsm_file *f = calloc(1, sizeof(*f));
    unsigned char *keys;

    if (f == NULL) {
        return NULL;
    }
    keys = malloc(a->smallest.n + a->largest.n + 1);
    if (keys == NULL) {
        free(f);
        return NULL;
    }
    memcpy(keys, a->smallest.p, a->smallest.n);
    memcpy(keys + a->smallest.n, a->largest.p, a->largest.n);
    atomic_init(&f->refs, 1);
    atomic_init(&f->obsolete, false);
    atomic_init(&f->table, NULL);
    f->number = a->number;
    f->size = a->size;
    f->entries = a->entries;
    f->smallest.p = keys;
    f->smallest.n = a->smallest.n;
    f->largest.p = keys + a->smallest.n;
    f->largest.n = a->largest.n;
    return f;
}

static void
file_unref(const struct lsm_vconf *conf, struct lsm_file *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    if (atomic_load(&f->obsolete) && conf != NULL && conf->gone != NULL) {
        conf->gone(conf->ctx, f);
    }
    if (atomic_load(&f->table) != NULL && conf != NULL &&
        conf->release != NULL) {
        conf->release(conf->ctx, f);
    }
    free((void *)(uintptr_t)f->smallest.p);
    free(f);
}

/* ---- versions ---- */

uint64_t
lsm_level_max_bytes(const struct lsm_vconf *c, int level)
{
    uint64_t b = c->level1_size;

    for (int i = 1; i < level; i++) {
        b *= 10;
    }
    return b;
}

static void
compute_score(lsm_version *v)
{
    v->cscore_level = 0;
    v->cscore = (double)v->nfiles[0] / (double)v->conf->l0_trigger;
    for (int l = 1; l < LSM_LEVELS - 1; l++) {
        double s =
            (double)v->level_bytes[l] / (double)lsm_level_max_bytes(v->conf, l);
        if (s > v->cscore) {
            v->cscore = s;
            v->cscore_level = l;
        }
    }
}

int
lsm_version_create(const struct lsm_vconf *conf, lsm_version **out)
{
    lsm_version *v = calloc(1, sizeof(*v));

    if (v == NULL) {
        return KVD_ENOMEM;
    }
    atomic_init(&v->refs, 1);
    v->conf = conf;
    v->id = atomic_fetch_add(&version_ids, 1) + 1;
    compute_score(v);
    *out = v;
    return 0;
}

void
lsm_version_ref(lsm_version *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void
lsm_version_unref(lsm_version *v)
{
    if (v == NULL ||
        atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (int l = 0; l < LSM_LEVELS; l++) {
        for (size_t i = 0; i < v->nfiles[l]; i++) {
            file_unref(v->conf, v->files[l][i]);
        }
        free(v->files[l]);
    }
    free(v);
}

static bool
edit_deletes(const struct lsm_edit *e, int level, uint64_t number)
{
    for (size_t i = 0; i < e->ndels; i++) {
        if (e->dels[i].level == level && e->dels[i].number == number) {
            return true;
        }
    }
    return false;
}

static struct lsm_file *
base_find(const lsm_version *base, uint64_t number)
{
    for (int l = 0; l < LSM_LEVELS; l++) {
        for (size_t i = 0; i < base->nfiles[l]; i++) {
            if (base->files[l][i]->number == number) {
                return base->files[l][i];
            }
        }
    }
    return NULL;
}

static int
cmp_l0(const void *a, const void *b)
{
    const struct lsm_file *fa = *(struct lsm_file *const *)a;
    const struct lsm_file *fb = *(struct lsm_file *const *)b;

    /* newest (highest number) first */
    return fa->number < fb->number ? 1 : fa->number > fb->number ? -1 : 0;
}

static int
cmp_smallest(const void *a, const void *b)
{
    const struct lsm_file *fa = *(struct lsm_file *const *)a;
    const struct lsm_file *fb = *(struct lsm_file *const *)b;

    return lsm_ikey_cmp(fa->smallest, fb->smallest);
}

static int
user_cmp_slices(struct lsm_slice a, struct lsm_slice b)
{
    return lsm_user_cmp(a.p, a.n, b.p, b.n);
}

int
lsm_version_apply(const lsm_version *base, const struct lsm_edit *e,
                  lsm_version **out)
{
    lsm_version *v;
    int rc;

    /* every deletion must name a file of base at that level */
    for (size_t i = 0; i < e->ndels; i++) {
        bool found = false;
        int l = e->dels[i].level;
        for (size_t j = 0; j < base->nfiles[l] && !found; j++) {
            found = base->files[l][j]->number == e->dels[i].number;
        }
        if (!found) {
            return KVD_ECORRUPT;
        }
    }
    rc = lsm_version_create(base->conf, &v);
    if (rc != 0) {
        return rc;
    }
    for (int l = 0; l < LSM_LEVELS; l++) {
        size_t cap = base->nfiles[l];
        size_t n = 0;

        for (size_t i = 0; i < e->nadds; i++) {
            cap += e->adds[i].level == l;
        }
        if (cap == 0) {
            continue;
        }
        v->files[l] = malloc(cap * sizeof(*v->files[l]));
        if (v->files[l] == NULL) {
            rc = KVD_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < base->nfiles[l]; i++) {
            struct lsm_file *f = base->files[l][i];
            if (!edit_deletes(e, l, f->number)) {
                atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
                v->files[l][n++] = f;
                v->nfiles[l] = n;
                v->level_bytes[l] += f->size;
            }
        }
        for (size_t i = 0; i < e->nadds; i++) {
            const struct lsm_edit_add *a = &e->adds[i];
            struct lsm_file *f;
            if (a->level != l) {
                continue;
            }
            /* a file moved down a level keeps its object */
            f = base_find(base, a->number);
            if (f != NULL) {
                bool moved = false;
                for (size_t j = 0; j < e->ndels && !moved; j++) {
                    moved = e->dels[j].number == a->number;
                }
                if (!moved) {
                    rc = KVD_ECORRUPT; /* added while still listed */
                    goto fail;
                }
                atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
            } else {
                f = file_new(a);
                if (f == NULL) {
                    rc = KVD_ENOMEM;
                    goto fail;
                }
            }
            v->files[l][n++] = f;
            v->nfiles[l] = n;
            v->level_bytes[l] += f->size;
        }
        qsort(v->files[l], n, sizeof(*v->files[l]),
              l == 0 ? cmp_l0 : cmp_smallest);
        for (size_t i = 1; i < n; i++) {
            if (v->files[l][i]->number == v->files[l][i - 1]->number) {
                rc = KVD_ECORRUPT; /* listed twice */
                goto fail;
            }
            if (l > 0 &&
                user_cmp_slices(lsm_ikey_user(v->files[l][i - 1]->largest),
                                lsm_ikey_user(v->files[l][i]->smallest)) >= 0) {
                rc = KVD_ECORRUPT; /* overlapping ranges in a level */
                goto fail;
            }
        }
    }
    compute_score(v);
    *out = v;
    return 0;
fail:
    lsm_version_unref(v);
    return rc;
}

void
lsm_version_mark_obsolete(const lsm_version *base, const struct lsm_edit *e)
{
    for (size_t i = 0; i < e->ndels; i++) {
        bool readded = false;
        struct lsm_file *f;
        for (size_t j = 0; j < e->nadds && !readded; j++) {
            readded = e->adds[j].number == e->dels[i].number;
        }
        if (readded) {
            continue;
        }
        f = base_find(base, e->dels[i].number);
        if (f != NULL) {
            atomic_store(&f->obsolete, true);
        }
    }
}

/* ---- queries ---- */

ptrdiff_t
lsm_version_find(const lsm_version *v, int level, const void *k, size_t kn)
{
    size_t lo = 0;
    size_t hi = v->nfiles[level];
    struct lsm_file *f;
    struct lsm_slice u;

    /* the first file whose largest user key >= k */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct lsm_slice l = lsm_ikey_user(v->files[level][mid]->largest);
        if (lsm_user_cmp(l.p, l.n, k, kn) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo >= v->nfiles[level]) {
        return -1;
    }
    f = v->files[level][lo];
    u = lsm_ikey_user(f->smallest);
    if (lsm_user_cmp(u.p, u.n, k, kn) > 0) {
        return -1;
    }
    return (ptrdiff_t)lo;
}

static bool
file_overlaps(const struct lsm_file *f, const struct lsm_slice *lo,
              const struct lsm_slice *hi)
{
    struct lsm_slice fs = lsm_ikey_user(f->smallest);
    struct lsm_slice fl = lsm_ikey_user(f->largest);

    if (lo != NULL && user_cmp_slices(fl, *lo) < 0) {
        return false;
    }
    if (hi != NULL && user_cmp_slices(fs, *hi) > 0) {
        return false;
    }
    return true;
}

bool
lsm_version_overlaps(const lsm_version *v, int level,
                     const struct lsm_slice *lo, const struct lsm_slice *hi)
{
    if (level > 0 && lo != NULL) {
        /* sorted, disjoint: only the first file ending at or after lo */
        size_t a = 0;
        size_t b = v->nfiles[level];
        while (a < b) {
            size_t mid = a + (b - a) / 2;
            struct lsm_slice l = lsm_ikey_user(v->files[level][mid]->largest);
            if (user_cmp_slices(l, *lo) < 0) {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        return a < v->nfiles[level] &&
               file_overlaps(v->files[level][a], lo, hi);
    }
    for (size_t i = 0; i < v->nfiles[level]; i++) {
        if (file_overlaps(v->files[level][i], lo, hi)) {
            return true;
        }
    }
    return false;
}

int
lsm_version_overlapping(const lsm_version *v, int level,
                        const struct lsm_slice *lo, const struct lsm_slice *hi,
                        struct lsm_file ***out, size_t *n)
{
    struct lsm_slice l = {NULL, 0}; /* set when has_l / has_h */
    struct lsm_slice h = {NULL, 0};
    bool has_l = lo != NULL;
    bool has_h = hi != NULL;
    size_t start = *n;
    struct lsm_file **arr;

    if (has_l) {
        l = *lo;
    }
    if (has_h) {
        h = *hi;
    }
    arr = realloc(*out, (start + v->nfiles[level] + 1) * sizeof(*arr));
    if (arr == NULL) {
        return KVD_ENOMEM;
    }
    *out = arr;
restart:
    *n = start;
    for (size_t i = 0; i < v->nfiles[level]; i++) {
        struct lsm_file *f = v->files[level][i];
        struct lsm_slice fs;
        struct lsm_slice fl;
        if (!file_overlaps(f, has_l ? &l : NULL, has_h ? &h : NULL)) {
            continue;
        }
        arr[(*n)++] = f;
        if (level != 0) {
            continue;
        }
        /* L0 files overlap each other: widen the range to this file and
         * start over, so no newer file that overlaps is left behind */
        fs = lsm_ikey_user(f->smallest);
        fl = lsm_ikey_user(f->largest);
        if (has_l && user_cmp_slices(fs, l) < 0) {
            l = fs;
            goto restart;
        }
        if (has_h && user_cmp_slices(fl, h) > 0) {
            h = fl;
            goto restart;
        }
    }
    return 0;
}
