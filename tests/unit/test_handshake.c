/* Unit tests for the opening handshake and extension parsing (src/proto/handshake.c). */
#include "test.h"
#include "wsx/proto.h"

#define MAXH     32
#define MAX_HEAD 8192

/* The RFC 6455 1.3 example key and its accept value. */
#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

TEST(accept_key_rfc_example)
{
    char out[WSX_ACCEPT_LEN + 1];
    memset(out, 'x', sizeof out);
    CHECK_INT(wsx_accept_key(RFC_KEY, WSX_KEY_LEN, out), 0);
    CHECK_STR(out, RFC_ACCEPT);
    CHECK_INT(strlen(out), WSX_ACCEPT_LEN);
    /* Only the given length is hashed. */
    CHECK_INT(wsx_accept_key(RFC_KEY "junk", WSX_KEY_LEN, out), 0);
    CHECK_STR(out, RFC_ACCEPT);
}

/* ---- extension offers ----------------------------------------------------------------- */

static int ext_parse_str(const char *s, wsx_ext_offer *out, size_t max, size_t *n)
{
    return wsx_ext_parse(s, strlen(s), out, max, n);
}

TEST(ext_parse_offers)
{
    wsx_ext_offer o[WSX_MAX_EXT_OFFERS];
    size_t n = 0;
    CHECK_INT(ext_parse_str("permessage-deflate; client_max_window_bits, permessage-deflate; "
                            "server_max_window_bits=10; client_max_window_bits=\"15\"",
                            o, WSX_MAX_EXT_OFFERS, &n),
              0);
    CHECK_INT(n, 2);
    CHECK_STRN(o[0].name, o[0].name_len, "permessage-deflate");
    CHECK_INT(o[0].n_params, 1);
    CHECK_STRN(o[0].params[0].name, o[0].params[0].name_len, "client_max_window_bits");
    CHECK(o[0].params[0].value == NULL);
    CHECK_INT(o[0].params[0].value_len, 0);
    CHECK_STRN(o[1].name, o[1].name_len, "permessage-deflate");
    CHECK_INT(o[1].n_params, 2);
    CHECK_STRN(o[1].params[0].name, o[1].params[0].name_len, "server_max_window_bits");
    CHECK_STRN(o[1].params[0].value, o[1].params[0].value_len, "10");
    CHECK_STRN(o[1].params[1].name, o[1].params[1].name_len, "client_max_window_bits");
    CHECK_STRN(o[1].params[1].value, o[1].params[1].value_len, "15");

    /* Odd whitespace, empty elements, appending after existing entries. */
    CHECK_INT(ext_parse_str(" ,, x-a ;b = 1\t;c;  d=\"e\" ,\t, x-f,", o, WSX_MAX_EXT_OFFERS, &n),
              0);
    CHECK_INT(n, 4);
    CHECK_STRN(o[2].name, o[2].name_len, "x-a");
    CHECK_INT(o[2].n_params, 3);
    CHECK_STRN(o[2].params[0].name, o[2].params[0].name_len, "b");
    CHECK_STRN(o[2].params[0].value, o[2].params[0].value_len, "1");
    CHECK_STRN(o[2].params[1].name, o[2].params[1].name_len, "c");
    CHECK(o[2].params[1].value == NULL);
    CHECK_STRN(o[2].params[2].value, o[2].params[2].value_len, "e");
    CHECK_STRN(o[3].name, o[3].name_len, "x-f");
    CHECK_INT(o[3].n_params, 0);

    n = 0;
    CHECK_INT(ext_parse_str("", o, WSX_MAX_EXT_OFFERS, &n), 0);
    CHECK_INT(n, 0);
    CHECK_INT(ext_parse_str(" , ", o, WSX_MAX_EXT_OFFERS, &n), 0);
    CHECK_INT(n, 0);
}

TEST(ext_parse_errors)
{
    static const char *const bad[] = {
        "foo;",       "foo; ",          "foo;;a",        "foo; =1",     "foo bar",
        ";foo",       "foo; a=",        "foo; a= ;b",    "foo; a=\"\"", "foo; a=\"1 2\"",
        "foo; a=\"x", "foo; a=\"\\x\"", "foo; a=\"x\"y", "foo=1",       "fo@o",
        "foo; a=b=c", "foo; a=@",       "\"foo\"",       "foo,\x01",    "foo; a b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        wsx_ext_offer o[WSX_MAX_EXT_OFFERS];
        size_t n = 1;
        int rc = ext_parse_str(bad[i], o, WSX_MAX_EXT_OFFERS, &n);
        if (rc != WSX_EHTTP) TEST_FAIL_("\"%s\" gave %s", bad[i], wsx_err_name(rc));
        test_checks_++;
        CHECK_INT(n, 1);
    }
}

