/*
 * The chat: rooms, members, presence, history and the protocol's rules (docs/chat-protocol.md).
 * A room's members are subscribed to the room through the front end (ops->subscribe), so an
 * event is serialised once and published to them all.
 */
#include "chat/chat.h"

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

typedef struct room room;

/* A person in a room: a display name and the key its tabs proved (0: none), with the number
 * of its tabs (connections). Names are unique among the people of a room. */
typedef struct person {
    char name[4 * WSX_CHAT_MAX_NAME + 1];
    uint64_t key;
    size_t tabs;
} person;

struct wsx_chat_listener {
    wsx_chat_listener *next, *prev; /* in the room */
    room *room;
    void *ctx;
};

struct room {
    room *hnext;                 /* in its hash bucket */
    room *idle_prev, *idle_next; /* in the idle list, when idle with history */
    bool in_idle;
    uint64_t hash;
    char name[WSX_CHAT_MAX_ROOM + 1];
    wsx_chat_conn *members; /* connections that joined, newest first */
    wsx_chat_listener *listeners;
    person *people; /* sorted by name (byte order): the online list */
    size_t n_people, cap_people;
    char *online; /* the online list as JSON, NULL when it changed since it was made */
    size_t online_len;
    /* History: the last `history` message objects, serialised, oldest at `hist_first`. */
    char **hist;
    uint64_t *hist_id;
    size_t hist_n, hist_first;
    uint64_t next_id;
    uint64_t idle_since; /* when it went on the idle list (--history-idle counts from it) */
    /* The history budget: what this room's history costs, and its place in the list of
     * rooms with history, the one posted to least recently first. */
    size_t hist_bytes;
    room *post_prev, *post_next;
    bool in_post;
    void *cache; /* the front end's shared form of the history (ops->send_history) */
};

typedef struct bucket {
    uint64_t tokens, refill_ms;
} bucket;

/* A client address's buckets of chat messages and of joins and leaves, shared by its
 * connections (rate_per_ip, join_rate_per_ip). */
typedef struct addr {
    uint8_t key[16]; /* wsx__addr_key: what admission counts by too */
    uint64_t hash;
    struct addr *hnext;                 /* in its hash bucket */
    struct addr *idle_prev, *idle_next; /* with no connection: in the idle list */
    uint64_t idle_since;
    size_t conns;
    bucket msgs, joins;
} addr;

struct wsx_chat_conn {
    wsx_chat_conn *next, *prev; /* in the room */
    void *ctx;
    room *room;
    uint64_t id;
    bool slowed; /* a join was refused with slow_down and none accepted since */
    char name[4 * WSX_CHAT_MAX_NAME + 1];
    /* The rate limits: token buckets (chat messages; joins and leaves) in thousandths of a
     * message, and the refusals of the current window. */
    bucket msgs, joins;
    addr *addr; /* its address's bucket; NULL: not limited per address */
    uint64_t window_ms;
    unsigned refusals;
    bool closing; /* closed for abuse: the rest of its input is ignored */
};

struct wsx_chat {
    wsx_chat_opts opts;
    wsx_chat_ops ops;
    pthread_mutex_t mu;
    /* Rooms by name: a chained hash table keyed with a secret, so that chosen room names
     * cannot pile up in one bucket. It doubles when it holds more rooms than buckets. */
    room **buckets;
    size_t n_buckets; /* a power of two */
    uint64_t hash_key[2];
    size_t n_rooms;
    /* Idle rooms (no member, no listener) that are kept for their history, the one idle
     * longest first: at the room cap the first makes way, in O(1). */
    room *idle_head, *idle_tail;
    /* Rooms with history, posted to least recently first, and what all history costs. */
    room *post_head, *post_tail;
    size_t hist_bytes, hist_msgs;
    size_t n_conns, n_members, n_listeners;
    uint64_t next_conn_id;
    /* Per-address buckets by address, in a hash table keyed like the rooms'; those of
     * addresses with no connection wait in the idle list, oldest first, until their bucket
     * is full again and they can be forgotten. */
    addr **abuckets;
    size_t n_abuckets, n_addrs, n_idle_addrs;
    addr *aidle_head, *aidle_tail;
    uint64_t rate_limited, rate_closes;
};

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
                           .refusal_window_ms = 10000};
}

