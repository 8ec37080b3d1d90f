/*
 * Engine.IO v4 packet codec (engine.io-protocol v4, "Packet encoding"). The decoders are
 * stricter than the reference parser where it is lenient by accident (it decodes base64
 * with Node's forgiving decoder and takes an empty string as a packet of type 0 in places);
 * what a conforming client sends is accepted byte for byte. docs/socketio.md lists the
 * differences.
 */
#include "eio/packet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "wsx/proto.h"

static const char *const reasons[] = {
    [WSX__EIO_R_OK] = "no error",
    [WSX__EIO_R_EMPTY] = "empty packet",
    [WSX__EIO_R_TYPE] = "unknown packet type",
    [WSX__EIO_R_BASE64] = "invalid base64 in a binary packet",
    [WSX__EIO_R_UTF8] = "text packet is not UTF-8",
    [WSX__EIO_R_TOO_BIG] = "payload exceeds maxPayload",
    [WSX__EIO_R_NOMEM] = "out of memory",
};

const char *wsx__eio_reason(int reason)
{
    if (reason < 0 || (size_t)reason >= sizeof reasons / sizeof reasons[0]) return "unknown";
    return reasons[reason];
}

static int fail_reason(int *reason, int r, int err)
{
    if (reason) *reason = r;
    return err;
}

int wsx__eio_decode_ws(const uint8_t *in, size_t len, bool binary, wsx__eio_packet *out,
                       int *reason)
{
    if (binary) {
        /* engine.io-protocol v4, "WebSocket": binary payloads are sent as is. */
        *out = (wsx__eio_packet){WSX__EIO_MESSAGE, true, in, len};
        return 0;
    }
    if (len == 0) return fail_reason(reason, WSX__EIO_R_EMPTY, WSX_EPROTO);
    if (in[0] < '0' || in[0] > '6') return fail_reason(reason, WSX__EIO_R_TYPE, WSX_EPROTO);
    *out = (wsx__eio_packet){(uint8_t)(in[0] - '0'), false, in + 1, len - 1};
    return 0;
}

/* ------------------------------------------------------------------ base64 (RFC 4648 4) */

size_t wsx__base64_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

size_t wsx__base64_encode(uint8_t *out, const uint8_t *in, size_t len)
{
    if (len == 0) return 0;
    /* EVP_EncodeBlock NUL-terminates its output, which must not land past the caller's
     * buffer: all groups but the last go straight to out (their NUL is overwritten by the
     * last group), the last one through a 5-byte scratch. */
    size_t head = (len - 1) / 3 * 3;
    size_t o = 0;
    while (head > 0) {
        /* EVP_EncodeBlock takes an int length. */
        size_t n = head > (size_t)3 << 28 ? (size_t)3 << 28 : head;
        o += (size_t)EVP_EncodeBlock(out + o, in, (int)n);
        in += n;
        len -= n;
        head -= n;
    }
    unsigned char tail[5];
    EVP_EncodeBlock(tail, in, (int)len);
    memcpy(out + o, tail, 4);
    return o + 4;
}

