/*
 * core/store.c -- the engine behind the core's wrappers (see store.h).
 *
 * Locking:
 *   - stripes[]: one mutex per stripe of the key space (hash of the key),
 *     held by every write for the duration of the engine call, and by
 *     read-modify-write sections across their read and write. Reads take
 *     no stripe lock. Multi-key sections take their stripes in ascending
 *     index order, each once, so two of them can never deadlock; a section
 *     with more distinct stripes than a guard holds takes all of them.
 *   - counters: one cache-line-aligned block per counter slot; a thread
 *     picks its slot once (round robin), so increments by different threads
 *     rarely touch the same line and never take a lock.
 *   - everything else is fixed after kvd_store_open().
 *
 * Every successful write tells the WATCH registry (store_watch.c) with its
 * key's stripe still held. Inside a transaction the same calls reach a
 * view (store_int.h): each call that acts differently there branches on
 * st->tx at its top, to store_tx.c.
 */
#include "core/store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"
#include "core/status.h"
#include "core/store_int.h"

static atomic_uint ctr_next_slot;
static _Thread_local unsigned ctr_slot = UINT_MAX;

/* ---- helpers ------------------------------------------------------------ */

/* A fast 64-bit hash for stripe selection and a transaction's overlay
 * (not for anything on disk). */
uint64_t
kvd_store_key_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ (w * 0xc4ceb9fe1a85ec53ULL)) * 0x100000001b3ULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    while (n-- > 0) {
        h = (h ^ *s++) * 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

uint32_t
kvd_store_stripe_of(const void *key, size_t klen)
{
    return (uint32_t)(kvd_store_key_hash(key, klen) & (STORE_STRIPES - 1));
}

void
kvd_store_metric_add(kvd_store *st, int metric, uint64_t n)
{
    if (ctr_slot == UINT_MAX) {
        ctr_slot = atomic_fetch_add_explicit(&ctr_next_slot, 1,
                                             memory_order_relaxed) %
                   STORE_CTR_SLOTS;
    }
    atomic_fetch_add_explicit(&st->ctr[ctr_slot].v[metric], n,
                              memory_order_relaxed);
}

uint64_t
kvd_store_metric_get(kvd_store *st, int metric)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < STORE_CTR_SLOTS; i++) {
        sum += atomic_load_explicit(&st->ctr[i].v[metric],
                                    memory_order_relaxed);
    }
    return sum;
}

int64_t
kvd_store_now_ms(kvd_store *st)
{
    return st->host->now_ms(st->host);
}

bool
kvd_store_expired(kvd_store *st, int64_t expire_ms)
{
    return expire_ms != KVD_NO_EXPIRY && expire_ms <= kvd_store_now_ms(st);
}

int
kvd_store_check_key(kvd_store *st, size_t klen)
{
    if (klen == 0) {
        return KVD_EINVAL;
    }
    return klen > st->max_key_bytes ? KVD_ETOOBIG : 0;
}

int
kvd_store_check_value(kvd_store *st, size_t vlen)
{
    return vlen > st->max_value_bytes ? KVD_ETOOBIG : 0;
}

void
kvd_store_stripe_lock(kvd_store *st, uint32_t s)
{
    pthread_mutex_lock(&st->stripes[s].mu);
}

void
kvd_store_stripe_unlock(kvd_store *st, uint32_t s)
{
    pthread_mutex_unlock(&st->stripes[s].mu);
}

/* mkdir -p */
static int
make_dirs(const char *path, struct kvd_err *err)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf)) {
        return kvd_err_set(err, KVD_EINVAL, "data directory '%s' is invalid",
                           path);
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                return kvd_err_set(err, KVD_EIO, "mkdir %s: %s", buf,
                                   strerror(errno));
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        return kvd_err_set(err, KVD_EIO, "mkdir %s: %s", buf,
                           strerror(errno));
    }
    return 0;
}

/* ---- open / close ------------------------------------------------------- */

static uint64_t
limit_min(uint64_t configured, uint64_t engine)
{
    if (configured == 0) {
        return engine == 0 ? UINT64_MAX : engine;
    }
    return engine != 0 && engine < configured ? engine : configured;
}

int
kvd_store_open(const struct kvd_engine_vtable *vt, const void *opts,
               const char *dir, const struct kvd_host *host,
               const struct kvd_store_limits *limits, kvd_store **out,
               struct kvd_err *err)
{
    struct kvd_store *st;
    struct timespec t0, t1;
    int rc;

