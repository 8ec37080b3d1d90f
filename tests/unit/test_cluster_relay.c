/*
 * src/cluster, the topic relay: two nodes (two loops, each with its hub and its cluster) on
 * one real redis-server. A message published on one node reaches the subscribers of both
 * exactly once, in order; a node subscribes to a topic's channel only while it has local
 * subscribers (checked with PUBSUB NUMSUB on a third, plain connection); topics with any
 * bytes; resubscription after the server restarts. Skipped without redis-server.
 */
#include <hiredis/hiredis.h>

#include "test.h"
#include "net_test.h"
#include "cluster_test.h"

#include "cluster/cluster.h"

/* What one subscriber got. */
typedef struct sink {
    int n;
    char last[64];
    int type;
    int order_errors; /* messages not "m<n>" in sequence */
} sink;

static int deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub;
    sink *k = user;
    char want[32];
    snprintf(want, sizeof want, "m%d", k->n);
    if (m->len != strlen(want) || memcmp(m->data, want, m->len)) k->order_errors++;
    snprintf(k->last, sizeof k->last, "%.*s", (int)(m->len < 63 ? m->len : 63),
             (const char *)m->data);
    k->type = m->type;
    k->n++;
    return 1;
}

typedef struct node {
    wsx_loop *loop;
    wsx_hub *hub;
    wsx_cluster *cl;
} node;

static void node_start(node *nd, uint16_t port, const char *topic_prefix)
{
    nd->loop = new_loop();
    nd->hub = wsx_hub_of(nd->loop);
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.topic_prefix = topic_prefix;
    o.reconnect_max_ms = 300;
    nd->cl = cluster_on(nd->loop, port, &o);
}

static void node_stop(node *nd)
{
    wsx_cluster_stop(nd->cl);
    CHECK_INT(wsx_loop_run(nd->loop), 0); /* the watchers are freed after an iteration */
    wsx_loop_free(nd->loop);
}

/* What a publishing application does: deliver locally, then relay (wsx_publish does both
 * through the loop's publish hook when it goes through a server). */
static int publish(node *nd, const char *topic, const char *text, int type)
{
    wsx_hub_publish(nd->hub, topic, text, strlen(text), type, NULL, NULL);
    return wsx_cluster_publish(nd->cl, topic, text, strlen(text), type, 0);
}

typedef struct two {
    node *a, *b;
} two;

static bool both_up(void *arg)
{
    two *t = arg;
    return is_up(t->a->cl) && is_up(t->b->cl);
}

typedef struct count_at_least {
    sink *k;
    int n;
} count_at_least;

static bool got(void *arg)
{
    count_at_least *c = arg;
    return c->k->n >= c->n;
}

/* PUBSUB NUMSUB of a topic's channel, on a plain connection. */
static long long numsub(uint16_t port, const char *topic, size_t len)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        if (c) redisFree(c);
        return -1;
    }
    char ch[2048];
    int n = snprintf(ch, sizeof ch, "wsx:{");
    memcpy(ch + n, topic, len);
    ch[n + (int)len] = '}';
    redisReply *r = redisCommand(c, "PUBSUB NUMSUB %b", ch, (size_t)n + len + 1);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) v = r->element[1]->integer;
    if (r) freeReplyObject(r);
    redisFree(c);
    return v;
}

typedef struct numsub_is {
    uint16_t port;
    const char *topic;
    long long want;
} numsub_is;

static bool numsub_cond(void *arg)
{
    numsub_is *q = arg;
    return numsub(q->port, q->topic, strlen(q->topic)) == q->want;
}

