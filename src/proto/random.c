/*
 * Unpredictable bytes for client masking keys and handshake nonces. RFC 6455 5.3 requires
 * masks an intermediary cannot predict, so they come from OpenSSL's CSPRNG; a pool amortises
 * the call so a mask costs a copy, not a system call.
 */
#include <string.h>

#include <openssl/rand.h>

#include "wsx/proto.h"

int wsx_random_bytes(uint8_t *out, size_t len)
{
    while (len > 0) {
        int n = len > 1u << 20 ? 1 << 20 : (int)len;
        if (RAND_bytes(out, n) != 1) return WSX_ECRYPTO;
        out += n;
        len -= (size_t)n;
    }
    return 0;
}

void wsx_maskgen_init(wsx_maskgen *g)
{
    g->pos = sizeof g->pool;
}

int wsx_maskgen_next(wsx_maskgen *g, uint8_t out[4])
{
    if (g->pos + 4 > sizeof g->pool) {
        int rc = wsx_random_bytes(g->pool, sizeof g->pool);
        if (rc < 0) return rc;
        g->pos = 0;
    }
    memcpy(out, g->pool + g->pos, 4);
    /* Used bytes are wiped so the pool never holds a key that was already handed out. */
    memset(g->pool + g->pos, 0, 4);
    g->pos += 4;
    return 0;
}
