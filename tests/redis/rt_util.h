/*
 * tests/redis/rt_util.h -- shared helpers of the redis engine's tests.
 *
 * The tests load the real plugin through the real loader and open it
 * behind the real store, with options given as "key=value" strings parsed
 * by the real option parser, against redis-servers started by
 * scripts/redis-cluster (the CTest fixtures, or the test itself). Admin
 * commands (CLUSTER SETSLOT, ROLE, ...) go to the servers directly
 * through hiredis. Single-threaded unless a test says otherwise.
 */
#ifndef KVD_TESTS_REDIS_RT_UTIL_H
#define KVD_TESTS_REDIS_RT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/loader.h"
#include "core/store.h"
#include "kvd/engine.h"

/* An engine opened behind a store. */
struct rt_eng {
    kvd_plugin *plugin;
    const struct kvd_engine_vtable *vt;
    void *opts;
    kvd_store *st;
};

/* Load plugin `path` and open it with opts[0..n) ("key=value"). 0 or the
 * status of the failing step, with err filled. */
int rt_open(struct rt_eng *e, const char *path, const char *const *opts,
            size_t n, struct kvd_err *err);
void rt_close(struct rt_eng *e);

/* An engine counter reported through the stats callback (UINT64_MAX if
 * the engine does not report it or stats failed). */
uint64_t rt_stat(struct rt_eng *e, const char *name);

/* Monotonic milliseconds. */
int64_t rt_ms(void);
void rt_sleep_ms(int64_t ms);

/* A command to a server on 127.0.0.1:port (NULL on failure); caller frees
 * with freeReplyObject. */
redisReply *rt_cmd(int port, const char *fmt, ...);

/* Run scripts/redis-cluster with args (printf-style); its exit status. */
int rt_script(const char *script, const char *fmt, ...);

/* The port of the master serving `slot` according to node `port`. */
int rt_master_of_slot(int port, int slot);

/* A loopback port where nothing listens, for as long as the test runs: a
 * TCP socket bound to a port the kernel picks and never listened on, so a
 * connect is refused and nobody else can take the port meanwhile. The
 * port, or -1 (errno set); *fd is the socket (the caller closes it). */
int rt_dead_port(int *fd);

#endif /* KVD_TESTS_REDIS_RT_UTIL_H */
