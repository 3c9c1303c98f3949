/*
 * core/cmd/cmds_server.c -- server commands: COMMAND, CONFIG, INFO, ROLE,
 * DBSIZE, FLUSHDB, FLUSHALL, FUNCTION, DEBUG, TIME, SAVE, COMPACT.
 *
 * These are what Redis tools send to probe a server (redis-cli,
 * redis-benchmark, client libraries), answered with Redis's reply shapes
 * and error texts, and with kvd's own figures where Redis has none (INFO
 * section "kvd", engine counters).
 *
 * Thread-safety: handlers use their context, the store and the layer's
 * atomics.
 */
#include "core/cmd/cmd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* The Redis version whose commands and replies kvd follows; reported as
 * redis_version so tools that check it enable the right features. */
#define SRV_REDIS_COMPAT_VERSION "7.0.0"

/* --- COMMAND -----------------------------------------------------------------
 */

static size_t
srv_flag_count(unsigned flags)
{
    size_t n = 0;
    for (unsigned f = flags; f != 0; f &= f - 1) {
        n++;
    }
    return n;
}

static void
srv_reply_flags(struct kvd_cmd_ctx *x, unsigned flags)
{
    /* In the order of the bits of enum kvd_cmd_flag. */
    static const char *const names[] = {
        "write",   "readonly", "denyoom", "admin",    "fast",
        "no_auth", "loading",  "stale",   "noscript", "no_multi",
    };

    flags &= KVD_CMDF_REPORTED;
    kvd_cmd_reply_array(x, srv_flag_count(flags));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (flags & (1u << i)) {
            kvd_cmd_reply_status(x, names[i]);
        }
    }
}

static void
srv_command_info_one(struct kvd_cmd_ctx *x, const struct kvd_cmd_entry *e)
{
    const struct kvd_cmd_def *d = e->def;
    char cat[32];

    kvd_cmd_reply_array(x, 10);
    kvd_cmd_reply_cstr(x, e->fullname);
    kvd_cmd_reply_int(x, d->arity);
    srv_reply_flags(x, d->flags);
    kvd_cmd_reply_int(x, d->first_key);
    kvd_cmd_reply_int(x, d->last_key);
    kvd_cmd_reply_int(x, d->key_step);
    /* ACL categories: the group, then read/write and fast/slow. */
    kvd_cmd_reply_array(x, 3);
    snprintf(cat, sizeof(cat), "@%s",
             d->group != NULL && strcmp(d->group, "generic") == 0
                 ? "keyspace"
                 : (d->group != NULL ? d->group : "server"));
    kvd_cmd_reply_cstr(x, cat);
    kvd_cmd_reply_cstr(x, (d->flags & KVD_CMDF_WRITE) ? "@write" : "@read");
    kvd_cmd_reply_cstr(x, (d->flags & KVD_CMDF_FAST) ? "@fast" : "@slow");
    kvd_cmd_reply_array(x, 0); /* tips */
    kvd_cmd_reply_array(x, 0); /* key specifications */
    kvd_cmd_reply_array(x, e->nsub);
    for (size_t i = 0; i < e->nsub; i++) {
        srv_command_info_one(x, kvd_cmd_entry_at(x->cmd, e->sub_first + i));
    }
}

/* Top-level entries come first in the entry array (see cmd.c). */
static size_t
srv_top_count(const kvd_cmd *c)
{
    size_t n = 0;
    for (size_t i = 0; i < kvd_cmd_entry_count(c); i++) {
        if (kvd_cmd_entry_at(c, i)->parent == NULL) {
            n++;
        }
    }
    return n;
}

/* A subcommand name "client|setname" or a command name. */
static const struct kvd_cmd_entry *
srv_find_full(const kvd_cmd *c, const char *p, size_t n)
{
    const char *bar = memchr(p, '|', n);

    if (bar == NULL) {
        return kvd_cmd_entry_find(c, p, n);
    }
    const struct kvd_cmd_entry *e = kvd_cmd_entry_find(c, p, (size_t)(bar - p));
    if (e == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < e->nsub; i++) {
        const struct kvd_cmd_entry *s = kvd_cmd_entry_at(c, e->sub_first + i);
        if (kvd_cmd_word_eq(bar + 1, n - (size_t)(bar - p) - 1, s->def->name)) {
            return s;
        }
    }
    return NULL;
}

