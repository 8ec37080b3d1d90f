/*
 * The HTTP long-polling transport of Engine.IO sessions (engine.io transports/polling.js):
 * the handshake GET, the held GET (one per session) and the POST of packets. A POST's body
 * arrives whole (the route's max_body is maxPayload, so the http layer has refused a larger
 * Content-Length with 413 before reading it); two POSTs therefore never overlap here.
 */
#include <stdlib.h>
#include <string.h>

#include "eio/session.h"

/* The headers of every polling answer: the type, no caching, CORS. */
static size_t headers(wsx_eio *e, const wsx_http_req *r, const char *type, wsx_http_header *h)
{
    h[0] = (wsx_http_header){"Content-Type", 12, type, strlen(type)};
    h[1] = (wsx_http_header){"cache-control", 13, "no-store", 8};
    return 2 + wsx__eio_cors(e, r, h + 2);
}

static const char text_type[] = "text/plain; charset=UTF-8";

void wsx__eio_poll_handshake(wsx_eio *e, wsx_http_req *r, unsigned mark)
{
    wsx_eio_session *s = wsx__eio_session_new(e, EIO_T_POLLING, wsx_http_req_peer(r));
    if (!s) {
        wsx_http_respond(r, 500, NULL, 0, NULL, 0);
        return;
    }
    s->mark = (uint8_t)mark;
    char open[WSX__EIO_OPEN_MAX];
    ptrdiff_t n = wsx__eio_open_packet(s, open, sizeof open);
    wsx_http_header h[2 + WSX_CORS_MAX_HEADERS];
    size_t nh = headers(e, r, text_type, h);
    if (n < 0 || wsx_http_respond(r, 200, h, nh, open, (size_t)n) < 0) {
        wsx__eio_end(s, "transport error");
        return;
    }
    wsx__eio_opened(s);
}

void wsx__eio_poll_answer(wsx_eio_session *s, const char *body, size_t len)
{
    wsx_http_req *r = s->get;
    if (!r) return;
    s->get = NULL;
    wsx_http_header h[2 + WSX_CORS_MAX_HEADERS];
    size_t nh = headers(s->e, r, text_type, h);
    wsx_http_respond(r, 200, h, nh, body, len);
}

static size_t item_len(const eio_item *it)
{
    return it->binary ? 1 + wsx__base64_len(it->len) : it->len;
}

void wsx__eio_poll_flush(wsx_eio_session *s, bool close)
{
    if (!s->get) return;
    close = close || s->state == EIO_S_CLOSING;
    /* During an upgrade an empty answer is a noop: it releases the client's poll so that it
     * can pause polling and send "5" on the WebSocket. */
    bool noop = s->upgrading && !s->qhead && !close;
    if (!s->qhead && !close && !noop) return;
    size_t total = 0;
    for (const eio_item *it = s->qhead; it; it = it->next)
        total += item_len(it) + 1;
    if (close || noop) total += 2;
    uint8_t *body = malloc(total ? total : 1);
    if (!body) {
        wsx__eio_end(s, "transport error");
        return;
    }
    size_t off = 0;
    for (const eio_item *it = s->qhead; it; it = it->next) {
        if (off) body[off++] = WSX__EIO_SEP;
        if (it->binary) {
            body[off++] = 'b';
            off += wsx__base64_encode(body + off, it->p, it->len);
        } else {
            memcpy(body + off, it->p, it->len);
            off += it->len;
        }
    }
    if (close || noop) {
        if (off) body[off++] = WSX__EIO_SEP;
        body[off++] = close ? '1' : '6';
    }
    wsx__eio_queue_clear(s);
    wsx__eio_poll_answer(s, (const char *)body, off);
    free(body);
    if (close)
        wsx__eio_end(s, "forced close");
    else
        wsx__eio_drained(s);
}

/* The client went away while its GET was held: engine.io's "poll connection closed
 * prematurely", a transport error. */
static void get_gone(wsx_http_req *r, void *arg)
{
    wsx_eio_session *s = arg;
    if (s->get != r) return;
    s->get = NULL;
    wsx__eio_end(s, "transport error");
}

static void respond_empty(wsx_eio_session *s, wsx_http_req *r, int status)
{
    wsx_http_header h[WSX_CORS_MAX_HEADERS];
    size_t nh = wsx__eio_cors(s->e, r, h);
    wsx_http_respond(r, status, h, nh, NULL, 0);
}

static void poll_get(wsx_eio_session *s, wsx_http_req *r)
{
    if (s->get) {
        /* One GET at a time: the reference answers the new one 400 (no body), the held one
         * "1", and closes the session. */
        respond_empty(s, r, 400);
        wsx__eio_end(s, "transport error");
        return;
    }
    s->get = r;
    wsx_http_on_gone(r, get_gone, s);
    wsx__eio_poll_flush(s, false);
}

static void poll_post(wsx_eio_session *s, wsx_http_req *r)
{
    wsx_eio *e = s->e;
    const wsx_http_header *ct = wsx_http_req_header(r, "content-type");
    /* v4 payloads are text; engine.io refuses a binary body ("invalid content"). */
    if (ct && ct->value_len == 24 && !strncasecmp(ct->value, "application/octet-stream", 24)) {
        respond_empty(s, r, 400);
        wsx__eio_end(s, "transport error");
        return;
    }
    size_t len;
    const uint8_t *body = wsx_http_req_body(r, &len);
    if (wsx_http_req_body_too_big(r) || len > e->o.max_payload) {
        respond_empty(s, r, 413);
        wsx__eio_end(s, "transport error");
        return;
    }
    wsx__eio_payload d;
    wsx__eio_payload_init(&d, e->o.max_payload);
    size_t off = 0;
    for (;;) {
        wsx__eio_packet p;
        ptrdiff_t n = wsx__eio_payload_feed(&d, body + off, len - off, true, &p);
        if (n < 0) {
            wsx__eio_end(s, "parse error");
            break;
        }
        off += (size_t)n;
        if (p.type == WSX__EIO_NONE) break;
        wsx__eio_packet_in(s, &p);
        if (s->state == EIO_S_DEAD) break;
    }
    wsx__eio_payload_free(&d);
    /* Answered ok whatever the packets did, as the reference does (its answer does not
     * depend on them either). */
    wsx_http_header h[2 + WSX_CORS_MAX_HEADERS];
    size_t nh = headers(e, r, "text/html", h);
    wsx_http_respond(r, 200, h, nh, "ok", 2);
}

void wsx__eio_poll_request(wsx_eio_session *s, wsx_http_req *r)
{
    size_t ml;
    const char *m = wsx_http_req_method(r, &ml);
    if (ml == 3 && !memcmp(m, "GET", 3))
        poll_get(s, r);
    else if (ml == 4 && !memcmp(m, "POST", 4))
        poll_post(s, r);
    else
        respond_empty(s, r, 500);
}
