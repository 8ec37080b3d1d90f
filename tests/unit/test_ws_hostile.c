/*
 * Hostile peers against a wsx server: the server runs on its own thread (the scene of
 * ws_scene.h), a raw blocking client with hand-built frames on this one. Fragment and ping
 * floods, peers that never answer pings or closes, pongs against the hard limit, and the
 * process-wide budget of queued output.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "test.h"
#include "ws/ws.h"
#include "ws_scene.h"
#include "wsx.h"

/* The server runs on its own thread: a raw client blocks on this one. */
typedef struct bg {
    scene s;
    pthread_t tid;
    uint16_t port;
} bg;

static void *bg_run(void *arg)
{
    bg *b = arg;
    wsx_loop_run(b->s.loop);
    return NULL;
}

static void bg_start(bg *b, const wsx_server_opts *so)
{
    start(&b->s, so);
    b->port = wsx_server_port(b->s.srv);
    pthread_create(&b->tid, NULL, bg_run, b);
}

static void bg_stop_cb(void *arg)
{
    scene *s = arg;
    if (s->watchdog) wsx_timer_stop(s->watchdog);
    s->watchdog = NULL;
    wsx_server_shutdown(s->srv, 500);
}

/* Shuts the server down from its own thread and waits for the loop to end. */
static void bg_stop(bg *b)
{
    wsx_loop_post(b->s.loop, bg_stop_cb, &b->s);
    pthread_join(b->tid, NULL);
    b->s.srv_conn = NULL;
    wsx_server_free(b->s.srv);
    wsx_loop_free(b->s.loop);
}

/* A blocking raw client: connects, upgrades, and reads frames with a client-role parser. */
typedef struct raw {
    int fd;
    wsx_parser p;
    uint8_t buf[1 << 16];
    size_t len, off;
} raw;

static int raw_connect(raw *r, uint16_t port, int rcvbuf)
{
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf) setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(r->fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
    static const char req[] =
        "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    if (send(r->fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0) return -1;
    /* The 101 head, byte by byte so no frame is read with it. */
    char head[512];
    size_t n = 0;
    while (n < sizeof head - 1 && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
        if (recv(r->fd, head + n, 1, 0) != 1) return -1;
        n++;
    }
    head[n] = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) return -1;
    wsx_parser_opts po = {.role = WSX_ROLE_CLIENT};
    wsx_parser_init(&r->p, &po);
    return 0;
}

/* Appends one masked frame to out; returns its length. */
static size_t raw_frame(uint8_t *out, uint8_t b0, const void *data, size_t len)
{
    static const uint8_t key[4] = {1, 2, 3, 4};
    ptrdiff_t n = wsx_frame_write(out, WSX_MAX_HEADER + len, b0, data, len, key);
    return n < 0 ? 0 : (size_t)n;
}

