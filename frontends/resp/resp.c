/*
 * frontends/resp/resp.c -- the resp frontend: the Redis protocol (RESP2,
 * RESP3 after HELLO 3) on a Unix socket and optionally TCP, so redis-cli,
 * redis-benchmark and every Redis client library talk to kvd unchanged.
 *
 * This file holds the [frontend.resp] option table, the lifecycle
 * (create binds the sockets so a bad address fails before anything is
 * served; start spawns the I/O threads; stop and destroy shut down
 * gracefully) and the exported vtable. Commands are not here: every
 * request runs through the shared command layer (srv->cmd_api->call on
 * the connection's session), and this frontend only frames requests and
 * encodes replies. See resp.h for
 * the threading model and resp_net.c for the connection life cycle.
 */
#include "resp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Upper bound of the automatic thread count (threads = 0). */
#define RESP_AUTO_THREADS_MAX 8
/* With a remote engine: threads per CPU, and their upper bound. */
#define RESP_REMOTE_THREADS_PER_CPU 16
#define RESP_REMOTE_THREADS_MAX     64
/* With a remote engine that runs a pass's commands together (multi):
 * one thread per two CPUs (docs/benchmarks.md: on 2 CPUs one thread beat
 * 2, 4 and 8 at every redis-benchmark test). */
#define RESP_REMOTE_BATCH_CPUS_PER_THREAD 2

