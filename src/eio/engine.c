/*
 * Engine.IO sessions: the route, the query checks, the session table, the heartbeat tick,
 * the ends of sessions and the API of wsx/eio.h (docs/socketio.md, "Engine.IO sessions").
 *
 * Sessions end in two steps: wsx__eio_end() takes the session out of the table and answers
 * or closes its transports at once, so the next request already gets "Session ID unknown";
 * on_close and the free run from the kick timer, never inside the call that ended it. A
 * send that passes the hard limit, a GET that overlaps another, a timeout: none of them
 * frees a session under a caller that still holds it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eio/session.h"
#include "net/net.h"
#include "proto/siphash.h"
#include "ws/ws.h"

static void kick_cb(wsx_timer *t, void *arg);

wsx_eio_opts wsx_eio_defaults(void)
{
    return (wsx_eio_opts){0};
}

static void resolve(wsx_eio_opts *o)
{
    if (!o->path) o->path = "/engine.io/";
    if (!o->ping_interval_ms) o->ping_interval_ms = 25000;
    if (!o->ping_timeout_ms) o->ping_timeout_ms = 20000;
    if (!o->upgrade_timeout_ms) o->upgrade_timeout_ms = 10000;
    if (!o->max_payload) o->max_payload = 1000000;
    if (!o->transports) o->transports = WSX_EIO_POLLING | WSX_EIO_WEBSOCKET;
    if (!o->max_sessions) o->max_sessions = 10000;
    if (!o->max_sessions_per_ip) o->max_sessions_per_ip = 256;
    if (!o->send_high_water) o->send_high_water = 1u << 20;
    if (!o->send_low_water) o->send_low_water = 256u << 10;
    if (!o->send_hard_limit) o->send_hard_limit = 16u << 20;
    if (!o->max_queued_bytes) o->max_queued_bytes = (size_t)256 << 20;
    if (o->send_low_water > o->send_high_water) o->send_low_water = o->send_high_water;
}

/* ---- the session table: SipHash of the sid under a random key (ids are the clients' to
 * choose when they guess, so the buckets must not be predictable) ---- */

static size_t bucket(const wsx_eio *e, const char *sid, size_t len)
{
    return (size_t)wsx__siphash(e->key, sid, len) & (e->nbuckets - 1);
}

wsx_eio_session *wsx__eio_find(wsx_eio *e, const char *sid, size_t len)
{
    if (len != WSX__EIO_SID_LEN || !e->buckets) return NULL;
    for (wsx_eio_session *s = e->buckets[bucket(e, sid, len)]; s; s = s->hnext)
        if (!memcmp(s->sid, sid, len)) return s;
    return NULL;
}

static int table_grow(wsx_eio *e)
{
    size_t n = e->nbuckets ? e->nbuckets * 2 : 64;
    wsx_eio_session **b = calloc(n, sizeof *b);
    if (!b) return WSX_ENOMEM;
    for (size_t i = 0; i < e->nbuckets; i++) {
        for (wsx_eio_session *s = e->buckets[i], *next; s; s = next) {
            next = s->hnext;
            size_t h = (size_t)wsx__siphash(e->key, s->sid, WSX__EIO_SID_LEN) & (n - 1);
            s->hnext = b[h];
            b[h] = s;
        }
    }
    free(e->buckets);
    e->buckets = b;
    e->nbuckets = n;
    return 0;
}

static void table_remove(wsx_eio *e, wsx_eio_session *s)
{
    wsx_eio_session **pp = &e->buckets[bucket(e, s->sid, WSX__EIO_SID_LEN)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp) *pp = s->hnext;
    if (s->prev)
        s->prev->next = s->next;
    else
        e->live = s->next;
    if (s->next) s->next->prev = s->prev;
    e->n--;
    wsx__eio_addr_remove(e, s->addr);
}

int wsx__eio_admit(wsx_eio *e, const char *peer)
{
    if (e->n >= e->o.max_sessions) return 503;
    uint8_t key[16];
    wsx__eio_addr_key(peer ? peer : "", key);
    if (wsx__eio_addr_count(e, key) >= e->o.max_sessions_per_ip) return 503;
    return 0;
}

static uint64_t now_ms(const wsx_eio *e)
{
    return wsx_loop_now(e->loop);
}

