/*
 * th_util.h -- small helpers for cmocka tests of one engine on the kit's
 * test host (th_host.h): open/close shorthands that fail the test with
 * the engine's own message, and a seeded generator whose sequence never
 * changes, so that a printed seed replays a run.
 *
 * Header-only (every function inline), for test programs built with
 * cmocka; it includes cmocka.h with the headers cmocka needs first.
 */
#ifndef KVD_TH_UTIL_H
#define KVD_TH_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kvd/engine.h"
#include "th_host.h"

/* Open the engine on dir with opts (its options struct) through th_host;
 * a failure fails the test with the engine's message. */
static inline kvd_engine *
th_engine_open(const struct kvd_engine_vtable *vt, const char *dir,
               const void *opts)
{
    struct kvd_err err;
    kvd_engine *e = NULL;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = vt->open(&th_host, opts, dir, &e, &err);
    if (rc != 0) {
        fail_msg("open %s: %s (%d)", dir, err.msg, rc);
    }
    return e;
}

/* Close e; a failure fails the test with the engine's message. */
static inline void
th_engine_close(const struct kvd_engine_vtable *vt, kvd_engine *e)
{
    struct kvd_err err;

    memset(&err, 0, sizeof(err));
    if (vt->close(e, &err) != 0) {
        fail_msg("close: %s", err.msg);
    }
}

/* ---- a seeded generator (splitmix64) ---- */

/* A well-mixed 64-bit function of x (also a stateless hash for tests). */
static inline uint64_t
th_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The generator's state: initialize with the seed, `{seed}`. */
struct th_rng {
    uint64_t s;
};

static inline uint64_t
th_next(struct th_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    return th_mix(r->s);
}

/* Uniform enough in [0, n); 0 when n is 0. */
static inline uint64_t
th_below(struct th_rng *r, uint64_t n)
{
    return n ? th_next(r) % n : 0;
}

#endif /* KVD_TH_UTIL_H */
