/*
 * engines/memory/mem_table.c -- the sharded, incrementally resized hash
 * table of the memory engine.
 *
 * See mem_internal.h for the model (hash order == shard order == bucket
 * order) and the lock rules. Summary of this file's invariants:
 *   - h != UINT64_MAX for every entry (mem_hash clamps it), so h is a valid
 *     iteration pos and "the bucket after the last one" never needs a
 *     65th bit;
 *   - a shard's buckets partition its local hash range; while a resize is
 *     under way, old bucket i < rehash_idx is empty and its range lives in
 *     new buckets 2i, 2i+1 (mem_bucket picks the right one);
 *   - count/key_bytes/value_bytes/alloc_bytes/n_expiring describe exactly
 *     the entries linked in tab[0] and tab[1];
 *   - min_expire is a lower bound of every linked entry's expiry.
 *
 * Resize. A shard doubles when it holds more than 1.5 entries per bucket.
 * The new array is calloc'd (large ones come from fresh zero pages, so
 * this costs no pass over memory) and every later write to the shard moves
 * MEM_REHASH_STEP_BUCKETS old buckets, so no single call pays for more
 * than a few chains. Tables never shrink, except through clear.
 *
 * Memory per key: the entry block's 28 B header, one bucket pointer per
 * 0.75..1.5 keys (5..11 B), plus the allocator's own rounding.
 *
 * Sections: hashing, entries, lookup and update, collection for iterators
 * and snapshots, expiry, stats, clear, init/destroy.
 */
#include "mem_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kvd/kit_hash.h"

/* ---------------------------------------------------------------- hashing */

/* The toolkit's hash, keyed with a per-open random seed so that clients
 * cannot aim many keys at one bucket (hashes never leave the process:
 * snapshots store keys). UINT64_MAX is kept free for the iteration pos. */
uint64_t
mem_hash(const kvd_engine *db, const void *key, size_t klen)
{
    uint64_t h = kvd_hash64(db->seed, key, klen);

    return h == UINT64_MAX ? UINT64_MAX - 1 : h;
}

static inline uint64_t
mem_local(const kvd_engine *db, uint64_t h)
{
    return db->shard_bits ? h << db->shard_bits : h;
}

static inline uint64_t
mem_global(const kvd_engine *db, uint32_t shard, uint64_t local)
{
    if (db->shard_bits == 0) {
        return local;
    }
    return ((uint64_t)shard << (64 - db->shard_bits)) |
           (local >> db->shard_bits);
}

static inline uint32_t
mem_shard_index(const kvd_engine *db, uint64_t h)
{
    return db->shard_bits ? (uint32_t)(h >> (64 - db->shard_bits)) : 0;
}

struct mem_shard *
mem_shard_of(const kvd_engine *db, uint64_t hash)
{
    return &db->shards[mem_shard_index(db, hash)];
}

/*
 * Shard lock held. The chain head holding local hash l; *bits receives the
 * bit count of the table it lies in, so the bucket covers
 * [l & ~(UINT64_MAX >> bits), l | (UINT64_MAX >> bits)].
 */
static struct mem_entry **
mem_bucket(struct mem_shard *sh, uint64_t l, unsigned *bits)
{
    size_t i = (size_t)(l >> (64 - sh->bits[0]));

    if (sh->tab[1] != NULL && i < sh->rehash_idx) {
        *bits = sh->bits[1];
        return &sh->tab[1][l >> (64 - sh->bits[1])];
    }
    *bits = sh->bits[0];
    return &sh->tab[0][i];
}

/* ---------------------------------------------------------------- entries */

