/* Pub/sub topics over real connections on 127.0.0.1. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "ws/ws.h"

#define NCLIENTS 200

typedef struct world {
    wsx_loop *loop;
    wsx_server *srv;
    char url[64];
    int opened;      /* server side opens */
    int client_open; /* client side opens */
    int received[NCLIENTS + 1];
    int total_received;
    int closed_1008;
    wsx_conn *first;
    bool timed_out;
} world;

static world W;

static void stop_loop(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    wsx_loop_stop(W.loop);
}

/* Runs the loop until cond() or ms pass. */
static void run_until(bool (*cond)(void), int ms)
{
    for (int waited = 0; waited < ms && !cond(); waited += 10) {
        wsx_timer_start(W.loop, 10, 0, stop_loop, NULL, NULL);
        wsx_loop_run(W.loop);
    }
}

static void s_open(wsx_conn *c, void *u)
{
    (void)u;
    W.opened++;
    if (!W.first) W.first = c;
    wsx_subscribe(c, "room:a");
}

static void s_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    (void)u;
    /* "sub:<topic>" subscribes, anything else is published to room:a except the sender. */
    if (m->len > 4 && !memcmp(m->data, "sub:", 4)) {
        char t[64];
        snprintf(t, sizeof t, "%.*s", (int)(m->len - 4), (const char *)m->data + 4);
        wsx_subscribe(c, t);
        return;
    }
    wsx_publish_except(W.srv, "room:a", m->data, m->len, m->type, c);
}

static void s_close(wsx_conn *c, int code, const char *r, size_t n, void *u)
{
    (void)c, (void)r, (void)n, (void)u;
    if (code == 1008) W.closed_1008++;
}

static void c_open(wsx_conn *c, void *u)
{
    (void)c, (void)u;
    W.client_open++;
}

static void c_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    (void)c;
    W.received[(intptr_t)u]++;
    W.total_received++;
    (void)m;
}

static bool all_open(void)
{
    return W.opened == NCLIENTS && W.client_open == NCLIENTS;
}

static int want;
static bool got_want(void)
{
    return W.total_received >= want;
}

static int count_cb(wsx_conn *c, void *arg)
{
    (void)c;
    (*(int *)arg)++;
    return 0;
}

static int unsub_cb(wsx_conn *c, void *arg)
{
    (void)arg;
    wsx_unsubscribe(c, "room:b");
    return 0;
}

