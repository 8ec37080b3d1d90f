/*
 * wsx_client_test — drives the wsx client, through the public API only (wsx.h), against an
 * echo server written with another library (npm ws, Python websockets) or `wsx echo`.
 *
 *   wsx_client_test [--timeout S] [--small] URL [CLOSE_CODE]
 *       Scripted conversation: text and binary messages of 0, 125, 126, 65535, 65536 bytes and
 *       16 MiB (not with --small), each echo compared byte for byte; a burst of small messages
 *       sent in one loop iteration and echoed in order; a ping whose pong must carry the same
 *       payload; then a close with CLOSE_CODE (default 1000) that on_close must report.
 *   wsx_client_test [--timeout S] --reconnect URL
 *       Connects with reconnection on (100 ms .. 1000 ms), exchanges a message, prints a line
 *       starting with "READY" and waits: the harness kills the server and restarts it on the
 *       same port. The client must reconnect by itself and exchange a message again.
 *   wsx_client_test [--timeout S] --give-up URL
 *       URL names a closed port; with reconnect_max_attempts = 3 the client must give up and
 *       report on_end with an error and a message saying why.
 *   wsx_client_test [--timeout S] --expect-close CODE URL
 *       URL is a server that misbehaves after (or during) the handshake. The client sends one
 *       text message; on_close must report CODE (1002, 1007, 1009, ...). CODE 0: the handshake
 *       must fail, with no on_open and on_end reporting an error.
 *   wsx_client_test [--timeout S] --expect-error TEXT URL
 *       The connection must fail before it opens (a refused certificate, say): no on_open, and
 *       on_end reports an error whose message contains TEXT; or wsx_client_connect itself
 *       fails with WSX_ETLS and its wsx_error's detail contains TEXT (a CA file it cannot load).
 *
 * TLS (wss:// URLs): --cacert FILE trusts the CA certificates in FILE (tls_cafile);
 * --insecure skips the certificate and name checks (tls_insecure). Both go before the URL.
 *
 * permessage-deflate (before the URL): --deflate offers it (opts.deflate from
 * wsx_pmd_defaults() with enabled = true) and checks in on_open that it was agreed
 * (wsx_conn_deflate); --deflate-refused offers it and checks that it was NOT agreed (a server
 * without compression). The offer's fields: --deflate-no-context (client_no_context_takeover),
 * --deflate-server-no-context (server_no_context_takeover), --deflate-window N
 * (client_max_window_bits), --deflate-server-window N (server_max_window_bits),
 * --deflate-threshold BYTES (smallest message compressed), --deflate-level N.
 *
 * Prints one line per check ("ok - ..." or "FAIL - ...") and exits 0 when every check passed,
 * 1 otherwise (also when the deadline, --timeout seconds, default 60, passes first).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsx.h"

enum mode { MODE_TALK, MODE_RECONNECT, MODE_GIVE_UP, MODE_BAD_SERVER };

/* A message sent and not yet echoed. */
struct pending {
    uint8_t *data;
    size_t len;
    int type;
    char label[48];
};

#define MAX_PENDING 128

struct state {
    enum mode mode;
    const char *url;
    int close_code;
    unsigned timeout_s;
    bool small;
    const char *expect_error; /* MODE_BAD_SERVER with close_code 0: text in on_end's why */
    int expect_deflate; /* 1: on_open checks it was agreed; -1: that it was not; 0: no check */

    wsx_loop *loop;
    wsx_client *cl;
    wsx_conn *conn;
    wsx_timer *deadline;
    uint64_t started_ms;
    const char *phase;

    size_t step; /* next step of the conversation */
    struct pending q[MAX_PENDING];
    size_t q_head, q_len;
    uint8_t ping_payload[125];
    size_t ping_len;
    bool ping_outstanding;
    bool close_sent;
    bool conversation_done;

    unsigned opens, closes, reconnects;
    int last_close_code;
    bool ended;
    int end_err;

    unsigned checks, failures;
};