TEST(relay_exactly_once)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    node a, b;
    node_start(&a, r.port, "room:");
    node_start(&b, r.port, "room:");
    wsx_loop *loops[2] = {a.loop, b.loop};
    two t = {&a, &b};
    CHECK(pump(loops, 2, both_up, &t, 3000));
    sink ka = {0}, kb = {0}, kb2 = {0};
    wsx_sub *sa, *sb, *sb2;
    /* Nobody on b yet: b is not subscribed and receives nothing. */
    CHECK_INT(wsx_hub_subscribe(a.hub, "room:x", deliver, &ka, &sa), 0);
    numsub_is q = {r.port, "room:x", 1};
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    CHECK_INT(wsx_hub_subscribe(b.hub, "room:x", deliver, &kb, &sb), 0);
    CHECK_INT(wsx_hub_subscribe(b.hub, "room:x", deliver, &kb2, &sb2), 0);
    q.want = 2; /* one channel subscription per node, however many local subscribers */
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    char text[32];
    for (int i = 0; i < 200; i++) {
        snprintf(text, sizeof text, "m%d", i);
        CHECK_INT(publish(i % 2 ? &b : &a, "room:x", text, WSX_TEXT), 0);
    }
    count_at_least c = {&kb2, 200};
    CHECK(pump(loops, 2, got, &c, 3000));
    pump(loops, 2, NULL, NULL, 200); /* time for duplicates to show */
    /* Every subscriber on both nodes: each message once, in order... within a node's own
     * publishes; across two publishers the interleaving is Redis's, checked per sender: */
    CHECK_INT(ka.n, 200);
    CHECK_INT(kb.n, 200);
    CHECK_INT(kb2.n, 200);
    wsx_cluster_stats sta, stb;
    wsx_cluster_get_stats(a.cl, &sta);
    wsx_cluster_get_stats(b.cl, &stb);
    CHECK_INT(sta.relayed, 100);
    CHECK_INT(stb.relayed, 100);
    CHECK_INT(sta.own, 100);
    CHECK_INT(stb.own, 100);
    CHECK_INT(sta.received, 100);
    CHECK_INT(stb.received, 100);
    CHECK_INT(sta.bad + stb.bad, 0);
    CHECK_INT(sta.channels, 1);
    /* Unsubscribe on last: b keeps the channel while one subscriber is left. */
    wsx_hub_unsubscribe(sb);
    pump(loops, 2, NULL, NULL, 100);
    CHECK_INT(numsub(r.port, "room:x", 6), 2);
    wsx_hub_unsubscribe(sb2);
    q.want = 1;
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    wsx_cluster_get_stats(b.cl, &stb);
    CHECK_INT(stb.channels, 0);
    /* Published by a now: b (no subscriber) receives nothing. */
    CHECK_INT(publish(&a, "room:x", "late", WSX_TEXT), 0);
    pump(loops, 2, NULL, NULL, 200);
    wsx_cluster_get_stats(b.cl, &stb);
    CHECK_INT(stb.received, 100);
    /* Topics outside the prefix are not relayed. */
    CHECK_INT(wsx_cluster_publish(a.cl, "other", "x", 1, WSX_TEXT, 0), WSX_ENOTFOUND);
    wsx_hub_unsubscribe(sa);
    q.want = 0;
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    node_stop(&a);
    node_stop(&b);
    redis_kill(&r);
}

/* One node's messages arrive at the other in the order they were published. */
TEST(relay_order_binary_topics)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    node a, b;
    node_start(&a, r.port, NULL);
    node_start(&b, r.port, NULL);
    wsx_loop *loops[2] = {a.loop, b.loop};
    two t = {&a, &b};
    CHECK(pump(loops, 2, both_up, &t, 3000));
    /* Every byte but NUL, braces included: the channel maps back to the same topic. */
    char topic[256];
    for (int i = 1; i < 256; i++)
        topic[i - 1] = (char)i;
    topic[255] = '\0';
    sink kb = {0};
    wsx_sub *sb;
    CHECK_INT(wsx_hub_subscribe(b.hub, topic, deliver, &kb, &sb), 0);
    wsx_sub *sb2;
    sink kb2 = {0};
    CHECK_INT(wsx_hub_subscribe(b.hub, "}{", deliver, &kb2, &sb2), 0);
    numsub_is q = {r.port, topic, 1};
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    char text[32];
    for (int i = 0; i < 500; i++) {
        snprintf(text, sizeof text, "m%d", i);
        CHECK_INT(publish(&a, topic, text, WSX_BINARY), 0);
    }
    count_at_least c = {&kb, 500};
    CHECK(pump(loops, 2, got, &c, 3000));
    CHECK_INT(kb.n, 500);
    CHECK_INT(kb.order_errors, 0);
    CHECK_INT(kb.type, WSX_BINARY);
    CHECK_INT(kb2.n, 0);
    CHECK_INT(publish(&a, "}{", "m0", WSX_TEXT), 0);
    c.k = &kb2;
    c.n = 1;
    CHECK(pump(loops, 2, got, &c, 2000));
    CHECK_INT(kb.n, 500);
    CHECK_STR(kb2.last, "m0");
    CHECK_INT(kb2.type, WSX_TEXT);
    wsx_hub_unsubscribe(sb);
    wsx_hub_unsubscribe(sb2);
    node_stop(&a);
    node_stop(&b);
    redis_kill(&r);
}

