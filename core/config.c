/*
 * core/config.c -- read the INI file into sections of raw items, then parse
 * [server] against the server option table.
 *
 * The file is read by kvd's own line reader, not a library: lines of any
 * length are one line (a library with a fixed line buffer splits a long
 * line, and the text past the split becomes a setting of its own: a long
 * comment could hide "tcp = 0.0.0.0:6380"). Syntax, the same as inih's
 * defaults without its continuation lines: "[section]", "key = value" (or
 * "key: value"), comment lines starting with ; or #, and " ;" starting an
 * inline comment after a value. Every item keeps its line for messages.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Longest line accepted: far beyond any real setting, small enough that a
 * file of garbage is refused before it costs memory. */
#define CFG_MAX_LINE_BYTES (1 << 20)

struct cfg_parse {
    struct kvd_config *cfg;
    int line;        /* number of the line being parsed */
    const char *src; /* string source: next unread byte */
    FILE *fp;        /* file source */
    char *buf;       /* file source: getline's buffer */
    size_t cap;
    struct kvd_err err;
    struct kvd_conf_section *sec; /* the section items go to */
};

static const char *const log_levels[] = {"error", "warn", "info", "debug",
                                         NULL};

const char *const kvd_config_syslog_facilities[] = {
    "daemon", "user",   "local0", "local1", "local2", "local3",
    "local4", "local5", "local6", "local7", NULL};

#define SRV_OFF(f) offsetof(struct kvd_server_opts, f)

static const struct kvd_option server_options[] = {
    {"log_level", KVD_OPT_ENUM, "info", 0, 0, SRV_OFF(log_level), log_levels,
     "least severe level written to the log"},
    {"log_file", KVD_OPT_STRING | KVD_OPT_NEWFILE, "", 0, 0, SRV_OFF(log_file),
     NULL,
     "log to this file (appended; SIGHUP reopens it, for logrotate); empty "
     "= standard error (under systemd, the journal, with each line's "
     "level)"},
    {"syslog", KVD_OPT_BOOL, "no", 0, 0, SRV_OFF(syslog), NULL,
     "log to syslog (the journal under systemd), each line with its level "
     "as the priority, instead of standard error; not with log_file"},
    {"syslog_facility", KVD_OPT_ENUM, "daemon", 0, 0, SRV_OFF(syslog_facility),
     kvd_config_syslog_facilities, "syslog facility when syslog = yes"},
    {"pid_file", KVD_OPT_STRING | KVD_OPT_NEWFILE, "", 0, 0, SRV_OFF(pid_file),
     NULL,
     "write the server's pid here while it runs (never through a symbolic "
     "link); empty = none"},
    {"umask", KVD_OPT_OCTAL, "0077", 0, 0, SRV_OFF(umask), NULL,
     "file mode creation mask for everything kvd and its engines create "
     "(data files and directories, log and pid files): 0077 keeps them to "
     "kvd's user; 0027 lets kvd's group read them"},
    {"plugin_dir", KVD_OPT_STRING, "", 0, 0, SRV_OFF(plugin_dir), NULL,
     "where engine and frontend plugins are; empty = $KVD_PLUGIN_DIR, the "
     "build tree, or the installed lib/kvd"},
    {"data_dir", KVD_OPT_STRING, "./data", 0, 0, SRV_OFF(data_dir), NULL,
     "data directory; the engine's files go in DATA_DIR/ENGINE"},
    {"max_key_bytes", KVD_OPT_SIZE, "65535", 1, 512LL << 20,
     SRV_OFF(max_key_bytes), NULL, "largest key accepted"},
    {"max_value_bytes", KVD_OPT_SIZE, "512m", 1, 4LL << 30,
     SRV_OFF(max_value_bytes), NULL, "largest value accepted"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

const struct kvd_option *
kvd_config_server_options(void)
{
    return server_options;
}

static struct kvd_conf_section *
section_find(struct kvd_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nsec; i++) {
        if (strcmp(cfg->secs[i].name, name) == 0) {
            return &cfg->secs[i];
        }
    }
    return NULL;
}

const struct kvd_conf_section *
kvd_config_section(const struct kvd_config *cfg, const char *name)
{
    return section_find((struct kvd_config *)cfg, name);
}

static bool
section_name_ok(const char *name)
{
    if (strcmp(name, "server") == 0 || strcmp(name, "engine") == 0) {
        return true;
    }
    if (strncmp(name, "frontend.", 9) == 0 && name[9] != '\0') {
        for (const char *p = name + 9; *p != '\0'; p++) {
            if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') {
                return false;
            }
        }
        return true;
    }
    return false;
}

