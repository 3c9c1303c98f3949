/*
 * alog_test_host.h -- helpers of the log engine's tests. The test host
 * they run the engine with (fault-injecting file I/O, log capture, a
 * settable clock, plugin loading, scratch directories: th_*) is the
 * conformance kit's, tests/conformance/th_host.h; what is here knows the
 * log engine's options and file names.
 */
#ifndef KVD_ALOG_TEST_HOST_H
#define KVD_ALOG_TEST_HOST_H

#include <stddef.h>

#include "alog_opts.h"
#include "th_host.h"

/* Default options as the table declares them, but sync = never and no
 * automatic merges, so tests decide. */
void th_opts_default(struct alog_opts *o);

/* Path of the data file with the highest number in dir ("" if none). */
void th_last_segment(const char *dir, char *out, size_t outlen);
/* Remove every *.hint in dir. */
void th_remove_hints(const char *dir);

#endif /* KVD_ALOG_TEST_HOST_H */