static int raw_send(raw *r, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The next whole frame the server sent: its type (WSX_EV_*) with the payload (close: the
 * reason) in out, or -1 at EOF, timeout or a parse error. Server frames here are small. */
static int raw_recv(raw *r, uint16_t *code, char *out, size_t cap)
{
    size_t have = 0;
    for (;;) {
        while (r->off < r->len) {
            wsx_event ev;
            ptrdiff_t n = wsx_parser_feed(&r->p, r->buf + r->off, r->len - r->off, &ev);
            if (n < 0) return -1;
            if (n == 0) break;
            r->off += (size_t)n;
            if (ev.type == WSX_EV_NONE) continue;
            size_t k = ev.len < cap - 1 - have ? ev.len : cap - 1 - have;
            memcpy(out + have, ev.data, k);
            have += k;
            out[have] = 0;
            if (ev.type == WSX_EV_CLOSE && code) *code = ev.close_code;
            if (ev.type != WSX_EV_DATA || ev.last) return ev.type;
        }
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (n <= 0) return -1;
        r->len += (size_t)n;
    }
}

/* Sends a fragmented text message of `frames` frames: "a", empty continuations, "b". */
static int send_fragments(raw *r, size_t frames)
{
    size_t cap = 16 + frames * (WSX_MAX_HEADER + 1);
    uint8_t *out = malloc(cap);
    size_t n = raw_frame(out, WSX_OP_TEXT, "a", 1);
    for (size_t i = 2; i < frames; i++)
        n += raw_frame(out + n, WSX_OP_CONT, NULL, 0);
    n += raw_frame(out + n, WSX_FIN | WSX_OP_CONT, "b", 1);
    int rc = raw_send(r, out, n);
    free(out);
    return rc;
}

static void check_fragment_limit(size_t opt, size_t limit)
{
    bg b = {.s = {.echo = 1}};
    wsx_server_opts so = server_opts(&b.s);
    so.max_fragments = opt;
    bg_start(&b, &so);
    raw r;
    CHECK_INT(raw_connect(&r, b.port, 0), 0);
    /* At the limit: delivered (and echoed). */
    CHECK_INT(send_fragments(&r, limit), 0);
    char got[256];
    uint16_t code = 0;
    CHECK_INT(raw_recv(&r, &code, got, sizeof got), WSX_EV_DATA);
    CHECK_STR(got, "ab");
    /* One frame more: close 1009 with the reason, before the message ends. */
    CHECK_INT(send_fragments(&r, limit + 1), 0);
    CHECK_INT(raw_recv(&r, &code, got, sizeof got), WSX_EV_CLOSE);
    CHECK_INT(code, 1009);
    CHECK_STR(got, "message has too many fragments");
    close(r.fd);
    bg_stop(&b);
    CHECK_INT(b.s.srv_msgs, 1);
    CHECK_INT(b.s.srv_close_code, 1009);
    CHECK_STR(b.s.srv_close_reason, "message has too many fragments");
}

TEST(max_fragments_closes_1009)
{
    check_fragment_limit(8, 8);
    check_fragment_limit(0, 16384); /* the default */
}

/* Every ping gets its pong while the peer reads; all of them in order. */
TEST(pings_answered_in_order)
{
    bg b = {.s = {.echo = 1}};
    wsx_server_opts so = server_opts(&b.s);
    bg_start(&b, &so);
    raw r;
    CHECK_INT(raw_connect(&r, b.port, 0), 0);
    uint8_t out[200 * 32];
    size_t n = 0;
    for (int i = 0; i < 200; i++) {
        char p[16];
        int k = snprintf(p, sizeof p, "p%d", i);
        n += raw_frame(out + n, WSX_FIN | WSX_OP_PING, p, (size_t)k);
    }
    CHECK_INT(raw_send(&r, out, n), 0);
    int ok = 0;
    for (int i = 0; i < 200; i++) {
        char got[64], want[16];
        snprintf(want, sizeof want, "p%d", i);
        if (raw_recv(&r, NULL, got, sizeof got) == WSX_EV_PONG && !strcmp(got, want)) ok++;
    }
    CHECK_INT(ok, 200);
    close(r.fd);
    bg_stop(&b);
}

/* A peer that pings and never reads: once the queue is blocked, pings are answered by the
 * pong already queued, and after max_coalesced_pings more the connection is dropped with
 * 1008. The queue holds pongs of one iteration at most. */
TEST(ping_flood_without_reading_closes_1008)
{
    bg b = {.s = {.echo = 1}};
    wsx_server_opts so = server_opts(&b.s);
    so.max_coalesced_pings = 16;
    bg_start(&b, &so);
    raw r;
    CHECK_INT(raw_connect(&r, b.port, 4096), 0);
    uint8_t payload[125], out[100 * 140];
    memset(payload, 'p', sizeof payload);
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        n += raw_frame(out + n, WSX_FIN | WSX_OP_PING, payload, sizeof payload);
    /* Bounded: 64 MiB of pings at most; the server drops us long before. */
    size_t sent = 0;
    while (sent < (64u << 20) && raw_send(&r, out, n) == 0)
        sent += n;
    CHECK(sent < (64u << 20));
    close(r.fd);
    bg_stop(&b);
    CHECK_INT(b.s.srv_close_code, 1008);
    CHECK_STR(b.s.srv_close_reason, "too many pings while a pong is queued");
}

/* A peer that never answers pings, against pong_timeout_ms: 100 ms drops it (1006); never
 * (UINT32_MAX) keeps it open, still echoing, long after pings went unanswered. */
static int silent_peer_after(uint32_t pong_ms, int *pings)
{
    bg b = {.s = {.echo = 1}};
    wsx_server_opts so = server_opts(&b.s);
    so.ping_interval_ms = 50;
    so.pong_timeout_ms = pong_ms;
    bg_start(&b, &so);
    raw r;
    CHECK_INT(raw_connect(&r, b.port, 0), 0);
    char got[64];
    *pings = raw_recv(&r, NULL, got, sizeof got) == WSX_EV_PING;
    usleep(500 * 1000); /* ten ping intervals, five 100-ms pong timeouts */
    uint8_t out[64];
    size_t n = raw_frame(out, WSX_FIN | WSX_OP_TEXT, "still here", 10);
    int echoed = 0;
    if (raw_send(&r, out, n) == 0) {
        for (int i = 0; i < 10; i++) {
            int t = raw_recv(&r, NULL, got, sizeof got);
            if (t < 0) break;
            if (t == WSX_EV_DATA && !strcmp(got, "still here")) {
                echoed = 1;
                break;
            }
        }
    }
    close(r.fd);
    bg_stop(&b);
    return echoed;
}

TEST(pong_timeout_never_keeps_a_silent_peer)
{
    int pings = 0;
    CHECK_INT(silent_peer_after(100, &pings), 0);
    CHECK_INT(pings, 1);
    CHECK_INT(silent_peer_after(UINT32_MAX, &pings), 1);
    CHECK_INT(pings, 1);
}

/* The server closes (4001) and the peer never answers the close: with close_timeout_ms 100
 * the server gives up on it (on_close) within 500 ms; with never it is still waiting. */
static int closes_seen_after(uint32_t close_ms)
{
    bg b = {.s = {.server_closes = 1}};
    wsx_server_opts so = server_opts(&b.s);
    so.close_timeout_ms = close_ms;
    bg_start(&b, &so);
    raw r;
    CHECK_INT(raw_connect(&r, b.port, 0), 0);
    uint8_t out[64];
    size_t n = raw_frame(out, WSX_FIN | WSX_OP_TEXT, "bye?", 4);
    CHECK_INT(raw_send(&r, out, n), 0);
    char got[64];
    uint16_t code = 0;
    CHECK_INT(raw_recv(&r, &code, got, sizeof got), WSX_EV_CLOSE);
    CHECK_INT(code, 4001);
    usleep(500 * 1000);
    int closes = __atomic_load_n(&b.s.srv_close, __ATOMIC_SEQ_CST);
    close(r.fd);
    bg_stop(&b);
    return closes;
}

TEST(close_timeout_never_waits_for_the_peer)
{
    CHECK_INT(closes_seen_after(100), 1);
    CHECK_INT(closes_seen_after(UINT32_MAX), 0);
}

/* Pongs count against the hard limit like any other byte. */
static void fill_to_limit(wsx_conn *c, const wsx_msg *m, void *u)
{
    scene *s = u;
    (void)m;
    s->srv_msgs++;
    /* A first small frame, so the large one is queued rather than written at once. */
    static uint8_t big[(1u << 20) - 64];
    CHECK_INT(wsx_send(c, "x", 1, WSX_BINARY), 0);
    int rc = wsx_send(c, big, sizeof big, WSX_BINARY);
    CHECK(rc == 0 || rc == WSX_EBACKPRESSURE);
}

TEST(pongs_count_against_the_hard_limit)
{
    bg b = {.s = {0}};
    wsx_server_opts so = server_opts(&b.s);
    so.on_message = fill_to_limit;
    so.send_hard_limit = 1u << 20;
    bg_start(&b, &so);
    raw r;
    CHECK_INT(raw_connect(&r, b.port, 4096), 0);
    /* The message and a ping in one segment, so one read: the pong passes the limit before
     * the end-of-iteration write could take anything. */
    uint8_t out[300], payload[125];
    memset(payload, 'q', sizeof payload);
    size_t n = raw_frame(out, WSX_FIN | WSX_OP_TEXT, "fill", 4);
    n += raw_frame(out + n, WSX_FIN | WSX_OP_PING, payload, sizeof payload);
    CHECK_INT(raw_send(&r, out, n), 0);
    char got[64];
    int t;
    while ((t = raw_recv(&r, NULL, got, sizeof got)) >= 0 && t != WSX_EV_CLOSE) {
    }
    CHECK(t != WSX_EV_CLOSE); /* dropped, no close frame */
    close(r.fd);
    bg_stop(&b);
    CHECK_INT(b.s.srv_msgs, 1);
    CHECK_INT(b.s.srv_close_code, 1008);
    CHECK_STR(b.s.srv_close_reason, "send queue over its hard limit");
}

/* ---- the process-wide budget of queued output ---- */

#define FILL_CHUNK 60000u /* a frame header of 4 bytes */

static int budget_drops;

/* "fill K": K frames of FILL_CHUNK bytes to a peer that does not read; anything else echoes. */
static void fill_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    scene *s = u;
    s->srv_msgs++;
    unsigned k;
    if (m->len > 5 && !memcmp(m->data, "fill ", 5) && sscanf((const char *)m->data + 5, "%u", &k)) {
        static uint8_t chunk[FILL_CHUNK];
        for (unsigned i = 0; i < k && wsx_send(c, chunk, sizeof chunk, WSX_BINARY) != WSX_ECLOSED;
             i++) {
        }
        return;
    }
    wsx_send(c, m->data, m->len, m->type);
}

