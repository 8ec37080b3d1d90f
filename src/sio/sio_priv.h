/*
 * src/sio — Socket.IO servers (include/wsx/sio.h): the state of a server, its namespaces, the
 * clients (one per Engine.IO session) and their sockets. Private to the library.
 *
 * The core (sio.c, emit.c) talks to its sessions through wsx__sio_ops, not wsx/eio.h
 * directly: attach.c binds the ops to wsx_eio_*, and the unit tests bind them to a scripted
 * session, so the namespace, ack and room logic runs without sockets.
 */
#ifndef WSX_SIO_PRIV_H
#define WSX_SIO_PRIV_H

#include "sio/packet.h"
#include "wsx/sio.h"

/* What the core needs of a session; sess is opaque to it. Same contracts as wsx_eio_send,
 * wsx_eio_send_msg, wsx_eio_writable and wsx_eio_close (close never calls back
 * from inside: the session's end comes later through wsx__sio_session_close). */
typedef struct wsx__sio_ops {
    int (*send)(void *sess, const void *data, size_t len, bool binary);
    int (*send_msg)(void *sess, wsx_hub_msg *m);
    bool (*writable)(const void *sess);
    void (*close)(void *sess);
} wsx__sio_ops;

/* A socket's or namespace's handler: of one event, of any event, or (sockets only) of the
 * disconnect, so that a socket holds no field for callbacks it does not use. */
enum { H_NAMED, H_ANY, H_DISC };
typedef union sio_cb {
    wsx_sio_event_cb ev;
    wsx_sio_disconnect_cb disc;
} sio_cb;
typedef struct sio_handler {
    struct sio_handler *next;
    sio_cb cb;
    void *user;
    uint8_t kind;
    char name[];
} sio_handler;

typedef struct sio_rpkt sio_rpkt;
typedef struct sio_rsess sio_rsess;

typedef struct sio_mw {
    struct sio_mw *next;
    wsx_sio_middleware_cb cb;
    void *user;
} sio_mw;

struct wsx_sio_nsp {
    wsx_sio *io;
    wsx_sio_nsp *next;
    sio_handler *handlers;
    sio_mw *mws;
    wsx_sio_connection_cb on_conn;
    void *conn_user;
    wsx_sio_disconnect_cb on_disc;
    void *disc_user;
    wsx_sio_socket *sockets; /* connected, newest first */
    size_t n_sockets;
    /* Connection state recovery (recover.c): the ring of packets, oldest first, and the
     * records of sockets that may come back, oldest first. */
    sio_rpkt *ring, *ring_tail;
    size_t ring_n, ring_bytes;
    sio_rsess *rsess, *rsess_tail;
    size_t rsess_n, rsess_bytes;
    uint64_t next_offset;
    char *topic;  /* "sio:<name length>:<name>": the namespace's topic; rooms append */
    wsx_sub *all; /* the namespace's one subscription to it: broadcasts to every socket */
    size_t topic_len;
    size_t name_len;
    char name[];
};

typedef struct sio_client sio_client;

/* An emit awaiting the client's ack. */
typedef struct sio_ack {
    struct sio_ack *next;
    wsx_sio_socket *s;
    uint64_t id;
    wsx_sio_ack_cb cb;
    void *user;
    wsx_timer *timer;
} sio_ack;

enum { SOCK_CONNECTING, SOCK_CONNECTED, SOCK_GONE };

/* Kept small: an idle socket is this, its own room's subscription and topic, and its
 * client's share (docs/socketio.md has the figures). */
struct wsx_sio_socket {
    sio_client *client;
    wsx_sio_nsp *nsp;
    wsx_sio_socket *cnext;         /* the client's sockets */
    wsx_sio_socket *nnext, *nprev; /* the namespace's */
    sio_handler *handlers;
    void *user;
    json_t *auth;
    wsx_sub *room0; /* rooms: the first inline (its own, from CONNECT on)... */
    wsx_sub **more; /* ...the others here (capacity: see emit.c, add_room) */
    sio_ack *acks;
    uint64_t mark; /* the last broadcast delivered to it */
    uint32_t n_rooms;
    uint32_t n_acks;
    uint32_t next_ack;
    uint8_t state;
    bool recovered;
    char id[21];
    char pid[21]; /* the private id of recovery (empty when it is off) */
};

