/* `wsx bench`: the progress line on stderr, and the summary or the JSON object on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void bench_sum_stats(bench *b, totals *t)
{
    memset(t, 0, sizeof *t);
    for (uint32_t i = 0; i < b->threads; i++) {
        wstats *s = &b->workers[i].st;
        t->msgs += get(&s->msgs);
        t->bytes += get(&s->bytes);
        t->lat_sum += get(&s->lat_sum);
        t->win_msgs += get(&s->win_msgs);
        t->win_bytes += get(&s->win_bytes);
        t->win_bcasts += get(&s->win_bcasts);
        for (int k = 0; k < E_KINDS; k++)
            t->err[k] += get(&s->err[k]);
    }
    for (int k = 0; k < E_KINDS; k++)
        t->errors += t->err[k];
}

static const char *const phase_names[] = {"connect", "warm-up", "measure", "done"};

void bench_progress(bench *b, int phase, double elapsed, const totals *cur, const totals *prev,
                    double dt)
{
    char line[256];
    size_t open = atomic_load(&b->open);
    if (phase == P_CONNECT || b->mode == M_IDLE) {
        snprintf(line, sizeof line, "[%5.1f s] %-7s  open %zu/%zu  failed %zu  errors %llu",
                 elapsed, phase == P_MEASURE && b->mode == M_IDLE ? "hold" : phase_names[phase],
                 open, b->total, atomic_load(&b->failed), (unsigned long long)cur->errors);
    } else {
        uint64_t dm = cur->msgs - prev->msgs;
        double rate = dt > 0 ? (double)dm / dt : 0;
        double mbs = dt > 0 ? (double)(cur->bytes - prev->bytes) / dt / 1e6 : 0;
        double avg_us = dm ? (double)(cur->lat_sum - prev->lat_sum) / (double)dm / 1e3 : 0;
        snprintf(line, sizeof line,
                 "[%5.1f s] %-7s  %.0f %s/s  %.2f MB/s  avg %.0f us  open %zu  errors %llu",
                 elapsed, phase_names[phase], rate, b->mode == M_FANOUT ? "deliveries" : "msgs",
                 mbs, avg_us, open, (unsigned long long)cur->errors);
    }
    if (b->tty)
        fprintf(stderr, "\r\033[K%s", line);
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

/* A figure rounded to `decimals`, or null when it is not known (negative). */
static json_t *json_fig(double v, int decimals)
{
    if (v < 0) return json_null();
    if (decimals == 0) return json_integer((json_int_t)(v + 0.5));
    double scale = decimals == 1 ? 10 : decimals == 2 ? 100 : 1000;
    return json_real((double)(long long)(v * scale + 0.5) / scale);
}

static json_t *json_lat(const hist *h)
{
    static const char *const keys[] = {"p50", "p90", "p99", "p999", "max", "min", "mean"};
    double us[7] = {0};
    if (h->n) {
        us[0] = (double)bench_hist_pct(h, 0.50) / 1e3,
        us[1] = (double)bench_hist_pct(h, 0.90) / 1e3;
        us[2] = (double)bench_hist_pct(h, 0.99) / 1e3,
        us[3] = (double)bench_hist_pct(h, 0.999) / 1e3;
        us[4] = (double)h->max / 1e3, us[5] = (double)h->min / 1e3;
        us[6] = (double)h->sum / (double)h->n / 1e3;
    }
    json_t *o = json_object();
    for (int i = 0; i < 7; i++)
        json_object_set_new(o, keys[i], h->n ? json_fig(us[i], 1) : json_null());
    return o;
}

static void fmt_us(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 1000000)
        snprintf(buf, cap, "%.0f us", (double)ns / 1e3);
    else
        snprintf(buf, cap, "%.2f ms", (double)ns / 1e6);
}

static void print_lat(const char *label, const hist *h)
{
    if (!h->n) {
        printf("  %-12s -\n", label);
        return;
    }
    char p50[32], p90[32], p99[32], p999[32], mx[32], mean[32];
    fmt_us(p50, sizeof p50, bench_hist_pct(h, 0.50));
    fmt_us(p90, sizeof p90, bench_hist_pct(h, 0.90));
    fmt_us(p99, sizeof p99, bench_hist_pct(h, 0.99));
    fmt_us(p999, sizeof p999, bench_hist_pct(h, 0.999));
    fmt_us(mx, sizeof mx, h->max);
    fmt_us(mean, sizeof mean, h->sum / h->n);
    printf("  %-12s p50 %s, p90 %s, p99 %s, p99.9 %s, max %s (mean %s)\n", label, p50, p90, p99,
           p999, mx, mean);
}

