/*
 * src/ws — WebSocket connections on top of src/net streams: the server, the client and the
 * connection state machine they share. Private to the library.
 */
#ifndef WSX_WS_H
#define WSX_WS_H

#include <stdarg.h>

#include "http/server.h"
#include "net/net.h"
#include "wsx.h"

/* The callbacks of a WebSocket connection: its server's or client's, or its route's. */
typedef struct wsx__ws_cbs {
    wsx_open_cb on_open;
    wsx_message_cb on_message;
    wsx_close_cb on_close;
    wsx_drain_cb on_drain;
    void *user;
} wsx__ws_cbs;

/* What every connection of one server or client shares, so a connection stores one pointer. */
typedef struct wsx__cfg {
    wsx__ws_cbs cb; /* of the default route */
    wsx_pong_cb on_pong;
    wsx_log_cb on_log;
    wsx_conn_log_cb on_conn_log; /* servers only; NULL: on_log with the peer in front */
    int log_level;
    void *user;
    const char *const *subprotocols; /* the list subprotocol indexes refer to */
    size_t max_message, max_frame, max_head;
    size_t high_water, low_water, hard_limit;
    uint32_t max_fragments;                                              /* 0: no limit */
    uint32_t max_coalesced_pings;                                        /* 0: never close */
    uint32_t handshake_ms, idle_ms, ping_ms, pong_ms, close_ms, http_ms; /* WSX__NEVER: never */
    int role;                /* WSX_ROLE_SERVER / WSX_ROLE_CLIENT */
    wsx_server_stats *stats; /* the server's counters; NULL for clients */
    wsx_pmd_config pmd;      /* permessage-deflate settings (pmd.enabled: offer/accept) */
    bool pmd_idle_trim;
    wsx_pmd_buf *zscratch;        /* the owner's buffer for compressing outgoing messages */
    struct wsx__lograte *lograte; /* log rate limits per call site (log.c); NULL until the
                                     first line; freed by wsx__log_free() */
} wsx__cfg;

/*
 * State a layer above ws attaches to a connection (src/pubsub: the connection's
 * subscriptions). The owner embeds the node in its own struct. `release` runs once, when the
 * connection's stream has closed, after its on_close (which may still use the state), and
 * frees the owner's struct; ws knows nothing else of it.
 */
typedef struct wsx__conn_ext wsx__conn_ext;
struct wsx__conn_ext {
    wsx__conn_ext *next; /* private */
    void (*release)(wsx_conn *c, wsx__conn_ext *e);
};

/* A WebSocket route of a server. */
typedef struct wsx__ws_route {
    wsx__ws_cbs cb;
    wsx_upgrade_cb on_upgrade;
    wsx_upgrade_failed_cb on_upgrade_failed;
} wsx__ws_route;

struct wsx_server {
    wsx__cfg cfg; /* first, as in wsx_client: a connection finds it through its owner */
    wsx_loop *loop;
    wsx__listener *listener;
    wsx_server_opts opts;
    wsx_conn *conns; /* every accepted connection, HTTP ones included */
    size_t n_all;
    size_t n_ws;
    size_t n_pending;         /* accepted, first HTTP request not complete yet (TLS included) */
    struct wsx__admit *admit; /* connections and handshakes by client address (admit.c) */
    bool shutting_down;
    wsx__timer shutdown_timer;
    wsx_server_stats stats;
    wsx__tls_ctx *tls;    /* NULL: plain TCP */
    wsx_pmd_buf zscratch; /* compression output, reused (cfg.zscratch points here) */
    /* Deadlines of its connections are checked every sweep_ms by one timer. */
    wsx__timer sweep;
    uint32_t sweep_ms;
    /* Shared compressors, by window bits, for connections without server context takeover:
     * no per-connection compressor, and a broadcast is compressed once. */
    wsx_pmd *shared_pmd[16];
    /* The HTTP side: routes, limits, connections with deferred work (src/http). */
    wsx__http_srv http;
    /* WebSocket routes (wsx_server_ws_route); a connection names its route by number. */
    struct wsx__ws_route *ws_routes;
    size_t n_ws_routes;
    /* The loop calls it when the process passes its budget of queued output (shed.c). */
    wsx__budget_hook budget;
};

/* A connection's permessage-deflate state, allocated only when it was agreed. */
typedef struct wsx__dfl {
    wsx_pmd pmd;
    wsx_pmd_params params;
    wsx_pmd_buf msg; /* the message being inflated */
} wsx__dfl;

