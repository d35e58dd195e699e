/* Segment sets: the string set (turnout/strset.h) alone and under
 * concurrent readers, and the loader (turnout/setload.h) with the Redis
 * client's generic commands and `changes` messages (turnout/redis.h)
 * against real redis-server processes on free 127.0.0.1 ports, in a
 * temporary directory; every server is killed by pid at the end (and dies
 * with the test process through PR_SET_PDEATHSIG). The test fills Redis with
 * hiredis's blocking API; the modules under test never block. */
#include <check.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/redis.h"
#include "turnout/setload.h"
#include "turnout/strset.h"

#define MAX_PIDS 4
#define MAX_RESULTS 8
#define KEY "turnout:seg:segment:staff"

static char tmpdir[128];
static pid_t pids[MAX_PIDS];
static int npids;
static struct event_base *base;
static struct event *tick;

/* ---- processes (as in check_redis.c) ---- */

static void kill_all(void)
{
    char cmd[192];
    int i;

    for (i = 0; i < npids; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
    }
    npids = 0;
    if (tmpdir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", tmpdir);
        tmpdir[0] = '\0';
    }
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static pid_t start_redis(int port)
{
    char portbuf[16];
    char *argv[] = {"redis-server", "--port", portbuf,        "--bind", "127.0.0.1", "--save", "",
                    "--dir",        tmpdir,   "--appendonly", "no",     NULL};
    pid_t parent = getpid(), pid;
    int null;

    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof(tmpdir), "%s/check_segment.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    }
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        null = open("/dev/null", 0);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    ck_assert_int_lt(npids, MAX_PIDS);
    pids[npids++] = pid;
    return pid;
}

static void kill_server(pid_t pid)
{
    int i;

    for (i = 0; i < npids; i++) {
        if (pids[i] == pid) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            pids[i] = 0;
        }
    }
}

static redisContext *cli_try(int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *rp;

    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    rp = redisCommand(c, "PING");
    if (!rp || rp->type != REDIS_REPLY_STATUS) {
        freeReplyObject(rp);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(rp);
    return c;
}

/* Polls (bounded) until the server at port answers PING. */
static redisContext *cli(int port)
{
    uint64_t deadline = tn_now_ms() + 10000;
    struct timespec ts = {0, 10 * 1000 * 1000};
    redisContext *c;

    while (!(c = cli_try(port)) && tn_now_ms() < deadline)
        nanosleep(&ts, NULL); /* poll interval, not a stand-in for the condition */
    ck_assert_msg(c != NULL, "server on port %d did not come up", port);
    return c;
}

static void cmd_ok(redisContext *c, const char *fmt, ...)
{
    redisReply *rp;
    va_list ap;

    va_start(ap, fmt);
    rp = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(rp != NULL && rp->type != REDIS_REPLY_ERROR, "%s: %s", fmt,
                  rp ? rp->str : c->errstr);
    freeReplyObject(rp);
}

/* The test's member names: "user0000042" and so on (11 bytes). */
static size_t member(char *buf, size_t len, const char *prefix, size_t i)
{
    return (size_t)snprintf(buf, len, "%s%07zu", prefix, i);
}

/* SADD key prefix0..prefix(n-1), 1000 members a command, pipelined. */
static void fill(redisContext *c, const char *key, const char *prefix, size_t n)
{
    enum { PER = 1000 };
    static char bufs[PER][32];
    const char *argv[PER + 2];
    size_t lens[PER + 2], i, k, sent = 0, j;
    redisReply *rp;

    for (i = 0; i < n; i += PER) {
        argv[0] = "SADD";
        lens[0] = 4;
        argv[1] = key;
        lens[1] = strlen(key);
        for (k = 0; k < PER && i + k < n; k++) {
            lens[k + 2] = member(bufs[k], sizeof(bufs[k]), prefix, i + k);
            argv[k + 2] = bufs[k];
        }
        /* hiredis copies the arguments into its output buffer */
        ck_assert_int_eq(redisAppendCommandArgv(c, (int)k + 2, argv, lens), REDIS_OK);
        sent++;
    }
    for (j = 0; j < sent; j++) {
        ck_assert_int_eq(redisGetReply(c, (void **)&rp), REDIS_OK);
        ck_assert_int_eq(rp->type, REDIS_REPLY_INTEGER);
        freeReplyObject(rp);
    }
}

/* ---- the event loop and the client ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

#define WAIT_FOR(cond, ms)                                                                         \
    do {                                                                                           \
        uint64_t dl_ = tn_now_ms() + (ms);                                                         \
        while (!(cond) && tn_now_ms() < dl_)                                                       \
            event_base_loop(base, EVLOOP_ONCE);                                                    \
    } while (0)

struct probe {
    int nsnap, nup, ndown;
    int nmsg;
    char msg[128];
};

struct result {
    char name[32];
    struct tn_strset *set; /* owned by the test */
    char err[256];
};

