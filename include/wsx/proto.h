/*
 * wsx/proto.h — the sans-IO WebSocket protocol core (RFC 6455).
 *
 * Nothing here touches a socket, a clock or the heap: every function takes bytes and returns
 * events or bytes in caller-provided memory. It can be used on its own, with any event loop.
 *
 * Conventions
 *  - Fallible calls return 0 or a non-negative count on success, a negative WSX_E* code
 *    (wsx/common.h) on failure.
 *  - Outputs that point into an input buffer ("borrowed") are valid as long as that buffer
 *    is unchanged; nothing here keeps a pointer past the call.
 *  - Structs whose comment says "private" are public only so they can be embedded by value;
 *    their fields may change between releases and must not be touched.
 *  - All functions are reentrant; none keeps global state, except that the random source
 *    (OpenSSL's RAND_bytes) is process-wide and thread-safe.
 */
#ifndef WSX_PROTO_H
#define WSX_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * HTTP/1.1 message heads (RFC 9112): the request a client sends to open a WebSocket and the
 * response a server answers with.
 * ====================================================================================== */

/* One header field. Name and value borrow from the parsed buffer; the value has its
 * leading and trailing whitespace removed. Neither is NUL-terminated. */
typedef struct wsx_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} wsx_http_header;

typedef struct wsx_http_request {
    const char *method; /* borrowed, e.g. "GET" */
    size_t method_len;
    const char *target; /* borrowed request-target, e.g. "/chat?room=a" */
    size_t target_len;
    int version_major;        /* 1 */
    int version_minor;        /* 0 or 1 */
    wsx_http_header *headers; /* the caller's array passed to the parser */
    size_t n_headers;
} wsx_http_request;

typedef struct wsx_http_response {
    int version_major;
    int version_minor;
    int status;         /* 100..999 */
    const char *reason; /* borrowed reason phrase, may be empty */
    size_t reason_len;
    wsx_http_header *headers;
    size_t n_headers;
} wsx_http_response;

/*
 * Parses an HTTP/1.x request head from buf[0..len). Stateless: call again with the same
 * bytes plus whatever arrived since (the usual way to use it incrementally).
 *
 * headers/max_headers: caller storage for the header fields; req->headers points to it.
 * max_head: the largest head accepted, in bytes, including the final blank line.
 *
 * Returns the length of the head (request line, fields and the blank line) when complete;
 *   WSX_EAGAIN           the bytes so far are a valid prefix of a head; read more.
 *   WSX_EHEADTOOBIG      no complete head within max_head bytes.
 *   WSX_ETOOMANYHEADERS  more than max_headers fields.
 *   WSX_EHTTP            malformed (reported as soon as the bytes so far cannot start a
 *                        valid head, e.g. a TLS ClientHello sent to a plain port).
 * Lines may end in CRLF or a bare LF; obsolete line folding is rejected.
 * On failure *req is unspecified.
 */
WSX_API ptrdiff_t wsx_http_parse_request(const char *buf, size_t len, wsx_http_request *req,
                                         wsx_http_header *headers, size_t max_headers,
                                         size_t max_head);

/* The same for a response head ("HTTP/1.1 101 Switching Protocols"); same returns. */
WSX_API ptrdiff_t wsx_http_parse_response(const char *buf, size_t len, wsx_http_response *resp,
                                          wsx_http_header *headers, size_t max_headers,
                                          size_t max_head);

/* The first header named `name` (ASCII case-insensitive, NUL-terminated), or NULL. */
WSX_API const wsx_http_header *wsx_http_header_get(const wsx_http_header *headers, size_t n,
                                                   const char *name);

/*
 * Iterates the elements of a comma-separated list (RFC 9110 5.6.1): each call stores the
 * next non-empty element, trimmed of whitespace, in *elem and *elem_len, advances *pos and
 * returns true; returns false at the end. Start with *pos = value.
 */
WSX_API bool wsx_http_list_next(const char **pos, const char *end, const char **elem,
                                size_t *elem_len);

