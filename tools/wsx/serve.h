/*
 * The parts of `wsx serve` (private to it): serve.c parses the options and wires the loops,
 * serve_routes.c answers HTTP (the page, /healthz, /api/auth, the /ws route), serve_sse.c
 * streams /sse and publishes to a loop's hub, serve_chat.c is how src/chat reaches
 * connections and listeners (its ops, the history caches, the relay between loops) and the
 * WebSocket front end, serve_metrics.c answers /metrics, serve_post.c lets backends post
 * (POST /api/rooms/NAME/messages), serve_sio.c is the Socket.IO front end (/socket.io/).
 */
#ifndef WSX_TOOL_SERVE_H
#define WSX_TOOL_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "chat/chat.h"
#include "runner.h"
#include "tool.h"
#include "wsx/cluster.h"
#include "wsx/sio.h"

#define MAX_ORIGINS      16
#define SSE_KEEPALIVE_MS 15000
#define MAX_THREADS      16
/* A /ws message above this closes the WebSocket (1009); a Socket.IO event whose object is
 * above it closes its session. */
#define SERVE_MAX_MESSAGE (16u << 10)
/* Engine.IO's maxPayload at /socket.io/: a polling POST may carry a few events at once. */
#define SERVE_SIO_MAX_PAYLOAD (64u << 10)

/* An SSE stream: the HTTP request, its place in the chat, and its subscription to the room's
 * topic in its loop's hub (which delivers the room's chat messages to it). */
typedef struct sse {
    wsx_http_req *r;
    wsx_chat_listener *l;
    wsx_sub *sub;
    unsigned thread; /* the loop its connection belongs to */
    bool dropped;    /* being ended for not reading (sse_deliver) */
    tool_conn_id ci; /* "s<N>" in the log lines */
    char room[WSX_CHAT_MAX_ROOM + 1];
} sse;

/* One event loop per thread (g_serve.runner.t[k]), each with its own server(s) on the shared
 * port(s): plain and/or TLS, one chat across both. The chat (src/chat) is shared and guarded
 * by its lock; a connection is only ever touched from its own loop's thread, and a message
 * reaches the other loops' members through their post queues. What serve adds per loop: */
typedef struct serve_thread {
    wsx_timer *keepalive;
    wsx_sio *sio[TOOL_RUNNER_MAX_SERVERS]; /* Socket.IO on each server (NULL: --no-socketio) */
} serve_thread;

typedef struct serve_state {
    serve_thread t[MAX_THREADS];
    tool_runner runner; /* the loops and their servers */
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
    bool no_socketio;  /* --no-socketio */
    wsx_timer *expire;
    const char *redis_url;        /* --redis */
    wsx_cluster *cluster;         /* on loop 0, with --redis */
    wsx_cluster_stats cluster_st; /* its figures for the other loops (chat lock) */
    wsx_timer *cluster_snapshot;
    wsx_timer *cluster_heartbeat;
} serve_state;

/* The command's wiring state, one per process (defined in serve.c). The chat module has no
 * globals; this struct is what the C callbacks of the loops, the routes and the chat's ops
 * reach without a user pointer of their own. Written by cmd_serve before the loops start and
 * after they finish; in between, what is shared is read-only or under the chat's lock. */
extern serve_state g_serve;
/* Which of g_serve.t (and of g_serve.runner.t) runs on this thread. */
extern _Thread_local unsigned g_serve_thread;

static inline void serve_lock(void)
{
    wsx_chat_lock(g_serve.chat);
}

static inline void serve_unlock(void)
{
    wsx_chat_unlock(g_serve.chat);
}

/* ---- serve_routes.c ---- */

/* Finds key in a query string and decodes its value (form encoding: '+' is a space; a
 * broken escape is kept as it is, as browsers do) into out as a C string, cut to cap - 1.
 * Returns whether key is there. */
bool serve_query_get(const char *q, size_t qlen, const char *key, char *out, size_t cap);
/* With --origin: whether rq's Origin (if any) is allowed. */
bool serve_check_origin(const wsx_http_req *rq);
/* Whether rq carries `token`, as ?token= or as Authorization: Bearer (constant time). */
bool serve_has_token(const wsx_http_req *rq, const char *token);
/* With --token: whether rq carries it. */
bool serve_check_token(const wsx_http_req *rq);
/* Answers status with body as the only content, of type ctype. */
void serve_respond_text(wsx_http_req *r, int status, const char *ctype, const char *body);
/* The default route (on_http): the page and the paths that decode to a route's path. */
void serve_on_page(wsx_http_req *r, void *user);
/* Adds the routes of one server (every loop has its own servers). Returns false when out
 * of memory. */
