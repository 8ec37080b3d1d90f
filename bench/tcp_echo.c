/*
 * A plain TCP echo server (no WebSocket): the ceiling `wsload -m raw` is measured against.
 * Whatever a connection sends is read into one shared buffer and written straight back; what
 * the kernel does not take is queued on the connection, which then stops reading until the
 * queue is written (so a client that does not read cannot make it grow). epoll,
 * level-triggered, one thread, TCP_NODELAY like wsx's connections.
 *
 *   build/tcp_echo PORT [ADDRESS]     (default address 127.0.0.1; PORT 0 picks a free one)
 *
 * Prints "listening on ADDRESS:PORT" once ready; SIGINT or SIGTERM ends it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    char *pending; /* bytes the kernel did not take yet */
    size_t len, off, cap;
} conn;

static int epfd;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void conn_close(conn *c)
{
    close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
}

static void watch(conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is queued. Returns -1 if the connection failed. */
static int flush(conn *c)
{
    while (c->off < c->len) {
        ssize_t n = write(c->fd, c->pending + c->off, c->len - c->off);
        if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
        c->off += (size_t)n;
    }
    c->len = c->off = 0;
    watch(c, EPOLLIN); /* all written: read again */
    return 0;
}

/* Queues data the kernel did not take, and waits for writability instead of reading. */
static int queue(conn *c, const char *data, size_t len)
{
    if (len > c->cap) {
        char *p = realloc(c->pending, len);
        if (!p) return -1;
        c->pending = p;
        c->cap = len;
    }
    memcpy(c->pending, data, len);
    c->len = len;
    c->off = 0;
    watch(c, EPOLLOUT);
    return 0;
}

static int on_readable(conn *c, char *buf, size_t cap)
{
    ssize_t n = read(c->fd, buf, cap);
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = write(c->fd, buf + done, (size_t)n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) return -1;
            return queue(c, buf + done, (size_t)n - done);
        }
        done += (size_t)w;
    }
    return 0;
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or out of descriptors: try again on the next event */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!c || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [ADDRESS]\n", argv[0]);
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    const char *addr = argc > 2 ? argv[2] : "127.0.0.1";
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*end || port < 0 || port > 65535 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "usage: %s PORT [ADDRESS]  (an IPv4 address)\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t sl = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, SOMAXCONN) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        fprintf(stderr, "tcp_echo: cannot listen on %s:%ld: %s\n", addr, port, strerror(errno));
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        fprintf(stderr, "tcp_echo: epoll: %s\n", strerror(errno));
        return 1;
    }
    printf("listening on %s:%u\n", addr, ntohs(sa.sin_port));
    fflush(stdout);

    static char buf[256 << 10];
    struct epoll_event evs[512];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 512, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "tcp_echo: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                accept_all(lfd);
                continue;
            }
            int rc = 0;
            if (c->len)
                rc = flush(c);
            else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                rc = on_readable(c, buf, sizeof buf);
            if (rc < 0) conn_close(c);
        }
    }
    return 0;
}
