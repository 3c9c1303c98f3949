/*
 * test_lsm_crash.c -- crash and fault tests of the lsm engine's own
 * machinery: compactions, flushes and recovery.
 *
 * The generic ones (a SIGKILL loop checking the acknowledged prefix, a
 * kill at every file mutation of a stream of synced puts with torn
 * writes, the Nth write or fsync failing) are the conformance kit's and
 * run as crash.lsm (tests/conformance). These use the kit's test host:
 *
 * 1. Kill at every file mutation: a prepared store (data in the WAL, in
 *    overlapping level-0 tables and in level 1; a tombstone over a value
 *    in a deeper level) is copied, and a child SIGKILLs itself at its Nth
 *    write, fsync, rename, unlink or truncate, for N = 1, 2, ... until it
 *    finishes: (a) during an on-demand compaction (memtable switch, flush,
 *    compactions, MANIFEST edits, file removal), (b) from the start of
 *    open (WAL replay, flush, new MANIFEST) through the background
 *    compactions that follow. After each kill the store must reopen with
 *    exactly the prepared contents, compact again and reopen again.
 * 2. A failing write or fsync at every step of a flush and compaction
 *    turns the store read-only (later writes refused, reads fine, the
 *    state says why) and loses nothing acknowledged.
 */
#include "test_lsm_util.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_KILLS 3000

static const struct kvd_engine_vtable *vt;

/* ---- 1. kill at every mutation ---- */

#define PKEYS 150

#define NEXTRA 20

static void
pvalue(int k, char *buf)
{
    /* ~100 bytes, so the prepared store spans several tables per level */
    sprintf(buf, "final-value-%03d-%s-%.*s", k, k % 2 ? "odd" : "even",
            70 + k % 17,
            "pppppppppppppppppppppppppppppppppppppppppppppppp"
            "pppppppppppppppppppppppppppppppppppppppppppppppp");
}

/* Writes after open, so that the memtable (and WAL) have something for
 * the compaction's memtable switch and flush. */
static void
write_extras(kvd_engine *e)
{
    char k[16];

    for (int i = 0; i < NEXTRA; i++) {
        snprintf(k, sizeof(k), "extra%02d", i % 100);
        if (vt->put(e, k, strlen(k), "extra-value", 11, 0) != 0) {
            _exit(6);
        }
    }
}

static void
prep_opts(struct lsm_opts *o, int auto_compact)
{
    lt_opts_tiny(o);
    o->auto_compact = auto_compact;
    o->corruption = LSM_CORRUPT_PARANOID;
}

static void
prepare(const char *dir)
{
    struct lsm_opts o;
    struct kvd_err err;
    kvd_engine *e;
    char k[16];
    char v[160];

    prep_opts(&o, 0);
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(vt->put(e, "victim", 6, "old", 3, 0), 0);
    for (int i = 0; i < 60; i++) {
        snprintf(k, sizeof(k), "fill%02d", i);
        assert_int_equal(
            vt->put(e, k, strlen(k), "filler-filler-filler", 20, 0), 0);
    }
    /* the victim's value goes deep; its tombstone stays above it: a
     * compaction that dropped the tombstone too early would bring it
     * back */
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    assert_int_equal(vt->del(e, "victim", 6), 0);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < PKEYS; i++) {
            snprintf(k, sizeof(k), "key%03d", i);
            if (r == 2) {
                pvalue(i, v);
            } else {
                snprintf(v, sizeof(v), "round-%d-%03d", r, i);
            }
            assert_int_equal(vt->put(e, k, strlen(k), v, strlen(v), 0), 0);
        }
    }
    for (int i = 0; i < PKEYS; i += 4) {
        snprintf(k, sizeof(k), "key%03d", i);
        assert_int_equal(vt->del(e, k, strlen(k)), 0);
    }
    for (int r = 0; r < 200; r++) {
        assert_int_equal(vt->put(e, "churn", 5, "churn-churn-churn", 17, 0), 0);
    }
    /* so that level 0 holds several overlapping tables and the memtable
     * (WAL) holds the newest writes */
    assert_true(th_stat(vt, e, "l0_tables") >= 2);
    assert_true(th_stat(vt, e, "memtable_bytes") > 0);
    th_engine_close(vt, e);
}

