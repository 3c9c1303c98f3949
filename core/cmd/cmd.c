/*
 * core/cmd/cmd.c -- the command layer object: the command index, the
 * counters, the SCAN cursor ring, and the API table frontends get.
 *
 * The index: every command table (cmds_*.c, multi.c) is merged into one
 * array of entries at create time, top-level commands first, then the
 * subcommands of each container, and an open-addressing index of the
 * lowercase names finds a command case-insensitively without allocating.
 *
 * Counters: per frontend name (registered in a fixed table of
 * KVD_CMD_FRONTENDS slots when a session first names it), one block of
 * per-command counters per stripe; a thread picks its stripe once (round
 * robin) and keeps it, so threads rarely share a cache line, and a
 * session keeps its frontend's block, so counting a command takes no lock
 * and allocates nothing. INFO commandstats sums stripes and frontends;
 * kvd_cmd_frontend_stats() sums the stripes of each frontend.
 *
 * SCAN cursors of ordered engines: the iterator resumes by key, which does
 * not fit in a numeric cursor, so the layer keeps a bounded ring of
 * KVD_CMD_SCAN_SLOTS {cursor id -> next key}; cursor ids grow
 * monotonically, slot = id % KVD_CMD_SCAN_SLOTS, and a cursor whose slot
 * was reused by 1024 later SCAN calls is gone ("ERR invalid cursor").
 *
 * Locking: everything in struct kvd_cmd is fixed after create, except the
 * atomics (counters, client counts, ids), the scan ring (scan_lock), and
 * the session list and frontend table (sess_lock; the table's slots are
 * published through nfrontends, see cmd_int.h).
 */
#include "core/cmd.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/cmd/cmd_int.h"

/* Counter stripes are aligned to this (the usual cache line). */
#define CMD_CACHE_LINE 64

/* Stripe assignment is per thread and process-wide: which cache line a
 * thread writes does not depend on which kvd_cmd it uses. */
static atomic_uint cmd_next_stripe;
static _Thread_local unsigned cmd_stripe = UINT_MAX;

static unsigned
cmd_my_stripe(void)
{
    if (cmd_stripe == UINT_MAX) {
        cmd_stripe = atomic_fetch_add_explicit(&cmd_next_stripe, 1,
                                               memory_order_relaxed) %
                     KVD_CMD_STRIPES;
    }
    return cmd_stripe;
}

uint64_t
kvd_cmd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t
kvd_cmd_mono_ms(void)
{
    return (int64_t)(kvd_cmd_now_ns() / 1000000u);
}

/* --- the name index ------------------------------------------------------- */

static uint32_t
cmd_hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a over the lowercased name */

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + ('a' - 'A'));
        }
        h = (h ^ c) * 16777619u;
    }
    return h;
}

const struct kvd_cmd_entry *
kvd_cmd_entry_find(const kvd_cmd *c, const char *name, size_t n)
{
    if (n == 0 || n > KVD_CMD_NAME_MAX) {
        return NULL;
    }
    uint32_t h = cmd_hash(name, n) & (KVD_CMD_INDEX_SLOTS - 1);
    for (;;) {
        uint16_t v = c->index[h];
        if (v == 0) {
            return NULL;
        }
        const struct kvd_cmd_entry *e = &c->entries[v - 1];
        if (kvd_cmd_word_eq(name, n, e->def->name)) {
            return e;
        }
        h = (h + 1) & (KVD_CMD_INDEX_SLOTS - 1);
    }
}

const struct kvd_cmd_entry *
kvd_cmd_sub_find(const kvd_cmd *c, const struct kvd_cmd_entry *parent,
                 const char *name, size_t n)
{
    for (size_t i = 0; i < parent->nsub; i++) {
        const struct kvd_cmd_entry *e = &c->entries[parent->sub_first + i];
        if (kvd_cmd_word_eq(name, n, e->def->name)) {
            return e;
        }
    }
    return NULL;
}

size_t
kvd_cmd_entry_count(const kvd_cmd *c)
{
    return c->nentries;
}

