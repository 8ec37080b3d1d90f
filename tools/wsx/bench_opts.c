/* `wsx bench`: the options, the help text, and the checks made before any connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

static const char help[] =
    "usage: wsx bench [options] URL\n"
    "\n"
    "Opens connections to URL (ws:// or wss://host[:port]/path) with a real handshake and keeps\n"
    "masked messages in flight on each; every byte that comes back is checked. Reports\n"
    "messages/s, MB/s, latency percentiles, connections made and failed, errors by kind and,\n"
    "given the server's pid, its CPU time per message and its memory per connection. Only\n"
    "loopback targets unless --allow-remote.\n"
    "\n"
    "  -m, --mode MODE         echo (default): each connection keeps K messages in flight and\n"
    "                          expects them back in order;\n"
    "                          fanout: C subscribers connect to /sub, then one publisher to\n"
    "                          /pub keeps K broadcasts in flight (`wsx echo` serves both);\n"
    "                          idle: C connections are opened and held, nothing is sent;\n"
    "                          sio-echo, sio-broadcast, sio-idle: the same over Socket.IO v5\n"
    "                          (WebSocket transport only; see \"Socket.IO\" below)\n"
    "      --idle N            the same as --mode idle -c N\n"
    "  -c, --connections N     connections (fanout: subscribers) (default 100)\n"
    "  -s, --size BYTES        message size, 0..16M (default 32)\n"
    "  -k, --in-flight K       messages in flight per connection, fanout: broadcasts (default 16)\n"
    "  -b, --binary            binary messages (default: text, printable ASCII)\n"
    "      --payload KIND      pattern (default): pseudo-random characters or bytes, which\n"
    "                          barely compress; json: chat messages as JSON text\n"
    "                          ({\"type\":\"message\",\"room\":...,\"text\":\"words...\"}) of\n"
    "                          exactly S bytes (S >= 83) that compress like a chat stream\n"
    "  -z, --deflate           offer permessage-deflate; the summary says on how many\n"
    "                          connections the server agreed to it\n"
    "      --cacert FILE       wss://: trust the CA certificates in FILE (PEM) instead of the\n"
    "                          system's\n"
    "      --insecure          wss://: do NOT verify the server's certificate or name\n"
    "  -d, --duration S        measured seconds (idle: seconds held) (default 5)\n"
    "  -w, --warmup S          seconds of load before the measurement starts (default 1)\n"
    "  -n, --messages N        end the measurement after N messages (default: time only)\n"
    "  -t, --threads N         event loops, one per thread, connections split among them\n"
    "                          (default 1)\n"
    "  -p, --server-pid PID    the server's process: its CPU per message from /proc/PID/stat,\n"
    "                          and its RSS growth per connection (VmRSS, from before the\n"
    "                          connections to the end of the measurement; idle: after -w)\n"
    "      --connect-timeout S time for every connection to open, handshake included\n"
    "                          (default 10); late ones fail with connect_timeout\n"
    "      --max-connecting N  handshakes in progress at once (default 32, the servers'\n"
    "                          --max-handshakes-per-ip)\n"
    "      --stall S           a connection with messages in flight that gets nothing back\n"
    "                          for S seconds is a stall error (default 3)\n"
    "      --allow-remote      allow a target that is not a loopback address\n"
    "      --json              print one JSON object on stdout instead of the summary; no\n"
    "                          progress line\n"
    "  -v, --verbose           interval lines on stderr even when it is not a terminal\n"
    "  -h, --help              this text\n"
    "\n"
    "Socket.IO (--mode sio-*): URL is the server's, ws://host:port/ connects to\n"
    "/socket.io/?EIO=4&transport=websocket (a path without a query gets the query). Each\n"
    "connection reads the open packet, sends CONNECT (40) to the main namespace, waits for\n"
    "40{\"sid\":...} and answers the server's pings (2) with pongs (3).\n"
    "  sio-echo       each connection keeps K events in flight, each with an ack id:\n"
    "                 42<n>[\"message-with-ack\",{\"id\":I,\"seq\":n,\"text\":\"...\"}], and\n"
    "                 expects the ack 43<n>[{...the same object...}] byte for byte, in order\n"
    "  sio-broadcast  C subscribers join the room \"" SIO_ROOM "\" (420[\"join\",\"" SIO_ROOM
    "\"], ack\n"
    "                 430[\"joined:" SIO_ROOM "\"]), then one publisher keeps K\n"
    "                 42[\"broadcast\",\"" SIO_ROOM "\",{...}] in flight; each subscriber expects\n"
    "                 42[\"broadcasted\",{...}]: deliveries/s, delivery and broadcast latency\n"
    "  sio-idle       C Socket.IO clients connected and held: the server's RSS per client\n"
    "-s is the length of \"text\" (words, no escapes). These are events of `wsx sio`; the\n"
    "Node.js server bench/sio/server.mjs answers them the same way (bench/sio/run.sh runs both).\n"
    "\n"
    "The defaults are scenario A of bench/run.sh, the README's echo figure; the summary names\n"
    "the scenario of docs/performance.md that a run matches.\n"
    "\n"
    "Payload: with S >= 16 the first 16 bytes carry the connection id and the message's\n"
    "sequence number (hex), so loss, duplication and reordering are caught; the rest is a\n"
    "pattern that depends on the sequence number, and every byte is compared. With --payload\n"
    "json the id and the number are the \"name\" and \"seq\" fields, the words of \"text\"\n"
    "depend on the number, and again every byte is compared.\n"
    "\n"
    "A progress line on stderr every second while it runs (when stderr is a terminal, or\n"
    "with -v), then a summary on stdout. Exit status: 0 when messages completed (idle: every\n"
    "connection was held) and no error of any kind happened; 1 otherwise; 2 on a usage error\n"
    "or a refused target; 3 on the hard time limit (connect timeout + warm-up + duration + 15 "
    "s).\n";

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* True when every address host resolves to is a loopback one (127.0.0.0/8, ::1): the
 * client may connect to any of them. Nothing is sent to the host. */
