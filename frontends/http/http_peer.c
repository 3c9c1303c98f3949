/*
 * frontends/http/http_peer.c -- connections per client address, for
 * max_connections_per_ip.
 *
 * A chained hash table of {address, count}, guarded by one mutex: it is
 * touched twice per connection (accept and close), never per request, so
 * one lock is far from contended. An entry exists while its count is
 * above 0, so the table holds at most max_connections entries.
 */
#include "http.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Buckets: the expected connections, rounded to a power of two, within
 * these bounds. */
#define PEER_BUCKETS_MIN 64
#define PEER_BUCKETS_MAX 65536

struct peer_entry {
    struct peer_entry *next;
    struct http_peer_key key;
    unsigned count;
};

struct http_peers {
    pthread_mutex_t lock; /* guards every field below */
    unsigned limit;       /* fixed */
    size_t mask;          /* fixed: buckets - 1 */
    struct peer_entry **bucket;
};

void
http_peer_key_of(const void *sockaddr, struct http_peer_key *k)
{
    const struct sockaddr *sa = sockaddr;

    memset(k, 0, sizeof(*k));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = sockaddr;
        k->family = AF_INET;
        memcpy(k->addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = sockaddr;
        const uint8_t *a = in6->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, 12) == 0) {
            k->family = AF_INET;
            memcpy(k->addr, a + 12, 4);
        } else {
            k->family = AF_INET6;
            memcpy(k->addr, a, 8);
        }
    }
}

static size_t
peer_hash(const struct http_peer_key *k)
{
    /* FNV-1a over the 9 bytes. */
    uint64_t h = UINT64_C(14695981039346656037);

    h = (h ^ k->family) * UINT64_C(1099511628211);
    for (size_t i = 0; i < sizeof(k->addr); i++) {
        h = (h ^ k->addr[i]) * UINT64_C(1099511628211);
    }
    return (size_t)(h ^ h >> 32);
}

static int
key_eq(const struct http_peer_key *a, const struct http_peer_key *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, 8) == 0;
}

struct http_peers *
http_peers_create(unsigned limit, size_t expected)
{
    struct http_peers *p = calloc(1, sizeof(*p));
    size_t n = PEER_BUCKETS_MIN;

    if (p == NULL) {
        return NULL;
    }
    while (n < expected && n < PEER_BUCKETS_MAX) {
        n <<= 1;
    }
    p->bucket = calloc(n, sizeof(*p->bucket));
    if (p->bucket == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->limit = limit;
    p->mask = n - 1;
    return p;
}

void
http_peers_destroy(struct http_peers *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i <= p->mask; i++) {
        struct peer_entry *e = p->bucket[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&p->lock);
    free(p->bucket);
    free(p);
}

int
http_peers_acquire(struct http_peers *p, const struct http_peer_key *k)
{
    struct peer_entry **head = &p->bucket[peer_hash(k) & p->mask], *e;
    int rc = 1;

    pthread_mutex_lock(&p->lock);
    for (e = *head; e != NULL && !key_eq(&e->key, k); e = e->next) {
    }
    if (e == NULL) {
        e = malloc(sizeof(*e));
        if (e == NULL) {
            rc = -1;
            goto out;
        }
        e->key = *k;
        e->count = 0;
        e->next = *head;
        *head = e;
    }
    if (e->count >= p->limit) {
        rc = 0;
    } else {
        e->count++;
    }
out:
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void
http_peers_release(struct http_peers *p, const struct http_peer_key *k)
{
    struct peer_entry **pp = &p->bucket[peer_hash(k) & p->mask], *e;

    pthread_mutex_lock(&p->lock);
    for (; (e = *pp) != NULL; pp = &e->next) {
        if (!key_eq(&e->key, k)) {
            continue;
        }
        if (--e->count == 0) {
            *pp = e->next;
            free(e);
        }
        break;
    }
    pthread_mutex_unlock(&p->lock);
}
