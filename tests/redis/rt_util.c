/*
 * tests/redis/rt_util.c -- shared helpers of the redis engine's tests
 * (see rt_util.h).
 */
#include "rt_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/hostsvc.h"
#include "core/options.h"

int64_t
rt_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
rt_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                          .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int
rt_open(struct rt_eng *e, const char *path, const char *const *opts, size_t n,
        struct kvd_err *err)
{
    struct kvd_conf_item *items = calloc(n + 1, sizeof(*items));
    struct kvd_conf_section sec = {.name = "engine", .line = 1};
    struct kvd_store_limits limits = {0};
    const void *vt = NULL;
    int rc = KVD_ENOMEM;

    memset(e, 0, sizeof(*e));
    if (items == NULL) {
        return kvd_err_set(err, rc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(opts[i], '=');

        items[i].key = strndup(opts[i], (size_t)(eq - opts[i]));
        items[i].value = strdup(eq + 1);
        items[i].line = (int)i + 2;
    }
    sec.n = n;
    sec.items = items;
    sec.file = "<test>";
    rc = kvd_loader_open_path(path, "engine", &e->plugin, &vt, err);
    if (rc != 0) {
        goto out;
    }
    e->vt = vt;
    e->opts = calloc(1, e->vt->options_size);
    rc = kvd_options_parse(e->vt->options, &sec, NULL, e->opts, err);
    if (rc != 0) {
        goto out;
    }
    rc = kvd_store_open(e->vt, e->opts, "/tmp", /* redis keeps no files */
                        kvd_hostsvc_default(), &limits, &e->st, err);
out:
    for (size_t i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].value);
    }
    free(items);
    if (rc != 0) {
        rt_close(e);
    }
    return rc;
}

void
rt_close(struct rt_eng *e)
{
    if (e->st != NULL) {
        kvd_store_close(e->st, NULL);
    }
    if (e->opts != NULL) {
        kvd_options_release(e->vt->options, e->opts);
        free(e->opts);
    }
    if (e->plugin != NULL) {
        kvd_loader_close(e->plugin);
    }
    memset(e, 0, sizeof(*e));
}

struct rt_stat_ctx {
    const char *name;
    uint64_t value;
};

static void
rt_stat_cb(void *ctx, const char *name, uint64_t value)
{
    struct rt_stat_ctx *c = ctx;

    if (strcmp(name, c->name) == 0) {
        c->value = value;
    }
}

uint64_t
rt_stat(struct rt_eng *e, const char *name)
{
    struct rt_stat_ctx c = {.name = name, .value = UINT64_MAX};
    struct kvd_engine_stats st = {.struct_size = sizeof(st)};

    if (kvd_store_stats(e->st, &st, rt_stat_cb, &c) != 0) {
        return UINT64_MAX;
    }
    return c.value;
}

redisReply *
rt_cmd(int port, const char *fmt, ...)
{
    struct timeval tv = {.tv_sec = 5};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r = NULL;
    va_list ap;

    if (c == NULL || c->err != 0) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

int
rt_script(const char *script, const char *fmt, ...)
{
    char cmd[1024];
    char args[900];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "'%s' %s", script, args);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int
rt_master_of_slot(int port, int slot)
{
    redisReply *r = rt_cmd(port, "CLUSTER SLOTS");
    int found = -1;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r != NULL) {
            freeReplyObject(r);
        }
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];

        if (e->element[0]->integer <= slot && slot <= e->element[1]->integer) {
            found = (int)e->element[2]->element[1]->integer;
        }
    }
    freeReplyObject(r);
    return found;
}

int
rt_dead_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int e;

    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0) {
        return -1;
    }
    if (bind(*fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(*fd, (struct sockaddr *)&a, &alen) != 0) {
        e = errno;
        close(*fd);
        *fd = -1;
        errno = e;
        return -1;
    }
    return ntohs(a.sin_port);
}
