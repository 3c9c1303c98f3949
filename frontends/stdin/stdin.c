/*
 * frontends/stdin/stdin.c -- the stdin frontend: one command per line on
 * standard input, one reply per command on standard output.
 *
 * Lines are split by the host's tokenizer (kvd_cmd_api.split: redis-cli's
 * quoting, so "a b" and "\x00" work) and executed by the shared command
 * layer (kvd_cmd_api.call on the frontend's one session, opened with this
 * file's encoder), exactly as the socket frontends do, MULTI/EXEC
 * included. Replies are printed in redis-cli's interactive format, chosen
 * so that any value printed can be pasted back as an argument:
 *
 *   OK                      status replies, as is
 *   "1"                     strings, double-quoted; \n \r \t \a \b \" \\
 *                           escaped, other bytes outside 0x20..0x7e as \xHH
 *   (integer) 3             integers
 *   (nil)                   a missing value
 *   1) "a"                  arrays, one element per line, numbered from 1,
 *   2) (nil)                numbers right-aligned to the widest; nested
 *                           arrays indent under their parent's element
 *   (empty array)           an empty array
 *   ERR syntax error        errors, verbatim (no "(error)" prefix)
 *
 * INFO and CLIENT LIST replies are multi-line text and print unquoted, as
 * in redis-cli.
 * An empty or blank line is skipped (no reply). A line that cannot be
 * split gets "ERR Protocol error: unbalanced quotes in request"; a line
 * over max_line bytes gets "ERR Protocol error: line too long ..." and is
 * discarded.
 *
 * Threading: one reader thread does everything (read, split, exec, write).
 * It blocks only in poll() on fd 0 and a wake pipe, so stop() (any thread)
 * ends it promptly by writing to the pipe. EOF on stdin, or QUIT, asks the
 * host to shut the server down ("stdin closed"), so `kvd < script` exits
 * with status 0 once the script is done. Writes to stdout block; if
 * stdout is closed the thread stops and asks for shutdown too.
 *
 * Output is flushed after every reply when stdout is a terminal, and
 * otherwise when the buffer is large or before waiting for more input
 * (so a pipe gets its replies in batches, never later than needed).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kvd/frontend.h"
#include "kvd/host.h"
#include "kvd/status.h"

/* First size of the line buffer; it doubles up to max_line. */
#define STDIN_READ_BYTES (64 * 1024)
/* Output is written once this much is buffered. */
#define STDIN_FLUSH_BYTES (64 * 1024)
/* Nesting of arrays the printer indents (deeper ones print flat). */
#define STDIN_MAX_DEPTH 32
/* Arguments the split buffers start with; grown up to max_args. */
#define STDIN_ARGS_START 64

static const char *const stdin_prompt_choices[] = {"auto", "yes", "no", NULL};

enum stdin_prompt {
    STDIN_PROMPT_AUTO = 0,
    STDIN_PROMPT_YES = 1,
    STDIN_PROMPT_NO = 2,
};

/* The parsed [frontend.stdin] section. */
struct stdin_opts {
    int prompt;        /* enum stdin_prompt */
    uint64_t max_line; /* bytes */
    int64_t max_args;
};

