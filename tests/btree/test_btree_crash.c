/*
 * test_btree_crash.c -- crash, damage and fault tests of the btree engine.
 *
 * 1. SIGKILL loop: a child applies a deterministic history (puts, deletes,
 *    atomic batches, some values in overflow runs) with sync = always and
 *    2 KiB pages, and reports every acknowledged operation through a pipe.
 *    The parent kills it after a random number of acknowledgements (so at
 *    a random point of its work, with no timing involved), reopens, and
 *    checks that the state is exactly the history up to the last
 *    acknowledged operation, or one further (the one in flight). The next
 *    child continues from there. Rounds: $BT_CRASH_ROUNDS (default 15).
 * 2. Kill at every file mutation: a child SIGKILLs itself at its Nth write
 *    or fdatasync, for N = 1, 2, ... until it finishes, (a) during one
 *    commit of an atomic batch, (b) during a compaction. After each kill
 *    the store must reopen with exactly the state before or after.
 * 3. A torn newest meta page: open takes the commit before it; both metas
 *    torn: open refuses with a clear error. A commit (one fdatasync) whose
 *    listed pages did not all arrive: open takes the commit before it.
 * 4. A truncated file: open takes the last commit that fits in what is
 *    left, or refuses saying so; never a damaged tree.
 * 5. Faults: a failing write or fdatasync fails the request and turns the
 *    store read-only (later writes refused, reads fine, the state says
 *    why).
 * 6. Space: overwriting the same 100,000 keys 20 times keeps the file
 *    within a small factor of the live data.
 * 7. Writers during a background commit's syncs (sync = everysec): the
 *    commit's fdatasyncs are held at a gate, so the test knows where the
 *    commit is; writers must go on meanwhile (bounded wait), see their
 *    own writes, and the store copied at each gate (as a crash there
 *    leaves it) must open as exactly the commit before or the commit
 *    itself, also after writers dropped and rewrote every page the
 *    commit wrote and later flushes reused free pages. Nothing written is
 *    lost once the gate opens.
 * 8. SIGKILL loop under sync = everysec with slow fdatasyncs: the child
 *    writes while the background commits sync and calls sync() now and
 *    then; after each kill the store must open as exactly the history up
 *    to some operation between the last synced one and the last applied
 *    one (plus the one in flight).
 */
#include "bt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NKEYS   150
#define MAX_VAL 1500

static const struct kvd_engine_vtable *vt;
static uint64_t seed;

/* ---- the deterministic history ---- */

static uint64_t
rnd(long op, int sub, int what)
{
    return bt_mix(seed ^ bt_mix((uint64_t)op * 1000003u + (uint64_t)sub * 31u +
                                (uint64_t)what));
}

static size_t
hkey(int k, char *buf)
{
    return (size_t)sprintf(buf, "key%04d", k);
}

static size_t
hvalue(long op, int sub, unsigned char *buf)
{
    size_t len =
        (size_t)(rnd(op, sub, 9) % 10 == 0 ? 700 + rnd(op, sub, 8) % 800
                                           : rnd(op, sub, 8) % 120);
    int n = sprintf((char *)buf, "v%ld.%d.", op, sub);

    if ((size_t)n > len) {
        len = (size_t)n;
    }
    memset(buf + n, 'a' + (int)(op % 26), len - (size_t)n);
    return len;
}

/* Operation `op` touches 1 key (put or delete) or 3 (a batch). */
static int
op_n(long op)
{
    return rnd(op, 0, 1) % 10 == 9 ? 3 : 1;
}

static void
hist_apply(struct bt_model *m, long op)
{
    unsigned char v[MAX_VAL + 32];

    for (int s = 0; s < op_n(op); s++) {
        int k = (int)(rnd(op, s, 2) % NKEYS);
        if (rnd(op, s, 3) % 4 == 0) {
            bt_model_del(m, (size_t)k);
        } else {
            size_t vl = hvalue(op, s, v);
            bt_model_put(m, (size_t)k, v, vl, 0);
        }
    }
}

