/*
 * A minimal WebSocket client on wsx: sends one message, prints the reply, closes.
 *   build/example_client ws://127.0.0.1:9001/ "hello"
 */
#include <stdio.h>
#include <string.h>

#include <wsx.h>

static const char *text = "hello";
static int status = 1;

static void on_open(wsx_conn *c, void *user)
{
    (void)user;
    wsx_send(c, text, strlen(text), WSX_TEXT);
}

static void on_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    (void)user;
    printf("received: %.*s\n", (int)m->len, (const char *)m->data);
    status = 0;
    wsx_close(c, 1000, "done");
}

static void on_end(wsx_client *cl, int err, const char *why, void *user)
{
    (void)cl;
    (void)user;
    if (err < 0) {
        fprintf(stderr, "failed: %s\n", why);
        status = 1;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [TEXT]\n", argv[0]);
        return 2;
    }
    if (argc > 2) text = argv[2];
    wsx_loop *loop;
    if (wsx_loop_new(&loop) < 0) return 1;

    wsx_client_opts co = wsx_client_defaults();
    co.url = argv[1];
    co.on_open = on_open;
    co.on_message = on_message;
    co.on_end = on_end; /* the client is freed after this */

    wsx_error err;
    int rc = wsx_client_connect(loop, &co, NULL, &err);
    if (rc < 0) {
        fprintf(stderr, "cannot connect: %s%s%s\n", wsx_strerror(rc), err.detail[0] ? ": " : "",
                err.detail);
        return 1;
    }
    wsx_loop_run(loop); /* returns when nothing is left to do */
    wsx_loop_free(loop);
    return status;
}
