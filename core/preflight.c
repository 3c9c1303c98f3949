/*
 * core/preflight.c -- file-system and resolver checks shared by
 * `kvd --check-config` and start-up (see preflight.h).
 *
 * "Writable" is tested by creating and removing a directory, not with
 * access(2), which answers yes to root on file systems where creating
 * fails. kvd never changes its uid, so what the check finds is what
 * start-up will find when run as the same user.
 */
#include "core/preflight.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

/* "FILE:LINE: [SECTION] KEY = VALUE" or, for a default,
 * "FILE: [SECTION] KEY = VALUE (default)". */
static void
where(const struct kvd_config *cfg, const char *section,
      const struct kvd_conf_section *sec, const char *key, const char *value,
      char *buf, size_t len)
{
    if (sec != NULL) {
        for (size_t i = 0; i < sec->n; i++) {
            if (strcmp(sec->items[i].key, key) == 0) {
                snprintf(buf, len, "%s:%d: [%s] %s = %s", cfg->file,
                         sec->items[i].line, section, key, value);
                return;
            }
        }
    }
    snprintf(buf, len, "%s: [%s] %s = %s (default)", cfg->file, section, key,
             value);
}

/* The directory part of path ("." when there is none). */
static void
dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL) {
        snprintf(dir, len, ".");
        return;
    }
    n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= len) {
        n = len - 1;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
}

/* Whether dir is an existing directory kvd may create files in; when not,
 * why, in words. */
static bool
dir_usable(const char *dir, char *why, size_t len)
{
    char probe[PATH_MAX];
    struct stat st;

    if (stat(dir, &st) != 0) {
        if (errno == ENOENT) {
            snprintf(why, len, "directory %s does not exist", dir);
        } else {
            snprintf(why, len, "directory %s: %s", dir, strerror(errno));
        }
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, len, "%s is not a directory", dir);
        return false;
    }
    /* Create and remove a directory to know: access(2) says yes to root
     * where mkdir still fails (a read-only or virtual file system). */
    if (snprintf(probe, sizeof(probe), "%s/.kvd-check-XXXXXX", dir) >=
            (int)sizeof(probe) ||
        mkdtemp(probe) == NULL) {
        snprintf(why, len, "directory %s is not writable (%s)", dir,
                 strerror(errno));
        return false;
    }
    rmdir(probe);
    return true;
}

/* A file kvd creates: its directory must exist and be writable. */
static int
check_newfile(const char *loc, const char *path, struct kvd_err *err)
{
    char dir[PATH_MAX], why[PATH_MAX + 64];

    dir_of(path, dir, sizeof(dir));
    if (!dir_usable(dir, why, sizeof(why))) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "%s: %s (the file's directory must exist and be "
                           "writable)",
                           loc, why);
    }
    return 0;
}

/* A directory kvd creates with mkdir -p: it exists and is usable, or its
 * nearest existing ancestor is a writable directory. */
static int
check_newdir(const char *loc, const char *path, struct kvd_err *err)
{
    char dir[PATH_MAX], why[PATH_MAX + 64];
    struct stat st;

    if (stat(path, &st) == 0) {
        if (!dir_usable(path, why, sizeof(why))) {
            return kvd_err_set(err, KVD_ECONFIG,
                               "%s: %s (the data directory must be a "
                               "writable directory)",
                               loc, why);
        }
        return 0;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    for (;;) {
        char up[PATH_MAX];
        dir_of(dir, up, sizeof(up));
        if (strcmp(up, dir) == 0 || stat(up, &st) == 0) {
            if (!dir_usable(up, why, sizeof(why))) {
                return kvd_err_set(err, KVD_ECONFIG,
                                   "%s: cannot be created: %s (the data "
                                   "directory must exist or be creatable)",
                                   loc, why);
            }
            return 0;
        }
        snprintf(dir, sizeof(dir), "%s", up);
    }
}

static int
check_pidfile(const char *loc, const char *path, struct kvd_err *err)
{
    struct stat st;

    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "%s: is a symbolic link (kvd never writes its pid "
                           "file through a link: it could overwrite any "
                           "file)",
                           loc);
    }
    return check_newfile(loc, path, err);
}

