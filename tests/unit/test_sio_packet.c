/*
 * Socket.IO v5 packet codec and JSON writer (src/sio): the protocol text's examples and the
 * reference server's bytes (docs/socketio.md) decoded and re-encoded byte for byte, JSON
 * text compared with what node's JSON.stringify printed for the same input, every
 * malformed class with its exact error, binary reassembly and its bounds, and a binary
 * event inside a polling payload split at every byte.
 */
#include "test.h"

#include "eio/packet.h"
#include "sio/packet.h"

/* JSON.parse then JSON.stringify in node 20, input -> output. */
static const char *const json_vectors[][2] = {
    {"[5e-324,1.7976931348623157e308,123.456,-1e-7,1e-6,0.000001234,1e20,"
     "123456789012345680000,9007199254740993,-5,3.14159,1e-7,2.5e-8,100000000000000000000000,"
     "0.1e1,-0.0,1E+2]",
     "[5e-324,1.7976931348623157e+308,123.456,-1e-7,0.000001,0.000001234,100000000000000000000,"
     "123456789012345680000,9007199254740992,-5,3.14159,1e-7,2.5e-8,1e+23,1,0,100]"},
    {"[1.0,0.1,100,1e2,1e21,-0,1.5e-7]", "[1,0.1,100,100,1e+21,0,1.5e-7]"},
    {"[9007199254740993,-9007199254740993,9007199254740992]",
     "[9007199254740992,-9007199254740992,9007199254740992]"},
    {"[\"\\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f\\u0010/\\u00e9\"]",
     "[\"\\\"\\\\\\b\\f\\n\\r\\t\\u0000\\u001f\\u0010/\xc3\xa9\"]"},
    {"[\"a/b\\u001f\\u0001\\u007f\xc3\xa9\xe2\x80\xa8\"]",
     "[\"a/b\\u001f\\u0001\x7f\xc3\xa9\xe2\x80\xa8\"]"},
    {"{ \"a\" : [ 1 , 2 ] , \"\" : { } , \"c\":[ ] }", "{\"a\":[1,2],\"\":{},\"c\":[]}"},
    {"{\"b\":1,\"a\":2,\"b\":3}", "{\"b\":3,\"a\":2}"},
    {"{\"z\":1,\"y\":{\"x\":true,\"w\":false,\"v\":null}}",
     "{\"z\":1,\"y\":{\"x\":true,\"w\":false,\"v\":null}}"},
    {" \"top\" ", "\"top\""},
};

/* Random doubles as node 20's JSON.stringify writes them (every 100th of 3000 checked when
 * this was written: all 3000 matched); each must come back unchanged. */
static const char *const js_numbers[] = {
    "[-4.282763870589833e-27]", "[-2.8864657509835315e-127]", "[5.383665553678704e-99]",
    "[-1.98308515709991e+194]", "[1.0316594571803129e-120]",  "[5.407323894802085e-137]",
    "[4.519889044469109e-12]",  "[0.0054561589436570345]",    "[1007625785720869.2]",
    "[60552951590349480]",      "[234636.5295118793]",        "[268935080451383.47]",
    "[0.0363544217639564]",     "[0.0009766084319735749]",    "[2.8377775151568362e-8]",
    "[9.733915286140115e-12]",  "[8.342082865871277e-12]",    "[2.1900537481079872e-12]",
    "[8.93406633818146e-18]",   "[59309079623.423485]",       "[7.107414458521032e-21]",
    "[292248894.39653134]",     "[6.348645619444999e-7]",     "[429392314692.07526]",
    "[45490359515.44016]",      "[2.6080717658964804e-22]",   "[36.57299527195625]",
    "[1.8992371053849008e-12]", "[0.0000050078215388869025]", "[62815586707859050]",
};