wsx_eio_session *wsx__eio_session_new(wsx_eio *e, int t, const char *peer)
{
    if (e->n + 1 > e->nbuckets && table_grow(e) < 0) return NULL;
    wsx_eio_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    /* 120 random bits never collide in practice; the loop keeps the table exact anyway. */
    for (int i = 0;; i++) {
        if (i == 4 || wsx__eio_sid_new(s->sid) < 0) {
            free(s);
            return NULL;
        }
        if (!wsx__eio_find(e, s->sid, WSX__EIO_SID_LEN)) break;
    }
    s->e = e;
    s->transport = (uint8_t)t;
    snprintf(s->peer, sizeof s->peer, "%s", peer ? peer : "-");
    wsx__eio_addr_key(s->peer, s->addr);
    if (wsx__eio_addr_add(e, s->addr) < 0) {
        free(s);
        return NULL;
    }
    s->qtail = &s->qhead;
    s->hb = EIO_HB_PING;
    s->deadline = now_ms(e) + e->o.ping_interval_ms;
    size_t h = bucket(e, s->sid, WSX__EIO_SID_LEN);
    s->hnext = e->buckets[h];
    e->buckets[h] = s;
    s->next = e->live;
    if (e->live) e->live->prev = s;
    e->live = s;
    e->n++;
    return s;
}

ptrdiff_t wsx__eio_open_packet(wsx_eio_session *s, char *out, size_t cap)
{
    const wsx_eio *e = s->e;
    wsx__eio_open o = {
        .sid = s->sid,
        .upgrade_ws = s->transport == EIO_T_POLLING && (e->o.transports & WSX_EIO_WEBSOCKET),
        .ping_interval = e->o.ping_interval_ms,
        .ping_timeout = e->o.ping_timeout_ms,
        .max_payload = e->o.max_payload,
    };
    return wsx__eio_open_write(out, cap, &o);
}

void wsx__eio_opened(wsx_eio_session *s)
{
    s->opened = true;
    if (s->e->o.on_open) s->e->o.on_open(s, s->e->o.user);
}

static void shared_release(eio_shared *sh)
{
    if (--sh->refs == 0) free(sh);
}

void wsx__eio_queue_clear(wsx_eio_session *s)
{
    for (eio_item *it = s->qhead, *next; it; it = next) {
        next = it->next;
        if (it->shared) shared_release(it->shared);
        free(it);
    }
    s->qhead = NULL;
    s->qtail = &s->qhead;
    s->e->qtotal -= s->qbytes;
    s->qbytes = 0;
}

void wsx__eio_kick(wsx_eio *e)
{
    if (e->kick || e->freed) return;
    /* Without memory for the timer the work waits for the next tick: the tick kicks too. */
    wsx_timer_start(e->loop, 0, 0, kick_cb, e, &e->kick);
}

static void detach_ws(wsx_conn *c)
{
    if (!c) return;
    wsx_conn_set_user(c, NULL);
    /* engine.io closes the socket without a status: the client sees 1005. */
    wsx_close(c, 0, NULL);
}

void wsx__eio_end(wsx_eio_session *s, const char *reason)
{
    if (s->state == EIO_S_DEAD) return;
    wsx_eio *e = s->e;
    table_remove(e, s);
    s->state = EIO_S_DEAD;
    s->reason = reason;
    if (s->get) wsx__eio_poll_answer(s, "1", 1);
    detach_ws(s->ws);
    detach_ws(s->probe);
    s->ws = s->probe = NULL;
    wsx__eio_queue_clear(s);
    s->dnext = e->dead;
    e->dead = s;
    wsx__eio_kick(e);
}

static void session_free(wsx_eio_session *s)
{
    wsx_eio *e = s->e;
    if (s->opened && e->o.on_close) e->o.on_close(s, s->reason, e->o.user);
    free(s);
}

void wsx__eio_want_flush(wsx_eio_session *s)
{
    if (s->flushing) return;
    s->flushing = true;
    s->fnext = s->e->flushq;
    s->e->flushq = s;
    wsx__eio_kick(s->e);
}

/* The kick: queued packets go to the held GETs (several sends of one iteration in one
 * answer), then the ended sessions get their on_close and are freed. on_close may send on
 * other sessions and end them: the loop runs until both lists are empty. */
