/*
 * lsm_mem.c -- the memtable: an arena skip list with one writer and
 * lock-free readers (see lsm_mem.h for the concurrency rules).
 *
 * Node = {internal key length, value length, height, next[height]}
 * followed by the internal key (user key + 8-byte trailer, contiguous, so
 * an iterator hands it out as is) and the stored value. Heights are drawn
 * with p = 1/4 up to 12 levels, which keeps a search near log4(n) * 4
 * comparisons for the ~40,000 entries of a 4 MiB memtable.
 *
 * The arena hands out 8-byte aligned pieces of 256 KiB chunks; an entry of
 * more than a quarter chunk gets a chunk of its own, so a 16 MiB value
 * wastes nothing. Chunks are freed together with the memtable.
 */
#include "lsm_mem.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MEM_MAX_HEIGHT  12
#define MEM_CHUNK_BYTES (256u * 1024u)
#define MEM_ALIGN       8u

struct mem_chunk {
    struct mem_chunk *next;
    size_t size;
    _Alignas(16) unsigned char data[];
};

struct mnode {
    uint32_t iklen; /* user key + trailer */
    uint32_t vlen;
    uint8_t height;
    _Atomic(struct mnode *) next[];
};

/*
 * Fields: refs, used, entries, last_seq and height are atomics any thread
 * may read; the arena (chunks, ptr, left) and rnd belong to the writer.
 */
struct lsm_mem {
    _Atomic int refs;
    uint64_t wal_number;      /* fixed */
    _Atomic size_t used;      /* arena bytes handed out */
    _Atomic size_t allocated; /* arena bytes malloc'd */
    _Atomic uint64_t entries;
    _Atomic uint64_t last_seq;
    _Atomic int height; /* of the tallest node */
    uint32_t rnd;
    struct mem_chunk *chunks;
    unsigned char *ptr;
    size_t left;
    struct mnode *head;
};

/* ---- arena ---- */

static size_t
align_up(size_t n)
{
    return (n + MEM_ALIGN - 1) & ~(size_t)(MEM_ALIGN - 1);
}

static struct mem_chunk *
chunk_new(lsm_mem *m, size_t size)
{
    struct mem_chunk *c = malloc(sizeof(*c) + size);

    if (c == NULL) {
        return NULL;
    }
    c->size = size;
    c->next = m->chunks;
    m->chunks = c;
    atomic_fetch_add_explicit(&m->allocated, sizeof(*c) + size,
                              memory_order_relaxed);
    return c;
}

static void *
arena_alloc(lsm_mem *m, size_t n)
{
    void *p;

    n = align_up(n);
    if (n > m->left) {
        struct mem_chunk *c;
        if (n > MEM_CHUNK_BYTES / 4) {
            /* a big entry: its own chunk, the current one stays */
            c = chunk_new(m, n);
            if (c == NULL) {
                return NULL;
            }
            atomic_fetch_add_explicit(&m->used, n, memory_order_relaxed);
            return c->data;
        }
        c = chunk_new(m, MEM_CHUNK_BYTES);
        if (c == NULL) {
            return NULL;
        }
        m->ptr = c->data;
        m->left = MEM_CHUNK_BYTES;
    }
    p = m->ptr;
    m->ptr += n;
    m->left -= n;
    atomic_fetch_add_explicit(&m->used, n, memory_order_relaxed);
    return p;
}

int
lsm_mem_reserve(lsm_mem *m, size_t bytes)
{
    struct mem_chunk *c;
    size_t size;

    bytes = align_up(bytes);
    if (bytes <= m->left) {
        return 0;
    }
    size = bytes > MEM_CHUNK_BYTES ? bytes : MEM_CHUNK_BYTES;
    c = chunk_new(m, size);
    if (c == NULL) {
        return KVD_ENOMEM;
    }
    m->ptr = c->data;
    m->left = size;
    return 0;
}

/* ---- nodes ---- */

static size_t
node_bytes(size_t iklen, size_t vlen, int height)
{
    return sizeof(struct mnode) +
           (size_t)height * sizeof(_Atomic(struct mnode *)) + iklen + vlen;
}

size_t
lsm_mem_entry_bytes(size_t klen, size_t vlen)
{
    /* the worst case: full height, PUTX expiry, alignment */
    return align_up(
        node_bytes(klen + LSM_TRAILER_BYTES, vlen + 8, MEM_MAX_HEIGHT));
}

static unsigned char *
node_key(const struct mnode *n)
{
    return (unsigned char *)(uintptr_t)(n->next + n->height);
}

