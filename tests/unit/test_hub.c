/*
 * The topic registry (src/pubsub/hub.c) against a reference model: random subscribe,
 * unsubscribe, publish and close (a subscriber ending all its subscriptions) sequences, with
 * the same operations run from inside delivery callbacks and first/last hooks, checked in
 * lockstep (each delivery must be the one the model expects next). Run under ASan, the
 * deferred frees of ended subscriptions and topics are checked too.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "wsx.h"

#define NCLIENTS  6
#define NTOPICS   4
#define MAXRECS   4096
#define MAXDEPTH  3
#define MAXFRAMES 8

/* One subscription as the model sees it. */
typedef struct rec {
    int client, topic;
    bool live;
    wsx_sub *h;
} rec;

/* A publish in progress (nested ones stack): what the model says it delivers. */
typedef struct frame {
    int topic, except; /* except: a client, or -1 */
    int snap[MAXRECS];
    int nsnap, pos;
    int delivered;
    void *ctx;
    int form_makes;
} frame;

static struct model {
    wsx_hub *hub;
    rec recs[MAXRECS];
    int nrecs;
    int order[NTOPICS][MAXRECS]; /* live records of each topic, in subscription order */
    int norder[NTOPICS];
    int first_want[NTOPICS], first_got[NTOPICS];
    int last_want[NTOPICS], last_got[NTOPICS];
    frame frames[MAXFRAMES];
    int nframes;
    int depth;
    uint64_t rng;
    int form_made, form_released;
    int clients[NCLIENTS]; /* their addresses are the subscriptions' user pointers */
    uint64_t seed;
    bool failed_once;
} M;

static const char *const topic_names[NTOPICS] = {"t0", "room:b", "t2", "a-longer-topic-name"};

static uint32_t rnd(uint32_t n)
{
    M.rng ^= M.rng << 13;
    M.rng ^= M.rng >> 7;
    M.rng ^= M.rng << 17;
    return (uint32_t)(M.rng % n);
}

static int topic_index(const char *name)
{
    for (int t = 0; t < NTOPICS; t++)
        if (!strcmp(name, topic_names[t])) return t;
    return -1;
}

static void fail_seed(void)
{
    if (!M.failed_once) fprintf(stderr, "  (seed %llu)\n", (unsigned long long)M.seed);
    M.failed_once = true;
}

#define MCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            CHECK(cond);                                                                           \
            fail_seed();                                                                           \
        }                                                                                          \
    } while (0)

static void random_action(bool allow_publish);

/* ---- the hub's callbacks ---- */

static void *form_make(const wsx_hub_msg *m, void *arg)
{
    (void)arg;
    M.form_made++;
    M.frames[M.nframes - 1].form_makes++;
    char *f = malloc(m->len + 1);
    if (f) {
        memcpy(f, m->data, m->len);
        f[m->len] = '\0';
    }
    return f;
}

static void form_release(void *form, void *arg)
{
    (void)arg;
    M.form_released++;
    free(form);
}

static const wsx_hub_form form_kind = {form_make, form_release, NULL};

static int on_deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    MCHECK(M.nframes > 0);
    if (M.nframes == 0) return 0;
    frame *f = &M.frames[M.nframes - 1];
    /* The model's next delivery: the next snapshot entry still live and not excepted. */
    while (f->pos < f->nsnap) {
        const rec *r = &M.recs[f->snap[f->pos]];
        if (r->live && r->client != f->except) break;
        f->pos++;
    }
    MCHECK(f->pos < f->nsnap);
    if (f->pos >= f->nsnap) return 0;
    rec *r = &M.recs[f->snap[f->pos++]];
    MCHECK(r->h == sub);
    MCHECK(user == &M.clients[r->client]);
    MCHECK(wsx_sub_user(sub) == user);
    MCHECK(!strcmp(m->topic, topic_names[f->topic]));
    MCHECK(!strcmp(wsx_sub_topic(sub), topic_names[f->topic]));
    MCHECK(m->ctx == f->ctx && m->len == 5 && !memcmp(m->data, "hello", 5));
    MCHECK(m->type == WSX_TEXT && m->prepared != NULL);
    if (rnd(3) == 0) {
        const char *form = wsx_hub_msg_form(m, &form_kind);
        MCHECK(form && !strcmp(form, "hello"));
    }
    f->delivered++;
    if (M.depth < MAXDEPTH && rnd(3) == 0) {
        M.depth++;
        random_action(true);
        M.depth--;
    }
    return 1;
}