static void check(struct state *st, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(struct state *st, bool ok, const char *fmt, ...)
{
    va_list ap;
    st->checks++;
    if (!ok) st->failures++;
    fputs(ok ? "ok - " : "FAIL - ", stdout);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* ---- payloads ---- */

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Deterministic valid UTF-8 of exactly len bytes: 1-, 2-, 3- and 4-byte sequences in turn,
 * padded with ASCII where a longer sequence would not fit. */
static void fill_text(uint8_t *p, size_t len, uint32_t seed)
{
    static const char *const seqs[] = {"a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e",
                                       "Z", " ",        "\xd0\x96",     "\xe6\x97\xa5"};
    size_t i = 0, k = seed;
    while (i < len) {
        const char *s = seqs[k++ % (sizeof seqs / sizeof seqs[0])];
        size_t n = strlen(s);
        if (n > len - i) {
            p[i] = (uint8_t)('0' + (i % 10));
            i++;
            continue;
        }
        memcpy(p + i, s, n);
        i += n;
    }
}

static void fill_binary(uint8_t *p, size_t len, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(xorshift(&s) >> 11);
}

static const char *type_name(int type)
{
    return type == WSX_TEXT ? "text" : type == WSX_BINARY ? "binary" : "?";
}

/* ---- sending with an expectation ---- */

static bool send_expect(struct state *st, int type, size_t len, uint32_t seed, const char *label)
{
    if (st->q_len == MAX_PENDING) {
        check(st, false, "%s: too many messages in flight (test bug)", label);
        return false;
    }
    uint8_t *data = malloc(len ? len : 1);
    if (!data) {
        check(st, false, "%s: out of memory", label);
        return false;
    }
    if (type == WSX_TEXT)
        fill_text(data, len, seed);
    else
        fill_binary(data, len, seed);
    int rc = wsx_send(st->conn, data, len, type);
    if (rc != 0 && rc != WSX_EBACKPRESSURE) {
        check(st, false, "%s: wsx_send returned %s", label, wsx_err_name(rc));
        free(data);
        return false;
    }
    struct pending *p = &st->q[(st->q_head + st->q_len++) % MAX_PENDING];
    p->data = data;
    p->len = len;
    p->type = type;
    snprintf(p->label, sizeof p->label, "%s", label);
    return true;
}

static void drop_pending(struct state *st)
{
    while (st->q_len) {
        free(st->q[st->q_head].data);
        st->q_head = (st->q_head + 1) % MAX_PENDING;
        st->q_len--;
    }
}

/* ---- the conversation (MODE_TALK) ---- */

static const size_t sizes[] = {0, 125, 126, 65535, 65536, (size_t)16 << 20};
#define N_SIZES (sizeof sizes / sizeof sizes[0])
#define BURST   40

static void start_close(struct state *st)
{
    int rc = wsx_close(st->conn, 1005, NULL);
    check(st, rc == WSX_EINVAL, "wsx_close with 1005 (not allowed on the wire) is refused: %s",
          wsx_err_name(rc));
    rc = wsx_close(st->conn, st->close_code, "bye from wsx_client_test");
    check(st, rc == 0, "wsx_close(%d) started the closing handshake: %s", st->close_code,
          wsx_err_name(rc));
    st->close_sent = true;
    st->phase = "closing handshake";
    rc = wsx_send(st->conn, "late", 4, WSX_TEXT);
    check(st, rc == WSX_ECLOSED, "wsx_send after wsx_close fails with WSX_ECLOSED: %s",
          wsx_err_name(rc));
    rc = wsx_close(st->conn, 1000, NULL);
    check(st, rc == WSX_ECLOSED, "a second wsx_close fails with WSX_ECLOSED: %s", wsx_err_name(rc));
}

/* Runs the next step once everything sent so far has been echoed. */
static void talk_next(struct state *st)
{
    char label[48];
    if (st->q_len || st->ping_outstanding || st->close_sent) return;
    size_t step = st->step++;
    if (step < 2 * N_SIZES) {
        int type = step < N_SIZES ? WSX_TEXT : WSX_BINARY;
        size_t len = sizes[step % N_SIZES];
        if (st->small && len > 65536) {
            talk_next(st);
            return;
        }
        snprintf(label, sizeof label, "%s %zu bytes", type_name(type), len);
        st->phase = "echo of single messages";
        send_expect(st, type, len, (uint32_t)step + 7u, label);
        return;
    }
    if (step == 2 * N_SIZES) {
        /* Many sends in one loop iteration share one write; the echoes must come back whole
         * and in order. */
        st->phase = "burst";
        for (unsigned i = 0; i < BURST; i++) {
            int type = (i & 1) ? WSX_BINARY : WSX_TEXT;
            snprintf(label, sizeof label, "burst #%u %s %u bytes", i, type_name(type), i * 97);
            if (!send_expect(st, type, (size_t)i * 97, 1000u + i, label)) return;
        }
        return;
    }
    if (step == 2 * N_SIZES + 1) {
        st->phase = "ping";
        uint8_t big[126] = {0};
        int rc = wsx_ping(st->conn, big, sizeof big);
        check(st, rc == WSX_EINVAL, "wsx_ping with 126 bytes is refused: %s", wsx_err_name(rc));
        st->ping_len = 20;
        memcpy(st->ping_payload, "wsx-ping-\x00\x01\x02\xfe\xff-12345", st->ping_len);
        rc = wsx_ping(st->conn, st->ping_payload, st->ping_len);
        check(st, rc == 0, "wsx_ping with a 20-byte payload: %s", wsx_err_name(rc));
        st->ping_outstanding = rc == 0;
        return;
    }
    st->conversation_done = true;
    start_close(st);
}

/* ---- callbacks ---- */

static void on_open(wsx_conn *c, void *user)
{
    struct state *st = user;
    st->conn = c;
    st->opens++;
    char peer[64] = "";
    int n = wsx_conn_peer(c, peer, sizeof peer);
    check(st, n > 0, "open #%u (peer %s)", st->opens, n > 0 ? peer : "?");
    check(st,
          wsx_conn_client(c) == st->cl && wsx_conn_server(c) == NULL &&
              wsx_client_conn(st->cl) == c,
          "the connection belongs to the client");
    if (st->expect_deflate)
        check(st, wsx_conn_deflate(c) == (st->expect_deflate > 0), "permessage-deflate %s",
              wsx_conn_deflate(c) ? "agreed" : "not agreed");
    switch (st->mode) {
    case MODE_TALK:
        talk_next(st);
        break;
    case MODE_RECONNECT: {
        char label[48];
        snprintf(label, sizeof label, "message on connection #%u", st->opens);
        st->phase = st->opens == 1 ? "first connection" : "after reconnecting";
        send_expect(st, WSX_TEXT, 40, st->opens, label);
        break;
    }
    case MODE_GIVE_UP:
        check(st, false, "give-up: a connection opened to a port that should be closed");
        wsx_client_close(st->cl, 1000, NULL);
        break;
    case MODE_BAD_SERVER:
        if (st->close_code == 0) check(st, false, "the handshake should have failed");
        st->phase = "waiting for the server's bad input";
        wsx_send(c, "hello", 5, WSX_TEXT);
        break;
    }
}

static void on_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    struct state *st = user;
    (void)c;
    if (st->mode == MODE_BAD_SERVER) {
        note("message: %s %zu bytes", type_name(m->type), m->len);
        return;
    }
    if (!st->q_len) {
        check(st, false, "unexpected %s message of %zu bytes", type_name(m->type), m->len);
        return;
    }
    struct pending *p = &st->q[st->q_head];
    bool same = m->type == p->type && m->len == p->len &&
                (p->len == 0 || memcmp(m->data, p->data, p->len) == 0);
    if (!same) {
        size_t at = 0;
        while (at < m->len && at < p->len && m->data[at] == p->data[at])
            at++;
        check(st, false, "%s: echo differs (got %s %zu bytes, first difference at byte %zu)",
              p->label, type_name(m->type), m->len, at);
    } else if (strncmp(p->label, "burst", 5) != 0 || st->q_len == 1) {
        bool burst = strncmp(p->label, "burst", 5) == 0;
        check(st, true, "%s echoed byte for byte", burst ? "burst of 40 messages" : p->label);
    }
    free(p->data);
    st->q_head = (st->q_head + 1) % MAX_PENDING;
    st->q_len--;
    if (!same) {
        /* Nothing after a corrupted echo is meaningful. */
        wsx_client_close(st->cl, 1000, "echo mismatch");
        return;
    }
    if (st->q_len) return;
    switch (st->mode) {
    case MODE_TALK:
        talk_next(st);
        break;
    case MODE_RECONNECT:
        if (st->opens == 1) {
            st->phase = "waiting for the server to go away and come back";
            printf("READY: kill and restart the server now\n");
            fflush(stdout);
        } else {
            check(st, true, "reconnected and exchanged a message again");
            st->phase = "closing after reconnect";
            st->close_sent = true;
            wsx_client_close(st->cl, 1000, "done");
        }
        break;
    case MODE_GIVE_UP:
    case MODE_BAD_SERVER:
        break;
    }
}

static void on_pong(wsx_conn *c, const uint8_t *data, size_t len, void *user)
{
    struct state *st = user;
    (void)c;
    if (!st->ping_outstanding) {
        note("unsolicited pong of %zu bytes", len);
        return;
    }
    st->ping_outstanding = false;
    check(st, len == st->ping_len && memcmp(data, st->ping_payload, len) == 0,
          "pong carries the ping's %zu-byte payload (got %zu bytes)", st->ping_len, len);
    if (st->mode == MODE_TALK) talk_next(st);
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t reason_len, void *user)
{
    struct state *st = user;
    (void)c;
    st->closes++;
    st->last_close_code = code;
    st->conn = NULL;
    note("close #%u: code %d reason \"%.*s\"", st->closes, code, (int)reason_len, reason);
    switch (st->mode) {
    case MODE_TALK:
        check(st, st->close_sent && code == st->close_code,
              "on_close reports our close code %d (got %d)", st->close_code, code);
        break;
    case MODE_RECONNECT:
        if (st->closes == 1) {
            check(st, !st->close_sent, "first connection ended by the server going away (code %d)",
                  code);
            drop_pending(st);
            st->phase = "reconnecting";
        } else {
            check(st, code == 1000, "on_close after reconnect reports 1000 (got %d)", code);
        }
        break;
    case MODE_GIVE_UP:
        break;
    case MODE_BAD_SERVER:
        check(st, code == st->close_code, "on_close reports %d for the server's bad input (got %d)",
              st->close_code, code);
        break;
    }
}

static void on_reconnecting(wsx_client *cl, unsigned attempt, uint32_t delay_ms, int last_err,
                            void *user)
{
    struct state *st = user;
    (void)cl;
    st->reconnects++;
    note("reconnecting: attempt %u in %u ms (last error %s: %s)", attempt, (unsigned)delay_ms,
         wsx_err_name(last_err), wsx_strerror(last_err));
    if (st->mode == MODE_TALK) check(st, false, "reconnecting although reconnect is off");
    if (delay_ms > 1000)
        check(st, false, "reconnect delay %u ms is above reconnect_max_ms (1000)",
              (unsigned)delay_ms);
}

static void on_end(wsx_client *cl, int err, const char *why, void *user)
{
    struct state *st = user;
    (void)cl;
    st->ended = true;
    st->end_err = err;
    st->cl = NULL;
    note("end: %s (%s)", wsx_err_name(err), why ? why : "(null)");
    switch (st->mode) {
    case MODE_TALK:
    case MODE_RECONNECT:
        check(st, err == 0, "on_end after a normal close reports no error (got %s: %s)",
              wsx_err_name(err), why ? why : "");
        break;
    case MODE_GIVE_UP: {
        uint64_t took = wsx_loop_now(st->loop) - st->started_ms;
        check(st, err < 0, "gave up with an error: %s", wsx_err_name(err));
        check(st, why && *why && strstr(why, "refused"), "the reason names the cause: \"%s\"",
              why ? why : "(null)");
        check(st, st->reconnects >= 1 && st->reconnects <= 3,
              "%u reconnect attempts (1..3 with reconnect_max_attempts = 3)", st->reconnects);
        /* The three delays add up to 3 s at most; the slack is for valgrind on a loaded machine
         * (5.3 s seen at load 10 on 2 cores). A client that never gave up would run into the
         * deadline instead (--timeout, 15 s in interop/node_server, 60 s by default). */
        check(st, took < 12000, "gave up after %llu ms", (unsigned long long)took);
        break;
    }
    case MODE_BAD_SERVER:
        if (st->close_code == 0)
            check(st, err < 0 && why && *why, "the failed handshake ends with an error: %s (%s)",
                  wsx_err_name(err), why ? why : "(null)");
        if (st->expect_error)
            check(st, why && strstr(why, st->expect_error), "the reason contains \"%s\": \"%s\"",
                  st->expect_error, why ? why : "(null)");
        break;
    }
    drop_pending(st);
    wsx_timer_stop(st->deadline);
    st->deadline = NULL;
}

static void on_log(int level, const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "client log %d: %s\n", level, msg);
}