struct mem_entry *
mem_entry_create(const void *key, size_t klen, const void *val, size_t vlen,
                 int64_t expire_ms)
{
    struct mem_entry *e;

    if (klen > MEM_MAX_KEY_BYTES || vlen > MEM_MAX_VALUE_BYTES) {
        return NULL;
    }
    e = malloc(MEM_ENTRY_HEADER_BYTES + klen + vlen);
    if (e == NULL) {
        return NULL;
    }
    e->next = NULL;
    e->expire_ms = expire_ms;
    atomic_init(&e->refs, 1);
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    memcpy(e->kv, key, klen);
    if (vlen > 0) {
        memcpy(e->kv + klen, val, vlen);
    }
    return e;
}

void
mem_entry_ref(struct mem_entry *e)
{
    /* Relaxed: the caller already reaches e through a lock or a held
     * reference, which orders everything before. */
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void
mem_entry_unref(struct mem_entry *e)
{
    if (e == NULL) {
        return;
    }
    /* acq_rel rather than release + an acquire fence: same cost on x86,
     * and ThreadSanitizer understands it. */
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        free(e);
    }
}

void
mem_entry_unref_list(struct mem_entry *head)
{
    while (head != NULL) {
        struct mem_entry *next = head->next;
        mem_entry_unref(head);
        head = next;
    }
}

static inline uint64_t
mem_entry_bytes(const struct mem_entry *e)
{
    return MEM_ENTRY_HEADER_BYTES + (uint64_t)e->klen + e->vlen;
}

static inline bool
mem_entry_is(const struct mem_entry *e, const void *key, size_t klen)
{
    return e->klen == klen && memcmp(e->kv, key, klen) == 0;
}

static inline uint64_t
mem_entry_hash(const kvd_engine *db, const struct mem_entry *e)
{
    return mem_hash(db, e->kv, e->klen);
}

/* Shard lock held exclusive: account for an entry linked (+) or unlinked. */
static void
mem_account_add(struct mem_shard *sh, const struct mem_entry *e)
{
    sh->count++;
    sh->key_bytes += e->klen;
    sh->value_bytes += e->vlen;
    sh->alloc_bytes += mem_entry_bytes(e);
    if (e->expire_ms != KVD_NO_EXPIRY) {
        sh->n_expiring++;
        if (e->expire_ms < sh->min_expire) {
            sh->min_expire = e->expire_ms;
        }
        if (e->expire_ms < sh->wrap_min) {
            sh->wrap_min = e->expire_ms;
        }
    }
}

static void
mem_account_sub(struct mem_shard *sh, const struct mem_entry *e)
{
    sh->count--;
    sh->key_bytes -= e->klen;
    sh->value_bytes -= e->vlen;
    sh->alloc_bytes -= mem_entry_bytes(e);
    if (e->expire_ms != KVD_NO_EXPIRY) {
        sh->n_expiring--;
    }
}

/* ------------------------------------------------------ lookup and update */

/* Shard lock held exclusive: move up to `steps` old buckets. */
static void
mem_rehash_step(kvd_engine *db, struct mem_shard *sh, size_t steps)
{
    size_t oldn;
    unsigned nbits;

    if (sh->tab[1] == NULL) {
        return;
    }
    oldn = (size_t)1 << sh->bits[0];
    nbits = sh->bits[1];
    while (steps-- > 0 && sh->rehash_idx < oldn) {
        struct mem_entry *e = sh->tab[0][sh->rehash_idx];
        sh->tab[0][sh->rehash_idx] = NULL;
        while (e != NULL) {
            struct mem_entry *next = e->next;
            struct mem_entry **slot =
                &sh->tab[1]
                        [mem_local(db, mem_entry_hash(db, e)) >> (64 - nbits)];
            e->next = *slot;
            *slot = e;
            e = next;
        }
        sh->rehash_idx++;
    }
    if (sh->rehash_idx == oldn) {
        free(sh->tab[0]);
        sh->alloc_bytes -= oldn * sizeof(struct mem_entry *);
        sh->tab[0] = sh->tab[1];
        sh->bits[0] = nbits;
        sh->tab[1] = NULL;
        sh->rehash_idx = 0;
    }
}

