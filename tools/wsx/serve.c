/*
 * `wsx serve`: the chat server with its web page. The protocol is docs/chat-protocol.md.
 * Rooms are pub/sub topics ("room:NAME"): a chat message is serialised once and published
 * to the topic, which frames it once for every member. This file is the command: its
 * options, its help text and the wiring of the loops (serve.h names the other parts).
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"
#include "metrics.h"
#include "serve.h"

serve_state g_serve;
_Thread_local unsigned g_serve_thread;

static const char help[] =
    "usage: wsx serve [options]\n"
    "\n"
    "The chat server: the page at http://HOST:PORT/ (and /sio/, the same chat on\n"
    "socket.io-client), WebSocket at /ws, Socket.IO at /socket.io/, server-sent events at\n"
    "/sse?room=NAME, /healthz and /metrics, all in the same rooms. The protocol is described\n"
    "in docs/chat-protocol.md.\n"
    "\n"
    "  --host H               address to listen on (default: all interfaces, reachable\n"
    "                         from the network; 127.0.0.1 for this machine only). A line\n"
    "                         'listening on http://ADDR:PORT/' is printed for each address\n"
    "  --port P               port (default 8080; 0 picks a free one)\n"
    "  --static DIR           serve this directory instead of the built-in page (ETag,\n"
    "                         Last-Modified, 304, single byte ranges; no listings; nothing\n"
    "                         outside DIR, also through symlinks)\n"
    "  --token T              require this token (?token=T or Authorization: Bearer T) for\n"
    "                         WebSocket, /sse and /metrics (401 without it), and for\n"
    "                         Socket.IO (also auth: {token: T}; connect_error\n"
    "                         'unauthorized' without it); it also lets backends post:\n"
    "                         POST /api/rooms/NAME/messages\n"
    "                         (without --token posting is refused with 403)\n"
    "  --metrics-token T      /metrics needs this token instead of --token (then only this\n"
    "                         one); without either option /metrics is public\n"
    "  --origin O             accept browser pages only from origin O (repeatable)\n"
    "  --cors O               let pages from origin O read the files and use Socket.IO's\n"
    "                         long-polling (CORS; repeatable; * for any): preflights get\n"
    "                         204 (403 for other origins)\n"
    "  --no-socketio          do not answer /socket.io/ (Socket.IO: Engine.IO v4 over\n"
    "                         long-polling and WebSocket, namespace /, ping every 25 s,\n"
    "                         closed after 20 s more without pong, 64 KiB per POST, 45 s\n"
    "                         for the CONNECT; WebSocket only with --threads above 1)\n"
    "  --history N            messages kept per room and sent on join (default 100; with\n"
    "                         --redis, kept in Redis too, for joins on any node)\n"
    "  --history-bytes N      bytes of history over all rooms (K/M/G suffixes; default 64M;\n"
    "                         0 = no budget): past it the rooms posted to least recently\n"
    "                         lose their history\n"
    "  --history-idle S       drop the history of a room nobody has been in (or listened to)\n"
    "                         for S seconds (default 86400; 0 = never)\n"
    "  --rate N               chat messages (message, typing) per second per connection\n"
    "                         (default 20; 0 = no limit): more get the error rate_limited,\n"
    "                         and over 100 refusals in 10 s close the connection with 1008\n"
    "  --burst N              chat messages a connection may send at once (default 40)\n"
    "  --join-rate N          joins and leaves per second per connection (default 5; 0 = no\n"
    "                         limit); more get rate_limited, and count towards the 1008\n"
    "  --join-burst N         joins and leaves a connection may send at once (default 100)\n"
    "  --rate-per-ip N        chat messages per second from one client address (an IPv4\n"
    "                         address or an IPv6 /64), over all its connections together\n"
    "                         (default 100; 0 = no limit): more get rate_limited, as above\n"
    "  --burst-per-ip N       chat messages one address may send at once (default 200)\n"
    "  --join-rate-per-ip N   joins and leaves per second from one client address (default\n"
    "                         10; 0 = no limit)\n"
    "  --join-burst-per-ip N  joins and leaves one address may send at once (default 200)\n"
    "  --post-rate N          posts (POST /api/rooms/NAME/messages) per second, all backends\n"
    "                         together (default 100; 0 = no limit): more get 429\n"
    "  --post-burst N         posts that may come at once (default 200)\n"
    "  --max-connections N    WebSocket connections at most (default 10000)\n" TOOL_ADMIT_HELP
    "  --max-queued-bytes B   bytes queued for sending in the whole process; above it the\n"
    "                         largest queues are closed with 1008 (default: 1/4 of the RAM)\n"
    "  --ping-interval MS     ping silent connections (default 30000; 0 = never)\n"
    "  --shutdown-timeout MS  on SIGINT/SIGTERM, time for clients to close (default 5000)\n"
    "  --tls-cert FILE        serve https:// and wss:// with this certificate chain (PEM);\n"
    "                         repeat with --tls-key for more names (SNI); SIGHUP reloads\n"
    "  --tls-key FILE         the private key of the preceding --tls-cert\n"
    "  --tls-port P           with --tls-cert: TLS on P, plain HTTP stays on "
    "--port\n" TOOL_TLS_TIMEOUT_HELP
    "  --threads N            N event loops in N threads on the same port(s) (SO_REUSEPORT)\n"
    "  --redis URL            share the rooms with the other nodes on this Redis\n"
    "                         (redis://[user:password@]host[:port][/db] or unix:///path):\n"
    "                         every room event reaches the members on every node; while\n"
    "                         Redis is down each node goes on locally and /healthz says\n"
    "                         degraded (docs/cluster.md)\n"
    "  --quiet                log only warnings and errors\n"
    "  --json-logs            log one JSON object per line, with fields (conn, peer, path,\n"
    "                         code, reason, room, status, bytes, ms) besides ts, level, msg\n"
    "  --access-log           log each answered HTTP request: peer, method, path, status,\n"
    "                         body bytes, milliseconds (also with --quiet)\n"
    "  --no-deflate           refuse permessage-deflate (accepted by default, without server\n"
    "                         context takeover: one shared compressor, no per-connection one)\n"
    "  -h, --help             this text\n";

/* On loop k's thread when shutdown begins (the runner then shuts its servers down): the
 * timers would keep the loop alive. */
