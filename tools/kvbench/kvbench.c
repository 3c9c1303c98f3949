/*
 * tools/kvbench/kvbench.c -- db_bench-style benchmark for kvd engines.
 *
 * Runs a comma-separated list of workloads, in order, against one
 * database (a kvd engine plugin, or LevelDB, RocksDB, tkrzw or LMDB for
 * comparison; see kvbench.h) and prints one line per workload:
 *
 *   fillrandom   :       2.345 micros/op 426439 ops/sec;   47.2 MB/s
 *
 * Workloads follow db_bench's names and semantics:
 *   fillseq      --num puts of keys 0..num-1 in order        (fresh db)
 *   fillrandom   --num puts of uniformly random keys in [0, num), with
 *                replacement, so about 63% of the key space ends up
 *                filled                                       (fresh db)
 *   overwrite    as fillrandom, on the existing db
 *   fillsync     num/1000 random puts, each durable before the next
 *                (how: see the backend and the line's message) (fresh db)
 *   readrandom   --reads gets of random keys in [0, num)  "(N of M found)"
 *   readmissing  --reads gets of keys that cannot exist (the key with a
 *                '.' appended)                            "(0 of M found)"
 *   readhot      --reads gets of random keys in the first 1% of the range
 *   readseq      a full iteration (at most --reads entries)  "(N entries)"
 *   deleterandom --num blind deletes of random keys in [0, num), as
 *                db_bench's: a kvd engine gets a one-op batch (a tombstone
 *                write that answers nothing; del() when the engine has no
 *                batch), LevelDB and RocksDB their Delete
 *   deleteblind  another name for deleterandom (kept for old scripts)
 *   deletecount  as deleterandom, but a kvd engine's del(), which finds out
 *                whether each key existed (what DEL's reply needs: a
 *                lookup and a write) "(N of M found)"; LevelDB and RocksDB
 *                cannot tell, so for them it is deleterandom again
 *   compact      ask the engine to compact everything now (timed)
 *   reopen       close + open the database (timed)
 * "Fresh db" workloads start from an empty database (the directory is
 * wiped and the engine reopened) and are skipped with --use_existing.
 *
 * Keys are the key number in zero-padded decimal, key_size bytes wide;
 * values are value_size bytes taken in turn from a pregenerated buffer of
 * random (incompressible) bytes. Reads check that every value found has
 * value_size bytes; a mismatch or any error makes the exit status 1.
 *
 * Threads: with --threads N each workload's operations are split into N
 * equal slices run concurrently (readseq: every thread iterates the whole
 * db). micros/op is the mean time per operation seen by one thread (the
 * sum of the threads' busy time over the operation count, as db_bench
 * reports it); ops/sec and MB/s are totals over wall-clock time. With one
 * thread, micros/op * ops/sec = 1e6.
 *
 * Output: results on stdout; a progress indicator on stderr when stderr
 * is a terminal; engine log lines on stderr (warn level unless --verbose).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/status.h"
#include "kvbench.h"

#define KVB_VALUE_BUF_BYTES (1u << 20) /* as db_bench's RandomGenerator */
#define KVB_DEFAULT_SEED    301
#define KVB_MAX_THREADS     256
#define KVB_MIB             1048576.0
#define KVB_TMPFS_MAGIC     0x01021994

#define KVB_DEFAULT_BENCHMARKS                                                 \
    "fillseq,fillsync,fillrandom,overwrite,readrandom,readmissing,readhot,"    \
    "readseq,deleterandom"

enum kvb_wl_id {
    WL_FILLSEQ,
    WL_FILLRANDOM,
    WL_OVERWRITE,
    WL_FILLSYNC,
    WL_READRANDOM,
    WL_READMISSING,
    WL_READHOT,
    WL_READSEQ,
    WL_DELETERANDOM, /* blind */
    WL_DELETECOUNT,  /* del(): reports whether the key existed */
    WL_COMPACT,
    WL_REOPEN,
};

struct kvb_workload {
    const char *name;
    int id;     /* enum kvb_wl_id */
    bool fresh; /* starts from an empty database */
};

static const struct kvb_workload kvb_workloads[] = {
    {"fillseq", WL_FILLSEQ, true},
    {"fillrandom", WL_FILLRANDOM, true},
    {"overwrite", WL_OVERWRITE, false},
    {"fillsync", WL_FILLSYNC, true},
    {"readrandom", WL_READRANDOM, false},
    {"readmissing", WL_READMISSING, false},
    {"readhot", WL_READHOT, false},
    {"readseq", WL_READSEQ, false},
    {"deleterandom", WL_DELETERANDOM, false},
    {"deleteblind", WL_DELETERANDOM, false}, /* the old name */
    {"deletecount", WL_DELETECOUNT, false},
    {"compact", WL_COMPACT, false},
    {"reopen", WL_REOPEN, false},
    {NULL, 0, false},
};

/* The command line. Fixed after parsing. */
struct kvb_conf {
    const char *engine;
    const char *benchmarks;
    uint64_t num;
    uint64_t reads; /* UINT64_MAX: same as num */
    size_t key_size;
    size_t value_size;
    unsigned threads;
    const char *db;
    const char *plugin_dir;
    bool keep;
    bool use_existing;
    bool use_store;
    bool show_stats;
    bool verbose;
    uint64_t seed;
    size_t nopts;
    struct kvb_kv *opts;
};

/*
 * One run. The main thread owns every field; workload threads only read
 * conf, ops, b and valbuf while a workload runs.
 */
struct kvb_run {
    const struct kvb_conf *conf;
    const struct kvb_ops *ops;
    void *b;
    char dir[PATH_MAX];
    bool dir_is_temp;  /* we made it with mkdtemp: remove at exit */
    bool dir_wipeable; /* created or found empty by us: fresh db may wipe */
    bool is_open;
    bool progress; /* stderr is a terminal */
    unsigned char *valbuf;
    size_t valbuf_len;
    uint64_t thread_seq; /* threads started so far: seeds differ per run */
    int status;          /* exit status so far */
};

