/*
 * Socket.IO server core fuzzer (src/sio/sio.c, emit.c, recover.c): three scripted sessions
 * (the core's session operations, as in tests/unit/sio_fake.h, logging nothing) take
 * messages cut from the input, and the namespaces' handlers turn events into the server's
 * own calls: join, leave, broadcast with every operator, emit with an ack, ack, disconnect
 * (with or without the session). Connection state recovery is on, so reconnections with a
 * pid and an offset are tried too. Checks: the connected-socket count agrees with the
 * connection and disconnect callbacks, every emit with an ack gets exactly one answer, and
 * (under ASan) nothing is leaked or used after free.
 *
 * Input: records of [op][session][length][bytes]; op 0-4 a text message, 5 a binary one,
 * 6 the session ends ("transport close"), 7 a session that asked to close ends ("forced
 * close").
 */
#include <stdlib.h>
#include <string.h>

#include "sio/sio_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fsess {
    sio_client *c;
    bool open, close_asked;
} fsess;

static int f_send(void *sess, const void *d, size_t len, bool binary)
{
    return ((fsess *)sess)->close_asked ? WSX_ECLOSED : 0;
}

static int f_send_msg(void *sess, wsx_hub_msg *m)
{
    if (m->type != WSX_BINARY && (m->type != WSX_TEXT || m->len < 1 || m->data[0] != '4')) abort();
    return ((fsess *)sess)->close_asked ? WSX_ECLOSED : 0;
}

static bool f_writable(const void *sess)
{
    return true;
}

static void f_close(void *sess)
{
    ((fsess *)sess)->close_asked = true;
}

static const wsx__sio_ops ops = {f_send, f_send_msg, f_writable, f_close};

static long connections, disconnects, acks_asked, acks_done;

static void on_conn(wsx_sio_socket *s, void *user)
{
    connections++;
}

static void on_disc(wsx_sio_socket *s, const char *reason, void *user)
{
    disconnects++;
}

static void ack_cb(wsx_sio_socket *s, int err, json_t *args, const wsx_sio_bin *b, size_t n,
                   void *user)
{
    acks_done++;
}

/* The first string argument, or "r". */
static const char *arg0(const wsx_sio_event *ev)
{
    const char *r = json_string_value(json_array_get(ev->args, 0));
    return r ? r : "r";
}

static void on_event(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    const char *name = ev->name;
    if (strcmp(name, "join") == 0) {
        wsx_sio_join(s, arg0(ev));
    } else if (strcmp(name, "leave") == 0) {
        wsx_sio_leave(s, arg0(ev));
    } else if (strcmp(name, "bcast") == 0) {
        const char *rooms[] = {arg0(ev)};
        const char *except[] = {"x"};
        size_t n = json_array_size(ev->args);
        wsx_sio_to to = {.nsp = wsx_sio_socket_nsp(s),
                         .rooms = rooms,
                         .n_rooms = n & 1,
                         .except_rooms = except,
                         .n_except = (n >> 1) & 1,
                         .except_socket = (n & 4) ? s : NULL,
                         .volatile_ = (n & 8) != 0};
        wsx_sio_broadcast(&to, "b", json_incref(ev->args), ev->bins, ev->n_bins);
    } else if (strcmp(name, "ask") == 0) {
        if (wsx_sio_emit_ack(s, "q", json_incref(ev->args), ev->bins, ev->n_bins, ack_cb,
                             json_array_size(ev->args) ? 100000 : 0, NULL) >= 0)
            acks_asked++;
    } else if (strcmp(name, "bye") == 0) {
        wsx_sio_disconnect(s, json_array_size(ev->args) > 0);
        return;
    } else {
        wsx_sio_emit(s, "echo", json_incref(ev->args), ev->bins, ev->n_bins);
    }
    if (ev->has_ack) wsx_sio_ack(s, ev->ack_id, json_incref(ev->args), ev->bins, ev->n_bins);
}

static wsx_sio_nsp *on_namespace(wsx_sio *io, const char *name, void *user)
{
    if (strncmp(name, "/d", 2) != 0) return NULL;
    wsx_sio_nsp *n = wsx_sio_of(io, name);
    if (n) {
        wsx_sio_on_connection(n, on_conn, NULL);
        wsx_sio_nsp_on(n, NULL, on_event, NULL);
        wsx_sio_nsp_on_disconnect(n, on_disc, NULL);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wsx_loop *loop;
    if (!loop && wsx_loop_new(&loop) != 0) abort();
    wsx_sio_opts o = wsx_sio_defaults();
    o.recovery_ms = 60000;
    o.recovery_max_packets = 16;
    o.recovery_max_bytes = 4096;
    o.recovery_max_sessions = 4;
    o.max_rooms = 8;
    o.max_pending_acks = 4;
    o.max_namespaces = 4;
    o.eio.max_payload = 4096;
    o.on_namespace = on_namespace;
    wsx_sio *io;
    if (wsx__sio_new(loop, &o, &ops, &io) != 0) abort();
    on_namespace(io, "/d", NULL);
    wsx_sio_nsp *root = wsx_sio_of(io, "/");
    wsx_sio_on_connection(root, on_conn, NULL);
    wsx_sio_nsp_on(root, NULL, on_event, NULL);
    wsx_sio_nsp_on_disconnect(root, on_disc, NULL);
    connections = disconnects = acks_asked = acks_done = 0;

    fsess S[3];
    memset(S, 0, sizeof S);
    size_t i = 0;
    while (i + 3 <= size) {
        uint8_t op = data[i] & 7;
        fsess *f = &S[data[i + 1] % 3];
        size_t len = data[i + 2];
        i += 3;
        if (len > size - i) len = size - i;
        if (!f->open) {
            f->c = wsx__sio_session_open(io, f);
            if (!f->c) abort();
            f->open = true;
            f->close_asked = false;
        }
        if (op <= 5) {
            if (!f->close_asked) wsx__sio_session_message(f->c, data + i, len, op == 5);
        } else if (op == 6 || f->close_asked) {
            wsx__sio_session_close(f->c, op == 6 ? "transport close" : "forced close");
            f->open = false;
        }
        i += len;
        if ((long)wsx_sio_sockets(io) != connections - disconnects) abort();
    }
    for (int k = 0; k < 3; k++)
        if (S[k].open) wsx__sio_session_close(S[k].c, "transport close");
    if (wsx_sio_sockets(io) != 0 || connections != disconnects) abort();
    if (acks_asked != acks_done) abort();
    wsx__sio_free_core(io);
    return 0;
}
