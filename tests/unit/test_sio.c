/*
 * The Socket.IO server core (src/sio/sio.c, emit.c) on scripted sessions (sio_fake.h):
 * namespaces and CONNECT (the reference's answers byte for byte), middlewares, the packets a
 * client may not send, events and acks both ways (timeouts, bounds), binary, DISCONNECT
 * both ways with the reference's reasons, rooms and broadcast operators, shutdown.
 */
#include "test.h"

#include "sio_fake.h"

static wsx_loop *loop;

static wsx_sio *server(const wsx_sio_opts *o)
{
    wsx_sio *io = NULL;
    if (wsx__sio_new(loop, o, &fake_ops, &io) != 0) abort();
    return io;
}

/* The next logged message must be want (a '*' in want matches a 20-character id). */
#define EXPECT(f, want)                                                                            \
    do {                                                                                           \
        char *got_ = fake_pop(f);                                                                  \
        CHECK(got_ != NULL);                                                                       \
        if (got_) {                                                                                \
            if (!match_(got_, want)) TEST_FAIL_("got \"%s\", expected \"%s\"", got_, want);        \
            test_checks_++;                                                                        \
        }                                                                                          \
        free(got_);                                                                                \
    } while (0)
#define EXPECT_NONE(f) CHECK_INT((f)->n_log, 0)

static bool match_(const char *got, const char *want)
{
    while (*want) {
        if (*want == '*') {
            for (int i = 0; i < 20; i++, got++) {
                char ch = *got;
                bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
                if (!ok) return false;
            }
            want++;
            continue;
        }
        if (*got++ != *want++) return false;
    }
    return *got == 0;
}

/* What the callbacks saw. */
static struct {
    wsx_sio_socket *last;
    int connections, disconnects;
    char reason[64];
    char event[64];
    char args[256];
    size_t n_bins;
    bool has_ack;
    uint64_t ack_id;
    int acks;
    int ack_err;
    char ack_args[128];
} seen;

static void reset_seen(void)
{
    memset(&seen, 0, sizeof seen);
}

static void json_to(char *out, size_t cap, const json_t *v)
{
    wsx__strbuf b = {0};
    if (v && wsx__json_write(&b, v) == 0 && b.len < cap) {
        memcpy(out, b.p, b.len);
        out[b.len] = 0;
    } else {
        snprintf(out, cap, "(none)");
    }
    wsx__strbuf_free(&b);
}

static void on_any(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    snprintf(seen.event, sizeof seen.event, "%s", ev->name);
    json_to(seen.args, sizeof seen.args, ev->args);
    seen.n_bins = ev->n_bins;
    seen.has_ack = ev->has_ack;
    seen.ack_id = ev->ack_id;
}

/* Acks with its arguments and binary, as wsx sio's message-with-ack does. */
static void on_echo_ack(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    on_any(s, ev, user);
    if (ev->has_ack) wsx_sio_ack(s, ev->ack_id, json_incref(ev->args), ev->bins, ev->n_bins);
}

/* Sends the event back with its arguments, binary included. */
static void on_echo(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    on_any(s, ev, user);
    CHECK_INT(wsx_sio_emit(s, "message-back", json_incref(ev->args), ev->bins, ev->n_bins), 0);
}

static void on_disc(wsx_sio_socket *s, const char *reason, void *user)
{
    seen.disconnects++;
    snprintf(seen.reason, sizeof seen.reason, "%s", reason);
    if (seen.last == s) seen.last = NULL;
}

static void on_conn(wsx_sio_socket *s, void *user)
{
    seen.connections++;
    seen.last = s;
    wsx_sio_on(s, NULL, on_any, NULL);
    wsx_sio_on(s, "message", on_echo, NULL);
    wsx_sio_on(s, "message-with-ack", on_echo_ack, NULL);
    wsx_sio_on_disconnect(s, on_disc, NULL);
}

TEST(connect_and_namespaces)
{
    reset_seen();
    wsx_sio *io = server(NULL);
    wsx_sio_on_connection(wsx_sio_of(io, "/"), on_conn, NULL);
    wsx_sio_on_connection(wsx_sio_of(io, "/custom"), on_conn, NULL);
    CHECK(wsx_sio_of(io, "custom") == NULL);
    CHECK(wsx_sio_of(io, "/a,b") == NULL);
    CHECK(wsx_sio_of(io, "") == NULL);
    CHECK(wsx_sio_of(io, "/custom") == wsx_sio_of(io, "/custom"));
    fake_sess f;
    fake_open(io, &f);
    fake_feed(&f, "0");
    EXPECT(&f, "T0{\"sid\":\"*\"}");
    CHECK_INT(seen.connections, 1);
    CHECK(seen.last && strlen(wsx_sio_id(seen.last)) == 20);
    CHECK(seen.last && wsx_sio_handshake_auth(seen.last) == NULL);
    CHECK(seen.last && wsx_sio_in(seen.last, wsx_sio_id(seen.last)));
    /* Multiplexed: a second namespace on the same session, with auth. */
    fake_feed(&f, "0/custom,{\"token\":1}");
    EXPECT(&f, "T0/custom,{\"sid\":\"*\"}");
    CHECK_INT(seen.connections, 2);
    char auth[64];
    json_to(auth, sizeof auth, wsx_sio_handshake_auth(seen.last));
    CHECK_STR(auth, "{\"token\":1}");
    CHECK_INT(wsx_sio_sockets(io), 2);
    CHECK_INT(wsx_sio_nsp_sockets(wsx_sio_of(io, "/custom")), 1);
    /* The reference's answer to an unknown namespace; the session stays. */
    fake_feed(&f, "0/nope,");
    EXPECT(&f, "T4/nope,{\"message\":\"Invalid namespace\"}");
    CHECK_INT(f.close_asked, 0);
    fake_feed(&f, "2[\"hello\",1]");
    CHECK_STR(seen.event, "hello");
    CHECK_STR(seen.args, "[1]");
    fake_end(&f, "transport close");
    CHECK_INT(seen.disconnects, 2);
    CHECK_STR(seen.reason, "transport close");
    CHECK_INT(wsx_sio_sockets(io), 0);
    fake_clear(&f);
    wsx__sio_free_core(io);
}