TEST(json_like_javascript)
{
    for (size_t i = 0; i < sizeof js_numbers / sizeof js_numbers[0]; i++) {
        json_t *v = wsx__json_parse((const uint8_t *)js_numbers[i], strlen(js_numbers[i]));
        CHECK(v != NULL);
        wsx__strbuf b = {0};
        if (v) CHECK_INT(wsx__json_write(&b, v), 0);
        CHECK_STRN(b.p, b.len, js_numbers[i]);
        wsx__strbuf_free(&b);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof json_vectors / sizeof json_vectors[0]; i++) {
        const char *in = json_vectors[i][0], *want = json_vectors[i][1];
        json_t *v = wsx__json_parse((const uint8_t *)in, strlen(in));
        CHECK(v != NULL);
        if (!v) continue;
        wsx__strbuf b = {0};
        CHECK_INT(wsx__json_write(&b, v), 0);
        CHECK_STRN(b.p, b.len, want);
        wsx__strbuf_free(&b);
        json_decref(v);
    }
    /* What JSON.parse refuses, jansson refuses too. */
    static const char *const bad[] = {"",     "[1,]", "{\"a\":1,}", "[1] x",      "'a'",
                                      "[01]", "NaN",  "[\"\x01\"]", "[\"\xff\"]", "{a:1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *v = wsx__json_parse((const uint8_t *)bad[i], strlen(bad[i]));
        if (v) TEST_FAIL_("%s parsed", bad[i]);
        test_checks_++;
        json_decref(v);
    }
    /* Values built in C: NaN and infinities are null, as in JavaScript. */
    wsx__strbuf b = {0};
    json_t *a = json_pack("[f,i,s#]", 2.5, (json_int_t)-7, "a\0b", (size_t)3);
    CHECK_INT(wsx__json_write(&b, a), 0);
    CHECK_STRN(b.p, b.len, "[2.5,-7,\"a\\u0000b\"]");
    json_decref(a);
    b.len = 0;
    CHECK_INT(wsx__json_write_real(&b, 1.0 / 0.0), 0);
    CHECK_INT(wsx__json_write_real(&b, -1.0 / 0.0), 0);
    CHECK_STRN(b.p, b.len, "nullnull");
    wsx__strbuf_free(&b);
}

/* Decodes one whole text packet (no attachments) and re-encodes it. */
static void round_trip(const char *text, int type, const char *nsp, long long id, const char *data)
{
    wsx__sio_decoder d;
    wsx__sio_decoder_init(&d, 0, 0);
    wsx__sio_packet p;
    test_guard g;
    const uint8_t *in = test_guard_copy(&g, text, strlen(text));
    int rc = wsx__sio_decoder_feed(&d, in, strlen(text), false, &p);
    CHECK_INT(rc, 1);
    if (rc == 1) {
        CHECK_INT(p.type, type);
        CHECK_STRN(p.nsp, p.nsp_len, nsp);
        CHECK_INT(p.has_id ? (long long)p.id : -1, id);
        wsx__strbuf b = {0};
        if (data) {
            CHECK(p.data != NULL);
            if (p.data) wsx__json_write(&b, p.data);
            CHECK_STRN(b.p, b.len, data);
        } else {
            CHECK(p.data == NULL);
        }
        b.len = 0;
        CHECK_INT(wsx__sio_encode(&b, &p), 0);
        CHECK_STRN(b.p, b.len, text);
        wsx__strbuf_free(&b);
    }
    test_guard_free(&g);
    wsx__sio_decoder_free(&d);
}

