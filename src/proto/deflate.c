/*
 * permessage-deflate (RFC 7692): negotiating the extension's parameters, and compressing
 * and inflating messages with zlib's raw DEFLATE.
 */
#define ZLIB_CONST
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http_priv.h"
#include "wsx/deflate.h"

static const char pmd_name[] = "permessage-deflate";

/* RFC 7692 7.2.2: what the sender removed and the receiver puts back. */
static const uint8_t pmd_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* zlib cannot compress with a 256-byte window: deflateInit2() refuses raw windowBits 8
 * (zlib >= 1.2.9) or silently used 9 (before). So our compressor's window is at least 9. */
#define MIN_OWN_BITS 9

wsx_pmd_config wsx_pmd_defaults(void)
{
    wsx_pmd_config c;
    memset(&c, 0, sizeof c);
    c.enabled = false;
    c.server_max_window_bits = 15;
    c.client_max_window_bits = 15;
    c.mem_level = 8;
    c.level = 6;
    c.threshold = 64;
    return c;
}

/* ---- parameters ----------------------------------------------------------------------- */

enum { P_SNCT = 1u, P_CNCT = 2u, P_SMWB = 4u, P_CMWB = 8u };

typedef struct pmd_elem {
    unsigned seen; /* P_* bits */
    int smwb;      /* server_max_window_bits value, 0 when absent */
    int cmwb;      /* client_max_window_bits value, 0 when absent or without a value */
} pmd_elem;

/* The local settings, checked and with 0 replaced by the default. */
typedef struct pmd_cfg {
    int sbits, cbits; /* 8..15 */
    int mem_level, level;
} pmd_cfg;

static bool is_pmd(const wsx_ext_offer *o)
{
    return wsx__ascii_ieq(o->name, o->name_len, pmd_name, sizeof pmd_name - 1);
}

static bool name_is(const wsx_ext_param *p, const char *name)
{
    return wsx__ascii_ieq(p->name, p->name_len, name, strlen(name));
}

/* RFC 7692 7.1.2.1, 7.1.2.2: "a decimal integer value without leading zeroes between 8 to
 * 15, inclusive". Returns the value, or 0 when the value is missing or not that. */
