/*
 * TLS contexts with OpenSSL 3: server contexts (a certificate chain per SNI name, ALPN), the
 * client contexts shared by every client with the same settings, and reload: each one a
 * generation of SSL_CTXs swapped under a lock. See docs/design.md, "Contexts, SNI, reload".
 */
#define WSX__NET_INTERNAL
#include "tls_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Mozilla's "intermediate" choice: forward secrecy and AEAD only. No DHE, which would need
 * DH parameters and is slow; no CBC, which has a long history of padding oracles. */
#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

static const unsigned char ALPN_HTTP11[] = "\x08http/1.1";

/* ---------------------------------------------------------------------------------------
 * Contexts
 * --------------------------------------------------------------------------------------- */

static void set_msg(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* The first (root-cause) error on OpenSSL's thread-local queue, as text; clears the queue. */
const char *wsx__tls_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_error();
    if (e == 0) {
        snprintf(buf, cap, "unknown error");
    } else if (ERR_SYSTEM_ERROR(e)) {
        snprintf(buf, cap, "%s", strerror((int)ERR_GET_REASON(e)));
    } else {
        const char *r = ERR_reason_error_string(e);
        if (r)
            snprintf(buf, cap, "%s", r);
        else
            ERR_error_string_n(e, buf, cap);
    }
    ERR_clear_error();
    return buf;
}

void wsx__tls_certset_release(wsx__tls_certset *cs)
{
    if (!cs || atomic_fetch_sub(&cs->refs, 1) != 1) return;
    for (size_t i = 0; i < cs->n; i++)
        SSL_CTX_free(cs->ctx[i]);
    free(cs);
}

