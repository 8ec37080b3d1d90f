/*
 * The chat with a sequencer (wsx_chat_ops.sequence, wsx_chat_deliver): what `wsx serve
 * --redis` numbers through Redis. A post offered to the sequencer and taken is neither
 * published nor kept; delivered with its id it is both, and the local numbering continues
 * above it; a post the sequencer does not take is numbered locally; id 0 is numbered on
 * delivery; an id not above the history's newest is published but not kept.
 */
#include "test.h"

#include "chat/chat.h"
#include "wsx/common.h"

static struct {
    bool take;
    int offered, published, sse;
    char offer[512], pub[512];
    uint64_t pub_id, sse_ids[16];
} T;

static void op_send(void *c, const char *j, size_t n, void *u)
{
    (void)c, (void)j, (void)n, (void)u;
}

static void op_publish(const char *room, const char *json, size_t len, uint64_t id, void *except,
                       void *user)
{
    (void)room, (void)except, (void)user;
    T.published++;
    T.pub_id = id;
    snprintf(T.pub, sizeof T.pub, "%.*s", (int)len, json);
}

static int op_subscribe(void *c, const char *r, void *u)
{
    (void)c, (void)r, (void)u;
    return 0;
}

static void op_unsubscribe(void *c, const char *r, void *u)
{
    (void)c, (void)r, (void)u;
}

static size_t op_queued(void *c, void *u)
{
    (void)c, (void)u;
    return 0;
}

static uint64_t op_now(void *u)
{
    (void)u;
    return 1000;
}

static void op_sse(void *l, uint64_t id, const char *j, size_t n, void *u)
{
    (void)l, (void)j, (void)n, (void)u;
    if (T.sse < 16) T.sse_ids[T.sse] = id;
    T.sse++;
}

static bool op_sequence(const char *room, const char *json, size_t len, void *user)
{
    (void)room, (void)user;
    T.offered++;
    snprintf(T.offer, sizeof T.offer, "%.*s", (int)len, json);
    return T.take;
}

static const wsx_chat_ops ops = {
    .send = op_send,
    .publish = op_publish,
    .subscribe = op_subscribe,
    .unsubscribe = op_unsubscribe,
    .queued = op_queued,
    .now_ms = op_now,
    .sse_send = op_sse,
    .sequence = op_sequence,
};

/* The ids a listener replaying the room's history from the start gets, as "5,6,7". */
static void history_ids(wsx_chat *chat, char *out, size_t cap)
{
    wsx_chat_listener *l;
    int dummy;
    T.sse = 0;
    CHECK_INT(wsx_chat_listener_add(chat, "r", &dummy, &l), 0);
    wsx_chat_listener_replay(chat, l, 0);
    wsx_chat_listener_remove(chat, l);
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < T.sse && i < 16; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%llu", i ? "," : "",
                              (unsigned long long)T.sse_ids[i]);
}

TEST(sequence_and_deliver)
{
    wsx_chat_opts o = wsx_chat_defaults();
    o.history = 10;
    wsx_chat *chat = NULL;
    CHECK_INT(wsx_chat_new(&o, &ops, &chat), 0);
    uint64_t id = 99;
    const char *why = NULL;
    T.take = true;
    CHECK_INT(wsx_chat_post(chat, "r", "bot", 3, "hi", 2, &id, &why), 0);
    CHECK_INT(id, 0);
    CHECK_INT(T.offered, 1);
    CHECK_INT(T.published, 0);
    CHECK(!strncmp(T.offer, "{\"type\":\"message\",\"id\":0,\"room\":\"r\"", 34));
    char hist[128];
    history_ids(chat, hist, sizeof hist);
    CHECK_STR(hist, "");

    /* Back from the sequencer as id 5. */
    char json[1200];
    snprintf(json, sizeof json, "{\"type\":\"message\",\"id\":5%s", T.offer + 25);
    CHECK_INT(wsx_chat_deliver(chat, "r", 5, json, strlen(json)), 0);
    CHECK_INT(T.published, 1);
    CHECK_INT(T.pub_id, 5);
    CHECK_STR(T.pub, json);

    /* The sequencer away: numbered here, above what it gave. */
    T.take = false;
    CHECK_INT(wsx_chat_post(chat, "r", "bot", 3, "ho", 2, &id, &why), 0);
    CHECK_INT(id, 6);
    CHECK_INT(T.offered, 2);
    CHECK_INT(T.pub_id, 6);

    /* Offered, then not numbered after all (id 0): numbered on delivery. */
    CHECK_INT(wsx_chat_deliver(chat, "r", 0, T.offer, strlen(T.offer)), 0);
    CHECK_INT(T.pub_id, 7);
    CHECK(!strncmp(T.pub, "{\"type\":\"message\",\"id\":7,\"room\":\"r\"", 34));

    /* An id below the history's newest: published, not kept. */
    snprintf(json, sizeof json, "{\"type\":\"message\",\"id\":3%s", T.offer + 25);
    CHECK_INT(wsx_chat_deliver(chat, "r", 3, json, strlen(json)), 0);
    CHECK_INT(T.pub_id, 3);
    history_ids(chat, hist, sizeof hist);
    CHECK_STR(hist, "5,6,7");
    CHECK_INT(wsx_chat_last_id(chat, "r"), 7);
    CHECK_INT(wsx_chat_last_id(chat, "nope"), 0);

    /* Not a message, a bad room, "id":0 without the 0. */
    CHECK_INT(wsx_chat_deliver(chat, "r", 8, "{\"type\":\"typing\"}", 17), WSX_EINVAL);
    CHECK_INT(wsx_chat_deliver(chat, "r", ((uint64_t)1 << 53) + 1, json, strlen(json)), WSX_EINVAL);
    CHECK_INT(wsx_chat_deliver(chat, "bad room", 8, json, strlen(json)), WSX_EINVAL);
    CHECK_INT(wsx_chat_deliver(chat, "r", 0, json, strlen(json)), WSX_EINVAL);
    CHECK_INT(wsx_chat_deliver(chat, "r", 0, "{\"type\":\"message\",\"id\":", 23), WSX_EINVAL);
    wsx_chat_free(chat);
}