static int window_bits(const wsx_ext_param *p)
{
    const char *v = p->value;
    if (!v) return 0;
    if (p->value_len == 1 && (v[0] == '8' || v[0] == '9')) return v[0] - '0';
    if (p->value_len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return 0;
}

/*
 * Reads one permessage-deflate element's parameters. Returns NULL, or why the element is
 * unacceptable. The rules are the same for offers and responses (RFC 7692 7.1); the only
 * difference, a client_max_window_bits without a value, is left to the caller.
 */
static const char *parse_elem(const wsx_ext_offer *o, pmd_elem *e)
{
    memset(e, 0, sizeof *e);
    for (size_t i = 0; i < o->n_params; i++) {
        const wsx_ext_param *p = &o->params[i];
        unsigned bit;
        if (name_is(p, "server_no_context_takeover"))
            bit = P_SNCT;
        else if (name_is(p, "client_no_context_takeover"))
            bit = P_CNCT;
        else if (name_is(p, "server_max_window_bits"))
            bit = P_SMWB;
        else if (name_is(p, "client_max_window_bits"))
            bit = P_CMWB;
        else
            return "unknown permessage-deflate parameter";
        /* RFC 7692 7: an element with a parameter twice is invalid. */
        if (e->seen & bit) return "duplicate permessage-deflate parameter";
        e->seen |= bit;
        switch (bit) {
        case P_SNCT:
            /* RFC 7692 7.1.1.1, 7.1.1.2: these parameters have no value. */
            if (p->value) return "server_no_context_takeover takes no value";
            break;
        case P_CNCT:
            if (p->value) return "client_no_context_takeover takes no value";
            break;
        case P_SMWB:
            e->smwb = window_bits(p);
            if (!e->smwb) return "invalid server_max_window_bits";
            break;
        default:
            /* RFC 7692 7.1.2.2: in an offer the value is optional. */
            if (p->value) {
                e->cmwb = window_bits(p);
                if (!e->cmwb) return "invalid client_max_window_bits";
            }
            break;
        }
    }
    return NULL;
}

static int check_bits(int v, int *out)
{
    if (v == 0) v = 15;
    if (v < 8 || v > 15) return WSX_EINVAL;
    *out = v;
    return 0;
}

static int check_cfg(const wsx_pmd_config *cfg, pmd_cfg *c)
{
    if (!cfg) return WSX_EINVAL;
    if (check_bits(cfg->server_max_window_bits, &c->sbits) ||
        check_bits(cfg->client_max_window_bits, &c->cbits))
        return WSX_EINVAL;
    c->mem_level = cfg->mem_level ? cfg->mem_level : 8;
    c->level = cfg->level ? cfg->level : 6;
    if (c->mem_level < 1 || c->mem_level > 9 || c->level < 1 || c->level > 9) return WSX_EINVAL;
    return 0;
}

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/* Writes the element for p: "permessage-deflate" and the parameters that say something. */
static ptrdiff_t write_elem(char *out, size_t cap, bool snct, bool cnct, int smwb, int cmwb,
                            bool cmwb_bare)
{
    wsx__out o;
    wsx__out_init(&o, out, cap);
    wsx__out_str(&o, pmd_name);
    if (snct) wsx__out_str(&o, "; server_no_context_takeover");
    if (cnct) wsx__out_str(&o, "; client_no_context_takeover");
    if (smwb) {
        wsx__out_str(&o, "; server_max_window_bits=");
        wsx__out_uint(&o, (unsigned long)smwb);
    }
    if (cmwb || cmwb_bare) {
        wsx__out_str(&o, "; client_max_window_bits");
        if (cmwb) {
            wsx__out_str(&o, "=");
            wsx__out_uint(&o, (unsigned long)cmwb);
        }
    }
    ptrdiff_t n = wsx__out_end(&o);
    /* The value is handed on as a C string: the NUL must fit too. */
    if (n >= 0 && (size_t)n >= cap) return WSX_ENOSPC;
    return n;
}

/* ---- server --------------------------------------------------------------------------- */

int wsx_pmd_server_negotiate(const wsx_ext_offer *offers, size_t n, const wsx_pmd_config *cfg,
                             wsx_pmd_params *out, char *resp, size_t cap)
{
    pmd_cfg c;
    if (cap) resp[0] = '\0';
    if (check_cfg(cfg, &c)) return WSX_EINVAL;
    if (!cfg->enabled) return 0;
    int own = max_int(c.sbits, MIN_OWN_BITS);

    /* RFC 7692 5.1: offers are in the client's order of preference; take the first one we
     * can accept, declining (skipping) the others. */
    for (size_t i = 0; i < n; i++) {
        pmd_elem e;
        if (!is_pmd(&offers[i]) || parse_elem(&offers[i], &e)) continue;

        wsx_pmd_params p;
        memset(&p, 0, sizeof p);
        int smwb = 0, cmwb = 0;
        if (e.seen & P_SMWB) {
            /* RFC 7692 7.1.2.1: accepting means answering with the same or a smaller value,
             * and using no larger window. A client limit of 8 cannot be met by zlib (see
             * MIN_OWN_BITS), so such an offer is declined; a client that can live without
             * it usually sends a second offer. */
            smwb = min_int(e.smwb, own);
            if (smwb < MIN_OWN_BITS) continue;
            p.server_max_window_bits = (uint8_t)smwb;
        } else {
            /* RFC 7692 7.1.2.1 lets a server announce a smaller window unasked; the client's
             * decompressor may then be smaller. */
            p.server_max_window_bits = (uint8_t)own;
            if (own < 15) smwb = own;
        }
        /* RFC 7692 7.1.1.1: a requested server_no_context_takeover must be granted. */
        p.server_no_context_takeover = (e.seen & P_SNCT) || cfg->server_no_context_takeover;
        /* RFC 7692 7.1.1.2: the server may impose client_no_context_takeover; an offered one
         * is a promise, echoed so that it binds and our decompressor can be trimmed. */
        p.client_no_context_takeover = (e.seen & P_CNCT) || cfg->client_no_context_takeover;
        if (e.seen & P_CMWB) {
            /* RFC 7692 7.1.2.2: an offered value is the most the client will use; we may
             * lower it. Naming 15 would say nothing, so it is left out. */
            int cw = c.cbits;
            if (e.cmwb && e.cmwb < cw) cw = e.cmwb;
            p.client_max_window_bits = (uint8_t)cw;
            if (cw < 15) cmwb = cw;
        } else {
            /* RFC 7692 7.1.2.2: without the parameter in the offer the response must not
             * carry it, so the client may use the full window whatever we prefer. */
            p.client_max_window_bits = 15;
        }
        ptrdiff_t len = write_elem(resp, cap, p.server_no_context_takeover,
                                   p.client_no_context_takeover, smwb, cmwb, false);
        if (len < 0) {
            if (cap) resp[0] = '\0';
            return (int)len;
        }
        *out = p;
        return 1;
    }
    return 0;
}

/* ---- client --------------------------------------------------------------------------- */

ptrdiff_t wsx_pmd_client_offer(const wsx_pmd_config *cfg, char *out, size_t cap)
{
    pmd_cfg c;
    if (check_cfg(cfg, &c)) return WSX_EINVAL;
    if (!cfg->enabled) {
        if (!cap) return WSX_ENOSPC;
        out[0] = '\0';
        return 0;
    }
    int own = max_int(c.cbits, MIN_OWN_BITS);
    /* RFC 7692 7.1.2.2: client_max_window_bits (bare, or with our own limit as a value)
     * tells the server it may limit our window; we always can, so we always say so. */
    return write_elem(out, cap, cfg->server_no_context_takeover, cfg->client_no_context_takeover,
                      c.sbits < 15 ? c.sbits : 0, own < 15 ? own : 0, true);
}

static int refuse(const char **why, const char *reason)
{
    *why = reason;
    return WSX_EHANDSHAKE;
}

int wsx_pmd_client_accept(const char *value, size_t len, const wsx_pmd_config *cfg,
                          wsx_pmd_params *out, const char **why)
{
    const char *ignored;
    pmd_cfg c;
    if (!why) why = &ignored;
    *why = NULL;
    if (check_cfg(cfg, &c)) return WSX_EINVAL;

    wsx_ext_offer ext[WSX_MAX_EXT_OFFERS];
    size_t n = 0;
    if (value && wsx_ext_parse(value, len, ext, WSX_MAX_EXT_OFFERS, &n))
        return refuse(why, "malformed Sec-WebSocket-Extensions");
    const wsx_ext_offer *chosen = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!is_pmd(&ext[i])) continue;
        /* RFC 7692 5: the server accepts at most one of the offers. */
        if (chosen) return refuse(why, "permessage-deflate accepted more than once");
        chosen = &ext[i];
    }
    if (!chosen) return 0;
    /* RFC 6455 9.1: a server may only choose what was offered. */
    if (!cfg->enabled) return refuse(why, "permessage-deflate was not offered");

    pmd_elem e;
    const char *bad = parse_elem(chosen, &e);
    if (bad) return refuse(why, bad);
    /* RFC 7692 7.1.1.1: a server accepting our server_no_context_takeover says so. */
    if (cfg->server_no_context_takeover && !(e.seen & P_SNCT))
        return refuse(why, "server_no_context_takeover missing from the response");
    if (c.sbits < 15) {
        /* RFC 7692 7.1.2.1: accepting our limit means naming it or a smaller value; our
         * decompressor is sized for it. */
        if (!(e.seen & P_SMWB))
            return refuse(why, "server_max_window_bits missing from the response");
        if (e.smwb > c.sbits) return refuse(why, "server_max_window_bits above the offered value");
    }
    /* RFC 7692 7.1.2.2: in a response the parameter must have a value. */
    if ((e.seen & P_CMWB) && !e.cmwb) return refuse(why, "client_max_window_bits without a value");

    wsx_pmd_params p;
    memset(&p, 0, sizeof p);
    p.server_no_context_takeover = (e.seen & P_SNCT) != 0;
    /* We offered client_no_context_takeover as a promise (RFC 7692 7.1.1.2) and keep it
     * whether or not the server repeats it. */
    p.client_no_context_takeover = (e.seen & P_CNCT) || cfg->client_no_context_takeover;
    p.server_max_window_bits = (uint8_t)((e.seen & P_SMWB) ? e.smwb : 15);
    int cw = max_int(c.cbits, MIN_OWN_BITS);
    if (e.cmwb && e.cmwb < cw) cw = e.cmwb;
    p.client_max_window_bits = (uint8_t)cw;
    *out = p;
    return 1;
}

