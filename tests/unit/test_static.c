/*
 * Unit tests for the file server (src/http/static.c) and the CORS helpers (src/http/cors.c):
 * the pure parts with plain structs, the answers over real sockets on 127.0.0.1 against a
 * server whose on_http calls them. The exact answers of `wsx serve --static` are tested from
 * outside by tests/interop/serve_static.py; this file covers what the CLI does not reach:
 * options (index, Cache-Control, a table behind a directory, CORS with credentials, "*"
 * lists, max-age) and the API's error returns.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "test.h"
#include "net_test.h"
#include "wsx.h"

/* ---- CORS without a server ---- */

static const wsx_http_request *make_req(wsx_http_request *head, wsx_http_header *h, size_t n,
                                        const char *method)
{
    *head = (wsx_http_request){method, strlen(method), "/x", 2, 1, 1, h, n};
    return head;
}

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

static const char *find(const wsx_http_header *h, size_t n, const char *name)
{
    static char v[256];
    for (size_t i = 0; i < n; i++)
        if (strlen(name) == h[i].name_len && !strncasecmp(h[i].name, name, h[i].name_len)) {
            snprintf(v, sizeof v, "%.*s", (int)h[i].value_len, h[i].value);
            return v;
        }
    return NULL;
}

TEST(cors_origins)
{
    const char *list[] = {"https://a.example", "http://localhost:8080"};
    wsx_cors_opts o = {.origins = list, .n_origins = 2};
    CHECK(wsx_cors_origin_allowed(&o, "https://a.example", 17));
    CHECK(wsx_cors_origin_allowed(&o, "HTTPS://A.EXAMPLE", 17));
    CHECK(wsx_cors_origin_allowed(&o, "http://localhost:8080", 21));
    CHECK(!wsx_cors_origin_allowed(&o, "http://localhost:8081", 21));
    CHECK(!wsx_cors_origin_allowed(&o, "https://a.example.evil", 22));
    CHECK(!wsx_cors_origin_allowed(&o, "https://a.exampl", 16));
    CHECK(!wsx_cors_origin_allowed(&o, "null", 4));
    CHECK(!wsx_cors_origin_allowed(&o, "", 0));
    const char *star[] = {"*"};
    wsx_cors_opts any = {.origins = star, .n_origins = 1};
    CHECK(wsx_cors_origin_allowed(&any, "https://b.example", 17));
    CHECK(wsx_cors_origin_allowed(&any, "null", 4));
    any.credentials = true;
    CHECK(wsx_cors_origin_allowed(&any, "https://b.example", 17));
    CHECK(!wsx_cors_origin_allowed(&any, "null", 4)); /* only by name with credentials */
    const char *named[] = {"*", "null"};
    wsx_cors_opts with_null = {.origins = named, .n_origins = 2, .credentials = true};
    CHECK(wsx_cors_origin_allowed(&with_null, "null", 4));
    wsx_cors_opts none = {0};
    CHECK(!wsx_cors_origin_allowed(&none, "https://a.example", 17));
}

TEST(cors_preflight_detection)
{
    wsx_http_request head;
    wsx_http_header h[2] = {HDR("Origin", "https://a.example"),
                            HDR("Access-Control-Request-Method", "PUT")};
    const wsx_http_request *rq = make_req(&head, h, 2, "OPTIONS");
    CHECK(wsx_cors_is_preflight(rq));
    rq = make_req(&head, h, 1, "OPTIONS");
    CHECK(!wsx_cors_is_preflight(rq));
    rq = make_req(&head, h + 1, 1, "OPTIONS");
    CHECK(!wsx_cors_is_preflight(rq));
    rq = make_req(&head, h, 2, "GET");
    CHECK(!wsx_cors_is_preflight(rq));
    rq = make_req(&head, h, 2, "options"); /* methods are case-sensitive */
    CHECK(!wsx_cors_is_preflight(rq));
}