TEST(ext_parse_limits)
{
    wsx_ext_offer o[WSX_MAX_EXT_OFFERS + 1];
    size_t n = 0;
    CHECK_INT(ext_parse_str("a, b, c, d, e, f, g, h", o, WSX_MAX_EXT_OFFERS, &n), 0);
    CHECK_INT(n, 8);
    n = 0;
    CHECK_INT(ext_parse_str("a, b, c, d, e, f, g, h, i", o, WSX_MAX_EXT_OFFERS, &n), WSX_ELIMIT);
    CHECK_INT(n, 0);
    n = 0;
    CHECK_INT(ext_parse_str("a, b", o, 1, &n), WSX_ELIMIT);
    n = 1;
    CHECK_INT(ext_parse_str("a", o, 1, &n), WSX_ELIMIT);
    CHECK_INT(n, 1);
    n = 0;
    CHECK_INT(ext_parse_str("a;1;2;3;4;5;6;7;8", o, WSX_MAX_EXT_OFFERS, &n), 0);
    CHECK_INT(o[0].n_params, WSX_MAX_EXT_PARAMS);
    n = 0;
    CHECK_INT(ext_parse_str("a;1;2;3;4;5;6;7;8;9", o, WSX_MAX_EXT_OFFERS, &n), WSX_ELIMIT);
    CHECK_INT(n, 0);
}

/* ---- server side ---------------------------------------------------------------------- */

#define REQ_LINE   "GET /chat HTTP/1.1\r\n"
#define HOST       "Host: server.example.com\r\n"
#define UPGRADE    "Upgrade: websocket\r\n"
#define CONNECTION "Connection: Upgrade\r\n"
#define KEY        "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define VERSION    "Sec-WebSocket-Version: 13\r\n"

/* Parses the request text (a literal, so borrowed pointers stay valid) and checks it. */
static int server_check(const char *text, const char *const *protos, size_t n_protos,
                        wsx_handshake_server *hs, wsx_http_request *req, wsx_http_header *h)
{
    ptrdiff_t len = wsx_http_parse_request(text, strlen(text), req, h, MAXH, MAX_HEAD);
    if (len != (ptrdiff_t)strlen(text)) {
        TEST_FAIL_("request did not parse (%td): %s", len, text);
        return WSX_EINVAL;
    }
    wsx_handshake_server_opts so = {protos, n_protos};
    return wsx_handshake_server_check(req, &so, hs);
}

TEST(server_accepts_rfc_request)
{
    wsx_handshake_server hs;
    wsx_http_request req;
    wsx_http_header h[MAXH];
    CHECK_INT(server_check(REQ_LINE HOST UPGRADE CONNECTION KEY
                           "Origin: http://example.com\r\n"
                           "Sec-WebSocket-Protocol: chat, superchat\r\n" VERSION "\r\n",
                           NULL, 0, &hs, &req, h),
              0);
    CHECK_INT(hs.status, 101);
    CHECK(hs.error == NULL);
    CHECK_STR(hs.accept, RFC_ACCEPT);
    CHECK_INT(hs.subprotocol, -1);
    CHECK_INT(hs.n_offers, 0);

    /* Token lists in any case, among other tokens, over several fields (Firefox sends
     * "Connection: keep-alive, Upgrade"). */
    CHECK_INT(server_check("GET / HTTP/1.1\r\nhost: x\r\nupgrade: h2c, WebSocket\r\n"
                           "Connection: keep-alive\r\nCONNECTION: ,upgrade,\r\n"
                           "sec-websocket-key:  " RFC_KEY "  \r\nsec-websocket-version: 13\r\n\r\n",
                           NULL, 0, &hs, &req, h),
              0);
    CHECK_STR(hs.accept, RFC_ACCEPT);
}

typedef struct refusal {
    const char *request;
    int status;
    const char *error;
} refusal;