static struct mnode *
node_next(struct mnode *n, int level)
{
    return atomic_load_explicit(&n->next[level], memory_order_acquire);
}

/* Node key against (user key k, trailer tr). */
static int
node_cmp(const struct mnode *n, const void *k, size_t kn, uint64_t tr)
{
    const unsigned char *nk = node_key(n);
    size_t nun = n->iklen - LSM_TRAILER_BYTES;
    int c = lsm_user_cmp(nk, nun, k, kn);
    uint64_t nt;

    if (c != 0) {
        return c;
    }
    nt = kvd_get_le64(nk + nun);
    return nt > tr ? -1 : nt < tr ? 1 : 0;
}

/* First node >= (k, tr), filling prev[] with the last node < target on
 * every level when prev is not NULL. */
static struct mnode *
find_ge(lsm_mem *m, const void *k, size_t kn, uint64_t tr, struct mnode **prev)
{
    struct mnode *x = m->head;
    int level = atomic_load_explicit(&m->height, memory_order_relaxed) - 1;

    for (;;) {
        struct mnode *next = node_next(x, level);
        if (next != NULL && node_cmp(next, k, kn, tr) < 0) {
            x = next;
            continue;
        }
        if (prev != NULL) {
            prev[level] = x;
        }
        if (level == 0) {
            return next;
        }
        level--;
    }
}

static int
random_height(lsm_mem *m)
{
    int h = 1;

    while (h < MEM_MAX_HEIGHT) {
        /* xorshift32 */
        m->rnd ^= m->rnd << 13;
        m->rnd ^= m->rnd >> 17;
        m->rnd ^= m->rnd << 5;
        if ((m->rnd & 3) != 0) {
            break;
        }
        h++;
    }
    return h;
}

/* ---- lifecycle ---- */

int
lsm_mem_create(uint64_t wal_number, lsm_mem **out)
{
    lsm_mem *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        return KVD_ENOMEM;
    }
    atomic_init(&m->refs, 1);
    atomic_init(&m->used, 0);
    atomic_init(&m->allocated, 0);
    atomic_init(&m->entries, 0);
    atomic_init(&m->last_seq, 0);
    atomic_init(&m->height, 1);
    m->wal_number = wal_number;
    m->rnd = 0x9e3779b9u ^ (uint32_t)wal_number;
    if (m->rnd == 0) {
        m->rnd = 1;
    }
    m->head = arena_alloc(m, node_bytes(0, 0, MEM_MAX_HEIGHT));
    if (m->head == NULL) {
        lsm_mem_unref(m);
        return KVD_ENOMEM;
    }
    m->head->iklen = 0;
    m->head->vlen = 0;
    m->head->height = MEM_MAX_HEIGHT;
    for (int i = 0; i < MEM_MAX_HEIGHT; i++) {
        atomic_init(&m->head->next[i], NULL);
    }
    *out = m;
    return 0;
}

