/*
 * test_lsm_crash.c -- crash and fault tests of the lsm engine.
 *
 * 1. SIGKILL loop: a child applies a deterministic history (puts,
 *    deletes, atomic batches) with sync = always and tiny memtables and
 *    levels, so flushes and compactions run all the time, and reports
 *    every acknowledged operation through a pipe. The parent kills it at a
 *    random moment, reopens, and checks that the state is exactly the
 *    history up to the last acknowledged operation, or one further (the
 *    one in flight). The next child continues the history from there.
 *    Rounds: $LSM_CRASH_ROUNDS (default 40); seed: $LSM_CRASH_SEED.
 * 2. Kill at every file mutation: a prepared store (data in the WAL, in
 *    overlapping level-0 tables and in level 1; a tombstone over a value
 *    in a deeper level) is copied, and a child SIGKILLs itself at its Nth
 *    write, fsync, rename, unlink or truncate, for N = 1, 2, ... until it
 *    finishes: (a) during an on-demand compaction (memtable switch, flush,
 *    compactions, MANIFEST edits, file removal), (b) from the start of
 *    open (WAL replay, flush, new MANIFEST) through the background
 *    compactions that follow. After each kill the store must reopen with
 *    exactly the prepared contents, compact again and reopen again.
 * 3. Fault injection: a failing WAL write or fdatasync fails the request
 *    and turns the store read-only (later writes refused, reads fine, the
 *    state says why); a failing write or fsync at every step of a flush
 *    and compaction does the same and loses nothing acknowledged.
 * 4. Kill at every mutation of a stream of sync = always puts on an empty
 *    store with tiny memtables (so the WAL is preallocated in 4 KiB
 *    chunks, extended, switched and flushed): every reopen (corruption =
 *    paranoid) holds exactly the acknowledged puts, plus perhaps the one
 *    in flight, whatever WALs with zero tails it replays.
 */
#include "test_lsm_util.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NKEYS     200
#define MAX_VALUE 300
#define BATCH_OPS 3
#define MAX_KILLS 3000

static const struct kvd_engine_vtable *vt;
static uint64_t seed;

/* ---- 1. SIGKILL loop ---- */

struct hist_key {
    int present;
    long op;
    int sub;
};

struct hist {
    struct hist_key k[NKEYS];
};

static uint64_t
rnd(long op, int sub, int what)
{
    return lt_mix(seed ^ lt_mix((uint64_t)op * 1000003u + (uint64_t)sub * 31u +
                                (uint64_t)what));
}

static void
hkey(int k, char *buf)
{
    sprintf(buf, "key%03d", k);
}

static size_t
hvalue(long op, int sub, char *buf)
{
    size_t len = (size_t)(rnd(op, sub, 9) % MAX_VALUE);
    int n = sprintf(buf, "v%ld.%d.", op, sub);

    if ((size_t)n > len) {
        len = (size_t)n;
    }
    memset(buf + n, 'a' + (int)(op % 26), len - (size_t)n);
    return len;
}

/* Operation `op`: 0..6 put, 7..8 delete, 9 batch. */
static int
op_kind(long op)
{
    int r = (int)(rnd(op, 0, 1) % 10);
    return r <= 6 ? 0 : r <= 8 ? 1 : 2;
}

static void
hist_apply(struct hist *h, long op)
{
    int kind = op_kind(op);
    int nsub = kind == 2 ? BATCH_OPS : 1;

    for (int s = 0; s < nsub; s++) {
        int k = (int)(rnd(op, s, 2) % NKEYS);
        int del = kind == 1 || (kind == 2 && rnd(op, s, 3) % 3 == 0);
        h->k[k].present = !del;
        h->k[k].op = op;
        h->k[k].sub = s;
    }
}

