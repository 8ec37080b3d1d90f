/*
 * Unit tests for the sans-IO parts of file serving: the percent-decoder and path cleaning
 * (src/proto/url.c), byte ranges, entity-tag lists, HTTP dates, content types and the
 * precondition order (src/proto/http_file.c). Every parser input is read from a guard-page
 * copy, so a read past its end faults.
 */
#include "proto/http_file.h"
#include "test.h"
#include "wsx/proto.h"

/* ---- percent-decoding ---- */

static ptrdiff_t decode(const char *s, unsigned flags, char *out, size_t cap)
{
    test_guard g;
    size_t len = strlen(s);
    const char *b = (const char *)test_guard_copy(&g, s, len);
    ptrdiff_t rc = wsx_percent_decode(b, len, flags, out, cap);
    test_guard_free(&g);
    return rc;
}

#define CHECK_DECODE(in, flags, want)                                                              \
    do {                                                                                           \
        char o_[256];                                                                              \
        ptrdiff_t got_ = decode(in, flags, o_, sizeof o_);                                         \
        CHECK_INT(got_, (ptrdiff_t)(sizeof(want) - 1));                                            \
        if (got_ >= 0) CHECK_MEM(o_, (size_t)got_, want, sizeof(want) - 1);                        \
    } while (0)

TEST(percent_decode_values)
{
    CHECK_DECODE("", 0, "");
    CHECK_DECODE("abc", 0, "abc");
    CHECK_DECODE("%41%4a%4A%7e", 0, "AJJ~");
    CHECK_DECODE("a%20b", 0, "a b");
    CHECK_DECODE("%00", 0, "\0");
    CHECK_DECODE("%2F%2f", 0, "//");
    CHECK_DECODE("%ff%C3%a9", 0, "\xff\xc3\xa9");
    CHECK_DECODE("a+b", 0, "a+b");
    CHECK_DECODE("a+b%2B", WSX_PCT_PLUS, "a b+");
    char o[8];
    const char *bad[] = {"%", "%4", "%zz", "%4z", "%z4", "a%", "a%2", "%%41", "%g0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(decode(bad[i], 0, o, sizeof o), WSX_EINVAL);
    }
    /* Lenient: a broken escape is kept as it is. */
    CHECK_DECODE("%", WSX_PCT_LENIENT, "%");
    CHECK_DECODE("a%2", WSX_PCT_LENIENT, "a%2");
    CHECK_DECODE("%zz%41", WSX_PCT_LENIENT, "%zzA");
    CHECK_DECODE("%%41", WSX_PCT_LENIENT, "%A");
    CHECK_DECODE("100%+", WSX_PCT_LENIENT | WSX_PCT_PLUS, "100% ");
}

TEST(percent_decode_room)
{
    char o[4];
    CHECK_INT(decode("abcd", 0, o, 4), 4);
    CHECK_INT(decode("abcde", 0, o, 4), WSX_ENOSPC);
    CHECK_INT(decode("%41%42%43%44", 0, o, 4), 4);
    CHECK_INT(decode("%41%42%43%44%45", 0, o, 4), WSX_ENOSPC);
    CHECK_MEM(o, 4, "ABCD", 4); /* what fits is there */
    CHECK_INT(decode("a", 0, o, 0), WSX_ENOSPC);
    CHECK_INT(decode("", 0, o, 0), 0);
    /* In place. */
    char s[] = "x%41%42y+";
    CHECK_INT(wsx_percent_decode(s, strlen(s), WSX_PCT_PLUS, s, sizeof s), 5);
    CHECK_MEM(s, 5, "xABy ", 5);
}

/* ---- path cleaning ---- */

static ptrdiff_t clean(const char *s, char *out, size_t cap)
{
    test_guard g;
    size_t len = strlen(s);
    const char *b = (const char *)test_guard_copy(&g, s, len);
    ptrdiff_t rc = wsx_http_path_clean(b, len, out, cap);
    test_guard_free(&g);
    return rc;
}