static void
srv_command_docs_one(struct kvd_cmd_ctx *x, const struct kvd_cmd_entry *e)
{
    const struct kvd_cmd_def *d = e->def;
    bool args = kvd_cmd_docs_has_args(d->syntax);

    kvd_cmd_reply_map(x, 4 + (e->nsub > 0) + args);
    kvd_cmd_reply_cstr(x, "summary");
    kvd_cmd_reply_cstr(x, d->summary != NULL ? d->summary : "");
    kvd_cmd_reply_cstr(x, "since");
    kvd_cmd_reply_cstr(x, d->since != NULL ? d->since : "1.0.0");
    kvd_cmd_reply_cstr(x, "group");
    kvd_cmd_reply_cstr(x, d->group != NULL ? d->group : "server");
    kvd_cmd_reply_cstr(x, "complexity");
    kvd_cmd_reply_cstr(x, (d->flags & KVD_CMDF_FAST) ? "O(1)" : "O(N)");
    if (args) {
        kvd_cmd_reply_cstr(x, "arguments");
        kvd_cmd_docs_reply_args(x, d->syntax);
    }
    if (e->nsub > 0) {
        kvd_cmd_reply_cstr(x, "subcommands");
        kvd_cmd_reply_map(x, e->nsub);
        for (size_t i = 0; i < e->nsub; i++) {
            const struct kvd_cmd_entry *s =
                kvd_cmd_entry_at(x->cmd, e->sub_first + i);
            kvd_cmd_reply_cstr(x, s->fullname);
            srv_command_docs_one(x, s);
        }
    }
}

static void
srv_command(struct kvd_cmd_ctx *x)
{
    kvd_cmd *c = x->cmd;
    size_t ntop = srv_top_count(c);

    if (x->argc == 1) {
        kvd_cmd_reply_array(x, ntop);
        for (size_t i = 0; i < ntop; i++) {
            srv_command_info_one(x, kvd_cmd_entry_at(c, i));
        }
        return;
    }
    /* Subcommands with a fixed arity answer a wrong count as Redis does. */
    static const char *const fixed[] = {"count", "list", "help"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (kvd_cmd_arg_is(x, 1, fixed[i]) && x->argc != 2) {
            kvd_cmd_reply_errorf(x,
                                 "ERR wrong number of arguments for "
                                 "'command|%s' command",
                                 fixed[i]);
            return;
        }
    }
    if (kvd_cmd_arg_is(x, 1, "count")) {
        kvd_cmd_reply_int(x, (long long)ntop);
    } else if (kvd_cmd_arg_is(x, 1, "list")) {
        kvd_cmd_reply_array(x, ntop);
        for (size_t i = 0; i < ntop; i++) {
            kvd_cmd_reply_cstr(x, kvd_cmd_entry_at(c, i)->fullname);
        }
    } else if (kvd_cmd_arg_is(x, 1, "info")) {
        if (x->argc == 2) {
            kvd_cmd_reply_array(x, ntop);
            for (size_t i = 0; i < ntop; i++) {
                srv_command_info_one(x, kvd_cmd_entry_at(c, i));
            }
            return;
        }
        kvd_cmd_reply_array(x, x->argc - 2);
        for (size_t i = 2; i < x->argc; i++) {
            const struct kvd_cmd_entry *e =
                srv_find_full(c, x->argv[i], x->argl[i]);
            if (e == NULL) {
                kvd_cmd_reply_null(x);
            } else {
                srv_command_info_one(x, e);
            }
        }
    } else if (kvd_cmd_arg_is(x, 1, "docs")) {
        if (x->argc == 2) {
            kvd_cmd_reply_map(x, ntop);
            for (size_t i = 0; i < ntop; i++) {
                const struct kvd_cmd_entry *e = kvd_cmd_entry_at(c, i);
                kvd_cmd_reply_cstr(x, e->fullname);
                srv_command_docs_one(x, e);
            }
            return;
        }
        size_t found = 0;
        for (size_t i = 2; i < x->argc; i++) {
            found += srv_find_full(c, x->argv[i], x->argl[i]) != NULL;
        }
        kvd_cmd_reply_map(x, found);
        for (size_t i = 2; i < x->argc; i++) {
            const struct kvd_cmd_entry *e =
                srv_find_full(c, x->argv[i], x->argl[i]);
            if (e != NULL) {
                kvd_cmd_reply_cstr(x, e->fullname);
                srv_command_docs_one(x, e);
            }
        }
    } else if (kvd_cmd_arg_is(x, 1, "help")) {
        static const char *const lines[] = {
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
            "HELP",
            "    Print this help.",
            NULL,
        };
        kvd_cmd_reply_help(x, lines);
    } else {
        const char *z = memchr(x->argv[1], '\0', x->argl[1]);
        int n = z ? (int)(z - x->argv[1]) : (int)x->argl[1];
        kvd_cmd_reply_errorf(x,
                             "ERR unknown subcommand '%.*s'. Try COMMAND "
                             "HELP.",
                             n < 128 ? n : 128, x->argv[1]);
    }
}