TEST(text_packets)
{
    /* socket.io-protocol v5, "Packet encoding" examples, and the reference's bytes. */
    round_trip("0", WSX__SIO_CONNECT, "/", -1, NULL);
    round_trip("0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", WSX__SIO_CONNECT, "/admin", -1,
               "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}");
    round_trip("0/custom,{\"token\":1}", WSX__SIO_CONNECT, "/custom", -1, "{\"token\":1}");
    round_trip("0{\"sid\":\"rsibTPGcdk8nFMHLAAAA\",\"pid\":\"9EBqDywnaxnBtufdAAAB\"}",
               WSX__SIO_CONNECT, "/", -1,
               "{\"sid\":\"rsibTPGcdk8nFMHLAAAA\",\"pid\":\"9EBqDywnaxnBtufdAAAB\"}");
    round_trip("0{\"pid\":\"9EBqDywnaxnBtufdAAAB\",\"offset\":\"Q8yODDt\"}", WSX__SIO_CONNECT, "/",
               -1, "{\"pid\":\"9EBqDywnaxnBtufdAAAB\",\"offset\":\"Q8yODDt\"}");
    round_trip("4{\"message\":\"Not authorized\"}", WSX__SIO_CONNECT_ERROR, "/", -1,
               "{\"message\":\"Not authorized\"}");
    round_trip("4/nope,{\"message\":\"Invalid namespace\"}", WSX__SIO_CONNECT_ERROR, "/nope", -1,
               "{\"message\":\"Invalid namespace\"}");
    round_trip("2[\"foo\"]", WSX__SIO_EVENT, "/", -1, "[\"foo\"]");
    round_trip("2/admin,[\"bar\"]", WSX__SIO_EVENT, "/admin", -1, "[\"bar\"]");
    round_trip("212[\"foo\"]", WSX__SIO_EVENT, "/", 12, "[\"foo\"]");
    round_trip("3/admin,13[\"bar\"]", WSX__SIO_ACK, "/admin", 13, "[\"bar\"]");
    round_trip("31[\"ok\",2]", WSX__SIO_ACK, "/", 1, "[\"ok\",2]");
    round_trip("30[]", WSX__SIO_ACK, "/", 0, "[]");
    round_trip("1", WSX__SIO_DISCONNECT, "/", -1, NULL);
    round_trip("1/admin,", WSX__SIO_DISCONNECT, "/admin", -1, NULL);
    round_trip("2[\"x\",1,\"Q8yOABc\"]", WSX__SIO_EVENT, "/", -1, "[\"x\",1,\"Q8yOABc\"]");
    round_trip("2[7]", WSX__SIO_EVENT, "/", -1, "[7]");
    round_trip("29007199254740991[\"a\"]", WSX__SIO_EVENT, "/", 9007199254740991ll, "[\"a\"]");
    round_trip("2[\"esc\",\"a/b \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \\u0001 "
               "\\\"q\\\" \\\\\"]",
               WSX__SIO_EVENT, "/", -1,
               "[\"esc\",\"a/b \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 \\u0001 "
               "\\\"q\\\" \\\\\"]");
    /* A "placeholder" in a text packet is an ordinary object, as in the reference. */
    round_trip("2[\"a\",{\"_placeholder\":true,\"num\":5}]", WSX__SIO_EVENT, "/", -1,
               "[\"a\",{\"_placeholder\":true,\"num\":5}]");

    /* Forms that decode but are not written back the same way. */
    wsx__sio_decoder d;
    wsx__sio_packet p;
    wsx__sio_decoder_init(&d, 0, 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"1/admin", 7, false, &p), 1);
    CHECK_STRN(p.nsp, p.nsp_len, "/admin");
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"2007[\"a\"]", 9, false, &p), 1);
    CHECK_INT(p.id, 7);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"2 [ \"a\" ]", 9, false, &p), 1);
    CHECK_INT(json_array_size(p.data), 1);
    wsx__sio_decoder_free(&d);
}

/* Feeds a text packet to a fresh decoder and checks the error and reason. */
static void check_bad(const char *text, int err, int reason)
{
    wsx__sio_decoder d;
    wsx__sio_decoder_init(&d, 0, 0);
    wsx__sio_packet p;
    test_guard g;
    const uint8_t *in = test_guard_copy(&g, text, strlen(text));
    int rc = wsx__sio_decoder_feed(&d, in, strlen(text), false, &p);
    if (rc != err || d.reason != reason)
        TEST_FAIL_("\"%s\": %s (%s), expected %s (%s)", text, wsx_err_name(rc),
                   wsx__sio_reason(d.reason), wsx_err_name(err), wsx__sio_reason(reason));
    test_checks_++;
    /* A failed decoder stays failed. */
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"0", 1, false, &p), err);
    test_guard_free(&g);
    wsx__sio_decoder_free(&d);
}

