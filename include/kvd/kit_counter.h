/*
 * kvd/kit_counter.h -- statistics counters; part of the engine toolkit
 * (kvd/kit.h).
 *
 * Relaxed atomics: every increment is counted (exact), but a reader may
 * see counters out of order with each other and with the data they
 * describe, which is all stats need and costs no fence on the hot path.
 */
#ifndef KVD_KIT_COUNTER_H
#define KVD_KIT_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline void
kvd_counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t
kvd_counter_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_COUNTER_H */
