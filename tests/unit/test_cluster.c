/*
 * src/cluster, the Redis side: URL parsing, the envelope, and the hiredis adapter on the wsx
 * loop against a real redis-server (tests/unit/cluster_test.h): connecting, the connect
 * timeout against a listener that never answers, a listener that answers garbage, the
 * command timeout against a paused server (SIGSTOP), the bound on pending commands, and
 * reconnection after the server is killed and started again. Skipped without redis-server.
 */
#include "test.h"
#include "net_test.h"
#include "cluster_test.h"

#include "cluster/cluster.h"
#include "wsx/watch.h"

TEST(url_parse)
{
    wsx__redis_url u;
    const char *why = NULL;
    CHECK_INT(wsx__redis_url_parse("redis://127.0.0.1", &u, &why), 0);
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_INT(u.port, 6379);
    CHECK_INT(u.db, 0);
    CHECK(!u.has_pass && !u.unix_socket);
    CHECK_INT(wsx__redis_url_parse("redis://al%40ice:p%3Ass@[::1]:7000/3", &u, &why), 0);
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, 7000);
    CHECK_INT(u.db, 3);
    CHECK_STR(u.user, "al@ice");
    CHECK_STR(u.pass, "p:ss");
    CHECK(u.has_pass);
    CHECK_INT(wsx__redis_url_parse("redis://:secret@localhost:1/", &u, &why), 0);
    CHECK_STR(u.user, "");
    CHECK_STR(u.pass, "secret");
    CHECK_INT(wsx__redis_url_parse("unix:///run/redis.sock?db=2", &u, &why), 0);
    CHECK(u.unix_socket);
    CHECK_STR(u.path, "/run/redis.sock");
    CHECK_INT(u.db, 2);
    CHECK(!u.has_pass);
    CHECK_INT(wsx__redis_url_parse("unix://u:p%40@/s", &u, &why), 0);
    CHECK_STR(u.path, "/s");
    CHECK_STR(u.user, "u");
    CHECK_STR(u.pass, "p@");
    const char *bad[] = {"http://x",    "redis://",        "redis://h:0",    "redis://h:70000",
                         "redis://h/x", "redis://[::1",    "redis://u@h",    "unix://rel/path",
                         "rediss://h",  "redis://h:6379x", "redis://:%00@h", "unix:///s?x=1",
                         NULL};
    CHECK_INT(wsx__redis_url_parse(NULL, &u, &why), WSX_EURL);
    for (int i = 0; bad[i]; i++) {
        why = NULL;
        int rc = wsx__redis_url_parse(bad[i], &u, &why);
        if (rc != WSX_EURL) TEST_FAIL_("%s parsed", bad[i]);
        CHECK(why != NULL);
    }
}

TEST(envelope)
{
    uint8_t env[WSX__ENV_HEAD + 3];
    wsx__env_head(env, 0x0102030405060708ull, 9, 0xfffffffffffffffeull, WSX_BINARY);
    memcpy(env + WSX__ENV_HEAD, "abc", 3);
    uint64_t node, seq, tag;
    int type;
    CHECK_INT(wsx__env_parse(env, sizeof env, &node, &seq, &tag, &type), 0);
    CHECK(node == 0x0102030405060708ull && seq == 9 && tag == 0xfffffffffffffffeull);
    CHECK_INT(type, WSX_BINARY);
    CHECK_INT(env[0], 'W');
    CHECK_INT(env[1], 1);
    CHECK_INT(env[2], 1);
    /* Every truncation, a bad magic, version or flag is refused. */
    for (size_t n = 0; n < WSX__ENV_HEAD; n++)
        CHECK_INT(wsx__env_parse(env, n, &node, &seq, &tag, &type), WSX_EINVAL);
    env[2] = 2;
    CHECK_INT(wsx__env_parse(env, sizeof env, &node, &seq, &tag, &type), WSX_EINVAL);
    env[2] = 0;
    CHECK_INT(wsx__env_parse(env, sizeof env, &node, &seq, &tag, &type), 0);
    CHECK_INT(type, WSX_TEXT);
    env[1] = 2;
    CHECK_INT(wsx__env_parse(env, sizeof env, &node, &seq, &tag, &type), WSX_EINVAL);
    env[1] = 1;
    env[0] = 'X';
    CHECK_INT(wsx__env_parse(env, sizeof env, &node, &seq, &tag, &type), WSX_EINVAL);
}

