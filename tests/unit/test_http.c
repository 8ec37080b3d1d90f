/*
 * Unit tests for the HTTP/1.x head parser, token lists and error responses (src/proto/http.c).
 * The server's HTTP responses over real sockets are in test_http_server.c.
 */
#include "test.h"
#include "wsx.h"
#include "wsx/proto.h"

#define MAXH     16
#define MAX_HEAD 8192

static ptrdiff_t parse_req(const char *s, size_t len, size_t max_headers, size_t max_head)
{
    test_guard g;
    wsx_http_request req;
    wsx_http_header h[MAXH];
    const char *b = (const char *)test_guard_copy(&g, s, len);
    ptrdiff_t rc = wsx_http_parse_request(b, len, &req, h, max_headers, max_head);
    test_guard_free(&g);
    return rc;
}

static ptrdiff_t parse_resp(const char *s, size_t len, size_t max_headers, size_t max_head)
{
    test_guard g;
    wsx_http_response resp;
    wsx_http_header h[MAXH];
    const char *b = (const char *)test_guard_copy(&g, s, len);
    ptrdiff_t rc = wsx_http_parse_response(b, len, &resp, h, max_headers, max_head);
    test_guard_free(&g);
    return rc;
}

typedef ptrdiff_t (*parse_fn)(const char *, size_t, size_t, size_t);

/* Every strict prefix of a valid head is WSX_EAGAIN; the whole gives its length; trailing
 * bytes (a body, frames) are not consumed. Each call reads a guard-page copy. */
static void check_splits(parse_fn fn, const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        ptrdiff_t rc = fn(s, i, MAXH, MAX_HEAD);
        if (rc != WSX_EAGAIN) {
            TEST_FAIL_("prefix %zu of \"%s\" gave %td, expected WSX_EAGAIN", i, s, rc);
            return;
        }
    }
    CHECK_INT(fn(s, len, MAXH, MAX_HEAD), len);
    char more[1024];
    snprintf(more, sizeof more, "%s\x81\x05hello", s);
    CHECK_INT(fn(more, strlen(more), MAXH, MAX_HEAD), len);
}

static const char *const good_requests[] = {
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n",
    "GET / HTTP/1.0\n\n",
    "GET / HTTP/1.1\nHost: a\nX: \n\n",
    "\r\n\nGET /?q=a%20b HTTP/1.1\r\nHost:a\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nA:\tb \t\r\nB: c\td\r\nC: \xc3\xa9t\xc3\xa9\r\n\r\n",
    "M-._~!#$%&'*+^`| http://x/\x80 HTTP/1.9\r\n\r\n",
};

static const char *const good_responses[] = {
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "\r\n",
    "HTTP/1.1 101\r\n\r\n",
    "HTTP/1.1 200 \r\n\r\n",
    "HTTP/1.0 404 Not\tFound \xff\n\n",
    "HTTP/1.1 999 x\r\nA: b\nC: d\r\n\n",
};

