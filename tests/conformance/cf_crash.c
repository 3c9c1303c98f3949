/*
 * tests/conformance/cf_crash.c -- crash and fault tests of the kit, for
 * engines that promise durability (KVD_CAP_DURABLE in their caps with
 * the crash options, or --durable): what a crash or a failing disk may
 * and may not do to acknowledged writes.
 *
 *  - SIGKILL loop: a child applies a deterministic history and is killed
 *    after a random number of acknowledgements; the reopened store must
 *    hold exactly the history up to the last acknowledged op, or one
 *    further (th_hist.h). --rounds rounds, seeded by --seed.
 *  - Torn writes: a child writes a stream of puts and kills itself at its
 *    Nth file mutation, a write cut in half when that is a write, for N =
 *    1, 2, ... until the stream completes; every reopen must succeed and
 *    hold every acknowledged put, perhaps the one in flight, nothing else.
 *  - Nth write or fsync fails (EIO), for N = 1, 2, ... until the workload
 *    no longer reaches the fault: the failing op gets an error, no later
 *    write is acknowledged, stats say read-only, reads still answer, and
 *    after a reopen every acknowledged write is there.
 *
 * The crash options are the suite's options plus --crash-opt ones; when
 * none is given and the engine has a `sync` option with an "always"
 * choice, sync=always is added. Everything runs on the kit's test host
 * (th_host.h), whose file calls fail or kill on cue.
 */
#include "conformance.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "th_hist.h"
#include "th_host.h"

#define CF_MAX_STEPS      3000  /* kill or fault points before giving up */
#define CF_TORN_KEYS      20    /* puts of the torn-write stream */
#define CF_FAULT_OPS      40    /* ops of the fault workload */
#define CF_HIST_KEYS      200   /* keys of the SIGKILL loop's history */
#define CF_KILL_AFTER_MAX 100   /* acknowledgements before a kill, at most */
#define CF_WAIT_MS        60000 /* for a child's acknowledgements */

/* --- set-up --------------------------------------------------------------- */

/* Open a store in dir with the fixture's (crash) options and the test
 * host; fails the test when it cannot. */
static kvd_engine *
cf_crash_open(struct cf_fx *fx, const char *dir)
{
    struct kvd_err err = {0};
    kvd_engine *e = NULL;
    int rc = fx->vt->open(&th_host, fx->opts, dir, &e, &err);

    if (rc != 0) {
        fail_msg("open %s: %s (%s)", dir, err.msg, kvd_strerror(rc));
    }
    return e;
}

int
cf_crash_group_setup(struct cf_suite *suite)
{
    struct cf_fx fx;
    struct kvd_err err = {0};
    kvd_engine *e = NULL;
    uint32_t caps;
    int rc;

    if (suite->durable) {
        return 0; /* --durable: the user vouches for the options */
    }
    memset(&fx, 0, sizeof(fx));
    fx.suite = suite;
    fx.vt = suite->vt;
    snprintf(fx.root, sizeof(fx.root), "%s/kvd-crash-XXXXXX",
             getenv("TMPDIR") != NULL && getenv("TMPDIR")[0] != '\0'
                 ? getenv("TMPDIR")
                 : "/tmp");
    if (mkdtemp(fx.root) == NULL) {
        snprintf(suite->durable_why, sizeof(suite->durable_why), "mkdtemp: %s",
                 strerror(errno));
        return 0;
    }
    if (snprintf(fx.dir, sizeof(fx.dir), "%s/data", fx.root) >=
        (int)sizeof(fx.dir)) {
        snprintf(suite->durable_why, sizeof(suite->durable_why),
                 "TMPDIR is too long");
        th_rmrf(fx.root);
        return 0;
    }
    rc = cf_parse_options(&fx, (const char *const *)suite->crash_args,
                          (size_t)suite->ncrash_args, &fx.opts, &err);
    if (rc == 0) {
        rc = fx.vt->open(&th_host, fx.opts, fx.dir, &e, &err);
    }
    if (rc != 0) {
        snprintf(suite->durable_why, sizeof(suite->durable_why),
                 "cannot open with the crash options: %s", err.msg);
    } else {
        caps = fx.vt->instance_caps != NULL ? fx.vt->instance_caps(e)
                                            : fx.vt->caps;
        suite->durable = (caps & KVD_CAP_DURABLE) != 0;
        if (!suite->durable) {
            snprintf(suite->durable_why, sizeof(suite->durable_why),
                     "the engine does not say that acknowledged writes "
                     "survive a crash (KVD_CAP_DURABLE) with these options; "
                     "--crash-opt sets them, --durable vouches for them");
        }
        fx.vt->close(e, NULL);
    }
    cf_free_options(fx.vt, fx.opts);
    th_rmrf(fx.root);
    return 0;
}