/* True when the comma-separated list value[0..len) has an element equal to `token`
 * (NUL-terminated), ignoring ASCII case. */
WSX_API bool wsx_http_list_has(const char *value, size_t len, const char *token);

/* True when any header named `name` has `token` in its list value (see above). */
WSX_API bool wsx_http_headers_have_token(const wsx_http_header *headers, size_t n, const char *name,
                                         const char *token);

/* The standard reason phrase for an HTTP status ("Not Found"), "Unknown" for others. */
WSX_API const char *wsx_http_status_text(int status);

/*
 * Writes a complete plain-text HTTP/1.1 response ("Connection: close", a text/plain body of
 * `body` followed by a newline) into out[0..cap). A 426 response also carries
 * "Sec-WebSocket-Version: 13" (RFC 6455 4.2.2). extra/n_extra are added verbatim; their
 * names and values must not contain CR or LF (WSX_EINVAL otherwise).
 * Returns the length written, WSX_ENOSPC if it does not fit, WSX_EINVAL.
 */
WSX_API ptrdiff_t wsx_http_write_error(int status, const char *body, const wsx_http_header *extra,
                                       size_t n_extra, char *out, size_t cap);

/* ======================================================================================
 * Percent-encoding and request paths (RFC 3986 2.1, 3.3)
 * ====================================================================================== */

/* Flags of wsx_percent_decode(). */
#define WSX_PCT_PLUS    1u /* '+' decodes to ' ' (application/x-www-form-urlencoded values) */
#define WSX_PCT_LENIENT 2u /* a '%' without two hex digits is kept as it is, not an error */

/*
 * The one percent-decoder: decodes s[0..len) into out[0..cap). "%XX" (either case) becomes
 * the byte 0xXX, including "%00": the output is bytes, not a C string, and the caller decides
 * what a NUL or a '/' from "%2F" means. out may be s itself (decoding never grows); no NUL is
 * appended. Returns the decoded length; WSX_EINVAL for a '%' not followed by two hex digits
 * (unless WSX_PCT_LENIENT, as the WHATWG URL parser does for query strings); WSX_ENOSPC when
 * the result does not fit in cap bytes (out then holds its first cap bytes, whole escapes).
 */
WSX_API ptrdiff_t wsx_percent_decode(const char *s, size_t len, unsigned flags, char *out,
                                     size_t cap);

/*
 * Cleans a request path (the target up to '?') for use as a file name under a root:
 * percent-decodes it strictly (no '+' rule) into out, collapses runs of '/' into one (so
 * "//x" can never read as a host), and NUL-terminates it. Refused with WSX_EINVAL: a path
 * that does not start with '/', a bad '%' escape, a NUL, a backslash or another control
 * character (0x01-0x1F, 0x7F) after decoding, and any "." or ".." segment, decoded or not
 * ("/a/../b", "/%2e%2e/", "/..%2f"): a cleaned path names the same file on every system and
 * cannot climb out of the root. Other bytes (UTF-8, spaces, "...") pass unchanged.
 * It decodes with wsx_percent_decode() into out first, then judges and compacts in place.
 * Returns the length of out (without the NUL); WSX_ENOSPC if the decoded path (before '/'
 * runs are collapsed) and a NUL do not fit in cap bytes.
 */
WSX_API ptrdiff_t wsx_http_path_clean(const char *path, size_t len, char *out, size_t cap);

/* ======================================================================================
 * Extension negotiation data (RFC 6455 9.1): the parsed Sec-WebSocket-Extensions list.
 * ====================================================================================== */

#define WSX_MAX_EXT_OFFERS 8
#define WSX_MAX_EXT_PARAMS 8

typedef struct wsx_ext_param {
    const char *name; /* borrowed */
    size_t name_len;
    const char *value; /* borrowed, without quotes; NULL when the parameter has no value */
    size_t value_len;
} wsx_ext_param;

