/*
 * `wsx serve`: server-sent events (/sse?room=NAME), and the publish to a room's topic in a
 * loop's hub that reaches its WebSocket members and its SSE listeners.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* An SSE listener with more than this queued (it does not read) is ended. Events are shared
 * bytes, but a listener keeps alive every event it has not read. */
#define SSE_MAX_QUEUED (4u << 20)

static bool valid_room(const char *s, size_t n)
{
    return wsx_chat_valid_room(s, n);
}

/* One message as an SSE event: "id: N\nevent: message\ndata: JSON\n\n" (JSON texts of the
 * chat are compact: no newline in them). Writes it at out (NULL: only measures); returns
 * its length. */
size_t serve_sse_format(char *out, uint64_t id, const char *json, size_t len)
{
    char head[64];
    int n = snprintf(head, sizeof head, "id: %llu\nevent: message\ndata: ", (unsigned long long)id);
    if (out) {
        memcpy(out, head, (size_t)n);
        memcpy(out + n, json, len);
        memcpy(out + (size_t)n + len, "\n\n", 2);
    }
    return (size_t)n + len + 2;
}

/* The event as shared bytes, for the listeners of one loop; NULL if out of memory. */
static wsx_bytes *sse_event(uint64_t id, const char *json, size_t len)
{
    wsx_bytes *b = NULL;
    if (wsx_bytes_new(NULL, serve_sse_format(NULL, id, json, len), &b) < 0) return NULL;
    serve_sse_format((char *)wsx_bytes_data(b), id, json, len);
    return b;
}

void serve_sse_send(sse *l, uint64_t id, const char *json, size_t len)
{
    wsx_bytes *b = sse_event(id, json, len);
    if (b) wsx_http_write_bytes(l->r, b, 0, wsx_bytes_len(b));
    wsx_bytes_release(b);
}

/* What a publish to a room's topic carries for its SSE subscribers: the chat message's id
 * (0: not a chat message, SSE listeners get nothing), and the listeners whose queue passed
 * SSE_MAX_QUEUED, collected to be ended once the publish is over (the chat is in the middle
 * of an operation then: it is told after its fan-out, as it was before the hub). */
typedef struct sse_pub {
    uint64_t id;
    sse **drop;
    size_t n_drop, cap_drop;
} sse_pub;

/* The event made once per publish (wsx_hub_msg_form) and written to every SSE subscriber of
 * the loop by reference. */
static void *sse_form_make(const wsx_hub_msg *m, void *arg)
{
    (void)arg;
    return sse_event(((const sse_pub *)m->ctx)->id, (const char *)m->data, m->len);
}

static void sse_form_release(void *form, void *arg)
{
    (void)arg;
    wsx_bytes_release(form);
}

static const wsx_hub_form sse_form = {sse_form_make, sse_form_release, NULL};

static int sse_deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub;
    sse *l = user;
    sse_pub *p = m->ctx;
    if (!p || !p->id || l->dropped) return 0;
    wsx_bytes *ev = wsx_hub_msg_form(m, &sse_form);
    if (!ev) return 0;
    /* WSX_ECLOSED: gone, or closed at the hard limit; sse_gone follows and frees it. */
    if (wsx_http_write_bytes(l->r, ev, 0, wsx_bytes_len(ev)) == WSX_ECLOSED) return 0;
    if (wsx_http_buffered_amount(l->r) <= SSE_MAX_QUEUED) return 1;
    if (p->n_drop == p->cap_drop) {
        size_t cap = p->cap_drop ? 2 * p->cap_drop : 8;
        sse **d = realloc(p->drop, cap * sizeof *d);
        if (!d) return 1; /* dropped at a later event, or at the hard limit */
        p->drop = d;
        p->cap_drop = cap;
    }
    l->dropped = true;
    p->drop[p->n_drop++] = l;
    return 1;
}

/* The close line of a stream (why: "client left", "not reading"), with the bytes still
 * queued for it when it is dropped (SIZE_MAX: not told). */
static void sse_log_close(const sse *l, const char *why, size_t queued)
{
    if (queued == SIZE_MAX) {
        char name[24];
        tool_field f[] = {TOOL_FS("conn", tool_conn_name(&l->ci, name, sizeof name)),
                          TOOL_FS("peer", l->ci.peer), TOOL_FS("path", "/sse"),
                          TOOL_FS("reason", why), TOOL_FS("room", l->room)};
        tool_log_fields(WSX_LOG_INFO, f, 5, "%s %s close %s room %s", l->ci.peer, name, why,
                        l->room);
        return;
    }
    char name[24];
    tool_field f[] = {TOOL_FS("conn", tool_conn_name(&l->ci, name, sizeof name)),
                      TOOL_FS("peer", l->ci.peer),
                      TOOL_FS("path", "/sse"),
                      TOOL_FS("reason", why),
                      TOOL_FS("room", l->room),
                      TOOL_FN("bytes", queued)};
    tool_log_fields(WSX_LOG_INFO, f, 6, "%s %s close %s room %s (%zu bytes queued)", l->ci.peer,
                    name, why, l->room, queued);
}

/* Ends a listener that does not read: it leaves the chat and the topic now; its connection
 * closes once what is queued is written, or after the close timeout. */
static void sse_drop(sse *l)
{
    sse_log_close(l, "not reading", wsx_http_buffered_amount(l->r));
    wsx_hub_unsubscribe(l->sub);
    wsx_chat_listener_remove(g_serve.chat, l->l);
    serve_history_left(l->room);
    wsx_http_end(l->r);
    free(l);
}

/* Publishes json to the room's topic in this thread's loop: its WebSocket members (framed
 * once) and, for chat messages (id != 0), its SSE listeners (formatted once). Called with
 * the chat's lock held. */