const struct kvd_cmd_entry *
kvd_cmd_entry_at(const kvd_cmd *c, size_t i)
{
    return i < c->nentries ? &c->entries[i] : NULL;
}

static const struct kvd_cmd_def *const cmd_groups[] = {
    kvd_cmd_strings_defs, kvd_cmd_keys_defs,  kvd_cmd_conn_defs,
    kvd_cmd_server_defs,  kvd_cmd_multi_defs,
};

#define CMD_NGROUPS (sizeof(cmd_groups) / sizeof(cmd_groups[0]))

/*
 * Build entries[] (top-level commands first, in table order, then the
 * subcommands of each container) and the name index.
 */
static int
cmd_build_index(kvd_cmd *c, struct kvd_err *err)
{
    size_t ntop = 0;
    size_t nall = 0;

    for (size_t g = 0; g < CMD_NGROUPS; g++) {
        for (const struct kvd_cmd_def *d = cmd_groups[g]; d->name; d++) {
            ntop++;
            nall++;
            for (const struct kvd_cmd_def *s = d->subs; s && s->name; s++) {
                nall++;
            }
        }
    }
    if (ntop * 2 > KVD_CMD_INDEX_SLOTS || nall > UINT16_MAX) {
        return kvd_err_set(err, KVD_EINVAL, "command table too large");
    }
    c->entries = calloc(nall, sizeof(*c->entries));
    if (c->entries == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "command table: out of memory");
    }
    c->nentries = nall;

    size_t top = 0;
    size_t sub = ntop;
    for (size_t g = 0; g < CMD_NGROUPS; g++) {
        for (const struct kvd_cmd_def *d = cmd_groups[g]; d->name; d++) {
            struct kvd_cmd_entry *e = &c->entries[top];
            e->def = d;
            snprintf(e->fullname, sizeof(e->fullname), "%s", d->name);
            e->sub_first = sub;
            for (const struct kvd_cmd_def *s = d->subs; s && s->name; s++) {
                struct kvd_cmd_entry *se = &c->entries[sub++];
                se->def = s;
                se->parent = e;
                snprintf(se->fullname, sizeof(se->fullname), "%s|%s", d->name,
                         s->name);
                e->nsub++;
            }
            size_t n = strlen(d->name);
            uint32_t h = cmd_hash(d->name, n) & (KVD_CMD_INDEX_SLOTS - 1);
            while (c->index[h] != 0) {
                if (kvd_cmd_word_eq(d->name, n,
                                    c->entries[c->index[h] - 1].def->name)) {
                    return kvd_err_set(err, KVD_EINVAL,
                                       "command '%s' defined twice", d->name);
                }
                h = (h + 1) & (KVD_CMD_INDEX_SLOTS - 1);
            }
            c->index[h] = (uint16_t)(top + 1);
            top++;
        }
    }
    return 0;
}

/* --- create / destroy ------------------------------------------------------
 */

