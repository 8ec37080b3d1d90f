/*
 * TCP: streams (read, corked write queue, close), listeners and outgoing connects.
 */
#define WSX__NET_INTERNAL
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* wsx__stream.flags (net.h). */
#define S_CLOSING   WSX__S_CLOSING
#define S_PENDING   WSX__S_PENDING
#define S_WANTW     WSX__S_WANTW
#define S_PAUSED    WSX__S_PAUSED
#define S_EOF       WSX__S_EOF
#define S_SHUT      WSX__S_SHUT
#define S_SHUTDONE  WSX__S_SHUTDONE
#define S_WANTDRAIN WSX__S_WANTDRAIN
#define S_TLS       WSX__S_TLS

int wsx__errno_code(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return WSX_ECONNREFUSED;
    case ETIMEDOUT:
        return WSX_ETIMEDOUT;
    case ECONNRESET:
    case EPIPE:
        return WSX_ECLOSED;
    case ENOMEM:
    case ENOBUFS:
        return WSX_ENOMEM;
    default:
        return WSX_ESYS;
    }
}

static void set_nodelay(int fd)
{
    /* Corking already batches small writes per iteration; Nagle would only add latency. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---------------------------------------------------------------------------------------
 * Addresses
 * --------------------------------------------------------------------------------------- */

int wsx__addr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    int n;
    if (!sa || !buf) return WSX_EINVAL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        n = snprintf(buf, cap, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        port = ntohs(in6->sin6_port);
        /* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; show them as IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
            n = snprintf(buf, cap, "%s:%u", host, port);
        } else {
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            n = snprintf(buf, cap, "[%s]:%u", host, port);
        }
    } else {
        return WSX_EINVAL;
    }
    if (n < 0 || (size_t)n >= cap) return WSX_ENOSPC;
    return n;
}

int wsx__stream_peer(const wsx__stream *s, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (s->io.fd < 0 || getpeername(s->io.fd, (struct sockaddr *)&ss, &len) < 0) return WSX_ESYS;
    return wsx__addr_format((const struct sockaddr *)&ss, buf, cap);
}

/* ---------------------------------------------------------------------------------------
 * Streams
 * --------------------------------------------------------------------------------------- */

static wsx__qnode *q_head(const wsx__stream *s)
{
    return s->qtail ? s->qtail->next : NULL;
}

static void q_push(wsx__stream *s, wsx__qnode *q)
{
    if (!s->qtail) {
        q->next = q;
    } else {
        q->next = s->qtail->next;
        s->qtail->next = q;
    }
    s->qtail = q;
}

void wsx__stream_qpop(wsx__stream *s)
{
    wsx__qnode *h = s->qtail->next;
    if (h == s->qtail)
        s->qtail = NULL;
    else
        s->qtail->next = h->next;
    wsx__qnode_put(s->loop, h);
}

static void q_clear(wsx__stream *s)
{
    while (s->qtail)
        wsx__stream_qpop(s);
    wsx__queued_sub(s, s->queued);
}

void wsx__stream_pend(wsx__stream *s)
{
    if (s->flags & S_PENDING) return;
    wsx_loop *loop = s->loop;
    s->flags |= S_PENDING;
    s->next = NULL;
    if (loop->pend_tail)
        loop->pend_tail->next = s;
    else
        loop->pend_head = s;
    loop->pend_tail = s;
    loop->npend++;
}

static uint32_t interest(const wsx__stream *s)
{
    uint32_t ev = 0;
    if (!(s->flags & (S_PAUSED | S_EOF))) ev |= WSX__IO_READ;
    if (s->flags & S_WANTW) ev |= WSX__IO_WRITE;
    return ev;
}

static void close_now(wsx__stream *s, int err)
{
    if (s->flags & S_CLOSING) return;
    s->flags |= S_CLOSING;
    s->err = err;
    wsx__io_stop(s->loop, &s->io);
    if (s->flags & S_TLS) wsx__tls_closing(s);
    /* The descriptor itself is closed after on_close: until then the owner can still ask
     * for the peer's address (for its log line), with no per-stream copy of it. */
    q_clear(s);
    /* on_close is delivered from the pending list at the end of the iteration, after every
     * callback that might still hold a pointer to s has returned. */
    wsx__stream_pend(s);
}

/* The errno is kept in the top byte of the flags, so a plain stream stays 64 bytes. */
void wsx__stream_set_errno(wsx__stream *s, int e)
{
    if (s->flags & S_CLOSING) return;
    s->flags = (s->flags & ~WSX__S_ERRNO_MASK) |
               ((uint32_t)(e > 0 && e < 256 ? e : 0) << WSX__S_ERRNO_SHIFT);
}

/* Closes for a failed system call: the code says what kind of failure, and the errno lets
 * wsx__stream_error() name it ("connection reset by peer") in the owner's on_close. */
static void close_errno(wsx__stream *s, int e)
{
    wsx__stream_set_errno(s, e);
    close_now(s, wsx__errno_code(e));
}

void wsx__stream_fail_errno(wsx__stream *s, int sys_errno)
{
    close_errno(s, sys_errno);
}

const char *wsx__stream_error(const wsx__stream *s)
{
    if (s->flags & S_TLS) {
        const char *why = wsx__stream_tls_error(s);
        if (why) return why;
    }
    int e = (int)((s->flags & WSX__S_ERRNO_MASK) >> WSX__S_ERRNO_SHIFT);
    return e ? wsx__errno_text(e) : NULL;
}

const char *wsx__errno_text(int e)
{
    switch (e) {
    case ECONNRESET:
        return "connection reset by peer";
    case EPIPE:
        return "broken pipe: the peer closed the connection";
    case ETIMEDOUT:
        return "connection timed out";
    default:
        /* glibc returns a static string for every errno it knows. */
        return strerror(e);
    }
}

static void update_interest(wsx__stream *s)
{
    uint32_t ev = (s->flags & S_TLS) ? wsx__tls_interest(s) : interest(s);
    if (wsx__io_modify(s->loop, &s->io, ev) < 0) close_errno(s, errno);
}

void wsx__stream_update_interest(wsx__stream *s)
{
    update_interest(s);
}

void wsx__stream_fail(wsx__stream *s, int err)
{
    close_now(s, err);
}

static void stream_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents);

int wsx__stream_init(wsx_loop *loop, wsx__stream *s, int fd, const wsx__stream_vt *vt)
{
    wsx__io_init(&s->io, fd, stream_io_cb);
    s->vt = vt;
    s->loop = loop;
    s->qtail = NULL;
    s->next = NULL;
    s->queued = 0;
    s->flags = 0;
    s->err = 0;
    if (wsx__io_start(loop, &s->io, WSX__IO_READ) < 0) {
        close(fd);
        s->io.fd = -1;
        return WSX_ESYS;
    }
    return 0;
}

/* Writes as much of the queue as the kernel takes. Returns 0, or -1 with errno set. */
static int write_queue(wsx__stream *s)
{
    wsx_loop *loop = s->loop;
    while (s->qtail) {
        int n = 0;
        size_t total = 0, used = 0;
        wsx__qnode *q = q_head(s);
        for (;;) {
            const uint8_t *p = q->base + q->off;
            size_t len = q->len - q->off;
            /* Small pieces (broadcast slices, mostly) are copied together into one segment:
             * the kernel's cost is per segment, and a fan-out queue holds many tiny ones. */
            if (len <= WSX__GATHER_MAX && used + len <= WSX__GATHER_BUF) {
                uint8_t *dst = loop->gather + used;
                memcpy(dst, p, len);
                if (n && (uint8_t *)loop->iov[n - 1].iov_base + loop->iov[n - 1].iov_len == dst)
                    loop->iov[n - 1].iov_len += len;
                else
                    loop->iov[n++] = (struct iovec){dst, len};
                used += len;
            } else {
                loop->iov[n++] = (struct iovec){(void *)p, len};
            }
            total += len;
            if (q == s->qtail || n == loop->iov_max) break;
            q = q->next;
        }
        loop->stats.writev_calls++;
        ssize_t w = writev(s->io.fd, loop->iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -1;
        }
        size_t left = (size_t)w;
        wsx__queued_sub(s, left);
        while (left) {
            q = q_head(s);
            size_t avail = q->len - q->off;
            if (left < avail) {
                q->off += (uint32_t)left;
                break;
            }
            left -= avail;
            wsx__stream_qpop(s);
        }
        /* A short write means the socket buffer is full; another writev would only EAGAIN. */
        if ((size_t)w < total) return 0;
    }
    return 0;
}

/* After the queue emptied: a requested half-close can happen now. */
static void maybe_shutdown(wsx__stream *s)
{
    if ((s->flags & (S_SHUT | S_SHUTDONE)) == S_SHUT && !s->queued) {
        s->flags |= S_SHUTDONE;
        shutdown(s->io.fd, SHUT_WR);
    }
}

/* Corked flush at the end of the iteration. */
static void stream_flush(wsx__stream *s)
{
    if (s->queued) {
        if (write_queue(s) < 0) {
            close_errno(s, errno);
            return;
        }
        if (s->queued) {
            s->flags |= S_WANTW;
            update_interest(s);
            if ((s->flags & S_WANTDRAIN) && s->vt->on_drain) s->vt->on_drain(s);
            return;
        }
        if ((s->flags & S_WANTDRAIN) && s->vt->on_drain) {
            maybe_shutdown(s);
            s->vt->on_drain(s);
            return;
        }
    }
    maybe_shutdown(s);
}

static void stream_writable(wsx__stream *s)
{
    size_t before = s->queued;
    if (write_queue(s) < 0) {
        close_errno(s, errno);
        return;
    }
    if (s->queued) {
        if (s->queued < before && (s->flags & S_WANTDRAIN) && s->vt->on_drain) s->vt->on_drain(s);
        return;
    }
    s->flags &= ~S_WANTW;
    update_interest(s);
    if (s->flags & S_CLOSING) return;
    maybe_shutdown(s);
    if (s->vt->on_drain) s->vt->on_drain(s);
}

static void stream_read(wsx__stream *s)
{
    wsx_loop *loop = s->loop;
    loop->stats.read_calls++;
    ssize_t n = read(s->io.fd, loop->rbuf, WSX__RBUF_SIZE);
    if (n > 0) {
        s->vt->on_read(s, loop->rbuf, (size_t)n);
        return;
    }
    if (n == 0) {
        /* A reset reported with the data before it reads as EOF once SO_ERROR is taken: it
         * is an error, not the peer's orderly close. */
        if (!s->vt->on_eof || (s->flags & WSX__S_ERRNO_MASK)) {
            close_now(s, WSX_ECLOSED);
            return;
        }
        /* Level-triggered EPOLLIN stays ready at EOF, so reading must stop. */
        s->flags |= S_EOF;
        update_interest(s);
        if (!(s->flags & S_CLOSING)) s->vt->on_eof(s);
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    close_errno(s, errno);
}

static void stream_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents)
{
    wsx__stream *s = wsx__container_of(io, wsx__stream, io);
    if (revents & WSX__IO_ERR) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        wsx__stream_set_errno(s, err);
        /* Data that arrived before a reset is still worth delivering. */
        if ((revents & WSX__IO_READ) && !(s->flags & (S_PAUSED | S_EOF))) stream_read(s);
        if (err)
            close_errno(s, err);
        else
            close_now(s, WSX_ECLOSED);
        return;
    }
    if ((revents & (WSX__IO_READ | WSX__IO_HUP)) && !(s->flags & (S_PAUSED | S_EOF))) {
        stream_read(s);
        if (s->flags & S_CLOSING) return;
    } else if (revents & WSX__IO_HUP) {
        /* Both directions are gone and we are not reading: level-triggered HUP would repeat
         * forever, and nothing more can be written or read. */
        close_now(s, WSX_ECLOSED);
        return;
    }
    if ((revents & WSX__IO_WRITE) && (s->flags & S_WANTW)) stream_writable(s);
}

