/* `wsx echo`: a WebSocket echo server, used by the interop tests and the benchmarks. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

static const char help[] =
    "usage: wsx echo [options]\n"
    "\n"
    "A WebSocket echo server: every text or binary message is sent back as it came.\n"
    "Connections to /sub subscribe to one topic; each message from a connection to /pub is\n"
    "published to it (fan-out measurements).\n"
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
    "  --tls-cert FILE        serve wss:// with this certificate chain (PEM; repeat with\n"
    "                         --tls-key for more names: SNI picks; SIGHUP reloads the files)\n"
    "  --tls-key FILE         the private key of the preceding --tls-cert\n" TOOL_TLS_TIMEOUT_HELP
    "  --quiet                log only warnings and errors\n"
    "  --json-logs            log one JSON object per line\n"
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

/* One loop, one server per thread; the servers share the port (SO_REUSEPORT) and the kernel
 * spreads connections over them. */
typedef struct echo_thread {
    wsx_loop *loop;
    wsx_server *srv;
    pthread_t tid;
    struct echo_state *st;
} echo_thread;

typedef struct echo_state {
    echo_thread t[MAX_THREADS];
    unsigned n;
    uint32_t shutdown_ms;
    int signals;
} echo_state;

static int on_upgrade(wsx_server *s, const wsx_request *rq, void **conn_user, void *user)
{
    (void)s;
    (void)user;
    if (rq->path_len == 4 && !memcmp(rq->path, "/sub", 4)) *conn_user = &role_sub;
    if (rq->path_len == 4 && !memcmp(rq->path, "/pub", 4)) *conn_user = &role_pub;
    return 0;
}

static void on_open(wsx_conn *c, void *user)
{
    (void)user;
    char peer[64];
    if (wsx_conn_peer(c, peer, sizeof peer) < 0) strcpy(peer, "-");
    if (wsx_conn_user(c) == &role_sub) wsx_subscribe(c, BCAST_TOPIC);
    tool_logf(WSX_LOG_INFO, "%s open%s", peer,
              wsx_conn_user(c) == &role_sub   ? " (subscriber)"
              : wsx_conn_user(c) == &role_pub ? " (publisher)"
                                              : "");
}

static void on_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    echo_thread *t = user;
    if (wsx_conn_user(c) == &role_pub) {
        wsx_publish(t->srv, BCAST_TOPIC, m->data, m->len, m->type);
        return;
    }
    wsx_send(c, m->data, m->len, m->type);
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    (void)user;
    char peer[64];
    if (wsx_conn_peer(c, peer, sizeof peer) < 0) strcpy(peer, "-");
    tool_logf(WSX_LOG_INFO, "%s close %d%s%.*s", peer, code, len ? " " : "", (int)len, reason);
}

static void shutdown_thread(void *arg)
{
    echo_thread *t = arg;
    wsx_server_shutdown(t->srv, t->st->shutdown_ms);
}

/* A publish on one thread reaches the subscribers of the others through their loops. */
static void relay(wsx_server *s, const char *topic, const uint8_t *data, size_t len, int type,
                  void *arg)
{
    echo_state *st = arg;
    for (unsigned i = 0; i < st->n; i++)
        if (st->t[i].srv != s) wsx_deliver_local_threadsafe(st->t[i].srv, topic, data, len, type);
}

static void *run_thread(void *arg)
{
    echo_thread *t = arg;
    wsx_loop_run(t->loop);
    return NULL;
}

static void on_signal(wsx_loop *loop, int signo, void *arg)
{
    echo_state *st = arg;
    if (signo == SIGHUP) {
        /* Each thread's server holds its own certificate set. */
        wsx_server *list[MAX_THREADS];
        for (unsigned i = 0; i < st->n; i++)
            list[i] = st->t[i].srv;
        tool_reload_tls(list, st->n);
        return;
    }
    if (st->signals++) {
        tool_logf(WSX_LOG_WARN, "second signal: exiting now");
        exit(1);
    }
    tool_logf(WSX_LOG_INFO, "%s: shutting down (%zu connections)",
              signo == SIGINT ? "SIGINT" : "SIGTERM", wsx_server_connections(st->t[0].srv));
    wsx_server_shutdown(st->t[0].srv, st->shutdown_ms);
    for (unsigned i = 1; i < st->n; i++)
        wsx_loop_post(st->t[i].loop, shutdown_thread, &st->t[i]);
    /* The signal watcher does not keep the loop alive; the connections do. */
    (void)loop;
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
    O_QUIET,
    O_JSON,
    O_THREADS,
    O_MAXQ,
};

