/*
 * core/cmd/cmds_conn.c -- connection commands: PING, ECHO, QUIT, RESET,
 * AUTH, HELLO, SELECT, CLIENT.
 *
 * These are what Redis clients send on connect (redis-cli, client
 * libraries), answered with Redis's reply shapes and error texts. HELLO 2
 * and HELLO 3 choose the session's protocol version, which reaches the
 * frontend's encoder through kvd_cmd_set_proto() before the reply (so
 * the reply is in the new version). AUTH checks the session's password
 * (the layer's requirepass, or one the frontend set).
 *
 * Thread-safety: handlers use their context and the session; names are
 * written and CLIENT LIST reads every session under cmd->sess_lock.
 */
#include "core/cmd/cmd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- connection -------------------------------------------------------------
 */

static void
conn_ping(struct kvd_cmd_ctx *x)
{
    if (x->argc > 2) {
        kvd_cmd_reply_arity(x);
    } else if (x->argc == 2) {
        kvd_cmd_reply_bulk(x, x->argv[1], x->argl[1]);
    } else {
        kvd_cmd_reply_status(x, "PONG");
    }
}

static void
conn_echo(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_bulk(x, x->argv[1], x->argl[1]);
}

static void
conn_quit(struct kvd_cmd_ctx *x)
{
    x->result |= KVD_EXEC_CLOSE;
    kvd_cmd_reply_ok(x);
}

static void
conn_set_name(kvd_session *s, char *dst, size_t cap, const char *p, size_t n)
{
    pthread_mutex_lock(&s->cmd->sess_lock);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    pthread_mutex_unlock(&s->cmd->sess_lock);
}

static void
conn_reset(struct kvd_cmd_ctx *x)
{
    kvd_session *s = x->sess;

    conn_set_name(s, s->name, sizeof(s->name), "", 0);
    kvd_cmd_multi_reset(s); /* out of MULTI, every watch dropped */
    /* Back to RESP2 (Redis answers RESET in the protocol the client was
     * speaking; +RESET is the same in both). The password requirement
     * stays: only the authentication is dropped. */
    kvd_cmd_set_proto(x, 2);
    s->authed = kvd_cmd_session_auth_free(s);
    kvd_cmd_reply_status(x, "RESET");
}

/* AUTH [username] password; the only user is "default". */
static bool
conn_authenticate(struct kvd_cmd_ctx *x, size_t user_arg, size_t pass_arg)
{
    if (user_arg != 0 &&
        !kvd_cmd_word_eq(x->argv[user_arg], x->argl[user_arg], "default")) {
        return false;
    }
    if (!kvd_cmd_session_has_password(x->sess)) {
        return true; /* the default user takes any password */
    }
    return kvd_cmd_password_ok(x->sess, x->argv[pass_arg], x->argl[pass_arg]);
}

#define CONN_ERR_WRONGPASS                                                     \
    "WRONGPASS invalid username-password pair or user is disabled."

static void
conn_auth(struct kvd_cmd_ctx *x)
{
    if (x->argc > 3) {
        kvd_cmd_reply_syntax(x);
        return;
    }
    if (x->argc == 2 && !kvd_cmd_session_has_password(x->sess)) {
        kvd_cmd_reply_error(
            x, "ERR AUTH <password> called without any password configured "
               "for the default user. Are you sure your configuration is "
               "correct?");
        return;
    }
    bool ok =
        x->argc == 2 ? conn_authenticate(x, 0, 1) : conn_authenticate(x, 1, 2);
    if (!ok) {
        kvd_cmd_reply_error_as(x, KVD_ENOAUTH, CONN_ERR_WRONGPASS);
        return;
    }
    x->sess->authed = true;
    kvd_cmd_reply_ok(x);
}

/* Client names and library names: printable ASCII without spaces. */
static bool
conn_name_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '!' || p[i] > '~') {
            return false;
        }
    }
    return true;
}

#define CONN_ERR_BAD_NAME                                                      \
    "ERR Client names cannot contain spaces, newlines or special characters."

