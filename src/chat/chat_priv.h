/*
 * Private to src/chat: the chat's state (rooms, people, connections, per-address buckets)
 * and the internals its files share. chat.c: rooms, history, the protocol's messages and
 * the API; text.c: what the chat checks and writes (names, JSON, the join/leave events);
 * limits.c: the rate limits per connection and per address.
 */
#ifndef WSX_CHAT_PRIV_H
#define WSX_CHAT_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "chat/chat.h"
#include "proto/siphash.h"

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
    void *cache;           /* the front end's shared form of the history (ops->send_history) */
    uint64_t complete_gen; /* wsx_chat_history_set_complete: == chat->complete_gen */
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
    bucket posts;          /* wsx_chat_post's, shared by every poster (post_rate, post_burst) */
    uint64_t complete_gen; /* rooms marked complete under an older one are not (merge.c) */
};

/* The wall clock (message timestamps). */
static inline uint64_t wsx__chat_now(const wsx_chat *chat)
{
    return chat->ops.now_ms ? chat->ops.now_ms(chat->opts.user) : 0;
}

/* The clock of intervals (rate limits, idle rooms and addresses): monotonic when the front end
 * gives one. */
static inline uint64_t wsx__chat_clock(const wsx_chat *chat)
{
    return chat->ops.clock_ms ? chat->ops.clock_ms(chat->opts.user) : wsx__chat_now(chat);
}

/* SipHash-2-4 of s under the chat's key, varied by `which` (0: room names, 1: join keys,
 * 2: addresses). */
static inline uint64_t wsx__chat_hash(const wsx_chat *chat, uint64_t which, const char *s, size_t n)
{
    const uint64_t key[2] = {chat->hash_key[0] ^ which, chat->hash_key[1]};
    return wsx__siphash(key, s, n);
}

/* ---- text.c: the text rules ---- */

/* Code points of valid UTF-8; s without leading and trailing blanks (*n updated); whether s
 * is an acceptable display name (docs/chat-protocol.md). */
size_t wsx__chat_utf8_chars(const char *s, size_t n);
const char *wsx__chat_trim(const char *s, size_t *n);
bool wsx__chat_valid_name(const char *s, size_t n);

/* ---- text.c: JSON output ---- */

/* One serialised message: on the stack for the usual sizes. Not to be copied (p may point
 * into it). */
typedef struct jtext {
    char *p;
    size_t len;
    char stack[1024];
} jtext;

/* A checked name as a JSON string; k: v added to *o (on failure *o is freed and NULL); an
 * event object {"type": type}; o serialised into t and dropped (false: NULL or no memory);
 * t's heap part freed; a heap copy of t's text. */
json_t *wsx__chat_jname(const char *s);
void wsx__chat_jset(json_t **o, const char *k, json_t *v);
json_t *wsx__chat_jevent(const char *type);
bool wsx__chat_jdump(jtext *t, json_t *o);
void wsx__chat_jtext_free(jtext *t);
char *wsx__chat_jtext_dup(const jtext *t);

/* ---- text.c: the events of joins and leaves ---- */

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

/* Appends bytes, a number, a JSON string (escaped, RFC 8259 7), a C string; frees the heap
 * part; appends r's online list as a JSON array (cached in r->online until it changes). A
 * failed allocation sets b->oom and later appends do nothing. */
void wsx__chat_sb_put(sb *b, const void *s, size_t n);
#define SB_LIT(b, lit) wsx__chat_sb_put((b), (lit), sizeof(lit) - 1)
void wsx__chat_sb_u64(sb *b, uint64_t v);
void wsx__chat_sb_str(sb *b, const char *s, size_t n);
void wsx__chat_sb_cstr(sb *b, const char *s);
void wsx__chat_sb_free(sb *b);
void wsx__chat_sb_online(sb *b, room *r);

/* ---- limits.c: rate limits ---- */

/* Whether m may send one more chat message (join: one more join or leave); a refusal is
 * answered with rate_limited, and too many close m with 1008. The address table: forget
 * idle addresses whose buckets are full again; the bucket of peer's address with a
 * reference for a new connection (NULL: not limited per address); drop that reference. */
bool wsx__chat_rate_ok(wsx_chat *chat, wsx_chat_conn *m, bool join);
/* Whether wsx_chat_post may post one more message (takes a token from chat->posts). */
bool wsx__chat_post_ok(wsx_chat *chat);
void wsx__chat_addr_sweep(wsx_chat *chat, uint64_t t);
addr *wsx__chat_addr_get(wsx_chat *chat, const struct sockaddr *peer, uint64_t t);
void wsx__chat_addr_put(wsx_chat *chat, addr *a, uint64_t t);

/* ---- chat.c ---- */

/* Sends an error message (code, text) to m alone. */
void wsx__chat_send_error(wsx_chat *chat, wsx_chat_conn *m, const char *code, const char *msg);

/* chat.c's room and history for deliver.c: get_room, release_room, history_add (which takes
 * json). */
room *wsx__chat_room_get(wsx_chat *chat, const char *name);
room *wsx__chat_room_find(wsx_chat *chat, const char *name);
/* deliver.c: the `message` JSON of a post (heap; its id first after the type, as
 * wsx_chat_deliver expects), NULL when out of memory. */
char *wsx__chat_message_json(wsx_chat *chat, const room *r, uint64_t id, const char *name,
                             const char *text, size_t tl, bool bot);
void wsx__chat_room_release(wsx_chat *chat, room *r);
void wsx__chat_history_add(wsx_chat *chat, room *r, uint64_t id, char *json);
/* merge.c: empties r's history (the room stays). */
void wsx__chat_history_clear(wsx_chat *chat, room *r);
/* deliver.c: whether r's history holds message id with exactly this JSON text. */
bool wsx__chat_history_has(const wsx_chat *chat, const room *r, uint64_t id, const char *json,
                           size_t len);

#endif
