/*
 * `wsx serve`: the Socket.IO front end of the chat (docs/chat-protocol.md, "Socket.IO") at
 * /socket.io/, namespace "/": each event is one chat message whose `type` is the event's
 * name, each chat message to a client is one event. A Socket.IO socket is a connection of
 * the chat like a /ws one: the chat's ops tell them apart by the pointer's tag (serve.h).
 *
 * Room publications reach Socket.IO members through the loop's hub like the /ws ones: the
 * chat's publish also publishes the Socket.IO packet (made once) to the room's Socket.IO
 * topic, whose subscribers are the members' sessions; the hub frames it once for the
 * WebSocket sessions and the engine copies it once for the polling ones (wsx_eio_send_msg).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "serve.h"

/* One Socket.IO socket in the chat. */
typedef struct sio_member {
    wsx_sio_socket *s;
    wsx_chat_conn *cc;
    wsx_sub *sub; /* the room's Socket.IO topic, while in a room */
} sio_member;

static sio_member *member_of(void *conn)
{
    return (sio_member *)((uintptr_t)conn & ~(uintptr_t)1);
}

static void *conn_of(sio_member *m)
{
    return (void *)((uintptr_t)m | 1);
}

static void sio_topic(char *t, size_t cap, const char *room)
{
    snprintf(t, cap, "chat-sio:%s", room);
}

/* The event's name: the chat's JSON texts all start with {"type":"NAME" (NAME plain
 * lower-case letters), written by src/chat. Returns its length, 0 if json is not so. */
static size_t type_of(const char *json, size_t len, const char **name)
{
    static const char head[] = "{\"type\":\"";
    size_t hl = sizeof head - 1;
    if (len <= hl || memcmp(json, head, hl)) return 0;
    const char *q = memchr(json + hl, '"', len - hl);
    if (!q) return 0;
    *name = json + hl;
    return (size_t)(q - *name);
}

/* The Socket.IO EVENT packet of the namespace "/" carrying json as the one argument of the
 * event named by its type, with the Engine.IO message digit first when eio_digit:
 * [4]2["TYPE",JSON]. malloc'd (*out_len bytes); NULL if out of memory or not a chat text. */
static char *packet_of(const char *json, size_t len, bool eio_digit, size_t *out_len)
{
    const char *name;
    size_t nl = type_of(json, len, &name);
    if (!nl) return NULL;
    size_t n = (eio_digit ? 1 : 0) + 3 + nl + 2 + len + 1;
    char *p = malloc(n), *w = p;
    if (!p) return NULL;
    if (eio_digit) *w++ = '4';
    memcpy(w, "2[\"", 3);
    w += 3;
    memcpy(w, name, nl);
    w += nl;
    memcpy(w, "\",", 2);
    w += 2;
    memcpy(w, json, len);
    w += len;
    *w = ']';
    *out_len = n;
    return p;
}

void serve_sio_send(void *conn, const char *json, size_t len)
{
    sio_member *m = member_of(conn);
    size_t n;
    char *p = packet_of(json, len, false, &n);
    if (!p) return;
    wsx_eio_send(wsx_sio_socket_session(m->s), p, n, false);
    free(p);
}

/* A publication of the room's Socket.IO topic: the packet to one member's session (the
 * hub's frame on WebSocket, one shared copy on polling). */
static int deliver(wsx_sub *sub, wsx_hub_msg *msg, void *user)
{
    (void)sub;
    sio_member *m = user;
    int rc = wsx_eio_send_msg(wsx_sio_socket_session(m->s), msg);
    return rc == 0 || rc == WSX_EBACKPRESSURE;
}

/* Ends the member's room subscription and its hold on the room's Redis channel. */
static void release(sio_member *m)
{
    if (!m->sub) return;
    const char *t = wsx_sub_topic(m->sub);
    serve_cluster_hold(t + sizeof "chat-sio:" - 1, false);
    wsx_hub_unsubscribe(m->sub);
    m->sub = NULL;
}

