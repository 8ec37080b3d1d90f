/*
 * TLS streams through the loop with real sockets on 127.0.0.1: echo, record batching,
 * verification failures and their reasons, insecure mode, plain-text clients, handshake
 * deadline, SNI, reload, ALPN, half-close with close_notify, pause/resume (context errors:
 * test_tls_ctx.c). tls_test.h makes a throwaway CA and certificates with the openssl command
 * in a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "net/net.h"
#include "test.h"
#include "net_test.h"
#include "tls_test.h"
#include "wsx/loop.h"

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) exit(2);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}

/* ------------------------------------------------------------------------------------------
 * A test server: every connection is a TLS stream with S.vt; state in one global per test
 * ------------------------------------------------------------------------------------------ */

typedef struct sconn {
    wsx__stream s;
    struct sconn *next;
    char buf[64];
    size_t len;
} sconn;

static struct {
    wsx_loop *loop;
    wsx__listener *l;
    wsx__tls_ctx *ctx;
    const wsx__stream_vt *vt;
    sconn *conns;
    int accepted, closed, last_err;
    int clients_left; /* the listener closes when the last client closes */
    char reason[256];
    char alpn[32];
    void (*on_accept)(sconn *c);
} S;

static void srv_accept(wsx__listener *l, int fd, const struct sockaddr *peer, socklen_t len,
                       void *arg)
{
    sconn *c = calloc(1, sizeof *c);
    if (wsx__stream_init_tls(S.loop, &c->s, fd, S.vt, S.ctx, NULL) != 0) {
        CHECK(0);
        free(c);
        return;
    }
    CHECK(wsx__stream_is_tls(&c->s));
    c->next = S.conns;
    S.conns = c;
    S.accepted++;
    if (S.on_accept) S.on_accept(c);
}

static void srv_close(wsx__stream *s, int err)
{
    sconn *c = wsx__container_of(s, sconn, s);
    S.closed++;
    S.last_err = err;
    const char *why = wsx__stream_tls_error(s);
    snprintf(S.reason, sizeof S.reason, "%s", why ? why : "");
    for (sconn **pp = &S.conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    free(c);
}

static void start_server(wsx_loop *loop, wsx__tls_ctx *ctx, const wsx__stream_vt *vt, int clients)
{
    memset(&S, 0, sizeof S);
    S.loop = loop;
    S.ctx = ctx;
    S.vt = vt;
    S.clients_left = clients;
    wsx__listen_opts o = {.host = "127.0.0.1"};
    if (wsx__listen(loop, &o, srv_accept, NULL, &S.l) != 0) exit(2);
}

static void srv_echo_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    if (S.alpn[0] == 0) wsx__stream_tls_alpn(s, S.alpn, sizeof S.alpn);
    CHECK_INT(wsx__stream_write1(s, d, n), 0);
    if (wsx__stream_queued(s) > 4u << 20) wsx__stream_pause(s);
}

static void srv_echo_drain(wsx__stream *s)
{
    wsx__stream_resume(s);
}

static const wsx__stream_vt srv_echo_vt = {srv_echo_read, NULL, srv_echo_drain, srv_close};

/* ------------------------------------------------------------------------------------------
 * Clients
 * ------------------------------------------------------------------------------------------ */

typedef struct cli {
    wsx__stream s;
    wsx__tls_ctx *ctx; /* NULL: plain TCP */
    const char *name;
    const wsx__stream_vt *vt;
    const char *hello; /* written at connect */
    size_t want;       /* close once this much arrived */
    uint8_t *buf;
    size_t len, cap;
    size_t bad;
    int closes, close_err;
    bool eof, init_ok;
    char reason[256];
    char subject[256];
    char alpn[32];
    void (*on_data)(struct cli *c);
} cli;

static void cli_note_peer(cli *c)
{
    if (c->subject[0] || !c->ctx) return;
    SSL *ssl = wsx__stream_tls_ssl(&c->s);
    X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (x) X509_NAME_oneline(X509_get_subject_name(x), c->subject, sizeof c->subject);
    CHECK(wsx__stream_tls_ready(&c->s));
    CHECK(wsx__stream_tls_alpn(&c->s, c->alpn, sizeof c->alpn) >= 0);
}