    /* A configured limit above what the engine's format holds is
     * lowered to the engine's, and said so once: refusing to start would
     * make the same config fail or not depending on the engine. */
    if (limits != NULL && vt->max_key_bytes != 0 &&
        limits->max_key_bytes > vt->max_key_bytes) {
        kvd_log(KVD_LOG_WARN,
                "max_key_bytes = %llu is more than engine %s can store; "
                "using %llu",
                (unsigned long long)limits->max_key_bytes, vt->name,
                (unsigned long long)vt->max_key_bytes);
    }
    if (limits != NULL && vt->max_value_bytes != 0 &&
        limits->max_value_bytes > vt->max_value_bytes) {
        kvd_log(KVD_LOG_WARN,
                "max_value_bytes = %llu is more than engine %s can store; "
                "using %llu",
                (unsigned long long)limits->max_value_bytes, vt->name,
                (unsigned long long)vt->max_value_bytes);
    }
    rc = make_dirs(dir, err);
    if (rc != 0) {
        return rc;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "store: out of memory");
    }
    st->stripes = aligned_alloc(STORE_CACHE_BYTES,
                                STORE_STRIPES * sizeof(*st->stripes));
    st->ctr = aligned_alloc(STORE_CACHE_BYTES,
                            STORE_CTR_SLOTS * sizeof(*st->ctr));
    if (st->stripes == NULL || st->ctr == NULL) {
        free(st->stripes);
        free(st->ctr);
        free(st);
        return kvd_err_set(err, KVD_ENOMEM, "store: out of memory");
    }
    memset(st->ctr, 0, STORE_CTR_SLOTS * sizeof(*st->ctr));
    for (unsigned i = 0; i < STORE_STRIPES; i++) {
        pthread_mutex_init(&st->stripes[i].mu, NULL);
        st->stripes[i].watch = NULL;
    }
    st->base = st;
    atomic_init(&st->nwatch, 0);
    st->vt = vt;
    st->multi = KVD_ENGINE_HAS(vt, multi) ? vt->multi : NULL;
    st->host = host;
    st->max_key_bytes =
        limit_min(limits ? limits->max_key_bytes : 0, vt->max_key_bytes);
    st->max_value_bytes =
        limit_min(limits ? limits->max_value_bytes : 0, vt->max_value_bytes);
    st->start_ms = host->now_ms(host);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    kvd_err_clear(err);
    rc = vt->open(host, opts, dir, &st->eng, err);
    if (rc != 0) {
        char msg[KVD_ERR_MSG_BYTES];
        snprintf(msg, sizeof(msg), "%s",
                 err != NULL && err->msg[0] ? err->msg : kvd_strerror(rc));
        kvd_err_set(err, rc, "engine '%s' failed to open %s: %s", vt->name,
                    dir, msg);
        for (unsigned i = 0; i < STORE_STRIPES; i++) {
            pthread_mutex_destroy(&st->stripes[i].mu);
        }
        free(st->stripes);
        free(st->ctr);
        free(st);
        return rc;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    kvd_log(KVD_LOG_INFO, "engine %s %s opened in %s (%.1f ms)", vt->name,
            vt->version != NULL ? vt->version : "", dir,
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    *out = st;
    return 0;
}

int
kvd_store_close(kvd_store *st, struct kvd_err *err)
{
    int rc;

    if (st == NULL) {
        return 0;
    }
    rc = st->vt->close(st->eng, err);
    if (rc != 0) {
        kvd_log(KVD_LOG_ERROR, "engine %s: close: %s", st->vt->name,
                err != NULL && err->msg[0] ? err->msg : kvd_strerror(rc));
    }
    for (unsigned i = 0; i < STORE_STRIPES; i++) {
        pthread_mutex_destroy(&st->stripes[i].mu);
    }
    free(st->stripes);
    free(st->ctr);
    free(st);
    return rc;
}

const struct kvd_engine_vtable *
kvd_store_engine(kvd_store *st)
{
    return st->vt;
}

uint32_t
kvd_store_caps(kvd_store *st)
{
    if (st->vt->instance_caps != NULL) {
        return st->vt->instance_caps(st->eng);
    }
    return st->vt->caps;
}

const struct kvd_host *
kvd_store_host(kvd_store *st)
{
    return st->host;
}

/* ---- reads -------------------------------------------------------------- */

int
kvd_store_get_raw(kvd_store *st, const void *key, size_t klen,
                  struct kvd_val *out)
{
    int rc = st->vt->get(st->eng, key, klen, out);
    if (rc == 0 && kvd_store_expired(st, out->expire_ms)) {
        kvd_val_release(out);
        return KVD_ENOTFOUND;
    }
    return rc;
}

int
kvd_store_get(kvd_store *st, const void *key, size_t klen,
              struct kvd_val *out)
{
    int rc;

    if (st->tx != NULL) {
        return kvd_store_tx_get(st, key, klen, out);
    }
    rc = kvd_store_check_key(st, klen);
    kvd_store_metric_add(st, KVD_M_CMD_GET, 1);
    if (rc != 0) {
        return rc;
    }
    rc = kvd_store_get_raw(st, key, klen, out);
    if (rc == 0) {
        kvd_store_metric_add(st, KVD_M_HITS, 1);
    } else if (rc == KVD_ENOTFOUND) {
        kvd_store_metric_add(st, KVD_M_MISSES, 1);
    } else {
        kvd_store_metric_add(st, KVD_M_ERRORS, 1);
    }
    return rc;
}

/* ---- writes ------------------------------------------------------------- */

int
kvd_store_counted(kvd_store *st, int rc)
{
    if (rc != 0 && rc != KVD_ENOTFOUND && rc != KVD_EEXIST) {
        kvd_store_metric_add(st, KVD_M_ERRORS, 1);
    }
    return rc;
}

/* A delete whose answer nobody needs: a batch of one KVD_OP_DEL, which an
 * engine applies without looking the key up (engine.h, del), or del when
 * the engine has no batch. 0 or an error. */
static int
del_blind(kvd_store *st, const void *key, size_t klen)
{
    struct kvd_op op = {.type = KVD_OP_DEL, .key = key, .klen = klen};
    int rc = st->vt->batch != NULL ? st->vt->batch(st->eng, &op, 1, NULL)
                                   : st->vt->del(st->eng, key, klen);

    /* A batch delete cannot tell whether a key was there; watchers are
     * told whenever it succeeds (an EXEC aborted for nothing is retried;
     * a missed change would break WATCH's promise). */
    if (rc == 0) {
        kvd_store_watch_touch_locked(st, key, klen);
    }
    return rc == KVD_ENOTFOUND ? 0 : rc;
}

int
kvd_store_put_locked(kvd_store *st, const void *key, size_t klen,
                     const void *val, size_t vlen, int64_t expire_ms)
{
    int rc;

    if (st->tx != NULL) {
        return kvd_store_tx_put(st, key, klen, val, vlen, expire_ms);
    }
    rc = kvd_store_check_key(st, klen);
    if (rc == 0) {
        rc = kvd_store_check_value(st, vlen);
    }
    if (rc != 0) {
        return rc;
    }
    if (kvd_store_expired(st, expire_ms)) {
        /* An expiry in the past deletes the key (as Redis does). */
        return del_blind(st, key, klen);
    }
    rc = st->vt->put(st->eng, key, klen, val, vlen, expire_ms);
    if (rc == 0) {
        kvd_store_watch_touch_locked(st, key, klen);
    }
    return rc;
}

/* The engine's del of a key whose stripe the caller holds, told to the
 * watchers when a key was deleted. */
static int
store_del_engine(kvd_store *st, const void *key, size_t klen)
{
    int rc = st->vt->del(st->eng, key, klen);

    if (rc == 0) {
        kvd_store_watch_touch_locked(st, key, klen);
    }
    return rc;
}

int
kvd_store_del_locked(kvd_store *st, const void *key, size_t klen)
{
    int rc;

    if (st->tx != NULL) {
        return kvd_store_tx_del(st, key, klen);
    }
    rc = kvd_store_check_key(st, klen);
    if (rc != 0) {
        return rc;
    }
    return store_del_engine(st, key, klen);
}

int
kvd_store_set(kvd_store *st, const void *key, size_t klen, const void *val,
              size_t vlen, int64_t expire_ms, unsigned flags, int *created)
{
    struct kvd_val cur;
    uint32_t s;
    bool exists = false;
    int rc;

    if (st->tx != NULL) {
        return kvd_store_tx_set(st, key, klen, val, vlen, expire_ms, flags,
                                created);
    }
    kvd_store_metric_add(st, KVD_M_CMD_SET, 1);
    rc = kvd_store_check_key(st, klen);
    if (rc == 0) {
        rc = kvd_store_check_value(st, vlen);
    }
    if (rc != 0) {
        return kvd_store_counted(st, rc);
    }
    s = kvd_store_stripe_of(key, klen);
    kvd_store_stripe_lock(st, s);
    if (flags != 0 || created != NULL) {
        rc = kvd_store_get_raw(st, key, klen, &cur);
        if (rc == 0) {
            exists = true;
            if (flags & KVD_SET_KEEPTTL) {
                expire_ms = cur.expire_ms;
            }
            kvd_val_release(&cur);
        } else if (rc != KVD_ENOTFOUND) {
            goto out;
        }
        if ((flags & KVD_SET_NX) && exists) {
            rc = KVD_EEXIST;
            goto out;
        }
        if ((flags & KVD_SET_XX) && !exists) {
            rc = KVD_ENOTFOUND;
            goto out;
        }
    }
    rc = kvd_store_put_locked(st, key, klen, val, vlen, expire_ms);
    if (rc == 0 && created != NULL) {
        *created = !exists;
    }
out:
    kvd_store_stripe_unlock(st, s);
    return kvd_store_counted(st, rc);
}

int
kvd_store_del(kvd_store *st, const void *key, size_t klen)
{
    uint32_t s;
    int rc;

    if (st->tx != NULL) {
        return kvd_store_tx_del(st, key, klen);
    }
    kvd_store_metric_add(st, KVD_M_CMD_DEL, 1);
    rc = kvd_store_check_key(st, klen);
    if (rc != 0) {
        return kvd_store_counted(st, rc);
    }
    s = kvd_store_stripe_of(key, klen);
    kvd_store_stripe_lock(st, s);
    rc = store_del_engine(st, key, klen);
    kvd_store_stripe_unlock(st, s);
    return kvd_store_counted(st, rc);
}

/* ---- multi-key sections ------------------------------------------------- */

static int
u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

size_t
kvd_store_stripes_lock(kvd_store *st, uint32_t *s, size_t m)
{
    size_t u = 0;

    if (m > 16) {
        qsort(s, m, sizeof(s[0]), u32_cmp);
    } else {
        /* The usual few keys: an insertion sort beats qsort's calls. */
        for (size_t i = 1; i < m; i++) {
            uint32_t v = s[i];
            size_t j = i;
            for (; j > 0 && s[j - 1] > v; j--) {
                s[j] = s[j - 1];
            }
            s[j] = v;
        }
    }
    for (size_t i = 0; i < m; i++) {
        if (u == 0 || s[u - 1] != s[i]) {
            s[u++] = s[i];
        }
    }
    for (size_t i = 0; i < u; i++) {
        kvd_store_stripe_lock(st, s[i]);
    }
    return u;
}

void
kvd_store_lock_keys(kvd_store *st, size_t n, const void *const *keys,
                    const size_t *klens, struct kvd_store_guard *g)
{
    if (st->tx != NULL) {
        /* The transaction holds every stripe its commands use. */
        g->all = false;
        g->n = 0;
        return;
    }
    g->all = n > KVD_STORE_GUARD_MAX;
    if (!g->all) {
        for (size_t i = 0; i < n; i++) {
            g->stripes[i] = kvd_store_stripe_of(keys[i], klens[i]);
        }
        g->n = kvd_store_stripes_lock(st, g->stripes, n);
        return;
    }
    g->n = STORE_STRIPES;
    for (uint32_t i = 0; i < STORE_STRIPES; i++) {
        kvd_store_stripe_lock(st, i);
    }
}

void
kvd_store_unlock_keys(kvd_store *st, struct kvd_store_guard *g)
{
    if (st->tx != NULL) {
        return;
    }
    if (g->all) {
        for (uint32_t i = STORE_STRIPES; i-- > 0;) {
            kvd_store_stripe_unlock(st, i);
        }
    } else {
        for (size_t i = g->n; i-- > 0;) {
            kvd_store_stripe_unlock(st, g->stripes[i]);
        }
    }
    g->n = 0;
}

/* Lock the stripes of every key of a batch. */
static void
lock_ops(kvd_store *st, const struct kvd_op *ops, size_t n,
         struct kvd_store_guard *g)
{
    const void *keys[KVD_STORE_GUARD_MAX];
    size_t klens[KVD_STORE_GUARD_MAX];

    if (n > KVD_STORE_GUARD_MAX) {
        kvd_store_lock_keys(st, n, NULL, NULL, g);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i] = ops[i].key;
        klens[i] = ops[i].klen;
    }
    kvd_store_lock_keys(st, n, keys, klens, g);
}

