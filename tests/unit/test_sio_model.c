/*
 * The Socket.IO core's socket/namespace state machine against a model: random sequences of
 * CONNECT (known, unknown and repeated namespaces), events with acks, client and server
 * DISCONNECT, joins and leaves, broadcasts (rooms, except rooms, except a socket, volatile),
 * server acks answered or left pending, garbage input and transport ends, on several
 * scripted sessions (sio_fake.h). After every step each session's output must be exactly
 * what the model predicts, and the counts (sockets per namespace, subscribers per room
 * topic, disconnect and ack callbacks) must agree. Deterministic seeds, bounded steps; run
 * under ASan by the sanitizer build.
 */
#include "test.h"

#include "sio_fake.h"

#define NS    6 /* sessions */
#define NN    2 /* namespaces */
#define NR    4 /* rooms */
#define STEPS 4000
#define SEEDS 12

static const char *const nsp_names[NN] = {"/", "/custom"};
static const char *const rooms[NR] = {"r0", "r1", "r2", "r3"};

typedef struct msock {
    bool on;
    wsx_sio_socket *s;
    unsigned rooms; /* bit per room */
    int pending;    /* server acks awaited */
    uint64_t next_ack;
    uint64_t acks_out[8]; /* ids the client may answer */
    int n_acks_out;
    /* With recovery: the ids of the CONNECT answer, the offset of the last broadcast
     * received and its number. */
    char sid[24], pid[24], offset[24];
    unsigned long last_seq;
} msock;

/* With recovery: what the server's ring should hold (every broadcast that was not volatile)
 * and the records of sockets that may come back. */
typedef struct mpkt {
    int j;
    unsigned to, except;
    char except_sid[24];
} mpkt;
static mpkt ring[STEPS + 1]; /* by broadcast number */
typedef struct mrec {
    bool live;
    int j;
    unsigned rooms;
    char sid[24], pid[24], offset[24];
    unsigned long last_seq;
} mrec;
#define NREC 32
static mrec recs[NREC];
static bool recov;
static unsigned long bcast_seq;

typedef struct msess {
    fake_sess f;
    bool open;
    bool closing;
    msock ns[NN];
} msess;

static wsx_loop *loop;
static wsx_sio *io;
static msess S[NS];
static uint64_t rng;
static int disconnects, acks_ok, acks_closed;
static char last_reason[64];

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void on_disc(wsx_sio_socket *s, const char *reason, void *user)
{
    disconnects++;
    snprintf(last_reason, sizeof last_reason, "%s", reason);
}

static void on_echo(wsx_sio_socket *s, const wsx_sio_event *ev, void *user)
{
    if (ev->has_ack) wsx_sio_ack(s, ev->ack_id, json_incref(ev->args), ev->bins, ev->n_bins);
}

static void ack_cb(wsx_sio_socket *s, int err, json_t *args, const wsx_sio_bin *b, size_t n,
                   void *user)
{
    if (err == 0)
        acks_ok++;
    else if (err == WSX_ECLOSED)
        acks_closed++;
}

static int nsp_index(const wsx_sio_socket *s)
{
    return strcmp(wsx_sio_nsp_name(wsx_sio_socket_nsp(s)), "/") == 0 ? 0 : 1;
}

static void on_conn(wsx_sio_socket *s, void *user)
{
    msess *m = user;
    (void)m;
}

/* Connections land in the session named by the test before it feeds the CONNECT. */
static msess *connecting;
static void on_conn_root(wsx_sio_socket *s, void *user)
{
    connecting->ns[nsp_index(s)].s = s;
}

static bool expect_msg(msess *m, const char *want)
{
    char *got = fake_pop(&m->f);
    bool ok = got && strcmp(got, want) == 0;
    if (!ok)
        TEST_FAIL_("session %d: got \"%s\", expected \"%s\"", (int)(m - S), got ? got : "(none)",
                   want);
    test_checks_++;
    free(got);
    return ok;
}

static void expect_quiet(msess *m)
{
    test_checks_++;
    if (m->f.n_log) TEST_FAIL_("session %d: unexpected \"%s\"", (int)(m - S), m->f.log[0]);
    if (m->f.dropped)
        TEST_FAIL_("session %d: %d messages past the log", (int)(m - S), m->f.dropped);
    fake_clear(&m->f);
}