static void on_first(wsx_hub *h, const char *topic, void *arg)
{
    (void)arg;
    int t = topic_index(topic);
    MCHECK(h == M.hub && t >= 0);
    if (t < 0) return;
    M.first_got[t]++;
    MCHECK(wsx_hub_subscribers(h, topic) == 1);
    if (M.depth < MAXDEPTH && rnd(4) == 0) {
        M.depth++;
        random_action(true);
        M.depth--;
    }
}

static void on_last(wsx_hub *h, const char *topic, void *arg)
{
    (void)arg;
    int t = topic_index(topic);
    MCHECK(h == M.hub && t >= 0);
    if (t < 0) return;
    M.last_got[t]++;
    MCHECK(wsx_hub_subscribers(h, topic) == 0);
    if (M.depth < MAXDEPTH && rnd(4) == 0) {
        M.depth++;
        random_action(true);
        M.depth--;
    }
}

/* ---- operations, applied to the model and the hub together ---- */

static void do_subscribe(int client, int t)
{
    if (M.nrecs == MAXRECS) return;
    int id = M.nrecs++;
    rec *r = &M.recs[id];
    r->client = client;
    r->topic = t;
    r->live = true;
    r->h = NULL;
    M.order[t][M.norder[t]++] = id;
    if (M.norder[t] == 1) M.first_want[t]++;
    /* The model first: the first-subscriber hook may act on this subscription already. */
    int rc = wsx_hub_subscribe(M.hub, topic_names[t], on_deliver, &M.clients[client], &r->h);
    MCHECK(rc == 0);
}

static void do_unsubscribe(int id)
{
    rec *r = &M.recs[id];
    if (!r->live) return;
    r->live = false;
    int t = r->topic;
    for (int i = 0; i < M.norder[t]; i++) {
        if (M.order[t][i] == id) {
            memmove(&M.order[t][i], &M.order[t][i + 1],
                    (size_t)(M.norder[t] - i - 1) * sizeof M.order[t][0]);
            M.norder[t]--;
            break;
        }
    }
    if (M.norder[t] == 0) M.last_want[t]++;
    wsx_hub_unsubscribe(r->h);
}

static void do_close(int client)
{
    /* Records made by hooks during this walk are closed too: the walk reaches them. */
    for (int id = 0; id < M.nrecs; id++)
        if (M.recs[id].live && M.recs[id].client == client) do_unsubscribe(id);
}

static void do_publish(int t, int except)
{
    if (M.nframes == MAXFRAMES) return;
    frame *f = &M.frames[M.nframes++];
    f->topic = t;
    f->except = except;
    f->nsnap = M.norder[t];
    memcpy(f->snap, M.order[t], (size_t)f->nsnap * sizeof f->snap[0]);
    f->pos = 0;
    f->delivered = 0;
    f->form_makes = 0;
    f->ctx = &M.frames[M.nframes - 1];
    ptrdiff_t n = wsx_hub_publish(M.hub, topic_names[t], "hello", 5, WSX_TEXT,
                                  except >= 0 ? &M.clients[except] : NULL, f->ctx);
    /* Nothing the model still expects was skipped. */
    for (; f->pos < f->nsnap; f->pos++) {
        const rec *r = &M.recs[f->snap[f->pos]];
        MCHECK(!r->live || r->client == except);
    }
    MCHECK(n == f->delivered);
    MCHECK(f->form_makes <= 1); /* a form is made once per publish at most */
    M.nframes--;
}

static int random_live(void)
{
    int live[MAXRECS], n = 0;
    for (int id = 0; id < M.nrecs; id++)
        if (M.recs[id].live) live[n++] = id;
    return n ? live[rnd((uint32_t)n)] : -1;
}

