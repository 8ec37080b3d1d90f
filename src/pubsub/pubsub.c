/*
 * WebSocket subscribers on the hub (hub.c), and the framing they share: a publish frames the
 * message once into a shared reference-counted buffer (compressed once per window for the
 * connections on a shared compressor) and queues a slice of it on every subscriber's stream;
 * the buffer is freed when the last subscriber has written it. The same framing serves
 * prepared messages (wsx_prepare: one message for any set of connections) and the shared
 * byte buffers of streamed HTTP responses (wsx_bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "pubsub/pubsub.h"

/* Frames built by publishes on this thread: lets tests check "framed once per publish". */
_Thread_local uint64_t wsx__pubsub_frames_built;

static wsx__ref *frame_plain(const void *data, size_t len, int type)
{
    uint8_t hdr[WSX_MAX_HEADER];
    size_t hlen = wsx_frame_header(hdr, (uint8_t)(WSX_FIN | type), len, NULL);
    wsx__ref *ref = wsx__ref_new(hlen + len);
    if (!ref) return NULL;
    wsx__pubsub_frames_built++;
    memcpy(ref->data, hdr, hlen);
    if (len) memcpy(ref->data + hlen, data, len);
    return ref;
}

/* The compressed frame, or NULL when the message is not worth compressing (then the plain
 * frame is sent, which is always allowed). */
static wsx__ref *frame_compressed(const wsx__cfg *cfg, wsx_pmd *z, const void *data, size_t len,
                                  int type)
{
    wsx_pmd_buf *zb = wsx__compress_scratch(cfg);
    if (!zb || wsx_pmd_compress(z, data, len, zb) != 1) return NULL;
    size_t plen = zb->len - WSX_MAX_HEADER;
    uint8_t hdr[WSX_MAX_HEADER];
    size_t hlen = wsx_frame_header(hdr, (uint8_t)(WSX_FIN | WSX_RSV1 | type), plen, NULL);
    wsx__ref *ref = wsx__ref_new(hlen + plen);
    if (!ref) return NULL;
    wsx__pubsub_frames_built++;
    memcpy(ref->data, hdr, hlen);
    memcpy(ref->data + hlen, zb->data + WSX_MAX_HEADER, plen);
    return ref;
}

/* The frame to queue on c (plain or compressed as c allows), built on first use; NULL when
 * out of memory. */
static wsx__ref *frame_for(wsx_prepared *p, wsx_conn *c)
{
    unsigned w = wsx__conn_shared_window(c);
    if (w) {
        if (!(p->zip_tried & (1u << w))) {
            wsx_pmd *z = wsx__conn_compressor(c);
            if (z) {
                p->zip_tried |= (uint16_t)(1u << w);
                p->zipped[w] = frame_compressed(wsx__cfg_of(c), z, p->data, p->len, p->type);
            }
        }
        if (p->zipped[w]) return p->zipped[w];
    }
    if (!p->plain) p->plain = frame_plain(p->data, p->len, p->type);
    return p->plain;
}

void wsx__prepared_clear(wsx_prepared *p)
{
    wsx__ref_release(p->plain);
    for (int i = 0; i < 16; i++)
        wsx__ref_release(p->zipped[i]);
}

/* ---- WebSocket subscribers ---- */

/* A connection's subscriptions, attached to it (wsx__conn_ext) on its first subscribe; the
 * ws layer releases it after on_close, which ends them. */
typedef struct conn_subs {
    wsx__conn_ext ext;
    wsx_sub *list; /* through wsx_sub.olink */
} conn_subs;

/* Queues the message's shared frame on the connection: no copy per subscriber. */
static inline int ws_deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub;
    wsx_conn *c = user;
    if (!wsx__conn_is_open(c)) return 0;
    wsx_prepared *p = m->prepared;
    /* The common case, the plain frame already built, without a call. */
    wsx__ref *ref = p->plain && !wsx__conn_shared_window(c) ? p->plain : frame_for(p, c);
    if (!ref) return WSX_ENOMEM;
    if (wsx__conn_write_shared(c, ref, m->len) < 0) return 0;
    wsx__conn_check_queue(c);
    return 1;
}

/*
 * The publish walk of the hub (its rules are hub.c's: the topic is held, ended subscriptions
 * are skipped, the walk stops at the tail it saw). It lives here, next to ws_deliver, so the
 * common subscriber's delivery is inlined into it rather than called through a pointer.
 */
ptrdiff_t wsx_hub_publish(wsx_hub *h, const char *topic, const void *data, size_t len, int type,
                          const void *except, void *ctx)
{
    size_t tlen;
    if (!wsx__topic_name_ok(topic, &tlen) || (!data && len)) return WSX_EINVAL;
    if (type != WSX_TEXT && type != WSX_BINARY) return WSX_EINVAL;
    wsx__topic *t = wsx__hub_topic(h, topic, tlen);
    if (!t || t->n == 0) return 0;
    wsx__hub_pub p = {
        .msg = {.topic = t->name, .data = data, .len = len, .type = type, .ctx = ctx},
        .prepared = {.loop = h->loop, .data = data, .len = len, .type = type},
    };
    p.msg.prepared = &p.prepared;
    ptrdiff_t n = 0;
    wsx__topic_hold(t);
    for (wsx_sub *s = t->head, *end = t->tail; s; s = s->next) {
        if (s->cb && (!except || s->user != except)) {
            int rc =
                s->cb == ws_deliver ? ws_deliver(s, &p.msg, s->user) : s->cb(s, &p.msg, s->user);
            if (rc < 0) {
                n = rc;
                break;
            }
            n += rc > 0;
        }
        if (s == end) break;
    }
    wsx__topic_unhold(t);
    wsx__prepared_clear(&p.prepared);
    wsx__hub_pub_clear(&p);
    return n;
}

