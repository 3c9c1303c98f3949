/*
 * engines/redis/rds_scan.c -- iteration over every master with SCAN, and
 * the scans behind stats (stats = scan), clear and KVD_MAINT_EXPIRE.
 *
 * An iteration walks the masters in slot order (the master serving the
 * lowest slot first; see rds_masters), running SCAN cursor MATCH
 * <escaped key_prefix + prefix>* COUNT scan_count on each until its cursor
 * returns to 0. For the keys of one SCAN step it sends GET (or STRLEN for
 * keys-only) and PEXPIRETIME of every key in one pipelined round trip to
 * the same node; keys that vanished meanwhile, are not strings, or are
 * expired by host->now_ms() are skipped. SCAN returns every key present
 * for the whole walk at least once; a key can repeat only when the node's
 * table is rehashed mid-walk, which kvd does not filter (the contract
 * allows no repeats: see "Known gaps" in docs/scaling.md).
 *
 * Resume position (struct kvd_entry.pos). pos must not decrease along an
 * iteration, and start_pos = pos + 1 must continue after every entry with
 * that pos. A SCAN cursor is not monotonic, but Redis advances it by
 * incrementing its bit-reversed value (that is what makes SCAN survive
 * rehashing), so the bit-reversed cursor grows along a walk. pos is
 *     node index (top RDS_POS_NODE_BITS) | rev64(cursor) >> NODE_BITS
 * where cursor is the one SCAN returned after the step that produced the
 * entry, minus one: every entry of a step carries the position of the
 * next step, so resuming at pos + 1 runs exactly that next step. When a
 * node's walk ends, the next position is (node + 1, cursor 0).
 *
 * When a cursor does not fit (its top NODE_BITS bits are in use: a table
 * of more than 2^54 buckets) or its reversed value does not grow (a
 * server whose cursors are built differently), the rest of that node's
 * entries all carry the position "start of the next node". That is still
 * correct (a caller stops only where pos changes, so it reads the rest of
 * the node before it can stop); resuming is just coarser.
 *
 * Iterators hold no connection or lock between calls; one belongs to one
 * thread at a time.
 */
#include "rds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RDS_POS_NODE_BITS 10
#define RDS_POS_CUR_BITS  (64 - RDS_POS_NODE_BITS)
#define RDS_POS_CUR_MASK  ((UINT64_C(1) << RDS_POS_CUR_BITS) - 1)
#define RDS_POS_MAX_NODES ((1u << RDS_POS_NODE_BITS) - 1)

/* Deletes expired keys only if their expiry is still the one seen. */
static const char rds_expire_script[] =
    "if redis.call('PEXPIRETIME', KEYS[1]) == tonumber(ARGV[1]) then "
    "return redis.call('DEL', KEYS[1]) end return 0";

/* ------------------------------------------------------ position codec */

static uint64_t
rds_rev64(uint64_t v)
{
    v = ((v >> 1) & UINT64_C(0x5555555555555555)) |
        ((v & UINT64_C(0x5555555555555555)) << 1);
    v = ((v >> 2) & UINT64_C(0x3333333333333333)) |
        ((v & UINT64_C(0x3333333333333333)) << 2);
    v = ((v >> 4) & UINT64_C(0x0f0f0f0f0f0f0f0f)) |
        ((v & UINT64_C(0x0f0f0f0f0f0f0f0f)) << 4);
    v = ((v >> 8) & UINT64_C(0x00ff00ff00ff00ff)) |
        ((v & UINT64_C(0x00ff00ff00ff00ff)) << 8);
    v = ((v >> 16) & UINT64_C(0x0000ffff0000ffff)) |
        ((v & UINT64_C(0x0000ffff0000ffff)) << 16);
    return (v >> 32) | (v << 32);
}