int serve_sio_subscribe(void *conn, const char *room)
{
    sio_member *m = member_of(conn);
    wsx_hub *hub = wsx_hub_of(g_serve.runner.t[g_serve_thread].loop);
    char t[64];
    sio_topic(t, sizeof t, room);
    wsx_sub *sub;
    int rc = hub ? wsx_hub_subscribe(hub, t, deliver, m, &sub) : WSX_ENOMEM;
    if (rc < 0) return rc;
    release(m);
    m->sub = sub;
    serve_cluster_hold(room, true);
    return 0;
}

void serve_sio_unsubscribe(void *conn, const char *room)
{
    (void)room;
    release(member_of(conn));
}

size_t serve_sio_queued(void *conn)
{
    return wsx_eio_buffered_amount(wsx_sio_socket_session(member_of(conn)->s));
}

/* The session ends later (never inside this call): the socket's disconnect callback then
 * closes the chat's connection, which must not happen inside the chat's op. */
void serve_sio_close(void *conn, int code, const char *reason)
{
    sio_member *m = member_of(conn);
    tool_logf(WSX_LOG_WARN, "%s (Socket.IO connection c%llu): closing: %d %s",
              wsx_eio_session_peer(wsx_sio_socket_session(m->s)),
              (unsigned long long)wsx_chat_conn_id(m->cc), code, reason);
    wsx_eio_close(wsx_sio_socket_session(m->s));
}

void serve_sio_send_history(void *conn, const wsx_chat_history *h)
{
    size_t len;
    char *json = wsx_chat_history_json(h, &len);
    if (!json) return;
    serve_sio_send(conn, json, len);
    free(json);
}

void serve_sio_publish_local(wsx_hub *hub, const char *room, const char *json, size_t len,
                             const void *except)
{
    char t[64];
    sio_topic(t, sizeof t, room);
    if (!wsx_hub_subscribers(hub, t)) return;
    size_t n;
    char *p = packet_of(json, len, true, &n);
    if (!p) return;
    const void *ex = ((uintptr_t)except & 1) ? member_of((void *)except) : NULL;
    wsx_hub_publish(hub, t, p, n, WSX_TEXT, ex, NULL);
    free(p);
}

size_t serve_sio_own_topics(void)
{
    size_t n = 0;
    bool any = false;
    for (size_t i = 0; i < TOOL_RUNNER_MAX_SERVERS; i++) {
        wsx_sio *io = g_serve.t[g_serve_thread].sio[i];
        if (!io) continue;
        any = true;
        n += wsx_sio_sockets(io);
    }
    /* The namespaces of the loop's servers share one topic ("/" is the only one). */
    return n + any;
}

/* ---- the Socket.IO server's callbacks ---- */

/* The handshake (the first Engine.IO request of a session): --origin refuses with 403; a
 * --token in its query or Authorization header marks the session (1), which the CONNECT's
 * middleware then lets in without auth.token. */
static int allow_request(wsx_eio *e, const wsx_http_req *req, void *user)
{
    (void)e;
    (void)user;
    if (!serve_check_origin(req)) {
        tool_logf(WSX_LOG_INFO, "%s refused: origin not allowed", wsx_http_req_peer(req));
        return 403;
    }
    return g_serve.token && serve_has_token(req, g_serve.token) ? 1 : 0;
}