static int
engine_apply(kvd_engine *e, long op)
{
    struct kvd_op ops[3];
    unsigned char v[3][MAX_VAL + 32];
    char k[3][16];
    int n = op_n(op);
    struct kvd_err err;

    memset(ops, 0, sizeof(ops));
    for (int s = 0; s < n; s++) {
        ops[s].key = k[s];
        ops[s].klen = hkey((int)(rnd(op, s, 2) % NKEYS), k[s]);
        if (rnd(op, s, 3) % 4 == 0) {
            ops[s].type = KVD_OP_DEL;
        } else {
            ops[s].type = KVD_OP_PUT;
            ops[s].val = v[s];
            ops[s].vlen = hvalue(op, s, v[s]);
        }
    }
    if (n == 1) {
        if (ops[0].type == KVD_OP_DEL) {
            int rc = vt->del(e, ops[0].key, ops[0].klen);
            return rc == KVD_ENOTFOUND ? 0 : rc;
        }
        return vt->put(e, ops[0].key, ops[0].klen, ops[0].val, ops[0].vlen, 0);
    }
    return vt->batch(e, ops, (size_t)n, &err);
}

/* Whether the engine holds exactly model m. */
static bool
matches(kvd_engine *e, const struct bt_model *m, char *why, size_t whylen)
{
    char k[16];
    struct kvd_iter_opts o;
    struct kvd_err err;
    struct kvd_entry ent;
    kvd_iter *it;
    size_t live = 0, seen = 0;

    for (int i = 0; i < NKEYS; i++) {
        size_t kl = hkey(i, k);
        if (bt_check_key(vt, e, m, (size_t)i, k, kl, 1, why, whylen) != 0) {
            return false;
        }
        live += m->k[i].present;
    }
    memset(&o, 0, sizeof(o));
    assert_int_equal(vt->iter_open(e, &o, &it, &err), 0);
    while (vt->iter_next(it, &ent) == 0) {
        seen++;
    }
    vt->iter_close(it);
    if (seen != live) {
        snprintf(why, whylen, "iteration saw %zu keys, expected %zu", seen,
                 live);
        return false;
    }
    return true;
}

static struct bt_opts
crash_opts(void)
{
    struct bt_opts o;

    bt_test_opts_small(&o);
    o.sync = BT_SYNC_ALWAYS;
    return o;
}

/* ---- 1. SIGKILL loop ---- */

static void
child_run(const char *dir, long start, int fd)
{
    struct bt_opts o = crash_opts();
    struct kvd_err err;
    kvd_engine *e = NULL;

    if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
        fprintf(stderr, "child open: %s\n", err.msg);
        _exit(2);
    }
    for (long op = start;; op++) {
        if (engine_apply(e, op) != 0) {
            _exit(3);
        }
        if (write(fd, &op, sizeof(op)) != (ssize_t)sizeof(op)) {
            _exit(4);
        }
    }
}

/* Fork a child running fn(dir, start, write end of a pipe); read `want`
 * messages (longs) from it, SIGKILL it, then read what it wrote before it
 * died. Each message goes to on_msg. */
static void
run_and_kill(const char *dir, long start, long want, int round,
             void (*fn)(const char *, long, int),
             void (*on_msg)(long msg, void *ctx), void *ctx)
{
    int p[2];
    pid_t pid;
    long got;
    int status;

    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        fn(dir, start, p[1]);
    }
    close(p[1]);
    for (long n = 0; n < want; n++) {
        if (read(p[0], &got, sizeof(got)) != (ssize_t)sizeof(got)) {
            fail_msg("round %d: the child stopped early", round);
        }
        on_msg(got, ctx);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    /* messages written before the kill are read too */
    while (read(p[0], &got, sizeof(got)) == (ssize_t)sizeof(got)) {
        on_msg(got, ctx);
    }
    close(p[0]);
}

static void
note_last(long msg, void *ctx)
{
    *(long *)ctx = msg;
}

static void
test_kill_loop(void **state)
{
    char *dir = th_mkdtemp();
    int rounds = (int)bt_seed("BT_CRASH_ROUNDS", 15);
    struct bt_model m;
    long next = 0; /* first operation not in the store */
    char why[200];

    (void)state;
    bt_model_init(&m, NKEYS);
    for (int r = 0; r < rounds; r++) {
        long last = next - 1;
        long want = 1 + (long)(rnd(r, 0, 77) % 60);
        struct bt_opts o = crash_opts();
        struct bt_model after;
        kvd_engine *e;

        run_and_kill(dir, next, want, r, child_run, note_last, &last);
        while (next <= last) {
            hist_apply(&m, next++);
        }
        e = bt_test_open(vt, dir, &o);
        if (!matches(e, &m, why, sizeof(why))) {
            /* the operation in flight may have been committed */
            bt_model_copy(&after, &m);
            hist_apply(&after, next);
            if (!matches(e, &after, why, sizeof(why))) {
                fail_msg("seed %llu round %d: state after op %ld is neither "
                         "the acknowledged prefix nor one more: %s",
                         (unsigned long long)seed, r, last, why);
            }
            bt_model_free(&m);
            m = after;
            next++;
        }
        bt_test_close(vt, e);
    }
    bt_model_free(&m);
    th_rmrf(dir);
    free(dir);
}

