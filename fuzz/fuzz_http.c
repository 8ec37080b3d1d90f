/*
 * libFuzzer target for the HTTP head parser (src/proto/http.c): the input is parsed as a
 * request and as a response, and every header value is walked as a token list. Parser
 * invariants are checked so a wrong length, not only a crash, is a finding.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wsx/proto.h"

#define MAX_HEADERS 32
#define MAX_HEAD    4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_headers(const wsx_http_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *pos = h[i].value, *end = h[i].value + h[i].value_len, *elem;
        size_t elem_len, total = 0;
        while (wsx_http_list_next(&pos, end, &elem, &elem_len)) {
            if (elem < h[i].value || elem + elem_len > end || elem_len == 0) abort();
            total += elem_len;
        }
        if (pos != end || total > h[i].value_len) abort();
        (void)wsx_http_list_has(h[i].value, h[i].value_len, "upgrade");
        /* Lookup by a NUL-terminated copy of the field's own name finds a field. */
        char name[64];
        if (h[i].name_len < sizeof name) {
            memcpy(name, h[i].name, h[i].name_len);
            name[h[i].name_len] = '\0';
            if (!wsx_http_header_get(h, n, name)) abort();
            (void)wsx_http_headers_have_token(h, n, name, "websocket");
        }
    }
}

static bool valid_failure(ptrdiff_t rc)
{
    return rc == WSX_EAGAIN || rc == WSX_EHTTP || rc == WSX_EHEADTOOBIG ||
           rc == WSX_ETOOMANYHEADERS;
}

/* A complete head parses to the same length from exactly its own bytes, and one byte
 * fewer is an incomplete head. */
static void check_request(const char *buf, size_t size, size_t max_headers)
{
    wsx_http_request req;
    wsx_http_header h[MAX_HEADERS];
    ptrdiff_t n = wsx_http_parse_request(buf, size, &req, h, max_headers, MAX_HEAD);
    if (n == 0 || (n < 0 && !valid_failure(n))) abort();
    if (n < 0) return;
    if ((size_t)n > size || n > MAX_HEAD || req.n_headers > max_headers) abort();
    walk_headers(h, req.n_headers);
    if (wsx_http_parse_request(buf, (size_t)n, &req, h, max_headers, MAX_HEAD) != n) abort();
    if (wsx_http_parse_request(buf, (size_t)n - 1, &req, h, max_headers, MAX_HEAD) != WSX_EAGAIN)
        abort();
}

static void check_response(const char *buf, size_t size, size_t max_headers)
{
    wsx_http_response resp;
    wsx_http_header h[MAX_HEADERS];
    ptrdiff_t n = wsx_http_parse_response(buf, size, &resp, h, max_headers, MAX_HEAD);
    if (n == 0 || (n < 0 && !valid_failure(n))) abort();
    if (n < 0) return;
    if ((size_t)n > size || resp.status < 100 || resp.status > 999) abort();
    walk_headers(h, resp.n_headers);
    if (wsx_http_parse_response(buf, (size_t)n, &resp, h, max_headers, MAX_HEAD) != n) abort();
    if (wsx_http_parse_response(buf, (size_t)n - 1, &resp, h, max_headers, MAX_HEAD) != WSX_EAGAIN)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy lets ASan catch any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    check_request(buf, size, MAX_HEADERS);
    check_request(buf, size, 4);
    check_response(buf, size, MAX_HEADERS);
    check_response(buf, size, 4);
    free(buf);
    return 0;
}
