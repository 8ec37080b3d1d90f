/*
 * wsx.h — WebSocket server and client on wsx's event loop.
 *
 * Threads. This is the whole contract; the headers repeat it only where a call is an exception.
 *  - A loop and everything made on it (servers, clients, connections, HTTP requests, timers,
 *    watchers, prepared messages, shared bytes) belong to the thread that runs the loop. Call
 *    every function that takes one of them on that thread only, callbacks included.
 *  - Safe from any thread, at any time the objects they name exist:
 *      wsx_loop_post(), wsx_loop_post_owned()          (wsx/loop.h; the loop not being freed)
 *      wsx_publish_threadsafe(), wsx_deliver_local_threadsafe()   (they copy and post)
 *      wsx_server_reload_tls()                          (not concurrently with wsx_server_free)
 *      wsx_set_max_queued_bytes(), wsx_max_queued_bytes(), wsx_queued_bytes()  (atomics)
 *  - Safe from any thread because they touch no shared state: wsx_loop_new(), the options
 *    defaults (wsx_server_defaults, wsx_client_defaults, wsx_pmd_defaults), wsx_url_parse(),
 *    wsx_strerror(), wsx_err_name(), wsx_err_close_code(), and the sans-IO layer (wsx/proto.h,
 *    wsx/deflate.h) on objects the caller uses from one thread at a time.
 *  - Nothing else is. wsx_loop_free() runs on one thread once the loop's runner has returned
 *    (wsx/loop.h). To act on a connection from another thread, post to its loop.
 *
 * Lifetimes:
 *  - Every on_open is matched by exactly one on_close, shutdown included. A wsx_conn pointer
 *    is valid from on_open until on_close returns; it is freed after that loop iteration, so
 *    calling wsx_close() or wsx_send() on it inside any callback is always safe.
 *  - Data passed to wsx functions is borrowed for the call: the library copies what it keeps.
 *  - Data passed to callbacks (messages, reasons, requests) is borrowed until the callback
 *    returns: copy what you keep.
 *  - If a call that takes a callback fails, that callback is never called.
 *
 * Errors: functions return 0 (or a count) on success and a negative WSX_E* code on failure;
 * wsx_strerror() describes a code. Where the code alone does not say what went wrong, the
 * detail travels with it: calls that can fail for such reasons (wsx_server_start,
 * wsx_server_reload_tls, wsx_client_connect) fill an optional caller-owned wsx_error; a
 * connection's end is on_close(code, reason), whose reason for 1006 names the transport
 * failure ("connection reset by peer", a TLS alert, a failed write); a client's end is
 * on_end(err, why). A peer's misbehaviour is never an API error: it closes that connection
 * with the code RFC 6455 implies and reaches the application as on_close(code, reason).
 */
#ifndef WSX_H
#define WSX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsx/common.h"
#include "wsx/deflate.h"
#include "wsx/http.h"
#include "wsx/loop.h"
#include "wsx/proto.h"
#include "wsx/watch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsx_server wsx_server;
typedef struct wsx_client wsx_client;
typedef struct wsx_conn wsx_conn;
typedef struct wsx_http_req wsx_http_req;

/* Message types for wsx_send(). */
#define WSX_TEXT   WSX_OP_TEXT
#define WSX_BINARY WSX_OP_BINARY

/* A received message, reassembled from its fragments. data is borrowed until the callback
 * returns. A text message has been validated as UTF-8. */
typedef struct wsx_msg {
    const uint8_t *data;
    size_t len;
    int type; /* WSX_TEXT or WSX_BINARY */
} wsx_msg;

/* Log levels for on_log. */
enum wsx_log_level { WSX_LOG_ERROR = 0, WSX_LOG_WARN = 1, WSX_LOG_INFO = 2, WSX_LOG_DEBUG = 3 };

/* A certificate chain and its private key (PEM files) for a TLS server. */
typedef struct wsx_tls_cert {
    const char *cert_file;
    const char *key_file;
} wsx_tls_cert;

/* ---- callbacks (every one gets the `user` pointer of its server or client options) ---- */

/* The connection is open: messages may be sent. */
typedef void (*wsx_open_cb)(wsx_conn *c, void *user);
/* A whole message arrived. */
typedef void (*wsx_message_cb)(wsx_conn *c, const wsx_msg *m, void *user);
/*
 * The connection is closed (exactly once per on_open). code is the close code of the close
 * frame that started the closing handshake — the peer's if it closed first, ours if we did
 * (wsx_close, a protocol error such as 1002/1007/1009, 1008 for a full send queue, 1001 on
 * shutdown); when both sides started closing at once (the close frames crossed, seen as an
 * answer to ours with a different code) it is the peer's code and reason —
 * WSX_CLOSE_NO_STATUS (1005) when the peer's close frame had no code, and
 * WSX_CLOSE_ABNORMAL (1006) when the connection ended without a close frame either way.
 * For 1006 no peer gave a reason, so reason is the library's account of what ended the
 * connection: "connection reset by peer", "broken pipe: the peer closed the connection"
 * (a failed write), "TLS read failed: <OpenSSL's reason>", "connection closed without a
 * close frame" (an orderly TCP close), "ping timeout". Otherwise it is the reason of the
 * close frame (the peer's, or ours). reason is borrowed, not NUL-terminated, possibly empty.
 */
typedef void (*wsx_close_cb)(wsx_conn *c, int code, const char *reason, size_t reason_len,
                             void *user);
