/*
 * bt_test.h -- helpers shared by the btree engine's tests: options as the
 * table declares them, open/close shorthands, a seeded generator, and a
 * model of a store whose keys come from a fixed numbered set.
 *
 * The tests load the plugin with the conformance kit's test host
 * (tests/conformance/th_host.h: fault-injecting file I/O, log capture,
 * fake clock, scratch directories), the btree plugin's path in argv[1].
 * Open/close and the generator are the kit's (th_util.h); the bt_ names
 * below are aliases the test files still use.
 */
#ifndef KVD_TEST_BT_H
#define KVD_TEST_BT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bt.h"
#include "kvd/engine.h"
#include "th_host.h"
#include "th_util.h"

/* The option table's defaults, but sync = never. */
static inline void
bt_test_opts(struct bt_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->sync = BT_SYNC_NEVER;
    o->sync_interval = 1000;
    o->commit_interval = 100;
    o->page_size = 4096;
    o->dirty_limit = 32u << 20;
    o->fill_percent = 90;
}

/* Small pages and a tiny dirty limit: deep trees, overflow runs, and
 * flushes all the time. */
static inline void
bt_test_opts_small(struct bt_opts *o)
{
    bt_test_opts(o);
    o->page_size = 2048;
    o->dirty_limit = 65536;
    o->commit_interval = 5;
}

/* the kit's helpers under the names the btree tests were written with */
#define bt_test_open  th_engine_open
#define bt_test_close th_engine_close
#define bt_mix        th_mix
#define bt_rng        th_rng
#define bt_below      th_below

static inline uint64_t
bt_seed(const char *env, uint64_t def)
{
    const char *s = getenv(env);
    return s != NULL && *s != '\0' ? strtoull(s, NULL, 0) : def;
}

/* The model: key i of a fixed set has a value (or none) and an expiry. */
struct bt_mkey {
    bool present;
    unsigned char *val;
    size_t vlen;
    int64_t exp;
};

struct bt_model {
    size_t n;
    struct bt_mkey *k;
};

static inline void
bt_model_init(struct bt_model *m, size_t n)
{
    m->n = n;
    m->k = calloc(n, sizeof(*m->k));
    assert_non_null(m->k);
}

static inline void
bt_model_put(struct bt_model *m, size_t i, const void *v, size_t vlen,
             int64_t exp)
{
    free(m->k[i].val);
    m->k[i].val = malloc(vlen > 0 ? vlen : 1);
    assert_non_null(m->k[i].val);
    memcpy(m->k[i].val, v, vlen);
    m->k[i].vlen = vlen;
    m->k[i].exp = exp;
    m->k[i].present = true;
}

static inline void
bt_model_del(struct bt_model *m, size_t i)
{
    free(m->k[i].val);
    m->k[i].val = NULL;
    m->k[i].present = false;
}

static inline bool
bt_model_live(const struct bt_model *m, size_t i, int64_t now)
{
    return m->k[i].present && (m->k[i].exp == 0 || m->k[i].exp > now);
}

static inline void
bt_model_copy(struct bt_model *dst, const struct bt_model *src)
{
    bt_model_init(dst, src->n);
    for (size_t i = 0; i < src->n; i++) {
        if (src->k[i].present) {
            bt_model_put(dst, i, src->k[i].val, src->k[i].vlen, src->k[i].exp);
        }
    }
}

static inline void
bt_model_free(struct bt_model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->k[i].val);
    }
    free(m->k);
    m->k = NULL;
}

/* 0 when key i in the engine matches the model, else -1 (and a message). */
static inline int
bt_check_key(const struct kvd_engine_vtable *vt, kvd_engine *e,
             const struct bt_model *m, size_t i, const void *key, size_t klen,
             int64_t now, char *why, size_t whylen)
{
    struct kvd_val v;
    int rc = vt->get(e, key, klen, &v);
    bool live = bt_model_live(m, i, now);

    if (!live) {
        if (rc == KVD_ENOTFOUND) {
            return 0;
        }
        if (rc == 0) {
            kvd_val_release(&v);
        }
        snprintf(why, whylen, "key %zu: expected absent, get gave %d", i, rc);
        return -1;
    }
    if (rc != 0) {
        snprintf(why, whylen, "key %zu: expected %zu bytes, get gave %d", i,
                 m->k[i].vlen, rc);
        return -1;
    }
    if (v.len != m->k[i].vlen ||
        (v.len > 0 && memcmp(v.data, m->k[i].val, v.len) != 0) ||
        v.expire_ms != m->k[i].exp) {
        snprintf(why, whylen, "key %zu: value or expiry differs (%zu vs %zu)",
                 i, v.len, m->k[i].vlen);
        kvd_val_release(&v);
        return -1;
    }
    kvd_val_release(&v);
    return 0;
}

#endif /* KVD_TEST_BT_H */
