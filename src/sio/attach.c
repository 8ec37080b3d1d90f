/*
 * The Socket.IO core on Engine.IO sessions (wsx/eio.h): the engine's callbacks drive the
 * core's clients, and the core's session operations are the engine's calls.
 */
#include <stdlib.h>

#include "sio/sio_priv.h"
#include "ws/ws.h"

static int eio_send(void *sess, const void *data, size_t len, bool binary)
{
    return wsx_eio_send(sess, data, len, binary);
}

static int eio_send_msg(void *sess, wsx_hub_msg *m)
{
    return wsx_eio_send_msg(sess, m);
}

static bool eio_writable(const void *sess)
{
    return wsx_eio_writable(sess);
}

static void eio_close(void *sess)
{
    wsx_eio_close(sess);
}

static const wsx__sio_ops eio_ops = {eio_send, eio_send_msg, eio_writable, eio_close};

static void on_open(wsx_eio_session *s, void *user)
{
    sio_client *c = wsx__sio_session_open(user, s);
    if (!c) {
        wsx_eio_close(s);
        return;
    }
    wsx_eio_session_set_user(s, c);
}

static void on_message(wsx_eio_session *s, const uint8_t *data, size_t len, bool binary, void *user)
{
    sio_client *c = wsx_eio_session_user(s);
    if (c) wsx__sio_session_message(c, data, len, binary);
}

static void on_close(wsx_eio_session *s, const char *reason, void *user)
{
    sio_client *c = wsx_eio_session_user(s);
    if (!c) return;
    wsx_eio_session_set_user(s, NULL);
    wsx__sio_session_close(c, reason);
}

int wsx_sio_attach(wsx_server *srv, const wsx_sio_opts *o, wsx_sio **out)
{
    if (!srv || !out) return WSX_EINVAL;
    wsx_sio_opts so = o ? *o : wsx_sio_defaults();
    if (so.eio.on_open || so.eio.on_message || so.eio.on_close || so.eio.on_drain)
        return WSX_EINVAL;
    wsx_sio *io;
    int rc = wsx__sio_new(wsx__server_loop(srv), &so, &eio_ops, &io);
    if (rc < 0) return rc;
    wsx_eio_opts eo = so.eio;
    if (!eo.path) eo.path = "/socket.io/";
    eo.on_open = on_open;
    eo.on_message = on_message;
    eo.on_close = on_close;
    eo.user = io;
    rc = wsx_eio_attach(srv, &eo, &io->eio);
    if (rc < 0) {
        wsx__sio_free_core(io);
        return rc;
    }
    *out = io;
    return 0;
}

void wsx_sio_free(wsx_sio *io)
{
    if (!io) return;
    wsx_eio *e = io->eio;
    /* The sockets end with "server shutting down" first (socket.io's Server.close), then the
     * engine closes the sessions, whose on_close then finds no client. */
    if (e)
        for (sio_client *c = io->clients; c; c = c->next)
            wsx_eio_session_set_user(c->sess, NULL);
    wsx__sio_free_core(io);
    wsx_eio_free(e);
}
