/*
 * The parts of `wsx bench` (tools/wsx/bench*.c) share this: the run's state (options, workers,
 * connections, counters), the histogram, the payload's layout, and each part's entry points.
 *   bench.c          the command: connections, worker threads, the phases of a run
 *   bench_opts.c     options, the help text, the target check
 *   bench_payload.c  messages: pattern and JSON payloads, headers, verification
 *   bench_hist.c     the latency histogram
 *   bench_proc.c     the server's CPU time and memory, from /proc
 *   bench_report.c   the progress line, the summary and the JSON output
 *   bench_sio.c      the Socket.IO modes: the handshake, events and acks, their checks
 */
#ifndef WSX_TOOL_BENCH_H
#define WSX_TOOL_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tool.h"

enum { M_ECHO, M_FANOUT, M_IDLE };
enum { P_CONNECT, P_WARMUP, P_MEASURE, P_DONE };
enum { R_ECHO, R_SUB, R_PUB, R_IDLE };
enum { PL_PATTERN, PL_JSON };
/* Socket.IO modes (--mode sio-*): where a connection is in its handshake. */
enum { SIO_WAIT_OPEN, SIO_WAIT_CONNECT, SIO_WAIT_JOIN, SIO_READY };
/* What bench_sio_filter() made of a message. */
enum { SIO_DATA, SIO_TAKEN, SIO_NOW_READY, SIO_FAIL };

/* Errors by kind: the names are those of the summary and the JSON output. */
#define ERROR_KINDS(X)                                                                             \
    X(CONNECT, "connect")                                                                          \
    X(CONNECT_TIMEOUT, "connect_timeout")                                                          \
    X(HANDSHAKE, "handshake")                                                                      \
    X(TLS, "tls")                                                                                  \
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

#define HDR_LEN       16  /* connection id (6 hex digits) + sequence number (10 hex digits) */
#define PAT_SPREAD    251 /* message n starts at pattern offset n % 251: neighbours differ */
#define MAX_PRINTED   10  /* error lines printed as they happen; the rest are counted */
#define MAX_CONNS     1000000u
#define MAX_IN_FLIGHT 4096u
#define MAX_THREADS   64u
#define MAX_SIZE      (16u << 20)
#define TICK_MS       100
#define MAIN_SLEEP_NS 10000000L

extern const char *const bench_kind_names[E_KINDS];

/* ---- latency histogram: log-linear buckets (HDR style), 64 per power of two ---- */

#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_N        (2 * HIST_SUB + (63 - HIST_SUB_BITS) * HIST_SUB)

typedef struct hist {
    uint64_t n, sum, min, max;
    uint64_t b[HIST_N];
} hist;

/* Adds a value; merges h into `into`; the value at quantile q (0..1], 0 when empty. */
void bench_hist_add(hist *h, uint64_t v);
void bench_hist_merge(hist *into, const hist *h);
uint64_t bench_hist_pct(const hist *h, double q);

/* ---- payload layout ---- */

/* --payload json: each message is one line of a chat, exactly S bytes:
 *   {"type":"message","room":"lobby","name":"user0000042","seq":         123,"text":"..."}
 * The connection id (7 digits) and the sequence number (right-aligned in 12 columns: JSON
 * allows the blanks) sit at fixed offsets, so the header is written in place like the
 * pattern's; "text" is a stretch of a long stream of words that starts at a place that
 * depends on the number. The places of consecutive messages are JSON_STRIDE bytes apart in a
 * stream of JSON_SPREAD bytes, further than a 32 KiB DEFLATE window reaches, so a compressor
 * that keeps its context finds the vocabulary of earlier messages, not the same text. */
#define JSON_A      "{\"type\":\"message\",\"room\":\"lobby\",\"name\":\"user"
#define JSON_B      "\",\"seq\":"
#define JSON_C      ",\"text\":\""
#define JSON_TAIL   "\"}"
#define JSON_ID     (sizeof JSON_A - 1)
#define JSON_SEQ    (JSON_ID + 7 + sizeof JSON_B - 1)
#define JSON_HDR    (JSON_SEQ + 12 + sizeof JSON_C - 1)
#define JSON_MIN    (JSON_HDR + sizeof JSON_TAIL - 1)
#define JSON_SPREAD (1u << 20)
#define JSON_STRIDE 40503u /* odd: the places cycle through the whole stream */

/* ---- state ---- */

/* Counters of one worker. Each has one writer (the worker's thread) and is read by the main
 * thread for the progress line, so a relaxed load and store replace a locked increment. */
typedef struct wstats {
    _Atomic uint64_t msgs, bytes, lat_sum; /* every phase: the progress line */
    _Atomic uint64_t win_msgs, win_bytes, win_bcasts;
    _Atomic uint64_t err[E_KINDS];
} wstats;

static inline void bump(_Atomic uint64_t *a, uint64_t n)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t get(_Atomic uint64_t *a)
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
    uint8_t sio_state; /* SIO_*: the Socket.IO handshake (sio modes) */
    bool opened;
    bool ready;     /* can carry the load: open, and in sio modes the handshake done */
    bool settled;   /* counted in b->settled */
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
    uint8_t *sio_buf; /* sio modes: a packet being written, sent or compared */
    hist lat, bclat;
    wstats st;
} worker;

