/*
 * engines/redis/rds_engine.c -- the `redis` storage engine: options,
 * open/close and the point operations.
 *
 * Model: kvd keeps nothing locally; key K is the Redis string
 * <key_prefix>K on a plain redis-server or a Redis Cluster (detected at
 * open from INFO cluster). See rds.h for the file map and the locks,
 * rds_route.c for slots, redirects, retries and durability.
 *
 * Operations, each one request (its commands kept together, the replies
 * read back in order) to the node that serves the key's hash slot; a
 * request shares a connection, and often one write, with the concurrent
 * requests of other threads to that node (rds_pipe.c):
 *   get    GET k; PEXPIRETIME k. Both commands reach the server in one
 *          packet and one connection, and a server runs the commands of
 *          one read back to back, so the pair describes one version of
 *          the key. An expiry at or before host->now_ms() reads as absent
 *          (the contract's clock, which may run ahead of Redis').
 *   put    SET k v [PXAT expire_ms]; an expiry already past is a DEL.
 *   del    PEXPIRETIME k; DEL k (a key expired by kvd's clock but not yet
 *          by Redis' is deleted and reported absent).
 *   batch  MULTI; SET/DEL...; EXEC on the slot's master: all-or-nothing
 *          when every key hashes to one slot (always on a plain server);
 *          otherwise KVD_ECROSSSLOT before anything is sent.
 *   multi  the same commands as get/put/del for every operation, one
 *          pipelined request per node, all nodes at once (rds_multi.c).
 * With durability = wait:N a WAIT N follows every write on the same
 * connection (one WAIT per pipelined batch of writes).
 *
 * Crash and durability story: Redis' own (RDB/AOF on the servers); kvd
 * adds WAIT for replica acknowledgement. Threads: any number, see rds.h.
 */
#include "rds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RDS_ENGINE_VERSION "1.0.0"

/* ---------------------------------------------------------------- options */

static const char *const rds_stats_choices[] = {"dbsize", "scan", NULL};

static const struct kvd_option rds_options[] = {
    {"nodes", KVD_OPT_STRING, "127.0.0.1:6379", 0, 0,
     offsetof(struct rds_opts, nodes), NULL,
     "seed nodes, host:port separated by commas or spaces; any one that "
     "answers is enough (a plain redis-server or any node of a Redis "
     "Cluster: which one is detected at open)"},
    {"password", KVD_OPT_STRING, "", 0, 0, offsetof(struct rds_opts, password),
     NULL, "AUTH password (empty: no AUTH)"},
    {"user", KVD_OPT_STRING, "", 0, 0, offsetof(struct rds_opts, user), NULL,
     "ACL user name for AUTH (empty: the default user)"},
    {"connect_timeout_ms", KVD_OPT_INT, "1000", 1, 600000,
     offsetof(struct rds_opts, connect_timeout_ms), NULL,
     "milliseconds a TCP connect to a node may take"},
    {"command_timeout_ms", KVD_OPT_INT, "2000", 1, 3600000,
     offsetof(struct rds_opts, command_timeout_ms), NULL,
     "milliseconds a request may take, retries and redirects included; "
     "then it fails (unavailable or timed out) instead of waiting longer"},
    {"pool_size", KVD_OPT_INT, "2", 1, 64, offsetof(struct rds_opts, pool_size),
     NULL,
     "pipelined connections to each node. Concurrent requests to a node "
     "share its first connection, and those that queue while it is busy "
     "go out together in one write (auto-pipelining); the others carry "
     "traffic only while more than 64 KiB of requests (big values, scan "
     "steps) are queued or in flight on the ones before, so a big request "
     "does not hold up small ones (docs/scaling.md)"},
    {"read_from_replicas", KVD_OPT_BOOL, "no", 0, 0,
     offsetof(struct rds_opts, read_from_replicas), NULL,
     "cluster: serve gets from replicas (may return data that is slightly "
     "behind the master)"},
    {"key_prefix", KVD_OPT_STRING, "", 0, 0,
     offsetof(struct rds_opts, key_prefix), NULL,
     "prepended to every key in Redis and removed again when iterating, so "
     "several kvd deployments can share one database; must not contain "
     "'{'"},
    {"durability", KVD_OPT_STRING, "none", 0, 0,
     offsetof(struct rds_opts, durability), NULL,
     "none: a write is acknowledged when the master has it; wait:N: only "
     "after WAIT N confirms that N replicas have it"},
    {"stats", KVD_OPT_ENUM, "dbsize", 0, 0, offsetof(struct rds_opts, stats),
     rds_stats_choices,
     "dbsize: keys = DBSIZE summed over the masters (cheap; counts every "
     "key of the database, key and value bytes not reported); scan: count "
     "this deployment's live keys and bytes with SCAN (exact, but reads "
     "every key)"},
    {"scan_count", KVD_OPT_INT, "512", 1, 100000,
     offsetof(struct rds_opts, scan_count), NULL,
     "COUNT hint of each SCAN step when iterating"},
    {NULL, 0, NULL, 0, 0, 0, NULL, NULL},
};