static wsx_sio_nsp *dyn_hook(wsx_sio *io, const char *name, void *user)
{
    if (strncmp(name, "/dyn-", 5) != 0) return NULL;
    wsx_sio_nsp *n = wsx_sio_of(io, name);
    if (n) wsx_sio_on_connection(n, on_conn, NULL);
    return n;
}

TEST(namespace_hook)
{
    reset_seen();
    wsx_sio_opts o = wsx_sio_defaults();
    o.on_namespace = dyn_hook;
    o.max_namespaces = 3;
    wsx_sio *io = server(&o);
    fake_sess f;
    fake_open(io, &f);
    fake_feed(&f, "0/dyn-1,");
    EXPECT(&f, "T0/dyn-1,{\"sid\":\"*\"}");
    fake_feed(&f, "0/dyn-2,");
    EXPECT(&f, "T0/dyn-2,{\"sid\":\"*\"}");
    /* "/" and two made: the bound is reached, the next is refused like an unknown one. */
    fake_feed(&f, "0/dyn-3,");
    EXPECT(&f, "T4/dyn-3,{\"message\":\"Invalid namespace\"}");
    fake_feed(&f, "0/other,");
    EXPECT(&f, "T4/other,{\"message\":\"Invalid namespace\"}");
    CHECK_INT(seen.connections, 2);
    fake_end(&f, "transport close");
    fake_clear(&f);
    wsx__sio_free_core(io);
}

/* Each of these closes the session (socket.io's Client.ondecoded: "invalid state"), or is
 * a parse error (also a close). */
TEST(bad_packets_close)
{
    static const char *const first[] = {
        "2[\"a\"]",             /* an event before any CONNECT */
        "1",                    /* DISCONNECT from a namespace it is not in */
        "4{\"message\":\"x\"}", /* CONNECT_ERROR from a client */
        "31[1]",                /* an ack, no namespace */
        "x",                    /* not a packet */
        "2[\"a\",",             /* bad JSON */
        "0/a,b",                /* bad CONNECT payload */
    };
    wsx_sio *io = server(NULL);
    wsx_sio_on_connection(wsx_sio_of(io, "/"), on_conn, NULL);
    for (size_t i = 0; i < sizeof first / sizeof first[0]; i++) {
        reset_seen();
        fake_sess f;
        fake_open(io, &f);
        fake_feed(&f, first[i]);
        CHECK_INT(f.close_asked, 1);
        EXPECT_NONE(&f);
        fake_feed(&f, "0"); /* ignored once closing */
        EXPECT_NONE(&f);
        fake_end(&f, "forced close");
        CHECK_INT(seen.connections, 0);
    }
    /* CONNECT twice to one namespace: the socket ends with "forced close". */
    reset_seen();
    fake_sess f;
    fake_open(io, &f);
    fake_feed(&f, "0");
    EXPECT(&f, "T0{\"sid\":\"*\"}");
    fake_feed(&f, "0");
    CHECK_INT(f.close_asked, 1);
    EXPECT_NONE(&f);
    fake_end(&f, "forced close");
    CHECK_INT(seen.disconnects, 1);
    CHECK_STR(seen.reason, "forced close");
    /* An event to a namespace the client is not in. */
    reset_seen();
    fake_open(io, &f);
    fake_feed(&f, "0");
    EXPECT(&f, "T0{\"sid\":\"*\"}");
    fake_feed(&f, "2/custom,[\"a\"]");
    CHECK_INT(f.close_asked, 1);
    fake_end(&f, "forced close");
    /* More attachments than max_attachments (10). */
    fake_open(io, &f);
    fake_feed(&f, "0");
    fake_clear(&f);
    fake_feed(&f, "511-[\"a\"]");
    CHECK_INT(f.close_asked, 1);
    fake_end(&f, "forced close");
    wsx__sio_free_core(io);
}

static int mw_calls;
static int mw_refuse(wsx_sio_socket *s, json_t *auth, json_t **error, void *user)
{
    mw_calls++;
    CHECK(strlen(wsx_sio_id(s)) == 20);
    CHECK_INT(wsx_sio_emit(s, "x", NULL, NULL, 0), WSX_ECLOSED);
    CHECK_INT(wsx_sio_join(s, "during-middleware"), 0);
    json_t *tok = json_object_get(auth, "token");
    if (json_is_string(tok) && strcmp(json_string_value(tok), "good") == 0) return 0;
    if (user) *error = json_pack("{ss s{si}}", "message", "bad token", "data", "code", 7);
    return 1;
}