/* Copies the callbacks and the user pointer that wsx_server_opts and wsx_client_opts share
 * (same names in both) into a wsx__cfg. */
#define WSX__CFG_CALLBACKS(cfg, o)                                                                 \
    do {                                                                                           \
        (cfg)->cb =                                                                                \
            (wsx__ws_cbs){(o)->on_open, (o)->on_message, (o)->on_close, (o)->on_drain, (o)->user}; \
        (cfg)->on_pong = (o)->on_pong;                                                             \
        (cfg)->on_log = (o)->on_log;                                                               \
        (cfg)->log_level = (o)->log_level;                                                         \
        (cfg)->user = (o)->user;                                                                   \
        (cfg)->pmd = (o)->deflate;                                                                 \
    } while (0)

enum wsx__conn_state {
    WSX__HTTP = 0,   /* server: speaking HTTP (src/http drives it through c->http) */
    WSX__HANDSHAKE,  /* client: request sent, reading the 101 response */
    WSX__OPEN,       /* WebSocket open */
    WSX__CLOSING,    /* we sent a close frame; waiting for the peer's */
    WSX__CLOSE_WAIT, /* close frames exchanged (or the connection failed); waiting for TCP */
    WSX__DEAD,       /* the stream is closed; on_close comes at the end of the iteration */
};

enum wsx__conn_flags {
    WSX__F_OPENED = 1u << 0, /* on_open was delivered: on_close is owed */
    WSX__F_CLOSE_SENT = 1u << 1,
    WSX__F_CLOSE_RCVD = 1u << 2,
    WSX__F_PING_OUT = 1u << 3,  /* a keepalive ping is waiting for any answer */
    WSX__F_DRAIN = 1u << 4,     /* on_drain is owed */
    WSX__F_COUNTED = 1u << 6,   /* counted in the server's WebSocket connections */
    WSX__F_CLIENT = 1u << 10,   /* a client connection (cli), else a server one (srv) */
    WSX__F_DEADLINE = 1u << 11, /* deadline is set */
    WSX__F_PONGQ = 1u << 14,    /* an automatic pong may still be in the send queue */
};

/*
 * One connection. Memory per idle connection is a design goal (docs/performance.md): an
 * idle connection is this struct and nothing else, so everything a connection needs only
 * at times (a fragmented message, a close reason, an HTTP request, compression) hangs off a
 * pointer that is NULL while idle, deadlines are a 32-bit time checked by a periodic sweep
 * rather than a timer per connection, and the peer address is asked of the socket.
 */
struct wsx_conn {
    wsx__stream stream; /* first: the loop hands us the stream */
    wsx_parser parser;
    union { /* WSX__F_CLIENT says which; both start with their wsx__cfg (wsx__cfg_of) */
        wsx_server *srv;
        wsx_client *cli;
    };
    void *user;
    wsx_conn *next, *prev; /* the server's list of connections */
    wsx__http_in in;       /* bytes not yet consumed (a partial frame header) */
    wsx_pmd_buf *msg;      /* a fragmented message being reassembled, or NULL */
    char *close_reason;    /* heap copy, only while closing */
    wsx__http_conn *http;  /* the HTTP side (src/http) while state is WSX__HTTP */
    wsx__conn_ext *ext;    /* what layers above attach (wsx__conn_ext_add), or NULL */
    wsx__dfl *dfl;         /* permessage-deflate, when agreed */
    uint32_t last_rx;      /* loop time (ms, wrapping) of the last read */
    uint32_t ping_at;      /* loop time of the outstanding keepalive ping */
    uint32_t deadline;     /* loop time the connection's deadline falls due (WSX__F_DEADLINE) */
    uint16_t close_code;
    uint16_t flags;
    uint16_t pings_coalesced; /* pings answered by a queued pong, in a row (saturating) */
    uint8_t close_reason_len;
    uint8_t state;
    int8_t subprotocol;
    uint8_t route; /* the server's WebSocket route it came through (1-based); 0: the default */
};

/* ---- conn.c: the state machine shared by server and client ---- */

/* ---- defaults.c: the options server and client share, resolved through one table ---- */

/* A deadline that never comes: the public UINT32_MAX, kept as it is in wsx__cfg. */
#define WSX__NEVER UINT32_MAX
/* How long a connection accepted past its address's max_handshakes_per_ip may take for its
 * first request before it counts (wsx__admit_add_grace; docs/limits.md). */