void
lsm_mem_ref(lsm_mem *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void
lsm_mem_unref(lsm_mem *m)
{
    struct mem_chunk *c;

    if (m == NULL ||
        atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    c = m->chunks;
    while (c != NULL) {
        struct mem_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(m);
}

uint64_t
lsm_mem_wal(const lsm_mem *m)
{
    return m->wal_number;
}

size_t
lsm_mem_bytes(const lsm_mem *m)
{
    return atomic_load_explicit(&((lsm_mem *)(uintptr_t)m)->used,
                                memory_order_relaxed);
}

uint64_t
lsm_mem_entries(const lsm_mem *m)
{
    return atomic_load_explicit(&((lsm_mem *)(uintptr_t)m)->entries,
                                memory_order_relaxed);
}

uint64_t
lsm_mem_last_seq(const lsm_mem *m)
{
    return atomic_load_explicit(&((lsm_mem *)(uintptr_t)m)->last_seq,
                                memory_order_relaxed);
}

/* ---- writer ---- */

int
lsm_mem_add(lsm_mem *m, uint64_t seq, int type, const void *key, size_t klen,
            int64_t expire_ms, const void *val, size_t vlen)
{
    struct mnode *prev[MEM_MAX_HEIGHT];
    uint64_t tr = lsm_pack_trailer(seq, type);
    size_t stored = type == LSM_T_DEL    ? 0
                    : type == LSM_T_PUTX ? vlen + 8
                                         : vlen;
    int height = random_height(m);
    int cur = atomic_load_explicit(&m->height, memory_order_relaxed);
    struct mnode *n;
    unsigned char *p;

    n = arena_alloc(m, node_bytes(klen + LSM_TRAILER_BYTES, stored, height));
    if (n == NULL) {
        return KVD_ENOMEM;
    }
    n->iklen = (uint32_t)(klen + LSM_TRAILER_BYTES);
    n->vlen = (uint32_t)stored;
    n->height = (uint8_t)height;
    p = node_key(n);
    memcpy(p, key, klen);
    kvd_put_le64(p + klen, tr);
    p += klen + LSM_TRAILER_BYTES;
    if (type == LSM_T_PUTX) {
        kvd_put_le64(p, (uint64_t)expire_ms);
        p += 8;
    }
    if (type != LSM_T_DEL && vlen > 0) {
        memcpy(p, val, vlen);
    }

    find_ge(m, key, klen, tr, prev);
    if (height > cur) {
        for (int i = cur; i < height; i++) {
            prev[i] = m->head;
        }
        /* readers that see the new height before the links find NULL
         * at the top levels of head, which is fine */
        atomic_store_explicit(&m->height, height, memory_order_relaxed);
    }
    for (int i = 0; i < height; i++) {
        atomic_store_explicit(&n->next[i], node_next(prev[i], i),
                              memory_order_relaxed);
        atomic_store_explicit(&prev[i]->next[i], n, memory_order_release);
    }
    atomic_fetch_add_explicit(&m->entries, 1, memory_order_relaxed);
    atomic_store_explicit(&m->last_seq, seq, memory_order_relaxed);
    return 0;
}

/* ---- readers ---- */

int
lsm_mem_get(lsm_mem *m, const void *key, size_t klen, uint64_t snapshot,
            struct lsm_mhit *hit)
{
    struct mnode *n =
        find_ge(m, key, klen, lsm_pack_trailer(snapshot, LSM_T_SEEK), NULL);
    const unsigned char *nk;
    uint64_t tr;

    if (n == NULL) {
        return KVD_ENOTFOUND;
    }
    nk = node_key(n);
    if (n->iklen - LSM_TRAILER_BYTES != klen || memcmp(nk, key, klen) != 0) {
        return KVD_ENOTFOUND;
    }
    tr = kvd_get_le64(nk + klen);
    hit->type = (int)(tr & 0xff);
    hit->seq = tr >> 8;
    hit->val.p = nk + n->iklen;
    hit->val.n = n->vlen;
    return 0;
}

struct mem_it {
    lsm_it base;
    lsm_mem *m;
    struct mnode *node;
};

static bool
mit_valid(lsm_it *it)
{
    return ((struct mem_it *)it)->node != NULL;
}

static void
mit_seek_first(lsm_it *it)
{
    struct mem_it *mi = (struct mem_it *)it;
    mi->node = node_next(mi->m->head, 0);
}

static void
mit_seek(lsm_it *it, struct lsm_slice target)
{
    struct mem_it *mi = (struct mem_it *)it;
    struct lsm_slice u = lsm_ikey_user(target);
    mi->node = find_ge(mi->m, u.p, u.n, lsm_ikey_trailer(target), NULL);
}

static void
mit_next(lsm_it *it)
{
    struct mem_it *mi = (struct mem_it *)it;
    mi->node = node_next(mi->node, 0);
}

static struct lsm_slice
mit_key(lsm_it *it)
{
    struct mem_it *mi = (struct mem_it *)it;
    struct lsm_slice s = {node_key(mi->node), mi->node->iklen};
    return s;
}

static struct lsm_slice
mit_value(lsm_it *it)
{
    struct mem_it *mi = (struct mem_it *)it;
    struct lsm_slice s = {node_key(mi->node) + mi->node->iklen, mi->node->vlen};
    return s;
}

static int
mit_status(lsm_it *it)
{
    (void)it;
    return 0;
}

static void
mit_destroy(lsm_it *it)
{
    struct mem_it *mi = (struct mem_it *)it;

    if (mi == NULL) {
        return;
    }
    lsm_mem_unref(mi->m);
    free(mi);
}

static const struct lsm_it_ops mem_it_ops = {
    .valid = mit_valid,
    .seek_first = mit_seek_first,
    .seek = mit_seek,
    .next = mit_next,
    .key = mit_key,
    .value = mit_value,
    .status = mit_status,
    .destroy = mit_destroy,
};

int
lsm_mem_iter(lsm_mem *m, lsm_it **out)
{
    struct mem_it *mi = calloc(1, sizeof(*mi));

    if (mi == NULL) {
        return KVD_ENOMEM;
    }
    mi->base.ops = &mem_it_ops;
    lsm_mem_ref(m);
    mi->m = m;
    mi->node = NULL;
    *out = &mi->base;
    return 0;
}
