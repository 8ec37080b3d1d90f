/*
 * wsx/sio.h — Socket.IO v5 servers on wsx (docs/socketio.md, "Socket.IO (src/sio)").
 *
 * A Socket.IO server answers "/socket.io/" (by default) of an existing wsx_server through an
 * Engine.IO server (wsx/eio.h) it makes for itself, so the official socket.io-client (and
 * other Socket.IO v5 clients) connect over WebSocket or HTTP long-polling with no change.
 * One Engine.IO session carries the client's sockets: one per namespace it connected to.
 *
 *     wsx_sio *io;
 *     wsx_sio_attach(srv, NULL, &io);                  (after wsx_server_start)
 *     wsx_sio_nsp *root = wsx_sio_of(io, "/");
 *     wsx_sio_on_connection(root, on_connection, NULL);
 *     ...in on_connection: wsx_sio_on(s, "chat message", on_chat, NULL);
 *     ...in on_chat: wsx_sio_broadcast(&(wsx_sio_to){.nsp = root}, "chat message",
 *                                      json_incref(ev->args), NULL, 0);
 *
 * JSON values are jansson's json_t (this header includes <jansson.h>; wsx.h does not, so
 * only programs that use Socket.IO need jansson's headers). Text the library writes is
 * byte-identical to JavaScript's JSON.stringify of the same value (key order kept).
 *
 * Binary values: jansson has no binary type, so a binary argument is a placeholder object,
 * {"_placeholder":true,"num":i} (wsx_sio_placeholder(i)), standing for the i-th buffer of the
 * message's attachments. Received events keep that form (wsx_sio_bin_of() maps a value to its
 * bytes); to send binary, put placeholders in the arguments and pass the buffers. Passing a
 * received event's args and bins to an emit sends the same binary values back.
 *
 * Arguments: every call that takes `json_t *args` takes an array (the event's arguments
 * after its name; NULL: none) and steals the reference, on failure too (as
 * json_array_append_new does), so json_pack() results can be passed inline; pass
 * json_incref(v) to keep a value. Buffers (bins) are borrowed for the call.
 *
 * Threads and lifetimes: as wsx.h. Everything on the server's loop thread. A socket pointer
 * is valid from its on_connection callback until its disconnect callback returns (every
 * on_connection is matched by exactly one disconnect callback, shutdown included); emits on
 * a socket that is disconnecting fail with WSX_ECLOSED. Data passed to callbacks is borrowed
 * until the callback returns (json_incref what you keep).
 */
#ifndef WSX_SIO_H
#define WSX_SIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "eio.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsx_sio wsx_sio;               /* a Socket.IO server */
typedef struct wsx_sio_nsp wsx_sio_nsp;       /* a namespace ("/", "/admin") */
typedef struct wsx_sio_socket wsx_sio_socket; /* one client in one namespace */

/* A binary value's bytes (an attachment). Borrowed: by the library for a call, by the
 * application for a callback. */
typedef struct wsx_sio_bin {
    const uint8_t *data;
    size_t len;
} wsx_sio_bin;

/* An event as a handler sees it; every pointer is borrowed until the handler returns. */
typedef struct wsx_sio_event {
    const char *name; /* NUL-terminated; a number sent as the name is given in decimal */
    size_t name_len;
    json_t *args;            /* the arguments after the name: an array, possibly empty */
    const wsx_sio_bin *bins; /* attachments the placeholders in args stand for */
    size_t n_bins;
    bool has_ack;    /* the client waits for an acknowledgement: wsx_sio_ack(s, ack_id, ...) */
    uint64_t ack_id; /* when has_ack */
} wsx_sio_event;

/* An event handler (wsx_sio_on). */
typedef void (*wsx_sio_event_cb)(wsx_sio_socket *s, const wsx_sio_event *ev, void *user);

/*
 * The socket left its namespace. reason is one of the reference server's:
 * "client namespace disconnect" (the client sent DISCONNECT), "server namespace disconnect"
 * (wsx_sio_disconnect), "transport close", "transport error", "ping timeout", "parse error"
 * (the Engine.IO session ended that way), "forced close" (a Socket.IO protocol error of the
 * client, such as CONNECT twice, or the session was closed), "server shutting down"
 * (wsx_sio_free). The socket is freed when the callback returns.
 */
