/*
 * test_log_merge_crash.c -- a merge killed at every step loses nothing.
 *
 * A store is prepared with overwrites, deletes (a tombstone whose key's
 * put sits in an older, cold segment), live filler and churn. Then, for
 * N = 1, 2, ...: a child opens a copy of it, arms the test I/O table to
 * SIGKILL the process at its Nth mutating file call (write, fsync,
 * rename, unlink, truncate) and merges: on demand (all segments) in one
 * test, by the background thread (a partial merge of the hot segments) in
 * the other. The parent reopens the copy and checks every key against the
 * model, merges it again itself and checks again after a reopen. The loop
 * ends when a child finishes its merge before reaching N.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alog_test_host.h"

#define NKEYS     150
#define MAX_KILLS 2000

static const struct kvd_engine_vtable *vt;

static void
opts_for(struct alog_opts *o, int auto_merge)
{
    th_opts_default(o);
    o->segment_size = 4096;
    if (auto_merge) {
        o->merge_ratio = 50;
        o->merge_min_dead = 0;
        o->merge_interval = 10;
    }
}

static void
model_value(int k, char *buf)
{
    sprintf(buf, "final-value-%03d-%s", k, k % 2 ? "odd" : "even");
}

static void
prepare(const char *dir)
{
    struct alog_opts o;
    struct kvd_err err;
    kvd_engine *e = NULL;
    char k[16];
    char v[64];

    opts_for(&o, 0);
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), 0);
    assert_int_equal(vt->put(e, "victim", 6, "old", 3, 0), 0);
    for (int i = 0; i < 60; i++) {
        snprintf(k, sizeof(k), "fill%02d", i);
        assert_int_equal(
            vt->put(e, k, strlen(k), "filler-filler-filler", 20, 0), 0);
    }
    /* a first merge moves the victim's put into an output segment whose
     * id is higher than the active segment's, which will hold its
     * tombstone: unlinking inputs in id order alone would then resurrect
     * it; only the merge commit record keeps it deleted */
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    assert_int_equal(vt->del(e, "victim", 6), 0);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < NKEYS; i++) {
            snprintf(k, sizeof(k), "key%03d", i);
            if (r == 2) {
                model_value(i, v);
            } else {
                snprintf(v, sizeof(v), "round-%d-%03d", r, i);
            }
            assert_int_equal(vt->put(e, k, strlen(k), v, strlen(v), 0), 0);
        }
    }
    for (int i = 0; i < NKEYS; i += 4) {
        snprintf(k, sizeof(k), "key%03d", i);
        assert_int_equal(vt->del(e, k, strlen(k)), 0);
    }
    for (int r = 0; r < 200; r++) {
        assert_int_equal(vt->put(e, "churn", 5, "churn-churn-churn", 17, 0), 0);
    }
    assert_int_equal(vt->close(e, &err), 0);
}

static void
verify(kvd_engine *e, int n)
{
    char k[16];
    char v[64];
    struct kvd_val val;
    struct kvd_engine_stats st;

    if (vt->get(e, "victim", 6, &val) != KVD_ENOTFOUND) {
        fail_msg("kill point %d: a deleted key came back", n);
    }
    for (int i = 0; i < NKEYS; i++) {
        int rc;
        snprintf(k, sizeof(k), "key%03d", i);
        rc = vt->get(e, k, strlen(k), &val);
        if (i % 4 == 0) {
            if (rc != KVD_ENOTFOUND) {
                fail_msg("kill point %d: deleted %s is back", n, k);
            }
            continue;
        }
        if (rc != 0) {
            fail_msg("kill point %d: %s lost (%d)", n, k, rc);
        }
        model_value(i, v);
        assert_int_equal(val.len, strlen(v));
        assert_memory_equal(val.data, v, val.len);
        kvd_val_release(&val);
    }
    for (int i = 0; i < 60; i++) {
        snprintf(k, sizeof(k), "fill%02d", i);
        assert_int_equal(vt->get(e, k, strlen(k), &val), 0);
        kvd_val_release(&val);
    }
    th_stats(vt, e, &st);
    assert_int_equal(st.keys, (uint64_t)(NKEYS - (NKEYS + 3) / 4 + 60 + 1));
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
}

static void
child_merge(const char *dir, int auto_merge, long n)
{
    struct alog_opts o;
    struct kvd_err err;
    kvd_engine *e = NULL;

    opts_for(&o, auto_merge);
    if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
        _exit(3);
    }
    atomic_store(&th_io.kill_at_mutation, atomic_load(&th_io.mutations) + n);
    if (auto_merge) {
        for (int i = 0; i < 300 && th_stat(vt, e, "merges_total") == 0; i++) {
            usleep(10000);
        }
        if (th_stat(vt, e, "merges_total") == 0) {
            _exit(5);
        }
    } else if (vt->maintain(e, KVD_MAINT_COMPACT, &err) != 0) {
        _exit(4);
    }
    vt->close(e, &err);
    _exit(0);
}

static void
run_kill_points(int auto_merge)
{
    char *base = th_mkdtemp();
    int completed = 0;
    long n;

    prepare(base);
    for (n = 1; n <= MAX_KILLS && !completed; n++) {
        char *dir = th_mkdtemp();
        struct alog_opts o;
        struct kvd_err err;
        kvd_engine *e = NULL;
        int status;
        pid_t pid;

        assert_int_equal(th_copy_dir(base, dir), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            child_merge(dir, auto_merge, n);
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
        opts_for(&o, 0);
        if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
            fail_msg("kill point %ld: reopen: %s", n, err.msg);
        }
        verify(e, (int)n);
        /* the store merges fine afterwards and keeps everything */
        assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
        verify(e, (int)n);
        assert_int_equal(vt->close(e, &err), 0);
        assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), 0);
        verify(e, (int)n);
        assert_int_equal(vt->close(e, &err), 0);
        th_rmrf(dir);
        free(dir);
    }
    print_message("%s merge: killed at %ld points, then it completed\n",
                  auto_merge ? "background" : "on-demand", n - 2);
    assert_true(completed);
    assert_true(n > 5); /* the merge really had steps to interrupt */
    th_rmrf(base);
    free(base);
}

static void
test_log_compact_killed_at_every_step_loses_nothing(void **state)
{
    (void)state;
    run_kill_points(0);
}

static void
test_log_background_merge_killed_at_every_step_loses_nothing(void **state)
{
    (void)state;
    run_kill_points(1);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_compact_killed_at_every_step_loses_nothing),
        cmocka_unit_test(
            test_log_background_merge_killed_at_every_step_loses_nothing),
    };
    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("log.merge_crash", tests, NULL, NULL);
}
