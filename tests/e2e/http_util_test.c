/*
 * tests/e2e/http_util_test.c -- unit tests of the http frontend's decoding
 * helpers (frontends/http/http_util.c): percent-decoding, request-target
 * splitting into key and query arguments, base64 both ways, the
 * binary-safe JSON string and Prometheus label escaping. No server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static void
test_pct_decode(void **state)
{
    char out[64];
    (void)state;

    assert_int_equal(http_pct_decode("a%2Fb", 5, out, 0), 3);
    assert_memory_equal(out, "a/b", 3);
    assert_int_equal(http_pct_decode("%00%ff%FE", 9, out, 0), 3);
    assert_memory_equal(out, "\x00\xff\xfe", 3);
    /* '+' is a space only in query strings */
    assert_int_equal(http_pct_decode("a+b", 3, out, 0), 3);
    assert_memory_equal(out, "a+b", 3);
    assert_int_equal(http_pct_decode("a+b", 3, out, 1), 3);
    assert_memory_equal(out, "a b", 3);
    /* malformed escapes */
    assert_int_equal(http_pct_decode("%zz", 3, out, 0), -1);
    assert_int_equal(http_pct_decode("a%4", 3, out, 0), -1);
    assert_int_equal(http_pct_decode("%", 1, out, 0), -1);
    assert_int_equal(http_pct_decode("", 0, out, 0), 0);
}

static struct http_req *
req_new(const char *uri)
{
    struct http_req *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->uri = strdup(uri);
    assert_non_null(r->uri);
    r->uri_len = strlen(uri);
    r->uri_cap = r->uri_len + 1;
    return r;
}

static void
req_free(struct http_req *r)
{
    free(r->uri);
    free(r->args);
    free(r->argbuf);
    free(r);
}

static void
test_parse_target(void **state)
{
    const char *uri = "/kv/x%00y?key=a&key=b%26c&nx&&ttl=5&e=";
    struct http_req *r = req_new(uri);
    const struct http_arg *a;
    (void)state;

    assert_int_equal(http_parse_target(r, strcspn(uri, "?"), 4), 0);
    assert_int_equal(r->klen, 3);
    assert_memory_equal(r->key, "x\0y", 3);
    assert_int_equal(r->nargs, 5); /* the empty segment is skipped */
    assert_true(http_arg_is(&r->args[0], "key"));
    assert_int_equal(r->args[1].val_len, 3);
    assert_memory_equal(r->args[1].val, "b&c", 3);
    a = http_arg_find(r, "nx");
    assert_non_null(a);
    assert_false(a->has_val);
    a = http_arg_find(r, "e");
    assert_non_null(a);
    assert_true(a->has_val);
    assert_int_equal(a->val_len, 0);
    a = http_arg_find(r, "key"); /* the last one */
    assert_memory_equal(a->val, "b&c", 3);
    assert_null(http_arg_find(r, "ke"));
    req_free(r);

    r = req_new("/kv/bad%g1");
    assert_int_equal(http_parse_target(r, strlen(r->uri), 4), KVD_EINVAL);
    req_free(r);
    r = req_new("/kv?key=%");
    assert_int_equal(http_parse_target(r, 3, 0), KVD_EINVAL);
    req_free(r);
}

static void
roundtrip(const char *src, size_t n, int url, const char *want)
{
    char *e = http_b64_encode(src, n, url);
    char out[64];

    assert_non_null(e);
    assert_string_equal(e, want);
    assert_int_equal(http_b64_decode(e, strlen(e), out, url), (long)n);
    assert_memory_equal(out, src, n);
    free(e);
}

static void
test_base64(void **state)
{
    char out[16];
    (void)state;

    roundtrip("", 0, 0, "");
    roundtrip("f", 1, 0, "Zg==");
    roundtrip("fo", 2, 0, "Zm8=");
    roundtrip("foo", 3, 0, "Zm9v");
    roundtrip("\x00\xff\xfe", 3, 0, "AP/+");
    roundtrip("\xfb\xff", 2, 1, "-_8");
    /* without padding too */
    assert_int_equal(http_b64_decode("Zg", 2, out, 0), 1);
    /* bad input */
    assert_int_equal(http_b64_decode("Z", 1, out, 0), -1);
    assert_int_equal(http_b64_decode("Zg=", 3, out, 0), -1);
    assert_int_equal(http_b64_decode("!!", 2, out, 1), -1);
    assert_int_equal(http_b64_decode("-_8", 3, out, 0), -1);
    /* non-zero leftover bits: not an encoding we produce */
    assert_int_equal(http_b64_decode("Zh", 2, out, 0), -1);
}

static void
test_json_bytes(void **state)
{
    json_t *j;
    char *s;
    (void)state;

    j = http_json_bytes("h\xc3\xa9", 3);
    s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    assert_string_equal(s, "\"h\xc3\xa9\"");
    assert_true(json_is_string(j));
    free(s);
    json_decref(j);

    j = http_json_bytes("a\0b", 3);
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), 3);
    json_decref(j);

    j = http_json_bytes("\xff", 1);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"base64\":\"/w==\"}");
    free(s);
    json_decref(j);
}

static void
test_prom_label_escapes_backslash_quote_newline(void **state)
{
    char out[32];
    (void)state;

    assert_string_equal(http_prom_label(out, sizeof(out), "resp"), "resp");
    assert_string_equal(http_prom_label(out, sizeof(out), "client|setname"),
                        "client|setname");
    assert_string_equal(http_prom_label(out, sizeof(out), "a\\b\"c\nd"),
                        "a\\\\b\\\"c\\nd");
    assert_string_equal(http_prom_label(out, sizeof(out), ""), "");
}

static void
test_prom_label_cuts_between_escapes(void **state)
{
    char out[6];
    (void)state;

    /* Room for 5 bytes: "ab" and one escape fit, a second escape not. */
    assert_string_equal(http_prom_label(out, sizeof(out), "ab\"\"x"), "ab\\\"");
    assert_string_equal(http_prom_label(out, sizeof(out), "abcdefgh"), "abcde");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_parse_target),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_json_bytes),
        cmocka_unit_test(test_prom_label_escapes_backslash_quote_newline),
        cmocka_unit_test(test_prom_label_cuts_between_escapes),
    };
    return cmocka_run_group_tests_name("http_util", tests, NULL, NULL);
}
