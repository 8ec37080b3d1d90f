/*
 * The test server shared by the TCP unit tests (test_tcp.c: streams; test_connect.c;
 * test_listen.c). Include after test.h and net_test.h.
 */
#ifndef WSX_TCP_TEST_H
#define WSX_TCP_TEST_H

#include <stdlib.h>
#include <string.h>

#include "net/net.h"

/* A test server: every accepted connection becomes a conn with the server's vtable. */
typedef struct server server;
typedef struct conn {
    wsx__stream s;
    server *srv;
    size_t got;
    int closes;
    int close_err;
    bool eof;
    struct conn *next;
} conn;

struct server {
    wsx_loop *loop;
    wsx__listener *l;
    const wsx__stream_vt *vt;
    conn *conns;
    int accepted;
    int closed;
    int last_err;
    void (*on_accept)(server *srv, conn *c);
    void *user;
};

static inline void srv_accept(wsx__listener *l, int fd, const struct sockaddr *peer, socklen_t len,
                              void *arg)
{
    server *srv = arg;
    char text[64];
    CHECK(wsx__addr_format(peer, text, sizeof text) > 0);
    conn *c = calloc(1, sizeof *c);
    c->srv = srv;
    if (wsx__stream_init(srv->loop, &c->s, fd, srv->vt) != 0) {
        CHECK(0);
        free(c);
        return;
    }
    c->next = srv->conns;
    srv->conns = c;
    srv->accepted++;
    if (srv->on_accept) srv->on_accept(srv, c);
}

static inline void srv_unlink(server *srv, conn *c)
{
    for (conn **pp = &srv->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            return;
        }
    }
}

/* on_close for server conns: count and free. */
static inline void srv_conn_close(wsx__stream *s, int err)
{
    conn *c = wsx__container_of(s, conn, s);
    server *srv = c->srv;
    srv->closed++;
    srv->last_err = err;
    srv_unlink(srv, c);
    free(c);
}

static inline void start_server(server *srv, wsx_loop *loop, const char *host,
                                const wsx__stream_vt *vt)
{
    memset(srv, 0, sizeof *srv);
    srv->loop = loop;
    srv->vt = vt;
    wsx__listen_opts o = {.host = host, .port = 0};
    int rc = wsx__listen(loop, &o, srv_accept, srv, &srv->l);
    CHECK_INT(rc, 0);
    if (rc != 0) exit(1);
    CHECK(wsx__listener_port(srv->l) != 0);
}

#endif
