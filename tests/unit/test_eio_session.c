/*
 * Engine.IO sessions (src/eio) against a model: random sequences of polling GETs and POSTs,
 * WebSocket handshakes, probes, upgrades, messages, closes, second WebSockets and bad packets
 * are played against a real server (its loop on a thread, real sockets on 127.0.0.1), and
 * each answer is compared with what a small model of the session says must happen: the
 * exact HTTP status and body, the exact frames, and the reason the server's on_close got.
 * A second engine with short timings checks the heartbeat and the upgrade timeout the same
 * way, and a third has its sessions subscribed to a hub topic (wsx_eio_send_msg on both
 * transports). Every on_open is matched by one on_close once the engines are freed. Bounded in
 * sequences, steps and time; the seed is printed (WSX_SEED=n replays one).
 */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include "test.h"
#include "net_test.h"
#include "wsx.h"
#include "wsx/eio.h"

/* ---- the server: an echo on /engine.io/ and one with short timings on /t/ ---- */

#define MAX_CLOSED 4096

static struct srv {
    wsx_loop *loop;
    wsx_server *srv;
    wsx_eio *e, *t, *p, *a;
    uint16_t port;
    pthread_mutex_t mu;
    size_t opens, closes;
    unsigned last_mark; /* wsx_eio_session_mark of the last session opened */
    struct {
        char sid[21];
        char reason[32];
    } closed[MAX_CLOSED];
    size_t n_closed;
    wsx_eio_session *psess[3]; /* /p/'s sessions, in opening order */
    size_t n_psess, drains;
    size_t buffered[3], buffered_after[3];
    bool writable[3];
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_open(wsx_eio_session *s, void *u)
{
    (void)s;
    (void)u;
    pthread_mutex_lock(&S.mu);
    S.opens++;
    pthread_mutex_unlock(&S.mu);
}

static void on_message(wsx_eio_session *s, const uint8_t *d, size_t len, bool bin, void *u)
{
    (void)u;
    wsx_eio_send(s, d, len, bin);
}

static void on_close(wsx_eio_session *s, const char *reason, void *u)
{
    (void)u;
    pthread_mutex_lock(&S.mu);
    S.closes++;
    if (S.n_closed < MAX_CLOSED) {
        snprintf(S.closed[S.n_closed].sid, 21, "%s", wsx_eio_session_id(s));
        snprintf(S.closed[S.n_closed].reason, 32, "%s", reason);
        S.n_closed++;
    }
    pthread_mutex_unlock(&S.mu);
}

/* /p/: every session subscribes to a hub topic; a publish reaches each through
 * wsx_eio_send_msg (the WebSocket ones by the hub's prepared frame). */
static int hub_deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub;
    int rc = wsx_eio_send_msg(user, m);
    return rc == 0 || rc == WSX_EBACKPRESSURE ? 1 : 0;
}

static void p_open(wsx_eio_session *s, void *u)
{
    (void)u;
    wsx_sub *sub = NULL;
    CHECK_INT(wsx_hub_subscribe(wsx_hub_of(S.loop), "all", hub_deliver, s, &sub), 0);
    wsx_eio_session_set_user(s, sub);
    if (S.n_psess < 3) S.psess[S.n_psess++] = s;
    on_open(s, u);
}

static void p_drain(wsx_eio_session *s, void *u)
{
    (void)s;
    (void)u;
    pthread_mutex_lock(&S.mu);
    S.drains++;
    pthread_mutex_unlock(&S.mu);
}

static void p_close(wsx_eio_session *s, const char *reason, void *u)
{
    wsx_hub_unsubscribe(wsx_eio_session_user(s));
    on_close(s, reason, u);
}

static void publish_cb(void *arg)
{
    (void)arg;
    wsx_hub *h = wsx_hub_of(S.loop);
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.n_psess; i++) {
        S.buffered[i] = wsx_eio_buffered_amount(S.psess[i]);
        S.writable[i] = wsx_eio_writable(S.psess[i]);
    }
    CHECK_INT(wsx_hub_publish(h, "all", "4to all", 7, WSX_TEXT, NULL, NULL), 3);
    CHECK_INT(wsx_hub_publish(h, "all", "\x01\x02", 2, WSX_BINARY, NULL, NULL), 3);
    /* Not a packet: refused by wsx_eio_send_msg, so nobody gets it. */
    CHECK_INT(wsx_hub_publish(h, "all", "x", 1, WSX_TEXT, NULL, NULL), 0);
    for (size_t i = 0; i < S.n_psess; i++)
        S.buffered_after[i] = wsx_eio_buffered_amount(S.psess[i]);
    pthread_mutex_unlock(&S.mu);
}

