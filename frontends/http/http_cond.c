/*
 * frontends/http/http_cond.c -- conditional requests on one key (RFC 9110
 * section 13): If-Match and If-None-Match on PUT and DELETE, evaluated
 * against the value's entity tag and applied exactly under concurrency.
 *
 * A conditional write is WATCH key, GET key (the value the conditions are
 * checked against), then MULTI, the write, EXEC: EXEC applies nothing if
 * the key was written since the GET (by any client of any frontend), and
 * then the key is read and checked again, up to HTTP_COND_ROUNDS times.
 * So of two clients that read one tag and both write with If-Match, one
 * wins and the other gets 412.
 *
 * Runs on the worker that owns the connection; touches only its request
 * and the connection's session.
 */
#include "http.h"

#include <string.h>

/* How many times a write is tried again when the key changed between
 * reading it and EXEC; then 409. */
#define HTTP_COND_ROUNDS 16

/* ---- conditional requests (RFC 9110 13) ------------------------------------
 */

/* 412, with the current value's tag when there is one. */
void
http_send_412(struct http_req *r, const char *why, const char *etag)
{
    http_send_error(r, 412, why);
    if (etag != NULL) {
        http_resp_header(r, "ETag", etag);
    }
}

/* A PUT's answer: 201 or 204, with the tag of the value stored (the
 * request body, byte for byte). */
void
http_put_answer(struct http_req *r, unsigned status)
{
    char etag[HTTP_ETAG_BYTES];

    http_etag(r->body, r->body_len, etag);
    http_send_empty(r, status);
    http_resp_header(r, "ETag", etag);
}

/* The request's conditions against the current value's tag (NULL:
 * absent). Answers 412 and returns 0 when one fails. */
static int
conditions_hold(struct http_req *r, const char *etag)
{
    if (r->if_match != NULL && !http_etag_match(r->if_match, etag, 0)) {
        http_send_412(r, "precondition failed: If-Match", etag);
        return 0;
    }
    if (r->if_none_match != NULL &&
        http_etag_match(r->if_none_match, etag, 1)) {
        http_send_412(r, "precondition failed: If-None-Match", etag);
        return 0;
    }
    return 1;
}

/*
 * WATCH key, then GET key: the value the conditions are evaluated
 * against, and which EXEC will not apply over if it changes meanwhile.
 * Returns the GET reply (BULK or NULL) with *etag filled (etag[0] == 0
 * when absent), or NULL after answering (an error; the watch dropped).
 */
static const struct http_rnode *
watch_and_read(struct http_req *r, int key_only, char etag[HTTP_ETAG_BYTES])
{
    const char *argv[2] = {"WATCH", r->key};
    size_t argl[2] = {5, r->klen};
    const struct http_rnode *n = http_call(r, 2, argv, argl);

    if (!http_expect(r, n, key_only, HTTP_R_STATUS, HTTP_R_STATUS)) {
        return NULL;
    }
    argv[0] = "GET";
    argl[0] = 3;
    n = http_call(r, 2, argv, argl);
    if (!http_expect(r, n, key_only, HTTP_R_BULK, HTTP_R_NULL)) {
        http_call0(r, "UNWATCH");
        return NULL;
    }
    etag[0] = '\0';
    if (n->type == HTTP_R_BULK) {
        http_etag(n->p, n->n, etag);
    }
    return n;
}

/*
 * MULTI, the write (argv), EXEC. Returns 1 when applied (*reply is the
 * write's own reply), 0 when a watched key changed first (nothing was
 * applied: read again), -1 after answering an error.
 */
