/*
 * The server's part of the process-wide budget of queued output (src/net/budget.c): when the
 * process is above it, the loop that notices asks its servers to drop their largest queues.
 */
#include <stdlib.h>

#include "ws/ws.h"

static int by_queue_desc(const void *a, const void *b)
{
    size_t qa = wsx__stream_queued(&(*(wsx_conn *const *)a)->stream);
    size_t qb = wsx__stream_queued(&(*(wsx_conn *const *)b)->stream);
    return qa < qb ? 1 : qa > qb ? -1 : 0;
}

/* A connection worth dropping: a WebSocket one that is not keeping up. Above the low-water
 * mark only, so that connections whose peers read what they are sent are never dropped for
 * what others queued; HTTP responses have limits of their own. */
static bool candidate(const wsx_conn *c)
{
    return (c->flags & WSX__F_OPENED) && c->state != WSX__DEAD &&
           wsx__stream_queued(&c->stream) > wsx__cfg_of(c)->low_water;
}

void wsx__server_shed(wsx__budget_hook *h, size_t excess)
{
    wsx_server *srv = wsx__container_of(h, wsx_server, budget);
    /* Runs only when the budget is crossed, so a scan and a sort of the candidates are fine:
     * the write path stays an add and a compare. */
    size_t n = 0;
    for (wsx_conn *c = srv->conns; c; c = c->next)
        n += candidate(c);
    if (!n) return;
    wsx_conn *largest = NULL;
    wsx_conn **v = malloc(n * sizeof *v);
    if (v) {
        size_t k = 0;
        for (wsx_conn *c = srv->conns; c; c = c->next)
            if (candidate(c)) v[k++] = c;
        qsort(v, n, sizeof *v, by_queue_desc);
    } else {
        /* No memory for the list: drop the largest one; the next check does the rest. */
        for (wsx_conn *c = srv->conns; c; c = c->next)
            if (candidate(c) && (!largest || by_queue_desc(&c, &largest) < 0)) largest = c;
        n = 1;
    }
    size_t freed = 0;
    for (size_t i = 0; i < n && freed < excess; i++) {
        wsx_conn *c = v ? v[i] : largest;
        size_t q = wsx__stream_queued(&c->stream);
        wsx__conn_log(c, WSX_LOG_WARN,
                      "send queue at %zu bytes, among the largest while the process is %zu bytes "
                      "over its budget of %zu queued bytes: closing (1008)",
                      q, excess - freed, wsx_max_queued_bytes());
        if (wsx__cfg_of(c)->stats) wsx__cfg_of(c)->stats->budget_closes++;
        wsx__conn_drop(c, WSX_CLOSE_POLICY, "process send budget exceeded");
        freed += q;
    }
    free(v);
}