/* A publish to sessions with held GETs (each then waits for the kick to flush), then
 * wsx_eio_close on each: every session is on the flush list and the dead list at once. */
static void publish_close_cb(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&S.mu);
    /* The polling sessions of send_msg are still subscribed: 2 more. */
    CHECK_INT(wsx_hub_publish(wsx_hub_of(S.loop), "all", "4bye", 4, WSX_TEXT, NULL, NULL), 5);
    for (size_t i = 0; i < S.n_psess; i++)
        wsx_eio_close(S.psess[i]);
    pthread_mutex_unlock(&S.mu);
}

static void free_t_cb(void *arg)
{
    (void)arg;
    wsx_eio_free(S.t);
}

/* /a/: the handshake hook refuses requests with "X-Deny". */
static int allow(wsx_eio *e, const wsx_http_req *r, void *u)
{
    (void)e;
    (void)u;
    return wsx_http_req_header(r, "x-deny") ? 403 : 0;
}

static void *server_thread(void *arg)
{
    (void)arg;
    wsx_loop_run(S.loop);
    return NULL;
}

static void stop_cb(void *arg)
{
    (void)arg;
    wsx_eio_free(S.e);
    wsx_eio_free(S.t);
    wsx_eio_free(S.p);
    wsx_eio_free(S.a);
    wsx_server_shutdown(S.srv, 1000);
}

static void server_start(void)
{
    S.loop = new_loop();
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    CHECK_INT(wsx_server_start(S.loop, &o, &S.srv, NULL), 0);
    S.port = wsx_server_port(S.srv);
    wsx_eio_opts eo = wsx_eio_defaults();
    eo.max_payload = 1000;
    eo.on_open = on_open;
    eo.on_message = on_message;
    eo.on_close = on_close;
    CHECK_INT(wsx_eio_attach(S.srv, &eo, &S.e), 0);
    eo.path = "/t/";
    eo.ping_interval_ms = 150;
    eo.ping_timeout_ms = 100;
    eo.upgrade_timeout_ms = 150;
    CHECK_INT(wsx_eio_attach(S.srv, &eo, &S.t), 0);
    eo = wsx_eio_defaults();
    eo.path = "/p/";
    eo.on_open = p_open;
    eo.on_close = p_close;
    eo.on_drain = p_drain;
    eo.send_high_water = 8; /* "4to all" fits, the binary after it passes: backpressure */
    eo.send_low_water = 4;
    CHECK_INT(wsx_eio_attach(S.srv, &eo, &S.p), 0);
    eo = wsx_eio_defaults();
    eo.path = "/a/";
    eo.allow_request = allow;
    eo.on_open = on_open;
    eo.on_close = on_close;
    CHECK_INT(wsx_eio_attach(S.srv, &eo, &S.a), 0);
}

/* The reason the server gave for sid, waiting up to 1 s for it; "" if none. */
static const char *closed_reason(const char *sid)
{
    static char out[32];
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&S.mu);
        for (size_t k = 0; k < S.n_closed; k++) {
            if (!strcmp(S.closed[k].sid, sid)) {
                snprintf(out, sizeof out, "%s", S.closed[k].reason);
                pthread_mutex_unlock(&S.mu);
                return out;
            }
        }
        pthread_mutex_unlock(&S.mu);
        usleep(10000);
    }
    return "";
}

/* ---- the client: blocking sockets ---- */

static int tcp(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(S.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        p = (const char *)p + k;
        n -= (size_t)k;
    }
}

/* Reads until EOF (the requests say Connection: close) or timeout_ms; returns bytes read. */
static size_t read_all(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (n < cap - 1) {
        int left = (int)(end - now_ms());
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0) break;
        ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    buf[n] = 0;
    return n;
}

typedef struct resp {
    int status;
    char body[4096];
    size_t len;
} resp;

