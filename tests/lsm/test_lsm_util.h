/*
 * test_lsm_util.h -- helpers shared by the lsm engine's tests: default
 * options, a sorted in-memory model of the store, and a seed for the kit's
 * generator, printed so that a failure replays. Open/close shorthands and
 * the generator itself are the kit's (th_util.h).
 *
 * The tests load the plugin with the conformance kit's test host
 * (tests/conformance/th_host.h: fault-injecting file I/O, log capture,
 * fake clock, scratch directories), passing the lsm plugin's path as
 * argv[1].
 */
#ifndef KVD_TEST_LSM_UTIL_H
#define KVD_TEST_LSM_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kvd/engine.h"
#include "lsm_opts.h"
#include "th_host.h"
#include "th_util.h"

/* The option table's defaults, but sync = never (tests decide). */
static inline void
lt_opts_default(struct lsm_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->sync = LSM_SYNC_NEVER;
    o->sync_interval = 1000;
    o->memtable_size = 4u << 20;
    o->block_size = 4096;
    o->block_cache_size = 64u << 20;
    o->bloom_bits_per_key = 10;
    o->l0_compaction_trigger = 4;
    o->l0_slowdown = 8;
    o->l0_stop = 12;
    o->level1_size = 10u << 20;
    o->table_size = 2u << 20;
    o->corruption = LSM_CORRUPT_STOP;
    o->max_open_files = 1000;
    o->auto_compact = 1;
    o->stats_scan_limit = 4000000;
    o->manifest_size = 64u << 20;
}

/* Tiny sizes: flushes and compactions all the time. */
static inline void
lt_opts_tiny(struct lsm_opts *o)
{
    lt_opts_default(o);
    o->memtable_size = 4096;
    o->table_size = 4096;
    o->level1_size = 16384;
    o->block_size = 512;
    o->l0_compaction_trigger = 2;
    o->l0_slowdown = 6;
    o->l0_stop = 10;
    o->manifest_size = 4096; /* rolled after every few edits */
}

/* ---- random: th_util.h's generator ---- */

/* The seed from $name, else the clock; printed so a failure replays. */
static inline uint64_t
lt_seed(const char *name)
{
    const char *s = getenv(name);
    uint64_t seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);

    print_message("seed %llu (set %s to replay)\n", (unsigned long long)seed,
                  name);
    return seed;
}

/* ---- a sorted model: keys -> (value, expiry) ---- */

struct lt_ent {
    char *key;
    size_t klen;
    char *val;
    size_t vlen;
    int64_t expire_ms;
};

struct lt_model {
    struct lt_ent *e;
    size_t n;
    size_t cap;
};

static inline int
lt_keycmp(const void *a, size_t an, const void *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c != 0) {
        return c;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

/* Index of the first entry >= key. */
static inline size_t
lt_lower(const struct lt_model *m, const void *key, size_t klen)
{
    size_t lo = 0;
    size_t hi = m->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lt_keycmp(m->e[mid].key, m->e[mid].klen, key, klen) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static inline struct lt_ent *
lt_find(const struct lt_model *m, const void *key, size_t klen)
{
    size_t i = lt_lower(m, key, klen);

    if (i < m->n && lt_keycmp(m->e[i].key, m->e[i].klen, key, klen) == 0) {
        return &m->e[i];
    }
    return NULL;
}

static inline void
lt_put(struct lt_model *m, const void *key, size_t klen, const void *val,
       size_t vlen, int64_t expire_ms)
{
    size_t i = lt_lower(m, key, klen);
    struct lt_ent *e;

    if (i < m->n && lt_keycmp(m->e[i].key, m->e[i].klen, key, klen) == 0) {
        e = &m->e[i];
        free(e->val);
    } else {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 64;
            m->e = realloc(m->e, m->cap * sizeof(*m->e));
            assert_non_null(m->e);
        }
        memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof(*m->e));
        m->n++;
        e = &m->e[i];
        e->key = malloc(klen);
        assert_non_null(e->key);
        memcpy(e->key, key, klen);
        e->klen = klen;
    }
    e->val = malloc(vlen ? vlen : 1);
    assert_non_null(e->val);
    if (vlen > 0) {
        memcpy(e->val, val, vlen);
    }
    e->vlen = vlen;
    e->expire_ms = expire_ms;
}

static inline bool
lt_del(struct lt_model *m, const void *key, size_t klen)
{
    size_t i = lt_lower(m, key, klen);

    if (i < m->n && lt_keycmp(m->e[i].key, m->e[i].klen, key, klen) == 0) {
        free(m->e[i].key);
        free(m->e[i].val);
        memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(*m->e));
        m->n--;
        return true;
    }
    return false;
}

static inline bool
lt_live(const struct lt_ent *e, int64_t now)
{
    return e->expire_ms == 0 || e->expire_ms > now;
}

static inline void
lt_model_free(struct lt_model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].key);
        free(m->e[i].val);
    }
    free(m->e);
    memset(m, 0, sizeof(*m));
}

