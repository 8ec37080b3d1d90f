/*
 * Fan-out across nodes (issue 13, docs/cluster.md): C subscribers spread round-robin over
 * the /sub endpoints of one or more `wsx echo --redis` nodes, one publisher on /pub of the
 * first, at a fixed rate of R messages per second for D seconds (after one second of
 * warm-up). Each message carries its send time and a sequence number; every subscriber checks
 * that it gets each message once and in order, and the end-to-end latency (publisher's send
 * to subscriber's receive, same clock) goes into a histogram. With -p PID (repeatable) the
 * servers' CPU time over the measurement is read from /proc and divided by the deliveries.
 *
 *   build/cluster_fanout [-c 1000] [-r 200] [-d 5] [-s 64] [-p PID]... URL [URL...]
 *
 * URL is ws://host:port (no path). Prints one summary line of figures; exits 1 if a message
 * was lost, duplicated or reordered.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wsx.h"

#define MAX_URLS 8
#define MAX_PIDS 8
#define HIST_US  1000000 /* latencies up to 1 s, by the microsecond; above: the last bucket */

typedef struct sub {
    wsx_client *cl;
    uint64_t next; /* the sequence number expected */
    bool open;
} sub;

static struct {
    wsx_loop *loop;
    sub *subs;
    unsigned n_subs, n_open;
    wsx_client *pub;
    bool pub_open;
    unsigned rate, seconds;
    size_t size;
    uint64_t seq, start_ns, measure_ns, end_ns;
    uint64_t deliveries, lost, dups;
    uint32_t *hist;
    uint64_t hist_n, max_us;
    int pids[MAX_PIDS];
    int n_pids;
    double cpu0;
    bool cpu_started;
    wsx_timer *tick;
} B;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void)
{
    double total = 0;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < B.n_pids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", B.pids[i]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        /* Fields 14 and 15 (utime, stime) after the ')' that ends the command name. */
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            total += (double)(ut + st) / (double)hz;
    }
    return total;
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void sub_message(wsx_conn *c, const wsx_msg *m, void *user)
{
    (void)c;
    sub *s = user;
    if (m->len < 16) return;
    uint64_t seq = get64(m->data), sent = get64(m->data + 8), now = now_ns();
    if (seq < s->next)
        B.dups++;
    else {
        if (seq > s->next && s->next) B.lost += seq - s->next;
        s->next = seq + 1;
    }
    if (sent < B.measure_ns || now > B.end_ns) return;
    B.deliveries++;
    uint64_t us = (now - sent) / 1000;
    if (us > B.max_us) B.max_us = us;
    B.hist[us < HIST_US ? us : HIST_US]++;
    B.hist_n++;
}

static void sub_open(wsx_conn *c, void *user)
{
    (void)c;
    ((sub *)user)->open = true;
    B.n_open++;
}

static void pub_open(wsx_conn *c, void *user)
{
    (void)c;
    (void)user;
    B.pub_open = true;
}

static void on_end(wsx_client *cl, int err, const char *why, void *user)
{
    (void)cl;
    (void)user;
    if (err) fprintf(stderr, "cluster_fanout: a connection ended: %s\n", why ? why : "");
}

static double pct(double p)
{
    uint64_t want = (uint64_t)(p * (double)B.hist_n), seen = 0;
    for (uint32_t us = 0; us <= HIST_US; us++) {
        seen += B.hist[us];
        if (seen > want) return us / 1000.0;
    }
    return HIST_US / 1000.0;
}

static void finish(void)
{
    double cpu = cpu_seconds() - B.cpu0;
    double secs = (double)(B.end_ns - B.measure_ns) / 1e9;
    printf("subscribers %u  rate %u msg/s  size %zu  deliveries/s %.0f  p50 %.3f ms  p99 %.3f "
           "ms  max %.3f ms  lost %" PRIu64 "  dups %" PRIu64,
           B.n_subs, B.rate, B.size, (double)B.deliveries / secs, pct(0.5), pct(0.99),
           (double)B.max_us / 1000.0, B.lost, B.dups);
    if (B.n_pids && B.deliveries)
        printf("  server CPU %.2f s = %.2f us/delivery", cpu, cpu * 1e6 / (double)B.deliveries);
    printf("\n");
    for (unsigned i = 0; i < B.n_subs; i++)
        wsx_client_close(B.subs[i].cl, 1000, NULL);
    wsx_client_close(B.pub, 1000, NULL);
}