static const char *mode_name(const bench *b)
{
    static const char *const names[] = {"echo", "fanout", "idle"};
    static const char *const sio_names[] = {"sio-echo", "sio-broadcast", "sio-idle"};
    return b->sio ? sio_names[b->mode] : names[b->mode];
}

/* The scenarios of bench/run.sh (docs/performance.md) that wsx bench can repeat: the summary
 * names the one a run matches, so that a figure is compared with the published one of its
 * own scenario. Plain text or binary pattern payloads, one thread, no deflate, ws://. */
static const char *scenario_of(const bench *b)
{
    static const struct {
        const char *name;
        bool sio;
        int mode;
        size_t conns, size;
        uint32_t k;
        int type;
    } sc[] = {
        {"A, the README's echo figure", false, M_ECHO, 100, 32, 16, WSX_TEXT},
        {"B", false, M_ECHO, 1000, 32, 1, WSX_TEXT},
        {"C", false, M_ECHO, 10, 65536, 1, WSX_BINARY},
        {"D, the README's memory per connection", false, M_IDLE, 10000, 0, 0, 0},
        {"E1", false, M_FANOUT, 1000, 32, 1, WSX_TEXT},
        {"E16, the README's broadcast figure", false, M_FANOUT, 1000, 32, 16, WSX_TEXT},
        {"SE, Socket.IO emit-echo (issue 12)", true, M_ECHO, 100, 32, 16, WSX_TEXT},
        {"SB, Socket.IO room broadcast (issue 12)", true, M_FANOUT, 1000, 32, 16, WSX_TEXT},
        {"SD, Socket.IO idle clients (issue 12)", true, M_IDLE, 1000, 0, 0, 0},
    };
    if (b->threads != 1 || b->deflate || b->payload != PL_PATTERN || b->u.tls) return NULL;
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++)
        if (sc[i].sio == b->sio && sc[i].mode == b->mode && sc[i].conns == b->conns &&
            (b->mode == M_IDLE ||
             (sc[i].size == b->size && sc[i].k == b->k && sc[i].type == b->type)))
            return sc[i].name;
    return NULL;
}

static json_t *json_text_or_null(const char *s)
{
    return s && *s ? tool_json_text(s, strlen(s)) : json_null();
}

