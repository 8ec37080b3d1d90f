/* `wsx bench`: the messages sent and checked: pattern and JSON payloads, headers, verification. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

_Static_assert(JSON_MIN == 83, "the help text says S >= 83 for --payload json");

static void put_hex(uint8_t *p, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = (uint8_t)hex[v & 15];
        v >>= 4;
    }
}

static bool get_hex(const uint8_t *p, int digits, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        int d = p[i] >= '0' && p[i] <= '9'   ? p[i] - '0'
                : p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10
                                             : -1;
        if (d < 0) return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

/* v in decimal, right-aligned in `digits` columns, padded with pad ('0' or ' '); only the
 * lowest digits when it is wider. */
static void put_dec(uint8_t *p, uint64_t v, int digits, char pad)
{
    int i = digits - 1;
    do {
        p[i--] = (uint8_t)('0' + v % 10);
        v /= 10;
    } while (v && i >= 0);
    while (i >= 0)
        p[i--] = (uint8_t)pad;
}

/* The reverse of put_dec: leading blanks, then at least one digit up to the end. */
static bool get_dec(const uint8_t *p, int digits, uint64_t *out)
{
    int i = 0;
    while (i < digits && p[i] == ' ')
        i++;
    if (i == digits) return false;
    uint64_t v = 0;
    for (; i < digits; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* Where message `seq` starts in the pattern. */
static size_t pat_off(const bench *b, uint64_t seq)
{
    return b->payload == PL_JSON ? (size_t)(seq * JSON_STRIDE % JSON_SPREAD)
                                 : (size_t)(seq % PAT_SPREAD);
}

/* The b->hdr bytes that lead message `seq` of connection `id`. */
static void make_header(const bench *b, uint8_t *out, uint32_t id, uint64_t seq)
{
    if (b->payload == PL_JSON) {
        memcpy(out, JSON_A, JSON_ID);
        put_dec(out + JSON_ID, id, 7, '0');
        memcpy(out + JSON_ID + 7, JSON_B, sizeof JSON_B - 1);
        put_dec(out + JSON_SEQ, seq, 12, ' ');
        memcpy(out + JSON_SEQ + 12, JSON_C, sizeof JSON_C - 1);
        return;
    }
    put_hex(out, id, 6);
    put_hex(out + 6, seq, 10);
}

/* The connection id and sequence number a header carries, if it is one. */
bool bench_read_header(const bench *b, const uint8_t *h, uint64_t *id, uint64_t *seq)
{
    if (b->payload == PL_JSON)
        return !memcmp(h, JSON_A, JSON_ID) && get_dec(h + JSON_ID, 7, id) &&
               !memcmp(h + JSON_ID + 7, JSON_B, sizeof JSON_B - 1) &&
               get_dec(h + JSON_SEQ, 12, seq);
    return get_hex(h, 6, id) && get_hex(h + 6, 10, seq);
}

/* Text: printable ASCII (valid UTF-8); binary: every byte value. Deterministic (xorshift). */
uint8_t *bench_make_pattern(size_t len, bool binary)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return NULL;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = binary ? (uint8_t)(x >> 24) : (uint8_t)(0x21 + (x >> 24) % 94);
    }
    return p;
}

/* --payload json: a stream of chat words, ASCII without '"' or '\' (any stretch of it is a
 * valid JSON string). Deterministic (xorshift). */
uint8_t *bench_make_words(size_t len)
{
    static const char *const words[] = {
        "hi",      "hello",  "everyone", "the",    "a",      "is",     "it",      "to",
        "and",     "of",     "in",       "on",     "for",    "we",     "you",     "I",
        "that",    "this",   "with",     "at",     "be",     "are",    "was",     "have",
        "just",    "so",     "but",      "not",    "what",   "about",  "can",     "will",
        "meeting", "today",  "tomorrow", "lunch",  "coffee", "deploy", "build",   "tests",
        "passed",  "failed", "again",    "review", "merged", "branch", "release", "server",
        "client",  "thanks", "sure",     "ok",     "lol",    "yes",    "no",      "maybe",
        "think",   "should", "ship",     "later",  "looks",  "good",   "see",     "room",
    };
    static const char punct[] = ",.!?";
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return NULL;
    uint64_t x = 0x9e3779b97f4a7c15u;
    size_t i = 0;
    while (i < len) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *w = words[(x >> 20) % (sizeof words / sizeof *words)];
        while (*w && i < len)
            p[i++] = (uint8_t)*w++;
        if (i < len && (x >> 40) % 8 == 0) p[i++] = (uint8_t)punct[(x >> 44) % 4];
        if (i < len) p[i++] = ' ';
    }
    return p;
}

