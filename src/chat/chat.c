/*
 * The chat: rooms, members, presence, history and the protocol's rules (docs/chat-protocol.md).
 * A room's members are subscribed to the room through the front end (ops->subscribe), so an
 * event is serialised once and published to them all.
 */
#include "chat/chat_priv.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat/unicode_cf.h"
#include "proto/siphash.h"
#include "ws/ws.h"
#include "wsx.h"

wsx_chat_opts wsx_chat_defaults(void)
{
    return (wsx_chat_opts){.history = 100,
                           .max_rooms = 10000,
                           .server_name = "wsx 0.1.0",
                           .history_bytes = 64u << 20,
                           .history_idle_ms = 86400000,
                           .rate = 20,
                           .burst = 40,
                           .join_rate = 5,
                           .join_burst = 100,
                           .rate_per_ip = 100,
                           .burst_per_ip = 200,
                           .join_rate_per_ip = 10,
                           .join_burst_per_ip = 200,
                           .max_refusals = 100,
                           .refusal_window_ms = 10000,
                           .post_rate = 100,
                           .post_burst = 200};
}

void wsx_chat_lock(wsx_chat *chat)
{
    pthread_mutex_lock(&chat->mu);
}

void wsx_chat_unlock(wsx_chat *chat)
{
    pthread_mutex_unlock(&chat->mu);
}

/* ---- rooms ---- */

static room *find_room(wsx_chat *chat, const char *name)
{
    size_t n = strlen(name);
    uint64_t h = wsx__chat_hash(chat, 0, name, n);
    for (room *r = chat->buckets[h & (chat->n_buckets - 1)]; r; r = r->hnext)
        if (r->hash == h && !strcmp(r->name, name)) return r;
    return NULL;
}

static bool room_idle(const room *r)
{
    return !r->members && !r->listeners;
}

static void idle_remove(wsx_chat *chat, room *r)
{
    if (!r->in_idle) return;
    if (r->idle_prev)
        r->idle_prev->idle_next = r->idle_next;
    else
        chat->idle_head = r->idle_next;
    if (r->idle_next)
        r->idle_next->idle_prev = r->idle_prev;
    else
        chat->idle_tail = r->idle_prev;
    r->idle_prev = r->idle_next = NULL;
    r->in_idle = false;
}

static void idle_append(wsx_chat *chat, room *r)
{
    r->idle_prev = chat->idle_tail;
    r->idle_next = NULL;
    if (chat->idle_tail)
        chat->idle_tail->idle_next = r;
    else
        chat->idle_head = r;
    chat->idle_tail = r;
    r->in_idle = true;
}

/* ---- the history's shared form and its budget ---- */

static void cache_drop(wsx_chat *chat, room *r)
{
    if (!r->cache) return;
    chat->ops.cache_free(r->cache, chat->opts.user);
    r->cache = NULL;
}

static void post_remove(wsx_chat *chat, room *r)
{
    if (!r->in_post) return;
    if (r->post_prev)
        r->post_prev->post_next = r->post_next;
    else
        chat->post_head = r->post_next;
    if (r->post_next)
        r->post_next->post_prev = r->post_prev;
    else
        chat->post_tail = r->post_prev;
    r->post_prev = r->post_next = NULL;
    r->in_post = false;
}

/* r was just posted to: it goes to the end of the list (the last to be evicted). */
static void post_touch(wsx_chat *chat, room *r)
{
    post_remove(chat, r);
    r->post_prev = chat->post_tail;
    if (chat->post_tail)
        chat->post_tail->post_next = r;
    else
        chat->post_head = r;
    chat->post_tail = r;
    r->in_post = true;
}

static size_t hist_cost(const char *json)
{
    return strlen(json) + WSX_CHAT_HISTORY_OVERHEAD;
}

/* Frees r's oldest message. */
static void drop_oldest(wsx_chat *chat, room *r)
{
    char *json = r->hist[r->hist_first];
    size_t c = hist_cost(json);
    free(json);
    r->hist[r->hist_first] = NULL;
    r->hist_first = (r->hist_first + 1) % chat->opts.history;
    r->hist_n--;
    r->hist_bytes -= c;
    chat->hist_bytes -= c;
    chat->hist_msgs--;
    if (r->hist_n == 0) post_remove(chat, r);
}

/* Frees r's whole history (the room itself stays; see drop_history). */
static void clear_history(wsx_chat *chat, room *r)
{
    while (r->hist_n)
        drop_oldest(chat, r);
    r->hist_first = 0;
    cache_drop(chat, r);
}

