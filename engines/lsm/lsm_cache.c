/*
 * lsm_cache.c -- the block cache shared by every table of an lsm store: a
 * sharded LRU of decoded data blocks keyed by (table id, block offset),
 * charged by block bytes.
 *
 * Each shard has its own mutex, hash table and two lists: `lru` holds the
 * blocks only the cache references (refs == 1), oldest first, and `in_use`
 * the ones some reader also pins (refs > 1). Only `lru` blocks are
 * evicted, so a pinned block is never freed under its reader; the shard's
 * usage counts both, and may exceed the capacity by what is pinned. A
 * block evicted or replaced while pinned leaves the cache at once and is
 * freed by its last release.
 *
 * Locking: a shard's mutex guards its table, lists, usage, counters and
 * the refs/in_cache/list fields of its blocks. No call holds two shard
 * locks. Block bytes are immutable once built, so readers use them with
 * no lock. The id counter is an atomic.
 */
#include "lsm_table.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lsm_block.h"

#define LSM_CACHE_MAX_SHARDS 16
/* Fewer shards for a small cache, so one shard is not smaller than a few
 * blocks (a block larger than its shard would be evicted on release). */
#define LSM_CACHE_MIN_SHARD_BYTES (256u * 1024)

struct lsm_cache_shard {
    pthread_mutex_t mu;
    struct lsm_cblock **table; /* hash chains; nbuckets is a power of 2 */
    size_t nbuckets;
    size_t count;
    struct lsm_clink lru;    /* list head: refs == 1, oldest at next */
    struct lsm_clink in_use; /* list head: refs > 1 */
    size_t usage;
    size_t capacity;
    uint64_t hits, misses, inserts, evictions;
};

struct lsm_cache {
    size_t capacity;
    unsigned nshards; /* power of 2 */
    _Atomic uint64_t next_id;
    struct lsm_cache_shard shards[LSM_CACHE_MAX_SHARDS];
};

static inline uint64_t
lsm_cache_hash(uint64_t id, uint64_t off)
{
    uint64_t h = (id * UINT64_C(0x9e3779b97f4a7c15)) ^ off;
    h ^= h >> 29;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 32;
    return h;
}

/* ---- Lists ---------------------------------------------------------- */

static void
lsm_list_init(struct lsm_clink *head)
{
    head->prev = head->next = head;
}

