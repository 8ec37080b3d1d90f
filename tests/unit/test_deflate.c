/* permessage-deflate (RFC 7692): compression, streaming inflation, limits, memory (the
 * negotiation: test_deflate_negotiate.c). */
#define ZLIB_CONST
#include <zlib.h>

#include "test.h"
#include "deflate_test.h"
#include "wsx/deflate.h"
#include "wsx/proto.h"

/* ---- helpers -------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 56);
}

/* Text-like data: words from a small vocabulary, compressible about 3-4x. */
static void fill_text(uint8_t *p, size_t n)
{
    static const char *words[] = {"lorem ", "ipsum ", "dolor ",   "sit ",     "amet, ",
                                  "wsx ",   "frame ", "deflate ", "window\n", "message "};
    size_t i = 0;
    while (i < n) {
        const char *w = words[rng() % 10];
        for (; *w && i < n; w++)
            p[i++] = (uint8_t)*w;
    }
}

/* A sender and a receiver with the same agreement, in opposite roles. */
typedef struct pair {
    wsx_pmd tx, rx;
} pair;

static void pair_init(pair *pr, int tx_role, wsx_pmd_params p, size_t threshold)
{
    wsx_pmd_config c = on();
    c.threshold = threshold;
    CHECK_INT(wsx_pmd_init(&pr->tx, tx_role, &p, &c), 0);
    CHECK_INT(wsx_pmd_init(&pr->rx, tx_role == WSX_ROLE_SERVER ? WSX_ROLE_CLIENT : WSX_ROLE_SERVER,
                           &p, &c),
              0);
}

static void pair_free(pair *pr)
{
    wsx_pmd_free(&pr->tx);
    wsx_pmd_free(&pr->rx);
}

/* Feeds in[0..len) as one message in pieces of `piece` bytes (0: all at once). */
static int inflate_pieces(wsx_pmd *z, const uint8_t *in, size_t len, size_t piece, bool text,
                          uint64_t max, wsx_pmd_buf *out)
{
    if (!piece) piece = len ? len : 1;
    size_t off = 0;
    do {
        size_t n = len - off < piece ? len - off : piece;
        int rc = wsx_pmd_inflate(z, in + off, n, off + n == len, text, max, out);
        if (rc) return rc;
        off += n;
    } while (off < len);
    return 0;
}

/*
 * Sends one message through the pair and checks it arrives intact. Returns the compressed
 * size, or (size_t)-1 when the message went uncompressed.
 */
static size_t round_trip(pair *pr, const uint8_t *msg, size_t len, size_t piece)
{
    wsx_pmd_buf c = {0}, d = {0};
    int rc = wsx_pmd_compress(&pr->tx, msg, len, &c);
    CHECK(rc == 0 || rc == 1);
    size_t clen = (size_t)-1;
    if (rc == 1) {
        clen = c.len;
        CHECK_INT(inflate_pieces(&pr->rx, c.data, c.len, piece, false, 0, &d), 0);
        CHECK_MEM(d.data, d.len, msg, len);
    } else {
        CHECK_INT(c.len, 0);
    }
    wsx_pmd_buf_free(&c);
    wsx_pmd_buf_free(&d);
    return clen;
}

static int inflate_hex(wsx_pmd *z, const uint8_t *in, size_t len, wsx_pmd_buf *out)
{
    return wsx_pmd_inflate(z, in, len, true, false, 0, out);
}

/* ---- RFC 7692 7.2.3 examples ---------------------------------------------------------- */

