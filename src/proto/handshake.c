/*
 * The WebSocket opening handshake (RFC 6455 4): checking an upgrade request and answering
 * it on the server; writing the request and verifying the answer on the client. Extension
 * offers are parsed here too (RFC 6455 9.1).
 */
#include <string.h>

#include <openssl/evp.h>

#include "http_priv.h"
#include "wsx/proto.h"

/* RFC 6455 1.3: the GUID appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- extension offers ----------------------------------------------------------------- */

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *skip_token(const char *p, const char *end)
{
    while (p < end && wsx__http_is_tchar((unsigned char)*p))
        p++;
    return p;
}

/*
 * One extension-param value after "=". RFC 6455 9.1: a quoted value must be a token once
 * unquoted. Values are borrowed, so a quoted-pair (a backslash escape, which would need
 * unescaping into new memory) is refused; a backslash can only ever escape a tchar here,
 * so no sender has a reason to use one.
 */
static int parse_param_value(const char **pp, const char *end, wsx_ext_param *prm)
{
    const char *p = *pp, *s;
    if (p == end) return WSX_EHTTP;
    if (*p == '"') {
        s = ++p;
        p = skip_token(p, end);
        if (p == end || *p != '"' || p == s) return WSX_EHTTP;
        prm->value = s;
        prm->value_len = (size_t)(p - s);
        p++;
    } else {
        s = p;
        p = skip_token(p, end);
        if (p == s) return WSX_EHTTP;
        prm->value = s;
        prm->value_len = (size_t)(p - s);
    }
    *pp = p;
    return 0;
}

int wsx_ext_parse(const char *value, size_t len, wsx_ext_offer *out, size_t max, size_t *n)
{
    if (!value) return len ? WSX_EINVAL : 0;
    const char *p = value, *end = value + len;
    size_t k = *n;
    for (;;) {
        /* RFC 9110 5.6.1: empty list elements are ignored. */
        p = skip_ows(p, end);
        if (p == end) break;
        if (*p == ',') {
            p++;
            continue;
        }
        const char *s = p;
        p = skip_token(p, end);
        if (p == s) return WSX_EHTTP;
        if (k >= max) return WSX_ELIMIT;
        wsx_ext_offer *o = &out[k];
        o->name = s;
        o->name_len = (size_t)(p - s);
        o->n_params = 0;
        for (;;) {
            p = skip_ows(p, end);
            if (p == end || *p == ',') break;
            if (*p != ';') return WSX_EHTTP;
            p = skip_ows(p + 1, end);
            s = p;
            p = skip_token(p, end);
            if (p == s) return WSX_EHTTP;
            if (o->n_params == WSX_MAX_EXT_PARAMS) return WSX_ELIMIT;
            wsx_ext_param *prm = &o->params[o->n_params++];
            prm->name = s;
            prm->name_len = (size_t)(p - s);
            prm->value = NULL;
            prm->value_len = 0;
            /* RFC 6455 9.1 builds on RFC 2616's implied linear whitespace between tokens,
             * so whitespace around "=" is accepted. */
            p = skip_ows(p, end);
            if (p < end && *p == '=') {
                p = skip_ows(p + 1, end);
                int rc = parse_param_value(&p, end, prm);
                if (rc) return rc;
            }
        }
        k++;
    }
    *n = k;
    return 0;
}

/* ---- keys ----------------------------------------------------------------------------- */

int wsx_accept_key(const char *key, size_t key_len, char out[WSX_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return WSX_ECRYPTO;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, key, key_len) &&
             EVP_DigestUpdate(ctx, ws_guid, sizeof ws_guid - 1) &&
             EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    if (!ok || md_len != 20) return WSX_ECRYPTO;
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != WSX_ACCEPT_LEN) return WSX_ECRYPTO;
    return 0;
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/*
 * RFC 6455 4.2.1 (5): the key must decode to 16 bytes, which in base64 (RFC 4648 4) is
 * exactly 22 alphabet characters and "==". Non-zero pad bits are tolerated, as RFC 4648 3.5
 * allows, because they still decode to 16 bytes.
 */
static bool key_valid(const char *k, size_t len)
{
    if (len != WSX_KEY_LEN || k[22] != '=' || k[23] != '=') return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(k[i])) return false;
    return true;
}

/* ---- server --------------------------------------------------------------------------- */

static size_t count_fields(const wsx_http_header *h, size_t n, const char *name,
                           const wsx_http_header **first)
{
    size_t name_len = strlen(name), count = 0;
    *first = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!wsx__ascii_ieq(h[i].name, h[i].name_len, name, name_len)) continue;
        if (!count++) *first = &h[i];
    }
    return count;
}

