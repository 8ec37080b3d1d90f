/*
 * The server: accepts TCP connections, serves HTTP on them until one asks for a WebSocket
 * upgrade, then hands the connection to the WebSocket state machine (conn.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <errno.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "ws/ws.h"

struct wsx_http_req {
    wsx_conn *c; /* NULL once the connection went away */
    wsx_server *srv;
    wsx_http_gone_cb gone;
    void *gone_arg;
    wsx__http_msg m;
    size_t in_off;       /* where the request starts in c->in: answered requests precede it */
    wsx__http_file file; /* a file response still being queued when file.fd >= 0 */
    bool head_only;
    bool keep; /* a file response: keep the connection once the file is queued */
};

/* An entry of wsx_server.http_next. */
struct wsx__http_next {
    wsx_conn *c;         /* NULL once removed (its connection closed) */
    uint64_t not_before; /* the loop iteration it may run in, at the earliest */
};

/* Requests answered per connection in one pass (one read, or one deferred turn per loop
 * iteration): a client that pipelines thousands of requests shares the loop with everyone
 * else instead of holding it until all are answered. */
#define HTTP_BUDGET 16
/* File pieces (WSX__HTTP_FILE_CHUNK) queued per connection in one pass while the kernel
 * takes them as fast as they come (a fast reader): 1 MiB, then the next iteration. */
#define FILE_BUDGET 16

static void serve(wsx_conn *c, unsigned budget);
static void file_more(wsx_conn *c);

static void free_req(wsx_http_req *r)
{
    if (r->file.fd >= 0) close(r->file.fd);
    free(r);
}

wsx_server_opts wsx_server_defaults(void)
{
    wsx_server_opts o;
    memset(&o, 0, sizeof o);
    o.log_level = WSX_LOG_INFO;
    return o;
}

static size_t sz_or(size_t v, size_t def)
{
    return v ? v : def;
}

/* ---- lifecycle of a connection ---- */

static void unlink_conn(wsx_server *srv, wsx_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    srv->n_all--;
    if (c->flags & WSX__F_COUNTED) srv->n_ws--;
}

static void on_stream_close(wsx__stream *s, int err)
{
    wsx_conn *c = wsx__container_of(s, wsx_conn, stream);
    wsx_server *srv = c->srv;
    if (c->flags & WSX__F_HTTPNEXT) {
        for (size_t i = 0; i < srv->n_http_next; i++)
            if (srv->http_next[i].c == c) srv->http_next[i].c = NULL;
    }
    if (c->http) {
        wsx_http_req *r = c->http;
        c->http = NULL;
        if (r->file.fd >= 0) {
            /* A file response belongs to the library once started. */
            free_req(r);
        } else if (r->gone) {
            r->gone(r, r->gone_arg);
            free(r);
        } else {
            /* The request object lives on until the application answers it (which then
             * fails with ECLOSED and frees it). */
            r->c = NULL;
        }
    }
    if (err == WSX_ETLS ||
        (err == WSX_ETIMEDOUT && wsx__stream_is_tls(s) && !wsx__stream_tls_ready(s))) {
        const char *why = wsx__stream_tls_error(s);
        if (!why) why = "TLS handshake failed";
        if (!strncmp(why, "TLS", 3))
            wsx__conn_log(c, WSX_LOG_INFO, "%s", why);
        else
            wsx__conn_log(c, WSX_LOG_INFO, "TLS: %s", why);
    }
    wsx__conn_closed(c, err);
    if (wsx__admit_remove(srv->admit, wsx__stream_fd(s))) srv->n_pending--;
    /* Subscriptions end with the connection (after on_close, which may still publish). */
    if (c->subs && srv->unsubscribe_all) srv->unsubscribe_all(c);
    unlink_conn(srv, c);
    free(c);
    if (srv->n_all == 0) wsx__timer_stop(srv->loop, &srv->sweep);
    if (srv->shutting_down && srv->n_all == 0) wsx__timer_stop(srv->loop, &srv->shutdown_timer);
}

/* Ends an HTTP exchange that will not continue: the response is flushed, then FIN. */
static void http_finish(wsx_conn *c)
{
    c->state = WSX__CLOSE_WAIT;
    wsx__stream_shutdown_write(&c->stream);
    wsx__conn_deadline(c, wsx__cfg_of(c)->close_ms);
}

static void count_refusal(wsx_server_stats *st, int status)
{
    switch (status) {
    case 400:
        st->refused_400++;
        break;
    case 401:
        st->refused_401++;
        break;
    case 403:
        st->refused_403++;
        break;
    case 404:
        st->refused_404++;
        break;
    case 426:
        st->refused_426++;
        break;
    case 431:
        st->refused_431++;
        break;
    case 503:
        st->refused_503++;
        break;
    default:
        st->refused_other++;
        break;
    }
}

static void refuse(wsx_conn *c, int status, const char *why)
{
    count_refusal(&c->srv->stats, status);
    wsx__conn_log(c, WSX_LOG_INFO, "HTTP %d: %s", status, why);
    wsx__http_send_error(&c->stream, status, why);
    http_finish(c);
}

/* A 503 for a server that is full or going away: "Retry-After" tells well-behaved clients
 * when to come back instead of at once (RFC 9110 10.2.3). */
