/*
 * Percent-decoding (RFC 3986 2.1) and request-path cleaning: the only decoder of the
 * library and of the tools, so a file path, a query value and a route all read "%2e" alike.
 */
#include <stdbool.h>

#include "wsx/proto.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (unsigned char)(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

ptrdiff_t wsx_percent_decode(const char *s, size_t len, unsigned flags, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 && i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
            if (lo >= 0) {
                ch = (char)(hi << 4 | lo);
                i += 2;
            } else if (!(flags & WSX_PCT_LENIENT)) {
                return WSX_EINVAL;
            }
        } else if (ch == '+' && (flags & WSX_PCT_PLUS)) {
            ch = ' ';
        }
        /* o <= i always, so decoding in place never overwrites input still to be read. */
        if (o == cap) return WSX_ENOSPC;
        out[o++] = ch;
    }
    return (ptrdiff_t)o;
}

/* A segment that names the directory itself or its parent, in any spelling that decodes
 * to "." or "..". */
static bool dot_segment(const char *seg, size_t n)
{
    return (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.');
}

ptrdiff_t wsx_http_path_clean(const char *path, size_t len, char *out, size_t cap)
{
    if (!len || path[0] != '/') return WSX_EINVAL;
    if (!cap) return WSX_ENOSPC;
    ptrdiff_t n = wsx_percent_decode(path, len, 0, out, cap - 1);
    if (n < 0) return n;
    /* Decoded first, judged after: "%2e%2e" and "%2f" mean what they decode to. */
    size_t o = 0, seg = 0; /* seg: where the current segment starts in out */
    for (size_t i = 0; i < (size_t)n; i++) {
        unsigned char ch = (unsigned char)out[i];
        /* A backslash is a separator on other systems; a NUL would end the name early;
         * control characters have no business in a file name or a Location header. */
        if (ch < 0x20 || ch == 0x7f || ch == '\\') return WSX_EINVAL;
        if (ch == '/') {
            if (o && dot_segment(out + seg, o - seg)) return WSX_EINVAL;
            if (o && out[o - 1] == '/') continue;
            seg = o + 1;
        }
        out[o++] = (char)ch; /* o <= i: compacting in place */
    }
    if (dot_segment(out + seg, o - seg)) return WSX_EINVAL;
    out[o] = '\0';
    return (ptrdiff_t)o;
}
