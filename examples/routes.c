/*
 * Routes on one wsx server: HTTP handlers and two WebSocket paths with their own callbacks.
 *   build/example_routes [PORT]     (default 9002; Ctrl-C stops it gracefully)
 *
 *   GET  /hello        "hello <your address>"
 *   POST /echo         the request body back (1 KiB at most: 413 beyond, 405 for a GET)
 *   GET  /files/...    any path under /files/ (a prefix route): its name
 *   ws   /echo-ws      messages echoed
 *   ws   /shout        messages echoed in capitals
 *   anything else      404 (426 for a plain GET of "/", the default route's WebSocket path)
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include <wsx.h>

static void hello(wsx_http_req *r, void *user)
{
    (void)user;
    char body[128];
    int n = snprintf(body, sizeof body, "hello %s\n", wsx_http_req_peer(r));
    wsx_http_header h[] = {{"Content-Type", 12, "text/plain", 10}};
    wsx_http_respond(r, 200, h, 1, body, (size_t)n);
}

static void echo_body(wsx_http_req *r, void *user)
{
    (void)user;
    size_t len;
    const uint8_t *body = wsx_http_req_body(r, &len); /* whole: read before the handler runs */
    wsx_http_respond(r, 200, NULL, 0, body, len);
}

static void file_name(wsx_http_req *r, void *user)
{
    (void)user;
    size_t len;
    const char *path = wsx_http_req_path(r, &len);
    wsx_http_respond(r, 200, NULL, 0, path + 7, len - 7); /* after "/files/" */
}

static void echo_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    (void)user;
    wsx_send(c, m->data, m->len, m->type);
}

static void shout_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    (void)user;
    char out[1024];
    size_t n = m->len < sizeof out ? m->len : sizeof out;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)toupper(m->data[i]);
    wsx_send(c, out, n, m->type);
}

static void on_signal(wsx_loop *loop, int signo, void *srv)
{
    (void)loop;
    (void)signo;
    wsx_server_shutdown(srv, 2000);
}

int main(int argc, char **argv)
{
    wsx_loop *loop;
    if (wsx_loop_new(&loop) < 0) return 1;

    wsx_server_opts so = wsx_server_defaults();
    so.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 9002);
    so.path = "/"; /* the default route's WebSocket: only "/", so other paths get 404 */

    wsx_server *srv;
    int rc = wsx_server_start(loop, &so, &srv, NULL);
    if (rc < 0) {
        fprintf(stderr, "cannot start: %s\n", wsx_strerror(rc));
        return 1;
    }
    wsx_route_opts hello_route = {.methods = "GET", .on_request = hello};
    wsx_route_opts echo_route = {.methods = "POST", .max_body = 1024, .on_request = echo_body};
    wsx_route_opts files_route = {.methods = "GET", .on_request = file_name};
    wsx_ws_route_opts echo_ws = {.on_message = echo_message};
    wsx_ws_route_opts shout_ws = {.on_message = shout_message};
    if (wsx_server_route(srv, "/hello", &hello_route) < 0 ||
        wsx_server_route(srv, "/echo", &echo_route) < 0 ||
        wsx_server_route(srv, "/files/*", &files_route) < 0 ||
        wsx_server_ws_route(srv, "/echo-ws", &echo_ws) < 0 ||
        wsx_server_ws_route(srv, "/shout", &shout_ws) < 0) {
        fprintf(stderr, "cannot add the routes\n");
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
