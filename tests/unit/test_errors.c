/*
 * How error details reach the application (docs/design.md, "Errors"): a transport failure
 * ends in on_close with 1006 and a reason that names it, on the server and on the client; the
 * calls that fail for reasons the code does not explain fill a caller-owned wsx_error.
 * Real sockets on 127.0.0.1; the peer that misbehaves is a raw socket (plain, or TLS through
 * OpenSSL on a thread) that resets the connection (SO_LINGER 0) or sends a broken TLS record
 * right after the WebSocket handshake.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "test.h"
#include "net_test.h"
#include "tls_test.h"
#include "wsx.h"

typedef struct seen {
    wsx_loop *loop;
    int opens, closes, code, ends, end_err;
    char reason[256];
} seen;

static void on_open(wsx_conn *c, void *user)
{
    (void)c;
    ((seen *)user)->opens++;
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    (void)c;
    seen *s = user;
    s->closes++;
    s->code = code;
    snprintf(s->reason, sizeof s->reason, "%.*s", (int)len, reason);
}

static void stop_cb(wsx_timer *t, void *arg)
{
    (void)t;
    wsx_loop_stop(arg);
}

/* Runs the loop until cond(s) holds, for at most ms. */
static void run_until(seen *s, int (*cond)(const seen *), uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    while (!cond(s) && now_ms() < end) {
        wsx_timer_start(s->loop, 10, 0, stop_cb, s->loop, NULL);
        wsx_loop_run(s->loop);
    }
}

static int closed(const seen *s)
{
    return s->closes > 0;
}

static int opened(const seen *s)
{
    return s->opens > 0;
}

static int ended(const seen *s)
{
    return s->ends > 0;
}

/* Sets SO_LINGER 0 and closes: the kernel sends RST instead of FIN. */
static void reset_close(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Reads an HTTP head (up to the blank line) into buf. Returns its length or -1. */
static int read_head(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0) return -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n")) return (int)n;
    }
    return -1;
}

TEST(server_sees_reset_as_1006_with_detail)
{
    seen s = {0};
    s.loop = new_loop();
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    o.on_open = on_open;
    o.on_close = on_close;
    o.user = &s;
    wsx_server *srv;
    CHECK_INT(wsx_server_start(s.loop, &o, &srv, NULL), 0);

    int fd = tcp_connect(wsx_server_port(srv));
    CHECK(fd >= 0);
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    CHECK(send(fd, req, sizeof req - 1, 0) == (ssize_t)(sizeof req - 1));
    run_until(&s, opened, 5000);
    CHECK_INT(s.opens, 1);
    char head[1024];
    CHECK(read_head(fd, head, sizeof head) > 0);
    CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);

    reset_close(fd);
    run_until(&s, closed, 5000);
    CHECK_INT(s.closes, 1);
    CHECK_INT(s.code, WSX_CLOSE_ABNORMAL);
    CHECK_STR(s.reason, "connection reset by peer");

    /* An orderly TCP close without a close frame: 1006 too, and the reason says so. */
    memset(&s.opens, 0, sizeof s - offsetof(seen, opens));
    fd = tcp_connect(wsx_server_port(srv));
    CHECK(fd >= 0);
    CHECK(send(fd, req, sizeof req - 1, 0) == (ssize_t)(sizeof req - 1));
    run_until(&s, opened, 5000);
    CHECK(read_head(fd, head, sizeof head) > 0);
    close(fd);
    run_until(&s, closed, 5000);
    CHECK_INT(s.code, WSX_CLOSE_ABNORMAL);
    CHECK_STR(s.reason, "connection closed without a close frame");

    wsx_server_shutdown(srv, 500);
    wsx_loop_run(s.loop);
    wsx_server_free(srv);
    wsx_loop_free(s.loop);
}

/* A raw server for one client: answers the handshake with 101, waits for `go`, resets. */
typedef struct raw_server {
    int lfd;
    uint16_t port;
    volatile int go;
    int ok;
} raw_server;