#define WSX__HANDSHAKE_GRACE_MS 1000

/* The options wsx_server_opts and wsx_client_opts share, as the application gave them
 * (the client has no idle or HTTP timeout: they stay 0). */
typedef struct wsx__shared_opts {
    size_t max_message, max_frame, max_head;
    size_t high_water, low_water, hard_limit;
    size_t max_fragments, max_coalesced_pings;
    uint32_t handshake_ms, idle_ms, ping_ms, pong_ms, close_ms, http_ms;
} wsx__shared_opts;

/* The shared fields of an options struct (o: wsx_server_opts or wsx_client_opts). */
#define WSX__SHARED_OPTS(o)                                                                        \
    .max_message = (o)->max_message, .max_frame = (o)->max_frame, .max_head = (o)->max_head,       \
    .high_water = (o)->send_high_water, .low_water = (o)->send_low_water,                          \
    .hard_limit = (o)->send_hard_limit, .max_fragments = (o)->max_fragments,                       \
    .max_coalesced_pings = (o)->max_coalesced_pings, .handshake_ms = (o)->handshake_timeout_ms,    \
    .ping_ms = (o)->ping_interval_ms, .pong_ms = (o)->pong_timeout_ms,                             \
    .close_ms = (o)->close_timeout_ms

/* Sets cfg's limits and deadlines from `given` and the defaults of role (WSX_ROLE_SERVER or
 * WSX_ROLE_CLIENT), the ones include/wsx.h documents: 0 is the default; a deadline of
 * UINT32_MAX stays WSX__NEVER; a count of SIZE_MAX (or past 32 bits) becomes 0, no limit;
 * low_water is capped at high_water. */
void wsx__cfg_resolve(wsx__cfg *cfg, int role, const wsx__shared_opts *given);

/* Prepares c with its owner's settings; the caller then sets c->srv or c->cli (and
 * WSX__F_CLIENT) before anything else uses c. */
void wsx__conn_init(wsx_conn *c, const wsx__cfg *cfg);
/* Sets c's deadline ms from now (UINT32_MAX: none); at it the owner calls the connection's
 * timeout handling (server: sweep; client: its timer). */
void wsx__conn_deadline(wsx_conn *c, uint32_t ms);
/* Whether c's deadline has come (and then clears it). */
bool wsx__conn_due(wsx_conn *c, uint32_t now);
/* The loop's clock as a wrapping 32-bit millisecond count. */
static inline uint32_t wsx__now32(wsx_loop *loop)
{
    return (uint32_t)wsx_loop_now(loop);
}
/* For the server and client: re-arm their timers after a deadline changed. */
void wsx__server_deadline_set(wsx_server *s, uint32_t ms);
void wsx__client_deadline_set(wsx_client *cl, uint32_t ms);
/* The settings of c's server or client: both structs begin with them. */
static inline const wsx__cfg *wsx__cfg_of(const wsx_conn *c)
{
    return (const wsx__cfg *)(const void *)c->srv;
}

/* The callbacks of c: its route's, or its owner's. */
static inline const wsx__ws_cbs *wsx__conn_cbs(const wsx_conn *c)
{
    return c->route ? &c->srv->ws_routes[c->route - 1].cb : &wsx__cfg_of(c)->cb;
}

static inline wsx_server *wsx__conn_server(const wsx_conn *c)
{
    return (c->flags & WSX__F_CLIENT) ? NULL : c->srv;
}
static inline wsx_loop *wsx__server_loop(const wsx_server *s)
{
    return s->loop;
}
/* Switches a connection to WSX__OPEN, delivers on_open, then parses `rest` (bytes that came
 * after the handshake head). */
void wsx__conn_open(wsx_conn *c, uint8_t *rest, size_t len);
/* Reads WebSocket bytes (state OPEN and later). data may be modified (unmasked in place). */
void wsx__conn_read(wsx_conn *c, uint8_t *data, size_t len);
/* The peer closed its side of TCP. */
void wsx__conn_eof(wsx_conn *c);
void wsx__conn_drained(wsx_conn *c);
/* The stream closed: delivers on_close if owed and releases what the connection holds
 * (not the connection itself). */
