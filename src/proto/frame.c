/*
 * Frame parsing and writing (RFC 6455 section 5).
 *
 * The parser consumes a frame header only once all of it is in the buffer (at most 14
 * bytes), and a control frame only once all of it is there (at most 139 bytes); the caller
 * keeps unconsumed bytes and presents them again. Data payloads stream through in pieces,
 * unmasked in place. The parser therefore needs no buffer of its own and fits in a few
 * dozen bytes per connection.
 */
#include <string.h>

#include "wsx/proto.h"

enum {
    ST_HEADER = 0,
    ST_PAYLOAD = 1, /* inside a data frame's payload */
    ST_FAILED = 2,
    F_FIRST = 0x10, /* the message's first piece has not been reported yet */
};

/* Failure reasons, kept as a one-byte index in the parser. */
enum {
    E_NONE = 0,
    E_RSV_BIT_SET_ON_A_CONTINUATION_FRAME,
    E_RSV_BIT_SET_ON_A_CONTROL_FRAME,
    E_RSV_BIT_SET_WITHOUT_A_NEGOTIATED_EXTENSION,
    E_CLIENT_FRAME_IS_NOT_MASKED,
    E_CLOSE_FRAME_WITH_A_1_BYTE_PAYLOAD,
    E_CONTINUATION_FRAME_WITHOUT_A_MESSAGE,
    E_CONTROL_FRAME_LONGER_THAN_125_BYTES,
    E_FRAGMENTED_CONTROL_FRAME,
    E_FRAME_EXCEEDS_THE_SIZE_LIMIT,
    E_FRAME_LENGTH_HAS_THE_TOP_BIT_SET,
    E_INVALID_UTF_8_IN_CLOSE_REASON,
    E_INVALID_UTF_8_IN_TEXT_MESSAGE,
    E_INVALID_CLOSE_CODE,
    E_MESSAGE_EXCEEDS_THE_SIZE_LIMIT,
    E_NEW_MESSAGE_INSIDE_A_FRAGMENTED_MESSAGE,
    E_RESERVED_OPCODE,
    E_SERVER_FRAME_IS_MASKED,
    E_TEXT_MESSAGE_ENDS_INSIDE_A_UTF_8_SEQUENCE,
    E_MESSAGE_HAS_TOO_MANY_FRAGMENTS,
};

static const char *const reasons[] = {
    [E_NONE] = NULL,
    [E_RSV_BIT_SET_ON_A_CONTINUATION_FRAME] = "RSV bit set on a continuation frame",
    [E_RSV_BIT_SET_ON_A_CONTROL_FRAME] = "RSV bit set on a control frame",
    [E_RSV_BIT_SET_WITHOUT_A_NEGOTIATED_EXTENSION] = "RSV bit set without a negotiated extension",
    [E_CLIENT_FRAME_IS_NOT_MASKED] = "client frame is not masked",
    [E_CLOSE_FRAME_WITH_A_1_BYTE_PAYLOAD] = "close frame with a 1-byte payload",
    [E_CONTINUATION_FRAME_WITHOUT_A_MESSAGE] = "continuation frame without a message",
    [E_CONTROL_FRAME_LONGER_THAN_125_BYTES] = "control frame longer than 125 bytes",
    [E_FRAGMENTED_CONTROL_FRAME] = "fragmented control frame",
    [E_FRAME_EXCEEDS_THE_SIZE_LIMIT] = "frame exceeds the size limit",
    [E_FRAME_LENGTH_HAS_THE_TOP_BIT_SET] = "frame length has the top bit set",
    [E_INVALID_UTF_8_IN_CLOSE_REASON] = "invalid UTF-8 in close reason",
    [E_INVALID_UTF_8_IN_TEXT_MESSAGE] = "invalid UTF-8 in text message",
    [E_INVALID_CLOSE_CODE] = "invalid close code",
    [E_MESSAGE_EXCEEDS_THE_SIZE_LIMIT] = "message exceeds the size limit",
    [E_NEW_MESSAGE_INSIDE_A_FRAGMENTED_MESSAGE] = "new message inside a fragmented message",
    [E_RESERVED_OPCODE] = "reserved opcode",
    [E_SERVER_FRAME_IS_MASKED] = "server frame is masked",
    [E_TEXT_MESSAGE_ENDS_INSIDE_A_UTF_8_SEQUENCE] = "text message ends inside a UTF-8 sequence",
    [E_MESSAGE_HAS_TOO_MANY_FRAGMENTS] = "message has too many fragments",
};