TEST(rfc_examples)
{
    wsx_pmd_params p = params(false, false, 15, 15);
    wsx_pmd z;
    wsx_pmd_buf out = {0};

    /* 7.2.3.1: "Hello" in one compressed block. */
    static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    CHECK_INT(wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, NULL), 0);
    CHECK_INT(inflate_hex(&z, hello1, sizeof hello1, &out), 0);
    CHECK_STRN(out.data, out.len, "Hello");

    /* 7.2.3.2: a second "Hello" referring to the first through the shared window. */
    static const uint8_t hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    out.len = 0;
    CHECK_INT(inflate_hex(&z, hello2, sizeof hello2, &out), 0);
    CHECK_STRN(out.data, out.len, "Hello");
    wsx_pmd_free(&z);

    /* 7.2.3.3: a stored (uncompressed) block, then the header of the empty stored block
     * whose LEN and NLEN the sender removed. */
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                     0x65, 0x6c, 0x6c, 0x6f, 0x00};
    wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, NULL);
    out.len = 0;
    CHECK_INT(inflate_hex(&z, stored, sizeof stored, &out), 0);
    CHECK_STRN(out.data, out.len, "Hello");
    wsx_pmd_free(&z);

    /* 7.2.3.4: a block with BFINAL set, with and without a trailing byte. */
    static const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    for (size_t n = sizeof final - 1; n <= sizeof final; n++) {
        wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, NULL);
        out.len = 0;
        CHECK_INT(inflate_hex(&z, final, n, &out), 0);
        CHECK_STRN(out.data, out.len, "Hello");
        /* The next message starts a new stream; the window is carried over. */
        out.len = 0;
        CHECK_INT(inflate_hex(&z, hello2, sizeof hello2, &out), 0);
        CHECK_STRN(out.data, out.len, "Hello");
        wsx_pmd_free(&z);
    }

    /* 7.2.3.5: two blocks in one message. */
    static const uint8_t two[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                  0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
    wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, NULL);
    out.len = 0;
    CHECK_INT(inflate_hex(&z, two, sizeof two, &out), 0);
    CHECK_STRN(out.data, out.len, "Hello");
    wsx_pmd_free(&z);

    /* 7.2.3.6: an empty message compresses to a single 0x00. */
    wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, NULL);
    static const uint8_t empty[] = {0x00};
    out.len = 0;
    CHECK_INT(inflate_hex(&z, empty, 1, &out), 0);
    CHECK_INT(out.len, 0);
    CHECK_INT(inflate_hex(&z, hello1, sizeof hello1, &out), 0);
    CHECK_STRN(out.data, out.len, "Hello");
    wsx_pmd_free(&z);

    /* Each example fed one byte at a time, with an empty final piece. */
    const uint8_t *ex[] = {hello1, stored, final, two};
    size_t exn[] = {sizeof hello1, sizeof stored, sizeof final, sizeof two};
    for (size_t e = 0; e < 4; e++) {
        wsx_pmd_init(&z, WSX_ROLE_SERVER, &p, NULL);
        out.len = 0;
        for (size_t i = 0; i < exn[e]; i++)
            CHECK_INT(wsx_pmd_inflate(&z, ex[e] + i, 1, false, true, 5, &out), 0);
        CHECK_INT(wsx_pmd_inflate(&z, NULL, 0, true, true, 5, &out), 0);
        CHECK_STRN(out.data, out.len, "Hello");
        wsx_pmd_free(&z);
    }
    wsx_pmd_buf_free(&out);
}

TEST(compressor_matches_rfc)
{
    /* zlib at the default level produces exactly the RFC's bytes, tail removed. */
    wsx_pmd_params p = params(false, false, 15, 15);
    wsx_pmd_config c = on();
    c.threshold = 0;
    wsx_pmd z;
    wsx_pmd_buf out = {0};
    CHECK_INT(wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, &c), 0);
    CHECK_INT(wsx_pmd_compress(&z, (const uint8_t *)"Hello", 5, &out), 1);
    static const uint8_t hello1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    CHECK_MEM(out.data, out.len, hello1, sizeof hello1);
    out.len = 0;
    CHECK_INT(wsx_pmd_compress(&z, (const uint8_t *)"Hello", 5, &out), 1);
    static const uint8_t hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    CHECK_MEM(out.data, out.len, hello2, sizeof hello2);
    out.len = 0;
    CHECK_INT(wsx_pmd_compress(&z, NULL, 0, &out), 1);
    CHECK_INT(out.len, 1);
    CHECK_INT(out.data[0], 0x00);
    wsx_pmd_free(&z);

    /* Without context takeover the second "Hello" is the first one again. */
    p.client_no_context_takeover = true;
    wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, &c);
    out.len = 0;
    const char *hh = "Hello Hello Hello Hello Hello";
    CHECK_INT(wsx_pmd_compress(&z, (const uint8_t *)hh, strlen(hh), &out), 1);
    size_t first = out.len;
    uint8_t copy[64];
    memcpy(copy, out.data, first);
    out.len = 0;
    CHECK_INT(wsx_pmd_compress(&z, (const uint8_t *)hh, strlen(hh), &out), 1);
    CHECK_MEM(out.data, out.len, copy, first);
    /* An empty message goes uncompressed too. */
    out.len = 0;
    CHECK_INT(wsx_pmd_compress(&z, NULL, 0, &out), 0);
    /* Not smaller than the message: sent as it is. */
    out.len = 0;
    CHECK_INT(wsx_pmd_compress(&z, (const uint8_t *)"Hello", 5, &out), 0);
    CHECK_INT(out.len, 0);
    wsx_pmd_free(&z);
    wsx_pmd_buf_free(&out);
}