TEST(request_fields)
{
    const char *s = good_requests[0];
    size_t len = strlen(s);
    test_guard g;
    const char *b = (const char *)test_guard_copy(&g, s, len);
    wsx_http_request req;
    wsx_http_header h[MAXH];
    CHECK_INT(wsx_http_parse_request(b, len, &req, h, MAXH, MAX_HEAD), len);
    CHECK_STRN(req.method, req.method_len, "GET");
    CHECK_STRN(req.target, req.target_len, "/chat");
    CHECK_INT(req.version_major, 1);
    CHECK_INT(req.version_minor, 1);
    CHECK(req.headers == h);
    CHECK_INT(req.n_headers, 7);
    CHECK_STRN(h[0].name, h[0].name_len, "Host");
    CHECK_STRN(h[0].value, h[0].value_len, "server.example.com");
    CHECK_STRN(h[5].name, h[5].name_len, "Sec-WebSocket-Protocol");
    CHECK_STRN(h[5].value, h[5].value_len, "chat, superchat");
    test_guard_free(&g);

    /* Whitespace around values is trimmed, inner whitespace kept; empty values allowed. */
    s = good_requests[4];
    len = strlen(s);
    b = (const char *)test_guard_copy(&g, s, len);
    CHECK_INT(wsx_http_parse_request(b, len, &req, h, MAXH, MAX_HEAD), len);
    CHECK_STRN(req.method, req.method_len, "OPTIONS");
    CHECK_STRN(req.target, req.target_len, "*");
    CHECK_INT(req.n_headers, 3);
    CHECK_STRN(h[0].value, h[0].value_len, "b");
    CHECK_STRN(h[1].value, h[1].value_len, "c\td");
    CHECK_STRN(h[2].value, h[2].value_len, "\xc3\xa9t\xc3\xa9");
    test_guard_free(&g);

    s = good_requests[2];
    len = strlen(s);
    b = (const char *)test_guard_copy(&g, s, len);
    CHECK_INT(wsx_http_parse_request(b, len, &req, h, MAXH, MAX_HEAD), len);
    CHECK_INT(req.version_minor, 1);
    CHECK_INT(req.n_headers, 2);
    CHECK_STRN(h[1].name, h[1].name_len, "X");
    CHECK_INT(h[1].value_len, 0);
    test_guard_free(&g);

    /* RFC 9112 2.2: empty lines before the request-line are skipped. */
    s = good_requests[3];
    len = strlen(s);
    b = (const char *)test_guard_copy(&g, s, len);
    CHECK_INT(wsx_http_parse_request(b, len, &req, h, MAXH, MAX_HEAD), len);
    CHECK_STRN(req.target, req.target_len, "/?q=a%20b");
    CHECK_INT(req.version_minor, 1);
    CHECK_STRN(h[0].value, h[0].value_len, "a");
    test_guard_free(&g);
}

