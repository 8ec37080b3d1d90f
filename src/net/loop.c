/*
 * The event loop: epoll, deferred work, the cross-thread post queue and signals.
 * Phases of one iteration are described in docs/design.md ("Event loop").
 */
#define WSX__NET_INTERNAL
#include "net.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* wsx__io.flags */
#define IO_ACTIVE 1u
#define IO_WEAK   2u /* does not keep wsx_loop_run() alive */

struct wsx__post {
    wsx__post *next;
    wsx_post_cb fn;
    wsx_post_cb free_fn; /* runs instead of fn if the loop is freed first; may be NULL */
    void *arg;
};

uint64_t wsx__clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---------------------------------------------------------------------------------------
 * fd watchers
 * --------------------------------------------------------------------------------------- */

void wsx__io_init(wsx__io *io, int fd, wsx__io_cb cb)
{
    io->fd = fd;
    io->events = 0;
    io->flags = 0;
    io->cb = cb;
}

int wsx__io_start(wsx_loop *loop, wsx__io *io, uint32_t events)
{
    if (io->flags & IO_ACTIVE) return wsx__io_modify(loop, io, events);
    struct epoll_event ev = {.events = events, .data.ptr = io};
    loop->stats.epoll_ctl_calls++;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0) return WSX_ESYS;
    io->events = (uint16_t)events;
    io->flags |= IO_ACTIVE;
    if (!(io->flags & IO_WEAK)) loop->nactive++;
    return 0;
}

int wsx__io_modify(wsx_loop *loop, wsx__io *io, uint32_t events)
{
    if (!(io->flags & IO_ACTIVE)) return wsx__io_start(loop, io, events);
    if (io->events == events) return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    loop->stats.epoll_ctl_calls++;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) return WSX_ESYS;
    io->events = (uint16_t)events;
    return 0;
}

void wsx__io_stop(wsx_loop *loop, wsx__io *io)
{
    if (!(io->flags & IO_ACTIVE)) return;
    /* Explicit removal rather than relying on close(): a forked child holding a duplicate of
     * the fd would keep the registration (and our pointer) alive. */
    loop->stats.epoll_ctl_calls++;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->flags &= (uint16_t)~IO_ACTIVE;
    io->events = 0;
    if (!(io->flags & IO_WEAK)) loop->nactive--;
    /* The rest of this iteration's event array may still name io; the owner is allowed to
     * free it as soon as we return, so those entries must go. */
    if (loop->dispatching) {
        for (int i = loop->ev_index + 1; i < loop->ev_count; i++)
            if (loop->events[i].data.ptr == io) loop->events[i].data.ptr = NULL;
    }
}

/* ---------------------------------------------------------------------------------------
 * Deferred work
 * --------------------------------------------------------------------------------------- */

void wsx__deferred_init(wsx__deferred *d, wsx__deferred_cb cb)
{
    d->next = NULL;
    d->pprev = NULL;
    d->cb = cb;
}

void wsx__loop_defer(wsx_loop *loop, wsx__deferred *d)
{
    if (d->pprev) return;
    d->next = NULL;
    d->pprev = loop->defer_tail;
    *loop->defer_tail = d;
    loop->defer_tail = &d->next;
}

void wsx__loop_undefer(wsx_loop *loop, wsx__deferred *d)
{
    if (!d->pprev) return;
    *d->pprev = d->next;
    if (d->next)
        d->next->pprev = d->pprev;
    else
        loop->defer_tail = d->pprev;
    d->next = NULL;
    d->pprev = NULL;
}

static void run_deferred(wsx_loop *loop)
{
    if (!loop->defer_head) return;
    /* A marker queued behind the current batch: nodes queued by the callbacks land after it
     * and wait for the next iteration, so a callback that re-queues itself cannot starve
     * I/O. The marker is an ordinary node, so wsx__loop_undefer() keeps working meanwhile. */
    wsx__deferred marker;
    wsx__deferred_init(&marker, NULL);
    wsx__loop_defer(loop, &marker);
    for (;;) {
        wsx__deferred *d = loop->defer_head;
        wsx__loop_undefer(loop, d);
        if (d == &marker) break;
        d->cb(loop, d);
    }
}

