/*
 * TCP streams through the loop with real sockets on 127.0.0.1 and ::1: echo, corking,
 * backpressure, shared buffers, close semantics, output accounting. Connect errors and
 * cancel: test_connect.c; listener details: test_listen.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "net/net.h"
#include "test.h"
#include "net_test.h"
#include "tcp_test.h"
#include "wsx/loop.h"

static bool ipv6_loopback_ok(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* ------------------------------------------------------------------------------------------
 * Echo of 1 MiB both ways
 * ------------------------------------------------------------------------------------------ */

static void echo_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    CHECK_INT(wsx__stream_write1(s, d, n), 0);
    /* Backpressure as the layers above will do it: stop reading while the peer lags. */
    if (wsx__stream_queued(s) > 4u << 20) wsx__stream_pause(s);
}

static void echo_drain(wsx__stream *s)
{
    wsx__stream_resume(s);
}

static const wsx__stream_vt echo_vt = {echo_read, NULL, echo_drain, srv_conn_close};

enum { ECHO_LEN = 1 << 20 };

typedef struct {
    wsx__stream s;
    server *srv;
    wsx_loop *loop;
    size_t got;
    size_t bad;
    int closes;
    int close_err;
    char peer[64];
    bool connected;
} client;

static void cli_echo_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    client *c = wsx__container_of(s, client, s);
    for (size_t i = 0; i < n; i++)
        c->bad += d[i] != pattern(c->got + i);
    c->got += n;
    if (c->got == ECHO_LEN) {
        wsx__stream_close(s);
        wsx__listener_close(c->srv->l);
    }
}

static void cli_close(wsx__stream *s, int err)
{
    client *c = wsx__container_of(s, client, s);
    c->closes++;
    c->close_err = err;
}

static const wsx__stream_vt cli_echo_vt = {cli_echo_read, NULL, NULL, cli_close};

static void cli_echo_connected(int fd, int err, void *arg)
{
    client *c = arg;
    CHECK_INT(err, 0);
    if (fd < 0) {
        wsx__listener_close(c->srv->l);
        return;
    }
    c->connected = true;
    CHECK_INT(wsx__stream_init(c->loop, &c->s, fd, &cli_echo_vt), 0);
    CHECK(wsx__stream_peer(&c->s, c->peer, sizeof c->peer) > 0);
    /* One big write (a chunk of its own) and many small ones (appended to shared chunks). */
    uint8_t *buf = malloc(ECHO_LEN);
    for (size_t i = 0; i < ECHO_LEN; i++)
        buf[i] = pattern(i);
    size_t half = ECHO_LEN / 2;
    CHECK_INT(wsx__stream_write1(&c->s, buf, half), 0);
    for (size_t off = half; off < ECHO_LEN; off += 1000) {
        size_t k = ECHO_LEN - off < 1000 ? ECHO_LEN - off : 1000;
        struct iovec iov[2] = {{buf + off, k / 2}, {buf + off + k / 2, k - k / 2}};
        CHECK_INT(wsx__stream_write(&c->s, iov, 2), 0);
    }
    /* The first, large write may have gone to the kernel at once (nothing was queued);
     * the small ones after it are queued behind whatever it left. */
    CHECK(wsx__stream_queued(&c->s) >= ECHO_LEN - half);
    CHECK(wsx__stream_queued(&c->s) <= ECHO_LEN);
    free(buf);
}