/* ------------------------------------------------------------ open/close */

static void
rds_destroy(kvd_engine *db)
{
    if (db == NULL) {
        return;
    }
    rds_nodes_free(db);
    rds_map_free(db->map);
    rds_req_release(&db->wait_cmd);
    free(db->seeds);
    pthread_mutex_destroy(&db->nodes_mu);
    pthread_mutex_destroy(&db->refresh_mu);
    pthread_rwlock_destroy(&db->map_lock);
    free(db);
}

/* durability = none | wait:N: *replicas = N (0 for none) */
static int
rds_parse_durability(const char *s, int *replicas, struct kvd_err *err)
{
    char *end;
    long n;

    if (s == NULL || strcmp(s, "none") == 0) {
        *replicas = 0;
        return 0;
    }
    if (strncmp(s, "wait:", 5) == 0) {
        n = strtol(s + 5, &end, 10);
        if (end != s + 5 && *end == '\0' && n >= 1 && n <= 64) {
            *replicas = (int)n;
            return 0;
        }
    }
    return kvd_err_set(err, KVD_ECONFIG,
                       "redis: durability = %s: expected none or wait:N "
                       "with N from 1 to 64 (replicas that must confirm "
                       "each write)",
                       s);
}

/* nodes = host:port, ...: the seeds into db, or (db NULL) only checked */
static int
rds_parse_seeds(kvd_engine *db, const char *list, struct kvd_err *err)
{
    const char *sep = ", \t";
    const char *p = list != NULL ? list : "";
    size_t cap = 1;
    size_t nseeds = 0;

    for (const char *q = p; *q != '\0'; q++) {
        cap += strchr(sep, *q) != NULL;
    }
    if (db != NULL) {
        db->seeds = calloc(cap, sizeof(*db->seeds));
        if (db->seeds == NULL) {
            return kvd_err_set(err, KVD_ENOMEM, "redis: out of memory");
        }
    }
    while (*p != '\0') {
        size_t n = strcspn(p, sep);
        char host[RDS_HOST_BYTES];
        int port;

        if (n == 0) {
            p++;
            continue;
        }
        if (rds_parse_hostport(p, n, host, sizeof(host), &port) != 0) {
            return kvd_err_set(err, KVD_ECONFIG,
                               "redis: nodes = %s: '%.*s' is not host:port",
                               list, (int)n, p);
        }
        if (db != NULL) {
            db->seeds[db->nseeds] = rds_node_get(db, host, port);
            if (db->seeds[db->nseeds] == NULL) {
                return kvd_err_set(err, KVD_ENOMEM, "redis: out of memory");
            }
            db->nseeds++;
        }
        nseeds++;
        p += n;
    }
    if (nseeds == 0) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "redis: nodes is empty: expected one or more "
                           "host:port");
    }
    return 0;
}

