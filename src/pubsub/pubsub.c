/*
 * Topics: a hash table of topic name -> subscriber list, per server. A publish frames the
 * message once into a shared reference-counted buffer and queues a slice of it on every
 * subscriber's stream; the buffer is freed when the last subscriber has written it. The same
 * framing serves prepared messages (wsx_prepare: one message for any set of connections) and
 * the shared byte buffers of streamed HTTP responses (wsx_bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "ws/ws.h"

#define MAX_TOPIC 1024

/* Frames built by publishes on this thread: lets tests check "framed once per publish". */
_Thread_local uint64_t wsx__pubsub_frames_built;

typedef struct wsx__topic {
    struct wsx__topic *hnext;
    struct wsx__sub *subs;
    size_t n;
    uint32_t hash;
    uint32_t len;
    char name[];
} wsx__topic;

/* One subscription: in its topic's list (doubly linked, for O(1) removal) and in its
 * connection's list. */
struct wsx__sub {
    wsx__topic *topic;
    wsx_conn *conn;
    struct wsx__sub *tnext, *tprev;
    struct wsx__sub *cnext;
};

struct wsx__pubsub {
    wsx__topic **buckets;
    size_t nbuckets;
    size_t ntopics;
    wsx_publish_hook hook;
    void *hook_arg;
};

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static void unsubscribe_all(wsx_conn *c);

static void pubsub_free(wsx_server *s)
{
    struct wsx__pubsub *ps = s->pubsub;
    if (!ps) return;
    for (size_t i = 0; i < ps->nbuckets; i++) {
        wsx__topic *t = ps->buckets[i];
        while (t) {
            wsx__topic *next = t->hnext;
            struct wsx__sub *sub = t->subs;
            while (sub) {
                struct wsx__sub *n = sub->tnext;
                free(sub);
                sub = n;
            }
            free(t);
            t = next;
        }
    }
    free(ps->buckets);
    free(ps);
    s->pubsub = NULL;
}

static struct wsx__pubsub *get_pubsub(wsx_server *s)
{
    if (s->pubsub) return s->pubsub;
    struct wsx__pubsub *ps = calloc(1, sizeof *ps);
    if (!ps) return NULL;
    ps->nbuckets = 64;
    ps->buckets = calloc(ps->nbuckets, sizeof *ps->buckets);
    if (!ps->buckets) {
        free(ps);
        return NULL;
    }
    s->pubsub = ps;
    s->unsubscribe_all = unsubscribe_all;
    s->pubsub_free = pubsub_free;
    return ps;
}

static bool valid_name(const char *topic, size_t *len)
{
    if (!topic) return false;
    *len = strnlen(topic, MAX_TOPIC + 1);
    return *len > 0 && *len <= MAX_TOPIC;
}

static wsx__topic *find(const struct wsx__pubsub *ps, const char *name, size_t len, uint32_t h)
{
    if (!ps) return NULL;
    for (wsx__topic *t = ps->buckets[h & (ps->nbuckets - 1)]; t; t = t->hnext)
        if (t->hash == h && t->len == len && !memcmp(t->name, name, len)) return t;
    return NULL;
}

static void grow(struct wsx__pubsub *ps)
{
    size_t nb = ps->nbuckets * 2;
    wsx__topic **b = calloc(nb, sizeof *b);
    if (!b) return; /* a fuller table is slower, not wrong */
    for (size_t i = 0; i < ps->nbuckets; i++) {
        wsx__topic *t = ps->buckets[i];
        while (t) {
            wsx__topic *next = t->hnext;
            t->hnext = b[t->hash & (nb - 1)];
            b[t->hash & (nb - 1)] = t;
            t = next;
        }
    }
    free(ps->buckets);
    ps->buckets = b;
    ps->nbuckets = nb;
}

static void drop_topic(struct wsx__pubsub *ps, wsx__topic *t)
{
    wsx__topic **pp = &ps->buckets[t->hash & (ps->nbuckets - 1)];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    ps->ntopics--;
    free(t);
}

