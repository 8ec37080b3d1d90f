/*
 * Server and client in one process over real sockets on 127.0.0.1: the connection life
 * cycle, closing from either side, limits, deadlines, backpressure, shutdown, reconnect.
 * Every scenario runs its loop under a watchdog timer so a hang fails instead of blocking.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "test.h"
#include "ws/ws.h"
#include "wsx.h"

typedef struct scene {
    wsx_loop *loop;
    wsx_server *srv;
    wsx_client *cl;
    char url[128];
    /* what happened */
    int srv_open, srv_close, srv_close_code, srv_msgs, srv_drains;
    int cli_open, cli_close, cli_close_code, cli_msgs, cli_end, cli_end_err, cli_reconnecting;
    int pongs, srv_pongs;
    char cli_end_why[256];
    char srv_close_reason[128];
    char cli_close_reason[128];
    char last_msg[256];
    size_t last_len;
    int last_type;
    /* scenario knobs */
    int echo;            /* server echoes */
    int client_sends;    /* messages the client sends on open */
    size_t client_size;  /* their size */
    int close_after;     /* the client closes after this many echoes */
    int server_closes;   /* the server closes on its first message with 4001 */
    bool bad_then_close; /* the client sends invalid UTF-8 as text and closes with 1000 at once */
    bool timed_out;
    wsx_timer *watchdog;
    wsx_conn *srv_conn;
    bool stop_on_end;
} scene;

static void watchdog_fired(wsx_timer *t, void *arg)
{
    (void)t;
    scene *s = arg;
    s->timed_out = true;
    s->watchdog = NULL;
    wsx_loop_stop(s->loop);
}

static void s_open(wsx_conn *c, void *u)
{
    scene *s = u;
    s->srv_open++;
    s->srv_conn = c;
}

static void s_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    scene *s = u;
    s->srv_msgs++;
    if (s->server_closes) {
        wsx_close(c, 4001, "server says bye");
        return;
    }
    if (s->echo) wsx_send(c, m->data, m->len, m->type);
}

static void s_close(wsx_conn *c, int code, const char *reason, size_t len, void *u)
{
    scene *s = u;
    (void)c;
    s->srv_close++;
    s->srv_close_code = code;
    snprintf(s->srv_close_reason, sizeof s->srv_close_reason, "%.*s", (int)len, reason);
    if (s->srv_conn == c) s->srv_conn = NULL;
}

static void s_drain(wsx_conn *c, void *u)
{
    (void)c;
    ((scene *)u)->srv_drains++;
}

static void c_open(wsx_conn *c, void *u)
{
    scene *s = u;
    s->cli_open++;
    if (s->client_sends) {
        uint8_t *buf = malloc(s->client_size + 1);
        for (size_t i = 0; i < s->client_size; i++)
            buf[i] = (uint8_t)('a' + i % 26);
        for (int i = 0; i < s->client_sends; i++)
            wsx_send(c, buf, s->client_size, WSX_TEXT);
        free(buf);
    }
    if (s->bad_then_close) {
        wsx_send(c, "\xff\xfe", 2, WSX_TEXT);
        wsx_close(c, 1000, "done");
    }
}

static void c_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    scene *s = u;
    s->cli_msgs++;
    s->last_len = m->len;
    s->last_type = m->type;
    snprintf(s->last_msg, sizeof s->last_msg, "%.*s", (int)(m->len < 200 ? m->len : 200),
             (const char *)m->data);
    if (s->close_after && s->cli_msgs == s->close_after) wsx_close(c, 1000, "client done");
}

static void c_close(wsx_conn *c, int code, const char *reason, size_t len, void *u)
{
    scene *s = u;
    (void)c;
    s->cli_close++;
    s->cli_close_code = code;
    snprintf(s->cli_close_reason, sizeof s->cli_close_reason, "%.*s", (int)len, reason);
}

static void c_pong(wsx_conn *c, const uint8_t *d, size_t n, void *u)
{
    (void)c;
    (void)d;
    (void)n;
    ((scene *)u)->pongs++;
}

static void c_reconnecting(wsx_client *cl, unsigned attempt, uint32_t delay, int err, void *u)
{
    (void)cl;
    (void)attempt;
    (void)delay;
    (void)err;
    ((scene *)u)->cli_reconnecting++;
}

