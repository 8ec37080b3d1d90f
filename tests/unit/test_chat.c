/*
 * src/chat against a reference model: many connections doing random joins (same and other
 * room, same and other name), leaves, messages, typing, bad input and closes, driven through
 * the chat's API without sockets. After every step each connection's received events must be
 * exactly what the model predicts (presence, tab counts, online lists, message ids, history),
 * and the chat's counts and subscriptions must match the model's.
 *
 * WSX_CHAT_SEED and WSX_CHAT_STEPS vary the run (the default seed is fixed for ctest).
 */
#include <jansson.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "chat/chat.h"
#include "test.h"
#include "chat_test.h"
#include "wsx.h"

static const char *const person_names[] = {"ann", "bob", "cat", "émile"};
#define NNAMES (sizeof person_names / sizeof person_names[0])

/* ---- the reference model ---- */

typedef struct mconn {
    bool open;
    int room; /* -1: none */
    char name[64];
    int key;                       /* 0: none, else the key "k<N>" */
    uint64_t tokens[2], refill[2]; /* [0] chat messages, [1] joins and leaves */
    uint64_t window;
    unsigned refusals;
} mconn;

/* A client address's bucket of chat messages (rate_per_ip), shared by its connections. The
 * model never forgets one: the chat forgets an address only once its bucket is full again,
 * which a fresh bucket is too. */
typedef struct maddr {
    bool used;
    uint64_t tokens[2], refill[2]; /* [0] chat messages, [1] joins and leaves */
} maddr;

typedef struct mroom {
    bool exists;
    uint64_t next_id;
    uint64_t last_used;  /* joined, or became idle */
    size_t hist_n;       /* messages held, at most the history setting */
    uint64_t hist_id[8]; /* the ids held, oldest first (history <= 8 in these tests) */
    char hist_text[8][32];
} mroom;

typedef struct model {
    mconn c[NCONN];
    mroom r[NROOMS];
    size_t history, max_rooms;
    wsx_chat_opts o;
    maddr a[NCONN];
    uint64_t refused, closes; /* rate_limited errors sent, 1008 closes */
    char *want[NCONN][MAXEV];
    size_t n_want[NCONN];
} model;

static model M;

__attribute__((format(printf, 2, 3))) static void expect(int i, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (M.n_want[i] < MAXEV) M.want[i][M.n_want[i]++] = strdup(buf);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void model_online(int r, char *out, size_t cap)
{
    const char *names[NCONN];
    size_t n = 0, o = 0;
    for (int i = 0; i < NCONN; i++)
        if (M.c[i].open && M.c[i].room == r) names[n++] = M.c[i].name;
    qsort(names, n, sizeof *names, cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !strcmp(names[j], names[i]))
            j++;
        o += (size_t)snprintf(out + o, cap - o, "%s%s:%zu", o ? "," : "", names[i], j - i);
        i = j;
    }
}

static size_t model_tabs(int r, const char *name)
{
    size_t k = 0;
    for (int i = 0; i < NCONN; i++)
        k += M.c[i].open && M.c[i].room == r && !strcmp(M.c[i].name, name);
    return k;
}

static bool model_idle(int r)
{
    for (int i = 0; i < NCONN; i++)
        if (M.c[i].open && M.c[i].room == r) return false;
    return true;
}

static size_t model_rooms(void)
{
    size_t n = 0;
    for (int r = 0; r < NROOMS; r++)
        n += M.r[r].exists;
    return n;
}

/* The members of room r but `except` expect event. */
static void model_publish(int r, int except, const char *event)
{
    for (int i = 0; i < NCONN; i++)
        if (i != except && M.c[i].open && M.c[i].room == r) expect(i, "%s", event);
}

static void model_presence(int r, const char *name, bool joined)
{
    char on[1024];
    model_online(r, on, sizeof on);
    size_t tabs = model_tabs(r, name);
    if (joined ? tabs == 1 : tabs == 0) {
        char ev[64];
        snprintf(ev, sizeof ev, "presence|%s|%s|%s", room_names[r], joined ? "join" : "leave",
                 name);
        char e[2048];
        snprintf(e, sizeof e, "%s|%s", ev, on);
        model_publish(r, -1, e);
    } else {
        char e[2048];
        snprintf(e, sizeof e, "online|%s|%s", room_names[r], on);
        model_publish(r, -1, e);
    }
}

