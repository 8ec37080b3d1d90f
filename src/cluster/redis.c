/*
 * The Redis side of a cluster: the hiredis async adapter for the wsx loop, the two
 * connections (commands; subscriptions) and their life: connect, AUTH/SELECT, readiness,
 * timeouts, reconnection with backoff and jitter, re-subscription. Written against hiredis
 * 0.14 (Debian 12), whose async API has no timers of its own: every deadline here is checked
 * by one repeating timer of the cluster (TICK_MS).
 *
 * The two connections live and die together: a failure of either (an error, EOF, a timeout)
 * closes both and schedules one new attempt for both. Only the command connection is pinged:
 * hiredis 0.14 cannot match a PING reply in subscribed mode, and both connections go to the
 * same server, so a server that stops answering is seen on the command connection.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "cluster/cluster.h"
#include "wsx/watch.h"

/* How often the deadlines (connect, command, ping, retry) are checked: they fire up to this
 * late. */
#define TICK_MS 50

/* What a reply answers (the privdata of a command). */
enum { K_AUTH = 1, K_SELECT, K_READY, K_PING, K_PUBLISH, K_TOPIC, K_NODE, K_USER, K_PATTERN };

#define KIND(k) ((void *)(uintptr_t)(k))

void wsx__cluster_log(wsx_cluster *cl, int level, const char *fmt, ...)
{
    if (!cl->o.on_log || level > cl->o.log_level) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof line, "redis: ");
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    cl->o.on_log(level, line, cl->o.user);
}

/* ---- the adapter: a wsx_watch per hiredis context ----
 *
 * hiredis asks for read/write interest through ev.addRead & co. and says it is done with the
 * descriptor through ev.cleanup, which may run inside our own I/O callback (a context freed
 * while it reads): the watcher's state is then freed when that callback returns. */

typedef struct rio {
    wsx_watch *w;
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    unsigned events;
    bool in_cb;
} rio;

static void rio_set(rio *io, unsigned events)
{
    if (events == io->events || !io->w) return;
    io->events = events;
    /* Cannot fail for a descriptor already registered; if it did, the command timeout ends
     * the connection. */
    (void)wsx_watch_modify(io->w, events);
}

static void ev_add_read(void *p)
{
    rio *io = p;
    rio_set(io, io->events | WSX_READABLE);
}

static void ev_del_read(void *p)
{
    rio *io = p;
    rio_set(io, io->events & ~WSX_READABLE);
}

static void ev_add_write(void *p)
{
    rio *io = p;
    rio_set(io, io->events | WSX_WRITABLE);
}

static void ev_del_write(void *p)
{
    rio *io = p;
    rio_set(io, io->events & ~WSX_WRITABLE);
}

static void ev_cleanup(void *p)
{
    rio *io = p;
    wsx_watch_stop(io->w);
    io->w = NULL;
    io->ac = NULL;
    if (!io->in_cb) free(io);
}

static void rio_on_io(wsx_watch *w, int fd, unsigned events, void *arg)
{
    (void)w;
    (void)fd;
    rio *io = arg;
    io->in_cb = true;
    /* A hang-up is read: hiredis then sees the error or EOF (or, while connecting, checks
     * the socket's error) and ends the context. */
    if (events & (WSX_READABLE | WSX_HANGUP)) redisAsyncHandleRead(io->ac);
    if (io->ac && (events & WSX_WRITABLE)) redisAsyncHandleWrite(io->ac);
    io->in_cb = false;
    if (!io->ac) free(io);
}

