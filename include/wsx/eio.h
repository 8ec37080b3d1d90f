/*
 * wsx/eio.h — Engine.IO v4 sessions on a wsx server (docs/socketio.md).
 *
 * An Engine.IO server answers one path (default "/engine.io/"; Socket.IO uses "/socket.io/")
 * of an existing wsx_server, over HTTP long-polling (GET and POST on the path) and WebSocket
 * (an Upgrade on the path), and moves a session from polling to WebSocket when the client
 * upgrades. A session is a reliable, ordered channel of messages (text or binary) between the
 * client and the application, whatever its transport: the layer sends the pings, checks the
 * pongs, batches polling answers, holds one GET per session and bounds every queue.
 *
 * This header is the interface between src/eio and src/sio (and wsx sio's raw /engine.io/
 * echo); docs/socketio.md lists where the behaviour differs from the reference server. Same
 * threading and lifetime rules as wsx.h: everything on the server's loop thread.
 */
#ifndef WSX_EIO_H
#define WSX_EIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../wsx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsx_eio wsx_eio;
typedef struct wsx_eio_session wsx_eio_session;

/* Transports (wsx_eio_opts.transports). */
#define WSX_EIO_POLLING   1u
#define WSX_EIO_WEBSOCKET 2u

/*
 * Asked for every handshake (a request without sid) once the query is valid: return 0 to
 * open a session, 1..255 to open it with that mark (wsx_eio_session_mark: what the
 * application learnt from the handshake request, such as a token in its query, which later
 * requests of the session need not carry), or an HTTP status >= 400 to refuse it (403: the
 * reference's {"code":4,"message":"Forbidden"}). req is borrowed for the call.
 */
typedef int (*wsx_eio_allow_cb)(wsx_eio *e, const wsx_http_req *req, void *user);
/* A session opened (its open packet is queued). The session is valid until on_close returns. */
typedef void (*wsx_eio_open_cb)(wsx_eio_session *s, void *user);
/* A message packet arrived: data[0..len) borrowed for the call; text is UTF-8. */
typedef void (*wsx_eio_message_cb)(wsx_eio_session *s, const uint8_t *data, size_t len, bool binary,
                                   void *user);
/* The session ended. reason is one of the reference's: "transport close", "transport error",
 * "ping timeout", "parse error", "forced close", "server shutting down". Exactly once per
 * on_open; the session pointer is invalid after it returns. A session ends at once (sends
 * return WSX_ECLOSED, its sid is unknown to new requests) but on_close runs from the loop
 * afterwards, never inside the API call or callback that ended it; wsx_eio_free() is the
 * exception: it runs them before it returns. */
typedef void (*wsx_eio_close_cb)(wsx_eio_session *s, const char *reason, void *user);
/* The session's queue fell back under the low-water mark after WSX_EBACKPRESSURE. */
typedef void (*wsx_eio_drain_cb)(wsx_eio_session *s, void *user);

typedef struct wsx_eio_opts {
    const char *path;            /* ["/engine.io/"] prefix; copied */
    uint32_t ping_interval_ms;   /* [25000] */
    uint32_t ping_timeout_ms;    /* [20000] */
    uint32_t upgrade_timeout_ms; /* [10000] */
    size_t max_payload;          /* [1000000] POST body (413 above), WebSocket message (1009) */
    unsigned transports;         /* [WSX_EIO_POLLING | WSX_EIO_WEBSOCKET] */
    size_t max_sessions;         /* [10000] handshakes above -> 503 */
    /* [256] sessions of one client address (an IPv4 address, the /64 of an IPv6 one);
     * handshakes above -> 503. A polling session holds no connection, so the server's
     * per-address connection limits do not bound sessions. */
    size_t max_sessions_per_ip;
    /* The outgoing queue of a session on polling (and during an upgrade), in bytes: sends
     * return WSX_EBACKPRESSURE above high water, on_drain follows once a GET took the queue
     * (below low water); a send that passes the hard limit closes the session ("transport
     * error"). On WebSocket the connection's own send limits (the server's) apply. */
    size_t send_high_water; /* [1 MiB] */
    size_t send_low_water;  /* [256 KiB] */
    size_t send_hard_limit; /* [16 MiB] */
    /* [256 MiB] the queues of all the engine's sessions together: a send that would pass it
     * first ends the session with the largest queue ("transport error"), and so on, the
     * sender's own included. */
    size_t max_queued_bytes;
    /* CORS for polling: allowed origins (NULL/0: no CORS headers, as the reference without
     * its cors option; "*" allows any origin, echoed back), credentials. Copied. */
    const char *const *cors_origins;
    size_t n_cors_origins;
    bool cors_credentials;

    wsx_eio_allow_cb allow_request; /* NULL: every valid handshake */
    wsx_eio_open_cb on_open;
    wsx_eio_message_cb on_message;
    wsx_eio_close_cb on_close;
    wsx_eio_drain_cb on_drain;
    void *user;
} wsx_eio_opts;

