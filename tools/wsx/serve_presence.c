/*
 * `wsx serve --redis`: presence across nodes (docs/cluster.md, "Presence"). The chat knows
 * the people of this node; every `presence` and `online` event it publishes carries its
 * node's whole online list of the room, and so does each node's heartbeat (every HB_MS, all
 * its rooms). From those this file keeps, per room, the tabs of each person on each node
 * (node 0: this one), and rewrites what this node's members get:
 *
 *   - the `online` list of `joined`, `presence` and `online` is the sum over the nodes (a
 *     person's tabs on every node; people are told apart by name, as in the online list);
 *   - a `presence` join of someone who already has tabs on another node, or a leave of
 *     someone who still has, becomes an `online` event (the tab count changed, presence
 *     did not);
 *   - what a heartbeat shows that the events did not (a node that started, events lost while
 *     Redis was away), and the people of a node not heard from for EXPIRE_MS (killed, cut off),
 *     become `presence`/`online` events of this node.
 *
 * Redis and the other nodes get this node's events unchanged (its own list). Everything here
 * runs under the chat's lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "serve.h"

#define NAME_CAP    (4 * WSX_CHAT_MAX_NAME + 1)
#define MAX_ENTRIES 65536 /* (node, room, person) entries kept, over all rooms */
#define MAX_ROOMS   10000
#define MAX_NODES   256

typedef struct pentry {
    uint64_t node; /* 0: this node */
    uint32_t tabs;
    char name[NAME_CAP];
} pentry;

typedef struct proom {
    struct proom *next;
    char name[WSX_CHAT_MAX_ROOM + 1];
    pentry *e;
    size_t n, cap;
} proom;

static struct {
    proom *rooms;
    size_t n_rooms, n_entries;
    struct {
        uint64_t node, seen;
    } nodes[MAX_NODES];
    size_t n_nodes;
    bool full_logged;
} P;

static proom *room_get(const char *name, bool make)
{
    for (proom *r = P.rooms; r; r = r->next)
        if (!strcmp(r->name, name)) return r;
    if (!make || P.n_rooms >= MAX_ROOMS || strlen(name) > WSX_CHAT_MAX_ROOM) return NULL;
    proom *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->next = P.rooms;
    P.rooms = r;
    P.n_rooms++;
    return r;
}

static uint32_t tabs_of(const proom *r, const char *name)
{
    uint32_t t = 0;
    for (size_t i = 0; r && i < r->n; i++)
        if (!strcmp(r->e[i].name, name)) t += r->e[i].tabs;
    return t;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const pentry *)a)->name, ((const pentry *)b)->name);
}

/* The room's online list over every node: [{"name","tabs"}] sorted by name. */
static json_t *merged(const proom *r)
{
    json_t *arr = json_array();
    if (!r || !r->n || !arr) return arr;
    pentry *tmp = malloc(r->n * sizeof *tmp);
    if (!tmp) return arr;
    memcpy(tmp, r->e, r->n * sizeof *tmp);
    qsort(tmp, r->n, sizeof *tmp, by_name);
    for (size_t i = 0; i < r->n;) {
        uint32_t t = 0;
        size_t j = i;
        for (; j < r->n && !strcmp(tmp[j].name, tmp[i].name); j++)
            t += tmp[j].tabs;
        json_array_append_new(arr,
                              json_pack("{s:s,s:I}", "name", tmp[i].name, "tabs", (json_int_t)t));
        i = j;
    }
    free(tmp);
    return arr;
}

/* Replaces node's entries in r with the list (a JSON array of {"name","tabs"}; NULL: none). */
static void set_node(proom *r, uint64_t node, const json_t *list)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].node != node) r->e[k++] = r->e[i];
    P.n_entries -= r->n - k;
    r->n = k;
    size_t idx;
    const json_t *p;
    json_array_foreach(list, idx, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        json_int_t tabs = json_integer_value(json_object_get(p, "tabs"));
        if (!name || tabs <= 0 || strlen(name) >= NAME_CAP) continue;
        if (P.n_entries >= MAX_ENTRIES) {
            if (!P.full_logged)
                tool_logf(WSX_LOG_WARN, "presence across nodes: over %d entries, some not kept",
                          MAX_ENTRIES);
            P.full_logged = true;
            return;
        }
        if (r->n == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 8;
            pentry *e = realloc(r->e, cap * sizeof *e);
            if (!e) return;
            r->e = e;
            r->cap = cap;
        }
        pentry *e = &r->e[r->n++];
        e->node = node;
        e->tabs = tabs > UINT32_MAX ? UINT32_MAX : (uint32_t)tabs;
        snprintf(e->name, sizeof e->name, "%s", name);
        P.n_entries++;
    }
}

