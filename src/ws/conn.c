/*
 * The WebSocket connection state machine shared by the server and the client: reading
 * frames, reassembling messages, sending, the closing handshake, keepalive and deadlines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "ws/ws.h"

/* Masks for client frames (RFC 6455 5.3). One pool per thread: loops are single-threaded. */
static _Thread_local wsx_maskgen tl_masks = {.pos = sizeof tl_masks.pool};

int wsx__error(wsx_error *e, int rc, const char *detail)
{
    if (e) {
        e->code = rc;
        snprintf(e->detail, sizeof e->detail, "%s", detail ? detail : "");
    }
    return rc;
}

void wsx__conn_init(wsx_conn *c, const wsx__cfg *cfg)
{
    c->subprotocol = -1;
    wsx_parser_opts po = {
        .role = cfg->role,
        .max_frame = cfg->max_frame,
        .max_message = cfg->max_message,
        .max_fragments = cfg->max_fragments,
    };
    wsx_parser_init(&c->parser, &po);
}

/* ---- sending ---- */

static int send_frame(wsx_conn *c, uint8_t b0, const uint8_t *data, size_t len)
{
    uint8_t hdr[WSX_MAX_HEADER];
    if (wsx__cfg_of(c)->role == WSX_ROLE_SERVER) {
        size_t hlen = wsx_frame_header(hdr, b0, len, NULL);
        struct iovec iov[2] = {{hdr, hlen}, {(void *)data, len}};
        return wsx__stream_write(&c->stream, iov, len ? 2 : 1);
    }
    uint8_t key[4];
    if (wsx_maskgen_next(&tl_masks, key) < 0) return WSX_ECRYPTO;
    size_t hlen = wsx_frame_header(hdr, b0, len, key);
    /* The caller's bytes are not ours to mask in place: mask a copy. */
    uint8_t small[4096];
    uint8_t *tmp = len <= sizeof small ? small : malloc(len);
    if (!tmp) return WSX_ENOMEM;
    if (len) memcpy(tmp, data, len);
    wsx_mask(tmp, len, key, 0);
    struct iovec iov[2] = {{hdr, hlen}, {tmp, len}};
    int rc = wsx__stream_write(&c->stream, iov, len ? 2 : 1);
    if (tmp != small) free(tmp);
    return rc;
}

/* Drops c with 1008 when its queue passed the hard limit. Returns whether it did. */
static bool over_hard_limit(wsx_conn *c)
{
    size_t q = wsx__stream_queued(&c->stream);
    if (q <= wsx__cfg_of(c)->hard_limit) return false;
    wsx__conn_log(c, WSX_LOG_WARN, "send queue at %zu bytes, over the hard limit: closing (1008)",
                  q);
    if (wsx__cfg_of(c)->stats) wsx__cfg_of(c)->stats->hard_limit_closes++;
    wsx__conn_drop(c, WSX_CLOSE_POLICY, "send queue over its hard limit");
    return true;
}

/* Queues a control frame the library sends on its own (pong, keepalive ping, close): it
 * counts against the hard limit like any other byte, but raises no backpressure, which is
 * the application's business. Returns 0, WSX_ECLOSED (dropped) or a write error. */
static int send_control(wsx_conn *c, uint8_t b0, const uint8_t *data, size_t len)
{
    int rc = send_frame(c, b0, data, len);
    if (rc < 0) return rc;
    return over_hard_limit(c) ? WSX_ECLOSED : 0;
}

/* Applies the queue limits after something was queued. */
int wsx__conn_check_queue(wsx_conn *c)
{
    if (over_hard_limit(c)) return WSX_ECLOSED;
    size_t q = wsx__stream_queued(&c->stream);
    if (q > wsx__cfg_of(c)->high_water) {
        if (!(c->flags & WSX__F_DRAIN)) wsx__stream_want_drain(&c->stream, true);
        c->flags |= WSX__F_DRAIN;
        return WSX_EBACKPRESSURE;
    }
    return 0;
}

