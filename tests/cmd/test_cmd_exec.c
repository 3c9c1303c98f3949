/*
 * tests/cmd/test_cmd_exec.c -- command semantics through kvd_cmd_call
 * against a real store on the memory engine (see cmd_fixture.h for the
 * reply notation: OK, !ERR ..., :5, "str", nil, *N ...).
 *
 * Expected replies and error texts are Redis 7's, checked against
 * redis-server 7.0 by hand where kvd follows it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "cmd_fixture.h"
#include "core/cmd/cmd_int.h"

/* How the recorder shows "\r\n" inside a bulk string. */
#define CRLF "\\x0d\\x0a"

#define RUN(fx, line)          cmdt_run((fx), (line))
#define EXPECT(fx, line, want) assert_string_equal(RUN((fx), (line)), (want))

/* --- dispatch ---------------------------------------------------------------
 */

static void
test_exec_unknown_command_names_args(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "FOO a b",
           "!ERR unknown command 'FOO', with args beginning with: 'a' 'b' ");
    EXPECT(fx, "foo", "!ERR unknown command 'foo', with args beginning with: ");
}

static void
test_exec_unknown_command_args_are_cut_at_128_bytes(void **state)
{
    struct cmdt_fx *fx = *state;
    char line[400];
    char want[400];

    memset(line, 0, sizeof(line));
    strcpy(line, "NOPE ");
    memset(line + 5, 'x', 200);
    snprintf(want, sizeof(want),
             "!ERR unknown command 'NOPE', with args beginning with: '%.*s' ",
             128, line + 5);
    EXPECT(fx, line, want);
}

static void
test_exec_names_are_case_insensitive(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "sEt k v", "OK");
    EXPECT(fx, "GeT k", "\"v\"");
}

static void
test_exec_wrong_arity_uses_lowercase_name(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "GET", "!ERR wrong number of arguments for 'get' command");
    EXPECT(fx, "GET a b", "!ERR wrong number of arguments for 'get' command");
    EXPECT(fx, "SET a", "!ERR wrong number of arguments for 'set' command");
    EXPECT(fx, "MSET a 1 b",
           "!ERR wrong number of arguments for 'mset' command");
    EXPECT(fx, "PING a b", "!ERR wrong number of arguments for 'ping' command");
    EXPECT(fx, "CLIENT", "!ERR wrong number of arguments for 'client' command");
    EXPECT(fx, "CLIENT SETNAME",
           "!ERR wrong number of arguments for 'client|setname' command");
    EXPECT(fx, "CLIENT NOPE",
           "!ERR unknown subcommand 'NOPE'. Try CLIENT "
           "HELP.");
}

static void
test_exec_empty_argv_gets_an_error(void **state)
{
    struct cmdt_fx *fx = *state;

    assert_string_equal(cmdt_runv(fx, 0, NULL, NULL), "!ERR empty command");
}

static void
test_exec_quit_asks_to_close(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "PING", "PONG");
    assert_int_equal(fx->last_flags, 0);
    EXPECT(fx, "QUIT", "OK");
    assert_int_equal(fx->last_flags, KVD_EXEC_CLOSE);
}

/* --- GET / SET
 * ----------------------------------------------------------------- */

static void
test_set_get_roundtrip_and_missing(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "GET a", "nil");
    EXPECT(fx, "SET a 1", "OK");
    EXPECT(fx, "GET a", "\"1\"");
    EXPECT(fx, "SET a \"\"", "OK");
    EXPECT(fx, "GET a", "\"\"");
}

static void
test_set_get_binary_key_and_value(void **state)
{
    struct cmdt_fx *fx = *state;
    const char *set[] = {"SET", "k\0ey", "v\0\xff"};
    size_t setl[] = {3, 4, 3};
    const char *get[] = {"GET", "k\0ey"};
    size_t getl[] = {3, 4};

    assert_string_equal(cmdt_runv(fx, 3, set, setl), "OK");
    assert_string_equal(cmdt_runv(fx, 2, get, getl), "\"v\\x00\\xff\"");
    EXPECT(fx, "GET \"k\\x00ey\"", "\"v\\x00\\xff\"");
    EXPECT(fx, "GET k", "nil");
}

static void
test_set_empty_key_is_refused(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET \"\" v",
           "!ERR invalid argument: empty keys are not allowed");
    EXPECT(fx, "GET \"\"", "!ERR invalid argument: empty keys are not allowed");
}

static void
test_set_nx_xx(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET a 1 XX", "nil");
    EXPECT(fx, "GET a", "nil");
    EXPECT(fx, "SET a 1 NX", "OK");
    EXPECT(fx, "SET a 2 NX", "nil");
    EXPECT(fx, "GET a", "\"1\"");
    EXPECT(fx, "SET a 3 XX", "OK");
    EXPECT(fx, "GET a", "\"3\"");
    EXPECT(fx, "SET a 4 NX XX", "!ERR syntax error");
    EXPECT(fx, "SETNX a 5", ":0");
    EXPECT(fx, "SETNX b 5", ":1");
}

static void
test_set_get_option_returns_old_value(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET a 1 GET", "nil");
    EXPECT(fx, "SET a 2 GET", "\"1\"");
    EXPECT(fx, "SET a 3 NX GET", "\"2\""); /* not set, old value back */
    EXPECT(fx, "GET a", "\"2\"");
    EXPECT(fx, "SET b 1 XX GET", "nil");
    EXPECT(fx, "EXISTS b", ":0");
    EXPECT(fx, "GETSET a 9", "\"2\"");
    EXPECT(fx, "GET a", "\"9\"");
}

static void
test_set_expire_validation(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET a 1 EX 0", "!ERR invalid expire time in 'set' command");
    EXPECT(fx, "SET a 1 PX -5", "!ERR invalid expire time in 'set' command");
    EXPECT(fx, "SET a 1 EX abc",
           "!ERR value is not an integer or out of range");
    EXPECT(fx, "SET a 1 EX 9223372036854775807",
           "!ERR invalid expire time in 'set' command");
    /* Fits in ms, but not once now is added. */
    EXPECT(fx, "SET a 1 PX 9223372036854775807",
           "!ERR invalid expire time in 'set' command");
    EXPECT(fx, "SET a 1 EX 10 PX 10", "!ERR syntax error");
    EXPECT(fx, "SET a 1 KEEPTTL EX 10", "!ERR syntax error");
    EXPECT(fx, "SET a 1 EX", "!ERR syntax error");
    EXPECT(fx, "SETEX a 0 v", "!ERR invalid expire time in 'setex' command");
    EXPECT(fx, "PSETEX a -1 v", "!ERR invalid expire time in 'psetex' command");
    EXPECT(fx, "EXISTS a", ":0");
}

static void
test_set_ex_px_exat_pxat(void **state)
{
    struct cmdt_fx *fx = *state;
    char line[96];

    EXPECT(fx, "SET a 1 EX 10", "OK");
    EXPECT(fx, "PTTL a", ":10000");
    EXPECT(fx, "SET a 1 PX 1500", "OK");
    EXPECT(fx, "PTTL a", ":1500");
    EXPECT(fx, "TTL a", ":2");               /* rounded to the nearest second */
    EXPECT(fx, "SET a 1 EX 10 EX 20", "OK"); /* the last one wins */
    EXPECT(fx, "TTL a", ":20");
    snprintf(line, sizeof(line), "SET a 1 PXAT %lld",
             (long long)(cmdt_now(fx) + 5000));
    EXPECT(fx, line, "OK");
    EXPECT(fx, "PTTL a", ":5000");
    snprintf(line, sizeof(line), "SET a 1 EXAT %lld",
             (long long)(cmdt_now(fx) / 1000 + 7));
    EXPECT(fx, line, "OK");
    EXPECT(fx, "TTL a", ":7");
    EXPECT(fx, "SET a 2", "OK"); /* a plain SET clears the expiry */
    EXPECT(fx, "TTL a", ":-1");
}

