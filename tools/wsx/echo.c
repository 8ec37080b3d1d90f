/* `wsx echo`: a WebSocket echo server, used by the interop tests and the benchmarks. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "runner.h"
#include "tool.h"
#include "wsx/cluster.h"

static const char help[] =
    "usage: wsx echo [options]\n"
    "\n"
    "A WebSocket echo server: every text or binary message is sent back as it came.\n"
    "Connections to /sub subscribe to one topic; each message from a connection to /pub is\n"
    "published to it (fan-out measurements). GET /metrics (Prometheus text, public) and\n"
    "GET /healthz (\"ok\") are answered on every port; an upgrade there gets 404.\n"
    "\n"
    "  --host H               address to listen on (default: all, IPv6 and IPv4)\n"
    "  --port P               port (default 8080; 0 picks a free one)\n"
    "  --path P               WebSocket path (default: any path)\n"
    "  --max-message BYTES    largest message accepted, else close 1009 (default 16M)\n"
    "  --max-connections N    WebSocket connections at most (default 10000)\n" TOOL_ADMIT_HELP
    "  --high-water BYTES     send queue size that counts as backpressure (default 1M)\n"
    "  --hard-limit BYTES     send queue size that closes the connection with 1008 (default 64M)\n"
    "  --max-queued-bytes B   bytes queued for sending in the whole process; above it the\n"
    "                         largest queues are closed with 1008 (default: 1/4 of the RAM)\n"
    "  --handshake-timeout MS time for a complete upgrade request (default 10000)\n"
    "  --idle-timeout MS      close (1001) a connection silent this long (default: never)\n"
    "  --ping-interval MS     ping a connection silent this long (default 30000; 0 = never)\n"
    "  --pong-timeout MS      drop a connection that does not answer a ping (default 10000)\n"
    "  --close-timeout MS     time for the close handshake (default 5000)\n"
    "  --shutdown-timeout MS  on SIGINT/SIGTERM, time for clients to close (default 5000)\n"
    "  --threads N            N event loops in N threads on the same port (SO_REUSEPORT)\n"
    "  --redis URL            share the /sub topic with the other `wsx echo --redis` on this\n"
    "                         Redis (docs/cluster.md): what /pub gets reaches every node's\n"
    "                         subscribers (one loop: not with --threads)\n"
    "  --tls-cert FILE        serve wss:// with this certificate chain (PEM; repeat with\n"
    "                         --tls-key for more names: SNI picks; SIGHUP reloads the files)\n"
    "  --tls-key FILE         the private key of the preceding --tls-cert\n" TOOL_TLS_TIMEOUT_HELP
    "  --quiet                log only warnings and errors\n"
    "  --json-logs            log one JSON object per line, with fields (conn, peer, path,\n"
    "                         code, reason, room, status, bytes, ms) besides ts, level, msg\n"
    "  --access-log           log each answered HTTP request: peer, method, path, status,\n"
    "                         body bytes, milliseconds (also with --quiet)\n"
    "  --no-deflate           refuse permessage-deflate (accepted by default, without server\n"
    "                         context takeover: one shared compressor, no per-connection one)\n"
    "  -h, --help             this text\n"
    "\n"
    "On start it prints 'listening on ws://HOST:PORT/' on stdout. SIGINT or SIGTERM closes\n"
    "every connection with 1001 and exits 0; a second signal exits at once.\n";

/* Connections to /sub join the broadcast topic; messages from /pub connections are published
 * to it (the fan-out scenario of the benchmarks). Others echo. */
#define BCAST_TOPIC "bcast"
static char role_sub, role_pub;

#define MAX_THREADS 64

/* The loops (one per thread, each with its server on the shared port) and the runner. */
static tool_runner R;
static const char *redis_url;
static wsx_cluster *cluster;

/* With INFO lines (not --quiet) a connection's user pointer is one of these, made at the upgrade,
 * so that its close line names the peer even when the socket no longer knows it; with --quiet it
 * stays the role (no allocation: the benchmarks measure memory per connection). */