/* The send queue fell to the low-water mark after a wsx_send() returned WSX_EBACKPRESSURE. */
typedef void (*wsx_drain_cb)(wsx_conn *c, void *user);
/* A pong arrived (optional; pongs to the library's own keepalive pings included). */
typedef void (*wsx_pong_cb)(wsx_conn *c, const uint8_t *data, size_t len, void *user);
/* A log line: one event, no trailing newline. */
typedef void (*wsx_log_cb)(int level, const char *msg, void *user);
/* A log line about one connection (a refusal, a timeout, a slow reader dropped), without the
 * peer address that on_log would get in front of msg: the application names the connection
 * its own way (its id, its peer kept from on_open). c is valid for the call only; it may be
 * in its HTTP phase (before on_open, wsx_conn_user then NULL or what on_upgrade set). */
typedef void (*wsx_conn_log_cb)(const wsx_conn *c, int level, const char *msg, void *user);

/*
 * The upgrade hook: called for a valid WebSocket handshake before it is accepted. req is
 * the request (see "HTTP requests" for its accessors), valid for the call only; it cannot
 * be answered with wsx_http_respond(). Return 0 to accept (optionally setting *conn_user,
 * the new connection's user pointer, see wsx_conn_user), or an HTTP status >= 400 to refuse
 * (401, 403, ...); the client then gets that status with a short plain-text body and no
 * WebSocket traffic happens.
 */
typedef int (*wsx_upgrade_cb)(wsx_server *s, const wsx_http_req *req, void **conn_user, void *user);

/*
 * The connection that on_upgrade accepted ended before on_open: the 101 response could not
 * be queued (the connection was already closing, say because on_upgrade itself called
 * wsx_server_shutdown()) or permessage-deflate could not be set up (no memory). conn_user
 * is what on_upgrade left in *conn_user (NULL if it set nothing). Neither on_open nor
 * on_close fires for that connection, so this is where the application releases conn_user.
 * Every accept of on_upgrade is followed by exactly one of on_open and on_upgrade_failed.
 * Called on the server's loop thread; the connection is not reachable from it.
 */
typedef void (*wsx_upgrade_failed_cb)(wsx_server *s, void *conn_user, void *user);

/*
 * An HTTP handler: called for a request that is not a WebSocket upgrade, with the request
 * r (its accessors are under "HTTP requests"). It must answer r, now or later (a held
 * request: from a timer, another connection's callback, a post), with wsx_http_respond(),
 * wsx_http_respond_file() or wsx_http_begin()/..._end(). The handler of the server's
 * default route is on_http; routes have their own (wsx_server_route). Default on_http
 * (NULL): 426 "Upgrade Required" on the WebSocket path, 404 otherwise.
 *
 * Keep-alive and pipelining: a connection's requests are handed over one at a time, the next
 * only once the previous one is answered. An answer never calls the handler for the next
 * request from inside itself: the next one follows when the handler returns, or from the
 * loop's deferred phase when the answer came later. To keep one client from holding the
 * loop or the server's memory, at most 16 requests of a connection are handled per loop
 * iteration, and no further request is read while the connection's queued output is above
 * send_high_water (reading resumes once it falls to send_low_water). A client that stops
 * reading is closed after http_timeout_ms without progress.
 */
typedef void (*wsx_http_cb)(wsx_http_req *r, void *user);

/*
 * One answered HTTP request, for an access log (wsx_server_opts.on_access). Every pointer is
 * borrowed for the call; method and path are not NUL-terminated (path as sent, without the
 * query) and are empty for a request refused before its head could be read (400, 431).
 */
typedef struct wsx_http_access {
    const char *peer; /* "1.2.3.4:5555", "[::1]:5555", or "-" */
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    int status;     /* 101 for an accepted WebSocket upgrade */
    uint64_t bytes; /* body bytes of the answer (0 for HEAD, 101, refusals' short texts);
                       a streamed answer: the bytes written until it ended */
    double ms;      /* from the complete request head to the answer queued (streams: ended) */
} wsx_http_access;

/*
 * Called once per answered request: a response (wsx_http_respond, _respond_file), the end of
 * a streamed one (wsx_http_end, or the client leaving), a refusal of the library (400, 404,
 * 405, 413, 426, 431, 503, ...) and an upgrade answered with 101 or refused. Not called for
 * a connection closed before it sent a request. On the server's loop thread.
 */
typedef void (*wsx_access_cb)(const wsx_http_access *a, void *user);

/* ======================================================================================
 * Server
 * ====================================================================================== */