static void stop_timers(unsigned k, void *arg)
{
    (void)arg;
    serve_thread *t = &g_serve.t[k];
    /* Socket.IO sockets leave the chat now ("server shutting down"), their sessions close. */
    for (size_t i = 0; i < TOOL_RUNNER_MAX_SERVERS; i++) {
        wsx_sio_free(t->sio[i]);
        t->sio[i] = NULL;
    }
    if (t->keepalive) wsx_timer_stop(t->keepalive);
    t->keepalive = NULL;
    tool_metrics_stop(k);
    if (k == 0 && g_serve.expire) {
        wsx_timer_stop(g_serve.expire);
        g_serve.expire = NULL;
    }
    if (k == 0) serve_cluster_stop();
}

static void set_thread(unsigned k, void *arg)
{
    (void)arg;
    g_serve_thread = k;
}

enum {
    O_HOST = 256,
    O_PORT,
    O_STATIC,
    O_TOKEN,
    O_ORIGIN,
    O_CORS,
    O_HISTORY,
    O_MAXCONN,
    O_PING,
    O_SHUTDOWN,
    O_TLSPORT,
    O_HISTORY_BYTES,
    O_HISTORY_IDLE,
    O_RATE,
    O_BURST,
    O_JOIN_RATE,
    O_JOIN_BURST,
    O_RATE_PER_IP,
    O_BURST_PER_IP,
    O_JOIN_RATE_PER_IP,
    O_JOIN_BURST_PER_IP,
    O_METRICS_TOKEN,
    O_MAXQ,
    O_POST_RATE,
    O_POST_BURST,
    O_REDIS,
    O_NO_SOCKETIO,
};

/* Drops the history of rooms idle for longer than --history-idle (the chat keeps them in
 * the order they went idle, so this costs what it drops). */
static void expire_timer(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    wsx_chat_expire(g_serve.chat);
}

/* What the command line sets besides the server and chat options. */
typedef struct serve_args {
    uint32_t port, tls_port;
    bool have_tls_port;
    tool_server_args s; /* --threads, --no-deflate, TLS: the options shared with `wsx echo` */
} serve_args;