static void destroy_room(wsx_chat *chat, room *r)
{
    if (r->hist) clear_history(chat, r);
    cache_drop(chat, r);
    post_remove(chat, r);
    free(r->hist);
    free(r->hist_id);
    free(r->people);
    free(r->online);
    free(r);
}

static void free_room(wsx_chat *chat, room *r)
{
    room **pp = &chat->buckets[r->hash & (chat->n_buckets - 1)];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    idle_remove(chat, r);
    chat->n_rooms--;
    destroy_room(chat, r);
}

/* A room nobody is in and nobody listens to costs nothing if it has nothing to remember;
 * with history it joins the idle list, the place where the room cap finds rooms to evict. */
static void release_room(wsx_chat *chat, room *r)
{
    if (!room_idle(r)) return;
    /* Nobody left to send the shared history to: do not keep it. */
    cache_drop(chat, r);
    if (r->hist_n == 0) {
        free_room(chat, r);
        return;
    }
    if (!r->in_idle) {
        r->idle_since = wsx__chat_clock(chat);
        idle_append(chat, r);
    }
}

/* Doubles the bucket array; on failure the table stays as it is (only slower). */
static void grow(wsx_chat *chat)
{
    size_t nb = chat->n_buckets * 2;
    room **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < chat->n_buckets; i++) {
        while (chat->buckets[i]) {
            room *r = chat->buckets[i];
            chat->buckets[i] = r->hnext;
            r->hnext = b[r->hash & (nb - 1)];
            b[r->hash & (nb - 1)] = r;
        }
    }
    free(chat->buckets);
    chat->buckets = b;
    chat->n_buckets = nb;
}

/* The room called name, made if needed; it is taken off the idle list, as the caller is
 * about to put a member or listener in it (or to release it again). NULL at the room cap
 * with no idle room to evict, or out of memory. */
static room *get_room(wsx_chat *chat, const char *name)
{
    room *r = find_room(chat, name);
    if (r) {
        idle_remove(chat, r);
        return r;
    }
    if (chat->n_rooms >= chat->opts.max_rooms) {
        /* At the cap, the room idle longest (and its history) makes way, so a flood of
         * made-up room names cannot lock everyone out of new rooms. */
        if (!chat->idle_head) return NULL;
        free_room(chat, chat->idle_head);
    }
    r = calloc(1, sizeof *r);
    if (!r) return NULL;
    size_t n = strlen(name);
    memcpy(r->name, name, n < WSX_CHAT_MAX_ROOM ? n : WSX_CHAT_MAX_ROOM);
    if (chat->opts.history) {
        r->hist = calloc(chat->opts.history, sizeof *r->hist);
        r->hist_id = calloc(chat->opts.history, sizeof *r->hist_id);
        if (!r->hist || !r->hist_id) {
            destroy_room(chat, r);
            return NULL;
        }
    }
    r->next_id = 1;
    if (chat->n_rooms >= chat->n_buckets) grow(chat);
    r->hash = wsx__chat_hash(chat, 0, r->name, strlen(r->name));
    size_t b = r->hash & (chat->n_buckets - 1);
    r->hnext = chat->buckets[b];
    chat->buckets[b] = r;
    chat->n_rooms++;
    return r;
}

/* Drops the history of a room other than the one being posted to, and the room too if it
 * is idle (an idle room without history is not kept). */
static void drop_history(wsx_chat *chat, room *r)
{
    clear_history(chat, r);
    if (room_idle(r)) free_room(chat, r);
}

static void history_add(wsx_chat *chat, room *r, uint64_t id, char *json)
{
    size_t cap = chat->opts.history;
    if (!cap) {
        free(json);
        return;
    }
    cache_drop(chat, r);
    if (r->hist_n == cap) drop_oldest(chat, r);
    size_t slot = (r->hist_first + r->hist_n) % cap;
    r->hist_n++;
    r->hist[slot] = json;
    r->hist_id[slot] = id;
    size_t c = hist_cost(json);
    r->hist_bytes += c;
    chat->hist_bytes += c;
    chat->hist_msgs++;
    post_touch(chat, r);
    /* Over the budget: the room posted to least recently loses its whole history (its
     * readers are the least likely to miss it); when that is r itself, r keeps its newest. */
    while (chat->opts.history_bytes && chat->hist_bytes > chat->opts.history_bytes) {
        room *v = chat->post_head;
        if (v != r)
            drop_history(chat, v);
        else if (r->hist_n > 1)
            drop_oldest(chat, r);
        else
            break;
    }
}

