/*
 * wsx/http.h — HTTP serving on a wsx server: requests and responses for route handlers
 * (held, streamed, file responses), shared bytes for server-sent events, static files and
 * CORS. Included by wsx.h; the server, the routes and the thread contract are there.
 */
#ifndef WSX_HTTP_PUBLIC_H
#define WSX_HTTP_PUBLIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsx/common.h"
#include "wsx/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsx_server wsx_server;
typedef struct wsx_http_req wsx_http_req;

/* ======================================================================================
 * Shared bytes: one buffer written to many streamed HTTP responses (server-sent events)
 *
 * A wsx_bytes is an immutable, reference-counted byte buffer. wsx_http_write_bytes()
 * queues a slice of it on a streamed response by reference: an event formatted once is
 * written to any number of listeners without a copy per listener.
 *
 * Thread: the reference count is not atomic. Create, fill, write and release a wsx_bytes
 * on one thread, and write it only to requests of loops running on that thread.
 * Lifetime: the creator holds one reference and drops it with wsx_bytes_release(); each
 * queued slice holds its own until it is written or its connection closes.
 * ====================================================================================== */

typedef struct wsx_bytes wsx_bytes;

/*
 * A buffer of len bytes holding a copy of data, or uninitialised when data is NULL (fill
 * it through wsx_bytes_data() before it is first written anywhere). Returns 0, WSX_EINVAL
 * (len 0), WSX_ENOMEM; *out untouched on failure.
 */
WSX_API int wsx_bytes_new(const void *data, size_t len, wsx_bytes **out);

/* The bytes: writable until b is first queued, read-only afterwards. */
WSX_API uint8_t *wsx_bytes_data(wsx_bytes *b);
WSX_API size_t wsx_bytes_len(const wsx_bytes *b);

/* Drops the creator's reference. NULL is a no-op. */
WSX_API void wsx_bytes_release(wsx_bytes *b);

/* ======================================================================================
 * HTTP requests and responses (for on_http and route handlers)
 * ====================================================================================== */

/*
 * Answers with a complete response: status, the given headers (no CR/LF in them), a
 * Content-Length, and body[0..len). The wsx_http_req is finished afterwards (do not use it).
 * Returns 0, WSX_EINVAL, WSX_ENOMEM, WSX_ECLOSED (the client went away; r is finished too).
 */
WSX_API int wsx_http_respond(wsx_http_req *r, int status, const wsx_http_header *headers,
                             size_t n_headers, const void *body, size_t len);

/*
 * Answers with len bytes of the open file fd, from offset, as the body: status, the given
 * headers, and Content-Length: len go out now; the body is read in pieces of 64 KiB with
 * pread() whenever the connection's queued output is below send_low_water, so a file of any
 * size costs about send_low_water + 64 KiB of memory per connection, over TLS too. fd must
 * be a regular file holding [offset, offset + len).
 *
 * fd belongs to the library from the call on, whatever it returns: it is closed once the
 * body is queued, or on any failure. A HEAD request, and a status without content (1xx,
 * 204, 304), get the head only (with Content-Length: len, except for 1xx, 204 and 304). If
 * the file cannot be read later or turns out shorter than promised, the connection is closed
 * (the client sees a body cut short). A client that reads nothing for http_timeout_ms is
 * closed too. The wsx_http_req is finished afterwards (do not use it; a wsx_http_on_gone
 * callback no longer fires).
 * Returns 0; WSX_EINVAL (CR/LF in a header, fd not a regular file or too short for the
 * range, the request already answered; the request stays open then, and fd is closed);
 * WSX_ENOMEM; WSX_ECLOSED (the client went away; r is finished too).
 */
WSX_API int wsx_http_respond_file(wsx_http_req *r, int status, const wsx_http_header *headers,
                                  size_t n_headers, int fd, uint64_t offset, uint64_t len);

/*
 * Starts a streamed response (server-sent events, long downloads): the status line and the
 * headers go out now, with "Connection: close" and no Content-Length; the body is whatever
 * wsx_http_write() sends until wsx_http_end(). Returns 0, WSX_EINVAL, WSX_ECLOSED.
 */
WSX_API int wsx_http_begin(wsx_http_req *r, int status, const wsx_http_header *headers,
                           size_t n_headers);

/* Sends body bytes of a streamed response (copied and corked like wsx_send). Returns 0,
 * WSX_EBACKPRESSURE (queued, above the high-water mark), WSX_ECLOSED (the client is gone). */
