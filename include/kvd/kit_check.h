/*
 * kvd/kit_check.h -- the engine contract's checks of what a write carries;
 * part of the engine toolkit (kvd/kit.h).
 *
 * kvd/engine.h says what an engine must refuse: an empty key, a key or
 * value over the engine's limits, a batch operation of unknown type, a
 * negative expiry; and that an invalid operation makes a whole batch fail
 * with nothing applied. These are those checks, once, with the engine's
 * limits (its vtable's max_key_bytes and max_value_bytes; 0 = no limit),
 * so every engine refuses the same things with the same words. Pure and
 * thread-safe.
 */
#ifndef KVD_KIT_CHECK_H
#define KVD_KIT_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "kvd/engine.h"
#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A key: 0, KVD_EINVAL (empty or NULL) or KVD_ETOOBIG. */
int kvd_check_key(const void *key, size_t klen, uint64_t max_key);

/* A put: the key, then the value (KVD_ETOOBIG; KVD_EINVAL for NULL bytes
 * with a length) and the expiry (KVD_EINVAL when negative). */
int kvd_check_put(const void *key, size_t klen, const void *val, size_t vlen,
                  int64_t expire_ms, uint64_t max_key, uint64_t max_value);

/* Every operation of a batch: 0, or the status of the first bad one with
 * err naming it ("batch op 3: key of 70000 bytes is over the limit of
 * 65535"). */
int kvd_check_batch(const struct kvd_op *ops, size_t n, uint64_t max_key,
                    uint64_t max_value, struct kvd_err *err);

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_CHECK_H */