/* The close code of a failure follows from its reason, so the parser keeps only the reason. */
static uint16_t code_of(uint8_t reason)
{
    switch (reason) {
    case E_INVALID_UTF_8_IN_CLOSE_REASON:
    case E_INVALID_UTF_8_IN_TEXT_MESSAGE:
    case E_TEXT_MESSAGE_ENDS_INSIDE_A_UTF_8_SEQUENCE:
        return WSX_CLOSE_INVALID_DATA;
    case E_FRAME_EXCEEDS_THE_SIZE_LIMIT:
    case E_MESSAGE_EXCEEDS_THE_SIZE_LIMIT:
    /* Too many frames is a message too big in frames rather than bytes: 1009, as for size. */
    case E_MESSAGE_HAS_TOO_MANY_FRAGMENTS:
        return WSX_CLOSE_TOO_BIG;
    default:
        return WSX_CLOSE_PROTOCOL_ERROR;
    }
}

static uint32_t limit32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void wsx_parser_init(wsx_parser *p, const wsx_parser_opts *opts)
{
    memset(p, 0, sizeof *p);
    if (opts) {
        p->role = (uint8_t)opts->role;
        p->rsv_allowed = opts->rsv_allowed & (WSX_RSV1 | WSX_RSV2 | WSX_RSV3);
        p->max_frame = limit32(opts->max_frame);
        p->max_message = limit32(opts->max_message);
        p->max_fragments = opts->max_fragments;
    }
}

void wsx_parser_set_rsv(wsx_parser *p, uint8_t rsv_allowed)
{
    p->rsv_allowed = rsv_allowed & (WSX_RSV1 | WSX_RSV2 | WSX_RSV3);
}

void wsx_parser_set_limits(wsx_parser *p, uint64_t max_frame, uint64_t max_message)
{
    p->max_frame = limit32(max_frame);
    p->max_message = limit32(max_message);
}

uint16_t wsx_parser_close_code(const wsx_parser *p)
{
    return (p->state & 0xF) == ST_FAILED ? code_of(p->err_reason) : 0;
}

const char *wsx_parser_error(const wsx_parser *p)
{
    return (p->state & 0xF) == ST_FAILED ? reasons[p->err_reason] : NULL;
}

bool wsx_parser_in_message(const wsx_parser *p)
{
    return p->msg_b0 != 0;
}

static int err_for_code(uint16_t code)
{
    return code == WSX_CLOSE_INVALID_DATA ? WSX_EINVALDATA
           : code == WSX_CLOSE_TOO_BIG    ? WSX_ETOOBIG
                                          : WSX_EPROTO;
}

static ptrdiff_t fail(wsx_parser *p, uint16_t code, uint8_t reason)
{
    p->state = ST_FAILED;
    p->err_reason = reason;
    return err_for_code(code);
}

bool wsx_close_code_valid(unsigned code)
{
    /* RFC 6455 7.4.1/7.4.2 and the IANA registry: 1004-1006 and 1015 are reserved or
     * never sent; 1016-2999 are unassigned; 3000-4999 are for libraries and applications. */
    if (code >= 1000 && code <= 1003) return true;
    if (code >= 1007 && code <= 1014) return true;
    return code >= 3000 && code <= 4999;
}