/* ---- permessage-deflate ---- */

wsx_pmd_buf *wsx__compress_scratch(const wsx__cfg *cfg)
{
    wsx_pmd_buf *b = cfg->zscratch;
    /* A large message leaves a large buffer behind: give it back rather than keep it. */
    if (b->cap > (1u << 20)) wsx_pmd_buf_free(b);
    if (b->cap < 4096) {
        uint8_t *d = realloc(b->data, 4096);
        if (!d) return NULL;
        b->data = d;
        b->cap = 4096;
    }
    b->len = WSX_MAX_HEADER;
    return b;
}

int wsx__conn_start_deflate(wsx_conn *c, const wsx_pmd_params *params)
{
    wsx__dfl *d = calloc(1, sizeof *d);
    if (!d) return WSX_ENOMEM;
    if (wsx_pmd_init(&d->pmd, wsx__cfg_of(c)->role, params, &wsx__cfg_of(c)->pmd) < 0) {
        free(d);
        return WSX_EINVAL;
    }
    d->params = *params;
    c->dfl = d;
    wsx_parser_set_rsv(&c->parser, WSX_RSV1);
    /* On the wire a compressed message may be larger than the message itself: zlib grows
     * incompressible data by up to ~0.2% with small windows. The real bound is on the
     * inflated size, enforced while inflating; this one only stops absurd frames early. */
    uint64_t slack_frame = wsx__cfg_of(c)->max_frame + (wsx__cfg_of(c)->max_frame >> 3) + 1024;
    uint64_t slack_msg = wsx__cfg_of(c)->max_message + (wsx__cfg_of(c)->max_message >> 3) + 1024;
    wsx_parser_set_limits(&c->parser, slack_frame, slack_msg);
    return 0;
}

bool wsx_conn_deflate(const wsx_conn *c)
{
    return c->dfl != NULL;
}

wsx_pmd *wsx__conn_compressor(wsx_conn *c)
{
    wsx__dfl *d = c->dfl;
    if (!d) return NULL;
    if (!wsx__conn_server(c) || !d->params.server_no_context_takeover) return &d->pmd;
    unsigned w = d->params.server_max_window_bits < 9 ? 9 : d->params.server_max_window_bits;
    wsx_pmd **slot = &c->srv->shared_pmd[w];
    if (!*slot) {
        wsx_pmd *z = calloc(1, sizeof *z);
        wsx_pmd_params p = {.server_no_context_takeover = true,
                            .server_max_window_bits = (uint8_t)w,
                            .client_max_window_bits = 15};
        if (!z || wsx_pmd_init(z, WSX_ROLE_SERVER, &p, &wsx__cfg_of(c)->pmd) < 0) {
            free(z);
            return &d->pmd;
        }
        *slot = z;
    }
    return *slot;
}

static void free_deflate(wsx_conn *c)
{
    if (!c->dfl) return;
    wsx_pmd_free(&c->dfl->pmd);
    wsx_pmd_buf_free(&c->dfl->msg);
    free(c->dfl);
    c->dfl = NULL;
}

int wsx_send(wsx_conn *c, const void *data, size_t len, int type)
{
    if (!c || (type != WSX_TEXT && type != WSX_BINARY) || (!data && len)) return WSX_EINVAL;
    if (c->state != WSX__OPEN) return WSX_ECLOSED;
    int rc;
    wsx_pmd *z = wsx__conn_compressor(c);
    wsx_pmd_buf *zb = z ? wsx__compress_scratch(wsx__cfg_of(c)) : NULL;
    if (zb && wsx_pmd_compress(z, data, len, zb) == 1) {
        /* RFC 7692 6: RSV1 marks the message as compressed. */
        rc = send_frame(c, (uint8_t)(WSX_FIN | WSX_RSV1 | type), zb->data + WSX_MAX_HEADER,
                        zb->len - WSX_MAX_HEADER);
    } else {
        rc = send_frame(c, (uint8_t)(WSX_FIN | type), data, len);
    }
    if (rc < 0) return rc;
    if (wsx__cfg_of(c)->stats) {
        wsx__cfg_of(c)->stats->messages_out++;
        wsx__cfg_of(c)->stats->bytes_out += len;
    }
    return wsx__conn_check_queue(c);
}