static void refuse_busy(wsx_conn *c, const char *why)
{
    count_refusal(&c->srv->stats, 503);
    wsx__conn_log(c, WSX_LOG_WARN, "HTTP 503: %s", why);
    char body[160], out[512];
    snprintf(body, sizeof body, "503 Service Unavailable\n%s", why);
    static const wsx_http_header retry = {"Retry-After", 11, "5", 1};
    ptrdiff_t n = wsx_http_write_error(503, body, &retry, 1, out, sizeof out);
    if (n > 0) wsx__stream_write1(&c->stream, out, (size_t)n);
    http_finish(c);
}

/* ---- the upgrade ---- */

/* on_upgrade accepted, but no on_open (and so no on_close) will follow: the application
 * gets its conn_user back here, or it would leak. */
static void upgrade_failed(wsx_server *srv, void *cu)
{
    if (srv->opts.on_upgrade && srv->opts.on_upgrade_failed)
        srv->opts.on_upgrade_failed(srv, cu, srv->opts.user);
}

/* m was parsed at offset off of c->in (after requests already answered). */
static void upgrade(wsx_conn *c, wsx__http_msg *m, const char *peer, size_t off)
{
    wsx_server *srv = c->srv;
    const wsx_server_opts *o = &srv->opts;
    if (o->path && (m->path_len != strlen(o->path) || memcmp(m->path, o->path, m->path_len) != 0)) {
        refuse(c, 404, "no WebSocket endpoint at this path");
        return;
    }
    wsx_handshake_server_opts ho = {o->subprotocols, o->n_subprotocols};
    wsx_handshake_server hs;
    if (wsx_handshake_server_check(&m->req, &ho, &hs) < 0) {
        refuse(c, hs.status, hs.error);
        return;
    }
    if (srv->shutting_down) {
        refuse_busy(c, "server is shutting down");
        return;
    }
    if (srv->n_ws >= o->max_connections) {
        refuse_busy(c, "too many connections (max_connections)");
        return;
    }
    void *cu = NULL;
    if (o->on_upgrade) {
        wsx_request rq = {&m->req, m->path, m->path_len, m->query, m->query_len, peer};
        int st = o->on_upgrade(srv, &rq, &cu, o->user);
        if (st != 0) {
            refuse(c, st >= 400 && st <= 599 ? st : 403, "refused by the application");
            return;
        }
    }
    char ext[WSX_PMD_MAX_VALUE];
    wsx_pmd_params pp;
    bool deflate =
        srv->cfg.pmd.enabled &&
        wsx_pmd_server_negotiate(hs.offers, hs.n_offers, &srv->cfg.pmd, &pp, ext, sizeof ext) == 1;
    char resp[1024];
    ptrdiff_t n =
        wsx_handshake_server_response(&hs, &ho, deflate ? ext : NULL, NULL, 0, resp, sizeof resp);
    if (n < 0 || wsx__stream_write1(&c->stream, resp, (size_t)n) < 0) {
        upgrade_failed(srv, cu);
        refuse(c, 500, "could not send the handshake response");
        return;
    }
    c->subprotocol = (int8_t)hs.subprotocol;
    if (deflate && wsx__conn_start_deflate(c, &pp) < 0) {
        /* The 101 promised compression: without memory for it, end the connection. */
        upgrade_failed(srv, cu);
        wsx__stream_close(&c->stream);
        return;
    }
    c->user = cu;
    c->flags |= WSX__F_COUNTED;
    srv->n_ws++;
    srv->stats.upgrades++;
    /* Reading may have been paused while earlier pipelined requests were served. */
    wsx__stream_resume(&c->stream);
    /* The bytes after the head are WebSocket frames already. */
    uint8_t *buf = c->in.buf;
    size_t total = c->in.len, used = off + m->total_len;
    c->in = (wsx__http_in){0};
    wsx__conn_open(c, buf + used, total - used);
    free(buf);
}

/* ---- plain HTTP ---- */

static void default_http(wsx_http_req *r, const wsx_request *rq, wsx_server *srv)
{
    const char *path = srv->opts.path;
    bool ws_path = !path || (rq->path_len == strlen(path) && !memcmp(rq->path, path, rq->path_len));
    wsx_conn *c = r->c;
    int status = ws_path ? 426 : 404;
    const char *why =
        ws_path ? "this is a WebSocket endpoint: send an Upgrade request" : "no such resource";
    /* Not a refusal worth a log line at INFO: browsers probe for favicons. */
    c->http = NULL;
    c->flags &= (uint16_t)~WSX__F_HTTP_BUSY;
    free_req(r);
    wsx__http_send_error(&c->stream, status, why);
    http_finish(c);
}

/* Continues c's HTTP work (the next pipelined requests, the rest of a file) in the deferred
 * phase: of this iteration, or with next_iteration of the next one (c spent its budget for
 * this one). Reading waits meanwhile: what the client sends stays in the kernel. */
static void serve_later(wsx_conn *c, bool next_iteration)
{
    wsx_server *srv = c->srv;
    wsx__stream_pause(&c->stream);
    if (c->flags & WSX__F_HTTPNEXT) return;
    if (srv->n_http_next == srv->cap_http_next) {
        size_t cap = srv->cap_http_next ? srv->cap_http_next * 2 : 16;
        struct wsx__http_next *a = realloc(srv->http_next, cap * sizeof *a);
        if (!a) {
            wsx__conn_log(c, WSX_LOG_WARN, "out of memory: closing");
            wsx__stream_close(&c->stream);
            return;
        }
        srv->http_next = a;
        srv->cap_http_next = cap;
    }
    uint64_t it = wsx__loop_stats_get(srv->loop)->iterations;
    srv->http_next[srv->n_http_next++] = (struct wsx__http_next){c, next_iteration ? it + 1 : it};
    c->flags |= WSX__F_HTTPNEXT;
    wsx__loop_defer(srv->loop, &srv->http_defer);
}