static void cli_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    cli *c = wsx__container_of(s, cli, s);
    cli_note_peer(c);
    if (c->len + n > c->cap) {
        c->cap = (c->len + n) * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, d, n);
    c->len += n;
    if (c->on_data) c->on_data(c);
    if (c->want && c->len >= c->want) wsx__stream_close(s);
}

static void cli_eof(wsx__stream *s)
{
    cli *c = wsx__container_of(s, cli, s);
    c->eof = true;
    wsx__stream_close(s);
}

static void cli_close(wsx__stream *s, int err)
{
    cli *c = wsx__container_of(s, cli, s);
    c->closes++;
    c->close_err = err;
    const char *why = wsx__stream_tls_error(s);
    snprintf(c->reason, sizeof c->reason, "%s", why ? why : "");
    if (--S.clients_left == 0 && S.l) {
        wsx__listener_close(S.l);
        S.l = NULL;
    }
}

static const wsx__stream_vt cli_vt = {cli_read, cli_eof, NULL, cli_close};

static void cli_connected(int fd, int err, void *arg)
{
    cli *c = arg;
    CHECK_INT(err, 0);
    if (fd < 0) return;
    const wsx__stream_vt *vt = c->vt ? c->vt : &cli_vt;
    int rc = c->ctx ? wsx__stream_init_tls(S.loop, &c->s, fd, vt, c->ctx, c->name)
                    : wsx__stream_init(S.loop, &c->s, fd, vt);
    CHECK_INT(rc, 0);
    c->init_ok = rc == 0;
    if (rc == 0 && c->hello) CHECK_INT(wsx__stream_write1(&c->s, c->hello, strlen(c->hello)), 0);
}

static void cli_connect(cli *c)
{
    CHECK_INT(
        wsx__connect(S.loop, "127.0.0.1", wsx__listener_port(S.l), 5000, cli_connected, c, NULL),
        0);
}

/* One client says hello to an echo server and closes once the echo is back (or fails). */
static void run_hello(wsx__tls_ctx *sctx, cli *c)
{
    wsx_loop *loop = new_loop();
    start_server(loop, sctx, &srv_echo_vt, 1);
    c->hello = "hello";
    c->want = 5;
    cli_connect(c);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(c->closes, 1);
    CHECK_INT(S.closed, S.accepted);
    wsx_loop_free(loop);
}

static void cli_free(cli *c)
{
    free(c->buf);
    c->buf = NULL;
}

/* ------------------------------------------------------------------------------------------
 * Echo of 1 MiB both ways, written with write1, writev and shared-buffer slices
 * ------------------------------------------------------------------------------------------ */

enum { ECHO_LEN = 1 << 20 };

static size_t echo_seen;

static void echo_data(cli *c)
{
    for (size_t i = 0; i < c->len; i++)
        c->bad += c->buf[i] != pattern(echo_seen + i);
    echo_seen += c->len;
    c->len = 0;
    if (echo_seen >= ECHO_LEN) wsx__stream_close(&c->s);
}

static void echo_connected(int fd, int err, void *arg)
{
    cli *c = arg;
    cli_connected(fd, err, arg);
    if (!c->init_ok) return;
    uint8_t *buf = malloc(ECHO_LEN);
    for (size_t i = 0; i < ECHO_LEN; i++)
        buf[i] = pattern(i);
    size_t third = ECHO_LEN / 3;
    CHECK_INT(wsx__stream_write1(&c->s, buf, third), 0);
    for (size_t off = third; off < 2 * third; off += 1000) {
        size_t k = 2 * third - off < 1000 ? 2 * third - off : 1000;
        struct iovec iov[2] = {{buf + off, k / 2}, {buf + off + k / 2, k - k / 2}};
        CHECK_INT(wsx__stream_write(&c->s, iov, 2), 0);
    }
    wsx__ref *r = wsx__ref_new(ECHO_LEN - 2 * third);
    memcpy(r->data, buf + 2 * third, r->len);
    CHECK_INT(wsx__stream_write_ref(&c->s, r, r->data, 100), 0);
    CHECK_INT(wsx__stream_write_ref(&c->s, r, r->data + 100, r->len - 100), 0);
    wsx__ref_release(r);
    CHECK_INT(wsx__stream_queued(&c->s), ECHO_LEN);
    free(buf);
}

