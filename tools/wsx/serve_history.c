/*
 * `wsx serve --redis`: the history of a room on any node (docs/cluster.md, "History in
 * Redis"). The script that numbers a message also appends it to the room's list in Redis
 * (serve_cluster.c). A node whose own history of a room is not known complete (nobody was in
 * the room here when messages went out, the node restarted, Redis was away) reads that list
 * before it answers a join or resumes an SSE stream after Last-Event-ID, merges it into the
 * chat's history, and then lets the join (the stream) go on. The room is then complete here
 * while this loop keeps a subscriber in it: later joins read nothing.
 *
 * Bounds: one read per room at a time (the joins that come meanwhile wait for the same one),
 * MAX_READS reads at once over the node (past that, and while Redis is not up, joins get the
 * local history at once), READ_TIMEOUT_MS per read (then its waiters go on with the local
 * history), and what a waiting connection may send meanwhile (MAX_HELD messages, MAX_HELD_BYTES
 * bytes, and 4 MiB over all of them; past that it is closed with 1008). Reads are made on loop 0,
 * which holds the relay: joins and streams on the other loops (--threads) get their loop's history
 * as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "serve.h"

#define READ_TIMEOUT_MS 1000
#define MAX_READS       64
#define MAX_HELD        16
#define MAX_HELD_BYTES  65536
/* What all waiting connections may hold at once (loop 0): past it a join does not wait (it
 * gets the local history) and a waiting connection that sends more is closed. */
#define MAX_HELD_TOTAL (4u << 20)
/* A list entry longer than this is not a message of ours (2000 code points of text, a name,
 * the JSON around them): skipped by the read script. */
#define MAX_ENTRY 16384

/* Reads the newest ARGV[1] entries of the list KEYS[1] as one string, one message per line
 * (the chat's JSON has no line break; an entry with one, or over ARGV[2] bytes, is skipped). */
static const char read_script[] =
    "local t = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)\n"
    "local out = {}\n"
    "local max = tonumber(ARGV[2])\n"
    "for _, v in ipairs(t) do\n"
    "  if #v <= max and not string.find(v, '\\n', 1, true) then out[#out + 1] = v end\n"
    "end\n"
    "return table.concat(out, '\\n')\n";

typedef struct hist_read hist_read;

struct serve_hist_wait {
    serve_hist_wait *next, *prev;
    hist_read *read;
    /* A WebSocket connection: its messages from the join on, held (each a heap copy). */
    wsx_conn *conn;
    char *held[MAX_HELD];
    size_t held_len[MAX_HELD], n_held, held_bytes;
    /* Or an SSE request waiting to be opened. */
    wsx_http_req *req;
};

struct hist_read {
    hist_read *next, *prev;
    char room[WSX_CHAT_MAX_ROOM + 1];
    serve_hist_wait *waiters;
    wsx_timer *timer;
    bool abandoned; /* timed out: the reply (if any) is merged, its waiters went on */
};

static hist_read *g_reads;
static size_t g_n_reads, g_held_total;
static struct {
    uint64_t reads, merged, fallbacks, coalesced;
    uint64_t last_warn;
} g_st;

_Thread_local bool g_serve_history_go;

static void topic_of(char *out, size_t cap, const char *room)
{
    snprintf(out, cap, "room:%s", room);
}

static void fallback(const char *room, const char *why)
{
    g_st.fallbacks++;
    uint64_t now = wsx_loop_now(g_serve.runner.t[0].loop);
    /* At most one line a second: a flood of joins while Redis is away is one line. */
    if (g_st.last_warn && now - g_st.last_warn < 1000) return;
    g_st.last_warn = now;
    tool_logf(WSX_LOG_WARN, "room %s: history from this node only (%s); %llu so far", room, why,
              (unsigned long long)g_st.fallbacks);
}

static void wait_free(serve_hist_wait *w)
{
    for (size_t i = 0; i < w->n_held; i++)
        free(w->held[i]);
    g_held_total -= w->held_bytes;
    free(w);
}

static void gone_sse(wsx_http_req *r, void *arg)
{
    (void)r;
    serve_hist_wait *w = arg;
    serve_history_forget(w);
}