uint64_t
rds_pos_encode(unsigned node, uint64_t cursor, bool *fits)
{
    uint64_t r = rds_rev64(cursor);

    *fits = node <= RDS_POS_MAX_NODES &&
            (r & ((UINT64_C(1) << RDS_POS_NODE_BITS) - 1)) == 0;
    return ((uint64_t)node << RDS_POS_CUR_BITS) | (r >> RDS_POS_NODE_BITS);
}

void
rds_pos_decode(uint64_t pos, unsigned *node, uint64_t *cursor)
{
    *node = (unsigned)(pos >> RDS_POS_CUR_BITS);
    *cursor = rds_rev64((pos & RDS_POS_CUR_MASK) << RDS_POS_NODE_BITS);
}

/* --------------------------------------------------------- SCAN steps */

/* Append p escaped for a SCAN MATCH glob. */
static size_t
rds_glob_escape(char *out, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t w = 0;

    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", s[i]) != NULL && s[i] != '\0') {
            out[w++] = '\\';
        }
        out[w++] = (char)s[i];
    }
    return w;
}

/* The MATCH pattern for key_prefix + prefix; *len 0 = match all. */
static char *
rds_pattern(kvd_engine *db, const void *prefix, size_t plen, size_t *len)
{
    char *pat = malloc(2 * (db->prefix_len + plen) + 2);
    size_t w;

    if (pat == NULL) {
        return NULL;
    }
    w = rds_glob_escape(pat, db->prefix, db->prefix_len);
    w += rds_glob_escape(pat + w, prefix, plen);
    if (w > 0) {
        pat[w++] = '*';
    }
    *len = w;
    return pat;
}

/* SCAN cursor [MATCH pat] COUNT n on node; *rep owns the keys array. */
static int
rds_scan_step(kvd_engine *db, struct rds_node *n, uint64_t cursor,
              const char *pat, size_t patlen, uint64_t *next, redisReply **rep,
              char *why, size_t whylen)
{
    redisReply *r[1] = {NULL};
    struct rds_req q;
    int rc;

    rds_req_init(&q);
    rds_cmd_begin(&q, patlen > 0 ? 6 : 4);
    rds_cmd_str(&q, "SCAN");
    /* unsigned: cursors use all 64 bits */
    char num[24];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)cursor);
    rds_cmd_str(&q, num);
    if (patlen > 0) {
        rds_cmd_str(&q, "MATCH");
        rds_cmd_arg(&q, pat, patlen);
    }
    rds_cmd_str(&q, "COUNT");
    rc = rds_cmd_argi(&q, db->o->scan_count);
    if (rc == 0) {
        rc = rds_exec(db, &q, 0, n, 0, r, why, whylen);
    }
    rds_req_release(&q);
    if (rc != 0) {
        return rc;
    }
    if (r[0]->type != REDIS_REPLY_ARRAY || r[0]->elements != 2 ||
        r[0]->element[0]->type != REDIS_REPLY_STRING ||
        r[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        snprintf(why, whylen, "%s: SCAN: %s", n->name,
                 r[0]->type == REDIS_REPLY_ERROR ? r[0]->str
                                                 : "unexpected reply");
        freeReplyObject(r[0]);
        return KVD_EIO;
    }
    *next = strtoull(r[0]->element[0]->str, NULL, 10);
    *rep = r[0];
    return 0;
}

