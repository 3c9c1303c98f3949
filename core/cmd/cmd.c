/*
 * core/cmd/cmd.c -- the command layer: table, lookup, sessions, exec, counters.
 *
 * Every frontend executes commands through kvd_cmd_exec(). It finds the
 * command (case-insensitive, no allocation: an open-addressing index of
 * the lowercase names built at create time), checks arity, then AUTH, in
 * that order (so a wrong command is reported as such even before AUTH),
 * runs the handler and counts the call.
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
#include "core/log.h"

/* Bytes of arguments quoted in "unknown command" errors (as Redis). */
#define CMD_UNKNOWN_ARGS_BYTES 128

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

static const struct kvd_cmd_entry *
cmd_sub_find(const kvd_cmd *c, const struct kvd_cmd_entry *parent,
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
    kvd_cmd_strings_defs,
    kvd_cmd_keys_defs,
    kvd_cmd_server_defs,
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
    if (c->version == NULL || c->config_file == NULL) {
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
    free(c);
}

/* --- sessions ----------------------------------------------------------------
 */

/*
 * The counter block of frontend `name`, registering the name (and
 * allocating its zeroed block) the first time it is seen; NULL when out
 * of memory. Once the table's last free slot is reached, every new name
 * shares the KVD_CMD_FRONTEND_OTHER slot. Expects c->sess_lock held (the
 * only writer of the table); readers rely on the release store of
 * nfrontends (see struct kvd_cmd).
 */
static struct kvd_cmd_counters *
cmd_frontend_counters_locked(kvd_cmd *c, const char *name)
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
        return cmd_frontend_counters_locked(c, KVD_CMD_FRONTEND_OTHER);
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

kvd_session *
kvd_cmd_session_create(kvd_cmd *c, const char *frontend, unsigned flags)
{
    kvd_session *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->cmd = c;
    s->id =
        atomic_fetch_add_explicit(&c->next_client_id, 1, memory_order_relaxed) +
        1;
    s->flags = flags;
    s->pass = c->requirepass;
    s->pass_len = c->requirepass_len;
    s->authed = kvd_cmd_session_auth_free(s);
    s->proto = 2;
    s->created_ms = (int64_t)(kvd_cmd_now_ns() / 1000000u);
    atomic_init(&s->last_ms, s->created_ms);
    snprintf(s->frontend, sizeof(s->frontend), "%s",
             frontend != NULL ? frontend : "");
    pthread_mutex_lock(&c->sess_lock);
    s->ctr = cmd_frontend_counters_locked(
        c, s->frontend[0] ? s->frontend : KVD_CMD_FRONTEND_UNKNOWN);
    if (s->ctr == NULL) {
        pthread_mutex_unlock(&c->sess_lock);
        free(s);
        return NULL;
    }
    s->next = c->sess_head;
    if (c->sess_head != NULL) {
        c->sess_head->prev = s;
    }
    c->sess_head = s;
    pthread_mutex_unlock(&c->sess_lock);
    atomic_fetch_add_explicit(&c->clients_connected, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->clients_total, 1, memory_order_relaxed);
    return s;
}

void
kvd_cmd_session_destroy(kvd_session *s)
{
    if (s == NULL) {
        return;
    }
    kvd_cmd *c = s->cmd;
    pthread_mutex_lock(&c->sess_lock);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        c->sess_head = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&c->sess_lock);
    atomic_fetch_sub_explicit(&c->clients_connected, 1, memory_order_relaxed);
    free(s->pass_copy);
    free(s);
}

void
kvd_cmd_session_set_password(kvd_session *s, const char *password, size_t len)
{
    free(s->pass_copy);
    s->pass_copy = NULL;
    s->pass_locked = false;
    s->pass = s->cmd->requirepass;
    s->pass_len = s->cmd->requirepass_len;
    if (password != NULL && len > 0) {
        s->pass_copy = malloc(len);
        if (s->pass_copy != NULL) {
            memcpy(s->pass_copy, password, len);
            s->pass = s->pass_copy;
            s->pass_len = len;
        } else {
            /* Out of memory: refuse every AUTH rather than let the
             * session in without the password it was meant to need. */
            s->pass = NULL;
            s->pass_len = 0;
            s->pass_locked = true;
        }
    }
    s->authed = kvd_cmd_session_auth_free(s);
}