wsx__tls_certset *wsx__tls_acquire(wsx__tls_ctx *ctx)
{
    pthread_mutex_lock(&ctx->mu);
    wsx__tls_certset *cs = ctx->cur;
    atomic_fetch_add(&cs->refs, 1);
    pthread_mutex_unlock(&ctx->mu);
    return cs;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    /* WebSocket (RFC 6455) upgrades over HTTP/1.1; a client offering only h2 gets no ALPN
     * rather than a failed handshake, and may then speak HTTP/1.1 anyway. */
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen) break;
        if (l == 8 && memcmp(in + i + 1, ALPN_HTTP11 + 1, 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Settings common to every context; the rest is per role. */
static int ctx_base(const wsx__tls_ctx *w, SSL_CTX **out, char *err, size_t errcap)
{
    char why[160];
    SSL_CTX *c = SSL_CTX_new(w->server ? TLS_server_method() : TLS_client_method());
    if (!c) {
        set_msg(err, errcap, "cannot create TLS context: %s", wsx__tls_reason(why, sizeof why));
        return WSX_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    /* Renegotiation is a DoS lever and an old attack surface (TLS 1.3 has none). An EOF
     * without close_notify is common (browsers) and WebSocket has its own close frame, so it
     * counts as an orderly EOF rather than an error. */
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Whole records only (no partial writes); a retried SSL_write may come from a buffer at
     * another address; idle connections give their buffers back (34 KiB each). */
    SSL_CTX_clear_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    /* Read whole socket buffers rather than a record header then its body: half the read()
     * calls. Bytes read ahead are invisible to epoll; SSL_has_pending() covers them. */
    SSL_CTX_set_read_ahead(c, 1);
    const char *ciphers = w->ciphers ? w->ciphers : DEFAULT_CIPHERS;
    if (!SSL_CTX_set_cipher_list(c, ciphers)) {
        set_msg(err, errcap, "invalid TLS 1.2 cipher list '%s': %s", ciphers,
                wsx__tls_reason(why, sizeof why));
        SSL_CTX_free(c);
        return WSX_ETLS;
    }
    const char *suites = w->suites ? w->suites : DEFAULT_SUITES;
    if (!SSL_CTX_set_ciphersuites(c, suites)) {
        set_msg(err, errcap, "invalid TLS 1.3 cipher suites '%s': %s", suites,
                wsx__tls_reason(why, sizeof why));
        SSL_CTX_free(c);
        return WSX_ETLS;
    }
    *out = c;
    return 0;
}

static int server_ctx(const wsx__tls_ctx *w, size_t i, SSL_CTX **out, char *err, size_t errcap)
{
    char why[160];
    SSL_CTX *c;
    int rc = ctx_base(w, &c, err, errcap);
    if (rc < 0) return rc;
    const char *cert = w->cert_files[i], *key = w->key_files[i];
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
        set_msg(err, errcap, "cannot load certificate chain from %s: %s", cert,
                wsx__tls_reason(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
        /* OpenSSL checks the pair while loading the key; say which files disagree. */
        unsigned long e = ERR_peek_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                               ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH))
            set_msg(err, errcap, "private key %s does not match certificate %s: %s", key, cert,
                    wsx__tls_reason(why, sizeof why));
        else
            set_msg(err, errcap, "cannot load private key from %s: %s", key,
                    wsx__tls_reason(why, sizeof why));
        goto fail;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        set_msg(err, errcap, "private key %s does not match certificate %s: %s", key, cert,
                wsx__tls_reason(why, sizeof why));
        goto fail;
    }
    SSL_CTX_set_alpn_select_cb(c, alpn_select, NULL);
    if (i == 0) SSL_CTX_set_tlsext_servername_callback(c, wsx__tls_sni_select);
    *out = c;
    return 0;
fail:
    SSL_CTX_free(c);
    return WSX_ETLS;
}

static int client_ctx(const wsx__tls_ctx *w, SSL_CTX **out, char *err, size_t errcap)
{
    char why[160];
    SSL_CTX *c;
    int rc = ctx_base(w, &c, err, errcap);
    if (rc < 0) return rc;
    if (w->cafile) {
        if (SSL_CTX_load_verify_locations(c, w->cafile, NULL) != 1) {
            set_msg(err, errcap, "cannot load CA file %s: %s", w->cafile,
                    wsx__tls_reason(why, sizeof why));
            SSL_CTX_free(c);
            return WSX_ETLS;
        }
    } else if (!w->insecure && SSL_CTX_set_default_verify_paths(c) != 1) {
        set_msg(err, errcap, "cannot load the system CA store: %s",
                wsx__tls_reason(why, sizeof why));
        SSL_CTX_free(c);
        return WSX_ETLS;
    }
    SSL_CTX_set_verify(c, w->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    /* SSL_CTX_set_alpn_protos() returns 0 on success. */
    if (SSL_CTX_set_alpn_protos(c, ALPN_HTTP11, sizeof ALPN_HTTP11 - 1) != 0) {
        set_msg(err, errcap, "cannot set ALPN: %s", wsx__tls_reason(why, sizeof why));
        SSL_CTX_free(c);
        return WSX_ENOMEM;
    }
    *out = c;
    return 0;
}

/* Builds a new generation from the files named in w. */
static int certset_build(const wsx__tls_ctx *w, wsx__tls_certset **out, char *err, size_t errcap)
{
    size_t n = w->server ? w->ncerts : 1;
    wsx__tls_certset *cs = calloc(1, sizeof *cs + n * sizeof cs->ctx[0]);
    if (!cs) {
        set_msg(err, errcap, "out of memory");
        return WSX_ENOMEM;
    }
    atomic_init(&cs->refs, 1);
    ERR_clear_error();
    for (size_t i = 0; i < n; i++) {
        int rc = w->server ? server_ctx(w, i, &cs->ctx[i], err, errcap)
                           : client_ctx(w, &cs->ctx[i], err, errcap);
        if (rc < 0) {
            wsx__tls_certset_release(cs);
            return rc;
        }
        cs->n = i + 1;
    }
    *out = cs;
    return 0;
}

static char *dup_opt(const char *s, bool *oom)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = true;
    return d;
}

static void ctx_destroy(wsx__tls_ctx *w)
{
    wsx__tls_certset_release(w->cur);
    for (size_t i = 0; i < w->ncerts; i++) {
        if (w->cert_files) free(w->cert_files[i]);
        if (w->key_files) free(w->key_files[i]);
    }
    free(w->cert_files);
    free(w->key_files);
    free(w->ciphers);
    free(w->suites);
    free(w->cafile);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static int ctx_finish(wsx__tls_ctx *w, bool oom, wsx__tls_ctx **out, char *err, size_t errcap)
{
    if (oom) {
        set_msg(err, errcap, "out of memory");
        ctx_destroy(w);
        return WSX_ENOMEM;
    }
    int rc = certset_build(w, &w->cur, err, errcap);
    if (rc < 0) {
        ctx_destroy(w);
        return rc;
    }
    *out = w;
    return 0;
}

static wsx__tls_ctx *ctx_alloc(bool server, uint32_t hs_ms)
{
    wsx__tls_ctx *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w);
        return NULL;
    }
    w->server = server;
    w->hs_ms = hs_ms ? hs_ms : WSX__TLS_HANDSHAKE_MS;
    return w;
}

int wsx__tls_server_new(const wsx__tls_server_opts *o, wsx__tls_ctx **out, char *err, size_t errcap)
{
    if (!o || !out || !o->certs || o->ncerts == 0) {
        set_msg(err, errcap, "no certificate given");
        return WSX_EINVAL;
    }
    for (size_t i = 0; i < o->ncerts; i++) {
        if (!o->certs[i].cert_file || !o->certs[i].key_file) {
            set_msg(err, errcap, "certificate %zu lacks a certificate or key file", i);
            return WSX_EINVAL;
        }
    }
    wsx__tls_ctx *w = ctx_alloc(true, o->handshake_timeout_ms);
    if (!w) {
        set_msg(err, errcap, "out of memory");
        return WSX_ENOMEM;
    }
    bool oom = false;
    w->ciphers = dup_opt(o->ciphers, &oom);
    w->suites = dup_opt(o->ciphersuites, &oom);
    w->cert_files = calloc(o->ncerts, sizeof *w->cert_files);
    w->key_files = calloc(o->ncerts, sizeof *w->key_files);
    if (!w->cert_files || !w->key_files) {
        oom = true;
    } else {
        w->ncerts = o->ncerts;
        for (size_t i = 0; i < o->ncerts; i++) {
            w->cert_files[i] = dup_opt(o->certs[i].cert_file, &oom);
            w->key_files[i] = dup_opt(o->certs[i].key_file, &oom);
        }
    }
    return ctx_finish(w, oom, out, err, errcap);
}

/*
 * Client contexts in use, shared by every client with the same settings. Creating an
 * SSL_CTX in OpenSSL 3 (algorithm fetches, and the system CA store when verifying) costs
 * more CPU than the handshake it serves, and one context serves any number of connections
 * from any thread; a program that opens many clients (`wsx bench`, a gateway) would
 * otherwise pay it for each. A context lives while a client holds it, so a CA file is read
 * again once every client that used it is gone.
 */
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static wsx__tls_ctx *shared_clients;

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static wsx__tls_ctx *shared_find(const wsx__tls_client_opts *o, uint32_t hs_ms)
{
    for (wsx__tls_ctx *w = shared_clients; w; w = w->next_shared)
        if (w->insecure == o->insecure && w->hs_ms == hs_ms && same_str(w->cafile, o->cafile) &&
            same_str(w->ciphers, o->ciphers) && same_str(w->suites, o->ciphersuites))
            return w;
    return NULL;
}

int wsx__tls_client_new(const wsx__tls_client_opts *o, wsx__tls_ctx **out, char *err, size_t errcap)
{
    if (!o || !out) {
        set_msg(err, errcap, "invalid argument");
        return WSX_EINVAL;
    }
    uint32_t hs_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : WSX__TLS_HANDSHAKE_MS;
    pthread_mutex_lock(&shared_mu);
    wsx__tls_ctx *w = shared_find(o, hs_ms);
    if (w) w->refs++;
    pthread_mutex_unlock(&shared_mu);
    if (w) {
        *out = w;
        return 0;
    }
    /* Built outside the lock: two threads may build the same one, and both are listed. */
    w = ctx_alloc(false, hs_ms);
    if (!w) {
        set_msg(err, errcap, "out of memory");
        return WSX_ENOMEM;
    }
    bool oom = false;
    w->insecure = o->insecure;
    w->ciphers = dup_opt(o->ciphers, &oom);
    w->suites = dup_opt(o->ciphersuites, &oom);
    w->cafile = dup_opt(o->cafile, &oom);
    int rc = ctx_finish(w, oom, out, err, errcap);
    if (rc < 0) return rc;
    w->refs = 1;
    pthread_mutex_lock(&shared_mu);
    w->next_shared = shared_clients;
    shared_clients = w;
    pthread_mutex_unlock(&shared_mu);
    return 0;
}

int wsx__tls_ctx_reload(wsx__tls_ctx *ctx, char *err, size_t errcap)
{
    if (!ctx) return WSX_EINVAL;
    wsx__tls_certset *fresh;
    int rc = certset_build(ctx, &fresh, err, errcap);
    if (rc < 0) return rc;
    pthread_mutex_lock(&ctx->mu);
    wsx__tls_certset *old = ctx->cur;
    ctx->cur = fresh;
    pthread_mutex_unlock(&ctx->mu);
    /* Streams still using the old generation hold their own references. */
    wsx__tls_certset_release(old);
    return 0;
}

void wsx__tls_ctx_free(wsx__tls_ctx *ctx)
{
    if (!ctx) return;
    if (!ctx->server) {
        pthread_mutex_lock(&shared_mu);
        bool last = --ctx->refs == 0;
        if (last) {
            wsx__tls_ctx **pp = &shared_clients;
            while (*pp != ctx)
                pp = &(*pp)->next_shared;
            *pp = ctx->next_shared;
        }
        pthread_mutex_unlock(&shared_mu);
        if (!last) return;
    }
    ctx_destroy(ctx);
}

bool wsx__tls_ctx_is_server(const wsx__tls_ctx *ctx)
{
    return ctx->server;
}