WSX_API int wsx_http_write(wsx_http_req *r, const void *data, size_t len);

/*
 * Sends b[off..off+len) as body bytes of a streamed response, queued by reference (no
 * copy; see wsx_bytes). The bytes count against the connection's send limits like those of
 * wsx_http_write(), with the same results: 0, WSX_EBACKPRESSURE (queued, above the
 * high-water mark), WSX_ECLOSED (the client is gone, or this write pushed the queue past
 * the hard limit and the connection was closed); WSX_EINVAL (not streaming, or the slice
 * is outside b); WSX_ENOMEM.
 */
WSX_API int wsx_http_write_bytes(wsx_http_req *r, wsx_bytes *b, size_t off, size_t len);

/*
 * Asks to be told when a streamed response can take more: after wsx_http_write() or
 * wsx_http_write_bytes() returned WSX_EBACKPRESSURE, cb(r, arg) is called once the queued
 * body has fallen to send_low_water (once per WSX_EBACKPRESSURE). Not called after the client
 * went away (see wsx_http_on_gone) or after wsx_http_end(). cb may write and end r.
 */
typedef void (*wsx_http_drain_cb)(wsx_http_req *r, void *arg);
WSX_API void wsx_http_on_drain(wsx_http_req *r, wsx_http_drain_cb cb, void *arg);

/* Bytes of the response queued and not yet taken by the kernel (0 once the client is
 * gone): lets an application drop a streamed listener earlier than the hard limit. */
WSX_API size_t wsx_http_buffered_amount(const wsx_http_req *r);

/* Ends a streamed response: the connection closes once the body is sent. r is freed. */
WSX_API void wsx_http_end(wsx_http_req *r);

/*
 * Asks to be told if the client goes away before the response ends: cb(r, arg) is called
 * once, and r is freed when it returns (do not call wsx_http_end on it after that).
 */
typedef void (*wsx_http_gone_cb)(wsx_http_req *r, void *arg);
WSX_API void wsx_http_on_gone(wsx_http_req *r, wsx_http_gone_cb cb, void *arg);

/* ---- HTTP requests: what handlers and on_upgrade read. Every pointer returned borrows
 * from the request and stays valid until it is answered (wsx_http_respond and the others;
 * for on_upgrade, until the hook returns). Text is not NUL-terminated unless stated. */

/* The method ("GET"), *len bytes. */
WSX_API const char *wsx_http_req_method(const wsx_http_req *r, size_t *len);

/* The target's path, up to '?' ("/sse"), *len bytes; not decoded. */
WSX_API const char *wsx_http_req_path(const wsx_http_req *r, size_t *len);

/* The query, after '?' ("room=lobby"), *len bytes; NULL (and *len 0) without a '?'. */
WSX_API const char *wsx_http_req_query(const wsx_http_req *r, size_t *len);

/* The first header field named `name` (NUL-terminated, any case), or NULL. */
WSX_API const wsx_http_header *wsx_http_req_header(const wsx_http_req *r, const char *name);

/* The whole parsed head (method, target, version, every header field; wsx/proto.h). */
WSX_API const wsx_http_request *wsx_http_req_head(const wsx_http_req *r);

/* The client's address, "127.0.0.1:5555" or "[::1]:5555"; NUL-terminated. */
WSX_API const char *wsx_http_req_peer(const wsx_http_req *r);

/* True for a HEAD request: wsx_http_respond(), wsx_http_respond_file() and wsx_http_write()
 * then send no body. */
WSX_API bool wsx_http_req_is_head(const wsx_http_req *r);

/* The server a request came to. */
WSX_API wsx_server *wsx_http_req_server(const wsx_http_req *r);

/* The request body, whole (a Content-Length body up to its route's max_body; chunked
 * bodies are refused with 501); *len 0 without one. */
WSX_API const uint8_t *wsx_http_req_body(const wsx_http_req *r, size_t *len);

/* True for a request whose body was above its route's max_body, handed to a WebSocket
 * route's on_request because of oversize_to_handler: it has no body (*len 0 above), and the
 * connection closes after the answer. (A held request learns it only while being handled:
 * the flag is set once the handler has returned or held it.) */
WSX_API bool wsx_http_req_body_too_big(const wsx_http_req *r);

/* ======================================================================================
 * Static files (for on_http): a directory and/or an in-memory table
 * ====================================================================================== */

