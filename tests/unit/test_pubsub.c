/* Pub/sub topics over real connections on 127.0.0.1. */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "net_test.h"
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
        CHECK_INT(wsx_client_connect(W.loop, &co, &clients[i], NULL), 0);
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
    CHECK_INT(wsx_client_connect(W.loop, &co, &fast, NULL), 0);
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
    CHECK_INT(wsx_server_start(z_loop, &so, &srv, NULL), 0);
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
        CHECK_INT(wsx_client_connect(z_loop, &co, &cl[i], NULL), 0);
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

/* ---- prepared messages and shared bytes ---- */

#define NP 20

/* A world of its own per test: a loop, servers, and the server side of each connection. */
static struct {
    wsx_loop *loop;
    wsx_conn *conns[2 * NP + 4];
    int nconns;
    int client_open, got, bad, closed_1008, closed;
    size_t expect_len;
    wsx_http_req *reqs[NP + 4];
    int nreqs;
} P;

static void p_stop(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    wsx_loop_stop(P.loop);
}

static void p_run_until(bool (*cond)(void), int ms)
{
    for (int waited = 0; waited < ms && !(cond && cond()); waited += 10) {
        wsx_timer_start(P.loop, 10, 0, p_stop, NULL, NULL);
        wsx_loop_run(P.loop);
    }
}

static void p_server_open(wsx_conn *c, void *u)
{
    (void)u;
    P.conns[P.nconns++] = c;
}

static void p_server_close(wsx_conn *c, int code, const char *r, size_t n, void *u)
{
    (void)r, (void)n, (void)u;
    P.closed++;
    if (code == 1008) P.closed_1008++;
    for (int i = 0; i < P.nconns; i++)
        if (P.conns[i] == c) P.conns[i] = NULL;
}

static void p_client_open(wsx_conn *c, void *u)
{
    (void)c, (void)u;
    P.client_open++;
}

static uint8_t p_byte(size_t i)
{
    return (uint8_t)('a' + i % 23);
}

static void p_client_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    (void)c, (void)u;
    P.got++;
    if (m->len != P.expect_len) P.bad++;
    for (size_t i = 0; i < m->len && i < P.expect_len; i++)
        P.bad += m->data[i] != p_byte(i);
}

static int p_want;
static bool p_opened(void)
{
    return P.client_open >= p_want && P.nconns >= p_want;
}

static bool p_got_want(void)
{
    return P.got >= p_want;
}

static wsx_server *p_server(bool deflate, bool no_ctx)
{
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    so.on_open = p_server_open;
    so.on_close = p_server_close;
    so.send_high_water = 256 << 10;
    so.send_hard_limit = 1 << 20;
    if (deflate) {
        so.deflate = wsx_pmd_defaults();
        so.deflate.enabled = true;
        so.deflate.server_no_context_takeover = no_ctx;
    }
    wsx_server *srv = NULL;
    if (wsx_server_start(P.loop, &so, &srv, NULL) < 0) exit(2);
    return srv;
}

static wsx_client *p_client(wsx_server *srv, bool deflate)
{
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", wsx_server_port(srv));
    wsx_client_opts co = wsx_client_defaults();
    co.url = url;
    co.on_open = p_client_open;
    co.on_message = p_client_message;
    if (deflate) {
        co.deflate = wsx_pmd_defaults();
        co.deflate.enabled = true;
    }
    wsx_client *cl = NULL;
    if (wsx_client_connect(P.loop, &co, &cl, NULL) < 0) exit(2);
    return cl;
}

static void p_begin(void)
{
    memset(&P, 0, sizeof P);
    P.loop = new_loop();
}

static void p_end(wsx_server **srvs, int n)
{
    for (int i = 0; i < n; i++)
        wsx_server_shutdown(srvs[i], 500);
    wsx_loop_run(P.loop);
    for (int i = 0; i < n; i++)
        wsx_server_free(srvs[i]);
    wsx_loop_free(P.loop);
}

static uint8_t *p_message(size_t len)
{
    uint8_t *m = malloc(len);
    for (size_t i = 0; i < len; i++)
        m[i] = p_byte(i);
    return m;
}

