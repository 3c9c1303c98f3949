/*
 * lsm_opts.h -- the options struct of the lsm engine.
 *
 * The host parses the [engine] section into this struct through the option
 * table in lsm_engine.c (which holds the defaults, bounds and help text of
 * every field). Tests include this header to fill it by hand.
 *
 * Private to the lsm engine and its tests; not part of the installed ABI.
 */
#ifndef KVD_LSM_OPTS_H
#define KVD_LSM_OPTS_H

#include <stdint.h>

#include "kvd/kit_commit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Values of struct lsm_opts.sync: the toolkit's durability modes
 * (enum kvd_sync_mode, group commit in kvd/kit_commit.h). */
#define LSM_SYNC_ALWAYS   KVD_SYNC_ALWAYS   /* fdatasync before the reply */
#define LSM_SYNC_EVERYSEC KVD_SYNC_EVERYSEC /* every sync_interval */
#define LSM_SYNC_NEVER    KVD_SYNC_NEVER    /* the OS flushes when it likes */

/* Values of struct lsm_opts.corruption: what open does with a damaged WAL
 * record that valid records follow (a torn tail is always cut). */
enum lsm_corrupt_policy {
    LSM_CORRUPT_STOP = 0,     /* keep the history up to the last good batch */
    LSM_CORRUPT_SKIP = 1,     /* skip the damaged bytes, replay the rest */
    LSM_CORRUPT_PARANOID = 2, /* refuse to open */
};

struct lsm_opts {
    int sync;                   /* enum kvd_sync_mode */
    int64_t sync_interval;      /* ms between syncs for sync = everysec */
    uint64_t memtable_size;     /* a memtable is frozen past this many bytes */
    uint64_t block_size;        /* target data block bytes in tables */
    uint64_t block_cache_size;  /* bytes of decoded blocks kept in memory */
    int64_t bloom_bits_per_key; /* 0 = no filter */
    int64_t l0_compaction_trigger; /* L0 files that start an L0->L1 merge */
    int64_t l0_slowdown;           /* L0 files at which writes are delayed */
    int64_t l0_stop;               /* L0 files at which writes wait */
    uint64_t level1_size;          /* byte budget of L1; x10 per level */
    uint64_t table_size;           /* target bytes of a compaction output */
    int corruption;                /* enum lsm_corrupt_policy */
    int64_t max_open_files;        /* table readers kept open */
    int auto_compact;              /* background compactions (tests: off) */
    int64_t stats_scan_limit;      /* exact key counts up to this many
                                      stored entries, estimates above */
    uint64_t manifest_size;        /* start a new MANIFEST past this */
};

#ifdef __cplusplus
}
#endif

#endif /* KVD_LSM_OPTS_H */
