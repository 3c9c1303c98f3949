/*
 * frontends/http/http_ops.c -- the operational routes of the http frontend
 * (/healthz, /readyz, /metrics) and the counters behind /metrics.
 *
 * Counting takes no lock: a worker thread adds to its own slot of
 * fe->ctr (picked once per thread, round robin), with relaxed atomics
 * because two threads may share a slot when there are more threads than
 * slots. /metrics sums the slots; a scrape racing with requests may see a
 * request in one counter and not yet in another, which Prometheus
 * tolerates.
 *
 * The exposition is the Prometheus text format 0.0.4, by the Prometheus
 * naming conventions (base units, _total for counters, HELP and TYPE for
 * every family, no family printed twice): kvd_build_info and the
 * process_* metrics, the core's counters and gauges
 * (store_api->metrics), each engine stat as its own family (typed and
 * converted to seconds by its name, see engine_family), connected
 * clients by frontend (cmd_api->clients), the command layer's counters
 * by frontend and command (cmd_api->stats: what resp and stdin clients
 * ran; a host whose cmd_api predates a method just leaves its families
 * out), and this frontend's requests by command and status and its
 * latency histogram.
 */
#include "http.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cmd_names[] = {
#define HTTP_XX_NAME(id, name) name,
    HTTP_CMD_MAP(HTTP_XX_NAME)
#undef HTTP_XX_NAME
};

static const unsigned code_list[] = {HTTP_CODES};
static const uint64_t hist_bounds_ns[] = {HTTP_HIST_BOUNDS_NS};

_Static_assert(sizeof(code_list) / sizeof(code_list[0]) + 1 == HTTP_CODE_COUNT,
               "HTTP_CODE_COUNT must be the code list plus one");
_Static_assert(sizeof(hist_bounds_ns) / sizeof(hist_bounds_ns[0]) + 1 ==
                   HTTP_HIST_BUCKETS,
               "HTTP_HIST_BUCKETS must be the bounds plus one");

static atomic_uint slot_next;
static _Thread_local unsigned slot_mine = UINT_MAX;

static struct http_ctr_slot *
my_slot(struct http_fe *fe)
{
    if (slot_mine == UINT_MAX) {
        slot_mine = atomic_fetch_add(&slot_next, 1) % HTTP_CTR_SLOTS;
    }
    return &fe->ctr[slot_mine];
}

static unsigned
code_index(unsigned status)
{
    for (unsigned i = 0; i < HTTP_CODE_COUNT - 1; i++) {
        if (code_list[i] == status) {
            return i;
        }
    }
    return HTTP_CODE_COUNT - 1;
}

