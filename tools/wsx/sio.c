/* `wsx sio`: a Socket.IO server for testing clients (issue 12), with every timing and limit
 * on the command line, and a raw Engine.IO echo at /engine.io/ on the same port. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "tool.h"
#include "wsx/sio.h"

static const char help[] =
    "usage: wsx sio [options]\n"
    "\n"
    "A Socket.IO v5 / Engine.IO v4 server for testing clients. On the same port:\n"
    "  /engine.io/   a raw Engine.IO echo: every message packet is sent back unchanged,\n"
    "                text or binary, over polling or WebSocket\n"
    "  /socket.io/   the Socket.IO test server: namespaces / and /custom (any other gets\n"
    "                connect_error \"Invalid namespace\"), and in each:\n"
    "\n"
    "  on connect        emits auth with the CONNECT payload ({} when none)\n"
    "  message ...       emits message-back to the sender, same arguments, binary too\n"
    "  message-with-ack  acked with its arguments\n"
    "  join ROOM         joins ROOM, acked \"joined:ROOM\"\n"
    "  broadcast ROOM P  emits broadcasted P to ROOM, the sender excluded\n"
    "  broadcast-all P   emits broadcasted-all P to every socket of the namespace\n"
    "  request-ack ...   emits server-ack-request ... to the sender with an ack, and acks\n"
    "                    the request with the sender's answer\n"
    "\n"
    "With connection state recovery on (--recovery), every event emitted without an ack\n"
    "carries an offset as its last argument, as socket.io's does.\n"
    "\n"
    "  --host H               address to listen on (default: all, IPv6 and IPv4)\n"
    "  --port P               port (default 8080; 0 picks a free one)\n"
    "  --ping-interval MS     Engine.IO pingInterval (default 25000)\n"
    "  --ping-timeout MS      Engine.IO pingTimeout (default 20000)\n"
    "  --upgrade-timeout MS   time for a polling session to finish its upgrade (default 10000)\n"
    "  --max-payload BYTES    largest POST body (413) and WebSocket message (1009)\n"
    "                         (default 1000000)\n"
    "  --connect-timeout MS   time for a Socket.IO CONNECT after the handshake (default 45000)\n"
    "  --recovery MS          connection state recovery window (maxDisconnectionDuration,\n"
    "                         default 120000; 0: off)\n"
    "  --max-sessions N       Engine.IO sessions at most per path; more get 503 (default 10000)\n"
    "  --max-sessions-per-ip N  sessions of one client address (IPv4, or IPv6 /64) per path;\n"
    "                         more get 503 (default 256)\n"
    "  --max-handshakes-per-ip N  connections of one client address whose first request is\n"
    "                         not yet read; more get 503 (default 32; 0: no limit)\n"
    "  --max-queued-bytes B   the queues of all polling sessions together; above it the\n"
    "                         largest queue's session is closed (default 256M)\n"
    "  --transports LIST      transports allowed: polling,websocket (default both)\n"
    "  --queue-limit BYTES    outgoing queue of a polling session; above it the session is\n"
    "                         closed (default 16M)\n"
    "  --cors-origin ORIGIN   allow this origin for polling (repeatable; '*' any); default:\n"
    "                         no CORS headers\n"
    "  --cors-credentials     Access-Control-Allow-Credentials: true\n"
    "  --quiet                log only warnings and errors\n"
    "  --json-logs            log one JSON object per line\n"
    "  -h, --help             this text\n"
    "\n"
    "On start it prints 'listening on http://HOST:PORT/' on stdout. SIGINT or SIGTERM closes\n"
    "every session and exits 0.\n";

#define MAX_ORIGINS 32

typedef struct sio_args {
    wsx_eio_opts eio;                 /* shared timings and limits (path set per use) */
    uint32_t connect_timeout_ms;      /* for the Socket.IO server */
    uint32_t recovery_ms;             /* --recovery */
    const char *origins[MAX_ORIGINS]; /* --cors-origin */
} sio_args;

static tool_runner R;
static sio_args A;
static wsx_eio *raw_echo;

/* ---- /engine.io/: the raw echo ---- */

static void echo_open(wsx_eio_session *s, void *user)
{
    (void)user;
    tool_logf(WSX_LOG_INFO, "%s engine.io open %s (%s)", wsx_eio_session_peer(s),
              wsx_eio_session_id(s), wsx_eio_session_transport(s));
}

static void echo_message(wsx_eio_session *s, const uint8_t *data, size_t len, bool binary,
                         void *user)
{
    (void)user;
    wsx_eio_send(s, data, len, binary);
}

