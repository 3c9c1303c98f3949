/*
 * tools/kvbench/kvb_kvd.c -- kvbench backend for kvd engine plugins.
 *
 * Loads the plugin through the core loader (by name from the plugin
 * directory, or by path), parses `--opt key=value` against the engine's own
 * option table with the core option parser (so the flags accept exactly
 * what an [engine] section of kvd.ini accepts), and opens it with the
 * default host services. By default every operation calls the engine
 * vtable directly, which measures the engine alone; with --store the same
 * operations go through the core's store wrappers (validation, TTL, stripe
 * locks, metrics), so the difference between the two runs is the wrapper
 * overhead.
 *
 * fillsync: when the engine declares an enum option `sync` with the choice
 * `always`, the database is opened with sync=always (the engine's own
 * durable-write path, group commit included) and plain puts are timed;
 * otherwise the engine's sync method is called after every put. The
 * report says which.
 *
 * Threading: see kvbench.h. The handle's fields change only in open and
 * close, which run while no workload thread exists.
 */
#include "kvbench.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hostsvc.h"
#include "core/loader.h"
#include "core/options.h"
#include "core/store.h"
#include "kvd/engine.h"

struct kvdb {
    const struct kvb_setup *setup;
    kvd_plugin *plugin;
    const struct kvd_engine_vtable *vt;
    const struct kvd_host *host;
    void *opts;       /* options as given */
    void *sync_opts;  /* options with sync=always, NULL when no such option */
    kvd_engine *e;    /* open engine (engine mode) */
    kvd_store *st;    /* open store (store mode) */
    bool opened_sync; /* the open handle has sync=always */
    char desc[PATH_MAX + 128];
    char sync_desc[128];
};

struct kvdb_iter {
    struct kvdb *db;
    kvd_iter *it;
};

static const char kvdb_sync_key[] = "sync";
static const char kvdb_sync_value[] = "always";

/* True when the table has an enum option `sync` with the choice `always`. */
static bool
kvdb_has_sync_option(const struct kvd_option *table)
{
    for (const struct kvd_option *o = table; o != NULL && o->name != NULL;
         o++) {
        if (strcmp(o->name, kvdb_sync_key) != 0 || o->type != KVD_OPT_ENUM ||
            o->choices == NULL) {
            continue;
        }
        for (const char *const *c = o->choices; *c != NULL; c++) {
            if (strcmp(*c, kvdb_sync_value) == 0) {
                return true;
            }
        }
    }
    return false;
}

/*
 * Parse the --opt pairs (minus any `sync`, plus sync=always when
 * force_sync) into a freshly allocated options struct. The section is
 * named "engine" and the "file" is "--opt", so a message reads
 * "--opt:2: [engine] key = value: expected ...", the 2 being the second
 * --opt flag.
 */
static int
kvdb_parse_opts(struct kvdb *db, bool force_sync, void **out,
                struct kvd_err *err)
{
    const struct kvd_engine_vtable *vt = db->vt;
    const struct kvb_setup *s = db->setup;
    struct kvd_conf_item *items = NULL;
    struct kvd_conf_section sec;
    void *dst = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    if (vt->options == NULL || vt->options_size == 0) {
        if (s->nopts > 0) {
            return kvd_err_set(err, KVD_ECONFIG,
                               "--opt %s=%s: engine %s has no options",
                               s->opts[0].key, s->opts[0].value, vt->name);
        }
        return 0;
    }
    items = calloc(s->nopts + 1, sizeof(*items));
    dst = calloc(1, vt->options_size);
    if (items == NULL || dst == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "out of memory for options");
        goto out;
    }
    for (size_t i = 0; i < s->nopts; i++) {
        if (force_sync && strcmp(s->opts[i].key, kvdb_sync_key) == 0) {
            continue;
        }
        /* The parser only reads the items; the casts drop a const that
         * kvd_conf_item does not carry because config.c owns its copies. */
        items[n].key = (char *)(uintptr_t)s->opts[i].key;
        items[n].value = (char *)(uintptr_t)s->opts[i].value;
        items[n].line = s->opts[i].index;
        n++;
    }
    if (force_sync) {
        items[n].key = (char *)(uintptr_t)kvdb_sync_key;
        items[n].value = (char *)(uintptr_t)kvdb_sync_value;
        items[n].line = 0;
        n++;
    }
    memset(&sec, 0, sizeof(sec));
    sec.name = (char *)(uintptr_t) "engine";
    sec.line = 0;
    sec.n = n;
    sec.items = items;
    sec.file = "--opt";
    rc = kvd_options_parse(vt->options, &sec, NULL, dst, err);
    if (rc != 0) {
        kvd_options_release(vt->options, dst);
        goto out;
    }
    *out = dst;
    dst = NULL;
out:
    free(dst);
    free(items);
    return rc;
}

static void
kvdb_free_opts(struct kvdb *db, void *opts)
{
    if (opts != NULL && db->vt->options != NULL) {
        kvd_options_release(db->vt->options, opts);
    }
    free(opts);
}

