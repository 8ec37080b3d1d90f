/*
 * Sessions per client address (wsx_eio_opts.max_sessions_per_ip). A polling session holds
 * no connection between its requests, so the server's admission limits (connections per
 * address) do not bound how many sessions one client opens: this count does, keyed as
 * admission keys addresses (an IPv4 address, the /64 of an IPv6 one), so that one client
 * cannot take the whole max_sessions from everyone else.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "eio/session.h"
#include "proto/siphash.h"
#include "ws/ws.h"

/* The address key of a peer string ("1.2.3.4:5555", "[::1]:5555"); all zeros when it does
 * not parse (such peers then share one count). */
void wsx__eio_addr_key(const char *peer, uint8_t key[16])
{
    memset(key, 0, 16);
    char host[64];
    const char *end;
    if (peer[0] == '[') {
        end = strchr(peer, ']');
        peer++;
    } else {
        end = strrchr(peer, ':');
    }
    size_t n = end ? (size_t)(end - peer) : strlen(peer);
    if (n >= sizeof host) return;
    memcpy(host, peer, n);
    host[n] = 0;
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1)
        wsx__addr_key((const struct sockaddr *)&a4, key);
    else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1)
        wsx__addr_key((const struct sockaddr *)&a6, key);
}

static eio_addr **slot(wsx_eio *e, const uint8_t key[16])
{
    eio_addr **pp = &e->abuckets[wsx__siphash(e->key, key, 16) & (WSX__EIO_ADDR_BUCKETS - 1)];
    while (*pp && memcmp((*pp)->key, key, 16))
        pp = &(*pp)->next;
    return pp;
}

size_t wsx__eio_addr_count(wsx_eio *e, const uint8_t key[16])
{
    eio_addr *a = *slot(e, key);
    return a ? a->n : 0;
}

int wsx__eio_addr_add(wsx_eio *e, const uint8_t key[16])
{
    eio_addr **pp = slot(e, key);
    if (!*pp) {
        eio_addr *a = calloc(1, sizeof *a);
        if (!a) return WSX_ENOMEM;
        memcpy(a->key, key, 16);
        *pp = a;
    }
    (*pp)->n++;
    return 0;
}

void wsx__eio_addr_remove(wsx_eio *e, const uint8_t key[16])
{
    eio_addr **pp = slot(e, key);
    eio_addr *a = *pp;
    if (!a) return;
    if (--a->n == 0) {
        *pp = a->next;
        free(a);
    }
}

void wsx__eio_addr_free(wsx_eio *e)
{
    for (size_t i = 0; i < WSX__EIO_ADDR_BUCKETS; i++) {
        for (eio_addr *a = e->abuckets[i], *next; a; a = next) {
            next = a->next;
            free(a);
        }
        e->abuckets[i] = NULL;
    }
}
