/*
 * core/cmd/reply.c -- writing replies: the helpers every handler uses, the
 * error texts of store statuses, and the encoder's appended members.
 *
 * Replies go through x->enc: the session's encoder, or EXEC's recorder
 * (multi.c). RESP2 has no map type, so kvd_cmd_reply_map() sends a flat
 * array of 2n elements unless the session negotiated RESP3. Every error
 * goes through cmd_error(), which marks the command failed (INFO
 * commandstats), turns CR/LF into spaces so no client input can split a
 * reply line, and hands the status behind the error to encoders that
 * want it (error_status).
 *
 * Thread-safety: functions of one command context.
 */
#include "core/cmd/cmd_int.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Longest error message; longer ones are cut. */
#define CMD_ERR_MAX_BYTES 512

/* Whether the first ops_size bytes of struct kvd_reply_ops hold member m. */
#define CMD_OPS_COVERS(size, m)                                                \
    ((size) >= offsetof(struct kvd_reply_ops, m) +                             \
                   sizeof(((struct kvd_reply_ops *)0)->m))

void
kvd_cmd_enc_init(struct kvd_cmd_enc *e, const struct kvd_reply_ops *ops,
                 size_t ops_size, void *w)
{
    memset(e, 0, sizeof(*e));
    e->ops = ops;
    e->w = w;
    if (ops == NULL) {
        return;
    }
    if (CMD_OPS_COVERS(ops_size, proto)) {
        e->proto = ops->proto;
    }
    if (CMD_OPS_COVERS(ops_size, null_array)) {
        e->null_array = ops->null_array;
    }
    if (CMD_OPS_COVERS(ops_size, error_status)) {
        e->error_status = ops->error_status;
    }
}

/* --- replies ---------------------------------------------------------------
 */

void
kvd_cmd_reply_ok(struct kvd_cmd_ctx *x)
{
    x->enc->ops->status(x->enc->w, "OK", 2);
}

void
kvd_cmd_reply_status(struct kvd_cmd_ctx *x, const char *s)
{
    x->enc->ops->status(x->enc->w, s, strlen(s));
}

void
kvd_cmd_reply_int(struct kvd_cmd_ctx *x, long long v)
{
    x->enc->ops->integer(x->enc->w, v);
}

void
kvd_cmd_reply_bulk(struct kvd_cmd_ctx *x, const void *p, size_t n)
{
    x->enc->ops->bulk(x->enc->w, p, n);
}

void
kvd_cmd_reply_cstr(struct kvd_cmd_ctx *x, const char *s)
{
    x->enc->ops->bulk(x->enc->w, s, strlen(s));
}

void
kvd_cmd_reply_null(struct kvd_cmd_ctx *x)
{
    x->enc->ops->null(x->enc->w);
}

void
kvd_cmd_reply_null_array(struct kvd_cmd_ctx *x)
{
    if (x->enc->null_array != NULL) {
        x->enc->null_array(x->enc->w);
    } else {
        x->enc->ops->null(x->enc->w);
    }
}

void
kvd_cmd_reply_array(struct kvd_cmd_ctx *x, size_t n)
{
    x->enc->ops->array(x->enc->w, n);
}

void
kvd_cmd_reply_map(struct kvd_cmd_ctx *x, size_t n)
{
    if (kvd_cmd_proto(x->sess) >= 3 && x->enc->ops->map != NULL) {
        x->enc->ops->map(x->enc->w, n);
    } else {
        x->enc->ops->array(x->enc->w, 2 * n);
    }
}

/* --- errors ----------------------------------------------------------------
 */

static void
cmd_error(struct kvd_cmd_ctx *x, int status, const char *msg, size_t n)
{
    char buf[CMD_ERR_MAX_BYTES];

    x->failed = true;
    if (memchr(msg, '\n', n) != NULL || memchr(msg, '\r', n) != NULL) {
        if (n >= sizeof(buf)) {
            n = sizeof(buf) - 1;
        }
        for (size_t i = 0; i < n; i++) {
            buf[i] = (msg[i] == '\r' || msg[i] == '\n') ? ' ' : msg[i];
        }
        msg = buf;
    }
    if (x->enc->error_status != NULL) {
        x->enc->error_status(x->enc->w, status, msg, n);
    } else {
        x->enc->ops->error(x->enc->w, msg, n);
    }
}

