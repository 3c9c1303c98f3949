/*
 * Unit tests for core/options.c: every option type, ranges, defaults, and
 * the wording of errors (file:line, section, key, value, what is allowed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/options.h"

struct topts {
    int flag;
    int64_t count;
    uint64_t size;
    int64_t wait_ms;
    int mode;
    char *path;
    int perm;
    int64_t shards;
    char *addr;
};

static const char *const modes[] = {"always", "everysec", "never", NULL};

static const struct kvd_option table[] = {
    {"flag", KVD_OPT_BOOL, "no", 0, 0, offsetof(struct topts, flag), NULL,
     "a flag"},
    {"count", KVD_OPT_INT, "4", 1, 64, offsetof(struct topts, count), NULL,
     "a count"},
    {"size", KVD_OPT_SIZE, "64m", 0, 0, offsetof(struct topts, size), NULL,
     "a size"},
    {"wait", KVD_OPT_DURATION, "1s", 0, 0, offsetof(struct topts, wait_ms),
     NULL, "a duration"},
    {"sync", KVD_OPT_ENUM, "everysec", 0, 0, offsetof(struct topts, mode),
     modes, "a mode"},
    {"path", KVD_OPT_STRING, "", 0, 0, offsetof(struct topts, path), NULL,
     "a path"},
    {"perm", KVD_OPT_OCTAL, "0600", 0, 0, offsetof(struct topts, perm), NULL,
     "a mode"},
    {"shards", KVD_OPT_INT | KVD_OPT_POW2, "64", 1, 1024,
     offsetof(struct topts, shards), NULL, "a power of two"},
    {"addr", KVD_OPT_STRING | KVD_OPT_LISTEN, "", 0, 0,
     offsetof(struct topts, addr), NULL, "an address"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* Parse one "key = value" line (at line 7 of t.ini, section [engine]). */
static int
parse_one(const char *key, const char *value, struct topts *o,
          struct kvd_err *err)
{
    struct kvd_conf_item item = {(char *)key, (char *)value, 7};
    struct kvd_conf_section sec = {(char *)"engine", 5, 1, &item, "t.ini"};
    memset(o, 0, sizeof(*o));
    return kvd_options_parse(table, &sec, NULL, o, err);
}

static void
test_options_defaults_apply(void **state)
{
    struct topts o = {0};
    (void)state;
    assert_int_equal(kvd_options_parse(table, NULL, NULL, &o, NULL), 0);
    assert_int_equal(o.flag, 0);
    assert_int_equal(o.count, 4);
    assert_int_equal(o.size, 64u << 20);
    assert_int_equal(o.wait_ms, 1000);
    assert_int_equal(o.mode, 1);
    assert_string_equal(o.path, "");
    assert_int_equal(o.perm, 0600);
    kvd_options_release(table, &o);
    assert_null(o.path);
}

static void
test_options_sizes_take_suffixes(void **state)
{
    struct topts o;
    (void)state;
    assert_int_equal(parse_one("size", "4k", &o, NULL), 0);
    assert_int_equal(o.size, 4096);
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("size", "2GB", &o, NULL), 0);
    assert_int_equal(o.size, 2ULL << 30);
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("size", "17", &o, NULL), 0);
    assert_int_equal(o.size, 17);
    kvd_options_release(table, &o);
}

static void
test_options_durations_take_units(void **state)
{
    struct topts o;
    (void)state;
    assert_int_equal(parse_one("wait", "250ms", &o, NULL), 0);
    assert_int_equal(o.wait_ms, 250);
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("wait", "5m", &o, NULL), 0);
    assert_int_equal(o.wait_ms, 300000);
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("wait", "3", &o, NULL), 0);
    assert_int_equal(o.wait_ms, 3000);
    kvd_options_release(table, &o);
}

static void
test_options_rejects_bad_enum_listing_choices(void **state)
{
    struct kvd_err err = {0};
    struct topts o;
    (void)state;
    assert_int_equal(parse_one("sync", "sometimes", &o, &err), KVD_ECONFIG);
    assert_string_equal(err.msg, "t.ini:7: [engine] sync = sometimes: "
                                 "expected always, everysec or never");
    kvd_options_release(table, &o);
}

