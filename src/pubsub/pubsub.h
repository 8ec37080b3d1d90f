/*
 * src/pubsub — the topic registry (hub.c) and the WebSocket subscribers on top of it
 * (pubsub.c). Private to the library; the public API is the pub/sub part of include/wsx.h.
 */
#ifndef WSX_PUBSUB_H
#define WSX_PUBSUB_H

#include "ws/ws.h"

#define WSX__MAX_TOPIC 1024

/*
 * One message and the WebSocket frames built from it so far: the plain frame, and per
 * compressor window a compressed one for connections that agreed to permessage-deflate
 * without server context takeover (they share the server's compressor, so one compressed
 * frame suits them all). A publish keeps one on the stack for the duration of the call (data
 * borrowed from the caller, frames built lazily); wsx_prepare() keeps one on the heap whose
 * payload is the plain frame's own, so it outlives the caller's buffer.
 */
struct wsx_prepared {
    wsx_loop *loop;
    const uint8_t *data;
    size_t len;
    int type;
    uint16_t zip_tried; /* bit w: compression for window w was tried */
    wsx__ref *plain;
    wsx__ref *zipped[16];
};

/* Releases the frames p holds (not p). */
void wsx__prepared_clear(wsx_prepared *p);

typedef struct wsx__topic wsx__topic;

/* One subscription: a node of its topic's list, in subscription order. */
struct wsx_sub {
    wsx__topic *topic;
    wsx_sub *next, *prev;
    /* NULL once ended while a publish of the topic was running: the node stays in the list
     * (the publish may hold a pointer to it) and is freed when the last such publish ends. */
    wsx_deliver_cb cb;
    void *user;
    wsx_sub *olink; /* the subscriber's own chain (a connection's subscriptions) */
};

struct wsx__topic {
    wsx__topic *hnext;
    wsx_hub *hub;
    wsx_sub *head, *tail;
    size_t n;      /* live subscriptions */
    uint32_t busy; /* publishes, iterations and hooks of this topic running (nested) */
    bool zombies;  /* ended subscriptions left in the list while busy */
    uint32_t hash;
    uint32_t len;
    char name[];
};

/* The registry of one loop (hub.c). */
struct wsx_hub {
    wsx__loop_ext ext; /* first: the loop frees the hub through it */
    wsx_loop *loop;
    wsx__topic **buckets;
    size_t nbuckets;
    size_t nentries; /* topics in the table (empty held ones included) */
    size_t ntopics;  /* topics with a subscription */
    wsx_hub_hooks hooks;
    wsx_publish_hook pub_hook;
    void *pub_hook_arg;
};

/* A publish's message and its shared forms, on the publisher's stack. */
#define WSX__HUB_FORMS 4
typedef struct wsx__hub_pub {
    wsx_hub_msg msg; /* first: a callback's wsx_hub_msg * is the hub_pub */
    wsx_prepared prepared;
    const wsx_hub_form *kinds[WSX__HUB_FORMS];
    void *forms[WSX__HUB_FORMS];
    unsigned nforms;
} wsx__hub_pub;

/* Releases the forms made during publish p (wsx_hub_msg_form). */
void wsx__hub_pub_clear(wsx__hub_pub *p);

/* A valid topic name: 1..WSX__MAX_TOPIC bytes before the NUL. Sets *len. */
bool wsx__topic_name_ok(const char *topic, size_t *len);

/* The loop's hub if it has one (never creates it). */
wsx_hub *wsx__hub_find(const wsx_loop *loop);
/* The topic named name[0..len), or NULL. */
wsx__topic *wsx__hub_topic(const wsx_hub *h, const char *name, size_t len);
/* wsx_hub_subscribe with the name's length known; the new subscription is also pushed on
 * *chain (through olink) when chain is not NULL, before the first-subscriber hook runs. */
int wsx__hub_subscribe(wsx_hub *h, const char *name, size_t len, wsx_deliver_cb cb, void *user,
                       wsx_sub **chain, wsx_sub **out);
/* Marks t in use (its subscriptions stay linked, ended ones too) / ends that; the second may
 * free t (when it has no subscriber left). */
void wsx__topic_hold(wsx__topic *t);
void wsx__topic_unhold(wsx__topic *t);

/* The publish hook of wsx_server_set_publish_hook, kept by the hub of the servers' loop. */
void wsx__hub_publish_hook(const wsx_hub *h, wsx_publish_hook *hook, void **arg);
void wsx__hub_set_publish_hook(wsx_hub *h, wsx_publish_hook hook, void *arg);

#endif
