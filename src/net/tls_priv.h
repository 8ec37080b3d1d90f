/*
 * Private to src/net/tls.c and src/net/tls_ctx.c: a TLS context's generations of
 * certificates, shared by the contexts (tls_ctx.c: loading, SNI, reload, shared client
 * contexts) and the streams that use them (tls.c).
 */
#ifndef WSX_NET_TLS_PRIV_H
#define WSX_NET_TLS_PRIV_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "net.h"

/* One generation of OpenSSL contexts, the unit a reload replaces. A stream holds a
 * reference from its start to its on_close (the SNI callback reads it during the
 * handshake); each SSL also holds its own reference to the SSL_CTX it uses. */
typedef struct wsx__tls_certset {
    atomic_uint refs;
    size_t n;
    SSL_CTX *ctx[]; /* server: one per certificate, [0] the default; client: one */
} wsx__tls_certset;

struct wsx__tls_ctx {
    pthread_mutex_t mu; /* guards cur: reload may run on another thread than the streams */
    wsx__tls_certset *cur;
    bool server;
    bool insecure;
    uint32_t hs_ms;
    char *ciphers, *suites, *cafile;
    size_t ncerts;
    char **cert_files, **key_files;
    /* Client contexts are shared (see wsx__tls_client_new): users, and the list link. */
    unsigned refs;
    wsx__tls_ctx *next_shared;
};

/* tls_ctx.c: the current generation of ctx, with a reference for the caller (a stream, from
 * its start to its on_close); drops a reference. Safe from any thread. */
wsx__tls_certset *wsx__tls_acquire(wsx__tls_ctx *ctx);
void wsx__tls_certset_release(wsx__tls_certset *cs);

/* tls_ctx.c: the first (root-cause) error on OpenSSL's thread-local queue as text, in buf;
 * clears the queue. */
const char *wsx__tls_reason(char *buf, size_t cap);

/* tls.c: the servername callback of server contexts: switches the connection to the first
 * certificate of its stream's generation that matches the requested name. */
int wsx__tls_sni_select(SSL *ssl, int *alert, void *arg);

#endif
