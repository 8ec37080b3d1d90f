/*
 * Ranges, preconditions, dates and content types for file responses (see http_file.h).
 */
#include "proto/http_file.h"

#include <string.h>

#include "proto/http_priv.h"

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads digits at *p (at least one), saturating at UINT64_MAX. */
static bool read_u64(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;
    while (s < end && is_digit(*s)) {
        uint64_t d = (uint64_t)(*s - '0');
        n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
        s++;
    }
    if (s == *p) return false;
    *p = s;
    *v = n;
    return true;
}

enum wsx__range wsx__http_range_parse(const char *v, size_t len, uint64_t size, uint64_t *first,
                                      uint64_t *last)
{
    const char *p = v, *end = v + len;
    /* RFC 9110 14.1: range units are case-insensitive; another unit is ignored (14.2). */
    if (len < 6 || !wsx__ascii_ieq(v, 5, "bytes", 5) || v[5] != '=') return WSX__RANGE_NONE;
    p += 6;
    unsigned n = 0, good = 0;
    uint64_t f = 0, l = 0;
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++; /* RFC 9110 5.6.1: empty elements */
        if (p == end) break;
        uint64_t a = 0, b = UINT64_MAX;
        bool suffix = *p == '-';
        if (suffix) {
            p++;
            if (!read_u64(&p, end, &b)) return WSX__RANGE_NONE;
        } else {
            if (!read_u64(&p, end, &a) || p == end || *p++ != '-') return WSX__RANGE_NONE;
            if (p < end && is_digit(*p)) {
                read_u64(&p, end, &b);
                if (b < a) return WSX__RANGE_NONE;
            }
        }
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p != ',') return WSX__RANGE_NONE;
        n++;
        /* RFC 9110 14.1.1: an int-range is satisfiable when it starts inside the
         * representation, a suffix-range when its length is not zero. */
        if (suffix ? b > 0 : a < size) {
            good++;
            f = suffix ? (b >= size ? 0 : size - b) : a;
            l = suffix || b >= size ? size - 1 : b;
        }
    }
    if (!n || !size) return WSX__RANGE_NONE;
    if (!good) return WSX__RANGE_UNSATISFIABLE;
    if (n > 1) return WSX__RANGE_MANY;
    *first = f;
    *last = l;
    return WSX__RANGE_ONE;
}

bool wsx__http_etag_match(const char *v, size_t len, const char *etag, size_t etag_len, bool strong)
{
    const char *p = v, *end = v + len;
    for (;;) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        if (p == end) return false;
        if (*p == '*') return true;
        bool weak = end - p >= 2 && p[0] == 'W' && p[1] == '/';
        if (weak) p += 2;
        if (p == end || *p != '"') return false;
        /* RFC 9110 8.8.3: etagc excludes DQUOTE, so the next quote closes the tag. */
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (!q) return false;
        size_t tl = (size_t)(q - p + 1);
        if (!(strong && weak) && tl == etag_len && !memcmp(p, etag, tl)) return true;
        p = q + 1;
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p != ',') return false;
    }
}

/* ---- dates ---- */

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const long_wdays[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return dm[m - 1] + (m == 2 && leap);
}

size_t wsx__http_date_format(int64_t t, char out[WSX__HTTP_DATE_LEN + 1])
{
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t secs = t - days * 86400;
    /* The inverse of days_from_civil. */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
    unsigned wd = (unsigned)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
    char *o = out;
    memcpy(o, wdays[wd], 3);
    o[3] = ',';
    o[4] = ' ';
    o[5] = (char)('0' + d / 10);
    o[6] = (char)('0' + d % 10);
    o[7] = ' ';
    memcpy(o + 8, months[m - 1], 3);
    o[11] = ' ';
    /* Years outside 0-9999 cannot be written in four digits; no file has one. */
    uint64_t yy = y < 0 ? 0 : y > 9999 ? 9999 : (uint64_t)y;
    for (int i = 15; i >= 12; i--, yy /= 10)
        o[i] = (char)('0' + yy % 10);
    unsigned hms[3] = {(unsigned)(secs / 3600), (unsigned)(secs / 60 % 60), (unsigned)(secs % 60)};
    for (int i = 0; i < 3; i++) {
        o[16 + 3 * i] = i ? ':' : ' ';
        o[17 + 3 * i] = (char)('0' + hms[i] / 10);
        o[18 + 3 * i] = (char)('0' + hms[i] % 10);
    }
    memcpy(o + 25, " GMT", 5);
    return WSX__HTTP_DATE_LEN;
}

