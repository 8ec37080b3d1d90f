/*
 * Socket.IO broadcasts across nodes (src/sio/cluster.c) on one real redis-server: the bytes a
 * broadcast publishes (the @socket.io/redis-adapter 8.x format, byte for byte but the uid),
 * its channel, a message of another node delivered to the scripted sessions (sio_fake.h),
 * binary, own messages skipped, hostile messages dropped and counted, Redis down. Skipped
 * without redis-server.
 */
#include "test.h"
#include "net_test.h"
#include "cluster_test.h"

#include "sio_fake.h"

/* What the watcher (a second cluster, PSUBSCRIBE socket.io#*) saw last. */
typedef struct seen_msg {
    int n;
    char ch[128];
    uint8_t data[512];
    size_t len;
} seen_msg;

static void watch(wsx_cluster *cl, const char *ch, size_t chlen, const uint8_t *data, size_t len,
                  void *user)
{
    (void)cl;
    seen_msg *s = user;
    s->n++;
    snprintf(s->ch, sizeof s->ch, "%.*s", (int)chlen, ch);
    s->len = len < sizeof s->data ? len : sizeof s->data;
    memcpy(s->data, data, s->len);
}

typedef struct ctx {
    wsx_loop *loop;
    wsx_cluster *a, *w;
    seen_msg *seen;
    int want;
    wsx_sio *io;
    uint64_t bad, received;
} ctx;

static bool both_up(void *arg)
{
    ctx *c = arg;
    return is_up(c->a) && is_up(c->w);
}

static bool seen_n(void *arg)
{
    ctx *c = arg;
    return c->seen->n >= c->want;
}

static bool stats_reached(void *arg)
{
    ctx *c = arg;
    wsx_sio_cluster_stats st;
    wsx_sio_get_cluster_stats(c->io, &st);
    return st.bad >= c->bad && st.received >= c->received;
}

static void ignore(wsx_cluster *cl, const wsx_cluster_reply *r, void *arg)
{
    (void)cl, (void)r, (void)arg;
}

static void publish(wsx_cluster *cl, const char *ch, const void *data, size_t len)
{
    const char *argv[3] = {"PUBLISH", ch, data};
    size_t lens[3] = {7, strlen(ch), len};
    CHECK_INT(wsx_cluster_command(cl, 3, argv, lens, ignore, NULL), 0);
}

/* The packet in the fake's log that contains needle (freed), or false. */
static bool got(fake_sess *f, const char *needle)
{
    for (int i = 0; i < f->n_log; i++)
        if (strstr(f->log[i], needle)) return true;
    return false;
}

