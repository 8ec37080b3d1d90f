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
    "Connects to URL: ws://host[:port]/path, wss://..., or host:port[/path] (ws:// is then\n"
    "assumed). Each line read from stdin is sent as a text message; each message received\n"
    "is printed on stdout, one per line. At the end of stdin the connection is closed with\n"
    "1000 (unless --no-close). A line that is not valid UTF-8 cannot be a text message: it is\n"
    "not sent, an error names its line number, and cat goes on with the next line (send\n"
    "such input with --send-binary).\n"
    "\n"
    "  -H, --header 'Name: value'  add a request header (repeatable)\n"
    "  -s, --subprotocol P         offer a subprotocol (repeatable, in preference order); a\n"
    "                              server that picks none is an error (as in browsers)\n"
    "      --allow-no-subprotocol  ... unless this is given\n"
    "  -o, --origin O              send an Origin header\n"
    "  -B, --send-binary           send binary messages (default: text)\n"
    "  -x, --hex                   print received binary messages as hex (default: a byte\n"
    "                              count)\n"
    "  -m, --stdin-message         send all of stdin as one message when it ends (newlines\n"
    "                              kept; no /commands), up to --max-message bytes\n"
    "  -n, --no-close              at the end of stdin keep the connection: print what comes\n"
    "                              until the server closes (or Ctrl-C)\n"
    "      --connect-timeout MS    give up when connecting (TCP, TLS) or the handshake takes\n"
    "                              longer than MS each (default 10000)\n"
    "  -r, --reconnect             reconnect with backoff when the connection is lost\n"
    "      --cacert FILE           wss://: trust the CA certificates in FILE (PEM)\n"
    "  -k, --insecure              wss://: do NOT verify the server's certificate or name\n"
    "  -z, --deflate               offer permessage-deflate (compression)\n"
    "      --max-message BYTES     largest message accepted, and sent by --stdin-message\n"
    "                              (default 16M)\n"
    "      --ping-interval MS      ping the server when it is silent this long\n"
    "  -v, --verbose               also print the subprotocol and extensions the server\n"
    "                              picked\n"
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
    "Deprecated: -b/--binary, the old name of --hex (it never sent binary: that is\n"
    "--send-binary). It still works, with a note on stderr.\n"
    "\n"
    "Exit status: 0 when the connection ended with a normal close (1000, 1001, no code, or\n"
    "the code of a /close typed on stdin) and every input line was sent; 1 on any failure,\n"
    "with the reason on stderr: the server closed with another code (1007, 1008, 1011,\n"
    "4xxx...), a line was refused (not UTF-8) or not sent (the connection was closed or not\n"
    "open yet), input was left unread when the server closed first, the server picked none\n"
    "of the subprotocols offered, or the connection failed; 2 on a usage error.\n";

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
    bool verbose;
    bool one_message; /* --stdin-message: stdin is one message */
    bool no_close;    /* --no-close: the end of stdin does not close */
    bool allow_no_sp; /* --allow-no-subprotocol */
    bool no_sp;       /* cat closed: the server picked none of the subprotocols offered */
    size_t n_subs;
    size_t max_send; /* --stdin-message: the most stdin may hold */
    int typed_code;  /* the code of a /close typed on stdin, else 0 */
    bool eof;
    bool opened;    /* a connection opened at some point */
    bool closed;    /* on_close came: the connection is gone */
    bool we_closed; /* cat sent a close (end of input, /close) before the peer's came */
    int close_code;
    int status;
    size_t lineno;   /* input lines read so far */
    size_t not_utf8; /* lines refused: not UTF-8 */
    size_t not_sent; /* lines that could not be sent (connection closed or not open) */
    bool too_big;    /* --stdin-message: stdin held more than max_send */
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
        if (rc < 0) {
            status_line(st, "close: %s", wsx_strerror(rc));
            return;
        }
        st->we_closed = true;
        /* The user asked for this code: the server echoing it is the normal end (exit 0).
         * wsx_client_close also stops --reconnect; the close is already on its way. */
        st->typed_code = code;
        wsx_client_close(st->cl, code, reason);
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

