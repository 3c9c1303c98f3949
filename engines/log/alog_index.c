/*
 * alog_index.c -- the sharded compact index of the log engine (see
 * alog_index.h for the layout, the ordering property and the locking).
 *
 * Slot arrays and recovery's sequence arrays live in address-space
 * reservations (struct alog_ixmap), not the heap: they are large, grow
 * and shrink in place, and what a shrink frees goes back to the system
 * at once. Key arena blocks come from the index's block pool.
 */
#include "alog_index.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alog.h"
#include "kvd/kit_hash.h"

#define ALOG_INIT_CAP 16u
/* grow a shard when more than 9 in 10 home slots would be used, by 9/8:
 * the load stays between 80% and 90% (a rehash moves slots only, no key
 * is read, so growing often is cheap) */
#define ALOG_LOAD_NUM 9u
#define ALOG_LOAD_DEN 10u

/*
 * kvd_hash64 under the index's seed, drawn at open (kvd_hash_seed):
 * clients choose the keys, and with a hash known in advance they could aim
 * many keys at one run of slots and make every probe walk it. Iteration
 * positions (pos = hash) are therefore valid only while the store stays
 * open, as the memory engine's are.
 */
uint64_t
alog_hash(const struct alog_index *ix, const void *key, size_t klen)
{
    uint64_t h = kvd_hash64(ix->seed, key, klen);

    return h == UINT64_MAX ? h - 1 : h;
}

/* ---- mapped arrays ---- */

/* A zeroed mapping of bytes whose first `touch` bytes are faulted in by
 * one call (they are written at once; a fault per page costs far more,
 * above all in a virtual machine). The rest stays untouched: no memory. */
static void *
ix_map(size_t bytes, size_t touch)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        return NULL;
    }
#ifdef MADV_POPULATE_WRITE
    if (touch >= 4096) {
        /* failure (an older kernel) only costs the faults */
        (void)madvise(p, touch & ~(size_t)4095, MADV_POPULATE_WRITE);
    }
#else
    (void)touch;
#endif
    return p;
}

static void
ix_unmap(void *p, size_t bytes)
{
    if (p != NULL) {
        munmap(p, bytes);
    }
}

/* ---- reservations (struct alog_ixmap) ---- */

#define IX_PAGE      4096u
#define IX_RESV_MIN  ((size_t)1 << 20)

static size_t
ix_page_up(size_t n)
{
    return (n + IX_PAGE - 1) & ~(size_t)(IX_PAGE - 1);
}

/* Make at least need bytes of m read-write (need <= m->resv), and the
 * first touch bytes (those written at once) faulted in. The prefix grows
 * by at least half again, so an array growing by 1/8 at a time costs an
 * mprotect every few growths, not one each. Faulting in is one call per
 * growth: a fault per page costs far more, above all in a virtual
 * machine. It stops at touch: going 1/8 further (the next growth's home
 * slots) saved every other call but kept that eighth of the slot arrays
 * resident for good, 3 MB (3 bytes a key) at 1,000,000 keys. 0, or -1
 * (m unchanged). */
static int
ixmap_ensure(struct alog_ixmap *m, size_t need, size_t touch)
{
    if (need > m->rw) {
        size_t rw =
            ix_page_up(need > m->rw + m->rw / 2 ? need : m->rw + m->rw / 2);
        rw = rw > m->resv ? m->resv : rw;
        if (need > rw ||
            mprotect((char *)m->base + m->rw, rw - m->rw,
                     PROT_READ | PROT_WRITE) != 0) {
            return -1;
        }
        m->rw = rw;
    }
#ifdef MADV_POPULATE_WRITE
    if (touch >= m->pop + IX_PAGE) {
        size_t to = ix_page_up(touch);
        to = to > m->rw ? m->rw : to;
        /* failure (an older kernel) only costs the faults */
        (void)madvise((char *)m->base + m->pop, to - m->pop,
                      MADV_POPULATE_WRITE);
        m->pop = to;
    }
#else
    (void)touch;
#endif
    return 0;
}

/* A fresh reservation for an array of need bytes, 4 times that (at least
 * IX_RESV_MIN: 256 shards of it are address space, not memory), with
 * need bytes read-write. 0, or -1 (m zeroed). */
