/*
 * core/config.h -- the INI configuration file (parsed with inih, through
 * kvd's own line reader: a line too long for inih's buffer is refused
 * with its file:line, never split).
 *
 * Sections: [server] (parsed here against the server option table),
 * [engine] (name = ENGINE plus that engine's options) and one
 * [frontend.NAME] per frontend to run. Plugin sections are kept as raw
 * key/value/line items and parsed against the plugin's own option table
 * once the plugin is loaded (kvd_options_parse), so messages name the file
 * and line wherever the mistake is found. Unknown sections, duplicate keys
 * and bad values are errors.
 */
#ifndef KVD_CORE_CONFIG_H
#define KVD_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/options.h"
#include "kvd/status.h"

/* Parsed [server] section. */
struct kvd_server_opts {
    int log_level;
    char *log_file;
    char *pid_file;
    char *plugin_dir;
    char *data_dir;
    uint64_t max_key_bytes;
    uint64_t max_value_bytes;
    int umask;           /* applied before anything is created */
    int syslog;          /* log to syslog instead of stderr or log_file */
    int syslog_facility; /* index into kvd_config_syslog_facilities */
};

/* The names of [server] syslog_facility, in option order. */
extern const char *const kvd_config_syslog_facilities[];

struct kvd_config {
    char *file; /* path, or "<default>" for the embedded config */
    size_t nsec;
    struct kvd_conf_section *secs;
    struct kvd_server_opts server;
    const char *engine_name; /* [engine] name */
};

/* The embedded default configuration (text of config/kvd.ini). */
extern const char kvd_config_default_text[];

int kvd_config_load_file(const char *path, struct kvd_config **out,
                         struct kvd_err *err);
int kvd_config_load_string(const char *text, const char *name,
                           struct kvd_config **out, struct kvd_err *err);
void kvd_config_free(struct kvd_config *cfg);

/* The section called name, or NULL. */
const struct kvd_conf_section *kvd_config_section(const struct kvd_config *cfg,
                                                  const char *name);

/* The server option table (for docs and --list-options). */
const struct kvd_option *kvd_config_server_options(void);

#endif /* KVD_CORE_CONFIG_H */
