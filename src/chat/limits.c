/*
 * The chat's rate limits: token buckets per connection and per client address, and the
 * table of addresses (forgotten once idle and full again).
 */
#include "chat/chat_priv.h"

#include <stdlib.h>
#include <string.h>

#include "ws/ws.h"

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
    /* Only forward: a front end without clock_ms gives the wall clock, and a step back must not
     * make the same interval count twice when it catches up. */
    if (t > b->refill_ms) {
        uint64_t add = (t - b->refill_ms) * rate;
        b->tokens = b->tokens + add > cap ? cap : b->tokens + add;
        b->refill_ms = t;
    }
}

bool wsx__chat_rate_ok(wsx_chat *chat, wsx_chat_conn *m, bool join)
{
    const wsx_chat_opts *o = &chat->opts;
    uint32_t rate = join ? o->join_rate : o->rate, burst = join ? o->join_burst : o->burst;
    bucket *b = rate ? (join ? &m->joins : &m->msgs) : NULL;
    uint32_t arate = join ? o->join_rate_per_ip : o->rate_per_ip;
    uint32_t aburst = join ? o->join_burst_per_ip : o->burst_per_ip;
    bucket *ab = m->addr && arate ? (join ? &m->addr->joins : &m->addr->msgs) : NULL;
    if (!b && !ab) return true;
    uint64_t t = wsx__chat_clock(chat);
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
    wsx__chat_send_error(chat, m, "rate_limited",
                         over_conn
                             ? (join ? "too many joins: slow down" : "too many messages: slow down")
                         : join ? "too many joins from your address: slow down"
                                : "too many messages from your address: slow down");
    return false;
}

/* Posts from backends (wsx_chat_post) have no connection to refuse or close: one bucket for
 * all of them bounds what they can make the server write to a room and its history. */
bool wsx__chat_post_ok(wsx_chat *chat)
{
    if (!chat->opts.post_rate) return true;
    refill(&chat->posts, wsx__chat_clock(chat), chat->opts.post_rate, chat->opts.post_burst);
    if (chat->posts.tokens < 1000) {
        chat->rate_limited++;
        return false;
    }
    chat->posts.tokens -= 1000;
    return true;
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
void wsx__chat_addr_sweep(wsx_chat *chat, uint64_t t)
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
addr *wsx__chat_addr_get(wsx_chat *chat, const struct sockaddr *peer, uint64_t t)
{
    uint8_t key[16];
    if ((!chat->opts.rate_per_ip && !chat->opts.join_rate_per_ip) || !peer ||
        !wsx__addr_key(peer, key))
        return NULL;
    wsx__chat_addr_sweep(chat, t);
    if (!chat->abuckets) {
        chat->abuckets = calloc(64, sizeof *chat->abuckets);
        if (!chat->abuckets) return NULL;
        chat->n_abuckets = 64;
    }
    uint64_t h = wsx__chat_hash(chat, 2, (const char *)key, sizeof key);
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

void wsx__chat_addr_put(wsx_chat *chat, addr *a, uint64_t t)
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
    wsx__chat_addr_sweep(chat, t);
}
