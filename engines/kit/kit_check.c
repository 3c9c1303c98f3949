/*
 * kit_check.c -- the engine contract's checks of a write; see
 * kvd/kit_check.h.
 */
#include "kvd/kit_check.h"

#include <inttypes.h>

static int
over(size_t n, uint64_t max)
{
    return max != 0 && (uint64_t)n > max;
}

int
kvd_check_key(const void *key, size_t klen, uint64_t max_key)
{
    if (klen == 0 || key == NULL) {
        return KVD_EINVAL;
    }
    return over(klen, max_key) ? KVD_ETOOBIG : 0;
}

int
kvd_check_put(const void *key, size_t klen, const void *val, size_t vlen,
              int64_t expire_ms, uint64_t max_key, uint64_t max_value)
{
    int rc = kvd_check_key(key, klen, max_key);

    if (rc != 0) {
        return rc;
    }
    if (over(vlen, max_value)) {
        return KVD_ETOOBIG;
    }
    if ((val == NULL && vlen > 0) || expire_ms < 0) {
        return KVD_EINVAL;
    }
    return 0;
}

int
kvd_check_batch(const struct kvd_op *ops, size_t n, uint64_t max_key,
                uint64_t max_value, struct kvd_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct kvd_op *op = &ops[i];

        if (op->type != KVD_OP_PUT && op->type != KVD_OP_DEL) {
            return kvd_err_set(err, KVD_EINVAL, "batch op %zu: unknown type %d",
                               i, op->type);
        }
        if (op->klen == 0 || op->key == NULL) {
            return kvd_err_set(err, KVD_EINVAL, "batch op %zu: empty key", i);
        }
        if (over(op->klen, max_key)) {
            return kvd_err_set(err, KVD_ETOOBIG,
                               "batch op %zu: key of %zu bytes is over the "
                               "limit of %" PRIu64,
                               i, op->klen, max_key);
        }
        if (op->type != KVD_OP_PUT) {
            continue;
        }
        if (over(op->vlen, max_value)) {
            return kvd_err_set(err, KVD_ETOOBIG,
                               "batch op %zu: value of %zu bytes is over the "
                               "limit of %" PRIu64,
                               i, op->vlen, max_value);
        }
        if (op->val == NULL && op->vlen > 0) {
            return kvd_err_set(err, KVD_EINVAL,
                               "batch op %zu: NULL value of %zu bytes", i,
                               op->vlen);
        }
        if (op->expire_ms < 0) {
            return kvd_err_set(err, KVD_EINVAL,
                               "batch op %zu: negative expiry %" PRId64, i,
                               op->expire_ms);
        }
    }
    return 0;
}