TEST(server_refusals)
{
    static const refusal cases[] = {
        {"POST /chat HTTP/1.1\r\n" HOST UPGRADE CONNECTION KEY VERSION "\r\n", 400,
         "method must be GET"},
        {"get /chat HTTP/1.1\r\n" HOST UPGRADE CONNECTION KEY VERSION "\r\n", 400,
         "method must be GET"},
        {"GETS /chat HTTP/1.1\r\n" HOST UPGRADE CONNECTION KEY VERSION "\r\n", 400,
         "method must be GET"},
        {"GET /chat HTTP/1.0\r\n" HOST UPGRADE CONNECTION KEY VERSION "\r\n", 400,
         "HTTP/1.1 or later required"},
        {REQ_LINE UPGRADE CONNECTION KEY VERSION "\r\n", 400, "missing Host"},
        {REQ_LINE HOST HOST UPGRADE CONNECTION KEY VERSION "\r\n", 400, "duplicate Host"},
        {REQ_LINE HOST CONNECTION KEY VERSION "\r\n", 400, "Upgrade must include websocket"},
        {REQ_LINE HOST "Upgrade: websockets\r\n" CONNECTION KEY VERSION "\r\n", 400,
         "Upgrade must include websocket"},
        {REQ_LINE HOST UPGRADE KEY VERSION "\r\n", 400, "Connection must include Upgrade"},
        {REQ_LINE HOST UPGRADE "Connection: keep-alive\r\n" KEY VERSION "\r\n", 400,
         "Connection must include Upgrade"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY "\r\n", 400, "missing Sec-WebSocket-Version"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY VERSION VERSION "\r\n", 400,
         "duplicate Sec-WebSocket-Version"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 8\r\n"
                                              "Sec-WebSocket-Version: 13\r\n\r\n",
         400, "duplicate Sec-WebSocket-Version"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 8\r\n\r\n", 426,
         "unsupported WebSocket version"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 13, 8\r\n\r\n", 426,
         "unsupported WebSocket version"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 013\r\n\r\n", 426,
         "unsupported WebSocket version"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version:\r\n\r\n", 426,
         "unsupported WebSocket version"},
        {REQ_LINE HOST UPGRADE CONNECTION VERSION "\r\n", 400, "missing Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY KEY VERSION "\r\n", 400, "invalid Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n" VERSION
                                          "\r\n",
         400, "invalid Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===\r\n" VERSION
                                          "\r\n",
         400, "invalid Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=A\r\n" VERSION
                                          "\r\n",
         400, "invalid Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n" VERSION
                                          "\r\n",
         400, "invalid Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION "Sec-WebSocket-Key: dGhlIHNhbX BsZSBub25jZQ==\r\n" VERSION
                                          "\r\n",
         400, "invalid Sec-WebSocket-Key"},
        /* base64 of 17 and of 18 bytes: 24 characters, but not 16 bytes. */
        {REQ_LINE HOST UPGRADE CONNECTION "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" VERSION
                                          "\r\n",
         400, "invalid Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n" VERSION
                                          "\r\n",
         400, "invalid Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION "Sec-WebSocket-Key: \r\n" VERSION "\r\n", 400,
         "invalid Sec-WebSocket-Key"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY VERSION "Sec-WebSocket-Extensions: foo;\r\n\r\n", 400,
         "malformed Sec-WebSocket-Extensions"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY VERSION "Sec-WebSocket-Extensions: a\r\n"
                                                      "Sec-WebSocket-Extensions: b c\r\n\r\n",
         400, "malformed Sec-WebSocket-Extensions"},
        {REQ_LINE HOST UPGRADE CONNECTION KEY VERSION
         "Sec-WebSocket-Extensions: a, b, c, d, e\r\n"
         "Sec-WebSocket-Extensions: f, g, h, i\r\n\r\n",
         400, "too many extension offers"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wsx_handshake_server hs;
        wsx_http_request req;
        wsx_http_header h[MAXH];
        int rc = server_check(cases[i].request, NULL, 0, &hs, &req, h);
        CHECK_INT(rc, WSX_EHANDSHAKE);
        if (hs.status != cases[i].status || !hs.error || strcmp(hs.error, cases[i].error) != 0)
            TEST_FAIL_("case %zu: %d \"%s\", expected %d \"%s\"", i, hs.status,
                       hs.error ? hs.error : "(null)", cases[i].status, cases[i].error);
        test_checks_++;

        /* The refusal is answered with a plain response; a 426 names version 13. */
        char out[512];
        ptrdiff_t n = wsx_http_write_error(hs.status, hs.error, NULL, 0, out, sizeof out - 1);
        CHECK(n > 0);
        out[n > 0 ? n : 0] = '\0';
        CHECK((strstr(out, "Sec-WebSocket-Version: 13\r\n") != NULL) == (hs.status == 426));
        CHECK(strstr(out, hs.error) != NULL);
    }
}

TEST(server_key_alphabet)
{
    /* Every base64 character is accepted in the key body; pad bits need not be zero. */
    static const char *const keys[] = {
        "Sec-WebSocket-Key: ABCDEFGHIJKLMNOPQRSTUV==\r\n",
        "Sec-WebSocket-Key: WXYZabcdefghijklmnopqr==\r\n",
        "Sec-WebSocket-Key: stuvwxyz0123456789+/+/==\r\n",
    };
    char text[512];
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        snprintf(text, sizeof text, "%s%s", REQ_LINE HOST UPGRADE CONNECTION VERSION, keys[i]);
        strcat(text, "\r\n");
        wsx_handshake_server hs;
        wsx_http_request req;
        wsx_http_header h[MAXH];
        CHECK_INT(server_check(text, NULL, 0, &hs, &req, h), 0);
        char want[WSX_ACCEPT_LEN + 1];
        CHECK_INT(wsx_accept_key(keys[i] + 19, WSX_KEY_LEN, want), 0);
        CHECK_STR(hs.accept, want);
    }
}

