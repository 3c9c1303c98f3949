/*
 * th_hist.c -- deterministic write histories and the SIGKILL loop; see
 * th_hist.h.
 */
#include "th_hist.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "th_host.h"

/* ---- the history ---- */

static uint64_t
hist_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A number drawn for (op, sub, what): the same on every run of a seed. */
static uint64_t
hist_rnd(const struct th_hist_conf *c, long op, int sub, int what)
{
    return hist_mix(c->seed ^ hist_mix((uint64_t)op * 1000003u +
                                       (uint64_t)sub * 31u + (uint64_t)what));
}

enum hist_kind {
    HIST_PUT = 0,
    HIST_DEL = 1,
    HIST_BATCH = 2,
};

/* 0..6 put, 7..8 delete, 9 batch (a put without batches). */
static int
hist_kind(const struct th_hist_conf *c, long op)
{
    int r = (int)(hist_rnd(c, op, 0, 1) % 10);

    if (r <= 6) {
        return HIST_PUT;
    }
    if (r <= 8) {
        return HIST_DEL;
    }
    return c->batches ? HIST_BATCH : HIST_PUT;
}

static int
hist_keyno(const struct th_hist_conf *c, long op, int sub)
{
    return (int)(hist_rnd(c, op, sub, 2) % (uint64_t)c->nkeys);
}

static bool
hist_sub_is_del(const struct th_hist_conf *c, long op, int sub, int kind)
{
    return kind == HIST_DEL ||
           (kind == HIST_BATCH && hist_rnd(c, op, sub, 3) % 3 == 0);
}

/* The value written by (op, sub): it names them, then filler; buf holds
 * TH_HIST_MAX_VALUE + 32 bytes. */
static size_t
hist_value(const struct th_hist_conf *c, long op, int sub, char *buf)
{
    size_t len = (size_t)(hist_rnd(c, op, sub, 9) % TH_HIST_MAX_VALUE);
    int n = sprintf(buf, "v%ld.%d.", op, sub);

    if ((size_t)n > len) {
        len = (size_t)n;
    }
    memset(buf + n, 'a' + (int)(op % 26), len - (size_t)n);
    return len;
}

void
th_hist_key(int k, char *buf)
{
    snprintf(buf, 16, "key%03d", k);
}

void
th_hist_apply(struct th_hist *h, const struct th_hist_conf *c, long op)
{
    int kind = hist_kind(c, op);
    int nsub = kind == HIST_BATCH ? TH_HIST_BATCH_OPS : 1;

    for (int s = 0; s < nsub; s++) {
        struct th_hist_key *k = &h->k[hist_keyno(c, op, s)];
        k->present = !hist_sub_is_del(c, op, s, kind);
        k->op = op;
        k->sub = s;
    }
}

int
th_hist_run(const struct kvd_engine_vtable *vt, kvd_engine *e,
            const struct th_hist_conf *c, long op)
{
    char key[TH_HIST_BATCH_OPS][16];
    char val[TH_HIST_BATCH_OPS][TH_HIST_MAX_VALUE + 32];
    int kind = hist_kind(c, op);

    if (kind == HIST_BATCH) {
        struct kvd_op ops[TH_HIST_BATCH_OPS];
        struct kvd_err err = {0};

        for (int s = 0; s < TH_HIST_BATCH_OPS; s++) {
            th_hist_key(hist_keyno(c, op, s), key[s]);
            ops[s].type =
                hist_sub_is_del(c, op, s, kind) ? KVD_OP_DEL : KVD_OP_PUT;
            ops[s].key = key[s];
            ops[s].klen = strlen(key[s]);
            ops[s].val = val[s];
            ops[s].vlen = hist_value(c, op, s, val[s]);
            ops[s].expire_ms = KVD_NO_EXPIRY;
        }
        return vt->batch(e, ops, TH_HIST_BATCH_OPS, &err);
    }
    th_hist_key(hist_keyno(c, op, 0), key[0]);
    if (kind == HIST_DEL) {
        return vt->del(e, key[0], strlen(key[0]));
    }
    return vt->put(e, key[0], strlen(key[0]), val[0],
                   hist_value(c, op, 0, val[0]), KVD_NO_EXPIRY);
}

