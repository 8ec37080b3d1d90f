/*
 * The event loop: timers, deferred work, cross-thread posts, signals, run/stop semantics.
 * Timing bounds are deliberately generous: they check "not early" and "not absurdly late".
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>

/* White-box: write_caches_follow_the_load looks at the loop's write caches. */
#define WSX__NET_INTERNAL
#include "net/net.h"
#include "test.h"
#include "net_test.h"
#include "wsx/loop.h"

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

TEST(run_empty_returns)
{
    wsx_loop *loop = new_loop();
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK(wsx_loop_now(loop) > 0);
    wsx_loop_free(loop);
    wsx_loop_free(NULL);
    CHECK_INT(wsx_loop_new(NULL), WSX_EINVAL);
}

/* --- timers ------------------------------------------------------------------------------ */

typedef struct {
    wsx_loop *loop;
    uint64_t start;
    int order[8];
    uint64_t at[8];
    int n;
} order_rec;

typedef struct {
    order_rec *rec;
    int id;
} order_arg;

static void order_cb(wsx_timer *t, void *arg)
{
    order_arg *a = arg;
    order_rec *r = a->rec;
    r->order[r->n] = a->id;
    r->at[r->n] = wsx_loop_now(r->loop) - r->start;
    r->n++;
}

TEST(timers_fire_in_order)
{
    wsx_loop *loop = new_loop();
    order_rec rec = {.loop = loop, .start = wsx_loop_now(loop)};
    static const uint64_t delays[] = {30, 10, 50, 0, 20, 20};
    order_arg args[6];
    for (int i = 0; i < 6; i++) {
        args[i] = (order_arg){&rec, i};
        CHECK_INT(wsx_timer_start(loop, delays[i], 0, order_cb, &args[i], NULL), 0);
    }
    uint64_t t0 = now_ms();
    CHECK_INT(wsx_loop_run(loop), 0);
    uint64_t wall = now_ms() - t0;
    CHECK_INT(rec.n, 6);
    /* Deadline order; equal deadlines in start order. */
    static const int expect[] = {3, 1, 4, 5, 0, 2};
    for (int i = 0; i < 6; i++) {
        CHECK_INT(rec.order[i], expect[i]);
        CHECK(rec.at[i] >= delays[expect[i]]);
        CHECK(rec.at[i] < delays[expect[i]] + 2000);
    }
    CHECK(wall >= 49);
    CHECK(wall < 5000);
    wsx_loop_free(loop);
}

typedef struct {
    wsx_timer *self;
    wsx_timer *victim;
    int fired;
    int victim_fired;
    uint64_t last;
    wsx_loop *loop;
} stop_rec;

static void victim_cb(wsx_timer *t, void *arg)
{
    (void)t;
    stop_rec *r = arg;
    if (!r) return;
    r->victim_fired++;
    r->victim = NULL; /* a one-shot timer is freed after its callback */
}

static void repeat_self_stop_cb(wsx_timer *t, void *arg)
{
    stop_rec *r = arg;
    CHECK(t == r->self);
    r->fired++;
    r->last = wsx_loop_now(r->loop);
    /* The victim is armed from the 4th run, due 5 ms after the 5th: however late the loop
     * runs (a loaded machine), the 5th run comes first and stops it. Armed at the start
     * instead, a stall of a few ms let it fire before the 5th run. */
    if (r->fired == 4) CHECK_INT(wsx_timer_start(r->loop, 7 + 5, 0, victim_cb, r, &r->victim), 0);
    if (r->fired == 5) {
        wsx_timer_stop(t);
        wsx_timer_stop(r->victim); /* due a few ms later; must never fire */
    }
}

TEST(repeating_timer_stops_itself)
{
    wsx_loop *loop = new_loop();
    stop_rec r = {.loop = loop};
    uint64_t start = wsx_loop_now(loop);
    CHECK_INT(wsx_timer_start(loop, 5, 7, repeat_self_stop_cb, &r, &r.self), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.fired, 5);
    CHECK_INT(r.victim_fired, 0);
    CHECK(r.last - start >= 5 + 4 * 7);
    wsx_loop_free(loop);
}

static void stop_other_cb(wsx_timer *t, void *arg)
{
    stop_rec *r = arg;
    r->fired++;
    wsx_timer_stop(r->victim);
}

