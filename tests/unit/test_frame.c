/* Frame parser and writer (RFC 6455 section 5). */
#include "test.h"
#include "wsx/proto.h"

/* ---- a driver that feeds input in chosen chunk sizes and logs what the parser reports ---- */

typedef struct {
    char log[8192];
    size_t loglen;
    uint8_t *msg; /* the message being reassembled */
    size_t msg_len, msg_cap;
    int msg_op;
    int err;
    uint16_t err_code;
    const char *err_reason;
    int events;
} run_result;

static void logf_(run_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(run_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->loglen, sizeof r->log - r->loglen, fmt, ap);
    va_end(ap);
    if (n > 0) r->loglen += (size_t)n;
    if (r->loglen >= sizeof r->log) r->loglen = sizeof r->log - 1;
}

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void log_payload(run_result *r, const uint8_t *p, size_t n)
{
    bool printable = n <= 64;
    for (size_t i = 0; printable && i < n; i++)
        printable = p[i] >= 0x20 && p[i] < 0x7f;
    if (printable)
        logf_(r, "%.*s", (int)n, (const char *)p);
    else
        logf_(r, "<%zu:%08x>", n, fnv(p, n));
}

static void handle(run_result *r, const wsx_event *ev)
{
    r->events++;
    switch (ev->type) {
    case WSX_EV_DATA:
        if (ev->first) {
            r->msg_len = 0;
            r->msg_op = ev->opcode;
        }
        CHECK_INT(ev->opcode, r->msg_op);
        if (r->msg_len + ev->len > r->msg_cap) {
            r->msg_cap = (r->msg_len + ev->len) * 2 + 16;
            r->msg = realloc(r->msg, r->msg_cap);
        }
        if (ev->len) memcpy(r->msg + r->msg_len, ev->data, ev->len);
        r->msg_len += ev->len;
        if (ev->last) {
            logf_(r, "%s%s:", ev->opcode == WSX_OP_TEXT ? "T" : "B", ev->compressed ? "z" : "");
            log_payload(r, r->msg, r->msg_len);
            logf_(r, "|");
        }
        break;
    case WSX_EV_PING:
        logf_(r, "PING:");
        log_payload(r, ev->data, ev->len);
        logf_(r, "|");
        break;
    case WSX_EV_PONG:
        logf_(r, "PONG:");
        log_payload(r, ev->data, ev->len);
        logf_(r, "|");
        break;
    case WSX_EV_CLOSE:
        logf_(r, "CLOSE:%u:", ev->close_code);
        log_payload(r, ev->data, ev->len);
        logf_(r, "|");
        break;
    default:
        break;
    }
}

/*
 * Feeds in[0..len) to a parser in chunks whose sizes cycle through `chunks` (0-terminated;
 * NULL = all at once), keeping unconsumed bytes as the contract asks. The input is copied
 * because unmasking happens in place.
 */
static void run(const wsx_parser_opts *o, const uint8_t *in, size_t len, const size_t *chunks,
                run_result *r)
{
    memset(r, 0, sizeof *r);
    wsx_parser p;
    wsx_parser_init(&p, o);
    uint8_t *buf = malloc(len + 1);
    size_t have = 0, fed = 0, ci = 0;
    while (fed < len || have > 0) {
        size_t step = chunks ? chunks[ci] : len;
        if (chunks && chunks[++ci] == 0) ci = 0;
        if (step > len - fed) step = len - fed;
        memcpy(buf + have, in + fed, step);
        have += step;
        fed += step;
        size_t off = 0;
        for (;;) {
            wsx_event ev;
            ptrdiff_t n = wsx_parser_feed(&p, buf + off, have - off, &ev);
            if (n < 0) {
                r->err = (int)n;
                r->err_code = wsx_parser_close_code(&p);
                r->err_reason = wsx_parser_error(&p);
                logf_(r, "ERR:%u", r->err_code);
                free(buf);
                free(r->msg);
                r->msg = NULL;
                return;
            }
            if (ev.type != WSX_EV_NONE) handle(r, &ev);
            if (n == 0) break;
            off += (size_t)n;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        if (fed == len) {
            if (have) logf_(r, "LEFT:%zu", have);
            break;
        }
    }
    free(buf);
    free(r->msg);
    r->msg = NULL;
}

static const wsx_parser_opts server_opts = {.role = WSX_ROLE_SERVER};
static const wsx_parser_opts client_opts = {.role = WSX_ROLE_CLIENT};
static const size_t one_byte[] = {1, 0};
static const size_t odd_chunks[] = {3, 1, 7, 2, 13, 5, 64, 1, 0};

/* Runs the input whole, one byte at a time, in odd chunks, and at every split point, and
 * checks all give `expect`. */
static void check_all_splits(const wsx_parser_opts *o, const uint8_t *in, size_t len,
                             const char *expect)
{
    run_result r;
    run(o, in, len, NULL, &r);
    CHECK_STR(r.log, expect);
    run(o, in, len, one_byte, &r);
    CHECK_STR(r.log, expect);
    run(o, in, len, odd_chunks, &r);
    CHECK_STR(r.log, expect);
    for (size_t s = 1; s < len; s++) {
        size_t two[] = {s, len, 0};
        run(o, in, len, two, &r);
        if (strcmp(r.log, expect) != 0) {
            CHECK_STR(r.log, expect);
            fprintf(stderr, "  (split at %zu)\n", s);
            break;
        }
    }
}

/* Builds a frame; masked with a fixed key when mask is true. Returns its length. */
static size_t mk(uint8_t *out, uint8_t b0, const void *payload, size_t len, bool mask)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    ptrdiff_t n = wsx_frame_write(out, 1 << 20, b0, payload, len, mask ? key : NULL);
    return n < 0 ? 0 : (size_t)n;
}

