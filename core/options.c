/*
 * core/options.c -- typed option parsing shared by [server], every engine
 * and every frontend.
 *
 * Syntax accepted for each type (documented once, in docs/config.md):
 *   BOOL      yes/no, true/false, on/off, 1/0 (any case)
 *   INT       decimal integer within [min, max]
 *   SIZE      integer with optional k, m, g, t suffix (powers of 1024,
 *             "kb"/"kib" spellings too) within [min, max]
 *   DURATION  integer with ms, s, m or h suffix; a bare number is seconds
 *   ENUM      one of the listed choices (any case)
 *   STRING    any text (copied)
 *   OCTAL     file mode such as 0600
 * Constraint flags or-ed into the type (kvd/host.h): POW2 (a power of
 * two), LISTEN (an address to listen on: syntax and port range here, name
 * resolution in core/preflight.c), NEWFILE and SECRET (checked by
 * core/preflight.c, which needs the file system).
 * Defaults are written in the same syntax and parsed by the same code, so
 * the table is the one source of truth for docs and behaviour.
 */
#include "core/options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *
opt_type_name(int type)
{
    if (type & KVD_OPT_LISTEN) {
        return "address";
    }
    if (type & KVD_OPT_NEWFILE) {
        return "path";
    }
    switch (type & KVD_OPT_TYPE_MASK) {
    case KVD_OPT_BOOL:
        return "boolean";
    case KVD_OPT_INT:
        return "integer";
    case KVD_OPT_SIZE:
        return "size";
    case KVD_OPT_DURATION:
        return "duration";
    case KVD_OPT_ENUM:
        return "enum";
    case KVD_OPT_STRING:
        return "string";
    case KVD_OPT_OCTAL:
        return "octal mode";
    default:
        return "?";
    }
}

/* Parse a leading decimal integer; *end is set past it. */
static bool
parse_i64(const char *s, int64_t *out, const char **end)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (e == s || errno == ERANGE) {
        return false;
    }
    *out = v;
    *end = e;
    return true;
}

static bool
suffix_is(const char *s, const char *const *names)
{
    for (; *names != NULL; names++) {
        if (strcasecmp(s, *names) == 0) {
            return true;
        }
    }
    return false;
}

static bool
parse_size(const char *s, int64_t *out)
{
    static const char *const k[] = {"k", "kb", "kib", NULL};
    static const char *const m[] = {"m", "mb", "mib", NULL};
    static const char *const g[] = {"g", "gb", "gib", NULL};
    static const char *const t[] = {"t", "tb", "tib", NULL};
    const char *end;
    int64_t v;
    int shift;

    if (!parse_i64(s, &v, &end) || v < 0) {
        return false;
    }
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (*end == '\0' || strcasecmp(end, "b") == 0) {
        shift = 0;
    } else if (suffix_is(end, k)) {
        shift = 10;
    } else if (suffix_is(end, m)) {
        shift = 20;
    } else if (suffix_is(end, g)) {
        shift = 30;
    } else if (suffix_is(end, t)) {
        shift = 40;
    } else {
        return false;
    }
    if (v > (INT64_MAX >> shift)) {
        return false;
    }
    *out = v << shift;
    return true;
}

static bool
parse_duration(const char *s, int64_t *out)
{
    const char *end;
    int64_t v, mult;

    if (!parse_i64(s, &v, &end) || v < 0) {
        return false;
    }
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (strcasecmp(end, "ms") == 0) {
        mult = 1;
    } else if (*end == '\0' || strcasecmp(end, "s") == 0) {
        mult = 1000;
    } else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "min") == 0) {
        mult = 60 * 1000;
    } else if (strcasecmp(end, "h") == 0) {
        mult = 3600 * 1000;
    } else {
        return false;
    }
    if (v > INT64_MAX / mult) {
        return false;
    }
    *out = v * mult;
    return true;
}

static bool
parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1", NULL};
    static const char *const no[] = {"no", "false", "off", "0", NULL};
    if (suffix_is(s, yes)) {
        *out = 1;
        return true;
    }
    if (suffix_is(s, no)) {
        *out = 0;
        return true;
    }
    return false;
}

/* "a, b or c" */
static void
choices_text(const char *const *c, char *buf, size_t len)
{
    size_t n = 0, count = 0;
    buf[0] = '\0';
    for (const char *const *p = c; *p != NULL; p++) {
        count++;
    }
    for (size_t i = 0; i < count && n < len; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == count ? " or " : ", ");
        int r = snprintf(buf + n, len - n, "%s%s", sep, c[i]);
        if (r < 0) {
            break;
        }
        n += (size_t)r;
    }
}