static int
ixmap_reserve(struct alog_ixmap *m, size_t need, size_t touch)
{
    size_t resv = need > IX_RESV_MIN / 4 ? need * 4 : IX_RESV_MIN;
    void *p;

    memset(m, 0, sizeof(*m));
    if (need > SIZE_MAX / 8) {
        return -1;
    }
    resv = ix_page_up(resv);
    p = mmap(NULL, resv, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
    if (p == MAP_FAILED) {
        return -1;
    }
    m->base = p;
    m->resv = resv;
    if (ixmap_ensure(m, need, touch) != 0) {
        munmap(p, resv);
        memset(m, 0, sizeof(*m));
        return -1;
    }
    return 0;
}

/* Give back the read-write bytes of m past keep (they must be zero or
 * unused: they read as zero when made read-write again). Failure only
 * keeps the memory. */
static void
ixmap_trim(struct alog_ixmap *m, size_t keep)
{
    size_t k = ix_page_up(keep);

    if (m->base == NULL || m->resv == 0 || k >= m->rw) {
        return;
    }
    if (madvise((char *)m->base + k, m->rw - k, MADV_DONTNEED) == 0 &&
        mprotect((char *)m->base + k, m->rw - k, PROT_NONE) == 0) {
        m->rw = k;
    }
    m->pop = m->pop < k ? m->pop : k; /* DONTNEED dropped the rest */
}

static void
ixmap_release(struct alog_ixmap *m)
{
    if (m->base != NULL && m->resv != 0) { /* resv 0: borrowed */
        munmap(m->base, m->resv);
    }
    memset(m, 0, sizeof(*m));
}

/* Overflow tail after the home slots: runs that would pass the end go
 * there instead of wrapping (wrapping would break the order). Untouched
 * pages of it cost no memory. */
static uint32_t
overflow_slots(uint32_t cap)
{
    return cap / 8 + 32;
}

/* The index's memory as the stats report it. Slots count by home slots,
 * not by read-write bytes: the home slots are what is faulted in and
 * written, while the rest of the read-write prefix (the overflow tail, and
 * the room a step of ixmap_ensure adds ahead of growth) is mostly pages
 * never touched, which cost no memory; the reservation beyond it is
 * address space only. */
static void
shard_mem_update(struct alog_shard *sh)
{
    sh->mem_bytes = (uint64_t)sh->cap * sizeof(struct alog_ent) + sh->ka.bytes +
                    (uint64_t)sh->ka.blks_cap * sizeof(void *) +
                    (sh->rseq != NULL ? (uint64_t)sh->nslots * 8 : 0);
}

/* ---- key arena ---- */

/* A block from the pool, or NULL (ENOMEM). */
static unsigned char *
kpool_get(struct alog_kpool *kp)
{
    unsigned char *b = NULL;

    pthread_mutex_lock(&kp->mu);
    if (kp->free != NULL) {
        b = kp->free;
        memcpy(&kp->free, b, sizeof(void *));
    } else {
        if (kp->carve_left == 0 && kp->nchunks == kp->chunks_cap) {
            size_t cap = kp->chunks_cap ? kp->chunks_cap * 2 : 16;
            void **nc = realloc(kp->chunks, cap * sizeof(*nc));
            if (nc != NULL) {
                kp->chunks = nc;
                kp->chunks_cap = cap;
            }
        }
        if (kp->carve_left == 0 && kp->nchunks < kp->chunks_cap) {
            kp->carve = ix_map(ALOG_KPOOL_CHUNK_BYTES, ALOG_KPOOL_CHUNK_BYTES);
            if (kp->carve != NULL) {
                kp->chunks[kp->nchunks++] = kp->carve;
                kp->carve_left = ALOG_KPOOL_CHUNK_BYTES;
            }
        }
        if (kp->carve_left > 0) {
            b = kp->carve;
            kp->carve += ALOG_KBLK_BYTES;
            kp->carve_left -= ALOG_KBLK_BYTES;
        }
    }
    pthread_mutex_unlock(&kp->mu);
    return b;
}

static void
kpool_put(struct alog_kpool *kp, unsigned char *b)
{
    if (kp->releasing) {
        /* the whole pool goes: linking the block would only dirty it
         * (a copy-on-write fault for a block of the index file's map) */
        return;
    }
    pthread_mutex_lock(&kp->mu);
    memcpy(b, &kp->free, sizeof(void *));
    kp->free = b;
    pthread_mutex_unlock(&kp->mu);
}

static void
kpool_release(struct alog_kpool *kp)
{
    for (size_t i = 0; i < kp->nchunks; i++) {
        ix_unmap(kp->chunks[i], ALOG_KPOOL_CHUNK_BYTES);
    }
    free(kp->chunks);
    kp->chunks = NULL;
    kp->nchunks = 0;
    kp->chunks_cap = 0;
    kp->carve = NULL;
    kp->carve_left = 0;
    kp->free = NULL;
}

/* Room in ka's block table for one more block. 0, or -1 (ENOMEM, or the
 * table at ALOG_KBLK_MAX). */
static int
ka_blks_reserve(struct alog_karena *ka)
{
    if (ka->nblks >= ALOG_KBLK_MAX) {
        return -1;
    }
    if (ka->nblks == ka->blks_cap) {
        uint32_t cap = ka->blks_cap ? ka->blks_cap * 2 : 4;
        unsigned char **nb = realloc(ka->blks, cap * sizeof(*nb));
        if (nb == NULL) {
            return -1;
        }
        ka->blks = nb;
        ka->blks_cap = cap;
    }
    return 0;
}

/* n bytes in ka; *kref names them. 0, or -1 on ENOMEM. */
static int
ka_alloc(struct alog_karena *ka, size_t n, uint32_t *kref)
{
    if (ka->nblks == 0 || ka->pos + n > ALOG_KBLK_BYTES) {
        int own = n > ALOG_KBLK_BYTES;
        unsigned char *b;
        if (ka_blks_reserve(ka) != 0) {
            return -1;
        }
        /* a long key has a malloc'd block of its own, marked by bit 0 */
        b = own ? malloc(n) : kpool_get(ka->pool);
        if (b == NULL) {
            return -1;
        }
        ka->blks[ka->nblks++] = own ? (unsigned char *)((uintptr_t)b | 1) : b;
        ka->bytes += own ? n : ALOG_KBLK_BYTES;
        ka->pos = 0;
        if (own) {
            /* offset 0, block full */
            *kref = (ka->nblks - 1) << ALOG_KBLK_SHIFT;
            ka->pos = ALOG_KBLK_BYTES;
            return 0;
        }
    }
    *kref = ((ka->nblks - 1) << ALOG_KBLK_SHIFT) | ka->pos;
    ka->pos += (uint32_t)n;
    return 0;
}

static unsigned char *
ka_blk(const struct alog_karena *ka, uint32_t i)
{
    return (unsigned char *)((uintptr_t)ka->blks[i] & ~(uintptr_t)1);
}

static unsigned char *
ka_at(const struct alog_karena *ka, uint32_t kref)
{
    return ka_blk(ka, kref >> ALOG_KBLK_SHIFT) + (kref & (ALOG_KBLK_BYTES - 1));
}

/* Give ka's blocks back (the pool's to the pool); ka stays usable. */
static void
ka_free(struct alog_karena *ka)
{
    struct alog_kpool *pool = ka->pool;

    for (uint32_t i = 0; i < ka->nblks; i++) {
        if ((uintptr_t)ka->blks[i] & 1) {
            unsigned char *b = ka_blk(ka, i);
            if (pool->fmap == NULL || b < pool->fmap ||
                b >= pool->fmap + pool->fmap_len) {
                free(b); /* not one of the index file's */
            }
        } else {
            kpool_put(pool, ka->blks[i]);
        }
    }
    free(ka->blks);
    memset(ka, 0, sizeof(*ka));
    ka->pool = pool;
}

/* Arena bytes of e's key entry. */
static size_t
ent_bytes(const struct alog_shard *sh, const struct alog_ent *e)
{
    return 2 + alog_ent_klen(sh, e) + ((e->flags & ALOG_ENT_EXPIRES) ? 8 : 0);
}

/* Copy the live key entries into fresh blocks when more than half of the
 * arena is dead (write lock held). Failure (no memory) keeps the old one. */
static void
ka_maybe_compact_locked(struct alog_shard *sh)
{
    struct alog_karena nk;
    uint32_t *refs;
    size_t k = 0;

    if (sh->ka_dead < ALOG_KARENA_COMPACT_MIN ||
        sh->ka_dead * 2 < sh->ka.bytes) {
        return;
    }
    refs = malloc((sh->count + 1) * sizeof(*refs));
    if (refs == NULL) {
        return;
    }
    memset(&nk, 0, sizeof(nk));
    nk.pool = sh->ka.pool;
    for (size_t i = 0; i < sh->nslots; i++) {
        const struct alog_ent *e = &sh->slots[i];
        size_t n;
        if (!(e->flags & ALOG_ENT_USED)) {
            continue;
        }
        n = ent_bytes(sh, e);
        if (ka_alloc(&nk, n, &refs[k]) != 0) {
            ka_free(&nk);
            free(refs);
            return;
        }
        memcpy(ka_at(&nk, refs[k]), ka_at(&sh->ka, e->kref), n);
        k++;
    }
    k = 0;
    for (size_t i = 0; i < sh->nslots; i++) {
        if (sh->slots[i].flags & ALOG_ENT_USED) {
            sh->slots[i].kref = refs[k++];
        }
    }
    free(refs);
    ka_free(&sh->ka);
    sh->ka = nk;
    sh->ka_dead = 0;
    shard_mem_update(sh);
}

/* ---- segment table ---- */

uint16_t
alog_index_seg_slot(struct alog_index *ix, struct alog_seg *seg)
{
    uint32_t s = atomic_load_explicit(&seg->ixslot, memory_order_acquire);

    if (s != 0) {
        return (uint16_t)s;
    }
    pthread_mutex_lock(&ix->segtab_mu);
    s = atomic_load_explicit(&seg->ixslot, memory_order_relaxed);
    for (uint32_t k = 0; s == 0 && k < ALOG_SEGTAB_SLOTS - 1; k++) {
        uint32_t c = 1 + (ix->segtab_next + k) % (ALOG_SEGTAB_SLOTS - 1);
        if (ix->segtab[c] == NULL) {
            ix->segtab[c] = seg;
            ix->segtab_next = c;
            atomic_store_explicit(&seg->ixslot, c, memory_order_release);
            s = c;
        }
    }
    pthread_mutex_unlock(&ix->segtab_mu);
    return (uint16_t)s;
}

void
alog_index_seg_forget(struct alog_index *ix, struct alog_seg *seg)
{
    pthread_mutex_lock(&ix->segtab_mu);
    uint32_t s = atomic_load_explicit(&seg->ixslot, memory_order_relaxed);
    if (s != 0 && ix->segtab[s] == seg) {
        ix->segtab[s] = NULL;
    }
    atomic_store_explicit(&seg->ixslot, 0, memory_order_relaxed);
    pthread_mutex_unlock(&ix->segtab_mu);
}

/* ---- shards ---- */

static uint32_t
grown_cap(uint32_t cap)
{
    uint64_t c = (uint64_t)cap + cap / 8 + 16;
    return c > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)c;
}