/* ---- RFC 6455 5.7 examples ---- */

TEST(rfc_examples)
{
    static const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    check_all_splits(&client_opts, unmasked, sizeof unmasked, "T:Hello|");

    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    check_all_splits(&server_opts, masked, sizeof masked, "T:Hello|");

    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    check_all_splits(&client_opts, frag, sizeof frag, "T:Hello|");

    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    check_all_splits(&client_opts, ping, sizeof ping, "PING:Hello|");

    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    check_all_splits(&server_opts, pong, sizeof pong, "PONG:Hello|");

    /* 256 bytes binary in a single unmasked frame, and 64 KiB. */
    uint8_t *big = calloc(1, 65536 + 10);
    big[0] = 0x82;
    big[1] = 0x7E;
    big[2] = 0x01;
    big[3] = 0x00;
    for (int i = 0; i < 256; i++)
        big[4 + i] = (uint8_t)i;
    run_result r;
    run(&client_opts, big, 4 + 256, NULL, &r);
    CHECK(strncmp(r.log, "B:<256:", 7) == 0);

    uint8_t hdr[WSX_MAX_HEADER];
    CHECK_INT(wsx_frame_header(hdr, 0x82, 256, NULL), 4);
    CHECK_MEM(hdr, 4, big, 4);
    static const uint8_t h64k[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK_INT(wsx_frame_header(hdr, 0x82, 65536, NULL), 10);
    CHECK_MEM(hdr, 10, h64k, 10);
    memcpy(big, h64k, 10);
    memset(big + 10, 'x', 65536);
    run(&client_opts, big, 65536 + 10, NULL, &r);
    CHECK(strncmp(r.log, "B:<65536:", 9) == 0);
    free(big);

    /* The writer reproduces the masked example byte for byte. */
    uint8_t out[64];
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    ptrdiff_t n = wsx_frame_write(out, sizeof out, 0x81, (const uint8_t *)"Hello", 5, key);
    CHECK_MEM(out, n, masked, sizeof masked);
    n = wsx_frame_write(out, sizeof out, 0x81, (const uint8_t *)"Hello", 5, NULL);
    CHECK_MEM(out, n, unmasked, sizeof unmasked);
}

/* ---- length encodings ---- */

TEST(lengths)
{
    static const struct {
        uint64_t len;
        size_t hlen;
    } cases[] = {{0, 2},
                 {1, 2},
                 {125, 2},
                 {126, 4},
                 {127, 4},
                 {65535, 4},
                 {65536, 10},
                 {(uint64_t)1 << 32, 10},
                 {((uint64_t)1 << 63) - 1, 10}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t h[WSX_MAX_HEADER];
        CHECK_INT(wsx_frame_header(h, 0x82, cases[i].len, NULL), cases[i].hlen);
        static const uint8_t key[4] = {1, 2, 3, 4};
        CHECK_INT(wsx_frame_header(h, 0x82, cases[i].len, key), cases[i].hlen + 4);
        CHECK_MEM(h + cases[i].hlen, 4, key, 4);
        /* The parser reads the same length back from the header alone. */
        wsx_parser p;
        wsx_parser_init(&p, &server_opts);
        wsx_event ev;
        ptrdiff_t n = wsx_parser_feed(&p, h, cases[i].hlen + 4, &ev);
        CHECK_INT(n, (ptrdiff_t)cases[i].hlen + 4);
        if (cases[i].len == 0) {
            CHECK_INT(ev.type, WSX_EV_DATA);
            CHECK(ev.last && ev.first);
            CHECK_INT(ev.len, 0);
        } else {
            CHECK_INT(ev.type, WSX_EV_NONE);
            CHECK(p.remaining == cases[i].len);
        }
    }
    /* Real payloads at each boundary, round-tripped through writer and parser. */
    static const size_t sizes[] = {0, 125, 126, 127, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len = sizes[i];
        uint8_t *payload_ = malloc(len + 1);
        for (size_t j = 0; j < len; j++)
            payload_[j] = (uint8_t)(j * 7 + 3);
        uint8_t *frame = malloc(len + WSX_MAX_HEADER);
        size_t flen = mk(frame, 0x82, payload_, len, true);
        run_result r;
        run(&server_opts, frame, flen, NULL, &r);
        char expect[64];
        if (len == 0)
            snprintf(expect, sizeof expect, "B:|");
        else
            snprintf(expect, sizeof expect, "B:<%zu:%08x>|", len, fnv(payload_, len));
        CHECK_STR(r.log, expect);
        run(&server_opts, frame, flen, odd_chunks, &r);
        CHECK_STR(r.log, expect);
        free(payload_);
        free(frame);
    }
}

TEST(length_top_bit)
{
    static const uint8_t f[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    run_result r;
    run(&server_opts, f, sizeof f, NULL, &r);
    CHECK_INT(r.err, WSX_EPROTO);
    CHECK_INT(r.err_code, 1002);
    CHECK_STR(r.err_reason, "frame length has the top bit set");
}

/* A 2^32-byte frame: the header is accepted and the payload streams through in pieces. */
TEST(length_4gib_streams)
{
    uint8_t h[WSX_MAX_HEADER + 1000];
    static const uint8_t key[4] = {9, 8, 7, 6};
    size_t hl = wsx_frame_header(h, 0x82, (uint64_t)1 << 32, key);
    memset(h + hl, 0, 1000);
    wsx_parser p;
    wsx_parser_init(&p, &server_opts);
    wsx_event ev;
    ptrdiff_t n = wsx_parser_feed(&p, h, hl + 1000, &ev);
    CHECK_INT(n, hl + 1000);
    CHECK_INT(ev.type, WSX_EV_DATA);
    CHECK(ev.first && !ev.last);
    CHECK_INT(ev.len, 1000);
    CHECK_INT(ev.data[0], 9);
    CHECK_INT(ev.data[3], 6);
    CHECK(p.remaining == ((uint64_t)1 << 32) - 1000);
    /* With a 1 GiB message limit the same header fails before any payload. */
    wsx_parser_opts o = {.role = WSX_ROLE_SERVER, .max_message = 1u << 30};
    wsx_parser_init(&p, &o);
    n = wsx_parser_feed(&p, h, hl, &ev);
    CHECK_INT(n, WSX_ETOOBIG);
    CHECK_INT(wsx_parser_close_code(&p), 1009);
    /* Limits above 4 GiB - 1 are kept as 4 GiB - 1 (32 bits in the parser): a 5 GiB limit
     * refuses this 4 GiB frame, and takes one byte shorter. */
    o.max_message = 5ull << 30;
    o.max_frame = 5ull << 30;
    wsx_parser_init(&p, &o);
    CHECK_INT(wsx_parser_feed(&p, h, hl, &ev), WSX_ETOOBIG);
    CHECK_INT(wsx_parser_close_code(&p), 1009);
    hl = wsx_frame_header(h, 0x82, ((uint64_t)1 << 32) - 1, key);
    wsx_parser_init(&p, &o);
    CHECK_INT(wsx_parser_feed(&p, h, hl, &ev), (ptrdiff_t)hl);
    CHECK_INT(wsx_parser_close_code(&p), 0);
    wsx_parser_set_limits(&p, 0, 0);
    CHECK(p.max_frame == 0 && p.max_message == 0);
    wsx_parser_set_limits(&p, UINT64_MAX, (uint64_t)1 << 40);
    CHECK(p.max_frame == UINT32_MAX && p.max_message == UINT32_MAX);
    CHECK(sizeof(wsx_parser) <= 40);
}

/* ---- protocol errors, each with its code and reason ---- */

static void expect_error(const wsx_parser_opts *o, const uint8_t *in, size_t len, int err,
                         uint16_t code, const char *reason)
{
    run_result r;
    run(o, in, len, NULL, &r);
    CHECK_INT(r.err, err);
    CHECK_INT(r.err_code, code);
    CHECK_STR(r.err_reason, reason);
    /* Byte at a time fails the same way. */
    run(o, in, len, one_byte, &r);
    CHECK_INT(r.err, err);
    CHECK_STR(r.err_reason, reason);
}

TEST(masking_rules)
{
    static const uint8_t unmasked[] = {0x81, 0x02, 'h', 'i'};
    expect_error(&server_opts, unmasked, sizeof unmasked, WSX_EPROTO, 1002,
                 "client frame is not masked");
    uint8_t masked[16];
    size_t n = mk(masked, 0x81, "hi", 2, true);
    expect_error(&client_opts, masked, n, WSX_EPROTO, 1002, "server frame is masked");
    /* Control frames too. */
    static const uint8_t ping[] = {0x89, 0x00};
    expect_error(&server_opts, ping, sizeof ping, WSX_EPROTO, 1002, "client frame is not masked");
}

TEST(reserved_opcodes)
{
    for (int op = 3; op <= 0xF; op++) {
        if (op >= 8 && op <= 0xA) continue;
        uint8_t f[16];
        size_t n = mk(f, (uint8_t)(0x80 | op), "", 0, true);
        expect_error(&server_opts, f, n, WSX_EPROTO, 1002, "reserved opcode");
    }
}

TEST(rsv_bits)
{
    static const uint8_t rsvs[] = {WSX_RSV1, WSX_RSV2, WSX_RSV3};
    for (size_t i = 0; i < 3; i++) {
        uint8_t f[16];
        size_t n = mk(f, (uint8_t)(0x81 | rsvs[i]), "a", 1, true);
        expect_error(&server_opts, f, n, WSX_EPROTO, 1002,
                     "RSV bit set without a negotiated extension");
    }
    /* RSV1 allowed after permessage-deflate: reported as compressed, not UTF-8 checked. */
    wsx_parser_opts o = {.role = WSX_ROLE_SERVER, .rsv_allowed = WSX_RSV1};
    uint8_t f[64];
    size_t n = mk(f, 0x81 | WSX_RSV1, "\xff\xfe", 2, true);
    run_result r;
    run(&o, f, n, NULL, &r);
    CHECK_INT(r.err, 0);
    CHECK(strncmp(r.log, "Tz:<2:", 6) == 0);
    /* RSV2 is still refused when only RSV1 is negotiated. */
    n = mk(f, 0x81 | WSX_RSV2, "a", 1, true);
    run(&o, f, n, NULL, &r);
    CHECK_STR(r.err_reason, "RSV bit set without a negotiated extension");
    /* RSV1 on a continuation frame (RFC 7692 6.1) and on a control frame. */
    n = mk(f, 0x01 | WSX_RSV1, "a", 1, true);
    n += mk(f + n, 0x80 | WSX_RSV1, "b", 1, true);
    run(&o, f, n, NULL, &r);
    CHECK_STR(r.err_reason, "RSV bit set on a continuation frame");
    n = mk(f, 0x89 | WSX_RSV1, "", 0, true);
    run(&o, f, n, NULL, &r);
    CHECK_STR(r.err_reason, "RSV bit set on a control frame");
    /* wsx_parser_set_rsv switches it on later. */
    wsx_parser p;
    wsx_parser_init(&p, &server_opts);
    wsx_parser_set_rsv(&p, WSX_RSV1);
    n = mk(f, 0x82 | WSX_RSV1, "zz", 2, true);
    wsx_event ev;
    CHECK_INT(wsx_parser_feed(&p, f, n, &ev), (ptrdiff_t)n);
    CHECK(ev.compressed);
}

TEST(control_frame_rules)
{
    uint8_t f[300];
    uint8_t big[126];
    memset(big, 'a', sizeof big);
    /* 125 bytes is fine, 126 is not (RFC 6455 5.5). */
    size_t n = mk(f, 0x89, big, 125, true);
    run_result r;
    run(&server_opts, f, n, NULL, &r);
    CHECK_INT(r.err, 0);
    CHECK(strncmp(r.log, "PING:<125:", 10) == 0);
    /* The writer refuses to build it, so build it by hand. */
    static const uint8_t key[4] = {1, 2, 3, 4};
    n = wsx_frame_header(f, 0x89, 126, key);
    memcpy(f + n, big, 126);
    n += 126;
    expect_error(&server_opts, f, n, WSX_EPROTO, 1002, "control frame longer than 125 bytes");
    /* Fragmented control frame. */
    n = mk(f, 0x09, "a", 1, true);
    expect_error(&server_opts, f, n, WSX_EPROTO, 1002, "fragmented control frame");
    /* Control frames between fragments are fine. */
    n = mk(f, 0x01, "Hel", 3, true);
    n += mk(f + n, 0x89, "p1", 2, true);
    n += mk(f + n, 0x00, "l", 1, true);
    n += mk(f + n, 0x8A, "p2", 2, true);
    n += mk(f + n, 0x80, "o", 1, true);
    check_all_splits(&server_opts, f, n, "PING:p1|PONG:p2|T:Hello|");
}

TEST(fragmentation_rules)
{
    uint8_t f[64];
    size_t n = mk(f, 0x80, "x", 1, true);
    expect_error(&server_opts, f, n, WSX_EPROTO, 1002, "continuation frame without a message");
    n = mk(f, 0x01, "a", 1, true);
    n += mk(f + n, 0x81, "b", 1, true);
    expect_error(&server_opts, f, n, WSX_EPROTO, 1002, "new message inside a fragmented message");
    n = mk(f, 0x02, "a", 1, true);
    n += mk(f + n, 0x82, "b", 1, true);
    expect_error(&server_opts, f, n, WSX_EPROTO, 1002, "new message inside a fragmented message");
    /* A finished message allows the next; in_message tracks the open one. */
    wsx_parser p;
    wsx_parser_init(&p, &server_opts);
    wsx_event ev;
    n = mk(f, 0x01, "a", 1, true);
    CHECK_INT(wsx_parser_feed(&p, f, n, &ev), (ptrdiff_t)n);
    CHECK(wsx_parser_in_message(&p));
    n = mk(f, 0x80, "b", 1, true);
    CHECK_INT(wsx_parser_feed(&p, f, n, &ev), (ptrdiff_t)n);
    CHECK(ev.last && !ev.first);
    CHECK(!wsx_parser_in_message(&p));
    /* Empty fragments, including an empty first and last frame. */
    n = mk(f, 0x01, "", 0, true);
    n += mk(f + n, 0x00, "ab", 2, true);
    n += mk(f + n, 0x00, "", 0, true);
    n += mk(f + n, 0x80, "", 0, true);
    n += mk(f + n, 0x81, "", 0, true);
    check_all_splits(&server_opts, f, n, "T:ab|T:|");
}

TEST(close_frames)
{
    uint8_t f[200], pl[125];
    run_result r;
    /* Empty close: code 1005 reported, nothing on the wire. */
    size_t n = mk(f, 0x88, "", 0, true);
    run(&server_opts, f, n, NULL, &r);
    CHECK_STR(r.log, "CLOSE:1005:|");
    /* 1-byte payload. */
    n = mk(f, 0x88, "\x03", 1, true);
    expect_error(&server_opts, f, n, WSX_EPROTO, 1002, "close frame with a 1-byte payload");
    /* Valid codes, each class. */
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        size_t pn = wsx_close_payload(pl, valid[i], "bye", 3);
        n = mk(f, 0x88, pl, pn, true);
        run(&server_opts, f, n, NULL, &r);
        char expect[32];
        snprintf(expect, sizeof expect, "CLOSE:%u:bye|", valid[i]);
        CHECK_STR(r.log, expect);
        CHECK(wsx_close_code_valid(valid[i]));
    }
    /* Invalid codes: 0-999, 1004-1006, 1015, 1016-2999, >= 5000. */
    static const unsigned invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 6000, 65535};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        pl[0] = (uint8_t)(invalid[i] >> 8);
        pl[1] = (uint8_t)invalid[i];
        n = mk(f, 0x88, pl, 2, true);
        expect_error(&server_opts, f, n, WSX_EPROTO, 1002, "invalid close code");
        CHECK(!wsx_close_code_valid(invalid[i]));
    }
    /* Reason must be UTF-8. */
    size_t pn = wsx_close_payload(pl, 1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce", 10);
    n = mk(f, 0x88, pl, pn, true);
    expect_error(&server_opts, f, n, WSX_EINVALDATA, 1007, "invalid UTF-8 in close reason");
    pn = wsx_close_payload(pl, 1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11);
    n = mk(f, 0x88, pl, pn, true);
    run(&server_opts, f, n, NULL, &r);
    CHECK_INT(r.err, 0);
    CHECK_INT(r.events, 1);
}