static const char *
kvdb_describe(void *b)
{
    return ((struct kvdb *)b)->desc;
}

static int
kvdb_open(void *b, const char *dir, bool syncmode, struct kvd_err *err)
{
    struct kvdb *db = b;
    struct kvd_store_limits limits = {0, 0};
    const void *opts = db->opts;
    int rc;

    db->opened_sync = syncmode && db->sync_opts != NULL;
    if (db->opened_sync) {
        opts = db->sync_opts;
    }
    if (db->setup->use_store) {
        rc = kvd_store_open(db->vt, opts, dir, db->host, &limits, &db->st, err);
    } else {
        rc = db->vt->open(db->host, opts, dir, &db->e, err);
    }
    if (rc != 0) {
        db->e = NULL;
        db->st = NULL;
    }
    return rc;
}

static int
kvdb_close(void *b, struct kvd_err *err)
{
    struct kvdb *db = b;
    int rc = 0;

    if (db->st != NULL) {
        rc = kvd_store_close(db->st, err);
    } else if (db->e != NULL) {
        rc = db->vt->close(db->e, err);
    }
    db->st = NULL;
    db->e = NULL;
    return rc;
}

static const char *
kvdb_sync_how(void *b)
{
    struct kvdb *db = b;

    if (db->opened_sync) {
        snprintf(db->sync_desc, sizeof(db->sync_desc),
                 "engine opened with sync=always");
    } else if (db->vt->sync != NULL) {
        snprintf(db->sync_desc, sizeof(db->sync_desc),
                 "%s sync() after every put",
                 db->setup->use_store ? "store" : "engine");
    } else {
        snprintf(db->sync_desc, sizeof(db->sync_desc),
                 "not durable: engine has no sync option or method");
    }
    return db->sync_desc;
}

/* This store's PERSISTENT capability: instance_caps when the engine has
 * it (the memory engine is persistent only with snapshot_path). */
static bool
kvdb_persistent(void *b)
{
    struct kvdb *db = b;

    if (db->st != NULL) {
        return (kvd_store_caps(db->st) & KVD_CAP_PERSISTENT) != 0;
    }
    if (db->vt->instance_caps != NULL && db->e != NULL) {
        return (db->vt->instance_caps(db->e) & KVD_CAP_PERSISTENT) != 0;
    }
    return (db->vt->caps & KVD_CAP_PERSISTENT) != 0;
}

static int
kvdb_put(void *b, const void *key, size_t klen, const void *val, size_t vlen,
         bool sync)
{
    struct kvdb *db = b;
    int rc;

    if (db->st != NULL) {
        rc =
            kvd_store_set(db->st, key, klen, val, vlen, KVD_NO_EXPIRY, 0, NULL);
        if (rc == 0 && sync && !db->opened_sync && db->vt->sync != NULL) {
            rc = kvd_store_sync(db->st, NULL);
        }
        return rc;
    }
    rc = db->vt->put(db->e, key, klen, val, vlen, KVD_NO_EXPIRY);
    if (rc == 0 && sync && !db->opened_sync && db->vt->sync != NULL) {
        rc = db->vt->sync(db->e, NULL);
    }
    return rc;
}

static int
kvdb_get(void *b, const void *key, size_t klen, size_t *vlen)
{
    struct kvdb *db = b;
    struct kvd_val v;
    int rc;

    memset(&v, 0, sizeof(v));
    if (db->st != NULL) {
        rc = kvd_store_get(db->st, key, klen, &v);
    } else {
        rc = db->vt->get(db->e, key, klen, &v);
    }
    if (rc == 0) {
        *vlen = v.len;
        kvd_val_release(&v);
    }
    return rc;
}

static int
kvdb_del(void *b, const void *key, size_t klen)
{
    struct kvdb *db = b;

    if (db->st != NULL) {
        return kvd_store_del(db->st, key, klen);
    }
    return db->vt->del(db->e, key, klen);
}

/* A one-op batch: engines answer a batch without looking the key up. */
static int
kvdb_del_blind(void *b, const void *key, size_t klen)
{
    struct kvdb *db = b;
    struct kvd_op op = {.type = KVD_OP_DEL, .key = key, .klen = klen};

    if (db->st != NULL) {
        return kvd_store_batch(db->st, &op, 1, NULL);
    }
    if (db->vt->batch == NULL) {
        return db->vt->del(db->e, key, klen);
    }
    return db->vt->batch(db->e, &op, 1, NULL);
}

static int
kvdb_iter_open(void *b, void **out, struct kvd_err *err)
{
    struct kvdb *db = b;
    struct kvd_iter_opts io;
    struct kvdb_iter *it;
    int rc;

    *out = NULL;
    it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory for an iterator");
    }
    it->db = db;
    memset(&io, 0, sizeof(io));
    if (db->st != NULL) {
        rc = kvd_store_iter_open(db->st, &io, &it->it, err);
    } else {
        rc = db->vt->iter_open(db->e, &io, &it->it, err);
    }
    if (rc != 0) {
        free(it);
        return rc;
    }
    *out = it;
    return 0;
}