static void
verify_ro(kvd_engine *e, long n, int readonly)
{
    char k[16];
    char v[160];
    int extras = 0;
    struct kvd_val val;
    struct kvd_engine_stats st;

    if (vt->get(e, "victim", 6, &val) != KVD_ENOTFOUND) {
        fail_msg("kill point %ld: a deleted key came back", n);
    }
    for (int i = 0; i < PKEYS; i++) {
        int rc;
        snprintf(k, sizeof(k), "key%03d", i);
        rc = vt->get(e, k, strlen(k), &val);
        if (i % 4 == 0) {
            if (rc != KVD_ENOTFOUND) {
                fail_msg("kill point %ld: deleted %s is back", n, k);
            }
            continue;
        }
        if (rc != 0) {
            fail_msg("kill point %ld: %s lost (%d)", n, k, rc);
        }
        pvalue(i, v);
        assert_int_equal(val.len, strlen(v));
        assert_memory_equal(val.data, v, val.len);
        kvd_val_release(&val);
    }
    for (int i = 0; i < 60; i++) {
        snprintf(k, sizeof(k), "fill%02d", i);
        assert_int_equal(vt->get(e, k, strlen(k), &val), 0);
        kvd_val_release(&val);
    }
    assert_int_equal(vt->get(e, "churn", 5, &val), 0);
    kvd_val_release(&val);
    /* the extras were acknowledged before anything was armed: all or
     * (when the child did not write them) none */
    for (int i = 0; i < NEXTRA; i++) {
        snprintf(k, sizeof(k), "extra%02d", i % 100);
        if (vt->get(e, k, strlen(k), &val) == 0) {
            extras++;
            kvd_val_release(&val);
        }
    }
    if (extras != 0 && extras != NEXTRA) {
        fail_msg("kill point %ld: %d of %d extra keys", n, extras, NEXTRA);
    }
    th_stats(vt, e, &st);
    assert_int_equal(st.keys,
                     (uint64_t)(PKEYS - (PKEYS + 3) / 4 + 60 + 1 + extras));
    assert_int_equal(st.readonly, readonly);
}

static void
verify(kvd_engine *e, long n)
{
    verify_ro(e, n, 0);
}

/* mode 0: kill during maintain(COMPACT), armed after open; mode 1: kill
 * from the start of open through the background compactions. */
static void
child_kill(const char *dir, int mode, long n)
{
    struct lsm_opts o;
    struct kvd_err err;
    kvd_engine *e = NULL;

    if (mode == 1) {
        atomic_store(&th_io.kill_at_mutation,
                     atomic_load(&th_io.mutations) + n);
    }
    prep_opts(&o, mode == 1);
    if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
        fprintf(stderr, "child open: %s\n", err.msg);
        _exit(3);
    }
    if (mode == 0) {
        write_extras(e);
        atomic_store(&th_io.kill_at_mutation,
                     atomic_load(&th_io.mutations) + n);
        if (vt->maintain(e, KVD_MAINT_COMPACT, &err) != 0) {
            _exit(4);
        }
    } else {
        /* wait for the background work the open's level 0 calls for:
         * bounded (60 s) but generous, since a sanitizer build on a
         * loaded machine can take seconds to schedule the compaction */
        for (int i = 0; i < 30000; i++) {
            if (th_stat(vt, e, "compactions_total") > 0 &&
                th_stat(vt, e, "l0_tables") <
                    (uint64_t)o.l0_compaction_trigger) {
                break;
            }
            usleep(2000);
        }
        if (th_stat(vt, e, "compactions_total") == 0) {
            _exit(5);
        }
    }
    vt->close(e, &err);
    _exit(0);
}

static void
run_kill_points(const char *root, int mode)
{
    char base[2048];
    int completed = 0;
    long n;

    snprintf(base, sizeof(base), "%s/base", root);
    assert_int_equal(mkdir(base, 0755), 0);
    prepare(base);
    for (n = 1; n <= MAX_KILLS && !completed; n++) {
        char dir[2048];
        struct lsm_opts o;
        struct kvd_err err;
        kvd_engine *e = NULL;
        int status;
        pid_t pid;

        snprintf(dir, sizeof(dir), "%s/k%ld", root, n);
        assert_int_equal(mkdir(dir, 0755), 0);
        assert_int_equal(th_copy_dir(base, dir), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            child_kill(dir, mode, n);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status)) {
            if (WEXITSTATUS(status) != 0) {
                fail_msg("kill point %ld: child failed with %d", n,
                         WEXITSTATUS(status));
            }
            completed = 1;
        } else {
            assert_int_equal(WTERMSIG(status), SIGKILL);
        }
        prep_opts(&o, 0);
        if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
            fail_msg("kill point %ld: reopen: %s", n, err.msg);
        }
        verify(e, n);
        assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
        verify(e, n);
        assert_int_equal(vt->close(e, &err), 0);
        assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), 0);
        verify(e, n);
        assert_int_equal(vt->close(e, &err), 0);
        th_rmrf(dir);
    }
    print_message("%s: killed at %ld points, then it completed\n",
                  mode == 0 ? "on-demand compaction"
                            : "open + background compaction",
                  n - 2);
    assert_true(completed);
    assert_true(n > 20); /* there really were steps to interrupt */
    th_rmrf(base);
}

