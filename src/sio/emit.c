/*
 * Socket.IO emits: to one socket, acks both ways, rooms as topics of the loop's hub, and
 * broadcasts encoded once (docs/socketio.md, "Rooms, with the generic pub/sub" and
 * "Frame-once broadcast").
 */
#include <stdlib.h>
#include <string.h>

#include "pubsub/pubsub.h"
#include "sio/sio_priv.h"

/* socket.io's RESERVED_EVENTS: a server may not emit them. */
static bool reserved(const char *e)
{
    static const char *const names[] = {"connect",       "connect_error", "disconnect",
                                        "disconnecting", "newListener",   "removeListener"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(e, names[i]) == 0) return true;
    return false;
}

json_t *wsx_sio_placeholder(size_t i)
{
    return wsx__sio_placeholder(i);
}

static bool is_placeholder(const json_t *v)
{
    return json_is_object(v) && json_is_true(json_object_get(v, "_placeholder"));
}

int wsx_sio_bin_of(const json_t *v, const wsx_sio_bin *bins, size_t n, wsx_sio_bin *out)
{
    if (!is_placeholder(v) || !out) return WSX_EINVAL;
    json_t *num = json_object_get(v, "num");
    if (!json_is_integer(num)) return WSX_EINVAL;
    json_int_t i = json_integer_value(num);
    if (i < 0 || (uint64_t)i >= n) return WSX_EINVAL;
    *out = bins[i];
    return 0;
}

/* Every placeholder in v names one of n buffers (the client refuses the packet otherwise:
 * socket.io-parser's reconstructPacket throws "illegal attachments"). */
static bool placeholders_ok(const json_t *v, size_t n, int depth)
{
    if (depth > 2048) return false;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (!placeholders_ok(x, n, depth + 1)) return false;
    } else if (json_is_object(v)) {
        if (is_placeholder(v)) {
            json_t *num = json_object_get(v, "num");
            json_int_t i = json_is_integer(num) ? json_integer_value(num) : -1;
            return i >= 0 && (uint64_t)i < n;
        }
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) if (!placeholders_ok(x, n, depth + 1)) return false;
    }
    return true;
}

/* [event, ...args] for an EVENT packet. Takes args. */
static int event_payload(const char *event, json_t *args, const wsx_sio_bin *bins, size_t n,
                         json_t **out)
{
    int rc = WSX_EINVAL;
    json_t *a = NULL;
    if (!event || reserved(event) || (args && !json_is_array(args)) || (n && !bins)) goto done;
    rc = WSX_ENOMEM;
    a = json_array();
    json_t *name = json_string(event);
    if (!name) rc = WSX_EINVAL; /* not UTF-8 */
    if (!a || !name || json_array_append_new(a, name) < 0) goto done;
    if (args && json_array_extend(a, args) < 0) goto done;
    rc = WSX_EINVAL;
    if (n && !placeholders_ok(a, n, 0)) goto done;
    *out = a;
    a = NULL;
    rc = 0;
done:
    json_decref(a);
    json_decref(args);
    return rc;
}

int wsx__sio_send_packet(wsx_sio_socket *s, const wsx__sio_packet *p)
{
    sio_client *c = s->client;
    wsx_sio *io = c->io;
    io->buf.len = 0;
    int rc = wsx__sio_encode(&io->buf, p);
    if (rc < 0) return rc;
    rc = io->ops->send(c->sess, io->buf.p, io->buf.len, false);
    for (size_t i = 0; i < p->n_att && (rc == 0 || rc == WSX_EBACKPRESSURE); i++)
        rc = io->ops->send(c->sess, p->att[i].data, p->att[i].len, true);
    return rc;
}

