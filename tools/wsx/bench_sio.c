/*
 * `wsx bench --mode sio-echo | sio-broadcast | sio-idle`: Socket.IO v5 over the WebSocket
 * transport of Engine.IO v4, written by hand on the WebSocket client (no Socket.IO library),
 * so that the client's cost per event stays small next to the server's. The packets are in
 * bench.h; this file writes and checks them and walks each connection through the handshake:
 *
 *   server: 0{"sid":...}         the Engine.IO open packet
 *   client: 40                   CONNECT to the main namespace
 *   server: 40{"sid":...}        connected (a `42["auth",...]` event may follow: wsx sio and
 *                                bench/sio/server.mjs emit the CONNECT payload back)
 *   client: 420["join","bench"]  sio-broadcast subscribers only
 *   server: 430["joined:bench"]
 *
 * and answers the server's Engine.IO pings (2) with pongs (3) at any time.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

/* The URL the sio modes connect to: the Engine.IO path and query added to the one given
 * (ws://host:port/ becomes ws://host:port/socket.io/?EIO=4&transport=websocket; a path without
 * a query gets the query; a URL with a query is taken as it is). Returns -1, or the status of
 * a usage error. */
int bench_sio_url(bench *b)
{
    const wsx_url *u = &b->u;
    bool v6 = strchr(u->host, ':') != NULL;
    const char *path = u->path, *sep = "?", *query = SIO_QUERY;
    if (!strcmp(path, "/"))
        path = SIO_PATH;
    else if (strchr(path, '?'))
        sep = query = "";
    int n = snprintf(b->url_sio, sizeof b->url_sio, "%s://%s%s%s:%u%s%s%s", u->tls ? "wss" : "ws",
                     v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, path, sep, query);
    if (n < 0 || n >= (int)sizeof b->url_sio) return usage_error("bench", "URL too long");
    return -1;
}

/* Where the text of event `seq` starts in the words (b->pattern, size + PAT_SPREAD bytes). */
size_t bench_sio_off(uint64_t seq)
{
    return (size_t)(seq % PAT_SPREAD);
}

static size_t put_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

static size_t put_u64(uint8_t *p, uint64_t v)
{
    char d[24];
    int n = snprintf(d, sizeof d, "%llu", (unsigned long long)v);
    memcpy(p, d, (size_t)n);
    return (size_t)n;
}

/* {"id":ID,"seq":SEQ,"text":"..."}: what every event carries and every answer repeats. */
static size_t put_body(const bench *b, uint8_t *p, uint32_t id, uint64_t seq)
{
    size_t o = put_str(p, "{\"id\":");
    o += put_u64(p + o, id);
    o += put_str(p + o, ",\"seq\":");
    o += put_u64(p + o, seq);
    o += put_str(p + o, ",\"text\":\"");
    memcpy(p + o, b->pattern + bench_sio_off(seq), b->size);
    o += b->size;
    o += put_str(p + o, "\"}");
    return o;
}

/* The packet the bench sends as event `seq` of connection `id`: an event with an ack id
 * (echo), or a broadcast request (the fan-out publisher). */
int bench_sio_send(worker *w, wsx_conn *c, uint32_t id, uint64_t seq)
{
    const bench *b = w->b;
    uint8_t *p = w->sio_buf;
    size_t o;
    if (b->mode == M_FANOUT) {
        o = put_str(p, "42[\"broadcast\",\"" SIO_ROOM "\",");
    } else {
        o = put_str(p, "42");
        o += put_u64(p + o, seq);
        o += put_str(p + o, "[\"message-with-ack\",");
    }
    o += put_body(b, p + o, id, seq);
    p[o++] = ']';
    return wsx_send(c, p, o, WSX_TEXT);
}

/* The answer the bench expects to event `seq` of connection `id`: the ack (echo) or the
 * delivery (fan-out). Returns its length. */
static size_t expected(worker *w, uint32_t id, uint64_t seq)
{
    const bench *b = w->b;
    uint8_t *p = w->sio_buf;
    size_t o;
    if (b->mode == M_FANOUT) {
        o = put_str(p, "42[\"broadcasted\",");
    } else {
        o = put_str(p, "43");
        o += put_u64(p + o, seq);
        p[o++] = '[';
    }
    o += put_body(b, p + o, id, seq);
    p[o++] = ']';
    return o;
}