struct results {
    int n;
    struct result r[MAX_RESULTS];
    struct tn_setload *free_in_done; /* tn_setload_free from inside done */
};

static void on_snapshot(void *arg, const struct tn_redis_snapshot *s)
{
    struct probe *p = arg;

    (void)s;
    p->nsnap++;
}

static void on_link(void *arg, enum tn_redis_link link, const char *why)
{
    struct probe *p = arg;

    (void)why;
    if (link == TN_REDIS_UP)
        p->nup++;
    else if (link == TN_REDIS_DOWN)
        p->ndown++;
}

static void on_message(void *arg, const char *payload)
{
    struct probe *p = arg;

    p->nmsg++;
    snprintf(p->msg, sizeof(p->msg), "%s", payload);
}

static void on_loaded(void *arg, const char *name, struct tn_strset *set, const char *err)
{
    struct results *rs = arg;
    struct result *r;

    ck_assert_int_lt(rs->n, MAX_RESULTS);
    ck_assert((set != NULL) != (err != NULL));
    r = &rs->r[rs->n++];
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->set = set;
    snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
    if (rs->free_in_done) {
        tn_setload_free(rs->free_in_done);
        rs->free_in_done = NULL;
    }
}

static void results_clear(struct results *rs)
{
    int i;

    for (i = 0; i < rs->n; i++)
        tn_strset_unref(rs->r[i].set);
    memset(rs, 0, sizeof(*rs));
}

static void setup(void)
{
    struct timeval tv = {0, 10000};

    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(tick, &tv);
}

static void teardown(void)
{
    event_free(tick);
    event_base_free(base);
    kill_all();
}

/* A client of 127.0.0.1:port, namespace "seg", waited up. */
static struct tn_redis *client(int port, char *text, size_t len, struct probe *p)
{
    struct tn_redis_cbs cbs = {
        .on_snapshot = on_snapshot, .on_link = on_link, .arg = p, .on_message = on_message};
    struct tn_conf_redis c;
    const char *why = NULL;
    struct tn_redis *r;

    memset(&c, 0, sizeof(c));
    memset(p, 0, sizeof(*p));
    snprintf(text, len, "127.0.0.1:%d", port);
    ck_assert_int_eq(tn_conf_parse_addr(text, &c.addr), TN_OK);
    c.addr.text = text;
    c.address = text;
    c.namespace_ = "seg";
    c.resync_ms = 60000; /* no periodic read during the tests */
    c.connect_timeout_ms = 1000;
    r = tn_redis_new(base, &c, "node-s", &cbs, &why);
    ck_assert_msg(r != NULL, "tn_redis_new: %s", why);
    WAIT_FOR(p->nup > 0, 5000);
    ck_assert_int_eq(tn_redis_link_state(r), TN_REDIS_UP);
    return r;
}

/* Every prefix<i> for i < n is in set; a few others are not. (Check
 * records each assertion through a pipe: loops count, then assert once.) */
static void check_members(const struct tn_strset *set, const char *prefix, size_t n)
{
    char buf[32];
    size_t i, len, missing = 0, extra = 0;

    ck_assert_uint_eq(tn_strset_count(set), n);
    for (i = 0; i < n; i++) {
        len = member(buf, sizeof(buf), prefix, i);
        missing += !tn_strset_has(set, buf, len);
    }
    for (i = n; i < n + 100; i++) {
        len = member(buf, sizeof(buf), prefix, i);
        extra += tn_strset_has(set, buf, len) != 0;
    }
    ck_assert_uint_eq(missing, 0);
    ck_assert_uint_eq(extra, 0);
    ck_assert(!tn_strset_has(set, "nobody", 6));
    ck_assert(!tn_strset_has(set, "", 0));
}

/* ---- strset ---- */

