/*
 * tools/txbench/txbench.c -- transactions per second of a Redis-protocol
 * server: N clients each keep P whole transactions in flight
 * (MULTI, K x SET key value, EXEC), written back to back and read back as
 * they come.
 *
 * redis-benchmark measures single commands (and MULTI only as one extra
 * command around nothing); this measures what a transactional client
 * does, the same way against kvd and redis-server, so the two can be
 * compared in one run (tests/e2e/resp_tx_bench.sh).
 *
 * One thread, one poll() loop over every client's socket; requests are
 * formatted here (RESP multibulk) and replies parsed by hiredis's reply
 * reader. Every EXEC reply is checked: an array of K "OK" (anything else,
 * a null array or an error, is reported and ends the run with status 1).
 *
 * usage: txbench [-s SOCKET | -h HOST -p PORT] [-c CLIENTS] [-n TX]
 *                [-P PIPELINE] [-k SETS] [-r KEYSPACE] [-d BYTES] [-q]
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

struct tb_opts {
    const char *sock;
    const char *host;
    const char *port;
    int clients;
    long total;   /* transactions */
    int pipeline; /* transactions in flight per client */
    int sets;     /* SETs per transaction */
    long keyspace;
    int vsize;
    int quiet;
};

struct tb_client {
    int fd;
    redisReader *rd;
    char *out; /* requests not yet written */
    size_t out_len;
    size_t out_off;
    size_t out_cap;
    int inflight;  /* transactions sent, EXEC not yet answered */
    int replies;   /* replies of the current transaction read so far */
    uint64_t seed; /* key choice */
};

static void
tb_die(const char *what)
{
    fprintf(stderr, "txbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double
tb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
tb_connect(const struct tb_opts *o)
{
    int fd;

    if (o->sock != NULL) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(o->sock) >= sizeof(sa.sun_path)) {
            fprintf(stderr, "txbench: socket path too long\n");
            exit(1);
        }
        strcpy(sa.sun_path, o->sock);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            tb_die(o->sock);
        }
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
        int one = 1;
        int rc = getaddrinfo(o->host, o->port, &hints, &ai);
        if (rc != 0) {
            fprintf(stderr, "txbench: %s:%s: %s\n", o->host, o->port,
                    gai_strerror(rc));
            exit(1);
        }
        fd = socket(ai->ai_family, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            tb_die("connect");
        }
        freeaddrinfo(ai);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        tb_die("fcntl");
    }
    return fd;
}

static void
tb_put(struct tb_client *c, const void *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
        while (cap < c->out_len + n) {
            cap *= 2;
        }
        c->out = realloc(c->out, cap);
        if (c->out == NULL) {
            tb_die("realloc");
        }
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void
tb_put_bulk(struct tb_client *c, const char *p, size_t n)
{
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);

    tb_put(c, hdr, (size_t)h);
    tb_put(c, p, n);
    tb_put(c, "\r\n", 2);
}

/* MULTI, sets x SET key value, EXEC. */
static void
tb_queue_tx(struct tb_client *c, const struct tb_opts *o, const char *val)
{
    static const char multi[] = "*1\r\n$5\r\nMULTI\r\n";
    static const char exec[] = "*1\r\n$4\r\nEXEC\r\n";
    char key[32];

    tb_put(c, multi, sizeof(multi) - 1);
    for (int i = 0; i < o->sets; i++) {
        c->seed = c->seed * 6364136223846793005ull + 1442695040888963407ull;
        long k = (long)((c->seed >> 33) % (uint64_t)o->keyspace);
        int kl = snprintf(key, sizeof(key), "key:%012ld", k);
        tb_put(c, "*3\r\n$3\r\nSET\r\n", 13);
        tb_put_bulk(c, key, (size_t)kl);
        tb_put_bulk(c, val, (size_t)o->vsize);
    }
    tb_put(c, exec, sizeof(exec) - 1);
    c->inflight++;
}

/* One reply of c's oldest transaction: returns 1 when it completed it. */
static int
tb_reply(struct tb_client *c, const struct tb_opts *o, redisReply *r)
{
    int last = c->replies == o->sets + 1;

    if (!last) {
        /* +OK for MULTI, +QUEUED for each SET */
        if (r->type != REDIS_REPLY_STATUS) {
            fprintf(stderr, "txbench: unexpected reply %d: %s\n", r->type,
                    r->type == REDIS_REPLY_ERROR ? r->str : "");
            exit(1);
        }
        c->replies++;
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)o->sets) {
        fprintf(stderr, "txbench: EXEC answered type %d (%s)\n", r->type,
                r->type == REDIS_REPLY_ERROR ? r->str : "not the array");
        exit(1);
    }
    c->replies = 0;
    c->inflight--;
    return 1;
}

