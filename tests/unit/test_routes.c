/*
 * Routes on a server (wsx_server_route, wsx_server_ws_route), over real sockets: exact and
 * prefix precedence, the default route, 404, 405 with Allow, 413 per route, a POST body
 * received whole, a held request answered from a timer while pipelined requests to other
 * routes wait their turn, and two WebSocket paths with their own callbacks on one server.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include "test.h"
#include "net_test.h"
#include "wsx.h"

/* ---- the server: each handler answers "<route>:<method> <path>[ body]" ---- */

typedef struct rsrv {
    wsx_loop *loop;
    wsx_server *srv;
    uint16_t port;
    wsx_http_req *held;
    int held_answered;
    wsx_timer *watchdog;
    bool timed_out;
    bool default_route; /* on_http set */
} rsrv;

static void answer(wsx_http_req *r, const char *route)
{
    size_t ml, pl, bl;
    const char *m = wsx_http_req_method(r, &ml);
    const char *p = wsx_http_req_path(r, &pl);
    const uint8_t *b = wsx_http_req_body(r, &bl);
    char out[2048];
    int n = snprintf(out, sizeof out, "%s:%.*s %.*s%s%.*s", route, (int)ml, m, (int)pl, p,
                     bl ? " " : "", (int)bl, (const char *)b);
    CHECK_INT(wsx_http_respond(r, 200, NULL, 0, out, (size_t)n), 0);
}

static void h_exact(wsx_http_req *r, void *u)
{
    (void)u;
    answer(r, "exact");
}

static void h_prefix(wsx_http_req *r, void *u)
{
    answer(r, (const char *)u);
}

static void h_post(wsx_http_req *r, void *u)
{
    (void)u;
    answer(r, "post");
}

static void h_len(wsx_http_req *r, void *u)
{
    (void)u;
    size_t bl;
    const uint8_t *b = wsx_http_req_body(r, &bl);
    bool ok = true;
    for (size_t i = 0; i < bl; i++)
        ok &= b[i] == pattern(i);
    char out[64];
    int n = snprintf(out, sizeof out, "%zu %s", bl, ok ? "intact" : "corrupt");
    wsx_http_respond(r, 200, NULL, 0, out, (size_t)n);
}

/* Every accessor of a request, in one line. */
static void h_info(wsx_http_req *r, void *u)
{
    (void)u;
    size_t ql;
    const char *q = wsx_http_req_query(r, &ql);
    const wsx_http_header *h = wsx_http_req_header(r, "x-TEST");
    const wsx_http_request *head = wsx_http_req_head(r);
    char out[256];
    int n = snprintf(out, sizeof out, "q=%.*s%s h=%.*s peer=%.9s minor=%d nh=%zu head=%d srv=%d",
                     (int)ql, q ? q : "", q ? "" : "(none)", h ? (int)h->value_len : 4,
                     h ? h->value : "none", wsx_http_req_peer(r), head->version_minor,
                     head->n_headers, wsx_http_req_is_head(r), wsx_http_req_server(r) != NULL);
    wsx_http_respond(r, 200, NULL, 0, out, (size_t)n);
}

static void h_default(wsx_http_req *r, void *u)
{
    (void)u;
    answer(r, "default");
}

static void held_timer(wsx_timer *t, void *arg)
{
    (void)t;
    rsrv *s = arg;
    s->held_answered++;
    answer(s->held, "held");
    s->held = NULL;
}

static void h_hold(wsx_http_req *r, void *u)
{
    rsrv *s = u;
    s->held = r;
    wsx_timer_start(s->loop, 30, 0, held_timer, s, NULL);
}

static void watchdog(wsx_timer *t, void *arg)
{
    (void)t;
    rsrv *s = arg;
    s->timed_out = true;
    s->watchdog = NULL;
    wsx_server_shutdown(s->srv, 100);
}

static void stop(void *arg)
{
    rsrv *s = arg;
    if (s->watchdog) wsx_timer_stop(s->watchdog);
    s->watchdog = NULL;
    wsx_server_shutdown(s->srv, 500);
}