TEST(start_refuses)
{
    wsx_loop *loop = new_loop();
    wsx_cluster *cl = (wsx_cluster *)(uintptr_t)1;
    wsx_cluster_opts o = wsx_cluster_defaults();
    wsx_error err;
    o.url = "redis://h:0";
    CHECK_INT(wsx_cluster_start(loop, &o, &cl, &err), WSX_EURL);
    CHECK_INT(err.code, WSX_EURL);
    CHECK_STR(err.detail, "bad port");
    o.url = "redis://h";
    o.prefix = "a{b";
    CHECK_INT(wsx_cluster_start(loop, &o, &cl, &err), WSX_EINVAL);
    CHECK(cl == (wsx_cluster *)(uintptr_t)1);
    CHECK_INT(wsx_cluster_start(NULL, &o, &cl, NULL), WSX_EINVAL);
    wsx_loop_free(loop);
}

/* States seen by on_state, in order. */
typedef struct states {
    int seen[32];
    int n;
    char why[128];
} states;

static void on_state(wsx_cluster *cl, wsx_cluster_state s, const char *why, void *user)
{
    (void)cl;
    states *st = user;
    if (st->n < 32) st->seen[st->n++] = (int)s;
    snprintf(st->why, sizeof st->why, "%s", why);
}

/* What wsx_cluster_command's callback got. */
typedef struct reply_seen {
    int n, type;
    long long integer;
    char str[64];
} reply_seen;

static void on_reply_seen(wsx_cluster *cl, const wsx_cluster_reply *r, void *arg)
{
    (void)cl;
    reply_seen *s = arg;
    s->n++;
    s->type = r->type;
    s->integer = r->integer;
    snprintf(s->str, sizeof s->str, "%.*s", (int)r->len, r->str ? r->str : "");
}

static bool replied(void *arg)
{
    return ((reply_seen *)arg)->n > 0;
}

/* wsx_cluster_sync's answers, in the order they came. */
static struct {
    int n;
    int order[4];
    bool ok[4];
} g_syncs;

static const int g_sync_tag[4] = {0, 1, 2, 3};

static void on_sync(wsx_cluster *cl, bool ok, void *arg)
{
    (void)cl;
    if (g_syncs.n < 4) {
        g_syncs.order[g_syncs.n] = *(const int *)arg;
        g_syncs.ok[g_syncs.n] = ok;
    }
    g_syncs.n++;
}

static bool synced2(void *arg)
{
    (void)arg;
    return g_syncs.n >= 2;
}