typedef struct wsx_ext_offer {
    const char *name; /* borrowed extension token, e.g. "permessage-deflate" */
    size_t name_len;
    wsx_ext_param params[WSX_MAX_EXT_PARAMS];
    size_t n_params;
} wsx_ext_offer;

/*
 * Parses one Sec-WebSocket-Extensions value, appending up to `max - *n` entries to
 * out[*n..] and advancing *n. Grammar: extension *( ";" param [ "=" (token | quoted) ] )
 * separated by commas; a quoted value must be a token once unquoted (RFC 6455 9.1).
 * Returns 0; WSX_EHTTP on a syntax error; WSX_ELIMIT when there are more than `max`
 * extensions or more than WSX_MAX_EXT_PARAMS parameters in one.
 */
WSX_API int wsx_ext_parse(const char *value, size_t len, wsx_ext_offer *out, size_t max, size_t *n);

/* ======================================================================================
 * Opening handshake (RFC 6455 4).
 * ====================================================================================== */

/* Length of a Sec-WebSocket-Accept value (base64 of a SHA-1 digest), without the NUL. */
#define WSX_ACCEPT_LEN 28
/* Length of a Sec-WebSocket-Key value (base64 of 16 bytes), without the NUL. */
#define WSX_KEY_LEN 24

/*
 * Computes Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)) (RFC 6455 4.2.2).
 * out receives WSX_ACCEPT_LEN characters and a NUL. Returns 0 or WSX_ECRYPTO.
 */
WSX_API int wsx_accept_key(const char *key, size_t key_len, char out[WSX_ACCEPT_LEN + 1]);

typedef struct wsx_handshake_server_opts {
    /* Subprotocols the server speaks, most preferred first; NULL/0 for none. */
    const char *const *subprotocols;
    size_t n_subprotocols;
} wsx_handshake_server_opts;

/* The outcome of checking an upgrade request. Pointers borrow from the request buffer. */
typedef struct wsx_handshake_server {
    int status;        /* 101 when acceptable; otherwise the HTTP status to refuse with */
    const char *error; /* static text saying why, when status != 101; NULL otherwise */
    char accept[WSX_ACCEPT_LEN + 1];
    int subprotocol; /* index into opts->subprotocols of the chosen one, or -1 */
    wsx_ext_offer offers[WSX_MAX_EXT_OFFERS]; /* every extension the client offered, in order */
    size_t n_offers;
} wsx_handshake_server;

/*
 * Checks that `req` is a valid WebSocket opening handshake (RFC 6455 4.2.1): method GET,
 * HTTP/1.1 or later, a Host field, Upgrade containing "websocket", Connection containing
 * "upgrade" (token lists, any case), Sec-WebSocket-Version 13, and a Sec-WebSocket-Key that
 * is the base64 encoding of exactly 16 bytes. Picks the subprotocol by the server's
 * preference among those the client listed and parses the extension offers.
 *
 * Returns 0 with hs->status = 101, or WSX_EHANDSHAKE with hs->status and hs->error set:
 * 400 for a malformed request, 426 when Sec-WebSocket-Version is present but not 13.
 * The request path is not checked here (routing is the caller's).
 */
WSX_API int wsx_handshake_server_check(const wsx_http_request *req,
                                       const wsx_handshake_server_opts *opts,
                                       wsx_handshake_server *hs);

/*
 * Writes the 101 Switching Protocols response for an accepted handshake. `extensions` is
 * the Sec-WebSocket-Extensions value the server agreed to (NULL for none); extra/n_extra
 * are further fields (no CR/LF allowed).
 * Returns the length written, WSX_ENOSPC, or WSX_EINVAL.
 */
WSX_API ptrdiff_t wsx_handshake_server_response(const wsx_handshake_server *hs,
                                                const wsx_handshake_server_opts *opts,
                                                const char *extensions,
                                                const wsx_http_header *extra, size_t n_extra,
                                                char *out, size_t cap);

