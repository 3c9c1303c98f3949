/*
 * engines/redis/rds_stats.c -- engine statistics of the redis engine.
 *
 * keys: with stats = dbsize, DBSIZE summed over the masters (one cheap
 * round trip per master; it counts every key of the database, whatever its
 * prefix, and keys Redis has not expired yet); with stats = scan, a SCAN
 * of this deployment's keys (exact, including key and value bytes, and
 * kvd's clock for expiry, but it reads every key). mem_bytes: used_memory
 * summed over the masters. Through the callback: masters, replicas,
 * slot-map refreshes, redirects, retries, connections, timeouts,
 * pipeline_writes / pipeline_requests (their ratio: requests per write),
 * and multi_calls / multi_ops / multi_ops_alone (operations of multi()
 * calls, and those of them run alone after a redirect or node error).
 *
 * Nothing here locks beyond what rds_masters and rds_exec take.
 */
#include "rds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DBSIZE and INFO memory of one master. */
static int
rds_stats_master(kvd_engine *db, struct rds_node *n, uint64_t *keys,
                 uint64_t *mem, char *why, size_t whylen)
{
    redisReply *rep[2] = {NULL, NULL};
    struct rds_req r;
    const char *p;
    int rc;

    rds_req_init(&r);
    rds_cmd_words(&r, "DBSIZE", NULL);
    rc = rds_cmd_words(&r, "INFO", "memory", NULL);
    if (rc == 0) {
        rc = rds_exec(db, &r, 0, n, 0, rep, why, whylen);
    }
    rds_req_release(&r);
    if (rc != 0) {
        return rc;
    }
    if (rep[0]->type == REDIS_REPLY_INTEGER && rep[0]->integer > 0) {
        *keys += (uint64_t)rep[0]->integer;
    }
    if (rep[1]->type == REDIS_REPLY_STRING &&
        (p = strstr(rep[1]->str, "\nused_memory:")) != NULL) {
        *mem += strtoull(p + 13, NULL, 10);
    }
    rds_replies_free(rep, 2);
    return 0;
}

int
rds_stats(kvd_engine *db, struct kvd_engine_stats *st, kvd_stat_fn fn,
          void *ctx)
{
    char why[RDS_ERRMSG_BYTES];
    struct rds_node **m = NULL;
    uint64_t dbsize = 0;
    uint64_t mem = 0;
    int nm = 0;
    int nrep = 0;
    int rc;

    rc = rds_masters(db, &m, &nm, &nrep);
    for (int i = 0; i < nm && rc == 0; i++) {
        rc = rds_stats_master(db, m[i], &dbsize, &mem, why, sizeof(why));
    }
    free(m);
    if (rc != 0) {
        rds_warn(db, "stats: %s", why);
        return rc;
    }
    st->keys = dbsize;
    st->key_bytes = 0;
    st->value_bytes = 0;
    if (db->o->stats == RDS_STATS_SCAN) {
        struct rds_scan_acc acc;

        rc = rds_scan_count(db, &acc, why, sizeof(why));
        if (rc != 0) {
            rds_warn(db, "stats: %s", why);
            return rc;
        }
        st->keys = acc.keys;
        st->key_bytes = acc.key_bytes;
        st->value_bytes = acc.value_bytes;
    }
    st->disk_bytes = 0;
    st->mem_bytes = mem;
    st->readonly = 0;
    st->ready = 1;
    st->state[0] = '\0';
    if (fn == NULL) {
        return 0;
    }
    fn(ctx, "cluster", db->cluster ? 1 : 0);
    fn(ctx, "masters", (uint64_t)nm);
    fn(ctx, "replicas", (uint64_t)nrep);
    fn(ctx, "dbsize", dbsize);
    fn(ctx, "used_memory", mem);
    fn(ctx, "slot_map_refreshes_total", atomic_load(&db->c.refreshes));
    fn(ctx, "moved_redirects_total", atomic_load(&db->c.moved));
    fn(ctx, "ask_redirects_total", atomic_load(&db->c.ask));
    fn(ctx, "retries_total", atomic_load(&db->c.retries));
    fn(ctx, "connects_total", atomic_load(&db->c.connects));
    fn(ctx, "connection_errors_total", atomic_load(&db->c.conn_errors));
    fn(ctx, "timeouts_total", atomic_load(&db->c.timeouts));
    fn(ctx, "durability_wait_short_total", atomic_load(&db->c.wait_short));
    fn(ctx, "crossslot_batches_total", atomic_load(&db->c.crossslot));
    fn(ctx, "pipeline_writes_total", atomic_load(&db->c.flushes));
    fn(ctx, "pipeline_requests_total", atomic_load(&db->c.piped));
    fn(ctx, "multi_calls_total", atomic_load(&db->c.multi_calls));
    fn(ctx, "multi_ops_total", atomic_load(&db->c.multi_ops));
    fn(ctx, "multi_ops_alone_total", atomic_load(&db->c.multi_alone));
    return 0;
}