int wsx_ping(wsx_conn *c, const void *data, size_t len)
{
    if (!c || len > WSX_MAX_CONTROL || (!data && len)) return WSX_EINVAL;
    if (c->state != WSX__OPEN) return WSX_ECLOSED;
    int rc = send_frame(c, WSX_FIN | WSX_OP_PING, data, len);
    if (rc < 0) return rc;
    return wsx__conn_check_queue(c);
}

size_t wsx_buffered_amount(const wsx_conn *c)
{
    return wsx__stream_queued(&c->stream);
}

void *wsx_conn_user(const wsx_conn *c)
{
    return c->user;
}

void wsx_conn_set_user(wsx_conn *c, void *user)
{
    c->user = user;
}

int wsx_conn_peer(const wsx_conn *c, char *buf, size_t cap)
{
    return wsx__stream_peer(&c->stream, buf, cap);
}

const char *wsx_conn_subprotocol(const wsx_conn *c)
{
    return c->subprotocol >= 0 ? wsx__cfg_of(c)->subprotocols[c->subprotocol] : NULL;
}

wsx_server *wsx_conn_server(const wsx_conn *c)
{
    return wsx__conn_server(c);
}

wsx_client *wsx_conn_client(const wsx_conn *c)
{
    return (c->flags & WSX__F_CLIENT) ? c->cli : NULL;
}

/* ---- deadlines ---- */

void wsx__conn_deadline(wsx_conn *c, uint32_t ms)
{
    if (ms == UINT32_MAX) {
        c->flags &= (uint16_t)~WSX__F_DEADLINE;
        return;
    }
    c->deadline = wsx__now32(wsx__conn_loop(c)) + ms;
    c->flags |= WSX__F_DEADLINE;
    if (c->flags & WSX__F_CLIENT)
        wsx__client_deadline_set(c->cli, ms);
    else
        wsx__server_deadline_set(c->srv, ms);
}

bool wsx__conn_due(wsx_conn *c, uint32_t now)
{
    /* Wrapping comparison: right for deadlines less than 24 days away. */
    if (!(c->flags & WSX__F_DEADLINE) || (int32_t)(now - c->deadline) < 0) return false;
    c->flags &= (uint16_t)~WSX__F_DEADLINE;
    return true;
}

/* ---- closing ---- */

static void keep_reason(wsx_conn *c, uint16_t code, const char *reason, size_t len)
{
    c->close_code = code;
    free(c->close_reason);
    c->close_reason = NULL;
    c->close_reason_len = 0;
    if (len > WSX_MAX_CONTROL - 2) len = WSX_MAX_CONTROL - 2;
    if (len && (c->close_reason = malloc(len))) {
        memcpy(c->close_reason, reason, len);
        c->close_reason_len = (uint8_t)len;
    }
}

/* RFC 6455 7.1.1: the server closes the TCP connection first; the client waits for it
 * (bounded by the close timeout) and closes only if the server does not. */
static void finish_tcp(wsx_conn *c)
{
    if (c->state == WSX__DEAD) return; /* the close frame passed the hard limit */
    c->state = WSX__CLOSE_WAIT;
    if (wsx__cfg_of(c)->role == WSX_ROLE_SERVER) wsx__stream_shutdown_write(&c->stream);
    wsx__conn_deadline(c, wsx__cfg_of(c)->close_ms);
}