static void
test_set_exat_in_the_past_deletes(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET a 1", "OK");
    EXPECT(fx, "SET a 2 PXAT 1", "OK");
    EXPECT(fx, "EXISTS a", ":0");
}

static void
test_set_keepttl_keeps_expiry(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET a 1 EX 100", "OK");
    EXPECT(fx, "SET a 2 KEEPTTL", "OK");
    EXPECT(fx, "TTL a", ":100");
    EXPECT(fx, "SET a 3 KEEPTTL GET", "\"2\"");
    EXPECT(fx, "TTL a", ":100");
    EXPECT(fx, "GET a", "\"3\"");
}

static void
test_value_limit_is_a_clear_error(void **state)
{
    struct cmdt_fx *fx;
    struct cmdt_params p = {.max_value_bytes = 8,
                            .session_flags = KVD_SESSION_TRUSTED};

    cmdt_teardown(state);
    cmdt_setup_params(state, &p);
    fx = *state;
    EXPECT(fx, "SET a 12345678", "OK");
    EXPECT(fx, "SET a 123456789",
           "!ERR key or value too large for this server (see max_key_bytes "
           "and max_value_bytes)");
    EXPECT(fx, "APPEND a x",
           "!ERR key or value too large for this server (see max_key_bytes "
           "and max_value_bytes)");
    EXPECT(fx, "GET a", "\"12345678\"");
    EXPECT(fx, "MSET b 1 c 123456789",
           "!ERR key or value too large for this server (see max_key_bytes "
           "and max_value_bytes)");
    EXPECT(fx, "EXISTS b", ":0");
}

static void
test_getex_getdel(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "GETEX a", "nil");
    EXPECT(fx, "SET a v", "OK");
    EXPECT(fx, "GETEX a EX 100", "\"v\"");
    EXPECT(fx, "TTL a", ":100");
    EXPECT(fx, "GETEX a PERSIST", "\"v\"");
    EXPECT(fx, "TTL a", ":-1");
    EXPECT(fx, "GETEX a EX 10 PERSIST", "!ERR syntax error");
    EXPECT(fx, "GETEX a KEEPTTL", "!ERR syntax error");
    EXPECT(fx, "GETEX a EX 0", "!ERR invalid expire time in 'getex' command");
    EXPECT(fx, "GETEX a PXAT 1", "\"v\""); /* in the past: deleted */
    EXPECT(fx, "EXISTS a", ":0");
    EXPECT(fx, "SET b w", "OK");
    EXPECT(fx, "GETDEL b", "\"w\"");
    EXPECT(fx, "GETDEL b", "nil");
}

/* --- MSET / MGET / MSETNX
 * ---------------------------------------------------------- */

static void
test_mset_mget(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET a 1 EX 100", "OK");
    EXPECT(fx, "MSET a 1 b 2 c 3", "OK");
    EXPECT(fx, "MGET a b c d", "*4 \"1\" \"2\" \"3\" nil");
    EXPECT(fx, "TTL a", ":-1");       /* MSET clears expiries */
    EXPECT(fx, "MSET a x a y", "OK"); /* the later pair wins */
    EXPECT(fx, "GET a", "\"y\"");
}

static void
test_mset_with_invalid_key_changes_nothing(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MSET a 1 \"\" 2",
           "!ERR invalid argument: empty keys are not allowed");
    EXPECT(fx, "EXISTS a", ":0");
}

static void
test_msetnx_all_or_nothing(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MSETNX a 1 b 2", ":1");
    EXPECT(fx, "MSETNX b 3 c 4", ":0");
    EXPECT(fx, "MGET a b c", "*3 \"1\" \"2\" nil");
    EXPECT(fx, "MSETNX c 4", ":1");
    EXPECT(fx, "MSETNX c",
           "!ERR wrong number of arguments for 'msetnx' "
           "command");
}

/* --- INCR family
 * --------------------------------------------------------------------- */

static void
test_incr_family(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "INCR n", ":1");
    EXPECT(fx, "INCRBY n 10", ":11");
    EXPECT(fx, "DECR n", ":10");
    EXPECT(fx, "DECRBY n 20", ":-10");
    EXPECT(fx, "GET n", "\"-10\"");
    EXPECT(fx, "INCRBY n abc", "!ERR value is not an integer or out of range");
    EXPECT(fx, "INCRBY n 1.5", "!ERR value is not an integer or out of range");
    EXPECT(fx, "SET s hello", "OK");
    EXPECT(fx, "INCR s", "!ERR value is not an integer or out of range");
    EXPECT(fx, "SET s \" 1\"", "OK");
    EXPECT(fx, "INCR s", "!ERR value is not an integer or out of range");
    EXPECT(fx, "SET s 01", "OK");
    EXPECT(fx, "INCR s", "!ERR value is not an integer or out of range");
}

static void
test_incr_overflow(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET n 9223372036854775807", "OK");
    EXPECT(fx, "INCR n", "!ERR increment or decrement would overflow");
    EXPECT(fx, "GET n", "\"9223372036854775807\"");
    EXPECT(fx, "SET n -9223372036854775808", "OK");
    EXPECT(fx, "DECR n", "!ERR increment or decrement would overflow");
    EXPECT(fx, "DECRBY n -9223372036854775808",
           "!ERR decrement would overflow");
    EXPECT(fx, "INCRBY m 9223372036854775808",
           "!ERR value is not an integer or out of range");
    EXPECT(fx, "INCRBY m -9223372036854775808", ":-9223372036854775808");
}

static void
test_incr_keeps_ttl(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET n 1 EX 100", "OK");
    EXPECT(fx, "INCR n", ":2");
    EXPECT(fx, "TTL n", ":100");
}

static void
test_incrbyfloat(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET f 10.50", "OK");
    EXPECT(fx, "INCRBYFLOAT f 0.1", "\"10.6\"");
    EXPECT(fx, "INCRBYFLOAT f -5", "\"5.6\"");
    EXPECT(fx, "INCRBYFLOAT g 3.0e3", "\"3000\"");
    EXPECT(fx, "INCRBYFLOAT f abc", "!ERR value is not a valid float");
    EXPECT(fx, "INCRBYFLOAT f inf",
           "!ERR increment would produce NaN or Infinity");
    EXPECT(fx, "SET s x", "OK");
    EXPECT(fx, "INCRBYFLOAT s 1", "!ERR value is not a valid float");
}

/* --- string edits
 * -------------------------------------------------------------------- */

static void
test_append_strlen_getrange_setrange(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "APPEND s hello", ":5");
    EXPECT(fx, "APPEND s \" world\"", ":11");
    EXPECT(fx, "STRLEN s", ":11");
    EXPECT(fx, "STRLEN nokey", ":0");
    EXPECT(fx, "GETRANGE s 0 4", "\"hello\"");
    EXPECT(fx, "GETRANGE s -5 -1", "\"world\"");
    EXPECT(fx, "GETRANGE s 5 3", "\"\"");
    EXPECT(fx, "GETRANGE s -1 -5", "\"\"");
    EXPECT(fx, "GETRANGE s 0 1000", "\"hello world\"");
    EXPECT(fx, "GETRANGE nokey 0 10", "\"\"");
    EXPECT(fx, "SETRANGE s 6 WORLD", ":11");
    EXPECT(fx, "GET s", "\"hello WORLD\"");
    EXPECT(fx, "SETRANGE s -1 x", "!ERR offset is out of range");
    EXPECT(fx, "SETRANGE z 3 x", ":4");
    EXPECT(fx, "GET z", "\"\\x00\\x00\\x00x\"");
    EXPECT(fx, "SETRANGE e 5 \"\"", ":0");
    EXPECT(fx, "EXISTS e", ":0");
    EXPECT(fx, "SETRANGE s 536870912 x",
           "!ERR string exceeds maximum allowed size (proto-max-bulk-len)");
}

