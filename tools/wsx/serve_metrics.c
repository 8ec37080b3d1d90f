/* `wsx serve`: /metrics, the common families (metrics.c) and the chat's. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "serve.h"

/* /metrics shows who is connected and how busy the server is: with --metrics-token only
 * that token opens it, else --token does; without either it is public. */
static bool metrics_allowed(const wsx_http_req *rq)
{
    const char *want = g_serve.metrics_token ? g_serve.metrics_token : g_serve.token;
    return !want || serve_has_token(rq, want);
}

#define CS(f) offsetof(wsx_chat_stats, f)
/* The chat's families, read from wsx_chat_stats. */
static const tool_metric_row chat_rows[] = {
    {"wsx_subscribers", "gauge", "Room memberships (the same count as wsx_chat_members).", NULL,
     CS(members), true},
    {"wsx_chat_rooms", "gauge",
     "Rooms in memory: with members, SSE listeners or history (--history-idle drops idle "
     "ones).",
     NULL, CS(rooms), true},
    {"wsx_chat_members", "gauge", "WebSocket connections in a room.", NULL, CS(members), true},
    {"wsx_chat_connections", "gauge", "WebSocket connections of the chat (in a room or not).", NULL,
     CS(conns), true},
    {"wsx_sse_listeners", "gauge", "Server-sent event streams open.", NULL, CS(listeners), true},
    {"wsx_history_bytes", "gauge",
     "History held over all rooms, as counted against --history-bytes.", NULL, CS(history_bytes),
     true},
    {"wsx_history_messages", "gauge", "Messages held in the history of all rooms.", NULL,
     CS(history_messages), true},
    {"wsx_chat_rate_limited_total", "counter",
     "Chat messages, joins, leaves and posts refused with the error rate_limited (--rate, "
     "--join-rate, --rate-per-ip, --join-rate-per-ip, --post-rate).",
     NULL, CS(rate_limited), false},
    {"wsx_chat_rate_limit_closes_total", "counter",
     "Chat connections closed with 1008 for too many refusals.", NULL, CS(rate_closes), false},
    {"wsx_chat_rate_addresses", "gauge",
     "Client addresses holding a per-address rate bucket (--rate-per-ip).", NULL, CS(addresses),
     true},
};

static void serve_metrics(wsx_http_req *r)
{
    /* Our own loop's figures are fresh; the other loops' are from their last snapshot
     * (at most a second old). */
    tool_metrics_snapshot(g_serve_thread);
    wsx_server_stats st;
    size_t topics = tool_metrics_sum(&st);
    /* The Socket.IO layer's own topics (each socket's room, the namespace's) are not rooms:
     * left out, for this loop (other loops' are in their snapshots; exact with one loop). */
    size_t own = serve_sio_own_topics();
    topics = topics > own ? topics - own : 0;
    wsx_chat_stats cs;
    serve_lock();
    wsx_chat_get_stats(g_serve.chat, &cs);
    serve_unlock();
    tool_mbuf b = {0};
    tool_metrics_common(&b, &st, topics);
    tool_metric_rows(&b, chat_rows, sizeof chat_rows / sizeof chat_rows[0], &cs);
    char cluster[2048];
    int n = serve_cluster_metrics(cluster, sizeof cluster);
    if (n > 0 && (size_t)n < sizeof cluster) tool_mbuf_printf(&b, "%s", cluster);
    n = serve_history_metrics(cluster, sizeof cluster);
    if (n > 0 && (size_t)n < sizeof cluster) tool_mbuf_printf(&b, "%s", cluster);
    tool_metrics_respond(r, &b);
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
    serve_metrics(r);
}
