/*
 * Incremental UTF-8 validation (RFC 3629 section 4 grammar).
 *
 * The state packs the number of continuation bytes still expected (bits 4..5) and which
 * range the next byte must fall in (bits 0..3). The ranges for the byte after a lead byte
 * are narrower than 80..BF for four leads; that is what rejects overlong forms (E0, F0),
 * UTF-16 surrogates (ED) and code points above U+10FFFF (F4) at the earliest byte, which
 * RFC 6455 8.1 asks for ("fail the connection as soon as ... invalid").
 */
#include <string.h>

#include "cpu.h"
#include "wsx/proto.h"

enum { R_ANY = 0, R_E0 = 2, R_ED = 3, R_F0 = 4, R_F4 = 5 };

/* Indexed by range id; id 1 is never used so that state 1 can mean REJECT. */
static const uint8_t range_lo[6] = {0x80, 0, 0xA0, 0x80, 0x90, 0x80};
static const uint8_t range_hi[6] = {0xBF, 0, 0xBF, 0x9F, 0xBF, 0x8F};

#define ASCII_MASK 0x8080808080808080ull

static uint32_t feed_scalar(uint32_t state, const uint8_t *s, size_t len);

#ifdef WSX__HAVE_AVX2_PATHS
/*
 * AVX2: 32 bytes at a time, after Keiser and Lemire, "Validating UTF-8 In Less Than One
 * Instruction Per Byte" (2021). Every error of UTF-8 shows in a pair of adjacent bytes, or in
 * a byte that should be the 3rd or 4th of a sequence and is not a continuation byte. For each
 * byte, three 16-entry tables, looked up by the high and low nibble of the byte before it and
 * the high nibble of the byte itself, give bit sets of the pair errors each nibble allows; a
 * pair is wrong when one bit survives the AND of the three. Continuation after continuation
 * (TWO_CONTS) is an error exactly when the byte two or three places back is not a lead of a
 * 3- or 4-byte sequence, which the XOR with that condition decides.
 */
#include <immintrin.h>

enum {
    TOO_SHORT = 1 << 0,   /* lead byte followed by a non-continuation */
    TOO_LONG = 1 << 1,    /* ASCII followed by a continuation */
    OVERLONG_3 = 1 << 2,  /* E0 followed by 80..9F */
    TOO_LARGE = 1 << 3,   /* F4 followed by 90..BF, or F5..FF followed by 90..BF */
    SURROGATE = 1 << 4,   /* ED followed by A0..BF */
    OVERLONG_2 = 1 << 5,  /* C0 or C1 followed by a continuation */
    TOO_LARGE_8 = 1 << 6, /* F5..FF followed by 80..8F; shares its bit with: */
    OVERLONG_4 = 1 << 6,  /* F0 followed by 80..8F */
    TWO_CONTS = 1 << 7,   /* continuation followed by continuation */
    CARRY = TOO_SHORT | TOO_LONG | TWO_CONTS, /* decided by the high nibbles alone */
};

/* The three tables: by the high nibble of the previous byte, by its low nibble, and by the
 * high nibble of the byte itself. */
/* clang-format off */
static const uint8_t tab_hi1[16] = {
    TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, /* 0-7 */
    TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,                                     /* 8-B */
    TOO_SHORT | OVERLONG_2,                                                         /* C */
    TOO_SHORT,                                                                      /* D */
    TOO_SHORT | OVERLONG_3 | SURROGATE,                                             /* E */
    TOO_SHORT | TOO_LARGE | TOO_LARGE_8 | OVERLONG_4,                               /* F */
};
#define BIG (CARRY | TOO_LARGE | TOO_LARGE_8)
static const uint8_t tab_lo1[16] = {
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4, /* C0 E0 F0 */
    CARRY | OVERLONG_2,                           /* C1 */
    CARRY, CARRY,                                 /* 2, 3 */
    CARRY | TOO_LARGE,                            /* F4 */
    BIG, BIG, BIG, BIG, BIG, BIG, BIG, BIG,       /* F5..FC */
    BIG | SURROGATE,                              /* ED, FD */
    BIG, BIG,                                     /* FE, FF */
};
#define CONT (TOO_LONG | OVERLONG_2 | TWO_CONTS)
static const uint8_t tab_hi2[16] = {
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
    CONT | OVERLONG_3 | TOO_LARGE_8 | OVERLONG_4, /* 80..8F */
    CONT | OVERLONG_3 | TOO_LARGE,                /* 90..9F */
    CONT | SURROGATE | TOO_LARGE,                 /* A0..AF */
    CONT | SURROGATE | TOO_LARGE,                 /* B0..BF */
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,   /* C-F */
};
/* clang-format on */

__attribute__((target("avx2"))) static inline __m256i table(const uint8_t t[16])
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)t));
}

__attribute__((target("avx2"))) static inline __m256i prev_n(__m256i cur, __m256i prev, int n)
{
    /* The block shifted right by n bytes, with the last n bytes of prev coming in. */
    __m256i t = _mm256_permute2x128_si256(prev, cur, 0x21);
    switch (n) {
    case 1:
        return _mm256_alignr_epi8(cur, t, 15);
    case 2:
        return _mm256_alignr_epi8(cur, t, 14);
    default:
        return _mm256_alignr_epi8(cur, t, 13);
    }
}

