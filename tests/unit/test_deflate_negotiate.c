/* permessage-deflate (RFC 7692): negotiation, the server's answer to offers and the client's
 * offer and its check of the answer, for every combination of settings. */
#include <stdio.h>
#include <string.h>

#include "test.h"
#include "deflate_test.h"

/* Parses `offer` as a Sec-WebSocket-Extensions value and negotiates it as a server. */
static int neg(const char *offer, const wsx_pmd_config *cfg, wsx_pmd_params *p, char *resp,
               size_t cap)
{
    wsx_ext_offer o[WSX_MAX_EXT_OFFERS];
    size_t n = 0;
    int rc = wsx_ext_parse(offer, strlen(offer), o, WSX_MAX_EXT_OFFERS, &n);
    if (rc) return 100 + rc;
    return wsx_pmd_server_negotiate(o, n, cfg, p, resp, cap);
}

static bool params_eq(const wsx_pmd_params *p, bool snct, bool cnct, int smwb, int cmwb)
{
    return p->server_no_context_takeover == snct && p->client_no_context_takeover == cnct &&
           p->server_max_window_bits == smwb && p->client_max_window_bits == cmwb;
}

#define CHECK_PARAMS(p, snct, cnct, smwb, cmwb)                                                    \
    do {                                                                                           \
        test_checks_++;                                                                            \
        if (!params_eq(&(p), snct, cnct, smwb, cmwb))                                              \
            TEST_FAIL_("params {%d,%d,%d,%d}, expected {%d,%d,%d,%d}",                             \
                       (p).server_no_context_takeover, (p).client_no_context_takeover,             \
                       (p).server_max_window_bits, (p).client_max_window_bits, snct, cnct, smwb,   \
                       cmwb);                                                                      \
    } while (0)

/* ---- server negotiation --------------------------------------------------------------- */

TEST(server_single_params)
{
    wsx_pmd_config c = on();
    wsx_pmd_params p;
    char r[256];
    struct {
        const char *offer, *resp;
        bool snct, cnct;
        int smwb, cmwb;
    } cases[] = {
        {"permessage-deflate", "permessage-deflate", false, false, 15, 15},
        {"permessage-deflate; server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover", true, false, 15, 15},
        {"permessage-deflate; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover", false, true, 15, 15},
        {"permessage-deflate; server_max_window_bits=10",
         "permessage-deflate; server_max_window_bits=10", false, false, 10, 15},
        {"permessage-deflate; server_max_window_bits=15",
         "permessage-deflate; server_max_window_bits=15", false, false, 15, 15},
        {"permessage-deflate; server_max_window_bits=9",
         "permessage-deflate; server_max_window_bits=9", false, false, 9, 15},
        {"permessage-deflate; client_max_window_bits", "permessage-deflate", false, false, 15, 15},
        {"permessage-deflate; client_max_window_bits=12",
         "permessage-deflate; client_max_window_bits=12", false, false, 15, 12},
        {"permessage-deflate; client_max_window_bits=8",
         "permessage-deflate; client_max_window_bits=8", false, false, 15, 8},
        {"permessage-deflate; client_max_window_bits=15", "permessage-deflate", false, false, 15,
         15},
        /* Quoted values are the same values (RFC 6455 9.1). */
        {"permessage-deflate; server_max_window_bits=\"11\"",
         "permessage-deflate; server_max_window_bits=11", false, false, 11, 15},
        {"permessage-deflate; client_max_window_bits=\"13\"",
         "permessage-deflate; client_max_window_bits=13", false, false, 15, 13},
        /* Names compare without regard to case, like the handshake's. */
        {"PerMessage-Deflate; Server_No_Context_Takeover",
         "permessage-deflate; server_no_context_takeover", true, false, 15, 15},
        {"permessage-deflate ;server_max_window_bits = 12 ",
         "permessage-deflate; server_max_window_bits=12", false, false, 12, 15},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&p, 0xAA, sizeof p);
        CHECK_INT(neg(cases[i].offer, &c, &p, r, sizeof r), 1);
        CHECK_STR(r, cases[i].resp);
        CHECK_PARAMS(p, cases[i].snct, cases[i].cnct, cases[i].smwb, cases[i].cmwb);
    }
}

