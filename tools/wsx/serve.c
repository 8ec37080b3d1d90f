/*
 * `wsx serve`: the chat server with its web page. The protocol is docs/chat-protocol.md.
 * Rooms are pub/sub topics ("room:NAME"): a chat message is serialised once and published
 * to the topic, which frames it once for every member.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "assets.h"
#include "chat/chat.h"
#include "runner.h"
#include "tool.h"

#define MAX_ORIGINS      16
#define SSE_KEEPALIVE_MS 15000
/* An SSE listener with more than this queued (it does not read) is ended. Events are shared
 * bytes, but a listener keeps alive every event it has not read. */
#define SSE_MAX_QUEUED (4u << 20)

/* An SSE stream: the HTTP request, its place in the chat, and its subscription to the room's
 * topic in its loop's hub (which delivers the room's chat messages to it). */
typedef struct sse {
    wsx_http_req *r;
    wsx_chat_listener *l;
    wsx_sub *sub;
    unsigned thread; /* the loop its connection belongs to */
    bool dropped;    /* being ended for not reading (sse_deliver) */
} sse;

#define MAX_THREADS 16

/* One event loop per thread (R.t[k]), each with its own server(s) on the shared port(s):
 * plain and/or TLS, one chat across both. The chat (src/chat) is shared and guarded by its
 * lock; a connection is only ever touched from its own loop's thread, and a message reaches
 * the other loops' members through their post queues. What serve adds per loop: */
typedef struct serve_thread {
    wsx_timer *keepalive;
    wsx_timer *snapshot;
    wsx_server_stats stats[2]; /* the servers' counters as of the last snapshot (chat lock) */
    size_t topics;             /* the loop's topics (its servers share them), same snapshot */
} serve_thread;

typedef struct serve_state {
    serve_thread t[MAX_THREADS];
    wsx_chat *chat;
    wsx_chat_opts chat_opts;
    const char *token;
    const char *metrics_token; /* --metrics-token: /metrics needs this one instead of --token */
    const char *origins[MAX_ORIGINS];
    size_t n_origins;
    const char *cors_origins[MAX_ORIGINS]; /* --cors */
    wsx_cors_opts cors;
    const char *static_dir;
    wsx_static *files; /* the --static directory, or the embedded page (src/http/static.c) */
    bool loops_done;   /* every loop has finished: no thread but this one is left */
    wsx_timer *expire;
} serve_state;

static serve_state S;
static tool_runner R;                    /* the loops and their servers */
static _Thread_local unsigned tl_thread; /* which of S.t runs on this thread */

static void lock(void)
{
    wsx_chat_lock(S.chat);
}

static void unlock(void)
{
    wsx_chat_unlock(S.chat);
}

/* ---- small helpers ---- */

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void peer_of(wsx_conn *c, char *buf, size_t cap)
{
    if (wsx_conn_peer(c, buf, cap) < 0) snprintf(buf, cap, "-");
}

static bool valid_room(const char *s, size_t n)
{
    return wsx_chat_valid_room(s, n);
}

/* Finds key in a query string and decodes its value (form encoding: '+' is a space; a
 * broken escape is kept as it is, as browsers do) into out as a C string, cut to cap - 1. */
