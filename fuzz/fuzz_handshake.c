/*
 * libFuzzer target for the opening handshake (src/proto/handshake.c): the input is parsed
 * as an upgrade request, checked and answered (101 or an error response); verified as a
 * server's answer to a client whose key is the RFC 6455 1.3 example; and parsed as a raw
 * Sec-WebSocket-Extensions value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wsx/proto.h"

#define MAX_HEADERS 32
#define MAX_HEAD    4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const server_protos[] = {"chat", "superchat", "v2.mqtt"};

static void server_side(const char *buf, size_t size)
{
    wsx_http_request req;
    wsx_http_header h[MAX_HEADERS];
    if (wsx_http_parse_request(buf, size, &req, h, MAX_HEADERS, MAX_HEAD) <= 0) return;
    wsx_handshake_server_opts so = {server_protos, 3};
    wsx_handshake_server hs;
    int rc = wsx_handshake_server_check(&req, &so, &hs);
    char out[1024];
    if (rc == 0) {
        if (hs.status != 101 || hs.error || strlen(hs.accept) != WSX_ACCEPT_LEN) abort();
        if (hs.subprotocol < -1 || hs.subprotocol > 2 || hs.n_offers > WSX_MAX_EXT_OFFERS) abort();
        ptrdiff_t n =
            wsx_handshake_server_response(&hs, &so, "permessage-deflate", NULL, 0, out, sizeof out);
        if (n <= 0) abort();
        wsx_http_response resp;
        wsx_http_header rh[MAX_HEADERS];
        if (wsx_http_parse_response(out, (size_t)n, &resp, rh, MAX_HEADERS, MAX_HEAD) != n) abort();
    } else {
        if (rc != WSX_EHANDSHAKE || !hs.error || (hs.status != 400 && hs.status != 426)) abort();
        if (wsx_http_write_error(hs.status, hs.error, NULL, 0, out, sizeof out) <= 0) abort();
    }
}

static void client_side(const char *buf, size_t size)
{
    wsx_http_response resp;
    wsx_http_header h[MAX_HEADERS];
    if (wsx_http_parse_response(buf, size, &resp, h, MAX_HEADERS, MAX_HEAD) <= 0) return;
    wsx_handshake_client_opts co;
    memset(&co, 0, sizeof co);
    co.host = "example.com";
    co.subprotocols = server_protos;
    co.n_subprotocols = 2;
    co.extensions = "permessage-deflate; client_max_window_bits, x-test";
    wsx_handshake_client hs;
    memset(&hs, 0, sizeof hs);
    memcpy(hs.key, "dGhlIHNhbXBsZSBub25jZQ==", WSX_KEY_LEN + 1);
    memcpy(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", WSX_ACCEPT_LEN + 1);
    int rc = wsx_handshake_client_verify(&hs, &co, &resp);
    if (rc == 0) {
        if (hs.error || hs.status != 101 || hs.subprotocol < -1 || hs.subprotocol > 1) abort();
        if (hs.extensions &&
            (hs.extensions < buf || hs.extensions + hs.extensions_len > buf + size))
            abort();
    } else if (rc != WSX_EHANDSHAKE || !hs.error) {
        abort();
    }
}

static void extensions(const char *buf, size_t size)
{
    wsx_ext_offer o[WSX_MAX_EXT_OFFERS];
    size_t n = 0;
    int rc = wsx_ext_parse(buf, size, o, WSX_MAX_EXT_OFFERS, &n);
    if (rc != 0 && rc != WSX_EHTTP && rc != WSX_ELIMIT) abort();
    if (rc != 0 && n != 0) abort();
    for (size_t i = 0; i < n; i++) {
        if (o[i].name < buf || o[i].name + o[i].name_len > buf + size) abort();
        for (size_t j = 0; j < o[i].n_params; j++) {
            const wsx_ext_param *p = &o[i].params[j];
            if (p->value && (p->value < buf || p->value + p->value_len > buf + size)) abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    server_side(buf, size);
    client_side(buf, size);
    extensions(buf, size);
    free(buf);
    return 0;
}