static void on_http_next(wsx_loop *loop, wsx__deferred *d)
{
    wsx_server *srv = wsx__container_of(d, wsx_server, http_defer);
    uint64_t it = wsx__loop_stats_get(loop)->iterations;
    /* Entries added while these run (the list may move) wait for the next iteration. */
    size_t n = srv->n_http_next;
    for (size_t i = 0; i < n; i++) {
        wsx_conn *c = srv->http_next[i].c;
        if (!c || srv->http_next[i].not_before > it) continue;
        srv->http_next[i].c = NULL;
        c->flags &= (uint16_t)~WSX__F_HTTPNEXT;
        if (c->state != WSX__HTTP || wsx__stream_is_closing(&c->stream)) continue;
        if (c->http && c->http->file.fd >= 0)
            file_more(c);
        else if (!(c->flags & (WSX__F_HTTP_BUSY | WSX__F_STREAMING)))
            serve(c, HTTP_BUDGET);
    }
    size_t w = 0;
    for (size_t i = 0; i < srv->n_http_next; i++)
        if (srv->http_next[i].c) srv->http_next[w++] = srv->http_next[i];
    srv->n_http_next = w;
    if (w) {
        wsx__loop_defer(loop, d);
    } else if (srv->cap_http_next > 64) {
        /* A burst is over: give its list back. */
        free(srv->http_next);
        srv->http_next = NULL;
        srv->cap_http_next = 0;
    }
}

/* The connection's output is above the high-water mark: parse no further request until it
 * falls to the low-water mark (on_drain), so a client that pipelines requests and never
 * reads the answers holds at most high_water plus one response. */
static void wait_drain(wsx_conn *c)
{
    c->flags |= WSX__F_OUTWAIT;
    wsx__stream_pause(&c->stream);
    wsx__stream_want_drain(&c->stream, true);
}

static void http_request(wsx_conn *c, wsx__http_msg *m, const char *peer, size_t off)
{
    wsx_server *srv = c->srv;
    wsx_http_req *r = malloc(sizeof *r);
    if (!r) {
        refuse(c, 503, "out of memory");
        return;
    }
    r->c = c;
    r->srv = srv;
    r->gone = NULL;
    r->gone_arg = NULL;
    r->m = *m;
    r->m.req.headers = r->m.headers;
    r->in_off = off;
    r->file = (wsx__http_file){.fd = -1};
    r->keep = false;
    r->head_only = m->req.method_len == 4 && !memcmp(m->req.method, "HEAD", 4);
    c->http = r;
    c->flags |= WSX__F_HTTP_BUSY;
    wsx__conn_deadline(c, UINT32_MAX);
    wsx_request rq = {&r->m.req, m->path, m->path_len, m->query, m->query_len, peer};
    if (srv->opts.on_http)
        srv->opts.on_http(r, &rq, srv->opts.user);
    else
        default_http(r, &rq, srv);
}

/* The answer to r is queued (rc 0) or could not be (rc < 0): r is freed, and the connection
 * goes on with its next request (keep) or ends. Returns rc. */
static int request_done(wsx_conn *c, wsx_http_req *r, int rc, bool keep)
{
    size_t used = r->in_off + r->m.total_len;
    c->http = NULL;
    c->flags &= (uint16_t)~WSX__F_HTTP_BUSY;
    c->flags |= WSX__F_SERVED;
    free_req(r);
    if (rc < 0 || !keep) {
        http_finish(c);
        return rc;
    }
    wsx__conn_deadline(c, wsx__cfg_of(c)->http_ms);
    /* Answered from inside serve() (the HTTP callback answered at once): serve goes on
     * with the next request and drops the answered ones from c->in in one move. Otherwise
     * the next request is served from the deferred phase, never from inside this call:
     * the caller may be the HTTP callback of another connection, holding its own locks. */
    if (c->flags & WSX__F_SERVING) return 0;
    wsx__http_in_consume(&c->in, used);
    if (c->in.len)
        serve_later(c, false);
    else
        wsx__stream_resume(&c->stream);
    return 0;
}

int wsx_http_respond(wsx_http_req *r, int status, const wsx_http_header *headers, size_t n_headers,
                     const void *body, size_t len)
{
    if (!r) return WSX_EINVAL;
    wsx_conn *c = r->c;
    if (!c) {
        free_req(r);
        return WSX_ECLOSED;
    }
    if (r->file.fd >= 0 || (c->flags & WSX__F_STREAMING)) return WSX_EINVAL;
    bool keep = r->m.keep_alive && !c->srv->shutting_down;
    int rc = wsx__http_send(&c->stream, status, headers, n_headers, body, len, keep, r->head_only);
    if (rc == WSX_EINVAL) return rc; /* the request stays open: the caller may answer again */
    return request_done(c, r, rc, keep);
}

/* Queues more of the file being sent on c, as far as the low-water mark; finishes the
 * request after its last byte. */