/* The decimal number at p (up to end), or false. */
static bool get_u64(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    const uint8_t *q = p;
    while (q < end && *q >= '0' && *q <= '9' && q - p < 19)
        v = v * 10 + (uint64_t)(*q++ - '0');
    *out = v;
    return q > p;
}

/* A short printable excerpt of a packet, for error lines. */
static void excerpt(char *out, size_t cap, const uint8_t *d, size_t len)
{
    size_t n = len < 60 ? len : 60, o = 0;
    for (size_t i = 0; i < n && o + 2 < cap; i++)
        out[o++] = d[i] >= 0x20 && d[i] < 0x7f ? (char)d[i] : '.';
    if (len > n && o + 4 < cap) o += (size_t)snprintf(out + o, cap - o, "...");
    out[o] = '\0';
}

/* Checks that m answers event `seq` of connection `id` (the ack, or the delivery of the
 * publisher's broadcast). Returns -1, or the error kind with a description in why. */
int bench_sio_verify(worker *w, const wsx_msg *m, uint32_t id, uint64_t seq, char *why, size_t cap)
{
    const bench *b = w->b;
    unsigned long long s = seq;
    size_t n = expected(w, id, seq);
    const uint8_t *want = w->sio_buf, *d = m->data, *end = m->data + m->len;
    if (m->len == n && !memcmp(d, want, n)) return -1;
    bool fanout = b->mode == M_FANOUT;
    if (fanout) {
        /* Two more forms are taken: the room named before the payload
         * (42["broadcasted","bench",{...}], a reading of issue 12's `broadcast` event), and
         * arguments after it (the offset of connection state recovery). */
        static const char ev[] = "42[\"broadcasted\",", room[] = "\"" SIO_ROOM "\",";
        const size_t el = sizeof ev - 1, rl = sizeof room - 1;
        if (m->len >= el && !memcmp(d, ev, el)) {
            size_t skip = m->len >= el + rl && !memcmp(d + el, room, rl) ? rl : 0;
            const uint8_t *p = d + skip; /* from p + el on: the payload, then ']' or ',' */
            size_t len = m->len - skip;
            if (len >= n && !memcmp(p + el, want + el, n - 1 - el) &&
                (len == n ? p[n - 1] == ']' : p[n - 1] == ',' && end[-1] == ']'))
                return -1;
        }
    }
    char ex[80];
    excerpt(ex, sizeof ex, d, m->len);
    const char *head = fanout ? "42[\"broadcasted\"," : "43";
    size_t hl = strlen(head);
    if (m->len < hl || memcmp(d, head, hl)) {
        snprintf(why, cap, "expected %s of #%llu, got: %s", fanout ? "the broadcast" : "the ack", s,
                 ex);
        return E_UNEXPECTED;
    }
    uint64_t got;
    if (!fanout && get_u64(d + 2, end, &got) && got != seq) {
        snprintf(why, cap, "the ack of #%llu arrived where #%llu was expected (%s)",
                 (unsigned long long)got, s,
                 got < seq ? "duplicated or reordered" : "one lost or reordered");
        return E_ORDER;
    }
    const uint8_t *q = memmem(d, m->len, ",\"seq\":", 7);
    if (fanout && q && get_u64(q + 7, end, &got) && got != seq) {
        snprintf(why, cap, "broadcast #%llu arrived where #%llu was expected (%s)",
                 (unsigned long long)got, s,
                 got < seq ? "duplicated or reordered" : "one lost or reordered");
        return E_ORDER;
    }
    if (m->len != n && !fanout) {
        snprintf(why, cap, "the answer to #%llu has %zu bytes instead of %zu: %s", s, m->len, n,
                 ex);
        return E_LENGTH;
    }
    size_t i = 0;
    while (i < n && i < m->len && d[i] == want[i])
        i++;
    snprintf(why, cap, "the answer to #%llu differs at byte %zu: %s", s, i, ex);
    return E_CORRUPT;
}

static bool starts(const wsx_msg *m, const char *s)
{
    size_t n = strlen(s);
    return m->len >= n && !memcmp(m->data, s, n);
}

