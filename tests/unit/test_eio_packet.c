/*
 * Engine.IO v4 packet codec (src/eio/packet.c): WebSocket frames, polling payloads fed whole,
 * split at every byte and one byte at a time, base64, the open packet and the error bodies.
 * The expected bytes are the reference server's (socket.io 4.8.4 / engine.io 6.6.13), as
 * recorded in docs/socketio.md.
 */
#include "test.h"

#include "eio/packet.h"

/* A description of what a decoder reported, to compare runs with different splits. */
typedef struct {
    char s[4096];
    size_t len;
} logbuf;

static void log_add(logbuf *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_add(logbuf *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->s + l->len, sizeof l->s - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) l->len += (size_t)n;
    if (l->len >= sizeof l->s) l->len = sizeof l->s - 1;
}

static void log_packet(logbuf *l, const wsx__eio_packet *p)
{
    log_add(l, "%d%s:", p->type, p->binary ? "b" : "");
    for (size_t i = 0; i < p->len; i++) {
        uint8_t c = p->data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            log_add(l, "%c", c);
        else
            log_add(l, "\\x%02x", c);
    }
    log_add(l, ";");
}

/* Feeds body[0..len) in pieces of `step` bytes (0: whole), each piece in a guard-page copy,
 * and logs the packets and the error. */
static void run_payload(const uint8_t *body, size_t len, size_t max, size_t step, logbuf *l)
{
    memset(l, 0, sizeof *l);
    wsx__eio_payload d;
    wsx__eio_payload_init(&d, max);
    size_t fed = 0;
    if (step == 0) step = len ? len : 1;
    for (;;) {
        size_t n = len - fed < step ? len - fed : step;
        bool end = fed + n == len;
        test_guard g;
        const uint8_t *piece = test_guard_copy(&g, body + fed, n);
        size_t off = 0;
        for (;;) {
            wsx__eio_packet p;
            ptrdiff_t rc = wsx__eio_payload_feed(&d, piece + off, n - off, end, &p);
            if (rc < 0) {
                log_add(l, "ERR %s %s", wsx_err_name((int)rc), wsx__eio_reason(d.reason));
                test_guard_free(&g);
                wsx__eio_payload_free(&d);
                return;
            }
            off += (size_t)rc;
            if (p.type == WSX__EIO_NONE) break;
            log_packet(l, &p);
        }
        test_guard_free(&g);
        CHECK_INT(off, n);
        fed += n;
        if (end) break;
    }
    log_add(l, "END");
    wsx__eio_payload_free(&d);
}

/* Runs a body whole, split in two at every byte, and one byte at a time; every run must
 * report `want`. */
static void check_payload(const char *body, size_t len, size_t max, const char *want)
{
    logbuf l;
    run_payload((const uint8_t *)body, len, max, 0, &l);
    CHECK_STR(l.s, want);
    for (size_t cut = 1; cut < len; cut++) {
        /* Two pieces: [0, cut) and [cut, len), through a decoder fed twice. */
        logbuf a;
        memset(&a, 0, sizeof a);
        wsx__eio_payload d;
        wsx__eio_payload_init(&d, max);
        const uint8_t *parts[2] = {(const uint8_t *)body, (const uint8_t *)body + cut};
        size_t lens[2] = {cut, len - cut};
        bool failed = false;
        for (int k = 0; k < 2 && !failed; k++) {
            size_t off = 0;
            for (;;) {
                wsx__eio_packet p;
                ptrdiff_t rc = wsx__eio_payload_feed(&d, parts[k] + off, lens[k] - off, k == 1, &p);
                if (rc < 0) {
                    log_add(&a, "ERR %s %s", wsx_err_name((int)rc), wsx__eio_reason(d.reason));
                    failed = true;
                    break;
                }
                off += (size_t)rc;
                if (p.type == WSX__EIO_NONE) break;
                log_packet(&a, &p);
            }
        }
        if (!failed) log_add(&a, "END");
        wsx__eio_payload_free(&d);
        if (strcmp(a.s, want) != 0) {
            TEST_FAIL_("split at %zu: %s, expected %s", cut, a.s, want);
            return;
        }
    }
    run_payload((const uint8_t *)body, len, max, 1, &l);
    CHECK_STR(l.s, want);
}

