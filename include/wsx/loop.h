/*
 * wsx/loop.h — the event loop: one thread, epoll, a coarse timer wheel.
 *
 * Thread rule: a loop and everything attached to it (timers, servers, connections) belong to
 * the thread that runs it. Every function here must be called on that thread, except
 * wsx_loop_new(), wsx_loop_post(), wsx_loop_post_owned() and the budget functions at the end,
 * which are safe from any thread. wsx.h states the whole contract once.
 *
 * Lifetimes: wsx_loop_new() creates a loop; wsx_loop_free() destroys it once nothing created
 * on it is still open (see wsx_loop_free()). Timers started with wsx_timer_start() are owned
 * by the loop and freed by it (see wsx_timer_stop()).
 */
#ifndef WSX_LOOP_H
#define WSX_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "wsx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsx_loop wsx_loop;
typedef struct wsx_timer wsx_timer;

/* A function queued with wsx_loop_post(); runs on the loop thread. Also the type of the
 * destructor of wsx_loop_post_owned(). */
typedef void (*wsx_post_cb)(void *arg);
/* A timer callback. `t` is valid during the call (see wsx_timer_stop()). */
typedef void (*wsx_timer_cb)(wsx_timer *t, void *arg);
/* A signal callback: `signo` is SIGINT, SIGTERM or SIGHUP. */
typedef void (*wsx_signal_cb)(wsx_loop *loop, int signo, void *arg);

/*
 * Creates a loop and stores it in *out (left untouched on failure).
 * Side effect, process-wide: if SIGPIPE has its default disposition it is set to SIG_IGN, so a
 * write to a connection the peer has closed fails with an error instead of killing the
 * process. A handler the application installed itself is left alone.
 * Returns 0, WSX_EINVAL (out is NULL), WSX_ENOMEM, or WSX_ESYS (epoll or eventfd failed).
 */
WSX_API int wsx_loop_new(wsx_loop **out);

/*
 * Destroys the loop. Must not be called while wsx_loop_run() is running on it.
 * Everything opened on the loop by the layers above (listeners, connections, servers,
 * clients) must have been closed and their close callbacks delivered first (run the loop
 * until it returns); doing otherwise is a programmer error and leaks or asserts.
 * Application timers (wsx_timer) still pending are stopped and freed; their callbacks do not
 * run. Callbacks still queued (posted but not yet run) do not run: the destructor given to
 * wsx_loop_post_owned() is called instead, here, on the calling thread, in posting order;
 * entries without one (wsx_loop_post()) are dropped, their arguments the poster's to
 * reclaim. The destructors run after the loop's watchers are stopped and must not call into
 * this loop. No other thread may post to the loop once wsx_loop_free() has begun. The signal
 * watcher, if any, is removed and the previous signal mask of the thread calling
 * wsx_loop_on_signal() is not restored (see there). Threads resolving host names for pending
 * connects are joined. NULL is a no-op.
 */
WSX_API void wsx_loop_free(wsx_loop *loop);

/*
 * Runs the loop on the calling thread until wsx_loop_stop() is called or the loop has
 * nothing left to do. "Nothing left to do" means, checked before every wait: no started fd
 * watcher (listeners, connections, connects in progress — the loop's internal wake-up and
 * signal descriptors do not count), no pending timer (application or internal), no pending
 * deferred work or connection awaiting its close callback or corked output, no connect
 * waiting for name resolution, and no callback queued by wsx_loop_post(). A callback posted
 * from another thread while the loop is already idle and returning is kept and runs in the
 * next wsx_loop_run().
 * Each iteration: wait for I/O (up to the next timer), run I/O callbacks, run expired timers,
 * run deferred work, then deliver close callbacks and flush corked writes.
 * Returns 0 on stop or idle, WSX_ESYS if epoll_wait() failed (errno is set), WSX_EINVAL if
 * loop is NULL. May be called again after it returns, but never from inside one of the
 * loop's own callbacks.
 */
WSX_API int wsx_loop_run(wsx_loop *loop);

/*
 * Makes wsx_loop_run() return after the current iteration completes (callbacks already due in
 * it still run, corked writes are flushed). Loop thread only; from another thread, post a
 * function that calls it. The flag is cleared when wsx_loop_run() returns.
 */
WSX_API void wsx_loop_stop(wsx_loop *loop);

/*
 * Queues fn(arg) to run on the loop thread, during the I/O phase of a coming iteration, and
 * wakes the loop if it is blocked waiting for I/O. Safe from any thread: it is the one
 * primitive the other thread-safe calls (wsx.h) are built on. Functions posted from one
 * thread run in the order they were posted.
 * fn is called exactly once unless the loop is freed first (see wsx_loop_free()); then it
 * is dropped without a call, and arg is the poster's to reclaim: when arg owns memory, use
 * wsx_loop_post_owned(). Same as wsx_loop_post_owned(loop, fn, arg, NULL).
 * Returns 0, WSX_EINVAL (loop or fn NULL) or WSX_ENOMEM.
 */
WSX_API int wsx_loop_post(wsx_loop *loop, wsx_post_cb fn, void *arg);