static bool query_get(const char *q, size_t qlen, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = q, *end = q + qlen;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        if ((size_t)(pe - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
            const char *v = p + klen + 1;
            ptrdiff_t n = wsx_percent_decode(v, (size_t)(pe - v), WSX_PCT_PLUS | WSX_PCT_LENIENT,
                                             out, cap - 1);
            out[n < 0 ? cap - 1 : (size_t)n] = '\0'; /* WSX_ENOSPC: the first cap - 1 bytes */
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

/* ---- the chat's ops: how src/chat reaches connections and SSE listeners ---- */

/* One message as an SSE event: "id: N\nevent: message\ndata: JSON\n\n" (JSON texts of the
 * chat are compact: no newline in them). Writes it at out (NULL: only measures); returns
 * its length. */
static size_t sse_format(char *out, uint64_t id, const char *json, size_t len)
{
    char head[64];
    int n = snprintf(head, sizeof head, "id: %llu\nevent: message\ndata: ", (unsigned long long)id);
    if (out) {
        memcpy(out, head, (size_t)n);
        memcpy(out + n, json, len);
        memcpy(out + (size_t)n + len, "\n\n", 2);
    }
    return (size_t)n + len + 2;
}

/* The event as shared bytes, for the listeners of one loop; NULL if out of memory. */
static wsx_bytes *sse_event(uint64_t id, const char *json, size_t len)
{
    wsx_bytes *b = NULL;
    if (wsx_bytes_new(NULL, sse_format(NULL, id, json, len), &b) < 0) return NULL;
    sse_format((char *)wsx_bytes_data(b), id, json, len);
    return b;
}

static void sse_send(sse *l, uint64_t id, const char *json, size_t len)
{
    wsx_bytes *b = sse_event(id, json, len);
    if (b) wsx_http_write_bytes(l->r, b, 0, wsx_bytes_len(b));
    wsx_bytes_release(b);
}

/* What a publish to a room's topic carries for its SSE subscribers: the chat message's id
 * (0: not a chat message, SSE listeners get nothing), and the listeners whose queue passed
 * SSE_MAX_QUEUED, collected to be ended once the publish is over (the chat is in the middle
 * of an operation then: it is told after its fan-out, as it was before the hub). */
typedef struct sse_pub {
    uint64_t id;
    sse **drop;
    size_t n_drop, cap_drop;
} sse_pub;

/* The event made once per publish (wsx_hub_msg_form) and written to every SSE subscriber of
 * the loop by reference. */
static void *sse_form_make(const wsx_hub_msg *m, void *arg)
{
    (void)arg;
    return sse_event(((const sse_pub *)m->ctx)->id, (const char *)m->data, m->len);
}

static void sse_form_release(void *form, void *arg)
{
    (void)arg;
    wsx_bytes_release(form);
}

static const wsx_hub_form sse_form = {sse_form_make, sse_form_release, NULL};

static int sse_deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub;
    sse *l = user;
    sse_pub *p = m->ctx;
    if (!p || !p->id || l->dropped) return 0;
    wsx_bytes *ev = wsx_hub_msg_form(m, &sse_form);
    if (!ev) return 0;
    /* WSX_ECLOSED: gone, or closed at the hard limit; sse_gone follows and frees it. */
    if (wsx_http_write_bytes(l->r, ev, 0, wsx_bytes_len(ev)) == WSX_ECLOSED) return 0;
    if (wsx_http_buffered_amount(l->r) <= SSE_MAX_QUEUED) return 1;
    if (p->n_drop == p->cap_drop) {
        size_t cap = p->cap_drop ? 2 * p->cap_drop : 8;
        sse **d = realloc(p->drop, cap * sizeof *d);
        if (!d) return 1; /* dropped at a later event, or at the hard limit */
        p->drop = d;
        p->cap_drop = cap;
    }
    l->dropped = true;
    p->drop[p->n_drop++] = l;
    return 1;
}

/* Ends a listener that does not read: it leaves the chat and the topic now; its connection
 * closes once what is queued is written, or after the close timeout. */
static void sse_drop(sse *l)
{
    tool_logf(WSX_LOG_INFO, "SSE listener with over %u MiB queued: ending the stream",
              (unsigned)(SSE_MAX_QUEUED >> 20));
    wsx_hub_unsubscribe(l->sub);
    wsx_chat_listener_remove(S.chat, l->l);
    wsx_http_end(l->r);
    free(l);
}

/* Publishes json to the room's topic in this thread's loop: its WebSocket members (framed
 * once) and, for chat messages (id != 0), its SSE listeners (formatted once). Called with
 * the chat's lock held. */
static void publish_local(const char *room, const char *json, size_t len, uint64_t id,
                          const void *except)
{
    char topic[64];
    snprintf(topic, sizeof topic, "room:%s", room);
    sse_pub p = {.id = id};
    wsx_hub *hub = wsx_hub_of(R.t[tl_thread].loop);
    /* No publish hook runs (serve sets none): op_publish reaches the other loops itself. */
    if (hub) wsx_hub_publish(hub, topic, json, len, WSX_TEXT, except, &p);
    for (size_t i = 0; i < p.n_drop; i++)
        sse_drop(p.drop[i]);
    free(p.drop);
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
    lock();
    publish_local(j->room, j->json, j->len, j->id, NULL);
    unlock();
    free(j);
}

/* Sends json to everyone in a room: this loop's members at once (framed once by the topic),
 * the other loops' through their post queues; chat messages (id != 0) also to the SSE
 * listeners. Called by the chat with its lock held. */
static void op_publish(const char *room, const char *json, size_t len, uint64_t id, void *except,
                       void *user)
{
    (void)user;
    publish_local(room, json, len, id, except);
    for (unsigned k = 0; k < R.n_threads; k++) {
        if (k == tl_thread) continue;
        relay_job *j = malloc(sizeof *j + len + 1);
        if (!j) continue;
        j->thread = k;
        j->id = id;
        j->len = len;
        snprintf(j->room, sizeof j->room, "%s", room);
        memcpy(j->json, json, len);
        j->json[len] = '\0';
        /* Freed unrun if that loop has already finished (the server is stopping). */
        wsx_loop_post_owned(R.t[k].loop, run_relay, j, free);
    }
}

static void op_send(void *conn, const char *json, size_t len, void *user)
{
    (void)user;
    wsx_send(conn, json, len, WSX_TEXT);
}

static int op_subscribe(void *conn, const char *room, void *user)
{
    (void)user;
    char topic[64];
    snprintf(topic, sizeof topic, "room:%s", room);
    return wsx_subscribe(conn, topic);
}

static void op_unsubscribe(void *conn, const char *room, void *user)
{
    (void)user;
    char topic[64];
    snprintf(topic, sizeof topic, "room:%s", room);
    wsx_unsubscribe(conn, topic);
}

static size_t op_queued(void *conn, void *user)
{
    (void)user;
    return wsx_buffered_amount(conn);
}

static uint64_t op_now(void *user)
{
    (void)user;
    return now_ms();
}

static void op_sse_send(void *listener, uint64_t id, const char *json, size_t len, void *user)
{
    (void)user;
    sse_send(listener, id, json, len);
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
    if (S.loops_done) {
        run_hist_release(arg);
        return;
    }
    tool_logf(WSX_LOG_WARN, "out of memory: a room's history cache is leaked");
    free(arg);
}

static hist_loop *hist_of(void **cache)
{
    if (!*cache) *cache = calloc(1, sizeof(hist_cache));
    return *cache ? &((hist_cache *)*cache)->t[tl_thread] : NULL;
}

static void op_send_history(void *conn, void **cache, const wsx_chat_history *h, void *user)
{
    (void)user;
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
        total += sse_format(NULL, id, json, len);
    }
    hl->offs[n] = total;
    if (wsx_bytes_new(NULL, total, &hl->sse) < 0) goto fail;
    char *out = (char *)wsx_bytes_data(hl->sse);
    for (size_t i = 0; i < n; i++) {
        const char *json = wsx_chat_history_get(h, i, &id, &len);
        sse_format(out + hl->offs[i], id, json, len);
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
            if (id > after) sse_send(l, id, json, len);
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
    for (unsigned k = 0; k < R.n_threads; k++) {
        hist_loop *hl = &hc->t[k];
        if (!hl->ws && !hl->sse) continue;
        if (k == tl_thread || S.loops_done) {
            hist_loop_release(hl);
            continue;
        }
        /* Frames of this loop may still be queued on its connections: its thread lets go. */
        hist_loop *job = malloc(sizeof *job);
        if (job) {
            *job = *hl;
            wsx_loop_post_owned(R.t[k].loop, run_hist_release, job, drop_hist_release);
            continue;
        }
        tool_logf(WSX_LOG_WARN, "out of memory: a room's history cache is leaked");
    }
    free(hc);
}

/* The chat closes a connection that keeps flooding past its rate limit. */
static void op_close(void *conn, int code, const char *reason, void *user)
{
    (void)user;
    char peer[64];
    peer_of(conn, peer, sizeof peer);
    wsx_chat_conn *cc = wsx_conn_user(conn);
    tool_logf(WSX_LOG_WARN, "%s (connection c%llu): closing with %d: %s", peer,
              cc ? (unsigned long long)wsx_chat_conn_id(cc) : 0ULL, code, reason);
    wsx_close(conn, code, reason);
}

static const wsx_chat_ops chat_ops = {
    .send = op_send,
    .publish = op_publish,
    .subscribe = op_subscribe,
    .unsubscribe = op_unsubscribe,
    .queued = op_queued,
    .now_ms = op_now,
    .sse_send = op_sse_send,
    .send_history = op_send_history,
    .sse_history = op_sse_history,
    .cache_free = op_cache_free,
    .close = op_close,
};

/* ---- server-sent events ---- */

static void sse_gone(wsx_http_req *r, void *arg)
{
    sse *l = arg;
    (void)r;
    wsx_hub_unsubscribe(l->sub);
    wsx_chat_listener_remove(S.chat, l->l);
    free(l);
}

static void sse_keepalive_one(void *listener, void *arg)
{
    sse *l = listener;
    (void)arg;
    if (l->thread == tl_thread) wsx_http_write(l->r, ": keep-alive\n\n", 14);
}

static void sse_keepalive(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    wsx_chat_listeners_all(S.chat, sse_keepalive_one, NULL);
}

/* Each loop copies its servers' counters where /metrics on any loop can read them. */
static void take_snapshot(void)
{
    serve_thread *t = &S.t[tl_thread];
    for (size_t i = 0; i < R.n_srvs; i++)
        wsx_server_get_stats(R.t[tl_thread].srvs[i], &t->stats[i]);
    t->topics = wsx_topic_count(R.t[tl_thread].srvs[0]);
}

static void snapshot_timer(wsx_timer *tm, void *arg)
{
    (void)tm;
    (void)arg;
    lock();
    take_snapshot();
    unlock();
}

/* ---- WebSocket chat ---- */

static bool check_origin(const wsx_http_req *rq)
{
    if (!S.n_origins) return true;
    const wsx_http_header *h = wsx_http_req_header(rq, "origin");
    /* Only browsers send Origin; cross-site WebSocket hijacking needs a browser. */
    if (!h) return true;
    wsx_cors_opts o = {.origins = S.origins, .n_origins = S.n_origins};
    return wsx_cors_origin_allowed(&o, h->value, h->value_len);
}

static bool has_token(const wsx_http_req *rq, const char *token);

/* With --token: whether rq carries it (compared in constant time). */
static bool check_token(const wsx_http_req *rq)
{
    return !S.token || has_token(rq, S.token);
}

static int on_upgrade(wsx_server *srv, const wsx_http_req *rq, void **conn_user, void *user)
{
    (void)srv;
    (void)user;
    (void)conn_user;
    if (!check_origin(rq)) {
        tool_logf(WSX_LOG_INFO, "%s refused: origin not allowed", wsx_http_req_peer(rq));
        return 403;
    }
    if (!check_token(rq)) {
        tool_logf(WSX_LOG_INFO, "%s refused: missing or wrong token", wsx_http_req_peer(rq));
        return 401;
    }
    return 0;
}

/* The client's address from its text ("1.2.3.4:5555", "[::1]:5555"), for the chat's
 * per-address rate limit. Returns NULL when it cannot be read (then none applies). */
static const struct sockaddr *peer_addr(const char *text, struct sockaddr_storage *ss)
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

static void on_open(wsx_conn *c, void *user)
{
    (void)user;
    char peer[64];
    peer_of(c, peer, sizeof peer);
    struct sockaddr_storage ss;
    wsx_chat_conn *cc = wsx_chat_conn_open(S.chat, c, peer_addr(peer, &ss));
    if (!cc) {
        tool_logf(WSX_LOG_WARN, "%s: out of memory, closing", peer);
        wsx_close(c, 1011, "out of memory");
        return;
    }
    wsx_conn_set_user(c, cc);
    tool_logf(WSX_LOG_INFO, "%s open (connection c%llu)", peer,
              (unsigned long long)wsx_chat_conn_id(cc));
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    (void)user;
    wsx_chat_conn *cc = wsx_conn_user(c);
    char peer[64];
    peer_of(c, peer, sizeof peer);
    tool_logf(WSX_LOG_INFO, "%s close %d%s%.*s", peer, code, len ? " " : "", (int)len, reason);
    if (!cc) return;
    wsx_conn_set_user(c, NULL);
    wsx_chat_conn_close(S.chat, cc);
}

static void on_message(wsx_conn *c, const wsx_msg *msg, void *user)
{
    (void)user;
    wsx_chat_conn *cc = wsx_conn_user(c);
    if (!cc) return;
    wsx_chat_conn_message(S.chat, cc, (const char *)msg->data, msg->len, msg->type != WSX_TEXT);
}

/* ---- HTTP: static files, SSE, health, metrics ---- */

static void respond_text(wsx_http_req *r, int status, const char *ctype, const char *body)
{
    wsx_http_header h[] = {{"Content-Type", 12, ctype, strlen(ctype)}};
    wsx_http_respond(r, status, h, 1, body, strlen(body));
}

/* A file of --static or of the embedded page, with the CORS headers when --cors is set. */
static void serve_files(wsx_http_req *r)
{
    wsx_http_header h[WSX_CORS_MAX_HEADERS];
    size_t n = S.cors.n_origins ? wsx_cors_headers(&S.cors, wsx_http_req_head(r), h) : 0;
    wsx_static_serve(S.files, r, h, n);
}

/* Whether rq carries `token`, as ?token= or as Authorization: Bearer. The comparison takes
 * the same time wherever the first difference is. */
static bool has_token(const wsx_http_req *rq, const char *token)
{
    size_t tl = strlen(token);
    const char *got = NULL;
    size_t gl = 0;
    char *q = NULL;
    const char *query;
    size_t ql;
    const wsx_http_header *h = wsx_http_req_header(rq, "authorization");
    if (h && h->value_len > 7 && !strncasecmp(h->value, "Bearer ", 7)) {
        got = h->value + 7;
        gl = h->value_len - 7;
    } else if ((query = wsx_http_req_query(rq, &ql)) && (q = malloc(ql + 1)) &&
               query_get(query, ql, "token", q, ql + 1)) {
        got = q;
        gl = strlen(q);
    }
    unsigned char diff = got && gl == tl ? 0 : 1;
    for (size_t i = 0; got && gl == tl && i < tl; i++)
        diff |= (unsigned char)(got[i] ^ token[i]);
    free(q);
    return diff == 0;
}

/* /metrics shows who is connected and how busy the server is: with --metrics-token only
 * that token opens it, else --token does; without either it is public. */
static bool metrics_allowed(const wsx_http_req *rq)
{
    const char *want = S.metrics_token ? S.metrics_token : S.token;
    return !want || has_token(rq, want);
}

static void serve_metrics(wsx_http_req *r)
{
    /* Our own loop's figures are fresh; the other loops' are from their last snapshot
     * (at most a second old). */
    take_snapshot();
    wsx_server_stats st = {0};
    size_t topics = 0;
    for (unsigned k = 0; k < R.n_threads; k++) {
        for (size_t i = 0; i < R.n_srvs; i++) {
            const wsx_server_stats *one = &S.t[k].stats[i];
            st.open += one->open;
            st.http_open += one->http_open;
            st.accepted += one->accepted;
            st.upgrades += one->upgrades;
            st.messages_in += one->messages_in;
            st.messages_out += one->messages_out;
            st.bytes_in += one->bytes_in;
            st.bytes_out += one->bytes_out;
            st.refused_400 += one->refused_400;
            st.refused_401 += one->refused_401;
            st.refused_403 += one->refused_403;
            st.refused_404 += one->refused_404;
            st.refused_426 += one->refused_426;
            st.refused_431 += one->refused_431;
            st.refused_503 += one->refused_503;
            st.refused_other += one->refused_other;
            st.handshake_timeouts += one->handshake_timeouts;
            st.refused_per_ip += one->refused_per_ip;
            st.refused_handshakes += one->refused_handshakes;
            st.refused_full += one->refused_full;
            st.shed_nofile += one->shed_nofile;
        }
        topics += S.t[k].topics;
    }
    wsx_chat_stats cs;
    wsx_chat_get_stats(S.chat, &cs);
    size_t members = cs.members;
    char body[8192];
    int n = snprintf(
        body, sizeof body,
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
        "# HELP wsx_topics Pub/sub topics with subscribers.\n"
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
        st.open, st.http_open, (unsigned long long)st.accepted, (unsigned long long)st.upgrades,
        (unsigned long long)st.messages_in, (unsigned long long)st.messages_out,
        (unsigned long long)st.bytes_in, (unsigned long long)st.bytes_out, topics, members,
        cs.listeners, (unsigned long long)st.refused_400, (unsigned long long)st.refused_401,
        (unsigned long long)st.refused_403, (unsigned long long)st.refused_404,
        (unsigned long long)st.refused_426, (unsigned long long)st.refused_431,
        (unsigned long long)st.refused_503, (unsigned long long)st.refused_other,
        (unsigned long long)st.handshake_timeouts);
    if (n > 0 && (size_t)n < sizeof body)
        n += snprintf(body + n, sizeof body - (size_t)n,
                      "# HELP wsx_history_bytes History held over all rooms, as counted against "
                      "--history-bytes.\n"
                      "# TYPE wsx_history_bytes gauge\nwsx_history_bytes %zu\n"
                      "# HELP wsx_history_messages Messages held in the history of all rooms.\n"
                      "# TYPE wsx_history_messages gauge\nwsx_history_messages %zu\n",
                      cs.history_bytes, cs.history_messages);
    if (n > 0 && (size_t)n < sizeof body)
        n += snprintf(
            body + n, sizeof body - (size_t)n,
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
            "# HELP wsx_chat_rate_limited_total Chat messages, joins and leaves refused with "
            "the error rate_limited.\n"
            "# TYPE wsx_chat_rate_limited_total counter\nwsx_chat_rate_limited_total %llu\n"
            "# HELP wsx_chat_rate_limit_closes_total Chat connections closed with 1008 for "
            "too many refusals.\n"
            "# TYPE wsx_chat_rate_limit_closes_total counter\n"
            "wsx_chat_rate_limit_closes_total %llu\n"
            "# HELP wsx_chat_rate_addresses Client addresses holding a per-address rate "
            "bucket (--rate-per-ip).\n"
            "# TYPE wsx_chat_rate_addresses gauge\nwsx_chat_rate_addresses %zu\n",
            (unsigned long long)st.refused_per_ip, (unsigned long long)st.refused_handshakes,
            (unsigned long long)st.refused_full, (unsigned long long)st.shed_nofile,
            wsx_queued_bytes(), wsx_max_queued_bytes(), (unsigned long long)cs.rate_limited,
            (unsigned long long)cs.rate_closes, cs.addresses);
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain; version=0.0.4", 25}};
    wsx_http_respond(r, 200, h, 1, body, (size_t)n);
}

static void serve_sse(wsx_http_req *r, const wsx_http_req *rq)
{
    if (!check_token(rq)) {
        respond_text(r, 401, "text/plain; charset=utf-8", "401 Unauthorized\n");
        return;
    }
    char name[64] = "lobby";
    size_t ql;
    const char *query = wsx_http_req_query(rq, &ql);
    if (query) query_get(query, ql, "room", name, sizeof name);
    if (!valid_room(name, strlen(name))) {
        respond_text(r, 400, "text/plain; charset=utf-8", "400 bad room name\n");
        return;
    }
    if (wsx_http_req_is_head(r)) {
        /* Headers only: nothing to stream, no listener. */
        wsx_http_header hh[] = {{"Content-Type", 12, "text/event-stream", 17},
                                {"Cache-Control", 13, "no-cache", 8}};
        wsx_http_respond(r, 200, hh, 2, NULL, 0);
        return;
    }
    sse *l = calloc(1, sizeof *l);
    int rc = l ? wsx_chat_listener_add(S.chat, name, l, &l->l) : WSX_ENOMEM;
    if (rc < 0) {
        free(l);
        respond_text(r, 503, "text/plain; charset=utf-8",
                     rc == WSX_ELIMIT ? "503 too many rooms\n" : "503 out of memory\n");
        return;
    }
    wsx_http_header h[] = {{"Content-Type", 12, "text/event-stream", 17},
                           {"Cache-Control", 13, "no-cache", 8},
                           {"X-Accel-Buffering", 17, "no", 2}};
    char topic[sizeof "room:" + sizeof name];
    snprintf(topic, sizeof topic, "room:%s", name);
    wsx_hub *hub = wsx_hub_of(R.t[tl_thread].loop);
    if (!hub || wsx_hub_subscribe(hub, topic, sse_deliver, l, &l->sub) < 0) {
        wsx_chat_listener_remove(S.chat, l->l);
        free(l);
        respond_text(r, 503, "text/plain; charset=utf-8", "503 out of memory\n");
        return;
    }
    if (wsx_http_begin(r, 200, h, 3) < 0) {
        wsx_hub_unsubscribe(l->sub);
        wsx_chat_listener_remove(S.chat, l->l);
        free(l);
        wsx_http_end(r);
        return;
    }
    l->r = r;
    l->thread = tl_thread;
    wsx_http_on_gone(r, sse_gone, l);
    wsx_http_write(r, "retry: 2000\n\n", 13);
    /* Resume after Last-Event-ID (the header an EventSource sends when it reconnects). */
    const wsx_http_header *le = wsx_http_req_header(rq, "last-event-id");
    char qv[32];
    if (le || (query && query_get(query, ql, "lastEventId", qv, sizeof qv))) {
        char v[32];
        if (le)
            snprintf(v, sizeof v, "%.*s", (int)le->value_len, le->value);
        else
            snprintf(v, sizeof v, "%s", qv);
        wsx_chat_listener_replay(S.chat, l->l, strtoull(v, NULL, 10));
    }
}

/* ---- routes: /ws (WebSocket), /healthz, /metrics, /sse, and the page (every other path) ---- */

static void on_healthz(wsx_http_req *r, void *user)
{
    (void)user;
    respond_text(r, 200, "text/plain; charset=utf-8", "ok\n");
}

/* The page's probe (docs/chat-protocol.md): a browser cannot read the status of a refused
 * WebSocket upgrade, so it asks here first whether its token (or none) would be let in, and
 * tells "needs a token" from "server down". */
static void on_auth(wsx_http_req *r, void *user)
{
    (void)user;
    if (check_token(r)) {
        wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                               {"Cache-Control", 13, "no-store", 8}};
        wsx_http_respond(r, 200, h, 2, "ok\n", 3);
        return;
    }
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                           {"Cache-Control", 13, "no-store", 8},
                           {"WWW-Authenticate", 16, "Bearer realm=\"chat\"", 19}};
    static const char body[] = "401 Unauthorized\nthis server needs an access token\n";
    tool_logf(WSX_LOG_INFO, "%s /api/auth: missing or wrong token", wsx_http_req_peer(r));
    wsx_http_respond(r, 401, h, 3, body, sizeof body - 1);
}

