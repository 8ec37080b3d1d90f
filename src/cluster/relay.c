/*
 * The topic side of a cluster: the Redis URL, the channel of a topic, the envelope, the set
 * of channels this node is subscribed to (clustered topics with local subscribers, kept by
 * the hub's on_first/on_last hooks), publishing through the loop's publish hook, and the
 * delivery of what other nodes published. docs/cluster.md is the user's side of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "wsx/proto.h"

/* ---- the URL ---- */

static bool parse_uint(const char *s, size_t n, unsigned long max, unsigned long *out)
{
    if (!n || n > 10) return false;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL); no NUL byte may come out. */
static bool decode_part(const char *s, size_t n, char *out, size_t cap)
{
    ptrdiff_t len = wsx_percent_decode(s, n, 0, out, cap - 1);
    if (len < 0 || memchr(out, 0, (size_t)len)) return false;
    out[len] = '\0';
    return true;
}

static int url_fail(const char **why, const char *reason)
{
    if (why) *why = reason;
    return WSX_EURL;
}

/* user:password or :password, before '@', percent-decoded. */
static int parse_userinfo(const char *p, const char *at, wsx__redis_url *u, const char **why)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon) return url_fail(why, "user information must be user:password or :password");
    if (!decode_part(p, (size_t)(colon - p), u->user, sizeof u->user) ||
        !decode_part(colon + 1, (size_t)(at - colon - 1), u->pass, sizeof u->pass))
        return url_fail(why, "bad user or password");
    u->has_pass = true;
    return 0;
}

static int parse_unix(const char *p, wsx__redis_url *u, const char **why)
{
    const char *slash = strchr(p, '/'), *at = memchr(p, '@', slash ? (size_t)(slash - p) : 0);
    if (at && parse_userinfo(p, at, u, why) < 0) return WSX_EURL;
    if (at) p = at + 1;
    if (*p != '/') return url_fail(why, "unix:// needs an absolute path (unix:///path)");
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (n >= sizeof u->path) return url_fail(why, "socket path too long");
    memcpy(u->path, p, n);
    u->path[n] = '\0';
    if (q) {
        unsigned long db;
        if (strncmp(q, "?db=", 4) || !parse_uint(q + 4, strlen(q + 4), 1000000, &db))
            return url_fail(why, "unix://: the only query is ?db=N");
        u->db = (unsigned)db;
    }
    u->unix_socket = true;
    return 0;
}

int wsx__redis_url_parse(const char *url, wsx__redis_url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    if (!url) return url_fail(why, "no URL");
    if (!strncmp(url, "unix://", 7)) return parse_unix(url + 7, u, why);
    if (!strncmp(url, "rediss://", 9)) return url_fail(why, "rediss:// (TLS) is not supported");
    if (strncmp(url, "redis://", 8)) return url_fail(why, "not redis:// or unix://");
    const char *p = url + 8, *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *s = p; s < end; s++)
        if (*s == '@') at = s;
    if (at) {
        if (parse_userinfo(p, at, u, why) < 0) return WSX_EURL;
        p = at + 1;
    }
    const char *host = p, *hend, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) return url_fail(why, "unclosed '[' in the host");
        host = p + 1;
        hend = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':') return url_fail(why, "junk after ']'");
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        if (colon) port = colon + 1;
    }
    if (hend == host || (size_t)(hend - host) >= sizeof u->host)
        return url_fail(why, "missing or too long host");
    memcpy(u->host, host, (size_t)(hend - host));
    u->host[hend - host] = '\0';
    unsigned long v;
    if (port) {
        if (!parse_uint(port, (size_t)(end - port), 65535, &v) || !v)
            return url_fail(why, "bad port");
        u->port = (uint16_t)v;
    }
    if (slash && slash[1]) {
        if (!parse_uint(slash + 1, strlen(slash + 1), 1000000, &v))
            return url_fail(why, "the path must be /DB, a database number");
        u->db = (unsigned)v;
    }
    return 0;
}

