/*
 * frontends/http/http_cmd.c -- the http routes run commands of the
 * shared command layer: one session per connection (opened at its first
 * command, closed with it), each command's reply recorded by the encoder
 * of http_reply.c, and errors answered by the kvd status behind them
 * (http_send_status, the one table), never by their text.
 *
 * Sessions are trusted (the bearer token is HTTP's authentication, checked
 * before any command), atomic in EXEC (a transaction whose command fails
 * applies nothing: HTTP's writes are all or nothing) and have no pass: an
 * HTTP request waits for its replies, so there is nothing to gather
 * across connections. Everything here runs on the worker that owns the
 * connection.
 */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const struct kvd_cmd_api *
cmd_api(const struct http_req *r)
{
    return r->fe->srv->cmd_api;
}

int
http_cmd_available(const struct kvd_server *srv)
{
    const struct kvd_cmd_api *api = srv->cmd_api;

    return srv->cmd != NULL && api != NULL &&
           api->struct_size >= offsetof(struct kvd_cmd_api, session_open) +
                                   sizeof(api->session_open) &&
           api->struct_size >=
               offsetof(struct kvd_cmd_api, call) + sizeof(api->call) &&
           api->session_open != NULL && api->call != NULL;
}

/* "ip:port" or "[v6]:port" of a socket's end (peer: getpeername, else
 * getsockname), for CLIENT LIST; "" when it cannot be had. */
static void
sock_name(int fd, int peer, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN];
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
                  : getsockname(fd, (struct sockaddr *)&ss, &sl);

    out[0] = '\0';
    if (rc != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip)) != NULL) {
            snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
        }
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip)) != NULL) {
            snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
        }
    }
}

/* Open the connection's session, once (at its first command). */
static int
session_ready(struct http_req *r)
{
    struct kvd_session_info info;
    char addr[INET6_ADDRSTRLEN + 8], laddr[INET6_ADDRSTRLEN + 8];

    if (r->sess != NULL) {
        return 0;
    }
    sock_name(r->fd, 1, addr, sizeof(addr));
    sock_name(r->fd, 0, laddr, sizeof(laddr));
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    info.frontend = "http";
    /* Trusted: the bearer token was checked. All or nothing: a
     * transaction with a failing command applies nothing (POST /kv?ttl=,
     * /txn, conditional writes). */
    info.flags = KVD_SESSION_TRUSTED | KVD_SESSION_ATOMIC_EXEC;
    info.ops = &http_reply_ops;
    info.ops_size = sizeof(http_reply_ops);
    info.w = &r->rep;
    info.pass = NULL;
    info.addr = addr[0] ? addr : NULL;
    info.laddr = laddr[0] ? laddr : NULL;
    info.fd = r->fd;
    r->sess = cmd_api(r)->session_open(r->fe->srv->cmd, &info);
    return r->sess != NULL ? 0 : KVD_ENOMEM;
}

const struct http_rnode *
http_call(struct http_req *r, size_t argc, const char *const *argv,
          const size_t *argl)
{
    if (session_ready(r) != 0) {
        return NULL;
    }
    http_reply_reset(&r->rep);
    cmd_api(r)->call(r->sess, argc, argv, argl);
    if (r->rep.failed || r->rep.root == NULL || r->rep.depth != 0) {
        /* The command ran but its reply was lost (no memory): what state
         * it left the session in (inside MULTI, watching) is unknown, so
         * the next command gets a new session. */
        cmd_api(r)->session_destroy(r->sess);
        r->sess = NULL;
        return NULL;
    }
    return r->rep.root;
}

int
http_cmd_error_of(const struct http_rnode *e, const char **text)
{
    *text = e->p;
    /* "ERR invalid expire time ..." -> "invalid expire time ...": the
     * HTTP answer carries the status in its code, not in a prefix. */
    if (e->n >= 4 && memcmp(e->p, "ERR ", 4) == 0) {
        *text += 4;
    }
    return e->status != 0 ? e->status : KVD_EINVAL;
}

void
http_send_cmd_error(struct http_req *r, const struct http_rnode *e,
                    int key_only)
{
    const char *text;
    int rc = http_cmd_error_of(e, &text);

    http_send_status(r, rc, key_only, text);
}

int
http_expect(struct http_req *r, const struct http_rnode *n, int key_only,
            int t1, int t2)
{
    if (n == NULL) {
        http_send_oom(r);
        return 0;
    }
    if (n->type == t1 || n->type == t2) {
        return 1;
    }
    if (n->type == HTTP_R_ERROR) {
        http_send_cmd_error(r, n, key_only);
    } else {
        http_send_unexpected(r, n);
    }
    return 0;
}

void
http_call0(struct http_req *r, const char *cmd)
{
    const char *argv[1] = {cmd};
    size_t argl[1] = {strlen(cmd)};

    (void)http_call(r, 1, argv, argl);
}

void
http_send_unexpected(struct http_req *r, const struct http_rnode *n)
{
    r->fe->host->log(r->fe->host, KVD_LOG_WARN,
                     "http: %s %s: unexpected reply of type %d", r->method,
                     r->uri, n->type);
    http_send_error(r, 500, "internal error: unexpected reply");
}

void
http_cmd_release(struct http_req *r)
{
    if (r->sess != NULL) {
        cmd_api(r)->session_destroy(r->sess);
        r->sess = NULL;
    }
    http_reply_release(&r->rep);
}
