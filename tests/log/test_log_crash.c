/*
 * test_log_crash.c -- kill -9 crash test of the log engine.
 *
 * The conformance kit's SIGKILL loop (tests/conformance/th_hist.h): a
 * child process applies a deterministic history of operations (puts,
 * deletes, atomic batches) with sync = always (or never, or everysec: a
 * kill -9 of the process loses nothing acknowledged under any policy,
 * only a power cut does), small segments and
 * background merges, and reports every acknowledged operation through a
 * pipe. The parent SIGKILLs it after a random number of
 * acknowledgements, reopens the store and checks that the recovered
 * state is exactly the history up to the last acknowledged operation, or
 * one further (the one in flight). The next child continues the history
 * from there.
 *
 * Rounds: $ALOG_CRASH_ROUNDS (default 100); seed: $ALOG_CRASH_SEED.
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
#include <time.h>
#include <unistd.h>

#include "alog_test_host.h"
#include "th_hist.h"

#define NKEYS 200

static const struct kvd_engine_vtable *vt;
static uint64_t seed;
static int crash_sync = ALOG_SYNC_ALWAYS; /* the children's policy */

/* A kill never damages a record: recovery finds no corruption. */
static int
no_corruption(void *ctx, kvd_engine *e, char *why, size_t whylen)
{
    uint64_t n = th_stat(vt, e, "corrupt_records_total");

    (void)ctx;
    if (n != 0) {
        snprintf(why, whylen, "%llu corrupt records after a kill",
                 (unsigned long long)n);
        return -1;
    }
    return 0;
}

static void
run_sigkill_rounds(void **state, int default_rounds)
{
    const char *env = getenv("ALOG_CRASH_ROUNDS");
    int rounds = env ? atoi(env) : default_rounds;
    char *dir = th_mkdtemp();
    struct alog_opts writer;
    struct alog_opts check;
    struct th_crash c;
    char why[TH_WHY_BYTES];
    kvd_engine *e = NULL;
    struct kvd_err err;

    (void)state;
    th_opts_default(&writer);
    writer.sync = crash_sync;
    writer.segment_size = 8192;
    writer.merge_ratio = 30;
    writer.merge_min_dead = 0;
    writer.merge_interval = 20;
    th_opts_default(&check);
    memset(&c, 0, sizeof(c));
    c.vt = vt;
    c.host = &th_host;
    c.opts = &writer;
    c.check_opts = &check;
    c.dir = dir;
    c.conf.seed = seed;
    c.conf.nkeys = NKEYS;
    c.conf.batches = true;
    c.extra_check = no_corruption;
    th_crash_init(&c);
    srand((unsigned)seed);
    for (int round = 0; round < rounds; round++) {
        if (th_crash_round(&c, 1 + rand() % 100, 60000, why, sizeof(why)) !=
            0) {
            fail_msg("round %d (seed %llu): %s", round,
                     (unsigned long long)seed, why);
        }
    }
    assert_int_equal(vt->open(&th_host, &check, dir, &e, &err), 0);
    print_message("crash test: %llu segments at the end (background "
                  "merges keep this bounded)\n",
                  (unsigned long long)th_stat(vt, e, "segments"));
    assert_int_equal(vt->close(e, &err), 0);
    print_message("crash test: %d kills, %ld acknowledged ops, %d in-flight "
                  "ops found durable, seed %llu\n",
                  rounds, c.acked, c.in_flight, (unsigned long long)seed);
    assert_true(c.acked >= rounds); /* the test did write something */
    th_rmrf(dir);
    free(dir);
}

static void
test_log_survives_sigkill_with_sync_always(void **state)
{
    crash_sync = ALOG_SYNC_ALWAYS;
    run_sigkill_rounds(state, 100);
}

/* An acknowledged write is in the kernel's page cache before the reply
 * even when nothing is synced: a killed process loses none of them. */
static void
test_log_survives_sigkill_with_sync_never(void **state)
{
    crash_sync = ALOG_SYNC_NEVER;
    run_sigkill_rounds(state, 50);
}

static void
test_log_survives_sigkill_with_sync_everysec(void **state)
{
    crash_sync = ALOG_SYNC_EVERYSEC;
    run_sigkill_rounds(state, 50);
}

#define ACKED_KEYS 3000

static size_t
acked_value(int i, char *buf)
{
    return (size_t)sprintf(
        buf, "value-%05d-%.*s", i, 20 + i % 80,
        "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
        "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv");
}

/* The child: every put acknowledged under sync = never (stores into the
 * preallocated map, several rolls), then report and wait to be killed. */
static void
acked_child(const char *dir, int fd)
{
    struct alog_opts o;
    struct kvd_err err;
    kvd_engine *e = NULL;
    char k[16];
    char v[128];

    th_opts_default(&o);
    o.sync = ALOG_SYNC_NEVER;
    o.segment_size = 64u << 10;
    if (vt->open(&th_host, &o, dir, &e, &err) != 0) {
        fprintf(stderr, "child: open %s: %s\n", dir, err.msg);
        _exit(3);
    }
    for (int i = 0; i < ACKED_KEYS; i++) {
        size_t vn = acked_value(i, v);
        snprintf(k, sizeof(k), "a%05d", i);
        if (vt->put(e, k, strlen(k), v, vn, KVD_NO_EXPIRY) != 0) {
            _exit(4);
        }
    }
    if (write(fd, "d", 1) != 1) {
        _exit(5);
    }
    for (;;) {
        pause(); /* the parent's SIGKILL ends it */
    }
}

/* kill -9 of kvd right after acknowledged puts under sync = never: the
 * records are in the page cache (the shared map), so the reopened store
 * has every one, and the preallocated zeros after them are no torn write. */
static void
test_log_sigkill_after_acknowledged_puts_loses_nothing(void **state)
{
    char *dir = th_mkdtemp();
    struct alog_opts o;
    struct kvd_err err;
    kvd_engine *e = NULL;
    int pfd[2];
    int status;
    char c = 0;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        acked_child(dir, pfd[1]);
    }
    close(pfd[1]);
    /* EOF instead means the child died on its own */
    assert_int_equal(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    th_log_clear();
    th_opts_default(&o);
    assert_int_equal(vt->open(&th_host, &o, dir, &e, &err), 0);
    for (int i = 0; i < ACKED_KEYS; i++) {
        char k[16];
        char v[128];
        size_t vn = acked_value(i, v);
        struct kvd_val val;
        snprintf(k, sizeof(k), "a%05d", i);
        if (vt->get(e, k, strlen(k), &val) != 0) {
            fail_msg("acknowledged %s lost after kill -9", k);
        }
        assert_int_equal(val.len, vn);
        assert_memory_equal(val.data, v, vn);
        kvd_val_release(&val);
    }
    assert_true(th_stat(vt, e, "segments") >= 3); /* rolls happened */
    assert_int_equal(th_stat(vt, e, "torn_tail_bytes"), 0);
    assert_int_equal(th_stat(vt, e, "corrupt_records_total"), 0);
    assert_false(th_log_contains("torn write"));
    assert_int_equal(vt->close(e, &err), 0);
    th_rmrf(dir);
    free(dir);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_survives_sigkill_with_sync_always),
        cmocka_unit_test(test_log_survives_sigkill_with_sync_never),
        cmocka_unit_test(test_log_survives_sigkill_with_sync_everysec),
        cmocka_unit_test(
            test_log_sigkill_after_acknowledged_puts_loses_nothing),
    };
    const char *s = getenv("ALOG_CRASH_SEED");

    seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    vt = th_engine(argc, argv);
    return cmocka_run_group_tests_name("log.crash", tests, NULL, NULL);
}
