/*
 * frontends/http/http_txn.c -- POST /txn: a JSON list of operations
 * (set, delete, get, check), each with optional preconditions on its key
 * (if_match, if_none_match: an entity tag or "*", as the HTTP headers),
 * applied all or nothing. Modelled on etcd's txn and Consul's /v1/txn:
 * at most HTTP_TXN_OPS_MAX operations, a key written at most once, 412
 * with the failed preconditions, 409 when the keys kept changing.
 *
 * On the command layer:
 *   WATCH <keys with conditions>; MGET <those keys>   (the values checked)
 *   preconditions false -> UNWATCH, 412 {"failed": [...]}
 *   MULTI; SET/DEL/GET per operation; EXEC
 *   EXEC null (a watched key changed since the MGET) -> read again
 * The connection's session is opened with KVD_SESSION_ATOMIC_EXEC, so an
 * operation that fails at EXEC (a value over max_value_bytes, a bad ttl)
 * makes the command layer apply nothing: the answer is that operation's
 * error and its index. EXEC applies the writes as one engine batch, so a
 * crash keeps all of them or none.
 *
 * Runs on the worker that owns the connection; touches only its request.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* At most this many operations (etcd's default max-txn-ops). */
#define HTTP_TXN_OPS_MAX 128
/* Reads and checks again when a watched key changed, this many times. */
#define HTTP_TXN_ROUNDS 16

enum txn_kind {
    TXN_SET = 1,
    TXN_DELETE,
    TXN_GET,
    TXN_CHECK,
};

static const char *const txn_names[] = {NULL, "set", "delete", "get", "check"};

struct txn_op {
    int kind; /* enum txn_kind */
    const char *key;
    size_t klen;
    const char *val;
    size_t vlen;
    char *owned[2]; /* decoded base64 of key and value */
    char ttl[24];   /* decimal seconds, "" for none */
    const char *if_match;
    const char *if_none_match;
    int slot; /* index among the keys read for the conditions; -1 none */
};

struct txn {
    json_t *doc;
    struct txn_op *ops;
    size_t nops;
    const char **argv; /* room for 2 + nops arguments */
    size_t *argl;
    char (*etags)[HTTP_ETAG_BYTES]; /* per condition key; "" absent */
    size_t nconds;
};

static void
txn_release(struct txn *t)
{
    for (size_t i = 0; t->ops != NULL && i < t->nops; i++) {
        free(t->ops[i].owned[0]);
        free(t->ops[i].owned[1]);
    }
    free(t->ops);
    free(t->argv);
    free(t->argl);
    free(t->etags);
    json_decref(t->doc);
}

/* 400 naming the operation at fault. */
static void
op_error(struct http_req *r, unsigned status, size_t index, const char *msg)
{
    http_send_json(
        r, status,
        json_pack("{s:s,s:I}", "error", msg, "index", (json_int_t)index));
}

/* ---- parsing --------------------------------------------------------------
 */

static int
op_kind(const char *s)
{
    for (int k = TXN_SET; k <= TXN_CHECK; k++) {
        if (strcmp(s, txn_names[k]) == 0) {
            return k;
        }
    }
    return 0;
}