/* Checks what the first header byte alone can tell (RFC 6455 5.2, 5.4, 5.5). */
static ptrdiff_t check_b0(wsx_parser *p, uint8_t b0)
{
    uint8_t op = b0 & 0x0F;
    uint8_t rsv = b0 & 0x70;
    if (op >= WSX_OP_CLOSE) {
        if (op > WSX_OP_PONG) return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_RESERVED_OPCODE);
        if (!(b0 & WSX_FIN)) return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_FRAGMENTED_CONTROL_FRAME);
        if (rsv) return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_RSV_BIT_SET_ON_A_CONTROL_FRAME);
        return 0;
    }
    if (op > WSX_OP_BINARY) return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_RESERVED_OPCODE);
    if (op == WSX_OP_CONT) {
        if (!p->msg_b0)
            return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_CONTINUATION_FRAME_WITHOUT_A_MESSAGE);
        /* RFC 7692 6.1: RSV1 marks a message on its first frame only. */
        if (rsv) return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_RSV_BIT_SET_ON_A_CONTINUATION_FRAME);
        return 0;
    }
    if (p->msg_b0)
        return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_NEW_MESSAGE_INSIDE_A_FRAGMENTED_MESSAGE);
    if (rsv & ~p->rsv_allowed)
        return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_RSV_BIT_SET_WITHOUT_A_NEGOTIATED_EXTENSION);
    return 0;
}

static ptrdiff_t control_event(wsx_parser *p, uint8_t op, uint8_t *pl, size_t n, wsx_event *ev)
{
    ev->opcode = op;
    ev->data = pl;
    ev->len = n;
    if (op == WSX_OP_PING) {
        ev->type = WSX_EV_PING;
    } else if (op == WSX_OP_PONG) {
        ev->type = WSX_EV_PONG;
    } else {
        ev->type = WSX_EV_CLOSE;
        ev->close_code = WSX_CLOSE_NO_STATUS;
        if (n == 1) return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_CLOSE_FRAME_WITH_A_1_BYTE_PAYLOAD);
        if (n >= 2) {
            unsigned code = (unsigned)pl[0] << 8 | pl[1];
            if (!wsx_close_code_valid(code))
                return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_INVALID_CLOSE_CODE);
            if (!wsx_utf8_valid(pl + 2, n - 2))
                return fail(p, WSX_CLOSE_INVALID_DATA, E_INVALID_UTF_8_IN_CLOSE_REASON);
            ev->close_code = (uint16_t)code;
            ev->data = pl + 2;
            ev->len = n - 2;
        }
    }
    return 0;
}

static ptrdiff_t payload(wsx_parser *p, uint8_t *buf, size_t len, wsx_event *ev)
{
    size_t n = p->remaining < len ? (size_t)p->remaining : len;
    if (n == 0) return 0;
    if (p->role == WSX_ROLE_SERVER) {
        wsx_mask(buf, n, p->mask, p->mask_off);
        p->mask_off = (uint8_t)((p->mask_off + n) & 3);
    }
    p->remaining -= n;
    bool last = p->remaining == 0 && (p->frame_b0 & WSX_FIN);
    uint8_t op = p->msg_b0 & 0x0F;
    bool compressed = (p->msg_b0 & WSX_RSV1) != 0;
    if (op == WSX_OP_TEXT && !compressed) {
        p->utf8 = (uint8_t)wsx_utf8_feed(p->utf8, buf, n);
        if (p->utf8 == WSX_UTF8_REJECT)
            return fail(p, WSX_CLOSE_INVALID_DATA, E_INVALID_UTF_8_IN_TEXT_MESSAGE);
        if (last && p->utf8 != WSX_UTF8_ACCEPT)
            return fail(p, WSX_CLOSE_INVALID_DATA, E_TEXT_MESSAGE_ENDS_INSIDE_A_UTF_8_SEQUENCE);
    }
    ev->type = WSX_EV_DATA;
    ev->opcode = op;
    ev->first = (p->state & F_FIRST) != 0;
    ev->last = last;
    ev->compressed = compressed;
    ev->data = buf;
    ev->len = n;
    p->state = p->remaining ? ST_PAYLOAD : ST_HEADER;
    if (last) p->msg_b0 = 0;
    return (ptrdiff_t)n;
}

