/*
 * Code points a chat name may not contain: Unicode categories Cf (format: bidi overrides and
 * isolates, zero-width characters, the soft hyphen, tags, ...), Zl and Zp (line and paragraph
 * separators), as ranges sorted by first code point. Unicode 14.0.0, generated with
 *
 *   python3 -c 'import unicodedata as u; print([c for c in range(0x110000)
 *               if u.category(chr(c)) in ("Cf", "Zl", "Zp")])'
 *
 * and merged into ranges. Private to src/chat/chat.c.
 */
#ifndef WSX_CHAT_UNICODE_CF_H
#define WSX_CHAT_UNICODE_CF_H

#include <stdint.h>

static const uint32_t chat_format_ranges[][2] = {
    {0x00AD, 0x00AD},   /* soft hyphen */
    {0x0600, 0x0605},   /* arabic number sign .. arabic number mark above */
    {0x061C, 0x061C},   /* arabic letter mark */
    {0x06DD, 0x06DD},   /* arabic end of ayah */
    {0x070F, 0x070F},   /* syriac abbreviation mark */
    {0x0890, 0x0891},   /* arabic pound mark above .. arabic piastre mark above */
    {0x08E2, 0x08E2},   /* arabic disputed end of ayah */
    {0x180E, 0x180E},   /* mongolian vowel separator */
    {0x200B, 0x200F},   /* zero width space .. right-to-left mark */
    {0x2028, 0x202E},   /* line separator .. right-to-left override */
    {0x2060, 0x2064},   /* word joiner .. invisible plus */
    {0x2066, 0x206F},   /* left-to-right isolate .. nominal digit shapes */
    {0xFEFF, 0xFEFF},   /* zero width no-break space */
    {0xFFF9, 0xFFFB},   /* interlinear annotation anchor .. interlinear annotation terminator */
    {0x110BD, 0x110BD}, /* kaithi number sign */
    {0x110CD, 0x110CD}, /* kaithi number sign above */
    {0x13430, 0x13438}, /* egyptian hieroglyph vertical joiner .. egyptian hieroglyph end segment */
    {0x1BCA0, 0x1BCA3}, /* shorthand format letter overlap .. shorthand format up step */
    {0x1D173, 0x1D17A}, /* musical symbol begin beam .. musical symbol end phrase */
    {0xE0001, 0xE0001}, /* language tag */
    {0xE0020, 0xE007F}, /* tag space .. cancel tag */
};

#endif