/* ---------------------------------------------------------------------------------------
 * Cross-thread wake-up and posts
 * --------------------------------------------------------------------------------------- */

void wsx__loop_wake(wsx_loop *loop)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the loop is woken anyway. */
    ssize_t r;
    do {
        r = write(loop->wakefd, &one, sizeof one);
    } while (r < 0 && errno == EINTR);
}

int wsx_loop_post(wsx_loop *loop, wsx_post_cb fn, void *arg)
{
    return wsx_loop_post_owned(loop, fn, arg, NULL);
}

int wsx_loop_post_owned(wsx_loop *loop, wsx_post_cb fn, void *arg, wsx_post_cb free_fn)
{
    /* A refused post gives arg back through free_fn at once, so callers have one rule:
     * from this call on, arg belongs to the post. */
    if (!loop || !fn) {
        if (free_fn) free_fn(arg);
        return WSX_EINVAL;
    }
    wsx__post *p = malloc(sizeof *p);
    if (!p) {
        if (free_fn) free_fn(arg);
        return WSX_ENOMEM;
    }
    p->next = NULL;
    p->fn = fn;
    p->free_fn = free_fn;
    p->arg = arg;
    pthread_mutex_lock(&loop->mu);
    bool was_empty = loop->post_head == NULL;
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    pthread_mutex_unlock(&loop->mu);
    /* Only the poster that makes the queue non-empty has to wake the loop: until the loop
     * takes the queue, that wake-up is still pending. */
    if (was_empty) wsx__loop_wake(loop);
    return 0;
}

static void wake_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents)
{
    uint64_t v;
    while (read(loop->wakefd, &v, sizeof v) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&loop->mu);
    wsx__post *posts = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    wsx__resolve_job *jobs = loop->jobs_done;
    loop->jobs_done = NULL;
    pthread_mutex_unlock(&loop->mu);
    while (posts) {
        wsx__post *p = posts;
        posts = p->next;
        p->fn(p->arg);
        free(p);
    }
    if (jobs) wsx__resolve_done(loop, jobs);
}

static bool posts_pending(wsx_loop *loop)
{
    pthread_mutex_lock(&loop->mu);
    bool r = loop->post_head != NULL || loop->jobs_done != NULL;
    pthread_mutex_unlock(&loop->mu);
    return r;
}

/* ---------------------------------------------------------------------------------------
 * Signals
 * --------------------------------------------------------------------------------------- */

