/*
 * The scene of the WebSocket unit tests (test_ws.c, test_ws_flow.c, test_ws_hostile.c): a
 * server and a client of wsx in one process over real sockets on 127.0.0.1, callbacks that
 * record what happened, knobs that script what each side does, and a watchdog timer so that
 * a hang fails instead of blocking. Include after test.h.
 */
#ifndef WSX_WS_SCENE_H
#define WSX_WS_SCENE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsx.h"

typedef struct scene {
    wsx_loop *loop;
    wsx_server *srv;
    wsx_client *cl;
    char url[128];
    /* what happened */
    int srv_open, srv_close, srv_close_code, srv_msgs, srv_drains;
    int cli_open, cli_close, cli_close_code, cli_msgs, cli_end, cli_end_err, cli_reconnecting;
    int pongs, srv_pongs;
    char cli_end_why[256];
    char srv_close_reason[128];
    char cli_close_reason[128];
    char last_msg[256];
    size_t last_len;
    int last_type;
    /* scenario knobs */
    int echo;            /* server echoes */
    int client_sends;    /* messages the client sends on open */
    size_t client_size;  /* their size */
    int close_after;     /* the client closes after this many echoes */
    int server_closes;   /* the server closes on its first message with 4001 */
    bool bad_then_close; /* the client sends invalid UTF-8 as text and closes with 1000 at once */
    bool timed_out;
    wsx_timer *watchdog;
    wsx_conn *srv_conn;
    bool stop_on_end;
} scene;

static inline void watchdog_fired(wsx_timer *t, void *arg)
{
    (void)t;
    scene *s = arg;
    s->timed_out = true;
    s->watchdog = NULL;
    wsx_loop_stop(s->loop);
}

static inline void s_open(wsx_conn *c, void *u)
{
    scene *s = u;
    s->srv_open++;
    s->srv_conn = c;
}

static inline void s_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    scene *s = u;
    s->srv_msgs++;
    if (s->server_closes) {
        wsx_close(c, 4001, "server says bye");
        return;
    }
    if (s->echo) wsx_send(c, m->data, m->len, m->type);
}

static inline void s_close(wsx_conn *c, int code, const char *reason, size_t len, void *u)
{
    scene *s = u;
    (void)c;
    s->srv_close++;
    s->srv_close_code = code;
    snprintf(s->srv_close_reason, sizeof s->srv_close_reason, "%.*s", (int)len, reason);
    if (s->srv_conn == c) s->srv_conn = NULL;
}

static inline void s_drain(wsx_conn *c, void *u)
{
    (void)c;
    ((scene *)u)->srv_drains++;
}

static inline void c_open(wsx_conn *c, void *u)
{
    scene *s = u;
    s->cli_open++;
    if (s->client_sends) {
        uint8_t *buf = malloc(s->client_size + 1);
        for (size_t i = 0; i < s->client_size; i++)
            buf[i] = (uint8_t)('a' + i % 26);
        for (int i = 0; i < s->client_sends; i++)
            wsx_send(c, buf, s->client_size, WSX_TEXT);
        free(buf);
    }
    if (s->bad_then_close) {
        wsx_send(c, "\xff\xfe", 2, WSX_TEXT);
        wsx_close(c, 1000, "done");
    }
}

static inline void c_message(wsx_conn *c, const wsx_msg *m, void *u)
{
    scene *s = u;
    s->cli_msgs++;
    s->last_len = m->len;
    s->last_type = m->type;
    snprintf(s->last_msg, sizeof s->last_msg, "%.*s", (int)(m->len < 200 ? m->len : 200),
             (const char *)m->data);
    if (s->close_after && s->cli_msgs == s->close_after) wsx_close(c, 1000, "client done");
}

static inline void c_close(wsx_conn *c, int code, const char *reason, size_t len, void *u)
{
    scene *s = u;
    (void)c;
    s->cli_close++;
    s->cli_close_code = code;
    snprintf(s->cli_close_reason, sizeof s->cli_close_reason, "%.*s", (int)len, reason);
}

static inline void c_pong(wsx_conn *c, const uint8_t *d, size_t n, void *u)
{
    (void)c;
    (void)d;
    (void)n;
    ((scene *)u)->pongs++;
}

static inline void c_reconnecting(wsx_client *cl, unsigned attempt, uint32_t delay, int err,
                                  void *u)
{
    (void)cl;
    (void)attempt;
    (void)delay;
    (void)err;
    ((scene *)u)->cli_reconnecting++;
}

static inline void c_end(wsx_client *cl, int err, const char *why, void *u)
{
    scene *s = u;
    (void)cl;
    s->cli_end++;
    s->cli_end_err = err;
    snprintf(s->cli_end_why, sizeof s->cli_end_why, "%s", why ? why : "");
    s->cl = NULL;
    if (s->stop_on_end) {
        if (s->srv) wsx_server_shutdown(s->srv, 1000);
        if (s->watchdog) wsx_timer_stop(s->watchdog);
        s->watchdog = NULL;
    }
}

static inline void s_pong(wsx_conn *c, const uint8_t *d, size_t n, void *u)
{
    (void)c;
    (void)d;
    (void)n;
    ((scene *)u)->srv_pongs++;
}

static inline wsx_server_opts server_opts(scene *s)
{
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    o.port = 0;
    o.on_open = s_open;
    o.on_message = s_message;
    o.on_close = s_close;
    o.on_drain = s_drain;
    o.on_pong = s_pong;
    o.user = s;
    return o;
}

static inline wsx_client_opts client_opts(scene *s)
{
    wsx_client_opts o = wsx_client_defaults();
    o.url = s->url;
    o.on_open = c_open;
    o.on_message = c_message;
    o.on_close = c_close;
    o.on_pong = c_pong;
    o.on_reconnecting = c_reconnecting;
    o.on_end = c_end;
    o.user = s;
    return o;
}

static inline void start(scene *s, const wsx_server_opts *so)
{
    CHECK_INT(wsx_loop_new(&s->loop), 0);
    if (so) {
        CHECK_INT(wsx_server_start(s->loop, so, &s->srv, NULL), 0);
        snprintf(s->url, sizeof s->url, "ws://127.0.0.1:%u/chat", wsx_server_port(s->srv));
    }
    wsx_timer_start(s->loop, 10000, 0, watchdog_fired, s, &s->watchdog);
}

static inline void finish(scene *s)
{
    if (s->watchdog) wsx_timer_stop(s->watchdog);
    s->watchdog = NULL;
    if (s->srv) wsx_server_shutdown(s->srv, 500);
    if (s->cl) wsx_client_close(s->cl, 1000, NULL);
    wsx_loop_run(s->loop);
    wsx_server_free(s->srv);
    wsx_loop_free(s->loop);
}

/* Starts the scene's server with so (server_opts(s) when NULL), connects a client with co
 * (client_opts(s) when NULL) and runs the loop until it stops. */
static inline void scene_run(scene *s, const wsx_server_opts *so, const wsx_client_opts *co)
{
    wsx_server_opts sd = server_opts(s);
    start(s, so ? so : &sd);
    wsx_client_opts cd = client_opts(s);
    CHECK_INT(wsx_client_connect(s->loop, co ? co : &cd, &s->cl, NULL), 0);
    wsx_loop_run(s->loop);
}

#endif