static bool host_is_loopback(const char *host, char *why, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc) {
        if (snprintf(why, cap, "cannot resolve '%s': %s", host, gai_strerror(rc)) >= (int)cap)
            why[cap - 1] = '\0';
        return false;
    }
    bool ok = true;
    for (struct addrinfo *ai = res; ai && ok; ai = ai->ai_next) {
        if (addr_is_loopback(ai->ai_addr)) continue;
        char addr[INET6_ADDRSTRLEN] = "?";
        getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
        int n = strcmp(addr, host)
                    ? snprintf(why, cap, "%s (%s) is not a loopback address", host, addr)
                    : snprintf(why, cap, "%s is not a loopback address", host);
        if (n >= (int)cap) why[cap - 1] = '\0';
        ok = false;
    }
    freeaddrinfo(res);
    return ok;
}

static bool parse_seconds(const char *s, double *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 3600) return false;
    *out = v;
    return true;
}

/* "wsx bench ..." as typed, arguments quoted where a shell needs it. */
static char *command_line(int argc, char **argv)
{
    size_t cap = 4;
    for (int i = 0; i < argc; i++)
        cap += 4 * strlen(argv[i]) + 3;
    char *s = malloc(cap), *p = s;
    if (!s) return NULL;
    p += sprintf(p, "wsx");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool plain = *a != '\0';
        for (const char *q = a; *q; q++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@%",
                        *q))
                plain = false;
        *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (const char *q = a; *q; q++) {
            if (*q == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *q;
            }
        }
        *p++ = '\'';
        *p = '\0';
    }
    return s;
}

enum {
    O_IDLE = 256,
    O_CONNECT_TIMEOUT,
    O_MAX_CONNECTING,
    O_STALL,
    O_ALLOW_REMOTE,
    O_JSON,
    O_PAYLOAD,
    O_CACERT,
    O_INSECURE,
};

