#include "http/http.h"

#include "proto/http_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int wsx__http_in_append(wsx__http_in *in, const uint8_t *data, size_t len, size_t limit)
{
    if (limit > UINT32_MAX) limit = UINT32_MAX;
    if (len > limit || in->len > limit - len) return WSX_ELIMIT;
    if (in->len + len > in->cap) {
        size_t cap = in->cap ? in->cap : 1024;
        while (cap < in->len + len)
            cap *= 2;
        if (cap > limit) cap = limit;
        uint8_t *b = realloc(in->buf, cap);
        if (!b) return WSX_ENOMEM;
        in->buf = b;
        in->cap = (uint32_t)cap;
    }
    memcpy(in->buf + in->len, data, len);
    in->len += (uint32_t)len;
    return 0;
}

void wsx__http_in_consume(wsx__http_in *in, size_t n)
{
    if (n >= in->len) {
        wsx__http_in_free(in);
        return;
    }
    memmove(in->buf, in->buf + n, in->len - n);
    in->len -= (uint32_t)n;
}

void wsx__http_in_free(wsx__http_in *in)
{
    free(in->buf);
    in->buf = NULL;
    in->len = in->cap = 0;
}

int wsx__http_parse(const wsx__http_in *in, size_t max_head,
                    size_t (*max_body_of)(void *arg, const wsx__http_msg *m), void *arg,
                    wsx__http_msg *m, const char **why)
{
    ptrdiff_t n = wsx_http_parse_request((const char *)in->buf, in->len, &m->req, m->headers,
                                         WSX__HTTP_MAX_HEADERS, max_head);
    if (n == WSX_EAGAIN) return 0;
    if (n == WSX_EHEADTOOBIG) {
        *why = "request head too large";
        return -431;
    }
    if (n == WSX_ETOOMANYHEADERS) {
        *why = "too many header fields";
        return -431;
    }
    if (n < 0) {
        *why = "malformed HTTP request";
        return -400;
    }
    m->head_len = (size_t)n;
    const wsx_http_header *h = m->req.headers;
    size_t nh = m->req.n_headers;

    /* RFC 9112 6.1: a request with Transfer-Encoding we would have to de-chunk. */
    if (wsx_http_header_get(h, nh, "transfer-encoding")) {
        *why = "Transfer-Encoding in requests is not supported";
        return -501;
    }
    uint64_t clen = 0;
    bool have_len = false;
    for (size_t i = 0; i < nh; i++) {
        if (!wsx__ascii_ieq(h[i].name, h[i].name_len, "content-length", 14)) continue;
        uint64_t v = 0;
        if (h[i].value_len == 0 || h[i].value_len > 15) goto bad_length;
        for (size_t k = 0; k < h[i].value_len; k++) {
            char c = h[i].value[k];
            if (c < '0' || c > '9') goto bad_length;
            v = v * 10 + (uint64_t)(c - '0');
        }
        /* RFC 9112 6.3: differing lengths make the framing unknowable. */
        if (have_len && v != clen) goto bad_length;
        clen = v;
        have_len = true;
    }
    const char *t = m->req.target;
    const char *q = memchr(t, '?', m->req.target_len);
    m->path = t;
    m->path_len = q ? (size_t)(q - t) : m->req.target_len;
    m->query = q ? q + 1 : NULL;
    m->query_len = q ? m->req.target_len - m->path_len - 1 : 0;
    if (clen > max_body_of(arg, m)) {
        *why = "request body too large";
        return -413;
    }
    if (in->len - m->head_len < clen) return 0;
    m->body = in->buf + m->head_len;
    m->body_len = (size_t)clen;
    m->total_len = m->head_len + (size_t)clen;

    bool close = wsx_http_headers_have_token(h, nh, "connection", "close");
    if (m->req.version_minor >= 1)
        m->keep_alive = !close;
    else
        m->keep_alive = wsx_http_headers_have_token(h, nh, "connection", "keep-alive");
    m->upgrade = wsx_http_headers_have_token(h, nh, "upgrade", "websocket");
    return 1;

bad_length:
    *why = "invalid Content-Length";
    return -400;
}

int wsx__http_send_head(wsx__stream *s, int status, const wsx_http_header *headers, size_t n,
                        const char *tail, const void *body, size_t len)
{
    if (!wsx__http_extras_valid(headers, n)) return WSX_EINVAL;
    size_t tail_len = strlen(tail);
    size_t need = wsx__out_head_size(status, headers, n) + tail_len + 1;
    char stackbuf[1024];
    char *head = need <= sizeof stackbuf ? stackbuf : malloc(need);
    if (!head) return WSX_ENOMEM;
    wsx__out o;
    wsx__out_init(&o, head, need);
    wsx__out_head(&o, status, headers, n);
    wsx__out_mem(&o, tail, tail_len);
    ptrdiff_t hl = wsx__out_end(&o);
    int rc = WSX_ENOMEM;
    if (hl > 0) {
        struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, len}};
        rc = wsx__stream_write(s, iov, len ? 2 : 1);
    }
    if (head != stackbuf) free(head);
    return rc;
}

int wsx__http_send(wsx__stream *s, int status, const wsx_http_header *headers, size_t n,
                   const void *body, size_t len, bool keep_alive, bool head_only)
{
    const char *conn = keep_alive ? "keep-alive" : "close";
    char tail[96];
    /* RFC 9110 8.6: a 304 must not announce a length other than the 200's, and 1xx/204 have
     * no content at all: leave Content-Length out for those. */
    if (status == 304 || status == 204 || status < 200) {
        snprintf(tail, sizeof tail, "Connection: %s\r\n\r\n", conn);
        len = 0;
    } else {
        snprintf(tail, sizeof tail, "Content-Length: %zu\r\nConnection: %s\r\n\r\n", len, conn);
    }
    return wsx__http_send_head(s, status, headers, n, tail, body, head_only ? 0 : len);
}

int wsx__http_send_error(wsx__stream *s, int status, const char *why)
{
    char body[256], out[512];
    snprintf(body, sizeof body, "%d %s%s%s", status, wsx_http_status_text(status), why ? "\n" : "",
             why ? why : "");
    /* The proto layer writes the response; a 426 also names the protocol to upgrade to
     * (RFC 9110 15.5.22; it adds Sec-WebSocket-Version itself). */
    static const wsx_http_header upgrade = {"Upgrade", 7, "websocket", 9};
    ptrdiff_t n =
        wsx_http_write_error(status, body, &upgrade, status == 426 ? 1 : 0, out, sizeof out);
    if (n < 0) return (int)n;
    return wsx__stream_write1(s, out, (size_t)n);
}

int wsx__http_file_pump(wsx__stream *s, wsx__http_file *f, uint8_t *scratch, size_t low,
                        unsigned max_chunks)
{
    unsigned n = 0;
    while (f->left) {
        if (wsx__stream_queued(s) >= low) return 0;
        if (n++ == max_chunks) return 2;
        size_t want = f->left < WSX__HTTP_FILE_CHUNK ? (size_t)f->left : WSX__HTTP_FILE_CHUNK;
        ssize_t got = pread(f->fd, scratch, want, (off_t)f->off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            /* The file shrank since its length was announced, or cannot be read: the
             * Content-Length cannot be kept any more. */
            if (got == 0) errno = 0;
            return WSX_ESYS;
        }
        int rc = wsx__stream_write1(s, scratch, (size_t)got);
        if (rc < 0) return rc;
        f->off += (uint64_t)got;
        f->left -= (uint64_t)got;
    }
    return 1;
}
