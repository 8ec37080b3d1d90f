/*
 * The multi-loop runner of `wsx echo` and `wsx serve` (--threads N): N event loops, one per
 * thread, each with the same servers on the same port(s) (SO_REUSEPORT; the kernel spreads
 * connections over them). Port 0 is picked by the first loop and joined by the others.
 * Signals reach the first loop: SIGHUP reloads every server's certificates, SIGINT/SIGTERM
 * shut every loop's servers down (the others through a post), a second one exits at once
 * with status 1. The first loop runs until every other loop has finished, so that the
 * signals are still handled while another loop's clients take their time to close.
 *
 * Use: fill cmd, n_threads, shutdown_ms and the hooks, tool_runner_start(), wire what the
 * servers need (timers on t[k].loop, publish hooks on t[k].srvs[i]), tool_runner_run() (it
 * calls on_ready to announce the ports), do what must be done once the loops are finished,
 * tool_runner_free().
 */
#ifndef WSX_TOOL_RUNNER_H
#define WSX_TOOL_RUNNER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "tool.h"
#include "wsx.h"

#define TOOL_RUNNER_MAX_THREADS 64
#define TOOL_RUNNER_MAX_SERVERS 2

typedef struct tool_runner tool_runner;

typedef struct tool_runner_loop {
    wsx_loop *loop;
    wsx_server *srvs[TOOL_RUNNER_MAX_SERVERS]; /* n_srvs of them, in the order of the opts */
    pthread_t tid;
    tool_runner *r;
    unsigned index;
} tool_runner_loop;

struct tool_runner {
    /* Set by the caller before tool_runner_start(). */
    const char *cmd;      /* for messages: "echo", "serve" */
    unsigned n_threads;   /* 1 to TOOL_RUNNER_MAX_THREADS */
    uint32_t shutdown_ms; /* SIGINT/SIGTERM: time for clients to close */
    void *arg;            /* passed to the hooks */
    /* Optional. Runs first on each loop's thread (on the calling thread for loop 0). */
    void (*on_thread)(unsigned k, void *arg);
    /* Optional. Runs on loop k's thread when shutdown begins, before its servers shut down:
     * stop what would keep the loop alive (timers). */
    void (*on_stop)(unsigned k, void *arg);
    /* Optional. Runs on the calling thread once the signals are watched and the threads have
     * started, just before loop 0 runs: print the listening lines here, so that whoever
     * waits for them may signal the process at once. */
    void (*on_ready)(void *arg);

    /* Filled by tool_runner_start(). */
    size_t n_srvs;
    tool_runner_loop t[TOOL_RUNNER_MAX_THREADS];
    int signals;
    unsigned finished; /* loops 1.. whose run has returned (atomic) */
    wsx_timer *wait_others;
};

/* Creates n_threads loops and starts on each a server per opts[i] (n_opts at most
 * TOOL_RUNNER_MAX_SERVERS); reuseport is set when n_threads > 1. On failure prints why on
 * stderr ("wsx CMD: cannot listen on HOST:PORT: ..."), closes and frees what was started
 * and returns -1; else 0. */
int tool_runner_start(tool_runner *r, const wsx_server_opts *opts, size_t n_opts);

/* Watches the signals on loop 0 (before the threads start, so they inherit the mask), runs
 * loops 1.. on their threads and loop 0 on the calling thread, and joins the threads when
 * the loops have finished. Returns 0, or -1 if loop 0 failed (printed on stderr). A thread
 * that cannot be started exits the process with 1. */
int tool_runner_run(tool_runner *r);

/* Frees the servers and the loops (posts still queued on them are freed, not run). */
void tool_runner_free(tool_runner *r);

/* The options `wsx echo` and `wsx serve` take the same way besides TOOL_TLS_LONGOPTS and
 * TOOL_ADMIT_LONGOPTS: getopt_long values (above any command's own) of --quiet, --json-logs
 * and --threads; --no-deflate is 'D'. */
enum { TOOL_O_QUIET = 0x1200, TOOL_O_JSON_LOGS, TOOL_O_THREADS, TOOL_O_ACCESS_LOG };

/* What those options set besides the server options, the runner and the log. */
typedef struct tool_server_args {
    tool_tls tls;
    bool no_deflate; /* --no-deflate */
} tool_server_args;

/* Takes one of the options of a server command that the runner's users share: --quiet,
 * --json-logs and --access-log (g_log), --threads N (1 to max_threads, into r->n_threads),
 * --no-deflate, the TLS options (into a->tls) and the admission limits (into o). Returns -1 if ch
 * is not one of them, 0 if it was taken, else the exit status 2 after a usage message naming
 * r->cmd. */
int tool_runner_option(tool_runner *r, unsigned max_threads, wsx_server_opts *o,
                       tool_server_args *a, int ch, const char *arg);

#endif
