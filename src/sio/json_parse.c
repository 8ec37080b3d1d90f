/*
 * JSON text to jansson values, as JSON.parse reads it (sio/json.h, wsx__json_parse).
 *
 * Written here rather than with json_loadb() because parsing each event's arguments was
 * over half of `wsx sio`'s CPU per event (docs/performance.md): jansson reads through a
 * callback per character and copies every token into a growable buffer. This reads the
 * bytes in place, copies a string only when it has escapes, and builds the same values;
 * unit/test_sio_json compares the two on tricky and on random input.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sio/json.h"
#include "wsx/proto.h"

/* jansson's JSON_PARSER_MAX_DEPTH: arrays and objects nested deeper are refused. */
#define MAX_DEPTH 2048

typedef struct reader {
    const uint8_t *p, *end;
    wsx__strbuf tmp; /* a string with escapes, unescaped */
} reader;

static void skip_ws(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 32) >= 'a' && (c | 32) <= 'f')
            d = (c | 32) - 'a' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int put_utf8(wsx__strbuf *b, uint32_t cp)
{
    uint8_t o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        o[0] = (uint8_t)(0xf0 | cp >> 18);
        o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return wsx__strbuf_add(b, o, n);
}

/* A string after its opening quote, up to and past its closing one. *s and *n are the bytes
 * in place when it has no escape, else r->tmp's. Returns false for what JSON.parse (or
 * jansson) refuses: a raw control character, a bad escape, a lone surrogate escape, invalid
 * UTF-8, no closing quote. */
static bool read_string(reader *r, const char **s, size_t *n)
{
    const uint8_t *start = r->p, *q = r->p;
    bool ascii = true;
    /* What ends a plain run: '"', '\\', a control character; a byte above 0x7f is noted. */
    while (q < r->end) {
        uint8_t c = *q;
        if ((uint8_t)(c - 0x20) < 0x60 && c != '"' && c != '\\') {
            q++;
            continue;
        }
        if (c < 0x80) break;
        ascii = false;
        q++;
    }
    if (q == r->end || *q < 0x20) return false;
    if (*q == '"') {
        if (!ascii && !wsx_utf8_valid(start, (size_t)(q - start))) return false;
        *s = (const char *)start;
        *n = (size_t)(q - start);
        r->p = q + 1;
        return true;
    }
    wsx__strbuf *b = &r->tmp;
    b->len = 0;
    if (wsx__strbuf_add(b, start, (size_t)(q - start)) < 0) return false;
    while (q < r->end && *q != '"') {
        if (*q < 0x20) return false;
        if (*q != '\\') {
            const uint8_t *run = q;
            while (q < r->end && *q != '"' && *q != '\\' && *q >= 0x20)
                q++;
            if (wsx__strbuf_add(b, run, (size_t)(q - run)) < 0) return false;
            continue;
        }
        if (r->end - q < 2) return false;
        char c = (char)q[1], e;
        q += 2;
        switch (c) {
        case '"':
            e = '"';
            break;
        case '\\':
            e = '\\';
            break;
        case '/':
            e = '/';
            break;
        case 'b':
            e = '\b';
            break;
        case 'f':
            e = '\f';
            break;
        case 'n':
            e = '\n';
            break;
        case 'r':
            e = '\r';
            break;
        case 't':
            e = '\t';
            break;
        case 'u': {
            if (r->end - q < 4) return false;
            int u = hex4(q);
            if (u < 0) return false;
            q += 4;
            uint32_t cp = (uint32_t)u;
            if (cp >= 0xdc00 && cp <= 0xdfff) return false;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (r->end - q < 6 || q[0] != '\\' || q[1] != 'u') return false;
                int lo = hex4(q + 2);
                if (lo < 0xdc00 || lo > 0xdfff) return false;
                q += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (uint32_t)(lo - 0xdc00);
            }
            if (put_utf8(b, cp) < 0) return false;
            continue;
        }
        default:
            return false;
        }
        if (wsx__strbuf_add(b, &e, 1) < 0) return false;
    }
    if (q == r->end) return false;
    if (!wsx_utf8_valid((const uint8_t *)b->p, b->len)) return false;
    *s = b->p ? b->p : "";
    *n = b->len;
    r->p = q + 1;
    return true;
}

