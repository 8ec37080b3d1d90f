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

struct sockaddr;

#define WSX_CHAT_MAX_NAME 32 /* code points */
#define WSX_CHAT_MAX_ROOM 32 /* bytes of A-Za-z0-9_.- */
#define WSX_CHAT_MAX_TEXT 2000
#define WSX_CHAT_MAX_KEY  128 /* bytes of a join's `key` */

typedef struct wsx_chat wsx_chat;
typedef struct wsx_chat_conn wsx_chat_conn;
typedef struct wsx_chat_listener wsx_chat_listener;
typedef struct wsx_chat_history wsx_chat_history;

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
    /* Wall-clock time in milliseconds since the epoch: the `ts` of messages. */
    uint64_t (*now_ms)(void *user);
    /* Monotonic milliseconds (CLOCK_MONOTONIC): the rate limits, --history-idle and the idle
     * address table, which measure intervals and must not move when the wall clock is set.
     * NULL: now_ms serves for both. */
    uint64_t (*clock_ms)(void *user);
    /* Sends one SSE event (id, the message JSON) to a listener. */
    void (*sse_send)(void *listener, uint64_t id, const char *json, size_t len, void *user);
    /* Closes conn with a WebSocket close code (1008 for a flood of refused messages); the
     * front end calls wsx_chat_conn_close when it is closed. Until then the chat ignores
     * conn's messages. NULL: the chat only ignores them. */
    void (*close)(void *conn, int code, const char *reason, void *user);

    /* Shared history (optional; all three or none). Without them each join gets its own
     * copy of the `history` message through send, and each replay its events through
     * sse_send. With them the front end can build what it sends once per change of the
     * history and share it between recipients: the chat keeps one pointer per room for it
     * (`*cache`, NULL at first), which the front end may set, and hands it to cache_free
     * (then forgets it) whenever the room's history changes, the room goes idle, is freed,
     * or the chat is freed. h is valid for the call only (see wsx_chat_history_*). */
    /* Sends conn the room's `history` message (wsx_chat_history_json makes its text). */
    void (*send_history)(void *conn, void **cache, const wsx_chat_history *h, void *user);
    /* Sends a listener the history's messages with an id above `after` as SSE events,
     * oldest first (what sse_send would send for each). */
    void (*sse_history)(void *listener, void **cache, const wsx_chat_history *h, uint64_t after,
                        void *user);
    void (*cache_free)(void *cache, void *user);

    /* Optional: a sequencer that numbers the messages of several chats (`wsx serve --redis`,
     * docs/cluster.md). A chat message (a member's, or wsx_chat_post's) is offered to it
     * first as its `message` JSON with "id":0; when it returns true, the chat neither
     * numbers nor publishes nor keeps the message: the front end brings it back numbered
     * with wsx_chat_deliver(), on this chat and the others. false: the chat posts it itself
     * (the sequencer is away). */
    bool (*sequence)(const char *room, const char *json, size_t len, void *user);
} wsx_chat_ops;

/* What post_text returns for a message the sequencer took (internal). */
#define WSX_CHAT_SEQUENCED UINT64_MAX

typedef struct wsx_chat_opts {
    size_t history;          /* messages kept per room and sent on join (default 100; 0: none) */
    size_t max_rooms;        /* rooms at most; at the cap the idle room used longest ago goes */
    const char *server_name; /* in `welcome` (default "wsx 0.1.0") */
    /* History budget: bytes of history over all rooms (each message counts its JSON text
     * plus WSX_CHAT_HISTORY_OVERHEAD). Past it, the history of the room posted to least
     * recently is dropped whole, or, if that is the room just posted to, its oldest
     * messages. 0: no budget. Default 64 MiB. */
    size_t history_bytes;
    /* The history of a room with no member and no listener is dropped once it has been so
     * for this long (and the room with it), when wsx_chat_expire runs. 0: never. Default
     * 86400000 (a day). */
    uint64_t history_idle_ms;
    /* A join from a connection with more than this many bytes queued (ops->queued) is
     * refused with the error `slow_down`, once until a join is accepted again; later joins
     * while it stays above are dropped unanswered, so a client that does not read cannot
     * make the server queue anything for it. 0: no check. Default 0 (a front end sets it
     * to its send queue's high-water mark). */
    size_t join_max_queued;
    /* The rate limit of chat messages (`message` and `typing`) per connection: a token
     * bucket of `rate` per second holding `burst` at most (rate 0: no limit). A message over
     * it is refused with the error rate_limited; more than max_refusals refusals within
     * refusal_window_ms close the connection with 1008. */
    uint32_t rate;  /* default 20 */
    uint32_t burst; /* default 40 */
    /* The same for `join` and `leave` (each makes the server write to everyone in a room):
     * join_rate per second (0: no limit), join_burst at once; refusals count together. */
    uint32_t join_rate;  /* default 5 */
    uint32_t join_burst; /* default 100 */
    /* The rate limit of chat messages per client address (the peer given to
     * wsx_chat_conn_open; an IPv4 address, or an IPv6 /64, as admission counts them): one
     * bucket of rate_per_ip per second holding burst_per_ip at most, shared by every
     * connection from the address, so that reconnecting does not buy a fresh burst. A
     * message needs a token from both its connection's bucket and its address's; refused,
     * it gets rate_limited and counts as a refusal of its connection (the 1008 rule).
     * rate_per_ip 0: no per-address limit. An address's bucket is kept while it has a
     * connection, and after its last one closes until the bucket would be full again
     * (burst_per_ip / rate_per_ip seconds, or join_burst_per_ip / join_rate_per_ip if longer); at
     * most WSX_CHAT_MAX_IDLE_ADDRESSES such buckets are kept, the oldest going first. */
    uint32_t rate_per_ip;  /* default 100 */
    uint32_t burst_per_ip; /* default 200 */
    /* The same per address for `join` and `leave` (a reconnecting client would otherwise
     * make a room see a join and a leave per connection): join_rate_per_ip per second (0:
     * no limit), join_burst_per_ip at once. An address's buckets are kept until all of them
     * would be full again. */
    uint32_t join_rate_per_ip;  /* default 10 */
    uint32_t join_burst_per_ip; /* default 200 */
    uint32_t max_refusals;      /* default 100 */
    uint32_t refusal_window_ms; /* default 10000 */
    /* The rate limit of wsx_chat_post: one bucket shared by every poster, post_rate per
     * second holding post_burst at most (post_rate 0: no limit). */
    uint32_t post_rate;  /* default 100 */
    uint32_t post_burst; /* default 200 */
    void *user;          /* passed to every op */
} wsx_chat_opts;

