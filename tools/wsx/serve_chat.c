/*
 * `wsx serve`: how src/chat reaches connections and SSE listeners (its ops), the history
 * caches of each loop, the relay of a room's messages between loops, and the WebSocket
 * front end of the chat (the callbacks of the /ws route).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "serve.h"

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* The rate limits and idle timers run on this one: a wall clock set back (NTP, an operator)
 * must not refuse every message until it catches up, nor set forward refill every bucket. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void peer_of(wsx_conn *c, char *buf, size_t cap)
{
    if (wsx_conn_peer(c, buf, cap) < 0) snprintf(buf, cap, "-");
}

/* A message for the members of a room on another loop, and its SSE listeners there. */
typedef struct relay_job {
    unsigned thread;
    uint64_t id; /* a chat message's id (SSE listeners get those), else 0 */
    char room[WSX_CHAT_MAX_ROOM + 1];
    size_t len;
    char json[];
} relay_job;

static void run_relay(void *arg)
{
    relay_job *j = arg;
    serve_lock();
    serve_publish_local(j->room, j->json, j->len, j->id, NULL);
    serve_unlock();
    free(j);
}

void serve_relay_loops(const char *room, const char *json, size_t len, uint64_t id)
{
    for (unsigned k = 0; k < g_serve.runner.n_threads; k++) {
        if (k == g_serve_thread) continue;
        relay_job *j = malloc(sizeof *j + len + 1);
        if (!j) continue;
        j->thread = k;
        j->id = id;
        j->len = len;
        snprintf(j->room, sizeof j->room, "%s", room);
        memcpy(j->json, json, len);
        j->json[len] = '\0';
        /* Freed unrun if that loop has already finished (the server is stopping). */
        wsx_loop_post_owned(g_serve.runner.t[k].loop, run_relay, j, free);
    }
}

/* Sends json to everyone in a room: this loop's members at once (framed once by the topic),
 * the other loops' through their post queues, the other nodes' through Redis (--redis);
 * chat messages (id != 0) also to the SSE listeners. Called by the chat with its lock held. */
static void op_publish(const char *room, const char *json, size_t len, uint64_t id, void *except,
                       void *user)
{
    (void)user;
    /* --redis: this node's members see presence over every node; the other nodes get the
     * event as the chat made it (this node's list). */
    size_t ml = 0;
    char *mine = g_serve.redis_url ? serve_presence_local(room, json, len, &ml) : NULL;
    serve_publish_local(room, mine ? mine : json, mine ? ml : len, id, except);
    if (!g_serve_delivering) serve_cluster_publish(room, json, len, id);
    serve_relay_loops(room, mine ? mine : json, mine ? ml : len, id);
    free(mine);
}

static void op_send(void *conn, const char *json, size_t len, void *user)
{
    (void)user;
    size_t ml = 0;
    char *joined = g_serve.redis_url ? serve_presence_joined(json, len, &ml) : NULL;
    if (SERVE_IS_SIO(conn))
        serve_sio_send(conn, joined ? joined : json, joined ? ml : len);
    else
        wsx_send(conn, joined ? joined : json, joined ? ml : len, WSX_TEXT);
    free(joined);
}

static int op_subscribe(void *conn, const char *room, void *user)
{
    (void)user;
    if (SERVE_IS_SIO(conn)) return serve_sio_subscribe(conn, room);
    char topic[64];
    snprintf(topic, sizeof topic, "room:%s", room);
    return wsx_subscribe(conn, topic);
}

static void op_unsubscribe(void *conn, const char *room, void *user)
{
    (void)user;
    if (SERVE_IS_SIO(conn)) {
        serve_sio_unsubscribe(conn, room);
        return;
    }
    char topic[64];
    snprintf(topic, sizeof topic, "room:%s", room);
    wsx_unsubscribe(conn, topic);
    serve_history_left(room);
}

