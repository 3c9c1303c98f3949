/*
 * test_lsm_files.c -- the lsm engine and the files it needs (issue 13):
 * a missing live WAL is lost data, never an empty store; a full disk
 * makes the store read-only until space comes back, not until a restart;
 * a store on a full or read-only disk still opens for reading; a
 * read-only file system is reported as one, not as an I/O error. Each
 * test fails with main's plugin.
 */
#include "test_lsm_util.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct kvd_engine_vtable *vt;

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

/* Remove every *.log in dir; how many. */
static int
remove_wals(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[4096];
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".log") == 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            assert_int_equal(unlink(path), 0);
            n++;
        }
    }
    closedir(d);
    return n;
}

static void
put_keys(kvd_engine *e, const char *prefix, int n)
{
    char k[32];

    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "%s%03d", prefix, i);
        assert_int_equal(vt->put(e, k, strlen(k), k, strlen(k), 0), 0);
    }
}

static int
count_keys(kvd_engine *e, const char *prefix, int n)
{
    char k[32];
    struct kvd_val v;
    int found = 0;

    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "%s%03d", prefix, i);
        if (vt->get(e, k, strlen(k), &v) == 0) {
            found++;
            kvd_val_release(&v);
        }
    }
    return found;
}

/* Acknowledged writes that only the WAL holds: deleting it must not give
 * back a store without them as if nothing happened. */
static void
test_lsm_missing_live_wal_refuses_open(void **state)
{
    const char *dir = *state;
    struct lsm_opts o;
    struct kvd_err err = {0};
    kvd_engine *e;

    lt_opts_default(&o);
    o.sync = LSM_SYNC_ALWAYS;
    e = th_engine_open(vt, dir, &o);
    put_keys(e, "table", 50);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    put_keys(e, "walonly", 20); /* in the memtable and the WAL only */
    th_engine_close(vt, e);
    assert_true(remove_wals(dir) >= 1);

    e = NULL;
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), KVD_ECORRUPT);
    assert_null(e);
    assert_non_null(strstr(err.msg, ".log"));
    assert_non_null(strstr(err.msg, "missing"));
    assert_non_null(strstr(err.msg, "corruption = skip"));
    /* refused again: nothing was changed by the refusal */
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), KVD_ECORRUPT);

    /* corruption = skip opens without them, and says so */
    o.corruption = LSM_CORRUPT_SKIP;
    th_log_clear();
    e = th_engine_open(vt, dir, &o);
    assert_true(th_log_contains("is missing: the writes it held"));
    assert_int_equal(count_keys(e, "table", 50), 50);
    assert_int_equal(count_keys(e, "walonly", 20), 0);
    th_engine_close(vt, e);
    /* and the store it wrote is whole again */
    o.corruption = LSM_CORRUPT_STOP;
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(count_keys(e, "table", 50), 50);
    th_engine_close(vt, e);
}

static void
expect_readonly(kvd_engine *e, const char *needle)
{
    struct kvd_engine_stats st;

    th_stats(vt, e, &st);
    assert_int_equal(st.readonly, 1);
    if (strstr(st.state, needle) == NULL) {
        fail_msg("state '%s' does not mention '%s'", st.state, needle);
    }
}

/* A full disk makes the store read-only, and space coming back makes it
 * writable again without a restart; nothing is acknowledged meanwhile. */
static void
test_lsm_disk_full_write_retried_when_space_returns(void **state)
{
    const char *dir = *state;
    struct lsm_opts o;
    struct kvd_engine_stats st;
    struct kvd_err err = {0};
    struct kvd_op op = {KVD_OP_PUT, "b", 1, "x", 1, 0};
    kvd_engine *e;

    lt_opts_default(&o);
    o.sync = LSM_SYNC_ALWAYS;
    e = th_engine_open(vt, dir, &o);
    put_keys(e, "before", 10);
    th_log_clear();
    atomic_store(&th_io.full_disk, 1);
    assert_int_equal(vt->put(e, "full", 4, "x", 1, 0), KVD_ENOSPC);
    expect_readonly(e, "no space left on device");
    assert_true(th_log_contains("read-only until there is space again"));
    /* still full: refused again, never acknowledged */
    assert_int_equal(vt->put(e, "full2", 5, "x", 1, 0), KVD_ENOSPC);
    assert_int_equal(vt->batch(e, &op, 1, &err), KVD_ENOSPC);
    assert_int_equal(count_keys(e, "before", 10), 10); /* reads work */

    atomic_store(&th_io.full_disk, 0);
    put_keys(e, "after", 10); /* the first one retries and gets through */
    th_stats(vt, e, &st);
    assert_int_equal(st.readonly, 0);
    assert_string_equal(st.state, "");
    assert_true(th_log_contains("writable again"));
    th_engine_close(vt, e);

    /* what the failed appends left is gone: a paranoid reopen finds no
     * damage, the acknowledged writes and nothing else */
    o.corruption = LSM_CORRUPT_PARANOID;
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(count_keys(e, "before", 10), 10);
    assert_int_equal(count_keys(e, "after", 10), 10);
    assert_int_equal(count_keys(e, "full", 1), 0);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    th_engine_close(vt, e);
}

