/*
 * tests/cmd/cmd_fixture.c -- see cmd_fixture.h.
 */
#include "cmd_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/hostsvc.h"
#include "core/loader.h"
#include "core/options.h"

/* Most arguments cmdt_run splits a line into. */
#define CMDT_MAX_ARGS 256

static kvd_plugin *cmdt_plugin;
static const struct kvd_engine_vtable *cmdt_vt;

/* --- reply recorder ------------------------------------------------------- */

static void
rec_put(struct cmdt_rec *r, const void *p, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1) {
            cap *= 2;
        }
        r->buf = realloc(r->buf, cap);
        assert_non_null(r->buf);
        r->cap = cap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

static void
rec_puts(struct cmdt_rec *r, const char *s)
{
    rec_put(r, s, strlen(s));
}

/* Start one element: a separator, and the bookkeeping. */
static void
rec_elem(struct cmdt_rec *r)
{
    bool fresh = false;

    if (r->pending <= 0) {
        if (!r->stream) {
            r->overflow = true; /* more than one reply */
            return;
        }
        r->pending = 1; /* the next reply of the stream */
        fresh = true;
    }
    if (r->len > 0) {
        rec_puts(r, fresh ? "|" : " ");
    }
    r->pending--;
    if (r->pending == 0) {
        r->replies++;
    }
}

static void
rec_status(void *w, const char *s, size_t n)
{
    rec_elem(w);
    rec_put(w, s, n);
}

static void
rec_error(void *w, const char *s, size_t n)
{
    rec_elem(w);
    rec_puts(w, "!");
    rec_put(w, s, n);
}

static void
rec_error_status(void *w, int status, const char *s, size_t n)
{
    struct cmdt_rec *r = w;

    r->last_status = status;
    rec_error(w, s, n);
}

static void
rec_null_array(void *w)
{
    rec_elem(w);
    rec_puts(w, "nil*");
}

static void
rec_proto(void *w, int proto)
{
    struct cmdt_rec *r = w;

    r->proto = proto;
}

static void
rec_integer(void *w, long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), ":%lld", v);
    rec_elem(w);
    rec_puts(w, buf);
}

static void
rec_bulk(void *w, const void *p, size_t n)
{
    const unsigned char *s = p;
    rec_elem(w);
    rec_puts(w, "\"");
    for (size_t i = 0; i < n; i++) {
        char buf[8];
        if (s[i] == '"' || s[i] == '\\') {
            snprintf(buf, sizeof(buf), "\\%c", s[i]);
        } else if (s[i] < 0x20 || s[i] > 0x7e) {
            snprintf(buf, sizeof(buf), "\\x%02x", s[i]);
        } else {
            buf[0] = (char)s[i];
            buf[1] = '\0';
        }
        rec_puts(w, buf);
    }
    rec_puts(w, "\"");
}

static void
rec_null(void *w)
{
    rec_elem(w);
    rec_puts(w, "nil");
}

static void
rec_aggregate(struct cmdt_rec *r, char tag, size_t n, size_t elems)
{
    char buf[32];
    bool last = r->pending == 1; /* this element would end the reply */

    rec_elem(r);
    snprintf(buf, sizeof(buf), "%c%zu", tag, n);
    rec_puts(r, buf);
    if (elems > 0) {
        if (last) {
            r->replies--; /* not complete until its elements are */
        }
        r->pending += (long)elems;
    }
}

static void
rec_array(void *w, size_t n)
{
    rec_aggregate(w, '*', n, n);
}

static void
rec_map(void *w, size_t n)
{
    rec_aggregate(w, '%', n, 2 * n);
}

static void
rec_dbl(void *w, double v)
{
    char buf[64];
    snprintf(buf, sizeof(buf), ",%.17g", v);
    rec_elem(w);
    rec_puts(w, buf);
}

const struct kvd_reply_ops cmdt_reply_ops = {
    .status = rec_status,
    .error = rec_error,
    .integer = rec_integer,
    .bulk = rec_bulk,
    .null = rec_null,
    .array = rec_array,
    .map = rec_map,
    .dbl = rec_dbl,
    .proto = rec_proto,
    .null_array = rec_null_array,
    .error_status = rec_error_status,
};

void
cmdt_rec_reset(struct cmdt_rec *r)
{
    r->len = 0;
    if (r->buf != NULL) {
        r->buf[0] = '\0';
    }
    r->pending = 1;
    r->replies = 0;
    r->overflow = false;
}