/* The chat's limits that take a count: option, name, least value, field. */
static const struct {
    int opt;
    const char *name;
    uint32_t min;
    size_t off;
} chat_counts[] = {
    {O_RATE, "rate", 0, offsetof(wsx_chat_opts, rate)},
    {O_BURST, "burst", 1, offsetof(wsx_chat_opts, burst)},
    {O_JOIN_RATE, "join-rate", 0, offsetof(wsx_chat_opts, join_rate)},
    {O_JOIN_BURST, "join-burst", 1, offsetof(wsx_chat_opts, join_burst)},
    {O_RATE_PER_IP, "rate-per-ip", 0, offsetof(wsx_chat_opts, rate_per_ip)},
    {O_BURST_PER_IP, "burst-per-ip", 1, offsetof(wsx_chat_opts, burst_per_ip)},
    {O_JOIN_RATE_PER_IP, "join-rate-per-ip", 0, offsetof(wsx_chat_opts, join_rate_per_ip)},
    {O_JOIN_BURST_PER_IP, "join-burst-per-ip", 1, offsetof(wsx_chat_opts, join_burst_per_ip)},
    {O_POST_RATE, "post-rate", 0, offsetof(wsx_chat_opts, post_rate)},
    {O_POST_BURST, "post-burst", 1, offsetof(wsx_chat_opts, post_burst)},
};

/* Sets one of chat_counts. Returns false (after the usage message) if it is not one or the
 * value is out of range; *status is then the exit status (0 when it was not one). */
static bool chat_count_option(int ch, const char *arg, int *status)
{
    *status = 0;
    for (size_t i = 0; i < sizeof chat_counts / sizeof chat_counts[0]; i++) {
        if (chat_counts[i].opt != ch) continue;
        uint32_t v;
        if (!parse_u32(arg, &v) || v < chat_counts[i].min || v > 1000000) {
            *status = usage_error("serve", "bad --%s '%s' (%u to 1000000)", chat_counts[i].name,
                                  arg, chat_counts[i].min);
            return false;
        }
        memcpy((char *)&g_serve.chat_opts + chat_counts[i].off, &v, sizeof v);
        return true;
    }
    return false;
}

static const struct option serve_longopts[] = {
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"static", required_argument, 0, O_STATIC},
    {"token", required_argument, 0, O_TOKEN},
    {"metrics-token", required_argument, 0, O_METRICS_TOKEN},
    {"origin", required_argument, 0, O_ORIGIN},
    {"cors", required_argument, 0, O_CORS},
    {"history", required_argument, 0, O_HISTORY},
    {"history-bytes", required_argument, 0, O_HISTORY_BYTES},
    {"history-idle", required_argument, 0, O_HISTORY_IDLE},
    {"max-connections", required_argument, 0, O_MAXCONN},
    {"max-queued-bytes", required_argument, 0, O_MAXQ},
    {"ping-interval", required_argument, 0, O_PING},
    {"shutdown-timeout", required_argument, 0, O_SHUTDOWN},
    {"quiet", no_argument, 0, TOOL_O_QUIET},
    {"json-logs", no_argument, 0, TOOL_O_JSON_LOGS},
    {"access-log", no_argument, 0, TOOL_O_ACCESS_LOG},
    {"no-deflate", no_argument, 0, 'D'},
    {"tls-port", required_argument, 0, O_TLSPORT},
    TOOL_TLS_LONGOPTS,
    TOOL_ADMIT_LONGOPTS,
    {"threads", required_argument, 0, TOOL_O_THREADS},
    {"redis", required_argument, 0, O_REDIS},
    {"rate", required_argument, 0, O_RATE},
    {"burst", required_argument, 0, O_BURST},
    {"join-rate", required_argument, 0, O_JOIN_RATE},
    {"join-burst", required_argument, 0, O_JOIN_BURST},
    {"rate-per-ip", required_argument, 0, O_RATE_PER_IP},
    {"burst-per-ip", required_argument, 0, O_BURST_PER_IP},
    {"join-rate-per-ip", required_argument, 0, O_JOIN_RATE_PER_IP},
    {"join-burst-per-ip", required_argument, 0, O_JOIN_BURST_PER_IP},
    {"post-rate", required_argument, 0, O_POST_RATE},
    {"post-burst", required_argument, 0, O_POST_BURST},
    {"no-socketio", no_argument, 0, O_NO_SOCKETIO},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* The options that set the web side and the chat's history (g_serve). Returns -1 if ch is not one
 * of them, 0 if it was set, else the exit status. */
