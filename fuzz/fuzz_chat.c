/*
 * The chat (src/chat) driven by sequences of client messages from six connections and two SSE
 * listeners, without sockets. The first byte chooses the history (0..3 messages) and the room
 * cap (2..5); then each record is one byte `b` naming the connection (b % 6) and the action
 * (b / 6):
 *   0  open the connection if closed, close it if open
 *   1  a binary message
 *   2  a raw text message: the next byte is its length, then that many bytes
 *   3  join: the next byte picks the room (of 4) and the name (of 4) and whether it is padded
 *   4  leave            5  a chat message      6  typing true / false (next byte)
 *   7  add or remove an SSE listener (the connection's index picks one of two), on a room
 *      picked by the next byte, resuming after the id in the byte after
 *   8  the clock jumps by the next byte in seconds
 * Bit 4 of the first byte turns on tight rate limits (messages 5/s, burst 2; joins and leaves
 * 5/s, burst 3; per address 8/s, burst 3, joins 4/s, burst 4; closed after 3 refusals); otherwise
 * only the defaults apply. Connections 0, 2 and 4 share one IPv4 address, 1 and 3 two IPv6
 * addresses of one /64, and 5 has none (not limited per address). Bit 5 gives the chat
 * shared-history ops (a cache per room, checked: handed back once, none left at the end), a history
 * budget of 400 bytes, history dropped after 5 s idle (the chat expires at every clock jump), and
 * odd connections a full send queue (joins refused with slow_down). Beyond memory errors (ASan), it
 * aborts if the chat sends to a closed connection, subscribes a connection twice or unsubscribes
 * one that is not subscribed, or if its counts disagree with the connections the fuzzer holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "chat/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCONN 6

typedef struct fconn {
    bool open;
    wsx_chat_conn *cc;
    char sub[WSX_CHAT_MAX_ROOM + 1]; /* "" when not subscribed */
    bool close_req;                  /* the chat asked to close it (a flood) */
} fconn;

static fconn F[NCONN];

/* The address of connection i (see the top). */
static const struct sockaddr *peer_of(int i)
{
    static struct sockaddr_in a4;
    static struct sockaddr_in6 a6;
    if (i == 5) return NULL;
    if (i % 2 == 0) {
        a4.sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.2", &a4.sin_addr);
        return (const struct sockaddr *)&a4;
    }
    a6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, i == 1 ? "2001:db8::1" : "2001:db8::2", &a6.sin6_addr);
    return (const struct sockaddr *)&a6;
}
static wsx_chat_listener *L[2];
static int L_tag[2];
static uint64_t fake_now;

static void op_send(void *conn, const char *json, size_t len, void *user)
{
    (void)user;
    fconn *f = conn;
    if (!f->open || len == 0 || json[0] != '{') abort();
}

static void op_publish(const char *room, const char *json, size_t len, uint64_t id, void *except,
                       void *user)
{
    (void)id, (void)except, (void)user;
    if (!wsx_chat_valid_room(room, strlen(room)) || len == 0 || json[0] != '{') abort();
    for (int i = 0; i < NCONN; i++)
        if (F[i].open && !strcmp(F[i].sub, room) && &F[i] != except)
            op_send(&F[i], json, len, NULL);
}

static int op_subscribe(void *conn, const char *room, void *user)
{
    (void)user;
    fconn *f = conn;
    if (!f->open || f->sub[0]) abort();
    strcpy(f->sub, room);
    return 0;
}

static void op_unsubscribe(void *conn, const char *room, void *user)
{
    (void)user;
    fconn *f = conn;
    if (!f->open || strcmp(f->sub, room) != 0) abort();
    f->sub[0] = '\0';
}

static bool full_queues; /* odd connections report a queue above join_max_queued */
static int caches_live;

static size_t op_queued(void *conn, void *user)
{
    (void)user;
    return full_queues && (((fconn *)conn - F) & 1) ? 2u << 20 : 0;
}