/* One workload thread: its slice, and what it measured. */
struct kvb_thread {
    struct kvb_run *run;
    const struct kvb_workload *wl;
    pthread_barrier_t *barrier;
    unsigned idx;
    uint64_t count; /* operations to do */
    uint64_t first; /* fillseq: first key number */
    uint64_t rng;
    size_t vpos; /* next value offset in valbuf */
    /* results */
    uint64_t done;
    uint64_t found;
    uint64_t bytes;
    uint64_t bad_len;
    int err;
    const char *err_op;
    uint64_t err_key;
    double start;
    double finish;
};

/*
 * Set by SIGINT/SIGTERM: workload threads stop at their next operation and
 * kvbench still closes the database and removes its temporary directory.
 * A lock-free atomic is safe to store from a signal handler.
 */
static atomic_int kvb_stop;

static void
kvb_on_signal(int sig)
{
    (void)sig;
    atomic_store_explicit(&kvb_stop, 1, memory_order_relaxed);
}

static bool
kvb_stopped(void)
{
    return atomic_load_explicit(&kvb_stop, memory_order_relaxed) != 0;
}

static double
kvb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: small, fast and good enough to pick keys. */
static uint64_t
kvb_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Key number k as zero-padded decimal, exactly ksize bytes. The caller
 * checked at start-up that the largest key number fits. */
static void
kvb_key(char *buf, size_t ksize, uint64_t k)
{
    size_t i = ksize;

    while (i > 0) {
        buf[--i] = (char)('0' + k % 10);
        k /= 10;
    }
}

static size_t
kvb_digits(uint64_t n)
{
    size_t d = 1;

    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

static const unsigned char *
kvb_value(struct kvb_thread *t)
{
    const struct kvb_run *run = t->run;
    size_t vsize = run->conf->value_size;
    const unsigned char *v;

    if (t->vpos + vsize > run->valbuf_len) {
        t->vpos = 0;
    }
    v = run->valbuf + t->vpos;
    t->vpos += vsize;
    return v;
}

int
kvb_parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    unsigned long long n;
    unsigned shift = 0;

    if (s == NULL || !isdigit((unsigned char)s[0])) {
        return KVD_EINVAL;
    }
    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno != 0) {
        return KVD_EINVAL;
    }
    switch (tolower((unsigned char)*end)) {
    case '\0':
        break;
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    default:
        return KVD_EINVAL;
    }
    if (shift != 0 && end[1] != '\0') {
        return KVD_EINVAL;
    }
    if (n > (UINT64_MAX >> shift)) {
        return KVD_EINVAL;
    }
    *out = (uint64_t)n << shift;
    return 0;
}

static uint64_t kvb_walk_bytes; /* nftw has no context argument */

static int
kvb_walk_sum(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F && S_ISREG(sb->st_mode)) {
        kvb_walk_bytes += (uint64_t)sb->st_size;
    }
    return 0;
}

uint64_t
kvb_dir_bytes(const char *dir)
{
    kvb_walk_bytes = 0;
    if (nftw(dir, kvb_walk_sum, 16, FTW_PHYS) != 0) {
        return 0;
    }
    return kvb_walk_bytes;
}

static int
kvb_walk_remove(const char *path, const struct stat *sb, int flag,
                struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP) {
        return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
    }
    return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf dir. */
static int
kvb_remove_tree(const char *dir)
{
    if (nftw(dir, kvb_walk_remove, 16, FTW_DEPTH | FTW_PHYS) != 0 &&
        errno != ENOENT) {
        return -1;
    }
    return 0;
}

/* True when dir has no entries besides . and .. (or cannot be read). */
static bool
kvb_dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool empty = true;

    if (d == NULL) {
        return false;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            empty = false;
            break;
        }
    }
    closedir(d);
    return empty;
}

/* ---------------------------------------------------------------------- */
/* Workload threads                                                       */
/* ---------------------------------------------------------------------- */

static void
kvb_progress(struct kvb_thread *t, uint64_t i)
{
    if (t->idx != 0 || !t->run->progress || t->count < 1000) {
        return;
    }
    if (i % (t->count / 100 + 1) == 0) {
        fprintf(stderr, "\r%-12s : %3u%%", t->wl->name,
                (unsigned)(i * 100 / t->count));
    }
}

static void
kvb_fail(struct kvb_thread *t, int rc, const char *op, uint64_t k)
{
    t->err = rc;
    t->err_op = op;
    t->err_key = k;
}

static void
kvb_do_writes(struct kvb_thread *t)
{
    const struct kvb_conf *c = t->run->conf;
    const struct kvb_ops *ops = t->run->ops;
    void *b = t->run->b;
    bool seq = t->wl->id == WL_FILLSEQ;
    bool sync = t->wl->id == WL_FILLSYNC;
    char key[64 + 1];
    char *kp = c->key_size <= 64 ? key : malloc(c->key_size);

    if (kp == NULL) {
        kvb_fail(t, KVD_ENOMEM, "malloc", 0);
        return;
    }
    for (uint64_t i = 0; i < t->count && !kvb_stopped(); i++) {
        uint64_t k = seq ? t->first + i : kvb_rand(&t->rng) % c->num;
        const unsigned char *v = kvb_value(t);
        int rc;

        kvb_key(kp, c->key_size, k);
        rc = ops->put(b, kp, c->key_size, v, c->value_size, sync);
        if (rc != 0) {
            kvb_fail(t, rc, "put", k);
            break;
        }
        t->bytes += c->key_size + c->value_size;
        t->done++;
        kvb_progress(t, i);
    }
    if (kp != key) {
        free(kp);
    }
}