TEST(echo_1mib)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    wsx_loop *loop = new_loop();
    start_server(loop, sctx, &srv_echo_vt, 1);
    cli c = {.ctx = cctx, .name = "localhost", .on_data = echo_data};
    echo_seen = 0;
    CHECK_INT(
        wsx__connect(loop, "127.0.0.1", wsx__listener_port(S.l), 5000, echo_connected, &c, NULL),
        0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(echo_seen, ECHO_LEN);
    CHECK_INT(c.bad, 0);
    CHECK_INT(c.closes, 1);
    CHECK_INT(c.close_err, 0);
    CHECK_STR(c.reason, "");
    CHECK_INT(S.accepted, 1);
    CHECK_INT(S.closed, 1);
    CHECK_INT(S.last_err, WSX_ECLOSED); /* close_notify from the client, no on_eof */
    CHECK_STR(S.reason, "");
    /* Records of up to 16 KiB, or more in place: far fewer SSL_write calls than writes. */
    CHECK(wsx__loop_stats_get(loop)->ssl_write_calls < 2 * ECHO_LEN / 16384 + 16);
    wsx_loop_free(loop);
    cli_free(&c);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

/* ------------------------------------------------------------------------------------------
 * 1000 small writes in one iteration leave in one or two records
 * ------------------------------------------------------------------------------------------ */

enum { BATCH_N = 1000 };
static char batch_expect[BATCH_N * 16];
static size_t batch_expect_len;
static uint64_t batch_before, batch_after;

static void batch_srv_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    batch_before = wsx__loop_stats_get(S.loop)->ssl_write_calls;
    for (int i = 0; i < BATCH_N; i++) {
        char m[16];
        int k = snprintf(m, sizeof m, "msg%04d\n", i);
        CHECK_INT(wsx__stream_write1(s, m, (size_t)k), 0);
    }
    CHECK_INT(wsx__stream_queued(s), batch_expect_len);
    CHECK_INT(wsx__loop_stats_get(S.loop)->ssl_write_calls, batch_before); /* corked */
    wsx__stream_shutdown_write(s);
    CHECK_INT(wsx__stream_write1(s, "x", 1), WSX_ECLOSED);
}

static const wsx__stream_vt batch_srv_vt = {batch_srv_read, NULL, NULL, srv_close};

static void batch_cli_eof(wsx__stream *s)
{
    batch_after = wsx__loop_stats_get(S.loop)->ssl_write_calls;
    cli_eof(s);
}

static const wsx__stream_vt batch_cli_vt = {cli_read, batch_cli_eof, NULL, cli_close};