void
kvd_cmd_reply_error_as(struct kvd_cmd_ctx *x, int status, const char *msg)
{
    cmd_error(x, status, msg, strlen(msg));
}

void
kvd_cmd_reply_error(struct kvd_cmd_ctx *x, const char *msg)
{
    cmd_error(x, KVD_EINVAL, msg, strlen(msg));
}

static void cmd_verror(struct kvd_cmd_ctx *x, int status, const char *fmt,
                       va_list ap) KVD_PRINTF(3, 0);

static void
cmd_verror(struct kvd_cmd_ctx *x, int status, const char *fmt, va_list ap)
{
    char buf[CMD_ERR_MAX_BYTES];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);

    if (n < 0) {
        n = 0;
    } else if ((size_t)n >= sizeof(buf)) {
        n = (int)sizeof(buf) - 1;
    }
    cmd_error(x, status, buf, (size_t)n);
}

void
kvd_cmd_reply_errorf(struct kvd_cmd_ctx *x, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cmd_verror(x, KVD_EINVAL, fmt, ap);
    va_end(ap);
}

void
kvd_cmd_reply_errorf_as(struct kvd_cmd_ctx *x, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cmd_verror(x, status, fmt, ap);
    va_end(ap);
}

void
kvd_cmd_reply_syntax(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_error(x, KVD_CMD_ERR_SYNTAX);
}

void
kvd_cmd_reply_not_int(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_error(x, KVD_CMD_ERR_NOT_INT);
}

void
kvd_cmd_reply_arity(struct kvd_cmd_ctx *x)
{
    kvd_cmd_reply_errorf(x, "ERR wrong number of arguments for '%s' command",
                         x->ent->fullname);
}

/*
 * Store statuses as client errors. The Redis error prefixes clients act on
 * are kept where one fits (OOM, BUSY, CROSSSLOT); everything else is ERR
 * with a message that says what happened and what to look at.
 */
const char *
kvd_cmd_status_text(int rc, char *buf, size_t cap)
{
    switch (rc) {
    case KVD_EINVAL:
        return "ERR invalid argument: empty keys are not allowed";
    case KVD_ETOOBIG:
        return "ERR key or value too large for this server (see "
               "max_key_bytes and max_value_bytes)";
    case KVD_EREADONLY:
        return "ERR the store is read-only after a failed write or sync; see "
               "the server log";
    case KVD_ENOMEM:
        return "OOM out of memory while executing the command";
    case KVD_ENOSPC:
        return "ERR no space left on the device of the data directory";
    case KVD_EIO:
        return "ERR I/O error in the storage engine; see the server log";
    case KVD_ECORRUPT:
        return "ERR data corruption detected by the storage engine; see the "
               "server log";
    case KVD_ENOTSUP:
        return "ERR not supported by the storage engine";
    case KVD_EBUSY:
        return "BUSY the storage engine is busy, try again";
    case KVD_ECROSSSLOT:
        /* Redis's wording, which clients match, then what to do. */
        return "CROSSSLOT Keys in request don't hash to the same slot (give "
               "them a common {hash tag}, e.g. {user42}:a {user42}:b)";
    case KVD_EUNAVAIL:
        return "ERR storage backend unavailable";
    case KVD_ECLOSED:
        return "ERR the server is shutting down";
    case KVD_ETIMEDOUT:
        return "ERR the storage engine timed out";
    default:
        break;
    }
#define CMD_XX_STATUS(name, value, msg)                                        \
    case KVD_##name:                                                           \
        snprintf(buf, cap, "ERR %s (%s)", msg, "KVD_" #name);                  \
        return buf;
    switch (rc) {
        KVD_STATUS_MAP(CMD_XX_STATUS)
    }
#undef CMD_XX_STATUS
    snprintf(buf, cap, "ERR internal error (status %d)", rc);
    return buf;
}

void
kvd_cmd_reply_status_error(struct kvd_cmd_ctx *x, int rc)
{
    char buf[128];

    kvd_cmd_reply_error_as(x, rc, kvd_cmd_status_text(rc, buf, sizeof(buf)));
}

void
kvd_cmd_reply_help(struct kvd_cmd_ctx *x, const char *const *lines)
{
    size_t n = 0;

    while (lines[n] != NULL) {
        n++;
    }
    kvd_cmd_reply_array(x, n);
    for (size_t i = 0; i < n; i++) {
        kvd_cmd_reply_status(x, lines[i]);
    }
}