static void
test_bits(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SETBIT b 7 1", ":0");
    EXPECT(fx, "SETBIT b 7 1", ":1");
    EXPECT(fx, "GET b", "\"\\x01\"");
    EXPECT(fx, "GETBIT b 7", ":1");
    EXPECT(fx, "GETBIT b 6", ":0");
    EXPECT(fx, "GETBIT b 1000", ":0");
    EXPECT(fx, "SETBIT b 7 2", "!ERR bit is not an integer or out of range");
    EXPECT(fx, "SETBIT b -1 1",
           "!ERR bit offset is not an integer or out of range");
    EXPECT(fx, "SETBIT b 4294967296 1",
           "!ERR bit offset is not an integer or out of range");
    EXPECT(fx, "SETBIT z 15 0", ":0"); /* creates two zero bytes */
    EXPECT(fx, "STRLEN z", ":2");
    EXPECT(fx, "SET c foobar", "OK");
    EXPECT(fx, "BITCOUNT c", ":26");
    EXPECT(fx, "BITCOUNT c 0 0", ":4");
    EXPECT(fx, "BITCOUNT c 1 1", ":6");
    EXPECT(fx, "BITCOUNT c 5 30 BIT", ":17");
    EXPECT(fx, "BITCOUNT c -2 -1", ":7");
    EXPECT(fx, "BITCOUNT c 0", "!ERR syntax error");
    EXPECT(fx, "BITCOUNT c 0 1 foo", "!ERR syntax error");
    EXPECT(fx, "BITCOUNT nokey", ":0");
}

static void
test_lcs(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MSET a ohmytext b mynewtext", "OK");
    EXPECT(fx, "LCS a b", "\"mytext\"");
    EXPECT(fx, "LCS a b LEN", ":6");
    EXPECT(fx, "LCS a b IDX",
           "*4 \"matches\" *2 *2 *2 :4 :7 *2 :5 :8 *2 *2 :2 :3 *2 :0 :1 "
           "\"len\" :6");
    EXPECT(fx, "LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN",
           "*4 \"matches\" *1 *3 *2 :4 :7 *2 :5 :8 :4 \"len\" :6");
    EXPECT(fx, "LCS a b LEN IDX",
           "!ERR If you want both the length and indexes, please just use "
           "IDX.");
    EXPECT(fx, "LCS a nokey", "\"\"");
}

/* --- keys
 * ------------------------------------------------------------------------------
 */

static void
test_del_exists_count_exactly(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MSET a 1 b 2 c 3", "OK");
    EXPECT(fx, "EXISTS a a x", ":2");
    EXPECT(fx, "DEL a b x", ":2");
    EXPECT(fx, "DEL c c", ":1");
    EXPECT(fx, "DEL c", ":0");
    EXPECT(fx, "UNLINK c", ":0");
    EXPECT(fx, "TYPE a", "none");
    EXPECT(fx, "SET a 1", "OK");
    EXPECT(fx, "TYPE a", "string");
}

static void
test_rename_renamenx_copy(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "RENAME x y", "!ERR no such key");
    EXPECT(fx, "SET a 1 EX 100", "OK");
    EXPECT(fx, "RENAME a b", "OK");
    EXPECT(fx, "MGET a b", "*2 nil \"1\"");
    EXPECT(fx, "TTL b", ":100"); /* the expiry moves with the value */
    EXPECT(fx, "RENAME b b", "OK");
    EXPECT(fx, "RENAMENX b b", ":0");
    EXPECT(fx, "SET c 3", "OK");
    EXPECT(fx, "RENAMENX b c", ":0");
    EXPECT(fx, "RENAMENX b d", ":1");
    EXPECT(fx, "COPY d e", ":1");
    EXPECT(fx, "TTL e", ":100");
    EXPECT(fx, "COPY d c", ":0");
    EXPECT(fx, "COPY d c REPLACE", ":1");
    EXPECT(fx, "GET c", "\"1\"");
    EXPECT(fx, "COPY d d", "!ERR source and destination objects are the same");
    EXPECT(fx, "COPY d e DB 1", "!ERR DB index is out of range");
    EXPECT(fx, "COPY d e foo", "!ERR syntax error");
    EXPECT(fx, "COPY nokey e", ":0");
}

/* --- expiry
 * ------------------------------------------------------------------------------
 */

static void
test_ttl_semantics(void **state)
{
    struct cmdt_fx *fx = *state;
    char want[64];

    EXPECT(fx, "TTL nokey", ":-2");
    EXPECT(fx, "PTTL nokey", ":-2");
    EXPECT(fx, "EXPIRETIME nokey", ":-2");
    EXPECT(fx, "SET a 1", "OK");
    EXPECT(fx, "TTL a", ":-1");
    EXPECT(fx, "PEXPIRETIME a", ":-1");
    EXPECT(fx, "EXPIRE a 100", ":1");
    snprintf(want, sizeof(want), ":%lld",
             (long long)((cmdt_now(fx) + 100000) / 1000));
    EXPECT(fx, "EXPIRETIME a", want);
    snprintf(want, sizeof(want), ":%lld", (long long)(cmdt_now(fx) + 100000));
    EXPECT(fx, "PEXPIRETIME a", want);
    EXPECT(fx, "PERSIST a", ":1");
    EXPECT(fx, "PERSIST a", ":0");
    EXPECT(fx, "PERSIST nokey", ":0");
    EXPECT(fx, "TTL a", ":-1");
}

static void
test_key_expires_with_the_clock(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET a 1 PX 100", "OK");
    cmdt_advance(fx, 99);
    EXPECT(fx, "GET a", "\"1\"");
    EXPECT(fx, "PTTL a", ":1");
    cmdt_advance(fx, 1);
    EXPECT(fx, "GET a", "nil");
    EXPECT(fx, "TTL a", ":-2");
    EXPECT(fx, "EXISTS a", ":0");
    EXPECT(fx, "KEYS *", "*0");
}

static void
test_expire_options(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "EXPIRE nokey 10", ":0");
    EXPECT(fx, "SET a 1", "OK");
    EXPECT(fx, "EXPIRE a 100 XX", ":0");
    EXPECT(fx, "EXPIRE a 100 GT", ":0"); /* no expiry counts as infinite */
    EXPECT(fx, "EXPIRE a 100 NX", ":1");
    EXPECT(fx, "EXPIRE a 200 NX", ":0");
    EXPECT(fx, "EXPIRE a 200 XX", ":1");
    EXPECT(fx, "EXPIRE a 50 GT", ":0");
    EXPECT(fx, "EXPIRE a 300 GT", ":1");
    EXPECT(fx, "EXPIRE a 400 LT", ":0");
    EXPECT(fx, "EXPIRE a 50 LT", ":1");
    EXPECT(fx, "TTL a", ":50");
    EXPECT(fx, "EXPIRE a 10 NX XX",
           "!ERR NX and XX, GT or LT options at the same time are not "
           "compatible");
    EXPECT(fx, "EXPIRE a 10 GT LT",
           "!ERR GT and LT options at the same time are not compatible");
    EXPECT(fx, "EXPIRE a 10 foo", "!ERR Unsupported option foo");
    EXPECT(fx, "EXPIRE a abc foo", "!ERR Unsupported option foo");
    EXPECT(fx, "EXPIRE a abc", "!ERR value is not an integer or out of range");
    EXPECT(fx, "EXPIRE a 9223372036854775807",
           "!ERR invalid expire time in 'expire' command");
    EXPECT(fx, "PEXPIRE a 9223372036854775807",
           "!ERR invalid expire time in 'pexpire' command");
    EXPECT(fx, "TTL a", ":50");
}

static void
test_expire_in_the_past_deletes(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MSET a 1 b 2 c 3", "OK");
    EXPECT(fx, "EXPIRE a -1", ":1");
    EXPECT(fx, "EXPIRE b 0", ":1");
    EXPECT(fx, "PEXPIREAT c 1", ":1");
    EXPECT(fx, "MGET a b c", "*3 nil nil nil");
    EXPECT(fx, "DBSIZE", ":0");
}