TEST(small_writes_batched_into_records)
{
    batch_expect_len = 0;
    for (int i = 0; i < BATCH_N; i++)
        batch_expect_len += (size_t)snprintf(batch_expect + batch_expect_len, 16, "msg%04d\n", i);
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    wsx_loop *loop = new_loop();
    start_server(loop, sctx, &batch_srv_vt, 1);
    cli c = {.ctx = cctx, .name = "localhost", .vt = &batch_cli_vt, .hello = "go"};
    batch_before = batch_after = 0;
    cli_connect(&c);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK(c.eof); /* close_notify arrived as EOF */
    CHECK_MEM(c.buf, c.len, batch_expect, batch_expect_len);
    /* 8 KB of 8-byte writes: one record, one SSL_write. */
    CHECK(batch_after - batch_before >= 1);
    CHECK(batch_after - batch_before <= 2);
    CHECK_INT(S.closed, 1);
    wsx_loop_free(loop);
    cli_free(&c);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

/* ------------------------------------------------------------------------------------------
 * Verification: unknown CA, host name mismatch, insecure mode, IP address
 * ------------------------------------------------------------------------------------------ */

TEST(unknown_ca_rejected)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *cctx = client_ctx(NULL, false); /* the system store does not know our CA */
    cli c = {.ctx = cctx, .name = "localhost"};
    run_hello(sctx, &c);
    CHECK_INT(c.close_err, WSX_ETLS);
    CHECK_INT(c.len, 0);
    CHECK(strstr(c.reason, "certificate verify failed: unable to get local issuer certificate"));
    CHECK_INT(S.last_err, WSX_ETLS); /* the server hears the client's alert */
    CHECK(strstr(S.reason, "unknown ca") != NULL);
    cli_free(&c);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

TEST(hostname_mismatch_rejected)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    cli c = {.ctx = cctx, .name = "foo.example"};
    run_hello(sctx, &c);
    CHECK_INT(c.close_err, WSX_ETLS);
    CHECK_STR(c.reason, "certificate verify failed: hostname mismatch (expected 'foo.example', "
                        "certificate is for 'localhost, 127.0.0.1')");
    cli_free(&c);

    /* An IP literal is checked against the IP entries. */
    cli c2 = {.ctx = cctx, .name = "127.0.0.2"};
    run_hello(sctx, &c2);
    CHECK_INT(c2.close_err, WSX_ETLS);
    CHECK(strstr(c2.reason, "IP address mismatch (expected '127.0.0.2'") != NULL);
    cli_free(&c2);
    cli c3 = {.ctx = cctx, .name = "127.0.0.1"};
    run_hello(sctx, &c3);
    CHECK_INT(c3.close_err, 0);
    CHECK_STRN(c3.buf, c3.len, "hello");
    cli_free(&c3);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

TEST(insecure_connects)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *cctx = client_ctx(NULL, true);
    cli c = {.ctx = cctx, .name = "foo.example"};
    run_hello(sctx, &c);
    CHECK_INT(c.close_err, 0);
    CHECK_STRN(c.buf, c.len, "hello");
    CHECK_STR(c.reason, "");
    cli_free(&c);
    cli c2 = {.ctx = cctx, .name = NULL}; /* no name at all is allowed when insecure */
    run_hello(sctx, &c2);
    CHECK_STRN(c2.buf, c2.len, "hello");
    cli_free(&c2);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

/* Client contexts with the same settings are one shared context while any user holds it;
 * different settings get their own; each user's free drops one reference. */
static void *share_churn(void *arg)
{
    (void)arg;
    wsx__tls_client_opts o = {.insecure = true, .handshake_timeout_ms = 4321};
    for (int i = 0; i < 200; i++) {
        wsx__tls_ctx *a = NULL, *b = NULL;
        if (wsx__tls_client_new(&o, &a, NULL, 0) != 0 || wsx__tls_client_new(&o, &b, NULL, 0) != 0)
            return (void *)1;
        wsx__tls_ctx_free(b);
        wsx__tls_ctx_free(a);
    }
    return NULL;
}

TEST(client_contexts_shared)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *a = client_ctx("ca.pem", false);
    wsx__tls_ctx *b = client_ctx("ca.pem", false);
    wsx__tls_ctx *c = client_ctx("ca.pem", true);
    wsx__tls_ctx *d = client_ctx(NULL, false);
    CHECK(a == b);
    CHECK(c != a && d != a && d != c);
    wsx__tls_client_opts o = {.cafile = path("ca.pem"), .handshake_timeout_ms = 1234};
    wsx__tls_ctx *e = NULL;
    CHECK_INT(wsx__tls_client_new(&o, &e, NULL, 0), 0);
    CHECK(e != a); /* another handshake deadline */
    o.handshake_timeout_ms = 0;
    o.ciphersuites = "TLS_AES_128_GCM_SHA256";
    wsx__tls_ctx *f = NULL;
    CHECK_INT(wsx__tls_client_new(&o, &f, NULL, 0), 0);
    CHECK(f != a && f != e);
    wsx__tls_ctx_free(e);
    wsx__tls_ctx_free(f);

    /* The first user gone, the second still verifies and connects with it. */
    wsx__tls_ctx_free(a);
    cli k = {.ctx = b, .name = "localhost"};
    run_hello(sctx, &k);
    CHECK_INT(k.close_err, 0);
    CHECK_STRN(k.buf, k.len, "hello");
    cli_free(&k);
    wsx__tls_ctx_free(b);
    wsx__tls_ctx_free(c);
    wsx__tls_ctx_free(d);

    /* Built anew after the last user left. */
    wsx__tls_ctx *g = client_ctx("ca.pem", false);
    cli k2 = {.ctx = g, .name = "localhost"};
    run_hello(sctx, &k2);
    CHECK_INT(k2.close_err, 0);
    cli_free(&k2);
    wsx__tls_ctx_free(g);

    /* Several threads taking and dropping the same one. */
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, share_churn, NULL);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL);
    }
    wsx__tls_ctx_free(sctx);
}

