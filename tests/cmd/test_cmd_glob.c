/*
 * tests/cmd/test_cmd_glob.c -- the KEYS/SCAN MATCH glob matcher.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/cmd/cmd_int.h"

static bool
m(const char *pat, const char *s)
{
    return kvd_cmd_glob_match(pat, strlen(pat), s, strlen(s), false);
}

static bool
mi(const char *pat, const char *s)
{
    return kvd_cmd_glob_match(pat, strlen(pat), s, strlen(s), true);
}

static void
test_glob_literal(void **state)
{
    (void)state;
    assert_true(m("hello", "hello"));
    assert_false(m("hello", "hell"));
    assert_false(m("hell", "hello"));
    assert_false(m("hello", "Hello"));
    assert_true(mi("hello", "HeLLo"));
}

static void
test_glob_star(void **state)
{
    (void)state;
    assert_true(m("*", "anything"));
    assert_true(m("h*o", "hello"));
    assert_true(m("h*o", "ho"));
    assert_true(m("h**o", "hxo"));
    assert_true(m("*llo", "hello"));
    assert_true(m("he*", "he"));
    assert_false(m("h*x", "hello"));
    assert_true(m("a*b*c", "aXXbYYc"));
    assert_false(m("a*b*c", "aXXbYY"));
    /* As in KEYS, "*" needs at least the rest to match a non-empty tail. */
    assert_false(m("a*?", "a"));
}

static void
test_glob_question(void **state)
{
    (void)state;
    assert_true(m("h?llo", "hello"));
    assert_true(m("h?llo", "hallo"));
    assert_false(m("h?llo", "hllo"));
    assert_false(m("?", ""));
}

static void
test_glob_classes(void **state)
{
    (void)state;
    assert_true(m("h[ae]llo", "hello"));
    assert_true(m("h[ae]llo", "hallo"));
    assert_false(m("h[ae]llo", "hillo"));
    assert_true(m("h[^e]llo", "hallo"));
    assert_false(m("h[^e]llo", "hello"));
    assert_true(m("h[a-b]llo", "hbllo"));
    assert_true(m("h[b-a]llo", "hallo")); /* reversed range */
    assert_false(m("h[a-b]llo", "hcllo"));
    assert_true(mi("h[A-C]llo", "hbllo"));
    assert_true(m("[\\]]", "]"));
    assert_true(m("[\\-]", "-"));
}

static void
test_glob_unterminated_class_runs_to_end(void **state)
{
    (void)state;
    assert_true(m("a[bc", "ab"));
    assert_true(m("a[bc", "ac"));
    assert_false(m("a[bc", "ad"));
    assert_true(m("a[^", "ax")); /* an empty negated class */
}

static void
test_glob_escape(void **state)
{
    (void)state;
    assert_true(m("h\\*llo", "h*llo"));
    assert_false(m("h\\*llo", "hello"));
    assert_true(m("h\\?", "h?"));
    assert_true(m("a\\", "a\\")); /* a trailing backslash is literal */
}

static void
test_glob_binary_bytes(void **state)
{
    (void)state;
    assert_true(kvd_cmd_glob_match("a*", 2, "a\0b", 3, false));
    assert_true(kvd_cmd_glob_match("a?b", 3, "a\0b", 3, false));
    assert_true(kvd_cmd_glob_match("\xff*", 2, "\xff\xfe", 2, false));
}

static void
test_glob_pathological_pattern_terminates(void **state)
{
    char s[4096];
    (void)state;

    memset(s, 'a', sizeof(s));
    /* Without pruning this is exponential; it must fail, quickly. */
    assert_false(
        kvd_cmd_glob_match("a*a*a*a*a*a*a*a*a*a*b", 21, s, sizeof(s), false));
}

static void
test_glob_prefix(void **state)
{
    (void)state;
    assert_int_equal(kvd_cmd_glob_prefix("user:*", 6), 5);
    assert_int_equal(kvd_cmd_glob_prefix("abc", 3), 3);
    assert_int_equal(kvd_cmd_glob_prefix("a?c", 3), 1);
    assert_int_equal(kvd_cmd_glob_prefix("[a]", 3), 0);
    assert_int_equal(kvd_cmd_glob_prefix("a\\*", 3), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_literal),
        cmocka_unit_test(test_glob_star),
        cmocka_unit_test(test_glob_question),
        cmocka_unit_test(test_glob_classes),
        cmocka_unit_test(test_glob_unterminated_class_runs_to_end),
        cmocka_unit_test(test_glob_escape),
        cmocka_unit_test(test_glob_binary_bytes),
        cmocka_unit_test(test_glob_pathological_pattern_terminates),
        cmocka_unit_test(test_glob_prefix),
    };
    return cmocka_run_group_tests_name("cmd_glob", tests, NULL, NULL);
}
