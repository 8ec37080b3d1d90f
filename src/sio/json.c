/*
 * JSON text byte-identical to JavaScript's JSON.stringify (ECMA-262, JSON.stringify and
 * Number::toString), for the values jansson can hold.
 */
#include "sio/json.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsx/common.h"

#define MAX_DEPTH 2048

int wsx__strbuf_reserve(wsx__strbuf *b, size_t n)
{
    if (n <= b->cap - b->len) return 0;
    if (n > SIZE_MAX / 2 - b->len) return WSX_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return WSX_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int wsx__strbuf_add(wsx__strbuf *b, const void *s, size_t n)
{
    int rc = wsx__strbuf_reserve(b, n);
    if (rc < 0) return rc;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

void wsx__strbuf_free(wsx__strbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int wsx__json_write_string(wsx__strbuf *b, const char *s, size_t len)
{
    /* Most strings need no escape: one scan, one copy. */
    size_t plain = 0;
    while (plain < len && (unsigned char)s[plain] >= 0x20 && s[plain] != '"' && s[plain] != '\\')
        plain++;
    if (plain == len) {
        if (len > SIZE_MAX / 2) return WSX_ENOMEM;
        int rc = wsx__strbuf_reserve(b, len + 2);
        if (rc < 0) return rc;
        char *o = b->p + b->len;
        *o++ = '"';
        memcpy(o, s, len);
        o[len] = '"';
        b->len += len + 2;
        return 0;
    }
    /* The exact length first: reserving for the worst case (6 bytes a byte) would leave a
     * reused buffer six times larger than the longest string it ever held. */
    size_t extra = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            extra += 1;
        else if (c < 0x20)
            extra += 5;
    }
    if (len > SIZE_MAX / 2 - extra) return WSX_ENOMEM;
    int rc = wsx__strbuf_reserve(b, len + extra + 2);
    if (rc < 0) return rc;
    static const char hex[] = "0123456789abcdef";
    char *o = b->p + b->len;
    *o++ = '"';
    size_t run = 0; /* bytes copied as they are, in one memcpy per run */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        memcpy(o, s + run, i - run);
        o += i - run;
        run = i + 1;
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            /* ECMA-262 QuoteJSONString: other code units below 0x20 as \u00xx, lower-case
             * hex (jansson writes upper case). */
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 0xf];
        }
    }
    memcpy(o, s + run, len - run);
    o += len - run;
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    return 0;
}

int wsx__json_write_real(wsx__strbuf *b, double d)
{
    if (!isfinite(d)) return wsx__strbuf_add(b, "null", 4);
    if (d == 0) return wsx__strbuf_add(b, "0", 1); /* -0 too: ToString(-0) is "0" */
    /* Number::toString: the shortest digit string k that reads back as d, with exponent n
     * such that d = 0.k * 10^n; found by trying precisions 1..17 (17 always suffices). */
    char sci[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, d);
        if (strtod(sci, NULL) == d) break;
    }
    const char *p = sci;
    char digits[20];
    int k = 0;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    int n = atoi(p + 1) + 1;
    char out[64];
    int o = 0;
    if (neg) out[o++] = '-';
    if (k <= n && n <= 21) {
        memcpy(out + o, digits, (size_t)k);
        o += k;
        for (int i = k; i < n; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, digits, (size_t)n);
        o += n;
        out[o++] = '.';
        memcpy(out + o, digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        memcpy(out + o, digits, (size_t)k);
        o += k;
    } else {
        out[o++] = digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
    return wsx__strbuf_add(b, out, (size_t)o);
}

static int write_value(wsx__strbuf *b, const json_t *v, int depth)
{
    if (depth > MAX_DEPTH) return WSX_EINVAL;
    int rc;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if ((rc = wsx__strbuf_add(b, "{", 1)) < 0) return rc;
        bool first = true;
        const char *key;
        size_t klen;
        json_t *val;
        json_object_keylen_foreach((json_t *)v, key, klen, val)
        {
            if (!first && (rc = wsx__strbuf_add(b, ",", 1)) < 0) return rc;
            first = false;
            if ((rc = wsx__json_write_string(b, key, klen)) < 0) return rc;
            if ((rc = wsx__strbuf_add(b, ":", 1)) < 0) return rc;
            if ((rc = write_value(b, val, depth + 1)) < 0) return rc;
        }
        return wsx__strbuf_add(b, "}", 1);
    }
    case JSON_ARRAY: {
        if ((rc = wsx__strbuf_add(b, "[", 1)) < 0) return rc;
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (i && (rc = wsx__strbuf_add(b, ",", 1)) < 0) return rc;
            if ((rc = write_value(b, json_array_get(v, i), depth + 1)) < 0) return rc;
        }
        return wsx__strbuf_add(b, "]", 1);
    }
    case JSON_STRING:
        return wsx__json_write_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        /* Beyond 2^53 a JavaScript number is the nearest double, and so is its text. */
        if (i > (1ll << 53) || i < -(1ll << 53)) return wsx__json_write_real(b, (double)i);
        /* By hand: snprintf's format machinery was a visible part of an event's CPU. */
        char num[24], *e = num + sizeof num, *d = e;
        uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
        do {
            *--d = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (i < 0) *--d = '-';
        return wsx__strbuf_add(b, d, (size_t)(e - d));
    }
    case JSON_REAL:
        return wsx__json_write_real(b, json_real_value(v));
    case JSON_TRUE:
        return wsx__strbuf_add(b, "true", 4);
    case JSON_FALSE:
        return wsx__strbuf_add(b, "false", 5);
    case JSON_NULL:
        return wsx__strbuf_add(b, "null", 4);
    }
    return WSX_EINVAL;
}

int wsx__json_write(wsx__strbuf *b, const json_t *v)
{
    size_t mark = b->len;
    int rc = write_value(b, v, 0);
    if (rc < 0) b->len = mark;
    return rc;
}