/* --- listing
 * ----------------------------------------------------------------------------
 */

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_keys_pattern(void **state)
{
    struct cmdt_fx *fx = *state;
    const char *r;

    EXPECT(fx, "MSET user:1 a user:2 b other c", "OK");
    r = RUN(fx, "KEYS user:*");
    assert_true(strcmp(r, "*2 \"user:1\" \"user:2\"") == 0 ||
                strcmp(r, "*2 \"user:2\" \"user:1\"") == 0);
    EXPECT(fx, "KEYS oth?r", "*1 \"other\"");
    EXPECT(fx, "KEYS nomatch*", "*0");
    EXPECT(fx, "DBSIZE", ":3");
}

/* SCAN with a small COUNT until the cursor is 0: every key exactly once. */
static void
test_scan_visits_every_key_once(void **state)
{
    struct cmdt_fx *fx = *state;
    enum { N = 500 };
    char *seen[N];
    size_t nseen = 0;
    char cursor[32] = "0";
    char line[128];
    int rounds = 0;

    for (int i = 0; i < N; i++) {
        snprintf(line, sizeof(line), "SET key:%03d v", i);
        EXPECT(fx, line, "OK");
    }
    do {
        snprintf(line, sizeof(line), "SCAN %s COUNT 7", cursor);
        const char *r = RUN(fx, line);
        /* "*2 \"<cursor>\" *<n> \"key:..\" ..." */
        unsigned long long next;
        int n;
        int used;
        assert_int_equal(sscanf(r, "*2 \"%llu\" *%d%n", &next, &n, &used), 2);
        const char *p = r + used;
        for (int i = 0; i < n; i++) {
            char key[32];
            assert_int_equal(sscanf(p, " \"%31[^\"]\"%n", key, &used), 1);
            p += used;
            assert_true(nseen < N);
            seen[nseen++] = strdup(key);
        }
        snprintf(cursor, sizeof(cursor), "%llu", next);
        rounds++;
    } while (strcmp(cursor, "0") != 0 && rounds < 10 * N);
    assert_string_equal(cursor, "0");
    assert_int_equal(nseen, N);
    qsort(seen, nseen, sizeof(seen[0]), cmp_str);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "key:%03d", i);
        assert_string_equal(seen[i], want);
        free(seen[i]);
    }
    assert_true(rounds > 1); /* COUNT did split the iteration */
}

static void
test_scan_match_type_and_errors(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "MSET a1 x a2 y b1 z", "OK");
    const char *r = RUN(fx, "SCAN 0 MATCH a* COUNT 1000");
    assert_true(strcmp(r, "*2 \"0\" *2 \"a1\" \"a2\"") == 0 ||
                strcmp(r, "*2 \"0\" *2 \"a2\" \"a1\"") == 0);
    EXPECT(fx, "SCAN 0 COUNT 1000 TYPE hash", "*2 \"0\" *0");
    EXPECT(fx, "SCAN 0 COUNT 1000 MATCH b* TYPE string", "*2 \"0\" *1 \"b1\"");
    EXPECT(fx, "SCAN x", "!ERR invalid cursor");
    EXPECT(fx, "SCAN -1", "!ERR invalid cursor");
    EXPECT(fx, "SCAN 0 COUNT 0", "!ERR syntax error");
    EXPECT(fx, "SCAN 0 COUNT", "!ERR syntax error");
    EXPECT(fx, "SCAN 0 COUNT x",
           "!ERR value is not an integer or out of range");
}

static void
test_randomkey_and_flushdb(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "RANDOMKEY", "nil");
    EXPECT(fx, "SET only v", "OK");
    EXPECT(fx, "RANDOMKEY", "\"only\"");
    EXPECT(fx, "FLUSHDB foo", "!ERR syntax error");
    EXPECT(fx, "FLUSHDB ASYNC", "OK");
    EXPECT(fx, "DBSIZE", ":0");
    EXPECT(fx, "RANDOMKEY", "nil");
}

/* --- connection, server
 * ---------------------------------------------------------------- */

static void
test_auth_required_when_configured(void **state)
{
    struct cmdt_fx *fx;
    struct cmdt_params p = {.requirepass = "s3cret"};

    cmdt_teardown(state);
    cmdt_setup_params(state, &p);
    fx = *state;
    /* Existence and arity are checked before authentication. */
    EXPECT(fx, "NOPE",
           "!ERR unknown command 'NOPE', with args beginning "
           "with: ");
    EXPECT(fx, "GET", "!ERR wrong number of arguments for 'get' command");
    EXPECT(fx, "GET a", "!NOAUTH Authentication required.");
    EXPECT(fx, "HELLO 2",
           "!NOAUTH HELLO must be called with the client "
           "already authenticated, otherwise the HELLO "
           "<proto> AUTH <user> <pass> option can be used to "
           "authenticate the client and select the RESP "
           "protocol version at the same time");
    EXPECT(fx, "AUTH wrong",
           "!WRONGPASS invalid username-password pair or user is disabled.");
    EXPECT(fx, "AUTH other s3cret",
           "!WRONGPASS invalid username-password pair or user is disabled.");
    EXPECT(fx, "AUTH s3cret", "OK");
    EXPECT(fx, "GET a", "nil");
    EXPECT(fx, "RESET", "RESET"); /* de-authenticates */
    EXPECT(fx, "GET a", "!NOAUTH Authentication required.");
    EXPECT(fx, "AUTH default s3cret", "OK");
    EXPECT(fx, "GET a", "nil");
}

static void
test_auth_without_password_configured(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "AUTH x",
           "!ERR AUTH <password> called without any password configured for "
           "the default user. Are you sure your configuration is correct?");
    EXPECT(fx, "AUTH default anything", "OK");
    EXPECT(fx, "AUTH a b c", "!ERR syntax error");
}

/* A fresh fixture whose session is untrusted (TCP-like). */
static struct cmdt_fx *
untrusted_fixture(void **state, const char *layer_pass)
{
    struct cmdt_params p = {.requirepass = layer_pass};

    cmdt_teardown(state);
    cmdt_setup_params(state, &p);
    return *state;
}

/* AUTH <pass> with a binary-safe password. */
static const char *
run_auth(struct cmdt_fx *fx, const char *pass, size_t len)
{
    const char *argv[2] = {"AUTH", pass};
    size_t argl[2] = {4, len};
    return cmdt_runv(fx, 2, argv, argl);
}

#define WRONGPASS                                                              \
    "!WRONGPASS invalid username-password pair or user is disabled."

static void
test_session_password_requires_auth(void **state)
{
    struct cmdt_fx *fx = untrusted_fixture(state, NULL);

    EXPECT(fx, "GET a", "nil"); /* no password anywhere: open */
    kvd_cmd_session_set_password(fx->sess, "p\0w", 3);
    EXPECT(fx, "GET a", "!NOAUTH Authentication required.");
    EXPECT(fx, "PING", "!NOAUTH Authentication required.");
    assert_string_equal(run_auth(fx, "p", 1), WRONGPASS);
    assert_string_equal(run_auth(fx, "p\0", 2), WRONGPASS);
    assert_string_equal(run_auth(fx, "p\0wx", 4), WRONGPASS);
    assert_string_equal(run_auth(fx, "p\0W", 3), WRONGPASS);
    EXPECT(fx, "AUTH \"\"", WRONGPASS);
    EXPECT(fx, "GET a", "!NOAUTH Authentication required.");
    assert_string_equal(run_auth(fx, "p\0w", 3), "OK");
    EXPECT(fx, "GET a", "nil");
    /* RESET drops the authentication but keeps the requirement. */
    EXPECT(fx, "RESET", "RESET");
    EXPECT(fx, "GET a", "!NOAUTH Authentication required.");
    EXPECT(fx, "AUTH default \"p\\x00w\"", "OK");
    EXPECT(fx, "GET a", "nil");
    /* A new password asks for AUTH again. */
    kvd_cmd_session_set_password(fx->sess, "next", 4);
    EXPECT(fx, "GET a", "!NOAUTH Authentication required.");
    EXPECT(fx, "AUTH next", "OK");
    /* NULL drops it: no password anywhere, AUTH says so. */
    kvd_cmd_session_set_password(fx->sess, NULL, 0);
    EXPECT(fx, "GET a", "nil");
    EXPECT(fx, "AUTH next",
           "!ERR AUTH <password> called without any password configured for "
           "the default user. Are you sure your configuration is correct?");
}

