/*
 * The server's HTTP responses over real sockets on 127.0.0.1: pipelining (fairness, no
 * re-entrancy, the high-water stop), half-close, an upgrade behind deferred requests, and file
 * responses (wsx_http_respond_file). The head parser is tested in test_http.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "net/net.h"
#include "test.h"
#include "net_test.h"
#include "wsx.h"
#include "wsx/proto.h"

/* A server on its own loop in this thread; the client is a thread with blocking sockets that
 * records what it saw (checks run in this thread afterwards) and stops the loop when done. */
typedef struct hsrv {
    wsx_loop *loop;
    wsx_server *srv;
    uint16_t port;
    const char *file; /* the test file on disk */
    uint8_t *body;    /* a fixed body for /big answers */
    size_t body_len;
    atomic_int calls;   /* on_http calls */
    bool in_respond;    /* inside wsx_http_respond (to catch re-entrancy) */
    int reentered;      /* on_http called from inside wsx_http_respond */
    uint64_t last_iter; /* loop iteration of the previous on_http */
    int per_iter, max_per_iter;
    wsx_http_req *later; /* answered from a timer */
    int rc_dir, rc_pipe, rc_range, pipe_closed;
    bool timer_ran;   /* the timer ran; in errors_client: the file was cut */
    uint32_t http_ms; /* http_timeout_ms (0: the default) */
    wsx_timer *watchdog;
    bool timed_out;
    bool access;  /* set on_access */
    int n_access; /* its calls, the first ACCESS_MAX of them kept: */
    struct access_line {
        char method[8], path[32];
        int status;
        uint64_t bytes;
        double ms;
    } acc[8];
} hsrv;
#define ACCESS_MAX 8

static void hs_access(const wsx_http_access *a, void *user)
{
    hsrv *h = user;
    if (h->n_access < ACCESS_MAX) {
        struct access_line *l = &h->acc[h->n_access];
        snprintf(l->method, sizeof l->method, "%.*s", (int)a->method_len, a->method);
        snprintf(l->path, sizeof l->path, "%.*s", (int)a->path_len, a->path);
        l->status = a->status;
        l->bytes = a->bytes;
        l->ms = a->ms;
    }
    h->n_access++;
}

static void hs_stop(void *arg)
{
    hsrv *h = arg;
    if (h->watchdog) wsx_timer_stop(h->watchdog);
    h->watchdog = NULL;
    wsx_server_shutdown(h->srv, 500);
}

static void hs_watchdog(wsx_timer *t, void *arg)
{
    (void)t;
    hsrv *h = arg;
    h->timed_out = true;
    h->watchdog = NULL;
    wsx_server_shutdown(h->srv, 100);
}

static void hs_respond(hsrv *h, wsx_http_req *r, int status, const void *body, size_t len)
{
    h->in_respond = true;
    wsx_http_respond(r, status, NULL, 0, body, len);
    h->in_respond = false;
}

static void hs_answer_later(wsx_timer *t, void *arg)
{
    (void)t;
    hsrv *h = arg;
    h->timer_ran = true;
    hs_respond(h, h->later, 200, "later", 5);
    h->later = NULL;
}

static int open_file(hsrv *h)
{
    return open(h->file, O_RDONLY | O_CLOEXEC);
}

