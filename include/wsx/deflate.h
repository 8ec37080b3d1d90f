/*
 * wsx/deflate.h — the permessage-deflate extension (RFC 7692), sans-IO.
 *
 * Two parts:
 *  - Negotiation: building and checking Sec-WebSocket-Extensions values. Pure functions on
 *    caller memory; nothing is allocated.
 *  - Compression: compressing whole outgoing messages and inflating incoming ones piece by
 *    piece. This part allocates (zlib's state through malloc, output buffers through
 *    realloc), but nothing until the first message that needs it, so a connection that never
 *    compresses holds no zlib state at all.
 *
 * Memory per connection, from zlib's documented figures (w = window bits, m = mem_level):
 *    compressor    (1 << (w + 2)) + (1 << (m + 9)) bytes, plus ~6 KiB of fixed state:
 *                  w=15, m=8: 256 KiB;  w=15, m=1: 129 KiB;  w=9, m=1: 3 KiB
 *    decompressor  (1 << w) bytes + ~7 KiB:  w=15: 39 KiB;  w=9: 7.5 KiB
 * wsx_pmd_memory() reports the exact figure of a live context. With context takeover this
 * memory lives as long as the connection (it *is* the shared LZ77 window, RFC 7692 7.2.3.2);
 * without it, wsx_pmd_trim() can give it back between messages.
 *
 * Conventions as in wsx/proto.h: 0 or a non-negative count on success, a negative WSX_E*
 * code on failure; nothing keeps a pointer to an input past the call. A wsx_pmd is not
 * thread-safe; use each from one thread at a time.
 */
#ifndef WSX_DEFLATE_H
#define WSX_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsx/common.h"
#include "wsx/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * Configuration and negotiation (RFC 7692 5, 7.1).
 * ====================================================================================== */

/*
 * What this endpoint wants. Fill it from wsx_pmd_defaults(). The same struct serves both
 * roles; each field says what it means for a server and for a client.
 */
typedef struct wsx_pmd_config {
    /* Offer (client) or accept (server) permessage-deflate at all. Default false. */
    bool enabled;
    /* Server: always answer with server_no_context_takeover, so our compressor starts
     * afresh for every message (and can be trimmed between them). Also granted whenever a
     * client asks for it. Client: ask the server for it (our decompressor then resets too).
     * Default false. */
    bool server_no_context_takeover;
    /* Server: answer with client_no_context_takeover (RFC 7692 7.1.1.2 lets a server impose
     * it), so our decompressor resets after every message. It is also echoed whenever a
     * client offers it (the client promised it anyway). Client: offer it, and do it.
     * Default false. */
    bool client_no_context_takeover;
    /* The LZ77 window (bits, 8..15) of the server's compressor. Server: the largest window
     * we compress with; a client's smaller server_max_window_bits lowers it. Client: asked
     * of the server when below 15. 0 means 15. Our own compressor never uses 8 (see
     * docs/deflate.md): a server configured with 8 uses and announces 9. Default 15. */
    int server_max_window_bits;
    /* The window (bits, 8..15) of the client's compressor. Server: the most we let a client
     * use, when the client offers client_max_window_bits (a client that does not offer it
     * uses up to 15, and our decompressor must follow). Client: the most we compress with,
     * offered as a value when below 15; 8 is raised to 9. 0 means 15. Default 15. */
    int client_max_window_bits;
    /* zlib memLevel of our compressor, 1..9: memory against speed and ratio. 0 means 8.
     * Default 8. */
    int mem_level;
    /* zlib compression level, 1..9. 0 means 6. Default 6. */
    int level;
    /* Messages shorter than this many bytes are sent uncompressed (RSV1 clear).
     * Default 64. */
    size_t threshold;
} wsx_pmd_config;

/* The defaults listed above (enabled is false: set it to true to use compression). */
WSX_API wsx_pmd_config wsx_pmd_defaults(void);

/* A buffer of this size always holds an offer or response value and its NUL. */
#define WSX_PMD_MAX_VALUE 160

/* What both ends agreed on. Filled by the negotiation functions; pass to wsx_pmd_init(). */
typedef struct wsx_pmd_params {
    bool server_no_context_takeover; /* the server resets its compressor after each message */
    bool client_no_context_takeover; /* the client resets its compressor after each message */
    uint8_t server_max_window_bits;  /* 8..15: the largest window the server compresses with */
    uint8_t client_max_window_bits;  /* 8..15: the largest window the client compresses with */
} wsx_pmd_params;

