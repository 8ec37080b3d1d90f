/*
 * src/http/server.h — an HTTP/1.1 connection on the server side: requests parsed one at a
 * time from what the stream delivers, routed (exact path, then the longest prefix, then the
 * default route), answered now or later (held requests), pipelined with a budget, responses
 * complete, from a file or streamed, all within the connection's send limits.
 *
 * The layer owns no socket and no listener: its owner (src/ws's server) accepts the stream,
 * drives the entry points below from the stream's callbacks while the connection speaks
 * HTTP, and gets the stream back through owner->upgrade when a WebSocket route receives an
 * Upgrade request. This layer never includes or calls src/ws.
 */
#ifndef WSX_HTTP_SERVER_H
#define WSX_HTTP_SERVER_H

#include <stdarg.h>

#include "http/http.h"
#include "wsx.h"

typedef struct wsx__http_srv wsx__http_srv;
typedef struct wsx__http_conn wsx__http_conn;

/* One route. path is the registered path without its trailing '*' (prefix routes). */
typedef struct wsx__http_route {
    char *path;
    size_t path_len;
    bool prefix;
    bool any_method; /* methods NULL */
    char *methods;   /* the Allow list as given ("GET, POST"); NULL: any method */
    size_t max_body;
    wsx_http_cb on_request; /* of a WebSocket route: for requests without Upgrade (NULL: 426) */
    void *user;
    unsigned ws;   /* 0: an HTTP route; else the owner's number of a WebSocket route */
    bool oversize; /* a body above max_body goes to on_request without it (not 413) */
} wsx__http_route;

