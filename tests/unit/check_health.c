/* Unit tests for src/upstream/health.c and passive.c. Passive: the exact
 * ejection sequence with its doubling backoff, switches, reserve growth and
 * concurrent reporters. Active: in-process HTTP servers on 127.0.0.1 free
 * ports, served by the same event_base as the checks, answering a status the
 * test sets (or never, or closing); the loop runs until the callback reports
 * the expected transitions or a deadline passes. */
#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/health.h"
#include "turnout/route.h"

/* ---- passive ---- */

static const struct tn_conf_passive PC = {.failures = 5, .eject_ms = 10000, .max_eject_ms = 40000};

static void view_is(uint32_t id, uint32_t failures, uint64_t until, uint32_t backoff,
                    uint64_t ejections)
{
    struct tn_passive_view v;

    tn_passive_get(id, &v);
    ck_assert_uint_eq(v.failures, failures);
    ck_assert_uint_eq(v.until_ms, until);
    ck_assert_uint_eq(v.backoff_ms, backoff);
    ck_assert_uint_eq(v.ejections, ejections);
}

/* Reports n failures at now; returns how many of them ejected. */
static int fail_n(uint32_t id, int n, uint64_t now)
{
    int i, ejected = 0;

    for (i = 0; i < n; i++)
        ejected += tn_passive_report(id, 1, &PC, now);
    return ejected;
}

START_TEST(passive_sequence)
{
    tn_passive_reserve(8);
    ck_assert_int_eq(fail_n(3, 4, 1000), 0);
    ck_assert(!tn_passive_ejected(3, 1000));
    view_is(3, 4, 0, 0, 0);
    ck_assert_int_eq(tn_passive_report(3, 1, &PC, 1000), 1); /* the 5th */
    view_is(3, 0, 11000, 10000, 1);
    ck_assert(tn_passive_ejected(3, 1000));
    ck_assert(tn_passive_ejected(3, 10999));
    ck_assert_int_eq(fail_n(3, 10, 5000), 0); /* in flight while ejected: ignored */
    view_is(3, 0, 11000, 10000, 1);
    ck_assert(!tn_passive_ejected(3, 11000)); /* expired */
    /* still failing after the ejection: out again at once, twice as long */
    ck_assert_int_eq(tn_passive_report(3, 1, &PC, 11000), 1);
    view_is(3, 0, 31000, 20000, 2);
    ck_assert_int_eq(tn_passive_report(3, 1, &PC, 31000), 1);
    view_is(3, 0, 71000, 40000, 3);
    ck_assert_int_eq(tn_passive_report(3, 1, &PC, 71000), 1); /* capped at max_eject */
    view_is(3, 0, 111000, 40000, 4);
    /* a success resets; the next ejection needs 5 failures of 10 s again */
    ck_assert_int_eq(tn_passive_report(3, 0, &PC, 111000), 0);
    view_is(3, 0, 111000, 0, 4);
    ck_assert_int_eq(fail_n(3, 3, 111000), 0);
    ck_assert_int_eq(tn_passive_report(3, 0, &PC, 111001), 0); /* resets the count */
    view_is(3, 0, 111000, 0, 4);
    ck_assert_int_eq(fail_n(3, 4, 112000), 0);
    ck_assert(!tn_passive_ejected(3, 112000));
    ck_assert_int_eq(tn_passive_report(3, 1, &PC, 112000), 1);
    view_is(3, 0, 122000, 10000, 5);
    /* other servers are untouched */
    view_is(2, 0, 0, 0, 0);
    view_is(4, 0, 0, 0, 0);
}
END_TEST

START_TEST(passive_failures_zero_disables)
{
    const struct tn_conf_passive off = {.failures = 0, .eject_ms = 10000, .max_eject_ms = 40000};
    int i;

    tn_passive_reserve(1);
    for (i = 0; i < 100; i++)
        ck_assert_int_eq(tn_passive_report(0, 1, &off, 1000), 0);
    ck_assert(!tn_passive_ejected(0, 1000));
    view_is(0, 0, 0, 0, 0);
}
END_TEST

START_TEST(passive_clear)
{
    tn_passive_reserve(2);
    ck_assert_int_eq(fail_n(1, 5, 1000), 1);
    ck_assert(tn_passive_ejected(1, 2000));
    tn_passive_clear(1);
    ck_assert(!tn_passive_ejected(1, 2000));
    view_is(1, 0, 0, 0, 0);
    /* cleared: back to needing 5 failures and the first 10 s ejection */
    ck_assert_int_eq(fail_n(1, 4, 2000), 0);
    ck_assert_int_eq(fail_n(1, 1, 2000), 1);
    view_is(1, 0, 12000, 10000, 1);
}
END_TEST