/* --- CONFIG ------------------------------------------------------------------
 */

/* The parameters clients and tools probe: kvd's fixed answers, or NULL
 * for what the host runs with (srv_config_value). */
static const char *const srv_config[][2] = {
    {"appendfsync", NULL},
    {"appendonly", NULL},
    {"bind", ""},
    {"client-query-buffer-limit", "1073741824"},
    {"cluster-enabled", "no"},
    {"databases", "1"},
    {"hz", "10"},
    {"io-threads", "1"},
    {"lazyfree-lazy-user-del", "no"},
    {"loglevel", "notice"},
    {"maxclients", NULL},
    {"maxmemory", "0"},
    {"maxmemory-policy", "noeviction"},
    {"notify-keyspace-events", ""},
    {"port", NULL},
    {"proto-max-bulk-len", "536870912"},
    {"save", NULL},
    {"slowlog-log-slower-than", "10000"},
    {"slowlog-max-len", "128"},
    {"timeout", "0"},
};

#define SRV_NCONFIG (sizeof(srv_config) / sizeof(srv_config[0]))

/* The RESP frontend's TCP port: the bound one as the frontend announced
 * it (kvd_cmd_api.listening; right also when the kernel chose it), else
 * the configured one, else the port the asking TCP client reached; 0
 * when there is none or it is not known on this connection. */
static int
srv_tcp_port(const struct kvd_cmd_ctx *x)
{
    int bound = atomic_load_explicit(&x->cmd->tcp_bound, memory_order_relaxed);

    if (bound > 0) {
        return bound;
    }
    if (x->cmd->tcp_port > 0) {
        return x->cmd->tcp_port;
    }
    if (strcmp(x->sess->frontend, "resp") != 0) {
        return 0;
    }
    return kvd_cmd_session_tcp_port(x->sess);
}

/* Redis's appendonly: whether every write reaches disk under a sync
 * policy (appendfsync says when), rather than only at snapshots. That is
 * an engine with a `sync` option (log, lsm, btree); memory's snapshots
 * are `save`, and redis's own persistence is not kvd's to report. */
static bool
srv_aof_enabled(const struct kvd_cmd_ctx *x)
{
    return x->cmd->appendfsync != NULL;
}

/* Parameter k's value (numbers formatted into buf), or NULL when kvd has
 * no such setting: the parameter is then left out, as Redis leaves out
 * an unknown one. */
static const char *
srv_config_value(const struct kvd_cmd_ctx *x, size_t k, char *buf, size_t cap)
{
    const char *name = srv_config[k][0];
    int n = -1;

    if (srv_config[k][1] != NULL) {
        return srv_config[k][1];
    }
    if (strcmp(name, "appendfsync") == 0) {
        return x->cmd->appendfsync;
    }
    if (strcmp(name, "appendonly") == 0) {
        return srv_aof_enabled(x) ? "yes" : "no";
    }
    if (strcmp(name, "save") == 0) {
        return x->cmd->save;
    }
    if (strcmp(name, "port") == 0) {
        n = srv_tcp_port(x);
    } else if (strcmp(name, "maxclients") == 0 && x->cmd->maxclients > 0) {
        n = x->cmd->maxclients;
    }
    if (n < 0) {
        return NULL;
    }
    snprintf(buf, cap, "%d", n);
    return buf;
}

static void
srv_config_get(struct kvd_cmd_ctx *x)
{
    bool hit[SRV_NCONFIG] = {false};
    char buf[24];
    size_t n = 0;

    for (size_t i = 2; i < x->argc; i++) {
        for (size_t k = 0; k < SRV_NCONFIG; k++) {
            const char *name = srv_config[k][0];
            if (!hit[k] &&
                kvd_cmd_glob_match(x->argv[i], x->argl[i], name, strlen(name),
                                   true) &&
                srv_config_value(x, k, buf, sizeof(buf)) != NULL) {
                hit[k] = true;
                n++;
            }
        }
    }
    kvd_cmd_reply_map(x, n);
    for (size_t k = 0; k < SRV_NCONFIG; k++) {
        if (hit[k]) {
            kvd_cmd_reply_cstr(x, srv_config[k][0]);
            kvd_cmd_reply_cstr(x, srv_config_value(x, k, buf, sizeof(buf)));
        }
    }
}

/* CONFIG SET: kvd is configured by its INI file; setting a parameter to
 * the value it already has is accepted (scripts often do that). */
