/*
 * src/chat through its API without the model: SSE listeners (replay after an id, rooms held
 * by a listener are not evicted) and the per-address buckets. The model-based test is
 * test_chat.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test.h"
#include "chat_test.h"
#include "wsx.h"

static void count_one(void *listener, void *arg)
{
    (void)listener;
    ++*(int *)arg;
}

/* SSE listeners: replay after an id, and rooms held by a listener are not evicted. */
TEST(listeners)
{
    memset(F, 0, sizeof F);
    for (int i = 0; i < NCONN; i++)
        F[i].sub = -1;
    wsx_chat_opts o = chat_test_opts(3, 2);
    wsx_chat *chat = NULL;
    CHECK_INT(wsx_chat_new(&o, &ops, &chat), 0);
    wsx_chat_listener *l0 = NULL, *l1 = NULL, *l2 = NULL;
    CHECK_INT(wsx_chat_listener_add(chat, "a b", &sse_tags[0], &l0), WSX_EINVAL);
    CHECK_INT(wsx_chat_listener_add(chat, "r1", &sse_tags[0], &l0), 0);
    F[0].open = true;
    F[0].cc = wsx_chat_conn_open(chat, &F[0], NULL);
    send_text(chat, 0, "{\"type\":\"join\",\"room\":\"r1\",\"name\":\"ann\"}");
    for (int k = 1; k <= 4; k++)
        send_text(chat, 0, "{\"type\":\"message\",\"text\":\"t%d\"}", k);
    /* The history holds 3: ids 2..4; after id 2 that is 3 and 4. */
    sse_log[0] = '\0';
    CHECK_INT(wsx_chat_listener_add(chat, "r1", &sse_tags[1], &l1), 0);
    wsx_chat_listener_replay(chat, l1, 2);
    CHECK_STR(sse_log, "L1:3:message|r1|ann|t3|3 L1:4:message|r1|ann|t4|4");
    sse_log[0] = '\0';
    wsx_chat_listener_replay(chat, l1, 0);
    CHECK_STR(sse_log,
              "L1:2:message|r1|ann|t2|2 L1:3:message|r1|ann|t3|3 L1:4:message|r1|ann|t4|4");
    int n = 0;
    wsx_chat_listeners_each(chat, "r1", count_one, &n);
    CHECK_INT(n, 2);
    /* Two rooms at most: r1 (a member, listeners) and r2 (a listener); no room is idle. */
    CHECK_INT(wsx_chat_listener_add(chat, "r2", &sse_tags[2], &l2), 0);
    wsx_chat_listener *l3 = NULL;
    CHECK_INT(wsx_chat_listener_add(chat, "r3", &sse_tags[3], &l3), WSX_ELIMIT);
    send_text(chat, 0, "{\"type\":\"join\",\"room\":\"r3\",\"name\":\"ann\"}");
    CHECK_STR(F[0].got[F[0].n_got - 1], "error|bad_room");
    /* r2's listener goes: r2 (no history) is freed, and r3 can be made. */
    wsx_chat_listener_remove(chat, l2);
    CHECK_INT(wsx_chat_listener_add(chat, "r3", &sse_tags[3], &l3), 0);
    wsx_chat_stats st;
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.rooms, 2);
    CHECK_INT(st.listeners, 3);
    n = 0;
    wsx_chat_listeners_all(chat, count_one, &n);
    CHECK_INT(n, 3);
    wsx_chat_listener_remove(chat, l3);
    wsx_chat_listener_remove(chat, l0);
    wsx_chat_conn_close(chat, F[0].cc);
    F[0].open = false;
    /* r1 is kept for its history while l1 listens, and after. */
    wsx_chat_listener_remove(chat, l1);
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.rooms, 1);
    CHECK_INT(st.listeners, 0);
    for (size_t k = 0; k < F[0].n_got; k++)
        free(F[0].got[k]);
    F[0].n_got = 0;
    wsx_chat_free(chat);
}

/* Drops what every connection received; returns how many of connection i's events were
 * `want`. */