TEST(connect_up)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    wsx_loop *loop = new_loop();
    states ss = {0};
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.on_state = on_state;
    o.user = &ss;
    wsx_cluster *cl = cluster_on(loop, r.port, &o);
    wsx_cluster_stats st;
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.state, WSX_CLUSTER_CONNECTING);
    CHECK_INT(ss.n, 0); /* nothing inside wsx_cluster_start */
    CHECK(st.node_id != 0);
    CHECK_INT(wsx_cluster_sync(cl, on_sync, (void *)&g_sync_tag[0]), WSX_ECLOSED);
    CHECK(pump(&loop, 1, is_up, cl, 3000));
    CHECK_INT(ss.n, 1);
    CHECK_INT(ss.seen[0], WSX_CLUSTER_UP);
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.failures, 0);
    CHECK_INT(st.reconnects, 0);
    CHECK_STR(wsx_cluster_state_name(st.state), "up");
    /* Not clustered, and a relay with nobody subscribed (Redis counts no receiver). */
    CHECK_INT(wsx_cluster_publish(cl, "t", "x", 1, WSX_TEXT, 0), 0);
    CHECK_INT(wsx_cluster_publish(cl, "", "x", 1, WSX_TEXT, 0), WSX_EINVAL);
    CHECK_INT(wsx_cluster_publish(cl, "t", "x", 1, 7, 0), WSX_EINVAL);
    pump(&loop, 1, NULL, NULL, 100);
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.relayed, 1);
    CHECK_INT(st.pending, 0);
    /* Commands with replies: an integer, an error, a script. */
    const char *incr[] = {"INCR", "k"};
    size_t incr_len[] = {4, 1};
    reply_seen rs = {0};
    CHECK_INT(wsx_cluster_command(cl, 2, incr, incr_len, on_reply_seen, &rs), 0);
    CHECK(pump(&loop, 1, replied, &rs, 2000));
    CHECK_INT(rs.type, WSX_CLUSTER_REPLY_INTEGER);
    CHECK_INT(rs.integer, 1);
    const char *bad[] = {"NOSUCHCOMMAND"};
    size_t bad_len[] = {13};
    memset(&rs, 0, sizeof rs);
    CHECK_INT(wsx_cluster_command(cl, 1, bad, bad_len, on_reply_seen, &rs), 0);
    CHECK(pump(&loop, 1, replied, &rs, 2000));
    CHECK_INT(rs.type, WSX_CLUSTER_REPLY_ERROR);
    CHECK(!strncmp(rs.str, "ERR unknown command", 19));
    CHECK_INT(wsx_cluster_command(cl, 0, bad, bad_len, on_reply_seen, &rs), WSX_EINVAL);
    char ch[64];
    CHECK_INT(wsx_cluster_channel(cl, "room:a", ch, sizeof ch), 12);
    CHECK_STR(ch, "wsx:{room:a}");
    CHECK_INT(wsx_cluster_channel(cl, "room:a", ch, 12), WSX_ENOSPC);
    uint8_t head[WSX_CLUSTER_HEAD];
    wsx_cluster_envelope(head, 0, 7, WSX_TEXT);
    CHECK(head[0] == 'W' && head[1] == 1 && head[2] == 0 && head[27] == 7);
    /* Barriers on the subscription connection: answered in order, after a SUBSCRIBE. */
    CHECK_INT(wsx_cluster_subscribe(cl, "room:s"), 0);
    CHECK_INT(wsx_cluster_sync(cl, on_sync, (void *)&g_sync_tag[1]), 0);
    CHECK_INT(wsx_cluster_sync(cl, on_sync, (void *)&g_sync_tag[2]), 0);
    CHECK_INT(g_syncs.n, 0);
    CHECK(pump(&loop, 1, synced2, NULL, 2000));
    CHECK_INT(g_syncs.n, 2);
    CHECK(g_syncs.order[0] == 1 && g_syncs.order[1] == 2 && g_syncs.ok[0] && g_syncs.ok[1]);
    CHECK_INT(wsx_cluster_sync(cl, on_sync, (void *)&g_sync_tag[3]), 0);
    /* Pending at the stop: its callback runs once, inside the stop, with NONE. */
    memset(&rs, 0, sizeof rs);
    CHECK_INT(wsx_cluster_command(cl, 2, incr, incr_len, on_reply_seen, &rs), 0);
    CHECK_INT(rs.n, 0);
    wsx_cluster_stop(cl);
    CHECK_INT(rs.n, 1);
    CHECK_INT(rs.type, WSX_CLUSTER_REPLY_NONE);
    CHECK_INT(g_syncs.n, 3); /* the pending barrier: told, inside the stop */
    CHECK(g_syncs.order[2] == 3 && !g_syncs.ok[2]);
    /* Nothing of the cluster keeps the loop alive after the stop. */
    CHECK_INT(wsx_loop_run(loop), 0);
    wsx_loop_free(loop);
    redis_kill(&r);
}

TEST(connect_refused_backoff)
{
    wsx_loop *loop = new_loop();
    states ss = {0};
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.on_state = on_state;
    o.user = &ss;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 200;
    wsx_cluster *cl = cluster_on(loop, free_port(), &o);
    CHECK(pump(&loop, 1, is_down, cl, 2000));
    CHECK_STR(ss.why, "Connection refused");
    pump(&loop, 1, NULL, NULL, 1000);
    wsx_cluster_stats st;
    wsx_cluster_get_stats(cl, &st);
    /* Waits of 50..100 ms, then 100..200 ms: 5 to 12 attempts in 1 s. */
    CHECK(st.failures >= 5 && st.failures <= 13);
    CHECK_INT(st.timeouts, 0);
    CHECK_INT(ss.n, 1); /* one DOWN, not one per attempt */
    CHECK_INT(wsx_cluster_publish(cl, "t", "x", 1, WSX_TEXT, 0), WSX_ECLOSED);
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.not_relayed, 1);
    wsx_cluster_stop(cl);
    CHECK_INT(wsx_loop_run(loop), 0); /* the watchers are freed after an iteration */
    wsx_loop_free(loop);
}

/* A listener that accepts and then never says anything (backlog only). */
static int silent_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

TEST(connect_timeout_silent)
{
    uint16_t port;
    int lfd = silent_listener(&port);
    CHECK(lfd >= 0);
    wsx_loop *loop = new_loop();
    states ss = {0};
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.on_state = on_state;
    o.user = &ss;
    o.connect_timeout_ms = 300;
    wsx_cluster *cl = cluster_on(loop, port, &o);
    uint64_t t0 = now_ms();
    CHECK(pump(&loop, 1, is_down, cl, 3000));
    uint64_t took = now_ms() - t0;
    CHECK(took >= 290 && took < 1500);
    wsx_cluster_stats st;
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.timeouts, 1);
    CHECK(strstr(ss.why, "connect timeout (300 ms)") != NULL);
    wsx_cluster_stop(cl);
    CHECK_INT(wsx_loop_run(loop), 0); /* the watchers are freed after an iteration */
    wsx_loop_free(loop);
    close(lfd);
}