/* ------------------------------------------------------------------------------------------
 * ALPN and SNI
 * ------------------------------------------------------------------------------------------ */

TEST(alpn_http11)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    cli c = {.ctx = cctx, .name = "localhost"};
    run_hello(sctx, &c);
    CHECK_INT(c.close_err, 0);
    CHECK_STR(c.alpn, "http/1.1");
    CHECK_STR(S.alpn, "http/1.1");
    cli_free(&c);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

TEST(sni_picks_certificate)
{
    wsx__tls_cert certs[2] = {{path("localhost.pem"), path("localhost.key")},
                              {path("other.pem"), path("other.key")}};
    wsx__tls_server_opts o = {.certs = certs, .ncerts = 2};
    wsx__tls_ctx *sctx = NULL;
    char err[256];
    CHECK_INT(wsx__tls_server_new(&o, &sctx, err, sizeof err), 0);
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    wsx__tls_ctx *insecure = client_ctx(NULL, true);

    cli a = {.ctx = cctx, .name = "other.test"};
    run_hello(sctx, &a);
    CHECK_INT(a.close_err, 0);
    CHECK_STR(a.subject, "/CN=other.test");
    cli b = {.ctx = cctx, .name = "localhost"};
    run_hello(sctx, &b);
    CHECK_INT(b.close_err, 0);
    CHECK_STR(b.subject, "/CN=localhost");
    /* No SNI (IP literal) and an unknown name: the first certificate. */
    cli d = {.ctx = cctx, .name = "127.0.0.1"};
    run_hello(sctx, &d);
    CHECK_INT(d.close_err, 0);
    CHECK_STR(d.subject, "/CN=localhost");
    cli e = {.ctx = insecure, .name = "nomatch.test"};
    run_hello(sctx, &e);
    CHECK_INT(e.close_err, 0);
    CHECK_STR(e.subject, "/CN=localhost");
    cli_free(&a);
    cli_free(&b);
    cli_free(&d);
    cli_free(&e);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
    wsx__tls_ctx_free(insecure);
}

/* ------------------------------------------------------------------------------------------
 * Plain-text client on the TLS port; handshake deadline
 * ------------------------------------------------------------------------------------------ */

TEST(plaintext_client_closed)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    cli c = {.ctx = NULL, .hello = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"};
    run_hello(sctx, &c);
    CHECK_INT(S.accepted, 1);
    CHECK_INT(S.closed, 1);
    CHECK_INT(S.last_err, WSX_ETLS);
    CHECK(strstr(S.reason, "TLS handshake failed: ") == S.reason);
    /* OpenSSL 3.0 says "wrong version number", later versions may say "http request". */
    CHECK(strstr(S.reason, "wrong version number") || strstr(S.reason, "http request"));
    CHECK(c.eof || c.close_err == WSX_ECLOSED);
    CHECK_INT(c.len, 0); /* no TLS bytes were worth showing a plain client */
    cli_free(&c);

    /* Random bytes rather than HTTP. */
    cli c2 = {.ctx = NULL, .hello = "\x01\x02\x03\x04\x05\x06\x07\x08 not tls at all"};
    run_hello(sctx, &c2);
    CHECK_INT(S.last_err, WSX_ETLS);
    CHECK(S.reason[0] != 0);
    cli_free(&c2);
    wsx__tls_ctx_free(sctx);
}