START_TEST(passive_reserve_growth)
{
    struct tn_passive_view v;

    /* ids without a record: nothing happens, nothing breaks */
    ck_assert_int_eq(fail_n(5000, 10, 1000), 0);
    ck_assert(!tn_passive_ejected(5000, 1000));
    tn_passive_get(5000, &v);
    ck_assert_uint_eq(v.ejections, 0);
    tn_passive_clear(5000);

    tn_passive_reserve(10);
    ck_assert_int_eq(fail_n(7, 5, 1000), 1);
    ck_assert_int_eq(fail_n(9, 2, 1000), 0);
    tn_passive_reserve(5001); /* new chunks; the old ones stay where they are */
    tn_passive_reserve(3);    /* shrinking is a no-op */
    view_is(7, 0, 11000, 10000, 1);
    view_is(9, 2, 0, 0, 0);
    ck_assert_int_eq(fail_n(5000, 5, 1000), 1);
    ck_assert(tn_passive_ejected(5000, 1000));
    ck_assert(!tn_passive_ejected(5001, 1000)); /* beyond the reserve */
    ck_assert(!tn_passive_ejected(UINT32_MAX, 1000));
}
END_TEST

#define NTHREADS 8
#define ROUNDS 200
#define PER_ROUND 20

static pthread_barrier_t barrier;
static atomic_int round_ejections;

static uint64_t round_now(int r)
{
    return 1000000 + (uint64_t)r * 1000000; /* each round after any ejection ended */
}

static void *reporter(void *arg)
{
    int r, i;

    (void)arg;
    for (r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&barrier);
        for (i = 0; i < PER_ROUND; i++)
            if (tn_passive_report(42, 1, &PC, round_now(r)))
                atomic_fetch_add(&round_ejections, 1);
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

START_TEST(passive_concurrent_one_ejection_per_crossing)
{
    pthread_t th[NTHREADS];
    struct tn_passive_view v;
    int r, i;

    tn_passive_reserve(64);
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, NTHREADS + 1), 0);
    for (i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, reporter, NULL), 0);
    for (r = 0; r < ROUNDS; r++) {
        /* even rounds start after a success (threshold crossing), odd ones
         * right after an ejection (immediate re-ejection) */
        if (r % 2 == 0)
            tn_passive_report(42, 0, &PC, round_now(r));
        atomic_store(&round_ejections, 0);
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
        ck_assert_msg(atomic_load(&round_ejections) == 1, "round %d: %d ejections", r,
                      atomic_load(&round_ejections));
        tn_passive_get(42, &v);
        ck_assert_uint_eq(v.until_ms, round_now(r) + (r % 2 ? 20000 : 10000));
    }
    for (i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    tn_passive_get(42, &v);
    ck_assert_uint_eq(v.ejections, ROUNDS);
}
END_TEST

/* ---- in-process HTTP servers ---- */

#define MAX_CONNS 16

enum tsrv_mode {
    TSRV_ANSWER, /* answer status once the request head is in */
    TSRV_SILENT, /* read the request, never answer */
    TSRV_CLOSE   /* read the request, hang up */
};

struct tsrv {
    struct evconnlistener *lis;
    int port;
    enum tsrv_mode mode;
    int status;
    int accepted;
    int answered;    /* answers written */
    int peer_closed; /* connections the checker closed on us */
    char last_req[512];
    const char *count_prefix; /* requests starting with it are counted in prefix_hits */
    int prefix_hits;
    struct bufferevent *conns[MAX_CONNS];
};

static void conn_drop(struct tsrv *t, struct bufferevent *bev)
{
    int i;

    for (i = 0; i < MAX_CONNS; i++)
        if (t->conns[i] == bev)
            t->conns[i] = NULL;
    bufferevent_free(bev);
}

static void on_srv_read(struct bufferevent *bev, void *arg)
{
    struct tsrv *t = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    size_t n;

    if (end.pos < 0)
        return;
    n = evbuffer_get_length(in);
    if (n >= sizeof(t->last_req))
        n = sizeof(t->last_req) - 1;
    evbuffer_remove(in, t->last_req, n);
    t->last_req[n] = '\0';
    if (t->count_prefix && !strncmp(t->last_req, t->count_prefix, strlen(t->count_prefix)))
        t->prefix_hits++;
    evbuffer_drain(in, evbuffer_get_length(in));
    switch (t->mode) {
    case TSRV_ANSWER:
        evbuffer_add_printf(bufferevent_get_output(bev),
                            "HTTP/1.1 %d Whatever\r\nContent-Length: 0\r\n"
                            "Connection: close\r\n\r\n",
                            t->status);
        t->answered++;
        break;
    case TSRV_SILENT:
        break;
    case TSRV_CLOSE:
        conn_drop(t, bev);
        break;
    }
}