/* The socket's i-th room subscription (i < n_rooms). */
static inline wsx_sub *wsx__sio_room(const wsx_sio_socket *s, uint32_t i)
{
    return i ? s->more[i - 1] : s->room0;
}

struct sio_client {
    wsx_sio *io;
    void *sess;
    sio_client *next, *prev;
    wsx_sio_socket *sockets;
    wsx_timer *connect_timer;
    bool closing; /* close asked: input is ignored until the session's end */
    wsx__sio_decoder dec;
};

struct wsx_sio {
    wsx_loop *loop;
    wsx_hub *hub;
    wsx_eio *eio; /* NULL under the unit tests' ops */
    const wsx__sio_ops *ops;
    wsx_sio_opts o;
    wsx_sio_nsp *nsps;
    size_t n_nsps;
    sio_client *clients;
    size_t n_sockets;
    uint64_t mark;   /* broadcasts so far */
    wsx__strbuf buf; /* scratch for encoding */
    bool freeing;
    struct wsx__sio_cl *cl; /* cluster.c: wsx_sio_set_cluster */
};

/* The core without a transport: a server whose sessions are driven by the caller through
 * the three functions below. o may be NULL. Returns 0, WSX_EINVAL, WSX_ENOMEM. */
int wsx__sio_new(wsx_loop *loop, const wsx_sio_opts *o, const wsx__sio_ops *ops, wsx_sio **out);

/* Frees what wsx__sio_new made: every socket gets "server shutting down", then every client
 * is freed without a call to ops->close (wsx_sio_free closes the sessions itself). */
void wsx__sio_free_core(wsx_sio *io);

/* A session opened: returns its client (the session's user pointer), or NULL out of memory
 * (the caller closes the session). */
sio_client *wsx__sio_session_open(wsx_sio *io, void *sess);
/* A message of the session. */
void wsx__sio_session_message(sio_client *c, const uint8_t *data, size_t len, bool binary);
/* The session ended: its sockets disconnect with reason; c is freed. */
void wsx__sio_session_close(sio_client *c, const char *reason);

/* cluster.c: publishes a broadcast (data: [event, ...args]) to the other nodes. */
void wsx__sio_cluster_relay(wsx_sio_nsp *n, const wsx_sio_to *to, const json_t *data,
                            const wsx_sio_bin *bins, size_t n_bins);
/* cluster.c: detaches io from its cluster. */
void wsx__sio_cluster_free(wsx_sio *io);

/* emit.c */
/* Sends packet p on the socket's session, attachments included. */
int wsx__sio_send_packet(wsx_sio_socket *s, const wsx__sio_packet *p);
/* Subscribes the namespace to its topic (broadcasts to all its sockets). */
int wsx__sio_nsp_subscribe(wsx_sio_nsp *n);
/* Leaves every room and fails every pending ack with WSX_ECLOSED. */
void wsx__sio_socket_release(wsx_sio_socket *s);
/* The socket's own room, at connect. */
int wsx__sio_socket_subscribe(wsx_sio_socket *s);
/* An ACK packet from the client. */
void wsx__sio_on_ack(wsx_sio_socket *s, const wsx__sio_packet *p);

/* recover.c */
/* A new offset (NUL-terminated, at most 11 characters). */
int wsx__sio_offset_new(wsx_sio_nsp *n, char out[16]);
/* Keeps a packet (its text without the Engine.IO "4", its attachments) with the rooms it
 * went to (none: all) and those it skipped (except_id: a socket's own room, may be NULL). */
int wsx__sio_ring_add(wsx_sio_nsp *n, const char *offset, const char *text, size_t len,
                      const wsx_sio_bin *bins, size_t n_bins, const char *const *rooms,
                      size_t n_rooms, const char *const *except, size_t n_except,
                      const char *except_id);
/* Leaves a record of a connected socket that ends for reason, if recoverable. */
void wsx__sio_persist(wsx_sio_socket *s, const char *reason);
/* For a connecting socket whose CONNECT payload names a pid and an offset: restores its id,
 * pid and rooms (subscribing it) and sends the packets it missed. Returns 1 when restored, 0
 * when not (a fresh socket: nothing changed), or a WSX_E* error. */
int wsx__sio_restore(wsx_sio_socket *s, const json_t *auth);
/* Frees a namespace's ring and records. */
void wsx__sio_recover_free(wsx_sio_nsp *n);

#endif
