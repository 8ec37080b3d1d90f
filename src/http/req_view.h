/*
 * What the file server and the CORS helpers read of a request: method, path, query and
 * header fields. The one place in src/http/static.c and src/http/cors.c that looks inside
 * the request type, so a change of that type is a change here only.
 */
#ifndef WSX_HTTP_REQ_VIEW_H
#define WSX_HTTP_REQ_VIEW_H

#include <stdbool.h>
#include <string.h>

#include "wsx/proto.h"

#include "wsx.h"

typedef struct wsx__req_view {
    const char *method; /* borrowed, not NUL-terminated */
    size_t method_len;
    const char *path; /* the target up to '?', raw (not decoded) */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
    const wsx_http_header *headers;
    size_t n_headers;
} wsx__req_view;

/* The view of a request head alone (the sans-IO parts: CORS headers, preflight detection). */
static inline void wsx__req_view_of_head(const wsx_http_request *h, wsx__req_view *v)
{
    const char *q = h->target_len ? memchr(h->target, '?', h->target_len) : NULL;
    size_t pl = q ? (size_t)(q - h->target) : h->target_len;
    *v = (wsx__req_view){h->method,  h->method_len,    h->target,
                         pl,         q ? q + 1 : NULL, q ? h->target_len - pl - 1 : 0,
                         h->headers, h->n_headers};
}

static inline void wsx__req_view_of(const wsx_http_req *r, wsx__req_view *v)
{
    wsx__req_view_of_head(wsx_http_req_head(r), v);
    v->path = wsx_http_req_path(r, &v->path_len);
    v->query = wsx_http_req_query(r, &v->query_len);
}

/* True when the method is `m` (methods are case-sensitive, RFC 9110 9.1). */
static inline bool wsx__req_is(const wsx__req_view *v, const char *m)
{
    return v->method_len == strlen(m) && !memcmp(v->method, m, v->method_len);
}

#endif
