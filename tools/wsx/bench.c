/*
 * `wsx bench URL`: a WebSocket load generator that verifies every byte it gets back. This
 * file is the command: the connections, the worker threads and the phases of a run; bench.h
 * lists the other parts.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

const char *const bench_kind_names[E_KINDS] = {
#define KIND_NAME(name, str) str,
    ERROR_KINDS(KIND_NAME)
#undef KIND_NAME
};

static void report(worker *w, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Counts an error of `kind`; the first few are printed at once, the very first is kept for
 * the summary. */
static void report(worker *w, int kind, const char *fmt, ...)
{
    bench *b = w->b;
    bump(&w->st.err[kind], 1);
    unsigned n = atomic_fetch_add(&b->printed, 1);
    if (n >= MAX_PRINTED) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n == 0)
        snprintf(b->first_error, sizeof b->first_error, "%s: %s", bench_kind_names[kind], msg);
    fprintf(stderr, "%swsx bench: error: %s: %s%s\n", b->tty ? "\r\033[K" : "",
            bench_kind_names[kind], msg,
            n + 1 == MAX_PRINTED ? " (further errors are only counted)" : "");
}

/* ---- connections ---- */

static int phase_of(bench *b)
{
    return atomic_load_explicit(&b->phase, memory_order_relaxed);
}

/* Ends a connection after an error on it. */
static void drop(bconn *bc)
{
    if (bc->dropped) return;
    bc->dropped = true;
    if (bc->cl) wsx_client_close(bc->cl, WSX_CLOSE_POLICY, "wsx bench: verification failed");
}

/* The connection opened or failed: the connect phase is over when every one has. */
static void settle(worker *w, bconn *bc);
static void start_conn(worker *w, bconn *bc);

static void start_more(worker *w)
{
    while (!w->stopping && w->connecting < w->max_connecting && w->next < w->n)
        start_conn(w, &w->conns[w->next++]);
}

static void conn_failed(worker *w, bconn *bc, int kind, const char *why)
{
    atomic_fetch_add(&w->b->failed, 1);
    report(w, kind, "connection %u: %s", bc->id, why);
    settle(w, bc);
}

static void publish(worker *w0);

static void start_publisher(void *arg)
{
    worker *w0 = arg;
    bench *b = w0->b;
    if (w0->stopping) return;
    if (!atomic_load(&b->subs_open)) {
        conn_failed(w0, b->pub, E_CONNECT, "no subscriber is connected: publisher not started");
        return;
    }
    start_conn(w0, b->pub);
}

static void settle(worker *w, bconn *bc)
{
    bench *b = w->b;
    if (bc->settled) return;
    bc->settled = true;
    size_t n = atomic_fetch_add(&b->settled, 1) + 1;
    if (b->mode == M_FANOUT && bc->role == R_SUB && n == b->conns) {
        /* Every subscriber is in: the publisher (on worker 0) may start. */
        if (w->idx == 0)
            start_publisher(w);
        else
            wsx_loop_post(b->workers[0].loop, start_publisher, &b->workers[0]);
    }
}

static void send_next(worker *w, bconn *bc, uint64_t now)
{
    bc->ring[bc->sent % w->b->k] = now;
    int rc = bench_send_msg(w, bc->c, bc->id, bc->sent);
    if (rc < 0 && rc != WSX_EBACKPRESSURE) {
        report(w, E_SEND, "connection %u: send failed: %s", bc->id, wsx_strerror(rc));
        drop(bc);
        return;
    }
    bc->sent++;
}

/* The connection can carry the load: open, and in the sio modes through the Socket.IO
 * handshake. It counts as made, and the connect phase may end. */
static void mark_ready(worker *w, bconn *bc)
{
    bench *b = w->b;
    bc->ready = true;
    atomic_fetch_add(&b->made, 1);
    if (wsx_conn_deflate(bc->c)) atomic_fetch_add(&b->deflated, 1);
    if (bc->role == R_SUB) atomic_fetch_add(&b->subs_open, 1);
    settle(w, bc);
}