/* What the owner does for the layer. Every call gets the connection concerned. */
typedef struct wsx__http_owner {
    /* Sets the connection's deadline ms from now (UINT32_MAX: none); at it the owner calls
     * wsx__http_conn_timeout(). */
    void (*deadline)(wsx__http_conn *hc, uint32_t ms);
    /* A log line about hc; fmt is a string literal (rate limits are per call site). */
    void (*vlog)(wsx__http_conn *hc, int level, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
    /* The exchange will not continue: the answer is flushed, then FIN (already asked for).
     * The owner stops feeding the layer bytes and closes after its close timeout. */
    void (*ended)(wsx__http_conn *hc);
    /* A whole request arrived on hc (for admission: no longer a handshake in progress). */
    void (*request_seen)(wsx__http_conn *hc);
    /*
     * An "Upgrade: websocket" request for WebSocket route number `ws` (0: the default route,
     * which is the server's own path). The owner checks and answers it: the 101 and the
     * hand-off (wsx__http_conn_handed_over), or a refusal (wsx__http_refuse). r is the
     * request, valid for the call only (it cannot be answered with wsx_http_respond). rest
     * holds the bytes after the head (len of them, WebSocket frames already), scratch for
     * the owner until it returns.
     */
    void (*upgrade)(wsx__http_conn *hc, wsx_http_req *r, unsigned ws, uint8_t *rest, size_t len);
} wsx__http_owner;

/* The server side shared by a server's HTTP connections; embedded in the owner's server. */
struct wsx__http_srv {
    const wsx__http_owner *owner;
    wsx_loop *loop;
    wsx_server *server;      /* what wsx_http_req_server() returns; opaque here */
    wsx_server_stats *stats; /* refusals are counted here */
    size_t max_head, max_body;
    size_t max_body_all; /* the largest body any route accepts: bytes read ahead at most */
    size_t high_water, low_water, hard_limit;
    uint32_t http_ms, handshake_ms;
    bool shutting_down;
    /* The default route: the application's on_http (any path), the WebSocket at ws_path
     * (NULL: any path). */
    wsx_http_cb on_http;
    void *user;
    const char *ws_path;
    wsx__http_route *routes;
    size_t n_routes;
    /* Connections whose work continues in the deferred phase (more pipelined requests, the
     * rest of a file): a list here, so a connection pays no deferred node. */
    struct wsx__http_next *next;
    size_t n_next, cap_next;
    wsx__deferred defer;
    uint8_t *file_buf; /* WSX__HTTP_FILE_CHUNK bytes for reading files, made on first use */
};

/* A connection while it speaks HTTP: made at accept, freed at the hand-off or close. */
struct wsx__http_conn {
    wsx__http_srv *hs;
    wsx__stream *s;    /* the owner's stream */
    wsx__http_in in;   /* bytes not yet consumed; answered requests precede a held one */
    wsx_http_req *req; /* the request being answered (WSX__H_BUSY) */
    uint16_t flags;
};

enum wsx__http_conn_flags {
    WSX__H_BUSY = 1u << 0,      /* a request is being answered */
    WSX__H_SERVING = 1u << 1,   /* inside the request loop (no recursion) */
    WSX__H_STREAMING = 1u << 2, /* a response body is being streamed */
    WSX__H_SERVED = 1u << 3,    /* a request was answered on this connection */
    WSX__H_OUTWAIT = 1u << 4,   /* no request is parsed until the output drains to low water */
    WSX__H_NEXT = 1u << 5,      /* on the server's next list */
    WSX__H_ENDED = 1u << 6,     /* ended (owner->ended) or handed over: no more HTTP */
    WSX__H_HANDED = 1u << 7,    /* handed over to the owner's protocol */
    WSX__H_DRAINWAIT = 1u << 8, /* a streamed response waits for the low-water mark */
};

/* A request. The parts a handler reads borrow from the connection's input. */
struct wsx_http_req {
    wsx__http_conn *hc; /* NULL once the connection went away */
    wsx__http_srv *hs;
    wsx_http_gone_cb gone;
    void *gone_arg;
    wsx_http_drain_cb drain;
    void *drain_arg;
    wsx__http_msg m;
    size_t in_off;       /* where the request starts in hc->in: answered requests precede it */
    wsx__http_file file; /* a file response still being queued when file.fd >= 0 */
    bool head_only;
    bool keep;     /* a file response: keep the connection once the file is queued */
    bool oversize; /* its body was above the route's max_body: not read, no keep-alive */
    char peer[64]; /* "1.2.3.4:5555" */
};

/* Sets up hs (routes none, limits from the owner afterwards). */
void wsx__http_srv_init(wsx__http_srv *hs, wsx_loop *loop, const wsx__http_owner *owner);
/* Frees what hs holds (routes, lists, buffers); its connections are gone already. */
void wsx__http_srv_free(wsx__http_srv *hs);

/* Adds a route: path exact, or a prefix when it ends in '*'; methods the Allow list (NULL:
 * any); max_body 0 for the server's; cb the handler (HTTP routes), ws the owner's number of
 * a WebSocket route (> 0) or 0. Returns 0, WSX_EINVAL (a bad or repeated path), WSX_ENOMEM. */
int wsx__http_route_add(wsx__http_srv *hs, const char *path, const char *methods, size_t max_body,
                        wsx_http_cb cb, void *user, unsigned ws);

/* A new connection on stream s. Returns 0 or WSX_ENOMEM. */
int wsx__http_conn_new(wsx__http_srv *hs, wsx__stream *s, wsx__http_conn **out);
/* Bytes read on the connection. Returns how many belong to HTTP: fewer than len only when
 * the connection was handed over, and then the rest are the new protocol's. */
size_t wsx__http_conn_read(wsx__http_conn *hc, const uint8_t *data, size_t len);
void wsx__http_conn_eof(wsx__http_conn *hc);
void wsx__http_conn_drain(wsx__http_conn *hc);
/* The owner's deadline for hc passed: logs why when worth it and closes the stream. */
void wsx__http_conn_timeout(wsx__http_conn *hc);
/* The server shuts down: closes hc unless a request is being answered (a streamed response
 * is closed too). */
void wsx__http_conn_shutdown(wsx__http_conn *hc);
/* The stream closed: a held request learns it (wsx_http_on_gone) and hc is freed. */
void wsx__http_conn_closed(wsx__http_conn *hc);
/* From owner->upgrade: the stream is the owner's now; hc is freed when that returns. */
void wsx__http_conn_handed_over(wsx__http_conn *hc);

/* Answers with an error ("<status> <text>\n<why>\n", Connection: close), counts it as a
 * refusal, logs it and ends the exchange. */
void wsx__http_refuse(wsx__http_conn *hc, int status, const char *why);
/* A 503 for a server that is full or going away, with Retry-After: 5. */
void wsx__http_refuse_busy(wsx__http_conn *hc, const char *why);

#endif