/* N recipients share one frame: built once, queued by reference, released when written. */
TEST(prepared_shared_by_reference)
{
    p_begin();
    wsx_server *srv = p_server(false, false);
    wsx_client *cl[NP];
    for (int i = 0; i < NP; i++)
        cl[i] = p_client(srv, false);
    p_want = NP;
    p_run_until(p_opened, 5000);
    CHECK_INT(P.nconns, NP);

    size_t len = 100000;
    uint8_t *msg = p_message(len);
    P.expect_len = len;
    uint64_t built = wsx__pubsub_frames_built;
    wsx_prepared *p = NULL;
    CHECK_INT(wsx_prepare(srv, msg, len, WSX_BINARY, &p), 0);
    memset(msg, 0, len); /* the prepared message holds its own copy */
    free(msg);
    CHECK(wsx__pubsub_frames_built == built + 1);
    CHECK_INT(wsx_prepared_len(p), len);
    wsx__ref *frame = wsx__ref_retain(wsx__prepared_frame(p, 0));
    CHECK_INT(frame->len, len + 10); /* 64-bit length: a 10-byte header */

    wsx_server_stats before;
    wsx_server_get_stats(srv, &before);
    for (int i = 0; i < NP; i++)
        CHECK_INT(wsx_send_prepared(P.conns[i], p), 0);
    CHECK(wsx__pubsub_frames_built == built + 1); /* no frame per recipient */
    CHECK_INT(frame->refs, 2 + NP);               /* p, the test, one per queue */
    CHECK_INT(wsx_buffered_amount(P.conns[0]), len + 10);
    wsx_server_stats after;
    wsx_server_get_stats(srv, &after);
    CHECK(after.messages_out == before.messages_out + NP);
    CHECK(after.bytes_out == before.bytes_out + (uint64_t)NP * len);

    /* Released by its creator right after the sends: the queues keep the frame alive. */
    wsx_prepared_release(p);
    CHECK_INT(frame->refs, 1 + NP);
    p_want = NP;
    p_run_until(p_got_want, 5000);
    CHECK_INT(P.got, NP);
    CHECK_INT(P.bad, 0);
    CHECK_INT(frame->refs, 1); /* every queue let go once written */
    wsx__ref_release(frame);

    /* Misuse: a client connection (its frames must be masked), NULLs, a closed connection. */
    CHECK_INT(wsx_prepare(srv, "x", 1, WSX_TEXT, &p), 0);
    CHECK_INT(wsx_send_prepared(wsx_client_conn(cl[0]), p), WSX_EINVAL);
    CHECK_INT(wsx_send_prepared(NULL, p), WSX_EINVAL);
    CHECK_INT(wsx_send_prepared(P.conns[0], NULL), WSX_EINVAL);
    CHECK_INT(wsx_prepare(srv, "x", 1, 9, &p), WSX_EINVAL);
    CHECK_INT(wsx_prepare(srv, NULL, 1, WSX_TEXT, &p), WSX_EINVAL);
    wsx_close(P.conns[0], 1000, NULL);
    CHECK_INT(wsx_send_prepared(P.conns[0], p), WSX_ECLOSED);
    /* A connection of another loop. */
    wsx_loop *other = new_loop();
    wsx_loop *mine = P.loop;
    wsx_server *srv2 = NULL;
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    so.on_open = p_server_open;
    CHECK_INT(wsx_server_start(other, &so, &srv2, NULL), 0);
    P.loop = other;
    wsx_client *cl2 = p_client(srv2, false);
    p_want = NP + 1;
    p_run_until(p_opened, 5000);
    CHECK_INT(wsx_send_prepared(P.conns[NP], p), WSX_EINVAL);
    wsx_prepared_release(p);
    wsx_client_close(cl2, 1000, NULL);
    wsx_server_shutdown(srv2, 500);
    wsx_loop_run(other);
    wsx_server_free(srv2);
    wsx_loop_free(other);
    P.loop = mine;
    wsx_prepared_release(NULL);

    for (int i = 0; i < NP; i++)
        wsx_client_close(cl[i], 1000, NULL);
    p_end(&srv, 1);
}

/* A raw client that completes the handshake and then never reads. */
static int raw_ws(uint16_t port)
{
    int fd = raw_subscriber(port);
    return fd;
}

static bool p_one_more(void)
{
    return P.nconns >= p_want;
}

/* Queues of connections that close (here: peers that never read and then hang up) give
 * their references back too. */
