/*
 * `wsx serve --redis URL`: the rooms of several `wsx serve` processes (nodes) on one Redis
 * (src/cluster, docs/cluster.md). Every event the chat publishes to a room (message,
 * presence, online, typing) is relayed to the room's channel once; what other nodes
 * publish reaches this node's members and SSE listeners of the room through the same local
 * publish as its own events, on every loop.
 *
 * The relay lives on loop 0. With --threads, the other loops reach it through posts: their
 * events to relay, and the first and last subscriber of each room in their hubs (counted
 * with wsx_cluster_subscribe), so the node holds a room's channel while any loop has a
 * member or listener in it. /healthz and /metrics on the other loops read a snapshot of
 * the relay's figures that loop 0 refreshes (chat lock).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

#define ROOM_TOPIC  "room:"
#define SNAPSHOT_MS 250
#define TOPIC_CAP   (sizeof ROOM_TOPIC + WSX_CHAT_MAX_ROOM)
/* Presence (serve_presence.c): each node's people, every HEARTBEAT_MS on HEARTBEAT_TOPIC
 * (not a room: '*' is in no room name); a node silent for EXPIRE_MS is gone. */
#define HEARTBEAT_TOPIC ROOM_TOPIC "*nodes"
#define HEARTBEAT_MS    2000
#define EXPIRE_MS       (3 * HEARTBEAT_MS)

_Thread_local bool g_serve_delivering;

/* ---- message ids through Redis ----
 *
 * A chat message is numbered by Redis: one script per message INCRs the room's counter
 * (raised to this node's last seen id when lower: a Redis restarted empty), splices the id
 * into the JSON and PUBLISHes it with an envelope of node 0, which every node delivers, the
 * poster's included; so every node delivers a room's messages in the channel's one order,
 * with the same ids (wsx_chat_deliver). Redis away: the chat numbers its messages itself. */

/* The history: the numbered message also goes to the room's list KEYS[2] (the newest ARGV[6]
 * kept, none when 0; it expires ARGV[7] ms after the last message, none when 0), in the same
 * script, so the list holds exactly what the channel carried, in its order (serve_history.c). */
static const char seq_script[] =
    "local id = redis.call('INCR', KEYS[1])\n"
    "local floor = tonumber(ARGV[4])\n"
    "if id <= floor then id = floor + 1; redis.call('SET', KEYS[1], id) end\n"
    "local m = ARGV[1] .. string.format('%d', id) .. ARGV[2]\n"
    "redis.call('PUBLISH', ARGV[5], ARGV[3] .. m)\n"
    "local cap = tonumber(ARGV[6])\n"
    "if cap > 0 then\n"
    "  redis.call('RPUSH', KEYS[2], m)\n"
    "  redis.call('LTRIM', KEYS[2], -cap, -1)\n"
    "  if tonumber(ARGV[7]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[7]) end\n"
    "end\n"
    "return id\n";

static const char msg_head[] = "{\"type\":\"message\",\"id\":";
#define MSG_HEAD (sizeof msg_head - 1)

typedef struct seq_req {
    char room[WSX_CHAT_MAX_ROOM + 1];
    size_t len;
    char json[]; /* with "id":0 */
} seq_req;

/* Delivers a message of this chat or another, numbered (or, id 0, to be numbered here), as
 * a message from Redis: not relayed again. Chat lock held. */
static void deliver(const char *room, uint64_t id, const char *json, size_t len)
{
    g_serve_delivering = true;
    int rc = wsx_chat_deliver(g_serve.chat, room, id, json, len);
    g_serve_delivering = false;
    if (rc < 0)
        tool_logf(WSX_LOG_WARN, "room %s: message %llu not delivered: %s", room,
                  (unsigned long long)id, wsx_strerror(rc));
}