/* Make sh's arrays hold n slots of cap home slots (write lock held;
 * entries unmoved): extend the read-write prefixes, or, past a
 * reservation, copy the array into one 4 times larger. Both arrays are
 * made ready before either is replaced, so failure leaves the shard as it
 * was (a prefix may be longer, which changes nothing). 0, or -1. */
static int
shard_arrays_ensure(struct alog_shard *sh, uint32_t cap, uint32_t n)
{
    size_t sb = (size_t)n * sizeof(*sh->slots);
    size_t qb = (size_t)n * 8;
    struct alog_ixmap ns = {0};
    struct alog_ixmap nq = {0};
    int new_s = sb > sh->smap.resv;
    int new_q = sh->rseq != NULL && qb > sh->qmap.resv;

    if ((sb > sh->smap.rw || (sh->rseq != NULL && qb > sh->qmap.rw)) &&
        sh->fail_extend) {
        return -1;
    }
    if (new_s &&
        ixmap_reserve(&ns, sb, (size_t)cap * sizeof(*sh->slots)) != 0) {
        goto fail;
    }
    if (new_q && ixmap_reserve(&nq, qb, (size_t)cap * 8) != 0) {
        goto fail;
    }
    if (!new_s &&
        ixmap_ensure(&sh->smap, sb, (size_t)cap * sizeof(*sh->slots)) != 0) {
        goto fail;
    }
    if (sh->rseq != NULL && !new_q &&
        ixmap_ensure(&sh->qmap, qb, (size_t)cap * 8) != 0) {
        goto fail;
    }
    if (new_s) {
        memcpy(ns.base, sh->slots, (size_t)sh->nslots * sizeof(*sh->slots));
        ixmap_release(&sh->smap);
        sh->smap = ns;
        alog_shard_publish_slots(sh, ns.base);
        sh->nreserve++;
    }
    if (new_q) {
        memcpy(nq.base, sh->rseq, (size_t)sh->nslots * 8);
        ixmap_release(&sh->qmap);
        sh->qmap = nq;
        sh->rseq = nq.base;
    }
    return 0;
fail:
    ixmap_release(&ns);
    ixmap_release(&nq);
    return -1;
}