/* "field:value\r\n" of an INFO reply, into buf. */
static bool
rds_info_field(const redisReply *r, const char *field, char *buf, size_t len)
{
    size_t fl = strlen(field);
    const char *p;

    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) {
        return false;
    }
    for (p = r->str; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
        if (*p == '\n') {
            p++;
        }
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            size_t n = strcspn(p + fl + 1, "\r\n");

            snprintf(buf, len, "%.*s", (int)n, p + fl + 1);
            return true;
        }
    }
    return false;
}

/* Ask one seed what it is: version and cluster mode. */
static int
rds_probe(kvd_engine *db, struct rds_node *n, char *why, size_t whylen)
{
    redisReply *rep[2] = {NULL, NULL};
    char ver[32] = "";
    char enabled[8] = "0";
    int maj = 0;
    int min = 0;
    struct rds_req r;
    int rc;

    rds_req_init(&r);
    rds_cmd_words(&r, "INFO", "server", NULL);
    rc = rds_cmd_words(&r, "INFO", "cluster", NULL);
    if (rc == 0) {
        rc = rds_exec(db, &r, 0, n, RDS_RT_ONCE, rep, why, whylen);
    }
    rds_req_release(&r);
    if (rc != 0) {
        return rc;
    }
    if (rep[0]->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "%s: INFO: %s", n->name, rep[0]->str);
        rc = KVD_EIO;
        goto out;
    }
    rds_info_field(rep[0], "redis_version", ver, sizeof(ver));
    sscanf(ver, "%d.%d", &maj, &min);
    if (maj * 10000 + min * 100 < RDS_MIN_VERSION) {
        snprintf(why, whylen,
                 "%s runs Redis %s; the redis engine needs 7.0 or later "
                 "(PEXPIRETIME)",
                 n->name, ver[0] != '\0' ? ver : "of unknown version");
        rc = KVD_ENOTSUP;
        goto out;
    }
    rds_info_field(rep[1], "cluster_enabled", enabled, sizeof(enabled));
    db->cluster = strcmp(enabled, "1") == 0;
out:
    rds_replies_free(rep, 2);
    return rc;
}

/* Find a seed that answers; then load the slot map (cluster). */
static int
rds_connect_seeds(kvd_engine *db, struct kvd_err *err)
{
    char all[KVD_ERR_MSG_BYTES] = "";
    char why[RDS_ERRMSG_BYTES];
    size_t used = 0;
    int rc = KVD_EUNAVAIL;

    for (int i = 0; i < db->nseeds; i++) {
        rc = rds_probe(db, db->seeds[i], why, sizeof(why));
        if (rc == 0) {
            db->server = db->seeds[i];
            break;
        }
        if (rc == KVD_ENOTSUP || rc == KVD_ECONFIG) {
            return kvd_err_set(err, rc, "redis: %s", why);
        }
        used += (size_t)snprintf(all + used, sizeof(all) - used, "%s%s",
                                 i > 0 ? "; " : "", why);
        if (used >= sizeof(all)) {
            used = sizeof(all) - 1;
        }
    }
    if (db->server == NULL) {
        return kvd_err_set(err, KVD_EUNAVAIL,
                           "redis: no seed node answered (nodes = %s): %s",
                           db->o->nodes, all);
    }
    if (!db->cluster) {
        return 0;
    }
    rc = rds_map_refresh(db, true, rds_mono_ms() + db->cmd_timeout_ms, why,
                         sizeof(why));
    if (rc != 0) {
        return kvd_err_set(err, rc, "redis: loading the cluster slot map: %s",
                           why);
    }
    return 0;
}

/* vtable check_options: durability and nodes syntax, the key prefix, before
 * open (kvd --check-config); no connection is made. */
static int
rds_check_options(const void *opts, const char **key, struct kvd_err *err)
{
    const struct rds_opts *o = opts;
    int replicas;

    *key = "durability";
    if (rds_parse_durability(o->durability, &replicas, err) != 0) {
        return KVD_ECONFIG;
    }
    *key = "key_prefix";
    if (o->key_prefix != NULL && strchr(o->key_prefix, '{') != NULL) {
        return kvd_err_set(err, KVD_ECONFIG,
                           "redis: must not contain '{' (it would change "
                           "the hash slots of keys)");
    }
    *key = "nodes";
    return rds_parse_seeds(NULL, o->nodes, err);
}