static int check_writable(const wsx__stream *s)
{
    return (s->flags & (S_CLOSING | S_SHUT)) ? WSX_ECLOSED : 0;
}

/* Marks s for the end-of-iteration flush, unless it already waits for EPOLLOUT, in which
 * case the writable callback will send the new bytes and a flush would only hit EAGAIN. */
static void cork(wsx__stream *s)
{
    if (!(s->flags & S_WANTW)) wsx__stream_pend(s);
}

int wsx__stream_write(wsx__stream *s, const struct iovec *iov, int n)
{
    int rc = check_writable(s);
    if (rc < 0) return rc;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0) return 0;

    /* A large write to an empty queue goes to the kernel at once instead of being copied
     * and corked: there is nothing to batch it with, and the copy would cost more than the
     * system call. What the kernel does not take is queued as usual. */
    struct iovec rest[8];
    if (total >= WSX__DIRECT_WRITE && !s->queued && n <= 8 && !(s->flags & (S_TLS | S_WANTW))) {
        s->loop->stats.writev_calls++;
        ssize_t w = writev(s->io.fd, iov, n);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            close_errno(s, errno);
            return WSX_ECLOSED;
        }
        size_t done = w > 0 ? (size_t)w : 0;
        if (done == total) return 0;
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (done >= iov[i].iov_len) {
                done -= iov[i].iov_len;
                continue;
            }
            rest[k].iov_base = (uint8_t *)iov[i].iov_base + done;
            rest[k].iov_len = iov[i].iov_len - done;
            done = 0;
            k++;
        }
        iov = rest;
        n = k;
        total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
    }

    /* The common case, a small write that fits the tail chunk, without the general path's
     * bookkeeping. */
    wsx__qnode *t = s->qtail;
    if (t && !t->ref && t->cap - t->len >= total) {
        uint8_t *d = (uint8_t *)t->base + t->len;
        for (int i = 0; i < n; i++) {
            memcpy(d, iov[i].iov_base, iov[i].iov_len);
            d += iov[i].iov_len;
        }
        t->len += (uint32_t)total;
        wsx__queued_add(s, total);
        cork(s);
        return 0;
    }

    /* Reserve before copying so that a failed allocation leaves the queue unchanged. */
    wsx__qnode *tail = s->qtail;
    size_t room = tail && !tail->ref ? tail->cap - tail->len : 0;
    wsx__qnode *extra = NULL, *extra_last = NULL;
    size_t need = total > room ? total - room : 0;
    while (need) {
        wsx__qnode *c = wsx__chunk_get(s->loop, need);
        if (!c) {
            while (extra) {
                wsx__qnode *nx = extra->next;
                wsx__qnode_put(s->loop, extra);
                extra = nx;
            }
            return WSX_ENOMEM;
        }
        if (extra_last)
            extra_last->next = c;
        else
            extra = c;
        extra_last = c;
        need -= need < c->cap ? need : c->cap;
    }

    wsx__qnode *dst = room ? tail : extra;
    for (int i = 0; i < n; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len) {
            if (dst->len == dst->cap) dst = dst == tail ? extra : dst->next;
            size_t k = dst->cap - dst->len;
            if (k > len) k = len;
            memcpy((uint8_t *)dst->base + dst->len, p, k);
            dst->len += (uint32_t)k;
            p += k;
            len -= k;
        }
    }
    while (extra) {
        wsx__qnode *nx = extra->next;
        q_push(s, extra);
        extra = nx;
    }
    wsx__queued_add(s, total);
    cork(s);
    return 0;
}