TEST(middleware)
{
    reset_seen();
    mw_calls = 0;
    wsx_sio *io = server(NULL);
    wsx_sio_nsp *root = wsx_sio_of(io, "/");
    wsx_sio_nsp *custom = wsx_sio_of(io, "/custom");
    wsx_sio_on_connection(root, on_conn, NULL);
    wsx_sio_on_connection(custom, on_conn, NULL);
    CHECK_INT(wsx_sio_use(root, mw_refuse, (void *)1), 0);
    CHECK_INT(wsx_sio_use(custom, mw_refuse, NULL), 0);
    fake_sess f;
    fake_open(io, &f);
    fake_feed(&f, "0{\"token\":\"bad\"}");
    EXPECT(&f, "T4{\"message\":\"bad token\",\"data\":{\"code\":7}}");
    fake_feed(&f, "0/custom,");
    EXPECT(&f, "T4/custom,{\"message\":\"not authorized\"}");
    CHECK_INT(seen.connections, 0);
    CHECK_INT(wsx_hub_subscribers(wsx_hub_of(loop), "sio:1:/during-middleware"), 0);
    CHECK_INT(wsx_hub_topics(wsx_hub_of(loop)), 2); /* the namespaces' own */
    CHECK_INT(f.close_asked, 0);
    fake_feed(&f, "0{\"token\":\"good\"}");
    EXPECT(&f, "T0{\"sid\":\"*\"}");
    CHECK_INT(seen.connections, 1);
    CHECK(seen.last && wsx_sio_in(seen.last, "during-middleware"));
    CHECK_INT(mw_calls, 3);
    /* A CONNECT above max_auth_bytes (16384) is refused; the session stays. */
    char *big = malloc(20000);
    memcpy(big, "0/custom,{\"t\":\"", 15);
    memset(big + 15, 'a', 19000);
    memcpy(big + 19015, "\"}", 3);
    fake_feed(&f, big);
    free(big);
    EXPECT(&f, "T4/custom,{\"message\":\"CONNECT payload too large\"}");
    CHECK_INT(f.close_asked, 0);
    fake_end(&f, "ping timeout");
    CHECK_STR(seen.reason, "ping timeout");
    CHECK_INT(wsx_hub_topics(wsx_hub_of(loop)), 2);
    fake_clear(&f);
    wsx__sio_free_core(io);
    CHECK_INT(wsx_hub_topics(wsx_hub_of(loop)), 0);
}

TEST(events_and_client_acks)
{
    reset_seen();
    wsx_sio *io = server(NULL);
    wsx_sio_on_connection(wsx_sio_of(io, "/"), on_conn, NULL);
    fake_sess f;
    fake_open(io, &f);
    fake_feed(&f, "0");
    fake_clear(&f);
    fake_feed(&f, "2[\"message\",\"a/b \xc3\xa9\",{\"x\":[1,0.1]},null]");
    EXPECT(&f, "T2[\"message-back\",\"a/b \xc3\xa9\",{\"x\":[1,0.1]},null]");
    fake_feed(&f, "213[\"message-with-ack\",1,\"two\"]");
    CHECK(seen.has_ack);
    CHECK_INT(seen.ack_id, 13);
    EXPECT(&f, "T313[1,\"two\"]");
    /* A number as the event's name, as JavaScript's String(n) writes it. */
    fake_feed(&f, "2[42,true]");
    CHECK_STR(seen.event, "42");
    fake_feed(&f, "2[1.5]");
    CHECK_STR(seen.event, "1.5");
    CHECK_STR(seen.args, "[]");
    /* Binary: placeholders index the attachments; the echo sends the same back. */
    fake_feed(&f, "51-[\"message\",{\"_placeholder\":true,\"num\":0},\"t\"]");
    EXPECT_NONE(&f);
    fake_feed_bin(&f, "\x01\x02\x03", 3);
    CHECK_INT(seen.n_bins, 1);
    EXPECT(&f, "T51-[\"message-back\",{\"_placeholder\":true,\"num\":0},\"t\"]");
    EXPECT(&f, "B010203");
    fake_feed(&f, "52-7[\"message-with-ack\",{\"_placeholder\":true,\"num\":1},"
                  "{\"_placeholder\":true,\"num\":0}]");
    fake_feed_bin(&f, "\xff", 1);
    fake_feed_bin(&f, "", 0);
    EXPECT(&f, "T62-7[{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0}]");
    EXPECT(&f, "Bff");
    EXPECT(&f, "B");
    /* Reserved names and bad placeholders are the caller's error; nothing is sent. */
    wsx_sio_socket *s = seen.last;
    CHECK_INT(wsx_sio_emit(s, "disconnect", NULL, NULL, 0), WSX_EINVAL);
    CHECK_INT(wsx_sio_emit(s, "x", json_pack("{}"), NULL, 0), WSX_EINVAL);
    wsx_sio_bin bin = {(const uint8_t *)"z", 1};
    CHECK_INT(wsx_sio_emit(s, "x", json_pack("[o]", wsx_sio_placeholder(1)), &bin, 1), WSX_EINVAL);
    CHECK_INT(wsx_sio_emit(s, "x", json_pack("[o]", wsx_sio_placeholder(0)), &bin, 1), 0);
    EXPECT(&f, "T51-[\"x\",{\"_placeholder\":true,\"num\":0}]");
    EXPECT(&f, "B7a");
    CHECK_INT(wsx_sio_ack(s, 9007199254740992ull, NULL, NULL, 0), WSX_EINVAL);
    CHECK_INT(wsx_sio_ack(s, 5, NULL, NULL, 0), 0);
    EXPECT(&f, "T35[]");
    EXPECT_NONE(&f);
    fake_end(&f, "transport close");
    fake_clear(&f);
    wsx__sio_free_core(io);
}