bool serve_add_routes(wsx_server *srv);

/* ---- serve_post.c ---- */

/* The request body limit of POST /api/rooms/NAME/messages (above it: 413). */
#define SERVE_POST_MAX_BODY 8192
/* Adds the route /api/rooms/ and the asterisk (POST only). Returns false when out of memory. */
bool serve_add_post_route(wsx_server *srv);

/* ---- serve_sse.c ---- */

/* One message as an SSE event: "id: N\nevent: message\ndata: JSON\n\n". Writes it at out
 * (NULL: only measures); returns its length. */
size_t serve_sse_format(char *out, uint64_t id, const char *json, size_t len);
/* Writes one message as an event to the listener. */
void serve_sse_send(sse *l, uint64_t id, const char *json, size_t len);
/* Publishes json to the room's topic in this thread's loop: its WebSocket members but
 * except, and, for chat messages (id != 0), its SSE listeners. Chat lock held. */
void serve_publish_local(const char *room, const char *json, size_t len, uint64_t id,
                         const void *except);
/* The keep-alive timer of a loop: a comment line to each of its listeners. */
void serve_sse_keepalive(wsx_timer *t, void *arg);
/* The /sse route. */
void serve_on_sse(wsx_http_req *r, void *user);

/* ---- serve_chat.c ---- */

/* How the chat reaches connections and SSE listeners. */
extern const wsx_chat_ops serve_chat_ops;
/* Hands a room event to the other loops (serve_publish_local there). Chat lock held. */
void serve_relay_loops(const char *room, const char *json, size_t len, uint64_t id);
/* The callbacks of the /ws route: a connection joins the chat, talks to it, leaves it. */
void serve_ws_open(wsx_conn *c, void *user);
void serve_ws_message(wsx_conn *c, const wsx_msg *msg, void *user);
void serve_ws_close(wsx_conn *c, int code, const char *reason, size_t len, void *user);
/* The library's lines about a connection (wsx_server_opts.on_conn_log), with its id. */
void serve_conn_log(const wsx_conn *c, int level, const char *msg, void *user);
/* The client's address from its text ("1.2.3.4:5555", "[::1]:5555") into ss, for the
 * chat's per-address rate limit; NULL when it cannot be read. */
const struct sockaddr *serve_peer_addr(const char *text, struct sockaddr_storage *ss);

/* ---- serve_sio.c ---- */

/* The chat's connections are /ws connections (wsx_conn *) or Socket.IO sockets, whose
 * pointer given to the chat has its low bit set (allocations are aligned). */
#define SERVE_IS_SIO(conn) (((uintptr_t)(conn)&1) != 0)
/* Serves the chat over Socket.IO at /socket.io/ on srv (on its loop's thread, or before
 * the loops run). Returns NULL when it cannot (out of memory). */
wsx_sio *serve_sio_attach(wsx_server *srv);
/* The chat's ops for a Socket.IO connection (SERVE_IS_SIO). */
void serve_sio_send(void *conn, const char *json, size_t len);
int serve_sio_subscribe(void *conn, const char *room);
void serve_sio_unsubscribe(void *conn, const char *room);
size_t serve_sio_queued(void *conn);
void serve_sio_close(void *conn, int code, const char *reason);
void serve_sio_send_history(void *conn, const wsx_chat_history *h);
/* The topics of this loop's hub that are the Socket.IO layer's own (each socket's room and
 * the namespace's), left out of wsx_topics. */
size_t serve_sio_own_topics(void);
/* Publishes json (a chat text) as a Socket.IO event to the room's Socket.IO members on this
 * loop, but except (a tagged connection, or anything else: none skipped). Chat lock held. */
void serve_sio_publish_local(wsx_hub *hub, const char *room, const char *json, size_t len,
                             const void *except);

/* ---- serve_metrics.c ---- */

/* The /metrics route (the loops' snapshots are metrics.c's, started by cmd_serve). */
void serve_on_metrics(wsx_http_req *r, void *user);

/* ---- serve_cluster.c (--redis) ---- */

/* Starts the Redis relay on loop 0 when --redis was given, and the hooks of the other loops'
 * hubs that count their rooms' subscribers there. Before the loops run. Returns false
 * (printed) if the URL is refused; an unreachable Redis is not an error (the relay keeps
 * trying). */