static void start(rsrv *s, bool with_default)
{
    memset(s, 0, sizeof *s);
    s->loop = new_loop();
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    o.log_level = WSX_LOG_ERROR;
    o.user = s;
    if (with_default)
        o.on_http = h_default;
    else
        o.path = "/ws"; /* the default route's WebSocket: elsewhere no route answers (404) */
    CHECK_INT(wsx_server_start(s->loop, &o, &s->srv, NULL), 0);
    s->port = wsx_server_port(s->srv);
    wsx_route_opts ro = {.on_request = h_exact};
    CHECK_INT(wsx_server_route(s->srv, "/a", &ro), 0);
    CHECK_INT(wsx_server_route(s->srv, "/a", &ro), WSX_EINVAL); /* routed already */
    CHECK_INT(wsx_server_route(s->srv, "a", &ro), WSX_EINVAL);
    ro = (wsx_route_opts){.on_request = h_prefix, .user = "prefix-a"};
    CHECK_INT(wsx_server_route(s->srv, "/a/*", &ro), 0);
    ro = (wsx_route_opts){.on_request = h_prefix, .user = "prefix-ab"};
    CHECK_INT(wsx_server_route(s->srv, "/a/b/*", &ro), 0);
    ro = (wsx_route_opts){.methods = "POST", .max_body = 10, .on_request = h_post};
    CHECK_INT(wsx_server_route(s->srv, "/post", &ro), 0);
    ro = (wsx_route_opts){.on_request = h_info};
    CHECK_INT(wsx_server_route(s->srv, "/info", &ro), 0);
    ro = (wsx_route_opts){.methods = "PUT, POST", .max_body = 2u << 20, .on_request = h_len};
    CHECK_INT(wsx_server_route(s->srv, "/upload", &ro), 0);
    ro = (wsx_route_opts){.methods = "GET", .on_request = h_hold, .user = s};
    CHECK_INT(wsx_server_route(s->srv, "/hold", &ro), 0);
    ro = (wsx_route_opts){0};
    CHECK_INT(wsx_server_route(s->srv, "/none", &ro), WSX_EINVAL); /* no handler */
    wsx_timer_start(s->loop, 15000, 0, watchdog, s, &s->watchdog);
}

static void run(rsrv *s, void *(*client)(void *))
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client, s) == 0);
    wsx_loop_run(s->loop);
    pthread_join(t, NULL);
    CHECK(!s->timed_out);
    wsx_server_free(s->srv);
    wsx_loop_free(s->loop);
}

/* ---- a blocking client ---- */

static int cli_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool cli_send(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0) return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

static bool no_body;

/* One response, read byte by byte (so a pipelined next one stays in the socket): returns
 * the status (-1 when the connection ended first), its head in head and body in body. */
static int cli_response(int fd, char *head, size_t hcap, char *body, size_t bcap)
{
    body[0] = '\0';
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        char c;
        if (n + 1 >= hcap || recv(fd, &c, 1, 0) != 1) return -1;
        head[n++] = c;
    }
    head[n] = '\0';
    const char *cl = strstr(head, "Content-Length: ");
    size_t len = cl ? (size_t)atol(cl + 16) : 0;
    if (no_body) len = 0; /* the answer to a HEAD */
    if (len >= bcap) return -1;
    for (size_t got = 0; got < len;) {
        ssize_t k = recv(fd, body + got, len - got, 0);
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    body[len] = '\0';
    return atoi(head + 9);
}