/* An idle room with history is kept, and the time it became idle orders the evictions. */
static void model_release(int r)
{
    if (!model_idle(r)) return;
    if (M.r[r].hist_n == 0)
        M.r[r].exists = false;
    else
        M.r[r].last_used = fake_now;
}

static void model_leave(int i, int keep)
{
    int r = M.c[i].room;
    if (r < 0) return;
    M.c[i].room = -1;
    model_presence(r, M.c[i].name, false);
    if (r != keep) model_release(r);
}

/* get_room: -1 when the cap is reached and no room is idle. */
static int model_get_room(int r)
{
    if (M.r[r].exists) {
        M.r[r].last_used = fake_now;
        return r;
    }
    if (model_rooms() >= M.max_rooms) {
        int victim = -1;
        for (int x = 0; x < NROOMS; x++)
            if (M.r[x].exists && model_idle(x) &&
                (victim < 0 || M.r[x].last_used < M.r[victim].last_used))
                victim = x;
        if (victim < 0) return -1;
        M.r[victim].exists = false;
    }
    memset(&M.r[r], 0, sizeof M.r[r]);
    M.r[r].exists = true;
    M.r[r].next_id = 1;
    M.r[r].last_used = fake_now;
    return r;
}

/* Which address each connection comes from (an index into M.a; -1: none). */
static int addr_of[NCONN];

static void model_refill(uint64_t *tokens, uint64_t *refill, uint64_t rate, uint64_t burst)
{
    uint64_t cap = burst * 1000;
    if (fake_now > *refill) {
        uint64_t add = (fake_now - *refill) * rate;
        *tokens = *tokens + add > cap ? cap : *tokens + add;
    }
    *refill = fake_now;
}

/* The token buckets, as docs/chat-protocol.md states them: a chat message needs a token of
 * its connection and one of its address; false when the message is refused (an error, or
 * the close when refusals exceed the limit within the window). */
static bool model_rate(int i, int join)
{
    mconn *c = &M.c[i];
    uint64_t rate = join ? M.o.join_rate : M.o.rate;
    uint64_t arate = join ? M.o.join_rate_per_ip : M.o.rate_per_ip;
    maddr *a = arate && addr_of[i] >= 0 ? &M.a[addr_of[i]] : NULL;
    if (!rate && !a) return true;
    if (rate)
        model_refill(&c->tokens[join], &c->refill[join], rate, join ? M.o.join_burst : M.o.burst);
    if (a)
        model_refill(&a->tokens[join], &a->refill[join], arate,
                     join ? M.o.join_burst_per_ip : M.o.burst_per_ip);
    if ((!rate || c->tokens[join] >= 1000) && (!a || a->tokens[join] >= 1000)) {
        if (rate) c->tokens[join] -= 1000;
        if (a) a->tokens[join] -= 1000;
        return true;
    }
    if (c->refusals == 0 || fake_now - c->window >= M.o.refusal_window_ms) {
        c->window = fake_now;
        c->refusals = 0;
    }
    if (++c->refusals > M.o.max_refusals) {
        expect(i, "close|1008");
        M.closes++;
    } else {
        expect(i, "error|rate_limited");
        M.refused++;
    }
    return false;
}

static void model_join(int i, int r, const char *name_in, int key)
{
    char name[64]; /* name_in may be the connection's current name */
    snprintf(name, sizeof name, "%s", name_in);
    if (M.r[r].exists) {
        /* The name belongs to the person present under it (the tabs other than i's); without
         * a key nobody is the same person. */
        size_t others = 0;
        int held = -1;
        for (int k = 0; k < NCONN; k++)
            if (k != i && M.c[k].open && M.c[k].room == r && !strcmp(M.c[k].name, name)) {
                others++;
                held = M.c[k].key;
            }
        if (others && (!key || held != key)) {
            expect(i, "error|name_taken");
            return;
        }
    }
    if (!model_rate(i, 1)) return;
    if (model_get_room(r) < 0) {
        expect(i, "error|bad_room");
        return;
    }
    model_leave(i, r);
    snprintf(M.c[i].name, sizeof M.c[i].name, "%s", name);
    M.c[i].key = key;
    M.c[i].room = r;
    char on[1024], h[1024];
    model_online(r, on, sizeof on);
    size_t o = 0;
    h[0] = '\0';
    for (size_t k = 0; k < M.r[r].hist_n; k++)
        o += (size_t)snprintf(h + o, sizeof h - o, "%s%llu:%s", k ? "," : "",
                              (unsigned long long)M.r[r].hist_id[k], M.r[r].hist_text[k]);
    expect(i, "joined|%s|%s|%s", room_names[r], name, on);
    expect(i, "history|%s|h=%s", room_names[r], h);
    model_presence(r, name, true);
}