/* Shard lock held exclusive: start doubling when the load passes 1.5. */
static void
mem_maybe_grow(kvd_engine *db, struct mem_shard *sh)
{
    uint64_t nb = (uint64_t)1 << sh->bits[0];
    struct mem_entry **tab;

    if (sh->tab[1] != NULL || sh->count <= nb + nb / 2 ||
        sh->bits[0] >= MEM_MAX_BUCKET_BITS) {
        return;
    }
    tab = calloc((size_t)nb * 2, sizeof(*tab));
    if (tab == NULL) {
        return; /* keep working with longer chains */
    }
    sh->tab[1] = tab;
    sh->bits[1] = sh->bits[0] + 1;
    sh->rehash_idx = 0;
    sh->alloc_bytes += nb * 2 * sizeof(*tab);
    atomic_fetch_add_explicit(&db->rehash_started, 1, memory_order_relaxed);
}

struct mem_entry *
mem_shard_find_locked(const kvd_engine *db, struct mem_shard *sh, uint64_t hash,
                      const void *key, size_t klen)
{
    unsigned bits;
    struct mem_entry *e = *mem_bucket(sh, mem_local(db, hash), &bits);

    for (; e != NULL; e = e->next) {
        if (mem_entry_is(e, key, klen)) {
            return e;
        }
    }
    return NULL;
}

struct mem_entry *
mem_shard_put_locked(kvd_engine *db, struct mem_shard *sh, uint64_t hash,
                     struct mem_entry *e)
{
    unsigned bits;
    struct mem_entry **slot;
    struct mem_entry **pp;
    struct mem_entry *old = NULL;

    mem_rehash_step(db, sh, MEM_REHASH_STEP_BUCKETS);
    slot = mem_bucket(sh, mem_local(db, hash), &bits);
    for (pp = slot; *pp != NULL; pp = &(*pp)->next) {
        if (mem_entry_is(*pp, e->kv, e->klen)) {
            old = *pp;
            e->next = old->next;
            *pp = e;
            old->next = NULL;
            break;
        }
    }
    if (old == NULL) {
        e->next = *slot;
        *slot = e;
    } else {
        mem_account_sub(sh, old);
    }
    mem_account_add(sh, e);
    if (old == NULL) {
        mem_maybe_grow(db, sh);
    }
    return old;
}

struct mem_entry *
mem_shard_del_locked(kvd_engine *db, struct mem_shard *sh, uint64_t hash,
                     const void *key, size_t klen, int64_t now_ms,
                     bool *was_live)
{
    unsigned bits;
    struct mem_entry **pp;

    *was_live = false;
    mem_rehash_step(db, sh, MEM_REHASH_STEP_BUCKETS);
    for (pp = mem_bucket(sh, mem_local(db, hash), &bits); *pp != NULL;
         pp = &(*pp)->next) {
        struct mem_entry *e = *pp;
        if (mem_entry_is(e, key, klen)) {
            *pp = e->next;
            e->next = NULL;
            mem_account_sub(sh, e);
            *was_live = !mem_entry_expired(e, now_ms);
            return e;
        }
    }
    return NULL;
}

/* ----------------------------------------------------------- collection */

static int
mem_item_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct mem_item *)a)->hash;
    uint64_t y = ((const struct mem_item *)b)->hash;
    return (x > y) - (x < y);
}

static bool
mem_collect_wants(const struct mem_collect *c, const struct mem_entry *e)
{
    if (mem_entry_expired(e, c->now_ms)) {
        return false;
    }
    return c->prefix_len == 0 || (e->klen >= c->prefix_len &&
                                  memcmp(e->kv, c->prefix, c->prefix_len) == 0);
}

int
mem_table_collect(kvd_engine *db, uint64_t *cur, bool *done,
                  struct mem_collect *c, size_t want, size_t max_buckets)
{
    uint32_t si = mem_shard_index(db, *cur);
    struct mem_shard *sh = &db->shards[si];
    size_t start_n = c->n;
    size_t visited = 0;
    uint64_t g = *cur;
    int rc = 0;

