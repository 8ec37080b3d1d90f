/*
 * TLS over streams with OpenSSL 3: the TLS side of wsx__stream (non-blocking handshake with
 * a deadline, reads into the loop's receive buffer, corked writes gathered into records,
 * close_notify); the contexts are in tls_ctx.c. See docs/design.md, "TLS".
 */
#define WSX__NET_INTERNAL
#include "tls_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* RFC 8446 5.1: a record carries at most 2^14 bytes of plaintext. */
#define TLS_RECORD 16384u
/* A queued piece at least a record long is encrypted in place, in calls of at most this
 * much, so that on_drain (want_drain) still sees progress in reasonable steps. */
#define DIRECT_MAX (256u * 1024u)

/* ---------------------------------------------------------------------------------------
 * Streams
 * --------------------------------------------------------------------------------------- */

_Static_assert(WSX__S_TLS == 0x100u, "wsx__stream_is_tls() in net.h tests this bit");

/* tls_conn.tflags */
#define T_READY     0x01u /* handshake complete */
#define T_FATAL     0x02u /* OpenSSL reported a fatal error: no more SSL calls but free */
#define T_W_WANTS_R 0x04u /* the in-flight SSL_write needs the socket readable */
#define T_R_WANTS_W 0x08u /* SSL_read needs the socket writable */
#define T_CLIENT    0x10u
#define T_VERIFY    0x20u /* client verifying the server */

/* The TLS side of a stream, allocated only for TLS streams. s->vt points at vt, so the
 * stream finds this without a field of its own. */
typedef struct tls_conn {
    wsx__stream_vt vt; /* the owner's callbacks, copied */
    wsx__stream *s;
    SSL *ssl; /* NULL once closing */
    wsx__tls_certset *cs;
    wsx__timer timer;    /* handshake deadline */
    wsx__deferred more;  /* read again: plaintext may be waiting inside OpenSSL */
    wsx__qnode *wbuf;    /* record being gathered (a chunk from the loop's cache) */
    const uint8_t *wptr; /* the in-flight SSL_write, retried with the same bytes */
    uint32_t wlen;
    bool wdirect;     /* wptr points into the queue head rather than wbuf */
    uint32_t hs_want; /* epoll interest the handshake waits for */
    uint32_t hs_ms;
    uint32_t tflags;
    char *expect; /* client: the name the certificate must carry, for error messages */
    char err[256];
} tls_conn;

static tls_conn *tls_of(const wsx__stream *s)
{
    return wsx__container_of(s->vt, tls_conn, vt);
}

static void conn_err(tls_conn *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_err(tls_conn *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
}

int wsx__tls_sni_select(SSL *ssl, int *alert, void *arg)
{
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    tls_conn *t = SSL_get_app_data(ssl);
    if (!name || !t) return SSL_TLSEXT_ERR_NOACK;
    wsx__tls_certset *cs = t->cs;
    for (size_t i = 0; i < cs->n; i++) {
        X509 *x = SSL_CTX_get0_certificate(cs->ctx[i]);
        if (x && X509_check_host(x, name, strlen(name), 0, NULL) == 1) {
            if (i > 0) SSL_set_SSL_CTX(ssl, cs->ctx[i]);
            break;
        }
    }
    /* No match: the default certificate, which the client may still accept (or not). */
    return SSL_TLSEXT_ERR_OK;
}

/* The names a certificate is valid for (subjectAltName DNS and IP entries, else the CN),
 * comma-separated. */
static void cert_names(X509 *x, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    if (!x) return;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = gens ? sk_GENERAL_NAME_num(gens) : 0;
    for (int i = 0; i < n && len + 1 < cap; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[INET6_ADDRSTRLEN + 1];
        const char *txt = NULL;
        int tlen = 0;
        if (g->type == GEN_DNS) {
            txt = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
            tlen = ASN1_STRING_length(g->d.dNSName);
        } else if (g->type == GEN_IPADD) {
            int l = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
            if ((l == 4 && inet_ntop(AF_INET, p, one, sizeof one)) ||
                (l == 16 && inet_ntop(AF_INET6, p, one, sizeof one))) {
                txt = one;
                tlen = (int)strlen(one);
            }
        }
        if (!txt) continue;
        int k = snprintf(buf + len, cap - len, "%s%.*s", len ? ", " : "", tlen, txt);
        if (k < 0) break;
        len += (size_t)k < cap - len ? (size_t)k : cap - len - 1;
    }
    GENERAL_NAMES_free(gens);
    if (len == 0)
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)cap);
}