/* ---- the envelope ---- */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void wsx__env_head(uint8_t *out, uint64_t node, uint64_t seq, uint64_t tag, int type)
{
    out[0] = WSX__ENV_MAGIC;
    out[1] = WSX__ENV_VERSION;
    out[2] = type == WSX_BINARY ? WSX__ENV_BINARY : 0;
    out[3] = 0;
    put64(out + 4, node);
    put64(out + 12, seq);
    put64(out + 20, tag);
}

int wsx__env_parse(const uint8_t *env, size_t len, uint64_t *node, uint64_t *seq, uint64_t *tag,
                   int *type)
{
    if (len < WSX__ENV_HEAD || env[0] != WSX__ENV_MAGIC || env[1] != WSX__ENV_VERSION ||
        (env[2] & ~WSX__ENV_BINARY) || env[3])
        return WSX_EINVAL;
    *type = env[2] & WSX__ENV_BINARY ? WSX_BINARY : WSX_TEXT;
    *node = get64(env + 4);
    *seq = get64(env + 12);
    *tag = get64(env + 20);
    return 0;
}

/* ---- the channel set ---- */

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static wsx__chan **chan_slot(wsx_cluster *cl, const char *t, size_t len, uint32_t h)
{
    wsx__chan **pp = &cl->buckets[h & (cl->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && (*pp)->len == len && !memcmp((*pp)->topic, t, len)))
        pp = &(*pp)->next;
    return pp;
}

static void chan_grow(wsx_cluster *cl)
{
    size_t nb = cl->nbuckets * 2;
    wsx__chan **b = calloc(nb, sizeof *b);
    if (!b) return; /* slower, not wrong */
    for (size_t i = 0; i < cl->nbuckets; i++)
        for (wsx__chan *c = cl->buckets[i], *next; c; c = next) {
            next = c->next;
            c->next = b[c->hash & (nb - 1)];
            b[c->hash & (nb - 1)] = c;
        }
    free(cl->buckets);
    cl->buckets = b;
    cl->nbuckets = nb;
}

/* Counts a reference to topic: 1 when it is new (its channel must be subscribed), 0 when it
 * was there already, WSX_ENOMEM. */
static int chan_add(wsx_cluster *cl, const char *t, size_t len)
{
    uint32_t h = hash_name(t, len);
    wsx__chan **pp = chan_slot(cl, t, len, h);
    if (*pp) {
        (*pp)->refs++;
        return 0;
    }
    wsx__chan *c = malloc(sizeof *c + len + 1);
    if (!c) {
        wsx__cluster_log(cl, WSX_LOG_ERROR, "out of memory: topic %.*s is not clustered",
                         (int)(len < 64 ? len : 64), t);
        return WSX_ENOMEM;
    }
    c->refs = 1;
    c->hash = h;
    c->len = (uint32_t)len;
    memcpy(c->topic, t, len);
    c->topic[len] = '\0';
    c->next = NULL;
    *pp = c;
    cl->nchans++;
    if (cl->nchans > cl->nbuckets) chan_grow(cl);
    return 1;
}

/* Drops a reference; returns true when it was the last (the channel must be unsubscribed).
 * *found tells whether topic was there. */
static bool chan_remove(wsx_cluster *cl, const char *t, size_t len, bool *found)
{
    wsx__chan **pp = chan_slot(cl, t, len, hash_name(t, len));
    *found = *pp != NULL;
    if (!*pp || --(*pp)->refs) return false;
    wsx__chan *c = *pp;
    *pp = c->next;
    free(c);
    cl->nchans--;
    return true;
}

static bool chan_has(wsx_cluster *cl, const char *t, size_t len)
{
    return *chan_slot(cl, t, len, hash_name(t, len)) != NULL;
}

void wsx__cluster_each(wsx_cluster *cl, void (*fn)(wsx_cluster *cl, const wsx__chan *c))
{
    for (size_t i = 0; i < cl->nbuckets; i++)
        for (wsx__chan *c = cl->buckets[i]; c; c = c->next)
            fn(cl, c);
}

/* ---- topics and channels ---- */

static bool clustered(const wsx_cluster *cl, const char *topic, size_t len)
{
    return len >= cl->topic_prefix_len && !memcmp(topic, cl->topic_prefix, cl->topic_prefix_len);
}