static int
rds_open(const struct kvd_host *host, const void *opts, const char *dir,
         kvd_engine **out, struct kvd_err *err)
{
    const struct rds_opts *o = opts;
    struct rds_node **masters = NULL;
    kvd_engine *db;
    int nmasters = 0;
    int nrep = 0;
    int rc;

    (void)dir; /* nothing is kept locally */
    *out = NULL;
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "redis: out of memory");
    }
    db->host = host;
    db->o = o;
    db->prefix = o->key_prefix != NULL ? o->key_prefix : "";
    db->prefix_len = strlen(db->prefix);
    db->pool_size = (int)o->pool_size;
    db->cmd_timeout_ms = o->command_timeout_ms;
    db->conn_timeout_ms = o->connect_timeout_ms;
    pthread_mutex_init(&db->nodes_mu, NULL);
    pthread_mutex_init(&db->refresh_mu, NULL);
    pthread_rwlock_init(&db->map_lock, NULL);
    rds_req_init(&db->wait_cmd);

    rc = rds_parse_durability(o->durability, &db->wait_replicas, err);
    if (rc != 0) {
        goto fail;
    }
    if (db->wait_replicas > 0) {
        rds_cmd_begin(&db->wait_cmd, 3);
        rds_cmd_str(&db->wait_cmd, "WAIT");
        rds_cmd_argi(&db->wait_cmd, db->wait_replicas);
        rc = rds_cmd_argi(&db->wait_cmd, db->cmd_timeout_ms);
        if (rc != 0) {
            kvd_err_set(err, rc, "redis: out of memory");
            goto fail;
        }
    }
    if (memchr(db->prefix, '{', db->prefix_len) != NULL) {
        /* a '{' would make the prefix part of every key's hash tag and
         * change which keys share a slot */
        rc = kvd_err_set(err, KVD_ECONFIG,
                         "redis: key_prefix = %s: must not contain '{' "
                         "(it would change the hash slots of keys)",
                         db->prefix);
        goto fail;
    }
    rc = rds_parse_seeds(db, o->nodes, err);
    if (rc != 0) {
        goto fail;
    }
    rc = rds_connect_seeds(db, err);
    if (rc != 0) {
        goto fail;
    }
    rc = rds_masters(db, &masters, &nmasters, &nrep);
    if (rc != 0) {
        kvd_err_set(err, rc, "redis: out of memory");
        goto fail;
    }
    host->log(host, KVD_LOG_INFO,
              "redis: %s via %s: %d master(s), %d replica(s), key_prefix "
              "'%s', durability %s",
              db->cluster ? "Redis Cluster" : "plain redis-server",
              db->server->name, nmasters, nrep, db->prefix,
              o->durability != NULL ? o->durability : "none");
    if (db->wait_replicas > 0 && db->cluster &&
        nrep < db->wait_replicas * nmasters) {
        host->log(host, KVD_LOG_WARN,
                  "redis: durability wait:%d, but the cluster has %d "
                  "replica(s) for %d master(s): writes will time out",
                  db->wait_replicas, nrep, nmasters);
    }
    free(masters);
    *out = db;
    return 0;
fail:
    rds_destroy(db);
    return rc;
}

static int
rds_close(kvd_engine *db, struct kvd_err *err)
{
    (void)err;
    db->host->log(db->host, KVD_LOG_INFO,
                  "redis: %llu request(s) sent in %llu pipelined write(s)",
                  (unsigned long long)atomic_load(&db->c.piped),
                  (unsigned long long)atomic_load(&db->c.flushes));
    rds_destroy(db);
    return 0;
}

/* ------------------------------------------------------------ operations */

bool
rds_is_expired(const kvd_engine *db, int64_t expire_ms)
{
    return expire_ms != KVD_NO_EXPIRY &&
           expire_ms <= db->host->now_ms(db->host);
}

/* PEXPIRETIME's answer: 0 with *expire_ms (KVD_NO_EXPIRY for none), or
 * KVD_ENOTFOUND (no such key) or KVD_EPROTO. */