static void parse_resp(const char *buf, size_t n, resp *r)
{
    r->status = 0;
    r->len = 0;
    r->body[0] = 0;
    if (n < 12 || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1) return;
    const char *b = strstr(buf, "\r\n\r\n");
    if (!b) return;
    b += 4;
    r->len = n - (size_t)(b - buf);
    if (r->len >= sizeof r->body) r->len = sizeof r->body - 1;
    memcpy(r->body, b, r->len);
    r->body[r->len] = 0;
}

static int http_send(const char *path, const char *method, const char *query, const char *body)
{
    int fd = tcp();
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n"
                     "\r\n%s",
                     method, path, query, body ? strlen(body) : 0, body ? body : "");
    send_all(fd, req, (size_t)n);
    return fd;
}

static void http(const char *path, const char *method, const char *query, const char *body, resp *r)
{
    int fd = http_send(path, method, query, body);
    char buf[8192];
    size_t n = read_all(fd, buf, sizeof buf, 3000);
    close(fd);
    parse_resp(buf, n, r);
}

/* True when fd has nothing to read within ms. */
static bool quiet(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 0;
}

static void held_result(int fd, resp *r)
{
    char buf[8192];
    size_t n = read_all(fd, buf, sizeof buf, 3000);
    close(fd);
    parse_resp(buf, n, r);
}

/* A WebSocket client: the handshake, masked frames out, frames in. */
static int ws_open(const char *path, const char *query)
{
    int fd = tcp();
    char req[1024];
    int n =
        snprintf(req, sizeof req,
                 "GET %s?%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 path, query);
    send_all(fd, req, (size_t)n);
    char buf[1024] = "";
    size_t got = 0;
    while (got < sizeof buf - 1 && !strstr(buf, "\r\n\r\n")) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 3000) <= 0) break;
        ssize_t k = recv(fd, buf + got, 1, 0);
        if (k <= 0) break;
        got += (size_t)k;
        buf[got] = 0;
    }
    if (strncmp(buf, "HTTP/1.1 101", 12) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void ws_send(int fd, int op, const char *data, size_t len)
{
    uint8_t f[2048];
    f[0] = (uint8_t)(0x80 | op);
    f[1] = (uint8_t)(0x80 | len); /* test frames stay under 126 bytes */
    memcpy(f + 2, "\x01\x02\x03\x04", 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = (uint8_t)data[i] ^ f[2 + (i & 3)];
    send_all(fd, f, 6 + len);
}

/* One frame: its opcode (-1 on EOF or timeout), payload into buf (NUL-terminated). */
static int ws_recv(int fd, char *buf, size_t cap, size_t *len)
{
    uint8_t h[4];
    *len = 0;
    buf[0] = 0;
    if (quiet(fd, 3000) || recv(fd, h, 2, MSG_WAITALL) != 2) return -1;
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        if (recv(fd, h + 2, 2, MSG_WAITALL) != 2) return -1;
        n = (size_t)h[2] << 8 | h[3];
    }
    if (n >= cap || (n && recv(fd, buf, n, MSG_WAITALL) != (ssize_t)n)) return -1;
    buf[n] = 0;
    *len = n;
    return h[0] & 0x0f;
}

/* ---- the model ---- */

enum mstate { M_NONE, M_POLL, M_PROBE, M_UPG, M_WS, M_CLOSED };

typedef struct model {
    int state;
    char sid[21];
    int held;      /* a GET the server holds, or -1 */
    int ws, probe; /* sockets */
    char queue[4096];
    size_t qlen;
    unsigned counter;
} model;

static uint64_t rng;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static char Q[128];
static const char *qs(const model *m)
{
    snprintf(Q, sizeof Q, "EIO=4&transport=polling&sid=%s", m->sid);
    return Q;
}

static void queue_add(model *m, const char *pkt)
{
    size_t n = strlen(pkt);
    if (m->qlen) m->queue[m->qlen++] = 0x1e;
    memcpy(m->queue + m->qlen, pkt, n);
    m->qlen += n;
    m->queue[m->qlen] = 0;
}

static void expect_closed(model *m, const char *reason)
{
    /* The server finishes a closing handshake when the TCP connection ends. */
    if (m->ws >= 0) close(m->ws);
    if (m->probe >= 0) close(m->probe);
    m->ws = m->probe = -1;
    if (m->held >= 0) {
        resp r;
        held_result(m->held, &r);
        m->held = -1;
        CHECK_INT(r.status, 200);
        CHECK_STR(r.body, "1");
    }
    CHECK_STR(closed_reason(m->sid), reason);
    m->qlen = 0;
    m->state = M_CLOSED;
}

/* The held GET (if any) gets the queue when there is one. */
static void deliver(model *m)
{
    if (m->held < 0 || !m->qlen) return;
    resp r;
    held_result(m->held, &r);
    m->held = -1;
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, m->queue);
    m->qlen = 0;
}