START_TEST(strset_basic)
{
    static const char bin[] = {'a', '\0', 'b', '\xff', '\n'};
    struct tn_strset *s = tn_strset_new();
    char buf[300];
    int i;

    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(tn_strset_count(s), 0);
    ck_assert_int_eq(tn_strset_add(s, "alice", 5), TN_OK);
    ck_assert_int_eq(tn_strset_add(s, "bob", 3), TN_OK);
    ck_assert_int_eq(tn_strset_add(s, "alice", 5), TN_OK); /* duplicate */
    ck_assert_int_eq(tn_strset_add(s, "", 0), TN_OK);
    ck_assert_int_eq(tn_strset_add(s, "", 0), TN_OK);
    ck_assert_int_eq(tn_strset_add(s, bin, sizeof(bin)), TN_OK);
    memset(buf, 'x', sizeof(buf)); /* a length that takes two prefix bytes */
    ck_assert_int_eq(tn_strset_add(s, buf, sizeof(buf)), TN_OK);
    for (i = 0; i < 100; i++) { /* several table growths */
        snprintf(buf, sizeof(buf), "m%d", i);
        ck_assert_int_eq(tn_strset_add(s, buf, strlen(buf)), TN_OK);
    }
    tn_strset_seal(s);
    ck_assert_uint_eq(tn_strset_count(s), 105);
    ck_assert(tn_strset_has(s, "alice", 5));
    ck_assert(tn_strset_has(s, "bob", 3));
    ck_assert(tn_strset_has(s, "", 0));
    ck_assert(tn_strset_has(s, bin, sizeof(bin)));
    ck_assert(!tn_strset_has(s, bin, sizeof(bin) - 1)); /* a prefix is another string */
    ck_assert(!tn_strset_has(s, "a", 1));
    ck_assert(!tn_strset_has(s, "alic", 4));
    ck_assert(!tn_strset_has(s, "alicee", 6));
    ck_assert(!tn_strset_has(s, "Alice", 5));
    memset(buf, 'x', sizeof(buf));
    ck_assert(tn_strset_has(s, buf, 300));
    ck_assert(!tn_strset_has(s, buf, 299));
    ck_assert(tn_strset_has(s, "m99", 3));
    ck_assert(!tn_strset_has(s, "m100", 4));
    ck_assert(!tn_strset_has(NULL, "alice", 5));
    ck_assert_uint_gt(tn_strset_bytes(s), 0);
    ck_assert_ptr_eq(tn_strset_ref(s), s);
    tn_strset_unref(s);
    ck_assert(tn_strset_has(s, "alice", 5)); /* one reference left */
    tn_strset_unref(s);
    tn_strset_unref(NULL);

    s = tn_strset_new(); /* an empty set, sealed */
    tn_strset_seal(s);
    ck_assert(!tn_strset_has(s, "", 0));
    ck_assert_uint_eq(tn_strset_count(s), 0);
    tn_strset_unref(s);
}
END_TEST

START_TEST(strset_million)
{
    enum { N = 1000000 };
    struct tn_strset *s = tn_strset_new();
    uint64_t t0 = tn_now_us(), t1, t2;
    char buf[32];
    size_t i, len, bad = 0;

    for (i = 0; i < N; i++) {
        len = member(buf, sizeof(buf), "user:", i); /* 12 bytes */
        bad += tn_strset_add(s, buf, len) != TN_OK;
    }
    tn_strset_seal(s);
    t1 = tn_now_us();
    for (i = 0; i < N; i++) {
        len = member(buf, sizeof(buf), "user:", i);
        bad += !tn_strset_has(s, buf, len);
    }
    t2 = tn_now_us();
    ck_assert_uint_eq(bad, 0);
    printf("strset: 1000000 members of 12 bytes: %.1f MiB, built in %llu ms, "
           "%.0f ns per lookup\n",
           tn_strset_bytes(s) / 1048576.0, (unsigned long long)(t1 - t0) / 1000,
           (double)(t2 - t1) * 1000.0 / N);
    ck_assert_uint_lt(tn_strset_bytes(s), 64u << 20);
    ck_assert_uint_eq(tn_strset_count(s), N);
    for (i = N; i < N + 1000; i++) {
        len = member(buf, sizeof(buf), "user:", i);
        bad += tn_strset_has(s, buf, len) != 0;
    }
    ck_assert_uint_eq(bad, 0);
    tn_strset_unref(s);

    s = tn_strset_new(); /* reserved up front: same contents */
    ck_assert_int_eq(tn_strset_reserve(s, N, 13 * (size_t)N), TN_OK);
    for (i = 0; i < N; i += 7) {
        len = member(buf, sizeof(buf), "user:", i);
        bad += tn_strset_add(s, buf, len) != TN_OK;
    }
    ck_assert_uint_eq(bad, 0);
    tn_strset_seal(s);
    ck_assert_uint_eq(tn_strset_count(s), (N + 6) / 7);
    ck_assert(tn_strset_has(s, "user:0000007", 12));
    ck_assert(!tn_strset_has(s, "user:0000008", 12));
    tn_strset_unref(s);
}
END_TEST