TEST(close_payload_builder)
{
    uint8_t pl[WSX_MAX_CONTROL];
    CHECK_INT(wsx_close_payload(pl, 0, "ignored", 7), 0);
    CHECK_INT(wsx_close_payload(pl, 1000, NULL, 0), 2);
    CHECK_INT(pl[0], 0x03);
    CHECK_INT(pl[1], 0xE8);
    /* 200 bytes of 2-byte characters: cut to 122 (not 123, which would split one). */
    char reason[200];
    for (int i = 0; i < 200; i += 2) {
        reason[i] = (char)0xC3;
        reason[i + 1] = (char)0xA9;
    }
    size_t n = wsx_close_payload(pl, 1001, reason, sizeof reason);
    CHECK_INT(n, 2 + 122);
    CHECK(wsx_utf8_valid(pl + 2, n - 2));
    char ascii[200];
    memset(ascii, 'a', sizeof ascii);
    CHECK_INT(wsx_close_payload(pl, 1001, ascii, sizeof ascii), 125);
}

TEST(utf8_in_text)
{
    uint8_t f[256];
    /* Invalid byte: fails at once, even before the message ends. */
    size_t n = mk(f, 0x01, "ab\xff", 3, true);
    expect_error(&server_opts, f, n, WSX_EINVALDATA, 1007, "invalid UTF-8 in text message");
    /* A 4-byte sequence split across two fragments is valid. */
    n = mk(f, 0x01, "\xf0\x9f", 2, true);
    n += mk(f + n, 0x80, "\x98\x80", 2, true);
    run_result r;
    run(&server_opts, f, n, NULL, &r);
    CHECK_INT(r.err, 0);
    CHECK_INT(r.events, 2);
    /* ... and split across three, with a ping between. */
    n = mk(f, 0x01, "\xf0", 1, true);
    n += mk(f + n, 0x00, "\x9f\x98", 2, true);
    n += mk(f + n, 0x89, "", 0, true);
    n += mk(f + n, 0x80, "\x80", 1, true);
    char expect[64];
    snprintf(expect, sizeof expect, "PING:|T:<4:%08x>|",
             fnv((const uint8_t *)"\xf0\x9f\x98\x80", 4));
    check_all_splits(&server_opts, f, n, expect);
    /* A message that ends inside a sequence. */
    n = mk(f, 0x01, "\xf0\x9f", 2, true);
    n += mk(f + n, 0x80, "\x98", 1, true);
    expect_error(&server_opts, f, n, WSX_EINVALDATA, 1007,
                 "text message ends inside a UTF-8 sequence");
    n = mk(f, 0x01, "\xe2\x82", 2, true);
    n += mk(f + n, 0x80, "", 0, true);
    expect_error(&server_opts, f, n, WSX_EINVALDATA, 1007,
                 "text message ends inside a UTF-8 sequence");
    /* Binary messages are not checked. */
    n = mk(f, 0x82, "\xff\xfe", 2, true);
    run(&server_opts, f, n, NULL, &r);
    CHECK_INT(r.err, 0);
    /* A surrogate fails on its second byte, in the fragment that carries it. */
    n = mk(f, 0x01, "ok\xed", 3, true);
    n += mk(f + n, 0x80, "\xa0\x80", 2, true);
    run(&server_opts, f, n, NULL, &r);
    CHECK_INT(r.err, WSX_EINVALDATA);
}