static void
test_options_rejects_out_of_range_int(void **state)
{
    struct kvd_err err = {0};
    struct topts o;
    (void)state;
    assert_int_equal(parse_one("count", "65", &o, &err), KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "t.ini:7: [engine] count = 65"));
    assert_non_null(strstr(err.msg, "from 1 to 64"));
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("count", "12abc", &o, &err), KVD_ECONFIG);
    kvd_options_release(table, &o);
}

static void
test_options_rejects_unknown_key_naming_known_ones(void **state)
{
    struct kvd_err err = {0};
    struct topts o;
    (void)state;
    assert_int_equal(parse_one("bloom_bitz", "10", &o, &err), KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "t.ini:7: [engine] unknown key "
                                    "'bloom_bitz'"));
    assert_non_null(strstr(err.msg, "flag, count, size"));
    kvd_options_release(table, &o);
}

static void
test_options_booleans_and_octal(void **state)
{
    struct kvd_err err = {0};
    struct topts o;
    (void)state;
    assert_int_equal(parse_one("flag", "Yes", &o, NULL), 0);
    assert_int_equal(o.flag, 1);
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("flag", "maybe", &o, &err), KVD_ECONFIG);
    assert_non_null(strstr(err.msg, "expected yes or no"));
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("perm", "0660", &o, NULL), 0);
    assert_int_equal(o.perm, 0660);
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("perm", "0999", &o, &err), KVD_ECONFIG);
    kvd_options_release(table, &o);
}

static void
test_options_skip_list_is_left_alone(void **state)
{
    static const char *const skip[] = {"name", NULL};
    struct kvd_conf_item item = {(char *)"name", (char *)"memory", 3};
    struct kvd_conf_section sec = {(char *)"engine", 2, 1, &item, "t.ini"};
    struct topts o = {0};
    (void)state;
    assert_int_equal(kvd_options_parse(table, &sec, skip, &o, NULL), 0);
    kvd_options_release(table, &o);
}

static void
test_options_pow2_refuses_other_numbers(void **state)
{
    struct topts o;
    struct kvd_err err = {0};
    (void)state;
    assert_int_equal(parse_one("shards", "256", &o, NULL), 0);
    assert_int_equal(o.shards, 256);
    kvd_options_release(table, &o);
    assert_int_equal(parse_one("shards", "3", &o, &err), KVD_ECONFIG);
    assert_string_equal(err.msg, "t.ini:7: [engine] shards = 3: expected a "
                                 "power of two from 1 to 1024");
    kvd_options_release(table, &o);
}

static void
test_options_listen_checks_syntax_and_port(void **state)
{
    static const char *const good[] = {"127.0.0.1:0",
                                       "0.0.0.0:65535",
                                       "[::1]:6380",
                                       ":8080",
                                       "6380",
                                       "localhost:80",
                                       ""};
    static const char *const bad[] = {
        "127.0.0.1:99999", "127.0.0.1:", "127.0.0.1:65536",
        "[::1]6380",       "host:port",  "1:123456"};
    struct topts o;
    struct kvd_err err = {0};
    char host[64], port[8];
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(parse_one("addr", good[i], &o, NULL), 0);
        kvd_options_release(table, &o);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse_one("addr", bad[i], &o, &err), KVD_ECONFIG);
        assert_non_null(strstr(err.msg, "a port from 0 to 65535"));
        kvd_options_release(table, &o);
    }
    assert_int_equal(kvd_options_split_listen(":8080", host, sizeof(host), port,
                                              sizeof(port)),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "8080");
    assert_int_equal(kvd_options_split_listen("[::1]:1", host, sizeof(host),
                                              port, sizeof(port)),
                     0);
    assert_string_equal(host, "::1");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_defaults_apply),
        cmocka_unit_test(test_options_sizes_take_suffixes),
        cmocka_unit_test(test_options_durations_take_units),
        cmocka_unit_test(test_options_rejects_bad_enum_listing_choices),
        cmocka_unit_test(test_options_rejects_out_of_range_int),
        cmocka_unit_test(test_options_rejects_unknown_key_naming_known_ones),
        cmocka_unit_test(test_options_booleans_and_octal),
        cmocka_unit_test(test_options_skip_list_is_left_alone),
        cmocka_unit_test(test_options_pow2_refuses_other_numbers),
        cmocka_unit_test(test_options_listen_checks_syntax_and_port),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
