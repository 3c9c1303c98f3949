/*
 * tools/kv/kv.c -- `kv`, the command-line client of kvd.
 *
 * Talks to a running kvd over its Unix socket with hiredis, the Redis
 * client library, so every run also proves the server against a real
 * client library. Subcommands map onto the server's commands:
 *
 *   kv set k=v ...          MSET (one atomic write of every pair), OK
 *   kv set k --file F|-     SET from a file or stdin, bytes untouched
 *   kv get [--raw] k ...    GET/MGET, "key: value" lines (or raw bytes)
 *   kv del k ...            DEL, prints the count
 *   kv ttl k / expire k s   TTL / EXPIRE
 *   kv keys [pattern]       SCAN ... MATCH (never KEYS: no long stall)
 *   kv metrics              INFO, reduced to the figures people ask for
 *   kv serve [args]         exec kvd
 *
 * Exit status: 0 success, 1 a key is missing or the server refused,
 * 2 usage error, 3 the server cannot be reached.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

/* The default [frontend.resp] unix_socket of config/kvd.ini. */
#define KV_DEFAULT_SOCKET "kvd.sock"

#define KV_EXIT_OK       0
#define KV_EXIT_MISSING  1
#define KV_EXIT_USAGE    2
#define KV_EXIT_NOSERVER 3

/* SCAN batch size for `kv keys`. */
#define KV_SCAN_COUNT "1000"

struct kv_cmd {
    const char *name;
    int (*run)(redisContext *rc, int argc, char **argv);
    bool needs_server;
    const char *usage;
    const char *help;
};

static const char *kv_socket = KV_DEFAULT_SOCKET;
static const char *kv_prog = "kv";

/* ------------------------------------------------------------------ */
/* Output helpers                                                      */

/*
 * Write bytes for a human reader: UTF-8 and printable ASCII as they are,
 * control bytes and backslashes as escapes, so a value can never move
 * the cursor or fake another "key: value" line. `--raw` skips this.
 */
static void
print_escaped(FILE *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\\') {
            fputs("\\\\", out);
        } else if (ch == '\n') {
            fputs("\\n", out);
        } else if (ch == '\r') {
            fputs("\\r", out);
        } else if (ch == '\t') {
            fputs("\\t", out);
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(out, "\\x%02x", ch);
        } else {
            fputc(ch, out);
        }
    }
}

static int fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(int status, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", kv_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

static int
usage_error(const struct kv_cmd *c, const char *why)
{
    fprintf(stderr, "%s: %s\nusage: kv %s\nSee 'kv %s --help'.\n", kv_prog, why,
            c->usage, c->name);
    return KV_EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Talking to the server                                               */

/* Run one command; NULL after printing why (connection lost). */
static redisReply *
call(redisContext *rc, int argc, const char **argv, const size_t *argl)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, argl);

    if (r == NULL) {
        fail(KV_EXIT_NOSERVER, "lost the connection to kvd at %s: %s",
             kv_socket, rc->errstr[0] ? rc->errstr : "connection closed");
    }
    return r;
}

/* Print a server error reply; returns the exit status for it. */
static int
server_error(const redisReply *r)
{
    return fail(KV_EXIT_MISSING, "server: %.*s", (int)r->len, r->str);
}

static redisContext *
connect_server(void)
{
    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectUnixWithTimeout(kv_socket, tv);

    if (rc == NULL) {
        fail(KV_EXIT_NOSERVER, "out of memory");
        return NULL;
    }
    if (rc->err) {
        fail(KV_EXIT_NOSERVER,
             "cannot connect to kvd at %s: %s (is the server running? "
             "start it with 'kv serve', or pass --socket PATH)",
             kv_socket, rc->errstr);
        redisFree(rc);
        return NULL;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* set                                                                 */

static int
read_all(FILE *f, char **out, size_t *outlen)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);

    if (buf == NULL) {
        return -1;
    }
    for (;;) {
        size_t n;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                free(buf);
                return -1;
            }
            break;
        }
    }
    *out = buf;
    *outlen = len;
    return 0;
}