struct bench {
    /* options */
    int mode;
    bool sio;     /* --mode sio-*: Socket.IO v5 over Engine.IO v4's WebSocket transport */
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
    int payload;        /* PL_* */
    size_t hdr, tail;   /* bytes of each message before and after the pattern's */
    bool deflate;       /* offer permessage-deflate */
    bool insecure;      /* wss:// without verifying the server */
    const char *cafile; /* wss://: the CAs to trust */
    const char *url;
    char url_sub[300], url_pub[300];
    char url_sio[2400]; /* sio modes: the URL with the Engine.IO path and query */
    wsx_url u;
    char *command;

    /* shared, read-only during the run */
    uint8_t *pattern; /* size + spread bytes (PAT_SPREAD, or JSON_SPREAD) */
    size_t spread;
    wsx_client_opts copts;
    worker *workers;
    bconn *all; /* conns (+ the fanout publisher at the end) */
    size_t total;
    bconn *pub;
    uint64_t stall_ns;

    /* shared, updated by the workers */
    _Atomic int phase;
    _Atomic size_t settled, open, made, failed, subs_open;
    _Atomic size_t deflated; /* connections that agreed to permessage-deflate */
    _Atomic int abort_run;
    _Atomic unsigned printed;
    char first_error[300];
    bool tty;
    bool window_full; /* the measurement ran its course (set before the stop is posted) */

    /* fanout: broadcasts in flight, by seq % K */
    _Atomic uint32_t *bc_left;
    _Atomic uint64_t *bc_ts;
    _Atomic uint64_t last_bc_ns;
    uint64_t pub_seq, pub_oldest; /* worker 0 only */
    uint32_t nsubs;               /* subscribers the broadcasts go to */
    uint64_t published;
};

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct totals {
    uint64_t msgs, bytes, lat_sum, win_msgs, win_bytes, win_bcasts, errors;
    uint64_t err[E_KINDS];
} totals;

typedef struct result {
    double connect_s, secs;
    totals t;
    hist lat, bclat;
    double client_cpu_s;
    double server_cpu_s; /* -1: unknown */
    double other_cpu_s;  /* the rest of the machine's busy time (needs the server's); -1 */
    long rss_before, rss_after;
    size_t made, failed, deflated;
    bool window_full, interrupted;
    const char *ended; /* why the run ended early, or NULL */
} result;

/* bench_payload.c */
uint8_t *bench_make_pattern(size_t len, bool binary);
uint8_t *bench_make_words(size_t len);
int bench_send_msg(worker *w, wsx_conn *c, uint32_t id, uint64_t seq);
int bench_verify(const bench *b, const wsx_msg *m, uint32_t id, uint64_t seq, char *why,
                 size_t cap);
bool bench_read_header(const bench *b, const uint8_t *h, uint64_t *id, uint64_t *seq);

/* bench_sio.c: the Socket.IO modes (--mode sio-echo, sio-broadcast, sio-idle). The load is
 * the echo and fan-out modes' (mode is M_ECHO, M_FANOUT or M_IDLE with b->sio set), carried
 * as Socket.IO packets:
 *   echo:       42<seq>["message-with-ack",{"id":ID,"seq":SEQ,"text":"..."}], acked by
 *               43<seq>[{"id":ID,"seq":SEQ,"text":"..."}]
 *   broadcast:  subscribers send 420["join","bench"] (ack 430["joined:bench"]); the publisher
 *               sends 42["broadcast","bench",{...}], the room gets 42["broadcasted",{...}]
 * "text" is S bytes (-s) of a stream of words. */
#define SIO_ROOM     "bench"
#define SIO_PATH     "/socket.io/"
#define SIO_QUERY    "EIO=4&transport=websocket"
#define SIO_OVERHEAD 128 /* bytes of a packet besides its text, at most */
int bench_sio_url(bench *b);
size_t bench_sio_off(uint64_t seq);
int bench_sio_send(worker *w, wsx_conn *c, uint32_t id, uint64_t seq);
int bench_sio_filter(worker *w, bconn *bc, const wsx_msg *m, int *kind, char *why, size_t cap);
int bench_sio_verify(worker *w, const wsx_msg *m, uint32_t id, uint64_t seq, char *why, size_t cap);

/* bench_proc.c */
bool bench_read_ticks(long pid, uint64_t *out);
bool bench_read_busy_ticks(uint64_t *out);
long bench_read_rss_kb(long pid);

/* bench_opts.c: fills b from the command line. Returns -1 to go on, else the exit status
 * (0 after --help, 2 for a usage error or a refused target, 1 for a descriptor limit). */
int bench_options(bench *b, int argc, char **argv);

/* bench_report.c */
void bench_sum_stats(bench *b, totals *t);
void bench_progress(bench *b, int phase, double elapsed, const totals *cur, const totals *prev,
                    double dt);
void bench_print_json(const bench *b, const result *r, char **argv, int argc, bool ok);
void bench_print_summary(const bench *b, const result *r);

#endif