/* The server restarts with nothing: both nodes come back and subscribe again to what their
 * local subscribers need; delivery across nodes resumes. */
TEST(resubscribe_after_restart)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    node a, b;
    node_start(&a, r.port, NULL);
    node_start(&b, r.port, NULL);
    wsx_loop *loops[2] = {a.loop, b.loop};
    two t = {&a, &b};
    CHECK(pump(loops, 2, both_up, &t, 3000));
    sink kb = {0}, ka = {0};
    wsx_sub *sb, *sa;
    CHECK_INT(wsx_hub_subscribe(b.hub, "t1", deliver, &kb, &sb), 0);
    redis_kill(&r);
    CHECK(pump(loops, 2, is_down, b.cl, 3000));
    /* Subscribed while down: joins the set, subscribed on reconnect. */
    CHECK_INT(wsx_hub_subscribe(a.hub, "t2", deliver, &ka, &sa), 0);
    CHECK_INT(publish(&a, "t1", "lost", WSX_TEXT), WSX_ECLOSED);
    CHECK(redis_start(&r));
    CHECK(pump(loops, 2, both_up, &t, 5000));
    numsub_is q = {r.port, "t1", 1};
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    q.topic = "t2";
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    CHECK_INT(publish(&a, "t1", "m0", WSX_TEXT), 0);
    CHECK_INT(publish(&b, "t2", "m0", WSX_TEXT), 0);
    count_at_least c = {&kb, 1};
    CHECK(pump(loops, 2, got, &c, 2000));
    c.k = &ka;
    CHECK(pump(loops, 2, got, &c, 2000));
    CHECK_STR(kb.last, "m0");
    CHECK_STR(ka.last, "m0");
    wsx_cluster_stats st;
    wsx_cluster_get_stats(a.cl, &st);
    CHECK_INT(st.not_relayed, 1);
    CHECK_INT(st.reconnects, 1);
    wsx_hub_unsubscribe(sa);
    wsx_hub_unsubscribe(sb);
    node_stop(&a);
    node_stop(&b);
    redis_kill(&r);
}

/* Redis drops the subscription connection alone (CLIENT KILL TYPE pubsub, what its output
 * limit for slow subscribers does): the node reconnects both and subscribes again. */
TEST(subscriber_killed)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    node a, b;
    node_start(&a, r.port, NULL);
    node_start(&b, r.port, NULL);
    wsx_loop *loops[2] = {a.loop, b.loop};
    two t = {&a, &b};
    CHECK(pump(loops, 2, both_up, &t, 3000));
    sink kb = {0};
    wsx_sub *sb;
    CHECK_INT(wsx_hub_subscribe(b.hub, "k", deliver, &kb, &sb), 0);
    numsub_is q = {r.port, "k", 1};
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    redisContext *c = redisConnect("127.0.0.1", r.port);
    redisReply *rr = c && !c->err ? redisCommand(c, "CLIENT KILL TYPE pubsub") : NULL;
    CHECK(rr && rr->type == REDIS_REPLY_INTEGER && rr->integer == 2);
    if (rr) freeReplyObject(rr);
    if (c) redisFree(c);
    CHECK(pump(loops, 2, is_down, b.cl, 2000));
    CHECK(pump(loops, 2, both_up, &t, 3000));
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    CHECK_INT(publish(&a, "k", "m0", WSX_TEXT), 0);
    count_at_least cc = {&kb, 1};
    CHECK(pump(loops, 2, got, &cc, 2000));
    wsx_cluster_stats st;
    wsx_cluster_get_stats(b.cl, &st);
    CHECK_INT(st.reconnects, 1);
    CHECK_INT(st.failures, 1);
    wsx_hub_unsubscribe(sb);
    node_stop(&a);
    node_stop(&b);
    redis_kill(&r);
}