/* A listener that answers every connection with an HTTP error: not RESP. */
static void garbage_accept(wsx_watch *w, int fd, unsigned ev, void *arg)
{
    (void)w;
    (void)ev;
    (void)arg;
    int c = accept(fd, NULL, NULL);
    if (c < 0) return;
    static const char junk[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
    ssize_t n = write(c, junk, sizeof junk - 1);
    (void)n;
    close(c);
}

TEST(garbage_server)
{
    uint16_t port;
    int lfd = silent_listener(&port);
    wsx_loop *loop = new_loop();
    wsx_watch *w = NULL;
    CHECK_INT(wsx_watch_start(loop, lfd, WSX_READABLE, garbage_accept, NULL, &w), 0);
    states ss = {0};
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.on_state = on_state;
    o.user = &ss;
    wsx_cluster *cl = cluster_on(loop, port, &o);
    CHECK(pump(&loop, 1, is_down, cl, 3000));
    wsx_cluster_stats st;
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.timeouts, 0);
    CHECK(st.failures >= 1);
    wsx_cluster_stop(cl);
    wsx_watch_stop(w);
    wsx_loop_run(loop);
    wsx_loop_free(loop);
    close(lfd);
}

/* A paused server: publishes beyond max_pending are refused at once (not queued), and the
 * command timeout takes the cluster down; SIGCONT brings it back. */
TEST(command_timeout_paused)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    wsx_loop *loop = new_loop();
    states ss = {0};
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.on_state = on_state;
    o.user = &ss;
    o.command_timeout_ms = 400;
    o.ping_interval_ms = 100;
    o.max_pending = 5;
    wsx_cluster *cl = cluster_on(loop, r.port, &o);
    CHECK(pump(&loop, 1, is_up, cl, 3000));
    pump(&loop, 1, NULL, NULL, 150); /* a ping and its answer */
    kill(r.pid, SIGSTOP);
    /* A command that will get no reply: its callback says so (NONE) once the connection is
     * dropped. */
    const char *ping[] = {"PING"};
    size_t plen[] = {4};
    reply_seen rs = {0};
    CHECK_INT(wsx_cluster_command(cl, 1, ping, plen, on_reply_seen, &rs), 0);
    int ok = 0, limited = 0;
    for (int i = 0; i < 8; i++) {
        int rc = wsx_cluster_publish(cl, "t", "m", 1, WSX_TEXT, 0);
        ok += rc == 0;
        limited += rc == WSX_ELIMIT;
    }
    wsx_cluster_stats st;
    wsx_cluster_get_stats(cl, &st);
    /* The command and maybe a ping are pending too: they count against the bound. */
    CHECK(ok >= 3 && ok <= 4);
    CHECK_INT(ok + limited, 8);
    CHECK_INT(st.not_relayed, (uint64_t)limited);
    uint64_t t0 = now_ms();
    CHECK(pump(&loop, 1, is_down, cl, 3000));
    uint64_t took = now_ms() - t0;
    CHECK(took >= 350 && took < 1500);
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.timeouts, 1);
    CHECK_INT(st.pending, 0);
    CHECK(strstr(ss.why, "command timeout (400 ms)") != NULL);
    CHECK_INT(rs.n, 1);
    CHECK_INT(rs.type, WSX_CLUSTER_REPLY_NONE);
    kill(r.pid, SIGCONT);
    CHECK(pump(&loop, 1, is_up, cl, 5000));
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.reconnects, 1);
    CHECK_INT(ss.n, 3);
    CHECK_INT(ss.seen[1], WSX_CLUSTER_DOWN);
    CHECK_INT(ss.seen[2], WSX_CLUSTER_UP);
    wsx_cluster_stop(cl);
    CHECK_INT(wsx_loop_run(loop), 0); /* the watchers are freed after an iteration */
    wsx_loop_free(loop);
    redis_kill(&r);
}

/* The server killed and started again on the same port: down, publishes counted as not
 * relayed, up again without anything done by the application. */