static struct kvd_conf_section *
section_add(struct cfg_parse *p, const char *name)
{
    struct kvd_config *cfg = p->cfg;
    struct kvd_conf_section *sec = section_find(cfg, name);
    struct kvd_conf_section *grown;

    if (sec != NULL) {
        kvd_err_set(&p->err, KVD_ECONFIG,
                    "%s:%d: section [%s] appears twice (first at line %d)",
                    cfg->file, p->line, name, sec->line);
        return NULL;
    }
    if (!section_name_ok(name)) {
        kvd_err_set(&p->err, KVD_ECONFIG,
                    "%s:%d: unknown section [%s]: expected [server], "
                    "[engine] or [frontend.NAME]",
                    cfg->file, p->line, name);
        return NULL;
    }
    grown = realloc(cfg->secs, (cfg->nsec + 1) * sizeof(*grown));
    if (grown == NULL) {
        kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory", cfg->file);
        return NULL;
    }
    cfg->secs = grown;
    sec = &cfg->secs[cfg->nsec];
    memset(sec, 0, sizeof(*sec));
    sec->name = strdup(name);
    sec->line = p->line;
    sec->file = cfg->file;
    if (sec->name == NULL) {
        kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory", cfg->file);
        return NULL;
    }
    cfg->nsec++;
    return sec;
}

/* The next line without its newline, NUL-terminated; NULL at the end.
 * Sets p->err and returns NULL with p->err.code set on a line too long. */
static char *
cfg_next_line(struct cfg_parse *p, size_t *len)
{
    size_t n;

    if (p->src != NULL) {
        const char *nl;
        if (*p->src == '\0') {
            return NULL;
        }
        nl = strchr(p->src, '\n');
        n = nl != NULL ? (size_t)(nl - p->src) : strlen(p->src);
        if (n >= p->cap) {
            char *grown = realloc(p->buf, n + 1);
            if (grown == NULL) {
                kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory",
                            p->cfg->file);
                return NULL;
            }
            p->buf = grown;
            p->cap = n + 1;
        }
        memcpy(p->buf, p->src, n);
        p->buf[n] = '\0';
        p->src += nl != NULL ? n + 1 : n;
    } else {
        ssize_t r = getline(&p->buf, &p->cap, p->fp);
        if (r < 0) {
            if (ferror(p->fp)) {
                kvd_err_set(&p->err, KVD_EIO, "read %s: %s", p->cfg->file,
                            strerror(errno));
            }
            return NULL;
        }
        n = (size_t)r;
        if (n > 0 && p->buf[n - 1] == '\n') {
            p->buf[--n] = '\0';
        }
    }
    p->line++;
    if (n > CFG_MAX_LINE_BYTES) {
        kvd_err_set(&p->err, KVD_ECONFIG,
                    "%s:%d: line is %zu bytes long: at most %d are allowed",
                    p->cfg->file, p->line, n, CFG_MAX_LINE_BYTES);
        return NULL;
    }
    if (n > 0 && p->buf[n - 1] == '\r') {
        p->buf[--n] = '\0'; /* a file written on Windows */
    }
    *len = n;
    return p->buf;
}

/* s[0..n) without surrounding blanks, NUL-terminated in place. */
static char *
cfg_trim(char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    s[n] = '\0';
    while (isspace((unsigned char)*s)) {
        s++;
    }
    return s;
}

static int
cfg_syntax_error(struct cfg_parse *p, const char *what)
{
    return kvd_err_set(&p->err, KVD_ECONFIG,
                       "%s:%d: syntax error: %s; expected [section], key = "
                       "value, or a comment starting with ; or #",
                       p->cfg->file, p->line, what);
}

/* "[name]", optionally followed by a comment. */
static int
cfg_section_line(struct cfg_parse *p, char *s)
{
    char *end = strchr(s, ']');
    char *rest, *name;

    if (end == NULL) {
        return cfg_syntax_error(p, "'[' without ']'");
    }
    rest = cfg_trim(end + 1, strlen(end + 1));
    if (rest[0] != '\0' && rest[0] != ';' && rest[0] != '#') {
        return cfg_syntax_error(p, "text after ']'");
    }
    name = cfg_trim(s + 1, (size_t)(end - s - 1));
    p->sec = section_add(p, name);
    return p->sec != NULL ? 0 : p->err.code;
}

