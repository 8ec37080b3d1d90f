/*
 * wsx/cluster.h — topics across processes through Redis pub/sub (src/cluster).
 *
 * A cluster object joins one loop's topic registry (its hub, see "Topic registry" in wsx.h)
 * to a Redis server, so that several processes (nodes) on the same Redis share their topics:
 *
 *   - a message published on one node to a clustered topic reaches that topic's local
 *     subscribers at once (the hub, framed once) and is sent to Redis once (one PUBLISH,
 *     whatever the number of subscribers anywhere);
 *   - every other node subscribed to the topic's Redis channel delivers it to its own local
 *     subscribers through its hub (framed once there too); the publishing node skips its
 *     own copy when Redis echoes it back (the node id in the envelope);
 *   - a node subscribes to a topic's Redis channel only while the topic has local
 *     subscribers (the hub's on_first/on_last hooks), so it receives only what it needs.
 *
 * Channel naming, the envelope and the failure behaviour are documented in docs/cluster.md.
 * This header is not included by wsx.h: include <wsx/cluster.h>. libwsx links hiredis.
 *
 * Thread: a cluster belongs to its loop's thread; every function here must be called on it.
 * Lifetime: wsx_cluster_start() creates it, wsx_cluster_stop() frees it; it must be stopped
 * before its loop is freed (its timer and its watchers keep wsx_loop_run() alive until then).
 * A loop has at most one cluster: it takes the hub's hooks (wsx_hub_set_hooks) and the
 * loop's publish hook (wsx_server_set_publish_hook); setting either elsewhere while a
 * cluster runs disconnects that part of it.
 */
#ifndef WSX_CLUSTER_H
#define WSX_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsx_cluster wsx_cluster;

/* Where a cluster is. Only WSX_CLUSTER_UP relays: in the two others, publishes are delivered
 * locally only and counted in not_relayed (nothing is queued for later). */
typedef enum wsx_cluster_state {
    WSX_CLUSTER_CONNECTING = 0, /* the first connection is being made */
    WSX_CLUSTER_UP = 1,         /* both connections ready: relaying */
    WSX_CLUSTER_DOWN = 2,       /* lost or failed: reconnecting with backoff */
} wsx_cluster_state;

/* "connecting", "up", "down". */
WSX_API const char *wsx_cluster_state_name(wsx_cluster_state s);

/* A message from another node, as opts.on_message sees it. Every pointer is borrowed for the
 * call. */
typedef struct wsx_cluster_msg {
    const char *topic; /* NUL-terminated */
    const uint8_t *data;
    size_t len;
    int type;      /* WSX_TEXT or WSX_BINARY */
    uint64_t tag;  /* the publisher's (wsx_cluster_publish) */
    uint64_t node; /* the publishing node's id (its wsx_cluster_stats.node_id) */
    uint64_t seq;  /* the publisher's sequence number: 1, 2, ... per publishing node */
} wsx_cluster_msg;

typedef void (*wsx_cluster_message_cb)(wsx_cluster *cl, const wsx_cluster_msg *m, void *user);
/* The state changed; why is a sentence ("connection refused", "command timed out"), "" when
 * the cluster came up. */
typedef void (*wsx_cluster_state_cb)(wsx_cluster *cl, wsx_cluster_state state, const char *why,
                                     void *user);

typedef struct wsx_cluster_opts {
    /* redis://[user:password@]host[:port][/db] (port 6379, db 0; user and password may be
     * percent-encoded; an IPv6 address in brackets), or
     * unix://[user:password@]/path/to/socket[?db=N].
     * AUTH (with the user, when given) and SELECT (db != 0) are sent on every connection.
     * A host name is resolved by hiredis with getaddrinfo(), which blocks the loop while it
     * runs: give an address when that matters. */
    const char *url;
    /* Channels are PREFIX:{TOPIC} (docs/cluster.md) ["wsx"]; nodes on one Redis with
     * different prefixes do not see each other. 1..64 bytes. */
    const char *prefix;
    /* Only topics whose names start with this are clustered [NULL or "": every topic]. */
    const char *topic_prefix;

    /* Milliseconds; 0 means the default in brackets. */
    uint32_t connect_timeout_ms; /* [2000] TCP connect, AUTH, SELECT and the first replies */
    uint32_t command_timeout_ms; /* [2000] commands awaiting a reply with none for this long:
                                    the connection is dropped and made again */
    uint32_t ping_interval_ms;   /* [1000] a PING after this long without a command, so that a
                                    server that hangs is seen within ping + command timeout */
    /* Reconnection with exponential backoff and jitter: the n-th consecutive attempt waits
     * uniformly in [d/2, d] with d = min(reconnect_max_ms, reconnect_min_ms * 2^(n-1)). */
    uint32_t reconnect_min_ms; /* [100] */
    uint32_t reconnect_max_ms; /* [5000] */
    /* The bound on what waits for Redis: a publish while this many commands await a reply,
     * or while the output not yet written to Redis exceeds max_pending_bytes, is not relayed
     * (counted in not_relayed). */
    size_t max_pending;       /* [10000] */
    size_t max_pending_bytes; /* [16 MiB] */
    /* Messages (payloads) larger than this are neither published nor delivered (a received
     * one counts in `bad`) [16 MiB]. */
    size_t max_message;

    /* A message from another node. NULL: it is published to the loop's hub
     * (wsx_hub_publish(hub, topic, data, len, type, NULL, NULL)), which delivers it to
     * every local subscriber of the topic; the publish hook does not run for it. */
    wsx_cluster_message_cb on_message;
    wsx_cluster_state_cb on_state; /* NULL: not called */
    wsx_log_cb on_log;             /* lines "redis: ..."; NULL: none */
    int log_level;                 /* [WSX_LOG_INFO] */
    void *user;
} wsx_cluster_opts;

