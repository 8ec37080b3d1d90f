/*
 * src/eio/session.h — Engine.IO sessions: what engine.c (the route, the session table, the
 * heartbeat tick, the API), polling.c (GET and POST) and wsock.c (the WebSocket transport
 * and the upgrade) share. docs/socketio.md, "Engine.IO sessions", has the design.
 */
#ifndef WSX_EIO_SESSION_H
#define WSX_EIO_SESSION_H

#include "eio/packet.h"
#include "wsx.h"
#include "wsx/eio.h"

enum eio_transport { EIO_T_POLLING = 0, EIO_T_WEBSOCKET = 1 };

enum eio_state {
    EIO_S_OPEN = 0,
    EIO_S_CLOSING, /* wsx_eio_close on polling without a GET held: "1" goes to the next GET */
    EIO_S_DEAD,    /* ended: out of the table, on_close owed (the engine's dead list) */
};

/* What the heartbeat deadline means. */
enum eio_hb { EIO_HB_PING = 0, EIO_HB_PONG = 1 };

/* One queued packet as a WebSocket frame carries it: text is the type digit and the text
 * ("4hello", "2", "6"), binary is the message's bytes. Over polling a text packet is
 * written as it is and a binary one as `b` + base64. */
typedef struct eio_shared eio_shared;
typedef struct eio_item {
    struct eio_item *next;
    const uint8_t *p; /* the packet: data below, or the shared bytes */
    size_t len;
    bool binary;
    eio_shared *shared; /* a published packet, one copy for every polling session */
    uint8_t data[];
} eio_item;

/* The bytes of one published packet (wsx_eio_send_msg on polling), made once per publish as
 * the hub form of this layer and referenced by every polling session's queue. */
struct eio_shared {
    size_t refs;
    size_t len;
    bool binary;
    uint8_t data[];
};

/* Sessions of one client address (addr.c). */
typedef struct eio_addr {
    struct eio_addr *next;
    uint8_t key[16];
    size_t n;
} eio_addr;

#define WSX__EIO_ADDR_BUCKETS 256

struct wsx_eio_session {
    wsx_eio *e;
    wsx_eio_session *hnext;       /* the sid table's chain */
    wsx_eio_session *prev, *next; /* the engine's live list (the tick walks it) */
    wsx_eio_session *dnext;       /* the dead list */
    wsx_eio_session *fnext;       /* the flush list (a session may be on both at once) */
    char sid[WSX__EIO_SID_LEN + 1];
    char peer[64];
    uint8_t addr[16];     /* its key in the engine's count per address */
    uint8_t transport;    /* enum eio_transport */
    uint8_t state;        /* enum eio_state */
    uint8_t hb;           /* enum eio_hb */
    uint8_t mark;         /* allow_request's (wsx_eio_session_mark) */
    bool hb_refreshed;    /* a packet other than a pong extended the pong deadline once */
    bool upgrading;       /* the probe WebSocket sent 2probe and got 3probe */
    bool flushing;        /* on the engine's flush list */
    bool backpressure;    /* a send returned WSX_EBACKPRESSURE: on_drain is owed */
    bool opened;          /* on_open ran: on_close is owed */
    uint64_t deadline;    /* heartbeat (ms, loop time) */
    uint64_t up_deadline; /* upgrade timeout of the probe (0: none) */
    const char *reason;   /* why it ended (static), once DEAD */
    wsx_http_req *get;    /* the held GET, or NULL */
    wsx_conn *ws;         /* the WebSocket transport once upgraded (or from the start) */
    wsx_conn *probe;      /* a WebSocket upgrading a polling session */
    eio_item *qhead, **qtail;
    size_t qbytes; /* bytes queued (polling; and on either transport during an upgrade) */
    void *user;
};

struct wsx_eio {
    wsx_server *srv;
    wsx_loop *loop;
    char *path;
    wsx_eio_opts o;
    char **cors_origins; /* copies of o.cors_origins */
    wsx_cors_opts cors;
    uint64_t key[2]; /* SipHash key of the sid table */
    wsx_eio_session **buckets;
    size_t nbuckets, n;
    size_t qtotal;                             /* bytes in every session's queue */
    wsx_eio_session *live;                     /* every session that is not dead */
    wsx_eio_session *dead, *flushq;            /* lists through dnext and fnext */
    wsx_timer *tick;                           /* the heartbeat and upgrade deadlines */
    wsx_timer *kick;                           /* a zero-delay timer for the dead and flush lists */
    bool freed;                                /* wsx_eio_free ran: the route answers 503 */
    eio_addr *abuckets[WSX__EIO_ADDR_BUCKETS]; /* sessions per client address */
};