/* Records why the handshake failed, as specifically as OpenSSL allows. */
static void handshake_error(tls_conn *t, int e, int sys_errno)
{
    char why[160];
    t->tflags |= T_FATAL;
    long v = (t->tflags & T_VERIFY) ? SSL_get_verify_result(t->ssl) : X509_V_OK;
    if (v != X509_V_OK) {
        const char *vs = X509_verify_cert_error_string(v);
        if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            /* Verification failed, so OpenSSL did not record the peer certificate; the chain
             * it received starts with it. */
            X509 *leaf = SSL_get0_peer_certificate(t->ssl);
            STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
            if (!leaf && chain && sk_X509_num(chain) > 0) leaf = sk_X509_value(chain, 0);
            char names[160];
            cert_names(leaf, names, sizeof names);
            conn_err(t, "certificate verify failed: %s (expected '%s', certificate is for '%s')",
                     vs, t->expect ? t->expect : "", names);
        } else {
            conn_err(t, "certificate verify failed: %s", vs);
        }
        ERR_clear_error();
        return;
    }
    if (e == SSL_ERROR_SSL || ERR_peek_error() != 0) {
        conn_err(t, "TLS handshake failed: %s", wsx__tls_reason(why, sizeof why));
    } else if (e == SSL_ERROR_ZERO_RETURN || sys_errno == 0 || sys_errno == ECONNRESET ||
               sys_errno == EPIPE) {
        conn_err(t, "TLS handshake failed: connection closed by peer");
    } else {
        conn_err(t, "TLS handshake failed: %s", wsx__errno_text(sys_errno));
    }
}

/* An error from SSL_read/SSL_write after the handshake. Returns the close reason. */
static int io_error(tls_conn *t, int e, int sys_errno, const char *what)
{
    char why[160];
    t->tflags |= T_FATAL;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        if (sys_errno == 0) return WSX_ECLOSED;
        conn_err(t, "TLS %s failed: %s", what, wsx__errno_text(sys_errno));
        return wsx__errno_code(sys_errno);
    }
    conn_err(t, "TLS %s failed: %s", what, wsx__tls_reason(why, sizeof why));
    return WSX_ETLS;
}

static bool reading(const wsx__stream *s)
{
    return !(s->flags & (WSX__S_PAUSED | WSX__S_EOF));
}

uint32_t wsx__tls_interest(const wsx__stream *s)
{
    const tls_conn *t = tls_of(s);
    if (!(t->tflags & T_READY)) return t->hs_want;
    uint32_t ev = 0;
    if (reading(s) || (t->tflags & T_W_WANTS_R)) ev |= WSX__IO_READ;
    if ((s->flags & WSX__S_WANTW) || (t->tflags & T_R_WANTS_W)) ev |= WSX__IO_WRITE;
    return ev;
}

static void peer_eof(wsx__stream *s)
{
    /* After a reset (see tls_io_cb) the EOF is the error's, not an orderly close. */
    if (!s->vt->on_eof || (s->flags & WSX__S_ERRNO_MASK)) {
        wsx__stream_fail(s, WSX_ECLOSED);
        return;
    }
    s->flags |= WSX__S_EOF;
    wsx__stream_update_interest(s);
    if (!(s->flags & WSX__S_CLOSING)) s->vt->on_eof(s);
}

/*
 * Decrypts into the loop's receive buffer while OpenSSL holds bytes (read ahead from the
 * socket) and the buffer has room, then hands it all to on_read in one call. Fairness: one
 * buffer per event; the socket stays readable (level-triggered) and bytes OpenSSL already
 * holds when the buffer is full are picked up by a deferred read.
 */