typedef void (*wsx_sio_disconnect_cb)(wsx_sio_socket *s, const char *reason, void *user);

/* A socket connected (its CONNECT was answered); set its handlers here. */
typedef void (*wsx_sio_connection_cb)(wsx_sio_socket *s, void *user);

/*
 * A middleware (wsx_sio_use): runs for every CONNECT to its namespace, before the socket
 * connects, with the CONNECT payload (auth: an object, or NULL when the client sent none).
 * Return 0 to let the socket in. Anything else refuses it: the client gets a connect_error
 * with *error (an object, reference stolen, with at least "message"; the reference writes
 * {"message":"...","data":...}), or {"message":"not authorized"} when *error is left NULL.
 * No disconnect callback follows a refusal. The socket exists during the call (its id,
 * wsx_sio_set_user, wsx_sio_on and wsx_sio_join work; emits do not).
 */
typedef int (*wsx_sio_middleware_cb)(wsx_sio_socket *s, json_t *auth, json_t **error, void *user);

/*
 * An unknown namespace was asked for (a CONNECT naming it): return it, made with wsx_sio_of()
 * and set up, to let the client in, or NULL to refuse with {"message":"Invalid namespace"}.
 * name is NUL-terminated (a name holding a NUL byte never gets here: it is refused).
 */
typedef wsx_sio_nsp *(*wsx_sio_namespace_cb)(wsx_sio *io, const char *name, void *user);

typedef struct wsx_sio_opts {
    /* The Engine.IO sessions (wsx/eio.h, same defaults, but path ["/socket.io/"]): path,
     * timings, maxPayload (it also bounds a binary packet's attachments), transports,
     * queue limits, CORS. Its callbacks and user pointer are the library's: leave them NULL. */
    wsx_eio_opts eio;

    /* Socket.IO (0 = the default in brackets): */
    uint32_t connect_timeout_ms; /* [45000] a session with no namespace connected is closed */
    size_t max_attachments;      /* [10] per binary packet; more closes the session */
    size_t max_pending_acks;     /* [256] per socket: emits awaiting the client's ack */
    size_t max_rooms;            /* [256] per socket, its own room included */
    size_t max_namespaces;       /* [1024] namespaces the server holds ("/" included) */
    /* [16384] bytes of a CONNECT packet (its auth payload is kept while the socket lives):
     * longer ones are refused with connect_error {"message":"CONNECT payload too large"} and
     * the session stays. The reference has no such bound (maxPayload only). */
    size_t max_auth_bytes;
    /* Connection state recovery (socket.io's connectionStateRecovery): 0 = off. Otherwise
     * the window (maxDisconnectionDuration) in which a client whose transport dropped gets
     * its socket back: same id, same rooms, and the packets it missed. With it on, every
     * event emitted without an ack and not volatile carries an offset as its last argument
     * (what the official client expects), CONNECT answers carry a "pid", and the middlewares
     * do not run for a recovered socket. Each namespace keeps its recent packets (bounded
     * below and by the window) and a record per recoverable socket (bounded below). */
    uint32_t recovery_ms;
    size_t recovery_max_packets;       /* [10000] packets kept per namespace */
    size_t recovery_max_bytes;         /* [8 MiB] bytes of them per namespace, and as much again
                                          for the records (their room names) */
    size_t recovery_max_sessions;      /* [10000] records of disconnected sockets per namespace */
    wsx_sio_namespace_cb on_namespace; /* NULL: unknown namespaces are refused */
    void *user;                        /* given to on_namespace */
} wsx_sio_opts;

/* Every field at its default (zero / NULL means the default in brackets). */
WSX_API wsx_sio_opts wsx_sio_defaults(void);

/*
 * Serves Socket.IO on srv at o->eio.path (NULL o: the defaults): an Engine.IO server
 * (wsx_eio_attach) whose sessions carry Socket.IO packets. The namespace "/" exists from
 * the start. Call after wsx_server_start(), on the loop thread. Returns 0, WSX_EINVAL,
 * WSX_ENOMEM, or wsx_eio_attach's errors; *out untouched on failure.
 */
