/*
 * `wsx serve`: the HTTP side. The routes of each server (/ws, /healthz, /api/auth, /metrics,
 * /sse) and the default route (the page: the --static directory or the embedded one), the
 * origin and token checks.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve.h"

/* Finds key in a query string and decodes its value (form encoding: '+' is a space; a
 * broken escape is kept as it is, as browsers do) into out as a C string, cut to cap - 1. */
bool serve_query_get(const char *q, size_t qlen, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = q, *end = q + qlen;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        if ((size_t)(pe - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
            const char *v = p + klen + 1;
            ptrdiff_t n = wsx_percent_decode(v, (size_t)(pe - v), WSX_PCT_PLUS | WSX_PCT_LENIENT,
                                             out, cap - 1);
            out[n < 0 ? cap - 1 : (size_t)n] = '\0'; /* WSX_ENOSPC: the first cap - 1 bytes */
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

bool serve_check_origin(const wsx_http_req *rq)
{
    if (!g_serve.n_origins) return true;
    const wsx_http_header *h = wsx_http_req_header(rq, "origin");
    /* Only browsers send Origin; cross-site WebSocket hijacking needs a browser. */
    if (!h) return true;
    wsx_cors_opts o = {.origins = g_serve.origins, .n_origins = g_serve.n_origins};
    return wsx_cors_origin_allowed(&o, h->value, h->value_len);
}

/* With --token: whether rq carries it (compared in constant time). */
bool serve_check_token(const wsx_http_req *rq)
{
    return !g_serve.token || serve_has_token(rq, g_serve.token);
}

static int on_upgrade(wsx_server *srv, const wsx_http_req *rq, void **conn_user, void *user)
{
    (void)srv;
    (void)user;
    (void)conn_user;
    if (!serve_check_origin(rq)) {
        tool_field f[] = {TOOL_FS("peer", wsx_http_req_peer(rq)), TOOL_FS("path", "/ws"),
                          TOOL_FN("status", 403)};
        tool_log_fields(WSX_LOG_INFO, f, 3, "%s refused: origin not allowed",
                        wsx_http_req_peer(rq));
        return 403;
    }
    if (!serve_check_token(rq)) {
        tool_field f[] = {TOOL_FS("peer", wsx_http_req_peer(rq)), TOOL_FS("path", "/ws"),
                          TOOL_FN("status", 401)};
        tool_log_fields(WSX_LOG_INFO, f, 3, "%s refused: missing or wrong token",
                        wsx_http_req_peer(rq));
        return 401;
    }
    return 0;
}

void serve_respond_text(wsx_http_req *r, int status, const char *ctype, const char *body)
{
    wsx_http_header h[] = {{"Content-Type", 12, ctype, strlen(ctype)}};
    wsx_http_respond(r, status, h, 1, body, strlen(body));
}

/* A file of --static or of the embedded page, with the CORS headers when --cors is set. */
static void serve_files(wsx_http_req *r)
{
    wsx_http_header h[WSX_CORS_MAX_HEADERS];
    size_t n =
        g_serve.cors.n_origins ? wsx_cors_headers(&g_serve.cors, wsx_http_req_head(r), h) : 0;
    wsx_static_serve(g_serve.files, r, h, n);
}

/* Whether rq carries `token`, as ?token= or as Authorization: Bearer. The comparison takes
 * the same time wherever the first difference is. */
bool serve_has_token(const wsx_http_req *rq, const char *token)
{
    size_t tl = strlen(token);
    const char *got = NULL;
    size_t gl = 0;
    char *q = NULL;
    const char *query;
    size_t ql;
    const wsx_http_header *h = wsx_http_req_header(rq, "authorization");
    if (h && h->value_len > 7 && !strncasecmp(h->value, "Bearer ", 7)) {
        got = h->value + 7;
        gl = h->value_len - 7;
    } else if ((query = wsx_http_req_query(rq, &ql)) && (q = malloc(ql + 1)) &&
               serve_query_get(query, ql, "token", q, ql + 1)) {
        got = q;
        gl = strlen(q);
    }
    unsigned char diff = got && gl == tl ? 0 : 1;
    for (size_t i = 0; got && gl == tl && i < tl; i++)
        diff |= (unsigned char)(got[i] ^ token[i]);
    free(q);
    return diff == 0;
}

static void on_healthz(wsx_http_req *r, void *user)
{
    (void)user;
    /* Still 200: the node serves its own clients while the Redis relay reconnects. */
    serve_respond_text(r, 200, "text/plain; charset=utf-8",
                       serve_cluster_degraded() ? "degraded: redis relay down\n" : "ok\n");
}

/* The page's probe (docs/chat-protocol.md): a browser cannot read the status of a refused
 * WebSocket upgrade, so it asks here first whether its token (or none) would be let in, and
 * tells "needs a token" from "server down". */
static void on_auth(wsx_http_req *r, void *user)
{
    (void)user;
    if (serve_check_token(r)) {
        wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                               {"Cache-Control", 13, "no-store", 8}};
        wsx_http_respond(r, 200, h, 2, "ok\n", 3);
        return;
    }
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                           {"Cache-Control", 13, "no-store", 8},
                           {"WWW-Authenticate", 16, "Bearer realm=\"chat\"", 19}};
    static const char body[] = "401 Unauthorized\nthis server needs an access token\n";
    tool_field f[] = {TOOL_FS("peer", wsx_http_req_peer(r)), TOOL_FS("path", "/api/auth"),
                      TOOL_FN("status", 401)};
    tool_log_fields(WSX_LOG_INFO, f, 3, "%s /api/auth: missing or wrong token",
                    wsx_http_req_peer(r));
    wsx_http_respond(r, 401, h, 3, body, sizeof body - 1);
}

static bool is_get(const wsx_http_req *r)
{
    size_t ml;
    const char *method = wsx_http_req_method(r, &ml);
    return (ml == 3 && !memcmp(method, "GET", 3)) || (ml == 4 && !memcmp(method, "HEAD", 4));
}

static void method_not_allowed(wsx_http_req *r)
{
    wsx_http_header h[] = {{"Allow", 5, "GET, HEAD", 9}, {"Content-Type", 12, "text/plain", 10}};
    wsx_http_respond(r, 405, h, 2, "405 Method Not Allowed\n", 23);
}

/* /ws without an Upgrade. */
static void on_ws_http(wsx_http_req *r, void *user)
{
    (void)user;
    if (!is_get(r)) return method_not_allowed(r);
    /* RFC 9110 15.5.22: a 426 names the protocol to upgrade to. */
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain; charset=utf-8", 25},
                           {"Upgrade", 7, "websocket", 9},
                           {"Sec-WebSocket-Version", 21, "13", 2}};
    static const char body[] = "426 Upgrade Required\nthis is the WebSocket endpoint\n";
    wsx_http_respond(r, 426, h, 3, body, sizeof body - 1);
}

