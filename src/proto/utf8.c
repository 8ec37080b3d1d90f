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

#include "wsx/proto.h"

enum { R_ANY = 0, R_E0 = 2, R_ED = 3, R_F0 = 4, R_F4 = 5 };

/* Indexed by range id; id 1 is never used so that state 1 can mean REJECT. */
static const uint8_t range_lo[6] = {0x80, 0, 0xA0, 0x80, 0x90, 0x80};
static const uint8_t range_hi[6] = {0xBF, 0, 0xBF, 0x9F, 0xBF, 0x8F};

#define ASCII_MASK 0x8080808080808080ull

uint32_t wsx_utf8_feed(uint32_t state, const uint8_t *s, size_t len)
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