static void tls_read(wsx__stream *s, tls_conn *t)
{
    wsx_loop *loop = s->loop;
    size_t len = 0;
    int e = SSL_ERROR_NONE, sys_errno = 0;
    while (len < WSX__RBUF_SIZE) {
        ERR_clear_error();
        errno = 0;
        loop->stats.ssl_read_calls++;
        int n = SSL_read(t->ssl, loop->rbuf + len, (int)(WSX__RBUF_SIZE - len));
        if (n > 0) {
            len += (size_t)n;
            /* Nothing left inside OpenSSL: another SSL_read would mostly cost a read() that
             * returns EAGAIN. If the kernel holds more, level-triggered epoll says so. */
            if (!SSL_has_pending(t->ssl)) {
                e = SSL_ERROR_WANT_READ;
                break;
            }
            continue;
        }
        sys_errno = errno;
        e = SSL_get_error(t->ssl, n);
        break;
    }
    if (len) {
        s->vt->on_read(s, loop->rbuf, len);
        if (s->flags & WSX__S_CLOSING) return;
    }
    switch (e) {
    case SSL_ERROR_NONE:
        if (reading(s) && SSL_has_pending(t->ssl)) wsx__loop_defer(loop, &t->more);
        return;
    case SSL_ERROR_WANT_READ:
        return;
    case SSL_ERROR_WANT_WRITE:
        t->tflags |= T_R_WANTS_W;
        wsx__stream_update_interest(s);
        return;
    case SSL_ERROR_ZERO_RETURN:
        /* Paused by on_read: OpenSSL keeps answering EOF, and resume reads again. */
        if (reading(s)) peer_eof(s);
        return;
    default:
        wsx__stream_fail(s, io_error(t, e, sys_errno, "read"));
        return;
    }
}

static void more_cb(wsx_loop *loop, wsx__deferred *d)
{
    tls_conn *t = wsx__container_of(d, tls_conn, more);
    wsx__stream *s = t->s;
    if ((t->tflags & T_READY) && reading(s) && !(s->flags & WSX__S_CLOSING)) tls_read(s, t);
}

/* Picks the next SSL_write: a queued piece of a record or more in place, else up to a record
 * gathered from the head of the queue. Gathered pieces leave the queue now; s->queued keeps
 * counting them until SSL_write takes them. Returns false when out of memory. */
static bool gather(wsx__stream *s, tls_conn *t)
{
    wsx__qnode *h = s->qtail->next;
    size_t avail = h->len - h->off;
    if (avail >= TLS_RECORD) {
        t->wptr = h->base + h->off;
        t->wlen = (uint32_t)(avail < DIRECT_MAX ? avail : DIRECT_MAX);
        t->wdirect = true;
        return true;
    }
    if (!t->wbuf && !(t->wbuf = wsx__chunk_get(s->loop, TLS_RECORD))) return false;
    uint8_t *dst = (uint8_t *)t->wbuf->base;
    size_t len = 0;
    while (s->qtail && len < TLS_RECORD) {
        h = s->qtail->next;
        size_t k = h->len - h->off;
        if (k > TLS_RECORD - len) k = TLS_RECORD - len;
        memcpy(dst + len, h->base + h->off, k);
        len += k;
        h->off += (uint32_t)k;
        if (h->off == h->len) wsx__stream_qpop(s);
    }
    t->wptr = dst;
    t->wlen = (uint32_t)len;
    t->wdirect = false;
    return true;
}

enum { BLOCK_NONE, BLOCK_WRITE, BLOCK_READ };

