/*
 * The Socket.IO chat example in C: every 'chat message' goes to everyone.
 *   build/example_sio_chat [PORT]     (default 3000; Ctrl-C stops it gracefully)
 *
 * The JavaScript it replaces:
 *   io.on('connection', (socket) => {
 *     socket.on('chat message', (msg) => io.emit('chat message', msg));
 *   });
 *
 * Any Socket.IO v5 client connects to http://HOST:PORT/ (path /socket.io/), over WebSocket
 * or long-polling. Build: cc sio_chat.c $(pkg-config --cflags --libs wsx).
 */
#include <stdio.h>
#include <stdlib.h>

#include <wsx.h>
#include <wsx/sio.h>

static void on_chat(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    (void)user;
    /* Everyone in the namespace, the sender included, with the same arguments. The args are
     * borrowed from the event: the broadcast takes a reference of its own. */
    wsx_sio_to everyone = {.nsp = wsx_sio_socket_nsp(s)};
    wsx_sio_broadcast(&everyone, "chat message", json_incref(ev->args), ev->bins, ev->n_bins);
}

static void on_connection(wsx_sio_socket *s, void *user)
{
    (void)user;
    printf("connected %s\n", wsx_sio_id(s));
    fflush(stdout);
    wsx_sio_on(s, "chat message", on_chat, NULL);
}

static void on_disconnect(wsx_sio_socket *s, const char *reason, void *user)
{
    (void)user;
    printf("disconnected %s: %s\n", wsx_sio_id(s), reason);
    fflush(stdout);
}

typedef struct app {
    wsx_server *srv;
    wsx_sio *io;
} app;

static void on_signal(wsx_loop *loop, int signo, void *arg)
{
    (void)loop;
    (void)signo;
    app *a = arg;
    wsx_sio_free(a->io); /* every socket: "server shutting down"; sessions closed */
    a->io = NULL;
    wsx_server_shutdown(a->srv, 2000);
}

int main(int argc, char **argv)
{
    wsx_loop *loop;
    if (wsx_loop_new(&loop) < 0) return 1;

    wsx_server_opts so = wsx_server_defaults();
    so.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 3000);
    app a = {0};
    wsx_error err;
    int rc = wsx_server_start(loop, &so, &a.srv, &err);
    if (rc == 0) rc = wsx_sio_attach(a.srv, NULL, &a.io);
    if (rc < 0) {
        fprintf(stderr, "cannot start: %s\n", wsx_strerror(rc));
        return 1;
    }
    wsx_sio_nsp *root = wsx_sio_of(a.io, "/");
    wsx_sio_on_connection(root, on_connection, NULL);
    wsx_sio_nsp_on_disconnect(root, on_disconnect, NULL);

    wsx_loop_on_signal(loop, on_signal, &a);
    printf("listening on port %u\n", wsx_server_port(a.srv));
    fflush(stdout);
    wsx_loop_run(loop);
    wsx_sio_free(a.io);
    wsx_server_free(a.srv);
    wsx_loop_free(loop);
    return 0;
}