int wsx_subscribe(wsx_conn *c, const char *topic)
{
    size_t len;
    if (!c || !wsx__conn_server(c) || !valid_name(topic, &len)) return WSX_EINVAL;
    if (c->state != WSX__OPEN) return WSX_EINVAL;
    struct wsx__pubsub *ps = get_pubsub(c->srv);
    if (!ps) return WSX_ENOMEM;
    uint32_t h = hash_name(topic, len);
    wsx__topic *t = find(ps, topic, len, h);
    if (t) {
        for (struct wsx__sub *s = c->subs; s; s = s->cnext)
            if (s->topic == t) return 0;
    }
    struct wsx__sub *sub = malloc(sizeof *sub);
    if (!sub) return WSX_ENOMEM;
    if (!t) {
        t = malloc(sizeof *t + len + 1);
        if (!t) {
            free(sub);
            return WSX_ENOMEM;
        }
        memcpy(t->name, topic, len + 1);
        t->len = (uint32_t)len;
        t->hash = h;
        t->subs = NULL;
        t->n = 0;
        if (ps->ntopics >= ps->nbuckets) grow(ps);
        t->hnext = ps->buckets[h & (ps->nbuckets - 1)];
        ps->buckets[h & (ps->nbuckets - 1)] = t;
        ps->ntopics++;
    }
    sub->topic = t;
    sub->conn = c;
    sub->tprev = NULL;
    sub->tnext = t->subs;
    if (t->subs) t->subs->tprev = sub;
    t->subs = sub;
    t->n++;
    sub->cnext = c->subs;
    c->subs = sub;
    return 0;
}

static void remove_sub(struct wsx__pubsub *ps, struct wsx__sub *sub)
{
    wsx__topic *t = sub->topic;
    if (sub->tprev)
        sub->tprev->tnext = sub->tnext;
    else
        t->subs = sub->tnext;
    if (sub->tnext) sub->tnext->tprev = sub->tprev;
    free(sub);
    if (--t->n == 0) drop_topic(ps, t);
}

int wsx_unsubscribe(wsx_conn *c, const char *topic)
{
    size_t len;
    if (!c || !wsx__conn_server(c) || !valid_name(topic, &len)) return WSX_EINVAL;
    struct wsx__pubsub *ps = c->srv->pubsub;
    for (struct wsx__sub **pp = &c->subs; *pp; pp = &(*pp)->cnext) {
        struct wsx__sub *s = *pp;
        if (s->topic->len == len && !memcmp(s->topic->name, topic, len)) {
            *pp = s->cnext;
            remove_sub(ps, s);
            return 0;
        }
    }
    return WSX_ENOTFOUND;
}

bool wsx_is_subscribed(const wsx_conn *c, const char *topic)
{
    size_t len;
    if (!c || !valid_name(topic, &len)) return false;
    for (const struct wsx__sub *s = c->subs; s; s = s->cnext)
        if (s->topic->len == len && !memcmp(s->topic->name, topic, len)) return true;
    return false;
}

static void unsubscribe_all(wsx_conn *c)
{
    struct wsx__pubsub *ps = c->srv->pubsub;
    while (c->subs) {
        struct wsx__sub *s = c->subs;
        c->subs = s->cnext;
        remove_sub(ps, s);
    }
}

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

/*
 * One message and the frames built from it so far: the plain frame, and per compressor
 * window a compressed one for connections that agreed to permessage-deflate without server
 * context takeover (they share the server's compressor, so one compressed frame suits them
 * all). A publish keeps one on the stack for the duration of the call (data borrowed from
 * the caller, frames built lazily); wsx_prepare() keeps one on the heap whose payload is
 * the plain frame's own, so it outlives the caller's buffer.
 */
struct wsx_prepared {
    wsx_loop *loop;
    const uint8_t *data;
    size_t len;
    int type;
    uint16_t zip_tried; /* bit w: compression for window w was tried */
    wsx__ref *plain;
    wsx__ref *zipped[16];
};

/* The frame to queue on c (plain or compressed as c allows), built on first use; NULL when
 * out of memory. */