static const struct kvd_option resp_options[] = {
    {"unix_socket", KVD_OPT_STRING | KVD_OPT_NEWFILE, "kvd.sock", 0, 0,
     offsetof(struct resp_opts, unix_socket), NULL,
     "path of the Unix socket, relative to the working directory (empty: "
     "none); a stale socket of a dead server is replaced, a live one is "
     "refused"},
    {"unix_socket_mode", KVD_OPT_OCTAL, "0600", 0, 0,
     offsetof(struct resp_opts, unix_socket_mode), NULL,
     "permissions of the Unix socket (who may connect)"},
    {"tcp", KVD_OPT_STRING | KVD_OPT_LISTEN, "", 0, 0,
     offsetof(struct resp_opts, tcp), NULL,
     "TCP listener as host:port ([v6addr]:port for IPv6); a port without "
     "a host (6380 or :6380) means 127.0.0.1 (empty: no TCP)"},
    {"threads", KVD_OPT_INT, "0", 0, 64, offsetof(struct resp_opts, threads),
     NULL,
     "I/O threads, each with its own event loop (0: three per four CPUs, "
     "at least 1 and at most 8; with a remote engine such as redis, one "
     "per two CPUs)"},
    {"maxclients", KVD_OPT_INT, "10000", 1, 1000000,
     offsetof(struct resp_opts, maxclients), NULL,
     "connections served at once; more are refused with an error"},
    {"requirepass", KVD_OPT_STRING | KVD_OPT_SECRET, "", 0, 0,
     offsetof(struct resp_opts, requirepass), NULL,
     "password TCP clients must give with AUTH or HELLO AUTH before any "
     "other command (empty: none); Unix socket clients are trusted (the "
     "socket's mode guards them) and need no AUTH, but an AUTH they send "
     "is checked against it"},
    {"timeout", KVD_OPT_DURATION, "0", 0, 0,
     offsetof(struct resp_opts, timeout_ms), NULL,
     "close a client idle for this long (0: never)"},
    {"max_bulk_len", KVD_OPT_SIZE, "512m", 1 << 20, INT64_C(1) << 40,
     offsetof(struct resp_opts, max_bulk_len), NULL,
     "largest bulk string a request may carry"},
    {"max_args", KVD_OPT_INT, "1048576", 1, INT32_MAX,
     offsetof(struct resp_opts, max_args), NULL,
     "most arguments in one request"},
    {"max_inline_len", KVD_OPT_SIZE, "64k", 1024, 1 << 30,
     offsetof(struct resp_opts, max_inline_len), NULL,
     "longest inline (plain text) request line"},
    {"query_buffer_limit", KVD_OPT_SIZE, "1g", 1 << 20, INT64_C(1) << 40,
     offsetof(struct resp_opts, query_buffer_limit), NULL,
     "most bytes of unprocessed requests held for one client"},
    {"output_buffer_limit", KVD_OPT_SIZE, "1g", 1 << 20, INT64_C(1) << 40,
     offsetof(struct resp_opts, output_buffer_limit), NULL,
     "most bytes of unsent replies held for one client before it is "
     "closed"},
    {"output_stall_timeout", KVD_OPT_DURATION, "60s", 0, 0,
     offsetof(struct resp_opts, output_stall_ms), NULL,
     "close a client that has taken none of its pending replies for this "
     "long (0: never)"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

static void resp_destroy(kvd_frontend *fe);

/* Whether the command layer gathers commands for this store (its engine
 * has multi): probed by making a pass and dropping it. */
static int
resp_can_batch(const struct kvd_server *srv)
{
    kvd_cmd_pass *p = srv->cmd_api->pass_create(srv->cmd);

    if (p == NULL) {
        return 0;
    }
    srv->cmd_api->pass_destroy(p);
    return 1;
}

static unsigned
resp_thread_count(const struct resp_opts *o, const struct kvd_server *srv)
{
    long n;

    if (o->threads > 0) {
        return (unsigned)o->threads;
    }
    /* A command runs on its I/O thread and blocks it for the engine's
     * network round trip. When the engine takes a whole pass's commands
     * in one call (multi), each round trip carries many of them and a
     * few threads suffice: more would only split the batches. Without
     * multi, many threads keep many requests in flight (which the engine
     * pipelines), while each thread waits most of the time. */
    if (srv->store_api != NULL && srv->store_api->caps != NULL &&
        (srv->store_api->caps(srv->store) & KVD_CAP_REMOTE)) {
        if (resp_can_batch(srv)) {
            n = sysconf(_SC_NPROCESSORS_ONLN) /
                RESP_REMOTE_BATCH_CPUS_PER_THREAD;
            n = n < 1 ? 1 : n;
            return n > RESP_AUTO_THREADS_MAX ? RESP_AUTO_THREADS_MAX
                                             : (unsigned)n;
        }
        n = sysconf(_SC_NPROCESSORS_ONLN) * RESP_REMOTE_THREADS_PER_CPU;
        if (n < RESP_REMOTE_THREADS_PER_CPU) {
            n = RESP_REMOTE_THREADS_PER_CPU;
        }
        return n > RESP_REMOTE_THREADS_MAX ? RESP_REMOTE_THREADS_MAX
                                           : (unsigned)n;
    }
    /* Leave a quarter of the CPUs to the clients, which often share the
     * machine, and to the engine's background threads: on 2 CPUs two I/O
     * threads lose a fifth of unpipelined throughput to one, because
     * they take turns with the client on its CPU (docs/benchmarks.md). */
    n = sysconf(_SC_NPROCESSORS_ONLN) * 3 / 4;
    if (n < 1) {
        n = 1;
    }
    return n > RESP_AUTO_THREADS_MAX ? RESP_AUTO_THREADS_MAX : (unsigned)n;
}

static int
resp_create(const struct kvd_host *host, const struct kvd_server *srv,
            const void *opts, kvd_frontend **out, struct kvd_err *err)
{
    struct resp_fe *fe;
    const struct resp_opts *o = opts;
    int rc;

    if (srv->cmd_api == NULL || srv->cmd_api->split == NULL) {
        return kvd_err_set(err, KVD_EINVAL,
                           "the host provides no command layer");
    }
    /* Sessions with their own encoder and passes: the second edition of
     * the command layer (a host without it is older than this frontend). */
    if (!RESP_API_HAS(srv->cmd_api, session_open) ||
        !RESP_API_HAS(srv->cmd_api, call) ||
        !RESP_API_HAS(srv->cmd_api, pass_destroy)) {
        return kvd_err_set(err, KVD_EABI,
                           "resp: the host's command layer has no sessions "
                           "(session_open, call, passes): kvd is older "
                           "than this frontend");
    }
    fe = calloc(1, sizeof(*fe));
    if (fe == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    fe->host = host;
    fe->srv = srv;
    fe->opts = o;
    if (o->requirepass != NULL && o->requirepass[0] != '\0') {
        fe->password = o->requirepass;
        fe->password_len = strlen(o->requirepass);
    }
    fe->limits.max_bulk_len = o->max_bulk_len;
    fe->limits.max_args = (uint64_t)o->max_args;
    fe->limits.max_inline_len = o->max_inline_len;
    fe->limits.max_request_len = o->query_buffer_limit;
    fe->nworkers = resp_thread_count(o, srv);
    atomic_init(&fe->stopping, 0);
    atomic_init(&fe->nclients, 0);
    rc = resp_net_listen(fe, err);
    if (rc != 0) {
        resp_destroy((kvd_frontend *)fe);
        return rc;
    }
    *out = (kvd_frontend *)fe;
    return 0;
}

static int
resp_start(kvd_frontend *f, struct kvd_err *err)
{
    return resp_net_start((struct resp_fe *)f, err);
}

static void
resp_stop(kvd_frontend *f)
{
    resp_net_stop((struct resp_fe *)f);
}

static void
resp_destroy(kvd_frontend *f)
{
    struct resp_fe *fe = (struct resp_fe *)f;

    if (fe == NULL) {
        return;
    }
    resp_net_destroy(fe);
    free(fe);
}

/* vtable check_options: what create would refuse before binding
 * anything (kvd --check-config): nothing to listen on, a socket path
 * longer than a sockaddr_un holds. */
static int
resp_check_options(const void *opts, const char **key, struct kvd_err *err)
{
    const struct resp_opts *o = opts;
    bool has_unix = o->unix_socket != NULL && o->unix_socket[0] != '\0';

    if (!has_unix && (o->tcp == NULL || o->tcp[0] == '\0')) {
        *key = "unix_socket";
        return kvd_err_set(err, KVD_ECONFIG,
                           "neither unix_socket nor tcp is set: nothing to "
                           "listen on");
    }
    if (has_unix &&
        strlen(o->unix_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        *key = "unix_socket";
        return kvd_err_set(err, KVD_ECONFIG, "path longer than %zu bytes",
                           sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    }
    return 0;
}

KVD_EXPORT const struct kvd_frontend_vtable kvd_frontend_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_frontend_vtable),
    .name = "resp",
    .version = "1.0.0",
    .description = "Redis protocol (RESP2/RESP3) on a Unix socket and TCP",
    .options = resp_options,
    .options_size = sizeof(struct resp_opts),
    .create = resp_create,
    .start = resp_start,
    .stop = resp_stop,
    .destroy = resp_destroy,
    .check_options = resp_check_options,
};
