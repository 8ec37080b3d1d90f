/*
 * Private helpers shared by the HTTP head parser (http.c) and the opening handshake
 * (handshake.c): character classes from RFC 9110 and a bounded writer for response heads.
 */
#ifndef WSX_PROTO_HTTP_PRIV_H
#define WSX_PROTO_HTTP_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "wsx/proto.h"

/* RFC 9110 5.6.2: tchar, the characters of a token. */
bool wsx__http_is_tchar(unsigned char c);

/* True when s[0..n) is a non-empty token. */
bool wsx__http_is_token(const char *s, size_t n);

/* True when a[0..alen) and b[0..blen) are equal ignoring ASCII case: the one
 * case-insensitive compare of the library (header names, tokens, URL schemes). */
bool wsx__ascii_ieq(const char *a, size_t alen, const char *b, size_t blen);

/* True when s starts with prefix (NUL-terminated) ignoring ASCII case. */
bool wsx__ascii_iprefix(const char *s, size_t n, const char *prefix);

/* True when s[0..n) holds no CR, LF or NUL, so it cannot split or end a header line. */
bool wsx__http_field_safe(const char *s, size_t n);

/* True when every extra field has a token name and a field-safe value. */
bool wsx__http_extras_valid(const wsx_http_header *extra, size_t n_extra);

/*
 * A writer into out[0..cap) that remembers running out of room instead of failing each
 * call, so a whole head is composed first and checked once.
 */
typedef struct wsx__out {
    char *buf;
    size_t cap;
    size_t len;
    bool full;
} wsx__out;

void wsx__out_init(wsx__out *o, char *buf, size_t cap);
void wsx__out_mem(wsx__out *o, const char *s, size_t n);
void wsx__out_str(wsx__out *o, const char *s);
void wsx__out_uint(wsx__out *o, unsigned long v);

/* Appends "name: value\r\n". */
void wsx__out_field(wsx__out *o, const char *name, size_t name_len, const char *value,
                    size_t value_len);

/*
 * Appends a response's status line ("HTTP/1.1 <status> <reason>\r\n") and then every field
 * of headers: the one writer of response heads (errors, the 101, src/http's responses). The
 * caller checks the fields (wsx__http_extras_valid) and ends the head with "\r\n".
 */
void wsx__out_head(wsx__out *o, int status, const wsx_http_header *headers, size_t n);

/* Bytes wsx__out_head() writes for these arguments. */
size_t wsx__out_head_size(int status, const wsx_http_header *headers, size_t n);

/* Appends every extra field. */
void wsx__out_extras(wsx__out *o, const wsx_http_header *extra, size_t n_extra);

/* The length written, or WSX_ENOSPC. A NUL follows the output when it fits, which makes
 * the result printable, but it is not counted and not required. */
ptrdiff_t wsx__out_end(wsx__out *o);

#endif