static wsx__ref *frame_for(wsx_prepared *p, wsx_conn *c)
{
    if (c->dfl && c->dfl->params.server_no_context_takeover) {
        unsigned w = c->dfl->params.server_max_window_bits & 15;
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

static void prepared_clear(wsx_prepared *p)
{
    wsx__ref_release(p->plain);
    for (int i = 0; i < 16; i++)
        wsx__ref_release(p->zipped[i]);
}

static void count_out(wsx_server *s, uint64_t n, size_t len)
{
    s->stats.messages_out += n;
    s->stats.bytes_out += n * len;
}

static ptrdiff_t deliver(wsx_server *s, const char *topic, const void *data, size_t len, int type,
                         const wsx_conn *except)
{
    size_t tlen;
    if (!s || !valid_name(topic, &tlen) || (!data && len)) return WSX_EINVAL;
    if (type != WSX_TEXT && type != WSX_BINARY) return WSX_EINVAL;
    wsx__topic *t = find(s->pubsub, topic, tlen, hash_name(topic, tlen));
    if (!t || t->n == 0 || (t->n == 1 && t->subs->conn == except)) return 0;
    /* Framed once, lazily; every subscriber's queue holds a reference, not a copy. */
    wsx_prepared p = {.loop = s->loop, .data = data, .len = len, .type = type};
    ptrdiff_t n = 0;
    for (struct wsx__sub *sub = t->subs; sub; sub = sub->tnext) {
        wsx_conn *c = sub->conn;
        if (c == except || c->state != WSX__OPEN) continue;
        wsx__ref *ref = frame_for(&p, c);
        if (!ref) {
            n = WSX_ENOMEM;
            break;
        }
        if (wsx__stream_write_ref(&c->stream, ref, ref->data, ref->len) < 0) continue;
        n++;
        wsx__conn_check_queue(c);
    }
    prepared_clear(&p);
    if (n < 0) return n;
    count_out(s, (uint64_t)n, len);
    return n;
}

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
    p->loop = s->loop;
    p->len = len;
    p->type = type;
    p->data = p->plain->data + (p->plain->len - len);
    *out = p;
    return 0;
}

int wsx_send_prepared(wsx_conn *c, wsx_prepared *p)
{
    if (!c || !p || !wsx__conn_server(c) || wsx__conn_loop(c) != p->loop) return WSX_EINVAL;
    if (c->state != WSX__OPEN) return WSX_ECLOSED;
    wsx__ref *ref = frame_for(p, c);
    if (!ref) return WSX_ENOMEM;
    int rc = wsx__stream_write_ref(&c->stream, ref, ref->data, ref->len);
    if (rc < 0) return rc;
    count_out(c->srv, 1, p->len);
    return wsx__conn_check_queue(c);
}

size_t wsx_prepared_len(const wsx_prepared *p)
{
    return p ? p->len : 0;
}

void wsx_prepared_release(wsx_prepared *p)
{
    if (!p) return;
    prepared_clear(p);
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

static ptrdiff_t publish(wsx_server *s, const char *topic, const void *data, size_t len, int type,
                         const wsx_conn *except)
{
    ptrdiff_t n = deliver(s, topic, data, len, type, except);
    if (n >= 0 && s->pubsub && s->pubsub->hook)
        s->pubsub->hook(s, topic, data, len, type, s->pubsub->hook_arg);
    return n;
}

ptrdiff_t wsx_publish(wsx_server *s, const char *topic, const void *data, size_t len, int type)
{
    return publish(s, topic, data, len, type, NULL);
}

ptrdiff_t wsx_publish_except(wsx_server *s, const char *topic, const void *data, size_t len,
                             int type, const wsx_conn *except)
{
    return publish(s, topic, data, len, type, except);
}

ptrdiff_t wsx_deliver_local(wsx_server *s, const char *topic, const void *data, size_t len,
                            int type)
{
    return deliver(s, topic, data, len, type, NULL);
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
    if (p->local)
        wsx_deliver_local(p->s, p->topic, p->data, p->len, p->type);
    else
        wsx_publish(p->s, p->topic, p->data, p->len, p->type);
    free(p);
}

static int post_publish(wsx_server *s, const char *topic, const void *data, size_t len, int type,
                        bool local)
{
    size_t tlen;
    if (!s || !valid_name(topic, &tlen) || (!data && len)) return WSX_EINVAL;
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
    return wsx_loop_post_owned(s->loop, run_posted, p, free);
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
    size_t len;
    if (!s || !valid_name(topic, &len)) return 0;
    const wsx__topic *t = find(s->pubsub, topic, len, hash_name(topic, len));
    return t ? t->n : 0;
}

size_t wsx_topic_count(const wsx_server *s)
{
    return s && s->pubsub ? s->pubsub->ntopics : 0;
}

size_t wsx_topic_foreach(wsx_server *s, const char *topic, wsx_topic_iter_cb cb, void *arg)
{
    size_t len, calls = 0;
    if (!s || !cb || !valid_name(topic, &len)) return 0;
    wsx__topic *t = find(s->pubsub, topic, len, hash_name(topic, len));
    if (!t) return 0;
    /* The topic is freed if cb unsubscribes its last member: stop before touching it. */
    size_t left = t->n;
    struct wsx__sub *sub = t->subs;
    while (sub && left--) {
        struct wsx__sub *next = sub->tnext;
        calls++;
        if (cb(sub->conn, arg)) break;
        sub = next;
    }
    return calls;
}

void wsx_server_set_publish_hook(wsx_server *s, wsx_publish_hook hook, void *arg)
{
    struct wsx__pubsub *ps = get_pubsub(s);
    if (!ps) return;
    ps->hook = hook;
    ps->hook_arg = arg;
}
