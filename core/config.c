/*
 * core/config.c -- load the INI file with inih into sections of raw items,
 * then parse [server] against the server option table.
 *
 * inih parses the syntax: "[section]", "key = value" (or "key: value"),
 * comment lines starting with ; or #, and " ;" starting an inline comment.
 * It reads through kvd's own line reader (ini_parse_stream), because
 * Debian's build has a fixed line buffer (INI_MAX_LINE, 200 bytes) and
 * splits a longer line: the text past the split would become a setting of
 * its own (a long comment could hide "tcp = 0.0.0.0:6380"). The reader
 *   - hands inih one whole line at a time and refuses, with file:line (and
 *     the key, when the line has one), a line that does not fit the buffer
 *     inih passes it, so nothing is ever split and its line count is
 *     inih's (the handler tags items with it: Debian's handler gets no
 *     line number);
 *   - strips leading blanks (and the UTF-8 byte order mark), so an
 *     indented line is a line of its own, never a continuation of the
 *     previous value;
 *   - reads "[name]" headers itself and hands inih the name trimmed, as
 *     "[name]": the name must be a known section, short enough for inih's
 *     section buffer, so both always agree on the section (blanks inside
 *     the brackets or a long name once made them disagree); sections with
 *     no keys exist too ("[frontend.stdin]" enables a frontend);
 *   - refuses a line inih would call a syntax error, with its line, before
 *     inih sees it (inih goes on past errors and reports only a number).
 * The handler still checks that inih's section is the reader's, so the two
 * never disagree silently. Everything is copied: inih's strings live only
 * for the handler call.
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

/* Longest section name (between the brackets, trimmed). inih keeps 49
 * bytes of a section's name (MAX_SECTION, 50, is compiled into the
 * library); kvd's names are "server", "engine" and "frontend.NAME". */
#define CFG_MAX_SECTION_NAME 40

struct cfg_parse {
    struct kvd_config *cfg;
    int line;           /* lines read: the line inih is parsing */
    const char *src;    /* string source: next unread byte; NULL for fp */
    FILE *fp;           /* file source */
    struct kvd_err err; /* first error; stops the reader */
    struct kvd_conf_section *sec; /* the section of the lines read */
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

static int
cfg_getc(struct cfg_parse *p)
{
    if (p->src != NULL) {
        return *p->src != '\0' ? (unsigned char)*p->src++ : EOF;
    }
    return getc(p->fp);
}

static int
cfg_syntax_error(struct cfg_parse *p, const char *what)
{
    return kvd_err_set(&p->err, KVD_ECONFIG,
                       "%s:%d: syntax error: %s; expected [section], key = "
                       "value, or a comment starting with ; or #",
                       p->cfg->file, p->line, what);
}

/* The first of chars in s, or the ';' of an inline comment (a ';' after a
 * blank), or the end: where inih stops looking for chars. */
static const char *
cfg_find(const char *s, const char *chars)
{
    bool blank = false;

    for (; *s != '\0'; s++) {
        if (strchr(chars, *s) != NULL || (blank && *s == ';')) {
            break;
        }
        blank = isspace((unsigned char)*s);
    }
    return s;
}

/* s[0..n) without surrounding blanks, as a new string. */
static char *
cfg_trimdup(const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        n--;
    }
    return strndup(s, n);
}

/* "[name]", optionally followed by a comment: the section items go to.
 * s is rewritten as "[name]" (never longer), the name inih then reads. */
static int
cfg_section_line(struct cfg_parse *p, char *s)
{
    const char *end = cfg_find(s + 1, "]");
    const char *rest;
    char *name;

    if (*end != ']') {
        return cfg_syntax_error(p, "'[' without ']'");
    }
    for (rest = end + 1; isspace((unsigned char)*rest); rest++) {
    }
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        return cfg_syntax_error(p, "text after ']'");
    }
    name = cfg_trimdup(s + 1, (size_t)(end - s - 1));
    if (name == NULL) {
        return kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory",
                           p->cfg->file);
    }
    if (strlen(name) > CFG_MAX_SECTION_NAME) {
        kvd_err_set(&p->err, KVD_ECONFIG,
                    "%s:%d: section name longer than %d bytes: expected "
                    "[server], [engine] or [frontend.NAME]",
                    p->cfg->file, p->line, CFG_MAX_SECTION_NAME);
    } else {
        p->sec = section_add(p, name);
        if (p->sec != NULL) {
            size_t n = strlen(name); /* n + 2 <= end - s + 1: it fits */
            s[0] = '[';
            memcpy(s + 1, name, n);
            s[n + 1] = ']';
            s[n + 2] = '\0';
        }
    }
    free(name);
    return p->err.code;
}

/* Check a line, its leading blanks gone, before inih parses it. */
static int
cfg_check_line(struct cfg_parse *p, char *s)
{
    const char *sep;

    if (*s == '\0' || *s == ';' || *s == '#') {
        return 0;
    }
    if (*s == '[') {
        return cfg_section_line(p, s);
    }
    sep = cfg_find(s, "=:");
    if (*sep != '=' && *sep != ':') {
        return cfg_syntax_error(p, "no '=' in this line");
    }
    return 0;
}