static void c_end(wsx_client *cl, int err, const char *why, void *u)
{
    scene *s = u;
    (void)cl;
    s->cli_end++;
    s->cli_end_err = err;
    snprintf(s->cli_end_why, sizeof s->cli_end_why, "%s", why ? why : "");
    s->cl = NULL;
    if (s->stop_on_end) {
        if (s->srv) wsx_server_shutdown(s->srv, 1000);
        if (s->watchdog) wsx_timer_stop(s->watchdog);
        s->watchdog = NULL;
    }
}

static void s_pong(wsx_conn *c, const uint8_t *d, size_t n, void *u)
{
    (void)c;
    (void)d;
    (void)n;
    ((scene *)u)->srv_pongs++;
}

static wsx_server_opts server_opts(scene *s)
{
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    o.port = 0;
    o.on_open = s_open;
    o.on_message = s_message;
    o.on_close = s_close;
    o.on_drain = s_drain;
    o.on_pong = s_pong;
    o.user = s;
    return o;
}

static wsx_client_opts client_opts(scene *s)
{
    wsx_client_opts o = wsx_client_defaults();
    o.url = s->url;
    o.on_open = c_open;
    o.on_message = c_message;
    o.on_close = c_close;
    o.on_pong = c_pong;
    o.on_reconnecting = c_reconnecting;
    o.on_end = c_end;
    o.user = s;
    return o;
}

static void start(scene *s, const wsx_server_opts *so)
{
    CHECK_INT(wsx_loop_new(&s->loop), 0);
    if (so) {
        CHECK_INT(wsx_server_start(s->loop, so, &s->srv, NULL), 0);
        snprintf(s->url, sizeof s->url, "ws://127.0.0.1:%u/chat", wsx_server_port(s->srv));
    }
    wsx_timer_start(s->loop, 10000, 0, watchdog_fired, s, &s->watchdog);
}

static void finish(scene *s)
{
    if (s->watchdog) wsx_timer_stop(s->watchdog);
    s->watchdog = NULL;
    if (s->srv) wsx_server_shutdown(s->srv, 500);
    if (s->cl) wsx_client_close(s->cl, 1000, NULL);
    wsx_loop_run(s->loop);
    wsx_server_free(s->srv);
    wsx_loop_free(s->loop);
}