static const struct kvd_option stdin_options[] = {
    {"prompt", KVD_OPT_ENUM, "auto", 0, 0, offsetof(struct stdin_opts, prompt),
     stdin_prompt_choices,
     "print a \"kvd> \" prompt before each command; auto: only when standard "
     "input is a terminal"},
    {"max_line", KVD_OPT_SIZE, "512m", 1024, INT64_C(1) << 36,
     offsetof(struct stdin_opts, max_line), NULL,
     "longest command line accepted; longer lines are discarded with an "
     "error reply"},
    {"max_args", KVD_OPT_INT, "1048576", 1, INT64_C(1) << 30,
     offsetof(struct stdin_opts, max_args), NULL,
     "most arguments one command line may have"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* An array being printed: n elements, i of them done. */
struct stdin_frame {
    size_t n;
    size_t i;
    unsigned idxlen; /* digits of the largest index */
    size_t indent;   /* spaces before the index of elements after the first */
    bool map;
};

/* The reply printer and its output buffer (reader thread only). */
struct stdin_out {
    int fd;
    bool tty;
    bool failed; /* a write failed: stop */
    bool raw;    /* print this reply's top-level string unquoted */
    char *buf;
    size_t len;
    size_t cap;
    size_t depth;
    struct stdin_frame frames[STDIN_MAX_DEPTH];
};

struct kvd_frontend {
    const struct kvd_host *host;
    const struct kvd_server *srv;
    struct stdin_opts opts;
    kvd_session *sess;
    int in_fd;
    int wake[2]; /* stop() writes to wake[1] */
    bool prompt;
    bool started;
    atomic_bool stopping;
    pthread_t thread;

    char *in; /* line buffer: bytes [start, len) are unprocessed */
    size_t in_len;
    size_t in_start;
    size_t in_cap;
    bool discarding; /* inside a line that was too long */

    char *split_buf; /* one line's arguments */
    size_t split_cap;
    const char **argv;
    size_t *argl;
    size_t args_cap;

    struct stdin_out out;
};

/* --- output --------------------------------------------------------------- */

static void
stdin_flush(struct stdin_out *o)
{
    size_t off = 0;

    while (off < o->len && !o->failed) {
        ssize_t n = write(o->fd, o->buf + off, o->len - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            o->failed = true;
            break;
        }
        off += (size_t)n;
    }
    o->len = 0;
}

static void
stdin_put(struct stdin_out *o, const void *p, size_t n)
{
    if (o->failed) {
        return;
    }
    if (n > o->cap - o->len) {
        size_t cap = o->cap == 0 ? STDIN_FLUSH_BYTES * 2 : o->cap;
        while (cap - o->len < n) {
            cap *= 2;
        }
        char *nb = realloc(o->buf, cap);
        if (nb == NULL) {
            /* Out of memory: write what we have, then the piece itself. */
            stdin_flush(o);
            while (n > 0 && !o->failed) {
                ssize_t w = write(o->fd, p, n);
                if (w < 0 && errno == EINTR) {
                    continue;
                }
                if (w < 0) {
                    o->failed = true;
                    break;
                }
                p = (const char *)p + w;
                n -= (size_t)w;
            }
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void
stdin_puts(struct stdin_out *o, const char *s)
{
    stdin_put(o, s, strlen(s));
}

static void
stdin_spaces(struct stdin_out *o, size_t n)
{
    static const char sp[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof(sp) - 1 ? n : sizeof(sp) - 1;
        stdin_put(o, sp, k);
        n -= k;
    }
}

static unsigned
stdin_digits(size_t n)
{
    unsigned d = 0;
    do {
        d++;
        n /= 10;
    } while (n != 0);
    return d;
}

/* Before an element: the indent and "N) " (or "N# " for a map key). */
static void
stdin_elem_begin(struct stdin_out *o)
{
    char idx[32];

    if (o->depth == 0 || o->depth > STDIN_MAX_DEPTH) {
        return;
    }
    struct stdin_frame *f = &o->frames[o->depth - 1];
    if (f->map && f->i % 2 == 1) {
        return; /* a map value follows its key's " => " */
    }
    if (f->i > 0) {
        stdin_spaces(o, f->indent);
    }
    size_t human = (f->map ? f->i / 2 : f->i) + 1;
    int n = snprintf(idx, sizeof(idx), "%*zu%c ", (int)f->idxlen, human,
                     f->map ? '#' : ')');
    stdin_put(o, idx, (size_t)n);
}

/* After a complete element: finish the line, close finished arrays. */
static void
stdin_elem_end(struct stdin_out *o)
{
    bool key = false;

    if (o->depth > 0 && o->depth <= STDIN_MAX_DEPTH) {
        struct stdin_frame *f = &o->frames[o->depth - 1];
        key = f->map && f->i % 2 == 0;
    }
    stdin_puts(o, key ? " => " : "\n");
    while (o->depth > 0) {
        if (o->depth > STDIN_MAX_DEPTH) {
            o->depth--; /* too deep: printed flat, nothing to close */
            continue;
        }
        struct stdin_frame *f = &o->frames[o->depth - 1];
        f->i++;
        if (f->i < f->n) {
            break;
        }
        o->depth--;
    }
}

static void
out_status(void *w, const char *s, size_t n)
{
    struct stdin_out *o = w;
    stdin_elem_begin(o);
    stdin_put(o, s, n);
    stdin_elem_end(o);
}

static void
out_error(void *w, const char *s, size_t n)
{
    out_status(w, s, n); /* errors print verbatim: "ERR ..." */
}

static void
out_integer(void *w, long long v)
{
    struct stdin_out *o = w;
    char buf[48];
    int n = snprintf(buf, sizeof(buf), "(integer) %lld", v);

    stdin_elem_begin(o);
    stdin_put(o, buf, (size_t)n);
    stdin_elem_end(o);
}

/* A string as a double-quoted literal the tokenizer reads back. */
static void
stdin_quote(struct stdin_out *o, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the pending run of plain bytes */

    stdin_put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        char esc[4];
        size_t elen = 2;
        esc[0] = '\\';
        switch (c) {
        case '\\':
        case '"':
            esc[1] = (char)c;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\a':
            esc[1] = 'a';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        default:
            if (c >= 0x20 && c <= 0x7e) {
                continue;
            }
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            elen = 4;
            break;
        }
        stdin_put(o, p + run, i - run);
        stdin_put(o, esc, elen);
        run = i + 1;
    }
    stdin_put(o, p + run, n - run);
    stdin_put(o, "\"", 1);
}

static void
out_bulk(void *w, const void *p, size_t n)
{
    struct stdin_out *o = w;
    stdin_elem_begin(o);
    if (o->raw && o->depth == 0) {
        stdin_put(o, p, n);
    } else {
        stdin_quote(o, p, n);
    }
    stdin_elem_end(o);
}

static void
out_null(void *w)
{
    struct stdin_out *o = w;
    stdin_elem_begin(o);
    stdin_puts(o, "(nil)");
    stdin_elem_end(o);
}

static void
stdin_aggregate(struct stdin_out *o, size_t n, bool map)
{
    stdin_elem_begin(o);
    if (n == 0) {
        stdin_puts(o, map ? "(empty hash)" : "(empty array)");
        stdin_elem_end(o);
        return;
    }
    size_t indent = 0;
    if (o->depth > 0 && o->depth <= STDIN_MAX_DEPTH) {
        const struct stdin_frame *p = &o->frames[o->depth - 1];
        indent = p->indent + p->idxlen + 2;
    }
    if (o->depth < STDIN_MAX_DEPTH) {
        o->frames[o->depth] = (struct stdin_frame){
            .n = map ? 2 * n : n,
            .idxlen = stdin_digits(n),
            .indent = indent,
            .map = map,
        };
    }
    o->depth++; /* closed by the elem_end of its last element */
}

static void
out_array(void *w, size_t n)
{
    stdin_aggregate(w, n, false);
}

static void
out_map(void *w, size_t n)
{
    stdin_aggregate(w, n, true);
}

static void
out_dbl(void *w, double v)
{
    struct stdin_out *o = w;
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "(double) %.17g", v);

    stdin_elem_begin(o);
    stdin_put(o, buf, (size_t)n);
    stdin_elem_end(o);
}

/* The printed format is the same in RESP2 and RESP3. */
static void
out_proto(void *w, int proto)
{
    (void)w;
    (void)proto;
}

/* EXEC after a watched key changed: redis-cli prints a null array so. */
static void
out_null_array(void *w)
{
    out_null(w);
}

static const struct kvd_reply_ops stdin_reply_ops = {
    .status = out_status,
    .error = out_error,
    .integer = out_integer,
    .bulk = out_bulk,
    .null = out_null,
    .array = out_array,
    .map = out_map,
    .dbl = out_dbl,
    .proto = out_proto,
    .null_array = out_null_array,
};

/* --- input ------------------------------------------------------------------
 */

/* Make the split buffers hold a line of len bytes and n arguments. */
static int
stdin_split_reserve(kvd_frontend *fe, size_t len, size_t nargs)
{
    if (len > fe->split_cap) {
        char *nb = realloc(fe->split_buf, len);
        if (nb == NULL) {
            return KVD_ENOMEM;
        }
        fe->split_buf = nb;
        fe->split_cap = len;
    }
    if (nargs > fe->args_cap) {
        const char **na = realloc(fe->argv, nargs * sizeof(*na));
        if (na == NULL) {
            return KVD_ENOMEM;
        }
        fe->argv = na;
        size_t *nl = realloc(fe->argl, nargs * sizeof(*nl));
        if (nl == NULL) {
            return KVD_ENOMEM;
        }
        fe->argl = nl;
        fe->args_cap = nargs;
    }
    return 0;
}

static void
stdin_reply_error(kvd_frontend *fe, const char *msg)
{
    out_error(&fe->out, msg, strlen(msg));
}

static bool
stdin_word_is(const char *p, size_t n, const char *word)
{
    return n == strlen(word) && strncasecmp(p, word, n) == 0;
}

/* Multi-line text reports (INFO, CLIENT LIST) print as they are, as
 * redis-cli prints them, rather than as one quoted string. */
static bool
stdin_is_report(const char *const *argv, const size_t *argl, size_t argc)
{
    if (stdin_word_is(argv[0], argl[0], "info")) {
        return true;
    }
    return argc >= 2 && stdin_word_is(argv[0], argl[0], "client") &&
           stdin_word_is(argv[1], argl[1], "list");
}

/*
 * Execute one line. Returns false when the session asked to close (QUIT).
 */
static bool
stdin_line(kvd_frontend *fe, const char *line, size_t len)
{
    const struct kvd_cmd_api *api = fe->srv->cmd_api;
    struct kvd_err err = {0};
    size_t cap = fe->args_cap > 0 ? fe->args_cap : STDIN_ARGS_START;
    int argc;

    for (;;) {
        if (stdin_split_reserve(fe, len > 0 ? len : 1, cap) != 0) {
            stdin_reply_error(fe, "ERR out of memory");
            return true;
        }
        size_t lim = fe->args_cap < (size_t)fe->opts.max_args
                         ? fe->args_cap
                         : (size_t)fe->opts.max_args;
        argc =
            api->split(line, len, fe->split_buf, lim, fe->argv, fe->argl, &err);
        if (argc != KVD_ETOOBIG || fe->args_cap >= (size_t)fe->opts.max_args) {
            break;
        }
        cap = fe->args_cap * 2;
        if (cap > (size_t)fe->opts.max_args) {
            cap = (size_t)fe->opts.max_args;
        }
    }
    if (argc < 0) {
        char msg[KVD_ERR_MSG_BYTES + 32];
        snprintf(msg, sizeof(msg), "ERR Protocol error: %s", err.msg);
        stdin_reply_error(fe, msg);
        return true;
    }
    if (argc == 0) {
        return true; /* blank line: nothing to do, no reply */
    }
    fe->out.raw = stdin_is_report(fe->argv, fe->argl, (size_t)argc);
    int rc = api->call(fe->sess, (size_t)argc, fe->argv, fe->argl);
    fe->out.depth = 0; /* a reply always ends complete */
    fe->out.raw = false;
    if (fe->out.tty) {
        stdin_flush(&fe->out);
    }
    return !(rc > 0 && (rc & KVD_EXEC_CLOSE));
}

/*
 * Run every complete line in the buffer. Returns false on QUIT or stop.
 */
static bool
stdin_drain_lines(kvd_frontend *fe)
{
    while (fe->in_start < fe->in_len) {
        if (atomic_load(&fe->stopping) || fe->out.failed) {
            return false;
        }
        char *p = fe->in + fe->in_start;
        char *nl = memchr(p, '\n', fe->in_len - fe->in_start);
        if (nl == NULL) {
            break;
        }
        size_t len = (size_t)(nl - p);
        fe->in_start += len + 1;
        if (fe->discarding) {
            fe->discarding = false; /* the end of an overlong line */
            continue;
        }
        if (len > 0 && p[len - 1] == '\r') {
            len--;
        }
        if (!stdin_line(fe, p, len)) {
            return false;
        }
        if (fe->out.len >= STDIN_FLUSH_BYTES) {
            stdin_flush(&fe->out);
        }
    }
    /* Keep the partial line at the front of the buffer. */
    if (fe->in_start > 0) {
        memmove(fe->in, fe->in + fe->in_start, fe->in_len - fe->in_start);
        fe->in_len -= fe->in_start;
        fe->in_start = 0;
    }
    return true;
}

/* Room to read into; false when out of memory. */
static bool
stdin_make_room(kvd_frontend *fe)
{
    if (fe->in_len < fe->in_cap) {
        return true;
    }
    if (fe->in_cap >= fe->opts.max_line || fe->discarding) {
        /* A line longer than allowed: refuse it once, drop its bytes. */
        if (!fe->discarding) {
            char msg[96];
            snprintf(msg, sizeof(msg),
                     "ERR Protocol error: line too long (max %llu bytes)",
                     (unsigned long long)fe->opts.max_line);
            stdin_reply_error(fe, msg);
            fe->discarding = true;
        }
        fe->in_len = 0;
        return true;
    }
    size_t cap = fe->in_cap * 2;
    if (cap > fe->opts.max_line) {
        cap = (size_t)fe->opts.max_line;
    }
    char *nb = realloc(fe->in, cap);
    if (nb == NULL) {
        return false;
    }
    fe->in = nb;
    fe->in_cap = cap;
    return true;
}

/* Wait for input or a stop; returns 1 readable, 0 stop, -1 error. */
static int
stdin_wait(kvd_frontend *fe)
{
    struct pollfd p[2] = {
        {.fd = fe->in_fd, .events = POLLIN},
        {.fd = fe->wake[0], .events = POLLIN},
    };

    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (p[1].revents != 0 || atomic_load(&fe->stopping)) {
            return 0;
        }
        if (p[0].revents & POLLNVAL) {
            return -1;
        }
        if (p[0].revents != 0) {
            return 1;
        }
    }
}

static void *
stdin_main(void *arg)
{
    kvd_frontend *fe = arg;
    const char *why = "stdin closed";
    bool run = true;

    while (run) {
        if (!stdin_drain_lines(fe)) {
            if (!atomic_load(&fe->stopping)) {
                why = fe->out.failed ? "stdout closed" : "QUIT on stdin";
            } else {
                why = NULL;
            }
            break;
        }
        if (!stdin_make_room(fe)) {
            fe->host->log(fe->host, KVD_LOG_ERROR,
                          "stdin: out of memory for a %zu-byte line",
                          fe->in_len);
            break;
        }
        stdin_flush(&fe->out);
        if (fe->prompt) {
            stdin_puts(&fe->out, "kvd> ");
            stdin_flush(&fe->out);
        }
        int w = stdin_wait(fe);
        if (w == 0) {
            why = NULL; /* stopped by the host: it is shutting down */
            break;
        }
        ssize_t n = w < 0 ? 0
                          : read(fe->in_fd, fe->in + fe->in_len,
                                 fe->in_cap - fe->in_len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n < 0) {
            fe->host->log(fe->host, KVD_LOG_ERROR, "stdin: read: %s",
                          strerror(errno));
        }
        if (n <= 0) {
            /* EOF: a last line without its newline still counts. */
            if (fe->in_len > 0 && !fe->discarding) {
                size_t len = fe->in_len;
                if (fe->in[len - 1] == '\r') {
                    len--;
                }
                stdin_line(fe, fe->in, len);
            }
            fe->in_len = 0;
            if (fe->prompt) {
                stdin_puts(&fe->out, "\n");
            }
            run = false;
            continue;
        }
        fe->in_len += (size_t)n;
    }
    stdin_flush(&fe->out);
    if (why != NULL) {
        fe->host->log(fe->host, KVD_LOG_INFO, "%s: shutting down", why);
        fe->host->request_shutdown(fe->host, why);
    }
    return NULL;
}

/* --- lifecycle
 * ---------------------------------------------------------------- */

static void stdin_destroy(kvd_frontend *fe);

static int
stdin_create(const struct kvd_host *host, const struct kvd_server *srv,
             const void *opts, kvd_frontend **out, struct kvd_err *err)
{
    kvd_frontend *fe;

    *out = NULL;
    if (!KVD_HAS(srv->cmd_api, struct kvd_cmd_api, pass_destroy)) {
        return kvd_err_set(err, KVD_EABI,
                           "stdin: the host's command layer has no sessions "
                           "(session_open, call): kvd is older than this "
                           "frontend");
    }
    fe = calloc(1, sizeof(*fe));
    if (fe == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "stdin: out of memory");
    }
    fe->host = host;
    fe->srv = srv;
    fe->opts = *(const struct stdin_opts *)opts;
    fe->in_fd = STDIN_FILENO;
    fe->wake[0] = -1;
    fe->wake[1] = -1;
    fe->out.fd = STDOUT_FILENO;
    fe->out.tty = isatty(STDOUT_FILENO) == 1;
    atomic_init(&fe->stopping, false);
    switch (fe->opts.prompt) {
    case STDIN_PROMPT_YES:
        fe->prompt = true;
        break;
    case STDIN_PROMPT_NO:
        fe->prompt = false;
        break;
    default:
        fe->prompt = isatty(STDIN_FILENO) == 1;
        break;
    }
    if (pipe(fe->wake) != 0) {
        int e = errno;
        stdin_destroy(fe);
        return kvd_err_set(err, KVD_EIO, "stdin: pipe: %s", strerror(e));
    }
    fcntl(fe->wake[0], F_SETFD, FD_CLOEXEC);
    fcntl(fe->wake[1], F_SETFD, FD_CLOEXEC);
    fe->in_cap = STDIN_READ_BYTES < fe->opts.max_line
                     ? STDIN_READ_BYTES
                     : (size_t)fe->opts.max_line;
    fe->in = malloc(fe->in_cap);
    struct kvd_session_info info = {
        .struct_size = sizeof(info),
        .frontend = "stdin",
        .flags = KVD_SESSION_TRUSTED,
        .ops = &stdin_reply_ops,
        .ops_size = sizeof(stdin_reply_ops),
        .w = &fe->out,
        .pass = NULL, /* one client: nothing to gather */
        .addr = NULL,
        .laddr = NULL,
        .fd = STDIN_FILENO,
    };
    fe->sess = srv->cmd_api->session_open(srv->cmd, &info);
    if (fe->in == NULL || fe->sess == NULL ||
        stdin_split_reserve(fe, STDIN_READ_BYTES, STDIN_ARGS_START) != 0) {
        stdin_destroy(fe);
        return kvd_err_set(err, KVD_ENOMEM, "stdin: out of memory");
    }
    *out = fe;
    return 0;
}

static int
stdin_start(kvd_frontend *fe, struct kvd_err *err)
{
    int rc = pthread_create(&fe->thread, NULL, stdin_main, fe);

    if (rc != 0) {
        return kvd_err_set(err, KVD_ENOMEM, "stdin: pthread_create: %s",
                           strerror(rc));
    }
    fe->started = true;
    return 0;
}

static void
stdin_stop(kvd_frontend *fe)
{
    if (fe == NULL || atomic_exchange(&fe->stopping, true)) {
        return;
    }
    /* One byte wakes the poll; the pipe is never drained, so later
     * polls return at once too. A full pipe is impossible here. */
    ssize_t n;
    do {
        n = write(fe->wake[1], "x", 1);
    } while (n < 0 && errno == EINTR);
}

static void
stdin_destroy(kvd_frontend *fe)
{
    if (fe == NULL) {
        return;
    }
    if (fe->started) {
        if (fe->wake[1] >= 0) {
            stdin_stop(fe);
        }
        pthread_join(fe->thread, NULL);
    }
    if (fe->sess != NULL) {
        fe->srv->cmd_api->session_destroy(fe->sess);
    }
    for (int i = 0; i < 2; i++) {
        if (fe->wake[i] >= 0) {
            close(fe->wake[i]);
        }
    }
    free(fe->in);
    free(fe->split_buf);
    free(fe->argv);
    free(fe->argl);
    free(fe->out.buf);
    free(fe);
}

KVD_EXPORT const struct kvd_frontend_vtable kvd_frontend_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_frontend_vtable),
    .name = "stdin",
    .version = "1.0.0",
    .description = "one command per line on standard input, replies in "
                   "redis-cli's format on standard output",
    .options = stdin_options,
    .options_size = sizeof(struct stdin_opts),
    .create = stdin_create,
    .start = stdin_start,
    .stop = stdin_stop,
    .destroy = stdin_destroy,
};
