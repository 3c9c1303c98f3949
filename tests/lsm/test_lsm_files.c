/*
 * test_lsm_files.c -- the lsm engine and the files it needs (issue 13):
 * a missing live WAL is lost data, never an empty store; a full disk
 * makes the store read-only until space comes back, not until a restart,
 * and a store on a full or read-only disk still opens for reading.
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
    e = lt_open(vt, dir, &o);
    put_keys(e, "table", 50);
    assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
    put_keys(e, "walonly", 20); /* in the memtable and the WAL only */
    lt_close(vt, e);
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
    e = lt_open(vt, dir, &o);
    assert_true(th_log_contains("is missing: the writes it held"));
    assert_int_equal(count_keys(e, "table", 50), 50);
    assert_int_equal(count_keys(e, "walonly", 20), 0);
    lt_close(vt, e);
    /* and the store it wrote is whole again */
    o.corruption = LSM_CORRUPT_STOP;
    e = lt_open(vt, dir, &o);
    assert_int_equal(count_keys(e, "table", 50), 50);
    lt_close(vt, e);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lsm_missing_live_wal_refuses_open,
                                        setup_dir, teardown_dir),
    };

    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("lsm.files", tests, NULL, NULL);
}