static void seq_reply(wsx_cluster *cl, const wsx_cluster_reply *r, void *arg)
{
    seq_req *q = arg;
    serve_lock();
    if (r->type == WSX_CLUSTER_REPLY_INTEGER && r->integer > 0) {
        char topic[TOPIC_CAP];
        snprintf(topic, sizeof topic, ROOM_TOPIC "%s", q->room);
        /* Subscribed (members or listeners here), the channel brings it back in order; else
         * it only goes to the room's history here. */
        if (!wsx_cluster_subscribed(cl, topic)) {
            char num[24];
            int n = snprintf(num, sizeof num, "%lld", r->integer);
            size_t rest = q->len - MSG_HEAD - 1, total = MSG_HEAD + (size_t)n + rest;
            char *s = malloc(total);
            if (s) {
                memcpy(s, msg_head, MSG_HEAD);
                memcpy(s + MSG_HEAD, num, (size_t)n);
                memcpy(s + MSG_HEAD + (size_t)n, q->json + MSG_HEAD + 1, rest);
                deliver(q->room, (uint64_t)r->integer, s, total);
            }
            free(s);
        }
    } else {
        /* Not numbered (an error, or the connection went): numbered here rather than lost. */
        tool_logf(WSX_LOG_INFO,
                  "room %s: a message was not numbered by Redis (%.*s): numbered here", q->room,
                  r->type == WSX_CLUSTER_REPLY_ERROR ? (int)r->len : 13,
                  r->type == WSX_CLUSTER_REPLY_ERROR ? r->str : "no connection");
        deliver(q->room, 0, q->json, q->len);
    }
    serve_unlock();
    free(q);
}

/* Sends the script for a message (json with "id":0) of room. On loop 0, chat lock held.
 * Returns 0 (seq_reply follows) or < 0. */
static int seq_eval(const char *room, const char *json, size_t len)
{
    wsx_cluster *cl = g_serve.cluster;
    if (!cl) return WSX_ECLOSED;
    if (len < MSG_HEAD + 2 || memcmp(json, msg_head, MSG_HEAD) || json[MSG_HEAD] != '0')
        return WSX_EINVAL;
    char topic[TOPIC_CAP], ch[128], key[140], hkey[140], last[24], cap[24], ttl[24];
    snprintf(topic, sizeof topic, ROOM_TOPIC "%s", room);
    ptrdiff_t chn = wsx_cluster_channel(cl, topic, ch, sizeof ch);
    if (chn < 0) return (int)chn;
    int kn = snprintf(key, sizeof key, "%s:id", ch);
    int hn = snprintf(hkey, sizeof hkey, "%s:history", ch);
    int cn = snprintf(cap, sizeof cap, "%zu", g_serve.chat_opts.history);
    int tn =
        snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)g_serve.chat_opts.history_idle_ms);
    int ln = snprintf(last, sizeof last, "%llu",
                      (unsigned long long)wsx_chat_last_id(g_serve.chat, room));
    uint8_t env[WSX_CLUSTER_HEAD];
    wsx_cluster_envelope(env, 0, 0, WSX_TEXT);
    seq_req *q = malloc(sizeof *q + len);
    if (!q) return WSX_ENOMEM;
    snprintf(q->room, sizeof q->room, "%s", room);
    q->len = len;
    memcpy(q->json, json, len);
    const char *argv[] = {
        "EVAL", seq_script, "2", key, hkey, json, json + MSG_HEAD + 1, (const char *)env,
        last,   ch,         cap, ttl};
    size_t lens[] = {4,
                     sizeof seq_script - 1,
                     1,
                     (size_t)kn,
                     (size_t)hn,
                     MSG_HEAD,
                     len - MSG_HEAD - 1,
                     sizeof env,
                     (size_t)ln,
                     (size_t)chn,
                     (size_t)cn,
                     (size_t)tn};
    int rc = wsx_cluster_command(cl, 12, argv, lens, seq_reply, q);
    if (rc < 0) free(q);
    return rc;
}