static void on_srv_write(struct bufferevent *bev, void *arg)
{
    conn_drop(arg, bev); /* the answer is out */
}

static void on_srv_event(struct bufferevent *bev, short what, void *arg)
{
    struct tsrv *t = arg;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        t->peer_closed++;
        conn_drop(t, bev);
    }
}

static void on_srv_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                          int len, void *arg)
{
    struct tsrv *t = arg;
    struct bufferevent *bev;
    int i;

    (void)sa;
    (void)len;
    bev = bufferevent_socket_new(evconnlistener_get_base(lis), fd, BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(bev);
    t->accepted++;
    for (i = 0; i < MAX_CONNS && t->conns[i]; i++)
        ;
    ck_assert_int_lt(i, MAX_CONNS);
    t->conns[i] = bev;
    bufferevent_setcb(bev, on_srv_read, on_srv_write, on_srv_event, t);
    bufferevent_enable(bev, EV_READ);
}

static void tsrv_start(struct tsrv *t, struct event_base *base, enum tsrv_mode mode, int status)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);

    memset(t, 0, sizeof(*t));
    t->mode = mode;
    t->status = status;
    t->lis =
        evconnlistener_new_bind(base, on_srv_accept, t, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                16, (struct sockaddr *)&sin, sizeof(sin));
    ck_assert_ptr_nonnull(t->lis);
    ck_assert_int_eq(getsockname(evconnlistener_get_fd(t->lis), (struct sockaddr *)&sin, &len), 0);
    t->port = ntohs(sin.sin_port);
}

static void tsrv_stop(struct tsrv *t)
{
    int i;

    for (i = 0; i < MAX_CONNS; i++)
        if (t->conns[i])
            bufferevent_free(t->conns[i]);
    if (t->lis)
        evconnlistener_free(t->lis);
    memset(t, 0, sizeof(*t));
}

/* A port on 127.0.0.1 nobody listens on: bound, then closed. */
static int closed_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* ---- transitions seen by the callback ---- */

#define MAX_EVENTS 32

struct tev {
    uint32_t id;
    enum tn_health_state state;
    char why[96];
    int answered; /* the watched server's answers so far */
};

struct trec {
    struct tev ev[MAX_EVENTS];
    int n;
    const struct tsrv *watch; /* whose answers each event snapshots */
};

static void on_health(void *arg, uint32_t id, enum tn_health_state state, const char *why)
{
    struct trec *r = arg;
    struct tev *e;

    ck_assert_int_lt(r->n, MAX_EVENTS);
    e = &r->ev[r->n++];
    e->id = id;
    e->state = state;
    snprintf(e->why, sizeof(e->why), "%s", why);
    e->answered = r->watch ? r->watch->answered : -1;
}

/* The nth (0-based) event about id, or NULL. */
static const struct tev *event_of(const struct trec *r, uint32_t id, int nth)
{
    int i;

    for (i = 0; i < r->n; i++)
        if (r->ev[i].id == id && nth-- == 0)
            return &r->ev[i];
    return NULL;
}