TEST(malformed)
{
    /* unknown type */
    check_bad("", WSX_EPROTO, WSX__SIO_R_TYPE);
    check_bad("7[\"a\"]", WSX_EPROTO, WSX__SIO_R_TYPE);
    check_bad("x", WSX_EPROTO, WSX__SIO_R_TYPE);
    check_bad("/2[\"a\"]", WSX_EPROTO, WSX__SIO_R_TYPE);
    /* bad JSON */
    check_bad("2[\"a\",", WSX_EPROTO, WSX__SIO_R_JSON);
    check_bad("2[\"a\"]x", WSX_EPROTO, WSX__SIO_R_JSON);
    check_bad("2/admin,{", WSX_EPROTO, WSX__SIO_R_JSON);
    check_bad("2/admin,x", WSX_EPROTO, WSX__SIO_R_JSON);
    check_bad("21x", WSX_EPROTO, WSX__SIO_R_JSON);
    check_bad("2[\"\\ud800\"]", WSX_EPROTO, WSX__SIO_R_JSON);
    check_bad("2[1e400]", WSX_EPROTO, WSX__SIO_R_JSON);
    /* bad attachment count */
    check_bad("5-[\"a\",{\"_placeholder\":true,\"num\":0}]", WSX_EPROTO, WSX__SIO_R_ATTACH);
    check_bad("50-[\"a\"]", WSX_EPROTO, WSX__SIO_R_ATTACH);
    check_bad("5a-[\"a\"]", WSX_EPROTO, WSX__SIO_R_ATTACH);
    check_bad("51[\"a\"]", WSX_EPROTO, WSX__SIO_R_ATTACH);
    check_bad("5", WSX_EPROTO, WSX__SIO_R_ATTACH);
    check_bad("51", WSX_EPROTO, WSX__SIO_R_ATTACH);
    check_bad("512345678901-[\"a\"]", WSX_EPROTO, WSX__SIO_R_ATTACH);
    check_bad("611-1[]", WSX_ETOOBIG, WSX__SIO_R_ATTACH_MAX);
    check_bad("54294967297-[\"a\"]", WSX_ETOOBIG, WSX__SIO_R_ATTACH_MAX);
    /* placeholder out of range */
    check_bad("51-[\"a\",{\"_placeholder\":true,\"num\":1}]", WSX_EPROTO, WSX__SIO_R_PLACEHOLDER);
    check_bad("51-[\"a\",{\"_placeholder\":true,\"num\":-1}]", WSX_EPROTO, WSX__SIO_R_PLACEHOLDER);
    check_bad("51-[\"a\",{\"_placeholder\":true,\"num\":\"0\"}]", WSX_EPROTO,
              WSX__SIO_R_PLACEHOLDER);
    check_bad("51-[\"a\",{\"_placeholder\":true,\"num\":0.5}]", WSX_EPROTO, WSX__SIO_R_PLACEHOLDER);
    check_bad("51-[\"a\",{\"_placeholder\":true}]", WSX_EPROTO, WSX__SIO_R_PLACEHOLDER);
    check_bad("61-1[{\"x\":[{\"_placeholder\":true,\"num\":3}]}]", WSX_EPROTO,
              WSX__SIO_R_PLACEHOLDER);
    /* namespace without '/' */
    check_bad("0admin,{}", WSX_EPROTO, WSX__SIO_R_NSP);
    check_bad("2admin,[\"a\"]", WSX_EPROTO, WSX__SIO_R_NSP);
    check_bad("51-admin,[\"a\",{\"_placeholder\":true,\"num\":0}]", WSX_EPROTO, WSX__SIO_R_NSP);
    /* ack id: overflow, or present/absent against the type */
    check_bad("29007199254740992[\"a\"]", WSX_EPROTO, WSX__SIO_R_ID);
    check_bad("218446744073709551617[\"a\"]", WSX_EPROTO, WSX__SIO_R_ID);
    check_bad("3/admin,99999999999999999999999[]", WSX_EPROTO, WSX__SIO_R_ID);
    check_bad("3[\"a\"]", WSX_EPROTO, WSX__SIO_R_ID);
    check_bad("012{}", WSX_EPROTO, WSX__SIO_R_ID);
    check_bad("11", WSX_EPROTO, WSX__SIO_R_ID);
    /* payload of the wrong shape */
    check_bad("2", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("2[]", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("2{}", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("2\"a\"", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("2[null]", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("2[[\"a\"]]", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("2[\"connect\"]", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("2[\"disconnecting\",1]", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("2/admin,[\"removeListener\"]", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("0[]", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("0\"tok\"", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("1{}", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("4", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("4[]", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("31{}", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("61-1{\"_placeholder\":true,\"num\":0}", WSX_EPROTO, WSX__SIO_R_PAYLOAD);
    check_bad("51-[\"a\",{\"_placeholder\":true,\"num\":1.0}]", WSX_EPROTO, WSX__SIO_R_PLACEHOLDER);
    /* a binary message with no binary packet open */
    wsx__sio_decoder d;
    wsx__sio_packet p;
    wsx__sio_decoder_init(&d, 0, 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"\x01", 1, true, &p), WSX_EPROTO);
    CHECK_INT(d.reason, WSX__SIO_R_UNEXPECTED_BINARY);
    wsx__sio_decoder_free(&d);
}

static const char bin_head[] = "52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},"
                               "{\"x\":{\"_placeholder\":true,\"num\":1}}]";

TEST(binary_reassembly)
{
    wsx__sio_decoder d;
    wsx__sio_packet p;
    wsx__sio_decoder_init(&d, 0, 0);
    /* The head's buffer is gone before the attachments come: the namespace is copied. */
    char *head = strdup(bin_head);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)head, strlen(head), false, &p), 0);
    memset(head, 'X', strlen(head));
    free(head);
    CHECK(wsx__sio_decoder_pending(&d));
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"\x01\x02", 2, true, &p), 0);
    CHECK(wsx__sio_decoder_pending(&d));
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"", 0, true, &p), 1);
    CHECK(!wsx__sio_decoder_pending(&d));
    CHECK_INT(p.type, WSX__SIO_BINARY_EVENT);
    CHECK_STRN(p.nsp, p.nsp_len, "/admin");
    CHECK_INT(p.n_att, 2);
    wsx__sio_buf b0, b1;
    CHECK_INT(wsx__sio_binary(&p, json_array_get(p.data, 1), &b0), 0);
    CHECK_MEM(b0.data, b0.len, "\x01\x02", 2);
    CHECK_INT(wsx__sio_binary(&p, json_object_get(json_array_get(p.data, 2), "x"), &b1), 0);
    CHECK_INT(b1.len, 0);
    CHECK_INT(wsx__sio_binary(&p, json_array_get(p.data, 0), &b0), WSX_EINVAL);
    /* Re-encoded, the head is the same bytes. */
    wsx__strbuf out = {0};
    CHECK_INT(wsx__sio_encode(&out, &p), 0);
    CHECK_STRN(out.p, out.len, bin_head);
    /* The next packet releases this one; then a text packet while attachments are awaited
     * fails. */
    const char *ack = "61-15[\"bar\",{\"_placeholder\":true,\"num\":0}]";
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)ack, strlen(ack), false, &p), 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"2[\"a\"]", 6, false, &p), WSX_EPROTO);
    CHECK_INT(d.reason, WSX__SIO_R_UNEXPECTED_TEXT);
    wsx__sio_decoder_free(&d);

    /* BINARY_ACK from the protocol text, round trip. */
    wsx__sio_decoder_init(&d, 0, 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)ack, strlen(ack), false, &p), 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"\x01\x02\x03\x04", 4, true, &p), 1);
    CHECK_INT(p.type, WSX__SIO_BINARY_ACK);
    CHECK_INT(p.id, 15);
    out.len = 0;
    CHECK_INT(wsx__sio_encode(&out, &p), 0);
    CHECK_STRN(out.p, out.len, ack);
    wsx__strbuf_free(&out);
    wsx__sio_decoder_free(&d);

    /* Freed while a packet is being reassembled: nothing leaks (ASan). */
    wsx__sio_decoder_init(&d, 0, 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)bin_head, strlen(bin_head), false, &p), 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"abc", 3, true, &p), 0);
    wsx__sio_decoder_free(&d);
}

