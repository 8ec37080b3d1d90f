/*
 * Engine.IO v4 packets, sans-IO (docs/socketio.md, "Engine.IO packets").
 *
 * A packet is a type (0 open .. 6 noop) and optional data. On WebSocket each packet is one
 * frame: a text frame holds the type digit and the text; a binary frame is a message packet
 * whose data is the frame, with no type byte. Over HTTP long-polling a body holds several
 * packets separated by the record separator 0x1e, binary data as `b` + base64.
 *
 * Nothing here reads a clock or touches a socket: the functions take bytes and return
 * packets or bytes, so the session layer (and a fuzzer) drives them with plain buffers.
 */
#ifndef WSX_EIO_PACKET_H
#define WSX_EIO_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsx/common.h"

enum wsx__eio_type {
    WSX__EIO_OPEN = 0,
    WSX__EIO_CLOSE = 1,
    WSX__EIO_PING = 2,
    WSX__EIO_PONG = 3,
    WSX__EIO_MESSAGE = 4,
    WSX__EIO_UPGRADE = 5,
    WSX__EIO_NOOP = 6,
    WSX__EIO_NONE = 255, /* no packet reported (the payload decoder needs more input) */
};

/* The record separator between the packets of a polling payload. */
#define WSX__EIO_SEP 0x1e

/* Why a decode failed: one value per malformed class, each with a static sentence from
 * wsx__eio_reason(). The call itself returns the WSX_E* code named next to each. */
enum wsx__eio_reason {
    WSX__EIO_R_OK = 0,
    WSX__EIO_R_EMPTY,   /* WSX_EPROTO: a packet of zero bytes (empty body, empty record) */
    WSX__EIO_R_TYPE,    /* WSX_EPROTO: the first byte is not 0-6 or `b` */
    WSX__EIO_R_BASE64,  /* WSX_EPROTO: `b` data that is not canonical padded base64 */
    WSX__EIO_R_UTF8,    /* WSX_EINVALDATA: a text packet that is not UTF-8 */
    WSX__EIO_R_TOO_BIG, /* WSX_ETOOBIG: the body exceeds the payload bound */
    WSX__EIO_R_NOMEM,   /* WSX_ENOMEM */
};

/* A decoded packet. `data` is borrowed: from the caller's input for text, from the
 * decoder's buffer for base64-decoded data (valid until the next call on that decoder). */
typedef struct wsx__eio_packet {
    uint8_t type;        /* enum wsx__eio_type */
    bool binary;         /* a message packet with binary data */
    const uint8_t *data; /* the text after the type digit, or the binary data */
    size_t len;
} wsx__eio_packet;

/* The sentence for a reason ("unknown packet type"), static. */
const char *wsx__eio_reason(int reason);

/*
 * Decodes one WebSocket frame's payload into *out. A binary frame is a binary message
 * packet (data = in, any length); a text frame must be at least the type digit '0'..'6'
 * (its UTF-8 was checked by the WebSocket layer). Returns 0, or WSX_EPROTO with *reason
 * WSX__EIO_R_EMPTY or WSX__EIO_R_TYPE (`reason` may be NULL). A text frame starting with
 * `b` is a type error: base64 is only used over polling.
 */
int wsx__eio_decode_ws(const uint8_t *in, size_t len, bool binary, wsx__eio_packet *out,
                       int *reason);

/*
 * Decoder of a polling request body (a POST). Feed the body as it arrives, in pieces of any
 * size; each call reports at most one packet. A record cut by a piece boundary is copied
 * into the decoder (so it holds at most one record, and never more than `max` bytes).
 */
typedef struct wsx__eio_payload {
    size_t max;   /* bound on the whole body, in bytes (the session's maxPayload) */
    size_t total; /* body bytes fed so far */
    uint8_t *rec; /* the record cut by a piece boundary (owned) */
    size_t rec_len, rec_cap;
    uint8_t *bin; /* base64-decoded data of the last `b` packet (owned) */
    size_t bin_cap;
    int reason; /* enum wsx__eio_reason once failed */
    bool done;  /* the last record was reported */
} wsx__eio_payload;

/* Prepares a decoder for one body of at most `max` bytes (max > 0). Allocates nothing. */
void wsx__eio_payload_init(wsx__eio_payload *d, size_t max);

/* Frees what the decoder holds; it may be initialised again. */
void wsx__eio_payload_free(wsx__eio_payload *d);