#define BODY(s) s, sizeof(s) - 1

/* socket.io 4.8.4's answer to a GET with seven packets queued (docs/socketio.md, sample 3). */
static const char ref_payload[] =
    "42[\"a\",1]\x1e"
    "42[\"b\",\"two\"]\x1e"
    "42[\"c\",{\"x\":[1,2],\"y\":null}]\x1e"
    "452-[\"bin\",{\"_placeholder\":true,\"num\":0},\"t\",{\"_placeholder\":true,\"num\":1}]\x1e"
    "bAQIDBA==\x1e"
    "b/w==\x1e"
    "431[\"ok\",2]";

TEST(payload_reference)
{
    check_payload(BODY(ref_payload), 1000000,
                  "4:2[\"a\",1];4:2[\"b\",\"two\"];4:2[\"c\",{\"x\":[1,2],\"y\":null}];"
                  "4:52-[\"bin\",{\"_placeholder\":true,\"num\":0},\"t\",{\"_placeholder\":true,"
                  "\"num\":1}];4b:\\x01\\x02\\x03\\x04;4b:\\xff;4:31[\"ok\",2];END");
    /* The protocol text's own examples. */
    check_payload(BODY("4hello\x1e"
                       "2\x1e"
                       "4world"),
                  100, "4:hello;2:;4:world;END");
    check_payload(BODY("4hello\x1e"
                       "bAQIDBA=="),
                  100, "4:hello;4b:\\x01\\x02\\x03\\x04;END");
    check_payload(BODY("6"), 100, "6:;END");
    check_payload(BODY("b"), 100, "4b:;END");
    /* UTF-8 text, multi-byte sequences cut by the splits. */
    check_payload(BODY("42[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]"), 100,
                  "4:2[\"\\xc3\\xa9\\xe2\\x82\\xac\\xf0\\x9f\\x98\\x80\"];END");
}

TEST(payload_malformed)
{
    check_payload("", 0, 100, "ERR WSX_EPROTO empty packet");
    check_payload(BODY("\x1e"), 100, "ERR WSX_EPROTO empty packet");
    check_payload(BODY("4a\x1e"), 100, "4:a;ERR WSX_EPROTO empty packet");
    check_payload(BODY("4a\x1e\x1e"
                       "4b"),
                  100, "4:a;ERR WSX_EPROTO empty packet");
    check_payload(BODY("9x"), 100, "ERR WSX_EPROTO unknown packet type");
    check_payload(BODY("4a\x1e"
                       "7"),
                  100, "4:a;ERR WSX_EPROTO unknown packet type");
    check_payload(BODY("xa"), 100, "ERR WSX_EPROTO unknown packet type");
    check_payload(BODY("bAQ="), 100, "ERR WSX_EPROTO invalid base64 in a binary packet");
    check_payload(BODY("bAR=="), 100, "ERR WSX_EPROTO invalid base64 in a binary packet");
    check_payload(BODY("4\xff"), 100, "ERR WSX_EINVALDATA text packet is not UTF-8");
    check_payload(BODY("4\xc3"), 100, "ERR WSX_EINVALDATA text packet is not UTF-8");
    check_payload(BODY("4\xed\xa0\x80"), 100, "ERR WSX_EINVALDATA text packet is not UTF-8");
}