static size_t op_queued(void *conn, void *user)
{
    (void)user;
    return SERVE_IS_SIO(conn) ? serve_sio_queued(conn) : wsx_buffered_amount(conn);
}

static uint64_t op_now(void *user)
{
    (void)user;
    return now_ms();
}

static uint64_t op_clock(void *user)
{
    (void)user;
    return mono_ms();
}

static void op_sse_send(void *listener, uint64_t id, const char *json, size_t len, void *user)
{
    (void)user;
    serve_sse_send(listener, id, json, len);
}

/* ---- shared history: what a room's history is sent as, built once per loop ---- */

/* A room's history as one loop shares it: the `history` message framed once (every join
 * queues it by reference) and the SSE events formatted once into one buffer, with each
 * event's id and offset (a replay after Last-Event-ID is one slice of it). Built on first
 * use after each change of the history. The buffers' reference counts belong to the loop's
 * thread, so each loop has its own, and another thread releases them through the loop. */
typedef struct hist_loop {
    wsx_prepared *ws;
    wsx_bytes *sse;
    uint64_t *ids; /* ids[i]: the id of the i-th event; offs[i]: its offset; offs[n]: the end */
    size_t *offs;
    size_t n;
} hist_loop;

typedef struct hist_cache {
    hist_loop t[MAX_THREADS];
} hist_cache;

static void hist_loop_release(hist_loop *hl)
{
    wsx_prepared_release(hl->ws);
    wsx_bytes_release(hl->sse);
    free(hl->ids);
    free(hl->offs);
    memset(hl, 0, sizeof *hl);
}

static void run_hist_release(void *arg)
{
    hist_loop_release(arg);
    free(arg);
}

/* The post did not run: after the loops are done (their loop is being freed) no thread
 * uses the buffers any more and they go now; a refused post cannot hand them over, and
 * keeping them (a leak) is safer than racing that loop's thread. */
static void drop_hist_release(void *arg)
{
    if (g_serve.loops_done) {
        run_hist_release(arg);
        return;
    }
    tool_logf(WSX_LOG_WARN, "out of memory: a room's history cache is leaked");
    free(arg);
}

static hist_loop *hist_of(void **cache)
{
    if (!*cache) *cache = calloc(1, sizeof(hist_cache));
    return *cache ? &((hist_cache *)*cache)->t[g_serve_thread] : NULL;
}

static void op_send_history(void *conn, void **cache, const wsx_chat_history *h, void *user)
{
    (void)user;
    if (SERVE_IS_SIO(conn)) {
        serve_sio_send_history(conn, h);
        return;
    }
    hist_loop *hl = hist_of(cache);
    if (hl && hl->ws) {
        wsx_send_prepared(conn, hl->ws);
        return;
    }
    size_t len;
    char *json = wsx_chat_history_json(h, &len);
    if (!json) return;
    if (hl && wsx_prepare(wsx_conn_server(conn), json, len, WSX_TEXT, &hl->ws) == 0)
        wsx_send_prepared(conn, hl->ws);
    else
        wsx_send(conn, json, len, WSX_TEXT);
    free(json);
}

/* Formats the whole history as SSE events into hl. */
static bool build_sse_history(hist_loop *hl, const wsx_chat_history *h)
{
    size_t n = wsx_chat_history_count(h), total = 0, len;
    uint64_t id;
    hl->ids = malloc((n + 1) * sizeof *hl->ids);
    hl->offs = malloc((n + 1) * sizeof *hl->offs);
    if (!hl->ids || !hl->offs) goto fail;
    for (size_t i = 0; i < n; i++) {
        const char *json = wsx_chat_history_get(h, i, &id, &len);
        hl->ids[i] = id;
        hl->offs[i] = total;
        total += serve_sse_format(NULL, id, json, len);
    }
    hl->offs[n] = total;
    if (wsx_bytes_new(NULL, total, &hl->sse) < 0) goto fail;
    char *out = (char *)wsx_bytes_data(hl->sse);
    for (size_t i = 0; i < n; i++) {
        const char *json = wsx_chat_history_get(h, i, &id, &len);
        serve_sse_format(out + hl->offs[i], id, json, len);
    }
    hl->n = n;
    return true;
fail:
    free(hl->ids);
    free(hl->offs);
    hl->ids = NULL;
    hl->offs = NULL;
    return false;
}