void bench_print_json(const bench *b, const result *r, char **argv, int argc, bool ok)
{
    double secs = r->secs;
    const totals *t = &r->t;
    json_t *o = json_object(), *av = json_array();
    json_array_append_new(av, json_string("wsx"));
    for (int i = 0; i < argc; i++)
        json_array_append_new(av, tool_json_text(argv[i], strlen(argv[i])));
#define SET(k, v) json_object_set_new(o, k, v)
    SET("command", tool_json_text(b->command, strlen(b->command)));
    SET("argv", av);
    SET("mode", json_string(mode_name(b)));
    SET("url", tool_json_text(b->url, strlen(b->url)));
    SET("sio_url", b->sio ? tool_json_text(b->url_sio, strlen(b->url_sio)) : json_null());
    SET("scenario",
        scenario_of(b) ? json_stringn(scenario_of(b), strcspn(scenario_of(b), ",")) : json_null());
    SET("connections", json_integer((json_int_t)b->conns));
    SET("size", json_integer((json_int_t)b->size));
    SET("in_flight", json_integer(b->k));
    SET("binary", json_boolean(b->type == WSX_BINARY));
    SET("threads", json_integer(b->threads));
    SET("payload", json_string(b->payload == PL_JSON ? "json" : "pattern"));
    SET("tls", json_boolean(b->u.tls));
    SET("tls_insecure", json_boolean(b->u.tls && b->insecure));
    SET("deflate_offered", json_boolean(b->deflate));
    SET("warmup_s", json_fig(b->warmup, 3));
    SET("duration_s", json_fig(secs, 3));
    SET("connect_s", json_fig(r->connect_s, 3));
    SET("connections_made", json_integer((json_int_t)r->made));
    SET("connections_failed", json_integer((json_int_t)r->failed));
    SET("deflate_agreed", json_integer((json_int_t)r->deflated));
    if (b->mode != M_IDLE) {
        SET("messages", json_integer((json_int_t)t->win_msgs));
        SET("bytes", json_integer((json_int_t)t->win_bytes));
        SET("msgs_per_s", json_fig(secs > 0 ? (double)t->win_msgs / secs : -1, 1));
        SET("MB_per_s", json_fig(secs > 0 ? (double)t->win_bytes / secs / 1e6 : -1, 3));
        SET("latency_us", json_lat(&r->lat));
    }
    if (b->mode == M_FANOUT) {
        SET("subscribers", json_integer(b->nsubs));
        SET("deliveries", json_integer((json_int_t)t->win_msgs));
        SET("broadcasts", json_integer((json_int_t)t->win_bcasts));
        SET("deliveries_per_s", json_fig(secs > 0 ? (double)t->win_msgs / secs : -1, 1));
        SET("broadcasts_per_s", json_fig(secs > 0 ? (double)t->win_bcasts / secs : -1, 1));
        SET("broadcast_latency_us", json_lat(&r->bclat));
    }
    SET("client_cpu_pct", json_fig(secs > 0 ? 100.0 * r->client_cpu_s / secs : -1, 1));
    SET("client_us_per_msg",
        json_fig(t->win_msgs && b->mode != M_IDLE ? r->client_cpu_s * 1e6 / (double)t->win_msgs
                                                  : -1,
                 3));
    SET("server_pid", b->server_pid ? json_integer(b->server_pid) : json_null());
    SET("server_cpu_pct",
        json_fig(secs > 0 && r->server_cpu_s >= 0 ? 100.0 * r->server_cpu_s / secs : -1, 1));
    SET("server_us_per_msg",
        json_fig(t->win_msgs && r->server_cpu_s >= 0 ? r->server_cpu_s * 1e6 / (double)t->win_msgs
                                                     : -1,
                 3));
    SET("other_cpu_pct",
        json_fig(secs > 0 && r->other_cpu_s >= 0 ? 100.0 * r->other_cpu_s / secs : -1, 1));
    SET("server_rss_before_kb", json_fig((double)r->rss_before, 0));
    SET("server_rss_after_kb", json_fig((double)r->rss_after, 0));
    /* Negative when the server gave memory back meanwhile (a garbage collector can): still a
     * figure, so not through json_fig, where negative means unknown. */
    double bpc = r->made ? (double)(r->rss_after - r->rss_before) * 1024.0 / (double)r->made : 0;
    SET("server_bytes_per_conn", r->rss_before >= 0 && r->rss_after >= 0 && r->made
                                     ? json_integer((json_int_t)(bpc < 0 ? bpc - 0.5 : bpc + 0.5))
                                     : json_null());
    SET("errors", json_integer((json_int_t)t->errors));
    json_t *kinds = json_object();
    for (int k = 0; k < E_KINDS; k++)
        json_object_set_new(kinds, bench_kind_names[k], json_integer((json_int_t)t->err[k]));
    SET("errors_by_kind", kinds);
    SET("first_error", json_text_or_null(b->first_error));
    SET("ended_early", json_text_or_null(r->ended));
    SET("ok", json_boolean(ok));
#undef SET
    tool_json_print(stdout, o);
}

/* The server's line of the summary (--server-pid): CPU and memory. */
static void print_server(const bench *b, const result *r)
{
    const totals *t = &r->t;
    double secs = r->secs;
    printf("  %-12s pid %ld", "server", b->server_pid);
    if (r->server_cpu_s >= 0 && secs > 0) {
        printf(": %.1f%% of a CPU", 100.0 * r->server_cpu_s / secs);
        if (t->win_msgs)
            printf(", %.3f us/%s", r->server_cpu_s * 1e6 / (double)t->win_msgs,
                   b->mode == M_FANOUT ? "delivery" : "msg");
    }
    if (r->rss_before >= 0 && r->rss_after >= 0) {
        printf(", RSS %ld -> %ld KiB", r->rss_before, r->rss_after);
        if (r->made)
            printf(" (%.0f bytes per connection)",
                   (double)(r->rss_after - r->rss_before) * 1024.0 / (double)r->made);
    }
    printf("\n");
}

static void print_errors(const bench *b, const totals *t)
{
    if (!t->errors) {
        printf("  %-12s none\n", "errors");
    } else {
        printf("  %-12s %llu (", "errors", (unsigned long long)t->errors);
        bool first = true;
        for (int k = 0; k < E_KINDS; k++)
            if (t->err[k]) {
                printf("%s%s %llu", first ? "" : ", ", bench_kind_names[k],
                       (unsigned long long)t->err[k]);
                first = false;
            }
        printf(")\n  %-12s %s\n", "first error", b->first_error);
        if (strstr(b->first_error, " 503 "))
            printf("  %-12s by default wsx echo and wsx serve refuse over 256 connections from one "
                   "address\n  %-12s (--max-per-ip 0 --max-handshakes-per-ip 0 lift the limits)\n",
                   "hint", "");
    }
}

