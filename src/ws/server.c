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
    if (c->http) {
        wsx__http_conn *hc = c->http;
        c->http = NULL;
        wsx__http_conn_closed(hc);
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
    unlink_conn(srv, c);
    free(c);
    if (srv->n_all == 0) wsx__timer_stop(srv->loop, &srv->sweep);
    if (srv->shutting_down && srv->n_all == 0) wsx__timer_stop(srv->loop, &srv->shutdown_timer);
}

/* ---- the upgrade ---- */

/* on_upgrade accepted, but no on_open (and so no on_close) will follow: the application
 * gets its conn_user back here, or it would leak. */
static void upgrade_failed(wsx_server *srv, wsx_upgrade_cb on_upgrade,
                           wsx_upgrade_failed_cb on_failed, void *cu, void *user)
{
    if (on_upgrade && on_failed) on_failed(srv, cu, user);
}

static wsx_conn *conn_of(wsx__http_conn *hc)
{
    return wsx__container_of(hc->s, wsx_conn, stream);
}

/* The HTTP layer's hand-off: an Upgrade request for a WebSocket route. */
static void upgrade(wsx__http_conn *hc, wsx_http_req *r, unsigned ws, uint8_t *rest, size_t len)
{
    wsx_conn *c = conn_of(hc);
    wsx_server *srv = c->srv;
    const wsx_server_opts *o = &srv->opts;
    const wsx__http_msg *m = &r->m;
    wsx_upgrade_cb on_upgrade = o->on_upgrade;
    wsx_upgrade_failed_cb on_failed = o->on_upgrade_failed;
    void *user = o->user;
    if (ws) {
        const wsx__ws_route *rt = &srv->ws_routes[ws - 1];
        on_upgrade = rt->on_upgrade;
        on_failed = rt->on_upgrade_failed;
        user = rt->cb.user;
    }
    wsx_handshake_server_opts ho = {o->subprotocols, o->n_subprotocols};
    wsx_handshake_server hs;
    if (wsx_handshake_server_check(&m->req, &ho, &hs) < 0) {
        wsx__http_refuse(hc, hs.status, hs.error);
        return;
    }
    if (srv->shutting_down) {
        wsx__http_refuse_busy(hc, "server is shutting down");
        return;
    }
    if (srv->n_ws >= o->max_connections) {
        wsx__http_refuse_busy(hc, "too many connections (max_connections)");
        return;
    }
    void *cu = NULL;
    if (on_upgrade) {
        int st = on_upgrade(srv, r, &cu, user);
        if (st != 0) {
            wsx__http_refuse(hc, st >= 400 && st <= 599 ? st : 403, "refused by the application");
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
        upgrade_failed(srv, on_upgrade, on_failed, cu, user);
        wsx__http_refuse(hc, 500, "could not send the handshake response");
        return;
    }
    c->subprotocol = (int8_t)hs.subprotocol;
    /* From here the stream is the WebSocket's, whatever happens. */
    wsx__http_conn_handed_over(hc);
    c->http = NULL;
    if (deflate && wsx__conn_start_deflate(c, &pp) < 0) {
        /* The 101 promised compression: without memory for it, end the connection. */
        upgrade_failed(srv, on_upgrade, on_failed, cu, user);
        c->state = WSX__CLOSE_WAIT;
        wsx__stream_close(&c->stream);
        return;
    }
    c->user = cu;
    c->route = (uint8_t)ws;
    c->flags |= WSX__F_COUNTED;
    srv->n_ws++;
    srv->stats.upgrades++;
    /* Reading may have been paused while earlier pipelined requests were served. */
    wsx__stream_resume(&c->stream);
    /* The bytes after the head are WebSocket frames already. */
    wsx__conn_open(c, rest, len);
}

static void http_deadline(wsx__http_conn *hc, uint32_t ms)
{
    wsx__conn_deadline(conn_of(hc), ms);
}

__attribute__((format(printf, 3, 0))) static void http_vlog(wsx__http_conn *hc, int level,
                                                            const char *fmt, va_list ap)
{
    wsx__conn_vlog(conn_of(hc), level, fmt, ap);
}

static void http_ended(wsx__http_conn *hc)
{
    wsx_conn *c = conn_of(hc);
    c->state = WSX__CLOSE_WAIT;
    wsx__conn_deadline(c, wsx__cfg_of(c)->close_ms);
}

static void http_request_seen(wsx__http_conn *hc)
{
    wsx_conn *c = conn_of(hc);
    if (wsx__admit_handshaken(c->srv->admit, wsx__stream_fd(&c->stream))) c->srv->n_pending--;
}

static const wsx__http_owner http_owner = {
    .deadline = http_deadline,
    .vlog = http_vlog,
    .ended = http_ended,
    .request_seen = http_request_seen,
    .upgrade = upgrade,
};

/* ---- stream callbacks ---- */

static void on_read(wsx__stream *s, const uint8_t *data, size_t len)
{
    wsx_conn *c = wsx__container_of(s, wsx_conn, stream);
    if (c->state == WSX__HTTP) {
        size_t used = wsx__http_conn_read(c->http, data, len);
        data += used;
        len -= used;
        if (!len || (c->state != WSX__OPEN && c->state != WSX__CLOSING)) return;
    }
    /* The loop's receive buffer is scratch space for its owner until we return: frames are
     * unmasked in place there. */
    wsx__conn_read(c, (uint8_t *)data, len);
}

static void on_eof(wsx__stream *s)
{
    wsx_conn *c = wsx__container_of(s, wsx_conn, stream);
    if (c->state == WSX__HTTP)
        wsx__http_conn_eof(c->http);
    else
        wsx__conn_eof(c);
}

static void on_drain(wsx__stream *s)
{
    wsx_conn *c = wsx__container_of(s, wsx_conn, stream);
    if (c->state == WSX__HTTP)
        wsx__http_conn_drain(c->http);
    else
        wsx__conn_drained(c);
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
        wsx__http_conn_timeout(c->http);
        return;
    }
    if (c->state == WSX__CLOSE_WAIT && !(c->flags & WSX__F_OPENED)) {
        wsx__stream_close(&c->stream);
        return;
    }
    wsx__conn_timer(c);
}

