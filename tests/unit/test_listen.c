/*
 * TCP listeners (src/net/listen.c): bind errors, SO_REUSEPORT, and shedding connections at
 * the descriptor limit.
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

/* ------------------------------------------------------------------------------------------
 * Listener details
 * ------------------------------------------------------------------------------------------ */

TEST(listen_errors_and_reuseport)
{
    wsx_loop *loop = new_loop();
    wsx__listener *a = NULL, *b = NULL, *c = NULL;
    wsx__listen_opts o = {.host = "127.0.0.1", .port = 0};
    CHECK_INT(wsx__listen(loop, &o, srv_accept, NULL, &a), 0);
    o.port = wsx__listener_port(a);
    CHECK_INT(wsx__listen(loop, &o, srv_accept, NULL, &b), WSX_EADDRINUSE);
    CHECK(b == NULL);
    wsx__listener_close(a);
    CHECK_INT(wsx_loop_run(loop), 0);

    o.reuseport = true;
    o.port = 0;
    CHECK_INT(wsx__listen(loop, &o, srv_accept, NULL, &a), 0);
    o.port = wsx__listener_port(a);
    CHECK_INT(wsx__listen(loop, &o, srv_accept, NULL, &b), 0);
    wsx__listener_close(a);
    wsx__listener_close(b);

    o.host = "no-such-host.invalid";
    CHECK_INT(wsx__listen(loop, &o, srv_accept, NULL, &c), WSX_ERESOLVE);
    o.host = "localhost";
    o.port = 0;
    o.reuseport = false;
    CHECK_INT(wsx__listen(loop, &o, srv_accept, NULL, &c), 0);
    wsx__listener_close(c);
    CHECK_INT(wsx__listen(loop, NULL, srv_accept, NULL, &c), WSX_EINVAL);
    CHECK_INT(wsx_loop_run(loop), 0);
    wsx_loop_free(loop);
}

static int emfile_accepted, emfile_overloads, emfile_shed, emfile_errno;
static int emfile_fds[64], emfile_nfds;
static wsx__listener *emfile_l;
static int emfile_cfd2 = -1;
static uint64_t emfile_eof_ms;

static void emfile_accept(wsx__listener *l, int fd, const struct sockaddr *p, socklen_t n, void *a)
{
    (void)p;
    (void)n;
    (void)a;
    emfile_accepted++;
    close(fd);
    wsx__listener_close(l);
}

static void emfile_overload(wsx__listener *l, int err, const struct sockaddr *peer, socklen_t n,
                            void *arg)
{
    (void)l;
    (void)n;
    (void)arg;
    emfile_overloads++;
    emfile_errno = err;
    if (peer) emfile_shed++;
}

/* Checks the shed client saw EOF, then frees descriptors and connects a second client, which
 * must now be accepted normally. */
static void emfile_release(wsx_timer *t, void *arg)
{
    (void)t;
    int cfd = *(int *)arg;
    char b;
    ssize_t r = recv(cfd, &b, 1, MSG_DONTWAIT);
    CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    if (r == 0 || errno == ECONNRESET) emfile_eof_ms = now_ms();
    while (emfile_nfds > 0)
        close(emfile_fds[--emfile_nfds]);
    emfile_cfd2 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(wsx__listener_port(emfile_l)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_INT(connect(emfile_cfd2, (struct sockaddr *)&a, sizeof a), 0);
}

TEST(accept_sheds_at_emfile)
{
    wsx_loop *loop = new_loop();
    wsx__listen_opts o = {.host = "127.0.0.1", .on_overload = emfile_overload};
    CHECK_INT(wsx__listen(loop, &o, emfile_accept, NULL, &emfile_l), 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);

    /* Exhaust descriptors with a low limit, keeping one for the client's socket. */
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = 64;
    setrlimit(RLIMIT_NOFILE, &low);
    emfile_nfds = 0;
    for (;;) {
        int fd = dup(cfd);
        if (fd < 0) break;
        if (emfile_nfds < 64) emfile_fds[emfile_nfds++] = fd;
    }
    /* The client needs a descriptor of its own to connect; the server then has none. */
    close(emfile_fds[--emfile_nfds]);
    int c1 = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c1 >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(wsx__listener_port(emfile_l)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_INT(connect(c1, (struct sockaddr *)&a, sizeof a), 0);
    emfile_accepted = emfile_overloads = emfile_shed = 0;
    emfile_eof_ms = 0;
    wsx_timer_start(loop, 100, 0, emfile_release, &c1, NULL);
    uint64_t it0 = wsx__loop_stats_get(loop)->iterations;
    uint64_t t0 = now_ms();
    CHECK_INT(wsx_loop_run(loop), 0);
    uint64_t iters = wsx__loop_stats_get(loop)->iterations - it0;
    /* The first client was shed at once (it had read EOF when the timer looked, 100 ms
     * later), the overload was reported, and the loop did not spin meanwhile. */
    CHECK_INT(emfile_shed, 1);
    CHECK_INT(emfile_overloads, 1);
    CHECK_INT(emfile_errno, EMFILE);
    CHECK(emfile_eof_ms != 0 && emfile_eof_ms - t0 < 1000);
    CHECK(iters < 30);
    /* Once descriptors were free again, the second client was accepted normally. */
    CHECK_INT(emfile_accepted, 1);
    setrlimit(RLIMIT_NOFILE, &old);
    close(emfile_cfd2);
    close(c1);
    close(cfd);
    wsx_loop_free(loop);
}

int main(void)
{
    RUN_T(listen_errors_and_reuseport);
    RUN_T(accept_sheds_at_emfile);
    return test_summary("listen");
}