static void hs_http(wsx_http_req *r, void *user)
{
    hsrv *h = user;
    atomic_fetch_add(&h->calls, 1);
    if (h->in_respond) h->reentered++;
    uint64_t it = wsx__loop_stats_get(h->loop)->iterations;
    h->per_iter = it == h->last_iter ? h->per_iter + 1 : 1;
    h->last_iter = it;
    if (h->per_iter > h->max_per_iter) h->max_per_iter = h->per_iter;
    char path[64];
    size_t pl;
    const char *rp = wsx_http_req_path(r, &pl);
    snprintf(path, sizeof path, "%.*s", (int)pl, rp);
    if (!strcmp(path, "/later")) {
        /* Answered from a timer: the next pipelined request must wait for it. */
        h->later = r;
        wsx_timer_start(h->loop, 10, 0, hs_answer_later, h, NULL);
    } else if (!strcmp(path, "/big")) {
        hs_respond(h, r, 200, h->body, h->body_len);
    } else if (!strcmp(path, "/whole") || !strcmp(path, "/last")) {
        struct stat st;
        int fd = open_file(h);
        CHECK(fd >= 0 && fstat(fd, &st) == 0);
        CHECK_INT(wsx_http_respond_file(r, 200, NULL, 0, fd, 0, (uint64_t)st.st_size), 0);
    } else if (!strcmp(path, "/range")) {
        CHECK_INT(wsx_http_respond_file(r, 200, NULL, 0, open_file(h), 1000, 100000), 0);
    } else if (!strcmp(path, "/empty")) {
        CHECK_INT(wsx_http_respond_file(r, 200, NULL, 0, open_file(h), 5, 0), 0);
    } else if (!strcmp(path, "/dir")) {
        h->rc_dir = wsx_http_respond_file(r, 200, NULL, 0, open(".", O_RDONLY | O_CLOEXEC), 0, 1);
        hs_respond(h, r, 500, "dir", 3); /* the request stayed open */
    } else if (!strcmp(path, "/pipe")) {
        int p[2];
        CHECK(pipe(p) == 0);
        h->rc_pipe = wsx_http_respond_file(r, 200, NULL, 0, p[0], 0, 1);
        h->pipe_closed = fcntl(p[0], F_GETFD) < 0 && errno == EBADF;
        close(p[1]);
        hs_respond(h, r, 500, "pipe", 4);
    } else if (!strcmp(path, "/past")) {
        h->rc_range = wsx_http_respond_file(r, 200, NULL, 0, open_file(h), 1, UINT64_MAX);
        hs_respond(h, r, 416, "past", 4);
    } else {
        hs_respond(h, r, 200, path, strlen(path));
    }
}

static void hs_start(hsrv *h, size_t high_water, size_t low_water)
{
    h->loop = new_loop();
    wsx_server_opts o = wsx_server_defaults();
    o.host = "127.0.0.1";
    o.on_http = hs_http;
    o.send_high_water = high_water;
    o.send_low_water = low_water;
    o.http_timeout_ms = h->http_ms;
    o.log_level = WSX_LOG_ERROR;
    o.user = h;
    if (h->access) o.on_access = hs_access;
    CHECK_INT(wsx_server_start(h->loop, &o, &h->srv, NULL), 0);
    h->port = wsx_server_port(h->srv);
    wsx_timer_start(h->loop, 15000, 0, hs_watchdog, h, &h->watchdog);
}

static void hs_run(hsrv *h, void *(*client)(void *), void *arg)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client, arg) == 0);
    wsx_loop_run(h->loop);
    pthread_join(t, NULL);
    CHECK(!h->timed_out);
    wsx_server_free(h->srv);
    wsx_loop_free(h->loop);
}

/* A blocking client connection with a read buffer. */
typedef struct hcli {
    int fd;
    uint8_t buf[65536];
    size_t pos, len;
} hcli;

static int hc_connect(hcli *c, uint16_t port, int rcvbuf)
{
    c->pos = c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(c->fd, (struct sockaddr *)&a, sizeof a);
}

static bool hc_send(hcli *c, const char *s, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL);
        if (n <= 0) return false;
        s += n;
        len -= (size_t)n;
    }
    return true;
}

/* The next byte, or -1 at EOF or on an error. */
static int hc_byte(hcli *c)
{
    if (c->pos == c->len) {
        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (n <= 0) return -1;
        c->pos = 0;
        c->len = (size_t)n;
    }
    return c->buf[c->pos++];
}

/* Reads a response head: the status, or -1 when the connection ended first. *clen gets the
 * Content-Length (-1 without one). */