static void sig_io_cb(wsx_loop *loop, wsx__io *io, uint32_t revents)
{
    struct signalfd_siginfo si;
    while (loop->sigfd >= 0 && read(loop->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (loop->sig_cb) loop->sig_cb(loop, (int)si.ssi_signo, loop->sig_arg);
    }
}

static void sig_remove(wsx_loop *loop)
{
    if (loop->sigfd < 0) return;
    wsx__io_stop(loop, &loop->sig_io);
    close(loop->sigfd);
    loop->sigfd = -1;
    loop->sig_cb = NULL;
}

int wsx_loop_on_signal(wsx_loop *loop, wsx_signal_cb cb, void *arg)
{
    if (!loop) return WSX_EINVAL;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (!cb) {
        if (loop->sigfd < 0) return 0;
        sig_remove(loop);
        sigset_t unblock;
        sigemptyset(&unblock);
        if (!sigismember(&loop->sig_old, SIGINT)) sigaddset(&unblock, SIGINT);
        if (!sigismember(&loop->sig_old, SIGTERM)) sigaddset(&unblock, SIGTERM);
        if (!sigismember(&loop->sig_old, SIGHUP)) sigaddset(&unblock, SIGHUP);
        pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
        return 0;
    }
    if (loop->sigfd < 0) {
        sigset_t old;
        if (pthread_sigmask(SIG_BLOCK, &set, &old) != 0) return WSX_ESYS;
        int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return WSX_ESYS;
        }
        wsx__io_init(&loop->sig_io, fd, sig_io_cb);
        loop->sig_io.flags |= IO_WEAK;
        if (wsx__io_start(loop, &loop->sig_io, WSX__IO_READ) < 0) {
            close(fd);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return WSX_ESYS;
        }
        loop->sigfd = fd;
        loop->sig_old = old;
    }
    loop->sig_cb = cb;
    loop->sig_arg = arg;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Loop
 * --------------------------------------------------------------------------------------- */

int wsx_loop_new(wsx_loop **out)
{
    if (!out) return WSX_EINVAL;
    wsx_loop *loop = calloc(1, sizeof *loop);
    if (!loop) return WSX_ENOMEM;
    loop->epfd = -1;
    loop->wakefd = -1;
    loop->sigfd = -1;
    int rc = WSX_ENOMEM;
    long iov_max = sysconf(_SC_IOV_MAX);
    loop->iov_max = iov_max > 0 && iov_max < 65536 ? (int)iov_max : 1024;
    loop->events = malloc(sizeof *loop->events * WSX__MAX_EVENTS);
    loop->rbuf = malloc(WSX__RBUF_SIZE);
    loop->gather = malloc(WSX__GATHER_BUF);
    loop->iov = malloc(sizeof *loop->iov * (size_t)loop->iov_max);
    if (!loop->events || !loop->rbuf || !loop->gather || !loop->iov) goto fail_nomutex;
    if (pthread_mutex_init(&loop->mu, NULL) != 0) goto fail_nomutex;
    rc = WSX_ESYS;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) goto fail;
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd < 0) goto fail;
    wsx__io_init(&loop->wake_io, loop->wakefd, wake_io_cb);
    loop->wake_io.flags |= IO_WEAK;
    if (wsx__io_start(loop, &loop->wake_io, WSX__IO_READ) < 0) goto fail;

    loop->now = wsx__clock_ms();
    loop->cache_decay_at = loop->now;
    loop->wheel_tick = loop->now;
    loop->timer_next = UINT64_MAX;
    for (size_t i = 0; i < WSX__WHEEL_SLOTS; i++)
        loop->slots[i].next = loop->slots[i].prev = &loop->slots[i];
    loop->defer_tail = &loop->defer_head;
    sigemptyset(&loop->sig_old);
    wsx__budget_init(loop);

    /* A peer that closes while we write would otherwise kill the process with SIGPIPE;
     * writev() has no MSG_NOSIGNAL. Respect a handler the application installed. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);

    *out = loop;
    return 0;

fail:
    pthread_mutex_destroy(&loop->mu);
fail_nomutex:
    if (loop->wakefd >= 0) close(loop->wakefd);
    if (loop->epfd >= 0) close(loop->epfd);
    free(loop->events);
    free(loop->rbuf);
    free(loop->gather);
    free(loop->iov);
    free(loop);
    return rc;
}

void wsx_loop_free(wsx_loop *loop)
{
    if (!loop) return;
    sig_remove(loop);
    wsx__resolve_free_all(loop);
    wsx__io_stop(loop, &loop->wake_io);
    close(loop->wakefd);
    /* Posts that never ran: their destructors reclaim the arguments (in posting order);
     * posts without one are dropped, their arguments the poster's business. */
    wsx__post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    while (p) {
        wsx__post *next = p->next;
        if (p->free_fn) p->free_fn(p->arg);
        free(p);
        p = next;
    }
    while (loop->exts) {
        wsx__loop_ext *e = loop->exts;
        loop->exts = e->next;
        e->free_fn(e);
    }
    wsx__timers_free_all(loop);
    wsx__budget_fini(loop);
    wsx__qcache_free(loop);
    close(loop->epfd);
    pthread_mutex_destroy(&loop->mu);
    free(loop->events);
    free(loop->rbuf);
    free(loop->gather);
    free(loop->iov);
    free(loop);
}

void wsx__loop_ext_add(wsx_loop *loop, wsx__loop_ext *e)
{
    e->next = loop->exts;
    loop->exts = e;
}

wsx__loop_ext *wsx__loop_ext_find(const wsx_loop *loop, const void *key)
{
    for (wsx__loop_ext *e = loop->exts; e; e = e->next)
        if (e->key == key) return e;
    return NULL;
}

void wsx_loop_stop(wsx_loop *loop)
{
    if (loop) loop->stop = true;
}