/* A cursor over a date being parsed: each reader consumes exactly what it names. */
typedef struct dcur {
    const char *p, *end;
} dcur;

static bool lit(dcur *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0) return false;
    c->p += n;
    return true;
}

/* Exactly n digits (n <= 4), or with lead_space, a space then n - 1 digits (asctime's day). */
static bool digits(dcur *c, int n, unsigned *v, bool lead_space)
{
    if (c->end - c->p < n) return false;
    unsigned x = 0;
    for (int i = 0; i < n; i++) {
        char ch = c->p[i];
        if (i == 0 && lead_space && ch == ' ') continue;
        if (!is_digit(ch)) return false;
        x = x * 10 + (unsigned)(ch - '0');
    }
    c->p += n;
    *v = x;
    return true;
}

static bool month(dcur *c, unsigned *m)
{
    for (unsigned i = 0; i < 12; i++)
        if (lit(c, months[i])) {
            *m = i + 1;
            return true;
        }
    return false;
}

static bool wday(dcur *c, bool long_form)
{
    for (unsigned i = 0; i < 7; i++)
        if (lit(c, long_form ? long_wdays[i] : wdays[i])) return true;
    return false;
}

/* "HH:MM:SS" */
static bool clock_time(dcur *c, unsigned *h, unsigned *mi, unsigned *s)
{
    return digits(c, 2, h, false) && lit(c, ":") && digits(c, 2, mi, false) && lit(c, ":") &&
           digits(c, 2, s, false);
}

int wsx__http_date_parse(const char *s, size_t len, int64_t *t)
{
    unsigned d = 0, m = 0, y = 0, h = 0, mi = 0, sec = 0;
    dcur c = {s, s + len};
    dcur a = c;
    bool ok;
    if (wday(&a, false) && lit(&a, ", ")) {
        /* IMF-fixdate */
        ok = digits(&a, 2, &d, false) && lit(&a, " ") && month(&a, &m) && lit(&a, " ") &&
             digits(&a, 4, &y, false) && lit(&a, " ") && clock_time(&a, &h, &mi, &sec) &&
             lit(&a, " GMT");
    } else if (a = c, wday(&a, false) && lit(&a, " ")) {
        /* asctime: "Sun Nov  6 08:49:37 1994" */
        ok = month(&a, &m) && lit(&a, " ") && digits(&a, 2, &d, true) && lit(&a, " ") &&
             clock_time(&a, &h, &mi, &sec) && lit(&a, " ") && digits(&a, 4, &y, false);
    } else if (a = c, wday(&a, true) && lit(&a, ", ")) {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
        ok = digits(&a, 2, &d, false) && lit(&a, "-") && month(&a, &m) && lit(&a, "-") &&
             digits(&a, 2, &y, false) && lit(&a, " ") && clock_time(&a, &h, &mi, &sec) &&
             lit(&a, " GMT");
        y += y < 70 ? 2000 : 1900;
    } else {
        ok = false;
    }
    if (!ok || a.p != a.end || d < 1 || d > days_in_month(y, m) || h > 23 || mi > 59 || sec > 60)
        return WSX_EINVAL;
    *t = days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + sec;
    return 0;
}

/* ---- content types ---- */