TEST(server_combined_params)
{
    wsx_pmd_config c = on();
    wsx_pmd_params p;
    char r[256];
    CHECK_INT(neg("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                  "server_max_window_bits=11; client_max_window_bits=9",
                  &c, &p, r, sizeof r),
              1);
    CHECK_STR(r, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                 "server_max_window_bits=11; client_max_window_bits=9");
    CHECK_PARAMS(p, true, true, 11, 9);

    /* Order in the offer does not matter; the answer has a fixed order. */
    CHECK_INT(neg("permessage-deflate; client_max_window_bits; server_max_window_bits=14; "
                  "client_no_context_takeover",
                  &c, &p, r, sizeof r),
              1);
    CHECK_STR(r, "permessage-deflate; client_no_context_takeover; server_max_window_bits=14");
    CHECK_PARAMS(p, false, true, 14, 15);

    /* What Chrome and Firefox send. */
    CHECK_INT(neg("permessage-deflate; client_max_window_bits", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate");
    CHECK_PARAMS(p, false, false, 15, 15);
}

TEST(server_config)
{
    wsx_pmd_params p;
    char r[256];
    wsx_pmd_config c = on();

    /* The server's own window: announced unasked, and the smaller of ours and theirs. */
    c.server_max_window_bits = 10;
    CHECK_INT(neg("permessage-deflate", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; server_max_window_bits=10");
    CHECK_PARAMS(p, false, false, 10, 15);
    CHECK_INT(neg("permessage-deflate; server_max_window_bits=12", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; server_max_window_bits=10");
    CHECK_INT(neg("permessage-deflate; server_max_window_bits=9", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; server_max_window_bits=9");
    CHECK_PARAMS(p, false, false, 9, 15);

    /* 8 cannot be done by zlib; a server configured so uses 9 and says so. */
    c.server_max_window_bits = 8;
    CHECK_INT(neg("permessage-deflate", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; server_max_window_bits=9");
    CHECK_PARAMS(p, false, false, 9, 15);

    /* The client's window: only limited when the client offered the parameter. */
    c = on();
    c.client_max_window_bits = 10;
    CHECK_INT(neg("permessage-deflate; client_max_window_bits", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; client_max_window_bits=10");
    CHECK_PARAMS(p, false, false, 15, 10);
    CHECK_INT(neg("permessage-deflate; client_max_window_bits=12", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; client_max_window_bits=10");
    CHECK_INT(neg("permessage-deflate; client_max_window_bits=9", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; client_max_window_bits=9");
    CHECK_PARAMS(p, false, false, 15, 9);
    CHECK_INT(neg("permessage-deflate", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate");
    CHECK_PARAMS(p, false, false, 15, 15);
    c.client_max_window_bits = 8;
    CHECK_INT(neg("permessage-deflate; client_max_window_bits", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; client_max_window_bits=8");

    /* No context takeover imposed by the server, in either direction. */
    c = on();
    c.server_no_context_takeover = true;
    CHECK_INT(neg("permessage-deflate", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; server_no_context_takeover");
    CHECK_PARAMS(p, true, false, 15, 15);
    c = on();
    c.client_no_context_takeover = true;
    CHECK_INT(neg("permessage-deflate", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; client_no_context_takeover");
    CHECK_PARAMS(p, false, true, 15, 15);

    c.server_no_context_takeover = true;
    c.server_max_window_bits = 12;
    c.client_max_window_bits = 11;
    CHECK_INT(neg("permessage-deflate; client_max_window_bits", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                 "server_max_window_bits=12; client_max_window_bits=11");
    CHECK_PARAMS(p, true, true, 12, 11);

    /* Disabled: nothing is accepted, whatever the offer. */
    c = wsx_pmd_defaults();
    strcpy(r, "junk");
    CHECK_INT(neg("permessage-deflate", &c, &p, r, sizeof r), 0);
    CHECK_STR(r, "");
}

TEST(server_declines_bad_offers)
{
    wsx_pmd_config c = on();
    wsx_pmd_params p;
    char r[64];
    const char *bad[] = {
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; Client_Max_Window_Bits",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover=\"true\"",
        "permessage-deflate; client_no_context_takeover=0",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=0",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; server_max_window_bits=99999999999999999999",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=09",
        "permessage-deflate; client_max_window_bits=-1",
        /* 8 for the server's window cannot be honoured by zlib: declined. */
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=\"8\"; client_max_window_bits",
        /* Other extensions are not ours to accept. */
        "x-webkit-deflate-frame",
        "deflate-frame; no_context_takeover",
        "permessage-deflate-x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(r, "junk");
        int rc = neg(bad[i], &c, &p, r, sizeof r);
        if (rc != 0) TEST_FAIL_("offer %zu \"%s\": rc %d", i, bad[i], rc);
        CHECK_STR(r, "");
    }
}

TEST(server_several_offers)
{
    wsx_pmd_config c = on();
    wsx_pmd_params p;
    char r[256];
    /* The first acceptable one wins (RFC 7692 5.1); unacceptable ones are skipped. */
    CHECK_INT(neg("permessage-deflate; foo=1, permessage-deflate; client_max_window_bits=10, "
                  "permessage-deflate",
                  &c, &p, r, sizeof r),
              1);
    CHECK_STR(r, "permessage-deflate; client_max_window_bits=10");
    CHECK_PARAMS(p, false, false, 15, 10);

    CHECK_INT(neg("permessage-deflate; server_max_window_bits=8; client_max_window_bits, "
                  "permessage-deflate; client_max_window_bits",
                  &c, &p, r, sizeof r),
              1);
    CHECK_STR(r, "permessage-deflate");
    CHECK_PARAMS(p, false, false, 15, 15);

    CHECK_INT(neg("x-foo; a=1, permessage-deflate; server_no_context_takeover; "
                  "server_no_context_takeover, permessage-deflate; server_max_window_bits=12",
                  &c, &p, r, sizeof r),
              1);
    CHECK_STR(r, "permessage-deflate; server_max_window_bits=12");

    /* A good first offer is taken even when a later one would suit the server better. */
    CHECK_INT(neg("permessage-deflate, permessage-deflate; server_no_context_takeover", &c, &p, r,
                  sizeof r),
              1);
    CHECK_STR(r, "permessage-deflate");

    CHECK_INT(neg("permessage-deflate; a, permessage-deflate; b", &c, &p, r, sizeof r), 0);
    CHECK_INT(neg("", &c, &p, r, sizeof r), 0);
    CHECK_STR(r, "");
}

TEST(server_from_handshake)
{
    /* The offers the handshake parsed feed the negotiation directly. */
    const char req[] = "GET /chat HTTP/1.1\r\n"
                       "Host: example.com\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                       "\r\n";
    wsx_http_header h[16];
    wsx_http_request rq;
    CHECK_INT(wsx_http_parse_request(req, sizeof req - 1, &rq, h, 16, 8192),
              (ptrdiff_t)sizeof req - 1);
    wsx_handshake_server hs;
    CHECK_INT(wsx_handshake_server_check(&rq, NULL, &hs), 0);
    CHECK_INT(hs.n_offers, 2);
    wsx_pmd_config c = on();
    c.client_max_window_bits = 12;
    wsx_pmd_params p;
    char r[128];
    CHECK_INT(wsx_pmd_server_negotiate(hs.offers, hs.n_offers, &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; client_max_window_bits=12");
    char resp[512];
    ptrdiff_t n = wsx_handshake_server_response(&hs, NULL, r, NULL, 0, resp, sizeof resp);
    CHECK(n > 0);
    CHECK(strstr(resp, "\r\nSec-WebSocket-Extensions: permessage-deflate; "
                       "client_max_window_bits=12\r\n") != NULL);
}

TEST(server_space_and_config_errors)
{
    wsx_pmd_config c = on();
    wsx_pmd_params p = params(false, false, 15, 15), before = p;
    const char *offer = "permessage-deflate; server_no_context_takeover";
    const char *want = "permessage-deflate; server_no_context_takeover";
    size_t len = strlen(want);
    char r[128];
    /* The NUL must fit as well. */
    CHECK_INT(neg(offer, &c, &p, r, len + 1), 1);
    CHECK_STR(r, want);
    p = before;
    CHECK_INT(neg(offer, &c, &p, r, len), WSX_ENOSPC);
    CHECK_STR(r, "");
    CHECK_PARAMS(p, false, false, 15, 15);
    CHECK_INT(neg(offer, &c, &p, r, 1), WSX_ENOSPC);
    CHECK_INT(neg(offer, &c, &p, NULL, 0), WSX_ENOSPC);

    /* The longest answer fits in WSX_PMD_MAX_VALUE bytes. */
    char big[WSX_PMD_MAX_VALUE];
    c.client_max_window_bits = 10;
    CHECK_INT(neg("permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                  "server_max_window_bits=10; client_max_window_bits",
                  &c, &p, big, sizeof big),
              1);
    CHECK_INT(strlen(big), 128);
    c.server_no_context_takeover = c.client_no_context_takeover = true;
    c.server_max_window_bits = 10;
    CHECK(wsx_pmd_client_offer(&c, big, sizeof big) > 0);

    int bad_bits[] = {-1, 1, 7, 16, 100};
    for (size_t i = 0; i < sizeof bad_bits / sizeof bad_bits[0]; i++) {
        c = on();
        c.server_max_window_bits = bad_bits[i];
        CHECK_INT(neg(offer, &c, &p, r, sizeof r), WSX_EINVAL);
        c = on();
        c.client_max_window_bits = bad_bits[i];
        CHECK_INT(neg(offer, &c, &p, r, sizeof r), WSX_EINVAL);
        CHECK_INT(wsx_pmd_client_offer(&c, r, sizeof r), WSX_EINVAL);
    }
    c = on();
    c.mem_level = 10;
    CHECK_INT(neg(offer, &c, &p, r, sizeof r), WSX_EINVAL);
    c = on();
    c.level = -1;
    CHECK_INT(neg(offer, &c, &p, r, sizeof r), WSX_EINVAL);
    /* Zero means the default. */
    c = on();
    c.server_max_window_bits = c.client_max_window_bits = c.mem_level = c.level = 0;
    CHECK_INT(neg("permessage-deflate", &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate");
    CHECK_PARAMS(p, false, false, 15, 15);
}

/* ---- client offer and response validation --------------------------------------------- */

TEST(client_offers)
{
    char o[256];
    wsx_pmd_config c = on();
    CHECK_INT(wsx_pmd_client_offer(&c, o, sizeof o), 42);
    CHECK_STR(o, "permessage-deflate; client_max_window_bits");

    c.server_no_context_takeover = true;
    c.client_no_context_takeover = true;
    c.server_max_window_bits = 10;
    c.client_max_window_bits = 11;
    ptrdiff_t n = wsx_pmd_client_offer(&c, o, sizeof o);
    CHECK_STR(o, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                 "server_max_window_bits=10; client_max_window_bits=11");
    CHECK_INT(n, (ptrdiff_t)strlen(o));

    /* Our own compressor cannot use 8: we offer 9. Asking the server for 8 is allowed. */
    c = on();
    c.client_max_window_bits = 8;
    c.server_max_window_bits = 8;
    wsx_pmd_client_offer(&c, o, sizeof o);
    CHECK_STR(o, "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9");

    c = on();
    c.server_no_context_takeover = true;
    wsx_pmd_client_offer(&c, o, sizeof o);
    CHECK_STR(o, "permessage-deflate; server_no_context_takeover; client_max_window_bits");

    c = wsx_pmd_defaults();
    strcpy(o, "junk");
    CHECK_INT(wsx_pmd_client_offer(&c, o, sizeof o), 0);
    CHECK_STR(o, "");

    c = on();
    CHECK_INT(wsx_pmd_client_offer(&c, o, 43), 42);
    CHECK_INT(wsx_pmd_client_offer(&c, o, 42), WSX_ENOSPC);
    CHECK_INT(wsx_pmd_client_offer(&c, o, 0), WSX_ENOSPC);

    /* What we offer, a wsx server parses and accepts. */
    wsx_pmd_params p;
    char r[256];
    c.server_max_window_bits = 12;
    c.client_no_context_takeover = true;
    wsx_pmd_client_offer(&c, o, sizeof o);
    CHECK_INT(neg(o, &c, &p, r, sizeof r), 1);
    CHECK_STR(r, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12");
}

TEST(client_accepts_good_responses)
{
    wsx_pmd_config c = on();
    wsx_pmd_params p;
    const char *why = "unset";

    CHECK_INT(accept_str("permessage-deflate", &c, &p, &why), 1);
    CHECK(why == NULL);
    CHECK_PARAMS(p, false, false, 15, 15);
    /* No extension, or only others: no compression, no failure. */
    CHECK_INT(accept_str(NULL, &c, &p, &why), 0);
    CHECK_INT(accept_str("", &c, &p, &why), 0);
    CHECK_INT(accept_str("x-other; a=1", &c, &p, &why), 0);
    CHECK(why == NULL);

    /* Everything a server may add unasked (RFC 7692 7.1.1.1, 7.1.1.2, 7.1.2.1, 7.1.2.2). */
    CHECK_INT(accept_str("permessage-deflate; server_no_context_takeover", &c, &p, &why), 1);
    CHECK_PARAMS(p, true, false, 15, 15);
    CHECK_INT(accept_str("permessage-deflate; client_no_context_takeover", &c, &p, &why), 1);
    CHECK_PARAMS(p, false, true, 15, 15);
    CHECK_INT(accept_str("permessage-deflate; server_max_window_bits=10", &c, &p, &why), 1);
    CHECK_PARAMS(p, false, false, 10, 15);
    CHECK_INT(accept_str("permessage-deflate; server_max_window_bits=8", &c, &p, &why), 1);
    CHECK_PARAMS(p, false, false, 8, 15);
    CHECK_INT(accept_str("permessage-deflate; client_max_window_bits=10", &c, &p, &why), 1);
    CHECK_PARAMS(p, false, false, 15, 10);
    CHECK_INT(accept_str("permessage-deflate; client_max_window_bits=\"8\"", &c, &p, &why), 1);
    CHECK_PARAMS(p, false, false, 15, 8);
    CHECK_INT(accept_str("x-a, permessage-deflate; server_no_context_takeover; "
                         "client_no_context_takeover; server_max_window_bits=12; "
                         "client_max_window_bits=13, x-b",
                         &c, &p, &why),
              1);
    CHECK_PARAMS(p, true, true, 12, 13);
    CHECK_INT(accept_str("PERMESSAGE-DEFLATE; SERVER_MAX_WINDOW_BITS=11", &c, &p, &why), 1);
    CHECK_PARAMS(p, false, false, 11, 15);

    /* What we asked for, granted (or bettered). */
    c.server_max_window_bits = 10;
    CHECK_INT(accept_str("permessage-deflate; server_max_window_bits=10", &c, &p, &why), 1);
    CHECK_PARAMS(p, false, false, 10, 15);
    CHECK_INT(accept_str("permessage-deflate; server_max_window_bits=9", &c, &p, &why), 1);
    CHECK_PARAMS(p, false, false, 9, 15);
    c = on();
    c.server_no_context_takeover = true;
    c.client_no_context_takeover = true;
    c.client_max_window_bits = 11;
    CHECK_INT(accept_str("permessage-deflate; server_no_context_takeover", &c, &p, &why), 1);
    /* Our promises hold whether or not the server repeats them. */
    CHECK_PARAMS(p, true, true, 15, 11);
    CHECK_INT(accept_str("permessage-deflate; server_no_context_takeover; "
                         "client_max_window_bits=12",
                         &c, &p, &why),
              1);
    CHECK_PARAMS(p, true, true, 15, 11);
    CHECK_INT(accept_str("permessage-deflate; server_no_context_takeover; "
                         "client_max_window_bits=10",
                         &c, &p, &why),
              1);
    CHECK_PARAMS(p, true, true, 15, 10);

    /* why may be NULL. */
    CHECK_INT(accept_str("permessage-deflate", &c, &p, NULL), WSX_EHANDSHAKE);
    CHECK_INT(accept_str("permessage-deflate; server_no_context_takeover", &c, &p, NULL), 1);
}

TEST(client_rejects_bad_responses)
{
    wsx_pmd_params p = params(false, false, 15, 15);
    const char *why;
    struct {
        const char *resp;
        int cfg; /* 0 default, 1 disabled, 2 server_max_window_bits=10, 3 server_nct */
        const char *why;
    } cases[] = {
        {"permessage-deflate, permessage-deflate", 0, "permessage-deflate accepted more than once"},
        {"permessage-deflate; server_max_window_bits=10, permessage-deflate", 0,
         "permessage-deflate accepted more than once"},
        {"permessage-deflate", 1, "permessage-deflate was not offered"},
        {"permessage-deflate; foo", 0, "unknown permessage-deflate parameter"},
        {"permessage-deflate; max_window_bits=10", 0, "unknown permessage-deflate parameter"},
        {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0,
         "duplicate permessage-deflate parameter"},
        {"permessage-deflate; client_max_window_bits=10; client_max_window_bits=10", 0,
         "duplicate permessage-deflate parameter"},
        {"permessage-deflate; server_no_context_takeover=1", 0,
         "server_no_context_takeover takes no value"},
        {"permessage-deflate; client_no_context_takeover=\"x\"", 0,
         "client_no_context_takeover takes no value"},
        {"permessage-deflate; server_max_window_bits", 0, "invalid server_max_window_bits"},
        {"permessage-deflate; server_max_window_bits=16", 0, "invalid server_max_window_bits"},
        {"permessage-deflate; server_max_window_bits=7", 0, "invalid server_max_window_bits"},
        {"permessage-deflate; server_max_window_bits=010", 0, "invalid server_max_window_bits"},
        {"permessage-deflate; client_max_window_bits=7", 0, "invalid client_max_window_bits"},
        {"permessage-deflate; client_max_window_bits=abc", 0, "invalid client_max_window_bits"},
        {"permessage-deflate; client_max_window_bits", 0, "client_max_window_bits without a value"},
        {"permessage-deflate", 2, "server_max_window_bits missing from the response"},
        {"permessage-deflate; server_max_window_bits=11", 2,
         "server_max_window_bits above the offered value"},
        {"permessage-deflate; server_max_window_bits=15", 2,
         "server_max_window_bits above the offered value"},
        {"permessage-deflate", 3, "server_no_context_takeover missing from the response"},
        {"permessage-deflate; client_no_context_takeover", 3,
         "server_no_context_takeover missing from the response"},
        {"permessage-deflate;", 0, "malformed Sec-WebSocket-Extensions"},
        {"permessage-deflate; a=\"", 0, "malformed Sec-WebSocket-Extensions"},
        {",;", 0, "malformed Sec-WebSocket-Extensions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wsx_pmd_config c = on();
        if (cases[i].cfg == 1) c.enabled = false;
        if (cases[i].cfg == 2) c.server_max_window_bits = 10;
        if (cases[i].cfg == 3) c.server_no_context_takeover = true;
        why = NULL;
        int rc = accept_str(cases[i].resp, &c, &p, &why);
        if (rc != WSX_EHANDSHAKE) TEST_FAIL_("case %zu \"%s\": rc %d", i, cases[i].resp, rc);
        CHECK_STR(why, cases[i].why);
        CHECK_PARAMS(p, false, false, 15, 15); /* untouched */
    }
    wsx_pmd_config c = on();
    c.mem_level = 12;
    CHECK_INT(accept_str("permessage-deflate", &c, &p, &why), WSX_EINVAL);
}

/*
 * Every client configuration against every server configuration: what the client offers,
 * the server accepts (unless the client demands an 8-bit server window), the client accepts
 * the answer, and both ends come out with the same parameters.
 */
TEST(negotiation_all_combinations)
{
    const int bits[] = {8, 9, 10, 12, 15};
    size_t nb = sizeof bits / sizeof bits[0], combos = 0, declined = 0;
    for (unsigned cf = 0; cf < 4; cf++)
        for (size_t csb = 0; csb < nb; csb++)
            for (size_t ccb = 0; ccb < nb; ccb++)
                for (unsigned sf = 0; sf < 4; sf++)
                    for (size_t ssb = 0; ssb < nb; ssb++)
                        for (size_t scb = 0; scb < nb; scb++) {
                            wsx_pmd_config cc = on(), sc = on();
                            cc.server_no_context_takeover = cf & 1;
                            cc.client_no_context_takeover = cf & 2;
                            cc.server_max_window_bits = bits[csb];
                            cc.client_max_window_bits = bits[ccb];
                            sc.server_no_context_takeover = sf & 1;
                            sc.client_no_context_takeover = sf & 2;
                            sc.server_max_window_bits = bits[ssb];
                            sc.client_max_window_bits = bits[scb];
                            char offer[256], resp[256];
                            combos++;
                            if (wsx_pmd_client_offer(&cc, offer, sizeof offer) <= 0) {
                                TEST_FAIL_("no offer");
                                return;
                            }
                            wsx_pmd_params sp, cp;
                            int rc = neg(offer, &sc, &sp, resp, sizeof resp);
                            if (bits[csb] == 8) {
                                if (rc != 0) TEST_FAIL_("accepted \"%s\"", offer);
                                declined++;
                                continue;
                            }
                            const char *why = NULL;
                            int rc2 = accept_str(resp, &cc, &cp, &why);
                            if (rc != 1 || rc2 != 1 || memcmp(&sp, &cp, sizeof sp) != 0) {
                                TEST_FAIL_("offer \"%s\" resp \"%s\": %d %d %s", offer, resp, rc,
                                           rc2, why ? why : "");
                                return;
                            }
                            /* The agreement keeps every limit either side set. */
                            int cown = bits[ccb] < 9 ? 9 : bits[ccb];
                            int sown = bits[ssb] < 9 ? 9 : bits[ssb];
                            if (sp.server_max_window_bits > bits[csb] ||
                                sp.server_max_window_bits > sown ||
                                sp.client_max_window_bits > cown ||
                                sp.client_max_window_bits > bits[scb] ||
                                sp.server_no_context_takeover != ((cf | sf) & 1) ||
                                sp.client_no_context_takeover != (((cf | sf) & 2) != 0))
                                TEST_FAIL_("offer \"%s\" resp \"%s\": limits", offer, resp);
                            test_checks_++;
                        }
    CHECK_INT(combos, 4 * 4 * 125 * 5);
    CHECK_INT(declined, 4 * 4 * 125);
}

int main(void)
{
    RUN(server_single_params);
    RUN(server_combined_params);
    RUN(server_config);
    RUN(server_declines_bad_offers);
    RUN(server_several_offers);
    RUN(server_from_handshake);
    RUN(server_space_and_config_errors);
    RUN(client_offers);
    RUN(client_accepts_good_responses);
    RUN(client_rejects_bad_responses);
    RUN(negotiation_all_combinations);
    return test_summary("deflate_negotiate");
}
