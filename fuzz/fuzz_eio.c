/*
 * Engine.IO polling payload decoder fuzzer (src/eio/packet.c). The first byte picks the
 * payload bound (1 to 4096 bytes, or 1 MB) and the piece size of the second run; the rest
 * is a request body. The body is decoded whole and in pieces, and the two runs must report
 * the same packets and the same error (any split gives the same result). Each packet is
 * written back in polling form and decoded again, which must give it back unchanged; each
 * text frame of the WebSocket decoder must agree with the polling decoder on its type.
 */
#include <stdlib.h>
#include <string.h>

#include "eio/packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint64_t hash;
    size_t packets;
    int err;
    int reason;
} outcome;

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ull;
}

static void check_packet(const wsx__eio_packet *p)
{
    size_t n = wsx__eio_payload_len(p);
    uint8_t *buf = malloc(n);
    if (!buf) abort();
    if (wsx__eio_payload_write(buf, p) != n) abort();
    wsx__eio_payload d;
    wsx__eio_payload_init(&d, n);
    wsx__eio_packet q;
    ptrdiff_t rc = wsx__eio_payload_feed(&d, buf, n, true, &q);
    if (rc != (ptrdiff_t)n || q.type != p->type || q.binary != p->binary || q.len != p->len ||
        (q.len && memcmp(q.data, p->data, q.len) != 0))
        abort();
    if (!p->binary) {
        wsx__eio_packet w;
        if (wsx__eio_decode_ws(buf, n, false, &w, NULL) != 0 || w.type != p->type) abort();
    }
    wsx__eio_payload_free(&d);
    free(buf);
}

static void run(const uint8_t *in, size_t len, size_t max, size_t step, bool check, outcome *o)
{
    memset(o, 0, sizeof *o);
    o->hash = 0xcbf29ce484222325ull;
    wsx__eio_payload d;
    wsx__eio_payload_init(&d, max);
    size_t fed = 0;
    for (;;) {
        size_t n = len - fed < step ? len - fed : step;
        bool end = fed + n == len;
        /* Each piece in its own allocation, so an over-read shows under ASan. */
        uint8_t *piece = malloc(n ? n : 1);
        if (!piece) abort();
        memcpy(piece, in + fed, n);
        size_t off = 0;
        for (;;) {
            wsx__eio_packet p;
            ptrdiff_t rc = wsx__eio_payload_feed(&d, piece + off, n - off, end, &p);
            if (rc < 0) {
                o->err = (int)rc;
                o->reason = d.reason;
                free(piece);
                wsx__eio_payload_free(&d);
                return;
            }
            off += (size_t)rc;
            if (p.type == WSX__EIO_NONE) break;
            o->packets++;
            o->hash = mix(o->hash, p.type * 2u + p.binary);
            for (size_t i = 0; i < p.len; i++)
                o->hash = mix(o->hash, p.data[i]);
            o->hash = mix(o->hash, p.len);
            if (check) check_packet(&p);
        }
        free(piece);
        if (off != n) abort();
        fed += n;
        if (end) break;
    }
    wsx__eio_payload_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    size_t max = (sel & 0x80) ? 1000000 : (size_t)(sel & 0x3f) * 64 + 1;
    size_t step = (sel & 0x40) ? 1 : 7;
    data++;
    size--;
    outcome whole, split;
    run(data, size, max, size ? size : 1, true, &whole);
    run(data, size, max, step, false, &split);
    if (whole.hash != split.hash || whole.packets != split.packets || whole.err != split.err ||
        whole.reason != split.reason)
        abort();
    return 0;
}