static void
tb_usage(void)
{
    fprintf(stderr, "usage: txbench [-s SOCKET | -h HOST -p PORT] [-c CLIENTS] "
                    "[-n TRANSACTIONS]\n"
                    "               [-P IN_FLIGHT_PER_CLIENT] [-k SETS_PER_TX] "
                    "[-r KEYSPACE] [-d VALUE_BYTES] [-q]\n");
    exit(2);
}

static void
tb_parse(int argc, char **argv, struct tb_opts *o)
{
    *o = (struct tb_opts){
        .host = "127.0.0.1",
        .port = "6379",
        .clients = 50,
        .total = 100000,
        .pipeline = 1,
        .sets = 2,
        .keyspace = 100000,
        .vsize = 100,
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-q") == 0) {
            o->quiet = 1;
            continue;
        }
        if (v == NULL || a[0] != '-' || a[1] == '\0' || a[2] != '\0') {
            tb_usage();
        }
        i++;
        switch (a[1]) {
        case 's':
            o->sock = v;
            break;
        case 'h':
            o->host = v;
            break;
        case 'p':
            o->port = v;
            break;
        case 'c':
            o->clients = atoi(v);
            break;
        case 'n':
            o->total = atol(v);
            break;
        case 'P':
            o->pipeline = atoi(v);
            break;
        case 'k':
            o->sets = atoi(v);
            break;
        case 'r':
            o->keyspace = atol(v);
            break;
        case 'd':
            o->vsize = atoi(v);
            break;
        default:
            tb_usage();
        }
    }
    if (o->clients < 1 || o->total < 1 || o->pipeline < 1 || o->sets < 1 ||
        o->keyspace < 1 || o->vsize < 0) {
        tb_usage();
    }
}

int
main(int argc, char **argv)
{
    struct tb_opts o;
    struct tb_client *cs;
    struct pollfd *pf;
    char *val;
    long issued = 0, done = 0;
    char buf[64 * 1024];
    double t0, t1;

    tb_parse(argc, argv, &o);
    cs = calloc((size_t)o.clients, sizeof(*cs));
    pf = calloc((size_t)o.clients, sizeof(*pf));
    val = malloc((size_t)o.vsize + 1);
    if (cs == NULL || pf == NULL || val == NULL) {
        tb_die("calloc");
    }
    memset(val, 'x', (size_t)o.vsize);
    for (int i = 0; i < o.clients; i++) {
        cs[i].fd = tb_connect(&o);
        cs[i].rd = redisReaderCreate();
        cs[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    }
    t0 = tb_now();
    while (done < o.total) {
        for (int i = 0; i < o.clients; i++) {
            struct tb_client *c = &cs[i];
            while (c->inflight < o.pipeline && issued < o.total) {
                tb_queue_tx(c, &o, val);
                issued++;
            }
            pf[i].fd = c->fd;
            pf[i].events = POLLIN | (c->out_off < c->out_len ? POLLOUT : 0);
            pf[i].revents = 0;
        }
        if (poll(pf, (nfds_t)o.clients, 10000) <= 0) {
            fprintf(stderr, "txbench: no reply for 10 s (%ld of %ld done)\n",
                    done, o.total);
            return 1;
        }
        for (int i = 0; i < o.clients; i++) {
            struct tb_client *c = &cs[i];
            if (pf[i].revents & POLLOUT) {
                ssize_t n =
                    write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
                if (n < 0 && errno != EAGAIN) {
                    tb_die("write");
                }
                if (n > 0) {
                    c->out_off += (size_t)n;
                }
                if (c->out_off == c->out_len) {
                    c->out_off = c->out_len = 0;
                }
            }
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = read(c->fd, buf, sizeof(buf));
                void *r;
                if (n == 0) {
                    fprintf(stderr, "txbench: the server closed a "
                                    "connection\n");
                    return 1;
                }
                if (n < 0) {
                    if (errno == EAGAIN) {
                        continue;
                    }
                    tb_die("read");
                }
                redisReaderFeed(c->rd, buf, (size_t)n);
                while (redisReaderGetReply(c->rd, &r) == REDIS_OK &&
                       r != NULL) {
                    done += tb_reply(c, &o, r);
                    freeReplyObject(r);
                }
            }
        }
    }
    t1 = tb_now();
    if (o.quiet) {
        printf("%.0f\n", (double)o.total / (t1 - t0));
    } else {
        printf("txbench: %ld transactions (MULTI, %d x SET, EXEC) by %d "
               "clients, %d in flight each: %.3f s, %.0f transactions/s, "
               "%.0f commands/s\n",
               o.total, o.sets, o.clients, o.pipeline, t1 - t0,
               (double)o.total / (t1 - t0),
               (double)o.total * (o.sets + 2) / (t1 - t0));
    }
    for (int i = 0; i < o.clients; i++) {
        close(cs[i].fd);
        redisReaderFree(cs[i].rd);
        free(cs[i].out);
    }
    free(cs);
    free(pf);
    free(val);
    return 0;
}
