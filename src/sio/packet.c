/*
 * Socket.IO v5 packet codec. The decoder accepts what the reference parser (socket.io-parser
 * 4.2) accepts from a conforming peer and refuses, with a reason per class, what it refuses;
 * where the reference is lenient by accident (an empty packet read as CONNECT, an EVENT
 * without payload, ack ids beyond 2^53 that lose precision) this one follows the protocol
 * text and refuses. docs/socketio.md lists each case.
 */
#include "sio/packet.h"

#include <stdlib.h>
#include <string.h>

static const char *const reasons[] = {
    [WSX__SIO_R_OK] = "no error",
    [WSX__SIO_R_TYPE] = "unknown packet type",
    [WSX__SIO_R_ATTACH] = "illegal attachments",
    [WSX__SIO_R_ATTACH_MAX] = "too many attachments",
    [WSX__SIO_R_NSP] = "namespace must start with '/'",
    [WSX__SIO_R_ID] = "invalid ack id",
    [WSX__SIO_R_JSON] = "payload is not JSON",
    [WSX__SIO_R_PAYLOAD] = "invalid payload",
    [WSX__SIO_R_PLACEHOLDER] = "placeholder out of range",
    [WSX__SIO_R_UNEXPECTED_BINARY] = "got binary data when not reconstructing a packet",
    [WSX__SIO_R_UNEXPECTED_TEXT] = "got plaintext data when reconstructing a packet",
    [WSX__SIO_R_TOO_BIG] = "attachments exceed the size limit",
    [WSX__SIO_R_NOMEM] = "out of memory",
};

const char *wsx__sio_reason(int reason)
{
    if (reason < 0 || (size_t)reason >= sizeof reasons / sizeof reasons[0]) return "unknown";
    return reasons[reason];
}

static int reason_err(int reason)
{
    switch (reason) {
    case WSX__SIO_R_ATTACH_MAX:
    case WSX__SIO_R_TOO_BIG:
        return WSX_ETOOBIG;
    case WSX__SIO_R_NOMEM:
        return WSX_ENOMEM;
    default:
        return WSX_EPROTO;
    }
}

/* The reassembly state of one binary packet, in one allocation: this struct, then the
 * attachment table, then the namespace (copied: the head's message is gone by the time the
 * attachments come). */
struct wsx__sio_pending {
    wsx__sio_packet p; /* p.att points at att, p.nsp at the copy */
    size_t got;        /* attachments received */
    size_t bytes;      /* their total length */
    wsx__sio_buf att[];
};

void wsx__sio_decoder_init(wsx__sio_decoder *d, size_t max_attachments, size_t max_bytes)
{
    memset(d, 0, sizeof *d);
    if (max_attachments == 0) max_attachments = WSX__SIO_MAX_ATTACHMENTS;
    /* Capped so that the reassembly state's size is small and cannot overflow. */
    d->max_attachments = max_attachments > 65535 ? 65535 : (uint32_t)max_attachments;
    d->max_bytes = max_bytes ? max_bytes : SIZE_MAX;
}

/* Frees the binary packet being reassembled, or the one last reported. */
static void drop_binary(wsx__sio_decoder *d)
{
    struct wsx__sio_pending *pd = d->pend;
    if (!pd) return;
    for (size_t i = 0; i < pd->got; i++)
        free((void *)pd->att[i].data);
    json_decref(pd->p.data);
    free(pd);
    d->pend = NULL;
}

void wsx__sio_decoder_free(wsx__sio_decoder *d)
{
    drop_binary(d);
    json_decref(d->last);
    d->last = NULL;
}

void wsx__sio_decoder_release(wsx__sio_decoder *d)
{
    json_decref(d->last);
    d->last = NULL;
    if (d->pend && d->pend->got == d->pend->p.n_att) drop_binary(d);
}

bool wsx__sio_decoder_pending(const wsx__sio_decoder *d)
{
    return d->pend && d->pend->got < d->pend->p.n_att;
}

size_t wsx__sio_decoder_held(const wsx__sio_decoder *d)
{
    return d->pend ? d->pend->bytes : 0;
}