static void conn_subs_release(wsx_conn *c, wsx__conn_ext *e)
{
    (void)c;
    conn_subs *cs = (conn_subs *)(void *)e;
    while (cs->list) {
        wsx_sub *s = cs->list;
        cs->list = s->olink;
        wsx_hub_unsubscribe(s);
    }
    free(cs);
}

static conn_subs *subs_of(const wsx_conn *c)
{
    return (conn_subs *)(void *)wsx__conn_ext_find(c, conn_subs_release);
}

/* c's subscription to topic name[0..len), with the link that points at it. */
static wsx_sub **find_sub(conn_subs *cs, const char *name, size_t len)
{
    if (!cs) return NULL;
    for (wsx_sub **pp = &cs->list; *pp; pp = &(*pp)->olink) {
        const wsx__topic *t = (*pp)->topic;
        if (t->len == len && !memcmp(t->name, name, len)) return pp;
    }
    return NULL;
}

int wsx_subscribe(wsx_conn *c, const char *topic)
{
    size_t len;
    if (!c || !wsx__conn_server(c) || !wsx__topic_name_ok(topic, &len)) return WSX_EINVAL;
    if (!wsx__conn_is_open(c)) return WSX_EINVAL;
    wsx_hub *h = wsx_hub_of(wsx__conn_loop(c));
    if (!h) return WSX_ENOMEM;
    conn_subs *cs = subs_of(c);
    if (find_sub(cs, topic, len)) return 0;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return WSX_ENOMEM;
        cs->ext.release = conn_subs_release;
        wsx__conn_ext_add(c, &cs->ext);
    }
    wsx_sub *s;
    return wsx__hub_subscribe(h, topic, len, ws_deliver, c, &cs->list, &s);
}

int wsx_unsubscribe(wsx_conn *c, const char *topic)
{
    size_t len;
    if (!c || !wsx__conn_server(c) || !wsx__topic_name_ok(topic, &len)) return WSX_EINVAL;
    wsx_sub **pp = find_sub(subs_of(c), topic, len);
    if (!pp) return WSX_ENOTFOUND;
    wsx_sub *s = *pp;
    *pp = s->olink;
    wsx_hub_unsubscribe(s);
    return 0;
}

bool wsx_is_subscribed(const wsx_conn *c, const char *topic)
{
    size_t len;
    if (!c || !wsx__topic_name_ok(topic, &len)) return false;
    return find_sub(subs_of(c), topic, len) != NULL;
}

/* ---- publishing ---- */

static ptrdiff_t publish(wsx_server *s, const char *topic, const void *data, size_t len, int type,
                         const wsx_conn *except, bool hook)
{
    if (!s) return WSX_EINVAL;
    wsx_hub *h = wsx__hub_find(wsx__server_loop(s));
    ptrdiff_t n = wsx_hub_publish(h, topic, data, len, type, except, NULL);
    wsx_publish_hook fn;
    void *arg;
    wsx__hub_publish_hook(h, &fn, &arg);
    if (n >= 0 && hook && fn) fn(s, topic, data, len, type, arg);
    return n;
}

ptrdiff_t wsx_publish(wsx_server *s, const char *topic, const void *data, size_t len, int type)
{
    return publish(s, topic, data, len, type, NULL, true);
}

ptrdiff_t wsx_publish_except(wsx_server *s, const char *topic, const void *data, size_t len,
                             int type, const wsx_conn *except)
{
    return publish(s, topic, data, len, type, except, true);
}

ptrdiff_t wsx_deliver_local(wsx_server *s, const char *topic, const void *data, size_t len,
                            int type)
{
    return publish(s, topic, data, len, type, NULL, false);
}

typedef struct posted {
    wsx_server *s;
    bool local; /* deliver only, no publish hook */
    int type;
    size_t len;
    char *topic;
    uint8_t data[];
} posted;

static void run_posted(void *arg)
{
    posted *p = arg;
    publish(p->s, p->topic, p->data, p->len, p->type, NULL, !p->local);
    free(p);
}