/* One command per key of keys (cmd KEY), pipelined to node n. */
static int
rds_per_key(kvd_engine *db, struct rds_node *n, const redisReply *keys,
            const char *cmd1, const char *cmd2, unsigned flags,
            redisReply ***out, char *why, size_t whylen)
{
    int per = cmd2 != NULL ? 2 : 1;
    redisReply **rep = calloc(keys->elements * (size_t)per + 1, sizeof(*rep));
    struct rds_req q;
    int rc = 0;

    if (rep == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVD_ENOMEM;
    }
    rds_req_init(&q);
    for (size_t i = 0; i < keys->elements && rc == 0; i++) {
        const redisReply *k = keys->element[i];

        rds_cmd_begin(&q, 2);
        rds_cmd_str(&q, cmd1);
        rc = rds_cmd_arg(&q, k->str, k->len);
        if (cmd2 != NULL && rc == 0) {
            rds_cmd_begin(&q, 2);
            rds_cmd_str(&q, cmd2);
            rc = rds_cmd_arg(&q, k->str, k->len);
        }
    }
    if (rc == 0) {
        rc = rds_exec(db, &q, 0, n, flags, rep, why, whylen);
    }
    rds_req_release(&q);
    if (rc != 0) {
        free(rep);
        return rc;
    }
    *out = rep;
    return 0;
}

/* ------------------------------------------------------------ iterator */

struct kvd_iter {
    kvd_engine *db;
    struct rds_node **masters;
    int nmasters;
    unsigned node;   /* index into masters */
    uint64_t cursor; /* next SCAN cursor on masters[node] */
    uint64_t last_r; /* resume position of the last step emitted */
    bool coarse;     /* this node's cursors do not encode: see top */
    bool keys_only;
    bool done;
    char *pat;
    size_t patlen;
    size_t match_len; /* key_prefix + prefix: checked on every key */
    char *match;
    /* the current step */
    redisReply *scan;  /* SCAN reply: element[1] holds the keys */
    redisReply **vals; /* 2 per key: GET/STRLEN, PEXPIRETIME */
    size_t nkeys;
    size_t idx;
    uint64_t pos; /* of every entry of the step */
};

static void
rds_iter_drop_step(kvd_iter *it)
{
    if (it->vals != NULL) {
        rds_replies_free(it->vals, (int)(2 * it->nkeys));
        free(it->vals);
        it->vals = NULL;
    }
    if (it->scan != NULL) {
        freeReplyObject(it->scan);
        it->scan = NULL;
    }
    it->nkeys = 0;
    it->idx = 0;
}

void
rds_iter_close(kvd_iter *it)
{
    if (it == NULL) {
        return;
    }
    rds_iter_drop_step(it);
    free(it->masters);
    free(it->pat);
    free(it->match);
    free(it);
}

int
rds_iter_open(kvd_engine *db, const struct kvd_iter_opts *opts, kvd_iter **out,
              struct kvd_err *err)
{
    kvd_iter *it = calloc(1, sizeof(*it));
    const void *prefix = opts != NULL ? opts->prefix : NULL;
    size_t plen = prefix != NULL ? opts->prefix_len : 0;
    int nrep = 0;
    bool fits;
    int rc;

    *out = NULL;
    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "redis: iterator: out of memory");
    }
    it->db = db;
    it->keys_only = opts != NULL && (opts->flags & KVD_ITER_KEYS_ONLY) != 0;
    it->pat = rds_pattern(db, prefix, plen, &it->patlen);
    it->match = malloc(db->prefix_len + plen + 1);
    if (it->pat == NULL || it->match == NULL) {
        rds_iter_close(it);
        return kvd_err_set(err, KVD_ENOMEM, "redis: iterator: out of memory");
    }
    memcpy(it->match, db->prefix, db->prefix_len);
    if (plen > 0) {
        memcpy(it->match + db->prefix_len, prefix, plen);
    }
    it->match_len = db->prefix_len + plen;
    rc = rds_masters(db, &it->masters, &it->nmasters, &nrep);
    if (rc != 0) {
        rds_iter_close(it);
        return kvd_err_set(err, rc, "redis: iterator: out of memory");
    }
    if (it->nmasters > (int)RDS_POS_MAX_NODES) {
        rds_iter_close(it);
        return kvd_err_set(err, KVD_ENOTSUP,
                           "redis: iteration supports at most %u masters",
                           RDS_POS_MAX_NODES);
    }
    rds_pos_decode(opts != NULL ? opts->start_pos : 0, &it->node, &it->cursor);
    it->last_r = rds_pos_encode(it->node, it->cursor, &fits);
    it->done = it->node >= (unsigned)it->nmasters;
    *out = it;
    return 0;
}