void wsx__conn_closed(wsx_conn *c, int err);
/* The connection's single timer fired. */
void wsx__conn_timer(wsx_conn *c);
/* (Re)arms the timer for the current state. */
void wsx__conn_arm(wsx_conn *c);
/* Drops the connection now with a close code for on_close (no close frame). */
void wsx__conn_drop(wsx_conn *c, uint16_t code, const char *why);
/* Starts permessage-deflate on c with the agreed parameters. Returns 0 or WSX_ENOMEM. */
int wsx__conn_start_deflate(wsx_conn *c, const wsx_pmd_params *params);
/* The compressor for c's outgoing messages: the server's shared one for its window when
 * c's server direction has no context takeover, else c's own. NULL without deflate. */
wsx_pmd *wsx__conn_compressor(wsx_conn *c);
/* The owner's scratch buffer for compressing, WSX_MAX_HEADER bytes reserved in front; NULL
 * when out of memory. Loops are single-threaded, so one per server or client suffices. */
wsx_pmd_buf *wsx__compress_scratch(const wsx__cfg *cfg);

/* After bytes were queued on c outside wsx_send (a broadcast): applies the backpressure and
 * hard-limit rules. Returns 0, WSX_EBACKPRESSURE or WSX_ECLOSED (dropped with 1008). */
int wsx__conn_check_queue(wsx_conn *c);
/* Attaches e to c (c must not be closed yet: release is then guaranteed to run). */
void wsx__conn_ext_add(wsx_conn *c, wsx__conn_ext *e);
/* The extension of c whose release function is `release`, or NULL. */
static inline wsx__conn_ext *wsx__conn_ext_find(const wsx_conn *c,
                                                void (*release)(wsx_conn *, wsx__conn_ext *))
{
    for (wsx__conn_ext *e = c->ext; e; e = e->next)
        if (e->release == release) return e;
    return NULL;
}

/* What a layer above that queues shared frames (src/pubsub) reads of a connection. */
static inline bool wsx__conn_is_open(const wsx_conn *c)
{
    return c->state == WSX__OPEN;
}
/* The window bits of the server's shared compressor c's outgoing messages use (c agreed to
 * permessage-deflate without server context takeover), or 0 when c compresses with its own
 * context or not at all. */
static inline unsigned wsx__conn_shared_window(const wsx_conn *c)
{
    return c->dfl && c->dfl->params.server_no_context_takeover
               ? c->dfl->params.server_max_window_bits & 15
               : 0;
}
/* Queues a slice [data, data + len) of the shared buffer ref, a whole frame carrying a
 * message of `payload` bytes, on server connection c, and counts it in the server's
 * messages_out and bytes_out. Returns 0 or the stream's error (WSX_ECLOSED, WSX_ENOMEM;
 * nothing queued or counted). The caller applies wsx__conn_check_queue() after. */
static inline int wsx__conn_write_shared(wsx_conn *c, wsx__ref *ref, size_t payload)
{
    int rc = wsx__stream_write_ref(&c->stream, ref, ref->data, ref->len);
    if (rc < 0) return rc;
    wsx_server_stats *st = wsx__cfg_of(c)->stats; /* a server's: never NULL */
    st->messages_out++;
    st->bytes_out += payload;
    return 0;
}

/* Sends a close frame and waits for the answer. */
int wsx__conn_start_close(wsx_conn *c, uint16_t code, const char *reason, size_t len);

/* shed.c: drops the server's WebSocket connections with the largest queues until `excess`
 * bytes are freed (the loop's budget hook). */
void wsx__server_shed(wsx__budget_hook *h, size_t excess);

/* Fills e (if not NULL) for a public call about to return rc: e->code = rc and e->detail =
 * detail (NULL: ""). Returns rc. */
int wsx__error(wsx_error *e, int rc, const char *detail);

/* Why c's transport ended, for the reason of a 1006 (wsx__stream_error(), else the text of
 * err unless it is an orderly end), or NULL. Valid until on_close returns. */
const char *wsx__conn_transport_error(const wsx_conn *c, int err);

/* ---- admit.c: connections and handshakes in progress per client address ---- */

typedef struct wsx__admit wsx__admit;

/* The key a client address counts under (here, and in the chat's per-address rate limit):
 * an IPv4 address as its IPv4-mapped IPv6 form, an IPv6 address by its /64 (the rest zero),
 * an IPv4-mapped one as IPv4. Returns false (key zeroed) for other families. */
bool wsx__addr_key(const struct sockaddr *sa, uint8_t key[16]);