/* ---- bounded waits: the loop runs until cond holds or ms pass ---- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

#define WAIT_FOR(base, ms, cond)                                                                   \
    do {                                                                                           \
        int expired_ = 0;                                                                          \
        struct timeval tv_ = {(ms) / 1000, ((ms) % 1000) * 1000};                                  \
        struct event *dl_ = evtimer_new((base), on_deadline, &expired_);                           \
                                                                                                   \
        ck_assert_ptr_nonnull(dl_);                                                                \
        evtimer_add(dl_, &tv_);                                                                    \
        while (!(cond) && !expired_)                                                               \
            event_base_loop((base), EVLOOP_ONCE);                                                  \
        event_free(dl_);                                                                           \
        ck_assert_msg((cond), "timed out after %d ms waiting for %s", (ms), #cond);                \
    } while (0)

/* Runs the loop for ms whatever happens (to see that nothing does). */
static void run_for(struct event_base *base, int ms)
{
    int expired = 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *dl = evtimer_new(base, on_deadline, &expired);

    evtimer_add(dl, &tv);
    while (!expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(dl);
}

/* ---- plans from configuration text ---- */

static struct tn_plan *plan_from(const char *backends)
{
    char yaml[2048];
    char *err = NULL;
    struct tn_conf *c;
    struct tn_plan *p;

    snprintf(yaml, sizeof(yaml),
             "listen: [{ address: \"127.0.0.1:1\" }]\n"
             "backends:\n%s"
             "routes: [{ name: r, backend: a }]\n",
             backends);
    c = tn_conf_load_string("health.yaml", yaml, strlen(yaml), &err);
    ck_assert_msg(c != NULL, "load: %s\n%s", err ? err : "?", yaml);
    p = tn_plan_new(c, 1, &err);
    ck_assert_msg(p != NULL, "plan: %s", err ? err : "?");
    return p;
}

static uint32_t sid(const struct tn_plan *p, const char *backend, size_t server)
{
    int b = tn_conf_backend_index(p->conf, backend);

    ck_assert_int_ge(b, 0);
    ck_assert_uint_lt(server, p->conf->backends[b].nservers);
    return p->server_ids[b][server];
}

static const char *last_of(const struct tn_health *h, uint32_t id)
{
    const char *last = NULL;

    (void)tn_health_get(h, id, &last);
    ck_assert_ptr_nonnull(last);
    return last;
}

/* ---- active checks ---- */

START_TEST(health_fall_then_rise)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv t;
    struct tn_health *h;
    struct tn_plan *p;
    const char *last;
    char be[512];
    uint32_t id;
    int before;

    tsrv_start(&t, base, TSRV_ANSWER, 200);
    rec.watch = &t;
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [{ name: s1, address: \"127.0.0.1:%d\" }]\n"
             "    health_check: { path: /hz, interval: 40ms, timeout: 40ms, rise: 2, fall: 3 }\n",
             t.port);
    p = plan_from(be);
    id = sid(p, "a", 0);
    h = tn_health_new(base, on_health, &rec);
    tn_health_configure(h, p);
    /* the plan is only borrowed during the call */
    tn_plan_unref(p);
    ck_assert_int_eq(tn_health_get(h, id, &last), TN_HEALTH_UP); /* starts UP */
    ck_assert_str_eq(last, "");

    WAIT_FOR(base, 2000, t.answered >= 2 && !strncmp(last_of(h, id), "HTTP", 4));
    ck_assert_int_eq(rec.n, 0);
    ck_assert_msg(!strncmp(last_of(h, id), "HTTP 200 in ", 12), "last: %s", last_of(h, id));
    ck_assert_msg(strstr(t.last_req, "GET /hz HTTP/1.1\r\n") == t.last_req, "%s", t.last_req);
    ck_assert_ptr_nonnull(strstr(t.last_req, "\r\nUser-Agent: turnout-health\r\n"));
    ck_assert_ptr_nonnull(strstr(t.last_req, "\r\nConnection: close\r\n"));
    {
        char host[64];

        snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", t.port);
        ck_assert_ptr_nonnull(strstr(t.last_req, host));
    }

    /* 503: down after exactly fall = 3 failed checks (every answer counted
     * from here on is a 503; the transition comes as the third is read) */
    t.status = 503;
    before = t.answered;
    WAIT_FOR(base, 3000, rec.n >= 1);
    ck_assert_int_eq(rec.n, 1);
    ck_assert_uint_eq(rec.ev[0].id, id);
    ck_assert_int_eq(rec.ev[0].state, TN_HEALTH_DOWN);
    ck_assert_str_eq(rec.ev[0].why, "HTTP 503");
    ck_assert_int_eq(rec.ev[0].answered - before, 3);
    ck_assert_int_eq(tn_health_get(h, id, &last), TN_HEALTH_DOWN);
    ck_assert_msg(!strncmp(last, "HTTP 503 in ", 12), "last: %s", last);

    /* 200 again: up after exactly rise = 2 passes (no check is in flight
     * right after a transition: the next one starts an interval later) */
    t.status = 200;
    before = t.answered;
    WAIT_FOR(base, 3000, rec.n >= 2);
    ck_assert_int_eq(rec.ev[1].state, TN_HEALTH_UP);
    ck_assert_str_eq(rec.ev[1].why, "passed 2 checks");
    ck_assert_int_eq(rec.ev[1].answered - before, 2);
    ck_assert_int_eq(tn_health_get(h, id, NULL), TN_HEALTH_UP);

    /* while it stays up, nothing more is reported */
    run_for(base, 100);
    ck_assert_int_eq(rec.n, 2);
    tn_health_free(h);
    tsrv_stop(&t);
    event_base_free(base);
}
END_TEST

START_TEST(health_timeout)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv t;
    struct tn_health *h;
    struct tn_plan *p;
    const char *last;
    char be[512];
    uint32_t id;
    uint64_t t0;

    tsrv_start(&t, base, TSRV_SILENT, 0);
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [\"127.0.0.1:%d\"]\n"
             "    health_check: { interval: 100ms, timeout: 50ms, fall: 1 }\n",
             t.port);
    p = plan_from(be);
    id = sid(p, "a", 0);
    h = tn_health_new(base, on_health, &rec);
    t0 = tn_now_ms();
    tn_health_configure(h, p);
    WAIT_FOR(base, 2000, rec.n >= 1);
    ck_assert_uint_ge(tn_now_ms() - t0, 40); /* libevent may round the timer down a ms */
    ck_assert_int_eq(rec.ev[0].state, TN_HEALTH_DOWN);
    ck_assert_str_eq(rec.ev[0].why, "timeout after 50 ms");
    ck_assert_int_eq(tn_health_get(h, id, &last), TN_HEALTH_DOWN);
    ck_assert_str_eq(last, "timeout after 50 ms");
    WAIT_FOR(base, 2000, t.peer_closed >= 1); /* the checker hung up */
    ck_assert_int_eq(t.answered, 0);
    tn_health_free(h);
    tn_plan_unref(p);
    tsrv_stop(&t);
    event_base_free(base);
}
END_TEST