/* A cluster started on a hub that already has subscribers subscribes their channels; a
 * stopped cluster gives the hooks back. */
TEST(adopt_and_stop)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    wsx_loop *loop = new_loop();
    wsx_hub *hub = wsx_hub_of(loop);
    sink k = {0};
    wsx_sub *s;
    CHECK_INT(wsx_hub_subscribe(hub, "early", deliver, &k, &s), 0);
    wsx_cluster *cl = cluster_on(loop, r.port, NULL);
    CHECK(pump(&loop, 1, is_up, cl, 3000));
    numsub_is q = {r.port, "early", 1};
    CHECK(pump(&loop, 1, numsub_cond, &q, 2000));
    wsx_cluster_stop(cl);
    q.want = 0;
    CHECK(pump(&loop, 1, numsub_cond, &q, 2000));
    wsx_hub_unsubscribe(s); /* no hook left to call */
    CHECK_INT(wsx_loop_run(loop), 0);
    wsx_loop_free(loop);
    redis_kill(&r);
}

/* Counts held with wsx_cluster_subscribe() keep the channel with or without hub subscribers;
 * messages on it reach the hub's subscribers. */
TEST(explicit_counts)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    node a, b;
    node_start(&a, r.port, "room:");
    node_start(&b, r.port, "room:");
    wsx_loop *loops[2] = {a.loop, b.loop};
    two t = {&a, &b};
    CHECK(pump(loops, 2, both_up, &t, 3000));
    CHECK_INT(wsx_cluster_subscribe(b.cl, "other"), WSX_ENOTFOUND);
    CHECK_INT(wsx_cluster_unsubscribe(b.cl, "room:y"), WSX_ENOTFOUND);
    CHECK_INT(wsx_cluster_subscribe(b.cl, "room:y"), 0);
    CHECK_INT(wsx_cluster_subscribe(b.cl, "room:y"), 0);
    numsub_is q = {r.port, "room:y", 1};
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    sink kb = {0};
    wsx_sub *sb;
    CHECK_INT(wsx_hub_subscribe(b.hub, "room:y", deliver, &kb, &sb), 0);
    CHECK_INT(publish(&a, "room:y", "m0", WSX_TEXT), 0);
    count_at_least c = {&kb, 1};
    CHECK(pump(loops, 2, got, &c, 2000));
    wsx_hub_unsubscribe(sb);
    CHECK_INT(wsx_cluster_unsubscribe(b.cl, "room:y"), 0);
    pump(loops, 2, NULL, NULL, 100);
    CHECK_INT(numsub(r.port, "room:y", 6), 1); /* one count left */
    wsx_cluster_stats st;
    wsx_cluster_get_stats(b.cl, &st);
    CHECK_INT(st.channels, 1);
    CHECK_INT(wsx_cluster_unsubscribe(b.cl, "room:y"), 0);
    q.want = 0;
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    CHECK_INT(wsx_cluster_unsubscribe(b.cl, "room:y"), WSX_ENOTFOUND);
    node_stop(&a);
    node_stop(&b);
    redis_kill(&r);
}

/* on_message sees who published: the node id, its sequence number, the tag. */
typedef struct seen {
    int n;
    wsx_cluster_msg last;
    char topic[32], data[32];
} seen;