static void ack_cb(wsx_sio_socket *s, int err, json_t *args, const wsx_sio_bin *bins, size_t n,
                   void *user)
{
    seen.acks++;
    seen.ack_err = err;
    json_to(seen.ack_args, sizeof seen.ack_args, args);
    seen.n_bins = n;
}

static void stop_loop(wsx_timer *t, void *arg)
{
    wsx_loop_stop(loop);
}

TEST(server_acks)
{
    reset_seen();
    wsx_sio_opts o = wsx_sio_defaults();
    o.max_pending_acks = 3;
    wsx_sio *io = server(&o);
    wsx_sio_on_connection(wsx_sio_of(io, "/"), on_conn, NULL);
    fake_sess f;
    fake_open(io, &f);
    fake_feed(&f, "0");
    fake_clear(&f);
    wsx_sio_socket *s = seen.last;
    CHECK_INT(wsx_sio_emit_ack(s, "q", json_pack("[i]", 1), NULL, 0, ack_cb, 0, NULL), 0);
    EXPECT(&f, "T20[\"q\",1]");
    CHECK_INT(wsx_sio_emit_ack(s, "q", NULL, NULL, 0, ack_cb, 20, NULL), 0);
    EXPECT(&f, "T21[\"q\"]");
    CHECK_INT(wsx_sio_emit_ack(s, "q", NULL, NULL, 0, ack_cb, 0, NULL), 0);
    EXPECT(&f, "T22[\"q\"]");
    CHECK_INT(wsx_sio_emit_ack(s, "q", NULL, NULL, 0, ack_cb, 0, NULL), WSX_ELIMIT);
    EXPECT_NONE(&f);
    fake_feed(&f, "30[\"r\",2]");
    CHECK_INT(seen.acks, 1);
    CHECK_INT(seen.ack_err, 0);
    CHECK_STR(seen.ack_args, "[\"r\",2]");
    fake_feed(&f, "30[\"again\"]"); /* answered already: ignored */
    fake_feed(&f, "399[]");         /* unknown: ignored */
    CHECK_INT(seen.acks, 1);
    CHECK_INT(f.close_asked, 0);
    /* Binary answer. */
    fake_feed(&f, "61-2[{\"_placeholder\":true,\"num\":0}]");
    fake_feed_bin(&f, "\x05", 1);
    CHECK_INT(seen.acks, 2);
    CHECK_INT(seen.n_bins, 1);
    /* Id 1 times out after 20 ms. */
    wsx_timer_start(loop, 200, 0, stop_loop, NULL, NULL);
    seen.acks = 0;
    while (seen.acks == 0 && wsx_loop_run(loop) == 0 && seen.acks == 0) {
    }
    CHECK_INT(seen.acks, 1);
    CHECK_INT(seen.ack_err, WSX_ETIMEDOUT);
    CHECK_STR(seen.ack_args, "(none)");
    fake_feed(&f, "31[\"late\"]");
    CHECK_INT(seen.acks, 1);
    /* Pending at disconnect: WSX_ECLOSED. */
    CHECK_INT(wsx_sio_emit_ack(s, "q", NULL, NULL, 0, ack_cb, 0, NULL), 0);
    EXPECT(&f, "T23[\"q\"]");
    seen.acks = 0;
    fake_feed(&f, "1");
    CHECK_INT(seen.acks, 1);
    CHECK_INT(seen.ack_err, WSX_ECLOSED);
    CHECK_STR(seen.reason, "client namespace disconnect");
    CHECK_INT(f.close_asked, 0);
    fake_end(&f, "transport close");
    fake_clear(&f);
    wsx__sio_free_core(io);
}

TEST(disconnects)
{
    reset_seen();
    wsx_sio *io = server(NULL);
    wsx_sio_on_connection(wsx_sio_of(io, "/"), on_conn, NULL);
    wsx_sio_on_connection(wsx_sio_of(io, "/custom"), on_conn, NULL);
    fake_sess f;
    fake_open(io, &f);
    fake_feed(&f, "0/custom,");
    wsx_sio_socket *c = seen.last;
    fake_feed(&f, "0");
    wsx_sio_socket *r = seen.last;
    fake_clear(&f);
    wsx_sio_disconnect(c, false);
    EXPECT(&f, "T1/custom,");
    CHECK_STR(seen.reason, "server namespace disconnect");
    CHECK_INT(f.close_asked, 0);
    /* The namespace may be joined again. */
    fake_feed(&f, "0/custom,");
    EXPECT(&f, "T0/custom,{\"sid\":\"*\"}");
    seen.disconnects = 0;
    wsx_sio_disconnect(r, true);
    CHECK_INT(seen.disconnects, 2);
    CHECK_INT(f.close_asked, 1);
    char *a = fake_pop(&f), *b = fake_pop(&f);
    CHECK(a && b &&
          ((strcmp(a, "T1") == 0 && strcmp(b, "T1/custom,") == 0) ||
           (strcmp(b, "T1") == 0 && strcmp(a, "T1/custom,") == 0)));
    free(a);
    free(b);
    fake_end(&f, "forced close");
    CHECK_INT(seen.disconnects, 2);
    CHECK_INT(wsx_sio_sockets(io), 0);
    fake_clear(&f);

    /* Shutdown: every socket gets "server shutting down". */
    fake_sess g;
    fake_open(io, &g);
    fake_feed(&g, "0");
    seen.disconnects = 0;
    wsx__sio_free_core(io);
    CHECK_INT(seen.disconnects, 1);
    CHECK_STR(seen.reason, "server shutting down");
    CHECK_INT(g.close_asked, 0);
    fake_clear(&g);
}