static int hc_head(hcli *c, long long *clen)
{
    char head[2048];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
        int b = hc_byte(c);
        if (b < 0 || n + 1 >= sizeof head) return -1;
        head[n++] = (char)b;
    }
    head[n] = '\0';
    const char *cl = strstr(head, "Content-Length: ");
    *clen = cl ? atoll(cl + 16) : -1;
    return atoi(head + 9);
}

/* Reads up to len body bytes into out (NULL: compare with pattern() from offset instead);
 * returns how many arrived, and whether they matched. */
static size_t hc_body(hcli *c, uint8_t *out, size_t len, size_t pattern_off, bool *match)
{
    size_t got = 0;
    *match = true;
    while (got < len) {
        int b = hc_byte(c);
        if (b < 0) break;
        if (out)
            out[got] = (uint8_t)b;
        else if ((uint8_t)b != pattern(pattern_off + got))
            *match = false;
        got++;
    }
    return got;
}

static void write_pattern_file(const char *path, size_t len)
{
    FILE *f = fopen(path, "wb");
    for (size_t i = 0; f && i < len; i++)
        fputc(pattern(i), f);
    if (f) fclose(f);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

#define FILE_LEN ((3u << 20) + 123u)

typedef struct files_result {
    int status[5];
    long long clen[5];
    size_t got[5];
    bool match[5];
    int after_last; /* hc_byte after the last response: -1 (EOF) */
} files_result;

static hsrv *g_h;

static void *files_client(void *arg)
{
    files_result *res = arg;
    hcli *c = malloc(sizeof *c);
    if (hc_connect(c, g_h->port, 0) == 0) {
        static const char reqs[] = "GET /whole HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "HEAD /whole HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /range HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        hc_send(c, reqs, sizeof reqs - 1);
        static const size_t offs[5] = {0, 0, 1000, 5, 0};
        for (int i = 0; i < 5; i++) {
            res->status[i] = hc_head(c, &res->clen[i]);
            size_t want = i == 1 || res->clen[i] < 0 ? 0 : (size_t)res->clen[i];
            res->got[i] = hc_body(c, NULL, want, offs[i], &res->match[i]);
        }
        res->after_last = hc_byte(c);
    }
    close(c->fd);
    free(c);
    wsx_loop_post(g_h->loop, hs_stop, g_h);
    return NULL;
}

TEST(respond_file_streams_in_pieces)
{
    char path[] = "/tmp/wsx-test-http-XXXXXX";
    int tfd = mkstemp(path);
    CHECK(tfd >= 0);
    close(tfd);
    write_pattern_file(path, FILE_LEN);
    int fds_before = count_fds();
    hsrv h = {.file = path};
    g_h = &h;
    /* A small low-water mark: the 3 MiB file goes out in many pieces as the client reads. */
    hs_start(&h, 128 << 10, 32 << 10);
    files_result res = {0};
    hs_run(&h, files_client, &res);
    CHECK_INT(res.status[0], 200);
    CHECK_INT(res.clen[0], FILE_LEN);
    CHECK_INT(res.got[0], FILE_LEN);
    CHECK(res.match[0]);
    /* HEAD: the length of the GET, and no body (the next response follows the head). */
    CHECK_INT(res.status[1], 200);
    CHECK_INT(res.clen[1], FILE_LEN);
    CHECK_INT(res.status[2], 200);
    CHECK_INT(res.clen[2], 100000);
    CHECK_INT(res.got[2], 100000);
    CHECK(res.match[2]);
    CHECK_INT(res.status[3], 200);
    CHECK_INT(res.clen[3], 0);
    CHECK_INT(res.status[4], 200);
    CHECK_INT(res.got[4], FILE_LEN);
    CHECK(res.match[4]);
    CHECK_INT(res.after_last, -1);
    CHECK_INT(h.calls, 5);
    /* Every descriptor handed over was closed by the library. */
    CHECK_INT(count_fds(), fds_before);
    unlink(path);
}

typedef struct errors_result {
    int status[4];
    size_t got_shrink;
    long long clen_shrink;
    int after;
} errors_result;

static void *errors_client(void *arg)
{
    errors_result *res = arg;
    hcli *c = malloc(sizeof *c);
    if (hc_connect(c, g_h->port, 16 << 10) == 0) {
        static const char reqs[] = "GET /dir HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /pipe HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /past HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /whole HTTP/1.1\r\nHost: x\r\n\r\n";
        hc_send(c, reqs, sizeof reqs - 1);
        long long clen;
        bool match;
        for (int i = 0; i < 3; i++) {
            res->status[i] = hc_head(c, &clen);
            hc_body(c, NULL, clen > 0 ? (size_t)clen : 0, 0, &match);
        }
        res->status[3] = hc_head(c, &res->clen_shrink);
        /* The file is cut to nothing while most of it is still unread: the server must
         * close the connection rather than send a short body and go on. Cut here, once the
         * answer has begun: a timer 150 ms after the start came before it on a loaded machine
         * (ASan, load 10-15 on 2 cores), and the answer was a whole empty file. */
        g_h->timer_ran = truncate(g_h->file, 0) == 0;
        usleep(300 * 1000);
        res->got_shrink = hc_body(c, NULL, (size_t)res->clen_shrink, 0, &match);
        res->after = hc_byte(c);
    }
    close(c->fd);
    free(c);
    wsx_loop_post(g_h->loop, hs_stop, g_h);
    return NULL;
}

TEST(respond_file_errors)
{
    char path[] = "/tmp/wsx-test-http-XXXXXX";
    int tfd = mkstemp(path);
    CHECK(tfd >= 0);
    /* Sparse: 64 MiB that cost no disk, far more than the socket buffers hold. */
    CHECK(ftruncate(tfd, 64 << 20) == 0);
    close(tfd);
    int fds_before = count_fds();
    hsrv h = {.file = path};
    g_h = &h;
    hs_start(&h, 128 << 10, 32 << 10);
    errors_result res = {0};
    hs_run(&h, errors_client, &res);
    CHECK_INT(h.rc_dir, WSX_EINVAL);
    CHECK_INT(h.rc_pipe, WSX_EINVAL);
    CHECK(h.pipe_closed);
    CHECK_INT(h.rc_range, WSX_EINVAL);
    CHECK_INT(res.status[0], 500);
    CHECK_INT(res.status[1], 500);
    CHECK_INT(res.status[2], 416);
    CHECK_INT(res.status[3], 200);
    CHECK_INT(res.clen_shrink, 64 << 20);
    CHECK(h.timer_ran);
    CHECK(res.got_shrink < (64u << 20));
    CHECK_INT(res.after, -1);
    CHECK_INT(count_fds(), fds_before);
    unlink(path);
}

typedef struct stall_result {
    int status;
    size_t got;
    double ended_after; /* seconds from the head to the end of the connection */
} stall_result;

static void *stall_client(void *arg)
{
    stall_result *res = arg;
    hcli *c = malloc(sizeof *c);
    if (hc_connect(c, g_h->port, 16 << 10) == 0) {
        static const char req[] = "GET /whole HTTP/1.1\r\nHost: x\r\n\r\n";
        hc_send(c, req, sizeof req - 1);
        long long clen;
        res->status = hc_head(c, &clen);
        double t0 = test_now_();
        /* Reads nothing for longer than the server's http_timeout_ms, then drains. */
        usleep(1500 * 1000);
        bool match;
        res->got = hc_body(c, NULL, clen > 0 ? (size_t)clen : 0, 0, &match);
        res->ended_after = test_now_() - t0;
    }
    close(c->fd);
    free(c);
    wsx_loop_post(g_h->loop, hs_stop, g_h);
    return NULL;
}

TEST(stalled_file_reader_closed)
{
    char path[] = "/tmp/wsx-test-http-XXXXXX";
    int tfd = mkstemp(path);
    CHECK(tfd >= 0);
    CHECK(ftruncate(tfd, 64 << 20) == 0);
    close(tfd);
    hsrv h = {.file = path, .http_ms = 300};
    g_h = &h;
    hs_start(&h, 128 << 10, 32 << 10);
    stall_result res = {0};
    hs_run(&h, stall_client, &res);
    /* A client that stops reading a file response is closed after http_timeout_ms without
     * progress: it gets what the socket buffers held, then the end of the connection. */
    CHECK_INT(res.status, 200);
    CHECK(res.got < (64u << 20));
    CHECK(res.ended_after < 5.0);
    unlink(path);
}

#define N_PIPELINED 100

typedef struct pipe_result {
    int ok;    /* responses in order with the right body */
    int after; /* -1: the server closed after the last (Connection: close) */
} pipe_result;

static void *pipeline_client(void *arg)
{
    pipe_result *res = arg;
    hcli *c = malloc(sizeof *c);
    char *reqs = malloc(N_PIPELINED * 64);
    size_t n = 0;
    for (int i = 0; i < N_PIPELINED; i++) {
        if (i == 40)
            n += (size_t)sprintf(reqs + n, "GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
        else
            n += (size_t)sprintf(reqs + n, "GET /r%d HTTP/1.1\r\nHost: x\r\n%s\r\n", i,
                                 i == N_PIPELINED - 1 ? "Connection: close\r\n" : "");
    }
    if (hc_connect(c, g_h->port, 0) == 0 && hc_send(c, reqs, n)) {
        for (int i = 0; i < N_PIPELINED; i++) {
            long long clen;
            char want[32], got[32] = {0};
            int st = hc_head(c, &clen);
            snprintf(want, sizeof want, i == 40 ? "later" : "/r%d", i);
            bool match;
            if (st != 200 || clen < 0 || clen >= (long long)sizeof got) break;
            hc_body(c, (uint8_t *)got, (size_t)clen, 0, &match);
            if (strcmp(got, want) != 0) break;
            res->ok++;
        }
        res->after = hc_byte(c);
    }
    close(c->fd);
    free(reqs);
    free(c);
    wsx_loop_post(g_h->loop, hs_stop, g_h);
    return NULL;
}

TEST(pipelined_requests_fair_and_not_reentrant)
{
    hsrv h = {0};
    g_h = &h;
    hs_start(&h, 0, 0);
    pipe_result res = {0};
    hs_run(&h, pipeline_client, &res);
    CHECK_INT(res.ok, N_PIPELINED);
    CHECK_INT(res.after, -1);
    CHECK_INT(h.calls, N_PIPELINED);
    CHECK(h.timer_ran);
    /* The next request never starts inside the answer to the previous one... */
    CHECK_INT(h.reentered, 0);
    /* ...and one connection gets at most 16 requests handled per loop iteration. */
    CHECK(h.max_per_iter >= 2);
    CHECK(h.max_per_iter <= 16);
}

typedef struct halfclose_result {
    int ok;
    int after;
} halfclose_result;

static void *halfclose_client(void *arg)
{
    halfclose_result *res = arg;
    hcli *c = malloc(sizeof *c);
    char reqs[4096];
    size_t n = 0;
    for (int i = 0; i < 50; i++)
        n += (size_t)sprintf(reqs + n, "GET /h%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    if (hc_connect(c, g_h->port, 0) == 0 && hc_send(c, reqs, n)) {
        /* Everything is sent: the client half-closes, then reads the answers. */
        shutdown(c->fd, SHUT_WR);
        usleep(100 * 1000);
        for (int i = 0; i < 50; i++) {
            long long clen;
            char want[16], got[16] = {0};
            bool match;
            if (hc_head(c, &clen) != 200 || clen <= 0 || clen >= (long long)sizeof got) break;
            hc_body(c, (uint8_t *)got, (size_t)clen, 0, &match);
            snprintf(want, sizeof want, "/h%d", i);
            if (strcmp(got, want) != 0) break;
            res->ok++;
        }
        res->after = hc_byte(c);
    }
    close(c->fd);
    free(c);
    wsx_loop_post(g_h->loop, hs_stop, g_h);
    return NULL;
}

TEST(half_close_after_pipelined_requests)
{
    hsrv h = {0};
    g_h = &h;
    hs_start(&h, 0, 0);
    halfclose_result res = {0};
    hs_run(&h, halfclose_client, &res);
    /* More requests than one pass answers, then EOF: every answer still arrives, then the
     * server ends the connection. */
    CHECK_INT(res.ok, 50);
    CHECK_INT(res.after, -1);
}

typedef struct upgrade_result {
    int ok;     /* 200 responses before the upgrade */
    int status; /* of the upgrade */
    uint8_t pong[4];
} upgrade_result;

static void *upgrade_client(void *arg)
{
    upgrade_result *res = arg;
    hcli *c = malloc(sizeof *c);
    char reqs[2048];
    size_t n = 0;
    /* More requests than one pass answers: the upgrade is served from deferred work. */
    for (int i = 0; i < 20; i++)
        n += (size_t)sprintf(reqs + n, "GET /u%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    n += (size_t)sprintf(reqs + n, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    if (hc_connect(c, g_h->port, 0) == 0 && hc_send(c, reqs, n)) {
        for (int i = 0; i < 20; i++) {
            long long clen;
            bool match;
            if (hc_head(c, &clen) != 200 || clen <= 0) break;
            hc_body(c, NULL, (size_t)clen, 0, &match);
            res->ok++;
        }
        long long clen;
        res->status = hc_head(c, &clen);
        /* A masked ping (mask 0): the connection reads frames, so the pong comes back. */
        static const char ping[] = "\x89\x82\x00\x00\x00\x00hi";
        hc_send(c, ping, sizeof ping - 1);
        for (int i = 0; i < 4; i++) {
            int b = hc_byte(c);
            res->pong[i] = (uint8_t)(b < 0 ? 0 : b);
        }
    }
    close(c->fd);
    free(c);
    wsx_loop_post(g_h->loop, hs_stop, g_h);
    return NULL;
}

TEST(upgrade_after_deferred_requests)
{
    hsrv h = {0};
    g_h = &h;
    hs_start(&h, 0, 0);
    upgrade_result res = {0};
    hs_run(&h, upgrade_client, &res);
    CHECK_INT(res.ok, 20);
    CHECK_INT(res.status, 101);
    CHECK_MEM(res.pong, 4, "\x8a\x02hi", 4);
}

#define BIG_ANSWER (1u << 20)
#define N_BIG      64

typedef struct hw_result {
    int calls_unread; /* on_http calls while the client read nothing */
    int ok;
} hw_result;

static void *high_water_client(void *arg)
{
    hw_result *res = arg;
    hcli *c = malloc(sizeof *c);
    if (hc_connect(c, g_h->port, 8 << 10) == 0) {
        char *reqs = malloc(N_BIG * 40);
        size_t n = 0;
        for (int i = 0; i < N_BIG; i++)
            n += (size_t)sprintf(reqs + n, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
        hc_send(c, reqs, n);
        free(reqs);
        /* Until the server has begun (a loaded machine may not run it within 500 ms), then
         * 500 ms more for it to fill the buffers and stop. */
        for (int w = 0; w < 1000 && atomic_load(&g_h->calls) == 0; w++)
            usleep(10 * 1000);
        usleep(500 * 1000);
        res->calls_unread = atomic_load(&g_h->calls);
        for (int i = 0; i < N_BIG; i++) {
            long long clen;
            bool match;
            if (hc_head(c, &clen) != 200 || clen != BIG_ANSWER) break;
            if (hc_body(c, NULL, BIG_ANSWER, 0, &match) != BIG_ANSWER || !match) break;
            res->ok++;
        }
    }
    close(c->fd);
    free(c);
    wsx_loop_post(g_h->loop, hs_stop, g_h);
    return NULL;
}

TEST(high_water_stops_pipelined_requests)
{
    hsrv h = {0};
    g_h = &h;
    h.body_len = BIG_ANSWER;
    h.body = malloc(BIG_ANSWER);
    for (size_t i = 0; i < BIG_ANSWER; i++)
        h.body[i] = pattern(i);
    hs_start(&h, 256 << 10, 64 << 10);
    hw_result res = {0};
    hs_run(&h, high_water_client, &res);
    /* 64 MiB of answers were asked for; while the client reads nothing the server answers
     * only what the socket buffers (a few MiB on loopback) and its high-water mark hold. */
    CHECK(res.calls_unread >= 1);
    CHECK(res.calls_unread <= 16);
    /* Reading resumes the pipeline: every answer arrives, whole. */
    CHECK_INT(res.ok, N_BIG);
    CHECK_INT(h.calls, N_BIG);
    free(h.body);
}

static void *access_client(void *arg)
{
    (void)arg;
    hcli *c = malloc(sizeof *c);
    if (hc_connect(c, g_h->port, 0) == 0) {
        static const char reqs[] = "GET /hello?token=secret HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "HEAD /whole HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /range HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        hc_send(c, reqs, sizeof reqs - 1);
        while (hc_byte(c) >= 0) {
        }
        close(c->fd);
    }
    if (hc_connect(c, g_h->port, 0) == 0) {
        static const char bad[] = "NOT HTTP\r\n\r\n";
        hc_send(c, bad, sizeof bad - 1);
        while (hc_byte(c) >= 0) {
        }
        close(c->fd);
    }
    free(c);
    wsx_loop_post(g_h->loop, hs_stop, g_h);
    return NULL;
}

/* on_access: one call per answer, with the request's method and path (no query), the status,
 * the body bytes and the time; also for a file, an answer given later and a refusal. */
TEST(access_log_one_call_per_answer)
{
    char path[] = "/tmp/wsx-test-http-XXXXXX";
    int tfd = mkstemp(path);
    CHECK(tfd >= 0);
    close(tfd);
    write_pattern_file(path, FILE_LEN);
    hsrv h = {.file = path, .access = true};
    g_h = &h;
    hs_start(&h, 0, 0);
    hs_run(&h, access_client, NULL);
    unlink(path);
    CHECK_INT(h.n_access, 5);
    static const struct {
        const char *method, *path;
        int status;
        uint64_t bytes;
    } want[5] = {{"GET", "/hello", 200, 6},
                 {"HEAD", "/whole", 200, 0},
                 {"GET", "/range", 200, 100000},
                 {"GET", "/later", 200, 5},
                 {"", "", 400, 0}};
    for (int i = 0; i < 5 && i < h.n_access; i++) {
        CHECK_STR(h.acc[i].method, want[i].method);
        CHECK_STR(h.acc[i].path, want[i].path);
        CHECK_INT(h.acc[i].status, want[i].status);
        CHECK_INT(h.acc[i].bytes, want[i].bytes);
        CHECK(h.acc[i].ms >= 0 && h.acc[i].ms < 10000);
    }
    /* /later is answered from a 10 ms timer. */
    CHECK(h.acc[3].ms >= 5);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN_T(respond_file_streams_in_pieces);
    RUN_T(respond_file_errors);
    RUN_T(stalled_file_reader_closed);
    RUN_T(pipelined_requests_fair_and_not_reentrant);
    RUN_T(upgrade_after_deferred_requests);
    RUN_T(half_close_after_pipelined_requests);
    RUN_T(high_water_stops_pipelined_requests);
    RUN_T(access_log_one_call_per_answer);
    return test_summary("http_server");
}