/*
 * wsx_loop_post() for an argument that owns resources: from this call on, arg belongs to the
 * post, and exactly one of fn(arg) and free_fn(arg) is called, once:
 *   - fn(arg) on the loop thread, as for wsx_loop_post(), if the loop runs the entry; fn then
 *     owns arg (free_fn is not called after it);
 *   - free_fn(arg), instead of fn, inside wsx_loop_free() on the thread that calls it, if
 *     the loop is freed with the entry still queued (posted after the loop's last run, or
 *     while it was returning);
 *   - free_fn(arg), instead of fn, on the calling thread before this function returns, if
 *     the post is refused (WSX_EINVAL: loop or fn NULL; WSX_ENOMEM).
 * free_fn NULL makes this wsx_loop_post(). free_fn must not call into the loop the entry was
 * posted to. Safe from any thread, like wsx_loop_post(), and ordered with it.
 * Returns 0, WSX_EINVAL or WSX_ENOMEM.
 */
WSX_API int wsx_loop_post_owned(wsx_loop *loop, wsx_post_cb fn, void *arg, wsx_post_cb free_fn);

/*
 * The loop's clock: CLOCK_MONOTONIC in milliseconds, read once per iteration right after the
 * wait for I/O, so every callback of one iteration sees the same value. Timers are measured
 * on this clock. Outside wsx_loop_run() the value is the one of the last read; starting a
 * timer there reads the clock afresh first.
 */
WSX_API uint64_t wsx_loop_now(const wsx_loop *loop);

/*
 * Delivers SIGINT, SIGTERM and SIGHUP as cb(loop, signo, arg) on the loop thread, so a server
 * can shut down gracefully or reload its certificates (without a watcher, SIGHUP keeps its
 * default action). It blocks the three signals in the calling thread (pthread_sigmask) and reads
 * them from a signalfd. For the signals to reach the loop, every other thread of the process
 * must block them too: call this before creating other threads (they inherit the mask), or
 * block the signals in them yourself. The signal watcher does not keep wsx_loop_run() alive.
 * Calling it again replaces cb/arg; cb NULL removes the watcher and unblocks whichever of the
 * three signals were unblocked before. Returns 0, WSX_EINVAL (loop NULL) or WSX_ESYS.
 */
WSX_API int wsx_loop_on_signal(wsx_loop *loop, wsx_signal_cb cb, void *arg);

/*
 * Starts an application timer that calls cb(t, arg) once delay_ms after wsx_loop_now(), and
 * then every repeat_ms if repeat_ms > 0. Resolution is 1 ms; a timer never fires early on the
 * loop clock, and fires late by the time the loop spends busy. Timers due in the same
 * iteration fire in deadline order (same-millisecond timers in the order they were started;
 * after a stall of the loop longer than 512 ms, overdue timers fire in an unspecified order).
 * A timer started from a timer callback with delay 0 fires in the next iteration.
 * On success stores the timer in *out if out is not NULL (it may be NULL for a
 * fire-and-forget one-shot). The timer is owned by the loop: a one-shot timer is freed after
 * its callback returns; a repeating timer lives until wsx_timer_stop() or wsx_loop_free().
 * Returns 0, WSX_EINVAL (loop or cb NULL) or WSX_ENOMEM.
 */
WSX_API int wsx_timer_start(wsx_loop *loop, uint64_t delay_ms, uint64_t repeat_ms, wsx_timer_cb cb,
                            void *arg, wsx_timer **out);

/*
 * Stops and frees a timer; its callback will not run again. Safe inside the timer's own
 * callback (the free happens when the callback returns). Must not be called on a one-shot
 * timer after its callback has returned (it is already freed). NULL is a no-op.
 */
WSX_API void wsx_timer_stop(wsx_timer *t);

/* ---- the process-wide budget of queued output ----
 *
 * Bytes queued for sending and not yet taken by the kernel, summed over every connection of
 * the process (servers, clients, HTTP responses; every loop and thread), are bounded by one
 * budget. When a loop's writes take the total above it, that loop drops its own WebSocket
 * server connections with the largest send queues, largest first, with 1008 ("process send
 * budget exceeded") until the total is back under the budget; only connections whose queue
 * is above their send_low_water are dropped, so connections that keep up are never touched.
 * A published message counts once in every subscriber's queue it sits in. Other loops drop
 * their own connections when their queues next grow. Each loop checks the total when its own
 * queues grew by min(256 KiB, budget / 16) since its last check, so the process can pass the
 * budget by that much per loop before it acts.
 */

/* Sets the budget in bytes. 0 restores the default, a quarter of the physical memory
 * (sysconf(_SC_PHYS_PAGES)); SIZE_MAX means no budget. Thread-safe; loops apply it from their
 * next check. */
WSX_API void wsx_set_max_queued_bytes(size_t max);

/* The budget in force (the default computed, if none was set). Thread-safe. */
WSX_API size_t wsx_max_queued_bytes(void);

/* Bytes queued in the whole process, as published by its loops: exact at the end of each
 * loop's iteration, and behind by less than a check step during one. For metrics and tests.
 * Thread-safe. */
WSX_API size_t wsx_queued_bytes(void);

#ifdef __cplusplus
}
#endif
#endif