/* True when any Sec-WebSocket-Protocol field lists `proto`. RFC 6455 4.1 (10): subprotocol
 * names are compared exactly, not ignoring case. */
static bool client_listed(const wsx_http_header *h, size_t n, const char *proto)
{
    size_t proto_len = strlen(proto);
    for (size_t i = 0; i < n; i++) {
        if (!wsx__ascii_ieq(h[i].name, h[i].name_len, "Sec-WebSocket-Protocol", 22)) continue;
        const char *pos = h[i].value, *end = h[i].value + h[i].value_len, *elem;
        size_t elem_len;
        while (wsx_http_list_next(&pos, end, &elem, &elem_len))
            if (elem_len == proto_len && memcmp(elem, proto, proto_len) == 0) return true;
    }
    return false;
}

static int refuse(wsx_handshake_server *hs, int status, const char *why)
{
    hs->status = status;
    hs->error = why;
    return WSX_EHANDSHAKE;
}

int wsx_handshake_server_check(const wsx_http_request *req, const wsx_handshake_server_opts *opts,
                               wsx_handshake_server *hs)
{
    const wsx_http_header *h = req->headers, *f;
    size_t n = req->n_headers;

    hs->status = 0;
    hs->error = NULL;
    hs->accept[0] = '\0';
    hs->subprotocol = -1;
    hs->n_offers = 0;

    /* RFC 6455 4.2.1 (1): an HTTP/1.1 or higher GET request. */
    /* RFC 9110 9.1: method names are case-sensitive. */
    if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
        return refuse(hs, 400, "method must be GET");
    if (req->version_major < 1 || (req->version_major == 1 && req->version_minor < 1))
        return refuse(hs, 400, "HTTP/1.1 or later required");
    /* RFC 6455 4.2.1 (2); RFC 9112 3.2: no Host, or more than one, is a 400. */
    size_t hosts = count_fields(h, n, "Host", &f);
    if (hosts == 0) return refuse(hs, 400, "missing Host");
    if (hosts > 1) return refuse(hs, 400, "duplicate Host");
    /* RFC 6455 4.2.1 (3), (4): token lists, compared ignoring case. */
    if (!wsx_http_headers_have_token(h, n, "Upgrade", "websocket"))
        return refuse(hs, 400, "Upgrade must include websocket");
    if (!wsx_http_headers_have_token(h, n, "Connection", "upgrade"))
        return refuse(hs, 400, "Connection must include Upgrade");
    /* RFC 6455 4.2.2 (4), 4.4: an unknown version is answered with 426 and the versions
     * we speak; a request without one is simply malformed. */
    size_t versions = count_fields(h, n, "Sec-WebSocket-Version", &f);
    if (versions == 0) return refuse(hs, 400, "missing Sec-WebSocket-Version");
    if (versions > 1) return refuse(hs, 400, "duplicate Sec-WebSocket-Version");
    if (f->value_len != 2 || memcmp(f->value, "13", 2) != 0)
        return refuse(hs, 426, "unsupported WebSocket version");
    /* RFC 6455 4.2.1 (5); 11.3.1: the key appears exactly once. */
    const wsx_http_header *key;
    size_t keys = count_fields(h, n, "Sec-WebSocket-Key", &key);
    if (keys == 0) return refuse(hs, 400, "missing Sec-WebSocket-Key");
    if (keys > 1 || !key_valid(key->value, key->value_len))
        return refuse(hs, 400, "invalid Sec-WebSocket-Key");

    /* RFC 6455 9.1: several fields are one list. */
    for (size_t i = 0; i < n; i++) {
        if (!wsx__ascii_ieq(h[i].name, h[i].name_len, "Sec-WebSocket-Extensions", 24)) continue;
        int rc = wsx_ext_parse(h[i].value, h[i].value_len, hs->offers, WSX_MAX_EXT_OFFERS,
                               &hs->n_offers);
        if (rc == WSX_ELIMIT) return refuse(hs, 400, "too many extension offers");
        if (rc) return refuse(hs, 400, "malformed Sec-WebSocket-Extensions");
    }

    /* RFC 6455 4.2.2 (5.4): the server picks one of the client's subprotocols; here by the
     * server's own order of preference. */
    if (opts && opts->subprotocols) {
        for (size_t i = 0; i < opts->n_subprotocols; i++) {
            if (opts->subprotocols[i] && client_listed(h, n, opts->subprotocols[i])) {
                hs->subprotocol = (int)i;
                break;
            }
        }
    }

    int rc = wsx_accept_key(key->value, key->value_len, hs->accept);
    if (rc) return rc;
    hs->status = 101;
    return 0;
}