/* Slot p of sh takes the entry (and seq) of slot i, which is cleared. */
static void
shard_move_slot(struct alog_shard *sh, size_t p, size_t i)
{
    sh->slots[p] = sh->slots[i];
    memset(&sh->slots[i], 0, sizeof(sh->slots[i]));
    if (sh->rseq != NULL) {
        sh->rseq[p] = sh->rseq[i];
        sh->rseq[i] = 0;
    }
}

/* Move sh to cap home slots in place (write lock held; no key is read:
 * the tag gives the new home). The new slots are the forward-greedy
 * placement, computed front to back into at[]: an entry's slot depends on
 * every entry before it, so the positions cannot be worked out in the
 * order the moves must run when growing (last first), and a count-sized
 * array (4 bytes an entry against the 20 of its slot; malloc'd because
 * shards resize under their own locks, concurrently) holds them between
 * the two passes. The placement is monotone in cap: growing, each entry
 * moves up, and moving the last one first always finds its slot free
 * (later entries have left it, earlier ones sit below); shrinking, each
 * moves down and the first one goes first. A growth whose last entry
 * would pass the overflow tail tries a larger cap. 0, or -1 (no memory,
 * or no cap fits: the shard is unchanged). */
static int
shard_resize_locked(struct alog_shard *sh, uint32_t cap)
{
    int grow = cap >= sh->cap;
    uint32_t *at = malloc((sh->count + 1) * sizeof(*at));
    uint32_t n = 0;
    size_t k = 0;
    int rc = -1;

    if (at == NULL) {
        return -1;
    }
    for (;;) {
        size_t pos = 0;
        n = cap + overflow_slots(cap);
        k = 0;
        for (size_t i = 0; i < sh->nslots; i++) {
            size_t p;
            if (!(sh->slots[i].flags & ALOG_ENT_USED)) {
                continue;
            }
            p = (size_t)(((uint64_t)sh->slots[i].tag * cap) >> 32);
            p = p < pos ? pos : p;
            if (grow ? p < i : p > i) {
                /* cannot happen while the layout is the greedy placement;
                 * moving would overwrite entries not yet moved */
                goto out;
            }
            if (p >= n) {
                break; /* past the tail */
            }
            at[k++] = (uint32_t)p;
            pos = p + 1;
        }
        if (k == sh->count) {
            break;
        }
        if (!grow || grown_cap(cap) == cap) {
            goto out;
        }
        cap = grown_cap(cap);
    }
    if (grow) {
        if (shard_arrays_ensure(sh, cap, n) != 0) {
            goto out;
        }
        for (size_t i = sh->nslots; i-- > 0;) {
            if (sh->slots[i].flags & ALOG_ENT_USED) {
                if (at[--k] != i) {
                    shard_move_slot(sh, at[k], i);
                }
            }
        }
    } else {
        size_t j = 0;
        for (size_t i = 0; i < sh->nslots; i++) {
            if (sh->slots[i].flags & ALOG_ENT_USED) {
                if (at[j] != i) {
                    shard_move_slot(sh, at[j], i);
                }
                j++;
            }
        }
        /* every slot past n is free and zero: give its pages back */
        ixmap_trim(&sh->smap, (size_t)n * sizeof(*sh->slots));
        ixmap_trim(&sh->qmap, (size_t)n * 8);
    }
    alog_shard_publish_cap(sh, cap);
    sh->nslots = n;
    shard_mem_update(sh);
    rc = 0;
out:
    free(at);
    return rc;
}