static int fail(wsx__sio_decoder *d, int reason)
{
    d->reason = reason;
    return reason_err(reason);
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* socket.io-parser RESERVED_EVENTS: names an EVENT may not carry. */
static bool reserved_event(const json_t *name)
{
    static const char *const names[] = {"connect",       "connect_error", "disconnect",
                                        "disconnecting", "newListener",   "removeListener"};
    const char *s = json_string_value(name);
    size_t len = json_string_length(name);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (len == strlen(names[i]) && memcmp(s, names[i], len) == 0) return true;
    return false;
}

/* The id and payload rules of each type (socket.io-parser Decoder.isPayloadValid and
 * socket.io-protocol v5, "Exchange protocol"). Returns a reason or 0. */
static int check_shape(int type, bool has_id, const json_t *data)
{
    switch (type) {
    case WSX__SIO_CONNECT:
        if (has_id) return WSX__SIO_R_ID;
        return !data || json_is_object(data) ? 0 : WSX__SIO_R_PAYLOAD;
    case WSX__SIO_DISCONNECT:
        if (has_id) return WSX__SIO_R_ID;
        return !data ? 0 : WSX__SIO_R_PAYLOAD;
    case WSX__SIO_CONNECT_ERROR:
        if (has_id) return WSX__SIO_R_ID;
        return data && (json_is_string(data) || json_is_object(data)) ? 0 : WSX__SIO_R_PAYLOAD;
    case WSX__SIO_EVENT:
    case WSX__SIO_BINARY_EVENT: {
        /* "The payload is mandatory and MUST be a non-empty array." */
        if (!json_is_array(data) || json_array_size(data) == 0) return WSX__SIO_R_PAYLOAD;
        const json_t *name = json_array_get(data, 0);
        if (json_is_number(name)) return 0;
        return json_is_string(name) && !reserved_event(name) ? 0 : WSX__SIO_R_PAYLOAD;
    }
    case WSX__SIO_ACK:
    case WSX__SIO_BINARY_ACK:
        /* An ACK answers an event by its id; without one it answers nothing. */
        if (!has_id) return WSX__SIO_R_ID;
        return json_is_array(data) ? 0 : WSX__SIO_R_PAYLOAD;
    }
    return WSX__SIO_R_TYPE;
}

/* The attachment index of a placeholder object, -1 when v is not one, -2 when it is one
 * with a num that is not an integer below n. */
static long long placeholder_num(const json_t *v, size_t n)
{
    if (!json_is_object(v) || !json_is_true(json_object_get(v, "_placeholder"))) return -1;
    const json_t *num = json_object_get(v, "num");
    /* A number, as the reference checks (typeof num === "number"), and an index: 0.0 is
     * one (a payload with an integer beyond 64 bits is parsed with every number real),
     * 0.5 is not. */
    if (json_is_integer(num)) {
        json_int_t i = json_integer_value(num);
        return i >= 0 && (unsigned long long)i < n ? (long long)i : -2;
    }
    if (!json_is_real(num)) return -2;
    double f = json_real_value(num);
    if (!(f >= 0 && f < (double)n) || f != (double)(long long)f) return -2;
    return (long long)f;
}

/* True when every placeholder in v names one of n attachments. Recursion is bounded by
 * jansson's parser depth limit (2048). */
static bool placeholders_ok(const json_t *v, size_t n)
{
    if (json_is_array(v)) {
        size_t k = json_array_size(v);
        for (size_t i = 0; i < k; i++)
            if (!placeholders_ok(json_array_get(v, i), n)) return false;
        return true;
    }
    if (!json_is_object(v)) return true;
    long long p = placeholder_num(v, n);
    if (p >= 0) return true;
    if (p == -2) return false;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        if (!placeholders_ok(val, n)) return false;
    }
    return true;
}

static int decode_text(wsx__sio_decoder *d, const uint8_t *s, size_t len, wsx__sio_packet *out)
{
    if (len == 0 || s[0] < '0' || s[0] > '6') return fail(d, WSX__SIO_R_TYPE);
    wsx__sio_packet p = {.type = (uint8_t)(s[0] - '0'), .nsp = "/", .nsp_len = 1};
    size_t i = 1;
    bool binary = p.type == WSX__SIO_BINARY_EVENT || p.type == WSX__SIO_BINARY_ACK;
    if (binary) {
        size_t start = i, n = 0;
        /* Ten digits are more than any bound can allow; they also keep n from overflowing. */
        while (i < len && is_digit(s[i]) && i - start < 10)
            n = n * 10 + (size_t)(s[i++] - '0');
        if (i == start || i >= len || s[i] != '-' || n == 0) return fail(d, WSX__SIO_R_ATTACH);
        if (n > d->max_attachments) return fail(d, WSX__SIO_R_ATTACH_MAX);
        p.n_att = n;
        i++;
    }
    bool named = false;
    if (i < len && s[i] == '/') {
        /* The built-in parser has no escape: the namespace runs to the first ',' (or the
         * end: "1/admin" is DISCONNECT from /admin). */
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        p.nsp = (const char *)s + start;
        p.nsp_len = i - start;
        named = true;
        if (i < len) i++;
    }
    if (i < len && is_digit(s[i])) {
        uint64_t id = 0;
        while (i < len && is_digit(s[i])) {
            unsigned dig = (unsigned)(s[i++] - '0');
            if (id > (WSX__SIO_MAX_ID - dig) / 10) return fail(d, WSX__SIO_R_ID);
            id = id * 10 + dig;
        }
        p.has_id = true;
        p.id = id;
    }
    if (i < len) {
        /* Every valid payload is an object, an array or a string (JSON.parse also skips
         * leading whitespace). Anything else here, with no namespace before it, is most
         * likely a namespace without its '/': "0admin,". */
        uint8_t c = s[i];
        bool json_start =
            c == '{' || c == '[' || c == '"' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
        if (!json_start) return fail(d, named || p.has_id ? WSX__SIO_R_JSON : WSX__SIO_R_NSP);
        p.data = wsx__json_parse(s + i, len - i);
        if (!p.data) return fail(d, WSX__SIO_R_JSON);
    }
    int r = check_shape(p.type, p.has_id, p.data);
    if (!r && binary && !placeholders_ok(p.data, p.n_att)) r = WSX__SIO_R_PLACEHOLDER;
    if (r) {
        json_decref(p.data);
        return fail(d, r);
    }
    if (!binary) {
        d->last = p.data;
        *out = p;
        return 1;
    }
    /* Held until the attachments have come. n_att is at most 65535 and the namespace
     * shorter than msg, so the size cannot overflow. */
    struct wsx__sio_pending *pd = malloc(sizeof *pd + p.n_att * sizeof(wsx__sio_buf) + p.nsp_len);
    if (!pd) {
        json_decref(p.data);
        return fail(d, WSX__SIO_R_NOMEM);
    }
    char *nsp = (char *)(pd->att + p.n_att);
    memcpy(nsp, p.nsp, p.nsp_len);
    p.nsp = nsp;
    p.att = pd->att;
    pd->p = p;
    pd->got = 0;
    pd->bytes = 0;
    d->pend = pd;
    return 0;
}