/* ---- round trips ---------------------------------------------------------------------- */

TEST(round_trips)
{
    static const size_t sizes[] = {0, 1, 125, 64 * 1024, 1024 * 1024, 16 * 1024 * 1024};
    uint8_t *msg = malloc(16 * 1024 * 1024);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t len = sizes[si];
        for (int kind = 0; kind < 2; kind++) {
            if (kind)
                fill_text(msg, len);
            else
                fill_random(msg, len);
            for (int role = 0; role < 2; role++)
                for (int ctx = 0; ctx < 2; ctx++) {
                    /* The largest size in two of the four combinations, to stay fast. */
                    if (len > 1024 * 1024 && role != ctx) continue;
                    pair pr;
                    wsx_pmd_params p = params(ctx, ctx, 15, 15);
                    pair_init(&pr, role, p, 0);
                    size_t c1 = round_trip(&pr, msg, len, len > 4096 ? 65536 : 7);
                    /* A second one on the same contexts. */
                    size_t c2 = round_trip(&pr, msg, len, 0);
                    if (kind == 1 && len >= 64 * 1024) {
                        /* Text compresses; random data does not. */
                        CHECK(c1 < len / 2);
                        CHECK(c2 < len / 2);
                    }
                    if (ctx && len == 0) CHECK(c1 == (size_t)-1);
                    if (!ctx && len == 0) CHECK_INT(c1, 1);
                    if (ctx && kind == 0 && len) CHECK(c1 == (size_t)-1);
                    pair_free(&pr);
                }
        }
    }
    free(msg);
}

TEST(one_byte_pieces)
{
    uint8_t msg[6000];
    fill_text(msg, sizeof msg);
    for (int ctx = 0; ctx < 2; ctx++) {
        pair pr;
        pair_init(&pr, WSX_ROLE_CLIENT, params(ctx, ctx, 15, 15), 0);
        for (int i = 0; i < 3; i++)
            CHECK(round_trip(&pr, msg, sizeof msg, 1) != (size_t)-1);
        pair_free(&pr);
    }
}

TEST(context_takeover_shrinks_repeats)
{
    uint8_t msg[2000];
    fill_random(msg, sizeof msg / 2);
    fill_text(msg + sizeof msg / 2, sizeof msg / 2);
    pair pr;
    pair_init(&pr, WSX_ROLE_SERVER, params(false, false, 15, 15), 0);
    size_t first = round_trip(&pr, msg, sizeof msg, 0);
    size_t second = round_trip(&pr, msg, sizeof msg, 0);
    CHECK(first != (size_t)-1 && first > 1000);
    CHECK(second < 40);
    /* Many in sequence, each one different, each decoded with the whole history. */
    for (int i = 0; i < 200; i++) {
        msg[rng() % sizeof msg] ^= 0x5a;
        size_t n = round_trip(&pr, msg, sizeof msg, i % 13 + 1);
        CHECK(n < 48);
    }
    pair_free(&pr);

    /* No context takeover: the repeat costs as much as the first. */
    pair_init(&pr, WSX_ROLE_SERVER, params(true, false, 15, 15), 0);
    first = round_trip(&pr, msg, sizeof msg, 0);
    second = round_trip(&pr, msg, sizeof msg, 0);
    CHECK_INT(second, first);
    pair_free(&pr);
}

/* Data with repeats at every distance up to 32 KiB, so a too-small window breaks it. */
static void fill_far_repeats(uint8_t *p, size_t n)
{
    fill_random(p, n < 4096 ? n : 4096);
    for (size_t i = 4096; i < n;) {
        size_t dist = 1 + rng() % (i < 32768 ? i : 32768), run = 4 + rng() % 60;
        for (size_t k = 0; k < run && i < n; k++, i++)
            p[i] = p[i - dist];
        if (i < n) p[i++] = (uint8_t)rng();
    }
}