static void
conn_hello(struct kvd_cmd_ctx *x)
{
    kvd_session *s = x->sess;
    long long ver = 0; /* 0: keep the current version */
    size_t user = 0;
    size_t name = 0;

    if (x->argc >= 2) {
        if (!kvd_cmd_parse_ll(x->argv[1], x->argl[1], &ver)) {
            kvd_cmd_reply_error(x, "ERR Protocol version is not an integer "
                                   "or out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            kvd_cmd_reply_error(x, "NOPROTO unsupported protocol version");
            return;
        }
    }
    for (size_t j = 2; j < x->argc; j++) {
        size_t more = x->argc - 1 - j;
        if (kvd_cmd_arg_is(x, j, "auth") && more >= 2) {
            user = j + 1;
            j += 2;
        } else if (kvd_cmd_arg_is(x, j, "setname") && more >= 1) {
            name = j + 1;
            if (!conn_name_ok(x->argv[name], x->argl[name])) {
                kvd_cmd_reply_error(x, CONN_ERR_BAD_NAME);
                return;
            }
            j++;
        } else {
            const char *z = memchr(x->argv[j], '\0', x->argl[j]);
            int n = z ? (int)(z - x->argv[j]) : (int)x->argl[j];
            kvd_cmd_reply_errorf(x, "ERR Syntax error in HELLO option '%.*s'",
                                 n < 128 ? n : 128, x->argv[j]);
            return;
        }
    }
    if (user != 0) {
        if (!conn_authenticate(x, user, user + 1)) {
            kvd_cmd_reply_error_as(x, KVD_ENOAUTH, CONN_ERR_WRONGPASS);
            return;
        }
        s->authed = true;
    }
    if (!s->authed) {
        kvd_cmd_reply_error_as(
            x, KVD_ENOAUTH,
            "NOAUTH HELLO must be called with the client already "
            "authenticated, otherwise the HELLO <proto> AUTH <user> "
            "<pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time");
        return;
    }
    if (name != 0) {
        conn_set_name(s, s->name, sizeof(s->name), x->argv[name],
                      x->argl[name]);
    }
    /* Switch before replying: the reply itself is in the new version (a
     * map in RESP3), which is how a client learns the switch happened. A
     * refused HELLO above changes nothing. */
    if (ver != 0) {
        kvd_cmd_set_proto(x, (int)ver);
    }
    kvd_cmd_reply_map(x, 7);
    kvd_cmd_reply_cstr(x, "server");
    kvd_cmd_reply_cstr(x, "kvd");
    kvd_cmd_reply_cstr(x, "version");
    kvd_cmd_reply_cstr(x, x->cmd->version);
    kvd_cmd_reply_cstr(x, "proto");
    kvd_cmd_reply_int(x, kvd_cmd_proto(s));
    kvd_cmd_reply_cstr(x, "id");
    kvd_cmd_reply_int(x, (long long)s->id);
    kvd_cmd_reply_cstr(x, "mode");
    kvd_cmd_reply_cstr(x, "standalone");
    kvd_cmd_reply_cstr(x, "role");
    kvd_cmd_reply_cstr(x, "master");
    kvd_cmd_reply_cstr(x, "modules");
    kvd_cmd_reply_array(x, 0);
}

/* kvd has one database, 0. */
static void
conn_select(struct kvd_cmd_ctx *x)
{
    long long db;

    if (!kvd_cmd_parse_ll(x->argv[1], x->argl[1], &db) || db < INT32_MIN ||
        db > INT32_MAX) {
        kvd_cmd_reply_not_int(x);
        return;
    }
    if (db != 0) {
        kvd_cmd_reply_error(x, KVD_CMD_ERR_DB_RANGE);
        return;
    }
    kvd_cmd_reply_ok(x);
}

/* --- CLIENT
 * -------------------------------------------------------------------- */

static void
conn_client_id(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_int(x, (long long)x->sess->id);
}

static void
conn_client_getname(struct kvd_cmd_ctx *x)
{
    if (x->sess->name[0] == '\0') {
        kvd_cmd_reply_null(x);
    } else {
        kvd_cmd_reply_cstr(x, x->sess->name);
    }
}

static void
conn_client_setname(struct kvd_cmd_ctx *x)
{
    if (!conn_name_ok(x->argv[2], x->argl[2])) {
        kvd_cmd_reply_error(x, CONN_ERR_BAD_NAME);
        return;
    }
    conn_set_name(x->sess, x->sess->name, sizeof(x->sess->name), x->argv[2],
                  x->argl[2]);
    kvd_cmd_reply_ok(x);
}

static void
conn_client_setinfo(struct kvd_cmd_ctx *x)
{
    kvd_session *s = x->sess;
    bool is_name = kvd_cmd_arg_is(x, 2, "lib-name");

    if (!is_name && !kvd_cmd_arg_is(x, 2, "lib-ver")) {
        const char *z = memchr(x->argv[2], '\0', x->argl[2]);
        int n = z ? (int)(z - x->argv[2]) : (int)x->argl[2];
        kvd_cmd_reply_errorf(x, "ERR Unrecognized option '%.*s'",
                             n < 128 ? n : 128, x->argv[2]);
        return;
    }
    if (!conn_name_ok(x->argv[3], x->argl[3])) {
        kvd_cmd_reply_errorf(x,
                             "ERR %s cannot contain spaces, newlines or "
                             "special characters.",
                             is_name ? "lib-name" : "lib-ver");
        return;
    }
    if (is_name) {
        conn_set_name(s, s->lib_name, sizeof(s->lib_name), x->argv[3],
                      x->argl[3]);
    } else {
        conn_set_name(s, s->lib_ver, sizeof(s->lib_ver), x->argv[3],
                      x->argl[3]);
    }
    kvd_cmd_reply_ok(x);
}

static void
conn_client_list(struct kvd_cmd_ctx *x, bool all)
{
    struct kvd_cmd_buf b = {0};
    int64_t now = kvd_cmd_mono_ms();

    pthread_mutex_lock(&x->cmd->sess_lock);
    if (all) {
        for (kvd_session *s = x->cmd->sess_head; s != NULL; s = s->next) {
            kvd_cmd_session_line(&b, s, now);
        }
    } else {
        kvd_cmd_session_line(&b, x->sess, now);
    }
    pthread_mutex_unlock(&x->cmd->sess_lock);
    kvd_cmd_reply_bulk(x, b.p != NULL ? b.p : "", b.len);
    kvd_cmd_buf_release(&b);
}

static void
conn_client_info(struct kvd_cmd_ctx *x)
{
    conn_client_list(x, false);
}

static void
conn_client_listall(struct kvd_cmd_ctx *x)
{
    if (x->argc > 2) {
        kvd_cmd_reply_syntax(x); /* TYPE and ID filters: not supported */
        return;
    }
    conn_client_list(x, true);
}

/* CLIENT NO-EVICT / NO-TOUCH: kvd neither evicts nor tracks access. */
static void
conn_client_onoff(struct kvd_cmd_ctx *x)
{
    if (!kvd_cmd_arg_is(x, 2, "on") && !kvd_cmd_arg_is(x, 2, "off")) {
        kvd_cmd_reply_syntax(x);
        return;
    }
    kvd_cmd_reply_ok(x);
}

static void
conn_client_help(struct kvd_cmd_ctx *x)
{
    static const char *const lines[] = {
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "LIST",
        "    Return information about client connections.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "SETINFO <LIB-NAME|LIB-VER> <value>",
        "    Set client library name or version.",
        "NO-EVICT (ON|OFF)",
        "NO-TOUCH (ON|OFF)",
        "    Accepted; kvd neither evicts nor tracks access.",
        "HELP",
        "    Print this help.",
        NULL,
    };
    kvd_cmd_reply_help(x, lines);
}

/* --- the table
 * ------------------------------------------------------------------ */

#define F  KVD_CMDF_FAST
#define A  KVD_CMDF_ADMIN
#define NA KVD_CMDF_NOAUTH
#define LD KVD_CMDF_LOADING
#define ST KVD_CMDF_STALE
#define NS KVD_CMDF_NOSCRIPT
#define TX KVD_CMDF_TXCTL

static const struct kvd_cmd_def conn_client_subs[] = {
    KVD_CMD_DEF("id", 2, NS | LD | ST, conn_client_id, NULL, 0, 0, 0,
                "connection", "5.0.0",
                "Returns the unique client ID of the connection.", ""),
    KVD_CMD_DEF("getname", 2, NS | LD | ST, conn_client_getname, NULL, 0, 0, 0,
                "connection", "2.6.9", "Returns the name of the connection.",
                ""),
    KVD_CMD_DEF("setname", 3, NS | LD | ST, conn_client_setname, NULL, 0, 0, 0,
                "connection", "2.6.9", "Sets the connection name.",
                "connection-name"),
    KVD_CMD_DEF("setinfo", 4, NS | LD | ST, conn_client_setinfo, NULL, 0, 0, 0,
                "connection", "7.2.0",
                "Sets information specific to the client.",
                "LIB-NAME libname | LIB-VER libver"),
    KVD_CMD_DEF("info", 2, NS | LD | ST, conn_client_info, NULL, 0, 0, 0,
                "connection", "6.2.0",
                "Returns information about the connection.", ""),
    KVD_CMD_DEF("list", -2, A | NS | LD | ST, conn_client_listall, NULL, 0, 0,
                0, "connection", "2.4.0", "Lists open connections.", ""),
    KVD_CMD_DEF("no-evict", 3, A | NS | LD | ST, conn_client_onoff, NULL, 0, 0,
                0, "connection", "7.0.0",
                "Sets the client eviction mode of the connection.", "ON | OFF"),
    KVD_CMD_DEF("no-touch", 3, NS | LD | ST, conn_client_onoff, NULL, 0, 0, 0,
                "connection", "7.2.0",
                "Controls whether commands sent by the client affect the "
                "LRU/LFU of accessed keys.",
                "ON | OFF"),
    KVD_CMD_DEF("help", 2, LD | ST, conn_client_help, NULL, 0, 0, 0,
                "connection", "5.0.0",
                "Returns helpful text about the different subcommands.", ""),
    KVD_CMD_END,
};

const struct kvd_cmd_def kvd_cmd_conn_defs[] = {
    KVD_CMD_DEF("ping", -1, F, conn_ping, NULL, 0, 0, 0, "connection", "1.0.0",
                "Returns the server's liveliness response.", "[message]"),
    KVD_CMD_DEF("echo", 2, F, conn_echo, NULL, 0, 0, 0, "connection", "1.0.0",
                "Returns the given string.", "message"),
    KVD_CMD_DEF("quit", -1, NA | F | LD | ST | NS | TX, conn_quit, NULL, 0, 0,
                0, "connection", "1.0.0", "Closes the connection.", ""),
    KVD_CMD_DEF("reset", 1, NA | F | LD | ST | NS | TX, conn_reset, NULL, 0, 0,
                0, "connection", "6.2.0", "Resets the connection.", ""),
    KVD_CMD_DEF("auth", -2, NA | F | LD | ST | NS, conn_auth, NULL, 0, 0, 0,
                "connection", "1.0.0", "Authenticates the connection.",
                "[username] password"),
    KVD_CMD_DEF("hello", -1, NA | F | LD | ST | NS, conn_hello, NULL, 0, 0, 0,
                "connection", "6.0.0", "Handshakes with the server.",
                "[protover [AUTH username password] [SETNAME clientname]]"),
    KVD_CMD_DEF("select", 2, F | LD | ST, conn_select, NULL, 0, 0, 0,
                "connection", "1.0.0",
                "Changes the selected database (kvd has database 0 only).",
                "index"),
    KVD_CMD_DEF("client", -2, 0, NULL, conn_client_subs, 0, 0, 0, "connection",
                "2.4.0", "A container for client connection commands.", ""),
    KVD_CMD_END,
};