void
http_count(struct http_fe *fe, int cmd, unsigned status, int64_t elapsed_ns)
{
    struct http_ctr_slot *s = my_slot(fe);
    unsigned b = 0;

    if (elapsed_ns < 0) {
        elapsed_ns = 0;
    }
    while (b < HTTP_HIST_BUCKETS - 1 &&
           (uint64_t)elapsed_ns > hist_bounds_ns[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&s->req[cmd][code_index(status)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->hist[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns, (uint64_t)elapsed_ns,
                              memory_order_relaxed);
}

/* ---- /healthz, /readyz --------------------------------------------------- */

void
http_healthz(struct http_req *r)
{
    static const char ok[] = "{\"status\":\"ok\"}\n";

    r->cmd = HTTP_CMD_HEALTHZ;
    http_send_body(r, 200, "application/json", ok, sizeof(ok) - 1, NULL, NULL);
}

void
http_readyz(struct http_req *r)
{
    char why[160], msg[200];

    r->cmd = HTTP_CMD_READYZ;
    /* A server shutting down is alive but takes no new work: load
     * balancers should stop sending. */
    if (atomic_load(&r->fe->stopping)) {
        http_send_error(r, 503, "not ready: shutting down");
        return;
    }
    if (!http_ready(r->fe, why, sizeof(why), 1)) {
        snprintf(msg, sizeof(msg), "not ready: %s", why);
        http_send_error(r, 503, msg);
        return;
    }
    http_send_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

/* ---- /metrics ------------------------------------------------------------ */

/* A growable text buffer; on allocation failure `bad` is set and later
 * appends do nothing. */
struct mbuf {
    char *p;
    size_t len;
    size_t cap;
    int bad;
};

static void __attribute__((format(printf, 2, 3)))
mb_printf(struct mbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->bad) {
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->bad = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        char *np = realloc(b->p, b->cap * 2 + (size_t)n);
        if (np == NULL) {
            b->bad = 1;
            return;
        }
        b->p = np;
        b->cap = b->cap * 2 + (size_t)n;
    }
}

/* The store's metrics, gathered by name before printing (families must
 * be contiguous in the exposition). */
#define STAT_MAX 256

struct stat_set {
    size_t n;
    struct {
        char name[64];
        uint64_t v;
    } s[STAT_MAX];
};

static void
stat_collect(void *ctx, const char *name, uint64_t value)
{
    struct stat_set *set = ctx;
    if (set->n < STAT_MAX) {
        snprintf(set->s[set->n].name, sizeof(set->s[set->n].name), "%s", name);
        set->s[set->n].v = value;
        set->n++;
    }
}

static const uint64_t *
stat_get(const struct stat_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->s[i].name, name) == 0) {
            return &set->s[i].v;
        }
    }
    return NULL;
}

/* Core metrics with a fixed exposition name. */
static const struct {
    const char *stat;
    const char *metric;
    const char *type;
    const char *help;
} core_metrics[] = {
    {"keyspace_hits", "kvd_keyspace_hits_total", "counter",
     "reads that found their key"},
    {"keyspace_misses", "kvd_keyspace_misses_total", "counter",
     "reads that did not find their key"},
    {"expired_keys", "kvd_expired_keys_total", "counter", "keys found expired"},
    {"errors", "kvd_errors_total", "counter", "operations that failed"},
    {"keys", "kvd_keys", "gauge", "live keys"},
    {"key_bytes", "kvd_key_bytes", "gauge", "bytes of live keys"},
    {"value_bytes", "kvd_value_bytes", "gauge", "bytes of live values"},
    {"disk_bytes", "kvd_disk_bytes", "gauge", "bytes of the engine's files"},
    {"engine_mem_bytes", "kvd_engine_memory_bytes", "gauge",
     "memory the engine reports for itself"},
    {"readonly", "kvd_readonly", "gauge",
     "1 when the store refuses writes after an error"},
};

/* ---- the engine's own stats --------------------------------------------- */

/* Whether s ends with suffix; then *stem is its length without it. */
static int
ends_with(const char *s, size_t len, const char *suffix, size_t *stem)
{
    size_t n = strlen(suffix);

    if (len > n && memcmp(s + len - n, suffix, n) == 0) {
        *stem = len - n;
        return 1;
    }
    return 0;
}

/*
 * The exposition of engine stat `stat` (engines name stats by the
 * convention of docs/writing-an-engine.md): the family is
 * kvd_engine_<stat>, a counter when the name ends in _total, else a
 * gauge; a time in _ms, _us or _ns (before any _total) becomes _seconds
 * and *scale converts the value, so no family mixes units. Characters a
 * metric name cannot hold become '_'. Returns 0, or -1 when the name
 * does not fit `cap`.
 */