int
rds_reply_expiry(const redisReply *r, int64_t *expire_ms)
{
    if (r->type != REDIS_REPLY_INTEGER) {
        return KVD_EPROTO;
    }
    if (r->integer == -2) {
        return KVD_ENOTFOUND;
    }
    *expire_ms = r->integer < 0 ? KVD_NO_EXPIRY : r->integer;
    return 0;
}

static int
rds_cmd_key(kvd_engine *db, struct rds_req *r, const char *cmd, const void *key,
            size_t klen)
{
    rds_cmd_begin(r, 2);
    rds_cmd_str(r, cmd);
    return rds_cmd_arg2(r, db->prefix, db->prefix_len, key, klen);
}

int
rds_slot_of(kvd_engine *db, const void *key, size_t klen)
{
    return db->cluster ? (int)rds_slot(db, key, klen) : 0;
}

static void
rds_val_release(struct kvd_val *v)
{
    freeReplyObject(v->cookie[0]);
}

int
rds_cmd_get(kvd_engine *db, struct rds_req *r, const void *key, size_t klen)
{
    rds_cmd_key(db, r, "GET", key, klen);
    return rds_cmd_key(db, r, "PEXPIRETIME", key, klen);
}

int
rds_get_reply(kvd_engine *db, redisReply **rep, struct kvd_val *out)
{
    int64_t exp = KVD_NO_EXPIRY;
    int rc;

    if (rep[0]->type == REDIS_REPLY_NIL) {
        rc = KVD_ENOTFOUND;
    } else if (rep[0]->type != REDIS_REPLY_STRING) {
        rds_warn(db, "get: GET: %s",
                 rep[0]->type == REDIS_REPLY_ERROR ? rep[0]->str
                                                   : "unexpected reply");
        rc = KVD_EIO;
    } else {
        rc = rds_reply_expiry(rep[1], &exp);
        if (rc == 0 && rds_is_expired(db, exp)) {
            rc = KVD_ENOTFOUND;
        }
    }
    if (rc != 0) {
        rds_replies_free(rep, RDS_GET_CMDS);
        return rc;
    }
    /* zero copy: the value stays in hiredis' reply until release */
    out->data = rep[0]->str;
    out->len = rep[0]->len;
    out->expire_ms = exp;
    out->release = rds_val_release;
    out->cookie[0] = rep[0];
    out->cookie[1] = NULL;
    rep[0] = NULL;
    rds_replies_free(rep + 1, 1);
    return 0;
}

/* One SET or DEL of a put (or of a batch op). */
int
rds_cmd_put(kvd_engine *db, struct rds_req *r, const void *key, size_t klen,
            const void *val, size_t vlen, int64_t expire_ms)
{
    if (rds_is_expired(db, expire_ms)) {
        /* an expiry already past deletes the key */
        return rds_cmd_key(db, r, "DEL", key, klen);
    }
    rds_cmd_begin(r, expire_ms != KVD_NO_EXPIRY ? 5 : 3);
    rds_cmd_str(r, "SET");
    rds_cmd_arg2(r, db->prefix, db->prefix_len, key, klen);
    if (expire_ms == KVD_NO_EXPIRY) {
        return rds_cmd_arg(r, val != NULL ? val : "", vlen);
    }
    rds_cmd_arg(r, val != NULL ? val : "", vlen);
    rds_cmd_str(r, "PXAT");
    return rds_cmd_argi(r, expire_ms);
}

int
rds_put_reply(kvd_engine *db, redisReply **rep)
{
    int rc = 0;

    if (rep[0]->type == REDIS_REPLY_ERROR) {
        rds_warn(db, "put: %s", rep[0]->str);
        rc = KVD_EIO;
    }
    rds_replies_free(rep, RDS_PUT_CMDS);
    return rc;
}

int
rds_cmd_del(kvd_engine *db, struct rds_req *r, const void *key, size_t klen)
{
    rds_cmd_key(db, r, "PEXPIRETIME", key, klen);
    return rds_cmd_key(db, r, "DEL", key, klen);
}

