/*
 * The chat's text: the rules for names and rooms, every message's JSON (jansson's encoder),
 * and the three join/leave events written from the online list's cached text.
 */
#include "chat/chat_priv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/unicode_cf.h"
#include "wsx.h"

/* ---- text rules ---- */

/* Counts code points of valid UTF-8. */
size_t wsx__chat_utf8_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* Trims ASCII whitespace; returns the new start and sets *n. */
const char *wsx__chat_trim(const char *s, size_t *n)
{
    size_t len = *n;
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    *n = len;
    return s;
}

bool wsx_chat_valid_room(const char *s, size_t n)
{
    if (n < 1 || n > WSX_CHAT_MAX_ROOM) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

static bool format_char(uint32_t cp)
{
    size_t lo = 0, hi = sizeof chat_format_ranges / sizeof chat_format_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < chat_format_ranges[mid][0])
            hi = mid;
        else if (cp > chat_format_ranges[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* A name is what others see: no control characters (C0, DEL, C1), and none of the invisible
 * format characters (Unicode Cf, Zl, Zp) that would let two names look the same or reorder
 * the text around them (bidi overrides). */
bool wsx__chat_valid_name(const char *s, size_t n)
{
    if (n < 1 || wsx__chat_utf8_chars(s, n) > WSX_CHAT_MAX_NAME) return false;
    if (!wsx_utf8_valid((const uint8_t *)s, n)) return false;
    for (size_t i = 0; i < n;) {
        const unsigned char *u = (const unsigned char *)s + i;
        uint32_t cp;
        size_t len;
        if (u[0] < 0x80)
            cp = u[0], len = 1;
        else if (u[0] < 0xE0)
            cp = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F), len = 2;
        else if (u[0] < 0xF0)
            cp = (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F),
            len = 3;
        else
            cp = (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 |
                 (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F),
            len = 4;
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || format_char(cp)) return false;
        i += len;
    }
    return true;
}

/* ---- JSON output ---- */

/* Every message is built as jansson values and serialised by jansson's encoder, except the
 * three sent on each join and leave (joined, presence, online): see sb below. */

/* A text the chat checked (names, rooms) or jansson decoded (texts): valid UTF-8 already. */
json_t *wsx__chat_jname(const char *s)
{
    return json_string_nocheck(s);
}

/* Adds k: v to *o. A failure (out of memory) frees *o and leaves NULL, so that the message
 * is not sent at all rather than sent without a field. */
void wsx__chat_jset(json_t **o, const char *k, json_t *v)
{
    if (!*o)
        json_decref(v);
    else if (json_object_set_new_nocheck(*o, k, v) < 0) {
        json_decref(*o);
        *o = NULL;
    }
}

json_t *wsx__chat_jevent(const char *type)
{
    json_t *o = json_object();
    wsx__chat_jset(&o, "type", json_string_nocheck(type));
    return o;
}

/* Serialises o into t, NUL-terminated, and drops o; false when o is NULL or memory ran out. */
bool wsx__chat_jdump(jtext *t, json_t *o)
{
    t->p = NULL;
    size_t n = o ? json_dumpb(o, t->stack, sizeof t->stack - 1, JSON_COMPACT) : 0;
    if (n && n < sizeof t->stack)
        t->p = t->stack;
    else if (n && (t->p = malloc(n + 1)) && json_dumpb(o, t->p, n, JSON_COMPACT) != n) {
        free(t->p);
        t->p = NULL;
    }
    if (t->p) t->p[n] = '\0';
    t->len = n;
    json_decref(o);
    return t->p != NULL;
}

void wsx__chat_jtext_free(jtext *t)
{
    if (t->p != t->stack) free(t->p);
}

/* A heap copy of t's text (NUL-terminated), NULL when out of memory. */
char *wsx__chat_jtext_dup(const jtext *t)
{
    char *s = t->p ? malloc(t->len + 1) : NULL;
    if (s) memcpy(s, t->p, t->len + 1);
    return s;
}

void wsx__chat_sb_put(sb *b, const void *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + 256;
        char *q = b->heap ? realloc(b->p, cap) : malloc(cap);
        if (!q) {
            b->oom = true;
            return;
        }
        if (!b->heap) memcpy(q, b->p, b->len);
        b->p = q;
        b->cap = cap;
        b->heap = true;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void wsx__chat_sb_u64(sb *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    wsx__chat_sb_put(b, d + i, sizeof d - i);
}

/* A JSON string (RFC 8259 7): quotes, backslashes and control characters escaped; the rest
 * (valid UTF-8, as every text here is) as it is. */
void wsx__chat_sb_str(sb *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    SB_LIT(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        wsx__chat_sb_put(b, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', (char)ch, 0, 0, 0, 0};
        size_t el = 2;
        if (ch == '\n')
            e[1] = 'n';
        else if (ch == '\t')
            e[1] = 't';
        else if (ch == '\r')
            e[1] = 'r';
        else if (ch < 0x20) {
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[ch >> 4], e[5] = hex[ch & 15];
            el = 6;
        }
        wsx__chat_sb_put(b, e, el);
    }
    wsx__chat_sb_put(b, s + run, n - run);
    SB_LIT(b, "\"");
}

void wsx__chat_sb_cstr(sb *b, const char *s)
{
    wsx__chat_sb_str(b, s, strlen(s));
}

void wsx__chat_sb_free(sb *b)
{
    if (b->heap) free(b->p);
}

/* The online list, `[{"name":N,"tabs":K},...]` sorted by name: made once per change. */
void wsx__chat_sb_online(sb *b, room *r)
{
    if (!r->online) {
        char stack[1024];
        sb o = SB_INIT(stack);
        SB_LIT(&o, "[");
        for (size_t i = 0; i < r->n_people; i++) {
            if (i) SB_LIT(&o, ",");
            SB_LIT(&o, "{\"name\":");
            wsx__chat_sb_cstr(&o, r->people[i].name);
            SB_LIT(&o, ",\"tabs\":");
            wsx__chat_sb_u64(&o, r->people[i].tabs);
            SB_LIT(&o, "}");
        }
        SB_LIT(&o, "]");
        if (!o.oom) r->online = malloc(o.len);
        if (r->online) {
            memcpy(r->online, o.p, o.len);
            r->online_len = o.len;
        }
        wsx__chat_sb_free(&o);
        if (!r->online) {
            SB_LIT(b, "[]");
            return;
        }
    }
    wsx__chat_sb_put(b, r->online, r->online_len);
}