static void
test_lsm_compaction_killed_at_every_step_loses_nothing(void **state)
{
    run_kill_points(*state, 0);
}

static void
test_lsm_recovery_and_background_killed_at_every_step(void **state)
{
    run_kill_points(*state, 1);
}

/* ---- 2. fault injection ---- */

static void
assert_readonly(kvd_engine *e, const char *needle)
{
    struct kvd_engine_stats st;
    struct kvd_op op = {KVD_OP_PUT, "later", 5, "x", 1, 0};
    struct kvd_err err;

    th_stats(vt, e, &st);
    assert_int_equal(st.readonly, 1);
    assert_non_null(strstr(st.state, "read-only"));
    if (strstr(st.state, needle) == NULL) {
        fail_msg("state '%s' does not mention '%s'", st.state, needle);
    }
    assert_int_equal(vt->put(e, "later", 5, "x", 1, 0), KVD_EREADONLY);
    assert_int_equal(vt->del(e, "k000", 4), KVD_EREADONLY);
    assert_int_equal(vt->batch(e, &op, 1, &err), KVD_EREADONLY);
    assert_non_null(strstr(err.msg, "read-only"));
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), KVD_EREADONLY);
}

/* A failing write (or fsync) at step N of maintain(COMPACT), for every N
 * until the compaction gets through. */
static void
fault_every_step(const char *root, bool sync_fault)
{
    char base[2048];
    long n;
    bool done = false;

    snprintf(base, sizeof(base), "%s/base", root);
    assert_int_equal(mkdir(base, 0755), 0);
    prepare(base);
    for (n = 1; n < MAX_KILLS && !done; n++) {
        char dir[2048];
        struct lsm_opts o;
        struct kvd_err err;
        kvd_engine *e;
        int rc;

        snprintf(dir, sizeof(dir), "%s/f%ld", root, n);
        assert_int_equal(mkdir(dir, 0755), 0);
        assert_int_equal(th_copy_dir(base, dir), 0);
        prep_opts(&o, 0);
        e = th_engine_open(vt, dir, &o);
        write_extras(e);
        th_io_reset();
        if (sync_fault) {
            atomic_store(&th_io.fail_sync_at, n);
        } else {
            atomic_store(&th_io.fail_write_at, n);
        }
        rc = vt->maintain(e, KVD_MAINT_COMPACT, &err);
        th_io_reset();
        if (rc == 0) {
            done = true;
        } else {
            assert_true(rc == KVD_EIO || rc == KVD_EREADONLY);
            assert_non_null(strstr(err.msg, "read-only"));
            assert_readonly(e, "");
            verify_ro(e, n, 1); /* reads still work, and see everything */
        }
        vt->close(e, NULL);
        e = th_engine_open(vt, dir, &o);
        verify(e, n);
        assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
        verify(e, n);
        th_engine_close(vt, e);
        th_rmrf(dir);
    }
    print_message("failing %s at %ld points of a compaction\n",
                  sync_fault ? "fsync" : "write", n - 2);
    assert_true(done);
    assert_true(n > 5);
    th_rmrf(base);
}

static void
test_lsm_failed_write_during_compaction_turns_read_only(void **state)
{
    fault_every_step(*state, false);
}

static void
test_lsm_failed_fsync_during_compaction_turns_read_only(void **state)
{
    fault_every_step(*state, true);
}

static int
setup_dir(void **state)
{
    th_io_reset();
    th_log_clear();
    *state = th_mkdtemp();
    return 0;
}

static int
teardown_dir(void **state)
{
    th_io_reset();
    th_rmrf(*state);
    free(*state);
    return 0;
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_lsm_compaction_killed_at_every_step_loses_nothing, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_recovery_and_background_killed_at_every_step, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_failed_write_during_compaction_turns_read_only, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_failed_fsync_during_compaction_turns_read_only, setup_dir,
            teardown_dir),
    };

    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("lsm.crash", tests, NULL, NULL);
}