/* What a history message costs beyond its JSON text in the budget: its allocation and its
 * slot in the room's ring. */
#define WSX_CHAT_HISTORY_OVERHEAD 32

/* Per-address buckets kept for addresses with no connection left (see rate_per_ip). */
#define WSX_CHAT_MAX_IDLE_ADDRESSES 65536

/* The defaults: history 100, max_rooms 10000, history_bytes 64 MiB, history_idle_ms a day,
 * rate 20/s, burst 40, joins 5/s, join burst 100; per address 100/s and 200, joins 10/s
 * and 200; 100 refusals in 10 s; posts 100/s and 200. */
wsx_chat_opts wsx_chat_defaults(void);

/* Creates a chat. ops and the strings in opts are borrowed for the chat's lifetime. Returns 0
 * and sets *out, or WSX_ENOMEM (*out untouched). */
int wsx_chat_new(const wsx_chat_opts *opts, const wsx_chat_ops *ops, wsx_chat **out);

/* Frees the chat, its rooms and history. Connections and listeners still open are freed
 * without any op being called, except cache_free for the rooms' shared history. NULL is a
 * no-op. */
void wsx_chat_free(wsx_chat *chat);

/* A connection opened: sends it `welcome`. conn is the front end's handle, passed back to the
 * ops; it must stay valid until wsx_chat_conn_close. peer is the client's address (borrowed
 * for the call): its connections share the per-address rate limit (rate_per_ip); NULL, or a
 * family other than AF_INET and AF_INET6, is not limited per address. Returns the
 * connection's state, or NULL (out of memory: the front end should close the connection). */
wsx_chat_conn *wsx_chat_conn_open(wsx_chat *chat, void *conn, const struct sockaddr *peer);

/* A client message: a text (binary false) or a binary message of len bytes (borrowed). The
 * answers, publications and errors go out through the ops before it returns. */
void wsx_chat_conn_message(wsx_chat *chat, wsx_chat_conn *cc, const char *data, size_t len,
                           bool binary);

/* The connection closed: it leaves its room (the others get presence/online) and cc is
 * freed. NULL is a no-op. */
void wsx_chat_conn_close(wsx_chat *chat, wsx_chat_conn *cc);

/* The connection's id as sent in `welcome` (a number; the page shows it as "c<N>"). */
uint64_t wsx_chat_conn_id(const wsx_chat_conn *cc);

/* The name of the room cc is in, as a C string cut to cap - 1 bytes (for log lines); "" and
 * false when it is in none. Takes the chat's lock. */
bool wsx_chat_conn_room(wsx_chat *chat, const wsx_chat_conn *cc, char *out, size_t cap);

/* Posts text to room (NUL-terminated) as `name` without a connection: what a backend sends
 * (`wsx serve`'s POST /api/rooms/NAME/messages). It takes the path of a member's `message`
 * (the next id of the room, its members and SSE listeners through publish, the history) and
 * its rules: room as wsx_chat_valid_room, name and text trimmed, name 1..32 code points with
 * no control or format character, text 1..2000 code points of UTF-8 without NUL. The
 * message's JSON carries "bot":true. The name is not reserved in the room (posters are
 * trusted: whoever may call this may post under any name). A room that does not exist is
 * made (and kept for its history while idle). Returns 0 and sets *id; or WSX_EINVAL (*why:
 * "bad_room", "bad_name" or "bad_text"), WSX_ELIMIT (*why: "rate_limited", over post_rate;
 * "too_many_rooms", the room cap with no idle room), WSX_ENOMEM ("no_memory"). why may be
 * NULL; the strings are static. With a sequencer (wsx_chat_ops.sequence) that takes the
 * message, *id is 0: the id is given later (wsx_chat_deliver). */