/* Sends req on a new connection and reads one response. */
static int request(uint16_t port, const char *req, char *head, char *body)
{
    int fd = cli_connect(port);
    if (fd < 0) return -1;
    int st = cli_send(fd, req) ? cli_response(fd, head, 2048, body, 2048) : -1;
    close(fd);
    return st;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\n\r\n"

typedef struct result {
    int st[16];
    char body[16][2048];
    char head[16][2048];
} result;

static result R;

static void record(int i, int st, const char *head, const char *body)
{
    R.st[i] = st;
    snprintf(R.head[i], sizeof R.head[i], "%s", head);
    snprintf(R.body[i], sizeof R.body[i], "%s", body);
}

static void *precedence_client(void *arg)
{
    rsrv *s = arg;
    static const char *const reqs[] = {
        GET("/a"),
        GET("/a/x"),
        GET("/a/b/c"),
        GET("/a/b"),
        GET("/ab"),
        GET("/a?q"),
        GET("/zzz"),
        "GET /info?room=x&y HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n\r\n",
        "GET /info HTTP/1.0\r\n\r\n",
    };
    char head[2048], body[2048];
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        int st = request(s->port, reqs[i], head, body);
        record((int)i, st, head, body);
    }
    wsx_loop_post(s->loop, stop, s);
    return NULL;
}

/* An exact route wins over prefixes, the longest prefix over shorter ones, and paths no
 * route takes go to the default route (on_http), or get 404 without one (a server without
 * on_http and path has its WebSocket on every path: 426 there, as before routes). */
TEST(exact_then_longest_prefix_then_default)
{
    rsrv s;
    memset(&R, 0, sizeof R);
    start(&s, true);
    run(&s, precedence_client);
    CHECK_STR(R.body[0], "exact:GET /a");
    CHECK_STR(R.body[1], "prefix-a:GET /a/x");
    CHECK_STR(R.body[2], "prefix-ab:GET /a/b/c");
    CHECK_STR(R.body[3], "prefix-a:GET /a/b"); /* "/a/b/" and the asterisk needs the slash */
    CHECK_STR(R.body[4], "default:GET /ab");
    CHECK_STR(R.body[5], "exact:GET /a"); /* the query is not part of the path */
    CHECK_STR(R.body[6], "default:GET /zzz");
    CHECK_STR(R.body[7], "q=room=x&y h=yes peer=127.0.0.1 minor=1 nh=2 head=0 srv=1");
    CHECK_STR(R.body[8], "q=(none) h=none peer=127.0.0.1 minor=0 nh=0 head=0 srv=1");

    memset(&R, 0, sizeof R);
    start(&s, false);
    run(&s, precedence_client);
    CHECK_STR(R.body[0], "exact:GET /a");
    CHECK_INT(R.st[4], 404);
    CHECK_INT(R.st[6], 404);
}