/*
 * Server side: walks the client's offers (as parsed by wsx_ext_parse() or found in
 * wsx_handshake_server.offers) in the client's order of preference and accepts the first
 * permessage-deflate offer it can (RFC 7692 5.1). An offer is declined, and the next one
 * tried, when it has an unknown parameter, a parameter twice, a value on a no_context_takeover
 * parameter, a window size that is not a plain decimal 8..15 (RFC 7692 7.1.2), or a
 * server_max_window_bits=8 (zlib cannot compress within a 256-byte window; docs/deflate.md).
 *
 * On acceptance writes the Sec-WebSocket-Extensions response value, NUL-terminated, into
 * resp[0..cap), e.g. "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
 * and the agreed parameters into *out.
 * Returns 1 accepted; 0 no acceptable offer, or cfg->enabled is false (answer without the
 * extension; resp is "" when cap > 0); WSX_ENOSPC when the response does not fit
 * (WSX_PMD_MAX_VALUE bytes always do); WSX_EINVAL for a cfg value out of range.
 */
WSX_API int wsx_pmd_server_negotiate(const wsx_ext_offer *offers, size_t n,
                                     const wsx_pmd_config *cfg, wsx_pmd_params *out, char *resp,
                                     size_t cap);

/*
 * Client side: writes the offer for cfg, NUL-terminated, into out[0..cap), e.g.
 * "permessage-deflate; client_max_window_bits". client_max_window_bits is always offered
 * (bare, or with our limit when below 15), so a server may lower our window.
 * Returns the length (0 when cfg->enabled is false: offer nothing), WSX_ENOSPC, or
 * WSX_EINVAL for a cfg value out of range. WSX_PMD_MAX_VALUE bytes are always enough.
 */
WSX_API ptrdiff_t wsx_pmd_client_offer(const wsx_pmd_config *cfg, char *out, size_t cap);

/*
 * Client side: checks the server's Sec-WebSocket-Extensions value (value[0..len), NULL/0
 * when the response had none) against what wsx_pmd_client_offer(cfg) offered (RFC 7692 5,
 * 7.1). Elements naming other extensions are ignored. Fails (the client must then fail the
 * connection, RFC 7692 5) when permessage-deflate appears although not offered or more than
 * once, or has an unknown or repeated parameter, a value on a no_context_takeover parameter,
 * a window size that is not a decimal 8..15, a server_max_window_bits above the one offered
 * or missing although offered, no server_no_context_takeover although asked for, or a
 * client_max_window_bits without a value.
 *
 * Returns 1 with *out set when permessage-deflate was agreed; 0 when the server did not
 * take it (no compression); WSX_EHANDSHAKE with *why pointing to a static sentence (why may
 * be NULL), also when the value does not parse as an extension list; WSX_EINVAL for a cfg
 * value out of range.
 */
WSX_API int wsx_pmd_client_accept(const char *value, size_t len, const wsx_pmd_config *cfg,
                                  wsx_pmd_params *out, const char **why);

/* ======================================================================================
 * Compression contexts (RFC 7692 6, 7.2).
 * ====================================================================================== */

/*
 * A growable byte buffer owned by the caller. Start from {0}; the library grows it with
 * realloc() and never shrinks it, so it can be reused; release it with wsx_pmd_buf_free()
 * (or free(data)). Bytes are appended at data + len.
 */
typedef struct wsx_pmd_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} wsx_pmd_buf;

/* Frees b->data and zeroes *b. */
WSX_API void wsx_pmd_buf_free(wsx_pmd_buf *b);

/*
 * The per-connection state, about 56 bytes, embeddable by value; private fields. It may be
 * moved (memcpy) between calls: zlib's state hangs off the two pointers.
 */
typedef struct wsx_pmd {
    void *def;        /* our compressor, NULL until the first compressed message */
    void *inf;        /* the peer's decompressor, NULL until the first compressed one */
    uint64_t msg_out; /* inflated bytes of the message being received */
    size_t threshold;
    const char *err; /* why inflating failed */
    uint32_t utf8;   /* validator state of the text message being received */
    int8_t level;
    uint8_t mem_level;
    uint8_t def_bits;  /* our compressor's window; 8 means "never compress" */
    uint8_t inf_bits;  /* the peer's window our decompressor is sized for */
    bool def_no_ctx;   /* reset our compressor after each message */
    bool inf_no_ctx;   /* reset the decompressor after each message */
    uint8_t inf_state; /* between messages / inside one / stream ended / failed */
    bool msg_any;      /* compressed bytes seen in the current message */
} wsx_pmd;