static int
engine_family(const char *stat, char *out, size_t cap, double *scale,
              int *counter)
{
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"_ms", 1e-3}, {"_us", 1e-6}, {"_ns", 1e-9}};
    size_t len = strlen(stat), stem;
    int n;

    *scale = 1;
    *counter = ends_with(stat, len, "_total", &stem);
    if (*counter) {
        len = stem;
    }
    const char *unit = "";
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ends_with(stat, len, units[i].suffix, &stem)) {
            len = stem;
            *scale = units[i].scale;
            unit = "_seconds";
            break;
        }
    }
    n = snprintf(out, cap, "kvd_engine_%.*s%s%s", (int)len, stat, unit,
                 *counter ? "_total" : "");
    if (n < 0 || (size_t)n >= cap) {
        return -1;
    }
    for (char *c = out; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '_' || *c == ':')) {
            *c = '_';
        }
    }
    return 0;
}

/* Each engine stat (engine_* in the store's metrics, but the core's
 * engine_mem_bytes) as its own typed family. A stat whose family was
 * already printed (say both x_ms and x_us) is left out: a family must
 * appear once. */
static void
print_engine(struct mbuf *b, const struct stat_set *set)
{
    char fam[STAT_MAX][96];
    size_t nfam = 0;

    for (size_t i = 0; i < set->n; i++) {
        const char *name = set->s[i].name;
        double scale;
        int counter, dup = 0;

        if (strncmp(name, "engine_", 7) != 0 ||
            strcmp(name, "engine_mem_bytes") == 0 ||
            engine_family(name + 7, fam[nfam], sizeof(fam[nfam]), &scale,
                          &counter) != 0) {
            continue;
        }
        dup = strcmp(fam[nfam], "kvd_engine_memory_bytes") == 0;
        for (size_t j = 0; j < nfam && !dup; j++) {
            dup = strcmp(fam[j], fam[nfam]) == 0;
        }
        if (dup) {
            continue;
        }
        mb_printf(b, "# HELP %s the engine's stat %s%s\n# TYPE %s %s\n",
                  fam[nfam], name + 7, scale != 1 ? ", in seconds" : "",
                  fam[nfam], counter ? "counter" : "gauge");
        if (scale != 1) {
            mb_printf(b, "%s %.9g\n", fam[nfam], (double)set->s[i].v * scale);
        } else {
            mb_printf(b, "%s %" PRIu64 "\n", fam[nfam], set->s[i].v);
        }
        nfam++;
    }
}

static void
print_store(struct mbuf *b, const struct stat_set *set)
{
    const uint64_t *v;
    int head = 0;

    /* cmd_* are the core's per-operation counters, all frontends. */
    for (size_t i = 0; i < set->n; i++) {
        if (strncmp(set->s[i].name, "cmd_", 4) != 0) {
            continue;
        }
        if (!head) {
            mb_printf(b, "# HELP kvd_store_operations_total store "
                         "operations by kind, all frontends\n"
                         "# TYPE kvd_store_operations_total counter\n");
            head = 1;
        }
        mb_printf(b, "kvd_store_operations_total{op=\"%s\"} %" PRIu64 "\n",
                  set->s[i].name + 4, set->s[i].v);
    }
    for (size_t i = 0; i < sizeof(core_metrics) / sizeof(core_metrics[0]);
         i++) {
        if ((v = stat_get(set, core_metrics[i].stat)) == NULL) {
            continue;
        }
        mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n",
                  core_metrics[i].metric, core_metrics[i].help,
                  core_metrics[i].metric, core_metrics[i].type,
                  core_metrics[i].metric, *v);
    }
    if ((v = stat_get(set, "uptime_ms")) != NULL) {
        mb_printf(b,
                  "# HELP kvd_uptime_seconds time since the store "
                  "opened\n# TYPE kvd_uptime_seconds gauge\n"
                  "kvd_uptime_seconds %.3f\n",
                  (double)*v / 1000.0);
    }
    print_engine(b, set);
}

/* ---- build, process, clients -------------------------------------------- */

#ifndef KVD_VERSION
#define KVD_VERSION "unknown"
#endif