static int fail(int *kind, int k, char *why, size_t cap, const char *what, const wsx_msg *m)
{
    char ex[80];
    excerpt(ex, sizeof ex, m->data, m->len);
    snprintf(why, cap, "%s: %s", what, ex);
    *kind = k;
    return SIO_FAIL;
}

static int send_text(wsx_conn *c, const char *s, int *kind, char *why, size_t cap)
{
    int rc = wsx_send(c, s, strlen(s), WSX_TEXT);
    /* Closing: the close itself is what counts (on_close reports one the bench did not ask
     * for), not the answer that could not go out any more. */
    if (rc >= 0 || rc == WSX_EBACKPRESSURE || rc == WSX_ECLOSED) return SIO_TAKEN;
    snprintf(why, cap, "send failed: %s", wsx_strerror(rc));
    *kind = E_SEND;
    return SIO_FAIL;
}

/* Every message of a sio connection goes through here first: Engine.IO pings are answered,
 * the handshake moves on, the `auth` event is skipped. Returns SIO_DATA for an ack or event
 * the load's checks take, SIO_TAKEN when it was handled here, SIO_NOW_READY when the
 * handshake just completed, SIO_FAIL with *kind and why. */
int bench_sio_filter(worker *w, bconn *bc, const wsx_msg *m, int *kind, char *why, size_t cap)
{
    if (m->type != WSX_TEXT)
        return fail(kind, E_TYPE, why, cap, "a binary message (the bench sends no binary)", m);
    if (!m->len) return fail(kind, E_UNEXPECTED, why, cap, "an empty message", m);
    const uint8_t *d = m->data;
    switch (d[0]) {
    case '2': /* Engine.IO ping */
        if (m->len != 1) return fail(kind, E_UNEXPECTED, why, cap, "a ping with data", m);
        if (w->stopping) return SIO_TAKEN; /* the bench is closing every connection */
        return send_text(bc->c, "3", kind, why, cap);
    case '6': /* noop */
        return SIO_TAKEN;
    case '1':
        return fail(kind, E_CLOSED, why, cap, "the server closed the Engine.IO session", m);
    case '0':
        if (bc->sio_state != SIO_WAIT_OPEN || !starts(m, "0{\"sid\":\""))
            return fail(kind, E_HANDSHAKE, why, cap, "an unexpected Engine.IO open packet", m);
        bc->sio_state = SIO_WAIT_CONNECT;
        return send_text(bc->c, "40", kind, why, cap);
    case '4':
        break;
    default:
        return fail(kind, E_UNEXPECTED, why, cap, "an unknown Engine.IO packet", m);
    }
    if (m->len < 2) return fail(kind, E_UNEXPECTED, why, cap, "an empty Engine.IO message", m);
    switch (d[1]) {
    case '0': /* CONNECT: to the main namespace, with the session id */
        if (bc->sio_state != SIO_WAIT_CONNECT || !starts(m, "40{\"sid\":\""))
            return fail(kind, E_HANDSHAKE, why, cap, "an unexpected CONNECT", m);
        if (bc->role == R_SUB) {
            bc->sio_state = SIO_WAIT_JOIN;
            return send_text(bc->c, "420[\"join\",\"" SIO_ROOM "\"]", kind, why, cap);
        }
        bc->sio_state = SIO_READY;
        return SIO_NOW_READY;
    case '4':
        return fail(kind, E_HANDSHAKE, why, cap, "connect_error", m);
    case '1':
        return fail(kind, E_CLOSED, why, cap, "the server disconnected the socket", m);
    case '2':
        if (starts(m, "42[\"auth\"")) return SIO_TAKEN;
        if (bc->sio_state == SIO_READY) return SIO_DATA;
        return fail(kind, E_UNEXPECTED, why, cap, "an event during the handshake", m);
    case '3':
        if (bc->sio_state == SIO_READY) return SIO_DATA;
        if (bc->sio_state == SIO_WAIT_JOIN && starts(m, "430[\"joined:" SIO_ROOM "\"]") &&
            m->len == sizeof "430[\"joined:" SIO_ROOM "\"]" - 1) {
            bc->sio_state = SIO_READY;
            return SIO_NOW_READY;
        }
        return fail(kind, E_HANDSHAKE, why, cap, "an unexpected ack during the handshake", m);
    default:
        return fail(kind, E_UNEXPECTED, why, cap, "an unexpected Socket.IO packet", m);
    }
}