static void on_metrics(wsx_http_req *r, void *user)
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
    lock();
    serve_metrics(r);
    unlock();
}

static void on_sse(wsx_http_req *r, void *user)
{
    (void)user;
    lock();
    serve_sse(r, r);
    unlock();
}

static bool is_get(const wsx_http_req *r)
{
    size_t ml;
    const char *method = wsx_http_req_method(r, &ml);
    return (ml == 3 && !memcmp(method, "GET", 3)) || (ml == 4 && !memcmp(method, "HEAD", 4));
}

static void method_not_allowed(wsx_http_req *r)
{
    wsx_http_header h[] = {{"Allow", 5, "GET, HEAD", 9}, {"Content-Type", 12, "text/plain", 10}};
    wsx_http_respond(r, 405, h, 2, "405 Method Not Allowed\n", 23);
}

/* /ws without an Upgrade. */
static void on_ws_http(wsx_http_req *r, void *user)
{
    (void)user;
    if (!is_get(r)) return method_not_allowed(r);
    /* RFC 9110 15.5.22: a 426 names the protocol to upgrade to. */
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                           {"Upgrade", 7, "websocket", 9},
                           {"Sec-WebSocket-Version", 21, "13", 2}};
    static const char body[] = "426 Upgrade Required\nthis is the WebSocket endpoint\n";
    wsx_http_respond(r, 426, h, 3, body, sizeof body - 1);
}