/* What the option accepts, for error messages. */
static void
expected_text(const struct kvd_option *o, char *buf, size_t len)
{
    int type = o->type & KVD_OPT_TYPE_MASK;

    if (o->type & KVD_OPT_LISTEN) {
        snprintf(buf, len,
                 "host:port, [v6addr]:port, :port or port with a port from "
                 "0 to 65535 (no host: 127.0.0.1), or empty for none");
        return;
    }
    switch (type) {
    case KVD_OPT_BOOL:
        snprintf(buf, len, "yes or no");
        break;
    case KVD_OPT_ENUM:
        choices_text(o->choices, buf, len);
        break;
    case KVD_OPT_OCTAL:
        snprintf(buf, len, "an octal file mode such as 0600");
        break;
    case KVD_OPT_INT:
    case KVD_OPT_SIZE:
    case KVD_OPT_DURATION: {
        const char *what =
            (o->type & KVD_OPT_POW2)
                ? (type == KVD_OPT_INT ? "a power of two"
                                       : "a size that is a power of two")
                : (type == KVD_OPT_INT
                       ? "an integer"
                       : (type == KVD_OPT_SIZE
                              ? "a size (e.g. 64m)"
                              : "a duration (e.g. 500ms, 10s, 5m)"));
        if (o->min == 0 && o->max == 0) {
            snprintf(buf, len, "%s", what);
        } else {
            snprintf(buf, len, "%s from %" PRId64 " to %" PRId64 "%s", what,
                     o->min, o->max,
                     type == KVD_OPT_SIZE
                         ? " bytes"
                         : (type == KVD_OPT_DURATION ? " ms" : ""));
        }
        break;
    }
    default:
        snprintf(buf, len, "%s",
                 (o->type & KVD_OPT_NEWFILE)
                     ? "a path whose directory exists and is writable, or "
                       "empty for none"
                     : "a string");
    }
}

int
kvd_options_split_listen(const char *spec, char *host, size_t hostlen,
                         char *port, size_t portlen)
{
    const char *colon;
    size_t hl, pl;

    if (spec[0] == '[') {
        const char *close_br = strchr(spec, ']');
        if (close_br == NULL || close_br[1] != ':') {
            return -1;
        }
        hl = (size_t)(close_br - spec - 1);
        colon = close_br + 1;
        spec++;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL) {
            colon = spec - 1; /* a port alone */
            hl = 0;
        } else {
            hl = (size_t)(colon - spec);
        }
    }
    if (hl >= hostlen) {
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (host[0] == '\0') {
        snprintf(host, hostlen, "127.0.0.1");
    }
    pl = strlen(colon + 1);
    if (pl == 0 || pl > 5 || pl >= portlen ||
        strspn(colon + 1, "0123456789") != pl || atoi(colon + 1) > 65535) {
        return -1;
    }
    memcpy(port, colon + 1, pl + 1);
    return 0;
}

static bool
listen_ok(const char *spec)
{
    char host[256], port[8];
    return spec[0] == '\0' || kvd_options_split_listen(spec, host, sizeof(host),
                                                       port, sizeof(port)) == 0;
}

/* Parse `value` for option o into dst. Returns false when invalid. */
static bool
opt_set(const struct kvd_option *o, const char *value, void *dst)
{
    char *field = (char *)dst + o->offset;
    int64_t v;

    switch (o->type & KVD_OPT_TYPE_MASK) {
    case KVD_OPT_BOOL: {
        int b;
        if (!parse_bool(value, &b)) {
            return false;
        }
        memcpy(field, &b, sizeof(b));
        return true;
    }
    case KVD_OPT_INT: {
        const char *end;
        if (!parse_i64(value, &v, &end) || *end != '\0') {
            return false;
        }
        break;
    }
    case KVD_OPT_SIZE:
        if (!parse_size(value, &v)) {
            return false;
        }
        break;
    case KVD_OPT_DURATION:
        if (!parse_duration(value, &v)) {
            return false;
        }
        break;
    case KVD_OPT_ENUM:
        for (int i = 0; o->choices[i] != NULL; i++) {
            if (strcasecmp(value, o->choices[i]) == 0) {
                memcpy(field, &i, sizeof(i));
                return true;
            }
        }
        return false;
    case KVD_OPT_OCTAL: {
        char *end;
        errno = 0;
        long m = strtol(value, &end, 8);
        if (end == value || *end != '\0' || errno != 0 || m < 0 || m > 07777) {
            return false;
        }
        int mi = (int)m;
        memcpy(field, &mi, sizeof(mi));
        return true;
    }
    case KVD_OPT_STRING: {
        char *copy, *old;
        if ((o->type & KVD_OPT_LISTEN) && !listen_ok(value)) {
            return false;
        }
        copy = strdup(value);
        if (copy == NULL) {
            return false;
        }
        memcpy(&old, field, sizeof(old));
        free(old);
        memcpy(field, &copy, sizeof(copy));
        return true;
    }
    default:
        return false;
    }
    if ((o->min != 0 || o->max != 0) && (v < o->min || v > o->max)) {
        return false;
    }
    if ((o->type & KVD_OPT_POW2) && (v <= 0 || (v & (v - 1)) != 0)) {
        return false;
    }
    if ((o->type & KVD_OPT_TYPE_MASK) == KVD_OPT_SIZE) {
        uint64_t u = (uint64_t)v;
        memcpy(field, &u, sizeof(u));
    } else {
        memcpy(field, &v, sizeof(v));
    }
    return true;
}