/* The error for a line longer than room bytes, of which head is the
 * start: it names the section and key when the head shows them. */
static void
cfg_long_line(struct cfg_parse *p, const char *head, size_t room)
{
    const char *key = head, *sep;
    int klen = 0;

    while (isspace((unsigned char)*key)) {
        key++;
    }
    sep = cfg_find(key, "=:");
    if (p->sec != NULL && strchr("[;#", *key) == NULL &&
        (*sep == '=' || *sep == ':')) {
        while (sep > key && isspace((unsigned char)sep[-1])) {
            sep--;
        }
        klen = sep - key > 64 ? 64 : (int)(sep - key);
    }
    if (klen > 0) {
        kvd_err_set(&p->err, KVD_ECONFIG,
                    "%s:%d: [%s] %.*s: line longer than %zu bytes (the most "
                    "a line may hold, comments too)",
                    p->cfg->file, p->line, p->sec->name, klen, key, room);
    } else {
        kvd_err_set(&p->err, KVD_ECONFIG,
                    "%s:%d: line longer than %zu bytes (the most a line may "
                    "hold, comments too)",
                    p->cfg->file, p->line, room);
    }
}

/* ini_reader: the next whole line into str (num bytes) as fgets would
 * return it, or NULL at the end or after an error (p->err is set). */
static char *
cfg_reader(char *str, int num, void *stream)
{
    struct cfg_parse *p = stream;
    /* Text that fits with the '\n' and the NUL after it. */
    size_t room = num > 2 ? (size_t)num - 2 : 0;
    size_t n = 0, skip = 0;
    bool more = false; /* bytes left on the line after room + 1 */
    int c;

    if (p->err.code != 0) {
        return NULL;
    }
    c = cfg_getc(p);
    if (c == EOF) {
        if (p->fp != NULL && ferror(p->fp)) {
            kvd_err_set(&p->err, KVD_EIO, "read %s: %s", p->cfg->file,
                        strerror(errno));
        }
        return NULL;
    }
    p->line++;
    for (; c != EOF && c != '\n'; c = cfg_getc(p)) {
        if (c == '\0') {
            kvd_err_set(&p->err, KVD_ECONFIG,
                        "%s:%d: a NUL byte in the line: the file is not text",
                        p->cfg->file, p->line);
            return NULL;
        }
        if (n > room) {
            more = true;
            break;
        }
        str[n++] = (char)c; /* up to room + 1: a '\r' may end the line */
    }
    if (!more && n > 0 && str[n - 1] == '\r') {
        n--; /* a file written on Windows */
    }
    if (more || n > room) {
        str[n] = '\0'; /* n <= room + 1 < num */
        cfg_long_line(p, str, room);
        return NULL;
    }
    if (p->line == 1 && n >= 3 && memcmp(str, "\xEF\xBB\xBF", 3) == 0) {
        skip = 3; /* UTF-8 byte order mark */
    }
    while (skip < n && isspace((unsigned char)str[skip])) {
        skip++;
    }
    memmove(str, str + skip, n - skip);
    n -= skip;
    str[n] = '\0';
    if (cfg_check_line(p, str) != 0) {
        return NULL;
    }
    n = strlen(str); /* a section header may have been rewritten shorter */
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

/* "key = value" of the line just read. */
static int
cfg_add_item(struct cfg_parse *p, const char *section, const char *key,
             const char *value)
{
    struct kvd_conf_section *sec = p->sec;
    struct kvd_conf_item *grown, *it;

    if (key[0] == '\0') {
        return cfg_syntax_error(p, "no key before '='");
    }
    if (sec == NULL) {
        return kvd_err_set(&p->err, KVD_ECONFIG,
                           "%s:%d: '%s' is outside any section: put it under "
                           "[server], [engine] or [frontend.NAME]",
                           p->cfg->file, p->line, key);
    }
    if (strcmp(section, sec->name) != 0) {
        return kvd_err_set(&p->err, KVD_ECONFIG,
                           "%s:%d: [%s] %s: the INI parser read this line as "
                           "part of [%s]",
                           p->cfg->file, p->line, sec->name, key, section);
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

/* ini_handler: nonzero to go on. */
static int
cfg_on_item(void *user, const char *section, const char *key, const char *value)
{
    struct cfg_parse *p = user;

    if (p->err.code != 0) {
        return 0;
    }
    return cfg_add_item(p, section, key, value) == 0;
}

/* Every line through inih; 0 or p->err set. */
static int
cfg_read(struct cfg_parse *p)
{
    int r = ini_parse_stream(cfg_reader, p, cfg_on_item, p);

    /* inih returns the first line it found wrong; the reader and the
     * handler stop at the first they find. The earlier one is reported. */
    if (r > 0 && (p->err.code == 0 || r < p->line)) {
        p->line = r;
        return cfg_syntax_error(p, "the INI parser refused this line");
    }
    if (p->err.code != 0) {
        return p->err.code;
    }
    if (r < 0) {
        return kvd_err_set(&p->err, KVD_ENOMEM, "%s: out of memory",
                           p->cfg->file);
    }
    return 0;
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