static int b64_value(uint8_t c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

ptrdiff_t wsx__base64_decode(uint8_t *out, const uint8_t *in, size_t len)
{
    if (len % 4 != 0) return -1;
    if (len == 0) return 0;
    size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    /* EVP_DecodeBlock skips surrounding whitespace and takes '=' in odd places; the
     * alphabet is checked here so that only canonical text is accepted. */
    for (size_t i = 0; i < len - pad; i++)
        if (b64_value(in[i]) < 0) return -1;
    if (pad) {
        /* RFC 4648 3.5: the bits after the data in the last character are zero. */
        int last = b64_value(in[len - pad - 1]);
        if ((pad == 1 && (last & 0x3)) || (pad == 2 && (last & 0xf))) return -1;
    }
    size_t o = 0;
    while (len > 0) {
        size_t n = len > (size_t)1 << 30 ? (size_t)1 << 30 : len;
        int r = EVP_DecodeBlock(out + o, in, (int)n);
        if (r < 0) return -1;
        o += (size_t)r;
        in += n;
        len -= n;
    }
    return (ptrdiff_t)(o - pad);
}

/* ---------------------------------------------------------------- polling payloads */

void wsx__eio_payload_init(wsx__eio_payload *d, size_t max)
{
    memset(d, 0, sizeof *d);
    d->max = max;
}

void wsx__eio_payload_free(wsx__eio_payload *d)
{
    free(d->rec);
    free(d->bin);
    memset(d, 0, sizeof *d);
}

static ptrdiff_t payload_fail(wsx__eio_payload *d, int reason, int err)
{
    d->reason = reason;
    return err;
}

/* Decodes one record of a polling payload. */
static int decode_record(wsx__eio_payload *d, const uint8_t *r, size_t len, wsx__eio_packet *out)
{
    if (len == 0) return (int)payload_fail(d, WSX__EIO_R_EMPTY, WSX_EPROTO);
    if (r[0] == 'b') {
        size_t need = (len - 1) / 4 * 3;
        if (need > d->bin_cap) {
            uint8_t *nb = realloc(d->bin, need);
            if (!nb) return (int)payload_fail(d, WSX__EIO_R_NOMEM, WSX_ENOMEM);
            d->bin = nb;
            d->bin_cap = need;
        }
        ptrdiff_t n = wsx__base64_decode(d->bin, r + 1, len - 1);
        if (n < 0) return (int)payload_fail(d, WSX__EIO_R_BASE64, WSX_EPROTO);
        *out = (wsx__eio_packet){WSX__EIO_MESSAGE, true, d->bin, (size_t)n};
        return 0;
    }
    if (r[0] < '0' || r[0] > '6') return (int)payload_fail(d, WSX__EIO_R_TYPE, WSX_EPROTO);
    /* The body is text (the reference reads it as a UTF-8 string); a text packet goes on
     * to a WebSocket peer or a JSON parser, so it is checked here, where it arrives. */
    if (!wsx_utf8_valid(r + 1, len - 1))
        return (int)payload_fail(d, WSX__EIO_R_UTF8, WSX_EINVALDATA);
    *out = (wsx__eio_packet){(uint8_t)(r[0] - '0'), false, r + 1, len - 1};
    return 0;
}

static int keep(wsx__eio_payload *d, const uint8_t *in, size_t len)
{
    if (len == 0) return 0;
    if (d->rec_len + len > d->rec_cap) {
        size_t cap = d->rec_cap ? d->rec_cap : 256;
        while (cap < d->rec_len + len)
            cap *= 2;
        /* The total is bounded by max, so the record is too. */
        if (cap > d->max) cap = d->max;
        uint8_t *nr = realloc(d->rec, cap);
        if (!nr) return WSX_ENOMEM;
        d->rec = nr;
        d->rec_cap = cap;
    }
    memcpy(d->rec + d->rec_len, in, len);
    d->rec_len += len;
    return 0;
}

ptrdiff_t wsx__eio_payload_feed(wsx__eio_payload *d, const uint8_t *in, size_t len, bool end,
                                wsx__eio_packet *out)
{
    out->type = WSX__EIO_NONE;
    out->binary = false;
    out->data = NULL;
    out->len = 0;
    if (d->reason) return payload_fail(d, d->reason, WSX_EPROTO);
    if (d->done) return 0;
    const uint8_t *sep = len ? memchr(in, WSX__EIO_SEP, len) : NULL;
    size_t take = sep ? (size_t)(sep - in) + 1 : len;
    /* The bound is on the body (maxHttpBufferSize in the reference), counted before any
     * copy, so a peer cannot make the decoder hold more than max. */
    if (take > d->max - d->total) return payload_fail(d, WSX__EIO_R_TOO_BIG, WSX_ETOOBIG);
    d->total += take;
    size_t rlen = sep ? take - 1 : len;
    if (!sep && !end) {
        if (keep(d, in, len) < 0) return payload_fail(d, WSX__EIO_R_NOMEM, WSX_ENOMEM);
        return (ptrdiff_t)len;
    }
    if (!sep) d->done = true;
    const uint8_t *rec = in;
    if (d->rec_len) {
        if (keep(d, in, rlen) < 0) return payload_fail(d, WSX__EIO_R_NOMEM, WSX_ENOMEM);
        rec = d->rec;
        rlen = d->rec_len;
        d->rec_len = 0; /* the record stays readable in d->rec until the next call */
    }
    int rc = decode_record(d, rec, rlen, out);
    if (rc < 0) return rc;
    return (ptrdiff_t)take;
}

size_t wsx__eio_payload_len(const wsx__eio_packet *p)
{
    return 1 + (p->binary ? wsx__base64_len(p->len) : p->len);
}

size_t wsx__eio_payload_write(uint8_t *out, const wsx__eio_packet *p)
{
    if (p->binary) {
        out[0] = 'b';
        return 1 + wsx__base64_encode(out + 1, p->data, p->len);
    }
    out[0] = (uint8_t)('0' + p->type);
    if (p->len) memcpy(out + 1, p->data, p->len);
    return 1 + p->len;
}

ptrdiff_t wsx__eio_payload_encode(uint8_t *out, size_t cap, const wsx__eio_packet *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t need = wsx__eio_payload_len(&p[i]) + (i > 0);
        if (need > cap - o) return WSX_ENOSPC;
        if (i > 0) out[o++] = WSX__EIO_SEP;
        o += wsx__eio_payload_write(out + o, &p[i]);
    }
    return (ptrdiff_t)o;
}

