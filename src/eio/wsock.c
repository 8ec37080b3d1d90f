/*
 * The WebSocket transport of Engine.IO sessions, and the upgrade from polling (engine.io
 * socket.js maybeUpgrade): the probe connection must send "2probe", gets "3probe", the held
 * GET is released with a noop, and "5" moves the session to the WebSocket with its queue.
 *
 * A connection's user pointer is its session (or NULL once the session let go of it), so
 * a connection that outlives its session only finishes closing.
 */
#include <stdlib.h>
#include <string.h>

#include "eio/session.h"

/* What on_upgrade hands to on_open: a new session, or the sid of the session to upgrade
 * (looked up again at on_open: the session may have ended in between). */
typedef struct ticket {
    bool fresh;
    uint8_t mark; /* allow_request's */
    char sid[WSX__EIO_SID_LEN + 1];
} ticket;

int wsx__eio_ws_upgrade(wsx_server *srv, const wsx_http_req *r, void **conn_user, void *user)
{
    (void)srv;
    wsx_eio *e = user;
    if (e->freed) return 503;
    size_t ql;
    const char *qs = wsx_http_req_query(r, &ql);
    wsx__eio_query q;
    wsx__eio_query_parse(qs, ql, &q);
    wsx_eio_session *s;
    /* The reference answers these with its message as the body; the ws layer sends its own
     * short body with the same status (docs/socketio.md lists the difference). */
    if (wsx__eio_verify(e, &q, true, true, &s) >= 0) return 400;
    ticket *t = calloc(1, sizeof *t);
    if (!t) return 503;
    if (s) {
        memcpy(t->sid, s->sid, sizeof t->sid);
    } else {
        int st = wsx__eio_admit(e, wsx_http_req_peer(r));
        if (st) {
            free(t);
            return st;
        }
        if (e->o.allow_request) {
            st = e->o.allow_request(e, r, e->o.user);
            if (st < 0 || st > 255) {
                free(t);
                return st >= 400 && st <= 599 ? st : 403;
            }
            t->mark = (uint8_t)st;
        }
        t->fresh = true;
    }
    *conn_user = t;
    return 0;
}

void wsx__eio_ws_upgrade_failed(wsx_server *srv, void *conn_user, void *user)
{
    (void)srv;
    (void)user;
    free(conn_user);
}

static void drop(wsx_conn *c, int code, const char *why)
{
    wsx_conn_set_user(c, NULL);
    wsx_close(c, code, why);
}

void wsx__eio_ws_open(wsx_conn *c, void *user)
{
    wsx_eio *e = user;
    ticket *t = wsx_conn_user(c);
    ticket tk = *t;
    free(t);
    wsx_conn_set_user(c, NULL);
    if (e->freed) {
        drop(c, 1001, NULL);
        return;
    }
    if (tk.fresh) {
        char peer[64] = "-";
        wsx_conn_peer(c, peer, sizeof peer);
        wsx_eio_session *s =
            wsx__eio_admit(e, peer) ? NULL : wsx__eio_session_new(e, EIO_T_WEBSOCKET, peer);
        if (!s) {
            drop(c, 1013, "try again later");
            return;
        }
        s->ws = c;
        s->mark = tk.mark;
        wsx_conn_set_user(c, s);
        char open[WSX__EIO_OPEN_MAX];
        ptrdiff_t n = wsx__eio_open_packet(s, open, sizeof open);
        if (n < 0 || wsx_send(c, open, (size_t)n, WSX_TEXT) < 0) {
            wsx__eio_end(s, "transport error");
            return;
        }
        wsx__eio_opened(s);
        return;
    }
    wsx_eio_session *s = wsx__eio_find(e, tk.sid, WSX__EIO_SID_LEN);
    /* One upgrade per session: a second WebSocket, or one for a session already on
     * WebSocket, is closed (the reference closes it too). */
    if (!s || s->transport != EIO_T_POLLING || s->probe || s->state != EIO_S_OPEN) {
        drop(c, 0, NULL);
        return;
    }
    s->probe = c;
    wsx_conn_set_user(c, s);
    s->up_deadline = wsx_loop_now(e->loop) + e->o.upgrade_timeout_ms;
}