static int
set_from_file(redisContext *rc, const char *key, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    const char *argv[3];
    size_t argl[3];
    char *data = NULL;
    size_t len = 0;
    redisReply *r;
    int status = KV_EXIT_OK;

    if (f == NULL) {
        return fail(KV_EXIT_USAGE, "%s: %s", path, strerror(errno));
    }
    if (read_all(f, &data, &len) != 0) {
        int e = errno;
        if (f != stdin) {
            fclose(f);
        }
        return fail(KV_EXIT_USAGE, "read %s: %s", path, strerror(e));
    }
    if (f != stdin) {
        fclose(f);
    }
    argv[0] = "SET";
    argl[0] = 3;
    argv[1] = key;
    argl[1] = strlen(key);
    argv[2] = data;
    argl[2] = len;
    r = call(rc, 3, argv, argl);
    free(data);
    if (r == NULL) {
        return KV_EXIT_NOSERVER;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        status = server_error(r);
    } else {
        printf("OK\n");
    }
    freeReplyObject(r);
    return status;
}

static int
cmd_set(redisContext *rc, int argc, char **argv)
{
    const char **args;
    size_t *argl;
    redisReply *r;
    int n = 0, status = KV_EXIT_OK;

    if (argc == 3 && (strcmp(argv[1], "--file") == 0)) {
        return set_from_file(rc, argv[0], argv[2]);
    }
    if (argc == 2 && strcmp(argv[1], "-") == 0) {
        return set_from_file(rc, argv[0], "-");
    }
    args = calloc((size_t)argc * 2 + 1, sizeof(*args));
    argl = calloc((size_t)argc * 2 + 1, sizeof(*argl));
    if (args == NULL || argl == NULL) {
        free(args);
        free(argl);
        return fail(KV_EXIT_MISSING, "out of memory");
    }
    args[n] = "MSET";
    argl[n++] = 4;
    for (int i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL || eq == argv[i]) {
            free(args);
            free(argl);
            fprintf(stderr, "%s: '%s' is not KEY=VALUE\n", kv_prog, argv[i]);
            return KV_EXIT_USAGE;
        }
        args[n] = argv[i];
        argl[n++] = (size_t)(eq - argv[i]);
        args[n] = eq + 1;
        argl[n++] = strlen(eq + 1);
    }
    r = call(rc, n, args, argl);
    free(args);
    free(argl);
    if (r == NULL) {
        return KV_EXIT_NOSERVER;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        status = server_error(r);
    } else {
        printf("OK\n"); /* as redis-cli and the README show */
    }
    freeReplyObject(r);
    return status;
}

/* ------------------------------------------------------------------ */
/* get                                                                 */

static int
get_raw(redisContext *rc, const char *key)
{
    const char *argv[2] = {"GET", key};
    size_t argl[2] = {3, strlen(key)};
    redisReply *r = call(rc, 2, argv, argl);
    int status = KV_EXIT_OK;

    if (r == NULL) {
        return KV_EXIT_NOSERVER;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        status = server_error(r);
    } else if (r->type != REDIS_REPLY_STRING) {
        status = fail(KV_EXIT_MISSING, "%s: not found", key);
    } else if (fwrite(r->str, 1, r->len, stdout) != r->len ||
               fflush(stdout) != 0) {
        status = fail(KV_EXIT_MISSING, "write to stdout: %s", strerror(errno));
    }
    freeReplyObject(r);
    return status;
}