TEST(cluster_broadcasts)
{
    (void)fake_feed_bin;
    test_redis r = {0};
    CHECK(redis_start(&r));
    wsx_loop *loop = new_loop();
    seen_msg seen = {0};
    ctx c = {.loop = loop, .seen = &seen};
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.topic_prefix = "none:";
    o.reconnect_max_ms = 200;
    c.a = cluster_on(loop, r.port, &o);
    c.w = cluster_on(loop, r.port, &o);
    CHECK(pump(&loop, 1, both_up, &c, 5000));

    wsx_sio *io = NULL;
    CHECK_INT(wsx__sio_new(loop, NULL, &fake_ops, &io), 0);
    c.io = io;
    wsx_sio_nsp *root = wsx_sio_of(io, "/");
    CHECK_INT(wsx_sio_set_cluster(io, c.a, "bad#key"), WSX_EINVAL);
    CHECK_INT(wsx_sio_set_cluster(io, c.a, "a*"), WSX_EINVAL);
    CHECK_INT(wsx_sio_set_cluster(io, c.a, NULL), 0);
    CHECK_INT(wsx_cluster_psubscribe(c.w, "socket.io#*", watch, &seen), 0);
    CHECK_INT(wsx_cluster_psubscribe(c.w, "socket.io#*", watch, &seen), WSX_EINVAL);
    pump(&loop, 1, NULL, NULL, 200); /* the PSUBSCRIBEs land */

    fake_sess f, g;
    fake_open(io, &f);
    fake_feed(&f, "0");
    fake_open(io, &g);
    fake_feed(&g, "0");
    wsx_sio_socket *s = root->sockets->nnext; /* newest first: f's */
    CHECK_INT(wsx_sio_join(s, "r"), 0);
    fake_clear(&f);
    fake_clear(&g);

    /* A broadcast to one room: delivered here, and published once on KEY#NSP#ROOM# in the
     * adapter's format: [uid, {type: 2, data, nsp}, {rooms, except, flags}]. */
    const char *rooms[] = {"r"};
    wsx_sio_to to = {.nsp = root, .rooms = rooms, .n_rooms = 1};
    CHECK_INT(wsx_sio_broadcast(&to, "ev", json_pack("[i]", 1), NULL, 0), 1);
    CHECK(got(&f, "2[\"ev\",1]"));
    CHECK_INT(g.n_log, 0);
    c.want = 1;
    CHECK(pump(&loop, 1, seen_n, &c, 3000));
    CHECK_STR(seen.ch, "socket.io#/#r#");
    static const uint8_t tail[] = {
        0x83, 0xa4, 't', 'y', 'p', 'e',  0x02, 0xa4, 'd',  'a',  't', 'a', 0x92, 0xa2, 'e',  'v',
        0x01, 0xa3, 'n', 's', 'p', 0xa1, '/',  0x83, 0xa5, 'r',  'o', 'o', 'm',  's',  0x91, 0xa1,
        'r',  0xa6, 'e', 'x', 'c', 'e',  'p',  't',  0x90, 0xa5, 'f', 'l', 'a',  'g',  's',  0x80};
    CHECK_INT(seen.len, 2 + 6 + sizeof tail);
    CHECK(seen.data[0] == 0x93 && seen.data[1] == 0xa6);
    CHECK(seen.len == 8 + sizeof tail && memcmp(seen.data + 8, tail, sizeof tail) == 0);
    /* To all, the sender excluded (as its own room), volatile: KEY#NSP#. */
    wsx_sio_to all = {.nsp = root, .except_socket = s, .volatile_ = true};
    CHECK_INT(wsx_sio_broadcast(&all, "ev2", NULL, NULL, 0), 1);
    c.want = 2;
    CHECK(pump(&loop, 1, seen_n, &c, 3000));
    CHECK_STR(seen.ch, "socket.io#/#");
    char exc[64];
    snprintf(exc, sizeof exc,
             "\xa6"
             "except\x91\xb4%s",
             wsx_sio_id(s));
    CHECK(memmem(seen.data, seen.len, exc, strlen(exc)) != NULL);
    CHECK(memmem(seen.data, seen.len,
                 "\xa5"
                 "flags\x81\xa8volatile\xc3",
                 17) != NULL);
    fake_clear(&f);
    fake_clear(&g);

    /* Another node's (the emitter's uid) to room r, with a binary argument: delivered to f
     * only, as a binary event with its attachment; unknown option fields ignored. */
    static const uint8_t emitted[] = {
        0x93, 0xa7, 'e',  'm',  'i',  't', 't',  'e',  'r',  0x83, 0xa4, 't',  'y',
        'p',  'e',  0x02, 0xa4, 'd',  'a', 't',  'a',  0x93, 0xa1, 'x',  0xc0, 0xc4,
        0x02, 0x00, 0xff, 0xa3, 'n',  's', 'p',  0xa1, '/',  0x84, 0xa5, 'r',  'o',
        'o',  'm',  's',  0x91, 0xa1, 'r', 0xa6, 'e',  'x',  'c',  'e',  'p',  't',
        0x90, 0xa5, 'f',  'l',  'a',  'g', 's',  0x80, 0xa1, 'z',  0xd4, 0x00, 0x00};
    publish(c.w, "socket.io#/#r#", emitted, sizeof emitted);
    c.received = 1;
    CHECK(pump(&loop, 1, stats_reached, &c, 3000));
    CHECK(got(&f, "51-[\"x\",null,{\"_placeholder\":true,\"num\":0}]"));
    CHECK(got(&f, "B00ff"));
    CHECK_INT(g.n_log, 0);
    fake_clear(&f);

    /* Hostile or foreign messages: each dropped and counted, nothing delivered. */
#define B(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof lit - 1                                                                        \
    }
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        B("\xc1"),
        B("\xdd\x00\xff\xff\xff"), /* an array of 16M elements in 5 bytes */
        B("\xdf\xff\xff\xff\xff"), /* a map of 4G pairs */
        B("\xdb\xff\xff\xff\xff"
          "abc"),                           /* a string longer than the message */
        B("\x93\xa1x\x80\x80\x01"),         /* trailing bytes */
        B("\x93\xa1x\x81\xa4type\x02\x80"), /* no data */
        B("\x93\xa1x\x81\xa4type\x03\x80"), /* not an EVENT */
        B("\x92\xa1x\x80"),                 /* two elements */
        B("\x93\x01\x82\xa4type\x02\xa4"
          "data\x91\xa4ping\x80"), /* well formed */
        B("\x93\xa1x\x82\xa4type\x02\xa4"
          "data\x91\x01\x80"), /* event not a string */
        B("\x93\xa1x\x82\xa4type\x02\xa4"
          "data\x91\xa2\xff\xfe\x80"), /* not UTF-8 */
        B(""),
    };
    wsx_sio_cluster_stats st0, st;
    wsx_sio_get_cluster_stats(io, &st0);
    static char big[1000001];
    memset(big, 0xc0, sizeof big); /* an array of 999996 nils: well formed, too big */
    memcpy(big, "\xdd\x00\x0f\x42\x3c", 5);
    char deep[100];
    memset(deep, 0x91, sizeof deep); /* 100 arrays deep, the last one never closed */
    publish(c.w, "socket.io#/#", deep, sizeof deep);
    publish(c.w, "socket.io#/#", big, sizeof big); /* above max_payload (1000000) */
    size_t n_bad = 2;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        publish(c.w, "socket.io#/#", bad[i].bytes, bad[i].len);
        /* The ninth is well formed (a number as uid is not ours): delivered, "ping" is not
         * reserved. */
        if (i != 8) n_bad++;
    }
    c.bad = st0.bad + n_bad;
    c.received = st0.received + 1;
    CHECK(pump(&loop, 1, stats_reached, &c, 3000));
    pump(&loop, 1, NULL, NULL, 100);
    wsx_sio_get_cluster_stats(io, &st);
    CHECK_INT(st.bad, st0.bad + n_bad);
    CHECK_INT(st.received, st0.received + 1);
    CHECK_INT(st.relayed, 2);
    CHECK_INT(st.own, 2);
    CHECK(got(&f, "2[\"ping\"]") && got(&g, "2[\"ping\"]"));
    fake_clear(&f);
    fake_clear(&g);

    /* Redis down: local delivery goes on; the broadcast is counted as not relayed. */
    redis_kill(&r);
    CHECK(pump(&loop, 1, is_down, c.a, 5000));
    CHECK_INT(wsx_sio_broadcast(&to, "down", NULL, NULL, 0), 1);
    CHECK(got(&f, "2[\"down\"]"));
    wsx_sio_get_cluster_stats(io, &st);
    CHECK_INT(st.not_relayed, 1);

    fake_end(&f, "transport close");
    fake_end(&g, "transport close");
    wsx__sio_free_core(io);
    fake_clear(&f);
    fake_clear(&g);
    wsx_cluster_stop(c.a);
    wsx_cluster_stop(c.w);
    wsx_loop_run(loop);
    wsx_loop_free(loop);
}

int main(void)
{
    if (!have_redis()) {
        fprintf(stderr, "note: %s not found, the Redis tests are skipped\n", REDIS_SERVER);
        return test_summary("sio_cluster");
    }
    RUN_T(cluster_broadcasts);
    return test_summary("sio_cluster");
}