ptrdiff_t wsx_handshake_server_response(const wsx_handshake_server *hs,
                                        const wsx_handshake_server_opts *opts,
                                        const char *extensions, const wsx_http_header *extra,
                                        size_t n_extra, char *out, size_t cap)
{
    if (hs->status != 101) return WSX_EINVAL;
    const char *proto = NULL;
    if (hs->subprotocol >= 0) {
        if (!opts || (size_t)hs->subprotocol >= opts->n_subprotocols || !opts->subprotocols)
            return WSX_EINVAL;
        proto = opts->subprotocols[hs->subprotocol];
        if (!proto || !wsx__http_is_token(proto, strlen(proto))) return WSX_EINVAL;
    }
    if (extensions && !wsx__http_field_safe(extensions, strlen(extensions))) return WSX_EINVAL;
    if (!wsx__http_extras_valid(extra, n_extra)) return WSX_EINVAL;

    wsx__out o;
    wsx__out_init(&o, out, cap);
    wsx__out_head(&o, 101, NULL, 0);
    wsx__out_str(&o, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
    wsx__out_field(&o, "Sec-WebSocket-Accept", 20, hs->accept, strlen(hs->accept));
    if (proto) wsx__out_field(&o, "Sec-WebSocket-Protocol", 22, proto, strlen(proto));
    if (extensions && *extensions)
        wsx__out_field(&o, "Sec-WebSocket-Extensions", 24, extensions, strlen(extensions));
    wsx__out_extras(&o, extra, n_extra);
    wsx__out_str(&o, "\r\n");
    return wsx__out_end(&o);
}

/* ---- client --------------------------------------------------------------------------- */

/* RFC 9112 3.2: the request-target has no whitespace or control characters. */
static bool target_valid(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) return false;
    return true;
}