int
kvd_cmd_session_proto(const kvd_session *s)
{
    return s->proto;
}

bool
kvd_cmd_session_has_password(const kvd_session *s)
{
    return s->pass != NULL || s->pass_locked;
}

bool
kvd_cmd_session_auth_free(const kvd_session *s)
{
    return (s->flags & KVD_SESSION_TRUSTED) || !kvd_cmd_session_has_password(s);
}

bool
kvd_cmd_password_ok(const kvd_session *s, const char *p, size_t n)
{
    unsigned char diff;

    if (s->pass == NULL) {
        return false; /* none, or locked after a failed copy */
    }
    /* Every byte of the attempt is compared, whatever matched before, and
     * the loop runs over the attempt's length (which the client knows):
     * the time shows neither where the first difference is nor the
     * password's length. pass_len > 0 here, so pass[0] is readable. */
    diff = (unsigned char)(n != s->pass_len);
    for (size_t i = 0; i < n; i++) {
        unsigned char want = (unsigned char)s->pass[i < s->pass_len ? i : 0];
        diff |= (unsigned char)(want ^ (unsigned char)p[i]);
    }
    return diff == 0;
}

uint64_t
kvd_cmd_clients_connected(kvd_cmd *c)
{
    return atomic_load_explicit(&c->clients_connected, memory_order_relaxed);
}

uint64_t
kvd_cmd_clients_total(kvd_cmd *c)
{
    return atomic_load_explicit(&c->clients_total, memory_order_relaxed);
}

/* --- exec --------------------------------------------------------------------
 */

/* Length of an argument up to its first NUL, as a C string would read. */
static size_t
cmd_cstr_len(const char *p, size_t n)
{
    const char *z = memchr(p, '\0', n);
    return z != NULL ? (size_t)(z - p) : n;
}

static void
cmd_reply_unknown(struct kvd_cmd_ctx *x)
{
    char args[CMD_UNKNOWN_ARGS_BYTES + 8];
    size_t len = 0;

    args[0] = '\0';
    for (size_t i = 1; i < x->argc && len < CMD_UNKNOWN_ARGS_BYTES; i++) {
        int room = (int)(CMD_UNKNOWN_ARGS_BYTES - len);
        int alen = (int)cmd_cstr_len(x->argv[i], x->argl[i]);
        int n = snprintf(args + len, sizeof(args) - len, "'%.*s' ",
                         alen < room ? alen : room, x->argv[i]);
        if (n < 0) {
            break;
        }
        len += (size_t)n;
        if (len >= sizeof(args)) {
            len = sizeof(args) - 1;
        }
    }
    int nlen = (int)cmd_cstr_len(x->argv[0], x->argl[0]);
    kvd_cmd_reply_errorf(
        x, "ERR unknown command '%.*s', with args beginning with: %s",
        nlen < 128 ? nlen : 128, x->argv[0], args);
}