int wsx__stream_write1(wsx__stream *s, const void *p, size_t len)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
    return wsx__stream_write(s, &iov, 1);
}

int wsx__stream_write_ref(wsx__stream *s, wsx__ref *ref, const uint8_t *p, size_t len)
{
    int rc = check_writable(s);
    if (rc < 0) return rc;
    if (len == 0) return 0;
    if (len > UINT32_MAX) return WSX_EINVAL;
    wsx__qnode *q = wsx__slice_get(s->loop);
    if (!q) return WSX_ENOMEM;
    q->ref = wsx__ref_retain(ref);
    q->base = p;
    q->len = q->cap = (uint32_t)len;
    q_push(s, q);
    wsx__queued_add(s, len);
    cork(s);
    return 0;
}

void wsx__stream_want_drain(wsx__stream *s, bool on)
{
    if (on)
        s->flags |= S_WANTDRAIN;
    else
        s->flags &= ~S_WANTDRAIN;
}

void wsx__stream_shutdown_write(wsx__stream *s)
{
    if (s->flags & (S_CLOSING | S_SHUT)) return;
    s->flags |= S_SHUT;
    cork(s);
}

void wsx__stream_close(wsx__stream *s)
{
    close_now(s, 0);
}

void wsx__stream_pause(wsx__stream *s)
{
    if (s->flags & (S_CLOSING | S_PAUSED)) return;
    s->flags |= S_PAUSED;
    update_interest(s);
}