/* The defaults (every field 0 or NULL except log_level; the brackets above). */
WSX_API wsx_cluster_opts wsx_cluster_defaults(void);

/*
 * Starts a cluster on loop: parses the URL, takes the loop hub's hooks, subscribes to the
 * clustered topics the hub already has, and starts connecting (asynchronously: the first
 * state is WSX_CLUSTER_CONNECTING, and on_state reports UP or DOWN). Never blocks on Redis
 * (but see url about host names). opts is copied (strings included).
 * Returns 0, WSX_EINVAL (loop, opts or out NULL, a bad prefix), WSX_EURL (the URL),
 * WSX_ENOMEM; *out untouched on failure. err (may be NULL) says why.
 */
WSX_API int wsx_cluster_start(wsx_loop *loop, const wsx_cluster_opts *opts, wsx_cluster **out,
                              wsx_error *err);

/*
 * Disconnects from Redis, gives the hub's hooks back (unset) and frees the cluster. No
 * callback runs during or after it, but those of pending wsx_cluster_command()s (NONE). Must not be
 * called from the cluster's own callbacks (on_message, on_state, on_log). Its fd watchers are
 * released at the end of the loop's iteration: outside wsx_loop_run(), run the loop once more (it
 * returns at once) before wsx_loop_free(). NULL is a no-op.
 */
WSX_API void wsx_cluster_stop(wsx_cluster *cl);

/*
 * Relays a message on topic to the other nodes (one PUBLISH), without local delivery: what
 * an application calls after delivering it locally itself (wsx_hub_publish); wsx_publish()
 * through a server of the loop does both by itself (the loop's publish hook). tag is an
 * opaque value carried to the receivers' on_message (0 if unused). Topics not clustered
 * (topic_prefix) are not relayed.
 * Returns 0 (sent to Redis, or queued to be written this iteration), WSX_ENOTFOUND (topic not
 * clustered), WSX_ECLOSED (Redis is not up: counted in not_relayed), WSX_ELIMIT (the bound
 * on pending commands or bytes: counted in not_relayed), WSX_ETOOBIG (over max_message),
 * WSX_EINVAL (a bad topic), WSX_ENOMEM.
 */
WSX_API int wsx_cluster_publish(wsx_cluster *cl, const char *topic, const void *data, size_t len,
                                int type, uint64_t tag);

/*
 * Keeps topic's channel subscribed on behalf of subscribers this loop's hub does not see (the
 * subscribers of other loops of the process, say, which this cluster relays to itself): the
 * channel is subscribed while the hub has subscribers to topic or these calls hold counts on
 * it. Each call counts once; wsx_cluster_unsubscribe() drops one count. Messages from other
 * nodes on topic are delivered as always (on_message, or the hub).
 * Returns 0, WSX_ENOTFOUND (topic not clustered; for unsubscribe: no count held), WSX_EINVAL,
 * WSX_ENOMEM.
 */
WSX_API int wsx_cluster_subscribe(wsx_cluster *cl, const char *topic);
WSX_API int wsx_cluster_unsubscribe(wsx_cluster *cl, const char *topic);

/* A message on a channel matching a pattern of wsx_cluster_psubscribe(): the raw payload, no
 * envelope (another program's format). Pointers are borrowed for the call; channel is not
 * NUL-terminated. */
typedef void (*wsx_cluster_pmessage_cb)(wsx_cluster *cl, const char *channel, size_t chlen,
                                        const uint8_t *data, size_t len, void *user);

/*
 * Subscribes to every channel matching pattern (Redis PSUBSCRIBE glob syntax), outside the
 * topic relay: the way to speak another program's pub/sub format on the same Redis (the
 * Socket.IO server's @socket.io/redis-adapter channels, say). Kept across reconnections like
 * the topic channels. cb(user) gets each message (not counted in the stats); payloads above
 * max_message are dropped (counted in bad). At most 64 patterns, 1..512 bytes each.
 * Returns 0, WSX_EINVAL (NULL, empty or too long; the pattern already subscribed), WSX_ELIMIT
 * (64), WSX_ENOMEM.
 */