TEST(timer_stops_other_due_in_same_tick)
{
    wsx_loop *loop = new_loop();
    stop_rec r = {.loop = loop};
    CHECK_INT(wsx_timer_start(loop, 10, 0, stop_other_cb, &r, NULL), 0);
    CHECK_INT(wsx_timer_start(loop, 10, 0, victim_cb, &r, &r.victim), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.fired, 1);
    CHECK_INT(r.victim_fired, 0);
    wsx_loop_free(loop);
}

static int zero_delay_count;
static uint64_t zero_delay_iter[3];
static wsx_loop *zero_delay_loop;

static void zero_delay_cb(wsx_timer *t, void *arg)
{
    zero_delay_iter[zero_delay_count++] = wsx__loop_stats_get(zero_delay_loop)->iterations;
    if (zero_delay_count < 3) wsx_timer_start(zero_delay_loop, 0, 0, zero_delay_cb, NULL, NULL);
}

TEST(zero_delay_from_callback_runs_next_iteration)
{
    wsx_loop *loop = zero_delay_loop = new_loop();
    zero_delay_count = 0;
    CHECK_INT(wsx_timer_start(loop, 0, 0, zero_delay_cb, NULL, NULL), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(zero_delay_count, 3);
    CHECK(zero_delay_iter[1] > zero_delay_iter[0]);
    CHECK(zero_delay_iter[2] > zero_delay_iter[1]);
    wsx_loop_free(loop);
}

/* Internal timers embedded in an array, as 100k connections would hold them. */
typedef struct {
    wsx__timer t;
    uint64_t due;
    int fired;
} big_timer;

static size_t big_fired, big_early;

static void big_cb(wsx_loop *loop, wsx__timer *t)
{
    big_timer *b = wsx__container_of(t, big_timer, t);
    b->fired++;
    big_fired++;
    if (wsx_loop_now(loop) < b->due) big_early++;
}

TEST(hundred_thousand_timers)
{
    enum { N = 100000 };
    wsx_loop *loop = new_loop();
    big_timer *b = calloc(N, sizeof *b);
    big_fired = big_early = 0;
    uint64_t now = wsx_loop_now(loop);
    uint32_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        /* Spread over more than one wheel revolution to exercise later rounds. */
        uint64_t d = 1 + (seed >> 8) % 1200;
        wsx__timer_init(&b[i].t, big_cb);
        wsx__timer_start(loop, &b[i].t, d);
        b[i].due = now + d;
        CHECK(wsx__timer_active(&b[i].t));
    }
    /* Restart a quarter (O(1) move) and stop another quarter. */
    for (int i = 0; i < N; i += 4) {
        wsx__timer_start(loop, &b[i].t, 700);
        b[i].due = now + 700;
    }
    for (int i = 1; i < N; i += 4)
        wsx__timer_stop(loop, &b[i].t);
    for (int i = 1; i < N; i += 4)
        CHECK(!wsx__timer_active(&b[i].t));
    uint64_t t0 = now_ms();
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK(now_ms() - t0 < 10000);
    CHECK_INT(big_fired, N - N / 4);
    CHECK_INT(big_early, 0);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += b[i].fired != (i % 4 == 1 ? 0 : 1);
    CHECK_INT(bad, 0);
    free(b);

    /* The public API under the same load: start and stop 100k. */
    wsx_timer **pt = calloc(N, sizeof *pt);
    for (int i = 0; i < N; i++)
        CHECK_INT(wsx_timer_start(loop, 1000 + (uint64_t)i % 5000, 0, victim_cb, NULL, &pt[i]), 0);
    for (int i = 0; i < N; i++)
        wsx_timer_stop(pt[i]);
    CHECK_INT(wsx_loop_run(loop), 0);
    free(pt);
    wsx_loop_free(loop);
}

TEST(pending_timers_freed_with_loop)
{
    wsx_loop *loop = new_loop();
    wsx_timer *t = NULL;
    CHECK_INT(wsx_timer_start(loop, 3600 * 1000, 0, victim_cb, NULL, &t), 0);
    CHECK(t != NULL);
    CHECK_INT(wsx_timer_start(loop, 1000, 1000, victim_cb, NULL, NULL), 0);
    CHECK_INT(wsx_timer_start(NULL, 1, 0, victim_cb, NULL, NULL), WSX_EINVAL);
    CHECK_INT(wsx_timer_start(loop, 1, 0, NULL, NULL, NULL), WSX_EINVAL);
    wsx_loop_free(loop); /* ASan reports the timers if they leak */
}

/* --- deferred work ----------------------------------------------------------------------- */

