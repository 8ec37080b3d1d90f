/*
 * Micro-benchmark of the protocol core (not a test): frame parse + in-place unmask of
 * client frames with 16 B, 1 KiB and 64 KiB payloads, and UTF-8 validation of ASCII and
 * mixed text. Each figure is printed next to memcpy of the same bytes, measured in the
 * same run, because absolute numbers on a shared machine mean little.
 *
 *   build/bench_proto [seconds-per-case]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wsx/proto.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile uint64_t sink;

/* Runs fn until `secs` have passed; returns bytes per second. */
typedef size_t (*bench_fn)(void *ctx);
static double rate(bench_fn fn, void *ctx, double secs)
{
    size_t bytes = 0;
    fn(ctx); /* warm up */
    double t0 = now(), t;
    do {
        for (int i = 0; i < 8; i++)
            bytes += fn(ctx);
        t = now();
    } while (t - t0 < secs);
    return (double)bytes / (t - t0);
}

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t payload;
    size_t frames;
    uint8_t *dst;
} frames_ctx;

static size_t parse_all(void *c)
{
    frames_ctx *f = c;
    wsx_parser p;
    wsx_parser_opts o = {.role = WSX_ROLE_SERVER};
    wsx_parser_init(&p, &o);
    size_t off = 0, got = 0;
    while (off < f->len) {
        wsx_event ev;
        ptrdiff_t n = wsx_parser_feed(&p, f->buf + off, f->len - off, &ev);
        if (n <= 0) abort();
        off += (size_t)n;
        got += ev.len;
        if (ev.len) sink += ev.data[0];
    }
    return got;
}

static size_t copy_all(void *c)
{
    frames_ctx *f = c;
    memcpy(f->dst, f->buf, f->len);
    sink += f->dst[f->len - 1];
    return f->frames * f->payload;
}

typedef struct {
    uint8_t *text;
    size_t len;
    uint8_t *dst;
} text_ctx;

static size_t validate(void *c)
{
    text_ctx *t = c;
    if (!wsx_utf8_valid(t->text, t->len)) abort();
    return t->len;
}

static size_t copy_text(void *c)
{
    text_ctx *t = c;
    memcpy(t->dst, t->text, t->len);
    sink += t->dst[0];
    return t->len;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.5;
    printf("# wsx bench_proto: %.2f s per case; MB/s of payload; memcpy of the same bytes in "
           "the same run\n",
           secs);
    printf("%-28s %12s %12s %10s %12s\n", "case", "MB/s", "memcpy MB/s", "ratio", "ns/frame");
    static const size_t sizes[] = {16, 1024, 65536};
    const size_t total = 8u << 20; /* 8 MiB of frames: bigger than L2, like real traffic */
    for (size_t s = 0; s < 3; s++) {
        frames_ctx f = {0};
        f.payload = sizes[s];
        size_t flen = sizes[s] + (sizes[s] < 126 ? 6 : sizes[s] < 65536 ? 8 : 14);
        f.frames = total / flen;
        f.len = f.frames * flen;
        f.buf = malloc(f.len);
        f.dst = malloc(f.len);
        uint8_t *payload = malloc(sizes[s]);
        for (size_t i = 0; i < sizes[s]; i++)
            payload[i] = (uint8_t)i;
        static const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
        for (size_t i = 0; i < f.frames; i++)
            if (wsx_frame_write(f.buf + i * flen, flen, 0x82, payload, sizes[s], key) !=
                (ptrdiff_t)flen)
                abort();
        double r = rate(parse_all, &f, secs);
        double m = rate(copy_all, &f, secs);
        char name[64];
        snprintf(name, sizeof name, "parse+unmask %zu B", sizes[s]);
        printf("%-28s %12.0f %12.0f %10.2f %12.1f\n", name, r / 1e6, m / 1e6, r / m,
               1e9 * (double)sizes[s] / r);
        free(payload);
        free(f.buf);
        free(f.dst);
    }
    const size_t tlen = 4u << 20;
    text_ctx t = {malloc(tlen), tlen, malloc(tlen)};
    for (size_t i = 0; i < tlen; i++)
        t.text[i] = (uint8_t)(' ' + i % 90);
    double r = rate(validate, &t, secs), m = rate(copy_text, &t, secs);
    printf("%-28s %12.0f %12.0f %10.2f %12s\n", "utf8 ASCII 4 MiB", r / 1e6, m / 1e6, r / m, "-");
    /* Mixed: roughly a third ASCII, the rest 2-, 3- and 4-byte characters. */
    static const char *pieces[] = {"hello ",           "\xc3\xa9t\xc3\xa9 ",
                                   "\xe2\x82\xac",     "\xe4\xb8\xad\xe6\x96\x87",
                                   "\xf0\x9f\x98\x80", "world "};
    size_t n = 0, k = 0;
    while (n < tlen - 8) {
        size_t pl = strlen(pieces[k % 6]);
        memcpy(t.text + n, pieces[k % 6], pl);
        n += pl;
        k++;
    }
    t.len = n;
    r = rate(validate, &t, secs);
    m = rate(copy_text, &t, secs);
    printf("%-28s %12.0f %12.0f %10.2f %12s\n", "utf8 mixed 4 MiB", r / 1e6, m / 1e6, r / m, "-");
    free(t.text);
    free(t.dst);
    return 0;
}
