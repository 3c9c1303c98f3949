/*
 * core/options.h -- parse INI key/value pairs against a kvd_option table.
 *
 * One parser serves the [server] section, every engine and every frontend,
 * so every option of every plugin gets the same syntax (sizes with k/m/g,
 * durations with ms/s/m/h, yes/no booleans) and the same error messages:
 * "FILE:LINE: [SECTION] KEY = VALUE: expected ...".
 */
#ifndef KVD_CORE_OPTIONS_H
#define KVD_CORE_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "kvd/host.h"
#include "kvd/status.h"

/* One key = value line of a section, as read from the file. */
struct kvd_conf_item {
    char *key;
    char *value;
    int line;
};

/* A section: "server", "engine", "frontend.resp". Owned by kvd_config. */
struct kvd_conf_section {
    char *name;
    int line;
    size_t n;
    struct kvd_conf_item *items;
    const char *file; /* for messages */
};

/*
 * Fill the zeroed struct `dst` from `sec` (may be NULL: defaults only).
 * Keys in `skip` (NULL-terminated, may be NULL) are left for the caller
 * (e.g. "name" in [engine]). Unknown keys and bad values are errors
 * (KVD_ECONFIG) naming file, line, section, key and what is allowed.
 * Strings are malloc'd; free them with kvd_options_release.
 */
int kvd_options_parse(const struct kvd_option *table,
                      const struct kvd_conf_section *sec,
                      const char *const *skip, void *dst, struct kvd_err *err);

/* Free the strings kvd_options_parse allocated in dst. */
void kvd_options_release(const struct kvd_option *table, void *dst);

/* The value of option `name` in `opts` (a struct kvd_options_parse filled
 * from `table`) as text in buf: an enum's choice, yes/no, a number
 * (durations in milliseconds, sizes in bytes), an octal mode, a string.
 * 0, or -1 when the table has no such option. For reports of what the
 * host runs with (CONFIG GET, INFO). */
int kvd_options_value_text(const struct kvd_option *table, const void *opts,
                           const char *name, char *buf, size_t cap);

/* Split a KVD_OPT_LISTEN value ("host:port", "[v6]:port", ":port",
 * "port") into host (127.0.0.1 when absent) and port (0 to 65535).
 * 0, or -1 when the syntax or the port is wrong or a buffer is short. */
int kvd_options_split_listen(const char *spec, char *host, size_t hostlen,
                             char *port, size_t portlen);

/* Print the table as a Markdown table (docs/config.md, --list-options). */
void kvd_options_print(const struct kvd_option *table, const char *section,
                       FILE *out);

#endif /* KVD_CORE_OPTIONS_H */