static char *
cmd_strdup(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

/* 40 hex characters, as Redis's run_id: changes at every start. */
static void
cmd_make_run_id(char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[20];

    if (getrandom(raw, sizeof(raw), GRND_NONBLOCK) != (ssize_t)sizeof(raw)) {
        /* No entropy yet (early boot): time and pid still differ per run. */
        uint64_t seed = kvd_cmd_now_ns() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < sizeof(raw); i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            raw[i] = (unsigned char)(seed >> 56);
        }
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[40] = '\0';
}

int
kvd_cmd_create(kvd_store *st, const struct kvd_cmd_config *cfg, kvd_cmd **out,
               struct kvd_err *err)
{
    kvd_cmd *c;
    int rc;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return kvd_err_set(err, KVD_ENOMEM, "command layer: out of memory");
    }
    c->st = st;
    pthread_mutex_init(&c->scan_lock, NULL);
    pthread_mutex_init(&c->sess_lock, NULL);
    if (cfg != NULL && cfg->requirepass != NULL && cfg->requirepass[0]) {
        c->requirepass = cmd_strdup(cfg->requirepass);
        c->requirepass_len = strlen(cfg->requirepass);
        if (c->requirepass == NULL) {
            rc = kvd_err_set(err, KVD_ENOMEM, "command layer: out of memory");
            goto out_destroy;
        }
    }
    c->version = cmd_strdup(cfg != NULL && cfg->version ? cfg->version : "");
    c->config_file =
        cmd_strdup(cfg != NULL && cfg->config_file ? cfg->config_file : "");
    c->save = cmd_strdup(cfg != NULL && cfg->save ? cfg->save : "");
    if (cfg != NULL && cfg->appendfsync != NULL) {
        c->appendfsync = cmd_strdup(cfg->appendfsync);
        if (c->appendfsync == NULL) {
            rc = kvd_err_set(err, KVD_ENOMEM, "command layer: out of memory");
            goto out_destroy;
        }
    }
    if (cfg != NULL) {
        c->tcp_port = cfg->tcp_port;
        c->maxclients = cfg->maxclients;
    }
    if (c->version == NULL || c->config_file == NULL || c->save == NULL) {
        rc = kvd_err_set(err, KVD_ENOMEM, "command layer: out of memory");
        goto out_destroy;
    }
    rc = cmd_build_index(c, err);
    if (rc != 0) {
        goto out_destroy;
    }
    /* Each stripe starts on a cache line (the counter blocks are
     * aligned, and a stripe's size is a multiple of CMD_CACHE_LINE). */
    c->stripe_len = c->nentries;
    while (c->stripe_len * sizeof(struct kvd_cmd_counters) % CMD_CACHE_LINE) {
        c->stripe_len++;
    }
    cmd_make_run_id(c->run_id);
    c->start_ms = kvd_store_now_ms(st);
    *out = c;
    return 0;

out_destroy:
    kvd_cmd_destroy(c);
    return rc;
}

void
kvd_cmd_destroy(kvd_cmd *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < KVD_CMD_FRONTENDS; i++) {
        free(c->fe_ctr[i]);
    }
    for (size_t i = 0; i < KVD_CMD_SCAN_SLOTS; i++) {
        free(c->scan[i].key);
    }
    pthread_mutex_destroy(&c->scan_lock);
    pthread_mutex_destroy(&c->sess_lock);
    free(c->entries);
    free(c->requirepass);
    free(c->version);
    free(c->config_file);
    free(c->appendfsync);
    free(c->save);
    free(c);
}

/* --- per-frontend counters ---------------------------------------------
 */

/*
 * The counter block of frontend `name`, registering the name (and
 * allocating its zeroed block) the first time it is seen; NULL when out
 * of memory. Once the table's last free slot is reached, every new name
 * shares the KVD_CMD_FRONTEND_OTHER slot. Expects c->sess_lock held (the
 * only writer of the table); readers rely on the release store of
 * nfrontends (see struct kvd_cmd).
 */
struct kvd_cmd_counters *
kvd_cmd_frontend_counters_locked(kvd_cmd *c, const char *name)
{
    unsigned n = atomic_load_explicit(&c->nfrontends, memory_order_relaxed);

    for (unsigned i = 0; i < n; i++) {
        if (strcmp(c->fe_name[i], name) == 0) {
            return c->fe_ctr[i];
        }
    }
    /* Only "other" may take the last slot, so it is always there for the
     * names that no longer fit. */
    if (n >= KVD_CMD_FRONTENDS - 1 &&
        strcmp(name, KVD_CMD_FRONTEND_OTHER) != 0) {
        return kvd_cmd_frontend_counters_locked(c, KVD_CMD_FRONTEND_OTHER);
    }
    size_t bytes =
        KVD_CMD_STRIPES * c->stripe_len * sizeof(struct kvd_cmd_counters);
    struct kvd_cmd_counters *blk = aligned_alloc(CMD_CACHE_LINE, bytes);
    if (blk == NULL) {
        return NULL;
    }
    memset(blk, 0, bytes);
    snprintf(c->fe_name[n], sizeof(c->fe_name[n]), "%s", name);
    c->fe_ctr[n] = blk;
    atomic_store_explicit(&c->nfrontends, n + 1, memory_order_release);
    return blk;
}

/* --- counters ----------------------------------------------------------------
 */