static void *methods_client(void *arg)
{
    rsrv *s = arg;
    char head[2048], body[2048];
    int st = request(s->port, GET("/post"), head, body);
    record(0, st, head, body);
    /* A body within the limit, sent in two pieces: the handler sees it whole. */
    int fd = cli_connect(s->port);
    cli_send(fd, "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123");
    usleep(30000);
    cli_send(fd, "456789");
    st = cli_response(fd, head, sizeof head, body, sizeof body);
    record(1, st, head, body);
    close(fd);
    /* One byte above the route's limit (the server's max_body is 1 MiB). */
    st = request(s->port, "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n0123456789a",
                 head, body);
    record(2, st, head, body);
    /* HEAD goes where GET does; the Allow list is the route's. */
    no_body = true;
    st = request(s->port, "HEAD /hold HTTP/1.1\r\nHost: x\r\n\r\n", head, body);
    no_body = false;
    record(3, st, head, body);
    st = request(s->port, "DELETE /hold HTTP/1.1\r\nHost: x\r\n\r\n", head, body);
    record(4, st, head, body);
    /* An upgrade on an HTTP route: no WebSocket endpoint there. */
    st = request(s->port,
                 "GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 head, body);
    record(5, st, head, body);
    /* A route's limit above the server's max_body: 1.5 MiB arrives whole. */
    size_t big = 3u << 19;
    char *req = malloc(big + 128);
    int hl =
        snprintf(req, 128, "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", big);
    for (size_t i = 0; i < big; i++)
        req[hl + (int)i] = (char)pattern(i);
    req[hl + (int)big] = '\0';
    fd = cli_connect(s->port);
    size_t left = (size_t)hl + big;
    for (const char *p = req; left;) {
        ssize_t k = send(fd, p, left, MSG_NOSIGNAL);
        if (k <= 0) break;
        p += k;
        left -= (size_t)k;
    }
    st = cli_response(fd, head, sizeof head, body, sizeof body);
    record(6, st, head, body);
    close(fd);
    free(req);
    wsx_loop_post(s->loop, stop, s);
    return NULL;
}

TEST(methods_405_and_body_413)
{
    rsrv s;
    memset(&R, 0, sizeof R);
    start(&s, true);
    run(&s, methods_client);
    CHECK_INT(R.st[0], 405);
    CHECK(strstr(R.head[0], "\r\nAllow: POST\r\n") != NULL);
    CHECK_INT(R.st[1], 200);
    CHECK_STR(R.body[1], "post:POST /post 0123456789");
    CHECK_INT(R.st[2], 413);
    CHECK(strstr(R.head[2], "Connection: close") != NULL);
    CHECK_INT(R.st[3], 200);
    CHECK_INT(s.held_answered, 1);
    CHECK_INT(R.st[4], 405);
    CHECK(strstr(R.head[4], "\r\nAllow: GET\r\n") != NULL);
    CHECK_INT(R.st[5], 404);
    CHECK_INT(R.st[6], 200);
    CHECK_STR(R.body[6], "1572864 intact");
}

static void *pipeline_client(void *arg)
{
    rsrv *s = arg;
    char head[2048], body[2048];
    int fd = cli_connect(s->port);
    /* One write: the held request first, then two other routes; answers come in order. */
    cli_send(fd, GET("/hold") GET("/a") GET("/a/b/x") GET("/post"));
    for (int i = 0; i < 4; i++) {
        int st = cli_response(fd, head, sizeof head, body, sizeof body);
        record(i, st, head, body);
    }
    close(fd);
    wsx_loop_post(s->loop, stop, s);
    return NULL;
}

/* A request held by its handler and answered from a timer: the pipelined requests behind
 * it, for other routes, are answered after it, in order. */
TEST(held_request_answered_later_in_order)
{
    rsrv s;
    memset(&R, 0, sizeof R);
    start(&s, true);
    run(&s, pipeline_client);
    CHECK_INT(s.held_answered, 1);
    CHECK_STR(R.body[0], "held:GET /hold");
    CHECK_STR(R.body[1], "exact:GET /a");
    CHECK_STR(R.body[2], "prefix-ab:GET /a/b/x");
    CHECK_INT(R.st[3], 405);
}

/* ---- a streamed response that waits for the drain ---- */

#define CHUNK    (16u << 10)
#define N_CHUNKS 64u

typedef struct streamer {
    rsrv s;
    unsigned sent, drains, backpressured;
    size_t got;
    bool intact;
    int status;
} streamer;

static streamer ST;

static uint8_t chunk_byte(size_t i)
{
    return (uint8_t)(i * 13u + (i >> 14));
}

/* Writes chunks until the queue is above the high-water mark or all are written. */
static void st_pump(wsx_http_req *r)
{
    static uint8_t buf[CHUNK];
    while (ST.sent < N_CHUNKS) {
        for (size_t i = 0; i < CHUNK; i++)
            buf[i] = chunk_byte((size_t)ST.sent * CHUNK + i);
        int rc = wsx_http_write(r, buf, CHUNK);
        ST.sent++;
        if (rc == WSX_EBACKPRESSURE) {
            ST.backpressured++;
            return;
        }
        CHECK_INT(rc, 0);
    }
    wsx_http_end(r);
}

static void st_drain(wsx_http_req *r, void *arg)
{
    (void)arg;
    ST.drains++;
    st_pump(r);
}

static void h_stream(wsx_http_req *r, void *u)
{
    (void)u;
    CHECK_INT(wsx_http_begin(r, 200, NULL, 0), 0);
    wsx_http_on_drain(r, st_drain, NULL);
    st_pump(r);
}

static void *stream_client(void *arg)
{
    rsrv *s = arg;
    int fd = cli_connect(s->port);
    cli_send(fd, GET("/stream"));
    usleep(100000); /* let the queue fill up */
    char head[2048];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        if (n + 1 >= sizeof head || recv(fd, head + n, 1, 0) != 1) break;
        n++;
    }
    head[n] = '\0';
    ST.status = atoi(head + 9);
    ST.intact = true;
    static uint8_t buf[65536];
    for (ssize_t k; (k = recv(fd, buf, sizeof buf, 0)) > 0;) {
        for (ssize_t i = 0; i < k; i++)
            ST.intact &= buf[i] == chunk_byte(ST.got + (size_t)i);
        ST.got += (size_t)k;
    }
    close(fd);
    wsx_loop_post(s->loop, stop, s);
    return NULL;
}