int
rds_del_reply(kvd_engine *db, redisReply **rep)
{
    int64_t exp = KVD_NO_EXPIRY;
    int rc = 0;

    if (rep[1]->type != REDIS_REPLY_INTEGER) {
        rds_warn(db, "del: DEL: %s",
                 rep[1]->type == REDIS_REPLY_ERROR ? rep[1]->str
                                                   : "unexpected reply");
        rc = KVD_EIO;
    } else if (rep[1]->integer == 0) {
        rc = KVD_ENOTFOUND;
    } else if (rds_reply_expiry(rep[0], &exp) == 0 && rds_is_expired(db, exp)) {
        rc = KVD_ENOTFOUND; /* gone for kvd's clock already */
    }
    rds_replies_free(rep, RDS_DEL_CMDS);
    return rc;
}

/* The request of one multi operation (a get, put or del alone). */
int
rds_cmd_mop(kvd_engine *db, struct rds_req *r, const struct kvd_mop *op)
{
    switch (op->type) {
    case KVD_MOP_GET:
        return rds_cmd_get(db, r, op->key, op->klen);
    case KVD_MOP_PUT:
        return rds_cmd_put(db, r, op->key, op->klen, op->val, op->vlen,
                           op->expire_ms);
    default:
        return rds_cmd_del(db, r, op->key, op->klen);
    }
}

int
rds_mop_reply(kvd_engine *db, const struct kvd_mop *op, redisReply **rep,
              struct kvd_val *out)
{
    switch (op->type) {
    case KVD_MOP_GET:
        return rds_get_reply(db, rep, out);
    case KVD_MOP_PUT:
        return rds_put_reply(db, rep);
    default:
        return rds_del_reply(db, rep);
    }
}

int
rds_mop_alone(kvd_engine *db, const struct kvd_mop *op, int64_t deadline,
              struct kvd_val *out)
{
    static const char *const name[] = {"get", "put", "del"};
    redisReply *rep[2] = {NULL, NULL};
    char why[RDS_ERRMSG_BYTES];
    unsigned flags = op->type == KVD_MOP_GET ? RDS_RT_READ : RDS_RT_WRITE;
    struct rds_req r;
    int rc;

    rds_req_init(&r);
    rc = rds_cmd_mop(db, &r, op);
    if (rc == 0) {
        rc = rds_exec_until(db, &r, rds_slot_of(db, op->key, op->klen), NULL,
                            flags, deadline, rep, why, sizeof(why));
    } else {
        snprintf(why, sizeof(why), "out of memory");
    }
    rds_req_release(&r);
    if (rc != 0) {
        rds_warn(db, "%s: %s", name[op->type - KVD_MOP_GET], why);
        return rc;
    }
    return rds_mop_reply(db, op, rep, out);
}

static int
rds_get(kvd_engine *db, const void *key, size_t klen, struct kvd_val *out)
{
    const struct kvd_mop op = {.type = KVD_MOP_GET, .key = key, .klen = klen};

    return rds_mop_alone(db, &op, rds_mono_ms() + db->cmd_timeout_ms, out);
}

static int
rds_put(kvd_engine *db, const void *key, size_t klen, const void *val,
        size_t vlen, int64_t expire_ms)
{
    const struct kvd_mop op = {.type = KVD_MOP_PUT,
                               .key = key,
                               .klen = klen,
                               .val = val,
                               .vlen = vlen,
                               .expire_ms = expire_ms};

    return rds_mop_alone(db, &op, rds_mono_ms() + db->cmd_timeout_ms, NULL);
}

static int
rds_del(kvd_engine *db, const void *key, size_t klen)
{
    const struct kvd_mop op = {.type = KVD_MOP_DEL, .key = key, .klen = klen};

    return rds_mop_alone(db, &op, rds_mono_ms() + db->cmd_timeout_ms, NULL);
}