int
kvd_store_batch_check(kvd_store *st, const struct kvd_op *ops, size_t n,
                      bool *has_past_expiry, struct kvd_err *err)
{
    *has_past_expiry = false;
    for (size_t i = 0; i < n; i++) {
        const struct kvd_op *op = &ops[i];
        int rc;
        if (op->type != KVD_OP_PUT && op->type != KVD_OP_DEL) {
            return kvd_err_set(err, KVD_EINVAL,
                               "batch operation %zu: unknown type %d", i,
                               op->type);
        }
        rc = kvd_store_check_key(st, op->klen);
        if (rc != 0) {
            return kvd_err_set(err, rc,
                               rc == KVD_EINVAL
                                   ? "batch operation %zu: empty key"
                                   : "batch operation %zu: key too large",
                               i);
        }
        if (op->type == KVD_OP_PUT) {
            if (kvd_store_check_value(st, op->vlen) != 0) {
                return kvd_err_set(err, KVD_ETOOBIG,
                                   "batch operation %zu: value of %zu bytes "
                                   "is over the limit of %llu",
                                   i, op->vlen,
                                   (unsigned long long)st->max_value_bytes);
            }
            if (op->val == NULL && op->vlen != 0) {
                return kvd_err_set(err, KVD_EINVAL,
                                   "batch operation %zu: NULL value", i);
            }
            if (op->expire_ms != KVD_NO_EXPIRY &&
                kvd_store_expired(st, op->expire_ms)) {
                *has_past_expiry = true;
            }
        }
    }
    return 0;
}