static int
exec_write(struct http_req *r, size_t argc, const char *const *argv,
           const size_t *argl, int key_only, const struct http_rnode **reply)
{
    const char *multi[1] = {"MULTI"}, *exec[1] = {"EXEC"};
    size_t ml[1] = {5}, el[1] = {4};
    const struct http_rnode *n;

    n = http_call(r, 1, multi, ml);
    if (!http_expect(r, n, key_only, HTTP_R_STATUS, HTTP_R_STATUS)) {
        http_call0(r, "UNWATCH");
        return -1;
    }
    n = http_call(r, argc, argv, argl);
    if (n == NULL || n->type != HTTP_R_STATUS) {
        http_call0(r, "DISCARD");
        if (http_expect(r, n, key_only, HTTP_R_STATUS, HTTP_R_STATUS)) {
            http_send_unexpected(r, n);
        }
        return -1;
    }
    n = http_call(r, 1, exec, el);
    if (!http_expect(r, n, key_only, HTTP_R_ARRAY, HTTP_R_NULL_ARRAY)) {
        return -1;
    }
    if (n->type == HTTP_R_NULL_ARRAY) {
        return 0;
    }
    if (n->nelem != 1) {
        http_send_unexpected(r, n);
        return -1;
    }
    *reply = &n->elem[0];
    return 1;
}

/* PUT with If-Match or If-None-Match: read, check, write in a
 * transaction that applies only if the key is still what was checked. */
void
http_put_conditional(struct http_req *r, const struct http_arg *ttl, int nx,
                     int xx)
{
    char etag[HTTP_ETAG_BYTES];
    const char *argv[5] = {"SET", r->key, r->body, "EX", NULL};
    size_t argl[5] = {3, r->klen, r->body_len, 2, 0};
    size_t argc = 3;

    if (ttl != NULL) {
        argv[4] = ttl->val;
        argl[4] = ttl->val_len;
        argc = 5;
    }
    for (int round = 0; round < HTTP_COND_ROUNDS; round++) {
        const struct http_rnode *cur = watch_and_read(r, 0, etag), *w;
        int rc;

        if (cur == NULL) {
            return;
        }
        if (nx && etag[0]) {
            http_send_412(r, "key already exists", etag);
        } else if (xx && !etag[0]) {
            http_send_412(r, "key does not exist", NULL);
        } else {
            conditions_hold(r, etag[0] ? etag : NULL);
        }
        if (r->status != 0) {
            http_call0(r, "UNWATCH");
            return;
        }
        rc = exec_write(r, argc, argv, argl, 0, &w);
        if (rc < 0) {
            return;
        }
        if (rc == 0) {
            continue; /* changed since the check: check again */
        }
        if (w->type == HTTP_R_ERROR) {
            http_send_cmd_error(r, w, 0);
            return;
        }
        http_put_answer(r, etag[0] ? 204 : 201);
        return;
    }
    http_send_error(r, 409, "the key kept changing; try again");
}

/* DELETE with If-Match or If-None-Match. */
void
http_del_conditional(struct http_req *r)
{
    char etag[HTTP_ETAG_BYTES];
    const char *argv[2] = {"DEL", r->key};
    size_t argl[2] = {3, r->klen};

    for (int round = 0; round < HTTP_COND_ROUNDS; round++) {
        const struct http_rnode *cur = watch_and_read(r, 1, etag), *w;
        int rc;

        if (cur == NULL) {
            return;
        }
        if (!etag[0]) {
            /* Without the conditions the answer is 404: they are not
             * evaluated (RFC 9110 13.2.1). */
            http_call0(r, "UNWATCH");
            http_send_error(r, 404, "key not found");
            return;
        }
        if (!conditions_hold(r, etag)) {
            http_call0(r, "UNWATCH");
            return;
        }
        rc = exec_write(r, 2, argv, argl, 1, &w);
        if (rc < 0) {
            return;
        }
        if (rc == 0) {
            continue;
        }
        if (w->type == HTTP_R_ERROR) {
            http_send_cmd_error(r, w, 1);
            return;
        }
        http_send_empty(r, 204);
        return;
    }
    http_send_error(r, 409, "the key kept changing; try again");
}