bool serve_cluster_start(void);
/* Stops it (on loop 0's thread, when shutdown begins, or after the loops). */
void serve_cluster_stop(void);
/* Relays one event the chat published to a room (id: a message's id, else 0); from any
 * loop (the others post it to loop 0). Chat lock held. */
void serve_cluster_publish(const char *room, const char *json, size_t len, uint64_t id);
/* The chat's sequencer (wsx_chat_ops.sequence): with --redis and the relay up, a message
 * (json with "id":0) is numbered by Redis and comes back through wsx_chat_deliver on every
 * node; returns whether it took it. Chat lock held. */
bool serve_cluster_sequence(const char *room, const char *json, size_t len);
/* Set while a message from Redis is being delivered: op_publish does not relay it again. */
extern _Thread_local bool g_serve_delivering;
/* Whether --redis was given and the relay is not up (/healthz says "degraded"). */
bool serve_cluster_degraded(void);
/* Holds (on) or releases a room's Redis channel for members the hubs do not count (the
 * Socket.IO members of serve_sio.c); any loop. No-op without --redis. */
void serve_cluster_hold(const char *room, bool on);
/* The relay's lines of /metrics at out (snprintf's return; 0 without --redis). */
int serve_cluster_metrics(char *out, size_t cap);

/* ---- serve_history.c (--redis): a room's history from Redis on joins and SSE resumes ---- */

typedef struct serve_hist_wait serve_hist_wait;
/* A WebSocket message on loop 0 (chat lock not held): when it is a join of a room whose
 * history here is not known complete, and Redis is up, a read of the room's history in Redis
 * starts (or one under way is shared), the message is held, and the wait is returned: the
 * connection's messages go to serve_history_hold until the read ends (or times out), then
 * the held ones reach the chat in order (serve_ws_feed, after serve_conn_history_done). NULL:
 * hand the message to the chat now. */
serve_hist_wait *serve_history_join(wsx_conn *c, const char *data, size_t len);
/* Holds one more message of a waiting connection: 0, or WSX_ELIMIT (more than 16 messages or
 * 64 KiB, or 4 MiB over every waiting connection: the caller closes it with 1008),
 * WSX_ENOMEM. */
int serve_history_hold(serve_hist_wait *w, const char *data, size_t len);
/* An SSE request on loop 0 resuming after Last-Event-ID in room: true when it waits for a read
 * (the request is opened again by serve_on_sse when it ends), false: open it now. */
bool serve_history_sse(wsx_http_req *r, const char *room);
/* The connection (request) of w went away while waiting: w is freed. */
void serve_history_forget(serve_hist_wait *w);
/* A subscriber of room on this loop left: on loop 0, the room's history is no longer known
 * complete once nobody of loop 0 is in it. */
void serve_history_left(const char *room);
/* Set while held messages and requests are handed on: they do not wait again. */
extern _Thread_local bool g_serve_history_go;
/* The lines of /metrics (snprintf's return; 0 without --redis). */
int serve_history_metrics(char *out, size_t cap);

/* ---- serve_chat.c, for serve_history.c ---- */

/* The wait of c is over (before its held messages are fed). */
void serve_conn_history_done(wsx_conn *c);
/* Hands a text message of c to the chat. */
void serve_ws_feed(wsx_conn *c, const char *data, size_t len);

/* ---- serve_presence.c (--redis): presence over every node; chat lock held ---- */

/* A room event of this node (from the chat) / of node `node` (from Redis): for `presence`
 * and `online`, the form this node's members get (malloc'd, *out_len), else NULL (deliver
 * json as it is). */
char *serve_presence_local(const char *room, const char *json, size_t len, size_t *out_len);
char *serve_presence_remote(uint64_t node, const char *room, const char *json, size_t len,
                            size_t *out_len);
/* A `joined` the chat sends one connection, with the online list of every node; NULL when
 * json is not a `joined`. */
char *serve_presence_joined(const char *json, size_t len, size_t *out_len);
/* A heartbeat of node (its people in every room): what changed is told to this node's
 * members. On loop 0. */
void serve_presence_heartbeat(uint64_t node, const char *json, size_t len);
/* This node's heartbeat (malloc'd). */
char *serve_presence_state(size_t *len);
/* The people of nodes silent for expire_ms leave (loop 0's clock). */
void serve_presence_expire(uint64_t now, uint64_t expire_ms);
/* Frees the tables (after the loops). */
void serve_presence_free(void);

#endif