static void echo_close(wsx_eio_session *s, const char *reason, void *user)
{
    (void)user;
    tool_logf(WSX_LOG_INFO, "%s engine.io close %s: %s", wsx_eio_session_peer(s),
              wsx_eio_session_id(s), reason);
}

static int attach_echo(wsx_server *srv)
{
    wsx_eio_opts o = A.eio;
    o.path = "/engine.io/";
    o.on_open = echo_open;
    o.on_message = echo_message;
    o.on_close = echo_close;
    return wsx_eio_attach(srv, &o, &raw_echo);
}

/* ---- /socket.io/: the Socket.IO test server (issue 12's behaviours) ---- */

static wsx_sio *sio;

static void ev_message(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    (void)user;
    wsx_sio_emit(s, "message-back", json_incref(ev->args), ev->bins, ev->n_bins);
}

static void ev_message_with_ack(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    (void)user;
    if (ev->has_ack) wsx_sio_ack(s, ev->ack_id, json_incref(ev->args), ev->bins, ev->n_bins);
}

static void ev_join(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    (void)user;
    json_t *room = json_array_get(ev->args, 0);
    if (!json_is_string(room) || wsx_sio_join(s, json_string_value(room)) < 0 || !ev->has_ack)
        return;
    /* "joined:" + room (the room is UTF-8: it came as JSON). */
    size_t n = json_string_length(room);
    char *text = malloc(7 + n);
    if (!text) return;
    memcpy(text, "joined:", 7);
    memcpy(text + 7, json_string_value(room), n);
    json_t *answer = json_stringn(text, 7 + n);
    free(text);
    if (answer) wsx_sio_ack(s, ev->ack_id, json_pack("[o]", answer), NULL, 0);
}

static void ev_broadcast(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    (void)user;
    json_t *room = json_array_get(ev->args, 0);
    if (!json_is_string(room)) return;
    const char *rooms[] = {json_string_value(room)};
    wsx_sio_to to = {
        .nsp = wsx_sio_socket_nsp(s), .rooms = rooms, .n_rooms = 1, .except_socket = s};
    json_t *payload = json_array_get(ev->args, 1);
    wsx_sio_broadcast(&to, "broadcasted", payload ? json_pack("[O]", payload) : json_pack("[n]"),
                      ev->bins, ev->n_bins);
}

static void ev_broadcast_all(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    (void)user;
    wsx_sio_to to = {.nsp = wsx_sio_socket_nsp(s)};
    json_t *payload = json_array_get(ev->args, 0);
    wsx_sio_broadcast(&to, "broadcasted-all",
                      payload ? json_pack("[O]", payload) : json_pack("[n]"), ev->bins, ev->n_bins);
}

/* The client's answer to server-ack-request goes back as the ack of its request-ack; the
 * pending ack id rides in the user pointer (0: none asked). */
static void request_answered(wsx_sio_socket *s, int err, json_t *args, const wsx_sio_bin *bins,
                             size_t n_bins, void *user)
{
    uintptr_t id = (uintptr_t)user;
    if (err == 0 && id) wsx_sio_ack(s, (uint64_t)(id - 1), json_incref(args), bins, n_bins);
}

static void ev_request_ack(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    (void)user;
    uintptr_t id = ev->has_ack ? (uintptr_t)ev->ack_id + 1 : 0;
    wsx_sio_emit_ack(s, "server-ack-request", json_incref(ev->args), ev->bins, ev->n_bins,
                     request_answered, 0, (void *)id);
}

static void sio_connection(wsx_sio_socket *s, void *user)
{
    (void)user;
    json_t *auth = wsx_sio_handshake_auth(s);
    /* socket.handshake.auth is {} when the CONNECT had no payload. */
    wsx_sio_emit(s, "auth", auth ? json_pack("[O]", auth) : json_pack("[{}]"), NULL, 0);
}

static void sio_disconnect(wsx_sio_socket *s, const char *reason, void *user)
{
    (void)user;
    tool_logf(WSX_LOG_INFO, "socket.io %s %s disconnect: %s",
              wsx_sio_nsp_name(wsx_sio_socket_nsp(s)), wsx_sio_id(s), reason);
}