static int send_close(wsx_conn *c, uint16_t code, const char *reason, size_t len)
{
    uint8_t pl[WSX_MAX_CONTROL];
    size_t n = wsx_close_payload(pl, code == WSX_CLOSE_NO_STATUS ? 0 : code, reason, len);
    c->flags |= WSX__F_CLOSE_SENT;
    return send_control(c, WSX_FIN | WSX_OP_CLOSE, pl, n);
}

int wsx__conn_start_close(wsx_conn *c, uint16_t code, const char *reason, size_t len)
{
    if (c->state != WSX__OPEN) return WSX_ECLOSED;
    keep_reason(c, code ? code : WSX_CLOSE_NO_STATUS, reason, len);
    if (send_close(c, code, reason, len) == WSX_ECLOSED && c->state == WSX__DEAD) return 0;
    c->state = WSX__CLOSING;
    wsx__conn_deadline(c, wsx__cfg_of(c)->close_ms);
    return 0;
}

int wsx_close(wsx_conn *c, int code, const char *reason)
{
    if (!c) return WSX_EINVAL;
    if (code != 0 && !wsx_close_code_valid((unsigned)code)) return WSX_EINVAL;
    return wsx__conn_start_close(c, (uint16_t)code, reason, reason ? strlen(reason) : 0);
}

void wsx__conn_drop(wsx_conn *c, uint16_t code, const char *why)
{
    if (c->state == WSX__DEAD) return;
    if (!(c->flags & WSX__F_CLOSE_SENT) && !(c->flags & WSX__F_CLOSE_RCVD))
        keep_reason(c, code, why, why ? strlen(why) : 0);
    c->state = WSX__DEAD;
    wsx__conn_deadline(c, UINT32_MAX);
    wsx__stream_close(&c->stream);
}

/* Fails the connection (RFC 6455 7.1.7): a close frame with the code, then TCP closes. */
static void fail(wsx_conn *c, uint16_t code, const char *why)
{
    wsx__conn_log(c, WSX_LOG_INFO, "closing with %u: %s", code, why);
    if (!(c->flags & WSX__F_CLOSE_SENT)) {
        keep_reason(c, code, why, strlen(why));
        send_close(c, code, why, strlen(why));
    }
    finish_tcp(c);
}

/* ---- receiving ---- */

static void deliver(wsx_conn *c, const uint8_t *data, size_t len, int type)
{
    if (wsx__cfg_of(c)->stats) {
        wsx__cfg_of(c)->stats->messages_in++;
        wsx__cfg_of(c)->stats->bytes_in += len;
    }
    const wsx__ws_cbs *cb = wsx__conn_cbs(c);
    if (!cb->on_message) return;
    wsx_msg m = {data, len, type};
    cb->on_message(c, &m, cb->user);
}

static void on_compressed(wsx_conn *c, const wsx_event *ev)
{
    wsx__dfl *d = c->dfl;
    if (ev->first) d->msg.len = 0;
    int rc = wsx_pmd_inflate(&d->pmd, ev->data, ev->len, ev->last, ev->opcode == WSX_OP_TEXT,
                             wsx__cfg_of(c)->max_message, &d->msg);
    if (rc < 0) {
        const char *why = wsx_pmd_error(&d->pmd);
        fail(c, wsx_err_close_code(rc), why ? why : "cannot inflate the message");
        return;
    }
    if (!ev->last) return;
    deliver(c, d->msg.data, d->msg.len, ev->opcode);
    /* An idle connection keeps no large inflate buffer. */
    if (c->dfl && c->dfl->msg.cap > (64u << 10)) wsx_pmd_buf_free(&c->dfl->msg);
}