    pthread_rwlock_rdlock(&sh->lock);
    for (;;) {
        uint64_t l = mem_local(db, g);
        uint64_t end_l;
        uint64_t end_g;
        unsigned bits;
        size_t bucket_n = c->n;
        struct mem_entry *e = *mem_bucket(sh, l, &bits);

        for (; e != NULL; e = e->next) {
            uint64_t h;
            if (!mem_collect_wants(c, e)) {
                continue;
            }
            h = mem_entry_hash(db, e);
            if (h < g) {
                continue; /* before the cursor: returned already */
            }
            if (c->n == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 64;
                void *nv = realloc(c->v, ncap * sizeof(*c->v));
                if (nv == NULL) {
                    /* Undo this bucket so that *cur can be retried. */
                    while (c->n > bucket_n) {
                        mem_entry_unref(c->v[--c->n].e);
                    }
                    rc = KVD_ENOMEM;
                    goto out;
                }
                c->v = nv;
                c->cap = ncap;
            }
            mem_entry_ref(e);
            c->v[c->n].e = e;
            c->v[c->n].hash = h;
            c->n++;
        }
        visited++;
        end_l = l | (UINT64_MAX >> bits);
        end_g = mem_global(db, si, end_l);
        if (end_g == UINT64_MAX) {
            *done = true;
            g = UINT64_MAX;
            break;
        }
        g = end_g + 1;
        if (end_l == UINT64_MAX || c->n - start_n >= want ||
            visited >= max_buckets) {
            break; /* shard done (the next call locks the next one) */
        }
    }
out:
    *cur = g;
    pthread_rwlock_unlock(&sh->lock);
    if (c->n - start_n > 1) {
        qsort(c->v + start_n, c->n - start_n, sizeof(*c->v), mem_item_cmp);
    }
    return rc;
}

void
mem_collect_release(struct mem_collect *c)
{
    for (size_t i = 0; i < c->n; i++) {
        mem_entry_unref(c->v[i].e);
    }
    c->n = 0;
}

/* ----------------------------------------------------------------- expiry */

/* Shard lock held exclusive: unlink every expired entry of one chain onto
 * *dead; returns how many; lowers *min to the remaining expiries. */
static uint64_t
mem_chain_expire(struct mem_shard *sh, struct mem_entry **pp, int64_t now_ms,
                 struct mem_entry **dead, int64_t *min)
{
    uint64_t n = 0;

    while (*pp != NULL) {
        struct mem_entry *e = *pp;
        if (mem_entry_expired(e, now_ms)) {
            *pp = e->next;
            mem_account_sub(sh, e);
            e->next = *dead;
            *dead = e;
            n++;
            continue;
        }
        if (e->expire_ms != KVD_NO_EXPIRY && e->expire_ms < *min) {
            *min = e->expire_ms;
        }
        pp = &e->next;
    }
    return n;
}

uint64_t
mem_shard_expire_all(kvd_engine *db, struct mem_shard *sh, int64_t now_ms)
{
    struct mem_entry *dead = NULL;
    int64_t min = INT64_MAX;
    uint64_t n = 0;

    (void)db;
    pthread_rwlock_wrlock(&sh->lock);
    if (sh->n_expiring > 0 && sh->min_expire <= now_ms) {
        for (int t = 0; t < 2; t++) {
            size_t nb = sh->tab[t] ? (size_t)1 << sh->bits[t] : 0;
            for (size_t i = 0; i < nb; i++) {
                n += mem_chain_expire(sh, &sh->tab[t][i], now_ms, &dead, &min);
            }
        }
        sh->min_expire = min; /* exact after a full pass */
    }
    pthread_rwlock_unlock(&sh->lock);
    mem_entry_unref_list(dead);
    return n;
}

