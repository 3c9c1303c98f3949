/*
 * frontends/resp/resp.h -- internals shared by the files of the resp
 * frontend (not installed, not part of any ABI).
 *
 * Shape: a fixed set of worker threads, each running its own libevent
 * loop. Worker 0 also owns the listening sockets; it accepts and hands
 * each new connection to a worker chosen round-robin (through that
 * worker's locked hand-off queue and eventfd). From then on a connection
 * belongs to its worker thread alone: its parser, buffers and session are
 * touched by no other thread, so the request path takes no lock.
 *
 * Buffers: a worker reads into its own read buffer and encodes replies into
 * its own write buffer, which holds the replies of one connection at a
 * time (w->out): when the command layer writes a reply for another
 * connection (the replies of a pass come in queue order, for many
 * connections), the encoder moves what the buffer holds to its
 * connection's output (o) first. A connection only holds buffers of its
 * own while something is left over: the unparsed tail of a request (q) or
 * replies the socket did not take (o). While o is non-empty the
 * connection is not read from (back-pressure): a client that does not
 * read its replies stops being served, instead of making the server
 * buffer without bound.
 *
 * Sessions and passes: each connection has a command-layer session whose
 * encoder is resp_reply_ops with w = the connection; each worker has a
 * pass (when the engine gains from gathering commands), and the sessions
 * of its connections use it. A command answered "pending" is replied when
 * the pass runs: at the end of the loop pass, when the same connection
 * sends a command that cannot wait, or every RESP_DEFER_PER_CONN queued
 * commands of one connection.
 *
 * Files: resp.c (options, lifecycle, the vtable), resp_net.c (listeners,
 * workers, connections), resp_reply.c (the reply encoder),
 * resp_parse.c (the request parser).
 */
#ifndef KVD_RESP_H
#define KVD_RESP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
/* Events are embedded in the structs they serve (no allocation per
 * connection for them); this ties the layout to libevent's ABI, which the
 * library's soname already versions. */
#include <event2/event_struct.h>

#include "kvd/frontend.h"
#include "kvd/host.h"
#include "resp_parse.h"

/* Bytes a worker reads per read(2) and keeps in its read buffer. */
#define RESP_READ_BYTES (64 * 1024)
/* Commands of one connection queued before the pass runs anyway, so a
 * long pipeline meets the output back-pressure in steps. */
#define RESP_DEFER_PER_CONN 64
/* A batch's replies are written once they reach this size, so one
 * pipelined burst of large replies does not pile up in memory. */
#define RESP_FLUSH_BYTES (256 * 1024)
/* Buffers larger than this are freed rather than kept for reuse. */
#define RESP_KEEP_BYTES (256 * 1024)
/* A connection keeps an output buffer up to this size between batches. */
#define RESP_CONN_KEEP_BYTES (16 * 1024)
/* Bytes of a client address kept for CLIENT LIST ("[v6]:port", a path). */
#define RESP_ADDR_BYTES 128
/* How long a graceful stop waits for replies in flight. */
#define RESP_DRAIN_MS 5000

/* The parsed [frontend.resp] section (see the table in resp.c). */
struct resp_opts {
    char *unix_socket;
    int unix_socket_mode;
    char *tcp;
    int64_t threads;
    int64_t maxclients;
    char *requirepass;
    int64_t timeout_ms;
    uint64_t max_bulk_len;
    int64_t max_args;
    uint64_t max_inline_len;
    uint64_t query_buffer_limit;
    uint64_t output_buffer_limit;
    int64_t output_stall_ms;
};

/* A growable byte buffer. */
struct resp_buf {
    char *p;
    size_t len;
    size_t cap;
};

enum resp_conn_flag {
    RESP_CONN_TCP = 1u << 0,         /* accepted on the TCP listener */
    RESP_CONN_CLOSE_AFTER = 1u << 1, /* close once o is written */
    RESP_CONN_BROKEN = 1u << 2,      /* I/O error or no memory: close now */
    RESP_CONN_READING = 1u << 3,     /* the read event is armed */
    RESP_CONN_WRITING = 1u << 4,     /* the write event is armed */
    RESP_CONN_PENDING = 1u << 5,     /* on the worker's pending-write list */
};

struct resp_worker;