static void
child_run(const char *dir, long start, int fd)
{
    struct lsm_opts o;
    struct kvd_err err;
    kvd_engine *e = NULL;
    char key[BATCH_OPS][16];
    char val[BATCH_OPS][MAX_VALUE + 32];

    lt_opts_tiny(&o);
    o.sync = LSM_SYNC_ALWAYS;
    if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
        fprintf(stderr, "child open: %s\n", err.msg);
        _exit(3);
    }
    for (long op = start;; op++) {
        int kind = op_kind(op);
        int rc;
        if (kind == 2) {
            struct kvd_op ops[BATCH_OPS];
            for (int s = 0; s < BATCH_OPS; s++) {
                hkey((int)(rnd(op, s, 2) % NKEYS), key[s]);
                ops[s].type = rnd(op, s, 3) % 3 == 0 ? KVD_OP_DEL : KVD_OP_PUT;
                ops[s].key = key[s];
                ops[s].klen = strlen(key[s]);
                ops[s].val = val[s];
                ops[s].vlen = hvalue(op, s, val[s]);
                ops[s].expire_ms = 0;
            }
            rc = vt->batch(e, ops, BATCH_OPS, &err);
        } else {
            hkey((int)(rnd(op, 0, 2) % NKEYS), key[0]);
            if (kind == 1) {
                rc = vt->del(e, key[0], strlen(key[0]));
                if (rc == KVD_ENOTFOUND) {
                    rc = 0;
                }
            } else {
                size_t n = hvalue(op, 0, val[0]);
                rc = vt->put(e, key[0], strlen(key[0]), val[0], n, 0);
            }
        }
        if (rc != 0) {
            fprintf(stderr, "child op %ld: %d\n", op, rc);
            _exit(3);
        }
        if (write(fd, &op, sizeof(op)) != sizeof(op)) {
            _exit(4);
        }
    }
}

static int
hist_matches(kvd_engine *e, const struct hist *h, int verbose)
{
    char key[16];
    char want[MAX_VALUE + 32];
    uint64_t present = 0;
    struct kvd_engine_stats st;

    for (int k = 0; k < NKEYS; k++) {
        struct kvd_val v;
        int rc;
        hkey(k, key);
        rc = vt->get(e, key, strlen(key), &v);
        if (!h->k[k].present) {
            if (rc != KVD_ENOTFOUND) {
                if (verbose) {
                    print_error("%s: expected absent, got %d\n", key, rc);
                }
                if (rc == 0) {
                    kvd_val_release(&v);
                }
                return 0;
            }
            continue;
        }
        present++;
        if (rc != 0) {
            if (verbose) {
                print_error("%s: expected op %ld, got %d\n", key, h->k[k].op,
                            rc);
            }
            return 0;
        }
        {
            size_t n = hvalue(h->k[k].op, h->k[k].sub, want);
            int same = v.len == n && memcmp(v.data, want, n) == 0;
            kvd_val_release(&v);
            if (!same) {
                if (verbose) {
                    print_error("%s: value differs from op %ld\n", key,
                                h->k[k].op);
                }
                return 0;
            }
        }
    }
    th_stats(vt, e, &st);
    return st.keys == present;
}

static void
test_lsm_survives_sigkill_with_sync_always(void **state)
{
    const char *env = getenv("LSM_CRASH_ROUNDS");
    int rounds = env ? atoi(env) : 40;
    const char *dir = *state;
    struct hist h;
    long next = 0;
    long total_acked = 0;
    int in_flight_seen = 0;
    uint64_t tables_seen = 0;

    memset(&h, 0, sizeof(h));
    srand((unsigned)seed);
    for (int round = 0; round < rounds; round++) {
        struct lsm_opts o;
        struct kvd_err err;
        kvd_engine *e = NULL;
        struct hist with_next;
        int pfd[2];
        long acked = next;
        long op;
        int status;
        pid_t pid;

        assert_int_equal(pipe(pfd), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child_run(dir, next, pfd[1]);
        }
        close(pfd[1]);
        usleep((useconds_t)(5000 + rand() % 90000));
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status)) {
            fail_msg("child exited with %d instead of being killed",
                     WEXITSTATUS(status));
        }
        while (read(pfd[0], &op, sizeof(op)) == sizeof(op)) {
            assert_int_equal(op, acked);
            acked++;
        }
        close(pfd[0]);
        total_acked += acked - next;
        for (long i = next; i < acked; i++) {
            hist_apply(&h, i);
        }
        lt_opts_tiny(&o);
        o.auto_compact = 0;
        o.corruption = LSM_CORRUPT_PARANOID; /* a kill never damages */
        if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
            fail_msg("round %d (seed %llu): reopen: %s", round,
                     (unsigned long long)seed, err.msg);
        }
        with_next = h;
        hist_apply(&with_next, acked);
        if (hist_matches(e, &h, 0)) {
            next = acked;
        } else if (hist_matches(e, &with_next, 0)) {
            h = with_next;
            next = acked + 1;
            in_flight_seen++;
        } else {
            hist_matches(e, &h, 1);
            fail_msg("round %d (seed %llu): state is not the history up to "
                     "op %ld or %ld",
                     round, (unsigned long long)seed, acked, acked + 1);
        }
        tables_seen += th_stat(vt, e, "tables");
        assert_int_equal(vt->close(e, &err), 0);
    }
    print_message("crash test: %d kills, %ld acknowledged ops, %d in-flight "
                  "ops found durable, %llu tables seen at reopens, seed "
                  "%llu\n",
                  rounds, total_acked, in_flight_seen,
                  (unsigned long long)tables_seen, (unsigned long long)seed);
    assert_true(total_acked > rounds);
    assert_true(tables_seen > 0); /* flushes did happen */
}

