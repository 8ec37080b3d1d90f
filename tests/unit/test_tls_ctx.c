/*
 * TLS contexts: loading certificates, keys, CA files and cipher lists fails with a sentence
 * naming the file and the reason; a stream refuses arguments against its context's rules.
 * The stream tests are in test_tls.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include "net/net.h"
#include "test.h"
#include "net_test.h"
#include "tls_test.h"
#include "wsx/loop.h"

static void never_read(wsx__stream *s, const uint8_t *d, size_t n)
{
    (void)s, (void)d, (void)n;
    CHECK(false);
}

static void never_close(wsx__stream *s, int err)
{
    (void)s, (void)err;
    CHECK(false);
}

static const wsx__stream_vt never_vt = {never_read, NULL, NULL, never_close};

TEST(context_errors)
{
    char err[256];
    wsx__tls_ctx *ctx = NULL;
    wsx__tls_cert missing = {"/nonexistent/cert.pem", path("localhost.key")};
    wsx__tls_server_opts o = {.certs = &missing, .ncerts = 1};
    CHECK_INT(wsx__tls_server_new(&o, &ctx, err, sizeof err), WSX_ETLS);
    CHECK_STR(err, "cannot load certificate chain from /nonexistent/cert.pem: "
                   "No such file or directory");
    CHECK(ctx == NULL);

    wsx__tls_cert nokey = {path("localhost.pem"), "/nonexistent/key.pem"};
    o.certs = &nokey;
    CHECK_INT(wsx__tls_server_new(&o, &ctx, err, sizeof err), WSX_ETLS);
    CHECK(strstr(err, "cannot load private key from /nonexistent/key.pem: ") == err);

    wsx__tls_cert mismatch = {path("localhost.pem"), path("other.key")};
    o.certs = &mismatch;
    CHECK_INT(wsx__tls_server_new(&o, &ctx, err, sizeof err), WSX_ETLS);
    CHECK(strstr(err, "does not match certificate") != NULL);

    wsx__tls_cert good = {path("localhost.pem"), path("localhost.key")};
    o.certs = &good;
    o.ciphers = "NO-SUCH-CIPHER";
    CHECK_INT(wsx__tls_server_new(&o, &ctx, err, sizeof err), WSX_ETLS);
    CHECK(strstr(err, "invalid TLS 1.2 cipher list 'NO-SUCH-CIPHER': ") == err);
    o.ciphers = NULL;
    o.ncerts = 0;
    CHECK_INT(wsx__tls_server_new(&o, &ctx, err, sizeof err), WSX_EINVAL);
    CHECK(ctx == NULL);

    wsx__tls_client_opts co = {.cafile = "/nonexistent/ca.pem"};
    CHECK_INT(wsx__tls_client_new(&co, &ctx, err, sizeof err), WSX_ETLS);
    CHECK(strstr(err, "cannot load CA file /nonexistent/ca.pem: ") == err);
    CHECK(ctx == NULL);

    /* Stream arguments: a verifying client needs a name, a server takes none. On failure the
     * fd is closed and no callback fires. */
    wsx_loop *loop = new_loop();
    wsx__tls_ctx *cctx = client_ctx("ca.pem", false);
    wsx__tls_ctx *sctx = server_ctx("localhost.pem", "localhost.key", 0);
    wsx__stream s;
    int sv[2];
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    CHECK_INT(wsx__stream_init_tls(loop, &s, sv[0], &never_vt, cctx, NULL), WSX_EINVAL);
    CHECK(fcntl_closed(sv[0]));
    CHECK_INT(wsx__stream_init_tls(loop, &s, sv[1], &never_vt, sctx, "localhost"), WSX_EINVAL);
    CHECK(fcntl_closed(sv[1]));
    CHECK_INT(wsx_loop_run(loop), 0);
    wsx_loop_free(loop);
    wsx__tls_ctx_free(cctx);
    wsx__tls_ctx_free(sctx);
    wsx__tls_ctx_free(NULL);

    /* Plain streams know nothing of TLS and stay 64 bytes. */
    CHECK(sizeof(wsx__stream) <= 64);
}

int main(void)
{
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("tls_ctx: skipped (the openssl command is needed to make test certificates)\n");
        return 0;
    }
    if (!make_certs()) {
        fprintf(stderr, "tls_ctx: cannot make test certificates in %s\n", dir);
        return 2;
    }
    RUN_T(context_errors);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("tls_ctx");
}