void serve_publish_local(const char *room, const char *json, size_t len, uint64_t id,
                         const void *except)
{
    char topic[64];
    snprintf(topic, sizeof topic, "room:%s", room);
    sse_pub p = {.id = id};
    wsx_hub *hub = wsx_hub_of(g_serve.runner.t[g_serve_thread].loop);
    /* No publish hook runs (serve sets none): op_publish reaches the other loops itself. */
    if (hub) wsx_hub_publish(hub, topic, json, len, WSX_TEXT, except, &p);
    if (hub) serve_sio_publish_local(hub, room, json, len, except);
    for (size_t i = 0; i < p.n_drop; i++)
        sse_drop(p.drop[i]);
    free(p.drop);
}

static void sse_gone(wsx_http_req *r, void *arg)
{
    sse *l = arg;
    (void)r;
    sse_log_close(l, "client left", SIZE_MAX);
    wsx_hub_unsubscribe(l->sub);
    wsx_chat_listener_remove(g_serve.chat, l->l);
    serve_history_left(l->room);
    free(l);
}

static void sse_keepalive_one(void *listener, void *arg)
{
    sse *l = listener;
    (void)arg;
    if (l->thread == g_serve_thread) wsx_http_write(l->r, ": keep-alive\n\n", 14);
}

void serve_sse_keepalive(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    wsx_chat_listeners_all(g_serve.chat, sse_keepalive_one, NULL);
}

static void sse_open(wsx_http_req *r, const wsx_http_req *rq)
{
    if (!serve_check_token(rq)) {
        serve_respond_text(r, 401, "text/plain; charset=utf-8", "401 Unauthorized\n");
        return;
    }
    char name[64] = "lobby";
    size_t ql;
    const char *query = wsx_http_req_query(rq, &ql);
    if (query) serve_query_get(query, ql, "room", name, sizeof name);
    if (!valid_room(name, strlen(name))) {
        serve_respond_text(r, 400, "text/plain; charset=utf-8", "400 bad room name\n");
        return;
    }
    if (wsx_http_req_is_head(r)) {
        /* Headers only: nothing to stream, no listener. */
        wsx_http_header hh[] = {{"Content-Type", 12, "text/event-stream", 17},
                                {"Cache-Control", 13, "no-cache", 8}};
        wsx_http_respond(r, 200, hh, 2, NULL, 0);
        return;
    }
    /* A resume on a node whose history of the room may be missing messages waits for the
     * room's history from Redis (serve_history.c), then comes back here. */
    char qv0[32];
    if ((wsx_http_req_header(rq, "last-event-id") ||
         (query && serve_query_get(query, ql, "lastEventId", qv0, sizeof qv0))) &&
        serve_history_sse(r, name))
        return;
    sse *l = calloc(1, sizeof *l);
    int rc = l ? wsx_chat_listener_add(g_serve.chat, name, l, &l->l) : WSX_ENOMEM;
    if (rc < 0) {
        free(l);
        serve_respond_text(r, 503, "text/plain; charset=utf-8",
                           rc == WSX_ELIMIT ? "503 too many rooms\n" : "503 out of memory\n");
        return;
    }
    wsx_http_header h[] = {{"Content-Type", 12, "text/event-stream", 17},
                           {"Cache-Control", 13, "no-cache", 8},
                           {"X-Accel-Buffering", 17, "no", 2}};
    char topic[sizeof "room:" + sizeof name];
    snprintf(topic, sizeof topic, "room:%s", name);
    wsx_hub *hub = wsx_hub_of(g_serve.runner.t[g_serve_thread].loop);
    if (!hub || wsx_hub_subscribe(hub, topic, sse_deliver, l, &l->sub) < 0) {
        wsx_chat_listener_remove(g_serve.chat, l->l);
        free(l);
        serve_respond_text(r, 503, "text/plain; charset=utf-8", "503 out of memory\n");
        return;
    }
    if (wsx_http_begin(r, 200, h, 3) < 0) {
        wsx_hub_unsubscribe(l->sub);
        wsx_chat_listener_remove(g_serve.chat, l->l);
        free(l);
        wsx_http_end(r);
        return;
    }
    l->r = r;
    l->thread = g_serve_thread;
    snprintf(l->ci.peer, sizeof l->ci.peer, "%s", wsx_http_req_peer(rq));
    l->ci.id = tool_conn_id_next();
    l->ci.tag = 's';
    snprintf(l->room, sizeof l->room, "%.*s", (int)(sizeof l->room - 1), name);
    char cname[24];
    tool_field f[] = {TOOL_FS("conn", tool_conn_name(&l->ci, cname, sizeof cname)),
                      TOOL_FS("peer", l->ci.peer), TOOL_FS("path", "/sse"),
                      TOOL_FS("room", l->room)};
    tool_log_fields(WSX_LOG_INFO, f, 4, "%s %s open /sse room %s", l->ci.peer, cname, l->room);
    wsx_http_on_gone(r, sse_gone, l);
    wsx_http_write(r, "retry: 2000\n\n", 13);
    /* Resume after Last-Event-ID (the header an EventSource sends when it reconnects). */
    const wsx_http_header *le = wsx_http_req_header(rq, "last-event-id");
    char qv[32];
    if (le || (query && serve_query_get(query, ql, "lastEventId", qv, sizeof qv))) {
        char v[32];
        if (le)
            snprintf(v, sizeof v, "%.*s", (int)le->value_len, le->value);
        else
            snprintf(v, sizeof v, "%s", qv);
        wsx_chat_listener_replay(g_serve.chat, l->l, strtoull(v, NULL, 10));
    }
}

void serve_on_sse(wsx_http_req *r, void *user)
{
    (void)user;
    serve_lock();
    sse_open(r, r);
    serve_unlock();
}
