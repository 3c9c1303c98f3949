/*
 * tests/cmd/test_cmd_split.c -- the command-line tokenizer (kvd_cmd_split).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/cmd.h"

#define MAX_ARGS 16

struct split {
    int n;
    const char *argv[MAX_ARGS];
    size_t argl[MAX_ARGS];
    char buf[256];
    struct kvd_err err;
};

static int
do_split(struct split *s, const char *line, size_t len, size_t max)
{
    memset(s, 0, sizeof(*s));
    s->n = kvd_cmd_split(line, len, s->buf, max, s->argv, s->argl, &s->err);
    return s->n;
}

static void
assert_arg(const struct split *s, int i, const char *want, size_t wlen)
{
    assert_true(i < s->n);
    assert_int_equal(s->argl[i], wlen);
    assert_memory_equal(s->argv[i], want, wlen);
}

#define ARG(s, i, lit) assert_arg((s), (i), (lit), sizeof(lit) - 1)

static void
test_split_words_and_whitespace(void **state)
{
    struct split s;
    const char line[] = "  SET\tkey  \t value \r\n";
    (void)state;

    assert_int_equal(do_split(&s, line, sizeof(line) - 1, MAX_ARGS), 3);
    ARG(&s, 0, "SET");
    ARG(&s, 1, "key");
    ARG(&s, 2, "value");
}

static void
test_split_blank_line_has_no_args(void **state)
{
    struct split s;
    (void)state;

    assert_int_equal(do_split(&s, "", 0, MAX_ARGS), 0);
    assert_int_equal(do_split(&s, " \t\r\n", 4, MAX_ARGS), 0);
}

static void
test_split_double_quotes_keep_spaces(void **state)
{
    struct split s;
    const char line[] = "SET \"a b\" \"\"";
    (void)state;

    assert_int_equal(do_split(&s, line, sizeof(line) - 1, MAX_ARGS), 3);
    ARG(&s, 1, "a b");
    ARG(&s, 2, ""); /* an empty quoted argument is an argument */
}

static void
test_split_double_quote_escapes(void **state)
{
    struct split s;
    const char line[] = "\"\\x00\\xfF\\n\\r\\t\\b\\a\\\\\\\"\\q\"";
    (void)state;

    assert_int_equal(do_split(&s, line, sizeof(line) - 1, MAX_ARGS), 1);
    assert_arg(&s, 0, "\x00\xff\n\r\t\b\a\\\"q", 10);
}

static void
test_split_bad_hex_escape_is_literal(void **state)
{
    struct split s;
    const char line[] = "\"\\xZZ\\x4\"";
    (void)state;

    assert_int_equal(do_split(&s, line, sizeof(line) - 1, MAX_ARGS), 1);
    ARG(&s, 0, "xZZx4");
}

static void
test_split_single_quotes_are_literal(void **state)
{
    struct split s;
    const char line[] = "'a \\n b' 'it\\'s'";
    (void)state;

    assert_int_equal(do_split(&s, line, sizeof(line) - 1, MAX_ARGS), 2);
    ARG(&s, 0, "a \\n b");
    ARG(&s, 1, "it's");
}

static void
test_split_quote_inside_word_joins(void **state)
{
    struct split s;
    const char line[] = "ab\"c d\" x'y z'";
    (void)state;

    assert_int_equal(do_split(&s, line, sizeof(line) - 1, MAX_ARGS), 2);
    ARG(&s, 0, "abc d");
    ARG(&s, 1, "xy z");
}

static void
test_split_unbalanced_quote_is_einval(void **state)
{
    struct split s;
    (void)state;

    assert_int_equal(do_split(&s, "SET \"abc", 8, MAX_ARGS), KVD_EINVAL);
    assert_int_equal(s.err.code, KVD_EINVAL);
    assert_string_equal(s.err.msg, "unbalanced quotes in request");
    assert_int_equal(do_split(&s, "GET 'abc", 8, MAX_ARGS), KVD_EINVAL);
    assert_int_equal(do_split(&s, "GET \"ab\\\"", 9, MAX_ARGS), KVD_EINVAL);
}

static void
test_split_closing_quote_needs_space(void **state)
{
    struct split s;
    (void)state;

    assert_int_equal(do_split(&s, "\"a\"b", 4, MAX_ARGS), KVD_EINVAL);
    assert_string_equal(s.err.msg, "unbalanced quotes in request");
    assert_int_equal(do_split(&s, "'a'b", 4, MAX_ARGS), KVD_EINVAL);
    /* followed by whitespace or the end: fine */
    assert_int_equal(do_split(&s, "\"a\"\t'b'", 7, MAX_ARGS), 2);
}

static void
test_split_too_many_args_is_etoobig(void **state)
{
    struct split s;
    (void)state;

    assert_int_equal(do_split(&s, "a b c", 5, 2), KVD_ETOOBIG);
    assert_int_equal(s.err.code, KVD_ETOOBIG);
    assert_string_equal(s.err.msg, "too many arguments (max 2)");
    assert_int_equal(do_split(&s, "a b", 3, 2), 2);
}

static void
test_split_raw_nul_byte_is_part_of_word(void **state)
{
    struct split s;
    const char line[] = "a\0b c";
    (void)state;

    assert_int_equal(do_split(&s, line, sizeof(line) - 1, MAX_ARGS), 2);
    assert_arg(&s, 0, "a\0b", 3);
    ARG(&s, 1, "c");
}

static void
test_split_output_fits_in_input_length(void **state)
{
    /* Worst case for the output: no escapes, one long word. */
    char line[200];
    char buf[200];
    const char *argv[2];
    size_t argl[2];
    (void)state;

    memset(line, 'x', sizeof(line));
    assert_int_equal(
        kvd_cmd_split(line, sizeof(line), buf, 2, argv, argl, NULL), 1);
    assert_int_equal(argl[0], sizeof(line));
    assert_ptr_equal(argv[0], buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_words_and_whitespace),
        cmocka_unit_test(test_split_blank_line_has_no_args),
        cmocka_unit_test(test_split_double_quotes_keep_spaces),
        cmocka_unit_test(test_split_double_quote_escapes),
        cmocka_unit_test(test_split_bad_hex_escape_is_literal),
        cmocka_unit_test(test_split_single_quotes_are_literal),
        cmocka_unit_test(test_split_quote_inside_word_joins),
        cmocka_unit_test(test_split_unbalanced_quote_is_einval),
        cmocka_unit_test(test_split_closing_quote_needs_space),
        cmocka_unit_test(test_split_too_many_args_is_etoobig),
        cmocka_unit_test(test_split_raw_nul_byte_is_part_of_word),
        cmocka_unit_test(test_split_output_fits_in_input_length),
    };
    return cmocka_run_group_tests_name("cmd_split", tests, NULL, NULL);
}