/* The first messages of a ready connection. */
static void start_load(worker *w, bconn *bc)
{
    bench *b = w->b;
    bc->last_ns = now_ns();
    if (bc->role == R_ECHO)
        for (uint32_t i = 0; i < b->k && !bc->dropped; i++)
            send_next(w, bc, bc->last_ns);
    if (bc->role == R_PUB) {
        b->nsubs = (uint32_t)atomic_load(&b->subs_open);
        atomic_store(&b->last_bc_ns, bc->last_ns);
        publish(w);
    }
}

static void on_open(wsx_conn *c, void *user)
{
    bconn *bc = user;
    worker *w = bc->w;
    bench *b = w->b;
    bc->c = c;
    bc->opened = true;
    bc->last_ns = now_ns();
    w->connecting--;
    atomic_fetch_add(&b->open, 1);
    if (!b->sio) mark_ready(w, bc); /* sio: once the server's CONNECT (or the join ack) came */
    start_more(w);
    if (w->stopping) {
        wsx_client_close(bc->cl, WSX_CLOSE_NORMAL, NULL);
        return;
    }
    if (!b->sio) start_load(w, bc);
}

/* Counts one message that came back (echo) or arrived (fan-out) on bc, lat ns after it left. */
static void count_message(worker *w, bconn *bc, size_t len, uint64_t lat, uint64_t now, int phase)
{
    bc->recvd++;
    bc->last_ns = now;
    bump(&w->st.msgs, 1);
    bump(&w->st.bytes, len);
    bump(&w->st.lat_sum, lat);
    if (phase == P_MEASURE) {
        bench_hist_add(&w->lat, lat);
        bump(&w->st.win_msgs, 1);
        bump(&w->st.win_bytes, len);
        bc->win_done++;
    }
}

static void on_echo(worker *w, bconn *bc, const wsx_msg *m, uint64_t now, int phase)
{
    bench *b = w->b;
    char why[200];
    if (bc->recvd == bc->sent) {
        report(w, E_UNEXPECTED, "connection %u: a message came back with none in flight", bc->id);
        drop(bc);
        return;
    }
    int kind = b->sio ? bench_sio_verify(w, m, bc->id, bc->recvd, why, sizeof why)
                      : bench_verify(b, m, bc->id, bc->recvd, why, sizeof why);
    if (kind >= 0) {
        report(w, kind, "connection %u: %s", bc->id, why);
        drop(bc);
        return;
    }
    uint64_t lat = now - bc->ring[bc->recvd % b->k];
    count_message(w, bc, m->len, lat, now, phase);
    if (phase != P_DONE && !w->stopping) send_next(w, bc, now);
}

static void kick_publisher(void *arg)
{
    publish(arg);
}

static void on_delivery(worker *w, bconn *bc, const wsx_msg *m, uint64_t now, int phase)
{
    bench *b = w->b;
    char why[200];
    int kind = b->sio ? bench_sio_verify(w, m, b->pub->id, bc->recvd, why, sizeof why)
                      : bench_verify(b, m, b->pub->id, bc->recvd, why, sizeof why);
    if (kind >= 0) {
        report(w, kind, "subscriber %u: %s", bc->id, why);
        drop(bc);
        atomic_store(&b->abort_run, 1); /* the broadcasts cannot complete any more */
        return;
    }
    size_t slot = bc->recvd % b->k;
    uint64_t lat = now - atomic_load_explicit(&b->bc_ts[slot], memory_order_relaxed);
    count_message(w, bc, m->len, lat, now, phase);
    if (atomic_fetch_sub(&b->bc_left[slot], 1) != 1) return;
    /* The last subscriber got it: the broadcast is complete and its slot free. */
    atomic_store_explicit(&b->last_bc_ns, now, memory_order_relaxed);
    if (phase == P_MEASURE) {
        bench_hist_add(&w->bclat, lat);
        bump(&w->st.win_bcasts, 1);
    }
    if (phase == P_DONE) return;
    if (w->idx == 0)
        publish(w);
    else
        wsx_loop_post(b->workers[0].loop, kick_publisher, &b->workers[0]);
}