static const char *prefix(int j)
{
    return j ? "/custom," : "";
}

/* The model: the socket is gone (its pending acks fail with WSX_ECLOSED). */
static int expect_gone;
static int expect_closed_acks;
static void model_gone(msess *m, int j, bool recoverable)
{
    if (!m->ns[j].on) return;
    msock *k = &m->ns[j];
    /* The server keeps a record; the model only those a client could use (it got an
     * offset). */
    for (int i = 0; recov && recoverable && k->offset[0] && i < NREC; i++)
        if (!recs[i].live) {
            recs[i] = (mrec){.live = true, .j = j, .rooms = k->rooms, .last_seq = k->last_seq};
            memcpy(recs[i].sid, k->sid, sizeof k->sid);
            memcpy(recs[i].pid, k->pid, sizeof k->pid);
            memcpy(recs[i].offset, k->offset, sizeof k->offset);
            break;
        }
    expect_gone++;
    expect_closed_acks += m->ns[j].pending;
    memset(&m->ns[j], 0, sizeof m->ns[j]);
}

static void session_closes(msess *m)
{
    test_checks_++;
    if (m->f.close_asked != 1)
        TEST_FAIL_("session %d: close asked %d times", (int)(m - S), m->f.close_asked);
    m->closing = true;
}

static void open_session(msess *m)
{
    memset(m->ns, 0, sizeof m->ns);
    fake_open(io, &m->f);
    m->open = true;
    m->closing = false;
}

static void step_connect(msess *m, int j)
{
    char pkt[64];
    bool auth = rnd(2);
    snprintf(pkt, sizeof pkt, "0%s%s", prefix(j), auth ? "{\"a\":1}" : "");
    connecting = m;
    bool was = m->ns[j].on;
    fake_feed(&m->f, pkt);
    if (m->closing) {
        expect_quiet(m);
        return;
    }
    if (was) { /* CONNECT twice: the session closes */
        session_closes(m);
        expect_quiet(m);
        return;
    }
    char want[64];
    snprintf(want, sizeof want, "T0%s{\"sid\":\"", prefix(j));
    char *got = fake_pop(&m->f);
    test_checks_++;
    if (!got || strncmp(got, want, strlen(want)) != 0) {
        TEST_FAIL_("session %d: got \"%s\", expected \"%s...\"", (int)(m - S), got ? got : "(none)",
                   want);
    } else {
        msock *k = &m->ns[j];
        wsx_sio_socket *sp = k->s; /* set by on_conn_root */
        memset(k, 0, sizeof *k);
        k->on = true;
        k->s = sp;
        CHECK(k->s != NULL);
        /* {"sid":"<20>"} or, with recovery, {"sid":"<20>","pid":"<20>"} */
        const char *sid = got + strlen(want);
        memcpy(k->sid, sid, 20);
        if (recov) {
            CHECK(strncmp(sid + 20, "\",\"pid\":\"", 9) == 0);
            memcpy(k->pid, sid + 29, 20);
            CHECK_STR(sid + 49, "\"}");
        } else {
            CHECK_STR(sid + 20, "\"}");
        }
    }
    free(got);
    expect_quiet(m);
}

/* A client comes back with a record's pid and offset: the packets of the ring after its
 * offset that its rooms select, then the CONNECT answer with its old sid and pid. */
