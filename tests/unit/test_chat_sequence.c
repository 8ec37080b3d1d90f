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

int main(void)
{
    RUN(sequence_and_deliver);
    return test_summary("chat_sequence");
}