static void
srv_config_set(struct kvd_cmd_ctx *x)
{
    if (x->argc % 2 != 0) {
        kvd_cmd_reply_arity(x);
        return;
    }
    for (size_t i = 2; i < x->argc; i += 2) {
        const char *found = NULL;
        char buf[24];
        for (size_t k = 0; k < SRV_NCONFIG && found == NULL; k++) {
            if (kvd_cmd_word_eq(x->argv[i], x->argl[i], srv_config[k][0])) {
                found = srv_config_value(x, k, buf, sizeof(buf));
            }
        }
        const char *z = memchr(x->argv[i], '\0', x->argl[i]);
        int n = z ? (int)(z - x->argv[i]) : (int)x->argl[i];
        if (found == NULL) {
            kvd_cmd_reply_errorf(x,
                                 "ERR Unknown option or number of arguments "
                                 "for CONFIG SET - '%.*s'",
                                 n < 128 ? n : 128, x->argv[i]);
            return;
        }
        size_t vlen = strlen(found);
        if (x->argl[i + 1] != vlen ||
            memcmp(x->argv[i + 1], found, vlen) != 0) {
            kvd_cmd_reply_errorf(x,
                                 "ERR CONFIG SET failed (possibly related to "
                                 "argument '%.*s') - kvd is configured by "
                                 "its INI file",
                                 n < 128 ? n : 128, x->argv[i]);
            return;
        }
    }
    kvd_cmd_reply_ok(x);
}

static void
srv_config_resetstat(struct kvd_cmd_ctx *x)
{
    kvd_cmd_stats_reset(x->cmd);
    kvd_cmd_reply_ok(x);
}

static void
srv_config_rewrite(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_error_as(x, KVD_ENOTSUP,
                           "ERR CONFIG REWRITE is not supported: kvd is "
                           "configured by its INI file");
}

static void
srv_config_help(struct kvd_cmd_ctx *x)
{
    static const char *const lines[] = {
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their "
        "values.",
        "SET <directive> <value>",
        "    Accepted only when <value> is the current value: kvd is "
        "configured by its INI file.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "HELP",
        "    Print this help.",
        NULL,
    };
    kvd_cmd_reply_help(x, lines);
}

/* --- INFO
 * ---------------------------------------------------------------------- */

struct srv_info {
    struct kvd_cmd_ctx *x;
    struct kvd_cmd_buf b;
    struct kvd_engine_stats es;
    bool have_es;
    unsigned want; /* SRV_SEC_* bits */
};

enum srv_section {
    SRV_SEC_SERVER = 1u << 0,
    SRV_SEC_CLIENTS = 1u << 1,
    SRV_SEC_MEMORY = 1u << 2,
    SRV_SEC_PERSISTENCE = 1u << 3,
    SRV_SEC_STATS = 1u << 4,
    SRV_SEC_KEYSPACE = 1u << 5,
    SRV_SEC_KVD = 1u << 6,
    SRV_SEC_COMMANDSTATS = 1u << 7,
    SRV_SEC_REPLICATION = 1u << 8,
};

#define SRV_SEC_DEFAULT                                                        \
    (SRV_SEC_SERVER | SRV_SEC_CLIENTS | SRV_SEC_MEMORY | SRV_SEC_PERSISTENCE | \
     SRV_SEC_STATS | SRV_SEC_REPLICATION | SRV_SEC_KEYSPACE | SRV_SEC_KVD)

static const struct {
    const char *name;
    unsigned bits;
} srv_sections[] = {
    {"server", SRV_SEC_SERVER},
    {"clients", SRV_SEC_CLIENTS},
    {"memory", SRV_SEC_MEMORY},
    {"persistence", SRV_SEC_PERSISTENCE},
    {"stats", SRV_SEC_STATS},
    {"replication", SRV_SEC_REPLICATION},
    {"keyspace", SRV_SEC_KEYSPACE},
    {"kvd", SRV_SEC_KVD},
    {"commandstats", SRV_SEC_COMMANDSTATS},
    {"default", SRV_SEC_DEFAULT},
    {"all", SRV_SEC_DEFAULT | SRV_SEC_COMMANDSTATS},
    {"everything", SRV_SEC_DEFAULT | SRV_SEC_COMMANDSTATS},
};

static void
srv_info_header(struct srv_info *in, const char *title)
{
    if (in->b.len > 0) {
        kvd_cmd_buf_append(&in->b, "\r\n", 2);
    }
    kvd_cmd_buf_printf(&in->b, "# %s\r\n", title);
}

static void
srv_info_u64(struct srv_info *in, const char *name, uint64_t v)
{
    kvd_cmd_buf_printf(&in->b, "%s:%llu\r\n", name, (unsigned long long)v);
}