void bench_print_summary(const bench *b, const result *r)
{
    const totals *t = &r->t;
    double secs = r->secs;
    printf("wsx bench %s %s: ", mode_name(b), b->url);
    if (b->mode == M_ECHO && b->sio)
        printf("%zu connections x %u events with acks in flight, ", b->conns, b->k);
    else if (b->mode == M_FANOUT && b->sio)
        printf("%zu subscribers in room \"%s\", 1 publisher, %u broadcasts in flight, ", b->conns,
               SIO_ROOM, b->k);
    else if (b->mode == M_ECHO)
        printf("%zu connections x %u in flight, ", b->conns, b->k);
    else if (b->mode == M_FANOUT)
        printf("%zu subscribers, 1 publisher, %u broadcasts in flight, ", b->conns, b->k);
    else
        printf("%zu idle connections, ", b->conns);
    if (b->mode != M_IDLE && b->sio)
        printf("%zu-byte texts in JSON events, ", b->size);
    else if (b->mode != M_IDLE)
        printf("%zu-byte %s%s messages, ", b->size, b->payload == PL_JSON ? "JSON " : "",
               b->type == WSX_BINARY ? "binary" : "text");
    printf("%u thread%s\n", b->threads, b->threads > 1 ? "s" : "");
    printf("  %-12s %s\n", "command", b->command);
    printf("  %-12s %s\n", "scenario",
           scenario_of(b) ? scenario_of(b)
                          : "none of docs/performance.md (the defaults are A, the README's echo "
                            "figure)");
    printf("  %-12s %zu made, %zu failed, in %.3f s (%.0f/s)\n", "connections", r->made, r->failed,
           r->connect_s, r->connect_s > 0 ? (double)r->made / r->connect_s : 0.0);
    if (b->u.tls)
        printf("  %-12s wss://, %s\n", "tls",
               b->insecure ? "the server's certificate NOT verified (--insecure)"
                           : "the server's certificate verified");
    if (b->deflate)
        printf("  %-12s offered; agreed on %zu of %zu connections\n", "deflate", r->deflated,
               r->made);
    if (secs <= 0)
        printf("  %-12s nothing: the run ended before the measurement\n", "measured");
    else if (b->mode == M_IDLE)
        printf("  %-12s %.2f s after %.2f s to settle\n", "held", secs, b->warmup);
    else
        printf("  %-12s %.2f s after %.2f s of warm-up\n", "measured", secs, b->warmup);
    if (secs > 0 && b->mode == M_ECHO) {
        printf("  %-12s %llu: %.0f %s/s, %.2f MB/s of payload each way\n",
               b->sio ? "events" : "messages", (unsigned long long)t->win_msgs,
               secs > 0 ? (double)t->win_msgs / secs : 0.0, b->sio ? "events" : "msgs",
               secs > 0 ? (double)t->win_bytes / secs / 1e6 : 0.0);
        print_lat("latency", &r->lat);
    } else if (secs > 0 && b->mode == M_FANOUT) {
        printf("  %-12s %llu: %.0f deliveries/s, %.2f MB/s; %llu broadcasts: %.1f/s\n",
               "deliveries", (unsigned long long)t->win_msgs,
               secs > 0 ? (double)t->win_msgs / secs : 0.0,
               secs > 0 ? (double)t->win_bytes / secs / 1e6 : 0.0,
               (unsigned long long)t->win_bcasts, secs > 0 ? (double)t->win_bcasts / secs : 0.0);
        print_lat("delivery", &r->lat);
        print_lat("broadcast", &r->bclat);
    }
    if (secs > 0) {
        printf("  %-12s %.1f%% of a CPU", "client", 100.0 * r->client_cpu_s / secs);
        if (t->win_msgs && b->mode != M_IDLE)
            printf(", %.3f us/msg", r->client_cpu_s * 1e6 / (double)t->win_msgs);
        printf("\n");
    }
    if (b->server_pid) print_server(b, r);
    if (r->other_cpu_s >= 0 && secs > 0)
        printf("  %-12s %.0f%% of a CPU besides the server and this client (contention)\n", "other",
               100.0 * r->other_cpu_s / secs);
    print_errors(b, t);
    if (r->ended) printf("  %-12s %s\n", "ended early", r->ended);
}

/* Runs the benchmark on prepared state; fills r. */