/* ---- the history as the front end sees it ---- */

struct wsx_chat_history {
    wsx_chat *chat;
    room *r;
};

const char *wsx_chat_history_room(const wsx_chat_history *h)
{
    return h->r->name;
}

size_t wsx_chat_history_count(const wsx_chat_history *h)
{
    return h->r->hist_n;
}

const char *wsx_chat_history_get(const wsx_chat_history *h, size_t i, uint64_t *id, size_t *len)
{
    size_t slot = (h->r->hist_first + i) % h->chat->opts.history;
    if (id) *id = h->r->hist_id[slot];
    if (len) *len = strlen(h->r->hist[slot]);
    return h->r->hist[slot];
}

char *wsx_chat_history_json(const wsx_chat_history *h, size_t *len)
{
    /* The stored texts are parsed back so that the whole message is the encoder's output;
     * a front end with shared history (wsx serve) pays this once per history change, not
     * once per join. */
    json_t *msgs = json_array();
    for (size_t i = 0; msgs && i < h->r->hist_n; i++) {
        size_t hl;
        const char *m = wsx_chat_history_get(h, i, NULL, &hl);
        if (json_array_append_new(msgs, json_loadb(m, hl, 0, NULL)) < 0) {
            json_decref(msgs);
            msgs = NULL;
        }
    }
    json_t *o = wsx__chat_jevent("history");
    wsx__chat_jset(&o, "room", wsx__chat_jname(h->r->name));
    wsx__chat_jset(&o, "messages", msgs);
    jtext t;
    char *out = wsx__chat_jdump(&t, o) ? wsx__chat_jtext_dup(&t) : NULL;
    if (out) *len = t.len;
    wsx__chat_jtext_free(&t);
    return out;
}

static bool shared_history(const wsx_chat *chat)
{
    return chat->ops.send_history && chat->ops.sse_history && chat->ops.cache_free;
}

/* Sends m the `history` message of r: from the front end's shared form when it keeps one,
 * else a copy of its own. */
static void send_history(wsx_chat *chat, wsx_chat_conn *m, room *r)
{
    wsx_chat_history h = {chat, r};
    if (shared_history(chat)) {
        chat->ops.send_history(m->ctx, &r->cache, &h, chat->opts.user);
        return;
    }
    size_t len;
    char *s = wsx_chat_history_json(&h, &len);
    if (!s) return;
    chat->ops.send(m->ctx, s, len, chat->opts.user);
    free(s);
}

/* ---- people ---- */