struct reader {
    struct tn_strset *set;
    size_t n;
    size_t bad;
};

static void *read_all(void *arg)
{
    struct reader *rd = arg;
    struct tn_strset *s = rd->set; /* the reference taken for this thread */
    char buf[32];
    size_t i, len, round;

    for (round = 0; round < 3; round++) {
        for (i = 0; i < rd->n + 1000; i++) {
            len = member(buf, sizeof(buf), "k", i);
            if (tn_strset_has(s, buf, len) != (i < rd->n))
                rd->bad++;
        }
    }
    tn_strset_unref(s);
    return NULL;
}

START_TEST(strset_concurrent_readers)
{
    enum { N = 200000, T = 4 };
    struct tn_strset *s = tn_strset_new();
    struct reader rd[T];
    pthread_t th[T];
    char buf[32];
    size_t i, len, bad = 0;

    for (i = 0; i < N; i++) {
        len = member(buf, sizeof(buf), "k", i);
        bad += tn_strset_add(s, buf, len) != TN_OK;
    }
    ck_assert_uint_eq(bad, 0);
    tn_strset_seal(s);
    for (i = 0; i < T; i++) {
        rd[i] = (struct reader){.set = tn_strset_ref(s), .n = N};
        ck_assert_int_eq(pthread_create(&th[i], NULL, read_all, &rd[i]), 0);
    }
    tn_strset_unref(s); /* the readers' references keep it alive */
    for (i = 0; i < T; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_uint_eq(rd[i].bad, 0);
    }
}
END_TEST

/* ---- the Redis client: generic commands, messages ---- */

struct answer {
    int n;
    long long integer;
    char err[256];
};

static void on_answer(void *arg, const struct redisReply *reply, const char *err)
{
    struct answer *a = arg;

    a->n++;
    a->integer = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    snprintf(a->err, sizeof(a->err), "%s", err ? err : "");
    ck_assert((reply != NULL) != (err != NULL));
}

START_TEST(redis_command_and_messages)
{
    int port = free_port(), nsnap;
    char text[32];
    const char *argv[] = {"SADD", "s", "a\0b", "c"};
    const size_t lens[] = {4, 1, 3, 1};
    const char *scard[] = {"SCARD", "s"}, *bad[] = {"NOSUCHCOMMAND"};
    struct answer a = {0}, b = {0};
    struct probe p;
    struct tn_redis *r;
    redisContext *rc;

    start_redis(port);
    rc = cli(port);
    r = client(port, text, sizeof(text), &p);

    ck_assert_int_eq(tn_redis_command(r, 4, argv, lens, on_answer, &a), TN_OK);
    ck_assert_int_eq(a.n, 0); /* never from inside the call */
    WAIT_FOR(a.n > 0, 5000);
    ck_assert_int_eq(a.n, 1);
    ck_assert_int_eq(a.integer, 2);
    ck_assert_int_eq(tn_redis_command(r, 2, scard, NULL, on_answer, &a), TN_OK);
    ck_assert_int_eq(tn_redis_command(r, 1, bad, NULL, on_answer, &b), TN_OK);
    WAIT_FOR(a.n > 1 && b.n > 0, 5000);
    ck_assert_int_eq(a.integer, 2);
    ck_assert_int_eq(b.n, 1);
    ck_assert_msg(strncmp(b.err, "ERR", 3) == 0, "%s", b.err);

    /* a segment message reaches on_message and reads nothing */
    nsnap = p.nsnap;
    cmd_ok(rc, "PUBLISH turnout:seg:changes segment:staff");
    WAIT_FOR(p.nmsg > 0, 5000);
    ck_assert_str_eq(p.msg, "segment:staff");
    /* a read would have been queued before this command on the same
     * connection, so its answer would come first */
    ck_assert_int_eq(tn_redis_command(r, 2, scard, NULL, on_answer, &a), TN_OK);
    WAIT_FOR(a.n > 2, 5000);
    ck_assert_int_eq(a.n, 3);
    ck_assert_int_eq(p.nsnap, nsnap);

    /* any other message reads everything again */
    cmd_ok(rc, "PUBLISH turnout:seg:changes weights");
    WAIT_FOR(p.nsnap > nsnap, 5000);
    ck_assert_int_eq(p.nmsg, 2);
    ck_assert_str_eq(p.msg, "weights");
    ck_assert_int_eq(p.nsnap, nsnap + 1);

    /* pending commands are answered by tn_redis_free */
    ck_assert_int_eq(tn_redis_command(r, 2, scard, NULL, on_answer, &b), TN_OK);
    tn_redis_free(r);
    ck_assert_int_eq(b.n, 2);
    ck_assert_str_eq(b.err, "shutting down");
    redisFree(rc);
}
END_TEST