/* ---- 2. kill at every mutation ---- */

/* Run `what` in a child that dies at its nth mutation; true when the child
 * finished without reaching it. */
/* An operation of the history that is an atomic batch. */
static long
batch_op(void)
{
    long op = 1000000;

    while (op_n(op) != 3) {
        op++;
    }
    return op;
}

static bool
kill_at(const char *dir, long n, int what)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        struct bt_opts o = crash_opts();
        struct kvd_err err;
        kvd_engine *e = NULL;
        if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
            _exit(2);
        }
        th_io_reset();
        atomic_store(&th_io.kill_at_mutation, n);
        if (what == 0) {
            if (engine_apply(e, batch_op()) != 0) {
                _exit(3);
            }
        } else if (vt->maintain(e, KVD_MAINT_COMPACT, &err) != 0) {
            _exit(3);
        }
        atomic_store(&th_io.kill_at_mutation, 0);
        vt->close(e, &err);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) != 0) {
            fail_msg("%s child (kill at %ld) exited with %d",
                     what == 0 ? "commit" : "compaction", n,
                     WEXITSTATUS(status));
        }
        return true;
    }
    assert_true(WIFSIGNALED(status));
    return false;
}

static void
test_kill_every_mutation(void **state)
{
    char *dir = th_mkdtemp();
    char *work = th_mkdtemp();
    struct bt_model before, after;
    struct bt_opts o = crash_opts();
    kvd_engine *e;
    char why[200];

    (void)state;
    bt_model_init(&before, NKEYS);
    e = bt_test_open(vt, dir, &o);
    for (long op = 0; op < 300; op++) {
        assert_int_equal(engine_apply(e, op), 0);
        hist_apply(&before, op);
    }
    bt_test_close(vt, e);
    for (int what = 0; what < 2; what++) {
        bt_model_copy(&after, &before);
        if (what == 0) {
            hist_apply(&after, batch_op());
        }
        for (long n = 1;; n++) {
            bool done;
            th_rmrf(work);
            assert_int_equal(mkdir(work, 0755), 0);
            assert_int_equal(th_copy_dir(dir, work), 0);
            done = kill_at(work, n, what);
            e = bt_test_open(vt, work, &o);
            if (!matches(e, &before, why, sizeof(why)) &&
                !matches(e, &after, why, sizeof(why))) {
                fail_msg("%s, killed at mutation %ld: %s",
                         what == 0 ? "commit" : "compaction", n, why);
            }
            bt_test_close(vt, e);
            if (done) {
                assert_true(n > 3);
                break;
            }
            assert_true(n < 5000);
        }
        bt_model_free(&after);
    }
    bt_model_free(&before);
    th_rmrf(work);
    th_rmrf(dir);
    free(work);
    free(dir);
}

/* ---- 3, 4. damaged files ---- */

static void
data_path(const char *dir, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", dir, BT_DATA_FILE);
}

/* A store where a = 1, then b = 2, each its own commit. */
static void
two_commits(const char *dir)
{
    struct bt_opts o = crash_opts();
    kvd_engine *e = bt_test_open(vt, dir, &o);

    assert_int_equal(vt->put(e, "a", 1, "1", 1, 0), 0);
    assert_int_equal(vt->put(e, "b", 1, "2", 1, 0), 0);
    bt_test_close(vt, e);
}

static uint64_t
meta_txn(int fd, unsigned slot)
{
    unsigned char m[24];

    assert_int_equal(pread(fd, m, sizeof(m), (off_t)slot * 2048),
                     (ssize_t)sizeof(m));
    return bt_get64(m + 16);
}

static void
tear(int fd, unsigned slot)
{
    unsigned char junk[64];

    memset(junk, 0x5a, sizeof(junk));
    assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)slot * 2048 + 40),
                     (ssize_t)sizeof(junk));
}