TEST(connect_timeout)
{
    wsx_sio_opts o = wsx_sio_defaults();
    o.connect_timeout_ms = 20;
    wsx_sio *io = server(&o);
    fake_sess f, g;
    fake_open(io, &f);
    fake_open(io, &g);
    fake_feed(&g, "0");
    fake_clear(&g);
    wsx_timer_start(loop, 300, 0, stop_loop, NULL, NULL);
    while (!f.close_asked && wsx_loop_run(loop) == 0 && !f.close_asked) {
    }
    CHECK_INT(f.close_asked, 1);
    CHECK_INT(g.close_asked, 0); /* connected in time */
    fake_end(&f, "forced close");
    fake_end(&g, "transport close");
    wsx__sio_free_core(io);
}

static wsx_sio_socket *connect_one(wsx_sio *io, fake_sess *f, const char *nsp)
{
    char pkt[64];
    snprintf(pkt, sizeof pkt, "0%s%s", strcmp(nsp, "/") ? nsp : "", strcmp(nsp, "/") ? "," : "");
    seen.last = NULL;
    fake_feed(f, pkt);
    fake_clear(f);
    return seen.last;
}

TEST(rooms_and_broadcast)
{
    reset_seen();
    wsx_sio_opts o = wsx_sio_defaults();
    o.max_rooms = 4;
    wsx_sio *io = server(&o);
    wsx_sio_nsp *root = wsx_sio_of(io, "/"), *custom = wsx_sio_of(io, "/custom");
    wsx_sio_on_connection(root, on_conn, NULL);
    wsx_sio_on_connection(custom, on_conn, NULL);
    fake_sess f[4];
    wsx_sio_socket *s[4];
    for (int i = 0; i < 3; i++) {
        fake_open(io, &f[i]);
        s[i] = connect_one(io, &f[i], "/");
    }
    fake_open(io, &f[3]);
    s[3] = connect_one(io, &f[3], "/custom");
    CHECK(s[0] && s[1] && s[2] && s[3]);
    CHECK_INT(wsx_sio_join(s[0], "a"), 0);
    CHECK_INT(wsx_sio_join(s[0], "a"), 0);
    CHECK_INT(wsx_sio_join(s[0], "b"), 0);
    CHECK_INT(wsx_sio_join(s[1], "b"), 0);
    CHECK_INT(wsx_sio_join(s[3], "a"), 0); /* another namespace's "a" */
    CHECK_INT(wsx_sio_join(s[0], ""), WSX_EINVAL);
    CHECK_INT(wsx_sio_join(s[0], "c"), 0);
    CHECK_INT(wsx_sio_join(s[0], "d"), WSX_ELIMIT); /* own room, a, b, c */
    CHECK_INT(wsx_hub_subscribers(wsx_hub_of(loop), "sio:1:/a"), 1);
    CHECK_INT(wsx_hub_subscribers(wsx_hub_of(loop), "sio:7:/customa"), 1);

    /* To all of "/": three sockets, once each. */
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = root}, "all", json_pack("[i]", 1), NULL, 0),
              3);
    for (int i = 0; i < 3; i++)
        EXPECT(&f[i], "T2[\"all\",1]");
    EXPECT_NONE(&f[3]);
    /* Rooms a and b: s0 is in both and gets it once. */
    const char *ab[] = {"a", "b"};
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .rooms = ab, .n_rooms = 2}, "ab", NULL,
                                NULL, 0),
              2);
    EXPECT(&f[0], "T2[\"ab\"]");
    EXPECT_NONE(&f[0]);
    EXPECT(&f[1], "T2[\"ab\"]");
    EXPECT_NONE(&f[2]);
    EXPECT_NONE(&f[3]);
    /* Except a room, except the sender. */
    const char *ex[] = {"a"};
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .except_rooms = ex, .n_except = 1}, "ex",
                                NULL, NULL, 0),
              2);
    EXPECT_NONE(&f[0]);
    EXPECT(&f[1], "T2[\"ex\"]");
    EXPECT(&f[2], "T2[\"ex\"]");
    CHECK_INT(wsx_sio_broadcast(
                  &(wsx_sio_to){.nsp = root, .rooms = ab + 1, .n_rooms = 1, .except_socket = s[1]},
                  "b", NULL, NULL, 0),
              1);
    EXPECT(&f[0], "T2[\"b\"]");
    EXPECT_NONE(&f[1]);
    /* To one socket's own room. */
    const char *own[] = {wsx_sio_id(s[2])};
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .rooms = own, .n_rooms = 1}, "own", NULL,
                                NULL, 0),
              1);
    EXPECT(&f[2], "T2[\"own\"]");
    /* Another namespace: its own prefix on the packet. */
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = custom, .rooms = ab, .n_rooms = 1}, "c",
                                json_pack("[s]", "x"), NULL, 0),
              1);
    EXPECT(&f[3], "T2/custom,[\"c\",\"x\"]");
    EXPECT_NONE(&f[0]);
    /* Volatile: skipped where the session cannot take it now. */
    f[1].not_writable = true;
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .volatile_ = true}, "v", NULL, NULL, 0),
              2);
    EXPECT_NONE(&f[1]);
    EXPECT(&f[0], "T2[\"v\"]");
    EXPECT(&f[2], "T2[\"v\"]");
    /* Binary: the head shared, attachments per recipient. */
    wsx_sio_bin bin = {(const uint8_t *)"\x00\x01", 2};
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .rooms = ab, .n_rooms = 1}, "bin",
                                json_pack("[o]", wsx_sio_placeholder(0)), &bin, 1),
              1);
    EXPECT(&f[0], "T51-[\"bin\",{\"_placeholder\":true,\"num\":0}]");
    EXPECT(&f[0], "B0001");
    /* Leave. */
    CHECK_INT(wsx_sio_leave(s[0], "a"), 0);
    CHECK_INT(wsx_sio_leave(s[0], "a"), WSX_ENOTFOUND);
    CHECK(!wsx_sio_in(s[0], "a"));
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .rooms = ab, .n_rooms = 1}, "a", NULL,
                                NULL, 0),
              0);
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = NULL}, "a", NULL, NULL, 0), WSX_EINVAL);
    CHECK_INT(wsx_sio_broadcast(&(wsx_sio_to){.nsp = root}, "connect", NULL, NULL, 0), WSX_EINVAL);
    for (int i = 0; i < 4; i++) {
        fake_end(&f[i], "transport close");
        fake_clear(&f[i]);
    }
    CHECK_INT(wsx_hub_topics(wsx_hub_of(loop)), 2);
    wsx__sio_free_core(io);
    CHECK_INT(wsx_hub_topics(wsx_hub_of(loop)), 0);
}