/* --stdin-message: the whole input as one message. */
static void send_whole(cat_state *st)
{
    wsx_conn *c = st->cl ? wsx_client_conn(st->cl) : NULL;
    const char *s = st->line ? st->line : "";
    st->lineno = 1;
    if (!c) {
        fprintf(stderr, "wsx cat: the message was not sent: %s\n",
                st->closed ? "the connection is closed" : "the connection is not open");
        st->not_sent++;
        return;
    }
    if (!st->send_binary && !wsx_utf8_valid((const uint8_t *)s, st->line_len)) {
        fprintf(stderr, "wsx cat: stdin is not valid UTF-8: not sent (use --send-binary)\n");
        st->not_utf8++;
        return;
    }
    int rc = wsx_send(c, s, st->line_len, st->send_binary ? WSX_BINARY : WSX_TEXT);
    if (rc < 0 && rc != WSX_EBACKPRESSURE) {
        fprintf(stderr, "wsx cat: the message was not sent: %s\n", wsx_strerror(rc));
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
    if (st->one_message) {
        if (!st->too_big) send_whole(st);
        st->line_len = 0;
    } else if (st->line_len) {
        send_line(st, st->line, st->line_len);
        st->line_len = 0;
    }
    if (!st->cl || st->no_close) return;
    if (wsx_client_conn(st->cl)) st->we_closed = true;
    wsx_client_close(st->cl, 1000, NULL);
}

/* Makes room for `need` bytes of the line buffer, doubling from `first`; exits when memory
 * runs out (there is nothing useful left to do). */
static void line_reserve(cat_state *st, size_t need, size_t first)
{
    if (need <= st->line_cap) return;
    size_t cap = st->line_cap ? st->line_cap : first;
    while (cap < need)
        cap *= 2;
    char *l = realloc(st->line, cap);
    if (!l) {
        status_line(st, "out of memory");
        exit(1);
    }
    st->line = l;
    st->line_cap = cap;
}

/* --stdin-message: keeps what was read, up to max_send bytes. */
static void keep_input(cat_state *st, const char *buf, size_t n)
{
    if (st->too_big) return;
    if (n > st->max_send - st->line_len) {
        fprintf(stderr, "wsx cat: stdin holds more than %zu bytes (--max-message): not sent\n",
                st->max_send);
        st->too_big = true;
        st->not_sent++;
        free(st->line);
        st->line = NULL;
        st->line_len = st->line_cap = 0;
        return;
    }
    line_reserve(st, st->line_len + n, 65536);
    memcpy(st->line + st->line_len, buf, n);
    st->line_len += n;
}

/* Splits what was read into lines; keeps a partial last line for later. */
static void take_input(cat_state *st, const char *buf, size_t n)
{
    if (st->one_message) {
        keep_input(st, buf, n);
        return;
    }
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
        line_reserve(st, st->line_len + 2, 256);
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
    if (st->verbose) {
        status_line(st, "subprotocol: %s", sp ? sp : "(none)");
        status_line(st, "extensions: %s", wsx_conn_deflate(c) ? "permessage-deflate" : "(none)");
    }
    if (st->n_subs && !sp && !st->allow_no_sp) {
        /* A browser fails such a connection (WHATWG WebSockets): a server that ignores the
         * subprotocol would speak something else than what was asked. */
        fprintf(stderr, "wsx cat: the server picked none of the subprotocols offered "
                        "(--allow-no-subprotocol accepts that)\n");
        st->no_sp = true;
        st->status = 1;
        wsx_client_close(st->cl, 1002, "no subprotocol");
        return;
    }
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

/* Whether code ends the connection normally: 1000, 1001, none, or the one typed. */
static bool normal_close(const cat_state *st, int code)
{
    return code == 1000 || code == 1001 || code == 1005 ||
           (st->typed_code && code == st->typed_code);
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    cat_state *st = user;
    (void)c;
    st->close_code = code;
    st->closed = true;
    status_line(st, "closed: %d%s%.*s", code, len ? " " : "", (int)len, reason);
    if (!normal_close(st, code) && !st->no_sp)
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

/* A hint after a failure message: what the user most likely got wrong. */
static const char *failure_hint(const cat_state *st, int err, const char *why)
{
    (void)st;
    int status = 0;
    const char *a = why ? strstr(why, "server answered ") : NULL;
    if (err == WSX_EHANDSHAKE && a) status = atoi(a + 16);
    if (status == 404)
        return " (no WebSocket at this path: is the path right? `wsx serve` is at /ws)";
    if (status == 401 || status == 403)
        return " (does the server need a token? -H 'Authorization: Bearer TOKEN')";
    if (status >= 200 && status < 300) return " (a web page, not a WebSocket: check the path)";
    /* A plain server answers a TLS ClientHello with HTTP text (400) or closes: OpenSSL
     * reads that as a record of the wrong version. */
    if (why && (strstr(why, "wrong version number") || strstr(why, "http request") ||
                strstr(why, "packet length too long") || strstr(why, "record layer failure")))
        return " (is this a ws:// server?)";
    return "";
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
        fprintf(stderr, "wsx cat: %s%s\n", why ? why : wsx_strerror(err),
                failure_hint(st, err, why));
        st->status = 1;
    } else if (!normal_close(st, st->close_code)) {
        st->status = 1; /* said in on_close */
    }
    if (err == 0 && st->opened && !st->we_closed && !st->no_sp && input_left(st)) {
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
        {"hex", no_argument, 0, 'x'},
        {"send-binary", no_argument, 0, 'B'},
        {"stdin-message", no_argument, 0, 'm'},
        {"no-close", no_argument, 0, 'n'},
        {"verbose", no_argument, 0, 'v'},
        {"allow-no-subprotocol", no_argument, 0, 1003},
        {"connect-timeout", required_argument, 0, 1004},
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
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":H:s:o:bxBmnvrqkzh", longopts, NULL)) != -1) {
        switch (ch) {
        case '?':
        case ':':
            return tool_bad_option("cat", longopts, argv, ch);
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
            /* Old name: it read as "send binary", which is --send-binary. */
            fprintf(stderr,
                    "wsx cat: note: %s is deprecated (it prints received binary "
                    "messages as hex): use --hex; to send binary, --send-binary\n",
                    argv[optind - 1][1] == '-' ? "--binary" : "-b");
            st.hex = true;
            break;
        case 'x':
            st.hex = true;
            break;
        case 'm':
            st.one_message = true;
            break;
        case 'n':
            st.no_close = true;
            break;
        case 'v':
            st.verbose = true;
            break;
        case 1003:
            st.allow_no_sp = true;
            break;
        case 1004: {
            uint32_t ms;
            if (!parse_u32(optarg, &ms) || !ms)
                return usage_error("cat", "bad --connect-timeout '%s' (milliseconds, above 0)",
                                   optarg);
            o.connect_timeout_ms = ms;
            o.handshake_timeout_ms = ms;
            break;
        }
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
            return tool_bad_option("cat", longopts, argv, '?');
        }
    }
    if (optind + 1 != argc) return usage_error("cat", "expected one URL");
    o.url = argv[optind];
    /* host:port[/path] as wscat takes it: ws:// is assumed. */
    char url[2100];
    if (!strstr(o.url, "://")) {
        if (strlen(o.url) + 6 > sizeof url) return usage_error("cat", "URL too long");
        snprintf(url, sizeof url, "ws://%s", o.url);
        o.url = url;
    }
    st.n_subs = ns;
    st.max_send = o.max_message ? o.max_message : (size_t)16 << 20;
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