typedef struct echo_conn {
    char *role; /* &role_sub, &role_pub or NULL */
    tool_conn_id ci;
    char path[64];
} echo_conn;
static bool track;

static echo_conn *tracked(const wsx_conn *c)
{
    void *u = wsx_conn_user(c);
    return u && u != &role_sub && u != &role_pub ? u : NULL;
}

static char *role_of(const wsx_conn *c)
{
    echo_conn *ec = tracked(c);
    return ec ? ec->role : wsx_conn_user(c);
}

static int on_upgrade(wsx_server *s, const wsx_http_req *rq, void **conn_user, void *user)
{
    (void)s;
    (void)user;
    size_t pl;
    const char *path = wsx_http_req_path(rq, &pl);
    char *role = NULL;
    if (pl == 4 && !memcmp(path, "/sub", 4)) role = &role_sub;
    if (pl == 4 && !memcmp(path, "/pub", 4)) role = &role_pub;
    *conn_user = role;
    if (!track) return 0;
    echo_conn *ec = malloc(sizeof *ec);
    if (!ec) return 503;
    ec->role = role;
    ec->ci.id = 0;
    /* The path, cut to fit, for the open and close lines. */
    snprintf(ec->path, sizeof ec->path, "%.*s", (int)pl, path);
    *conn_user = ec;
    return 0;
}

static void on_upgrade_failed(wsx_server *s, void *conn_user, void *user)
{
    (void)s;
    (void)user;
    if (conn_user != &role_sub && conn_user != &role_pub) free(conn_user);
}

static void on_open(wsx_conn *c, void *user)
{
    (void)user;
    if (role_of(c) == &role_sub) wsx_subscribe(c, BCAST_TOPIC);
    echo_conn *ec = tracked(c);
    if (!ec) return;
    tool_conn_id_set(&ec->ci, c, tool_conn_id_next());
    char *role = ec->role;
    tool_log_open(&ec->ci, ec->path,
                  role == &role_sub   ? "(subscriber)"
                  : role == &role_pub ? "(publisher)"
                                      : NULL);
}

static void on_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    (void)user;
    if (role_of(c) == &role_pub) {
        wsx_publish(wsx_conn_server(c), BCAST_TOPIC, m->data, m->len, m->type);
        return;
    }
    wsx_send(c, m->data, m->len, m->type);
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    (void)user;
    echo_conn *ec = tracked(c);
    if (!ec) {
        /* --quiet: the line is not written, the close is counted. */
        tool_conn_id ci = {.id = 0};
        if (!g_log.quiet && wsx_conn_peer(c, ci.peer, sizeof ci.peer) < 0) strcpy(ci.peer, "-");
        tool_log_close(&ci, NULL, code, reason, len, NULL);
        return;
    }
    tool_log_close(&ec->ci, ec->path, code, reason, len, NULL);
    wsx_conn_set_user(c, NULL);
    free(ec);
}

/* The library's lines about a connection, named as its open and close lines name it. */
static void on_conn_log(const wsx_conn *c, int level, const char *msg, void *user)
{
    (void)user;
    echo_conn *ec = tracked(c);
    tool_log_conn(ec ? &ec->ci : NULL, ec ? ec->path : NULL, c, level, msg);
}

/* A publish on one thread reaches the subscribers of the others through their loops. */
static void relay(wsx_server *s, const char *topic, const uint8_t *data, size_t len, int type,
                  void *arg)
{
    (void)arg;
    for (unsigned k = 0; k < R.n_threads; k++)
        if (R.t[k].srvs[0] != s)
            wsx_deliver_local_threadsafe(R.t[k].srvs[0], topic, data, len, type);
}

enum {
    O_HOST = 256,
    O_PORT,
    O_PATH,
    O_MAXMSG,
    O_MAXCONN,
    O_HIGH,
    O_HARD,
    O_HS,
    O_IDLE,
    O_PING,
    O_PONG,
    O_CLOSE,
    O_SHUTDOWN,
    O_MAXQ,
    O_REDIS,
};

