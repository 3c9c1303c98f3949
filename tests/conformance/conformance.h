/*
 * tests/conformance/conformance.h -- shared fixture of the conformance suite.
 *
 * One cmocka binary checks any engine plugin against the contract of
 * include/kvd/engine.h and core/store.h. The group setup loads the plugin
 * through the real loader; every test gets a fresh fixture (struct cf_fx):
 * a mkdtemp directory, a host whose clock the test controls, the engine's
 * options parsed by the real option parser, and the engine opened either
 * raw through its vtable (CF_RAW) or wrapped in the core store (CF_STORE).
 * Most behaviours are registered once per mode, so the same assertion runs
 * against the bare engine and against the store built on it; the cf_*
 * access functions hide which of the two a test is talking to.
 *
 * Partitioned batches: an engine whose batches are atomic only within a
 * partition (KVD_CAP_BATCH_PARTITIONED without KVD_CAP_ATOMIC_BATCH, e.g.
 * a Redis Cluster, where a partition is a hash slot) runs the batch tests
 * when the suite is given --partition-tags=A,B: two key prefixes that put
 * a key in a partition each, two different ones. Batch tests are then
 * registered with a "grouped" fixture that prefixes every key of the test
 * with A inside the cf_* functions (and strips it from what iteration
 * returns and from stats' key bytes), so their batches stay in one
 * partition and check the atomic apply path; a separate test checks that
 * a batch spanning A and B is refused with KVD_ECROSSSLOT and changes
 * nothing. Empty keys are never prefixed (they must stay invalid).
 *
 * Threads: cmocka's assertions longjmp and are not thread-safe, so worker
 * threads record failures in their own structs and the test thread asserts.
 */
#ifndef KVD_TESTS_CONFORMANCE_H
#define KVD_TESTS_CONFORMANCE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/loader.h"
#include "core/store.h"
#include "kvd/engine.h"
#include "kvd/host.h"

#define CF_PATH_BYTES 512

/* Group state: the engine under test, fixed for the whole run. */
struct cf_suite {
    const char *path;                   /* the plugin file */
    kvd_plugin *plugin;                 /* loader handle */
    const struct kvd_engine_vtable *vt; /* points into the plugin */
    int nargs;                          /* engine options "key=value" */
    char **args;
    bool persistent;        /* caps, or --persistent given */
    const char *open_fails; /* --open-fails=KEY=VALUE: parses, open refuses */
    /* --partition-tags=A,B: key prefixes of two different partitions */
    char *partition_tags[2];
    /* crash and fault tests (cf_crash.c) */
    int ncrash_args; /* --crash-opt KEY=VALUE: added for those tests */
    char **crash_args;
    bool durable; /* --durable, or the caps with the crash options */
    char durable_why[CF_PATH_BYTES]; /* why the crash tests do not run */
    int crash_rounds;                /* --rounds: SIGKILL loop rounds */
    const char *filter;              /* --filter=A,B: test name parts */
    uint64_t seed;                   /* --seed: of histories and kill points */
};

enum cf_mode {
    CF_BARE = 0,  /* nothing opened: option and open-failure tests */
    CF_RAW = 1,   /* the engine through its vtable */
    CF_STORE = 2, /* the engine behind kvd_store */
};

/* A host whose clock the test sets; engines see it through host->now_ms. */
struct cf_clock_host {
    struct kvd_host host; /* first: the engine gets &host */
    _Atomic int64_t now_ms;
};

/* Per-test fixture. */
struct cf_fx {
    struct cf_suite *suite;
    const struct kvd_engine_vtable *vt;
    int mode;                 /* enum cf_mode */
    char root[CF_PATH_BYTES]; /* mkdtemp dir, removed at teardown */
    char dir[CF_PATH_BYTES];  /* root/data: the engine's data directory */
    struct cf_clock_host clock;
    void *opts; /* parsed engine options (vt->options_size bytes) */
    struct kvd_store_limits limits;
    kvd_engine *eng; /* CF_RAW */
    kvd_store *st;   /* CF_STORE */
    const char *tag; /* grouped fixture: prefix of every key, else NULL */
    size_t taglen;
};

/* --- fixture (conformance.c) ---------------------------------------------- */

int cf_setup_bare(void **state);
int cf_setup_raw(void **state);
int cf_setup_store(void **state);
/* raw/store, with every key in one partition on partitioned engines */
int cf_setup_raw_grouped(void **state);
int cf_setup_store_grouped(void **state);
int cf_teardown(void **state);

/* Open / close / reopen in the fixture's mode (0 or a status, err filled). */
int cf_open(struct cf_fx *fx, struct kvd_err *err);
int cf_close(struct cf_fx *fx, struct kvd_err *err);
void cf_reopen(struct cf_fx *fx);

/* Build the [engine] section from the suite's args plus `extra` items
 * ("key=value", may be NULL) and parse it into a fresh options struct. */
int cf_parse_options(struct cf_fx *fx, const char *const *extra, size_t nextra,
                     void **out, struct kvd_err *err);
void cf_free_options(const struct kvd_engine_vtable *vt, void *opts);

/* The fake clock. It starts a day ahead of the real one (see
 * CF_CLOCK_AHEAD_MS in conformance.c): only cf_advance and cf_set_clock
 * make time pass for expiry, however slowly the test runs. */
int64_t cf_now(const struct cf_fx *fx);
void cf_advance(struct cf_fx *fx, int64_t ms);
void cf_set_clock(struct cf_fx *fx, int64_t ms);

/* --- operations in the fixture's mode ------------------------------------- */