static void on_data(wsx_conn *c, const wsx_event *ev)
{
    /* Data that arrives after we sent a close is still delivered (as browsers do): it was
     * sent before the peer saw our close. */
    if (c->state != WSX__OPEN && c->state != WSX__CLOSING) return;
    if (ev->compressed) {
        on_compressed(c, ev);
        return;
    }
    /* With permessage-deflate the parser's limits leave room for compression overhead;
     * an uncompressed message is held to the real limit here. */
    if (c->dfl) {
        size_t so_far = (ev->first || !c->msg ? 0 : c->msg->len) + ev->len;
        if (so_far > wsx__cfg_of(c)->max_message) {
            fail(c, WSX_CLOSE_TOO_BIG, "message exceeds the size limit");
            return;
        }
    }
    if (ev->first && ev->last) {
        deliver(c, ev->data, ev->len, ev->opcode);
        return;
    }
    if (!c->msg && !(c->msg = calloc(1, sizeof *c->msg))) {
        fail(c, WSX_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    wsx_pmd_buf *b = c->msg;
    if (b->len + ev->len > b->cap) {
        /* Sized for the whole current frame at once (its remaining length is known from
         * its header), so a large message is not copied over and over as it grows. */
        size_t frame_end = b->len + ev->len + (size_t)c->parser.remaining;
        size_t cap = b->cap ? b->cap : 4096;
        if (cap < frame_end) cap = frame_end;
        while (cap < b->len + ev->len)
            cap *= 2;
        if (cap > wsx__cfg_of(c)->max_message && b->len + ev->len <= wsx__cfg_of(c)->max_message)
            cap = wsx__cfg_of(c)->max_message;
        uint8_t *m = realloc(b->data, cap);
        if (!m) {
            fail(c, WSX_CLOSE_INTERNAL_ERROR, "out of memory");
            return;
        }
        b->data = m;
        b->cap = cap;
    }
    if (ev->len) memcpy(b->data + b->len, ev->data, ev->len);
    b->len += ev->len;
    if (ev->last) {
        deliver(c, b->data, b->len, ev->opcode);
        /* A connection that is idle holds no message buffer. */
        if (c->msg) {
            wsx_pmd_buf_free(c->msg);
            free(c->msg);
            c->msg = NULL;
        }
    }
}

static void on_close_frame(wsx_conn *c, const wsx_event *ev)
{
    c->flags |= WSX__F_CLOSE_RCVD;
    if (!(c->flags & WSX__F_CLOSE_SENT)) {
        keep_reason(c, ev->close_code, (const char *)ev->data, ev->len);
        /* RFC 6455 5.5.1: answer with a close frame, echoing the code. */
        send_close(c, ev->close_code, NULL, 0);
    } else if (ev->close_code != WSX_CLOSE_NO_STATUS && ev->close_code != c->close_code) {
        /* An answer to our close echoes our code (5.5.1) or carries none. Another code means
         * the peer started closing on its own and the two close frames crossed (7.1.3: both
         * then count as started): its code says what happened on its side (a 1007 for our
         * last message, say), which the application must not lose under our 1000. */
        keep_reason(c, ev->close_code, (const char *)ev->data, ev->len);
    }
    finish_tcp(c);
}

/* A peer that pings and never reads would make us queue a pong per ping without bound. RFC
 * 6455 5.5.3 lets an endpoint that has not yet sent the pongs to earlier pings answer only
 * one: while the queue is blocked (the kernel took no more at the last write) and holds one
 * of our pongs, a ping is answered by that pong, and a peer that keeps pinging without
 * reading is dropped. Blocked is the cheap, conservative sign that the pong was not sent:
 * the queue may have passed it already, but then the peer is not keeping up anyway. */
static void answer_ping(wsx_conn *c, const wsx_event *ev)
{
    const wsx__cfg *cfg = wsx__cfg_of(c);
    if ((c->flags & WSX__F_PONGQ) && wsx__stream_blocked(&c->stream)) {
        if (c->pings_coalesced < UINT16_MAX) c->pings_coalesced++;
        if (cfg->max_coalesced_pings && c->pings_coalesced > cfg->max_coalesced_pings) {
            wsx__conn_log(c, WSX_LOG_WARN,
                          "%u pings while our pong is queued and the peer does not read: "
                          "closing (1008)",
                          (unsigned)c->pings_coalesced);
            wsx__conn_drop(c, WSX_CLOSE_POLICY, "too many pings while a pong is queued");
        }
        return;
    }
    if (send_control(c, WSX_FIN | WSX_OP_PONG, ev->data, ev->len) == 0) c->flags |= WSX__F_PONGQ;
}

/* Our pongs left the queue: it was written out since, and the coalescing count restarts. */
static void pongs_sent(wsx_conn *c)
{
    c->flags &= (uint16_t)~WSX__F_PONGQ;
    c->pings_coalesced = 0;
}

static void handle(wsx_conn *c, const wsx_event *ev)
{
    switch (ev->type) {
    case WSX_EV_DATA:
        on_data(c, ev);
        break;
    case WSX_EV_PING:
        /* RFC 6455 5.5.2: answer with a pong carrying the same data, unless closing. */
        if (!(c->flags & WSX__F_CLOSE_SENT)) answer_ping(c, ev);
        break;
    case WSX_EV_PONG:
        if (wsx__cfg_of(c)->on_pong && (c->state == WSX__OPEN || c->state == WSX__CLOSING))
            wsx__cfg_of(c)->on_pong(c, ev->data, ev->len, wsx__cfg_of(c)->user);
        break;
    case WSX_EV_CLOSE:
        on_close_frame(c, ev);
        break;
    default:
        break;
    }
}

/* Parses buf[0..len) until it is used up, more bytes are needed, or the connection stops
 * reading. Returns the bytes consumed; *stop is set when nothing more is to be parsed. */
static size_t parse(wsx_conn *c, uint8_t *buf, size_t len, bool *stop)
{
    size_t off = 0;
    *stop = false;
    while (off < len) {
        if (c->state >= WSX__CLOSE_WAIT) {
            *stop = true;
            return len;
        }
        wsx_event ev;
        ptrdiff_t n = wsx_parser_feed(&c->parser, buf + off, len - off, &ev);
        if (n < 0) {
            fail(c, wsx_parser_close_code(&c->parser), wsx_parser_error(&c->parser));
            *stop = true;
            return len;
        }
        off += (size_t)n;
        if (ev.type != WSX_EV_NONE) handle(c, &ev);
        if (n == 0) break;
    }
    return off;
}

static void keep_rest(wsx_conn *c, const uint8_t *p, size_t n)
{
    if (n && wsx__http_in_append(&c->in, p, n, WSX_MAX_HEADER + WSX_MAX_CONTROL) < 0)
        wsx__conn_drop(c, WSX_CLOSE_INTERNAL_ERROR, "out of memory");
}

void wsx__conn_read(wsx_conn *c, uint8_t *data, size_t len)
{
    c->last_rx = wsx__now32(wsx__conn_loop(c));
    c->flags &= (uint16_t)~WSX__F_PING_OUT;
    /* Not blocked: the last flush wrote everything queued before this iteration. */
    if ((c->flags & WSX__F_PONGQ) && !wsx__stream_blocked(&c->stream)) pongs_sent(c);
    if (c->state >= WSX__CLOSE_WAIT) return;
    bool stop;
    if (c->in.len) {
        /* A header or control frame was cut short by the last read: join its start with
         * the first new bytes. It is never longer than 139 bytes, so this copy is small. */
        uint8_t tmp[2 * (WSX_MAX_HEADER + WSX_MAX_CONTROL)];
        size_t plen = c->in.len;
        size_t take = len < sizeof tmp - plen ? len : sizeof tmp - plen;
        memcpy(tmp, c->in.buf, plen);
        memcpy(tmp + plen, data, take);
        wsx__http_in_free(&c->in);
        size_t off = parse(c, tmp, plen + take, &stop);
        if (stop) return;
        if (off < plen) {
            /* Still incomplete: then tmp held every new byte (a header or control frame
             * always fits in it), so keeping tmp's rest keeps everything. */
            keep_rest(c, tmp + off, plen + take - off);
            return;
        }
        /* tmp[plen..off) were data[0..off-plen): go on from there in the real buffer. */
        data += off - plen;
        len -= off - plen;
    }
    size_t off = parse(c, data, len, &stop);
    if (!stop && off < len) keep_rest(c, data + off, len - off);
}

void wsx__conn_open(wsx_conn *c, uint8_t *rest, size_t len)
{
    c->state = WSX__OPEN;
    c->flags |= WSX__F_OPENED;
    c->last_rx = wsx__now32(wsx__conn_loop(c));
    wsx__conn_arm(c);
    const wsx__ws_cbs *cb = wsx__conn_cbs(c);
    if (cb->on_open) cb->on_open(c, cb->user);
    if (len && c->state < WSX__DEAD) wsx__conn_read(c, rest, len);
}

void wsx__conn_eof(wsx_conn *c)
{
    if (c->state == WSX__OPEN) {
        /* RFC 6455 7.1.5: TCP closed without a close frame: 1006. */
        wsx__conn_log(c, WSX_LOG_DEBUG, "connection closed without a close frame");
        wsx__conn_drop(c, WSX_CLOSE_ABNORMAL, "connection closed without a close frame");
        return;
    }
    wsx__conn_drop(c, c->close_code ? c->close_code : WSX_CLOSE_ABNORMAL, NULL);
}

void wsx__conn_drained(wsx_conn *c)
{
    if (!wsx__stream_queued(&c->stream)) pongs_sent(c);
    if ((c->flags & WSX__F_DRAIN) && wsx__stream_queued(&c->stream) <= wsx__cfg_of(c)->low_water) {
        c->flags &= (uint16_t)~WSX__F_DRAIN;
        wsx__stream_want_drain(&c->stream, false);
        const wsx__ws_cbs *cb = wsx__conn_cbs(c);
        if (c->state == WSX__OPEN && cb->on_drain) cb->on_drain(c, cb->user);
    }
}

const char *wsx__conn_transport_error(const wsx_conn *c, int err)
{
    const char *why = wsx__stream_error(&c->stream);
    if (why) return why;
    /* An orderly end (closed by us, or an EOF the connection saw) has nothing to add. */
    return err < 0 && err != WSX_ECLOSED ? wsx_strerror(err) : NULL;
}

void wsx__conn_closed(wsx_conn *c, int err)
{
    c->flags &= (uint16_t)~WSX__F_DEADLINE;
    c->state = WSX__DEAD;
    if (c->flags & WSX__F_OPENED) {
        c->flags &= (uint16_t)~WSX__F_OPENED;
        uint16_t code = c->close_code ? c->close_code : WSX_CLOSE_ABNORMAL;
        const char *reason = c->close_reason ? c->close_reason : "";
        size_t reason_len = c->close_reason_len;
        /* No close frame either way: the reason is ours to give, and says what ended the
         * connection (a reset, a TLS alert, a failed write) instead of leaving it empty. */
        const char *why = code == WSX_CLOSE_ABNORMAL ? wsx__conn_transport_error(c, err) : NULL;
        if (why && (!reason_len || !c->close_reason)) {
            reason = why;
            reason_len = strlen(why);
        }
        const wsx__ws_cbs *cb = wsx__conn_cbs(c);
        if (cb->on_close) cb->on_close(c, code, reason, reason_len, cb->user);
    }
    if (c->msg) {
        wsx_pmd_buf_free(c->msg);
        free(c->msg);
        c->msg = NULL;
    }
    free(c->close_reason);
    c->close_reason = NULL;
    wsx__http_in_free(&c->in);
    free_deflate(c);
    /* After on_close, which may still publish or use what is attached (subscriptions). */
    while (c->ext) {
        wsx__conn_ext *e = c->ext;
        c->ext = e->next;
        e->release(c, e);
    }
}

void wsx__conn_ext_add(wsx_conn *c, wsx__conn_ext *e)
{
    e->next = c->ext;
    c->ext = e;
}

/* ---- deadlines: one per connection, re-armed lazily, checked by the owner ---- */

void wsx__conn_arm(wsx_conn *c)
{
    if (c->state != WSX__OPEN) return;
    const wsx__cfg *cfg = wsx__cfg_of(c);
    /* The nearest of: the idle limit, the pong wait, the next keepalive ping. Times are
     * wrapping 32-bit milliseconds; differences are what count. */
    uint32_t now = wsx__now32(wsx__conn_loop(c));
    uint32_t since_rx = now - c->last_rx;
    uint64_t wait = UINT64_MAX;
    if (cfg->idle_ms != WSX__NEVER) wait = cfg->idle_ms > since_rx ? cfg->idle_ms - since_rx : 0;
    if (c->flags & WSX__F_PING_OUT) {
        uint32_t since_ping = now - c->ping_at;
        uint64_t w = cfg->pong_ms > since_ping ? cfg->pong_ms - since_ping : 0;
        if (cfg->pong_ms != WSX__NEVER && w < wait) wait = w;
    } else if (cfg->ping_ms != WSX__NEVER) {
        uint64_t w = cfg->ping_ms > since_rx ? cfg->ping_ms - since_rx : 0;
        if (w < wait) wait = w;
    }
    wsx__conn_deadline(c, wait == UINT64_MAX ? UINT32_MAX : (uint32_t)wait);
}

void wsx__conn_timer(wsx_conn *c)
{
    const wsx__cfg *cfg = wsx__cfg_of(c);
    uint32_t now = wsx__now32(wsx__conn_loop(c));
    switch (c->state) {
    case WSX__OPEN:
        if (cfg->idle_ms != WSX__NEVER && now - c->last_rx >= cfg->idle_ms) {
            wsx__conn_log(c, WSX_LOG_INFO, "idle for %u ms: closing with 1001", cfg->idle_ms);
            wsx__conn_start_close(c, WSX_CLOSE_GOING_AWAY, "idle timeout", 12);
            return;
        }
        if (c->flags & WSX__F_PING_OUT) {
            if (cfg->pong_ms != WSX__NEVER && now - c->ping_at >= cfg->pong_ms) {
                wsx__conn_log(c, WSX_LOG_INFO, "no answer to a ping within %u ms: dropping",
                              cfg->pong_ms);
                if (cfg->stats) cfg->stats->ping_timeouts++;
                wsx__conn_drop(c, WSX_CLOSE_ABNORMAL, "ping timeout");
                return;
            }
        } else if (cfg->ping_ms != WSX__NEVER && now - c->last_rx >= cfg->ping_ms) {
            if (send_control(c, WSX_FIN | WSX_OP_PING, NULL, 0) == WSX_ECLOSED) return;
            c->flags |= WSX__F_PING_OUT;
            c->ping_at = now;
            /* Quiet long enough to be pinged: a good moment to give back zlib memory. */
            if (c->dfl && cfg->pmd_idle_trim) {
                wsx_pmd_trim(&c->dfl->pmd);
                wsx_pmd_buf_free(&c->dfl->msg);
            }
        }
        wsx__conn_arm(c);
        break;
    case WSX__CLOSING:
    case WSX__CLOSE_WAIT:
        wsx__conn_log(c, WSX_LOG_INFO, "close handshake not finished within %u ms: dropping",
                      cfg->close_ms);
        wsx__conn_drop(c, c->close_code ? c->close_code : WSX_CLOSE_ABNORMAL, NULL);
        break;
    default:
        break;
    }
}

/* Scenario D (memory per idle connection) counts every byte of this struct: 216 bytes is
 * glibc's 224-byte allocation class (232 would take 240). docs/performance.md, "Memory". */
_Static_assert(sizeof(struct wsx_conn) <= 216, "wsx_conn grew past 216 bytes");