static void step_recover(msess *m, int j)
{
    if (m->closing || m->ns[j].on) return;
    mrec *r = NULL;
    for (int i = 0, n = 0; i < NREC; i++)
        if (recs[i].live && recs[i].j == j && rnd((uint32_t)++n) == 0) r = &recs[i];
    if (!r) return;
    char pkt[160];
    snprintf(pkt, sizeof pkt, "0%s{\"pid\":\"%s\",\"offset\":\"%s\"}", prefix(j), r->pid,
             r->offset);
    connecting = m;
    m->ns[j].s = NULL;
    fake_feed(&m->f, pkt);
    msock *k = &m->ns[j];
    wsx_sio_socket *sp = k->s; /* set by on_conn_root */
    memset(k, 0, sizeof *k);
    k->last_seq = r->last_seq;
    memcpy(k->offset, r->offset, sizeof k->offset);
    for (unsigned long q = r->last_seq + 1; q <= bcast_seq; q++) {
        const mpkt *p = &ring[q];
        if (p->j != j || (p->to && !(p->to & r->rooms)) || (p->except & r->rooms) ||
            strcmp(p->except_sid, r->sid) == 0)
            continue;
        char want[64];
        snprintf(want, sizeof want, "T2%s[\"b\",%lu,\"", prefix(j), q);
        char *got = fake_pop(&m->f);
        test_checks_++;
        if (!got || strncmp(got, want, strlen(want)) != 0) {
            TEST_FAIL_("session %d: replay: got \"%s\", expected \"%s...\" (close asked %d, "
                       "sockets of the session %d, record %s last %lu rooms %u)",
                       (int)(m - S), got ? got : "(none)", want, m->f.close_asked,
                       m->f.c->sockets ? 1 : 0, r->sid, r->last_seq, r->rooms);
            free(got);
            return;
        }
        snprintf(k->offset, sizeof k->offset, "%.*s", (int)(strlen(got) - strlen(want) - 2),
                 got + strlen(want));
        k->last_seq = q;
        free(got);
    }
    char want[96];
    snprintf(want, sizeof want, "T0%s{\"sid\":\"%s\",\"pid\":\"%s\"}", prefix(j), r->sid, r->pid);
    expect_msg(m, want);
    expect_quiet(m);
    k->on = true;
    k->s = sp;
    CHECK(k->s != NULL && wsx_sio_recovered(k->s) && strcmp(wsx_sio_id(k->s), r->sid) == 0);
    k->rooms = r->rooms;
    memcpy(k->sid, r->sid, sizeof k->sid);
    memcpy(k->pid, r->pid, sizeof k->pid);
    r->live = false;
}

static void step_event(msess *m, int j)
{
    uint32_t id = rnd(1000);
    char pkt[96];
    snprintf(pkt, sizeof pkt, "2%s%u[\"echo\",%u,\"x\"]", prefix(j), id, id);
    fake_feed(&m->f, pkt);
    if (m->closing) {
        expect_quiet(m);
        return;
    }
    if (!m->ns[j].on) {
        session_closes(m);
        expect_quiet(m);
        return;
    }
    char want[96];
    snprintf(want, sizeof want, "T3%s%u[%u,\"x\"]", prefix(j), id, id);
    expect_msg(m, want);
    expect_quiet(m);
}

/* A binary event with an ack, its attachment arriving as the next message. */
static void step_bin_event(msess *m, int j)
{
    uint32_t id = rnd(1000);
    char pkt[128];
    snprintf(pkt, sizeof pkt, "51-%s%u[\"echo\",{\"_placeholder\":true,\"num\":0}]", prefix(j), id);
    fake_feed(&m->f, pkt);
    uint8_t b = (uint8_t)rnd(256);
    fake_feed_bin(&m->f, &b, 1);
    if (m->closing) {
        expect_quiet(m);
        return;
    }
    if (!m->ns[j].on) {
        session_closes(m);
        expect_quiet(m);
        return;
    }
    char want[128];
    snprintf(want, sizeof want, "T61-%s%u[{\"_placeholder\":true,\"num\":0}]", prefix(j), id);
    expect_msg(m, want);
    snprintf(want, sizeof want, "B%02x", b);
    expect_msg(m, want);
    expect_quiet(m);
}

static void step_client_disconnect(msess *m, int j)
{
    char pkt[32];
    snprintf(pkt, sizeof pkt, "1%s", prefix(j));
    int before = disconnects;
    fake_feed(&m->f, pkt);
    if (m->closing) {
        expect_quiet(m);
        return;
    }
    if (!m->ns[j].on) {
        session_closes(m);
    } else {
        CHECK_INT(disconnects, before + 1);
        CHECK_STR(last_reason, "client namespace disconnect");
        model_gone(m, j, false);
    }
    expect_quiet(m);
}