TEST(size_limits)
{
    wsx_parser_opts o = {.role = WSX_ROLE_SERVER, .max_frame = 100, .max_message = 150};
    uint8_t f[1024], data[200];
    memset(data, 'a', sizeof data);
    size_t n = mk(f, 0x82, data, 100, true);
    run_result r;
    run(&o, f, n, NULL, &r);
    CHECK_INT(r.err, 0);
    n = mk(f, 0x82, data, 101, true);
    expect_error(&o, f, n, WSX_ETOOBIG, 1009, "frame exceeds the size limit");
    /* The running total: 100 + 50 fits, 100 + 51 does not — detected on the header. */
    n = mk(f, 0x02, data, 100, true);
    n += mk(f + n, 0x80, data, 50, true);
    run(&o, f, n, NULL, &r);
    CHECK_INT(r.err, 0);
    n = mk(f, 0x02, data, 100, true);
    size_t second = n;
    n += mk(f + n, 0x80, data, 51, true);
    expect_error(&o, f, n, WSX_ETOOBIG, 1009, "message exceeds the size limit");
    /* Only the header of the second frame is needed to fail. */
    wsx_parser p;
    wsx_parser_init(&p, &o);
    wsx_event ev;
    CHECK_INT(wsx_parser_feed(&p, f, second, &ev), (ptrdiff_t)second);
    CHECK_INT(wsx_parser_feed(&p, f + second, 6, &ev), WSX_ETOOBIG);
    /* Control frames do not count towards the message. */
    n = mk(f, 0x02, data, 100, true);
    n += mk(f + n, 0x89, data, 100, true);
    n += mk(f + n, 0x80, data, 50, true);
    run(&o, f, n, NULL, &r);
    CHECK_INT(r.err, 0);
    /* After a failure the parser stays failed. */
    CHECK_INT(wsx_parser_feed(&p, f, n, &ev), WSX_ETOOBIG);
    CHECK_INT(wsx_parser_close_code(&p), 1009);
}