/* Apply without atomicity, for engines that have no batch method. */
static int
batch_emulate(kvd_store *st, const struct kvd_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = ops[i].type == KVD_OP_PUT
                     ? st->vt->put(st->eng, ops[i].key, ops[i].klen,
                                   ops[i].val, ops[i].vlen, ops[i].expire_ms)
                     : st->vt->del(st->eng, ops[i].key, ops[i].klen);
        if (rc != 0 && rc != KVD_ENOTFOUND) {
            return rc;
        }
    }
    return 0;
}

int
kvd_store_batch_apply(kvd_store *st, const struct kvd_op *ops, size_t n,
                      bool past, struct kvd_err *err)
{
    struct kvd_op *copy = NULL;
    int rc;

    if (past) {
        /* Puts with an expiry in the past become deletes. */
        copy = malloc(n * sizeof(*copy));
        if (copy == NULL) {
            return kvd_err_set(err, KVD_ENOMEM, "batch: out of memory");
        }
        memcpy(copy, ops, n * sizeof(*copy));
        for (size_t i = 0; i < n; i++) {
            if (copy[i].type == KVD_OP_PUT &&
                copy[i].expire_ms != KVD_NO_EXPIRY &&
                kvd_store_expired(st, copy[i].expire_ms)) {
                copy[i].type = KVD_OP_DEL;
            }
        }
        ops = copy;
    }
    kvd_err_clear(err);
    if (st->vt->batch != NULL) {
        rc = st->vt->batch(st->eng, ops, n, err);
    } else {
        rc = batch_emulate(st, ops, n);
    }
    if (rc != 0 && err != NULL && err->msg[0] == '\0') {
        kvd_err_set(err, rc, "batch: %s", kvd_strerror(rc));
    }
    free(copy);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        kvd_store_watch_touch_locked(st, ops[i].key, ops[i].klen);
    }
    return rc;
}