/* The waiters of a finished read go on: each connection's held messages reach the chat in
 * the order sent, each SSE request is opened. Chat lock not held. */
static void resume(hist_read *rd)
{
    char topic[64];
    topic_of(topic, sizeof topic, rd->room);
    while (rd->waiters) {
        serve_hist_wait *w = rd->waiters;
        rd->waiters = w->next;
        if (w->conn) {
            wsx_conn *c = w->conn;
            serve_conn_history_done(c);
            g_serve_history_go = true;
            for (size_t i = 0; i < w->n_held; i++)
                serve_ws_feed(c, w->held[i], w->held_len[i]);
            g_serve_history_go = false;
        } else {
            g_serve_history_go = true;
            wsx_http_on_gone(w->req, NULL, NULL);
            serve_on_sse(w->req, NULL);
            g_serve_history_go = false;
        }
        wait_free(w);
    }
    /* The count held for the read goes; if nobody of this loop stayed in the room, the channel
     * may go with it, and the room is no longer known complete. */
    if (g_serve.cluster) (void)wsx_cluster_unsubscribe(g_serve.cluster, topic);
    wsx_hub *hub = wsx_hub_of(g_serve.runner.t[0].loop);
    if (!hub || !wsx_hub_subscribers(hub, topic))
        wsx_chat_history_set_complete(g_serve.chat, rd->room, false);
}

static void read_unlink(hist_read *rd)
{
    if (rd->prev)
        rd->prev->next = rd->next;
    else
        g_reads = rd->next;
    if (rd->next) rd->next->prev = rd->prev;
    rd->next = rd->prev = NULL;
    g_n_reads--;
}

static void read_timeout(wsx_timer *t, void *arg)
{
    (void)t;
    hist_read *rd = arg;
    rd->timer = NULL;
    rd->abandoned = true;
    read_unlink(rd);
    fallback(rd->room, "Redis did not answer in time");
    resume(rd);
}

/* Merges the lines of a read into the chat. Returns false when they could not be read. */
static bool merge(const char *room, const char *s, size_t len)
{
    size_t cap = g_serve.chat_opts.history, n = 0;
    uint64_t *ids = malloc(cap * sizeof *ids);
    const char **jsons = malloc(cap * sizeof *jsons);
    size_t *lens = malloc(cap * sizeof *lens);
    bool ok = ids && jsons && lens;
    static const char head[] = "{\"type\":\"message\",\"id\":";
    for (size_t off = 0; ok && off < len && n < cap;) {
        const char *nl = memchr(s + off, '\n', len - off);
        size_t l = nl ? (size_t)(nl - (s + off)) : len - off;
        const char *m = s + off;
        off += l + 1;
        /* What another writer of the Redis put there is skipped, not trusted: the chat checks
         * each (wsx_chat_history_merge); a carriage return would break an SSE event. */
        if (l <= sizeof head || memcmp(m, head, sizeof head - 1) || memchr(m, '\r', l)) continue;
        uint64_t id = strtoull(m + sizeof head - 1, NULL, 10);
        if (!id) continue;
        ids[n] = id;
        jsons[n] = m;
        lens[n++] = l;
    }
    ptrdiff_t added = 0;
    if (ok) {
        added = wsx_chat_history_merge(g_serve.chat, room, n, ids, jsons, lens);
        /* One bad entry refuses them all: the good ones are kept one by one. */
        if (added == WSX_EINVAL) {
            added = 0;
            for (size_t i = 0; i < n; i++) {
                ptrdiff_t a =
                    wsx_chat_history_merge(g_serve.chat, room, 1, &ids[i], &jsons[i], &lens[i]);
                if (a > 0) added += a;
            }
        }
    }
    free(ids);
    free(jsons);
    free(lens);
    if (added > 0) g_st.merged += (uint64_t)added;
    return ok && added >= 0;
}

static void read_reply(wsx_cluster *cl, const wsx_cluster_reply *r, void *arg)
{
    (void)cl;
    hist_read *rd = arg;
    bool got = r->type == WSX_CLUSTER_REPLY_STRING;
    bool merged = got && merge(rd->room, r->str, r->len);
    if (rd->abandoned) {
        free(rd);
        return;
    }
    wsx_timer_stop(rd->timer);
    rd->timer = NULL;
    read_unlink(rd);
    if (merged)
        wsx_chat_history_set_complete(g_serve.chat, rd->room, true);
    else
        fallback(rd->room, r->type == WSX_CLUSTER_REPLY_ERROR ? "Redis refused the read"
                           : got                              ? "out of memory"
                                                              : "the connection was lost");
    resume(rd);
    free(rd);
}