static const struct option echo_longopts[] = {
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"path", required_argument, 0, O_PATH},
    {"redis", required_argument, 0, O_REDIS},
    {"max-message", required_argument, 0, O_MAXMSG},
    {"max-connections", required_argument, 0, O_MAXCONN},
    {"high-water", required_argument, 0, O_HIGH},
    {"hard-limit", required_argument, 0, O_HARD},
    {"max-queued-bytes", required_argument, 0, O_MAXQ},
    {"handshake-timeout", required_argument, 0, O_HS},
    {"idle-timeout", required_argument, 0, O_IDLE},
    {"ping-interval", required_argument, 0, O_PING},
    {"pong-timeout", required_argument, 0, O_PONG},
    {"close-timeout", required_argument, 0, O_CLOSE},
    {"shutdown-timeout", required_argument, 0, O_SHUTDOWN},
    {"quiet", no_argument, 0, TOOL_O_QUIET},
    {"json-logs", no_argument, 0, TOOL_O_JSON_LOGS},
    {"access-log", no_argument, 0, TOOL_O_ACCESS_LOG},
    {"no-deflate", no_argument, 0, 'D'},
    {"threads", required_argument, 0, TOOL_O_THREADS},
    TOOL_TLS_LONGOPTS,
    TOOL_ADMIT_LONGOPTS,
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* Shutdown begins on loop k: its snapshot timer would keep the loop alive. */
static void stop_metrics(unsigned k, void *arg)
{
    (void)arg;
    tool_metrics_stop(k);
}

/* What on_ready prints. */
static struct {
    const char *host, *path;
    bool tls;
} listen_info;

/* The listening line, once signals are handled (scripts may send one as soon as they read
 * it). */
static void print_listening(void *arg)
{
    (void)arg;
    tool_print_listening(listen_info.tls ? "wss" : "ws", listen_info.host,
                         wsx_server_port(R.t[0].srvs[0]), listen_info.path);
    fflush(stdout);
}

/* Parses the options into o, R and a. Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, wsx_server_opts *o, tool_server_args *a)
{
    uint32_t port = 8080, v;
    int ch, status;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", echo_longopts, NULL)) != -1) {
        if (ch == '?' || ch == ':') return tool_bad_option("echo", echo_longopts, argv, ch);
        if ((status = tool_runner_option(&R, MAX_THREADS, o, a, ch, optarg)) >= 0) {
            if (status) return status;
            continue;
        }
        size_t sz;
        switch (ch) {
        case O_HOST:
            o->host = optarg;
            break;
        case O_PORT:
            if (!parse_u32(optarg, &port) || port > 65535)
                return usage_error("echo", "bad --port '%s'", optarg);
            break;
        case O_PATH:
            o->path = optarg;
            break;
        case O_REDIS:
            redis_url = optarg;
            break;
        case O_MAXMSG:
        case O_MAXCONN:
        case O_HIGH:
        case O_HARD:
        case O_MAXQ:
            if (!parse_size(optarg, &sz) || sz == 0)
                return usage_error("echo", "bad size '%s'", optarg);
            if (ch == O_MAXMSG) o->max_message = sz;
            if (ch == O_MAXCONN) o->max_connections = sz;
            if (ch == O_HIGH) o->send_high_water = sz;
            if (ch == O_HARD) o->send_hard_limit = sz;
            if (ch == O_MAXQ) wsx_set_max_queued_bytes(sz);
            break;
        case O_HS:
        case O_IDLE:
        case O_PING:
        case O_PONG:
        case O_CLOSE:
        case O_SHUTDOWN:
            if (!parse_u32(optarg, &v)) return usage_error("echo", "bad milliseconds '%s'", optarg);
            /* 0 on the command line means "never" where that makes sense. */
            if (ch == O_HS) o->handshake_timeout_ms = v ? v : UINT32_MAX;
            if (ch == O_IDLE) o->idle_timeout_ms = v ? v : UINT32_MAX;
            if (ch == O_PING) o->ping_interval_ms = v ? v : UINT32_MAX;
            if (ch == O_PONG) o->pong_timeout_ms = v;
            if (ch == O_CLOSE) o->close_timeout_ms = v;
            if (ch == O_SHUTDOWN) R.shutdown_ms = v;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return usage_error("echo", "unknown option");
        }
    }
    if (optind < argc) return usage_error("echo", "unexpected argument '%s'", argv[optind]);
    if (tool_tls_check(&a->tls, "echo")) return 2;
    if (redis_url && R.n_threads > 1)
        return usage_error("echo", "--redis works with one loop: leave --threads out");
    o->port = (uint16_t)port;
    return -1;
}

