/* `wsx cat URL`: an interactive WebSocket client in the spirit of wscat. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tool.h"

static const char help[] =
    "usage: wsx cat [options] URL\n"
    "\n"
    "Connects to URL (ws://host[:port]/path). Each line read from stdin is sent as a text\n"
    "message; each message received is printed on stdout, one per line. At the end of stdin\n"
    "the connection is closed with 1000. A line that is not valid UTF-8 cannot be a text\n"
    "message: it is not sent, an error names its line number, and cat goes on with the next\n"
    "line (send such input with --send-binary).\n"
    "\n"
    "  -H, --header 'Name: value'  add a request header (repeatable)\n"
    "  -s, --subprotocol P         offer a subprotocol (repeatable, in preference order)\n"
    "  -o, --origin O              send an Origin header\n"
    "  -b, --binary                print binary messages as hex (default: a byte count)\n"
    "  -B, --send-binary           send stdin lines as binary messages\n"
    "  -r, --reconnect             reconnect with backoff when the connection is lost\n"
    "      --cacert FILE           wss://: trust the CA certificates in FILE (PEM)\n"
    "  -k, --insecure              wss://: do NOT verify the server's certificate or name\n"
    "  -z, --deflate               offer permessage-deflate (compression)\n"
    "      --max-message BYTES     largest message accepted (default 16M)\n"
    "      --ping-interval MS      ping the server when it is silent this long\n"
    "  -q, --quiet                 no status lines on stderr\n"
    "  -h, --help                  this text\n"
    "\n"
    "Commands typed at the start of a line:\n"
    "  /ping [DATA]                send a ping (the pong is reported on stderr)\n"
    "  /close [CODE [REASON]]      close with CODE (default 1000) and REASON\n"
    "  //...                       send a line that starts with '/' (one '/' is removed)\n"
    "\n"
    "The close code printed ('closed: CODE reason') is the server's when it closed the\n"
    "connection itself, also when its close crossed cat's own.\n"
    "\n"
    "Exit status: 0 when the connection ended with a normal close (1000, 1001 or no code)\n"
    "and every input line was sent; 1 on any failure, with the reason on stderr: the\n"
    "server closed with another code (1007, 1008, 1011, 4xxx...), a line was refused (not\n"
    "UTF-8) or not sent (the connection was closed or not open yet), input was left unread\n"
    "when the server closed first, or the connection failed; 2 on a usage error.\n";

typedef struct cat_state {
    wsx_loop *loop;
    wsx_client *cl;
    wsx_watch *in;
    char *line;
    size_t line_len, line_cap;
    bool tty_out;
    bool hex;
    bool send_binary;
    bool quiet;
    bool eof;
    bool opened;    /* a connection opened at some point */
    bool closed;    /* on_close came: the connection is gone */
    bool we_closed; /* cat sent a close (end of input, /close) before the peer's came */
    int close_code;
    int status;
    size_t lineno;   /* input lines read so far */
    size_t not_utf8; /* lines refused: not UTF-8 */
    size_t not_sent; /* lines that could not be sent (connection closed or not open) */
} cat_state;

