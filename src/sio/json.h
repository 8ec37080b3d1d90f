/*
 * JSON as JavaScript writes it (docs/socketio.md, "JSON"). Socket.IO peers compare and
 * echo JSON text, and the reference server writes it with JSON.stringify; jansson's own
 * encoder differs from that in two ways that reach the wire (reals are written with 17
 * significant digits, 0.1 -> 0.10000000000000001 and 1e2 -> 100.0; control characters
 * are escaped with upper-case hex, \u001F), so the text is written here instead.
 */
#ifndef WSX_SIO_JSON_H
#define WSX_SIO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A growable output buffer. Zero-initialised is empty; reused across packets it stops
 * allocating once it has grown to the largest one. */
typedef struct wsx__strbuf {
    char *p;
    size_t len, cap;
} wsx__strbuf;

/* Makes room for `n` more bytes. Returns 0 or WSX_ENOMEM. */
int wsx__strbuf_reserve(wsx__strbuf *b, size_t n);

/* Appends n bytes. Returns 0 or WSX_ENOMEM. */
int wsx__strbuf_add(wsx__strbuf *b, const void *s, size_t n);

/* Frees the buffer and leaves it empty. */
void wsx__strbuf_free(wsx__strbuf *b);

/*
 * Appends v as JSON.stringify(v) would write it: no whitespace, object keys in jansson's
 * order (insertion order, which is the order of the parsed text), strings with only '"',
 * '\\' and the control characters escaped (\b \f \n \r \t, others \u00xx in lower case;
 * '/' and non-ASCII as they are), integers in decimal, reals in the shortest form that
 * reads back to the same double, in JavaScript's notation (1, 0.1, 1e+21, 1.5e-7), and
 * NaN or infinities as null. Returns 0, WSX_ENOMEM, or WSX_EINVAL for nesting deeper
 * than 2048 (jansson's own parser limit; a tree built by hand can be deeper or cyclic).
 */
int wsx__json_write(wsx__strbuf *b, const json_t *v);

/* Appends a JSON string literal (quotes included) of s[0..len), escaped as above. s must be
 * UTF-8 (not checked). Returns 0 or WSX_ENOMEM. */
int wsx__json_write_string(wsx__strbuf *b, const char *s, size_t len);

/* Appends a double as JavaScript's Number.prototype.toString writes it (null for NaN and
 * infinities). Returns 0 or WSX_ENOMEM. */
int wsx__json_write_real(wsx__strbuf *b, double d);

/*
 * Parses s[0..len) as one JSON value as JSON.parse does: any value at the top, surrounding
 * whitespace allowed, nothing else after it, "\u0000" allowed in strings. Integers that do
 * not fit 64 bits are read as reals, as JavaScript reads every number. Returns a new
 * reference, or NULL for text JSON.parse refuses and for the few it takes that jansson
 * cannot represent (a lone surrogate escape, a number beyond the double range). Object keys
 * may hold NUL, as in JavaScript (json_object_keylen_foreach sees them whole). Written in
 * sio/json_parse.c, not with json_loadb (which takes about twice the CPU).
 */
json_t *wsx__json_parse(const uint8_t *s, size_t len);

#endif