/* --redis: the broadcast topic across processes (its publish hook relays what /pub gets). */
static void stop_cluster(unsigned k, void *arg)
{
    (void)arg;
    if (k == 0) wsx_cluster_stop(cluster);
    if (k == 0) cluster = NULL;
}

static bool start_cluster(void)
{
    if (!redis_url) return true;
    wsx_cluster_opts co = wsx_cluster_defaults();
    co.url = redis_url;
    co.topic_prefix = BCAST_TOPIC;
    co.on_log = tool_log_cb;
    co.log_level = g_log.quiet ? WSX_LOG_WARN : WSX_LOG_INFO;
    wsx_error err;
    int rc = wsx_cluster_start(R.t[0].loop, &co, &cluster, &err);
    if (rc < 0)
        fprintf(stderr, "wsx echo: --redis %s: %s%s%s\n", redis_url, wsx_strerror(rc),
                err.detail[0] ? ": " : "", err.detail);
    return rc == 0;
}

int cmd_echo(int argc, char **argv)
{
    wsx_server_opts o = wsx_server_defaults();
    tool_server_args a = {0};
    memset(&R, 0, sizeof R);
    redis_url = NULL;
    cluster = NULL;
    R.cmd = "echo";
    R.on_stop = stop_cluster;
    R.n_threads = 1;
    R.shutdown_ms = 5000;
    int status = parse_args(argc, argv, &o, &a);
    if (status >= 0) return status;
    tool_raise_nofile();
    tool_tls_apply(&a.tls, &o);
    tool_deflate_defaults(&o, !a.no_deflate);
    o.on_upgrade = on_upgrade;
    o.on_upgrade_failed = on_upgrade_failed;
    o.on_open = on_open;
    o.on_message = on_message;
    o.on_close = on_close;
    o.on_log = tool_log_cb;
    o.log_level = g_log.quiet ? WSX_LOG_WARN : WSX_LOG_INFO;
    o.on_access = g_log.access ? tool_access_cb : NULL;
    o.on_conn_log = on_conn_log;
    track = !g_log.quiet;
    R.on_ready = print_listening;
    R.on_stop = stop_metrics;
    listen_info.host = o.host;
    listen_info.path = o.path;
    listen_info.tls = a.tls.n_certs > 0;
    if (tool_runner_start(&R, &o, 1) < 0) return 1;
    for (unsigned k = 0; k < R.n_threads; k++)
        if (!tool_metrics_routes(R.t[k].srvs[0], k)) {
            fprintf(stderr, "wsx echo: out of memory\n");
            tool_runner_free(&R);
            return 1;
        }
    tool_metrics_start(&R);
    if (R.n_threads > 1)
        for (unsigned k = 0; k < R.n_threads; k++)
            wsx_server_set_publish_hook(R.t[k].srvs[0], relay, NULL);
    if (!start_cluster()) {
        tool_runner_free(&R);
        return 1;
    }
    int rc = tool_runner_run(&R);
    stop_cluster(0, NULL);
    tool_runner_free(&R);
    if (rc < 0) return 1;
    tool_logf(WSX_LOG_INFO, "stopped");
    return 0;
}