void wsx_chat_lock(wsx_chat *chat)
{
    pthread_mutex_lock(&chat->mu);
}

void wsx_chat_unlock(wsx_chat *chat)
{
    pthread_mutex_unlock(&chat->mu);
}

static uint64_t now(wsx_chat *chat)
{
    return chat->ops.now_ms ? chat->ops.now_ms(chat->opts.user) : 0;
}

/* ---- text rules ---- */

/* Counts code points of valid UTF-8. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* Trims ASCII whitespace; returns the new start and sets *n. */
static const char *trim(const char *s, size_t *n)
{
    size_t len = *n;
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    *n = len;
    return s;
}

bool wsx_chat_valid_room(const char *s, size_t n)
{
    if (n < 1 || n > WSX_CHAT_MAX_ROOM) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

static bool format_char(uint32_t cp)
{
    size_t lo = 0, hi = sizeof chat_format_ranges / sizeof chat_format_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < chat_format_ranges[mid][0])
            hi = mid;
        else if (cp > chat_format_ranges[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* A name is what others see: no control characters (C0, DEL, C1), and none of the invisible
 * format characters (Unicode Cf, Zl, Zp) that would let two names look the same or reorder
 * the text around them (bidi overrides). */
static bool valid_name(const char *s, size_t n)
{
    if (n < 1 || utf8_chars(s, n) > WSX_CHAT_MAX_NAME) return false;
    if (!wsx_utf8_valid((const uint8_t *)s, n)) return false;
    for (size_t i = 0; i < n;) {
        const unsigned char *u = (const unsigned char *)s + i;
        uint32_t cp;
        size_t len;
        if (u[0] < 0x80)
            cp = u[0], len = 1;
        else if (u[0] < 0xE0)
            cp = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F), len = 2;
        else if (u[0] < 0xF0)
            cp = (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F),
            len = 3;
        else
            cp = (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 |
                 (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F),
            len = 4;
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || format_char(cp)) return false;
        i += len;
    }
    return true;
}

/* ---- rooms ---- */

/* SipHash-2-4 of s under the chat's key, varied by `which` (0: room names, 1: join keys,
 * 2: addresses). */
static uint64_t keyed_hash(const wsx_chat *chat, uint64_t which, const char *s, size_t n)
{
    const uint64_t key[2] = {chat->hash_key[0] ^ which, chat->hash_key[1]};
    return wsx__siphash(key, s, n);
}

static room *find_room(wsx_chat *chat, const char *name)
{
    size_t n = strlen(name);
    uint64_t h = keyed_hash(chat, 0, name, n);
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
        r->idle_since = now(chat);
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
    r->hash = keyed_hash(chat, 0, r->name, strlen(r->name));
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

/* ---- JSON output ---- */

/* Every message is built as jansson values and serialised by jansson's encoder, except the
 * three sent on each join and leave (joined, presence, online): see sb below. */

/* A text the chat checked (names, rooms) or jansson decoded (texts): valid UTF-8 already. */
static json_t *jname(const char *s)
{
    return json_string_nocheck(s);
}

/* Adds k: v to *o. A failure (out of memory) frees *o and leaves NULL, so that the message
 * is not sent at all rather than sent without a field. */
static void jset(json_t **o, const char *k, json_t *v)
{
    if (!*o)
        json_decref(v);
    else if (json_object_set_new_nocheck(*o, k, v) < 0) {
        json_decref(*o);
        *o = NULL;
    }
}

static json_t *jevent(const char *type)
{
    json_t *o = json_object();
    jset(&o, "type", json_string_nocheck(type));
    return o;
}

/* One serialised message: on the stack for the usual sizes. Not to be copied (p may point
 * into it). */
typedef struct jtext {
    char *p;
    size_t len;
    char stack[1024];
} jtext;

/* Serialises o into t, NUL-terminated, and drops o; false when o is NULL or memory ran out. */
static bool jdump(jtext *t, json_t *o)
{
    t->p = NULL;
    size_t n = o ? json_dumpb(o, t->stack, sizeof t->stack - 1, JSON_COMPACT) : 0;
    if (n && n < sizeof t->stack)
        t->p = t->stack;
    else if (n && (t->p = malloc(n + 1)) && json_dumpb(o, t->p, n, JSON_COMPACT) != n) {
        free(t->p);
        t->p = NULL;
    }
    if (t->p) t->p[n] = '\0';
    t->len = n;
    json_decref(o);
    return t->p != NULL;
}

static void jtext_free(jtext *t)
{
    if (t->p != t->stack) free(t->p);
}

/* A heap copy of t's text (NUL-terminated), NULL when out of memory. */
static char *jtext_dup(const jtext *t)
{
    char *s = t->p ? malloc(t->len + 1) : NULL;
    if (s) memcpy(s, t->p, t->len + 1);
    return s;
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
    json_t *o = jevent("history");
    jset(&o, "room", jname(h->r->name));
    jset(&o, "messages", msgs);
    jtext t;
    char *out = jdump(&t, o) ? jtext_dup(&t) : NULL;
    if (out) *len = t.len;
    jtext_free(&t);
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

/* ---- the events of joins and leaves ---- */

/* Every join sends three messages that carry the room's online list (joined, presence or
 * online, twice). Built with jansson they cost 3 to 4 times what these cached pieces cost
 * (bench_chat: about 250k joins per CPU-second at 10,000 rooms falls to about 65k, below
 * issue 10's 80k; jansson's encoder makes a hash table entry and a snprintf per array and
 * object it writes). So they are written here from the online list's text, made once per
 * change. A growing text: on the stack for the usual sizes, on the heap beyond. */
typedef struct sb {
    char *p;
    size_t len, cap;
    bool heap, oom;
} sb;

#define SB_INIT(stack)                                                                             \
    {                                                                                              \
        (stack), 0, sizeof(stack), false, false                                                    \
    }

static void sb_put(sb *b, const void *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + 256;
        char *q = b->heap ? realloc(b->p, cap) : malloc(cap);
        if (!q) {
            b->oom = true;
            return;
        }
        if (!b->heap) memcpy(q, b->p, b->len);
        b->p = q;
        b->cap = cap;
        b->heap = true;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define SB_LIT(b, lit) sb_put((b), (lit), sizeof(lit) - 1)

static void sb_u64(sb *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_put(b, d + i, sizeof d - i);
}

/* A JSON string (RFC 8259 7): quotes, backslashes and control characters escaped; the rest
 * (valid UTF-8, as every text here is) as it is. */
static void sb_str(sb *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    SB_LIT(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        sb_put(b, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', (char)ch, 0, 0, 0, 0};
        size_t el = 2;
        if (ch == '\n')
            e[1] = 'n';
        else if (ch == '\t')
            e[1] = 't';
        else if (ch == '\r')
            e[1] = 'r';
        else if (ch < 0x20) {
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[ch >> 4], e[5] = hex[ch & 15];
            el = 6;
        }
        sb_put(b, e, el);
    }
    sb_put(b, s + run, n - run);
    SB_LIT(b, "\"");
}

static void sb_cstr(sb *b, const char *s)
{
    sb_str(b, s, strlen(s));
}

static void sb_free(sb *b)
{
    if (b->heap) free(b->p);
}

/* The online list, `[{"name":N,"tabs":K},...]` sorted by name: made once per change. */
static void sb_online(sb *b, room *r)
{
    if (!r->online) {
        char stack[1024];
        sb o = SB_INIT(stack);
        SB_LIT(&o, "[");
        for (size_t i = 0; i < r->n_people; i++) {
            if (i) SB_LIT(&o, ",");
            SB_LIT(&o, "{\"name\":");
            sb_cstr(&o, r->people[i].name);
            SB_LIT(&o, ",\"tabs\":");
            sb_u64(&o, r->people[i].tabs);
            SB_LIT(&o, "}");
        }
        SB_LIT(&o, "]");
        if (!o.oom) r->online = malloc(o.len);
        if (r->online) {
            memcpy(r->online, o.p, o.len);
            r->online_len = o.len;
        }
        sb_free(&o);
        if (!r->online) {
            SB_LIT(b, "[]");
            return;
        }
    }
    sb_put(b, r->online, r->online_len);
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
    sb_free(b);
}

static void send_json(wsx_chat *chat, wsx_chat_conn *m, json_t *o)
{
    jtext t;
    if (jdump(&t, o)) chat->ops.send(m->ctx, t.p, t.len, chat->opts.user);
    jtext_free(&t);
}

static void send_error(wsx_chat *chat, wsx_chat_conn *m, const char *code, const char *msg)
{
    json_t *o = jevent("error");
    jset(&o, "code", json_string_nocheck(code));
    jset(&o, "message", json_string_nocheck(msg));
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
        sb_cstr(&b, r->name);
        if (joined)
            SB_LIT(&b, ",\"event\":\"join\",\"name\":");
        else
            SB_LIT(&b, ",\"event\":\"leave\",\"name\":");
        sb_cstr(&b, name);
    } else {
        SB_LIT(&b, "{\"type\":\"online\",\"room\":");
        sb_cstr(&b, r->name);
    }
    SB_LIT(&b, ",\"online\":");
    sb_online(&b, r);
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

/* ---- client messages ---- */

/* The token buckets: chat messages (message, typing) at `rate` per second, `burst` at once,
 * per connection, and at `rate_per_ip`, `burst_per_ip` per client address; joins and leaves,
 * which make the server write to everyone in a room, at `join_rate` and `join_burst` per
 * connection and `join_rate_per_ip`, `join_burst_per_ip` per address. Counted in thousandths of a
 * message so that the arithmetic is exact. A refused message is answered with rate_limited; more
 * than max_refusals refusals (of both kinds) within refusal_window_ms is a flood, not a hurry, and
 * closes the connection with 1008. */
static void refill(bucket *b, uint64_t t, uint32_t rate, uint32_t burst)
{
    uint64_t cap = (uint64_t)burst * 1000;
    if (t > b->refill_ms) {
        uint64_t add = (t - b->refill_ms) * rate;
        b->tokens = b->tokens + add > cap ? cap : b->tokens + add;
    }
    b->refill_ms = t;
}

static bool rate_ok(wsx_chat *chat, wsx_chat_conn *m, bool join)
{
    const wsx_chat_opts *o = &chat->opts;
    uint32_t rate = join ? o->join_rate : o->rate, burst = join ? o->join_burst : o->burst;
    bucket *b = rate ? (join ? &m->joins : &m->msgs) : NULL;
    uint32_t arate = join ? o->join_rate_per_ip : o->rate_per_ip;
    uint32_t aburst = join ? o->join_burst_per_ip : o->burst_per_ip;
    bucket *ab = m->addr && arate ? (join ? &m->addr->joins : &m->addr->msgs) : NULL;
    if (!b && !ab) return true;
    uint64_t t = now(chat);
    if (b) refill(b, t, rate, burst);
    if (ab) refill(ab, t, arate, aburst);
    bool over_conn = b && b->tokens < 1000, over_addr = ab && ab->tokens < 1000;
    if (!over_conn && !over_addr) {
        if (b) b->tokens -= 1000;
        if (ab) ab->tokens -= 1000;
        return true;
    }
    if (m->refusals == 0 || t - m->window_ms >= o->refusal_window_ms) {
        m->window_ms = t;
        m->refusals = 0;
    }
    if (++m->refusals > o->max_refusals) {
        m->closing = true;
        chat->rate_closes++;
        if (chat->ops.close) chat->ops.close(m->ctx, 1008, "rate limit exceeded", o->user);
        return false;
    }
    chat->rate_limited++;
    send_error(chat, m, "rate_limited",
               over_conn ? (join ? "too many joins: slow down" : "too many messages: slow down")
               : join    ? "too many joins from your address: slow down"
                         : "too many messages from your address: slow down");
    return false;
}

/* ---- the per-address buckets ---- */

static addr **addr_slot(wsx_chat *chat, const uint8_t key[16], uint64_t h)
{
    addr **pp = &chat->abuckets[h & (chat->n_abuckets - 1)];
    while (*pp && memcmp((*pp)->key, key, 16))
        pp = &(*pp)->hnext;
    return pp;
}

static void addr_idle_unlink(wsx_chat *chat, addr *a)
{
    if (a->idle_prev)
        a->idle_prev->idle_next = a->idle_next;
    else
        chat->aidle_head = a->idle_next;
    if (a->idle_next)
        a->idle_next->idle_prev = a->idle_prev;
    else
        chat->aidle_tail = a->idle_prev;
    a->idle_prev = a->idle_next = NULL;
    chat->n_idle_addrs--;
}

/* Milliseconds for an empty bucket to fill up (0: no such bucket). */
static uint64_t fill_ms(uint32_t rate, uint32_t burst)
{
    return rate ? ((uint64_t)burst * 1000 + rate - 1) / rate : 0;
}

/* Forgets the buckets of addresses with no connection that are full again: buckets that
 * were empty when the last connection closed are full burst / rate seconds later, and a
 * fresh bucket is full, so forgetting them changes nothing. The idle list is in
 * the order the addresses went idle, so this is O(buckets forgotten). Past the cap on idle
 * buckets the oldest go early (they are the nearest to full). */
static void addr_sweep(wsx_chat *chat, uint64_t t)
{
    const wsx_chat_opts *o = &chat->opts;
    uint64_t full_ms = fill_ms(o->rate_per_ip, o->burst_per_ip);
    uint64_t join_full_ms = fill_ms(o->join_rate_per_ip, o->join_burst_per_ip);
    if (join_full_ms > full_ms) full_ms = join_full_ms;
    while (chat->aidle_head &&
           (chat->n_idle_addrs > WSX_CHAT_MAX_IDLE_ADDRESSES ||
            (t >= chat->aidle_head->idle_since && t - chat->aidle_head->idle_since >= full_ms))) {
        addr *a = chat->aidle_head;
        addr_idle_unlink(chat, a);
        addr **pp = addr_slot(chat, a->key, a->hash);
        *pp = a->hnext;
        chat->n_addrs--;
        free(a);
    }
}

/* The bucket of peer's address, made (full) if there is none; NULL when not limited per
 * address, or out of memory (then the connection is limited per connection only). */
static addr *addr_get(wsx_chat *chat, const struct sockaddr *peer, uint64_t t)
{
    uint8_t key[16];
    if ((!chat->opts.rate_per_ip && !chat->opts.join_rate_per_ip) || !peer ||
        !wsx__addr_key(peer, key))
        return NULL;
    addr_sweep(chat, t);
    if (!chat->abuckets) {
        chat->abuckets = calloc(64, sizeof *chat->abuckets);
        if (!chat->abuckets) return NULL;
        chat->n_abuckets = 64;
    }
    uint64_t h = keyed_hash(chat, 2, (const char *)key, sizeof key);
    addr **pp = addr_slot(chat, key, h);
    addr *a = *pp;
    if (a) {
        if (!a->conns) addr_idle_unlink(chat, a);
        a->conns++;
        return a;
    }
    if (chat->n_addrs >= chat->n_abuckets) {
        /* Doubles the table; on failure it stays as it is (only slower). */
        size_t nb = chat->n_abuckets * 2;
        addr **nbk = calloc(nb, sizeof *nbk);
        if (nbk) {
            for (size_t i = 0; i < chat->n_abuckets; i++) {
                while (chat->abuckets[i]) {
                    addr *x = chat->abuckets[i];
                    chat->abuckets[i] = x->hnext;
                    x->hnext = nbk[x->hash & (nb - 1)];
                    nbk[x->hash & (nb - 1)] = x;
                }
            }
            free(chat->abuckets);
            chat->abuckets = nbk;
            chat->n_abuckets = nb;
            pp = addr_slot(chat, key, h);
        }
    }
    a = calloc(1, sizeof *a);
    if (!a) return NULL;
    memcpy(a->key, key, sizeof key);
    a->hash = h;
    a->conns = 1;
    a->msgs.tokens = (uint64_t)chat->opts.burst_per_ip * 1000;
    a->joins.tokens = (uint64_t)chat->opts.join_burst_per_ip * 1000;
    a->msgs.refill_ms = a->joins.refill_ms = t;
    *pp = a;
    chat->n_addrs++;
    return a;
}

static void addr_put(wsx_chat *chat, addr *a, uint64_t t)
{
    if (!a || --a->conns) return;
    a->idle_since = t;
    a->idle_prev = chat->aidle_tail;
    if (chat->aidle_tail)
        chat->aidle_tail->idle_next = a;
    else
        chat->aidle_head = a;
    chat->aidle_tail = a;
    chat->n_idle_addrs++;
    addr_sweep(chat, t);
}

static void do_join(wsx_chat *chat, wsx_chat_conn *m, json_t *req)
{
    /* A join makes the server queue the room's history (shared, but counted in this
     * connection's queue) for a 50-byte request: not while the client is not reading. */
    if (chat->opts.join_max_queued && chat->ops.queued &&
        chat->ops.queued(m->ctx, chat->opts.user) > chat->opts.join_max_queued) {
        if (!m->slowed)
            send_error(chat, m, "slow_down",
                       "too much is queued for this connection: read it, then join again");
        m->slowed = true;
        return;
    }
    m->slowed = false;
    const char *room_name = "lobby", *name = NULL;
    size_t rl = 5, nl = 0;
    json_t *jr = json_object_get(req, "room"), *jn = json_object_get(req, "name");
    if (jr) {
        if (!json_is_string(jr)) return send_error(chat, m, "bad_room", "room must be a string");
        room_name = json_string_value(jr);
        rl = json_string_length(jr);
        room_name = trim(room_name, &rl);
    }
    if (!wsx_chat_valid_room(room_name, rl))
        return send_error(chat, m, "bad_room", "room: 1 to 32 characters from A-Z a-z 0-9 _ . -");
    if (!json_is_string(jn)) return send_error(chat, m, "bad_name", "name is required");
    name = json_string_value(jn);
    nl = json_string_length(jn);
    name = trim(name, &nl);
    if (!valid_name(name, nl))
        return send_error(chat, m, "bad_name",
                          "name: 1 to 32 characters, no control or format characters");
    uint64_t key = 0;
    json_t *jk = json_object_get(req, "key");
    if (jk && !json_is_null(jk)) {
        size_t kl = json_string_length(jk);
        if (!json_is_string(jk) || kl < 1 || kl > WSX_CHAT_MAX_KEY)
            return send_error(chat, m, "bad_key", "key: a string of 1 to 128 bytes");
        /* Only a keyed hash of the secret is kept; | 1 keeps 0 for "no key". */
        key = keyed_hash(chat, 1, json_string_value(jk), kl) | 1;
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
            return send_error(chat, m, "name_taken", "someone else in this room goes by that name");
    }
    if (!rate_ok(chat, m, true)) return;
    r = get_room(chat, rname);
    if (!r) return send_error(chat, m, "bad_room", "too many rooms");
    leave_room(chat, m, r);
    memcpy(m->name, pname, sizeof m->name);
    size_t tabs = person_add(r, m->name, key);
    if (!tabs || chat->ops.subscribe(m->ctx, r->name, chat->opts.user) < 0) {
        if (tabs) person_remove(r, m->name);
        release_room(chat, r);
        return send_error(chat, m, "bad_room", "cannot join");
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
    sb_cstr(&head, r->name);
    SB_LIT(&head, ",\"name\":");
    sb_cstr(&head, m->name);
    SB_LIT(&head, ",\"online\":");
    sb_online(&head, r);
    SB_LIT(&head, "}");
    if (!head.oom) chat->ops.send(m->ctx, head.p, head.len, chat->opts.user);
    sb_free(&head);
    send_history(chat, m, r);
    presence(chat, r, m->name, true, tabs);
}

static void do_message(wsx_chat *chat, wsx_chat_conn *m, json_t *req)
{
    if (!m->room) return send_error(chat, m, "not_joined", "join a room first");
    json_t *jt = json_object_get(req, "text");
    if (!json_is_string(jt)) return send_error(chat, m, "bad_text", "text must be a string");
    size_t tl = json_string_length(jt);
    const char *text = trim(json_string_value(jt), &tl);
    if (tl == 0 || utf8_chars(text, tl) > WSX_CHAT_MAX_TEXT)
        return send_error(chat, m, "bad_text", "text: 1 to 2000 characters");
    if (!rate_ok(chat, m, false)) return;
    room *r = m->room;
    uint64_t id = r->next_id++;
    json_t *o = jevent("message");
    jset(&o, "id", json_integer((json_int_t)id));
    jset(&o, "room", jname(r->name));
    jset(&o, "name", jname(m->name));
    jset(&o, "text", json_stringn_nocheck(text, tl));
    jset(&o, "ts", json_integer((json_int_t)now(chat)));
    /* The history keeps the text: a heap copy of what was built. */
    jtext t;
    char *s = jdump(&t, o) ? jtext_dup(&t) : NULL;
    jtext_free(&t);
    if (!s) return;
    chat->ops.publish(r->name, s, strlen(s), id, NULL, chat->opts.user);
    history_add(chat, r, id, s);
}

static void do_typing(wsx_chat *chat, wsx_chat_conn *m, json_t *req)
{
    if (!m->room) return send_error(chat, m, "not_joined", "join a room first");
    if (!rate_ok(chat, m, false)) return;
    json_t *o = jevent("typing");
    jset(&o, "room", jname(m->room->name));
    jset(&o, "name", jname(m->name));
    jset(&o, "typing", json_boolean(json_is_true(json_object_get(req, "typing"))));
    jtext t;
    if (jdump(&t, o)) chat->ops.publish(m->room->name, t.p, t.len, 0, m->ctx, chat->opts.user);
    jtext_free(&t);
}

/* A leave outside any room changes nothing and costs nothing. */
static void do_leave(wsx_chat *chat, wsx_chat_conn *m)
{
    if (m->room && rate_ok(chat, m, true)) leave_room(chat, m, NULL);
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
    m->msgs.refill_ms = m->joins.refill_ms = now(chat);
    m->addr = addr_get(chat, peer, m->msgs.refill_ms);
    chat->n_conns++;
    char id[24];
    snprintf(id, sizeof id, "c%llu", (unsigned long long)m->id);
    json_t *o = jevent("welcome");
    /* server_name is the operator's text: checked, and replaced when it is not UTF-8. */
    json_t *server = json_string(chat->opts.server_name);
    jset(&o, "server", server ? server : json_string_nocheck("wsx"));
    jset(&o, "id", json_string_nocheck(id));
    jset(&o, "limits",
         json_pack("{s:i,s:i,s:i}", "name", WSX_CHAT_MAX_NAME, "room", WSX_CHAT_MAX_ROOM, "text",
                   WSX_CHAT_MAX_TEXT));
    send_json(chat, m, o);
    wsx_chat_unlock(chat);
    return m;
}

uint64_t wsx_chat_conn_id(const wsx_chat_conn *cc)
{
    return cc->id;
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
        send_error(chat, m, "binary", "binary messages are not accepted");
        wsx_chat_unlock(chat);
        return;
    }
    json_error_t err;
    json_t *req = json_loadb(data, len, 0, &err);
    if (!req || !json_is_object(req)) {
        json_decref(req);
        send_error(chat, m, "bad_json", "messages are JSON objects");
        wsx_chat_unlock(chat);
        return;
    }
    const char *type = json_string_value(json_object_get(req, "type"));
    if (!type)
        send_error(chat, m, "bad_type", "missing \"type\"");
    else if (!strcmp(type, "join"))
        do_join(chat, m, req);
    else if (!strcmp(type, "message"))
        do_message(chat, m, req);
    else if (!strcmp(type, "typing"))
        do_typing(chat, m, req);
    else if (!strcmp(type, "leave"))
        do_leave(chat, m);
    else
        send_error(chat, m, "bad_type", "unknown \"type\"");
    json_decref(req);
    wsx_chat_unlock(chat);
}

void wsx_chat_conn_close(wsx_chat *chat, wsx_chat_conn *m)
{
    if (!m) return;
    wsx_chat_lock(chat);
    leave_room(chat, m, NULL);
    chat->n_conns--;
    addr_put(chat, m->addr, now(chat));
    wsx_chat_unlock(chat);
    free(m);
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
    uint64_t t = now(chat);
    /* The idle list is in the order the rooms went idle: stop at the first that has not
     * waited long enough. */
    while (chat->opts.history_idle_ms && chat->idle_head) {
        room *r = chat->idle_head;
        if (t < r->idle_since || t - r->idle_since < chat->opts.history_idle_ms) break;
        free_room(chat, r);
        n++;
    }
    addr_sweep(chat, t);
    wsx_chat_unlock(chat);
    return n;
}