static void deadline_srv_close(wsx__stream *s, int err)
{
    srv_close(s, err);
    /* The silent client has nothing to do with us once we are gone. */
    if (S.l) {
        wsx__listener_close(S.l);
        S.l = NULL;
    }
}

static const wsx__stream_vt deadline_srv_vt = {srv_echo_read, NULL, NULL, deadline_srv_close};

TEST(handshake_deadline)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 300);
    wsx_loop *loop = new_loop();
    start_server(loop, sctx, &deadline_srv_vt, 1);
    cli c = {.ctx = NULL}; /* connects and says nothing */
    uint64_t t0 = now_ms();
    cli_connect(&c);
    CHECK_INT(wsx_loop_run(loop), 0);
    uint64_t took = now_ms() - t0;
    CHECK_INT(S.closed, 1);
    CHECK_INT(S.last_err, WSX_ETIMEDOUT);
    CHECK_STR(S.reason, "TLS handshake timed out after 300 ms");
    CHECK(took >= 290);
    CHECK(took < 5000);
    CHECK_INT(c.closes, 1); /* it saw the server hang up */
    wsx_loop_free(loop);
    cli_free(&c);

    /* A TLS client against a server that never answers: the client's own deadline. */
    wsx__tls_client_opts co = {.cafile = path("ca.pem"), .handshake_timeout_ms = 200};
    wsx__tls_ctx *cctx = NULL;
    CHECK_INT(wsx__tls_client_new(&co, &cctx, NULL, 0), 0);
    loop = new_loop();
    memset(&S, 0, sizeof S);
    S.loop = loop;
    S.clients_left = 1;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(lfd, (struct sockaddr *)&a, sizeof a);
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    listen(lfd, 4); /* the kernel completes the TCP handshake; nobody speaks TLS */
    cli d = {.ctx = cctx, .name = "localhost"};
    CHECK_INT(wsx__connect(loop, "127.0.0.1", ntohs(a.sin_port), 5000, cli_connected, &d, NULL), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(d.closes, 1);
    CHECK_INT(d.close_err, WSX_ETIMEDOUT);
    CHECK_STR(d.reason, "TLS handshake timed out after 200 ms");
    close(lfd);
    wsx_loop_free(loop);
    cli_free(&d);
    wsx__tls_ctx_free(cctx);
    wsx__tls_ctx_free(sctx);
}

/* ------------------------------------------------------------------------------------------
 * Reload: new connections get the new certificate, open ones keep working
 * ------------------------------------------------------------------------------------------ */

static struct {
    cli a, b;
    int stage;
} R;

static void reload_b_close(wsx__stream *s, int err)
{
    cli_close(s, err);
    /* B has seen the new certificate; A, started before the reload, must still echo. */
    CHECK_INT(wsx__stream_write1(&R.a.s, "ping2", 5), 0);
    R.a.want = 10;
}

static const wsx__stream_vt reload_b_vt = {cli_read, cli_eof, NULL, reload_b_close};

static void reload_a_data(cli *c)
{
    if (R.stage != 0 || c->len < 5) return;
    R.stage = 1;
    copy_file(path("second.pem"), path("live.pem"));
    copy_file(path("second.key"), path("live.key"));
    char err[256];
    CHECK_INT(wsx__tls_ctx_reload(S.ctx, err, sizeof err), 0);
    R.b =
        (cli){.ctx = c->ctx, .name = "localhost", .vt = &reload_b_vt, .hello = "hello", .want = 5};
    cli_connect(&R.b);
}