ptrdiff_t wsx_parser_feed(wsx_parser *p, uint8_t *buf, size_t len, wsx_event *ev)
{
    ev->type = WSX_EV_NONE;
    ev->opcode = 0;
    ev->first = ev->last = ev->compressed = false;
    ev->data = NULL;
    ev->len = 0;
    ev->close_code = 0;
    uint8_t st = p->state & 0xF;
    if (st == ST_FAILED) return err_for_code(code_of(p->err_reason));
    if (st == ST_PAYLOAD) return payload(p, buf, len, ev);
    if (len == 0) return 0;

    uint8_t b0 = buf[0];
    ptrdiff_t rc = check_b0(p, b0);
    if (rc < 0) return rc;
    if (len < 2) return 0;

    uint8_t b1 = buf[1];
    bool masked = (b1 & 0x80) != 0;
    /* RFC 6455 5.1: clients always mask, servers never do. */
    if (p->role == WSX_ROLE_SERVER && !masked)
        return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_CLIENT_FRAME_IS_NOT_MASKED);
    if (p->role == WSX_ROLE_CLIENT && masked)
        return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_SERVER_FRAME_IS_MASKED);

    uint8_t op = b0 & 0x0F;
    uint64_t plen = b1 & 0x7F;
    bool control = op >= WSX_OP_CLOSE;
    /* RFC 6455 5.5: control frame payloads are at most 125 bytes. */
    if (control && plen > WSX_MAX_CONTROL)
        return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_CONTROL_FRAME_LONGER_THAN_125_BYTES);

    size_t hlen = 2 + (plen == 126 ? 2 : plen == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (len < hlen) return 0;
    if (plen == 126) {
        plen = (uint64_t)buf[2] << 8 | buf[3];
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        /* RFC 6455 5.2: the most significant bit of a 64-bit length must be 0. */
        if (plen >> 63)
            return fail(p, WSX_CLOSE_PROTOCOL_ERROR, E_FRAME_LENGTH_HAS_THE_TOP_BIT_SET);
    }
    if (masked) memcpy(p->mask, buf + hlen - 4, 4);

    if (control) {
        if (len - hlen < plen) return 0;
        uint8_t *pl = buf + hlen;
        if (masked) wsx_mask(pl, (size_t)plen, p->mask, 0);
        rc = control_event(p, op, pl, (size_t)plen, ev);
        if (rc < 0) return rc;
        return (ptrdiff_t)(hlen + plen);
    }

    /* Limits are checked on the header, before any of the payload is buffered. */
    if (p->max_frame && plen > p->max_frame)
        return fail(p, WSX_CLOSE_TOO_BIG, E_FRAME_EXCEEDS_THE_SIZE_LIMIT);
    uint32_t so_far = op == WSX_OP_CONT ? p->msg_len : 0;
    if (p->max_message && plen > p->max_message - so_far)
        return fail(p, WSX_CLOSE_TOO_BIG, E_MESSAGE_EXCEEDS_THE_SIZE_LIMIT);
    if (op == WSX_OP_CONT && p->max_fragments && p->frags >= p->max_fragments)
        return fail(p, WSX_CLOSE_TOO_BIG, E_MESSAGE_HAS_TOO_MANY_FRAGMENTS);

    if (op != WSX_OP_CONT) {
        p->msg_b0 = b0;
        p->msg_len = 0;
        p->frags = 0;
        p->utf8 = WSX_UTF8_ACCEPT;
        p->state = ST_HEADER | F_FIRST;
    }
    p->msg_len = plen >= UINT32_MAX - so_far ? UINT32_MAX : so_far + (uint32_t)plen;
    if (p->frags < UINT32_MAX) p->frags++;
    p->frame_b0 = b0;
    p->remaining = plen;
    p->mask_off = 0;

    if (plen == 0) {
        /* An empty frame is reported at once so an empty message is not lost. */
        bool last = (b0 & WSX_FIN) != 0;
        uint8_t mop = p->msg_b0 & 0x0F;
        if (last && mop == WSX_OP_TEXT && !(p->msg_b0 & WSX_RSV1) && p->utf8 != WSX_UTF8_ACCEPT)
            return fail(p, WSX_CLOSE_INVALID_DATA, E_TEXT_MESSAGE_ENDS_INSIDE_A_UTF_8_SEQUENCE);
        ev->type = WSX_EV_DATA;
        ev->opcode = mop;
        ev->first = (p->state & F_FIRST) != 0;
        ev->last = last;
        ev->compressed = (p->msg_b0 & WSX_RSV1) != 0;
        ev->data = buf + hlen;
        ev->len = 0;
        p->state = ST_HEADER;
        if (last) p->msg_b0 = 0;
        return (ptrdiff_t)hlen;
    }

    p->state = (uint8_t)(ST_PAYLOAD | (p->state & F_FIRST));
    if (len == hlen) return (ptrdiff_t)hlen;
    rc = payload(p, buf + hlen, len - hlen, ev);
    if (rc < 0) return rc;
    return (ptrdiff_t)hlen + rc;
}

