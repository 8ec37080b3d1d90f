/*
 * src/chat — the chat of `wsx serve` (docs/chat-protocol.md) without sockets: rooms, members,
 * tabs, presence, history, typing and the rules of the protocol. A front end (the WebSocket
 * JSON server in tools/wsx/serve.c, a test, a fuzzer) drives it with the connection events
 * (opened, a client message, closed; an SSE listener added or removed) and it answers through
 * the callbacks of a wsx_chat_ops table. Private to the project: not part of libwsx's API.
 *
 * Threads: every wsx_chat_* call takes the chat's lock (a recursive mutex) for its duration,
 * and the ops are called with it held, from the thread that made the call. A front end with
 * several loops delivers what the ops hand it to the other loops itself.
 */
#ifndef WSX_CHAT_H
#define WSX_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSX_CHAT_MAX_NAME 32 /* code points */
#define WSX_CHAT_MAX_ROOM 32 /* bytes of A-Za-z0-9_.- */
#define WSX_CHAT_MAX_TEXT 2000
#define WSX_CHAT_MAX_KEY  128 /* bytes of a join's `key` */

typedef struct wsx_chat wsx_chat;
typedef struct wsx_chat_conn wsx_chat_conn;
typedef struct wsx_chat_listener wsx_chat_listener;

/* How the chat reaches its connections. `conn` is the front end's pointer given to
 * wsx_chat_conn_open (a listener's to wsx_chat_listener_add), `user` is wsx_chat_opts.user.
 * JSON texts are borrowed for the call. */
typedef struct wsx_chat_ops {
    /* Sends one JSON text to one connection. */
    void (*send)(void *conn, const char *json, size_t len, void *user);
    /* Sends json to every connection subscribed to room (see subscribe), except `except`
     * (NULL: none). `id` is the message id of a chat message (which the room's SSE
     * listeners get too, see listeners_each), 0 for other events. */
    void (*publish)(const char *room, const char *json, size_t len, uint64_t id, void *except,
                    void *user);
    /* Subscribes conn to room's publications; returns 0, or < 0 if it cannot (the join is
     * then refused). unsubscribe ends it. */
    int (*subscribe)(void *conn, const char *room, void *user);
    void (*unsubscribe)(void *conn, const char *room, void *user);
    /* Bytes queued for conn and not yet written (0 if unknown). */
    size_t (*queued)(void *conn, void *user);
    /* Wall-clock time in milliseconds since the epoch (message `ts`, idle rooms). */
    uint64_t (*now_ms)(void *user);
    /* Sends one SSE event (id, the message JSON) to a listener. */
    void (*sse_send)(void *listener, uint64_t id, const char *json, size_t len, void *user);
    /* Closes conn with a WebSocket close code (1008 for a flood of refused messages); the
     * front end calls wsx_chat_conn_close when it is closed. Until then the chat ignores
     * conn's messages. NULL: the chat only ignores them. */
    void (*close)(void *conn, int code, const char *reason, void *user);
} wsx_chat_ops;

typedef struct wsx_chat_opts {
    size_t history;          /* messages kept per room and sent on join (default 100; 0: none) */
    size_t max_rooms;        /* rooms at most; at the cap the idle room used longest ago goes */
    const char *server_name; /* in `welcome` (default "wsx 0.1.0") */
    /* The rate limit of chat messages (`message` and `typing`) per connection: a token
     * bucket of `rate` per second holding `burst` at most (rate 0: no limit). A message over
     * it is refused with the error rate_limited; more than max_refusals refusals within
     * refusal_window_ms close the connection with 1008. */
    uint32_t rate;  /* default 20 */
    uint32_t burst; /* default 40 */
    /* The same for `join` and `leave` (each makes the server write to everyone in a room):
     * join_rate per second (0: no limit), join_burst at once; refusals count together. */
    uint32_t join_rate;         /* default 5 */
    uint32_t join_burst;        /* default 100 */
    uint32_t max_refusals;      /* default 100 */
    uint32_t refusal_window_ms; /* default 10000 */
    void *user;                 /* passed to every op */
} wsx_chat_opts;