TEST(cors_response_headers)
{
    const char *list[] = {"https://a.example"};
    wsx_cors_opts o = {.origins = list, .n_origins = 1};
    wsx_http_request head;
    wsx_http_header good[1] = {HDR("Origin", "https://a.example")};
    wsx_http_header bad[1] = {HDR("Origin", "https://b.example")};
    wsx_http_header out[WSX_CORS_MAX_HEADERS];
    const wsx_http_request *rq = make_req(&head, good, 1, "GET");
    size_t n = wsx_cors_headers(&o, rq, out);
    CHECK_INT(n, 2);
    CHECK_STR(find(out, n, "Vary"), "Origin");
    CHECK_STR(find(out, n, "Access-Control-Allow-Origin"), "https://a.example");
    rq = make_req(&head, bad, 1, "GET");
    n = wsx_cors_headers(&o, rq, out);
    CHECK_INT(n, 1);
    CHECK_STR(find(out, n, "Vary"), "Origin");
    rq = make_req(&head, NULL, 0, "GET");
    CHECK_INT(wsx_cors_headers(&o, rq, out), 1);
    /* Credentials and exposed headers. */
    o.credentials = true;
    o.expose = "X-Total, X-Page";
    rq = make_req(&head, good, 1, "POST");
    n = wsx_cors_headers(&o, rq, out);
    CHECK_INT(n, 4);
    CHECK_STR(find(out, n, "Access-Control-Allow-Credentials"), "true");
    CHECK_STR(find(out, n, "Access-Control-Expose-Headers"), "X-Total, X-Page");
    /* Any origin: "*" and no Vary without credentials; the origin echoed with them. */
    const char *star[] = {"*"};
    wsx_cors_opts any = {.origins = star, .n_origins = 1};
    rq = make_req(&head, bad, 1, "GET");
    n = wsx_cors_headers(&any, rq, out);
    CHECK_INT(n, 1);
    CHECK_STR(find(out, n, "Access-Control-Allow-Origin"), "*");
    rq = make_req(&head, NULL, 0, "GET");
    CHECK_INT(wsx_cors_headers(&any, rq, out), 0);
    any.credentials = true;
    rq = make_req(&head, bad, 1, "GET");
    n = wsx_cors_headers(&any, rq, out);
    CHECK_INT(n, 3);
    CHECK_STR(find(out, n, "Vary"), "Origin");
    CHECK_STR(find(out, n, "Access-Control-Allow-Origin"), "https://b.example");
    CHECK_STR(find(out, n, "Access-Control-Allow-Credentials"), "true");
}

/* ---- wsx_static_new ---- */

static char g_root[64];

static void write_file(const char *rel, const char *data)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(data, f);
        fclose(f);
    }
}

static const wsx_static_file g_table[] = {
    {"/index.html", (const uint8_t *)"table index", 11},
    {"/only-table.js", (const uint8_t *)"table js", 8},
    {"/both.txt", (const uint8_t *)"from the table", 14},
    {"/t/home.htm", (const uint8_t *)"table home", 10},
    {NULL, NULL, 0},
};

TEST(static_new_errors)
{
    wsx_static *st = (wsx_static *)&st;
    wsx_static_opts o = wsx_static_defaults();
    CHECK_STR(o.index, "index.html");
    CHECK_STR(o.cache_control, "no-cache");
    CHECK(!o.root && !o.files);
    CHECK_INT(wsx_static_new(&o, &st), WSX_EINVAL);
    CHECK_INT(wsx_static_new(NULL, &st), WSX_EINVAL);
    o.root = "/nonexistent/wsx-static-root";
    CHECK_INT(wsx_static_new(&o, &st), WSX_ESYS);
    char file[128];
    snprintf(file, sizeof file, "%s/dir.txt", g_root);
    o.root = file; /* a file, not a directory */
    CHECK_INT(wsx_static_new(&o, &st), WSX_EINVAL);
    CHECK(st == (wsx_static *)&st); /* untouched on failure */
    o.root = NULL;
    o.files = g_table;
    CHECK_INT(wsx_static_new(&o, &st), 0);
    wsx_static_free(st);
    wsx_static_free(NULL);
}

/* ---- answers over a real server ---- */

typedef struct srv {
    wsx_loop *loop;
    wsx_server *srv;
    uint16_t port;
    wsx_static *both;   /* root and table, defaults */
    wsx_static *custom; /* table only, index home.htm, no Cache-Control */
    wsx_cors_opts cors[3];
    int rc_crlf, rc_many, rc_not_preflight;
} srv;

static srv g;