static void file_more(wsx_conn *c)
{
    wsx_http_req *r = c->http;
    wsx_server *srv = c->srv;
    int rc = WSX_ENOMEM;
    if (srv->file_buf || (srv->file_buf = malloc(WSX__HTTP_FILE_CHUNK)))
        rc = wsx__http_file_pump(&c->stream, &r->file, srv->file_buf, wsx__cfg_of(c)->low_water,
                                 FILE_BUDGET);
    if (rc == 0) {
        wsx__stream_want_drain(&c->stream, true);
        return;
    }
    if (rc == 2) {
        serve_later(c, true);
        return;
    }
    if (rc < 0) {
        /* The head promised a length that can no longer be kept: only closing tells the
         * client the body is incomplete. */
        if (rc == WSX_ESYS)
            wsx__conn_log(c, WSX_LOG_WARN, "file response: %s with %llu bytes left: closing",
                          errno ? strerror(errno) : "the file ended early",
                          (unsigned long long)r->file.left);
        wsx__stream_close(&c->stream);
        return;
    }
    wsx__stream_want_drain(&c->stream, false);
    request_done(c, r, 0, r->keep && !srv->shutting_down);
}

int wsx_http_respond_file(wsx_http_req *r, int status, const wsx_http_header *headers,
                          size_t n_headers, int fd, uint64_t offset, uint64_t len)
{
    struct stat st;
    if (!r || fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || len > SIZE_MAX ||
        offset > (uint64_t)st.st_size || len > (uint64_t)st.st_size - offset) {
        if (fd >= 0) close(fd);
        return WSX_EINVAL;
    }
    wsx_conn *c = r->c;
    if (!c) {
        close(fd);
        free_req(r);
        return WSX_ECLOSED;
    }
    if (r->file.fd >= 0 || (c->flags & WSX__F_STREAMING)) {
        close(fd);
        return WSX_EINVAL;
    }
    bool keep = r->m.keep_alive && !c->srv->shutting_down;
    /* RFC 9110 9.3.2, 15.3.5, 15.4.5: HEAD, 204 and 304 responses have no content. */
    bool body = !r->head_only && status >= 200 && status != 204 && status != 304;
    int rc = wsx__http_send(&c->stream, status, headers, n_headers, NULL, (size_t)len, keep, true);
    if (rc == WSX_EINVAL || rc < 0 || !body || len == 0) {
        close(fd);
        if (rc == WSX_EINVAL) return rc; /* the request stays open, as in wsx_http_respond */
        return request_done(c, r, rc, keep);
    }
    r->file = (wsx__http_file){fd, offset, len};
    r->keep = keep;
    r->gone = NULL; /* answered: the request is the library's now */
    file_more(c);
    return 0;
}

int wsx_http_begin(wsx_http_req *r, int status, const wsx_http_header *headers, size_t n)
{
    if (!r || (r->c && (r->c->flags & WSX__F_STREAMING))) return WSX_EINVAL;
    wsx_conn *c = r->c;
    if (!c) return WSX_ECLOSED;
    int rc =
        wsx__http_send_head(&c->stream, status, headers, n, "Connection: close\r\n\r\n", NULL, 0);
    if (rc < 0) return rc;
    c->flags |= WSX__F_STREAMING;
    /* Read again, only to notice the client leaving (EOF); anything it sends is ignored. */
    wsx__stream_resume(&c->stream);
    return 0;
}

int wsx_http_write(wsx_http_req *r, const void *data, size_t len)
{
    if (!r) return WSX_EINVAL;
    wsx_conn *c = r->c;
    if (!c || c->state != WSX__HTTP) return WSX_ECLOSED;
    if (!(c->flags & WSX__F_STREAMING)) return WSX_EINVAL;
    if (r->head_only) return 0; /* a HEAD response has headers only (RFC 9110 9.3.2) */
    int rc = wsx__stream_write1(&c->stream, data, len);
    if (rc < 0) return rc;
    size_t q = wsx__stream_queued(&c->stream);
    if (q > wsx__cfg_of(c)->hard_limit) {
        wsx__conn_log(c, WSX_LOG_WARN, "streamed response queue at %zu bytes: closing", q);
        wsx__stream_close(&c->stream);
        return WSX_ECLOSED;
    }
    return q > wsx__cfg_of(c)->high_water ? WSX_EBACKPRESSURE : 0;
}

int wsx_http_write_bytes(wsx_http_req *r, wsx_bytes *b, size_t off, size_t len)
{
    if (!r || !b) return WSX_EINVAL;
    wsx__ref *ref = (wsx__ref *)(void *)b;
    if (off > ref->len || len > ref->len - off) return WSX_EINVAL;
    wsx_conn *c = r->c;
    if (!c || c->state != WSX__HTTP) return WSX_ECLOSED;
    if (!(c->flags & WSX__F_STREAMING)) return WSX_EINVAL;
    if (r->head_only) return 0;
    int rc = wsx__stream_write_ref(&c->stream, ref, ref->data + off, len);
    if (rc < 0) return rc;
    /* The same limits as wsx_http_write: a slice counts with its full length, since this
     * connection keeps the shared buffer alive until it is written. */
    size_t q = wsx__stream_queued(&c->stream);
    if (q > wsx__cfg_of(c)->hard_limit) {
        wsx__conn_log(c, WSX_LOG_WARN, "streamed response queue at %zu bytes: closing", q);
        wsx__stream_close(&c->stream);
        return WSX_ECLOSED;
    }
    return q > wsx__cfg_of(c)->high_water ? WSX_EBACKPRESSURE : 0;
}