/* The upgrade did not happen: the probe is closed, the session stays on polling. */
static void probe_fail(wsx_eio_session *s)
{
    wsx_conn *c = s->probe;
    s->probe = NULL;
    s->upgrading = false;
    s->up_deadline = 0;
    if (c) drop(c, 0, NULL);
}

void wsx__eio_probe_timeout(wsx_eio_session *s)
{
    probe_fail(s);
}

int wsx__eio_ws_send_item(wsx_eio_session *s, const eio_item *it)
{
    int rc = wsx_send(s->ws, it->p, it->len, it->binary ? WSX_BINARY : WSX_TEXT);
    if (rc == WSX_EBACKPRESSURE) s->backpressure = true;
    return rc;
}

/* "5" on the probe: the WebSocket is the transport from now on. */
static void upgrade(wsx_eio_session *s)
{
    wsx_conn *c = s->probe;
    s->probe = NULL;
    s->upgrading = false;
    s->up_deadline = 0;
    /* A GET still held closes with the polling transport (the reference sends "1"). */
    if (s->get) wsx__eio_poll_answer(s, "1", 1);
    s->transport = EIO_T_WEBSOCKET;
    s->ws = c;
    for (eio_item *it = s->qhead; it && s->ws; it = it->next)
        if (wsx__eio_ws_send_item(s, it) == WSX_ECLOSED) break;
    wsx__eio_queue_clear(s);
    if (s->state == EIO_S_CLOSING)
        wsx__eio_end(s, "forced close");
    else if (!s->backpressure || wsx_buffered_amount(c) <= s->e->o.send_low_water)
        wsx__eio_drained(s);
}

static void probe_packet(wsx_eio_session *s, const wsx__eio_packet *p)
{
    if (p->type == WSX__EIO_PING && p->len == 5 && !memcmp(p->data, "probe", 5) && !s->upgrading) {
        if (wsx_send(s->probe, "3probe", 6, WSX_TEXT) < 0) {
            probe_fail(s);
            return;
        }
        s->upgrading = true;
        /* Release the held GET now (the reference checks every 100 ms): the client waits for
         * it before it sends "5". */
        wsx__eio_poll_flush(s, false);
    } else if (p->type == WSX__EIO_UPGRADE && s->upgrading) {
        upgrade(s);
    } else {
        probe_fail(s);
    }
}

void wsx__eio_ws_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    wsx_eio *e = user;
    wsx_eio_session *s = wsx_conn_user(c);
    if (!s || s->state == EIO_S_DEAD) return;
    bool probe = c == s->probe;
    wsx__eio_packet p;
    if (m->len > e->o.max_payload) {
        if (probe) {
            s->probe = NULL;
            probe_fail(s);
            drop(c, 1009, "message too big");
            return;
        }
        s->ws = NULL;
        drop(c, 1009, "message too big");
        wsx__eio_end(s, "transport error");
        return;
    }
    if (wsx__eio_decode_ws(m->data, m->len, m->type == WSX_BINARY, &p, NULL) < 0) {
        if (probe)
            probe_fail(s);
        else
            wsx__eio_end(s, "parse error");
        return;
    }
    if (probe)
        probe_packet(s, &p);
    else
        wsx__eio_packet_in(s, &p);
}

void wsx__eio_ws_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    (void)reason;
    (void)len;
    (void)user;
    wsx_eio_session *s = wsx_conn_user(c);
    if (!s) return;
    wsx_conn_set_user(c, NULL);
    if (c == s->probe) {
        s->probe = NULL;
        probe_fail(s);
    } else if (c == s->ws) {
        s->ws = NULL;
        bool clean = code == 1000 || code == 1001 || code == 1005 || code == 1006;
        wsx__eio_end(s, clean ? "transport close" : "transport error");
    }
}

void wsx__eio_ws_drain(wsx_conn *c, void *user)
{
    (void)user;
    wsx_eio_session *s = wsx_conn_user(c);
    if (s && c == s->ws) wsx__eio_drained(s);
}