static void on_http(wsx_http_req *r, void *user)
{
    (void)user;
    char path[64];
    size_t pl;
    const char *rp = wsx_http_req_path(r, &pl);
    snprintf(path, sizeof path, "%.*s", (int)pl, rp);
    const wsx_http_header xh[] = {HDR("X-Extra", "1")};
    if (!strncmp(path, "/cors", 5)) {
        int k = path[5] - '0';
        if (!wsx_cors_is_preflight(wsx_http_req_head(r))) {
            g.rc_not_preflight = wsx_cors_preflight(&g.cors[k], r);
            wsx_http_respond(r, 299, NULL, 0, NULL, 0);
            return;
        }
        wsx_cors_preflight(&g.cors[k], r);
    } else if (!strcmp(path, "/crlf")) {
        const wsx_http_header bad[] = {HDR("X-Bad", "a\r\nb")};
        g.rc_crlf = wsx_static_serve(g.both, r, bad, 1);
        wsx_http_respond(r, 298, NULL, 0, NULL, 0); /* still open */
    } else if (!strcmp(path, "/many")) {
        wsx_http_header many[WSX_STATIC_MAX_EXTRA + 1];
        for (size_t i = 0; i <= WSX_STATIC_MAX_EXTRA; i++)
            many[i] = xh[0];
        g.rc_many = wsx_static_serve(g.both, r, many, WSX_STATIC_MAX_EXTRA + 1);
        wsx_http_respond(r, 297, NULL, 0, NULL, 0);
    } else if (!strncmp(path, "/t/", 3)) {
        wsx_static_serve(g.custom, r, NULL, 0);
    } else {
        wsx_static_serve(g.both, r, xh, 1);
    }
}

/* One exchange: the request's raw bytes; the whole response (Connection: close) into out. */
static size_t fetch(const char *req, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(g.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t n = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
        ssize_t k;
        while (n + 1 < cap && (k = recv(fd, out + n, cap - 1 - n, 0)) > 0)
            n += (size_t)k;
    }
    out[n] = '\0';
    close(fd);
    return n;
}

typedef struct exch {
    const char *req;
    char resp[8192];
} exch;

static exch g_ex[32];
static size_t g_n_ex;

static void stop(void *arg)
{
    (void)arg;
    wsx_server_shutdown(g.srv, 100);
}

static void *client(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < g_n_ex; i++)
        fetch(g_ex[i].req, g_ex[i].resp, sizeof g_ex[i].resp);
    wsx_loop_post(g.loop, stop, NULL);
    return NULL;
}

#define REQ(m, p, extra) m " " p " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" extra "\r\n"

static const char *const reqs[] = {
    /* 0 */ REQ("GET", "/both.txt", ""),
    /* 1 */ REQ("GET", "/only-table.js", ""),
    /* 2 */ REQ("GET", "/", ""),
    /* 3 */ REQ("GET", "/t/", ""),
    /* 4 */ REQ("POST", "/both.txt", "Content-Length: 0\r\n"),
    /* 5 */ REQ("GET", "/crlf", ""),
    /* 6 */ REQ("GET", "/many", ""),
    /* 7 */
    REQ("OPTIONS", "/cors0",
        "Origin: https://a.example\r\n"
        "Access-Control-Request-Method: DELETE\r\n"),
    /* 8 */
    REQ("OPTIONS", "/cors1",
        "Origin: https://z.example\r\n"
        "Access-Control-Request-Method: PATCH\r\n"
        "Access-Control-Request-Headers: x-a, content-type\r\n"),
    /* 9 */
    REQ("OPTIONS", "/cors2",
        "Origin: https://a.example\r\n"
        "Access-Control-Request-Method: PUT\r\n"
        "Access-Control-Request-Headers: X-B\r\n"),
    /* 10 */
    REQ("OPTIONS", "/cors2",
        "Origin: https://a.example\r\n"
        "Access-Control-Request-Method: PUT\r\n"
        "Access-Control-Request-Headers: x-b, x-c\r\n"),
    /* 11 */
    REQ("OPTIONS", "/cors2",
        "Origin: https://a.example\r\n"
        "Access-Control-Request-Method: PATCH\r\n"),
    /* 12 */ REQ("OPTIONS", "/cors0", "Origin: https://a.example\r\n"),
    /* 13 */ REQ("GET", "/t/both.txt", ""),
    /* 14 */ REQ("GET", "/both.txt?q=1", "Range: bytes=-3\r\n"),
    /* 15: a path of 5000 bytes, set in the test */ NULL,
    /* 16 */
    REQ("OPTIONS", "/cors0",
        "Origin: https://a.example\r\n"
        "Access-Control-Request-Method: GET\r\n"
        "Access-Control-Request-Headers: ,\r\n"),
    /* 17 */ REQ("GET", "/t?x=1", ""),
    /* 18 */ REQ("GET", "/t/home", ""),
    /* 19 */ REQ("GET", "/tt", ""),
};