static void
test_torn_meta_falls_back(void **state)
{
    char *dir = th_mkdtemp();
    char path[600];
    struct bt_opts o = crash_opts();
    struct kvd_val v;
    struct kvd_err err;
    kvd_engine *e = NULL;
    int fd;

    (void)state;
    two_commits(dir);
    data_path(dir, path, sizeof(path));
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    tear(fd, meta_txn(fd, 0) > meta_txn(fd, 1) ? 0 : 1);
    e = bt_test_open(vt, dir, &o);
    /* the close wrote no commit of its own (nothing changed after b), so
     * the commit before the newest is the one with a only */
    assert_int_equal(vt->get(e, "a", 1, &v), 0);
    kvd_val_release(&v);
    assert_int_equal(vt->get(e, "b", 1, &v), KVD_ENOTFOUND);
    /* and it commits on from there */
    assert_int_equal(vt->put(e, "c", 1, "3", 1, 0), 0);
    bt_test_close(vt, e);
    e = bt_test_open(vt, dir, &o);
    assert_int_equal(vt->get(e, "c", 1, &v), 0);
    kvd_val_release(&v);
    bt_test_close(vt, e);

    /* both torn: refused, with the reason */
    tear(fd, 0);
    tear(fd, 1);
    close(fd);
    memset(&err, 0, sizeof(err));
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), KVD_ECORRUPT);
    assert_non_null(strstr(err.msg, "meta"));
    th_rmrf(dir);
    free(dir);
}

/* sync = always commits with one fdatasync, listing the runs it wrote in
 * the meta page: if one of them did not reach the disk, the commit is
 * not taken. */
static void
test_commit_with_lost_pages_falls_back(void **state)
{
    char *dir = th_mkdtemp();
    char path[600];
    struct bt_opts o = crash_opts();
    struct kvd_val v;
    unsigned char m[2048], junk[2048];
    unsigned slot;
    kvd_engine *e;
    int fd;

    (void)state;
    two_commits(dir);
    data_path(dir, path, sizeof(path));
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    slot = meta_txn(fd, 0) > meta_txn(fd, 1) ? 0 : 1;
    assert_int_equal(pread(fd, m, sizeof(m), (off_t)slot * 2048),
                     (ssize_t)sizeof(m));
    assert_true(bt_get32(m + 104) >= 1); /* it lists what it wrote */
    /* the first run it wrote holds stale bytes, as after a power loss */
    memset(junk, 0, sizeof(junk));
    assert_int_equal(
        pwrite(fd, junk, sizeof(junk), (off_t)bt_get64(m + 128) * 2048),
        (ssize_t)sizeof(junk));
    close(fd);
    th_log_clear();
    e = bt_test_open(vt, dir, &o);
    assert_true(th_log_contains("did not all reach the disk"));
    assert_int_equal(vt->get(e, "a", 1, &v), 0);
    kvd_val_release(&v);
    assert_int_equal(vt->get(e, "b", 1, &v), KVD_ENOTFOUND);
    bt_test_close(vt, e);
    th_rmrf(dir);
    free(dir);
}