static int app_option(int ch, const char *arg)
{
    size_t sz;
    uint32_t v;
    switch (ch) {
    case O_STATIC:
        g_serve.static_dir = arg;
        return 0;
    case O_REDIS:
        if (!*arg) return usage_error("serve", "empty --redis");
        g_serve.redis_url = arg;
        return 0;
    case O_NO_SOCKETIO:
        g_serve.no_socketio = true;
        return 0;
    case O_TOKEN:
        if (!*arg) return usage_error("serve", "empty --token");
        g_serve.token = arg;
        return 0;
    case O_METRICS_TOKEN:
        if (!*arg) return usage_error("serve", "empty --metrics-token");
        g_serve.metrics_token = arg;
        return 0;
    case O_ORIGIN:
        if (g_serve.n_origins == MAX_ORIGINS) return usage_error("serve", "too many --origin");
        g_serve.origins[g_serve.n_origins++] = arg;
        return 0;
    case O_CORS:
        if (g_serve.cors.n_origins == MAX_ORIGINS) return usage_error("serve", "too many --cors");
        if (!*arg) return usage_error("serve", "empty --cors");
        g_serve.cors_origins[g_serve.cors.n_origins++] = arg;
        return 0;
    case O_HISTORY:
        if (!parse_size(arg, &sz) || sz > 100000)
            return usage_error("serve", "bad --history '%s' (0 to 100000)", arg);
        g_serve.chat_opts.history = sz;
        return 0;
    case O_HISTORY_BYTES:
        if (!parse_size(arg, &sz)) return usage_error("serve", "bad --history-bytes '%s'", arg);
        g_serve.chat_opts.history_bytes = sz;
        return 0;
    case O_HISTORY_IDLE:
        if (!parse_u32(arg, &v)) return usage_error("serve", "bad --history-idle");
        g_serve.chat_opts.history_idle_ms = (uint64_t)v * 1000;
        return 0;
    default:
        return -1;
    }
}

/* The options that set the server and the network side (o, a, the runner). Returns -1 if ch
 * is not one of them, 0 if it was set, else the exit status. */
static int server_option(int ch, const char *arg, wsx_server_opts *o, serve_args *a)
{
    uint32_t v;
    size_t sz;
    switch (ch) {
    case O_HOST:
        o->host = arg;
        return 0;
    case O_PORT:
        if (!parse_u32(arg, &a->port) || a->port > 65535)
            return usage_error("serve", "bad --port '%s'", arg);
        return 0;
    case O_MAXCONN:
        if (!parse_size(arg, &sz) || !sz) return usage_error("serve", "bad --max-connections");
        o->max_connections = sz;
        return 0;
    case O_MAXQ:
        if (!parse_size(arg, &sz) || !sz) return usage_error("serve", "bad --max-queued-bytes");
        wsx_set_max_queued_bytes(sz);
        return 0;
    case O_PING:
        if (!parse_u32(arg, &v)) return usage_error("serve", "bad --ping-interval");
        o->ping_interval_ms = v ? v : UINT32_MAX;
        return 0;
    case O_SHUTDOWN:
        if (!parse_u32(arg, &g_serve.runner.shutdown_ms))
            return usage_error("serve", "bad --shutdown-timeout");
        return 0;
    case O_TLSPORT:
        if (!parse_u32(arg, &a->tls_port) || a->tls_port > 65535)
            return usage_error("serve", "bad --tls-port '%s'", arg);
        a->have_tls_port = true;
        return 0;
    default:
        return tool_runner_option(&g_serve.runner, MAX_THREADS, o, &a->s, ch, arg);
    }
}

/* The checks of the options together, once all are read. Returns -1 to go on, else the exit
 * status. */