static int attach(wsx_loop *loop, redisAsyncContext *ac)
{
    rio *io = calloc(1, sizeof *io);
    if (!io) return WSX_ENOMEM;
    int rc = wsx_watch_start(loop, ac->c.fd, 0, rio_on_io, io, &io->w);
    if (rc < 0) {
        free(io);
        return rc;
    }
    io->ac = ac;
    ac->ev.data = io;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

/* ---- state ---- */

static void set_state(wsx_cluster *cl, wsx_cluster_state s, const char *why)
{
    cl->state = s;
    if (cl->o.on_state) cl->o.on_state(cl, s, why, cl->o.user);
}

/* A wsx_cluster_sync call waiting for its confirmation. */
typedef struct wsx__sync {
    struct wsx__sync *next;
    wsx_cluster_sync_cb cb;
    void *arg;
} wsx__sync;

/* The oldest sync call is answered (confirmations come in the order the SUBSCRIBEs went). */
static void sync_pop(wsx_cluster *cl, bool ok)
{
    wsx__sync *s = cl->sync_head;
    if (!s) return;
    cl->sync_head = s->next;
    if (!cl->sync_head) cl->sync_tail = NULL;
    s->cb(cl, ok, s->arg);
    free(s);
}

/* Frees both contexts. Their callbacks run inside redisAsyncFree (replies with NULL, the
 * disconnect callback) and find themselves stale: the rconn no longer points at them. A
 * context inside its own callback is freed by hiredis when that callback returns. */
static void close_both(wsx_cluster *cl)
{
    cl->tearing = true;
    wsx__rconn *cs[2] = {&cl->cmd, &cl->sub};
    for (int i = 0; i < 2; i++) {
        redisAsyncContext *ac = cs[i]->ac;
        cs[i]->ac = NULL;
        cs[i]->ready = false;
        cs[i]->pending = 0;
        if (ac) redisAsyncFree(ac);
    }
    cl->tearing = false;
    cl->connecting = false;
    /* Their confirmations will not come: each is told, once. */
    while (cl->sync_head)
        sync_pop(cl, false);
}

/* The wait before attempt n (n >= 1): uniform in [d/2, d], d = min(max, min * 2^(n-1)). The
 * jitter keeps nodes that lost Redis together from coming back in lockstep. */
static uint32_t backoff(wsx_cluster *cl)
{
    uint64_t d = cl->o.reconnect_min_ms;
    for (unsigned i = 1; i < cl->attempts && d < cl->o.reconnect_max_ms; i++)
        d *= 2;
    if (d > cl->o.reconnect_max_ms) d = cl->o.reconnect_max_ms;
    /* xorshift64: jitter needs no cryptographic randomness. */
    cl->rng ^= cl->rng << 13;
    cl->rng ^= cl->rng >> 7;
    cl->rng ^= cl->rng << 17;
    return (uint32_t)(d / 2 + cl->rng % (d - d / 2 + 1));
}

static void fail(wsx_cluster *cl, bool timeout, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(wsx_cluster *cl, bool timeout, const char *fmt, ...)
{
    if (cl->tearing) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->why, sizeof cl->why, fmt, ap);
    va_end(ap);
    cl->st.failures++;
    if (timeout) cl->st.timeouts++;
    close_both(cl);
    cl->attempts++;
    uint32_t delay = backoff(cl);
    uint64_t now = wsx_loop_now(cl->loop);
    cl->retry_at = now + delay;
    if (cl->state != WSX_CLUSTER_DOWN) {
        bool was_up = cl->state == WSX_CLUSTER_UP;
        cl->down_at = now;
        cl->not_relayed_at_down = cl->st.not_relayed;
        wsx__cluster_log(cl, WSX_LOG_WARN,
                         "%s %s: %s; delivering locally only, reconnecting in %u ms",
                         was_up ? "lost" : "cannot connect to", cl->url_text, cl->why, delay);
        set_state(cl, WSX_CLUSTER_DOWN, cl->why);
    } else {
        wsx__cluster_log(cl, WSX_LOG_INFO, "attempt %u failed: %s; next in %u ms", cl->attempts,
                         cl->why, delay);
    }
}

static void maybe_up(wsx_cluster *cl)
{
    if (!cl->cmd.ready || !cl->sub.ready || cl->state == WSX_CLUSTER_UP) return;
    uint64_t now = wsx_loop_now(cl->loop);
    cl->connecting = false;
    cl->attempts = 0;
    cl->last_cmd_at = now;
    if (cl->ever_up) {
        cl->st.reconnects++;
        wsx__cluster_log(cl, WSX_LOG_WARN,
                         "connected to %s again after %llu ms down; %llu messages were not "
                         "relayed meanwhile; %zu channels subscribed again",
                         cl->url_text, (unsigned long long)(now - cl->down_at),
                         (unsigned long long)(cl->st.not_relayed - cl->not_relayed_at_down),
                         cl->nchans);
    } else {
        wsx__cluster_log(cl, WSX_LOG_INFO, "connected to %s (node %016llx)", cl->url_text,
                         (unsigned long long)cl->node_id);
    }
    cl->ever_up = true;
    set_state(cl, WSX_CLUSTER_UP, "");
}

/* ---- hiredis callbacks ---- */

static wsx__rconn *live(const redisAsyncContext *ac)
{
    wsx__rconn *c = ac->data;
    return c && c->ac == ac && !c->cl->tearing ? c : NULL;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    wsx__rconn *c = live(ac);
    redisReply *reply = r;
    if (!c || !reply) return;
    wsx_cluster *cl = c->cl;
    if (c->pending) c->pending--;
    c->progress_at = wsx_loop_now(cl->loop);
    int kind = (int)(uintptr_t)priv;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (kind == K_AUTH || kind == K_SELECT || kind == K_READY) {
            fail(cl, false, "%s refused: %.*s",
                 kind == K_AUTH     ? "AUTH"
                 : kind == K_SELECT ? "SELECT"
                                    : "PING",
                 (int)(reply->len < 200 ? reply->len : 200), reply->str);
            return;
        }
        /* A refused PUBLISH (a replica, out of memory): the message is lost like one sent
         * while down; said in the log at debug level so a flood of them does not flood it. */
        wsx__cluster_log(cl, WSX_LOG_DEBUG, "command refused: %.*s",
                         (int)(reply->len < 200 ? reply->len : 200), reply->str);
        return;
    }
    if (kind == K_READY) {
        c->ready = true;
        maybe_up(cl);
    }
}