static int emit(wsx_sio_socket *s, const char *event, json_t *args, const wsx_sio_bin *bins,
                size_t n, bool has_id, uint64_t id)
{
    if (!s || s->state != SOCK_CONNECTED || s->client->closing) {
        json_decref(args);
        return s ? WSX_ECLOSED : WSX_EINVAL;
    }
    json_t *data;
    int rc = event_payload(event, args, bins, n, &data);
    if (rc < 0) return rc;
    wsx_sio_nsp *ns = s->nsp;
    char offset[16];
    /* Recovery: an event without ack gets an offset and is kept, as sent to the socket's
     * own room (socket.io's Socket.emit goes through the adapter for that). */
    bool keep = ns->io->o.recovery_ms && !has_id;
    if (keep && (wsx__sio_offset_new(ns, offset) < 0 ||
                 json_array_append_new(data, json_string(offset)) < 0)) {
        json_decref(data);
        return WSX_ENOMEM;
    }
    wsx__sio_packet p = {.type = WSX__SIO_EVENT,
                         .nsp = s->nsp->name,
                         .nsp_len = s->nsp->name_len,
                         .has_id = has_id,
                         .id = id,
                         .data = data,
                         .n_att = n,
                         .att = (const wsx__sio_buf *)bins};
    rc = wsx__sio_send_packet(s, &p);
    json_decref(data);
    if (keep && (rc == 0 || rc == WSX_EBACKPRESSURE)) {
        const char *own[] = {s->id};
        wsx_sio *io = ns->io;
        wsx__sio_ring_add(ns, offset, io->buf.p, io->buf.len, bins, n, own, 1, NULL, 0, NULL);
    }
    return rc;
}

int wsx_sio_emit(wsx_sio_socket *s, const char *event, json_t *args, const wsx_sio_bin *bins,
                 size_t n_bins)
{
    return emit(s, event, args, bins, n_bins, false, 0);
}

static void ack_unlink(sio_ack *a)
{
    wsx_sio_socket *s = a->s;
    for (sio_ack **p = &s->acks; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            s->n_acks--;
            return;
        }
}

static void ack_timeout(wsx_timer *t, void *arg)
{
    sio_ack *a = arg;
    a->timer = NULL; /* a one-shot timer is freed by the loop after this call */
    ack_unlink(a);
    a->cb(a->s, WSX_ETIMEDOUT, NULL, NULL, 0, a->user);
    free(a);
}

int wsx_sio_emit_ack(wsx_sio_socket *s, const char *event, json_t *args, const wsx_sio_bin *bins,
                     size_t n_bins, wsx_sio_ack_cb cb, uint32_t timeout_ms, void *user)
{
    if (!s || !cb) {
        json_decref(args);
        return WSX_EINVAL;
    }
    if (s->state == SOCK_CONNECTED && s->n_acks >= s->nsp->io->o.max_pending_acks) {
        json_decref(args);
        return WSX_ELIMIT;
    }
    sio_ack *a = calloc(1, sizeof *a);
    if (!a) {
        json_decref(args);
        return WSX_ENOMEM;
    }
    a->s = s;
    a->cb = cb;
    a->user = user;
    /* Ids count from 0 per socket, as the reference's do per namespace; a client matches
     * them per socket. */
    a->id = s->next_ack;
    int rc = emit(s, event, args, bins, n_bins, true, a->id);
    if (rc == 0 || rc == WSX_EBACKPRESSURE) {
        if (timeout_ms &&
            wsx_timer_start(s->nsp->io->loop, timeout_ms, 0, ack_timeout, a, &a->timer) < 0) {
            free(a);
            return WSX_ENOMEM; /* the event went out; its answer will be ignored */
        }
        s->next_ack++; /* wraps at 2^32: by then the old ids are long answered or timed out */
        a->next = s->acks;
        s->acks = a;
        s->n_acks++;
        return rc;
    }
    free(a);
    return rc;
}

void wsx__sio_on_ack(wsx_sio_socket *s, const wsx__sio_packet *p)
{
    sio_ack *a = s->acks;
    while (a && a->id != p->id)
        a = a->next;
    if (!a) return; /* unknown or answered already: ignored, as the reference does */
    ack_unlink(a);
    wsx_timer_stop(a->timer);
    a->cb(s, 0, p->data, (const wsx_sio_bin *)p->att, p->n_att, a->user);
    free(a);
}