int
alog_index_init(struct alog_index *ix)
{
    pthread_rwlockattr_t attr;

    memset(ix, 0, sizeof(*ix));
    ix->seed = kvd_hash_seed(ix);
    pthread_mutex_init(&ix->segtab_mu, NULL);
    pthread_mutex_init(&ix->kpool.mu, NULL);
    /* large: the allocator maps it; untouched pages cost nothing */
    ix->segtab = calloc(ALOG_SEGTAB_SLOTS, sizeof(*ix->segtab));
    if (ix->segtab == NULL) {
        pthread_mutex_destroy(&ix->segtab_mu);
        pthread_mutex_destroy(&ix->kpool.mu);
        return -1;
    }
    pthread_rwlockattr_init(&attr);
    /* a steady stream of readers must not starve writers */
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &ix->shards[i];
        sh->ka.pool = &ix->kpool;
        alog_shard_publish_cap(sh, ALOG_INIT_CAP);
        sh->nslots = ALOG_INIT_CAP + overflow_slots(ALOG_INIT_CAP);
        if (ixmap_reserve(&sh->smap, (size_t)sh->nslots * sizeof(*sh->slots),
                          0) != 0) {
            pthread_rwlockattr_destroy(&attr);
            alog_index_release(ix);
            return -1;
        }
        alog_shard_publish_slots(sh, sh->smap.base);
        sh->nreserve = 1;
        shard_mem_update(sh);
        pthread_rwlock_init(&sh->lock, &attr);
    }
    pthread_rwlockattr_destroy(&attr);
    return 0;
}

void
alog_index_release(struct alog_index *ix)
{
    ix->kpool.releasing = 1;
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &ix->shards[i];
        if (sh->slots == NULL) {
            continue;
        }
        ixmap_release(&sh->smap);
        ixmap_release(&sh->qmap);
        alog_shard_publish_slots(sh, NULL);
        sh->rseq = NULL;
        ka_free(&sh->ka);
        pthread_rwlock_destroy(&sh->lock);
    }
    if (ix->segtab != NULL) {
        free(ix->segtab);
        ix->segtab = NULL;
        pthread_mutex_destroy(&ix->segtab_mu);
        kpool_release(&ix->kpool);
        pthread_mutex_destroy(&ix->kpool.mu);
    }
    if (ix->kpool.fmap != NULL) {
        /* after the shards: their arrays and blocks may point into it */
        munmap(ix->kpool.fmap, ix->kpool.fmap_len);
        ix->kpool.fmap = NULL;
    }
}

struct alog_ent *
alog_shard_find_locked(struct alog_shard *sh, uint64_t hash, const void *key,
                       size_t klen)
{
    uint32_t tag = alog_hash_tag(hash);

    for (size_t i = alog_shard_probe_locked(sh, tag);
         alog_shard_is_tag_locked(sh, i, tag); i++) {
        size_t n;
        const unsigned char *k = alog_ent_key(sh, &sh->slots[i], &n);
        if (n == klen && memcmp(k, key, klen) == 0) {
            return &sh->slots[i];
        }
    }
    return NULL;
}

struct alog_ent *
alog_shard_insert_locked(struct alog_shard *sh, uint64_t hash, const void *key,
                         size_t klen)
{
    uint32_t tag = alog_hash_tag(hash);
    uint32_t kref;
    unsigned char *k;
    uint16_t n16 = (uint16_t)klen;
    size_t p;
    size_t q;

    if ((sh->count + 1) * ALOG_LOAD_DEN > (uint64_t)sh->cap * ALOG_LOAD_NUM &&
        shard_resize_locked(sh, grown_cap(sh->cap)) != 0 &&
        sh->count + 1 > sh->cap) {
        return NULL; /* failing to grow is harmless until the shard is full */
    }
    if (ka_alloc(&sh->ka, 2 + klen, &kref) != 0) {
        return NULL;
    }
    k = ka_at(&sh->ka, kref);
    memcpy(k, &n16, 2);
    memcpy(k + 2, key, klen);
    for (;;) {
        p = alog_shard_probe_locked(sh, tag);
        while (alog_shard_is_tag_locked(sh, p, tag)) {
            p++;
        }
        q = p;
        while (q < sh->nslots && (sh->slots[q].flags & ALOG_ENT_USED)) {
            q++;
        }
        if (q < sh->nslots) {
            break;
        }
        if (shard_resize_locked(sh, grown_cap(sh->cap)) != 0) {
            sh->ka_dead += 2 + klen;
            return NULL;
        }
    }
    memmove(&sh->slots[p + 1], &sh->slots[p], (q - p) * sizeof(*sh->slots));
    if (sh->rseq != NULL) {
        memmove(&sh->rseq[p + 1], &sh->rseq[p], (q - p) * 8);
        sh->rseq[p] = 0;
    }
    memset(&sh->slots[p], 0, sizeof(sh->slots[p]));
    sh->slots[p].tag = tag;
    sh->slots[p].kref = kref;
    sh->slots[p].flags = ALOG_ENT_USED | ALOG_ENT_TOMBSTONE;
    sh->count++;
    shard_mem_update(sh);
    return &sh->slots[p];
}

void
alog_shard_remove_locked(struct alog_shard *sh, struct alog_ent *e)
{
    size_t i = (size_t)(e - sh->slots);
    size_t j = i + 1;

    alog_shard_unaccount_locked(sh, e);
    sh->ka_dead += ent_bytes(sh, e);
    sh->count--;
    /* backward shift: pull the following run left while its entries stay
     * at or after their home slots, so no free slot opens inside a run */
    while (j < sh->nslots && (sh->slots[j].flags & ALOG_ENT_USED) &&
           alog_shard_home(sh, sh->slots[j].tag) < j) {
        sh->slots[j - 1] = sh->slots[j];
        if (sh->rseq != NULL) {
            sh->rseq[j - 1] = sh->rseq[j];
        }
        j++;
    }
    memset(&sh->slots[j - 1], 0, sizeof(sh->slots[j - 1]));
    ka_maybe_compact_locked(sh);
}

void
alog_shard_maybe_shrink_locked(struct alog_shard *sh)
{
    if (sh->cap > 4 * ALOG_INIT_CAP && sh->count * 10 < (uint64_t)sh->cap * 3) {
        /* back to 70% full; failure is harmless (the array stays) */
        (void)shard_resize_locked(sh, (uint32_t)(sh->count * 10 / 7) + 16);
    }
}

