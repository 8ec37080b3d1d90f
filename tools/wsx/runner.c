/* The multi-loop runner shared by `wsx echo` and `wsx serve`; the contract is runner.h. */
#include "runner.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

static void free_started(tool_runner *r)
{
    for (unsigned k = 0; k < r->n_threads; k++) {
        tool_runner_loop *t = &r->t[k];
        if (!t->loop) continue;
        for (size_t i = 0; i < TOOL_RUNNER_MAX_SERVERS; i++) {
            if (!t->srvs[i]) continue;
            wsx_server_shutdown(t->srvs[i], 0);
            wsx_loop_run(t->loop);
            wsx_server_free(t->srvs[i]);
            t->srvs[i] = NULL;
        }
        wsx_loop_free(t->loop);
        t->loop = NULL;
    }
}

int tool_runner_start(tool_runner *r, const wsx_server_opts *opts, size_t n_opts)
{
    r->n_srvs = n_opts;
    r->signals = 0;
    r->finished = 0;
    r->wait_others = NULL;
    for (unsigned k = 0; k < r->n_threads; k++) {
        tool_runner_loop *t = &r->t[k];
        memset(t, 0, sizeof *t);
        t->r = r;
        t->index = k;
        int rc = wsx_loop_new(&t->loop);
        if (rc < 0) {
            fprintf(stderr, "wsx %s: %s\n", r->cmd, wsx_strerror(rc));
            free_started(r);
            return -1;
        }
        for (size_t i = 0; i < n_opts; i++) {
            wsx_server_opts so = opts[i];
            so.reuseport = r->n_threads > 1;
            /* Port 0 picks a free port for the first loop; the others join it. */
            if (k > 0) so.port = wsx_server_port(r->t[0].srvs[i]);
            wsx_error err;
            rc = wsx_server_start(t->loop, &so, &t->srvs[i], &err);
            int e = errno;
            if (rc == 0) continue;
            /* WSX_ESYS stands for errno: its text says which ("Cannot assign requested
             * address" for an address this machine does not have). */
            const char *why = rc == WSX_ESYS && e ? strerror(e) : wsx_strerror(rc);
            if (rc == WSX_ETLS)
                fprintf(stderr, "wsx %s: %s\n", r->cmd, err.detail);
            else if (so.host && strchr(so.host, ':'))
                fprintf(stderr, "wsx %s: cannot listen on [%s]:%u: %s\n", r->cmd, so.host, so.port,
                        why);
            else
                fprintf(stderr, "wsx %s: cannot listen on %s:%u: %s\n", r->cmd,
                        so.host && *so.host ? so.host : "*", so.port, why);
            free_started(r);
            return -1;
        }
    }
    return 0;
}

static void stop_loop(void *arg)
{
    tool_runner_loop *t = arg;
    tool_runner *r = t->r;
    if (r->on_stop) r->on_stop(t->index, r->arg);
    for (size_t i = 0; i < r->n_srvs; i++)
        wsx_server_shutdown(t->srvs[i], r->shutdown_ms);
}

/* Keeps loop 0 (the one that reads the signals) running while other loops still close
 * their connections: without it loop 0 would return as soon as its own were closed, and a
 * second signal would wait, blocked, until every other loop had finished. */
static void wait_others(wsx_timer *tm, void *arg)
{
    tool_runner *r = arg;
    if (__atomic_load_n(&r->finished, __ATOMIC_ACQUIRE) + 1 < r->n_threads) return;
    wsx_timer_stop(tm);
    r->wait_others = NULL;
}

static void on_signal(wsx_loop *loop, int signo, void *arg)
{
    tool_runner *r = arg;
    if (signo == SIGHUP) {
        /* Each loop's server holds its own certificate set. */
        for (unsigned k = 0; k < r->n_threads; k++)
            tool_reload_tls(r->t[k].srvs, r->n_srvs);
        return;
    }
    if (r->signals++) {
        tool_logf(WSX_LOG_WARN, "second signal: exiting now");
        exit(1);
    }
    size_t open = 0;
    for (size_t i = 0; i < r->n_srvs; i++)
        open += wsx_server_connections(r->t[0].srvs[i]);
    tool_logf(WSX_LOG_INFO, "%s: shutting down (%zu connections%s)",
              signo == SIGINT ? "SIGINT" : "SIGTERM", open,
              r->n_threads > 1 ? " on this thread" : "");
    stop_loop(&r->t[0]);
    if (r->n_threads > 1) wsx_timer_start(loop, 20, 20, wait_others, r, &r->wait_others);
    /* The other loops are still serving: the post runs (their servers keep them alive). */
    for (unsigned k = 1; k < r->n_threads; k++)
        wsx_loop_post(r->t[k].loop, stop_loop, &r->t[k]);
}

static void *run_thread(void *arg)
{
    tool_runner_loop *t = arg;
    if (t->r->on_thread) t->r->on_thread(t->index, t->r->arg);
    wsx_loop_run(t->loop);
    __atomic_fetch_add(&t->r->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

int tool_runner_run(tool_runner *r)
{
    /* Block the signals here before the other threads start, so they inherit the mask. */
    wsx_loop_on_signal(r->t[0].loop, on_signal, r);
    for (unsigned k = 1; k < r->n_threads; k++) {
        if (pthread_create(&r->t[k].tid, NULL, run_thread, &r->t[k]) != 0) {
            fprintf(stderr, "wsx %s: cannot start thread %u\n", r->cmd, k);
            exit(1);
        }
    }
    if (r->on_ready) r->on_ready(r->arg);
    if (r->on_thread) r->on_thread(0, r->arg);
    int rc = wsx_loop_run(r->t[0].loop);
    for (unsigned k = 1; k < r->n_threads; k++)
        pthread_join(r->t[k].tid, NULL);
    if (rc < 0) {
        fprintf(stderr, "wsx %s: event loop failed: %s\n", r->cmd, wsx_strerror(rc));
        return -1;
    }
    return 0;
}

void tool_runner_free(tool_runner *r)
{
    for (unsigned k = 0; k < r->n_threads; k++) {
        for (size_t i = 0; i < r->n_srvs; i++)
            wsx_server_free(r->t[k].srvs[i]);
        wsx_loop_free(r->t[k].loop);
        r->t[k].loop = NULL;
    }
}

int tool_runner_option(tool_runner *r, unsigned max_threads, wsx_server_opts *o,
                       tool_server_args *a, int ch, const char *arg)
{
    uint32_t v;
    switch (ch) {
    case TOOL_O_QUIET:
        g_log.quiet = true;
        return 0;
    case TOOL_O_JSON_LOGS:
        g_log.json = true;
        return 0;
    case TOOL_O_ACCESS_LOG:
        g_log.access = true;
        return 0;
    case 'D':
        a->no_deflate = true;
        return 0;
    case TOOL_O_THREADS:
        if (!parse_u32(arg, &v) || v < 1 || v > max_threads)
            return usage_error(r->cmd, "bad --threads '%s' (1 to %u)", arg, max_threads);
        r->n_threads = v;
        return 0;
    case TOOL_O_TLS_CERT:
    case TOOL_O_TLS_KEY:
    case TOOL_O_TLS_HS:
        return tool_tls_option(&a->tls, ch, arg, r->cmd) ? 0 : 2;
    case TOOL_O_MAX_PER_IP:
    case TOOL_O_MAX_HS_PER_IP:
    case TOOL_O_MAX_HS:
        return tool_admit_option(o, ch, arg, r->cmd) ? 0 : 2;
    default:
        return -1;
    }
}