START_TEST(redis_command_when_down)
{
    int port = free_port();
    char text[32];
    const char *ping[] = {"PING"};
    struct answer a = {0};
    struct probe p;
    struct tn_redis *r;
    pid_t pid;

    pid = start_redis(port);
    redisFree(cli(port));
    r = client(port, text, sizeof(text), &p);
    ck_assert_int_eq(tn_redis_command(r, 1, ping, NULL, on_answer, &a), TN_OK);
    kill_server(pid);
    WAIT_FOR(p.ndown > 0 && a.n > 0, 5000);
    ck_assert_int_eq(a.n, 1);
    ck_assert_msg(a.err[0] != '\0', "PING answered");
    ck_assert_int_eq(tn_redis_command(r, 1, ping, NULL, on_answer, &a), TN_ERR);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(a.n, 1);
    tn_redis_free(r);
}
END_TEST

/* ---- setload ---- */

/* A server on a free port, a connected client and a loader. */
struct fixture {
    int port;
    pid_t pid;
    char text[32];
    redisContext *rc;
    struct probe p;
    struct tn_redis *r;
    struct results rs;
    struct tn_setload *l;
};

static void fx_start(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    fx->port = free_port();
    fx->pid = start_redis(fx->port);
    fx->rc = cli(fx->port);
    fx->r = client(fx->port, fx->text, sizeof(fx->text), &fx->p);
    fx->l = tn_setload_new(fx->r, on_loaded, &fx->rs);
    ck_assert_ptr_nonnull(fx->l);
}

static void fx_stop(struct fixture *fx)
{
    tn_setload_free(fx->l);
    tn_redis_free(fx->r);
    results_clear(&fx->rs);
    if (fx->rc)
        redisFree(fx->rc);
}

START_TEST(setload_100k_exact)
{
    struct fixture fx;
    size_t members;

    fx_start(&fx);
    fill(fx.rc, KEY, "user", 100000);
    ck_assert_int_eq(tn_setload_busy(fx.l, "staff", &members), 0);
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    ck_assert_int_eq(tn_setload_busy(fx.l, "staff", &members), 1);
    ck_assert_int_eq(fx.rs.n, 0);
    WAIT_FOR(fx.rs.n > 0, 20000);
    ck_assert_int_eq(fx.rs.n, 1);
    ck_assert_str_eq(fx.rs.r[0].name, "staff");
    ck_assert_str_eq(fx.rs.r[0].err, "");
    check_members(fx.rs.r[0].set, "user", 100000);
    ck_assert_int_eq(tn_setload_busy(fx.l, "staff", &members), 0);
    fx_stop(&fx);
}
END_TEST

struct gap {
    uint64_t last_us, max_us;
    int ticks;
};

static void on_gap_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gap *g = arg;
    uint64_t now = tn_now_us();

    (void)fd;
    (void)what;
    if (g->last_us && now - g->last_us > g->max_us)
        g->max_us = now - g->last_us;
    g->last_us = now;
    g->ticks++;
}