static void on_msg(wsx_cluster *cl, const wsx_cluster_msg *m, void *user)
{
    (void)cl;
    seen *s = user;
    s->n++;
    s->last = *m;
    snprintf(s->topic, sizeof s->topic, "%s", m->topic);
    snprintf(s->data, sizeof s->data, "%.*s", (int)m->len, (const char *)m->data);
}

static bool seen_one(void *arg)
{
    return ((seen *)arg)->n >= 1;
}

TEST(on_message_fields)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    node a;
    node_start(&a, r.port, NULL);
    wsx_loop *lb = new_loop();
    seen sn = {0};
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.on_message = on_msg;
    o.user = &sn;
    wsx_cluster *cb = cluster_on(lb, r.port, &o);
    wsx_loop *loops[2] = {a.loop, lb};
    sink k = {0};
    wsx_sub *s;
    CHECK_INT(wsx_hub_subscribe(wsx_hub_of(lb), "tt", deliver, &k, &s), 0);
    CHECK(pump(loops, 2, is_up, cb, 3000));
    CHECK(pump(loops, 2, is_up, a.cl, 3000));
    numsub_is q = {r.port, "tt", 1};
    CHECK(pump(loops, 2, numsub_cond, &q, 2000));
    CHECK_INT(wsx_cluster_publish(a.cl, "tt", "hi", 2, WSX_BINARY, 9), 0);
    CHECK(pump(loops, 2, seen_one, &sn, 2000));
    wsx_cluster_stats st;
    wsx_cluster_get_stats(a.cl, &st);
    CHECK_INT(sn.n, 1);
    CHECK_STR(sn.topic, "tt");
    CHECK_STR(sn.data, "hi");
    CHECK_INT(sn.last.type, WSX_BINARY);
    CHECK(sn.last.tag == 9 && sn.last.node == st.node_id && sn.last.seq == 1);
    CHECK_INT(k.n, 0); /* on_message instead of the hub */
    wsx_hub_unsubscribe(s);
    wsx_cluster_stop(cb);
    CHECK_INT(wsx_loop_run(lb), 0);
    wsx_loop_free(lb);
    node_stop(&a);
    redis_kill(&r);
}

/* What a hostile or confused publisher on the same Redis can send to a topic's channel: not
 * an envelope, another version, a truncated head, a payload over max_message, text that is
 * not UTF-8, this node's own id. Each is dropped and counted; valid ones from another node
 * (the bad UTF-8 as binary, then a text) are delivered. */
static void raw_publish(uint16_t port, const char *topic, const void *env, size_t len)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    char ch[256];
    int n = snprintf(ch, sizeof ch, "wsx:{%s}", topic);
    redisReply *r = c && !c->err ? redisCommand(c, "PUBLISH %b %b", ch, (size_t)n, env, len) : NULL;
    if (r) freeReplyObject(r);
    if (c) redisFree(c);
}

