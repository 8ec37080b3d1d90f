/*
 * HTTP/1.x message heads (RFC 9112) for the WebSocket opening handshake: a stateless parser
 * that borrows from the input, token-list helpers (RFC 9110 5.6.1) and plain error responses.
 */
#include <stdio.h>
#include <string.h>

#include "http_priv.h"
#include "wsx/proto.h"

/* ---- character classes and small helpers ---------------------------------------------- */

bool wsx__http_is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool wsx__http_is_token(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!wsx__http_is_tchar((unsigned char)s[i])) return false;
    return true;
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

bool wsx__ascii_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) return false;
    return true;
}

bool wsx__ascii_iprefix(const char *s, size_t n, const char *prefix)
{
    size_t m = strlen(prefix);
    return n >= m && wsx__ascii_ieq(s, m, prefix, m);
}

bool wsx__http_field_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return false;
    return true;
}

bool wsx__http_extras_valid(const wsx_http_header *extra, size_t n_extra)
{
    if (n_extra && !extra) return false;
    for (size_t i = 0; i < n_extra; i++) {
        if (!extra[i].name || !wsx__http_is_token(extra[i].name, extra[i].name_len)) return false;
        if (extra[i].value_len && !extra[i].value) return false;
        if (!wsx__http_field_safe(extra[i].value, extra[i].value_len)) return false;
    }
    return true;
}

/* ---- bounded writer ------------------------------------------------------------------- */

void wsx__out_init(wsx__out *o, char *buf, size_t cap)
{
    o->buf = buf;
    o->cap = buf ? cap : 0;
    o->len = 0;
    o->full = false;
}

void wsx__out_mem(wsx__out *o, const char *s, size_t n)
{
    if (o->full) return;
    if (n > o->cap - o->len) {
        o->full = true;
        return;
    }
    if (n) memcpy(o->buf + o->len, s, n);
    o->len += n;
}

void wsx__out_str(wsx__out *o, const char *s)
{
    wsx__out_mem(o, s, strlen(s));
}

void wsx__out_uint(wsx__out *o, unsigned long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lu", v);
    wsx__out_mem(o, tmp, (size_t)n);
}

void wsx__out_field(wsx__out *o, const char *name, size_t name_len, const char *value,
                    size_t value_len)
{
    wsx__out_mem(o, name, name_len);
    wsx__out_mem(o, ": ", 2);
    wsx__out_mem(o, value, value_len);
    wsx__out_mem(o, "\r\n", 2);
}

void wsx__out_extras(wsx__out *o, const wsx_http_header *extra, size_t n_extra)
{
    for (size_t i = 0; i < n_extra; i++)
        wsx__out_field(o, extra[i].name, extra[i].name_len, extra[i].value, extra[i].value_len);
}

void wsx__out_head(wsx__out *o, int status, const wsx_http_header *headers, size_t n)
{
    wsx__out_str(o, "HTTP/1.1 ");
    wsx__out_uint(o, (unsigned long)status);
    wsx__out_str(o, " ");
    wsx__out_str(o, wsx_http_status_text(status));
    wsx__out_str(o, "\r\n");
    wsx__out_extras(o, headers, n);
}

size_t wsx__out_head_size(int status, const wsx_http_header *headers, size_t n)
{
    (void)status; /* statuses are 3 digits (wsx_http_write_error checks) or the caller's */
    size_t need = 9 + 20 + 1 + strlen(wsx_http_status_text(status)) + 2;
    for (size_t i = 0; i < n; i++)
        need += headers[i].name_len + headers[i].value_len + 4;
    return need;
}

ptrdiff_t wsx__out_end(wsx__out *o)
{
    if (o->full) return WSX_ENOSPC;
    if (o->len < o->cap) o->buf[o->len] = '\0';
    return (ptrdiff_t)o->len;
}

/* ---- head parser ---------------------------------------------------------------------- */

/*
 * The parser walks [p, end) once. Every step returns 0, WSX_EAGAIN when it reaches `end`
 * before it can decide, or WSX_EHTTP as soon as a byte cannot belong to a valid head; so
 * a prefix of a valid head always gives WSX_EAGAIN and garbage fails at its first byte.
 * Nothing at or beyond `end` is ever read.
 */
typedef struct cursor {
    const char *p;
    const char *end;
} cursor;

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9112 2.2: a line ends in CRLF; a bare LF is accepted, a bare CR is not. */
static int parse_eol(cursor *c)
{
    if (c->p == c->end) return WSX_EAGAIN;
    if (*c->p == '\n') {
        c->p++;
        return 0;
    }
    if (*c->p != '\r') return WSX_EHTTP;
    if (c->end - c->p < 2) return WSX_EAGAIN;
    if (c->p[1] != '\n') return WSX_EHTTP;
    c->p += 2;
    return 0;
}

/* RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive; only 1.x here. */
static int parse_version(cursor *c, int *major, int *minor)
{
    static const char prefix[] = "HTTP/1.";
    for (size_t i = 0; i < sizeof prefix - 1; i++) {
        if (c->p == c->end) return WSX_EAGAIN;
        if (*c->p != prefix[i]) return WSX_EHTTP;
        c->p++;
    }
    if (c->p == c->end) return WSX_EAGAIN;
    if (*c->p < '0' || *c->p > '9') return WSX_EHTTP;
    *major = 1;
    *minor = *c->p - '0';
    c->p++;
    return 0;
}

/* Consumes 1*tchar ended by `stop`; stores the token. */
static int parse_token(cursor *c, char stop, const char **tok, size_t *tok_len)
{
    const char *s = c->p;
    while (c->p < c->end && wsx__http_is_tchar((unsigned char)*c->p))
        c->p++;
    if (c->p == c->end) return WSX_EAGAIN;
    if (c->p == s || *c->p != stop) return WSX_EHTTP;
    *tok = s;
    *tok_len = (size_t)(c->p - s);
    c->p++;
    return 0;
}

/*
 * RFC 9112 5: field-line = field-name ":" OWS field-value OWS. A line that begins with
 * whitespace is obs-fold (5.2) or whitespace before the first field (2.2); both are
 * rejected. A space before the colon is an error (5.1).
 */
static int parse_fields(cursor *c, wsx_http_header *headers, size_t max_headers, size_t *n)
{
    for (;;) {
        if (c->p == c->end) return WSX_EAGAIN;
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '\r' || ch == '\n') return parse_eol(c);
        if (!wsx__http_is_tchar(ch)) return WSX_EHTTP;
        if (*n == max_headers) return WSX_ETOOMANYHEADERS;

        wsx_http_header h;
        int rc = parse_token(c, ':', &h.name, &h.name_len);
        if (rc) return rc;
        while (c->p < c->end && is_ws(*c->p))
            c->p++;
        const char *vs = c->p, *ve = c->p;
        for (;;) {
            if (c->p == c->end) return WSX_EAGAIN;
            ch = (unsigned char)*c->p;
            if (ch == '\r' || ch == '\n') break;
            c->p++;
            if (is_ws((char)ch)) continue;
            /* RFC 9110 5.5: field values hold no control characters other than HTAB. */
            if (is_ctl(ch)) return WSX_EHTTP;
            ve = c->p;
        }
        rc = parse_eol(c);
        if (rc) return rc;
        h.value = vs;
        h.value_len = (size_t)(ve - vs);
        headers[(*n)++] = h;
    }
}

/* RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line. */
static int skip_empty_lines(cursor *c)
{
    while (c->p < c->end && (*c->p == '\r' || *c->p == '\n')) {
        int rc = parse_eol(c);
        if (rc) return rc;
    }
    return 0;
}

/* RFC 9112 3: request-line = method SP request-target SP HTTP-version. */
static int parse_request_line(cursor *c, wsx_http_request *req)
{
    int rc = skip_empty_lines(c);
    if (rc) return rc;
    rc = parse_token(c, ' ', &req->method, &req->method_len);
    if (rc) return rc;
    /* RFC 9112 3.2: the request-target has no whitespace; control characters are refused
     * too. Octets above 0x7f are tolerated as many servers do for raw UTF-8 paths. */
    const char *s = c->p;
    while (c->p < c->end && *c->p != ' ' && !is_ctl((unsigned char)*c->p))
        c->p++;
    if (c->p == c->end) return WSX_EAGAIN;
    if (c->p == s || *c->p != ' ') return WSX_EHTTP;
    req->target = s;
    req->target_len = (size_t)(c->p - s);
    c->p++;
    rc = parse_version(c, &req->version_major, &req->version_minor);
    if (rc) return rc;
    return parse_eol(c);
}

/*
 * RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. The SP before
 * an empty reason is often left out by servers and is not required here.
 */
static int parse_status_line(cursor *c, wsx_http_response *resp)
{
    int rc = parse_version(c, &resp->version_major, &resp->version_minor);
    if (rc) return rc;
    if (c->p == c->end) return WSX_EAGAIN;
    if (*c->p++ != ' ') return WSX_EHTTP;
    int status = 0;
    for (int i = 0; i < 3; i++) {
        if (c->p == c->end) return WSX_EAGAIN;
        char ch = *c->p;
        if (ch < (i == 0 ? '1' : '0') || ch > '9') return WSX_EHTTP;
        status = status * 10 + (ch - '0');
        c->p++;
    }
    resp->status = status;
    resp->reason = c->p;
    resp->reason_len = 0;
    if (c->p == c->end) return WSX_EAGAIN;
    if (*c->p == ' ') {
        c->p++;
        resp->reason = c->p;
        while (c->p < c->end && *c->p != '\r' && *c->p != '\n') {
            unsigned char ch = (unsigned char)*c->p;
            if (is_ctl(ch) && ch != '\t') return WSX_EHTTP;
            c->p++;
        }
        resp->reason_len = (size_t)(c->p - resp->reason);
    }
    return parse_eol(c);
}