int wsx_sio_ack(wsx_sio_socket *s, uint64_t ack_id, json_t *args, const wsx_sio_bin *bins,
                size_t n_bins)
{
    int rc = WSX_EINVAL;
    if (!s || (args && !json_is_array(args)) || ack_id > WSX__SIO_MAX_ID || (n_bins && !bins))
        goto fail;
    rc = WSX_ECLOSED;
    if (s->state != SOCK_CONNECTED || s->client->closing) goto fail;
    rc = WSX_ENOMEM;
    if (!args && !(args = json_array())) goto fail;
    rc = WSX_EINVAL;
    if (n_bins && !placeholders_ok(args, n_bins, 0)) goto fail;
    wsx__sio_packet p = {.type = WSX__SIO_ACK,
                         .nsp = s->nsp->name,
                         .nsp_len = s->nsp->name_len,
                         .has_id = true,
                         .id = ack_id,
                         .data = args,
                         .n_att = n_bins,
                         .att = (const wsx__sio_buf *)bins};
    rc = wsx__sio_send_packet(s, &p);
fail:
    json_decref(args);
    return rc;
}

/* ---- rooms ---- */

/* The topic of room in s's namespace, into t (WSX__MAX_TOPIC + 1 bytes). */
static int room_topic(const wsx_sio_nsp *n, const char *room, char *t)
{
    if (!room || !room[0]) return WSX_EINVAL;
    size_t len = strlen(room);
    if (len > WSX__MAX_TOPIC - n->topic_len) return WSX_EINVAL;
    memcpy(t, n->topic, n->topic_len);
    memcpy(t + n->topic_len, room, len + 1);
    return 0;
}

static ptrdiff_t room_index(const wsx_sio_socket *s, const char *room)
{
    size_t off = s->nsp->topic_len;
    for (uint32_t i = 0; i < s->n_rooms; i++)
        if (strcmp(wsx_sub_topic(wsx__sio_room(s, i)) + off, room) == 0) return i;
    return -1;
}

static int deliver(wsx_sub *sub, wsx_hub_msg *m, void *user);
static int deliver_nsp(wsx_sub *sub, wsx_hub_msg *m, void *user);

/* Rooms past the first live in `more`, whose capacity is the count's next power of two: it
 * grows when the count (of `more`) is 0 or a power of two, never needing a field of its own. */
static int add_room(wsx_sio_socket *s, wsx_sub *sub)
{
    if (s->n_rooms == 0) {
        s->room0 = sub;
    } else {
        uint32_t m = s->n_rooms - 1;
        if ((m & (m - 1)) == 0) {
            wsx_sub **r = realloc(s->more, (m ? 2 * (size_t)m : 1) * sizeof *r);
            if (!r) return WSX_ENOMEM;
            s->more = r;
        }
        s->more[m] = sub;
    }
    s->n_rooms++;
    return 0;
}

static void drop_room(wsx_sio_socket *s, uint32_t i)
{
    wsx_hub_unsubscribe(wsx__sio_room(s, i));
    uint32_t last = --s->n_rooms;
    if (i == last) return;
    wsx_sub *moved = wsx__sio_room(s, last);
    if (i == 0)
        s->room0 = moved;
    else
        s->more[i - 1] = moved;
}

int wsx_sio_join(wsx_sio_socket *s, const char *room)
{
    if (!s) return WSX_EINVAL;
    if (s->state == SOCK_GONE) return WSX_ECLOSED;
    char t[WSX__MAX_TOPIC + 1];
    int rc = room_topic(s->nsp, room, t);
    if (rc < 0) return rc;
    if (room_index(s, room) >= 0) return 0;
    if (s->n_rooms >= s->nsp->io->o.max_rooms) return WSX_ELIMIT;
    wsx_sub *sub;
    rc = wsx_hub_subscribe(s->nsp->io->hub, t, deliver, s, &sub);
    if (rc < 0) return rc;
    rc = add_room(s, sub);
    if (rc < 0) wsx_hub_unsubscribe(sub);
    return rc;
}