static int mw_count;
static int mw_count_cb(wsx_sio_socket *s, json_t *auth, json_t **error, void *user)
{
    mw_count++;
    return 0;
}

/* The string value of key in the JSON object that starts at text + skip. */
static void json_field(const char *text, size_t skip, const char *key, char *out, size_t cap)
{
    out[0] = 0;
    json_t *v = wsx__json_parse((const uint8_t *)text + skip, strlen(text) - skip);
    const char *x = json_string_value(json_object_get(v, key));
    if (x) snprintf(out, cap, "%s", x);
    json_decref(v);
}

/* Connects "/" with recovery on; writes the sid and pid of the CONNECT answer. */
static wsx_sio_socket *connect_rec(fake_sess *f, const char *payload, char *sid, char *pid)
{
    char pkt[128];
    snprintf(pkt, sizeof pkt, "0%s", payload);
    seen.last = NULL;
    fake_feed(f, pkt);
    char *a = fake_pop(f);
    CHECK(a && strncmp(a, "T0{\"sid\":\"", 9) == 0);
    if (a) {
        json_field(a, 2, "sid", sid, 32);
        json_field(a, 2, "pid", pid, 32);
    }
    free(a);
    CHECK_INT(strlen(sid), 20);
    CHECK_INT(strlen(pid), 20);
    return seen.last;
}