/* Every other path (the default route, also for targets that are not paths, "*"): the page.
 * It decides about methods itself, after its 400 for a bad path. The path is decoded first,
 * and one that decodes to a route's path ("//healthz", "/%68ealthz") goes to that route, as
 * routes match undecoded paths. */
void serve_on_page(wsx_http_req *r, void *user)
{
    size_t pl;
    const char *rpath = wsx_http_req_path(r, &pl);
    if (g_serve.cors.n_origins && wsx_cors_is_preflight(wsx_http_req_head(r))) {
        wsx_cors_preflight(&g_serve.cors, r);
        return;
    }
    char path[1024];
    if (wsx_http_path_clean(rpath, pl, path, sizeof path) < 0) {
        serve_respond_text(r, 400, "text/plain; charset=utf-8", "400 bad path\n");
        return;
    }
    if (!is_get(r)) return method_not_allowed(r);
    if (!strcmp(path, "/healthz")) return on_healthz(r, user);
    if (!strcmp(path, "/api/auth")) return on_auth(r, user);
    if (!strcmp(path, "/metrics")) return serve_on_metrics(r, user);
    if (!strcmp(path, "/sse")) return serve_on_sse(r, user);
    if (!strcmp(path, "/ws")) return on_ws_http(r, user);
    serve_files(r);
}

/* The routes of one server (every loop has its own servers); the page is its default
 * route (on_http). */
bool serve_add_routes(wsx_server *srv)
{
    static const struct {
        const char *path;
        wsx_http_cb cb;
    } http[] = {{"/healthz", on_healthz},
                {"/api/auth", on_auth},
                {"/metrics", serve_on_metrics},
                {"/sse", serve_on_sse}};
    wsx_ws_route_opts wo = {.on_upgrade = on_upgrade,
                            .on_open = serve_ws_open,
                            .on_message = serve_ws_message,
                            .on_close = serve_ws_close,
                            .on_request = on_ws_http};
    if (wsx_server_ws_route(srv, "/ws", &wo) < 0 || !serve_add_post_route(srv)) return false;
    for (size_t i = 0; i < sizeof http / sizeof http[0]; i++) {
        wsx_route_opts ro = {.methods = "GET, HEAD", .on_request = http[i].cb};
        if (wsx_server_route(srv, http[i].path, &ro) < 0) return false;
    }
    return true;
}
