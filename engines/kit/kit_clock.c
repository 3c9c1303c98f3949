/*
 * kit_clock.c -- the monotonic clock through the host; see
 * kvd/kit_clock.h.
 */
#include "kvd/kit_clock.h"

#include <time.h>

int64_t
kvd_mono_ns(const struct kvd_host *host)
{
    struct timespec ts;

    if (host != NULL && KVD_HAS(host, struct kvd_host, mono_ns) &&
        host->mono_ns != NULL) {
        return host->mono_ns(host);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
