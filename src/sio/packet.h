/*
 * Socket.IO v5 packets, sans-IO (socket.io-protocol v5, "Packet encoding";
 * docs/socketio.md, "Socket.IO packets").
 *
 *   <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
 *
 * Each packet travels as the text of one Engine.IO message; a binary packet (types 5 and
 * 6) is followed by its attachments, one Engine.IO binary message each. In the JSON, each
 * binary value is replaced by a placeholder {"_placeholder":true,"num":N}, N indexing the
 * attachments.
 *
 * Binary values in C: jansson has no binary type, so the packet keeps the wire's own
 * form. A decoded packet has its placeholders checked (every one names an attachment that
 * exists) and its attachments in order; wsx__sio_binary() turns a placeholder value into
 * the bytes it stands for. To send binary, put wsx__sio_placeholder(i) where the i-th
 * buffer goes and pass the buffers as the packet's attachments.
 */
#ifndef WSX_SIO_PACKET_H
#define WSX_SIO_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sio/json.h"
#include "wsx/common.h"

enum wsx__sio_type {
    WSX__SIO_CONNECT = 0,
    WSX__SIO_DISCONNECT = 1,
    WSX__SIO_EVENT = 2,
    WSX__SIO_ACK = 3,
    WSX__SIO_CONNECT_ERROR = 4,
    WSX__SIO_BINARY_EVENT = 5,
    WSX__SIO_BINARY_ACK = 6,
};

/* The largest ack id: Number.MAX_SAFE_INTEGER, the largest a JavaScript peer keeps exact. */
#define WSX__SIO_MAX_ID 9007199254740991ull

/* The reference parser's default bound on the attachments of one packet (maxAttachments). */
#define WSX__SIO_MAX_ATTACHMENTS 10

/* Why a decode failed, one value per malformed class; the call returns the WSX_E* code
 * named next to each, and wsx__sio_reason() gives a static sentence. */
enum wsx__sio_reason {
    WSX__SIO_R_OK = 0,
    WSX__SIO_R_TYPE,              /* WSX_EPROTO: empty, or the first byte is not 0-6 */
    WSX__SIO_R_ATTACH,            /* WSX_EPROTO: attachment count not digits, not ended by '-',
                                     or 0 */
    WSX__SIO_R_ATTACH_MAX,        /* WSX_ETOOBIG: more attachments than max_attachments */
    WSX__SIO_R_NSP,               /* WSX_EPROTO: a namespace not starting with '/' */
    WSX__SIO_R_ID,                /* WSX_EPROTO: ack id above WSX__SIO_MAX_ID, an id on a type
                                     that has none (CONNECT, DISCONNECT, CONNECT_ERROR) or an ACK
                                     without one */
    WSX__SIO_R_JSON,              /* WSX_EPROTO: the payload is not JSON */
    WSX__SIO_R_PAYLOAD,           /* WSX_EPROTO: JSON of the wrong shape for the type */
    WSX__SIO_R_PLACEHOLDER,       /* WSX_EPROTO: a placeholder whose num is not an integer
                                     below the attachment count */
    WSX__SIO_R_UNEXPECTED_BINARY, /* WSX_EPROTO: an attachment with no binary packet open */
    WSX__SIO_R_UNEXPECTED_TEXT,   /* WSX_EPROTO: a packet while attachments are awaited */
    WSX__SIO_R_TOO_BIG,           /* WSX_ETOOBIG: attachments above max_bytes */
    WSX__SIO_R_NOMEM,             /* WSX_ENOMEM */
};

/* A borrowed byte range. */
typedef struct wsx__sio_buf {
    const uint8_t *data;
    size_t len;
} wsx__sio_buf;

typedef struct wsx__sio_packet {
    uint8_t type; /* enum wsx__sio_type */
    bool has_id;
    uint64_t id;     /* ack id, when has_id (at most WSX__SIO_MAX_ID) */
    const char *nsp; /* namespace, not NUL-terminated; "/" when the packet names none */
    size_t nsp_len;
    json_t *data; /* payload, NULL when absent */
    size_t n_att; /* attachments, for the binary types */
    const wsx__sio_buf *att;
} wsx__sio_packet;