size_t wsx_http_buffered_amount(const wsx_http_req *r)
{
    return r && r->c ? wsx__stream_queued(&r->c->stream) : 0;
}

void wsx_http_end(wsx_http_req *r)
{
    if (!r) return;
    wsx_conn *c = r->c;
    if (c) {
        c->http = NULL;
        c->flags &= (uint16_t) ~(WSX__F_HTTP_BUSY | WSX__F_STREAMING);
        http_finish(c);
    }
    free(r);
}

void wsx_http_on_gone(wsx_http_req *r, wsx_http_gone_cb cb, void *arg)
{
    r->gone = cb;
    r->gone_arg = arg;
}

wsx_server *wsx_http_req_server(const wsx_http_req *r)
{
    return r->srv;
}

bool wsx_http_req_is_head(const wsx_http_req *r)
{
    return r->head_only;
}

const uint8_t *wsx_http_req_body(const wsx_http_req *r, size_t *len)
{
    *len = r->m.body_len;
    return r->m.body;
}

/* Serves the requests buffered in c->in, one at a time, at most `budget` of them. */
static void serve(wsx_conn *c, unsigned budget)
{
    const wsx__cfg *cfg = wsx__cfg_of(c);
    size_t off = 0; /* bytes of the requests answered here, dropped from c->in at the end */
    c->flags |= WSX__F_SERVING;
    while (c->state == WSX__HTTP && !(c->flags & (WSX__F_HTTP_BUSY | WSX__F_STREAMING)) &&
           c->in.len > off) {
        if (wsx__stream_queued(&c->stream) > cfg->high_water) {
            wait_drain(c);
            break;
        }
        if (budget == 0) {
            serve_later(c, true);
            break;
        }
        budget--;
        wsx__http_in rest = {c->in.buf + off, c->in.len - (uint32_t)off, 0};
        wsx__http_msg m;
        const char *why = NULL;
        int r = wsx__http_parse(&rest, cfg->max_head, c->srv->opts.max_body, &m, &why);
        if (r == 0) break;
        if (r < 0) {
            refuse(c, -r, why);
            break;
        }
        if (wsx__admit_handshaken(c->srv->admit, wsx__stream_fd(&c->stream))) c->srv->n_pending--;
        char peer[64];
        if (wsx_conn_peer(c, peer, sizeof peer) < 0) snprintf(peer, sizeof peer, "-");
        if (m.upgrade) {
            upgrade(c, &m, peer, off);
            break;
        }
        http_request(c, &m, peer, off);
        if (!(c->flags & WSX__F_HTTP_BUSY)) off += m.total_len;
    }
    c->flags &= (uint16_t)~WSX__F_SERVING;
    /* Upgraded or ending: c->in is no longer ours to manage. */
    if (c->state != WSX__HTTP) return;
    if (c->flags & WSX__F_HTTP_BUSY) {
        /* Answered later: the request keeps its place in c->in (in_off), and the client's
         * next bytes wait in the kernel until then. */
        if (!(c->flags & WSX__F_STREAMING)) wsx__stream_pause(&c->stream);
        return;
    }
    wsx__http_in_consume(&c->in, off);
    if (!(c->flags & (WSX__F_OUTWAIT | WSX__F_HTTPNEXT))) wsx__stream_resume(&c->stream);
}

/* ---- stream callbacks ---- */

static void on_read(wsx__stream *s, const uint8_t *data, size_t len)
{
    wsx_conn *c = wsx__container_of(s, wsx_conn, stream);
    if (c->flags & WSX__F_STREAMING) return;
    if (c->state == WSX__HTTP) {
        /* Collect at most one request's worth; what follows an upgrade request is frames,
         * passed on below without being copied. While requests wait (one being answered,
         * the output above its high-water mark, the budget of this pass spent), reading is
         * paused, so what is already read is kept whatever its size. */
        const uint16_t held = WSX__F_HTTP_BUSY | WSX__F_OUTWAIT | WSX__F_HTTPNEXT;
        size_t limit = wsx__cfg_of(c)->max_head + c->srv->opts.max_body;
        size_t room = c->in.len < limit ? limit - c->in.len : 0;
        size_t take = len;
        if (!(c->flags & held) && take > room) take = room;
        if (wsx__http_in_append(&c->in, data, take, SIZE_MAX) < 0) {
            refuse(c, 503, "out of memory");
            return;
        }
        if (!(c->flags & held)) serve(c, HTTP_BUDGET);
        if (take == len) return;
        if (c->state == WSX__HTTP && !(c->flags & held)) {
            /* More than any acceptable request: let the parser say which limit. */
            wsx__http_msg m;
            const char *why = "request too large";
            int r =
                wsx__http_parse(&c->in, wsx__cfg_of(c)->max_head, c->srv->opts.max_body, &m, &why);
            refuse(c, r < 0 ? -r : 431, why);
            return;
        }
        if (c->state == WSX__HTTP) {
            wsx__http_in_append(&c->in, data + take, len - take, SIZE_MAX);
            return;
        }
        data += take;
        len -= take;
        if (c->state != WSX__OPEN && c->state != WSX__CLOSING) return;
    }
    /* The loop's receive buffer is scratch space for its owner until we return: frames are
     * unmasked in place there. */
    wsx__conn_read(c, (uint8_t *)data, len);
}

