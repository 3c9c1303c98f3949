/*
 * th_host.h -- the test host of the conformance and crash kit: a struct
 * kvd_host whose file I/O can fail or kill the process on cue, whose log
 * is captured for assertions, and whose clocks tests can set; plus
 * helpers to load an engine plugin, make scratch directories and read
 * stats. kvd-conformance runs every engine through it, and engine tests
 * (tests/lsm, tests/log) use it directly.
 *
 * Plugins are loaded with dlopen (path from argv[1], else
 * $KVD_TEST_ENGINE), so users need nothing from the core.
 *
 * Fault injection counts calls process-wide (atomics): set a th_io.*_at
 * field to N (usually "the current count + k") to make the Nth call of
 * that kind fail with th_io.fail_errno, or, with kill_at_mutation, to
 * SIGKILL the process at its Nth file mutation (a write, sync, rename,
 * unlink, truncate or preallocation). A preallocation (fallocate) counts
 * as a write: fail_write_at, full_disk and readonly_fs fail it too. With
 * torn_kill set, a write that is the killing
 * mutation first writes the first half of its bytes: a torn write, as a
 * crash in the middle of an append leaves. full_disk makes every write
 * fail with ENOSPC until it is cleared; readonly_fs makes the file system
 * read-only (EROFS for writes, syncs of written files, renames, unlinks,
 * truncates, mkdir and opens that could write). A writeback start (ABI
 * 1.7) changes no file: it is counted apart and fails only at its own
 * fail_writeback_at.
 */
#ifndef KVD_TH_HOST_H
#define KVD_TH_HOST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/engine.h"
#include "kvd/host.h"

struct th_io_state {
    _Atomic long preads;
    _Atomic long writes;        /* pwrite + write + fallocate */
    _Atomic long allocs;        /* fallocate alone */
    _Atomic long syncs;         /* fsync + fdatasync */
    _Atomic long mutations;     /* writes, syncs, rename, unlink, ftruncate */
    _Atomic long fail_write_at; /* 0 = never; else the Nth write fails */
    _Atomic long fail_alloc_at; /* ... the Nth fallocate */
    _Atomic long fail_sync_at;
    _Atomic long writebacks;        /* writeback starts (not mutations) */
    _Atomic long fail_writeback_at; /* ... the Nth of them */
    _Atomic long kill_at_mutation; /* SIGKILL self at the Nth one */
    _Atomic int torn_kill;         /* ... a write first writing half */
    _Atomic int fail_errno;
    _Atomic int sync_delay_us; /* sleep inside every fdatasync */
    _Atomic int full_disk;     /* every write fails with ENOSPC */
    _Atomic int readonly_fs;   /* every mutation and writable open: EROFS */
};

extern struct th_io_state th_io;
extern const struct kvd_host th_host;

/* The failing I/O table itself, for hosts built on it. */
extern const struct kvd_io th_io_table;

/* Reset counters and faults. */
void th_io_reset(void);

/* Load the engine vtable from argv[1] or $KVD_TEST_ENGINE (exits with 2
 * when that fails: a test program cannot run without it). */
const struct kvd_engine_vtable *th_engine(int argc, char **argv);

/* Fake wall clock: 0 = real time. */
void th_clock_set(int64_t now_ms);
/* Fake monotonic clock (host->mono_ns, kvd_mono_ns): 0 = real time. */
void th_mono_set(int64_t now_ns);

/* Log capture. */
void th_log_clear(void);
int th_log_contains(const char *needle);
int th_log_count(const char *needle);

/* Scratch directories. */
char *th_mkdtemp(void);
/* Remove dir and everything below it. */
void th_rmrf(const char *dir);
/* Copy the files of `from` into `to` (no subdirectories). */
int th_copy_dir(const char *from, const char *to);

/* Engine stat by name through the stats callback (UINT64_MAX if none). */
uint64_t th_stat(const struct kvd_engine_vtable *vt, kvd_engine *e,
                 const char *name);
void th_stats(const struct kvd_engine_vtable *vt, kvd_engine *e,
              struct kvd_engine_stats *st);

#endif /* KVD_TH_HOST_H */