static void on_message(wsx_cluster *cl, const wsx_cluster_msg *m, void *user)
{
    (void)cl;
    (void)user;
    size_t pl = sizeof ROOM_TOPIC - 1;
    const char *room = m->topic + pl, *json = (const char *)m->data;
    if (!strcmp(m->topic, HEARTBEAT_TOPIC)) {
        serve_lock();
        serve_presence_heartbeat(m->node, json, m->len);
        serve_unlock();
        return;
    }
    /* The chat speaks compact JSON text only; another kind of message on a room is not ours.
     * A line break would end an SSE event early (serve_sse_format writes the JSON on one
     * data: line): whatever else publishes on the Redis cannot forge events that way. */
    if (m->type != WSX_TEXT || strncmp(m->topic, ROOM_TOPIC, pl) ||
        !wsx_chat_valid_room(room, strlen(room)) || memchr(json, '\n', m->len) ||
        memchr(json, '\r', m->len))
        return;
    if (m->len > MSG_HEAD && !memcmp(json, msg_head, MSG_HEAD)) {
        /* A message, numbered by Redis (or, Redis having been away, by its node). */
        uint64_t id = strtoull(json + MSG_HEAD, NULL, 10);
        if (!id) return;
        serve_lock();
        deliver(room, id, json, m->len);
        serve_unlock();
        return;
    }
    serve_lock();
    size_t ml = 0;
    char *mine = serve_presence_remote(m->node, room, json, m->len, &ml);
    /* tag: the message's id on the node that posted it (0 for other events), for the SSE
     * listeners (docs/cluster.md: ids are per node). */
    serve_publish_local(room, mine ? mine : json, mine ? ml : m->len, m->tag, NULL);
    serve_relay_loops(room, mine ? mine : json, mine ? ml : m->len, m->tag);
    serve_unlock();
    free(mine);
}

static void snapshot(void)
{
    serve_lock();
    if (g_serve.cluster) wsx_cluster_get_stats(g_serve.cluster, &g_serve.cluster_st);
    serve_unlock();
}

static void on_state(wsx_cluster *cl, wsx_cluster_state s, const char *why, void *user)
{
    (void)cl;
    (void)why;
    (void)user;
    /* Messages published while this node is not subscribed are not on the channel: every
     * room's history here may be missing some again (serve_history.c reads them). */
    if (s != WSX_CLUSTER_UP) wsx_chat_history_clear_complete(g_serve.chat);
    snapshot();
}

/* This node's people to the others, and the people of silent nodes out. */
static void heartbeat_timer(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    size_t len = 0;
    serve_lock();
    char *hb = serve_presence_state(&len);
    serve_presence_expire(wsx_loop_now(g_serve.runner.t[0].loop), EXPIRE_MS);
    serve_unlock();
    if (hb && g_serve.cluster)
        (void)wsx_cluster_publish(g_serve.cluster, HEARTBEAT_TOPIC, hb, len, WSX_TEXT, 0);
    free(hb);
}

static void snapshot_timer(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    snapshot();
}

/* ---- the other loops: posts to loop 0 ---- */

enum { JOB_PUBLISH, JOB_SUBSCRIBE, JOB_UNSUBSCRIBE, JOB_SEQUENCE };

typedef struct cluster_job {
    int kind;
    uint64_t id;
    char topic[TOPIC_CAP];
    size_t len;
    char json[];
} cluster_job;

/* On loop 0. The relay may be gone (shutdown): then the job is dropped. */
static void run_job(void *arg)
{
    cluster_job *j = arg;
    if (!g_serve.cluster && j->kind == JOB_SEQUENCE) {
        /* Offered while the relay was up, and it is gone (shutdown): numbered here. */
        serve_lock();
        deliver(j->topic + sizeof ROOM_TOPIC - 1, 0, j->json, j->len);
        serve_unlock();
    }
    if (g_serve.cluster) {
        if (j->kind == JOB_PUBLISH)
            (void)wsx_cluster_publish(g_serve.cluster, j->topic, j->json, j->len, WSX_TEXT, j->id);
        else if (j->kind == JOB_SEQUENCE) {
            serve_lock();
            if (seq_eval(j->topic + sizeof ROOM_TOPIC - 1, j->json, j->len) < 0)
                deliver(j->topic + sizeof ROOM_TOPIC - 1, 0, j->json, j->len);
            serve_unlock();
        } else if (j->kind == JOB_SUBSCRIBE)
            (void)wsx_cluster_subscribe(g_serve.cluster, j->topic);
        else
            (void)wsx_cluster_unsubscribe(g_serve.cluster, j->topic);
    }
    free(j);
}

