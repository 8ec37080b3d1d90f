/*
 * Outgoing TCP connects through the loop (src/net/connect.c): refused, unresolvable, timed
 * out, cancelled in every state; the result is always delivered from the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "net/net.h"
#include "test.h"
#include "net_test.h"
#include "tcp_test.h"
#include "wsx/loop.h"

static void srv_ignore_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    (void)s, (void)d, (void)n;
}

static const wsx__stream_vt ignore_vt = {srv_ignore_read, NULL, NULL, srv_conn_close};

/* ------------------------------------------------------------------------------------------
 * Connect errors, timeout, cancel
 * ------------------------------------------------------------------------------------------ */

typedef struct {
    int calls;
    int fd;
    int err;
} result;

static void record_result(int fd, int err, void *arg)
{
    result *r = arg;
    r->calls++;
    r->fd = fd;
    r->err = err;
    if (fd >= 0) close(fd);
}

static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

TEST(connect_refused)
{
    wsx_loop *loop = new_loop();
    result r = {0, -2, 1};
    uint16_t port = closed_port();
    CHECK_INT(wsx__connect(loop, "127.0.0.1", port, 5000, record_result, &r, NULL), 0);
    CHECK_INT(r.calls, 0); /* never from inside wsx__connect */
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.fd, -1);
    CHECK_INT(r.err, WSX_ECONNREFUSED);

    /* Through the resolver thread as well. */
    r = (result){0, -2, 1};
    CHECK_INT(wsx__connect(loop, "localhost", port, 5000, record_result, &r, NULL), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.err, WSX_ECONNREFUSED);

    CHECK_INT(wsx__connect(loop, "", port, 0, record_result, &r, NULL), WSX_EINVAL);
    CHECK_INT(wsx__connect(loop, "x", port, 0, NULL, &r, NULL), WSX_EINVAL);
    wsx_loop_free(loop);
}

TEST(connect_resolve_failure)
{
    wsx_loop *loop = new_loop();
    result r = {0, -2, 1};
    /* RFC 6761: .invalid never resolves. */
    CHECK_INT(wsx__connect(loop, "no-such-host.invalid", 80, 10000, record_result, &r, NULL), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.calls, 1);
    CHECK(r.err == WSX_ERESOLVE || r.err == WSX_ETIMEDOUT);
    wsx_loop_free(loop);
}

TEST(connect_timeout)
{
    wsx_loop *loop = new_loop();
    result r = {0, -2, 1};
    /* A listener that never accepts, with its backlog filled: further SYNs are dropped and
     * the connect hangs until our deadline. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(l, (struct sockaddr *)&a, sizeof a);
    socklen_t alen = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &alen);
    listen(l, 0);
    int fillers[3];
    for (int i = 0; i < 3; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof a);
    }
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    uint64_t t0 = now_ms();
    CHECK_INT(wsx__connect(loop, "127.0.0.1", ntohs(a.sin_port), 200, record_result, &r, NULL), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    uint64_t took = now_ms() - t0;
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.fd, -1);
    CHECK_INT(r.err, WSX_ETIMEDOUT);
    CHECK(took >= 190);
    CHECK(took < 5000);
    for (int i = 0; i < 3; i++)
        close(fillers[i]);
    close(l);
    wsx_loop_free(loop);
}

static wsx__connect_req *cancel_req;
static result cancel_res;
static int cancel_late_calls, cancel_late_cancels;

static void cancel_late_result(int fd, int err, void *arg)
{
    cancel_late_calls++;
    cancel_req = NULL; /* the handle dies with the callback */
    if (fd >= 0) close(fd);
}

static void cancel_from_timer(wsx_timer *t, void *arg)
{
    if (!cancel_req) return;
    cancel_late_cancels++;
    wsx__connect_cancel(cancel_req);
    cancel_req = NULL;
}

TEST(cancel_pending_connect)
{
    wsx_loop *loop = new_loop();
    server srv;
    start_server(&srv, loop, "127.0.0.1", &ignore_vt);
    uint16_t port = wsx__listener_port(srv.l);

    /* While resolving: the worker's result is discarded; free joins it. */
    memset(&cancel_res, 0, sizeof cancel_res);
    wsx__connect_req *req = NULL;
    CHECK_INT(wsx__connect(loop, "localhost", port, 5000, record_result, &cancel_res, &req), 0);
    CHECK(req != NULL);
    wsx__connect_cancel(req);

    /* While connecting, or with the result already waiting for delivery. */
    CHECK_INT(wsx__connect(loop, "127.0.0.1", port, 5000, record_result, &cancel_res, &req), 0);
    wsx__connect_cancel(req);

    /* From a timer, racing with the resolver thread: exactly one of cancel or callback. */
    cancel_late_calls = cancel_late_cancels = 0;
    CHECK_INT(
        wsx__connect(loop, "localhost", closed_port(), 5000, cancel_late_result, NULL, &cancel_req),
        0);
    wsx_timer_start(loop, 0, 0, cancel_from_timer, NULL, NULL);
    wsx__listener_close(srv.l);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(cancel_late_calls + cancel_late_cancels, 1);
    CHECK_INT(cancel_res.calls, 0);
    wsx_loop_free(loop);

    /* Cancel and free the loop at once, with a resolution still in flight. */
    loop = new_loop();
    CHECK_INT(wsx__connect(loop, "localhost", 1, 5000, record_result, &cancel_res, &req), 0);
    wsx__connect_cancel(req);
    wsx_loop_free(loop);
    CHECK_INT(cancel_res.calls, 0);
}

int main(void)
{
    RUN_T(connect_refused);
    RUN_T(connect_resolve_failure);
    RUN_T(connect_timeout);
    RUN_T(cancel_pending_connect);
    return test_summary("connect");
}