static void
print_build(struct mbuf *b)
{
    struct http_proc p;
    static const struct {
        const char *metric;
        const char *type;
        const char *help;
        size_t off;
    } fam[] = {
        {"process_cpu_seconds_total", "counter",
         "user and system CPU time spent, in seconds",
         offsetof(struct http_proc, cpu_seconds)},
        {"process_resident_memory_bytes", "gauge", "resident memory size",
         offsetof(struct http_proc, resident_bytes)},
        {"process_virtual_memory_bytes", "gauge", "virtual memory size",
         offsetof(struct http_proc, virtual_bytes)},
        {"process_open_fds", "gauge", "open file descriptors",
         offsetof(struct http_proc, open_fds)},
        {"process_max_fds", "gauge", "the limit of open file descriptors",
         offsetof(struct http_proc, max_fds)},
        {"process_start_time_seconds", "gauge",
         "start time of the process since the epoch, in seconds",
         offsetof(struct http_proc, start_time)},
    };

    mb_printf(b,
              "# HELP kvd_build_info the version of kvd, as a label\n"
              "# TYPE kvd_build_info gauge\n"
              "kvd_build_info{version=\"%s\"} 1\n",
              KVD_VERSION);
    http_proc_read(&p);
    for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
        double v;
        memcpy(&v, (const char *)&p + fam[i].off, sizeof(v));
        if (v < 0) {
            continue; /* unreadable here (no /proc, no limit) */
        }
        mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", fam[i].metric,
                  fam[i].help, fam[i].metric, fam[i].type, fam[i].metric, v);
    }
}

/* Sessions of the command layer by frontend, and this frontend's open
 * connections under the same family (its only connection gauge: a
 * second family with the same figure would be an overlap). */
struct client_ctx {
    struct mbuf *b;
};

static void
client_collect(void *ctx, const char *frontend, uint64_t connected)
{
    struct client_ctx *cc = ctx;
    char esc[64];

    if (strcmp(frontend, "http") == 0) {
        return; /* its sessions live for a request: connections count */
    }
    mb_printf(cc->b, "kvd_connected_clients{frontend=\"%s\"} %" PRIu64 "\n",
              http_prom_label(esc, sizeof(esc), frontend), connected);
}

static void
print_clients(struct mbuf *b, struct http_fe *fe)
{
    const struct kvd_cmd_api *api = fe->srv->cmd_api;
    struct client_ctx cc = {b};

    mb_printf(b, "# HELP kvd_connected_clients clients connected now, by "
                 "frontend\n# TYPE kvd_connected_clients gauge\n");
    if (fe->srv->cmd != NULL && api != NULL &&
        KVD_HAS(api, struct kvd_cmd_api, clients) && api->clients != NULL) {
        api->clients(fe->srv->cmd, client_collect, &cc);
    }
    mb_printf(b, "kvd_connected_clients{frontend=\"http\"} %ld\n",
              http_net_connections(fe));
}

/* ---- the command layer's counters ---------------------------------------- */

/* One (frontend, command) pair of cmd_api->stats, copied: the names are
 * borrowed for the callback only, and every family must be printed whole
 * before the next. Longer names than these buffers are cut. */
struct cmd_row {
    char frontend[64];
    char command[96];
    uint64_t calls;
    uint64_t failed;
    uint64_t usec;
};

struct cmd_rows {
    struct cmd_row *v;
    size_t n;
    size_t cap;
    int bad; /* an allocation failed: print nothing */
};

static void
cmd_collect(void *ctx, const char *frontend, const char *command,
            uint64_t calls, uint64_t failed, uint64_t usec)
{
    struct cmd_rows *rows = ctx;

    if (rows->bad) {
        return;
    }
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 64;
        struct cmd_row *v = realloc(rows->v, cap * sizeof(*v));
        if (v == NULL) {
            rows->bad = 1;
            return;
        }
        rows->v = v;
        rows->cap = cap;
    }
    struct cmd_row *r = &rows->v[rows->n++];
    snprintf(r->frontend, sizeof(r->frontend), "%s", frontend);
    snprintf(r->command, sizeof(r->command), "%s", command);
    r->calls = calls;
    r->failed = failed;
    r->usec = usec;
}