TEST(window_bits_combinations)
{
    size_t len = 100 * 1024;
    uint8_t *msg = malloc(len);
    fill_far_repeats(msg, len);
    for (int sb = 9; sb <= 15; sb++)
        for (int cb = 9; cb <= 15; cb++) {
            wsx_pmd_params p = params(false, false, sb, cb);
            for (int role = 0; role < 2; role++) {
                pair pr;
                pair_init(&pr, role, p, 0);
                for (int i = 0; i < 3; i++)
                    CHECK(round_trip(&pr, msg + i * 1000, len - 3000, 4096) != (size_t)-1);
                pair_free(&pr);
            }
        }

    /* The window matters: a 15-bit stream does not inflate in a 9-bit window. */
    wsx_pmd tx, rx;
    wsx_pmd_params big = params(false, false, 15, 15), small = params(false, false, 9, 9);
    wsx_pmd_config c = on();
    wsx_pmd_init(&tx, WSX_ROLE_SERVER, &big, &c);
    wsx_pmd_init(&rx, WSX_ROLE_CLIENT, &small, &c);
    wsx_pmd_buf cb = {0}, db = {0};
    CHECK_INT(wsx_pmd_compress(&tx, msg, len, &cb), 1);
    CHECK_INT(wsx_pmd_inflate(&rx, cb.data, cb.len, true, false, 0, &db), WSX_EINVALDATA);
    CHECK_STR(wsx_pmd_error(&rx), "invalid compressed data");
    wsx_pmd_free(&tx);
    wsx_pmd_free(&rx);
    wsx_pmd_buf_free(&cb);
    wsx_pmd_buf_free(&db);
    free(msg);
}

TEST(window_8_never_compresses)
{
    /* A server may answer client_max_window_bits=8, which zlib cannot honour: the client
     * then sends uncompressed, and still inflates what the server sends. */
    wsx_pmd_config c = on();
    wsx_pmd_params p;
    CHECK_INT(accept_str("permessage-deflate; client_max_window_bits=8", &c, &p, NULL), 1);
    pair pr;
    pair_init(&pr, WSX_ROLE_CLIENT, p, 0);
    uint8_t msg[1000];
    fill_text(msg, sizeof msg);
    CHECK(round_trip(&pr, msg, sizeof msg, 0) == (size_t)-1);
    CHECK_INT(wsx_pmd_memory(&pr.tx), 0);
    pair_free(&pr);
    pair_init(&pr, WSX_ROLE_SERVER, p, 0);
    CHECK(round_trip(&pr, msg, sizeof msg, 0) != (size_t)-1);
    pair_free(&pr);

    /* A peer whose 8-bit window is really 9 bits (old zlib) is still understood. */
    z_stream s;
    memset(&s, 0, sizeof s);
    CHECK_INT(deflateInit2(&s, 6, Z_DEFLATED, -9, 8, Z_DEFAULT_STRATEGY), Z_OK);
    uint8_t data[2000], comp[4000];
    fill_far_repeats(data, sizeof data);
    s.next_in = data;
    s.avail_in = sizeof data;
    s.next_out = comp;
    s.avail_out = sizeof comp;
    CHECK_INT(deflate(&s, Z_SYNC_FLUSH), Z_OK);
    size_t clen = sizeof comp - s.avail_out - 4;
    deflateEnd(&s);
    wsx_pmd rx;
    wsx_pmd_params p8 = params(false, false, 15, 8);
    wsx_pmd_init(&rx, WSX_ROLE_SERVER, &p8, NULL);
    wsx_pmd_buf out = {0};
    CHECK_INT(wsx_pmd_inflate(&rx, comp, clen, true, false, 0, &out), 0);
    CHECK_MEM(out.data, out.len, data, sizeof data);
    wsx_pmd_free(&rx);
    wsx_pmd_buf_free(&out);
}

TEST(threshold_and_headroom)
{
    uint8_t msg[200];
    fill_text(msg, sizeof msg);
    wsx_pmd_params p = params(false, false, 15, 15);
    wsx_pmd z;
    CHECK_INT(wsx_pmd_init(&z, WSX_ROLE_SERVER, &p, NULL), 0);
    wsx_pmd_buf out = {0};
    /* Default threshold 64. */
    CHECK_INT(wsx_pmd_compress(&z, msg, 63, &out), 0);
    CHECK(out.data == NULL);
    CHECK_INT(wsx_pmd_memory(&z), 0);
    /* Room reserved in front for the frame header stays untouched. */
    uint8_t *fresh = malloc(WSX_MAX_HEADER);
    memset(fresh, 0xEE, WSX_MAX_HEADER);
    out.data = fresh;
    out.len = out.cap = WSX_MAX_HEADER;
    CHECK_INT(wsx_pmd_compress(&z, msg, 64, &out), 1);
    CHECK(out.len > WSX_MAX_HEADER);
    for (size_t i = 0; i < WSX_MAX_HEADER; i++)
        CHECK_INT(out.data[i], 0xEE);
    size_t plen = out.len - WSX_MAX_HEADER;
    uint8_t *hdr = out.data + WSX_MAX_HEADER - 2;
    CHECK_INT(wsx_frame_header(hdr, WSX_FIN | WSX_RSV1 | WSX_OP_TEXT, plen, NULL), 2);

    /* The frame goes through the parser and back. */
    wsx_parser_opts po = {.role = WSX_ROLE_CLIENT, .rsv_allowed = WSX_RSV1};
    wsx_parser ps;
    wsx_parser_init(&ps, &po);
    wsx_event ev;
    CHECK_INT(wsx_parser_feed(&ps, hdr, plen + 2, &ev), (ptrdiff_t)(plen + 2));
    CHECK_INT(ev.type, WSX_EV_DATA);
    CHECK(ev.compressed && ev.last);
    wsx_pmd rx;
    wsx_pmd_init(&rx, WSX_ROLE_CLIENT, &p, NULL);
    wsx_pmd_buf d = {0};
    CHECK_INT(wsx_pmd_inflate(&rx, ev.data, ev.len, ev.last, true, 1000, &d), 0);
    CHECK_MEM(d.data, d.len, msg, 64);
    wsx_pmd_free(&rx);
    wsx_pmd_free(&z);
    wsx_pmd_buf_free(&out);
    wsx_pmd_buf_free(&d);
}

