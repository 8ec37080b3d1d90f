/*
 * CORS, the server's side of the Fetch standard's CORS protocol: preflights answered and
 * the headers of normal responses. Stateless: the options are read on each call.
 */
#include <stdio.h>
#include <string.h>

#include "http/req_view.h"
#include "proto/http_priv.h"

#define DEFAULT_METHODS "GET, HEAD, POST"

/* Whether any origin is allowed, and whether this one is listed. */
static bool any_origin(const wsx_cors_opts *o)
{
    for (size_t i = 0; i < o->n_origins; i++)
        if (!strcmp(o->origins[i], "*")) return true;
    return false;
}

bool wsx_cors_origin_allowed(const wsx_cors_opts *o, const char *origin, size_t len)
{
    for (size_t i = 0; i < o->n_origins; i++)
        if (wsx__ascii_ieq(o->origins[i], strlen(o->origins[i]), origin, len)) return true;
    /* "null" is what sandboxed frames and file: pages send: with credentials it must be
     * listed by name, never let in by "*". */
    if (o->credentials && wsx__ascii_ieq(origin, len, "null", 4)) return false;
    return any_origin(o);
}

static const wsx_http_header *field(const wsx__req_view *v, const char *name)
{
    return wsx_http_header_get(v->headers, v->n_headers, name);
}

bool wsx_cors_is_preflight(const wsx_http_request *head)
{
    if (!head) return false;
    wsx__req_view v;
    wsx__req_view_of_head(head, &v);
    return wsx__req_is(&v, "OPTIONS") && field(&v, "origin") &&
           field(&v, "access-control-request-method");
}

/* Whether the comma-separated list (NUL-terminated) holds elem[0..n); case-sensitive for
 * methods (RFC 9110 9.1), not for header names. */
static bool list_has(const char *list, const char *elem, size_t n, bool nocase)
{
    const char *p = list, *end = list + strlen(list), *e;
    size_t el;
    while (wsx_http_list_next(&p, end, &e, &el))
        if (nocase ? wsx__ascii_ieq(e, el, elem, n) : (el == n && !memcmp(e, elem, n))) return true;
    return false;
}

static bool is_star(const char *s)
{
    return s && !strcmp(s, "*");
}

/* Why a preflight is refused, or NULL when it is accepted. */
static const char *refusal(const wsx_cors_opts *o, const wsx_http_header *origin,
                           const wsx_http_header *method, const wsx_http_header *hdrs)
{
    if (!wsx_cors_origin_allowed(o, origin->value, origin->value_len))
        return "403 Forbidden\nCORS: origin not allowed\n";
    const char *m = method->value;
    size_t ml = method->value_len;
    /* The Fetch standard lets the CORS-safelisted methods through whatever is listed. */
    bool safe = (ml == 3 && !memcmp(m, "GET", 3)) || (ml == 4 && !memcmp(m, "HEAD", 4)) ||
                (ml == 4 && !memcmp(m, "POST", 4));
    const char *methods = o->methods ? o->methods : DEFAULT_METHODS;
    if (!safe && !is_star(methods) && !list_has(methods, m, ml, false))
        return "403 Forbidden\nCORS: method not allowed\n";
    if (hdrs && !is_star(o->headers)) {
        const char *p = hdrs->value, *end = hdrs->value + hdrs->value_len, *e;
        size_t el;
        while (wsx_http_list_next(&p, end, &e, &el))
            if (!o->headers || !list_has(o->headers, e, el, true))
                return "403 Forbidden\nCORS: header not allowed\n";
    }
    return NULL;
}

int wsx_cors_preflight(const wsx_cors_opts *o, wsx_http_req *r)
{
    if (!r) return WSX_EINVAL;
    wsx__req_view v;
    wsx__req_view_of(r, &v);
    const wsx_http_header *origin = field(&v, "origin");
    const wsx_http_header *method = field(&v, "access-control-request-method");
    const wsx_http_header *hdrs = field(&v, "access-control-request-headers");
    if (!o || !wsx__req_is(&v, "OPTIONS") || !origin || !method) return WSX_EINVAL;
    wsx_http_header h[8];
    size_t n = 0;
    /* The answer depends on all three request fields: a cache must key on them. */
    static const char vary[] = "Origin, Access-Control-Request-Method, "
                               "Access-Control-Request-Headers";
    h[n++] = (wsx_http_header){"Vary", 4, vary, sizeof vary - 1};
    const char *why = refusal(o, origin, method, hdrs);
    int rc;
    if (why) {
        h[n++] = (wsx_http_header){"Content-Type", 12, "text/plain; charset=utf-8", 25};
        rc = wsx_http_respond(r, 403, h, n, why, strlen(why));
        return rc < 0 ? rc : 403;
    }
    bool star = any_origin(o) && !o->credentials;
    h[n++] = star ? (wsx_http_header){"Access-Control-Allow-Origin", 27, "*", 1}
                  : (wsx_http_header){"Access-Control-Allow-Origin", 27, origin->value,
                                      origin->value_len};
    if (o->credentials)
        h[n++] = (wsx_http_header){"Access-Control-Allow-Credentials", 32, "true", 4};
    /* With credentials a "*" is taken literally by browsers: name what was asked for. */
    const char *methods = o->methods ? o->methods : DEFAULT_METHODS;
    if (is_star(methods) && o->credentials)
        h[n++] =
            (wsx_http_header){"Access-Control-Allow-Methods", 28, method->value, method->value_len};
    else
        h[n++] = (wsx_http_header){"Access-Control-Allow-Methods", 28, methods, strlen(methods)};
    if (hdrs && is_star(o->headers))
        h[n++] =
            (wsx_http_header){"Access-Control-Allow-Headers", 28, hdrs->value, hdrs->value_len};
    else if (hdrs && o->headers) /* (without a list, only an empty request list gets here) */
        h[n++] =
            (wsx_http_header){"Access-Control-Allow-Headers", 28, o->headers, strlen(o->headers)};
    char age[16];
    if (o->max_age) {
        int al = snprintf(age, sizeof age, "%u", (unsigned)o->max_age);
        h[n++] = (wsx_http_header){"Access-Control-Max-Age", 22, age, (size_t)al};
    }
    rc = wsx_http_respond(r, 204, h, n, NULL, 0);
    return rc < 0 ? rc : 204;
}

size_t wsx_cors_headers(const wsx_cors_opts *o, const wsx_http_request *head,
                        wsx_http_header out[WSX_CORS_MAX_HEADERS])
{
    wsx__req_view v;
    wsx__req_view_of_head(head, &v);
    size_t n = 0;
    bool star = any_origin(o) && !o->credentials;
    if (!star) out[n++] = (wsx_http_header){"Vary", 4, "Origin", 6};
    const wsx_http_header *origin = field(&v, "origin");
    if (!origin || !wsx_cors_origin_allowed(o, origin->value, origin->value_len)) return n;
    out[n++] = star ? (wsx_http_header){"Access-Control-Allow-Origin", 27, "*", 1}
                    : (wsx_http_header){"Access-Control-Allow-Origin", 27, origin->value,
                                        origin->value_len};
    if (o->credentials)
        out[n++] = (wsx_http_header){"Access-Control-Allow-Credentials", 32, "true", 4};
    if (o->expose && *o->expose)
        out[n++] =
            (wsx_http_header){"Access-Control-Expose-Headers", 29, o->expose, strlen(o->expose)};
    return n;
}
