/*
 * libFuzzer target for permessage-deflate negotiation (src/proto/deflate.c): the input,
 * after one configuration byte, is a Sec-WebSocket-Extensions value. It is negotiated as a
 * client's offer by a server; an accepted answer must parse, name permessage-deflate once,
 * and be accepted by a client that asked for nothing, with the same parameters. The value
 * is also checked as a server's answer by a client configured from the first byte, and that
 * client's own offer must be accepted by the server.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wsx/deflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wsx_pmd_config config(uint8_t b)
{
    static const int bits[] = {15, 8, 9, 10, 11, 12, 14, 15};
    wsx_pmd_config c = wsx_pmd_defaults();
    c.enabled = true;
    c.server_no_context_takeover = b & 1;
    c.client_no_context_takeover = b & 2;
    c.server_max_window_bits = bits[b >> 2 & 7];
    c.client_max_window_bits = bits[b >> 5 & 7];
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    wsx_pmd_config cfg = config(data[0]);
    const char *value = (const char *)data + 1;
    size_t len = size - 1;

    wsx_ext_offer offers[WSX_MAX_EXT_OFFERS];
    size_t n = 0;
    if (wsx_ext_parse(value, len, offers, WSX_MAX_EXT_OFFERS, &n) == 0) {
        wsx_pmd_params sp, cp;
        char resp[WSX_PMD_MAX_VALUE];
        int rc = wsx_pmd_server_negotiate(offers, n, &cfg, &sp, resp, sizeof resp);
        if (rc != 0 && rc != 1) abort();
        if (rc == 0 && resp[0]) abort();
        if (rc == 1) {
            wsx_ext_offer back[WSX_MAX_EXT_OFFERS];
            size_t nb = 0;
            if (wsx_ext_parse(resp, strlen(resp), back, WSX_MAX_EXT_OFFERS, &nb) || nb != 1)
                abort();
            wsx_pmd_config plain = wsx_pmd_defaults();
            plain.enabled = true;
            const char *why = NULL;
            if (wsx_pmd_client_accept(resp, strlen(resp), &plain, &cp, &why) != 1) abort();
            if (memcmp(&sp, &cp, sizeof sp) != 0) abort();
            if (sp.server_max_window_bits < 9 || sp.server_max_window_bits > 15) abort();
            if (sp.client_max_window_bits < 8 || sp.client_max_window_bits > 15) abort();
        }
    }

    wsx_pmd_params p;
    const char *why = NULL;
    int rc = wsx_pmd_client_accept(value, len, &cfg, &p, &why);
    if (rc == WSX_EHANDSHAKE) {
        if (!why) abort();
    } else if (rc == 1) {
        if (why || p.server_max_window_bits < 8 || p.server_max_window_bits > 15 ||
            p.client_max_window_bits < 8 || p.client_max_window_bits > 15)
            abort();
        if (p.server_max_window_bits > cfg.server_max_window_bits) abort();
    } else if (rc != 0) {
        abort();
    }

    char offer[WSX_PMD_MAX_VALUE], resp[WSX_PMD_MAX_VALUE];
    if (wsx_pmd_client_offer(&cfg, offer, sizeof offer) <= 0) abort();
    n = 0;
    if (wsx_ext_parse(offer, strlen(offer), offers, WSX_MAX_EXT_OFFERS, &n) || n != 1) abort();
    wsx_pmd_params sp;
    rc = wsx_pmd_server_negotiate(offers, n, &cfg, &sp, resp, sizeof resp);
    if (rc != (cfg.server_max_window_bits == 8 ? 0 : 1)) abort();
    if (rc == 1 && wsx_pmd_client_accept(resp, strlen(resp), &cfg, &p, &why) != 1) abort();
    return 0;
}