/* Encrypts and sends the queue until it is empty or the socket pushes back. */
static int send_queue(wsx__stream *s, tls_conn *t, int *block)
{
    wsx_loop *loop = s->loop;
    *block = BLOCK_NONE;
    while (s->queued) {
        if (!t->wlen && !gather(s, t)) return WSX_ENOMEM;
        ERR_clear_error();
        errno = 0;
        loop->stats.ssl_write_calls++;
        /* Partial writes are off: n is all of wlen or nothing. A retry after WANT_* passes the
         * same bytes and length, as OpenSSL requires. */
        int n = SSL_write(t->ssl, t->wptr, (int)t->wlen);
        if (n > 0) {
            wsx__queued_sub(s, t->wlen);
            if (t->wdirect) {
                wsx__qnode *h = s->qtail->next;
                h->off += t->wlen;
                if (h->off == h->len) wsx__stream_qpop(s);
            }
            t->wlen = 0;
            t->wptr = NULL;
            continue;
        }
        int sys_errno = errno;
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE) {
            *block = BLOCK_WRITE;
            return 0;
        }
        if (e == SSL_ERROR_WANT_READ) {
            *block = BLOCK_READ;
            return 0;
        }
        return io_error(t, e, sys_errno, "write");
    }
    if (t->wbuf) {
        wsx__qnode_put(loop, t->wbuf);
        t->wbuf = NULL;
    }
    return 0;
}

/* shutdown_write for TLS: close_notify, then the TCP half-close, once the queue is empty. */
static void send_shutdown(wsx__stream *s, tls_conn *t)
{
    if ((s->flags & (WSX__S_SHUT | WSX__S_SHUTDONE)) != WSX__S_SHUT || s->queued) return;
    ERR_clear_error();
    int r = SSL_shutdown(t->ssl);
    if (r < 0) {
        if (SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_WRITE) {
            s->flags |= WSX__S_WANTW;
            return;
        }
        t->tflags |= T_FATAL;
        ERR_clear_error();
    }
    s->flags |= WSX__S_SHUTDONE;
    shutdown(s->io.fd, SHUT_WR);
}

/* The corked flush and the EPOLLOUT path in one: same on_drain rules as plain streams. */
static void write_out(wsx__stream *s, tls_conn *t)
{
    bool blocked = (s->flags & WSX__S_WANTW) || (t->tflags & T_W_WANTS_R);
    size_t before = s->queued;
    int block;
    int rc = send_queue(s, t, &block);
    if (rc < 0) {
        wsx__stream_fail(s, rc);
        return;
    }
    s->flags &= ~WSX__S_WANTW;
    t->tflags &= ~T_W_WANTS_R;
    if (block == BLOCK_WRITE) s->flags |= WSX__S_WANTW;
    if (block == BLOCK_READ) t->tflags |= T_W_WANTS_R;
    if (s->queued) {
        wsx__stream_update_interest(s);
        if (s->flags & WSX__S_CLOSING) return;
        if (s->queued < before && (s->flags & WSX__S_WANTDRAIN) && s->vt->on_drain)
            s->vt->on_drain(s);
        return;
    }
    send_shutdown(s, t);
    wsx__stream_update_interest(s);
    if (s->flags & WSX__S_CLOSING) return;
    if (before && (blocked || (s->flags & WSX__S_WANTDRAIN)) && s->vt->on_drain) s->vt->on_drain(s);
}

static void handshake(wsx__stream *s, tls_conn *t)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->tflags |= T_READY;
        wsx__timer_stop(s->loop, &t->timer);
        free(t->expect);
        t->expect = NULL;
        wsx__stream_update_interest(s);
        if (s->flags & WSX__S_CLOSING) return;
        /* Output queued during the handshake leaves with this iteration's flush. */
        if (s->queued || (s->flags & WSX__S_SHUT)) wsx__stream_pend(s);
        /* The peer's first application data may have arrived with its Finished. */
        if (reading(s)) tls_read(s, t);
        return;
    }
    int sys_errno = errno;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        t->hs_want = e == SSL_ERROR_WANT_READ ? WSX__IO_READ : WSX__IO_WRITE;
        wsx__stream_update_interest(s);
        return;
    }
    handshake_error(t, e, sys_errno);
    wsx__stream_fail(s, WSX_ETLS);
}

static void handshake_timeout(wsx_loop *loop, wsx__timer *timer)
{
    tls_conn *t = wsx__container_of(timer, tls_conn, timer);
    conn_err(t, "TLS handshake timed out after %u ms", (unsigned)t->hs_ms);
    wsx__stream_fail(t->s, WSX_ETIMEDOUT);
}