/* Whether s[0..n) (n a multiple of 32, s at a character boundary) has no error in it; a
 * sequence cut off at the end is not an error here (the caller checks the tail). */
__attribute__((target("avx2"))) static bool valid_avx2(const uint8_t *s, size_t n)
{
    const __m256i hi1 = table(tab_hi1), lo1 = table(tab_lo1), hi2 = table(tab_hi2);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i third = _mm256_set1_epi8((char)(0xE0 - 1));
    const __m256i fourth = _mm256_set1_epi8((char)(0xF0 - 1));
    const __m256i b80 = _mm256_set1_epi8((char)0x80);
    __m256i prev = _mm256_setzero_si256(), err = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 32) {
        __m256i cur = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));
        if (_mm256_movemask_epi8(cur) == 0 && _mm256_movemask_epi8(prev) == 0) {
            prev = cur; /* ASCII after ASCII: nothing to check */
            continue;
        }
        __m256i p1 = prev_n(cur, prev, 1);
        __m256i special = _mm256_and_si256(
            _mm256_and_si256(
                _mm256_shuffle_epi8(hi1, _mm256_and_si256(_mm256_srli_epi16(p1, 4), nib)),
                _mm256_shuffle_epi8(lo1, _mm256_and_si256(p1, nib))),
            _mm256_shuffle_epi8(hi2, _mm256_and_si256(_mm256_srli_epi16(cur, 4), nib)));
        /* 3rd byte of a 3- or 4-byte sequence, or 4th of a 4-byte one: must continue. */
        __m256i lead3 = _mm256_subs_epu8(prev_n(cur, prev, 2), third);
        __m256i lead4 = _mm256_subs_epu8(prev_n(cur, prev, 3), fourth);
        __m256i must = _mm256_cmpgt_epi8(_mm256_or_si256(lead3, lead4), _mm256_setzero_si256());
        err = _mm256_or_si256(err, _mm256_xor_si256(special, _mm256_and_si256(must, b80)));
        prev = cur;
    }
    return _mm256_testz_si256(err, err);
}

/* Below this, the scalar loop (with its ASCII skip) is as fast. */
#define SIMD_MIN 64

uint32_t wsx_utf8_feed(uint32_t state, const uint8_t *s, size_t len)
{
    if (len < SIMD_MIN || state == WSX_UTF8_REJECT || !wsx__cpu_avx2())
        return feed_scalar(state, s, len);
    /* Finish a character left open by the previous call; the bulk starts at a boundary. */
    size_t i = 0;
    while (state != WSX_UTF8_ACCEPT && i < len) {
        state = feed_scalar(state, s + i, 1);
        if (state == WSX_UTF8_REJECT) return state;
        i++;
    }
    size_t n = (len - i) & ~(size_t)31;
    if (n == 0) return feed_scalar(state, s + i, len - i);
    if (!valid_avx2(s + i, n)) return WSX_UTF8_REJECT;
    /* A character cut by the end of the bulk is validated again, whole, by the scalar loop. */
    size_t e = i + n, p = e;
    if (s[e - 1] >= 0xC0)
        p = e - 1;
    else if (s[e - 2] >= 0xE0)
        p = e - 2;
    else if (s[e - 3] >= 0xF0)
        p = e - 3;
    return feed_scalar(WSX_UTF8_ACCEPT, s + p, len - p);
}
#else
uint32_t wsx_utf8_feed(uint32_t state, const uint8_t *s, size_t len)
{
    return feed_scalar(state, s, len);
}
#endif

static uint32_t feed_scalar(uint32_t state, const uint8_t *s, size_t len)
{
    size_t i = 0;
    if (state == WSX_UTF8_REJECT) return state;
    while (i < len) {
        if (state == WSX_UTF8_ACCEPT) {
            /* Text is mostly ASCII: skip it a word at a time. */
            while (len - i >= 16) {
                uint64_t a, b;
                memcpy(&a, s + i, 8);
                memcpy(&b, s + i + 8, 8);
                if ((a | b) & ASCII_MASK) break;
                i += 16;
            }
            if (i == len) break;
            uint8_t c = s[i++];
            if (c < 0x80) continue;
            if (c < 0xC2) return WSX_UTF8_REJECT; /* stray continuation, or overlong C0/C1 */
            if (c < 0xE0) {
                state = (1u << 4) | R_ANY;
            } else if (c < 0xF0) {
                state = (2u << 4) | (c == 0xE0 ? R_E0 : c == 0xED ? R_ED : R_ANY);
            } else if (c < 0xF5) {
                state = (3u << 4) | (c == 0xF0 ? R_F0 : c == 0xF4 ? R_F4 : R_ANY);
            } else {
                return WSX_UTF8_REJECT;
            }
        } else {
            uint8_t c = s[i++];
            uint32_t r = state & 0xF;
            if (c < range_lo[r] || c > range_hi[r]) return WSX_UTF8_REJECT;
            state = ((state >> 4) - 1) << 4;
        }
    }
    return state;
}

bool wsx_utf8_valid(const uint8_t *s, size_t len)
{
    return wsx_utf8_feed(WSX_UTF8_ACCEPT, s, len) == WSX_UTF8_ACCEPT;
}