/* The subscription is in effect: the read goes. Everything published before the read is in
 * the list, everything after it comes on the channel (a message in both is delivered once,
 * wsx_chat_deliver). */
static void read_send(wsx_cluster *cl, bool ok, void *arg)
{
    hist_read *rd = arg;
    if (rd->abandoned) {
        free(rd);
        return;
    }
    char topic[64], ch[128], key[140], cap[24], max[24];
    topic_of(topic, sizeof topic, rd->room);
    ptrdiff_t chn = ok ? wsx_cluster_channel(cl, topic, ch, sizeof ch) : -1;
    if (chn > 0) {
        int kn = snprintf(key, sizeof key, "%s:history", ch);
        int cn = snprintf(cap, sizeof cap, "%zu", g_serve.chat_opts.history);
        int mn = snprintf(max, sizeof max, "%d", MAX_ENTRY);
        const char *argv[] = {"EVAL", read_script, "1", key, cap, max};
        size_t lens[] = {4, sizeof read_script - 1, 1, (size_t)kn, (size_t)cn, (size_t)mn};
        if (wsx_cluster_command(cl, 6, argv, lens, read_reply, rd) == 0) return;
    }
    wsx_cluster_reply none = {WSX_CLUSTER_REPLY_NONE, 0, NULL, 0};
    read_reply(cl, &none, rd);
}

/* Starts (or joins) the read of room for w. Returns false (w untouched) when the room's local
 * history is to be used at once. On loop 0. */
static bool wait_for_read(const char *room, serve_hist_wait *w)
{
    if (!g_serve.cluster || !g_serve.chat_opts.history) return false;
    wsx_cluster_stats st;
    wsx_cluster_get_stats(g_serve.cluster, &st);
    if (st.state != WSX_CLUSTER_UP) {
        fallback(room, "Redis is not up");
        return false;
    }
    if (wsx_chat_history_complete(g_serve.chat, room)) return false;
    hist_read *rd = g_reads;
    while (rd && strcmp(rd->room, room))
        rd = rd->next;
    if (rd) {
        g_st.coalesced++;
    } else {
        if (g_n_reads >= MAX_READS) {
            fallback(room, "too many history reads at once");
            return false;
        }
        char topic[64];
        topic_of(topic, sizeof topic, room);
        rd = calloc(1, sizeof *rd);
        if (!rd) return false;
        snprintf(rd->room, sizeof rd->room, "%s", room);
        /* The channel is held from before the read (and until its waiters are in the room),
         * and the read waits until Redis has the subscription (wsx_cluster_sync). */
        if (wsx_cluster_subscribe(g_serve.cluster, topic) < 0) {
            free(rd);
            return false;
        }
        if (wsx_timer_start(g_serve.runner.t[0].loop, READ_TIMEOUT_MS, 0, read_timeout, rd,
                            &rd->timer) < 0 ||
            wsx_cluster_sync(g_serve.cluster, read_send, rd) < 0) {
            wsx_timer_stop(rd->timer);
            (void)wsx_cluster_unsubscribe(g_serve.cluster, topic);
            free(rd);
            fallback(room, "the read could not be sent");
            return false;
        }
        g_st.reads++;
        rd->next = g_reads;
        if (g_reads) g_reads->prev = rd;
        g_reads = rd;
        g_n_reads++;
    }
    w->read = rd;
    w->next = rd->waiters;
    if (w->next) w->next->prev = w;
    rd->waiters = w;
    return true;
}