static void random_action(bool allow_publish)
{
    switch (rnd(allow_publish ? 10 : 7)) {
    case 0:
    case 1:
    case 2:
        do_subscribe((int)rnd(NCLIENTS), (int)rnd(NTOPICS));
        break;
    case 3:
    case 4: {
        int id = random_live();
        if (id >= 0) do_unsubscribe(id);
        break;
    }
    case 5:
        do_close((int)rnd(NCLIENTS));
        break;
    case 6:
        break;
    default:
        do_publish((int)rnd(NTOPICS), rnd(2) ? (int)rnd(NCLIENTS) : -1);
        break;
    }
}

static void check_counts(void)
{
    size_t topics = 0;
    for (int t = 0; t < NTOPICS; t++) {
        MCHECK(wsx_hub_subscribers(M.hub, topic_names[t]) == (size_t)M.norder[t]);
        MCHECK(M.first_got[t] == M.first_want[t]);
        MCHECK(M.last_got[t] == M.last_want[t]);
        topics += M.norder[t] > 0;
    }
    MCHECK(wsx_hub_topics(M.hub) == topics);
    MCHECK(M.form_made == M.form_released);
}

/* One sequence from a seed; ends with every client closed (even seeds) or with
 * subscriptions left for wsx_loop_free() to free (odd seeds). */
static void run_seed(uint64_t seed, int ops)
{
    memset(&M, 0, sizeof M);
    M.seed = seed;
    M.rng = seed * 0x9E3779B97F4A7C15ull + 1;
    wsx_loop *loop = NULL;
    CHECK_INT(wsx_loop_new(&loop), 0);
    M.hub = wsx_hub_of(loop);
    CHECK(M.hub != NULL && wsx_hub_of(loop) == M.hub);
    wsx_hub_hooks hooks = {on_first, on_last, NULL};
    wsx_hub_set_hooks(M.hub, &hooks);
    for (int i = 0; i < ops && !M.failed_once; i++) {
        random_action(true);
        check_counts();
    }
    if (seed % 2 == 0) {
        M.depth = MAXDEPTH; /* hooks act no more: what they subscribed would outlive the close */
        for (int c = 0; c < NCLIENTS; c++)
            do_close(c);
        check_counts();
        MCHECK(wsx_hub_topics(M.hub) == 0);
    }
    wsx_loop_free(loop);
}

TEST(model_random_sequences)
{
    for (uint64_t seed = 1; seed <= 300 && !M.failed_once; seed++)
        run_seed(seed, 400);
}

/* ---- fixed cases: the rules the model relies on, one by one ---- */

static int fixed_calls;
static wsx_sub *fixed_other, *fixed_new;

static int unsub_other(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)m, (void)user;
    fixed_calls++;
    /* Ends the next subscriber and itself, and subscribes a new one: the publish goes on
     * with neither of the two ended ones nor the new one. */
    wsx_hub_unsubscribe(fixed_other);
    fixed_other = NULL;
    wsx_hub_unsubscribe(sub);
    CHECK_INT(wsx_hub_subscribe(M.hub, "x", unsub_other, NULL, &fixed_new), 0);
    return 1;
}

static int count_only(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub, (void)m, (void)user;
    fixed_calls++;
    return 1;
}

static int fail_nomem(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub, (void)m, (void)user;
    fixed_calls++;
    return WSX_ENOMEM;
}

