/*
 * frontends/http/http_reply.c -- the http frontend's reply encoder: the
 * command layer describes a reply as calls on struct kvd_reply_ops, and
 * this encoder records them as a tree (struct http_rnode) that the route
 * which ran the command turns into an HTTP answer (JSON, raw bytes, a
 * status). Recording rather than writing JSON directly keeps one encoder
 * for every route: what a reply means in HTTP depends on the route (a
 * bulk string is a response body for GET /kv/{key}, a JSON member for
 * GET /kv?key=).
 *
 * Memory: nodes and short strings come from an arena of chunks that
 * http_reply_reset() keeps for the next command (up to a size); a bulk
 * string of HTTP_REPLY_OWN_BYTES or more gets an allocation of its own,
 * which a route may take as its response body without copying it again.
 *
 * One struct http_reply per connection (the encoder's `w`), used by one
 * worker thread; the command layer calls it only from inside `call` on
 * that thread (HTTP sessions have no pass).
 */
#include "http.h"

#include <stdlib.h>
#include <string.h>

/* Arena chunk size, and how much arena reset keeps. */
#define HTTP_ARENA_CHUNK_BYTES 4096
#define HTTP_ARENA_KEEP_BYTES  (64 * 1024)
/* Nesting of arrays and maps followed (deeper replies are refused). */
#define HTTP_REPLY_DEPTH 8

struct http_arena_chunk {
    struct http_arena_chunk *next;
    size_t cap;
    size_t used;
    /* data follows, aligned for any node */
    _Alignas(max_align_t) char data[];
};

static void *
arena_alloc(struct http_reply *rep, size_t n)
{
    struct http_arena_chunk *c = rep->chunks;
    size_t need = (n + 15) & ~(size_t)15;

    if (c == NULL || c->cap - c->used < need) {
        size_t cap =
            need > HTTP_ARENA_CHUNK_BYTES ? need : HTTP_ARENA_CHUNK_BYTES;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL) {
            return NULL;
        }
        c->cap = cap;
        c->used = 0;
        c->next = rep->chunks;
        rep->chunks = c;
        rep->arena_bytes += cap;
    }
    c->used += need;
    return c->data + c->used - need;
}

