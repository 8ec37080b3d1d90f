/*
 * `wsx serve --redis URL`: the rooms of several `wsx serve` processes (nodes) on one Redis
 * (src/cluster, docs/cluster.md). Every event the chat publishes to a room (message,
 * presence, online, typing) is relayed to the room's channel once; what other nodes
 * publish reaches this node's members and SSE listeners of the room through the same local
 * publish as its own events. The cluster runs on loop 0; --redis takes one loop.
 */
#include <stdio.h>
#include <string.h>

#include "serve.h"

#define ROOM_TOPIC "room:"

static void on_message(wsx_cluster *cl, const char *topic, const uint8_t *data, size_t len,
                       int type, uint64_t tag, void *user)
{
    (void)cl;
    (void)user;
    size_t pl = sizeof ROOM_TOPIC - 1;
    /* The chat speaks JSON text only; another kind of message on a room is not ours. */
    if (type != WSX_TEXT || strncmp(topic, ROOM_TOPIC, pl) ||
        !wsx_chat_valid_room(topic + pl, strlen(topic + pl)))
        return;
    serve_lock();
    /* tag: the message's id on the node that posted it (0 for other events), for the SSE
     * listeners (docs/cluster.md: ids are per node). */
    serve_publish_local(topic + pl, (const char *)data, len, tag, NULL);
    serve_unlock();
}

bool serve_cluster_start(void)
{
    if (!g_serve.redis_url) return true;
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.url = g_serve.redis_url;
    o.topic_prefix = ROOM_TOPIC;
    o.on_message = on_message;
    o.on_log = tool_log_cb;
    o.log_level = g_log.quiet ? WSX_LOG_WARN : WSX_LOG_INFO;
    wsx_error err;
    int rc = wsx_cluster_start(g_serve.runner.t[0].loop, &o, &g_serve.cluster, &err);
    if (rc < 0) {
        fprintf(stderr, "wsx serve: --redis %s: %s%s%s\n", g_serve.redis_url, wsx_strerror(rc),
                err.detail[0] ? ": " : "", err.detail);
        return false;
    }
    return true;
}

void serve_cluster_stop(void)
{
    wsx_cluster_stop(g_serve.cluster);
    g_serve.cluster = NULL;
}

void serve_cluster_publish(const char *room, const char *json, size_t len, uint64_t id)
{
    if (!g_serve.cluster) return;
    char topic[sizeof ROOM_TOPIC + WSX_CHAT_MAX_ROOM];
    snprintf(topic, sizeof topic, ROOM_TOPIC "%s", room);
    /* Not relayed while Redis is down: counted by the cluster, never queued. */
    (void)wsx_cluster_publish(g_serve.cluster, topic, json, len, WSX_TEXT, id);
}

bool serve_cluster_degraded(void)
{
    if (!g_serve.cluster) return false;
    wsx_cluster_stats st;
    wsx_cluster_get_stats(g_serve.cluster, &st);
    return st.state != WSX_CLUSTER_UP;
}

int serve_cluster_metrics(char *out, size_t cap)
{
    if (!g_serve.cluster) return 0;
    wsx_cluster_stats st;
    wsx_cluster_get_stats(g_serve.cluster, &st);
    return snprintf(
        out, cap,
        "# HELP wsx_redis_up 1 when the Redis relay is up (--redis), 0 while it reconnects.\n"
        "# TYPE wsx_redis_up gauge\nwsx_redis_up %d\n"
        "# HELP wsx_redis_relayed_total Room events published to Redis.\n"
        "# TYPE wsx_redis_relayed_total counter\nwsx_redis_relayed_total %llu\n"
        "# HELP wsx_redis_received_total Room events from other nodes delivered here.\n"
        "# TYPE wsx_redis_received_total counter\nwsx_redis_received_total %llu\n"
        "# HELP wsx_redis_not_relayed_total Room events not relayed (Redis down, or too "
        "much pending).\n"
        "# TYPE wsx_redis_not_relayed_total counter\nwsx_redis_not_relayed_total %llu\n"
        "# HELP wsx_redis_reconnects_total Times the relay came up again after being down.\n"
        "# TYPE wsx_redis_reconnects_total counter\nwsx_redis_reconnects_total %llu\n"
        "# HELP wsx_redis_failures_total Redis connections that failed or were lost.\n"
        "# TYPE wsx_redis_failures_total counter\nwsx_redis_failures_total %llu\n"
        "# HELP wsx_redis_channels Room channels this node is subscribed to.\n"
        "# TYPE wsx_redis_channels gauge\nwsx_redis_channels %zu\n",
        st.state == WSX_CLUSTER_UP, (unsigned long long)st.relayed, (unsigned long long)st.received,
        (unsigned long long)st.not_relayed, (unsigned long long)st.reconnects,
        (unsigned long long)st.failures, st.channels);
}
