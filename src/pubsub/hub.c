/*
 * The topic registry: per loop, a hash table of topic name -> subscriptions in subscription
 * order. Subscribers are opaque (a callback and a user pointer); what a WebSocket subscriber
 * does with a message is pubsub.c's, and so is the publish walk (wsx_hub_publish), which
 * inlines it.
 *
 * Re-entrancy: a topic being published to (or walked, or in one of its hooks) is "held".
 * While held, an ended subscription stays linked with its callback cleared, and the topic
 * stays in the table even with no subscriber, so a walk's pointers stay valid whatever the
 * callbacks do; the last unhold unlinks the ended ones and frees an empty topic. A walk stops
 * at the tail it saw at its start, so subscriptions made during it are not visited.
 */
#include <stdlib.h>
#include <string.h>

#include "pubsub/pubsub.h"

/* Names the hub among the loop's extensions. */
static const char hub_key;

static uint32_t hash_name(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

bool wsx__topic_name_ok(const char *topic, size_t *len)
{
    if (!topic) return false;
    *len = strnlen(topic, WSX__MAX_TOPIC + 1);
    return *len > 0 && *len <= WSX__MAX_TOPIC;
}

static void hub_free(wsx__loop_ext *e)
{
    wsx_hub *h = (wsx_hub *)(void *)e;
    for (size_t i = 0; i < h->nbuckets; i++) {
        wsx__topic *t = h->buckets[i];
        while (t) {
            wsx__topic *next = t->hnext;
            wsx_sub *s = t->head;
            while (s) {
                wsx_sub *n = s->next;
                free(s);
                s = n;
            }
            free(t);
            t = next;
        }
    }
    free(h->buckets);
    free(h);
}

wsx_hub *wsx__hub_find(const wsx_loop *loop)
{
    return (wsx_hub *)(void *)wsx__loop_ext_find(loop, &hub_key);
}

wsx_hub *wsx_hub_of(wsx_loop *loop)
{
    if (!loop) return NULL;
    wsx_hub *h = wsx__hub_find(loop);
    if (h) return h;
    h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->nbuckets = 64;
    h->buckets = calloc(h->nbuckets, sizeof *h->buckets);
    if (!h->buckets) {
        free(h);
        return NULL;
    }
    h->loop = loop;
    h->ext.key = &hub_key;
    h->ext.free_fn = hub_free;
    wsx__loop_ext_add(loop, &h->ext);
    return h;
}

static wsx__topic *find(const wsx_hub *h, const char *name, size_t len, uint32_t hash)
{
    if (!h) return NULL;
    for (wsx__topic *t = h->buckets[hash & (h->nbuckets - 1)]; t; t = t->hnext)
        if (t->hash == hash && t->len == len && !memcmp(t->name, name, len)) return t;
    return NULL;
}

wsx__topic *wsx__hub_topic(const wsx_hub *h, const char *name, size_t len)
{
    return find(h, name, len, hash_name(name, len));
}

static void grow(wsx_hub *h)
{
    size_t nb = h->nbuckets * 2;
    wsx__topic **b = calloc(nb, sizeof *b);
    if (!b) return; /* a fuller table is slower, not wrong */
    for (size_t i = 0; i < h->nbuckets; i++) {
        wsx__topic *t = h->buckets[i];
        while (t) {
            wsx__topic *next = t->hnext;
            t->hnext = b[t->hash & (nb - 1)];
            b[t->hash & (nb - 1)] = t;
            t = next;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = nb;
}

static void drop_topic(wsx__topic *t)
{
    wsx_hub *h = t->hub;
    wsx__topic **pp = &h->buckets[t->hash & (h->nbuckets - 1)];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    h->nentries--;
    free(t);
}

static void unlink_sub(wsx__topic *t, wsx_sub *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        t->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        t->tail = s->prev;
    free(s);
}

void wsx__topic_hold(wsx__topic *t)
{
    t->busy++;
}

void wsx__topic_unhold(wsx__topic *t)
{
    if (--t->busy) return;
    if (t->zombies) {
        t->zombies = false;
        for (wsx_sub *s = t->head, *next; s; s = next) {
            next = s->next;
            if (!s->cb) unlink_sub(t, s);
        }
    }
    if (t->n == 0) drop_topic(t);
}

int wsx__hub_subscribe(wsx_hub *h, const char *name, size_t len, wsx_deliver_cb cb, void *user,
                       wsx_sub **chain, wsx_sub **out)
{
    uint32_t hash = hash_name(name, len);
    wsx__topic *t = find(h, name, len, hash);
    wsx_sub *s = malloc(sizeof *s);
    if (!s) return WSX_ENOMEM;
    if (!t) {
        if (!(t = malloc(sizeof *t + len + 1))) {
            free(s);
            return WSX_ENOMEM;
        }
        memcpy(t->name, name, len);
        t->name[len] = '\0';
        t->len = (uint32_t)len;
        t->hash = hash;
        t->hub = h;
        t->head = t->tail = NULL;
        t->n = 0;
        t->busy = 0;
        t->zombies = false;
        if (h->nentries >= h->nbuckets) grow(h);
        t->hnext = h->buckets[hash & (h->nbuckets - 1)];
        h->buckets[hash & (h->nbuckets - 1)] = t;
        h->nentries++;
    }
    s->topic = t;
    s->cb = cb;
    s->user = user;
    s->next = NULL;
    s->prev = t->tail;
    if (t->tail)
        t->tail->next = s;
    else
        t->head = s;
    t->tail = s;
    if (chain) {
        s->olink = *chain;
        *chain = s;
    }
    *out = s;
    if (t->n++ == 0) {
        h->ntopics++;
        if (h->hooks.on_first) {
            /* Held: the hook may end this subscription (then on_last runs inside it) without
             * freeing the topic under us. */
            wsx__topic_hold(t);
            h->hooks.on_first(h, t->name, h->hooks.arg);
            wsx__topic_unhold(t);
        }
    }
    return 0;
}

int wsx_hub_subscribe(wsx_hub *h, const char *topic, wsx_deliver_cb cb, void *user, wsx_sub **out)
{
    size_t len;
    if (!h || !cb || !out || !wsx__topic_name_ok(topic, &len)) return WSX_EINVAL;
    return wsx__hub_subscribe(h, topic, len, cb, user, NULL, out);
}

void wsx_hub_unsubscribe(wsx_sub *s)
{
    if (!s || !s->cb) return;
    wsx__topic *t = s->topic;
    wsx_hub *h = t->hub;
    s->cb = NULL;
    if (t->busy)
        t->zombies = true; /* a walk may stand on it: unlinked when the topic is let go */
    else
        unlink_sub(t, s);
    if (--t->n) return;
    h->ntopics--;
    /* Held through the hook (which may subscribe again); freed after it if still empty. */
    wsx__topic_hold(t);
    if (h->hooks.on_last) h->hooks.on_last(h, t->name, h->hooks.arg);
    wsx__topic_unhold(t);
}

const char *wsx_sub_topic(const wsx_sub *s)
{
    return s ? s->topic->name : NULL;
}

void *wsx_sub_user(const wsx_sub *s)
{
    return s ? s->user : NULL;
}

void wsx__hub_pub_clear(wsx__hub_pub *p)
{
    for (unsigned i = 0; i < p->nforms; i++)
        if (p->forms[i]) p->kinds[i]->release(p->forms[i], p->kinds[i]->arg);
}

void *wsx_hub_msg_form(wsx_hub_msg *m, const wsx_hub_form *kind)
{
    if (!m || !kind) return NULL;
    wsx__hub_pub *p = (wsx__hub_pub *)(void *)m;
    for (unsigned i = 0; i < p->nforms; i++)
        if (p->kinds[i] == kind) return p->forms[i];
    if (p->nforms == WSX__HUB_FORMS) return NULL;
    /* Recorded even when make fails, so a failing kind is tried once per publish. */
    void *f = kind->make(m, kind->arg);
    p->kinds[p->nforms] = kind;
    p->forms[p->nforms++] = f;
    return f;
}

size_t wsx_hub_subscribers(const wsx_hub *h, const char *topic)
{
    size_t len;
    if (!h || !wsx__topic_name_ok(topic, &len)) return 0;
    const wsx__topic *t = wsx__hub_topic(h, topic, len);
    return t ? t->n : 0;
}

size_t wsx_hub_topics(const wsx_hub *h)
{
    return h ? h->ntopics : 0;
}

void wsx_hub_set_hooks(wsx_hub *h, const wsx_hub_hooks *hooks)
{
    if (!h) return;
    if (hooks)
        h->hooks = *hooks;
    else
        memset(&h->hooks, 0, sizeof h->hooks);
}

void wsx__hub_publish_hook(const wsx_hub *h, wsx_publish_hook *hook, void **arg)
{
    *hook = h ? h->pub_hook : NULL;
    *arg = h ? h->pub_hook_arg : NULL;
}

void wsx__hub_set_publish_hook(wsx_hub *h, wsx_publish_hook hook, void *arg)
{
    h->pub_hook = hook;
    h->pub_hook_arg = arg;
}