TEST(many_subscribers)
{
    wsx_client *clients[NCLIENTS];
    for (intptr_t i = 0; i < NCLIENTS; i++) {
        wsx_client_opts co = wsx_client_defaults();
        co.url = W.url;
        co.on_open = c_open;
        co.on_message = c_message;
        co.user = (void *)i;
        CHECK_INT(wsx_client_connect(W.loop, &co, &clients[i]), 0);
    }
    run_until(all_open, 10000);
    CHECK_INT(W.opened, NCLIENTS);
    CHECK_INT(wsx_topic_subscribers(W.srv, "room:a"), NCLIENTS);
    CHECK_INT(wsx_topic_count(W.srv), 1);

    /* Publish to nobody: 0, and no frame is built. */
    uint64_t built = wsx__pubsub_frames_built;
    CHECK_INT(wsx_publish(W.srv, "room:none", "x", 1, WSX_TEXT), 0);
    CHECK(wsx__pubsub_frames_built == built);
    CHECK_INT(wsx_publish(W.srv, "", "x", 1, WSX_TEXT), WSX_EINVAL);
    CHECK_INT(wsx_publish(W.srv, "room:a", "x", 1, 9), WSX_EINVAL);

    /* One publish: every subscriber gets it, from one framed buffer. */
    built = wsx__pubsub_frames_built;
    CHECK_INT(wsx_publish(W.srv, "room:a", "hello all", 9, WSX_TEXT), NCLIENTS);
    CHECK(wsx__pubsub_frames_built == built + 1);
    want = NCLIENTS;
    run_until(got_want, 10000);
    CHECK_INT(W.total_received, NCLIENTS);
    int ok = 1;
    for (int i = 0; i < NCLIENTS; i++)
        ok &= W.received[i] == 1;
    CHECK(ok);

    /* A client message is published to everyone but its sender. */
    wsx_send(wsx_client_conn(clients[0]), "from 0", 6, WSX_TEXT);
    want = 2 * NCLIENTS - 1;
    run_until(got_want, 10000);
    CHECK_INT(W.total_received, 2 * NCLIENTS - 1);
    CHECK_INT(W.received[0], 1);
    CHECK_INT(W.received[1], 2);

    /* Iteration, subscribe twice (no-op), unsubscribe, and unsubscribing during iteration. */
    int n = 0;
    CHECK_INT(wsx_topic_foreach(W.srv, "room:a", count_cb, &n), NCLIENTS);
    CHECK_INT(n, NCLIENTS);
    CHECK_INT(wsx_subscribe(W.first, "room:a"), 0);
    CHECK_INT(wsx_topic_subscribers(W.srv, "room:a"), NCLIENTS);
    CHECK(wsx_is_subscribed(W.first, "room:a"));
    CHECK_INT(wsx_unsubscribe(W.first, "room:a"), 0);
    CHECK(!wsx_is_subscribed(W.first, "room:a"));
    CHECK_INT(wsx_unsubscribe(W.first, "room:a"), WSX_ENOTFOUND);
    CHECK_INT(wsx_topic_subscribers(W.srv, "room:a"), NCLIENTS - 1);
    for (int i = 0; i < 10; i++)
        wsx_send(wsx_client_conn(clients[i]), "sub:room:b", 10, WSX_TEXT);
    for (int i = 0; i < 20 && wsx_topic_subscribers(W.srv, "room:b") < 10; i++) {
        wsx_timer_start(W.loop, 10, 0, stop_loop, NULL, NULL);
        wsx_loop_run(W.loop);
    }
    CHECK_INT(wsx_topic_subscribers(W.srv, "room:b"), 10);
    CHECK_INT(wsx_topic_count(W.srv), 2);
    CHECK_INT(wsx_topic_foreach(W.srv, "room:b", unsub_cb, NULL), 10);
    CHECK_INT(wsx_topic_subscribers(W.srv, "room:b"), 0);
    CHECK_INT(wsx_topic_count(W.srv), 1); /* an empty topic is gone */

    /* Subscriptions end with their connections. */
    for (int i = 0; i < NCLIENTS; i++)
        wsx_client_close(clients[i], 1000, NULL);
    for (int i = 0; i < 100 && wsx_topic_subscribers(W.srv, "room:a"); i++) {
        wsx_timer_start(W.loop, 10, 0, stop_loop, NULL, NULL);
        wsx_loop_run(W.loop);
    }
    CHECK_INT(wsx_topic_subscribers(W.srv, "room:a"), 0);
    CHECK_INT(wsx_topic_count(W.srv), 0);
}

/* A subscriber that never reads: raw TCP, handshake done by hand, then silence. */
static int raw_subscriber(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
    const char req[] =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    if (write(fd, req, sizeof req - 1) < 0) return -1;
    return fd;
}

static bool two_open(void)
{
    return W.opened >= 2 && W.client_open >= 1;
}

TEST(slow_subscriber_does_not_delay_others)
{
    memset(W.received, 0, sizeof W.received);
    W.total_received = 0;
    W.opened = W.client_open = 0;
    int raw = raw_subscriber(wsx_server_port(W.srv));
    CHECK(raw >= 0);
    wsx_client_opts co = wsx_client_defaults();
    co.url = W.url;
    co.on_open = c_open;
    co.on_message = c_message;
    co.user = (void *)(intptr_t)0;
    wsx_client *fast;
    CHECK_INT(wsx_client_connect(W.loop, &co, &fast), 0);
    run_until(two_open, 5000);
    CHECK_INT(wsx_topic_subscribers(W.srv, "room:a"), 2);
    /* 300 x 16 KiB: far past the slow reader's 1 MiB hard limit; the fast one gets all. */
    static uint8_t blob[16384];
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i < 10; i++)
            wsx_publish(W.srv, "room:a", blob, sizeof blob, WSX_BINARY);
        wsx_timer_start(W.loop, 1, 0, stop_loop, NULL, NULL);
        wsx_loop_run(W.loop);
    }
    want = 300;
    run_until(got_want, 10000);
    CHECK_INT(W.received[0], 300);
    CHECK_INT(W.closed_1008, 1);
    CHECK_INT(wsx_topic_subscribers(W.srv, "room:a"), 1);
    close(raw);
    wsx_client_close(fast, 1000, NULL);
}

