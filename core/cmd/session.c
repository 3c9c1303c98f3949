/*
 * core/cmd/session.c -- sessions: everything the command layer keeps per
 * client.
 *
 * A session holds the client's protocol version, authentication, names,
 * addresses, its frontend's encoder and pass, and (multi.c) its MULTI
 * queue and watched keys. Frontends hold the opaque handle and never read
 * the state back: protocol changes reach their encoder through its proto
 * member.
 *
 * Every session is on the layer's list (cmd->sess_head, under sess_lock)
 * so CLIENT LIST can show them all; the fields CLIENT LIST reads from
 * other threads are written under sess_lock or are atomics (cmd_int.h).
 * Creating the first session of a frontend name registers its counters
 * (cmd.c, under sess_lock too).
 */
#include "core/cmd.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cmd/cmd_int.h"

/* Copy an address, cut to the field (NULL: ""). */
static void
session_copy_addr(char dst[KVD_CMD_ADDR_MAX], const char *src)
{
    snprintf(dst, KVD_CMD_ADDR_MAX, "%s", src != NULL ? src : "");
}

static kvd_session *
session_new(kvd_cmd *c, const char *frontend, unsigned flags)
{
    kvd_session *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->cmd = c;
    s->id =
        atomic_fetch_add_explicit(&c->next_client_id, 1, memory_order_relaxed) +
        1;
    s->flags = flags;
    s->pass = c->requirepass;
    s->pass_len = c->requirepass_len;
    s->authed = kvd_cmd_session_auth_free(s);
    atomic_init(&s->proto, 2);
    atomic_init(&s->mqueued, -1);
    s->fd = -1;
    s->created_ms = kvd_cmd_mono_ms();
    atomic_init(&s->last_ms, s->created_ms);
    atomic_init(&s->last_ent, NULL);
    snprintf(s->frontend, sizeof(s->frontend), "%s",
             frontend != NULL ? frontend : "");
    return s;
}

/* Put s on the layer's list and give it its frontend's counters. */
static int
session_register(kvd_session *s)
{
    kvd_cmd *c = s->cmd;

    pthread_mutex_lock(&c->sess_lock);
    s->ctr = kvd_cmd_frontend_counters_locked(
        c, s->frontend[0] ? s->frontend : KVD_CMD_FRONTEND_UNKNOWN);
    if (s->ctr == NULL) {
        pthread_mutex_unlock(&c->sess_lock);
        return KVD_ENOMEM;
    }
    s->next = c->sess_head;
    if (c->sess_head != NULL) {
        c->sess_head->prev = s;
    }
    c->sess_head = s;
    pthread_mutex_unlock(&c->sess_lock);
    atomic_fetch_add_explicit(&c->clients_connected, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->clients_total, 1, memory_order_relaxed);
    return 0;
}

kvd_session *
kvd_cmd_session_create(kvd_cmd *c, const char *frontend, unsigned flags)
{
    kvd_session *s = session_new(c, frontend, flags);

    if (s == NULL) {
        return NULL;
    }
    if (session_register(s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

kvd_session *
kvd_cmd_session_open(kvd_cmd *c, const struct kvd_session_info *info)
{
    kvd_session *s;

    if (info == NULL ||
        info->struct_size < offsetof(struct kvd_session_info, password_len) +
                                sizeof(info->password_len)) {
        return NULL; /* no later member is appended yet: all are needed */
    }
    s = session_new(c, info->frontend, info->flags);
    if (s == NULL) {
        return NULL;
    }
    kvd_cmd_enc_init(&s->enc, info->ops, info->ops_size, info->w);
    s->cpass = info->pass;
    session_copy_addr(s->addr, info->addr);
    session_copy_addr(s->laddr, info->laddr);
    s->fd = info->fd;
    if (info->password != NULL && info->password_len > 0) {
        kvd_cmd_session_set_password(s, info->password, info->password_len);
        if (s->pass_locked) {
            free(s);
            return NULL; /* out of memory: fail closed */
        }
    }
    if (session_register(s) != 0) {
        free(s->pass_copy);
        free(s);
        return NULL;
    }
    return s;
}

void
kvd_cmd_session_destroy(kvd_session *s)
{
    if (s == NULL) {
        return;
    }
    kvd_cmd *c = s->cmd;
    if (s->queued > 0) {
        kvd_cmd_pass_forget(s->cpass, s);
    }
    kvd_cmd_multi_release(s);
    pthread_mutex_lock(&c->sess_lock);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        c->sess_head = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&c->sess_lock);
    atomic_fetch_sub_explicit(&c->clients_connected, 1, memory_order_relaxed);
    free(s->pass_copy);
    free(s);
}

void
kvd_cmd_session_set_password(kvd_session *s, const char *password, size_t len)
{
    free(s->pass_copy);
    s->pass_copy = NULL;
    s->pass_locked = false;
    s->pass = s->cmd->requirepass;
    s->pass_len = s->cmd->requirepass_len;
    if (password != NULL && len > 0) {
        s->pass_copy = malloc(len);
        if (s->pass_copy != NULL) {
            memcpy(s->pass_copy, password, len);
            s->pass = s->pass_copy;
            s->pass_len = len;
        } else {
            /* Out of memory: refuse every AUTH rather than let the
             * session in without the password it was meant to need. */
            s->pass = NULL;
            s->pass_len = 0;
            s->pass_locked = true;
        }
    }
    s->authed = kvd_cmd_session_auth_free(s);
}

int
kvd_cmd_session_proto(const kvd_session *s)
{
    return kvd_cmd_proto(s);
}

bool
kvd_cmd_session_has_password(const kvd_session *s)
{
    return s->pass != NULL || s->pass_locked;
}

bool
kvd_cmd_session_auth_free(const kvd_session *s)
{
    return (s->flags & KVD_SESSION_TRUSTED) || !kvd_cmd_session_has_password(s);
}

bool
kvd_cmd_password_ok(const kvd_session *s, const char *p, size_t n)
{
    unsigned char diff;

    if (s->pass == NULL) {
        return false; /* none, or locked after a failed copy */
    }
    /* Every byte of the attempt is compared, whatever matched before, and
     * the loop runs over the attempt's length (which the client knows):
     * the time shows neither where the first difference is nor the
     * password's length. pass_len > 0 here, so pass[0] is readable. */
    diff = (unsigned char)(n != s->pass_len);
    for (size_t i = 0; i < n; i++) {
        unsigned char want = (unsigned char)s->pass[i < s->pass_len ? i : 0];
        diff |= (unsigned char)(want ^ (unsigned char)p[i]);
    }
    return diff == 0;
}

int
kvd_cmd_session_tcp_port(const kvd_session *s)
{
    const char *a = s->laddr;
    const char *colon = strrchr(a, ':');
    long port = 0;

    /* TCP addresses are "1.2.3.4:port" or "[v6]:port"; anything else
     * (a socket path, "" for stdin) is not a TCP connection. */
    if (colon == NULL || colon[1] == '\0' ||
        !(a[0] == '[' || (a[0] >= '0' && a[0] <= '9'))) {
        return 0;
    }
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            return 0;
        }
        port = port * 10 + (*p - '0');
    }
    return port <= 65535 ? (int)port : 0;
}