/* A room's cache: the history's text, checked against the chat's view on every use. */
typedef struct fcache {
    uint32_t magic;
    size_t count;
    uint64_t last_id;
} fcache;

static void check_cache(void **cache, const wsx_chat_history *h)
{
    size_t n = wsx_chat_history_count(h);
    uint64_t last = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *json = wsx_chat_history_get(h, i, &last, &len);
        if (!json || len == 0 || json[0] != '{' || (i && last <= prev)) abort();
        prev = last;
    }
    fcache *c = *cache;
    if (c) {
        /* The chat drops the cache on every change: what it describes must be current. */
        if (c->magic != 0xCAC4E || c->count != n || c->last_id != last) abort();
        return;
    }
    c = malloc(sizeof *c);
    if (!c) abort();
    *c = (fcache){0xCAC4E, n, last};
    *cache = c;
    caches_live++;
    size_t len;
    char *json = wsx_chat_history_json(h, &len);
    if (!json || len < 2 || json[0] != '{' || json[len - 1] != '}') abort();
    free(json);
}

static void op_send_history(void *conn, void **cache, const wsx_chat_history *h, void *user)
{
    (void)user;
    if (!((fconn *)conn)->open) abort();
    check_cache(cache, h);
}

static void op_sse_history(void *l, void **cache, const wsx_chat_history *h, uint64_t after,
                           void *user)
{
    (void)user, (void)after;
    if (l != &L_tag[0] && l != &L_tag[1]) abort();
    check_cache(cache, h);
}

static void op_cache_free(void *cache, void *user)
{
    (void)user;
    fcache *c = cache;
    if (!c || c->magic != 0xCAC4E) abort();
    c->magic = 0;
    free(c);
    caches_live--;
}

static uint64_t op_now(void *user)
{
    (void)user;
    return fake_now;
}

static void op_sse_send(void *l, uint64_t id, const char *json, size_t len, void *user)
{
    (void)user;
    if ((l != &L_tag[0] && l != &L_tag[1]) || id == 0 || len == 0 || json[0] != '{') abort();
}

static void op_close(void *conn, int code, const char *reason, void *user)
{
    (void)reason, (void)user;
    fconn *f = conn;
    if (!f->open || code != 1008) abort();
    f->close_req = true;
}

static const wsx_chat_ops ops = {.send = op_send,
                                 .publish = op_publish,
                                 .subscribe = op_subscribe,
                                 .unsubscribe = op_unsubscribe,
                                 .queued = op_queued,
                                 .now_ms = op_now,
                                 .sse_send = op_sse_send,
                                 .close = op_close};

static const wsx_chat_ops ops_shared = {.send = op_send,
                                        .publish = op_publish,
                                        .subscribe = op_subscribe,
                                        .unsubscribe = op_unsubscribe,
                                        .queued = op_queued,
                                        .now_ms = op_now,
                                        .sse_send = op_sse_send,
                                        .close = op_close,
                                        .send_history = op_send_history,
                                        .sse_history = op_sse_history,
                                        .cache_free = op_cache_free};

static const char *const rooms[4] = {"lobby", "a", "b-2", "c.3"};
static const char *const names[4] = {"ann", "bob", "\xc3\xa9mile", "ann"};