typedef struct {
    wsx__deferred d, again, cancelled;
    wsx_loop *loop;
    bool in_timer;
    uint64_t timer_iter, defer_iter, again_iter;
    int ran, again_ran, cancelled_ran;
    bool ran_inside_timer;
} defer_rec;

static void defer_again_cb(wsx_loop *loop, wsx__deferred *d)
{
    defer_rec *r = wsx__container_of(d, defer_rec, again);
    r->again_ran++;
    r->again_iter = wsx__loop_stats_get(loop)->iterations;
}

static void defer_cb(wsx_loop *loop, wsx__deferred *d)
{
    defer_rec *r = wsx__container_of(d, defer_rec, d);
    r->ran++;
    r->ran_inside_timer = r->in_timer;
    r->defer_iter = wsx__loop_stats_get(loop)->iterations;
    CHECK(!wsx__deferred_pending(d));
    /* Queued from a deferred callback: next iteration. */
    wsx__loop_defer(loop, &r->again);
}

static void cancelled_cb(wsx_loop *loop, wsx__deferred *d)
{
    wsx__container_of(d, defer_rec, cancelled)->cancelled_ran++;
}

static void defer_timer_cb(wsx_timer *t, void *arg)
{
    defer_rec *r = arg;
    r->in_timer = true;
    r->timer_iter = wsx__loop_stats_get(r->loop)->iterations;
    wsx__loop_defer(r->loop, &r->d);
    wsx__loop_defer(r->loop, &r->d); /* idempotent */
    wsx__loop_defer(r->loop, &r->cancelled);
    CHECK(wsx__deferred_pending(&r->cancelled));
    wsx__loop_undefer(r->loop, &r->cancelled);
    CHECK(!wsx__deferred_pending(&r->cancelled));
    CHECK_INT(r->ran, 0);
    r->in_timer = false;
}

TEST(defer_runs_at_end_of_iteration)
{
    wsx_loop *loop = new_loop();
    defer_rec r = {.loop = loop};
    wsx__deferred_init(&r.d, defer_cb);
    wsx__deferred_init(&r.again, defer_again_cb);
    wsx__deferred_init(&r.cancelled, cancelled_cb);
    CHECK_INT(wsx_timer_start(loop, 5, 0, defer_timer_cb, &r, NULL), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.ran, 1);
    CHECK(!r.ran_inside_timer);
    CHECK_INT(r.defer_iter, r.timer_iter);
    CHECK_INT(r.again_ran, 1);
    CHECK_INT(r.again_iter, r.timer_iter + 1);
    CHECK_INT(r.cancelled_ran, 0);
    wsx_loop_free(loop);
}

/* --- cross-thread posts ------------------------------------------------------------------- */

typedef struct {
    wsx_loop *loop;
    wsx_timer *keepalive;
    int posted;
    uint64_t woke_at;
    pthread_t self;
    bool on_loop_thread;
} post_rec;

static void post_stop_cb(void *arg)
{
    post_rec *r = arg;
    r->posted++;
    r->woke_at = now_ms();
    r->on_loop_thread = pthread_equal(pthread_self(), r->self);
    wsx_timer_stop(r->keepalive);
    wsx_loop_stop(r->loop);
}

static void *poster_main(void *arg)
{
    post_rec *r = arg;
    sleep_ms(100); /* let the loop block in epoll_wait */
    wsx_loop_post(r->loop, post_stop_cb, r);
    return NULL;
}

TEST(post_wakes_blocked_loop)
{
    wsx_loop *loop = new_loop();
    post_rec r = {.loop = loop, .self = pthread_self()};
    /* A long timer keeps the loop asleep: only the post can end the run early. */
    CHECK_INT(wsx_timer_start(loop, 15000, 0, victim_cb, NULL, &r.keepalive), 0);
    pthread_t th;
    pthread_create(&th, NULL, poster_main, &r);
    uint64_t t0 = now_ms();
    CHECK_INT(wsx_loop_run(loop), 0);
    uint64_t took = now_ms() - t0;
    pthread_join(th, NULL);
    CHECK_INT(r.posted, 1);
    CHECK(r.on_loop_thread);
    CHECK(took >= 90);
    CHECK(took < 5000);
    CHECK_INT(wsx_loop_post(NULL, post_stop_cb, &r), WSX_EINVAL);
    CHECK_INT(wsx_loop_post(loop, NULL, &r), WSX_EINVAL);
    wsx_loop_free(loop);
}

enum { POSTERS = 4, POSTS_EACH = 5000 };