START_TEST(health_refused_and_closed)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv t;
    struct tn_health *h;
    struct tn_plan *p;
    const char *last;
    char be[512];
    uint32_t refused, closing;

    tsrv_start(&t, base, TSRV_CLOSE, 0);
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
             "    health_check: { interval: 40ms, timeout: 40ms, fall: 2 }\n",
             closed_port(), t.port);
    p = plan_from(be);
    refused = sid(p, "a", 0);
    closing = sid(p, "a", 1);
    h = tn_health_new(base, on_health, &rec);
    tn_health_configure(h, p);
    WAIT_FOR(base, 2000, event_of(&rec, refused, 0) && event_of(&rec, closing, 0));
    ck_assert_int_eq(tn_health_get(h, refused, &last), TN_HEALTH_DOWN);
    ck_assert_str_eq(last, "connect: Connection refused");
    ck_assert_int_eq(tn_health_get(h, closing, &last), TN_HEALTH_DOWN);
    ck_assert_str_eq(last, "closed before a status line");
    ck_assert_int_ge(t.accepted, 2);
    ck_assert_str_eq(event_of(&rec, refused, 0)->why, "connect: Connection refused");
    ck_assert_str_eq(event_of(&rec, closing, 0)->why, "closed before a status line");
    tn_health_free(h);
    tn_plan_unref(p);
    tsrv_stop(&t);
    event_base_free(base);
}
END_TEST

START_TEST(health_expect_list)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv t, u;
    struct tn_health *h;
    struct tn_plan *p;
    char be[768];
    uint32_t id, id503;

    tsrv_start(&t, base, TSRV_ANSWER, 200);
    tsrv_start(&u, base, TSRV_ANSWER, 503);
    rec.watch = &t;
    snprintf(
        be, sizeof(be),
        "  a:\n"
        "    servers: [\"127.0.0.1:%d\"]\n"
        "    health_check: { interval: 40ms, timeout: 40ms, rise: 1, fall: 1, expect: [204] }\n"
        "  b:\n"
        "    servers: [\"127.0.0.1:%d\"]\n"
        "    health_check: { interval: 40ms, timeout: 40ms, fall: 1, expect: [200, 503] }\n",
        t.port, u.port);
    p = plan_from(be);
    id = sid(p, "a", 0);
    id503 = sid(p, "b", 0);
    h = tn_health_new(base, on_health, &rec);
    tn_health_configure(h, p);
    WAIT_FOR(base, 2000, rec.n >= 1);
    ck_assert_uint_eq(rec.ev[0].id, id);
    ck_assert_int_eq(rec.ev[0].state, TN_HEALTH_DOWN);
    ck_assert_str_eq(rec.ev[0].why, "HTTP 200"); /* 200 is not in [204] */
    ck_assert_int_eq(rec.ev[0].answered, 1);
    t.status = 204;
    WAIT_FOR(base, 2000, rec.n >= 2);
    ck_assert_int_eq(rec.ev[1].state, TN_HEALTH_UP);
    ck_assert_str_eq(rec.ev[1].why, "passed 1 checks");
    /* 503 listed: healthy */
    WAIT_FOR(base, 2000, u.answered >= 3);
    ck_assert_int_eq(tn_health_get(h, id503, NULL), TN_HEALTH_UP);
    ck_assert_int_eq(rec.n, 2);
    tn_health_free(h);
    tn_plan_unref(p);
    tsrv_stop(&t);
    tsrv_stop(&u);
    event_base_free(base);
}
END_TEST