static int
cmd_get(redisContext *rc, int argc, char **argv)
{
    const char **args;
    size_t *argl;
    redisReply *r;
    int status = KV_EXIT_OK;

    if (argc >= 1 && strcmp(argv[0], "--raw") == 0) {
        if (argc != 2) {
            fprintf(stderr, "%s: get --raw takes exactly one KEY\n", kv_prog);
            return KV_EXIT_USAGE;
        }
        return get_raw(rc, argv[1]);
    }
    args = calloc((size_t)argc + 1, sizeof(*args));
    argl = calloc((size_t)argc + 1, sizeof(*argl));
    if (args == NULL || argl == NULL) {
        free(args);
        free(argl);
        return fail(KV_EXIT_MISSING, "out of memory");
    }
    args[0] = "MGET";
    argl[0] = 4;
    for (int i = 0; i < argc; i++) {
        args[i + 1] = argv[i];
        argl[i + 1] = strlen(argv[i]);
    }
    r = call(rc, argc + 1, args, argl);
    free(args);
    free(argl);
    if (r == NULL) {
        return KV_EXIT_NOSERVER;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        status = server_error(r);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)argc) {
        status = fail(KV_EXIT_MISSING, "unexpected reply to MGET");
    } else {
        for (int i = 0; i < argc; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING) {
                fflush(stdout);
                status = fail(KV_EXIT_MISSING, "%s: not found", argv[i]);
                continue;
            }
            print_escaped(stdout, argv[i], strlen(argv[i]));
            fputs(": ", stdout);
            print_escaped(stdout, e->str, e->len);
            fputc('\n', stdout);
        }
    }
    freeReplyObject(r);
    return status;
}

/* ------------------------------------------------------------------ */
/* del, ttl, expire                                                    */

/* Run a command whose reply is an integer; -1 and a message on error. */
static int
call_int(redisContext *rc, int argc, const char **argv, long long *out)
{
    size_t *argl = calloc((size_t)argc, sizeof(*argl));
    redisReply *r;
    int status = KV_EXIT_OK;

    if (argl == NULL) {
        return fail(KV_EXIT_MISSING, "out of memory");
    }
    for (int i = 0; i < argc; i++) {
        argl[i] = strlen(argv[i]);
    }
    r = call(rc, argc, argv, argl);
    free(argl);
    if (r == NULL) {
        return KV_EXIT_NOSERVER;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        status = server_error(r);
    } else if (r->type != REDIS_REPLY_INTEGER) {
        status = fail(KV_EXIT_MISSING, "unexpected reply to %s", argv[0]);
    } else {
        *out = r->integer;
    }
    freeReplyObject(r);
    return status;
}

static int
cmd_del(redisContext *rc, int argc, char **argv)
{
    const char **args = calloc((size_t)argc + 1, sizeof(*args));
    long long n = 0;
    int status;

    if (args == NULL) {
        return fail(KV_EXIT_MISSING, "out of memory");
    }
    args[0] = "DEL";
    for (int i = 0; i < argc; i++) {
        args[i + 1] = argv[i];
    }
    status = call_int(rc, argc + 1, args, &n);
    free(args);
    if (status == KV_EXIT_OK) {
        printf("%lld\n", n);
    }
    return status;
}

static int
cmd_ttl(redisContext *rc, int argc, char **argv)
{
    const char *args[2] = {"TTL", argv[0]};
    long long n = 0;
    int status;

    (void)argc;
    status = call_int(rc, 2, args, &n);
    if (status != KV_EXIT_OK) {
        return status;
    }
    if (n == -2) {
        return fail(KV_EXIT_MISSING, "%s: not found", argv[0]);
    }
    if (n == -1) {
        printf("none\n");
    } else {
        printf("%lld\n", n);
    }
    return KV_EXIT_OK;
}