/* Whether the host's command layer has the stats method (hosts built
 * before it was appended have a shorter struct kvd_cmd_api). */
static int
cmd_has_stats(const struct kvd_server *srv)
{
    const struct kvd_cmd_api *api = srv->cmd_api;

    return srv->cmd != NULL && api != NULL &&
           KVD_HAS(api, struct kvd_cmd_api, stats) && api->stats != NULL;
}

static void
print_commands(struct mbuf *b, struct http_fe *fe)
{
    static const struct {
        const char *metric;
        const char *help;
    } fam[] = {
        {"kvd_commands_total",
         "commands run through the shared command layer, by frontend "
         "and command"},
        {"kvd_command_failures_total",
         "commands that replied an error (refused ones included), by "
         "frontend and command"},
        {"kvd_command_seconds_total",
         "time spent executing commands, by frontend and command"},
    };
    struct cmd_rows rows = {0};
    char fe_esc[2 * sizeof(rows.v->frontend)];
    char cmd_esc[2 * sizeof(rows.v->command)];

    if (!cmd_has_stats(fe->srv)) {
        return;
    }
    if (fe->srv->cmd_api->stats(fe->srv->cmd, cmd_collect, &rows) < 0 ||
        rows.bad) {
        free(rows.v);
        return;
    }
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        mb_printf(b, "# HELP %s %s\n# TYPE %s counter\n", fam[f].metric,
                  fam[f].help, fam[f].metric);
        for (size_t i = 0; i < rows.n; i++) {
            const struct cmd_row *r = &rows.v[i];
            mb_printf(b, "%s{frontend=\"%s\",cmd=\"%s\"} ", fam[f].metric,
                      http_prom_label(fe_esc, sizeof(fe_esc), r->frontend),
                      http_prom_label(cmd_esc, sizeof(cmd_esc), r->command));
            if (f == 0) {
                mb_printf(b, "%" PRIu64 "\n", r->calls);
            } else if (f == 1) {
                mb_printf(b, "%" PRIu64 "\n", r->failed);
            } else {
                mb_printf(b, "%.6f\n", (double)r->usec / 1e6);
            }
        }
    }
    free(rows.v);
}

/* Connections refused at the door and closed on a deadline. */
static void
print_limits(struct mbuf *b, struct http_fe *fe)
{
    static const char *const refusal[HTTP_REFUSAL_COUNT] = {
        "max_connections", "max_connections_per_ip"};
    static const char *const phase[HTTP_TIMEOUT_COUNT] = {"header", "body",
                                                          "idle", "write"};

    mb_printf(b, "# HELP kvd_http_connections_refused_total connections "
                 "refused with 503 or 429 because a limit was reached\n"
                 "# TYPE kvd_http_connections_refused_total counter\n");
    for (int i = 0; i < HTTP_REFUSAL_COUNT; i++) {
        mb_printf(b,
                  "kvd_http_connections_refused_total{limit=\"%s\"} "
                  "%" PRIu64 "\n",
                  refusal[i], atomic_load(&fe->refused[i]));
    }
    mb_printf(b, "# HELP kvd_http_timeouts_total connections closed "
                 "because a deadline passed, by what was awaited\n"
                 "# TYPE kvd_http_timeouts_total counter\n");
    for (int i = 0; i < HTTP_TIMEOUT_COUNT; i++) {
        mb_printf(b, "kvd_http_timeouts_total{phase=\"%s\"} %" PRIu64 "\n",
                  phase[i], atomic_load(&fe->timeouts[i]));
    }
}