static void model_message(int i, const char *text)
{
    int r = M.c[i].room;
    if (r < 0) {
        expect(i, "error|not_joined");
        return;
    }
    if (!model_rate(i, 0)) return;
    uint64_t id = M.r[r].next_id++;
    char ids[32];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
    char e[256];
    snprintf(e, sizeof e, "message|%s|%s|%s", room_names[r], M.c[i].name, text);
    model_publish(r, -1, e);
    for (int k = 0; k < NCONN; k++) /* append the id to what was just expected */
        if (M.c[k].open && M.c[k].room == r) {
            char *w = M.want[k][M.n_want[k] - 1];
            char buf[4096];
            snprintf(buf, sizeof buf, "%s|%s", w, ids);
            free(w);
            M.want[k][M.n_want[k] - 1] = strdup(buf);
        }
    if (!M.history) return;
    mroom *m = &M.r[r];
    if (m->hist_n == M.history) {
        memmove(m->hist_id, m->hist_id + 1, (M.history - 1) * sizeof m->hist_id[0]);
        memmove(m->hist_text, m->hist_text + 1, (M.history - 1) * sizeof m->hist_text[0]);
        m->hist_n--;
    }
    m->hist_id[m->hist_n] = id;
    snprintf(m->hist_text[m->hist_n], sizeof m->hist_text[0], "%s", text);
    m->hist_n++;
}

static void model_typing(int i, bool on)
{
    int r = M.c[i].room;
    if (r < 0) {
        expect(i, "error|not_joined");
        return;
    }
    if (!model_rate(i, 0)) return;
    char e[256];
    snprintf(e, sizeof e, "typing|%s|%s|%d", room_names[r], M.c[i].name, on);
    model_publish(r, i, e);
}

/* ---- the run ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static char last_step[256];

/* Compares every connection's events with the model's, then forgets both. */
static bool compare(wsx_chat *chat, unsigned long step)
{
    bool ok = op_errors == 0;
    if (!ok)
        TEST_FAIL_("step %lu (%s): the chat misused subscribe/unsubscribe/send", step, last_step);
    for (int i = 0; i < NCONN; i++) {
        bool same = !F[i].overflow && F[i].n_got == M.n_want[i];
        for (size_t k = 0; same && k < F[i].n_got; k++)
            same = !strcmp(F[i].got[k], M.want[i][k]);
        if (!same) {
            ok = false;
            TEST_FAIL_("step %lu (%s): connection %d got %zu events, the model wants %zu", step,
                       last_step, i, F[i].n_got, M.n_want[i]);
            for (size_t k = 0; k < F[i].n_got; k++)
                fprintf(stderr, "   got  %s\n", F[i].got[k]);
            for (size_t k = 0; k < M.n_want[i]; k++)
                fprintf(stderr, "   want %s\n", M.want[i][k]);
        }
        if (F[i].open && F[i].sub != M.c[i].room) {
            ok = false;
            TEST_FAIL_("step %lu (%s): connection %d subscribed to %d, the model says room %d",
                       step, last_step, i, F[i].sub, M.c[i].room);
        }
        for (size_t k = 0; k < F[i].n_got; k++)
            free(F[i].got[k]);
        for (size_t k = 0; k < M.n_want[i]; k++)
            free(M.want[i][k]);
        F[i].n_got = M.n_want[i] = 0;
        F[i].overflow = false;
    }
    wsx_chat_stats st;
    wsx_chat_get_stats(chat, &st);
    size_t open = 0, members = 0;
    for (int i = 0; i < NCONN; i++) {
        open += M.c[i].open;
        members += M.c[i].open && M.c[i].room >= 0;
    }
    if (st.conns != open || st.members != members || st.rooms != model_rooms()) {
        ok = false;
        TEST_FAIL_("step %lu (%s): chat counts conns %zu members %zu rooms %zu, model %zu %zu %zu",
                   step, last_step, st.conns, st.members, st.rooms, open, members, model_rooms());
    }
    if (st.rate_limited != M.refused || st.rate_closes != M.closes) {
        ok = false;
        TEST_FAIL_("step %lu (%s): chat counts %llu rate_limited and %llu closes, model %llu %llu",
                   step, last_step, (unsigned long long)st.rate_limited,
                   (unsigned long long)st.rate_closes, (unsigned long long)M.refused,
                   (unsigned long long)M.closes);
    }
    /* Every address with an open connection has its bucket; idle ones are bounded. */
    size_t held = 0;
    for (int k = 0; k < NCONN; k++) {
        bool any = false;
        for (int i = 0; i < NCONN; i++)
            any |= M.c[i].open && addr_of[i] == k;
        held += any;
    }
    if ((M.o.rate_per_ip || M.o.join_rate_per_ip) &&
        (st.addresses < held || st.addresses > NCONN)) {
        ok = false;
        TEST_FAIL_("step %lu (%s): chat holds %zu address buckets, %zu have connections", step,
                   last_step, st.addresses, held);
    }
    test_checks_++;
    return ok;
}

