/*
 * engines/redis/rds_cmd.c -- RESP request buffers for the redis engine.
 *
 * Commands are formatted here, once per request, as RESP arrays of bulk
 * strings ("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"), so keys and values
 * are binary-safe (NUL included) and a retry or redirect resends the same
 * bytes. Small requests live in the request's inline storage (a toolkit
 * buffer on it) and cost no allocation; a big value is copied once here
 * and once more by hiredis.
 *
 * A request is owned by the calling thread; nothing here locks.
 */
#include "rds.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<c><n>\r\n" (a RESP array or bulk header) into buf, which has room
 * for 24 bytes; its length. By hand rather than snprintf: every command
 * has a header per argument, and snprintf was a tenth of the CPU a
 * multi() call of small GETs costs its caller. */
static size_t
rds_fmt_hdr(char *buf, char c, uint64_t n)
{
    char digits[20];
    size_t nd = 0;
    size_t len = 0;

    do {
        digits[nd++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    buf[len++] = c;
    while (nd > 0) {
        buf[len++] = digits[--nd];
    }
    buf[len++] = '\r';
    buf[len++] = '\n';
    return len;
}

void
rds_req_init(struct rds_req *r)
{
    kvd_buf_init_on(&r->buf, r->inl, sizeof(r->inl));
    r->ncmds = 0;
    r->off[0] = 0;
    r->multi = false;
}

void
rds_req_release(struct rds_req *r)
{
    kvd_buf_release(&r->buf);
    kvd_buf_init_on(&r->buf, r->inl, sizeof(r->inl));
    r->ncmds = 0;
}

int
rds_cmd_begin(struct rds_req *r, int argc)
{
    char hdr[24];
    size_t n = rds_fmt_hdr(hdr, '*', (uint64_t)argc);

    if (r->ncmds < RDS_REQ_OFFS) {
        r->off[r->ncmds] = r->buf.len;
    }
    r->ncmds++;
    if (r->ncmds <= RDS_REQ_OFFS) {
        /* off[ncmds] is the end of the last command kept */
        r->off[r->ncmds] = r->buf.len + n;
    }
    return kvd_buf_append(&r->buf, hdr, n);
}

/* Keep off[ncmds] at the end of the buffer while arguments are added. */
static void
rds_req_mark_end(struct rds_req *r)
{
    if (r->ncmds <= RDS_REQ_OFFS) {
        r->off[r->ncmds] = r->buf.len;
    }
}

int
rds_cmd_arg2(struct rds_req *r, const void *a, size_t an, const void *b,
             size_t bn)
{
    char hdr[24];
    size_t n = rds_fmt_hdr(hdr, '$', (uint64_t)(an + bn));
    int rc = kvd_buf_reserve(&r->buf, n + an + bn + 2);

    if (rc != 0) {
        return rc;
    }
    kvd_buf_append(&r->buf, hdr, n);
    kvd_buf_append(&r->buf, a, an);
    kvd_buf_append(&r->buf, b, bn);
    kvd_buf_append(&r->buf, "\r\n", 2);
    rds_req_mark_end(r);
    return 0;
}

int
rds_cmd_arg(struct rds_req *r, const void *p, size_t n)
{
    return rds_cmd_arg2(r, p, n, NULL, 0);
}

int
rds_cmd_str(struct rds_req *r, const char *s)
{
    return rds_cmd_arg2(r, s, strlen(s), NULL, 0);
}

int
rds_cmd_argi(struct rds_req *r, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);

    return rds_cmd_arg2(r, num, (size_t)n, NULL, 0);
}

int
rds_cmd_words(struct rds_req *r, const char *w, ...)
{
    const char *words[16];
    int argc = 0;
    va_list ap;
    int rc;

    va_start(ap, w);
    for (const char *s = w; s != NULL && argc < 16; s = va_arg(ap, char *)) {
        words[argc++] = s;
    }
    va_end(ap);
    rc = rds_cmd_begin(r, argc);
    for (int i = 0; i < argc && rc == 0; i++) {
        rc = rds_cmd_str(r, words[i]);
    }
    return rc;
}

int
rds_req_with_asking(const struct rds_req *r, struct rds_req *out)
{
    int rc = 0;

    rds_req_init(out);
    if (r->ncmds > RDS_REQ_OFFS || r->multi) {
        return KVD_EBUSY; /* not rewritable: the caller retries later */
    }
    for (int i = 0; i < r->ncmds && rc == 0; i++) {
        rc = rds_cmd_words(out, "ASKING", NULL);
        if (rc == 0) {
            rc = kvd_buf_append(&out->buf, r->buf.p + r->off[i],
                                r->off[i + 1] - r->off[i]);
            /* the copied command counts as one more */
            out->ncmds++;
        }
    }
    return rc;
}