/* Why wsx__admit_add() refused (positive, unlike errors). */
enum { WSX__ADMIT_PER_IP = 1, WSX__ADMIT_PENDING_PER_IP = 2 };

/* An empty table with a random hash key. Returns 0, WSX_ENOMEM or WSX_ECRYPTO. */
int wsx__admit_new(wsx__admit **out);
void wsx__admit_free(wsx__admit *a);
/*
 * Counts a new connection on descriptor fd from peer, as a handshake in progress, unless its
 * address already holds max_per_ip connections (returns WSX__ADMIT_PER_IP) or
 * max_pending_per_ip handshakes in progress (WSX__ADMIT_PENDING_PER_IP). IPv4 addresses
 * count one by one, IPv6 ones by their /64 (IPv4-mapped ones as IPv4); other families are
 * not counted. O(1) amortised. Returns 0, one of those, or WSX_ENOMEM.
 */
int wsx__admit_add(wsx__admit *a, int fd, const struct sockaddr *peer, size_t max_per_ip,
                   size_t max_pending_per_ip);
/*
 * Counts a new connection on fd that wsx__admit_add() refused with WSX__ADMIT_PENDING_PER_IP
 * as a connection on probation from loop time now: not a handshake in progress of its
 * address (it does not count against max_pending_per_ip), but still one of its max_per_ip
 * connections (WSX__ADMIT_PER_IP beyond). A burst of connections from one address (a NAT, a
 * proxy, socket.io-client's polling requests) arrives before any of them is read; those that
 * send their first request within the grace are served. Returns 0, that, or WSX_ENOMEM.
 */
int wsx__admit_add_grace(wsx__admit *a, int fd, const struct sockaddr *peer, size_t max_per_ip,
                         uint32_t now);
/* For a connection on probation since grace_ms or more before now: WSX__ADMIT_PENDING_PER_IP
 * if its address still holds max_pending_per_ip handshakes in progress (the caller turns it
 * away), else it becomes one of them and 0 is returned. 0 for any other connection. */
int wsx__admit_grace_due(wsx__admit *a, int fd, uint32_t now, uint32_t grace_ms,
                         size_t max_pending_per_ip);
/* The connection on fd completed its first request: no longer a handshake in progress (nor on
 * probation). Returns whether it was one of those (false when already done or not counted). */
bool wsx__admit_handshaken(wsx__admit *a, int fd);
/* The connection on fd closed (call before the descriptor is closed). Returns whether it was
 * still a handshake in progress or on probation. */
bool wsx__admit_remove(wsx__admit *a, int fd);
/* Addresses with connections now; and one address's counts (tests, metrics). */
size_t wsx__admit_addresses(const wsx__admit *a);
void wsx__admit_count(const wsx__admit *a, const struct sockaddr *peer, size_t *conns,
                      size_t *pending);

/* ---- log.c ---- */

/*
 * Logs "<peer> <message>" (wsx__conn_log; the message alone through cfg->on_conn_log when
 * set) or the message (wsx__log) through cfg->on_log when level passes cfg->log_level. Lines are
 * rate-limited per call site (fmt must be a string literal: its address names the site) and per
 * server or client: in each second a site gets one warning or error line, or ten informational
 * ones; the rest are counted and the count goes out with the site's next line, or from
 * wsx__log_flush(). Debug lines are not limited.
 */
void wsx__conn_log(const wsx_conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void wsx__conn_vlog(const wsx_conn *c, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void wsx__log(const wsx__cfg *cfg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs, for every site whose window has passed with lines suppressed (every such site when
 * final), the last of them and how many there were: a server calls it from its periodic
 * timer, so the count of an attack that stopped still reaches the log, and when freed. */
void wsx__log_flush(const wsx__cfg *cfg, bool final);
/* Frees the rate-limit table (at server or client free). */
void wsx__log_free(wsx__cfg *cfg);

/* For tests: the frame a prepared message holds for window bits w (1..15: the compressed
 * frame for that window, if built), or its plain frame (w == 0); NULL if not built. */
wsx__ref *wsx__prepared_frame(const wsx_prepared *p, unsigned w);

/* Frames built by pub/sub publishes since start (for tests). */
extern _Thread_local uint64_t wsx__pubsub_frames_built;

static inline wsx_loop *wsx__conn_loop(const wsx_conn *c)
{
    return c->stream.loop;
}

#endif