/* The sentence for a reason ("ack id overflow"), static. */
const char *wsx__sio_reason(int reason);

/*
 * Decoder of the packets of one Engine.IO session: it joins a binary packet with the
 * attachments that follow it (over either transport: the session feeds every message to
 * the same decoder). While attachments are awaited it holds the packet and copies of the
 * attachments received, never more than max_attachments of them and max_bytes in total.
 * Between binary packets it holds nothing but this struct (32 bytes): the reassembly state
 * is one allocation made at a binary packet's head and freed at the next call after it
 * completes.
 */
struct wsx__sio_pending;
typedef struct wsx__sio_decoder {
    uint32_t max_attachments;      /* per packet */
    int reason;                    /* enum wsx__sio_reason once failed */
    size_t max_bytes;              /* attachment bytes per packet */
    json_t *last;                  /* payload of the last text packet reported (a reference) */
    struct wsx__sio_pending *pend; /* the binary packet being reassembled, or just reported */
} wsx__sio_decoder;

/* Prepares a decoder. max_attachments 0 means WSX__SIO_MAX_ATTACHMENTS (values above
 * 65535 are taken as 65535); max_bytes 0 means no bound beyond what the
 * transport imposes. Allocates nothing. */
void wsx__sio_decoder_init(wsx__sio_decoder *d, size_t max_attachments, size_t max_bytes);

/* Frees everything the decoder holds (a packet being reassembled included). */
void wsx__sio_decoder_free(wsx__sio_decoder *d);

/* Lets go of the packet the last call reported (its fields become invalid), so that a
 * decoder between packets holds nothing; a packet being reassembled is kept. */
void wsx__sio_decoder_release(wsx__sio_decoder *d);

/* True while a binary packet awaits attachments. */
bool wsx__sio_decoder_pending(const wsx__sio_decoder *d);

/* Bytes of attachments the decoder holds for the packet being reassembled. */
size_t wsx__sio_decoder_held(const wsx__sio_decoder *d);

/*
 * Feeds one Engine.IO message: the text of a packet, or (binary) an attachment.
 *
 * Returns 1 with *out a complete packet; 0 when the message was the head of a binary
 * packet or one of its attachments and more are awaited; or a negative WSX_E* code with
 * d->reason telling which class of malformed input it was (see enum wsx__sio_reason).
 * After a failure the decoder stays failed (the session closes: the reference closes the
 * connection on any parse error).
 *
 * The packet's fields (namespace, payload, attachments) belong to the decoder and stay
 * valid until the next call or wsx__sio_decoder_free(); json_incref() the payload to keep
 * it. A text packet's namespace may point into msg.
 */
int wsx__sio_decoder_feed(wsx__sio_decoder *d, const uint8_t *msg, size_t len, bool binary,
                          wsx__sio_packet *out);

/* A new placeholder object {"_placeholder":true,"num":num}, or NULL (out of memory). */
json_t *wsx__sio_placeholder(size_t num);

/*
 * The attachment a value of a decoded binary packet stands for: when v is a placeholder
 * object of p, sets *out to attachment num and returns 0; otherwise (not a placeholder,
 * or p is not a binary packet) returns WSX_EINVAL.
 */
int wsx__sio_binary(const wsx__sio_packet *p, const json_t *v, wsx__sio_buf *out);

/*
 * Appends the text of packet p to b (p->nsp NULL means "/"): the type (EVENT and ACK become
 * BINARY_EVENT and BINARY_ACK when p->n_att > 0), the attachment count, the namespace unless it is
 * "/", the id, the payload (wsx__json_write). The attachments themselves are not written: each goes
 * in its own Engine.IO binary message after this one.
 *
 * Returns 0, WSX_ENOMEM, or WSX_EINVAL for a packet the decoder would refuse: a type
 * above 6, a namespace that does not start with '/' or holds a ',', an id above
 * WSX__SIO_MAX_ID, attachments on a type other than EVENT/ACK, or a payload of the wrong
 * shape for the type (the checks of wsx__sio_decoder_feed, placeholders aside). b is left
 * as it was on failure.
 */
int wsx__sio_encode(wsx__strbuf *b, const wsx__sio_packet *p);

#endif