START_TEST(health_reconfigure)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv s1, s2, s3;
    struct tn_health *h;
    struct tn_plan *p;
    char be[1024];
    uint32_t id1, id2, id3, idc;
    int before;

    tsrv_start(&s1, base, TSRV_ANSWER, 503);
    tsrv_start(&s2, base, TSRV_SILENT, 0);
    tsrv_start(&s3, base, TSRV_ANSWER, 200);
    s3.count_prefix = "GET /other ";
    rec.watch = &s1;
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [{ name: s1, address: \"127.0.0.1:%d\" }]\n"
             "    health_check: { interval: 40ms, timeout: 40ms, fall: 1, rise: 5 }\n"
             "  b:\n"
             "    servers: [{ name: s2, address: \"127.0.0.1:%d\" }]\n"
             "    health_check: { interval: 5s, timeout: 5s }\n"
             "  c:\n"
             "    servers: [\"127.0.0.1:%d\"]\n"
             "    health_check: { interval: 40ms, timeout: 40ms, fall: 1 }\n",
             s1.port, s2.port, s3.port);
    p = plan_from(be);
    id1 = sid(p, "a", 0);
    id2 = sid(p, "b", 0);
    idc = sid(p, "c", 0);
    h = tn_health_new(base, on_health, &rec);
    tn_health_configure(h, p);
    tn_plan_unref(p);
    /* s1 goes down; s2's check hangs in flight */
    WAIT_FOR(base, 2000, event_of(&rec, id1, 0) != NULL && s2.conns[0] != NULL);
    ck_assert_int_eq(event_of(&rec, id1, 0)->state, TN_HEALTH_DOWN);
    ck_assert_int_eq(tn_health_get(h, id2, NULL), TN_HEALTH_UP);
    /* s1 recovers: 5 passes needed, 3 of them before the reload */
    s1.status = 200;
    before = s1.answered;
    WAIT_FOR(base, 2000, s1.answered >= before + 3);

    /* reload: s1 unchanged, backend b (s2) gone, s3 added to a, c's check
     * changed (path) */
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [{ name: s1, address: \"127.0.0.1:%d\" },\n"
             "              { name: s3, address: \"127.0.0.1:%d\" }]\n"
             "    health_check: { interval: 40ms, timeout: 40ms, fall: 1, rise: 5 }\n"
             "  c:\n"
             "    servers: [\"127.0.0.1:%d\"]\n"
             "    health_check: { path: /other, interval: 40ms, timeout: 40ms, fall: 1 }\n",
             s1.port, s3.port, s3.port);
    p = plan_from(be);
    ck_assert_uint_eq(sid(p, "a", 0), id1);
    ck_assert_uint_eq(sid(p, "c", 0), idc);
    id3 = sid(p, "a", 1);
    tn_health_configure(h, p);
    tn_plan_unref(p);
    ck_assert_ptr_null(event_of(&rec, id1, 1));
    ck_assert_int_eq(tn_health_get(h, id1, NULL), TN_HEALTH_DOWN); /* kept */
    ck_assert_int_eq(tn_health_get(h, id2, NULL), TN_HEALTH_UNCHECKED);
    ck_assert_int_eq(tn_health_get(h, id3, NULL), TN_HEALTH_UP);
    ck_assert_int_eq(tn_health_get(h, idc, NULL), TN_HEALTH_UP);
    ck_assert_int_eq(s2.peer_closed, 0);
    /* the removed server's check was cancelled: its connection closes */
    WAIT_FOR(base, 2000, s2.peer_closed == 1);
    /* c is checked with its new path */
    WAIT_FOR(base, 2000, s3.prefix_hits >= 2);
    /* s1 kept its counters: up at the 5th pass, not 5 passes after the reload */
    WAIT_FOR(base, 3000, event_of(&rec, id1, 1) != NULL);
    ck_assert_int_eq(event_of(&rec, id1, 1)->state, TN_HEALTH_UP);
    ck_assert_str_eq(event_of(&rec, id1, 1)->why, "passed 5 checks");
    ck_assert_int_eq(event_of(&rec, id1, 1)->answered - before, 5);
    ck_assert_int_eq(s2.accepted, 1); /* never checked again */
    tn_health_free(h);
    tsrv_stop(&s1);
    tsrv_stop(&s2);
    tsrv_stop(&s3);
    event_base_free(base);
}
END_TEST

START_TEST(health_reconfigure_notices)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv t;
    struct tn_health *h;
    struct tn_plan *p;
    char be[1024];
    uint32_t id1, id2;
    int n;

    tsrv_start(&t, base, TSRV_ANSWER, 503);
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [{ name: s1, address: \"127.0.0.1:%d\" }]\n"
             "    health_check: { interval: 40ms, timeout: 40ms, fall: 1 }\n"
             "  b:\n"
             "    servers: [{ name: s2, address: \"127.0.0.1:%d\" }]\n"
             "    health_check: { interval: 40ms, timeout: 40ms, fall: 1 }\n",
             t.port, t.port);
    p = plan_from(be);
    id1 = sid(p, "a", 0);
    id2 = sid(p, "b", 0);
    h = tn_health_new(base, on_health, &rec);
    tn_health_configure(h, p);
    tn_plan_unref(p);
    WAIT_FOR(base, 2000, event_of(&rec, id1, 0) && event_of(&rec, id2, 0));
    ck_assert_int_eq(rec.n, 2);

    /* a's check changes, b loses its health_check: told from the loop */
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [{ name: s1, address: \"127.0.0.1:%d\" }]\n"
             "    health_check: { interval: 40ms, timeout: 40ms, fall: 1, rise: 3 }\n"
             "  b:\n"
             "    servers: [{ name: s2, address: \"127.0.0.1:%d\" }]\n",
             t.port, t.port);
    p = plan_from(be);
    tn_health_configure(h, p);
    tn_plan_unref(p);
    ck_assert_int_eq(rec.n, 2); /* nothing from inside the call */
    ck_assert_int_eq(tn_health_get(h, id1, NULL), TN_HEALTH_UP);
    ck_assert_int_eq(tn_health_get(h, id2, NULL), TN_HEALTH_UNCHECKED);
    WAIT_FOR(base, 2000, event_of(&rec, id1, 2) != NULL);
    ck_assert_int_eq(event_of(&rec, id1, 1)->state, TN_HEALTH_UP);
    ck_assert_str_eq(event_of(&rec, id1, 1)->why, "health check changed");
    ck_assert_int_eq(event_of(&rec, id1, 2)->state, TN_HEALTH_DOWN); /* still 503 */
    ck_assert_str_eq(event_of(&rec, id1, 2)->why, "HTTP 503");
    ck_assert_int_eq(event_of(&rec, id2, 1)->state, TN_HEALTH_UNCHECKED);
    ck_assert_str_eq(event_of(&rec, id2, 1)->why, "no longer checked");
    n = rec.n;
    run_for(base, 100);
    ck_assert_ptr_null(event_of(&rec, id2, 2));
    ck_assert_int_eq(rec.n, n);
    tn_health_free(h);
    tsrv_stop(&t);
    event_base_free(base);
}
END_TEST

START_TEST(health_reconfigure_keeps_schedule)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv t;
    struct tn_health *h;
    struct tn_plan *p;
    char be[512];

    tsrv_start(&t, base, TSRV_ANSWER, 200);
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [\"127.0.0.1:%d\"]\n"
             "    health_check: { interval: 10s, timeout: 1s }\n",
             t.port);
    p = plan_from(be);
    h = tn_health_new(base, on_health, &rec);
    tn_health_configure(h, p);
    WAIT_FOR(base, 2000, t.answered == 1 && t.conns[0] == NULL);
    /* the same plan again, and an equal new one: no extra check */
    tn_health_configure(h, p);
    tn_plan_unref(p);
    p = plan_from(be);
    tn_health_configure(h, p);
    tn_plan_unref(p);
    run_for(base, 100);
    ck_assert_int_eq(t.answered, 1);
    ck_assert_int_eq(t.accepted, 1);
    tn_health_free(h);
    tsrv_stop(&t);
    event_base_free(base);
}
END_TEST

START_TEST(health_free_in_flight)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv t;
    struct tn_health *h;
    struct tn_plan *p;
    char be[512];

    tsrv_start(&t, base, TSRV_SILENT, 0);
    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
             "    health_check: { interval: 5s, timeout: 5s }\n",
             t.port, closed_port());
    p = plan_from(be);
    h = tn_health_new(base, on_health, &rec);
    tn_health_configure(h, p);
    tn_plan_unref(p);
    WAIT_FOR(base, 2000, t.conns[0] != NULL);
    tn_health_free(h); /* one check in flight, one waiting */
    WAIT_FOR(base, 2000, t.peer_closed == 1);
    run_for(base, 50);
    ck_assert_int_eq(rec.n, 0);
    tn_health_free(NULL);
    tsrv_stop(&t);
    event_base_free(base);
}
END_TEST