/* Worker 0: keeps K broadcasts in flight. A slot is reused only once every subscriber got
 * the broadcast in it (its count fell to 0), whichever thread saw that last. */
static void publish(worker *w0)
{
    bench *b = w0->b;
    bconn *p = b->pub;
    if (!p->c || p->dropped || w0->stopping || phase_of(b) == P_DONE) return;
    while (b->pub_oldest < b->pub_seq && !atomic_load(&b->bc_left[b->pub_oldest % b->k]))
        b->pub_oldest++;
    uint64_t now = now_ns();
    while (b->pub_seq < b->pub_oldest + b->k) {
        size_t slot = b->pub_seq % b->k;
        atomic_store(&b->bc_left[slot], b->nsubs);
        atomic_store_explicit(&b->bc_ts[slot], now, memory_order_relaxed);
        int rc = bench_send_msg(w0, p->c, p->id, b->pub_seq);
        if (rc < 0 && rc != WSX_EBACKPRESSURE) {
            report(w0, E_SEND, "publisher: send failed: %s", wsx_strerror(rc));
            drop(p);
            atomic_store(&b->abort_run, 1);
            return;
        }
        b->pub_seq++;
        b->published++;
    }
}

/* sio modes: the Socket.IO handshake and Engine.IO pings. Returns true when m is an ack or an
 * event for the load's checks. */
static bool sio_message(worker *w, bconn *bc, const wsx_msg *m)
{
    char why[200];
    int kind = E_UNEXPECTED;
    switch (bench_sio_filter(w, bc, m, &kind, why, sizeof why)) {
    case SIO_DATA:
        return true;
    case SIO_NOW_READY:
        mark_ready(w, bc);
        if (!w->stopping && phase_of(w->b) != P_DONE) start_load(w, bc);
        return false;
    case SIO_FAIL:
        report(w, kind, "%s %u: %s", bc->role == R_PUB ? "publisher" : "connection", bc->id, why);
        drop(bc);
        if (bc->role == R_PUB || (bc->role == R_SUB && bc->ready))
            atomic_store(&w->b->abort_run, 1);
        return false;
    default:
        return false;
    }
}

static void on_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    bconn *bc = user;
    worker *w = bc->w;
    (void)c;
    if (bc->dropped) return;
    if (w->b->sio && !sio_message(w, bc, m)) return;
    uint64_t now = now_ns();
    int phase = phase_of(w->b);
    switch (bc->role) {
    case R_ECHO:
        on_echo(w, bc, m, now, phase);
        break;
    case R_SUB:
        on_delivery(w, bc, m, now, phase);
        break;
    default:
        report(w, E_UNEXPECTED, "connection %u: the server sent a message (%zu bytes)", bc->id,
               m->len);
        drop(bc);
        if (bc->role == R_PUB) atomic_store(&w->b->abort_run, 1);
        break;
    }
}

static void on_close(wsx_conn *c, int code, const char *reason, size_t len, void *user)
{
    bconn *bc = user;
    worker *w = bc->w;
    (void)c;
    bc->c = NULL;
    atomic_fetch_sub(&w->b->open, 1);
    if (!bc->ready && !bc->settled) { /* sio: closed before the end of its handshake */
        if (bc->cancelled)
            conn_failed(w, bc, E_CONNECT_TIMEOUT,
                        "Socket.IO handshake not done within --connect-timeout");
        else if (bc->dropped || w->stopping) {
            atomic_fetch_add(&w->b->failed, 1);
            settle(w, bc);
        } else {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "closed by the server during the Socket.IO handshake: %d%s%.*s", code,
                     len ? " " : "", (int)(len > 100 ? 100 : len), reason);
            conn_failed(w, bc, E_HANDSHAKE, msg);
        }
        return;
    }
    if (!w->stopping && !bc->dropped) {
        report(w, E_CLOSED, "connection %u closed by the server: %d%s%.*s", bc->id, code,
               len ? " " : "", (int)len, reason);
        if (bc->role == R_PUB || bc->role == R_SUB) atomic_store(&w->b->abort_run, 1);
    }
}

