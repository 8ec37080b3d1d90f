/*
 * wsx__json_parse (src/sio/json_parse.c) against jansson's json_loadb, which it replaced for
 * speed: on tricky input and on random JSON-ish bytes, both refuse, or both accept and write
 * the same JSON.stringify text. Where they are meant to differ (jansson refuses a NUL in a key,
 * JSON.parse does not), the test says what JSON.stringify prints.
 */
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "sio/json.h"

/* What wsx__json_parse did before: jansson with JSON.parse's allowances. */
static json_t *ref_parse(const uint8_t *s, size_t len)
{
    json_error_t e;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *v = json_loadb((const char *)s, len, flags, &e);
    if (!v && json_error_code(&e) == json_error_numeric_overflow)
        v = json_loadb((const char *)s, len, flags | JSON_DECODE_INT_AS_REAL, &e);
    return v;
}

static int mismatches;

/* Returns whether new accepted. */
static bool same(const uint8_t *s, size_t len)
{
    json_t *a = ref_parse(s, len), *b = wsx__json_parse(s, len);
    wsx__strbuf x = {0}, y = {0};
    bool ok = (a == NULL) == (b == NULL);
    if (ok && a) {
        CHECK_INT(wsx__json_write(&x, a), 0);
        CHECK_INT(wsx__json_write(&y, b), 0);
        ok = x.len == y.len && !memcmp(x.p, y.p, x.len);
    }
    if (!ok && mismatches++ < 10)
        fprintf(stderr, "# differ on '%.*s': jansson %s '%.*s', wsx %s '%.*s'\n", (int)len, s,
                a ? "took" : "refused", (int)x.len, x.p ? x.p : "", b ? "took" : "refused",
                (int)y.len, y.p ? y.p : "");
    CHECK(ok);
    bool took = b != NULL;
    json_decref(a);
    json_decref(b);
    wsx__strbuf_free(&x);
    wsx__strbuf_free(&y);
    return took;
}

static bool same_str(const char *s)
{
    return same((const uint8_t *)s, strlen(s));
}

TEST(tricky)
{
    static const char *const cases[] = {
        "",
        " ",
        "0",
        "-0",
        "-",
        "01",
        "1.",
        ".5",
        "1e",
        "1e+",
        "1E-2",
        "-1.5e300",
        "1e400",
        "-1e400",
        "1e-400",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "[1,2,3]",
        "[1,2,]",
        "[,]",
        "[",
        "]",
        "{}",
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
        "{\"a\":1,\"a\":2,\"b\":3}",
        "{\"b\":1,\"a\":2}",
        "{\"a\" : 1 , \"b\" :2 }",
        "{\"a\":1,}",
        "{\"a\"}",
        "{a:1}",
        "{\"a\":1",
        " \t\r\n[ 1 , \"x\" ] \n",
        "[1] x",
        "[1]]",
        "tru",
        "true",
        "truex",
        "nul",
        "null",
        "false",
        "\"\"",
        "\"abc",
        "\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"",
        "\"\\u0041\\u00e9\\u20ac\"",
        "\"\\u0000x\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83dx\"",
        "\"\\ud83d\\u0041\"",
        "\"\\uZZZZ\"",
        "\"\\u12\"",
        "\"\\x\"",
        "\"a\tb\"",
        "\"a\001b\"",
        "\"\xc3\xa9\"",
        "\"\xc3\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xc0\xaf\"",
        "\"\xe2\x80\xa8\"",
        "{\"\\u00e9\":1,\"\\n\":2}",
        "{\"k\\\"\":\"v\\\"\"}",
        "[0.1,1e21,1.5e-7,5e-324,-0.0,100,1E2]",
        "[\"message-with-ack\",{\"id\":7,\"seq\":12,\"text\":\"hello world\"}]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same_str(cases[i]);
    /* Keys with NUL: jansson refuses them, JSON.parse keeps them (node 20 prints these). */
    static const char *const nul_keys[][2] = {
        {"{\"\\u0000\":1}", "{\"\\u0000\":1}"},
        {"{\"a\\u0000b\":\"\\u0000\",\"a\":2}", "{\"a\\u0000b\":\"\\u0000\",\"a\":2}"},
    };
    for (size_t i = 0; i < 2; i++) {
        json_t *v = wsx__json_parse((const uint8_t *)nul_keys[i][0], strlen(nul_keys[i][0]));
        CHECK(v != NULL);
        wsx__strbuf b = {0};
        if (v) CHECK_INT(wsx__json_write(&b, v), 0);
        CHECK(b.len == strlen(nul_keys[i][1]) && !memcmp(b.p, nul_keys[i][1], b.len));
        json_decref(v);
        wsx__strbuf_free(&b);
    }
    /* Nesting: jansson's limit is 2048 levels. */
    static char deep[2 * 2050 + 1];
    for (int depth = 2047; depth <= 2050; depth++) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        same((const uint8_t *)deep, 2 * (size_t)depth);
    }
}

TEST(random_bytes)
{
    /* Small alphabets make valid and nearly valid text often. */
    static const char alpha[] = "[]{}\",:0123456789-+.eE \\u/tfnrlsa\xc3\xa9\x01";
    static const char *const seeds[] = {
        "[\"message-with-ack\",{\"id\":7,\"seq\":12,\"text\":\"hi\"}]",
        "{\"a\":[1,2.5,-3e2,true,null],\"b\":\"\\u00e9\\n\"}",
        "[\"\\ud83d\\ude00\",0,-0.5,{\"\":{}}]",
    };
    unsigned seed = 12345;
    uint8_t buf[96];
    int took = 0;
    for (int it = 0; it < 200000; it++) {
        size_t len;
        seed = seed * 1103515245u + 12345u;
        if (seed >> 31) {
            const char *s = seeds[(seed >> 8) % 3];
            len = strlen(s);
            memcpy(buf, s, len);
            int muts = 1 + (int)((seed >> 12) % 3);
            for (int m = 0; m < muts; m++) {
                seed = seed * 1103515245u + 12345u;
                buf[(seed >> 8) % len] = (uint8_t)alpha[(seed >> 20) % (sizeof alpha - 1)];
            }
        } else {
            len = 1 + (seed >> 8) % 12;
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                buf[i] = (uint8_t)alpha[(seed >> 16) % (sizeof alpha - 1)];
            }
        }
        took += same(buf, len);
    }
    fprintf(stderr, "# %d of 200000 random inputs were JSON\n", took);
    CHECK(took > 1000);
}

int main(void)
{
    RUN(tricky);
    RUN(random_bytes);
    return test_summary("sio_json");
}