typedef struct wsx_server_opts {
    const char *host; /* address to bind: NULL/"" = all (IPv6 and IPv4), a literal or a name */
    uint16_t port;    /* 0 = ephemeral (see wsx_server_port) */
    const char *path; /* the default route's WebSocket path (exact, query ignored); NULL:
                         any path no route takes (see "Routes") */
    bool reuseport;   /* SO_REUSEPORT, for one server per thread on one port */
    const char *const *subprotocols; /* supported, most preferred first */
    size_t n_subprotocols;

    /* TLS (wss:// and https://): certificates[0] is the default; with more than one, the
     * client's SNI name picks among them. TLS 1.2 and later, a modern cipher list, ALPN
     * http/1.1, no renegotiation. NULL/0: plain TCP. */
    const wsx_tls_cert *tls_certs;
    size_t n_tls_certs;
    uint32_t tls_handshake_timeout_ms; /* [10000] */

    /* permessage-deflate (RFC 7692), off by default as with most servers: set
     * deflate.enabled (start from wsx_pmd_defaults(); wsx/deflate.h documents every field).
     * With deflate.server_no_context_takeover the server keeps no compressor per connection:
     * one shared compressor serves them all, and a published message is compressed once for
     * every such subscriber. Subscribers whose server context is kept get published messages
     * uncompressed (per-message compression is optional, RFC 7692 6). */
    wsx_pmd_config deflate;
    /* Free idle connections' compression memory where the agreed parameters allow it
     * (checked when a keepalive ping is due). */
    bool deflate_idle_trim;

    /* Limits (0 = the default in brackets). */
    size_t max_connections; /* [10000] open WebSocket connections; an upgrade beyond -> 503 */
    size_t max_head;        /* [8192] bytes of HTTP head; larger -> 431 */
    size_t max_message;     /* [16 MiB] reassembled message; larger -> close 1009 */
    size_t max_frame;       /* [max_message] one frame's payload; larger -> close 1009 */
    size_t max_body;        /* [1 MiB] HTTP request body (routes may set their own); -> 413 */
    /* [16384] frames one message may have, its first frame included; the next one closes
     * the connection with 1009 ("message has too many fragments"). Empty continuation
     * frames count too. SIZE_MAX: no limit. */
    size_t max_fragments;

    /* Admission, checked when a TCP connection is accepted (0 = the default in brackets,
     * SIZE_MAX = no limit). A connection refused here gets "503 Service Unavailable" with
     * "Retry-After: 5" and is closed (a TLS server closes without a response: there is no
     * handshake to answer in yet); refusals are logged at most once a second per reason,
     * with a count. A handshake in progress is a connection whose first HTTP request is not
     * complete yet (its TLS handshake included); it stops counting as one when the request
     * is complete, upgrade or not. Overall, open connections of every kind are capped at
     * max_connections + max_handshakes. */
    size_t max_handshakes; /* [1024] handshakes in progress, all addresses together */
    size_t max_per_ip;     /* [256] connections of any kind from one address */
    /* [32] handshakes in progress from one address; one past it is on probation for 1 s
     * (served if its first request arrives by then, else 503; docs/limits.md) */
    size_t max_handshakes_per_ip;
    /* An address is an IPv4 address, or the /64 prefix of an IPv6 address (one host or home
     * network commonly holds a whole /64); IPv4-mapped IPv6 addresses count as IPv4. */

    /* Backpressure: wsx_send() queues and returns WSX_EBACKPRESSURE once the queue is above
     * send_high_water; on_drain fires when it falls to send_low_water; a connection whose
     * queue passes send_hard_limit is dropped with 1008 (one slow reader cannot exhaust
     * memory; the peer gets no close frame, as it is not reading). Every byte the
     * connection queues counts: messages, published messages (wsx_publish), pings, the
     * automatic pongs and close frames. The process as a whole has a bound too:
     * wsx_set_max_queued_bytes(). */
    size_t send_high_water; /* [1 MiB] */
    size_t send_low_water;  /* [256 KiB] */
    size_t send_hard_limit; /* [64 MiB] */
    /* Pings are answered with a pong carrying their data (RFC 6455 5.5.2). While the send
     * queue is blocked (the peer is not reading what was sent) and a pong is already in it,
     * later pings are answered by that pong alone (RFC 6455 5.5.3 lets an endpoint answer
     * only one of several pings whose pongs were not sent yet), so pings never make the
     * queue grow by more than one pong. After max_coalesced_pings such pings in a row the
     * connection is dropped with 1008 ("too many pings while a pong is queued"); the count
     * starts again whenever the queue drains. [64]; SIZE_MAX: never dropped. */
    size_t max_coalesced_pings;

    /* Deadlines in milliseconds (0 = the default in brackets; UINT32_MAX = never). */
    uint32_t handshake_timeout_ms; /* [10000] from accept to a complete request */
    uint32_t idle_timeout_ms;      /* [never] nothing received for this long -> close 1001 */
    uint32_t ping_interval_ms;     /* [30000] ping after this long without receiving */
    uint32_t pong_timeout_ms;      /* [10000] nothing received after a ping -> drop (1006) */
    uint32_t close_timeout_ms;     /* [5000] peer does not finish the close handshake -> drop */
    uint32_t http_timeout_ms;      /* [30000] an idle keep-alive HTTP connection is closed */

    wsx_open_cb on_open;
    wsx_message_cb on_message;
    wsx_close_cb on_close;
    wsx_drain_cb on_drain;
    wsx_pong_cb on_pong;
    wsx_upgrade_cb on_upgrade;
    wsx_upgrade_failed_cb on_upgrade_failed; /* NULL: conn_user is dropped as it is */
    wsx_http_cb on_http;
    wsx_log_cb on_log; /* NULL: no logging; may still be called from wsx_server_free() (a
                          last count of lines the rate limit suppressed) */
    int log_level;     /* lines above this level are not produced [WSX_LOG_INFO] */
    void *user;
    /* (Added after user, so that the fields above keep their offsets.) NULL: lines about a
     * connection go to on_log as "<peer> <msg>"; else here (the rate limits of on_log apply;
     * counts of suppressed lines still go to on_log). */
    wsx_conn_log_cb on_conn_log;
    wsx_access_cb on_access; /* NULL: no access log (and no clock read per request) */
} wsx_server_opts;

/* Options with every field at its default (zero, NULL). */
WSX_API wsx_server_opts wsx_server_defaults(void);