/* max_fragments: a message of exactly that many frames passes, one frame more fails with
 * 1009 on that frame's header; empty continuations count, control frames do not. */
TEST(fragment_limit)
{
    wsx_parser_opts o = {.role = WSX_ROLE_SERVER, .max_fragments = 4};
    uint8_t f[1024];
    /* "ab" + 2 empty continuations (a ping between them) + "c": 4 frames. */
    size_t n = mk(f, 0x01, "ab", 2, true);
    n += mk(f + n, 0x00, "", 0, true);
    n += mk(f + n, 0x89, "p", 1, true);
    n += mk(f + n, 0x00, "", 0, true);
    size_t before_last = n;
    n += mk(f + n, 0x80, "c", 1, true);
    check_all_splits(&o, f, n, "PING:p|T:abc|");
    /* The next message starts a new count. */
    size_t m = n + mk(f + n, 0x02, "x", 1, true);
    m += mk(f + m, 0x00, "", 0, true);
    m += mk(f + m, 0x00, "", 0, true);
    m += mk(f + m, 0x80, "y", 1, true);
    check_all_splits(&o, f, m, "PING:p|T:abc|B:xy|");
    /* A fifth frame fails, empty or not, final or not. */
    n = before_last + mk(f + before_last, 0x00, "", 0, true);
    n += mk(f + n, 0x80, "c", 1, true);
    expect_error(&o, f, n, WSX_ETOOBIG, 1009, "message has too many fragments");
    n = before_last + mk(f + before_last, 0x00, "c", 1, true);
    n += mk(f + n, 0x80, "", 0, true);
    expect_error(&o, f, n, WSX_ETOOBIG, 1009, "message has too many fragments");
    /* One frame is always allowed; 0 means no limit: 100 000 empty continuations pass. */
    o.max_fragments = 1;
    n = mk(f, 0x81, "one", 3, true);
    check_all_splits(&o, f, n, "T:one|");
    n = mk(f, 0x01, "on", 2, true);
    n += mk(f + n, 0x80, "e", 1, true);
    expect_error(&o, f, n, WSX_ETOOBIG, 1009, "message has too many fragments");
    wsx_parser p;
    wsx_parser_init(&p, &server_opts);
    wsx_event ev;
    n = mk(f, 0x02, "", 0, true);
    CHECK_INT(wsx_parser_feed(&p, f, n, &ev), (ptrdiff_t)n);
    n = mk(f, 0x00, "", 0, true);
    for (int i = 0; i < 100000; i++) {
        uint8_t g[16];
        memcpy(g, f, n);
        if (wsx_parser_feed(&p, g, n, &ev) != (ptrdiff_t)n) {
            CHECK(!"an empty continuation was refused without a limit");
            break;
        }
    }
    CHECK(wsx_parser_in_message(&p));
    CHECK(sizeof(wsx_parser) <= 40);
}