static void
srv_info_str(struct srv_info *in, const char *name, const char *v)
{
    kvd_cmd_buf_printf(&in->b, "%s:%s\r\n", name, v);
}

/* "1.50M" as Redis prints used_memory_human. */
static void
srv_info_human(struct srv_info *in, const char *name, uint64_t v)
{
    static const char units[] = "BKMGTP";
    double d = (double)v;
    size_t u = 0;

    while (d >= 1024 && u + 1 < sizeof(units) - 1) {
        d /= 1024;
        u++;
    }
    if (u == 0) {
        kvd_cmd_buf_printf(&in->b, "%s:%lluB\r\n", name, (unsigned long long)v);
    } else {
        kvd_cmd_buf_printf(&in->b, "%s:%.2f%c\r\n", name, d, units[u]);
    }
}

static void
srv_info_server(struct srv_info *in)
{
    struct kvd_cmd_ctx *x = in->x;
    const struct kvd_engine_vtable *vt = kvd_store_engine(x->st);
    int64_t now = kvd_store_now_ms(x->st);
    int64_t up = (now - x->cmd->start_ms) / 1000;
    struct utsname un;
    char os[200] = "unknown";

    if (uname(&un) == 0) {
        snprintf(os, sizeof(os), "%s %s %s", un.sysname, un.release,
                 un.machine);
    }
    srv_info_header(in, "Server");
    srv_info_str(in, "redis_version", SRV_REDIS_COMPAT_VERSION);
    srv_info_str(in, "kvd_version", x->cmd->version);
    srv_info_str(in, "redis_mode", "standalone");
    srv_info_str(in, "os", os);
    srv_info_u64(in, "arch_bits", sizeof(void *) * 8);
    srv_info_u64(in, "process_id", (uint64_t)getpid());
    srv_info_str(in, "run_id", x->cmd->run_id);
    srv_info_u64(in, "tcp_port", (uint64_t)srv_tcp_port(x));
    srv_info_u64(in, "server_time_usec", (uint64_t)now * 1000);
    srv_info_u64(in, "uptime_in_seconds", (uint64_t)(up > 0 ? up : 0));
    srv_info_u64(in, "uptime_in_days", (uint64_t)(up > 0 ? up / 86400 : 0));
    srv_info_str(in, "executable", "kvd");
    srv_info_str(in, "config_file", x->cmd->config_file);
    srv_info_str(in, "kvd_engine", vt->name);
    srv_info_str(in, "kvd_engine_version",
                 vt->version != NULL ? vt->version : "");
}

static void
srv_info_clients(struct srv_info *in)
{
    srv_info_header(in, "Clients");
    srv_info_u64(in, "connected_clients",
                 kvd_cmd_clients_connected(in->x->cmd));
    if (in->x->cmd->maxclients > 0) {
        srv_info_u64(in, "maxclients", (uint64_t)in->x->cmd->maxclients);
    }
    srv_info_u64(in, "blocked_clients", 0);
    srv_info_u64(in, "tracking_clients", 0);
}

static void
srv_info_memory(struct srv_info *in)
{
    uint64_t used = in->have_es ? in->es.mem_bytes : 0;

    srv_info_header(in, "Memory");
    srv_info_u64(in, "used_memory", used);
    srv_info_human(in, "used_memory_human", used);
    srv_info_u64(in, "maxmemory", 0);
    srv_info_str(in, "maxmemory_human", "0B");
    srv_info_str(in, "maxmemory_policy", "noeviction");
    srv_info_str(in, "mem_allocator", "libc");
    srv_info_u64(in, "kvd_key_bytes", in->have_es ? in->es.key_bytes : 0);
    srv_info_u64(in, "kvd_value_bytes", in->have_es ? in->es.value_bytes : 0);
}

static void
srv_info_persistence(struct srv_info *in)
{
    uint32_t caps = kvd_store_caps(in->x->st);

    srv_info_header(in, "Persistence");
    srv_info_u64(in, "loading", in->have_es && !in->es.ready);
    srv_info_u64(in, "aof_enabled", srv_aof_enabled(in->x));
    srv_info_u64(in, "kvd_persistent", (caps & KVD_CAP_PERSISTENT) != 0);
    srv_info_u64(in, "kvd_disk_bytes", in->have_es ? in->es.disk_bytes : 0);
    srv_info_u64(in, "kvd_readonly", in->have_es && in->es.readonly);
    srv_info_str(in, "kvd_state", in->have_es ? in->es.state : "");
}