static void on_eof(wsx__stream *s)
{
    wsx_conn *c = wsx__container_of(s, wsx_conn, stream);
    if (c->state == WSX__HTTP) {
        /* The client has sent all it will (a half-close): answers still queued go out
         * first, then FIN. */
        if (!(c->flags & (WSX__F_HTTP_BUSY | WSX__F_STREAMING)) && wsx__stream_queued(s))
            http_finish(c);
        else
            wsx__stream_close(s);
        return;
    }
    wsx__conn_eof(c);
}

static void on_drain(wsx__stream *s)
{
    wsx_conn *c = wsx__container_of(s, wsx_conn, stream);
    if (c->state != WSX__HTTP) {
        wsx__conn_drained(c);
        return;
    }
    bool file = c->http && c->http->file.fd >= 0;
    if (!file && !(c->flags & WSX__F_OUTWAIT)) return;
    /* The client is reading: it is not idle, however long the rest takes. */
    wsx__conn_deadline(c, wsx__cfg_of(c)->http_ms);
    if (wsx__stream_queued(s) > wsx__cfg_of(c)->low_water) return;
    /* This may be the end-of-iteration flush, which goes on as long as the streams it
     * writes ask for more: the next pieces of a file, or the next requests, come from
     * deferred work, at most one pass per connection per iteration. */
    if (!file) {
        c->flags &= (uint16_t)~WSX__F_OUTWAIT;
        wsx__stream_want_drain(s, false);
    }
    serve_later(c, false);
}

static const wsx__stream_vt server_vt = {
    .on_read = on_read,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_close = on_stream_close,
};

static void conn_timeout(wsx_conn *c)
{
    if (c->state == WSX__HTTP) {
        /* An idle keep-alive connection just ends; a first request that never came is
         * worth a line (slowloris, port scans), and so is a client that stopped reading. */
        if (c->http && c->http->file.fd >= 0) {
            wsx__conn_log(c, WSX_LOG_INFO, "file response not read for %u ms: closing",
                          wsx__cfg_of(c)->http_ms);
        } else if (c->flags & WSX__F_OUTWAIT) {
            wsx__conn_log(c, WSX_LOG_INFO, "responses not read for %u ms: closing",
                          wsx__cfg_of(c)->http_ms);
        } else if (!(c->flags & WSX__F_SERVED)) {
            c->srv->stats.handshake_timeouts++;
            wsx__conn_log(c, WSX_LOG_INFO, "no complete request within %u ms: closing",
                          wsx__cfg_of(c)->handshake_ms);
        }
        wsx__stream_close(&c->stream);
        return;
    }
    if (c->state == WSX__CLOSE_WAIT && !(c->flags & WSX__F_OPENED)) {
        wsx__stream_close(&c->stream);
        return;
    }
    wsx__conn_timer(c);
}

/* One timer checks every connection's deadline each sweep_ms: O(connections) a tick, but
 * no timer per connection (memory per connection is a design goal), and deadlines are
 * coarse anyway. */
static void on_sweep(wsx_loop *loop, wsx__timer *t)
{
    wsx_server *srv = wsx__container_of(t, wsx_server, sweep);
    uint32_t now = wsx__now32(loop);
    bool pending = false;
    /* Closing frees nothing before the end of the iteration: the list stays walkable. */
    for (wsx_conn *c = srv->conns; c; c = c->next) {
        if (wsx__conn_due(c, now)) conn_timeout(c);
        pending |= (c->flags & WSX__F_DEADLINE) != 0;
    }
    if (pending) wsx__timer_start(loop, &srv->sweep, srv->sweep_ms);
    wsx__log_flush(&srv->cfg, false);
}

void wsx__server_deadline_set(wsx_server *s, uint32_t ms)
{
    (void)ms;
    if (!wsx__timer_active(&s->sweep)) wsx__timer_start(s->loop, &s->sweep, s->sweep_ms);
}

/* Turns a connection away at accept: a 503 where a response is possible (plain TCP; a TLS
 * client would need a handshake first), then close. What the client already sent is read
 * first, so that the close does not reset the connection before the 503 is read. */
static void turn_away(wsx_server *srv, int fd)
{
    if (!srv->tls) {
        char buf[512];
        for (int i = 0; i < 16 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++) {
        }
        static const wsx_http_header retry = {"Retry-After", 11, "5", 1};
        ptrdiff_t n = wsx_http_write_error(503, "503 Service Unavailable\nserver busy", &retry, 1,
                                           buf, sizeof buf);
        if (n > 0) (void)send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR);
    }
    close(fd);
}

static void on_overload(wsx__listener *l, int sys_err, const struct sockaddr *peer, socklen_t plen,
                        void *arg)
{
    wsx_server *srv = arg;
    (void)l;
    (void)plen;
    struct rlimit rl;
    unsigned long cap = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long)rl.rlim_cur : 0;
    const char *what = sys_err == ENFILE ? "ENFILE, the system's limit" : "EMFILE";
    if (!peer) {
        wsx__log(&srv->cfg, WSX_LOG_WARN,
                 "out of file descriptors (%s; this process may open %lu): accepting paused", what,
                 cap);
        return;
    }
    srv->stats.shed_nofile++;
    char p[64];
    if (wsx__addr_format(peer, p, sizeof p) < 0) snprintf(p, sizeof p, "-");
    wsx__log(&srv->cfg, WSX_LOG_WARN,
             "%s closed at once: out of file descriptors (%s; this process may open %lu, %zu "
             "connections open)",
             p, what, cap, srv->n_all);
}