static void echo_over(const char *listen_host, const char *connect_host, const char *peer_prefix)
{
    wsx_loop *loop = new_loop();
    server srv;
    start_server(&srv, loop, listen_host, &echo_vt);
    client c = {.srv = &srv, .loop = loop};
    unsigned port = wsx__listener_port(srv.l);
    CHECK_INT(wsx__connect(loop, connect_host, (uint16_t)port, 5000, cli_echo_connected, &c, NULL),
              0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK(c.connected);
    CHECK_INT(c.got, ECHO_LEN);
    CHECK_INT(c.bad, 0);
    CHECK_INT(c.closes, 1);
    CHECK_INT(c.close_err, 0);
    CHECK_INT(srv.accepted, 1);
    CHECK_INT(srv.closed, 1);
    CHECK_INT(srv.last_err, WSX_ECLOSED); /* EOF without on_eof */
    char expect[64];
    snprintf(expect, sizeof expect, "%s:%u", peer_prefix, port);
    CHECK_STR(c.peer, expect);
    wsx_loop_free(loop);
}

TEST(echo_1mib_ipv4)
{
    echo_over("127.0.0.1", "127.0.0.1", "127.0.0.1");
}

TEST(echo_1mib_ipv6)
{
    if (!ipv6_loopback_ok()) {
        printf("skipping IPv6: ::1 unavailable\n");
        return;
    }
    echo_over("::1", "::1", "[::1]");
    echo_over("::1", "[::1]", "[::1]");
}

TEST(echo_dual_stack_any)
{
    if (!ipv6_loopback_ok()) return;
    echo_over(NULL, "127.0.0.1", "127.0.0.1");
    echo_over("", "::1", "[::1]");
}

TEST(resolve_localhost)
{
    echo_over("127.0.0.1", "localhost", "127.0.0.1");
}

/* ------------------------------------------------------------------------------------------
 * Corking: 1000 small writes in one iteration leave in very few writev calls
 * ------------------------------------------------------------------------------------------ */

enum { CORK_N = 1000 };

static char cork_expect[CORK_N * 16];
static size_t cork_expect_len;
static uint64_t cork_writev_before;
static uint64_t cork_writev_after;
static uint64_t cork_ctl_before;
static uint64_t cork_ctl_after;

static void cork_accept(server *srv, conn *c)
{
    cork_writev_before = wsx__loop_stats_get(srv->loop)->writev_calls;
    cork_ctl_before = wsx__loop_stats_get(srv->loop)->epoll_ctl_calls;
    for (int i = 0; i < CORK_N; i++) {
        char m[16];
        int k = snprintf(m, sizeof m, "msg%04d\n", i);
        CHECK_INT(wsx__stream_write1(&c->s, m, (size_t)k), 0);
    }
    CHECK_INT(wsx__stream_queued(&c->s), cork_expect_len);
    /* Corked: nothing reached the kernel yet. */
    CHECK_INT(wsx__loop_stats_get(srv->loop)->writev_calls, cork_writev_before);
    wsx__stream_shutdown_write(&c->s);
    CHECK_INT(wsx__stream_write1(&c->s, "x", 1), WSX_ECLOSED);
}

static void srv_ignore_read(wsx__stream *s, const uint8_t *d, size_t n) {}

static const wsx__stream_vt cork_srv_vt = {srv_ignore_read, NULL, NULL, srv_conn_close};

typedef struct {
    wsx__stream s;
    server *srv;
    wsx_loop *loop;
    char *buf;
    size_t len, cap;
    int closes, close_err;
    bool eof;
} collector;

static void col_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    collector *c = wsx__container_of(s, collector, s);
    if (c->len + n > c->cap) {
        c->cap = (c->len + n) * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, d, n);
    c->len += n;
}

static void col_close(wsx__stream *s, int err)
{
    collector *c = wsx__container_of(s, collector, s);
    c->closes++;
    c->close_err = err;
    if (c->srv && c->srv->l) {
        wsx__listener_close(c->srv->l);
        c->srv->l = NULL;
    }
}

static void col_eof(wsx__stream *s)
{
    collector *c = wsx__container_of(s, collector, s);
    c->eof = true;
    cork_writev_after = wsx__loop_stats_get(c->loop)->writev_calls;
    cork_ctl_after = wsx__loop_stats_get(c->loop)->epoll_ctl_calls;
    wsx__stream_close(s);
}

static const wsx__stream_vt col_vt = {col_read, col_eof, NULL, col_close};

static void col_connected(int fd, int err, void *arg)
{
    collector *c = arg;
    CHECK_INT(err, 0);
    if (fd >= 0) CHECK_INT(wsx__stream_init(c->loop, &c->s, fd, &col_vt), 0);
}