static bool
in_list(const char *key, const char *const *list)
{
    if (list == NULL) {
        return false;
    }
    for (; *list != NULL; list++) {
        if (strcmp(key, *list) == 0) {
            return true;
        }
    }
    return false;
}

static const struct kvd_option *
opt_find(const struct kvd_option *table, const char *key)
{
    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        if (strcmp(o->name, key) == 0) {
            return o;
        }
    }
    return NULL;
}

int
kvd_options_value_text(const struct kvd_option *table, const void *opts,
                       const char *name, char *buf, size_t cap)
{
    const struct kvd_option *o = opt_find(table, name);
    const char *field;
    int64_t v;
    uint64_t u;
    int i;
    const char *str;

    if (o == NULL || opts == NULL || cap == 0) {
        return -1;
    }
    field = (const char *)opts + o->offset;
    switch (o->type & KVD_OPT_TYPE_MASK) {
    case KVD_OPT_BOOL:
        memcpy(&i, field, sizeof(i));
        snprintf(buf, cap, "%s", i ? "yes" : "no");
        break;
    case KVD_OPT_ENUM:
        memcpy(&i, field, sizeof(i));
        snprintf(buf, cap, "%s", o->choices[i]);
        break;
    case KVD_OPT_OCTAL:
        memcpy(&i, field, sizeof(i));
        snprintf(buf, cap, "%04o", (unsigned)i);
        break;
    case KVD_OPT_INT:
    case KVD_OPT_DURATION:
        memcpy(&v, field, sizeof(v));
        snprintf(buf, cap, "%lld", (long long)v);
        break;
    case KVD_OPT_SIZE:
        memcpy(&u, field, sizeof(u));
        snprintf(buf, cap, "%llu", (unsigned long long)u);
        break;
    case KVD_OPT_STRING:
        memcpy(&str, field, sizeof(str));
        snprintf(buf, cap, "%s", str != NULL ? str : "");
        break;
    default:
        return -1;
    }
    return 0;
}

/* "a, b, c": the known keys, for "unknown key" messages. */
static void
known_keys(const struct kvd_option *table, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        int r = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", o->name);
        if (r < 0 || (size_t)r >= len - n) {
            break;
        }
        n += (size_t)r;
    }
    if (n == 0) {
        snprintf(buf, len, "none");
    }
}

int
kvd_options_parse(const struct kvd_option *table,
                  const struct kvd_conf_section *sec, const char *const *skip,
                  void *dst, struct kvd_err *err)
{
    char expect[160];

    /* Defaults first; a bad default is a programming error in the table. */
    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        if (o->def != NULL && !opt_set(o, o->def, dst)) {
            expected_text(o, expect, sizeof(expect));
            return kvd_err_set(err, KVD_EINVAL,
                               "option table: default of %s = '%s' is "
                               "invalid: expected %s",
                               o->name, o->def, expect);
        }
    }
    if (sec == NULL) {
        return 0;
    }
    for (size_t i = 0; i < sec->n; i++) {
        const struct kvd_conf_item *it = &sec->items[i];
        const struct kvd_option *o;

        if (in_list(it->key, skip)) {
            continue;
        }
        o = opt_find(table, it->key);
        if (o == NULL) {
            known_keys(table, expect, sizeof(expect));
            return kvd_err_set(err, KVD_ECONFIG,
                               "%s:%d: [%s] unknown key '%s' (known keys: "
                               "%s)",
                               sec->file, it->line, sec->name, it->key, expect);
        }
        if (!opt_set(o, it->value, dst)) {
            expected_text(o, expect, sizeof(expect));
            return kvd_err_set(err, KVD_ECONFIG,
                               "%s:%d: [%s] %s = %s: expected %s", sec->file,
                               it->line, sec->name, it->key, it->value, expect);
        }
    }
    return 0;
}

void
kvd_options_release(const struct kvd_option *table, void *dst)
{
    if (dst == NULL) {
        return;
    }
    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        if ((o->type & KVD_OPT_TYPE_MASK) == KVD_OPT_STRING) {
            char *field = (char *)dst + o->offset;
            char *s;
            memcpy(&s, field, sizeof(s));
            free(s);
            s = NULL;
            memcpy(field, &s, sizeof(s));
        }
    }
}

void
kvd_options_print(const struct kvd_option *table, const char *section,
                  FILE *out)
{
    char expect[256];

    fprintf(out, "| [%s] key | type | default | accepts | description |\n",
            section);
    fprintf(out, "|---|---|---|---|---|\n");
    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        expected_text(o, expect, sizeof(expect));
        fprintf(out, "| `%s` | %s | `%s` | %s | %s |\n", o->name,
                opt_type_name(o->type),
                o->def != NULL && o->def[0] != '\0' ? o->def : "(empty)",
                expect, o->help != NULL ? o->help : "");
    }
}