static void *raw_server_main(void *arg)
{
    raw_server *r = arg;
    int fd = accept(r->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char head[4096];
    if (read_head(fd, head, sizeof head) < 0) {
        close(fd);
        return NULL;
    }
    const char *k = strcasestr(head, "\r\nSec-WebSocket-Key: ");
    char accept_key[WSX_ACCEPT_LEN + 1];
    if (!k || wsx_accept_key(k + 21, 24, accept_key) < 0) {
        close(fd);
        return NULL;
    }
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept_key);
    r->ok = send(fd, resp, (size_t)n, 0) == n;
    for (int i = 0; i < 500 && !r->go; i++)
        usleep(10000);
    reset_close(fd);
    return NULL;
}

static void on_end(wsx_client *cl, int err, const char *why, void *user)
{
    (void)cl;
    (void)why;
    seen *s = user;
    s->ends++;
    s->end_err = err;
}

TEST(client_sees_reset_as_1006_with_detail)
{
    seen s = {0};
    s.loop = new_loop();
    raw_server r = {0};
    r.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(bind(r.lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(r.lfd, 4) == 0);
    CHECK(getsockname(r.lfd, (struct sockaddr *)&a, &alen) == 0);
    r.port = ntohs(a.sin_port);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, raw_server_main, &r) == 0);

    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", r.port);
    wsx_client_opts co = wsx_client_defaults();
    co.url = url;
    co.on_open = on_open;
    co.on_close = on_close;
    co.on_end = on_end;
    co.user = &s;
    wsx_error err;
    CHECK_INT(wsx_client_connect(s.loop, &co, NULL, &err), 0);
    CHECK_INT(err.code, 0);
    CHECK_STR(err.detail, "");
    run_until(&s, opened, 5000);
    CHECK_INT(s.opens, 1);
    r.go = 1;
    run_until(&s, ended, 5000);
    pthread_join(th, NULL);
    close(r.lfd);
    CHECK(r.ok);
    CHECK_INT(s.closes, 1);
    CHECK_INT(s.code, WSX_CLOSE_ABNORMAL);
    CHECK_STR(s.reason, "connection reset by peer");
    /* The end was reported by on_close: on_end says nothing more. */
    CHECK_INT(s.ends, 1);
    CHECK_INT(s.end_err, 0);
    wsx_loop_free(s.loop);
}

/* A TLS client on its own thread: TLS and WebSocket handshakes, then on `go` either a reset
 * or a record of garbage written under OpenSSL (a TLS error on the server's side). */
typedef struct tls_peer {
    uint16_t port;
    bool garbage;
    volatile int go;
    int ok;
} tls_peer;

static void *tls_peer_main(void *arg)
{
    tls_peer *p = arg;
    int fd = tcp_connect(p->port);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (fd < 0 || !ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1) goto out;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    char head[1024];
    int n = 0;
    if (SSL_write(ssl, req, sizeof req - 1) != (int)sizeof req - 1) goto out;
    while (n < (int)sizeof head - 1 && !strstr(head, "\r\n\r\n")) {
        int r = SSL_read(ssl, head + n, (int)sizeof head - 1 - n);
        if (r <= 0) goto out;
        head[n += r] = '\0';
    }
    p->ok = strncmp(head, "HTTP/1.1 101", 12) == 0;
    for (int i = 0; i < 500 && !p->go; i++)
        usleep(10000);
    if (p->garbage) {
        /* An application-data record header and bytes no key decrypts. */
        static const unsigned char bad[] = {
            0x17, 0x03, 0x03, 0x00, 0x20, 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,
            15,   16,   17,   18,   19,   20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
        if (send(fd, bad, sizeof bad, 0) != (ssize_t)sizeof bad) p->ok = 0;
        usleep(200000);
    }
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0) reset_close(fd);
    return NULL;
}