static void
test_truncated_file(void **state)
{
    char *dir = th_mkdtemp();
    char path[600];
    struct bt_opts o = crash_opts();
    struct kvd_err err;
    struct stat st;
    kvd_engine *e = NULL;
    unsigned char v[1000];

    (void)state;
    e = bt_test_open(vt, dir, &o);
    memset(v, 'x', sizeof(v));
    for (int i = 0; i < 200; i++) {
        char k[16];
        size_t kl = hkey(i, k);
        assert_int_equal(vt->put(e, k, kl, v, 100 + (size_t)i * 4, 0), 0);
    }
    bt_test_close(vt, e);
    data_path(dir, path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    /* cut at every page boundary from the end down to the metas */
    for (off_t len = st.st_size - 2048; len >= 2 * 2048; len -= 2048 * 7) {
        int rc;
        assert_int_equal(truncate(path, len), 0);
        memset(&err, 0, sizeof(err));
        rc = vt->open(&th_host, &o, dir, &e, &err);
        if (rc == 0) {
            /* an older commit: each key has its full value or none */
            for (int i = 0; i < 200; i++) {
                char k[16];
                struct kvd_val got;
                size_t kl = hkey(i, k);
                int g = vt->get(e, k, kl, &got);
                if (g == 0) {
                    assert_int_equal(got.len, 100 + (size_t)i * 4);
                    kvd_val_release(&got);
                } else {
                    assert_int_equal(g, KVD_ENOTFOUND);
                }
            }
            vt->close(e, &err);
            /* the close may have committed: cut again from its size */
            assert_int_equal(stat(path, &st), 0);
            if (st.st_size < len) {
                len = st.st_size;
            }
        } else {
            assert_int_equal(rc, KVD_ECORRUPT);
            assert_non_null(strstr(err.msg, "truncated"));
        }
    }
    th_rmrf(dir);
    free(dir);
}

/* ---- 5. faults ---- */

static void
test_failed_write_makes_store_readonly(void **state)
{
    char *dir = th_mkdtemp();
    struct bt_opts o = crash_opts();
    struct kvd_engine_stats st;
    struct kvd_val v;
    struct kvd_err err;
    kvd_engine *e;

    (void)state;
    for (int which = 0; which < 2; which++) {
        e = bt_test_open(vt, dir, &o);
        assert_int_equal(vt->put(e, "kept", 4, "yes", 3, 0), 0);
        th_io_reset();
        atomic_store(&th_io.fail_errno, EIO);
        if (which == 0) {
            atomic_store(&th_io.fail_write_at, 1);
        } else {
            atomic_store(&th_io.fail_sync_at, 1);
        }
        assert_int_equal(vt->put(e, "lost", 4, "no", 2, 0), KVD_EIO);
        th_io_reset();
        assert_int_equal(vt->put(e, "later", 5, "no", 2, 0), KVD_EREADONLY);
        assert_int_equal(vt->del(e, "kept", 4), KVD_EREADONLY);
        assert_int_equal(vt->get(e, "kept", 4, &v), 0);
        kvd_val_release(&v);
        memset(&st, 0, sizeof(st));
        st.struct_size = sizeof(st);
        assert_int_equal(vt->stats(e, &st, NULL, NULL), 0);
        assert_int_equal(st.readonly, 1);
        assert_non_null(strstr(st.state, "failed"));
        vt->close(e, &err);
        /* reopened: the last good commit */
        e = bt_test_open(vt, dir, &o);
        assert_int_equal(vt->get(e, "kept", 4, &v), 0);
        kvd_val_release(&v);
        assert_int_equal(vt->get(e, "later", 5, &v), KVD_ENOTFOUND);
        bt_test_close(vt, e);
    }
    th_rmrf(dir);
    free(dir);
}

/* ---- 6. space ---- */

static void
test_overwrites_keep_file_small(void **state)
{
    char *dir = th_mkdtemp();
    char path[600];
    struct bt_opts o;
    struct stat st;
    unsigned char v[100];
    kvd_engine *e;
    const int nkeys = 100000, rounds = 20;
    double live = (double)nkeys * (16 + sizeof(v));
    off_t mid = 0;

    (void)state;
    bt_test_opts(&o);
    e = bt_test_open(vt, dir, &o);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < nkeys; i++) {
            char k[24];
            int n = (int)(bt_mix((uint64_t)i * 31 + (uint64_t)r) % nkeys);
            snprintf(k, sizeof(k), "%016d", n);
            memset(v, 'a' + r, sizeof(v));
            assert_int_equal(vt->put(e, k, 16, v, sizeof(v), 0), 0);
        }
        if (r == rounds / 2 - 1) {
            data_path(dir, path, sizeof(path));
            assert_int_equal(stat(path, &st), 0);
            mid = st.st_size;
        }
    }
    bt_test_close(vt, e);
    assert_int_equal(stat(path, &st), 0);
    print_message("file %lld bytes after %d rounds, %lld after %d, for %.0f "
                  "bytes of keys and values\n",
                  (long long)mid, rounds / 2, (long long)st.st_size, rounds,
                  live);
    /* a tree at about 70% fill plus one flush of new copies (the dirty
     * limit is larger than this tree): under 4x, and no growth */
    assert_true((double)st.st_size < 4.0 * live);
    assert_true((double)st.st_size <= 1.1 * (double)mid);
    th_rmrf(dir);
    free(dir);
}

/* ---- 7. writers during a background commit's syncs ---- */

#define GATE_WAIT_S 60
#define CK_KEYS     600

/* fdatasync held at a gate: while closed, each call waits for a token. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool closed;
    long arrivals; /* calls that reached the gate */
    long tokens;   /* calls allowed through while closed */
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0};

static struct kvd_io gate_io;
static struct kvd_host gate_host;

static int
gate_fdatasync(int fd)
{
    pthread_mutex_lock(&gate.mu);
    gate.arrivals++;
    pthread_cond_broadcast(&gate.cv);
    while (gate.closed && gate.tokens == 0) {
        pthread_cond_wait(&gate.cv, &gate.mu);
    }
    if (gate.closed) {
        gate.tokens--;
    }
    pthread_mutex_unlock(&gate.mu);
    return th_io_table.fdatasync(fd);
}

static void
deadline(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += GATE_WAIT_S;
}

