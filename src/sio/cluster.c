/*
 * Socket.IO broadcasts across nodes (wsx_sio_set_cluster): the wire format of
 * @socket.io/redis-adapter 8.x and @socket.io/redis-emitter 5.x, so that wsx nodes and Node.js
 * socket.io nodes on one Redis are one cluster (docs/cluster.md, "Socket.IO").
 *
 * A broadcast is PUBLISHed once, as the MessagePack array [uid, packet, opts], packet being
 * {type: 2, data: [event, ...args], nsp} (binary arguments as MessagePack bin) and opts
 * {rooms, except, flags}, on KEY#NSP# (several rooms, or none) or KEY#NSP#ROOM# (exactly one).
 * Every node PSUBSCRIBEs KEY#* and broadcasts what arrives locally (frame-once, as any
 * wsx_sio_broadcast), skipping its own uid. Received bytes come from anyone who can publish on
 * the Redis: they are checked by a bounded walk before msgpack-c builds anything, and every
 * mistake drops the message (counted in bad).
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sio/sio_priv.h"
#include "wsx/cluster.h"

#define MP_MAX_DEPTH 24    /* containers within containers; msgpack-c's own limit is 32 */
#define MP_MAX_BINS  256   /* binary values of one packet */
#define MP_MAX_KEY   256   /* KEY bytes */
#define MP_MAX_LIST  10000 /* rooms or except rooms of one broadcast */

struct wsx__sio_cl {
    wsx_cluster *cl;
    char key[MP_MAX_KEY + 1];
    size_t key_len;
    char pattern[MP_MAX_KEY + 3];
    char uid[16]; /* this server's, as the adapter's uid2(6) */
    bool receiving;
    wsx_sio_cluster_stats st;
};

/* ---- sending ---- */

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n) ? -1 : 0;
}

static int pack_json(msgpack_packer *pk, const json_t *v, const wsx_sio_bin *bins, size_t n,
                     int depth)
{
    if (depth > MP_MAX_DEPTH) return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        json_t *num = json_object_get(v, "num");
        if (n && json_is_true(json_object_get(v, "_placeholder")) && json_is_integer(num)) {
            json_int_t i = json_integer_value(num);
            if (i >= 0 && (size_t)i < n)
                return msgpack_pack_bin(pk, bins[i].len) ||
                               msgpack_pack_bin_body(pk, bins[i].data, bins[i].len)
                           ? -1
                           : 0;
        }
        if (msgpack_pack_map(pk, json_object_size(v))) return -1;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (pack_str(pk, k, strlen(k)) || pack_json(pk, x, bins, n, depth + 1)) return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        if (msgpack_pack_array(pk, json_array_size(v))) return -1;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (pack_json(pk, x, bins, n, depth + 1)) return -1;
        return 0;
    }
    case JSON_STRING:
        return pack_str(pk, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(v));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v));
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    default:
        return msgpack_pack_nil(pk);
    }
}

static int pack_list(msgpack_packer *pk, const char *const *l, size_t n, const char *extra)
{
    if (msgpack_pack_array(pk, n + (extra != NULL))) return -1;
    for (size_t i = 0; i < n; i++)
        if (pack_str(pk, l[i], strlen(l[i]))) return -1;
    return extra ? pack_str(pk, extra, strlen(extra)) : 0;
}

static void ignore_reply(wsx_cluster *cl, const wsx_cluster_reply *r, void *arg)
{
    (void)cl, (void)r, (void)arg;
}