/* ---- 2. kill at every mutation ---- */

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
    e = lt_open(vt, dir, &o);
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
    lt_close(vt, e);
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
        /* wait for the background work the open's level 0 calls for */
        for (int i = 0; i < 500; i++) {
            if (th_stat(vt, e, "compactions") > 0 &&
                th_stat(vt, e, "l0_tables") <
                    (uint64_t)o.l0_compaction_trigger) {
                break;
            }
            usleep(2000);
        }
        if (th_stat(vt, e, "compactions") == 0) {
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

/* ---- 3. fault injection ---- */

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

static void
fault_on_write_path(const char *dir, bool sync_fault)
{
    struct lsm_opts o;
    struct kvd_val v;
    kvd_engine *e;
    char k[16];
    int rc;

    lt_opts_default(&o);
    o.sync = LSM_SYNC_ALWAYS;
    e = lt_open(vt, dir, &o);
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        assert_int_equal(vt->put(e, k, strlen(k), k, strlen(k), 0), 0);
    }
    th_log_clear();
    atomic_store(&th_io.fail_errno, sync_fault ? EIO : ENOSPC);
    if (sync_fault) {
        atomic_store(&th_io.fail_sync_at, atomic_load(&th_io.syncs) + 1);
    } else {
        atomic_store(&th_io.fail_write_at, atomic_load(&th_io.writes) + 1);
    }
    rc = vt->put(e, "failed", 6, "x", 1, 0);
    assert_int_equal(rc, sync_fault ? KVD_EIO : KVD_ENOSPC);
    assert_readonly(e, sync_fault ? "fdatasync" : "write");
    assert_true(th_log_contains("read-only from now on"));
    /* reads keep working */
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        assert_int_equal(vt->get(e, k, strlen(k), &v), 0);
        kvd_val_release(&v);
    }
    th_io_reset();
    vt->close(e, NULL);
    e = lt_open(vt, dir, &o);
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        assert_int_equal(vt->get(e, k, strlen(k), &v), 0);
        kvd_val_release(&v);
    }
    if (!sync_fault) {
        /* the write never reached the file */
        assert_int_equal(vt->get(e, "failed", 6, &v), KVD_ENOTFOUND);
    }
    assert_int_equal(vt->put(e, "after", 5, "y", 1, 0), 0);
    lt_close(vt, e);
}

static void
test_lsm_failed_wal_write_turns_read_only(void **state)
{
    fault_on_write_path(*state, false);
}