int
kvd_store_batch_locked(kvd_store *st, const struct kvd_op *ops, size_t n,
                       struct kvd_err *err)
{
    bool past;
    int rc;

    if (st->tx != NULL) {
        return kvd_store_tx_batch(st, ops, n, err);
    }
    if (n == 0) {
        return 0;
    }
    rc = kvd_store_batch_check(st, ops, n, &past, err);
    if (rc != 0) {
        return rc;
    }
    return kvd_store_batch_apply(st, ops, n, past, err);
}

int
kvd_store_batch(kvd_store *st, const struct kvd_op *ops, size_t n,
                struct kvd_err *err)
{
    struct kvd_store_guard g;
    bool past;
    int rc;

    kvd_store_metric_add(st, KVD_M_CMD_BATCH, 1);
    if (st->tx != NULL) {
        return kvd_store_tx_batch(st, ops, n, err);
    }
    if (n == 0) {
        return 0;
    }
    /* Validate before locking: a bad batch costs no lock. */
    rc = kvd_store_batch_check(st, ops, n, &past, err);
    if (rc != 0) {
        return kvd_store_counted(st, rc);
    }
    lock_ops(st, ops, n, &g);
    rc = kvd_store_batch_apply(st, ops, n, past, err);
    kvd_store_unlock_keys(st, &g);
    return kvd_store_counted(st, rc);
}

/* ---- multi: independent operations in one engine call ------------------- */

bool
kvd_store_has_multi(kvd_store *st)
{
    return st->multi != NULL;
}

/* 0, or the status an invalid operation gets without reaching the engine. */
static int
mop_check(kvd_store *st, const struct kvd_mop *op)
{
    int rc;

    if (op->type != KVD_MOP_GET && op->type != KVD_MOP_PUT &&
        op->type != KVD_MOP_DEL) {
        return KVD_EINVAL;
    }
    if (op->key == NULL) {
        return KVD_EINVAL;
    }
    rc = kvd_store_check_key(st, op->klen);
    if (rc == 0 && op->type == KVD_MOP_PUT) {
        if (op->val == NULL && op->vlen != 0) {
            return KVD_EINVAL;
        }
        rc = kvd_store_check_value(st, op->vlen);
    }
    return rc;
}

/* The engine's multi, or get/put/del one by one in array order. */
static int
multi_run(kvd_store *st, struct kvd_mop *ops, size_t n)
{
    if (st->multi != NULL) {
        return st->multi(st->eng, ops, n);
    }
    for (size_t i = 0; i < n; i++) {
        struct kvd_mop *op = &ops[i];
        switch (op->type) {
        case KVD_MOP_GET:
            op->status = st->vt->get(st->eng, op->key, op->klen, &op->out);
            break;
        case KVD_MOP_PUT:
            op->status = st->vt->put(st->eng, op->key, op->klen, op->val,
                                     op->vlen, op->expire_ms);
            break;
        default:
            op->status = st->vt->del(st->eng, op->key, op->klen);
            break;
        }
    }
    return 0;
}

/* Lock the stripes of the written keys, ascending, each once. `buf` has
 * room for n; returns how many stripes were locked (listed in buf). */
static size_t
multi_lock(kvd_store *st, const struct kvd_mop *ops, size_t n, uint32_t *buf)
{
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        if (ops[i].status == 0 && ops[i].type != KVD_MOP_GET) {
            buf[m++] = kvd_store_stripe_of(ops[i].key, ops[i].klen);
        }
    }
    return kvd_store_stripes_lock(st, buf, m);
}

