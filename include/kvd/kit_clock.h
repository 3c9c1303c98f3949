/*
 * kvd/kit_clock.h -- the monotonic clock, through the host; part of the
 * engine toolkit (kvd/kit.h).
 *
 * For intervals, timeouts and rate limits: never for expiry, which is wall
 * time (host->now_ms). The clock is the host's (struct kvd_host.mono_ns,
 * ABI 1.4), so a test host can drive it; with an older host, or host ==
 * NULL, it is CLOCK_MONOTONIC. Thread-safe.
 */
#ifndef KVD_KIT_CLOCK_H
#define KVD_KIT_CLOCK_H

#include <stdint.h>

#include "kvd/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Nanoseconds from an arbitrary origin; never goes backwards. */
int64_t kvd_mono_ns(const struct kvd_host *host);

static inline int64_t
kvd_mono_us(const struct kvd_host *host)
{
    return kvd_mono_ns(host) / 1000;
}

static inline int64_t
kvd_mono_ms(const struct kvd_host *host)
{
    return kvd_mono_ns(host) / 1000000;
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_KIT_CLOCK_H */
