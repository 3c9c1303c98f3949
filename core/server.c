/*
 * core/server.c -- start-up, the signal loop, and graceful shutdown.
 *
 * Signals belong to the main thread: SIGINT, SIGTERM, SIGHUP and SIGUSR2
 * are blocked before any other thread exists (threads inherit the mask),
 * and the main thread waits for them with sigwait(). A plugin asks for
 * shutdown through host->request_shutdown, which records the reason and
 * sends SIGUSR2 to the main thread, so there is one way the loop ends.
 * SIGPIPE is ignored: a client that goes away is a write error, not death.
 */
#include "core/server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "core/cmd.h"
#include "core/hostsvc.h"
#include "core/loader.h"
#include "core/log.h"
#include "core/options.h"
#include "core/preflight.h"
#include "core/status.h"
#include "core/store.h"

#define SRV_MAX_FRONTENDS 16

struct srv_frontend {
    const char *name; /* borrowed from the config */
    const struct kvd_conf_section *sec;
    kvd_plugin *plugin;
    const struct kvd_frontend_vtable *vt;
    void *opts;
    kvd_frontend *fe;
    int started;
};

struct srv {
    const struct kvd_config *cfg;
    const char *plugin_dir;
    kvd_plugin *eng_plugin;
    const struct kvd_engine_vtable *evt;
    void *eopts;
    kvd_store *store;
    kvd_cmd *cmd;
    struct kvd_server iface;
    struct srv_frontend fes[SRV_MAX_FRONTENDS];
    size_t nfe;
};

static pthread_t main_thread;
static char shutdown_why[128];
static atomic_int shutdown_asked;

static void
on_shutdown_request(const char *why)
{
    if (atomic_exchange(&shutdown_asked, 1) == 0) {
        snprintf(shutdown_why, sizeof(shutdown_why), "%s", why);
    }
    pthread_kill(main_thread, SIGUSR2);
}

static const char *
plugin_dir_of(const struct kvd_config *cfg)
{
    const char *d = cfg->server.plugin_dir;
    return d != NULL && d[0] != '\0' ? d : kvd_loader_default_dir();
}

/* Allocate and parse a plugin's options struct. */
static int
parse_plugin_opts(const struct kvd_option *table, size_t size,
                  const struct kvd_conf_section *sec, const char *const *skip,
                  void **out, struct kvd_err *err)
{
    void *opts = calloc(1, size > 0 ? size : 1);
    int rc;

    if (opts == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "options: out of memory");
    }
    if (table == NULL) {
        /* A plugin without options still refuses unknown keys. */
        static const struct kvd_option none[] = {{0}};
        table = none;
    }
    rc = kvd_options_parse(table, sec, skip, opts, err);
    if (rc != 0) {
        kvd_options_release(table, opts);
        free(opts);
        return rc;
    }
    *out = opts;
    return 0;
}

static void
free_plugin_opts(const struct kvd_option *table, void *opts)
{
    if (opts != NULL) {
        kvd_options_release(table, opts);
        free(opts);
    }
}

/* Load the engine plugin and parse its options. */
static int
srv_load_engine(struct srv *s, struct kvd_err *err)
{
    static const char *const skip[] = {"name", NULL};
    const struct kvd_conf_section *sec = kvd_config_section(s->cfg, "engine");
    int rc = kvd_loader_open_engine(s->plugin_dir, s->cfg->engine_name,
                                    &s->eng_plugin, &s->evt, err);
    if (rc != 0) {
        char msg[KVD_ERR_MSG_BYTES];
        int line = sec->line;
        for (size_t i = 0; i < sec->n; i++) {
            if (strcmp(sec->items[i].key, "name") == 0) {
                line = sec->items[i].line;
            }
        }
        snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
        return kvd_err_set(err, rc, "%s:%d: [engine] name = %s: %s", sec->file,
                           line, s->cfg->engine_name, msg);
    }
    rc = parse_plugin_opts(s->evt->options, s->evt->options_size, sec, skip,
                           &s->eopts, err);
    if (rc != 0) {
        return rc;
    }
    rc = kvd_preflight_section(s->cfg, "engine", s->evt->options, sec, s->eopts,
                               err);
    if (rc != 0) {
        return rc;
    }
    return kvd_preflight_rules(
        s->cfg, "engine", s->evt->options, sec, s->eopts,
        KVD_ENGINE_HAS(s->evt, check_options) ? s->evt->check_options : NULL,
        err);
}