/* Sends message `seq` of connection `id`: pattern bytes from pat_off(seq), led by the
 * header (and closed by the tail). Both are written into the worker's copy of the pattern
 * for the call and undone after it (wsx_send copies), so no message is assembled byte by
 * byte. */
int bench_send_msg(worker *w, wsx_conn *c, uint32_t id, uint64_t seq)
{
    bench *b = w->b;
    if (b->sio) return bench_sio_send(w, c, id, seq);
    uint8_t *p = w->sendbuf + pat_off(b, seq);
    if (!b->hdr) return wsx_send(c, p, b->size, b->type);
    uint8_t save[JSON_HDR], tail[sizeof JSON_TAIL];
    memcpy(save, p, b->hdr);
    make_header(b, p, id, seq);
    if (b->tail) {
        memcpy(tail, p + b->size - b->tail, b->tail);
        memcpy(p + b->size - b->tail, JSON_TAIL, b->tail);
    }
    int rc = wsx_send(c, p, b->size, b->type);
    memcpy(p, save, b->hdr);
    if (b->tail) memcpy(p + b->size - b->tail, tail, b->tail);
    return rc;
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Checks that m is message `seq` of connection `id`. Returns -1, or the error kind with a
 * description in why. */
int bench_verify(const bench *b, const wsx_msg *m, uint32_t id, uint64_t seq, char *why, size_t cap)
{
    unsigned long long s = seq;
    if (m->type != b->type) {
        snprintf(why, cap, "message #%llu came back as %s", s,
                 m->type == WSX_TEXT ? "text" : "binary");
        return E_TYPE;
    }
    if (m->len != b->size) {
        snprintf(why, cap, "message #%llu came back with %zu bytes instead of %zu", s, m->len,
                 b->size);
        return E_LENGTH;
    }
    const uint8_t *want = b->pattern + pat_off(b, seq);
    size_t from = 0, to = b->size - b->tail;
    if (b->hdr) {
        uint8_t h[JSON_HDR];
        make_header(b, h, id, seq);
        if (memcmp(m->data, h, b->hdr)) {
            uint64_t gid, gseq;
            if (bench_read_header(b, m->data, &gid, &gseq)) {
                if (gid == id) {
                    snprintf(why, cap, "message #%llu arrived where #%llu was expected (%s)",
                             (unsigned long long)gseq, s,
                             gseq < seq ? "duplicated or reordered" : "one lost or reordered");
                    return E_ORDER;
                }
                snprintf(why, cap, "message #%llu of connection %llu arrived instead of #%llu",
                         (unsigned long long)gseq, (unsigned long long)gid, s);
                return E_ORDER;
            }
            size_t i = first_diff(m->data, h, b->hdr);
            snprintf(why, cap, "message #%llu: header byte %zu is 0x%02x, expected 0x%02x", s, i,
                     m->data[i], h[i]);
            return E_CORRUPT;
        }
        from = b->hdr;
    }
    if (memcmp(m->data + from, want + from, to - from)) {
        size_t i = from + first_diff(m->data + from, want + from, to - from);
        snprintf(why, cap, "message #%llu: byte %zu is 0x%02x, expected 0x%02x", s, i, m->data[i],
                 want[i]);
        return E_CORRUPT;
    }
    if (b->tail && memcmp(m->data + to, JSON_TAIL, b->tail)) {
        size_t i = to + first_diff(m->data + to, (const uint8_t *)JSON_TAIL, b->tail);
        snprintf(why, cap, "message #%llu: byte %zu is 0x%02x, expected 0x%02x", s, i, m->data[i],
                 (unsigned)(uint8_t)JSON_TAIL[i - to]);
        return E_CORRUPT;
    }
    return -1;
}