static int setup_nsp(wsx_sio_nsp *n)
{
    static const struct {
        const char *event;
        wsx_sio_event_cb cb;
    } evs[] = {
        {"message", ev_message},
        {"message-with-ack", ev_message_with_ack},
        {"join", ev_join},
        {"broadcast", ev_broadcast},
        {"broadcast-all", ev_broadcast_all},
        {"request-ack", ev_request_ack},
    };
    if (!n) return WSX_ENOMEM;
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        int rc = wsx_sio_nsp_on(n, evs[i].event, evs[i].cb, NULL);
        if (rc < 0) return rc;
    }
    wsx_sio_on_connection(n, sio_connection, NULL);
    wsx_sio_nsp_on_disconnect(n, sio_disconnect, NULL);
    return 0;
}

/* A Socket.IO server at /socket.io/ with A.eio's timings and limits, namespaces / and /custom
 * (any other is refused with "Invalid namespace"), connection state recovery on as in the
 * reference test server (tests/socketio/ref_sio.cjs). */
static int attach_socketio(wsx_server *srv, const sio_args *a)
{
    wsx_sio_opts o = wsx_sio_defaults();
    o.eio = a->eio;
    o.eio.path = "/socket.io/";
    o.connect_timeout_ms = a->connect_timeout_ms;
    o.recovery_ms = a->recovery_ms;
    int rc = wsx_sio_attach(srv, &o, &sio);
    if (rc < 0) return rc;
    rc = setup_nsp(wsx_sio_of(sio, "/"));
    if (rc == 0) rc = setup_nsp(wsx_sio_of(sio, "/custom"));
    return rc;
}

static void detach_socketio(void)
{
    wsx_sio_free(sio);
    sio = NULL;
}

/* ---- the command ---- */

enum {
    O_HOST = 256,
    O_PORT,
    O_PING,
    O_PINGTO,
    O_UPGRADE,
    O_PAYLOAD,
    O_CONNECT,
    O_RECOVERY,
    O_SESSIONS,
    O_SESSIONS_IP,
    O_QUEUE,
    O_QUEUED_ALL,
    O_ORIGIN,
    O_TRANSPORTS,
    O_CRED,
};

static const struct option sio_longopts[] = {
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"ping-interval", required_argument, 0, O_PING},
    {"ping-timeout", required_argument, 0, O_PINGTO},
    {"upgrade-timeout", required_argument, 0, O_UPGRADE},
    {"max-payload", required_argument, 0, O_PAYLOAD},
    {"connect-timeout", required_argument, 0, O_CONNECT},
    {"recovery", required_argument, 0, O_RECOVERY},
    {"max-sessions", required_argument, 0, O_SESSIONS},
    {"max-sessions-per-ip", required_argument, 0, O_SESSIONS_IP},
    {"max-handshakes-per-ip", required_argument, 0, TOOL_O_MAX_HS_PER_IP},
    {"queue-limit", required_argument, 0, O_QUEUE},
    {"max-queued-bytes", required_argument, 0, O_QUEUED_ALL},
    {"cors-origin", required_argument, 0, O_ORIGIN},
    {"transports", required_argument, 0, O_TRANSPORTS},
    {"cors-credentials", no_argument, 0, O_CRED},
    {"quiet", no_argument, 0, TOOL_O_QUIET},
    {"json-logs", no_argument, 0, TOOL_O_JSON_LOGS},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static const char *listen_host;

static void print_listening(void *arg)
{
    (void)arg;
    tool_print_listening("http", listen_host, wsx_server_port(R.t[0].srvs[0]), "/");
    fflush(stdout);
}

/* Shutdown: the sessions end first ("server shutting down": held GETs get "1", WebSockets
 * close), then the server closes what is left. */
static void on_stop(unsigned k, void *arg)
{
    (void)k;
    (void)arg;
    detach_socketio();
    wsx_eio_free(raw_echo);
    raw_echo = NULL;
}