static void kick_cb(wsx_timer *t, void *arg)
{
    (void)t;
    wsx_eio *e = arg;
    e->kick = NULL;
    for (unsigned round = 0; (e->flushq || e->dead) && round < 64; round++) {
        wsx_eio_session *f = e->flushq;
        e->flushq = NULL;
        while (f) {
            wsx_eio_session *next = f->fnext;
            f->flushing = false;
            f->fnext = NULL;
            if (f->state != EIO_S_DEAD) wsx__eio_poll_flush(f, false);
            f = next;
        }
        wsx_eio_session *d = e->dead;
        e->dead = NULL;
        while (d) {
            wsx_eio_session *next = d->dnext;
            session_free(d);
            d = next;
        }
    }
    if (e->flushq || e->dead) wsx__eio_kick(e);
}

/* The heartbeat and upgrade deadlines of every session, checked by one timer per engine
 * (a session holds two numbers, not two timers). Its period is a tenth of the shortest
 * timing, so a deadline is met within 10% (at least 10 ms, at most 1 s late). */
static void tick_cb(wsx_timer *t, void *arg)
{
    (void)t;
    wsx_eio *e = arg;
    uint64_t now = now_ms(e);
    for (wsx_eio_session *s = e->live, *next; s; s = next) {
        next = s->next;
        if (s->up_deadline && now >= s->up_deadline) wsx__eio_probe_timeout(s);
        if (now < s->deadline) continue;
        if (s->state == EIO_S_CLOSING) {
            wsx__eio_end(s, "forced close");
        } else if (s->hb == EIO_HB_PONG) {
            wsx__eio_end(s, "ping timeout");
        } else {
            s->hb = EIO_HB_PONG;
            s->hb_refreshed = false;
            s->deadline = now + e->o.ping_timeout_ms;
            wsx__eio_enqueue(s, WSX__EIO_PING, NULL, 0, false);
        }
    }
    if (e->flushq || e->dead) wsx__eio_kick(e);
}

/* ---- packets from the client ---- */

void wsx__eio_packet_in(wsx_eio_session *s, const wsx__eio_packet *p)
{
    wsx_eio *e = s->e;
    if (s->state == EIO_S_DEAD) return;
    /* engine.io refreshes the pong deadline once per ping on any other packet. */
    if (s->hb == EIO_HB_PONG && p->type != WSX__EIO_PONG && !s->hb_refreshed) {
        s->hb_refreshed = true;
        s->deadline = now_ms(e) + e->o.ping_timeout_ms;
    }
    switch (p->type) {
    case WSX__EIO_PONG:
        if (s->hb == EIO_HB_PONG && s->state == EIO_S_OPEN) {
            s->hb = EIO_HB_PING;
            s->deadline = now_ms(e) + e->o.ping_interval_ms;
        }
        break;
    case WSX__EIO_MESSAGE:
        if (s->state == EIO_S_OPEN && e->o.on_message)
            e->o.on_message(s, p->data, p->len, p->binary, e->o.user);
        break;
    case WSX__EIO_CLOSE:
        wsx__eio_end(s, "transport close");
        break;
    case WSX__EIO_PING:
        /* v4: only the server pings ("invalid heartbeat direction"). */
        wsx__eio_end(s, "transport error");
        break;
    default: /* open, upgrade, noop: nothing for the server to do */
        break;
    }
}

/* ---- queueing ---- */

/* Appends it to the polling queue (ownership taken), within the hard limit. */
static int push(wsx_eio_session *s, eio_item *it)
{
    wsx_eio *e = s->e;
    if (s->qbytes + it->len > e->o.send_hard_limit) {
        if (it->shared) shared_release(it->shared);
        free(it);
        wsx__eio_end(s, "transport error");
        return WSX_ECLOSED;
    }
    /* The engine's bound on all its queues together: the largest queues go first (as the
     * process-wide budget of WebSocket output does), so many sessions each under its own
     * limit cannot hold unbounded memory between them. */
    while (e->qtotal + it->len > e->o.max_queued_bytes && e->qtotal) {
        wsx_eio_session *big = s;
        for (wsx_eio_session *x = e->live; x; x = x->next)
            if (x->qbytes > big->qbytes) big = x;
        if (!big->qbytes && big == s) break;
        wsx__eio_end(big, "transport error");
        if (big == s) {
            if (it->shared) shared_release(it->shared);
            free(it);
            return WSX_ECLOSED;
        }
    }
    it->next = NULL;
    *s->qtail = it;
    s->qtail = &it->next;
    s->qbytes += it->len;
    e->qtotal += it->len;
    if (s->get) wsx__eio_want_flush(s);
    if (s->qbytes > e->o.send_high_water) {
        s->backpressure = true;
        return WSX_EBACKPRESSURE;
    }
    return 0;
}

