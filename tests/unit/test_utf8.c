/* Incremental UTF-8 validation (RFC 3629). */
#include "test.h"
#include "wsx/proto.h"

/* A slow, obviously correct reference: decode each code point and check its range. */
static int ref_state(const uint8_t *s, size_t n)
{
    /* Returns 0 valid, 1 invalid, 2 valid prefix (truncated sequence at the end). */
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 1;
        }
        size_t j = 1;
        for (; j <= need && i + j < n; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 1;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (j <= need) {
            /* Truncated: is what we have a prefix of some valid sequence? Try completing
             * with each continuation byte value and see if any completion is valid. */
            uint8_t tmp[4];
            memcpy(tmp, s + i, n - i);
            for (int b = 0x80; b <= 0xBF; b++) {
                for (size_t k = n - i; k <= need; k++)
                    tmp[k] = (uint8_t)b;
                /* Complete the remaining bytes with 0x80..0xBF choices: one free byte is
                 * enough to decide for the ranges that matter (the second byte). */
                if (ref_state(tmp, need + 1) == 0) return 2;
            }
            return 1;
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 1;
        i += need + 1;
    }
    return 0;
}

static int wsx_kind(uint32_t st)
{
    return st == WSX_UTF8_ACCEPT ? 0 : st == WSX_UTF8_REJECT ? 1 : 2;
}

static void valid(const char *s)
{
    size_t n = strlen(s);
    CHECK(wsx_utf8_valid((const uint8_t *)s, n));
    /* Every split gives the same verdict, and the middle is "in a sequence" or accept. */
    for (size_t k = 0; k <= n; k++) {
        uint32_t st = wsx_utf8_feed(WSX_UTF8_ACCEPT, (const uint8_t *)s, k);
        CHECK(st != WSX_UTF8_REJECT);
        st = wsx_utf8_feed(st, (const uint8_t *)s + k, n - k);
        CHECK_INT(st, WSX_UTF8_ACCEPT);
    }
}

static void invalid_at(const char *s, size_t n, size_t fail_at)
{
    /* Rejected once byte fail_at (0-based) is seen, not before. */
    for (size_t k = 0; k <= n; k++) {
        uint32_t st = wsx_utf8_feed(WSX_UTF8_ACCEPT, (const uint8_t *)s, k);
        if (k <= fail_at)
            CHECK(st != WSX_UTF8_REJECT);
        else
            CHECK_INT(st, WSX_UTF8_REJECT);
    }
    CHECK(!wsx_utf8_valid((const uint8_t *)s, n));
}

TEST(boundaries_valid)
{
    CHECK(wsx_utf8_valid((const uint8_t *)"\0", 1));
    valid("\x7f");
    valid("\xc2\x80");                                     /* U+0080 */
    valid("\xdf\xbf");                                     /* U+07FF */
    valid("\xe0\xa0\x80");                                 /* U+0800 */
    valid("\xed\x9f\xbf");                                 /* U+D7FF */
    valid("\xee\x80\x80");                                 /* U+E000 */
    valid("\xef\xbf\xbf");                                 /* U+FFFF */
    valid("\xf0\x90\x80\x80");                             /* U+10000 */
    valid("\xf4\x8f\xbf\xbf");                             /* U+10FFFF */
    valid("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"); /* "kosme" in Greek */
    valid("");
    CHECK(wsx_utf8_valid(NULL, 0));
}

TEST(boundaries_invalid)
{
    invalid_at("\x80", 1, 0); /* stray continuation */
    invalid_at("\xbf", 1, 0);
    invalid_at("\xc0\x80", 2, 0); /* overlong 2-byte */
    invalid_at("\xc1\xbf", 2, 0);
    invalid_at("\xe0\x80\x80", 3, 1); /* overlong 3-byte */
    invalid_at("\xe0\x9f\xbf", 3, 1);
    invalid_at("\xf0\x80\x80\x80", 4, 1); /* overlong 4-byte */
    invalid_at("\xf0\x8f\xbf\xbf", 4, 1);
    invalid_at("\xed\xa0\x80", 3, 1);     /* U+D800 */
    invalid_at("\xed\xbf\xbf", 3, 1);     /* U+DFFF */
    invalid_at("\xf4\x90\x80\x80", 4, 1); /* U+110000 */
    invalid_at("\xf5\x80\x80\x80", 4, 0);
    invalid_at("\xff", 1, 0);
    invalid_at("\xfe", 1, 0);
    invalid_at("\xe2\x28\xa1", 3, 1); /* missing continuation */
    invalid_at("abc\xc2"
               "d",
               5, 4);
    /* Truncated at the end: not rejected, but not complete. */
    CHECK_INT(wsx_kind(wsx_utf8_feed(0, (const uint8_t *)"\xf0\x9f\x98", 3)), 2);
    CHECK(!wsx_utf8_valid((const uint8_t *)"\xf0\x9f\x98", 3));
    /* REJECT is sticky. */
    CHECK_INT(wsx_utf8_feed(WSX_UTF8_REJECT, (const uint8_t *)"a", 1), WSX_UTF8_REJECT);
}