static bool has(const char *resp, const char *s)
{
    return strstr(resp, s) != NULL;
}

TEST(static_and_cors_answers)
{
    write_file("both.txt", "from the directory");
    wsx_static_opts o = wsx_static_defaults();
    o.root = g_root;
    o.files = g_table;
    CHECK_INT(wsx_static_new(&o, &g.both), 0);
    o = wsx_static_defaults();
    o.files = g_table;
    o.index = "home.htm";
    o.cache_control = "";
    CHECK_INT(wsx_static_new(&o, &g.custom), 0);
    static const char *a[] = {"https://a.example"}, *star[] = {"*"};
    g.cors[0] = (wsx_cors_opts){
        .origins = a, .n_origins = 1, .methods = "*", .credentials = true, .max_age = 600};
    g.cors[1] =
        (wsx_cors_opts){.origins = star, .n_origins = 1, .methods = "PATCH", .headers = "*"};
    g.cors[2] = (wsx_cors_opts){
        .origins = a, .n_origins = 1, .methods = "PUT, DELETE", .headers = "X-A, X-B"};
    g.rc_crlf = g.rc_many = g.rc_not_preflight = 1;

    g.loop = new_loop();
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    so.on_http = on_http;
    so.log_level = WSX_LOG_ERROR;
    CHECK_INT(wsx_server_start(g.loop, &so, &g.srv, NULL), 0);
    g.port = wsx_server_port(g.srv);
    g_n_ex = sizeof reqs / sizeof reqs[0];
    for (size_t i = 0; i < g_n_ex; i++)
        g_ex[i].req = reqs[i];
    /* Longer than the cleaned path's 4096 bytes (the head limit is 8 KiB). */
    static char long_req[6000];
    int ll = snprintf(long_req, sizeof long_req, "GET /");
    while (ll < 5005)
        long_req[ll++] = 'a';
    snprintf(long_req + ll, sizeof long_req - (size_t)ll, " HTTP/1.1\r\nConnection: close\r\n\r\n");
    g_ex[15].req = long_req;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, client, NULL) == 0);
    wsx_loop_run(g.loop);
    pthread_join(t, NULL);
    wsx_server_free(g.srv);
    wsx_loop_free(g.loop);

    const char *r;
    /* The directory wins over the table; the table answers what the directory lacks. */
    r = g_ex[0].resp;
    CHECK(has(r, "HTTP/1.1 200 OK\r\n") && has(r, "\r\n\r\nfrom the directory"));
    CHECK(has(r, "X-Extra: 1\r\n") && has(r, "Cache-Control: no-cache\r\n"));
    CHECK(has(r, "Last-Modified: "));
    r = g_ex[1].resp;
    CHECK(has(r, "HTTP/1.1 200 OK\r\n") && has(r, "\r\n\r\ntable js"));
    CHECK(has(r, "Content-Type: text/javascript; charset=utf-8\r\n"));
    CHECK(!has(r, "Last-Modified"));
    CHECK(has(r, "ETag: \"") && has(r, "-8\"\r\n")); /* FNV-1a and the length */
    r = g_ex[2].resp; /* no index.html in the directory: the table's */
    CHECK(has(r, "HTTP/1.1 200 OK\r\n") && has(r, "\r\n\r\ntable index"));
    /* Another index name; no Cache-Control. */
    r = g_ex[3].resp;
    CHECK(has(r, "HTTP/1.1 200 OK\r\n") && has(r, "\r\n\r\ntable home"));
    CHECK(!has(r, "Cache-Control"));
    r = g_ex[13].resp;
    CHECK(has(r, "HTTP/1.1 404 Not Found\r\n") && has(r, "\r\n\r\n404 Not Found\n"));
    r = g_ex[4].resp;
    CHECK(has(r, "HTTP/1.1 405 Method Not Allowed\r\n") && has(r, "Allow: GET, HEAD\r\n"));
    CHECK(has(r, "X-Extra: 1\r\n") && has(r, "\r\n\r\n405 Method Not Allowed\n"));
    /* Invalid extra headers: nothing sent, the request still open for the caller. */
    CHECK_INT(g.rc_crlf, WSX_EINVAL);
    CHECK(has(g_ex[5].resp, "HTTP/1.1 298 "));
    CHECK(!has(g_ex[5].resp, "X-Bad"));
    CHECK_INT(g.rc_many, WSX_EINVAL);
    CHECK(has(g_ex[6].resp, "HTTP/1.1 297 "));
    /* A query does not change the file; ranges of a directory file. */
    r = g_ex[14].resp;
    CHECK(has(r, "HTTP/1.1 206 Partial Content\r\n") && has(r, "Content-Range: bytes 15-17/18"));
    CHECK(has(r, "\r\n\r\nory") && has(r, "Content-Length: 3\r\n"));

    r = g_ex[15].resp;
    CHECK(has(r, "HTTP/1.1 414 URI Too Long\r\n") && has(r, "\r\n\r\n414 URI Too Long\n"));

    /* A directory of the table without its '/': 301 to it, the query kept; a name that only
     * starts like one of its files is not one. */
    r = g_ex[17].resp;
    CHECK(has(r, "HTTP/1.1 301 Moved Permanently\r\n") && has(r, "Location: /t/?x=1\r\n"));
    CHECK(has(r, "X-Extra: 1\r\n"));
    CHECK(has(g_ex[18].resp, "HTTP/1.1 404 Not Found\r\n"));
    CHECK(has(g_ex[19].resp, "HTTP/1.1 404 Not Found\r\n"));

    /* An empty requested list with no headers configured: accepted, nothing to allow. */
    r = g_ex[16].resp;
    CHECK(has(r, "HTTP/1.1 204 No Content\r\n") && !has(r, "Access-Control-Allow-Headers"));

    /* Credentials and methods "*": the method is echoed, the origin too; max-age. */
    r = g_ex[7].resp;
    CHECK(has(r, "HTTP/1.1 204 No Content\r\n"));
    CHECK(has(r, "Access-Control-Allow-Origin: https://a.example\r\n"));
    CHECK(has(r, "Access-Control-Allow-Credentials: true\r\n"));
    CHECK(has(r, "Access-Control-Allow-Methods: DELETE\r\n"));
    CHECK(has(r, "Access-Control-Max-Age: 600\r\n"));
    CHECK(!has(r, "Access-Control-Allow-Headers") && !has(r, "Content-Length"));
    /* Any origin, headers "*": the requested list is echoed. */
    r = g_ex[8].resp;
    CHECK(has(r, "HTTP/1.1 204 No Content\r\n"));
    CHECK(has(r, "Access-Control-Allow-Origin: *\r\n"));
    CHECK(has(r, "Access-Control-Allow-Methods: PATCH\r\n"));
    CHECK(has(r, "Access-Control-Allow-Headers: x-a, content-type\r\n"));
    CHECK(!has(r, "Access-Control-Allow-Credentials") && !has(r, "Max-Age"));
    /* Listed headers, ignoring case; one unlisted header refuses; an unlisted method too. */
    r = g_ex[9].resp;
    CHECK(has(r, "HTTP/1.1 204 No Content\r\n"));
    CHECK(has(r, "Access-Control-Allow-Headers: X-A, X-B\r\n"));
    CHECK(has(r, "Access-Control-Allow-Methods: PUT, DELETE\r\n"));
    r = g_ex[10].resp;
    CHECK(has(r, "HTTP/1.1 403 Forbidden\r\n") && has(r, "CORS: header not allowed\n"));
    CHECK(!has(r, "Access-Control-Allow"));
    r = g_ex[11].resp;
    CHECK(has(r, "HTTP/1.1 403 Forbidden\r\n") && has(r, "CORS: method not allowed\n"));
    /* Not a preflight: WSX_EINVAL, nothing sent. */
    CHECK_INT(g.rc_not_preflight, WSX_EINVAL);
    CHECK(has(g_ex[12].resp, "HTTP/1.1 299 "));

    wsx_static_free(g.both);
    wsx_static_free(g.custom);
}

int main(void)
{
    snprintf(g_root, sizeof g_root, "/tmp/wsx-test-static-%d", (int)getpid());
    mkdir(g_root, 0700);
    write_file("dir.txt", "x");
    RUN(cors_origins);
    RUN(cors_preflight_detection);
    RUN(cors_response_headers);
    RUN(static_new_errors);
    RUN_T(static_and_cors_answers);
    char p[128];
    snprintf(p, sizeof p, "%s/dir.txt", g_root);
    unlink(p);
    snprintf(p, sizeof p, "%s/both.txt", g_root);
    unlink(p);
    rmdir(g_root);
    return test_summary("static");
}