void wsx__stream_resume(wsx__stream *s)
{
    if ((s->flags & (S_CLOSING | S_PAUSED)) != S_PAUSED) return;
    s->flags &= ~S_PAUSED;
    update_interest(s);
    if (s->flags & S_TLS) wsx__tls_resumed(s);
}

void wsx__streams_run(wsx_loop *loop)
{
    /* Callbacks here may queue more streams (an on_close that writes to another stream, a
     * flush that fails and closes); they are appended and handled in this same pass. */
    wsx__stream *s;
    while ((s = loop->pend_head) != NULL) {
        loop->pend_head = s->next;
        if (!loop->pend_head) loop->pend_tail = NULL;
        s->next = NULL;
        s->flags &= ~S_PENDING;
        loop->npend--;
        if (s->flags & S_CLOSING) {
            int fd = s->io.fd; /* s may be freed inside on_close */
            if (s->flags & S_TLS)
                wsx__tls_deliver_close(s);
            else
                s->vt->on_close(s, s->err);
            if (fd >= 0) close(fd);
        } else if (s->flags & S_TLS) {
            wsx__tls_flush(s);
        } else {
            stream_flush(s);
        }
    }
}

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
        set_nodelay(fd);
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

/* ---------------------------------------------------------------------------------------
 * Outgoing connections
 * --------------------------------------------------------------------------------------- */