WSX_API int wsx_cluster_psubscribe(wsx_cluster *cl, const char *pattern, wsx_cluster_pmessage_cb cb,
                                   void *user);
/* Drops a pattern of wsx_cluster_psubscribe(): its cb is not called after this. Returns 0 or
 * WSX_ENOTFOUND. */
WSX_API int wsx_cluster_punsubscribe(wsx_cluster *cl, const char *pattern);

/* A reply to wsx_cluster_command(). str/len for STRING, STATUS and ERROR (borrowed for the
 * callback); integer for INTEGER. NONE: no reply (the connection was lost first). */
enum {
    WSX_CLUSTER_REPLY_NONE = 0,
    WSX_CLUSTER_REPLY_INTEGER,
    WSX_CLUSTER_REPLY_STRING,
    WSX_CLUSTER_REPLY_STATUS,
    WSX_CLUSTER_REPLY_ERROR,
    WSX_CLUSTER_REPLY_NIL,
    WSX_CLUSTER_REPLY_ARRAY,
};
typedef struct wsx_cluster_reply {
    int type;
    long long integer;
    const char *str;
    size_t len;
} wsx_cluster_reply;
typedef void (*wsx_cluster_reply_cb)(wsx_cluster *cl, const wsx_cluster_reply *r, void *arg);

/*
 * Sends a command (argc arguments, binary-safe) on the command connection, under the same
 * bound as publishes (max_pending, max_pending_bytes): a script that numbers and publishes a
 * message, say (`wsx serve` does). cb(arg) is called exactly once, on the loop, with the
 * reply, or with type NONE when the connection is lost first or the cluster is stopped
 * (then inside wsx_cluster_stop()). If this call fails, cb is never called. cb must not
 * stop the cluster.
 * Returns 0, WSX_ECLOSED (not up), WSX_ELIMIT (the bound), WSX_EINVAL, WSX_ENOMEM.
 */
WSX_API int wsx_cluster_command(wsx_cluster *cl, int argc, const char *const *argv,
                                const size_t *lens, wsx_cluster_reply_cb cb, void *arg);

/*
 * A barrier on the subscription connection: cb(cl, true, arg) is called once every channel
 * subscription sent to Redis before this call is in effect, so that from then on whatever is
 * published on those channels reaches this node. What an application needs that subscribes and
 * then reads state from Redis (`wsx serve` reads a room's history that way): a write made
 * after the read is then surely seen on the channel. cb(cl, false, arg) when the connection is
 * lost first or the cluster is stopped (then inside wsx_cluster_stop()). Costs one SUBSCRIBE
 * of the node's own channel (already subscribed: Redis only confirms it).
 * Returns 0, WSX_ECLOSED (not up; cb is never called), WSX_EINVAL, WSX_ENOMEM.
 */
typedef void (*wsx_cluster_sync_cb)(wsx_cluster *cl, bool ok, void *arg);
WSX_API int wsx_cluster_sync(wsx_cluster *cl, wsx_cluster_sync_cb cb, void *arg);

/* The envelope's head (docs/cluster.md), for a message published by something other than
 * wsx_cluster_publish() (a script): node 0 is no node's, so every node delivers it, its own
 * publisher's included. Writes WSX_CLUSTER_HEAD bytes. */
#define WSX_CLUSTER_HEAD 28
WSX_API void wsx_cluster_envelope(uint8_t *out, uint64_t node, uint64_t tag, int type);

/* The channel of topic (PREFIX:{TOPIC}), NUL-terminated into out[cap]. Returns its length,
 * WSX_EINVAL (a bad topic) or WSX_ENOSPC. */
WSX_API ptrdiff_t wsx_cluster_channel(const wsx_cluster *cl, const char *topic, char *out,
                                      size_t cap);

/* Whether the node is subscribed to topic's channel (the topic has local subscribers, or
 * counts from wsx_cluster_subscribe()). */
WSX_API bool wsx_cluster_subscribed(const wsx_cluster *cl, const char *topic);

typedef struct wsx_cluster_stats {
    wsx_cluster_state state;
    uint64_t relayed;     /* messages published to Redis */
    uint64_t received;    /* messages from other nodes delivered locally */
    uint64_t own;         /* this node's messages seen back from Redis, skipped */
    uint64_t not_relayed; /* publishes dropped: Redis not up, or the pending bound */
    uint64_t bad;         /* received messages that were not a valid envelope */
    uint64_t reconnects;  /* times the cluster came up again after being down */
    uint64_t failures;    /* connections that failed or were lost (timeouts included) */
    uint64_t timeouts;    /* of which connect or command timeouts */
    size_t channels;      /* topic channels subscribed (clustered topics with subscribers) */
    size_t pending;       /* commands awaiting a reply */
    uint64_t node_id;     /* this node's id in the envelopes */
} wsx_cluster_stats;

/* Fills *out. cl and out must not be NULL. */
WSX_API void wsx_cluster_get_stats(const wsx_cluster *cl, wsx_cluster_stats *out);

#ifdef __cplusplus
}
#endif
#endif