static int check_args(const serve_args *a)
{
    if (tool_tls_check(&a->s.tls, "serve")) return 2;
    if (a->have_tls_port && !a->s.tls.n_certs)
        return usage_error("serve", "--tls-port needs --tls-cert");
    /* Both servers would try the one port: the second would fail after the first listens. */
    if (a->have_tls_port && a->tls_port == a->port && a->port != 0)
        return usage_error("serve",
                           "--tls-port %u is also --port: give TLS a port of its own (or leave "
                           "--tls-port out to serve only TLS on --port)",
                           a->port);
    return -1;
}

/* Parses the options into o, g_serve and a. Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, wsx_server_opts *o, serve_args *a)
{
    int ch, status;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", serve_longopts, NULL)) != -1) {
        if (ch == '?' || ch == ':') return tool_bad_option("serve", serve_longopts, argv, ch);
        if (chat_count_option(ch, optarg, &status)) continue;
        if (status) return status;
        if ((status = app_option(ch, optarg)) < 0) status = server_option(ch, optarg, o, a);
        if (status > 0) return status;
        if (status == 0) continue;
        if (ch == 'h') {
            fputs(help, stdout);
            return 0;
        }
        return usage_error("serve", "unknown option");
    }
    if (optind < argc) return usage_error("serve", "unexpected argument '%s'", argv[optind]);
    return check_args(a);
}

/* The file server: the --static directory, or the embedded page. Returns false (printed). */
static bool prepare_files(void)
{
    wsx_static_opts so = wsx_static_defaults();
    so.root = g_serve.static_dir;
    so.files = g_serve.static_dir ? NULL : wsx_assets;
    int rc = wsx_static_new(&so, &g_serve.files);
    if (rc < 0) {
        fprintf(stderr, "wsx serve: --static %s: %s\n",
                g_serve.static_dir ? g_serve.static_dir : "-",
                rc == WSX_ESYS     ? strerror(errno)
                : rc == WSX_EINVAL ? "not a directory"
                                   : wsx_strerror(rc));
        return false;
    }
    g_serve.cors.origins = g_serve.cors_origins; /* --cors counted them */
    g_serve.cors.methods = "GET, HEAD";
    return true;
}

/* Which servers of a loop are TLS, and the host, for print_listening. */
static struct {
    bool tls[TOOL_RUNNER_MAX_SERVERS];
    const char *host;
} listen_info;

/* The listening lines, once signals are handled (scripts may send one as soon as they read
 * them). */
static void print_listening(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < g_serve.runner.n_srvs; i++)
        tool_print_listening(listen_info.tls[i] ? "https" : "http", listen_info.host,
                             wsx_server_port(g_serve.runner.t[0].srvs[i]), "/");
    fflush(stdout);
}

/* The servers of every loop: plain on --port unless TLS takes it; TLS on --tls-port, or on
 * --port without it. Returns false (printed). */
static bool start_servers(const wsx_server_opts *o, const serve_args *a)
{
    wsx_server_opts so[2];
    size_t n = 0;
    listen_info.host = o->host;
    if (!a->s.tls.n_certs || a->have_tls_port) {
        listen_info.tls[n] = false;
        so[n++] = *o;
    }
    if (a->s.tls.n_certs) {
        so[n] = *o;
        tool_tls_apply(&a->s.tls, &so[n]);
        if (a->have_tls_port) so[n].port = (uint16_t)a->tls_port;
        listen_info.tls[n++] = true;
    }
    if (tool_runner_start(&g_serve.runner, so, n) < 0) return false;
    for (unsigned k = 0; k < g_serve.runner.n_threads; k++)
        for (size_t i = 0; i < g_serve.runner.n_srvs; i++)
            if (!serve_add_routes(g_serve.runner.t[k].srvs[i]) ||
                (!g_serve.no_socketio &&
                 !(g_serve.t[k].sio[i] = serve_sio_attach(g_serve.runner.t[k].srvs[i])))) {
                for (unsigned j = 0; j <= k; j++)
                    for (size_t m = 0; m < TOOL_RUNNER_MAX_SERVERS; m++) {
                        wsx_sio_free(g_serve.t[j].sio[m]);
                        g_serve.t[j].sio[m] = NULL;
                    }
                fprintf(stderr, "wsx serve: out of memory\n");
                tool_runner_free(&g_serve.runner);
                return false;
            }
    return true;
}