WSX_API int wsx_sio_attach(wsx_server *srv, const wsx_sio_opts *o, wsx_sio **out);

/* Disconnects every socket ("server shutting down", each disconnect callback runs), closes
 * every session (wsx_eio_free) and frees io. Not from inside one of io's own callbacks (post
 * it, or call it from a signal or timer callback). NULL is a no-op. */
WSX_API void wsx_sio_free(wsx_sio *io);

/* The Engine.IO server underneath (for its counters, or wsx_eio_sessions). */
WSX_API wsx_eio *wsx_sio_engine(const wsx_sio *io);

/* Connected sockets, all namespaces together. */
WSX_API size_t wsx_sio_sockets(const wsx_sio *io);

/* ---- namespaces ---- */

/* The namespace called name ("/" or "/admin": starts with '/', no ',', 1..255 bytes), made
 * if it does not exist. Returns NULL for a bad name, over max_namespaces, or out of memory.
 * A namespace lives as long as io. */
WSX_API wsx_sio_nsp *wsx_sio_of(wsx_sio *io, const char *name);

/* The namespace's name (NUL-terminated) and server. */
WSX_API const char *wsx_sio_nsp_name(const wsx_sio_nsp *n);
WSX_API wsx_sio *wsx_sio_nsp_server(const wsx_sio_nsp *n);

/* Connected sockets of the namespace. */
WSX_API size_t wsx_sio_nsp_sockets(const wsx_sio_nsp *n);

/* Adds a middleware; they run in the order added, the first refusal ends the CONNECT.
 * Returns 0, WSX_EINVAL or WSX_ENOMEM. */
WSX_API int wsx_sio_use(wsx_sio_nsp *n, wsx_sio_middleware_cb mw, void *user);

/* Sets the namespace's connection callback (NULL: none). */
WSX_API void wsx_sio_on_connection(wsx_sio_nsp *n, wsx_sio_connection_cb cb, void *user);

/*
 * Handlers every socket of the namespace has: they cost no memory per socket. An event goes
 * to the first of: the socket's handler of its name (wsx_sio_on), the namespace's handler of
 * its name, the socket's catch-all (event NULL), the namespace's catch-all. Setting an event
 * again replaces its handler; cb NULL removes it. Returns 0, WSX_EINVAL or WSX_ENOMEM.
 */
WSX_API int wsx_sio_nsp_on(wsx_sio_nsp *n, const char *event, wsx_sio_event_cb cb, void *user);

/* The disconnect callback of every socket of the namespace, after the socket's own. */
WSX_API void wsx_sio_nsp_on_disconnect(wsx_sio_nsp *n, wsx_sio_disconnect_cb cb, void *user);

/* ---- sockets ---- */

/*
 * Sets the socket's handler of event (NUL-terminated; NULL: a catch-all, see wsx_sio_nsp_on
 * for the order). Setting an event again replaces its handler; cb NULL removes it; a handler
 * may change handlers, its own included. An event that finds no handler is dropped, and its
 * ack, if one was asked for, is never sent (as in the reference). An event whose name holds
 * a NUL byte reaches only catch-alls. Returns 0, WSX_EINVAL or WSX_ENOMEM.
 */
WSX_API int wsx_sio_on(wsx_sio_socket *s, const char *event, wsx_sio_event_cb cb, void *user);

/* Sets the socket's disconnect callback (runs before the namespace's; cb NULL removes it).
 * Returns 0, WSX_EINVAL or WSX_ENOMEM. */
WSX_API int wsx_sio_on_disconnect(wsx_sio_socket *s, wsx_sio_disconnect_cb cb, void *user);

/*
 * Emits event to the socket's client with args (an array, stolen; NULL: none) and the
 * buffers its placeholders stand for. Returns 0; WSX_EBACKPRESSURE (queued; the session
 * is above its high-water mark); WSX_ECLOSED (disconnected or disconnecting, nothing sent);
 * WSX_EINVAL (a reserved event name: "connect", "connect_error", "disconnect",
 * "disconnecting", "newListener", "removeListener"; args not an array; a placeholder
 * naming no buffer); WSX_ENOMEM.
 */