static void on_end(wsx_client *cl, int err, const char *why, void *user)
{
    bconn *bc = user;
    worker *w = bc->w;
    (void)cl;
    bc->cl = NULL;
    if (bc->opened) return;
    w->connecting--;
    if (bc->cancelled) {
        conn_failed(w, bc, E_CONNECT_TIMEOUT, "not open within --connect-timeout");
    } else if (w->stopping) {
        atomic_fetch_add(&w->b->failed, 1);
        settle(w, bc);
    } else {
        int kind = err == WSX_EHANDSHAKE  ? E_HANDSHAKE
                   : err == WSX_ETLS      ? E_TLS
                   : err == WSX_ETIMEDOUT ? E_CONNECT_TIMEOUT
                                          : E_CONNECT;
        conn_failed(w, bc, kind, why ? why : wsx_strerror(err));
    }
    start_more(w);
}

static void start_conn(worker *w, bconn *bc)
{
    bench *b = w->b;
    wsx_client_opts o = b->copts;
    o.url = b->sio              ? b->url_sio
            : bc->role == R_SUB ? b->url_sub
            : bc->role == R_PUB ? b->url_pub
                                : b->url;
    o.user = bc;
    int rc = wsx_client_connect(w->loop, &o, &bc->cl, NULL);
    if (rc < 0) {
        bc->cl = NULL;
        conn_failed(w, bc, E_CONNECT, wsx_strerror(rc));
        return;
    }
    w->connecting++;
}

/* ---- worker threads ---- */

static void check_stalls(worker *w, uint64_t now)
{
    bench *b = w->b;
    if (b->mode == M_ECHO) {
        for (size_t i = 0; i < w->n; i++) {
            bconn *bc = &w->conns[i];
            if (!bc->c || bc->dropped || bc->sent == bc->recvd || now - bc->last_ns < b->stall_ns)
                continue;
            report(w, E_STALL,
                   "connection %u: nothing came back for %.1f s (%llu in flight, next expected "
                   "#%llu)",
                   bc->id, (double)(now - bc->last_ns) / 1e9,
                   (unsigned long long)(bc->sent - bc->recvd), (unsigned long long)bc->recvd);
            drop(bc);
        }
    }
    if (b->mode == M_FANOUT && w->idx == 0 && b->pub->c && !b->pub->dropped) {
        while (b->pub_oldest < b->pub_seq && !atomic_load(&b->bc_left[b->pub_oldest % b->k]))
            b->pub_oldest++;
        uint64_t last = atomic_load_explicit(&b->last_bc_ns, memory_order_relaxed);
        if (b->pub_oldest < b->pub_seq && now > last && now - last >= b->stall_ns) {
            uint32_t missing = atomic_load(&b->bc_left[b->pub_oldest % b->k]);
            report(w, E_STALL, "broadcast #%llu has not reached %u of %u subscribers after %.1f s",
                   (unsigned long long)b->pub_oldest, missing, b->nsubs,
                   (double)(now - last) / 1e9);
            drop(b->pub);
            atomic_store(&b->abort_run, 1);
        }
    }
}

static void on_tick(wsx_timer *t, void *arg)
{
    worker *w = arg;
    (void)t;
    int phase = phase_of(w->b);
    if (phase == P_WARMUP || phase == P_MEASURE) check_stalls(w, now_ns());
}