struct kvd_cmd_counters *
kvd_cmd_counters_of(const kvd_session *s, const struct kvd_cmd_entry *e)
{
    const kvd_cmd *c = s->cmd;
    return &s->ctr[cmd_my_stripe() * c->stripe_len + (size_t)(e - c->entries)];
}

/* Add the stripes of command i in counter block blk to st (nsec in
 * *nsec; usec is left alone). */
static void
cmd_sum_stripes(const kvd_cmd *c, struct kvd_cmd_counters *blk, size_t i,
                struct kvd_cmd_stat *st, uint64_t *nsec)
{
    for (size_t k = 0; k < KVD_CMD_STRIPES; k++) {
        struct kvd_cmd_counters *ct = &blk[k * c->stripe_len + i];
        st->calls += atomic_load_explicit(&ct->calls, memory_order_relaxed);
        *nsec += atomic_load_explicit(&ct->nsec, memory_order_relaxed);
        st->failed_calls +=
            atomic_load_explicit(&ct->failed, memory_order_relaxed);
        st->rejected_calls +=
            atomic_load_explicit(&ct->rejected, memory_order_relaxed);
    }
}

size_t
kvd_cmd_stats(kvd_cmd *c, bool all, kvd_cmd_stat_sum_fn fn, void *ctx)
{
    unsigned nfe = atomic_load_explicit(&c->nfrontends, memory_order_acquire);
    size_t reported = 0;

    for (size_t i = 0; i < c->nentries; i++) {
        const struct kvd_cmd_entry *e = &c->entries[i];
        struct kvd_cmd_stat st = {.name = e->fullname};
        uint64_t nsec = 0;
        for (unsigned f = 0; f < nfe; f++) {
            cmd_sum_stripes(c, c->fe_ctr[f], i, &st, &nsec);
        }
        st.usec = nsec / 1000u;
        if (!all && st.calls == 0 && st.rejected_calls == 0) {
            continue;
        }
        fn(ctx, &st);
        reported++;
    }
    return reported;
}

int
kvd_cmd_frontend_stats(kvd_cmd *c, kvd_cmd_stat_fn fn, void *ctx)
{
    unsigned nfe = atomic_load_explicit(&c->nfrontends, memory_order_acquire);
    int reported = 0;

    for (unsigned f = 0; f < nfe; f++) {
        for (size_t i = 0; i < c->nentries; i++) {
            struct kvd_cmd_stat st = {.name = c->entries[i].fullname};
            uint64_t nsec = 0;
            cmd_sum_stripes(c, c->fe_ctr[f], i, &st, &nsec);
            /* The client's view: a refused call is a call that failed. */
            uint64_t calls = st.calls + st.rejected_calls;
            if (calls == 0) {
                continue;
            }
            fn(ctx, c->fe_name[f], st.name, calls,
               st.failed_calls + st.rejected_calls, nsec / 1000u);
            if (reported < INT_MAX) {
                reported++;
            }
        }
    }
    return reported;
}

void
kvd_cmd_stats_reset(kvd_cmd *c)
{
    unsigned nfe = atomic_load_explicit(&c->nfrontends, memory_order_acquire);

    for (unsigned f = 0; f < nfe; f++) {
        size_t n = KVD_CMD_STRIPES * c->stripe_len;
        for (size_t i = 0; i < n; i++) {
            struct kvd_cmd_counters *ct = &c->fe_ctr[f][i];
            atomic_store_explicit(&ct->calls, 0, memory_order_relaxed);
            atomic_store_explicit(&ct->nsec, 0, memory_order_relaxed);
            atomic_store_explicit(&ct->failed, 0, memory_order_relaxed);
            atomic_store_explicit(&ct->rejected, 0, memory_order_relaxed);
        }
    }
}

/* --- SCAN cursors of ordered engines ----------------------------------------
 */