static void op_handshake(model *m)
{
    *m = (model){.held = -1, .ws = -1, .probe = -1, .counter = m->counter};
    if (rnd(3) == 0) {
        m->ws = ws_open("/engine.io/", "EIO=4&transport=websocket");
        CHECK(m->ws >= 0);
        char buf[512];
        size_t n;
        CHECK_INT(ws_recv(m->ws, buf, sizeof buf, &n), 1);
        CHECK(!strncmp(buf, "0{\"sid\":\"", 9) && strstr(buf, "\"upgrades\":[]"));
        memcpy(m->sid, buf + 9, 20);
        m->state = M_WS;
        return;
    }
    resp r;
    http("/engine.io/", "GET", "EIO=4&transport=polling", NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(!strncmp(r.body, "0{\"sid\":\"", 9) && strstr(r.body, "\"upgrades\":[\"websocket\"]"));
    memcpy(m->sid, r.body + 9, 20);
    m->state = M_POLL;
}

static void op_post_msg(model *m)
{
    char pkt[64];
    snprintf(pkt, sizeof pkt, "4m%u", m->counter++);
    resp r;
    http("/engine.io/", "POST", qs(m), pkt, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "ok");
    queue_add(m, pkt);
    if (m->state == M_POLL || m->state == M_PROBE) deliver(m);
}

static void op_get(model *m)
{
    if (m->held >= 0) {
        resp r;
        http("/engine.io/", "GET", qs(m), NULL, &r);
        CHECK_INT(r.status, 400);
        CHECK_INT(r.len, 0);
        expect_closed(m, "transport error");
        return;
    }
    int fd = http_send("/engine.io/", "GET", qs(m), NULL);
    if (m->qlen || m->state == M_UPG) {
        resp r;
        held_result(fd, &r);
        CHECK_INT(r.status, 200);
        CHECK_STR(r.body, m->qlen ? m->queue : "6");
        m->qlen = 0;
        return;
    }
    CHECK(quiet(fd, 30));
    m->held = fd;
}

static void op_post_end(model *m, bool bad)
{
    resp r;
    http("/engine.io/", "POST", qs(m), bad ? "9x" : "1", &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "ok");
    expect_closed(m, bad ? "parse error" : "transport close");
}

/* A message and a bad packet in one body: the echo is queued, then the session ends; the
 * held GET gets "1" (the queue goes with the session). */
static void op_post_msg_bad(model *m)
{
    char body[64];
    snprintf(body, sizeof body,
             "4m%u\x1e"
             "9x",
             m->counter++);
    resp r;
    http("/engine.io/", "POST", qs(m), body, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "ok");
    m->qlen = 0;
    expect_closed(m, "parse error");
}

static void op_probe_open(model *m)
{
    char q[128];
    snprintf(q, sizeof q, "EIO=4&transport=websocket&sid=%s", m->sid);
    m->probe = ws_open("/engine.io/", q);
    CHECK(m->probe >= 0);
    m->state = M_PROBE;
}

static void op_probe_ping(model *m)
{
    ws_send(m->probe, 1, "2probe", 6);
    char buf[64];
    size_t n;
    CHECK_INT(ws_recv(m->probe, buf, sizeof buf, &n), 1);
    CHECK_STR(buf, "3probe");
    m->state = M_UPG;
    if (m->held >= 0) {
        resp r;
        held_result(m->held, &r);
        m->held = -1;
        CHECK_INT(r.status, 200);
        CHECK_STR(r.body, "6");
    }
}

static void op_upgrade(model *m)
{
    ws_send(m->probe, 1, "5", 1);
    m->ws = m->probe;
    m->probe = -1;
    m->state = M_WS;
    /* The queue goes out on the WebSocket, one frame per packet. */
    char *p = m->qlen ? m->queue : NULL;
    while (p) {
        char *sep = strchr(p, 0x1e);
        if (sep) *sep = 0;
        char buf[256];
        size_t n;
        CHECK_INT(ws_recv(m->ws, buf, sizeof buf, &n), 1);
        CHECK_STR(buf, p);
        p = sep ? sep + 1 : NULL;
    }
    m->qlen = 0;
}

static void op_probe_bad(model *m)
{
    ws_send(m->probe, 1, "4x", 2);
    char buf[64];
    size_t n;
    CHECK_INT(ws_recv(m->probe, buf, sizeof buf, &n), 8);
    close(m->probe);
    m->probe = -1;
    m->state = M_POLL;
    deliver(m);
}

static void op_ws_msg(model *m)
{
    char pkt[64], buf[256];
    size_t n;
    if (rnd(2)) {
        int len = snprintf(pkt, sizeof pkt, "4w%u", m->counter++);
        ws_send(m->ws, 1, pkt, (size_t)len);
        CHECK_INT(ws_recv(m->ws, buf, sizeof buf, &n), 1);
        CHECK_STR(buf, pkt);
    } else {
        pkt[0] = (char)0xff;
        pkt[1] = 0;
        pkt[2] = (char)(m->counter++ & 0x7f);
        ws_send(m->ws, 2, pkt, 3);
        CHECK_INT(ws_recv(m->ws, buf, sizeof buf, &n), 2);
        CHECK(n == 3 && !memcmp(buf, pkt, 3));
    }
}

static void op_poll_on_ws(model *m)
{
    resp r;
    http("/engine.io/", "GET", qs(m), NULL, &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(r.body, "{\"code\":3,\"message\":\"Bad request\"}");
}

static void op_second_ws(model *m)
{
    char q[128], buf[64];
    size_t n;
    snprintf(q, sizeof q, "EIO=4&transport=websocket&sid=%s", m->sid);
    int fd = ws_open("/engine.io/", q);
    CHECK(fd >= 0);
    CHECK_INT(ws_recv(fd, buf, sizeof buf, &n), 8);
    close(fd);
}

static void op_ws_end(model *m)
{
    switch (rnd(3)) {
    case 0:
        ws_send(m->ws, 1, "1", 1);
        expect_closed(m, "transport close");
        break;
    case 1:
        ws_send(m->ws, 8, "\x03\xe8", 2);
        expect_closed(m, "transport close");
        break;
    default:
        ws_send(m->ws, 1, "9", 1);
        expect_closed(m, "parse error");
        break;
    }
}

static void op_unknown(void)
{
    resp r;
    http("/engine.io/", "GET", "EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA", NULL, &r);
    CHECK_INT(r.status, 400);
    CHECK_STR(r.body, "{\"code\":1,\"message\":\"Session ID unknown\"}");
}

static bool trace;

static void step_model(model *m)
{
    unsigned k = rnd(100);
    if (trace)
        fprintf(stderr, "step: state %d k %u held %d qlen %zu\n", m->state, k, m->held, m->qlen);
    if (k < 4) {
        op_unknown();
        return;
    }
    switch (m->state) {
    case M_NONE:
    case M_CLOSED:
        if (m->state == M_CLOSED) {
            resp r;
            http("/engine.io/", "GET", qs(m), NULL, &r);
            CHECK_INT(r.status, 400);
        }
        op_handshake(m);
        break;
    case M_POLL:
        if (k < 40)
            op_post_msg(m);
        else if (k < 70)
            op_get(m);
        else if (k < 85)
            op_probe_open(m);
        else if (k < 90)
            op_post_end(m, k & 1);
        else if (k < 93)
            op_post_msg_bad(m);
        else
            op_get(m);
        break;
    case M_PROBE:
        if (k < 30)
            op_post_msg(m);
        else if (k < 45)
            op_get(m);
        else if (k < 85)
            op_probe_ping(m);
        else if (k < 92)
            op_probe_bad(m);
        else
            op_second_ws(m);
        break;
    case M_UPG:
        if (k < 35)
            op_post_msg(m);
        else if (k < 50)
            op_get(m);
        else if (k < 85)
            op_upgrade(m);
        else
            op_probe_bad(m);
        break;
    case M_WS:
        if (k < 60)
            op_ws_msg(m);
        else if (k < 70)
            op_poll_on_ws(m);
        else if (k < 80)
            op_second_ws(m);
        else
            op_ws_end(m);
        break;
    }
}

static void model_free(model *m)
{
    if (m->held >= 0) close(m->held);
    if (m->ws >= 0) close(m->ws);
    if (m->probe >= 0) close(m->probe);
}

TEST(random_sequences)
{
    uint64_t t0 = now_ms();
    unsigned seqs = 0, steps = 0;
    for (; seqs < 60 && now_ms() - t0 < 6000; seqs++) {
        model m = {.held = -1, .ws = -1, .probe = -1};
        int before = test_failed_;
        unsigned n = 5 + rnd(40);
        for (unsigned i = 0; i < n && test_failed_ == before; i++, steps++)
            step_model(&m);
        model_free(&m);
        if (test_failed_ != before) {
            fprintf(stderr, "sequence %u failed (state %d)\n", seqs, m.state);
            break;
        }
    }
    fprintf(stderr, "model: %u sequences, %u steps in %llu ms\n", seqs, steps,
            (unsigned long long)(now_ms() - t0));
}

/* ---- timeouts, on /t/: pingInterval 150, pingTimeout 100, upgradeTimeout 150 ---- */

static void t_handshake(char sid[21])
{
    resp r;
    http("/t/", "GET", "EIO=4&transport=polling", NULL, &r);
    CHECK_INT(r.status, 200);
    memcpy(sid, r.body + 9, 20);
    sid[20] = 0;
}

TEST(timeouts)
{
    for (int round = 0; round < 6; round++) {
        char sid[21], q[96];
        t_handshake(sid);
        snprintf(q, sizeof q, "EIO=4&transport=polling&sid=%s", sid);
        unsigned pongs = rnd(3);
        for (unsigned i = 0; i < pongs; i++) {
            resp r;
            int fd = http_send("/t/", "GET", q, NULL);
            held_result(fd, &r);
            CHECK_STR(r.body, "2");
            http("/t/", "POST", q, "3", &r);
            CHECK_STR(r.body, "ok");
        }
        if (rnd(2)) {
            /* A probe that never sends 5: closed after the upgrade timeout, the session
             * goes on (and answers its next ping). */
            char wq[96], buf[64];
            size_t n;
            snprintf(wq, sizeof wq, "EIO=4&transport=websocket&sid=%s", sid);
            int ws = ws_open("/t/", wq);
            CHECK(ws >= 0);
            ws_send(ws, 1, "2probe", 6);
            CHECK_INT(ws_recv(ws, buf, sizeof buf, &n), 1);
            CHECK_STR(buf, "3probe");
            uint64_t a = now_ms();
            CHECK_INT(ws_recv(ws, buf, sizeof buf, &n), 8);
            CHECK(now_ms() - a < 1000);
            close(ws);
        }
        /* Then no pong: the next ping goes unanswered and the session ends. (After a probe
         * the ping may have been queued and timed out already: then the GET is refused.) */
        resp r;
        int fd = http_send("/t/", "GET", q, NULL);
        held_result(fd, &r);
        CHECK(r.status == 200 ? !strcmp(r.body, "2") : r.status == 400);
        CHECK_STR(closed_reason(sid), "ping timeout");
        http("/t/", "GET", q, NULL, &r);
        CHECK_INT(r.status, 400);
    }
}

TEST(send_msg)
{
    resp r;
    http("/p/", "GET", "EIO=4&transport=polling", NULL, &r);
    CHECK_INT(r.status, 200);
    char sid[21] = "", q[96], buf[256];
    memcpy(sid, r.body + 9, 20);
    snprintf(q, sizeof q, "EIO=4&transport=polling&sid=%s", sid);
    /* A second polling session: the two share one copy of each packet. */
    http("/p/", "GET", "EIO=4&transport=polling", NULL, &r);
    char sid2[21] = "", q2[96];
    memcpy(sid2, r.body + 9, 20);
    snprintf(q2, sizeof q2, "EIO=4&transport=polling&sid=%s", sid2);
    int ws = ws_open("/p/", "EIO=4&transport=websocket");
    CHECK(ws >= 0);
    size_t n;
    CHECK_INT(ws_recv(ws, buf, sizeof buf, &n), 1);
    wsx_loop_post(S.loop, publish_cb, NULL);
    CHECK_INT(ws_recv(ws, buf, sizeof buf, &n), 1);
    CHECK_STR(buf, "4to all");
    CHECK_INT(ws_recv(ws, buf, sizeof buf, &n), 2);
    CHECK(n == 2 && buf[0] == 1 && buf[1] == 2);
    CHECK(quiet(ws, 50));
    /* Polling sessions without a GET are not writable and hold what was published (7 + 2
     * bytes, over the high-water mark of 8); the WebSocket one is writable. */
    pthread_mutex_lock(&S.mu);
    CHECK_INT(S.n_psess, 3);
    CHECK(!S.writable[0] && !S.writable[1] && S.writable[2]);
    CHECK_INT(S.buffered[0], 0);
    CHECK_INT(S.buffered_after[0], 9);
    CHECK_INT(S.buffered_after[1], 9);
    CHECK_INT(S.drains, 0);
    pthread_mutex_unlock(&S.mu);
    http("/p/", "GET", q, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "4to all\x1e"
                      "bAQI=");
    http("/p/", "GET", q2, NULL, &r);
    CHECK_STR(r.body, "4to all\x1e"
                      "bAQI=");
    /* Each GET took a queue above the high-water mark: on_drain once per session. */
    for (int i = 0; i < 100 && S.drains < 2; i++)
        usleep(10000);
    CHECK_INT(S.drains, 2);
    close(ws);
}

TEST(close_after_publish)
{
    pthread_mutex_lock(&S.mu);
    S.n_psess = 0;
    pthread_mutex_unlock(&S.mu);
    char sids[3][21];
    int held[3];
    for (int i = 0; i < 3; i++) {
        resp r;
        http("/p/", "GET", "EIO=4&transport=polling", NULL, &r);
        CHECK_INT(r.status, 200);
        memcpy(sids[i], r.body + 9, 20);
        sids[i][20] = 0;
        char q[96];
        snprintf(q, sizeof q, "EIO=4&transport=polling&sid=%s", sids[i]);
        held[i] = http_send("/p/", "GET", q, NULL);
        CHECK(quiet(held[i], 30));
    }
    wsx_loop_post(S.loop, publish_close_cb, NULL);
    for (int i = 0; i < 3; i++) {
        resp r;
        held_result(held[i], &r);
        CHECK_INT(r.status, 200);
        CHECK_STR(r.body, "4bye\x1e"
                          "1");
        CHECK_STR(closed_reason(sids[i]), "forced close");
    }
}

TEST(allow_request)
{
    resp r;
    http("/a/", "GET", "EIO=4&transport=polling", NULL, &r);
    CHECK_INT(r.status, 200);
    int fd = tcp();
    const char req[] = "GET /a/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Deny: 1\r\n"
                       "Connection: close\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    char buf[2048];
    size_t n = read_all(fd, buf, sizeof buf, 3000);
    close(fd);
    parse_resp(buf, n, &r);
    CHECK_INT(r.status, 403);
    CHECK_STR(r.body, "{\"code\":4,\"message\":\"Forbidden\"}");
}

/* A freed engine's route stays and answers 503 (polling and WebSocket); freeing it again is
 * a no-op (stop_cb does). Runs last on /t/. */
TEST(freed_engine)
{
    char sid[21], q[96];
    t_handshake(sid);
    snprintf(q, sizeof q, "EIO=4&transport=polling&sid=%s", sid);
    int held = http_send("/t/", "GET", q, NULL);
    CHECK(quiet(held, 20));
    wsx_loop_post(S.loop, free_t_cb, NULL);
    resp r;
    held_result(held, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.body, "1");
    CHECK_STR(closed_reason(sid), "server shutting down");
    http("/t/", "GET", "EIO=4&transport=polling", NULL, &r);
    CHECK_INT(r.status, 503);
    CHECK(ws_open("/t/", "EIO=4&transport=websocket") < 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *seed = getenv("WSX_SEED");
    trace = getenv("WSX_TRACE") != NULL;
    rng = seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL) * 2654435761u;
    if (!rng) rng = 1;
    fprintf(stderr, "WSX_SEED=%llu\n", (unsigned long long)rng);
    alarm(60);
    server_start();
    pthread_t th;
    CHECK(pthread_create(&th, NULL, server_thread, NULL) == 0);
    RUN(random_sequences);
    RUN(timeouts);
    RUN(send_msg);
    RUN(close_after_publish);
    RUN(allow_request);
    RUN(freed_engine);
    wsx_loop_post(S.loop, stop_cb, NULL);
    pthread_join(th, NULL);
    CHECK_INT(S.opens, S.closes);
    wsx_server_free(S.srv);
    wsx_loop_free(S.loop);
    return test_summary("eio_session");
}