/* One random run: returns false at the first divergence. */
static bool run_model(uint64_t seed, unsigned long steps, const wsx_chat_opts *o)
{
    size_t history = o->history, max_rooms = o->max_rooms;
    memset(F, 0, sizeof F);
    memset(&M, 0, sizeof M);
    for (int i = 0; i < NCONN; i++)
        F[i].sub = M.c[i].room = -1;
    op_errors = 0;
    M.history = history;
    M.max_rooms = max_rooms;
    M.o = *o;
    rng_state = seed ? seed : 1;
    wsx_chat *chat = NULL;
    CHECK_INT(wsx_chat_new(o, &ops, &chat), 0);
    if (!chat) return false;
    bool ok = true;
    for (unsigned long step = 1; ok && step <= steps; step++) {
        fake_now += 1 + pick(3);
        /* Connection 0 is busier than the others: it runs into the rate limit. */
        int i = pick(4) == 0 ? 0 : (int)pick(NCONN);
        unsigned a = pick(100);
        if (!F[i].open) {
            snprintf(last_step, sizeof last_step, "open %d", i);
            F[i].open = M.c[i].open = true;
            F[i].close_req = false;
            F[i].sub = M.c[i].room = -1;
            M.c[i].tokens[0] = (uint64_t)o->burst * 1000;
            M.c[i].tokens[1] = (uint64_t)o->join_burst * 1000;
            M.c[i].refill[0] = M.c[i].refill[1] = fake_now;
            M.c[i].refusals = 0;
            if (addr_of[i] >= 0 && !M.a[addr_of[i]].used) {
                M.a[addr_of[i]].used = true;
                M.a[addr_of[i]].tokens[0] = (uint64_t)o->burst_per_ip * 1000;
                M.a[addr_of[i]].tokens[1] = (uint64_t)o->join_burst_per_ip * 1000;
                M.a[addr_of[i]].refill[0] = M.a[addr_of[i]].refill[1] = fake_now;
            }
            struct sockaddr_in sa = {.sin_family = AF_INET};
            sa.sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)addr_of[i]); /* 10.0.0.1 + k */
            F[i].cc = wsx_chat_conn_open(chat, &F[i],
                                         addr_of[i] >= 0 ? (const struct sockaddr *)&sa : NULL);
            expect(i, "welcome");
        } else if (a < 6) {
            snprintf(last_step, sizeof last_step, "close %d", i);
            wsx_chat_conn_close(chat, F[i].cc);
            F[i].cc = NULL;
            F[i].open = false;
            F[i].sub = -1;
            model_leave(i, -1);
            M.c[i].open = false;
        } else if (a < 40) {
            /* Mostly rejoins of the same room under the same name: the crash of issue 10. */
            int r = M.c[i].room >= 0 && pick(2) ? M.c[i].room : (int)pick(NROOMS);
            const char *name =
                M.c[i].room >= 0 && pick(2) ? M.c[i].name : person_names[pick(NNAMES)];
            bool pad = pick(4) == 0;
            /* Mostly the key it had (a person's tabs share one), sometimes another or none. */
            int key = pick(3) ? M.c[i].key : (int)pick(3);
            char keyf[32] = "";
            if (key) snprintf(keyf, sizeof keyf, ",\"key\":\"k%d\"", key);
            snprintf(last_step, sizeof last_step, "join %d %s %s key %d", i, room_names[r], name,
                     key);
            send_text(chat, i, "{\"type\":\"join\",\"room\":\"%s\",\"name\":\"%s%s%s\"%s}",
                      room_names[r], pad ? "  " : "", name, pad ? " " : "", keyf);
            model_join(i, r, name, key);
        } else if (a < 45) {
            snprintf(last_step, sizeof last_step, "leave %d", i);
            send_text(chat, i, "{\"type\":\"leave\"}");
            if (M.c[i].room >= 0 && model_rate(i, 1)) model_leave(i, -1);
        } else if (a < 75) {
            char text[32];
            snprintf(text, sizeof text, "m%lu", step);
            snprintf(last_step, sizeof last_step, "message %d %s", i, text);
            send_text(chat, i, "{\"type\":\"message\",\"text\":\" %s \"}", text);
            model_message(i, text);
        } else if (a < 88) {
            bool on = pick(2);
            snprintf(last_step, sizeof last_step, "typing %d %d", i, on);
            send_text(chat, i, "{\"type\":\"typing\",\"typing\":%s}", on ? "true" : "false");
            model_typing(i, on);
        } else {
            /* Refused input: the connection stays where it is and gets one error. */
            static const struct {
                const char *text, *code;
            } bad[] = {
                {"{", "bad_json"},
                {"[1]", "bad_json"},
                {"{\"type\":\"nope\"}", "bad_type"},
                {"{\"name\":\"x\"}", "bad_type"},
                {"{\"type\":\"join\",\"room\":\"a b\",\"name\":\"x\"}", "bad_room"},
                {"{\"type\":\"join\",\"room\":\"r1\",\"name\":\"\"}", "bad_name"},
                {"{\"type\":\"join\",\"room\":\"r1\",\"name\":\"a\\u0001\"}", "bad_name"},
                {"{\"type\":\"join\",\"room\":\"r1\",\"name\":\"ann\\u202e\"}", "bad_name"},
                {"{\"type\":\"join\",\"room\":\"r1\",\"name\":\"a\xe2\x80\x8b\"}", "bad_name"},
                {"{\"type\":\"join\",\"room\":\"r1\",\"name\":\"a\",\"key\":5}", "bad_key"},
                {"{\"type\":\"message\",\"text\":\"   \"}", "bad_text"},
                {"", "binary"},
            };
            unsigned k = pick(sizeof bad / sizeof bad[0]);
            snprintf(last_step, sizeof last_step, "bad %d %s", i, bad[k].code);
            const char *code = bad[k].code;
            if (!strcmp(code, "bad_text") && M.c[i].room < 0) code = "not_joined";
            if (!strcmp(code, "binary"))
                wsx_chat_conn_message(chat, F[i].cc, "\x01\x02", 2, true);
            else
                send_text(chat, i, "%s", bad[k].text);
            expect(i, "error|%s", code);
        }
        /* The front end closes what the chat asked to close (a flooder). */
        if (F[i].open && F[i].close_req) {
            wsx_chat_conn_close(chat, F[i].cc);
            F[i].cc = NULL;
            F[i].open = false;
            F[i].sub = -1;
            model_leave(i, -1);
            M.c[i].open = false;
        }
        ok = compare(chat, step);
    }
    for (int i = 0; i < NCONN; i++)
        if (F[i].open) wsx_chat_conn_close(chat, F[i].cc);
    wsx_chat_free(chat);
    for (int i = 0; i < NCONN; i++) {
        for (size_t k = 0; k < F[i].n_got; k++)
            free(F[i].got[k]);
        for (size_t k = 0; k < M.n_want[i]; k++)
            free(M.want[i][k]);
    }
    if (!ok)
        fprintf(stderr, "   (seed %llu: WSX_CHAT_SEED=%llu reproduces it)\n",
                (unsigned long long)seed, (unsigned long long)seed);
    return ok;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* The options of a run: no rate limit unless asked; each connection from its own address
 * (connection 11 from none). */
