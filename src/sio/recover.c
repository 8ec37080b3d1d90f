/*
 * Connection state recovery (Socket.IO 4.6+ connectionStateRecovery; docs/socketio.md):
 * every event packet emitted without an ack and not volatile gets an offset as its last
 * argument and is kept in its namespace's ring; a socket that ends for a recoverable reason
 * leaves a record (pid -> id, rooms); a CONNECT with {"pid","offset"} of a record still in
 * the window, whose offset is still in the ring, gets its id and rooms back and the packets
 * it missed. socket.io-adapter's SessionAwareAdapter does the same, bounded by time only;
 * here the ring and the records are bounded by count and bytes too.
 */
#include <stdlib.h>
#include <string.h>

#include "sio/sio_priv.h"

/* One packet of the ring, in one allocation: the struct, the attachment table, the room
 * names (the packet's rooms then its exclusions), then the bytes they point to. */
struct sio_rpkt {
    sio_rpkt *next;
    uint64_t at;
    size_t size;
    char offset[16];
    const char *text; /* the packet as wsx__sio_encode wrote it */
    size_t len;
    uint32_t n_bins;
    uint16_t n_rooms, n_except;
    wsx_sio_bin *bins;
    const char **rooms; /* n_rooms + n_except */
};

/* A socket that may come back. */
struct sio_rsess {
    sio_rsess *next;
    size_t size;
    uint64_t at; /* disconnected at (loop clock) */
    char pid[21], sid[21];
    uint32_t n_rooms;
    const char **rooms;
};

/* socket.io's RECOVERABLE_DISCONNECT_REASONS ("server shutting down" is one too, but a
 * server that shuts down keeps nothing). */
static bool recoverable(const char *reason)
{
    static const char *const r[] = {"transport error", "transport close", "forced close",
                                    "ping timeout"};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (strcmp(reason, r[i]) == 0) return true;
    return false;
}

static uint64_t now(const wsx_sio *io)
{
    return wsx_loop_now(io->loop);
}

/* Drops what is older than the window, and the oldest packets while over the bounds. */
static void prune(wsx_sio_nsp *n)
{
    const wsx_sio_opts *o = &n->io->o;
    uint64_t t = now(n->io);
    while (n->ring && (n->ring_n > o->recovery_max_packets ||
                       n->ring_bytes > o->recovery_max_bytes || n->ring->at + o->recovery_ms < t)) {
        sio_rpkt *p = n->ring;
        n->ring = p->next;
        if (!n->ring) n->ring_tail = NULL;
        n->ring_n--;
        n->ring_bytes -= p->size;
        free(p);
    }
    while (n->rsess &&
           (n->rsess_n > o->recovery_max_sessions || n->rsess_bytes > o->recovery_max_bytes ||
            n->rsess->at + o->recovery_ms < t)) {
        sio_rsess *r = n->rsess;
        n->rsess = r->next;
        if (!n->rsess) n->rsess_tail = NULL;
        n->rsess_n--;
        n->rsess_bytes -= r->size;
        free(r);
    }
}

void wsx__sio_recover_free(wsx_sio_nsp *n)
{
    while (n->ring) {
        sio_rpkt *p = n->ring;
        n->ring = p->next;
        free(p);
    }
    while (n->rsess) {
        sio_rsess *r = n->rsess;
        n->rsess = r->next;
        free(r);
    }
    n->ring_tail = NULL;
    n->rsess_tail = NULL;
    n->ring_n = n->ring_bytes = n->rsess_n = n->rsess_bytes = 0;
}

int wsx__sio_offset_new(wsx_sio_nsp *n, char out[16])
{
    /* Unique within the namespace's ring, short like the reference's (yeast). */
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";
    uint64_t v = ++n->next_offset;
    char tmp[16];
    int k = 0;
    do {
        tmp[k++] = digits[v & 63];
        v >>= 6;
    } while (v);
    for (int i = 0; i < k; i++)
        out[i] = tmp[k - 1 - i];
    out[k] = 0;
    return 0;
}

int wsx__sio_ring_add(wsx_sio_nsp *n, const char *offset, const char *text, size_t len,
                      const wsx_sio_bin *bins, size_t n_bins, const char *const *rooms,
                      size_t n_rooms, const char *const *except, size_t n_except,
                      const char *except_id)
{
    size_t n_ex = n_except + (except_id ? 1 : 0);
    if (n_bins > UINT32_MAX || n_rooms > UINT16_MAX || n_ex > UINT16_MAX) return WSX_EINVAL;
    size_t size =
        sizeof(sio_rpkt) + n_bins * sizeof(wsx_sio_bin) + (n_rooms + n_ex) * sizeof(char *) + len;
    for (size_t i = 0; i < n_bins; i++)
        size += bins[i].len;
    for (size_t i = 0; i < n_rooms; i++)
        size += strlen(rooms[i]) + 1;
    for (size_t i = 0; i < n_except; i++)
        size += strlen(except[i]) + 1;
    if (except_id) size += strlen(except_id) + 1;
    /* A packet larger than the whole ring is not kept: a client that misses it cannot be
     * recovered (its offset will not be found), as when the ring has moved past it. */
    if (size > n->io->o.recovery_max_bytes) return WSX_ETOOBIG;
    sio_rpkt *p = malloc(size);
    if (!p) return WSX_ENOMEM;
    memset(p, 0, sizeof *p);
    p->size = size;
    p->at = now(n->io);
    memcpy(p->offset, offset, strlen(offset) + 1);
    p->bins = (wsx_sio_bin *)(p + 1);
    p->rooms = (const char **)(p->bins + n_bins);
    char *b = (char *)(p->rooms + n_rooms + n_ex);
    p->n_bins = (uint32_t)n_bins;
    p->n_rooms = (uint16_t)n_rooms;
    p->n_except = (uint16_t)n_ex;
    memcpy(b, text, len);
    p->text = b;
    p->len = len;
    b += len;
    for (size_t i = 0; i < n_bins; i++) {
        if (bins[i].len) memcpy(b, bins[i].data, bins[i].len);
        p->bins[i] = (wsx_sio_bin){(const uint8_t *)b, bins[i].len};
        b += bins[i].len;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_rooms + n_ex; i++) {
        const char *r = i < n_rooms              ? rooms[i]
                        : i - n_rooms < n_except ? except[i - n_rooms]
                                                 : except_id;
        size_t rl = strlen(r) + 1;
        memcpy(b, r, rl);
        p->rooms[k++] = b;
        b += rl;
    }
    if (n->ring_tail)
        n->ring_tail->next = p;
    else
        n->ring = p;
    n->ring_tail = p;
    n->ring_n++;
    n->ring_bytes += size;
    prune(n);
    return 0;
}