static inline void
lt_model_copy(struct lt_model *dst, const struct lt_model *src)
{
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < src->n; i++) {
        lt_put(dst, src->e[i].key, src->e[i].klen, src->e[i].val,
               src->e[i].vlen, src->e[i].expire_ms);
    }
}

/*
 * Compare the engine with the model at time now: every model key by get,
 * and a full iteration (or one from `start`, or within `prefix`). Returns
 * 0, or 1 after printing the first difference (with `what` and the seed).
 */
static inline int
lt_check_get(const struct kvd_engine_vtable *vt, kvd_engine *e,
             const struct lt_model *m, int64_t now, const char *what)
{
    for (size_t i = 0; i < m->n; i++) {
        const struct lt_ent *me = &m->e[i];
        struct kvd_val v;
        int rc = vt->get(e, me->key, me->klen, &v);
        if (!lt_live(me, now)) {
            if (rc != KVD_ENOTFOUND) {
                print_error("%s: key %.*s expired, get gave %d\n", what,
                            (int)me->klen, me->key, rc);
                if (rc == 0) {
                    kvd_val_release(&v);
                }
                return 1;
            }
            continue;
        }
        if (rc != 0) {
            print_error("%s: key %.*s: get gave %d\n", what, (int)me->klen,
                        me->key, rc);
            return 1;
        }
        if (v.len != me->vlen ||
            (v.len > 0 && memcmp(v.data, me->val, v.len) != 0) ||
            v.expire_ms != me->expire_ms) {
            print_error("%s: key %.*s: value of %zu bytes (expiry %lld), "
                        "model has %zu bytes (expiry %lld)\n",
                        what, (int)me->klen, me->key, v.len,
                        (long long)v.expire_ms, me->vlen,
                        (long long)me->expire_ms);
            kvd_val_release(&v);
            return 1;
        }
        kvd_val_release(&v);
    }
    return 0;
}

static inline int
lt_check_iter(const struct kvd_engine_vtable *vt, kvd_engine *e,
              const struct lt_model *m, int64_t now, const void *start,
              size_t start_len, const void *prefix, size_t prefix_len,
              const char *what)
{
    struct kvd_iter_opts o;
    struct kvd_err err;
    struct kvd_entry ent;
    kvd_iter *it = NULL;
    size_t i = start != NULL ? lt_lower(m, start, start_len) : 0;
    int rc;

    memset(&o, 0, sizeof(o));
    o.start = start;
    o.start_len = start_len;
    o.prefix = prefix;
    o.prefix_len = prefix_len;
    if (prefix != NULL) {
        size_t j = lt_lower(m, prefix, prefix_len);
        if (j > i) {
            i = j;
        }
    }
    rc = vt->iter_open(e, &o, &it, &err);
    if (rc != 0) {
        print_error("%s: iter_open: %s\n", what, err.msg);
        return 1;
    }
    for (;;) {
        const struct lt_ent *me = NULL;
        while (i < m->n) {
            me = &m->e[i];
            if (prefix != NULL && (me->klen < prefix_len ||
                                   memcmp(me->key, prefix, prefix_len) != 0)) {
                me = NULL;
                i = m->n;
                break;
            }
            if (lt_live(me, now)) {
                break;
            }
            me = NULL;
            i++;
        }
        rc = vt->iter_next(it, &ent);
        if (me == NULL) {
            if (rc != KVD_ENOTFOUND) {
                print_error("%s: iteration gave %d (key %.*s) after the "
                            "model's last key\n",
                            what, rc, rc == 0 ? (int)ent.klen : 0,
                            rc == 0 ? (const char *)ent.key : "");
                vt->iter_close(it);
                return 1;
            }
            break;
        }
        if (rc != 0) {
            print_error("%s: iteration ended (%d) before model key %.*s\n",
                        what, rc, (int)me->klen, me->key);
            vt->iter_close(it);
            return 1;
        }
        if (lt_keycmp(ent.key, ent.klen, me->key, me->klen) != 0 ||
            ent.vlen != me->vlen ||
            (ent.vlen > 0 && memcmp(ent.val, me->val, ent.vlen) != 0) ||
            ent.expire_ms != me->expire_ms) {
            print_error("%s: iteration gave key %.*s (%zu value bytes), "
                        "model has %.*s (%zu)\n",
                        what, (int)ent.klen, (const char *)ent.key, ent.vlen,
                        (int)me->klen, me->key, me->vlen);
            vt->iter_close(it);
            return 1;
        }
        i++;
    }
    vt->iter_close(it);
    return 0;
}

static inline size_t
lt_live_count(const struct lt_model *m, int64_t now)
{
    size_t n = 0;

    for (size_t i = 0; i < m->n; i++) {
        n += lt_live(&m->e[i], now);
    }
    return n;
}

#endif /* KVD_TEST_LSM_UTIL_H */