/* Turns a connection away at accept: a 503 where a response is possible (plain TCP; a TLS
 * client would need a handshake first), then close. What the client already sent is read
 * first, so that the close does not reset the connection before the 503 is read. */
static void send_503(int fd)
{
    char buf[512];
    for (int i = 0; i < 16 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++) {
    }
    static const wsx_http_header retry = {"Retry-After", 11, "5", 1};
    ptrdiff_t n = wsx_http_write_error(503, "503 Service Unavailable\nserver busy", &retry, 1, buf,
                                       sizeof buf);
    if (n > 0) (void)send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
}

static void turn_away(wsx_server *srv, int fd)
{
    if (!srv->tls) send_503(fd);
    close(fd);
}

static void log_pending_per_ip(wsx_server *srv, const char *p)
{
    srv->stats.refused_handshakes++;
    wsx__log(&srv->cfg, WSX_LOG_WARN,
             "%s refused (503): %zu handshakes in progress from this address "
             "(max_handshakes_per_ip)",
             p, srv->opts.max_handshakes_per_ip);
}

/* A connection on probation (accepted past its address's handshake limit, wsx__admit_add_grace)
 * whose grace ran out before its first request came: a handshake in progress now if its
 * address has room, else turned away as it would have been at accept. Nothing was written to
 * it yet, so the 503 goes straight to the socket (plain TCP only, as at accept). */