static void step_server_disconnect(msess *m, int j)
{
    if (!m->ns[j].on || m->closing) return;
    bool close = rnd(4) == 0;
    wsx_sio_disconnect(m->ns[j].s, close);
    if (!close) {
        char want[32];
        snprintf(want, sizeof want, "T1%s", prefix(j));
        expect_msg(m, want);
        model_gone(m, j, false);
    } else {
        for (int k = 0; k < NN; k++) {
            if (!m->ns[k].on) continue;
            char want[32];
            snprintf(want, sizeof want, "T1%s", prefix(k));
            /* Order: the client's sockets, newest first. Accept either order. */
            char *got = fake_pop(&m->f);
            bool ok = got && (strcmp(got, "T1") == 0 || strcmp(got, "T1/custom,") == 0);
            CHECK(ok);
            free(got);
            model_gone(m, k, false);
        }
        session_closes(m);
    }
    CHECK_STR(last_reason, "server namespace disconnect");
    expect_quiet(m);
}

static void step_join_leave(msess *m, int j)
{
    if (!m->ns[j].on || m->closing) return;
    int r = (int)rnd(NR);
    if (rnd(2)) {
        CHECK_INT(wsx_sio_join(m->ns[j].s, rooms[r]), 0);
        m->ns[j].rooms |= 1u << r;
    } else {
        bool in = m->ns[j].rooms & (1u << r);
        CHECK_INT(wsx_sio_leave(m->ns[j].s, rooms[r]), in ? 0 : WSX_ENOTFOUND);
        m->ns[j].rooms &= ~(1u << r);
    }
    for (int q = 0; q < NR; q++)
        CHECK(wsx_sio_in(m->ns[j].s, rooms[q]) == !!(m->ns[j].rooms & (1u << q)));
}

static void step_broadcast(int j)
{
    unsigned to = rnd(3) ? rnd(1u << NR) : 0; /* 0: everyone */
    unsigned except = rnd(3) == 0 ? rnd(1u << NR) : 0;
    const char *to_names[NR], *ex_names[NR];
    size_t n_to = 0, n_ex = 0;
    for (int r = 0; r < NR; r++) {
        if (to & (1u << r)) to_names[n_to++] = rooms[r];
        if (except & (1u << r)) ex_names[n_ex++] = rooms[r];
    }
    msess *sender = &S[rnd(NS)];
    const wsx_sio_socket *except_socket = sender->ns[j].on && rnd(2) ? sender->ns[j].s : NULL;
    bool vol = rnd(4) == 0;
    for (int i = 0; i < NS; i++)
        S[i].f.not_writable = vol && rnd(2);
    unsigned long seq = ++bcast_seq;
    wsx_sio_to t = {.nsp = wsx_sio_of(io, nsp_names[j]),
                    .rooms = to_names,
                    .n_rooms = n_to,
                    .except_rooms = ex_names,
                    .n_except = n_ex,
                    .except_socket = except_socket,
                    .volatile_ = vol};
    /* With rooms picked but none chosen (to == 0 and the dice said rooms), n_to is 0:
     * everyone, as in the reference. */
    ptrdiff_t n = wsx_sio_broadcast(&t, "b", json_pack("[i]", (json_int_t)seq), NULL, 0);
    int want = 0;
    char msg[64];
    bool offset = recov && !vol;
    snprintf(msg, sizeof msg, offset ? "T2%s[\"b\",%lu,\"" : "T2%s[\"b\",%lu]", prefix(j), seq);
    if (offset) {
        ring[seq] = (mpkt){.j = j, .to = n_to ? to : 0, .except = except};
        for (int i = 0; i < NS; i++)
            if (S[i].ns[j].on && S[i].ns[j].s == except_socket)
                memcpy(ring[seq].except_sid, S[i].ns[j].sid, sizeof ring[seq].except_sid);
    } else if (seq < sizeof ring / sizeof ring[0]) {
        ring[seq] = (mpkt){.j = -1};
    }
    for (int i = 0; i < NS; i++) {
        msess *m = &S[i];
        msock *k = &m->ns[j];
        bool gets = m->open && !m->closing && k->on && (!n_to || (k->rooms & to)) &&
                    !(k->rooms & except) && k->s != except_socket && !(vol && m->f.not_writable);
        if (gets && !offset) {
            want++;
            expect_msg(m, msg);
        } else if (gets) {
            want++;
            char *got = fake_pop(&m->f);
            test_checks_++;
            if (!got || strncmp(got, msg, strlen(msg)) != 0) {
                TEST_FAIL_("session %d: got \"%s\", expected \"%s...\"", i, got ? got : "(none)",
                           msg);
            } else {
                snprintf(k->offset, sizeof k->offset, "%.*s", (int)(strlen(got) - strlen(msg) - 2),
                         got + strlen(msg));
                k->last_seq = seq;
            }
            free(got);
        }
        expect_quiet(m);
        m->f.not_writable = false;
    }
    CHECK_INT(n, want);
}