TEST(prepared_released_when_connections_close)
{
    p_begin();
    wsx_server *srv = p_server(false, false);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = raw_ws(wsx_server_port(srv));
        CHECK(fds[i] >= 0);
    }
    p_want = 4;
    p_run_until(p_one_more, 5000);
    CHECK_INT(P.nconns, 4);
    size_t len = 60000;
    uint8_t *msg = p_message(len);
    wsx_prepared *p = NULL;
    CHECK_INT(wsx_prepare(srv, msg, len, WSX_BINARY, &p), 0);
    free(msg);
    wsx__ref *frame = wsx__ref_retain(wsx__prepared_frame(p, 0));
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++)
            CHECK(wsx_send_prepared(P.conns[i], p) >= 0);
    wsx_prepared_release(p);
    CHECK_INT(frame->refs, 1 + 12); /* all still queued (corked) */
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    for (int i = 0; i < 300 && P.closed < 4; i++)
        p_run_until(NULL, 10);
    CHECK_INT(P.closed, 4);
    CHECK_INT(frame->refs, 1);
    wsx__ref_release(frame);
    p_end(&srv, 1);
}

/* The send limits apply exactly as to wsx_send: backpressure above the high-water mark
 * (256 KiB here), close with 1008 past the hard limit (1 MiB). */
TEST(prepared_counts_against_send_limits)
{
    p_begin();
    wsx_server *srv = p_server(false, false);
    int fd = raw_ws(wsx_server_port(srv));
    CHECK(fd >= 0);
    p_want = 1;
    p_run_until(p_one_more, 5000);
    CHECK_INT(P.nconns, 1);
    size_t len = 64 << 10;
    uint8_t *msg = p_message(len);
    wsx_prepared *p = NULL;
    CHECK_INT(wsx_prepare(srv, msg, len, WSX_BINARY, &p), 0);
    free(msg);
    /* All in one iteration (corked): the queue holds k frames of 64 KiB + 10 bytes. */
    wsx_conn *c = P.conns[0];
    int rcs[20];
    for (int k = 0; k < 20; k++)
        rcs[k] = wsx_send_prepared(c, p);
    for (int k = 0; k < 3; k++)
        CHECK_INT(rcs[k], 0);
    for (int k = 3; k < 15; k++) /* 4 x 65546 = 262184 > 256 KiB */
        CHECK_INT(rcs[k], WSX_EBACKPRESSURE);
    for (int k = 15; k < 20; k++) /* 16 x 65546 = 1048736 > 1 MiB: closed */
        CHECK_INT(rcs[k], WSX_ECLOSED);
    p_run_until(NULL, 50);
    CHECK_INT(P.closed_1008, 1);
    wsx_prepared_release(p);
    close(fd);
    p_end(&srv, 1);
}

static bool p_all_got(void)
{
    return P.got >= p_want;
}

/* With permessage-deflate: connections on the shared compressor (no server context
 * takeover) get one compressed frame, compressed once; connections without deflate, and
 * those with a compressor of their own (a server keeping its context), the plain one. */
TEST(prepared_deflate_once)
{
    p_begin();
    wsx_server *srvs[2];
    srvs[0] = p_server(true, true);  /* shared compressor */
    srvs[1] = p_server(true, false); /* a compressor per connection */
    wsx_client *cl[3 * 5];
    for (int i = 0; i < 5; i++) {
        cl[i] = p_client(srvs[0], true);
        cl[5 + i] = p_client(srvs[0], false);
        cl[10 + i] = p_client(srvs[1], true);
    }
    p_want = 15;
    p_run_until(p_opened, 5000);
    CHECK_INT(P.nconns, 15);
    size_t len = 50000;
    uint8_t *msg = p_message(len);
    P.expect_len = len;
    wsx_prepared *p = NULL;
    uint64_t built = wsx__pubsub_frames_built;
    CHECK_INT(wsx_prepare(srvs[0], msg, len, WSX_TEXT, &p), 0);
    free(msg);
    for (int i = 0; i < 15; i++)
        CHECK_INT(wsx_send_prepared(P.conns[i], p), 0);
    /* The plain frame at prepare, one compressed frame for the shared-compressor five. */
    CHECK(wsx__pubsub_frames_built == built + 2);
    wsx__ref *plain = wsx__prepared_frame(p, 0), *zipped = wsx__prepared_frame(p, 15);
    CHECK(zipped != NULL);
    CHECK(zipped && zipped->len < len / 4);
    CHECK_INT(zipped ? zipped->refs : 0, 1 + 5);
    CHECK_INT(plain->refs, 1 + 10);
    wsx_prepared_release(p);
    p_want = 15;
    p_run_until(p_all_got, 5000);
    CHECK_INT(P.got, 15);
    CHECK_INT(P.bad, 0);
    for (int i = 0; i < 15; i++)
        wsx_client_close(cl[i], 1000, NULL);
    p_end(srvs, 2);
}