/* Load every [frontend.NAME] plugin and parse its options. */
static int
srv_load_frontends(struct srv *s, struct kvd_err *err)
{
    for (size_t i = 0; i < s->cfg->nsec; i++) {
        const struct kvd_conf_section *sec = &s->cfg->secs[i];
        struct srv_frontend *f;
        int rc;

        if (strncmp(sec->name, "frontend.", 9) != 0) {
            continue;
        }
        if (s->nfe == SRV_MAX_FRONTENDS) {
            return kvd_err_set(err, KVD_ECONFIG,
                               "%s:%d: more than %d frontends", sec->file,
                               sec->line, SRV_MAX_FRONTENDS);
        }
        f = &s->fes[s->nfe++];
        f->name = sec->name + 9;
        f->sec = sec;
        rc = kvd_loader_open_frontend(s->plugin_dir, f->name, &f->plugin,
                                      &f->vt, err);
        if (rc != 0) {
            char msg[KVD_ERR_MSG_BYTES];
            snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
            return kvd_err_set(err, rc, "%s:%d: [%s]: %s", sec->file, sec->line,
                               sec->name, msg);
        }
        rc = parse_plugin_opts(f->vt->options, f->vt->options_size, sec, NULL,
                               &f->opts, err);
        if (rc == 0) {
            rc = kvd_preflight_section(s->cfg, sec->name, f->vt->options, sec,
                                       f->opts, err);
        }
        if (rc == 0) {
            rc = kvd_preflight_rules(
                s->cfg, sec->name, f->vt->options, sec, f->opts,
                KVD_HAS(f->vt, struct kvd_frontend_vtable, check_options)
                    ? f->vt->check_options
                    : NULL,
                err);
        }
        if (rc != 0) {
            return rc;
        }
        kvd_preflight_warn(s->cfg, sec->name, f->vt->options, sec, f->opts);
    }
    return 0;
}

static void
srv_teardown(struct srv *s)
{
    struct kvd_err err;

    for (size_t i = s->nfe; i-- > 0;) {
        struct srv_frontend *f = &s->fes[i];
        if (f->fe != NULL) {
            f->vt->stop(f->fe);
        }
    }
    for (size_t i = s->nfe; i-- > 0;) {
        struct srv_frontend *f = &s->fes[i];
        if (f->fe != NULL) {
            f->vt->destroy(f->fe);
            f->fe = NULL;
        }
        if (f->vt != NULL) {
            free_plugin_opts(f->vt->options, f->opts);
        }
        kvd_loader_close(f->plugin);
    }
    s->nfe = 0;
    kvd_cmd_destroy(s->cmd);
    s->cmd = NULL;
    if (s->store != NULL) {
        kvd_err_clear(&err);
        if (kvd_store_close(s->store, &err) == 0) {
            kvd_log(KVD_LOG_INFO, "engine %s closed", s->evt->name);
        }
        s->store = NULL;
    }
    if (s->evt != NULL) {
        free_plugin_opts(s->evt->options, s->eopts);
    }
    kvd_loader_close(s->eng_plugin);
}

int
kvd_server_check_config(const struct kvd_config *cfg, const char *pid_file,
                        struct kvd_err *err)
{
    struct srv s = {0};
    int rc;

    s.cfg = cfg;
    s.plugin_dir = plugin_dir_of(cfg);
    rc = kvd_preflight_server(cfg, cfg->engine_name, pid_file, err);
    if (rc == 0) {
        rc = srv_load_engine(&s, err);
    }
    if (rc == 0) {
        rc = srv_load_frontends(&s, err);
    }
    srv_teardown(&s);
    return rc;
}

