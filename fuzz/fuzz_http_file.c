/*
 * libFuzzer target for the sans-IO parts of file serving: the percent-decoder and path
 * cleaning (src/proto/url.c), byte ranges, entity-tag lists, HTTP dates and the precondition
 * order (src/proto/http_file.c). The first byte picks the representation's size; the rest is
 * fed to every parser as one value. Invariants are checked, so a wrong answer is a finding
 * and not only a crash: a decoded text is never longer than its input and a lenient decode
 * never fails; a cleaned path starts with '/', has no "//", no "." or ".." segment, no
 * control character and no backslash; a single range lies inside the representation; a date
 * that parses formats back to one that parses to the same time.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http_file.h"
#include "wsx/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *s, size_t len)
{
    char out[512];
    ptrdiff_t n = wsx_http_path_clean(s, len, out, sizeof out);
    if (n < 0) {
        if (n != WSX_EINVAL && n != WSX_ENOSPC) abort();
        return;
    }
    if ((size_t)n >= sizeof out || out[n] != '\0' || out[0] != '/') abort();
    for (ptrdiff_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == 0x7f || c == '\\') abort();
        if (c == '/' && i + 1 < n && out[i + 1] == '/') abort();
    }
    for (ptrdiff_t i = 0; i < n;) {
        ptrdiff_t e = i + 1;
        while (e < n && out[e] != '/')
            e++;
        ptrdiff_t sl = e - i - 1;
        if ((sl == 1 && out[i + 1] == '.') || (sl == 2 && out[i + 1] == '.' && out[i + 2] == '.'))
            abort();
        i = e;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const uint64_t sizes[8] = {0, 1, 2, 10, 65536, 1000000, UINT64_MAX - 1, UINT64_MAX};
    uint64_t rsize = sizes[data[0] & 7];
    const char *s = (const char *)data + 1;
    size_t len = size - 1;

    char *out = malloc(len + 1);
    if (!out) return 0;
    for (unsigned flags = 0; flags < 4; flags++) {
        ptrdiff_t n = wsx_percent_decode(s, len, flags, out, len);
        if (n > (ptrdiff_t)len || (n < 0 && n != WSX_EINVAL)) abort();
        if ((flags & WSX_PCT_LENIENT) && n < 0) abort();
    }
    free(out);

    check_path(s, len);

    uint64_t first = 0, last = 0;
    enum wsx__range r = wsx__http_range_parse(s, len, rsize, &first, &last);
    if (r == WSX__RANGE_ONE && (first > last || last >= rsize)) abort();

    (void)wsx__http_etag_match(s, len, "\"abc\"", 5, false);
    (void)wsx__http_etag_match(s, len, "\"abc\"", 5, true);
    (void)wsx__http_content_type(s, len);

    int64_t t;
    if (wsx__http_date_parse(s, len, &t) == 0) {
        char buf[WSX__HTTP_DATE_LEN + 1];
        int64_t back;
        wsx__http_date_format(t, buf);
        if (wsx__http_date_parse(buf, WSX__HTTP_DATE_LEN, &back) != 0 || back != t) abort();
    }

    /* The value as each conditional field, and as a Range under an If-Range. */
    static const char *const names[] = {
        "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
        "Range",    "If-Range"};
    for (size_t i = 0; i < 6; i++) {
        wsx_http_header h[2] = {{names[i], strlen(names[i]), s, len}, {"Range", 5, s, len}};
        wsx__http_cond_in in = {h, 2, true, "\"abc\"", 5, 1700000000, 1800000000, rsize};
        wsx__http_cond_out o;
        wsx__http_cond_eval(&in, &o);
        if (o.status == 206 && (o.len == 0 || o.first + o.len - 1 >= rsize)) abort();
        if (o.status != 200 && o.status != 206 && o.status != 304 && o.status != 412 &&
            o.status != 416)
            abort();
    }
    return 0;
}