int
alog_ent_set_expire_locked(struct alog_shard *sh, struct alog_ent *e,
                           int64_t expire_ms)
{
    const unsigned char *key;
    unsigned char *k;
    size_t klen;
    uint32_t kref;

    if (!(e->flags & ALOG_ENT_EXPIRES)) {
        if (expire_ms == 0) {
            return 0;
        }
        /* room for the expiry: the key moves to a longer arena entry */
        klen = alog_ent_klen(sh, e);
        if (ka_alloc(&sh->ka, 2 + klen + 8, &kref) != 0) {
            return -1;
        }
        key = ka_at(&sh->ka, e->kref);
        k = ka_at(&sh->ka, kref);
        memcpy(k, key, 2 + klen);
        sh->ka_dead += 2 + klen;
        e->kref = kref;
        e->flags |= ALOG_ENT_EXPIRES;
        shard_mem_update(sh);
    }
    key = alog_ent_key(sh, e, &klen);
    memcpy(ka_at(&sh->ka, e->kref) + 2 + klen, &expire_ms, 8);
    (void)key;
    return 0;
}

void
alog_shard_account_locked(struct alog_shard *sh, const struct alog_ent *e)
{
    if (e->flags & ALOG_ENT_TOMBSTONE) {
        return;
    }
    sh->live_keys++;
    sh->key_bytes += alog_ent_klen(sh, e);
    sh->value_bytes += e->vlen;
    if (alog_ent_expire(sh, e) != 0) {
        sh->expiring++;
    }
}

void
alog_shard_unaccount_locked(struct alog_shard *sh, const struct alog_ent *e)
{
    if (e->flags & ALOG_ENT_TOMBSTONE) {
        return;
    }
    sh->live_keys--;
    sh->key_bytes -= alog_ent_klen(sh, e);
    sh->value_bytes -= e->vlen;
    if (alog_ent_expire(sh, e) != 0) {
        sh->expiring--;
    }
}

int
alog_index_bulk_begin(struct alog_index *ix, uint64_t keys)
{
    uint64_t per_shard = keys / ALOG_SHARDS;
    uint64_t want = per_shard * ALOG_LOAD_DEN / ALOG_LOAD_NUM + 16;

    if (want > UINT32_MAX / 2) {
        want = UINT32_MAX / 2;
    }
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &ix->shards[i];
        if (want > sh->cap) {
            /* failure to presize is harmless (the load regrows) */
            (void)shard_resize_locked(sh, (uint32_t)want);
        }
        if (sh->rseq == NULL) {
            if (ixmap_reserve(&sh->qmap, (size_t)sh->nslots * 8,
                              (size_t)sh->cap * 8) != 0) {
                return -1;
            }
            sh->rseq = sh->qmap.base;
        }
        shard_mem_update(sh);
    }
    return 0;
}

void
alog_index_bulk_end(struct alog_index *ix)
{
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &ix->shards[i];
        ixmap_release(&sh->qmap);
        sh->rseq = NULL;
        shard_mem_update(sh);
    }
}

/* ---- bulk build ---- */

size_t
alog_index_bulk_rec_bytes(size_t klen)
{
    return ALOG_BULK_HDR_BYTES + ALOG_HINT_ENT_BYTES + klen;
}

int
alog_index_bulk_init(struct alog_index_bulk *b,
                     const uint64_t recs[ALOG_SHARDS],
                     const uint64_t bytes[ALOG_SHARDS])
{
    uint64_t n = 0;

    memset(b, 0, sizeof(*b));
    for (unsigned s = 0; s < ALOG_SHARDS; s++) {
        if (bytes[s] > UINT32_MAX) {
            return -1; /* records are named by a u32 offset in their shard */
        }
        b->start[s] = n;
        b->fill[s] = n;
        b->recs[s] = recs[s];
        n += bytes[s];
    }
    b->start[ALOG_SHARDS] = n;
    if (n == 0 || n > SIZE_MAX) {
        return n == 0 ? 0 : -1;
    }
    /* written once, front to back per shard: faulted in by one call */
    b->buf = ix_map((size_t)n, (size_t)n);
    return b->buf != NULL ? 0 : -1;
}

void
alog_index_bulk_release(struct alog_index_bulk *b)
{
    ix_unmap(b->buf, (size_t)b->start[ALOG_SHARDS]);
    memset(b, 0, sizeof(*b));
}

int
alog_index_bulk_add(struct alog_index_bulk *b, uint64_t hash,
                    const unsigned char *ent, uint16_t seg, int dead)
{
    unsigned s = (unsigned)(hash >> (64 - ALOG_SHARD_BITS));
    size_t klen = alog_get_u16(ent + 24);
    size_t n = alog_index_bulk_rec_bytes(klen);
    uint32_t tag = alog_hash_tag(hash);
    unsigned char *p;

    if (b->start[s + 1] - b->fill[s] < n) {
        return -1;
    }
    p = b->buf + b->fill[s];
    memcpy(p, &tag, 4);
    memcpy(p + 4, &seg, 2);
    p[6] = dead ? ALOG_ENT_TOMBSTONE : 0;
    p[7] = 0;
    memcpy(p + ALOG_BULK_HDR_BYTES, ent, ALOG_HINT_ENT_BYTES + klen);
    b->fill[s] += n;
    return 0;
}

/* A staged record of a shard (base: the shard's staging), named by its
 * offset there. */