static void
srv_info_stats(struct srv_info *in)
{
    kvd_store *st = in->x->st;

    srv_info_header(in, "Stats");
    srv_info_u64(in, "total_connections_received",
                 kvd_cmd_clients_total(in->x->cmd));
    srv_info_u64(in, "total_commands_processed",
                 kvd_store_metric_get(st, KVD_M_COMMANDS));
    srv_info_u64(in, "keyspace_hits", kvd_store_metric_get(st, KVD_M_HITS));
    srv_info_u64(in, "keyspace_misses", kvd_store_metric_get(st, KVD_M_MISSES));
    srv_info_u64(in, "expired_keys", kvd_store_metric_get(st, KVD_M_EXPIRED));
    srv_info_u64(in, "evicted_keys", 0);
    srv_info_u64(in, "unknown_commands",
                 atomic_load_explicit(&in->x->cmd->unknown_commands,
                                      memory_order_relaxed));
}

/* kvd has no replication: a primary with no replicas and an empty
 * replication stream, which is what tools that read this section need
 * to know. */
static void
srv_info_replication(struct srv_info *in)
{
    srv_info_header(in, "Replication");
    srv_info_str(in, "role", "master");
    srv_info_u64(in, "connected_slaves", 0);
    srv_info_str(in, "master_failover_state", "no-failover");
    srv_info_str(in, "master_replid", in->x->cmd->run_id);
    srv_info_u64(in, "master_repl_offset", 0);
    srv_info_u64(in, "repl_backlog_active", 0);
}

static void
srv_info_keyspace(struct srv_info *in)
{
    srv_info_header(in, "Keyspace");
    /* kvd does not count keys with an expiry, so expires and avg_ttl are
     * reported as 0; keys is exact. Redis omits an empty database. */
    if (in->have_es && in->es.keys > 0) {
        kvd_cmd_buf_printf(&in->b, "db0:keys=%llu,expires=0,avg_ttl=0\r\n",
                           (unsigned long long)in->es.keys);
    }
}

static void
srv_info_metric(void *ctx, const char *name, uint64_t value)
{
    srv_info_u64(ctx, name, value);
}

static void
srv_info_kvd(struct srv_info *in)
{
    srv_info_header(in, "Kvd");
    kvd_store_metrics(in->x->st, srv_info_metric, in);
}

static void
srv_info_cmdstat(void *ctx, const struct kvd_cmd_stat *s)
{
    struct srv_info *in = ctx;
    double per = s->calls > 0 ? (double)s->usec / (double)s->calls : 0.0;

    kvd_cmd_buf_printf(&in->b,
                       "cmdstat_%s:calls=%llu,usec=%llu,usec_per_call=%.2f,"
                       "rejected_calls=%llu,failed_calls=%llu\r\n",
                       s->name, (unsigned long long)s->calls,
                       (unsigned long long)s->usec, per,
                       (unsigned long long)s->rejected_calls,
                       (unsigned long long)s->failed_calls);
}

static void
srv_info(struct kvd_cmd_ctx *x)
{
    struct srv_info in = {.x = x};

    if (x->argc == 1) {
        in.want = SRV_SEC_DEFAULT;
    }
    for (size_t i = 1; i < x->argc; i++) {
        for (size_t k = 0; k < sizeof(srv_sections) / sizeof(srv_sections[0]);
             k++) {
            if (kvd_cmd_arg_is(x, i, srv_sections[k].name)) {
                in.want |= srv_sections[k].bits;
            }
        }
    }
    if (in.want & ~(SRV_SEC_SERVER | SRV_SEC_CLIENTS | SRV_SEC_STATS |
                    SRV_SEC_REPLICATION | SRV_SEC_COMMANDSTATS | SRV_SEC_KVD)) {
        in.have_es = kvd_store_stats(x->st, &in.es, NULL, NULL) == 0;
    }
    if (in.want & SRV_SEC_SERVER) {
        srv_info_server(&in);
    }
    if (in.want & SRV_SEC_CLIENTS) {
        srv_info_clients(&in);
    }
    if (in.want & SRV_SEC_MEMORY) {
        srv_info_memory(&in);
    }
    if (in.want & SRV_SEC_PERSISTENCE) {
        srv_info_persistence(&in);
    }
    if (in.want & SRV_SEC_STATS) {
        srv_info_stats(&in);
    }
    if (in.want & SRV_SEC_REPLICATION) {
        srv_info_replication(&in);
    }
    if (in.want & SRV_SEC_KVD) {
        srv_info_kvd(&in);
    }
    if (in.want & SRV_SEC_COMMANDSTATS) {
        srv_info_header(&in, "Commandstats");
        kvd_cmd_stats(x->cmd, false, srv_info_cmdstat, &in);
    }
    if (in.want & SRV_SEC_KEYSPACE) {
        srv_info_keyspace(&in);
    }
    kvd_cmd_reply_bulk(x, in.b.p != NULL ? in.b.p : "", in.b.len);
    kvd_cmd_buf_release(&in.b);
}

