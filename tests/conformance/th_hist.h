/*
 * th_hist.h -- deterministic write histories for crash tests, and the
 * checks that a recovered store holds a prefix of one.
 *
 * A history is an endless numbered sequence of operations derived from a
 * seed: op N is a put (70%), a delete (20%) or, when the engine has atomic
 * batches, a batch of three puts and deletes (10%; a put otherwise), over
 * `nkeys` keys "key000".. with values that say which op wrote them. A
 * model (struct th_hist) replays ops in memory. After a crash, the store
 * must equal the model after exactly the acknowledged ops, or after one
 * more (the op in flight may or may not have reached the disk): every
 * acknowledged write is there with its value, deleted keys stay deleted,
 * and there are no holes (prefix consistency).
 *
 * th_crash_round runs one round of the SIGKILL loop: a child process
 * opens the store and applies the history from where the last round's
 * recovered state ends, reporting each acknowledged op through a pipe;
 * the parent kills it after a given number of acknowledgements, reopens
 * the store and checks it. Waiting for acknowledgements rather than for
 * a time makes every round do work however loaded the machine is.
 *
 * No cmocka here: functions return 0, or -1 with a message in `why`.
 */
#ifndef KVD_TH_HIST_H
#define KVD_TH_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd/engine.h"
#include "kvd/host.h"

#define TH_HIST_MAX_KEYS  1000
#define TH_HIST_MAX_VALUE 300
#define TH_HIST_BATCH_OPS 3
#define TH_WHY_BYTES      512

struct th_hist_conf {
    uint64_t seed;
    int nkeys;    /* 1..TH_HIST_MAX_KEYS */
    bool batches; /* the engine has atomic batches */
};

struct th_hist_key {
    bool present;
    long op; /* the op that last wrote it */
    int sub; /* which operation of that op (batches) */
};

/* The store a history should have produced. Plain data: copy by value. */
struct th_hist {
    struct th_hist_key k[TH_HIST_MAX_KEYS];
};

/* The name of key k ("key007"); buf holds 16 bytes. */
void th_hist_key(int k, char *buf);

/* Apply op to the model. */
void th_hist_apply(struct th_hist *h, const struct th_hist_conf *c, long op);

/* Run op against the engine: the status it returned (0, or for a
 * delete of an absent key KVD_ENOTFOUND: both mean acknowledged). */
int th_hist_run(const struct kvd_engine_vtable *vt, kvd_engine *e,
                const struct th_hist_conf *c, long op);

/* Whether the store equals the model: every key has the model's value
 * (get), and iteration returns exactly the model's live keys. 1 when it
 * does, 0 with the first difference in why, or -1 when reading failed. */
int th_hist_check(const struct kvd_engine_vtable *vt, kvd_engine *e,
                  const struct th_hist *h, const struct th_hist_conf *c,
                  char *why, size_t whylen);

/* ---- the SIGKILL loop ---- */

struct th_crash {
    /* set by the caller */
    const struct kvd_engine_vtable *vt;
    const struct kvd_host *host; /* the child's and the checks' host */
    const void *opts;            /* the writer's options (durable) */
    const void *check_opts;      /* options to reopen with for checking */
    const char *dir;
    struct th_hist_conf conf;
    /* optional: more checks of the reopened store (engine counters): 0,
     * or -1 with why */
    int (*extra_check)(void *ctx, kvd_engine *e, char *why, size_t whylen);
    void *extra_ctx;
    /* kept across rounds */
    struct th_hist model; /* the history recovered so far */
    long next;            /* ops [0, next) are in the store */
    long acked;           /* acknowledged ops over all rounds */
    int in_flight;        /* rounds where the op in flight was durable */
};

/* Start a loop over an empty store in c->dir (the caller sets the fields
 * above `model` first). */
void th_crash_init(struct th_crash *c);

/*
 * One round: a child applies ops from c->next on and is SIGKILLed after
 * `kill_after` (>= 1) acknowledgements; the parent reopens the store with
 * check_opts and checks it holds the history up to the last acknowledged
 * op or one further, and advances c. 0, or -1 with why (the child failed,
 * timed out after timeout_ms waiting for acknowledgements, the reopen
 * failed, or the store is not a prefix of the history).
 */
int th_crash_round(struct th_crash *c, long kill_after, int64_t timeout_ms,
                   char *why, size_t whylen);

#endif /* KVD_TH_HIST_H */