/* Every field at its default (zero / NULL means the default in brackets). */
WSX_API wsx_eio_opts wsx_eio_defaults(void);

/*
 * Serves Engine.IO on srv at o->path (a WebSocket route with its own HTTP handler, see
 * wsx_server_ws_route). Call after wsx_server_start(), on the loop thread. Returns 0;
 * WSX_EINVAL; WSX_ENOMEM; the route's errors.
 */
WSX_API int wsx_eio_attach(wsx_server *srv, const wsx_eio_opts *o, wsx_eio **out);

/* Closes every session (reason "server shutting down", on_close runs for each) and frees e.
 * The route stays registered and answers 503 afterwards. NULL is a no-op. */
WSX_API void wsx_eio_free(wsx_eio *e);

/*
 * Queues one message packet (text: UTF-8, without the "4" type digit; binary: raw bytes).
 * Returns 0; WSX_EBACKPRESSURE (queued, above the high-water mark: wait for on_drain);
 * WSX_ECLOSED (closing, nothing queued; also when this send passed the hard limit and the
 * session was closed with "transport error"); WSX_EINVAL; WSX_ENOMEM.
 */
WSX_API int wsx_eio_send(wsx_eio_session *s, const void *data, size_t len, bool binary);

/*
 * Queues a published message (a hub delivery) on the session: m->data must
 * be the whole Engine.IO packet as a WebSocket text frame carries it ("4" + the text) for
 * m->type WSX_TEXT, or the raw bytes for WSX_BINARY. On the WebSocket transport the hub's
 * frame (m->prepared, framed once per publish) is queued by reference; on polling (and during
 * an upgrade) one copy of the bytes, made by the first such session of the publish (a hub
 * form, wsx_hub_msg_form), is queued by reference by all of them. m must be the message a
 * hub delivery callback got. Returns like wsx_eio_send;
 * WSX_EINVAL for text that does not start with a packet type digit.
 */
WSX_API int wsx_eio_send_msg(wsx_eio_session *s, wsx_hub_msg *m);

/* Bytes queued on the session and not yet taken by the client (either transport). */
WSX_API size_t wsx_eio_buffered_amount(const wsx_eio_session *s);

/* True when a message queued now would go out without waiting (WebSocket with a queue under
 * the high-water mark, or polling with a GET held): what volatile emits check. */
WSX_API bool wsx_eio_writable(const wsx_eio_session *s);

/* Closes the session: queued packets are flushed first (polling: the held GET, or the next
 * one, gets the queue and the close packet "1"; WebSocket: the queue, then a close frame
 * without status); on_close runs with "forced close" later, never from inside this call. */
WSX_API void wsx_eio_close(wsx_eio_session *s);

/* The session id (20 characters, NUL-terminated), the transport name ("polling" or
 * "websocket"), the client's address, the server, the engine. */
WSX_API const char *wsx_eio_session_id(const wsx_eio_session *s);
WSX_API const char *wsx_eio_session_transport(const wsx_eio_session *s);
WSX_API const char *wsx_eio_session_peer(const wsx_eio_session *s);
WSX_API wsx_eio *wsx_eio_session_engine(const wsx_eio_session *s);
WSX_API wsx_server *wsx_eio_server(const wsx_eio *e);

/* The application's pointer (NULL at on_open). */
WSX_API void *wsx_eio_session_user(const wsx_eio_session *s);
WSX_API void wsx_eio_session_set_user(wsx_eio_session *s, void *user);

/* The mark allow_request gave the session's handshake (0: none). */
WSX_API unsigned wsx_eio_session_mark(const wsx_eio_session *s);

/* Open sessions. */
WSX_API size_t wsx_eio_sessions(const wsx_eio *e);

#ifdef __cplusplus
}
#endif

#endif