int wsx__eio_enqueue(wsx_eio_session *s, uint8_t type, const void *data, size_t len, bool binary)
{
    if (s->state == EIO_S_DEAD) return WSX_ECLOSED;
    size_t n = len + (binary ? 0 : 1);
    if (s->transport == EIO_T_WEBSOCKET && s->ws) {
        int rc;
        if (binary) {
            rc = wsx_send(s->ws, data, len, WSX_BINARY);
        } else {
            /* The type digit goes in front of the text: one frame, built from a copy. */
            uint8_t stackbuf[512];
            uint8_t *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
            if (!buf) return WSX_ENOMEM;
            buf[0] = (uint8_t)('0' + type);
            if (len) memcpy(buf + 1, data, len);
            rc = wsx_send(s->ws, buf, n, WSX_TEXT);
            if (buf != stackbuf) free(buf);
        }
        if (rc == WSX_EBACKPRESSURE) s->backpressure = true;
        return rc;
    }
    eio_item *it = malloc(sizeof *it + n);
    if (!it) return WSX_ENOMEM;
    it->p = it->data;
    it->shared = NULL;
    it->binary = binary;
    it->len = n;
    if (!binary) it->data[0] = (uint8_t)('0' + type);
    if (len) memcpy(it->data + (binary ? 0 : 1), data, len);
    return push(s, it);
}

static void *form_make(const wsx_hub_msg *m, void *arg)
{
    (void)arg;
    eio_shared *sh = malloc(sizeof *sh + m->len);
    if (!sh) return NULL;
    sh->refs = 1; /* the publish's, dropped by form_release */
    sh->len = m->len;
    sh->binary = m->type == WSX_BINARY;
    memcpy(sh->data, m->data, m->len);
    return sh;
}

static void form_release(void *form, void *arg)
{
    (void)arg;
    shared_release(form);
}

static const wsx_hub_form shared_form = {form_make, form_release, NULL};

void wsx__eio_drained(wsx_eio_session *s)
{
    if (!s->backpressure || s->state == EIO_S_DEAD) return;
    s->backpressure = false;
    if (s->e->o.on_drain) s->e->o.on_drain(s, s->e->o.user);
}

/* ---- HTTP answers ---- */

size_t wsx__eio_cors(wsx_eio *e, const wsx_http_req *r, wsx_http_header *out)
{
    if (!e->o.n_cors_origins) return 0;
    return wsx_cors_headers(&e->cors, wsx_http_req_head(r), out);
}

void wsx__eio_http_error(wsx_eio *e, wsx_http_req *r, int status, int code)
{
    wsx_http_header h[1 + WSX_CORS_MAX_HEADERS] = {{"Content-Type", 12, "application/json", 16}};
    size_t n = 1 + wsx__eio_cors(e, r, h + 1);
    const char *body = wsx__eio_error_body(code);
    wsx_http_respond(r, status, h, n, body, strlen(body));
}

/* ---- the query ---- */

void wsx__eio_query_parse(const char *q, size_t len, wsx__eio_query *out)
{
    *out = (wsx__eio_query){0};
    const char *end = q ? q + len : NULL;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        if (eq) {
            size_t kl = (size_t)(eq - q), vl = (size_t)(pe - eq - 1);
            /* The first of repeated names counts. */
            if (kl == 9 && !memcmp(q, "transport", 9) && !out->transport) {
                out->transport = eq + 1;
                out->transport_len = vl;
            } else if (kl == 3 && !memcmp(q, "sid", 3) && !out->sid) {
                out->sid = eq + 1;
                out->sid_len = vl;
            } else if (kl == 3 && !memcmp(q, "EIO", 3) && !out->eio) {
                out->eio = eq + 1;
                out->eio_len = vl;
            }
        }
        q = amp ? amp + 1 : end;
    }
}

static bool is_str(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && !memcmp(p, want, n);
}

