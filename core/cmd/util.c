/*
 * core/cmd/util.c -- helpers of the command layer: argument parsing, number
 * formatting, the glob matcher, a byte buffer.
 *
 * Thread-safety: pure functions, or functions of one command context.
 */
#include "core/cmd/cmd_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest number string parse_ld accepts (as Redis's long double
 * parsing: longer inputs are refused, not truncated). */
#define CMD_LD_MAX_CHARS (5 * 1024)

/* Recursion bound of the glob matcher: patterns with more nested '*'
 * than this simply do not match, so no pattern can exhaust the stack. */
#define CMD_GLOB_MAX_NESTING 1000

/* --- arguments --------------------------------------------------------------
 */

bool
kvd_cmd_word_eq(const char *p, size_t n, const char *word)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (word[i] == '\0') {
            return false;
        }
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + ('a' - 'A'));
        }
        if (c != (unsigned char)word[i]) {
            return false;
        }
    }
    return word[i] == '\0';
}

bool
kvd_cmd_arg_is(const struct kvd_cmd_ctx *x, size_t i, const char *word)
{
    return i < x->argc && kvd_cmd_word_eq(x->argv[i], x->argl[i], word);
}

bool
kvd_cmd_parse_ll(const char *p, size_t n, long long *out)
{
    unsigned long long v;
    size_t i = 0;
    bool neg = false;

    /* 20 characters hold every long long ("-9223372036854775808"). */
    if (n == 0 || n > 20) {
        return false;
    }
    if (n == 1 && p[0] == '0') {
        *out = 0;
        return true;
    }
    if (p[0] == '-') {
        neg = true;
        i++;
        if (i == n) {
            return false;
        }
    }
    if (p[i] < '1' || p[i] > '9') {
        return false; /* no leading zero, no "-0", no '+' or space */
    }
    v = (unsigned long long)(p[i] - '0');
    for (i++; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        unsigned long long d = (unsigned long long)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1) {
            return false;
        }
        *out =
            v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX) {
            return false;
        }
        *out = (long long)v;
    }
    return true;
}

