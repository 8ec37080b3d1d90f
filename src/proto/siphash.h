/* SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash for hash tables whose keys
 * a peer chooses. Internal: used by the admission table (src/ws/admit.c) and the chat's room
 * table and name keys (src/chat). */
#ifndef WSX_PROTO_SIPHASH_H
#define WSX_PROTO_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of the len bytes at data under the 128-bit key (key[0] holds key bytes 0..7
 * little-endian, key[1] bytes 8..15), as the reference implementation computes it on any
 * host. Pure: no state, safe from any thread. data may be NULL when len is 0. */
uint64_t wsx__siphash(const uint64_t key[2], const void *data, size_t len);

#endif