static int
cmd_expire(redisContext *rc, int argc, char **argv)
{
    const char *args[3] = {"EXPIRE", argv[0], argv[1]};
    long long n = 0;
    char *end;
    int status;

    (void)argc;
    errno = 0;
    (void)strtoll(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || errno != 0) {
        fprintf(stderr, "%s: SECONDS must be an integer, not '%s'\n", kv_prog,
                argv[1]);
        return KV_EXIT_USAGE;
    }
    status = call_int(rc, 3, args, &n);
    if (status != KV_EXIT_OK) {
        return status;
    }
    if (n == 0) {
        return fail(KV_EXIT_MISSING, "%s: not found", argv[0]);
    }
    return KV_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* keys                                                                */

static int
cmd_keys(redisContext *rc, int argc, char **argv)
{
    char cursor[32] = "0";
    const char *pattern = argc > 0 ? argv[0] : "*";
    int status = KV_EXIT_OK;

    do {
        const char *args[6] = {"SCAN",  cursor,  "MATCH",
                               pattern, "COUNT", KV_SCAN_COUNT};
        size_t argl[6];
        redisReply *r;

        for (int i = 0; i < 6; i++) {
            argl[i] = strlen(args[i]);
        }
        r = call(rc, 6, args, argl);
        if (r == NULL) {
            return KV_EXIT_NOSERVER;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            status = server_error(r);
            freeReplyObject(r);
            return status;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[0]->len >= sizeof(cursor) ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return fail(KV_EXIT_MISSING, "unexpected reply to SCAN");
        }
        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            print_escaped(stdout, k->str, k->len);
            fputc('\n', stdout);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return status;
}

/* ------------------------------------------------------------------ */
/* metrics                                                             */

/* The value of "field:" in INFO text, or NULL. */
static const char *
info_field(const char *info, const char *field, char *buf, size_t len)
{
    size_t fl = strlen(field);
    const char *p = info;

    while ((p = strstr(p, field)) != NULL) {
        if ((p == info || p[-1] == '\n') && p[fl] == ':') {
            const char *v = p + fl + 1;
            size_t n = strcspn(v, "\r\n");
            if (n >= len) {
                n = len - 1;
            }
            memcpy(buf, v, n);
            buf[n] = '\0';
            return buf;
        }
        p += fl;
    }
    return NULL;
}

/* Sum of calls=N over the INFO commandstats lines of `names`. */
static unsigned long long
info_calls(const char *info, const char *const *names)
{
    unsigned long long sum = 0;
    char field[64];
    char buf[128];

    for (; *names != NULL; names++) {
        snprintf(field, sizeof(field), "cmdstat_%s", *names);
        if (info_field(info, field, buf, sizeof(buf)) != NULL &&
            strncmp(buf, "calls=", 6) == 0) {
            sum += strtoull(buf + 6, NULL, 10);
        }
    }
    return sum;
}

static int
cmd_metrics(redisContext *rc, int argc, char **argv)
{
    /* Operation counts are command counts, from INFO commandstats. */
    static const char *const sets[] = {"set",      "mset",   "setnx",  "setex",
                                       "psetex",   "msetnx", "getset", "append",
                                       "setrange", NULL};
    static const char *const gets[] = {"get",    "mget",     "getex",
                                       "getdel", "getrange", NULL};
    static const char *const dels[] = {"del", "unlink", "getdel", NULL};
    const char *args[2] = {"INFO", "everything"};
    size_t argl[2] = {4, 10};
    redisReply *r;
    char keys[64], bytes[64];

    (void)argc;
    (void)argv;
    r = call(rc, 2, args, argl);
    if (r == NULL) {
        return KV_EXIT_NOSERVER;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        int status = server_error(r);
        freeReplyObject(r);
        return status;
    }
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return fail(KV_EXIT_MISSING, "unexpected reply to INFO");
    }
    /* "keys" and "value_bytes" of the kvd section: live keys and the
     * bytes of their values. */
    printf("keys: %s\n",
           info_field(r->str, "keys", keys, sizeof(keys)) ? keys : "0");
    printf("value bytes: %s\n",
           info_field(r->str, "value_bytes", bytes, sizeof(bytes)) ? bytes
                                                                   : "0");
    printf("set commands: %llu\n", info_calls(r->str, sets));
    printf("get commands: %llu\n", info_calls(r->str, gets));
    printf("delete commands: %llu\n", info_calls(r->str, dels));
    freeReplyObject(r);
    return KV_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* serve                                                               */

/* kvd next to kv (installed), then in the build tree, then on PATH. */
static int
cmd_serve(redisContext *rc, int argc, char **argv)
{
    char self[PATH_MAX], path[PATH_MAX + 32];
    const char *env = getenv("KVD_BIN");
    char **args = calloc((size_t)argc + 2, sizeof(*args));
    ssize_t n;

    (void)rc;
    if (args == NULL) {
        return fail(KV_EXIT_MISSING, "out of memory");
    }
    for (int i = 0; i < argc; i++) {
        args[i + 1] = argv[i];
    }
    args[argc + 1] = NULL;
    if (env != NULL && env[0] != '\0') {
        args[0] = (char *)env;
        execv(env, args);
        fail(KV_EXIT_USAGE, "exec %s (KVD_BIN): %s", env, strerror(errno));
        free(args);
        return KV_EXIT_USAGE;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        char *slash;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(path, sizeof(path), "%s/kvd", self);
            args[0] = path;
            execv(path, args);
            snprintf(path, sizeof(path), "%s/../../core/kvd", self);
            execv(path, args);
        }
    }
    args[0] = "kvd";
    execvp("kvd", args);
    fail(KV_EXIT_USAGE, "cannot start kvd: %s (set KVD_BIN to its path)",
         strerror(errno));
    free(args);
    return KV_EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */

static const struct kv_cmd kv_cmds[] = {
    {"set", cmd_set, true, "set KEY=VALUE... | set KEY --file FILE|-",
     "Store values. With KEY=VALUE pairs, every pair is written in one\n"
     "atomic MSET: a reader sees all of them or none. With --file, KEY\n"
     "gets the exact bytes of FILE ('-' or a lone '-' reads stdin)."},
    {"get", cmd_get, true, "get KEY... | get --raw KEY",
     "Print 'key: value' lines (control bytes and '\\' escaped). With\n"
     "--raw, write the one value's bytes to stdout untouched. A missing\n"
     "key is reported on stderr and makes the exit status 1."},
    {"del", cmd_del, true, "del KEY...",
     "Delete keys; print how many existed."},
    {"ttl", cmd_ttl, true, "ttl KEY",
     "Print the seconds KEY has left, or 'none' when it does not expire;\n"
     "exit status 1 when KEY does not exist."},
    {"expire", cmd_expire, true, "expire KEY SECONDS",
     "Make KEY expire in SECONDS (0 or less deletes it now); exit status 1\n"
     "when KEY does not exist."},
    {"keys", cmd_keys, true, "keys [PATTERN]",
     "List keys matching PATTERN (glob: * ? [abc]; default *), one per\n"
     "line, iterating with SCAN so the server never stalls."},
    {"metrics", cmd_metrics, true, "metrics",
     "Print the keys stored, the bytes of their values (keys and overhead\n"
     "not counted), and how many set, get and delete commands the server\n"
     "ran since it started (one MSET of many keys is one command; set:\n"
     "SET, MSET, SETNX, SETEX, PSETEX, MSETNX, GETSET, APPEND, SETRANGE;\n"
     "get: GET, MGET, GETEX, GETDEL, GETRANGE; delete: DEL, UNLINK,\n"
     "GETDEL)."},
    {"serve", cmd_serve, false, "serve [KVD-OPTIONS...]",
     "Start the server in the foreground: exec kvd with the options given\n"
     "(kvd next to kv, else in the build tree, else on PATH; KVD_BIN\n"
     "overrides). With no options kvd runs its default configuration,\n"
     "whose socket is the one kv uses by default."},
};

#define KV_NCMDS (sizeof(kv_cmds) / sizeof(kv_cmds[0]))

static void
print_usage(FILE *out)
{
    fprintf(out, "usage: kv [--socket PATH] COMMAND [ARGS...]\n\n"
                 "The command-line client of kvd.\n\nCommands:\n");
    for (size_t i = 0; i < KV_NCMDS; i++) {
        fprintf(out, "  kv %s\n", kv_cmds[i].usage);
    }
    fprintf(out,
            "\nOptions:\n"
            "  -s, --socket PATH  the server's Unix socket (default: "
            "$KVD_SOCKET, else %s,\n"
            "                     the default configuration's socket)\n"
            "  -h, --help         this help; 'kv COMMAND --help' for one "
            "command\n"
            "  -V, --version      print the version\n\n"
            "Exit status: 0 ok, 1 key missing or server error, 2 usage "
            "error,\n3 server not reachable.\n",
            KV_DEFAULT_SOCKET);
}

static const struct kv_cmd *
find_cmd(const char *name)
{
    for (size_t k = 0; k < KV_NCMDS; k++) {
        if (strcmp(name, kv_cmds[k].name) == 0) {
            return &kv_cmds[k];
        }
    }
    return NULL;
}

static void
print_cmd_help(const struct kv_cmd *c)
{
    printf("usage: kv [--socket PATH] %s\n\n%s\n", c->usage, c->help);
}

/* Argument count bounds of each command (max -1: unbounded). */
static bool
arity_ok(const struct kv_cmd *c, int argc)
{
    if (strcmp(c->name, "set") == 0 || strcmp(c->name, "get") == 0 ||
        strcmp(c->name, "del") == 0) {
        return argc >= 1;
    }
    if (strcmp(c->name, "ttl") == 0) {
        return argc == 1;
    }
    if (strcmp(c->name, "expire") == 0) {
        return argc == 2;
    }
    if (strcmp(c->name, "keys") == 0) {
        return argc <= 1;
    }
    if (strcmp(c->name, "metrics") == 0) {
        return argc == 0;
    }
    return true;
}

int
main(int argc, char **argv)
{
    const struct kv_cmd *c = NULL;
    redisContext *rc = NULL;
    const char *env = getenv("KVD_SOCKET");
    int i = 1, status;

    if (env != NULL && env[0] != '\0') {
        kv_socket = env;
    }
    /* Options before the command. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_usage(stdout);
            return KV_EXIT_OK;
        }
        if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("kv %s\n", KVD_VERSION);
            return KV_EXIT_OK;
        }
        if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--socket") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: %s needs a PATH\n", kv_prog, argv[i]);
                return KV_EXIT_USAGE;
            }
            kv_socket = argv[++i];
        } else if (strncmp(argv[i], "--socket=", 9) == 0) {
            kv_socket = argv[i] + 9;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", kv_prog, argv[i]);
            print_usage(stderr);
            return KV_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        print_usage(stderr);
        return KV_EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 >= argc) {
            print_usage(stdout);
            return KV_EXIT_OK;
        }
        c = find_cmd(argv[i + 1]);
        if (c == NULL) {
            fprintf(stderr, "%s: unknown command '%s'\n", kv_prog, argv[i + 1]);
            return KV_EXIT_USAGE;
        }
        print_cmd_help(c);
        return KV_EXIT_OK;
    }
    c = find_cmd(argv[i]);
    if (c == NULL) {
        fprintf(stderr, "%s: unknown command '%s'\n", kv_prog, argv[i]);
        print_usage(stderr);
        return KV_EXIT_USAGE;
    }
    /* --help among a command's arguments; for serve only right after it,
     * since the rest of serve's arguments are kvd's own. */
    for (int k = i + 1; k < argc && (c->needs_server || k == i + 1); k++) {
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
            print_cmd_help(c);
            return KV_EXIT_OK;
        }
    }
    if (!arity_ok(c, argc - i - 1)) {
        return usage_error(c, "wrong number of arguments");
    }
    if (c->needs_server) {
        rc = connect_server();
        if (rc == NULL) {
            return KV_EXIT_NOSERVER;
        }
    }
    status = c->run(rc, argc - i - 1, argv + i + 1);
    if (rc != NULL) {
        redisFree(rc);
    }
    if (fflush(stdout) != 0 && status == KV_EXIT_OK) {
        status = fail(KV_EXIT_MISSING, "write to stdout: %s", strerror(errno));
    }
    return status;
}