TEST(tls_server_sees_reset_and_bad_record_with_detail)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0 || !make_certs()) {
        printf("tls part skipped: no openssl command to make certificates\n");
        return;
    }
    seen s = {0};
    s.loop = new_loop();
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    wsx_tls_cert cert = {path("localhost.pem"), path("localhost.key")};
    o.tls_certs = &cert;
    o.n_tls_certs = 1;
    o.on_open = on_open;
    o.on_close = on_close;
    o.user = &s;
    wsx_server *srv;
    CHECK_INT(wsx_server_start(s.loop, &o, &srv, NULL), 0);
    for (int garbage = 0; garbage < 2; garbage++) {
        memset(&s.opens, 0, sizeof s - offsetof(seen, opens));
        tls_peer p = {.port = wsx_server_port(srv), .garbage = garbage};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, tls_peer_main, &p) == 0);
        run_until(&s, opened, 5000);
        CHECK_INT(s.opens, 1);
        p.go = 1;
        run_until(&s, closed, 5000);
        pthread_join(th, NULL);
        CHECK(p.ok);
        CHECK_INT(s.closes, 1);
        CHECK_INT(s.code, WSX_CLOSE_ABNORMAL);
        if (garbage) {
            /* OpenSSL's reason for the record, e.g. "decryption failed or bad record mac". */
            CHECK(strncmp(s.reason, "TLS read failed: ", 17) == 0 && strlen(s.reason) > 17);
        } else {
            CHECK(strstr(s.reason, "connection reset by peer") != NULL);
        }
        printf("# TLS peer %s: on_close(1006, \"%s\")\n", garbage ? "garbage" : "reset", s.reason);
    }
    wsx_server_shutdown(srv, 500);
    wsx_loop_run(s.loop);
    wsx_server_free(srv);
    wsx_loop_free(s.loop);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

TEST(calls_fill_wsx_error)
{
    wsx_loop *loop = new_loop();
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    wsx_tls_cert cert = {"/nonexistent/cert.pem", "/nonexistent/key.pem"};
    o.tls_certs = &cert;
    o.n_tls_certs = 1;
    wsx_server *srv = NULL;
    wsx_error err;
    memset(&err, 0x55, sizeof err); /* garbage in: the call sets every field */
    CHECK_INT(wsx_server_start(loop, &o, &srv, &err), WSX_ETLS);
    CHECK_INT(err.code, WSX_ETLS);
    CHECK(strstr(err.detail, "/nonexistent/cert.pem") != NULL);
    CHECK(srv == NULL);

    /* Success: code 0, no detail. Reloading a plain server: WSX_EINVAL, said in words. */
    o.tls_certs = NULL;
    o.n_tls_certs = 0;
    memset(&err, 0x55, sizeof err);
    CHECK_INT(wsx_server_start(loop, &o, &srv, &err), 0);
    CHECK_INT(err.code, 0);
    CHECK_STR(err.detail, "");
    CHECK_INT(wsx_server_reload_tls(srv, &err), WSX_EINVAL);
    CHECK_INT(err.code, WSX_EINVAL);
    CHECK_STR(err.detail, "not a TLS server");

    /* A code that says it all: the code, and an empty detail. NULL is always allowed. */
    wsx_client_opts co = wsx_client_defaults();
    co.url = "http://example.com/";
    memset(&err, 0x55, sizeof err);
    CHECK_INT(wsx_client_connect(loop, &co, NULL, &err), WSX_EURL);
    CHECK_INT(err.code, WSX_EURL);
    CHECK_STR(err.detail, "");
    CHECK_INT(wsx_client_connect(loop, &co, NULL, NULL), WSX_EURL);

    co.url = "wss://127.0.0.1:1/";
    co.tls_cafile = "/nonexistent/ca.pem";
    CHECK_INT(wsx_client_connect(loop, &co, NULL, &err), WSX_ETLS);
    CHECK_INT(err.code, WSX_ETLS);
    CHECK(strstr(err.detail, "/nonexistent/ca.pem") != NULL);

    wsx_server_shutdown(srv, 500);
    wsx_loop_run(loop);
    wsx_server_free(srv);
    wsx_loop_free(loop);
}

int main(void)
{
    RUN_T(server_sees_reset_as_1006_with_detail);
    RUN_T(client_sees_reset_as_1006_with_detail);
    RUN_T(tls_server_sees_reset_and_bad_record_with_detail);
    RUN_T(calls_fill_wsx_error);
    return test_summary("errors");
}
