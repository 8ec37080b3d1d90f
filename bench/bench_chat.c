/*
 * Micro-benchmark of the chat core (not a test): joins per CPU-second with many rooms,
 * through src/chat's API with ops that do nothing (no sockets), so the figure is the chat's
 * own cost: parsing the join, finding or making the room, leaving the previous one, the
 * `joined` answer and the presence events.
 *
 *   build/bench_chat [rooms] [seconds-per-case]      (defaults: 10000 rooms, 1 s)
 *
 * Cases:
 *   existing  `rooms` rooms each held by one member; 64 other connections hop between them
 *   evicting  `rooms` idle rooms with history at the room cap; every join names a new room,
 *             so it evicts the idle room used longest ago
 *   one room  64 connections rejoining a single room (the baseline)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/chat.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t fake_ms = 1;

static void op_send(void *c, const char *j, size_t n, void *u)
{
    (void)c, (void)j, (void)n, (void)u;
}
static void op_publish(const char *r, const char *j, size_t n, uint64_t id, void *e, void *u)
{
    (void)r, (void)j, (void)n, (void)id, (void)e, (void)u;
}
static int op_subscribe(void *c, const char *r, void *u)
{
    (void)c, (void)r, (void)u;
    return 0;
}
static void op_unsubscribe(void *c, const char *r, void *u)
{
    (void)c, (void)r, (void)u;
}
static size_t op_queued(void *c, void *u)
{
    (void)c, (void)u;
    return 0;
}
static uint64_t op_now(void *u)
{
    (void)u;
    return fake_ms++;
}
static void op_sse(void *l, uint64_t id, const char *j, size_t n, void *u)
{
    (void)l, (void)id, (void)j, (void)n, (void)u;
}

static const wsx_chat_ops ops = {.send = op_send,
                                 .publish = op_publish,
                                 .subscribe = op_subscribe,
                                 .unsubscribe = op_unsubscribe,
                                 .queued = op_queued,
                                 .now_ms = op_now,
                                 .sse_send = op_sse};

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void say(wsx_chat *chat, wsx_chat_conn *cc, const char *s)
{
    wsx_chat_conn_message(chat, cc, s, strlen(s), false);
}

#define MOVERS 64

/* Joins per CPU-second: `mode` 0 = existing rooms, 1 = new names (evicting), 2 = one room. */
static double run(size_t n_rooms, int mode, double secs)
{
    wsx_chat_opts o = wsx_chat_defaults();
    o.max_rooms = n_rooms;
    o.history = 10;
    o.rate = o.join_rate = 0; /* the chat's own cost, not its rate limits */
    wsx_chat *chat;
    if (wsx_chat_new(&o, &ops, &chat) < 0) exit(1);
    static int dummy[MOVERS];
    wsx_chat_conn **holders = calloc(n_rooms, sizeof *holders);
    wsx_chat_conn *movers[MOVERS];
    char buf[160];
    for (size_t i = 0; i < n_rooms && mode != 2; i++) {
        holders[i] = wsx_chat_conn_open(chat, &holders[i], NULL);
        snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"r%zu\",\"name\":\"h%zu\"}", i, i);
        say(chat, holders[i], buf);
        if (mode == 1) {
            /* An idle room with something to remember: it stays, and only eviction frees it. */
            say(chat, holders[i], "{\"type\":\"message\",\"text\":\"kept\"}");
            wsx_chat_conn_close(chat, holders[i]);
            holders[i] = NULL;
        }
    }
    for (int i = 0; i < MOVERS; i++)
        movers[i] = wsx_chat_conn_open(chat, &dummy[i], NULL);
    size_t joins = 0, fresh = 0;
    double t0 = cpu_now(), t;
    do {
        for (int k = 0; k < 256; k++) {
            int m = (int)(rnd() % MOVERS);
            if (mode == 0)
                snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"r%zu\",\"name\":\"m%d\"}",
                         (size_t)(rnd() % n_rooms), m);
            else if (mode == 1)
                snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"n%zu\",\"name\":\"m%d\"}",
                         fresh++, m);
            else
                snprintf(buf, sizeof buf, "{\"type\":\"join\",\"room\":\"one\",\"name\":\"m%d\"}",
                         m);
            say(chat, movers[m], buf);
            joins++;
        }
        t = cpu_now();
    } while (t - t0 < secs);
    for (int i = 0; i < MOVERS; i++)
        wsx_chat_conn_close(chat, movers[i]);
    for (size_t i = 0; i < n_rooms; i++)
        if (holders[i]) wsx_chat_conn_close(chat, holders[i]);
    free(holders);
    wsx_chat_free(chat);
    return (double)joins / (t - t0);
}

int main(int argc, char **argv)
{
    size_t rooms = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 10000;
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    if (rooms < 1) rooms = 1;
    printf("bench_chat: joins per CPU-second, %zu rooms, %d moving connections\n", rooms, MOVERS);
    printf("  existing rooms (one member each)  %10.0f\n", run(rooms, 0, secs));
    printf("  new names at the cap (evicting)   %10.0f\n", run(rooms, 1, secs));
    printf("  one room                          %10.0f\n", run(rooms, 2, secs));
    return 0;
}