/* Count the results and apply the core's TTL rules to them. */
static void
multi_finish(kvd_store *st, struct kvd_mop *ops, size_t n,
             const unsigned char *past)
{
    uint64_t gets = 0, sets = 0, dels = 0, hits = 0, misses = 0, errs = 0;

    for (size_t i = 0; i < n; i++) {
        struct kvd_mop *op = &ops[i];
        if (past[i]) {
            /* A put with an expiry in the past ran as a delete. */
            op->type = KVD_MOP_PUT;
            if (op->status == KVD_ENOTFOUND) {
                op->status = 0;
            }
        }
        switch (op->type) {
        case KVD_MOP_GET:
            gets++;
            if (op->status == 0 && kvd_store_expired(st, op->out.expire_ms)) {
                kvd_val_release(&op->out);
                op->status = KVD_ENOTFOUND;
            }
            if (op->status == 0) {
                hits++;
            } else if (op->status == KVD_ENOTFOUND) {
                misses++;
            } else {
                errs++;
            }
            break;
        case KVD_MOP_PUT:
            sets++;
            errs += op->status != 0;
            break;
        default:
            dels++;
            errs += op->status != 0 && op->status != KVD_ENOTFOUND;
            break;
        }
    }
    kvd_store_metric_add(st, KVD_M_CMD_GET, gets);
    kvd_store_metric_add(st, KVD_M_CMD_SET, sets);
    kvd_store_metric_add(st, KVD_M_CMD_DEL, dels);
    kvd_store_metric_add(st, KVD_M_HITS, hits);
    kvd_store_metric_add(st, KVD_M_MISSES, misses);
    kvd_store_metric_add(st, KVD_M_ERRORS, errs);
}

#define MULTI_STACK_OPS 256