void
mem_shard_expire_round(kvd_engine *db, struct mem_shard *sh, int64_t now_ms,
                       uint32_t sample, uint32_t *examined, uint32_t *expired)
{
    struct mem_entry *dead = NULL;
    uint64_t l;
    uint32_t visited = 0;

    (void)db;
    *examined = 0;
    *expired = 0;
    pthread_rwlock_wrlock(&sh->lock);
    l = sh->expire_cur;
    /* Visit whole buckets until `sample` entries with an expiry were
     * examined; the bucket budget bounds the time spent when few keys
     * have one. */
    while (sh->n_expiring > 0 && *examined < sample && visited < sample * 4u) {
        unsigned bits;
        struct mem_entry **pp = mem_bucket(sh, l, &bits);
        uint64_t end_l = l | (UINT64_MAX >> bits);

        while (*pp != NULL) {
            struct mem_entry *e = *pp;
            if (e->expire_ms == KVD_NO_EXPIRY) {
                pp = &e->next;
                continue;
            }
            (*examined)++;
            if (e->expire_ms <= now_ms) {
                *pp = e->next;
                mem_account_sub(sh, e);
                e->next = dead;
                dead = e;
                (*expired)++;
                continue;
            }
            if (e->expire_ms < sh->wrap_min) {
                sh->wrap_min = e->expire_ms;
            }
            pp = &e->next;
        }
        visited++;
        if (end_l == UINT64_MAX) {
            /* A full lap saw every entry present at its start (or
             * mem_account_add recorded it), so wrap_min bounds them all. */
            l = 0;
            sh->min_expire = sh->wrap_min;
            sh->wrap_min = INT64_MAX;
        } else {
            l = end_l + 1;
        }
    }
    sh->expire_cur = l;
    pthread_rwlock_unlock(&sh->lock);
    mem_entry_unref_list(dead);
}

/* ------------------------------------------------------------------ stats */

void
mem_shard_stats(kvd_engine *db, struct mem_shard *sh, int64_t now_ms,
                uint64_t *keys, uint64_t *key_bytes, uint64_t *value_bytes,
                uint64_t *alloc_bytes, bool *rehashing)
{
    (void)db;
    pthread_rwlock_rdlock(&sh->lock);
    *keys = sh->count;
    *key_bytes = sh->key_bytes;
    *value_bytes = sh->value_bytes;
    *alloc_bytes = sh->alloc_bytes;
    *rehashing = sh->tab[1] != NULL;
    /* Expired entries not yet reclaimed are still linked: subtract them.
     * Only shards whose earliest expiry has passed need the walk. */
    if (sh->n_expiring > 0 && sh->min_expire <= now_ms) {
        for (int t = 0; t < 2; t++) {
            size_t nb = sh->tab[t] ? (size_t)1 << sh->bits[t] : 0;
            for (size_t i = 0; i < nb; i++) {
                for (struct mem_entry *e = sh->tab[t][i]; e != NULL;
                     e = e->next) {
                    if (mem_entry_expired(e, now_ms)) {
                        (*keys)--;
                        *key_bytes -= e->klen;
                        *value_bytes -= e->vlen;
                    }
                }
            }
        }
    }
    pthread_rwlock_unlock(&sh->lock);
}

/* ------------------------------------------------------------------ clear */

struct mem_old_tables {
    struct mem_entry **tab[2];
    unsigned bits[2];
};

static void
mem_free_tables(struct mem_old_tables *o)
{
    for (int t = 0; t < 2; t++) {
        size_t nb = o->tab[t] ? (size_t)1 << o->bits[t] : 0;
        for (size_t i = 0; i < nb; i++) {
            mem_entry_unref_list(o->tab[t][i]);
        }
        free(o->tab[t]);
        o->tab[t] = NULL;
    }
}