static void
test_session_password_hello_auth(void **state)
{
    struct cmdt_fx *fx = untrusted_fixture(state, NULL);

    kvd_cmd_session_set_password(fx->sess, "sekrit", 6);
    EXPECT(fx, "HELLO 3",
           "!NOAUTH HELLO must be called with the client "
           "already authenticated, otherwise the HELLO "
           "<proto> AUTH <user> <pass> option can be used to "
           "authenticate the client and select the RESP "
           "protocol version at the same time");
    EXPECT(fx, "HELLO 3 AUTH default nope", WRONGPASS);
    EXPECT(fx, "HELLO 3 AUTH admin sekrit", WRONGPASS);
    /* A refused HELLO leaves the protocol alone. */
    assert_int_equal(kvd_cmd_session_proto(fx->sess), 2);
    EXPECT(fx, "GET a", "!NOAUTH Authentication required.");
    EXPECT(fx, "HELLO 2 AUTH default sekrit",
           "*14 \"server\" \"kvd\" \"version\" \"test\" \"proto\" :2 \"id\" "
           ":1 \"mode\" \"standalone\" \"role\" \"master\" \"modules\" *0");
    EXPECT(fx, "GET a", "nil");
}

static void
test_session_password_on_trusted_session_checks_auth(void **state)
{
    struct cmdt_fx *fx = *state; /* trusted */

    kvd_cmd_session_set_password(fx->sess, "sekrit", 6);
    EXPECT(fx, "GET a", "nil"); /* trusted: no AUTH needed */
    EXPECT(fx, "AUTH wrong", WRONGPASS);
    EXPECT(fx, "AUTH sekrit", "OK");
    EXPECT(fx, "RESET", "RESET");
    EXPECT(fx, "GET a", "nil");
}

static void
test_session_password_replaces_the_layers(void **state)
{
    struct cmdt_fx *fx = untrusted_fixture(state, "s3cret");

    kvd_cmd_session_set_password(fx->sess, "mine", 4);
    EXPECT(fx, "AUTH s3cret", WRONGPASS);
    EXPECT(fx, "AUTH mine", "OK");
    /* Dropping the session's own password goes back to the layer's. */
    kvd_cmd_session_set_password(fx->sess, "", 0);
    EXPECT(fx, "GET a", "!NOAUTH Authentication required.");
    EXPECT(fx, "AUTH mine", WRONGPASS);
    EXPECT(fx, "AUTH s3cret", "OK");
    /* Another session of the same layer is not affected. */
    kvd_session *other = kvd_cmd_session_create(fx->cmd, "test", 0);
    assert_non_null(other);
    kvd_cmd_session_set_password(other, "theirs", 6);
    EXPECT(fx, "GET a", "nil");
    kvd_cmd_session_destroy(other);
}

static void
test_api_table_has_session_methods(void **state)
{
    const struct kvd_cmd_api *api = kvd_cmd_api_table();
    (void)state;

    assert_int_equal(api->struct_size, sizeof(struct kvd_cmd_api));
    assert_ptr_equal(api->session_set_password, kvd_cmd_session_set_password);
    assert_ptr_equal(api->session_proto, kvd_cmd_session_proto);
    assert_ptr_equal(api->stats, kvd_cmd_frontend_stats);
    assert_ptr_equal(api->session_open, kvd_cmd_session_open);
    assert_ptr_equal(api->call, kvd_cmd_call);
    assert_ptr_equal(api->pass_create, kvd_cmd_pass_create);
    assert_ptr_equal(api->pass_end, kvd_cmd_pass_end);
    assert_ptr_equal(api->pass_pending, kvd_cmd_pass_pending);
    assert_ptr_equal(api->pass_destroy, kvd_cmd_pass_destroy);
}

static void
test_hello_3_switches_to_resp3(void **state)
{
    struct cmdt_fx *fx = *state;

    assert_int_equal(kvd_cmd_session_proto(fx->sess), 2);
    assert_int_equal(fx->rec.proto, 0); /* nothing pushed yet */
    /* The reply is already RESP3: a map, proto 3; the encoder was told
     * before it. */
    EXPECT(fx, "HELLO 3",
           "%7 \"server\" \"kvd\" \"version\" \"test\" \"proto\" :3 \"id\" "
           ":1 \"mode\" \"standalone\" \"role\" \"master\" \"modules\" *0");
    assert_int_equal(kvd_cmd_session_proto(fx->sess), 3);
    assert_int_equal(fx->rec.proto, 3);
    EXPECT(fx, "HELLO",
           "%7 \"server\" \"kvd\" \"version\" \"test\" \"proto\" :3 \"id\" "
           ":1 \"mode\" \"standalone\" \"role\" \"master\" \"modules\" *0");
    EXPECT(fx, "CONFIG GET save", "%1 \"save\" \"\"");
    const char *r = RUN(fx, "CLIENT INFO");
    assert_non_null(strstr(r, " resp=3"));
    EXPECT(fx, "HELLO 4", "!NOPROTO unsupported protocol version");
    EXPECT(fx, "HELLO 1", "!NOPROTO unsupported protocol version");
    EXPECT(fx, "HELLO 0", "!NOPROTO unsupported protocol version");
    EXPECT(fx, "HELLO -3", "!NOPROTO unsupported protocol version");
    assert_int_equal(kvd_cmd_session_proto(fx->sess), 3);
    EXPECT(fx, "HELLO 2",
           "*14 \"server\" \"kvd\" \"version\" \"test\" \"proto\" :2 \"id\" "
           ":1 \"mode\" \"standalone\" \"role\" \"master\" \"modules\" *0");
    assert_int_equal(kvd_cmd_session_proto(fx->sess), 2);
    assert_int_equal(fx->rec.proto, 2);
    EXPECT(fx, "CONFIG GET save", "*2 \"save\" \"\"");
    /* RESET goes back to RESP2. */
    r = RUN(fx, "HELLO 3 SETNAME app");
    assert_memory_equal(r, "%7 ", 3);
    EXPECT(fx, "CLIENT GETNAME", "\"app\"");
    assert_int_equal(kvd_cmd_session_proto(fx->sess), 3);
    assert_int_equal(fx->rec.proto, 3);
    EXPECT(fx, "RESET", "RESET");
    assert_int_equal(kvd_cmd_session_proto(fx->sess), 2);
    assert_int_equal(fx->rec.proto, 2);
    EXPECT(fx, "CLIENT GETNAME", "nil");
}

static void
test_hello_select_ping_echo(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "HELLO x",
           "!ERR Protocol version is not an integer or out of range");
    EXPECT(fx, "HELLO 2 foo", "!ERR Syntax error in HELLO option 'foo'");
    EXPECT(fx, "HELLO 2 SETNAME app",
           "*14 \"server\" \"kvd\" \"version\" \"test\" \"proto\" :2 \"id\" "
           ":1 \"mode\" \"standalone\" \"role\" \"master\" \"modules\" *0");
    EXPECT(fx, "CLIENT GETNAME", "\"app\"");
    EXPECT(fx, "SELECT 0", "OK");
    EXPECT(fx, "SELECT 1", "!ERR DB index is out of range");
    EXPECT(fx, "SELECT x", "!ERR value is not an integer or out of range");
    EXPECT(fx, "PING", "PONG");
    EXPECT(fx, "PING hi", "\"hi\"");
    EXPECT(fx, "ECHO \"a b\"", "\"a b\"");
}

static void
test_client_commands(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "CLIENT ID", ":1");
    EXPECT(fx, "CLIENT GETNAME", "nil");
    EXPECT(fx, "CLIENT SETNAME \"a b\"",
           "!ERR Client names cannot contain spaces, newlines or special "
           "characters.");
    EXPECT(fx, "CLIENT SETNAME me", "OK");
    EXPECT(fx, "CLIENT GETNAME", "\"me\"");
    EXPECT(fx, "CLIENT SETINFO lib-name redis-py", "OK");
    EXPECT(fx, "CLIENT SETINFO foo x", "!ERR Unrecognized option 'foo'");
    const char *r = RUN(fx, "CLIENT INFO");
    assert_non_null(strstr(r, "id=1 "));
    assert_non_null(strstr(r, " name=me "));
    assert_non_null(strstr(r, " lib-name=redis-py "));
}

