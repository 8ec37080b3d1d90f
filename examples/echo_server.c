/*
 * A minimal WebSocket echo server on wsx.
 *   build/example_echo_server [PORT]     (default 9001; Ctrl-C stops it gracefully)
 */
#include <stdio.h>
#include <stdlib.h>

#include <wsx.h>

static void on_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    (void)user;
    wsx_send(c, m->data, m->len, m->type); /* copies; may return WSX_EBACKPRESSURE */
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    (void)c;
    (void)user;
    printf("closed %d %.*s\n", code, (int)len, reason);
}

static void on_signal(wsx_loop *loop, int signo, void *srv)
{
    (void)loop;
    (void)signo;
    wsx_server_shutdown(srv, 2000); /* close 1001 to everyone; the loop then ends */
}

int main(int argc, char **argv)
{
    wsx_loop *loop;
    if (wsx_loop_new(&loop) < 0) return 1;

    wsx_server_opts so = wsx_server_defaults();
    so.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 9001);
    so.on_message = on_message;
    so.on_close = on_close;

    wsx_server *srv;
    wsx_error err;
    int rc = wsx_server_start(loop, &so, &srv, &err);
    if (rc < 0) {
        fprintf(stderr, "cannot start: %s%s%s\n", wsx_strerror(rc), err.detail[0] ? ": " : "",
                err.detail);
        return 1;
    }
    wsx_loop_on_signal(loop, on_signal, srv);
    printf("listening on port %u\n", wsx_server_port(srv));
    fflush(stdout);
    wsx_loop_run(loop);
    wsx_server_free(srv);
    wsx_loop_free(loop);
    return 0;
}