/* wsx_http_write() returns WSX_EBACKPRESSURE above the high-water mark, and on_drain asks
 * for more once the client has read down to the low-water mark: the whole body arrives,
 * with the queue never far above the high-water mark. */
TEST(streamed_response_waits_for_drain)
{
    memset(&ST, 0, sizeof ST);
    rsrv *s = &ST.s;
    s->loop = new_loop();
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    o.log_level = WSX_LOG_ERROR;
    o.send_high_water = 64u << 10;
    o.send_low_water = 16u << 10;
    CHECK_INT(wsx_server_start(s->loop, &o, &s->srv, NULL), 0);
    s->port = wsx_server_port(s->srv);
    wsx_route_opts ro = {.methods = "GET", .on_request = h_stream};
    CHECK_INT(wsx_server_route(s->srv, "/stream", &ro), 0);
    wsx_timer_start(s->loop, 15000, 0, watchdog, s, &s->watchdog);
    run(s, stream_client);
    CHECK_INT(ST.status, 200);
    CHECK_INT(ST.sent, N_CHUNKS);
    CHECK(ST.backpressured >= 1); /* the first writes are corked: above 64 KiB at once */
    CHECK_INT(ST.drains, ST.backpressured);
    CHECK(ST.got == (size_t)N_CHUNKS * CHUNK);
    CHECK(ST.intact);
}

/* ---- two WebSocket routes ---- */

typedef struct wsr {
    const char *name;
    int upgrades, opens, closes;
    char got[64];
} wsr;

typedef struct wstest {
    rsrv s;
    wsr a, b;
    int dflt_opens;
    int replies;
    char reply[2][64];
    int ends;
    int st426;
} wstest;

static wstest W;

static int ws_upgrade(wsx_server *srv, const wsx_http_req *r, void **cu, void *u)
{
    (void)srv;
    wsr *w = u;
    w->upgrades++;
    size_t pl;
    const char *p = wsx_http_req_path(r, &pl);
    CHECK(pl == 2 && p[1] == w->name[0]);
    *cu = w;
    return 0;
}

static void ws_open(wsx_conn *c, void *u)
{
    wsr *w = u;
    CHECK(wsx_conn_user(c) == w);
    w->opens++;
}

static void ws_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    wsr *w = u;
    snprintf(w->got, sizeof w->got, "%.*s", (int)m->len, (const char *)m->data);
    char out[80];
    int n = snprintf(out, sizeof out, "%s:%.*s", w->name, (int)m->len, (const char *)m->data);
    wsx_send(c, out, (size_t)n, WSX_TEXT);
}

static void ws_close(wsx_conn *c, int code, const char *reason, size_t len, void *u)
{
    (void)c, (void)code, (void)reason, (void)len;
    ((wsr *)u)->closes++;
}

static void dflt_open(wsx_conn *c, void *u)
{
    (void)c, (void)u;
    W.dflt_opens++;
}

static void cl_open(wsx_conn *c, void *u)
{
    (void)u;
    wsx_send(c, "hi", 2, WSX_TEXT);
}