static int msg(char *out, size_t cap, uint64_t id, const char *text)
{
    return snprintf(out, cap,
                    "{\"type\":\"message\",\"id\":%llu,\"room\":\"r\",\"name\":\"x\","
                    "\"text\":\"%s\",\"ts\":1}",
                    (unsigned long long)id, text);
}

/* wsx_chat_history_merge: what the history lacks is put in its place by id, unpublished; the
 * newest `history` kept; a message delivered after it was merged is not published again. */
TEST(history_merge)
{
    wsx_chat_opts o = wsx_chat_defaults();
    o.history = 5;
    wsx_chat *chat = NULL;
    CHECK_INT(wsx_chat_new(&o, &ops, &chat), 0);
    char a[256], b[256], c[256], d[256], e[256];
    msg(a, sizeof a, 2, "two");
    msg(b, sizeof b, 4, "four");
    T.published = 0;
    CHECK_INT(wsx_chat_deliver(chat, "r", 2, a, strlen(a)), 0);
    CHECK_INT(wsx_chat_deliver(chat, "r", 4, b, strlen(b)), 0);
    CHECK_INT(T.published, 2);
    msg(c, sizeof c, 1, "one");
    msg(d, sizeof d, 3, "three");
    msg(e, sizeof e, 6, "six");
    uint64_t ids[] = {1, 2, 3, 6};
    const char *js[] = {c, a, d, e};
    size_t ls[] = {strlen(c), strlen(a), strlen(d), strlen(e)};
    CHECK_INT(wsx_chat_history_merge(chat, "r", 4, ids, js, ls), 3);
    CHECK_INT(T.published, 2);
    char hist[128];
    history_ids(chat, hist, sizeof hist);
    CHECK_STR(hist, "1,2,3,4,6");
    CHECK_INT(wsx_chat_last_id(chat, "r"), 6);
    /* Nothing new: 0. The channel brings 6 again: not published twice. */
    CHECK_INT(wsx_chat_history_merge(chat, "r", 4, ids, js, ls), 0);
    CHECK_INT(wsx_chat_deliver(chat, "r", 6, e, strlen(e)), 0);
    CHECK_INT(T.published, 2);
    /* Past the cap: the newest 5 of the union. */
    char f[256];
    msg(f, sizeof f, 9, "nine");
    uint64_t id9 = 9;
    const char *jf = f;
    size_t lf = strlen(f);
    CHECK_INT(wsx_chat_history_merge(chat, "r", 1, &id9, &jf, &lf), 1);
    history_ids(chat, hist, sizeof hist);
    CHECK_STR(hist, "2,3,4,6,9");
    /* Refused whole: a text that is not a message with its id, id 0, not UTF-8, a bad room. */
    uint64_t bad_ids[] = {7, 8};
    const char *bad[] = {c, "{\"type\":\"message\",\"id\":8,\"t\":\"\xff\"}"};
    size_t bl[] = {strlen(c), strlen(bad[1])};
    CHECK_INT(wsx_chat_history_merge(chat, "r", 1, bad_ids, bad, bl), WSX_EINVAL);
    CHECK_INT(wsx_chat_history_merge(chat, "r", 1, &bad_ids[1], &bad[1], &bl[1]), WSX_EINVAL);
    uint64_t zero = 0;
    CHECK_INT(wsx_chat_history_merge(chat, "r", 1, &zero, js, ls), WSX_EINVAL);
    CHECK_INT(wsx_chat_history_merge(chat, "bad room", 1, ids, js, ls), WSX_EINVAL);
    history_ids(chat, hist, sizeof hist);
    CHECK_STR(hist, "2,3,4,6,9");
    /* The complete mark: set, lost with clear_complete, and with the room. */
    CHECK(!wsx_chat_history_complete(chat, "r"));
    wsx_chat_history_set_complete(chat, "r", true);
    CHECK(wsx_chat_history_complete(chat, "r"));
    wsx_chat_history_clear_complete(chat);
    CHECK(!wsx_chat_history_complete(chat, "r"));
    wsx_chat_history_set_complete(chat, "r", true);
    wsx_chat_history_set_complete(chat, "r", false);
    CHECK(!wsx_chat_history_complete(chat, "r"));
    wsx_chat_history_set_complete(chat, "nope", true);
    CHECK(!wsx_chat_history_complete(chat, "nope"));
    wsx_chat_free(chat);
}

int main(void)
{
    RUN(sequence_and_deliver);
    RUN(history_merge);
    return test_summary("chat_sequence");
}