WSX_API int wsx_sio_emit(wsx_sio_socket *s, const char *event, json_t *args,
                         const wsx_sio_bin *bins, size_t n_bins);

/*
 * The client's answer to an emit with an ack: err 0 with its arguments (an array, borrowed,
 * binary values as placeholders for bins); WSX_ETIMEDOUT when timeout_ms passed first;
 * WSX_ECLOSED when the socket disconnected first (args NULL for both). Exactly once per
 * successful wsx_sio_emit_ack(); s is valid during the call.
 */
typedef void (*wsx_sio_ack_cb)(wsx_sio_socket *s, int err, json_t *args, const wsx_sio_bin *bins,
                               size_t n_bins, void *user);

/*
 * wsx_sio_emit asking the client to acknowledge: cb runs once with its answer, or with an
 * error after timeout_ms (0: no timeout; the answer or the disconnect ends the wait).
 * Returns like wsx_sio_emit, plus WSX_ELIMIT when the socket already has max_pending_acks
 * acks awaited (nothing sent). WSX_EBACKPRESSURE counts as success (cb will run). On any
 * other error cb is never called.
 */
WSX_API int wsx_sio_emit_ack(wsx_sio_socket *s, const char *event, json_t *args,
                             const wsx_sio_bin *bins, size_t n_bins, wsx_sio_ack_cb cb,
                             uint32_t timeout_ms, void *user);

/*
 * Answers an event that asked for an ack (ev->has_ack, ev->ack_id), now or later while the
 * socket is connected. The client takes the first answer to an id and ignores others.
 * Returns like wsx_sio_emit.
 */
WSX_API int wsx_sio_ack(wsx_sio_socket *s, uint64_t ack_id, json_t *args, const wsx_sio_bin *bins,
                        size_t n_bins);

/*
 * Disconnects the socket from its namespace: the client gets DISCONNECT, the disconnect
 * callbacks run with "server namespace disconnect" (from inside this call). With
 * close_session, every other socket of the client's session is disconnected the same way and
 * the Engine.IO session is closed. No-op on a socket already disconnecting.
 */
WSX_API void wsx_sio_disconnect(wsx_sio_socket *s, bool close_session);

/* The socket's id (20 characters, NUL-terminated; also the name of its own room). */
WSX_API const char *wsx_sio_id(const wsx_sio_socket *s);

/* Its namespace; the Engine.IO session carrying it. */
WSX_API wsx_sio_nsp *wsx_sio_socket_nsp(const wsx_sio_socket *s);
WSX_API wsx_eio_session *wsx_sio_socket_session(const wsx_sio_socket *s);

/* The CONNECT payload (an object, or NULL when the client sent none), borrowed: valid while
 * the socket is. A client reconnecting with recovery puts its "pid" and "offset" in it too,
 * as socket.io's handshake.auth shows them. */
WSX_API json_t *wsx_sio_handshake_auth(const wsx_sio_socket *s);

/* True when the socket was restored by connection state recovery (its id and rooms are the
 * ones it had; the packets it missed were sent before its CONNECT answer). */
WSX_API bool wsx_sio_recovered(const wsx_sio_socket *s);

/* The application's pointer (NULL at first). */
WSX_API void *wsx_sio_user(const wsx_sio_socket *s);
WSX_API void wsx_sio_set_user(wsx_sio_socket *s, void *user);

/* A placeholder for the i-th buffer: {"_placeholder":true,"num":i} (new reference; NULL when
 * out of memory). */
WSX_API json_t *wsx_sio_placeholder(size_t i);

/* The bytes a value of a received event (or ack) stands for: when v is a placeholder of
 * bins[0..n), sets *out and returns 0; else WSX_EINVAL. */
WSX_API int wsx_sio_bin_of(const json_t *v, const wsx_sio_bin *bins, size_t n, wsx_sio_bin *out);

/* ---- rooms ---- */

