/*
 * src/chat's history without sockets: the `history` message and the shared-history ops
 * (when the front end's cache is asked for, and when it is handed back), `slow_down` for a
 * join while the connection's queue is full, the history budget (eviction of the room posted
 * to least recently) and the expiry of idle rooms' history.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat/chat.h"
#include "test.h"
#include "wsx.h"

#define NC 4

/* ---- a fake front end ---- */

typedef struct fconn {
    char *got[64]; /* JSON texts received */
    size_t n_got;
    size_t queued; /* what ops->queued reports */
} fconn;

static fconn F[NC];
static uint64_t fake_now = 5000;
static bool shared_ops;

/* What the shared-history ops saw. */
static int n_built, n_hits, n_freed, n_live;
static uint64_t replay_after;
static size_t replay_count;

typedef struct fcache {
    char *json;
    size_t len;
} fcache;

static void got(fconn *f, const char *json, size_t len)
{
    if (f->n_got < 64) f->got[f->n_got++] = strndup(json, len);
}

static void clear(fconn *f)
{
    for (size_t i = 0; i < f->n_got; i++)
        free(f->got[i]);
    f->n_got = 0;
}

static void op_send(void *conn, const char *json, size_t len, void *user)
{
    (void)user;
    got(conn, json, len);
}

static void op_publish(const char *room, const char *json, size_t len, uint64_t id, void *except,
                       void *user)
{
    (void)room, (void)json, (void)len, (void)id, (void)except, (void)user;
}

static int op_subscribe(void *conn, const char *room, void *user)
{
    (void)conn, (void)room, (void)user;
    return 0;
}

static void op_unsubscribe(void *conn, const char *room, void *user)
{
    (void)conn, (void)room, (void)user;
}

static size_t op_queued(void *conn, void *user)
{
    (void)user;
    return ((fconn *)conn)->queued;
}

static uint64_t op_now(void *user)
{
    (void)user;
    return fake_now;
}

static void op_sse_send(void *l, uint64_t id, const char *json, size_t len, void *user)
{
    (void)l, (void)id, (void)json, (void)len, (void)user;
}

static void op_send_history(void *conn, void **cache, const wsx_chat_history *h, void *user)
{
    (void)user;
    fcache *c = *cache;
    if (c) {
        n_hits++;
    } else {
        c = calloc(1, sizeof *c);
        c->json = wsx_chat_history_json(h, &c->len);
        *cache = c;
        n_built++;
        n_live++;
    }
    got(conn, c->json, c->len);
}

static void op_sse_history(void *l, void **cache, const wsx_chat_history *h, uint64_t after,
                           void *user)
{
    (void)l, (void)cache, (void)user;
    replay_after = after;
    replay_count = wsx_chat_history_count(h);
}

static void op_cache_free(void *cache, void *user)
{
    (void)user;
    fcache *c = cache;
    free(c->json);
    free(c);
    n_freed++;
    n_live--;
}

static wsx_chat *new_chat(size_t history, size_t budget, uint64_t idle_ms, size_t max_queued)
{
    wsx_chat_ops ops = {
        .send = op_send,
        .publish = op_publish,
        .subscribe = op_subscribe,
        .unsubscribe = op_unsubscribe,
        .queued = op_queued,
        .now_ms = op_now,
        .sse_send = op_sse_send,
    };
    if (shared_ops) {
        ops.send_history = op_send_history;
        ops.sse_history = op_sse_history;
        ops.cache_free = op_cache_free;
    }
    static wsx_chat_ops keep; /* ops are borrowed for the chat's lifetime */
    keep = ops;
    wsx_chat_opts o = wsx_chat_defaults();
    o.history = history;
    o.history_bytes = budget;
    o.history_idle_ms = idle_ms;
    o.join_max_queued = max_queued;
    wsx_chat *chat = NULL;
    if (wsx_chat_new(&o, &keep, &chat) < 0) exit(2);
    for (int i = 0; i < NC; i++)
        clear(&F[i]);
    memset(F, 0, sizeof F);
    n_built = n_hits = n_freed = n_live = 0;
    return chat;
}

static void say(wsx_chat *chat, wsx_chat_conn *cc, const char *json)
{
    wsx_chat_conn_message(chat, cc, json, strlen(json), false);
}

static void join(wsx_chat *chat, wsx_chat_conn *cc, const char *room, const char *name)
{
    char buf[256];
    snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"%s\",\"name\":\"%s\"}", room, name);
    say(chat, cc, buf);
}

static void post(wsx_chat *chat, wsx_chat_conn *cc, const char *text)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "{\"type\":\"message\",\"text\":\"%s\"}", text);
    say(chat, cc, buf);
}

