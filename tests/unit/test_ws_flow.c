/*
 * A wsx server and client in one process over real sockets on 127.0.0.1 (the scene of
 * ws_scene.h): deadlines (idle, keepalive pings, graceful shutdown), the defaults both sides
 * share, backpressure and the hard limit of the send queue, and permessage-deflate on both
 * sides.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "ws/ws.h"
#include "ws_scene.h"
#include "wsx.h"

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
    wsx_client_opts co = client_opts(&s);
    co.on_open = quiet_open;
    scene_run(&s, &so, &co);
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
    wsx_client_opts co = client_opts(&s);
    co.on_open = quiet_open;
    scene_run(&s, &so, &co);
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
    s.client_sends = 1;
    s.client_size = 2;
    scene_run(&s, &so, NULL);
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
        wsx_client_opts co = client_opts(&s);
        co.deflate = wsx_pmd_defaults();
        co.deflate.enabled = true;
        co.on_open = deflate_open;
        scene_run(&s, &so, &co);
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
    wsx_client_opts cu = client_opts(&u);
    cu.deflate = wsx_pmd_defaults();
    cu.deflate.enabled = true;
    cu.deflate.threshold = 1 << 20;
    scene_run(&u, &so, &cu);
    CHECK(!u.timed_out);
    CHECK_INT(u.srv_msgs, 0);
    CHECK_INT(u.srv_close_code, 1009);
    CHECK_STR(u.srv_close_reason, "message exceeds the size limit");
    finish(&u);

    /* A server without deflate: the client's offer is declined, messages flow uncompressed. */
    scene t = {
        .echo = 1, .client_sends = 1, .client_size = 100, .close_after = 1, .stop_on_end = true};
    wsx_client_opts co = client_opts(&t);
    co.deflate = wsx_pmd_defaults();
    co.deflate.enabled = true;
    scene_run(&t, NULL, &co);
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

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    RUN(idle_timeout);
    RUN(keepalive_pings);
    RUN(deadline_defaults_server_and_client);
    RUN(deadline_never_server_and_client);
    RUN(graceful_shutdown);
    RUN(backpressure_and_drain);
    RUN(hard_limit_closes_1008);
    RUN(permessage_deflate_both_sides);
    return test_summary("ws_flow");
}