/* ROLE: kvd is always a primary without replicas (Redis's reply shape:
 * role, replication offset, replicas). */
static void
srv_role(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_array(x, 3);
    kvd_cmd_reply_cstr(x, "master");
    kvd_cmd_reply_int(x, 0);
    kvd_cmd_reply_array(x, 0);
}

/* --- data set and server administration
 * --------------------------------------- */

static void
srv_dbsize(struct kvd_cmd_ctx *x)
{
    struct kvd_engine_stats es;
    int rc = kvd_store_stats(x->st, &es, NULL, NULL);

    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
    } else {
        kvd_cmd_reply_int(x, (long long)es.keys);
    }
}

/* FLUSHDB / FLUSHALL [ASYNC | SYNC]: both modes clear at once. */
static void
srv_flush(struct kvd_cmd_ctx *x)
{
    struct kvd_err err = {0};

    if (x->argc > 2 || (x->argc == 2 && !kvd_cmd_arg_is(x, 1, "async") &&
                        !kvd_cmd_arg_is(x, 1, "sync"))) {
        kvd_cmd_reply_syntax(x);
        return;
    }
    int rc = kvd_store_clear(x->st, &err);
    if (rc != 0) {
        kvd_cmd_reply_status_error(x, rc);
    } else {
        kvd_cmd_reply_ok(x);
    }
}

/* FUNCTION: kvd has no functions; FLUSH and LIST answer as an empty
 * library would. */
static void
srv_function_flush(struct kvd_cmd_ctx *x)
{
    if (x->argc > 3 || (x->argc == 3 && !kvd_cmd_arg_is(x, 2, "async") &&
                        !kvd_cmd_arg_is(x, 2, "sync"))) {
        kvd_cmd_reply_error(x, "ERR FUNCTION FLUSH only supports SYNC|ASYNC "
                               "option");
        return;
    }
    kvd_cmd_reply_ok(x);
}

static void
srv_function_list(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_array(x, 0);
}

static void
srv_function_help(struct kvd_cmd_ctx *x)
{
    static const char *const lines[] = {
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all libraries (kvd has none).",
        "LIST",
        "    Return general information on all libraries (none).",
        "HELP",
        "    Print this help.",
        NULL,
    };
    kvd_cmd_reply_help(x, lines);
}

static void
srv_debug(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_error_as(x, KVD_ENOTSUP, "ERR DEBUG is not supported by kvd");
}

static void
srv_time(struct kvd_cmd_ctx *x)
{
    int64_t now = kvd_store_now_ms(x->st);
    char sec[24];
    char usec[24];
    size_t ns = kvd_cmd_fmt_ll(sec, now / 1000);
    size_t nu = kvd_cmd_fmt_ll(usec, (now % 1000) * 1000);

    kvd_cmd_reply_array(x, 2);
    kvd_cmd_reply_bulk(x, sec, ns);
    kvd_cmd_reply_bulk(x, usec, nu);
}

/* SAVE: make every acknowledged write durable (the engine's sync). */
static void
srv_save(struct kvd_cmd_ctx *x)
{
    struct kvd_err err = {0};
    int rc = kvd_store_sync(x->st, &err);

    if (rc != 0) {
        kvd_cmd_reply_errorf_as(x, rc, "ERR sync failed: %s",
                                err.msg[0] ? err.msg : "engine error");
    } else {
        kvd_cmd_reply_ok(x);
    }
}

/* COMPACT: kvd's own; asks the engine to merge/compact now. */
static void
srv_compact(struct kvd_cmd_ctx *x)
{
    struct kvd_err err = {0};
    int rc = kvd_store_maintain(x->st, KVD_MAINT_COMPACT, &err);

    if (rc == KVD_ENOTSUP) {
        kvd_cmd_reply_errorf_as(x, rc, "ERR the '%s' engine has no compaction",
                                kvd_store_engine(x->st)->name);
    } else if (rc != 0) {
        kvd_cmd_reply_errorf_as(x, rc, "ERR compaction failed: %s",
                                err.msg[0] ? err.msg : "engine error");
    } else {
        kvd_cmd_reply_ok(x);
    }
}

/* --- the table
 * ------------------------------------------------------------------ */

#define W  KVD_CMDF_WRITE
#define R  KVD_CMDF_READONLY
#define F  KVD_CMDF_FAST
#define A  KVD_CMDF_ADMIN
#define NA KVD_CMDF_NOAUTH
#define LD KVD_CMDF_LOADING
#define ST KVD_CMDF_STALE
#define NS KVD_CMDF_NOSCRIPT
#define NM KVD_CMDF_NOMULTI
#define KS KVD_CMDF_KEYSPACE

