/*
 * core/posix_io.h -- the C library's file calls as a struct kvd_io.
 *
 * One copy for every host that does real file I/O: the default host
 * (core/hostsvc.c) hands it to plugins, and the fault-injecting test host
 * (tests/conformance/th_host.c) calls it once a call is let through, so
 * both agree on what each call does (O_CLOEXEC on open, errno from
 * fallocate, which writeback errors mean "cannot here").
 *
 * A library of its own, without the rest of the core: the test host links
 * it and nothing else of kvd_core.
 */
#ifndef KVD_CORE_POSIX_IO_H
#define KVD_CORE_POSIX_IO_H

#include "kvd/host.h"

/* A const object, so that other static tables (the default host's) can
 * point at it; valid for the life of the process. */
extern const struct kvd_io kvd_posix_io;

#endif /* KVD_CORE_POSIX_IO_H */
