/*
 * core/hostsvc.h -- the struct kvd_host the core hands to plugins.
 *
 * kvd_hostsvc_default() is backed by core/log.c, CLOCK_REALTIME and the C
 * library's file calls (core/posix_io.h). Tests build their own struct
 * kvd_host (a fake clock, a failing I/O table) by copying the default and
 * replacing members.
 */
#ifndef KVD_CORE_HOSTSVC_H
#define KVD_CORE_HOSTSVC_H

#include "kvd/host.h"

/* The process-wide default host; valid for the life of the process. */
const struct kvd_host *kvd_hostsvc_default(void);

/* Set by request_shutdown; the server's main loop polls it. */
void kvd_hostsvc_set_shutdown_hook(void (*hook)(const char *why));

#endif /* KVD_CORE_HOSTSVC_H */