void
cmdt_rec_stream(struct cmdt_rec *r)
{
    cmdt_rec_reset(r);
    r->pending = 0;
    r->stream = true;
}

const char *
cmdt_rec_text(struct cmdt_rec *r)
{
    return r->buf != NULL ? r->buf : "";
}

void
cmdt_rec_release(struct cmdt_rec *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

/* --- clock
 * ---------------------------------------------------------------------- */

static int64_t
cmdt_clock_now(const struct kvd_host *host)
{
    const struct cmdt_clock_host *c = (const struct cmdt_clock_host *)host;
    return atomic_load(&c->now_ms);
}

void
cmdt_advance(struct cmdt_fx *fx, int64_t ms)
{
    atomic_fetch_add(&fx->clock.now_ms, ms);
}

int64_t
cmdt_now(struct cmdt_fx *fx)
{
    return atomic_load(&fx->clock.now_ms);
}

/* --- setup
 * ---------------------------------------------------------------------- */

int
cmdt_group_setup(void **state)
{
    struct kvd_err err = {0};
    const char *dir = getenv("KVD_PLUGIN_DIR");
    (void)state;

    if (dir == NULL || dir[0] == '\0') {
        dir = KVD_TEST_PLUGIN_DIR;
    }
    if (kvd_loader_open_engine(dir, "memory", &cmdt_plugin, &cmdt_vt, &err) !=
        0) {
        fprintf(stderr, "load memory engine from %s: %s\n", dir, err.msg);
        return -1;
    }
    return 0;
}

int
cmdt_group_teardown(void **state)
{
    (void)state;
    kvd_loader_close(cmdt_plugin);
    cmdt_plugin = NULL;
    return 0;
}

int
cmdt_setup_params(void **state, const struct cmdt_params *p)
{
    struct cmdt_fx *fx = calloc(1, sizeof(*fx));
    struct kvd_err err = {0};
    struct kvd_store_limits limits = {0};
    struct kvd_cmd_config cc = {
        .requirepass = p->requirepass,
        .version = "test",
        .config_file = "test.ini",
        .appendfsync = p->appendfsync,
        .save = p->save,
        .tcp_port = p->tcp_port,
        .maxclients = p->maxclients,
    };

    assert_non_null(fx);
    fx->vt = p->vt != NULL ? p->vt : cmdt_vt;
    fx->clock.host = *kvd_hostsvc_default();
    fx->clock.host.now_ms = cmdt_clock_now;
    atomic_init(&fx->clock.now_ms, CMDT_EPOCH_MS);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/kvd-cmdtest-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->opts = calloc(1, fx->vt->options_size > 0 ? fx->vt->options_size : 1);
    assert_non_null(fx->opts);
    if (kvd_options_parse(fx->vt->options, NULL, NULL, fx->opts, &err) != 0) {
        fail_msg("engine options: %s", err.msg);
    }
    limits.max_value_bytes = p->max_value_bytes;
    if (kvd_store_open(fx->vt, fx->opts, fx->dir, &fx->clock.host, &limits,
                       &fx->st, &err) != 0) {
        fail_msg("store open: %s", err.msg);
    }
    if (kvd_cmd_create(fx->st, &cc, &fx->cmd, &err) != 0) {
        fail_msg("cmd create: %s", err.msg);
    }
    struct kvd_session_info info = {
        .struct_size = sizeof(info),
        .frontend = "test",
        .flags = p->session_flags,
        .ops = &cmdt_reply_ops,
        .ops_size = sizeof(cmdt_reply_ops),
        .w = &fx->rec,
        .fd = -1,
    };
    fx->sess = kvd_cmd_session_open(fx->cmd, &info);
    assert_non_null(fx->sess);
    *state = fx;
    return 0;
}

const struct kvd_engine_vtable *
cmdt_memory_vt(void)
{
    return cmdt_vt;
}

int cmdt_multi_calls;
size_t cmdt_multi_ops;

int
cmdt_loop_multi(kvd_engine *e, struct kvd_mop *ops, size_t n)
{
    cmdt_multi_calls++;
    cmdt_multi_ops += n;
    for (size_t i = 0; i < n; i++) {
        struct kvd_mop *op = &ops[i];
        if (op->type == KVD_MOP_GET) {
            op->status = cmdt_vt->get(e, op->key, op->klen, &op->out);
        } else if (op->type == KVD_MOP_PUT) {
            op->status = cmdt_vt->put(e, op->key, op->klen, op->val, op->vlen,
                                      op->expire_ms);
        } else {
            op->status = cmdt_vt->del(e, op->key, op->klen);
        }
    }
    return 0;
}

int
cmdt_setup(void **state)
{
    struct cmdt_params p = {.session_flags = KVD_SESSION_TRUSTED};
    return cmdt_setup_params(state, &p);
}

int
cmdt_teardown(void **state)
{
    struct cmdt_fx *fx = *state;
    struct kvd_err err = {0};

    kvd_cmd_session_destroy(fx->sess);
    kvd_cmd_destroy(fx->cmd);
    assert_int_equal(kvd_store_close(fx->st, &err), 0);
    kvd_options_release(fx->vt->options, fx->opts);
    free(fx->opts);
    rmdir(fx->dir);
    cmdt_rec_release(&fx->rec);
    free(fx);
    return 0;
}

/* --- running commands
 * ----------------------------------------------------------- */

/* exec_sess: NULL for fx->sess through call, else that session through
 * the first edition's exec. */
static const char *
cmdt_runv_on(struct cmdt_fx *fx, kvd_session *exec_sess, size_t argc,
             const char *const *argv, const size_t *argl)
{
    cmdt_rec_reset(&fx->rec);
    if (exec_sess != NULL) {
        fx->last_flags = kvd_cmd_exec(exec_sess, argc, argv, argl,
                                      &cmdt_reply_ops, &fx->rec);
    } else {
        fx->last_flags = kvd_cmd_call(fx->sess, argc, argv, argl);
    }
    assert_true(fx->last_flags >= 0);
    if (fx->rec.overflow || fx->rec.replies != 1 || fx->rec.pending != 0) {
        fail_msg("command '%s' wrote %d replies (pending %ld): %s",
                 argc > 0 ? argv[0] : "", fx->rec.replies, fx->rec.pending,
                 fx->rec.buf ? fx->rec.buf : "");
    }
    return fx->rec.buf;
}

const char *
cmdt_runv(struct cmdt_fx *fx, size_t argc, const char *const *argv,
          const size_t *argl)
{
    return cmdt_runv_on(fx, NULL, argc, argv, argl);
}

/* Split a line into argv/argl (pointing into a static buffer, valid
 * until the next call); fails the test on a split error. */
static size_t
cmdt_split(const char *line, const char **argv, size_t *argl)
{
    static char buf[64 * 1024];
    struct kvd_err err = {0};
    size_t len = strlen(line);

    assert_true(len <= sizeof(buf));
    int argc = kvd_cmd_split(line, len, buf, CMDT_MAX_ARGS, argv, argl, &err);
    if (argc < 0) {
        fail_msg("split '%s': %s", line, err.msg);
    }
    return (size_t)argc;
}

static const char *
cmdt_run_on(struct cmdt_fx *fx, kvd_session *exec_sess, const char *line)
{
    const char *argv[CMDT_MAX_ARGS];
    size_t argl[CMDT_MAX_ARGS];
    size_t argc = cmdt_split(line, argv, argl);

    return cmdt_runv_on(fx, exec_sess, argc, argv, argl);
}

const char *
cmdt_run(struct cmdt_fx *fx, const char *line)
{
    return cmdt_run_on(fx, NULL, line);
}

const char *
cmdt_run_exec(struct cmdt_fx *fx, kvd_session *s, const char *line)
{
    return cmdt_run_on(fx, s, line);
}

kvd_session *
cmdt_session(struct cmdt_fx *fx, struct cmdt_rec *rec, kvd_cmd_pass *p,
             unsigned flags)
{
    struct kvd_session_info info = {
        .struct_size = sizeof(info),
        .frontend = "test",
        .flags = flags,
        .ops = &cmdt_reply_ops,
        .ops_size = sizeof(cmdt_reply_ops),
        .w = rec,
        .pass = p,
        .fd = -1,
    };
    kvd_session *s;

    cmdt_rec_stream(rec);
    s = kvd_cmd_session_open(fx->cmd, &info);
    assert_non_null(s);
    return s;
}

int
cmdt_call(kvd_session *s, const char *line)
{
    const char *argv[CMDT_MAX_ARGS];
    size_t argl[CMDT_MAX_ARGS];
    size_t argc = cmdt_split(line, argv, argl);

    return kvd_cmd_call(s, argc, argv, argl);
}