void wsx__sio_persist(wsx_sio_socket *s, const char *reason)
{
    wsx_sio_nsp *n = s->nsp;
    if (!n->io->o.recovery_ms || n->io->freeing || !recoverable(reason)) return;
    size_t off = n->topic_len, size = sizeof(sio_rsess) + s->n_rooms * sizeof(char *);
    for (uint32_t i = 0; i < s->n_rooms; i++)
        size += strlen(wsx_sub_topic(wsx__sio_room(s, i)) + off) + 1;
    sio_rsess *r = malloc(size);
    if (!r) return; /* not recoverable then: the client gets a fresh socket */
    r->next = NULL;
    r->size = size;
    r->at = now(n->io);
    memcpy(r->pid, s->pid, sizeof r->pid);
    memcpy(r->sid, s->id, sizeof r->sid);
    r->n_rooms = s->n_rooms;
    r->rooms = (const char **)(r + 1);
    char *b = (char *)(r->rooms + s->n_rooms);
    for (uint32_t i = 0; i < s->n_rooms; i++) {
        const char *name = wsx_sub_topic(wsx__sio_room(s, i)) + off;
        size_t l = strlen(name) + 1;
        memcpy(b, name, l);
        r->rooms[i] = b;
        b += l;
    }
    if (n->rsess_tail)
        n->rsess_tail->next = r;
    else
        n->rsess = r;
    n->rsess_tail = r;
    n->rsess_n++;
    n->rsess_bytes += size;
    prune(n);
}

static bool has_room(const sio_rsess *r, const char *room)
{
    for (uint32_t i = 0; i < r->n_rooms; i++)
        if (strcmp(r->rooms[i], room) == 0) return true;
    return false;
}

/* socket.io-adapter's shouldIncludePacket. */
static bool include(const sio_rsess *r, const sio_rpkt *p)
{
    bool in = p->n_rooms == 0;
    for (uint16_t i = 0; i < p->n_rooms && !in; i++)
        in = has_room(r, p->rooms[i]);
    for (uint16_t i = 0; in && i < p->n_except; i++)
        if (has_room(r, p->rooms[p->n_rooms + i])) return false;
    return in;
}

int wsx__sio_restore(wsx_sio_socket *s, const json_t *auth)
{
    wsx_sio_nsp *n = s->nsp;
    const json_t *pid = json_object_get(auth, "pid"), *offset = json_object_get(auth, "offset");
    if (!n->io->o.recovery_ms || !json_is_string(pid) || !json_is_string(offset)) return 0;
    prune(n);
    sio_rsess *r = n->rsess, *prev = NULL;
    while (r && strcmp(r->pid, json_string_value(pid)) != 0)
        prev = r, r = r->next;
    if (!r) return 0;
    const sio_rpkt *p = n->ring;
    while (p && strcmp(p->offset, json_string_value(offset)) != 0)
        p = p->next;
    if (!p) return 0; /* the offset is too old: a fresh socket */
    /* The record is used up (the reference keeps it until it expires, so two clients could
     * restore one id). */
    if (prev)
        prev->next = r->next;
    else
        n->rsess = r->next;
    if (n->rsess_tail == r) n->rsess_tail = prev;
    n->rsess_n--;
    n->rsess_bytes -= r->size;
    memcpy(s->id, r->sid, sizeof s->id);
    memcpy(s->pid, r->pid, sizeof s->pid);
    int rc = wsx__sio_socket_subscribe(s);
    for (uint32_t i = 0; i < r->n_rooms && rc == 0; i++) {
        rc = wsx_sio_join(s, r->rooms[i]);
        if (rc == WSX_ELIMIT) rc = 0;
    }
    /* Missed packets go first, then the CONNECT answer (the reference's order). */
    wsx_sio *io = n->io;
    for (p = p->next; p && rc == 0; p = p->next) {
        if (!include(r, p)) continue;
        rc = io->ops->send(s->client->sess, p->text, p->len, false);
        for (uint32_t i = 0; i < p->n_bins && (rc == 0 || rc == WSX_EBACKPRESSURE); i++)
            rc = io->ops->send(s->client->sess, p->bins[i].data, p->bins[i].len, true);
        if (rc == WSX_EBACKPRESSURE) rc = 0;
    }
    free(r);
    if (rc < 0) return rc;
    s->recovered = true;
    return 1;
}
