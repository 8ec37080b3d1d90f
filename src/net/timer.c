/*
 * Timers on a hashed timing wheel: WSX__WHEEL_SLOTS slots of 1 ms each. A timer lives in
 * slot (deadline % slots) and stores its absolute deadline; a slot visit fires the entries
 * whose deadline has come and leaves those of later rounds. That replaces the usual per-timer
 * "rounds" counter, which would have to be decremented on every pass.
 *
 * Start and stop are O(1) list operations, which matters because every connection restarts
 * idle/ping deadlines often. The loop tracks `timer_next`, a lower bound of the earliest
 * deadline: starting a timer lowers it in O(1); stopping one leaves it stale (at worst one
 * early wake-up, after which it is recomputed). When nothing is due, the timer phase costs
 * one comparison.
 */
#define WSX__NET_INTERNAL
#include "net.h"

#include <limits.h>
#include <stdlib.h>

struct wsx_timer {
    wsx__timer t;
    wsx_loop *loop;
    wsx_timer_cb cb;
    void *arg;
    uint64_t repeat;
    bool in_cb;
    bool stopped;
};

static void link_tail(wsx__timer *head, wsx__timer *t)
{
    t->prev = head->prev;
    t->next = head;
    head->prev->next = t;
    head->prev = t;
}

static void unlink_timer(wsx__timer *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = t->prev = NULL;
}

void wsx__timer_init(wsx__timer *t, wsx__timer_cb cb)
{
    t->next = t->prev = NULL;
    t->when = 0;
    t->cb = cb;
}

void wsx__timer_start(wsx_loop *loop, wsx__timer *t, uint64_t delay_ms)
{
    if (t->prev)
        unlink_timer(t);
    else
        loop->ntimers++;
    /* Inside the loop the per-iteration clock is current enough and free; outside it (set-up
     * code, a long pause since the last run) it may be arbitrarily stale. */
    if (!loop->running) loop->now = wsx__clock_ms();
    uint64_t when = delay_ms > UINT64_MAX / 2 ? UINT64_MAX / 2 : loop->now + delay_ms;
    /* Ticks up to wheel_tick have been visited already; a deadline there would wait a whole
     * revolution. It also keeps a timer started from a timer callback out of the running
     * phase. */
    if (when <= loop->wheel_tick) when = loop->wheel_tick + 1;
    t->when = when;
    link_tail(&loop->slots[when & WSX__WHEEL_MASK], t);
    if (when < loop->timer_next) loop->timer_next = when;
}

void wsx__timer_stop(wsx_loop *loop, wsx__timer *t)
{
    if (!t->prev) return;
    unlink_timer(t);
    loop->ntimers--;
}

/* The earliest deadline if one falls within the next revolution (scanning slots in time
 * order, so the first hit is the minimum); otherwise one revolution ahead, a safe lower
 * bound. Never scanning further bounds the cost when every timer is far away. */
static uint64_t next_deadline(wsx_loop *loop)
{
    if (loop->ntimers == 0) return UINT64_MAX;
    uint64_t base = loop->wheel_tick;
    for (uint64_t tick = base + 1; tick <= base + WSX__WHEEL_SLOTS; tick++) {
        wsx__timer *head = &loop->slots[tick & WSX__WHEEL_MASK];
        for (wsx__timer *t = head->next; t != head; t = t->next)
            if (t->when == tick) return tick;
    }
    return base + WSX__WHEEL_SLOTS;
}

void wsx__timers_run(wsx_loop *loop)
{
    uint64_t now = loop->now;
    if (now <= loop->wheel_tick) return;
    uint64_t from = loop->wheel_tick + 1;
    loop->wheel_tick = now;
    if (loop->timer_next > now) return;
    if (from < loop->timer_next) from = loop->timer_next;
    /* After a long stall one revolution covers every slot; overdue timers then fire in slot
     * order rather than strictly by deadline. */
    if (now - from >= WSX__WHEEL_SLOTS) from = now - WSX__WHEEL_SLOTS + 1;

    /* Due timers move to a private list before any callback runs, so callbacks may start and
     * stop timers freely (a stop unlinks from whichever list holds the timer). */
    wsx__timer due;
    due.next = due.prev = &due;
    for (uint64_t tick = from; tick <= now; tick++) {
        wsx__timer *head = &loop->slots[tick & WSX__WHEEL_MASK];
        for (wsx__timer *t = head->next, *nx; t != head; t = nx) {
            nx = t->next;
            if (t->when <= now) {
                unlink_timer(t);
                link_tail(&due, t);
            }
        }
        while (due.next != &due) {
            wsx__timer *t = due.next;
            unlink_timer(t);
            loop->ntimers--;
            t->cb(loop, t);
        }
    }
    loop->timer_next = next_deadline(loop);
}

int wsx__timers_timeout(wsx_loop *loop)
{
    if (loop->ntimers == 0) return -1;
    uint64_t now = wsx__clock_ms();
    if (loop->timer_next <= now) return 0;
    uint64_t d = loop->timer_next - now;
    return d > INT_MAX ? INT_MAX : (int)d;
}

/* ---------------------------------------------------------------------------------------
 * Application timers
 * --------------------------------------------------------------------------------------- */

static void app_timer_fire(wsx_loop *loop, wsx__timer *it)
{
    wsx_timer *t = wsx__container_of(it, wsx_timer, t);
    t->in_cb = true;
    t->cb(t, t->arg);
    t->in_cb = false;
    if (t->stopped || t->repeat == 0) {
        free(t);
        return;
    }
    wsx__timer_start(loop, &t->t, t->repeat);
}

int wsx_timer_start(wsx_loop *loop, uint64_t delay_ms, uint64_t repeat_ms, wsx_timer_cb cb,
                    void *arg, wsx_timer **out)
{
    if (!loop || !cb) return WSX_EINVAL;
    wsx_timer *t = calloc(1, sizeof *t);
    if (!t) return WSX_ENOMEM;
    wsx__timer_init(&t->t, app_timer_fire);
    t->loop = loop;
    t->cb = cb;
    t->arg = arg;
    t->repeat = repeat_ms;
    wsx__timer_start(loop, &t->t, delay_ms);
    if (out) *out = t;
    return 0;
}

void wsx_timer_stop(wsx_timer *t)
{
    if (!t) return;
    if (t->in_cb) {
        t->stopped = true;
        return;
    }
    wsx__timer_stop(t->loop, &t->t);
    free(t);
}

void wsx__timers_free_all(wsx_loop *loop)
{
    for (size_t i = 0; i < WSX__WHEEL_SLOTS; i++) {
        wsx__timer *head = &loop->slots[i];
        for (wsx__timer *it = head->next, *nx; it != head; it = nx) {
            nx = it->next;
            if (it->cb != app_timer_fire) continue;
            wsx__timer_stop(loop, it);
            free(wsx__container_of(it, wsx_timer, t));
        }
    }
}