/* Every other path (the default route, also for targets that are not paths, "*"): the page.
 * It decides about methods itself, after its 400 for a bad path. The path is decoded first,
 * and one that decodes to a route's path ("//healthz", "/%68ealthz") goes to that route, as
 * routes match undecoded paths. */
static void on_page(wsx_http_req *r, void *user)
{
    size_t pl;
    const char *rpath = wsx_http_req_path(r, &pl);
    if (S.cors.n_origins && wsx_cors_is_preflight(wsx_http_req_head(r))) {
        wsx_cors_preflight(&S.cors, r);
        return;
    }
    char path[1024];
    if (wsx_http_path_clean(rpath, pl, path, sizeof path) < 0) {
        respond_text(r, 400, "text/plain; charset=utf-8", "400 bad path\n");
        return;
    }
    if (!is_get(r)) return method_not_allowed(r);
    if (!strcmp(path, "/healthz")) return on_healthz(r, user);
    if (!strcmp(path, "/api/auth")) return on_auth(r, user);
    if (!strcmp(path, "/metrics")) return on_metrics(r, user);
    if (!strcmp(path, "/sse")) return on_sse(r, user);
    if (!strcmp(path, "/ws")) return on_ws_http(r, user);
    serve_files(r);
}

/* The routes of one server (every loop has its own servers); the page is its default
 * route (on_http). */