/* ---- the loop's hub: shared by its servers, with subscribers of other kinds ---- */

static int h_first, h_last, h_generic;

static void h_on_first(wsx_hub *h, const char *topic, void *arg)
{
    (void)h, (void)arg;
    h_first += !strcmp(topic, "room:x");
}

static void h_on_last(wsx_hub *h, const char *topic, void *arg)
{
    (void)h, (void)arg;
    h_last += !strcmp(topic, "room:x");
}

/* A subscriber that is not a connection: on the message it ends one connection's
 * subscription and closes another connection, both later in the topic's order. */
static int h_deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub, (void)user;
    h_generic++;
    if (m->len != P.expect_len || m->prepared == NULL) P.bad++;
    CHECK_INT(wsx_unsubscribe(P.conns[5], "room:x"), 0);
    CHECK_INT(wsx_close(P.conns[4], 1000, NULL), 0);
    return 1;
}

TEST(hub_shared_by_servers_and_other_subscribers)
{
    p_begin();
    wsx_server *srvs[2] = {p_server(false, false), p_server(false, false)};
    wsx_hub *hub = wsx_hub_of(P.loop);
    CHECK(hub != NULL);
    wsx_hub_hooks hooks = {h_on_first, h_on_last, NULL};
    wsx_hub_set_hooks(hub, &hooks);
    h_first = h_last = h_generic = 0;
    wsx_client *cl[6];
    for (int i = 0; i < 6; i++)
        cl[i] = p_client(srvs[i % 2], false);
    p_want = 6;
    p_run_until(p_opened, 5000);
    CHECK_INT(P.nconns, 6);
    /* Order: three connections, the other subscriber, three more. */
    for (int i = 0; i < 3; i++)
        CHECK_INT(wsx_subscribe(P.conns[i], "room:x"), 0);
    wsx_sub *g = NULL;
    CHECK_INT(wsx_hub_subscribe(hub, "room:x", h_deliver, NULL, &g), 0);
    for (int i = 3; i < 6; i++)
        CHECK_INT(wsx_subscribe(P.conns[i], "room:x"), 0);
    CHECK_INT(h_first, 1);
    CHECK_INT(wsx_topic_subscribers(srvs[0], "room:x"), 7);
    CHECK_INT(wsx_topic_count(srvs[0]), 1);
    CHECK_INT(wsx_topic_count(srvs[1]), 1);
    size_t len = 100;
    uint8_t *msg = p_message(len);
    P.expect_len = len;
    /* conns 0-2, the other subscriber, conn 3; conn 4 is closing and conn 5 unsubscribed by
     * then. Through either server, it reaches the subscribers of both. */
    CHECK_INT(wsx_publish(srvs[1], "room:x", msg, len, WSX_BINARY), 5);
    free(msg);
    CHECK_INT(h_generic, 1);
    CHECK_INT(wsx_topic_subscribers(srvs[1], "room:x"), 6);
    wsx_server_stats st[2];
    wsx_server_get_stats(srvs[0], &st[0]);
    wsx_server_get_stats(srvs[1], &st[1]);
    CHECK_INT(st[0].messages_out + st[1].messages_out, 4); /* counted by each conn's server */
    CHECK_INT(st[0].bytes_out + st[1].bytes_out, 4 * len);
    p_want = 4;
    p_run_until(p_got_want, 5000);
    CHECK_INT(P.got, 4);
    CHECK_INT(P.bad, 0);
    /* The other subscriber goes first: the topic's last subscriptions are connections, and
     * on_last runs when the last of them closes (the close hook of the ws layer). The server
     * closes them (conn 4's client is gone already, and freed). */
    wsx_hub_unsubscribe(g);
    CHECK_INT(h_last, 0);
    CHECK_INT(wsx_topic_subscribers(srvs[0], "room:x"), 4);
    (void)cl;
    for (int i = 0; i < 6; i++)
        if (i != 4 && P.conns[i]) CHECK_INT(wsx_close(P.conns[i], 1000, NULL), 0);
    for (int i = 0; i < 300 && wsx_topic_subscribers(srvs[0], "room:x") > 0; i++)
        p_run_until(NULL, 10);
    CHECK_INT(wsx_topic_subscribers(srvs[0], "room:x"), 0);
    CHECK_INT(h_last, 1);
    CHECK_INT(h_first, 1);
    CHECK_INT(wsx_topic_count(srvs[0]), 0);
    p_end(srvs, 2);
}