static int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

static void tls_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents)
{
    wsx__stream *s = wsx__container_of(io, wsx__stream, io);
    tls_conn *t = tls_of(s);
    if (!(t->tflags & T_READY)) {
        int err = (revents & WSX__IO_ERR) ? sock_error(io->fd) : 0;
        handshake(s, t);
        if ((revents & WSX__IO_ERR) && !(s->flags & WSX__S_CLOSING)) {
            t->tflags |= T_FATAL;
            conn_err(t, "TLS handshake failed: %s",
                     err ? wsx__errno_text(err) : "connection closed by peer");
            wsx__stream_fail(s, WSX_ETLS);
        }
        return;
    }
    if (revents & WSX__IO_ERR) {
        int err = sock_error(io->fd);
        wsx__stream_set_errno(s, err);
        /* Data that arrived before a reset is still worth delivering. */
        if ((revents & WSX__IO_READ) && reading(s)) tls_read(s, t);
        t->tflags |= T_FATAL;
        if (err)
            wsx__stream_fail_errno(s, err);
        else
            wsx__stream_fail(s, WSX_ECLOSED);
        return;
    }
    if ((revents & (WSX__IO_READ | WSX__IO_HUP)) && (t->tflags & T_W_WANTS_R)) {
        write_out(s, t);
        if (s->flags & WSX__S_CLOSING) return;
    }
    if ((revents & (WSX__IO_READ | WSX__IO_HUP)) && reading(s)) {
        tls_read(s, t);
        if (s->flags & WSX__S_CLOSING) return;
    } else if ((revents & WSX__IO_HUP) && !(t->tflags & T_W_WANTS_R)) {
        /* As for plain streams: not reading, both directions gone, and level-triggered HUP
         * would repeat forever. */
        wsx__stream_fail(s, WSX_ECLOSED);
        return;
    }
    if (revents & WSX__IO_WRITE) {
        if (t->tflags & T_R_WANTS_W) {
            t->tflags &= ~T_R_WANTS_W;
            wsx__stream_update_interest(s);
            if (reading(s)) tls_read(s, t);
            if (s->flags & WSX__S_CLOSING) return;
        }
        if (s->flags & WSX__S_WANTW) write_out(s, t);
    }
}

/* Sets up verification and SNI for a client connection to `name`. */
static int client_name(tls_conn *t, const char *name, bool verify)
{
    char host[256];
    size_t len = strlen(name);
    if (name[0] == '[' && len > 2 && name[len - 1] == ']') {
        name++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof host) return WSX_EINVAL;
    memcpy(host, name, len);
    host[len] = 0;
    unsigned char addr[16];
    bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    /* RFC 6066 3: SNI carries host names only, never address literals. */
    if (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1) return WSX_ETLS;
    if (!verify) return 0;
    t->expect = strdup(host);
    if (!t->expect) return WSX_ENOMEM;
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host)
                : SSL_set1_host(t->ssl, host);
    return ok == 1 ? 0 : WSX_ETLS;
}

static void conn_free(tls_conn *t)
{
    if (t->ssl) SSL_free(t->ssl);
    wsx__tls_certset_release(t->cs);
    free(t->expect);
    free(t);
}