TEST(fixed_cases)
{
    wsx_loop *loop = NULL;
    CHECK_INT(wsx_loop_new(&loop), 0);
    wsx_hub *h = M.hub = wsx_hub_of(loop);
    wsx_sub *a, *b, *c;
    CHECK_INT(wsx_hub_subscribe(h, "x", unsub_other, NULL, &a), 0);
    CHECK_INT(wsx_hub_subscribe(h, "x", count_only, NULL, &fixed_other), 0);
    CHECK_INT(wsx_hub_subscribe(h, "x", count_only, NULL, &b), 0);
    fixed_calls = 0;
    CHECK_INT(wsx_hub_publish(h, "x", "m", 1, WSX_TEXT, NULL, NULL), 2); /* a and b */
    CHECK_INT(fixed_calls, 2);
    CHECK_INT(wsx_hub_subscribers(h, "x"), 2); /* b and the new one */
    CHECK_INT(wsx_hub_topics(h), 1);
    wsx_hub_unsubscribe(b);
    wsx_hub_unsubscribe(fixed_new);
    CHECK_INT(wsx_hub_topics(h), 0);

    /* Errors: a callback's error ends the publish and is returned. */
    CHECK_INT(wsx_hub_subscribe(h, "y", fail_nomem, NULL, &a), 0);
    CHECK_INT(wsx_hub_subscribe(h, "y", count_only, NULL, &b), 0);
    fixed_calls = 0;
    CHECK_INT(wsx_hub_publish(h, "y", "m", 1, WSX_BINARY, NULL, NULL), WSX_ENOMEM);
    CHECK_INT(fixed_calls, 1);
    /* Bad arguments. */
    char longname[1100];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_INT(wsx_hub_subscribe(h, "", count_only, NULL, &c), WSX_EINVAL);
    CHECK_INT(wsx_hub_subscribe(h, longname, count_only, NULL, &c), WSX_EINVAL);
    longname[1024] = '\0';
    CHECK_INT(wsx_hub_subscribe(h, longname, count_only, NULL, &c), 0);
    CHECK_INT(wsx_hub_subscribe(h, "y", NULL, NULL, &c), WSX_EINVAL);
    CHECK_INT(wsx_hub_subscribe(NULL, "y", count_only, NULL, &c), WSX_EINVAL);
    CHECK_INT(wsx_hub_publish(h, "y", "m", 1, 7, NULL, NULL), WSX_EINVAL);
    CHECK_INT(wsx_hub_publish(h, "y", NULL, 1, WSX_TEXT, NULL, NULL), WSX_EINVAL);
    CHECK_INT(wsx_hub_publish(h, "none", "m", 1, WSX_TEXT, NULL, NULL), 0);
    CHECK_INT(wsx_hub_publish(NULL, "y", "m", 1, WSX_TEXT, NULL, NULL), 0);
    wsx_hub_unsubscribe(NULL);
    CHECK(wsx_hub_of(NULL) == NULL);
    CHECK_INT(wsx_hub_topics(h), 2);
    /* a, b and c are left to wsx_loop_free(). */
    wsx_loop_free(loop);
}

/* ---- cross-thread: publishes posted to the loop reach its hub; ones still queued when
 * the loop is freed are freed with it ---- */

static wsx_server *ts_srv;
static int ts_got;

static int ts_deliver(wsx_sub *sub, wsx_hub_msg *m, void *user)
{
    (void)sub, (void)user;
    if (m->len == 3 && !memcmp(m->data, "abc", 3)) ts_got++;
    return 1;
}

static void *ts_poster(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        wsx_publish_threadsafe(ts_srv, "ts", "abc", 3, WSX_TEXT);
    return NULL;
}

static void ts_stop(wsx_timer *t, void *arg)
{
    (void)t;
    wsx_server_shutdown(arg, 0);
}

TEST(threadsafe_reaches_hub_and_frees_unrun)
{
    wsx_loop *loop = NULL;
    CHECK_INT(wsx_loop_new(&loop), 0);
    wsx_server_opts so = wsx_server_defaults();
    so.host = "127.0.0.1";
    CHECK_INT(wsx_server_start(loop, &so, &ts_srv, NULL), 0);
    wsx_sub *sub;
    CHECK_INT(wsx_hub_subscribe(wsx_hub_of(loop), "ts", ts_deliver, NULL, &sub), 0);
    pthread_t th;
    pthread_create(&th, NULL, ts_poster, NULL);
    pthread_join(th, NULL);
    ts_got = 0;
    wsx_timer_start(loop, 20, 0, ts_stop, ts_srv, NULL);
    CHECK_INT(wsx_loop_run(loop), 0);
    CHECK_INT(ts_got, 200);
    /* After the loop's last run: these stay queued and are freed by wsx_loop_free(), as is
     * the subscription (the ASan build's leak check fails otherwise). */
    pthread_create(&th, NULL, ts_poster, NULL);
    pthread_join(th, NULL);
    wsx_server_free(ts_srv);
    wsx_loop_free(loop);
    CHECK_INT(ts_got, 200);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    RUN(model_random_sequences);
    RUN(fixed_cases);
    RUN(threadsafe_reaches_hub_and_frees_unrun);
    return test_summary("hub");
}