TEST(hostile_envelopes)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    wsx_loop *loop = new_loop();
    wsx_hub *hub = wsx_hub_of(loop);
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.max_message = 1000;
    wsx_cluster *cl = cluster_on(loop, r.port, &o);
    CHECK(pump(&loop, 1, is_up, cl, 3000));
    sink k = {0};
    wsx_sub *s;
    CHECK_INT(wsx_hub_subscribe(hub, "t", deliver, &k, &s), 0);
    numsub_is q = {r.port, "t", 1};
    CHECK(pump(&loop, 1, numsub_cond, &q, 2000));
    wsx_cluster_stats st;
    wsx_cluster_get_stats(cl, &st);
    static uint8_t env[WSX__ENV_HEAD + 2000];
    raw_publish(r.port, "t", "hello", 5);
    wsx__env_head(env, 42, 1, 0, WSX_TEXT);
    env[1] = 2; /* a later version */
    raw_publish(r.port, "t", env, WSX__ENV_HEAD + 2);
    wsx__env_head(env, 42, 1, 0, WSX_TEXT);
    raw_publish(r.port, "t", env, WSX__ENV_HEAD - 1);
    memset(env + WSX__ENV_HEAD, 'x', 2000);
    raw_publish(r.port, "t", env, WSX__ENV_HEAD + 1001);
    wsx__env_head(env, 42, 1, 0, WSX_TEXT);
    memcpy(env + WSX__ENV_HEAD, "\xc3\x28", 2); /* text that is not UTF-8 */
    raw_publish(r.port, "t", env, WSX__ENV_HEAD + 2);
    wsx__env_head(env, 42, 1, 0, WSX_BINARY); /* the same bytes as binary: delivered */
    raw_publish(r.port, "t", env, WSX__ENV_HEAD + 2);
    wsx__env_head(env, st.node_id, 1, 0, WSX_TEXT); /* this node's id: taken as its own */
    memcpy(env + WSX__ENV_HEAD, "m0", 2);
    raw_publish(r.port, "t", env, WSX__ENV_HEAD + 2);
    wsx__env_head(env, 42, 1, 7, WSX_TEXT);
    raw_publish(r.port, "t", env, WSX__ENV_HEAD + 2);
    count_at_least c = {&k, 2};
    CHECK(pump(&loop, 1, got, &c, 2000));
    pump(&loop, 1, NULL, NULL, 100);
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(k.n, 2);
    CHECK_STR(k.last, "m0");
    CHECK_INT(k.type, WSX_TEXT);
    CHECK_INT(st.bad, 5);
    CHECK_INT(st.own, 1);
    CHECK_INT(st.received, 2);
    CHECK_INT(st.state, WSX_CLUSTER_UP);
    wsx_hub_unsubscribe(s);
    wsx_cluster_stop(cl);
    CHECK_INT(wsx_loop_run(loop), 0);
    wsx_loop_free(loop);
    redis_kill(&r);
}

/* The bounds on what waits for Redis: bytes not yet written (one iteration's publishes stay
 * in hiredis' buffer until the loop writes them), and the largest message. */
TEST(publish_bounds)
{
    test_redis r = {0};
    CHECK(redis_start(&r));
    wsx_loop *loop = new_loop();
    wsx_cluster_opts o = wsx_cluster_defaults();
    o.max_pending_bytes = 64 << 10;
    o.max_message = 16 << 10;
    wsx_cluster *cl = cluster_on(loop, r.port, &o);
    CHECK(pump(&loop, 1, is_up, cl, 3000));
    static char big[20 << 10];
    memset(big, 'y', sizeof big);
    CHECK_INT(wsx_cluster_publish(cl, "t", big, (16 << 10) + 1, WSX_TEXT, 0), WSX_ETOOBIG);
    int ok = 0, limited = 0;
    for (int i = 0; i < 10; i++) {
        int rc = wsx_cluster_publish(cl, "t", big, 10 << 10, WSX_TEXT, 0);
        ok += rc == 0;
        limited += rc == WSX_ELIMIT;
    }
    CHECK_INT(ok, 6); /* 6 x (10 KiB + head) fit in 64 KiB, the 7th would not */
    CHECK_INT(limited, 4);
    wsx_cluster_stats st;
    wsx_cluster_get_stats(cl, &st);
    CHECK_INT(st.not_relayed, 4);
    CHECK_INT(st.relayed, 6);
    pump(&loop, 1, NULL, NULL, 100); /* written, answered */
    CHECK_INT(wsx_cluster_publish(cl, "t", big, 10 << 10, WSX_TEXT, 0), 0);
    wsx_cluster_stop(cl);
    CHECK_INT(wsx_loop_run(loop), 0);
    wsx_loop_free(loop);
    redis_kill(&r);
}

int main(void)
{
    if (!have_redis()) {
        fprintf(stderr, "note: %s not found, the Redis tests are skipped\n", REDIS_SERVER);
        return test_summary("cluster_relay");
    }
    RUN_T(relay_exactly_once);
    RUN_T(relay_order_binary_topics);
    RUN_T(resubscribe_after_restart);
    RUN_T(subscriber_killed);
    RUN_T(adopt_and_stop);
    RUN_T(explicit_counts);
    RUN_T(hostile_envelopes);
    RUN_T(on_message_fields);
    RUN_T(publish_bounds);
    return test_summary("cluster_relay");
}
