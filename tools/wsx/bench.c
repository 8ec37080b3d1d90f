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
    "Opens connections to URL (ws:// or wss://host[:port]/path) with a real handshake and keeps\n"
    "masked messages in flight on each; every byte that comes back is checked. Reports\n"
    "messages/s, MB/s, latency percentiles, connections made and failed, errors by kind and,\n"
    "given the server's pid, its CPU time per message and its memory per connection. Only\n"
    "loopback targets unless --allow-remote.\n"
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
    "      --payload KIND      pattern (default): pseudo-random characters or bytes, which\n"
    "                          barely compress; json: chat messages as JSON text\n"
    "                          ({\"type\":\"message\",\"room\":...,\"text\":\"words...\"}) of\n"
    "                          exactly S bytes (S >= 83) that compress like a chat stream\n"
    "  -z, --deflate           offer permessage-deflate; the summary says on how many\n"
    "                          connections the server agreed to it\n"
    "      --cacert FILE       wss://: trust the CA certificates in FILE (PEM) instead of the\n"
    "                          system's\n"
    "      --insecure          wss://: do NOT verify the server's certificate or name\n"
    "  -d, --duration S        measured seconds (idle: seconds held) (default 5)\n"
    "  -w, --warmup S          seconds of load before the measurement starts (default 1)\n"
    "  -n, --messages N        end the measurement after N messages (default: time only)\n"
    "  -t, --threads N         event loops, one per thread, connections split among them\n"
    "                          (default 1)\n"
    "  -p, --server-pid PID    the server's process: its CPU per message from /proc/PID/stat,\n"
    "                          and its RSS growth per connection (VmRSS, from before the\n"
    "                          connections to the end of the measurement; idle: after -w)\n"
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
    "pattern that depends on the sequence number, and every byte is compared. With --payload\n"
    "json the id and the number are the \"name\" and \"seq\" fields, the words of \"text\"\n"
    "depend on the number, and again every byte is compared.\n"
    "\n"
    "A progress line on stderr every second while it runs (when stderr is a terminal, or\n"
    "with -v), then a summary on stdout. Exit status: 0 when messages completed (idle: every\n"
    "connection was held) and no error of any kind happened; 1 otherwise; 2 on a usage error\n"
    "or a refused target; 3 on the hard time limit (connect timeout + warm-up + duration + 15 "
    "s).\n";

enum { M_ECHO, M_FANOUT, M_IDLE };
enum { P_CONNECT, P_WARMUP, P_MEASURE, P_DONE };
enum { R_ECHO, R_SUB, R_PUB, R_IDLE };
enum { PL_PATTERN, PL_JSON };

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
    int payload;        /* PL_* */
    size_t hdr, tail;   /* bytes of each message before and after the pattern's */
    bool deflate;       /* offer permessage-deflate */
    bool insecure;      /* wss:// without verifying the server */
    const char *cafile; /* wss://: the CAs to trust */
    const char *url;
    char url_sub[300], url_pub[300];
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

_Static_assert(JSON_MIN == 83, "the help text says S >= 83 for --payload json");

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

/* v in decimal, right-aligned in `digits` columns, padded with pad ('0' or ' '); only the
 * lowest digits when it is wider. */
static void put_dec(uint8_t *p, uint64_t v, int digits, char pad)
{
    int i = digits - 1;
    do {
        p[i--] = (uint8_t)('0' + v % 10);
        v /= 10;
    } while (v && i >= 0);
    while (i >= 0)
        p[i--] = (uint8_t)pad;
}

