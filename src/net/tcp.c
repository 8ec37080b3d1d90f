/*
 * TCP streams: read, corked write queue, close; peer addresses. Listeners are in listen.c,
 * outgoing connects in connect.c.
 */
#define WSX__NET_INTERNAL
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

void wsx__tcp_nodelay(int fd)
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
