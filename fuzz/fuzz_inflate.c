/*
 * libFuzzer target for permessage-deflate (src/proto/deflate.c).
 *
 * Input: byte 0 chooses the agreement (no_context_takeover bits, the window of the
 * decompressor, role, text), byte 1 the piece size; the rest is a sequence of messages, each
 * a 2-byte big-endian length and that many payload bytes. Each message is inflated piece by
 * piece with a small limit, which must never be exceeded (neither the output nor the buffer
 * capacity); a failure must be one of the documented ones and must stick.
 * Then the same bytes are compressed and inflated through a fresh pair of contexts and must
 * come back unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wsx/deflate.h"

#define LIMIT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inflate_messages(const uint8_t *data, size_t size, uint8_t opt, size_t piece)
{
    wsx_pmd_params p = {opt & 1, (opt & 2) != 0, (uint8_t)(8 + (opt >> 2 & 7)),
                        (uint8_t)(8 + (opt >> 2 & 7))};
    int role = opt & 0x20 ? WSX_ROLE_CLIENT : WSX_ROLE_SERVER;
    bool text = opt & 0x40;
    wsx_pmd z;
    if (wsx_pmd_init(&z, role, &p, NULL)) abort();
    wsx_pmd_buf out = {0};
    while (size >= 2) {
        size_t len = (size_t)data[0] << 8 | data[1];
        data += 2;
        size -= 2;
        if (len > size) len = size;
        out.len = 0;
        size_t off = 0;
        int rc = 0;
        do {
            size_t n = len - off < piece ? len - off : piece;
            rc = wsx_pmd_inflate(&z, data + off, n, off + n == len, text, LIMIT, &out);
            off += n;
            if (out.len > LIMIT || out.cap > LIMIT) abort();
        } while (!rc && off < len);
        if (rc) {
            if (rc != WSX_EINVALDATA && rc != WSX_ETOOBIG) abort();
            if (!wsx_pmd_error(&z)) abort();
            if (wsx_pmd_inflate(&z, data, len, true, text, LIMIT, &out) != WSX_EINVAL) abort();
            break;
        }
        if (wsx_pmd_error(&z)) abort();
        if (text && !wsx_utf8_valid(out.data, out.len)) abort();
        data += len;
        size -= len;
        if (opt & 0x80) wsx_pmd_trim(&z);
    }
    wsx_pmd_free(&z);
    wsx_pmd_buf_free(&out);
}

static void round_trip(const uint8_t *data, size_t size, uint8_t opt, size_t piece)
{
    int bits = 9 + (opt >> 2 & 7) % 7;
    wsx_pmd_params p = {opt & 1, (opt & 2) != 0, (uint8_t)bits, (uint8_t)bits};
    wsx_pmd_config cfg = wsx_pmd_defaults();
    cfg.threshold = 0;
    cfg.mem_level = 1 + opt % 9;
    cfg.level = 1 + piece % 9;
    wsx_pmd tx, rx;
    int role = opt & 0x20 ? WSX_ROLE_CLIENT : WSX_ROLE_SERVER;
    if (wsx_pmd_init(&tx, role, &p, &cfg) || wsx_pmd_init(&rx, !role, &p, &cfg)) abort();
    wsx_pmd_buf c = {0}, d = {0};
    /* The input twice, as two messages, so the second can refer to the first. */
    for (int i = 0; i < 2; i++) {
        c.len = d.len = 0;
        int rc = wsx_pmd_compress(&tx, data, size, &c);
        if (rc == 0) continue;
        if (rc != 1) abort();
        size_t off = 0;
        do {
            size_t n = c.len - off < piece ? c.len - off : piece;
            if (wsx_pmd_inflate(&rx, c.data + off, n, off + n == c.len, false, 0, &d)) abort();
            off += n;
        } while (off < c.len);
        if (d.len != size || (size && memcmp(d.data, data, size) != 0)) abort();
    }
    wsx_pmd_free(&tx);
    wsx_pmd_free(&rx);
    wsx_pmd_buf_free(&c);
    wsx_pmd_buf_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t opt = data[0];
    size_t piece = 1 + data[1] % 64u * 37u;
    inflate_messages(data + 2, size - 2, opt, piece);
    round_trip(data + 2, size - 2, opt, piece);
    return 0;
}
