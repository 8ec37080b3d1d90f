/*
 * The sans-IO part of serving files over HTTP: byte ranges (RFC 9110 14), entity-tag lists
 * and the preconditions (RFC 9110 8.8, 13), HTTP dates (RFC 9110 5.6.7) and content types
 * by extension. Pure functions of their arguments: no clock (the caller passes "now"), no
 * allocation, no I/O. src/http/static.c drives them.
 */
#ifndef WSX_PROTO_HTTP_FILE_H
#define WSX_PROTO_HTTP_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsx/proto.h"

/* What a Range header asks of a representation of `size` bytes (wsx__http_range_parse). */
enum wsx__range {
    WSX__RANGE_NONE,          /* absent, another unit, or invalid: ignore it, send it all */
    WSX__RANGE_ONE,           /* one satisfiable range: 206 */
    WSX__RANGE_MANY,          /* several ranges, at least one satisfiable: we send it all */
    WSX__RANGE_UNSATISFIABLE, /* valid, but no range overlaps the representation: 416 */
};

/*
 * Parses a Range value v[0..len) ("bytes=0-99", "bytes=100-", "bytes=-500", lists of those)
 * against a representation of `size` bytes. For WSX__RANGE_ONE, *first and *last (inclusive)
 * are set, with last clamped to size - 1 and a suffix longer than the representation taken
 * as all of it. The unit is matched ignoring case; numbers too large for 64 bits saturate
 * (so they are past any size rather than invalid); a range whose last position precedes its
 * first, an empty list or anything but digits, '-' and list commas makes the whole value
 * invalid (RFC 9110 14.1.1), which is WSX__RANGE_NONE. A representation of 0 bytes has no
 * range to send: every Range on it is WSX__RANGE_NONE (a 200 with the empty body, rather
 * than a 416 a client could not avoid).
 */
enum wsx__range wsx__http_range_parse(const char *v, size_t len, uint64_t size, uint64_t *first,
                                      uint64_t *last);

/*
 * True when the entity-tag list v[0..len) (If-Match, If-None-Match: `"a", W/"b"` or `*`)
 * holds an entity-tag equal to etag[0..etag_len) (a strong tag with its quotes, as we send
 * them). strong: RFC 9110 8.8.3.2 strong comparison (a W/ tag never matches; If-Match,
 * If-Range); otherwise weak comparison (W/ is ignored; If-None-Match). "*" matches. Commas
 * inside quotes belong to the tag. A malformed list matches nothing from the point where it
 * goes wrong on.
 */
bool wsx__http_etag_match(const char *v, size_t len, const char *etag, size_t etag_len,
                          bool strong);

/* Length of an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
#define WSX__HTTP_DATE_LEN 29

/*
 * Parses an HTTP-date in any of the three forms a recipient must accept (RFC 9110 5.6.7):
 * IMF-fixdate, RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year below 70 is
 * 20xx) and asctime ("Sun Nov  6 08:49:37 1994"). *t gets seconds since the epoch (UTC).
 * Returns 0, or WSX_EINVAL for anything else (including impossible dates like Feb 30).
 */
int wsx__http_date_parse(const char *s, size_t len, int64_t *t);

/* Writes t (seconds since the epoch, UTC) as an IMF-fixdate and a NUL into out. Returns
 * WSX__HTTP_DATE_LEN. */
size_t wsx__http_date_format(int64_t t, char out[WSX__HTTP_DATE_LEN + 1]);

/*
 * The Content-Type for a file name (its extension after the last '/' and '.', ignoring
 * case): text types carry "; charset=utf-8"; unknown or no extension is
 * "application/octet-stream". A static string.
 */
const char *wsx__http_content_type(const char *name, size_t len);

/* A GET or HEAD of one representation, for wsx__http_cond_eval. */
typedef struct wsx__http_cond_in {
    const wsx_http_header *headers; /* the request's fields */
    size_t n_headers;
    bool get;         /* GET (Range applies, RFC 9110 14.2); false for HEAD */
    const char *etag; /* its strong entity-tag with the quotes */
    size_t etag_len;
    int64_t mtime; /* its Last-Modified in seconds, or -1 when it has none */
    int64_t now;   /* the server's clock in seconds */
    uint64_t size;
} wsx__http_cond_in;

/* The answer: status 200 (first = 0, len = size), 206 (the range), 304, 412 or 416. */
typedef struct wsx__http_cond_out {
    int status;
    uint64_t first, len;
} wsx__http_cond_out;

/*
 * Evaluates the preconditions in RFC 9110 13.2.2's order, then the Range: If-Match (strong;
 * fails -> 412), else If-Unmodified-Since (modified after it -> 412); If-None-Match (weak;
 * matches -> 304), else If-Modified-Since (ignored when invalid, later than now, or without
 * an mtime; not modified since -> 304); then, for a GET with a Range, If-Range (an entity-tag
 * compared strongly, or a date equal to the mtime; otherwise the whole representation) and
 * the Range itself (see wsx__http_range_parse: one range -> 206, several -> 200 with all of
 * it, none satisfiable -> 416). Fields that are lists (If-Match, If-None-Match) are read from
 * every line that carries them.
 */
void wsx__http_cond_eval(const wsx__http_cond_in *in, wsx__http_cond_out *out);

#endif