int wsx__stream_init_tls(wsx_loop *loop, wsx__stream *s, int fd, const wsx__stream_vt *vt,
                         wsx__tls_ctx *ctx, const char *server_name)
{
    int rc = WSX_EINVAL;
    if (!loop || !s || !vt || !ctx) goto fail_fd;
    if (ctx->server ? server_name != NULL : (!server_name && !ctx->insecure)) goto fail_fd;
    rc = WSX_ENOMEM;
    tls_conn *t = calloc(1, sizeof *t);
    if (!t) goto fail_fd;
    t->vt = *vt;
    t->cs = wsx__tls_acquire(ctx);
    t->hs_ms = ctx->hs_ms;
    wsx__timer_init(&t->timer, handshake_timeout);
    wsx__deferred_init(&t->more, more_cb);
    ERR_clear_error();
    rc = WSX_ETLS;
    t->ssl = SSL_new(t->cs->ctx[0]);
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) goto fail;
    SSL_set_app_data(t->ssl, t);
    if (ctx->server) {
        SSL_set_accept_state(t->ssl);
        t->hs_want = WSX__IO_READ;
    } else {
        SSL_set_connect_state(t->ssl);
        t->tflags |= T_CLIENT | (ctx->insecure ? 0 : T_VERIFY);
        if (server_name && (rc = client_name(t, server_name, !ctx->insecure)) < 0) goto fail;
        /* The socket is connected and writable: the ClientHello goes out next iteration. */
        t->hs_want = WSX__IO_WRITE;
    }
    rc = wsx__stream_init(loop, s, fd, &t->vt);
    if (rc < 0) {
        ERR_clear_error();
        conn_free(t); /* the fd is closed already */
        return rc;
    }
    t->s = s;
    s->flags |= WSX__S_TLS;
    s->io.cb = tls_io_cb;
    wsx__stream_update_interest(s);
    wsx__timer_start(loop, &t->timer, t->hs_ms);
    return 0;
fail:
    ERR_clear_error();
    conn_free(t);
fail_fd:
    close(fd);
    return rc;
}

void wsx__tls_flush(wsx__stream *s)
{
    tls_conn *t = tls_of(s);
    /* Before the handshake completes the queue just waits; completion re-queues s. */
    if (t->tflags & T_READY) write_out(s, t);
}

void wsx__tls_resumed(wsx__stream *s)
{
    tls_conn *t = tls_of(s);
    /* Records OpenSSL already read (or an EOF it already saw) raise no epoll event. */
    if ((t->tflags & T_READY) && !(s->flags & WSX__S_CLOSING)) wsx__loop_defer(s->loop, &t->more);
}

void wsx__tls_closing(wsx__stream *s)
{
    tls_conn *t = tls_of(s);
    wsx__timer_stop(s->loop, &t->timer);
    wsx__loop_undefer(s->loop, &t->more);
    if (t->ssl) {
        /* Best effort, one non-blocking attempt: the socket closes right after. Never after a
         * fatal error (OpenSSL forbids it) nor twice. */
        if ((t->tflags & (T_READY | T_FATAL)) == T_READY && !(s->flags & WSX__S_SHUTDONE)) {
            ERR_clear_error();
            SSL_shutdown(t->ssl);
        }
        ERR_clear_error();
        SSL_free(t->ssl);
        t->ssl = NULL;
    }
    if (t->wbuf) {
        wsx__qnode_put(s->loop, t->wbuf);
        t->wbuf = NULL;
    }
    t->wlen = 0;
    t->wptr = NULL;
    free(t->expect);
    t->expect = NULL;
}

void wsx__tls_deliver_close(wsx__stream *s)
{
    tls_conn *t = tls_of(s);
    /* The owner may free s inside on_close; t is ours and outlives the call. */
    t->vt.on_close(s, s->err);
    conn_free(t);
}

bool wsx__stream_tls_ready(const wsx__stream *s)
{
    return wsx__stream_is_tls(s) && (tls_of(s)->tflags & T_READY);
}

const char *wsx__stream_tls_error(const wsx__stream *s)
{
    if (!wsx__stream_is_tls(s)) return NULL;
    const tls_conn *t = tls_of(s);
    return t->err[0] ? t->err : NULL;
}

int wsx__stream_tls_alpn(const wsx__stream *s, char *buf, size_t cap)
{
    if (cap) buf[0] = 0;
    if (!wsx__stream_is_tls(s)) return 0;
    const tls_conn *t = tls_of(s);
    if (!t->ssl || !(t->tflags & T_READY)) return 0;
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n + 1 > cap) return WSX_ENOSPC;
    if (n) memcpy(buf, p, n);
    buf[n] = 0;
    return (int)n;
}

struct ssl_st *wsx__stream_tls_ssl(const wsx__stream *s)
{
    return wsx__stream_is_tls(s) ? tls_of(s)->ssl : NULL;
}