/* Posted by the main thread when the connect phase runs out of time. */
static void cancel_pending(void *arg)
{
    worker *w = arg;
    for (size_t i = 0; i < w->n; i++) {
        bconn *bc = &w->conns[i];
        if (bc->cl && !bc->ready) { /* sio: open, but not through the handshake */
            bc->cancelled = true;
            wsx_client_close(bc->cl, WSX_CLOSE_NORMAL, NULL);
        }
    }
    while (w->next < w->n) {
        bconn *bc = &w->conns[w->next++];
        conn_failed(w, bc, E_CONNECT_TIMEOUT, "not started within --connect-timeout");
    }
    bench *b = w->b;
    if (w->idx == 0 && b->mode == M_FANOUT && b->pub->cl && !b->pub->ready) {
        b->pub->cancelled = true;
        wsx_client_close(b->pub->cl, WSX_CLOSE_NORMAL, NULL);
    }
}

/* Posted by the main thread at the end: checks that every connection made progress during
 * the measurement, then closes everything; the loop returns once every client ended. */
static void stop_worker(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    if (b->mode == M_ECHO && b->window_full) {
        for (size_t i = 0; i < w->n; i++) {
            bconn *bc = &w->conns[i];
            if (bc->c && !bc->dropped && !bc->win_done) {
                report(w, E_STALL, "connection %u completed no message during the measurement",
                       bc->id);
                bc->dropped = true;
            }
        }
    }
    w->stopping = true;
    wsx_timer_stop(w->ticker);
    w->ticker = NULL;
    for (size_t i = 0; i < w->n; i++)
        if (w->conns[i].cl) wsx_client_close(w->conns[i].cl, WSX_CLOSE_NORMAL, NULL);
    if (w->idx == 0 && b->pub && b->pub->cl) wsx_client_close(b->pub->cl, WSX_CLOSE_NORMAL, NULL);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    /* SIGINT/SIGTERM go to the main thread, which ends the measurement. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (wsx_timer_start(w->loop, TICK_MS, TICK_MS, on_tick, w, &w->ticker) < 0) {
        fprintf(stderr, "wsx bench: cannot start a timer\n");
        exit(1);
    }
    start_more(w);
    int rc = wsx_loop_run(w->loop);
    if (rc < 0) {
        fprintf(stderr, "wsx bench: event loop failed: %s\n", wsx_strerror(rc));
        exit(1);
    }
    return NULL;
}

/* ---- the main thread: phases ---- */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void on_alarm(int sig)
{
    static const char msg[] = "wsx bench: hard time limit reached\n";
    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(3);
}

/* The measurement's clocks: this process's CPU, the server's CPU ticks, the machine's busy
 * ticks, and when it was taken. */
typedef struct sample {
    uint64_t ns, cpu, ticks, busy;
    bool ticks_ok, busy_ok;
} sample;

static void take_sample(const bench *b, sample *s, uint64_t now, bool first)
{
    s->ns = now;
    s->cpu = cpu_ns();
    if (first) {
        s->ticks_ok = b->server_pid && bench_read_ticks(b->server_pid, &s->ticks);
        s->busy_ok = b->server_pid && bench_read_busy_ticks(&s->busy);
    } else {
        if (s->ticks_ok) s->ticks_ok = bench_read_ticks(b->server_pid, &s->ticks);
        if (s->busy_ok) s->busy_ok = bench_read_busy_ticks(&s->busy);
    }
}

/* The connect phase. Returns true when it is over for good (r->ended says why, or every
 * connection settled and *connected is set). */
static bool connect_phase(bench *b, result *r, uint64_t now, uint64_t phase_end, bool *cancelled)
{
    if (atomic_load(&b->settled) >= b->total) return true;
    if (r->interrupted) {
        r->ended = "interrupted";
        return true;
    }
    if (!*cancelled && now >= phase_end) {
        *cancelled = true;
        for (uint32_t i = 0; i < b->threads; i++)
            wsx_loop_post(b->workers[i].loop, cancel_pending, &b->workers[i]);
    }
    return false;
}

/* Why the warm-up or the measurement must end now, or NULL. */
static const char *why_stop(bench *b, const result *r)
{
    if (atomic_load(&b->abort_run)) return "the run cannot go on (see the errors)";
    if (b->mode != M_IDLE && !atomic_load(&b->open)) return "every connection is closed";
    if (r->interrupted) return "interrupted";
    return NULL;
}

/* The figures of a finished run, from the samples at the start (m0) and end (m1) of the
 * measurement. */
static void finish(bench *b, result *r, const sample *m0, const sample *m1, uint64_t start,
                   uint64_t connected)
{
    long tck = sysconf(_SC_CLK_TCK);
    r->connect_s = (double)((connected ? connected : now_ns()) - start) / 1e9;
    bool measured = m1->ns > m0->ns;
    r->secs = measured ? (double)(m1->ns - m0->ns) / 1e9 : 0;
    r->client_cpu_s = measured ? (double)(m1->cpu - m0->cpu) / 1e9 : 0;
    r->other_cpu_s = -1;
    if (m1->ticks_ok && measured && tck > 0) {
        r->server_cpu_s = (double)(m1->ticks - m0->ticks) / (double)tck;
        /* What else ran on the machine meanwhile: other processes, and kernel work that was
         * charged to neither process. A large figure means the run was contended. */
        if (m1->busy_ok && m1->busy >= m0->busy) {
            double other =
                (double)(m1->busy - m0->busy) / (double)tck - r->server_cpu_s - r->client_cpu_s;
            r->other_cpu_s = other > 0 ? other : 0;
        }
    }
    r->made = atomic_load(&b->made);
    r->deflated = atomic_load(&b->deflated);
    r->failed = atomic_load(&b->failed);
    bench_sum_stats(b, &r->t);
    for (uint32_t i = 0; i < b->threads; i++) {
        bench_hist_merge(&r->lat, &b->workers[i].lat);
        bench_hist_merge(&r->bclat, &b->workers[i].bclat);
    }
}

static void start_workers(bench *b)
{
    for (uint32_t i = 0; i < b->threads; i++)
        if (pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i])) {
            fprintf(stderr, "wsx bench: cannot start a thread\n");
            exit(1);
        }
}