TEST(corked_small_writes)
{
    cork_expect_len = 0;
    for (int i = 0; i < CORK_N; i++)
        cork_expect_len += (size_t)snprintf(cork_expect + cork_expect_len, 16, "msg%04d\n", i);
    wsx_loop *loop = new_loop();
    server srv;
    start_server(&srv, loop, "127.0.0.1", &cork_srv_vt);
    srv.on_accept = cork_accept;
    collector c = {.srv = &srv, .loop = loop};
    CHECK_INT(
        wsx__connect(loop, "127.0.0.1", wsx__listener_port(srv.l), 5000, col_connected, &c, NULL),
        0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK(c.eof);
    CHECK_MEM(c.buf, c.len, cork_expect, cork_expect_len);
    /* 8 KB in one 16 KiB chunk: a single writev. */
    CHECK_INT(cork_writev_after - cork_writev_before, 1);
    /* The kernel took it all, so EPOLLOUT was never asked for. What may remain: the client's
     * connect completing after the accept (DEL of the connect watcher, ADD of the stream)
     * and the client dropping read interest at EOF. */
    CHECK(cork_ctl_after - cork_ctl_before <= 3);
    CHECK_INT(srv.closed, 1);
    CHECK_INT(srv.last_err, WSX_ECLOSED);
    CHECK_INT(c.closes, 1);
    free(c.buf);
    wsx_loop_free(loop);
}

/* ------------------------------------------------------------------------------------------
 * Backpressure: the peer does not read, the queue grows; resume drains it
 * ------------------------------------------------------------------------------------------ */

enum { BP_LEN = 32 << 20, BP_STEP = 256 << 10 };

typedef struct {
    collector cli;
    server srv;
    conn *sc;
    size_t sent;
    size_t max_queued;
    int drains;
    int reads_while_paused;
    bool paused;
    size_t verified;
    size_t bad;
} bp_state;

static bp_state bp;

static void bp_fill(conn *c)
{
    /* Keep writing in 256 KiB pieces while the queue is below 8 MiB. */
    static uint8_t piece[BP_STEP];
    while (bp.sent < BP_LEN && wsx__stream_queued(&c->s) < (8u << 20)) {
        for (size_t i = 0; i < BP_STEP; i++)
            piece[i] = pattern(bp.sent + i);
        CHECK_INT(wsx__stream_write1(&c->s, piece, BP_STEP), 0);
        bp.sent += BP_STEP;
    }
    if (wsx__stream_queued(&c->s) > bp.max_queued) bp.max_queued = wsx__stream_queued(&c->s);
    if (bp.sent == BP_LEN) wsx__stream_shutdown_write(&c->s);
}

static void bp_accept(server *srv, conn *c)
{
    bp.sc = c;
    bp_fill(c);
}

static void bp_srv_drain(wsx__stream *s)
{
    bp.drains++;
    bp_fill(wsx__container_of(s, conn, s));
}

static const wsx__stream_vt bp_srv_vt = {srv_ignore_read, NULL, bp_srv_drain, srv_conn_close};

static void bp_cli_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    if (bp.paused) bp.reads_while_paused++;
    for (size_t i = 0; i < n; i++)
        bp.bad += d[i] != pattern(bp.verified + i);
    bp.verified += n;
}

static void bp_cli_eof(wsx__stream *s)
{
    wsx__stream_close(s);
}

static void bp_cli_close(wsx__stream *s, int err)
{
    bp.cli.closes++;
    bp.cli.close_err = err;
    wsx__listener_close(bp.srv.l);
}

static const wsx__stream_vt bp_cli_vt = {bp_cli_read, bp_cli_eof, NULL, bp_cli_close};

static void bp_resume(wsx_timer *t, void *arg)
{
    /* After 300 ms of not reading, the server must be holding output. */
    CHECK(bp.sc != NULL);
    if (bp.sc) CHECK(wsx__stream_queued(&bp.sc->s) > 0);
    CHECK(bp.sent < BP_LEN);
    CHECK_INT(bp.drains, 0);
    bp.paused = false;
    wsx__stream_resume(&bp.cli.s);
}

static void bp_connected(int fd, int err, void *arg)
{
    CHECK_INT(err, 0);
    if (fd < 0) return;
    CHECK_INT(wsx__stream_init(bp.cli.loop, &bp.cli.s, fd, &bp_cli_vt), 0);
    /* Shrink the receive buffer so that the peer's queue fills quickly. */
    int small = 64 << 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    bp.paused = true;
    wsx__stream_pause(&bp.cli.s);
    wsx_timer_start(bp.cli.loop, 300, 0, bp_resume, NULL, NULL);
}