uint64_t
kvd_cmd_scan_save(kvd_cmd *c, const void *key, size_t klen)
{
    void *copy = malloc(klen > 0 ? klen : 1);
    uint64_t id;

    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, key, klen);
    pthread_mutex_lock(&c->scan_lock);
    id = ++c->scan_next;
    struct kvd_cmd_scan_slot *sl = &c->scan[id % KVD_CMD_SCAN_SLOTS];
    free(sl->key);
    sl->id = id;
    sl->key = copy;
    sl->klen = klen;
    pthread_mutex_unlock(&c->scan_lock);
    return id;
}

int
kvd_cmd_scan_take(kvd_cmd *c, uint64_t id, void **key, size_t *klen)
{
    int rc = KVD_ENOTFOUND;

    pthread_mutex_lock(&c->scan_lock);
    struct kvd_cmd_scan_slot *sl = &c->scan[id % KVD_CMD_SCAN_SLOTS];
    /* The entry stays: a client may repeat a SCAN call with a cursor. */
    if (sl->id == id && id != 0) {
        *key = malloc(sl->klen > 0 ? sl->klen : 1);
        if (*key == NULL) {
            rc = KVD_ENOMEM;
        } else {
            memcpy(*key, sl->key, sl->klen);
            *klen = sl->klen;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&c->scan_lock);
    return rc;
}

/* --- the table frontends get -------------------------------------------------
 */

/* The first edition's deferred execution, kept as the contract allows:
 * batch_create says "gathering gains nothing" (NULL), so a frontend built
 * against it runs every command with exec and never calls the rest. */
static kvd_cmd_batch *
cmd_batch_create(kvd_cmd *c)
{
    (void)c;
    return NULL;
}

static void
cmd_batch_destroy(kvd_cmd_batch *b)
{
    (void)b;
}

static int
cmd_defer(kvd_cmd_batch *b, kvd_session *s, size_t argc,
          const char *const *argv, const size_t *argl)
{
    (void)b;
    (void)s;
    (void)argc;
    (void)argv;
    (void)argl;
    return KVD_ENOTSUP;
}

static size_t
cmd_batch_count(const kvd_cmd_batch *b)
{
    (void)b;
    return 0;
}

static void
cmd_batch_run(kvd_cmd_batch *b)
{
    (void)b;
}

static void
cmd_batch_reply(kvd_cmd_batch *b, size_t ticket,
                const struct kvd_reply_ops *ops, void *w)
{
    (void)b;
    (void)ticket;
    (void)ops;
    (void)w;
}

static void
cmd_batch_clear(kvd_cmd_batch *b)
{
    (void)b;
}

/* kvd_cmd_api.listening: only the RESP frontend's port is Redis's
 * tcp_port. */
static void
cmd_listening(kvd_cmd *c, const char *frontend, int port)
{
    if (c != NULL && frontend != NULL && strcmp(frontend, "resp") == 0 &&
        port > 0 && port <= 65535) {
        atomic_store_explicit(&c->tcp_bound, port, memory_order_relaxed);
    }
}

static const struct kvd_cmd_api cmd_api = {
    .abi_version = KVD_ABI_VERSION,
    .struct_size = sizeof(struct kvd_cmd_api),
    .session_create = kvd_cmd_session_create,
    .session_destroy = kvd_cmd_session_destroy,
    .exec = kvd_cmd_exec,
    .split = kvd_cmd_split,
    .session_set_password = kvd_cmd_session_set_password,
    .session_proto = kvd_cmd_session_proto,
    .stats = kvd_cmd_frontend_stats,
    .batch_create = cmd_batch_create,
    .batch_destroy = cmd_batch_destroy,
    .defer = cmd_defer,
    .batch_count = cmd_batch_count,
    .batch_run = cmd_batch_run,
    .batch_reply = cmd_batch_reply,
    .batch_clear = cmd_batch_clear,
    .session_open = kvd_cmd_session_open,
    .call = kvd_cmd_call,
    .pass_create = kvd_cmd_pass_create,
    .pass_end = kvd_cmd_pass_end,
    .pass_pending = kvd_cmd_pass_pending,
    .pass_destroy = kvd_cmd_pass_destroy,
    .clients = kvd_cmd_frontend_clients,
    .listening = cmd_listening,
};

const struct kvd_cmd_api *
kvd_cmd_api_table(void)
{
    return &cmd_api;
}