/* Refuse to start over a live server's pid file; replace a stale one.
 * Never through a symbolic link: a link planted where the pid file goes
 * would make kvd truncate whatever it points at. */
static int
pidfile_write(const char *path, struct kvd_err *err)
{
    char buf[32];
    struct stat st;
    FILE *f;
    int fd, n;

    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "pid file %s is a symbolic link: refusing to "
                           "write through it",
                           path);
    }
    f = fopen(path, "re");
    if (f != NULL) {
        long pid = 0;
        if (fscanf(f, "%ld", &pid) == 1 && pid > 0 && pid != getpid() &&
            kill((pid_t)pid, 0) == 0) {
            fclose(f);
            return kvd_err_set(err, KVD_EBUSY,
                               "pid file %s: kvd is already running as pid "
                               "%ld",
                               path, pid);
        }
        fclose(f);
    }
    fd =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        return kvd_err_set(
            err, errno == ELOOP ? KVD_ECONFIG : KVD_EIO, "open pid file %s: %s",
            path, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    }
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (write(fd, buf, (size_t)n) != n) {
        close(fd);
        return kvd_err_set(err, KVD_EIO, "write pid file %s: %s", path,
                           strerror(errno));
    }
    close(fd);
    return 0;
}

/*
 * Fork into the background. The parent waits on a pipe until the child
 * reports that start-up succeeded (byte 0) or failed (byte 1), so
 * `kvd --daemon` exits non-zero when the server could not start. Returns
 * the write end of that pipe in the child.
 */
static int
daemonize(void)
{
    int p[2];
    pid_t pid;
    char status = 1;

    if (pipe(p) != 0) {
        perror("kvd: pipe");
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        perror("kvd: fork");
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        if (read(p[0], &status, 1) != 1) {
            status = 1; /* the child died before reporting */
        }
        _exit(status == 0 ? 0 : 1);
    }
    close(p[0]);
    setsid();
    return p[1];
}

static void
daemon_ready(int fd, char status)
{
    int devnull;

    if (fd < 0) {
        return;
    }
    if (status == 0) {
        devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
            dup2(devnull, STDERR_FILENO);
            if (devnull > STDERR_FILENO) {
                close(devnull);
            }
        }
    }
    if (write(fd, &status, 1) != 1) {
        /* The parent is gone; nothing to tell. */
    }
    close(fd);
}

/* What CONFIG GET and INFO report of this configuration, read from the
 * parsed option structs (struct kvd_cmd_config): the engine's `sync` as
 * appendfsync (never is Redis's "no"), its `snapshot_interval` as save
 * ("SECONDS 1": a snapshot when anything changed), the RESP frontend's
 * `tcp` port and `maxclients`. save is formatted into f; the layer copies
 * every string. */
struct srv_facts {
    char save[32];
};

static void
srv_cmd_facts(const struct srv *s, struct kvd_cmd_config *cc,
              struct srv_facts *f)
{
    /* kvd's sync policies and Redis's appendfsync values */
    static const char *const fsync_names[][2] = {
        {"always", "always"}, {"everysec", "everysec"}, {"never", "no"}};
    char v[256], host[256], port[8];

    if (kvd_options_value_text(s->evt->options, s->eopts, "sync", v,
                               sizeof(v)) == 0) {
        for (size_t i = 0; i < sizeof(fsync_names) / sizeof(fsync_names[0]);
             i++) {
            if (strcmp(v, fsync_names[i][0]) == 0) {
                cc->appendfsync = fsync_names[i][1];
            }
        }
    }
    if (kvd_options_value_text(s->evt->options, s->eopts, "snapshot_interval",
                               v, sizeof(v)) == 0 &&
        strtoll(v, NULL, 10) > 0) {
        snprintf(f->save, sizeof(f->save), "%lld 1",
                 (strtoll(v, NULL, 10) + 999) / 1000);
        cc->save = f->save;
    }
    for (size_t i = 0; i < s->nfe; i++) {
        const struct srv_frontend *fe = &s->fes[i];
        if (strcmp(fe->name, "resp") != 0) {
            continue;
        }
        if (kvd_options_value_text(fe->vt->options, fe->opts, "maxclients", v,
                                   sizeof(v)) == 0) {
            cc->maxclients = atoi(v);
        }
        if (kvd_options_value_text(fe->vt->options, fe->opts, "tcp", v,
                                   sizeof(v)) == 0 &&
            v[0] != '\0' &&
            kvd_options_split_listen(v, host, sizeof(host), port,
                                     sizeof(port)) == 0) {
            cc->tcp_port = atoi(port);
        }
    }
}