static void
cmd_reply_unknown_sub(struct kvd_cmd_ctx *x)
{
    char upper[KVD_CMD_NAME_MAX + 1];
    size_t n = x->argl[0] < KVD_CMD_NAME_MAX ? x->argl[0] : KVD_CMD_NAME_MAX;
    int slen = (int)cmd_cstr_len(x->argv[1], x->argl[1]);

    for (size_t i = 0; i < n; i++) {
        char ch = x->argv[0][i];
        upper[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
    }
    upper[n] = '\0';
    kvd_cmd_reply_errorf(x, "ERR unknown subcommand '%.*s'. Try %s HELP.",
                         slen < 128 ? slen : 128, x->argv[1], upper);
}

static bool
cmd_arity_ok(int arity, size_t argc)
{
    if (arity >= 0) {
        return argc == (size_t)arity;
    }
    return argc >= (size_t)-arity;
}

/* This thread's counters of command e on the session's frontend. */
struct kvd_cmd_counters *
kvd_cmd_counters_of(const kvd_session *s, const struct kvd_cmd_entry *e)
{
    const kvd_cmd *c = s->cmd;
    return &s->ctr[cmd_my_stripe() * c->stripe_len + (size_t)(e - c->entries)];
}

int
kvd_cmd_exec(kvd_session *s, size_t argc, const char *const *argv,
             const size_t *argl, const struct kvd_reply_ops *ops, void *w)
{
    kvd_cmd *c = s->cmd;
    struct kvd_cmd_ctx x = {
        .cmd = c,
        .sess = s,
        .st = c->st,
        .ops = ops,
        .w = w,
        .argc = argc,
        .argv = argv,
        .argl = argl,
    };
    const struct kvd_cmd_entry *e;

    kvd_store_metric_add(c->st, KVD_M_COMMANDS, 1);
    if (argc == 0) {
        kvd_cmd_reply_error(&x, "ERR empty command");
        return 0;
    }
    e = kvd_cmd_entry_find(c, argv[0], argl[0]);
    if (e == NULL) {
        atomic_fetch_add_explicit(&c->unknown_commands, 1,
                                  memory_order_relaxed);
        cmd_reply_unknown(&x);
        return 0;
    }
    x.ent = e;
    if (e->nsub > 0) {
        if (argc < 2) {
            atomic_fetch_add_explicit(&kvd_cmd_counters_of(s, e)->rejected, 1,
                                      memory_order_relaxed);
            kvd_cmd_reply_arity(&x);
            return 0;
        }
        const struct kvd_cmd_entry *se = cmd_sub_find(c, e, argv[1], argl[1]);
        if (se == NULL) {
            atomic_fetch_add_explicit(&kvd_cmd_counters_of(s, e)->rejected, 1,
                                      memory_order_relaxed);
            cmd_reply_unknown_sub(&x);
            return 0;
        }
        e = se;
        x.ent = e;
    }
    struct kvd_cmd_counters *ctr = kvd_cmd_counters_of(s, e);
    if (!cmd_arity_ok(e->def->arity, argc)) {
        atomic_fetch_add_explicit(&ctr->rejected, 1, memory_order_relaxed);
        kvd_cmd_reply_arity(&x);
        return 0;
    }
    if (!s->authed) {
        unsigned f = e->def->flags;
        if (e->parent != NULL) {
            f |= e->parent->def->flags & KVD_CMDF_NOAUTH;
        }
        if (!(f & KVD_CMDF_NOAUTH)) {
            atomic_fetch_add_explicit(&ctr->rejected, 1, memory_order_relaxed);
            kvd_cmd_reply_error(&x, KVD_CMD_ERR_NOAUTH);
            return 0;
        }
    }
    uint64_t t0 = kvd_cmd_now_ns();
    e->def->fn(&x);
    uint64_t t1 = kvd_cmd_now_ns();
    atomic_store_explicit(&s->last_ms, (int64_t)(t1 / 1000000u),
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->calls, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->nsec, t1 - t0, memory_order_relaxed);
    if (x.failed) {
        atomic_fetch_add_explicit(&ctr->failed, 1, memory_order_relaxed);
    }
    return x.result;
}

/* --- counters ----------------------------------------------------------------
 */

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
    .batch_create = kvd_cmd_batch_create,
    .batch_destroy = kvd_cmd_batch_destroy,
    .defer = kvd_cmd_defer,
    .batch_count = kvd_cmd_batch_count,
    .batch_run = kvd_cmd_batch_run,
    .batch_reply = kvd_cmd_batch_reply,
    .batch_clear = kvd_cmd_batch_clear,
};

const struct kvd_cmd_api *
kvd_cmd_api_table(void)
{
    return &cmd_api;
}