int
kvd_store_multi(kvd_store *st, struct kvd_mop *ops, size_t n)
{
    unsigned char past_stack[MULTI_STACK_OPS];
    uint32_t stripes_stack[MULTI_STACK_OPS];
    unsigned char *past = past_stack;
    uint32_t *stripes = stripes_stack;
    struct kvd_mop *run = ops, *copy = NULL;
    size_t nrun = n, nlocked, bad = 0;
    int rc = 0;

    if (st->tx != NULL) {
        return kvd_store_tx_multi(st, ops, n);
    }
    if (n == 0) {
        return 0;
    }
    if (n > MULTI_STACK_OPS) {
        past = malloc(n);
        stripes = malloc(n * sizeof(*stripes));
        if (past == NULL || stripes == NULL) {
            rc = KVD_ENOMEM;
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++) {
        ops[i].status = mop_check(st, &ops[i]);
        ops[i].out.release = NULL;
        past[i] = 0;
        bad += ops[i].status != 0;
        if (ops[i].status == 0 && ops[i].type == KVD_MOP_PUT &&
            ops[i].expire_ms != KVD_NO_EXPIRY &&
            kvd_store_expired(st, ops[i].expire_ms)) {
            /* An expiry in the past deletes the key (as SET does). */
            ops[i].type = KVD_MOP_DEL;
            past[i] = 1;
        }
    }
    if (bad > 0) {
        /* The engine sees valid operations only. */
        nrun = 0;
        copy = malloc((n - bad + 1) * sizeof(*copy));
        if (copy == NULL) {
            rc = KVD_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            if (ops[i].status == 0) {
                copy[nrun++] = ops[i];
            }
        }
        run = copy;
    }
    nlocked = multi_lock(st, ops, n, stripes);
    rc = nrun > 0 ? multi_run(st, run, nrun) : 0;
    for (size_t i = 0; rc == 0 && i < nrun; i++) {
        /* (a put that ran as a delete and found nothing has status
         * ENOTFOUND here: nothing changed, nobody is told) */
        if (run[i].type != KVD_MOP_GET && run[i].status == 0) {
            kvd_store_watch_touch_locked(st, run[i].key, run[i].klen);
        }
    }
    for (size_t i = 0; i < nlocked; i++) {
        kvd_store_stripe_unlock(st, stripes[i]);
    }
    if (rc != 0) {
        goto fail;
    }
    if (copy != NULL) {
        for (size_t i = 0, j = 0; i < n; i++) {
            if (ops[i].status == 0) {
                ops[i] = copy[j++];
            }
        }
    }
    multi_finish(st, ops, n, past);
    goto out;
fail:
    for (size_t i = 0; i < n; i++) {
        if (ops[i].status == 0) {
            ops[i].status = rc;
        }
        if (past != NULL && past[i]) {
            ops[i].type = KVD_MOP_PUT;
        }
    }
    kvd_store_metric_add(st, KVD_M_ERRORS, n);
out:
    free(copy);
    if (past != past_stack) {
        free(past);
    }
    if (stripes != stripes_stack) {
        free(stripes);
    }
    return rc;
}

int
kvd_store_mop(kvd_store *st, struct kvd_mop *op)
{
    switch (op->type) {
    case KVD_MOP_GET:
        op->status = kvd_store_get(st, op->key, op->klen, &op->out);
        break;
    case KVD_MOP_PUT:
        op->status = kvd_store_set(st, op->key, op->klen, op->val, op->vlen,
                                   op->expire_ms, 0, NULL);
        break;
    case KVD_MOP_DEL:
        op->status = kvd_store_del(st, op->key, op->klen);
        break;
    default:
        op->status = KVD_EINVAL;
        break;
    }
    return op->status;
}

/* ---- read-modify-write -------------------------------------------------- */

int
kvd_store_update(kvd_store *st, const void *key, size_t klen,
                 kvd_update_fn fn, void *ctx)
{
    struct kvd_update upd = {0};
    struct kvd_val cur;
    bool have = false;
    uint32_t s;
    int rc;

    if (st->tx != NULL) {
        return kvd_store_tx_update(st, key, klen, fn, ctx);
    }
    kvd_store_metric_add(st, KVD_M_CMD_UPDATE, 1);
    rc = kvd_store_check_key(st, klen);
    if (rc != 0) {
        return kvd_store_counted(st, rc);
    }
    s = kvd_store_stripe_of(key, klen);
    kvd_store_stripe_lock(st, s);
    rc = kvd_store_get_raw(st, key, klen, &cur);
    if (rc == 0) {
        have = true;
    } else if (rc != KVD_ENOTFOUND) {
        goto out;
    }
    upd.action = KVD_UPDATE_KEEP;
    rc = fn(ctx, have ? &cur : NULL, &upd);
    if (rc != 0) {
        goto out;
    }
    if (upd.action == KVD_UPDATE_PUT) {
        rc = kvd_store_put_locked(st, key, klen, upd.val, upd.vlen,
                                  upd.expire_ms);
    } else if (upd.action == KVD_UPDATE_DEL) {
        rc = del_blind(st, key, klen);
    }
out:
    /* Released only now: upd.val may point into the old value. */
    if (have) {
        kvd_val_release(&cur);
    }
    kvd_store_stripe_unlock(st, s);
    return kvd_store_counted(st, rc);
}

/* ---- iteration ---------------------------------------------------------- */

int
kvd_store_iter_open(kvd_store *st, const struct kvd_iter_opts *opts,
                    kvd_iter **out, struct kvd_err *err)
{
    static const struct kvd_iter_opts all = {0};
    kvd_store_metric_add(st, KVD_M_CMD_ITER, 1);
    if (st->tx != NULL) {
        int rc = kvd_store_tx_segment(st);
        if (rc != 0) {
            return kvd_err_set(err, rc, "transaction: %s", kvd_strerror(rc));
        }
    }
    return st->vt->iter_open(st->eng, opts != NULL ? opts : &all, out, err);
}

int
kvd_store_iter_next(kvd_store *st, kvd_iter *it, struct kvd_entry *out)
{
    int rc;
    do {
        rc = st->vt->iter_next(it, out);
    } while (rc == 0 && kvd_store_expired(st, out->expire_ms));
    return rc;
}

void
kvd_store_iter_close(kvd_store *st, kvd_iter *it)
{
    if (it != NULL) {
        st->vt->iter_close(it);
    }
}

/* ---- administration ----------------------------------------------------- */

int
kvd_store_stats(kvd_store *st, struct kvd_engine_stats *s, kvd_stat_fn fn,
                void *ctx)
{
    memset(s, 0, sizeof(*s));
    s->struct_size = sizeof(*s);
    if (st->tx != NULL) {
        int rc = kvd_store_tx_segment(st);
        if (rc != 0) {
            return rc;
        }
    }
    return st->vt->stats(st->eng, s, fn, ctx);
}

int
kvd_store_sync(kvd_store *st, struct kvd_err *err)
{
    if (st->tx != NULL) {
        int rc = kvd_store_tx_segment(st);
        if (rc != 0) {
            return kvd_err_set(err, rc, "transaction: %s", kvd_strerror(rc));
        }
    }
    if (st->vt->sync == NULL) {
        return 0; /* nothing is buffered by an engine without sync */
    }
    return st->vt->sync(st->eng, err);
}

int
kvd_store_maintain(kvd_store *st, int op, struct kvd_err *err)
{
    if (st->tx != NULL) {
        int rc = kvd_store_tx_segment(st);
        if (rc != 0) {
            return kvd_err_set(err, rc, "transaction: %s", kvd_strerror(rc));
        }
    }
    if (st->vt->maintain == NULL) {
        return kvd_err_set(err, KVD_ENOTSUP,
                           "engine '%s' has no maintenance operations",
                           st->vt->name);
    }
    return st->vt->maintain(st->eng, op, err);
}

/* FLUSHDB without an engine clear(): delete key by key, under all stripes
 * so no write slips in between; copies each key since deleting may
 * invalidate the iterator's entry. */
static int
clear_by_iteration(kvd_store *st, struct kvd_err *err)
{
    struct kvd_iter_opts o = {.flags = KVD_ITER_KEYS_ONLY};
    struct kvd_entry e;
    kvd_iter *it;
    int rc = st->vt->iter_open(st->eng, &o, &it, err);
    if (rc != 0) {
        return rc;
    }
    while ((rc = st->vt->iter_next(it, &e)) == 0) {
        void *k = malloc(e.klen);
        if (k == NULL) {
            rc = kvd_err_set(err, KVD_ENOMEM, "flush: out of memory");
            break;
        }
        memcpy(k, e.key, e.klen);
        rc = del_blind(st, k, e.klen);
        free(k);
        if (rc != 0) {
            break;
        }
    }
    st->vt->iter_close(it);
    return rc == KVD_ENOTFOUND ? 0 : rc;
}

int
kvd_store_clear_locked(kvd_store *st, struct kvd_err *err)
{
    kvd_store_watch_clear_locked(st);
    if (st->vt->clear != NULL) {
        return st->vt->clear(st->eng, err);
    }
    return clear_by_iteration(st, err);
}

int
kvd_store_clear(kvd_store *st, struct kvd_err *err)
{
    struct kvd_store_guard g;
    int rc;

    if (st->tx != NULL) {
        return kvd_store_tx_clear(st, err);
    }
    kvd_store_lock_keys(st, KVD_STORE_GUARD_MAX + 1, NULL, NULL, &g);
    rc = kvd_store_clear_locked(st, err);
    kvd_store_unlock_keys(st, &g);
    return rc;
}

int
kvd_store_ready(kvd_store *st, char *why, size_t why_len)
{
    struct kvd_engine_stats s;
    int rc = kvd_store_stats(st, &s, NULL, NULL);

    if (rc != 0) {
        snprintf(why, why_len, "engine stats failed: %s", kvd_strerror(rc));
        return 0;
    }
    if (s.readonly) {
        snprintf(why, why_len, "engine is read-only: %s",
                 s.state[0] ? s.state : "after a write error");
        return 0;
    }
    if (!s.ready) {
        snprintf(why, why_len, "engine is not ready%s%s",
                 s.state[0] ? ": " : "", s.state);
        return 0;
    }
    if (why_len > 0) {
        why[0] = '\0';
    }
    return 1;
}

/* ---- metrics ------------------------------------------------------------ */

struct prefix_ctx {
    kvd_stat_fn fn;
    void *ctx;
};

static void
engine_stat_prefixed(void *vctx, const char *name, uint64_t value)
{
    struct prefix_ctx *p = vctx;
    char full[128];
    snprintf(full, sizeof(full), "engine_%s", name);
    p->fn(p->ctx, full, value);
}

int
kvd_store_metrics(kvd_store *st, kvd_stat_fn fn, void *ctx)
{
    static const char *const names[] = {
#define KVD_XX_NAME(id, name) name,
        KVD_METRIC_MAP(KVD_XX_NAME)
#undef KVD_XX_NAME
    };
    struct prefix_ctx pc = {fn, ctx};
    struct kvd_engine_stats s;
    int rc;

    for (int i = 0; i < KVD_M_COUNT; i++) {
        fn(ctx, names[i], kvd_store_metric_get(st, i));
    }
    fn(ctx, "uptime_ms", (uint64_t)(kvd_store_now_ms(st) - st->start_ms));
    rc = kvd_store_stats(st, &s, engine_stat_prefixed, &pc);
    if (rc != 0) {
        return rc;
    }
    fn(ctx, "keys", s.keys);
    fn(ctx, "key_bytes", s.key_bytes);
    fn(ctx, "value_bytes", s.value_bytes);
    fn(ctx, "disk_bytes", s.disk_bytes);
    fn(ctx, "engine_mem_bytes", s.mem_bytes);
    fn(ctx, "readonly", (uint64_t)(s.readonly != 0));
    return 0;
}

/* ---- the table frontends get -------------------------------------------- */

static int
api_iter_next(kvd_store *st, kvd_iter *it, struct kvd_entry *out)
{
    return kvd_store_iter_next(st, it, out);
}


static void
api_count(kvd_store *st, const char *frontend, const char *cmd)
{
    (void)frontend;
    (void)cmd;
    kvd_store_metric_add(st, KVD_M_COMMANDS, 1);
}

static const struct kvd_store_api store_api = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_store_api),
    .get = kvd_store_get,
    .set = kvd_store_set,
    .del = kvd_store_del,
    .batch = kvd_store_batch,
    .iter_open = kvd_store_iter_open,
    .iter_next = api_iter_next,
    .iter_close = kvd_store_iter_close,
    .caps = kvd_store_caps,
    .ready = kvd_store_ready,
    .metrics = kvd_store_metrics,
    .count = api_count,
};

const struct kvd_store_api *
kvd_store_api_table(void)
{
    return &store_api;
}