static void step_server_ack(msess *m, int j)
{
    msock *k = &m->ns[j];
    if (!k->on || m->closing) return;
    uint32_t timeout = rnd(2) ? 0 : 100000; /* never reached: the timer is stopped */
    int rc = wsx_sio_emit_ack(k->s, "q", NULL, NULL, 0, ack_cb, timeout, NULL);
    if (k->pending >= 4) {
        CHECK_INT(rc, WSX_ELIMIT);
        expect_quiet(m);
        return;
    }
    CHECK_INT(rc, 0);
    char want[64];
    snprintf(want, sizeof want, "T2%s%llu[\"q\"]", prefix(j), (unsigned long long)k->next_ack);
    expect_msg(m, want);
    if (k->n_acks_out < 8) k->acks_out[k->n_acks_out++] = k->next_ack;
    k->next_ack++;
    k->pending++;
    expect_quiet(m);
}

static void step_client_ack(msess *m, int j)
{
    msock *k = &m->ns[j];
    if (!k->on || m->closing || !k->n_acks_out) return;
    int i = (int)rnd((uint32_t)k->n_acks_out);
    uint64_t id = k->acks_out[i];
    k->acks_out[i] = k->acks_out[--k->n_acks_out];
    char pkt[64];
    snprintf(pkt, sizeof pkt, "3%s%llu[1]", prefix(j), (unsigned long long)id);
    int before = acks_ok;
    fake_feed(&m->f, pkt);
    CHECK_INT(acks_ok, before + 1);
    k->pending--;
    expect_quiet(m);
}

static void step_end(msess *m)
{
    static const char *const reasons[] = {"transport close", "ping timeout", "transport error"};
    const char *reason = m->closing ? "forced close" : reasons[rnd(3)];
    int gone_before = expect_gone;
    for (int j = 0; j < NN; j++)
        model_gone(m, j, true);
    int before = disconnects;
    fake_end(&m->f, reason);
    CHECK_INT(disconnects - before, expect_gone - gone_before);
    if (expect_gone > gone_before) CHECK_STR(last_reason, reason);
    fake_clear(&m->f);
    open_session(m);
}

static void step_garbage(msess *m)
{
    static const char *const bad[] = {"", "9", "2[\"a\"", "0/x,[]", "51-[\"a\"]"};
    const char *pkt = bad[rnd(5)];
    fake_feed(&m->f, pkt);
    if (strcmp(pkt, "51-[\"a\"]") == 0 && !m->closing) {
        /* A binary head: the next text packet is the error. */
        fake_feed(&m->f, "2[\"a\"]");
    }
    if (!m->closing) session_closes(m);
    expect_quiet(m);
}

static void step_unknown_nsp(msess *m)
{
    fake_feed(&m->f, "0/nope,");
    if (!m->closing) expect_msg(m, "T4/nope,{\"message\":\"Invalid namespace\"}");
    expect_quiet(m);
}