TEST(placeholder_reals)
{
    /* An integer beyond 64 bits makes every number of the payload real; the placeholder's
     * 0.0 still names attachment 0, as in JavaScript. */
    static const char *const heads[] = {
        "51-[12345678901234567890,{\"_placeholder\":true,\"num\":0}]",
        "51-[\"a\",{\"_placeholder\":true,\"num\":0.0}]",
    };
    for (size_t i = 0; i < 2; i++) {
        wsx__sio_decoder d;
        wsx__sio_packet p;
        wsx__sio_decoder_init(&d, 0, 0);
        CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)heads[i], strlen(heads[i]), false, &p),
                  0);
        CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"z", 1, true, &p), 1);
        wsx__sio_buf b;
        CHECK_INT(wsx__sio_binary(&p, json_array_get(p.data, 1), &b), 0);
        CHECK_MEM(b.data, b.len, "z", 1);
        wsx__sio_decoder_free(&d);
    }
}

TEST(binary_bounds)
{
    wsx__sio_decoder d;
    wsx__sio_packet p;
    /* max_attachments: 2 allowed, 3 refused before anything is held. */
    wsx__sio_decoder_init(&d, 2, 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)bin_head, strlen(bin_head), false, &p), 0);
    wsx__sio_decoder_free(&d);
    wsx__sio_decoder_init(&d, 2, 0);
    const char *three = "53-[\"a\",{\"_placeholder\":true,\"num\":0}]";
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)three, strlen(three), false, &p),
              WSX_ETOOBIG);
    CHECK_INT(d.reason, WSX__SIO_R_ATTACH_MAX);
    CHECK(d.pend == NULL);
    wsx__sio_decoder_free(&d);
    /* max_bytes: the attachments of one packet total at most 5 bytes. */
    wsx__sio_decoder_init(&d, 0, 5);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)bin_head, strlen(bin_head), false, &p), 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"abc", 3, true, &p), 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"def", 3, true, &p), WSX_ETOOBIG);
    CHECK_INT(d.reason, WSX__SIO_R_TOO_BIG);
    CHECK_INT(wsx__sio_decoder_held(&d), 3);
    wsx__sio_decoder_free(&d);
    wsx__sio_decoder_init(&d, 0, 5);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)bin_head, strlen(bin_head), false, &p), 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"abc", 3, true, &p), 0);
    CHECK_INT(wsx__sio_decoder_feed(&d, (const uint8_t *)"de", 2, true, &p), 1);
    wsx__sio_decoder_free(&d);
}