/* A long fragmented message with control frames between fragments, fed one byte at a
 * time, in odd chunks and whole: every way gives the same events. */
TEST(long_fragmented_message_any_split)
{
    size_t total = 200000;
    uint8_t *text = malloc(total);
    for (size_t i = 0; i < total; i++)
        text[i] = (uint8_t)('a' + i % 26);
    /* Put multi-byte characters across fragment boundaries. */
    static const char euro[] = "\xe2\x82\xac";
    for (size_t i = 997; i + 3 < total; i += 1000)
        memcpy(text + i, euro, 3);
    uint8_t *stream = malloc(total + 100000);
    size_t n = 0, off = 0, k = 0;
    while (off < total) {
        size_t chunk = 1 + (k * 7919) % 5000;
        if (chunk > total - off) chunk = total - off;
        uint8_t b0 = (uint8_t)((off == 0 ? WSX_OP_TEXT : WSX_OP_CONT) |
                               (off + chunk == total ? WSX_FIN : 0));
        n += mk(stream + n, b0, text + off, chunk, true);
        if (k % 5 == 0) n += mk(stream + n, 0x89, "k", 1, true);
        off += chunk;
        k++;
    }
    n += mk(stream + n, 0x88,
            "\x03\xe8"
            "done",
            6, true);
    run_result r1, r2, r3;
    run(&server_opts, stream, n, NULL, &r1);
    run(&server_opts, stream, n, one_byte, &r2);
    run(&server_opts, stream, n, odd_chunks, &r3);
    CHECK_INT(r1.err, 0);
    CHECK_STR(r2.log, r1.log);
    CHECK_STR(r3.log, r1.log);
    char expect[64];
    snprintf(expect, sizeof expect, "T:<%zu:%08x>|", total, fnv(text, total));
    CHECK(strstr(r1.log, expect) != NULL);
    CHECK(strstr(r1.log, "CLOSE:1000:done|") != NULL);
    free(text);
    free(stream);
}