static void status_line(cat_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status_line(cat_state *st, const char *fmt, ...)
{
    if (st->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void send_line(cat_state *st, char *s, size_t len)
{
    st->lineno++;
    wsx_conn *c = st->cl ? wsx_client_conn(st->cl) : NULL;
    if (!c) {
        /* Not a status line: the line is lost, which the exit status reports too. */
        fprintf(stderr, "wsx cat: line %zu not sent: %s\n", st->lineno,
                st->closed ? "the connection is closed" : "the connection is not open");
        st->not_sent++;
        return;
    }
    if (len >= 5 && !strncmp(s, "/ping", 5) && (len == 5 || s[5] == ' ')) {
        const char *d = len > 6 ? s + 6 : "";
        size_t dl = len > 6 ? len - 6 : 0;
        int rc = wsx_ping(c, d, dl);
        if (rc < 0 && rc != WSX_EBACKPRESSURE) status_line(st, "ping: %s", wsx_strerror(rc));
        return;
    }
    if (len >= 6 && !strncmp(s, "/close", 6) && (len == 6 || s[6] == ' ')) {
        s[len] = '\0';
        char *rest = s + 6;
        int code = 1000;
        const char *reason = NULL;
        while (*rest == ' ')
            rest++;
        if (*rest) {
            char *end;
            long v = strtol(rest, &end, 10);
            if (end == rest || v < 0 || v > 65535) {
                status_line(st, "usage: /close [CODE [REASON]]");
                return;
            }
            code = (int)v;
            while (*end == ' ')
                end++;
            if (*end) reason = end;
        }
        int rc = wsx_close(c, code, reason);
        if (rc < 0)
            status_line(st, "close: %s", wsx_strerror(rc));
        else
            st->we_closed = true;
        return;
    }
    if (len >= 2 && s[0] == '/' && s[1] == '/') {
        s++;
        len--;
    } else if (len && s[0] == '/') {
        status_line(st, "unknown command (send a leading '/' by doubling it: //)");
        return;
    }
    /* RFC 6455 5.6: a text message is UTF-8, and a server fails the connection with 1007
     * for one that is not, discarding whatever follows it. */
    if (!st->send_binary && !wsx_utf8_valid((const uint8_t *)s, len)) {
        fprintf(stderr, "wsx cat: line %zu is not valid UTF-8: not sent (use --send-binary)\n",
                st->lineno);
        st->not_utf8++;
        return;
    }
    int rc = wsx_send(c, s, len, st->send_binary ? WSX_BINARY : WSX_TEXT);
    if (rc < 0 && rc != WSX_EBACKPRESSURE) {
        fprintf(stderr, "wsx cat: line %zu not sent: %s\n", st->lineno, wsx_strerror(rc));
        st->not_sent++;
    }
}

static void finish_input(cat_state *st)
{
    st->eof = true;
    if (st->in) {
        wsx_watch_stop(st->in);
        st->in = NULL;
    }
    if (st->line_len) {
        send_line(st, st->line, st->line_len);
        st->line_len = 0;
    }
    if (!st->cl) return;
    if (wsx_client_conn(st->cl)) st->we_closed = true;
    wsx_client_close(st->cl, 1000, NULL);
}

/* Splits what was read into lines; keeps a partial last line for later. */
static void take_input(cat_state *st, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            size_t len = st->line_len;
            if (len && st->line[len - 1] == '\r') len--;
            if (st->line_cap == 0) {
                st->line = malloc(1);
                st->line_cap = 1;
            }
            send_line(st, st->line, len);
            st->line_len = 0;
            continue;
        }
        if (st->line_len + 2 > st->line_cap) {
            size_t cap = st->line_cap ? st->line_cap * 2 : 256;
            char *l = realloc(st->line, cap);
            if (!l) {
                status_line(st, "out of memory");
                exit(1);
            }
            st->line = l;
            st->line_cap = cap;
        }
        st->line[st->line_len++] = buf[i];
    }
}

static void on_stdin(wsx_watch *w, int fd, unsigned events, void *arg)
{
    cat_state *st = arg;
    (void)w;
    (void)events;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        finish_input(st);
        return;
    }
    take_input(st, buf, (size_t)n);
}

static void on_open(wsx_conn *c, void *user)
{
    cat_state *st = user;
    st->opened = true;
    const char *sp = wsx_conn_subprotocol(c);
    status_line(st, "connected%s%s%s", sp ? ", subprotocol " : "", sp ? sp : "",
                wsx_conn_deflate(c) ? ", permessage-deflate" : "");
    if (st->eof || st->in) return;
    if (wsx_watch_start(st->loop, STDIN_FILENO, WSX_READABLE, on_stdin, st, &st->in) < 0) {
        /* stdin is a regular file (epoll refuses those): it never blocks, so read it all. */
        char buf[65536];
        ssize_t n;
        while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0)
            take_input(st, buf, (size_t)n);
        finish_input(st);
    }
}

static void on_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    cat_state *st = user;
    (void)c;
    if (st->tty_out) fputs("< ", stdout);
    if (m->type == WSX_TEXT) {
        fwrite(m->data, 1, m->len, stdout);
    } else if (st->hex) {
        for (size_t i = 0; i < m->len; i++)
            printf("%02x", m->data[i]);
    } else {
        printf("[binary message, %zu bytes]", m->len);
    }
    fputc('\n', stdout);
    fflush(stdout);
}

static void on_pong(wsx_conn *c, const uint8_t *data, size_t len, void *user)
{
    (void)c;
    status_line(user, "pong%s%.*s", len ? ": " : "", (int)len, (const char *)data);
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    cat_state *st = user;
    (void)c;
    st->close_code = code;
    st->closed = true;
    status_line(st, "closed: %d%s%.*s", code, len ? " " : "", (int)len, reason);
    if (code != 1000 && code != 1001 && code != 1005)
        fprintf(stderr, "wsx cat: the server closed the connection with %d%s%.*s\n", code,
                len ? ": " : "", (int)len, reason);
}

/* Whether stdin still holds input that was never read (the server closed first). */
static bool input_left(cat_state *st)
{
    if (st->eof) return st->line_len != 0;
    if (st->line_len) return true;
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLIN | POLLHUP))) return false;
    char b;
    /* A pipe whose writer is gone polls readable with nothing in it: that is the end. */
    return read(STDIN_FILENO, &b, 1) == 1;
}

static void on_reconnecting(wsx_client *cl, unsigned attempt, uint32_t delay_ms, int err,
                            void *user)
{
    (void)cl;
    (void)err;
    status_line(user, "reconnecting in %.1f s (attempt %u)", delay_ms / 1000.0, attempt);
}

