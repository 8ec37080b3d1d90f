/*
 * src/cluster — the Redis relay of topics (include/wsx/cluster.h). redis.c is the hiredis
 * adapter for the wsx loop and the life of the two connections (commands, subscriptions):
 * connect, handshake, timeouts, reconnection with backoff; relay.c is the topic side: the
 * channel of each topic, the envelope, the hub's hooks, publish and receive. Private.
 */
#ifndef WSX_CLUSTER_PRIV_H
#define WSX_CLUSTER_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pubsub/pubsub.h"
#include "wsx/cluster.h"

struct redisAsyncContext;

/* A parsed Redis URL. */
typedef struct wsx__redis_url {
    bool unix_socket;
    char host[256]; /* without brackets */
    uint16_t port;
    char path[108]; /* unix:// */
    char user[128];
    char pass[256];
    bool has_pass; /* AUTH is sent (with user when user[0]) */
    unsigned db;
} wsx__redis_url;

/* Parses redis://[user:password@]host[:port][/db] or unix://[user:password@]/path[?db=N].
 * Returns 0 or WSX_EURL; *why (may be NULL) gets a static reason. */
int wsx__redis_url_parse(const char *url, wsx__redis_url *out, const char **why);

/* The envelope (docs/cluster.md): a fixed head, then the payload. */
#define WSX__ENV_MAGIC   0x57u /* 'W' */
#define WSX__ENV_VERSION 1u
#define WSX__ENV_HEAD    28u
#define WSX__ENV_BINARY  1u /* flags: the payload is a binary message */

/* Writes the head for a message into out[WSX__ENV_HEAD]. */
void wsx__env_head(uint8_t *out, uint64_t node, uint64_t seq, uint64_t tag, int type);
/* Reads an envelope: 0 and the fields, or WSX_EINVAL (too short, bad magic or version,
 * unknown flags). The payload is env[WSX__ENV_HEAD..len). */
int wsx__env_parse(const uint8_t *env, size_t len, uint64_t *node, uint64_t *seq, uint64_t *tag,
                   int *type);

/* One of the two connections. */
typedef struct wsx__rconn {
    wsx_cluster *cl;
    struct redisAsyncContext *ac; /* NULL while not connected */
    bool ready;                   /* handshake answered */
    size_t pending;               /* commands (or subscription changes) awaiting a reply */
    uint64_t progress_at;         /* loop time of the last reply, or of the first pending */
} wsx__rconn;

/* A clustered topic with local subscribers: an entry of the channel set. */
typedef struct wsx__chan {
    struct wsx__chan *next;
    uint32_t refs; /* the hub's topic (1), plus wsx_cluster_subscribe() calls */
    uint32_t hash;
    uint32_t len;
    char topic[];
} wsx__chan;

/* A pattern of wsx_cluster_psubscribe(). */
typedef struct wsx__pat {
    struct wsx__pat *next;
    wsx_cluster_pmessage_cb cb;
    void *user;
    size_t len;
    char pattern[];
} wsx__pat;

struct wsx_cluster {
    wsx_loop *loop;
    wsx_hub *hub;
    wsx_cluster_opts o;
    wsx__redis_url url;
    char *url_text, *prefix, *topic_prefix;
    size_t prefix_len, topic_prefix_len;

    wsx_cluster_state state;
    char why[128]; /* why the last failure */
    wsx__rconn cmd, sub;
    wsx_timer *tick;
    bool tearing;        /* closing the connections: their callbacks are stale */
    bool stopping;       /* wsx_cluster_stop: no user callback any more */
    bool connecting;     /* an attempt is in progress (contexts made, not yet up) */
    uint64_t attempt_at; /* loop time the current attempt began */
    uint64_t retry_at;   /* loop time of the next attempt while down and idle */
    unsigned attempts;   /* consecutive failed attempts */
    uint64_t down_at;    /* loop time the cluster went down */
    uint64_t not_relayed_at_down;
    uint64_t last_cmd_at; /* loop time of the last command sent on cmd */
    uint64_t rng;         /* jitter */
    bool ever_up;

    /* Topics with local subscribers that are clustered: hash set of channels. */
    wsx__chan **buckets;
    size_t nbuckets, nchans;

    wsx__pat *pats; /* wsx_cluster_psubscribe() */
    size_t npats;

    uint64_t node_id, seq;
    wsx_cluster_stats st;

    /* wsx_cluster_sync calls waiting for their node-channel SUBSCRIBE confirmation, in order. */
    struct wsx__sync *sync_head, *sync_tail;
};

/* redis.c: starts the first connection attempt (timer and contexts). Returns 0 or
 * WSX_ENOMEM. */
int wsx__cluster_net_start(wsx_cluster *cl);
/* redis.c: closes both connections (no callback of ours runs after), stops the timer. */
void wsx__cluster_net_stop(wsx_cluster *cl);
/* redis.c: sends PUBLISH argv[1] argv[2] (binary-safe) on the command connection. Returns 0
 * or WSX_ECLOSED (no connection, or hiredis refused it). */
int wsx__cluster_publish_cmd(wsx_cluster *cl, const char **argv, const size_t *lens);
/* redis.c: sends argv on the command connection; the reply goes to cb(arg) (see
 * wsx_cluster_command). Returns 0 or WSX_ECLOSED / WSX_ENOMEM. */
int wsx__cluster_command(wsx_cluster *cl, int argc, const char *const *argv, const size_t *lens,
                         wsx_cluster_reply_cb cb, void *arg);
/* redis.c: see wsx_cluster_sync. */
int wsx__cluster_sync(wsx_cluster *cl, wsx_cluster_sync_cb cb, void *arg);
/* redis.c: bytes written into the command connection's output and not yet sent. */
size_t wsx__cluster_unsent(const wsx_cluster *cl);
/* redis.c: SUBSCRIBE / UNSUBSCRIBE one topic's channel on the subscription connection, if
 * it exists (a new connection subscribes to every channel of the set itself). */
void wsx__cluster_sub(wsx_cluster *cl, const char *topic, size_t len, bool on);
/* redis.c: PSUBSCRIBE / PUNSUBSCRIBE pattern on the subscription connection, if it exists
 * (a new connection subscribes to every pattern itself). */
void wsx__cluster_psub(wsx_cluster *cl, const char *pattern, size_t len, bool on);
/* relay.c: a message arrived on channel ch through pattern pat. */
void wsx__cluster_preceived(wsx_cluster *cl, const char *pat, size_t patlen, const char *ch,
                            size_t chlen, const uint8_t *data, size_t len);
/* redis.c: a log line at level (printf format). */
void wsx__cluster_log(wsx_cluster *cl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* relay.c: the channel name of topic, PREFIX:{TOPIC}, in a malloc'd buffer; *n its length.
 * NULL when out of memory. */
char *wsx__cluster_channel(const wsx_cluster *cl, const char *topic, size_t len, size_t *n);
/* relay.c: a message arrived on channel ch[0..chlen) with payload env[0..len). */
void wsx__cluster_received(wsx_cluster *cl, const char *ch, size_t chlen, const uint8_t *env,
                           size_t len);
/* relay.c: calls fn for every channel of the set. */
void wsx__cluster_each(wsx_cluster *cl, void (*fn)(wsx_cluster *cl, const wsx__chan *c));

#endif