static const struct option longopts[] = {
    {"mode", required_argument, 0, 'm'},
    {"idle", required_argument, 0, O_IDLE},
    {"connections", required_argument, 0, 'c'},
    {"size", required_argument, 0, 's'},
    {"in-flight", required_argument, 0, 'k'},
    {"binary", no_argument, 0, 'b'},
    {"payload", required_argument, 0, O_PAYLOAD},
    {"deflate", no_argument, 0, 'z'},
    {"cacert", required_argument, 0, O_CACERT},
    {"insecure", no_argument, 0, O_INSECURE},
    {"duration", required_argument, 0, 'd'},
    {"warmup", required_argument, 0, 'w'},
    {"messages", required_argument, 0, 'n'},
    {"threads", required_argument, 0, 't'},
    {"server-pid", required_argument, 0, 'p'},
    {"connect-timeout", required_argument, 0, O_CONNECT_TIMEOUT},
    {"max-connecting", required_argument, 0, O_MAX_CONNECTING},
    {"stall", required_argument, 0, O_STALL},
    {"allow-remote", no_argument, 0, O_ALLOW_REMOTE},
    {"json", no_argument, 0, O_JSON},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static void set_defaults(bench *b)
{
    memset(b, 0, sizeof *b);
    b->mode = M_ECHO;
    b->conns = 100; /* scenario A: the README's figure is measured with these */
    b->size = 32;
    b->k = 16;
    b->type = WSX_TEXT;
    b->threads = 1;
    b->warmup = 1;
    b->duration = 5;
    b->connect_timeout = 10;
    b->stall = 3;
    b->max_connecting = 32; /* more from one address get 503 from wsx echo's defaults */
}

/* The options that take a count or a size. Returns -1, or the status of a usage error. */
static int count_option(bench *b, int ch, const char *arg)
{
    uint32_t v;
    size_t sz;
    switch (ch) {
    case O_IDLE:
    case 'c':
        if (!parse_u32(arg, &v) || v == 0 || v > MAX_CONNS)
            return usage_error("bench", "bad connection count '%s' (1..%u)", arg, MAX_CONNS);
        b->conns = v;
        if (ch == O_IDLE) b->mode = M_IDLE;
        return -1;
    case 's':
        if (!parse_size(arg, &sz) || sz > MAX_SIZE)
            return usage_error("bench", "bad size '%s' (0..16M)", arg);
        b->size = sz;
        return -1;
    case 'k':
        if (!parse_u32(arg, &v) || v == 0 || v > MAX_IN_FLIGHT)
            return usage_error("bench", "bad in-flight count '%s' (1..%u)", arg, MAX_IN_FLIGHT);
        b->k = v;
        return -1;
    case 't':
        if (!parse_u32(arg, &v) || v == 0 || v > MAX_THREADS)
            return usage_error("bench", "bad thread count '%s' (1..%u)", arg, MAX_THREADS);
        b->threads = v;
        return -1;
    case 'p':
        if (!parse_u32(arg, &v) || v == 0 || v > INT32_MAX)
            return usage_error("bench", "bad pid '%s'", arg);
        b->server_pid = (long)v;
        return -1;
    case O_MAX_CONNECTING:
        if (!parse_u32(arg, &v) || v == 0) return usage_error("bench", "bad count '%s'", arg);
        b->max_connecting = v;
        return -1;
    default: { /* 'n' */
        char *end;
        errno = 0;
        unsigned long long n = strtoull(arg, &end, 10);
        if (errno || end == arg || *end || *arg == '-' || n == 0)
            return usage_error("bench", "bad message count '%s'", arg);
        b->max_msgs = n;
        return -1;
    }
    }
}

/* -d, -w, --connect-timeout, --stall. Returns -1, or the status of a usage error. */
static int seconds_option(bench *b, int ch, const char *arg)
{
    double s;
    if (!parse_seconds(arg, &s)) return usage_error("bench", "bad seconds '%s' (0..3600)", arg);
    if ((ch == 'd' || ch == O_CONNECT_TIMEOUT || ch == O_STALL) && s <= 0)
        return usage_error("bench", "seconds must be above 0: '%s'", arg);
    if (ch == 'd') b->duration = s;
    if (ch == 'w') b->warmup = s;
    if (ch == O_CONNECT_TIMEOUT) b->connect_timeout = s;
    if (ch == O_STALL) b->stall = s;
    return -1;
}

/* One option. Returns -1 to go on, or the exit status. */
static int option(bench *b, int ch, const char *arg)
{
    switch (ch) {
    case 'm':
        if (!strcmp(arg, "echo"))
            b->mode = M_ECHO;
        else if (!strcmp(arg, "fanout"))
            b->mode = M_FANOUT;
        else if (!strcmp(arg, "idle"))
            b->mode = M_IDLE;
        else if (!strcmp(arg, "sio-echo"))
            b->mode = M_ECHO;
        else if (!strcmp(arg, "sio-broadcast"))
            b->mode = M_FANOUT;
        else if (!strcmp(arg, "sio-idle"))
            b->mode = M_IDLE;
        else
            return usage_error("bench",
                               "unknown mode '%s' (echo, fanout, idle, sio-echo, sio-broadcast or "
                               "sio-idle)",
                               arg);
        b->sio = !strncmp(arg, "sio-", 4);
        return -1;
    case O_PAYLOAD:
        if (!strcmp(arg, "pattern"))
            b->payload = PL_PATTERN;
        else if (!strcmp(arg, "json"))
            b->payload = PL_JSON;
        else
            return usage_error("bench", "unknown payload '%s' (pattern or json)", arg);
        return -1;
    case 'b':
        b->type = WSX_BINARY;
        return -1;
    case 'z':
        b->deflate = true;
        return -1;
    case O_CACERT:
        b->cafile = arg;
        return -1;
    case O_INSECURE:
        b->insecure = true;
        return -1;
    case O_ALLOW_REMOTE:
        b->allow_remote = true;
        return -1;
    case O_JSON:
        b->json = true;
        return -1;
    case 'v':
        b->verbose = true;
        return -1;
    case 'h':
        fputs(help, stdout);
        return 0;
    case O_IDLE:
    case 'c':
    case 's':
    case 'k':
    case 't':
    case 'p':
    case O_MAX_CONNECTING:
    case 'n':
        return count_option(b, ch, arg);
    case 'd':
    case 'w':
    case O_CONNECT_TIMEOUT:
    case O_STALL:
        return seconds_option(b, ch, arg);
    default:
        return usage_error("bench", "unknown option");
    }
}

/* After the options: the target and the server's pid are checked before anything touches
 * the network, and the figures that follow from the options are derived. Returns -1 or the
 * exit status. */
static int check_run(bench *b)
{
    int rc;
    /* A load generator aimed at someone else's host is an attack, so only loopback unless
     * asked. */
    char why[300];
    if (!b->allow_remote && !host_is_loopback(b->u.host, why, sizeof why)) {
        fprintf(stderr,
                "wsx bench: refusing %s: %s; only loopback targets (127.0.0.0/8, ::1, localhost) "
                "are allowed without --allow-remote\n",
                b->url, why);
        return 2;
    }
    uint64_t ticks;
    if (b->server_pid && !bench_read_ticks(b->server_pid, &ticks)) {
        fprintf(stderr, "wsx bench: cannot read /proc/%ld/stat: %s\n", b->server_pid,
                strerror(errno));
        return 2;
    }
    if (b->threads > b->conns) b->threads = (uint32_t)b->conns;
    b->total = b->conns + (b->mode == M_FANOUT);
    if (b->sio) {
        if ((rc = bench_sio_url(b)) >= 0) return rc;
    } else if (b->mode == M_FANOUT) {
        bool v6 = strchr(b->u.host, ':') != NULL;
        const char *sc = b->u.tls ? "wss" : "ws", *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
        if (snprintf(b->url_sub, sizeof b->url_sub, "%s://%s%s%s:%u/sub", sc, lb, b->u.host, rb,
                     b->u.port) >= (int)sizeof b->url_sub ||
            snprintf(b->url_pub, sizeof b->url_pub, "%s://%s%s%s:%u/pub", sc, lb, b->u.host, rb,
                     b->u.port) >= (int)sizeof b->url_pub)
            return usage_error("bench", "host name too long");
    }
    if (b->insecure && b->u.tls)
        fprintf(stderr, "wsx bench: WARNING: --insecure: the server's certificate and name are "
                        "NOT checked; anyone on the path can read and change these "
                        "connections\n");
    return -1;
}

/* One descriptor per connection, plus the loops' own: raises the soft limit to the hard one.
 * Returns -1, or 1 when that is still too few. */
static int check_nofile(const bench *b)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < b->total + 16 + 4 * b->threads) {
        fprintf(stderr,
                "wsx bench: %zu connections need more file descriptors than the limit "
                "(%llu): raise it with ulimit -n\n",
                b->total, (unsigned long long)rl.rlim_cur);
        return 1;
    }
    return -1;
}