TEST(guard_page_inputs)
{
    /* Incomplete inputs that end at a PROT_NONE page: the parser must not read past them. */
    uint8_t f[64];
    size_t n = mk(f, 0x81, "Hello, world", 12, true);
    for (size_t len = 0; len <= n; len++) {
        test_guard g;
        uint8_t *p = test_guard_copy(&g, f, len);
        wsx_parser ps;
        wsx_parser_init(&ps, &server_opts);
        wsx_event ev;
        ptrdiff_t rc = wsx_parser_feed(&ps, p, len, &ev);
        CHECK(rc >= 0);
        CHECK(rc <= (ptrdiff_t)len);
        test_guard_free(&g);
    }
    /* Long header forms cut short. */
    static const uint8_t h127[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4};
    for (size_t len = 0; len < sizeof h127; len++) {
        test_guard g;
        uint8_t *p = test_guard_copy(&g, h127, len);
        wsx_parser ps;
        wsx_parser_init(&ps, &server_opts);
        wsx_event ev;
        CHECK_INT(wsx_parser_feed(&ps, p, len, &ev), 0);
        test_guard_free(&g);
    }
}

TEST(mask_matches_bytewise)
{
    /* Lengths up to 1200 take the 128-byte vector loop (from 512 bytes, with AVX2) and every
     * tail after it; starts 0..8 give every alignment of the data against the key. */
    uint8_t buf[1300], ref[1300];
    static const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    for (size_t start = 0; start < 9; start++) {
        for (size_t len = 0; len < 1200; len += (len < 40 ? 1 : len < 500 ? 17 : 7)) {
            for (size_t off = 0; off < 4; off++) {
                for (size_t i = 0; i < sizeof buf; i++)
                    buf[i] = ref[i] = (uint8_t)(i * 31 + 7);
                for (size_t i = 0; i < len; i++)
                    ref[start + i] ^= key[(off + i) & 3];
                wsx_mask(buf + start, len, key, off);
                if (memcmp(buf, ref, sizeof buf) != 0) {
                    CHECK_MEM(buf, sizeof buf, ref, sizeof ref);
                    return;
                }
            }
        }
    }
    CHECK(1);
}