TEST(recovery)
{
    reset_seen();
    mw_count = 0;
    wsx_sio_opts o = wsx_sio_defaults();
    o.recovery_ms = 60000;
    o.recovery_max_packets = 8;
    wsx_sio *io = server(&o);
    wsx_sio_nsp *root = wsx_sio_of(io, "/");
    wsx_sio_on_connection(root, on_conn, NULL);
    wsx_sio_use(root, mw_count_cb, NULL);
    fake_sess f, g;
    fake_open(io, &f);
    fake_open(io, &g);
    char sid[32], pid[32], sid2[32], pid2[32];
    wsx_sio_socket *s = connect_rec(&f, "", sid, pid);
    wsx_sio_socket *t = connect_rec(&g, "", sid2, pid2);
    CHECK(s && t && !wsx_sio_recovered(s));
    CHECK_INT(mw_count, 2);
    CHECK_INT(wsx_sio_join(s, "r1"), 0);
    /* Every event without ack carries an offset; acks and events with acks do not. */
    CHECK_INT(wsx_sio_emit(s, "x", json_pack("[i]", 1), NULL, 0), 0);
    char *e = fake_pop(&f);
    CHECK(e && strncmp(e, "T2[\"x\",1,\"", 10) == 0);
    char offset[32] = "";
    if (e) {
        json_t *v = wsx__json_parse((const uint8_t *)e + 2, strlen(e) - 2);
        snprintf(offset, sizeof offset, "%s", json_string_value(json_array_get(v, 2)));
        json_decref(v);
    }
    free(e);
    CHECK(offset[0] != 0);
    CHECK_INT(wsx_sio_emit_ack(s, "q", NULL, NULL, 0, ack_cb, 0, NULL), 0);
    EXPECT(&f, "T20[\"q\"]");
    CHECK_INT(wsx_sio_ack(s, 3, NULL, NULL, 0), 0);
    EXPECT(&f, "T33[]");
    /* The transport drops; meanwhile: one to its room, one to all, one excluding its room,
     * one to another room, one volatile (never kept), one to the other socket alone. */
    fake_end(&f, "transport close");
    CHECK(s == NULL || seen.last != s);
    const char *r1[] = {"r1"}, *r2[] = {"r2"};
    wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .rooms = r1, .n_rooms = 1}, "room", NULL, NULL, 0);
    wsx_sio_bin bin = {(const uint8_t *)"\x07", 1};
    wsx_sio_broadcast(&(wsx_sio_to){.nsp = root}, "all", json_pack("[o]", wsx_sio_placeholder(0)),
                      &bin, 1);
    wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .except_rooms = r1, .n_except = 1}, "not-r1", NULL,
                      NULL, 0);
    wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .rooms = r2, .n_rooms = 1}, "r2", NULL, NULL, 0);
    wsx_sio_broadcast(&(wsx_sio_to){.nsp = root, .volatile_ = true}, "vol", NULL, NULL, 0);
    wsx_sio_emit(t, "t-only", NULL, NULL, 0);
    fake_clear(&g);

    /* Back with its pid and last offset: the missed packets, then the old sid and pid. */
    fake_sess h;
    fake_open(io, &h);
    char pkt[160];
    snprintf(pkt, sizeof pkt, "0{\"pid\":\"%s\",\"offset\":\"%s\",\"k\":1}", pid, offset);
    seen.last = NULL;
    fake_feed(&h, pkt);
    char *m1 = fake_pop(&h), *m2 = fake_pop(&h), *m3 = fake_pop(&h), *m4 = fake_pop(&h);
    CHECK(m1 && strncmp(m1, "T2[\"room\",\"", 11) == 0);
    CHECK(m2 && strncmp(m2, "T51-[\"all\",{\"_placeholder\":true,\"num\":0},\"", 42) == 0);
    CHECK(m3 && strcmp(m3, "B07") == 0);
    char want[128];
    snprintf(want, sizeof want, "T0{\"sid\":\"%s\",\"pid\":\"%s\"}", sid, pid);
    CHECK(m4 && strcmp(m4, want) == 0);
    free(m1);
    free(m2);
    free(m3);
    free(m4);
    EXPECT_NONE(&h);
    CHECK(seen.last != NULL && wsx_sio_recovered(seen.last));
    CHECK(seen.last && strcmp(wsx_sio_id(seen.last), sid) == 0);
    CHECK(seen.last && wsx_sio_in(seen.last, "r1") && wsx_sio_in(seen.last, sid));
    CHECK_INT(mw_count, 2); /* middlewares skipped */
    /* The record is used up: the same pid again gets a fresh socket. */
    fake_sess k;
    fake_open(io, &k);
    char sid3[32], pid3[32];
    connect_rec(&k, pkt + 1, sid3, pid3);
    CHECK(strcmp(sid3, sid) != 0 && strcmp(pid3, pid) != 0);
    CHECK(seen.last && !wsx_sio_recovered(seen.last));
    /* A client's own disconnect leaves no record. */
    fake_feed(&g, "1");
    fake_sess l;
    fake_open(io, &l);
    snprintf(pkt, sizeof pkt, "{\"pid\":\"%s\",\"offset\":\"%s\"}", pid2, offset);
    connect_rec(&l, pkt, sid3, pid3);
    CHECK(strcmp(sid3, sid2) != 0);
    /* An offset the ring no longer holds (8 packets): a fresh socket. */
    fake_end(&h, "ping timeout");
    for (int i = 0; i < 9; i++)
        wsx_sio_broadcast(&(wsx_sio_to){.nsp = root}, "z", NULL, NULL, 0);
    fake_sess q;
    fake_open(io, &q);
    snprintf(pkt, sizeof pkt, "{\"pid\":\"%s\",\"offset\":\"%s\"}", pid, offset);
    connect_rec(&q, pkt, sid3, pid3);
    CHECK(strcmp(sid3, sid) != 0);
    CHECK(seen.last && !wsx_sio_recovered(seen.last));
    fake_sess *all[] = {&f, &g, &h, &k, &l, &q};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        fake_end(all[i], "transport close");
        fake_clear(all[i]);
    }
    wsx__sio_free_core(io);
}

/* The recovery bounds in bytes: a record whose room names pass recovery_max_bytes is not
 * kept, nor a packet bigger than the ring; the clients then get fresh sockets. */
TEST(recovery_bounds)
{
    reset_seen();
    wsx_sio_opts o = wsx_sio_defaults();
    o.recovery_ms = 60000;
    o.recovery_max_bytes = 1024;
    wsx_sio *io = server(&o);
    wsx_sio_nsp *root = wsx_sio_of(io, "/");
    wsx_sio_on_connection(root, on_conn, NULL);
    fake_sess f, g, h;
    fake_open(io, &f);
    fake_open(io, &g);
    char sid[32], pid[32], sid2[32], pid2[32], x[32], y[32];
    wsx_sio_socket *s = connect_rec(&f, "", sid, pid);
    wsx_sio_socket *t = connect_rec(&g, "", sid2, pid2);
    char room[300];
    for (int i = 0; i < 4; i++) {
        memset(room, 'a' + i, sizeof room - 1);
        room[sizeof room - 1] = 0;
        CHECK_INT(wsx_sio_join(s, room), 0); /* 4 x 300 bytes of names: over 1024 */
    }
    CHECK_INT(wsx_sio_emit(s, "x", NULL, NULL, 0), 0);
    char *e = fake_pop(&f);
    char offset[32] = "";
    if (e) snprintf(offset, sizeof offset, "%.*s", (int)(strlen(e) - 10), e + 8); /* T2["x","O"] */
    free(e);
    CHECK_INT(wsx_sio_emit(t, "y", NULL, NULL, 0), 0);
    e = fake_pop(&g);
    char offset2[32] = "";
    if (e) snprintf(offset2, sizeof offset2, "%.*s", (int)(strlen(e) - 10), e + 8);
    free(e);
    fake_end(&f, "transport close");
    fake_end(&g, "transport close");
    /* A packet bigger than the ring: sent, not kept; t's offset is still there. */
    char big[1100];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    wsx_sio_broadcast(&(wsx_sio_to){.nsp = root}, "big", json_pack("[s]", big), NULL, 0);
    fake_open(io, &h);
    char pkt[160];
    snprintf(pkt, sizeof pkt, "{\"pid\":\"%s\",\"offset\":\"%s\"}", pid, offset);
    connect_rec(&h, pkt, x, y);
    CHECK(strcmp(x, sid) != 0); /* the record was too big to keep */
    fake_sess k;
    fake_open(io, &k);
    snprintf(pkt, sizeof pkt, "0{\"pid\":\"%s\",\"offset\":\"%s\"}", pid2, offset2);
    fake_feed(&k, pkt);
    char want[128];
    snprintf(want, sizeof want, "T0{\"sid\":\"%s\",\"pid\":\"%s\"}", sid2, pid2);
    EXPECT(&k, want); /* recovered, and nothing replayed: the big packet was not kept */
    EXPECT_NONE(&k);
    fake_sess *all[] = {&h, &k};
    for (size_t i = 0; i < 2; i++) {
        fake_end(all[i], "transport close");
        fake_clear(all[i]);
    }
    fake_clear(&f);
    fake_clear(&g);
    wsx__sio_free_core(io);
}