TEST(backpressure_pause_resume)
{
    memset(&bp, 0, sizeof bp);
    wsx_loop *loop = new_loop();
    bp.cli.loop = loop;
    start_server(&bp.srv, loop, "127.0.0.1", &bp_srv_vt);
    bp.srv.on_accept = bp_accept;
    CHECK_INT(wsx__connect(loop, "127.0.0.1", wsx__listener_port(bp.srv.l), 5000, bp_connected,
                           NULL, NULL),
              0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(bp.reads_while_paused, 0);
    CHECK(bp.max_queued >= (8u << 20) - BP_STEP);
    CHECK(bp.drains > 0);
    CHECK_INT(bp.sent, BP_LEN);
    CHECK_INT(bp.verified, BP_LEN);
    CHECK_INT(bp.bad, 0);
    CHECK_INT(bp.cli.closes, 1);
    CHECK_INT(bp.srv.closed, 1);
    wsx_loop_free(loop);
}

/* ------------------------------------------------------------------------------------------
 * One shared buffer queued to 100 streams without copying
 * ------------------------------------------------------------------------------------------ */

enum { REF_CONNS = 100, REF_LEN = 100 * 1000 };

typedef struct {
    collector c[REF_CONNS];
    server srv;
    wsx__ref *ref;
    int done;
    uint32_t refs_before_release;
} ref_state;

static ref_state rs;

static void ref_accept(server *srv, conn *c)
{
    if (srv->accepted < REF_CONNS) return;
    /* Everyone is here: frame once, queue everywhere. */
    rs.ref = wsx__ref_new(REF_LEN);
    for (size_t i = 0; i < REF_LEN; i++)
        rs.ref->data[i] = pattern(i);
    for (conn *x = srv->conns; x; x = x->next) {
        CHECK_INT(wsx__stream_write_ref(&x->s, rs.ref, rs.ref->data, 1000), 0);
        CHECK_INT(wsx__stream_write1(&x->s, "|", 1), 0);
        CHECK_INT(wsx__stream_write_ref(&x->s, rs.ref, rs.ref->data + 1000, REF_LEN - 1000), 0);
        CHECK_INT(wsx__stream_queued(&x->s), REF_LEN + 1);
        wsx__stream_shutdown_write(&x->s);
    }
    CHECK_INT(rs.ref->refs, 1 + 2 * REF_CONNS);
}

static void ref_col_eof(wsx__stream *s)
{
    collector *c = wsx__container_of(s, collector, s);
    c->eof = true;
    if (++rs.done == REF_CONNS) {
        /* Every slice was written: only the creator's reference remains. */
        rs.refs_before_release = rs.ref->refs;
        wsx__ref_release(rs.ref);
        wsx__listener_close(rs.srv.l);
    }
    wsx__stream_close(s);
}

static void ref_col_close(wsx__stream *s, int err)
{
    wsx__container_of(s, collector, s)->closes++;
}

static const wsx__stream_vt ref_col_vt = {col_read, ref_col_eof, NULL, ref_col_close};

static void ref_connected(int fd, int err, void *arg)
{
    collector *c = arg;
    CHECK_INT(err, 0);
    if (fd >= 0) CHECK_INT(wsx__stream_init(c->loop, &c->s, fd, &ref_col_vt), 0);
}

TEST(write_ref_shared_by_100_streams)
{
    memset(&rs, 0, sizeof rs);
    wsx_loop *loop = new_loop();
    start_server(&rs.srv, loop, "127.0.0.1", &cork_srv_vt);
    rs.srv.on_accept = ref_accept;
    for (int i = 0; i < REF_CONNS; i++) {
        rs.c[i].loop = loop;
        CHECK_INT(wsx__connect(loop, "127.0.0.1", wsx__listener_port(rs.srv.l), 5000, ref_connected,
                               &rs.c[i], NULL),
                  0);
    }
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(rs.done, REF_CONNS);
    CHECK_INT(rs.refs_before_release, 1);
    uint8_t *expect = malloc(REF_LEN + 1);
    for (size_t i = 0; i < 1000; i++)
        expect[i] = pattern(i);
    expect[1000] = '|';
    for (size_t i = 1000; i < REF_LEN; i++)
        expect[i + 1] = pattern(i);
    int bad = 0;
    for (int i = 0; i < REF_CONNS; i++) {
        bad += rs.c[i].len != REF_LEN + 1 || memcmp(rs.c[i].buf, expect, REF_LEN + 1) != 0;
        CHECK_INT(rs.c[i].closes, 1);
        free(rs.c[i].buf);
    }
    CHECK_INT(bad, 0);
    CHECK_INT(rs.srv.closed, REF_CONNS);
    free(expect);
    wsx_loop_free(loop);
}

/* ------------------------------------------------------------------------------------------
 * Fan-out coalescing: input that arrives while an iteration's callbacks write to many streams
 * is read before the flush, so each of those streams gets one writev carrying both pieces.
 * Below the threshold (echo-like traffic) nothing changes: one flush per iteration.
 * ------------------------------------------------------------------------------------------ */

#define FAN_MAX 100

static struct {
    wsx__stream pub, sub[FAN_MAX];
    int nsub, pub_peer, sub_peer[FAN_MAX], reads, closes;
    uint64_t read_iter[2];
} fan;

static bool fan_stop_first; /* stop the loop in the first read */

static void fan_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    CHECK(s == &fan.pub);
    if (fan.reads < 2) fan.read_iter[fan.reads] = wsx__loop_stats_get(s->loop)->iterations;
    fan.reads++;
    for (int i = 0; i < fan.nsub; i++)
        CHECK_INT(wsx__stream_write1(&fan.sub[i], d, n), 0);
    if (fan.reads == 1) {
        CHECK_INT((int)write(fan.pub_peer, "B", 1), 1); /* arrives while we fan out */
        if (fan_stop_first) wsx_loop_stop(s->loop);
    } else {
        wsx_loop_stop(s->loop);
    }
}

