/*
 * tests/cmd/cmd_fixture.h -- a command layer over a real store, for tests.
 *
 * The memory engine is loaded through the core loader from
 * $KVD_PLUGIN_DIR (or the build tree's plugins/), opened through the real
 * store over a host whose clock the test controls, and wrapped in a
 * kvd_cmd. Replies are recorded as one line of text per command:
 *
 *   status OK           -> OK
 *   error  ERR x        -> !ERR x
 *   integer 5           -> :5
 *   bulk "ab\0"         -> "ab\x00"   (\" \\ and \xHH for bytes outside
 *                                      0x20..0x7e)
 *   null                -> nil
 *   array of 2          -> *2 <elem> <elem>   (elements separated by one
 *   map of 1            -> %1 <key> <value>    space)
 *   null array          -> nil*
 *
 * The recorder also checks that every command writes exactly one complete
 * reply (an array's elements included) and fails the test otherwise. A
 * recorder in stream mode (for sessions whose replies arrive later, from
 * a pass) takes any number of replies instead, separated by '|'. It keeps
 * the last protocol version the layer pushed (proto op) and the status of
 * the last error (error_status op).
 */
#ifndef KVD_TESTS_CMD_FIXTURE_H
#define KVD_TESTS_CMD_FIXTURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cmd.h"
#include "core/store.h"
#include "kvd/host.h"

/* The fake clock starts here: 2023-11-14T22:13:20Z. */
#define CMDT_EPOCH_MS INT64_C(1700000000000)

struct cmdt_clock_host {
    struct kvd_host host; /* first: the store is handed &host */
    _Atomic int64_t now_ms;
};

struct cmdt_rec {
    char *buf;
    size_t len;
    size_t cap;
    long pending; /* reply elements still expected */
    int replies;  /* top-level replies completed */
    bool overflow;
    bool stream;     /* any number of replies, '|' between them */
    int proto;       /* the last version pushed (0: none yet) */
    int last_status; /* the status of the last error */
};

struct cmdt_fx {
    struct cmdt_clock_host clock;
    const struct kvd_engine_vtable *vt;
    void *opts;
    char dir[64];
    kvd_store *st;
    kvd_cmd *cmd;
    kvd_session *sess; /* opened with the recorder rec, no pass */
    struct cmdt_rec rec;
    int last_flags; /* what call returned for the last command */
};

struct cmdt_params {
    const char *requirepass;  /* NULL: none */
    uint64_t max_value_bytes; /* 0: engine default */
    unsigned session_flags;   /* KVD_SESSION_TRUSTED or 0 */
    /* The engine to open instead of the memory engine (NULL: memory). */
    const struct kvd_engine_vtable *vt;
    /* Host facts for CONFIG GET and INFO (struct kvd_cmd_config). */
    const char *appendfsync;
    const char *save;
    int tcp_port;
    int maxclients;
};

/* The memory engine's vtable (valid between the group setup and
 * teardown), for tests that wrap it. */
const struct kvd_engine_vtable *cmdt_memory_vt(void);

/* A multi for the memory engine (get/put/del in a loop), so a test can
 * give it one and get passes: copy cmdt_memory_vt(), set .multi to this
 * and struct_size to the full size. It counts its calls and operations. */
int cmdt_loop_multi(kvd_engine *e, struct kvd_mop *ops, size_t n);
extern int cmdt_multi_calls;
extern size_t cmdt_multi_ops;

/* Group setup/teardown: load the memory engine once. */
int cmdt_group_setup(void **state);
int cmdt_group_teardown(void **state);

/* Per-test: a fresh store, command layer and session. */
int cmdt_setup(void **state);
int cmdt_setup_params(void **state, const struct cmdt_params *p);
int cmdt_teardown(void **state);

/* Run one command line (split by kvd_cmd_split) on fx->sess and return
 * its reply as text (valid until the next call). */
const char *cmdt_run(struct cmdt_fx *fx, const char *line);

/* Run a command given as explicit arguments (binary-safe). */
const char *cmdt_runv(struct cmdt_fx *fx, size_t argc, const char *const *argv,
                      const size_t *argl);

/* Run a line on session s through the first edition's kvd_cmd_exec, the
 * reply recorded in fx->rec (s may come from kvd_cmd_session_create). */
const char *cmdt_run_exec(struct cmdt_fx *fx, kvd_session *s, const char *line);

/* Open another session of fx->cmd whose replies go to rec (put in stream
 * mode), with pass p (may be NULL) and the given flags. */
kvd_session *cmdt_session(struct cmdt_fx *fx, struct cmdt_rec *rec,
                          kvd_cmd_pass *p, unsigned flags);

/* Call one command line on session s; returns what call returned. */
int cmdt_call(kvd_session *s, const char *line);

/* The clock. */
void cmdt_advance(struct cmdt_fx *fx, int64_t ms);
int64_t cmdt_now(struct cmdt_fx *fx);

/* A reply writer that records into rec (for other threads' sessions). */
extern const struct kvd_reply_ops cmdt_reply_ops;
void cmdt_rec_reset(struct cmdt_rec *r);
/* Empty the recorder and put it in stream mode. */
void cmdt_rec_stream(struct cmdt_rec *r);
/* What a stream recorder holds ("" when nothing); valid until it records
 * again. */
const char *cmdt_rec_text(struct cmdt_rec *r);
void cmdt_rec_release(struct cmdt_rec *r);

#endif /* KVD_TESTS_CMD_FIXTURE_H */