static bool add_routes(wsx_server *srv)
{
    static const struct {
        const char *path;
        wsx_http_cb cb;
    } http[] = {{"/healthz", on_healthz}, {"/api/auth", on_auth}, {"/metrics", on_metrics}, {"/sse", on_sse}};
    wsx_ws_route_opts wo = {.on_upgrade = on_upgrade,
                            .on_open = on_open,
                            .on_message = on_message,
                            .on_close = on_close,
                            .on_request = on_ws_http};
    if (wsx_server_ws_route(srv, "/ws", &wo) < 0) return false;
    for (size_t i = 0; i < sizeof http / sizeof http[0]; i++) {
        wsx_route_opts ro = {.methods = "GET, HEAD", .on_request = http[i].cb};
        if (wsx_server_route(srv, http[i].path, &ro) < 0) return false;
    }
    return true;
}

/* ---- the command ---- */

static const char help[] =
    "usage: wsx serve [options]\n"
    "\n"
    "The chat server: the page at http://HOST:PORT/, WebSocket at /ws, server-sent events at\n"
    "/sse?room=NAME, /healthz and /metrics. The protocol is described in docs/chat-protocol.md.\n"
    "\n"
    "  --host H               address to listen on (default: all interfaces, reachable\n"
    "                         from the network; 127.0.0.1 for this machine only). A line\n"
    "                         'listening on http://ADDR:PORT/' is printed for each address\n"
    "  --port P               port (default 8080; 0 picks a free one)\n"
    "  --static DIR           serve this directory instead of the built-in page (ETag,\n"
    "                         Last-Modified, 304, single byte ranges; no listings; nothing\n"
    "                         outside DIR, also through symlinks)\n"
    "  --token T              require this token (?token=T or Authorization: Bearer T) for\n"
    "                         WebSocket, /sse and /metrics (401 without it)\n"
    "  --metrics-token T      /metrics needs this token instead of --token (then only this\n"
    "                         one); without either option /metrics is public\n"
    "  --origin O             accept browser pages only from origin O (repeatable)\n"
    "  --cors O               let pages from origin O read the files (CORS; repeatable; *\n"
    "                         for any): preflights get 204 (403 for other origins)\n"
    "  --history N            messages kept per room and sent on join (default 100)\n"
    "  --history-bytes N      bytes of history over all rooms (K/M/G suffixes; default 64M;\n"
    "                         0 = no budget): past it the rooms posted to least recently\n"
    "                         lose their history\n"
    "  --history-idle S       drop the history of a room nobody has been in (or listened to)\n"
    "                         for S seconds (default 86400; 0 = never)\n"
    "  --rate N               chat messages (message, typing) per second per connection\n"
    "                         (default 20; 0 = no limit): more get the error rate_limited,\n"
    "                         and over 100 refusals in 10 s close the connection with 1008\n"
    "  --burst N              chat messages a connection may send at once (default 40)\n"
    "  --join-rate N          joins and leaves per second per connection (default 5; 0 = no\n"
    "                         limit); more get rate_limited, and count towards the 1008\n"
    "  --join-burst N         joins and leaves a connection may send at once (default 100)\n"
    "  --rate-per-ip N        chat messages per second from one client address (an IPv4\n"
    "                         address or an IPv6 /64), over all its connections together\n"
    "                         (default 100; 0 = no limit): more get rate_limited, as above\n"
    "  --burst-per-ip N       chat messages one address may send at once (default 200)\n"
    "  --join-rate-per-ip N   joins and leaves per second from one client address (default\n"
    "                         10; 0 = no limit)\n"
    "  --join-burst-per-ip N  joins and leaves one address may send at once (default 200)\n"
    "  --max-connections N    WebSocket connections at most (default 10000)\n" TOOL_ADMIT_HELP
    "  --max-queued-bytes B   bytes queued for sending in the whole process; above it the\n"
    "                         largest queues are closed with 1008 (default: 1/4 of the RAM)\n"
    "  --ping-interval MS     ping silent connections (default 30000; 0 = never)\n"
    "  --shutdown-timeout MS  on SIGINT/SIGTERM, time for clients to close (default 5000)\n"
    "  --tls-cert FILE        serve https:// and wss:// with this certificate chain (PEM);\n"
    "                         repeat with --tls-key for more names (SNI); SIGHUP reloads\n"
    "  --tls-key FILE         the private key of the preceding --tls-cert\n"
    "  --tls-port P           with --tls-cert: TLS on P, plain HTTP stays on "
    "--port\n" TOOL_TLS_TIMEOUT_HELP
    "  --threads N            N event loops in N threads on the same port(s) (SO_REUSEPORT)\n"
    "  --quiet                log only warnings and errors\n"
    "  --json-logs            log one JSON object per line\n"
    "  --no-deflate           refuse permessage-deflate (accepted by default, without server\n"
    "                         context takeover: one shared compressor, no per-connection one)\n"
    "  -h, --help             this text\n";