TEST(payload_bound)
{
    /* maxPayload is on the body: exactly max bytes pass, one more fails, whatever the
     * split; packets that fit before the failure are reported. */
    check_payload(BODY("4abcdefgh\x1e"
                       "4ij"),
                  13, "4:abcdefgh;4:ij;END");
    check_payload(BODY("4abcdefgh\x1e"
                       "4ijk"),
                  13, "4:abcdefgh;ERR WSX_ETOOBIG payload exceeds maxPayload");
    check_payload(BODY("4abcdefghijklmnop"), 13, "ERR WSX_ETOOBIG payload exceeds maxPayload");
    /* The decoder keeps at most max bytes of a cut record. */
    wsx__eio_payload d;
    wsx__eio_payload_init(&d, 64);
    uint8_t big[64];
    memset(big, 'a', sizeof big);
    big[0] = '4';
    wsx__eio_packet p;
    CHECK_INT(wsx__eio_payload_feed(&d, big, 63, false, &p), 63);
    CHECK_INT(p.type, WSX__EIO_NONE);
    CHECK(d.rec_cap <= 64);
    CHECK_INT(wsx__eio_payload_feed(&d, big, 2, false, &p), WSX_ETOOBIG);
    CHECK_INT(d.reason, WSX__EIO_R_TOO_BIG);
    CHECK_INT(wsx__eio_payload_feed(&d, big, 1, true, &p), WSX_EPROTO);
    wsx__eio_payload_free(&d);
}

TEST(payload_encode)
{
    const uint8_t bin1[] = {1, 2, 3, 4}, bin2[] = {255};
    wsx__eio_packet p[] = {
        {WSX__EIO_MESSAGE, false, (const uint8_t *)"2[\"a\",1]", 8},
        {WSX__EIO_MESSAGE, false, (const uint8_t *)"2[\"b\",\"two\"]", 12},
        {WSX__EIO_MESSAGE, false, (const uint8_t *)"2[\"c\",{\"x\":[1,2],\"y\":null}]", 27},
        {WSX__EIO_MESSAGE, false,
         (const uint8_t *)"52-[\"bin\",{\"_placeholder\":true,\"num\":0},\"t\",{\"_placeholder\":"
                          "true,\"num\":1}]",
         74},
        {WSX__EIO_MESSAGE, true, bin1, 4},
        {WSX__EIO_MESSAGE, true, bin2, 1},
        {WSX__EIO_MESSAGE, false, (const uint8_t *)"31[\"ok\",2]", 10},
    };
    uint8_t out[512];
    ptrdiff_t n = wsx__eio_payload_encode(out, sizeof out, p, 7);
    CHECK_MEM(out, n, ref_payload, sizeof ref_payload - 1);
    CHECK_INT(wsx__eio_payload_encode(out, (size_t)n - 1, p, 7), WSX_ENOSPC);
    /* The exact size fits: no byte is written past it (guard page). */
    test_guard g;
    uint8_t *tight = test_guard_copy(&g, out, (size_t)n);
    CHECK_INT(wsx__eio_payload_encode(tight, (size_t)n, p, 7), n);
    CHECK_MEM(tight, n, ref_payload, sizeof ref_payload - 1);
    test_guard_free(&g);
    wsx__eio_packet ping = {WSX__EIO_PING, false, NULL, 0}, noop = {WSX__EIO_NOOP, false, NULL, 0},
                    close = {WSX__EIO_CLOSE, false, NULL, 0};
    CHECK_INT(wsx__eio_payload_encode(out, sizeof out, &ping, 1), 1);
    CHECK_STRN(out, 1, "2");
    wsx__eio_packet two[] = {noop, close};
    /* The reference's answer to a GET when a session closes after a parse error. */
    CHECK_INT(wsx__eio_payload_encode(out, sizeof out, two, 2), 3);
    CHECK_STRN(out, 3,
               "6\x1e"
               "1");
    CHECK_INT(wsx__eio_payload_encode(out, sizeof out, p, 0), 0);
}