/* PREFIX:{TOPIC}. The braces make the topic the channel's hash tag, so that with Redis
 * Cluster's sharded pub/sub (SSUBSCRIBE/SPUBLISH) every channel of a topic maps to one slot;
 * the topic is everything between the fixed "PREFIX:{" and the last "}", so any bytes (a '}'
 * included) map back. */
char *wsx__cluster_channel(const wsx_cluster *cl, const char *topic, size_t len, size_t *n)
{
    *n = cl->prefix_len + 3 + len;
    char *ch = malloc(*n + 1);
    if (!ch) return NULL;
    memcpy(ch, cl->prefix, cl->prefix_len);
    memcpy(ch + cl->prefix_len, ":{", 2);
    memcpy(ch + cl->prefix_len + 2, topic, len);
    ch[*n - 1] = '}';
    ch[*n] = '\0';
    return ch;
}

static void on_first(wsx_hub *h, const char *topic, void *arg)
{
    (void)h;
    wsx_cluster *cl = arg;
    size_t len = strlen(topic);
    if (clustered(cl, topic, len) && chan_add(cl, topic, len) == 1)
        wsx__cluster_sub(cl, topic, len, true);
}

static void on_last(wsx_hub *h, const char *topic, void *arg)
{
    (void)h;
    wsx_cluster *cl = arg;
    size_t len = strlen(topic);
    bool found;
    if (clustered(cl, topic, len) && chan_remove(cl, topic, len, &found))
        wsx__cluster_sub(cl, topic, len, false);
}

static void on_publish(wsx_server *s, const char *topic, const uint8_t *data, size_t len, int type,
                       void *arg)
{
    (void)s;
    /* Not relayed is counted inside; the local delivery is done. */
    (void)wsx_cluster_publish(arg, topic, data, len, type, 0);
}

void wsx__cluster_received(wsx_cluster *cl, const char *ch, size_t chlen, const uint8_t *env,
                           size_t len)
{
    size_t pl = cl->prefix_len;
    uint64_t node, seq, tag;
    int type;
    if (chlen < pl + 4 || memcmp(ch, cl->prefix, pl) || ch[pl] != ':' || ch[pl + 1] != '{' ||
        ch[chlen - 1] != '}' || wsx__env_parse(env, len, &node, &seq, &tag, &type) < 0) {
        cl->st.bad++;
        return;
    }
    const char *topic = ch + pl + 2;
    size_t tlen = chlen - pl - 3;
    if (node == cl->node_id) {
        /* Delivered locally when it was published. */
        cl->st.own++;
        return;
    }
    size_t n = len - WSX__ENV_HEAD;
    const uint8_t *data = env + WSX__ENV_HEAD;
    /* Text goes to browsers as a WebSocket text frame: invalid UTF-8 from whoever else can
     * publish on this Redis would make them fail the connection (RFC 6455 8.1). */
    if (tlen > WSX__MAX_TOPIC || memchr(topic, 0, tlen) || n > cl->o.max_message ||
        (type == WSX_TEXT && !wsx_utf8_valid(data, n))) {
        cl->st.bad++;
        return;
    }
    /* Unsubscribed since (the last local subscriber left while this was on its way). */
    if (!chan_has(cl, topic, tlen)) return;
    char name[WSX__MAX_TOPIC + 1];
    memcpy(name, topic, tlen);
    name[tlen] = '\0';
    cl->st.received++;
    if (cl->o.on_message) {
        wsx_cluster_msg m = {name, data, n, type, tag, node, seq};
        cl->o.on_message(cl, &m, cl->o.user);
    } else
        wsx_hub_publish(cl->hub, name, data, n, type, NULL, NULL);
}

void wsx__cluster_preceived(wsx_cluster *cl, const char *pat, size_t patlen, const char *ch,
                            size_t chlen, const uint8_t *data, size_t len)
{
    for (wsx__pat *p = cl->pats; p; p = p->next)
        if (p->len == patlen && memcmp(p->pattern, pat, patlen) == 0) {
            if (len > cl->o.max_message) {
                cl->st.bad++;
                return;
            }
            if (!cl->stopping) p->cb(cl, ch, chlen, data, len, p->user);
            return;
        }
    /* Unsubscribed since: on its way. */
}