struct wsx__resolve_job {
    wsx__resolve_job *next;      /* loop->jobs: every thread not yet joined */
    wsx__resolve_job *next_done; /* loop->jobs_done */
    wsx_loop *loop;
    wsx__connect_req *req; /* NULL once the request gave up; loop thread only */
    pthread_t thread;
    struct addrinfo *res;
    int gai_err;
    char port[8];
    char host[];
};

struct wsx__connect_req {
    wsx_loop *loop;
    wsx__connect_cb cb;
    void *arg;
    wsx__io io; /* the attempt in progress; fd -1 between attempts */
    wsx__timer timer;
    wsx__deferred done;
    struct addrinfo *res, *next_ai;
    wsx__resolve_job *job;
    int last_errno;
    int result_fd;
    int result_err;
};

static void connect_release(wsx__connect_req *req)
{
    wsx_loop *loop = req->loop;
    if (req->job) {
        req->job->req = NULL;
        req->job = NULL;
        loop->nrefs--;
    }
    if (req->io.fd >= 0) {
        wsx__io_stop(loop, &req->io);
        close(req->io.fd);
        req->io.fd = -1;
    }
    wsx__timer_stop(loop, &req->timer);
    wsx__loop_undefer(loop, &req->done);
    if (req->res) freeaddrinfo(req->res);
    req->res = req->next_ai = NULL;
}

static void connect_deliver(wsx_loop *loop, wsx__deferred *d)
{
    wsx__connect_req *req = wsx__container_of(d, wsx__connect_req, done);
    connect_release(req);
    req->cb(req->result_fd, req->result_err, req->arg);
    free(req);
}

/* Results always travel through the deferred queue: the callback then never runs inside
 * wsx__connect() and always after the caller has stored the request handle. */
static void connect_complete(wsx__connect_req *req, int fd, int err)
{
    wsx_loop *loop = req->loop;
    if (req->io.fd >= 0) {
        wsx__io_stop(loop, &req->io);
        close(req->io.fd);
        req->io.fd = -1;
    }
    wsx__timer_stop(loop, &req->timer);
    req->result_fd = fd;
    req->result_err = err;
    wsx__loop_defer(loop, &req->done);
}

static void connect_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents);

static void connect_next(wsx__connect_req *req)
{
    while (req->next_ai) {
        struct addrinfo *ai = req->next_ai;
        req->next_ai = ai->ai_next;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            req->last_errno = errno;
            continue;
        }
        set_nodelay(fd);
        int r;
        do {
            r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        } while (r < 0 && errno == EINTR);
        if (r == 0) {
            connect_complete(req, fd, 0);
            return;
        }
        if (errno == EINPROGRESS) {
            wsx__io_init(&req->io, fd, connect_io_cb);
            if (wsx__io_start(req->loop, &req->io, WSX__IO_WRITE) == 0) return;
            req->io.fd = -1;
        }
        req->last_errno = errno;
        close(fd);
    }
    connect_complete(req, -1, req->last_errno ? wsx__errno_code(req->last_errno) : WSX_ERESOLVE);
}

static void connect_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents)
{
    wsx__connect_req *req = wsx__container_of(io, wsx__connect_req, io);
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == 0 && !(revents & WSX__IO_WRITE)) err = ECONNRESET;
    if (err == 0) {
        int fd = io->fd;
        wsx__io_stop(loop, io);
        io->fd = -1;
        connect_complete(req, fd, 0);
        return;
    }
    wsx__io_stop(loop, io);
    close(io->fd);
    io->fd = -1;
    req->last_errno = err;
    connect_next(req);
}

static void connect_timeout(wsx_loop *loop, wsx__timer *t)
{
    wsx__connect_req *req = wsx__container_of(t, wsx__connect_req, timer);
    if (req->job) {
        req->job->req = NULL;
        req->job = NULL;
        loop->nrefs--;
    }
    req->next_ai = NULL;
    connect_complete(req, -1, WSX_ETIMEDOUT);
}