static const struct kvd_cmd_def srv_config_subs[] = {
    KVD_CMD_DEF("get", -3, A | NS | LD | ST, srv_config_get, NULL, 0, 0, 0,
                "server", "2.0.0",
                "Returns the effective values of configuration parameters.",
                "parameter [parameter ...]"),
    KVD_CMD_DEF("set", -4, A | NS | LD | ST, srv_config_set, NULL, 0, 0, 0,
                "server", "2.0.0", "Sets configuration parameters in-flight.",
                "parameter value [parameter value ...]"),
    KVD_CMD_DEF("resetstat", 2, A | NS | LD | ST, srv_config_resetstat, NULL, 0,
                0, 0, "server", "2.0.0", "Resets the server's statistics.", ""),
    KVD_CMD_DEF("rewrite", 2, A | NS | LD | ST, srv_config_rewrite, NULL, 0, 0,
                0, "server", "2.8.0",
                "Persists the effective configuration to file.", ""),
    KVD_CMD_DEF("help", 2, LD | ST, srv_config_help, NULL, 0, 0, 0, "server",
                "5.0.0",
                "Returns helpful text about the different subcommands.", ""),
    KVD_CMD_END,
};

static const struct kvd_cmd_def srv_function_subs[] = {
    KVD_CMD_DEF("flush", -2, W | NS, srv_function_flush, NULL, 0, 0, 0,
                "scripting", "7.0.0", "Deletes all libraries and functions.",
                "[ASYNC | SYNC]"),
    KVD_CMD_DEF("list", -2, NS, srv_function_list, NULL, 0, 0, 0, "scripting",
                "7.0.0", "Returns information about all libraries.", ""),
    KVD_CMD_DEF("help", 2, LD | ST, srv_function_help, NULL, 0, 0, 0,
                "scripting", "7.0.0",
                "Returns helpful text about the different subcommands.", ""),
    KVD_CMD_END,
};

const struct kvd_cmd_def kvd_cmd_server_defs[] = {
    KVD_CMD_DEF(
        "command", -1, LD | ST, srv_command, NULL, 0, 0, 0, "server", "2.8.13",
        "Returns detailed information about all commands.",
        "[COUNT | LIST | INFO [command-name ...] | DOCS [command-name ...]]"),
    KVD_CMD_DEF("config", -2, 0, NULL, srv_config_subs, 0, 0, 0, "server",
                "2.0.0", "A container for server configuration commands.", ""),
    KVD_CMD_DEF("info", -1, LD | ST, srv_info, NULL, 0, 0, 0, "server", "1.0.0",
                "Returns information and statistics about the server.",
                "[section [section ...]]"),
    KVD_CMD_DEF("role", 1, NS | LD | ST | F, srv_role, NULL, 0, 0, 0, "server",
                "2.8.12", "Returns the replication role (kvd: always master).",
                ""),
    KVD_CMD_DEF("dbsize", 1, R | F | KS, srv_dbsize, NULL, 0, 0, 0, "server",
                "1.0.0", "Returns the number of keys in the database.", ""),
    KVD_CMD_DEF("flushdb", -1, W | KS, srv_flush, NULL, 0, 0, 0, "server",
                "1.0.0", "Removes all keys from the current database.",
                "[ASYNC | SYNC]"),
    KVD_CMD_DEF("flushall", -1, W | KS, srv_flush, NULL, 0, 0, 0, "server",
                "1.0.0", "Removes all keys from all databases.",
                "[ASYNC | SYNC]"),
    KVD_CMD_DEF("function", -2, 0, NULL, srv_function_subs, 0, 0, 0,
                "scripting", "7.0.0", "A container for function commands.", ""),
    KVD_CMD_DEF("debug", -2, A | NS | LD | ST, srv_debug, NULL, 0, 0, 0,
                "server", "1.0.0",
                "A container for debugging commands (not supported).", ""),
    KVD_CMD_DEF("time", 1, F | LD | ST, srv_time, NULL, 0, 0, 0, "server",
                "2.6.0", "Returns the server time.", ""),
    KVD_CMD_DEF(
        "save", 1, A | NS | NM, srv_save, NULL, 0, 0, 0, "server", "1.0.0",
        "Makes every acknowledged write durable (the engine's sync).", ""),
    KVD_CMD_DEF(
        "compact", 1, A | NS | NM, srv_compact, NULL, 0, 0, 0, "server", "kvd",
        "Asks the storage engine to merge or compact its files now.", ""),
    KVD_CMD_END,
};