TEST(reconnect_after_restart)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    wsx_loop *loop = new_loop();
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.reconnect_max_ms = 300;
    wsx_cluster *cl = cluster_on(loop, r.port, &o);
    CHECK(pump(&loop, 1, is_up, cl, 3000));
    redis_kill(&r);
    CHECK(pump(&loop, 1, is_down, cl, 3000));
    for (int i = 0; i < 10; i++)
        CHECK_INT(wsx_cluster_publish(cl, "t", "m", 1, WSX_TEXT, 0), WSX_ECLOSED);
    pump(&loop, 1, NULL, NULL, 500); /* a few refused attempts */
    CHECK(redis_start(&r));
    CHECK(pump(&loop, 1, is_up, cl, 3000));
    wsx_cluster_stats st;
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.not_relayed, 10);
    CHECK_INT(st.reconnects, 1);
    CHECK(st.failures >= 2);
    CHECK_INT(wsx_cluster_publish(cl, "t", "m", 1, WSX_TEXT, 0), 0);
    wsx_cluster_stop(cl);
    CHECK_INT(wsx_loop_run(loop), 0); /* the watchers are freed after an iteration */
    wsx_loop_free(loop);
    redis_kill(&r);
}

static wsx_cluster *cluster_url(wsx_loop *loop, const char *url, states *ss)
{
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.url = url;
    o.on_state = on_state;
    o.user = ss;
    wsx_cluster *cl = NULL;
    CHECK_INT(wsx_cluster_start(loop, &o, &cl, NULL), 0);
    return cl;
}

/* AUTH with the URL's password (and user), SELECT its database; a wrong password, no
 * password and a database out of range are failures with Redis's words, and the cluster
 * keeps trying. The same through a unix socket. */
TEST(auth_select_unix)
{
    char sock[64];
    snprintf(sock, sizeof sock, "/tmp/wsx-cluster-test-%d.sock", (int)getpid());
    test_redis r = {.extra = {"--requirepass", "s3cret", "--unixsocket", sock}};
    CHECK(redis_start(&r));
    wsx_loop *loop = new_loop();
    char url[128];
    states ss = {0};
    /* URL = pre + (port, or the socket's path when unix) + post */
    struct {
        const char *pre, *post, *why;
        bool unix_socket;
    } up[] = {
        {"redis://:s3cret@127.0.0.1:", "/2", NULL, false},
        {"redis://default:s3cret@127.0.0.1:", "", NULL, false},
        {"unix://:s3cret@", "?db=15", NULL, true},
    };
    for (int i = 0; i < 3; i++) {
        if (up[i].unix_socket)
            snprintf(url, sizeof url, "%s%s%s", up[i].pre, sock, up[i].post);
        else
            snprintf(url, sizeof url, "%s%u%s", up[i].pre, r.port, up[i].post);
        wsx_cluster *cl = cluster_url(loop, url, &ss);
        if (!pump(&loop, 1, is_up, cl, 3000)) TEST_FAIL_("%s: not up: %s", url, ss.why);
        wsx_cluster_stop(cl);
    }
    struct {
        const char *pre, *post, *why;
        bool unix_socket;
    } down[] = {
        {"redis://:wrong@127.0.0.1:", "", "AUTH refused: WRONGPASS", false},
        {"redis://127.0.0.1:", "", "NOAUTH", false},
        {"redis://:s3cret@127.0.0.1:", "/99", "SELECT refused: ERR DB index is out of range",
         false},
        {"unix://", "", "NOAUTH", true},
    };
    for (int i = 0; i < 4; i++) {
        if (down[i].unix_socket)
            snprintf(url, sizeof url, "%s%s%s", down[i].pre, sock, down[i].post);
        else
            snprintf(url, sizeof url, "%s%u%s", down[i].pre, r.port, down[i].post);
        wsx_cluster *cl = cluster_url(loop, url, &ss);
        CHECK(pump(&loop, 1, is_down, cl, 3000));
        if (!strstr(ss.why, down[i].why))
            TEST_FAIL_("%s: %s, expected %s", url, ss.why, down[i].why);
        pump(&loop, 1, NULL, NULL, 300);
        wsx_cluster_stats st;
        wsx_cluster_get_stats(cl, &st);
        CHECK(st.failures >= 2); /* it keeps trying */
        wsx_cluster_stop(cl);
    }
    CHECK_INT(wsx_loop_run(loop), 0);
    wsx_loop_free(loop);
    redis_kill(&r);
    unlink(sock);
}

int main(void)
{
    RUN(url_parse);
    RUN(envelope);
    RUN(start_refuses);
    if (!have_redis()) {
        fprintf(stderr, "note: %s not found, the Redis tests are skipped\n", REDIS_SERVER);
        return test_summary("cluster");
    }
    RUN_T(connect_up);
    RUN_T(connect_refused_backoff);
    RUN_T(connect_timeout_silent);
    RUN_T(garbage_server);
    RUN_T(command_timeout_paused);
    RUN_T(reconnect_after_restart);
    RUN_T(auth_select_unix);
    return test_summary("cluster");
}