int wsx__eio_verify(wsx_eio *e, const wsx__eio_query *q, bool upgrade, bool get,
                    wsx_eio_session **sp)
{
    *sp = NULL;
    bool polling = is_str(q->transport, q->transport_len, "polling");
    bool ws = is_str(q->transport, q->transport_len, "websocket");
    if (!(polling && (e->o.transports & WSX_EIO_POLLING)) &&
        !(ws && (e->o.transports & WSX_EIO_WEBSOCKET)))
        return WSX__EIO_ERR_UNKNOWN_TRANSPORT;
    if (q->sid) {
        wsx_eio_session *s = wsx__eio_find(e, q->sid, q->sid_len);
        if (!s) return WSX__EIO_ERR_UNKNOWN_SID;
        /* A polling request for a session that moved to WebSocket (or started there). */
        if (!upgrade && (s->transport == EIO_T_WEBSOCKET) != ws) return WSX__EIO_ERR_BAD_REQUEST;
        if (upgrade && !ws) return WSX__EIO_ERR_BAD_REQUEST;
        *sp = s;
        return -1;
    }
    if (!get) return WSX__EIO_ERR_BAD_HANDSHAKE_METHOD;
    if (ws && !upgrade) return WSX__EIO_ERR_BAD_REQUEST;
    if (!is_str(q->eio, q->eio_len, "4")) return WSX__EIO_ERR_UNSUPPORTED_PROTOCOL_VERSION;
    return -1;
}

/* A request on the path without Upgrade: polling, or an error. */
static void on_request(wsx_http_req *r, void *user)
{
    wsx_eio *e = user;
    static const wsx_http_header retry = {"Retry-After", 11, "5", 1};
    if (e->freed) {
        wsx_http_respond(r, 503, &retry, 1, NULL, 0);
        return;
    }
    if (e->o.n_cors_origins && wsx_cors_is_preflight(wsx_http_req_head(r))) {
        wsx_cors_preflight(&e->cors, r);
        return;
    }
    size_t ql, ml;
    const char *qs = wsx_http_req_query(r, &ql);
    const char *m = wsx_http_req_method(r, &ml);
    wsx__eio_query q;
    wsx__eio_query_parse(qs, ql, &q);
    wsx_eio_session *s;
    int code = wsx__eio_verify(e, &q, false, ml == 3 && !memcmp(m, "GET", 3), &s);
    if (code >= 0) {
        wsx__eio_http_error(e, r, 400, code);
        return;
    }
    if (s) {
        wsx__eio_poll_request(s, r);
        return;
    }
    if (wsx__eio_admit(e, wsx_http_req_peer(r))) {
        wsx_http_respond(r, 503, &retry, 1, NULL, 0);
        return;
    }
    int st = e->o.allow_request ? e->o.allow_request(e, r, e->o.user) : 0;
    if (st < 0 || st > 255) {
        wsx__eio_http_error(e, r, st >= 400 && st <= 599 ? st : 403, WSX__EIO_ERR_FORBIDDEN);
        return;
    }
    wsx__eio_poll_handshake(e, r, (unsigned)st);
}

/* ---- the engine ---- */

static uint32_t tick_period(const wsx_eio_opts *o)
{
    uint32_t m = o->ping_interval_ms;
    if (o->ping_timeout_ms < m) m = o->ping_timeout_ms;
    if (o->upgrade_timeout_ms < m) m = o->upgrade_timeout_ms;
    m /= 10;
    return m < 10 ? 10 : m > 1000 ? 1000 : m;
}