static void
lsm_list_remove(struct lsm_cblock *b)
{
    struct lsm_clink *l = &b->link;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

/* Append at the newest end (before head). */
static void
lsm_list_append(struct lsm_clink *head, struct lsm_cblock *b)
{
    struct lsm_clink *l = &b->link;
    l->next = head;
    l->prev = head->prev;
    l->prev->next = l;
    head->prev = l;
}

/* ---- Blocks --------------------------------------------------------- */

struct lsm_cblock *
lsm_cblock_alloc(size_t size)
{
    struct lsm_cblock *b;

    if (size > LSM_BLOCK_MAX_BYTES) {
        return NULL;
    }
    b = malloc(sizeof(*b) + size + LSM_BLOCK_TRAILER_BYTES);
    if (b == NULL) {
        return NULL;
    }
    memset(b, 0, sizeof(*b));
    b->refs = 1;
    b->size = size;
    b->charge = sizeof(*b) + size + LSM_BLOCK_TRAILER_BYTES;
    return b;
}

/* Drop a reference with the shard lock held; true when it was the last
 * (the caller frees after unlocking). */
static bool
lsm_cblock_unref_locked(struct lsm_cache_shard *s, struct lsm_cblock *b)
{
    b->refs--;
    if (b->refs == 0) {
        return true;
    }
    if (b->in_cache && b->refs == 1) {
        /* Only the cache holds it now: it becomes evictable. */
        lsm_list_remove(b);
        lsm_list_append(&s->lru, b);
    }
    return false;
}

void
lsm_cblock_release(struct lsm_cblock *b)
{
    struct lsm_cache_shard *s;
    bool last;

    if (b == NULL) {
        return;
    }
    s = b->shard;
    if (s == NULL) {
        free(b); /* never shared: its one owner is done with it */
        return;
    }
    pthread_mutex_lock(&s->mu);
    last = lsm_cblock_unref_locked(s, b);
    pthread_mutex_unlock(&s->mu);
    if (last) {
        free(b);
    }
}

/* ---- Shards --------------------------------------------------------- */

static struct lsm_cblock **
lsm_shard_slot(struct lsm_cache_shard *s, uint64_t id, uint64_t off,
               uint32_t hash)
{
    struct lsm_cblock **pp = &s->table[hash & (s->nbuckets - 1)];
    while (*pp != NULL && ((*pp)->id != id || (*pp)->off != off)) {
        pp = &(*pp)->hnext;
    }
    return pp;
}

static void
lsm_shard_grow(struct lsm_cache_shard *s)
{
    size_t nb = s->nbuckets * 2;
    struct lsm_cblock **t = calloc(nb, sizeof(*t));

    if (t == NULL) {
        return; /* longer chains, still correct */
    }
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct lsm_cblock *b = s->table[i];
        while (b != NULL) {
            struct lsm_cblock *nx = b->hnext;
            struct lsm_cblock **slot = &t[b->hash & (nb - 1)];
            b->hnext = *slot;
            *slot = b;
            b = nx;
        }
    }
    free(s->table);
    s->table = t;
    s->nbuckets = nb;
}

/* Take b out of the table and lists (the cache's reference goes with
 * it); true when the caller must free it. */
static bool
lsm_shard_detach_locked(struct lsm_cache_shard *s, struct lsm_cblock **slot)
{
    struct lsm_cblock *b = *slot;

    *slot = b->hnext;
    b->hnext = NULL;
    s->count--;
    s->usage -= b->charge;
    lsm_list_remove(b);
    b->in_cache = false;
    b->refs--;
    return b->refs == 0;
}

/* Evict the oldest unpinned blocks until usage fits; frees them into
 * *freelist (freed after unlocking). */
static void
lsm_shard_evict_locked(struct lsm_cache_shard *s, struct lsm_cblock **freel)
{
    while (s->usage > s->capacity && s->lru.next != &s->lru) {
        struct lsm_cblock *old = (struct lsm_cblock *)s->lru.next;
        struct lsm_cblock **slot =
            lsm_shard_slot(s, old->id, old->off, old->hash);
        if (lsm_shard_detach_locked(s, slot)) {
            old->hnext = *freel;
            *freel = old;
        }
        s->evictions++;
    }
}

static void
lsm_free_list(struct lsm_cblock *b)
{
    while (b != NULL) {
        struct lsm_cblock *nx = b->hnext;
        free(b);
        b = nx;
    }
}

/* ---- Public --------------------------------------------------------- */

int
lsm_cache_create(size_t capacity, lsm_cache **out)
{
    lsm_cache *c = calloc(1, sizeof(*c));
    unsigned ns = LSM_CACHE_MAX_SHARDS;

    *out = NULL;
    if (c == NULL) {
        return KVD_ENOMEM;
    }
    while (ns > 1 && capacity / ns < LSM_CACHE_MIN_SHARD_BYTES) {
        ns /= 2;
    }
    c->capacity = capacity;
    c->nshards = ns;
    atomic_init(&c->next_id, 1);
    for (unsigned i = 0; i < ns; i++) {
        struct lsm_cache_shard *s = &c->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        lsm_list_init(&s->lru);
        lsm_list_init(&s->in_use);
        /* Floor, so the shards together never exceed the capacity. */
        s->capacity = capacity / ns;
        s->nbuckets = 64;
        s->table = calloc(s->nbuckets, sizeof(*s->table));
        if (s->table == NULL) {
            c->nshards = i + 1;
            lsm_cache_destroy(c);
            return KVD_ENOMEM;
        }
    }
    *out = c;
    return 0;
}