/* ======================================================================================
 * Routes
 *
 * A server answers every path through its default route: the callbacks of
 * wsx_server_opts (on_http for HTTP requests, on_upgrade/on_open/... for the WebSocket at
 * opts.path, any path when NULL). Routes registered on it take their paths first:
 *  - "/healthz" is an exact route: that path only (the query does not count);
 *  - a path ending in an asterisk is a prefix route: "/static/" and the asterisk takes
 *    every path that starts with "/static/"; "/" and the asterisk takes every path.
 * A request goes to the exact route of its path, else to the longest matching prefix
 * route, else to the default route. On an HTTP route, a method the route does not accept
 * gets 405 with "Allow: <methods>", a body above the route's max_body gets 413 (and the
 * connection is closed), an Upgrade request gets 404. On a WebSocket route, a request
 * without Upgrade gets 426. Routes are matched on the path as it was sent (no decoding).
 * Register routes after wsx_server_start(), on the server's loop thread or before its loop
 * runs; a route cannot be removed (it lives as long as the server).
 * ====================================================================================== */

typedef struct wsx_route_opts {
    /* The methods accepted, as the Allow header lists them ("GET, POST"); HEAD is accepted
     * wherever GET is (RFC 9110 9.3.2). NULL: any method. */
    const char *methods;
    size_t max_body;        /* [the server's max_body] request body bytes; larger -> 413 */
    wsx_http_cb on_request; /* required */
    void *user;             /* given to on_request */
} wsx_route_opts;

/*
 * Adds an HTTP route. path and opts are copied. Returns 0; WSX_EINVAL (NULL, a path not
 * starting with '/', no on_request, the path already routed); WSX_ENOMEM.
 */
WSX_API int wsx_server_route(wsx_server *s, const char *path, const wsx_route_opts *opts);

/* The callbacks of a WebSocket route, for its connections (each gets `user`). The
 * server's other WebSocket settings (subprotocols, deflate, limits, timeouts, on_pong,
 * on_log) apply to every route. */
typedef struct wsx_ws_route_opts {
    wsx_upgrade_cb on_upgrade; /* NULL: accept every valid handshake */
    wsx_upgrade_failed_cb on_upgrade_failed;
    wsx_open_cb on_open;
    wsx_message_cb on_message;
    wsx_close_cb on_close;
    wsx_drain_cb on_drain;
    wsx_http_cb on_request; /* a request without Upgrade on the path; NULL: 426 */
    size_t max_body;        /* [the server's max_body] body of those requests; larger -> 413 */
    /* A body above max_body is not answered 413 by the server but handed to on_request
     * without being read (wsx_http_req_body_too_big() is true; the connection closes after
     * the answer): for protocols whose 413 has side effects (Engine.IO closes the session). */
    bool oversize_to_handler;
    void *user;
} wsx_ws_route_opts;

/*
 * Adds a WebSocket route: an Upgrade request on path (exact, or a prefix as above) opens a
 * connection with these callbacks instead of the server's. opts is copied. At most 255
 * WebSocket routes per server. Returns 0; WSX_EINVAL (NULL, a path not starting with '/',
 * the path already routed); WSX_ELIMIT (too many WebSocket routes); WSX_ENOMEM.
 */
WSX_API int wsx_server_ws_route(wsx_server *s, const char *path, const wsx_ws_route_opts *opts);

/*
 * Starts listening on the loop. opts is copied; its strings (host, path, subprotocols) must
 * stay valid while the server exists. Returns 0, WSX_EINVAL, WSX_ERESOLVE, WSX_EADDRINUSE,
 * WSX_ENOMEM, WSX_ESYS, WSX_ETLS (a certificate or key cannot be loaded), WSX_ECRYPTO; *out
 * untouched on failure. err (may be NULL) gets the code and, for WSX_ETLS, which file and
 * why ("cannot load certificate chain from x.pem: No such file or directory").
 */
WSX_API int wsx_server_start(wsx_loop *loop, const wsx_server_opts *opts, wsx_server **out,
                             wsx_error *err);

/* The port the server listens on (useful after port 0). */
WSX_API uint16_t wsx_server_port(const wsx_server *s);

/* Open WebSocket connections. */
WSX_API size_t wsx_server_connections(const wsx_server *s);

/* Counters since the server started (messages and bytes are WebSocket payload; a published
 * message counts once per subscriber it was queued to). */
typedef struct wsx_server_stats {
    uint64_t accepted; /* TCP connections accepted */
    uint64_t upgrades; /* WebSocket handshakes completed */
    size_t open;       /* WebSocket connections open now */
    size_t http_open;  /* other connections open now (HTTP, SSE, handshakes) */
    uint64_t messages_in, messages_out;
    uint64_t bytes_in, bytes_out;
    /* Requests refused during the handshake or before (malformed HTTP), by status. */
    uint64_t refused_400, refused_401, refused_403, refused_404, refused_426, refused_431;
    uint64_t refused_503, refused_other;
    uint64_t handshake_timeouts; /* no complete request within handshake_timeout_ms */
    /* Connections turned away at accept (not counted in refused_503): */
    uint64_t refused_per_ip;     /* max_per_ip */
    uint64_t refused_handshakes; /* max_handshakes_per_ip or max_handshakes */
    uint64_t refused_full;       /* max_connections + max_handshakes open */
    uint64_t shed_nofile;        /* out of file descriptors (EMFILE/ENFILE): closed at once */
    /* WebSocket connections the library dropped on its own (on_close tells each one's code):
     * slow consumers, closed with 1008 when their send queue passed send_hard_limit
     * (hard_limit_closes) or when they were among the largest queues while the process was
     * over wsx_max_queued_bytes() (budget_closes); and peers that did not answer a keepalive
     * ping within pong_timeout_ms (ping_timeouts, 1006). */
    uint64_t hard_limit_closes;
    uint64_t budget_closes;
    uint64_t ping_timeouts;
    /* Topics are not counted here: they belong to the loop's hub, which every server of the
     * loop shares (see wsx_topic_count). */
} wsx_server_stats;