int wsx_sio_leave(wsx_sio_socket *s, const char *room)
{
    if (!s || !room) return WSX_EINVAL;
    ptrdiff_t i = room_index(s, room);
    if (i < 0) return WSX_ENOTFOUND;
    drop_room(s, (uint32_t)i);
    return 0;
}

bool wsx_sio_in(const wsx_sio_socket *s, const char *room)
{
    return s && room && room_index(s, room) >= 0;
}

int wsx__sio_socket_subscribe(wsx_sio_socket *s)
{
    return wsx_sio_join(s, s->id);
}

int wsx__sio_nsp_subscribe(wsx_sio_nsp *n)
{
    return wsx_hub_subscribe(n->io->hub, n->topic, deliver_nsp, n, &n->all);
}

void wsx__sio_socket_release(wsx_sio_socket *s)
{
    while (s->n_rooms)
        drop_room(s, s->n_rooms - 1);
    while (s->acks) {
        sio_ack *a = s->acks;
        s->acks = a->next;
        s->n_acks--;
        wsx_timer_stop(a->timer);
        a->cb(s, WSX_ECLOSED, NULL, NULL, 0, a->user);
        free(a);
    }
}

/* ---- broadcast ---- */

/* What a broadcast carries to the delivery callbacks (the publish's ctx). */
typedef struct sio_bcast {
    wsx_sio *io;
    const wsx_sio_to *to;
    uint64_t mark;
    wsx__hub_pub *att; /* the attachments as the hub's publishes are: framed once for the
                          WebSocket recipients, their bytes shared by the polling ones */
    size_t n_att;
    ptrdiff_t delivered;
} sio_bcast;

/* Queues m on s unless the broadcast leaves s out. Returns 1 when queued. */
static int deliver_one(wsx_sio_socket *s, wsx_hub_msg *m)
{
    if (s->state != SOCK_CONNECTED || s->client->closing) return 0;
    wsx_sio *io = s->nsp->io;
    sio_bcast *b = m->ctx;
    /* ctx NULL: bytes from elsewhere (a relay's wsx_deliver_local), already a packet. */
    if (b) {
        if (b->io != io) return 0; /* another Socket.IO server on the same loop's hub */
        /* One delivery per broadcast, however many of its rooms the socket is in. */
        if (s->mark == b->mark) return 0;
        s->mark = b->mark;
        const wsx_sio_to *to = b->to;
        if (to->except_socket == s) return 0;
        for (size_t i = 0; i < to->n_except; i++)
            if (room_index(s, to->except_rooms[i]) >= 0) return 0;
        if (to->volatile_ && !io->ops->writable(s->client->sess)) return 0;
    }
    int rc = io->ops->send_msg(s->client->sess, m);
    /* Attachments: one binary message each, framed once for all recipients like the head. */
    for (size_t i = 0; b && i < b->n_att && (rc == 0 || rc == WSX_EBACKPRESSURE); i++)
        rc = io->ops->send_msg(s->client->sess, &b->att[i].msg);
    if (rc != 0 && rc != WSX_EBACKPRESSURE) return 0;
    if (b) b->delivered++;
    return 1;
}

/* A room's subscriber: one socket. */
static int deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    return deliver_one(user, m);
}

/* The namespace's subscriber: every socket of it, through the same message (so WebSocket
 * recipients share its one prepared frame). */
static int deliver_nsp(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    wsx_sio_nsp *n = user;
    const sio_bcast *b = m->ctx;
    if (b && b->io != n->io) return 0;
    int any = 0;
    for (wsx_sio_socket *s = n->sockets; s; s = s->nnext)
        any |= deliver_one(s, m);
    return any;
}