/* Maps the outcome of a parse over at most max_head bytes to the public return. */
static ptrdiff_t finish(int rc, const cursor *c, const char *buf, size_t len, size_t max_head)
{
    if (rc == 0) return c->p - buf;
    if (rc == WSX_EAGAIN && len >= max_head) return WSX_EHEADTOOBIG;
    return rc;
}

ptrdiff_t wsx_http_parse_request(const char *buf, size_t len, wsx_http_request *req,
                                 wsx_http_header *headers, size_t max_headers, size_t max_head)
{
    req->headers = headers;
    req->n_headers = 0;
    if (len == 0) return max_head == 0 ? WSX_EHEADTOOBIG : WSX_EAGAIN;
    cursor c = {buf, buf + (len < max_head ? len : max_head)};
    int rc = parse_request_line(&c, req);
    if (rc == 0) rc = parse_fields(&c, headers, max_headers, &req->n_headers);
    return finish(rc, &c, buf, len, max_head);
}

ptrdiff_t wsx_http_parse_response(const char *buf, size_t len, wsx_http_response *resp,
                                  wsx_http_header *headers, size_t max_headers, size_t max_head)
{
    resp->headers = headers;
    resp->n_headers = 0;
    if (len == 0) return max_head == 0 ? WSX_EHEADTOOBIG : WSX_EAGAIN;
    cursor c = {buf, buf + (len < max_head ? len : max_head)};
    int rc = parse_status_line(&c, resp);
    if (rc == 0) rc = parse_fields(&c, headers, max_headers, &resp->n_headers);
    return finish(rc, &c, buf, len, max_head);
}

/* ---- lookups and lists ---------------------------------------------------------------- */

const wsx_http_header *wsx_http_header_get(const wsx_http_header *headers, size_t n,
                                           const char *name)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (wsx__ascii_ieq(headers[i].name, headers[i].name_len, name, name_len))
            return &headers[i];
    return NULL;
}

/*
 * RFC 9110 5.6.1: elements are separated by commas with optional whitespace, and empty
 * elements are skipped. A comma inside a quoted-string (5.6.4) does not separate, so an
 * element such as an extension with a quoted parameter stays whole.
 */
bool wsx_http_list_next(const char **pos, const char *end, const char **elem, size_t *elem_len)
{
    const char *p = *pos;
    while (p < end && (is_ws(*p) || *p == ','))
        p++;
    if (p == end) {
        *pos = end;
        return false;
    }
    const char *s = p, *e = p;
    bool quoted = false;
    while (p < end && (quoted || *p != ',')) {
        if (quoted && *p == '\\' && end - p >= 2) {
            p += 2;
            e = p;
            continue;
        }
        if (*p == '"') quoted = !quoted;
        if (!is_ws(*p)) e = p + 1;
        p++;
    }
    *pos = p;
    *elem = s;
    *elem_len = (size_t)(e - s);
    return true;
}

bool wsx_http_list_has(const char *value, size_t len, const char *token)
{
    if (!value) return false;
    const char *pos = value, *end = value + len, *elem;
    size_t elem_len, token_len = strlen(token);
    while (wsx_http_list_next(&pos, end, &elem, &elem_len))
        if (wsx__ascii_ieq(elem, elem_len, token, token_len)) return true;
    return false;
}

bool wsx_http_headers_have_token(const wsx_http_header *headers, size_t n, const char *name,
                                 const char *token)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (wsx__ascii_ieq(headers[i].name, headers[i].name_len, name, name_len) &&
            wsx_http_list_has(headers[i].value, headers[i].value_len, token))
            return true;
    return false;
}

/* ---- responses ------------------------------------------------------------------------ */

/* RFC 9110 15: reason phrases for the statuses an HTTP/WebSocket server sends. */
static const struct {
    int status;
    const char *text;
} status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {426, "Upgrade Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *wsx_http_status_text(int status)
{
    for (size_t i = 0; i < sizeof status_texts / sizeof status_texts[0]; i++)
        if (status_texts[i].status == status) return status_texts[i].text;
    return "Unknown";
}

ptrdiff_t wsx_http_write_error(int status, const char *body, const wsx_http_header *extra,
                               size_t n_extra, char *out, size_t cap)
{
    if (status < 100 || status > 999) return WSX_EINVAL;
    if (!wsx__http_extras_valid(extra, n_extra)) return WSX_EINVAL;
    if (!body) body = "";
    size_t body_len = strlen(body);

    wsx__out o;
    wsx__out_init(&o, out, cap);
    wsx__out_head(&o, status, NULL, 0);
    wsx__out_str(&o, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    wsx__out_uint(&o, (unsigned long)body_len + 1);
    wsx__out_str(&o, "\r\nConnection: close\r\n");
    /* RFC 6455 4.2.2: a 426 names the versions the server speaks. */
    if (status == 426) wsx__out_str(&o, "Sec-WebSocket-Version: 13\r\n");
    wsx__out_extras(&o, extra, n_extra);
    wsx__out_str(&o, "\r\n");
    wsx__out_mem(&o, body, body_len);
    wsx__out_str(&o, "\n");
    return wsx__out_end(&o);
}