WSX_API void wsx_server_get_stats(const wsx_server *s, wsx_server_stats *out);

/*
 * Graceful shutdown: stops accepting, sends a close 1001 (going away) to every WebSocket
 * connection, closes idle HTTP connections, and drops whatever is still open after
 * timeout_ms (0 = 5000). Every open connection gets its on_close. When nothing is left the
 * server holds no loop resources, so wsx_loop_run() returns if nothing else is running.
 * Idempotent.
 */
WSX_API void wsx_server_shutdown(wsx_server *s, uint32_t timeout_ms);

/*
 * Reads the certificate and key files again (after they were renewed; SIGHUP, say): new
 * connections use the new ones, open connections are not disturbed. On failure the old ones
 * stay in use. Returns 0, WSX_EINVAL (not a TLS server) or WSX_ETLS; err (may be NULL) gets
 * the code and, for WSX_ETLS, which file and why.
 * Thread: safe from any thread while the server exists (the swap is locked; each loop's
 * connections keep the certificates they started with); everything else on s is loop-only.
 */
WSX_API int wsx_server_reload_tls(wsx_server *s, wsx_error *err);

/* Frees a server after its shutdown completed (wsx_loop_run returned). NULL is a no-op. */
WSX_API void wsx_server_free(wsx_server *s);

/* ======================================================================================
 * Connections (server and client side alike)
 * ====================================================================================== */

/*
 * Sends a whole message (type WSX_TEXT or WSX_BINARY) in one frame. The bytes are copied
 * (framed and queued); they go out at the end of the loop iteration, several sends in one
 * iteration sharing one system call. Text is not validated: send UTF-8.
 * Returns 0; WSX_EBACKPRESSURE (queued, but the queue is above the high-water mark: wait for
 * on_drain); WSX_ECLOSED (closing or closed, nothing queued; also when this send pushed the
 * queue past the hard limit and the connection was closed with 1008); WSX_EINVAL; WSX_ENOMEM.
 */
WSX_API int wsx_send(wsx_conn *c, const void *data, size_t len, int type);

/* Sends a ping with up to 125 bytes of payload. Returns like wsx_send (WSX_EINVAL if
 * len > 125). */
WSX_API int wsx_ping(wsx_conn *c, const void *data, size_t len);

/*
 * Starts the closing handshake with `code` (a valid close code, or 0 for none) and a
 * NUL-terminated reason (NULL for none; cut to 123 bytes). Later sends fail with
 * WSX_ECLOSED; on_close follows once the peer answers or close_timeout_ms passes.
 * Returns 0, WSX_EINVAL (code not allowed on the wire), WSX_ECLOSED (already closing).
 */
WSX_API int wsx_close(wsx_conn *c, int code, const char *reason);

/* Bytes queued for sending and not yet taken by the kernel. */
WSX_API size_t wsx_buffered_amount(const wsx_conn *c);

/* The connection's user pointer (set by the upgrade hook or wsx_conn_set_user). */
WSX_API void *wsx_conn_user(const wsx_conn *c);
WSX_API void wsx_conn_set_user(wsx_conn *c, void *user);

/* Writes the peer address ("127.0.0.1:5555", "[::1]:5555") into buf (64 bytes suffice).
 * Returns its length or a negative error. */
WSX_API int wsx_conn_peer(const wsx_conn *c, char *buf, size_t cap);

/* True when permessage-deflate was agreed on this connection. */
WSX_API bool wsx_conn_deflate(const wsx_conn *c);

/* The negotiated subprotocol (NUL-terminated, owned by the options), or NULL. */
WSX_API const char *wsx_conn_subprotocol(const wsx_conn *c);

/* The server a connection belongs to, or NULL for a client connection. */
WSX_API wsx_server *wsx_conn_server(const wsx_conn *c);

/* ======================================================================================
 * Pub/sub topics ("rooms"), server connections only
 *
 * Topics live in the loop's hub (see "Topic registry" below): every server on one loop
 * shares them, so a publish through any server of a loop reaches the subscribers of all of
 * them, and other kinds of subscribers (SSE streams, relays) too. These calls are the
 * WebSocket subscribers on top of the hub.
 *
 * A published message is framed once into one reference-counted buffer that every
 * subscriber's send queue shares (no copy per subscriber). A subscriber under backpressure
 * follows the same rules as wsx_send(): the message is queued, and a queue past the hard
 * limit closes that connection with 1008 without delaying the others. Subscriptions end
 * when the connection closes (after its on_close). A topic with no subscribers holds no
 * memory. Topic names are NUL-terminated strings of 1..1024 bytes.
 * ====================================================================================== */

/* Subscribes c to topic. Subscribing again is a no-op. Returns 0, WSX_EINVAL (a client
 * connection, a closed one, or a bad name), WSX_ENOMEM. */
WSX_API int wsx_subscribe(wsx_conn *c, const char *topic);

/* Ends c's subscription. Returns 0 or WSX_ENOTFOUND (it was not subscribed). */
WSX_API int wsx_unsubscribe(wsx_conn *c, const char *topic);