/* engine.c */
wsx_eio_session *wsx__eio_find(wsx_eio *e, const char *sid, size_t len);
/* A new session on transport t (its sid made, in the table, heartbeat armed). NULL: out of
 * memory or of random bytes. */
wsx_eio_session *wsx__eio_session_new(wsx_eio *e, int t, const char *peer);
/* The open packet of s (upgrades as its transport allows) into out; its length or < 0. */
ptrdiff_t wsx__eio_open_packet(wsx_eio_session *s, char *out, size_t cap);
void wsx__eio_opened(wsx_eio_session *s);
/* Ends s: out of the table, the held GET answered "1", WebSockets closed, on_close owed
 * (run from the kick timer, never inside the caller). reason is static. */
void wsx__eio_end(wsx_eio_session *s, const char *reason);
/* A packet from the client on either transport (after the upgrade's own packets). */
void wsx__eio_packet_in(wsx_eio_session *s, const wsx__eio_packet *p);
/* Queues a packet (see eio_item). Returns like wsx_eio_send. */
int wsx__eio_enqueue(wsx_eio_session *s, uint8_t type, const void *data, size_t len, bool binary);
/* Asks for the session's queue to go out from the kick timer (batched per iteration). */
void wsx__eio_want_flush(wsx_eio_session *s);
void wsx__eio_kick(wsx_eio *e);
/* Frees the queued items. */
void wsx__eio_queue_clear(wsx_eio_session *s);
/* Answers r with a JSON error body (400 or 403) and the CORS headers. */
void wsx__eio_http_error(wsx_eio *e, wsx_http_req *r, int status, int code);
/* The CORS headers for a response to r into out; how many. */
size_t wsx__eio_cors(wsx_eio *e, const wsx_http_req *r, wsx_http_header *out);
/* The queue drained after backpressure: on_drain. */
void wsx__eio_drained(wsx_eio_session *s);

/* addr.c: sessions per client address */
void wsx__eio_addr_key(const char *peer, uint8_t key[16]);
size_t wsx__eio_addr_count(wsx_eio *e, const uint8_t key[16]);
int wsx__eio_addr_add(wsx_eio *e, const uint8_t key[16]);
void wsx__eio_addr_remove(wsx_eio *e, const uint8_t key[16]);
void wsx__eio_addr_free(wsx_eio *e);
/* Whether a new session from peer is allowed: 0, or the HTTP status to refuse it with (503:
 * max_sessions or max_sessions_per_ip reached). */
int wsx__eio_admit(wsx_eio *e, const char *peer);

/* polling.c */
void wsx__eio_poll_handshake(wsx_eio *e, wsx_http_req *r, unsigned mark);
void wsx__eio_poll_request(wsx_eio_session *s, wsx_http_req *r);
/* Answers the held GET with the queue (and "1" when closing or `close`); no-op without. */
void wsx__eio_poll_flush(wsx_eio_session *s, bool close);
/* Answers the held GET with exactly these bytes. */
void wsx__eio_poll_answer(wsx_eio_session *s, const char *body, size_t len);

/* wsock.c */
int wsx__eio_ws_upgrade(wsx_server *srv, const wsx_http_req *r, void **conn_user, void *user);
void wsx__eio_ws_upgrade_failed(wsx_server *srv, void *conn_user, void *user);
void wsx__eio_ws_open(wsx_conn *c, void *user);
void wsx__eio_ws_message(wsx_conn *c, const wsx_msg *m, void *user);
void wsx__eio_ws_close(wsx_conn *c, int code, const char *reason, size_t len, void *user);
void wsx__eio_ws_drain(wsx_conn *c, void *user);
/* Sends one queued item on s's WebSocket; returns like wsx_send. */
int wsx__eio_ws_send_item(wsx_eio_session *s, const eio_item *it);
/* The upgrade timed out: the probe is closed and the session stays on polling. */
void wsx__eio_probe_timeout(wsx_eio_session *s);

/* Query parameters of an Engine.IO request. */
typedef struct wsx__eio_query {
    const char *transport, *sid, *eio;
    size_t transport_len, sid_len, eio_len;
} wsx__eio_query;
void wsx__eio_query_parse(const char *q, size_t len, wsx__eio_query *out);
/* The reference's checks on a request (docs/socketio.md, "Routes"): 0 when it may go on,
 * else the error code (enum wsx__eio_error) and *sp the session for a request with a sid. */
int wsx__eio_verify(wsx_eio *e, const wsx__eio_query *q, bool upgrade, bool get,
                    wsx_eio_session **sp);

#endif