/* ---------------------------------------------------------------- open packet, errors */

int wsx__eio_sid_new(char out[WSX__EIO_SID_LEN + 1])
{
    uint8_t raw[WSX__EIO_SID_LEN / 4 * 3];
    int rc = wsx_random_bytes(raw, sizeof raw);
    if (rc < 0) return rc;
    uint8_t b64[WSX__EIO_SID_LEN];
    wsx__base64_encode(b64, raw, sizeof raw);
    /* base64url (RFC 4648 5): the id travels in a query string. */
    for (size_t i = 0; i < sizeof b64; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[WSX__EIO_SID_LEN] = 0;
    return 0;
}

ptrdiff_t wsx__eio_open_write(char *out, size_t cap, const wsx__eio_open *o)
{
    size_t sl = strnlen(o->sid, 65);
    if (sl == 0 || sl > 64) return WSX_EINVAL;
    /* The sid goes into JSON unescaped, so its alphabet is checked (base64url). */
    for (size_t i = 0; i < sl; i++) {
        char c = o->sid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return WSX_EINVAL;
    }
    int n = snprintf(out, cap,
                     "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%u,\"pingTimeout\":%u,"
                     "\"maxPayload\":%llu}",
                     o->sid, o->upgrade_ws ? "\"websocket\"" : "", (unsigned)o->ping_interval,
                     (unsigned)o->ping_timeout, (unsigned long long)o->max_payload);
    if (n < 0 || (size_t)n >= cap) return WSX_ENOSPC;
    return n;
}

/* engine.io 6.6 build/server.js, Server.errorMessages, and the bodies it writes for them
 * (JSON.stringify({code, message})). */
static const char *const err_messages[] = {
    "Transport unknown", "Session ID unknown", "Bad handshake method",
    "Bad request",       "Forbidden",          "Unsupported protocol version",
};
static const char *const err_bodies[] = {
    "{\"code\":0,\"message\":\"Transport unknown\"}",
    "{\"code\":1,\"message\":\"Session ID unknown\"}",
    "{\"code\":2,\"message\":\"Bad handshake method\"}",
    "{\"code\":3,\"message\":\"Bad request\"}",
    "{\"code\":4,\"message\":\"Forbidden\"}",
    "{\"code\":5,\"message\":\"Unsupported protocol version\"}",
};

const char *wsx__eio_error_message(int code)
{
    return code >= 0 && code <= 5 ? err_messages[code] : NULL;
}

const char *wsx__eio_error_body(int code)
{
    return code >= 0 && code <= 5 ? err_bodies[code] : NULL;
}