static inline uint32_t
brec_tag(const unsigned char *base, uint32_t off)
{
    uint32_t t;
    memcpy(&t, base + off, 4);
    return t;
}

static inline const unsigned char *
brec_ent(const unsigned char *base, uint32_t off)
{
    return base + off + ALOG_BULK_HDR_BYTES;
}

static int
bulk_same_key(const unsigned char *base, uint32_t a, uint32_t b)
{
    const unsigned char *x = brec_ent(base, a);
    const unsigned char *y = brec_ent(base, b);
    uint16_t n = alog_get_u16(x + 24);

    return n == alog_get_u16(y + 24) &&
           memcmp(x + ALOG_HINT_ENT_BYTES, y + ALOG_HINT_ENT_BYTES, n) == 0;
}

/* ord[0..n) := the offsets of the n records in base[0..bytes), in tag
 * order. A counting sort by bucket (tag * n >> 32 is monotone in the tag,
 * and the tags of one shard are uniform under the seeded hash, so buckets
 * hold about one record), then an insertion sort that only has to order
 * records within a bucket. cnt has n + 1 entries. */
static void
bulk_sort(const unsigned char *base, uint64_t bytes, size_t n, uint32_t *cnt,
          uint32_t *ord)
{
    uint64_t off;

    memset(cnt, 0, (n + 1) * sizeof(*cnt));
    for (off = 0; off < bytes;) {
        const unsigned char *e = brec_ent(base, (uint32_t)off);
        cnt[(((uint64_t)brec_tag(base, (uint32_t)off) * n) >> 32) + 1]++;
        off += alog_index_bulk_rec_bytes(alog_get_u16(e + 24));
    }
    for (size_t i = 1; i <= n; i++) {
        cnt[i] += cnt[i - 1];
    }
    for (off = 0; off < bytes;) {
        const unsigned char *e = brec_ent(base, (uint32_t)off);
        ord[cnt[((uint64_t)brec_tag(base, (uint32_t)off) * n) >> 32]++] =
            (uint32_t)off;
        off += alog_index_bulk_rec_bytes(alog_get_u16(e + 24));
    }
    for (size_t i = 1; i < n; i++) {
        uint32_t x = ord[i];
        uint32_t tx = brec_tag(base, x);
        size_t j = i;
        while (j > 0 && brec_tag(base, ord[j - 1]) > tx) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = x;
    }
}

/* Keep in ord the records that win: of equal keys (equal tags are
 * neighbours after bulk_sort) the highest seq, then without the dead ones
 * unless keep_dead. Returns how many are kept. */
static size_t
bulk_resolve(const unsigned char *base, size_t n, uint32_t *ord, int keep_dead)
{
    size_t k = 0;
    size_t g = 0; /* first kept record of the current tag */
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        uint32_t x = ord[i];
        size_t j;
        if (k == 0 || brec_tag(base, ord[k - 1]) != brec_tag(base, x)) {
            ord[k++] = x;
            g = k - 1;
            continue;
        }
        for (j = g; j < k && !bulk_same_key(base, ord[j], x); j++) {
        }
        if (j == k) {
            ord[k++] = x;
        } else if (alog_get_u64(brec_ent(base, x)) >
                   alog_get_u64(brec_ent(base, ord[j]))) {
            ord[j] = x; /* the higher seq */
        }
    }
    for (size_t i = 0; i < k; i++) {
        if (keep_dead || !(base[ord[i] + 6] & ALOG_ENT_TOMBSTONE)) {
            ord[m++] = ord[i];
        }
    }
    return m;
}

/* Slot arrays (and a seq array with keep_dead) for the m records of
 * ord (tag order), regrown while a run would pass the overflow tail; the
 * slot of ord[j] goes to at[j]. 0, or -1 (ENOMEM). */
static int
bulk_place(struct alog_shard *sh, const unsigned char *base,
           const uint32_t *ord, size_t m, int keep_dead, uint32_t *at)
{
    uint64_t want = (uint64_t)m * ALOG_LOAD_DEN / ALOG_LOAD_NUM + 16;
    uint32_t cap = want > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)want;
    uint32_t n;

    for (;;) {
        size_t pos = 0;
        size_t j;
        n = cap + overflow_slots(cap);
        for (j = 0; j < m; j++) {
            size_t p = (size_t)(((uint64_t)brec_tag(base, ord[j]) * cap) >> 32);
            p = p < pos ? pos : p;
            if (p >= n) {
                break;
            }
            at[j] = (uint32_t)p;
            pos = p + 1;
        }
        if (j == m) {
            break;
        }
        if (grown_cap(cap) == cap) {
            return -1; /* at the largest array: cannot happen short of
                        * billions of keys in one shard */
        }
        cap = grown_cap(cap);
    }
    /* the shard is empty (all its slots zero): only its arrays grow */
    if (keep_dead && sh->rseq == NULL) {
        if (ixmap_reserve(&sh->qmap, (size_t)sh->nslots * 8, 0) != 0) {
            return -1;
        }
        sh->rseq = sh->qmap.base;
    }
    if (shard_arrays_ensure(sh, cap, n) != 0) {
        return -1;
    }
    alog_shard_publish_cap(sh, cap);
    sh->nslots = n;
    shard_mem_update(sh);
    return 0;
}

/* Fill the slots at[0..m) from the records of ord: keys into the arena
 * (in slot order), accounting, segment bytes into seg_live. */
