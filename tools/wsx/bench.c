/* `wsx bench URL`: a WebSocket load generator that verifies every byte it gets back. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

static const char help[] =
    "usage: wsx bench [options] URL\n"
    "\n"
    "Opens connections to URL (ws://host[:port]/path) with a real handshake and keeps masked\n"
    "messages in flight on each; every byte that comes back is checked. Reports messages/s,\n"
    "MB/s, latency percentiles, connections made and failed, errors by kind and, given the\n"
    "server's pid, its CPU time per message. Only loopback targets unless --allow-remote.\n"
    "\n"
    "  -m, --mode MODE         echo (default): each connection keeps K messages in flight and\n"
    "                          expects them back in order;\n"
    "                          fanout: C subscribers connect to /sub, then one publisher to\n"
    "                          /pub keeps K broadcasts in flight (`wsx echo` serves both);\n"
    "                          idle: C connections are opened and held, nothing is sent\n"
    "      --idle N            the same as --mode idle -c N\n"
    "  -c, --connections N     connections (fanout: subscribers) (default 50)\n"
    "  -s, --size BYTES        message size, 0..16M (default 32)\n"
    "  -k, --in-flight K       messages in flight per connection, fanout: broadcasts (default 1)\n"
    "  -b, --binary            binary messages (default: text, printable ASCII)\n"
    "  -d, --duration S        measured seconds (idle: seconds held) (default 5)\n"
    "  -w, --warmup S          seconds of load before the measurement starts (default 1)\n"
    "  -n, --messages N        end the measurement after N messages (default: time only)\n"
    "  -t, --threads N         event loops, one per thread, connections split among them\n"
    "                          (default 1)\n"
    "  -p, --server-pid PID    the server's process: its CPU per message from /proc/PID/stat;\n"
    "                          in idle mode its RSS growth per connection (VmRSS)\n"
    "      --connect-timeout S time for every connection to open, handshake included\n"
    "                          (default 10); late ones fail with connect_timeout\n"
    "      --max-connecting N  handshakes in progress at once (default 256)\n"
    "      --stall S           a connection with messages in flight that gets nothing back\n"
    "                          for S seconds is a stall error (default 3)\n"
    "      --allow-remote      allow a target that is not a loopback address\n"
    "      --json              print one JSON object on stdout instead of the summary; no\n"
    "                          progress line\n"
    "  -v, --verbose           interval lines on stderr even when it is not a terminal\n"
    "  -h, --help              this text\n"
    "\n"
    "Payload: with S >= 16 the first 16 bytes carry the connection id and the message's\n"
    "sequence number (hex), so loss, duplication and reordering are caught; the rest is a\n"
    "pattern that depends on the sequence number, and every byte is compared.\n"
    "\n"
    "A progress line on stderr every second while it runs (when stderr is a terminal, or\n"
    "with -v), then a summary on stdout. Exit status: 0 when messages completed (idle: every\n"
    "connection was held) and no error of any kind happened; 1 otherwise; 2 on a usage error\n"
    "or a refused target; 3 on the hard time limit (connect timeout + warm-up + duration + 15 s).\n";

enum { M_ECHO, M_FANOUT, M_IDLE };
enum { P_CONNECT, P_WARMUP, P_MEASURE, P_DONE };
enum { R_ECHO, R_SUB, R_PUB, R_IDLE };

/* Errors by kind: the names are those of the summary and the JSON output. */
#define ERROR_KINDS(X)                                                                             \
    X(CONNECT, "connect")                                                                          \
    X(CONNECT_TIMEOUT, "connect_timeout")                                                          \
    X(HANDSHAKE, "handshake")                                                                      \
    X(CLOSED, "closed")                                                                            \
    X(SEND, "send")                                                                                \
    X(TYPE, "type")                                                                                \
    X(LENGTH, "length")                                                                            \
    X(ORDER, "order")                                                                              \
    X(CORRUPT, "corrupt")                                                                          \
    X(UNEXPECTED, "unexpected")                                                                    \
    X(STALL, "stall")

enum {
#define KIND_ENUM(name, str) E_##name,
    ERROR_KINDS(KIND_ENUM)
#undef KIND_ENUM
        E_KINDS
};

static const char *const kind_names[E_KINDS] = {
#define KIND_NAME(name, str) str,
    ERROR_KINDS(KIND_NAME)
#undef KIND_NAME
};

#define HDR_LEN        16  /* connection id (6 hex digits) + sequence number (10 hex digits) */
#define PAT_SPREAD     251 /* message n starts at pattern offset n % 251: neighbours differ */
#define MAX_PRINTED    10  /* error lines printed as they happen; the rest are counted */
#define MAX_CONNS      1000000u
#define MAX_IN_FLIGHT  4096u
#define MAX_THREADS    64u
#define MAX_SIZE       (16u << 20)
#define TICK_MS        100
#define MAIN_SLEEP_NS  10000000L