/* The type of each JSON text f received, joined with spaces (an error as "error:CODE"). */
static const char *types(fconn *f)
{
    static char out[1024];
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < f->n_got && o < sizeof out - 64; i++) {
        json_t *j = json_loads(f->got[i], 0, NULL);
        const char *t = json_string_value(json_object_get(j, "type"));
        const char *code = json_string_value(json_object_get(j, "code"));
        o += (size_t)snprintf(out + o, sizeof out - o, "%s%s%s%s", i ? " " : "", t ? t : "?",
                              code ? ":" : "", code ? code : "");
        json_decref(j);
    }
    clear(f);
    return out;
}

/* The number of messages in the last `history` message f received (-1: none). */
static int history_len(fconn *f)
{
    int n = -1;
    for (size_t i = 0; i < f->n_got; i++) {
        json_t *j = json_loads(f->got[i], 0, NULL);
        if (!strcmp(json_string_value(json_object_get(j, "type")), "history"))
            n = (int)json_array_size(json_object_get(j, "messages"));
        json_decref(j);
    }
    clear(f);
    return n;
}

static wsx_chat_stats stats(wsx_chat *chat)
{
    wsx_chat_stats st;
    wsx_chat_get_stats(chat, &st);
    return st;
}

/* ---- tests ---- */

TEST(history_follows_joined)
{
    shared_ops = false;
    wsx_chat *chat = new_chat(3, 0, 0, 0);
    wsx_chat_conn *a = wsx_chat_conn_open(chat, &F[0], NULL);
    clear(&F[0]);
    join(chat, a, "r", "ann");
    CHECK_STR(F[0].got[0], "{\"type\":\"joined\",\"room\":\"r\",\"name\":\"ann\","
                           "\"online\":[{\"name\":\"ann\",\"tabs\":1}]}");
    CHECK_STR(F[0].got[1], "{\"type\":\"history\",\"room\":\"r\",\"messages\":[]}");
    clear(&F[0]);
    post(chat, a, "one");
    post(chat, a, "two");
    join(chat, a, "r", "ann");
    CHECK_INT(history_len(&F[0]), 2);
    CHECK_INT(stats(chat).history_messages, 2);
    wsx_chat_conn_close(chat, a);
    wsx_chat_free(chat);
}

TEST(shared_history_built_once_per_change)
{
    shared_ops = true;
    wsx_chat *chat = new_chat(100, 0, 0, 0);
    wsx_chat_conn *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = wsx_chat_conn_open(chat, &F[i], NULL);
    join(chat, c[0], "r", "a");
    post(chat, c[0], "hello");
    CHECK_INT(n_built, 1); /* the first join built it */
    CHECK_INT(n_freed, 1); /* the message changed the history */
    join(chat, c[1], "r", "b");
    join(chat, c[2], "r", "c");
    join(chat, c[0], "r", "a");
    CHECK_INT(n_built, 2);
    CHECK_INT(n_hits, 2); /* three joins, one build */
    CHECK_INT(history_len(&F[2]), 1);
    /* An SSE replay goes through the shared op with the same history. */
    wsx_chat_listener *l = NULL;
    CHECK_INT(wsx_chat_listener_add(chat, "r", &F[3], &l), 0);
    wsx_chat_listener_replay(chat, l, 0);
    CHECK_INT(replay_count, 1);
    CHECK_INT(replay_after, 0);
    /* Everyone leaves: the room goes idle, its shared form is handed back. */
    wsx_chat_listener_remove(chat, l);
    for (int i = 0; i < 3; i++)
        wsx_chat_conn_close(chat, c[i]);
    CHECK_INT(n_live, 0);
    /* And a cache still held when the chat is freed is handed back too (a listener keeps
     * the room from going idle). */
    wsx_chat_conn *d = wsx_chat_conn_open(chat, &F[0], NULL);
    join(chat, d, "r", "d");
    CHECK_INT(wsx_chat_listener_add(chat, "r", &F[3], &l), 0);
    wsx_chat_conn_close(chat, d);
    CHECK_INT(n_live, 1);
    wsx_chat_free(chat);
    CHECK_INT(n_live, 0);
}

TEST(join_refused_with_slow_down_once)
{
    shared_ops = true;
    wsx_chat *chat = new_chat(100, 0, 0, 1000);
    wsx_chat_conn *a = wsx_chat_conn_open(chat, &F[0], NULL);
    clear(&F[0]);
    F[0].queued = 1001;
    join(chat, a, "r", "a");
    CHECK_STR(types(&F[0]), "error:slow_down");
    for (int i = 0; i < 5; i++)
        join(chat, a, "r", "a");
    CHECK_STR(types(&F[0]), ""); /* once: later joins while above are not answered */
    CHECK_INT(stats(chat).members, 0);
    F[0].queued = 1000; /* at the mark, not above it */
    join(chat, a, "r", "a");
    CHECK_STR(types(&F[0]), "joined history");
    F[0].queued = 5000;
    join(chat, a, "s", "a");
    CHECK_STR(types(&F[0]), "error:slow_down"); /* a new episode: told again */
    wsx_chat_conn_close(chat, a);
    wsx_chat_free(chat);
}