int wsx_eio_attach(wsx_server *srv, const wsx_eio_opts *opts, wsx_eio **out)
{
    if (!srv || !opts || !out) return WSX_EINVAL;
    wsx_eio_opts o = *opts;
    resolve(&o);
    if (o.path[0] != '/' || (o.transports & ~(WSX_EIO_POLLING | WSX_EIO_WEBSOCKET)))
        return WSX_EINVAL;
    wsx_eio *e = calloc(1, sizeof *e);
    if (!e) return WSX_ENOMEM;
    e->srv = srv;
    e->loop = wsx__server_loop(srv);
    e->o = o;
    size_t pl = strlen(o.path);
    e->path = malloc(pl + 2);
    e->cors_origins = o.n_cors_origins ? calloc(o.n_cors_origins, sizeof(char *)) : NULL;
    int rc = WSX_ENOMEM;
    if (!e->path || (o.n_cors_origins && !e->cors_origins)) goto fail;
    /* The path and everything under it: the reference matches the prefix too. */
    memcpy(e->path, o.path, pl);
    memcpy(e->path + pl, "*", 2);
    e->o.path = NULL;
    for (size_t i = 0; i < o.n_cors_origins; i++)
        if (!(e->cors_origins[i] = strdup(o.cors_origins[i]))) goto fail;
    e->o.cors_origins = (const char *const *)e->cors_origins;
    e->cors = (wsx_cors_opts){.origins = e->o.cors_origins,
                              .n_origins = o.n_cors_origins,
                              .credentials = o.cors_credentials,
                              .methods = "GET, POST",
                              .headers = "content-type"};
    if ((rc = wsx_random_bytes((uint8_t *)e->key, sizeof e->key)) < 0) goto fail;
    rc = WSX_ENOMEM;
    if (table_grow(e) < 0) goto fail;
    uint32_t p = tick_period(&o);
    if (wsx_timer_start(e->loop, p, p, tick_cb, e, &e->tick) < 0) goto fail;
    wsx_ws_route_opts ro = {
        .on_upgrade = wsx__eio_ws_upgrade,
        .on_upgrade_failed = wsx__eio_ws_upgrade_failed,
        .on_open = wsx__eio_ws_open,
        .on_message = wsx__eio_ws_message,
        .on_close = wsx__eio_ws_close,
        .on_drain = wsx__eio_ws_drain,
        .on_request = on_request,
        .max_body = o.max_payload,
        .oversize_to_handler = true,
        .user = e,
    };
    if ((rc = wsx_server_ws_route(srv, e->path, &ro)) < 0) goto fail;
    *out = e;
    return 0;
fail:
    if (e->tick) wsx_timer_stop(e->tick);
    for (size_t i = 0; e->cors_origins && i < o.n_cors_origins; i++)
        free(e->cors_origins[i]);
    free(e->cors_origins);
    free(e->buckets);
    free(e->path);
    free(e);
    return rc;
}

/* A freed engine's route stays registered (routes live as long as their server) and answers
 * 503: the engine's struct is kept for it, on a list the loop frees with itself. */
typedef struct graveyard {
    wsx__loop_ext ext;
    wsx_eio *engines; /* through their buckets pointer, reused as a link */
} graveyard;

static const char graveyard_key = 0;

static void graveyard_free(wsx__loop_ext *x)
{
    graveyard *g = (graveyard *)(void *)x;
    for (wsx_eio *e = g->engines, *next; e; e = next) {
        next = (wsx_eio *)(void *)e->buckets;
        free(e);
    }
    free(g);
}

void wsx_eio_free(wsx_eio *e)
{
    if (!e || e->freed) return;
    while (e->live) {
        wsx_eio_session *s = e->live;
        wsx__eio_end(s, "server shutting down");
    }
    if (e->kick) wsx_timer_stop(e->kick);
    e->kick = NULL;
    wsx_timer_stop(e->tick);
    e->tick = NULL;
    e->freed = true;
    e->flushq = NULL;
    /* The ends above are final now: on_close runs here, not from a timer after the free. */
    while (e->dead) {
        wsx_eio_session *d = e->dead;
        e->dead = d->dnext;
        if (d->opened && e->o.on_close) d->opened = false, e->o.on_close(d, d->reason, e->o.user);
        free(d);
        /* on_close may have ended more (it cannot open any: the engine is freed). */
    }
    for (size_t i = 0; e->cors_origins && i < e->o.n_cors_origins; i++)
        free(e->cors_origins[i]);
    free(e->cors_origins);
    e->cors_origins = NULL;
    free(e->buckets);
    free(e->path);
    e->path = NULL;
    wsx__eio_addr_free(e);
    graveyard *g = (graveyard *)(void *)wsx__loop_ext_find(e->loop, &graveyard_key);
    if (!g && (g = calloc(1, sizeof *g))) {
        g->ext.key = &graveyard_key;
        g->ext.free_fn = graveyard_free;
        wsx__loop_ext_add(e->loop, &g->ext);
    }
    if (g) {
        e->buckets = (wsx_eio_session **)(void *)g->engines;
        g->engines = e;
    } else {
        /* No memory for the list: the struct is left for the route (a few hundred bytes
         * once per process at worst). */
        e->buckets = NULL;
    }
}

