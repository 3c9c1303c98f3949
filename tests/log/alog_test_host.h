/*
 * alog_test_host.h -- a hand-made struct kvd_host for the log engine's
 * tests: POSIX file calls wrapped by a fault-injecting table, a log that
 * records messages so tests can assert on them, a settable clock, and
 * helpers to load the plugin and make scratch directories.
 *
 * The tests load the engine .so directly with dlopen (path from argv[1],
 * else $KVD_TEST_LOG_PLUGIN, else the build-tree path compiled in), so they
 * do not depend on the core.
 *
 * Fault injection counts calls process-wide (atomics): set th_io.fail_* to
 * N to make the Nth call of that kind (counting from the moment the field
 * is set with th_io_arm) fail with th_io.fail_errno.
 */
#ifndef KVD_ALOG_TEST_HOST_H
#define KVD_ALOG_TEST_HOST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "alog_opts.h"
#include "kvd/engine.h"
#include "kvd/host.h"

struct th_io_state {
    _Atomic long preads;
    _Atomic long writes;        /* pwrite + write */
    _Atomic long syncs;         /* fsync + fdatasync */
    _Atomic long mutations;     /* writes, syncs, rename, unlink, ftruncate */
    _Atomic long fail_write_at; /* 0 = never; else the Nth write fails */
    _Atomic long fail_sync_at;
    _Atomic long kill_at_mutation; /* SIGKILL self before the Nth one */
    _Atomic int fail_errno;
    _Atomic int sync_delay_us; /* sleep inside every fdatasync */
};

extern struct th_io_state th_io;
extern const struct kvd_host th_host;

/* Reset counters and faults. */
void th_io_reset(void);

/* Load the engine vtable (aborts the test program on failure). */
const struct kvd_engine_vtable *th_engine(int argc, char **argv);

/* Default options as the table declares them, but sync = never and no
 * automatic merges, so tests decide. */
void th_opts_default(struct alog_opts *o);

/* Fake clock: 0 = real time. */
void th_clock_set(int64_t now_ms);

/* Log capture. */
void th_log_clear(void);
int th_log_contains(const char *needle);
int th_log_count(const char *needle);

/* Scratch directories. */
char *th_mkdtemp(void);
void th_rmrf(const char *dir);
int th_copy_dir(const char *from, const char *to);

/* Engine stat by name through the stats callback (UINT64_MAX if none). */
uint64_t th_stat(const struct kvd_engine_vtable *vt, kvd_engine *e,
                 const char *name);
void th_stats(const struct kvd_engine_vtable *vt, kvd_engine *e,
              struct kvd_engine_stats *st);

/* Path of the data file with the highest number in dir ("" if none). */
void th_last_segment(const char *dir, char *out, size_t outlen);
/* Remove every *.hint in dir. */
void th_remove_hints(const char *dir);

#endif /* KVD_ALOG_TEST_HOST_H */