int bench_options(bench *b, int argc, char **argv)
{
    set_defaults(b);
    int ch, rc;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:c:s:k:bzd:w:n:t:p:vh", longopts, NULL)) != -1)
        if ((rc = option(b, ch, optarg)) >= 0) return rc;
    if (optind + 1 != argc) return usage_error("bench", "expected one URL");
    b->url = argv[optind];
    if (wsx_url_parse(b->url, &b->u) < 0)
        return usage_error("bench", "bad URL '%s' (expected ws:// or wss://host[:port]/path)",
                           b->url);
    if (b->sio && (b->payload != PL_PATTERN || b->type != WSX_TEXT))
        return usage_error("bench", "the sio modes send JSON text events: no --payload or -b");
    if (b->sio && b->size > MAX_SIZE - SIO_OVERHEAD)
        return usage_error("bench", "bad size for a sio mode (at most 16M - %u)", SIO_OVERHEAD);
    if (b->payload == PL_JSON && b->size < JSON_MIN)
        return usage_error("bench", "--payload json needs messages of at least %zu bytes (-s)",
                           (size_t)JSON_MIN);
    if ((rc = check_run(b)) >= 0 || (rc = check_nofile(b)) >= 0) return rc;
    b->command = command_line(argc, argv);
    b->tty = isatty(STDERR_FILENO);
    b->stall_ns = (uint64_t)(b->stall * 1e9);
    return -1;
}
