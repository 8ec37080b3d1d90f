/*
 * The fake front end of the chat's unit tests (test_chat.c: against a reference model;
 * test_chat_api.c: listeners, the per-address buckets and posts, directly): connections that keep
 * what they receive in a canonical text form, subscriptions, SSE listeners, a fake clock.
 * Include after test.h.
 */
#ifndef WSX_CHAT_TEST_H
#define WSX_CHAT_TEST_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"

#define NCONN  12
#define NROOMS 6
#define MAXEV  64

static const char *const room_names[NROOMS] = {"lobby", "r1", "r2", "r3", "r4", "r5"};

/* ---- the fake front end: connections, subscriptions, received events ---- */

typedef struct fconn {
    bool open;
    wsx_chat_conn *cc;
    int sub;          /* the room it is subscribed to, -1: none */
    char *got[MAXEV]; /* canonical forms of the events received since the last check */
    size_t n_got;
    bool overflow;
    bool close_req; /* the chat asked to close it */
} fconn;

static fconn F[NCONN];
static uint64_t fake_now = 1000000;
static int op_errors; /* ops misused by the chat (double subscribe, unsubscribe unsubscribed) */

static int room_index(const char *room)
{
    for (int i = 0; i < NROOMS; i++)
        if (!strcmp(room_names[i], room)) return i;
    return -1;
}

/* The online list as "name:tabs,name:tabs". */
static inline void canon_online(json_t *a, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        o += (size_t)snprintf(out + o, cap - o, "%s%s:%lld", i ? "," : "",
                              json_string_value(json_object_get(e, "name")),
                              (long long)json_integer_value(json_object_get(e, "tabs")));
        if (o >= cap) o = cap - 1;
    }
}

static const char *s_of(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "?";
}

/* One received JSON text in the compact form the model predicts. */
static char *canon(const char *json, size_t len)
{
    if (len > 6 && !memcmp(json, "close|", 6)) return strndup(json, len);
    json_error_t err;
    json_t *o = json_loadb(json, len, 0, &err);
    char buf[4096], on[1024];
    const char *type = o ? s_of(o, "type") : "unparsable";
    if (!strcmp(type, "welcome")) {
        snprintf(buf, sizeof buf, "welcome");
    } else if (!strcmp(type, "joined")) {
        canon_online(json_object_get(o, "online"), on, sizeof on);
        snprintf(buf, sizeof buf, "joined|%s|%s|%s", s_of(o, "room"), s_of(o, "name"), on);
    } else if (!strcmp(type, "history")) {
        size_t n = (size_t)snprintf(buf, sizeof buf, "history|%s|h=", s_of(o, "room"));
        json_t *h = json_object_get(o, "messages");
        for (size_t i = 0; i < json_array_size(h) && n < sizeof buf; i++)
            n += (size_t)snprintf(
                buf + n, sizeof buf - n, "%s%lld:%s", i ? "," : "",
                (long long)json_integer_value(json_object_get(json_array_get(h, i), "id")),
                s_of(json_array_get(h, i), "text"));
    } else if (!strcmp(type, "presence")) {
        canon_online(json_object_get(o, "online"), on, sizeof on);
        snprintf(buf, sizeof buf, "presence|%s|%s|%s|%s", s_of(o, "room"), s_of(o, "event"),
                 s_of(o, "name"), on);
    } else if (!strcmp(type, "online")) {
        canon_online(json_object_get(o, "online"), on, sizeof on);
        snprintf(buf, sizeof buf, "online|%s|%s", s_of(o, "room"), on);
    } else if (!strcmp(type, "message")) {
        snprintf(buf, sizeof buf, "message|%s|%s|%s|%lld%s", s_of(o, "room"), s_of(o, "name"),
                 s_of(o, "text"), (long long)json_integer_value(json_object_get(o, "id")),
                 json_is_true(json_object_get(o, "bot")) ? "|bot" : "");
    } else if (!strcmp(type, "typing")) {
        snprintf(buf, sizeof buf, "typing|%s|%s|%d", s_of(o, "room"), s_of(o, "name"),
                 json_is_true(json_object_get(o, "typing")));
    } else if (!strcmp(type, "error")) {
        snprintf(buf, sizeof buf, "error|%s", s_of(o, "code"));
    } else {
        snprintf(buf, sizeof buf, "?%.*s", (int)(len > 200 ? 200 : len), json);
    }
    json_decref(o);
    return strdup(buf);
}

static inline void deliver(fconn *f, const char *json, size_t len)
{
    if (!f->open) {
        op_errors++;
        return;
    }
    if (f->n_got == MAXEV) {
        f->overflow = true;
        return;
    }
    f->got[f->n_got++] = canon(json, len);
}

static inline void op_send(void *conn, const char *json, size_t len, void *user)
{
    (void)user;
    deliver(conn, json, len);
}

static inline void op_publish(const char *room, const char *json, size_t len, uint64_t id,
                              void *except, void *user)
{
    (void)user;
    (void)id;
    int r = room_index(room);
    for (int i = 0; i < NCONN; i++)
        if (F[i].open && F[i].sub == r && &F[i] != except) deliver(&F[i], json, len);
}

static int op_subscribe(void *conn, const char *room, void *user)
{
    (void)user;
    fconn *f = conn;
    if (f->sub != -1) op_errors++;
    f->sub = room_index(room);
    return 0;
}

static inline void op_unsubscribe(void *conn, const char *room, void *user)
{
    (void)user;
    fconn *f = conn;
    if (f->sub != room_index(room)) op_errors++;
    f->sub = -1;
}

static inline size_t op_queued(void *conn, void *user)
{
    (void)conn;
    (void)user;
    return 0;
}

static inline uint64_t op_now(void *user)
{
    (void)user;
    return fake_now;
}

/* What SSE listeners were sent: "L<listener index>:<id>:<text>" each. */
static char sse_log[1024];
static int sse_tags[4];

static inline void op_sse_send(void *l, uint64_t id, const char *json, size_t len, void *user)
{
    (void)user;
    char *c = canon(json, len);
    size_t o = strlen(sse_log);
    snprintf(sse_log + o, sizeof sse_log - o, "%sL%d:%llu:%s", o ? " " : "",
             (int)((int *)l - sse_tags), (unsigned long long)id, c);
    free(c);
}

static inline void op_close(void *conn, int code, const char *reason, void *user)
{
    (void)user;
    (void)reason;
    fconn *f = conn;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "close|%d", code);
    deliver(f, buf, (size_t)n);
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

__attribute__((format(printf, 3, 4))) static inline void send_text(wsx_chat *chat, int i,
                                                                   const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    wsx_chat_conn_message(chat, F[i].cc, buf, (size_t)n, false);
}

/* Options with no rate limit (a test turns on what it checks). */
static inline wsx_chat_opts chat_test_opts(size_t history, size_t max_rooms)
{
    wsx_chat_opts o = wsx_chat_defaults();
    o.history = history;
    o.max_rooms = max_rooms;
    o.rate = 0;
    o.join_rate = 0;
    o.rate_per_ip = 0;
    o.join_rate_per_ip = 0;
    return o;
}

#endif