/* ---- contexts ------------------------------------------------------------------------- */

/* A zlib stream on the heap (zlib keeps a pointer back to it, so it cannot live inside a
 * wsx_pmd that its owner may move) with a count of what zlib allocated. */
typedef struct zctx {
    z_stream s;
    size_t mem;
} zctx;

/* Each zlib allocation carries its size in front, for wsx_pmd_memory(). */
#define ZHDR sizeof(max_align_t)

static voidpf zalloc_cb(voidpf opaque, uInt items, uInt size)
{
    zctx *c = opaque;
    if (size && items > (SIZE_MAX - ZHDR) / size) return Z_NULL;
    size_t n = (size_t)items * size;
    unsigned char *p = malloc(n + ZHDR);
    if (!p) return Z_NULL;
    memcpy(p, &n, sizeof n);
    c->mem += n;
    return p + ZHDR;
}

static void zfree_cb(voidpf opaque, voidpf ptr)
{
    zctx *c = opaque;
    unsigned char *p = (unsigned char *)ptr - ZHDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    c->mem -= n;
    free(p);
}

static zctx *zctx_new(void)
{
    zctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->s.zalloc = zalloc_cb;
    c->s.zfree = zfree_cb;
    c->s.opaque = c;
    return c;
}

static size_t zctx_size(const void *p)
{
    const zctx *c = p;
    return c ? sizeof *c + c->mem : 0;
}