const char *wsx__http_content_type(const char *name, size_t len)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"txt", "text/plain; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"},
        {"csv", "text/csv; charset=utf-8"},
        {"xml", "application/xml"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"wasm", "application/wasm"},
        {"pdf", "application/pdf"},
        {"zip", "application/zip"},
        {"gz", "application/gzip"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"ico", "image/x-icon"},
        {"webp", "image/webp"},
        {"avif", "image/avif"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"otf", "font/otf"},
        {"mp3", "audio/mpeg"},
        {"ogg", "audio/ogg"},
        {"wav", "audio/wav"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
    };
    size_t i = len;
    while (i && name[i - 1] != '.' && name[i - 1] != '/')
        i--;
    if (i && name[i - 1] == '.')
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++)
            if (wsx__ascii_ieq(name + i, len - i, types[k].ext, strlen(types[k].ext)))
                return types[k].type;
    return "application/octet-stream";
}

/* ---- preconditions ---- */

/* Whether any line of the list field `name` matches (see wsx__http_etag_match). */
static bool any_etag(const wsx__http_cond_in *in, const char *name, bool strong, bool *present)
{
    *present = false;
    size_t nl = strlen(name);
    for (size_t i = 0; i < in->n_headers; i++) {
        const wsx_http_header *h = &in->headers[i];
        if (!wsx__ascii_ieq(h->name, h->name_len, name, nl)) continue;
        *present = true;
        if (wsx__http_etag_match(h->value, h->value_len, in->etag, in->etag_len, strong))
            return true;
    }
    return false;
}

/* The date of field `name`, when present and valid. */
static bool field_date(const wsx__http_cond_in *in, const char *name, int64_t *t)
{
    const wsx_http_header *h = wsx_http_header_get(in->headers, in->n_headers, name);
    return h && wsx__http_date_parse(h->value, h->value_len, t) == 0;
}

/* RFC 9110 13.1.5: If-Range holds one entity-tag (compared strongly) or a date (which must
 * equal Last-Modified exactly). */
static bool if_range_holds(const wsx__http_cond_in *in, const wsx_http_header *h)
{
    const char *v = h->value;
    size_t n = h->value_len;
    if (n && (v[0] == '"' || (n >= 2 && v[0] == 'W' && v[1] == '/')))
        return n == in->etag_len && !memcmp(v, in->etag, n);
    int64_t t;
    return in->mtime >= 0 && wsx__http_date_parse(v, n, &t) == 0 && t == in->mtime;
}

void wsx__http_cond_eval(const wsx__http_cond_in *in, wsx__http_cond_out *out)
{
    *out = (wsx__http_cond_out){200, 0, in->size};
    bool present;
    int64_t t;
    if (!any_etag(in, "if-match", true, &present) && present) {
        out->status = 412;
        return;
    }
    if (!present && in->mtime >= 0 && field_date(in, "if-unmodified-since", &t) && in->mtime > t) {
        out->status = 412;
        return;
    }
    if (any_etag(in, "if-none-match", false, &present)) {
        out->status = 304;
        return;
    }
    /* RFC 9110 13.1.3: a date later than the server's clock is ignored. */
    if (!present && in->mtime >= 0 && field_date(in, "if-modified-since", &t) && t <= in->now &&
        in->mtime <= t) {
        out->status = 304;
        return;
    }
    const wsx_http_header *range = wsx_http_header_get(in->headers, in->n_headers, "range");
    if (!in->get || !range) return;
    const wsx_http_header *ir = wsx_http_header_get(in->headers, in->n_headers, "if-range");
    if (ir && !if_range_holds(in, ir)) return;
    uint64_t first = 0, last = 0;
    switch (wsx__http_range_parse(range->value, range->value_len, in->size, &first, &last)) {
    case WSX__RANGE_ONE:
        *out = (wsx__http_cond_out){206, first, last - first + 1};
        return;
    case WSX__RANGE_UNSATISFIABLE:
        out->status = 416;
        return;
    case WSX__RANGE_NONE:
    case WSX__RANGE_MANY:
        return;
    }
}