static void on_deadline(wsx_timer *t, void *arg)
{
    struct state *st = arg;
    (void)t;
    check(st, false, "timed out after %u s (phase: %s; %u open, %u close, %u reconnecting)",
          st->timeout_s, st->phase, st->opens, st->closes, st->reconnects);
    printf("%u checks, %u failed\n", st->checks, st->failures);
    fflush(stdout);
    exit(1);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: wsx_client_test [--timeout S] [--small] URL [CLOSE_CODE]\n"
            "       wsx_client_test [--timeout S] --reconnect URL\n"
            "       wsx_client_test [--timeout S] --give-up URL\n"
            "       wsx_client_test [--timeout S] --expect-close CODE URL\n"
            "       wsx_client_test [--timeout S] --expect-error TEXT URL\n"
            "  TLS options: --cacert FILE, --insecure\n"
            "  permessage-deflate: --deflate, --deflate-refused, --deflate-no-context,\n"
            "    --deflate-server-no-context, --deflate-window N,\n"
            "    --deflate-server-window N, --deflate-threshold BYTES, --deflate-level N\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct state st;
    st.mode = MODE_TALK;
    st.close_code = 1000;
    st.timeout_s = 60;
    st.phase = "connecting";
    const char *cafile = NULL;
    bool insecure = false;
    wsx_pmd_config dfl = wsx_pmd_defaults();
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--reconnect") == 0)
            st.mode = MODE_RECONNECT;
        else if (strcmp(argv[i], "--give-up") == 0)
            st.mode = MODE_GIVE_UP;
        else if (strcmp(argv[i], "--expect-close") == 0 && i + 1 < argc) {
            st.mode = MODE_BAD_SERVER;
            st.close_code = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--expect-error") == 0 && i + 1 < argc) {
            st.mode = MODE_BAD_SERVER;
            st.close_code = 0;
            st.expect_error = argv[++i];
        } else if (strcmp(argv[i], "--cacert") == 0 && i + 1 < argc)
            cafile = argv[++i];
        else if (strcmp(argv[i], "--insecure") == 0)
            insecure = true;
        else if (strcmp(argv[i], "--small") == 0)
            st.small = true;
        else if (strcmp(argv[i], "--deflate") == 0) {
            dfl.enabled = true;
            st.expect_deflate = 1;
        } else if (strcmp(argv[i], "--deflate-refused") == 0) {
            dfl.enabled = true;
            st.expect_deflate = -1;
        } else if (strcmp(argv[i], "--deflate-no-context") == 0)
            dfl.client_no_context_takeover = true;
        else if (strcmp(argv[i], "--deflate-server-no-context") == 0)
            dfl.server_no_context_takeover = true;
        else if (strcmp(argv[i], "--deflate-window") == 0 && i + 1 < argc)
            dfl.client_max_window_bits = atoi(argv[++i]);
        else if (strcmp(argv[i], "--deflate-server-window") == 0 && i + 1 < argc)
            dfl.server_max_window_bits = atoi(argv[++i]);
        else if (strcmp(argv[i], "--deflate-threshold") == 0 && i + 1 < argc)
            dfl.threshold = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--deflate-level") == 0 && i + 1 < argc)
            dfl.level = atoi(argv[++i]);
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            st.timeout_s = (unsigned)strtoul(argv[++i], NULL, 10);
        else
            return usage();
    }
    if (i >= argc) return usage();
    st.url = argv[i++];
    if (i < argc && st.mode == MODE_TALK) st.close_code = atoi(argv[i++]);
    if (i != argc || st.timeout_s == 0) return usage();

    int rc = wsx_loop_new(&st.loop);
    if (rc != 0) {
        fprintf(stderr, "wsx_loop_new: %s\n", wsx_strerror(rc));
        return 1;
    }
    st.started_ms = wsx_loop_now(st.loop);
    rc = wsx_timer_start(st.loop, (uint64_t)st.timeout_s * 1000, 0, on_deadline, &st, &st.deadline);
    if (rc != 0) {
        fprintf(stderr, "wsx_timer_start: %s\n", wsx_strerror(rc));
        return 1;
    }

    wsx_client_opts o = wsx_client_defaults();
    o.url = st.url;
    o.tls_cafile = cafile;
    o.tls_insecure = insecure;
    o.deflate = dfl;
    o.on_open = on_open;
    o.on_message = on_message;
    o.on_close = on_close;
    o.on_pong = on_pong;
    o.on_reconnecting = on_reconnecting;
    o.on_end = on_end;
    o.on_log = on_log;
    o.log_level = WSX_LOG_INFO;
    o.user = &st;
    if (st.mode == MODE_RECONNECT || st.mode == MODE_GIVE_UP) {
        o.reconnect = true;
        o.reconnect_min_ms = 100;
        o.reconnect_max_ms = 1000;
    }
    if (st.mode == MODE_GIVE_UP) o.reconnect_max_attempts = 3;

    if (dfl.enabled) {
        char offer[WSX_PMD_MAX_VALUE];
        if (wsx_pmd_client_offer(&dfl, offer, sizeof offer) < 0) {
            fprintf(stderr, "bad permessage-deflate options\n");
            return 2;
        }
        note("offering %s", offer);
    }
    note("mode %s, url %s",
         st.mode == MODE_TALK        ? "talk"
         : st.mode == MODE_RECONNECT ? "reconnect"
         : st.mode == MODE_GIVE_UP   ? "give-up"
         : st.expect_error           ? "expect-error"
                                     : "expect-close",
         st.url);
    wsx_error err;
    rc = wsx_client_connect(st.loop, &o, &st.cl, &err);
    if (rc != 0 && st.expect_error) {
        /* Refused at once (a CA file that cannot be loaded): the detail must say why. */
        const char *d = err.detail;
        check(&st, rc == WSX_ETLS && err.code == rc && strstr(d, st.expect_error),
              "wsx_client_connect fails at once with WSX_ETLS and \"%s\": %s \"%s\"",
              st.expect_error, wsx_err_name(rc), d);
        wsx_timer_stop(st.deadline);
        wsx_loop_free(st.loop);
        printf("%u checks, %u failed\n", st.checks, st.failures);
        return st.failures ? 1 : 0;
    }
    check(&st, rc == 0, "wsx_client_connect(%s): %s%s%s", st.url, wsx_err_name(rc),
          rc == WSX_ETLS ? " " : "", rc == WSX_ETLS ? err.detail : "");
    if (rc == 0) {
        rc = wsx_loop_run(st.loop);
        if (rc != 0) check(&st, false, "wsx_loop_run: %s", wsx_err_name(rc));
    } else {
        wsx_timer_stop(st.deadline);
    }

    check(&st, st.ended, "on_end was called");
    if (st.mode == MODE_TALK)
        check(&st, st.conversation_done && st.opens == 1 && st.closes == 1,
              "conversation completed (%u open, %u close)", st.opens, st.closes);
    if (st.mode == MODE_RECONNECT)
        check(&st, st.opens == 2 && st.closes == 2 && st.reconnects >= 1,
              "reconnected once (%u open, %u close, %u reconnecting)", st.opens, st.closes,
              st.reconnects);
    if (st.mode == MODE_GIVE_UP || (st.mode == MODE_BAD_SERVER && st.close_code == 0))
        check(&st, st.opens == 0, "never opened");
    if (st.mode == MODE_BAD_SERVER && st.close_code != 0)
        check(&st, st.opens == 1 && st.closes == 1, "one open, one close (%u, %u)", st.opens,
              st.closes);
    drop_pending(&st);
    wsx_loop_free(st.loop);
    printf("%u checks, %u failed\n", st.checks, st.failures);
    return st.failures ? 1 : 0;
}