enum { INF_IDLE, INF_MSG, INF_END, INF_FAILED };

int wsx_pmd_init(wsx_pmd *z, int role, const wsx_pmd_params *params, const wsx_pmd_config *cfg)
{
    wsx_pmd_config defaults = wsx_pmd_defaults();
    pmd_cfg c;
    if (!cfg) cfg = &defaults;
    if (check_cfg(cfg, &c)) return WSX_EINVAL;
    if (role != WSX_ROLE_SERVER && role != WSX_ROLE_CLIENT) return WSX_EINVAL;
    int sb = params->server_max_window_bits, cb = params->client_max_window_bits;
    if (sb < 8 || sb > 15 || cb < 8 || cb > 15) return WSX_EINVAL;

    bool server = role == WSX_ROLE_SERVER;
    memset(z, 0, sizeof *z);
    z->threshold = cfg->threshold;
    z->level = (int8_t)c.level;
    z->mem_level = (uint8_t)c.mem_level;
    z->def_bits = (uint8_t)(server ? sb : cb);
    z->def_no_ctx =
        server ? params->server_no_context_takeover : params->client_no_context_takeover;
    /* A decompressor with a larger window accepts everything a smaller one does. 8 is
     * raised to 9 because zlib before 1.2.9 compressed with 9 when asked for 8, and peers
     * built on it still do. */
    z->inf_bits = (uint8_t)max_int(server ? cb : sb, MIN_OWN_BITS);
    z->inf_no_ctx =
        server ? params->client_no_context_takeover : params->server_no_context_takeover;
    z->inf_state = INF_IDLE;
    return 0;
}

void wsx_pmd_free(wsx_pmd *z)
{
    zctx *c = z->def;
    if (c) {
        deflateEnd(&c->s);
        free(c);
        z->def = NULL;
    }
    c = z->inf;
    if (c) {
        inflateEnd(&c->s);
        free(c);
        z->inf = NULL;
    }
    z->inf_state = INF_IDLE;
    z->err = NULL;
}