typedef struct {
    int thread;
    int seq;
} post_item;

static int post_last_seq[POSTERS];
static int post_bad_order, post_count;
static wsx_loop *post_loop;

static void post_count_cb(void *arg)
{
    post_item *it = arg;
    if (it->seq != post_last_seq[it->thread] + 1) post_bad_order++;
    post_last_seq[it->thread] = it->seq;
    post_count++;
    free(it);
    if (post_count == POSTERS * POSTS_EACH) wsx_loop_stop(post_loop);
}

static void *many_posts_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 1; i <= POSTS_EACH; i++) {
        post_item *it = malloc(sizeof *it);
        it->thread = id;
        it->seq = i;
        while (wsx_loop_post(post_loop, post_count_cb, it) != 0) {
        }
    }
    return NULL;
}

TEST(posts_from_many_threads_keep_per_thread_order)
{
    wsx_loop *loop = post_loop = new_loop();
    wsx_timer *keep = NULL;
    CHECK_INT(wsx_timer_start(loop, 15000, 0, victim_cb, NULL, &keep), 0);
    pthread_t th[POSTERS];
    for (int i = 0; i < POSTERS; i++)
        pthread_create(&th[i], NULL, many_posts_main, (void *)(intptr_t)i);
    CHECK_INT(wsx_loop_run(loop), 0);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(post_count, POSTERS * POSTS_EACH);
    CHECK_INT(post_bad_order, 0);
    wsx_timer_stop(keep);
    wsx_loop_free(loop);
}

static int late_post_ran;
static void late_post_cb(void *arg)
{
    late_post_ran++;
}