/* On loop k's thread when shutdown begins (the runner then shuts its servers down): the
 * timers would keep the loop alive. */
static void stop_timers(unsigned k, void *arg)
{
    (void)arg;
    serve_thread *t = &S.t[k];
    if (t->keepalive) wsx_timer_stop(t->keepalive);
    if (t->snapshot) wsx_timer_stop(t->snapshot);
    t->keepalive = t->snapshot = NULL;
    if (k == 0 && S.expire) {
        wsx_timer_stop(S.expire);
        S.expire = NULL;
    }
}

static void set_thread(unsigned k, void *arg)
{
    (void)arg;
    tl_thread = k;
}

enum {
    O_HOST = 256,
    O_PORT,
    O_STATIC,
    O_TOKEN,
    O_ORIGIN,
    O_CORS,
    O_HISTORY,
    O_MAXCONN,
    O_PING,
    O_SHUTDOWN,
    O_QUIET,
    O_JSON,
    O_TLSPORT,
    O_THREADS,
    O_HISTORY_BYTES,
    O_HISTORY_IDLE,
    O_RATE,
    O_BURST,
    O_JOIN_RATE,
    O_JOIN_BURST,
    O_RATE_PER_IP,
    O_BURST_PER_IP,
    O_JOIN_RATE_PER_IP,
    O_JOIN_BURST_PER_IP,
    O_METRICS_TOKEN,
    O_MAXQ,
};

/* Drops the history of rooms idle for longer than --history-idle (the chat keeps them in
 * the order they went idle, so this costs what it drops). */
static void expire_timer(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    wsx_chat_expire(S.chat);
}

/* What the command line sets besides the server and chat options. */
typedef struct serve_args {
    uint32_t port, tls_port;
    bool have_tls_port;
    tool_tls tls;
    bool no_deflate;
} serve_args;

/* The chat's limits that take a count: option, name, least value, field. */
static const struct {
    int opt;
    const char *name;
    uint32_t min;
    size_t off;
} chat_counts[] = {
    {O_RATE, "rate", 0, offsetof(wsx_chat_opts, rate)},
    {O_BURST, "burst", 1, offsetof(wsx_chat_opts, burst)},
    {O_JOIN_RATE, "join-rate", 0, offsetof(wsx_chat_opts, join_rate)},
    {O_JOIN_BURST, "join-burst", 1, offsetof(wsx_chat_opts, join_burst)},
    {O_RATE_PER_IP, "rate-per-ip", 0, offsetof(wsx_chat_opts, rate_per_ip)},
    {O_BURST_PER_IP, "burst-per-ip", 1, offsetof(wsx_chat_opts, burst_per_ip)},
    {O_JOIN_RATE_PER_IP, "join-rate-per-ip", 0, offsetof(wsx_chat_opts, join_rate_per_ip)},
    {O_JOIN_BURST_PER_IP, "join-burst-per-ip", 1, offsetof(wsx_chat_opts, join_burst_per_ip)},
};