static void post_job(int kind, const char *topic, const char *json, size_t len, uint64_t id)
{
    cluster_job *j = malloc(sizeof *j + len);
    if (!j) {
        tool_logf(WSX_LOG_WARN, "out of memory: a room event is not relayed to Redis");
        return;
    }
    j->kind = kind;
    j->id = id;
    j->len = len;
    snprintf(j->topic, sizeof j->topic, "%s", topic);
    if (len) memcpy(j->json, json, len);
    /* Freed unrun if loop 0 has finished (shutdown). */
    wsx_loop_post_owned(g_serve.runner.t[0].loop, run_job, j, free);
}

static void other_first(wsx_hub *h, const char *topic, void *arg)
{
    (void)h;
    (void)arg;
    if (!strncmp(topic, ROOM_TOPIC, sizeof ROOM_TOPIC - 1) && strlen(topic) < TOPIC_CAP)
        post_job(JOB_SUBSCRIBE, topic, NULL, 0, 0);
}

static void other_last(wsx_hub *h, const char *topic, void *arg)
{
    (void)h;
    (void)arg;
    if (!strncmp(topic, ROOM_TOPIC, sizeof ROOM_TOPIC - 1) && strlen(topic) < TOPIC_CAP)
        post_job(JOB_UNSUBSCRIBE, topic, NULL, 0, 0);
}

/* A room's channel held for members the hub hooks do not see: Socket.IO members subscribe
 * to a topic of their own kind ("chat-sio:R"), so without this a node whose only members
 * of a room are Socket.IO clients would not subscribe to the room's channel and would miss
 * what other nodes post. Counted like the other loops' first/last subscribers. */
void serve_cluster_hold(const char *room, bool on)
{
    if (!g_serve.redis_url) return;
    char topic[TOPIC_CAP];
    int n = snprintf(topic, sizeof topic, ROOM_TOPIC "%s", room);
    if (n < 0 || (size_t)n >= sizeof topic) return;
    if (g_serve_thread != 0) {
        post_job(on ? JOB_SUBSCRIBE : JOB_UNSUBSCRIBE, topic, NULL, 0, 0);
        return;
    }
    if (!g_serve.cluster) return;
    if (on)
        (void)wsx_cluster_subscribe(g_serve.cluster, topic);
    else
        (void)wsx_cluster_unsubscribe(g_serve.cluster, topic);
}

/* ---- the command's side ---- */

bool serve_cluster_start(void)
{
    if (!g_serve.redis_url) return true;
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.url = g_serve.redis_url;
    o.topic_prefix = ROOM_TOPIC;
    o.on_message = on_message;
    o.on_state = on_state;
    o.on_log = tool_log_cb;
    o.log_level = g_log.quiet ? WSX_LOG_WARN : WSX_LOG_INFO;
    wsx_error err;
    wsx_loop *loop0 = g_serve.runner.t[0].loop;
    int rc = wsx_cluster_start(loop0, &o, &g_serve.cluster, &err);
    if (rc < 0) {
        fprintf(stderr, "wsx serve: --redis %s: %s%s%s\n", g_serve.redis_url, wsx_strerror(rc),
                err.detail[0] ? ": " : "", err.detail);
        return false;
    }
    wsx_cluster_get_stats(g_serve.cluster, &g_serve.cluster_st);
    if (wsx_cluster_subscribe(g_serve.cluster, HEARTBEAT_TOPIC) < 0 ||
        wsx_timer_start(loop0, HEARTBEAT_MS / 4, HEARTBEAT_MS, heartbeat_timer, NULL,
                        &g_serve.cluster_heartbeat) < 0) {
        fprintf(stderr, "wsx serve: out of memory\n");
        serve_cluster_stop();
        return false;
    }
    if (g_serve.runner.n_threads > 1) {
        /* The loops do not run yet: their hubs may be set from here. */
        wsx_hub_hooks hooks = {other_first, other_last, NULL};
        for (unsigned k = 1; k < g_serve.runner.n_threads; k++) {
            wsx_hub *hub = wsx_hub_of(g_serve.runner.t[k].loop);
            if (!hub) {
                fprintf(stderr, "wsx serve: out of memory\n");
                serve_cluster_stop();
                return false;
            }
            wsx_hub_set_hooks(hub, &hooks);
        }
        wsx_timer_start(loop0, SNAPSHOT_MS, SNAPSHOT_MS, snapshot_timer, NULL,
                        &g_serve.cluster_snapshot);
    }
    return true;
}