static int parse_args(int argc, char **argv, wsx_server_opts *o, tool_server_args *a)
{
    uint32_t port = 8080, v;
    size_t sz;
    int ch, status;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", sio_longopts, NULL)) != -1) {
        if (ch == '?' || ch == ':') return tool_bad_option("sio", sio_longopts, argv, ch);
        if (ch == TOOL_O_QUIET || ch == TOOL_O_JSON_LOGS) {
            if ((status = tool_runner_option(&R, 1, o, a, ch, optarg)) > 0) return status;
            continue;
        }
        switch (ch) {
        case O_HOST:
            o->host = optarg;
            break;
        case O_PORT:
            if (!parse_u32(optarg, &port) || port > 65535)
                return usage_error("sio", "bad --port '%s'", optarg);
            break;
        case O_PING:
        case O_PINGTO:
        case O_UPGRADE:
        case O_CONNECT:
            if (!parse_u32(optarg, &v) || v == 0)
                return usage_error("sio", "bad milliseconds '%s'", optarg);
            if (ch == O_PING) A.eio.ping_interval_ms = v;
            if (ch == O_PINGTO) A.eio.ping_timeout_ms = v;
            if (ch == O_UPGRADE) A.eio.upgrade_timeout_ms = v;
            if (ch == O_CONNECT) A.connect_timeout_ms = v;
            break;
        case O_RECOVERY:
            if (!parse_u32(optarg, &v)) return usage_error("sio", "bad milliseconds '%s'", optarg);
            A.recovery_ms = v;
            break;
        case O_PAYLOAD:
        case O_SESSIONS:
        case O_SESSIONS_IP:
        case O_QUEUE:
        case O_QUEUED_ALL:
            if (!parse_size(optarg, &sz) || sz == 0)
                return usage_error("sio", "bad size '%s'", optarg);
            if (ch == O_PAYLOAD) A.eio.max_payload = sz;
            if (ch == O_SESSIONS) A.eio.max_sessions = sz;
            if (ch == O_SESSIONS_IP) A.eio.max_sessions_per_ip = sz;
            if (ch == O_QUEUE) A.eio.send_hard_limit = sz;
            if (ch == O_QUEUED_ALL) A.eio.max_queued_bytes = sz;
            break;
        case TOOL_O_MAX_HS_PER_IP:
            if (!tool_admit_option(o, ch, optarg, "sio")) return 2;
            break;
        case O_ORIGIN:
            if (A.eio.n_cors_origins == MAX_ORIGINS)
                return usage_error("sio", "more than %d --cors-origin", MAX_ORIGINS);
            A.origins[A.eio.n_cors_origins++] = optarg;
            break;
        case O_TRANSPORTS: {
            A.eio.transports = 0;
            char list[64];
            snprintf(list, sizeof list, "%s", optarg);
            for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
                 t = strtok_r(NULL, ",", &save)) {
                if (!strcmp(t, "polling"))
                    A.eio.transports |= WSX_EIO_POLLING;
                else if (!strcmp(t, "websocket"))
                    A.eio.transports |= WSX_EIO_WEBSOCKET;
                else
                    return usage_error("sio", "bad --transports '%s'", optarg);
            }
            if (!A.eio.transports) return usage_error("sio", "bad --transports '%s'", optarg);
            break;
        }
        case O_CRED:
            A.eio.cors_credentials = true;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return usage_error("sio", "unknown option");
        }
    }
    if (optind < argc) return usage_error("sio", "unexpected argument '%s'", argv[optind]);
    o->port = (uint16_t)port;
    return -1;
}

int cmd_sio(int argc, char **argv)
{
    wsx_server_opts o = wsx_server_defaults();
    tool_server_args a = {0};
    memset(&R, 0, sizeof R);
    memset(&A, 0, sizeof A);
    A.eio = wsx_eio_defaults();
    A.connect_timeout_ms = 45000;
    A.recovery_ms = 120000;
    R.cmd = "sio";
    /* One loop: a polling session's requests must reach the loop that holds it. */
    R.n_threads = 1;
    R.shutdown_ms = 5000;
    int status = parse_args(argc, argv, &o, &a);
    if (status >= 0) return status;
    A.eio.cors_origins = A.origins;
    if (A.eio.max_payload) {
        /* A WebSocket message above maxPayload closes with 1009 in the ws layer already. */
        o.max_message = A.eio.max_payload;
    }
    tool_raise_nofile();
    o.on_log = tool_log_cb;
    o.log_level = g_log.quiet ? WSX_LOG_WARN : WSX_LOG_INFO;
    R.on_ready = print_listening;
    R.on_stop = on_stop;
    listen_host = o.host;
    if (tool_runner_start(&R, &o, 1) < 0) return 1;
    wsx_server *srv = R.t[0].srvs[0];
    int rc = attach_echo(srv);
    if (rc == 0) rc = attach_socketio(srv, &A);
    if (rc < 0) {
        fprintf(stderr, "wsx sio: cannot attach: %s\n", wsx_strerror(rc));
        tool_runner_free(&R);
        return 1;
    }
    rc = tool_runner_run(&R);
    on_stop(0, NULL);
    tool_runner_free(&R);
    if (rc < 0) return 1;
    tool_logf(WSX_LOG_INFO, "stopped");
    return 0;
}