/* The reverse of put_dec: leading blanks, then at least one digit up to the end. */
static bool get_dec(const uint8_t *p, int digits, uint64_t *out)
{
    int i = 0;
    while (i < digits && p[i] == ' ')
        i++;
    if (i == digits) return false;
    uint64_t v = 0;
    for (; i < digits; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* Where message `seq` starts in the pattern. */
static size_t pat_off(const bench *b, uint64_t seq)
{
    return b->payload == PL_JSON ? (size_t)(seq * JSON_STRIDE % JSON_SPREAD)
                                 : (size_t)(seq % PAT_SPREAD);
}

/* The b->hdr bytes that lead message `seq` of connection `id`. */
static void make_header(const bench *b, uint8_t *out, uint32_t id, uint64_t seq)
{
    if (b->payload == PL_JSON) {
        memcpy(out, JSON_A, JSON_ID);
        put_dec(out + JSON_ID, id, 7, '0');
        memcpy(out + JSON_ID + 7, JSON_B, sizeof JSON_B - 1);
        put_dec(out + JSON_SEQ, seq, 12, ' ');
        memcpy(out + JSON_SEQ + 12, JSON_C, sizeof JSON_C - 1);
        return;
    }
    put_hex(out, id, 6);
    put_hex(out + 6, seq, 10);
}

/* The connection id and sequence number a header carries, if it is one. */
static bool read_header(const bench *b, const uint8_t *h, uint64_t *id, uint64_t *seq)
{
    if (b->payload == PL_JSON)
        return !memcmp(h, JSON_A, JSON_ID) && get_dec(h + JSON_ID, 7, id) &&
               !memcmp(h + JSON_ID + 7, JSON_B, sizeof JSON_B - 1) &&
               get_dec(h + JSON_SEQ, 12, seq);
    return get_hex(h, 6, id) && get_hex(h + 6, 10, seq);
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

/* --payload json: a stream of chat words, ASCII without '"' or '\' (any stretch of it is a
 * valid JSON string). Deterministic (xorshift). */
static uint8_t *make_words(size_t len)
{
    static const char *const words[] = {
        "hi",      "hello",  "everyone", "the",    "a",      "is",     "it",      "to",
        "and",     "of",     "in",       "on",     "for",    "we",     "you",     "I",
        "that",    "this",   "with",     "at",     "be",     "are",    "was",     "have",
        "just",    "so",     "but",      "not",    "what",   "about",  "can",     "will",
        "meeting", "today",  "tomorrow", "lunch",  "coffee", "deploy", "build",   "tests",
        "passed",  "failed", "again",    "review", "merged", "branch", "release", "server",
        "client",  "thanks", "sure",     "ok",     "lol",    "yes",    "no",      "maybe",
        "think",   "should", "ship",     "later",  "looks",  "good",   "see",     "room",
    };
    static const char punct[] = ",.!?";
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return NULL;
    uint64_t x = 0x9e3779b97f4a7c15u;
    size_t i = 0;
    while (i < len) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *w = words[(x >> 20) % (sizeof words / sizeof *words)];
        while (*w && i < len)
            p[i++] = (uint8_t)*w++;
        if (i < len && (x >> 40) % 8 == 0) p[i++] = (uint8_t)punct[(x >> 44) % 4];
        if (i < len) p[i++] = ' ';
    }
    return p;
}

/* Sends message `seq` of connection `id`: pattern bytes from pat_off(seq), led by the
 * header (and closed by the tail). Both are written into the worker's copy of the pattern
 * for the call and undone after it (wsx_send copies), so no message is assembled byte by
 * byte. */
static int send_msg(worker *w, wsx_conn *c, uint32_t id, uint64_t seq)
{
    bench *b = w->b;
    uint8_t *p = w->sendbuf + pat_off(b, seq);
    if (!b->hdr) return wsx_send(c, p, b->size, b->type);
    uint8_t save[JSON_HDR], tail[sizeof JSON_TAIL];
    memcpy(save, p, b->hdr);
    make_header(b, p, id, seq);
    if (b->tail) {
        memcpy(tail, p + b->size - b->tail, b->tail);
        memcpy(p + b->size - b->tail, JSON_TAIL, b->tail);
    }
    int rc = wsx_send(c, p, b->size, b->type);
    memcpy(p, save, b->hdr);
    if (b->tail) memcpy(p + b->size - b->tail, tail, b->tail);
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
    const uint8_t *want = b->pattern + pat_off(b, seq);
    size_t from = 0, to = b->size - b->tail;
    if (b->hdr) {
        uint8_t h[JSON_HDR];
        make_header(b, h, id, seq);
        if (memcmp(m->data, h, b->hdr)) {
            uint64_t gid, gseq;
            if (read_header(b, m->data, &gid, &gseq)) {
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
            size_t i = first_diff(m->data, h, b->hdr);
            snprintf(why, cap, "message #%llu: header byte %zu is 0x%02x, expected 0x%02x", s, i,
                     m->data[i], h[i]);
            return E_CORRUPT;
        }
        from = b->hdr;
    }
    if (memcmp(m->data + from, want + from, to - from)) {
        size_t i = from + first_diff(m->data + from, want + from, to - from);
        snprintf(why, cap, "message #%llu: byte %zu is 0x%02x, expected 0x%02x", s, i, m->data[i],
                 want[i]);
        return E_CORRUPT;
    }
    if (b->tail && memcmp(m->data + to, JSON_TAIL, b->tail)) {
        size_t i = to + first_diff(m->data + to, (const uint8_t *)JSON_TAIL, b->tail);
        snprintf(why, cap, "message #%llu: byte %zu is 0x%02x, expected 0x%02x", s, i, m->data[i],
                 (unsigned)(uint8_t)JSON_TAIL[i - to]);
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
    if (wsx_conn_deflate(c)) atomic_fetch_add(&b->deflated, 1);
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

/* Counts one message that came back (echo) or arrived (fan-out) on bc, lat ns after it left. */
static void count_message(worker *w, bconn *bc, size_t len, uint64_t lat, uint64_t now, int phase)
{
    bc->recvd++;
    bc->last_ns = now;
    bump(&w->st.msgs, 1);
    bump(&w->st.bytes, len);
    bump(&w->st.lat_sum, lat);
    if (phase == P_MEASURE) {
        hist_add(&w->lat, lat);
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
    int kind = verify(b, m, bc->id, bc->recvd, why, sizeof why);
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
    int kind = verify(b, m, b->pub->id, bc->recvd, why, sizeof why);
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
    o.url = bc->role == R_SUB ? b->url_sub : bc->role == R_PUB ? b->url_pub : b->url;
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

/* ---- the target ---- */

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* True when every address host resolves to is a loopback one (127.0.0.0/8, ::1): the
 * client may connect to any of them. Nothing is sent to the host. */
static bool host_is_loopback(const char *host, char *why, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc) {
        if (snprintf(why, cap, "cannot resolve '%s': %s", host, gai_strerror(rc)) >= (int)cap)
            why[cap - 1] = '\0';
        return false;
    }
    bool ok = true;
    for (struct addrinfo *ai = res; ai && ok; ai = ai->ai_next) {
        if (addr_is_loopback(ai->ai_addr)) continue;
        char addr[INET6_ADDRSTRLEN] = "?";
        getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST);
        int n = strcmp(addr, host)
                    ? snprintf(why, cap, "%s (%s) is not a loopback address", host, addr)
                    : snprintf(why, cap, "%s is not a loopback address", host);
        if (n >= (int)cap) why[cap - 1] = '\0';
        ok = false;
    }
    freeaddrinfo(res);
    return ok;
}

/* ---- the server process ---- */

/* utime + stime of pid, in clock ticks. */
static bool read_ticks(long pid, uint64_t *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces: count from the last
     * ')'. utime and stime are fields 14 and 15. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p ||
        sscanf(p + 1, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return false;
    *out = ut + st;
    return true;
}

/* Busy time of the whole machine (every CPU, everything but idle and iowait), in ticks. */
static bool read_busy_ticks(uint64_t *out)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return false;
    unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
                   &iowait, &irq, &softirq, &steal);
    fclose(f);
    if (n != 8) return false;
    *out = user + nice + sys + irq + softirq + steal;
    return true;
}

/* VmRSS of pid in KiB, or -1. */
static long read_rss_kb(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* ---- the main thread: phases, progress, results ---- */

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

typedef struct totals {
    uint64_t msgs, bytes, lat_sum, win_msgs, win_bytes, win_bcasts, errors;
    uint64_t err[E_KINDS];
} totals;

static void sum_stats(bench *b, totals *t)
{
    memset(t, 0, sizeof *t);
    for (uint32_t i = 0; i < b->threads; i++) {
        wstats *s = &b->workers[i].st;
        t->msgs += get(&s->msgs);
        t->bytes += get(&s->bytes);
        t->lat_sum += get(&s->lat_sum);
        t->win_msgs += get(&s->win_msgs);
        t->win_bytes += get(&s->win_bytes);
        t->win_bcasts += get(&s->win_bcasts);
        for (int k = 0; k < E_KINDS; k++)
            t->err[k] += get(&s->err[k]);
    }
    for (int k = 0; k < E_KINDS; k++)
        t->errors += t->err[k];
}

static const char *const phase_names[] = {"connect", "warm-up", "measure", "done"};

static void progress(bench *b, int phase, double elapsed, const totals *cur, const totals *prev,
                     double dt)
{
    char line[256];
    size_t open = atomic_load(&b->open);
    if (phase == P_CONNECT || b->mode == M_IDLE) {
        snprintf(line, sizeof line, "[%5.1f s] %-7s  open %zu/%zu  failed %zu  errors %llu",
                 elapsed, phase == P_MEASURE && b->mode == M_IDLE ? "hold" : phase_names[phase],
                 open, b->total, atomic_load(&b->failed), (unsigned long long)cur->errors);
    } else {
        uint64_t dm = cur->msgs - prev->msgs;
        double rate = dt > 0 ? (double)dm / dt : 0;
        double mbs = dt > 0 ? (double)(cur->bytes - prev->bytes) / dt / 1e6 : 0;
        double avg_us = dm ? (double)(cur->lat_sum - prev->lat_sum) / (double)dm / 1e3 : 0;
        snprintf(line, sizeof line,
                 "[%5.1f s] %-7s  %.0f %s/s  %.2f MB/s  avg %.0f us  open %zu  errors %llu",
                 elapsed, phase_names[phase], rate, b->mode == M_FANOUT ? "deliveries" : "msgs",
                 mbs, avg_us, open, (unsigned long long)cur->errors);
    }
    if (b->tty)
        fprintf(stderr, "\r\033[K%s", line);
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

/* A figure rounded to `decimals`, or null when it is not known (negative). */
static json_t *json_fig(double v, int decimals)
{
    if (v < 0) return json_null();
    if (decimals == 0) return json_integer((json_int_t)(v + 0.5));
    double scale = decimals == 1 ? 10 : decimals == 2 ? 100 : 1000;
    return json_real((double)(long long)(v * scale + 0.5) / scale);
}

static json_t *json_lat(const hist *h)
{
    static const char *const keys[] = {"p50", "p90", "p99", "p999", "max", "min", "mean"};
    double us[7] = {0};
    if (h->n) {
        us[0] = (double)hist_pct(h, 0.50) / 1e3, us[1] = (double)hist_pct(h, 0.90) / 1e3;
        us[2] = (double)hist_pct(h, 0.99) / 1e3, us[3] = (double)hist_pct(h, 0.999) / 1e3;
        us[4] = (double)h->max / 1e3, us[5] = (double)h->min / 1e3;
        us[6] = (double)h->sum / (double)h->n / 1e3;
    }
    json_t *o = json_object();
    for (int i = 0; i < 7; i++)
        json_object_set_new(o, keys[i], h->n ? json_fig(us[i], 1) : json_null());
    return o;
}

static void fmt_us(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 1000000)
        snprintf(buf, cap, "%.0f us", (double)ns / 1e3);
    else
        snprintf(buf, cap, "%.2f ms", (double)ns / 1e6);
}

static void print_lat(const char *label, const hist *h)
{
    if (!h->n) {
        printf("  %-12s -\n", label);
        return;
    }
    char p50[32], p90[32], p99[32], p999[32], mx[32], mean[32];
    fmt_us(p50, sizeof p50, hist_pct(h, 0.50));
    fmt_us(p90, sizeof p90, hist_pct(h, 0.90));
    fmt_us(p99, sizeof p99, hist_pct(h, 0.99));
    fmt_us(p999, sizeof p999, hist_pct(h, 0.999));
    fmt_us(mx, sizeof mx, h->max);
    fmt_us(mean, sizeof mean, h->sum / h->n);
    printf("  %-12s p50 %s, p90 %s, p99 %s, p99.9 %s, max %s (mean %s)\n", label, p50, p90, p99,
           p999, mx, mean);
}

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

static const char *const mode_names[] = {"echo", "fanout", "idle"};

static json_t *json_text_or_null(const char *s)
{
    return s && *s ? tool_json_text(s, strlen(s)) : json_null();
}

static void print_json(const bench *b, const result *r, char **argv, int argc, bool ok)
{
    double secs = r->secs;
    const totals *t = &r->t;
    json_t *o = json_object(), *av = json_array();
    json_array_append_new(av, json_string("wsx"));
    for (int i = 0; i < argc; i++)
        json_array_append_new(av, tool_json_text(argv[i], strlen(argv[i])));
#define SET(k, v) json_object_set_new(o, k, v)
    SET("command", tool_json_text(b->command, strlen(b->command)));
    SET("argv", av);
    SET("mode", json_string(mode_names[b->mode]));
    SET("url", tool_json_text(b->url, strlen(b->url)));
    SET("connections", json_integer((json_int_t)b->conns));
    SET("size", json_integer((json_int_t)b->size));
    SET("in_flight", json_integer(b->k));
    SET("binary", json_boolean(b->type == WSX_BINARY));
    SET("threads", json_integer(b->threads));
    SET("payload", json_string(b->payload == PL_JSON ? "json" : "pattern"));
    SET("tls", json_boolean(b->u.tls));
    SET("tls_insecure", json_boolean(b->u.tls && b->insecure));
    SET("deflate_offered", json_boolean(b->deflate));
    SET("warmup_s", json_fig(b->warmup, 3));
    SET("duration_s", json_fig(secs, 3));
    SET("connect_s", json_fig(r->connect_s, 3));
    SET("connections_made", json_integer((json_int_t)r->made));
    SET("connections_failed", json_integer((json_int_t)r->failed));
    SET("deflate_agreed", json_integer((json_int_t)r->deflated));
    if (b->mode != M_IDLE) {
        SET("messages", json_integer((json_int_t)t->win_msgs));
        SET("bytes", json_integer((json_int_t)t->win_bytes));
        SET("msgs_per_s", json_fig(secs > 0 ? (double)t->win_msgs / secs : -1, 1));
        SET("MB_per_s", json_fig(secs > 0 ? (double)t->win_bytes / secs / 1e6 : -1, 3));
        SET("latency_us", json_lat(&r->lat));
    }
    if (b->mode == M_FANOUT) {
        SET("subscribers", json_integer(b->nsubs));
        SET("deliveries", json_integer((json_int_t)t->win_msgs));
        SET("broadcasts", json_integer((json_int_t)t->win_bcasts));
        SET("deliveries_per_s", json_fig(secs > 0 ? (double)t->win_msgs / secs : -1, 1));
        SET("broadcasts_per_s", json_fig(secs > 0 ? (double)t->win_bcasts / secs : -1, 1));
        SET("broadcast_latency_us", json_lat(&r->bclat));
    }
    SET("client_cpu_pct", json_fig(secs > 0 ? 100.0 * r->client_cpu_s / secs : -1, 1));
    SET("client_us_per_msg",
        json_fig(t->win_msgs && b->mode != M_IDLE ? r->client_cpu_s * 1e6 / (double)t->win_msgs
                                                  : -1,
                 3));
    SET("server_pid", b->server_pid ? json_integer(b->server_pid) : json_null());
    SET("server_cpu_pct",
        json_fig(secs > 0 && r->server_cpu_s >= 0 ? 100.0 * r->server_cpu_s / secs : -1, 1));
    SET("server_us_per_msg",
        json_fig(t->win_msgs && r->server_cpu_s >= 0 ? r->server_cpu_s * 1e6 / (double)t->win_msgs
                                                     : -1,
                 3));
    SET("other_cpu_pct",
        json_fig(secs > 0 && r->other_cpu_s >= 0 ? 100.0 * r->other_cpu_s / secs : -1, 1));
    SET("server_rss_before_kb", json_fig((double)r->rss_before, 0));
    SET("server_rss_after_kb", json_fig((double)r->rss_after, 0));
    SET("server_bytes_per_conn",
        json_fig(r->rss_before >= 0 && r->rss_after >= 0 && r->made
                     ? (double)(r->rss_after - r->rss_before) * 1024.0 / (double)r->made
                     : -1,
                 0));
    SET("errors", json_integer((json_int_t)t->errors));
    json_t *kinds = json_object();
    for (int k = 0; k < E_KINDS; k++)
        json_object_set_new(kinds, kind_names[k], json_integer((json_int_t)t->err[k]));
    SET("errors_by_kind", kinds);
    SET("first_error", json_text_or_null(b->first_error));
    SET("ended_early", json_text_or_null(r->ended));
    SET("ok", json_boolean(ok));
#undef SET
    tool_json_print(stdout, o);
}

static void print_summary(const bench *b, const result *r)
{
    const totals *t = &r->t;
    double secs = r->secs;
    printf("wsx bench %s %s: ", mode_names[b->mode], b->url);
    if (b->mode == M_ECHO)
        printf("%zu connections x %u in flight, ", b->conns, b->k);
    else if (b->mode == M_FANOUT)
        printf("%zu subscribers, 1 publisher, %u broadcasts in flight, ", b->conns, b->k);
    else
        printf("%zu idle connections, ", b->conns);
    if (b->mode != M_IDLE)
        printf("%zu-byte %s%s messages, ", b->size, b->payload == PL_JSON ? "JSON " : "",
               b->type == WSX_BINARY ? "binary" : "text");
    printf("%u thread%s\n", b->threads, b->threads > 1 ? "s" : "");
    printf("  %-12s %s\n", "command", b->command);
    printf("  %-12s %zu made, %zu failed, in %.3f s (%.0f/s)\n", "connections", r->made, r->failed,
           r->connect_s, r->connect_s > 0 ? (double)r->made / r->connect_s : 0.0);
    if (b->u.tls)
        printf("  %-12s wss://, %s\n", "tls",
               b->insecure ? "the server's certificate NOT verified (--insecure)"
                           : "the server's certificate verified");
    if (b->deflate)
        printf("  %-12s offered; agreed on %zu of %zu connections\n", "deflate", r->deflated,
               r->made);
    if (secs <= 0)
        printf("  %-12s nothing: the run ended before the measurement\n", "measured");
    else if (b->mode == M_IDLE)
        printf("  %-12s %.2f s after %.2f s to settle\n", "held", secs, b->warmup);
    else
        printf("  %-12s %.2f s after %.2f s of warm-up\n", "measured", secs, b->warmup);
    if (secs > 0 && b->mode == M_ECHO) {
        printf("  %-12s %llu: %.0f msgs/s, %.2f MB/s of payload each way\n", "messages",
               (unsigned long long)t->win_msgs, secs > 0 ? (double)t->win_msgs / secs : 0.0,
               secs > 0 ? (double)t->win_bytes / secs / 1e6 : 0.0);
        print_lat("latency", &r->lat);
    } else if (secs > 0 && b->mode == M_FANOUT) {
        printf("  %-12s %llu: %.0f deliveries/s, %.2f MB/s; %llu broadcasts: %.1f/s\n",
               "deliveries", (unsigned long long)t->win_msgs,
               secs > 0 ? (double)t->win_msgs / secs : 0.0,
               secs > 0 ? (double)t->win_bytes / secs / 1e6 : 0.0,
               (unsigned long long)t->win_bcasts, secs > 0 ? (double)t->win_bcasts / secs : 0.0);
        print_lat("delivery", &r->lat);
        print_lat("broadcast", &r->bclat);
    }
    if (secs > 0) {
        printf("  %-12s %.1f%% of a CPU", "client", 100.0 * r->client_cpu_s / secs);
        if (t->win_msgs && b->mode != M_IDLE)
            printf(", %.3f us/msg", r->client_cpu_s * 1e6 / (double)t->win_msgs);
        printf("\n");
    }
    if (b->server_pid) {
        printf("  %-12s pid %ld", "server", b->server_pid);
        if (r->server_cpu_s >= 0 && secs > 0) {
            printf(": %.1f%% of a CPU", 100.0 * r->server_cpu_s / secs);
            if (t->win_msgs)
                printf(", %.3f us/%s", r->server_cpu_s * 1e6 / (double)t->win_msgs,
                       b->mode == M_FANOUT ? "delivery" : "msg");
        }
        if (r->rss_before >= 0 && r->rss_after >= 0) {
            printf(", RSS %ld -> %ld KiB", r->rss_before, r->rss_after);
            if (r->made)
                printf(" (%.0f bytes per connection)",
                       (double)(r->rss_after - r->rss_before) * 1024.0 / (double)r->made);
        }
        printf("\n");
    }
    if (r->other_cpu_s >= 0 && secs > 0)
        printf("  %-12s %.0f%% of a CPU besides the server and this client (contention)\n", "other",
               100.0 * r->other_cpu_s / secs);
    if (!t->errors) {
        printf("  %-12s none\n", "errors");
    } else {
        printf("  %-12s %llu (", "errors", (unsigned long long)t->errors);
        bool first = true;
        for (int k = 0; k < E_KINDS; k++)
            if (t->err[k]) {
                printf("%s%s %llu", first ? "" : ", ", kind_names[k],
                       (unsigned long long)t->err[k]);
                first = false;
            }
        printf(")\n  %-12s %s\n", "first error", b->first_error);
    }
    if (r->ended) printf("  %-12s %s\n", "ended early", r->ended);
}

/* Runs the benchmark on prepared state; fills r. */
static void run(bench *b, result *r)
{
    memset(r, 0, sizeof *r);
    r->server_cpu_s = -1;
    r->other_cpu_s = -1;
    r->rss_before = r->rss_after = -1;
    long tck = sysconf(_SC_CLK_TCK);
    uint64_t ticks0 = 0, ticks1 = 0, cpu0 = 0, cpu1 = 0, m0 = 0, m1 = 0;
    uint64_t busy0 = 0, busy1 = 0;
    bool ticks_ok = false, busy_ok = false;
    if (b->server_pid) r->rss_before = read_rss_kb(b->server_pid);

    for (uint32_t i = 0; i < b->threads; i++)
        if (pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i])) {
            fprintf(stderr, "wsx bench: cannot start a thread\n");
            exit(1);
        }

    bool show = !b->json && (b->tty || b->verbose), shown = false;
    uint64_t start = now_ns(), phase_end = start + (uint64_t)(b->connect_timeout * 1e9);
    uint64_t connected = 0, last_print = start;
    int phase = P_CONNECT;
    bool cancelled = false, by_count = false;
    totals prev, cur;
    sum_stats(b, &prev);
    for (;;) {
        struct timespec ts = {0, MAIN_SLEEP_NS};
        nanosleep(&ts, NULL);
        uint64_t now = now_ns();
        if (interrupted) r->interrupted = true;
        if (phase == P_CONNECT) {
            if (atomic_load(&b->settled) >= b->total) {
                connected = now;
                if (!atomic_load(&b->made)) {
                    r->ended = "no connection opened";
                    break;
                }
                phase = P_WARMUP;
                atomic_store(&b->phase, phase);
                phase_end = now + (uint64_t)(b->warmup * 1e9);
            } else if (r->interrupted) {
                r->ended = "interrupted";
                break;
            } else if (!cancelled && now >= phase_end) {
                cancelled = true;
                for (uint32_t i = 0; i < b->threads; i++)
                    wsx_loop_post(b->workers[i].loop, cancel_pending, &b->workers[i]);
            }
        }
        if (phase == P_WARMUP && now >= phase_end) {
            m0 = now;
            cpu0 = cpu_ns();
            if (b->server_pid) {
                ticks_ok = read_ticks(b->server_pid, &ticks0);
                busy_ok = read_busy_ticks(&busy0);
                if (b->mode == M_IDLE) r->rss_after = read_rss_kb(b->server_pid);
            }
            phase = P_MEASURE;
            atomic_store(&b->phase, phase);
            phase_end = now + (uint64_t)(b->duration * 1e9);
            sum_stats(b, &prev);
            last_print = now;
        }
        if (phase == P_WARMUP || phase == P_MEASURE) {
            bool done = phase == P_MEASURE && now >= phase_end;
            if (phase == P_MEASURE && b->max_msgs) {
                sum_stats(b, &cur);
                if (cur.win_msgs >= b->max_msgs) done = by_count = true;
            }
            const char *why = NULL;
            if (atomic_load(&b->abort_run))
                why = "the run cannot go on (see the errors)";
            else if (b->mode != M_IDLE && !atomic_load(&b->open))
                why = "every connection is closed";
            else if (r->interrupted)
                why = "interrupted";
            if (done || why) {
                if (phase == P_MEASURE) {
                    m1 = now;
                    cpu1 = cpu_ns();
                    if (ticks_ok) ticks_ok = read_ticks(b->server_pid, &ticks1);
                    if (busy_ok) busy_ok = read_busy_ticks(&busy1);
                    /* Under load: what the open connections hold, buffers included. */
                    if (b->server_pid && b->mode != M_IDLE)
                        r->rss_after = read_rss_kb(b->server_pid);
                    r->window_full = !why;
                }
                if (why) r->ended = why;
                break;
            }
        }
        if (show && now - last_print >= 1000000000u) {
            sum_stats(b, &cur);
            progress(b, phase, (double)(now - start) / 1e9, &cur, &prev,
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
    for (uint32_t i = 0; i < b->threads; i++)
        wsx_loop_post(b->workers[i].loop, stop_worker, &b->workers[i]);
    for (uint32_t i = 0; i < b->threads; i++)
        pthread_join(b->workers[i].thread, NULL);

    r->connect_s = (double)((connected ? connected : now_ns()) - start) / 1e9;
    r->secs = m1 > m0 ? (double)(m1 - m0) / 1e9 : 0;
    r->client_cpu_s = m1 > m0 ? (double)(cpu1 - cpu0) / 1e9 : 0;
    r->other_cpu_s = -1;
    if (ticks_ok && m1 > m0 && tck > 0) {
        r->server_cpu_s = (double)(ticks1 - ticks0) / (double)tck;
        /* What else ran on the machine meanwhile: other processes, and kernel work that was
         * charged to neither process. A large figure means the run was contended. */
        if (busy_ok && busy1 >= busy0) {
            double other =
                (double)(busy1 - busy0) / (double)tck - r->server_cpu_s - r->client_cpu_s;
            r->other_cpu_s = other > 0 ? other : 0;
        }
    }
    r->made = atomic_load(&b->made);
    r->deflated = atomic_load(&b->deflated);
    r->failed = atomic_load(&b->failed);
    sum_stats(b, &r->t);
    for (uint32_t i = 0; i < b->threads; i++) {
        hist_merge(&r->lat, &b->workers[i].lat);
        hist_merge(&r->bclat, &b->workers[i].bclat);
    }
}

/* ---- the command ---- */

static bool parse_seconds(const char *s, double *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 3600) return false;
    *out = v;
    return true;
}

/* "wsx bench ..." as typed, arguments quoted where a shell needs it. */
static char *command_line(int argc, char **argv)
{
    size_t cap = 4;
    for (int i = 0; i < argc; i++)
        cap += 4 * strlen(argv[i]) + 3;
    char *s = malloc(cap), *p = s;
    if (!s) return NULL;
    p += sprintf(p, "wsx");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool plain = *a != '\0';
        for (const char *q = a; *q; q++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@%",
                        *q))
                plain = false;
        *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (const char *q = a; *q; q++) {
            if (*q == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *q;
            }
        }
        *p++ = '\'';
        *p = '\0';
    }
    return s;
}

enum {
    O_IDLE = 256,
    O_CONNECT_TIMEOUT,
    O_MAX_CONNECTING,
    O_STALL,
    O_ALLOW_REMOTE,
    O_JSON,
    O_PAYLOAD,
    O_CACERT,
    O_INSECURE,
};

int cmd_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mode", required_argument, 0, 'm'},
        {"idle", required_argument, 0, O_IDLE},
        {"connections", required_argument, 0, 'c'},
        {"size", required_argument, 0, 's'},
        {"in-flight", required_argument, 0, 'k'},
        {"binary", no_argument, 0, 'b'},
        {"payload", required_argument, 0, O_PAYLOAD},
        {"deflate", no_argument, 0, 'z'},
        {"cacert", required_argument, 0, O_CACERT},
        {"insecure", no_argument, 0, O_INSECURE},
        {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, 'w'},
        {"messages", required_argument, 0, 'n'},
        {"threads", required_argument, 0, 't'},
        {"server-pid", required_argument, 0, 'p'},
        {"connect-timeout", required_argument, 0, O_CONNECT_TIMEOUT},
        {"max-connecting", required_argument, 0, O_MAX_CONNECTING},
        {"stall", required_argument, 0, O_STALL},
        {"allow-remote", no_argument, 0, O_ALLOW_REMOTE},
        {"json", no_argument, 0, O_JSON},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static bench st; /* large (histograms are per worker, but the struct is shared) */
    bench *b = &st;
    memset(b, 0, sizeof *b);
    b->mode = M_ECHO;
    b->conns = 50;
    b->size = 32;
    b->k = 1;
    b->type = WSX_TEXT;
    b->threads = 1;
    b->warmup = 1;
    b->duration = 5;
    b->connect_timeout = 10;
    b->stall = 3;
    b->max_connecting = 256;
    uint32_t v;
    size_t sz;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:c:s:k:bzd:w:n:t:p:vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (!strcmp(optarg, "echo"))
                b->mode = M_ECHO;
            else if (!strcmp(optarg, "fanout"))
                b->mode = M_FANOUT;
            else if (!strcmp(optarg, "idle"))
                b->mode = M_IDLE;
            else
                return usage_error("bench", "unknown mode '%s' (echo, fanout or idle)", optarg);
            break;
        case O_IDLE:
        case 'c':
            if (!parse_u32(optarg, &v) || v == 0 || v > MAX_CONNS)
                return usage_error("bench", "bad connection count '%s' (1..%u)", optarg, MAX_CONNS);
            b->conns = v;
            if (ch == O_IDLE) b->mode = M_IDLE;
            break;
        case 's':
            if (!parse_size(optarg, &sz) || sz > MAX_SIZE)
                return usage_error("bench", "bad size '%s' (0..16M)", optarg);
            b->size = sz;
            break;
        case 'k':
            if (!parse_u32(optarg, &v) || v == 0 || v > MAX_IN_FLIGHT)
                return usage_error("bench", "bad in-flight count '%s' (1..%u)", optarg,
                                   MAX_IN_FLIGHT);
            b->k = v;
            break;
        case 'b':
            b->type = WSX_BINARY;
            break;
        case O_PAYLOAD:
            if (!strcmp(optarg, "pattern"))
                b->payload = PL_PATTERN;
            else if (!strcmp(optarg, "json"))
                b->payload = PL_JSON;
            else
                return usage_error("bench", "unknown payload '%s' (pattern or json)", optarg);
            break;
        case 'z':
            b->deflate = true;
            break;
        case O_CACERT:
            b->cafile = optarg;
            break;
        case O_INSECURE:
            b->insecure = true;
            break;
        case 'd':
        case 'w':
        case O_CONNECT_TIMEOUT:
        case O_STALL: {
            double s;
            if (!parse_seconds(optarg, &s))
                return usage_error("bench", "bad seconds '%s' (0..3600)", optarg);
            if ((ch == 'd' || ch == O_CONNECT_TIMEOUT || ch == O_STALL) && s <= 0)
                return usage_error("bench", "seconds must be above 0: '%s'", optarg);
            if (ch == 'd') b->duration = s;
            if (ch == 'w') b->warmup = s;
            if (ch == O_CONNECT_TIMEOUT) b->connect_timeout = s;
            if (ch == O_STALL) b->stall = s;
            break;
        }
        case 'n': {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || *optarg == '-' || n == 0)
                return usage_error("bench", "bad message count '%s'", optarg);
            b->max_msgs = n;
            break;
        }
        case 't':
            if (!parse_u32(optarg, &v) || v == 0 || v > MAX_THREADS)
                return usage_error("bench", "bad thread count '%s' (1..%u)", optarg, MAX_THREADS);
            b->threads = v;
            break;
        case 'p':
            if (!parse_u32(optarg, &v) || v == 0 || v > INT32_MAX)
                return usage_error("bench", "bad pid '%s'", optarg);
            b->server_pid = (long)v;
            break;
        case O_MAX_CONNECTING:
            if (!parse_u32(optarg, &v) || v == 0)
                return usage_error("bench", "bad count '%s'", optarg);
            b->max_connecting = v;
            break;
        case O_ALLOW_REMOTE:
            b->allow_remote = true;
            break;
        case O_JSON:
            b->json = true;
            break;
        case 'v':
            b->verbose = true;
            break;
        case 'h':
            fputs(help, stdout);
            return 0;
        default:
            return usage_error("bench", "unknown option");
        }
    }
    if (optind + 1 != argc) return usage_error("bench", "expected one URL");
    b->url = argv[optind];
    if (wsx_url_parse(b->url, &b->u) < 0)
        return usage_error("bench", "bad URL '%s' (expected ws:// or wss://host[:port]/path)",
                           b->url);
    if (b->payload == PL_JSON && b->size < JSON_MIN)
        return usage_error("bench", "--payload json needs messages of at least %zu bytes (-s)",
                           (size_t)JSON_MIN);

    /* Before anything touches the network: a load generator aimed at someone else's host is
     * an attack, so only loopback unless asked. */
    char why[300];
    if (!b->allow_remote && !host_is_loopback(b->u.host, why, sizeof why)) {
        fprintf(stderr,
                "wsx bench: refusing %s: %s; only loopback targets (127.0.0.0/8, ::1, localhost) "
                "are allowed without --allow-remote\n",
                b->url, why);
        return 2;
    }
    uint64_t ticks;
    if (b->server_pid && !read_ticks(b->server_pid, &ticks)) {
        fprintf(stderr, "wsx bench: cannot read /proc/%ld/stat: %s\n", b->server_pid,
                strerror(errno));
        return 2;
    }
    if (b->threads > b->conns) b->threads = (uint32_t)b->conns;
    b->total = b->conns + (b->mode == M_FANOUT);
    if (b->mode == M_FANOUT) {
        bool v6 = strchr(b->u.host, ':') != NULL;
        const char *sc = b->u.tls ? "wss" : "ws", *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
        if (snprintf(b->url_sub, sizeof b->url_sub, "%s://%s%s%s:%u/sub", sc, lb, b->u.host, rb,
                     b->u.port) >= (int)sizeof b->url_sub ||
            snprintf(b->url_pub, sizeof b->url_pub, "%s://%s%s%s:%u/pub", sc, lb, b->u.host, rb,
                     b->u.port) >= (int)sizeof b->url_pub)
            return usage_error("bench", "host name too long");
    }
    if (b->insecure && b->u.tls)
        fprintf(stderr, "wsx bench: WARNING: --insecure: the server's certificate and name are "
                        "NOT checked; anyone on the path can read and change these "
                        "connections\n");

    /* One descriptor per connection, plus the loops' own. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < b->total + 16 + 4 * b->threads) {
            fprintf(stderr,
                    "wsx bench: %zu connections need more file descriptors than the limit "
                    "(%llu): raise it with ulimit -n\n",
                    b->total, (unsigned long long)rl.rlim_cur);
            return 1;
        }
    }

    b->command = command_line(argc, argv);
    b->tty = isatty(STDERR_FILENO);
    b->stall_ns = (uint64_t)(b->stall * 1e9);
    if (b->payload == PL_JSON) {
        b->hdr = JSON_HDR;
        b->tail = sizeof JSON_TAIL - 1;
        b->spread = JSON_SPREAD;
        b->pattern = make_words(b->size + b->spread);
    } else {
        b->hdr = b->size >= HDR_LEN ? HDR_LEN : 0;
        b->spread = PAT_SPREAD;
        b->pattern = make_pattern(b->size + b->spread, b->type == WSX_BINARY);
    }
    b->workers = calloc(b->threads, sizeof *b->workers);
    b->all = calloc(b->total, sizeof *b->all);
    uint64_t *rings = NULL;
    if (b->mode == M_ECHO) rings = calloc(b->conns * b->k, sizeof *rings);
    if (b->mode == M_FANOUT) {
        b->bc_left = calloc(b->k, sizeof *b->bc_left);
        b->bc_ts = calloc(b->k, sizeof *b->bc_ts);
    }
    if (!b->command || !b->pattern || !b->workers || !b->all || (b->mode == M_ECHO && !rings) ||
        (b->mode == M_FANOUT && (!b->bc_left || !b->bc_ts))) {
        fprintf(stderr, "wsx bench: out of memory\n");
        return 1;
    }

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
        int rc = w->sendbuf ? wsx_loop_new(&w->loop) : WSX_ENOMEM;
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
        print_json(b, r, argv, argc, ok);
    else
        print_summary(b, r);
    fflush(stdout);
    if (!ok && !r->t.errors)
        fprintf(stderr, "wsx bench: %s\n",
                r->ended            ? r->ended
                : b->mode == M_IDLE ? "the connections were not all held"
                                    : "no message completed");

    for (uint32_t t = 0; t < b->threads; t++) {
        wsx_loop_free(b->workers[t].loop);
        free(b->workers[t].sendbuf);
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