static void stop_workers(bench *b)
{
    for (uint32_t i = 0; i < b->threads; i++)
        wsx_loop_post(b->workers[i].loop, stop_worker, &b->workers[i]);
    for (uint32_t i = 0; i < b->threads; i++)
        pthread_join(b->workers[i].thread, NULL);
}

/* Runs the benchmark on prepared state; fills r. */
static void run(bench *b, result *r)
{
    memset(r, 0, sizeof *r);
    r->server_cpu_s = r->other_cpu_s = -1;
    r->rss_before = r->rss_after = -1;
    sample m0 = {0}, m1 = {0};
    if (b->server_pid) r->rss_before = bench_read_rss_kb(b->server_pid);
    start_workers(b);
    bool show = !b->json && (b->tty || b->verbose), shown = false;
    uint64_t start = now_ns(), phase_end = start + (uint64_t)(b->connect_timeout * 1e9);
    uint64_t connected = 0, last_print = start;
    int phase = P_CONNECT;
    bool cancelled = false, by_count = false;
    totals prev, cur;
    bench_sum_stats(b, &prev);
    for (;;) {
        struct timespec ts = {0, MAIN_SLEEP_NS};
        nanosleep(&ts, NULL);
        uint64_t now = now_ns();
        if (interrupted) r->interrupted = true;
        if (phase == P_CONNECT && connect_phase(b, r, now, phase_end, &cancelled)) {
            if (r->ended) break;
            connected = now;
            if (!atomic_load(&b->made)) {
                r->ended = "no connection opened";
                break;
            }
            atomic_store(&b->phase, phase = P_WARMUP);
            phase_end = now + (uint64_t)(b->warmup * 1e9);
        }
        if (phase == P_WARMUP && now >= phase_end) {
            take_sample(b, &m0, now, true);
            if (b->server_pid && b->mode == M_IDLE) r->rss_after = bench_read_rss_kb(b->server_pid);
            atomic_store(&b->phase, phase = P_MEASURE);
            phase_end = now + (uint64_t)(b->duration * 1e9);
            bench_sum_stats(b, &prev);
            last_print = now;
        }
        if (phase == P_WARMUP || phase == P_MEASURE) {
            bool done = phase == P_MEASURE && now >= phase_end;
            if (phase == P_MEASURE && b->max_msgs) {
                bench_sum_stats(b, &cur);
                if (cur.win_msgs >= b->max_msgs) done = by_count = true;
            }
            const char *why = why_stop(b, r);
            if (done || why) {
                if (phase == P_MEASURE) {
                    m1 = m0;
                    take_sample(b, &m1, now, false);
                    /* Under load: what the open connections hold, buffers included. */
                    if (b->server_pid && b->mode != M_IDLE)
                        r->rss_after = bench_read_rss_kb(b->server_pid);
                    r->window_full = !why;
                }
                if (why) r->ended = why;
                break;
            }
        }
        if (show && now - last_print >= 1000000000u) {
            bench_sum_stats(b, &cur);
            bench_progress(b, phase, (double)(now - start) / 1e9, &cur, &prev,
                           (double)(now - last_print) / 1e9);
            shown = true;
            prev = cur;
            last_print = now;
        }
    }
    if (shown && b->tty) fputs("\r\033[K", stderr);
    atomic_store(&b->phase, P_DONE);
    /* Every connection must have completed something in a window that ran its full time
     * (one ended by -n may be too short for that). */
    b->window_full = r->window_full && !by_count;
    stop_workers(b);
    finish(b, r, &m0, &m1, start, connected);
}