static int take(int i, const char *want)
{
    int n = 0;
    for (int k = 0; k < NCONN; k++) {
        for (size_t e = 0; e < F[k].n_got; e++) {
            n += k == i && !strcmp(F[k].got[e], want);
            free(F[k].got[e]);
        }
        F[k].n_got = 0;
    }
    return n;
}

/* Sends n chat messages from connection i; returns how many were refused with rate_limited. */
static int flood(wsx_chat *chat, int i, int n)
{
    int refused = 0;
    for (int k = 0; k < n; k++) {
        send_text(chat, i, "{\"type\":\"message\",\"text\":\"x%d\"}", k);
        refused += take(i, "error|rate_limited");
    }
    return refused;
}

/* The per-address bucket, directly: the connections of one address share it (IPv4 by
 * address, IPv6 by /64), a reconnection does not refill it, and the bucket of an address
 * with no connection left is forgotten once it would be full again. */
TEST(per_address_buckets)
{
    memset(F, 0, sizeof F);
    wsx_chat_opts o = chat_test_opts(0, 1000);
    o.rate_per_ip = 10; /* a token every 100 ms */
    o.burst_per_ip = 4; /* full 400 ms after empty */
    o.max_refusals = 1000;
    wsx_chat *chat = NULL;
    CHECK_INT(wsx_chat_new(&o, &ops, &chat), 0);
    struct sockaddr_in a2 = {.sin_family = AF_INET}, a3 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6[3] = {
        {.sin6_family = AF_INET6}, {.sin6_family = AF_INET6}, {.sin6_family = AF_INET6}};
    inet_pton(AF_INET, "127.0.0.2", &a2.sin_addr);
    inet_pton(AF_INET, "127.0.0.3", &a3.sin_addr);
    inet_pton(AF_INET6, "2001:db8:1:2::1", &v6[0].sin6_addr);
    inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &v6[1].sin6_addr); /* the same /64 */
    inet_pton(AF_INET6, "2001:db8:1:3::1", &v6[2].sin6_addr);
    const struct sockaddr *peer[7] = {(const struct sockaddr *)&a2,
                                      (const struct sockaddr *)&a2,
                                      (const struct sockaddr *)&a3,
                                      (const struct sockaddr *)&v6[0],
                                      (const struct sockaddr *)&v6[1],
                                      (const struct sockaddr *)&v6[2],
                                      NULL};
    for (int i = 0; i < 7; i++) {
        F[i].open = true;
        F[i].sub = -1;
        F[i].cc = wsx_chat_conn_open(chat, &F[i], peer[i]);
        send_text(chat, i, "{\"type\":\"join\",\"room\":\"r%d\",\"name\":\"n\"}", i);
    }
    take(0, "");
    wsx_chat_stats st;
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.addresses, 4);
    /* The clock stands still: each address has its 4. */
    CHECK_INT(flood(chat, 0, 3), 0);
    CHECK_INT(flood(chat, 1, 3), 2);
    CHECK_INT(flood(chat, 2, 4), 0);
    CHECK_INT(flood(chat, 3, 2), 0);
    CHECK_INT(flood(chat, 4, 3), 1);
    CHECK_INT(flood(chat, 5, 5), 1);
    CHECK_INT(flood(chat, 6, 50), 0); /* no address: the per-connection limit (off) only */
    /* Reconnecting: 127.0.0.2 has no connection for a moment, and its bucket stays empty. */
    for (int i = 0; i < 2; i++) {
        wsx_chat_conn_close(chat, F[i].cc);
        F[i].open = false;
    }
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.addresses, 4);
    F[0].open = true;
    F[0].cc = wsx_chat_conn_open(chat, &F[0], peer[0]);
    send_text(chat, 0, "{\"type\":\"join\",\"room\":\"r0\",\"name\":\"n\"}");
    take(0, "");
    CHECK_INT(flood(chat, 0, 1), 1);
    fake_now += 100;
    CHECK_INT(flood(chat, 0, 2), 1);
    /* Forgotten once full again: 400 ms after the last connection closed. */
    wsx_chat_conn_close(chat, F[0].cc);
    F[0].open = false;
    fake_now += 399;
    wsx_chat_expire(chat);
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.addresses, 4);
    fake_now += 1;
    wsx_chat_expire(chat);
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.addresses, 3);
    CHECK_INT(st.rate_limited, 6);
    CHECK_INT(st.rate_closes, 0);
    /* Then it starts full, as a new address. */
    F[0].open = true;
    F[0].cc = wsx_chat_conn_open(chat, &F[0], peer[0]);
    send_text(chat, 0, "{\"type\":\"join\",\"room\":\"r0\",\"name\":\"n\"}");
    take(0, "");
    CHECK_INT(flood(chat, 0, 5), 1);
    for (int i = 0; i < 7; i++)
        if (i != 1) wsx_chat_conn_close(chat, F[i].cc);
    take(0, "");
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.addresses, 4); /* all idle, none full yet */
    wsx_chat_free(chat);
}