ptrdiff_t wsx_sio_broadcast(const wsx_sio_to *to, const char *event, json_t *args,
                            const wsx_sio_bin *bins, size_t n_bins)
{
    if (!to || !to->nsp || (to->n_rooms && !to->rooms) || (to->n_except && !to->except_rooms)) {
    inval:
        json_decref(args);
        return WSX_EINVAL;
    }
    for (size_t i = 0; i < to->n_rooms; i++)
        if (!to->rooms[i]) goto inval;
    for (size_t i = 0; i < to->n_except; i++)
        if (!to->except_rooms[i]) goto inval;
    wsx_sio_nsp *n = to->nsp;
    wsx_sio *io = n->io;
    json_t *data;
    int rc = event_payload(event, args, bins, n_bins, &data);
    if (rc < 0) return rc;
    if (io->cl) wsx__sio_cluster_relay(n, to, data, bins, n_bins);
    char offset[16];
    /* Recovery: one offset for every recipient (the bytes stay the same for all). */
    bool keep = io->o.recovery_ms && !to->volatile_;
    if (keep && (wsx__sio_offset_new(n, offset) < 0 ||
                 json_array_append_new(data, json_string(offset)) < 0)) {
        json_decref(data);
        return WSX_ENOMEM;
    }
    wsx__sio_packet p = {.type = WSX__SIO_EVENT,
                         .nsp = n->name,
                         .nsp_len = n->name_len,
                         .data = data,
                         .n_att = n_bins,
                         .att = (const wsx__sio_buf *)bins};
    /* The Engine.IO message type, then the packet: what a WebSocket text frame carries and
     * a polling record is (wsx_eio_send_msg). */
    wsx__strbuf buf = {0};
    rc = wsx__strbuf_add(&buf, "4", 1);
    if (rc == 0) rc = wsx__sio_encode(&buf, &p);
    json_decref(data);
    if (rc < 0) {
        wsx__strbuf_free(&buf);
        return rc;
    }
    if (keep)
        wsx__sio_ring_add(n, offset, buf.p + 1, buf.len - 1, bins, n_bins, to->rooms, to->n_rooms,
                          to->except_rooms, to->n_except,
                          to->except_socket ? to->except_socket->id : NULL);
    sio_bcast b = {.io = io, .to = to, .mark = ++io->mark, .n_att = n_bins};
    if (n_bins && !(b.att = calloc(n_bins, sizeof *b.att))) {
        wsx__strbuf_free(&buf);
        return WSX_ENOMEM;
    }
    for (size_t i = 0; i < n_bins; i++) {
        wsx__hub_pub *a = &b.att[i];
        a->msg = (wsx_hub_msg){
            .topic = n->topic, .data = bins[i].data, .len = bins[i].len, .type = WSX_BINARY};
        a->prepared = (wsx_prepared){
            .loop = io->loop, .data = bins[i].data, .len = bins[i].len, .type = WSX_BINARY};
        a->msg.prepared = &a->prepared;
    }
    ptrdiff_t rc2 = 0;
    if (!to->n_rooms) {
        rc2 = wsx_hub_publish(io->hub, n->topic, buf.p, buf.len, WSX_TEXT, NULL, &b);
    } else {
        char t[WSX__MAX_TOPIC + 1];
        for (size_t i = 0; i < to->n_rooms && rc2 >= 0; i++)
            if (room_topic(n, to->rooms[i], t) == 0)
                rc2 = wsx_hub_publish(io->hub, t, buf.p, buf.len, WSX_TEXT, NULL, &b);
    }
    for (size_t i = 0; i < b.n_att; i++) {
        wsx__prepared_clear(&b.att[i].prepared);
        wsx__hub_pub_clear(&b.att[i]);
    }
    free(b.att);
    wsx__strbuf_free(&buf);
    return rc2 < 0 ? rc2 : b.delivered;
}