static void grace_check(wsx_server *srv, wsx_conn *c, uint32_t now)
{
    int fd = wsx__stream_fd(&c->stream);
    if (c->state != WSX__HTTP || wsx__admit_grace_due(srv->admit, fd, now, WSX__HANDSHAKE_GRACE_MS,
                                                      srv->opts.max_handshakes_per_ip) == 0)
        return;
    char p[64];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        wsx__addr_format((struct sockaddr *)&ss, p, sizeof p) < 0)
        snprintf(p, sizeof p, "-");
    log_pending_per_ip(srv, p);
    if (!srv->tls) send_503(fd);
    wsx__stream_close(&c->stream);
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
        grace_check(srv, c, now);
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
    /* Not refused yet: its address's handshakes may all be requests accepted in this burst
     * and not read yet (docs/limits.md, "a burst from one address"). */
    if (arc == WSX__ADMIT_PENDING_PER_IP)
        arc = wsx__admit_add_grace(srv->admit, fd, peer, o->max_per_ip, wsx__now32(srv->loop));
    if (arc != 0) {
        if (wsx__addr_format(peer, p, sizeof p) < 0) snprintf(p, sizeof p, "-");
        if (arc == WSX__ADMIT_PER_IP) {
            srv->stats.refused_per_ip++;
            wsx__log(&srv->cfg, WSX_LOG_WARN,
                     "%s refused (503): %zu connections open from this address (max_per_ip)", p,
                     o->max_per_ip);
        } else if (arc == WSX__ADMIT_PENDING_PER_IP) {
            log_pending_per_ip(srv, p);
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
    if (wsx__http_conn_new(&srv->http, &c->stream, &c->http) < 0) {
        wsx__admit_remove(srv->admit, fd);
        close(fd);
        free(c);
        return;
    }
    int rc = srv->tls ? wsx__stream_init_tls(srv->loop, &c->stream, fd, &server_vt, srv->tls, NULL)
                      : wsx__stream_init(srv->loop, &c->stream, fd, &server_vt);
    if (rc < 0) {
        /* The stream closed fd; its number is not reused before this returns. */
        wsx__admit_remove(srv->admit, fd);
        wsx__http_conn_closed(c->http);
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

static int server_start(wsx_loop *loop, const wsx_server_opts *opts, wsx_server **out,
                        wsx_error *error)
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
    cfg->on_conn_log = o->on_conn_log;
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
    wsx__http_srv *hs = &srv->http;
    wsx__http_srv_init(hs, loop, &http_owner);
    hs->server = srv;
    hs->stats = &srv->stats;
    hs->max_head = cfg->max_head;
    hs->max_body = hs->max_body_all = o->max_body;
    hs->high_water = cfg->high_water;
    hs->low_water = cfg->low_water;
    hs->hard_limit = cfg->hard_limit;
    hs->http_ms = cfg->http_ms;
    hs->handshake_ms = cfg->handshake_ms;
    hs->on_http = o->on_http;
    hs->on_access = o->on_access;
    hs->user = o->user;
    hs->ws_path = o->path;

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
            free(srv);
            return wsx__error(error, trc, err);
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

int wsx_server_start(wsx_loop *loop, const wsx_server_opts *opts, wsx_server **out, wsx_error *err)
{
    wsx__error(err, 0, NULL);
    int rc = server_start(loop, opts, out, err);
    /* Failures without more to say than their code leave only the code. */
    if (rc < 0 && err && !err->code) err->code = rc;
    return rc;
}

int wsx_server_route(wsx_server *s, const char *path, const wsx_route_opts *o)
{
    if (!s || !o) return WSX_EINVAL;
    return wsx__http_route_add(&s->http, path, o->methods, o->max_body, o->on_request, o->user, 0);
}

int wsx_server_ws_route(wsx_server *s, const char *path, const wsx_ws_route_opts *o)
{
    if (!s || !o || !path) return WSX_EINVAL;
    /* A connection keeps its route's number in one byte. */
    if (s->n_ws_routes == UINT8_MAX) return WSX_ELIMIT;
    wsx__ws_route *a = realloc(s->ws_routes, (s->n_ws_routes + 1) * sizeof *a);
    if (!a) return WSX_ENOMEM;
    s->ws_routes = a;
    unsigned n = (unsigned)s->n_ws_routes + 1;
    int rc = wsx__http_route_add(&s->http, path, NULL, o->max_body, o->on_request, o->user, n);
    if (rc < 0) return rc;
    s->http.routes[s->http.n_routes - 1].oversize = o->oversize_to_handler;
    a[n - 1] = (wsx__ws_route){
        .cb = {o->on_open, o->on_message, o->on_close, o->on_drain, o->user},
        .on_upgrade = o->on_upgrade,
        .on_upgrade_failed = o->on_upgrade_failed,
    };
    s->n_ws_routes = n;
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
    s->http.shutting_down = true;
    if (s->listener) {
        wsx__listener_close(s->listener);
        s->listener = NULL;
    }
    for (wsx_conn *c = s->conns; c; c = c->next) {
        if (c->state == WSX__OPEN)
            wsx__conn_start_close(c, WSX_CLOSE_GOING_AWAY, "server shutting down", 20);
        else if (c->state == WSX__HTTP)
            wsx__http_conn_shutdown(c->http);
    }
    if (s->n_all) {
        s->shutdown_timer.cb = on_shutdown_timer;
        wsx__timer_start(s->loop, &s->shutdown_timer, timeout_ms ? timeout_ms : 5000);
    }
}

int wsx_server_reload_tls(wsx_server *s, wsx_error *error)
{
    if (!s || !s->tls) return wsx__error(error, WSX_EINVAL, "not a TLS server");
    char err[400];
    int rc = wsx__tls_ctx_reload(s->tls, err, sizeof err);
    return wsx__error(error, rc, rc < 0 ? err : NULL);
}

void wsx_server_free(wsx_server *s)
{
    if (!s) return;
    wsx__loop_remove_budget_hook(s->loop, &s->budget);
    wsx__timer_stop(s->loop, &s->sweep);
    wsx__http_srv_free(&s->http);
    free(s->ws_routes);
    wsx__tls_ctx_free(s->tls);
    wsx_pmd_buf_free(&s->zscratch);
    for (size_t i = 0; i < 16; i++) {
        if (!s->shared_pmd[i]) continue;
        wsx_pmd_free(s->shared_pmd[i]);
        free(s->shared_pmd[i]);
    }
    if (s->listener) wsx__listener_close(s->listener);
    wsx__timer_stop(s->loop, &s->shutdown_timer);
    wsx__log_flush(&s->cfg, true);
    wsx__log_free(&s->cfg);
    wsx__admit_free(s->admit);
    free(s);
}

/* wsx__cfg_of() relies on it. */
_Static_assert(offsetof(struct wsx_server, cfg) == 0, "wsx__cfg must come first in wsx_server");