/*
 * Prepares a context for one connection. role is WSX_ROLE_SERVER or WSX_ROLE_CLIENT (it
 * picks which agreed parameters apply to our compressor and which to the decompressor).
 * params: what negotiation agreed (window bits 8..15). cfg: local settings (mem_level,
 * level, threshold); NULL for the defaults. Allocates nothing.
 * Returns 0, or WSX_EINVAL for a parameter out of range.
 */
WSX_API int wsx_pmd_init(wsx_pmd *z, int role, const wsx_pmd_params *params,
                         const wsx_pmd_config *cfg);

/* Frees the zlib state. z may be reused after another wsx_pmd_init(). */
WSX_API void wsx_pmd_free(wsx_pmd *z);

/*
 * Compresses one whole message in[0..len) (RFC 7692 7.2.1): raw DEFLATE ending in a sync
 * flush, whose trailing 00 00 ff ff is removed. The compressed payload is appended to *out
 * (grown as needed); to write a frame header in front of it without copying, reserve room
 * first, e.g. set out->len = WSX_MAX_HEADER before the call and put the header of length h
 * at out->data + WSX_MAX_HEADER - h.
 *
 * Returns
 *   1           compressed: out grew by the payload; send it with RSV1 set on the first frame.
 *   0           not compressed, out unchanged: send in[] as it is with RSV1 clear. That
 *               happens for messages below the threshold, when our window was limited to 8
 *               bits, and, without context takeover, when compressing would not make the
 *               message smaller.
 *   WSX_ENOMEM  out of memory (WSX_EINVAL if zlib failed otherwise); out is unchanged and
 *               the context has been reset, so later messages are still valid for the peer.
 * With context takeover every compressed message refers to earlier ones: each one for
 * which 1 was returned must reach the peer, in order. After the message our compressor is
 * reset when our direction is no_context_takeover.
 */
WSX_API int wsx_pmd_compress(wsx_pmd *z, const uint8_t *in, size_t len, wsx_pmd_buf *out);

/*
 * Inflates one piece of a compressed message (a data event's payload with ev.compressed
 * set), appending the output to *out. Call it for each piece in order with last = true for
 * the final one (the FIN frame's last piece, which may be empty); the 00 00 ff ff tail is
 * then supplied here (RFC 7692 7.2.2). A new message starts with the first call after a
 * last one.
 *
 * max_message bounds the inflated size of the whole message (0: no bound). It is enforced
 * while inflating: out never receives more than max_message bytes of one message, and
 * inflating stops as soon as one more byte would come out, so a small "bomb" costs at most
 * max_message bytes of buffer. When text is true the output is validated as UTF-8 as it
 * comes out, failing at the first byte that cannot be valid, and at the end if a character
 * is left incomplete.
 *
 * Returns 0, or
 *   WSX_ETOOBIG     (close 1009) the message inflates to more than max_message bytes;
 *   WSX_EINVALDATA  (close 1007) corrupt DEFLATE data, a message that does not end at a
 *                   block boundary, or invalid UTF-8 in a text message. RFC 7692 only says
 *                   to fail the connection; 1007 is the code for data inconsistent with
 *                   the message type, which corrupt compressed data is;
 *   WSX_ENOMEM      out of memory.
 * wsx_pmd_error() then gives a short reason for a close frame. Bytes appended before the
 * failure stay in out. The decompressor stays failed: fail the connection.
 * The decompressor is reset after each message when the peer's direction is
 * no_context_takeover.
 */
WSX_API int wsx_pmd_inflate(wsx_pmd *z, const uint8_t *in, size_t len, bool last, bool text,
                            uint64_t max_message, wsx_pmd_buf *out);

/* A short static reason after wsx_pmd_inflate() failed, NULL otherwise. */
WSX_API const char *wsx_pmd_error(const wsx_pmd *z);

/*
 * Gives back the zlib memory an idle connection does not need: the compressor when our
 * direction is no_context_takeover, the decompressor when the peer's is and no message is
 * half received. Both are created again on demand. With context takeover a context cannot
 * be dropped, since the next message may refer to the last 2^w bytes of earlier ones (RFC
 * 7692 7.2.3.2); it is kept. Returns the number of bytes freed.
 */
WSX_API size_t wsx_pmd_trim(wsx_pmd *z);

/* The bytes of zlib state this context holds now (0 when none was created). */
WSX_API size_t wsx_pmd_memory(const wsx_pmd *z);

#ifdef __cplusplus
}
#endif
#endif