typedef struct wsx_handshake_client_opts {
    const char *host;   /* Host field value, with ":port" when not the default; required */
    const char *path;   /* request-target (path and query); "/" when NULL */
    const char *origin; /* Origin field, or NULL */
    const char *const *subprotocols; /* offered, in preference order */
    size_t n_subprotocols;
    const char *extensions;         /* Sec-WebSocket-Extensions value to offer, or NULL */
    const wsx_http_header *headers; /* extra fields; no CR/LF */
    size_t n_headers;
} wsx_handshake_client_opts;

/* Client-side handshake state. */
typedef struct wsx_handshake_client {
    char key[WSX_KEY_LEN + 1];       /* the nonce sent */
    char accept[WSX_ACCEPT_LEN + 1]; /* the Sec-WebSocket-Accept value expected */
    int status;                      /* the response status once verified */
    const char *error;               /* static text when verification failed */
    int subprotocol;                 /* index into opts->subprotocols chosen by the server, or -1 */
    const char *extensions;          /* the server's Sec-WebSocket-Extensions (borrowed), or NULL */
    size_t extensions_len;
} wsx_handshake_client;

/*
 * Writes the opening request (GET, Host, Upgrade, Connection, Sec-WebSocket-Key with 16
 * fresh bytes from the CSPRNG, Sec-WebSocket-Version: 13, the optional fields) and records
 * the key and expected accept value in *hs.
 * Returns the length written; WSX_ENOSPC; WSX_EINVAL (no host, or CR/LF in a value);
 * WSX_ECRYPTO (no random bytes).
 */
WSX_API ptrdiff_t wsx_handshake_client_request(const wsx_handshake_client_opts *opts,
                                               wsx_handshake_client *hs, char *out, size_t cap);

/*
 * Verifies the server's response (RFC 6455 4.2.2 / 4.1): status 101, Upgrade websocket,
 * Connection upgrade, the matching Sec-WebSocket-Accept, a subprotocol only if it was offered,
 * extensions only if offered (by name). Returns 0, or WSX_EHANDSHAKE with hs->error set.
 */
WSX_API int wsx_handshake_client_verify(wsx_handshake_client *hs,
                                        const wsx_handshake_client_opts *opts,
                                        const wsx_http_response *resp);

/* ======================================================================================
 * UTF-8 (RFC 3629), incremental. The state is 0 (WSX_UTF8_ACCEPT) between complete
 * characters, WSX_UTF8_REJECT once the input cannot be valid, and something else inside a
 * multi-byte sequence. Rejects overlong forms, surrogates and code points above U+10FFFF as
 * soon as the offending byte is seen, so a text message fails at the earliest byte.
 * ====================================================================================== */

#define WSX_UTF8_ACCEPT 0u
#define WSX_UTF8_REJECT 1u

/* Feeds s[0..len) to the validator in `state` and returns the new state. A REJECT state
 * stays REJECT. */
WSX_API uint32_t wsx_utf8_feed(uint32_t state, const uint8_t *s, size_t len);

/* True when s[0..len) is complete, valid UTF-8. */
WSX_API bool wsx_utf8_valid(const uint8_t *s, size_t len);

/* ======================================================================================
 * Frames (RFC 6455 5).
 * ====================================================================================== */

#define WSX_FIN         0x80u
#define WSX_RSV1        0x40u
#define WSX_RSV2        0x20u
#define WSX_RSV3        0x10u
#define WSX_MAX_HEADER  14  /* the longest frame header: 2 + 8 length + 4 mask */
#define WSX_MAX_CONTROL 125 /* the longest control frame payload */

enum wsx_role { WSX_ROLE_SERVER = 0, WSX_ROLE_CLIENT = 1 };

typedef struct wsx_parser_opts {
    int role;             /* WSX_ROLE_SERVER: frames must be masked; CLIENT: must not be */
    uint8_t rsv_allowed;  /* RSV bits a negotiated extension allows on a message's first frame
                             (WSX_RSV1 for permessage-deflate); others are errors */
    uint64_t max_frame;   /* largest frame payload accepted; 0 = no limit */
    uint64_t max_message; /* largest message (sum of its frames); 0 = no limit */
    /* Limits above 4 GiB - 1 are taken as 4 GiB - 1: the parser keeps them in 32 bits so
     * that it stays small (it is embedded in every connection). */
    /* Most frames one message may have, its first frame included; the next one fails with
     * 1009 (WSX_ETOOBIG, "message has too many fragments"). Empty continuation frames count
     * too: without this bound a peer can keep one message open forever at no cost to
     * itself. 0 = no limit. */
    uint32_t max_fragments;
} wsx_parser_opts;

