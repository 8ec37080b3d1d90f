/*
 * HTTP/1.1 connections of a server: the request loop (parse, route, answer, next), held
 * requests, file and streamed responses, and the hand-off of an upgrade to the owner.
 */
#include "http/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An entry of wsx__http_srv.next. */
struct wsx__http_next {
    wsx__http_conn *hc;  /* NULL once removed (its connection closed) */
    uint64_t not_before; /* the loop iteration it may run in, at the earliest */
};

/* Requests answered per connection in one pass (one read, or one deferred turn per loop
 * iteration): a client that pipelines thousands of requests shares the loop with everyone
 * else instead of holding it until all are answered. */
#define HTTP_BUDGET 16
/* File pieces (WSX__HTTP_FILE_CHUNK) queued per connection in one pass while the kernel
 * takes them as fast as they come (a fast reader): 1 MiB, then the next iteration. */
#define FILE_BUDGET 16

static void serve(wsx__http_conn *hc, unsigned budget);
static void file_more(wsx__http_conn *hc);
static void on_next(wsx_loop *loop, wsx__deferred *d);

__attribute__((format(printf, 3, 4))) static void hlog(wsx__http_conn *hc, int level,
                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hc->hs->owner->vlog(hc, level, fmt, ap);
    va_end(ap);
}

static void deadline(wsx__http_conn *hc, uint32_t ms)
{
    hc->hs->owner->deadline(hc, ms);
}

static void free_req(wsx_http_req *r)
{
    if (r->file.fd >= 0) close(r->file.fd);
    free(r);
}

void wsx__http_srv_init(wsx__http_srv *hs, wsx_loop *loop, const wsx__http_owner *owner)
{
    memset(hs, 0, sizeof *hs);
    hs->loop = loop;
    hs->owner = owner;
    wsx__deferred_init(&hs->defer, on_next);
}

void wsx__http_srv_free(wsx__http_srv *hs)
{
    wsx__loop_undefer(hs->loop, &hs->defer);
    for (size_t i = 0; i < hs->n_routes; i++) {
        free(hs->routes[i].path);
        free(hs->routes[i].methods);
    }
    free(hs->routes);
    free(hs->next);
    free(hs->file_buf);
}

int wsx__http_conn_new(wsx__http_srv *hs, wsx__stream *s, wsx__http_conn **out)
{
    wsx__http_conn *hc = calloc(1, sizeof *hc);
    if (!hc) return WSX_ENOMEM;
    hc->hs = hs;
    hc->s = s;
    *out = hc;
    return 0;
}

static void unlist(wsx__http_conn *hc)
{
    wsx__http_srv *hs = hc->hs;
    if (!(hc->flags & WSX__H_NEXT)) return;
    for (size_t i = 0; i < hs->n_next; i++)
        if (hs->next[i].hc == hc) hs->next[i].hc = NULL;
    hc->flags &= (uint16_t)~WSX__H_NEXT;
}

void wsx__http_conn_closed(wsx__http_conn *hc)
{
    unlist(hc);
    wsx_http_req *r = hc->req;
    if (r) {
        hc->req = NULL;
        if (r->file.fd >= 0) {
            /* A file response belongs to the library once started. */
            free_req(r);
        } else if (r->gone) {
            r->gone(r, r->gone_arg);
            free(r);
        } else {
            /* The request object lives on until the application answers it (which then
             * fails with ECLOSED and frees it). */
            r->hc = NULL;
        }
    }
    wsx__http_in_free(&hc->in);
    free(hc);
}

/* After serve() handed hc over: what the owner needed of its input has been used. */
static void free_handed(wsx__http_conn *hc)
{
    wsx__http_in_free(&hc->in);
    free(hc);
}

void wsx__http_conn_handed_over(wsx__http_conn *hc)
{
    hc->flags |= WSX__H_ENDED | WSX__H_HANDED;
}