static int post_publish(wsx_server *s, const char *topic, const void *data, size_t len, int type,
                        bool local)
{
    size_t tlen;
    if (!s || !wsx__topic_name_ok(topic, &tlen) || (!data && len)) return WSX_EINVAL;
    if (type != WSX_TEXT && type != WSX_BINARY) return WSX_EINVAL;
    posted *p = malloc(sizeof *p + len + tlen + 1);
    if (!p) return WSX_ENOMEM;
    p->s = s;
    p->local = local;
    p->type = type;
    p->len = len;
    if (len) memcpy(p->data, data, len);
    p->topic = (char *)p->data + len;
    memcpy(p->topic, topic, tlen + 1);
    /* A copy still queued when the loop is freed (a relay that arrived after the loop's last
     * run) is freed with it; a refused post frees it at once. */
    return wsx_loop_post_owned(wsx__server_loop(s), run_posted, p, free);
}

int wsx_publish_threadsafe(wsx_server *s, const char *topic, const void *data, size_t len, int type)
{
    return post_publish(s, topic, data, len, type, false);
}

int wsx_deliver_local_threadsafe(wsx_server *s, const char *topic, const void *data, size_t len,
                                 int type)
{
    return post_publish(s, topic, data, len, type, true);
}

size_t wsx_topic_subscribers(const wsx_server *s, const char *topic)
{
    return s ? wsx_hub_subscribers(wsx__hub_find(wsx__server_loop(s)), topic) : 0;
}

size_t wsx_topic_count(const wsx_server *s)
{
    return s ? wsx_hub_topics(wsx__hub_find(wsx__server_loop(s))) : 0;
}

size_t wsx_topic_foreach(wsx_server *s, const char *topic, wsx_topic_iter_cb cb, void *arg)
{
    size_t len, calls = 0;
    if (!s || !cb || !wsx__topic_name_ok(topic, &len)) return 0;
    wsx__topic *t = wsx__hub_topic(wsx__hub_find(wsx__server_loop(s)), topic, len);
    if (!t || !t->n) return 0;
    /* Held, so cb may end any subscription, the last one included. */
    wsx__topic_hold(t);
    for (wsx_sub *sub = t->head, *end = t->tail; sub; sub = sub->next) {
        if (sub->cb == ws_deliver) {
            calls++;
            if (cb(sub->user, arg)) break;
        }
        if (sub == end) break;
    }
    wsx__topic_unhold(t);
    return calls;
}

void wsx_server_set_publish_hook(wsx_server *s, wsx_publish_hook hook, void *arg)
{
    wsx_hub *h = s ? wsx_hub_of(wsx__server_loop(s)) : NULL;
    if (h) wsx__hub_set_publish_hook(h, hook, arg);
}

/* ---- prepared messages and shared bytes ---- */

int wsx_prepare(wsx_server *s, const void *data, size_t len, int type, wsx_prepared **out)
{
    if (!s || !out || (!data && len)) return WSX_EINVAL;
    if (type != WSX_TEXT && type != WSX_BINARY) return WSX_EINVAL;
    wsx_prepared *p = calloc(1, sizeof *p);
    if (!p) return WSX_ENOMEM;
    /* The plain frame is built at once: it holds the payload that compressed variants are
     * made from later, so the caller's buffer is not needed after this call. */
    if (!(p->plain = frame_plain(data, len, type))) {
        free(p);
        return WSX_ENOMEM;
    }
    p->loop = wsx__server_loop(s);
    p->len = len;
    p->type = type;
    p->data = p->plain->data + (p->plain->len - len);
    *out = p;
    return 0;
}

int wsx_send_prepared(wsx_conn *c, wsx_prepared *p)
{
    if (!c || !p || !wsx__conn_server(c) || wsx__conn_loop(c) != p->loop) return WSX_EINVAL;
    if (!wsx__conn_is_open(c)) return WSX_ECLOSED;
    wsx__ref *ref = frame_for(p, c);
    if (!ref) return WSX_ENOMEM;
    int rc = wsx__conn_write_shared(c, ref, p->len);
    if (rc < 0) return rc;
    return wsx__conn_check_queue(c);
}

size_t wsx_prepared_len(const wsx_prepared *p)
{
    return p ? p->len : 0;
}

void wsx_prepared_release(wsx_prepared *p)
{
    if (!p) return;
    wsx__prepared_clear(p);
    free(p);
}

wsx__ref *wsx__prepared_frame(const wsx_prepared *p, unsigned w)
{
    return w == 0 ? p->plain : w < 16 ? p->zipped[w] : NULL;
}

/* A wsx_bytes is a wsx__ref under another name: the stream queues slices of it as it
 * queues broadcast frames. */
static wsx__ref *bytes_ref(wsx_bytes *b)
{
    return (wsx__ref *)(void *)b;
}

int wsx_bytes_new(const void *data, size_t len, wsx_bytes **out)
{
    if (!out || !len) return WSX_EINVAL;
    wsx__ref *r = wsx__ref_new(len);
    if (!r) return WSX_ENOMEM;
    if (data) memcpy(r->data, data, len);
    *out = (wsx_bytes *)(void *)r;
    return 0;
}

uint8_t *wsx_bytes_data(wsx_bytes *b)
{
    return bytes_ref(b)->data;
}

size_t wsx_bytes_len(const wsx_bytes *b)
{
    return ((const wsx__ref *)(const void *)b)->len;
}

void wsx_bytes_release(wsx_bytes *b)
{
    wsx__ref_release(b ? bytes_ref(b) : NULL);
}