static void on_accept(wsx__listener *l, int fd, const struct sockaddr *peer, socklen_t plen,
                      void *arg)
{
    wsx_server *srv = arg;
    const wsx_server_opts *o = &srv->opts;
    (void)l;
    (void)plen;
    /* Each reason has its own log line (format), so each is rate-limited on its own. */
    char p[64];
    if (srv->n_all >= o->max_connections + o->max_handshakes) {
        srv->stats.refused_full++;
        if (wsx__addr_format(peer, p, sizeof p) < 0) snprintf(p, sizeof p, "-");
        wsx__log(&srv->cfg, WSX_LOG_WARN, "%s refused (503): server full, %zu connections open", p,
                 srv->n_all);
        turn_away(srv, fd);
        return;
    }
    if (srv->n_pending >= o->max_handshakes) {
        srv->stats.refused_handshakes++;
        if (wsx__addr_format(peer, p, sizeof p) < 0) snprintf(p, sizeof p, "-");
        wsx__log(&srv->cfg, WSX_LOG_WARN,
                 "%s refused (503): %zu handshakes in progress (max_handshakes)", p,
                 srv->n_pending);
        turn_away(srv, fd);
        return;
    }
    int arc = wsx__admit_add(srv->admit, fd, peer, o->max_per_ip, o->max_handshakes_per_ip);
    if (arc != 0) {
        if (wsx__addr_format(peer, p, sizeof p) < 0) snprintf(p, sizeof p, "-");
        if (arc == WSX__ADMIT_PER_IP) {
            srv->stats.refused_per_ip++;
            wsx__log(&srv->cfg, WSX_LOG_WARN,
                     "%s refused (503): %zu connections open from this address (max_per_ip)", p,
                     o->max_per_ip);
        } else if (arc == WSX__ADMIT_PENDING_PER_IP) {
            srv->stats.refused_handshakes++;
            wsx__log(&srv->cfg, WSX_LOG_WARN,
                     "%s refused (503): %zu handshakes in progress from this address "
                     "(max_handshakes_per_ip)",
                     p, o->max_handshakes_per_ip);
        } else {
            wsx__log(&srv->cfg, WSX_LOG_WARN, "%s refused (503): out of memory", p);
        }
        turn_away(srv, fd);
        return;
    }
    wsx_conn *c = calloc(1, sizeof *c);
    if (!c) {
        wsx__admit_remove(srv->admit, fd);
        close(fd);
        return;
    }
    wsx__conn_init(c, &srv->cfg);
    c->srv = srv;
    c->state = WSX__HTTP;
    int rc = srv->tls ? wsx__stream_init_tls(srv->loop, &c->stream, fd, &server_vt, srv->tls, NULL)
                      : wsx__stream_init(srv->loop, &c->stream, fd, &server_vt);
    if (rc < 0) {
        /* The stream closed fd; its number is not reused before this returns. */
        wsx__admit_remove(srv->admit, fd);
        free(c);
        return;
    }
    c->next = srv->conns;
    if (c->next) c->next->prev = c;
    srv->conns = c;
    srv->n_all++;
    srv->n_pending++;
    srv->stats.accepted++;
    wsx__conn_deadline(c, srv->cfg.handshake_ms);
}

/* ---- the server ---- */

int wsx_server_start(wsx_loop *loop, const wsx_server_opts *opts, wsx_server **out)
{
    if (!loop || !opts || !out) return WSX_EINVAL;
    wsx_server *srv = calloc(1, sizeof *srv);
    if (!srv) return WSX_ENOMEM;
    srv->loop = loop;
    srv->opts = *opts;
    wsx_server_opts *o = &srv->opts;
    o->max_connections = sz_or(o->max_connections, 10000);
    o->max_handshakes = sz_or(o->max_handshakes, 1024);
    o->max_per_ip = sz_or(o->max_per_ip, 256);
    o->max_handshakes_per_ip = sz_or(o->max_handshakes_per_ip, 32);
    /* The overall cap adds the two: keep it from wrapping when either is unlimited. */
    if (o->max_connections > SIZE_MAX / 2) o->max_connections = SIZE_MAX / 2;
    if (o->max_handshakes > SIZE_MAX / 2) o->max_handshakes = SIZE_MAX / 2;
    o->max_body = sz_or(o->max_body, 1u << 20);
    wsx__cfg *cfg = &srv->cfg;
    cfg->role = WSX_ROLE_SERVER;
    WSX__CFG_CALLBACKS(cfg, o);
    cfg->subprotocols = o->subprotocols;
    cfg->stats = &srv->stats;
    cfg->zscratch = &srv->zscratch;
    cfg->pmd_idle_trim = o->deflate_idle_trim;
    wsx__cfg_resolve(cfg, WSX_ROLE_SERVER,
                     &(wsx__shared_opts){WSX__SHARED_OPTS(o), .idle_ms = o->idle_timeout_ms,
                                         .http_ms = o->http_timeout_ms});
    /* Deadlines fire within a quarter of the shortest one, between 5 ms and 1 s late. */
    uint32_t shortest = UINT32_MAX;
    const uint32_t all[] = {cfg->handshake_ms, cfg->idle_ms,  cfg->ping_ms,
                            cfg->pong_ms,      cfg->close_ms, cfg->http_ms};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i] < shortest) shortest = all[i]; /* WSX__NEVER never is */
    srv->sweep_ms = shortest / 4;
    if (srv->sweep_ms < 5) srv->sweep_ms = 5;
    if (srv->sweep_ms > 1000) srv->sweep_ms = 1000;
    wsx__timer_init(&srv->sweep, on_sweep);
    wsx__deferred_init(&srv->http_defer, on_http_next);

    wsx__set_error_detail("%s", "");
    /* OpenSSL sets itself up (providers, digests) on first use: do it now, not on the first
     * client's handshake, so that client does not wait for it. */
    char warm[WSX_ACCEPT_LEN + 1];
    if (wsx_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, warm) < 0) {
        free(srv);
        return WSX_ECRYPTO;
    }
    if (o->n_tls_certs) {
        char err[400];
        wsx__tls_server_opts to = {
            .certs = (const wsx__tls_cert *)o->tls_certs,
            .ncerts = o->n_tls_certs,
            .handshake_timeout_ms = o->tls_handshake_timeout_ms,
        };
        int trc = wsx__tls_server_new(&to, &srv->tls, err, sizeof err);
        if (trc < 0) {
            wsx__set_error_detail("%s", err);
            free(srv);
            return trc;
        }
    }
    int rc = wsx__admit_new(&srv->admit);
    if (rc < 0) {
        wsx__tls_ctx_free(srv->tls);
        free(srv);
        return rc;
    }
    wsx__listen_opts lo = {
        .host = o->host, .port = o->port, .reuseport = o->reuseport, .on_overload = on_overload};
    rc = wsx__listen(loop, &lo, on_accept, srv, &srv->listener);
    if (rc < 0) {
        wsx__admit_free(srv->admit);
        wsx__tls_ctx_free(srv->tls);
        free(srv);
        return rc;
    }
    wsx__timer_init(&srv->shutdown_timer, NULL);
    srv->budget.shed = wsx__server_shed;
    wsx__loop_add_budget_hook(loop, &srv->budget);
    *out = srv;
    return 0;
}