TEST(ascii_fast_path)
{
    /* A bad byte at every position of a long ASCII run is found. */
    uint8_t s[100];
    for (size_t pos = 0; pos < sizeof s; pos++) {
        memset(s, 'x', sizeof s);
        s[pos] = 0x80;
        CHECK_INT(wsx_utf8_feed(0, s, sizeof s), WSX_UTF8_REJECT);
        s[pos] = 0xC3;
        if (pos + 1 < sizeof s) s[pos + 1] = 0xA9;
        /* A 2-byte character anywhere is fine; a lead byte at the very end is a prefix. */
        CHECK_INT(wsx_kind(wsx_utf8_feed(0, s, sizeof s)), pos + 1 < sizeof s ? 0 : 2);
    }
}

TEST(differential_random)
{
    /* Random strings biased towards interesting bytes, every prefix, against the reference. */
    static const uint8_t pick[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                   0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                                   0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
    uint32_t seed = 12345;
    int mismatches = 0;
    for (int iter = 0; iter < 200000 && mismatches < 5; iter++) {
        uint8_t s[8];
        size_t n = 1 + (seed >> 7) % 8;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = pick[(seed >> 16) % sizeof pick];
        }
        int want = ref_state(s, n);
        int got = wsx_kind(wsx_utf8_feed(0, s, n));
        if (want != got) {
            mismatches++;
            TEST_FAIL_("mismatch: ref %d wsx %d for %zu bytes starting %02x %02x", want, got, n,
                       s[0], n > 1 ? s[1] : 0);
        }
        /* Byte at a time agrees with whole. */
        uint32_t st = 0;
        for (size_t i = 0; i < n; i++)
            st = wsx_utf8_feed(st, s + i, 1);
        if (wsx_kind(st) != got) {
            mismatches++;
            TEST_FAIL_("byte-at-a-time differs");
        }
    }
    CHECK_INT(mismatches, 0);
}

/* Long inputs take the vector path (64 bytes and more, on CPUs with AVX2): the same verdicts
 * as the reference and as byte-at-a-time feeding, for text with every kind of character,
 * corrupted at every position with every interesting byte, and cut at every point. */
static const char *const pieces[] = {"a",
                                     "Z ",
                                     "\xc3\xa9",
                                     "\xc2\x80",
                                     "\xdf\xbf",
                                     "\xe0\xa0\x80",
                                     "\xe2\x82\xac",
                                     "\xed\x9f\xbf",
                                     "\xee\x80\x80",
                                     "\xef\xbf\xbf",
                                     "\xf0\x90\x80\x80",
                                     "\xf0\x9f\x98\x80",
                                     "\xf3\xbf\xbf\xbf",
                                     "\xf4\x8f\xbf\xbf",
                                     "0123456789abcdef0123456789abcdef"};

static size_t make_text(uint8_t *buf, size_t cap, uint32_t *seed)
{
    size_t n = 0;
    for (;;) {
        *seed = *seed * 1103515245u + 12345u;
        const char *p = pieces[(*seed >> 16) % (sizeof pieces / sizeof *pieces)];
        size_t l = strlen(p);
        if (n + l > cap) {
            memset(buf + n, 'a', cap - n); /* pad with ASCII to exactly cap */
            return cap;
        }
        memcpy(buf + n, p, l);
        n += l;
    }
}

static int whole_vs_bytes(const uint8_t *s, size_t n)
{
    uint32_t whole = wsx_utf8_feed(WSX_UTF8_ACCEPT, s, n), st = WSX_UTF8_ACCEPT;
    for (size_t i = 0; i < n; i++)
        st = wsx_utf8_feed(st, s + i, 1);
    return whole == st ? wsx_kind(whole) : -1;
}

TEST(differential_long)
{
    static const uint8_t pick[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                   0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                                   0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
    uint32_t seed = 777;
    int bad = 0;
    uint8_t s[300];
    for (int round = 0; round < 40; round++) {
        size_t n = make_text(s, 64 + (size_t)round * 6, &seed);
        CHECK_INT(n, 64 + (size_t)round * 6);
        bad += whole_vs_bytes(s, n) != 0 || ref_state(s, n) != 0;
        /* Cut at every point: the first part leaves the state the second part needs. */
        for (size_t k = 0; k <= n; k++) {
            uint32_t st = wsx_utf8_feed(WSX_UTF8_ACCEPT, s, k);
            bad += st == WSX_UTF8_REJECT;
            bad += wsx_utf8_feed(st, s + k, n - k) != WSX_UTF8_ACCEPT;
        }
        /* One byte replaced, at every position, by every interesting byte. */
        for (size_t pos = 0; pos < n; pos++) {
            uint8_t keep = s[pos];
            for (size_t j = 0; j < sizeof pick; j++) {
                s[pos] = pick[j];
                int want = ref_state(s, n), got = whole_vs_bytes(s, n);
                if (want != got && bad++ < 5)
                    TEST_FAIL_("round %d: byte %02x at %zu of %zu: ref %d, wsx %d", round, pick[j],
                               pos, n, want, got);
            }
            s[pos] = keep;
        }
    }
    /* Random bytes from the interesting set, long. */
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 64 + (seed >> 8) % 200;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = (seed >> 28) < 12 ? 'a' : pick[(seed >> 16) % sizeof pick];
        }
        int want = ref_state(s, n), got = whole_vs_bytes(s, n);
        if (want != got && bad++ < 5) TEST_FAIL_("random %d: ref %d, wsx %d", iter, want, got);
    }
    CHECK_INT(bad, 0);
}

int main(void)
{
    RUN(boundaries_valid);
    RUN(boundaries_invalid);
    RUN(ascii_fast_path);
    RUN(differential_random);
    RUN(differential_long);
    return test_summary("utf8");
}