void wsx__sio_cluster_relay(wsx_sio_nsp *n, const wsx_sio_to *to, const json_t *data,
                            const wsx_sio_bin *bins, size_t n_bins)
{
    struct wsx__sio_cl *c = n->io->cl;
    if (c->receiving) return; /* a broadcast from Redis: delivered here only */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int bad = msgpack_pack_array(&pk, 3) || pack_str(&pk, c->uid, strlen(c->uid)) ||
              msgpack_pack_map(&pk, 3) || pack_str(&pk, "type", 4) || msgpack_pack_int(&pk, 2) ||
              pack_str(&pk, "data", 4) || pack_json(&pk, data, bins, n_bins, 0) ||
              pack_str(&pk, "nsp", 3) || pack_str(&pk, n->name, n->name_len) ||
              msgpack_pack_map(&pk, 3) || pack_str(&pk, "rooms", 5) ||
              pack_list(&pk, to->rooms, to->n_rooms, NULL) || pack_str(&pk, "except", 6) ||
              /* The sender's exclusion crosses as its own room (its id), as in socket.io. */
              pack_list(&pk, to->except_rooms, to->n_except,
                        to->except_socket ? to->except_socket->id : NULL) ||
              pack_str(&pk, "flags", 5) || msgpack_pack_map(&pk, to->volatile_ ? 1 : 0) ||
              (to->volatile_ && (pack_str(&pk, "volatile", 8) || msgpack_pack_true(&pk)));
    /* KEY#NSP# or, for exactly one room, KEY#NSP#ROOM#. */
    wsx__strbuf ch = {0};
    if (!bad)
        bad = wsx__strbuf_add(&ch, c->key, c->key_len) < 0 || wsx__strbuf_add(&ch, "#", 1) < 0 ||
              wsx__strbuf_add(&ch, n->name, n->name_len) < 0 || wsx__strbuf_add(&ch, "#", 1) < 0 ||
              (to->n_rooms == 1 && (wsx__strbuf_add(&ch, to->rooms[0], strlen(to->rooms[0])) < 0 ||
                                    wsx__strbuf_add(&ch, "#", 1) < 0));
    if (!bad) {
        const char *argv[3] = {"PUBLISH", ch.p, sb.data};
        size_t lens[3] = {7, ch.len, sb.size};
        /* Fire and forget: a lost PUBLISH is a broadcast not relayed, like one while down. */
        bad = wsx_cluster_command(c->cl, 3, argv, lens, ignore_reply, NULL) < 0;
    }
    if (bad)
        c->st.not_relayed++;
    else
        c->st.relayed++;
    wsx__strbuf_free(&ch);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- receiving ---- */

static bool need(size_t off, size_t len, uint64_t n)
{
    return n <= len - off;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Walks one MessagePack object at d[*off..len): well formed, depth at most MP_MAX_DEPTH, and
 * no container claiming more elements than bytes remain (each takes one at least), so that
 * msgpack-c, which allocates a container's elements from its count before reading them, never
 * allocates more than a small multiple of the message's size. */
static bool mp_walk(const uint8_t *d, size_t len, size_t *off, int depth)
{
    if (depth > MP_MAX_DEPTH || *off >= len) return false;
    uint8_t b = d[(*off)++];
    uint64_t n = 0, skip = 0, items = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return true;
    if (b >= 0x80 && b <= 0x8f)
        items = 2u * (b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f)
        items = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf)
        skip = b & 0x1f;
    else {
        static const uint8_t width[] = {
            [0xc4 - 0xc4] = 1, [0xc5 - 0xc4] = 2, [0xc6 - 0xc4] = 4, /* bin */
            [0xc7 - 0xc4] = 1, [0xc8 - 0xc4] = 2, [0xc9 - 0xc4] = 4, /* ext */
            [0xd9 - 0xc4] = 1, [0xda - 0xc4] = 2, [0xdb - 0xc4] = 4, /* str */
            [0xdc - 0xc4] = 2, [0xdd - 0xc4] = 4,                    /* array */
            [0xde - 0xc4] = 2, [0xdf - 0xc4] = 4,                    /* map */
        };
        static const uint8_t fixed[] = {
            [0xca - 0xca] = 4, [0xcb - 0xca] = 8, [0xcc - 0xca] = 1,  [0xcd - 0xca] = 2,
            [0xce - 0xca] = 4, [0xcf - 0xca] = 8, [0xd0 - 0xca] = 1,  [0xd1 - 0xca] = 2,
            [0xd2 - 0xca] = 4, [0xd3 - 0xca] = 8, [0xd4 - 0xca] = 2,  [0xd5 - 0xca] = 3,
            [0xd6 - 0xca] = 5, [0xd7 - 0xca] = 9, [0xd8 - 0xca] = 17,
        };
        if (b >= 0xca && b <= 0xd8) {
            skip = fixed[b - 0xca];
        } else if (b >= 0xc4 && b <= 0xdf && width[b - 0xc4]) {
            int w = width[b - 0xc4];
            if (!need(*off, len, (uint64_t)w)) return false;
            n = be(d + *off, w);
            *off += (size_t)w;
            if (b >= 0xdc && b <= 0xdd)
                items = n;
            else if (b >= 0xde)
                items = 2 * n;
            else
                skip = n + (b >= 0xc7 && b <= 0xc9); /* ext: its type byte */
        } else
            return false; /* 0xc1, never used */
    }
    if (!need(*off, len, skip)) return false;
    *off += (size_t)skip;
    if (!need(*off, len, items)) return false;
    for (uint64_t i = 0; i < items; i++)
        if (!mp_walk(d, len, off, depth + 1)) return false;
    return true;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

typedef struct conv {
    wsx_sio_bin bins[MP_MAX_BINS];
    size_t n_bins;
} conv;

/* A MessagePack value as JSON: bin becomes a placeholder of the next attachment, ext (a
 * JavaScript Date or undefined from notepack.io) becomes null; map keys must be strings. NULL
 * on anything else (not UTF-8, too many attachments, out of memory). */
static json_t *to_json(const msgpack_object *o, conv *cv)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_EXT:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX) return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64); /* NaN and infinities: NULL (JSON has none) */
    case MSGPACK_OBJECT_STR:
        return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        if (cv->n_bins >= MP_MAX_BINS) return NULL;
        cv->bins[cv->n_bins] = (wsx_sio_bin){(const uint8_t *)o->via.bin.ptr, o->via.bin.size};
        return wsx_sio_placeholder(cv->n_bins++);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            if (json_array_append_new(a, to_json(&o->via.array.ptr[i], cv)) < 0) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char *name =
                k->type == MSGPACK_OBJECT_STR && !memchr(k->via.str.ptr, 0, k->via.str.size)
                    ? strndup(k->via.str.ptr, k->via.str.size)
                    : NULL;
            json_t *v = name ? to_json(&o->via.map.ptr[i].val, cv) : NULL;
            int rc = v ? json_object_set_new(m, name, v) : -1;
            free(name);
            if (rc < 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default:
        return NULL;
    }
}