/*
 * Consumes body bytes from in[0..len) and reports at most one packet in *out.
 *
 * Returns the number of bytes consumed (>= 0). When the input holds a record separator,
 * the bytes up to and including it are consumed and the record before it is reported.
 * Otherwise all of the input is consumed and kept, and out->type is WSX__EIO_NONE, unless
 * `end` is true: `end` says that in[len) is the end of the body, and the last record (the
 * bytes after the last separator) is then reported. Call again while a packet is
 * reported; a call that reports WSX__EIO_NONE with `end` true has finished the body.
 * Every record must be a packet: an empty body, two separators in a row and a separator
 * at the end are WSX__EIO_R_EMPTY, as with the reference server.
 *
 * Errors (the decoder then stays failed; d->reason tells why):
 *   WSX_ETOOBIG     the body so far is above `max` (HTTP 413), checked before copying;
 *   WSX_EPROTO      an empty record, an unknown type, bad base64;
 *   WSX_EINVALDATA  a text packet that is not UTF-8 (a binary `b` packet is ASCII);
 *   WSX_ENOMEM.
 * A packet's data is borrowed from `in`, or from the decoder, until the next call.
 */
ptrdiff_t wsx__eio_payload_feed(wsx__eio_payload *d, const uint8_t *in, size_t len, bool end,
                                wsx__eio_packet *out);

/* The length of a packet in a polling payload (without separator): 1 + len for text,
 * 1 + the base64 length for binary. */
size_t wsx__eio_payload_len(const wsx__eio_packet *p);

/* Writes a packet's polling encoding (wsx__eio_payload_len(p) bytes, no separator, no NUL)
 * to out and returns that length. out must have room for it. */
size_t wsx__eio_payload_write(uint8_t *out, const wsx__eio_packet *p);

/*
 * Encodes packets into one polling payload in out[0..cap): the packets in order,
 * separated by 0x1e. Returns the length, or WSX_ENOSPC when cap is too small (out is then
 * partly written).
 */
ptrdiff_t wsx__eio_payload_encode(uint8_t *out, size_t cap, const wsx__eio_packet *p, size_t n);

/* The length of base64 for `len` bytes (padded), and the bytes base64 text of `len`
 * characters decodes to at most. */
size_t wsx__base64_len(size_t len);

/* Base64 (RFC 4648 4, padded) of in[0..len) into out (wsx__base64_len(len) bytes, no NUL
 * written past them). Returns the length. */
size_t wsx__base64_encode(uint8_t *out, const uint8_t *in, size_t len);

/* Decodes canonical padded base64 in[0..len) into out (room for len / 4 * 3 bytes).
 * Returns the decoded length, or -1 when the text is not canonical padded base64: a length
 * that is not a multiple of 4, a byte outside the alphabet, padding other than one or two
 * trailing '=', or non-zero bits in the unused part of the last character. */
ptrdiff_t wsx__base64_decode(uint8_t *out, const uint8_t *in, size_t len);

/* What the open packet announces. */
typedef struct wsx__eio_open {
    const char *sid; /* the session id: 20 characters of [A-Za-z0-9_-], NUL-terminated */
    bool upgrade_ws; /* "upgrades":["websocket"] (a polling session that may upgrade) */
    uint32_t ping_interval, ping_timeout; /* ms */
    uint64_t max_payload;                 /* bytes */
} wsx__eio_open;

/* The longest open packet wsx__eio_open_write() writes for a 20-character sid. */
#define WSX__EIO_OPEN_MAX 160

/*
 * Writes the open packet, type digit included, with the fields in the reference server's
 * order: 0{"sid":"...","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,
 * "maxPayload":1000000}. Returns its length, or WSX_ENOSPC / WSX_EINVAL (a sid of the
 * wrong alphabet or longer than 64 bytes).
 */
ptrdiff_t wsx__eio_open_write(char *out, size_t cap, const wsx__eio_open *o);

/* Length of a session id: 15 CSPRNG bytes in base64url. */
#define WSX__EIO_SID_LEN 20

/* Writes a new session id (WSX__EIO_SID_LEN characters of [A-Za-z0-9_-] and a NUL) to out.
 * The id is 120 bits from OpenSSL's CSPRNG, not a counter: it is the session's only
 * credential on the polling transport. Returns 0 or WSX_ECRYPTO. */
int wsx__eio_sid_new(char out[WSX__EIO_SID_LEN + 1]);

/* The reference server's HTTP error codes (engine.io's Server.errors): the body of a 400
 * (403 for FORBIDDEN) answer is {"code":N,"message":"..."}. */
enum wsx__eio_error {
    WSX__EIO_ERR_UNKNOWN_TRANSPORT = 0,
    WSX__EIO_ERR_UNKNOWN_SID = 1,
    WSX__EIO_ERR_BAD_HANDSHAKE_METHOD = 2,
    WSX__EIO_ERR_BAD_REQUEST = 3,
    WSX__EIO_ERR_FORBIDDEN = 4,
    WSX__EIO_ERR_UNSUPPORTED_PROTOCOL_VERSION = 5,
};

/* The message of an error code ("Session ID unknown"), static; NULL for others. */
const char *wsx__eio_error_message(int code);

/* The JSON body for an error code, static and NUL-terminated:
 * {"code":1,"message":"Session ID unknown"}; NULL for unknown codes. */
const char *wsx__eio_error_body(int code);

#endif