/* ---- shared bytes on streamed HTTP responses ---- */

static void p_http(wsx_http_req *r, void *u)
{
    (void)u;
    wsx_http_header h[] = {{"Content-Type", 12, "text/event-stream", 17}};
    if (wsx_http_begin(r, 200, h, 1) == 0) P.reqs[P.nreqs++] = r;
}

static void p_gone(wsx_http_req *r, void *arg)
{
    (void)arg;
    P.closed++;
    for (int i = 0; i < P.nreqs; i++)
        if (P.reqs[i] == r) P.reqs[i] = NULL;
}

static int raw_get(uint16_t port, bool small_rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    if (small_rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
    const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    if (write(fd, req, sizeof req - 1) < 0) return -1;
    return fd;
}

static bool p_reqs_want(void)
{
    return P.nreqs >= p_want;
}

/* Reads what is there without blocking; returns the bytes read (0 if none). */
static size_t drain_fd(int fd, char *buf, size_t cap, size_t *have)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + *have, cap - *have, MSG_DONTWAIT);
        if (n <= 0) break;
        *have += (size_t)n;
        got += (size_t)n;
        if (*have == cap) break;
    }
    return got;
}

TEST(bytes_shared_by_streamed_responses)
{
    p_begin();
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    so.on_http = p_http;
    so.send_high_water = 256 << 10;
    so.send_hard_limit = 1 << 20;
    wsx_server *srv = NULL;
    CHECK_INT(wsx_server_start(P.loop, &so, &srv, NULL), 0);
    uint16_t port = wsx_server_port(srv);
    int fds[NP];
    for (int i = 0; i < NP; i++)
        fds[i] = raw_get(port, false);
    p_want = NP;
    p_run_until(p_reqs_want, 5000);
    CHECK_INT(P.nreqs, NP);
    for (int i = 0; i < NP; i++)
        wsx_http_on_gone(P.reqs[i], p_gone, NULL);

    static const char ev[] = "id: 1\nevent: message\ndata: {\"x\":1}\n\n";
    wsx_bytes *b = NULL;
    CHECK_INT(wsx_bytes_new(NULL, 0, &b), WSX_EINVAL);
    CHECK_INT(wsx_bytes_new(NULL, sizeof ev - 1, &b), 0);
    memcpy(wsx_bytes_data(b), ev, sizeof ev - 1);
    CHECK_INT(wsx_bytes_len(b), sizeof ev - 1);
    wsx__ref *ref = (wsx__ref *)(void *)b;
    for (int i = 0; i < NP; i++) {
        CHECK_INT(wsx_http_write_bytes(P.reqs[i], b, 0, sizeof ev - 1), 0);
        /* A slice: "data: ..." only. */
        CHECK_INT(wsx_http_write_bytes(P.reqs[i], b, 21, sizeof ev - 1 - 21), 0);
    }
    CHECK_INT(wsx_http_write_bytes(P.reqs[0], b, 1, sizeof ev - 1), WSX_EINVAL);
    CHECK_INT(wsx_http_write_bytes(P.reqs[0], b, sizeof ev, 0), WSX_EINVAL);
    CHECK_INT(ref->refs, 1 + 2 * NP);
    CHECK(wsx_http_buffered_amount(P.reqs[0]) >= 2 * (sizeof ev - 1) - 21);
    wsx_bytes_release(b); /* the creator is done; the queues are not */
    CHECK_INT(ref->refs, 2 * NP);
    /* Keep a reference to watch the count go down as the queues are written. */
    wsx__ref_retain(ref);
    p_run_until(NULL, 50);
    CHECK_INT(ref->refs, 1);
    static char buf[4096];
    size_t have = 0;
    for (int i = 0; i < 100 && !strstr(buf, "data: {\"x\":1}\n\ndata: {\"x\":1}\n\n"); i++) {
        drain_fd(fds[3], buf, sizeof buf - 1, &have);
        buf[have] = 0;
        p_run_until(NULL, 10);
    }
    CHECK(strstr(buf, "\r\n\r\nid: 1\nevent: message\ndata: {\"x\":1}\n\ndata: {\"x\":1}\n\n") !=
          NULL);
    wsx__ref_release(ref);
    for (int i = 0; i < NP; i++)
        close(fds[i]);
    for (int i = 0; i < 300 && P.closed < NP; i++)
        p_run_until(NULL, 10);
    CHECK_INT(P.closed, NP);

    /* A listener that never reads: backpressure above 256 KiB, closed past 1 MiB. */
    P.nreqs = 0;
    P.closed = 0;
    int slow = raw_get(port, true);
    p_want = 1;
    p_run_until(p_reqs_want, 5000);
    CHECK_INT(P.nreqs, 1);
    wsx_http_req *r = P.reqs[0];
    wsx_http_on_gone(r, p_gone, NULL);
    CHECK_INT(wsx_bytes_new(NULL, 64 << 10, &b), 0);
    memset(wsx_bytes_data(b), 'x', 64 << 10);
    int rcs[20];
    for (int k = 0; k < 20; k++)
        rcs[k] = wsx_http_write_bytes(r, b, 0, 64 << 10);
    CHECK_INT(rcs[3], 0);                  /* exactly 256 KiB: not above */
    CHECK_INT(rcs[4], WSX_EBACKPRESSURE);  /* above the high-water mark */
    CHECK_INT(rcs[15], WSX_EBACKPRESSURE); /* exactly 1 MiB: not past the hard limit */
    CHECK_INT(rcs[16], WSX_ECLOSED);
    CHECK_INT(rcs[19], WSX_ECLOSED);
    wsx_bytes_release(b);
    p_run_until(NULL, 50);
    CHECK_INT(P.closed, 1);
    close(slow);
    p_end(&srv, 1);
}