/* The defaults: history 100, max_rooms 10000, rate 20/s, burst 40, joins 5/s, join burst 100,
 * 100 refusals in 10 s. */
wsx_chat_opts wsx_chat_defaults(void);

/* Creates a chat. ops and the strings in opts are borrowed for the chat's lifetime. Returns 0
 * and sets *out, or WSX_ENOMEM (*out untouched). */
int wsx_chat_new(const wsx_chat_opts *opts, const wsx_chat_ops *ops, wsx_chat **out);

/* Frees the chat, its rooms and history. Connections and listeners still open are freed
 * without any op being called. NULL is a no-op. */
void wsx_chat_free(wsx_chat *chat);

/* A connection opened: sends it `welcome`. conn is the front end's handle, passed back to the
 * ops; it must stay valid until wsx_chat_conn_close. Returns the connection's state, or NULL
 * (out of memory: the front end should close the connection). */
wsx_chat_conn *wsx_chat_conn_open(wsx_chat *chat, void *conn);

/* A client message: a text (binary false) or a binary message of len bytes (borrowed). The
 * answers, publications and errors go out through the ops before it returns. */
void wsx_chat_conn_message(wsx_chat *chat, wsx_chat_conn *cc, const char *data, size_t len,
                           bool binary);

/* The connection closed: it leaves its room (the others get presence/online) and cc is
 * freed. NULL is a no-op. */
void wsx_chat_conn_close(wsx_chat *chat, wsx_chat_conn *cc);

/* The connection's id as sent in `welcome` (a number; the page shows it as "c<N>"). */
uint64_t wsx_chat_conn_id(const wsx_chat_conn *cc);

/* Adds an SSE listener (the front end's handle `listener`) to room (NUL-terminated).
 * Returns 0 and sets *out; WSX_EINVAL for a bad room name, WSX_ELIMIT when no room can be
 * made (the room cap with no idle room), WSX_ENOMEM. */
int wsx_chat_listener_add(wsx_chat *chat, const char *room, void *listener,
                          wsx_chat_listener **out);

/* Sends a listener the room's history after message id `after` (sse_send), oldest first:
 * how a reconnecting EventSource resumes. */
void wsx_chat_listener_replay(wsx_chat *chat, wsx_chat_listener *l, uint64_t after);

/* Removes and frees a listener. NULL is a no-op. */
void wsx_chat_listener_remove(wsx_chat *chat, wsx_chat_listener *l);

/* Calls fn(listener, arg) for every SSE listener of room (none if there is no such room). fn
 * may remove the listener it is given (wsx_chat_listener_remove), no other. */
void wsx_chat_listeners_each(wsx_chat *chat, const char *room,
                             void (*fn)(void *listener, void *arg), void *arg);

/* Calls fn for every SSE listener of every room; fn may remove the listener it is given. */
void wsx_chat_listeners_all(wsx_chat *chat, void (*fn)(void *listener, void *arg), void *arg);

/* Counts for /metrics and tests. */
typedef struct wsx_chat_stats {
    size_t rooms;     /* rooms in memory (with members, listeners or history) */
    size_t members;   /* connections in a room */
    size_t listeners; /* SSE listeners */
    size_t conns;     /* connections open */
} wsx_chat_stats;

void wsx_chat_get_stats(wsx_chat *chat, wsx_chat_stats *out);

/* Takes and releases the chat's lock (recursive): for a front end that must keep the chat
 * still across several calls, or while it delivers on its own. */
void wsx_chat_lock(wsx_chat *chat);
void wsx_chat_unlock(wsx_chat *chat);

/* A room name as the protocol allows it: 1..32 bytes of A-Za-z0-9_.- */
bool wsx_chat_valid_room(const char *s, size_t n);

#endif