/* Every op valid, and (cluster) every key in one slot; *slot set. */
static int
rds_batch_check(kvd_engine *db, const struct kvd_op *ops, size_t n, int *slot,
                struct kvd_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct kvd_op *op = &ops[i];

        if (op->type != KVD_OP_PUT && op->type != KVD_OP_DEL) {
            return kvd_err_set(err, KVD_EINVAL,
                               "batch operation %zu: unknown type %d", i,
                               op->type);
        }
        if (op->klen == 0 || op->key == NULL) {
            return kvd_err_set(err, KVD_EINVAL,
                               "batch operation %zu: empty key", i);
        }
        if (op->type == KVD_OP_PUT && op->val == NULL && op->vlen != 0) {
            return kvd_err_set(err, KVD_EINVAL,
                               "batch operation %zu: NULL value", i);
        }
        if (op->type == KVD_OP_PUT && op->vlen > RDS_MAX_VALUE) {
            return kvd_err_set(err, KVD_ETOOBIG,
                               "batch operation %zu: value of %zu bytes is "
                               "over Redis' limit of %llu",
                               i, op->vlen, (unsigned long long)RDS_MAX_VALUE);
        }
    }
    *slot = n > 0 ? rds_slot_of(db, ops[0].key, ops[0].klen) : 0;
    for (size_t i = 1; i < n && db->cluster; i++) {
        int s = rds_slot_of(db, ops[i].key, ops[i].klen);

        if (s != *slot) {
            atomic_fetch_add_explicit(&db->c.crossslot, 1,
                                      memory_order_relaxed);
            return kvd_err_set(
                err, KVD_ECROSSSLOT,
                "redis: batch keys span hash slots (operation 0 is in slot "
                "%d, operation %zu in slot %d): Redis Cluster applies a "
                "batch atomically only within one slot; give the keys a "
                "common hash tag, e.g. {user42}:name and {user42}:mail, so "
                "they share a slot",
                *slot, i, s);
        }
    }
    return 0;
}

/* EXEC's answer: every queued command succeeded? */
static int
rds_batch_result(kvd_engine *db, redisReply **rep, size_t n,
                 struct kvd_err *err)
{
    const redisReply *ex = rep[n + 1];

    for (size_t i = 0; i <= n; i++) {
        if (rep[i]->type == REDIS_REPLY_ERROR) {
            return kvd_err_set(err, KVD_EIO, "redis: batch: %s%s",
                               i == 0 ? "MULTI: " : "", rep[i]->str);
        }
    }
    if (ex->type != REDIS_REPLY_ARRAY || ex->elements != n) {
        return kvd_err_set(err, KVD_EIO, "redis: batch: EXEC: %s",
                           ex->type == REDIS_REPLY_ERROR ? ex->str : "aborted");
    }
    for (size_t i = 0; i < n; i++) {
        if (ex->element[i]->type == REDIS_REPLY_ERROR) {
            return kvd_err_set(err, KVD_EIO, "redis: batch operation %zu: %s",
                               i, ex->element[i]->str);
        }
    }
    (void)db;
    return 0;
}

static int
rds_batch(kvd_engine *db, const struct kvd_op *ops, size_t n,
          struct kvd_err *err)
{
    char why[RDS_ERRMSG_BYTES];
    redisReply **rep = NULL;
    struct rds_req r;
    int slot = 0;
    int rc;

    rc = rds_batch_check(db, ops, n, &slot, err);
    if (rc != 0 || n == 0) {
        return rc;
    }
    rep = calloc(n + 3, sizeof(*rep));
    if (rep == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "redis: batch: out of memory");
    }
    rds_req_init(&r);
    r.multi = true;
    rc = rds_cmd_words(&r, "MULTI", NULL);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = ops[i].type == KVD_OP_PUT
                 ? rds_cmd_put(db, &r, ops[i].key, ops[i].klen, ops[i].val,
                               ops[i].vlen, ops[i].expire_ms)
                 : rds_cmd_key(db, &r, "DEL", ops[i].key, ops[i].klen);
    }
    if (rc == 0) {
        rc = rds_cmd_words(&r, "EXEC", NULL);
    }
    if (rc == 0) {
        rc = rds_exec(db, &r, slot, NULL, RDS_RT_WRITE, rep, why, sizeof(why));
        if (rc != 0) {
            kvd_err_set(err, rc, "redis: batch: %s", why);
        } else {
            rc = rds_batch_result(db, rep, n, err);
            rds_replies_free(rep, (int)n + 2);
        }
    } else {
        kvd_err_set(err, rc, "redis: batch: out of memory");
    }
    rds_req_release(&r);
    free(rep);
    return rc;
}