/* Frame parser state, 40 bytes, embeddable by value. Private fields. */
typedef struct wsx_parser {
    uint64_t remaining; /* payload bytes still to come in the current frame */
    uint32_t msg_len;   /* payload bytes of the current message so far, saturating at
                           4 GiB - 1 (only compared with max_message, which is 32 bits) */
    uint32_t max_frame; /* 0 = no limit */
    uint32_t max_message;
    uint32_t frags;         /* frames of the current message so far */
    uint32_t max_fragments; /* 0 = no limit */
    uint8_t mask[4];        /* the current frame's masking key */
    uint8_t utf8;           /* validator state of the current text message (it fits a byte) */
    uint8_t mask_off;       /* position in the key of the next payload byte */
    uint8_t state;          /* between frames / inside a frame's payload */
    uint8_t frame_b0;       /* first header byte of the current frame */
    uint8_t msg_b0;         /* first header byte of the current message's first frame, 0 when
                               no message is open */
    uint8_t role;
    uint8_t rsv_allowed;
    uint8_t err_reason; /* index of the static text after a failure (it implies the code) */
} wsx_parser;

enum wsx_event_type {
    WSX_EV_NONE = 0, /* nothing complete yet */
    WSX_EV_DATA,     /* a piece of a text or binary message */
    WSX_EV_PING,
    WSX_EV_PONG,
    WSX_EV_CLOSE,
};

typedef struct wsx_event {
    int type;        /* enum wsx_event_type */
    uint8_t opcode;  /* DATA: the message's opcode (WSX_OP_TEXT / WSX_OP_BINARY);
                        otherwise the control opcode */
    bool first;      /* DATA: the first piece of the message */
    bool last;       /* DATA: the final piece of the message (FIN frame, all of it) */
    bool compressed; /* DATA: RSV1 was set on the message's first frame */
    uint8_t *data;   /* payload piece, unmasked in place inside the caller's buffer.
                        CLOSE: the reason (after the code), possibly empty */
    size_t len;
    uint16_t close_code; /* CLOSE: the code, or WSX_CLOSE_NO_STATUS (1005) if none was sent */
} wsx_event;

/* Prepares a parser. opts may be NULL (server role, no RSV bits, no limits). */
WSX_API void wsx_parser_init(wsx_parser *p, const wsx_parser_opts *opts);

/* Changes the RSV bits allowed (after extension negotiation). */
WSX_API void wsx_parser_set_rsv(wsx_parser *p, uint8_t rsv_allowed);

/* Changes the frame and message limits (0 = none; above 4 GiB - 1 taken as 4 GiB - 1), e.g.
 * to allow for compression overhead once permessage-deflate is agreed. Applies from the next
 * frame header. */
WSX_API void wsx_parser_set_limits(wsx_parser *p, uint64_t max_frame, uint64_t max_message);