static wsx_chat_opts opts_of(size_t history, size_t max_rooms)
{
    wsx_chat_opts o = chat_test_opts(history, max_rooms);
    for (int i = 0; i < NCONN; i++)
        addr_of[i] = i == NCONN - 1 ? -1 : i;
    return o;
}

TEST(model_history_3)
{
    uint64_t seed = env_u64("WSX_CHAT_SEED", 20261203);
    unsigned long steps = (unsigned long)env_u64("WSX_CHAT_STEPS", 20000);
    wsx_chat_opts o = opts_of(3, 1000);
    CHECK(run_model(seed, steps, &o));
}

TEST(model_history_0)
{
    uint64_t seed = env_u64("WSX_CHAT_SEED", 20261203) + 1;
    unsigned long steps = (unsigned long)env_u64("WSX_CHAT_STEPS", 20000);
    wsx_chat_opts o = opts_of(0, 1000);
    CHECK(run_model(seed, steps, &o));
}

/* Four rooms at most for six names: eviction of idle rooms and "too many rooms". */
TEST(model_room_cap)
{
    uint64_t seed = env_u64("WSX_CHAT_SEED", 20261203) + 2;
    unsigned long steps = (unsigned long)env_u64("WSX_CHAT_STEPS", 20000);
    wsx_chat_opts o = opts_of(2, 4);
    CHECK(run_model(seed, steps, &o));
}