/* An I/O error is not a full disk: it stays read-only. */
static void
test_lsm_write_error_is_not_retried(void **state)
{
    const char *dir = *state;
    struct lsm_opts o;
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, dir, &o);
    atomic_store(&th_io.fail_errno, EIO);
    atomic_store(&th_io.fail_write_at, atomic_load(&th_io.writes) + 1);
    assert_int_equal(vt->put(e, "k", 1, "v", 1, 0), KVD_EIO);
    th_io_reset();
    assert_int_equal(vt->put(e, "k", 1, "v", 1, 0), KVD_EREADONLY);
    expect_readonly(e, "I/O error");
    th_engine_close(vt, e);
}

/* A store on a full disk still opens, read-only, with everything it
 * holds (tables and WAL), instead of refusing to open at all. */
static void
test_lsm_opens_read_only_on_a_full_disk(void **state)
{
    const char *dir = *state;
    struct lsm_opts o;
    struct kvd_err err = {0};
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, dir, &o);
    put_keys(e, "table", 30);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    put_keys(e, "wal", 30);
    th_engine_close(vt, e);

    th_log_clear();
    atomic_store(&th_io.full_disk, 1);
    e = th_engine_open(vt, dir, &o);
    assert_true(th_log_contains("opened read-only"));
    expect_readonly(e, "no space left on device");
    assert_int_equal(count_keys(e, "table", 30), 30);
    assert_int_equal(count_keys(e, "wal", 30), 30);
    assert_int_equal(vt->put(e, "new", 3, "v", 1, 0), KVD_EREADONLY);
    th_engine_close(vt, e);

    th_io_reset();
    e = th_engine_open(vt, dir, &o);
    assert_int_equal(count_keys(e, "wal", 30), 30);
    assert_int_equal(vt->put(e, "new", 3, "v", 1, 0), 0);
    th_engine_close(vt, e);
}

/* A read-only file system is reported as such: at open (read-only, data
 * served) and when a write meets it. */
static void
test_lsm_read_only_file_system_is_reported_as_such(void **state)
{
    const char *dir = *state;
    struct lsm_opts o;
    kvd_engine *e;

    lt_opts_default(&o);
    e = th_engine_open(vt, dir, &o);
    put_keys(e, "k", 20);
    th_engine_close(vt, e);

    atomic_store(&th_io.readonly_fs, 1);
    e = th_engine_open(vt, dir, &o);
    expect_readonly(e, "read-only file system");
    assert_int_equal(count_keys(e, "k", 20), 20);
    assert_int_equal(vt->put(e, "x", 1, "v", 1, 0), KVD_EREADONLY);
    th_engine_close(vt, e);

    th_io_reset();
    e = th_engine_open(vt, dir, &o);
    atomic_store(&th_io.fail_errno, EROFS);
    atomic_store(&th_io.fail_write_at, atomic_load(&th_io.writes) + 1);
    assert_int_equal(vt->put(e, "x", 1, "v", 1, 0), KVD_EROFS);
    expect_readonly(e, "read-only file system");
    th_io_reset();
    th_engine_close(vt, e);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lsm_missing_live_wal_refuses_open,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_disk_full_write_retried_when_space_returns, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(test_lsm_write_error_is_not_retried,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_lsm_opens_read_only_on_a_full_disk,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_read_only_file_system_is_reported_as_such, setup_dir,
            teardown_dir),
    };

    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("lsm.files", tests, NULL, NULL);
}