/* wsx_chat_post: a backend's message takes a member's path (the room's ids, its members, the
 * history an SSE listener replays) with "bot":true; the protocol's rules refuse the same
 * names and texts (without taking a token); one bucket limits all posts; a room that does
 * not exist is made and kept for its history, and the room cap holds. */
TEST(post)
{
    memset(F, 0, sizeof F);
    sse_log[0] = '\0';
    wsx_chat_opts o = chat_test_opts(10, 3);
    o.post_rate = 2; /* a token every 500 ms */
    o.post_burst = 3;
    wsx_chat *chat = NULL;
    CHECK_INT(wsx_chat_new(&o, &ops, &chat), 0);
    F[0].open = true;
    F[0].sub = -1;
    F[0].cc = wsx_chat_conn_open(chat, &F[0], NULL);
    send_text(chat, 0, "{\"type\":\"join\",\"room\":\"r1\",\"name\":\"ann\"}");
    take(0, "");
    uint64_t id = 0;
    const char *why = NULL;
    CHECK_INT(wsx_chat_post(chat, "r1", " deploy-bot ", 12, "  hello  ", 9, &id, &why), 0);
    CHECK_INT(id, 1);
    CHECK(why == NULL);
    CHECK_INT(F[0].n_got, 1);
    CHECK_STR(F[0].got[0], "message|r1|deploy-bot|hello|1|bot");
    send_text(chat, 0, "{\"type\":\"message\",\"text\":\"hi\"}");
    CHECK_INT(take(0, "message|r1|ann|hi|2"), 1);
    /* Refused by the protocol's rules; none takes a token. */
    static const struct {
        const char *room, *name, *text;
        size_t nl, tl;
        const char *why;
    } bad[] = {
        {"a b", "bot", "x", 3, 1, "bad_room"},
        {"", "bot", "x", 3, 1, "bad_room"},
        {"r1", "  ", "x", 2, 1, "bad_name"},
        {"r1", "b\xe2\x80\xaet", "x", 5, 1, "bad_name"}, /* U+202E, a format character */
        {"r1", "b\x01", "x", 2, 1, "bad_name"},
        {"r1", "bot", "   ", 3, 3, "bad_text"},
        {"r1", "bot", "a\xff", 3, 2, "bad_text"}, /* not UTF-8 */
        {"r1", "bot", "a\0b", 3, 3, "bad_text"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        CHECK_INT(wsx_chat_post(chat, bad[i].room, bad[i].name, bad[i].nl, bad[i].text, bad[i].tl,
                                &id, &why),
                  WSX_EINVAL);
        CHECK_STR(why ? why : "(null)", bad[i].why);
    }
    /* 2000 code points (4000 bytes) pass, 2001 do not. */
    static char big[4003];
    for (int i = 0; i < 2001; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    CHECK_INT(wsx_chat_post(chat, "r1", "bot", 3, big, 4002, &id, &why), WSX_EINVAL);
    CHECK_STR(why, "bad_text");
    CHECK_INT(wsx_chat_post(chat, "r1", "bot", 3, big, 4000, &id, &why), 0);
    CHECK_INT(id, 3);
    CHECK_INT(F[0].n_got, 1);
    take(0, "");
    CHECK_INT(F[0].n_got, 0);
    /* The bucket: 3 at once (2 taken), then 2 per second. */
    CHECK_INT(wsx_chat_post(chat, "r1", "bot", 3, "c", 1, &id, &why), 0);
    CHECK_INT(wsx_chat_post(chat, "r1", "bot", 3, "d", 1, &id, &why), WSX_ELIMIT);
    CHECK_STR(why, "rate_limited");
    CHECK_INT(take(0, "message|r1|bot|c|4|bot"), 1);
    fake_now += 499;
    CHECK_INT(wsx_chat_post(chat, "r1", "bot", 3, "d", 1, &id, &why), WSX_ELIMIT);
    fake_now += 1;
    CHECK_INT(wsx_chat_post(chat, "r1", "bot", 3, "d", 1, &id, &why), 0);
    CHECK_INT(id, 5);
    take(0, "");
    wsx_chat_stats st;
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.rate_limited, 2);
    /* A room nobody is in: made, and kept for its history (replayed to a listener). */
    fake_now += 10000;
    CHECK_INT(wsx_chat_post(chat, "r2", "bot", 3, "x", 1, &id, &why), 0);
    CHECK_INT(id, 1);
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.rooms, 2);
    wsx_chat_listener *l0 = NULL, *l1 = NULL;
    CHECK_INT(wsx_chat_listener_add(chat, "r2", &sse_tags[0], &l0), 0);
    wsx_chat_listener_replay(chat, l0, 0);
    CHECK_STR(sse_log, "L0:1:message|r2|bot|x|1|bot");
    /* The cap (3): an idle room (r3) makes way for r4; with none idle, too_many_rooms. */
    CHECK_INT(wsx_chat_post(chat, "r3", "bot", 3, "x", 1, &id, &why), 0);
    CHECK_INT(wsx_chat_post(chat, "r4", "bot", 3, "x", 1, &id, &why), 0);
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.rooms, 3);
    CHECK_INT(wsx_chat_listener_add(chat, "r4", &sse_tags[1], &l1), 0);
    fake_now += 10000;
    CHECK_INT(wsx_chat_post(chat, "r5", "bot", 3, "x", 1, &id, &why), WSX_ELIMIT);
    CHECK_STR(why, "too_many_rooms");
    wsx_chat_get_stats(chat, &st);
    CHECK_INT(st.rooms, 3);
    CHECK_INT(st.history_messages, 5 + 1 + 1);
    wsx_chat_listener_remove(chat, l0);
    wsx_chat_listener_remove(chat, l1);
    wsx_chat_conn_close(chat, F[0].cc);
    F[0].open = false;
    take(0, "");
    wsx_chat_free(chat);
}