static void
test_config_get_and_set(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "CONFIG GET save", "*2 \"save\" \"\"");
    EXPECT(fx, "CONFIG GET appendonly save",
           "*4 \"appendonly\" \"no\" \"save\" \"\"");
    EXPECT(fx, "CONFIG GET nosuch", "*0");
    EXPECT(fx, "CONFIG SET save \"\"", "OK");
    EXPECT(fx, "CONFIG SET nosuch 1",
           "!ERR Unknown option or number of arguments for CONFIG SET - "
           "'nosuch'");
}

static void
test_command_count_info(void **state)
{
    struct cmdt_fx *fx = *state;

    const char *r = RUN(fx, "COMMAND COUNT");
    assert_true(atoi(r + 1) >= 60);
    EXPECT(fx, "COMMAND INFO get nosuch",
           "*2 *10 \"get\" :2 *2 readonly fast :1 :1 :1 *3 \"@string\" "
           "\"@read\" \"@fast\" *0 *0 *0 nil");
    EXPECT(fx, "COMMAND NOPE",
           "!ERR unknown subcommand 'NOPE'. Try COMMAND "
           "HELP.");
    EXPECT(fx, "FUNCTION FLUSH", "OK");
    EXPECT(fx, "DEBUG OBJECT x", "!ERR DEBUG is not supported by kvd");
}

/* The INFO line that starts with `name`, without its CRLF. */
static const char *
info_line(const char *r, const char *name)
{
    static char line[512];
    const char *p = strstr(r, name);
    const char *e;

    assert_non_null(p);
    e = strstr(p, CRLF);
    assert_non_null(e);
    assert_true((size_t)(e - p) < sizeof(line));
    memcpy(line, p, (size_t)(e - p));
    line[e - p] = '\0';
    return line;
}

static void
test_info_sections_and_commandstats(void **state)
{
    struct cmdt_fx *fx = *state;

    EXPECT(fx, "SET a 1", "OK");
    EXPECT(fx, "GET a", "\"1\"");
    EXPECT(fx, "GET nokey", "nil");
    EXPECT(fx, "GET", "!ERR wrong number of arguments for 'get' command");
    EXPECT(fx, "INCR a x",
           "!ERR wrong number of arguments for 'incr' "
           "command");
    EXPECT(fx, "SET a x", "OK");
    EXPECT(fx, "INCR a", "!ERR value is not an integer or out of range");

    const char *r = RUN(fx, "INFO");
    assert_non_null(strstr(r, "# Server" CRLF "redis_version:"));
    assert_non_null(strstr(r, "kvd_engine:memory" CRLF));
    assert_non_null(strstr(r, "# Clients" CRLF "connected_clients:1" CRLF));
    assert_non_null(strstr(r, "keyspace_hits:1" CRLF));
    assert_non_null(strstr(r, "keyspace_misses:1" CRLF));
    assert_non_null(strstr(r, "# Keyspace" CRLF "db0:keys=1,"));
    assert_null(strstr(r, "cmdstat_"));

    r = RUN(fx, "INFO commandstats");
    assert_null(strstr(r, "# Server"));
    const char *get = info_line(r, "cmdstat_get:");
    assert_non_null(strstr(get, "calls=2,"));
    assert_non_null(strstr(get, ",rejected_calls=1,failed_calls=0"));
    const char *incr = info_line(r, "cmdstat_incr:");
    assert_non_null(strstr(incr, "calls=1,"));
    assert_non_null(strstr(incr, ",rejected_calls=1,failed_calls=1"));
}

/* Every syntax line of the table parses into COMMAND DOCS arguments. */
static void
test_command_docs_covers_every_syntax(void **state)
{
    struct cmdt_fx *fx = *state;
    size_t n = kvd_cmd_entry_count(fx->cmd);

    for (size_t i = 0; i < n; i++) {
        const struct kvd_cmd_def *d = kvd_cmd_entry_at(fx->cmd, i)->def;
        if (d->syntax != NULL && d->syntax[0] != '\0' &&
            !kvd_cmd_docs_has_args(d->syntax)) {
            fail_msg("syntax of '%s' does not parse: %s", d->name, d->syntax);
        }
    }
    EXPECT(fx, "COMMAND DOCS get",
           "*2 \"get\" *10 \"summary\" \"Returns the string value of a "
           "key.\" \"since\" \"1.0.0\" \"group\" \"string\" "
           "\"complexity\" \"O(1)\" \"arguments\" *1 *4 \"name\" \"key\" "
           "\"type\" \"key\"");
    const char *r = RUN(fx, "COMMAND DOCS mset");
    assert_non_null(strstr(r, "\"type\" \"block\" \"flags\" *1 multiple"));
    r = RUN(fx, "COMMAND DOCS scan");
    assert_non_null(strstr(r, "\"name\" \"pattern\" \"type\" \"pattern\" "
                              "\"token\" \"MATCH\" \"flags\" *1 optional"));
}

struct stat_find {
    const char *name;
    struct kvd_cmd_stat got;
    int found;
};

static void
stat_cb(void *ctx, const struct kvd_cmd_stat *s)
{
    struct stat_find *f = ctx;
    if (strcmp(s->name, f->name) == 0) {
        f->got = *s;
        f->found++;
    }
}

static void
test_stats_function_reports_calls(void **state)
{
    struct cmdt_fx *fx = *state;
    struct stat_find f = {.name = "set"};

    EXPECT(fx, "SET a 1", "OK");
    EXPECT(fx, "SET a 1 EX 0", "!ERR invalid expire time in 'set' command");
    EXPECT(fx, "CLIENT SETNAME x", "OK");
    assert_true(kvd_cmd_stats(fx->cmd, false, stat_cb, &f) >= 2);
    assert_int_equal(f.found, 1);
    assert_int_equal(f.got.calls, 2);
    assert_int_equal(f.got.failed_calls, 1);
    f = (struct stat_find){.name = "client|setname"};
    kvd_cmd_stats(fx->cmd, false, stat_cb, &f);
    assert_int_equal(f.got.calls, 1);
    kvd_cmd_stats_reset(fx->cmd);
    f = (struct stat_find){.name = "set"};
    kvd_cmd_stats(fx->cmd, true, stat_cb, &f);
    assert_int_equal(f.found, 1);
    assert_int_equal(f.got.calls, 0);
}

/* --- counters by frontend (struct kvd_cmd_api.stats) ---------------------- */

#define FE_ROWS_MAX 64

/* What the stats method reported, row by row. */
struct fe_rows {
    size_t n;
    struct {
        char frontend[32];
        char command[80];
        uint64_t calls;
        uint64_t failed;
        uint64_t usec;
    } r[FE_ROWS_MAX];
};

static void
fe_collect(void *ctx, const char *frontend, const char *command, uint64_t calls,
           uint64_t failed, uint64_t usec)
{
    struct fe_rows *rows = ctx;

    assert_true(rows->n < FE_ROWS_MAX);
    snprintf(rows->r[rows->n].frontend, sizeof(rows->r[0].frontend), "%s",
             frontend);
    snprintf(rows->r[rows->n].command, sizeof(rows->r[0].command), "%s",
             command);
    rows->r[rows->n].calls = calls;
    rows->r[rows->n].failed = failed;
    rows->r[rows->n].usec = usec;
    rows->n++;
}

/* Report through the api table, as a frontend would; the return value
 * must be the number of rows. */
static void
fe_report(struct cmdt_fx *fx, struct fe_rows *rows)
{
    const struct kvd_cmd_api *api = kvd_cmd_api_table();

    memset(rows, 0, sizeof(*rows));
    int n = api->stats(fx->cmd, fe_collect, rows);
    assert_int_equal(n, (int)rows->n);
}