/* Subscribers with permessage-deflate and no server context takeover share one compressed
 * frame per publish. */
static int z_open, z_got, z_bad;
static wsx_loop *z_loop;

static void z_server_open(wsx_conn *c, void *u)
{
    (void)u;
    wsx_subscribe(c, "zipped");
}

static void z_client_open(wsx_conn *c, void *u)
{
    (void)u;
    z_open += wsx_conn_deflate(c);
}

static void z_client_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    (void)c;
    (void)u;
    z_got++;
    for (size_t i = 0; i < m->len; i++)
        z_bad += m->data[i] != (uint8_t)('a' + i % 7);
    if (m->len != 10000) z_bad++;
}

static bool z_all_open(void)
{
    return z_open == 50;
}

static bool z_all_got(void)
{
    return z_got == 50;
}

static void z_stop(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    wsx_loop_stop(z_loop);
}

static void z_run_until(bool (*cond)(void))
{
    for (int i = 0; i < 500 && !cond(); i++) {
        wsx_timer_start(z_loop, 10, 0, z_stop, NULL, NULL);
        wsx_loop_run(z_loop);
    }
}

TEST(broadcast_compressed_once)
{
    wsx_loop_new(&z_loop);
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    so.on_open = z_server_open;
    so.deflate = wsx_pmd_defaults();
    so.deflate.enabled = true;
    so.deflate.server_no_context_takeover = true;
    so.max_handshakes_per_ip = SIZE_MAX; /* 50 clients connect at once from 127.0.0.1 */
    wsx_server *srv;
    CHECK_INT(wsx_server_start(z_loop, &so, &srv), 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsx_server_port(srv));
    wsx_client *cl[50];
    for (int i = 0; i < 50; i++) {
        wsx_client_opts co = wsx_client_defaults();
        co.url = url;
        co.deflate = wsx_pmd_defaults();
        co.deflate.enabled = true;
        co.on_open = z_client_open;
        co.on_message = z_client_message;
        CHECK_INT(wsx_client_connect(z_loop, &co, &cl[i]), 0);
    }
    z_run_until(z_all_open);
    CHECK_INT(z_open, 50);
    static uint8_t msg[10000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)('a' + i % 7);
    uint64_t built = wsx__pubsub_frames_built;
    CHECK_INT(wsx_publish(srv, "zipped", msg, sizeof msg, WSX_BINARY), 50);
    CHECK(wsx__pubsub_frames_built == built + 1); /* one compressed frame, no plain one */
    z_run_until(z_all_got);
    CHECK_INT(z_got, 50);
    CHECK_INT(z_bad, 0);
    for (int i = 0; i < 50; i++)
        wsx_client_close(cl[i], 1000, NULL);
    wsx_server_shutdown(srv, 500);
    wsx_loop_run(z_loop);
    wsx_server_free(srv);
    wsx_loop_free(z_loop);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    wsx_loop_new(&W.loop);
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    so.on_open = s_open;
    so.on_message = s_message;
    so.on_close = s_close;
    so.send_high_water = 256 << 10;
    so.send_hard_limit = 1 << 20;
    /* All 200 clients connect at once from 127.0.0.1. */
    so.max_handshakes_per_ip = SIZE_MAX;
    if (wsx_server_start(W.loop, &so, &W.srv) < 0) return 2;
    snprintf(W.url, sizeof W.url, "ws://127.0.0.1:%u/", wsx_server_port(W.srv));
    RUN(many_subscribers);
    RUN(slow_subscriber_does_not_delay_others);
    RUN(broadcast_compressed_once);
    wsx_server_shutdown(W.srv, 500);
    wsx_loop_run(W.loop);
    wsx_server_free(W.srv);
    wsx_loop_free(W.loop);
    return test_summary("pubsub");
}