/* Every millisecond: the messages due by now at the rate, once everyone is connected. */
static void tick(wsx_timer *t, void *arg)
{
    (void)arg;
    if (B.n_open < B.n_subs || !B.pub_open) return;
    uint64_t now = now_ns();
    if (!B.start_ns) {
        B.start_ns = now;
        B.measure_ns = now + 1000000000u;
        B.end_ns = B.measure_ns + (uint64_t)B.seconds * 1000000000u;
    }
    if (now > B.end_ns + 500000000u) {
        wsx_timer_stop(t);
        finish();
        return;
    }
    if (now > B.end_ns) return;
    if (!B.cpu_started && now >= B.measure_ns) {
        /* The servers' CPU counts from the start of the measurement. */
        B.cpu0 = cpu_seconds();
        B.cpu_started = true;
    }
    uint64_t due = (now - B.start_ns) * B.rate / 1000000000u + 1;
    static uint8_t msg[1 << 16];
    while (B.seq < due) {
        put64(msg, ++B.seq);
        put64(msg + 8, now_ns());
        wsx_send(wsx_client_conn(B.pub), msg, B.size, WSX_BINARY);
    }
}

static wsx_client *open_client(const char *base, const char *path, wsx_open_cb on_open,
                               wsx_message_cb on_msg, void *user)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    wsx_client_opts o = wsx_client_defaults();
    o.url = url;
    o.on_open = on_open;
    o.on_message = on_msg;
    o.on_end = on_end;
    o.user = user;
    wsx_client *cl = NULL;
    wsx_error err;
    if (wsx_client_connect(B.loop, &o, &cl, &err) < 0) {
        fprintf(stderr, "cluster_fanout: %s: %s %s\n", url, wsx_strerror(err.code), err.detail);
        exit(2);
    }
    return cl;
}

int main(int argc, char **argv)
{
    B.n_subs = 1000;
    B.rate = 200;
    B.seconds = 5;
    B.size = 64;
    int ch;
    while ((ch = getopt(argc, argv, "c:r:d:s:p:")) != -1) {
        if (ch == 'c') B.n_subs = (unsigned)atoi(optarg);
        if (ch == 'r') B.rate = (unsigned)atoi(optarg);
        if (ch == 'd') B.seconds = (unsigned)atoi(optarg);
        if (ch == 's') B.size = (size_t)atoi(optarg);
        if (ch == 'p' && B.n_pids < MAX_PIDS) B.pids[B.n_pids++] = atoi(optarg);
        if (ch == '?') return 2;
    }
    int n_urls = argc - optind;
    if (n_urls < 1 || n_urls > MAX_URLS || !B.n_subs || !B.rate || B.size < 16 ||
        B.size > (1 << 16)) {
        fprintf(stderr, "usage: cluster_fanout [-c subs] [-r msg/s] [-d s] [-s 16..65536] "
                        "[-p pid]... ws://host:port...\n");
        return 2;
    }
    if (wsx_loop_new(&B.loop) < 0) return 1;
    B.subs = calloc(B.n_subs, sizeof *B.subs);
    B.hist = calloc(HIST_US + 1, sizeof *B.hist);
    if (!B.subs || !B.hist) return 1;
    for (unsigned i = 0; i < B.n_subs; i++)
        B.subs[i].cl = open_client(argv[optind + (int)(i % (unsigned)n_urls)], "/sub", sub_open,
                                   sub_message, &B.subs[i]);
    B.pub = open_client(argv[optind], "/pub", pub_open, NULL, NULL);
    wsx_timer_start(B.loop, 1, 1, tick, NULL, &B.tick);
    if (wsx_loop_run(B.loop) < 0) return 1;
    wsx_loop_free(B.loop);
    free(B.subs);
    free(B.hist);
    return B.lost || B.dups ? 1 : 0;
}