/* Posts n messages of `text` to room as a fresh connection, which then leaves. */
static void fill(wsx_chat *chat, const char *room, int n, const char *text)
{
    wsx_chat_conn *f = wsx_chat_conn_open(chat, &F[3], NULL);
    join(chat, f, room, "filler");
    for (int i = 0; i < n; i++)
        post(chat, f, text);
    wsx_chat_conn_close(chat, f);
    clear(&F[3]);
}

static int history_of(wsx_chat *chat, const char *room)
{
    wsx_chat_conn *q = wsx_chat_conn_open(chat, &F[2], NULL);
    join(chat, q, room, "probe");
    int n = history_len(&F[2]);
    wsx_chat_conn_close(chat, q);
    return n;
}

TEST(budget_evicts_the_room_posted_to_least_recently)
{
    shared_ops = true;
    char text[1001];
    memset(text, 'x', 1000);
    text[1000] = '\0';
    /* Each message is ~1090 bytes of JSON + 32: 10 of them fit in 11500 bytes, not 11. */
    wsx_chat *chat = new_chat(100, 11500, 0, 0);
    fill(chat, "a", 4, text);
    fill(chat, "b", 4, text);
    CHECK_INT(stats(chat).rooms, 2); /* idle rooms with history are kept */
    fill(chat, "a", 1, text);        /* a is now the most recently posted to */
    fill(chat, "c", 3, text);        /* 12 messages: over the budget, b goes whole */
    CHECK_INT(stats(chat).history_messages, 8);
    CHECK(stats(chat).history_bytes <= 11500);
    CHECK_INT(stats(chat).rooms, 2); /* b was idle: it went with its history */
    CHECK_INT(history_of(chat, "b"), 0);
    CHECK_INT(history_of(chat, "a"), 5);
    CHECK_INT(history_of(chat, "c"), 3);
    /* One room alone past the budget keeps its newest messages. */
    fill(chat, "big", 30, text);
    CHECK_INT(history_of(chat, "a"), 0);
    CHECK_INT(history_of(chat, "c"), 0);
    CHECK_INT(history_of(chat, "big"), 10);
    CHECK(stats(chat).history_bytes <= 11500);
    /* A member's room loses its history but stays. */
    wsx_chat_conn *m = wsx_chat_conn_open(chat, &F[0], NULL);
    join(chat, m, "big", "member");
    fill(chat, "other", 10, text);
    CHECK_INT(history_of(chat, "big"), 0);
    CHECK_INT(history_of(chat, "other"), 10);
    wsx_chat_conn_close(chat, m);
    CHECK_INT(n_live, 0);
    wsx_chat_free(chat);
}

TEST(idle_history_expires)
{
    shared_ops = true;
    wsx_chat *chat = new_chat(100, 0, 1000, 0);
    fill(chat, "gone", 3, "bye");
    fake_now += 500;
    fill(chat, "later", 2, "hi");
    wsx_chat_conn *m = wsx_chat_conn_open(chat, &F[0], NULL);
    join(chat, m, "kept", "m");
    post(chat, m, "stay");
    CHECK_INT(stats(chat).rooms, 3);
    fake_now += 499; /* "gone" has been idle 999 ms */
    CHECK_INT(wsx_chat_expire(chat), 0);
    fake_now += 1;
    CHECK_INT(wsx_chat_expire(chat), 1);
    CHECK_INT(stats(chat).rooms, 2);
    fake_now += 499;
    CHECK_INT(wsx_chat_expire(chat), 0);
    fake_now += 1;
    CHECK_INT(wsx_chat_expire(chat), 1);
    fake_now += 100000;
    CHECK_INT(wsx_chat_expire(chat), 0); /* "kept" has a member */
    CHECK_INT(stats(chat).history_messages, 1);
    CHECK_INT(history_of(chat, "gone"), 0);
    wsx_chat_conn_close(chat, m);
    wsx_chat_free(chat);
}

int main(void)
{
    RUN(history_follows_joined);
    RUN(shared_history_built_once_per_change);
    RUN(join_refused_with_slow_down_once);
    RUN(budget_evicts_the_room_posted_to_least_recently);
    RUN(idle_history_expires);
    for (int i = 0; i < NC; i++)
        clear(&F[i]);
    return test_summary("chat_history");
}