int
cf_setup_crash(void **state)
{
    struct cf_suite *suite = *state;
    struct cf_fx *fx;
    struct kvd_err err = {0};
    int rc;

    if (cf_setup_bare(state) != 0) {
        return -1;
    }
    fx = *state;
    cf_free_options(fx->vt, fx->opts);
    fx->opts = NULL;
    rc = cf_parse_options(fx, (const char *const *)suite->crash_args,
                          (size_t)suite->ncrash_args, &fx->opts, &err);
    if (rc != 0) {
        print_error("crash options: %s (%d)\n", err.msg, rc);
        return -1;
    }
    th_io_reset();
    return 0;
}

static bool
cf_crash_batches(const struct cf_fx *fx)
{
    return fx->vt->batch != NULL && (fx->vt->caps & KVD_CAP_ATOMIC_BATCH) != 0;
}

/* A small generator for kill points, from the suite's seed. */
static uint64_t
cf_rng(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* --- the SIGKILL loop ----------------------------------------------------- */

void
test_crash_sigkill_keeps_an_acknowledged_prefix(void **state)
{
    struct cf_fx *fx = *state;
    struct th_crash c;
    char why[TH_WHY_BYTES];
    uint64_t rng;

    CF_REQUIRE(fx->suite->durable, fx->suite->durable_why);
    memset(&c, 0, sizeof(c));
    c.vt = fx->vt;
    c.host = &th_host;
    c.opts = fx->opts;
    c.check_opts = fx->opts;
    c.dir = fx->dir;
    c.conf.seed = fx->suite->seed;
    c.conf.nkeys = CF_HIST_KEYS;
    c.conf.batches = cf_crash_batches(fx);
    th_crash_init(&c);
    rng = fx->suite->seed;
    for (int round = 0; round < fx->suite->crash_rounds; round++) {
        long kill_after = 1 + (long)(cf_rng(&rng) % CF_KILL_AFTER_MAX);

        if (th_crash_round(&c, kill_after, CF_WAIT_MS, why, sizeof(why)) != 0) {
            fail_msg("round %d (seed %llu): %s", round,
                     (unsigned long long)fx->suite->seed, why);
        }
    }
    print_message("      %d kills, %ld acknowledged ops, %d times the op in "
                  "flight was durable too (seed %llu)\n",
                  fx->suite->crash_rounds, c.acked, c.in_flight,
                  (unsigned long long)fx->suite->seed);
    assert_true(c.acked >= fx->suite->crash_rounds);
}

/* --- torn writes ---------------------------------------------------------- */

static size_t
cf_torn_value(int i, char *buf)
{
    return (size_t)sprintf(buf, "torn-%03d-%.*s", i, 40 + i * 7 % 90,
                           "tttttttttttttttttttttttttttttttttttttttttttttt"
                           "tttttttttttttttttttttttttttttttttttttttttttttt"
                           "tttttttttttttttttttttttttttttttttttttttttttttt");
}

/* The child: kill itself at mutation n, tearing a write; put the
 * stream, reporting each acknowledged put. */
static void
cf_torn_child(struct cf_fx *fx, const char *dir, long n, int fd)
{
    struct kvd_err err = {0};
    kvd_engine *e = NULL;

    th_io_reset();
    atomic_store(&th_io.torn_kill, 1);
    atomic_store(&th_io.kill_at_mutation, atomic_load(&th_io.mutations) + n);
    if (fx->vt->open(&th_host, fx->opts, dir, &e, &err) != 0) {
        fprintf(stderr, "torn child: open %s: %s\n", dir, err.msg);
        _exit(3);
    }
    for (int i = 0; i < CF_TORN_KEYS; i++) {
        char k[16];
        char v[200];
        size_t vn = cf_torn_value(i, v);

        snprintf(k, sizeof(k), "torn%03d", i);
        if (fx->vt->put(e, k, strlen(k), v, vn, KVD_NO_EXPIRY) != 0) {
            _exit(4);
        }
        if (write(fd, &i, sizeof(i)) != sizeof(i)) {
            _exit(5);
        }
    }
    fx->vt->close(e, &err);
    _exit(0);
}

/* Every acknowledged put there, the one in flight perhaps, no other. */
static void
cf_torn_check(struct cf_fx *fx, kvd_engine *e, long n, int acked)
{
    for (int i = 0; i < CF_TORN_KEYS; i++) {
        char k[16];
        char v[200];
        size_t vn = cf_torn_value(i, v);
        struct kvd_val val;
        int rc;

        snprintf(k, sizeof(k), "torn%03d", i);
        rc = fx->vt->get(e, k, strlen(k), &val);
        if (i < acked || (i == acked && rc == 0)) {
            if (rc != 0) {
                fail_msg("kill point %ld: acknowledged %s lost (%s)", n, k,
                         kvd_strerror(rc));
            }
            if (val.len != vn || memcmp(val.data, v, vn) != 0) {
                fail_msg("kill point %ld: %s has a damaged value", n, k);
            }
            kvd_val_release(&val);
        } else if (rc != KVD_ENOTFOUND) {
            fail_msg("kill point %ld: %s, never written, gets %s", n, k,
                     rc == 0 ? "a value" : kvd_strerror(rc));
        }
    }
}

void
test_crash_torn_write_at_every_step_keeps_acknowledged(void **state)
{
    struct cf_fx *fx = *state;
    bool completed = false;
    long n;

    CF_REQUIRE(fx->suite->durable, fx->suite->durable_why);
    for (n = 1; n <= CF_MAX_STEPS && !completed; n++) {
        char dir[CF_PATH_BYTES + 32];
        struct kvd_err err = {0};
        kvd_engine *e;
        int acked = 0;
        int status;
        int pfd[2];
        int i;
        pid_t pid;

        snprintf(dir, sizeof(dir), "%s/t%ld", fx->root, n);
        assert_int_equal(pipe(pfd), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            cf_torn_child(fx, dir, n, pfd[1]);
        }
        close(pfd[1]);
        while (read(pfd[0], &i, sizeof(i)) == sizeof(i)) {
            assert_int_equal(i, acked);
            acked++;
        }
        close(pfd[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status)) {
            if (WEXITSTATUS(status) != 0) {
                fail_msg("kill point %ld: the child failed with %d (its "
                         "messages are above)",
                         n, WEXITSTATUS(status));
            }
            assert_int_equal(acked, CF_TORN_KEYS);
            completed = true;
        } else {
            assert_int_equal(WTERMSIG(status), SIGKILL);
        }
        if (access(dir, F_OK) != 0) {
            continue; /* killed before the store existed */
        }
        th_io_reset();
        e = cf_crash_open(fx, dir);
        cf_torn_check(fx, e, n, acked);
        assert_int_equal(fx->vt->close(e, &err), 0);
        th_rmrf(dir);
    }
    print_message("      killed at %ld file mutations (writes torn in half), "
                  "then the stream completed\n",
                  n - 2);
    assert_true(completed);
    assert_true(n > CF_TORN_KEYS); /* every put did touch a file */
}

/* --- the Nth write or fsync fails ----------------------------------------- */

static void
cf_fault_loop(struct cf_fx *fx, bool sync_fault)
{
    const char *what = sync_fault ? "fsync" : "write";
    struct th_hist_conf conf = {fx->suite->seed, CF_HIST_KEYS,
                                cf_crash_batches(fx)};
    bool reached_end = false;
    long faults = 0;
    long n;

    for (n = 1; n <= CF_MAX_STEPS && !reached_end; n++) {
        char dir[CF_PATH_BYTES + 32];
        char why[TH_WHY_BYTES];
        struct th_hist model;
        struct th_hist with_failed;
        struct kvd_engine_stats st;
        struct kvd_err err = {0};
        kvd_engine *e;
        long failed = -1;
        int first_rc = 0;
        int rc;

        memset(&model, 0, sizeof(model));
        snprintf(dir, sizeof(dir), "%s/f%ld", fx->root, n);
        th_io_reset();
        e = cf_crash_open(fx, dir);
        atomic_store(&th_io.fail_errno, EIO);
        if (sync_fault) {
            atomic_store(&th_io.fail_sync_at, atomic_load(&th_io.syncs) + n);
        } else {
            atomic_store(&th_io.fail_write_at, atomic_load(&th_io.writes) + n);
        }
        for (long op = 0; op < CF_FAULT_OPS; op++) {
            rc = th_hist_run(fx->vt, e, &conf, op);
            if (failed < 0 && (rc == 0 || rc == KVD_ENOTFOUND)) {
                th_hist_apply(&model, &conf, op);
            } else if (failed < 0) {
                failed = op;
                first_rc = rc;
            } else if (rc == 0) {
                fail_msg("%s %ld failed: op %ld got %s, but op %ld after it "
                         "was acknowledged",
                         what, n, failed, kvd_strerror(first_rc), op);
            }
        }
        th_io_reset();
        if (failed < 0) {
            reached_end = true; /* the workload no longer reaches it */
        } else {
            faults++;
            with_failed = model;
            th_hist_apply(&with_failed, &conf, failed);
            memset(&st, 0, sizeof(st));
            st.struct_size = sizeof(st);
            assert_int_equal(fx->vt->stats(e, &st, NULL, NULL), 0);
            if (!st.readonly) {
                fail_msg("%s %ld failed (op %ld got %s) but stats do not say "
                         "read-only",
                         what, n, failed, kvd_strerror(first_rc));
            }
            /* reads still answer, and see the acknowledged writes */
            if (th_hist_check(fx->vt, e, &model, &conf, why, sizeof(why)) !=
                    1 &&
                th_hist_check(fx->vt, e, &with_failed, &conf, why,
                              sizeof(why)) != 1) {
                fail_msg("%s %ld failed at op %ld; reads before the reopen: "
                         "%s",
                         what, n, failed, why);
            }
        }
        fx->vt->close(e, &err); /* may report the failure again */
        e = cf_crash_open(fx, dir);
        if (th_hist_check(fx->vt, e, &model, &conf, why, sizeof(why)) != 1 &&
            (failed < 0 || th_hist_check(fx->vt, e, &with_failed, &conf, why,
                                         sizeof(why)) != 1)) {
            fail_msg("%s %ld failed at op %ld; after the reopen: %s", what, n,
                     failed, why);
        }
        assert_int_equal(fx->vt->close(e, &err), 0);
        th_rmrf(dir);
    }
    print_message("      a failing %s at %ld points of the workload, "
                  "each turned the store read-only\n",
                  what, faults);
    assert_true(reached_end);
    assert_true(faults > 0);
}

void
test_fault_failed_write_then_nothing_acknowledged(void **state)
{
    struct cf_fx *fx = *state;

    CF_REQUIRE(fx->suite->durable, fx->suite->durable_why);
    cf_fault_loop(fx, false);
}

void
test_fault_failed_fsync_then_nothing_acknowledged(void **state)
{
    struct cf_fx *fx = *state;

    CF_REQUIRE(fx->suite->durable, fx->suite->durable_why);
    cf_fault_loop(fx, true);
}
