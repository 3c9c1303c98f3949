/*
 * Unit tests for core/config.c: sections, line numbers in messages, the
 * [server] table, and the embedded default configuration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

static int
load(const char *text, struct kvd_config **cfg, struct kvd_err *err)
{
    return kvd_config_load_string(text, "t.ini", cfg, err);
}

static void
test_config_default_text_parses(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(kvd_config_load_string(kvd_config_default_text,
                                            "<default>", &cfg, &err),
                     0);
    assert_string_equal(cfg->server.data_dir, "./data");
    assert_non_null(cfg->engine_name);
    assert_non_null(kvd_config_section(cfg, "server"));
    kvd_config_free(cfg);
}

static void
test_config_reads_sections_and_lines(void **state)
{
    struct kvd_config *cfg = NULL;
    const struct kvd_conf_section *eng, *fe;
    (void)state;
    assert_int_equal(load("; comment\n"
                          "[server]\n"
                          "log_level = debug\n"
                          "max_key_bytes = 1k\n"
                          "\n"
                          "[engine]\n"
                          "name = memory\n"
                          "shards = 8\n"
                          "[frontend.stdin]\n",
                          &cfg, NULL),
                     0);
    assert_int_equal(cfg->server.log_level, 3);
    assert_int_equal(cfg->server.max_key_bytes, 1024);
    assert_string_equal(cfg->engine_name, "memory");
    eng = kvd_config_section(cfg, "engine");
    assert_non_null(eng);
    assert_int_equal(eng->line, 6);
    assert_int_equal(eng->n, 2);
    assert_string_equal(eng->items[1].key, "shards");
    assert_int_equal(eng->items[1].line, 8);
    /* A section with no keys still exists: it enables the frontend. */
    fe = kvd_config_section(cfg, "frontend.stdin");
    assert_non_null(fe);
    assert_int_equal(fe->n, 0);
    assert_int_equal(fe->line, 9);
    kvd_config_free(cfg);
}

static void
test_config_rejects_unknown_section(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(
        load("[engine]\nname = memory\n[storage]\nx = 1\n", &cfg, &err),
        KVD_ECONFIG);
    assert_string_equal(err.msg, "t.ini:3: unknown section [storage]: "
                                 "expected [server], [engine] or "
                                 "[frontend.NAME]");
}

static void
test_config_rejects_unknown_server_key(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(
        load("[server]\nlog_levle = debug\n[engine]\nname = m\n", &cfg, &err),
        KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "t.ini:2: [server] unknown key "
                                    "'log_levle'"));
    assert_non_null(strstr(err.msg, "log_level"));
}

static void
test_config_rejects_bad_value_with_allowed_values(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(
        load("[server]\nlog_level = loud\n[engine]\nname = m\n", &cfg, &err),
        KVD_ECONFIG);
    assert_string_equal(err.msg, "t.ini:2: [server] log_level = loud: "
                                 "expected error, warn, info or debug");
}

static void
test_config_rejects_duplicate_key(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(load("[engine]\nname = a\nname = b\n", &cfg, &err),
                     KVD_ECONFIG);
    assert_string_equal(err.msg,
                        "t.ini:3: [engine] name is set twice (first at "
                        "line 2)");
}

static void
test_config_rejects_missing_engine(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(load("[server]\nlog_level = info\n", &cfg, &err),
                     KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "no [engine] section"));
    assert_int_equal(load("[engine]\nshards = 4\n", &cfg, &err), KVD_ECONFIG);
    assert_string_equal(err.msg, "t.ini:1: [engine] has no name: set name "
                                 "= memory (or another engine)");
}

static void
test_config_rejects_key_outside_section(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(load("name = memory\n[engine]\nname = m\n", &cfg, &err),
                     KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "t.ini:1: 'name' is outside any "
                                    "section"));
}

static void
test_config_reports_syntax_error_line(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(
        load("[engine]\nname = m\nthis line has no equals\n", &cfg, &err),
        KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "t.ini:3: syntax error"));
}

static void
test_config_file_not_found_names_file(void **state)
{
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(kvd_config_load_file("/nonexistent/kvd.ini", &cfg, &err),
                     KVD_ECONFIG);
    assert_string_equal(err.msg, "open config /nonexistent/kvd.ini: No such "
                                 "file or directory");
}