START_TEST(setload_million_keeps_loop_running)
{
    enum { N = 1000000 };
    struct timeval tv = {0, 5000};
    struct fixture fx;
    struct gap g = {0};
    struct event *timer;
    uint64_t t0, t1;

    fx_start(&fx);
    t0 = tn_now_ms();
    fill(fx.rc, KEY, "user", N);
    printf("setload: 1000000 members written to redis in %llu ms\n",
           (unsigned long long)(tn_now_ms() - t0));
    timer = event_new(base, -1, EV_PERSIST, on_gap_tick, &g);
    event_add(timer, &tv);
    g.last_us = tn_now_us();
    t0 = tn_now_ms();
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    WAIT_FOR(fx.rs.n > 0, 45000);
    t1 = tn_now_ms();
    on_gap_tick(-1, 0, &g); /* the gap up to the end counts too */
    event_free(timer);
    ck_assert_int_eq(fx.rs.n, 1);
    ck_assert_str_eq(fx.rs.r[0].err, "");
    printf("setload: 1000000 members loaded in %llu ms (%.1f MiB); 5 ms timer: %d ticks, "
           "largest gap %.1f ms\n",
           (unsigned long long)(t1 - t0), tn_strset_bytes(fx.rs.r[0].set) / 1048576.0, g.ticks,
           g.max_us / 1000.0);
    ck_assert_uint_lt(g.max_us, 200000);
    check_members(fx.rs.r[0].set, "user", N);
    fx_stop(&fx);
}
END_TEST

START_TEST(setload_update_missing_wrongtype)
{
    struct fixture fx;
    const struct tn_strset *s;

    fx_start(&fx);
    fill(fx.rc, KEY, "user", 5000);
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    WAIT_FOR(fx.rs.n > 0, 10000);
    check_members(fx.rs.r[0].set, "user", 5000);

    /* an update, then a new load: the new contents; the old set unchanged */
    cmd_ok(fx.rc, "SREM " KEY " user0000000 user0000001");
    cmd_ok(fx.rc, "SADD " KEY " newcomer");
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    WAIT_FOR(fx.rs.n > 1, 10000);
    s = fx.rs.r[1].set;
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(tn_strset_count(s), 4999);
    ck_assert(tn_strset_has(s, "newcomer", 8));
    ck_assert(!tn_strset_has(s, "user0000000", 11));
    ck_assert(!tn_strset_has(s, "user0000001", 11));
    ck_assert(tn_strset_has(s, "user0000002", 11));
    check_members(fx.rs.r[0].set, "user", 5000);

    /* a missing key is an empty set */
    ck_assert_int_eq(tn_setload_start(fx.l, "none", "turnout:seg:segment:none"), TN_OK);
    WAIT_FOR(fx.rs.n > 2, 10000);
    ck_assert_str_eq(fx.rs.r[2].name, "none");
    ck_assert_str_eq(fx.rs.r[2].err, "");
    ck_assert_ptr_nonnull(fx.rs.r[2].set);
    ck_assert_uint_eq(tn_strset_count(fx.rs.r[2].set), 0);

    /* a key of another type is an error */
    cmd_ok(fx.rc, "SET turnout:seg:segment:str hello");
    ck_assert_int_eq(tn_setload_start(fx.l, "str", "turnout:seg:segment:str"), TN_OK);
    WAIT_FOR(fx.rs.n > 3, 10000);
    ck_assert_ptr_null(fx.rs.r[3].set);
    ck_assert_msg(strncmp(fx.rs.r[3].err, "WRONGTYPE", 9) == 0, "%s", fx.rs.r[3].err);
    fx_stop(&fx);
}
END_TEST

START_TEST(setload_redis_killed)
{
    struct fixture fx;
    struct tn_strset *prev;
    size_t members = 0;

    fx_start(&fx);
    fill(fx.rc, KEY, "user", 3000);
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    WAIT_FOR(fx.rs.n > 0, 10000);
    prev = fx.rs.r[0].set; /* what a node would be using */
    check_members(prev, "user", 3000);

    fill(fx.rc, KEY, "user", 300000);
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    WAIT_FOR(tn_setload_busy(fx.l, "staff", &members) && members >= 20000, 20000);
    ck_assert_uint_ge(members, 20000);
    ck_assert_int_eq(fx.rs.n, 1);
    kill_server(fx.pid);
    redisFree(fx.rc);
    fx.rc = NULL;
    WAIT_FOR(fx.rs.n > 1, 10000);
    ck_assert_int_eq(fx.rs.n, 2);
    ck_assert_ptr_null(fx.rs.r[1].set);
    ck_assert_msg(fx.rs.r[1].err[0] != '\0', "no error");
    printf("setload: redis killed after %zu members: \"%s\"\n", members, fx.rs.r[1].err);
    ck_assert_int_eq(tn_setload_busy(fx.l, "staff", NULL), 0);
    check_members(prev, "user", 3000);                              /* untouched */
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_ERR); /* down */
    fx_stop(&fx);
}
END_TEST