/* With clock_ms, the rate limits run on it and not on the wall clock (now_ms, which only
 * stamps messages): setting the wall clock back or forward neither empties nor refills a
 * bucket. */
static uint64_t fake_mono = 5000;

static uint64_t op_mono(void *user)
{
    (void)user;
    return fake_mono;
}

TEST(monotonic_limits)
{
    memset(F, 0, sizeof F);
    wsx_chat_opts o = chat_test_opts(0, 10);
    o.rate = 10; /* a token every 100 ms */
    o.burst = 2;
    o.max_refusals = 1000;
    wsx_chat_ops mops = ops;
    mops.clock_ms = op_mono;
    wsx_chat *chat = NULL;
    CHECK_INT(wsx_chat_new(&o, &mops, &chat), 0);
    F[0].open = true;
    F[0].sub = -1;
    F[0].cc = wsx_chat_conn_open(chat, &F[0], NULL);
    send_text(chat, 0, "{\"type\":\"join\",\"room\":\"r\",\"name\":\"n\"}");
    take(0, "");
    CHECK_INT(flood(chat, 0, 3), 1);
    fake_now += 3600 * 1000; /* the wall clock set an hour forward: no refill */
    CHECK_INT(flood(chat, 0, 1), 1);
    fake_now -= 7200 * 1000; /* and back: the monotonic clock counts on */
    fake_mono += 100;
    CHECK_INT(flood(chat, 0, 2), 1);
    fake_now += 3600 * 1000;
    wsx_chat_conn_close(chat, F[0].cc);
    F[0].open = false;
    take(0, "");
    wsx_chat_free(chat);
}

int main(void)
{
    RUN(listeners);
    RUN(per_address_buckets);
    RUN(post);
    RUN(monotonic_limits);
    return test_summary("chat_api");
}