static void check_counts(void)
{
    size_t total = 0, per[NN] = {0};
    size_t in_room[NN][NR] = {{0}};
    for (int i = 0; i < NS; i++)
        for (int j = 0; j < NN; j++)
            if (S[i].ns[j].on) {
                total++;
                per[j]++;
                for (int r = 0; r < NR; r++)
                    if (S[i].ns[j].rooms & (1u << r)) in_room[j][r]++;
            }
    CHECK_INT(wsx_sio_sockets(io), total);
    wsx_hub *h = wsx_hub_of(loop);
    for (int j = 0; j < NN; j++) {
        CHECK_INT(wsx_sio_nsp_sockets(wsx_sio_of(io, nsp_names[j])), per[j]);
        for (int r = 0; r < NR; r++) {
            char topic[64];
            snprintf(topic, sizeof topic, "sio:%zu:%s%s", strlen(nsp_names[j]), nsp_names[j],
                     rooms[r]);
            CHECK_INT(wsx_hub_subscribers(h, topic), in_room[j][r]);
        }
    }
    CHECK_INT(disconnects, expect_gone);
    CHECK_INT(acks_closed, expect_closed_acks);
}

static void run_model(bool with_recovery)
{
    recov = with_recovery;
    for (int seed = 1; seed <= SEEDS; seed++) {
        rng = 0x9e3779b97f4a7c15ull * (uint64_t)seed;
        disconnects = acks_ok = acks_closed = 0;
        expect_gone = expect_closed_acks = 0;
        bcast_seq = 0;
        memset(recs, 0, sizeof recs);
        wsx_sio_opts o = wsx_sio_defaults();
        o.max_pending_acks = 4;
        o.recovery_ms = recov ? 3600000 : 0;
        if (wsx__sio_new(loop, &o, &fake_ops, &io) != 0) abort();
        for (int j = 0; j < NN; j++) {
            wsx_sio_nsp *n = wsx_sio_of(io, nsp_names[j]);
            wsx_sio_on_connection(n, on_conn_root, NULL);
            wsx_sio_nsp_on(n, "echo", on_echo, NULL);
            wsx_sio_nsp_on_disconnect(n, on_disc, NULL);
        }
        for (int i = 0; i < NS; i++)
            open_session(&S[i]);
        for (int step = 0; step < STEPS && !test_failed_; step++) {
            msess *m = &S[rnd(NS)];
            int j = (int)rnd(NN);
            switch (rnd(20)) {
            case 0:
            case 1:
            case 2:
                step_connect(m, j);
                break;
            case 3:
            case 4:
                if (rnd(3))
                    step_event(m, j);
                else
                    step_bin_event(m, j);
                break;
            case 5:
                step_client_disconnect(m, j);
                break;
            case 6:
                step_server_disconnect(m, j);
                break;
            case 7:
            case 8:
            case 9:
            case 10:
                step_join_leave(m, j);
                break;
            case 11:
            case 12:
            case 13:
                step_broadcast(j);
                break;
            case 14:
                step_server_ack(m, j);
                break;
            case 15:
            case 16:
                step_client_ack(m, j);
                break;
            case 17:
                if (rnd(3) == 0 || m->closing) step_end(m);
                break;
            case 18:
                if (rnd(4) == 0) step_garbage(m);
                break;
            default:
                if (recov && rnd(2))
                    step_recover(m, j);
                else
                    step_unknown_nsp(m);
                break;
            }
            if (m->closing && rnd(2)) step_end(m);
            check_counts();
        }
        /* Shutdown: every socket left gets "server shutting down". */
        int left = (int)wsx_sio_sockets(io);
        int before = disconnects;
        for (int i = 0; i < NS; i++)
            for (int j = 0; j < NN; j++)
                model_gone(&S[i], j, false);
        wsx__sio_free_core(io);
        CHECK_INT(disconnects - before, left);
        CHECK_INT(acks_closed, expect_closed_acks);
        for (int i = 0; i < NS; i++)
            fake_clear(&S[i].f);
        CHECK_INT(wsx_hub_topics(wsx_hub_of(loop)), 0);
    }
    (void)on_conn;
}

TEST(model)
{
    run_model(false);
}

/* The same with connection state recovery on: offsets on every broadcast that is not
 * volatile, pids, and clients coming back with a record's pid and offset. */
TEST(model_recovery)
{
    run_model(true);
}

int main(void)
{
    if (wsx_loop_new(&loop) != 0) return 1;
    RUN(model);
    RUN(model_recovery);
    wsx_loop_free(loop);
    return test_summary("sio_model");
}