START_TEST(setload_coalesce_and_parallel)
{
    struct fixture fx;
    int i, nstaff = 0, nbeta = 0;

    fx_start(&fx);
    fill(fx.rc, KEY, "user", 50000);
    fill(fx.rc, "turnout:seg:segment:beta", "beta", 20000);
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    ck_assert_int_eq(tn_setload_start(fx.l, "beta", "turnout:seg:segment:beta"), TN_OK);
    /* two more starts while running: one more load after the current one */
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    ck_assert(tn_setload_busy(fx.l, "beta", NULL));
    WAIT_FOR(fx.rs.n >= 3 && !tn_setload_busy(fx.l, "staff", NULL), 20000);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(fx.rs.n, 3);
    for (i = 0; i < fx.rs.n; i++) {
        ck_assert_str_eq(fx.rs.r[i].err, "");
        if (strcmp(fx.rs.r[i].name, "staff") == 0) {
            check_members(fx.rs.r[i].set, "user", 50000);
            nstaff++;
        } else {
            check_members(fx.rs.r[i].set, "beta", 20000);
            nbeta++;
        }
    }
    ck_assert_int_eq(nstaff, 2);
    ck_assert_int_eq(nbeta, 1);
    fx_stop(&fx);
}
END_TEST

START_TEST(setload_free_cancels)
{
    struct fixture fx;
    struct tn_setload *l2;
    size_t members = 0;

    fx_start(&fx);
    fill(fx.rc, KEY, "user", 50000);
    /* freed with loads in flight: done never comes, nothing leaks */
    ck_assert_int_eq(tn_setload_start(fx.l, "staff", KEY), TN_OK);
    ck_assert_int_eq(tn_setload_start(fx.l, "other", KEY), TN_OK);
    WAIT_FOR(tn_setload_busy(fx.l, "staff", &members) && members >= 2000, 10000);
    ck_assert_uint_ge(members, 2000);
    ck_assert_int_eq(fx.rs.n, 0);
    tn_setload_free(fx.l);
    fx.l = NULL;
    WAIT_FOR(0, 100); /* the orphans' replies come back */
    ck_assert_int_eq(fx.rs.n, 0);

    /* freed from inside done, with a coalesced reload running */
    l2 = tn_setload_new(fx.r, on_loaded, &fx.rs);
    ck_assert_int_eq(tn_setload_start(l2, "staff", KEY), TN_OK);
    ck_assert_int_eq(tn_setload_start(l2, "staff", KEY), TN_OK);
    ck_assert_int_eq(tn_setload_start(l2, "beta", KEY), TN_OK);
    fx.rs.free_in_done = l2;
    WAIT_FOR(fx.rs.n > 0, 10000);
    WAIT_FOR(0, 100);
    ck_assert_int_eq(fx.rs.n, 1);
    ck_assert_ptr_null(fx.rs.free_in_done);

    /* freed with a load in flight, then the client: the orphan's reply comes
     * from tn_redis_free */
    l2 = tn_setload_new(fx.r, on_loaded, &fx.rs);
    ck_assert_int_eq(tn_setload_start(l2, "staff", KEY), TN_OK);
    tn_setload_free(l2);
    tn_setload_free(NULL);
    fx_stop(&fx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("segment");
    TCase *ts = tcase_create("strset"), *tr = tcase_create("setload");
    SRunner *sr;
    int failed;

    signal(SIGPIPE, SIG_IGN);
    atexit(kill_all); /* a failed check exits the forked test: its servers go too */
    tcase_set_timeout(ts, 60);
    tcase_add_test(ts, strset_basic);
    tcase_add_test(ts, strset_million);
    tcase_add_test(ts, strset_concurrent_readers);
    suite_add_tcase(s, ts);
    tcase_add_checked_fixture(tr, setup, teardown);
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, redis_command_and_messages);
    tcase_add_test(tr, redis_command_when_down);
    tcase_add_test(tr, setload_100k_exact);
    tcase_add_test(tr, setload_million_keeps_loop_running);
    tcase_add_test(tr, setload_update_missing_wrongtype);
    tcase_add_test(tr, setload_redis_killed);
    tcase_add_test(tr, setload_coalesce_and_parallel);
    tcase_add_test(tr, setload_free_cancels);
    suite_add_tcase(s, tr);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