static char handled[64];
static void h_mark(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    snprintf(handled, sizeof handled, "%s:%s", (const char *)user, ev->name);
}
static void h_remove_self(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    snprintf(handled, sizeof handled, "self:%s", ev->name);
    CHECK_INT(wsx_sio_on(s, "once", NULL, NULL), 0); /* removes this very handler */
}
static void on_conn_plain(wsx_sio_socket *s, void *user)
{
    seen.last = s;
}

/* Which handler an event goes to: the socket's named, the namespace's named, the socket's
 * catch-all, the namespace's catch-all; replacing and removing; a handler removing itself. */
TEST(handlers)
{
    reset_seen();
    wsx_sio *io = server(NULL);
    wsx_sio_nsp *root = wsx_sio_of(io, "/");
    wsx_sio_on_connection(root, on_conn_plain, NULL);
    CHECK_INT(wsx_sio_nsp_on(root, "a", h_mark, "nsp"), 0);
    CHECK_INT(wsx_sio_nsp_on(root, "b", h_mark, "nsp"), 0);
    CHECK_INT(wsx_sio_nsp_on(root, NULL, h_mark, "nsp-any"), 0);
    fake_sess f;
    fake_open(io, &f);
    fake_feed(&f, "0");
    EXPECT(&f, "T0{\"sid\":\"*\"}");
    wsx_sio_socket *s = seen.last;
    CHECK(s != NULL);
    CHECK_INT(wsx_sio_on(s, "a", h_mark, "sock"), 0);
    CHECK_INT(wsx_sio_on(s, "once", h_remove_self, NULL), 0);
    static const char *const cases[][2] = {
        {"2[\"a\"]", "sock:a"},
        {"2[\"b\"]", "nsp:b"},
        {"2[\"c\"]", "nsp-any:c"},
        {"2[\"once\"]", "self:once"},
        {"2[\"once\"]", "nsp-any:once"},
        {"2[\"a\\u0000x\"]", "nsp-any:a"}, /* a NUL in the name: catch-alls only */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        handled[0] = 0;
        fake_feed(&f, cases[i][0]);
        CHECK_STR(handled, cases[i][1]);
    }
    CHECK_INT(wsx_sio_on(s, NULL, h_mark, "sock-any"), 0);
    handled[0] = 0;
    fake_feed(&f, "2[\"c\"]");
    CHECK_STR(handled, "sock-any:c");
    CHECK_INT(wsx_sio_on(s, "a", h_mark, "sock2"), 0); /* replaced */
    fake_feed(&f, "2[\"a\"]");
    CHECK_STR(handled, "sock2:a");
    CHECK_INT(wsx_sio_on(s, "a", NULL, NULL), 0); /* removed: the namespace's now */
    fake_feed(&f, "2[\"a\"]");
    CHECK_STR(handled, "nsp:a");
    CHECK_INT(wsx_sio_nsp_on(root, NULL, NULL, NULL), 0);
    CHECK_INT(wsx_sio_on(s, NULL, NULL, NULL), 0);
    handled[0] = 0;
    fake_feed(&f, "21[\"zzz\"]"); /* no handler: dropped, no ack */
    CHECK_STR(handled, "");
    EXPECT_NONE(&f);
    wsx_sio_set_user(s, &f);
    CHECK(wsx_sio_user(s) == &f);
    CHECK(wsx_sio_socket_nsp(s) == root);
    CHECK_STR(wsx_sio_nsp_name(root), "/");
    CHECK(wsx_sio_nsp_server(root) == io);
    CHECK_INT(f.close_asked, 0);
    fake_end(&f, "transport close");
    fake_clear(&f);
    wsx__sio_free_core(io);
}

int main(void)
{
    if (wsx_loop_new(&loop) != 0) return 1;
    RUN(connect_and_namespaces);
    RUN(namespace_hook);
    RUN(bad_packets_close);
    RUN(middleware);
    RUN(events_and_client_acks);
    RUN(server_acks);
    RUN(disconnects);
    RUN(connect_timeout);
    RUN(rooms_and_broadcast);
    RUN(recovery);
    RUN(recovery_bounds);
    RUN(handlers);
    wsx_loop_free(loop);
    return test_summary("sio");
}