/* The index of name among r's people, or where it would go (*found false). */
static size_t person_find(const room *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->n_people;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->people[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void online_changed(room *r)
{
    free(r->online);
    r->online = NULL;
}

/* Adds a tab of (name, key) to r; returns its tab count, 0 when out of memory. */
static size_t person_add(room *r, const char *name, uint64_t key)
{
    bool found;
    size_t i = person_find(r, name, &found);
    online_changed(r);
    if (found) return ++r->people[i].tabs;
    if (r->n_people == r->cap_people) {
        size_t cap = r->cap_people ? r->cap_people * 2 : 4;
        person *p = realloc(r->people, cap * sizeof *p);
        if (!p) return 0;
        r->people = p;
        r->cap_people = cap;
    }
    memmove(r->people + i + 1, r->people + i, (r->n_people - i) * sizeof *r->people);
    r->n_people++;
    person *p = &r->people[i];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->key = key;
    p->tabs = 1;
    return 1;
}

/* Removes a tab of name from r; returns the tabs left. */
static size_t person_remove(room *r, const char *name)
{
    bool found;
    size_t i = person_find(r, name, &found);
    if (!found) return 0;
    online_changed(r);
    if (--r->people[i].tabs > 0) return r->people[i].tabs;
    r->n_people--;
    memmove(r->people + i, r->people + i + 1, (r->n_people - i) * sizeof *r->people);
    return 0;
}

/* ---- output ---- */

static void publish_sb(wsx_chat *chat, room *r, sb *b, void *except)
{
    if (!b->oom) chat->ops.publish(r->name, b->p, b->len, 0, except, chat->opts.user);
    wsx__chat_sb_free(b);
}

static void send_json(wsx_chat *chat, wsx_chat_conn *m, json_t *o)
{
    jtext t;
    if (wsx__chat_jdump(&t, o)) chat->ops.send(m->ctx, t.p, t.len, chat->opts.user);
    wsx__chat_jtext_free(&t);
}

void wsx__chat_send_error(wsx_chat *chat, wsx_chat_conn *m, const char *code, const char *msg)
{
    json_t *o = wsx__chat_jevent("error");
    wsx__chat_jset(&o, "code", json_string_nocheck(code));
    wsx__chat_jset(&o, "message", json_string_nocheck(msg));
    send_json(chat, m, o);
}

/* Presence: "join" when a person's first tab arrives, "leave" when the last one goes;
 * other tab changes only update the online list. */
static void presence(wsx_chat *chat, room *r, const char *name, bool joined, size_t tabs_now)
{
    bool changed = joined ? tabs_now == 1 : tabs_now == 0;
    char stack[2048];
    sb b = SB_INIT(stack);
    if (changed) {
        SB_LIT(&b, "{\"type\":\"presence\",\"room\":");
        wsx__chat_sb_cstr(&b, r->name);
        if (joined)
            SB_LIT(&b, ",\"event\":\"join\",\"name\":");
        else
            SB_LIT(&b, ",\"event\":\"leave\",\"name\":");
        wsx__chat_sb_cstr(&b, name);
    } else {
        SB_LIT(&b, "{\"type\":\"online\",\"room\":");
        wsx__chat_sb_cstr(&b, r->name);
    }
    SB_LIT(&b, ",\"online\":");
    wsx__chat_sb_online(&b, r);
    SB_LIT(&b, "}");
    publish_sb(chat, r, &b, NULL);
}

/* Takes m out of its room. The room is freed if that left it with nothing to keep, unless
 * it is `keep` (the room m is about to join again: freeing it there was the crash of
 * issue 10). */
static void leave_room(wsx_chat *chat, wsx_chat_conn *m, const room *keep)
{
    room *r = m->room;
    if (!r) return;
    chat->ops.unsubscribe(m->ctx, r->name, chat->opts.user);
    if (m->prev)
        m->prev->next = m->next;
    else
        r->members = m->next;
    if (m->next) m->next->prev = m->prev;
    chat->n_members--;
    m->room = NULL;
    m->next = m->prev = NULL;
    presence(chat, r, m->name, false, person_remove(r, m->name));
    if (r != keep) release_room(chat, r);
}

static void do_join(wsx_chat *chat, wsx_chat_conn *m, json_t *req)
{
    /* A join makes the server queue the room's history (shared, but counted in this
     * connection's queue) for a 50-byte request: not while the client is not reading. */
    if (chat->opts.join_max_queued && chat->ops.queued &&
        chat->ops.queued(m->ctx, chat->opts.user) > chat->opts.join_max_queued) {
        if (!m->slowed)
            wsx__chat_send_error(
                chat, m, "slow_down",
                "too much is queued for this connection: read it, then join again");
        m->slowed = true;
        return;
    }
    m->slowed = false;
    const char *room_name = "lobby", *name = NULL;
    size_t rl = 5, nl = 0;
    json_t *jr = json_object_get(req, "room"), *jn = json_object_get(req, "name");
    if (jr) {
        if (!json_is_string(jr))
            return wsx__chat_send_error(chat, m, "bad_room", "room must be a string");
        room_name = json_string_value(jr);
        rl = json_string_length(jr);
        room_name = wsx__chat_trim(room_name, &rl);
    }
    if (!wsx_chat_valid_room(room_name, rl))
        return wsx__chat_send_error(chat, m, "bad_room",
                                    "room: 1 to 32 characters from A-Z a-z 0-9 _ . -");
    if (!json_is_string(jn)) return wsx__chat_send_error(chat, m, "bad_name", "name is required");
    name = json_string_value(jn);
    nl = json_string_length(jn);
    name = wsx__chat_trim(name, &nl);
    if (!wsx__chat_valid_name(name, nl))
        return wsx__chat_send_error(chat, m, "bad_name",
                                    "name: 1 to 32 characters, no control or format characters");
    uint64_t key = 0;
    json_t *jk = json_object_get(req, "key");
    if (jk && !json_is_null(jk)) {
        size_t kl = json_string_length(jk);
        if (!json_is_string(jk) || kl < 1 || kl > WSX_CHAT_MAX_KEY)
            return wsx__chat_send_error(chat, m, "bad_key", "key: a string of 1 to 128 bytes");
        /* Only a keyed hash of the secret is kept; | 1 keeps 0 for "no key". */
        key = wsx__chat_hash(chat, 1, json_string_value(jk), kl) | 1;
    }
    char rname[WSX_CHAT_MAX_ROOM + 1], pname[sizeof m->name];
    snprintf(rname, sizeof rname, "%.*s", (int)rl, room_name);
    snprintf(pname, sizeof pname, "%.*s", (int)nl, name);
    /* A name belongs to the person present under it: another key, or no key at all, cannot
     * take it, whatever the tab count (without a key nobody can prove to be the same person,
     * so keyless joins never merge into one). m's own tab does not count: rejoining as
     * oneself under a new key is a new person. */
    room *r = find_room(chat, rname);
    if (r) {
        bool found;
        size_t i = person_find(r, pname, &found);
        size_t mine = m->room == r && !strcmp(m->name, pname);
        if (found && (!key || r->people[i].key != key) && r->people[i].tabs > mine)
            return wsx__chat_send_error(chat, m, "name_taken",
                                        "someone else in this room goes by that name");
    }
    if (!wsx__chat_rate_ok(chat, m, true)) return;
    r = get_room(chat, rname);
    if (!r) return wsx__chat_send_error(chat, m, "bad_room", "too many rooms");
    leave_room(chat, m, r);
    memcpy(m->name, pname, sizeof m->name);
    size_t tabs = person_add(r, m->name, key);
    if (!tabs || chat->ops.subscribe(m->ctx, r->name, chat->opts.user) < 0) {
        if (tabs) person_remove(r, m->name);
        release_room(chat, r);
        return wsx__chat_send_error(chat, m, "bad_room", "cannot join");
    }
    m->room = r;
    m->next = r->members;
    if (r->members) r->members->prev = m;
    m->prev = NULL;
    r->members = m;
    chat->n_members++;

    /* joined is small and this connection's own; the history follows as one message that
     * every joiner shares until the history changes. */
    char stack[2048];
    sb head = SB_INIT(stack);
    SB_LIT(&head, "{\"type\":\"joined\",\"room\":");
    wsx__chat_sb_cstr(&head, r->name);
    SB_LIT(&head, ",\"name\":");
    wsx__chat_sb_cstr(&head, m->name);
    SB_LIT(&head, ",\"online\":");
    wsx__chat_sb_online(&head, r);
    SB_LIT(&head, "}");
    if (!head.oom) chat->ops.send(m->ctx, head.p, head.len, chat->opts.user);
    wsx__chat_sb_free(&head);
    send_history(chat, m, r);
    presence(chat, r, m->name, true, tabs);
}

/* Whether text (trimmed in place) is a message's text as the protocol allows it. */
static bool text_ok(const char **text, size_t *tl)
{
    *text = wsx__chat_trim(*text, tl);
    return *tl && wsx__chat_utf8_chars(*text, *tl) <= WSX_CHAT_MAX_TEXT;
}

/* Posts a checked text to r as name (a member's message, or a backend's with "bot":true):
 * one id, one JSON text for the members, the SSE listeners and the history. Returns the id,
 * WSX_CHAT_SEQUENCED when the sequencer took it (ops.sequence), 0 when out of memory. */
static uint64_t post_text(wsx_chat *chat, room *r, const char *name, const char *text, size_t tl,
                          bool bot)
{
    if (chat->ops.sequence) {
        char *s = wsx__chat_message_json(chat, r, 0, name, text, tl, bot);
        if (!s) return 0;
        bool taken = chat->ops.sequence(r->name, s, strlen(s), chat->opts.user);
        free(s);
        if (taken) return WSX_CHAT_SEQUENCED;
    }
    uint64_t id = r->next_id++;
    /* The history keeps the text: the heap copy that was built. */
    char *s = wsx__chat_message_json(chat, r, id, name, text, tl, bot);
    if (!s) return 0;
    chat->ops.publish(r->name, s, strlen(s), id, NULL, chat->opts.user);
    history_add(chat, r, id, s);
    return id;
}

room *wsx__chat_room_get(wsx_chat *chat, const char *name)
{
    return name ? get_room(chat, name) : NULL;
}

room *wsx__chat_room_find(wsx_chat *chat, const char *name)
{
    return find_room(chat, name);
}

void wsx__chat_room_release(wsx_chat *chat, room *r)
{
    release_room(chat, r);
}

void wsx__chat_history_add(wsx_chat *chat, room *r, uint64_t id, char *json)
{
    history_add(chat, r, id, json);
}

void wsx__chat_history_clear(wsx_chat *chat, room *r)
{
    clear_history(chat, r);
}

static void do_message(wsx_chat *chat, wsx_chat_conn *m, json_t *req)
{
    if (!m->room) return wsx__chat_send_error(chat, m, "not_joined", "join a room first");
    json_t *jt = json_object_get(req, "text");
    if (!json_is_string(jt))
        return wsx__chat_send_error(chat, m, "bad_text", "text must be a string");
    size_t tl = json_string_length(jt);
    const char *text = json_string_value(jt);
    if (!text_ok(&text, &tl))
        return wsx__chat_send_error(chat, m, "bad_text", "text: 1 to 2000 characters");
    if (!wsx__chat_rate_ok(chat, m, false)) return;
    post_text(chat, m->room, m->name, text, tl, false);
}

static void do_typing(wsx_chat *chat, wsx_chat_conn *m, json_t *req)
{
    if (!m->room) return wsx__chat_send_error(chat, m, "not_joined", "join a room first");
    if (!wsx__chat_rate_ok(chat, m, false)) return;
    json_t *o = wsx__chat_jevent("typing");
    wsx__chat_jset(&o, "room", wsx__chat_jname(m->room->name));
    wsx__chat_jset(&o, "name", wsx__chat_jname(m->name));
    wsx__chat_jset(&o, "typing", json_boolean(json_is_true(json_object_get(req, "typing"))));
    jtext t;
    if (wsx__chat_jdump(&t, o))
        chat->ops.publish(m->room->name, t.p, t.len, 0, m->ctx, chat->opts.user);
    wsx__chat_jtext_free(&t);
}

/* A leave outside any room changes nothing and costs nothing. */
static void do_leave(wsx_chat *chat, wsx_chat_conn *m)
{
    if (m->room && wsx__chat_rate_ok(chat, m, true)) leave_room(chat, m, NULL);
}

/* ---- the API ---- */

int wsx_chat_new(const wsx_chat_opts *opts, const wsx_chat_ops *ops, wsx_chat **out)
{
    wsx_chat *chat = calloc(1, sizeof *chat);
    if (!chat) return WSX_ENOMEM;
    chat->opts = *opts;
    if (!chat->opts.server_name) chat->opts.server_name = "wsx 0.1.0";
    if (!chat->opts.max_rooms) chat->opts.max_rooms = 10000;
    chat->ops = *ops;
    chat->n_buckets = 64;
    chat->buckets = calloc(chat->n_buckets, sizeof *chat->buckets);
    uint8_t key[16];
    if (!chat->buckets || wsx_random_bytes(key, sizeof key) < 0) {
        free(chat->buckets);
        free(chat);
        return WSX_ENOMEM;
    }
    memcpy(chat->hash_key, key, sizeof key);
    chat->posts.tokens = (uint64_t)chat->opts.post_burst * 1000;
    chat->posts.refill_ms = wsx__chat_clock(chat);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    /* Recursive: an op may lead the front end back into the chat (a send that closes a
     * connection, an HTTP answer that serves the next request). */
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init(&chat->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    if (rc != 0) {
        free(chat->buckets);
        free(chat);
        return WSX_ENOMEM;
    }
    *out = chat;
    return 0;
}

void wsx_chat_free(wsx_chat *chat)
{
    if (!chat) return;
    for (size_t b = 0; b < chat->n_buckets; b++) {
        while (chat->buckets[b]) {
            room *r = chat->buckets[b];
            chat->buckets[b] = r->hnext;
            for (wsx_chat_conn *m = r->members; m; m = m->next)
                m->room = NULL;
            while (r->listeners) {
                wsx_chat_listener *l = r->listeners;
                r->listeners = l->next;
                free(l);
            }
            destroy_room(chat, r);
        }
    }
    free(chat->buckets);
    /* Every address's bucket, idle or still held by a connection. */
    for (size_t b = 0; b < chat->n_abuckets; b++) {
        while (chat->abuckets[b]) {
            addr *a = chat->abuckets[b];
            chat->abuckets[b] = a->hnext;
            free(a);
        }
    }
    free(chat->abuckets);
    pthread_mutex_destroy(&chat->mu);
    free(chat);
}

wsx_chat_conn *wsx_chat_conn_open(wsx_chat *chat, void *conn, const struct sockaddr *peer)
{
    wsx_chat_conn *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->ctx = conn;
    wsx_chat_lock(chat);
    m->id = ++chat->next_conn_id;
    m->msgs.tokens = (uint64_t)chat->opts.burst * 1000;
    m->joins.tokens = (uint64_t)chat->opts.join_burst * 1000;
    m->msgs.refill_ms = m->joins.refill_ms = wsx__chat_clock(chat);
    m->addr = wsx__chat_addr_get(chat, peer, m->msgs.refill_ms);
    chat->n_conns++;
    char id[24];
    snprintf(id, sizeof id, "c%llu", (unsigned long long)m->id);
    json_t *o = wsx__chat_jevent("welcome");
    /* server_name is the operator's text: checked, and replaced when it is not UTF-8. */
    json_t *server = json_string(chat->opts.server_name);
    wsx__chat_jset(&o, "server", server ? server : json_string_nocheck("wsx"));
    wsx__chat_jset(&o, "id", json_string_nocheck(id));
    wsx__chat_jset(&o, "limits",
                   json_pack("{s:i,s:i,s:i}", "name", WSX_CHAT_MAX_NAME, "room", WSX_CHAT_MAX_ROOM,
                             "text", WSX_CHAT_MAX_TEXT));
    send_json(chat, m, o);
    wsx_chat_unlock(chat);
    return m;
}

uint64_t wsx_chat_conn_id(const wsx_chat_conn *cc)
{
    return cc->id;
}

bool wsx_chat_conn_room(wsx_chat *chat, const wsx_chat_conn *cc, char *out, size_t cap)
{
    wsx_chat_lock(chat);
    bool in = cc->room != NULL;
    if (cap) snprintf(out, cap, "%s", in ? cc->room->name : "");
    wsx_chat_unlock(chat);
    return in;
}

void wsx_chat_conn_message(wsx_chat *chat, wsx_chat_conn *m, const char *data, size_t len,
                           bool binary)
{
    wsx_chat_lock(chat);
    if (m->closing) {
        wsx_chat_unlock(chat);
        return;
    }
    if (binary) {
        wsx__chat_send_error(chat, m, "binary", "binary messages are not accepted");
        wsx_chat_unlock(chat);
        return;
    }
    json_error_t err;
    json_t *req = json_loadb(data, len, 0, &err);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        wsx__chat_send_error(chat, m, "bad_json", "messages are JSON objects");
        wsx_chat_unlock(chat);
        return;
    }
    const char *type = json_string_value(json_object_get(req, "type"));
    if (!type)
        wsx__chat_send_error(chat, m, "bad_type", "missing \"type\"");
    else if (!strcmp(type, "join"))
        do_join(chat, m, req);
    else if (!strcmp(type, "message"))
        do_message(chat, m, req);
    else if (!strcmp(type, "typing"))
        do_typing(chat, m, req);
    else if (!strcmp(type, "leave"))
        do_leave(chat, m);
    else
        wsx__chat_send_error(chat, m, "bad_type", "unknown \"type\"");
    json_decref(req);
    wsx_chat_unlock(chat);
}

void wsx_chat_conn_close(wsx_chat *chat, wsx_chat_conn *m)
{
    if (!m) return;
    wsx_chat_lock(chat);
    leave_room(chat, m, NULL);
    chat->n_conns--;
    wsx__chat_addr_put(chat, m->addr, wsx__chat_clock(chat));
    wsx_chat_unlock(chat);
    free(m);
}

int wsx_chat_post(wsx_chat *chat, const char *room_name, const char *name, size_t nl,
                  const char *text, size_t tl, uint64_t *id, const char **why)
{
    const char *w = NULL;
    name = wsx__chat_trim(name, &nl);
    /* The text is not from a JSON parser here: it must be UTF-8 (utf8_chars counts only)
     * and hold no NUL, as a member's text cannot. */
    if (!wsx_chat_valid_room(room_name, strlen(room_name)))
        w = "bad_room";
    else if (!wsx__chat_valid_name(name, nl))
        w = "bad_name";
    else if (memchr(text, 0, tl) || !wsx_utf8_valid((const uint8_t *)text, tl) ||
             !text_ok(&text, &tl))
        w = "bad_text";
    if (w) {
        if (why) *why = w;
        return WSX_EINVAL;
    }
    char pname[WSX_CHAT_MAX_NAME * 4 + 1];
    snprintf(pname, sizeof pname, "%.*s", (int)nl, name);
    wsx_chat_lock(chat);
    int rc = 0;
    room *r = NULL;
    if (!wsx__chat_post_ok(chat))
        w = "rate_limited", rc = WSX_ELIMIT;
    else if (!(r = get_room(chat, room_name)))
        w = "too_many_rooms", rc = WSX_ELIMIT;
    else if (!(*id = post_text(chat, r, pname, text, tl, true)))
        w = "no_memory", rc = WSX_ENOMEM;
    else if (*id == WSX_CHAT_SEQUENCED)
        *id = 0;
    /* A room nobody is in keeps the post in its history (and goes back to the idle list). */
    if (r) release_room(chat, r);
    wsx_chat_unlock(chat);
    if (why) *why = w;
    return rc;
}

int wsx_chat_listener_add(wsx_chat *chat, const char *name, void *listener, wsx_chat_listener **out)
{
    if (!wsx_chat_valid_room(name, strlen(name))) return WSX_EINVAL;
    wsx_chat_lock(chat);
    bool full = chat->n_rooms >= chat->opts.max_rooms;
    room *r = get_room(chat, name);
    wsx_chat_listener *l = r ? calloc(1, sizeof *l) : NULL;
    if (!l) {
        if (r) release_room(chat, r);
        wsx_chat_unlock(chat);
        return r || !full ? WSX_ENOMEM : WSX_ELIMIT;
    }
    l->ctx = listener;
    l->room = r;
    l->next = r->listeners;
    if (l->next) l->next->prev = l;
    r->listeners = l;
    chat->n_listeners++;
    *out = l;
    wsx_chat_unlock(chat);
    return 0;
}

void wsx_chat_listener_replay(wsx_chat *chat, wsx_chat_listener *l, uint64_t after)
{
    wsx_chat_lock(chat);
    room *r = l->room;
    if (shared_history(chat)) {
        wsx_chat_history h = {chat, r};
        if (r->hist_n) chat->ops.sse_history(l->ctx, &r->cache, &h, after, chat->opts.user);
        wsx_chat_unlock(chat);
        return;
    }
    for (size_t i = 0; i < r->hist_n; i++) {
        size_t slot = (r->hist_first + i) % chat->opts.history;
        if (r->hist_id[slot] > after)
            chat->ops.sse_send(l->ctx, r->hist_id[slot], r->hist[slot], strlen(r->hist[slot]),
                               chat->opts.user);
    }
    wsx_chat_unlock(chat);
}

void wsx_chat_listener_remove(wsx_chat *chat, wsx_chat_listener *l)
{
    if (!l) return;
    wsx_chat_lock(chat);
    room *r = l->room;
    if (l->prev)
        l->prev->next = l->next;
    else
        r->listeners = l->next;
    if (l->next) l->next->prev = l->prev;
    chat->n_listeners--;
    free(l);
    release_room(chat, r);
    wsx_chat_unlock(chat);
}

void wsx_chat_listeners_each(wsx_chat *chat, const char *name,
                             void (*fn)(void *listener, void *arg), void *arg)
{
    wsx_chat_lock(chat);
    room *r = find_room(chat, name);
    /* fn may remove the listener it is given (a write that fails), so the next is read first. */
    for (wsx_chat_listener *l = r ? r->listeners : NULL, *next; l; l = next) {
        next = l->next;
        fn(l->ctx, arg);
    }
    wsx_chat_unlock(chat);
}

void wsx_chat_listeners_all(wsx_chat *chat, void (*fn)(void *listener, void *arg), void *arg)
{
    wsx_chat_lock(chat);
    /* As above; removing a room's last listener may free the room too. */
    for (size_t b = 0; b < chat->n_buckets; b++) {
        for (room *r = chat->buckets[b], *rnext; r; r = rnext) {
            rnext = r->hnext;
            for (wsx_chat_listener *l = r->listeners, *next; l; l = next) {
                next = l->next;
                fn(l->ctx, arg);
            }
        }
    }
    wsx_chat_unlock(chat);
}

void wsx_chat_get_stats(wsx_chat *chat, wsx_chat_stats *out)
{
    wsx_chat_lock(chat);
    out->rooms = chat->n_rooms;
    out->members = chat->n_members;
    out->listeners = chat->n_listeners;
    out->conns = chat->n_conns;
    out->history_bytes = chat->hist_bytes;
    out->history_messages = chat->hist_msgs;
    out->addresses = chat->n_addrs;
    out->rate_limited = chat->rate_limited;
    out->rate_closes = chat->rate_closes;
    wsx_chat_unlock(chat);
}

size_t wsx_chat_expire(wsx_chat *chat)
{
    size_t n = 0;
    wsx_chat_lock(chat);
    uint64_t t = wsx__chat_clock(chat);
    /* The idle list is in the order the rooms went idle: stop at the first that has not
     * waited long enough. */
    while (chat->opts.history_idle_ms && chat->idle_head) {
        room *r = chat->idle_head;
        if (t < r->idle_since || t - r->idle_since < chat->opts.history_idle_ms) break;
        free_room(chat, r);
        n++;
    }
    wsx__chat_addr_sweep(chat, t);
    wsx_chat_unlock(chat);
    return n;
}