static json_t *read_number(reader *r)
{
    const uint8_t *s = r->p, *q = r->p;
    bool real = false;
    if (q < r->end && *q == '-') q++;
    if (q == r->end) return NULL;
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    } else {
        return NULL;
    }
    if (q < r->end && *q == '.') {
        real = true;
        if (++q == r->end || *q < '0' || *q > '9') return NULL;
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        real = true;
        if (++q < r->end && (*q == '+' || *q == '-')) q++;
        if (q == r->end || *q < '0' || *q > '9') return NULL;
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    r->p = q;
    if (!real) {
        /* Accumulated negative: the range of int64 is one larger that way. */
        bool neg = *s == '-';
        int64_t v = 0;
        const uint8_t *d = s + neg;
        for (; d < q; d++) {
            int digit = *d - '0';
            if (v < (INT64_MIN + digit) / 10) break; /* does not fit: a real, as in JS */
            v = v * 10 - digit;
        }
        if (d == q) {
            if (!neg) {
                if (v == INT64_MIN) goto as_real;
                v = -v;
            }
            return json_integer((json_int_t)v);
        }
    }
as_real:;
    /* strtod wants a terminated string in the locale's notation. */
    char local[64], *buf = local;
    size_t len = (size_t)(q - s);
    if (len >= sizeof local && !(buf = malloc(len + 1))) return NULL;
    memcpy(buf, s, len);
    buf[len] = 0;
    const char *point = localeconv()->decimal_point;
    if (point[0] != '.' && point[0] && !point[1]) {
        char *dot = strchr(buf, '.');
        if (dot) *dot = point[0];
    }
    errno = 0;
    double d = strtod(buf, NULL);
    bool overflow = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
    if (buf != local) free(buf);
    return overflow ? NULL : json_real(d);
}

static json_t *read_value(reader *r, int depth);

static json_t *read_array(reader *r, int depth)
{
    json_t *a = json_array();
    if (!a) return NULL;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return a;
    }
    for (;;) {
        json_t *v = read_value(r, depth);
        if (!v || json_array_append_new(a, v) < 0) break;
        skip_ws(r);
        if (r->p == r->end) break;
        if (*r->p == ']') {
            r->p++;
            return a;
        }
        if (*r->p++ != ',') break;
    }
    json_decref(a);
    return NULL;
}

static json_t *read_object(reader *r, int depth)
{
    json_t *o = json_object();
    if (!o) return NULL;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return o;
    }
    for (;;) {
        const char *k;
        size_t kn;
        if (r->p == r->end || *r->p != '"') break;
        r->p++;
        if (!read_string(r, &k, &kn)) break;
        /* The key may live in tmp, which the value's strings reuse: keep a copy. */
        char kbuf[64], *key = kbuf;
        if (kn >= sizeof kbuf && !(key = malloc(kn + 1))) break;
        memcpy(key, k, kn);
        key[kn] = 0;
        skip_ws(r);
        json_t *v = NULL;
        if (r->p < r->end && *r->p == ':') {
            r->p++;
            v = read_value(r, depth);
        }
        /* A repeated key keeps its place and takes the last value, as in JSON.parse. */
        int rc = v ? json_object_setn_new_nocheck(o, key, kn, v) : -1;
        if (key != kbuf) free(key);
        if (rc < 0) break;
        skip_ws(r);
        if (r->p == r->end) break;
        if (*r->p == '}') {
            r->p++;
            return o;
        }
        if (*r->p++ != ',') break;
        skip_ws(r);
    }
    json_decref(o);
    return NULL;
}

static bool literal(reader *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n)) return false;
    r->p += n;
    return true;
}

static json_t *read_value(reader *r, int depth)
{
    skip_ws(r);
    if (r->p == r->end) return NULL;
    switch (*r->p) {
    case '{':
    case '[':
        if (depth >= MAX_DEPTH) return NULL;
        return *r->p++ == '{' ? read_object(r, depth + 1) : read_array(r, depth + 1);
    case '"': {
        const char *s;
        size_t n;
        r->p++;
        return read_string(r, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    }
    case 't':
        return literal(r, "true", 4) ? json_true() : NULL;
    case 'f':
        return literal(r, "false", 5) ? json_false() : NULL;
    case 'n':
        return literal(r, "null", 4) ? json_null() : NULL;
    default:
        return read_number(r);
    }
}

json_t *wsx__json_parse(const uint8_t *s, size_t len)
{
    reader r = {.p = s, .end = s + len};
    json_t *v = read_value(&r, 0);
    skip_ws(&r);
    if (v && r.p != r.end) {
        json_decref(v);
        v = NULL;
    }
    wsx__strbuf_free(&r.tmp);
    return v;
}