int wsx_eio_send(wsx_eio_session *s, const void *data, size_t len, bool binary)
{
    if (!s || (len && !data)) return WSX_EINVAL;
    if (s->state != EIO_S_OPEN) return WSX_ECLOSED;
    return wsx__eio_enqueue(s, WSX__EIO_MESSAGE, data, len, binary);
}

int wsx_eio_send_msg(wsx_eio_session *s, wsx_hub_msg *m)
{
    if (!s || !m || (m->type != WSX_TEXT && m->type != WSX_BINARY)) return WSX_EINVAL;
    bool binary = m->type == WSX_BINARY;
    if (!binary && (m->len < 1 || m->data[0] < '0' || m->data[0] > '6')) return WSX_EINVAL;
    if (s->state != EIO_S_OPEN) return WSX_ECLOSED;
    if (s->transport == EIO_T_WEBSOCKET && s->ws) {
        int rc = wsx_send_prepared(s->ws, m->prepared);
        if (rc == WSX_EBACKPRESSURE) s->backpressure = true;
        return rc;
    }
    /* Polling (or an upgrade in progress): the packet's bytes are made once per publish and
     * shared by every polling session's queue. */
    eio_shared *sh = m->len ? wsx_hub_msg_form(m, &shared_form) : NULL;
    if (sh) {
        eio_item *it = malloc(sizeof *it);
        if (!it) return WSX_ENOMEM;
        sh->refs++;
        *it = (eio_item){.p = sh->data, .len = sh->len, .binary = sh->binary, .shared = sh};
        return push(s, it);
    }
    if (binary) return wsx__eio_enqueue(s, WSX__EIO_MESSAGE, m->data, m->len, true);
    return wsx__eio_enqueue(s, (uint8_t)(m->data[0] - '0'), m->data + 1, m->len - 1, false);
}

size_t wsx_eio_buffered_amount(const wsx_eio_session *s)
{
    if (!s) return 0;
    return s->qbytes + (s->transport == EIO_T_WEBSOCKET && s->ws ? wsx_buffered_amount(s->ws) : 0);
}

bool wsx_eio_writable(const wsx_eio_session *s)
{
    if (!s || s->state != EIO_S_OPEN) return false;
    if (s->transport == EIO_T_WEBSOCKET)
        return s->ws && wsx_buffered_amount(s->ws) <= s->e->o.send_high_water;
    return s->get != NULL && !s->upgrading;
}

void wsx_eio_close(wsx_eio_session *s)
{
    if (!s || s->state != EIO_S_OPEN) return;
    if (s->transport == EIO_T_WEBSOCKET || s->get) {
        /* The queue goes first: the held GET gets it with "1"; a WebSocket sends its queue
         * before the close frame. */
        if (s->get) wsx__eio_poll_flush(s, true);
        wsx__eio_end(s, "forced close");
        return;
    }
    /* Polling without a GET: the next GET gets the queue and "1" (the reference's
     * shouldClose), or the session ends when the client never comes back. */
    s->state = EIO_S_CLOSING;
    s->deadline = now_ms(s->e) + s->e->o.ping_timeout_ms;
}

const char *wsx_eio_session_id(const wsx_eio_session *s)
{
    return s->sid;
}

const char *wsx_eio_session_transport(const wsx_eio_session *s)
{
    return s->transport == EIO_T_WEBSOCKET ? "websocket" : "polling";
}

unsigned wsx_eio_session_mark(const wsx_eio_session *s)
{
    return s ? s->mark : 0;
}

const char *wsx_eio_session_peer(const wsx_eio_session *s)
{
    return s->peer;
}

wsx_eio *wsx_eio_session_engine(const wsx_eio_session *s)
{
    return s->e;
}

wsx_server *wsx_eio_server(const wsx_eio *e)
{
    return e->srv;
}

void *wsx_eio_session_user(const wsx_eio_session *s)
{
    return s->user;
}

void wsx_eio_session_set_user(wsx_eio_session *s, void *user)
{
    s->user = user;
}

size_t wsx_eio_sessions(const wsx_eio *e)
{
    return e ? e->n : 0;
}