static void on_end(wsx_client *cl, int err, const char *why, void *user)
{
    cat_state *st = user;
    (void)cl;
    st->cl = NULL;
    if (st->in) {
        wsx_watch_stop(st->in);
        st->in = NULL;
    }
    if (err < 0) {
        fprintf(stderr, "wsx cat: %s\n", why ? why : wsx_strerror(err));
        st->status = 1;
    } else if (st->close_code != 1000 && st->close_code != 1001 && st->close_code != 1005) {
        st->status = 1; /* said in on_close */
    }
    if (err == 0 && st->opened && !st->we_closed && input_left(st)) {
        fprintf(stderr,
                "wsx cat: the server closed the connection before the end of the input: "
                "input after line %zu was not sent\n",
                st->lineno);
        st->status = 1;
    }
    if (st->not_utf8 || st->not_sent) {
        fprintf(stderr, "wsx cat: %zu input line(s) not sent (%zu not UTF-8)\n",
                st->not_utf8 + st->not_sent, st->not_utf8);
        st->status = 1;
    }
    wsx_loop_stop(st->loop);
}

int cmd_cat(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"header", required_argument, 0, 'H'},
        {"subprotocol", required_argument, 0, 's'},
        {"origin", required_argument, 0, 'o'},
        {"binary", no_argument, 0, 'b'},
        {"send-binary", no_argument, 0, 'B'},
        {"reconnect", no_argument, 0, 'r'},
        {"max-message", required_argument, 0, 1000},
        {"ping-interval", required_argument, 0, 1001},
        {"quiet", no_argument, 0, 'q'},
        {"cacert", required_argument, 0, 1002},
        {"insecure", no_argument, 0, 'k'},
        {"deflate", no_argument, 0, 'z'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    cat_state st = {.tty_out = isatty(STDOUT_FILENO), .status = 0, .close_code = 1005};
    wsx_client_opts o = wsx_client_defaults();
    wsx_http_header headers[32];
    const char *subs[16];
    size_t nh = 0, ns = 0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "H:s:o:bBrqkzh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H': {
            const char *colon = strchr(optarg, ':');
            if (!colon || colon == optarg || nh == 32)
                return usage_error("cat", "bad header '%s' (expected 'Name: value')", optarg);
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            headers[nh++] = (wsx_http_header){optarg, (size_t)(colon - optarg), v, strlen(v)};
            break;
        }
        case 's':
            if (ns == 16) return usage_error("cat", "too many subprotocols");
            subs[ns++] = optarg;
            break;
        case 'o':
            o.origin = optarg;
            break;
        case 'b':
            st.hex = true;
            break;
        case 'B':
            st.send_binary = true;
            break;
        case 'r':
            o.reconnect = true;
            break;
        case 'q':
            st.quiet = true;
            break;
        case 1002:
            o.tls_cafile = optarg;
            break;
        case 'k':
            o.tls_insecure = true;
            break;
        case 'z':
            o.deflate = wsx_pmd_defaults();
            o.deflate.enabled = true;
            break;
        case 1000:
            if (!parse_size(optarg, &o.max_message) || !o.max_message)
                return usage_error("cat", "bad size '%s'", optarg);
            break;
        case 1001:
            if (!parse_u32(optarg, &o.ping_interval_ms))
                return usage_error("cat", "bad milliseconds '%s'", optarg);
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return usage_error("cat", "unknown option");
        }
    }
    if (optind + 1 != argc) return usage_error("cat", "expected one URL");
    o.url = argv[optind];
    if (o.tls_insecure && !strncasecmp(o.url, "wss:", 4))
        fprintf(stderr, "wsx cat: WARNING: --insecure: the server's certificate and name are NOT "
                        "checked; anyone on the path can read and change this connection\n");
    o.headers = headers;
    o.n_headers = nh;
    o.subprotocols = subs;
    o.n_subprotocols = ns;
    o.on_open = on_open;
    o.on_message = on_message;
    o.on_close = on_close;
    o.on_pong = on_pong;
    o.on_reconnecting = on_reconnecting;
    o.on_end = on_end;
    o.user = &st;
    if (!st.quiet) {
        g_log.quiet = true; /* the library's own lines: warnings only */
        o.on_log = tool_log_cb;
        o.log_level = WSX_LOG_WARN;
    }

    int rc = wsx_loop_new(&st.loop);
    if (rc < 0) {
        fprintf(stderr, "wsx cat: %s\n", wsx_strerror(rc));
        return 1;
    }
    wsx_error err;
    rc = wsx_client_connect(st.loop, &o, &st.cl, &err);
    if (rc < 0) {
        if (rc == WSX_EURL)
            fprintf(stderr, "wsx cat: bad URL '%s' (expected ws:// or wss://host[:port]/path)\n",
                    o.url);
        else if (rc == WSX_ETLS)
            fprintf(stderr, "wsx cat: %s\n", err.detail);
        else
            fprintf(stderr, "wsx cat: %s\n", wsx_strerror(rc));
        wsx_loop_free(st.loop);
        return rc == WSX_EURL ? 2 : 1;
    }
    wsx_loop_run(st.loop);
    /* Let anything the stop left (deferred frees) finish. */
    wsx_loop_run(st.loop);
    wsx_loop_free(st.loop);
    free(st.line);
    return st.status;
}