int cf_get(struct cf_fx *fx, const void *key, size_t klen, struct kvd_val *out);
int cf_put(struct cf_fx *fx, const void *key, size_t klen, const void *val,
           size_t vlen, int64_t expire_ms);
int cf_del(struct cf_fx *fx, const void *key, size_t klen);
int cf_batch(struct cf_fx *fx, const struct kvd_op *ops, size_t n,
             struct kvd_err *err);
int cf_iter_open(struct cf_fx *fx, const struct kvd_iter_opts *opts,
                 kvd_iter **out, struct kvd_err *err);
int cf_iter_next(struct cf_fx *fx, kvd_iter *it, struct kvd_entry *out);
void cf_iter_close(struct cf_fx *fx, kvd_iter *it);
int cf_stats(struct cf_fx *fx, struct kvd_engine_stats *st);
int cf_maintain(struct cf_fx *fx, int op, struct kvd_err *err);
/* The caps of the open store (instance_caps when the engine has it). */
uint32_t cf_caps(const struct cf_fx *fx);
/* Batches are atomic only within a partition (see the top). */
bool cf_partitioned(const struct cf_fx *fx);
/* Batches can be tested: atomic always, or partitioned and grouped. */
bool cf_has_batch(const struct cf_fx *fx);

/* String-key shorthands. */
int cf_puts(struct cf_fx *fx, const char *key, const char *val);

/*
 * Read key and compare with the expected bytes: 0 when equal, the get
 * status when the get failed, -1 (after printing the difference) when the
 * bytes or length differ. `exp_expire` < 0 means "do not check the expiry".
 */
int cf_check(struct cf_fx *fx, const void *key, size_t klen, const void *val,
             size_t vlen, int64_t exp_expire);
int cf_checks(struct cf_fx *fx, const char *key, const char *val);

/* Every live key the iterator returns, counted: *nkeys, and 0, or a
 * status / -1 when a key repeats (printed). Keys-only iteration. */
int cf_count_keys(struct cf_fx *fx, uint64_t *nkeys);

/* Skip the calling test unless the condition holds (prints why, and
 * keeps it for the report at the end). */
#define CF_REQUIRE(cond, why)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            cf_note_skip(why);                                                 \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* Record (and print) why the running test is skipped. */
void cf_note_skip(const char *why);

/* --- tests, by file ------------------------------------------------------- */

/* cf_basic.c */
void test_crud_put_get_del(void **state);
void test_get_value_outlives_overwrite(void **state);
void test_put_overwrite_replaces_value(void **state);
void test_get_missing_key_is_notfound(void **state);
void test_del_missing_key_is_notfound(void **state);
void test_binary_keys_and_values_with_nul(void **state);
void test_empty_value_is_stored(void **state);
void test_value_16mib_roundtrip(void **state);
void test_100k_keys_roundtrip(void **state);
void test_batch_invalid_op_changes_nothing(void **state);
void test_batch_empty_key_changes_nothing(void **state);
void test_batch_valid_applies_all(void **state);
void test_batch_later_op_wins(void **state);
void test_batch_cross_partition_changes_nothing(void **state);

/* cf_multi.c */
void test_multi_results_match_single_calls(void **state);
void test_multi_same_key_in_array_order(void **state);
void test_multi_random_against_model(void **state);
void test_multi_expiry_rules(void **state);
void test_store_multi_validates_and_counts(void **state);

/* cf_ttl_iter.c */
void test_ttl_get_returns_expiry(void **state);
void test_ttl_expired_key_is_absent(void **state);
void test_ttl_past_expiry_put_is_absent(void **state);
void test_ttl_overwrite_clears_expiry(void **state);
void test_ttl_maint_expire_reclaims(void **state);
void test_iter_empty_store_ends_at_once(void **state);
void test_iter_returns_exactly_live_keys(void **state);
void test_iter_resumes_where_it_stopped(void **state);
void test_iter_prefix_filter(void **state);
void test_iter_keys_only_reports_lengths(void **state);
void test_stats_match_written(void **state);

/* cf_threads.c */
void test_threads_mixed_ops_match_model(void **state);
void test_update_concurrent_increments_lose_nothing(void **state);
void test_update_fn_decides_action(void **state);
void test_iter_concurrent_with_writes_sees_stable_keys(void **state);

/* cf_crash.c: crash and fault tests, and their group setup */
int cf_crash_group_setup(struct cf_suite *suite);
int cf_setup_crash(void **state);
void test_crash_sigkill_keeps_an_acknowledged_prefix(void **state);
void test_crash_torn_write_at_every_step_keeps_acknowledged(void **state);
void test_fault_failed_write_then_nothing_acknowledged(void **state);
void test_fault_failed_fsync_then_nothing_acknowledged(void **state);

/* cf_persist.c */
void test_reopen_keeps_everything(void **state);
void test_reopen_keeps_expiry(void **state);
void test_compact_keeps_data(void **state);
void test_options_unknown_key_is_refused(void **state);
void test_options_bad_value_is_refused(void **state);
void test_options_defaults_parse(void **state);
void test_open_bad_dir_reports_engine_message(void **state);
void test_open_bad_option_reports_engine_message(void **state);
void test_store_refuses_empty_key(void **state);
void test_store_refuses_oversized_key_and_value(void **state);
void test_store_batch_over_limit_changes_nothing(void **state);
void test_store_set_nx_xx(void **state);
void test_store_metrics_count_commands(void **state);
void test_store_clear_removes_everything(void **state);

#endif /* KVD_TESTS_CONFORMANCE_H */