static char *dump(json_t *o, size_t *len)
{
    char *s = json_dumps(o, JSON_COMPACT);
    *len = s ? strlen(s) : 0;
    return s;
}

/* The event ev (presence or online, of room r, about `name` for presence) as this node's
 * members get it: the merged list; a presence join/leave that did not change whether the
 * person is present at all (before/after: their tabs over every node) becomes `online`. */
static void rewrite(json_t *ev, const proom *r, uint32_t before, uint32_t after)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (type && !strcmp(type, "presence")) {
        const char *what = json_string_value(json_object_get(ev, "event"));
        bool join = what && !strcmp(what, "join");
        if ((join && before > 0) || (!join && after > 0)) {
            json_object_set_new(ev, "type", json_string("online"));
            json_object_del(ev, "event");
            json_object_del(ev, "name");
        }
    }
    json_object_set_new(ev, "online", merged(r));
}

static bool starts(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len >= n && !memcmp(s, lit, n);
}

static void node_seen(uint64_t node)
{
    uint64_t now = wsx_loop_now(g_serve.runner.t[0].loop);
    for (size_t i = 0; i < P.n_nodes; i++)
        if (P.nodes[i].node == node) {
            P.nodes[i].seen = now;
            return;
        }
    if (P.n_nodes < MAX_NODES) {
        P.nodes[P.n_nodes].node = node;
        P.nodes[P.n_nodes++].seen = now;
    }
}

/* An event of room `room` from node (0: this node): the form this node's members get, or NULL
 * (not a presence event: as it is). */
static char *event(uint64_t node, const char *room, const char *json, size_t len, size_t *out_len)
{
    if (!starts(json, len, "{\"type\":\"presence\"") && !starts(json, len, "{\"type\":\"online\""))
        return NULL;
    json_t *ev = json_loadb(json, len, 0, NULL);
    proom *r = room_get(room, true);
    json_t *list = json_object_get(ev, "online");
    if (!ev || !r || !json_is_array(list)) {
        json_decref(ev);
        return NULL;
    }
    const char *name = json_string_value(json_object_get(ev, "name"));
    uint32_t before = name ? tabs_of(r, name) : 0;
    set_node(r, node, list);
    uint32_t after = name ? tabs_of(r, name) : 0;
    rewrite(ev, r, before, after);
    char *s = dump(ev, out_len);
    json_decref(ev);
    return s;
}

char *serve_presence_local(const char *room, const char *json, size_t len, size_t *out_len)
{
    return event(0, room, json, len, out_len);
}

char *serve_presence_remote(uint64_t node, const char *room, const char *json, size_t len,
                            size_t *out_len)
{
    node_seen(node);
    return event(node, room, json, len, out_len);
}

char *serve_presence_joined(const char *json, size_t len, size_t *out_len)
{
    if (!starts(json, len, "{\"type\":\"joined\"")) return NULL;
    json_t *ev = json_loadb(json, len, 0, NULL);
    const char *room = json_string_value(json_object_get(ev, "room"));
    proom *r = room ? room_get(room, true) : NULL;
    json_t *list = json_object_get(ev, "online");
    char *s = NULL;
    if (r && json_is_array(list)) {
        set_node(r, 0, list);
        json_object_set_new(ev, "online", merged(r));
        s = dump(ev, out_len);
    }
    json_decref(ev);
    return s;
}

/* Tells this node's members of room r what changed for `name` (tabs over every node from
 * before to after): presence join, leave, or (once per room, see announce_room) online. */
static void announce(const proom *r, const char *name, uint32_t before, uint32_t after,
                     bool *online_due)
{
    if (before == after) return;
    if (before && after) {
        *online_due = true;
        return;
    }
    json_t *ev = json_pack("{s:s,s:s,s:s,s:s,s:o}", "type", "presence", "room", r->name, "event",
                           after ? "join" : "leave", "name", name, "online", merged(r));
    size_t len;
    char *s = ev ? dump(ev, &len) : NULL;
    if (s) {
        serve_publish_local(r->name, s, len, 0, NULL);
        serve_relay_loops(r->name, s, len, 0);
    }
    free(s);
    json_decref(ev);
}