/* One operation object; answers and returns -1 when it is not valid. */
static int
parse_op(struct http_req *r, json_t *o, size_t i, struct txn_op *op)
{
    const char *name;
    json_t *v;
    long n;

    if (!json_is_object(o)) {
        op_error(r, 400, i, "an operation must be a JSON object");
        return -1;
    }
    json_object_foreach(o, name, v)
    {
        if (strcmp(name, "op") != 0 && strcmp(name, "key") != 0 &&
            strcmp(name, "value") != 0 && strcmp(name, "ttl") != 0 &&
            strcmp(name, "if_match") != 0 &&
            strcmp(name, "if_none_match") != 0) {
            op_error(r, 400, i, "unknown member in an operation");
            return -1;
        }
    }
    v = json_object_get(o, "op");
    op->kind = json_is_string(v) ? op_kind(json_string_value(v)) : 0;
    if (op->kind == 0) {
        op_error(r, 400, i, "op must be set, delete, get or check");
        return -1;
    }
    n = http_json_to_bytes(json_object_get(o, "key"), &op->key, &op->owned[0]);
    if (n <= 0) {
        op_error(r, 400, i,
                 n == 0 ? "key cannot be empty"
                        : "key must be a string or {\"base64\": \"...\"}");
        return -1;
    }
    op->klen = (size_t)n;
    v = json_object_get(o, "value");
    if ((op->kind == TXN_SET) != (v != NULL)) {
        op_error(r, 400, i, "a value is for set, and set needs one");
        return -1;
    }
    if (v != NULL) {
        n = http_json_to_bytes(v, &op->val, &op->owned[1]);
        if (n <= 0) {
            op_error(r, 400, i,
                     n == 0 ? "value cannot be empty"
                            : "value must be a string or {\"base64\": "
                              "\"...\"}");
            return -1;
        }
        op->vlen = (size_t)n;
    }
    v = json_object_get(o, "ttl");
    if (v != NULL && (op->kind != TXN_SET || !json_is_integer(v))) {
        op_error(r, 400, i, "ttl is for set, in whole seconds");
        return -1;
    }
    if (v != NULL) {
        snprintf(op->ttl, sizeof(op->ttl), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
    }
    v = json_object_get(o, "if_match");
    if (v != NULL && !json_is_string(v)) {
        op_error(r, 400, i, "if_match must be an entity tag or \"*\"");
        return -1;
    }
    op->if_match = v != NULL ? json_string_value(v) : NULL;
    v = json_object_get(o, "if_none_match");
    if (v != NULL && !json_is_string(v)) {
        op_error(r, 400, i, "if_none_match must be an entity tag or \"*\"");
        return -1;
    }
    op->if_none_match = v != NULL ? json_string_value(v) : NULL;
    return 0;
}

static int
same_key(const struct txn_op *a, const struct txn_op *b)
{
    return a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0;
}

/* The whole body; answers and returns -1 when it is not valid. */
static int
parse_txn(struct http_req *r, struct txn *t)
{
    json_error_t jerr;
    json_t *ops;
    char msg[KVD_ERR_MSG_BYTES + 64];

    t->doc = json_loadb(r->body, r->body_len,
                        JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (t->doc == NULL) {
        snprintf(msg, sizeof(msg), "invalid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        http_send_error(r, 400, msg);
        return -1;
    }
    ops = json_object_get(t->doc, "ops");
    if (!json_is_object(t->doc) || json_object_size(t->doc) != 1 ||
        !json_is_array(ops) || json_array_size(ops) == 0) {
        http_send_error(r, 400,
                        "body must be {\"ops\": [operation, ...]} with at "
                        "least one operation");
        return -1;
    }
    t->nops = json_array_size(ops);
    if (t->nops > HTTP_TXN_OPS_MAX) {
        snprintf(msg, sizeof(msg), "more than %d operations", HTTP_TXN_OPS_MAX);
        http_send_error(r, 413, msg);
        return -1;
    }
    t->ops = calloc(t->nops, sizeof(*t->ops));
    t->argv = calloc(t->nops + 2, sizeof(*t->argv));
    t->argl = calloc(t->nops + 2, sizeof(*t->argl));
    t->etags = calloc(t->nops, sizeof(*t->etags));
    if (t->ops == NULL || t->argv == NULL || t->argl == NULL ||
        t->etags == NULL) {
        http_send_oom(r);
        return -1;
    }
    for (size_t i = 0; i < t->nops; i++) {
        struct txn_op *op = &t->ops[i];
        if (parse_op(r, json_array_get(ops, i), i, op) != 0) {
            return -1;
        }
        op->slot = -1;
        for (size_t j = 0; j < i; j++) {
            struct txn_op *p = &t->ops[j];
            int writes = (op->kind == TXN_SET || op->kind == TXN_DELETE) &&
                         (p->kind == TXN_SET || p->kind == TXN_DELETE);
            if (same_key(op, p) && writes) {
                op_error(r, 400, i, "a key is written at most once");
                return -1;
            }
            if (same_key(op, p) && p->slot >= 0) {
                op->slot = p->slot;
            }
        }
        if (op->slot < 0 && (op->if_match || op->if_none_match)) {
            op->slot = (int)t->nconds++;
        }
    }
    return 0;
}

/* ---- evaluation -------------------------------------------------------------
 */

/* Arguments: `cmd`, then the key of every condition slot. */
static size_t
cond_args(struct txn *t, const char *cmd)
{
    size_t n = 1;

    t->argv[0] = cmd;
    t->argl[0] = strlen(cmd);
    for (size_t i = 0; i < t->nops; i++) {
        const struct txn_op *op = &t->ops[i];
        if (op->slot == (int)n - 1) {
            t->argv[n] = op->key;
            t->argl[n++] = op->klen;
        }
    }
    return n;
}

/*
 * WATCH and read the keys with conditions, and check them. Returns 1
 * when they hold (the keys stay watched), 0 after answering (412, an
 * error; no key watched).
 */
static int
check_conditions(struct http_req *r, struct txn *t)
{
    const struct http_rnode *n;
    json_t *failed;
    size_t argc;

    if (t->nconds == 0) {
        return 1;
    }
    argc = cond_args(t, "WATCH");
    n = http_call(r, argc, t->argv, t->argl);
    if (!http_expect(r, n, 0, HTTP_R_STATUS, HTTP_R_STATUS)) {
        return 0;
    }
    cond_args(t, "MGET");
    n = http_call(r, argc, t->argv, t->argl);
    if (!http_expect(r, n, 0, HTTP_R_ARRAY, HTTP_R_ARRAY) ||
        n->nelem != t->nconds) {
        if (n != NULL && n->type == HTTP_R_ARRAY) {
            http_send_unexpected(r, n);
        }
        http_call0(r, "UNWATCH");
        return 0;
    }
    for (size_t s = 0; s < t->nconds; s++) {
        t->etags[s][0] = '\0';
        if (n->elem[s].type == HTTP_R_BULK) {
            http_etag(n->elem[s].p, n->elem[s].n, t->etags[s]);
        }
    }
    failed = json_array();
    for (size_t i = 0; failed != NULL && i < t->nops; i++) {
        const struct txn_op *op = &t->ops[i];
        const char *tag =
            op->slot >= 0 && t->etags[op->slot][0] ? t->etags[op->slot] : NULL;
        const char *what = NULL;

        if (op->if_match && !http_etag_match(op->if_match, tag, 0)) {
            what = "if_match";
        } else if (op->if_none_match &&
                   http_etag_match(op->if_none_match, tag, 1)) {
            what = "if_none_match";
        }
        if (what != NULL) {
            json_array_append_new(
                failed,
                json_pack("{s:I,s:o,s:s,s:o}", "index", (json_int_t)i, "key",
                          http_json_bytes(op->key, op->klen), "what", what,
                          "etag", tag ? json_string(tag) : json_null()));
        }
    }
    if (failed != NULL && json_array_size(failed) == 0) {
        json_decref(failed);
        return 1;
    }
    http_call0(r, "UNWATCH");
    http_send_json(r, 412,
                   failed == NULL
                       ? NULL
                       : json_pack("{s:s,s:o}", "error", "precondition failed",
                                   "failed", failed));
    return 0;
}

/* Queue one operation inside MULTI. Check operations queue nothing. */
static const struct http_rnode *
queue_op(struct http_req *r, const struct txn_op *op)
{
    const char *argv[5];
    size_t argl[5], argc = 2;

    argv[1] = op->key;
    argl[1] = op->klen;
    switch (op->kind) {
    case TXN_SET:
        argv[0] = "SET";
        argv[2] = op->val;
        argl[2] = op->vlen;
        argc = 3;
        if (op->ttl[0]) {
            argv[3] = "EX";
            argl[3] = 2;
            argv[4] = op->ttl;
            argl[4] = strlen(op->ttl);
            argc = 5;
        }
        break;
    case TXN_DELETE:
        argv[0] = "DEL";
        break;
    default:
        argv[0] = "GET";
        break;
    }
    argl[0] = strlen(argv[0]);
    return http_call(r, argc, argv, argl);
}

/* The answer of a committed transaction, from EXEC's replies. */
static json_t *
txn_results(const struct txn *t, const struct http_rnode *exec)
{
    json_t *res = json_array();
    size_t e = 0;

    for (size_t i = 0; res != NULL && i < t->nops; i++) {
        const struct txn_op *op = &t->ops[i];
        json_t *o = json_pack("{s:s,s:o}", "op", txn_names[op->kind], "key",
                              http_json_bytes(op->key, op->klen));
        char tag[HTTP_ETAG_BYTES];

        if (o == NULL) {
            json_decref(res);
            return NULL;
        }
        if (op->kind == TXN_SET) {
            http_etag(op->val, op->vlen, tag);
            json_object_set_new(o, "etag", json_string(tag));
            e++;
        } else if (op->kind == TXN_DELETE) {
            json_object_set_new(o, "deleted",
                                json_boolean(exec->elem[e++].i > 0));
        } else if (op->kind == TXN_GET) {
            const struct http_rnode *v = &exec->elem[e++];
            if (v->type == HTTP_R_BULK) {
                http_etag(v->p, v->n, tag);
                json_object_set_new(o, "value", http_json_bytes(v->p, v->n));
                json_object_set_new(o, "etag", json_string(tag));
            } else {
                json_object_set_new(o, "value", json_null());
            }
        } else {
            const char *cur = op->slot >= 0 && t->etags[op->slot][0]
                                  ? t->etags[op->slot]
                                  : NULL;
            json_object_set_new(o, "etag",
                                cur ? json_string(cur) : json_null());
        }
        json_array_append_new(res, o);
    }
    return res;
}

/* The operation behind EXEC reply e (checks queue no command). */
static size_t
op_of_reply(const struct txn *t, size_t e)
{
    for (size_t i = 0, k = 0; i < t->nops; i++) {
        if (t->ops[i].kind != TXN_CHECK && k++ == e) {
            return i;
        }
    }
    return 0;
}

/*
 * One attempt: conditions, then MULTI ... EXEC. Returns 1 when answered,
 * 0 when a watched key changed (try again).
 */
static int
txn_round(struct http_req *r, struct txn *t)
{
    const char *multi[1] = {"MULTI"}, *exec[1] = {"EXEC"};
    size_t ml[1] = {5}, el[1] = {4}, queued = 0;
    const struct http_rnode *n;
    json_t *res;

    if (!check_conditions(r, t)) {
        return 1;
    }
    n = http_call(r, 1, multi, ml);
    if (!http_expect(r, n, 0, HTTP_R_STATUS, HTTP_R_STATUS)) {
        http_call0(r, "UNWATCH");
        return 1;
    }
    for (size_t i = 0; i < t->nops; i++) {
        if (t->ops[i].kind == TXN_CHECK) {
            continue;
        }
        n = queue_op(r, &t->ops[i]);
        if (n == NULL || n->type != HTTP_R_STATUS) {
            break; /* EXEC answers EXECABORT: nothing runs */
        }
        queued++;
    }
    n = http_call(r, 1, exec, el);
    if (n != NULL && n->type == HTTP_R_NULL_ARRAY) {
        return 0;
    }
    if (!http_expect(r, n, 0, HTTP_R_ARRAY, HTTP_R_ARRAY)) {
        return 1;
    }
    if (n->nelem != queued) {
        http_send_unexpected(r, n);
        return 1;
    }
    for (size_t e = 0; e < n->nelem; e++) {
        if (n->elem[e].type == HTTP_R_ERROR) {
            /* The session's EXEC applied nothing (KVD_SESSION_ATOMIC_EXEC):
             * answer as that operation alone would have been, naming it. */
            const char *text;
            char msg[256];
            int rc = http_cmd_error_of(&n->elem[e], &text);
            unsigned st = http_status_for(rc, 0, text, msg, sizeof(msg));
            op_error(r, st, op_of_reply(t, e), msg);
            return 1;
        }
    }
    res = txn_results(t, n);
    http_send_json(r, 200,
                   res == NULL ? NULL : json_pack("{s:o}", "results", res));
    return 1;
}

void
http_txn_body(struct http_req *r)
{
    struct txn t;

    memset(&t, 0, sizeof(t));
    if (parse_txn(r, &t) == 0) {
        int round = 0;
        while (round < HTTP_TXN_ROUNDS && !txn_round(r, &t)) {
            round++;
        }
        if (round == HTTP_TXN_ROUNDS) {
            http_send_error(r, 409, "the keys kept changing; try again");
        }
    }
    txn_release(&t);
}