TEST(frame_write_limits)
{
    uint8_t out[200], big[130] = {0};
    CHECK_INT(wsx_frame_write(out, sizeof out, 0x89, big, 126, NULL), WSX_EINVAL);
    CHECK_INT(wsx_frame_write(out, 5, 0x81, (const uint8_t *)"Hello", 5, NULL), WSX_ENOSPC);
    CHECK_INT(wsx_frame_write(out, 7, 0x81, (const uint8_t *)"Hello", 5, NULL), 7);
}

TEST(maskgen)
{
    wsx_maskgen g;
    wsx_maskgen_init(&g);
    uint8_t seen[200][4];
    int same = 0;
    for (int i = 0; i < 200; i++) {
        CHECK_INT(wsx_maskgen_next(&g, seen[i]), 0);
        if (i && memcmp(seen[i], seen[i - 1], 4) == 0) same++;
    }
    /* 200 keys span a pool refill; consecutive equal 32-bit keys would be a broken source. */
    CHECK_INT(same, 0);
    uint8_t a[16], b[16];
    CHECK_INT(wsx_random_bytes(a, sizeof a), 0);
    CHECK_INT(wsx_random_bytes(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

int main(void)
{
    RUN(rfc_examples);
    RUN(lengths);
    RUN(length_top_bit);
    RUN(length_4gib_streams);
    RUN(masking_rules);
    RUN(reserved_opcodes);
    RUN(rsv_bits);
    RUN(control_frame_rules);
    RUN(fragmentation_rules);
    RUN(close_frames);
    RUN(close_payload_builder);
    RUN(utf8_in_text);
    RUN(size_limits);
    RUN(fragment_limit);
    RUN(long_fragmented_message_any_split);
    RUN(guard_page_inputs);
    RUN(mask_matches_bytewise);
    RUN(frame_write_limits);
    RUN(maskgen);
    return test_summary("frame");
}