/* Sets node's people in r to list (NULL: none) and tells this node's members. */
static void replace_and_announce(proom *r, uint64_t node, const json_t *list)
{
    /* The names concerned: node's old ones and the new ones. */
    size_t n_old = 0;
    for (size_t i = 0; i < r->n; i++)
        n_old += r->e[i].node == node;
    size_t n_names = n_old + json_array_size(list), k = 0;
    if (!n_names) return;
    struct name_diff {
        char name[NAME_CAP];
        uint32_t before;
    } *d = calloc(n_names, sizeof *d);
    if (!d) return;
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i].node == node) snprintf(d[k++].name, NAME_CAP, "%s", r->e[i].name);
    size_t idx;
    const json_t *p;
    json_array_foreach(list, idx, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        if (name && k < n_names) snprintf(d[k++].name, NAME_CAP, "%s", name);
    }
    for (size_t i = 0; i < k; i++)
        d[i].before = tabs_of(r, d[i].name);
    set_node(r, node, list);
    bool online_due = false;
    for (size_t i = 0; i < k; i++) {
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = !strcmp(d[j].name, d[i].name);
        if (!dup) announce(r, d[i].name, d[i].before, tabs_of(r, d[i].name), &online_due);
    }
    if (online_due) {
        json_t *ev =
            json_pack("{s:s,s:s,s:o}", "type", "online", "room", r->name, "online", merged(r));
        size_t len;
        char *s = ev ? dump(ev, &len) : NULL;
        if (s) {
            serve_publish_local(r->name, s, len, 0, NULL);
            serve_relay_loops(r->name, s, len, 0);
        }
        free(s);
        json_decref(ev);
    }
    free(d);
}

void serve_presence_heartbeat(uint64_t node, const char *json, size_t len)
{
    json_t *hb = json_loadb(json, len, 0, NULL);
    json_t *rooms = json_object_get(hb, "rooms");
    if (!json_is_object(rooms)) {
        json_decref(hb);
        return;
    }
    node_seen(node);
    for (proom *r = P.rooms; r; r = r->next)
        if (!json_object_get(rooms, r->name)) replace_and_announce(r, node, NULL);
    const char *room;
    json_t *list;
    json_object_foreach(rooms, room, list)
    {
        proom *r = json_is_array(list) && wsx_chat_valid_room(room, strlen(room))
                       ? room_get(room, true)
                       : NULL;
        if (r) replace_and_announce(r, node, list);
    }
    json_decref(hb);
}

char *serve_presence_state(size_t *len)
{
    json_t *rooms = json_object();
    for (proom *r = P.rooms; r && rooms; r = r->next) {
        json_t *arr = json_array();
        for (size_t i = 0; i < r->n && arr; i++)
            if (r->e[i].node == 0)
                json_array_append_new(arr, json_pack("{s:s,s:I}", "name", r->e[i].name, "tabs",
                                                     (json_int_t)r->e[i].tabs));
        if (json_array_size(arr))
            json_object_set_new(rooms, r->name, arr);
        else
            json_decref(arr);
    }
    json_t *hb = json_pack("{s:o}", "rooms", rooms ? rooms : json_object());
    char *s = hb ? dump(hb, len) : NULL;
    json_decref(hb);
    return s;
}

void serve_presence_expire(uint64_t now, uint64_t expire_ms)
{
    for (size_t i = 0; i < P.n_nodes;) {
        if (now - P.nodes[i].seen < expire_ms) {
            i++;
            continue;
        }
        uint64_t node = P.nodes[i].node;
        tool_logf(WSX_LOG_INFO, "presence: node %016llx silent for %llu ms, its people leave",
                  (unsigned long long)node, (unsigned long long)(now - P.nodes[i].seen));
        P.nodes[i] = P.nodes[--P.n_nodes];
        for (proom *r = P.rooms; r; r = r->next)
            replace_and_announce(r, node, NULL);
    }
}

void serve_presence_free(void)
{
    while (P.rooms) {
        proom *r = P.rooms;
        P.rooms = r->next;
        free(r->e);
        free(r);
    }
    memset(&P, 0, sizeof P);
}
