/*
 * A room's history completed from another source: `wsx serve --redis` reads the history Redis
 * keeps for a room (docs/cluster.md) when its own may be missing messages (nobody was in the
 * room here when they went out, or the node started after them), and merges it here.
 */
#include <stdlib.h>
#include <string.h>

#include "chat/chat_priv.h"
#include "wsx.h"

static const char head[] = "{\"type\":\"message\",\"id\":";
#define HEAD_LEN (sizeof head - 1)

typedef struct entry {
    uint64_t id;
    char *json;
    size_t len;
    size_t slot; /* SIZE_MAX: from the other source, json is a copy */
} entry;

/* By id; for one id, the room's own first (it wins: the same id twice is one message). */
static int by_id(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->slot == SIZE_MAX) - (y->slot == SIZE_MAX);
}

/* Whether json (len bytes) is a message JSON of the chat's form with id `id`. */
static bool message_ok(const char *json, size_t len, uint64_t id)
{
    if (!id || id > ((uint64_t)1 << 53) || len <= HEAD_LEN || memcmp(json, head, HEAD_LEN) ||
        memchr(json, 0, len))
        return false;
    uint64_t v = 0;
    size_t i = HEAD_LEN;
    for (; i < len && json[i] >= '0' && json[i] <= '9' && i < HEAD_LEN + 17; i++)
        v = v * 10 + (uint64_t)(json[i] - '0');
    return v == id && i < len && json[i] == ',' && json[len - 1] == '}' &&
           wsx_utf8_valid((const uint8_t *)json, len);
}

ptrdiff_t wsx_chat_history_merge(wsx_chat *chat, const char *name, size_t n, const uint64_t *ids,
                                 const char *const *jsons, const size_t *lens)
{
    if (!wsx_chat_valid_room(name, strlen(name))) return WSX_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!message_ok(jsons[i], lens[i], ids[i])) return WSX_EINVAL;
    size_t cap = chat->opts.history;
    if (!cap || !n) return 0;
    wsx_chat_lock(chat);
    room *r = wsx__chat_room_get(chat, name);
    if (!r) {
        wsx_chat_unlock(chat);
        return WSX_ELIMIT;
    }
    ptrdiff_t added = 0;
    size_t local = r->hist_n, m = 0, kept = 0;
    entry *e = malloc((local + n) * sizeof *e);
    if (!e) {
        added = WSX_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < local; i++) {
        size_t slot = (r->hist_first + i) % cap;
        e[m++] = (entry){r->hist_id[slot], r->hist[slot], strlen(r->hist[slot]), slot};
    }
    for (size_t i = 0; i < n; i++)
        e[m++] = (entry){ids[i], (char *)jsons[i], lens[i], SIZE_MAX};
    qsort(e, m, sizeof *e, by_id);
    /* One entry per id, the newest `cap` kept; nothing to do when the room lacks none. */
    size_t new_ones = 0;
    for (size_t i = 0; i < m; i++) {
        if (kept && e[kept - 1].id == e[i].id) continue;
        e[kept++] = e[i];
    }
    size_t first = kept > cap ? kept - cap : 0;
    for (size_t i = first; i < kept; i++)
        new_ones += e[i].slot == SIZE_MAX;
    if (!new_ones) goto out;
    /* Every text that stays is made a heap copy the history can own (the room's own ones are
     * copied too: its ring is emptied below), before anything changes. */
    for (size_t i = first; i < kept; i++) {
        size_t len = e[i].len;
        char *c = malloc(len + 1);
        if (!c) {
            for (size_t k = first; k < i; k++)
                free(e[k].json);
            added = WSX_ENOMEM;
            goto out;
        }
        memcpy(c, e[i].json, len);
        c[len] = '\0';
        e[i].json = c;
    }
    wsx__chat_history_clear(chat, r);
    for (size_t i = first; i < kept; i++) {
        if (e[i].id >= r->next_id) r->next_id = e[i].id + 1;
        wsx__chat_history_add(chat, r, e[i].id, e[i].json);
    }
    added = (ptrdiff_t)new_ones;
out:
    free(e);
    wsx__chat_room_release(chat, r);
    wsx_chat_unlock(chat);
    return added;
}

void wsx_chat_history_set_complete(wsx_chat *chat, const char *name, bool complete)
{
    wsx_chat_lock(chat);
    room *r = wsx__chat_room_find(chat, name);
    if (r) r->complete_gen = complete ? chat->complete_gen + 1 : 0;
    wsx_chat_unlock(chat);
}

bool wsx_chat_history_complete(wsx_chat *chat, const char *name)
{
    wsx_chat_lock(chat);
    room *r = wsx__chat_room_find(chat, name);
    bool c = r && r->complete_gen == chat->complete_gen + 1;
    wsx_chat_unlock(chat);
    return c;
}

void wsx_chat_history_clear_complete(wsx_chat *chat)
{
    wsx_chat_lock(chat);
    chat->complete_gen++;
    wsx_chat_unlock(chat);
}