static void on_sub(redisAsyncContext *ac, void *r, void *priv)
{
    wsx__rconn *c = live(ac);
    redisReply *reply = r;
    if (!c || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    wsx_cluster *cl = c->cl;
    const redisReply *k = reply->element[0], *ch = reply->element[1], *p = reply->element[2];
    if (k->type != REDIS_REPLY_STRING || ch->type != REDIS_REPLY_STRING) return;
    if (!strcasecmp(k->str, "pmessage")) {
        const redisReply *c2 = reply->elements > 3 ? reply->element[2] : NULL;
        const redisReply *p2 = reply->elements > 3 ? reply->element[3] : NULL;
        if (c2 && p2 && c2->type == REDIS_REPLY_STRING && p2->type == REDIS_REPLY_STRING &&
            (int)(uintptr_t)priv == K_PATTERN)
            wsx__cluster_preceived(cl, ch->str, ch->len, c2->str, c2->len, (const uint8_t *)p2->str,
                                   p2->len);
        return;
    }
    if (!strcasecmp(k->str, "message")) {
        if (p->type == REDIS_REPLY_STRING && (int)(uintptr_t)priv == K_TOPIC)
            wsx__cluster_received(cl, ch->str, ch->len, (const uint8_t *)p->str, p->len);
        return;
    }
    if (c->pending) c->pending--;
    c->progress_at = wsx_loop_now(cl->loop);
    /* The node channel is subscribed last: its confirmation means every topic channel sent
     * before it is subscribed too. */
    if ((int)(uintptr_t)priv == K_NODE && !strcasecmp(k->str, "subscribe")) {
        /* Once ready, a confirmation of the node channel answers a wsx_cluster_sync. */
        if (c->ready) {
            sync_pop(cl, true);
            return;
        }
        c->ready = true;
        maybe_up(cl);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    wsx__rconn *c = live(ac);
    if (!c || status == REDIS_OK) return;
    /* hiredis frees the context when this returns. */
    c->ac = NULL;
    fail(c->cl, false, "%s", ac->errstr[0] ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    wsx__rconn *c = live(ac);
    if (!c) return;
    c->ac = NULL;
    fail(c->cl, false, "%s",
         status == REDIS_OK ? "connection closed"
         : ac->errstr[0]    ? ac->errstr
                            : "connection lost");
}

/* ---- commands ---- */

static int cmd_kind(wsx__rconn *c, int argc, const char **argv, const size_t *lens, int kind)
{
    if (!c->ac) return WSX_ECLOSED;
    redisCallbackFn *fn =
        kind == K_TOPIC || kind == K_NODE || kind == K_PATTERN ? on_sub : on_reply;
    if (redisAsyncCommandArgv(c->ac, fn, KIND(kind), argc, argv, lens) != REDIS_OK)
        return WSX_ECLOSED;
    uint64_t now = wsx_loop_now(c->cl->loop);
    /* Counted while it has no reply: the command timeout runs from the later of the first
     * pending command and the last reply. */
    if (c->pending++ == 0) c->progress_at = now;
    if (c == &c->cl->cmd) c->cl->last_cmd_at = now;
    return 0;
}

/* A command of the application's (wsx_cluster_command): its callback, called once. */
typedef struct user_cmd {
    wsx_cluster_reply_cb cb;
    void *arg;
} user_cmd;

static void on_user_reply(redisAsyncContext *ac, void *r, void *priv)
{
    user_cmd *u = priv;
    wsx__rconn *c = ac->data;
    wsx_cluster *cl = c ? c->cl : NULL;
    redisReply *reply = r;
    wsx__rconn *lc = live(ac);
    if (lc && reply) {
        if (lc->pending) lc->pending--;
        lc->progress_at = wsx_loop_now(lc->cl->loop);
    }
    /* Also while stopping (NONE): the callback owns arg, and is called exactly once. */
    if (cl) {
        wsx_cluster_reply out = {WSX_CLUSTER_REPLY_NONE, 0, NULL, 0};
        if (reply && !cl->stopping) {
            switch (reply->type) {
            case REDIS_REPLY_INTEGER:
                out.type = WSX_CLUSTER_REPLY_INTEGER;
                out.integer = reply->integer;
                break;
            case REDIS_REPLY_STRING:
            case REDIS_REPLY_STATUS:
            case REDIS_REPLY_ERROR:
                out.type = reply->type == REDIS_REPLY_STRING   ? WSX_CLUSTER_REPLY_STRING
                           : reply->type == REDIS_REPLY_STATUS ? WSX_CLUSTER_REPLY_STATUS
                                                               : WSX_CLUSTER_REPLY_ERROR;
                out.str = reply->str;
                out.len = reply->len;
                break;
            case REDIS_REPLY_NIL:
                out.type = WSX_CLUSTER_REPLY_NIL;
                break;
            default:
                out.type = WSX_CLUSTER_REPLY_ARRAY;
            }
        }
        u->cb(cl, &out, u->arg);
    }
    free(u);
}

int wsx__cluster_command(wsx_cluster *cl, int argc, const char *const *argv, const size_t *lens,
                         wsx_cluster_reply_cb cb, void *arg)
{
    wsx__rconn *c = &cl->cmd;
    if (!c->ac) return WSX_ECLOSED;
    user_cmd *u = malloc(sizeof *u);
    if (!u) return WSX_ENOMEM;
    u->cb = cb;
    u->arg = arg;
    if (redisAsyncCommandArgv(c->ac, on_user_reply, u, argc, (const char **)argv, lens) !=
        REDIS_OK) {
        free(u);
        return WSX_ECLOSED;
    }
    uint64_t now = wsx_loop_now(cl->loop);
    if (c->pending++ == 0) c->progress_at = now;
    cl->last_cmd_at = now;
    return 0;
}

int wsx__cluster_publish_cmd(wsx_cluster *cl, const char **argv, const size_t *lens)
{
    return cmd_kind(&cl->cmd, 3, argv, lens, K_PUBLISH);
}

size_t wsx__cluster_unsent(const wsx_cluster *cl)
{
    return cl->cmd.ac && cl->cmd.ac->c.obuf ? sdslen(cl->cmd.ac->c.obuf) : 0;
}

void wsx__cluster_sub(wsx_cluster *cl, const char *topic, size_t len, bool on)
{
    if (!cl->sub.ac) return;
    size_t n;
    char *ch = wsx__cluster_channel(cl, topic, len, &n);
    if (!ch) {
        /* Without the channel this node would miss the topic: start over. */
        fail(cl, false, "out of memory");
        return;
    }
    const char *argv[2] = {on ? "SUBSCRIBE" : "UNSUBSCRIBE", ch};
    size_t lens[2] = {strlen(argv[0]), n};
    /* hiredis 0.14 routes each confirmation, unsubscribe included, to the callback
     * registered by the channel's SUBSCRIBE: on_sub counts them. */
    cmd_kind(&cl->sub, 2, argv, lens, K_TOPIC);
    free(ch);
}

void wsx__cluster_psub(wsx_cluster *cl, const char *pattern, size_t len, bool on)
{
    if (!cl->sub.ac) return;
    const char *argv[2] = {on ? "PSUBSCRIBE" : "PUNSUBSCRIBE", pattern};
    size_t lens[2] = {strlen(argv[0]), len};
    cmd_kind(&cl->sub, 2, argv, lens, K_PATTERN);
}

/* Sends AUTH and SELECT as the URL asks. */
static void handshake(wsx_cluster *cl, wsx__rconn *c)
{
    const wsx__redis_url *u = &cl->url;
    if (u->has_pass) {
        const char *argv[3] = {"AUTH", u->user, u->pass};
        size_t lens[3] = {4, strlen(u->user), strlen(u->pass)};
        if (u->user[0])
            cmd_kind(c, 3, argv, lens, K_AUTH);
        else {
            argv[1] = u->pass;
            lens[1] = lens[2];
            cmd_kind(c, 2, argv, lens, K_AUTH);
        }
    }
    if (u->db) {
        char db[16];
        snprintf(db, sizeof db, "%u", u->db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        cmd_kind(c, 2, argv, lens, K_SELECT);
    }
}

static bool open_one(wsx_cluster *cl, wsx__rconn *c)
{
    redisAsyncContext *ac = cl->url.unix_socket ? redisAsyncConnectUnix(cl->url.path)
                                                : redisAsyncConnect(cl->url.host, cl->url.port);
    if (!ac) {
        fail(cl, false, "out of memory");
        return false;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        fail(cl, false, "%s", why);
        return false;
    }
    int rc = attach(cl->loop, ac);
    if (rc < 0) {
        redisAsyncFree(ac);
        fail(cl, false, "%s", wsx_strerror(rc));
        return false;
    }
    ac->data = c;
    c->ac = ac;
    c->ready = false;
    c->pending = 0;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    handshake(cl, c);
    return true;
}

static int node_subscribe(wsx_cluster *cl)
{
    char node[96];
    int n =
        snprintf(node, sizeof node, "%s:node:%016llx", cl->prefix, (unsigned long long)cl->node_id);
    const char *argv[2] = {"SUBSCRIBE", node};
    size_t lens[2] = {9, (size_t)n};
    return cmd_kind(&cl->sub, 2, argv, lens, K_NODE);
}

int wsx__cluster_sync(wsx_cluster *cl, wsx_cluster_sync_cb cb, void *arg)
{
    wsx__sync *s = malloc(sizeof *s);
    if (!s) return WSX_ENOMEM;
    /* Replies on the subscription connection come in the order of its commands: the node
     * channel's confirmation follows those of every SUBSCRIBE sent before it. */
    if (node_subscribe(cl) < 0) {
        free(s);
        return WSX_ECLOSED;
    }
    *s = (wsx__sync){NULL, cb, arg};
    if (cl->sync_tail)
        cl->sync_tail->next = s;
    else
        cl->sync_head = s;
    cl->sync_tail = s;
    return 0;
}

static void subscribe_one(wsx_cluster *cl, const wsx__chan *ch)
{
    wsx__cluster_sub(cl, ch->topic, ch->len, true);
}

/* One attempt: both connections, their handshakes and the subscriptions, all pipelined
 * (hiredis writes them once connected); the cluster is up when the last replies are in. */
static void attempt(wsx_cluster *cl)
{
    cl->connecting = true;
    cl->attempt_at = wsx_loop_now(cl->loop);
    if (!open_one(cl, &cl->cmd)) return;
    const char *ping = "PING";
    size_t plen = 4;
    cmd_kind(&cl->cmd, 1, &ping, &plen, K_READY);
    if (!open_one(cl, &cl->sub)) return;
    wsx__cluster_each(cl, subscribe_one);
    for (const wsx__pat *p = cl->pats; p && cl->sub.ac; p = p->next)
        wsx__cluster_psub(cl, p->pattern, p->len, true);
    if (!cl->sub.ac) return; /* failed on the way */
    /* Always subscribed: with hiredis 0.14 an UNSUBSCRIBE that leaves no channel takes the
     * context out of subscribed mode, and a SUBSCRIBE confirmation arriving after that
     * aborts in an assertion; this channel keeps the count above zero. */
    node_subscribe(cl);
}

static void tick(wsx_timer *t, void *arg)
{
    (void)t;
    wsx_cluster *cl = arg;
    uint64_t now = wsx_loop_now(cl->loop);
    if (cl->connecting) {
        if (now - cl->attempt_at >= cl->o.connect_timeout_ms)
            fail(cl, true, "no answer within the connect timeout (%u ms)",
                 cl->o.connect_timeout_ms);
        return;
    }
    if (cl->state != WSX_CLUSTER_UP) {
        if (now >= cl->retry_at) attempt(cl);
        return;
    }
    if (cl->cmd.pending && now - cl->cmd.progress_at >= cl->o.command_timeout_ms) {
        fail(cl, true, "no reply within the command timeout (%u ms), %zu commands pending",
             cl->o.command_timeout_ms, cl->cmd.pending);
        return;
    }
    if (!cl->cmd.pending && now - cl->last_cmd_at >= cl->o.ping_interval_ms) {
        const char *ping = "PING";
        size_t plen = 4;
        cmd_kind(&cl->cmd, 1, &ping, &plen, K_PING);
    }
}

int wsx__cluster_net_start(wsx_cluster *cl)
{
    if (wsx_timer_start(cl->loop, 0, TICK_MS, tick, cl, &cl->tick) < 0) return WSX_ENOMEM;
    /* The first attempt runs from the timer (next iteration), so that no callback of the
     * cluster runs inside wsx_cluster_start(). */
    cl->state = WSX_CLUSTER_CONNECTING;
    cl->retry_at = 0;
    return 0;
}

void wsx__cluster_net_stop(wsx_cluster *cl)
{
    close_both(cl);
    wsx_timer_stop(cl->tick);
    cl->tick = NULL;
}