int
kvd_preflight_server(const struct kvd_config *cfg, const char *engine,
                     const char *pid_override, struct kvd_err *err)
{
    const struct kvd_server_opts *o = &cfg->server;
    const struct kvd_conf_section *sec = kvd_config_section(cfg, "server");
    char loc[PATH_MAX + 256], path[PATH_MAX];
    int rc;

    where(cfg, "server", sec, "data_dir", o->data_dir, loc, sizeof(loc));
    rc = check_newdir(loc, o->data_dir, err);
    if (rc == 0 && engine != NULL) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", o->data_dir, engine);
        if (stat(path, &st) == 0) {
            rc = check_newdir(loc, path, err);
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (pid_override != NULL && pid_override[0] != '\0') {
        snprintf(loc, sizeof(loc), "--pidfile %s", pid_override);
        rc = check_pidfile(loc, pid_override, err);
    } else if (o->pid_file[0] != '\0') {
        where(cfg, "server", sec, "pid_file", o->pid_file, loc, sizeof(loc));
        rc = check_pidfile(loc, o->pid_file, err);
    }
    if (rc != 0) {
        return rc;
    }
    if (o->log_file[0] != '\0' && o->syslog) {
        where(cfg, "server", sec, "syslog", "yes", loc, sizeof(loc));
        return kvd_err_set(err, KVD_ECONFIG,
                           "%s: log_file is set too (log to one place: "
                           "syslog or log_file)",
                           loc);
    }
    if (o->log_file[0] != '\0') {
        where(cfg, "server", sec, "log_file", o->log_file, loc, sizeof(loc));
        return check_newfile(loc, o->log_file, err);
    }
    return 0;
}

/* The string field of option o in opts ("" when NULL). */
static const char *
opt_string(const struct kvd_option *o, const void *opts)
{
    const char *s;
    memcpy(&s, (const char *)opts + o->offset, sizeof(s));
    return s != NULL ? s : "";
}

/* Resolve a KVD_OPT_LISTEN value as bind() will. *res is the caller's. */
static int
resolve_listen(const char *spec, struct addrinfo **res, char *why, size_t len)
{
    struct addrinfo hints;
    char host[256], port[8];
    int rc;

    if (kvd_options_split_listen(spec, host, sizeof(host), port,
                                 sizeof(port)) != 0) {
        snprintf(why, len, "expected host:port with a port from 0 to 65535");
        return -1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, res);
    if (rc != 0) {
        snprintf(why, len, "host %s does not resolve: %s", host,
                 gai_strerror(rc));
        return -1;
    }
    return 0;
}

int
kvd_preflight_section(const struct kvd_config *cfg, const char *section,
                      const struct kvd_option *table,
                      const struct kvd_conf_section *sec, const void *opts,
                      struct kvd_err *err)
{
    char loc[PATH_MAX + 256], why[512];

    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        const char *v;
        if ((o->type & KVD_OPT_TYPE_MASK) != KVD_OPT_STRING) {
            continue;
        }
        v = opt_string(o, opts);
        if (v[0] == '\0') {
            continue;
        }
        where(cfg, section, sec, o->name, v, loc, sizeof(loc));
        if (o->type & KVD_OPT_NEWFILE) {
            int rc = check_newfile(loc, v, err);
            if (rc != 0) {
                return rc;
            }
        }
        if (o->type & KVD_OPT_LISTEN) {
            struct addrinfo *res = NULL;
            if (resolve_listen(v, &res, why, sizeof(why)) != 0) {
                return kvd_err_set(err, KVD_ECONFIG, "%s: %s", loc, why);
            }
            freeaddrinfo(res);
        }
    }
    return 0;
}

/* Where in msg the word `word` first stands alone (not inside a longer
 * option name), or NULL. */
static const char *
find_word(const char *msg, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = strstr(msg, word); p != NULL;
         p = strstr(p + 1, word)) {
        bool before =
            p > msg && (isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool after = isalnum((unsigned char)p[n]) || p[n] == '_';
        if (!before && !after) {
            return p;
        }
    }
    return NULL;
}

/* The line of the option set in sec that msg names first; else the
 * section's line. */
static int
named_line(const struct kvd_conf_section *sec, const char *msg)
{
    const char *first = NULL;
    int line = sec != NULL ? sec->line : 0;

    for (size_t i = 0; sec != NULL && i < sec->n; i++) {
        const char *at = find_word(msg, sec->items[i].key);
        if (at != NULL && (first == NULL || at < first)) {
            first = at;
            line = sec->items[i].line;
        }
    }
    return line;
}

int
kvd_preflight_rules(const struct kvd_config *cfg, const char *section,
                    const struct kvd_option *table,
                    const struct kvd_conf_section *sec, const void *opts,
                    kvd_preflight_rules_fn check, struct kvd_err *err)
{
    char loc[PATH_MAX + 256], v[256], msg[KVD_ERR_MSG_BYTES];
    struct kvd_err e;
    const char *key = NULL;
    int rc;

    if (check == NULL) {
        return 0;
    }
    kvd_err_clear(&e);
    rc = check(opts, &key, &e);
    if (rc == 0) {
        return 0;
    }
    snprintf(msg, sizeof(msg), "%s", e.msg[0] ? e.msg : kvd_strerror(rc));
    if (key != NULL &&
        kvd_options_value_text(table, opts, key, v, sizeof(v)) == 0) {
        where(cfg, section, sec, key, v, loc, sizeof(loc));
    } else {
        /* the section once: some plugins' messages start with it */
        char tag[128];
        snprintf(tag, sizeof(tag), "[%s]", section);
        snprintf(loc, sizeof(loc), "%s:%d:%s%s", cfg->file,
                 named_line(sec, msg),
                 strncmp(msg, tag, strlen(tag)) == 0 ? "" : " ",
                 strncmp(msg, tag, strlen(tag)) == 0 ? "" : tag);
        return kvd_err_set(err, KVD_ECONFIG, "%s %s", loc, msg);
    }
    return kvd_err_set(err, KVD_ECONFIG, "%s: %s", loc, msg);
}

static bool
addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

int
kvd_preflight_warn(const struct kvd_config *cfg, const char *section,
                   const struct kvd_option *table,
                   const struct kvd_conf_section *sec, const void *opts)
{
    char loc[PATH_MAX + 256], why[512];
    int warned = 0;

    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        if ((o->type & KVD_OPT_SECRET) && opt_string(o, opts)[0] != '\0') {
            return 0; /* a password or token guards every listener */
        }
    }
    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        struct addrinfo *res = NULL;
        bool open_wide = false;
        const char *v;

        if (!(o->type & KVD_OPT_LISTEN)) {
            continue;
        }
        v = opt_string(o, opts);
        if (v[0] == '\0' || resolve_listen(v, &res, why, sizeof(why)) != 0) {
            continue;
        }
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            open_wide = open_wide || !addr_is_loopback(ai->ai_addr);
        }
        freeaddrinfo(res);
        if (open_wide) {
            where(cfg, section, sec, o->name, v, loc, sizeof(loc));
            kvd_log(KVD_LOG_WARN,
                    "%s: listens beyond loopback with no password or token: "
                    "anyone who reaches it can read and write every key",
                    loc);
            warned++;
        }
    }
    return warned;
}