static void
kvb_do_reads(struct kvb_thread *t)
{
    const struct kvb_conf *c = t->run->conf;
    const struct kvb_ops *ops = t->run->ops;
    void *b = t->run->b;
    bool missing = t->wl->id == WL_READMISSING;
    uint64_t range = t->wl->id == WL_READHOT ? (c->num + 99) / 100 : c->num;
    size_t klen = c->key_size + (missing ? 1 : 0);
    char key[64 + 1];
    char *kp = c->key_size <= 64 ? key : malloc(c->key_size + 1);

    if (kp == NULL) {
        kvb_fail(t, KVD_ENOMEM, "malloc", 0);
        return;
    }
    for (uint64_t i = 0; i < t->count && !kvb_stopped(); i++) {
        uint64_t k = kvb_rand(&t->rng) % range;
        size_t vlen = 0;
        int rc;

        kvb_key(kp, c->key_size, k);
        if (missing) {
            kp[c->key_size] = '.';
        }
        rc = ops->get(b, kp, klen, &vlen);
        if (rc == 0) {
            t->found++;
            t->bytes += klen + vlen;
            if (vlen != c->value_size) {
                t->bad_len++;
            }
        } else if (rc != KVD_ENOTFOUND) {
            kvb_fail(t, rc, "get", k);
            break;
        }
        t->done++;
        kvb_progress(t, i);
    }
    if (kp != key) {
        free(kp);
    }
}

static void
kvb_do_deletes(struct kvb_thread *t)
{
    const struct kvb_conf *c = t->run->conf;
    const struct kvb_ops *ops = t->run->ops;
    void *b = t->run->b;
    char key[64 + 1];
    char *kp = c->key_size <= 64 ? key : malloc(c->key_size);

    if (kp == NULL) {
        kvb_fail(t, KVD_ENOMEM, "malloc", 0);
        return;
    }
    for (uint64_t i = 0; i < t->count && !kvb_stopped(); i++) {
        uint64_t k = kvb_rand(&t->rng) % c->num;
        int rc;

        kvb_key(kp, c->key_size, k);
        rc = (t->wl->id == WL_DELETERANDOM && ops->del_blind != NULL)
                 ? ops->del_blind(b, kp, c->key_size)
                 : ops->del(b, kp, c->key_size);
        if (rc == 0) {
            t->found++;
        } else if (rc != KVD_ENOTFOUND) {
            kvb_fail(t, rc, "del", k);
            break;
        }
        t->bytes += c->key_size;
        t->done++;
        kvb_progress(t, i);
    }
    if (kp != key) {
        free(kp);
    }
}

static void
kvb_do_scan(struct kvb_thread *t)
{
    const struct kvb_conf *c = t->run->conf;
    const struct kvb_ops *ops = t->run->ops;
    struct kvd_err err;
    void *it = NULL;
    int rc;

    kvd_err_clear(&err);
    rc = ops->iter_open(t->run->b, &it, &err);
    if (rc != 0) {
        kvb_fail(t, rc, "iter_open", 0);
        return;
    }
    while (t->done < t->count && !kvb_stopped()) {
        size_t klen = 0;
        size_t vlen = 0;

        rc = ops->iter_next(it, &klen, &vlen);
        if (rc == KVD_ENOTFOUND) {
            break;
        }
        if (rc != 0) {
            kvb_fail(t, rc, "iter_next", t->done);
            break;
        }
        t->found++;
        t->bytes += klen + vlen;
        if (vlen != c->value_size) {
            t->bad_len++;
        }
        t->done++;
        kvb_progress(t, t->done);
    }
    ops->iter_close(it);
}