/* Reference bytes: a GET answer holding a binary event and its two attachments as `b`
 * packets, and a client's POST; each through the polling decoder split at every byte and
 * then the Socket.IO decoder. */
static void polling_binary(const char *body, size_t len, const char *want_head, size_t n_att)
{
    for (size_t cut = 0; cut <= len; cut++) {
        wsx__eio_payload e;
        wsx__eio_payload_init(&e, 1000000);
        wsx__sio_decoder d;
        wsx__sio_decoder_init(&d, 0, 0);
        const uint8_t *parts[2] = {(const uint8_t *)body, (const uint8_t *)body + cut};
        size_t lens[2] = {cut, len - cut};
        int got = 0;
        wsx__strbuf out = {0};
        for (int k = 0; k < 2; k++) {
            size_t off = 0;
            for (;;) {
                wsx__eio_packet ep;
                ptrdiff_t rc =
                    wsx__eio_payload_feed(&e, parts[k] + off, lens[k] - off, k == 1, &ep);
                CHECK(rc >= 0);
                if (rc < 0) break;
                off += (size_t)rc;
                if (ep.type == WSX__EIO_NONE) break;
                CHECK_INT(ep.type, WSX__EIO_MESSAGE);
                wsx__sio_packet p;
                int r = wsx__sio_decoder_feed(&d, ep.data, ep.len, ep.binary, &p);
                CHECK(r >= 0);
                if (r == 1) {
                    got++;
                    CHECK_INT(p.n_att, n_att);
                    CHECK_INT(wsx__sio_encode(&out, &p), 0);
                    CHECK_STRN(out.p, out.len, want_head);
                    wsx__sio_buf b;
                    CHECK_INT(wsx__sio_binary(&p, json_array_get(p.data, 1), &b), 0);
                    CHECK_MEM(b.data, b.len, "\x01\x02\x03\x04", 4);
                }
            }
        }
        CHECK_INT(got, 1);
        wsx__strbuf_free(&out);
        wsx__sio_decoder_free(&d);
        wsx__eio_payload_free(&e);
    }
}