static bool same_token(const char *a, size_t al, const char *b, size_t bl)
{
    unsigned char d = al != bl;
    for (size_t i = 0; i < al && i < bl; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return !d;
}

/* Refuses a CONNECT without the token with connect_error {"message":"unauthorized"}. */
static int check_token(wsx_sio_socket *s, json_t *auth, json_t **error, void *user)
{
    (void)user;
    if (!g_serve.token || wsx_eio_session_mark(wsx_sio_socket_session(s)) == 1) return 0;
    json_t *t = json_object_get(auth, "token");
    if (json_is_string(t) && same_token(json_string_value(t), json_string_length(t), g_serve.token,
                                        strlen(g_serve.token)))
        return 0;
    tool_logf(WSX_LOG_INFO, "%s Socket.IO refused: no token",
              wsx_eio_session_peer(wsx_sio_socket_session(s)));
    *error = json_pack("{s:s}", "message", "unauthorized");
    return -1;
}

static void on_connection(wsx_sio_socket *s, void *user)
{
    (void)user;
    const char *peer = wsx_eio_session_peer(wsx_sio_socket_session(s));
    sio_member *m = calloc(1, sizeof *m);
    if (!m) {
        wsx_sio_disconnect(s, true);
        return;
    }
    m->s = s;
    wsx_sio_set_user(s, m);
    struct sockaddr_storage ss;
    serve_lock();
    m->cc = wsx_chat_conn_open(g_serve.chat, conn_of(m), serve_peer_addr(peer, &ss));
    serve_unlock();
    if (!m->cc) {
        tool_logf(WSX_LOG_WARN, "%s: out of memory, closing", peer);
        wsx_sio_set_user(s, NULL);
        free(m);
        wsx_sio_disconnect(s, true);
        return;
    }
    tool_logf(WSX_LOG_INFO, "%s Socket.IO open (%s, connection c%llu)", peer,
              wsx_eio_session_transport(wsx_sio_socket_session(s)),
              (unsigned long long)wsx_chat_conn_id(m->cc));
}

/* An event: its one object, with the event's name as its `type`, is the chat message. */
static void on_event(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    (void)user;
    sio_member *m = wsx_sio_user(s);
    if (!m) return;
    if (ev->n_bins) {
        wsx_chat_conn_message(g_serve.chat, m->cc, "", 0, true);
        return;
    }
    json_t *obj = json_array_get(ev->args, 0);
    if (!json_is_object(obj)) {
        wsx_chat_conn_message(g_serve.chat, m->cc, "", 0, false); /* bad_json */
        return;
    }
    /* A copy: the event's arguments are the library's. The name may hold a NUL byte (then
     * it cannot be a type of the chat): the chat answers bad_type. */
    json_t *req = json_copy(obj);
    if (!req || json_object_set_new(req, "type", json_stringn(ev->name, ev->name_len)) < 0) {
        json_decref(req);
        return;
    }
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text) return;
    size_t len = strlen(text);
    /* As a /ws message above 16 KiB closes the WebSocket (1009). */
    if (len > SERVE_MAX_MESSAGE) {
        free(text);
        tool_logf(WSX_LOG_INFO, "%s Socket.IO event above %u bytes: closing",
                  wsx_eio_session_peer(wsx_sio_socket_session(s)), SERVE_MAX_MESSAGE);
        wsx_eio_close(wsx_sio_socket_session(s));
        return;
    }
    wsx_chat_conn_message(g_serve.chat, m->cc, text, len, false);
    free(text);
}

static void on_disconnect(wsx_sio_socket *s, const char *reason, void *user)
{
    (void)user;
    sio_member *m = wsx_sio_user(s);
    if (!m) return;
    wsx_sio_set_user(s, NULL);
    tool_logf(WSX_LOG_INFO, "%s Socket.IO close (%s)",
              wsx_eio_session_peer(wsx_sio_socket_session(s)), reason);
    serve_lock();
    wsx_chat_conn_close(g_serve.chat, m->cc); /* leaves the room: unsubscribes */
    release(m);                               /* normally done by the chat's unsubscribe already */
    serve_unlock();
    free(m);
}

wsx_sio *serve_sio_attach(wsx_server *srv)
{
    wsx_sio_opts o = wsx_sio_defaults();
    o.eio.path = "/socket.io/";
    o.eio.max_payload = SERVE_SIO_MAX_PAYLOAD;
    o.eio.allow_request = allow_request;
    /* The requests of a polling session must reach the loop that holds it; with several
     * loops on one port (SO_REUSEPORT spreads connections over them) only WebSocket works. */
    if (g_serve.runner.n_threads > 1) o.eio.transports = WSX_EIO_WEBSOCKET;
    o.eio.cors_origins = g_serve.cors.origins;
    o.eio.n_cors_origins = g_serve.cors.n_origins;
    wsx_sio *io;
    if (wsx_sio_attach(srv, &o, &io) < 0) return NULL;
    wsx_sio_nsp *root = wsx_sio_of(io, "/");
    if (!root || wsx_sio_use(root, check_token, NULL) < 0 ||
        wsx_sio_nsp_on(root, NULL, on_event, NULL) < 0) {
        wsx_sio_free(io);
        return NULL;
    }
    wsx_sio_on_connection(root, on_connection, NULL);
    wsx_sio_nsp_on_disconnect(root, on_disconnect, NULL);
    return io;
}