static void *
kvb_thread_main(void *arg)
{
    struct kvb_thread *t = arg;

    pthread_barrier_wait(t->barrier);
    t->start = kvb_now();
    switch (t->wl->id) {
    case WL_FILLSEQ:
    case WL_FILLRANDOM:
    case WL_OVERWRITE:
    case WL_FILLSYNC:
        kvb_do_writes(t);
        break;
    case WL_READRANDOM:
    case WL_READMISSING:
    case WL_READHOT:
        kvb_do_reads(t);
        break;
    case WL_READSEQ:
        kvb_do_scan(t);
        break;
    case WL_DELETERANDOM:
    case WL_DELETECOUNT:
        kvb_do_deletes(t);
        break;
    default:
        break;
    }
    t->finish = kvb_now();
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Database lifecycle                                                     */
/* ---------------------------------------------------------------------- */

static int
kvb_db_open(struct kvb_run *run, bool syncmode)
{
    struct kvd_err err;
    int rc;

    kvd_err_clear(&err);
    rc = run->ops->open(run->b, run->dir, syncmode, &err);
    if (rc != 0) {
        fprintf(stderr, "kvbench: open %s: %s\n", run->dir,
                err.msg[0] ? err.msg : kvd_strerror(rc));
        return rc;
    }
    run->is_open = true;
    return 0;
}

static int
kvb_db_close(struct kvb_run *run)
{
    struct kvd_err err;
    int rc;

    if (!run->is_open) {
        return 0;
    }
    kvd_err_clear(&err);
    run->is_open = false;
    rc = run->ops->close(run->b, &err);
    if (rc != 0) {
        fprintf(stderr, "kvbench: close: %s\n",
                err.msg[0] ? err.msg : kvd_strerror(rc));
    }
    return rc;
}

/* Close, wipe the directory, reopen empty (db_bench's fresh_db). */
static int
kvb_db_fresh(struct kvb_run *run, bool syncmode)
{
    int rc;

    if (!run->dir_wipeable) {
        fprintf(stderr,
                "kvbench: %s was not created by kvbench: will not "
                "wipe it\n",
                run->dir);
        return KVD_EINVAL;
    }
    rc = kvb_db_close(run);
    if (rc != 0) {
        return rc;
    }
    if (kvb_remove_tree(run->dir) != 0 || mkdir(run->dir, 0755) != 0) {
        fprintf(stderr, "kvbench: wipe %s: %s\n", run->dir, strerror(errno));
        return KVD_EIO;
    }
    return kvb_db_open(run, syncmode);
}

/* ---------------------------------------------------------------------- */
/* Running and reporting one workload                                     */
/* ---------------------------------------------------------------------- */

static uint64_t
kvb_op_count(const struct kvb_conf *c, const struct kvb_workload *wl)
{
    uint64_t reads = c->reads == UINT64_MAX ? c->num : c->reads;

    switch (wl->id) {
    case WL_FILLSYNC:
        return c->num / 1000 > 0 ? c->num / 1000 : 1;
    case WL_READRANDOM:
    case WL_READMISSING:
    case WL_READHOT:
    case WL_READSEQ:
        return reads;
    default:
        return c->num;
    }
}

static void
kvb_print_line(const char *name, uint64_t ops, double wall, double busy,
               uint64_t bytes, const char *msg)
{
    char rate[32] = "";

    if (wall <= 0) {
        wall = 1e-9;
    }
    if (bytes > 0) {
        snprintf(rate, sizeof(rate), " %6.1f MB/s",
                 (double)bytes / KVB_MIB / wall);
    }
    printf("%-12s : %11.3f micros/op %.0f ops/sec;%s%s%s\n", name,
           ops > 0 ? busy * 1e6 / (double)ops : 0.0, (double)ops / wall, rate,
           msg[0] ? " " : "", msg);
    fflush(stdout);
}

/* Time close + open of the database; print it as `label`. */
static int
kvb_run_reopen(struct kvb_run *run, const char *label)
{
    double t0;
    double t1;
    double t2;
    int rc;

    if (!run->ops->persistent(run->b)) {
        printf("%-12s : n/a (engine is not persistent)\n", label);
        return 0;
    }
    t0 = kvb_now();
    rc = kvb_db_close(run);
    t1 = kvb_now();
    if (rc == 0) {
        rc = kvb_db_open(run, false);
    }
    t2 = kvb_now();
    if (rc != 0) {
        return rc;
    }
    printf("%-12s : %11.3f ms (close %.3f ms + open %.3f ms)\n", label,
           (t2 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3);
    fflush(stdout);
    return 0;
}

static int
kvb_run_compact(struct kvb_run *run)
{
    struct kvd_err err;
    double t0;
    int rc;

    kvd_err_clear(&err);
    t0 = kvb_now();
    rc = run->ops->compact(run->b, &err);
    if (rc == KVD_ENOTSUP) {
        printf("%-12s : skipped (%s)\n", "compact",
               err.msg[0] ? err.msg : "not supported");
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "kvbench: compact: %s\n",
                err.msg[0] ? err.msg : kvd_strerror(rc));
        return rc;
    }
    printf("%-12s : %11.3f ms\n", "compact", (kvb_now() - t0) * 1e3);
    fflush(stdout);
    return 0;
}

static int
kvb_run_threads(struct kvb_run *run, const struct kvb_workload *wl)
{
    const struct kvb_conf *c = run->conf;
    unsigned n = c->threads;
    uint64_t total = kvb_op_count(c, wl);
    struct kvb_thread *ts = NULL;
    pthread_t *tids = NULL;
    pthread_barrier_t barrier;
    uint64_t ops = 0, found = 0, bytes = 0, bad = 0;
    double start = 0, finish = 0, busy = 0;
    char msg[256] = "";
    unsigned started = 0;
    int rc = 0;

    ts = calloc(n, sizeof(*ts));
    tids = calloc(n, sizeof(*tids));
    if (ts == NULL || tids == NULL) {
        fprintf(stderr, "kvbench: out of memory\n");
        rc = KVD_ENOMEM;
        goto out;
    }
    pthread_barrier_init(&barrier, NULL, n);
    for (unsigned i = 0; i < n; i++) {
        struct kvb_thread *t = &ts[i];
        uint64_t lo = total * i / n;
        uint64_t hi = total * (i + 1) / n;

        t->run = run;
        t->wl = wl;
        t->barrier = &barrier;
        t->idx = i;
        t->first = lo;
        /* Every thread of readseq walks the whole database. */
        t->count = wl->id == WL_READSEQ ? total : hi - lo;
        /* A different stream per thread and per workload, reproducible
         * from --seed (db_bench seeds each new thread with base + count). */
        t->rng = c->seed * 0x100000001b3ull + run->thread_seq++;
        t->vpos = (size_t)(kvb_rand(&t->rng) % run->valbuf_len);
    }
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&tids[i], NULL, kvb_thread_main, &ts[i]) != 0) {
            /* Threads already waiting at the barrier would never run: the
             * only way out is to stop. */
            fprintf(stderr, "kvbench: pthread_create: %s\n", strerror(errno));
            exit(1);
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    pthread_barrier_destroy(&barrier);
    if (run->progress) {
        fprintf(stderr, "\r%-40s\r", "");
    }
    for (unsigned i = 0; i < n; i++) {
        const struct kvb_thread *t = &ts[i];
        if (t->err != 0 && rc == 0) {
            char key[64];
            snprintf(key, sizeof(key), "%" PRIu64, t->err_key);
            fprintf(stderr, "kvbench: %s: %s of key number %s failed: %s\n",
                    wl->name, t->err_op, key, kvd_strerror(t->err));
            rc = t->err;
        }
        ops += t->done;
        found += t->found;
        bytes += t->bytes;
        bad += t->bad_len;
        busy += t->finish - t->start;
        if (i == 0 || t->start < start) {
            start = t->start;
        }
        if (i == 0 || t->finish > finish) {
            finish = t->finish;
        }
    }
    switch (wl->id) {
    case WL_READRANDOM:
    case WL_READMISSING:
    case WL_READHOT:
        snprintf(msg, sizeof(msg), "(%" PRIu64 " of %" PRIu64 " found)", found,
                 ops);
        break;
    case WL_DELETECOUNT:
        if (run->ops->del_reports_absent) {
            snprintf(msg, sizeof(msg), "(%" PRIu64 " of %" PRIu64 " found)",
                     found, ops);
        }
        break;
    case WL_READSEQ:
        snprintf(msg, sizeof(msg), "(%" PRIu64 " entries)", found);
        break;
    case WL_FILLSYNC:
        snprintf(msg, sizeof(msg), "(%" PRIu64 " ops; %s)", ops,
                 run->ops->sync_how(run->b));
        break;
    default:
        break;
    }
    kvb_print_line(wl->name, ops, finish - start, busy, bytes, msg);
    if (bad > 0) {
        fprintf(stderr,
                "kvbench: %s: %" PRIu64 " values had the wrong length "
                "(expected %zu bytes)\n",
                wl->name, bad, c->value_size);
        if (rc == 0) {
            rc = KVD_ECORRUPT;
        }
    }
out:
    free(tids);
    free(ts);
    return rc;
}