int wsx_chat_post(wsx_chat *chat, const char *room, const char *name, size_t name_len,
                  const char *text, size_t text_len, uint64_t *id, const char **why);

/* A message numbered by the sequencer (see wsx_chat_ops.sequence), from this chat or
 * another: json (len bytes, borrowed) is a `message` JSON, starting {"type":"message","id":
 * with its id, which is `id`. It is published to the room (ops.publish, with the id, so its
 * SSE listeners get it) and kept in its history, and the room's own numbering continues above
 * it. id 0: the message was offered to the sequencer but not numbered (it went away): json
 * carries "id":0, the chat numbers it itself as a post would. A message whose id is not above
 * the room's newest in history is published but not kept (the history's ids only grow). The
 * room is made if needed (and kept for its history while idle). Returns 0, WSX_EINVAL (a bad
 * room name, not a message JSON, an id above 2^53), WSX_ELIMIT (the room cap with no idle room),
 * WSX_ENOMEM. */
int wsx_chat_deliver(wsx_chat *chat, const char *room, uint64_t id, const char *json, size_t len);

/* Completes the room's history from another source (`wsx serve --redis`: the history Redis
 * keeps, docs/cluster.md): n messages, jsons[i] (lens[i] bytes, borrowed) the `message` JSON
 * of id ids[i], as wsx_chat_deliver takes them. Those the history lacks are put in their place
 * by id, without being published (who was here got them; a join gets them in `history`); the
 * newest `history` messages of the two are kept, and the room's own numbering continues above
 * them. A message with an id the history holds is the history's. The room is made if needed.
 * Returns the number of messages added, WSX_EINVAL (a bad room name, or any json that is not
 * a message JSON with its id, id 0 or above 2^53, or not UTF-8: nothing is added), WSX_ELIMIT
 * (the room cap with no idle room), WSX_ENOMEM (nothing is changed). */
ptrdiff_t wsx_chat_history_merge(wsx_chat *chat, const char *room, size_t n, const uint64_t *ids,
                                 const char *const *jsons, const size_t *lens);

/* A front end's mark on a room: its history is known complete (`wsx serve --redis`: read from
 * Redis while this node receives the room's messages). set marks (true) or unmarks the room
 * (a room that does not exist is not marked, and a room freed loses its mark); clear_all
 * unmarks every room in O(1). */
void wsx_chat_history_set_complete(wsx_chat *chat, const char *room, bool complete);
bool wsx_chat_history_complete(wsx_chat *chat, const char *room);
void wsx_chat_history_clear_complete(wsx_chat *chat);

/* The id of the room's newest message (the sequencer's or its own), 0 for a room that has
 * none or does not exist: what a sequencer that lost its count resumes above. */
uint64_t wsx_chat_last_id(wsx_chat *chat, const char *room);

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
    size_t rooms;            /* rooms in memory (with members, listeners or history) */
    size_t members;          /* connections in a room */
    size_t listeners;        /* SSE listeners */
    size_t conns;            /* connections open */
    size_t history_bytes;    /* what the history of all rooms costs in the budget */
    size_t history_messages; /* messages held over all rooms */
    size_t addresses;        /* per-address buckets held (with connections, or refilling) */
    uint64_t rate_limited;   /* messages, joins and leaves refused with rate_limited */
    uint64_t rate_closes;    /* connections closed with 1008 for too many refusals */
} wsx_chat_stats;

void wsx_chat_get_stats(wsx_chat *chat, wsx_chat_stats *out);

/* Drops the history of every room that has had no member and no listener for
 * history_idle_ms or longer, and those rooms with it. O(rooms dropped): the rooms wait in
 * the order they went idle. A front end calls it from a timer (the chat keeps none).
 * Returns the number of rooms dropped. */
size_t wsx_chat_expire(wsx_chat *chat);

/* ---- a room's history, as the shared-history ops see it (valid during the op only) ---- */

/* The room's name (NUL-terminated). */
const char *wsx_chat_history_room(const wsx_chat_history *h);
/* Messages held, and the i-th (0: the oldest) as its JSON text (NUL-terminated, len bytes)
 * with its id. Ids grow from oldest to newest. */
size_t wsx_chat_history_count(const wsx_chat_history *h);
const char *wsx_chat_history_get(const wsx_chat_history *h, size_t i, uint64_t *id, size_t *len);
/* The `history` message: {"type":"history","room":R,"messages":[...]} (malloc'd and
 * NUL-terminated, len bytes without the NUL; the caller frees it), NULL if out of memory. */
char *wsx_chat_history_json(const wsx_chat_history *h, size_t *len);

/* Takes and releases the chat's lock (recursive): for a front end that must keep the chat
 * still across several calls, or while it delivers on its own. */
void wsx_chat_lock(wsx_chat *chat);
void wsx_chat_unlock(wsx_chat *chat);

/* A room name as the protocol allows it: 1..32 bytes of A-Za-z0-9_.- */
bool wsx_chat_valid_room(const char *s, size_t n);

#endif