static void *resolve_main(void *p)
{
    wsx__resolve_job *job = p;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV};
    job->gai_err = getaddrinfo(job->host, job->port, &hints, &job->res);
    wsx_loop *loop = job->loop;
    pthread_mutex_lock(&loop->mu);
    job->next_done = loop->jobs_done;
    loop->jobs_done = job;
    pthread_mutex_unlock(&loop->mu);
    wsx__loop_wake(loop);
    return NULL;
}

static void job_unlink_free(wsx_loop *loop, wsx__resolve_job *job)
{
    for (wsx__resolve_job **pp = &loop->jobs; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            break;
        }
    }
    if (job->res) freeaddrinfo(job->res);
    free(job);
}

void wsx__resolve_done(wsx_loop *loop, wsx__resolve_job *list)
{
    while (list) {
        wsx__resolve_job *job = list;
        list = job->next_done;
        /* The thread has published its result and only returns now: the join is brief. */
        pthread_join(job->thread, NULL);
        wsx__connect_req *req = job->req;
        if (req) {
            req->job = NULL;
            loop->nrefs--;
            if (job->gai_err != 0) {
                connect_complete(req, -1, job->gai_err == EAI_MEMORY ? WSX_ENOMEM : WSX_ERESOLVE);
            } else {
                req->res = req->next_ai = job->res;
                job->res = NULL;
                connect_next(req);
            }
        }
        job_unlink_free(loop, job);
    }
}

void wsx__resolve_free_all(wsx_loop *loop)
{
    while (loop->jobs) {
        wsx__resolve_job *job = loop->jobs;
        pthread_join(job->thread, NULL);
        if (job->req) job->req->job = NULL;
        job_unlink_free(loop, job);
    }
    loop->jobs_done = NULL;
}

static int start_resolve(wsx__connect_req *req, const char *host, const char *port)
{
    size_t hlen = strlen(host);
    wsx__resolve_job *job = calloc(1, sizeof *job + hlen + 1);
    if (!job) return WSX_ENOMEM;
    memcpy(job->host, host, hlen + 1);
    memcpy(job->port, port, sizeof job->port);
    job->loop = req->loop;
    job->req = req;
    /* The worker must never be picked to handle a process signal (SIGINT would otherwise
     * kill the process instead of reaching the loop's signalfd). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&job->thread, NULL, resolve_main, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        free(job);
        return e == EAGAIN ? WSX_ELIMIT : WSX_ESYS;
    }
    job->next = req->loop->jobs;
    req->loop->jobs = job;
    req->job = job;
    req->loop->nrefs++;
    return 0;
}

int wsx__connect(wsx_loop *loop, const char *host, uint16_t port, uint64_t timeout_ms,
                 wsx__connect_cb cb, void *arg, wsx__connect_req **out)
{
    if (!loop || !host || !host[0] || !cb) return WSX_EINVAL;
    char name[256];
    size_t hlen = strlen(host);
    /* Accept the URL form of an IPv6 literal too. */
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        if (hlen - 2 >= sizeof name) return WSX_EINVAL;
        memcpy(name, host + 1, hlen - 2);
        name[hlen - 2] = 0;
    } else {
        if (hlen >= sizeof name) return WSX_EINVAL;
        memcpy(name, host, hlen + 1);
    }
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);

    wsx__connect_req *req = calloc(1, sizeof *req);
    if (!req) return WSX_ENOMEM;
    req->loop = loop;
    req->cb = cb;
    req->arg = arg;
    req->result_fd = -1;
    wsx__io_init(&req->io, -1, connect_io_cb);
    wsx__timer_init(&req->timer, connect_timeout);
    wsx__deferred_init(&req->done, connect_deliver);

    /* A literal needs no lookup: getaddrinfo with AI_NUMERICHOST never blocks. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(name, portstr, &hints, &res);
    if (g == 0) {
        req->res = req->next_ai = res;
        connect_next(req);
    } else if (g == EAI_NONAME) {
        int rc = start_resolve(req, name, portstr);
        if (rc < 0) {
            free(req);
            return rc;
        }
    } else {
        connect_complete(req, -1, g == EAI_MEMORY ? WSX_ENOMEM : WSX_ERESOLVE);
    }
    if (timeout_ms && !wsx__deferred_pending(&req->done))
        wsx__timer_start(loop, &req->timer, timeout_ms);
    if (out) *out = req;
    return 0;
}

void wsx__connect_cancel(wsx__connect_req *req)
{
    if (!req) return;
    if (req->result_fd >= 0) close(req->result_fd);
    connect_release(req);
    free(req);
}
