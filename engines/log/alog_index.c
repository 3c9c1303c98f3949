/*
 * alog_index.c -- the sharded compact index of the log engine (see
 * alog_index.h for the layout, the ordering property and the locking).
 *
 * Slot arrays and recovery's sequence arrays are mapped directly (not
 * malloc'd): they are large, regrown by copying, and a freed mapping goes
 * back to the system at once instead of staying in the heap. Key arena
 * blocks are malloc'd, ALOG_KBLK_BYTES each, never one per key.
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

/* Overflow tail after the home slots: runs that would pass the end go
 * there instead of wrapping (wrapping would break the order). Untouched
 * pages of it cost no memory. */
static uint32_t
overflow_slots(uint32_t cap)
{
    return cap / 8 + 32;
}

static void
shard_mem_update(struct alog_shard *sh)
{
    sh->mem_bytes = (uint64_t)sh->cap * sizeof(struct alog_ent) + sh->ka.bytes +
                    (uint64_t)sh->ka.blks_cap * sizeof(void *) +
                    (sh->rseq != NULL ? (uint64_t)sh->nslots * 8 : 0);
}

/* ---- key arena ---- */

/* n bytes in ka; *kref names them. 0, or -1 on ENOMEM. */
static int
ka_alloc(struct alog_karena *ka, size_t n, uint32_t *kref)
{
    if (ka->nblks == 0 || ka->pos + n > ALOG_KBLK_BYTES) {
        size_t sz = n > ALOG_KBLK_BYTES ? n : ALOG_KBLK_BYTES;
        unsigned char *b;
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
        b = malloc(sz);
        if (b == NULL) {
            return -1;
        }
        ka->blks[ka->nblks++] = b;
        ka->bytes += sz;
        ka->pos = 0;
        if (sz > ALOG_KBLK_BYTES) {
            /* a long key has a block of its own: offset 0, block full */
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
ka_at(const struct alog_karena *ka, uint32_t kref)
{
    return ka->blks[kref >> ALOG_KBLK_SHIFT] + (kref & (ALOG_KBLK_BYTES - 1));
}

static void
ka_free(struct alog_karena *ka)
{
    for (uint32_t i = 0; i < ka->nblks; i++) {
        free(ka->blks[i]);
    }
    free(ka->blks);
    memset(ka, 0, sizeof(*ka));
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

/* Move sh to cap home slots (write lock held): one ordered pass, no key
 * is read (the tag gives the new home). 0, or -1 (no memory, or the
 * overflow tail too short: the shard is unchanged). */
static int
shard_resize_locked(struct alog_shard *sh, uint32_t cap)
{
    uint32_t n = cap + overflow_slots(cap);
    struct alog_ent *ns =
        ix_map((size_t)n * sizeof(*ns), (size_t)cap * sizeof(*ns));
    uint64_t *nseq = NULL;
    size_t pos = 0;

    if (ns == NULL) {
        return -1;
    }
    if (sh->rseq != NULL) {
        nseq = ix_map((size_t)n * 8, (size_t)cap * 8);
        if (nseq == NULL) {
            ix_unmap(ns, (size_t)n * sizeof(*ns));
            return -1;
        }
    }
    for (size_t i = 0; i < sh->nslots; i++) {
        const struct alog_ent *e = &sh->slots[i];
        size_t p;
        if (!(e->flags & ALOG_ENT_USED)) {
            continue;
        }
        p = (size_t)(((uint64_t)e->tag * cap) >> 32);
        if (p < pos) {
            p = pos;
        }
        if (p >= n) {
            ix_unmap(ns, (size_t)n * sizeof(*ns));
            ix_unmap(nseq, (size_t)n * 8);
            return -1;
        }
        ns[p] = *e;
        if (nseq != NULL) {
            nseq[p] = sh->rseq[i];
        }
        pos = p + 1;
    }
    ix_unmap(sh->slots, (size_t)sh->nslots * sizeof(*sh->slots));
    ix_unmap(sh->rseq, (size_t)sh->nslots * 8);
    sh->slots = ns;
    sh->rseq = nseq;
    sh->cap = cap;
    sh->nslots = n;
    shard_mem_update(sh);
    return 0;
}

static uint32_t
grown_cap(uint32_t cap)
{
    uint64_t c = (uint64_t)cap + cap / 8 + 16;
    return c > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)c;
}

int
alog_index_init(struct alog_index *ix)
{
    pthread_rwlockattr_t attr;

    memset(ix, 0, sizeof(*ix));
    ix->seed = kvd_hash_seed(ix);
    pthread_mutex_init(&ix->segtab_mu, NULL);
    /* large: the allocator maps it; untouched pages cost nothing */
    ix->segtab = calloc(ALOG_SEGTAB_SLOTS, sizeof(*ix->segtab));
    if (ix->segtab == NULL) {
        pthread_mutex_destroy(&ix->segtab_mu);
        return -1;
    }
    pthread_rwlockattr_init(&attr);
    /* a steady stream of readers must not starve writers */
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &ix->shards[i];
        sh->cap = ALOG_INIT_CAP;
        sh->nslots = ALOG_INIT_CAP + overflow_slots(ALOG_INIT_CAP);
        sh->slots = ix_map((size_t)sh->nslots * sizeof(*sh->slots), 0);
        if (sh->slots == NULL) {
            pthread_rwlockattr_destroy(&attr);
            alog_index_release(ix);
            return -1;
        }
        shard_mem_update(sh);
        pthread_rwlock_init(&sh->lock, &attr);
    }
    pthread_rwlockattr_destroy(&attr);
    return 0;
}

void
alog_index_release(struct alog_index *ix)
{
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &ix->shards[i];
        if (sh->slots == NULL) {
            continue;
        }
        ix_unmap(sh->slots, (size_t)sh->nslots * sizeof(*sh->slots));
        ix_unmap(sh->rseq, (size_t)sh->nslots * 8);
        sh->slots = NULL;
        sh->rseq = NULL;
        ka_free(&sh->ka);
        pthread_rwlock_destroy(&sh->lock);
    }
    if (ix->segtab != NULL) {
        free(ix->segtab);
        ix->segtab = NULL;
        pthread_mutex_destroy(&ix->segtab_mu);
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
            sh->rseq = ix_map((size_t)sh->nslots * 8, (size_t)sh->cap * 8);
            if (sh->rseq == NULL) {
                return -1;
            }
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
        ix_unmap(sh->rseq, (size_t)sh->nslots * 8);
        sh->rseq = NULL;
        shard_mem_update(sh);
    }
}