/* Ends an HTTP exchange that will not continue: the response is flushed, then FIN. */
static void finish(wsx__http_conn *hc)
{
    hc->flags |= WSX__H_ENDED;
    wsx__stream_shutdown_write(hc->s);
    hc->hs->owner->ended(hc);
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

void wsx__http_refuse(wsx__http_conn *hc, int status, const char *why)
{
    count_refusal(hc->hs->stats, status);
    hlog(hc, WSX_LOG_INFO, "HTTP %d: %s", status, why);
    wsx__http_send_error(hc->s, status, why);
    finish(hc);
}

/* A 503 for a server that is full or going away: "Retry-After" tells well-behaved clients
 * when to come back instead of at once (RFC 9110 10.2.3). */
void wsx__http_refuse_busy(wsx__http_conn *hc, const char *why)
{
    count_refusal(hc->hs->stats, 503);
    hlog(hc, WSX_LOG_WARN, "HTTP 503: %s", why);
    char body[160], out[512];
    snprintf(body, sizeof body, "503 Service Unavailable\n%s", why);
    static const wsx_http_header retry = {"Retry-After", 11, "5", 1};
    ptrdiff_t n = wsx_http_write_error(503, body, &retry, 1, out, sizeof out);
    if (n > 0) wsx__stream_write1(hc->s, out, (size_t)n);
    finish(hc);
}

/* ---- routes ---- */

static bool is_path(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && !memcmp(p, want, n);
}

/* The route for a path: an exact one, else the longest prefix, else NULL (the default). */
static const wsx__http_route *route_of(const wsx__http_srv *hs, const char *p, size_t n)
{
    const wsx__http_route *best = NULL;
    for (size_t i = 0; i < hs->n_routes; i++) {
        const wsx__http_route *rt = &hs->routes[i];
        if (!rt->prefix) {
            if (rt->path_len == n && !memcmp(rt->path, p, n)) return rt;
        } else if (rt->path_len <= n && !memcmp(rt->path, p, rt->path_len) &&
                   (!best || rt->path_len > best->path_len)) {
            best = rt;
        }
    }
    return best;
}

int wsx__http_route_add(wsx__http_srv *hs, const char *path, const char *methods, size_t max_body,
                        wsx_http_cb cb, void *user, unsigned ws)
{
    if (!path || path[0] != '/' || (!ws && !cb)) return WSX_EINVAL;
    size_t n = strlen(path);
    bool prefix = path[n - 1] == '*';
    if (prefix) n--;
    for (size_t i = 0; i < hs->n_routes; i++)
        if (hs->routes[i].prefix == prefix && hs->routes[i].path_len == n &&
            !memcmp(hs->routes[i].path, path, n))
            return WSX_EINVAL;
    wsx__http_route *a = realloc(hs->routes, (hs->n_routes + 1) * sizeof *a);
    if (!a) return WSX_ENOMEM;
    hs->routes = a;
    wsx__http_route rt = {.path = malloc(n + 1),
                          .path_len = n,
                          .prefix = prefix,
                          .methods = methods ? strdup(methods) : NULL,
                          .max_body = max_body ? max_body : hs->max_body,
                          .on_request = cb,
                          .user = user,
                          .ws = ws};
    if (!rt.path || (methods && !rt.methods)) {
        free(rt.path);
        free(rt.methods);
        return WSX_ENOMEM;
    }
    memcpy(rt.path, path, n);
    rt.path[n] = 0;
    hs->routes[hs->n_routes++] = rt;
    if (rt.max_body > hs->max_body_all) hs->max_body_all = rt.max_body;
    return 0;
}

/* ---- deferred work ---- */

/* Continues hc's work (the next pipelined requests, the rest of a file) in the deferred
 * phase: of this iteration, or with next_iteration of the next one (hc spent its budget for
 * this one). Reading waits meanwhile: what the client sends stays in the kernel. */
static void serve_later(wsx__http_conn *hc, bool next_iteration)
{
    wsx__http_srv *hs = hc->hs;
    wsx__stream_pause(hc->s);
    if (hc->flags & WSX__H_NEXT) return;
    if (hs->n_next == hs->cap_next) {
        size_t cap = hs->cap_next ? hs->cap_next * 2 : 16;
        struct wsx__http_next *a = realloc(hs->next, cap * sizeof *a);
        if (!a) {
            hlog(hc, WSX_LOG_WARN, "out of memory: closing");
            wsx__stream_close(hc->s);
            return;
        }
        hs->next = a;
        hs->cap_next = cap;
    }
    uint64_t it = wsx__loop_stats_get(hs->loop)->iterations;
    hs->next[hs->n_next++] = (struct wsx__http_next){hc, next_iteration ? it + 1 : it};
    hc->flags |= WSX__H_NEXT;
    wsx__loop_defer(hs->loop, &hs->defer);
}

static void on_next(wsx_loop *loop, wsx__deferred *d)
{
    wsx__http_srv *hs = wsx__container_of(d, wsx__http_srv, defer);
    uint64_t it = wsx__loop_stats_get(loop)->iterations;
    /* Entries added while these run (the list may move) wait for the next iteration. */
    size_t n = hs->n_next;
    for (size_t i = 0; i < n; i++) {
        wsx__http_conn *hc = hs->next[i].hc;
        if (!hc || hs->next[i].not_before > it) continue;
        hs->next[i].hc = NULL;
        hc->flags &= (uint16_t)~WSX__H_NEXT;
        if ((hc->flags & WSX__H_ENDED) || wsx__stream_is_closing(hc->s)) continue;
        if (hc->req && hc->req->file.fd >= 0) {
            file_more(hc);
        } else if (!(hc->flags & (WSX__H_BUSY | WSX__H_STREAMING))) {
            serve(hc, HTTP_BUDGET);
            if (hc->flags & WSX__H_HANDED) free_handed(hc);
        }
    }
    size_t w = 0;
    for (size_t i = 0; i < hs->n_next; i++)
        if (hs->next[i].hc) hs->next[w++] = hs->next[i];
    hs->n_next = w;
    if (w) {
        wsx__loop_defer(loop, d);
    } else if (hs->cap_next > 64) {
        /* A burst is over: give its list back. */
        free(hs->next);
        hs->next = NULL;
        hs->cap_next = 0;
    }
}

/* The connection's output is above the high-water mark: parse no further request until it
 * falls to the low-water mark (drain), so a client that pipelines requests and never reads
 * the answers holds at most high_water plus one response. */
static void wait_drain(wsx__http_conn *hc)
{
    hc->flags |= WSX__H_OUTWAIT;
    wsx__stream_pause(hc->s);
    wsx__stream_want_drain(hc->s, true);
}

/* ---- requests ---- */

/* The answer of the default route without an application handler: 426 on the WebSocket
 * path, 404 elsewhere. Not a refusal worth a log line at INFO: browsers probe for
 * favicons. */
static void default_http(wsx_http_req *r, bool ws_path)
{
    wsx__http_conn *hc = r->hc;
    int status = ws_path ? 426 : 404;
    const char *why =
        ws_path ? "this is a WebSocket endpoint: send an Upgrade request" : "no such resource";
    hc->req = NULL;
    hc->flags &= (uint16_t)~WSX__H_BUSY;
    free_req(r);
    wsx__http_send_error(hc->s, status, why);
    finish(hc);
}

static void method_not_allowed(wsx_http_req *r, const wsx__http_route *rt)
{
    const wsx_http_header h[] = {{"Allow", 5, rt->methods, strlen(rt->methods)},
                                 {"Content-Type", 12, "text/plain", 10}};
    wsx_http_respond(r, 405, h, 2, "405 Method Not Allowed\n", 23);
}

static bool method_allowed(const wsx__http_route *rt, const wsx_http_request *q)
{
    if (!rt->methods) return true;
    const char *pos = rt->methods, *end = rt->methods + strlen(rt->methods), *e;
    size_t el;
    /* RFC 9110 9.3.2: HEAD goes wherever GET does. */
    bool head = q->method_len == 4 && !memcmp(q->method, "HEAD", 4);
    while (wsx_http_list_next(&pos, end, &e, &el)) {
        if (el == q->method_len && !memcmp(e, q->method, el)) return true;
        if (head && el == 3 && !memcmp(e, "GET", 3)) return true;
    }
    return false;
}

static void http_request(wsx__http_conn *hc, wsx__http_msg *m, size_t off,
                         const wsx__http_route *rt, const char *peer, bool oversize)
{
    wsx__http_srv *hs = hc->hs;
    wsx_http_req *r = malloc(sizeof *r);
    if (!r) {
        wsx__http_refuse(hc, 503, "out of memory");
        return;
    }
    r->hc = hc;
    r->hs = hs;
    r->gone = NULL;
    r->gone_arg = NULL;
    r->drain = NULL;
    r->drain_arg = NULL;
    r->m = *m;
    r->m.req.headers = r->m.headers;
    r->in_off = off;
    r->file = (wsx__http_file){.fd = -1};
    r->keep = false;
    r->oversize = oversize;
    r->head_only = m->req.method_len == 4 && !memcmp(m->req.method, "HEAD", 4);
    snprintf(r->peer, sizeof r->peer, "%s", peer);
    hc->req = r;
    hc->flags |= WSX__H_BUSY;
    deadline(hc, UINT32_MAX);
    if (rt && rt->ws) {
        if (rt->on_request)
            rt->on_request(r, rt->user);
        else
            default_http(r, true);
    } else if (rt) {
        if (!method_allowed(rt, &m->req))
            method_not_allowed(r, rt);
        else
            rt->on_request(r, rt->user);
    } else if (hs->on_http) {
        hs->on_http(r, hs->user);
    } else {
        default_http(r, !hs->ws_path || is_path(m->path, m->path_len, hs->ws_path));
    }
}

/* An upgrade request: the owner's if its route is a WebSocket route. */
static void upgrade(wsx__http_conn *hc, wsx__http_msg *m, size_t off, const wsx__http_route *rt,
                    const char *peer)
{
    wsx__http_srv *hs = hc->hs;
    unsigned ws;
    if (rt && rt->ws)
        ws = rt->ws;
    else if (!rt && (!hs->ws_path || is_path(m->path, m->path_len, hs->ws_path)))
        ws = 0;
    else {
        wsx__http_refuse(hc, 404, "no WebSocket endpoint at this path");
        return;
    }
    wsx_http_req r = {.hc = hc, .hs = hs, .m = *m, .in_off = off, .file = {.fd = -1}};
    r.m.req.headers = r.m.headers;
    snprintf(r.peer, sizeof r.peer, "%s", peer);
    size_t used = off + m->total_len;
    hs->owner->upgrade(hc, &r, ws, hc->in.buf + used, hc->in.len - used);
}

/* The answer to r is queued (rc 0) or could not be (rc < 0): r is freed, and the connection
 * goes on with its next request (keep) or ends. Returns rc. */
static int request_done(wsx__http_conn *hc, wsx_http_req *r, int rc, bool keep)
{
    size_t used = r->in_off + r->m.total_len;
    hc->req = NULL;
    hc->flags &= (uint16_t)~WSX__H_BUSY;
    hc->flags |= WSX__H_SERVED;
    free_req(r);
    if (rc < 0 || !keep) {
        finish(hc);
        return rc;
    }
    deadline(hc, hc->hs->http_ms);
    /* Answered from inside serve() (the handler answered at once): serve goes on with the
     * next request and drops the answered ones from hc->in in one move. Otherwise the next
     * request is served from the deferred phase, never from inside this call: the caller
     * may be the handler of another connection, holding its own locks. */
    if (hc->flags & WSX__H_SERVING) return 0;
    wsx__http_in_consume(&hc->in, used);
    if (hc->in.len)
        serve_later(hc, false);
    else
        wsx__stream_resume(hc->s);
    return 0;
}

int wsx_http_respond(wsx_http_req *r, int status, const wsx_http_header *headers, size_t n_headers,
                     const void *body, size_t len)
{
    if (!r) return WSX_EINVAL;
    wsx__http_conn *hc = r->hc;
    if (!hc) {
        free_req(r);
        return WSX_ECLOSED;
    }
    if (r->file.fd >= 0 || (hc->flags & WSX__H_STREAMING)) return WSX_EINVAL;
    bool keep = r->m.keep_alive && !hc->hs->shutting_down;
    int rc = wsx__http_send(hc->s, status, headers, n_headers, body, len, keep, r->head_only);
    if (rc == WSX_EINVAL) return rc; /* the request stays open: the caller may answer again */
    return request_done(hc, r, rc, keep);
}

/* Queues more of the file being sent on hc, as far as the low-water mark; finishes the
 * request after its last byte. */
static void file_more(wsx__http_conn *hc)
{
    wsx_http_req *r = hc->req;
    wsx__http_srv *hs = hc->hs;
    int rc = WSX_ENOMEM;
    if (hs->file_buf || (hs->file_buf = malloc(WSX__HTTP_FILE_CHUNK)))
        rc = wsx__http_file_pump(hc->s, &r->file, hs->file_buf, hs->low_water, FILE_BUDGET);
    if (rc == 0) {
        wsx__stream_want_drain(hc->s, true);
        return;
    }
    if (rc == 2) {
        serve_later(hc, true);
        return;
    }
    if (rc < 0) {
        /* The head promised a length that can no longer be kept: only closing tells the
         * client the body is incomplete. */
        if (rc == WSX_ESYS)
            hlog(hc, WSX_LOG_WARN, "file response: %s with %llu bytes left: closing",
                 errno ? strerror(errno) : "the file ended early",
                 (unsigned long long)r->file.left);
        wsx__stream_close(hc->s);
        return;
    }
    wsx__stream_want_drain(hc->s, false);
    request_done(hc, r, 0, r->keep && !hs->shutting_down);
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
    wsx__http_conn *hc = r->hc;
    if (!hc) {
        close(fd);
        free_req(r);
        return WSX_ECLOSED;
    }
    if (r->file.fd >= 0 || (hc->flags & WSX__H_STREAMING)) {
        close(fd);
        return WSX_EINVAL;
    }
    bool keep = r->m.keep_alive && !hc->hs->shutting_down;
    /* RFC 9110 9.3.2, 15.3.5, 15.4.5: HEAD, 204 and 304 responses have no content. */
    bool body = !r->head_only && status >= 200 && status != 204 && status != 304;
    int rc = wsx__http_send(hc->s, status, headers, n_headers, NULL, (size_t)len, keep, true);
    if (rc == WSX_EINVAL || rc < 0 || !body || len == 0) {
        close(fd);
        if (rc == WSX_EINVAL) return rc; /* the request stays open, as in wsx_http_respond */
        return request_done(hc, r, rc, keep);
    }
    r->file = (wsx__http_file){fd, offset, len};
    r->keep = keep;
    r->gone = NULL; /* answered: the request is the library's now */
    file_more(hc);
    return 0;
}

int wsx_http_begin(wsx_http_req *r, int status, const wsx_http_header *headers, size_t n)
{
    if (!r || (r->hc && (r->hc->flags & WSX__H_STREAMING))) return WSX_EINVAL;
    wsx__http_conn *hc = r->hc;
    if (!hc) return WSX_ECLOSED;
    int rc = wsx__http_send_head(hc->s, status, headers, n, "Connection: close\r\n\r\n", NULL, 0);
    if (rc < 0) return rc;
    hc->flags |= WSX__H_STREAMING;
    /* Read again, only to notice the client leaving (EOF); anything it sends is ignored. */
    wsx__stream_resume(hc->s);
    return 0;
}

/* After body bytes of a streamed response were queued: the send limits. */
static int stream_limits(wsx__http_conn *hc)
{
    size_t q = wsx__stream_queued(hc->s);
    if (q > hc->hs->hard_limit) {
        hlog(hc, WSX_LOG_WARN, "streamed response queue at %zu bytes: closing", q);
        wsx__stream_close(hc->s);
        return WSX_ECLOSED;
    }
    if (q <= hc->hs->high_water) return 0;
    hc->flags |= WSX__H_DRAINWAIT;
    wsx__stream_want_drain(hc->s, true);
    return WSX_EBACKPRESSURE;
}

int wsx_http_write(wsx_http_req *r, const void *data, size_t len)
{
    if (!r) return WSX_EINVAL;
    wsx__http_conn *hc = r->hc;
    if (!hc || (hc->flags & WSX__H_ENDED)) return WSX_ECLOSED;
    if (!(hc->flags & WSX__H_STREAMING)) return WSX_EINVAL;
    if (r->head_only) return 0; /* a HEAD response has headers only (RFC 9110 9.3.2) */
    int rc = wsx__stream_write1(hc->s, data, len);
    if (rc < 0) return rc;
    return stream_limits(hc);
}

int wsx_http_write_bytes(wsx_http_req *r, wsx_bytes *b, size_t off, size_t len)
{
    if (!r || !b) return WSX_EINVAL;
    wsx__ref *ref = (wsx__ref *)(void *)b;
    if (off > ref->len || len > ref->len - off) return WSX_EINVAL;
    wsx__http_conn *hc = r->hc;
    if (!hc || (hc->flags & WSX__H_ENDED)) return WSX_ECLOSED;
    if (!(hc->flags & WSX__H_STREAMING)) return WSX_EINVAL;
    if (r->head_only) return 0;
    int rc = wsx__stream_write_ref(hc->s, ref, ref->data + off, len);
    if (rc < 0) return rc;
    /* The same limits as wsx_http_write: a slice counts with its full length, since this
     * connection keeps the shared buffer alive until it is written. */
    return stream_limits(hc);
}

size_t wsx_http_buffered_amount(const wsx_http_req *r)
{
    return r && r->hc ? wsx__stream_queued(r->hc->s) : 0;
}

void wsx_http_end(wsx_http_req *r)
{
    if (!r) return;
    wsx__http_conn *hc = r->hc;
    if (hc) {
        hc->req = NULL;
        hc->flags &= (uint16_t) ~(WSX__H_BUSY | WSX__H_STREAMING | WSX__H_DRAINWAIT);
        finish(hc);
    }
    free(r);
}

void wsx_http_on_drain(wsx_http_req *r, wsx_http_drain_cb cb, void *arg)
{
    r->drain = cb;
    r->drain_arg = arg;
}

void wsx_http_on_gone(wsx_http_req *r, wsx_http_gone_cb cb, void *arg)
{
    r->gone = cb;
    r->gone_arg = arg;
}

wsx_server *wsx_http_req_server(const wsx_http_req *r)
{
    return r->hs->server;
}

bool wsx_http_req_is_head(const wsx_http_req *r)
{
    return r->head_only;
}

bool wsx_http_req_body_too_big(const wsx_http_req *r)
{
    return r->oversize;
}

const uint8_t *wsx_http_req_body(const wsx_http_req *r, size_t *len)
{
    *len = r->m.body_len;
    return r->m.body;
}

const char *wsx_http_req_method(const wsx_http_req *r, size_t *len)
{
    *len = r->m.req.method_len;
    return r->m.req.method;
}

const char *wsx_http_req_path(const wsx_http_req *r, size_t *len)
{
    *len = r->m.path_len;
    return r->m.path;
}

const char *wsx_http_req_query(const wsx_http_req *r, size_t *len)
{
    *len = r->m.query_len;
    return r->m.query;
}

const wsx_http_header *wsx_http_req_header(const wsx_http_req *r, const char *name)
{
    return wsx_http_header_get(r->m.req.headers, r->m.req.n_headers, name);
}

const wsx_http_request *wsx_http_req_head(const wsx_http_req *r)
{
    return &r->m.req;
}

const char *wsx_http_req_peer(const wsx_http_req *r)
{
    return r->peer;
}

/* ---- the request loop ---- */

/* The body limit of the route a parsed head goes to. */
static size_t body_limit(void *arg, const wsx__http_msg *m)
{
    const wsx__http_srv *hs = arg;
    const wsx__http_route *rt = route_of(hs, m->path, m->path_len);
    return rt ? rt->max_body : hs->max_body;
}

/* A body above the limit of a route that takes such requests (wsx_ws_route_opts
 * oversize_to_handler): the handler answers the head alone, and the connection closes after
 * the answer, since the body is never read. Returns false when the route does not. */
static bool oversize_to_handler(wsx__http_conn *hc, wsx__http_msg *m, size_t off)
{
    const wsx__http_route *rt = route_of(hc->hs, m->path, m->path_len);
    if (!rt || !rt->oversize || !rt->on_request) return false;
    hc->hs->owner->request_seen(hc);
    m->body = NULL;
    m->body_len = 0;
    m->total_len = m->head_len;
    m->keep_alive = false;
    m->upgrade = false;
    char peer[64];
    if (wsx__stream_peer(hc->s, peer, sizeof peer) < 0) snprintf(peer, sizeof peer, "-");
    http_request(hc, m, off, rt, peer, true);
    return true;
}

/* Serves the requests buffered in hc->in, one at a time, at most `budget` of them. */
static void serve(wsx__http_conn *hc, unsigned budget)
{
    wsx__http_srv *hs = hc->hs;
    size_t off = 0; /* bytes of the requests answered here, dropped from hc->in at the end */
    hc->flags |= WSX__H_SERVING;
    while (!(hc->flags & (WSX__H_ENDED | WSX__H_BUSY | WSX__H_STREAMING)) && hc->in.len > off) {
        if (wsx__stream_queued(hc->s) > hs->high_water) {
            wait_drain(hc);
            break;
        }
        if (budget == 0) {
            serve_later(hc, true);
            break;
        }
        budget--;
        wsx__http_in rest = {hc->in.buf + off, hc->in.len - (uint32_t)off, 0};
        wsx__http_msg m;
        const char *why = NULL;
        int r = wsx__http_parse(&rest, hs->max_head, body_limit, hs, &m, &why);
        if (r == 0) break;
        if (r == -413 && oversize_to_handler(hc, &m, off)) break;
        if (r < 0) {
            wsx__http_refuse(hc, -r, why);
            break;
        }
        hs->owner->request_seen(hc);
        char peer[64];
        if (wsx__stream_peer(hc->s, peer, sizeof peer) < 0) snprintf(peer, sizeof peer, "-");
        const wsx__http_route *rt = route_of(hs, m.path, m.path_len);
        if (m.upgrade) {
            upgrade(hc, &m, off, rt, peer);
            break;
        }
        http_request(hc, &m, off, rt, peer, false);
        if (!(hc->flags & WSX__H_BUSY)) off += m.total_len;
    }
    hc->flags &= (uint16_t)~WSX__H_SERVING;
    /* Handed over or ending: hc->in is no longer ours to manage. */
    if (hc->flags & WSX__H_ENDED) return;
    if (hc->flags & WSX__H_BUSY) {
        /* Answered later: the request keeps its place in hc->in (in_off), and the client's
         * next bytes wait in the kernel until then. */
        if (!(hc->flags & WSX__H_STREAMING)) wsx__stream_pause(hc->s);
        return;
    }
    wsx__http_in_consume(&hc->in, off);
    if (!(hc->flags & (WSX__H_OUTWAIT | WSX__H_NEXT))) wsx__stream_resume(hc->s);
}

/* ---- stream events, from the owner ---- */

size_t wsx__http_conn_read(wsx__http_conn *hc, const uint8_t *data, size_t len)
{
    wsx__http_srv *hs = hc->hs;
    if (hc->flags & (WSX__H_STREAMING | WSX__H_ENDED)) return len;
    /* Collect at most one request's worth; what follows an upgrade request is frames,
     * passed back to the owner without being copied. While requests wait (one being
     * answered, the output above its high-water mark, the budget of this pass spent),
     * reading is paused, so what is already read is kept whatever its size. */
    const uint16_t held = WSX__H_BUSY | WSX__H_OUTWAIT | WSX__H_NEXT;
    size_t limit = hs->max_head + hs->max_body_all;
    size_t room = hc->in.len < limit ? limit - hc->in.len : 0;
    size_t take = len;
    if (!(hc->flags & held) && take > room) take = room;
    if (wsx__http_in_append(&hc->in, data, take, SIZE_MAX) < 0) {
        wsx__http_refuse(hc, 503, "out of memory");
        return len;
    }
    if (!(hc->flags & held)) serve(hc, HTTP_BUDGET);
    if (hc->flags & WSX__H_HANDED) {
        free_handed(hc);
        return take;
    }
    if (take == len || (hc->flags & WSX__H_ENDED)) return len;
    if (!(hc->flags & held)) {
        /* More than any acceptable request: let the parser say which limit. */
        wsx__http_msg m;
        const char *why = "request too large";
        int r = wsx__http_parse(&hc->in, hs->max_head, body_limit, hs, &m, &why);
        wsx__http_refuse(hc, r < 0 ? -r : 431, why);
        return len;
    }
    wsx__http_in_append(&hc->in, data + take, len - take, SIZE_MAX);
    return len;
}

void wsx__http_conn_eof(wsx__http_conn *hc)
{
    /* The client has sent all it will (a half-close): answers still queued go out first,
     * then FIN. */
    if (!(hc->flags & (WSX__H_BUSY | WSX__H_STREAMING)) && wsx__stream_queued(hc->s))
        finish(hc);
    else
        wsx__stream_close(hc->s);
}

void wsx__http_conn_drain(wsx__http_conn *hc)
{
    if (hc->flags & WSX__H_STREAMING) {
        if (!(hc->flags & WSX__H_DRAINWAIT) || wsx__stream_queued(hc->s) > hc->hs->low_water)
            return;
        hc->flags &= (uint16_t)~WSX__H_DRAINWAIT;
        wsx__stream_want_drain(hc->s, false);
        wsx_http_req *r = hc->req;
        if (r && r->drain) r->drain(r, r->drain_arg);
        return;
    }
    bool file = hc->req && hc->req->file.fd >= 0;
    if (!file && !(hc->flags & WSX__H_OUTWAIT)) return;
    /* The client is reading: it is not idle, however long the rest takes. */
    deadline(hc, hc->hs->http_ms);
    if (wsx__stream_queued(hc->s) > hc->hs->low_water) return;
    /* This may be the end-of-iteration flush, which goes on as long as the streams it
     * writes ask for more: the next pieces of a file, or the next requests, come from
     * deferred work, at most one pass per connection per iteration. */
    if (!file) {
        hc->flags &= (uint16_t)~WSX__H_OUTWAIT;
        wsx__stream_want_drain(hc->s, false);
    }
    serve_later(hc, false);
}

void wsx__http_conn_timeout(wsx__http_conn *hc)
{
    /* An idle keep-alive connection just ends; a first request that never came is worth a
     * line (slowloris, port scans), and so is a client that stopped reading. */
    if (hc->req && hc->req->file.fd >= 0) {
        hlog(hc, WSX_LOG_INFO, "file response not read for %u ms: closing", hc->hs->http_ms);
    } else if (hc->flags & WSX__H_OUTWAIT) {
        hlog(hc, WSX_LOG_INFO, "responses not read for %u ms: closing", hc->hs->http_ms);
    } else if (!(hc->flags & WSX__H_SERVED)) {
        hc->hs->stats->handshake_timeouts++;
        hlog(hc, WSX_LOG_INFO, "no complete request within %u ms: closing", hc->hs->handshake_ms);
    }
    wsx__stream_close(hc->s);
}

void wsx__http_conn_shutdown(wsx__http_conn *hc)
{
    /* An answer still queued (held requests answered just before the shutdown, such as
     * Engine.IO's "1" to its held GETs) goes out, then FIN. */
    if (hc->flags & WSX__H_ENDED) return;
    if (!(hc->flags & (WSX__H_BUSY | WSX__H_STREAMING)) && wsx__stream_queued(hc->s))
        finish(hc);
    else if (!(hc->flags & WSX__H_BUSY) || (hc->flags & WSX__H_STREAMING))
        wsx__stream_close(hc->s);
}
