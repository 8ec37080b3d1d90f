/*
 * The process-wide budget of queued output: each loop counts the bytes in its streams'
 * queues (net.h: wsx__queued_add/sub) and adds what changed to one atomic total, so a write
 * stays an add and a compare and loops on other threads are not touched per write.
 */
#define WSX__NET_INTERNAL
#include "net.h"

#include <stdatomic.h>
#include <unistd.h>

/* Sum of what every loop published; each loop's share lags its exact count by at most one
 * check step within an iteration, and by nothing at the end of an iteration. */
static _Atomic size_t g_total;
/* The budget; 0 until set or until the default was first computed. */
static _Atomic size_t g_max;

#define STEP_MAX (256u * 1024u)

/* How far a loop's count may grow before a write checks the budget again: small against the
 * budget, so that all loops together cannot overshoot it by much. */
static size_t step(size_t max)
{
    size_t s = max / 16;
    return s < STEP_MAX ? s : STEP_MAX;
}

size_t wsx_max_queued_bytes(void)
{
    size_t m = atomic_load_explicit(&g_max, memory_order_relaxed);
    if (m) return m;
    /* A quarter of physical memory: room for the rest of the process and the kernel's own
     * socket buffers, and large enough that a busy server is never limited by it alone. */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    m = pages > 0 && page > 0 ? (size_t)pages / 4 * (size_t)page : (size_t)1 << 30;
    size_t zero = 0;
    atomic_compare_exchange_strong(&g_max, &zero, m);
    return atomic_load_explicit(&g_max, memory_order_relaxed);
}

void wsx_set_max_queued_bytes(size_t max)
{
    atomic_store_explicit(&g_max, max, memory_order_relaxed);
}

size_t wsx_queued_bytes(void)
{
    return atomic_load_explicit(&g_total, memory_order_relaxed);
}

size_t wsx__loop_queued(const wsx_loop *loop)
{
    return loop->queued;
}

/* Adds the change since the last publish to the total (modular arithmetic: a decrease is a
 * wrapping add) and returns the new total. */
static size_t publish(wsx_loop *loop)
{
    size_t d = loop->queued - loop->published;
    loop->published = loop->queued;
    return atomic_fetch_add_explicit(&g_total, d, memory_order_relaxed) + d;
}

void wsx__budget_check(wsx_loop *loop)
{
    size_t total = publish(loop);
    size_t max = wsx_max_queued_bytes();
    loop->check_at = loop->queued + step(max);
    if (total > max && loop->budget_hooks) wsx__loop_defer(loop, &loop->shed);
}

void wsx__budget_settle(wsx_loop *loop)
{
    publish(loop);
    /* Queues that drained lower the next check, so growth is measured from the low point. */
    size_t st = step(wsx_max_queued_bytes());
    if (loop->queued + st < loop->check_at) loop->check_at = loop->queued + st;
}

static void shed_cb(wsx_loop *loop, wsx__deferred *d)
{
    (void)d;
    size_t max = wsx_max_queued_bytes();
    for (wsx__budget_hook *h = loop->budget_hooks; h; h = h->next) {
        size_t total = publish(loop);
        if (total <= max) break;
        h->shed(h, total - max);
    }
    publish(loop);
    loop->check_at = loop->queued + step(max);
}

void wsx__budget_init(wsx_loop *loop)
{
    wsx__deferred_init(&loop->shed, shed_cb);
    loop->check_at = step(wsx_max_queued_bytes());
}

void wsx__budget_fini(wsx_loop *loop)
{
    wsx__loop_undefer(loop, &loop->shed);
    /* Every stream is closed by now (wsx_loop_free's contract), so this is normally 0. */
    atomic_fetch_sub_explicit(&g_total, loop->published, memory_order_relaxed);
    loop->published = 0;
}

void wsx__loop_add_budget_hook(wsx_loop *loop, wsx__budget_hook *h)
{
    h->next = NULL;
    wsx__budget_hook **pp = &loop->budget_hooks;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
}

void wsx__loop_remove_budget_hook(wsx_loop *loop, wsx__budget_hook *h)
{
    for (wsx__budget_hook **pp = &loop->budget_hooks; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            return;
        }
    }
}
