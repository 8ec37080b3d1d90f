/*
 * The defaults of the options wsx_server_opts and wsx_client_opts share, in one table, and
 * the one way both resolve them: 0 is the default, UINT32_MAX a deadline that never comes
 * (kept as WSX__NEVER), SIZE_MAX (or anything past 32 bits) a count without limit.
 */
#include <stdint.h>

#include "ws/ws.h"

/* include/wsx.h documents each of these in brackets; keep the two in step. */
static const wsx__shared_opts defaults[2] = {
    [WSX_ROLE_SERVER] =
        {
            .max_message = 16u << 20,
            .max_frame = 0, /* the resolved max_message */
            .max_head = 8192,
            .high_water = 1u << 20,
            .low_water = 256u << 10,
            .hard_limit = 64u << 20,
            .max_fragments = 16384,
            .max_coalesced_pings = 64,
            .handshake_ms = 10000,
            .idle_ms = WSX__NEVER,
            .ping_ms = 30000,
            .pong_ms = 10000,
            .close_ms = 5000,
            .http_ms = 30000,
        },
    [WSX_ROLE_CLIENT] =
        {
            .max_message = 16u << 20,
            .max_frame = 0,
            .max_head = 8192,
            .high_water = 1u << 20,
            .low_water = 256u << 10,
            .hard_limit = 64u << 20,
            .max_fragments = 16384,
            .max_coalesced_pings = 64,
            .handshake_ms = 10000,
            .idle_ms = WSX__NEVER, /* the client has no idle limit */
            .ping_ms = WSX__NEVER, /* nor keepalive pings unless asked */
            .pong_ms = 10000,
            .close_ms = 5000,
            .http_ms = WSX__NEVER, /* nor HTTP keep-alive */
        },
};

static size_t size_or(size_t v, size_t def)
{
    return v ? v : def;
}

/* A count kept in 32 bits: 0 in cfg is no limit. */
static uint32_t count_or(size_t v, size_t def)
{
    if (v == 0) v = def;
    return v > UINT32_MAX - 1 ? 0 : (uint32_t)v;
}

static uint32_t ms_or(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

void wsx__cfg_resolve(wsx__cfg *cfg, int role, const wsx__shared_opts *given)
{
    const wsx__shared_opts *d = &defaults[role == WSX_ROLE_CLIENT];
    cfg->max_message = size_or(given->max_message, d->max_message);
    cfg->max_frame = size_or(given->max_frame, cfg->max_message);
    cfg->max_head = size_or(given->max_head, d->max_head);
    cfg->high_water = size_or(given->high_water, d->high_water);
    cfg->low_water = size_or(given->low_water, d->low_water);
    cfg->hard_limit = size_or(given->hard_limit, d->hard_limit);
    if (cfg->low_water > cfg->high_water) cfg->low_water = cfg->high_water;
    cfg->max_fragments = count_or(given->max_fragments, d->max_fragments);
    cfg->max_coalesced_pings = count_or(given->max_coalesced_pings, d->max_coalesced_pings);
    cfg->handshake_ms = ms_or(given->handshake_ms, d->handshake_ms);
    cfg->idle_ms = ms_or(given->idle_ms, d->idle_ms);
    cfg->ping_ms = ms_or(given->ping_ms, d->ping_ms);
    cfg->pong_ms = ms_or(given->pong_ms, d->pong_ms);
    cfg->close_ms = ms_or(given->close_ms, d->close_ms);
    cfg->http_ms = ms_or(given->http_ms, d->http_ms);
}