/* Run SCAN steps until one yields keys, or the walk ends. */
static int
rds_iter_fetch(kvd_iter *it)
{
    kvd_engine *db = it->db;
    char why[RDS_ERRMSG_BYTES];
    uint64_t next;
    int rc;

    rds_iter_drop_step(it);
    while (!it->done) {
        struct rds_node *n = it->masters[it->node];
        uint64_t r;
        bool fits;

        rc = rds_scan_step(db, n, it->cursor, it->pat, it->patlen, &next,
                           &it->scan, why, sizeof(why));
        if (rc != 0) {
            rds_warn(db, "iterate: %s", why);
            return rc;
        }
        if (next == 0) {
            r = rds_pos_encode(it->node + 1, 0, &fits);
        } else {
            r = rds_pos_encode(it->node, next, &fits);
            if (!it->coarse && (!fits || r <= it->last_r)) {
                it->coarse = true;
            }
            if (it->coarse) {
                r = rds_pos_encode(it->node + 1, 0, &fits);
            } else {
                it->last_r = r;
            }
        }
        it->pos = r - 1;
        it->nkeys = it->scan->element[1]->elements;
        if (next == 0) {
            it->node++;
            it->cursor = 0;
            it->coarse = false;
            it->last_r = rds_pos_encode(it->node, 0, &fits);
            it->done = it->node >= (unsigned)it->nmasters;
        } else {
            it->cursor = next;
        }
        if (it->nkeys == 0) {
            freeReplyObject(it->scan);
            it->scan = NULL;
            continue;
        }
        rc = rds_per_key(db, n, it->scan->element[1],
                         it->keys_only ? "STRLEN" : "GET", "PEXPIRETIME", 0,
                         &it->vals, why, sizeof(why));
        if (rc != 0) {
            rds_warn(db, "iterate: %s", why);
            it->nkeys = 0;
            return rc;
        }
        return 0;
    }
    return KVD_ENOTFOUND;
}

int
rds_iter_next(kvd_iter *it, struct kvd_entry *out)
{
    kvd_engine *db = it->db;
    int rc;

    for (;;) {
        while (it->idx < it->nkeys) {
            size_t i = it->idx++;
            const redisReply *k = it->scan->element[1]->element[i];
            const redisReply *v = it->vals[2 * i];
            int64_t exp = KVD_NO_EXPIRY;

            if (k->type != REDIS_REPLY_STRING || k->len < it->match_len ||
                memcmp(k->str, it->match, it->match_len) != 0 ||
                rds_reply_expiry(it->vals[2 * i + 1], &exp) != 0 ||
                rds_is_expired(db, exp)) {
                continue; /* gone, expired, or not ours */
            }
            if (it->keys_only ? v->type != REDIS_REPLY_INTEGER
                              : v->type != REDIS_REPLY_STRING) {
                continue; /* deleted meanwhile, or not a string */
            }
            out->key = k->str + db->prefix_len;
            out->klen = k->len - db->prefix_len;
            out->val = it->keys_only ? NULL : v->str;
            out->vlen = it->keys_only ? (size_t)v->integer : v->len;
            out->expire_ms = exp;
            out->pos = it->pos;
            return 0;
        }
        if (it->done) {
            rds_iter_drop_step(it);
            return KVD_ENOTFOUND;
        }
        rc = rds_iter_fetch(it);
        if (rc != 0) {
            return rc;
        }
    }
}

/* ---------------------------------------------- whole-keyspace scans */