static void
test_config_loads_file(void **state)
{
    char path[] = "/tmp/kvd_cfg_XXXXXX";
    struct kvd_config *cfg = NULL;
    int fd = mkstemp(path);
    FILE *f;
    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("[engine]\nname = memory\n[server]\ndata_dir = /tmp/x\n", f);
    fclose(f);
    assert_int_equal(kvd_config_load_file(path, &cfg, NULL), 0);
    assert_string_equal(cfg->file, path);
    assert_string_equal(cfg->server.data_dir, "/tmp/x");
    kvd_config_free(cfg);
    unlink(path);
}

/* Issue 13, item 8: an INI parser with a 200-byte line buffer split this
 * comment, and its tail became "tcp = 127.0.0.1:39186", an open listener.
 * The line is refused whole, with its line: nothing after the split is
 * ever read as a setting. */
static void
test_config_long_comment_is_refused(void **state)
{
    char text[512];
    char xs[198];
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    memset(xs, 'x', 197);
    xs[197] = '\0';
    snprintf(text, sizeof(text),
             "[engine]\nname = memory\n[frontend.resp]\n; %stcp = "
             "127.0.0.1:39186\n",
             xs);
    assert_int_equal(load(text, &cfg, &err), KVD_ECONFIG);
    assert_null(cfg);
    assert_string_equal(err.msg, "t.ini:4: line longer than 198 bytes (the "
                                 "most a line may hold, comments too)");
}

/* A value on a line of 198 bytes is read whole, on its own line; one byte
 * more is refused naming the section and the key, never cut. */
static void
test_config_long_value_at_the_limit(void **state)
{
    char text[1024], pass[186];
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    const struct kvd_conf_section *fe;
    (void)state;
    memset(pass, 'p', 184); /* "requirepass = " + 184 = 198 bytes */
    pass[184] = '\0';
    snprintf(text, sizeof(text),
             "[engine]\nname = memory\n[frontend.resp]\nrequirepass = "
             "%s\r\ntcp = 127.0.0.1:6380\n",
             pass);
    assert_int_equal(load(text, &cfg, NULL), 0);
    fe = kvd_config_section(cfg, "frontend.resp");
    assert_int_equal(fe->n, 2);
    assert_string_equal(fe->items[0].key, "requirepass");
    assert_string_equal(fe->items[0].value, pass);
    assert_int_equal(fe->items[0].line, 4);
    assert_string_equal(fe->items[1].key, "tcp");
    assert_int_equal(fe->items[1].line, 5);
    kvd_config_free(cfg);
    cfg = NULL;

    memset(pass, 'p', 185);
    pass[185] = '\0';
    snprintf(text, sizeof(text),
             "[engine]\nname = memory\n[frontend.resp]\nrequirepass = "
             "%s\ntcp = 127.0.0.1:6380\n",
             pass);
    assert_int_equal(load(text, &cfg, &err), KVD_ECONFIG);
    assert_null(cfg);
    assert_string_equal(err.msg, "t.ini:4: [frontend.resp] requirepass: line "
                                 "longer than 198 bytes (the most a line may "
                                 "hold, comments too)");
}

static void
test_config_long_line_from_file_is_refused(void **state)
{
    char path[] = "/tmp/kvd_cfg_XXXXXX";
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    int fd = mkstemp(path);
    FILE *f;
    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs("[engine]\nname = memory\n[frontend.resp]\n  tcp = 127.0.0.1:", f);
    for (int i = 0; i < 5000; i++) {
        fputc('9', f);
    }
    fputs("\n", f);
    fclose(f);
    assert_int_equal(kvd_config_load_file(path, &cfg, &err), KVD_ECONFIG);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, ":4: [frontend.resp] tcp: line longer "
                                    "than 198 bytes"));
    assert_non_null(strstr(err.msg, path));
    unlink(path);
}