TEST(server_subprotocol_preference)
{
    const char *text =
        REQ_LINE HOST UPGRADE CONNECTION KEY VERSION "Sec-WebSocket-Protocol: chat, ,superchat\r\n"
                                                     "Sec-WebSocket-Protocol: v2.mqtt\r\n\r\n";
    wsx_handshake_server hs;
    wsx_http_request req;
    wsx_http_header h[MAXH];

    static const char *const pref1[] = {"superchat", "chat"};
    CHECK_INT(server_check(text, pref1, 2, &hs, &req, h), 0);
    CHECK_INT(hs.subprotocol, 0);
    static const char *const pref2[] = {"mqtt", "v2.mqtt", "chat"};
    CHECK_INT(server_check(text, pref2, 3, &hs, &req, h), 0);
    CHECK_INT(hs.subprotocol, 1);
    static const char *const pref3[] = {"other", "chat"};
    CHECK_INT(server_check(text, pref3, 2, &hs, &req, h), 0);
    CHECK_INT(hs.subprotocol, 1);
    /* No overlap: accepted without a subprotocol. Names compare exactly. */
    static const char *const pref4[] = {"CHAT", "super", "chat, superchat"};
    CHECK_INT(server_check(text, pref4, 3, &hs, &req, h), 0);
    CHECK_INT(hs.subprotocol, -1);
    CHECK_INT(hs.status, 101);
    CHECK_INT(server_check(text, NULL, 0, &hs, &req, h), 0);
    CHECK_INT(hs.subprotocol, -1);
    CHECK_INT(
        server_check(REQ_LINE HOST UPGRADE CONNECTION KEY VERSION "\r\n", pref1, 2, &hs, &req, h),
        0);
    CHECK_INT(hs.subprotocol, -1);
    wsx_handshake_server_opts so = {pref1, 2};
    char out[512];
    ptrdiff_t n = wsx_handshake_server_response(&hs, &so, NULL, NULL, 0, out, sizeof out);
    CHECK(n > 0);
    CHECK(strstr(out, "Sec-WebSocket-Protocol") == NULL);
}

TEST(server_extension_offers)
{
    wsx_handshake_server hs;
    wsx_http_request req;
    wsx_http_header h[MAXH];
    CHECK_INT(
        server_check(REQ_LINE HOST UPGRADE CONNECTION KEY VERSION
                     "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                     "X-Other: 1\r\n"
                     "sec-websocket-extensions: x-webkit-deflate-frame, "
                     "permessage-deflate; server_max_window_bits=\"10\"\r\n\r\n",
                     NULL, 0, &hs, &req, h),
        0);
    CHECK_INT(hs.n_offers, 3);
    CHECK_STRN(hs.offers[0].name, hs.offers[0].name_len, "permessage-deflate");
    CHECK_INT(hs.offers[0].n_params, 1);
    CHECK(hs.offers[0].params[0].value == NULL);
    CHECK_STRN(hs.offers[1].name, hs.offers[1].name_len, "x-webkit-deflate-frame");
    CHECK_STRN(hs.offers[2].params[0].value, hs.offers[2].params[0].value_len, "10");
}