void
lsm_cache_destroy(lsm_cache *c)
{
    if (c == NULL) {
        return;
    }
    for (unsigned i = 0; i < c->nshards; i++) {
        struct lsm_cache_shard *s = &c->shards[i];
        for (size_t j = 0; s->table != NULL && j < s->nbuckets; j++) {
            struct lsm_cblock *b = s->table[j];
            while (b != NULL) {
                struct lsm_cblock *nx = b->hnext;
                free(b); /* the contract: no pins remain */
                b = nx;
            }
        }
        free(s->table);
        pthread_mutex_destroy(&s->mu);
    }
    free(c);
}

void
lsm_cache_get_stats(lsm_cache *c, struct lsm_cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (c == NULL) {
        return;
    }
    st->capacity = c->capacity;
    for (unsigned i = 0; i < c->nshards; i++) {
        struct lsm_cache_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        st->hits += s->hits;
        st->misses += s->misses;
        st->inserts += s->inserts;
        st->evictions += s->evictions;
        st->bytes += s->usage;
        pthread_mutex_unlock(&s->mu);
    }
}

uint64_t
lsm_cache_new_id(lsm_cache *c)
{
    return atomic_fetch_add(&c->next_id, 1);
}

static inline struct lsm_cache_shard *
lsm_cache_shard_of(lsm_cache *c, uint64_t h)
{
    return &c->shards[(h >> 60) & (c->nshards - 1)];
}

struct lsm_cblock *
lsm_cache_lookup(lsm_cache *c, uint64_t id, uint64_t off)
{
    uint64_t h;
    struct lsm_cache_shard *s;
    struct lsm_cblock *b;

    if (c == NULL || c->capacity == 0) {
        return NULL;
    }
    h = lsm_cache_hash(id, off);
    s = lsm_cache_shard_of(c, h);
    pthread_mutex_lock(&s->mu);
    b = *lsm_shard_slot(s, id, off, (uint32_t)h);
    if (b != NULL) {
        if (b->refs == 1) {
            lsm_list_remove(b);
            lsm_list_append(&s->in_use, b);
        }
        b->refs++;
        s->hits++;
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->mu);
    return b;
}

void
lsm_cache_insert(lsm_cache *c, uint64_t id, uint64_t off, struct lsm_cblock *b)
{
    uint64_t h;
    struct lsm_cache_shard *s;
    struct lsm_cblock **slot;
    struct lsm_cblock *freel = NULL;

    if (c == NULL || c->capacity == 0 || b->shard != NULL) {
        return;
    }
    h = lsm_cache_hash(id, off);
    s = lsm_cache_shard_of(c, h);
    b->id = id;
    b->off = off;
    b->hash = (uint32_t)h;
    pthread_mutex_lock(&s->mu);
    slot = lsm_shard_slot(s, id, off, b->hash);
    if (*slot != NULL) {
        /* Another reader loaded the same block first: replace it (its
         * pinned readers keep their copy until they release it). */
        struct lsm_cblock *old = *slot;
        if (lsm_shard_detach_locked(s, slot)) {
            old->hnext = freel;
            freel = old;
        }
        slot = lsm_shard_slot(s, id, off, b->hash);
    }
    b->shard = s;
    b->in_cache = true;
    b->refs++; /* the cache's own reference; the caller keeps its pin */
    b->hnext = *slot;
    *slot = b;
    lsm_list_append(&s->in_use, b);
    s->count++;
    s->usage += b->charge;
    s->inserts++;
    lsm_shard_evict_locked(s, &freel);
    if (s->count > s->nbuckets) {
        lsm_shard_grow(s);
    }
    pthread_mutex_unlock(&s->mu);
    lsm_free_list(freel);
}