static void fan_close(wsx__stream *s, int err)
{
    (void)s;
    CHECK_INT(err, 0);
    fan.closes++;
}

static const wsx__stream_vt fan_vt = {.on_read = fan_read, .on_close = fan_close};

static int fan_pair(wsx_loop *loop, wsx__stream *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) exit(2);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    CHECK_INT(wsx__stream_init(loop, s, sv[0], &fan_vt), 0);
    return sv[1];
}

static void fan_run(int nsub, uint64_t *writevs, uint64_t *polls)
{
    memset(&fan, 0, sizeof fan);
    fan.nsub = nsub;
    wsx_loop *loop = new_loop();
    fan.pub_peer = fan_pair(loop, &fan.pub);
    for (int i = 0; i < nsub; i++)
        fan.sub_peer[i] = fan_pair(loop, &fan.sub[i]);
    wsx__loop_stats st0 = *wsx__loop_stats_get(loop);
    CHECK_INT((int)write(fan.pub_peer, "A", 1), 1);
    CHECK_INT(wsx_loop_run(loop), 0);
    if (fan.reads == 1) CHECK_INT(wsx_loop_run(loop), 0); /* stopped after the first piece */
    CHECK_INT(fan.reads, 2);
    *writevs = wsx__loop_stats_get(loop)->writev_calls - st0.writev_calls;
    *polls = wsx__loop_stats_get(loop)->fanout_polls - st0.fanout_polls;
    int bad = 0;
    for (int i = 0; i < nsub; i++) {
        char buf[8];
        ssize_t r = read(fan.sub_peer[i], buf, sizeof buf);
        bad += r != 2 || memcmp(buf, "AB", 2) != 0;
    }
    CHECK_INT(bad, 0);
    wsx__stream_close(&fan.pub);
    for (int i = 0; i < nsub; i++)
        wsx__stream_close(&fan.sub[i]);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(fan.closes, nsub + 1);
    close(fan.pub_peer);
    for (int i = 0; i < nsub; i++)
        close(fan.sub_peer[i]);
    wsx_loop_free(loop);
}

TEST(fanout_reads_more_input_before_flushing)
{
    uint64_t writevs, polls;
    fan_run(FAN_MAX, &writevs, &polls);
    CHECK_INT(fan.read_iter[0], fan.read_iter[1]); /* both pieces in one iteration */
    CHECK_INT(writevs, FAN_MAX);                   /* one write per subscriber for both */
    CHECK(polls >= 1 && polls <= 2);

    /* A callback that stops the loop ends the iteration's input there: no extra poll. */
    fan_stop_first = true;
    fan_run(FAN_MAX, &writevs, &polls);
    fan_stop_first = false;
    CHECK(fan.read_iter[1] == fan.read_iter[0] + 1);
    CHECK_INT(polls, 0);

    /* 16 streams: not worth an extra system call; each piece is flushed on its own. */
    fan_run(16, &writevs, &polls);
    CHECK(fan.read_iter[1] == fan.read_iter[0] + 1);
    CHECK_INT(writevs, 32);
    CHECK_INT(polls, 0);
}

/* ------------------------------------------------------------------------------------------
 * Close inside on_read; peer close; half-close with on_eof
 * ------------------------------------------------------------------------------------------ */