int cmd_echo(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"path", required_argument, 0, O_PATH},
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
        {"quiet", no_argument, 0, O_QUIET},
        {"json-logs", no_argument, 0, O_JSON},
        {"no-deflate", no_argument, 0, 'D'},
        {"threads", required_argument, 0, O_THREADS},
        TOOL_TLS_LONGOPTS,
        TOOL_ADMIT_LONGOPTS,
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    wsx_server_opts o = wsx_server_defaults();
    o.port = 8080;
    static echo_state st;
    st.shutdown_ms = 5000;
    st.n = 1;
    uint32_t port = 8080, v;
    tool_tls tls = {0};
    bool no_deflate = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        size_t sz;
        switch (ch) {
        case O_HOST:
            o.host = optarg;
            break;
        case O_PORT:
            if (!parse_u32(optarg, &port) || port > 65535)
                return usage_error("echo", "bad --port '%s'", optarg);
            break;
        case O_PATH:
            o.path = optarg;
            break;
        case O_MAXMSG:
        case O_MAXCONN:
        case O_HIGH:
        case O_HARD:
        case O_MAXQ:
            if (!parse_size(optarg, &sz) || sz == 0)
                return usage_error("echo", "bad size '%s'", optarg);
            if (ch == O_MAXMSG) o.max_message = sz;
            if (ch == O_MAXCONN) o.max_connections = sz;
            if (ch == O_HIGH) o.send_high_water = sz;
            if (ch == O_HARD) o.send_hard_limit = sz;
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
            if (ch == O_HS) o.handshake_timeout_ms = v ? v : UINT32_MAX;
            if (ch == O_IDLE) o.idle_timeout_ms = v ? v : UINT32_MAX;
            if (ch == O_PING) o.ping_interval_ms = v ? v : UINT32_MAX;
            if (ch == O_PONG) o.pong_timeout_ms = v;
            if (ch == O_CLOSE) o.close_timeout_ms = v;
            if (ch == O_SHUTDOWN) st.shutdown_ms = v;
            break;
        case O_QUIET:
            g_log.quiet = true;
            break;
        case O_JSON:
            g_log.json = true;
            break;
        case O_THREADS:
            if (!parse_u32(optarg, &v) || v < 1 || v > MAX_THREADS)
                return usage_error("echo", "bad --threads '%s' (1 to %d)", optarg, MAX_THREADS);
            st.n = v;
            break;
        case TOOL_O_TLS_CERT:
        case TOOL_O_TLS_KEY:
        case TOOL_O_TLS_HS:
            if (!tool_tls_option(&tls, ch, optarg, "echo")) return 2;
            break;
        case TOOL_O_MAX_PER_IP:
        case TOOL_O_MAX_HS_PER_IP:
        case TOOL_O_MAX_HS:
            if (!tool_admit_option(&o, ch, optarg, "echo")) return 2;
            break;
        case 'D':
            no_deflate = true;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return usage_error("echo", "unknown option");
        }
    }
    if (optind < argc) return usage_error("echo", "unexpected argument '%s'", argv[optind]);
    if (tool_tls_check(&tls, "echo")) return 2;
    tool_raise_nofile();
    tool_tls_apply(&tls, &o);
    o.port = (uint16_t)port;
    tool_deflate_defaults(&o, !no_deflate);
    o.on_upgrade = on_upgrade;
    o.on_open = on_open;
    o.on_message = on_message;
    o.on_close = on_close;
    o.on_log = tool_log_cb;
    o.log_level = g_log.quiet ? WSX_LOG_WARN : WSX_LOG_INFO;
    o.reuseport = st.n > 1;

    int rc = 0;
    for (unsigned i = 0; i < st.n; i++) {
        echo_thread *t = &st.t[i];
        t->st = &st;
        wsx_server_opts so = o;
        so.user = t;
        /* Port 0 picks a free port for the first server; the others join it. */
        if (i > 0) so.port = wsx_server_port(st.t[0].srv);
        rc = wsx_loop_new(&t->loop);
        if (rc == 0) rc = wsx_server_start(t->loop, &so, &t->srv);
        if (rc < 0) {
            if (rc == WSX_ETLS)
                fprintf(stderr, "wsx echo: %s\n", wsx_error_detail());
            else
                fprintf(stderr, "wsx echo: cannot listen on %s:%u: %s\n", o.host ? o.host : "*",
                        so.port, wsx_strerror(rc));
            return 1;
        }
        if (st.n > 1) wsx_server_set_publish_hook(t->srv, relay, &st);
    }
    /* Signals reach the first loop only: block them before the other threads start, so
     * they inherit the mask. */
    wsx_loop_on_signal(st.t[0].loop, on_signal, &st);
    for (unsigned i = 1; i < st.n; i++) {
        if (pthread_create(&st.t[i].tid, NULL, run_thread, &st.t[i]) != 0) {
            fprintf(stderr, "wsx echo: cannot start thread %u\n", i);
            return 1;
        }
    }
    const char *h = o.host && *o.host ? o.host : "0.0.0.0";
    bool v6 = strchr(h, ':') != NULL;
    printf("listening on %s://%s%s%s:%u%s\n", tls.n_certs ? "wss" : "ws", v6 ? "[" : "", h,
           v6 ? "]" : "", wsx_server_port(st.t[0].srv), o.path ? o.path : "/");
    fflush(stdout);
    rc = wsx_loop_run(st.t[0].loop);
    for (unsigned i = 1; i < st.n; i++)
        pthread_join(st.t[i].tid, NULL);
    for (unsigned i = 0; i < st.n; i++) {
        wsx_server_free(st.t[i].srv);
        wsx_loop_free(st.t[i].loop);
    }
    if (rc < 0) {
        fprintf(stderr, "wsx echo: event loop failed: %s\n", wsx_strerror(rc));
        return 1;
    }
    tool_logf(WSX_LOG_INFO, "stopped");
    return 0;
}