int wsx__sio_decoder_feed(wsx__sio_decoder *d, const uint8_t *msg, size_t len, bool binary,
                          wsx__sio_packet *out)
{
    if (d->reason) return reason_err(d->reason);
    json_decref(d->last);
    d->last = NULL;
    /* A binary packet reported by the previous call is released now. */
    if (d->pend && d->pend->got == d->pend->p.n_att) drop_binary(d);
    struct wsx__sio_pending *pd = d->pend;
    if (!binary) {
        if (pd) return fail(d, WSX__SIO_R_UNEXPECTED_TEXT);
        return decode_text(d, msg, len, out);
    }
    if (!pd) return fail(d, WSX__SIO_R_UNEXPECTED_BINARY);
    /* Counted before copying, so a peer cannot make the decoder hold more. */
    if (len > d->max_bytes - pd->bytes) return fail(d, WSX__SIO_R_TOO_BIG);
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return fail(d, WSX__SIO_R_NOMEM);
    if (len) memcpy(copy, msg, len);
    pd->att[pd->got++] = (wsx__sio_buf){copy, len};
    pd->bytes += len;
    if (pd->got < pd->p.n_att) return 0;
    *out = pd->p;
    return 1;
}

json_t *wsx__sio_placeholder(size_t num)
{
    return json_pack("{s:b,s:I}", "_placeholder", 1, "num", (json_int_t)num);
}

int wsx__sio_binary(const wsx__sio_packet *p, const json_t *v, wsx__sio_buf *out)
{
    if (p->type != WSX__SIO_BINARY_EVENT && p->type != WSX__SIO_BINARY_ACK) return WSX_EINVAL;
    long long i = placeholder_num(v, p->n_att);
    if (i < 0) return WSX_EINVAL;
    *out = p->att[i];
    return 0;
}

static int add_uint(wsx__strbuf *b, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return wsx__strbuf_add(b, tmp + sizeof tmp - n, n);
}

int wsx__sio_encode(wsx__strbuf *b, const wsx__sio_packet *p)
{
    int type = p->type;
    if (type > WSX__SIO_BINARY_ACK) return WSX_EINVAL;
    if (p->n_att > 0) {
        if (type == WSX__SIO_EVENT) type = WSX__SIO_BINARY_EVENT;
        if (type == WSX__SIO_ACK) type = WSX__SIO_BINARY_ACK;
    }
    bool binary = type == WSX__SIO_BINARY_EVENT || type == WSX__SIO_BINARY_ACK;
    if (binary != (p->n_att > 0)) return WSX_EINVAL;
    const char *nsp = p->nsp ? p->nsp : "/";
    size_t nsp_len = p->nsp ? p->nsp_len : 1;
    if (nsp_len == 0 || nsp[0] != '/' || memchr(nsp, ',', nsp_len)) return WSX_EINVAL;
    if (p->has_id && p->id > WSX__SIO_MAX_ID) return WSX_EINVAL;
    if (check_shape(type, p->has_id, p->data)) return WSX_EINVAL;
    size_t mark = b->len;
    char t = (char)('0' + type);
    int rc = wsx__strbuf_add(b, &t, 1);
    if (!rc && binary && !(rc = add_uint(b, p->n_att))) rc = wsx__strbuf_add(b, "-", 1);
    if (!rc && nsp_len > 1 && !(rc = wsx__strbuf_add(b, nsp, nsp_len)))
        rc = wsx__strbuf_add(b, ",", 1);
    if (!rc && p->has_id) rc = add_uint(b, p->id);
    if (!rc && p->data) rc = wsx__json_write(b, p->data);
    if (rc) b->len = mark;
    return rc;
}