/* Sets one of chat_counts. Returns false (after the usage message) if it is not one or the
 * value is out of range; *status is then the exit status (0 when it was not one). */
static bool chat_count_option(int ch, const char *arg, int *status)
{
    *status = 0;
    for (size_t i = 0; i < sizeof chat_counts / sizeof chat_counts[0]; i++) {
        if (chat_counts[i].opt != ch) continue;
        uint32_t v;
        if (!parse_u32(arg, &v) || v < chat_counts[i].min || v > 1000000) {
            *status = usage_error("serve", "bad --%s '%s' (%u to 1000000)", chat_counts[i].name,
                                  arg, chat_counts[i].min);
            return false;
        }
        memcpy((char *)&S.chat_opts + chat_counts[i].off, &v, sizeof v);
        return true;
    }
    return false;
}

static const struct option serve_longopts[] = {
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"static", required_argument, 0, O_STATIC},
    {"token", required_argument, 0, O_TOKEN},
    {"metrics-token", required_argument, 0, O_METRICS_TOKEN},
    {"origin", required_argument, 0, O_ORIGIN},
    {"cors", required_argument, 0, O_CORS},
    {"history", required_argument, 0, O_HISTORY},
    {"history-bytes", required_argument, 0, O_HISTORY_BYTES},
    {"history-idle", required_argument, 0, O_HISTORY_IDLE},
    {"max-connections", required_argument, 0, O_MAXCONN},
    {"max-queued-bytes", required_argument, 0, O_MAXQ},
    {"ping-interval", required_argument, 0, O_PING},
    {"shutdown-timeout", required_argument, 0, O_SHUTDOWN},
    {"quiet", no_argument, 0, O_QUIET},
    {"json-logs", no_argument, 0, O_JSON},
    {"no-deflate", no_argument, 0, 'D'},
    {"tls-port", required_argument, 0, O_TLSPORT},
    TOOL_TLS_LONGOPTS,
    TOOL_ADMIT_LONGOPTS,
    {"threads", required_argument, 0, O_THREADS},
    {"rate", required_argument, 0, O_RATE},
    {"burst", required_argument, 0, O_BURST},
    {"join-rate", required_argument, 0, O_JOIN_RATE},
    {"join-burst", required_argument, 0, O_JOIN_BURST},
    {"rate-per-ip", required_argument, 0, O_RATE_PER_IP},
    {"burst-per-ip", required_argument, 0, O_BURST_PER_IP},
    {"join-rate-per-ip", required_argument, 0, O_JOIN_RATE_PER_IP},
    {"join-burst-per-ip", required_argument, 0, O_JOIN_BURST_PER_IP},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* The options that set the web side and the chat's history (S). Returns -1 if ch is not one
 * of them, 0 if it was set, else the exit status. */
static int app_option(int ch, const char *arg)
{
    size_t sz;
    uint32_t v;
    switch (ch) {
    case O_STATIC:
        S.static_dir = arg;
        return 0;
    case O_TOKEN:
        if (!*arg) return usage_error("serve", "empty --token");
        S.token = arg;
        return 0;
    case O_METRICS_TOKEN:
        if (!*arg) return usage_error("serve", "empty --metrics-token");
        S.metrics_token = arg;
        return 0;
    case O_ORIGIN:
        if (S.n_origins == MAX_ORIGINS) return usage_error("serve", "too many --origin");
        S.origins[S.n_origins++] = arg;
        return 0;
    case O_CORS:
        if (S.cors.n_origins == MAX_ORIGINS) return usage_error("serve", "too many --cors");
        if (!*arg) return usage_error("serve", "empty --cors");
        S.cors_origins[S.cors.n_origins++] = arg;
        return 0;
    case O_HISTORY:
        if (!parse_size(arg, &sz) || sz > 100000)
            return usage_error("serve", "bad --history '%s' (0 to 100000)", arg);
        S.chat_opts.history = sz;
        return 0;
    case O_HISTORY_BYTES:
        if (!parse_size(arg, &sz)) return usage_error("serve", "bad --history-bytes '%s'", arg);
        S.chat_opts.history_bytes = sz;
        return 0;
    case O_HISTORY_IDLE:
        if (!parse_u32(arg, &v)) return usage_error("serve", "bad --history-idle");
        S.chat_opts.history_idle_ms = (uint64_t)v * 1000;
        return 0;
    default:
        return -1;
    }
}

/* Parses the options into o, S and a. Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, wsx_server_opts *o, serve_args *a)
{
    uint32_t v;
    size_t sz;
    int ch, status;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", serve_longopts, NULL)) != -1) {
        if (ch == '?' || ch == ':') return tool_bad_option("serve", serve_longopts, argv, ch);
        if (chat_count_option(ch, optarg, &status)) continue;
        if (status) return status;
        if ((status = app_option(ch, optarg)) >= 0) {
            if (status) return status;
            continue;
        }
        switch (ch) {
        case O_HOST:
            o->host = optarg;
            break;
        case O_PORT:
            if (!parse_u32(optarg, &a->port) || a->port > 65535)
                return usage_error("serve", "bad --port '%s'", optarg);
            break;
        case O_MAXCONN:
            if (!parse_size(optarg, &sz) || !sz)
                return usage_error("serve", "bad --max-connections");
            o->max_connections = sz;
            break;
        case O_MAXQ:
            if (!parse_size(optarg, &sz) || !sz)
                return usage_error("serve", "bad --max-queued-bytes");
            wsx_set_max_queued_bytes(sz);
            break;
        case O_PING:
            if (!parse_u32(optarg, &v)) return usage_error("serve", "bad --ping-interval");
            o->ping_interval_ms = v ? v : UINT32_MAX;
            break;
        case O_SHUTDOWN:
            if (!parse_u32(optarg, &R.shutdown_ms))
                return usage_error("serve", "bad --shutdown-timeout");
            break;
        case O_QUIET:
            g_log.quiet = true;
            break;
        case O_JSON:
            g_log.json = true;
            break;
        case 'D':
            a->no_deflate = true;
            break;
        case TOOL_O_TLS_CERT:
        case TOOL_O_TLS_KEY:
        case TOOL_O_TLS_HS:
            if (!tool_tls_option(&a->tls, ch, optarg, "serve")) return 2;
            break;
        case TOOL_O_MAX_PER_IP:
        case TOOL_O_MAX_HS_PER_IP:
        case TOOL_O_MAX_HS:
            if (!tool_admit_option(o, ch, optarg, "serve")) return 2;
            break;
        case O_THREADS:
            if (!parse_u32(optarg, &v) || v < 1 || v > MAX_THREADS)
                return usage_error("serve", "bad --threads '%s' (1 to %d)", optarg, MAX_THREADS);
            R.n_threads = v;
            break;
        case O_TLSPORT:
            if (!parse_u32(optarg, &a->tls_port) || a->tls_port > 65535)
                return usage_error("serve", "bad --tls-port '%s'", optarg);
            a->have_tls_port = true;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return usage_error("serve", "unknown option");
        }
    }
    if (optind < argc) return usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (tool_tls_check(&a->tls, "serve")) return 2;
    if (a->have_tls_port && !a->tls.n_certs)
        return usage_error("serve", "--tls-port needs --tls-cert");
    /* Both servers would try the one port: the second would fail after the first listens. */
    if (a->have_tls_port && a->tls_port == a->port && a->port != 0)
        return usage_error("serve",
                           "--tls-port %u is also --port: give TLS a port of its own (or leave "
                           "--tls-port out to serve only TLS on --port)",
                           a->port);
    return -1;
}