TEST(path_clean_accepts)
{
    static const char *const cases[][2] = {
        {"/", "/"},
        {"/a", "/a"},
        {"/a/b/", "/a/b/"},
        {"//a//b//", "/a/b/"},
        {"///", "/"},
        {"/%2fetc%2Fpasswd", "/etc/passwd"},
        {"/with%20space.txt", "/with space.txt"},
        {"/a+b", "/a+b"},
        {"/...", "/..."},
        {"/.a/..b/b../a.b", "/.a/..b/b../a.b"},
        {"/%2e%2e%2e", "/..."},
        {"/%c3%a9t%C3%A9", "/\xc3\xa9t\xc3\xa9"},
        {"/\xc3\xa9", "/\xc3\xa9"},
        {"/a%3fb", "/a?b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        ptrdiff_t n = clean(cases[i][0], out, sizeof out);
        CHECK_INT(n, (ptrdiff_t)strlen(cases[i][1]));
        if (n >= 0) CHECK_STR(out, cases[i][1]);
    }
}

TEST(path_clean_refuses)
{
    static const char *const bad[] = {
        "",
        "a",
        "*",
        "a/b",
        "%2f",
        "/..",
        "/.",
        "/../etc/passwd",
        "/a/..",
        "/a/../b",
        "/a/.",
        "/./a",
        "/a/./b",
        "/%2e%2e",
        "/%2E%2E/x",
        "/%2e",
        "/.%2e/",
        "/..%2f",
        "/..%2Fetc",
        "/a%2f..%2fb",
        "/sub/%2E%2E/%2E%2E/etc/passwd",
        "//..//",
        "/a//../b",
        "/%",
        "/%2",
        "/%zz",
        "/a%00b",
        "/%00",
        "/a\\b",
        "/a%5cb",
        "/a%5C..%5Cb",
        "/a%0db",
        "/a%0ab",
        "/a%0d%0aSet-Cookie:x",
        "/%09",
        "/%7f",
        "/\x01",
        "/a\x7f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[64];
        ptrdiff_t n = clean(bad[i], out, sizeof out);
        if (n != WSX_EINVAL) TEST_FAIL_("path \"%s\" gave %td, expected WSX_EINVAL", bad[i], n);
        test_checks_++;
    }
}

TEST(path_clean_room)
{
    char out[8];
    CHECK_INT(clean("/abcdef", out, 8), 7); /* seven bytes and the NUL */
    CHECK_STR(out, "/abcdef");
    CHECK_INT(clean("/abcdefg", out, 8), WSX_ENOSPC);
    CHECK_INT(clean("/%41%42%43%44%45%46", out, 8), 7);
    CHECK_INT(clean("//////////a", out, 3), WSX_ENOSPC); /* room for the decoded path */
    char wide[12];
    CHECK_INT(clean("//////////a", wide, sizeof wide), 2);
    CHECK_INT(clean("/", out, 1), WSX_ENOSPC);
    CHECK_INT(clean("/", out, 0), WSX_ENOSPC);
}

/* ---- ranges ---- */

static enum wsx__range range(const char *v, uint64_t size, uint64_t *f, uint64_t *l)
{
    test_guard g;
    size_t len = strlen(v);
    const char *b = (const char *)test_guard_copy(&g, v, len);
    enum wsx__range r = wsx__http_range_parse(b, len, size, f, l);
    test_guard_free(&g);
    return r;
}

TEST(range_values)
{
    static const struct {
        const char *v;
        uint64_t size;
        enum wsx__range want;
        uint64_t first, last;
    } cases[] = {
        {"bytes=0-0", 10, WSX__RANGE_ONE, 0, 0},
        {"bytes=9-9", 10, WSX__RANGE_ONE, 9, 9},
        {"bytes=0-", 10, WSX__RANGE_ONE, 0, 9},
        {"bytes=9-", 10, WSX__RANGE_ONE, 9, 9},
        {"bytes=3-5", 10, WSX__RANGE_ONE, 3, 5},
        {"bytes=0-9", 10, WSX__RANGE_ONE, 0, 9},
        {"bytes=0-10", 10, WSX__RANGE_ONE, 0, 9},
        {"bytes=5-99999999999999999999999", 10, WSX__RANGE_ONE, 5, 9},
        {"bytes=-1", 10, WSX__RANGE_ONE, 9, 9},
        {"bytes=-3", 10, WSX__RANGE_ONE, 7, 9},
        {"bytes=-10", 10, WSX__RANGE_ONE, 0, 9},
        {"bytes=-11", 10, WSX__RANGE_ONE, 0, 9},
        {"bytes=-99999999999999999999999", 10, WSX__RANGE_ONE, 0, 9},
        {"Bytes=1-2", 10, WSX__RANGE_ONE, 1, 2},
        {"BYTES=1-2", 10, WSX__RANGE_ONE, 1, 2},
        {"bytes=1-2,", 10, WSX__RANGE_ONE, 1, 2},
        {"bytes=,, 1-2 ,", 10, WSX__RANGE_ONE, 1, 2},
        {"bytes=0-0", 1, WSX__RANGE_ONE, 0, 0},
        {"bytes=-1", 1, WSX__RANGE_ONE, 0, 0},
        {"bytes=18446744073709551614-", UINT64_MAX, WSX__RANGE_ONE, UINT64_MAX - 1, UINT64_MAX - 1},
        /* Not satisfiable: 416. */
        {"bytes=10-", 10, WSX__RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=10-20", 10, WSX__RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=-0", 10, WSX__RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=99999999999999999999999-", 10, WSX__RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=20-30,40-", 10, WSX__RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=1-1", 1, WSX__RANGE_UNSATISFIABLE, 0, 0},
        /* Several ranges: the whole body. */
        {"bytes=0-1,3-4", 10, WSX__RANGE_MANY, 0, 0},
        {"bytes=0-1, 3-4", 10, WSX__RANGE_MANY, 0, 0},
        {"bytes=0-1,20-30", 10, WSX__RANGE_MANY, 0, 0},
        {"bytes=20-30,-1", 10, WSX__RANGE_MANY, 0, 0},
        {"bytes=0-,0-", 10, WSX__RANGE_MANY, 0, 0},
        /* Invalid or another unit: ignored. */
        {"bytes=5-4", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=0-1,5-4", 10, WSX__RANGE_NONE, 0, 0},
        {"items=0-1", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes 0-1", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=,", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=-", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=--1", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=1", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=a-b", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=1-2x", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=1 -2", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=1- 2", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=0-1,x", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=0-1;2-3", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=+1-2", 10, WSX__RANGE_NONE, 0, 0},
        {"bytes=0x1-2", 10, WSX__RANGE_NONE, 0, 0},
        {"", 10, WSX__RANGE_NONE, 0, 0},
        /* Nothing to send of an empty representation. */
        {"bytes=0-", 0, WSX__RANGE_NONE, 0, 0},
        {"bytes=-5", 0, WSX__RANGE_NONE, 0, 0},
        {"bytes=0-0", 0, WSX__RANGE_NONE, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t f = 12345, l = 12345;
        enum wsx__range r = range(cases[i].v, cases[i].size, &f, &l);
        test_checks_++;
        if (r != cases[i].want) {
            TEST_FAIL_("Range \"%s\" on %llu bytes gave %d, expected %d", cases[i].v,
                       (unsigned long long)cases[i].size, (int)r, (int)cases[i].want);
            continue;
        }
        if (r == WSX__RANGE_ONE && (f != cases[i].first || l != cases[i].last))
            TEST_FAIL_("Range \"%s\" gave %llu-%llu, expected %llu-%llu", cases[i].v,
                       (unsigned long long)f, (unsigned long long)l,
                       (unsigned long long)cases[i].first, (unsigned long long)cases[i].last);
        if (r != WSX__RANGE_ONE && (f != 12345 || l != 12345))
            TEST_FAIL_("Range \"%s\" wrote the outputs without a range", cases[i].v);
    }
}

/* ---- entity-tags ---- */

static bool etag_match(const char *list, const char *etag, bool strong)
{
    test_guard g;
    size_t len = strlen(list);
    const char *b = (const char *)test_guard_copy(&g, list, len);
    bool r = wsx__http_etag_match(b, len, etag, strlen(etag), strong);
    test_guard_free(&g);
    return r;
}

TEST(etag_lists)
{
    const char *e = "\"abc\"";
    CHECK(etag_match("\"abc\"", e, false));
    CHECK(etag_match("\"abc\"", e, true));
    CHECK(etag_match("W/\"abc\"", e, false));
    CHECK(!etag_match("W/\"abc\"", e, true));
    CHECK(etag_match("\"x\", \"abc\"", e, false));
    CHECK(etag_match("\"x\",\"abc\"", e, true));
    CHECK(etag_match(" , \"x\" ,, W/\"abc\" , ", e, false));
    CHECK(etag_match("*", e, false));
    CHECK(etag_match("*", e, true));
    CHECK(!etag_match("", e, false));
    CHECK(!etag_match("\"ab\"", e, false));
    CHECK(!etag_match("\"abcd\"", e, false));
    CHECK(!etag_match("abc", e, false));
    CHECK(!etag_match("\"abc", e, false));
    CHECK(!etag_match("w/\"abc\"", e, false)); /* W/ is case-sensitive */
    CHECK(!etag_match("W/", e, false));
    CHECK(!etag_match("\"x\" junk, \"abc\"", e, false)); /* malformed from "junk" on */
    CHECK(!etag_match("\"x\"\"abc\"", e, false));
    /* A comma inside the quotes belongs to the tag. */
    CHECK(etag_match("\"a,b\"", "\"a,b\"", true));
    CHECK(etag_match("\"x\", \"a,b\"", "\"a,b\"", true));
    CHECK(!etag_match("\"a\", \"b\"", "\"a,b\"", false));
    CHECK(!etag_match("\"a,b\"", "\"a\"", false));
    CHECK(!etag_match("\"a,b\"", "\"b\"", false));
}

/* ---- dates ---- */

static int date(const char *s, int64_t *t)
{
    test_guard g;
    size_t len = strlen(s);
    const char *b = (const char *)test_guard_copy(&g, s, len);
    int rc = wsx__http_date_parse(b, len, t);
    test_guard_free(&g);
    return rc;
}

TEST(dates_parse)
{
    int64_t t = 0;
    CHECK_INT(date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    CHECK_INT(t, 784111777);
    t = 0;
    CHECK_INT(date("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
    CHECK_INT(t, 784111777);
    t = 0;
    CHECK_INT(date("Sun Nov  6 08:49:37 1994", &t), 0);
    CHECK_INT(t, 784111777);
    CHECK_INT(date("Thu, 01 Jan 1970 00:00:00 GMT", &t), 0);
    CHECK_INT(t, 0);
    CHECK_INT(date("Tue, 14 Nov 2023 22:13:20 GMT", &t), 0);
    CHECK_INT(t, 1700000000);
    CHECK_INT(date("Thu, 29 Feb 2024 00:00:00 GMT", &t), 0);
    CHECK_INT(t, 1709164800);
    CHECK_INT(date("Tue, 29 Feb 2000 00:00:00 GMT", &t), 0);
    CHECK_INT(t, 951782400);
    CHECK_INT(date("Wednesday, 01-Jan-20 00:00:00 GMT", &t), 0);
    CHECK_INT(t, 1577836800);
    CHECK_INT(date("Thu Nov 16 08:49:37 2023", &t), 0);
    static const char *const bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        " Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 23:60:00 GMT",
        "Sun, 06 Nov 1994 23:59:61 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 30 Feb 2024 08:49:37 GMT",
        "Sun, 29 Feb 2023 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 1994 GMT",
        "1700000000",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = date(bad[i], &t);
        if (rc != WSX_EINVAL) TEST_FAIL_("date \"%s\" gave %d, expected WSX_EINVAL", bad[i], rc);
        test_checks_++;
    }
}

TEST(dates_format)
{
    char out[WSX__HTTP_DATE_LEN + 1];
    CHECK_INT(wsx__http_date_format(0, out), WSX__HTTP_DATE_LEN);
    CHECK_STR(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    wsx__http_date_format(784111777, out);
    CHECK_STR(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    wsx__http_date_format(1700000000, out);
    CHECK_STR(out, "Tue, 14 Nov 2023 22:13:20 GMT");
    wsx__http_date_format(951782400, out);
    CHECK_STR(out, "Tue, 29 Feb 2000 00:00:00 GMT");
    wsx__http_date_format(4102444799, out);
    CHECK_STR(out, "Thu, 31 Dec 2099 23:59:59 GMT");
    /* Every fifth day from 1970 to 2100, at an odd second, goes there and back. */
    int bad = 0;
    for (int64_t t = 0; t < 4102444800; t += 5 * 86400 + 3607) {
        int64_t back = -1;
        wsx__http_date_format(t, out);
        if (strlen(out) != WSX__HTTP_DATE_LEN || date(out, &back) != 0 || back != t) {
            if (!bad++) TEST_FAIL_("%lld -> \"%s\" -> %lld", (long long)t, out, (long long)back);
        }
    }
    CHECK_INT(bad, 0);
}

TEST(content_types)
{
    static const char *const cases[][2] = {
        {"/index.html", "text/html; charset=utf-8"},
        {"/a.HTM", "text/html; charset=utf-8"},
        {"/UPPER.CSS", "text/css; charset=utf-8"},
        {"/app.js", "text/javascript; charset=utf-8"},
        {"/x.tar.gz", "application/gzip"},
        {"/d.json", "application/json"},
        {"/p.svg", "image/svg+xml"},
        {"/w.wasm", "application/wasm"},
        {"/noext", "application/octet-stream"},
        {"/dir.d/noext", "application/octet-stream"},
        {"/a.", "application/octet-stream"},
        {"/a.unknown", "application/octet-stream"},
        {"/a.htmlx", "application/octet-stream"},
        {"", "application/octet-stream"},
        {"b.txt", "text/plain; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_STR(wsx__http_content_type(cases[i][0], strlen(cases[i][0])), cases[i][1]);
}

/* ---- preconditions and ranges together ---- */

static wsx__http_cond_out cond(bool get, int64_t mtime, const char *const *fields)
{
    wsx_http_header h[8];
    size_t n = 0;
    for (; fields[2 * n]; n++)
        h[n] = (wsx_http_header){fields[2 * n], strlen(fields[2 * n]), fields[2 * n + 1],
                                 strlen(fields[2 * n + 1])};
    wsx__http_cond_in in = {h, n, get, "\"e\"", 3, mtime, 2000000000, 10};
    wsx__http_cond_out out;
    wsx__http_cond_eval(&in, &out);
    return out;
}

#define CHECK_COND(get_, mtime_, status_, first_, len_, ...)                                       \
    do {                                                                                           \
        const char *const f_[] = {__VA_ARGS__, NULL};                                              \
        wsx__http_cond_out o_ = cond(get_, mtime_, f_);                                            \
        CHECK_INT(o_.status, status_);                                                             \
        CHECK_INT(o_.first, first_);                                                               \
        CHECK_INT(o_.len, len_);                                                                   \
    } while (0)

#define T_MTIME  1700000000 /* "Tue, 14 Nov 2023 22:13:20 GMT" */
#define D_MTIME  "Tue, 14 Nov 2023 22:13:20 GMT"
#define D_BEFORE "Tue, 14 Nov 2023 22:13:19 GMT"
#define D_AFTER  "Tue, 14 Nov 2023 22:13:21 GMT"
#define D_FUTURE "Fri, 01 Jan 2100 00:00:00 GMT"

TEST(conditions)
{
    CHECK_COND(true, T_MTIME, 200, 0, 10, "x-other", "1");
    /* If-None-Match: weak comparison; 304 for GET and HEAD. */
    CHECK_COND(true, T_MTIME, 304, 0, 10, "If-None-Match", "\"e\"");
    CHECK_COND(false, T_MTIME, 304, 0, 10, "if-none-match", "W/\"e\"");
    CHECK_COND(true, T_MTIME, 304, 0, 10, "If-None-Match", "*");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-None-Match", "\"x\"");
    CHECK_COND(true, T_MTIME, 304, 0, 10, "If-None-Match", "\"x\"", "If-None-Match", "\"e\"");
    /* If-Modified-Since, only without If-None-Match. */
    CHECK_COND(true, T_MTIME, 304, 0, 10, "If-Modified-Since", D_MTIME);
    CHECK_COND(true, T_MTIME, 304, 0, 10, "If-Modified-Since", D_AFTER);
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Modified-Since", D_BEFORE);
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Modified-Since", D_FUTURE);
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Modified-Since", "yesterday");
    CHECK_COND(true, -1, 200, 0, 10, "If-Modified-Since", D_AFTER);
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-None-Match", "\"x\"", "If-Modified-Since", D_AFTER);
    CHECK_COND(true, T_MTIME, 304, 0, 10, "If-None-Match", "\"e\"", "If-Modified-Since", D_BEFORE);
    /* If-Match (strong) and If-Unmodified-Since: 412. */
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Match", "\"e\"");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Match", "*");
    CHECK_COND(true, T_MTIME, 412, 0, 10, "If-Match", "\"x\"");
    CHECK_COND(false, T_MTIME, 412, 0, 10, "If-Match", "W/\"e\"");
    CHECK_COND(true, T_MTIME, 412, 0, 10, "If-Unmodified-Since", D_BEFORE);
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Unmodified-Since", D_MTIME);
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Unmodified-Since", "garbage");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Match", "\"e\"", "If-Unmodified-Since", D_BEFORE);
    CHECK_COND(true, T_MTIME, 412, 0, 10, "If-Match", "\"x\"", "If-None-Match", "\"e\"");
    CHECK_COND(true, T_MTIME, 412, 0, 10, "If-Match", "\"x\"", "Range", "bytes=0-0");
    /* Range: GET only, after the preconditions. */
    CHECK_COND(true, T_MTIME, 206, 2, 2, "Range", "bytes=2-3");
    CHECK_COND(true, T_MTIME, 206, 9, 1, "Range", "bytes=-1");
    CHECK_COND(true, T_MTIME, 206, 0, 1, "Range", "bytes=0-0");
    CHECK_COND(false, T_MTIME, 200, 0, 10, "Range", "bytes=2-3");
    CHECK_COND(true, T_MTIME, 416, 0, 10, "Range", "bytes=10-");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "Range", "bytes=0-1,4-5");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "Range", "bytes=5-4");
    CHECK_COND(true, T_MTIME, 304, 0, 10, "If-None-Match", "\"e\"", "Range", "bytes=2-3");
    /* If-Range: a strong tag, or exactly the mtime; otherwise all of it. */
    CHECK_COND(true, T_MTIME, 206, 2, 2, "Range", "bytes=2-3", "If-Range", "\"e\"");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "Range", "bytes=2-3", "If-Range", "W/\"e\"");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "Range", "bytes=2-3", "If-Range", "\"x\"");
    CHECK_COND(true, T_MTIME, 206, 2, 2, "Range", "bytes=2-3", "If-Range", D_MTIME);
    CHECK_COND(true, T_MTIME, 200, 0, 10, "Range", "bytes=2-3", "If-Range", D_AFTER);
    CHECK_COND(true, -1, 200, 0, 10, "Range", "bytes=2-3", "If-Range", D_MTIME);
    CHECK_COND(true, T_MTIME, 200, 0, 10, "Range", "bytes=2-3", "If-Range", "junk");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "Range", "bytes=10-", "If-Range", "\"x\"");
    CHECK_COND(true, T_MTIME, 200, 0, 10, "If-Range", "\"e\"");
}

int main(void)
{
    RUN(percent_decode_values);
    RUN(percent_decode_room);
    RUN(path_clean_accepts);
    RUN(path_clean_refuses);
    RUN(path_clean_room);
    RUN(range_values);
    RUN(etag_lists);
    RUN(dates_parse);
    RUN(dates_format);
    RUN(content_types);
    RUN(conditions);
    return test_summary("http_file");
}
