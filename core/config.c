/*
 * core/config.c -- load the INI file with inih into sections of raw items,
 * then parse [server] against the server option table.
 *
 * inih (Debian's build) calls its handler without a line number and never
 * for a section that has no keys, so the file is fed through our own line
 * reader: it counts lines (the handler reads the count to tag each item) and
 * notices section headers itself, which lets "[frontend.stdin]" with no
 * keys enable a frontend. Everything is copied: inih's strings live only for
 * the handler call.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct cfg_parse {
    struct kvd_config *cfg;
    int line;        /* line the reader returned last */
    const char *src; /* string source: next unread byte */
    FILE *fp;        /* file source */
    struct kvd_err err;
    bool failed;
};

static const char *const log_levels[] = {"error", "warn", "info", "debug",
                                         NULL};

#define SRV_OFF(f) offsetof(struct kvd_server_opts, f)

static const struct kvd_option server_options[] = {
    {"log_level", KVD_OPT_ENUM, "info", 0, 0, SRV_OFF(log_level), log_levels,
     "least severe level written to the log"},
    {"log_file", KVD_OPT_STRING, "", 0, 0, SRV_OFF(log_file), NULL,
     "log to this file (appended); empty = standard error"},
    {"pid_file", KVD_OPT_STRING, "", 0, 0, SRV_OFF(pid_file), NULL,
     "write the server's pid here while it runs; empty = none"},
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

/* Reader hook: note "[name]" lines so empty sections exist too. */
static void
reader_saw_line(struct cfg_parse *p, const char *line)
{
    const char *s = line, *e;
    char name[128];
    size_t n;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (*s != '[' || p->failed) {
        return;
    }
    e = strchr(s, ']');
    if (e == NULL) {
        return; /* inih reports the syntax error */
    }
    s++;
    while (s < e && isspace((unsigned char)*s)) {
        s++;
    }
    n = (size_t)(e - s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    if (n >= sizeof(name)) {
        n = sizeof(name) - 1;
    }
    memcpy(name, s, n);
    name[n] = '\0';
    if (section_add(p, name) == NULL) {
        p->failed = true;
    }
}

static char *
reader_string(char *str, int num, void *stream)
{
    struct cfg_parse *p = stream;
    size_t n = 0;

    if (*p->src == '\0') {
        return NULL;
    }
    while (p->src[n] != '\0' && p->src[n] != '\n' && n + 1 < (size_t)num) {
        n++;
    }
    memcpy(str, p->src, n);
    str[n] = '\0';
    p->src += n;
    if (*p->src == '\n') {
        p->src++;
    }
    p->line++;
    reader_saw_line(p, str);
    return str;
}

static char *
reader_file(char *str, int num, void *stream)
{
    struct cfg_parse *p = stream;
    if (fgets(str, num, p->fp) == NULL) {
        return NULL;
    }
    p->line++;
    reader_saw_line(p, str);
    return str;
}

static int
on_item(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_parse *p = user;
    struct kvd_config *cfg = p->cfg;
    struct kvd_conf_section *sec;
    struct kvd_conf_item *grown, *it;

    if (p->failed) {
        return 0;
    }
    if (section[0] == '\0') {
        kvd_err_set(&p->err, KVD_ECONFIG,
                    "%s:%d: '%s' is outside any section: put it under "
                    "[server], [engine] or [frontend.NAME]",
                    cfg->file, p->line, name);
        goto fail;
    }
    sec = section_find(cfg, section);
    if (sec == NULL) {
        goto fail; /* the reader refused the section header already */
    }
    for (size_t i = 0; i < sec->n; i++) {
        if (strcmp(sec->items[i].key, name) == 0) {
            kvd_err_set(&p->err, KVD_ECONFIG,
                        "%s:%d: [%s] %s is set twice (first at line %d)",
                        cfg->file, p->line, section, name,
                        sec->items[i].line);
            goto fail;
        }
    }
    grown = realloc(sec->items, (sec->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory", cfg->file);
        goto fail;
    }
    sec->items = grown;
    it = &sec->items[sec->n];
    it->key = strdup(name);
    it->value = strdup(value);
    it->line = p->line;
    if (it->key == NULL || it->value == NULL) {
        free(it->key);
        free(it->value);
        kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory", cfg->file);
        goto fail;
    }
    sec->n++;
    return 1;
fail:
    p->failed = true;
    return 0;
}

/* After inih: [server] options and [engine] name. */
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
    int r;

    if (p->src != NULL) {
        r = ini_parse_stream(reader_string, p, on_item, p);
    } else {
        r = ini_parse_stream(reader_file, p, on_item, p);
    }
    if (p->failed) {
        kvd_err_set(err, p->err.code, "%s", p->err.msg);
        goto fail;
    }
    if (r > 0) {
        kvd_err_set(err, KVD_ECONFIG,
                    "%s:%d: syntax error: expected [section], key = value, "
                    "or a comment starting with ; or #",
                    p->cfg->file, r);
        goto fail;
    }
    if (r < 0) {
        kvd_err_set(err, KVD_ENOMEM, "%s: out of memory", p->cfg->file);
        goto fail;
    }
    if (config_finish(p->cfg, err) != 0) {
        goto fail;
    }
    *out = p->cfg;
    return 0;
fail:
    kvd_config_free(p->cfg);
    return err != NULL ? err->code : KVD_ECONFIG;
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