/* A line of a MiB is refused at once, its line named. */
static void
test_config_rejects_huge_line(void **state)
{
    size_t n = (1u << 20) + 64;
    char *text = malloc(n + 64);
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    assert_non_null(text);
    strcpy(text, "[engine]\nname = memory\n; ");
    memset(text + strlen(text), 'x', n);
    strcpy(text + 26 + n, "\n");
    assert_int_equal(load(text, &cfg, &err), KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "t.ini:3: line longer than 198 bytes"));
    free(text);
}

/* fuzz/regressions/config: blanks inside the brackets or a long section
 * name once made the line reader and the INI parser disagree on the
 * section, and loading returned 0 with no configuration. */
static void
test_config_section_name_blanks_and_length(void **state)
{
    char text[256];
    struct kvd_config *cfg = NULL;
    struct kvd_err err = {0};
    (void)state;
    /* the known crash input, as it is */
    assert_int_equal(load("[server ]\nlog_level = info\n", &cfg, &err),
                     KVD_ECONFIG);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "no [engine] section"));

    assert_int_equal(load("[server ]\nlog_level = debug\n[ engine]\n"
                          "name = memory\n[\tfrontend.resp  ] ; resp\n"
                          "tcp = 127.0.0.1:0\n",
                          &cfg, NULL),
                     0);
    assert_int_equal(cfg->server.log_level, 3);
    assert_string_equal(cfg->engine_name, "memory");
    assert_int_equal(kvd_config_section(cfg, "frontend.resp")->items[0].line,
                     6);
    kvd_config_free(cfg);
    cfg = NULL;

    /* more blanks than the parser keeps of a name: still [server] */
    snprintf(text, sizeof(text),
             "[%60s]\nlog_level = warn\n[engine]\nname = memory\n", "server");
    assert_int_equal(load(text, &cfg, NULL), 0);
    assert_int_equal(cfg->server.log_level, 1);
    kvd_config_free(cfg);
    cfg = NULL;

    /* fuzz/regressions/config/section-long-name.ini */
    snprintf(text, sizeof(text), "[frontend.%060d]\nx = 1\n", 0);
    assert_int_equal(load(text, &cfg, &err), KVD_ECONFIG);
    assert_null(cfg);
    assert_string_equal(err.msg, "t.ini:1: section name longer than 40 "
                                 "bytes: expected [server], [engine] or "
                                 "[frontend.NAME]");
}

static void
test_config_syntax_like_inih(void **state)
{
    struct kvd_config *cfg = NULL;
    const struct kvd_conf_section *eng;
    (void)state;
    /* BOM, CRLF, ':' separator, inline " ;" comment, '#' comment, a ';'
     * inside a value, a comment after a section header */
    assert_int_equal(load("\xEF\xBB\xBF[engine] ; the engine\r\n"
                          "name: memory\r\n"
                          "# comment\n"
                          "  snapshot_path = a;b.kvd   ; inline\n",
                          &cfg, NULL),
                     0);
    eng = kvd_config_section(cfg, "engine");
    assert_string_equal(cfg->engine_name, "memory");
    assert_string_equal(eng->items[1].value, "a;b.kvd");
    assert_int_equal(eng->items[1].line, 4);
    kvd_config_free(cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_default_text_parses),
        cmocka_unit_test(test_config_reads_sections_and_lines),
        cmocka_unit_test(test_config_rejects_unknown_section),
        cmocka_unit_test(test_config_rejects_unknown_server_key),
        cmocka_unit_test(test_config_rejects_bad_value_with_allowed_values),
        cmocka_unit_test(test_config_rejects_duplicate_key),
        cmocka_unit_test(test_config_rejects_missing_engine),
        cmocka_unit_test(test_config_rejects_key_outside_section),
        cmocka_unit_test(test_config_reports_syntax_error_line),
        cmocka_unit_test(test_config_file_not_found_names_file),
        cmocka_unit_test(test_config_loads_file),
        cmocka_unit_test(test_config_long_comment_is_refused),
        cmocka_unit_test(test_config_long_value_at_the_limit),
        cmocka_unit_test(test_config_long_line_from_file_is_refused),
        cmocka_unit_test(test_config_rejects_huge_line),
        cmocka_unit_test(test_config_section_name_blanks_and_length),
        cmocka_unit_test(test_config_syntax_like_inih),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