static void say(wsx_chat *chat, int i, const char *s)
{
    wsx_chat_conn_message(chat, F[i].cc, s, strlen(s), false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    memset(F, 0, sizeof F);
    memset(L, 0, sizeof L);
    fake_now = 1000000;
    wsx_chat_opts o = wsx_chat_defaults();
    o.history = data[0] & 3;
    o.max_rooms = 2 + ((data[0] >> 2) & 3);
    /* A tight rate limit in half of the inputs: refusals and closes for floods. */
    if (data[0] & 0x10) {
        o.rate = 5;
        o.burst = 2;
        o.join_rate = 5;
        o.join_burst = 3;
        o.rate_per_ip = 8;
        o.burst_per_ip = 3;
        o.join_rate_per_ip = 4;
        o.join_burst_per_ip = 4;
        o.max_refusals = 3;
        o.refusal_window_ms = 1000;
    }
    bool shared = data[0] & 0x20;
    full_queues = shared;
    caches_live = 0;
    if (shared) {
        o.history_bytes = 400;
        o.history_idle_ms = 5000;
        o.join_max_queued = 1u << 20;
    }
    wsx_chat *chat = NULL;
    if (wsx_chat_new(&o, shared ? &ops_shared : &ops, &chat) < 0) return 0;
    size_t p = 1;
    char buf[512];
    while (p < size) {
        for (int k = 0; k < NCONN; k++) {
            if (!F[k].open || !F[k].close_req) continue;
            wsx_chat_conn_close(chat, F[k].cc);
            F[k].open = F[k].close_req = false;
            F[k].sub[0] = '\0';
        }
        uint8_t b = data[p++];
        int i = b % NCONN;
        unsigned act = b / NCONN;
        uint8_t arg = p < size ? data[p] : 0;
        fake_now++;
        if (act == 0) {
            if (F[i].open) {
                wsx_chat_conn_close(chat, F[i].cc);
                F[i].open = false;
                F[i].sub[0] = '\0';
            } else {
                F[i].open = true;
                F[i].cc = wsx_chat_conn_open(chat, &F[i], peer_of(i));
                if (!F[i].cc) F[i].open = false;
            }
            continue;
        }
        if (act == 7) {
            p++;
            int k = i & 1;
            if (L[k]) {
                wsx_chat_listener_remove(chat, L[k]);
                L[k] = NULL;
            } else if (wsx_chat_listener_add(chat, rooms[arg & 3], &L_tag[k], &L[k]) == 0) {
                wsx_chat_listener_replay(chat, L[k], p < size ? data[p++] : 0);
            }
            continue;
        }
        if (act == 8) {
            p++;
            fake_now += (uint64_t)arg * 1000;
            wsx_chat_expire(chat);
            continue;
        }
        if (!F[i].open) continue;
        switch (act) {
        case 1:
            wsx_chat_conn_message(chat, F[i].cc, "\x01", 1, true);
            break;
        case 2: {
            size_t len = p < size ? data[p++] : 0;
            if (len > size - p) len = size - p;
            wsx_chat_conn_message(chat, F[i].cc, (const char *)data + p, len, false);
            p += len;
            break;
        }
        case 3:
            p++;
            snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"%s\",\"name\":\"%s%s\"}",
                     rooms[arg & 3], arg & 0x10 ? " " : "", names[(arg >> 2) & 3]);
            say(chat, i, buf);
            break;
        case 4:
            say(chat, i, "{\"type\":\"leave\"}");
            break;
        case 5:
            say(chat, i, "{\"type\":\"message\",\"text\":\"hello\"}");
            break;
        case 6:
            p++;
            say(chat, i,
                arg & 1 ? "{\"type\":\"typing\",\"typing\":true}" : "{\"type\":\"typing\"}");
            break;
        default:
            break;
        }
    }
    wsx_chat_stats st;
    wsx_chat_get_stats(chat, &st);
    size_t open = 0, subscribed = 0;
    for (int i = 0; i < NCONN; i++) {
        open += F[i].open;
        subscribed += F[i].open && F[i].sub[0];
    }
    if (st.conns != open || st.members != subscribed || st.rooms > o.max_rooms) abort();
    if (st.addresses > 2) abort(); /* 127.0.0.2 and 2001:db8::/64 */
    if (shared && st.history_bytes > o.history_bytes && st.history_messages > 1) abort();
    for (int k = 0; k < 2; k++)
        wsx_chat_listener_remove(chat, L[k]);
    for (int i = 0; i < NCONN; i++)
        if (F[i].open) wsx_chat_conn_close(chat, F[i].cc);
    wsx_chat_free(chat);
    if (caches_live != 0) abort();
    return 0;
}
