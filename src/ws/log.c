/*
 * The library's log lines, rate-limited per call site.
 *
 * Most lines are caused by peers (a refused connection, a failed handshake, a slow reader
 * dropped), so a hostile or merely numerous crowd decides how many there are: 1100 silent
 * sockets once made 90,485 warnings in 25 s. Each call site (its format string) of each
 * server or client therefore gets a one-second window with a small budget; what goes over
 * it is counted and reported with the site's next line, or by wsx__log_flush() once the
 * window has passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ws/ws.h"

#define LOG_SITES     16
#define LOG_WINDOW_MS 1000u
#define LOG_KEEP      160 /* bytes of the last suppressed line kept for the summary */

typedef struct logsite {
    const char *fmt;  /* the call site; NULL = free slot */
    uint64_t window;  /* start of the current window (ms) */
    uint64_t since;   /* when the first line now suppressed was dropped */
    uint32_t emitted; /* lines let through in the window */
    uint32_t dropped; /* lines suppressed since the last one let through */
    int level;        /* of the last suppressed line */
    char last[LOG_KEEP];
} logsite;

typedef struct wsx__lograte {
    logsite site[LOG_SITES];
} wsx__lograte;

/* Warnings and errors: one line a second per site; informational lines: ten (a burst of
 * distinct events, TLS failures say, stays readable). Debug lines are never limited. */
static uint32_t budget(int level)
{
    return level <= WSX_LOG_WARN ? 1u : 10u;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A line of connection c (NULL: none) whose message starts at line + off (after the peer):
 * to on_conn_log when there is one. */
static void emit_conn(const wsx__cfg *cfg, int level, const wsx_conn *c, size_t off,
                      const char *line)
{
    if (c && cfg->on_conn_log)
        cfg->on_conn_log(c, level, line + off, cfg->user);
    else if (cfg->on_log)
        cfg->on_log(level, line, cfg->user);
}

static void emit(const wsx__cfg *cfg, int level, const char *line)
{
    emit_conn(cfg, level, NULL, 0, line);
}

/* Reports what a site suppressed, with its last line, and starts a new window. */
static void summarize(const wsx__cfg *cfg, logsite *s, uint64_t now)
{
    char out[LOG_KEEP + 96];
    snprintf(out, sizeof out, "%s (the last of %u similar lines suppressed in %.1f s)", s->last,
             s->dropped, (double)(now - s->since) / 1000.0);
    s->dropped = 0;
    s->window = now;
    s->emitted = 1;
    emit(cfg, s->level, out);
}

static logsite *find_site(const wsx__cfg *cfg, wsx__lograte *rl, const char *fmt, uint64_t now)
{
    logsite *victim = &rl->site[0];
    for (size_t i = 0; i < LOG_SITES; i++) {
        logsite *s = &rl->site[i];
        if (s->fmt == fmt) return s;
        if (!s->fmt) {
            victim = s;
            break;
        }
        if (s->window < victim->window) victim = s;
    }
    /* More distinct sites than slots at once: the stalest gives its slot up, after saying
     * what it held back. */
    if (victim->fmt && victim->dropped) summarize(cfg, victim, now);
    memset(victim, 0, sizeof *victim);
    victim->fmt = fmt;
    victim->window = now;
    return victim;
}

static void log_line(const wsx__cfg *cfg, int level, const char *site, const char *line,
                     const wsx_conn *c, size_t off)
{
    if (level >= WSX_LOG_DEBUG) {
        emit_conn(cfg, level, c, off, line);
        return;
    }
    /* The table is allocated on the first line, so a client or server that never logs
     * (most clients) carries no table; the cfg itself lives in a mutable server or client. */
    wsx__cfg *mut = (wsx__cfg *)cfg;
    if (!mut->lograte && !(mut->lograte = calloc(1, sizeof *mut->lograte))) {
        emit_conn(cfg, level, c, off, line);
        return;
    }
    uint64_t now = mono_ms();
    logsite *s = find_site(cfg, mut->lograte, site, now);
    if (now - s->window >= LOG_WINDOW_MS) {
        s->window = now;
        s->emitted = 0;
        if (s->dropped) {
            char out[600];
            snprintf(out, sizeof out, "%s (%u similar lines suppressed in the %.1f s before)", line,
                     s->dropped, (double)(now - s->since) / 1000.0);
            s->dropped = 0;
            s->emitted = 1;
            emit_conn(cfg, level, c, off, out);
            return;
        }
    }
    if (s->emitted < budget(level)) {
        s->emitted++;
        emit_conn(cfg, level, c, off, line);
        return;
    }
    if (!s->dropped++) s->since = now;
    s->level = level;
    snprintf(s->last, sizeof s->last, "%s", line);
}

void wsx__log(const wsx__cfg *cfg, int level, const char *fmt, ...)
{
    if (!cfg->on_log || level > cfg->log_level) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_line(cfg, level, fmt, line, NULL, 0);
}

void wsx__conn_vlog(const wsx_conn *c, int level, const char *fmt, va_list ap)
{
    const wsx__cfg *cfg = wsx__cfg_of(c);
    if ((!cfg->on_log && !cfg->on_conn_log) || level > cfg->log_level) return;
    char peer[64];
    if (wsx_conn_peer(c, peer, sizeof peer) < 0) snprintf(peer, sizeof peer, "-");
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char line[512];
    int off = snprintf(line, sizeof line, "%s ", peer);
    snprintf(line + off, sizeof line - (size_t)off, "%s", msg);
    log_line(cfg, level, fmt, line, c, (size_t)off);
}

void wsx__conn_log(const wsx_conn *c, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    wsx__conn_vlog(c, level, fmt, ap);
    va_end(ap);
}

void wsx__log_flush(const wsx__cfg *cfg, bool final)
{
    wsx__lograte *rl = cfg->lograte;
    if (!rl || !cfg->on_log) return;
    uint64_t now = mono_ms();
    for (size_t i = 0; i < LOG_SITES; i++) {
        logsite *s = &rl->site[i];
        if (s->fmt && s->dropped && (final || now - s->window >= LOG_WINDOW_MS))
            summarize(cfg, s, now);
    }
}

void wsx__log_free(wsx__cfg *cfg)
{
    free(cfg->lograte);
    cfg->lograte = NULL;
}