/* ---- latency histogram: log-linear buckets (HDR style), 64 per power of two ---- */

#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_N        (2 * HIST_SUB + (63 - HIST_SUB_BITS) * HIST_SUB)

typedef struct hist {
    uint64_t n, sum, min, max;
    uint64_t b[HIST_N];
} hist;

/* Values below 128 get a bucket each; above, a bucket spans 1/64 of its power of two, so a
 * reported percentile is within 1.6% of the true one. */
static size_t hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB) return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS;
    return 2 * HIST_SUB + (size_t)(shift - 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* The middle of bucket i. */
static uint64_t hist_value(size_t i)
{
    if (i < 2 * HIST_SUB) return i;
    size_t j = i - 2 * HIST_SUB;
    unsigned shift = (unsigned)(j / HIST_SUB) + 1;
    uint64_t top = j % HIST_SUB + HIST_SUB;
    return (top << shift) + ((1ull << shift) >> 1);
}

static void hist_add(hist *h, uint64_t v)
{
    if (!h->n || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->n++;
    h->sum += v;
    h->b[hist_index(v)]++;
}

static void hist_merge(hist *into, const hist *h)
{
    if (!h->n) return;
    if (!into->n || h->min < into->min) into->min = h->min;
    if (h->max > into->max) into->max = h->max;
    into->n += h->n;
    into->sum += h->sum;
    for (size_t i = 0; i < HIST_N; i++)
        into->b[i] += h->b[i];
}

/* The value at quantile q (0..1]: the smallest bucket holding the ceil(q * n)-th value. */
static uint64_t hist_pct(const hist *h, double q)
{
    if (!h->n) return 0;
    double want = q * (double)h->n;
    uint64_t target = (uint64_t)want;
    if ((double)target < want) target++;
    if (target < 1) target = 1;
    uint64_t acc = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        acc += h->b[i];
        if (acc >= target) {
            uint64_t v = hist_value(i);
            if (v < h->min) v = h->min;
            if (v > h->max) v = h->max;
            return v;
        }
    }
    return h->max;
}

/* ---- state ---- */

/* Counters of one worker. Each has one writer (the worker's thread) and is read by the main
 * thread for the progress line, so a relaxed load and store replace a locked increment. */
typedef struct wstats {
    _Atomic uint64_t msgs, bytes, lat_sum; /* every phase: the progress line */
    _Atomic uint64_t win_msgs, win_bytes, win_bcasts;
    _Atomic uint64_t err[E_KINDS];
} wstats;

static void bump(_Atomic uint64_t *a, uint64_t n)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

struct worker;

typedef struct bconn {
    struct worker *w;
    wsx_client *cl;
    wsx_conn *c;          /* while open */
    uint64_t *ring;       /* send times of the messages in flight, at seq % K */
    uint64_t sent, recvd; /* sequence numbers: next to send, next expected */
    uint64_t last_ns;     /* last progress: open, or a message that came back */
    uint64_t win_done;    /* messages completed during the measurement */
    uint32_t id;
    uint8_t role;
    bool opened;
    bool dropped;   /* closed by us after an error */
    bool cancelled; /* connect timeout */
} bconn;

typedef struct bench bench;

typedef struct worker {
    bench *b;
    unsigned idx;
    pthread_t thread;
    wsx_loop *loop;
    bconn *conns; /* this worker's slice (the fanout publisher is apart) */
    size_t n, next, connecting, max_connecting;
    wsx_timer *ticker;
    bool stopping;
    uint8_t *sendbuf; /* a copy of the pattern; the header is written in place per send */
    hist lat, bclat;
    wstats st;
} worker;

struct bench {
    /* options */
    int mode;
    size_t conns; /* echo/idle connections, or fanout subscribers */
    size_t size;
    uint32_t k;
    int type;
    uint32_t threads;
    double warmup, duration, connect_timeout, stall;
    uint64_t max_msgs;
    long server_pid;
    uint32_t max_connecting;
    bool json, verbose, allow_remote;
    const char *url;
    char url_sub[300], url_pub[300];
    wsx_url u;
    char *command;

    /* shared, read-only during the run */
    uint8_t *pattern; /* size + PAT_SPREAD bytes */
    wsx_client_opts copts;
    worker *workers;
    bconn *all; /* conns (+ the fanout publisher at the end) */
    size_t total;
    bconn *pub;
    uint64_t stall_ns;

    /* shared, updated by the workers */
    _Atomic int phase;
    _Atomic size_t settled, open, made, failed, subs_open;
    _Atomic int abort_run;
    _Atomic unsigned printed;
    char first_error[300];
    bool tty;

    /* fanout: broadcasts in flight, by seq % K */
    _Atomic uint32_t *bc_left;
    _Atomic uint64_t *bc_ts;
    _Atomic uint64_t last_bc_ns;
    uint64_t pub_seq, pub_oldest; /* worker 0 only */
    uint32_t nsubs;               /* subscribers the broadcasts go to */
    uint64_t published;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
    if (n == 0) snprintf(b->first_error, sizeof b->first_error, "%s: %s", kind_names[kind], msg);
    fprintf(stderr, "%swsx bench: error: %s: %s%s\n", b->tty ? "\r\033[K" : "", kind_names[kind],
            msg, n + 1 == MAX_PRINTED ? " (further errors are only counted)" : "");
}

/* ---- payload ---- */

static void put_hex(uint8_t *p, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = (uint8_t)hex[v & 15];
        v >>= 4;
    }
}