void wsx_pmd_buf_free(wsx_pmd_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Makes room for at least `need` more bytes, doubling the capacity where that stays within
 * len + limit (or len + need, if more). */
static bool buf_grow(wsx_pmd_buf *b, size_t need, size_t limit)
{
    if (b->cap - b->len >= need) return true;
    if (need > SIZE_MAX - b->len) return false;
    if (limit < need) limit = need;
    size_t cap = b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2;
    if (cap < b->len + need) cap = b->len + need;
    if (limit < SIZE_MAX - b->len && cap > b->len + limit) cap = b->len + limit;
    uint8_t *d = realloc(b->data, cap);
    if (!d) return false;
    b->data = d;
    b->cap = cap;
    return true;
}

static uInt clamp_uint(size_t n)
{
    return n > UINT_MAX ? UINT_MAX : (uInt)n;
}

static zctx *deflater(wsx_pmd *z)
{
    if (z->def) return z->def;
    zctx *c = zctx_new();
    if (!c) return NULL;
    /* Negative windowBits: raw DEFLATE, no zlib header or checksum (RFC 7692 7.2.1). */
    if (deflateInit2(&c->s, z->level, Z_DEFLATED, -(int)z->def_bits, z->mem_level,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(c);
        return NULL;
    }
    z->def = c;
    return c;
}

int wsx_pmd_compress(wsx_pmd *z, const uint8_t *in, size_t len, wsx_pmd_buf *out)
{
    /* RFC 7692 6: each message may be sent compressed or not; below the threshold the
     * bytes saved are not worth the CPU. A window limited to 8 bits cannot be honoured
     * by zlib (MIN_OWN_BITS), so that direction stays uncompressed. */
    if (len < z->threshold || z->def_bits < MIN_OWN_BITS) return 0;
    if (len == 0) {
        /* RFC 7692 7.2.3.6: an empty message is a lone empty stored block, 0x00 once the
         * tail is removed. zlib would emit nothing here right after a flush (it skips
         * repeated flushes), and no compressor state is needed for it. Without context
         * takeover it is no smaller than the message, so it is not sent compressed. */
        if (z->def_no_ctx) return 0;
        if (!buf_grow(out, 1, SIZE_MAX)) return WSX_ENOMEM;
        out->data[out->len++] = 0x00;
        return 1;
    }
    zctx *c = deflater(z);
    if (!c) return WSX_ENOMEM;
    z_stream *s = &c->s;
    size_t start = out->len, left = len;
    int rc = WSX_ENOMEM;

    /* Small messages get their worst case at once; large ones start at a quarter (typical
     * text compresses to less) and double, up to the worst case (plus the flush marker). */
    size_t bound = (size_t)deflateBound(s, (uLong)len) + 64;
    if (bound < len) bound = SIZE_MAX;
    if (!buf_grow(out, len <= 65536 ? bound : len / 4 + 4096, bound)) goto fail;
    for (;;) {
        if (out->cap == out->len) {
            size_t made = out->len - start;
            size_t rest = made < bound && bound - made > 4096 ? bound - made : 4096;
            if (!buf_grow(out, 4096, rest)) goto fail;
        }
        uInt in_n = clamp_uint(left), out_n = clamp_uint(out->cap - out->len);
        s->next_in = in + (len - left);
        s->avail_in = in_n;
        s->next_out = out->data + out->len;
        s->avail_out = out_n;
        /* RFC 7692 7.2.1: the message ends with a sync flush (an empty stored block ending
         * in 00 00 ff ff), so it ends on a byte boundary and the block is not final. */
        int r = deflate(s, left == in_n ? Z_SYNC_FLUSH : Z_NO_FLUSH);
        left -= in_n - s->avail_in;
        out->len += out_n - s->avail_out;
        if (r == Z_STREAM_ERROR) {
            rc = WSX_EINVAL;
            goto fail;
        }
        /* With space left over, the flush is complete. (If it completed exactly at the end
         * of the space, the next call may add a second empty block; that stays valid.) */
        if (left == 0 && s->avail_out > 0) break;
        /* Input and space both left, yet no progress: zlib is broken; do not spin. */
        if (r == Z_BUF_ERROR && s->avail_out > 0) {
            rc = WSX_EINVAL;
            goto fail;
        }
    }
    if (out->len - start < 4 || memcmp(out->data + out->len - 4, pmd_tail, 4) != 0) {
        rc = WSX_EINVAL;
        goto fail;
    }
    out->len -= 4;
    if (z->def_no_ctx) {
        /* RFC 7692 7.1.1: no context takeover: the next message starts from an empty
         * window. Nothing then depends on this message, so if compressing did not pay,
         * send it as it is. */
        deflateReset(s);
        if (out->len - start >= len) {
            out->len = start;
            return 0;
        }
    }
    return 1;

fail:
    /* A stream that starts over never refers to what the peer did not receive. */
    deflateReset(s);
    out->len = start;
    return rc;
}

static zctx *inflater(wsx_pmd *z)
{
    if (z->inf) return z->inf;
    zctx *c = zctx_new();
    if (!c) return NULL;
    if (inflateInit2(&c->s, -(int)z->inf_bits) != Z_OK) {
        free(c);
        return NULL;
    }
    z->inf = c;
    return c;
}

static int inf_fail(wsx_pmd *z, int rc, const char *why)
{
    z->inf_state = INF_FAILED;
    z->err = why;
    return rc;
}

/*
 * Inflates in[0..len) into out, never letting the message's output exceed max bytes: zlib
 * gets at most the remaining allowance as output space, and once that is used up, a
 * one-byte probe on the stack tells whether anything more would come out.
 */
static int inflate_run(wsx_pmd *z, zctx *c, const uint8_t *in, size_t len, bool text, uint64_t max,
                       wsx_pmd_buf *out)
{
    z_stream *s = &c->s;
    size_t left = len;
    for (;;) {
        uint64_t allowed = max ? max - z->msg_out : UINT64_MAX;
        size_t allow = allowed > SIZE_MAX ? SIZE_MAX : (size_t)allowed;
        uint8_t probe;
        uint8_t *dst = &probe;
        size_t room = 1;
        if (allow) {
            if (out->cap == out->len) {
                size_t step = out->cap > 4096 ? out->cap : 4096;
                if (!buf_grow(out, step < allow ? step : allow, allow))
                    return inf_fail(z, WSX_ENOMEM, "out of memory");
            }
            dst = out->data + out->len;
            room = out->cap - out->len;
            if (room > allow) room = allow;
        }
        uInt in_n = clamp_uint(left), out_n = clamp_uint(room);
        s->next_in = in + (len - left);
        s->avail_in = in_n;
        s->next_out = dst;
        s->avail_out = out_n;
        int r = inflate(s, Z_NO_FLUSH);
        size_t used = in_n - s->avail_in, made = out_n - s->avail_out;
        left -= used;
        if (made) {
            /* RFC 7692 8 asks to watch out for exactly this: a tiny input that inflates
             * to a huge message. */
            if (dst == &probe) return inf_fail(z, WSX_ETOOBIG, "message too big");
            out->len += made;
            z->msg_out += made;
            /* RFC 6455 8.1: fail a text message at the first byte that cannot be valid. */
            if (text) {
                z->utf8 = wsx_utf8_feed(z->utf8, dst, made);
                if (z->utf8 == WSX_UTF8_REJECT) return inf_fail(z, WSX_EINVALDATA, "invalid UTF-8");
            }
        }
        switch (r) {
        case Z_OK:
        case Z_BUF_ERROR:
            break;
        case Z_STREAM_END:
            /* RFC 7692 7.2.3.4: the sender ended the stream with a final block. Whatever
             * follows in this message, including our tail, is not DEFLATE data. */
            z->inf_state = INF_END;
            return 0;
        case Z_MEM_ERROR:
            return inf_fail(z, WSX_ENOMEM, "out of memory");
        default:
            return inf_fail(z, WSX_EINVALDATA, "invalid compressed data");
        }
        /* Output space left over means zlib ran out of input: all of it is consumed. */
        if (left == 0 && s->avail_out > 0) return 0;
        if (!used && !made) return inf_fail(z, WSX_EINVALDATA, "invalid compressed data");
    }
}

/* After a stream that ended with a final block, the next message is a new stream. With
 * context takeover it may still refer to the window, so the window is carried over. */
static int restart_stream(wsx_pmd *z, zctx *c)
{
    if (z->inf_no_ctx) {
        inflateReset(&c->s);
        return 0;
    }
    uInt n = 0;
    Bytef *dict = malloc((size_t)1 << z->inf_bits);
    if (!dict) return inf_fail(z, WSX_ENOMEM, "out of memory");
    int ok = inflateGetDictionary(&c->s, dict, &n) == Z_OK && inflateReset(&c->s) == Z_OK &&
             (n == 0 || inflateSetDictionary(&c->s, dict, n) == Z_OK);
    free(dict);
    return ok ? 0 : inf_fail(z, WSX_EINVALDATA, "invalid compressed data");
}

int wsx_pmd_inflate(wsx_pmd *z, const uint8_t *in, size_t len, bool last, bool text,
                    uint64_t max_message, wsx_pmd_buf *out)
{
    if (z->inf_state == INF_FAILED) return WSX_EINVAL;
    zctx *c = inflater(z);
    if (!c) return WSX_ENOMEM;
    if (z->inf_state == INF_IDLE) {
        z->inf_state = INF_MSG;
        z->msg_out = 0;
        z->utf8 = WSX_UTF8_ACCEPT;
        z->msg_any = false;
    }
    int rc;
    if (len) {
        z->msg_any = true;
        if (z->inf_state == INF_MSG) {
            rc = inflate_run(z, c, in, len, text, max_message, out);
            if (rc) return rc;
        }
    }
    if (!last) return 0;

    /* RFC 7692 7.2.2: put back the 00 00 ff ff the sender removed. An empty payload
     * carries no block at all (some senders mark empty messages compressed); feeding the
     * tail alone would leave the decompressor inside a stored block header. */
    if (z->inf_state == INF_MSG && z->msg_any) {
        rc = inflate_run(z, c, pmd_tail, sizeof pmd_tail, text, max_message, out);
        if (rc) return rc;
        /* The tail completes an empty stored block; after it zlib must be waiting for the
         * next block header (data_type bit 128). Anything else means the message stopped
         * inside a block. */
        if (z->inf_state == INF_MSG && !(c->s.data_type & 128))
            return inf_fail(z, WSX_EINVALDATA, "truncated compressed message");
    }
    if (text && z->utf8 != WSX_UTF8_ACCEPT) return inf_fail(z, WSX_EINVALDATA, "invalid UTF-8");
    if (z->inf_state == INF_END) {
        rc = restart_stream(z, c);
        if (rc) return rc;
    } else if (z->inf_no_ctx) {
        /* RFC 7692 7.1.1: the peer starts every message from an empty window. */
        inflateReset(&c->s);
    }
    z->inf_state = INF_IDLE;
    return 0;
}

const char *wsx_pmd_error(const wsx_pmd *z)
{
    return z->inf_state == INF_FAILED ? z->err : NULL;
}

size_t wsx_pmd_trim(wsx_pmd *z)
{
    size_t freed = 0;
    /* Without context takeover a context holds nothing between messages that matters: it
     * is reset after each one anyway. With it, the window is the shared history both ends
     * rely on (RFC 7692 7.2.3.2), so it stays. */
    if (z->def && z->def_no_ctx) {
        zctx *c = z->def;
        freed += zctx_size(c);
        deflateEnd(&c->s);
        free(c);
        z->def = NULL;
    }
    if (z->inf && z->inf_no_ctx && z->inf_state == INF_IDLE) {
        zctx *c = z->inf;
        freed += zctx_size(c);
        inflateEnd(&c->s);
        free(c);
        z->inf = NULL;
    }
    return freed;
}

size_t wsx_pmd_memory(const wsx_pmd *z)
{
    return zctx_size(z->def) + zctx_size(z->inf);
}
