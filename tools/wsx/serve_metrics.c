/* `wsx serve`: /metrics, the Prometheus text of every loop's counters and the chat's. */
#include <stdio.h>
#include <string.h>

#include "serve.h"

/* Each loop copies its servers' counters where /metrics on any loop can read them. */
static void take_snapshot(void)
{
    serve_thread *t = &g_serve.t[g_serve_thread];
    for (size_t i = 0; i < g_serve.runner.n_srvs; i++)
        wsx_server_get_stats(g_serve.runner.t[g_serve_thread].srvs[i], &t->stats[i]);
    size_t all = wsx_topic_count(g_serve.runner.t[g_serve_thread].srvs[0]);
    size_t own = serve_sio_own_topics();
    t->topics = all > own ? all - own : 0;
}

void serve_snapshot_timer(wsx_timer *tm, void *arg)
{
    (void)tm;
    (void)arg;
    serve_lock();
    take_snapshot();
    serve_unlock();
}

/* /metrics shows who is connected and how busy the server is: with --metrics-token only
 * that token opens it, else --token does; without either it is public. */
static bool metrics_allowed(const wsx_http_req *rq)
{
    const char *want = g_serve.metrics_token ? g_serve.metrics_token : g_serve.token;
    return !want || serve_has_token(rq, want);
}

/* Adds one server's counters to st. */
static void add_stats(wsx_server_stats *st, const wsx_server_stats *one)
{
    st->open += one->open;
    st->http_open += one->http_open;
    st->accepted += one->accepted;
    st->upgrades += one->upgrades;
    st->messages_in += one->messages_in;
    st->messages_out += one->messages_out;
    st->bytes_in += one->bytes_in;
    st->bytes_out += one->bytes_out;
    st->refused_400 += one->refused_400;
    st->refused_401 += one->refused_401;
    st->refused_403 += one->refused_403;
    st->refused_404 += one->refused_404;
    st->refused_426 += one->refused_426;
    st->refused_431 += one->refused_431;
    st->refused_503 += one->refused_503;
    st->refused_other += one->refused_other;
    st->handshake_timeouts += one->handshake_timeouts;
    st->refused_per_ip += one->refused_per_ip;
    st->refused_handshakes += one->refused_handshakes;
    st->refused_full += one->refused_full;
    st->shed_nofile += one->shed_nofile;
}

/* Every loop's counters as of its last snapshot, summed into st; returns the topics. */
static size_t sum_stats(wsx_server_stats *st)
{
    size_t topics = 0;
    for (unsigned k = 0; k < g_serve.runner.n_threads; k++) {
        for (size_t i = 0; i < g_serve.runner.n_srvs; i++)
            add_stats(st, &g_serve.t[k].stats[i]);
        topics += g_serve.t[k].topics;
    }
    return topics;
}