static int cir_reads, cir_closes, cir_close_err = 99;
static bool cir_in_read;
static bool cir_close_during_read;

static void cir_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    cir_reads++;
    cir_in_read = true;
    CHECK_INT(wsx__stream_write1(s, "dropped", 7), 0);
    wsx__stream_close(s);
    wsx__stream_close(s); /* idempotent */
    CHECK(wsx__stream_is_closing(s));
    CHECK_INT(wsx__stream_queued(s), 0);
    CHECK_INT(wsx__stream_write1(s, "x", 1), WSX_ECLOSED);
    /* The descriptor stays open until on_close has returned: the peer can still be named. */
    char peer[64];
    CHECK(wsx__stream_peer(s, peer, sizeof peer) > 0);
    CHECK(strncmp(peer, "127.0.0.1:", 10) == 0);
    cir_in_read = false;
}

static void cir_close(wsx__stream *s, int err)
{
    if (cir_in_read) cir_close_during_read = true;
    cir_closes++;
    cir_close_err = err;
    srv_conn_close(s, err);
}

static const wsx__stream_vt cir_vt = {cir_read, NULL, NULL, cir_close};

static void cir_cli_connected(int fd, int err, void *arg)
{
    collector *c = arg;
    CHECK_INT(err, 0);
    if (fd < 0) return;
    CHECK_INT(wsx__stream_init(c->loop, &c->s, fd, &col_vt), 0);
    CHECK_INT(wsx__stream_write1(&c->s, "hello", 5), 0);
}

TEST(close_inside_on_read)
{
    wsx_loop *loop = new_loop();
    server srv;
    start_server(&srv, loop, "127.0.0.1", &cir_vt);
    collector c = {.srv = &srv, .loop = loop};
    CHECK_INT(wsx__connect(loop, "127.0.0.1", wsx__listener_port(srv.l), 5000, cir_cli_connected,
                           &c, NULL),
              0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(cir_reads, 1);
    CHECK_INT(cir_closes, 1);
    CHECK_INT(cir_close_err, 0);
    CHECK(!cir_close_during_read);
    CHECK(c.eof);        /* the client saw the server go */
    CHECK_INT(c.len, 0); /* and nothing of the dropped write */
    CHECK_INT(c.closes, 1);
    free(c.buf);
    wsx_loop_free(loop);
}

/* Server: writes "hello", half-closes, then reads the client's reply until EOF. */
static void hc_accept(server *srv, conn *c)
{
    CHECK_INT(wsx__stream_write1(&c->s, "hello", 5), 0);
    wsx__stream_shutdown_write(&c->s);
    wsx__stream_shutdown_write(&c->s);
}

static char hc_srv_got[32];
static size_t hc_srv_len;

static void hc_srv_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    memcpy(hc_srv_got + hc_srv_len, d, n);
    hc_srv_len += n;
}

static const wsx__stream_vt hc_srv_vt = {hc_srv_read, NULL, NULL, srv_conn_close};

static void hc_cli_eof(wsx__stream *s)
{
    collector *c = wsx__container_of(s, collector, s);
    c->eof = true;
    /* The peer only stopped sending: we can still answer. */
    CHECK_INT(wsx__stream_write1(s, "reply", 5), 0);
    wsx__stream_shutdown_write(s);
}

static void hc_cli_close(wsx__stream *s, int err)
{
    col_close(s, err);
}

static const wsx__stream_vt hc_cli_vt = {col_read, hc_cli_eof, NULL, hc_cli_close};

static void hc_cli_connected(int fd, int err, void *arg)
{
    collector *c = arg;
    CHECK_INT(err, 0);
    if (fd >= 0) CHECK_INT(wsx__stream_init(c->loop, &c->s, fd, &hc_cli_vt), 0);
}

static void hc_srv_closed_watch(wsx_timer *t, void *arg)
{
    collector *c = arg;
    /* Server gone (it closed on EOF): close the client, whose half is done. */
    if (c->srv->closed == 1) {
        wsx__stream_close(&c->s);
        wsx_timer_stop(t);
    }
}