/* One file of an in-memory table. */
typedef struct wsx_static_file {
    const char *path;    /* as requested, cleaned ("/index.html"); NUL-terminated */
    const uint8_t *data; /* its bytes */
    size_t len;
} wsx_static_file;

typedef struct wsx_static_opts {
    /* A directory to serve, or NULL. Resolved (realpath) by wsx_static_new(). */
    const char *root;
    /* A table ending with an entry whose path is NULL, or NULL. Borrowed: it must outlive the
     * wsx_static. With a root too, it answers the paths the directory does not have. */
    const wsx_static_file *files;
    const char *index;         /* [index.html] the file a path ending in '/' names */
    const char *cache_control; /* ["no-cache": revalidate each time] "" sends none */
} wsx_static_opts;

typedef struct wsx_static wsx_static;

/* The defaults: no root, no files, index.html, Cache-Control: no-cache. */
WSX_API wsx_static_opts wsx_static_defaults(void);

/*
 * Makes a file server: resolves root (it must be a directory) and computes the entity-tags
 * of the table's files (FNV-1a of the bytes and the length: "8hexdigits-lenhex"). Strings of
 * o are copied; the table is borrowed. A wsx_static is read-only once made: the loops of
 * several threads may share one. Returns 0 with *out set; WSX_EINVAL (neither root nor
 * files, or root not a directory); WSX_ESYS (root cannot be resolved: errno says why);
 * WSX_ENOMEM.
 */
WSX_API int wsx_static_new(const wsx_static_opts *o, wsx_static **out);

/* Frees st (NULL is a no-op). No request may be in wsx_static_serve() on it any more. */
WSX_API void wsx_static_free(wsx_static *st);

/* The most extra headers wsx_static_serve() takes. */
#define WSX_STATIC_MAX_EXTRA 16

/*
 * Answers r (a GET or HEAD for a file) from st, always: the request is finished afterwards.
 * extra[0..n_extra) (at most WSX_STATIC_MAX_EXTRA, such as wsx_cors_headers()) go on every
 * answer, errors included. What the client gets, exactly:
 *
 *  - 200 with Content-Type (by extension; text types with "; charset=utf-8"), ETag,
 *    Cache-Control, Last-Modified (directory files), Accept-Ranges: bytes, Content-Length.
 *    A file of the directory streams from its descriptor (wsx_http_respond_file: 64 KiB
 *    pieces as the client reads); a table file is copied into the connection's queue.
 *    HEAD gets the same head and no body.
 *  - Entity-tags are strong: "inodehex-sizehex-mtimenshex" for a directory file (read from
 *    the opened file, so they describe the bytes sent), the hash for a table file.
 *  - 304 (If-None-Match, weak comparison, lists and "*"; else If-Modified-Since against
 *    Last-Modified) with ETag, Cache-Control, Last-Modified and no body. 412 for a failed
 *    If-Match or If-Unmodified-Since. The order is RFC 9110 13.2.2's.
 *  - A GET with one range ("bytes=a-b", "a-", "-n"; the end clamped to the file, a suffix
 *    longer than the file is all of it): 206 with Content-Range: bytes a-b/size. No range
 *    starting inside the file: 416 whose Content-Range has the size alone ("bytes", an
 *    asterisk, "/size"). Several ranges: 200
 *    with the whole body (no multipart/byteranges). An invalid Range, another unit, a Range
 *    on HEAD or on an empty file, and a Range whose If-Range (a strong entity-tag, or a date
 *    equal to Last-Modified) does not hold: 200 with the whole body.
 *  - A path ending in '/' names its index file; a directory asked for without the '/' gets
 *    301 with Location: the path (percent-encoded) and '/', and the query if there was one.
 *    No directory listings: a directory without an index file is 404.
 *  - Refusals, each text/plain; charset=utf-8 with the body shown: 405 "405 Method Not
 *    Allowed\n" with Allow: GET, HEAD (any other method); 400 "400 bad path\n" for a path
 *    wsx_http_path_clean() refuses ('..' or '.' segments, also as %2e%2e, a NUL, a
 *    backslash, control characters, bad escapes); 414 "414 URI Too Long\n" past 4095
 *    bytes; 404 "404 Not Found\n" for a missing file, anything that is not a regular file or
 *    a directory, and any path whose real location is outside the root; 403
 *    "403 Forbidden\n" when the file or a directory on the way cannot be read
 *    (EACCES/EPERM); 503 "503 Service Unavailable\n" with Retry-After: 1 when the process
 *    is out of descriptors; 500 "500 cannot read the file\n" for other errors.
 *
 * Symlinks: a symlink inside the root is followed when the real path it leads to is inside
 * the root too (checked with realpath()); one leading outside is 404. The file is then
 * opened by its real path with O_NOFOLLOW, and its descriptor's path (/proc/self/fd) is
 * checked against the root again, so a directory swapped for a symlink between the two
 * steps cannot make it serve a file outside (without /proc the realpath() check stands
 * alone). Neither check trusts the client's path beyond wsx_http_path_clean().
 *
 * Returns the status sent; or WSX_ECLOSED / WSX_ENOMEM (the client went away or memory ran
 * out: r is finished); WSX_EINVAL when extra has a CR, LF or NUL or there are more than
 * WSX_STATIC_MAX_EXTRA of them: nothing was sent and r is still open (the caller answers).
 */