uint64_t wsx_loop_now(const wsx_loop *loop)
{
    return loop->now;
}

const wsx__loop_stats *wsx__loop_stats_get(const wsx_loop *loop)
{
    return &loop->stats;
}

static bool loop_alive(wsx_loop *loop)
{
    return loop->nactive || loop->ntimers || loop->nrefs || loop->defer_head || loop->pend_head ||
           posts_pending(loop);
}

static void dispatch(wsx_loop *loop, int n)
{
    loop->dispatching = true;
    loop->ev_count = n;
    for (int i = 0; i < n; i++) {
        loop->ev_index = i;
        wsx__io *io = loop->events[i].data.ptr;
        if (io) io->cb(loop, io, loop->events[i].events);
    }
    loop->dispatching = false;
    loop->ev_count = 0;
}

/*
 * Fan-out coalescing. The flush at the end of an iteration costs one writev per pending
 * stream, and on loopback or a fast network that system call (the kernel's TCP transmit path)
 * is nearly all of a broadcast's cost. When the iteration's output goes to many more streams
 * than it read from (a publish to many subscribers: few events, hundreds of streams to flush),
 * input that arrived while the callbacks ran (more publishes, typically) is taken in before
 * the flush, so each of those writes carries more messages. It costs one epoll_wait with no
 * timeout, against the hundreds of writes it can save; it never waits, so it adds no
 * latency beyond the callbacks of that input. Echo-like traffic (one flush per readable
 * stream) never qualifies. Measured in docs/performance.md (scenario E16).
 */
#define FANOUT_MIN_STREAMS 64 /* pending streams before an extra poll is worth a syscall */
#define FANOUT_RATIO       8  /* ...and at least this many per event dispatched */
#define FANOUT_MAX_POLLS   2  /* extra polls per iteration, so the flush is never starved */

static void fanout_poll(wsx_loop *loop, int dispatched)
{
    for (int r = 0; r < FANOUT_MAX_POLLS; r++) {
        if (loop->stop) return; /* wsx_loop_stop() in a callback: take in nothing more */
        if (loop->npend < FANOUT_MIN_STREAMS || loop->npend < (size_t)dispatched * FANOUT_RATIO)
            return;
        int n = epoll_wait(loop->epfd, loop->events, WSX__MAX_EVENTS, 0);
        loop->stats.fanout_polls++;
        if (n <= 0) return;
        dispatch(loop, n);
        dispatched += n;
    }
}

int wsx_loop_run(wsx_loop *loop)
{
    if (!loop) return WSX_EINVAL;
    int rc = 0;
    loop->running = true;
    loop->now = wsx__clock_ms();
    while (!loop->stop && loop_alive(loop)) {
        /* Work queued for the end of an iteration that could not run in it (a deferred node
         * queued by a deferred callback) must not wait for I/O. */
        int timeout = loop->defer_head || loop->pend_head ? 0 : wsx__timers_timeout(loop);
        /* After a busy period, wake up once the loop has been quiet for a moment to give the
         * write caches back, rather than holding them until the next timer. */
        if (timeout != 0 && (timeout < 0 || timeout > WSX__IDLE_TRIM_MS) &&
            wsx__qcache_excess(loop))
            timeout = WSX__IDLE_TRIM_MS;
        int n = epoll_wait(loop->epfd, loop->events, WSX__MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno != EINTR) {
                rc = WSX_ESYS;
                break;
            }
            n = 0;
        }
        loop->now = wsx__clock_ms();
        /* A wait that ended with nothing to do means the loop is idle: give back the write
         * chunks kept for busy times, so an idle server holds little memory. */
        if (n == 0 && timeout != 0) wsx__qcache_trim(loop);

        dispatch(loop, n);
        if (n > 0) fanout_poll(loop, n);

        wsx__timers_run(loop);
        run_deferred(loop);
        wsx__streams_run(loop);
        wsx__budget_iteration(loop);
        if (loop->now - loop->cache_decay_at >= 1000) {
            wsx__qcache_decay(loop);
            loop->cache_decay_at = loop->now;
        }
        loop->stats.iterations++;
    }
    loop->stop = false;
    loop->running = false;
    return rc;
}