TEST(binary_over_polling)
{
    static const char get[] =
        "452-[\"bin\",{\"_placeholder\":true,\"num\":0},\"t\",{\"_placeholder\":"
        "true,\"num\":1}]\x1e"
        "bAQIDBA==\x1e"
        "b/w==";
    polling_binary(get, sizeof get - 1,
                   "52-[\"bin\",{\"_placeholder\":true,\"num\":0},\"t\",{\"_placeholder\":true,"
                   "\"num\":1}]",
                   2);
    static const char post[] = "451-7[\"ack\",{\"_placeholder\":true,\"num\":0}]\x1e"
                               "bAQIDBA==";
    polling_binary(post, sizeof post - 1, "51-7[\"ack\",{\"_placeholder\":true,\"num\":0}]", 1);
}

TEST(encode)
{
    wsx__strbuf b = {0};
    /* The reference's CONNECT answers, connect_error and events (docs/socketio.md). */
    json_t *sid = json_pack("{s:s}", "sid", "RUCLps002AwGxOMhAAAA");
    wsx__sio_packet p = {.type = WSX__SIO_CONNECT, .nsp = "/", .nsp_len = 1, .data = sid};
    CHECK_INT(wsx__sio_encode(&b, &p), 0);
    CHECK_STRN(b.p, b.len, "0{\"sid\":\"RUCLps002AwGxOMhAAAA\"}");
    b.len = 0;
    p.nsp = "/custom";
    p.nsp_len = 7;
    CHECK_INT(wsx__sio_encode(&b, &p), 0);
    CHECK_STRN(b.p, b.len, "0/custom,{\"sid\":\"RUCLps002AwGxOMhAAAA\"}");
    json_decref(sid);
    b.len = 0;
    json_t *msg = json_pack("{s:s}", "message", "Invalid namespace");
    p = (wsx__sio_packet){
        .type = WSX__SIO_CONNECT_ERROR, .nsp = "/nope", .nsp_len = 5, .data = msg};
    CHECK_INT(wsx__sio_encode(&b, &p), 0);
    CHECK_STRN(b.p, b.len, "4/nope,{\"message\":\"Invalid namespace\"}");
    json_decref(msg);
    b.len = 0;
    /* An EVENT with attachments is written as BINARY_EVENT with its count. */
    json_t *args =
        json_pack("[s,o,s,o]", "bin", wsx__sio_placeholder(0), "t", wsx__sio_placeholder(1));
    wsx__sio_buf att[2] = {{(const uint8_t *)"\x01\x02\x03\x04", 4}, {(const uint8_t *)"\xff", 1}};
    p = (wsx__sio_packet){
        .type = WSX__SIO_EVENT, .nsp = "/", .nsp_len = 1, .data = args, .n_att = 2, .att = att};
    CHECK_INT(wsx__sio_encode(&b, &p), 0);
    CHECK_STRN(b.p, b.len,
               "52-[\"bin\",{\"_placeholder\":true,\"num\":0},\"t\",{\"_placeholder\":true,"
               "\"num\":1}]");
    json_decref(args);
    b.len = 0;
    json_t *ok = json_pack("[s,i]", "ok", 2);
    p = (wsx__sio_packet){
        .type = WSX__SIO_ACK, .nsp = "/", .nsp_len = 1, .has_id = true, .id = 7, .data = ok};
    CHECK_INT(wsx__sio_encode(&b, &p), 0);
    CHECK_STRN(b.p, b.len, "37[\"ok\",2]");
    /* What the decoder would refuse is refused here, and b is left as it was. */
    size_t before = b.len;
    wsx__sio_packet bad = p;
    bad.has_id = false;
    CHECK_INT(wsx__sio_encode(&b, &bad), WSX_EINVAL);
    bad = p;
    bad.id = WSX__SIO_MAX_ID + 1;
    CHECK_INT(wsx__sio_encode(&b, &bad), WSX_EINVAL);
    bad = p;
    bad.nsp = "admin";
    bad.nsp_len = 5;
    CHECK_INT(wsx__sio_encode(&b, &bad), WSX_EINVAL);
    bad.nsp = "/a,b";
    bad.nsp_len = 4;
    CHECK_INT(wsx__sio_encode(&b, &bad), WSX_EINVAL);
    bad = p;
    bad.type = 7;
    CHECK_INT(wsx__sio_encode(&b, &bad), WSX_EINVAL);
    bad = p;
    bad.type = WSX__SIO_BINARY_ACK;
    CHECK_INT(wsx__sio_encode(&b, &bad), WSX_EINVAL);
    bad = p;
    bad.type = WSX__SIO_CONNECT;
    bad.has_id = false;
    bad.n_att = 1;
    CHECK_INT(wsx__sio_encode(&b, &bad), WSX_EINVAL);
    bad = p;
    bad.type = WSX__SIO_EVENT;
    bad.has_id = false;
    json_t *reserved = json_pack("[s]", "disconnect");
    bad.data = reserved;
    CHECK_INT(wsx__sio_encode(&b, &bad), WSX_EINVAL);
    json_decref(reserved);
    CHECK_INT(b.len, before);
    json_decref(ok);
    /* No namespace given means "/". */
    b.len = 0;
    p = (wsx__sio_packet){.type = WSX__SIO_DISCONNECT};
    CHECK_INT(wsx__sio_encode(&b, &p), 0);
    CHECK_STRN(b.p, b.len, "1");
    /* DISCONNECT from a namespace. */
    b.len = 0;
    p = (wsx__sio_packet){.type = WSX__SIO_DISCONNECT, .nsp = "/admin", .nsp_len = 6};
    CHECK_INT(wsx__sio_encode(&b, &p), 0);
    CHECK_STRN(b.p, b.len, "1/admin,");
    wsx__strbuf_free(&b);
}

int main(void)
{
    RUN(json_like_javascript);
    RUN(text_packets);
    RUN(malformed);
    RUN(binary_reassembly);
    RUN(placeholder_reals);
    RUN(binary_bounds);
    RUN(binary_over_polling);
    RUN(encode);
    return test_summary("sio_packet");
}