TEST(response_fields)
{
    wsx_http_response resp;
    wsx_http_header h[MAXH];
    test_guard g;
    const char *s = good_responses[0];
    size_t len = strlen(s);
    const char *b = (const char *)test_guard_copy(&g, s, len);
    CHECK_INT(wsx_http_parse_response(b, len, &resp, h, MAXH, MAX_HEAD), len);
    CHECK_INT(resp.version_major, 1);
    CHECK_INT(resp.version_minor, 1);
    CHECK_INT(resp.status, 101);
    CHECK_STRN(resp.reason, resp.reason_len, "Switching Protocols");
    CHECK_INT(resp.n_headers, 3);
    CHECK(resp.headers == h);
    CHECK_STRN(h[2].value, h[2].value_len, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    test_guard_free(&g);

    s = good_responses[1];
    len = strlen(s);
    b = (const char *)test_guard_copy(&g, s, len);
    CHECK_INT(wsx_http_parse_response(b, len, &resp, h, MAXH, MAX_HEAD), len);
    CHECK_INT(resp.status, 101);
    CHECK_INT(resp.reason_len, 0);
    CHECK_INT(resp.n_headers, 0);
    test_guard_free(&g);

    s = good_responses[3];
    len = strlen(s);
    b = (const char *)test_guard_copy(&g, s, len);
    CHECK_INT(wsx_http_parse_response(b, len, &resp, h, MAXH, MAX_HEAD), len);
    CHECK_INT(resp.version_minor, 0);
    CHECK_INT(resp.status, 404);
    CHECK_STRN(resp.reason, resp.reason_len, "Not\tFound \xff");
    test_guard_free(&g);
}

TEST(every_split_point)
{
    for (size_t i = 0; i < sizeof good_requests / sizeof *good_requests; i++)
        check_splits(parse_req, good_requests[i]);
    for (size_t i = 0; i < sizeof good_responses / sizeof *good_responses; i++)
        check_splits(parse_resp, good_responses[i]);
}

typedef struct bad_case {
    const char *s;
    size_t len;    /* 0: strlen(s) */
    size_t bad_at; /* index of the first byte that makes the head invalid */
} bad_case;

/* A malformed head is refused as soon as its first bad byte arrives, and not before. */
static void check_bad(parse_fn fn, const bad_case *c)
{
    size_t len = c->len ? c->len : strlen(c->s);
    for (size_t i = 0; i <= len; i++) {
        ptrdiff_t want = i <= c->bad_at ? WSX_EAGAIN : WSX_EHTTP;
        ptrdiff_t rc = fn(c->s, i, MAXH, MAX_HEAD);
        if (rc != want) {
            TEST_FAIL_("\"%s\" cut at %zu gave %s, expected %s", c->s, i, wsx_err_name((int)rc),
                       wsx_err_name((int)want));
            return;
        }
    }
    test_checks_++;
}

TEST(malformed_requests)
{
    static const bad_case cases[] = {
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, 0}, /* TLS ClientHello */
        {"\x00GET / HTTP/1.1\r\n\r\n", 19, 0},
        {"HTTP/1.1 101 Switching Protocols\r\n\r\n", 0, 4}, /* a response */
        {" GET / HTTP/1.1\r\n\r\n", 0, 0},
        {"G(T / HTTP/1.1\r\n\r\n", 0, 1},
        {"GET\t/ HTTP/1.1\r\n\r\n", 0, 3},
        {"GET  / HTTP/1.1\r\n\r\n", 0, 4},
        {"GET /a\tb HTTP/1.1\r\n\r\n", 0, 6},
        {"GET /a\x7f HTTP/1.1\r\n\r\n", 0, 6},
        {"GET /\r\n\r\n", 0, 5},
        {"GET / HTTP/2.0\r\n\r\n", 0, 11},
        {"GET / http/1.1\r\n\r\n", 0, 6},
        {"GET / HTTP/1.x\r\n\r\n", 0, 13},
        {"GET / HTTP/1.1 \r\n\r\n", 0, 14},
        {"GET / HTTP/1.10\r\n\r\n", 0, 14},
        {"GET / HTTP/1.1\rX\r\n\r\n", 0, 15},
        {"\rGET / HTTP/1.1\r\n\r\n", 0, 1},
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, 20},
        {"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 0, 20},
        {"GET / HTTP/1.1\r\n: x\r\n\r\n", 0, 16},
        {"GET / HTTP/1.1\r\nA@: x\r\n\r\n", 0, 17},
        {"GET / HTTP/1.1\r\nA\r\n\r\n", 0, 17},
        {"GET / HTTP/1.1\r\nA: b\x01z\r\n\r\n", 0, 20},
        {"GET / HTTP/1.1\r\nA: b\x7fz\r\n\r\n", 0, 20},
        {"GET / HTTP/1.1\r\nA: b\0z\r\n\r\n", 26, 20},
        {"GET / HTTP/1.1\r\nA: b\rz\r\n\r\n", 0, 21},
        {"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 0, 16},
        {"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 0, 22},  /* obs-fold */
        {"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", 0, 22}, /* obs-fold */
        {"GET / HTTP/1.1\r\nA: b\r\n\rX", 0, 23},
        {"GET / HTTP/1.1\r\nA: b\r\n\xc3\xa9: c\r\n\r\n", 0, 22},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_bad(parse_req, &cases[i]);
}

TEST(malformed_responses)
{
    static const bad_case cases[] = {
        {"\x16\x03\x03\x00\x02", 0, 0},
        {"http/1.1 101\r\n\r\n", 0, 0},
        {"GET / HTTP/1.1\r\n\r\n", 0, 0}, /* a request */
        {"HTTP/2 101\r\n\r\n", 0, 5},
        {"HTTP/1.1101\r\n\r\n", 0, 8},
        {"HTTP/1.1  101\r\n\r\n", 0, 9},
        {"HTTP/1.1 099 x\r\n\r\n", 0, 9},
        {"HTTP/1.1 99 x\r\n\r\n", 0, 11},
        {"HTTP/1.1 1011 x\r\n\r\n", 0, 12},
        {"HTTP/1.1 101x\r\n\r\n", 0, 12},
        {"HTTP/1.1 101 OK\x01\r\n\r\n", 0, 15},
        {"HTTP/1.1 101 OK\rX\r\n", 0, 16},
        {"HTTP/1.1 101 OK\r\nUpgrade websocket\r\n\r\n", 0, 24},
        {"HTTP/1.1 101 OK\r\nA: b\r\n  c\r\n\r\n", 0, 23},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_bad(parse_resp, &cases[i]);
}

TEST(head_size_limit)
{
    const char *s = good_requests[0];
    size_t len = strlen(s);
    CHECK_INT(parse_req(s, len, MAXH, len), len);
    CHECK_INT(parse_req(s, len, MAXH, len - 1), WSX_EHEADTOOBIG);
    CHECK_INT(parse_req(s, len - 1, MAXH, len - 1), WSX_EHEADTOOBIG);
    CHECK_INT(parse_req(s, len - 2, MAXH, len - 1), WSX_EAGAIN);
    CHECK_INT(parse_req(s, 10, MAXH, 10), WSX_EHEADTOOBIG);
    CHECK_INT(parse_req(s, 0, MAXH, 0), WSX_EHEADTOOBIG);
    CHECK_INT(parse_req(s, 0, MAXH, 10), WSX_EAGAIN);
    /* More bytes than the limit, but the head ends inside it. */
    char buf[2048];
    snprintf(buf, sizeof buf, "%s%0500d", s, 0);
    CHECK_INT(parse_req(buf, strlen(buf), MAXH, len), len);
    CHECK_INT(parse_req(buf, strlen(buf), MAXH, len - 1), WSX_EHEADTOOBIG);

    /* A syntax error inside the limit wins over the limit. */
    CHECK_INT(parse_req("GET / HTTP/1.1\r\nA : b\r\n", 23, MAXH, 20), WSX_EHTTP);

    /* A huge field value. */
    size_t big = 20000;
    char *p = malloc(big);
    memcpy(p, "GET / HTTP/1.1\r\nCookie: ", 24);
    memset(p + 24, 'a', big - 24);
    CHECK_INT(parse_req(p, big, MAXH, MAX_HEAD), WSX_EHEADTOOBIG);
    CHECK_INT(parse_req(p, MAX_HEAD - 1, MAXH, MAX_HEAD), WSX_EAGAIN);
    free(p);

    s = good_responses[0];
    len = strlen(s);
    CHECK_INT(parse_resp(s, len, MAXH, len), len);
    CHECK_INT(parse_resp(s, len, MAXH, len - 1), WSX_EHEADTOOBIG);
}

TEST(header_count_limit)
{
    const char *s = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    size_t len = strlen(s);
    CHECK_INT(parse_req(s, len, 3, MAX_HEAD), len);
    CHECK_INT(parse_req(s, len, 2, MAX_HEAD), WSX_ETOOMANYHEADERS);
    CHECK_INT(parse_req(s, len, 0, MAX_HEAD), WSX_ETOOMANYHEADERS);
    /* Reported when the extra field begins, not before. */
    size_t third = (size_t)(strstr(s, "C:") - s);
    for (size_t i = 0; i <= len; i++)
        CHECK_INT(parse_req(s, i, 2, MAX_HEAD), i <= third ? WSX_EAGAIN : WSX_ETOOMANYHEADERS);
    CHECK_INT(parse_req("GET / HTTP/1.1\r\n\r\n", 18, 0, MAX_HEAD), 18);

    s = "HTTP/1.1 101 x\r\nA: 1\r\nB: 2\r\n\r\n";
    len = strlen(s);
    CHECK_INT(parse_resp(s, len, 2, MAX_HEAD), len);
    CHECK_INT(parse_resp(s, len, 1, MAX_HEAD), WSX_ETOOMANYHEADERS);
}

TEST(header_lookup_ignores_case)
{
    const char *s = "GET / HTTP/1.1\r\nhOsT: a\r\nX-Thing: 1\r\nx-thing: 2\r\n\r\n";
    wsx_http_request req;
    wsx_http_header h[MAXH];
    CHECK_INT(wsx_http_parse_request(s, strlen(s), &req, h, MAXH, MAX_HEAD), strlen(s));
    const wsx_http_header *f = wsx_http_header_get(h, req.n_headers, "Host");
    CHECK(f == &h[0]);
    CHECK(wsx_http_header_get(h, req.n_headers, "HOST") == &h[0]);
    f = wsx_http_header_get(h, req.n_headers, "X-THING");
    CHECK(f == &h[1]);
    CHECK_STRN(f->value, f->value_len, "1");
    CHECK(wsx_http_header_get(h, req.n_headers, "X-Thin") == NULL);
    CHECK(wsx_http_header_get(h, req.n_headers, "X-Things") == NULL);
    CHECK(wsx_http_header_get(h, 0, "Host") == NULL);
}

/* Collects the list elements of s joined by '|'. */
static const char *list_join(const char *s, char *out, size_t cap)
{
    const char *pos = s, *end = s + strlen(s), *e;
    size_t n, used = 0;
    out[0] = '\0';
    while (wsx_http_list_next(&pos, end, &e, &n)) {
        used += (size_t)snprintf(out + used, cap - used, "%s%.*s", used ? "|" : "", (int)n, e);
        if (used >= cap) break;
    }
    CHECK(pos == end);
    return out;
}

TEST(token_lists)
{
    char buf[256];
    CHECK_STR(list_join("a", buf, sizeof buf), "a");
    CHECK_STR(list_join("  a ,, b\t,  ,c  ,", buf, sizeof buf), "a|b|c");
    CHECK_STR(list_join(",,, ,\t,", buf, sizeof buf), "");
    CHECK_STR(list_join("", buf, sizeof buf), "");
    CHECK_STR(list_join("x y , z", buf, sizeof buf), "x y|z");
    CHECK_STR(list_join("foo; a=\"1,2\" , bar", buf, sizeof buf), "foo; a=\"1,2\"|bar");
    CHECK_STR(list_join("a=\"q\\\",\", b", buf, sizeof buf), "a=\"q\\\",\"|b");
    CHECK_STR(list_join("\"open, c", buf, sizeof buf), "\"open, c");

    CHECK(wsx_http_list_has("keep-alive, Upgrade", 19, "upgrade"));
    CHECK(wsx_http_list_has(" ,UPGRADE , ", 12, "upgrade"));
    CHECK(!wsx_http_list_has("upgrade2", 8, "upgrade"));
    CHECK(!wsx_http_list_has("upgrade", 6, "upgrade"));
    CHECK(!wsx_http_list_has("up grade", 8, "upgrade"));
    CHECK(!wsx_http_list_has("", 0, "upgrade"));
    CHECK(!wsx_http_list_has(NULL, 0, "upgrade"));
    CHECK(wsx_http_list_has("h2c,\twebsocket", 14, "WebSocket"));

    const char *s = "GET / HTTP/1.1\r\nConnection: keep-alive\r\nconnection: ,Upgrade\r\n"
                    "Upgrade: h2c\r\n\r\n";
    wsx_http_request req;
    wsx_http_header h[MAXH];
    CHECK_INT(wsx_http_parse_request(s, strlen(s), &req, h, MAXH, MAX_HEAD), strlen(s));
    CHECK(wsx_http_headers_have_token(h, req.n_headers, "Connection", "upgrade"));
    CHECK(wsx_http_headers_have_token(h, req.n_headers, "CONNECTION", "Keep-Alive"));
    CHECK(!wsx_http_headers_have_token(h, req.n_headers, "Upgrade", "websocket"));
    CHECK(!wsx_http_headers_have_token(h, req.n_headers, "X", "upgrade"));
}

TEST(status_texts)
{
    CHECK_STR(wsx_http_status_text(101), "Switching Protocols");
    CHECK_STR(wsx_http_status_text(400), "Bad Request");
    CHECK_STR(wsx_http_status_text(404), "Not Found");
    CHECK_STR(wsx_http_status_text(426), "Upgrade Required");
    CHECK_STR(wsx_http_status_text(503), "Service Unavailable");
    CHECK_STR(wsx_http_status_text(299), "Unknown");
    CHECK_STR(wsx_http_status_text(-1), "Unknown");
}

TEST(error_responses)
{
    char out[512];
    static const char want400[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 13\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "missing Host\n";
    ptrdiff_t n = wsx_http_write_error(400, "missing Host", NULL, 0, out, sizeof out);
    CHECK_MEM(out, n, want400, sizeof want400 - 1);
    /* It fits exactly, and not in one byte less. */
    CHECK_INT(wsx_http_write_error(400, "missing Host", NULL, 0, out, sizeof want400 - 1),
              sizeof want400 - 1);
    for (size_t cap = 0; cap < sizeof want400 - 1; cap++)
        CHECK_INT(wsx_http_write_error(400, "missing Host", NULL, 0, out, cap), WSX_ENOSPC);

    /* RFC 6455 4.2.2: a 426 names the supported version. */
    wsx_http_header extra[] = {{"Retry-After", 11, "5", 1}};
    n = wsx_http_write_error(426, "unsupported WebSocket version", extra, 1, out, sizeof out);
    CHECK(n > 0);
    out[n] = '\0';
    CHECK(strstr(out, "HTTP/1.1 426 Upgrade Required\r\n") == out);
    CHECK(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    CHECK(strstr(out, "\r\nRetry-After: 5\r\n") != NULL);

    /* The output is a response the parser reads back. */
    wsx_http_response resp;
    wsx_http_header h[MAXH];
    ptrdiff_t head = wsx_http_parse_response(out, (size_t)n, &resp, h, MAXH, MAX_HEAD);
    CHECK(head > 0);
    CHECK_INT(resp.status, 426);
    const wsx_http_header *cl = wsx_http_header_get(h, resp.n_headers, "content-length");
    CHECK(cl != NULL);
    CHECK_STRN(cl->value, cl->value_len, "30");
    CHECK_MEM(out + head, (size_t)(n - head), "unsupported WebSocket version\n", 30);
    CHECK(wsx_http_header_get(h, resp.n_headers, "Sec-WebSocket-Version") != NULL);

    n = wsx_http_write_error(404, NULL, NULL, 0, out, sizeof out);
    CHECK(n > 0);
    CHECK(strstr(out, "Content-Length: 1\r\n") != NULL);

    /* Fields that could split the head are refused. */
    wsx_http_header bad_value[] = {{"X", 1, "a\r\nSet-Cookie: x", 16}};
    wsx_http_header bad_lf[] = {{"X", 1, "a\nb", 3}};
    wsx_http_header bad_nul[] = {{"X", 1, "a\0b", 3}};
    wsx_http_header bad_name[] = {{"X\r\nY", 4, "1", 1}};
    wsx_http_header empty_name[] = {{"", 0, "1", 1}};
    CHECK_INT(wsx_http_write_error(400, "x", bad_value, 1, out, sizeof out), WSX_EINVAL);
    CHECK_INT(wsx_http_write_error(400, "x", bad_lf, 1, out, sizeof out), WSX_EINVAL);
    CHECK_INT(wsx_http_write_error(400, "x", bad_nul, 1, out, sizeof out), WSX_EINVAL);
    CHECK_INT(wsx_http_write_error(400, "x", bad_name, 1, out, sizeof out), WSX_EINVAL);
    CHECK_INT(wsx_http_write_error(400, "x", empty_name, 1, out, sizeof out), WSX_EINVAL);
    CHECK_INT(wsx_http_write_error(99, "x", NULL, 0, out, sizeof out), WSX_EINVAL);
    CHECK_INT(wsx_http_write_error(1000, "x", NULL, 0, out, sizeof out), WSX_EINVAL);
}

int main(void)
{
    RUN(request_fields);
    RUN(response_fields);
    RUN(every_split_point);
    RUN(malformed_requests);
    RUN(malformed_responses);
    RUN(head_size_limit);
    RUN(header_count_limit);
    RUN(header_lookup_ignores_case);
    RUN(token_lists);
    RUN(status_texts);
    RUN(error_responses);
    return test_summary("http");
}