bool
kvd_cmd_parse_ld(const char *p, size_t n, long double *out)
{
    char buf[CMD_LD_MAX_CHARS + 1];
    char *end;
    long double v;

    if (n == 0 || n > CMD_LD_MAX_CHARS) {
        return false;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (isspace((unsigned char)buf[0])) {
        return false;
    }
    errno = 0;
    v = strtold(buf, &end);
    if (end != buf + n) {
        return false; /* trailing bytes, or a NUL inside the argument */
    }
    if (errno == ERANGE &&
        (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) {
        return false;
    }
    if (isnan(v)) {
        return false;
    }
    *out = v;
    return true;
}

bool
kvd_cmd_arg_ll(struct kvd_cmd_ctx *x, size_t i, long long *out)
{
    if (!kvd_cmd_parse_ll(x->argv[i], x->argl[i], out)) {
        kvd_cmd_reply_not_int(x);
        return false;
    }
    return true;
}

size_t
kvd_cmd_fmt_ll(char *buf, long long v)
{
    return (size_t)snprintf(buf, 24, "%lld", v);
}

size_t
kvd_cmd_fmt_ld(char *buf, size_t cap, long double v)
{
    int n;

    /* 17 decimals: enough for the long double to print the short decimal
     * a user expects (10.5 + 0.1 = 10.6), then trailing zeros go. */
    n = snprintf(buf, cap, "%.17Lf", v);
    if (n < 0 || (size_t)n >= cap) {
        return 0;
    }
    size_t len = (size_t)n;
    if (memchr(buf, '.', len) != NULL) {
        while (len > 0 && buf[len - 1] == '0') {
            len--;
        }
        if (len > 0 && buf[len - 1] == '.') {
            len--;
        }
    }
    if (len == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        len = 1;
    }
    buf[len] = '\0';
    return len;
}

/* --- glob matching ----------------------------------------------------------
 */

static unsigned char
glob_fold(unsigned char c, bool nocase)
{
    return nocase ? (unsigned char)tolower(c) : c;
}

/*
 * Match a '[...]' class starting after the '['. The index *pi is advanced to
 * the closing ']' (or to the last byte when the class is unterminated,
 * which then acts as a class running to the end of the pattern).
 */
static bool
glob_class(const unsigned char *p, size_t *pi, size_t pn, unsigned char c,
           bool nocase)
{
    size_t i = *pi;
    bool neg = false;
    bool match = false;

    if (i < pn && p[i] == '^') {
        neg = true;
        i++;
    }
    for (;;) {
        if (i >= pn) {
            i = pn - 1; /* unterminated: stop on the last byte */
            break;
        }
        if (p[i] == '\\' && i + 1 < pn) {
            i++;
            if (p[i] == c) {
                match = true;
            }
        } else if (p[i] == ']') {
            break;
        } else if (i + 2 < pn && p[i + 1] == '-') {
            unsigned char lo = glob_fold(p[i], nocase);
            unsigned char hi = glob_fold(p[i + 2], nocase);
            unsigned char cc = glob_fold(c, nocase);
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            if (cc >= lo && cc <= hi) {
                match = true;
            }
            i += 2;
        } else if (glob_fold(p[i], nocase) == glob_fold(c, nocase)) {
            match = true;
        }
        i++;
    }
    *pi = i;
    return neg ? !match : match;
}

/*
 * The matcher proper. `give_up` implements the classic pruning: once the
 * rest of a pattern after some '*' failed at every position of the
 * string, an earlier '*' cannot help either, so every caller stops.
 */
static bool
glob_match(const unsigned char *p, size_t pn, const unsigned char *s, size_t sn,
           bool nocase, bool *give_up, int depth)
{
    if (depth > CMD_GLOB_MAX_NESTING) {
        return false;
    }
    while (pn > 0 && sn > 0) {
        size_t adv = 1; /* pattern bytes consumed by this step */
        switch (p[0]) {
        case '*':
            while (pn > 1 && p[1] == '*') {
                p++;
                pn--;
            }
            if (pn == 1) {
                return true;
            }
            while (sn > 0) {
                if (glob_match(p + 1, pn - 1, s, sn, nocase, give_up,
                               depth + 1)) {
                    return true;
                }
                if (*give_up) {
                    return false;
                }
                s++;
                sn--;
            }
            *give_up = true;
            return false;
        case '?':
            s++;
            sn--;
            break;
        case '[': {
            size_t i = 1;
            if (!glob_class(p, &i, pn, s[0], nocase)) {
                return false;
            }
            adv = i + 1;
            s++;
            sn--;
            break;
        }
        case '\\':
            if (pn >= 2) {
                p++;
                pn--;
            }
            /* The escaped byte is a literal. */
            if (glob_fold(p[0], nocase) != glob_fold(s[0], nocase)) {
                return false;
            }
            s++;
            sn--;
            break;
        default:
            if (glob_fold(p[0], nocase) != glob_fold(s[0], nocase)) {
                return false;
            }
            s++;
            sn--;
            break;
        }
        p += adv;
        pn -= adv;
        if (sn == 0) {
            while (pn > 0 && p[0] == '*') {
                p++;
                pn--;
            }
            break;
        }
    }
    return pn == 0 && sn == 0;
}

bool
kvd_cmd_glob_match(const char *pat, size_t plen, const char *s, size_t slen,
                   bool nocase)
{
    bool give_up = false;

    return glob_match((const unsigned char *)pat, plen,
                      (const unsigned char *)s, slen, nocase, &give_up, 0);
}

size_t
kvd_cmd_glob_prefix(const char *pat, size_t plen)
{
    size_t i;

    for (i = 0; i < plen; i++) {
        char c = pat[i];
        if (c == '*' || c == '?' || c == '[' || c == '\\') {
            break;
        }
    }
    return i;
}

/* --- byte buffer ------------------------------------------------------------
 */

/* Make room for n more bytes. */
static int
buf_reserve(struct kvd_cmd_buf *b, size_t n)
{
    if (n <= b->cap - b->len) {
        return 0;
    }
    size_t cap = b->cap == 0 ? 256 : b->cap;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            return KVD_ENOMEM;
        }
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (np == NULL) {
        return KVD_ENOMEM;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

int
kvd_cmd_buf_reserve(struct kvd_cmd_buf *b, size_t n)
{
    return buf_reserve(b, n);
}

int
kvd_cmd_buf_append(struct kvd_cmd_buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);

    if (rc != 0) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
    return 0;
}

int
kvd_cmd_buf_printf(struct kvd_cmd_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return KVD_EINVAL;
    }
    if ((size_t)n < sizeof(tmp)) {
        return kvd_cmd_buf_append(b, tmp, (size_t)n);
    }
    /* Rare long line: format again straight into the buffer. */
    int rc = buf_reserve(b, (size_t)n + 1);
    if (rc != 0) {
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void
kvd_cmd_buf_release(struct kvd_cmd_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}