TEST(post_before_run_keeps_loop_alive_once)
{
    wsx_loop *loop = new_loop();
    late_post_ran = 0;
    CHECK_INT(wsx_loop_post(loop, late_post_cb, NULL), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(late_post_ran, 1);
    /* Queued and never run: discarded by free (nothing to leak: arg is NULL). */
    CHECK_INT(wsx_loop_post(loop, late_post_cb, NULL), 0);
    wsx_loop_free(loop);
    CHECK_INT(late_post_ran, 1);
}

/* Posts with a destructor: fn or free_fn, exactly once, never both. */
#define OWNED_POSTERS 4
#define OWNED_EACH    2000

static int owned_ran, owned_freed, owned_refused;
static wsx_loop *owned_loop;

static void owned_run(void *arg)
{
    owned_ran++;
    free(arg);
}

/* Called on the freeing thread (after the posters are joined) or on a poster thread for a
 * refused post: atomic, since posters may be refused concurrently. */
static void owned_free(void *arg)
{
    __atomic_fetch_add(&owned_freed, 1, __ATOMIC_RELAXED);
    free(arg);
}

static void *owned_posts_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < OWNED_EACH; i++) {
        /* The argument owns memory: a leak shows in the ASan build. */
        char *buf = malloc(64);
        if (wsx_loop_post_owned(owned_loop, owned_run, buf, owned_free) != 0)
            __atomic_fetch_add(&owned_refused, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

TEST(owned_posts_freed_with_loop_from_many_threads)
{
    wsx_loop *loop = owned_loop = new_loop();
    owned_ran = owned_freed = owned_refused = 0;
    /* One runs before the loop's last run: fn, not free_fn. */
    CHECK_INT(wsx_loop_post_owned(loop, owned_run, malloc(16), owned_free), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(owned_ran, 1);
    CHECK_INT(owned_freed, 0);
    /* Then several threads post to the loop that will not run again. */
    pthread_t th[OWNED_POSTERS];
    for (int i = 0; i < OWNED_POSTERS; i++)
        pthread_create(&th[i], NULL, owned_posts_main, NULL);
    for (int i = 0; i < OWNED_POSTERS; i++)
        pthread_join(th[i], NULL);
    /* Plain posts in between are dropped without a call, as before. */
    late_post_ran = 0;
    CHECK_INT(wsx_loop_post(loop, late_post_cb, NULL), 0);
    CHECK_INT(owned_freed, owned_refused);
    wsx_loop_free(loop);
    CHECK_INT(owned_ran, 1);
    CHECK_INT(late_post_ran, 0);
    CHECK_INT(owned_freed, OWNED_POSTERS * OWNED_EACH);
}

static int refused_freed;
static void refused_free(void *arg)
{
    refused_freed++;
    free(arg);
}

TEST(owned_post_refused_calls_destructor)
{
    wsx_loop *loop = new_loop();
    refused_freed = 0;
    CHECK_INT(wsx_loop_post_owned(NULL, owned_run, malloc(8), refused_free), WSX_EINVAL);
    CHECK_INT(refused_freed, 1);
    CHECK_INT(wsx_loop_post_owned(loop, NULL, malloc(8), refused_free), WSX_EINVAL);
    CHECK_INT(refused_freed, 2);
    /* No destructor: the plain post's contract. */
    CHECK_INT(wsx_loop_post_owned(loop, NULL, NULL, NULL), WSX_EINVAL);
    owned_ran = 0;
    CHECK_INT(wsx_loop_post_owned(loop, owned_run, malloc(8), refused_free), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(owned_ran, 1);
    CHECK_INT(refused_freed, 2);
    wsx_loop_free(loop);
    CHECK_INT(refused_freed, 2);
}

/* --- signals ----------------------------------------------------------------------------- */

typedef struct {
    int signo;
    int count;
    wsx_timer *keepalive;
} sig_rec;

static void on_sig(wsx_loop *loop, int signo, void *arg)
{
    sig_rec *r = arg;
    r->signo = signo;
    r->count++;
    wsx_timer_stop(r->keepalive);
    wsx_loop_stop(loop);
}

static void raise_cb(wsx_timer *t, void *arg)
{
    (void)arg;
    kill(getpid(), SIGTERM);
}

TEST(signal_delivered_on_loop)
{
    wsx_loop *loop = new_loop();
    sig_rec r = {0};
    CHECK_INT(wsx_loop_on_signal(loop, on_sig, &r), 0);
    CHECK_INT(wsx_timer_start(loop, 15000, 0, victim_cb, NULL, &r.keepalive), 0);
    CHECK_INT(wsx_timer_start(loop, 10, 0, raise_cb, NULL, NULL), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.count, 1);
    CHECK_INT(r.signo, SIGTERM);

    /* A second signal, raised thread-directed this time. */
    CHECK_INT(wsx_timer_start(loop, 15000, 0, victim_cb, NULL, &r.keepalive), 0);
    raise(SIGINT);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.count, 2);
    CHECK_INT(r.signo, SIGINT);

    CHECK_INT(wsx_loop_on_signal(loop, NULL, NULL), 0);
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    CHECK(!sigismember(&cur, SIGTERM));
    CHECK(!sigismember(&cur, SIGINT));
    wsx_loop_free(loop);
}

TEST(sigpipe_ignored)
{
    wsx_loop *loop = new_loop();
    struct sigaction sa;
    sigaction(SIGPIPE, NULL, &sa);
    CHECK(sa.sa_handler == SIG_IGN);
    wsx_loop_free(loop);
}

/* --- stop ---------------------------------------------------------------------------------- */

static void stop_cb(wsx_timer *t, void *arg)
{
    int *n = arg;
    if (++*n == 3) wsx_loop_stop(wsx__container_of(n, post_rec, posted)->loop);
}

TEST(stop_and_run_again)
{
    wsx_loop *loop = new_loop();
    post_rec r = {.loop = loop};
    wsx_timer *t = NULL;
    CHECK_INT(wsx_timer_start(loop, 1, 1, stop_cb, &r.posted, &t), 0);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.posted, 3);
    /* The stop flag is cleared on return: running again continues. */
    r.posted = 0;
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(r.posted, 3);
    wsx_timer_stop(t);
    CHECK_INT(wsx_loop_run(loop), 0);
    wsx_loop_free(loop);
}

static size_t idle_small;
static wsx_timer *idle_far;

/* Posted from another thread: an I/O event, not a timeout, so it does not trim by itself. */
static void idle_check(void *arg)
{
    size_t chunk, slice;
    wsx__qcache_counts(arg, &idle_small, &chunk, &slice);
    wsx_timer_stop(idle_far);
}

static void idle_never(wsx_timer *t, void *arg)
{
    (void)t;
    (void)arg;
}

static void *idle_poster(void *arg)
{
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
    wsx_loop_post(arg, idle_check, arg);
    return NULL;
}

/* The write caches keep a busy iteration's chunks (no malloc/free churn between flushes),
 * halve every second and drop to a few when the loop is idle. */
TEST(write_caches_follow_the_load)
{
    wsx_loop *loop = NULL;
    CHECK_INT(wsx_loop_new(&loop), 0);
    static wsx__qnode *q[1000];
    size_t small, chunk, slice;
    for (int i = 0; i < 1000; i++)
        q[i] = wsx__chunk_get(loop, 34);
    for (int i = 0; i < 1000; i++)
        wsx__qnode_put(loop, q[i]);
    for (int i = 0; i < 300; i++)
        q[i] = wsx__chunk_get(loop, 4096);
    for (int i = 0; i < 300; i++)
        wsx__qnode_put(loop, q[i]);
    wsx__ref *r = wsx__ref_new(16);
    for (int i = 0; i < 1000; i++) {
        q[i] = wsx__slice_get(loop);
        q[i]->ref = wsx__ref_retain(r);
    }
    wsx__ref_release(r);
    for (int i = 0; i < 1000; i++)
        wsx__qnode_put(loop, q[i]); /* the last one frees r */
    wsx__qcache_counts(loop, &small, &chunk, &slice);
    CHECK_INT(small, 1000);
    CHECK_INT(chunk, WSX__CHUNK_CACHE); /* 300 returned, the rest went back to malloc */
    CHECK_INT(slice, 1000);
    /* A chunk taken from the cache comes back emptied. */
    wsx__qnode *c = wsx__chunk_get(loop, 100);
    CHECK_INT(c->cap, WSX__SMALL_CHUNK);
    CHECK(c->len == 0 && c->off == 0 && c->ref == NULL);
    wsx__qnode_put(loop, c);

    wsx__qcache_decay(loop);
    wsx__qcache_counts(loop, &small, &chunk, &slice);
    CHECK_INT(small, 500);
    CHECK_INT(chunk, WSX__CHUNK_CACHE / 2);
    CHECK_INT(slice, 500);
    for (int i = 0; i < 20; i++)
        wsx__qcache_decay(loop);
    wsx__qcache_counts(loop, &small, &chunk, &slice);
    CHECK_INT(small, WSX__CACHE_IDLE);
    CHECK_INT(chunk, WSX__CACHE_IDLE);
    CHECK_INT(slice, WSX__CACHE_IDLE);

    for (int i = 0; i < 1000; i++)
        q[i] = wsx__chunk_get(loop, 34);
    for (int i = 0; i < 1000; i++)
        wsx__qnode_put(loop, q[i]);
    CHECK(wsx__qcache_excess(loop));
    CHECK(wsx__qcache_trim(loop));
    wsx__qcache_counts(loop, &small, &chunk, &slice);
    CHECK_INT(small, WSX__CACHE_IDLE);
    CHECK(!wsx__qcache_excess(loop));
    CHECK(!wsx__qcache_trim(loop)); /* nothing more to give back */

    /* A running loop gives the caches back after WSX__IDLE_TRIM_MS of quiet, long before its
     * next timer. */
    for (int i = 0; i < 1000; i++)
        q[i] = wsx__chunk_get(loop, 34);
    for (int i = 0; i < 1000; i++)
        wsx__qnode_put(loop, q[i]);
    idle_small = 0;
    uint64_t iters = wsx__loop_stats_get(loop)->iterations;
    CHECK_INT(wsx_timer_start(loop, 60000, 0, idle_never, NULL, &idle_far), 0);
    pthread_t th;
    pthread_create(&th, NULL, idle_poster, loop);
    CHECK_INT(wsx_loop_run(loop), 0);
    pthread_join(th, NULL);
    CHECK_INT(idle_small, WSX__CACHE_IDLE);
    CHECK(wsx__loop_stats_get(loop)->iterations - iters <= 4); /* no busy waiting */
    wsx_loop_free(loop);
}

int main(void)
{
    RUN_T(run_empty_returns);
    RUN_T(timers_fire_in_order);
    RUN_T(repeating_timer_stops_itself);
    RUN_T(timer_stops_other_due_in_same_tick);
    RUN_T(zero_delay_from_callback_runs_next_iteration);
    RUN_T(hundred_thousand_timers);
    RUN_T(pending_timers_freed_with_loop);
    RUN_T(defer_runs_at_end_of_iteration);
    RUN_T(post_wakes_blocked_loop);
    RUN_T(posts_from_many_threads_keep_per_thread_order);
    RUN_T(post_before_run_keeps_loop_alive_once);
    RUN_T(owned_posts_freed_with_loop_from_many_threads);
    RUN_T(owned_post_refused_calls_destructor);
    RUN_T(signal_delivered_on_loop);
    RUN_T(sigpipe_ignored);
    RUN_T(stop_and_run_again);
    RUN_T(write_caches_follow_the_load);
    return test_summary("loop");
}