/* "key = value ; comment" (or "key: value"). */
static int
cfg_item_line(struct cfg_parse *p, char *s)
{
    struct kvd_conf_section *sec = p->sec;
    char *sep = strpbrk(s, "=:");
    struct kvd_conf_item *grown, *it;
    char *key, *value;

    if (sep == NULL) {
        return cfg_syntax_error(p, "no '=' in this line");
    }
    key = cfg_trim(s, (size_t)(sep - s));
    value = sep + 1;
    /* An inline comment starts at a ';' after a blank. */
    for (char *c = value; *c != '\0'; c++) {
        if (*c == ';' && (c == value || isspace((unsigned char)c[-1]))) {
            *c = '\0';
            break;
        }
    }
    value = cfg_trim(value, strlen(value));
    if (key[0] == '\0') {
        return cfg_syntax_error(p, "no key before '='");
    }
    if (sec == NULL) {
        return kvd_err_set(&p->err, KVD_ECONFIG,
                           "%s:%d: '%s' is outside any section: put it under "
                           "[server], [engine] or [frontend.NAME]",
                           p->cfg->file, p->line, key);
    }
    for (size_t i = 0; i < sec->n; i++) {
        if (strcmp(sec->items[i].key, key) == 0) {
            return kvd_err_set(&p->err, KVD_ECONFIG,
                               "%s:%d: [%s] %s is set twice (first at line "
                               "%d)",
                               p->cfg->file, p->line, sec->name, key,
                               sec->items[i].line);
        }
    }
    grown = realloc(sec->items, (sec->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        return kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory",
                           p->cfg->file);
    }
    sec->items = grown;
    it = &sec->items[sec->n];
    it->key = strdup(key);
    it->value = strdup(value);
    it->line = p->line;
    if (it->key == NULL || it->value == NULL) {
        free(it->key);
        free(it->value);
        return kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory",
                           p->cfg->file);
    }
    sec->n++;
    return 0;
}

/* Read every line; 0 or p->err set. */
static int
cfg_read(struct cfg_parse *p)
{
    char *line;
    size_t n;

    while ((line = cfg_next_line(p, &n)) != NULL) {
        int rc = 0;
        if (p->line == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3; /* UTF-8 byte order mark */
            n -= 3;
        }
        line = cfg_trim(line, n);
        if (line[0] == '\0' || line[0] == ';' || line[0] == '#') {
            continue;
        }
        rc =
            line[0] == '[' ? cfg_section_line(p, line) : cfg_item_line(p, line);
        if (rc != 0) {
            return rc;
        }
    }
    return p->err.code;
}

/* After reading: [server] options and [engine] name. */
static int
config_finish(struct kvd_config *cfg, struct kvd_err *err)
{
    const struct kvd_conf_section *eng;
    int rc;

    rc = kvd_options_parse(server_options, section_find(cfg, "server"), NULL,
                           &cfg->server, err);
    if (rc != 0) {
        return rc;
    }
    eng = section_find(cfg, "engine");
    if (eng == NULL) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "%s: no [engine] section: add one with name = "
                           "memory (or another engine)",
                           cfg->file);
    }
    for (size_t i = 0; i < eng->n; i++) {
        if (strcmp(eng->items[i].key, "name") == 0) {
            cfg->engine_name = eng->items[i].value;
        }
    }
    if (cfg->engine_name == NULL || cfg->engine_name[0] == '\0') {
        return kvd_err_set(err, KVD_ECONFIG,
                           "%s:%d: [engine] has no name: set name = memory "
                           "(or another engine)",
                           cfg->file, eng->line);
    }
    return 0;
}

static int
config_load(struct cfg_parse *p, struct kvd_config **out, struct kvd_err *err)
{
    int rc = cfg_read(p);

    free(p->buf);
    p->buf = NULL;
    if (rc != 0) {
        kvd_err_set(err, rc, "%s", p->err.msg);
        goto fail;
    }
    rc = config_finish(p->cfg, err);
    if (rc != 0) {
        goto fail;
    }
    *out = p->cfg;
    return 0;
fail:
    kvd_config_free(p->cfg);
    return rc;
}

static struct kvd_config *
config_new(const char *name)
{
    struct kvd_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        return NULL;
    }
    cfg->file = strdup(name);
    if (cfg->file == NULL) {
        free(cfg);
        return NULL;
    }
    return cfg;
}

int
kvd_config_load_string(const char *text, const char *name,
                       struct kvd_config **out, struct kvd_err *err)
{
    struct cfg_parse p = {0};

    p.cfg = config_new(name);
    if (p.cfg == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "%s: out of memory", name);
    }
    p.src = text;
    return config_load(&p, out, err);
}

int
kvd_config_load_file(const char *path, struct kvd_config **out,
                     struct kvd_err *err)
{
    struct cfg_parse p = {0};
    int rc;

    p.fp = fopen(path, "r");
    if (p.fp == NULL) {
        return kvd_err_set(err, KVD_ECONFIG, "open config %s: %s", path,
                           strerror(errno));
    }
    p.cfg = config_new(path);
    if (p.cfg == NULL) {
        fclose(p.fp);
        return kvd_err_set(err, KVD_ENOMEM, "%s: out of memory", path);
    }
    rc = config_load(&p, out, err);
    fclose(p.fp);
    return rc;
}

void
kvd_config_free(struct kvd_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < cfg->nsec; i++) {
        struct kvd_conf_section *sec = &cfg->secs[i];
        for (size_t j = 0; j < sec->n; j++) {
            free(sec->items[j].key);
            free(sec->items[j].value);
        }
        free(sec->items);
        free(sec->name);
    }
    free(cfg->secs);
    kvd_options_release(server_options, &cfg->server);
    free(cfg->file);
    free(cfg);
}
