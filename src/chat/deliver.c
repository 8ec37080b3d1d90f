/*
 * Messages numbered by a sequencer (wsx_chat_ops.sequence): several chats (the nodes of
 * `wsx serve --redis`) post through one numbering, and each brings every message back here
 * with its id, in the sequencer's order, so that all of them publish and keep the same
 * messages with the same ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_priv.h"
#include "wsx/common.h"

char *wsx__chat_message_json(wsx_chat *chat, const room *r, uint64_t id, const char *name,
                             const char *text, size_t tl, bool bot)
{
    json_t *o = wsx__chat_jevent("message");
    wsx__chat_jset(&o, "id", json_integer((json_int_t)id));
    wsx__chat_jset(&o, "room", wsx__chat_jname(r->name));
    wsx__chat_jset(&o, "name", wsx__chat_jname(name));
    wsx__chat_jset(&o, "text", json_stringn_nocheck(text, tl));
    wsx__chat_jset(&o, "ts", json_integer((json_int_t)wsx__chat_now(chat)));
    if (bot) wsx__chat_jset(&o, "bot", json_true());
    jtext t;
    char *s = wsx__chat_jdump(&t, o) ? wsx__chat_jtext_dup(&t) : NULL;
    wsx__chat_jtext_free(&t);
    return s;
}

/* How the chat writes a message (text.c's key order): its id comes first after the type. */
static const char head[] = "{\"type\":\"message\",\"id\":";
#define HEAD_LEN (sizeof head - 1)

/* The newest id in r's history, 0 when it has none. */
static uint64_t newest(const wsx_chat *chat, const room *r)
{
    if (!r->hist_n) return 0;
    return r->hist_id[(r->hist_first + r->hist_n - 1) % chat->opts.history];
}

bool wsx__chat_history_has(const wsx_chat *chat, const room *r, uint64_t id, const char *json,
                           size_t len)
{
    size_t lo = 0, hi = r->hist_n, cap = chat->opts.history;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2, slot = (r->hist_first + mid) % cap;
        if (r->hist_id[slot] == id)
            return strlen(r->hist[slot]) == len && !memcmp(r->hist[slot], json, len);
        if (r->hist_id[slot] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

int wsx_chat_deliver(wsx_chat *chat, const char *name, uint64_t id, const char *json, size_t len)
{
    /* Ids stay exact in JavaScript (2^53), and the numbering above them cannot wrap. */
    if (!wsx_chat_valid_room(name, strlen(name)) || len <= HEAD_LEN ||
        memcmp(json, head, HEAD_LEN) || id > ((uint64_t)1 << 53))
        return WSX_EINVAL;
    /* Not numbered: "id":0, followed by the rest of the object. */
    if (!id && (len < HEAD_LEN + 2 || json[HEAD_LEN] != '0' || json[HEAD_LEN + 1] != ','))
        return WSX_EINVAL;
    wsx_chat_lock(chat);
    room *r = wsx__chat_room_get(chat, name);
    if (!r) {
        wsx_chat_unlock(chat);
        return WSX_ELIMIT;
    }
    /* The same message twice (a node that read the room's history from Redis while the
     * channel brought it too): its members had it, or got it in `history`. */
    if (id && chat->opts.history && wsx__chat_history_has(chat, r, id, json, len)) {
        wsx__chat_room_release(chat, r);
        wsx_chat_unlock(chat);
        return 0;
    }
    char *s;
    if (!id) {
        id = r->next_id;
        char num[24];
        int n = snprintf(num, sizeof num, "%llu", (unsigned long long)id);
        size_t rest = len - HEAD_LEN - 1;
        s = malloc(HEAD_LEN + (size_t)n + rest + 1);
        if (s) {
            memcpy(s, head, HEAD_LEN);
            memcpy(s + HEAD_LEN, num, (size_t)n);
            memcpy(s + HEAD_LEN + (size_t)n, json + HEAD_LEN + 1, rest);
            s[HEAD_LEN + (size_t)n + rest] = '\0';
        }
    } else {
        s = malloc(len + 1);
        if (s) {
            memcpy(s, json, len);
            s[len] = '\0';
        }
    }
    if (!s) {
        wsx__chat_room_release(chat, r);
        wsx_chat_unlock(chat);
        return WSX_ENOMEM;
    }
    if (id >= r->next_id) r->next_id = id + 1;
    chat->ops.publish(r->name, s, strlen(s), id, NULL, chat->opts.user);
    if (chat->opts.history && id > newest(chat, r))
        wsx__chat_history_add(chat, r, id, s);
    else
        free(s);
    wsx__chat_room_release(chat, r);
    wsx_chat_unlock(chat);
    return 0;
}

uint64_t wsx_chat_last_id(wsx_chat *chat, const char *name)
{
    wsx_chat_lock(chat);
    room *r = wsx__chat_room_find(chat, name);
    uint64_t id = r ? r->next_id - 1 : 0;
    wsx_chat_unlock(chat);
    return id;
}