static void
mem_shard_reset(struct mem_shard *sh, struct mem_entry **tab)
{
    sh->tab[0] = tab;
    sh->tab[1] = NULL;
    sh->bits[0] = MEM_MIN_BUCKET_BITS;
    sh->bits[1] = 0;
    sh->rehash_idx = 0;
    sh->count = 0;
    sh->key_bytes = 0;
    sh->value_bytes = 0;
    sh->alloc_bytes = ((size_t)1 << MEM_MIN_BUCKET_BITS) * sizeof(*tab);
    sh->n_expiring = 0;
    sh->min_expire = INT64_MAX;
    sh->wrap_min = INT64_MAX;
    sh->expire_cur = 0;
}

int
mem_table_clear(kvd_engine *db)
{
    uint32_t n = db->nshards;
    struct mem_old_tables *old = calloc(n, sizeof(*old));
    struct mem_entry ***fresh = calloc(n, sizeof(*fresh));
    int rc = KVD_ENOMEM;

    /* Allocate everything first, so that nothing can fail once the first
     * shard has been emptied. */
    if (old == NULL || fresh == NULL) {
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        fresh[i] = calloc((size_t)1 << MEM_MIN_BUCKET_BITS, sizeof(**fresh));
        if (fresh[i] == NULL) {
            goto out;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        pthread_rwlock_wrlock(&db->shards[i].lock);
    }
    for (uint32_t i = 0; i < n; i++) {
        struct mem_shard *sh = &db->shards[i];
        old[i].tab[0] = sh->tab[0];
        old[i].tab[1] = sh->tab[1];
        old[i].bits[0] = sh->bits[0];
        old[i].bits[1] = sh->bits[1];
        mem_shard_reset(sh, fresh[i]);
        fresh[i] = NULL;
    }
    for (uint32_t i = n; i-- > 0;) {
        pthread_rwlock_unlock(&db->shards[i].lock);
    }
    /* Free outside the locks: this may be a lot of memory. */
    for (uint32_t i = 0; i < n; i++) {
        mem_free_tables(&old[i]);
    }
    rc = 0;
out:
    if (fresh != NULL) {
        for (uint32_t i = 0; i < n; i++) {
            free(fresh[i]);
        }
    }
    free(fresh);
    free(old);
    return rc;
}

/* ------------------------------------------------------- init / destroy */

int
mem_table_init(kvd_engine *db)
{
    uint32_t n = db->nshards;
    pthread_rwlockattr_t attr;
    int rc = 0;

    db->shards = aligned_alloc(MEM_CACHELINE_BYTES, n * sizeof(*db->shards));
    if (db->shards == NULL) {
        db->nshards = 0;
        return KVD_ENOMEM;
    }
    memset(db->shards, 0, n * sizeof(*db->shards));
    pthread_rwlockattr_init(&attr);
#if defined(__GLIBC__)
    /* glibc's default lets a steady stream of readers starve a writer;
     * readers still never wait for each other with this kind. */
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    for (uint32_t i = 0; i < n; i++) {
        struct mem_entry **tab =
            calloc((size_t)1 << MEM_MIN_BUCKET_BITS, sizeof(*tab));
        if (tab == NULL || pthread_rwlock_init(&db->shards[i].lock, &attr)) {
            free(tab);
            db->nshards = i; /* what destroy must undo */
            rc = KVD_ENOMEM;
            break;
        }
        mem_shard_reset(&db->shards[i], tab);
    }
    pthread_rwlockattr_destroy(&attr);
    return rc;
}

void
mem_table_destroy(kvd_engine *db)
{
    if (db->shards == NULL) {
        return;
    }
    for (uint32_t i = 0; i < db->nshards; i++) {
        struct mem_shard *sh = &db->shards[i];
        struct mem_old_tables o = {
            .tab = {sh->tab[0], sh->tab[1]},
            .bits = {sh->bits[0], sh->bits[1]},
        };
        mem_free_tables(&o);
        pthread_rwlock_destroy(&sh->lock);
    }
    free(db->shards);
    db->shards = NULL;
}