TEST(half_close_and_peer_close)
{
    wsx_loop *loop = new_loop();
    server srv;
    start_server(&srv, loop, "127.0.0.1", &hc_srv_vt);
    srv.on_accept = hc_accept;
    collector c = {.srv = &srv, .loop = loop};
    hc_srv_len = 0;
    CHECK_INT(wsx__connect(loop, "127.0.0.1", wsx__listener_port(srv.l), 5000, hc_cli_connected, &c,
                           NULL),
              0);
    wsx_timer_start(loop, 5, 5, hc_srv_closed_watch, &c, NULL);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK(c.eof);
    CHECK_STRN(c.buf, c.len, "hello");
    CHECK_STRN(hc_srv_got, hc_srv_len, "reply");
    CHECK_INT(srv.closed, 1);
    CHECK_INT(srv.last_err, WSX_ECLOSED); /* the peer's EOF, reported as close */
    CHECK_INT(c.closes, 1);
    /* Closed by us, or by the hang-up seen once both directions were shut. */
    CHECK(c.close_err == 0 || c.close_err == WSX_ECLOSED);
    free(c.buf);
    wsx_loop_free(loop);
}

/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------
 * Output accounting: the loop's count is exact, the process total follows it at the end of
 * every iteration, both return to 0 when queues drain and when streams close, and a loop
 * above the process budget runs its hooks.
 * ------------------------------------------------------------------------------------------ */

static struct {
    wsx__stream a, b;
    int closes, sheds;
    size_t excess;
} acc;

static void acc_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    (void)s;
    (void)d;
    (void)n;
}

static void acc_close(wsx__stream *s, int err)
{
    (void)s;
    (void)err;
    acc.closes++;
}

static const wsx__stream_vt acc_vt = {.on_read = acc_read, .on_close = acc_close};

static void acc_stop(wsx_timer *t, void *loop)
{
    (void)t;
    wsx_loop_stop(loop);
}

/* Runs the loop for about ms milliseconds (at least one whole iteration). */
static void acc_spin(wsx_loop *loop, uint64_t ms)
{
    wsx_timer_start(loop, ms, 0, acc_stop, loop, NULL);
    CHECK_INT(wsx_loop_run(loop), 0);
}

/* Reads (and drops) what the peer fd has. */
static size_t acc_drain_peer(int fd)
{
    static uint8_t buf[1 << 16];
    size_t total = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        total += (size_t)r;
    return total;
}

static void acc_shed(wsx__budget_hook *h, size_t excess)
{
    (void)h;
    acc.sheds++;
    acc.excess = excess;
    wsx__stream_close(&acc.a);
}

