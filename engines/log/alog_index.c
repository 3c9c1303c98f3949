/*
 * alog_index.c -- the sharded hash index of the log engine (see
 * alog_index.h for the layout, the ordering property and the locking).
 *
 * Chained buckets: an entry is one allocation (header + key), buckets are
 * an array of pointers, grown by doubling when a shard holds more entries
 * than buckets. Growing rehashes one shard only (1/256 of the keys), so the
 * pause is short and other shards keep working. Recovery sizes the arrays
 * up front (alog_index_reserve) from the record counts of the hint files.
 */
#include "alog_index.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ALOG_INIT_BUCKET_BITS 4
#define ALOG_MAX_BUCKET_BITS  (64 - ALOG_SHARD_BITS)
/* malloc's per-chunk overhead, for the memory estimate */
#define ALOG_MALLOC_OVERHEAD_BYTES 8

struct alog_arena_blk {
    struct alog_arena_blk *next;
    size_t len; /* mapped bytes, this header included */
};

__extension__ typedef unsigned __int128 alog_u128;

static inline uint64_t
hash_mix(uint64_t a, uint64_t b)
{
    alog_u128 r = (alog_u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t
hash_read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/*
 * A multiply-fold hash over 8-byte words with a fixed seed: fast for the
 * short keys a key-value store sees, well mixed in the top bits (which pick
 * the shard). The seed is fixed so that iteration positions (pos = hash)
 * stay meaningful across restarts.
 */
uint64_t
alog_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    const uint64_t k0 = 0x9e3779b97f4a7c15ull;
    const uint64_t k1 = 0xbf58476d1ce4e5b9ull;
    uint64_t h = 0x243f6a8885a308d3ull ^ ((uint64_t)klen * k0);
    size_t n = klen;

    while (n >= 16) {
        h = hash_mix(hash_read64(p) ^ k0 ^ h, hash_read64(p + 8) ^ k1);
        p += 16;
        n -= 16;
    }
    if (n > 0) {
        unsigned char tail[16] = {0};
        memcpy(tail, p, n);
        h = hash_mix(hash_read64(tail) ^ k0 ^ h, hash_read64(tail + 8) ^ k1);
    }
    h = hash_mix(h ^ k1, k0 ^ (uint64_t)klen);
    h ^= h >> 29;
    if (h == UINT64_MAX) {
        h--;
    }
    return h;
}

static uint64_t
ent_mem(const struct alog_ent *e)
{
    size_t n = sizeof(*e) + e->klen + ALOG_MALLOC_OVERHEAD_BYTES;
    return (n + 15) & ~(size_t)15;
}

int
alog_index_init(struct alog_index *ix)
{
    pthread_rwlockattr_t attr;

    memset(ix, 0, sizeof(*ix));
    pthread_rwlockattr_init(&attr);
    /* a steady stream of readers must not starve writers */
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &ix->shards[i];
        sh->bits = ALOG_INIT_BUCKET_BITS;
        sh->buckets = calloc((size_t)1 << sh->bits, sizeof(*sh->buckets));
        if (sh->buckets == NULL) {
            pthread_rwlockattr_destroy(&attr);
            alog_index_release(ix);
            return -1;
        }
        sh->mem_bytes = ((size_t)1 << sh->bits) * sizeof(*sh->buckets);
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
        if (sh->buckets == NULL) {
            continue;
        }
        for (size_t b = 0; b < ((size_t)1 << sh->bits); b++) {
            struct alog_ent *e = sh->buckets[b];
            while (e != NULL) {
                struct alog_ent *next = e->next;
                if (!(e->flags & ALOG_ENT_ARENA)) {
                    free(e);
                }
                e = next;
            }
        }
        free(sh->buckets);
        sh->buckets = NULL;
        pthread_rwlock_destroy(&sh->lock);
    }
    while (ix->arena != NULL) {
        struct alog_arena_blk *next = ix->arena->next;
        munmap(ix->arena, ix->arena->len);
        ix->arena = next;
    }
    ix->arena_pos = NULL;
    ix->arena_end = NULL;
}

