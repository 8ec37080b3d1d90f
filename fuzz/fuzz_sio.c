/*
 * Socket.IO decoder fuzzer (src/sio/packet.c, src/sio/json.c). The first byte picks the
 * decoder's bounds (max attachments 1 to 16, attachment bytes 1 to 256 or none); the rest
 * is a polling body, split into Engine.IO messages by the polling decoder, each fed to one
 * Socket.IO decoder, as a session does. Every packet decoded is encoded again: the text
 * must decode to the same packet (type, namespace, id, payload text), and the JSON writer
 * must be stable (write, parse, write gives the same text). Placeholders of a binary
 * packet must resolve to its attachments.
 */
#include <stdlib.h>
#include <string.h>

#include "eio/packet.h"
#include "sio/packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json(const json_t *v)
{
    wsx__strbuf a = {0}, b = {0};
    if (wsx__json_write(&a, v) != 0) abort();
    json_t *again = wsx__json_parse((const uint8_t *)a.p, a.len);
    if (!again) abort();
    if (wsx__json_write(&b, again) != 0) abort();
    if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0) abort();
    json_decref(again);
    wsx__strbuf_free(&a);
    wsx__strbuf_free(&b);
}

static void walk_placeholders(const wsx__sio_packet *p, const json_t *v)
{
    wsx__sio_buf b;
    if (wsx__sio_binary(p, v, &b) == 0) {
        if (b.len && !b.data) abort();
        return;
    }
    size_t i;
    json_t *e;
    const char *k;
    if (json_is_array(v)) json_array_foreach(v, i, e) walk_placeholders(p, e);
    if (json_is_object(v)) json_object_foreach((json_t *)v, k, e) walk_placeholders(p, e);
}

static void check_packet(const wsx__sio_packet *p)
{
    if (p->data) check_json(p->data);
    walk_placeholders(p, p->data);
    wsx__strbuf t = {0}, u = {0};
    if (wsx__sio_encode(&t, p) != 0) abort();
    /* Decoded again in a decoder of its own, the head gives back the same packet. */
    wsx__sio_decoder d;
    wsx__sio_decoder_init(&d, p->n_att ? p->n_att : 1, 0);
    wsx__sio_packet q;
    int rc = wsx__sio_decoder_feed(&d, (const uint8_t *)t.p, t.len, false, &q);
    if (p->n_att) {
        if (rc != 0) abort();
        for (size_t i = 0; i < p->n_att && rc == 0; i++)
            rc = wsx__sio_decoder_feed(&d, p->att[i].data, p->att[i].len, true, &q);
    }
    if (rc != 1) abort();
    if (q.type != p->type || q.has_id != p->has_id || q.id != p->id || q.nsp_len != p->nsp_len ||
        memcmp(q.nsp, p->nsp, p->nsp_len) != 0 || q.n_att != p->n_att)
        abort();
    if (wsx__sio_encode(&u, &q) != 0) abort();
    if (t.len != u.len || memcmp(t.p, u.p, t.len) != 0) abort();
    wsx__sio_decoder_free(&d);
    wsx__strbuf_free(&t);
    wsx__strbuf_free(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    size_t max_att = (size_t)(sel & 0x0f) + 1;
    size_t max_bytes = (sel & 0x80) ? 0 : (size_t)(sel >> 4 & 0x7) * 32 + 1;
    data++;
    size--;
    wsx__eio_payload e;
    wsx__eio_payload_init(&e, size ? size : 1);
    wsx__sio_decoder d;
    wsx__sio_decoder_init(&d, max_att, max_bytes);
    size_t off = 0;
    for (;;) {
        wsx__eio_packet ep;
        ptrdiff_t rc = wsx__eio_payload_feed(&e, data + off, size - off, true, &ep);
        if (rc < 0) break;
        off += (size_t)rc;
        if (ep.type == WSX__EIO_NONE) break;
        if (ep.type != WSX__EIO_MESSAGE) continue;
        wsx__sio_packet p;
        int r = wsx__sio_decoder_feed(&d, ep.data, ep.len, ep.binary, &p);
        if (r < 0) {
            if (d.reason == 0) abort();
            break;
        }
        if (r == 1) check_packet(&p);
        if (wsx__sio_decoder_held(&d) > (max_bytes ? max_bytes : SIZE_MAX)) abort();
    }
    wsx__sio_decoder_free(&d);
    wsx__eio_payload_free(&e);
    return 0;
}