/* ---- the API ---- */

const char *wsx_cluster_state_name(wsx_cluster_state s)
{
    switch (s) {
    case WSX_CLUSTER_CONNECTING:
        return "connecting";
    case WSX_CLUSTER_UP:
        return "up";
    case WSX_CLUSTER_DOWN:
        return "down";
    }
    return "?";
}

wsx_cluster_opts wsx_cluster_defaults(void)
{
    wsx_cluster_opts o;
    memset(&o, 0, sizeof o);
    o.log_level = WSX_LOG_INFO;
    return o;
}

static void resolve_defaults(wsx_cluster_opts *o)
{
    if (!o->connect_timeout_ms) o->connect_timeout_ms = 2000;
    if (!o->command_timeout_ms) o->command_timeout_ms = 2000;
    if (!o->ping_interval_ms) o->ping_interval_ms = 1000;
    if (!o->reconnect_min_ms) o->reconnect_min_ms = 100;
    if (!o->reconnect_max_ms) o->reconnect_max_ms = 5000;
    if (o->reconnect_max_ms < o->reconnect_min_ms) o->reconnect_max_ms = o->reconnect_min_ms;
    if (!o->max_pending) o->max_pending = 10000;
    if (!o->max_pending_bytes) o->max_pending_bytes = (size_t)16 << 20;
    if (!o->max_message) o->max_message = (size_t)16 << 20;
}

static void set_err(wsx_error *err, int code, const char *detail)
{
    if (!err) return;
    err->code = code;
    snprintf(err->detail, sizeof err->detail, "%s", detail ? detail : "");
}