/* Start a new arena block; 0, or -1 when the system has no memory. */
static int
arena_grow(struct alog_index *ix)
{
    size_t len = ALOG_ARENA_BLOCK_BYTES;
    struct alog_arena_blk *b;

    /* MAP_POPULATE: the pages are needed at once; one call faults them
     * all in, where touching them would fault once per page */
    b = mmap(NULL, len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (b == MAP_FAILED) {
        return -1;
    }
    b->next = ix->arena;
    b->len = len;
    ix->arena = b;
    ix->arena_pos = (unsigned char *)(b + 1);
    ix->arena_end = (unsigned char *)b + len;
    return 0;
}

struct alog_ent *
alog_ent_create_bulk(struct alog_index *ix, uint64_t hash, const void *key,
                     size_t klen)
{
    size_t need = alog_ent_bytes(klen);
    struct alog_ent *e;

    if ((size_t)(ix->arena_end - ix->arena_pos) < need &&
        (need > ALOG_ARENA_BLOCK_BYTES / 16 || arena_grow(ix) != 0)) {
        return alog_ent_create(hash, key, klen);
    }
    e = (struct alog_ent *)(void *)ix->arena_pos;
    ix->arena_pos += need;
    memset(e, 0, sizeof(*e));
    e->hash = hash;
    e->klen = (uint16_t)klen;
    e->flags = ALOG_ENT_ARENA;
    memcpy(e->key, key, klen);
    return e;
}

struct alog_ent *
alog_shard_find_locked(struct alog_shard *sh, uint64_t hash, const void *key,
                       size_t klen)
{
    struct alog_ent *e = sh->buckets[alog_shard_bucket(sh, hash)];

    for (; e != NULL; e = e->next) {
        if (e->hash == hash && e->klen == klen &&
            memcmp(e->key, key, klen) == 0) {
            return e;
        }
    }
    return NULL;
}

struct alog_ent *
alog_ent_create(uint64_t hash, const void *key, size_t klen)
{
    struct alog_ent *e = malloc(sizeof(*e) + klen);

    if (e == NULL) {
        return NULL;
    }
    memset(e, 0, sizeof(*e));
    e->hash = hash;
    e->klen = (uint16_t)klen;
    memcpy(e->key, key, klen);
    return e;
}

void
alog_shard_account_locked(struct alog_shard *sh, const struct alog_ent *e)
{
    if (e->flags & ALOG_ENT_TOMBSTONE) {
        return;
    }
    sh->live_keys++;
    sh->key_bytes += e->klen;
    sh->value_bytes += e->vlen;
    if (e->expire_ms != 0) {
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
    sh->key_bytes -= e->klen;
    sh->value_bytes -= e->vlen;
    if (e->expire_ms != 0) {
        sh->expiring--;
    }
}

void
alog_shard_insert_locked(struct alog_shard *sh, struct alog_ent *e)
{
    size_t b = alog_shard_bucket(sh, e->hash);

    e->next = sh->buckets[b];
    sh->buckets[b] = e;
    sh->count++;
    sh->mem_bytes += ent_mem(e);
    alog_shard_account_locked(sh, e);
    alog_shard_maybe_grow_locked(sh);
}

void
alog_shard_remove_locked(struct alog_shard *sh, struct alog_ent *e)
{
    struct alog_ent **pp = &sh->buckets[alog_shard_bucket(sh, e->hash)];

    while (*pp != e) {
        pp = &(*pp)->next;
    }
    *pp = e->next;
    sh->count--;
    sh->mem_bytes -= ent_mem(e);
    alog_shard_unaccount_locked(sh, e);
    if (!(e->flags & ALOG_ENT_ARENA)) {
        free(e);
    }
}

/* Rehash sh into 2^new_bits buckets (write lock held); 0 or -1. */
static int
shard_resize_locked(struct alog_shard *sh, unsigned new_bits)
{
    size_t old_n = (size_t)1 << sh->bits;
    struct alog_ent **nb;

    nb = calloc((size_t)1 << new_bits, sizeof(*nb));
    if (nb == NULL) {
        return -1;
    }
    for (size_t b = 0; b < old_n; b++) {
        struct alog_ent *e = sh->buckets[b];
        while (e != NULL) {
            struct alog_ent *next = e->next;
            size_t nbk =
                (size_t)((e->hash << ALOG_SHARD_BITS) >> (64 - new_bits));
            e->next = nb[nbk];
            nb[nbk] = e;
            e = next;
        }
    }
    free(sh->buckets);
    sh->buckets = nb;
    sh->bits = new_bits;
    sh->mem_bytes += (((size_t)1 << new_bits) - old_n) * sizeof(*nb);
    return 0;
}

void
alog_shard_maybe_grow_locked(struct alog_shard *sh)
{
    if (sh->count <= ((size_t)1 << sh->bits) ||
        sh->bits + 1 > ALOG_MAX_BUCKET_BITS) {
        return;
    }
    (void)shard_resize_locked(sh, sh->bits + 1);
}

void
alog_index_reserve(struct alog_index *ix, uint64_t keys)
{
    uint64_t per_shard = keys / ALOG_SHARDS;
    unsigned bits = ALOG_INIT_BUCKET_BITS;

    while (bits < ALOG_MAX_BUCKET_BITS && ((uint64_t)1 << bits) < per_shard) {
        bits++;
    }
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        struct alog_shard *sh = &ix->shards[i];
        if (bits > sh->bits && shard_resize_locked(sh, bits) != 0) {
            return;
        }
    }
}