/* The file server: the --static directory, or the embedded page. Returns false (printed). */
static bool prepare_files(void)
{
    wsx_static_opts so = wsx_static_defaults();
    so.root = S.static_dir;
    so.files = S.static_dir ? NULL : wsx_assets;
    int rc = wsx_static_new(&so, &S.files);
    if (rc < 0) {
        fprintf(stderr, "wsx serve: --static %s: %s\n", S.static_dir ? S.static_dir : "-",
                rc == WSX_ESYS     ? strerror(errno)
                : rc == WSX_EINVAL ? "not a directory"
                                   : wsx_strerror(rc));
        return false;
    }
    S.cors.origins = S.cors_origins; /* --cors counted them */
    S.cors.methods = "GET, HEAD";
    return true;
}

/* Which servers of a loop are TLS, and the host, for print_listening. */
static struct {
    bool tls[TOOL_RUNNER_MAX_SERVERS];
    const char *host;
} listen_info;

/* The listening lines, once signals are handled (scripts may send one as soon as they read
 * them). */
static void print_listening(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < R.n_srvs; i++)
        tool_print_listening(listen_info.tls[i] ? "https" : "http", listen_info.host,
                             wsx_server_port(R.t[0].srvs[i]), "/");
    fflush(stdout);
}

/* The servers of every loop: plain on --port unless TLS takes it; TLS on --tls-port, or on
 * --port without it. Returns false (printed). */
static bool start_servers(const wsx_server_opts *o, const serve_args *a)
{
    wsx_server_opts so[2];
    size_t n = 0;
    listen_info.host = o->host;
    if (!a->tls.n_certs || a->have_tls_port) {
        listen_info.tls[n] = false;
        so[n++] = *o;
    }
    if (a->tls.n_certs) {
        so[n] = *o;
        tool_tls_apply(&a->tls, &so[n]);
        if (a->have_tls_port) so[n].port = (uint16_t)a->tls_port;
        listen_info.tls[n++] = true;
    }
    if (tool_runner_start(&R, so, n) < 0) return false;
    for (unsigned k = 0; k < R.n_threads; k++)
        for (size_t i = 0; i < R.n_srvs; i++)
            if (!add_routes(R.t[k].srvs[i])) {
                fprintf(stderr, "wsx serve: out of memory\n");
                tool_runner_free(&R);
                return false;
            }
    return true;
}

/* The SSE keep-alives and, with several loops, the metrics snapshots on every loop; the
 * history expiry on the first. */
static void start_timers(void)
{
    for (unsigned k = 0; k < R.n_threads; k++) {
        serve_thread *t = &S.t[k];
        wsx_timer_start(R.t[k].loop, SSE_KEEPALIVE_MS, SSE_KEEPALIVE_MS, sse_keepalive, NULL,
                        &t->keepalive);
        if (R.n_threads > 1)
            wsx_timer_start(R.t[k].loop, 1000, 1000, snapshot_timer, NULL, &t->snapshot);
    }
    if (S.chat_opts.history_idle_ms) {
        uint64_t every = S.chat_opts.history_idle_ms / 10;
        every = every < 100 ? 100 : every > 60000 ? 60000 : every;
        wsx_timer_start(R.t[0].loop, every, every, expire_timer, NULL, &S.expire);
    }
}

int cmd_serve(int argc, char **argv)
{
    memset(&S, 0, sizeof S);
    memset(&R, 0, sizeof R);
    R.cmd = "serve";
    R.n_threads = 1;
    R.shutdown_ms = 5000;
    R.on_thread = set_thread;
    R.on_stop = stop_timers;
    R.on_ready = print_listening;
    S.chat_opts = wsx_chat_defaults();
    wsx_server_opts o = wsx_server_defaults();
    serve_args a = {.port = 8080};
    int status = parse_args(argc, argv, &o, &a);
    if (status >= 0) return status;
    tool_raise_nofile();
    if (!prepare_files()) return 1;
    o.port = (uint16_t)a.port;
    o.path = "/ws";
    o.max_message = 16 << 10;
    tool_deflate_defaults(&o, !a.no_deflate);
    o.on_http = on_page;
    o.on_log = tool_log_cb;
    o.log_level = g_log.quiet ? WSX_LOG_WARN : WSX_LOG_INFO;
    /* A join is refused (slow_down) while the connection's queue is above its high-water
     * mark (the library's default unless set above). */
    S.chat_opts.join_max_queued = o.send_high_water ? o.send_high_water : (size_t)1 << 20;
    if (wsx_chat_new(&S.chat_opts, &chat_ops, &S.chat) < 0) {
        fprintf(stderr, "wsx serve: out of memory\n");
        wsx_static_free(S.files);
        return 1;
    }
    if (!start_servers(&o, &a)) {
        wsx_chat_free(S.chat);
        wsx_static_free(S.files);
        return 1;
    }
    start_timers();
    int rc = tool_runner_run(&R);
    /* Relays and history releases posted to a loop after it had finished are freed with it
     * (their destructors), never run. */
    S.loops_done = true;
    tool_runner_free(&R);
    wsx_chat_free(S.chat);
    wsx_static_free(S.files);
    tool_logf(WSX_LOG_INFO, "stopped");
    return rc < 0 ? 1 : 0;
}