int
rds_scan_count(kvd_engine *db, struct rds_scan_acc *acc, char *why,
               size_t whylen)
{
    struct kvd_iter_opts o = {.flags = KVD_ITER_KEYS_ONLY};
    struct kvd_err err = {0};
    struct kvd_entry e;
    kvd_iter *it = NULL;
    int rc;

    memset(acc, 0, sizeof(*acc));
    rc = rds_iter_open(db, &o, &it, &err);
    if (rc != 0) {
        snprintf(why, whylen, "%s", err.msg);
        return rc;
    }
    while ((rc = rds_iter_next(it, &e)) == 0) {
        acc->keys++;
        acc->key_bytes += e.klen;
        acc->value_bytes += e.vlen;
    }
    rds_iter_close(it);
    if (rc != KVD_ENOTFOUND) {
        snprintf(why, whylen, "scan failed with status %d (see the log)", rc);
        return rc;
    }
    return 0;
}

/* Delete the keys of one SCAN step: all of them (UNLINK), or those
 * expired by kvd's clock (a script that re-checks the expiry). */
static int
rds_scan_delete_step(kvd_engine *db, struct rds_node *n, const redisReply *keys,
                     bool expired_only, char *why, size_t whylen)
{
    redisReply **exp = NULL;
    redisReply **rep = NULL;
    struct rds_req q;
    size_t cnt = 0;
    int rc;

    if (!expired_only) {
        rc = rds_per_key(db, n, keys, "UNLINK", NULL, RDS_RT_WRITE, &rep, why,
                         whylen);
        if (rc == 0) {
            rds_replies_free(rep, (int)keys->elements);
            free(rep);
        }
        return rc;
    }
    rc = rds_per_key(db, n, keys, "PEXPIRETIME", NULL, 0, &exp, why, whylen);
    if (rc != 0) {
        return rc;
    }
    rds_req_init(&q);
    for (size_t i = 0; i < keys->elements && rc == 0; i++) {
        int64_t e = KVD_NO_EXPIRY;

        if (rds_reply_expiry(exp[i], &e) != 0 || !rds_is_expired(db, e)) {
            continue;
        }
        rds_cmd_begin(&q, 5);
        rds_cmd_str(&q, "EVAL");
        rds_cmd_str(&q, rds_expire_script);
        rds_cmd_str(&q, "1");
        rds_cmd_arg(&q, keys->element[i]->str, keys->element[i]->len);
        rc = rds_cmd_argi(&q, e);
        cnt++;
    }
    if (rc == 0 && cnt > 0) {
        rep = calloc(cnt + 1, sizeof(*rep));
        rc = rep == NULL
                 ? KVD_ENOMEM
                 : rds_exec(db, &q, 0, n, RDS_RT_WRITE, rep, why, whylen);
        if (rc == 0) {
            rds_replies_free(rep, (int)cnt);
        }
        free(rep);
    }
    rds_req_release(&q);
    rds_replies_free(exp, (int)keys->elements);
    free(exp);
    return rc;
}

int
rds_scan_delete(kvd_engine *db, bool expired_only, char *why, size_t whylen)
{
    struct rds_node **m = NULL;
    size_t patlen = 0;
    char *pat;
    int nm = 0;
    int nrep = 0;
    int rc;

    pat = rds_pattern(db, NULL, 0, &patlen);
    if (pat == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVD_ENOMEM;
    }
    rc = rds_masters(db, &m, &nm, &nrep);
    for (int i = 0; i < nm && rc == 0; i++) {
        uint64_t cursor = 0;

        do {
            redisReply *scan = NULL;

            rc = rds_scan_step(db, m[i], cursor, pat, patlen, &cursor, &scan,
                               why, whylen);
            if (rc == 0 && scan->element[1]->elements > 0) {
                rc = rds_scan_delete_step(db, m[i], scan->element[1],
                                          expired_only, why, whylen);
            }
            if (scan != NULL) {
                freeReplyObject(scan);
            }
        } while (rc == 0 && cursor != 0);
    }
    free(m);
    free(pat);
    return rc;
}