/* The row of (frontend, command): 1 when there is exactly one, 0 when
 * none; calls and failed are copied out. */
static int
fe_find(const struct fe_rows *rows, const char *frontend, const char *command,
        uint64_t *calls, uint64_t *failed)
{
    int found = 0;

    for (size_t i = 0; i < rows->n; i++) {
        if (strcmp(rows->r[i].frontend, frontend) == 0 &&
            strcmp(rows->r[i].command, command) == 0) {
            *calls = rows->r[i].calls;
            *failed = rows->r[i].failed;
            found++;
        }
    }
    return found;
}

#define EXPECT_ROW(rows, fe, cmd, want_calls, want_failed)                     \
    do {                                                                       \
        uint64_t c_ = 0, f_ = 0;                                               \
        assert_int_equal(fe_find((rows), (fe), (cmd), &c_, &f_), 1);           \
        assert_int_equal(c_, (want_calls));                                    \
        assert_int_equal(f_, (want_failed));                                   \
    } while (0)

#define EXPECT_NO_ROW(rows, fe, cmd)                                           \
    do {                                                                       \
        uint64_t c_ = 0, f_ = 0;                                               \
        assert_int_equal(fe_find((rows), (fe), (cmd), &c_, &f_), 0);           \
    } while (0)

/* Run a line on session s instead of the fixture's (a first-edition
 * session: through kvd_cmd_exec). */
static const char *
run_as(struct cmdt_fx *fx, kvd_session *s, const char *line)
{
    return cmdt_run_exec(fx, s, line);
}

static void
test_stats_by_frontend_counts_each_frontend_exactly(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_session *resp = kvd_cmd_session_create(fx->cmd, "resp", 0);
    kvd_session *in = kvd_cmd_session_create(fx->cmd, "stdin", 0);
    struct fe_rows rows;

    assert_non_null(resp);
    assert_non_null(in);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(run_as(fx, resp, "SET a 1"), "OK");
    }
    assert_string_equal(run_as(fx, resp, "SET a 1 EX 0"),
                        "!ERR invalid expire time in 'set' command");
    assert_string_equal(run_as(fx, resp, "GET a"), "\"1\"");
    assert_string_equal(run_as(fx, resp, "GET a b"),
                        "!ERR wrong number of arguments for 'get' command");
    assert_string_equal(run_as(fx, in, "SET b 2"), "OK");
    assert_string_equal(run_as(fx, in, "CLIENT SETNAME x"), "OK");
    assert_string_equal(run_as(fx, in, "NOSUCH"),
                        "!ERR unknown command 'NOSUCH', with args "
                        "beginning with: ");

    fe_report(fx, &rows);
    /* A refused call (arity) is a call that failed, to a client. */
    EXPECT_ROW(&rows, "resp", "set", 4, 1);
    EXPECT_ROW(&rows, "resp", "get", 2, 1);
    EXPECT_ROW(&rows, "stdin", "set", 1, 0);
    EXPECT_ROW(&rows, "stdin", "client|setname", 1, 0);
    EXPECT_NO_ROW(&rows, "stdin", "get");
    EXPECT_NO_ROW(&rows, "test", "set"); /* the fixture's idle session */
    assert_int_equal(rows.n, 4);         /* unknown commands are not rows */

    /* INFO commandstats still sums the frontends, in its own terms. */
    struct stat_find f = {.name = "set"};
    kvd_cmd_stats(fx->cmd, false, stat_cb, &f);
    assert_int_equal(f.got.calls, 5);
    assert_int_equal(f.got.failed_calls, 1);
    f = (struct stat_find){.name = "get"};
    kvd_cmd_stats(fx->cmd, false, stat_cb, &f);
    assert_int_equal(f.got.calls, 1);
    assert_int_equal(f.got.rejected_calls, 1);

    kvd_cmd_session_destroy(resp);
    kvd_cmd_session_destroy(in);
    /* Counters outlive their sessions; a new session of a known frontend
     * adds to the same row. */
    resp = kvd_cmd_session_create(fx->cmd, "resp", 0);
    assert_string_equal(run_as(fx, resp, "SET a 2"), "OK");
    kvd_cmd_session_destroy(resp);
    fe_report(fx, &rows);
    EXPECT_ROW(&rows, "resp", "set", 5, 1);
}

static void
test_stats_by_frontend_counts_noauth_as_failed(void **state)
{
    struct cmdt_fx *fx = *state;
    struct fe_rows rows;

    /* The fixture's session ("test") is trusted: an untrusted one on a
     * layer without a password needs no AUTH either, so give it one. */
    kvd_session *s = kvd_cmd_session_create(fx->cmd, "resp", 0);
    assert_non_null(s);
    kvd_cmd_session_set_password(s, "pw", 2);
    assert_string_equal(run_as(fx, s, "GET a"),
                        "!NOAUTH Authentication required.");
    assert_string_equal(run_as(fx, s, "AUTH pw"), "OK");
    assert_string_equal(run_as(fx, s, "GET a"), "nil");
    fe_report(fx, &rows);
    EXPECT_ROW(&rows, "resp", "get", 2, 1);
    EXPECT_ROW(&rows, "resp", "auth", 1, 0);
    kvd_cmd_session_destroy(s);
}

static void
test_stats_by_frontend_shares_other_slot_beyond_table(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_session *s[20];
    char name[16];
    struct fe_rows rows;
    uint64_t calls, failed;

    /* The fixture's "test" session holds the first slot: fe0..fe13 fill
     * the 14 named slots left, fe14..fe19 share "other". */
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "fe%d", i);
        s[i] = kvd_cmd_session_create(fx->cmd, name, 0);
        assert_non_null(s[i]);
        assert_string_equal(run_as(fx, s[i], "PING"), "PONG");
    }
    fe_report(fx, &rows);
    for (int i = 0; i < 14; i++) {
        snprintf(name, sizeof(name), "fe%d", i);
        EXPECT_ROW(&rows, name, "ping", 1, 0);
    }
    EXPECT_ROW(&rows, "other", "ping", 6, 0);
    assert_int_equal(fe_find(&rows, "fe14", "ping", &calls, &failed), 0);
    assert_int_equal(rows.n, 15);
    for (int i = 0; i < 20; i++) {
        kvd_cmd_session_destroy(s[i]);
    }
}

static void
test_stats_by_frontend_names_unnamed_sessions_unknown(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_session *s = kvd_cmd_session_create(fx->cmd, NULL, 0);
    kvd_session *e = kvd_cmd_session_create(fx->cmd, "", 0);
    struct fe_rows rows;

    assert_string_equal(run_as(fx, s, "PING"), "PONG");
    assert_string_equal(run_as(fx, e, "PING"), "PONG");
    fe_report(fx, &rows);
    EXPECT_ROW(&rows, "unknown", "ping", 2, 0);
    kvd_cmd_session_destroy(s);
    kvd_cmd_session_destroy(e);
}

static void
test_stats_by_frontend_cut_names_at_15_bytes(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_session *s =
        kvd_cmd_session_create(fx->cmd, "a-very-long-frontend-name", 0);
    struct fe_rows rows;

    assert_string_equal(run_as(fx, s, "PING"), "PONG");
    fe_report(fx, &rows);
    EXPECT_ROW(&rows, "a-very-long-fro", "ping", 1, 0);
    kvd_cmd_session_destroy(s);
}

static void
test_stats_by_frontend_zeroed_by_config_resetstat(void **state)
{
    struct cmdt_fx *fx = *state;
    kvd_session *s = kvd_cmd_session_create(fx->cmd, "resp", 0);
    struct fe_rows rows;

    assert_string_equal(run_as(fx, s, "SET a 1"), "OK");
    EXPECT(fx, "CONFIG RESETSTAT", "OK");
    fe_report(fx, &rows);
    EXPECT_NO_ROW(&rows, "resp", "set");
    assert_string_equal(run_as(fx, s, "SET a 1"), "OK");
    fe_report(fx, &rows);
    EXPECT_ROW(&rows, "resp", "set", 1, 0);
    kvd_cmd_session_destroy(s);
}