static int
srv_start(struct srv *s, struct kvd_err *err)
{
    struct kvd_store_limits lim;
    struct kvd_cmd_config cc = {0};
    struct srv_facts facts;
    char dir[PATH_MAX];
    int rc;

    rc = srv_load_engine(s, err);
    if (rc != 0) {
        return rc;
    }
    rc = srv_load_frontends(s, err);
    if (rc != 0) {
        return rc;
    }
    if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", s->cfg->server.data_dir,
                         s->evt->name) >= sizeof(dir)) {
        return kvd_err_set(err, KVD_EINVAL, "data_dir is too long");
    }
    lim.max_key_bytes = s->cfg->server.max_key_bytes;
    lim.max_value_bytes = s->cfg->server.max_value_bytes;
    rc = kvd_store_open(s->evt, s->eopts, dir, kvd_hostsvc_default(), &lim,
                        &s->store, err);
    if (rc != 0) {
        return rc;
    }
    cc.version = KVD_VERSION;
    cc.config_file = s->cfg->file;
    srv_cmd_facts(s, &cc, &facts);
    rc = kvd_cmd_create(s->store, &cc, &s->cmd, err);
    if (rc != 0) {
        return rc;
    }
    s->iface.abi_version = KVD_ABI_VERSION;
    s->iface.struct_size = sizeof(s->iface);
    s->iface.store = s->store;
    s->iface.store_api = kvd_store_api_table();
    s->iface.cmd = s->cmd;
    s->iface.cmd_api = kvd_cmd_api_table();
    for (size_t i = 0; i < s->nfe; i++) {
        struct srv_frontend *f = &s->fes[i];
        kvd_err_clear(err);
        rc = f->vt->create(kvd_hostsvc_default(), &s->iface, f->opts, &f->fe,
                           err);
        if (rc != 0) {
            char msg[KVD_ERR_MSG_BYTES];
            snprintf(msg, sizeof(msg), "%s",
                     err && err->msg[0] ? err->msg : kvd_strerror(rc));
            f->fe = NULL;
            return kvd_err_set(err, rc, "frontend %s: %s", f->name, msg);
        }
    }
    for (size_t i = 0; i < s->nfe; i++) {
        struct srv_frontend *f = &s->fes[i];
        kvd_err_clear(err);
        rc = f->vt->start(f->fe, err);
        if (rc != 0) {
            char msg[KVD_ERR_MSG_BYTES];
            snprintf(msg, sizeof(msg), "%s",
                     err && err->msg[0] ? err->msg : kvd_strerror(rc));
            return kvd_err_set(err, rc, "frontend %s: start: %s", f->name, msg);
        }
        kvd_log(KVD_LOG_INFO, "frontend %s started", f->name);
    }
    return 0;
}

/* Wait for a stop signal. SIGHUP reopens the log file (after logrotate
 * moved it away); the configuration is read only at start. */
static void
srv_wait(const sigset_t *set)
{
    for (;;) {
        struct kvd_err err = {0};
        int sig = 0;
        if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (sig == SIGHUP) {
            if (kvd_log_reopen(&err) != 0) {
                kvd_log(KVD_LOG_ERROR, "SIGHUP: %s", err.msg);
            } else {
                kvd_log(KVD_LOG_INFO,
                        "SIGHUP: log reopened (the configuration is read "
                        "only at start: restart kvd to apply changes)");
            }
            continue;
        }
        sd_notify(0, "STOPPING=1");
        if (sig == SIGUSR2) {
            kvd_log(KVD_LOG_INFO, "shutting down: %s", shutdown_why);
        } else {
            kvd_log(KVD_LOG_INFO, "shutting down: %s received",
                    sig == SIGINT ? "SIGINT" : "SIGTERM");
        }
        return;
    }
}