static int
kvb_run_workload(struct kvb_run *run, const struct kvb_workload *wl)
{
    int rc;

    if (wl->fresh) {
        if (run->conf->use_existing) {
            printf("%-12s : skipped (--use_existing)\n", wl->name);
            return 0;
        }
        rc = kvb_db_fresh(run, wl->id == WL_FILLSYNC);
        if (rc != 0) {
            return rc;
        }
    }
    switch (wl->id) {
    case WL_COMPACT:
        return kvb_run_compact(run);
    case WL_REOPEN:
        return kvb_run_reopen(run, wl->name);
    default:
        break;
    }
    rc = kvb_run_threads(run, wl);
    if (rc == 0 && kvb_stopped()) {
        fprintf(stderr, "kvbench: interrupted during %s\n", wl->name);
        return KVD_EAGAIN;
    }
    if (rc == 0 && wl->id == WL_FILLSYNC) {
        /* The next workloads must not run with every write synced. */
        rc = kvb_db_close(run);
        if (rc == 0) {
            rc = kvb_db_open(run, false);
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Header and summary                                                     */
/* ---------------------------------------------------------------------- */

static void
kvb_cpu_info(char *model, size_t mlen, char *cache, size_t clen, int *ncpu)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];

    snprintf(model, mlen, "unknown");
    snprintf(cache, clen, "unknown");
    *ncpu = 0;
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *colon = strchr(line, ':');
        char *val;
        if (colon == NULL) {
            continue;
        }
        val = colon + 1;
        while (*val == ' ' || *val == '\t') {
            val++;
        }
        val[strcspn(val, "\n")] = '\0';
        if (strncmp(line, "model name", 10) == 0) {
            snprintf(model, mlen, "%s", val);
            (*ncpu)++;
        } else if (strncmp(line, "cache size", 10) == 0) {
            snprintf(cache, clen, "%s", val);
        }
    }
    fclose(f);
}

static void
kvb_print_header(const struct kvb_run *run)
{
    const struct kvb_conf *c = run->conf;
    char model[256];
    char cache[64];
    char date[64];
    struct statfs sfs;
    const char *fs = "";
    time_t now = time(NULL);
    int ncpu;

    kvb_cpu_info(model, sizeof(model), cache, sizeof(cache), &ncpu);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    if (statfs(run->dir, &sfs) == 0 && sfs.f_type == KVB_TMPFS_MAGIC) {
        fs = " [tmpfs: fsync is free here]";
    }
    printf("kvbench:    %s\n", run->ops->describe(run->b));
    printf("Date:       %s\n", date);
    printf("CPU:        %d * %s\n", ncpu, model);
    printf("CPUCache:   %s\n", cache);
    printf("Keys:       %zu bytes each\n", c->key_size);
    printf("Values:     %zu bytes each (random bytes, incompressible)\n",
           c->value_size);
    printf("Entries:    %" PRIu64 "\n", c->num);
    printf("Reads:      %" PRIu64 "\n",
           c->reads == UINT64_MAX ? c->num : c->reads);
    printf("RawSize:    %.1f MB (estimated)\n",
           (double)(c->key_size + c->value_size) * (double)c->num / KVB_MIB);
    printf("Threads:    %u\n", c->threads);
    printf("Seed:       %" PRIu64 "\n", c->seed);
    printf("DB:         %s%s%s\n", run->dir,
           run->dir_is_temp && !c->keep ? " (temporary)" : "", fs);
    printf("Options:   ");
    if (c->nopts == 0) {
        printf(" (defaults)");
    }
    for (size_t i = 0; i < c->nopts; i++) {
        printf(" %s=%s", c->opts[i].key, c->opts[i].value);
    }
    printf("\n------------------------------------------------\n");
    fflush(stdout);
}

/* Count keys by iterating (for backends without a key count). */
static int
kvb_count_keys(struct kvb_run *run, uint64_t *out)
{
    struct kvd_err err;
    void *it = NULL;
    uint64_t n = 0;
    size_t kl;
    size_t vl;
    int rc;

    kvd_err_clear(&err);
    rc = run->ops->iter_open(run->b, &it, &err);
    if (rc != 0) {
        return rc;
    }
    while ((rc = run->ops->iter_next(it, &kl, &vl)) == 0) {
        n++;
    }
    run->ops->iter_close(it);
    if (rc != KVD_ENOTFOUND) {
        return rc;
    }
    *out = n;
    return 0;
}

static void
kvb_print_counter(void *ctx, const char *name, uint64_t value)
{
    (void)ctx;
    printf("  %-30s %" PRIu64 "\n", name, value);
}