static int
kvdb_iter_next(void *p, size_t *klen, size_t *vlen)
{
    struct kvdb_iter *it = p;
    struct kvd_entry ent;
    int rc;

    if (it->db->st != NULL) {
        rc = kvd_store_iter_next(it->db->st, it->it, &ent);
    } else {
        rc = it->db->vt->iter_next(it->it, &ent);
    }
    if (rc == 0) {
        *klen = ent.klen;
        *vlen = ent.vlen;
    }
    return rc;
}

static void
kvdb_iter_close(void *p)
{
    struct kvdb_iter *it = p;

    if (it == NULL) {
        return;
    }
    if (it->db->st != NULL) {
        kvd_store_iter_close(it->db->st, it->it);
    } else {
        it->db->vt->iter_close(it->it);
    }
    free(it);
}

static int
kvdb_compact(void *b, struct kvd_err *err)
{
    struct kvdb *db = b;

    if (db->vt->maintain == NULL) {
        return kvd_err_set(err, KVD_ENOTSUP, "engine %s has no compaction",
                           db->vt->name);
    }
    if (db->st != NULL) {
        return kvd_store_maintain(db->st, KVD_MAINT_COMPACT, err);
    }
    return db->vt->maintain(db->e, KVD_MAINT_COMPACT, err);
}

static int
kvdb_stats(void *b, struct kvb_stats *out, kvb_counter_fn fn, void *ctx)
{
    struct kvdb *db = b;
    struct kvd_engine_stats s;
    int rc;

    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    if (db->st != NULL) {
        rc = kvd_store_stats(db->st, &s, fn, ctx);
    } else {
        rc = db->vt->stats(db->e, &s, fn, ctx);
    }
    if (rc != 0) {
        return rc;
    }
    out->keys = s.keys;
    out->value_bytes = s.value_bytes;
    out->disk_bytes = s.disk_bytes;
    out->mem_bytes = s.mem_bytes;
    out->keys_how = "engine stats";
    return 0;
}

static void
kvdb_destroy(void *b)
{
    struct kvdb *db = b;

    if (db == NULL) {
        return;
    }
    kvdb_close(db, NULL);
    if (db->vt != NULL) {
        kvdb_free_opts(db, db->opts);
        kvdb_free_opts(db, db->sync_opts);
    }
    kvd_loader_close(db->plugin);
    free(db);
}

static const struct kvb_ops kvdb_ops = {
    .del_reports_absent = true,
    .describe = kvdb_describe,
    .open = kvdb_open,
    .close = kvdb_close,
    .sync_how = kvdb_sync_how,
    .persistent = kvdb_persistent,
    .put = kvdb_put,
    .get = kvdb_get,
    .del = kvdb_del,
    .del_blind = kvdb_del_blind,
    .iter_open = kvdb_iter_open,
    .iter_next = kvdb_iter_next,
    .iter_close = kvdb_iter_close,
    .compact = kvdb_compact,
    .stats = kvdb_stats,
    .destroy = kvdb_destroy,
};

int
kvb_kvd_create(const struct kvb_setup *s, const struct kvb_ops **ops,
               void **out, struct kvd_err *err)
{
    struct kvdb *db;
    const char *dir = NULL;
    const void *vt = NULL;
    int rc;

    *out = NULL;
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "out of memory");
    }
    db->setup = s;
    db->host = kvd_hostsvc_default();
    /* A name with a slash is a file; anything else is looked up by name
     * in the plugin directory, as the [engine] name of kvd.ini is. */
    if (strchr(s->engine, '/') != NULL) {
        rc = kvd_loader_open_path(s->engine, "engine", &db->plugin, &vt, err);
        db->vt = vt;
    } else {
        dir = s->plugin_dir != NULL ? s->plugin_dir : kvd_loader_default_dir();
        rc = kvd_loader_open_engine(dir, s->engine, &db->plugin, &db->vt, err);
    }
    if (rc != 0) {
        goto fail;
    }
    rc = kvdb_parse_opts(db, false, &db->opts, err);
    if (rc != 0) {
        goto fail;
    }
    if (kvdb_has_sync_option(db->vt->options)) {
        rc = kvdb_parse_opts(db, true, &db->sync_opts, err);
        if (rc != 0) {
            goto fail;
        }
    }
    if (dir != NULL) {
        snprintf(db->desc, sizeof(db->desc),
                 "kvd engine %s %s (%s/kvd_engine_%s.so) via the %s",
                 db->vt->name, db->vt->version ? db->vt->version : "", dir,
                 s->engine,
                 s->use_store ? "core store wrappers" : "engine vtable");
    } else {
        snprintf(db->desc, sizeof(db->desc), "kvd engine %s %s (%s) via the %s",
                 db->vt->name, db->vt->version ? db->vt->version : "",
                 s->engine,
                 s->use_store ? "core store wrappers" : "engine vtable");
    }
    *ops = &kvdb_ops;
    *out = db;
    return 0;
fail:
    kvdb_destroy(db);
    return rc;
}