/*
 * Puts the socket in room (NUL-terminated, 1..900 bytes with the namespace's name). Joining
 * a room it is in is a no-op. Every socket is in the room named by its id from its CONNECT
 * on. Rooms are topics of the loop's hub (see wsx.h, "Topic registry"). Returns 0;
 * WSX_EINVAL (bad name); WSX_ELIMIT (max_rooms); WSX_ECLOSED (disconnecting); WSX_ENOMEM.
 */
WSX_API int wsx_sio_join(wsx_sio_socket *s, const char *room);

/* Takes the socket out of room. Returns 0 or WSX_ENOTFOUND. */
WSX_API int wsx_sio_leave(wsx_sio_socket *s, const char *room);

/* True when the socket is in room. */
WSX_API bool wsx_sio_in(const wsx_sio_socket *s, const char *room);

/*
 * Where a broadcast goes: a value built on the stack, as the reference's operators chain
 * (io.to("a").to("b").except("c").volatile.emit). nsp is required; no rooms means every
 * socket of the namespace; except_rooms are left out; except_socket (the sender, typically)
 * too; volatile_ drops the packet for a socket whose session cannot take it at once (see
 * wsx_eio_writable).
 */
typedef struct wsx_sio_to {
    wsx_sio_nsp *nsp;
    const char *const *rooms;
    size_t n_rooms;
    const char *const *except_rooms;
    size_t n_except;
    const wsx_sio_socket *except_socket;
    bool volatile_;
} wsx_sio_to;

/*
 * Emits event with args (stolen) and buffers to every socket `to` selects, each socket
 * once however many of the rooms it is in. The packet is encoded once; sockets on WebSocket
 * share one frame built once (the hub's prepared message), polling sessions share the bytes.
 * Attachments (buffers) go the same way: each framed once, its bytes shared.
 * Returns the number of sockets it was queued to (a slow socket past its hard limit is
 * closed and not counted), WSX_EINVAL (as wsx_sio_emit, or no nsp) or WSX_ENOMEM.
 */
WSX_API ptrdiff_t wsx_sio_broadcast(const wsx_sio_to *to, const char *event, json_t *args,
                                    const wsx_sio_bin *bins, size_t n_bins);

/*
 * Broadcasts across nodes (docs/cluster.md, "Socket.IO"): every wsx_sio_broadcast of io (to
 * all, to rooms, except rooms; the sender's exclusion as its own room) is also PUBLISHed once
 * to Redis through cl (include <wsx/cluster.h>), in the wire format of
 * @socket.io/redis-adapter 8.x, and the broadcasts of the other nodes (wsx, or Node.js
 * socket.io with that adapter, or @socket.io/redis-emitter) are delivered to io's sockets
 * like local ones (frame-once, each socket once). key is the adapter's `key` option (NULL:
 * "socket.io"; no '#' or glob character). Only broadcasts cross: not emits to one socket,
 * acks, fetchSockets, serverSideEmit or the other requests of the adapter.
 * cl NULL detaches. cl must outlive io's attachment: call this with NULL (or wsx_sio_free)
 * before wsx_cluster_stop(cl).
 * Returns 0, WSX_EINVAL (io NULL, a bad key), WSX_ELIMIT (the cluster's patterns),
 * WSX_ENOMEM.
 */
typedef struct wsx_cluster wsx_cluster;
WSX_API int wsx_sio_set_cluster(wsx_sio *io, wsx_cluster *cl, const char *key);

typedef struct wsx_sio_cluster_stats {
    uint64_t relayed;     /* broadcasts published to Redis */
    uint64_t not_relayed; /* broadcasts not published (Redis down, the cluster's bound) */
    uint64_t received;    /* broadcasts from other nodes delivered here */
    uint64_t own;         /* this server's own broadcasts seen back, skipped */
    uint64_t bad;         /* messages dropped: not the adapter's format, hostile, too big */
} wsx_sio_cluster_stats;
/* Fills *out (zeros without a cluster). */
WSX_API void wsx_sio_get_cluster_stats(const wsx_sio *io, wsx_sio_cluster_stats *out);

#ifdef __cplusplus
}
#endif

#endif