TEST(queued_bytes_accounting)
{
    memset(&acc, 0, sizeof acc);
    /* Every loop of the earlier tests was freed: nothing is left in the process total. */
    CHECK_INT(wsx_queued_bytes(), 0);
    wsx_loop *loop = new_loop();
    int sv[2], tv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) exit(2);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tv) != 0) exit(2);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(tv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    fcntl(tv[1], F_SETFL, O_NONBLOCK);
    CHECK_INT(wsx__stream_init(loop, &acc.a, sv[0], &acc_vt), 0);
    CHECK_INT(wsx__stream_init(loop, &acc.b, tv[0], &acc_vt), 0);

    /* Owned chunks (small writes and one large) on a, shared slices on b. */
    static uint8_t big[1 << 20];
    for (int i = 0; i < 100; i++)
        CHECK_INT(wsx__stream_write1(&acc.a, "0123456789", 10), 0);
    CHECK_INT(wsx__stream_write1(&acc.a, big, sizeof big), 0);
    wsx__ref *ref = wsx__ref_new(300000);
    memset(ref->data, 'r', ref->len);
    for (int i = 0; i < 3; i++)
        CHECK_INT(wsx__stream_write_ref(&acc.b, ref, ref->data, ref->len), 0);
    wsx__ref_release(ref);
    CHECK_INT(wsx__stream_queued(&acc.a), 1000 + sizeof big);
    CHECK_INT(wsx__stream_queued(&acc.b), 900000);
    CHECK_INT(wsx__loop_queued(loop), 1000 + sizeof big + 900000);

    /* The peers do not read: after an iteration the kernel holds part, the rest is queued,
     * and the process total is the loop's count. */
    acc_spin(loop, 5);
    size_t q = wsx__loop_queued(loop);
    CHECK_INT(q, wsx__stream_queued(&acc.a) + wsx__stream_queued(&acc.b));
    CHECK(q > 0 && q < 1000 + sizeof big + 900000);
    CHECK_INT(wsx_queued_bytes(), q);

    /* The peers read everything: back to 0, in the loop and in the process. */
    size_t got = 0;
    for (int i = 0; i < 2000 && (wsx__loop_queued(loop) || i == 0); i++) {
        got += acc_drain_peer(sv[1]) + acc_drain_peer(tv[1]);
        acc_spin(loop, 1);
    }
    got += acc_drain_peer(sv[1]) + acc_drain_peer(tv[1]);
    CHECK_INT(got, 1000 + sizeof big + 900000);
    CHECK_INT(wsx__loop_queued(loop), 0);
    CHECK_INT(wsx_queued_bytes(), 0);

    /* Queued again, then closed: closing drops the queue and its count. */
    CHECK_INT(wsx__stream_write1(&acc.b, "x", 1), 0);
    acc_spin(loop, 2);
    acc_drain_peer(tv[1]);
    for (int i = 0; i < 4; i++)
        CHECK_INT(wsx__stream_write1(&acc.b, big, sizeof big), 0);
    acc_spin(loop, 2);
    CHECK(wsx_queued_bytes() > (3u << 20));
    wsx__stream_close(&acc.b);
    acc_spin(loop, 2);
    CHECK_INT(acc.closes, 1);
    CHECK_INT(wsx__loop_queued(loop), 0);
    CHECK_INT(wsx_queued_bytes(), 0);

    /* Above a 256 KiB budget the loop runs its hook once, in the same iteration; the hook
     * closes a, and the total is 0 again. Below it, nothing happens. */
    wsx_set_max_queued_bytes(256u << 10);
    CHECK_INT(wsx_max_queued_bytes(), 256u << 10);
    wsx__budget_hook h = {.shed = acc_shed};
    wsx__loop_add_budget_hook(loop, &h);
    CHECK_INT(wsx__stream_write1(&acc.a, "y", 1), 0); /* queued: later writes are too */
    CHECK_INT(wsx__stream_write1(&acc.a, big, 100000), 0);
    acc_spin(loop, 2);
    CHECK_INT(acc.sheds, 0);
    for (int i = 0; i < 4; i++)
        CHECK_INT(wsx__stream_write1(&acc.a, big, sizeof big), 0);
    acc_spin(loop, 2);
    CHECK_INT(acc.sheds, 1);
    CHECK(acc.excess > 0 && acc.excess <= 4u << 20);
    CHECK_INT(acc.closes, 2);
    CHECK_INT(wsx__loop_queued(loop), 0);
    CHECK_INT(wsx_queued_bytes(), 0);
    wsx__loop_remove_budget_hook(loop, &h);
    wsx_set_max_queued_bytes(0);
    CHECK(wsx_max_queued_bytes() > (256u << 10));

    close(sv[1]);
    close(tv[1]);
    wsx_loop_free(loop);
    CHECK_INT(wsx_queued_bytes(), 0);
}

TEST(stream_is_small)
{
    CHECK(sizeof(wsx__stream) <= 64);
    char buf[64];
    struct sockaddr_in6 a6 = {
        .sin6_family = AF_INET6, .sin6_port = htons(5555), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    CHECK_INT(wsx__addr_format((struct sockaddr *)&a6, buf, sizeof buf), 10);
    CHECK_STR(buf, "[::1]:5555");
    struct sockaddr_in a4 = {
        .sin_family = AF_INET, .sin_port = htons(5555), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_INT(wsx__addr_format((struct sockaddr *)&a4, buf, sizeof buf), 14);
    CHECK_STR(buf, "127.0.0.1:5555");
    CHECK_INT(wsx__addr_format((struct sockaddr *)&a4, buf, 14), WSX_ENOSPC);
    wsx__ref *r = wsx__ref_new(10);
    CHECK(r && r->refs == 1 && r->len == 10);
    CHECK(wsx__ref_retain(r) == r);
    wsx__ref_release(r);
    wsx__ref_release(r);
    wsx__ref_release(NULL);
}

int main(void)
{
    RUN_T(stream_is_small);
    RUN_T(echo_1mib_ipv4);
    RUN_T(echo_1mib_ipv6);
    RUN_T(echo_dual_stack_any);
    RUN_T(resolve_localhost);
    RUN_T(corked_small_writes);
    RUN_T(backpressure_pause_resume);
    RUN_T(write_ref_shared_by_100_streams);
    RUN_T(fanout_reads_more_input_before_flushing);
    RUN_T(close_inside_on_read);
    RUN_T(half_close_and_peer_close);
    RUN_T(queued_bytes_accounting);
    return test_summary("tcp");
}