TEST(compress_buffer_growth)
{
    /* Incompressible data: the buffer ends near the worst case, not at twice it. */
    size_t len = 3 * 1024 * 1024 + 1234;
    uint8_t *msg = malloc(len);
    fill_random(msg, len);
    pair pr;
    pair_init(&pr, WSX_ROLE_SERVER, params(false, false, 15, 15), 0);
    wsx_pmd_buf c = {0};
    CHECK_INT(wsx_pmd_compress(&pr.tx, msg, len, &c), 1);
    CHECK(c.len > len);
    CHECK(c.cap <= len + len / 1000 + 4096);
    wsx_pmd_buf d = {0};
    CHECK_INT(wsx_pmd_inflate(&pr.rx, c.data, c.len, true, false, len, &d), 0);
    CHECK_MEM(d.data, d.len, msg, len);
    CHECK(d.cap == len);
    /* Compressible data: the buffer stays a fraction of the message. */
    fill_text(msg, len);
    c.len = 0;
    wsx_pmd_buf_free(&c);
    CHECK_INT(wsx_pmd_compress(&pr.tx, msg, len, &c), 1);
    CHECK(c.cap <= len / 2);
    wsx_pmd_buf_free(&c);
    wsx_pmd_buf_free(&d);
    pair_free(&pr);
    free(msg);
}

TEST(struct_can_move)
{
    /* The state may be copied elsewhere between calls (zlib's lives on the heap). */
    pair pr;
    pair_init(&pr, WSX_ROLE_SERVER, params(false, false, 15, 15), 0);
    uint8_t msg[3000];
    fill_text(msg, sizeof msg);
    round_trip(&pr, msg, sizeof msg, 0);
    pair moved;
    memcpy(&moved, &pr, sizeof pr);
    memset(&pr, 0, sizeof pr);
    CHECK(round_trip(&moved, msg, sizeof msg, 100) < 40);
    pair_free(&moved);
}

/* ---- limits and bad input ------------------------------------------------------------- */

/*
 * A permessage-deflate payload inflating to `total` zero bytes (a multiple of 1 MiB),
 * malloc'd. 1 MiB of zeros is compressed once; since that ends in a sync flush (non-final
 * blocks, byte-aligned) and refers to nothing before it, copies of it chain into one valid
 * stream.
 */
static uint8_t *make_bomb(size_t total, size_t *clen)
{
    static uint8_t zeros[1 << 20];
    uint8_t unit[16384];
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    s.next_in = zeros;
    s.avail_in = sizeof zeros;
    s.next_out = unit;
    s.avail_out = sizeof unit;
    if (deflate(&s, Z_SYNC_FLUSH) != Z_OK || s.avail_in || !s.avail_out) abort();
    size_t ulen = sizeof unit - s.avail_out, copies = total / sizeof zeros;
    deflateEnd(&s);
    uint8_t *out = malloc(ulen * copies);
    for (size_t i = 0; i < copies; i++)
        memcpy(out + i * ulen, unit, ulen);
    *clen = ulen * copies - 4;
    return out;
}

