/*
 * What the file server and the CORS helpers read of a request: method, path, query and
 * header fields. The one place in src/http/static.c and src/http/cors.c that looks inside
 * the request type, so a change of that type is a change here only.
 */
#ifndef WSX_HTTP_REQ_VIEW_H
#define WSX_HTTP_REQ_VIEW_H

#include <stdbool.h>
#include <string.h>

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

static inline void wsx__req_view_of(const wsx_request *rq, wsx__req_view *v)
{
    *v = (wsx__req_view){
        rq->head->method, rq->head->method_len, rq->path,          rq->path_len,
        rq->query,        rq->query_len,        rq->head->headers, rq->head->n_headers};
}

/* True when the method is `m` (methods are case-sensitive, RFC 9110 9.1). */
static inline bool wsx__req_is(const wsx__req_view *v, const char *m)
{
    return v->method_len == strlen(m) && !memcmp(v->method, m, v->method_len);
}

#endif