WSX_API bool wsx_is_subscribed(const wsx_conn *c, const char *topic);

/*
 * Sends a message (WSX_TEXT / WSX_BINARY) to every subscriber of topic on the server's loop
 * (wsx_hub_publish), and hands it to the loop's publish hook (see
 * wsx_server_set_publish_hook) for other processes. Callable from any callback or timer on
 * the server's loop thread. Returns the number of subscribers it was delivered to (queued,
 * for WebSocket ones; 0 when there are none), WSX_EINVAL or WSX_ENOMEM.
 */
WSX_API ptrdiff_t wsx_publish(wsx_server *s, const char *topic, const void *data, size_t len,
                              int type);

/* The same, skipping `except` (typically the sender; every subscription whose user pointer
 * is `except`, see wsx_hub_publish). */
WSX_API ptrdiff_t wsx_publish_except(wsx_server *s, const char *topic, const void *data, size_t len,
                                     int type, const wsx_conn *except);

/* Local delivery only: what a relay calls with a message that came from another process
 * (the publish hook is not called). Returns like wsx_publish. */
WSX_API ptrdiff_t wsx_deliver_local(wsx_server *s, const char *topic, const void *data, size_t len,
                                    int type);

/*
 * wsx_publish from any thread: copies topic and data and posts them to the server's loop
 * (wsx_loop_post_owned), where they are published to that loop's hub. The server must stay
 * alive until then, or its loop be freed without running again (the copy is then freed, not
 * published). Returns 0, WSX_EINVAL, WSX_ENOMEM.
 */
WSX_API int wsx_publish_threadsafe(wsx_server *s, const char *topic, const void *data, size_t len,
                                   int type);

/* wsx_deliver_local from any thread (copies and posts like wsx_publish_threadsafe): how
 * one loop's publish hook hands a message to the servers of the other loops (threads). */
WSX_API int wsx_deliver_local_threadsafe(wsx_server *s, const char *topic, const void *data,
                                         size_t len, int type);

/* Subscribers of topic in the hub of s's loop (of every kind: wsx_hub_subscribers). */
WSX_API size_t wsx_topic_subscribers(const wsx_server *s, const char *topic);

/* Topics with at least one subscriber in the hub of s's loop (wsx_hub_topics): the same for
 * every server of a loop. */
WSX_API size_t wsx_topic_count(const wsx_server *s);

/* Calls cb for each WebSocket subscriber of topic (of any server of s's loop), oldest
 * subscription first, until it returns non-zero; returns the number of calls. cb may
 * subscribe and unsubscribe any connection; one subscribed during the walk is not visited. */
typedef int (*wsx_topic_iter_cb)(wsx_conn *c, void *arg);
WSX_API size_t wsx_topic_foreach(wsx_server *s, const char *topic, wsx_topic_iter_cb cb, void *arg);

/* Called for every wsx_publish (not wsx_deliver_local), after local delivery: the seam for
 * relaying topics between processes (or loops). s is the server the publish went through;
 * topic is NUL-terminated; both are borrowed. The hook belongs to the hub of s's loop: one
 * per loop, set through any of its servers (setting it again replaces it; NULL removes it). */
typedef void (*wsx_publish_hook)(wsx_server *s, const char *topic, const uint8_t *data, size_t len,
                                 int type, void *arg);
WSX_API void wsx_server_set_publish_hook(wsx_server *s, wsx_publish_hook hook, void *arg);

/* ======================================================================================
 * Prepared messages: one message for many connections, framed once
 *
 * What wsx_publish does for a topic, for any set of connections chosen by the
 * application (a room's history sent to each member that joins, say): the message is
 * framed once into one reference-counted buffer, and each wsx_send_prepared() queues that
 * buffer by reference, without copying it. With permessage-deflate, connections that
 * agreed to server_no_context_takeover (they use the server's shared compressor) get a
 * compressed frame, compressed once per window size on the first such send and then
 * shared like the plain one; connections with a compressor of their own get the plain
 * frame (per-message compression is optional, RFC 7692 6).
 *
 * Thread: a prepared message belongs to the loop of the server it was prepared for; call
 * these functions only on that loop's thread (the reference counts are not atomic).
 * Lifetime: the creator holds the one handle and releases it with wsx_prepared_release()
 * when it will send no more; frames already queued keep their buffer alive until they are
 * written or their connection closes, so releasing right after the sends is fine.
 * ====================================================================================== */

typedef struct wsx_prepared wsx_prepared;

/*
 * Frames data[0..len) (type WSX_TEXT or WSX_BINARY) once, copying it. The result may be
 * sent to any server connection on s's loop (any server of that loop). Text is not
 * validated: pass UTF-8. Returns 0, WSX_EINVAL, WSX_ENOMEM; *out untouched on failure.
 */
WSX_API int wsx_prepare(wsx_server *s, const void *data, size_t len, int type, wsx_prepared **out);

/*
 * Queues p on c by reference. The queued bytes count against c's send limits exactly as
 * wsx_send()'s do, and the return values are the same: 0; WSX_EBACKPRESSURE (queued, but
 * the queue is above the high-water mark: wait for on_drain); WSX_ECLOSED (closing or
 * closed, nothing queued; also when this send pushed the queue past the hard limit and the
 * connection was closed with 1008); WSX_EINVAL (NULL, a client connection — its frames
 * must be masked —, or a connection on another loop); WSX_ENOMEM. p stays the caller's.
 */
WSX_API int wsx_send_prepared(wsx_conn *c, wsx_prepared *p);

