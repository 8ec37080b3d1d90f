/*
 * TCP listeners: bind and listen (dual-stack, SO_REUSEPORT), accept in batches, and shed
 * connections at the descriptor limit instead of leaving them in the backlog.
 */
#define WSX__NET_INTERNAL
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------
 * Listeners
 * --------------------------------------------------------------------------------------- */

#define ACCEPT_BATCH    64
#define ACCEPT_PAUSE_MS 100

struct wsx__listener {
    wsx__io io;
    wsx_loop *loop;
    wsx__accept_cb cb;
    wsx__overload_cb on_overload;
    void *arg;
    wsx__timer pause;
    int spare; /* a descriptor held in reserve for shedding at EMFILE; -1 when none */
    uint16_t port;
    bool closed;
    bool in_accept; /* inside the accept loop: a close there defers the free to it */
};

static int open_spare(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void listener_resume(wsx_loop *loop, wsx__timer *t)
{
    wsx__listener *l = wsx__container_of(t, wsx__listener, pause);
    if (l->spare < 0) l->spare = open_spare();
    wsx__io_modify(loop, &l->io, WSX__IO_READ);
}

/*
 * Out of descriptors, the connection at the head of the backlog cannot be accepted, and the
 * level-triggered listener reports it again at once. Leaving it there makes the client wait
 * until it times out; instead the spare descriptor is given up for a moment so that the
 * connection can be accepted and closed at once (the client reads EOF and can retry or go
 * elsewhere), then taken back.
 */
enum { SHED_ONE, SHED_NONE_WAITING, SHED_FAILED };

static int shed_one(wsx__listener *l, int err)
{
    int res = SHED_FAILED;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (l->spare >= 0) {
        close(l->spare);
        l->spare = -1;
        int fd = accept4(l->io.fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            res = SHED_ONE;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* accept() fails with EMFILE before looking at the backlog: there may have
             * been nobody waiting. */
            res = SHED_NONE_WAITING;
        }
        /* Another thread may take the freed slot first: then the listener pauses and
         * tries again when it resumes. */
        l->spare = open_spare();
    }
    if (l->on_overload && res != SHED_NONE_WAITING) {
        l->in_accept = true;
        l->on_overload(l, err, res == SHED_ONE ? (const struct sockaddr *)&ss : NULL,
                       res == SHED_ONE ? len : 0, l->arg);
        l->in_accept = false;
    }
    if (res != SHED_FAILED && l->spare < 0) res = SHED_FAILED;
    return res;
}

static void listener_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents)
{
    wsx__listener *l = wsx__container_of(io, wsx__listener, io);
    (void)revents;
    /* Bounded so that a connection storm cannot starve established connections. */
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED) continue;
            if (e == EMFILE || e == ENFILE) {
                int res = shed_one(l, e);
                if (l->closed) {
                    free(l);
                    return;
                }
                if (res == SHED_ONE) continue;
                if (res == SHED_NONE_WAITING) return;
            }
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                /* Nothing could be shed (no spare, or the kernel is out of memory): the
                 * connection stays in the backlog and the level-triggered listener would
                 * report it again at once, so stop watching for a while. */
                wsx__io_modify(loop, &l->io, 0);
                wsx__timer_start(loop, &l->pause, ACCEPT_PAUSE_MS);
            }
            return;
        }
        wsx__tcp_nodelay(fd);
        l->in_accept = true;
        l->cb(l, fd, (const struct sockaddr *)&ss, len, l->arg);
        l->in_accept = false;
        if (l->closed) {
            free(l);
            return;
        }
    }
}

static int bind_listen(const struct sockaddr *sa, socklen_t salen, const wsx__listen_opts *o,
                       bool any6, int *out_fd)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return wsx__errno_code(errno);
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
    if (any6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, salen) < 0) goto fail;
    if (listen(fd, o->backlog > 0 ? o->backlog : SOMAXCONN) < 0) goto fail;
    *out_fd = fd;
    return 0;
fail:;
    int e = errno;
    close(fd);
    return e == EADDRINUSE ? WSX_EADDRINUSE : wsx__errno_code(e);
}

int wsx__listen(wsx_loop *loop, const wsx__listen_opts *opts, wsx__accept_cb cb, void *arg,
                wsx__listener **out)
{
    if (!loop || !opts || !cb || !out) return WSX_EINVAL;
    int fd = -1, rc;
    if (!opts->host || !opts->host[0]) {
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(opts->port)};
        a6.sin6_addr = in6addr_any;
        rc = bind_listen((struct sockaddr *)&a6, sizeof a6, opts, true, &fd);
        if (rc < 0 && rc != WSX_EADDRINUSE) {
            /* No IPv6 on this host. */
            struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(opts->port)};
            a4.sin_addr.s_addr = htonl(INADDR_ANY);
            rc = bind_listen((struct sockaddr *)&a4, sizeof a4, opts, false, &fd);
        }
    } else {
        char port[8];
        snprintf(port, sizeof port, "%u", (unsigned)opts->port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int g = getaddrinfo(opts->host, port, &hints, &res);
        if (g != 0) return g == EAI_MEMORY ? WSX_ENOMEM : WSX_ERESOLVE;
        rc = WSX_ERESOLVE;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            bool any6 =
                ai->ai_family == AF_INET6 &&
                IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr);
            rc = bind_listen(ai->ai_addr, ai->ai_addrlen, opts, any6, &fd);
            if (rc == 0) break;
        }
        freeaddrinfo(res);
    }
    if (rc < 0) return rc;

    wsx__listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return WSX_ENOMEM;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    l->loop = loop;
    l->cb = cb;
    l->on_overload = opts->on_overload;
    l->arg = arg;
    l->spare = open_spare();
    wsx__timer_init(&l->pause, listener_resume);
    wsx__io_init(&l->io, fd, listener_io_cb);
    if (wsx__io_start(loop, &l->io, WSX__IO_READ) < 0) {
        if (l->spare >= 0) close(l->spare);
        close(fd);
        free(l);
        return WSX_ESYS;
    }
    *out = l;
    return 0;
}

uint16_t wsx__listener_port(const wsx__listener *l)
{
    return l->port;
}

void wsx__listener_close(wsx__listener *l)
{
    if (!l || l->closed) return;
    l->closed = true;
    wsx__io_stop(l->loop, &l->io);
    wsx__timer_stop(l->loop, &l->pause);
    close(l->io.fd);
    l->io.fd = -1;
    if (l->spare >= 0) close(l->spare);
    l->spare = -1;
    if (!l->in_accept) free(l);
}