/* A list of room names (strings; a number is a room too, in its decimal form, as the adapter
 * finds numeric rooms). Names point into the message or into store. */
static bool room_list(const msgpack_object *o, const char ***out, size_t *n, char **store)
{
    *out = NULL;
    *n = 0;
    *store = NULL;
    if (!o || o->type == MSGPACK_OBJECT_NIL) return true;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > MP_MAX_LIST) return false;
    size_t cnt = o->via.array.size, total = 0;
    for (size_t i = 0; i < cnt; i++) {
        const msgpack_object *r = &o->via.array.ptr[i];
        if (r->type == MSGPACK_OBJECT_STR)
            total += r->via.str.size + 1;
        else if (r->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                 r->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            total += 24;
        else
            return false;
    }
    if (!cnt) return true;
    const char **l = malloc(cnt * sizeof *l);
    char *s = malloc(total);
    if (!l || !s) {
        free(l);
        free(s);
        return false;
    }
    char *p = s;
    for (size_t i = 0; i < cnt; i++) {
        const msgpack_object *r = &o->via.array.ptr[i];
        l[i] = p;
        if (r->type == MSGPACK_OBJECT_STR) {
            memcpy(p, r->via.str.ptr, r->via.str.size);
            p[r->via.str.size] = '\0';
            p += r->via.str.size + 1;
        } else if (r->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            p += snprintf(p, 24, "%llu", (unsigned long long)r->via.u64) + 1;
        else
            p += snprintf(p, 24, "%lld", (long long)r->via.i64) + 1;
    }
    *out = l;
    *n = cnt;
    *store = s;
    return true;
}

static bool str_is(const msgpack_object *o, const char *s, size_t n)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

/* The broadcast of one message. Returns 1 delivered (or nobody here), 0 own, -1 bad. */
static int receive(wsx_sio *io, struct wsx__sio_cl *c, const char *ch, size_t chlen,
                   const msgpack_object *top)
{
    if (top->type != MSGPACK_OBJECT_ARRAY || top->via.array.size < 3) return -1;
    const msgpack_object *uid = &top->via.array.ptr[0], *pkt = &top->via.array.ptr[1],
                         *opts = &top->via.array.ptr[2];
    if (str_is(uid, c->uid, strlen(c->uid))) return 0;
    if (pkt->type != MSGPACK_OBJECT_MAP || opts->type != MSGPACK_OBJECT_MAP) return -1;
    const msgpack_object *type = map_get(pkt, "type"), *nsp = map_get(pkt, "nsp"),
                         *data = map_get(pkt, "data");
    /* EVENT (2), or BINARY_EVENT (5) from an encoder that sets it early. */
    if (!type || type->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        (type->via.u64 != 2 && type->via.u64 != 5))
        return -1;
    const char *name = "/";
    size_t nlen = 1;
    if (nsp) {
        if (nsp->type != MSGPACK_OBJECT_STR) return -1;
        name = nsp->via.str.ptr;
        nlen = nsp->via.str.size;
    }
    /* The channel is KEY#NSP#...: a packet of another namespace on it is dropped, as the
     * adapter does. */
    if (chlen < c->key_len + nlen + 2 || ch[c->key_len + 1 + nlen] != '#' ||
        memcmp(ch + c->key_len + 1, name, nlen) != 0)
        return -1;
    if (!data || data->type != MSGPACK_OBJECT_ARRAY || data->via.array.size < 1) return -1;
    const msgpack_object *ev = &data->via.array.ptr[0];
    if (ev->type != MSGPACK_OBJECT_STR || memchr(ev->via.str.ptr, 0, ev->via.str.size)) return -1;
    wsx_sio_nsp *n = io->nsps;
    while (n && !(n->name_len == nlen && memcmp(n->name, name, nlen) == 0))
        n = n->next;
    if (!n) return 1; /* no such namespace here: nobody to deliver to */
    const msgpack_object *flags = map_get(opts, "flags");
    const msgpack_object *vol = flags ? map_get(flags, "volatile") : NULL;
    const msgpack_object *local = flags ? map_get(flags, "local") : NULL;
    if (local && local->type == MSGPACK_OBJECT_BOOLEAN && local->via.boolean) return 1;
    int ret = -1;
    conv *cv = malloc(sizeof *cv);
    char *event = strndup(ev->via.str.ptr, ev->via.str.size);
    json_t *args = cv && event ? json_array() : NULL;
    const char **rooms = NULL, **except = NULL;
    char *rs = NULL, *es = NULL;
    size_t nr = 0, ne = 0;
    if (!args) goto done;
    cv->n_bins = 0;
    for (uint32_t i = 1; i < data->via.array.size; i++)
        if (json_array_append_new(args, to_json(&data->via.array.ptr[i], cv)) < 0) goto done;
    if (!room_list(map_get(opts, "rooms"), &rooms, &nr, &rs) ||
        !room_list(map_get(opts, "except"), &except, &ne, &es))
        goto done;
    wsx_sio_to to = {.nsp = n,
                     .rooms = rooms,
                     .n_rooms = nr,
                     .except_rooms = except,
                     .n_except = ne,
                     .volatile_ = vol && vol->type == MSGPACK_OBJECT_BOOLEAN && vol->via.boolean};
    c->receiving = true;
    ptrdiff_t rc = wsx_sio_broadcast(&to, event, args, cv->bins, cv->n_bins);
    c->receiving = false;
    args = NULL;
    ret = rc < 0 && rc != WSX_ENOMEM ? -1 : 1;
done:
    json_decref(args);
    free(event);
    free(cv);
    free(rooms);
    free(except);
    free(rs);
    free(es);
    return ret;
}

static void on_pmessage(wsx_cluster *cl, const char *ch, size_t chlen, const uint8_t *data,
                        size_t len, void *user)
{
    (void)cl;
    wsx_sio *io = user;
    struct wsx__sio_cl *c = io->cl;
    size_t off = 0;
    /* Above the engine's max_payload a client could not have sent it either; the bound also
     * caps what msgpack-c allocates for it (an object of 24 bytes per byte at worst). */
    size_t max = io->o.eio.max_payload ? io->o.eio.max_payload : 1000000;
    if (len > max || !mp_walk(data, len, &off, 0) || off != len) {
        c->st.bad++;
        return;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off2 = 0;
    int rc = -1;
    if (msgpack_unpack_next(&u, (const char *)data, len, &off2) == MSGPACK_UNPACK_SUCCESS)
        rc = receive(io, c, ch, chlen, &u.data);
    msgpack_unpacked_destroy(&u);
    if (rc < 0)
        c->st.bad++;
    else if (rc == 0)
        c->st.own++;
    else
        c->st.received++;
}

/* ---- the API ---- */

void wsx__sio_cluster_free(wsx_sio *io)
{
    if (!io->cl) return;
    wsx_cluster_punsubscribe(io->cl->cl, io->cl->pattern);
    free(io->cl);
    io->cl = NULL;
}

int wsx_sio_set_cluster(wsx_sio *io, wsx_cluster *cl, const char *key)
{
    if (!io) return WSX_EINVAL;
    if (!key || !*key) key = "socket.io";
    size_t kl = strlen(key);
    /* PSUBSCRIBE KEY#*: no glob character in KEY, so that the pattern means what it says. */
    if (kl > MP_MAX_KEY || strpbrk(key, "*?[]\\#")) return WSX_EINVAL;
    wsx__sio_cluster_free(io);
    if (!cl) return 0;
    struct wsx__sio_cl *c = calloc(1, sizeof *c);
    if (!c) return WSX_ENOMEM;
    c->cl = cl;
    memcpy(c->key, key, kl + 1);
    c->key_len = kl;
    snprintf(c->pattern, sizeof c->pattern, "%s#*", key);
    /* uid2(6)'s alphabet and length: distinct from every Node adapter's with near certainty,
     * and from the emitter's "emitter". */
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t r[6];
    if (wsx_random_bytes(r, sizeof r) < 0) {
        free(c);
        return WSX_ENOMEM;
    }
    for (int i = 0; i < 6; i++)
        c->uid[i] = abc[r[i] % 62];
    int rc = wsx_cluster_psubscribe(cl, c->pattern, on_pmessage, io);
    if (rc < 0) {
        free(c);
        return rc;
    }
    io->cl = c;
    return 0;
}

void wsx_sio_get_cluster_stats(const wsx_sio *io, wsx_sio_cluster_stats *out)
{
    memset(out, 0, sizeof *out);
    if (io && io->cl) *out = io->cl->st;
}