TEST(decompression_bomb)
{
    size_t clen = 0;
    double t0 = test_now_();
    uint8_t *bomb = make_bomb((size_t)1 << 30, &clen);
    double t_make = test_now_() - t0;
    CHECK(bomb != NULL);
    CHECK(clen < 1100 * 1024);
    printf("bomb: 1 GiB of zeros in %zu bytes (built in %.2f s)\n", clen, t_make);

    const uint64_t limit = 16u << 20;
    wsx_pmd z;
    wsx_pmd_params p = params(false, false, 15, 15);
    wsx_pmd_init(&z, WSX_ROLE_SERVER, &p, NULL);
    wsx_pmd_buf out = {0};
    t0 = test_now_();
    size_t off = 0, piece = 65536;
    int rc = 0;
    while (off < clen) {
        size_t n = clen - off < piece ? clen - off : piece;
        rc = wsx_pmd_inflate(&z, bomb + off, n, off + n == clen, false, limit, &out);
        off += n;
        if (rc) break;
    }
    double dt = test_now_() - t0;
    CHECK_INT(rc, WSX_ETOOBIG);
    CHECK_STR(wsx_pmd_error(&z), "message too big");
    CHECK_INT(out.len, limit);
    CHECK(out.cap <= limit);
    /* Stopped within the first pieces: 16 MiB of zeros is ~16 KiB compressed. */
    CHECK(off <= 2 * piece);
    CHECK(dt < 1.0);
    for (size_t i = 0; i < out.len; i += 4096)
        CHECK_INT(out.data[i], 0);
    printf("bomb: stopped at %zu bytes after %zu input bytes in %.3f s, buffer %zu bytes\n",
           out.len, off, dt, out.cap);
    /* Failed for good. */
    CHECK_INT(wsx_pmd_inflate(&z, bomb, 10, true, false, limit, &out), WSX_EINVAL);
    wsx_pmd_free(&z);
    wsx_pmd_buf_free(&out);
    free(bomb);
}

TEST(limit_is_exact)
{
    uint8_t msg[10000];
    fill_text(msg, sizeof msg);
    for (int k = 0; k < 3; k++) {
        uint64_t limit = sizeof msg - 1 + (uint64_t)k; /* one under, exact, one over */
        pair pr;
        pair_init(&pr, WSX_ROLE_CLIENT, params(false, false, 15, 15), 0);
        wsx_pmd_buf c = {0}, d = {0};
        CHECK_INT(wsx_pmd_compress(&pr.tx, msg, sizeof msg, &c), 1);
        for (size_t piece = 1; piece <= 4096; piece *= 8) {
            wsx_pmd rx;
            wsx_pmd_params p = params(false, false, 15, 15);
            wsx_pmd_init(&rx, WSX_ROLE_SERVER, &p, NULL);
            d.len = 0;
            int rc = inflate_pieces(&rx, c.data, c.len, piece, true, limit, &d);
            CHECK_INT(rc, k == 0 ? WSX_ETOOBIG : 0);
            CHECK_INT(d.len, k == 0 ? limit : sizeof msg);
            wsx_pmd_free(&rx);
        }
        wsx_pmd_buf_free(&c);
        wsx_pmd_buf_free(&d);
        pair_free(&pr);
    }
    /* The limit counts per message, not per buffer. */
    pair pr;
    pair_init(&pr, WSX_ROLE_CLIENT, params(false, false, 15, 15), 0);
    wsx_pmd_buf c = {0}, d = {0};
    for (int i = 0; i < 5; i++) {
        c.len = 0;
        CHECK_INT(wsx_pmd_compress(&pr.tx, msg, sizeof msg, &c), 1);
        CHECK_INT(wsx_pmd_inflate(&pr.rx, c.data, c.len, true, false, sizeof msg, &d), 0);
    }
    CHECK_INT(d.len, 5 * sizeof msg);
    wsx_pmd_buf_free(&c);
    wsx_pmd_buf_free(&d);
    pair_free(&pr);
}