static bool get_hex(const uint8_t *p, int digits, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        int d = p[i] >= '0' && p[i] <= '9'   ? p[i] - '0'
                : p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10
                                             : -1;
        if (d < 0) return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

static void make_header(uint8_t *out, uint32_t id, uint64_t seq)
{
    put_hex(out, id, 6);
    put_hex(out + 6, seq, 10);
}

/* Text: printable ASCII (valid UTF-8); binary: every byte value. Deterministic (xorshift). */
static uint8_t *make_pattern(size_t len, bool binary)
{
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return NULL;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = binary ? (uint8_t)(x >> 24) : (uint8_t)(0x21 + (x >> 24) % 94);
    }
    return p;
}

/* Sends message `seq` of connection `id`: pattern bytes from seq % PAT_SPREAD, led by the
 * header. The header is written into the worker's copy of the pattern for the call and
 * undone after it (wsx_send copies), so no message is assembled byte by byte. */
static int send_msg(worker *w, wsx_conn *c, uint32_t id, uint64_t seq)
{
    bench *b = w->b;
    uint8_t *p = w->sendbuf + seq % PAT_SPREAD;
    if (b->size < HDR_LEN) return wsx_send(c, p, b->size, b->type);
    uint8_t save[HDR_LEN];
    memcpy(save, p, HDR_LEN);
    make_header(p, id, seq);
    int rc = wsx_send(c, p, b->size, b->type);
    memcpy(p, save, HDR_LEN);
    return rc;
}

static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Checks that m is message `seq` of connection `id`. Returns -1, or the error kind with a
 * description in why. */
static int verify(const bench *b, const wsx_msg *m, uint32_t id, uint64_t seq, char *why,
                  size_t cap)
{
    unsigned long long s = seq;
    if (m->type != b->type) {
        snprintf(why, cap, "message #%llu came back as %s", s,
                 m->type == WSX_TEXT ? "text" : "binary");
        return E_TYPE;
    }
    if (m->len != b->size) {
        snprintf(why, cap, "message #%llu came back with %zu bytes instead of %zu", s, m->len,
                 b->size);
        return E_LENGTH;
    }
    const uint8_t *want = b->pattern + seq % PAT_SPREAD;
    size_t from = 0;
    if (b->size >= HDR_LEN) {
        uint8_t h[HDR_LEN];
        make_header(h, id, seq);
        if (memcmp(m->data, h, HDR_LEN)) {
            uint64_t gid, gseq;
            if (get_hex(m->data, 6, &gid) && get_hex(m->data + 6, 10, &gseq)) {
                if (gid == id) {
                    snprintf(why, cap, "message #%llu arrived where #%llu was expected (%s)",
                             (unsigned long long)gseq, s,
                             gseq < seq ? "duplicated or reordered" : "one lost or reordered");
                    return E_ORDER;
                }
                snprintf(why, cap, "message #%llu of connection %llu arrived instead of #%llu",
                         (unsigned long long)gseq, (unsigned long long)gid, s);
                return E_ORDER;
            }
            size_t i = first_diff(m->data, h, HDR_LEN);
            snprintf(why, cap, "message #%llu: header byte %zu is 0x%02x, expected 0x%02x", s, i,
                     m->data[i], h[i]);
            return E_CORRUPT;
        }
        from = HDR_LEN;
    }
    if (memcmp(m->data + from, want + from, b->size - from)) {
        size_t i = from + first_diff(m->data + from, want + from, b->size - from);
        snprintf(why, cap, "message #%llu: byte %zu is 0x%02x, expected 0x%02x", s, i, m->data[i],
                 want[i]);
        return E_CORRUPT;
    }
    return -1;
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
    int rc = send_msg(w, bc->c, bc->id, bc->sent);
    if (rc < 0 && rc != WSX_EBACKPRESSURE) {
        report(w, E_SEND, "connection %u: send failed: %s", bc->id, wsx_strerror(rc));
        drop(bc);
        return;
    }
    bc->sent++;
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
    atomic_fetch_add(&b->made, 1);
    atomic_fetch_add(&b->open, 1);
    if (bc->role == R_SUB) atomic_fetch_add(&b->subs_open, 1);
    settle(w, bc);
    start_more(w);
    if (w->stopping) {
        wsx_client_close(bc->cl, WSX_CLOSE_NORMAL, NULL);
        return;
    }
    if (bc->role == R_ECHO)
        for (uint32_t i = 0; i < b->k && !bc->dropped; i++)
            send_next(w, bc, bc->last_ns);
    if (bc->role == R_PUB) {
        b->nsubs = (uint32_t)atomic_load(&b->subs_open);
        atomic_store(&b->last_bc_ns, bc->last_ns);
        publish(w);
    }
}