/* The message's payload length (before framing). */
WSX_API size_t wsx_prepared_len(const wsx_prepared *p);

/* Drops the creator's handle: buffers not queued anywhere are freed now, the others when
 * the last connection has written them or closed. NULL is a no-op. */
WSX_API void wsx_prepared_release(wsx_prepared *p);

/* ======================================================================================
 * Topic registry (hub): topics with opaque subscribers
 *
 * Each loop has one hub, shared by every server on the loop. A subscriber is a delivery
 * callback and a user pointer; wsx_subscribe() makes WebSocket connections subscribers of
 * this kind, and SSE streams, relays or sessions of other protocols subscribe the same way.
 * A publish calls each subscriber of the topic, oldest subscription first, with the message
 * and its shared forms (the WebSocket frame, framed once on first use; forms of the caller's
 * own kind, see wsx_hub_msg_form), so each kind of subscriber formats a message once per
 * publish, not once per subscriber.
 *
 * Re-entrancy: delivery callbacks and hooks may subscribe, unsubscribe (any subscription,
 * their own included), publish (to any topic, nested) and close connections. A subscription
 * made while its topic is being published to does not receive that message; one ended then
 * receives nothing more, and its handle is invalid once wsx_hub_unsubscribe() returns.
 *
 * Thread: a hub and its subscriptions belong to the loop's thread (publish from other
 * threads with wsx_publish_threadsafe). Lifetime: the hub is made on first use and freed
 * by wsx_loop_free() with the subscriptions still in it (no hook runs then).
 * ====================================================================================== */

typedef struct wsx_hub wsx_hub;
typedef struct wsx_sub wsx_sub;

/* A message as a delivery callback sees it. Every pointer is borrowed for the callback. */
typedef struct wsx_hub_msg {
    const char *topic; /* NUL-terminated */
    const uint8_t *data;
    size_t len;
    int type;               /* WSX_TEXT or WSX_BINARY */
    void *ctx;              /* the publisher's (wsx_hub_publish); NULL from wsx_publish */
    wsx_prepared *prepared; /* the message as one WebSocket frame, built on first use: pass
                               it to wsx_send_prepared() on this loop's connections */
} wsx_hub_msg;

/*
 * Delivers m to one subscriber. Returns 1 when delivered (counted in what the publish
 * returns), 0 when skipped (the subscriber is closing, say), or a negative WSX_E* error,
 * which ends the publish (the remaining subscribers get nothing) and is what it returns.
 */
typedef int (*wsx_deliver_cb)(wsx_sub *sub, wsx_hub_msg *m, void *user);

/* The hub of loop, made on first use; NULL when out of memory. Loop thread only. */
WSX_API wsx_hub *wsx_hub_of(wsx_loop *loop);

/*
 * Subscribes (cb, user) to topic (1..1024 bytes, NUL-terminated) and writes the handle to
 * *out. The same pair may subscribe several times (each is its own subscription and gets
 * each message). When topic had no subscriber, the hub's on_first hook runs before this
 * returns. Returns 0, WSX_EINVAL (NULL h, cb or out, a bad name) or WSX_ENOMEM; *out
 * untouched on failure.
 */
WSX_API int wsx_hub_subscribe(wsx_hub *h, const char *topic, wsx_deliver_cb cb, void *user,
                              wsx_sub **out);

/* Ends a subscription (the handle is invalid after); when it was the topic's last, the hub's
 * on_last hook runs before this returns. NULL is a no-op. */
WSX_API void wsx_hub_unsubscribe(wsx_sub *sub);

/* The subscription's topic (NUL-terminated, valid while the subscription is) and user. */
WSX_API const char *wsx_sub_topic(const wsx_sub *sub);
WSX_API void *wsx_sub_user(const wsx_sub *sub);

/*
 * Delivers data[0..len) (type WSX_TEXT or WSX_BINARY) to every subscriber of topic whose
 * user pointer is not `except` (NULL: skip none), passing ctx along in the message. No
 * publish hook runs (see wsx_publish). Returns the number of deliveries (callbacks that
 * returned 1), a callback's error, or WSX_EINVAL.
 */
WSX_API ptrdiff_t wsx_hub_publish(wsx_hub *h, const char *topic, const void *data, size_t len,
                                  int type, const void *except, void *ctx);

/* Subscriptions to topic; topics with at least one subscription. */
WSX_API size_t wsx_hub_subscribers(const wsx_hub *h, const char *topic);
WSX_API size_t wsx_hub_topics(const wsx_hub *h);

/*
 * What the Redis relay needs: on_first runs when a topic gains its first subscription, on_last
 * when it loses its last one (topic borrowed for the call). They run inside the subscribe or
 * unsubscribe that caused them (a connection's close included) and may call the hub.
 * Setting them again replaces them; NULL functions are not called.
 */
typedef struct wsx_hub_hooks {
    void (*on_first)(wsx_hub *h, const char *topic, void *arg);
    void (*on_last)(wsx_hub *h, const char *topic, void *arg);
    void *arg;
} wsx_hub_hooks;
WSX_API void wsx_hub_set_hooks(wsx_hub *h, const wsx_hub_hooks *hooks);

/*
 * A form of a message made once per publish and shared by the subscribers of one kind (an
 * SSE event, a Socket.IO packet): make builds it from the message (NULL: out of memory),
 * release frees it when the publish ends. The kind is named by the address of its
 * wsx_hub_form, which must outlive the publish.
 */
typedef struct wsx_hub_form {
    void *(*make)(const wsx_hub_msg *m, void *arg);
    void (*release)(void *form, void *arg);
    void *arg;
} wsx_hub_form;