uint16_t wsx_server_port(const wsx_server *s)
{
    return s->listener ? wsx__listener_port(s->listener) : 0;
}

size_t wsx_server_connections(const wsx_server *s)
{
    return s->n_ws;
}

void wsx_server_get_stats(const wsx_server *s, wsx_server_stats *out)
{
    *out = s->stats;
    out->open = s->n_ws;
    out->http_open = s->n_all - s->n_ws;
    out->topics = wsx_topic_count(s);
}

static void on_shutdown_timer(wsx_loop *loop, wsx__timer *t)
{
    wsx_server *srv = wsx__container_of(t, wsx_server, shutdown_timer);
    (void)loop;
    for (wsx_conn *c = srv->conns; c; c = c->next) {
        if (c->state != WSX__DEAD) {
            wsx__conn_log(c, WSX_LOG_INFO, "still open at the end of the shutdown: dropping");
            wsx__conn_drop(c, c->close_code ? c->close_code : WSX_CLOSE_GOING_AWAY, NULL);
        }
    }
}

void wsx_server_shutdown(wsx_server *s, uint32_t timeout_ms)
{
    if (!s || s->shutting_down) return;
    s->shutting_down = true;
    if (s->listener) {
        wsx__listener_close(s->listener);
        s->listener = NULL;
    }
    for (wsx_conn *c = s->conns; c; c = c->next) {
        if (c->state == WSX__OPEN)
            wsx__conn_start_close(c, WSX_CLOSE_GOING_AWAY, "server shutting down", 20);
        else if (c->state == WSX__HTTP &&
                 (!(c->flags & WSX__F_HTTP_BUSY) || (c->flags & WSX__F_STREAMING)))
            wsx__stream_close(&c->stream);
    }
    if (s->n_all) {
        s->shutdown_timer.cb = on_shutdown_timer;
        wsx__timer_start(s->loop, &s->shutdown_timer, timeout_ms ? timeout_ms : 5000);
    }
}

int wsx_server_reload_tls(wsx_server *s)
{
    if (!s || !s->tls) return WSX_EINVAL;
    char err[400];
    int rc = wsx__tls_ctx_reload(s->tls, err, sizeof err);
    wsx__set_error_detail("%s", rc < 0 ? err : "");
    return rc;
}

void wsx_server_free(wsx_server *s)
{
    if (!s) return;
    wsx__loop_remove_budget_hook(s->loop, &s->budget);
    wsx__timer_stop(s->loop, &s->sweep);
    wsx__loop_undefer(s->loop, &s->http_defer);
    free(s->http_next);
    free(s->file_buf);
    wsx__tls_ctx_free(s->tls);
    wsx_pmd_buf_free(&s->zscratch);
    for (size_t i = 0; i < 16; i++) {
        if (!s->shared_pmd[i]) continue;
        wsx_pmd_free(s->shared_pmd[i]);
        free(s->shared_pmd[i]);
    }
    if (s->pubsub_free) s->pubsub_free(s);
    if (s->listener) wsx__listener_close(s->listener);
    wsx__timer_stop(s->loop, &s->shutdown_timer);
    wsx__log_flush(&s->cfg, true);
    wsx__log_free(&s->cfg);
    wsx__admit_free(s->admit);
    free(s);
}

/* wsx__cfg_of() relies on it. */
_Static_assert(offsetof(struct wsx_server, cfg) == 0, "wsx__cfg must come first in wsx_server");