static void cl_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    int i = (int)(intptr_t)u;
    snprintf(W.reply[i], sizeof W.reply[i], "%.*s", (int)m->len, (const char *)m->data);
    W.replies++;
    wsx_close(c, 1000, "done");
}

static void cl_end(wsx_client *cl, int err, const char *why, void *u)
{
    (void)cl, (void)err, (void)why, (void)u;
    if (++W.ends == 3) stop(&W.s);
}

static void http_done(void *arg)
{
    (void)arg;
    if (++W.ends == 3) stop(&W.s);
}

static void *ws_http_client(void *arg)
{
    rsrv *s = arg;
    char head[2048], body[2048];
    W.st426 = request(s->port, GET("/a"), head, body);
    wsx_loop_post(s->loop, http_done, NULL);
    return NULL;
}

TEST(two_websocket_routes)
{
    memset(&W, 0, sizeof W);
    W.a.name = "a";
    W.b.name = "b";
    rsrv *s = &W.s;
    s->loop = new_loop();
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    o.log_level = WSX_LOG_ERROR;
    o.on_open = dflt_open;
    CHECK_INT(wsx_server_start(s->loop, &o, &s->srv, NULL), 0);
    s->port = wsx_server_port(s->srv);
    wsx_ws_route_opts wo = {.on_upgrade = ws_upgrade,
                            .on_open = ws_open,
                            .on_message = ws_message,
                            .on_close = ws_close};
    wo.user = &W.a;
    CHECK_INT(wsx_server_ws_route(s->srv, "/a", &wo), 0);
    wo.user = &W.b;
    CHECK_INT(wsx_server_ws_route(s->srv, "/b", &wo), 0);
    CHECK_INT(wsx_server_ws_route(s->srv, "/b", &wo), WSX_EINVAL);
    /* A connection names its route in one byte: 255 WebSocket routes at most. */
    wsx_ws_route_opts none = {0};
    for (int i = 3; i <= 255; i++) {
        char p[16];
        snprintf(p, sizeof p, "/r%d", i);
        CHECK_INT(wsx_server_ws_route(s->srv, p, &none), 0);
    }
    CHECK_INT(wsx_server_ws_route(s->srv, "/r256", &none), WSX_ELIMIT);
    wsx_timer_start(s->loop, 15000, 0, watchdog, s, &s->watchdog);
    char url[2][64];
    for (int i = 0; i < 2; i++) {
        snprintf(url[i], sizeof url[i], "ws://127.0.0.1:%u/%c", s->port, "ab"[i]);
        wsx_client_opts co = wsx_client_defaults();
        co.url = url[i];
        co.on_open = cl_open;
        co.on_message = cl_message;
        co.on_end = cl_end;
        co.user = (void *)(intptr_t)i;
        CHECK_INT(wsx_client_connect(s->loop, &co, NULL, NULL), 0);
    }
    /* A plain GET on a WebSocket route: 426. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, ws_http_client, s) == 0);
    wsx_loop_run(s->loop);
    pthread_join(t, NULL);
    CHECK(!s->timed_out);
    wsx_server_free(s->srv);
    wsx_loop_free(s->loop);
    CHECK_INT(W.a.upgrades, 1);
    CHECK_INT(W.b.upgrades, 1);
    CHECK_INT(W.a.opens, 1);
    CHECK_INT(W.b.opens, 1);
    CHECK_INT(W.a.closes, 1);
    CHECK_INT(W.b.closes, 1);
    CHECK_INT(W.dflt_opens, 0);
    CHECK_STR(W.a.got, "hi");
    CHECK_STR(W.b.got, "hi");
    CHECK_STR(W.reply[0], "a:hi");
    CHECK_STR(W.reply[1], "b:hi");
    CHECK_INT(W.st426, 426);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_T(exact_then_longest_prefix_then_default);
    RUN_T(methods_405_and_body_413);
    RUN_T(held_request_answered_later_in_order);
    RUN_T(streamed_response_waits_for_drain);
    RUN_T(two_websocket_routes);
    return test_summary("routes");
}