TEST(websocket_frames)
{
    wsx__eio_packet p;
    int reason = 0;
    CHECK_INT(wsx__eio_decode_ws((const uint8_t *)"2probe", 6, false, &p, &reason), 0);
    CHECK_INT(p.type, WSX__EIO_PING);
    CHECK_STRN(p.data, p.len, "probe");
    CHECK_INT(wsx__eio_decode_ws((const uint8_t *)"5", 1, false, &p, &reason), 0);
    CHECK_INT(p.type, WSX__EIO_UPGRADE);
    CHECK_INT(p.len, 0);
    const uint8_t raw[] = {1, 2, 3, 4};
    CHECK_INT(wsx__eio_decode_ws(raw, 4, true, &p, &reason), 0);
    CHECK(p.binary);
    CHECK_INT(p.type, WSX__EIO_MESSAGE);
    CHECK(p.data == raw && p.len == 4);
    CHECK_INT(wsx__eio_decode_ws(raw, 0, true, &p, &reason), 0);
    CHECK_INT(p.len, 0);
    CHECK_INT(wsx__eio_decode_ws((const uint8_t *)"", 0, false, &p, &reason), WSX_EPROTO);
    CHECK_INT(reason, WSX__EIO_R_EMPTY);
    CHECK_INT(wsx__eio_decode_ws((const uint8_t *)"7", 1, false, &p, &reason), WSX_EPROTO);
    CHECK_INT(reason, WSX__EIO_R_TYPE);
    /* base64 is for polling only. */
    CHECK_INT(wsx__eio_decode_ws((const uint8_t *)"bAQ==", 5, false, &p, NULL), WSX_EPROTO);
}

TEST(base64)
{
    static const struct {
        const char *raw;
        size_t len;
        const char *b64;
    } v[] = {
        {"", 0, ""},
        {"\x01", 1, "AQ=="},
        {"\x01\x02", 2, "AQI="},
        {"\x01\x02\x03", 3, "AQID"},
        {"\x01\x02\x03\x04", 4, "AQIDBA=="},
        {"\xff", 1, "/w=="},
        {"\xfb\xff", 2, "+/8="},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t out[16];
        CHECK_INT(wsx__base64_len(v[i].len), strlen(v[i].b64));
        test_guard g;
        uint8_t *o = test_guard_copy(&g, out, wsx__base64_len(v[i].len));
        size_t n = wsx__base64_encode(o, (const uint8_t *)v[i].raw, v[i].len);
        CHECK_STRN(o, n, v[i].b64);
        test_guard_free(&g);
        ptrdiff_t m = wsx__base64_decode(out, (const uint8_t *)v[i].b64, strlen(v[i].b64));
        CHECK_MEM(out, m, v[i].raw, v[i].len);
    }
    /* Every length up to 300, every byte value. */
    uint8_t raw[300], enc[400], dec[300];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof raw; len++) {
        size_t n = wsx__base64_encode(enc, raw, len);
        CHECK_INT(n, wsx__base64_len(len));
        ptrdiff_t m = wsx__base64_decode(dec, enc, n);
        CHECK_MEM(dec, m, raw, len);
    }
    static const char *const bad[] = {"A",    "AQ=",  "AQ==x", "A===",  "====", "AR==",
                                      "AQJ=", "AQ=A", " AQ=",  "AQ\n=", "A*==", "AQ-_"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (wsx__base64_decode(dec, (const uint8_t *)bad[i], strlen(bad[i])) != -1)
            TEST_FAIL_("\"%s\" decoded", bad[i]);
        test_checks_++;
    }
}