static void
print_frontend(struct mbuf *b, struct http_fe *fe)
{
    uint64_t sum_ns = 0, count = 0, cum = 0;
    uint64_t hist[HTTP_HIST_BUCKETS] = {0};

    mb_printf(b, "# HELP kvd_frontend_requests_total requests by frontend, "
                 "command and status\n"
                 "# TYPE kvd_frontend_requests_total counter\n");
    for (int cmd = 0; cmd < HTTP_CMD_COUNT; cmd++) {
        for (unsigned ci = 0; ci < HTTP_CODE_COUNT; ci++) {
            uint64_t n = 0;
            char code[8];
            for (unsigned s = 0; s < HTTP_CTR_SLOTS; s++) {
                n += atomic_load_explicit(&fe->ctr[s].req[cmd][ci],
                                          memory_order_relaxed);
            }
            if (n == 0) {
                continue;
            }
            if (ci < HTTP_CODE_COUNT - 1) {
                snprintf(code, sizeof(code), "%u", code_list[ci]);
            } else {
                snprintf(code, sizeof(code), "other");
            }
            mb_printf(b,
                      "kvd_frontend_requests_total{frontend=\"http\","
                      "cmd=\"%s\",code=\"%s\"} %" PRIu64 "\n",
                      cmd_names[cmd], code, n);
        }
    }
    for (unsigned s = 0; s < HTTP_CTR_SLOTS; s++) {
        for (unsigned i = 0; i < HTTP_HIST_BUCKETS; i++) {
            hist[i] +=
                atomic_load_explicit(&fe->ctr[s].hist[i], memory_order_relaxed);
        }
        sum_ns +=
            atomic_load_explicit(&fe->ctr[s].sum_ns, memory_order_relaxed);
    }
    mb_printf(b, "# HELP kvd_http_request_duration_seconds time from a "
                 "complete request head to its answer\n"
                 "# TYPE kvd_http_request_duration_seconds histogram\n");
    for (unsigned i = 0; i < HTTP_HIST_BUCKETS; i++) {
        cum += hist[i];
        if (i < HTTP_HIST_BUCKETS - 1) {
            mb_printf(b,
                      "kvd_http_request_duration_seconds_bucket"
                      "{le=\"%g\"} %" PRIu64 "\n",
                      (double)hist_bounds_ns[i] / 1e9, cum);
        } else {
            mb_printf(b,
                      "kvd_http_request_duration_seconds_bucket"
                      "{le=\"+Inf\"} %" PRIu64 "\n",
                      cum);
        }
    }
    count = cum;
    mb_printf(b,
              "kvd_http_request_duration_seconds_sum %.9f\n"
              "kvd_http_request_duration_seconds_count %" PRIu64 "\n",
              (double)sum_ns / 1e9, count);
    mb_printf(b,
              "# HELP kvd_http_requests_in_flight HTTP requests received "
              "and not yet answered (this scrape included)\n"
              "# TYPE kvd_http_requests_in_flight gauge\n"
              "kvd_http_requests_in_flight %ld\n",
              atomic_load(&fe->inflight));
    print_limits(b, fe);
}

void
http_metrics(struct http_req *r)
{
    struct http_fe *fe = r->fe;
    struct stat_set *set = calloc(1, sizeof(*set));
    struct mbuf b = {malloc(8192), 0, 8192, 0};
    int rc;

    r->cmd = HTTP_CMD_METRICS;
    if (set == NULL || b.p == NULL) {
        free(set);
        free(b.p);
        http_send_oom(r);
        return;
    }
    rc = fe->srv->store_api->metrics(fe->srv->store, stat_collect, set);
    if (rc != 0) {
        free(set);
        free(b.p);
        http_send_status(r, rc, 0, NULL);
        return;
    }
    print_build(&b);
    print_store(&b, set);
    print_clients(&b, fe);
    print_commands(&b, fe);
    print_frontend(&b, fe);
    free(set);
    if (b.bad) {
        free(b.p);
        http_send_oom(r);
        return;
    }
    http_send_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p,
                   b.len, free, b.p);
}