TEST(echo_and_client_close)
{
    scene s = {
        .echo = 1, .client_sends = 3, .client_size = 10, .close_after = 3, .stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(s.srv_open, 1);
    CHECK_INT(s.cli_open, 1);
    CHECK_INT(s.srv_msgs, 3);
    CHECK_INT(s.cli_msgs, 3);
    CHECK_STR(s.last_msg, "abcdefghij");
    CHECK_INT(s.last_type, WSX_TEXT);
    /* The client closed with 1000: both sides report it. */
    CHECK_INT(s.srv_close, 1);
    CHECK_INT(s.srv_close_code, 1000);
    CHECK_STR(s.srv_close_reason, "client done");
    CHECK_INT(s.cli_close, 1);
    CHECK_INT(s.cli_close_code, 1000);
    CHECK_INT(s.cli_end, 1);
    CHECK_INT(s.cli_end_err, 0);
    finish(&s);
}

TEST(server_closes)
{
    scene s = {.server_closes = 1, .client_sends = 1, .client_size = 3, .stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(s.srv_close_code, 4001);
    CHECK_INT(s.cli_close_code, 4001);
    CHECK_INT(s.cli_end, 1);
    finish(&s);
}

/* The server fails the connection with 1007 for a message while the client's close (1000) is
 * already on its way: the close frames cross. The client must report the server's 1007, not
 * its own 1000 (the code wsx cat lost). */
TEST(crossing_close_reports_the_peers_code)
{
    scene s = {.bad_then_close = true, .stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(s.srv_close, 1);
    CHECK_INT(s.srv_close_code, 1007);
    CHECK_INT(s.cli_close, 1);
    CHECK_INT(s.cli_close_code, 1007);
    CHECK(strstr(s.cli_close_reason, "UTF-8") != NULL);
    CHECK_INT(s.cli_end, 1);
    CHECK_INT(s.cli_end_err, 0);
    finish(&s);
}

/* ---- admission: handshakes in progress per address, and the log's rate limit ---- */

static int adm_refused_lines, adm_suppressed_lines;

static void adm_log(int level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    if (strstr(msg, "refused (503)")) adm_refused_lines++;
    if (strstr(msg, "similar lines suppressed")) adm_suppressed_lines++;
}

static void adm_stop(wsx_timer *t, void *arg)
{
    (void)t;
    wsx_loop_stop(arg);
}

static void run_for(wsx_loop *loop, uint64_t ms)
{
    wsx_timer_start(loop, ms, 0, adm_stop, loop, NULL);
    wsx_loop_run(loop);
}

/* A silent TCP connection from src (127.0.0.x) to the server. */
static int silent_from(uint32_t src, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&from, sizeof from) < 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* "503" when the server answered 503 with Retry-After, "eof" when it closed, "" when the
 * connection is still open and silent. */
static const char *fate(int fd)
{
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? "" : "eof";
    if (n == 0) return "eof";
    buf[n] = '\0';
    return !strncmp(buf, "HTTP/1.1 503", 12) && strstr(buf, "\r\nRetry-After: 5\r\n") ? "503"
                                                                                      : "other";
}

TEST(admission_handshakes_per_ip)
{
    wsx_loop *loop;
    CHECK_INT(wsx_loop_new(&loop), 0);
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    o.max_handshakes_per_ip = 2;
    o.max_per_ip = 5;
    o.on_log = adm_log;
    wsx_server *srv;
    CHECK_INT(wsx_server_start(loop, &o, &srv, NULL), 0);
    uint16_t port = wsx_server_port(srv);
    adm_refused_lines = adm_suppressed_lines = 0;

    /* 12 silent sockets from 127.0.0.2: two are held, ten are answered 503 and closed, and
     * one log line says so (the rest are counted). */
    int a[12];
    for (int i = 0; i < 12; i++)
        a[i] = silent_from(0x7f000002, port);
    run_for(loop, 100);
    int held = 0, refused = 0;
    for (int i = 0; i < 12; i++) {
        const char *f = fate(a[i]);
        held += !strcmp(f, "");
        refused += !strcmp(f, "503");
    }
    CHECK_INT(held, 2);
    CHECK_INT(refused, 10);
    wsx_server_stats st;
    wsx_server_get_stats(srv, &st);
    CHECK_INT((int)st.refused_handshakes, 10);
    CHECK_INT((int)st.http_open, 2);
    CHECK_INT(adm_refused_lines, 1);

    /* Another address is not affected. */
    int b = silent_from(0x7f000003, port);
    run_for(loop, 50);
    CHECK_STR(fate(b), "");

    /* Once the held ones leave, the address is admitted again. */
    for (int i = 0; i < 12; i++)
        close(a[i]);
    run_for(loop, 50);
    int c = silent_from(0x7f000002, port);
    run_for(loop, 50);
    CHECK_STR(fate(c), "");
    wsx_server_get_stats(srv, &st);
    CHECK_INT((int)st.refused_handshakes, 10);
    CHECK_INT((int)st.http_open, 2);

    /* After the one-second window, the next refusal line carries the count of the nine
     * that were suppressed. */
    run_for(loop, 1100);
    int d[2];
    for (int i = 0; i < 2; i++)
        d[i] = silent_from(0x7f000003, port);
    run_for(loop, 50);
    CHECK_INT(adm_refused_lines + adm_suppressed_lines >= 2, 1);
    CHECK_INT(adm_suppressed_lines, 1);
    for (int i = 0; i < 2; i++)
        close(d[i]);
    close(b);
    close(c);
    wsx_server_shutdown(srv, 500);
    wsx_loop_run(loop);
    wsx_server_free(srv);
    wsx_loop_free(loop);
}

TEST(large_messages)
{
    /* 16 MiB - 1 KiB round trip, then one over the limit fails with 1009. */
    scene s = {.echo = 1,
               .client_sends = 1,
               .client_size = (16u << 20) - 1024,
               .close_after = 1,
               .stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(s.cli_msgs, 1);
    CHECK_INT(s.last_len, (16u << 20) - 1024);
    finish(&s);

    scene t = {.echo = 1, .client_sends = 1, .client_size = 70000, .stop_on_end = true};
    so = server_opts(&t);
    so.max_message = 65536;
    start(&t, &so);
    co = client_opts(&t);
    CHECK_INT(wsx_client_connect(t.loop, &co, &t.cl, NULL), 0);
    wsx_loop_run(t.loop);
    CHECK(!t.timed_out);
    CHECK_INT(t.srv_msgs, 0);
    CHECK_INT(t.srv_close_code, 1009);
    CHECK_STR(t.srv_close_reason, "frame exceeds the size limit");
    CHECK_INT(t.cli_close_code, 1009);
    finish(&t);
}

static int refuse_upgrade(wsx_server *srv, const wsx_http_req *rq, void **cu, void *u)
{
    (void)srv;
    (void)cu;
    (void)u;
    const wsx_http_header *h = wsx_http_req_header(rq, "authorization");
    return h ? 0 : 401;
}

TEST(upgrade_hook_refuses)
{
    scene s = {.stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    so.on_upgrade = refuse_upgrade;
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(s.srv_open, 0);
    CHECK_INT(s.cli_open, 0);
    CHECK_INT(s.cli_end, 1);
    CHECK_INT(s.cli_end_err, WSX_EHANDSHAKE);
    CHECK_STR(s.cli_end_why, "handshake failed: server answered 401 Unauthorized");
    finish(&s);

    /* With the header the same server accepts. */
    scene t = {
        .echo = 1, .client_sends = 1, .client_size = 1, .close_after = 1, .stop_on_end = true};
    so = server_opts(&t);
    so.on_upgrade = refuse_upgrade;
    start(&t, &so);
    co = client_opts(&t);
    wsx_http_header auth = {"Authorization", 13, "Bearer x", 8};
    co.headers = &auth;
    co.n_headers = 1;
    CHECK_INT(wsx_client_connect(t.loop, &co, &t.cl, NULL), 0);
    wsx_loop_run(t.loop);
    CHECK_INT(t.cli_open, 1);
    CHECK_INT(t.cli_msgs, 1);
    finish(&t);
}

/* on_upgrade allocates the connection's user data; the connection must give it back through
 * on_close (after on_open) or on_upgrade_failed (without one), never both, never neither. */
static int cu_made, cu_failed, cu_closed;
static bool cu_shutdown_in_hook;
static void *cu_last;

static int alloc_upgrade(wsx_server *srv, const wsx_http_req *rq, void **cu, void *u)
{
    (void)rq;
    (void)u;
    *cu = cu_last = malloc(32);
    cu_made++;
    /* The connection closes under the upgrade: the 101 can no longer be queued. */
    if (cu_shutdown_in_hook) wsx_server_shutdown(srv, 500);
    return 0;
}

static void free_failed_upgrade(wsx_server *srv, void *cu, void *u)
{
    (void)srv;
    (void)u;
    CHECK(cu == cu_last);
    cu_failed++;
    free(cu);
}

static void free_on_close(wsx_conn *c, int code, const char *reason, size_t len, void *u)
{
    cu_closed++;
    free(wsx_conn_user(c));
    s_close(c, code, reason, len, u);
}

TEST(upgrade_failed_releases_conn_user)
{
    /* The 101 write fails: no on_open, no on_close, on_upgrade_failed with the pointer. */
    scene s = {.stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    so.on_upgrade = alloc_upgrade;
    so.on_upgrade_failed = free_failed_upgrade;
    so.on_close = free_on_close;
    cu_made = cu_failed = cu_closed = 0;
    cu_shutdown_in_hook = true;
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(cu_made, 1);
    CHECK_INT(cu_failed, 1);
    CHECK_INT(cu_closed, 0);
    CHECK_INT(s.srv_open, 0);
    CHECK_INT(s.cli_open, 0);
    CHECK_INT(s.cli_end, 1);
    finish(&s);

    /* An upgrade that goes through: on_open, then on_close, and no on_upgrade_failed. */
    scene t = {
        .client_sends = 1, .client_size = 1, .echo = 1, .close_after = 1, .stop_on_end = true};
    so = server_opts(&t);
    so.on_upgrade = alloc_upgrade;
    so.on_upgrade_failed = free_failed_upgrade;
    so.on_close = free_on_close;
    cu_made = cu_failed = cu_closed = 0;
    cu_shutdown_in_hook = false;
    start(&t, &so);
    co = client_opts(&t);
    CHECK_INT(wsx_client_connect(t.loop, &co, &t.cl, NULL), 0);
    wsx_loop_run(t.loop);
    CHECK(!t.timed_out);
    CHECK_INT(t.srv_open, 1);
    finish(&t);
    CHECK_INT(cu_made, 1);
    CHECK_INT(cu_failed, 0);
    CHECK_INT(cu_closed, 1);
}

static const char *const server_protos[] = {"chat.v2", "chat.v1"};
static char chosen[32];

static void record_proto(wsx_conn *c, void *u)
{
    const char *p = wsx_conn_subprotocol(c);
    snprintf(chosen, sizeof chosen, "%s", p ? p : "(none)");
    wsx_close(c, 1000, NULL);
    (void)u;
}

TEST(subprotocols)
{
    scene s = {.stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    so.subprotocols = server_protos;
    so.n_subprotocols = 2;
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    const char *offer[] = {"chat.v1", "chat.v2"};
    co.subprotocols = offer;
    co.n_subprotocols = 2;
    co.on_open = record_proto;
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    /* The server's preference wins. */
    CHECK_STR(chosen, "chat.v2");
    finish(&s);
}

TEST(connect_refused_and_give_up)
{
    scene s = {0};
    start(&s, NULL);
    wsx_timer_stop(s.watchdog);
    s.watchdog = NULL;
    /* A port nothing listens on: bind one, note it, close it. */
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    wsx_server *tmp;
    CHECK_INT(wsx_server_start(s.loop, &so, &tmp, NULL), 0);
    snprintf(s.url, sizeof s.url, "ws://127.0.0.1:%u/", wsx_server_port(tmp));
    wsx_server_shutdown(tmp, 0);
    wsx_loop_run(s.loop);
    wsx_server_free(tmp);
    wsx_timer_start(s.loop, 10000, 0, watchdog_fired, &s, &s.watchdog);

    wsx_client_opts co = client_opts(&s);
    co.reconnect = true;
    co.reconnect_min_ms = 10;
    co.reconnect_max_ms = 40;
    co.reconnect_max_attempts = 3;
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    s.stop_on_end = true;
    wsx_loop_run(s.loop);
    CHECK_INT(s.cli_reconnecting, 3);
    CHECK_INT(s.cli_end, 1);
    CHECK_INT(s.cli_end_err, WSX_ECONNREFUSED);
    CHECK(strstr(s.cli_end_why, "gave up after 3 attempts") != NULL);
    CHECK(strstr(s.cli_end_why, "connection refused") != NULL);
    finish(&s);

    /* Bad URLs fail at once and never call on_end. */
    wsx_loop *loop;
    wsx_loop_new(&loop);
    co.url = "http://x/";
    CHECK_INT(wsx_client_connect(loop, &co, NULL, NULL), WSX_EURL);
    co.url = "ws://[::1/";
    CHECK_INT(wsx_client_connect(loop, &co, NULL, NULL), WSX_EURL);
    wsx_loop_free(loop);
}

TEST(url_parse)
{
    wsx_url u;
    CHECK_INT(wsx_url_parse("ws://example.com", &u), 0);
    CHECK_STR(u.host, "example.com");
    CHECK_INT(u.port, 80);
    CHECK_STR(u.path, "/");
    CHECK_INT(wsx_url_parse("wss://h:8443/a/b?x=1#frag", &u), 0);
    CHECK(u.tls);
    CHECK_INT(u.port, 8443);
    CHECK_STR(u.path, "/a/b?x=1");
    CHECK_INT(wsx_url_parse("ws://[::1]:9000?q", &u), 0);
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, 9000);
    CHECK_STR(u.path, "/?q");
    CHECK_INT(wsx_url_parse("ws://h:0/", &u), WSX_EURL);
    CHECK_INT(wsx_url_parse("ws://h:70000/", &u), WSX_EURL);
    CHECK_INT(wsx_url_parse("ws://:80/", &u), WSX_EURL);
    CHECK_INT(wsx_url_parse("ws://h/a b", &u), WSX_EURL);
    CHECK_INT(wsx_url_parse("ftp://h/", &u), WSX_EURL);
    CHECK_INT(wsx_url_parse("ws://user@h/", &u), WSX_EURL);
}

/* ---- deadlines ---- */

static void quiet_open(wsx_conn *c, void *u)
{
    (void)c;
    ((scene *)u)->cli_open++;
}

TEST(idle_timeout)
{
    scene s = {.stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    so.idle_timeout_ms = 200;
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    co.on_open = quiet_open;
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(s.cli_close_code, 1001);
    CHECK_INT(s.srv_close_code, 1001);
    CHECK_STR(s.srv_close_reason, "idle timeout");
    finish(&s);
}

TEST(keepalive_pings)
{
    /* The server pings every 100 ms; the client answers (automatically), so after 600 ms it
     * is still open and has seen no close. */
    scene s = {0};
    wsx_server_opts so = server_opts(&s);
    so.ping_interval_ms = 100;
    so.pong_timeout_ms = 100;
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    co.on_open = quiet_open;
    co.ping_interval_ms = 100; /* and the client pings the server */
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_timer_stop(s.watchdog);
    wsx_timer_start(s.loop, 600, 0, watchdog_fired, &s, &s.watchdog);
    wsx_loop_run(s.loop);
    CHECK(s.timed_out); /* ran the full 600 ms */
    CHECK_INT(s.cli_open, 1);
    CHECK_INT(s.cli_close, 0);
    CHECK(s.pongs + s.srv_pongs >= 2);
    s.watchdog = NULL;
    finish(&s);
}

static void stop_loop(wsx_timer *t, void *loop)
{
    (void)t;
    wsx_loop_stop(loop);
}

TEST(graceful_shutdown)
{
    scene s = {.stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    co.on_open = quiet_open;
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    for (int i = 0; i < 200 && !s.cli_open; i++) {
        wsx_timer_start(s.loop, 20, 0, stop_loop, s.loop, NULL);
        wsx_loop_run(s.loop);
    }
    CHECK_INT(s.srv_open, 1);
    wsx_server_shutdown(s.srv, 2000);
    wsx_loop_run(s.loop); /* returns once everything closed */
    CHECK_INT(s.srv_close_code, 1001);
    CHECK_STR(s.srv_close_reason, "server shutting down");
    CHECK_INT(s.cli_close_code, 1001);
    CHECK_INT(s.cli_end, 1);
    if (s.watchdog) wsx_timer_stop(s.watchdog);
    s.watchdog = NULL;
    wsx_server_free(s.srv);
    wsx_loop_free(s.loop);
}

/* ---- backpressure ---- */

typedef struct flood {
    scene *s;
    int ebp, sent;
} flood;

static flood fl;

static void flood_open(wsx_conn *c, void *u)
{
    scene *s = u;
    s->srv_open++;
    s->srv_conn = c;
    /* Queue far more than the high-water mark in one go: the client reads slowly. */
    static uint8_t chunk[65536];
    for (int i = 0; i < 64; i++) {
        int rc = wsx_send(c, chunk, sizeof chunk, WSX_BINARY);
        fl.sent++;
        if (rc == WSX_EBACKPRESSURE) {
            fl.ebp++;
            break;
        }
    }
}

static void drain_close(wsx_conn *c, void *u)
{
    scene *s = u;
    s->srv_drains++;
    wsx_close(c, 1000, "drained");
}

TEST(backpressure_and_drain)
{
    scene s = {.stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    so.on_open = flood_open;
    so.on_drain = drain_close;
    so.send_high_water = 256 << 10;
    so.send_low_water = 64 << 10;
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    co.on_open = quiet_open;
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(fl.ebp, 1);
    CHECK(fl.sent >= 4 && fl.sent <= 6); /* the fifth 64 KiB message passes 256 KiB */
    CHECK_INT(s.srv_drains, 1);
    CHECK_INT(s.cli_msgs, fl.sent);
    CHECK_INT(s.cli_close_code, 1000);
    finish(&s);
}

static void hard_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    scene *s = u;
    (void)m;
    s->srv_msgs++;
    /* Far more than the hard limit in one go (the kernel takes some of it only at the end of
     * the iteration): the connection is dropped with 1008 and later sends fail. */
    static uint8_t chunk[65536];
    int rc = 0;
    for (int i = 0; i < 100 && rc != WSX_ECLOSED; i++)
        rc = wsx_send(c, chunk, sizeof chunk, WSX_BINARY);
    CHECK_INT(rc, WSX_ECLOSED);
    CHECK_INT(wsx_send(c, "x", 1, WSX_TEXT), WSX_ECLOSED);
}

TEST(hard_limit_closes_1008)
{
    scene s = {.stop_on_end = true};
    wsx_server_opts so = server_opts(&s);
    so.on_message = hard_message;
    so.send_high_water = 64 << 10;
    so.send_hard_limit = 1 << 20;
    start(&s, &so);
    wsx_client_opts co = client_opts(&s);
    s.client_sends = 1;
    s.client_size = 2;
    CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
    wsx_loop_run(s.loop);
    CHECK(!s.timed_out);
    CHECK_INT(s.srv_close_code, 1008);
    CHECK_STR(s.srv_close_reason, "send queue over its hard limit");
    /* The client sees the TCP connection end without a close frame. */
    CHECK_INT(s.cli_close_code, 1006);
    finish(&s);
}

static void deflate_open(wsx_conn *c, void *u)
{
    scene *s = u;
    s->cli_open++;
    CHECK(wsx_conn_deflate(c));
    /* Compressible, incompressible-looking, tiny (below the threshold) and big messages. */
    static uint8_t big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)("wsx deflate "[i % 12]);
    wsx_send(c, big, sizeof big, WSX_BINARY);
    wsx_send(c, "tiny", 4, WSX_TEXT);
    wsx_send(c, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 text", 16, WSX_TEXT);
}

TEST(permessage_deflate_both_sides)
{
    for (int ctx = 0; ctx < 2; ctx++) {
        scene s = {.echo = 1, .close_after = 3, .stop_on_end = true};
        wsx_server_opts so = server_opts(&s);
        so.deflate = wsx_pmd_defaults();
        so.deflate.enabled = true;
        so.deflate.server_no_context_takeover = ctx == 0;
        start(&s, &so);
        wsx_client_opts co = client_opts(&s);
        co.deflate = wsx_pmd_defaults();
        co.deflate.enabled = true;
        co.on_open = deflate_open;
        CHECK_INT(wsx_client_connect(s.loop, &co, &s.cl, NULL), 0);
        wsx_loop_run(s.loop);
        CHECK(!s.timed_out);
        CHECK_INT(s.cli_msgs, 3);
        CHECK_INT(s.last_len, 16);
        CHECK_STR(s.last_msg, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 text");
        CHECK_INT(s.cli_close_code, 1000);
        /* Compressed, the 1 MiB message crossed the wire as a few KiB. */
        wsx_server_stats st;
        wsx_server_get_stats(s.srv, &st);
        CHECK(st.bytes_in == (1u << 20) + 4 + 16);
        finish(&s);
    }
    /* With deflate agreed, an uncompressed message is still held to the message limit (the
     * parser's limit is raised for compression overhead). A client threshold above the
     * size sends it uncompressed. */
    scene u = {.echo = 1, .client_sends = 1, .client_size = 70000, .stop_on_end = true};
    wsx_server_opts so = server_opts(&u);
    so.max_message = 65536;
    so.deflate = wsx_pmd_defaults();
    so.deflate.enabled = true;
    start(&u, &so);
    wsx_client_opts cu = client_opts(&u);
    cu.deflate = wsx_pmd_defaults();
    cu.deflate.enabled = true;
    cu.deflate.threshold = 1 << 20;
    CHECK_INT(wsx_client_connect(u.loop, &cu, &u.cl, NULL), 0);
    wsx_loop_run(u.loop);
    CHECK(!u.timed_out);
    CHECK_INT(u.srv_msgs, 0);
    CHECK_INT(u.srv_close_code, 1009);
    CHECK_STR(u.srv_close_reason, "message exceeds the size limit");
    finish(&u);

    /* A server without deflate: the client's offer is declined, messages flow uncompressed. */
    scene t = {
        .echo = 1, .client_sends = 1, .client_size = 100, .close_after = 1, .stop_on_end = true};
    so = server_opts(&t);
    start(&t, &so);
    wsx_client_opts co = client_opts(&t);
    co.deflate = wsx_pmd_defaults();
    co.deflate.enabled = true;
    CHECK_INT(wsx_client_connect(t.loop, &co, &t.cl, NULL), 0);
    wsx_loop_run(t.loop);
    CHECK_INT(t.cli_msgs, 1);
    finish(&t);
}

/* ---- the shared defaults: 0 is the documented default, UINT32_MAX is never, on both sides ---- */

static wsx__cfg client_cfg_seen;

static void record_client_cfg(wsx_conn *c, void *u)
{
    client_cfg_seen = *wsx__cfg_of(c);
    wsx_close(c, 1000, NULL);
    (void)u;
}

static void end_stops_loop(wsx_client *cl, int err, const char *why, void *u)
{
    scene *s = u;
    (void)err;
    (void)why;
    (void)cl;
    s->cl = NULL;
    wsx_loop_stop(s->loop);
}

/* The settings a client connection runs with, for client options co (against server s,
 * which stays up). */
static wsx__cfg client_cfg_for(scene *s, wsx_client_opts co)
{
    memset(&client_cfg_seen, 0, sizeof client_cfg_seen);
    co.on_open = record_client_cfg;
    co.on_end = end_stops_loop;
    CHECK_INT(wsx_client_connect(s->loop, &co, &s->cl, NULL), 0);
    wsx_loop_run(s->loop);
    CHECK(!s->timed_out);
    s->cl = NULL;
    return client_cfg_seen;
}

TEST(deadline_defaults_server_and_client)
{
    /* All zero: the defaults include/wsx.h documents in brackets. */
    scene s = {0};
    wsx_server_opts so = server_opts(&s);
    start(&s, &so);
    const wsx__cfg *sc = &s.srv->cfg;
    CHECK_INT(sc->handshake_ms, 10000);
    CHECK(sc->idle_ms == UINT32_MAX);
    CHECK_INT(sc->ping_ms, 30000);
    CHECK_INT(sc->pong_ms, 10000);
    CHECK_INT(sc->close_ms, 5000);
    CHECK_INT(sc->http_ms, 30000);
    CHECK(sc->max_message == 16u << 20 && sc->max_frame == 16u << 20 && sc->max_head == 8192);
    CHECK(sc->high_water == 1u << 20 && sc->low_water == 256u << 10 && sc->hard_limit == 64u << 20);
    CHECK_INT(sc->max_fragments, 16384);
    CHECK_INT(sc->max_coalesced_pings, 64);
    wsx__cfg cc = client_cfg_for(&s, client_opts(&s));
    CHECK_INT(cc.handshake_ms, 10000);
    CHECK(cc.ping_ms == UINT32_MAX); /* the client does not ping unless asked */
    CHECK_INT(cc.pong_ms, 10000);
    CHECK_INT(cc.close_ms, 5000);
    CHECK(cc.max_message == 16u << 20 && cc.max_frame == 16u << 20 && cc.max_head == 8192);
    CHECK(cc.high_water == 1u << 20 && cc.low_water == 256u << 10 && cc.hard_limit == 64u << 20);
    CHECK_INT(cc.max_fragments, 16384);
    CHECK_INT(cc.max_coalesced_pings, 64);
    finish(&s);
}

TEST(deadline_never_server_and_client)
{
    /* UINT32_MAX: never, for every deadline of either side (the server used to turn a pong
     * or close timeout of UINT32_MAX into 10000 and 5000 ms). */
    scene s = {0};
    wsx_server_opts so = server_opts(&s);
    so.handshake_timeout_ms = so.idle_timeout_ms = so.ping_interval_ms = UINT32_MAX;
    so.pong_timeout_ms = so.close_timeout_ms = so.http_timeout_ms = UINT32_MAX;
    start(&s, &so);
    const wsx__cfg *sc = &s.srv->cfg;
    CHECK(sc->handshake_ms == UINT32_MAX && sc->idle_ms == UINT32_MAX);
    CHECK(sc->ping_ms == UINT32_MAX && sc->http_ms == UINT32_MAX);
    CHECK(sc->pong_ms == UINT32_MAX);
    CHECK(sc->close_ms == UINT32_MAX);
    wsx_client_opts co = client_opts(&s);
    co.handshake_timeout_ms = co.ping_interval_ms = UINT32_MAX;
    co.pong_timeout_ms = co.close_timeout_ms = UINT32_MAX;
    wsx__cfg cc = client_cfg_for(&s, co);
    CHECK(cc.handshake_ms == UINT32_MAX && cc.ping_ms == UINT32_MAX);
    CHECK(cc.pong_ms == UINT32_MAX);
    CHECK(cc.close_ms == UINT32_MAX);
    /* Any other value is taken as given. */
    co.handshake_timeout_ms = 1234;
    co.pong_timeout_ms = 2345;
    co.close_timeout_ms = 3456;
    co.ping_interval_ms = 4567;
    cc = client_cfg_for(&s, co);
    CHECK_INT(cc.handshake_ms, 1234);
    CHECK_INT(cc.pong_ms, 2345);
    CHECK_INT(cc.close_ms, 3456);
    CHECK_INT(cc.ping_ms, 4567);
    finish(&s);
}

/* ---- hostile peers: a server on its own thread, a raw client on this one ---- */

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
    RUN(url_parse);
    RUN(echo_and_client_close);
    RUN(server_closes);
    RUN(crossing_close_reports_the_peers_code);
    RUN(admission_handshakes_per_ip);
    RUN(large_messages);
    RUN(upgrade_hook_refuses);
    RUN(upgrade_failed_releases_conn_user);
    RUN(subprotocols);
    RUN(connect_refused_and_give_up);
    RUN(idle_timeout);
    RUN(keepalive_pings);
    RUN(deadline_defaults_server_and_client);
    RUN(deadline_never_server_and_client);
    RUN(graceful_shutdown);
    RUN(backpressure_and_drain);
    RUN(hard_limit_closes_1008);
    RUN(permessage_deflate_both_sides);
    RUN(max_fragments_closes_1009);
    RUN(pings_answered_in_order);
    RUN(ping_flood_without_reading_closes_1008);
    RUN(pong_timeout_never_keeps_a_silent_peer);
    RUN(close_timeout_never_waits_for_the_peer);
    RUN(pongs_count_against_the_hard_limit);
    RUN(process_budget_drops_the_largest_queues);
    return test_summary("ws");
}