int
kvd_server_run(const struct kvd_config *cfg, const struct kvd_run_opts *ro)
{
    struct srv s = {0};
    struct kvd_err err = {0};
    const char *pid_file = ro->pid_file;
    char log_path[PATH_MAX];
    const char *log_file = cfg->server.log_file;
    int ready_fd = -1;
    sigset_t set;
    int rc;

    /* Before anything is created: data, logs and the pid file are kvd's
     * own unless [server] umask shares them. */
    umask((mode_t)cfg->server.umask);
    rc = kvd_preflight_server(cfg, cfg->engine_name, ro->pid_file, &err);
    if (rc != 0) {
        fprintf(stderr, "kvd: %s\n", err.msg);
        return 1;
    }
    if (pid_file == NULL || pid_file[0] == '\0') {
        pid_file = cfg->server.pid_file;
    }
    if (ro->daemonize && !cfg->server.syslog &&
        (log_file == NULL || log_file[0] == '\0')) {
        /* A daemon has no terminal: log next to the data by default. */
        snprintf(log_path, sizeof(log_path), "%s/kvd.log",
                 cfg->server.data_dir);
        mkdir(cfg->server.data_dir, 0777);
        log_file = log_path;
    }
    if (ro->daemonize) {
        ready_fd = daemonize();
    }
    if (cfg->server.syslog) {
        kvd_log_open_syslog(
            kvd_config_syslog_facilities[cfg->server.syslog_facility],
            cfg->server.log_level);
    } else {
        rc = kvd_log_open(log_file, cfg->server.log_level, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "kvd: %s\n", err.msg);
        daemon_ready(ready_fd, 1);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    main_thread = pthread_self();
    kvd_hostsvc_set_shutdown_hook(on_shutdown_request);

    if (pid_file != NULL && pid_file[0] != '\0') {
        rc = pidfile_write(pid_file, &err);
        if (rc != 0) {
            kvd_log(KVD_LOG_ERROR, "%s", err.msg);
            fprintf(stderr, "kvd: %s\n", err.msg);
            daemon_ready(ready_fd, 1);
            return 1;
        }
    }
    s.cfg = cfg;
    s.plugin_dir = plugin_dir_of(cfg);
    kvd_log(KVD_LOG_INFO, "kvd %s starting (config %s, pid %ld)", KVD_VERSION,
            cfg->file, (long)getpid());
    rc = srv_start(&s, &err);
    if (rc != 0) {
        kvd_log(KVD_LOG_ERROR, "start-up failed: %s", err.msg);
        if (log_file != NULL && log_file[0] != '\0') {
            /* The log is a file: say it on the terminal too. */
            fprintf(stderr, "kvd: %s\n", err.msg);
        }
        srv_teardown(&s);
        daemon_ready(ready_fd, 1);
        if (pid_file != NULL && pid_file[0] != '\0') {
            unlink(pid_file);
        }
        return 1;
    }
    kvd_log(KVD_LOG_INFO, "ready: engine %s, %zu frontend(s)", s.evt->name,
            s.nfe);
    daemon_ready(ready_fd, 0);
    /* Every frontend listens: systemd (Type=notify) may start what
     * depends on kvd. A no-op outside systemd ($NOTIFY_SOCKET unset). */
    sd_notifyf(0, "READY=1\nMAINPID=%ld\nSTATUS=serving: engine %s",
               (long)getpid(), s.evt->name);

    srv_wait(&set);
    srv_teardown(&s);
    kvd_hostsvc_set_shutdown_hook(NULL);
    if (pid_file != NULL && pid_file[0] != '\0') {
        unlink(pid_file);
    }
    kvd_log(KVD_LOG_INFO, "bye");
    kvd_log_close();
    return 0;
}