static void op_sse_history(void *listener, void **cache, const wsx_chat_history *h, uint64_t after,
                           void *user)
{
    (void)user;
    sse *l = listener;
    hist_loop *hl = hist_of(cache);
    if (!hl || (!hl->sse && !build_sse_history(hl, h))) {
        for (size_t i = 0; i < wsx_chat_history_count(h); i++) {
            uint64_t id;
            size_t len;
            const char *json = wsx_chat_history_get(h, i, &id, &len);
            if (id > after) serve_sse_send(l, id, json, len);
        }
        return;
    }
    /* Ids grow: the first event after `after` by bisection, the rest is one slice. */
    size_t lo = 0, hi = hl->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hl->ids[mid] > after)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < hl->n)
        wsx_http_write_bytes(l->r, hl->sse, hl->offs[lo], hl->offs[hl->n] - hl->offs[lo]);
}

static void op_cache_free(void *cache, void *user)
{
    (void)user;
    hist_cache *hc = cache;
    for (unsigned k = 0; k < g_serve.runner.n_threads; k++) {
        hist_loop *hl = &hc->t[k];
        if (!hl->ws && !hl->sse) continue;
        if (k == g_serve_thread || g_serve.loops_done) {
            hist_loop_release(hl);
            continue;
        }
        /* Frames of this loop may still be queued on its connections: its thread lets go. */
        hist_loop *job = malloc(sizeof *job);
        if (job) {
            *job = *hl;
            wsx_loop_post_owned(g_serve.runner.t[k].loop, run_hist_release, job, drop_hist_release);
            continue;
        }
        tool_logf(WSX_LOG_WARN, "out of memory: a room's history cache is leaked");
    }
    free(hc);
}

/* What serve keeps per WebSocket connection (its user pointer): its place in the chat,
 * and who it is for the log lines. */
typedef struct serve_conn {
    wsx_chat_conn *cc;
    tool_conn_id ci;
    serve_hist_wait *wait; /* its join waits for the room's history from Redis */
} serve_conn;

/* The chat closes a connection that keeps flooding past its rate limit. */
static void op_close(void *conn, int code, const char *reason, void *user)
{
    (void)user;
    if (SERVE_IS_SIO(conn)) {
        serve_sio_close(conn, code, reason);
        return;
    }
    serve_conn *sc = wsx_conn_user(conn);
    if (sc) {
        char name[24];
        tool_field f[] = {TOOL_FS("conn", tool_conn_name(&sc->ci, name, sizeof name)),
                          TOOL_FS("peer", sc->ci.peer), TOOL_FS("path", "/ws"),
                          TOOL_FN("code", code), TOOL_FS("reason", reason)};
        tool_log_fields(WSX_LOG_WARN, f, 5, "%s %s closing with %d: %s", sc->ci.peer, name, code,
                        reason);
    }
    wsx_close(conn, code, reason);
}

static bool op_sequence(const char *room, const char *json, size_t len, void *user)
{
    (void)user;
    return serve_cluster_sequence(room, json, len);
}

const wsx_chat_ops serve_chat_ops = {
    .send = op_send,
    .publish = op_publish,
    .subscribe = op_subscribe,
    .unsubscribe = op_unsubscribe,
    .queued = op_queued,
    .now_ms = op_now,
    .clock_ms = op_clock,
    .sse_send = op_sse_send,
    .send_history = op_send_history,
    .sse_history = op_sse_history,
    .cache_free = op_cache_free,
    .close = op_close,
    .sequence = op_sequence,
};

