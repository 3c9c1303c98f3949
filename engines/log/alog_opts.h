/*
 * alog_opts.h -- the options struct of the log engine.
 *
 * The host parses the [engine] section into this struct through the option
 * table in alog_engine.c (which holds the defaults, the bounds and the help
 * text of every field). Tests include this header to fill it by hand.
 *
 * Private to the log engine and its tests; not part of the installed ABI.
 */
#ifndef KVD_ALOG_OPTS_H
#define KVD_ALOG_OPTS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Values of struct alog_opts.sync (index into the enum's choices). */
enum alog_sync_mode {
    ALOG_SYNC_ALWAYS = 0,   /* fdatasync before acknowledging (group commit) */
    ALOG_SYNC_EVERYSEC = 1, /* a background thread syncs once a second */
    ALOG_SYNC_NEVER = 2,    /* the OS flushes when it likes */
};

/* Values of struct alog_opts.corruption. */
enum alog_corrupt_policy {
    ALOG_CORRUPT_SKIP = 0, /* log, count, skip the damaged bytes, go on */
    ALOG_CORRUPT_FAIL = 1, /* refuse to open (torn tails are still cut) */
};

struct alog_opts {
    int sync;                /* enum alog_sync_mode */
    uint64_t segment_size;   /* roll the active segment past this size */
    int64_t merge_ratio;     /* percent of dead bytes that makes a segment
                                a merge input; 0 disables automatic merges */
    int64_t merge_interval;  /* ms between background merge checks */
    uint64_t merge_min_dead; /* dead bytes needed before a merge starts */
    int corruption;          /* enum alog_corrupt_policy */
    int hint_files;          /* write hint files for immutable segments */
    int index_file;          /* write the index file at a clean close */
    int64_t sync_interval;   /* ms between syncs for sync = everysec */
    uint64_t merge_rate;     /* bytes/s a merge may write; 0 = no limit */
};

#ifdef __cplusplus
}
#endif

#endif /* KVD_ALOG_OPTS_H */