TEST(open_packet)
{
    char out[WSX__EIO_OPEN_MAX];
    wsx__eio_open o = {"cjhWdl8X4ni8Mr03AAAA", true, 25000, 20000, 1000000};
    ptrdiff_t n = wsx__eio_open_write(out, sizeof out, &o);
    CHECK_STRN(out, n,
               "0{\"sid\":\"cjhWdl8X4ni8Mr03AAAA\",\"upgrades\":[\"websocket\"],\"pingInterval\":"
               "25000,\"pingTimeout\":20000,\"maxPayload\":1000000}");
    o = (wsx__eio_open){"-dTFqvrqwfNtE6uFAAAD", false, 25000, 20000, 1000000};
    n = wsx__eio_open_write(out, sizeof out, &o);
    CHECK_STRN(out, n,
               "0{\"sid\":\"-dTFqvrqwfNtE6uFAAAD\",\"upgrades\":[],\"pingInterval\":25000,"
               "\"pingTimeout\":20000,\"maxPayload\":1000000}");
    o = (wsx__eio_open){"kQm3U1YIcboHisgSAAAA", true, 300, 200, 100};
    n = wsx__eio_open_write(out, sizeof out, &o);
    CHECK_STRN(out, n,
               "0{\"sid\":\"kQm3U1YIcboHisgSAAAA\",\"upgrades\":[\"websocket\"],\"pingInterval\":"
               "300,\"pingTimeout\":200,\"maxPayload\":100}");
    CHECK_INT(wsx__eio_open_write(out, (size_t)n, &o), WSX_ENOSPC);
    o.sid = "a\"b";
    CHECK_INT(wsx__eio_open_write(out, sizeof out, &o), WSX_EINVAL);
    o.sid = "";
    CHECK_INT(wsx__eio_open_write(out, sizeof out, &o), WSX_EINVAL);
    /* The longest values fit the documented bound. */
    o = (wsx__eio_open){"AAAAAAAAAAAAAAAAAAAA", true, UINT32_MAX, UINT32_MAX, UINT64_MAX};
    CHECK(wsx__eio_open_write(out, sizeof out, &o) > 0);
}

TEST(sid)
{
    char a[WSX__EIO_SID_LEN + 1], b[WSX__EIO_SID_LEN + 1];
    CHECK_INT(wsx__eio_sid_new(a), 0);
    CHECK_INT(wsx__eio_sid_new(b), 0);
    CHECK_INT(strlen(a), 20);
    CHECK(strcmp(a, b) != 0);
    CHECK_INT(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 20);
    wsx__eio_open o = {a, true, 1, 1, 1};
    char out[WSX__EIO_OPEN_MAX];
    CHECK(wsx__eio_open_write(out, sizeof out, &o) > 0);
}

TEST(error_bodies)
{
    /* Bodies of the reference's 400 answers (docs/socketio.md, "HTTP errors"). */
    CHECK_STR(wsx__eio_error_body(WSX__EIO_ERR_UNKNOWN_TRANSPORT),
              "{\"code\":0,\"message\":\"Transport unknown\"}");
    CHECK_STR(wsx__eio_error_body(WSX__EIO_ERR_UNKNOWN_SID),
              "{\"code\":1,\"message\":\"Session ID unknown\"}");
    CHECK_STR(wsx__eio_error_body(WSX__EIO_ERR_BAD_HANDSHAKE_METHOD),
              "{\"code\":2,\"message\":\"Bad handshake method\"}");
    CHECK_STR(wsx__eio_error_body(WSX__EIO_ERR_BAD_REQUEST),
              "{\"code\":3,\"message\":\"Bad request\"}");
    CHECK_STR(wsx__eio_error_body(WSX__EIO_ERR_FORBIDDEN),
              "{\"code\":4,\"message\":\"Forbidden\"}");
    CHECK_STR(wsx__eio_error_body(WSX__EIO_ERR_UNSUPPORTED_PROTOCOL_VERSION),
              "{\"code\":5,\"message\":\"Unsupported protocol version\"}");
    CHECK(wsx__eio_error_body(6) == NULL && wsx__eio_error_body(-1) == NULL);
    CHECK_STR(wsx__eio_error_message(WSX__EIO_ERR_UNKNOWN_SID), "Session ID unknown");
}

int main(void)
{
    RUN(payload_reference);
    RUN(payload_malformed);
    RUN(payload_bound);
    RUN(payload_encode);
    RUN(websocket_frames);
    RUN(base64);
    RUN(open_packet);
    RUN(sid);
    RUN(error_bodies);
    return test_summary("eio_packet");
}