static void
test_lsm_failed_wal_fsync_turns_read_only(void **state)
{
    fault_on_write_path(*state, true);
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
        e = lt_open(vt, dir, &o);
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
        e = lt_open(vt, dir, &o);
        verify(e, n);
        assert_int_equal(vt->maintain(e, KVD_MAINT_COMPACT, &err), 0);
        verify(e, n);
        lt_close(vt, e);
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

/* ---- 4. kill at every mutation of synced writes ---- */

#define SKEYS 40

static size_t
svalue(int i, char *buf)
{
    return (size_t)sprintf(
        buf, "synced-%03d-%.*s", i, 100 + i % 50,
        "ssssssssssssssssssssssssssssssssssssssssssssssssss"
        "ssssssssssssssssssssssssssssssssssssssssssssssssss"
        "ssssssssssssssssssssssssssssssssssssssssssssssssss");
}

static void
child_synced_puts(const char *dir, long n, int fd)
{
    struct lsm_opts o;
    struct kvd_err err;
    kvd_engine *e = NULL;
    char k[16];
    char v[200];

    lt_opts_tiny(&o);
    o.sync = LSM_SYNC_ALWAYS;
    /* armed before open: the first WAL's creation and preallocation too */
    atomic_store(&th_io.kill_at_mutation, atomic_load(&th_io.mutations) + n);
    if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
        fprintf(stderr, "child open: %s\n", err.msg);
        _exit(3);
    }
    for (int i = 0; i < SKEYS; i++) {
        size_t vn = svalue(i, v);
        snprintf(k, sizeof(k), "sync%03d", i);
        if (vt->put(e, k, strlen(k), v, vn, 0) != 0) {
            _exit(4);
        }
        if (write(fd, &i, sizeof(i)) != sizeof(i)) {
            _exit(5);
        }
    }
    vt->close(e, &err);
    _exit(0);
}

static void
test_lsm_synced_puts_killed_at_every_step(void **state)
{
    const char *root = *state;
    int completed = 0;
    long n;
    uint64_t wals = 0;

    for (n = 1; n <= MAX_KILLS && !completed; n++) {
        char dir[2048];
        struct lsm_opts o;
        struct kvd_err err;
        kvd_engine *e = NULL;
        int pfd[2];
        int acked = 0;
        int i;
        int status;
        pid_t pid;

        snprintf(dir, sizeof(dir), "%s/s%ld", root, n);
        assert_int_equal(mkdir(dir, 0755), 0);
        assert_int_equal(pipe(pfd), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child_synced_puts(dir, n, pfd[1]);
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
                fail_msg("kill point %ld: child failed with %d", n,
                         WEXITSTATUS(status));
            }
            assert_int_equal(acked, SKEYS);
            completed = 1;
        } else {
            assert_int_equal(WTERMSIG(status), SIGKILL);
        }
        lt_opts_tiny(&o);
        o.auto_compact = 0;
        o.corruption = LSM_CORRUPT_PARANOID; /* a kill never damages */
        if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
            fail_msg("kill point %ld: reopen: %s", n, err.msg);
        }
        wals += th_stat(vt, e, "recovery_wals");
        for (i = 0; i < SKEYS; i++) {
            char k[16];
            char v[200];
            size_t vn = svalue(i, v);
            struct kvd_val val;
            int rc;

            snprintf(k, sizeof(k), "sync%03d", i);
            rc = vt->get(e, k, strlen(k), &val);
            if (i < acked || (i == acked && rc == 0)) {
                if (rc != 0) {
                    fail_msg("kill point %ld: acknowledged %s lost (%d)", n, k,
                             rc);
                }
                assert_int_equal(val.len, vn);
                assert_memory_equal(val.data, v, vn);
                kvd_val_release(&val);
            } else if (rc != KVD_ENOTFOUND) {
                fail_msg("kill point %ld: %s (never written) is there", n, k);
            }
        }
        assert_int_equal(th_stat(vt, e, "corrupt_records"), 0);
        assert_int_equal(vt->close(e, &err), 0);
        th_rmrf(dir);
    }
    print_message("synced puts: killed at %ld points, %llu WALs replayed, "
                  "then it completed\n",
                  n - 2, (unsigned long long)wals);
    assert_true(completed);
    assert_true(n > SKEYS * 2); /* a put is at least a write and a sync */
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
            test_lsm_survives_sigkill_with_sync_always, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_compaction_killed_at_every_step_loses_nothing, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_recovery_and_background_killed_at_every_step, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_failed_wal_write_turns_read_only, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_failed_wal_fsync_turns_read_only, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_failed_write_during_compaction_turns_read_only, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_failed_fsync_during_compaction_turns_read_only, setup_dir,
            teardown_dir),
        cmocka_unit_test_setup_teardown(
            test_lsm_synced_puts_killed_at_every_step, setup_dir, teardown_dir),
    };

    seed = lt_seed("LSM_CRASH_SEED");
    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("lsm.crash", tests, NULL, NULL);
}