/* Key count from stats or by iteration; UINT64_MAX when unknown. */
static uint64_t
kvb_keys(struct kvb_run *run, struct kvb_stats *st, bool counters,
         const char **how)
{
    uint64_t n = UINT64_MAX;
    int rc;

    memset(st, 0, sizeof(*st));
    st->keys = UINT64_MAX;
    st->disk_bytes = UINT64_MAX;
    st->mem_bytes = UINT64_MAX;
    st->value_bytes = UINT64_MAX;
    if (counters) {
        printf("engine counters:\n");
    }
    rc = run->ops->stats(run->b, st, counters ? kvb_print_counter : NULL, NULL);
    if (rc != 0) {
        fprintf(stderr, "kvbench: stats: %s\n", kvd_strerror(rc));
    }
    *how = st->keys_how != NULL ? st->keys_how : "engine stats";
    if (rc == 0 && st->keys != UINT64_MAX) {
        return st->keys;
    }
    if (kvb_count_keys(run, &n) == 0) {
        *how = "counted by iteration";
        return n;
    }
    return UINT64_MAX;
}

static void
kvb_print_bytes(const char *label, uint64_t n, const char *how)
{
    if (n == UINT64_MAX) {
        printf("%-12s : n/a (%s)\n", label, how);
    } else {
        printf("%-12s : %" PRIu64 " bytes (%.1f MB, %s)\n", label, n,
               (double)n / KVB_MIB, how);
    }
}

static int
kvb_summary(struct kvb_run *run)
{
    struct kvb_stats st;
    const char *how = "";
    uint64_t keys;
    uint64_t keys2;
    int rc;

    printf("------------------------------------------------\n");
    keys = kvb_keys(run, &st, run->conf->show_stats, &how);
    if (keys == UINT64_MAX) {
        printf("%-12s : n/a\n", "keys");
    } else {
        printf("%-12s : %" PRIu64 " (%s)\n", "keys", keys, how);
    }
    kvb_print_bytes("value bytes", st.value_bytes, "engine stats");
    kvb_print_bytes("disk bytes", st.disk_bytes, "engine stats");
    kvb_print_bytes("files bytes", kvb_dir_bytes(run->dir),
                    "files in the db directory");
    kvb_print_bytes("mem bytes", st.mem_bytes, "engine stats");
    rc = kvb_run_reopen(run, "reopen");
    if (rc != 0 || !run->ops->persistent(run->b)) {
        return rc;
    }
    keys2 = kvb_keys(run, &st, false, &how);
    if (keys2 != keys) {
        fprintf(stderr,
                "kvbench: key count changed across reopen: %" PRIu64
                " before, %" PRIu64 " after\n",
                keys, keys2);
        return KVD_ECORRUPT;
    }
    printf("%-12s : %" PRIu64 " (%s)\n", "reopen keys", keys2, how);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Command line                                                           */
/* ---------------------------------------------------------------------- */

static void
kvb_usage(FILE *out)
{
    fprintf(out,
            "usage: kvbench [options]\n"
            "  --engine NAME|PATH   kvd engine by name (plugin dir) or .so "
            "path,\n"
            "                       or leveldb, rocksdb, tkrzw, lmdb "
            "(default memory)\n"
            "  --benchmarks LIST    comma-separated workloads, run in order "
            "on one db\n"
            "                       (default " KVB_DEFAULT_BENCHMARKS ")\n"
            "                       also: deletecount (del() that "
            "reports whether the\n"
            "                       key existed; deleterandom is a blind "
            "delete,\n"
            "                       deleteblind its old name), compact, "
            "reopen\n"
            "  --num N              key space and writes per workload "
            "(1000000)\n"
            "  --reads N            reads per read workload (default "
            "--num)\n"
            "  --key_size N         key bytes (16)\n"
            "  --value_size N       value bytes (100)\n"
            "  --threads N          threads sharing each workload (1)\n"
            "  --db DIR             database directory (default: a fresh "
            "temporary\n"
            "                       directory, removed at exit)\n"
            "  --keep               keep the temporary directory\n"
            "  --use_existing       reuse --db as is; skip fill* "
            "workloads\n"
            "  --seed N             random seed (301)\n"
            "  --opt KEY=VALUE      engine option, as in the [engine] "
            "section (repeatable)\n"
            "  --store              go through the core store wrappers, "
            "not the vtable\n"
            "  --plugin_dir DIR     where kvd engine plugins live\n"
            "  --stats              print engine counters after the run\n"
            "  --verbose            engine log at info level (default "
            "warn)\n"
            "  --help               this text\n");
}

static int
kvb_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max,
              uint64_t *out)
{
    char *end = NULL;
    unsigned long long n;

    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || n < min ||
        n > max) {
        fprintf(stderr,
                "kvbench: --%s %s: expected an integer in [%" PRIu64
                ", %" PRIu64 "]\n",
                flag, s, min, max);
        return KVD_EINVAL;
    }
    *out = n;
    return 0;
}

enum {
    OPT_ENGINE = 1000,
    OPT_BENCHMARKS,
    OPT_NUM,
    OPT_READS,
    OPT_KEY_SIZE,
    OPT_VALUE_SIZE,
    OPT_THREADS,
    OPT_DB,
    OPT_KEEP,
    OPT_USE_EXISTING,
    OPT_SEED,
    OPT_OPT,
    OPT_STORE,
    OPT_PLUGIN_DIR,
    OPT_STATS,
    OPT_VERBOSE,
    OPT_HELP,
};

static const struct option kvb_long_opts[] = {
    {"engine", required_argument, NULL, OPT_ENGINE},
    {"benchmarks", required_argument, NULL, OPT_BENCHMARKS},
    {"num", required_argument, NULL, OPT_NUM},
    {"reads", required_argument, NULL, OPT_READS},
    {"key_size", required_argument, NULL, OPT_KEY_SIZE},
    {"value_size", required_argument, NULL, OPT_VALUE_SIZE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"db", required_argument, NULL, OPT_DB},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"use_existing", no_argument, NULL, OPT_USE_EXISTING},
    {"seed", required_argument, NULL, OPT_SEED},
    {"opt", required_argument, NULL, OPT_OPT},
    {"store", no_argument, NULL, OPT_STORE},
    {"plugin_dir", required_argument, NULL, OPT_PLUGIN_DIR},
    {"stats", no_argument, NULL, OPT_STATS},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int