/* Tight rate limits (messages 20/s, burst 3; joins and leaves 20/s, burst 4; closed after 2
 * refusals within a second): refusals, closes with 1008, and what the others see of them. */
TEST(model_rate_limit)
{
    uint64_t seed = env_u64("WSX_CHAT_SEED", 20261203) + 3;
    unsigned long steps = (unsigned long)env_u64("WSX_CHAT_STEPS", 20000);
    wsx_chat_opts o = opts_of(3, 1000);
    o.rate = 20;
    o.burst = 3;
    o.join_rate = 20;
    o.join_burst = 4;
    o.max_refusals = 2;
    o.refusal_window_ms = 1000;
    /* Per address above the per-connection rate, one connection per address: mostly the
     * connection's bucket refuses, the address's only after a reconnection. */
    o.rate_per_ip = 50;
    o.burst_per_ip = 6;
    o.join_rate_per_ip = 50;
    o.join_burst_per_ip = 8;
    CHECK(run_model(seed, steps, &o));
}

/* The same with connections sharing addresses (0-5 one, 6-9 another, 10 its own, 11 none)
 * and a per-address rate below the per-connection one: refusals of an address's bucket
 * while the connection's own still has tokens, and a bucket that outlives a reconnection. */
TEST(model_rate_limit_shared_address)
{
    uint64_t seed = env_u64("WSX_CHAT_SEED", 20261203) + 4;
    unsigned long steps = (unsigned long)env_u64("WSX_CHAT_STEPS", 20000);
    wsx_chat_opts o = opts_of(3, 1000);
    for (int i = 0; i < NCONN - 1; i++)
        addr_of[i] = i < 6 ? 0 : i < 10 ? 1 : 2;
    o.rate = 40;
    o.burst = 4;
    o.join_rate = 20;
    o.join_burst = 4;
    o.rate_per_ip = 15;
    o.burst_per_ip = 5;
    o.join_rate_per_ip = 10;
    o.join_burst_per_ip = 6;
    o.max_refusals = 3;
    o.refusal_window_ms = 1000;
    CHECK(run_model(seed, steps, &o));
}

/* The exact sequence of issue 10, alone: three joins of an empty room. */
TEST(rejoin_alone)
{
    for (size_t h = 0; h < 2; h++) {
        memset(F, 0, sizeof F);
        memset(&M, 0, sizeof M);
        F[0].sub = M.c[0].room = -1;
        M.history = h;
        M.max_rooms = 1000;
        wsx_chat_opts o = opts_of(h, 1000);
        M.o = o;
        wsx_chat *chat = NULL;
        CHECK_INT(wsx_chat_new(&o, &ops, &chat), 0);
        F[0].open = M.c[0].open = true;
        F[0].cc = wsx_chat_conn_open(chat, &F[0], NULL);
        expect(0, "welcome");
        for (int k = 0; k < 3; k++) {
            send_text(chat, 0, "{\"type\":\"join\",\"room\":\"lobby\",\"name\":\"a\"}");
            model_join(0, 0, "a", 0);
        }
        snprintf(last_step, sizeof last_step, "three joins, history %zu", h);
        CHECK(compare(chat, 3));
        wsx_chat_conn_close(chat, F[0].cc);
        wsx_chat_free(chat);
    }
}

int main(void)
{
    RUN(rejoin_alone);
    RUN(model_history_3);
    RUN(model_history_0);
    RUN(model_room_cap);
    RUN(model_rate_limit);
    RUN(model_rate_limit_shared_address);
    return test_summary("chat");
}
