/*
 * core/store_watch.c -- the WATCH registry (see store.h): which sessions
 * watch which keys, marked dirty by every write of the store.
 *
 * Layout: each watched key has a node per watching set, in two lists:
 * its stripe's list (struct store_stripe.watch, guarded by the stripe's
 * mutex: the writers of the key hold that mutex, so they can walk the
 * list without anything more) and its set's array (owned by the set's
 * thread). A write touches its key: it walks its stripe's list and marks
 * the set of every node whose key matches. The store's nwatch counts the
 * nodes of all stripes, so a write finds out with one relaxed load that
 * nobody watches anything, which is the usual case.
 *
 * Why "live with an expiry" is kept: a key that expires is not written by
 * anyone (engines drop expired keys silently), yet to a watcher it
 * changed. So a node remembers the expiry the key had when it was
 * watched, and kvd_store_watch_changed() treats a passed one as a change;
 * a key already expired when watched stays unchanged until written.
 *
 * Locks: a node is linked and unlinked with its stripe held, and nwatch
 * changes with it; a set's dirty flag is atomic (writers set it from any
 * thread, its owner reads it with the stripes of its keys held, so no
 * mark can be missed between the check and the commit).
 */
#include "core/store.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/store_int.h"

struct store_watch_node {
    struct store_watch_node *next; /* the stripe's list */
    kvd_store_watch *owner;
    uint32_t stripe;
    int64_t expire_ms; /* live with this expiry when watched, else none */
    size_t klen;
    unsigned char key[];
};

struct kvd_store_watch {
    kvd_store *st;
    _Atomic int dirty;
    struct store_watch_node **nodes;
    size_t n;
    size_t cap;
};

kvd_store_watch *
kvd_store_watch_create(kvd_store *st)
{
    kvd_store_watch *w = calloc(1, sizeof(*w));

    if (w != NULL) {
        w->st = st->base;
        atomic_init(&w->dirty, 0);
    }
    return w;
}

void
kvd_store_watch_destroy(kvd_store_watch *w)
{
    if (w == NULL) {
        return;
    }
    kvd_store_watch_clear(w);
    free(w->nodes);
    free(w);
}

size_t
kvd_store_watch_count(const kvd_store_watch *w)
{
    return w->n;
}

static bool
watch_same_key(const struct store_watch_node *n, const void *key, size_t klen)
{
    return n->klen == klen && memcmp(n->key, key, klen) == 0;
}

int
kvd_store_watch_key(kvd_store_watch *w, const void *key, size_t klen)
{
    kvd_store *st = w->st;
    struct store_watch_node *node;
    struct kvd_val cur;
    uint32_t s;

    if (kvd_store_check_key(st, klen) != 0) {
        return 0; /* no such key can exist or be written */
    }
    for (size_t i = 0; i < w->n; i++) {
        if (watch_same_key(w->nodes[i], key, klen)) {
            return 0;
        }
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        struct store_watch_node **nodes =
            realloc(w->nodes, cap * sizeof(*nodes));
        if (nodes == NULL) {
            return KVD_ENOMEM;
        }
        w->nodes = nodes;
        w->cap = cap;
    }
    node = malloc(sizeof(*node) + klen);
    if (node == NULL) {
        return KVD_ENOMEM;
    }
    s = kvd_store_stripe_of(key, klen);
    node->owner = w;
    node->stripe = s;
    node->expire_ms = KVD_NO_EXPIRY;
    node->klen = klen;
    memcpy(node->key, key, klen);
    kvd_store_stripe_lock(st, s);
    /* Under the stripe: no write can come between this read and the
     * node being visible to writers. */
    if (kvd_store_get_raw(st, key, klen, &cur) == 0) {
        node->expire_ms = cur.expire_ms;
        kvd_val_release(&cur);
    }
    node->next = st->stripes[s].watch;
    st->stripes[s].watch = node;
    atomic_fetch_add_explicit(&st->nwatch, 1, memory_order_relaxed);
    kvd_store_stripe_unlock(st, s);
    w->nodes[w->n++] = node;
    return 0;
}

void
kvd_store_watch_clear(kvd_store_watch *w)
{
    kvd_store *st = w->st;

    for (size_t i = 0; i < w->n; i++) {
        struct store_watch_node *node = w->nodes[i];
        struct store_watch_node **pp = &st->stripes[node->stripe].watch;

        kvd_store_stripe_lock(st, node->stripe);
        while (*pp != node) {
            pp = &(*pp)->next;
        }
        *pp = node->next;
        atomic_fetch_sub_explicit(&st->nwatch, 1, memory_order_relaxed);
        kvd_store_stripe_unlock(st, node->stripe);
        free(node);
    }
    w->n = 0;
    atomic_store_explicit(&w->dirty, 0, memory_order_relaxed);
}

bool
kvd_store_watch_changed(kvd_store_watch *w)
{
    if (atomic_load_explicit(&w->dirty, memory_order_acquire)) {
        return true;
    }
    for (size_t i = 0; i < w->n; i++) {
        const struct store_watch_node *node = w->nodes[i];
        if (node->expire_ms != KVD_NO_EXPIRY &&
            kvd_store_expired(w->st, node->expire_ms)) {
            return true; /* live when watched, expired by now */
        }
    }
    return false;
}

int
kvd_store_txn_add_watch(kvd_store_txn *t, const kvd_store_watch *w)
{
    for (size_t i = 0; i < w->n; i++) {
        int rc = kvd_store_txn_add_stripe(t, w->nodes[i]->stripe);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void
watch_mark(kvd_store *st, uint32_t s, const void *key, size_t klen)
{
    for (struct store_watch_node *n = st->stripes[s].watch; n != NULL;
         n = n->next) {
        if (watch_same_key(n, key, klen)) {
            atomic_store_explicit(&n->owner->dirty, 1, memory_order_release);
        }
    }
}

void
kvd_store_watch_mark_locked(kvd_store *st, const void *key, size_t klen)
{
    watch_mark(st->base, kvd_store_stripe_of(key, klen), key, klen);
}

void
kvd_store_watch_clear_locked(kvd_store *st)
{
    st = st->base;
    if (atomic_load_explicit(&st->nwatch, memory_order_relaxed) == 0) {
        return;
    }
    for (uint32_t s = 0; s < STORE_STRIPES; s++) {
        for (struct store_watch_node *n = st->stripes[s].watch; n != NULL;
             n = n->next) {
            struct kvd_val cur;
            /* Only keys that exist change (an expired one does not). */
            if (kvd_store_get_raw(st, n->key, n->klen, &cur) == 0) {
                kvd_val_release(&cur);
                atomic_store_explicit(&n->owner->dirty, 1,
                                      memory_order_release);
            }
        }
    }
}