static int
bulk_fill(struct alog_shard *sh, const unsigned char *base, const uint32_t *ord,
          const uint32_t *at, size_t m, uint64_t *seg_live)
{
    for (size_t j = 0; j < m; j++) {
        const unsigned char *rec = base + ord[j];
        const unsigned char *ent = rec + ALOG_BULK_HDR_BYTES;
        struct alog_ent *e = &sh->slots[at[j]];
        struct alog_hint_ent he;
        int dead = (rec[6] & ALOG_ENT_TOMBSTONE) != 0;
        int expires;
        unsigned char *k;
        uint16_t n16;
        uint32_t kref;

        alog_hint_ent_decode(ent, &he);
        expires = !dead && he.expire_ms != 0;
        if (ka_alloc(&sh->ka, 2 + (size_t)he.klen + (expires ? 8 : 0), &kref) !=
            0) {
            return -1;
        }
        k = ka_at(&sh->ka, kref);
        n16 = he.klen;
        memcpy(k, &n16, 2);
        memcpy(k + 2, ent + ALOG_HINT_ENT_BYTES, he.klen);
        e->tag = brec_tag(base, ord[j]);
        e->off = he.off;
        e->vlen = dead ? 0 : he.vlen;
        e->kref = kref;
        memcpy(&e->seg, rec + 4, 2);
        e->flags = (uint8_t)(ALOG_ENT_USED | rec[6]);
        if (sh->rseq != NULL) {
            sh->rseq[at[j]] = he.seq;
        }
        if (dead) {
            continue;
        }
        if (expires) {
            memcpy(k + 2 + he.klen, &he.expire_ms, 8);
            e->flags |= ALOG_ENT_EXPIRES;
            sh->expiring++;
        }
        sh->live_keys++;
        sh->key_bytes += he.klen;
        sh->value_bytes += he.vlen;
        seg_live[e->seg] += alog_rec_bytes(he.klen, he.vlen);
    }
    sh->count = m;
    return 0;
}

int
alog_index_bulk_build(struct alog_index *ix, struct alog_index_bulk *b,
                      int keep_dead)
{
    uint64_t *seg_live = calloc(ALOG_SEGTAB_SLOTS, sizeof(*seg_live));
    uint64_t most = 0;
    uint32_t *cnt = NULL;
    uint32_t *ord = NULL;
    int rc = -1;

    for (unsigned s = 0; s < ALOG_SHARDS; s++) {
        most = b->recs[s] > most ? b->recs[s] : most;
    }
    if (most >= UINT32_MAX) {
        goto out;
    }
    cnt = malloc((most + 1) * sizeof(*cnt));
    ord = malloc((most + 1) * sizeof(*ord));
    if (seg_live == NULL || cnt == NULL || ord == NULL) {
        goto out;
    }
    for (unsigned s = 0; s < ALOG_SHARDS; s++) {
        struct alog_shard *sh = &ix->shards[s];
        const unsigned char *base;
        size_t n = (size_t)b->recs[s];
        size_t m;

        if (n == 0) {
            continue; /* b->buf may be NULL: no offset from it */
        }
        base = b->buf + b->start[s];
        bulk_sort(base, b->fill[s] - b->start[s], n, cnt, ord);
        m = bulk_resolve(base, n, ord, keep_dead);
        /* cnt is free again: it holds the slot of each kept record */
        if (bulk_place(sh, base, ord, m, keep_dead, cnt) != 0 ||
            bulk_fill(sh, base, ord, cnt, m, seg_live) != 0) {
            goto out;
        }
        shard_mem_update(sh);
    }
    for (uint32_t i = 1; i < ALOG_SEGTAB_SLOTS; i++) {
        if (seg_live[i] != 0) {
            atomic_fetch_add(&ix->segtab[i]->live_bytes, seg_live[i]);
        }
    }
    rc = 0;
out:
    free(seg_live);
    free(cnt);
    free(ord);
    return rc;
}

/* ---- index file (alog_ixfile.c) ---- */

int
alog_shard_load_borrow(struct alog_shard *sh, uint32_t cap, uint32_t nslots,
                       struct alog_ent *slots)
{
    if (sh->count != 0 || sh->ka.nblks != 0 || sh->rseq != NULL ||
        cap < ALOG_INIT_CAP || cap > UINT32_MAX / 2 ||
        nslots != cap + overflow_slots(cap)) {
        return -1;
    }
    ixmap_release(&sh->smap);
    sh->smap.base = slots;
    sh->smap.resv = 0;
    sh->smap.rw = (size_t)nslots * sizeof(*slots);
    sh->smap.pop = sh->smap.rw;
    alog_shard_publish_slots(sh, slots);
    alog_shard_publish_cap(sh, cap);
    sh->nslots = nslots;
    return 0;
}

int
alog_karena_borrow_block(struct alog_karena *ka, unsigned char *p, size_t n)
{
    if ((n != 0 && n < ALOG_KBLK_BYTES) || ((uintptr_t)p & 1) != 0 ||
        ka_blks_reserve(ka) != 0) {
        return -1;
    }
    /* a long key's block and a place holder carry bit 0, as a block of
     * ka_alloc's own would: never pooled, and ka_free knows the map's are
     * not malloc'd; a pool block joins the pool when freed */
    ka->blks[ka->nblks++] =
        n == ALOG_KBLK_BYTES ? p : (unsigned char *)((uintptr_t)p | 1);
    ka->bytes += n;
    ka->pos = ALOG_KBLK_BYTES;
    return 0;
}

void
alog_shard_load_end(struct alog_shard *sh)
{
    shard_mem_update(sh);
}