TEST(server_response_bytes)
{
    wsx_handshake_server hs;
    wsx_http_request req;
    wsx_http_header h[MAXH];
    static const char *const protos[] = {"chat"};
    CHECK_INT(server_check(REQ_LINE HOST UPGRADE CONNECTION KEY VERSION
                           "Sec-WebSocket-Protocol: chat\r\n\r\n",
                           protos, 1, &hs, &req, h),
              0);
    wsx_handshake_server_opts so = {protos, 1};
    wsx_http_header extra[] = {{"Set-Cookie", 10, "id=1", 4}};
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                               "Sec-WebSocket-Protocol: chat\r\n"
                               "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                               "Set-Cookie: id=1\r\n"
                               "\r\n";
    char out[512];
    ptrdiff_t n =
        wsx_handshake_server_response(&hs, &so, "permessage-deflate", extra, 1, out, sizeof out);
    CHECK_MEM(out, n, want, sizeof want - 1);
    CHECK_INT(wsx_handshake_server_response(&hs, &so, "permessage-deflate", extra, 1, out,
                                            sizeof want - 1),
              sizeof want - 1);
    for (size_t cap = 0; cap < sizeof want - 1; cap++)
        CHECK_INT(wsx_handshake_server_response(&hs, &so, "permessage-deflate", extra, 1, out, cap),
                  WSX_ENOSPC);

    static const char want_plain[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                                     "\r\n";
    hs.subprotocol = -1;
    n = wsx_handshake_server_response(&hs, NULL, NULL, NULL, 0, out, sizeof out);
    CHECK_MEM(out, n, want_plain, sizeof want_plain - 1);

    wsx_http_header bad[] = {{"X", 1, "a\r\nb", 4}};
    CHECK_INT(wsx_handshake_server_response(&hs, NULL, NULL, bad, 1, out, sizeof out), WSX_EINVAL);
    CHECK_INT(wsx_handshake_server_response(&hs, NULL, "a\r\nb", NULL, 0, out, sizeof out),
              WSX_EINVAL);
    hs.subprotocol = 1;
    CHECK_INT(wsx_handshake_server_response(&hs, &so, NULL, NULL, 0, out, sizeof out), WSX_EINVAL);
    hs.subprotocol = -1;
    hs.status = 400;
    CHECK_INT(wsx_handshake_server_response(&hs, NULL, NULL, NULL, 0, out, sizeof out), WSX_EINVAL);
}

/* ---- client side and the full round trip ---------------------------------------------- */

static const char *const client_protos[] = {"chat", "superchat"};
static const wsx_http_header client_extra[] = {{"Cookie", 6, "a=b", 3}};

static wsx_handshake_client_opts client_opts(void)
{
    wsx_handshake_client_opts co;
    memset(&co, 0, sizeof co);
    co.host = "example.com:8080";
    co.path = "/chat?room=1";
    co.origin = "http://example.com";
    co.subprotocols = client_protos;
    co.n_subprotocols = 2;
    co.extensions = "permessage-deflate; client_max_window_bits, x-test";
    co.headers = client_extra;
    co.n_headers = 1;
    return co;
}

TEST(client_request_format)
{
    wsx_handshake_client_opts co = client_opts();
    wsx_handshake_client hs;
    char out[1024];
    ptrdiff_t n = wsx_handshake_client_request(&co, &hs, out, sizeof out);
    CHECK(n > 0);
    CHECK_INT(strlen(hs.key), WSX_KEY_LEN);
    CHECK(hs.key[22] == '=' && hs.key[23] == '=');
    char want_accept[WSX_ACCEPT_LEN + 1];
    CHECK_INT(wsx_accept_key(hs.key, WSX_KEY_LEN, want_accept), 0);
    CHECK_STR(hs.accept, want_accept);
    CHECK_INT(hs.subprotocol, -1);
    CHECK(hs.extensions == NULL);

    char want[1024];
    snprintf(want, sizeof want,
             "GET /chat?room=1 HTTP/1.1\r\n"
             "Host: example.com:8080\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "Origin: http://example.com\r\n"
             "Sec-WebSocket-Protocol: chat, superchat\r\n"
             "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-test\r\n"
             "Cookie: a=b\r\n"
             "\r\n",
             hs.key);
    CHECK_MEM(out, n, want, strlen(want));

    /* Minimal options: path defaults to "/", no optional fields. */
    wsx_handshake_client_opts min;
    memset(&min, 0, sizeof min);
    min.host = "h";
    n = wsx_handshake_client_request(&min, &hs, out, sizeof out);
    snprintf(want, sizeof want,
             "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
             hs.key);
    CHECK_MEM(out, n, want, strlen(want));
    for (size_t cap = 0; cap < strlen(want); cap++)
        CHECK_INT(wsx_handshake_client_request(&min, &hs, out, cap), WSX_ENOSPC);
    CHECK_INT(wsx_handshake_client_request(&min, &hs, out, strlen(want)), strlen(want));
}

TEST(client_request_distinct_keys)
{
    wsx_handshake_client_opts co = client_opts();
    wsx_handshake_client a, b;
    char out1[1024], out2[1024];
    ptrdiff_t n1 = wsx_handshake_client_request(&co, &a, out1, sizeof out1);
    ptrdiff_t n2 = wsx_handshake_client_request(&co, &b, out2, sizeof out2);
    CHECK(n1 > 0 && n1 == n2);
    CHECK(strcmp(a.key, b.key) != 0);
    CHECK(strcmp(a.accept, b.accept) != 0);
    CHECK(memcmp(out1, out2, (size_t)n1) != 0);
}

TEST(client_request_invalid)
{
    wsx_handshake_client hs;
    char out[1024];
    wsx_handshake_client_opts co;

    co = client_opts();
    co.host = NULL;
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co.host = "";
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co.host = "a\r\nX: y";
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co = client_opts();
    co.path = "/a b";
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co.path = "/a\r\n";
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co.path = "";
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co = client_opts();
    co.origin = "http://a\n";
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co = client_opts();
    co.extensions = "permessage-deflate\r\nX: 1";
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co.extensions = "permessage-deflate;";
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co = client_opts();
    static const char *const bad_protos[] = {"chat", "a,b"};
    co.subprotocols = bad_protos;
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    static const char *const crlf_protos[] = {"chat\r\n"};
    co.subprotocols = crlf_protos;
    co.n_subprotocols = 1;
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    static const char *const empty_protos[] = {""};
    co.subprotocols = empty_protos;
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co = client_opts();
    wsx_http_header h_cr[] = {{"X", 1, "1\r", 2}};
    wsx_http_header h_nul[] = {{"X", 1, "1\0", 2}};
    wsx_http_header h_name[] = {{"X\nY", 3, "1", 1}};
    wsx_http_header h_colon[] = {{"X:", 2, "1", 1}};
    co.headers = h_cr;
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co.headers = h_nul;
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co.headers = h_name;
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
    co.headers = h_colon;
    CHECK_INT(wsx_handshake_client_request(&co, &hs, out, sizeof out), WSX_EINVAL);
}

TEST(round_trip)
{
    wsx_handshake_client_opts co = client_opts();
    wsx_handshake_client ch;
    char req_buf[1024];
    ptrdiff_t n = wsx_handshake_client_request(&co, &ch, req_buf, sizeof req_buf);
    CHECK(n > 0);

    /* The server reads it from a guard-page copy. */
    test_guard g1;
    const char *rb = (const char *)test_guard_copy(&g1, req_buf, (size_t)n);
    wsx_http_request req;
    wsx_http_header h[MAXH];
    CHECK_INT(wsx_http_parse_request(rb, (size_t)n, &req, h, MAXH, MAX_HEAD), n);
    CHECK_STRN(req.target, req.target_len, "/chat?room=1");
    const wsx_http_header *f = wsx_http_header_get(h, req.n_headers, "origin");
    CHECK(f && f->value_len == 18 && memcmp(f->value, "http://example.com", 18) == 0);
    f = wsx_http_header_get(h, req.n_headers, "cookie");
    CHECK(f && f->value_len == 3 && memcmp(f->value, "a=b", 3) == 0);

    static const char *const server_protos[] = {"mqtt", "superchat", "chat"};
    wsx_handshake_server_opts so = {server_protos, 3};
    wsx_handshake_server sh;
    CHECK_INT(wsx_handshake_server_check(&req, &so, &sh), 0);
    CHECK_INT(sh.status, 101);
    CHECK_INT(sh.subprotocol, 1);
    CHECK_STR(sh.accept, ch.accept);
    CHECK_INT(sh.n_offers, 2);
    CHECK_STRN(sh.offers[0].name, sh.offers[0].name_len, "permessage-deflate");
    CHECK_STRN(sh.offers[1].name, sh.offers[1].name_len, "x-test");

    char resp_buf[1024];
    ptrdiff_t m = wsx_handshake_server_response(&sh, &so, "permessage-deflate", NULL, 0, resp_buf,
                                                sizeof resp_buf);
    CHECK(m > 0);
    test_guard_free(&g1);

    test_guard g2;
    const char *pb = (const char *)test_guard_copy(&g2, resp_buf, (size_t)m);
    wsx_http_response resp;
    CHECK_INT(wsx_http_parse_response(pb, (size_t)m, &resp, h, MAXH, MAX_HEAD), m);
    CHECK_INT(wsx_handshake_client_verify(&ch, &co, &resp), 0);
    CHECK_INT(ch.status, 101);
    CHECK(ch.error == NULL);
    CHECK_INT(ch.subprotocol, 1);
    CHECK_STRN(ch.extensions, ch.extensions_len, "permessage-deflate");
    CHECK(ch.extensions >= pb && ch.extensions < pb + m);
    test_guard_free(&g2);
}

/* Verifies a hand-written response against a fresh client request; each "%s" in the text
 * stands for the expected accept value. */
static int verify_text(const wsx_handshake_client_opts *co, const char *fmt,
                       wsx_handshake_client *ch)
{
    /* Static: ch->extensions borrows from the response after the call. */
    static char resp_buf[1024];
    char req_buf[1024];
    if (wsx_handshake_client_request(co, ch, req_buf, sizeof req_buf) <= 0) return WSX_EINVAL;
    size_t used = 0;
    for (const char *t = fmt; *t && used + WSX_ACCEPT_LEN < sizeof resp_buf - 1; t++) {
        if (t[0] == '%' && t[1] == 's') {
            memcpy(resp_buf + used, ch->accept, WSX_ACCEPT_LEN);
            used += WSX_ACCEPT_LEN;
            t++;
        } else {
            resp_buf[used++] = *t;
        }
    }
    resp_buf[used] = '\0';
    wsx_http_response resp;
    wsx_http_header h[MAXH];
    size_t len = strlen(resp_buf);
    if (wsx_http_parse_response(resp_buf, len, &resp, h, MAXH, MAX_HEAD) != (ptrdiff_t)len)
        return WSX_EHTTP;
    return wsx_handshake_client_verify(ch, co, &resp);
}

typedef struct tamper {
    const char *response; /* "%s" stands for the expected accept value */
    const char *error;    /* NULL: accepted */
} tamper;

#define R101  "HTTP/1.1 101 Switching Protocols\r\n"
#define RUP   "Upgrade: websocket\r\n"
#define RCONN "Connection: Upgrade\r\n"
#define RACC  "Sec-WebSocket-Accept: %s\r\n"

TEST(client_verify_tampering)
{
    static const tamper cases[] = {
        {R101 RUP RCONN RACC "\r\n", NULL},
        {"HTTP/1.1 101 x\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
         "sec-websocket-accept: %s\r\nSec-WebSocket-Protocol: chat\r\n"
         "Sec-WebSocket-Extensions: x-test, permessage-deflate; server_no_context_takeover\r\n\r\n",
         NULL},
        {R101 RUP RCONN "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
         "wrong Sec-WebSocket-Accept"},
        {R101 RUP RCONN "\r\n", "wrong Sec-WebSocket-Accept"},
        {R101 RUP RCONN RACC RACC "\r\n", "wrong Sec-WebSocket-Accept"},
        {R101 RUP RCONN "Sec-WebSocket-Accept: %s=\r\n\r\n", "wrong Sec-WebSocket-Accept"},
        {"HTTP/1.1 200 OK\r\n" RUP RCONN RACC "\r\n", "server did not answer 101"},
        {"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n",
         "server did not answer 101"},
        {R101 RCONN RACC "\r\n", "response lacks Upgrade: websocket"},
        {R101 "Upgrade: h2c\r\n" RCONN RACC "\r\n", "response lacks Upgrade: websocket"},
        {R101 RUP RACC "\r\n", "response lacks Connection: Upgrade"},
        {R101 RUP RCONN RACC "Sec-WebSocket-Protocol: other\r\n\r\n",
         "server chose a subprotocol not offered"},
        {R101 RUP RCONN RACC "Sec-WebSocket-Protocol: Chat\r\n\r\n",
         "server chose a subprotocol not offered"},
        {R101 RUP RCONN RACC "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
         "server chose more than one subprotocol"},
        {R101 RUP RCONN RACC "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
         "duplicate Sec-WebSocket-Protocol"},
        {R101 RUP RCONN RACC "Sec-WebSocket-Extensions: x-foo\r\n\r\n",
         "server chose an extension not offered"},
        {R101 RUP RCONN RACC "Sec-WebSocket-Extensions: permessage-deflate, x-foo\r\n\r\n",
         "server chose an extension not offered"},
        {R101 RUP RCONN RACC "Sec-WebSocket-Extensions: permessage-deflate;\r\n\r\n",
         "malformed Sec-WebSocket-Extensions"},
        {R101 RUP RCONN RACC "Sec-WebSocket-Extensions: x-test\r\n"
                             "Sec-WebSocket-Extensions: x-test\r\n\r\n",
         "duplicate Sec-WebSocket-Extensions"},
    };
    wsx_handshake_client_opts co = client_opts();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wsx_handshake_client ch;
        int rc = verify_text(&co, cases[i].response, &ch);
        if (!cases[i].error) {
            if (rc != 0)
                TEST_FAIL_("case %zu: %s \"%s\"", i, wsx_err_name(rc), ch.error ? ch.error : "");
        } else if (rc != WSX_EHANDSHAKE || !ch.error || strcmp(ch.error, cases[i].error) != 0) {
            TEST_FAIL_("case %zu: %s \"%s\", expected \"%s\"", i, wsx_err_name(rc),
                       ch.error ? ch.error : "(null)", cases[i].error);
        }
        test_checks_++;
    }

    /* The accepted variant reports what the server chose. */
    wsx_handshake_client ch;
    CHECK_INT(verify_text(&co, cases[1].response, &ch), 0);
    CHECK_INT(ch.subprotocol, 0);
    CHECK_STRN(ch.extensions, ch.extensions_len,
               "x-test, permessage-deflate; server_no_context_takeover");
    /* A 426 still records the status. */
    CHECK_INT(verify_text(&co, cases[7].response, &ch), WSX_EHANDSHAKE);
    CHECK_INT(ch.status, 426);

    /* Nothing offered: any subprotocol or extension in the answer is an error. */
    wsx_handshake_client_opts none;
    memset(&none, 0, sizeof none);
    none.host = "h";
    CHECK_INT(verify_text(&none, R101 RUP RCONN RACC "Sec-WebSocket-Protocol: chat\r\n\r\n", &ch),
              WSX_EHANDSHAKE);
    CHECK_STR(ch.error, "server chose a subprotocol not offered");
    CHECK_INT(verify_text(&none, R101 RUP RCONN RACC "Sec-WebSocket-Extensions: a\r\n\r\n", &ch),
              WSX_EHANDSHAKE);
    CHECK_STR(ch.error, "server chose an extension not offered");
    CHECK_INT(verify_text(&none, R101 RUP RCONN RACC "Sec-WebSocket-Protocol:\r\n\r\n", &ch), 0);
    CHECK_INT(ch.subprotocol, -1);
    CHECK(ch.extensions == NULL);
}

int main(void)
{
    RUN(accept_key_rfc_example);
    RUN(ext_parse_offers);
    RUN(ext_parse_errors);
    RUN(ext_parse_limits);
    RUN(server_accepts_rfc_request);
    RUN(server_refusals);
    RUN(server_key_alphabet);
    RUN(server_subprotocol_preference);
    RUN(server_extension_offers);
    RUN(server_response_bytes);
    RUN(client_request_format);
    RUN(client_request_distinct_keys);
    RUN(client_request_invalid);
    RUN(round_trip);
    RUN(client_verify_tampering);
    return test_summary("handshake");
}