serve_hist_wait *serve_history_join(wsx_conn *c, const char *data, size_t len)
{
    if (!g_serve.redis_url || g_serve_thread != 0 || g_serve_history_go) return NULL;
    /* Only a join can wait; the rest goes to the chat as it is. */
    if (!memmem(data, len, "join", 4)) return NULL;
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    json_t *jr = json_object_get(o, "room");
    char room[WSX_CHAT_MAX_ROOM + 1] = "lobby";
    bool ok = type && !strcmp(type, "join");
    if (ok && jr) {
        const char *s = json_string_value(jr);
        size_t n = json_string_length(jr);
        while (s && n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (s && n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        ok = s && wsx_chat_valid_room(s, n);
        if (ok) snprintf(room, sizeof room, "%.*s", (int)n, s);
    }
    json_decref(o);
    if (!ok) return NULL;
    if (g_held_total + len > MAX_HELD_TOTAL) {
        fallback(room, "too much held for joins that wait");
        return NULL;
    }
    serve_hist_wait *w = calloc(1, sizeof *w);
    char *copy = w ? malloc(len) : NULL;
    if (!copy) {
        free(w);
        return NULL;
    }
    memcpy(copy, data, len);
    w->conn = c;
    w->held[0] = copy;
    w->held_len[0] = len;
    w->n_held = 1;
    w->held_bytes = len;
    g_held_total += len;
    if (!wait_for_read(room, w)) {
        wait_free(w);
        return NULL;
    }
    return w;
}

int serve_history_hold(serve_hist_wait *w, const char *data, size_t len)
{
    if (w->n_held == MAX_HELD || w->held_bytes + len > MAX_HELD_BYTES ||
        g_held_total + len > MAX_HELD_TOTAL)
        return WSX_ELIMIT;
    char *copy = malloc(len);
    if (!copy) return WSX_ENOMEM;
    memcpy(copy, data, len);
    w->held[w->n_held] = copy;
    w->held_len[w->n_held++] = len;
    w->held_bytes += len;
    g_held_total += len;
    return 0;
}

bool serve_history_sse(wsx_http_req *r, const char *room)
{
    if (!g_serve.redis_url || g_serve_thread != 0 || g_serve_history_go) return false;
    serve_hist_wait *w = calloc(1, sizeof *w);
    if (!w) return false;
    w->req = r;
    if (!wait_for_read(room, w)) {
        free(w);
        return false;
    }
    wsx_http_on_gone(r, gone_sse, w);
    return true;
}

void serve_history_forget(serve_hist_wait *w)
{
    if (!w) return;
    hist_read *rd = w->read;
    if (w->prev)
        w->prev->next = w->next;
    else if (rd && rd->waiters == w)
        rd->waiters = w->next;
    if (w->next) w->next->prev = w->prev;
    wait_free(w);
}

void serve_history_left(const char *room)
{
    if (!g_serve.redis_url || g_serve_thread != 0) return;
    char topic[64];
    topic_of(topic, sizeof topic, room);
    wsx_hub *hub = wsx_hub_of(g_serve.runner.t[0].loop);
    for (hist_read *rd = g_reads; rd; rd = rd->next)
        if (!strcmp(rd->room, room)) return; /* decided when the read ends */
    if (!hub || !wsx_hub_subscribers(hub, topic))
        wsx_chat_history_set_complete(g_serve.chat, room, false);
}

int serve_history_metrics(char *out, size_t cap)
{
    if (!g_serve.redis_url) return 0;
    return snprintf(
        out, cap,
        "# HELP wsx_history_reads_total Room histories read from Redis (a join or an SSE "
        "resume on a node whose history of the room was not known complete).\n"
        "# TYPE wsx_history_reads_total counter\nwsx_history_reads_total %llu\n"
        "# HELP wsx_history_reads_shared_total Joins and resumes that waited for a read "
        "already under way.\n"
        "# TYPE wsx_history_reads_shared_total counter\nwsx_history_reads_shared_total %llu\n"
        "# HELP wsx_history_merged_total Messages added to this node's history from Redis.\n"
        "# TYPE wsx_history_merged_total counter\nwsx_history_merged_total %llu\n"
        "# HELP wsx_history_local_total Joins and resumes answered from this node's history "
        "alone although it was not known complete (Redis down or slow, too many reads).\n"
        "# TYPE wsx_history_local_total counter\nwsx_history_local_total %llu\n",
        (unsigned long long)g_st.reads, (unsigned long long)g_st.coalesced,
        (unsigned long long)g_st.merged, (unsigned long long)g_st.fallbacks);
}