void
http_reply_reset(struct http_reply *rep)
{
    struct http_arena_chunk *c = rep->chunks, *next;

    /* Free what bulk strings still own (a route took what it wanted). */
    for (size_t i = 0; i < rep->nowned; i++) {
        free(rep->owned[i]);
    }
    rep->nowned = 0;
    /* Keep one chunk when the reply was small; drop the rest. */
    if (c != NULL && rep->arena_bytes <= HTTP_ARENA_KEEP_BYTES) {
        next = c->next;
        c->next = NULL;
        c->used = 0;
        rep->arena_bytes = c->cap;
        c = next;
    } else {
        rep->chunks = NULL;
        rep->arena_bytes = 0;
    }
    for (; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    rep->root = NULL;
    rep->depth = 0;
    rep->failed = 0;
}

void
http_reply_release(struct http_reply *rep)
{
    struct http_arena_chunk *c;

    http_reply_reset(rep);
    c = rep->chunks;
    if (c != NULL) {
        free(c);
    }
    rep->chunks = NULL;
    rep->arena_bytes = 0;
    free(rep->owned);
    rep->owned = NULL;
    rep->owned_cap = 0;
}

void *
http_reply_take(struct http_reply *rep, const struct http_rnode *n)
{
    for (size_t i = 0; i < rep->nowned; i++) {
        if (rep->owned[i] == n->p) {
            rep->owned[i] = rep->owned[--rep->nowned];
            return (void *)n->p;
        }
    }
    return NULL;
}

/* The node the next reply element fills: the root, or the next slot of
 * the innermost open array. NULL on a reply that breaks the shape (more
 * elements than announced, too deep): the reply is marked failed. */
static struct http_rnode *
next_node(struct http_reply *rep)
{
    struct http_rnode *n;

    if (rep->failed) {
        return NULL;
    }
    if (rep->depth == 0) {
        if (rep->root != NULL) {
            rep->failed = 1; /* a second top-level reply */
            return NULL;
        }
        n = arena_alloc(rep, sizeof(*n));
        if (n == NULL) {
            rep->failed = 1;
            return NULL;
        }
        rep->root = n;
    } else {
        struct http_rframe *f = &rep->stack[rep->depth - 1];
        n = &f->node->elem[f->filled++];
    }
    memset(n, 0, sizeof(*n));
    return n;
}

/* An element was completed: close every array it completed. */
static void
done_node(struct http_reply *rep)
{
    while (rep->depth > 0) {
        struct http_rframe *f = &rep->stack[rep->depth - 1];
        if (f->filled < f->node->nelem) {
            return;
        }
        rep->depth--;
    }
}

static int
copy_bytes(struct http_reply *rep, struct http_rnode *n, const void *p,
           size_t len)
{
    char *dst;

    if (len >= HTTP_REPLY_OWN_BYTES) {
        if (rep->nowned == rep->owned_cap) {
            size_t cap = rep->owned_cap ? rep->owned_cap * 2 : 8;
            char **o = realloc(rep->owned, cap * sizeof(*o));
            if (o == NULL) {
                return -1;
            }
            rep->owned = o;
            rep->owned_cap = cap;
        }
        dst = malloc(len);
        if (dst == NULL) {
            return -1;
        }
        rep->owned[rep->nowned++] = dst;
    } else {
        dst = arena_alloc(rep, len + 1);
        if (dst == NULL) {
            return -1;
        }
        dst[len] = '\0';
    }
    memcpy(dst, p, len);
    n->p = dst;
    n->n = len;
    return 0;
}

static void
rep_string(void *w, int type, int status, const void *p, size_t len)
{
    struct http_reply *rep = w;
    struct http_rnode *n = next_node(rep);

    if (n == NULL) {
        return;
    }
    n->type = type;
    n->status = status;
    if (copy_bytes(rep, n, p, len) != 0) {
        rep->failed = 1;
        return;
    }
    done_node(rep);
}

static void
rep_status(void *w, const char *s, size_t n)
{
    rep_string(w, HTTP_R_STATUS, 0, s, n);
}

static void
rep_error(void *w, const char *s, size_t n)
{
    rep_string(w, HTTP_R_ERROR, 0, s, n);
}

static void
rep_error_status(void *w, int status, const char *s, size_t n)
{
    rep_string(w, HTTP_R_ERROR, status, s, n);
}

static void
rep_bulk(void *w, const void *p, size_t n)
{
    rep_string(w, HTTP_R_BULK, 0, p, n);
}

static void
rep_integer(void *w, long long v)
{
    struct http_reply *rep = w;
    struct http_rnode *n = next_node(rep);

    if (n != NULL) {
        n->type = HTTP_R_INT;
        n->i = v;
        done_node(rep);
    }
}

static void
rep_dbl(void *w, double v)
{
    struct http_reply *rep = w;
    struct http_rnode *n = next_node(rep);

    if (n != NULL) {
        n->type = HTTP_R_DOUBLE;
        n->d = v;
        done_node(rep);
    }
}

static void
rep_null_type(void *w, int type)
{
    struct http_reply *rep = w;
    struct http_rnode *n = next_node(rep);

    if (n != NULL) {
        n->type = type;
        done_node(rep);
    }
}

static void
rep_null(void *w)
{
    rep_null_type(w, HTTP_R_NULL);
}

static void
rep_null_array(void *w)
{
    rep_null_type(w, HTTP_R_NULL_ARRAY);
}

static void
rep_container(void *w, int type, size_t nelem)
{
    struct http_reply *rep = w;
    struct http_rnode *n = next_node(rep);

    if (n == NULL) {
        return;
    }
    n->type = type;
    n->nelem = nelem;
    if (nelem == 0) {
        done_node(rep);
        return;
    }
    if (rep->depth == HTTP_REPLY_DEPTH || nelem > SIZE_MAX / sizeof(*n->elem) ||
        (n->elem = arena_alloc(rep, nelem * sizeof(*n->elem))) == NULL) {
        rep->failed = 1;
        return;
    }
    rep->stack[rep->depth].node = n;
    rep->stack[rep->depth].filled = 0;
    rep->depth++;
}

static void
rep_array(void *w, size_t n)
{
    rep_container(w, HTTP_R_ARRAY, n);
}

static void
rep_map(void *w, size_t n)
{
    /* Pairs, flattened: key, value, key, value. */
    rep_container(w, HTTP_R_ARRAY, n > SIZE_MAX / 2 ? SIZE_MAX : n * 2);
}

static void
rep_proto(void *w, int proto)
{
    (void)w;
    (void)proto; /* HTTP sessions never change protocol */
}

const struct kvd_reply_ops http_reply_ops = {
    .status = rep_status,
    .error = rep_error,
    .integer = rep_integer,
    .bulk = rep_bulk,
    .null = rep_null,
    .array = rep_array,
    .map = rep_map,
    .dbl = rep_dbl,
    .proto = rep_proto,
    .null_array = rep_null_array,
    .error_status = rep_error_status,
};