const struct sockaddr *serve_peer_addr(const char *text, struct sockaddr_storage *ss)
{
    char host[64];
    memset(ss, 0, sizeof *ss);
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || (size_t)(end - text - 1) >= sizeof host) return NULL;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = 0;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) return NULL;
        a6->sin6_family = AF_INET6;
        return (const struct sockaddr *)ss;
    }
    const char *colon = strrchr(text, ':');
    size_t n = colon ? (size_t)(colon - text) : strlen(text);
    if (n >= sizeof host) return NULL;
    memcpy(host, text, n);
    host[n] = 0;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) return NULL;
    a4->sin_family = AF_INET;
    return (const struct sockaddr *)ss;
}

void serve_ws_open(wsx_conn *c, void *user)
{
    (void)user;
    char peer[64];
    peer_of(c, peer, sizeof peer);
    struct sockaddr_storage ss;
    serve_conn *sc = malloc(sizeof *sc);
    wsx_chat_conn *cc = sc ? wsx_chat_conn_open(g_serve.chat, c, serve_peer_addr(peer, &ss)) : NULL;
    if (!cc) {
        free(sc);
        tool_logf(WSX_LOG_WARN, "%s: out of memory, closing", peer);
        wsx_close(c, 1011, "out of memory");
        return;
    }
    sc->cc = cc;
    sc->wait = NULL;
    tool_conn_id_set(&sc->ci, c, wsx_chat_conn_id(cc));
    wsx_conn_set_user(c, sc);
    tool_log_open(&sc->ci, "/ws", NULL);
}

void serve_conn_log(const wsx_conn *c, int level, const char *msg, void *user)
{
    (void)user;
    /* Before on_open (its HTTP phase) and after on_close the user pointer is NULL. */
    const serve_conn *sc = wsx_conn_user(c);
    tool_log_conn(sc ? &sc->ci : NULL, sc ? "/ws" : NULL, c, level, msg);
}

void serve_ws_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    (void)user;
    serve_conn *sc = wsx_conn_user(c);
    if (!sc) {
        /* Refused at open (out of memory): still one close line, and counted. */
        tool_conn_id ci = {.id = 0};
        peer_of(c, ci.peer, sizeof ci.peer);
        tool_log_close(&ci, "/ws", code, reason, len, NULL);
        return;
    }
    char room[WSX_CHAT_MAX_ROOM + 1];
    bool in = wsx_chat_conn_room(g_serve.chat, sc->cc, room, sizeof room);
    tool_log_close(&sc->ci, "/ws", code, reason, len, in ? room : NULL);
    wsx_conn_set_user(c, NULL);
    serve_history_forget(sc->wait);
    wsx_chat_conn_close(g_serve.chat, sc->cc);
    free(sc);
}

void serve_ws_message(wsx_conn *c, const wsx_msg *msg, void *user)
{
    (void)user;
    serve_conn *sc = wsx_conn_user(c);
    if (!sc) return;
    const char *data = (const char *)msg->data;
    if (sc->wait && msg->type == WSX_TEXT) {
        /* Its join waits for the history: what follows waits too, in order, within a bound. */
        if (serve_history_hold(sc->wait, data, msg->len) < 0) {
            tool_logf(WSX_LOG_WARN, "%s: too many messages while its join waits, closing",
                      sc->ci.peer);
            wsx_close(c, 1008, "too many messages while joining");
        }
        return;
    }
    if (msg->type == WSX_TEXT && (sc->wait = serve_history_join(c, data, msg->len))) return;
    wsx_chat_conn_message(g_serve.chat, sc->cc, data, msg->len, msg->type != WSX_TEXT);
}

void serve_conn_history_done(wsx_conn *c)
{
    serve_conn *sc = wsx_conn_user(c);
    if (sc) sc->wait = NULL;
}

void serve_ws_feed(wsx_conn *c, const char *data, size_t len)
{
    serve_conn *sc = wsx_conn_user(c);
    if (sc) wsx_chat_conn_message(g_serve.chat, sc->cc, data, len, false);
}
