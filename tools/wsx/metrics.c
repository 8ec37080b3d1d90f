/* /metrics of the server commands: the helpers, the common families, the process; metrics.h. */
#include "metrics.h"

#include <dirent.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef WSX_TOOL_VERSION
#define WSX_TOOL_VERSION "unknown"
#endif

/* ---- text ---- */

void tool_mbuf_printf(tool_mbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

void tool_mbuf_free(tool_mbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void tool_metric_family(tool_mbuf *b, const char *name, const char *type, const char *help)
{
    tool_mbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void tool_metric_u64(tool_mbuf *b, const char *name, const char *labels, uint64_t v)
{
    if (labels && *labels)
        tool_mbuf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
    else
        tool_mbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void tool_metric_f(tool_mbuf *b, const char *name, const char *labels, double v)
{
    if (labels && *labels)
        tool_mbuf_printf(b, "%s{%s} %.15g\n", name, labels, v);
    else
        tool_mbuf_printf(b, "%s %.15g\n", name, v);
}

void tool_metric_rows(tool_mbuf *b, const tool_metric_row *rows, size_t n, const void *base)
{
    for (size_t i = 0; i < n; i++) {
        const tool_metric_row *r = &rows[i];
        if (r->type) tool_metric_family(b, r->name, r->type, r->help);
        const char *at = (const char *)base + r->off;
        uint64_t v;
        if (r->is_size) {
            size_t z;
            memcpy(&z, at, sizeof z);
            v = z;
        } else {
            memcpy(&v, at, sizeof v);
        }
        tool_metric_u64(b, r->name, r->labels, v);
    }
}

/* ---- the loops' snapshots ---- */

static struct {
    pthread_mutex_t lock;
    tool_runner *r;
    wsx_server_stats stats[TOOL_RUNNER_MAX_THREADS][TOOL_RUNNER_MAX_SERVERS];
    size_t topics[TOOL_RUNNER_MAX_THREADS];
    wsx_timer *timer[TOOL_RUNNER_MAX_THREADS];
} snap = {.lock = PTHREAD_MUTEX_INITIALIZER};

void tool_metrics_snapshot(unsigned k)
{
    tool_runner *r = snap.r;
    if (!r || k >= r->n_threads) return;
    wsx_server_stats st[TOOL_RUNNER_MAX_SERVERS];
    for (size_t i = 0; i < r->n_srvs; i++)
        wsx_server_get_stats(r->t[k].srvs[i], &st[i]);
    size_t topics = wsx_topic_count(r->t[k].srvs[0]);
    pthread_mutex_lock(&snap.lock);
    memcpy(snap.stats[k], st, r->n_srvs * sizeof st[0]);
    snap.topics[k] = topics;
    pthread_mutex_unlock(&snap.lock);
}

static void snapshot_timer(wsx_timer *tm, void *arg)
{
    (void)tm;
    tool_metrics_snapshot((unsigned)(uintptr_t)arg);
}

void tool_metrics_start(tool_runner *r)
{
    snap.r = r;
    for (unsigned k = 0; k < r->n_threads; k++) {
        tool_metrics_snapshot(k);
        if (r->n_threads > 1)
            wsx_timer_start(r->t[k].loop, 1000, 1000, snapshot_timer, (void *)(uintptr_t)k,
                            &snap.timer[k]);
    }
}

void tool_metrics_stop(unsigned k)
{
    if (k >= TOOL_RUNNER_MAX_THREADS || !snap.timer[k]) return;
    wsx_timer_stop(snap.timer[k]);
    snap.timer[k] = NULL;
}

/* Adds one server's counters to st. */
static void add_stats(wsx_server_stats *st, const wsx_server_stats *one)
{
    /* Every field is a uint64_t or a size_t of the same width: summed as one array. */
    _Static_assert(sizeof(size_t) == sizeof(uint64_t), "size_t and uint64_t differ");
    _Static_assert(sizeof(wsx_server_stats) % sizeof(uint64_t) == 0, "stats not all words");
    uint64_t a[sizeof *st / sizeof(uint64_t)], o[sizeof *st / sizeof(uint64_t)];
    memcpy(a, st, sizeof a);
    memcpy(o, one, sizeof o);
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        a[i] += o[i];
    memcpy(st, a, sizeof a);
}

size_t tool_metrics_sum(wsx_server_stats *st)
{
    memset(st, 0, sizeof *st);
    size_t topics = 0;
    tool_runner *r = snap.r;
    if (!r) return 0;
    pthread_mutex_lock(&snap.lock);
    for (unsigned k = 0; k < r->n_threads; k++) {
        for (size_t i = 0; i < r->n_srvs; i++)
            add_stats(st, &snap.stats[k][i]);
        topics += snap.topics[k];
    }
    pthread_mutex_unlock(&snap.lock);
    return topics;
}

/* ---- close codes ---- */

/* 1000-1015 each have a counter; other codes (the applications' 3000-4999) take one of a
 * few slots on first sight, so that a peer choosing codes cannot grow the output without
 * bound; past them the code counts as "other". */
#define CLOSE_APP_SLOTS 32
static struct {
    uint64_t std[16];
    uint32_t app_code[CLOSE_APP_SLOTS]; /* 0: free */
    uint64_t app[CLOSE_APP_SLOTS];
    uint64_t other;
} closes;

void tool_metrics_close(int code)
{
    if (code >= 1000 && code <= 1015) {
        __atomic_add_fetch(&closes.std[code - 1000], 1, __ATOMIC_RELAXED);
        return;
    }
    uint32_t want = code > 0 && code < 65536 ? (uint32_t)code : 0;
    for (size_t i = 0; want && i < CLOSE_APP_SLOTS; i++) {
        uint32_t have = __atomic_load_n(&closes.app_code[i], __ATOMIC_ACQUIRE);
        if (!have) {
            uint32_t expect = 0;
            if (__atomic_compare_exchange_n(&closes.app_code[i], &expect, want, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                have = want;
            else
                have = expect;
        }
        if (have == want) {
            __atomic_add_fetch(&closes.app[i], 1, __ATOMIC_RELAXED);
            return;
        }
    }
    __atomic_add_fetch(&closes.other, 1, __ATOMIC_RELAXED);
}

static void format_closes(tool_mbuf *b)
{
    tool_metric_family(b, "wsx_closes_total", "counter",
                       "WebSocket connections closed, by the close code on_close reported "
                       "(1006: ended without a close frame). Codes outside 1000-1015 beyond "
                       "the first 32 seen count as code=\"other\".");
    char lab[32];
    for (int i = 0; i < 16; i++) {
        uint64_t n = __atomic_load_n(&closes.std[i], __ATOMIC_RELAXED);
        if (!n) continue;
        snprintf(lab, sizeof lab, "code=\"%d\"", 1000 + i);
        tool_metric_u64(b, "wsx_closes_total", lab, n);
    }
    for (size_t i = 0; i < CLOSE_APP_SLOTS; i++) {
        uint32_t code = __atomic_load_n(&closes.app_code[i], __ATOMIC_ACQUIRE);
        if (!code) continue;
        snprintf(lab, sizeof lab, "code=\"%u\"", code);
        tool_metric_u64(b, "wsx_closes_total", lab,
                        __atomic_load_n(&closes.app[i], __ATOMIC_RELAXED));
    }
    uint64_t other = __atomic_load_n(&closes.other, __ATOMIC_RELAXED);
    if (other) tool_metric_u64(b, "wsx_closes_total", "code=\"other\"", other);
}

/* ---- the common families ---- */

#define ST(f)   offsetof(wsx_server_stats, f)
#define U(f)    ST(f), false
#define SZ(f)   ST(f), true
#define FAIL(r) "reason=\"" r "\""
#define CNT     "counter"
#define GAUGE   "gauge"
#define SAME    NULL, NULL
static const tool_metric_row server_rows[] = {
    {"wsx_connections_open", GAUGE, "Open WebSocket connections.", NULL, SZ(open)},
    {"wsx_http_connections_open", GAUGE, "Open non-WebSocket connections (HTTP, SSE).", NULL,
     SZ(http_open)},
    {"wsx_connections_accepted_total", CNT, "TCP connections accepted.", NULL, U(accepted)},
    {"wsx_upgrades_total", CNT, "WebSocket handshakes completed.", NULL, U(upgrades)},
    {"wsx_messages_received_total", CNT, "WebSocket messages received.", NULL, U(messages_in)},
    {"wsx_messages_sent_total", CNT, "WebSocket messages sent (a broadcast counts per recipient).",
     NULL, U(messages_out)},
    {"wsx_bytes_received_total", CNT, "WebSocket payload bytes received.", NULL, U(bytes_in)},
    {"wsx_bytes_sent_total", CNT, "WebSocket payload bytes sent.", NULL, U(bytes_out)},
    {"wsx_handshake_failures_total", CNT, "Upgrade or HTTP requests refused, by reason.",
     FAIL("bad_request"), U(refused_400)},
    {"wsx_handshake_failures_total", SAME, FAIL("unauthorized"), U(refused_401)},
    {"wsx_handshake_failures_total", SAME, FAIL("forbidden_origin"), U(refused_403)},
    {"wsx_handshake_failures_total", SAME, FAIL("not_found"), U(refused_404)},
    {"wsx_handshake_failures_total", SAME, FAIL("unsupported_version"), U(refused_426)},
    {"wsx_handshake_failures_total", SAME, FAIL("head_too_large"), U(refused_431)},
    {"wsx_handshake_failures_total", SAME, FAIL("unavailable"), U(refused_503)},
    {"wsx_handshake_failures_total", SAME, FAIL("other"), U(refused_other)},
    {"wsx_handshake_failures_total", SAME, FAIL("timeout"), U(handshake_timeouts)},
    {"wsx_admission_refused_total", CNT,
     "Connections turned away when accepted (503, or closed at once), by reason: "
     "--max-per-ip, handshakes in progress (--max-handshakes-per-ip, --max-handshakes), the "
     "server full, no file descriptor.",
     FAIL("per_ip"), U(refused_per_ip)},
    {"wsx_admission_refused_total", SAME, FAIL("handshakes"), U(refused_handshakes)},
    {"wsx_admission_refused_total", SAME, FAIL("full"), U(refused_full)},
    {"wsx_admission_refused_total", SAME, FAIL("nofile"), U(shed_nofile)},
    {"wsx_slow_consumer_drops_total", CNT,
     "WebSocket connections closed with 1008 for not reading: reason=\"hard_limit\", the send "
     "queue passed --hard-limit; reason=\"queued_bytes\", among the largest queues while the "
     "process was over --max-queued-bytes.",
     FAIL("hard_limit"), U(hard_limit_closes)},
    {"wsx_slow_consumer_drops_total", SAME, FAIL("queued_bytes"), U(budget_closes)},
    {"wsx_ping_timeouts_total", CNT,
     "WebSocket connections dropped for not answering a keepalive ping in time.", NULL,
     U(ping_timeouts)},
};

/* The process_* families of the Prometheus client libraries, from /proc (Linux). */
static void format_process(tool_mbuf *b)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        tool_metric_family(b, "process_cpu_seconds_total", CNT,
                           "Total user and system CPU time spent in seconds.");
        tool_metric_f(b, "process_cpu_seconds_total", NULL, cpu);
    }
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long vsz, rss;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%llu %llu", &vsz, &rss) == 2 && page > 0) {
        tool_metric_family(b, "process_resident_memory_bytes", GAUGE,
                           "Resident memory size in bytes.");
        tool_metric_u64(b, "process_resident_memory_bytes", NULL, rss * (unsigned long long)page);
        tool_metric_family(b, "process_virtual_memory_bytes", GAUGE,
                           "Virtual memory size in bytes.");
        tool_metric_u64(b, "process_virtual_memory_bytes", NULL, vsz * (unsigned long long)page);
    }
    if (f) fclose(f);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        uint64_t n = 0;
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.') n++;
        closedir(d);
        tool_metric_family(b, "process_open_fds", GAUGE, "Number of open file descriptors.");
        tool_metric_u64(b, "process_open_fds", NULL, n ? n - 1 : 0); /* less the listing's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        tool_metric_family(b, "process_max_fds", GAUGE, "Maximum number of open file descriptors.");
        tool_metric_u64(b, "process_max_fds", NULL, (uint64_t)rl.rlim_cur);
    }
    static double start;
    if (!start) {
        /* Field 22 of /proc/self/stat: the start in clock ticks after boot; /proc/stat's btime
         * is the boot in seconds since the epoch. The command name (field 2) may hold spaces:
         * the fields are counted after its closing parenthesis. */
        char buf[1024];
        unsigned long long ticks = 0, btime = 0;
        FILE *s = fopen("/proc/self/stat", "r");
        size_t n = s ? fread(buf, 1, sizeof buf - 1, s) : 0;
        if (s) fclose(s);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        for (int field = 2; p && *p && field < 22; p++)
            if (*p == ' ') field++;
        if (p) ticks = strtoull(p, NULL, 10);
        FILE *st = fopen("/proc/stat", "r");
        char line[256];
        while (st && fgets(line, sizeof line, st))
            if (sscanf(line, "btime %llu", &btime) == 1) break;
        if (st) fclose(st);
        long hz = sysconf(_SC_CLK_TCK);
        if (btime && hz > 0) start = (double)btime + (double)ticks / (double)hz;
    }
    if (start) {
        tool_metric_family(b, "process_start_time_seconds", GAUGE,
                           "Start time of the process since unix epoch in seconds.");
        tool_metric_f(b, "process_start_time_seconds", NULL, start);
    }
}

/* Writes s as a label value: backslash, double quote and newline escaped. */
static void label_value(tool_mbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            tool_mbuf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            tool_mbuf_printf(b, "\\n");
        else
            tool_mbuf_printf(b, "%c", *s);
    }
}

static void format_build(tool_mbuf *b)
{
    tool_metric_family(b, "wsx_build_info", GAUGE,
                       "Always 1; the labels say which wsx and which OpenSSL (at run time).");
    tool_mbuf_printf(b, "wsx_build_info{version=\"");
    label_value(b, WSX_TOOL_VERSION);
    tool_mbuf_printf(b, "\",openssl=\"");
    label_value(b, OpenSSL_version(OPENSSL_VERSION));
    tool_mbuf_printf(b, "\"} 1\n");
}

void tool_metrics_common(tool_mbuf *b, const wsx_server_stats *st, size_t topics)
{
    tool_metric_rows(b, server_rows, sizeof server_rows / sizeof server_rows[0], st);
    format_closes(b);
    tool_metric_family(b, "wsx_topics", GAUGE, "Pub/sub topics with subscribers.");
    tool_metric_u64(b, "wsx_topics", NULL, topics);
    tool_metric_family(b, "wsx_queued_bytes", GAUGE,
                       "Bytes queued for sending in the whole process.");
    tool_metric_u64(b, "wsx_queued_bytes", NULL, wsx_queued_bytes());
    tool_metric_family(b, "wsx_max_queued_bytes", GAUGE,
                       "The budget of queued bytes (--max-queued-bytes); above it the largest "
                       "queues are closed with 1008.");
    tool_metric_u64(b, "wsx_max_queued_bytes", NULL, wsx_max_queued_bytes());
    format_process(b);
    format_build(b);
}

void tool_metrics_respond(wsx_http_req *r, tool_mbuf *b)
{
    if (b->failed) {
        tool_mbuf_free(b);
        wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25}};
        wsx_http_respond(r, 500, h, 1, "500 out of memory\n", 18);
        return;
    }
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain; version=0.0.4", 25}};
    wsx_http_respond(r, 200, h, 1, b->p, b->len);
    tool_mbuf_free(b);
}

/* ---- routes of `wsx echo` ---- */

static void on_metrics(wsx_http_req *r, void *user)
{
    /* This loop's figures are fresh; the other loops' are at most a second old. */
    tool_metrics_snapshot((unsigned)(uintptr_t)user);
    wsx_server_stats st;
    size_t topics = tool_metrics_sum(&st);
    tool_mbuf b = {0};
    tool_metrics_common(&b, &st, topics);
    tool_metrics_respond(r, &b);
}

static void on_healthz(wsx_http_req *r, void *user)
{
    (void)user;
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25}};
    wsx_http_respond(r, 200, h, 1, "ok\n", 3);
}

bool tool_metrics_routes(wsx_server *srv, unsigned k)
{
    wsx_route_opts m = {
        .methods = "GET, HEAD", .on_request = on_metrics, .user = (void *)(uintptr_t)k};
    wsx_route_opts h = {.methods = "GET, HEAD", .on_request = on_healthz};
    return wsx_server_route(srv, "/metrics", &m) == 0 && wsx_server_route(srv, "/healthz", &h) == 0;
}