TEST(reload_certificates)
{
    copy_file(path("localhost.pem"), path("live.pem"));
    copy_file(path("localhost.key"), path("live.key"));
    wsx__tls_ctx *sctx = server_ctx("live.pem", "live.key", 0);
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    wsx_loop *loop = new_loop();
    start_server(loop, sctx, &srv_echo_vt, 2);
    memset(&R, 0, sizeof R);
    R.a = (cli){.ctx = cctx, .name = "localhost", .hello = "ping1", .on_data = reload_a_data};
    cli_connect(&R.a);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(R.stage, 1);
    CHECK_STR(R.a.subject, "/CN=localhost");
    CHECK_STR(R.b.subject, "/CN=localhost/O=second");
    CHECK_STRN(R.b.buf, R.b.len, "hello");
    CHECK_STRN(R.a.buf, R.a.len, "ping1ping2");
    CHECK_INT(R.a.close_err, 0);
    CHECK_INT(R.b.close_err, 0);
    CHECK_INT(S.closed, 2);
    wsx_loop_free(loop);
    cli_free(&R.a);
    cli_free(&R.b);

    /* A failed reload keeps the configuration in use. */
    FILE *f = fopen(path("live.pem"), "w");
    fputs("not a certificate\n", f);
    fclose(f);
    char err[256] = "";
    CHECK_INT(wsx__tls_ctx_reload(sctx, err, sizeof err), WSX_ETLS);
    char expect[256];
    snprintf(expect, sizeof expect, "cannot load certificate chain from %s: ", path("live.pem"));
    CHECK(strncmp(err, expect, strlen(expect)) == 0);
    cli c = {.ctx = cctx, .name = "localhost"};
    run_hello(sctx, &c);
    CHECK_INT(c.close_err, 0);
    CHECK_STR(c.subject, "/CN=localhost/O=second");
    cli_free(&c);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

/* ------------------------------------------------------------------------------------------
 * Half-close: shutdown_write sends close_notify, the peer sees EOF and may still answer
 * ------------------------------------------------------------------------------------------ */

static void hc_accept(sconn *c)
{
    /* Queued before the handshake: both wait for it. */
    CHECK_INT(wsx__stream_write1(&c->s, "hello", 5), 0);
    wsx__stream_shutdown_write(&c->s);
}

static void hc_srv_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    sconn *c = wsx__container_of(s, sconn, s);
    memcpy(c->buf + c->len, d, n);
    c->len += n;
    S.reason[0] = 0;
    if (c->len == 5) CHECK_STRN(c->buf, c->len, "reply");
}

static int hc_srv_eofs;

static void hc_srv_eof(wsx__stream *s)
{
    sconn *c = wsx__container_of(s, sconn, s);
    hc_srv_eofs++;
    CHECK_STRN(c->buf, c->len, "reply");
    wsx__stream_close(s);
}

static const wsx__stream_vt hc_srv_vt = {hc_srv_read, hc_srv_eof, NULL, srv_close};

static void hc_cli_eof(wsx__stream *s)
{
    cli *c = wsx__container_of(s, cli, s);
    c->eof = true;
    CHECK_INT(wsx__stream_write1(s, "reply", 5), 0);
    wsx__stream_shutdown_write(s);
}

static void hc_watch(wsx_timer *t, void *arg)
{
    cli *c = arg;
    if (S.closed == 1) {
        if (!c->closes) wsx__stream_close(&c->s);
        wsx_timer_stop(t);
    }
}

static const wsx__stream_vt hc_cli_vt = {cli_read, hc_cli_eof, NULL, cli_close};

TEST(half_close_with_close_notify)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    wsx_loop *loop = new_loop();
    start_server(loop, sctx, &hc_srv_vt, 1);
    S.on_accept = hc_accept;
    hc_srv_eofs = 0;
    cli c = {.ctx = cctx, .name = "localhost", .vt = &hc_cli_vt};
    cli_connect(&c);
    wsx_timer_start(loop, 5, 5, hc_watch, &c, NULL);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK(c.eof);
    CHECK_STRN(c.buf, c.len, "hello");
    CHECK_INT(hc_srv_eofs, 1);
    CHECK_INT(S.closed, 1);
    CHECK_INT(S.last_err, 0);
    CHECK_INT(c.closes, 1);
    CHECK(c.close_err == 0 || c.close_err == WSX_ECLOSED);
    wsx_loop_free(loop);
    cli_free(&c);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

/* ------------------------------------------------------------------------------------------
 * Backpressure: the client pauses (during the handshake, then now and then while reading);
 * bytes OpenSSL already holds must still arrive after resume
 * ------------------------------------------------------------------------------------------ */

