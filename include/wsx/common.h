/*
 * wsx — common definitions shared by every layer: error codes, opcodes, close codes.
 *
 * Every fallible wsx call returns 0 (or a non-negative count) on success and a negative
 * WSX_E* code on failure. wsx_strerror() turns a code into a short English sentence.
 */
#ifndef WSX_COMMON_H
#define WSX_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(WSX_STATIC_ONLY)
#define WSX_API __attribute__((visibility("default")))
#else
#define WSX_API
#endif

/*
 * The error table: X(NAME, value, message). Values are stable across releases;
 * new codes are only ever appended.
 */
#define WSX_ERRNO_MAP(X)                                                                           \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EAGAIN, -3, "more input is needed")                                                          \
    X(EHTTP, -4, "malformed HTTP message")                                                         \
    X(EHEADTOOBIG, -5, "HTTP head exceeds the size limit")                                         \
    X(ETOOMANYHEADERS, -6, "HTTP head has too many header fields")                                 \
    X(EHANDSHAKE, -7, "WebSocket handshake failed")                                                \
    X(EPROTO, -8, "WebSocket protocol error")                                                      \
    X(EINVALDATA, -9, "invalid message data (not UTF-8)")                                          \
    X(ETOOBIG, -10, "message exceeds the size limit")                                              \
    X(ENOSPC, -11, "output buffer too small")                                                      \
    X(EBACKPRESSURE, -12, "send queue is above its high-water mark")                               \
    X(ECLOSED, -13, "connection is closing or closed")                                             \
    X(ETIMEDOUT, -14, "operation timed out")                                                       \
    X(ECONNREFUSED, -15, "connection refused")                                                     \
    X(ERESOLVE, -16, "host name could not be resolved")                                            \
    X(ETLS, -17, "TLS error")                                                                      \
    X(ESYS, -18, "system call failed (see errno)")                                                 \
    X(EURL, -19, "malformed or unsupported URL")                                                   \
    X(ELIMIT, -20, "resource limit reached")                                                       \
    X(ECRYPTO, -21, "cryptographic library failure")                                               \
    X(ENOTFOUND, -22, "not found")                                                                 \
    X(EADDRINUSE, -23, "address already in use")                                                   \
    X(ECANCELED, -24, "operation canceled")

enum wsx_errno {
    WSX_OK = 0,
#define WSX__ERR_ENUM(name, val, msg) WSX_##name = (val),
    WSX_ERRNO_MAP(WSX__ERR_ENUM)
#undef WSX__ERR_ENUM
};

/* A static, NUL-terminated description of `err` ("unknown error" for unknown codes). */
WSX_API const char *wsx_strerror(int err);

/* The symbolic name of `err` ("WSX_EPROTO"), or "WSX_E?" for unknown codes. */
WSX_API const char *wsx_err_name(int err);

/*
 * What went wrong, in more words than the code: filled by the calls whose failures the code
 * alone does not explain (which file could not be loaded, OpenSSL's reason), through an
 * optional `wsx_error *err` argument (NULL: not wanted). Such a call sets err->code to what
 * it returns (0 on success) and err->detail to a sentence, or "" when the code says it all.
 * The caller owns the struct; nothing is kept per thread. docs/design.md, "Errors".
 */
typedef struct wsx_error {
    int code;
    char detail[256];
} wsx_error;

/* Opcodes (RFC 6455 5.2). */
enum wsx_opcode {
    WSX_OP_CONT = 0x0,
    WSX_OP_TEXT = 0x1,
    WSX_OP_BINARY = 0x2,
    WSX_OP_CLOSE = 0x8,
    WSX_OP_PING = 0x9,
    WSX_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 7.4.1). */
enum wsx_close_code {
    WSX_CLOSE_NORMAL = 1000,
    WSX_CLOSE_GOING_AWAY = 1001,
    WSX_CLOSE_PROTOCOL_ERROR = 1002,
    WSX_CLOSE_UNSUPPORTED = 1003,
    WSX_CLOSE_NO_STATUS = 1005, /* never on the wire: the close frame had no code */
    WSX_CLOSE_ABNORMAL = 1006,  /* never on the wire: TCP closed without a close frame */
    WSX_CLOSE_INVALID_DATA = 1007,
    WSX_CLOSE_POLICY = 1008,
    WSX_CLOSE_TOO_BIG = 1009,
    WSX_CLOSE_MANDATORY_EXT = 1010,
    WSX_CLOSE_INTERNAL_ERROR = 1011,
    WSX_CLOSE_SERVICE_RESTART = 1012,
    WSX_CLOSE_TRY_AGAIN = 1013,
    WSX_CLOSE_BAD_GATEWAY = 1014,
    WSX_CLOSE_TLS_FAILED = 1015, /* never on the wire */
};

/* The close code a peer is failed with for a protocol-level error: WSX_EPROTO -> 1002,
 * WSX_EINVALDATA -> 1007, WSX_ETOOBIG -> 1009, anything else -> 1011. */
WSX_API uint16_t wsx_err_close_code(int err);

#ifdef __cplusplus
}
#endif
#endif
