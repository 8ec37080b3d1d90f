/*
 * Admission by client address: how many connections, and how many handshakes in progress,
 * each address holds on a server.
 *
 * A hash table keyed by address, plus a map from descriptor to table entry. The map is
 * what lets a connection find its entry again when it closes without a field in wsx_conn
 * (whose size is a design goal) and without asking the socket for its peer, which fails
 * once the peer has reset the connection: the stream keeps its descriptor open until its
 * on_close has returned, so the descriptor names the connection for its whole life.
 *
 * The hash is SipHash-2-4 with a per-server random key: addresses are chosen by clients,
 * and a predictable hash would let them pile every entry into one chain.
 */
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "proto/siphash.h"
#include "ws/ws.h"

typedef struct entry {
    uint8_t key[16];
    uint32_t next;    /* next entry of the chain, as index + 1; 0 ends it (or: free list) */
    uint32_t conns;   /* open connections from this address */
    uint32_t pending; /* of which handshakes in progress */
} entry;

#define FD_PENDING 0x80000000u
/* Accepted past the address's handshake limit, on probation: counted in conns, not in
 * pending, until it completes its first request or its grace runs out (docs/limits.md). */
#define FD_GRACE 0x40000000u
#define FD_FLAGS (FD_PENDING | FD_GRACE)

struct wsx__admit {
    uint64_t k[2];     /* hash key */
    uint32_t *buckets; /* entry index + 1 of each chain's head */
    size_t nbuckets;   /* a power of two */
    entry *entries;
    size_t nentries, capentries; /* used in use (free ones included) / allocated */
    uint32_t free_head;          /* free list of entries (index + 1) */
    size_t live;                 /* entries in use */
    uint32_t *fdmap; /* by descriptor: entry index + 1, | FD_PENDING while handshaking */
    uint32_t *since; /* by descriptor: loop time it went on probation (FD_GRACE); grown
                        only when a probation needs it, so most servers never allocate it */
    size_t nfd, nsince;
};

/* ---- keys ---- */

/* IPv4 addresses (and IPv4-mapped IPv6 ones, which is how a dual-stack listener sees IPv4
 * peers) count one by one. An IPv6 peer counts by its /64: a host, or a home behind one
 * router, commonly holds a whole /64 and could otherwise use a fresh address for each
 * connection. */
bool wsx__addr_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            memcpy(key, &a->sin6_addr, 16);
        else
            memcpy(key, &a->sin6_addr, 8);
        return true;
    }
    return false;
}

/* ---- the table ---- */

int wsx__admit_new(wsx__admit **out)
{
    wsx__admit *a = calloc(1, sizeof *a);
    if (!a) return WSX_ENOMEM;
    uint8_t seed[16];
    if (wsx_random_bytes(seed, sizeof seed) < 0) {
        free(a);
        return WSX_ECRYPTO;
    }
    memcpy(a->k, seed, sizeof a->k);
    *out = a;
    return 0;
}

void wsx__admit_free(wsx__admit *a)
{
    if (!a) return;
    free(a->buckets);
    free(a->entries);
    free(a->fdmap);
    free(a->since);
    free(a);
}

static uint32_t *bucket_of(wsx__admit *a, const uint8_t key[16])
{
    return &a->buckets[wsx__siphash(a->k, key, 16) & (a->nbuckets - 1)];
}

/* Keeps chains short: as many buckets as entries in use, doubling (amortised O(1)). */
static int grow_buckets(wsx__admit *a)
{
    if (a->live < a->nbuckets) return 0;
    size_t n = a->nbuckets ? a->nbuckets * 2 : 64;
    uint32_t *b = calloc(n, sizeof *b);
    if (!b) return a->nbuckets ? 0 : WSX_ENOMEM; /* a full table still works, only slower */
    free(a->buckets);
    a->buckets = b;
    a->nbuckets = n;
    for (size_t i = 0; i < a->nentries; i++) {
        entry *e = &a->entries[i];
        if (!e->conns) continue;
        uint32_t *head = bucket_of(a, e->key);
        e->next = *head;
        *head = (uint32_t)i + 1;
    }
    return 0;
}

static entry *find(wsx__admit *a, const uint8_t key[16])
{
    if (!a->nbuckets) return NULL;
    for (uint32_t i = *bucket_of(a, key); i; i = a->entries[i - 1].next)
        if (!memcmp(a->entries[i - 1].key, key, 16)) return &a->entries[i - 1];
    return NULL;
}

static entry *insert(wsx__admit *a, const uint8_t key[16])
{
    if (grow_buckets(a) < 0) return NULL;
    uint32_t idx;
    if (a->free_head) {
        idx = a->free_head - 1;
        a->free_head = a->entries[idx].next;
    } else {
        if (a->nentries == a->capentries) {
            size_t cap = a->capentries ? a->capentries * 2 : 64;
            if (cap > UINT32_MAX / 2) return NULL;
            entry *e = realloc(a->entries, cap * sizeof *e);
            if (!e) return NULL;
            a->entries = e;
            a->capentries = cap;
        }
        idx = (uint32_t)a->nentries++;
    }
    entry *e = &a->entries[idx];
    memcpy(e->key, key, 16);
    e->conns = e->pending = 0;
    uint32_t *head = bucket_of(a, key);
    e->next = *head;
    *head = idx + 1;
    a->live++;
    return e;
}

