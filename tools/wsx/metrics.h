/*
 * /metrics and /healthz of the server commands (`wsx echo`, `wsx serve`): the Prometheus text
 * format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/), built from
 * small helpers and tables so that a command adds its own families (serve_metrics.c: the
 * chat's) without repeating the common ones.
 *
 * Counters of the library (wsx_server_stats) belong to each loop's servers, which only their
 * loop's thread may read: each loop copies them into a snapshot (under a mutex) when it
 * answers /metrics and, with several loops, once a second from a timer; /metrics sums the
 * snapshots. The close codes are counted by tool_log_close (any thread, atomically).
 */
#ifndef WSX_TOOL_METRICS_H
#define WSX_TOOL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runner.h"
#include "tool.h"

/* A growing text buffer. failed: out of memory (the text is then cut). */
typedef struct tool_mbuf {
    char *p;
    size_t len, cap;
    bool failed;
} tool_mbuf;

void tool_mbuf_printf(tool_mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tool_mbuf_free(tool_mbuf *b);

/* A family's "# HELP" and "# TYPE" lines (type "counter" or "gauge"); every family gets them
 * once, before its samples. */
void tool_metric_family(tool_mbuf *b, const char *name, const char *type, const char *help);
/* One sample "name{labels} value"; labels: NULL or 'k="v",...' already escaped. */
void tool_metric_u64(tool_mbuf *b, const char *name, const char *labels, uint64_t v);
void tool_metric_f(tool_mbuf *b, const char *name, const char *labels, double v);

/* A table row: one sample read from a struct at `off` (a uint64_t, or a size_t when
 * is_size). Rows of one family follow each other; the first of them carries type and help
 * (the others NULL), which tool_metric_rows prints once. */
typedef struct tool_metric_row {
    const char *name;
    const char *type; /* "counter", "gauge"; NULL: same family as the row before */
    const char *help;
    const char *labels; /* NULL: none */
    size_t off;
    bool is_size;
} tool_metric_row;
void tool_metric_rows(tool_mbuf *b, const tool_metric_row *rows, size_t n, const void *base);

/* Set up for the runner's loops (after tool_runner_start): the snapshots, and with several
 * loops a one-second snapshot timer on each. */
void tool_metrics_start(tool_runner *r);
/* On loop k's thread when shutdown begins (the runner's on_stop): stops its timer. */
void tool_metrics_stop(unsigned k);
/* Copies loop k's servers' counters into the snapshot (on loop k's thread). */
void tool_metrics_snapshot(unsigned k);
/* The counters of every loop's servers, summed; returns the topics of every loop. */
size_t tool_metrics_sum(wsx_server_stats *st);

/* Counts one WebSocket close by code (wsx_closes_total). Any thread. */
void tool_metrics_close(int code);

/* The families every server command has: connections, traffic, refusals, admission,
 * slow-consumer drops, ping timeouts, close codes, queued bytes (st: tool_metrics_sum's,
 * topics likewise), then the process_* families and wsx_build_info. */
void tool_metrics_common(tool_mbuf *b, const wsx_server_stats *st, size_t topics);

/* Answers r with the text of b (200, text/plain; version=0.0.4), or 500 if b failed;
 * frees b. */
void tool_metrics_respond(wsx_http_req *r, tool_mbuf *b);

/* Adds GET /metrics (public) and GET /healthz ("ok") to srv, for `wsx echo`; k is the loop
 * of srv. Returns false when out of memory. */
bool tool_metrics_routes(wsx_server *srv, unsigned k);

#endif