static void on_echo(worker *w, bconn *bc, const wsx_msg *m, uint64_t now, int phase)
{
    bench *b = w->b;
    char why[200];
    if (bc->recvd == bc->sent) {
        report(w, E_UNEXPECTED, "connection %u: a message came back with none in flight",
               bc->id);
        drop(bc);
        return;
    }
    int kind = verify(b, m, bc->id, bc->recvd, why, sizeof why);
    if (kind >= 0) {
        report(w, kind, "connection %u: %s", bc->id, why);
        drop(bc);
        return;
    }
    uint64_t lat = now - bc->ring[bc->recvd % b->k];
    bc->recvd++;
    bc->last_ns = now;
    bump(&w->st.msgs, 1);
    bump(&w->st.bytes, m->len);
    bump(&w->st.lat_sum, lat);
    if (phase == P_MEASURE) {
        hist_add(&w->lat, lat);
        bump(&w->st.win_msgs, 1);
        bump(&w->st.win_bytes, m->len);
        bc->win_done++;
    }
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
    int kind = verify(b, m, b->pub->id, bc->recvd, why, sizeof why);
    if (kind >= 0) {
        report(w, kind, "subscriber %u: %s", bc->id, why);
        drop(bc);
        atomic_store(&b->abort_run, 1); /* the broadcasts cannot complete any more */
        return;
    }
    size_t slot = bc->recvd % b->k;
    uint64_t lat = now - atomic_load_explicit(&b->bc_ts[slot], memory_order_relaxed);
    bc->recvd++;
    bc->last_ns = now;
    bump(&w->st.msgs, 1);
    bump(&w->st.bytes, m->len);
    bump(&w->st.lat_sum, lat);
    if (phase == P_MEASURE) {
        hist_add(&w->lat, lat);
        bump(&w->st.win_msgs, 1);
        bump(&w->st.win_bytes, m->len);
        bc->win_done++;
    }
    if (atomic_fetch_sub(&b->bc_left[slot], 1) != 1) return;
    /* The last subscriber got it: the broadcast is complete and its slot free. */
    atomic_store_explicit(&b->last_bc_ns, now, memory_order_relaxed);
    if (phase == P_MEASURE) {
        hist_add(&w->bclat, lat);
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
        int rc = send_msg(w0, p->c, p->id, b->pub_seq);
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

static void on_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    bconn *bc = user;
    worker *w = bc->w;
    (void)c;
    if (bc->dropped) return;
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
        int kind = err == WSX_EHANDSHAKE ? E_HANDSHAKE
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
    o.url = bc->role == R_SUB ? b->url_sub : bc->role == R_PUB ? b->url_pub : b->url;
    o.user = bc;
    int rc = wsx_client_connect(w->loop, &o, &bc->cl);
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
            report(w, E_STALL,
                   "broadcast #%llu has not reached %u of %u subscribers after %.1f s",
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
        if (bc->cl && !bc->opened) {
            bc->cancelled = true;
            wsx_client_close(bc->cl, WSX_CLOSE_NORMAL, NULL);
        }
    }
    while (w->next < w->n) {
        bconn *bc = &w->conns[w->next++];
        conn_failed(w, bc, E_CONNECT_TIMEOUT, "not started within --connect-timeout");
    }
    bench *b = w->b;
    if (w->idx == 0 && b->mode == M_FANOUT && b->pub->cl && !b->pub->opened) {
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
    bool full = atomic_load(&b->abort_run) == 0;
    if (b->mode == M_ECHO && full) {
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

/* ---- the target ---- */