static int
check_key(const struct kvd_engine_vtable *vt, kvd_engine *e,
          const struct th_hist *h, const struct th_hist_conf *c, int k,
          char *why, size_t whylen)
{
    char key[16];
    char want[TH_HIST_MAX_VALUE + 32];
    struct kvd_val v;
    size_t n;
    int same;
    int rc;

    th_hist_key(k, key);
    rc = vt->get(e, key, strlen(key), &v);
    if (!h->k[k].present) {
        if (rc == 0) {
            kvd_val_release(&v);
        }
        if (rc == KVD_ENOTFOUND) {
            return 1;
        }
        snprintf(why, whylen, "%s: deleted by op %ld, but get says %s", key,
                 h->k[k].op, rc == 0 ? "it is there" : kvd_strerror(rc));
        return rc == 0 ? 0 : -1;
    }
    if (rc != 0) {
        snprintf(why, whylen, "%s: written by op %ld, but get says %s", key,
                 h->k[k].op, kvd_strerror(rc));
        return rc == KVD_ENOTFOUND ? 0 : -1;
    }
    n = hist_value(c, h->k[k].op, h->k[k].sub, want);
    same = v.len == n && memcmp(v.data, want, n) == 0;
    if (!same) {
        snprintf(why, whylen, "%s: expected the value of op %ld, found '%.*s'",
                 key, h->k[k].op, (int)(v.len < 24 ? v.len : 24),
                 (const char *)v.data);
    }
    kvd_val_release(&v);
    return same ? 1 : 0;
}

int
th_hist_check(const struct kvd_engine_vtable *vt, kvd_engine *e,
              const struct th_hist *h, const struct th_hist_conf *c, char *why,
              size_t whylen)
{
    struct kvd_iter_opts io = {.flags = KVD_ITER_KEYS_ONLY};
    struct kvd_err err = {0};
    struct kvd_entry ent;
    kvd_iter *it = NULL;
    long present = 0;
    long seen = 0;
    int rc;

    for (int k = 0; k < c->nkeys; k++) {
        rc = check_key(vt, e, h, c, k, why, whylen);
        if (rc != 1) {
            return rc;
        }
        present += h->k[k].present;
    }
    rc = vt->iter_open(e, &io, &it, &err);
    if (rc != 0) {
        snprintf(why, whylen, "iter_open: %s", err.msg);
        return -1;
    }
    while ((rc = vt->iter_next(it, &ent)) == 0) {
        seen++;
    }
    vt->iter_close(it);
    if (rc != KVD_ENOTFOUND) {
        snprintf(why, whylen, "iter_next: %s", kvd_strerror(rc));
        return -1;
    }
    if (seen != present) {
        snprintf(why, whylen, "iteration returns %ld keys, %ld are live", seen,
                 present);
        return 0;
    }
    return 1;
}

/* ---- the SIGKILL loop ---- */

void
th_crash_init(struct th_crash *c)
{
    memset(&c->model, 0, sizeof(c->model));
    c->next = 0;
    c->acked = 0;
    c->in_flight = 0;
}

