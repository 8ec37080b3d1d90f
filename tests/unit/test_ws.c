/*
 * A wsx server and client in one process over real sockets on 127.0.0.1 (the scene of
 * ws_scene.h): the connection life cycle, closing from either side, the message size limit,
 * the upgrade hooks, subprotocols, reconnect, URL parsing, and the admission of handshakes per
 * address. Deadlines, backpressure and deflate are in test_ws_flow.c, hostile raw peers in
 * test_ws_hostile.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "ws_scene.h"
#include "wsx.h"

TEST(echo_and_client_close)
{
    scene s = {
        .echo = 1, .client_sends = 3, .client_size = 10, .close_after = 3, .stop_on_end = true};
    scene_run(&s, NULL, NULL);
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
    scene_run(&s, NULL, NULL);
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
    scene_run(&s, NULL, NULL);
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

    /* 12 silent sockets from 127.0.0.2: two are handshakes in progress, three more go on
     * probation (a burst is not refused before it is read; max_per_ip 5 bounds them), seven
     * are answered 503 at once (max_per_ip), in one log line (the rest are counted). */
    int a[12];
    for (int i = 0; i < 12; i++)
        a[i] = silent_from(0x7f000002, port);
    run_for(loop, 100);
    int held = 0, refused = 0;
    bool open_a[12];
    for (int i = 0; i < 12; i++) {
        const char *f = fate(a[i]);
        open_a[i] = !strcmp(f, "");
        held += open_a[i];
        refused += !strcmp(f, "503");
    }
    CHECK_INT(held, 5);
    CHECK_INT(refused, 7);
    wsx_server_stats st;
    wsx_server_get_stats(srv, &st);
    CHECK_INT((int)st.refused_per_ip, 7);
    CHECK_INT((int)st.refused_handshakes, 0);
    CHECK_INT((int)st.http_open, 5);
    CHECK_INT(adm_refused_lines, 1);

    /* The grace (1 s) runs out without a request (checked by the deadline sweep, at most
     * 1 s later): the three on probation get the 503 (max_handshakes_per_ip), two stay. */
    run_for(loop, 1000 + 1200); /* WSX__HANDSHAKE_GRACE_MS + a sweep */
    held = refused = 0;
    for (int i = 0; i < 12; i++) {
        if (!open_a[i]) continue;
        const char *f = fate(a[i]);
        held += !strcmp(f, "");
        refused += !strcmp(f, "503");
    }
    CHECK_INT(held, 2);
    CHECK_INT(refused, 3);
    wsx_server_get_stats(srv, &st);
    CHECK_INT((int)st.refused_handshakes, 3);
    CHECK_INT((int)st.http_open, 2);
    /* Their line (max_handshakes_per_ip), and the sweep's flush of the suppressed counts. */
    CHECK(adm_refused_lines >= 2 && adm_refused_lines <= 4);
    CHECK(adm_suppressed_lines >= 1);

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
    CHECK_INT((int)st.refused_handshakes, 3);
    CHECK_INT((int)st.http_open, 2);

    /* After the one-second window, refusals are logged again (at most one line a second and
     * reason, plus the counts of what was suppressed). */
    run_for(loop, 1100);
    int d[6];
    for (int i = 0; i < 6; i++)
        d[i] = silent_from(0x7f000003, port);
    run_for(loop, 50);
    int lines = adm_refused_lines;
    CHECK(lines >= 3);
    CHECK(lines <= 6);
    for (int i = 0; i < 6; i++)
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
    scene_run(&s, NULL, NULL);
    CHECK(!s.timed_out);
    CHECK_INT(s.cli_msgs, 1);
    CHECK_INT(s.last_len, (16u << 20) - 1024);
    finish(&s);

    scene t = {.echo = 1, .client_sends = 1, .client_size = 70000, .stop_on_end = true};
    wsx_server_opts so = server_opts(&t);
    so.max_message = 65536;
    scene_run(&t, &so, NULL);
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
    scene_run(&s, &so, NULL);
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
    wsx_client_opts co = client_opts(&t);
    wsx_http_header auth = {"Authorization", 13, "Bearer x", 8};
    co.headers = &auth;
    co.n_headers = 1;
    scene_run(&t, &so, &co);
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

/* The scene's server options with the hooks above, the counters reset. */
static wsx_server_opts conn_user_opts(scene *s, bool shutdown_in_hook)
{
    wsx_server_opts so = server_opts(s);
    so.on_upgrade = alloc_upgrade;
    so.on_upgrade_failed = free_failed_upgrade;
    so.on_close = free_on_close;
    cu_made = cu_failed = cu_closed = 0;
    cu_shutdown_in_hook = shutdown_in_hook;
    return so;
}

TEST(upgrade_failed_releases_conn_user)
{
    /* The 101 write fails: no on_open, no on_close, on_upgrade_failed with the pointer. */
    scene s = {.stop_on_end = true};
    wsx_server_opts so = conn_user_opts(&s, true);
    scene_run(&s, &so, NULL);
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
    so = conn_user_opts(&t, false);
    scene_run(&t, &so, NULL);
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
    wsx_client_opts co = client_opts(&s);
    const char *offer[] = {"chat.v1", "chat.v2"};
    co.subprotocols = offer;
    co.n_subprotocols = 2;
    co.on_open = record_proto;
    scene_run(&s, &so, &co);
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
    return test_summary("ws");
}