enum { BP_LEN = 8 << 20, BP_STEP = 256 << 10 };

static struct {
    size_t sent, verified, bad;
    int reads, reads_while_paused, pauses;
    bool paused;
    cli c;
} B;

static void bp_fill(wsx__stream *s)
{
    static uint8_t piece[BP_STEP];
    while (B.sent < BP_LEN && wsx__stream_queued(s) < (2u << 20)) {
        for (size_t i = 0; i < BP_STEP; i++)
            piece[i] = pattern(B.sent + i);
        CHECK_INT(wsx__stream_write1(s, piece, BP_STEP), 0);
        B.sent += BP_STEP;
    }
    if (B.sent == BP_LEN) wsx__stream_shutdown_write(s);
}

static void bp_accept(sconn *c)
{
    /* on_drain after every write that progresses, not only after the socket was full. */
    wsx__stream_want_drain(&c->s, true);
    bp_fill(&c->s);
}

static void bp_srv_drain(wsx__stream *s)
{
    bp_fill(s);
}

static void srv_ignore(wsx__stream *s, const uint8_t *d, size_t n) {}

static const wsx__stream_vt bp_srv_vt = {srv_ignore, NULL, bp_srv_drain, srv_close};

static void bp_resume(wsx_timer *t, void *arg)
{
    B.paused = false;
    wsx__stream_resume(&B.c.s);
}

static void bp_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    if (B.paused) B.reads_while_paused++;
    for (size_t i = 0; i < n; i++)
        B.bad += d[i] != pattern(B.verified + i);
    B.verified += n;
    if (++B.reads % 7 == 0) {
        /* Pause with records possibly still inside OpenSSL; resume from a timer. */
        B.paused = true;
        B.pauses++;
        wsx__stream_pause(s);
        wsx_timer_start(S.loop, 1, 0, bp_resume, NULL, NULL);
    }
}

static const wsx__stream_vt bp_cli_vt = {bp_read, cli_eof, NULL, cli_close};

static void bp_connected(int fd, int err, void *arg)
{
    cli_connected(fd, err, arg);
    if (!B.c.init_ok) return;
    /* A small receive buffer, so that the server's socket fills while we are paused. */
    int small = 64 << 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    B.paused = true;
    wsx__stream_pause(&B.c.s);
    wsx_timer_start(S.loop, 200, 0, bp_resume, NULL, NULL);
}

TEST(backpressure_pause_resume)
{
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    wsx_loop *loop = new_loop();
    start_server(loop, sctx, &bp_srv_vt, 1);
    S.on_accept = bp_accept;
    memset(&B, 0, sizeof B);
    B.c = (cli){.ctx = cctx, .name = "localhost", .vt = &bp_cli_vt};
    CHECK_INT(
        wsx__connect(loop, "127.0.0.1", wsx__listener_port(S.l), 5000, bp_connected, &B.c, NULL),
        0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(B.sent, BP_LEN);
    CHECK_INT(B.verified, BP_LEN);
    CHECK_INT(B.bad, 0);
    CHECK_INT(B.reads_while_paused, 0);
    CHECK(B.pauses > 0);
    CHECK(B.c.eof);
    CHECK_INT(B.c.closes, 1);
    CHECK_INT(S.closed, 1);
    wsx_loop_free(loop);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(cctx);
}

int main(void)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("tls: skipped (the openssl command is needed to make test certificates)\n");
        return 0;
    }
    if (!make_certs()) {
        fprintf(stderr, "tls: cannot make test certificates in %s\n", dir);
        return 2;
    }
    RUN_T(echo_1mib);
    RUN_T(small_writes_batched_into_records);
    RUN_T(unknown_ca_rejected);
    RUN_T(hostname_mismatch_rejected);
    RUN_T(insecure_connects);
    RUN_T(client_contexts_shared);
    RUN_T(alpn_http11);
    RUN_T(sni_picks_certificate);
    RUN_T(plaintext_client_closed);
    RUN_T(handshake_deadline);
    RUN_T(reload_certificates);
    RUN_T(half_close_with_close_notify);
    RUN_T(backpressure_pause_resume);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("tls");
}