/* The SSE keep-alives and, with several loops, the metrics snapshots on every loop; the
 * history expiry on the first. */
static void start_timers(void)
{
    for (unsigned k = 0; k < g_serve.runner.n_threads; k++) {
        serve_thread *t = &g_serve.t[k];
        wsx_timer_start(g_serve.runner.t[k].loop, SSE_KEEPALIVE_MS, SSE_KEEPALIVE_MS,
                        serve_sse_keepalive, NULL, &t->keepalive);
    }
    tool_metrics_start(&g_serve.runner);
    if (g_serve.chat_opts.history_idle_ms) {
        uint64_t every = g_serve.chat_opts.history_idle_ms / 10;
        every = every < 100 ? 100 : every > 60000 ? 60000 : every;
        wsx_timer_start(g_serve.runner.t[0].loop, every, every, expire_timer, NULL,
                        &g_serve.expire);
    }
}

int cmd_serve(int argc, char **argv)
{
    memset(&g_serve, 0, sizeof g_serve); /* the runner too */
    g_serve.runner.cmd = "serve";
    g_serve.runner.n_threads = 1;
    g_serve.runner.shutdown_ms = 5000;
    g_serve.runner.on_thread = set_thread;
    g_serve.runner.on_stop = stop_timers;
    g_serve.runner.on_ready = print_listening;
    g_serve.chat_opts = wsx_chat_defaults();
    wsx_server_opts o = wsx_server_defaults();
    serve_args a = {.port = 8080};
    int status = parse_args(argc, argv, &o, &a);
    if (status >= 0) return status;
    tool_raise_nofile();
    if (!prepare_files()) return 1;
    o.port = (uint16_t)a.port;
    o.path = "/ws";
    o.max_message = SERVE_MAX_MESSAGE;
    tool_deflate_defaults(&o, !a.s.no_deflate);
    o.on_http = serve_on_page;
    o.on_log = tool_log_cb;
    o.log_level = g_log.quiet ? WSX_LOG_WARN : WSX_LOG_INFO;
    o.on_access = g_log.access ? tool_access_cb : NULL;
    o.on_conn_log = serve_conn_log;
    /* A join is refused (slow_down) while the connection's queue is above its high-water
     * mark (the library's default unless set above). */
    g_serve.chat_opts.join_max_queued = o.send_high_water ? o.send_high_water : (size_t)1 << 20;
    /* The sequencer only with --redis: it makes the chat build each message twice when it
     * declines (Redis away). */
    static wsx_chat_ops ops;
    ops = serve_chat_ops;
    if (!g_serve.redis_url) ops.sequence = NULL;
    if (wsx_chat_new(&g_serve.chat_opts, &ops, &g_serve.chat) < 0) {
        fprintf(stderr, "wsx serve: out of memory\n");
        wsx_static_free(g_serve.files);
        return 1;
    }
    if (!start_servers(&o, &a)) {
        wsx_chat_free(g_serve.chat);
        wsx_static_free(g_serve.files);
        return 1;
    }
    if (!serve_cluster_start()) {
        tool_runner_free(&g_serve.runner);
        wsx_chat_free(g_serve.chat);
        wsx_static_free(g_serve.files);
        return 1;
    }
    start_timers();
    int rc = tool_runner_run(&g_serve.runner);
    serve_cluster_stop(); /* normally done when shutdown began (stop_timers) */
    serve_presence_free();
    /* Relays and history releases posted to a loop after it had finished are freed with it
     * (their destructors), never run. */
    g_serve.loops_done = true;
    for (unsigned k = 0; k < g_serve.runner.n_threads; k++)
        for (size_t i = 0; i < TOOL_RUNNER_MAX_SERVERS; i++) {
            wsx_sio_free(g_serve.t[k].sio[i]);
            g_serve.t[k].sio[i] = NULL;
        }
    tool_runner_free(&g_serve.runner);
    wsx_chat_free(g_serve.chat);
    wsx_static_free(g_serve.files);
    tool_logf(WSX_LOG_INFO, "stopped");
    return rc < 0 ? 1 : 0;
}