ptrdiff_t wsx_handshake_client_request(const wsx_handshake_client_opts *opts,
                                       wsx_handshake_client *hs, char *out, size_t cap)
{
    const char *path = opts->path ? opts->path : "/";
    if (!opts->host || !*opts->host || !wsx__http_field_safe(opts->host, strlen(opts->host)))
        return WSX_EINVAL;
    if (!target_valid(path)) return WSX_EINVAL;
    if (opts->origin && !wsx__http_field_safe(opts->origin, strlen(opts->origin)))
        return WSX_EINVAL;
    if (opts->n_subprotocols && !opts->subprotocols) return WSX_EINVAL;
    /* RFC 6455 4.1 (10): each subprotocol is a token, so the comma-joined list splits back
     * into exactly what was offered. */
    for (size_t i = 0; i < opts->n_subprotocols; i++) {
        const char *sp = opts->subprotocols[i];
        if (!sp || !wsx__http_is_token(sp, strlen(sp))) return WSX_EINVAL;
    }
    if (opts->extensions) {
        /* The offer is parsed again to verify the answer, so it must parse now. */
        wsx_ext_offer offers[WSX_MAX_EXT_OFFERS];
        size_t n_offers = 0;
        size_t ext_len = strlen(opts->extensions);
        if (!wsx__http_field_safe(opts->extensions, ext_len) ||
            wsx_ext_parse(opts->extensions, ext_len, offers, WSX_MAX_EXT_OFFERS, &n_offers))
            return WSX_EINVAL;
    }
    if (!wsx__http_extras_valid(opts->headers, opts->n_headers)) return WSX_EINVAL;

    /* RFC 6455 4.1 (7): the nonce is 16 random bytes, base64-encoded. */
    uint8_t nonce[16];
    if (wsx_random_bytes(nonce, sizeof nonce)) return WSX_ECRYPTO;
    if (EVP_EncodeBlock((unsigned char *)hs->key, nonce, sizeof nonce) != WSX_KEY_LEN)
        return WSX_ECRYPTO;
    int rc = wsx_accept_key(hs->key, WSX_KEY_LEN, hs->accept);
    if (rc) return rc;
    hs->status = 0;
    hs->error = NULL;
    hs->subprotocol = -1;
    hs->extensions = NULL;
    hs->extensions_len = 0;

    wsx__out o;
    wsx__out_init(&o, out, cap);
    wsx__out_str(&o, "GET ");
    wsx__out_str(&o, path);
    wsx__out_str(&o, " HTTP/1.1\r\nHost: ");
    wsx__out_str(&o, opts->host);
    wsx__out_str(&o, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    wsx__out_mem(&o, hs->key, WSX_KEY_LEN);
    wsx__out_str(&o, "\r\nSec-WebSocket-Version: 13\r\n");
    if (opts->origin) wsx__out_field(&o, "Origin", 6, opts->origin, strlen(opts->origin));
    if (opts->n_subprotocols) {
        wsx__out_str(&o, "Sec-WebSocket-Protocol: ");
        for (size_t i = 0; i < opts->n_subprotocols; i++) {
            if (i) wsx__out_str(&o, ", ");
            wsx__out_str(&o, opts->subprotocols[i]);
        }
        wsx__out_str(&o, "\r\n");
    }
    if (opts->extensions && *opts->extensions)
        wsx__out_field(&o, "Sec-WebSocket-Extensions", 24, opts->extensions,
                       strlen(opts->extensions));
    wsx__out_extras(&o, opts->headers, opts->n_headers);
    wsx__out_str(&o, "\r\n");
    return wsx__out_end(&o);
}

static int fail(wsx_handshake_client *hs, const char *why)
{
    hs->error = why;
    return WSX_EHANDSHAKE;
}

/* True when `name` is among the extensions offered in opts->extensions. */
static bool ext_offered(const wsx_handshake_client_opts *opts, const char *name, size_t len)
{
    if (!opts->extensions) return false;
    wsx_ext_offer offers[WSX_MAX_EXT_OFFERS];
    size_t n_offers = 0;
    if (wsx_ext_parse(opts->extensions, strlen(opts->extensions), offers, WSX_MAX_EXT_OFFERS,
                      &n_offers))
        return false;
    for (size_t i = 0; i < n_offers; i++)
        if (wsx__ascii_ieq(offers[i].name, offers[i].name_len, name, len)) return true;
    return false;
}

int wsx_handshake_client_verify(wsx_handshake_client *hs, const wsx_handshake_client_opts *opts,
                                const wsx_http_response *resp)
{
    const wsx_http_header *h = resp->headers, *f;
    size_t n = resp->n_headers;

    hs->status = resp->status;
    hs->error = NULL;
    hs->subprotocol = -1;
    hs->extensions = NULL;
    hs->extensions_len = 0;

    /* RFC 6455 4.1: anything but 101 means the handshake did not complete. */
    if (resp->status != 101) return fail(hs, "server did not answer 101");
    if (!wsx_http_headers_have_token(h, n, "Upgrade", "websocket"))
        return fail(hs, "response lacks Upgrade: websocket");
    if (!wsx_http_headers_have_token(h, n, "Connection", "upgrade"))
        return fail(hs, "response lacks Connection: Upgrade");
    /* RFC 6455 11.3.3: exactly one Sec-WebSocket-Accept, equal to the expected value. */
    size_t count = count_fields(h, n, "Sec-WebSocket-Accept", &f);
    if (count != 1 || f->value_len != WSX_ACCEPT_LEN ||
        memcmp(f->value, hs->accept, WSX_ACCEPT_LEN) != 0)
        return fail(hs, "wrong Sec-WebSocket-Accept");

    /* RFC 6455 4.1, 11.3.4: at most one field naming one subprotocol we offered. */
    count = count_fields(h, n, "Sec-WebSocket-Protocol", &f);
    if (count > 1) return fail(hs, "duplicate Sec-WebSocket-Protocol");
    if (count == 1) {
        const char *pos = f->value, *end = f->value + f->value_len, *elem;
        size_t elem_len;
        if (wsx_http_list_next(&pos, end, &elem, &elem_len)) {
            const char *more;
            size_t more_len;
            if (wsx_http_list_next(&pos, end, &more, &more_len))
                return fail(hs, "server chose more than one subprotocol");
            for (size_t i = 0; i < opts->n_subprotocols; i++) {
                const char *sp = opts->subprotocols[i];
                if (strlen(sp) == elem_len && memcmp(sp, elem, elem_len) == 0) {
                    hs->subprotocol = (int)i;
                    break;
                }
            }
            if (hs->subprotocol < 0) return fail(hs, "server chose a subprotocol not offered");
        }
    }

    /* RFC 6455 4.1, 9.1, 11.3.2: one field at most, naming only extensions offered. */
    count = count_fields(h, n, "Sec-WebSocket-Extensions", &f);
    if (count > 1) return fail(hs, "duplicate Sec-WebSocket-Extensions");
    if (count == 1) {
        wsx_ext_offer chosen[WSX_MAX_EXT_OFFERS];
        size_t n_chosen = 0;
        if (wsx_ext_parse(f->value, f->value_len, chosen, WSX_MAX_EXT_OFFERS, &n_chosen))
            return fail(hs, "malformed Sec-WebSocket-Extensions");
        for (size_t i = 0; i < n_chosen; i++)
            if (!ext_offered(opts, chosen[i].name, chosen[i].name_len))
                return fail(hs, "server chose an extension not offered");
        if (n_chosen) {
            hs->extensions = f->value;
            hs->extensions_len = f->value_len;
        }
    }
    return 0;
}