kvb_add_opt(struct kvb_conf *c, char *arg)
{
    char *eq = strchr(arg, '=');
    struct kvb_kv *kv;

    if (eq == NULL || eq == arg) {
        fprintf(stderr, "kvbench: --opt %s: expected KEY=VALUE\n", arg);
        return KVD_EINVAL;
    }
    kv = realloc(c->opts, (c->nopts + 1) * sizeof(*kv));
    if (kv == NULL) {
        fprintf(stderr, "kvbench: out of memory\n");
        return KVD_ENOMEM;
    }
    c->opts = kv;
    *eq = '\0';
    kv[c->nopts].key = arg;
    kv[c->nopts].value = eq + 1;
    kv[c->nopts].index = (int)c->nopts + 1;
    c->nopts++;
    return 0;
}

/* 0, 1 for --help (exit 0), or a status. */
static int
kvb_parse_args(int argc, char **argv, struct kvb_conf *c)
{
    uint64_t n;
    int ch;
    int rc = 0;

    memset(c, 0, sizeof(*c));
    c->engine = "memory";
    c->benchmarks = KVB_DEFAULT_BENCHMARKS;
    c->num = 1000000;
    c->reads = UINT64_MAX;
    c->key_size = 16;
    c->value_size = 100;
    c->threads = 1;
    c->seed = KVB_DEFAULT_SEED;
    while ((ch = getopt_long(argc, argv, "", kvb_long_opts, NULL)) != -1) {
        switch (ch) {
        case OPT_ENGINE:
            c->engine = optarg;
            break;
        case OPT_BENCHMARKS:
            c->benchmarks = optarg;
            break;
        case OPT_NUM:
            rc = kvb_parse_u64("num", optarg, 1, UINT64_MAX / 2, &c->num);
            break;
        case OPT_READS:
            rc = kvb_parse_u64("reads", optarg, 0, UINT64_MAX / 2, &c->reads);
            break;
        case OPT_KEY_SIZE:
            rc = kvb_parse_u64("key_size", optarg, 1, 1u << 20, &n);
            c->key_size = (size_t)n;
            break;
        case OPT_VALUE_SIZE:
            rc = kvb_parse_u64("value_size", optarg, 0, 1u << 30, &n);
            c->value_size = (size_t)n;
            break;
        case OPT_THREADS:
            rc = kvb_parse_u64("threads", optarg, 1, KVB_MAX_THREADS, &n);
            c->threads = (unsigned)n;
            break;
        case OPT_DB:
            c->db = optarg;
            break;
        case OPT_KEEP:
            c->keep = true;
            break;
        case OPT_USE_EXISTING:
            c->use_existing = true;
            break;
        case OPT_SEED:
            rc = kvb_parse_u64("seed", optarg, 0, UINT64_MAX, &c->seed);
            break;
        case OPT_OPT:
            rc = kvb_add_opt(c, optarg);
            break;
        case OPT_STORE:
            c->use_store = true;
            break;
        case OPT_PLUGIN_DIR:
            c->plugin_dir = optarg;
            break;
        case OPT_STATS:
            c->show_stats = true;
            break;
        case OPT_VERBOSE:
            c->verbose = true;
            break;
        case OPT_HELP:
            kvb_usage(stdout);
            return 1;
        default:
            kvb_usage(stderr);
            return KVD_EINVAL;
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kvbench: unexpected argument %s\n", argv[optind]);
        return KVD_EINVAL;
    }
    if (kvb_digits(c->num - 1) > c->key_size) {
        fprintf(stderr,
                "kvbench: --key_size %zu cannot hold key numbers up to "
                "%" PRIu64 " (%zu digits)\n",
                c->key_size, c->num - 1, kvb_digits(c->num - 1));
        return KVD_EINVAL;
    }
    if (c->use_existing && c->db == NULL) {
        fprintf(stderr, "kvbench: --use_existing needs --db DIR\n");
        return KVD_EINVAL;
    }
    return 0;
}

/* Resolve --benchmarks into workloads; print every unknown name. */
static int
kvb_parse_benchmarks(const char *list, const struct kvb_workload ***out,
                     size_t *n)
{
    const struct kvb_workload **wls = NULL;
    char *copy = strdup(list);
    char *save = NULL;
    size_t cap = 0;
    int rc = 0;

    *n = 0;
    if (copy == NULL) {
        return KVD_ENOMEM;
    }
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        const struct kvb_workload *wl = NULL;
        for (const struct kvb_workload *w = kvb_workloads; w->name; w++) {
            if (strcmp(w->name, tok) == 0) {
                wl = w;
            }
        }
        if (wl == NULL) {
            fprintf(stderr,
                    "kvbench: unknown benchmark %s: expected one of "
                    "fillseq, fillrandom, overwrite, fillsync, readrandom, "
                    "readmissing, readhot, readseq, deleterandom, deleteblind, "
                    "deletecount, compact, reopen\n",
                    tok);
            rc = KVD_EINVAL;
            continue;
        }
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            const struct kvb_workload **p = realloc(wls, ncap * sizeof(*wls));
            if (p == NULL) {
                rc = KVD_ENOMEM;
                break;
            }
            wls = p;
            cap = ncap;
        }
        wls[(*n)++] = wl;
    }
    free(copy);
    if (rc == 0 && *n == 0) {
        fprintf(stderr, "kvbench: --benchmarks names no workload\n");
        rc = KVD_EINVAL;
    }
    if (rc != 0) {
        free(wls);
        return rc;
    }
    *out = wls;
    return 0;
}

