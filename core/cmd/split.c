/*
 * core/cmd/split.c -- split a text command line into arguments.
 *
 * Used by the stdin frontend and by inline requests of text protocols, so
 * a line typed at a terminal means the same everywhere. The rules are those
 * of redis-cli's command line:
 *   - whitespace (space, \t, \n, \r, \v, \f) separates arguments;
 *   - "double quotes" understand \xHH (two hex digits), \n \r \t \b \a,
 *     and \ followed by any other byte stands for that byte (\" \\);
 *   - 'single quotes' are literal except for \' (a quote);
 *   - a quote may start in the middle of an argument (a"b c" is "ab c"),
 *     but a closing quote must be followed by whitespace or the end of the
 *     line, and a quote left open is an error;
 *   - any other byte, NUL included, is part of its argument.
 * The output never needs more bytes than the input (escapes only shrink),
 * so the caller's buffer of `len` bytes always suffices.
 *
 * Thread-safety: pure function.
 */
#include "core/cmd.h"

#include <limits.h>
#include <stdbool.h>

static bool
split_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

static int
split_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/*
 * Read one double-quoted escape starting at line[i] == '\\'. Writes the
 * byte to *out and returns how many input bytes it used.
 */
static size_t
split_escape(const unsigned char *line, size_t len, size_t i,
             unsigned char *out)
{
    if (i + 3 < len && line[i + 1] == 'x' && split_hex(line[i + 2]) >= 0 &&
        split_hex(line[i + 3]) >= 0) {
        *out = (unsigned char)(split_hex(line[i + 2]) * 16 +
                               split_hex(line[i + 3]));
        return 4;
    }
    if (i + 1 < len) {
        switch (line[i + 1]) {
        case 'n':
            *out = '\n';
            break;
        case 'r':
            *out = '\r';
            break;
        case 't':
            *out = '\t';
            break;
        case 'b':
            *out = '\b';
            break;
        case 'a':
            *out = '\a';
            break;
        default:
            *out = line[i + 1];
            break;
        }
        return 2;
    }
    /* A backslash as the last byte: the quote is left open anyway. */
    *out = '\\';
    return 1;
}

int
kvd_cmd_split(const char *line, size_t len, char *buf, size_t max_args,
              const char **argv, size_t *argl, struct kvd_err *err)
{
    const unsigned char *in = (const unsigned char *)line;
    size_t i = 0;
    size_t o = 0;
    size_t argc = 0;

    if (max_args > INT_MAX) {
        max_args = INT_MAX; /* the count is returned as an int */
    }
    for (;;) {
        while (i < len && split_is_space(in[i])) {
            i++;
        }
        if (i >= len) {
            return (int)argc;
        }
        if (argc >= max_args) {
            return kvd_err_set(err, KVD_ETOOBIG, "too many arguments (max %zu)",
                               max_args);
        }
        size_t start = o;
        bool dq = false; /* inside "..." */
        bool sq = false; /* inside '...' */
        bool done = false;
        while (!done) {
            if (i >= len) {
                if (dq || sq) {
                    return kvd_err_set(err, KVD_EINVAL,
                                       "unbalanced quotes in request");
                }
                break;
            }
            unsigned char c = in[i];
            if (dq) {
                if (c == '\\') {
                    unsigned char b;
                    i += split_escape(in, len, i, &b);
                    buf[o++] = (char)b;
                    continue;
                }
                if (c == '"') {
                    if (i + 1 < len && !split_is_space(in[i + 1])) {
                        return kvd_err_set(err, KVD_EINVAL,
                                           "unbalanced quotes in request");
                    }
                    i++;
                    done = true;
                    continue;
                }
                buf[o++] = (char)c;
                i++;
            } else if (sq) {
                if (c == '\\' && i + 1 < len && in[i + 1] == '\'') {
                    buf[o++] = '\'';
                    i += 2;
                    continue;
                }
                if (c == '\'') {
                    if (i + 1 < len && !split_is_space(in[i + 1])) {
                        return kvd_err_set(err, KVD_EINVAL,
                                           "unbalanced quotes in request");
                    }
                    i++;
                    done = true;
                    continue;
                }
                buf[o++] = (char)c;
                i++;
            } else if (split_is_space(c)) {
                done = true;
            } else if (c == '"') {
                dq = true;
                i++;
            } else if (c == '\'') {
                sq = true;
                i++;
            } else {
                buf[o++] = (char)c;
                i++;
            }
        }
        argv[argc] = buf + start;
        argl[argc] = o - start;
        argc++;
    }
}