/*
 * Consumes bytes from buf[0..len) and reports at most one event in *ev.
 *
 * Returns the number of bytes consumed (>= 0). The caller advances by that many and calls
 * again while it returns > 0; a return of 0 means a complete header (or, for a control
 * frame, the complete frame) is not yet in the buffer: keep the unconsumed bytes and call
 * again with them and more. Payload of text and binary frames is reported as it arrives,
 * in pieces (WSX_EV_DATA), unmasked in place in buf; control frames are reported whole.
 * A consumed frame header without payload yet gives ev->type == WSX_EV_NONE and a
 * positive return.
 *
 * Text messages are validated as UTF-8 unless compressed (the caller validates the
 * inflated text). Close frames are validated (code, UTF-8 reason).
 *
 * On a protocol violation returns
 *   WSX_EPROTO      (close code 1002): bad opcode, RSV bit, masking, control frame
 *                   too long or fragmented, continuation without a start, a new message
 *                   inside a fragmented one, 64-bit length with the top bit, bad close
 *                   frame (1-byte payload or invalid code);
 *   WSX_EINVALDATA  (1007): invalid UTF-8 in a text message or close reason;
 *   WSX_ETOOBIG     (1009): a frame or message above the configured limit, or a
 *                   message with more frames than max_fragments.
 * wsx_parser_close_code() and wsx_parser_error() then tell the code and a short reason.
 * After a failure the parser stays failed.
 */
WSX_API ptrdiff_t wsx_parser_feed(wsx_parser *p, uint8_t *buf, size_t len, wsx_event *ev);

/* The close code to fail the connection with after a failure (1002/1007/1009), else 0. */
WSX_API uint16_t wsx_parser_close_code(const wsx_parser *p);

/* A short static reason after a failure, suitable for a close frame; NULL otherwise. */
WSX_API const char *wsx_parser_error(const wsx_parser *p);

/* True when a fragmented message is open (some but not all of it received). */
WSX_API bool wsx_parser_in_message(const wsx_parser *p);

/*
 * Writes a frame header for a payload of `len` bytes into out (at least WSX_MAX_HEADER
 * bytes). b0 is the first byte: FIN and RSV bits or-ed with the opcode. mask is the 4-byte
 * masking key for a client frame, or NULL for a server frame. Returns the header length
 * (2 to 14). The payload itself is not touched: a client masks it with wsx_mask().
 */
WSX_API size_t wsx_frame_header(uint8_t *out, uint8_t b0, uint64_t len, const uint8_t *mask);

/* XORs data[0..len) with the key, starting at key position `offset` (0..3) — the same
 * operation masks and unmasks. Works a machine word at a time. */
WSX_API void wsx_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);

/*
 * Writes a whole frame (header and payload, masked when mask != NULL) into out[0..cap).
 * Returns its length or WSX_ENOSPC. For control frames (opcode >= 8) a payload over 125
 * bytes is WSX_EINVAL.
 */
WSX_API ptrdiff_t wsx_frame_write(uint8_t *out, size_t cap, uint8_t b0, const uint8_t *payload,
                                  size_t len, const uint8_t *mask);

/* True when `code` may be sent in a close frame (RFC 6455 7.4): 1000-1003, 1007-1014,
 * 3000-4999. */
WSX_API bool wsx_close_code_valid(unsigned code);

/*
 * Writes a close frame payload: the code in network order and the reason, cut to 123 bytes
 * at a character boundary. code 0 means "no code" (an empty payload). out needs 125 bytes.
 * Returns the payload length.
 */
WSX_API size_t wsx_close_payload(uint8_t out[WSX_MAX_CONTROL], unsigned code, const char *reason,
                                 size_t reason_len);

/* ======================================================================================
 * Randomness for client masks and handshake keys (RFC 6455 5.3, 4.1): from OpenSSL's
 * CSPRNG, fetched in batches so a mask costs no system call.
 * ====================================================================================== */

/* Mask source state, embeddable. Private fields. Not thread-safe: one per thread/loop. */
typedef struct wsx_maskgen {
    uint8_t pool[256];
    uint32_t pos;
} wsx_maskgen;

/* Prepares a mask source (the pool is filled on first use). */
WSX_API void wsx_maskgen_init(wsx_maskgen *g);

/* Writes the next unpredictable 4-byte key. Returns 0 or WSX_ECRYPTO. */
WSX_API int wsx_maskgen_next(wsx_maskgen *g, uint8_t out[4]);

/* Fills out[0..len) from the CSPRNG. Returns 0 or WSX_ECRYPTO. */
WSX_API int wsx_random_bytes(uint8_t *out, size_t len);

#ifdef __cplusplus
}
#endif
#endif