void
kvd_cmd_session_line(struct kvd_cmd_buf *b, const kvd_session *s, int64_t now)
{
    int64_t last = atomic_load_explicit(&s->last_ms, memory_order_relaxed);
    int mq = atomic_load_explicit(&s->mqueued, memory_order_relaxed);
    const struct kvd_cmd_entry *ent =
        atomic_load_explicit(&s->last_ent, memory_order_relaxed);
    char flags[4];
    size_t nf = 0;

    /* Redis's flags that apply to kvd: x in MULTI, U on a Unix socket. */
    if (mq >= 0) {
        flags[nf++] = 'x';
    }
    if (s->laddr[0] != '\0' && kvd_cmd_session_tcp_port(s) == 0) {
        flags[nf++] = 'U';
    }
    if (nf == 0) {
        flags[nf++] = 'N';
    }
    flags[nf] = '\0';
    /* Redis 7.2's fields in Redis's order, without the buffer and event
     * fields (qbuf ... events): the frontend holds the buffers, and kvd
     * reports no figure it does not have. */
    kvd_cmd_buf_printf(
        b,
        "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s "
        "db=0 sub=0 psub=0 ssub=0 multi=%d cmd=%s user=default redir=-1 "
        "resp=%d lib-name=%s lib-ver=%s\n",
        (unsigned long long)s->id, s->addr, s->laddr, s->fd, s->name,
        (long long)((now - s->created_ms) / 1000),
        (long long)((now - last) / 1000), flags, mq,
        ent != NULL ? ent->fullname : "NULL", kvd_cmd_proto(s), s->lib_name,
        s->lib_ver);
}

uint64_t
kvd_cmd_clients_connected(kvd_cmd *c)
{
    return atomic_load_explicit(&c->clients_connected, memory_order_relaxed);
}

uint64_t
kvd_cmd_clients_total(kvd_cmd *c)
{
    return atomic_load_explicit(&c->clients_total, memory_order_relaxed);
}

int
kvd_cmd_frontend_clients(kvd_cmd *c, kvd_cmd_client_fn fn, void *ctx)
{
    uint64_t n[KVD_CMD_FRONTENDS] = {0};
    unsigned nfe;

    /* Count under the lock, report without it: fn may be slow or call
     * the layer. A session's ctr is one of fe_ctr[0..nfrontends). */
    pthread_mutex_lock(&c->sess_lock);
    nfe = atomic_load_explicit(&c->nfrontends, memory_order_acquire);
    for (const kvd_session *s = c->sess_head; s != NULL; s = s->next) {
        for (unsigned f = 0; f < nfe; f++) {
            if (s->ctr == c->fe_ctr[f]) {
                n[f]++;
                break;
            }
        }
    }
    pthread_mutex_unlock(&c->sess_lock);
    for (unsigned f = 0; f < nfe; f++) {
        fn(ctx, c->fe_name[f], n[f]);
    }
    return (int)nfe;
}