START_TEST(health_unchecked_and_names)
{
    struct event_base *base = event_base_new();
    struct trec rec = {0};
    struct tsrv t;
    struct tn_health *h;
    struct tn_plan *p;
    const char *last = NULL;
    char be[512];

    tsrv_start(&t, base, TSRV_ANSWER, 200);
    snprintf(be, sizeof(be), "  a:\n    servers: [\"127.0.0.1:%d\"]\n", t.port);
    p = plan_from(be);
    h = tn_health_new(base, on_health, &rec);
    tn_health_configure(h, p);
    run_for(base, 50);
    ck_assert_int_eq(t.accepted, 0);
    ck_assert_int_eq(tn_health_get(h, sid(p, "a", 0), &last), TN_HEALTH_UNCHECKED);
    ck_assert_str_eq(last, "");
    ck_assert_int_eq(tn_health_get(h, 123456, &last), TN_HEALTH_UNCHECKED);
    ck_assert_int_eq(tn_health_get(NULL, 0, NULL), TN_HEALTH_UNCHECKED);
    ck_assert_str_eq(tn_health_state_name(TN_HEALTH_UNCHECKED), "unchecked");
    ck_assert_str_eq(tn_health_state_name(TN_HEALTH_UP), "up");
    ck_assert_str_eq(tn_health_state_name(TN_HEALTH_DOWN), "down");
    tn_health_free(h);
    tn_plan_unref(p);
    tsrv_stop(&t);
    event_base_free(base);
}
END_TEST