/* --- atomicity
 * ---------------------------------------------------------------------- */

#define INCR_THREADS 4
#define INCR_EACH    2000

struct incr_arg {
    struct cmdt_fx *fx;
    int bad;
};

static void *
incr_worker(void *p)
{
    struct incr_arg *a = p;
    kvd_session *s =
        kvd_cmd_session_create(a->fx->cmd, "test", KVD_SESSION_TRUSTED);
    struct cmdt_rec rec = {0};
    const char *argv[] = {"INCR", "counter"};
    size_t argl[] = {4, 7};
    const char *aargv[] = {"APPEND", "log", "x"};
    size_t aargl[] = {6, 3, 1};

    for (int i = 0; i < INCR_EACH; i++) {
        cmdt_rec_reset(&rec);
        kvd_cmd_exec(s, 2, argv, argl, &cmdt_reply_ops, &rec);
        a->bad += rec.buf[0] != ':';
        cmdt_rec_reset(&rec);
        kvd_cmd_exec(s, 3, aargv, aargl, &cmdt_reply_ops, &rec);
        a->bad += rec.buf[0] != ':';
    }
    cmdt_rec_release(&rec);
    kvd_cmd_session_destroy(s);
    return NULL;
}

static void
test_concurrent_incr_and_append_lose_nothing(void **state)
{
    struct cmdt_fx *fx = *state;
    pthread_t t[INCR_THREADS];
    struct incr_arg a[INCR_THREADS];
    char want[32];

    for (int i = 0; i < INCR_THREADS; i++) {
        a[i] = (struct incr_arg){.fx = fx};
        assert_int_equal(pthread_create(&t[i], NULL, incr_worker, &a[i]), 0);
    }
    for (int i = 0; i < INCR_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].bad, 0);
    }
    snprintf(want, sizeof(want), "\"%d\"", INCR_THREADS * INCR_EACH);
    EXPECT(fx, "GET counter", want);
    snprintf(want, sizeof(want), ":%d", INCR_THREADS * INCR_EACH);
    EXPECT(fx, "STRLEN log", want);
    /* Every thread counted into its own stripe; the sum loses none. */
    struct fe_rows rows;
    fe_report(fx, &rows);
    EXPECT_ROW(&rows, "test", "incr", INCR_THREADS * INCR_EACH, 0);
    EXPECT_ROW(&rows, "test", "append", INCR_THREADS * INCR_EACH, 0);
}

/* A reader's MGET sees each MSET whole: all keys always equal. */
#define MSET_KEYS 8

struct mset_arg {
    struct cmdt_fx *fx;
    atomic_bool stop;
};

static void *
mset_writer(void *p)
{
    struct mset_arg *a = p;
    kvd_session *s =
        kvd_cmd_session_create(a->fx->cmd, "test", KVD_SESSION_TRUSTED);
    struct cmdt_rec rec = {0};
    static const char *const keys[MSET_KEYS] = {"k0", "k1", "k2", "k3",
                                                "k4", "k5", "k6", "k7"};

    for (int i = 0; !atomic_load(&a->stop); i++) {
        char v[16];
        const char *argv[1 + 2 * MSET_KEYS];
        size_t argl[1 + 2 * MSET_KEYS];
        int n = snprintf(v, sizeof(v), "%d", i);
        argv[0] = "MSET";
        argl[0] = 4;
        for (int k = 0; k < MSET_KEYS; k++) {
            argv[1 + 2 * k] = keys[k];
            argl[1 + 2 * k] = 2;
            argv[2 + 2 * k] = v;
            argl[2 + 2 * k] = (size_t)n;
        }
        cmdt_rec_reset(&rec);
        kvd_cmd_exec(s, 1 + 2 * MSET_KEYS, argv, argl, &cmdt_reply_ops, &rec);
    }
    cmdt_rec_release(&rec);
    kvd_cmd_session_destroy(s);
    return NULL;
}

static void
test_mget_sees_mset_all_or_nothing(void **state)
{
    struct cmdt_fx *fx = *state;
    struct mset_arg a = {.fx = fx};
    pthread_t t;
    int torn = 0;

    EXPECT(fx, "MSET k0 0 k1 0 k2 0 k3 0 k4 0 k5 0 k6 0 k7 0", "OK");
    atomic_init(&a.stop, false);
    assert_int_equal(pthread_create(&t, NULL, mset_writer, &a), 0);
    for (int i = 0; i < 20000 && torn == 0; i++) {
        const char *r = RUN(fx, "MGET k0 k1 k2 k3 k4 k5 k6 k7");
        const char *first = strchr(r, '"');
        const char *end = strchr(first + 1, '"');
        size_t len = (size_t)(end - first + 1);
        /* Every element must repeat the first one. */
        for (const char *p = strchr(r, '"'); p != NULL;
             p = strchr(p + len, '"')) {
            if (strncmp(p, first, len) != 0) {
                torn++;
                break;
            }
        }
    }
    atomic_store(&a.stop, true);
    pthread_join(t, NULL);
    assert_int_equal(torn, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, cmdt_setup, cmdt_teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_exec_unknown_command_names_args),
        T(test_exec_unknown_command_args_are_cut_at_128_bytes),
        T(test_exec_names_are_case_insensitive),
        T(test_exec_wrong_arity_uses_lowercase_name),
        T(test_exec_empty_argv_gets_an_error),
        T(test_exec_quit_asks_to_close),
        T(test_set_get_roundtrip_and_missing),
        T(test_set_get_binary_key_and_value),
        T(test_set_empty_key_is_refused),
        T(test_set_nx_xx),
        T(test_set_get_option_returns_old_value),
        T(test_set_expire_validation),
        T(test_set_ex_px_exat_pxat),
        T(test_set_exat_in_the_past_deletes),
        T(test_set_keepttl_keeps_expiry),
        T(test_value_limit_is_a_clear_error),
        T(test_getex_getdel),
        T(test_mset_mget),
        T(test_mset_with_invalid_key_changes_nothing),
        T(test_msetnx_all_or_nothing),
        T(test_incr_family),
        T(test_incr_overflow),
        T(test_incr_keeps_ttl),
        T(test_incrbyfloat),
        T(test_append_strlen_getrange_setrange),
        T(test_bits),
        T(test_lcs),
        T(test_del_exists_count_exactly),
        T(test_rename_renamenx_copy),
        T(test_ttl_semantics),
        T(test_key_expires_with_the_clock),
        T(test_expire_options),
        T(test_expire_in_the_past_deletes),
        T(test_keys_pattern),
        T(test_scan_visits_every_key_once),
        T(test_scan_match_type_and_errors),
        T(test_randomkey_and_flushdb),
        T(test_auth_required_when_configured),
        T(test_auth_without_password_configured),
        T(test_session_password_requires_auth),
        T(test_session_password_hello_auth),
        T(test_session_password_on_trusted_session_checks_auth),
        T(test_session_password_replaces_the_layers),
        T(test_api_table_has_session_methods),
        T(test_hello_3_switches_to_resp3),
        T(test_hello_select_ping_echo),
        T(test_client_commands),
        T(test_config_get_and_set),
        T(test_command_count_info),
        T(test_command_docs_covers_every_syntax),
        T(test_info_sections_and_commandstats),
        T(test_stats_function_reports_calls),
        T(test_stats_by_frontend_counts_each_frontend_exactly),
        T(test_stats_by_frontend_counts_noauth_as_failed),
        T(test_stats_by_frontend_shares_other_slot_beyond_table),
        T(test_stats_by_frontend_names_unnamed_sessions_unknown),
        T(test_stats_by_frontend_cut_names_at_15_bytes),
        T(test_stats_by_frontend_zeroed_by_config_resetstat),
        T(test_concurrent_incr_and_append_lose_nothing),
        T(test_mget_sees_mset_all_or_nothing),
    };
    return cmocka_run_group_tests_name("cmd_exec", tests, cmdt_group_setup,
                                       cmdt_group_teardown);
}