/* Threadsafe publishes own a copy of the message: one the loop runs is published (the hook
 * sees it), ones still queued when the loop is freed are freed with it (the ASan build's leak
 * check fails otherwise), from several threads. */
#define TS_POSTERS 4
#define TS_EACH    500

static int ts_hooked;
static wsx_server *ts_srv;

static void ts_hook(wsx_server *s, const char *topic, const uint8_t *data, size_t len, int type,
                    void *arg)
{
    (void)s, (void)topic, (void)data, (void)len, (void)type, (void)arg;
    ts_hooked++;
}

static void *ts_posts_main(void *arg)
{
    (void)arg;
    char msg[300];
    memset(msg, 'x', sizeof msg);
    for (int i = 0; i < TS_EACH; i++) {
        if (i % 2)
            wsx_publish_threadsafe(ts_srv, "room:ts", msg, sizeof msg, WSX_TEXT);
        else
            wsx_deliver_local_threadsafe(ts_srv, "room:ts", msg, sizeof msg, WSX_BINARY);
    }
    return NULL;
}

TEST(threadsafe_posts_freed_with_unrun_loop)
{
    wsx_loop *loop = NULL;
    CHECK_INT(wsx_loop_new(&loop), 0);
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    CHECK_INT(wsx_server_start(loop, &so, &ts_srv, NULL), 0);
    wsx_server_set_publish_hook(ts_srv, ts_hook, NULL);
    ts_hooked = 0;
    CHECK_INT(wsx_publish_threadsafe(ts_srv, "room:ts", "hi", 2, WSX_TEXT), 0);
    wsx_server_shutdown(ts_srv, 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(ts_hooked, 1);
    /* The loop has finished; these arrive late, as relays do when a server stops. */
    pthread_t th[TS_POSTERS];
    for (int i = 0; i < TS_POSTERS; i++)
        pthread_create(&th[i], NULL, ts_posts_main, NULL);
    for (int i = 0; i < TS_POSTERS; i++)
        pthread_join(th[i], NULL);
    wsx_server_free(ts_srv);
    wsx_loop_free(loop);
    CHECK_INT(ts_hooked, 1);
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
    if (wsx_server_start(W.loop, &so, &W.srv, NULL) < 0) return 2;
    snprintf(W.url, sizeof W.url, "ws://127.0.0.1:%u/", wsx_server_port(W.srv));
    RUN(many_subscribers);
    RUN(slow_subscriber_does_not_delay_others);
    RUN(broadcast_compressed_once);
    RUN_T(prepared_shared_by_reference);
    RUN_T(prepared_released_when_connections_close);
    RUN_T(prepared_counts_against_send_limits);
    RUN_T(prepared_deflate_once);
    RUN_T(hub_shared_by_servers_and_other_subscribers);
    RUN_T(bytes_shared_by_streamed_responses);
    RUN_T(threadsafe_posts_freed_with_unrun_loop);
    wsx_server_shutdown(W.srv, 500);
    wsx_loop_run(W.loop);
    wsx_server_free(W.srv);
    wsx_loop_free(W.loop);
    return test_summary("pubsub");
}