/* ---- the command ---- */

static void setup_client_opts(bench *b)
{
    wsx_client_opts *o = &b->copts;
    *o = wsx_client_defaults();
    o->connect_timeout_ms = (uint32_t)(b->connect_timeout * 1000);
    o->handshake_timeout_ms = o->connect_timeout_ms;
    o->close_timeout_ms = 2000;
    /* K messages may sit in the send queue at once: never a reason to close. */
    size_t queued = (size_t)b->k * (b->size + WSX_MAX_HEADER);
    if (queued + (1u << 20) > (64u << 20)) o->send_hard_limit = queued + (1u << 20);
    o->tls_cafile = b->cafile;
    o->tls_insecure = b->insecure;
    if (b->deflate) {
        o->deflate = wsx_pmd_defaults();
        o->deflate.enabled = true;
    }
    o->on_open = on_open;
    o->on_message = on_message;
    o->on_close = on_close;
    o->on_end = on_end;
    if (b->verbose) {
        g_log.quiet = true;
        o->on_log = tool_log_cb;
        o->log_level = WSX_LOG_WARN;
    }
}

/* Splits the connections among the workers and makes each worker's loop. Returns 0 or 1. */
static int setup_workers(bench *b, uint64_t *rings)
{
    uint32_t per = (b->max_connecting + b->threads - 1) / b->threads;
    for (size_t i = 0; i < b->total; i++) {
        bconn *bc = &b->all[i];
        bc->id = (uint32_t)i;
        bc->role = b->mode == M_ECHO ? R_ECHO : b->mode == M_IDLE ? R_IDLE : R_SUB;
        if (rings) bc->ring = rings + i * b->k;
    }
    for (uint32_t t = 0; t < b->threads; t++) {
        worker *w = &b->workers[t];
        size_t lo = b->conns * t / b->threads, hi = b->conns * (t + 1) / b->threads;
        w->b = b;
        w->idx = t;
        w->conns = b->all + lo;
        w->n = hi - lo;
        w->max_connecting = per;
        for (size_t i = 0; i < w->n; i++)
            w->conns[i].w = w;
        w->sendbuf = malloc(b->size + b->spread);
        if (b->sio) w->sio_buf = malloc(b->size + SIO_OVERHEAD);
        int rc = w->sendbuf && (w->sio_buf || !b->sio) ? wsx_loop_new(&w->loop) : WSX_ENOMEM;
        if (rc < 0) {
            fprintf(stderr, "wsx bench: %s\n", wsx_strerror(rc));
            return 1;
        }
        memcpy(w->sendbuf, b->pattern, b->size + b->spread);
    }
    if (b->mode == M_FANOUT) {
        b->pub = &b->all[b->conns];
        b->pub->role = R_PUB;
        b->pub->w = &b->workers[0];
    }
    return 0;
}