WSX_API int wsx_static_serve(const wsx_static *st, wsx_http_req *r, const wsx_http_header *extra,
                             size_t n_extra);

/* ======================================================================================
 * CORS (the Fetch standard's HTTP side) for any on_http handler
 * ====================================================================================== */

typedef struct wsx_cors_opts {
    /* Allowed origins ("https://example.com", "http://localhost:8080"), compared ignoring
     * ASCII case; an entry "*" allows any origin (but "null" only when listed, if
     * credentials is set). Borrowed for each call. */
    const char *const *origins;
    size_t n_origins;
    /* Access-Control-Allow-Credentials: true; then the origin is always echoed, never "*". */
    bool credentials;
    /* [GET, HEAD, POST] methods a preflight may ask for, comma-separated; "*" any. The
     * CORS-safelisted GET, HEAD and POST are always allowed. */
    const char *methods;
    /* [none] request headers a preflight may ask for, comma-separated, compared ignoring
     * case; "*" any (the requested list is echoed). */
    const char *headers;
    /* [none] Access-Control-Expose-Headers on normal responses. */
    const char *expose;
    /* [0: not sent, browsers then cache a preflight 5 s] Access-Control-Max-Age seconds. */
    uint32_t max_age;
} wsx_cors_opts;

/* True when origin[0..len) is allowed by o (see wsx_cors_opts.origins). */
WSX_API bool wsx_cors_origin_allowed(const wsx_cors_opts *o, const char *origin, size_t len);

/* True for a CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. Takes
 * the request's head (wsx_http_req_head()), so it also works on a head parsed without a
 * server. */
WSX_API bool wsx_cors_is_preflight(const wsx_http_request *head);

/*
 * Answers a preflight. Accepted (origin allowed; method safelisted, listed or "*"; every
 * requested header listed, or "*"): 204 with Access-Control-Allow-Origin (the origin, or
 * "*" when any origin is allowed without credentials), Access-Control-Allow-Credentials:
 * true (with credentials), Access-Control-Allow-Methods, Access-Control-Allow-Headers (when
 * headers were requested), Access-Control-Max-Age (when set) and Vary: Origin,
 * Access-Control-Request-Method, Access-Control-Request-Headers. Refused: 403, text/plain;
 * charset=utf-8, body "403 Forbidden\nCORS: origin not allowed\n" (or "method not
 * allowed", "header not allowed"), with Vary and no Access-Control-* header.
 * Returns the status sent (r is finished); WSX_EINVAL when rq is not a preflight (nothing
 * sent, r still open); WSX_ECLOSED, WSX_ENOMEM from wsx_http_respond().
 */
WSX_API int wsx_cors_preflight(const wsx_cors_opts *o, wsx_http_req *r);

/* The most headers wsx_cors_headers() writes. */
#define WSX_CORS_MAX_HEADERS 4

/*
 * The CORS headers of a normal (not preflight) response to the request with this head
 * (wsx_http_req_head()), for the caller to send with it: Vary: Origin (unless any origin
 * is allowed without credentials: then the answer does not vary), and for an allowed
 * Origin, Access-Control-Allow-Origin, Access-Control-Allow-Credentials and
 * Access-Control-Expose-Headers as configured. A request without Origin, or from an origin
 * not allowed, gets no Access-Control-* header: the browser then keeps the response from
 * the page. The values borrow from o, the head and
 * static strings: send them before either changes. Returns how many were written to out.
 */
WSX_API size_t wsx_cors_headers(const wsx_cors_opts *o, const wsx_http_request *head,
                                wsx_http_header out[WSX_CORS_MAX_HEADERS]);

#ifdef __cplusplus
}
#endif
#endif