void serve_cluster_stop(void)
{
    if (!g_serve.cluster) return;
    snapshot();
    wsx_timer_stop(g_serve.cluster_snapshot);
    wsx_timer_stop(g_serve.cluster_heartbeat);
    g_serve.cluster_snapshot = g_serve.cluster_heartbeat = NULL;
    serve_lock();
    wsx_cluster *cl = g_serve.cluster;
    g_serve.cluster = NULL;
    serve_unlock();
    wsx_cluster_stop(cl);
}

bool serve_cluster_sequence(const char *room, const char *json, size_t len)
{
    if (!g_serve.redis_url) return false;
    if (g_serve_thread == 0) return g_serve.cluster && seq_eval(room, json, len) == 0;
    /* Another loop: the relay's state as of its last snapshot (chat lock held). */
    if (g_serve.cluster_st.state != WSX_CLUSTER_UP) return false;
    char topic[TOPIC_CAP];
    snprintf(topic, sizeof topic, ROOM_TOPIC "%s", room);
    post_job(JOB_SEQUENCE, topic, json, len, 0);
    return true;
}

void serve_cluster_publish(const char *room, const char *json, size_t len, uint64_t id)
{
    if (!g_serve.redis_url) return;
    char topic[TOPIC_CAP];
    snprintf(topic, sizeof topic, ROOM_TOPIC "%s", room);
    if (g_serve_thread != 0) {
        post_job(JOB_PUBLISH, topic, json, len, id);
        return;
    }
    /* Not relayed while Redis is down: counted by the cluster, never queued. */
    if (g_serve.cluster) (void)wsx_cluster_publish(g_serve.cluster, topic, json, len, WSX_TEXT, id);
}

/* The relay's figures: live on loop 0, else the snapshot. Chat lock held. */
static bool stats(wsx_cluster_stats *st)
{
    if (!g_serve.redis_url) return false;
    if (g_serve_thread == 0 && g_serve.cluster)
        wsx_cluster_get_stats(g_serve.cluster, st);
    else
        *st = g_serve.cluster_st;
    return true;
}

bool serve_cluster_degraded(void)
{
    wsx_cluster_stats st;
    serve_lock();
    bool have = stats(&st);
    serve_unlock();
    return have && st.state != WSX_CLUSTER_UP;
}

int serve_cluster_metrics(char *out, size_t cap)
{
    wsx_cluster_stats st;
    if (!stats(&st)) return 0;
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
        "# HELP wsx_redis_bad_total Messages on room channels dropped as malformed.\n"
        "# TYPE wsx_redis_bad_total counter\nwsx_redis_bad_total %llu\n"
        "# HELP wsx_redis_channels Room channels this node is subscribed to.\n"
        "# TYPE wsx_redis_channels gauge\nwsx_redis_channels %zu\n",
        st.state == WSX_CLUSTER_UP, (unsigned long long)st.relayed, (unsigned long long)st.received,
        (unsigned long long)st.not_relayed, (unsigned long long)st.reconnects,
        (unsigned long long)st.failures, (unsigned long long)st.bad, st.channels);
}