/* Pick and set up the directory; see the rules in kvb_usage. */
static int
kvb_setup_dir(struct kvb_run *run)
{
    const struct kvb_conf *c = run->conf;
    const char *tmp = getenv("TMPDIR");
    struct stat st;

    if (c->db == NULL) {
        snprintf(run->dir, sizeof(run->dir), "%s/kvbench-XXXXXX",
                 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
        if (mkdtemp(run->dir) == NULL) {
            fprintf(stderr, "kvbench: mkdtemp %s: %s\n", run->dir,
                    strerror(errno));
            return KVD_EIO;
        }
        run->dir_is_temp = true;
        run->dir_wipeable = true;
        return 0;
    }
    snprintf(run->dir, sizeof(run->dir), "%s", c->db);
    if (stat(run->dir, &st) != 0) {
        if (c->use_existing) {
            fprintf(stderr, "kvbench: --use_existing: %s: %s\n", run->dir,
                    strerror(errno));
            return KVD_EINVAL;
        }
        if (mkdir(run->dir, 0755) != 0) {
            fprintf(stderr, "kvbench: mkdir %s: %s\n", run->dir,
                    strerror(errno));
            return KVD_EIO;
        }
        run->dir_wipeable = true;
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kvbench: --db %s: not a directory\n", run->dir);
        return KVD_EINVAL;
    }
    if (c->use_existing) {
        return 0;
    }
    /* Never wipe a directory kvbench did not make or find empty: a typo
     * in --db must not cost anyone their files. */
    if (!kvb_dir_is_empty(run->dir)) {
        fprintf(stderr,
                "kvbench: --db %s is not empty: pass --use_existing to "
                "reuse it, or remove it first\n",
                run->dir);
        return KVD_EINVAL;
    }
    run->dir_wipeable = true;
    return 0;
}

static int
kvb_make_values(struct kvb_run *run)
{
    size_t vsize = run->conf->value_size;
    size_t len = vsize > KVB_VALUE_BUF_BYTES ? vsize : KVB_VALUE_BUF_BYTES;
    uint64_t rng = run->conf->seed ^ 0x5eedull;

    len += vsize;
    run->valbuf = malloc(len);
    if (run->valbuf == NULL) {
        fprintf(stderr, "kvbench: out of memory for %zu value bytes\n", len);
        return KVD_ENOMEM;
    }
    for (size_t i = 0; i < len; i += 8) {
        uint64_t r = kvb_rand(&rng);
        memcpy(run->valbuf + i, &r, len - i < 8 ? len - i : 8);
    }
    run->valbuf_len = len;
    return 0;
}

static int
kvb_create_backend(const struct kvb_conf *c, const struct kvb_setup *s,
                   struct kvb_run *run)
{
    struct kvd_err err;
    int rc;

    kvd_err_clear(&err);
    if (strcmp(c->engine, "leveldb") == 0) {
        rc = kvb_leveldb_create(s, &run->ops, &run->b, &err);
    } else if (strcmp(c->engine, "rocksdb") == 0) {
        rc = kvb_rocksdb_create(s, &run->ops, &run->b, &err);
    } else if (strcmp(c->engine, "tkrzw") == 0) {
        rc = kvb_tkrzw_create(s, &run->ops, &run->b, &err);
    } else if (strcmp(c->engine, "lmdb") == 0) {
        rc = kvb_lmdb_create(s, &run->ops, &run->b, &err);
    } else {
        rc = kvb_kvd_create(s, &run->ops, &run->b, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "kvbench: %s\n",
                err.msg[0] ? err.msg : kvd_strerror(rc));
    }
    return rc;
}

int
main(int argc, char **argv)
{
    struct kvb_conf conf;
    struct kvb_setup setup;
    struct kvb_run run;
    const struct kvb_workload **wls = NULL;
    size_t nwl = 0;
    int exit_setup = 0;
    int rc;

    memset(&run, 0, sizeof(run));
    rc = kvb_parse_args(argc, argv, &conf);
    if (rc != 0) {
        free(conf.opts);
        return rc == 1 ? 0 : 2;
    }
    run.conf = &conf;
    run.progress = isatty(STDERR_FILENO) != 0;
    kvd_log_open(NULL, conf.verbose ? KVD_LOG_INFO : KVD_LOG_WARN, NULL);
    memset(&setup, 0, sizeof(setup));
    setup.engine = conf.engine;
    setup.plugin_dir = conf.plugin_dir;
    setup.use_store = conf.use_store;
    setup.nopts = conf.nopts;
    setup.opts = conf.opts;

    rc = kvb_parse_benchmarks(conf.benchmarks, &wls, &nwl);
    if (rc == 0) {
        rc = kvb_create_backend(&conf, &setup, &run);
    }
    if (rc != 0) {
        free(wls);
        free(conf.opts);
        return 2;
    }
    rc = kvb_make_values(&run);
    if (rc == 0) {
        rc = kvb_setup_dir(&run);
    }
    if (rc != 0) {
        /* Set-up errors, like command-line ones, exit with 2. */
        exit_setup = 2;
        goto out;
    }
    kvb_print_header(&run);
    signal(SIGINT, kvb_on_signal);
    signal(SIGTERM, kvb_on_signal);
    rc = kvb_db_open(&run, false);
    for (size_t i = 0; rc == 0 && i < nwl; i++) {
        rc = kvb_run_workload(&run, wls[i]);
    }
    if (rc == 0) {
        rc = kvb_summary(&run);
    }
out:
    if (kvb_db_close(&run) != 0 && rc == 0) {
        rc = KVD_EIO;
    }
    run.ops->destroy(run.b);
    if (run.dir_is_temp && run.dir[0] != '\0') {
        if (conf.keep) {
            printf("kept:        %s\n", run.dir);
        } else {
            kvb_remove_tree(run.dir);
        }
    }
    free(run.valbuf);
    free(wls);
    free(conf.opts);
    if (exit_setup != 0) {
        return exit_setup;
    }
    return rc == 0 ? 0 : 1;
}
