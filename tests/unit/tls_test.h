/*
 * The certificates and contexts shared by the TLS unit tests (test_tls.c: streams;
 * test_tls_ctx.c: contexts): a throwaway CA and certificates made with the openssl command
 * in a temporary directory. Include after test.h and net_test.h.
 */
#ifndef WSX_TLS_TEST_H
#define WSX_TLS_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "net/net.h"

static char dir[64];

static inline const char *path(const char *file)
{
    static char bufs[8][160];
    static int next;
    char *b = bufs[next++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, file);
    return b;
}

static inline bool make_certs(void)
{
    snprintf(dir, sizeof dir, "/tmp/wsx-tls-XXXXXX");
    if (!mkdtemp(dir)) return false;
    char cmd[2048];
    snprintf(
        cmd, sizeof cmd,
        "set -e; cd '%s'\n"
        "gen() {\n"
        "  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout $1.key -out $1.csr -subj \"$2\" 2>/dev/null\n"
        "  printf 'subjectAltName=%%s\\nbasicConstraints=CA:FALSE\\n"
        "keyUsage=critical,digitalSignature\\nextendedKeyUsage=serverAuth\\n' \"$3\" > $1.ext\n"
        "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-out $1.pem -extfile $1.ext 2>/dev/null\n"
        "}\n"
        "openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout ca.key -out ca.pem -days 2 -subj /CN=wsx-test-ca "
        "-addext basicConstraints=critical,CA:TRUE "
        "-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null\n"
        "gen localhost /CN=localhost DNS:localhost,IP:127.0.0.1\n"
        "gen other /CN=other.test DNS:other.test\n"
        "gen second /CN=localhost/O=second DNS:localhost,IP:127.0.0.1\n"
        "cp localhost.pem live.pem; cp localhost.key live.key\n",
        dir);
    return system(cmd) == 0;
}

static inline bool fcntl_closed(int fd)
{
    return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

static inline wsx__tls_ctx *server_ctx(const char *cert, const char *key, uint32_t hs_ms)
{
    wsx__tls_cert c = {path(cert), path(key)};
    wsx__tls_server_opts o = {.certs = &c, .ncerts = 1, .handshake_timeout_ms = hs_ms};
    wsx__tls_ctx *ctx = NULL;
    char err[256] = "";
    int rc = wsx__tls_server_new(&o, &ctx, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "server ctx: %s\n", err);
        exit(2);
    }
    CHECK(wsx__tls_ctx_is_server(ctx));
    return ctx;
}

static inline wsx__tls_ctx *client_ctx(const char *cafile, bool insecure)
{
    wsx__tls_client_opts o = {.cafile = cafile ? path(cafile) : NULL, .insecure = insecure};
    wsx__tls_ctx *ctx = NULL;
    char err[256] = "";
    int rc = wsx__tls_client_new(&o, &ctx, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "client ctx: %s\n", err);
        exit(2);
    }
    CHECK(!wsx__tls_ctx_is_server(ctx));
    return ctx;
}

#endif