/* Wait (bounded) until n fdatasyncs have reached the gate. */
static void
gate_wait_arrivals(long n)
{
    struct timespec ts;
    int rc = 0;

    deadline(&ts);
    pthread_mutex_lock(&gate.mu);
    while (gate.arrivals < n && rc == 0) {
        rc = pthread_cond_timedwait(&gate.cv, &gate.mu, &ts);
    }
    pthread_mutex_unlock(&gate.mu);
    if (rc != 0) {
        fail_msg("no commit reached fdatasync %ld in %d s", n, GATE_WAIT_S);
    }
}

static long
gate_arrivals(void)
{
    long n;

    pthread_mutex_lock(&gate.mu);
    n = gate.arrivals;
    pthread_mutex_unlock(&gate.mu);
    return n;
}

static void
gate_set(bool closed, long tokens)
{
    pthread_mutex_lock(&gate.mu);
    gate.closed = closed;
    gate.tokens = closed ? gate.tokens + tokens : 0;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static size_t
ck_key(int i, char *k)
{
    return (size_t)sprintf(k, "ck%05d", i);
}

/* Generation gen of key i: deleted (every 9th key, odd generations), or a
 * value; every 13th key's is longer than a third of a 2 KiB page, so it
 * goes to an overflow run. */
static void
ck_apply(struct bt_model *m, int gen, int i, unsigned char *v, size_t *vlen,
         bool *del)
{
    *del = gen % 2 == 1 && i % 9 == 0;
    *vlen = i % 13 == 0 ? 900 : 40 + (size_t)(i + gen) % 50;
    memset(v, 'a' + gen % 26, *vlen);
    sprintf((char *)v, "%d.%d.", gen, i);
    if (*del) {
        bt_model_del(m, (size_t)i);
    } else {
        bt_model_put(m, (size_t)i, v, *vlen, 0);
    }
}

struct ck_writer {
    kvd_engine *e;
    struct bt_model *m;
    int gen;
    bool batch;
    pthread_t t;
    int rc;
    bool done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* The whole generation as one atomic batch. */
static int
ck_batch(struct ck_writer *w)
{
    static unsigned char v[CK_KEYS][1000];
    static char k[CK_KEYS][16];
    static struct kvd_op ops[CK_KEYS];
    struct kvd_err err;

    memset(ops, 0, sizeof(ops));
    for (int i = 0; i < CK_KEYS; i++) {
        bool del;
        ops[i].key = k[i];
        ops[i].klen = ck_key(i, k[i]);
        ck_apply(w->m, w->gen, i, v[i], &ops[i].vlen, &del);
        ops[i].type = del ? KVD_OP_DEL : KVD_OP_PUT;
        ops[i].val = v[i];
    }
    return vt->batch(w->e, ops, CK_KEYS, &err);
}

static void *
ck_writer_main(void *arg)
{
    struct ck_writer *w = arg;
    unsigned char v[1000];

    if (w->batch) {
        w->rc = ck_batch(w);
    }
    for (int i = 0; !w->batch && i < CK_KEYS && w->rc == 0; i++) {
        char k[16];
        size_t kl = ck_key(i, k), vl;
        bool del;
        ck_apply(w->m, w->gen, i, v, &vl, &del);
        if (del) {
            w->rc = vt->del(w->e, k, kl);
            w->rc = w->rc == KVD_ENOTFOUND ? 0 : w->rc;
        } else {
            w->rc = vt->put(w->e, k, kl, v, vl, 0);
        }
    }
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Write generation gen of every key (one key at a time, or in one atomic
 * batch) from another thread; fail if that does not finish within the
 * bound (a writer stalled by the commit). */
static void
ck_write_gen(kvd_engine *e, struct bt_model *m, int gen, bool batch)
{
    struct ck_writer w;
    struct timespec ts;
    int rc = 0;

    memset(&w, 0, sizeof(w));
    w.e = e;
    w.m = m;
    w.gen = gen;
    w.batch = batch;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    assert_int_equal(pthread_create(&w.t, NULL, ck_writer_main, &w), 0);
    deadline(&ts);
    pthread_mutex_lock(&w.mu);
    while (!w.done && rc == 0) {
        rc = pthread_cond_timedwait(&w.cv, &w.mu, &ts);
    }
    pthread_mutex_unlock(&w.mu);
    if (rc != 0) {
        fail_msg("writes of generation %d did not finish in %d s while a "
                 "commit was syncing",
                 gen, GATE_WAIT_S);
    }
    pthread_join(w.t, NULL);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    assert_int_equal(w.rc, 0);
}

/* Whether e holds exactly m (CK_KEYS keys). */
static bool
ck_matches(kvd_engine *e, const struct bt_model *m, char *why, size_t whylen)
{
    struct kvd_iter_opts o;
    struct kvd_err err;
    struct kvd_entry ent;
    kvd_iter *it;
    size_t live = 0, seen = 0;

    for (int i = 0; i < CK_KEYS; i++) {
        char k[16];
        size_t kl = ck_key(i, k);
        if (bt_check_key(vt, e, m, (size_t)i, k, kl, 1, why, whylen) != 0) {
            return false;
        }
        live += m->k[i].present;
    }
    memset(&o, 0, sizeof(o));
    if (vt->iter_open(e, &o, &it, &err) != 0) {
        snprintf(why, whylen, "iter_open failed");
        return false;
    }
    while (vt->iter_next(it, &ent) == 0) {
        seen++;
    }
    vt->iter_close(it);
    if (seen != live) {
        snprintf(why, whylen, "iteration saw %zu keys, expected %zu", seen,
                 live);
        return false;
    }
    return true;
}

/* Copy dir as a crash now would leave it, open the copy, compare. */
static void
ck_crash_copy_is(const char *dir, const struct bt_model *m, const char *when)
{
    char *copy = th_mkdtemp();
    struct bt_opts o;
    kvd_engine *e;
    char why[200];

    assert_int_equal(th_copy_dir(dir, copy), 0);
    bt_test_opts_small(&o);
    e = bt_test_open(vt, copy, &o);
    if (!ck_matches(e, m, why, sizeof(why))) {
        fail_msg("store copied %s: %s", when, why);
    }
    bt_test_close(vt, e);
    th_rmrf(copy);
    free(copy);
}

static void
test_writers_during_commit_syncs(void **state)
{
    char *dir = th_mkdtemp();
    struct bt_model gens[7];
    struct bt_opts o;
    struct kvd_err err;
    kvd_engine *e = NULL;
    uint64_t flushes;
    char why[200];
    long a;

    (void)state;
    gate_io = th_io_table;
    gate_io.fdatasync = gate_fdatasync;
    gate_host = th_host;
    gate_host.io = &gate_io;
    bt_test_opts_small(&o);
    o.sync = BT_SYNC_EVERYSEC;
    o.sync_interval = 10;
    memset(&err, 0, sizeof(err));
    assert_int_equal(vt->open(&gate_host, &o, dir, &e, &err), 0);

    /* gens[g]: the store after generation g */
    bt_model_init(&gens[0], CK_KEYS);
    ck_write_gen(e, &gens[0], 0, false);
    assert_int_equal(vt->sync(e, &err), 0); /* gen 0 is durable */

    /* commit T (gen 1) stops at its first fdatasync */
    gate_set(true, 0);
    a = gate_arrivals();
    bt_model_copy(&gens[1], &gens[0]);
    /* one batch: the background commit takes all of gen 1 or none */
    ck_write_gen(e, &gens[1], 1, true);
    gate_wait_arrivals(a + 1);
    /* writers go on and see their writes; enough to flush pages */
    flushes = th_stat(vt, e, "flushes_total");
    bt_model_copy(&gens[2], &gens[1]);
    ck_write_gen(e, &gens[2], 2, false);
    bt_model_copy(&gens[3], &gens[2]);
    ck_write_gen(e, &gens[3], 3, false);
    assert_true(th_stat(vt, e, "flushes_total") > flushes);
    if (!ck_matches(e, &gens[3], why, sizeof(why))) {
        fail_msg("during the first fdatasync of a commit: %s", why);
    }
    /* no meta of T yet: a crash leaves the commit before (gen 0) */
    ck_crash_copy_is(dir, &gens[0], "before the commit's meta");

    /* T's meta is written, its second fdatasync held */
    gate_set(true, 1);
    gate_wait_arrivals(a + 2);
    bt_model_copy(&gens[4], &gens[3]);
    ck_write_gen(e, &gens[4], 4, false);
    ck_crash_copy_is(dir, &gens[1], "after the commit's meta");

    /* T completes; T+1 (gens 2-4) stops at its first fdatasync. Pages of
     * T that the writers dropped must still be in place while more writes
     * flush into free pages. */
    gate_set(true, 1);
    gate_wait_arrivals(a + 3);
    flushes = th_stat(vt, e, "flushes_total");
    bt_model_copy(&gens[5], &gens[4]);
    ck_write_gen(e, &gens[5], 5, false);
    bt_model_copy(&gens[6], &gens[5]);
    ck_write_gen(e, &gens[6], 6, false);
    assert_true(th_stat(vt, e, "flushes_total") > flushes);
    ck_crash_copy_is(dir, &gens[1], "during the next commit");
    if (!ck_matches(e, &gens[6], why, sizeof(why))) {
        fail_msg("during the next commit: %s", why);
    }

    /* open the gate: everything written is there, also after reopening */
    gate_set(false, 0);
    assert_int_equal(vt->sync(e, &err), 0);
    ck_crash_copy_is(dir, &gens[6], "after sync");
    bt_test_close(vt, e);
    e = bt_test_open(vt, dir, &o);
    if (!ck_matches(e, &gens[6], why, sizeof(why))) {
        fail_msg("after reopening: %s", why);
    }
    bt_test_close(vt, e);
    for (int g = 0; g < 7; g++) {
        bt_model_free(&gens[g]);
    }
    th_rmrf(dir);
    free(dir);
}

/* ---- 8. SIGKILL loop under sync = everysec ---- */

#define SYNC_EVERY 20

static struct bt_opts
everysec_opts(void)
{
    struct bt_opts o;

    bt_test_opts_small(&o);
    o.sync = BT_SYNC_EVERYSEC;
    o.sync_interval = 10;
    /* below what the option table allows: a flush into free pages every
     * few operations, also while a commit syncs */
    o.dirty_limit = 8192;
    return o;
}

/* Reports each applied operation op as op, and after each sync() the
 * number of operations durable then as -(that number) - 1. */
static void
child_run_everysec(const char *dir, long start, int fd)
{
    struct bt_opts o = everysec_opts();
    struct kvd_err err;
    kvd_engine *e = NULL;

    /* slow syncs: the commits overlap many writes */
    atomic_store(&th_io.sync_delay_us, 2000);
    if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
        fprintf(stderr, "child open: %s\n", err.msg);
        _exit(2);
    }
    for (long op = start;; op++) {
        long msg = op;
        if (engine_apply(e, op) != 0) {
            _exit(3);
        }
        if (write(fd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg)) {
            _exit(4);
        }
        if ((op + 1) % SYNC_EVERY == 0) {
            if (vt->sync(e, &err) != 0) {
                _exit(5);
            }
            msg = -(op + 1) - 1;
            if (write(fd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg)) {
                _exit(4);
            }
        }
    }
}

struct progress {
    long applied; /* operations applied */
    long synced;  /* operations durable */
};

static void
note_progress(long msg, void *ctx)
{
    struct progress *pr = ctx;

    if (msg >= 0) {
        pr->applied = msg + 1;
    } else {
        pr->synced = -msg - 1;
    }
}

static void
test_kill_loop_everysec(void **state)
{
    char *dir = th_mkdtemp();
    int rounds = (int)bt_seed("BT_CRASH_ROUNDS", 15);
    struct bt_model m;
    long next = 0; /* operations in the store */
    char why[200];

    (void)state;
    bt_model_init(&m, NKEYS);
    for (int r = 0; r < rounds; r++) {
        struct progress pr = {next, next};
        long want = 1 + (long)(rnd(r, 1, 78) % 400);
        struct bt_opts o = everysec_opts();
        kvd_engine *e;

        run_and_kill(dir, next, want, r, child_run_everysec, note_progress,
                     &pr);
        /* the store must be the history up to some operation in
         * [synced, applied], or one more (the operation in flight) */
        while (next < pr.synced) {
            hist_apply(&m, next++);
        }
        e = bt_test_open(vt, dir, &o);
        while (!matches(e, &m, why, sizeof(why))) {
            if (next > pr.applied) {
                fail_msg("seed %llu round %d: the store is no prefix of the "
                         "history from %ld (synced) to %ld (applied) + 1: %s",
                         (unsigned long long)seed, r, pr.synced, pr.applied,
                         why);
            }
            hist_apply(&m, next++);
        }
        bt_test_close(vt, e);
    }
    bt_model_free(&m);
    th_rmrf(dir);
    free(dir);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_loop),
        cmocka_unit_test(test_kill_every_mutation),
        cmocka_unit_test(test_torn_meta_falls_back),
        cmocka_unit_test(test_commit_with_lost_pages_falls_back),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_failed_write_makes_store_readonly),
        cmocka_unit_test(test_overwrites_keep_file_small),
        cmocka_unit_test(test_writers_during_commit_syncs),
        cmocka_unit_test(test_kill_loop_everysec),
    };

    vt = th_engine(argc, argv);
    seed = bt_seed("BT_CRASH_SEED", 4242);
    return cmocka_run_group_tests_name("btree.crash", tests, NULL, NULL);
}
