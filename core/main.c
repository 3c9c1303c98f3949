/*
 * core/main.c -- the kvd command line.
 *
 *   kvd [-c FILE] [--daemon] [--pidfile FILE]   run the server
 *   kvd --check-config FILE                     validate and exit
 *   kvd --list-plugins | --list-options         what is installed
 *   kvd --version | --help
 *
 * With no -c, an installed kvd (the binary at its install path) reads
 * SYSCONFDIR/kvd/kvd.ini (/etc/kvd/kvd.ini for prefix /usr); any other
 * kvd, such as the build tree's, runs on the embedded default
 * configuration (the text of config/kvd.ini): data under ./data, nothing
 * else needed.
 */
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/loader.h"
#include "core/options.h"
#include "core/server.h"

/* The installed binary's default config file, or NULL for the embedded
 * default (a kvd run from the build tree or copied elsewhere). */
static const char *
default_config_file(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0) {
        return NULL;
    }
    exe[n] = '\0';
    return strcmp(exe, KVD_INSTALLED_EXE) == 0 ? KVD_INSTALLED_CONFIG : NULL;
}

static void
usage(FILE *out)
{
    const char *def = default_config_file();
    fprintf(out,
            "usage: kvd [options]\n"
            "\n"
            "Run the kvd key-value server.\n"
            "\n"
            "  -c, --config FILE      configuration file (default: %s)\n"
            "      --check-config [FILE]\n"
            "                         check FILE (default: as -c) as "
            "start-up would,\n"
            "                         without binding, opening data or "
            "running plugins\n"
            "  -d, --daemon           run in the background (logs to "
            "DATA_DIR/kvd.log\n"
            "                         unless [server] log_file is set)\n"
            "  -p, --pidfile FILE     write the pid to FILE (overrides "
            "[server] pid_file)\n"
            "      --print-config     print the built-in default "
            "configuration\n"
            "      --list-plugins     list the engines and frontends "
            "available\n"
            "      --list-options     print every option of the server and "
            "of each plugin\n"
            "  -v, --version          print the version\n"
            "  -h, --help             print this help\n"
            "\n"
            "Signals: SIGINT and SIGTERM stop the server gracefully; "
            "SIGHUP reopens\n"
            "the log file.\n"
            "Docs: kvd(8), kvd.ini(5), README.md, docs/config.md.\n",
            def != NULL ? def : "the built-in default, data under ./data");
}

static void
list_plugins(const char *dir)
{
    char buf[1024];
    printf("plugin directory: %s\n", dir);
    kvd_loader_list(dir, "engine", buf, sizeof(buf));
    printf("engines: %s\n", buf);
    kvd_loader_list(dir, "frontend", buf, sizeof(buf));
    printf("frontends: %s\n", buf);
}

/* Print the option tables of [server] and of every plugin in dir. */
static int
list_options(const char *dir)
{
    static const char *const kinds[] = {"engine", "frontend"};
    char names[1024];

    printf("### server\n\n");
    kvd_options_print(kvd_config_server_options(), "server", stdout);
    for (int k = 0; k < 2; k++) {
        char *save = NULL;
        kvd_loader_list(dir, kinds[k], names, sizeof(names));
        if (strcmp(names, "none") == 0) {
            continue;
        }
        for (char *n = strtok_r(names, ", ", &save); n != NULL;
             n = strtok_r(NULL, ", ", &save)) {
            struct kvd_err err = {0};
            kvd_plugin *p = NULL;
            char section[96];
            int rc;
            if (k == 0) {
                const struct kvd_engine_vtable *vt;
                rc = kvd_loader_open_engine(dir, n, &p, &vt, &err);
                if (rc == 0) {
                    printf("\n### engine `%s`: %s\n\n", n,
                           vt->description ? vt->description : "");
                    kvd_options_print(vt->options, "engine", stdout);
                }
            } else {
                const struct kvd_frontend_vtable *vt;
                rc = kvd_loader_open_frontend(dir, n, &p, &vt, &err);
                if (rc == 0) {
                    snprintf(section, sizeof(section), "frontend.%s", n);
                    printf("\n### frontend `%s`: %s\n\n", n,
                           vt->description ? vt->description : "");
                    kvd_options_print(vt->options, section, stdout);
                }
            }
            if (rc != 0) {
                fprintf(stderr, "kvd: %s\n", err.msg);
            }
            kvd_loader_close(p);
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_LIST_PLUGINS, OPT_LIST_OPTIONS, OPT_PRINT };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", optional_argument, NULL, OPT_CHECK},
        {"daemon", no_argument, NULL, 'd'},
        {"pidfile", required_argument, NULL, 'p'},
        {"print-config", no_argument, NULL, OPT_PRINT},
        {"list-plugins", no_argument, NULL, OPT_LIST_PLUGINS},
        {"list-options", no_argument, NULL, OPT_LIST_OPTIONS},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct kvd_run_opts ro = {0};
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    const char *file = NULL;
    bool check = false;
    int c, rc;

    while ((c = getopt_long(argc, argv, "c:dp:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case OPT_CHECK:
            /* --check-config FILE or --check-config=FILE; alone, the file
             * -c names or the default */
            if (optarg == NULL && optind < argc && argv[optind][0] != '-') {
                optarg = argv[optind++];
            }
            if (optarg != NULL) {
                file = optarg;
            }
            check = true;
            break;
        case 'd':
            ro.daemonize = true;
            break;
        case 'p':
            ro.pid_file = optarg;
            break;
        case OPT_PRINT:
            fputs(kvd_config_default_text, stdout);
            return 0;
        case OPT_LIST_PLUGINS:
            list_plugins(kvd_loader_default_dir());
            return 0;
        case OPT_LIST_OPTIONS:
            return list_options(kvd_loader_default_dir());
        case 'v':
            printf("kvd %s (plugin ABI %d)\n", KVD_VERSION, KVD_ABI_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kvd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (file == NULL) {
        file = default_config_file();
    }
    if (file != NULL) {
        rc = kvd_config_load_file(file, &cfg, &err);
    } else {
        rc = kvd_config_load_string(kvd_config_default_text, "<default>", &cfg,
                                    &err);
    }
    if (rc != 0) {
        fprintf(stderr, "kvd: %s\n", err.msg);
        return 1;
    }
    if (check) {
        rc = kvd_server_check_config(cfg, ro.pid_file, &err);
        if (rc != 0) {
            fprintf(stderr, "kvd: %s\n", err.msg);
        } else {
            printf("%s: configuration is valid (engine %s)\n", cfg->file,
                   cfg->engine_name);
        }
        kvd_config_free(cfg);
        return rc == 0 ? 0 : 1;
    }
    rc = kvd_server_run(cfg, &ro);
    kvd_config_free(cfg);
    return rc;
}