static void budget_close(wsx_conn *c, int code, const char *reason, size_t len, void *u)
{
    s_close(c, code, reason, len, u);
    if (code == 1008 && len == 28 && !memcmp(reason, "process send budget exceeded", len))
        budget_drops++;
}

/* Reads until `want` bytes came or the connection ended; returns the bytes read. */
static size_t raw_read_all(raw *r, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = recv(r->fd, r->buf, sizeof r->buf, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    return got;
}

TEST(process_budget_drops_the_largest_queues)
{
    budget_drops = 0;
    wsx_set_max_queued_bytes(8u << 20);
    bg b = {.s = {0}};
    wsx_server_opts so = server_opts(&b.s);
    so.on_message = fill_message;
    so.on_close = budget_close;
    bg_start(&b, &so);
    /* Four peers that do not read ask for 2.1, 2.5, 13 and 14 MB: 31.6 MB against a budget of
     * 8 MiB, each far below the 64 MiB hard limit. The kernel's socket buffers take up to a
     * few MB of each (after the end-of-iteration write); whatever the order in which the
     * requests are read, dropping the two largest brings the process under the budget. */
    static const unsigned chunks[4] = {35, 42, 217, 234};
    raw r[4];
    for (int i = 0; i < 4; i++) {
        CHECK_INT(raw_connect(&r[i], b.port, 4096), 0);
        char msg[32];
        int n = snprintf(msg, sizeof msg, "fill %u", chunks[i]);
        uint8_t f[64];
        CHECK_INT(raw_send(&r[i], f, raw_frame(f, WSX_FIN | WSX_OP_TEXT, msg, (size_t)n)), 0);
    }
    usleep(300 * 1000);
    /* Meanwhile a client that reads gets its echo. */
    raw honest;
    CHECK_INT(raw_connect(&honest, b.port, 0), 0);
    uint8_t f[64];
    CHECK_INT(raw_send(&honest, f, raw_frame(f, WSX_FIN | WSX_OP_TEXT, "still here", 10)), 0);
    char got[64];
    CHECK_INT(raw_recv(&honest, NULL, got, sizeof got), WSX_EV_DATA);
    CHECK_STR(got, "still here");
    /* The two largest were dropped; the others get every byte they asked for. */
    for (int i = 0; i < 4; i++) {
        size_t want = chunks[i] * (FILL_CHUNK + 4);
        size_t have = raw_read_all(&r[i], want);
        if (i < 2)
            CHECK_INT(have, want);
        else
            CHECK(have < want);
        close(r[i].fd);
    }
    close(honest.fd);
    bg_stop(&b);
    CHECK_INT(budget_drops, 2);
    CHECK_INT(b.s.srv_msgs, 5);
    CHECK_INT(wsx_queued_bytes(), 0);
    wsx_set_max_queued_bytes(0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    RUN(max_fragments_closes_1009);
    RUN(pings_answered_in_order);
    RUN(ping_flood_without_reading_closes_1008);
    RUN(pong_timeout_never_keeps_a_silent_peer);
    RUN(close_timeout_never_waits_for_the_peer);
    RUN(pongs_count_against_the_hard_limit);
    RUN(process_budget_drops_the_largest_queues);
    return test_summary("ws_hostile");
}