size_t wsx_frame_header(uint8_t *out, uint8_t b0, uint64_t len, const uint8_t *mask)
{
    uint8_t mbit = mask ? 0x80 : 0;
    size_t n;
    out[0] = b0;
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
        n = 2;
    } else if (len <= 0xFFFF) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = mbit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* 64 bytes per step in four 16-byte registers (SSE2: every x86-64 CPU); the caller finishes
 * the tail. k is the key lined up with data[0], as a 64-bit word. Returns the bytes done. */
static size_t mask_sse2(uint8_t *data, size_t len, uint64_t k)
{
    const __m128i kv = _mm_set1_epi64x((long long)k);
    size_t i = 0;
    for (; len - i >= 64; i += 64) {
        __m128i *p = (__m128i *)(void *)(data + i);
        __m128i a = _mm_loadu_si128(p), b = _mm_loadu_si128(p + 1);
        __m128i c = _mm_loadu_si128(p + 2), d = _mm_loadu_si128(p + 3);
        _mm_storeu_si128(p, _mm_xor_si128(a, kv));
        _mm_storeu_si128(p + 1, _mm_xor_si128(b, kv));
        _mm_storeu_si128(p + 2, _mm_xor_si128(c, kv));
        _mm_storeu_si128(p + 3, _mm_xor_si128(d, kv));
    }
    return i;
}
#endif

void wsx_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset)
{
    /* Whole 8-byte words with the key rotated to the current position. Unaligned loads and
     * stores through memcpy compile to plain moves on the targets we care about, which is
     * cheaper for short payloads than stepping to an aligned address first. */
    size_t i = 0;
    if (len >= 8) {
        /* The key lined up with data[0]: two copies of it, read from the offset on. */
        uint8_t k12[12];
        memcpy(k12, mask, 4);
        memcpy(k12 + 4, mask, 4);
        memcpy(k12 + 8, mask, 4);
        uint64_t k;
        memcpy(&k, k12 + (offset & 3), 8);
#if defined(__SSE2__)
        if (len >= 64) i = mask_sse2(data, len, k);
#endif
        for (; len - i >= 32; i += 32) {
            uint64_t w[4];
            memcpy(w, data + i, 32);
            w[0] ^= k;
            w[1] ^= k;
            w[2] ^= k;
            w[3] ^= k;
            memcpy(data + i, w, 32);
        }
        for (; len - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, data + i, 8);
            w ^= k;
            memcpy(data + i, &w, 8);
        }
    }
    for (; i < len; i++)
        data[i] ^= mask[(offset + i) & 3];
}

ptrdiff_t wsx_frame_write(uint8_t *out, size_t cap, uint8_t b0, const uint8_t *payload_, size_t len,
                          const uint8_t *mask)
{
    if ((b0 & 0x08) && len > WSX_MAX_CONTROL) return WSX_EINVAL;
    uint8_t hdr[WSX_MAX_HEADER];
    size_t hlen = wsx_frame_header(hdr, b0, len, mask);
    if (cap < hlen || cap - hlen < len) return WSX_ENOSPC;
    memcpy(out, hdr, hlen);
    if (len) memmove(out + hlen, payload_, len);
    if (mask) wsx_mask(out + hlen, len, mask, 0);
    return (ptrdiff_t)(hlen + len);
}

size_t wsx_close_payload(uint8_t out[WSX_MAX_CONTROL], unsigned code, const char *reason,
                         size_t reason_len)
{
    if (code == 0) return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (!reason) reason_len = 0;
    if (reason_len > WSX_MAX_CONTROL - 2) {
        /* Cut at a character boundary so the reason stays valid UTF-8 (RFC 6455 5.5.1). */
        reason_len = WSX_MAX_CONTROL - 2;
        while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xC0) == 0x80)
            reason_len--;
    }
    if (reason_len) memcpy(out + 2, reason, reason_len);
    return 2 + reason_len;
}