/* One client connection; owned by its worker thread. */
struct resp_conn {
    struct resp_worker *w;
    int fd;
    unsigned flags;   /* enum resp_conn_flag */
    int proto;        /* the session's version (2 or 3): the proto op */
    struct event rev; /* EV_READ | EV_PERSIST */
    struct event wev; /* EV_WRITE | EV_PERSIST */
    kvd_session *sess;
    struct resp_parser parser;
    struct resp_buf q;      /* bytes received but not yet run */
    struct resp_buf o;      /* replies not yet written ... */
    size_t o_off;           /* ... from this offset on */
    int64_t last_in_ms;     /* last byte received (idle timeout) */
    int64_t last_out_ms;    /* last reply byte the socket took */
    struct resp_conn *prev; /* the worker's connection list */
    struct resp_conn *next;
    struct resp_conn *pend_prev; /* the worker's pending-write list */
    struct resp_conn *pend_next;
    /* Its commands waiting in the worker's pass, and its slot in the
     * worker's qconns while that is not 0. */
    unsigned nqueued;
    size_t qslot;
};

struct resp_fe;

struct resp_listener {
    struct resp_fe *fe;
    int fd; /* -1 when closed */
    int is_tcp;
    struct event ev;
};

struct resp_worker {
    struct resp_fe *fe;
    unsigned id;
    pthread_t thread;
    int started;
    struct event_base *base;
    int wake_fd; /* eventfd: hand-offs and stop */
    struct event wake_ev;
    struct event cron_ev;
    int stop_seen;
    int64_t drain_deadline_ms;

    /* Hand-off queue of accepted fds; `lock` guards these three. */
    pthread_mutex_t lock;
    int *handoff;
    size_t nhandoff;
    size_t handoff_cap;

    struct resp_conn *conns; /* this thread's connections */
    size_t nconns;
    /* Connections whose replies are written once every ready event of
     * this loop iteration has run (see worker_main). */
    struct resp_conn *pending;
    int exiting;          /* leave the loop after this iteration */
    struct resp_buf rbuf; /* read buffer */
    struct resp_buf wbuf; /* replies not yet moved to out's o */
    /* The connection whose replies wbuf holds; NULL between events (every
     * event handler moves them out before it returns). */
    struct resp_conn *out;
    char *split_buf; /* inline requests are split here */
    /* The command layer's pass of this thread (NULL: the engine gains
     * nothing from gathering, every command runs at once). `queued` is
     * pass_pending as last seen; qconns lists the connections with
     * nqueued > 0, so a run of the pass can zero them. */
    kvd_cmd_pass *pass;
    size_t queued;
    struct resp_conn **qconns;
    size_t nqconns;
    size_t qconns_cap;
    unsigned next_worker; /* worker 0: round-robin cursor */
};

/* Whether a kvd_cmd_api (appended to within ABI 1) has method m: the
 * host's table may be older than this frontend's header. */
#define RESP_API_HAS(api, m)                                                   \
    (KVD_HAS(api, struct kvd_cmd_api, m) && (api)->m != NULL)

struct resp_fe {
    const struct kvd_host *host;
    const struct kvd_server *srv;
    const struct resp_opts *opts;
    struct resp_limits limits;
    const char *password; /* requirepass (in opts), NULL when empty */
    size_t password_len;

    struct resp_listener unix_l;
    struct resp_listener tcp_l;
    char *unix_path;   /* NULL when no Unix socket was bound */
    dev_t unix_dev;    /* identity of the socket file we created, so */
    ino_t unix_ino;    /* shutdown never unlinks another server's */
    char tcp_desc[96]; /* "127.0.0.1:6379", for logs */

    unsigned nworkers;
    struct resp_worker *workers;
    atomic_int stopping;
    atomic_long nclients;
};

/* resp_reply.c: the encoder and the output side of connections */
extern const struct kvd_reply_ops resp_reply_ops;
int resp_buf_reserve(struct resp_buf *b, size_t extra);
void resp_buf_free(struct resp_buf *b);
/* Append "-ERR <msg>\r\n" to the connection's replies (protocol
 * errors; the caller runs the pass first if the connection has commands
 * waiting there, so the error comes after their replies). */
void resp_reply_error_str(struct resp_conn *c, const char *msg);
/* Move the replies in the worker's write buffer to their connection's o,
 * and put that connection on the pending-write list if it has output (or
 * broke). Leaves w->out NULL. */
void resp_out_flush(struct resp_worker *w);
/* The worker's pending-write list (written once every ready event of the
 * loop iteration has run). */
void resp_conn_pend(struct resp_conn *c);
void resp_conn_unpend(struct resp_conn *c);

/* resp_net.c */
int resp_net_listen(struct resp_fe *fe, struct kvd_err *err);
int resp_net_start(struct resp_fe *fe, struct kvd_err *err);
void resp_net_stop(struct resp_fe *fe);
void resp_net_destroy(struct resp_fe *fe);

#endif /* KVD_RESP_H */
