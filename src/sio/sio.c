/*
 * Socket.IO servers: namespaces, the clients (one per Engine.IO session), CONNECT and its
 * middlewares, dispatch of events, DISCONNECT both ways (docs/socketio.md, "Socket.IO").
 * The rules for which packet a client may send when follow socket.io 4.8's Client.ondecoded:
 * CONNECT only for a namespace it is not in, anything else only for one it is in, and
 * every other packet closes the session.
 */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eio/packet.h"
#include "sio/sio_priv.h"

_Static_assert(sizeof(wsx_sio_bin) == sizeof(wsx__sio_buf) &&
                   offsetof(wsx_sio_bin, data) == offsetof(wsx__sio_buf, data) &&
                   offsetof(wsx_sio_bin, len) == offsetof(wsx__sio_buf, len),
               "a decoded attachment is handed out as a wsx_sio_bin");

#define NSP_NAME_MAX 255

wsx_sio_opts wsx_sio_defaults(void)
{
    wsx_sio_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

static void resolve(wsx_sio_opts *o)
{
    if (!o->eio.path) o->eio.path = "/socket.io/";
    if (!o->eio.max_payload) o->eio.max_payload = 1000000;
    if (!o->connect_timeout_ms) o->connect_timeout_ms = 45000;
    if (!o->max_attachments) o->max_attachments = WSX__SIO_MAX_ATTACHMENTS;
    if (!o->max_pending_acks) o->max_pending_acks = 256;
    if (!o->max_rooms) o->max_rooms = 256;
    if (!o->max_namespaces) o->max_namespaces = 1024;
    if (!o->max_auth_bytes) o->max_auth_bytes = 16384;
    if (!o->recovery_max_packets) o->recovery_max_packets = 10000;
    if (!o->recovery_max_bytes) o->recovery_max_bytes = 8u << 20;
    if (!o->recovery_max_sessions) o->recovery_max_sessions = 10000;
}

int wsx__sio_new(wsx_loop *loop, const wsx_sio_opts *o, const wsx__sio_ops *ops, wsx_sio **out)
{
    if (!loop || !ops || !out) return WSX_EINVAL;
    wsx_hub *hub = wsx_hub_of(loop);
    if (!hub) return WSX_ENOMEM;
    wsx_sio *io = calloc(1, sizeof *io);
    if (!io) return WSX_ENOMEM;
    io->loop = loop;
    io->hub = hub;
    io->ops = ops;
    io->o = o ? *o : wsx_sio_defaults();
    resolve(&io->o);
    /* The engine copies what it keeps of o.eio; the core reads only max_payload. */
    io->o.eio.path = NULL;
    io->o.eio.cors_origins = NULL;
    io->o.eio.n_cors_origins = 0;
    if (!wsx_sio_of(io, "/")) {
        free(io);
        return WSX_ENOMEM;
    }
    *out = io;
    return 0;
}

static void free_handlers(sio_handler *h)
{
    while (h) {
        sio_handler *next = h->next;
        free(h);
        h = next;
    }
}

static void socket_gone(wsx_sio_socket *s, const char *reason);
static void client_free(sio_client *c);

void wsx__sio_free_core(wsx_sio *io)
{
    io->freeing = true;
    wsx__sio_cluster_free(io);
    /* socket.io's Server.close: every socket closes with "server shutting down" before the
     * engine closes the sessions. */
    for (sio_client *c = io->clients; c; c = c->next)
        while (c->sockets)
            socket_gone(c->sockets, "server shutting down");
    while (io->clients)
        client_free(io->clients);
    for (wsx_sio_nsp *n = io->nsps, *next; n; n = next) {
        next = n->next;
        free_handlers(n->handlers);
        for (sio_mw *m = n->mws, *mn; m; m = mn) {
            mn = m->next;
            free(m);
        }
        wsx__sio_recover_free(n);
        wsx_hub_unsubscribe(n->all);
        free(n->topic);
        free(n);
    }
    wsx__strbuf_free(&io->buf);
    free(io);
}

wsx_eio *wsx_sio_engine(const wsx_sio *io)
{
    return io ? io->eio : NULL;
}

size_t wsx_sio_sockets(const wsx_sio *io)
{
    return io ? io->n_sockets : 0;
}

/* ---- namespaces ---- */

static wsx_sio_nsp *nsp_find(const wsx_sio *io, const char *name, size_t len)
{
    for (wsx_sio_nsp *n = io->nsps; n; n = n->next)
        if (n->name_len == len && memcmp(n->name, name, len) == 0) return n;
    return NULL;
}

wsx_sio_nsp *wsx_sio_of(wsx_sio *io, const char *name)
{
    if (!io || !name) return NULL;
    size_t len = strlen(name);
    if (len < 1 || len > NSP_NAME_MAX || name[0] != '/' || memchr(name, ',', len)) return NULL;
    wsx_sio_nsp *n = nsp_find(io, name, len);
    if (n) return n;
    if (io->n_nsps >= io->o.max_namespaces) return NULL;
    n = calloc(1, sizeof *n + len + 1);
    if (!n) return NULL;
    /* Room topics: "sio:" keeps them apart from other users of the hub, the length makes
     * (namespace, room) pairs unambiguous whatever bytes the names hold. */
    char head[16];
    int hl = snprintf(head, sizeof head, "sio:%zu:", len);
    n->topic = malloc((size_t)hl + len + 1);
    if (!n->topic) {
        free(n);
        return NULL;
    }
    memcpy(n->topic, head, (size_t)hl);
    memcpy(n->topic + hl, name, len + 1);
    n->topic_len = (size_t)hl + len;
    n->io = io;
    n->name_len = len;
    memcpy(n->name, name, len + 1);
    if (wsx__sio_nsp_subscribe(n) < 0) {
        free(n->topic);
        free(n);
        return NULL;
    }
    n->next = io->nsps;
    io->nsps = n;
    io->n_nsps++;
    return n;
}

const char *wsx_sio_nsp_name(const wsx_sio_nsp *n)
{
    return n->name;
}

wsx_sio *wsx_sio_nsp_server(const wsx_sio_nsp *n)
{
    return n->io;
}

size_t wsx_sio_nsp_sockets(const wsx_sio_nsp *n)
{
    return n ? n->n_sockets : 0;
}

int wsx_sio_use(wsx_sio_nsp *n, wsx_sio_middleware_cb mw, void *user)
{
    if (!n || !mw) return WSX_EINVAL;
    sio_mw *m = calloc(1, sizeof *m);
    if (!m) return WSX_ENOMEM;
    m->cb = mw;
    m->user = user;
    sio_mw **tail = &n->mws;
    while (*tail)
        tail = &(*tail)->next;
    *tail = m;
    return 0;
}

void wsx_sio_on_connection(wsx_sio_nsp *n, wsx_sio_connection_cb cb, void *user)
{
    n->on_conn = cb;
    n->conn_user = user;
}

void wsx_sio_nsp_on_disconnect(wsx_sio_nsp *n, wsx_sio_disconnect_cb cb, void *user)
{
    n->on_disc = cb;
    n->disc_user = user;
}

/* Sets (set) or removes the handler of one kind (and event, for H_NAMED). */
static int set_handler(sio_handler **list, uint8_t kind, const char *event, sio_cb cb, bool set,
                       void *user)
{
    size_t len = kind == H_NAMED ? strlen(event) : 0;
    for (sio_handler **p = list; *p; p = &(*p)->next) {
        sio_handler *h = *p;
        if (h->kind == kind && (kind != H_NAMED || strcmp(h->name, event) == 0)) {
            if (set) {
                h->cb = cb;
                h->user = user;
            } else {
                *p = h->next;
                free(h);
            }
            return 0;
        }
    }
    if (!set) return 0;
    sio_handler *h = malloc(sizeof *h + len + 1);
    if (!h) return WSX_ENOMEM;
    h->cb = cb;
    h->user = user;
    h->kind = kind;
    memcpy(h->name, kind == H_NAMED ? event : "", len + 1);
    h->next = *list;
    *list = h;
    return 0;
}

int wsx_sio_nsp_on(wsx_sio_nsp *n, const char *event, wsx_sio_event_cb cb, void *user)
{
    if (!n) return WSX_EINVAL;
    return set_handler(&n->handlers, event ? H_NAMED : H_ANY, event, (sio_cb){.ev = cb}, cb != NULL,
                       user);
}

int wsx_sio_on(wsx_sio_socket *s, const char *event, wsx_sio_event_cb cb, void *user)
{
    if (!s) return WSX_EINVAL;
    return set_handler(&s->handlers, event ? H_NAMED : H_ANY, event, (sio_cb){.ev = cb}, cb != NULL,
                       user);
}

int wsx_sio_on_disconnect(wsx_sio_socket *s, wsx_sio_disconnect_cb cb, void *user)
{
    if (!s) return WSX_EINVAL;
    return set_handler(&s->handlers, H_DISC, NULL, (sio_cb){.disc = cb}, cb != NULL, user);
}

/* ---- sockets ---- */

const char *wsx_sio_id(const wsx_sio_socket *s)
{
    return s->id;
}

wsx_sio_nsp *wsx_sio_socket_nsp(const wsx_sio_socket *s)
{
    return s->nsp;
}

wsx_eio_session *wsx_sio_socket_session(const wsx_sio_socket *s)
{
    return s->client ? (wsx_eio_session *)s->client->sess : NULL;
}

json_t *wsx_sio_handshake_auth(const wsx_sio_socket *s)
{
    return s->auth;
}

bool wsx_sio_recovered(const wsx_sio_socket *s)
{
    return s->recovered;
}

void *wsx_sio_user(const wsx_sio_socket *s)
{
    return s->user;
}

void wsx_sio_set_user(wsx_sio_socket *s, void *user)
{
    s->user = user;
}

static void socket_free(wsx_sio_socket *s)
{
    free_handlers(s->handlers);
    json_decref(s->auth);
    free(s->more);
    free(s);
}

/* Ends a connected socket: rooms left and acks failed first (socket.io's _onclose leaves
 * every room before "disconnect" is emitted), then the callbacks, then the free. */
static void socket_gone(wsx_sio_socket *s, const char *reason)
{
    assert(s->state == SOCK_CONNECTED);
    s->state = SOCK_GONE;
    sio_client *c = s->client;
    for (wsx_sio_socket **p = &c->sockets; *p; p = &(*p)->cnext)
        if (*p == s) {
            *p = s->cnext;
            break;
        }
    wsx_sio_nsp *n = s->nsp;
    if (s->nprev)
        s->nprev->nnext = s->nnext;
    else
        n->sockets = s->nnext;
    if (s->nnext) s->nnext->nprev = s->nprev;
    n->n_sockets--;
    n->io->n_sockets--;
    wsx__sio_persist(s, reason);
    wsx__sio_socket_release(s);
    const sio_handler *h = s->handlers;
    while (h && h->kind != H_DISC)
        h = h->next;
    if (h) h->cb.disc(s, reason, h->user);
    if (n->on_disc) n->on_disc(s, reason, n->disc_user);
    socket_free(s);
}

/* Sends a packet with no payload or a small one to the client's session directly (CONNECT
 * answers, connect_error, DISCONNECT): they go to a namespace the client may not be in. */
static int client_send(sio_client *c, const wsx__sio_packet *p)
{
    wsx_sio *io = c->io;
    io->buf.len = 0;
    int rc = wsx__sio_encode(&io->buf, p);
    if (rc < 0) return rc;
    return io->ops->send(c->sess, io->buf.p, io->buf.len, false);
}

static void client_close(sio_client *c)
{
    if (c->closing) return;
    c->closing = true;
    if (!c->io->freeing) c->io->ops->close(c->sess);
}

void wsx_sio_disconnect(wsx_sio_socket *s, bool close_session)
{
    if (!s || s->state != SOCK_CONNECTED) return;
    sio_client *c = s->client;
    wsx__sio_packet p = {.type = WSX__SIO_DISCONNECT};
    if (!close_session) {
        p.nsp = s->nsp->name;
        p.nsp_len = s->nsp->name_len;
        client_send(c, &p);
        socket_gone(s, "server namespace disconnect");
        return;
    }
    /* socket.io's Client._disconnect: every socket of the session, then the session. */
    c->closing = true;
    while (c->sockets) {
        wsx_sio_socket *x = c->sockets;
        p.nsp = x->nsp->name;
        p.nsp_len = x->nsp->name_len;
        client_send(c, &p);
        socket_gone(x, "server namespace disconnect");
    }
    if (!c->io->freeing) c->io->ops->close(c->sess);
}

/* ---- clients (sessions) ---- */

static void connect_timeout(wsx_timer *t, void *arg)
{
    sio_client *c = arg;
    c->connect_timer = NULL;
    if (!c->sockets) client_close(c);
}

sio_client *wsx__sio_session_open(wsx_sio *io, void *sess)
{
    sio_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->io = io;
    c->sess = sess;
    wsx__sio_decoder_init(&c->dec, io->o.max_attachments, io->o.eio.max_payload);
    if (wsx_timer_start(io->loop, io->o.connect_timeout_ms, 0, connect_timeout, c,
                        &c->connect_timer) < 0) {
        free(c);
        return NULL;
    }
    c->next = io->clients;
    if (io->clients) io->clients->prev = c;
    io->clients = c;
    return c;
}

static void client_free(sio_client *c)
{
    wsx_sio *io = c->io;
    if (c->prev)
        c->prev->next = c->next;
    else
        io->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    wsx_timer_stop(c->connect_timer);
    wsx__sio_decoder_free(&c->dec);
    free(c);
}

void wsx__sio_session_close(sio_client *c, const char *reason)
{
    c->closing = true;
    while (c->sockets)
        socket_gone(c->sockets, reason);
    client_free(c);
}

static void connect_error(sio_client *c, const char *nsp, size_t nsp_len, json_t *err)
{
    wsx__sio_packet p = {.type = WSX__SIO_CONNECT_ERROR, .nsp = nsp, .nsp_len = nsp_len};
    p.data = err;
    client_send(c, &p);
    json_decref(err);
}

static void refuse_namespace(sio_client *c, const char *nsp, size_t nsp_len)
{
    connect_error(c, nsp, nsp_len, json_pack("{ss}", "message", "Invalid namespace"));
}

/* The namespace a CONNECT names: a known one, or one the application's hook makes. */
static wsx_sio_nsp *connect_nsp(wsx_sio *io, const char *name, size_t len)
{
    wsx_sio_nsp *n = nsp_find(io, name, len);
    if (n || !io->o.on_namespace || len > NSP_NAME_MAX || memchr(name, 0, len)) return n;
    char copy[NSP_NAME_MAX + 1];
    memcpy(copy, name, len);
    copy[len] = 0;
    n = io->o.on_namespace(io, copy, io->o.user);
    /* The hook must hand back the namespace asked for, not another one. */
    if (n && (n->name_len != len || memcmp(n->name, name, len) != 0)) n = NULL;
    return n;
}

static void on_connect(sio_client *c, const wsx__sio_packet *p, size_t len)
{
    wsx_sio *io = c->io;
    wsx_sio_nsp *n = connect_nsp(io, p->nsp, p->nsp_len);
    if (!n) {
        refuse_namespace(c, p->nsp, p->nsp_len);
        return;
    }
    /* The payload is kept for the socket's life (wsx_sio_handshake_auth): bounded apart from
     * maxPayload, which is meant for messages that pass through. */
    if (len > io->o.max_auth_bytes) {
        connect_error(c, n->name, n->name_len,
                      json_pack("{ss}", "message", "CONNECT payload too large"));
        return;
    }
    wsx_sio_socket *s = calloc(1, sizeof *s);
    if (!s || wsx__eio_sid_new(s->id) < 0) {
        free(s);
        client_close(c);
        return;
    }
    s->client = c;
    s->nsp = n;
    s->state = SOCK_CONNECTING;
    s->auth = json_incref(p->data);
    if (io->o.recovery_ms && wsx__eio_sid_new(s->pid) < 0) goto fail;
    int restored = wsx__sio_restore(s, s->auth);
    if (restored < 0 || (!restored && wsx__sio_socket_subscribe(s) < 0)) goto fail;
    /* A recovered socket skips the middlewares (the reference's skipMiddlewares default). */
    for (sio_mw *m = restored ? NULL : n->mws; m; m = m->next) {
        json_t *err = NULL;
        if (m->cb(s, s->auth, &err, m->user) != 0) {
            if (!json_is_object(err)) {
                json_decref(err);
                err = json_pack("{ss}", "message", "not authorized");
            }
            wsx__sio_socket_release(s);
            connect_error(c, n->name, n->name_len, err);
            socket_free(s);
            return;
        }
    }
    s->state = SOCK_CONNECTED;
    s->cnext = c->sockets;
    c->sockets = s;
    s->nnext = n->sockets;
    if (n->sockets) n->sockets->nprev = s;
    n->sockets = s;
    n->n_sockets++;
    io->n_sockets++;
    wsx_timer_stop(c->connect_timer);
    c->connect_timer = NULL;

    json_t *data = io->o.recovery_ms ? json_pack("{ssss}", "sid", s->id, "pid", s->pid)
                                     : json_pack("{ss}", "sid", s->id);
    wsx__sio_packet a = {.type = WSX__SIO_CONNECT, .nsp = n->name, .nsp_len = n->name_len};
    a.data = data;
    int rc = data ? client_send(c, &a) : WSX_ENOMEM;
    json_decref(data);
    if (rc == WSX_ENOMEM || rc == WSX_EINVAL) {
        socket_gone(s, "forced close");
        client_close(c);
        return;
    }
    if (n->on_conn) n->on_conn(s, n->conn_user);
    return;
fail:
    wsx__sio_socket_release(s);
    socket_free(s);
    client_close(c);
}

static wsx_sio_socket *client_socket(const sio_client *c, const char *nsp, size_t len)
{
    for (wsx_sio_socket *s = c->sockets; s; s = s->cnext)
        if (s->nsp->name_len == len && memcmp(s->nsp->name, nsp, len) == 0) return s;
    return NULL;
}

static const sio_handler *find_handler(const sio_handler *h, const char *name, uint8_t kind)
{
    for (; h; h = h->next)
        if (h->kind == kind && (kind != H_NAMED || strcmp(h->name, name) == 0)) return h;
    return NULL;
}

static void on_event(wsx_sio_socket *s, const wsx__sio_packet *p)
{
    /* The payload was checked by the decoder: a non-empty array whose first element is a
     * string or a number. */
    json_t *first = json_array_get(p->data, 0);
    char num[40];
    const char *name;
    size_t name_len;
    if (json_is_string(first)) {
        name = json_string_value(first);
        name_len = json_string_length(first);
    } else {
        /* A number as JavaScript names the listener: String(n). */
        if (json_is_integer(first)) {
            name_len =
                (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(first));
        } else {
            wsx__strbuf b = {0};
            if (wsx__json_write_real(&b, json_real_value(first)) < 0 || b.len >= sizeof num) {
                wsx__strbuf_free(&b);
                return;
            }
            memcpy(num, b.p, b.len);
            name_len = b.len;
            wsx__strbuf_free(&b);
        }
        num[name_len] = 0;
        name = num;
    }
    const sio_handler *h = NULL;
    if (strlen(name) == name_len) {
        h = find_handler(s->handlers, name, H_NAMED);
        if (!h) h = find_handler(s->nsp->handlers, name, H_NAMED);
    }
    if (!h) h = find_handler(s->handlers, NULL, H_ANY);
    if (!h) h = find_handler(s->nsp->handlers, NULL, H_ANY);
    if (!h) return;
    json_t *args = json_array();
    if (!args) return;
    size_t n = json_array_size(p->data);
    for (size_t i = 1; i < n; i++)
        json_array_append(args, json_array_get(p->data, i));
    wsx_sio_event ev = {
        .name = name,
        .name_len = name_len,
        .args = args,
        .bins = (const wsx_sio_bin *)p->att,
        .n_bins = p->n_att,
        .has_ack = p->has_id,
        .ack_id = p->id,
    };
    /* h may be freed by the handler (wsx_sio_on from inside it): copy what is called. */
    wsx_sio_event_cb cb = h->cb.ev;
    void *user = h->user;
    cb(s, &ev, user);
    json_decref(args);
}

void wsx__sio_session_message(sio_client *c, const uint8_t *data, size_t len, bool binary)
{
    if (c->closing) return;
    wsx__sio_packet p;
    int rc = wsx__sio_decoder_feed(&c->dec, data, len, binary, &p);
    if (rc == 0) return;
    if (rc < 0) {
        /* socket.io closes the connection on any parse error: reason "forced close". */
        client_close(c);
        return;
    }
    wsx_sio_socket *s = client_socket(c, p.nsp, p.nsp_len);
    if (!s && p.type == WSX__SIO_CONNECT) {
        on_connect(c, &p, len);
    } else if (!s || p.type == WSX__SIO_CONNECT || p.type == WSX__SIO_CONNECT_ERROR) {
        client_close(c);
    } else if (p.type == WSX__SIO_EVENT || p.type == WSX__SIO_BINARY_EVENT) {
        on_event(s, &p);
    } else if (p.type == WSX__SIO_ACK || p.type == WSX__SIO_BINARY_ACK) {
        wsx__sio_on_ack(s, &p);
    } else if (p.type == WSX__SIO_DISCONNECT) {
        socket_gone(s, "client namespace disconnect");
    }
    /* An idle client holds no packet: the decoder lets go of this one now, not at the next
     * message. (c is still valid: a session ends from the engine's callbacks, never inside
     * a call of the core.) */
    wsx__sio_decoder_release(&c->dec);
}