/* The connections, the traffic and the refused handshakes; snprintf's return. */
static int format_traffic(char *body, size_t cap, const wsx_server_stats *st, size_t topics,
                          const wsx_chat_stats *cs)
{
    return snprintf(
        body, cap,
        "# HELP wsx_connections_open Open WebSocket connections.\n"
        "# TYPE wsx_connections_open gauge\nwsx_connections_open %zu\n"
        "# HELP wsx_http_connections_open Open non-WebSocket connections (HTTP, SSE).\n"
        "# TYPE wsx_http_connections_open gauge\nwsx_http_connections_open %zu\n"
        "# HELP wsx_connections_accepted_total TCP connections accepted.\n"
        "# TYPE wsx_connections_accepted_total counter\nwsx_connections_accepted_total %llu\n"
        "# HELP wsx_upgrades_total WebSocket handshakes completed.\n"
        "# TYPE wsx_upgrades_total counter\nwsx_upgrades_total %llu\n"
        "# HELP wsx_messages_received_total WebSocket messages received.\n"
        "# TYPE wsx_messages_received_total counter\nwsx_messages_received_total %llu\n"
        "# HELP wsx_messages_sent_total WebSocket messages sent (a broadcast counts per "
        "recipient).\n"
        "# TYPE wsx_messages_sent_total counter\nwsx_messages_sent_total %llu\n"
        "# HELP wsx_bytes_received_total WebSocket payload bytes received.\n"
        "# TYPE wsx_bytes_received_total counter\nwsx_bytes_received_total %llu\n"
        "# HELP wsx_bytes_sent_total WebSocket payload bytes sent.\n"
        "# TYPE wsx_bytes_sent_total counter\nwsx_bytes_sent_total %llu\n"
        "# HELP wsx_topics Pub/sub topics with subscribers (a room with Socket.IO members has "
        "one more).\n"
        "# TYPE wsx_topics gauge\nwsx_topics %zu\n"
        "# HELP wsx_subscribers Room memberships (subscriptions).\n"
        "# TYPE wsx_subscribers gauge\nwsx_subscribers %zu\n"
        "# HELP wsx_sse_listeners Server-sent event streams open.\n"
        "# TYPE wsx_sse_listeners gauge\nwsx_sse_listeners %zu\n"
        "# HELP wsx_handshake_failures_total Upgrade or HTTP requests refused, by reason.\n"
        "# TYPE wsx_handshake_failures_total counter\n"
        "wsx_handshake_failures_total{reason=\"bad_request\"} %llu\n"
        "wsx_handshake_failures_total{reason=\"unauthorized\"} %llu\n"
        "wsx_handshake_failures_total{reason=\"forbidden_origin\"} %llu\n"
        "wsx_handshake_failures_total{reason=\"not_found\"} %llu\n"
        "wsx_handshake_failures_total{reason=\"unsupported_version\"} %llu\n"
        "wsx_handshake_failures_total{reason=\"head_too_large\"} %llu\n"
        "wsx_handshake_failures_total{reason=\"unavailable\"} %llu\n"
        "wsx_handshake_failures_total{reason=\"other\"} %llu\n"
        "wsx_handshake_failures_total{reason=\"timeout\"} %llu\n",
        st->open, st->http_open, (unsigned long long)st->accepted, (unsigned long long)st->upgrades,
        (unsigned long long)st->messages_in, (unsigned long long)st->messages_out,
        (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out, topics, cs->members,
        cs->listeners, (unsigned long long)st->refused_400, (unsigned long long)st->refused_401,
        (unsigned long long)st->refused_403, (unsigned long long)st->refused_404,
        (unsigned long long)st->refused_426, (unsigned long long)st->refused_431,
        (unsigned long long)st->refused_503, (unsigned long long)st->refused_other,
        (unsigned long long)st->handshake_timeouts);
}

/* The chat's history; snprintf's return. */
static int format_history(char *body, size_t cap, const wsx_chat_stats *cs)
{
    return snprintf(body, cap,
                    "# HELP wsx_history_bytes History held over all rooms, as counted against "
                    "--history-bytes.\n"
                    "# TYPE wsx_history_bytes gauge\nwsx_history_bytes %zu\n"
                    "# HELP wsx_history_messages Messages held in the history of all rooms.\n"
                    "# TYPE wsx_history_messages gauge\nwsx_history_messages %zu\n",
                    cs->history_bytes, cs->history_messages);
}

/* Admission, the process-wide queue budget and the chat's rate limits; snprintf's return. */
static int format_limits(char *body, size_t cap, const wsx_server_stats *st,
                         const wsx_chat_stats *cs)
{
    return snprintf(
        body, cap,
        "# HELP wsx_admission_refused_total Connections turned away when accepted (503, "
        "or closed at once), by reason: --max-per-ip, handshakes in progress "
        "(--max-handshakes-per-ip, --max-handshakes), the server full, no file "
        "descriptor.\n"
        "# TYPE wsx_admission_refused_total counter\n"
        "wsx_admission_refused_total{reason=\"per_ip\"} %llu\n"
        "wsx_admission_refused_total{reason=\"handshakes\"} %llu\n"
        "wsx_admission_refused_total{reason=\"full\"} %llu\n"
        "wsx_admission_refused_total{reason=\"nofile\"} %llu\n"
        "# HELP wsx_queued_bytes Bytes queued for sending in the whole process.\n"
        "# TYPE wsx_queued_bytes gauge\nwsx_queued_bytes %zu\n"
        "# HELP wsx_max_queued_bytes The budget of queued bytes (--max-queued-bytes); "
        "above it the largest queues are closed with 1008.\n"
        "# TYPE wsx_max_queued_bytes gauge\nwsx_max_queued_bytes %zu\n"
        "# HELP wsx_chat_rate_limited_total Chat messages, joins, leaves and posts refused with "
        "the error rate_limited.\n"
        "# TYPE wsx_chat_rate_limited_total counter\nwsx_chat_rate_limited_total %llu\n"
        "# HELP wsx_chat_rate_limit_closes_total Chat connections closed with 1008 for "
        "too many refusals.\n"
        "# TYPE wsx_chat_rate_limit_closes_total counter\n"
        "wsx_chat_rate_limit_closes_total %llu\n"
        "# HELP wsx_chat_rate_addresses Client addresses holding a per-address rate "
        "bucket (--rate-per-ip).\n"
        "# TYPE wsx_chat_rate_addresses gauge\nwsx_chat_rate_addresses %zu\n",
        (unsigned long long)st->refused_per_ip, (unsigned long long)st->refused_handshakes,
        (unsigned long long)st->refused_full, (unsigned long long)st->shed_nofile,
        wsx_queued_bytes(), wsx_max_queued_bytes(), (unsigned long long)cs->rate_limited,
        (unsigned long long)cs->rate_closes, cs->addresses);
}

static void serve_metrics(wsx_http_req *r)
{
    /* Our own loop's figures are fresh; the other loops' are from their last snapshot
     * (at most a second old). */
    take_snapshot();
    wsx_server_stats st = {0};
    size_t topics = sum_stats(&st);
    wsx_chat_stats cs;
    wsx_chat_get_stats(g_serve.chat, &cs);
    char body[8192];
    int n = format_traffic(body, sizeof body, &st, topics, &cs);
    if (n > 0 && (size_t)n < sizeof body)
        n += format_history(body + n, sizeof body - (size_t)n, &cs);
    if (n > 0 && (size_t)n < sizeof body)
        n += format_limits(body + n, sizeof body - (size_t)n, &st, &cs);
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain; version=0.0.4", 25}};
    wsx_http_respond(r, 200, h, 1, body, (size_t)n);
}

void serve_on_metrics(wsx_http_req *r, void *user)
{
    (void)user;
    if (!metrics_allowed(r)) {
        /* RFC 6750 3: a 401 names the scheme it wants. */
        wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                               {"WWW-Authenticate", 16, "Bearer realm=\"metrics\"", 22}};
        static const char body[] = "401 Unauthorized\n/metrics needs the token\n";
        wsx_http_respond(r, 401, h, 2, body, sizeof body - 1);
        return;
    }
    serve_lock();
    serve_metrics(r);
    serve_unlock();
}