/* The child: apply ops from `start` on, report each acknowledged one. */
static void
crash_child(const struct th_crash *c, long start, int fd)
{
    struct kvd_err err = {0};
    kvd_engine *e = NULL;

    if (c->vt->open(c->host, c->opts, c->dir, &e, &err) != 0) {
        fprintf(stderr, "crash child: open %s: %s\n", c->dir, err.msg);
        _exit(3);
    }
    for (long op = start;; op++) {
        int rc = th_hist_run(c->vt, e, &c->conf, op);
        if (rc != 0 && rc != KVD_ENOTFOUND) {
            fprintf(stderr, "crash child: op %ld: %s\n", op, kvd_strerror(rc));
            _exit(4);
        }
        if (write(fd, &op, sizeof(op)) != sizeof(op)) {
            _exit(5);
        }
    }
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read acknowledgements into *acked (the first op not acknowledged) until
 * `until` ops are or the pipe ends; 0, or -1 on timeout. */
static int
read_acks(int fd, long *acked, long until, int64_t deadline)
{
    while (*acked < until) {
        struct pollfd p = {fd, POLLIN, 0};
        int64_t left = deadline - now_ms();
        long op;
        ssize_t n;

        if (left <= 0) {
            return -1;
        }
        if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) <= 0) {
            continue;
        }
        n = read(fd, &op, sizeof(op));
        if (n != sizeof(op)) {
            return 0; /* the child is gone */
        }
        if (op != *acked) {
            return -1; /* not contiguous: never happens */
        }
        (*acked)++;
    }
    return 0;
}

int
th_crash_round(struct th_crash *c, long kill_after, int64_t timeout_ms,
               char *why, size_t whylen)
{
    struct th_hist with_next;
    struct kvd_err err = {0};
    kvd_engine *e = NULL;
    char detail[TH_WHY_BYTES];
    long acked = c->next; /* first op not acknowledged */
    int status;
    int pfd[2];
    int timed_out;
    int rc;
    pid_t pid;

    if (pipe(pfd) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        crash_child(c, c->next, pfd[1]);
    }
    close(pfd[1]);
    timed_out = read_acks(pfd[0], &acked, c->next + kill_after,
                          now_ms() + timeout_ms) != 0;
    kill(pid, SIGKILL);
    /* what the child acknowledged before the kill landed counts too */
    (void)read_acks(pfd[0], &acked, LONG_MAX, now_ms() + timeout_ms);
    close(pfd[0]);
    if (waitpid(pid, &status, 0) != pid) {
        snprintf(why, whylen, "waitpid: %s", strerror(errno));
        return -1;
    }
    if (WIFEXITED(status)) {
        snprintf(why, whylen,
                 "the writing child exited with %d instead of being killed "
                 "(its messages are above)",
                 WEXITSTATUS(status));
        return -1;
    }
    if (timed_out) {
        snprintf(why, whylen,
                 "no %ld acknowledgements within %lld ms (got %ld)", kill_after,
                 (long long)timeout_ms, acked - c->next);
        return -1;
    }
    for (long i = c->next; i < acked; i++) {
        th_hist_apply(&c->model, &c->conf, i);
    }
    c->acked += acked - c->next;

    rc = c->vt->open(c->host, c->check_opts, c->dir, &e, &err);
    if (rc != 0) {
        snprintf(why, whylen, "reopen after the kill: %s (%s)", err.msg,
                 kvd_strerror(rc));
        return -1;
    }
    with_next = c->model;
    th_hist_apply(&with_next, &c->conf, acked);
    rc = th_hist_check(c->vt, e, &c->model, &c->conf, detail, sizeof(detail));
    if (rc == 1) {
        c->next = acked;
    } else if (rc == 0 && th_hist_check(c->vt, e, &with_next, &c->conf, why,
                                        whylen) == 1) {
        c->model = with_next; /* the op in flight made it to disk */
        c->next = acked + 1;
        c->in_flight++;
    } else {
        snprintf(why, whylen,
                 "after the kill the store is not the history up to op %ld "
                 "(the last acknowledged) or op %ld (the one in flight): %s",
                 acked - 1, acked, detail);
        c->vt->close(e, NULL);
        return -1;
    }
    if (c->extra_check != NULL &&
        c->extra_check(c->extra_ctx, e, why, whylen) != 0) {
        c->vt->close(e, NULL);
        return -1;
    }
    rc = c->vt->close(e, &err);
    if (rc != 0) {
        snprintf(why, whylen, "close after the check: %s", err.msg);
        return -1;
    }
    return 0;
}