/* The form of m of this kind, made by the first subscriber that asks for it in this publish.
 * NULL when make fails, or when a publish asks for more than 4 kinds. m must be the message
 * given to a delivery callback. */
WSX_API void *wsx_hub_msg_form(wsx_hub_msg *m, const wsx_hub_form *kind);

/* HTTP requests and responses, shared bytes, static files, CORS: wsx/http.h (included above). */

/* ======================================================================================
 * Client
 * ====================================================================================== */

typedef struct wsx_client wsx_client;

/* Before each reconnect attempt: attempt counts from 1; delay_ms is the wait chosen;
 * last_err is why the previous connection ended or failed. */
typedef void (*wsx_reconnecting_cb)(wsx_client *cl, unsigned attempt, uint32_t delay_ms,
                                    int last_err, void *user);
/*
 * The client is finished: it was closed with wsx_client_close(), or its connection ended and
 * it does not reconnect (err 0: the end was reported by on_close, with its code and reason),
 * or it gave up (err < 0, why says what happened: "connection refused", "handshake failed:
 * server did not answer 101", "gave up after 3 attempts: connection lost: connection reset
 * by peer", ...). err and why are the pair a wsx_error holds (why is NULL when err is 0),
 * borrowed for the call. Fires exactly once; the client is freed when it returns.
 */
typedef void (*wsx_end_cb)(wsx_client *cl, int err, const char *why, void *user);

typedef struct wsx_client_opts {
    const char *url; /* ws:// or wss://host[:port]/path?query ; IPv6 literals in brackets */
    const char *origin;
    const char *const *subprotocols;
    size_t n_subprotocols;
    const wsx_http_header *headers; /* extra request headers; no CR/LF */
    size_t n_headers;

    /* wss://: the server's chain is verified against the system's trusted certificates (or
     * tls_cafile) and its name against the URL's host. tls_insecure skips both checks: the
     * connection is then encrypted but not authenticated. */
    const char *tls_cafile;
    bool tls_insecure;

    /* permessage-deflate: offered when deflate.enabled (see wsx/deflate.h). */
    wsx_pmd_config deflate;

    size_t max_message;                                      /* [16 MiB] */
    size_t max_frame;                                        /* [max_message] */
    size_t max_head;                                         /* [8192] response head */
    size_t send_high_water, send_low_water, send_hard_limit; /* as for the server */
    size_t max_fragments;                                    /* [16384] as for the server */
    size_t max_coalesced_pings;                              /* [64] as for the server */

    /* Deadlines in milliseconds (0 = the default in brackets; UINT32_MAX = never). The
     * server and the client resolve the options they share through one table, so a shared
     * option means the same on both. */
    uint32_t connect_timeout_ms;   /* [10000] resolve + TCP connect */
    uint32_t handshake_timeout_ms; /* [10000] */
    uint32_t ping_interval_ms;     /* [never] */
    uint32_t pong_timeout_ms;      /* [10000] */
    uint32_t close_timeout_ms;     /* [5000] */

    /* Reconnection with exponential backoff and full jitter: the n-th wait is uniform in
     * [0, min(max, min_delay * factor^(n-1))]. A connection that stayed open resets n. */
    bool reconnect;
    uint32_t reconnect_min_ms;       /* [500] */
    uint32_t reconnect_max_ms;       /* [30000] */
    double reconnect_factor;         /* [2.0] */
    unsigned reconnect_max_attempts; /* [0 = unlimited] consecutive failures before giving up */

    wsx_open_cb on_open;
    wsx_message_cb on_message;
    wsx_close_cb on_close;
    wsx_drain_cb on_drain;
    wsx_pong_cb on_pong;
    wsx_reconnecting_cb on_reconnecting;
    wsx_end_cb on_end;
    wsx_log_cb on_log;
    int log_level;
    void *user;
} wsx_client_opts;

WSX_API wsx_client_opts wsx_client_defaults(void);

/*
 * Starts connecting. opts is copied (strings included). Returns 0, WSX_EURL (malformed URL
 * or not ws:// or wss://), WSX_EINVAL, WSX_ETLS (the CA file cannot be loaded), WSX_ENOMEM,
 * WSX_ERESOLVE, WSX_ESYS; *out (may be NULL) untouched on failure. err (may be NULL) gets
 * the code and, for WSX_ETLS, which file and why. On success exactly one on_end will follow.
 */
WSX_API int wsx_client_connect(wsx_loop *loop, const wsx_client_opts *opts, wsx_client **out,
                               wsx_error *err);

/* The open connection, or NULL while connecting, reconnecting or closed. */
WSX_API wsx_conn *wsx_client_conn(const wsx_client *cl);

/* Closes the connection (if open) with code/reason and stops reconnecting; on_close (if a
 * connection was open) and then on_end(0) follow. */
WSX_API void wsx_client_close(wsx_client *cl, int code, const char *reason);

/* The client a connection belongs to, or NULL for a server connection. */
WSX_API wsx_client *wsx_conn_client(const wsx_conn *c);

/* Parses a ws:// or wss:// URL. host is written NUL-terminated without brackets; path
 * includes the query ("/" when empty). Returns 0 or WSX_EURL. */
typedef struct wsx_url {
    bool tls;
    char host[256];
    uint16_t port;
    char path[2048];
} wsx_url;
WSX_API int wsx_url_parse(const char *url, wsx_url *out);

#ifdef __cplusplus
}
#endif
#endif