static int
rds_maintain(kvd_engine *db, int op, struct kvd_err *err)
{
    char why[RDS_ERRMSG_BYTES];
    int rc;

    if (op != KVD_MAINT_EXPIRE) {
        /* Redis compacts nothing on request; memory is its own job */
        return kvd_err_set(err, KVD_ENOTSUP,
                           "redis: maintenance operation %d is not "
                           "supported",
                           op);
    }
    rc = rds_scan_delete(db, true, why, sizeof(why));
    if (rc != 0) {
        return kvd_err_set(err, rc, "redis: expire: %s", why);
    }
    return 0;
}

/* FLUSHDB on every master when kvd owns the whole database, else delete
 * the prefixed keys. Atomic per master, not across them. */
static int
rds_clear(kvd_engine *db, struct kvd_err *err)
{
    char why[RDS_ERRMSG_BYTES];
    struct rds_node **m = NULL;
    int nm = 0;
    int nrep = 0;
    int rc;

    if (db->prefix_len > 0) {
        rc = rds_scan_delete(db, false, why, sizeof(why));
        return rc == 0 ? 0 : kvd_err_set(err, rc, "redis: clear: %s", why);
    }
    rc = rds_masters(db, &m, &nm, &nrep);
    for (int i = 0; i < nm && rc == 0; i++) {
        redisReply *rep[2] = {NULL, NULL};
        struct rds_req r;

        rds_req_init(&r);
        rc = rds_cmd_words(&r, "FLUSHDB", NULL);
        if (rc == 0) {
            rc = rds_exec(db, &r, 0, m[i], RDS_RT_WRITE, rep, why, sizeof(why));
        }
        if (rc == 0 && rep[0]->type == REDIS_REPLY_ERROR) {
            snprintf(why, sizeof(why), "%s: FLUSHDB: %s", m[i]->name,
                     rep[0]->str);
            rc = KVD_EIO;
        }
        if (rc == 0) {
            rds_replies_free(rep, 1);
        }
        rds_req_release(&r);
    }
    free(m);
    return rc == 0 ? 0 : kvd_err_set(err, rc, "redis: clear: %s", why);
}

static uint32_t
rds_instance_caps(kvd_engine *db)
{
    return KVD_CAP_PERSISTENT | KVD_CAP_REMOTE |
           (db->cluster ? KVD_CAP_BATCH_PARTITIONED : KVD_CAP_ATOMIC_BATCH);
}

/* ------------------------------------------------------------ the vtable */

KVD_EXPORT const struct kvd_engine_vtable kvd_engine_entry = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_engine_vtable),
    .name = "redis",
    .version = RDS_ENGINE_VERSION,
    .description = "a Redis server or Redis Cluster (hiredis)",
    /* A plain server makes every batch atomic: see instance_caps. */
    .caps = KVD_CAP_PERSISTENT | KVD_CAP_REMOTE | KVD_CAP_BATCH_PARTITIONED,
    .max_key_bytes = RDS_MAX_VALUE,
    .max_value_bytes = RDS_MAX_VALUE,
    .options = rds_options,
    .options_size = sizeof(struct rds_opts),
    .open = rds_open,
    .close = rds_close,
    .get = rds_get,
    .put = rds_put,
    .del = rds_del,
    .batch = rds_batch,
    .iter_open = rds_iter_open,
    .iter_next = rds_iter_next,
    .iter_close = rds_iter_close,
    .stats = rds_stats,
    .maintain = rds_maintain,
    .clear = rds_clear,
    .instance_caps = rds_instance_caps,
    .multi = rds_multi,
    .check_options = rds_check_options,
};