/* The payload, the workers and their connections, the client options. Returns 0 or 1. */
static int setup(bench *b, uint64_t **rings)
{
    if (b->sio) {
        /* The text of an event is a stretch of words: JSON needs no escape in it. */
        b->spread = PAT_SPREAD;
        b->pattern = bench_make_words(b->size + b->spread);
    } else if (b->payload == PL_JSON) {
        b->hdr = JSON_HDR;
        b->tail = sizeof JSON_TAIL - 1;
        b->spread = JSON_SPREAD;
        b->pattern = bench_make_words(b->size + b->spread);
    } else {
        b->hdr = b->size >= HDR_LEN ? HDR_LEN : 0;
        b->spread = PAT_SPREAD;
        b->pattern = bench_make_pattern(b->size + b->spread, b->type == WSX_BINARY);
    }
    b->workers = calloc(b->threads, sizeof *b->workers);
    b->all = calloc(b->total, sizeof *b->all);
    if (b->mode == M_ECHO) *rings = calloc(b->conns * b->k, sizeof **rings);
    if (b->mode == M_FANOUT) {
        b->bc_left = calloc(b->k, sizeof *b->bc_left);
        b->bc_ts = calloc(b->k, sizeof *b->bc_ts);
    }
    if (!b->command || !b->pattern || !b->workers || !b->all || (b->mode == M_ECHO && !*rings) ||
        (b->mode == M_FANOUT && (!b->bc_left || !b->bc_ts))) {
        fprintf(stderr, "wsx bench: out of memory\n");
        return 1;
    }
    setup_client_opts(b);
    return setup_workers(b, *rings);
}

int cmd_bench(int argc, char **argv)
{
    static bench st; /* large (histograms are per worker, but the struct is shared) */
    bench *b = &st;
    int rc = bench_options(b, argc, argv);
    if (rc >= 0) return rc;
    uint64_t *rings = NULL;
    if (setup(b, &rings)) return 1;

    struct sigaction sa = {.sa_handler = on_interrupt, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(b->connect_timeout + b->warmup + b->duration) + 15);

    result *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "wsx bench: out of memory\n");
        return 1;
    }
    run(b, r);
    alarm(0);

    bool ok = !r->t.errors &&
              (b->mode == M_IDLE ? r->window_full && r->made == b->total : r->t.win_msgs > 0);
    if (b->json)
        bench_print_json(b, r, argv, argc, ok);
    else
        bench_print_summary(b, r);
    fflush(stdout);
    if (!ok && !r->t.errors)
        fprintf(stderr, "wsx bench: %s\n",
                r->ended            ? r->ended
                : b->mode == M_IDLE ? "the connections were not all held"
                                    : "no message completed");

    for (uint32_t t = 0; t < b->threads; t++) {
        wsx_loop_free(b->workers[t].loop);
        free(b->workers[t].sendbuf);
        free(b->workers[t].sio_buf);
    }
    free(r);
    free(rings);
    free(b->bc_left);
    free(b->bc_ts);
    free(b->all);
    free(b->workers);
    free(b->pattern);
    free(b->command);
    return ok ? 0 : 1;
}