TEST(corrupt_input)
{
    wsx_pmd_params p = params(false, false, 15, 15);
    wsx_pmd z;
    wsx_pmd_buf out = {0};
    struct {
        const uint8_t *data;
        size_t len;
        const char *why;
    } cases[] = {
        /* BTYPE 11 is reserved. */
        {(const uint8_t *)"\xff\xff\xff", 3, "invalid compressed data"},
        {(const uint8_t *)"\x07", 1, "invalid compressed data"},
        /* A stored block whose NLEN is not the complement of LEN. */
        {(const uint8_t *)"\x00\x05\x00\x00\x00Hello", 10, "invalid compressed data"},
        /* "Hello" cut inside its block. */
        {(const uint8_t *)"\xf2\x48\xcd\xc9", 4, "truncated compressed message"},
        /* A distance reaching before the start of the stream. */
        {(const uint8_t *)"\xf2\x00\x11\x00\x00", 5, "invalid compressed data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, NULL);
        out.len = 0;
        int rc = wsx_pmd_inflate(&z, cases[i].data, cases[i].len, true, false, 0, &out);
        if (rc != WSX_EINVALDATA) TEST_FAIL_("case %zu: rc %d", i, rc);
        CHECK_STR(wsx_pmd_error(&z), cases[i].why);
        CHECK_INT(wsx_err_close_code(rc), 1007);
        CHECK_INT(wsx_pmd_inflate(&z, cases[i].data, cases[i].len, true, false, 0, &out),
                  WSX_EINVAL);
        wsx_pmd_free(&z);
    }

    /* Random garbage never crashes, and never yields more than the limit. */
    uint8_t junk[512];
    int failures = 0;
    for (int i = 0; i < 2000; i++) {
        fill_random(junk, sizeof junk);
        wsx_pmd_init(&z, WSX_ROLE_CLIENT, &p, NULL);
        out.len = 0;
        int rc =
            inflate_pieces(&z, junk, 1 + rng() % sizeof junk, 1 + rng() % 64, false, 1000, &out);
        if (rc) failures++;
        CHECK(out.len <= 1000);
        CHECK(rc == 0 || rc == WSX_EINVALDATA || rc == WSX_ETOOBIG);
        wsx_pmd_free(&z);
    }
    CHECK(failures > 1000);
    wsx_pmd_buf_free(&out);
}

TEST(utf8_in_the_same_pass)
{
    wsx_pmd_params p = params(false, false, 15, 15);
    struct {
        const char *text;
        int rc;
    } cases[] = {
        {"plain ascii text, long enough to be compressed for sure........", 0},
        {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80 caf\xc3\xa9", 0},
        {"bad byte \xff in the middle", WSX_EINVALDATA},
        {"overlong \xc0\xaf", WSX_EINVALDATA},
        {"surrogate \xed\xa0\x80", WSX_EINVALDATA},
        {"incomplete at the end \xe2\x82", WSX_EINVALDATA},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair pr;
        pair_init(&pr, WSX_ROLE_SERVER, p, 0);
        wsx_pmd_buf c = {0}, d = {0};
        const uint8_t *m = (const uint8_t *)cases[i].text;
        size_t n = strlen(cases[i].text);
        CHECK_INT(wsx_pmd_compress(&pr.tx, m, n, &c), 1);
        /* Byte by byte, so multi-byte characters straddle the pieces. */
        int rc = inflate_pieces(&pr.rx, c.data, c.len, 1, true, 0, &d);
        if (rc != cases[i].rc) TEST_FAIL_("case %zu: rc %d", i, rc);
        if (rc) CHECK_STR(wsx_pmd_error(&pr.rx), "invalid UTF-8");
        if (!rc) CHECK_MEM(d.data, d.len, m, n);
        /* As binary, anything goes. */
        wsx_pmd rx;
        wsx_pmd_init(&rx, WSX_ROLE_CLIENT, &p, NULL);
        d.len = 0;
        CHECK_INT(inflate_pieces(&rx, c.data, c.len, 3, false, 0, &d), 0);
        CHECK_MEM(d.data, d.len, m, n);
        wsx_pmd_free(&rx);
        wsx_pmd_buf_free(&c);
        wsx_pmd_buf_free(&d);
        pair_free(&pr);
    }
}

/* ---- memory --------------------------------------------------------------------------- */

TEST(memory_and_trim)
{
    uint8_t msg[4000];
    fill_text(msg, sizeof msg);
    struct {
        int bits, mem_level;
    } cfgs[] = {{15, 8}, {15, 1}, {9, 1}, {12, 4}};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        wsx_pmd_config c = on();
        c.mem_level = cfgs[i].mem_level;
        c.threshold = 0;
        int b = cfgs[i].bits;
        wsx_pmd_params p = params(false, false, b, b);
        wsx_pmd tx, rx;
        wsx_pmd_init(&tx, WSX_ROLE_SERVER, &p, &c);
        wsx_pmd_init(&rx, WSX_ROLE_CLIENT, &p, &c);
        CHECK_INT(wsx_pmd_memory(&tx) + wsx_pmd_memory(&rx), 0);
        wsx_pmd_buf cb = {0}, db = {0};
        CHECK_INT(wsx_pmd_compress(&tx, msg, sizeof msg, &cb), 1);
        CHECK_INT(wsx_pmd_inflate(&rx, cb.data, cb.len, true, false, 0, &db), 0);
        size_t dm = wsx_pmd_memory(&tx), im = wsx_pmd_memory(&rx);
        size_t dexp = ((size_t)1 << (b + 2)) + ((size_t)1 << (cfgs[i].mem_level + 9));
        size_t iexp = ((size_t)1 << b);
        printf("memory: window %d, mem_level %d: deflate %zu bytes (formula %zu), "
               "inflate %zu bytes (formula %zu + ~7 KiB)\n",
               b, cfgs[i].mem_level, dm, dexp, im, iexp);
        CHECK(dm >= dexp && dm <= dexp + 8 * 1024);
        CHECK(im >= iexp && im <= iexp + 12 * 1024);
        /* Context takeover: nothing can go. */
        CHECK_INT(wsx_pmd_trim(&tx), 0);
        CHECK_INT(wsx_pmd_trim(&rx), 0);
        CHECK_INT(wsx_pmd_memory(&tx), dm);
        wsx_pmd_free(&tx);
        wsx_pmd_free(&rx);
        CHECK_INT(wsx_pmd_memory(&tx) + wsx_pmd_memory(&rx), 0);
        wsx_pmd_buf_free(&cb);
        wsx_pmd_buf_free(&db);
    }

    /* Without it, trimming frees everything and the next message works. */
    pair pr;
    pair_init(&pr, WSX_ROLE_CLIENT, params(true, true, 15, 15), 0);
    for (int i = 0; i < 3; i++) {
        CHECK(round_trip(&pr, msg, sizeof msg, 999) != (size_t)-1);
        size_t before = wsx_pmd_memory(&pr.tx) + wsx_pmd_memory(&pr.rx);
        CHECK(before > 0);
        CHECK_INT(wsx_pmd_trim(&pr.tx) + wsx_pmd_trim(&pr.rx), before);
        CHECK_INT(wsx_pmd_memory(&pr.tx) + wsx_pmd_memory(&pr.rx), 0);
    }
    /* Not in the middle of a message. */
    wsx_pmd_buf c = {0}, d = {0};
    CHECK_INT(wsx_pmd_compress(&pr.tx, msg, sizeof msg, &c), 1);
    CHECK_INT(wsx_pmd_inflate(&pr.rx, c.data, c.len / 2, false, false, 0, &d), 0);
    CHECK_INT(wsx_pmd_trim(&pr.rx), 0);
    CHECK_INT(wsx_pmd_inflate(&pr.rx, c.data + c.len / 2, c.len - c.len / 2, true, false, 0, &d),
              0);
    CHECK_MEM(d.data, d.len, msg, sizeof msg);
    CHECK(wsx_pmd_trim(&pr.rx) > 0);
    wsx_pmd_buf_free(&c);
    wsx_pmd_buf_free(&d);
    pair_free(&pr);
}

TEST(init_errors)
{
    wsx_pmd z;
    wsx_pmd_params p = params(false, false, 15, 15);
    CHECK_INT(wsx_pmd_init(&z, 2, &p, NULL), WSX_EINVAL);
    p.server_max_window_bits = 7;
    CHECK_INT(wsx_pmd_init(&z, WSX_ROLE_SERVER, &p, NULL), WSX_EINVAL);
    p = params(false, false, 15, 16);
    CHECK_INT(wsx_pmd_init(&z, WSX_ROLE_SERVER, &p, NULL), WSX_EINVAL);
    p = params(false, false, 8, 8);
    CHECK_INT(wsx_pmd_init(&z, WSX_ROLE_SERVER, &p, NULL), 0);
    wsx_pmd_config c = on();
    c.mem_level = 10;
    CHECK_INT(wsx_pmd_init(&z, WSX_ROLE_SERVER, &p, &c), WSX_EINVAL);
    CHECK(wsx_pmd_error(&z) == NULL);
    wsx_pmd_free(&z);
    wsx_pmd_free(&z); /* twice is harmless */
}

int main(void)
{
    RUN(rfc_examples);
    RUN(compressor_matches_rfc);
    RUN(round_trips);
    RUN(one_byte_pieces);
    RUN(context_takeover_shrinks_repeats);
    RUN(window_bits_combinations);
    RUN(window_8_never_compresses);
    RUN(threshold_and_headroom);
    RUN(compress_buffer_growth);
    RUN(struct_can_move);
    RUN(decompression_bomb);
    RUN(limit_is_exact);
    RUN(corrupt_input);
    RUN(utf8_in_the_same_pass);
    RUN(memory_and_trim);
    RUN(init_errors);
    return test_summary("deflate");
}
