/*
 * fuzz/fuzz_resp.c -- the RESP request parser (frontends/resp/resp_parse).
 *
 * The input is a byte stream as a client would send it. It is parsed
 * request by request twice: whole, and handed over in growing pieces the
 * way reads deliver it (piece sizes from the input's own bytes), into a
 * buffer that moves between calls as the frontend's does. Both must agree
 * on every status, request size and argument; every argument must lie
 * inside the request; need must run ahead of the bytes received by no more
 * than the parser's contract allows. Inline lines go through the command
 * layer's splitter, as the frontend sends them.
 */
#include <stdlib.h>
#include <string.h>

#include "core/cmd.h"
#include "fuzz_util.h"
#include "resp_parse.h"

#define FZ_MAX_ARGS 64

static const struct resp_limits fz_limits = {
    .max_bulk_len = 1 << 20,
    .max_args = FZ_MAX_ARGS,
    .max_inline_len = 4096,
    .max_request_len = 1 << 21,
};

struct fz_result {
    int rc;
    size_t pos;
    size_t argc;
};

static void
check_request(struct resp_parser *p, const uint8_t *buf, size_t len)
{
    FZ_CHECK(p->pos <= len);
    if (p->kind == RESP_REQ_MULTIBULK) {
        for (size_t i = 0; i < p->argc; i++) {
            FZ_CHECK(p->argo[i] <= p->pos && p->argl[i] <= p->pos - p->argo[i]);
        }
        (void)resp_parser_args(p, (const char *)buf);
    } else if (p->kind == RESP_REQ_INLINE) {
        char sbuf[4096];
        const char *argv[FZ_MAX_ARGS];
        size_t argl[FZ_MAX_ARGS];
        struct kvd_err err = {0};

        FZ_CHECK(p->inline_off + p->inline_len <= p->pos);
        (void)kvd_cmd_split((const char *)buf + p->inline_off, p->inline_len,
                            sbuf, FZ_MAX_ARGS, argv, argl, &err);
    }
}

/* Parse the request at buf (len bytes), all at once. */
static struct fz_result
parse_whole(struct resp_parser *p, const uint8_t *buf, size_t len)
{
    struct fz_result r;

    resp_parser_reset(p);
    r.rc = resp_parse(p, (const char *)buf, len);
    r.pos = p->pos;
    r.argc = p->argc;
    if (r.rc == 0) {
        check_request(p, buf, len);
    }
    return r;
}

/* Parse the same request handed over in pieces through a moving copy. */
static struct fz_result
parse_pieces(struct resp_parser *p, const uint8_t *buf, size_t len,
             const uint8_t *steps, size_t nsteps)
{
    struct fz_result r = {KVD_EAGAIN, 0, 0};
    size_t have = 0;
    size_t k = 0;
    uint8_t *copy = NULL;

    resp_parser_reset(p);
    while (r.rc == KVD_EAGAIN && have < len) {
        size_t step = nsteps > 0 ? (size_t)steps[k++ % nsteps] + 1 : len;
        uint8_t *moved;

        have = len - have < step ? len : have + step;
        /* a fresh copy each time: the parser must keep only offsets */
        moved = malloc(have);
        FZ_CHECK(moved != NULL);
        memcpy(moved, buf, have);
        free(copy);
        copy = moved;
        r.rc = resp_parse(p, (const char *)copy, have);
        if (r.rc == KVD_EAGAIN && p->need != 0) {
            size_t step_max = have > RESP_NEED_STEP_BYTES
                                  ? have
                                  : (size_t)RESP_NEED_STEP_BYTES;
            FZ_CHECK(p->need > have && p->need - have <= step_max);
        }
    }
    r.pos = p->pos;
    r.argc = p->argc;
    if (r.rc == 0) {
        check_request(p, copy, have);
    }
    free(copy);
    return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct resp_parser a;
    struct resp_parser b;
    size_t off = 0;
    /* the last 8 bytes steer the piece sizes; all bytes are the stream */
    const uint8_t *steps = size >= 8 ? data + size - 8 : data;
    size_t nsteps = size >= 8 ? 8 : size;

    resp_parser_init(&a, &fz_limits);
    resp_parser_init(&b, &fz_limits);
    while (off < size) {
        struct fz_result w = parse_whole(&a, data + off, size - off);
        struct fz_result s =
            parse_pieces(&b, data + off, size - off, steps, nsteps);

        FZ_CHECK(w.rc == s.rc);
        if (w.rc != 0) {
            break; /* need more bytes, or an error that ends the stream */
        }
        FZ_CHECK(w.pos == s.pos && w.argc == s.argc && w.pos > 0);
        off += w.pos;
    }
    resp_parser_release(&a);
    resp_parser_release(&b);
    return 0;
}