static void release(wsx__admit *a, entry *e)
{
    uint32_t idx = (uint32_t)(e - a->entries);
    for (uint32_t *pp = bucket_of(a, e->key); *pp; pp = &a->entries[*pp - 1].next) {
        if (*pp == idx + 1) {
            *pp = e->next;
            break;
        }
    }
    e->next = a->free_head;
    a->free_head = idx + 1;
    a->live--;
}

static int map_fd(wsx__admit *a, int fd)
{
    if ((size_t)fd < a->nfd) return 0;
    size_t n = a->nfd ? a->nfd : 256;
    while (n <= (size_t)fd)
        n *= 2;
    uint32_t *m = realloc(a->fdmap, n * sizeof *m);
    if (!m) return WSX_ENOMEM;
    memset(m + a->nfd, 0, (n - a->nfd) * sizeof *m);
    a->fdmap = m;
    a->nfd = n;
    return 0;
}

int wsx__admit_add(wsx__admit *a, int fd, const struct sockaddr *peer, size_t max_per_ip,
                   size_t max_pending_per_ip)
{
    uint8_t key[16];
    if (fd < 0 || !wsx__addr_key(peer, key)) return 0; /* not an IP peer: not counted */
    if (map_fd(a, fd) < 0) return WSX_ENOMEM;
    entry *e = find(a, key);
    if (e && e->conns >= max_per_ip) return WSX__ADMIT_PER_IP;
    if (e && e->pending >= max_pending_per_ip) return WSX__ADMIT_PENDING_PER_IP;
    if (!e && !(e = insert(a, key))) return WSX_ENOMEM;
    e->conns++;
    e->pending++;
    a->fdmap[fd] = (uint32_t)(e - a->entries + 1) | FD_PENDING;
    return 0;
}

int wsx__admit_add_grace(wsx__admit *a, int fd, const struct sockaddr *peer, size_t max_per_ip,
                         uint32_t now)
{
    uint8_t key[16];
    if (fd < 0 || !wsx__addr_key(peer, key)) return 0;
    if (map_fd(a, fd) < 0) return WSX_ENOMEM;
    if ((size_t)fd >= a->nsince) {
        uint32_t *t = realloc(a->since, a->nfd * sizeof *t);
        if (!t) return WSX_ENOMEM;
        a->since = t;
        a->nsince = a->nfd;
    }
    entry *e = find(a, key);
    if (e && e->conns >= max_per_ip) return WSX__ADMIT_PER_IP;
    if (!e && !(e = insert(a, key))) return WSX_ENOMEM;
    e->conns++;
    a->fdmap[fd] = (uint32_t)(e - a->entries + 1) | FD_GRACE;
    a->since[fd] = now;
    return 0;
}

int wsx__admit_grace_due(wsx__admit *a, int fd, uint32_t now, uint32_t grace_ms,
                         size_t max_pending_per_ip)
{
    if (fd < 0 || (size_t)fd >= a->nfd || !(a->fdmap[fd] & FD_GRACE)) return 0;
    /* Wrapping comparison, as deadlines: right for less than 24 days. */
    if ((int32_t)(now - a->since[fd] - grace_ms) < 0) return 0;
    entry *e = &a->entries[(a->fdmap[fd] & ~FD_FLAGS) - 1];
    if (e->pending >= max_pending_per_ip) return WSX__ADMIT_PENDING_PER_IP;
    /* A slot freed meanwhile: from now on it is an ordinary handshake in progress. */
    a->fdmap[fd] = (a->fdmap[fd] & ~FD_GRACE) | FD_PENDING;
    e->pending++;
    return 0;
}

bool wsx__admit_handshaken(wsx__admit *a, int fd)
{
    if (fd < 0 || (size_t)fd >= a->nfd || !(a->fdmap[fd] & FD_FLAGS)) return false;
    if (a->fdmap[fd] & FD_PENDING) a->entries[(a->fdmap[fd] & ~FD_FLAGS) - 1].pending--;
    a->fdmap[fd] &= ~FD_FLAGS;
    return true;
}

bool wsx__admit_remove(wsx__admit *a, int fd)
{
    if (fd < 0 || (size_t)fd >= a->nfd || !a->fdmap[fd]) return false;
    uint32_t v = a->fdmap[fd];
    a->fdmap[fd] = 0;
    entry *e = &a->entries[(v & ~FD_FLAGS) - 1];
    if (v & FD_PENDING) e->pending--;
    if (--e->conns == 0) release(a, e);
    return (v & FD_FLAGS) != 0;
}

size_t wsx__admit_addresses(const wsx__admit *a)
{
    return a->live;
}

void wsx__admit_count(const wsx__admit *a, const struct sockaddr *peer, size_t *conns,
                      size_t *pending)
{
    uint8_t key[16];
    *conns = *pending = 0;
    if (!wsx__addr_key(peer, key)) return;
    entry *e = find((wsx__admit *)a, key);
    if (e) {
        *conns = e->conns;
        *pending = e->pending;
    }
}
