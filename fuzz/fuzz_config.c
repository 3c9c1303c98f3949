/*
 * fuzz/fuzz_config.c -- the INI configuration and option parsing
 * (core/config.c, core/options.c; the INI syntax itself is inih's).
 *
 * Input: a configuration file's text. It is loaded as kvd loads its file
 * (the [server] options parsed and checked), then every section is parsed
 * against a table holding one option of each type, as an engine's or a
 * frontend's options are, and released. Errors are expected; crashes,
 * leaks and reads past the text are not.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/options.h"
#include "fuzz_util.h"

struct fz_opts {
    int b;
    int64_t i;
    uint64_t sz;
    int64_t ms;
    int e;
    char *s;
    int mode;
};

static const char *const fz_choices[] = {"always", "everysec", "never", NULL};

static const struct kvd_option fz_table[] = {
    {"b", KVD_OPT_BOOL, "no", 0, 0, offsetof(struct fz_opts, b), NULL, "b"},
    {"i", KVD_OPT_INT, "1", -5, 1000000, offsetof(struct fz_opts, i), NULL,
     "i"},
    {"sz", KVD_OPT_SIZE, "4k", 0, 0, offsetof(struct fz_opts, sz), NULL, "sz"},
    {"ms", KVD_OPT_DURATION, "1s", 1, 3600000, offsetof(struct fz_opts, ms),
     NULL, "ms"},
    {"e", KVD_OPT_ENUM, "never", 0, 0, offsetof(struct fz_opts, e), fz_choices,
     "e"},
    {"s", KVD_OPT_STRING, "", 0, 0, offsetof(struct fz_opts, s), NULL, "s"},
    {"mode", KVD_OPT_OCTAL, "0600", 0, 0777, offsetof(struct fz_opts, mode),
     NULL, "mode"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    static const char *const skip[] = {"name", NULL};

    FZ_CHECK(text != NULL);
    if (size > 0) {
        memcpy(text, data, size);
    }
    text[size] = '\0'; /* the loader takes a C string */
    if (kvd_config_load_string(text, "fuzz.ini", &cfg, &err) == 0) {
        /* the contract: 0 means a configuration (kvd uses it at once) */
        FZ_CHECK(cfg != NULL);
        for (size_t i = 0; i < cfg->nsec; i++) {
            struct fz_opts o;

            memset(&o, 0, sizeof(o));
            err.msg[0] = '\0';
            if (kvd_options_parse(fz_table, &cfg->secs[i], skip, &o, &err) ==
                0) {
                FZ_CHECK(o.e >= 0 && o.e < 3);
            }
            kvd_options_release(fz_table, &o);
        }
        kvd_config_free(cfg);
    }
    free(text);
    return 0;
}