/* The callback may free the checker (the control thread shutting down). */
struct free_in_cb {
    struct tn_health *h;
    int calls;
};

static void on_health_free(void *arg, uint32_t id, enum tn_health_state state, const char *why)
{
    struct free_in_cb *f = arg;

    (void)id;
    (void)state;
    (void)why;
    f->calls++;
    tn_health_free(f->h);
    f->h = NULL;
}

START_TEST(health_free_from_callback)
{
    struct event_base *base = event_base_new();
    struct free_in_cb f = {0};
    struct tn_plan *p;
    char be[512];

    snprintf(be, sizeof(be),
             "  a:\n"
             "    servers: [\"127.0.0.1:%d\"]\n"
             "    health_check: { interval: 20ms, timeout: 20ms, fall: 1 }\n",
             closed_port());
    p = plan_from(be);
    f.h = tn_health_new(base, on_health_free, &f);
    tn_health_configure(f.h, p);
    tn_plan_unref(p);
    WAIT_FOR(base, 2000, f.calls == 1);
    run_for(base, 50);
    ck_assert_int_eq(f.calls, 1);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("health");
    TCase *tp = tcase_create("passive");
    TCase *ta = tcase_create("active");
    SRunner *sr;
    int failed;

    tcase_add_test(tp, passive_sequence);
    tcase_add_test(tp, passive_failures_zero_disables);
    tcase_add_test(tp, passive_clear);
    tcase_add_test(tp, passive_reserve_growth);
    tcase_add_test(tp, passive_concurrent_one_ejection_per_crossing);
    tcase_set_timeout(tp, 30);
    tcase_add_test(ta, health_fall_then_rise);
    tcase_add_test(ta, health_timeout);
    tcase_add_test(ta, health_refused_and_closed);
    tcase_add_test(ta, health_expect_list);
    tcase_add_test(ta, health_reconfigure);
    tcase_add_test(ta, health_reconfigure_notices);
    tcase_add_test(ta, health_reconfigure_keeps_schedule);
    tcase_add_test(ta, health_free_in_flight);
    tcase_add_test(ta, health_unchecked_and_names);
    tcase_add_test(ta, health_free_from_callback);
    tcase_set_timeout(ta, 30);
    suite_add_tcase(s, tp);
    suite_add_tcase(s, ta);
    sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
