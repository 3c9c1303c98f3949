/*
 * kvd/kit.h -- the engine toolkit: the pieces every persistent engine
 * needs and should not write again.
 *
 * Part of the installed interface, but not of the plugin ABI: the toolkit
 * is a static library (libkvdkit.a, position-independent, hidden
 * visibility) that an engine links into its own .so, so nothing here is a
 * host symbol and a plugin built with one kvd release keeps working with
 * the next. Out of tree:
 *
 *     cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags kvd) \
 *        -o kvd_engine_NAME.so NAME.c $(pkg-config --libs kvd)
 *
 * Modules, one header each (this one includes them all):
 *   kit_check.h   the contract's checks of keys, values and batches, with
 *                 the engine's limits
 *   kit_file.h    checked file I/O over struct kvd_io: full reads and
 *                 writes, whole-file reads, directory fsync, durable
 *                 replace (tmp + fsync + rename + directory fsync), errno
 *                 to status
 *   kit_counter.h statistics counters (relaxed atomics)
 *   kit_crc32c.h  CRC-32C, hardware-accelerated where the CPU has it, and
 *                 the masking used for checksums stored in checksummed data
 *   kit_coding.h  little-endian fixed-width integers and varints
 *   kit_buf.h     a growable byte buffer
 *   kit_hash.h    a fast 64-bit hash of keys (seeded; stable, so formats
 *                 may store it) and kvd_hash_seed, a random seed per open
 *                 for in-memory tables of client keys (hash flooding)
 *   kit_lock.h    the data-directory lock (one open store per directory)
 *   kit_clock.h   the monotonic clock through the host
 *   kit_worker.h  a background thread: runs a function every interval or
 *                 when woken, stops cleanly
 *   kit_ro.h      the read-only switch: a failed write or fsync turns the
 *                 store read-only once, logged once, with the reason kept
 *                 for stats
 *   kit_commit.h  group commit: writers that need durability share one
 *                 fdatasync; the periodic sync of "everysec"
 *
 * Conventions: as the ABI (kvd/status.h): functions return 0 or a negative
 * kvd status; cold paths also fill a struct kvd_err (which may be NULL);
 * every file operation goes through the host's struct kvd_io, so tests can
 * fail the Nth write or fsync. Every function is thread-safe unless its
 * header says otherwise.
 */
#ifndef KVD_KIT_H
#define KVD_KIT_H

#include "kvd/kit_buf.h"
#include "kvd/kit_check.h"
#include "kvd/kit_clock.h"
#include "kvd/kit_coding.h"
#include "kvd/kit_commit.h"
#include "kvd/kit_counter.h"
#include "kvd/kit_crc32c.h"
#include "kvd/kit_file.h"
#include "kvd/kit_hash.h"
#include "kvd/kit_lock.h"
#include "kvd/kit_ro.h"
#include "kvd/kit_worker.h"

#endif /* KVD_KIT_H */