static void free_cluster(wsx_cluster *cl)
{
    for (size_t i = 0; cl->buckets && i < cl->nbuckets; i++)
        for (wsx__chan *c = cl->buckets[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    free(cl->buckets);
    while (cl->pats) {
        wsx__pat *p = cl->pats;
        cl->pats = p->next;
        free(p);
    }
    free(cl->url_text);
    free(cl->prefix);
    free(cl->topic_prefix);
    free(cl);
}

/* The hub's topics that already have subscribers join the set. */
static void adopt_topics(wsx_cluster *cl)
{
    for (size_t i = 0; i < cl->hub->nbuckets; i++)
        for (wsx__topic *t = cl->hub->buckets[i]; t; t = t->hnext)
            if (t->n && clustered(cl, t->name, t->len)) chan_add(cl, t->name, t->len);
}

int wsx_cluster_start(wsx_loop *loop, const wsx_cluster_opts *opts, wsx_cluster **out,
                      wsx_error *err)
{
    if (!loop || !opts || !out) {
        set_err(err, WSX_EINVAL, "");
        return WSX_EINVAL;
    }
    const char *prefix = opts->prefix ? opts->prefix : "wsx";
    size_t plen = strlen(prefix);
    if (!plen || plen > 64 || strpbrk(prefix, "{}")) {
        set_err(err, WSX_EINVAL, "the channel prefix must be 1..64 bytes without braces");
        return WSX_EINVAL;
    }
    wsx__redis_url url;
    const char *why = NULL;
    if (wsx__redis_url_parse(opts->url, &url, &why) < 0) {
        set_err(err, WSX_EURL, why);
        return WSX_EURL;
    }
    wsx_cluster *cl = calloc(1, sizeof *cl);
    wsx_hub *hub = wsx_hub_of(loop);
    if (!cl || !hub) goto oom;
    cl->loop = loop;
    cl->hub = hub;
    cl->cmd.cl = cl->sub.cl = cl;
    cl->o = *opts;
    resolve_defaults(&cl->o);
    cl->url = url;
    cl->url_text = strdup(opts->url);
    cl->prefix = strdup(prefix);
    cl->prefix_len = plen;
    cl->topic_prefix = strdup(opts->topic_prefix ? opts->topic_prefix : "");
    cl->nbuckets = 16;
    cl->buckets = calloc(cl->nbuckets, sizeof *cl->buckets);
    if (!cl->url_text || !cl->prefix || !cl->topic_prefix || !cl->buckets) goto oom;
    cl->topic_prefix_len = strlen(cl->topic_prefix);
    /* The password stays out of the log: only the address is kept for messages. */
    char *at = strrchr(cl->url_text, '@');
    size_t scheme = url.unix_socket ? 7 : 8;
    if (at) memmove(cl->url_text + scheme, at + 1, strlen(at + 1) + 1);
    uint8_t rnd[8];
    if (wsx_random_bytes(rnd, sizeof rnd) < 0) {
        free_cluster(cl);
        set_err(err, WSX_ECRYPTO, "no random bytes for the node id");
        return WSX_ECRYPTO;
    }
    for (int i = 0; i < 8; i++)
        cl->node_id = cl->node_id << 8 | rnd[i];
    cl->rng = cl->node_id | 1;
    cl->st.node_id = cl->node_id;
    adopt_topics(cl);
    if (wsx__cluster_net_start(cl) < 0) goto oom;
    wsx_hub_hooks hooks = {on_first, on_last, cl};
    wsx_hub_set_hooks(hub, &hooks);
    wsx__hub_set_publish_hook(hub, on_publish, cl);
    *out = cl;
    set_err(err, 0, "");
    return 0;
oom:
    if (cl) free_cluster(cl);
    set_err(err, WSX_ENOMEM, "");
    return WSX_ENOMEM;
}

void wsx_cluster_stop(wsx_cluster *cl)
{
    if (!cl) return;
    cl->stopping = true;
    if (cl->hub->hooks.arg == cl) wsx_hub_set_hooks(cl->hub, NULL);
    if (cl->hub->pub_hook_arg == cl) wsx__hub_set_publish_hook(cl->hub, NULL, NULL);
    cl->o.on_state = NULL; /* no callback during the stop */
    cl->o.on_log = NULL;
    wsx__cluster_net_stop(cl);
    free_cluster(cl);
}

int wsx_cluster_publish(wsx_cluster *cl, const char *topic, const void *data, size_t len, int type,
                        uint64_t tag)
{
    size_t tlen;
    if (!cl || !wsx__topic_name_ok(topic, &tlen) || (len && !data) ||
        (type != WSX_TEXT && type != WSX_BINARY))
        return WSX_EINVAL;
    if (!clustered(cl, topic, tlen)) return WSX_ENOTFOUND;
    if (len > cl->o.max_message) return WSX_ETOOBIG;
    if (cl->state != WSX_CLUSTER_UP) {
        cl->st.not_relayed++;
        return WSX_ECLOSED;
    }
    if (cl->cmd.pending >= cl->o.max_pending ||
        wsx__cluster_unsent(cl) + len > cl->o.max_pending_bytes) {
        cl->st.not_relayed++;
        return WSX_ELIMIT;
    }
    size_t chlen;
    char *ch = wsx__cluster_channel(cl, topic, tlen, &chlen);
    uint8_t *env = malloc(WSX__ENV_HEAD + len);
    if (!ch || !env) {
        free(ch);
        free(env);
        cl->st.not_relayed++;
        return WSX_ENOMEM;
    }
    wsx__env_head(env, cl->node_id, ++cl->seq, tag, type);
    if (len) memcpy(env + WSX__ENV_HEAD, data, len);
    const char *argv[3] = {"PUBLISH", ch, (const char *)env};
    size_t lens[3] = {7, chlen, WSX__ENV_HEAD + len};
    int rc = wsx__cluster_publish_cmd(cl, argv, lens);
    free(ch);
    free(env);
    if (rc < 0) {
        cl->st.not_relayed++;
        return rc;
    }
    cl->st.relayed++;
    return 0;
}

int wsx_cluster_subscribe(wsx_cluster *cl, const char *topic)
{
    size_t len;
    if (!cl || !wsx__topic_name_ok(topic, &len)) return WSX_EINVAL;
    if (!clustered(cl, topic, len)) return WSX_ENOTFOUND;
    int rc = chan_add(cl, topic, len);
    if (rc == 1) wsx__cluster_sub(cl, topic, len, true);
    return rc < 0 ? rc : 0;
}

int wsx_cluster_unsubscribe(wsx_cluster *cl, const char *topic)
{
    size_t len;
    bool found;
    if (!cl || !wsx__topic_name_ok(topic, &len)) return WSX_EINVAL;
    if (chan_remove(cl, topic, len, &found)) wsx__cluster_sub(cl, topic, len, false);
    return found ? 0 : WSX_ENOTFOUND;
}

int wsx_cluster_command(wsx_cluster *cl, int argc, const char *const *argv, const size_t *lens,
                        wsx_cluster_reply_cb cb, void *arg)
{
    if (!cl || argc < 1 || !argv || !lens || !cb) return WSX_EINVAL;
    if (cl->state != WSX_CLUSTER_UP) return WSX_ECLOSED;
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += lens[i];
    if (cl->cmd.pending >= cl->o.max_pending ||
        wsx__cluster_unsent(cl) + bytes > cl->o.max_pending_bytes)
        return WSX_ELIMIT;
    return wsx__cluster_command(cl, argc, argv, lens, cb, arg);
}

int wsx_cluster_sync(wsx_cluster *cl, wsx_cluster_sync_cb cb, void *arg)
{
    if (!cl || !cb) return WSX_EINVAL;
    if (cl->state != WSX_CLUSTER_UP || cl->stopping) return WSX_ECLOSED;
    return wsx__cluster_sync(cl, cb, arg);
}

void wsx_cluster_envelope(uint8_t *out, uint64_t node, uint64_t tag, int type)
{
    wsx__env_head(out, node, 0, tag, type);
}

ptrdiff_t wsx_cluster_channel(const wsx_cluster *cl, const char *topic, char *out, size_t cap)
{
    size_t len, n;
    if (!cl || !out || !wsx__topic_name_ok(topic, &len)) return WSX_EINVAL;
    char *ch = wsx__cluster_channel(cl, topic, len, &n);
    if (!ch) return WSX_ENOMEM;
    ptrdiff_t rc = n < cap ? (ptrdiff_t)n : WSX_ENOSPC;
    if (rc >= 0) memcpy(out, ch, n + 1);
    free(ch);
    return rc;
}

bool wsx_cluster_subscribed(const wsx_cluster *cl, const char *topic)
{
    size_t len;
    return cl && wsx__topic_name_ok(topic, &len) && chan_has((wsx_cluster *)cl, topic, len);
}

void wsx_cluster_get_stats(const wsx_cluster *cl, wsx_cluster_stats *out)
{
    *out = cl->st;
    out->state = cl->state;
    out->channels = cl->nchans;
    out->pending = cl->cmd.pending;
    out->node_id = cl->node_id;
}

int wsx_cluster_psubscribe(wsx_cluster *cl, const char *pattern, wsx_cluster_pmessage_cb cb,
                           void *user)
{
    if (!cl || !pattern || !cb) return WSX_EINVAL;
    size_t len = strlen(pattern);
    if (len == 0 || len > 512) return WSX_EINVAL;
    for (const wsx__pat *p = cl->pats; p; p = p->next)
        if (p->len == len && memcmp(p->pattern, pattern, len) == 0) return WSX_EINVAL;
    if (cl->npats >= 64) return WSX_ELIMIT;
    wsx__pat *p = malloc(sizeof *p + len + 1);
    if (!p) return WSX_ENOMEM;
    p->cb = cb;
    p->user = user;
    p->len = len;
    memcpy(p->pattern, pattern, len + 1);
    p->next = cl->pats;
    cl->pats = p;
    cl->npats++;
    wsx__cluster_psub(cl, p->pattern, len, true);
    return 0;
}

int wsx_cluster_punsubscribe(wsx_cluster *cl, const char *pattern)
{
    if (!cl || !pattern) return WSX_ENOTFOUND;
    size_t len = strlen(pattern);
    for (wsx__pat **pp = &cl->pats; *pp; pp = &(*pp)->next)
        if ((*pp)->len == len && memcmp((*pp)->pattern, pattern, len) == 0) {
            wsx__pat *p = *pp;
            *pp = p->next;
            cl->npats--;
            wsx__cluster_psub(cl, p->pattern, len, false);
            free(p);
            return 0;
        }
    return WSX_ENOTFOUND;
}
