/*
 * bt_alloc.c -- memory and file pages of the btree engine's writer.
 *
 * In-memory pages (struct bt_mpage) come from a small pool; a page the
 * working tree drops is retired with the version from which on no
 * snapshot reaches it, and goes back to the pool once every reader slot
 * holds that version or a later one (bt_reclaim).
 *
 * File pages: `ready` holds pages any commit may reuse now; `freed`
 * holds pages the working tree dropped, each with the version it was
 * dropped in and, when a durable tree still uses it, the commit that
 * makes that tree obsolete: such a page waits for both (bt_promote).
 * New pages come from `ready` (lowest first, so the file stays dense)
 * or from the end of the file.
 *
 * Everything here runs under wmu.
 */
#include "bt.h"

#include <stdlib.h>
#include <sys/mman.h>

int
bt_vec_push(struct bt_vec64 *v, uint64_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        uint64_t *nv = realloc(v->v, cap * sizeof(*nv));
        if (nv == NULL) {
            return KVD_ENOMEM;
        }
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

void
bt_vec_free(struct bt_vec64 *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

uint64_t
bt_min_reader(bt_db *db)
{
    uint64_t m = atomic_load(&db->ver);

    for (unsigned i = 0; i < BT_NSLOTS; i++) {
        uint64_t v = atomic_load(&db->slots[i].ver);
        if (v < m) {
            m = v;
        }
    }
    pthread_mutex_lock(&db->ovf_mu);
    for (size_t i = 0; i < db->ovf_vers.n; i++) {
        if (db->ovf_vers.v[i] < m) {
            m = db->ovf_vers.v[i];
        }
    }
    pthread_mutex_unlock(&db->ovf_mu);
    return m;
}

struct bt_mpage *
bt_mp_new(bt_db *db)
{
    struct bt_mpage *mp = db->pool;

    if (mp != NULL) {
        db->pool = mp->next;
        db->pool_n--;
    } else {
        mp = aligned_alloc(64, BT_MPAGE_HDR + db->psize);
        if (mp == NULL) {
            return NULL;
        }
    }
    if (bt_vec_push(&db->created, (uint64_t)(uintptr_t)mp) != 0) {
        mp->next = db->pool;
        db->pool = mp;
        db->pool_n++;
        return NULL;
    }
    mp->next = NULL;
    mp->born = db->pub_ver + 1;
    mp->retired = 0;
    mp->pgno = 0;
    db->mem_pages++;
    db->dirty++;
    return mp;
}

static void
mp_release(bt_db *db, struct bt_mpage *mp)
{
    db->mem_pages--;
    /* keep as many as a flush frees: the next ones are made at once */
    if (db->pool_n < 256 + db->opts.dirty_limit / db->psize) {
        mp->next = db->pool;
        db->pool = mp;
        db->pool_n++;
    } else {
        free(mp);
    }
}

void
bt_mp_retire(bt_db *db, struct bt_mpage *mp)
{
    mp->retired = db->pub_ver + 1;
    mp->next = NULL;
    if (db->retire_tail != NULL) {
        db->retire_tail->next = mp;
    } else {
        db->retire_head = mp;
    }
    db->retire_tail = mp;
    db->retire_n++;
    db->dirty--;
}

void
bt_promote(bt_db *db, uint64_t minv)
{
    size_t k = 0;

    /* entries come in the order the pages were dropped (versions and
     * commits never decrease), so the ready ones form a prefix; a page
     * behind one that waits waits too, which is only conservative */
    while (k < db->freed.n) {
        struct bt_freed *f = &db->freed.v[k];
        if (f->ver > minv || (f->txn != 0 && f->txn > db->durable)) {
            break;
        }
        if (bt_vec_push(&db->ready, f->pgno) != 0) {
            break;
        }
        k++;
    }
    if (k > 0) {
        memmove(db->freed.v, db->freed.v + k,
                (db->freed.n - k) * sizeof(*db->freed.v));
        db->freed.n -= k;
    }
}

void
bt_reclaim(bt_db *db)
{
    uint64_t m = bt_min_reader(db);

    while (db->retire_head != NULL && db->retire_head->retired <= m) {
        struct bt_mpage *mp = db->retire_head;
        db->retire_head = mp->next;
        if (db->retire_head == NULL) {
            db->retire_tail = NULL;
        }
        db->retire_n--;
        mp_release(db, mp);
    }
    while (db->sretire_head != NULL && db->sretire_head->retired <= m) {
        struct bt_snap *s = db->sretire_head;
        db->sretire_head = s->next;
        if (db->sretire_head == NULL) {
            db->sretire_tail = NULL;
        }
        s->next = db->spool;
        db->spool = s;
    }
    for (struct bt_map **pp = &db->mretire_head; *pp != NULL;) {
        struct bt_map *mm = *pp;
        if (mm->retired <= m) {
            *pp = mm->next;
            munmap(mm->base, mm->bytes);
            free(mm);
        } else {
            pp = &mm->next;
        }
    }
    bt_promote(db, m);
}

void
bt_pool_free_all(bt_db *db)
{
    while (db->retire_head != NULL) {
        struct bt_mpage *mp = db->retire_head;
        db->retire_head = mp->next;
        free(mp);
    }
    db->retire_tail = NULL;
    while (db->pool != NULL) {
        struct bt_mpage *mp = db->pool;
        db->pool = mp->next;
        free(mp);
    }
    while (db->sretire_head != NULL) {
        struct bt_snap *s = db->sretire_head;
        db->sretire_head = s->next;
        free(s);
    }
    while (db->spool != NULL) {
        struct bt_snap *s = db->spool;
        db->spool = s->next;
        free(s);
    }
    while (db->mretire_head != NULL) {
        struct bt_map *mm = db->mretire_head;
        db->mretire_head = mm->next;
        munmap(mm->base, mm->bytes);
        free(mm);
    }
}

int
bt_free_pgno(bt_db *db, uint64_t pgno, bool durable_page)
{
    struct bt_freed f = {pgno, db->pub_ver + 1, durable_page ? db->txn + 1 : 0};

    if (db->freed.n == db->freed.cap) {
        size_t cap = db->freed.cap ? db->freed.cap * 2 : 64;
        struct bt_freed *nv = realloc(db->freed.v, cap * sizeof(*nv));
        if (nv == NULL) {
            return KVD_ENOMEM;
        }
        db->freed.v = nv;
        db->freed.cap = cap;
    }
    db->freed.v[db->freed.n++] = f;
    return 0;
}

static int
cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Sort a[0, m) descending by page number (< 2^32): four byte-wise
 * counting passes through b (m entries), no comparisons. */
static void
radix_desc(uint64_t *a, uint64_t *b, size_t m)
{
    for (unsigned shift = 0; shift < 32; shift += 8) {
        size_t count[256] = {0}, pos = 0;
        uint64_t *t;
        for (size_t i = 0; i < m; i++) {
            count[255 - ((a[i] >> shift) & 255)]++;
        }
        for (unsigned d = 0; d < 256; d++) {
            size_t c = count[d];
            count[d] = pos;
            pos += c;
        }
        for (size_t i = 0; i < m; i++) {
            b[count[255 - ((a[i] >> shift) & 255)]++] = a[i];
        }
        t = a;
        a = b;
        b = t;
    }
}

/* Sort ready (descending, lowest last). Pages are appended unsorted (a
 * promoted batch, a rolled-back run) behind a sorted prefix: sort only
 * the appended part and merge, rather than sorting everything again. */
static void
ready_sort(bt_db *db)
{
    size_t n = db->ready.n, s = db->ready_nsorted;
    uint64_t *v = db->ready.v, *tail;
    size_t m, i, j, k;

    if (s > n) {
        s = n;
    }
    m = n - s;
    if (m == 0) {
        db->ready_nsorted = n;
        return;
    }
    tail = malloc(2 * m * sizeof(*tail));
    if (tail == NULL) {
        qsort(v, n, sizeof(uint64_t), cmp_desc);
        db->ready_nsorted = n;
        return;
    }
    memcpy(tail, v + s, m * sizeof(*tail));
    radix_desc(tail, tail + m, m);
    /* merge from the low end: the smallest of both runs goes last */
    i = s;
    j = m;
    k = n;
    while (j > 0) {
        if (i > 0 && v[i - 1] < tail[j - 1]) {
            v[--k] = v[--i];
        } else {
            v[--k] = tail[--j];
        }
    }
    free(tail);
    db->ready_nsorted = n;
}

static int
extend(bt_db *db, uint64_t n, uint64_t *pgno)
{
    if (db->work.npages + n >= UINT32_MAX) {
        return KVD_ENOSPC;
    }
    *pgno = db->work.npages;
    db->work.npages += n;
    return 0;
}

int
bt_alloc_page(bt_db *db, uint64_t *pgno)
{
    if (db->ready.n == 0) {
        return extend(db, 1, pgno);
    }
    ready_sort(db);
    *pgno = db->ready.v[--db->ready.n];
    db->ready_nsorted = db->ready.n;
    return 0;
}

int
bt_alloc_run(bt_db *db, uint64_t n, uint64_t *pgno)
{
    size_t len = db->ready.n;

    if (n == 1) {
        return bt_alloc_page(db, pgno);
    }
    ready_sort(db);
    /* descending order: a run p, p+1, ... sits at v[j], v[j-1], ... */
    for (size_t j = len; j >= n; j--) {
        uint64_t p = db->ready.v[j - 1];
        size_t k = 1;
        while (k < n && db->ready.v[j - 1 - k] == p + k) {
            k++;
        }
        if (k == n) {
            size_t lo = j - n; /* slots [lo, j) hold the run */
            memmove(db->ready.v + lo, db->ready.v + j,
                    (len - j) * sizeof(uint64_t));
            db->ready.n -= n;
            db->ready_nsorted = db->ready.n;
            *pgno = p;
            return 0;
        }
    }
    return extend(db, n, pgno);
}
