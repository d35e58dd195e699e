/* The Redis fleet sync client against real redis-server and redis-sentinel
 * processes on free 127.0.0.1 ports, in a temporary directory; every server
 * is killed by pid at the end (and dies with the test process through
 * PR_SET_PDEATHSIG if a test is cut short). The test's own checks use
 * hiredis's blocking API; the module under test never does. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/redis.h"

#define MAX_PIDS 16

static char tmpdir[128];
static pid_t pids[MAX_PIDS];
static int npids;
static struct event_base *base;
static struct event *tick;

/* ---- processes ---- */

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

static pid_t spawn(char *const argv[])
{
    pid_t parent = getpid(), pid;
    int null;

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

static void make_tmpdir(void)
{
    if (tmpdir[0])
        return;
    snprintf(tmpdir, sizeof(tmpdir), "%s/check_redis.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* Blocking client for the test's own checks; NULL while the server is not up. */
static redisContext *cli_try(int port, const char *password)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *rp;

    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (password) {
        rp = redisCommand(c, "AUTH %s", password);
        freeReplyObject(rp);
    }
    rp = redisCommand(c, "PING");
    if (!rp || rp->type != REDIS_REPLY_STATUS) { /* e.g. -LOADING */
        freeReplyObject(rp);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(rp);
    return c;
}

/* Polls (bounded) until the server at port answers PING. */
static redisContext *cli(int port, const char *password)
{
    uint64_t deadline = tn_now_ms() + 10000;
    struct timespec ts = {0, 10 * 1000 * 1000};
    redisContext *c;

    while (!(c = cli_try(port, password)) && tn_now_ms() < deadline)
        nanosleep(&ts, NULL); /* poll interval, not a stand-in for the condition */
    ck_assert_msg(c != NULL, "server on port %d did not come up", port);
    return c;
}

/* Starts redis-server on port with optional extra arguments (NULL-ended). */
static pid_t start_redis(int port, ...)
{
    char *argv[24], portbuf[16];
    const char *a;
    int n = 0;
    va_list ap;

    make_tmpdir();
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = portbuf;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = tmpdir;
    va_start(ap, port);
    while ((a = va_arg(ap, const char *)) != NULL && n < 22)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return spawn(argv);
}

static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
    redisReply *rp;
    va_list ap;

    va_start(ap, fmt);
    rp = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(rp != NULL, "command failed: %s", c->errstr);
    return rp;
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

/* HGET/GET as a malloc'd string, NULL when absent. */
static char *get_str(redisContext *c, const char *fmt, ...)
{
    redisReply *rp;
    char *s = NULL;
    va_list ap;

    va_start(ap, fmt);
    rp = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(rp);
    if (rp->type == REDIS_REPLY_STRING)
        s = strdup(rp->str);
    freeReplyObject(rp);
    return s;
}

/* ---- the client under test ---- */

struct probe {
    int nsnap, nup, ndown, nconnecting;
    enum tn_redis_link link;
    char why[256];
    uint64_t version;
    char weights[512], pins[512], servers[512], ramps[512];
    int ndone;
    uint64_t done_version;
    char done_err[256];
    struct tn_redis *free_on_up; /* frees this client from inside on_link(UP) */
};

static void join_kv(char *dst, size_t len, const struct tn_redis_kv *kv, size_t n)
{
    size_t i, at = 0;

    dst[0] = '\0';
    for (i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(dst + at, len - at, "%s=%s;", kv[i].key, kv[i].value);
}

static void on_snapshot(void *arg, const struct tn_redis_snapshot *s)
{
    struct probe *p = arg;

    p->nsnap++;
    p->version = s->version;
    join_kv(p->weights, sizeof(p->weights), s->weights, s->nweights);
    join_kv(p->pins, sizeof(p->pins), s->pins, s->npins);
    join_kv(p->servers, sizeof(p->servers), s->servers, s->nservers);
    join_kv(p->ramps, sizeof(p->ramps), s->ramps, s->nramps);
}

static void on_link(void *arg, enum tn_redis_link link, const char *why)
{
    struct probe *p = arg;

    p->link = link;
    snprintf(p->why, sizeof(p->why), "%s", why ? why : "");
    if (link == TN_REDIS_UP)
        p->nup++;
    else if (link == TN_REDIS_DOWN)
        p->ndown++;
    else
        p->nconnecting++;
    if (link == TN_REDIS_UP && p->free_on_up) {
        tn_redis_free(p->free_on_up);
        p->free_on_up = NULL;
    }
}

static void on_done(void *arg, uint64_t version, const char *err)
{
    struct probe *p = arg;

    p->ndone++;
    p->done_version = version;
    snprintf(p->done_err, sizeof(p->done_err), "%s", err ? err : "");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until cond holds or ms pass (a 10 ms tick bounds each turn). */
#define WAIT_FOR(cond, ms)                                                                         \
    do {                                                                                           \
        uint64_t dl_ = tn_now_ms() + (ms);                                                         \
        while (!(cond) && tn_now_ms() < dl_)                                                       \
            event_base_loop(base, EVLOOP_ONCE);                                                    \
    } while (0)

static void setup(void)
{
    struct timeval tv = {0, 10000};

    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(tick, &tv);
    unsetenv("TN_CHECK_REDIS_PW");
}

static void teardown(void)
{
    event_free(tick);
    event_base_free(base);
    kill_all();
}

/* A conf for 127.0.0.1:port (port 0: sentinel mode, filled by the caller). */
static struct tn_conf_redis conf_for(int port, const char *ns, char *text, size_t len)
{
    struct tn_conf_redis c;

    memset(&c, 0, sizeof(c));
    if (port) {
        snprintf(text, len, "127.0.0.1:%d", port);
        ck_assert_int_eq(tn_conf_parse_addr(text, &c.addr), TN_OK);
        c.addr.text = text;
        c.address = text;
    }
    c.namespace_ = (char *)ns;
    c.resync_ms = 5000;
    c.connect_timeout_ms = 1000;
    return c;
}

static struct tn_redis *client(const struct tn_conf_redis *c, const char *node, struct probe *p)
{
    struct tn_redis_cbs cbs = {.on_snapshot = on_snapshot, .on_link = on_link, .arg = p};
    const char *why = NULL;
    struct tn_redis *r;

    memset(p, 0, sizeof(*p));
    p->link = TN_REDIS_CONNECTING;
    r = tn_redis_new(base, c, node, &cbs, &why);
    ck_assert_msg(r != NULL, "tn_redis_new: %s", why);
    return r;
}

/* ---- tests ---- */

START_TEST(redis_connects_and_reads_snapshot)
{
    int port = free_port();
    char text[32], buf[128];
    struct tn_conf_redis c = conf_for(port, "ott", text, sizeof(text));
    struct probe p;
    struct tn_redis *r;
    redisContext *rc;

    start_redis(port, NULL);
    rc = cli(port, NULL);
    cmd_ok(rc, "HSET turnout:ott:weights checkout 25 search 12.5");
    cmd_ok(rc, "HSET turnout:ott:pins user42 blue");
    cmd_ok(rc, "HSET turnout:ott:servers green/s1 drain");
    cmd_ok(rc, "HSET turnout:ott:ramps checkout %s", "50 over 10m");
    cmd_ok(rc, "SET turnout:ott:version 7");
    cmd_ok(rc, "HSET turnout:other:weights checkout 99");
    r = client(&c, "node-a", &p);
    ck_assert_int_eq(tn_redis_link_state(r), TN_REDIS_CONNECTING);
    WAIT_FOR(p.nup > 0, 5000);
    ck_assert_int_eq(p.nup, 1);
    ck_assert_int_eq(p.ndown, 0);
    ck_assert_int_eq(tn_redis_link_state(r), TN_REDIS_UP);
    ck_assert_int_eq(p.nsnap, 1); /* delivered before UP */
    ck_assert_uint_eq(p.version, 7);
    ck_assert_str_eq(p.weights, "checkout=25;search=12.5;");
    ck_assert_str_eq(p.pins, "user42=blue;");
    ck_assert_str_eq(p.servers, "green/s1=drain;");
    ck_assert_str_eq(p.ramps, "checkout=50 over 10m;");
    snprintf(buf, sizeof(buf), "127.0.0.1:%d", port);
    ck_assert_str_eq(tn_redis_master(r), buf);
    snprintf(buf, sizeof(buf), "up 127.0.0.1:%d", port);
    ck_assert_str_eq(tn_redis_describe(r, (char[128]){0}, 128), buf);

    /* another tool writes a key and publishes anything: a new read follows */
    cmd_ok(rc, "HSET turnout:ott:weights checkout 30");
    cmd_ok(rc, "PUBLISH turnout:ott:changes whatever");
    WAIT_FOR(p.nsnap >= 2, 5000);
    ck_assert_str_eq(p.weights, "checkout=30;search=12.5;");

    /* a key of the wrong type reads as empty, the others still come */
    cmd_ok(rc, "DEL turnout:ott:pins");
    cmd_ok(rc, "SET turnout:ott:pins notahash");
    tn_redis_resync(r);
    WAIT_FOR(p.nsnap >= 3, 5000);
    ck_assert_int_eq(p.nsnap, 3);
    ck_assert_str_eq(p.pins, "");
    ck_assert_str_eq(p.servers, "green/s1=drain;");
    ck_assert_uint_eq(p.version, 7);
    tn_redis_free(r);
    redisFree(rc);
}
END_TEST

START_TEST(redis_changes_coalesce)
{
    int port = free_port(), i;
    char text[32];
    struct tn_conf_redis c = conf_for(port, "co", text, sizeof(text));
    struct probe p;
    struct tn_redis *r;
    redisContext *rc;

    start_redis(port, NULL);
    rc = cli(port, NULL);
    r = client(&c, "node-a", &p);
    WAIT_FOR(p.nup > 0, 5000);
    ck_assert_int_eq(p.nsnap, 1);
    /* 20 messages while one read is in flight: far fewer reads, the last fresh */
    for (i = 0; i < 20; i++) {
        cmd_ok(rc, "HSET turnout:co:weights r %d", i);
        cmd_ok(rc, "PUBLISH turnout:co:changes weights");
    }
    WAIT_FOR(strcmp(p.weights, "r=19;") == 0, 5000);
    ck_assert_str_eq(p.weights, "r=19;");
    ck_assert_int_le(p.nsnap, 21);
    tn_redis_free(r);
    redisFree(rc);
}
END_TEST

START_TEST(redis_write_is_one_multi_and_published)
{
    int port = free_port();
    char text[32];
    struct tn_conf_redis c = conf_for(port, "ott", text, sizeof(text));
    struct probe pa, pb;
    struct tn_redis *a, *b;
    redisContext *rc;
    redisReply *rp, *fields;
    char *s;
    static const struct tn_redis_op ops[] = {
        {.hash = "weights", .field = "checkout", .value = "30"},
        {.hash = "servers", .field = "green/s1", .value = "maint"},
    };
    static const char *const event[] = {"actor", "admin", "what", "set weight checkout 30", NULL};
    struct tn_redis_change ch = {.ops = ops, .nops = 2, .event = event, .message = "weights"};
    static const struct tn_redis_op del[] = {{.hash = "servers", .field = "green/s1"}};
    static const char *const event2[] = {"node", "custom", NULL};
    struct tn_redis_change ch2 = {.ops = del, .nops = 1, .event = event2, .message = "servers"};

    start_redis(port, NULL);
    rc = cli(port, NULL);
    cmd_ok(rc, "SET turnout:ott:version 41");
    a = client(&c, "node-a", &pa);
    b = client(&c, "node-b", &pb);
    WAIT_FOR(pa.nup > 0 && pb.nup > 0, 5000);
    ck_assert_int_eq(pb.nsnap, 1);
    ck_assert_uint_eq(pb.version, 41);

    ck_assert_int_eq(tn_redis_write(a, &ch, on_done, &pa), TN_OK);
    WAIT_FOR(pa.ndone > 0 && pb.nsnap >= 2, 5000);
    ck_assert_int_eq(pa.ndone, 1);
    ck_assert_str_eq(pa.done_err, "");
    ck_assert_uint_eq(pa.done_version, 42);
    /* b saw the PUBLISH and read again */
    ck_assert_int_eq(pb.nsnap, 2);
    ck_assert_uint_eq(pb.version, 42);
    ck_assert_str_eq(pb.weights, "checkout=30;");
    ck_assert_str_eq(pb.servers, "green/s1=maint;");

    s = get_str(rc, "HGET turnout:ott:weights checkout");
    ck_assert_str_eq(s, "30");
    free(s);
    s = get_str(rc, "GET turnout:ott:version");
    ck_assert_str_eq(s, "42");
    free(s);
    rp = cmd(rc, "XRANGE turnout:ott:events - +");
    ck_assert_int_eq(rp->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(rp->elements, 1);
    fields = rp->element[0]->element[1];
    ck_assert_uint_eq(fields->elements, 6);
    ck_assert_str_eq(fields->element[0]->str, "actor");
    ck_assert_str_eq(fields->element[1]->str, "admin");
    ck_assert_str_eq(fields->element[2]->str, "what");
    ck_assert_str_eq(fields->element[3]->str, "set weight checkout 30");
    ck_assert_str_eq(fields->element[4]->str, "node");
    ck_assert_str_eq(fields->element[5]->str, "node-a");
    freeReplyObject(rp);

    /* HDEL; an event that names its node keeps it */
    ck_assert_int_eq(tn_redis_write(a, &ch2, on_done, &pa), TN_OK);
    WAIT_FOR(pa.ndone > 1 && pb.nsnap >= 3, 5000);
    ck_assert_int_eq(pa.ndone, 2);
    ck_assert_uint_eq(pa.done_version, 43);
    ck_assert_str_eq(pb.servers, "");
    s = get_str(rc, "HGET turnout:ott:servers green/s1");
    ck_assert_ptr_null(s);
    rp = cmd(rc, "XREVRANGE turnout:ott:events + - COUNT 1");
    fields = rp->element[0]->element[1];
    ck_assert_uint_eq(fields->elements, 2);
    ck_assert_str_eq(fields->element[1]->str, "custom");
    freeReplyObject(rp);

    /* a step failing inside EXEC is an error: servers holds a string now */
    cmd_ok(rc, "SET turnout:ott:servers x");
    ck_assert_int_eq(tn_redis_write(a, &ch2, on_done, &pa), TN_OK);
    WAIT_FOR(pa.ndone > 2, 5000);
    ck_assert_uint_eq(pa.done_version, 0);
    ck_assert_ptr_nonnull(strstr(pa.done_err, "WRONGTYPE"));

    tn_redis_free(a);
    tn_redis_free(b);
    redisFree(rc);
}
END_TEST

START_TEST(redis_pending_writes_answered_on_free)
{
    int port = free_port();
    char text[32];
    struct tn_conf_redis c = conf_for(port, "pw", text, sizeof(text));
    struct probe p;
    struct tn_redis *r;
    static const struct tn_redis_op ops[] = {{.hash = "pins", .field = "k", .value = "v"}};
    struct tn_redis_change ch = {.ops = ops, .nops = 1, .message = "pins"};

    start_redis(port, NULL);
    redisFree(cli(port, NULL));
    r = client(&c, "n", &p);
    WAIT_FOR(p.nup > 0, 5000);
    ck_assert_int_eq(tn_redis_write(r, &ch, on_done, &p), TN_OK);
    ck_assert_int_eq(tn_redis_write(r, &ch, on_done, &p), TN_OK);
    tn_redis_free(r); /* nothing ran yet */
    ck_assert_int_eq(p.ndone, 2);
    ck_assert_uint_eq(p.done_version, 0);
    ck_assert_str_eq(p.done_err, "shutting down");
    tn_redis_free(NULL);
}
END_TEST

START_TEST(redis_free_inside_callback)
{
    int port = free_port();
    char text[32];
    struct tn_conf_redis c = conf_for(port, "fc", text, sizeof(text));
    struct probe p;
    struct tn_redis *r;

    start_redis(port, NULL);
    redisFree(cli(port, NULL));
    r = client(&c, "n", &p);
    p.free_on_up = r;
    WAIT_FOR(p.nup > 0, 5000);
    ck_assert_ptr_null(p.free_on_up);
    /* the deferred free runs from the loop; LSan checks nothing is left */
    event_base_loop(base, EVLOOP_NONBLOCK);
}
END_TEST

START_TEST(redis_auth)
{
    int port = free_port();
    char text[32];
    struct tn_conf_redis c = conf_for(port, "au", text, sizeof(text));
    struct tn_redis_cbs cbs = {0};
    struct probe p;
    struct tn_redis *r;
    const char *why = NULL;
    redisContext *rc;

    start_redis(port, "--requirepass", "s3cret", NULL);
    rc = cli(port, "s3cret");
    cmd_ok(rc, "HSET turnout:au:weights r 5");
    c.password_env = "TN_CHECK_REDIS_PW";

    /* the variable is not set */
    ck_assert_ptr_null(tn_redis_new(base, &c, "n", &cbs, &why));
    ck_assert_str_eq(why, "redis.password_env: environment variable TN_CHECK_REDIS_PW is not set");

    /* wrong password: DOWN with the server's reason, retried */
    setenv("TN_CHECK_REDIS_PW", "wrong", 1);
    r = client(&c, "n", &p);
    WAIT_FOR(p.ndown >= 2, 5000);
    ck_assert_int_ge(p.ndown, 2);
    ck_assert_int_eq(p.nup, 0);
    ck_assert_int_eq(p.link, TN_REDIS_DOWN);
    ck_assert_msg(strncmp(p.why, "AUTH: WRONGPASS", 15) == 0, "why: %s", p.why);
    ck_assert_int_eq(p.nsnap, 0);
    tn_redis_free(r);

    /* without a password at all */
    unsetenv("TN_CHECK_REDIS_PW");
    c.password_env = NULL;
    r = client(&c, "n", &p);
    WAIT_FOR(p.ndown >= 1, 5000);
    ck_assert_msg(strncmp(p.why, "AUTH: ", 6) == 0 || strstr(p.why, "NOAUTH"), "why: %s", p.why);
    tn_redis_free(r);

    /* the right one */
    c.password_env = "TN_CHECK_REDIS_PW";
    setenv("TN_CHECK_REDIS_PW", "s3cret", 1);
    r = client(&c, "n", &p);
    WAIT_FOR(p.nup > 0, 5000);
    ck_assert_int_eq(p.link, TN_REDIS_UP);
    ck_assert_str_eq(p.weights, "r=5;");
    /* writes and PUBLISH go through the authenticated connections */
    {
        static const struct tn_redis_op ops[] = {{.hash = "weights", .field = "r", .value = "6"}};
        struct tn_redis_change ch = {.ops = ops, .nops = 1, .message = "weights"};

        ck_assert_int_eq(tn_redis_write(r, &ch, on_done, &p), TN_OK);
        WAIT_FOR(p.ndone > 0 && strcmp(p.weights, "r=6;") == 0, 5000);
        ck_assert_uint_eq(p.done_version, 1);
        ck_assert_str_eq(p.weights, "r=6;");
    }
    tn_redis_free(r);
    redisFree(rc);
}
END_TEST

START_TEST(redis_reconnects_after_restart)
{
    int port = free_port();
    char text[32], desc[160];
    struct tn_conf_redis c = conf_for(port, "rs", text, sizeof(text));
    struct probe p;
    struct tn_redis *r;
    redisContext *rc;
    pid_t pid, pid2;
    static const struct tn_redis_op ops[] = {{.hash = "weights", .field = "r", .value = "1"}};
    struct tn_redis_change ch = {.ops = ops, .nops = 1, .message = "weights"};

    pid = start_redis(port, NULL);
    rc = cli(port, NULL);
    cmd_ok(rc, "SET turnout:rs:version 3");
    redisFree(rc);
    r = client(&c, "n", &p);
    WAIT_FOR(p.nup > 0, 5000);
    ck_assert_uint_eq(p.version, 3);

    kill_server(pid);
    WAIT_FOR(p.ndown > 0, 5000);
    ck_assert_int_eq(p.link, TN_REDIS_DOWN);
    ck_assert_int_eq(tn_redis_link_state(r), TN_REDIS_DOWN);
    ck_assert_ptr_null(tn_redis_master(r));
    ck_assert_int_eq(tn_redis_write(r, &ch, on_done, &p), TN_ERR);
    ck_assert_int_eq(p.ndone, 0);
    /* a retry or two fail with "refused" while the server is away */
    WAIT_FOR(strstr(p.why, "refused") != NULL, 5000);
    tn_redis_describe(r, desc, sizeof(desc));
    ck_assert_msg(strncmp(desc, "down: ", 6) == 0 || strncmp(desc, "connecting", 10) == 0,
                  "describe: %s", desc);

    pid2 = start_redis(port, NULL);
    rc = cli(port, NULL);
    cmd_ok(rc, "SET turnout:rs:version 9"); /* the new server is empty otherwise */
    WAIT_FOR(p.nup >= 2 && p.version == 9, 10000);
    ck_assert_int_eq(p.nup, 2);
    ck_assert_int_eq(p.link, TN_REDIS_UP);
    ck_assert_uint_eq(p.version, 9);
    ck_assert_int_eq(tn_redis_write(r, &ch, on_done, &p), TN_OK);
    WAIT_FOR(p.ndone > 0, 5000);
    ck_assert_uint_eq(p.done_version, 10);

    /* a write queued when the server dies is answered once, with an error */
    ck_assert_int_eq(tn_redis_write(r, &ch, on_done, &p), TN_OK);
    redisFree(rc);
    kill_server(pid2);
    WAIT_FOR(p.ndone > 1 && p.ndown > 1, 5000);
    ck_assert_int_eq(p.ndone, 2);
    ck_assert_uint_eq(p.done_version, 0);
    ck_assert_str_ne(p.done_err, "");
    WAIT_FOR(0, 300); /* retries keep failing; no second answer */
    ck_assert_int_eq(p.ndone, 2);
    tn_redis_free(r);
}
END_TEST

START_TEST(redis_refused_and_timeout)
{
    int port = free_port(), lfd, lport;
    char text[32], text2[32], desc[160];
    struct tn_conf_redis c = conf_for(port, "x", text, sizeof(text)), c2;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    struct probe p, p2;
    struct tn_redis *r, *r2;

    /* nothing listens */
    r = client(&c, "n", &p);
    WAIT_FOR(p.ndown > 0, 5000);
    ck_assert_msg(strstr(p.why, "Connection refused") != NULL, "why: %s", p.why);
    tn_redis_describe(r, desc, sizeof(desc));
    ck_assert_msg(strstr(desc, "down: ") == desc && strstr(desc, "; retry in "), "%s", desc);

    /* a socket that accepts (in the kernel) but never answers */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(lfd, 16), 0);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    lport = ntohs(a.sin_port);
    c2 = conf_for(lport, "x", text2, sizeof(text2));
    c2.connect_timeout_ms = 200;
    r2 = client(&c2, "n", &p2);
    WAIT_FOR(p2.ndown > 0, 5000);
    ck_assert_msg(strstr(p2.why, "not ready in 200 ms") != NULL, "why: %s", p2.why);
    tn_redis_free(r);
    tn_redis_free(r2);
    close(lfd);
}
END_TEST

static int node_reported(redisContext *rc, const char *node, const char *want)
{
    char *s = get_str(rc, "HGET turnout:nd:nodes %s", node);
    int ok = s && strstr(s, want) && strstr(s, "\"seen\":");

    free(s);
    return ok;
}

START_TEST(redis_report_and_resync)
{
    int port = free_port();
    char text[32];
    struct tn_conf_redis c = conf_for(port, "nd", text, sizeof(text));
    struct probe p;
    struct tn_redis *r;
    redisContext *rc;
    int n;

    start_redis(port, NULL);
    rc = cli(port, NULL);
    c.resync_ms = 200;
    r = client(&c, "node-7", &p);
    tn_redis_report(r, 5); /* before UP: written once up */
    WAIT_FOR(p.nup > 0, 5000);
    WAIT_FOR(node_reported(rc, "node-7", "{\"version\":5,"), 5000);
    ck_assert(node_reported(rc, "node-7", "{\"version\":5,"));
    tn_redis_report(r, 42);
    WAIT_FOR(node_reported(rc, "node-7", "{\"version\":42,"), 5000);
    ck_assert(node_reported(rc, "node-7", "{\"version\":42,"));

    /* resync: a change nobody published is read within a period */
    cmd_ok(rc, "HDEL turnout:nd:nodes node-7");
    cmd_ok(rc, "HSET turnout:nd:pins k quiet");
    n = p.nsnap;
    WAIT_FOR(strcmp(p.pins, "k=quiet;") == 0, 3000);
    ck_assert_str_eq(p.pins, "k=quiet;");
    ck_assert_int_gt(p.nsnap, n);
    /* and the report is written again at the tick */
    WAIT_FOR(node_reported(rc, "node-7", "{\"version\":42,"), 3000);
    ck_assert(node_reported(rc, "node-7", "{\"version\":42,"));
    tn_redis_free(r);
    redisFree(rc);
}
END_TEST

/* ---- Sentinel ---- */

struct sentinel_env {
    int mport, rport, sport;
    pid_t master, replica, sentinel;
};

static int replica_linked(int rport)
{
    redisContext *rc = cli(rport, NULL);
    redisReply *rp = cmd(rc, "INFO replication");
    int ok = rp->type == REDIS_REPLY_STRING && strstr(rp->str, "master_link_status:up");

    freeReplyObject(rp);
    redisFree(rc);
    return ok;
}

static int sentinel_knows_replica(int sport)
{
    redisContext *rc = cli(sport, NULL);
    redisReply *rp = cmd(rc, "SENTINEL replicas mymaster");
    int ok = rp->type == REDIS_REPLY_ARRAY && rp->elements == 1;

    freeReplyObject(rp);
    redisFree(rc);
    return ok;
}

static void start_sentinel_env(struct sentinel_env *e)
{
    char path[256], mport[16];
    char *argv[] = {"redis-sentinel", path, NULL};
    FILE *f;

    e->mport = free_port();
    e->rport = free_port();
    e->sport = free_port();
    snprintf(mport, sizeof(mport), "%d", e->mport);
    e->master = start_redis(e->mport, NULL);
    redisFree(cli(e->mport, NULL));
    e->replica = start_redis(e->rport, "--replicaof", "127.0.0.1", mport, NULL);
    WAIT_FOR(replica_linked(e->rport), 10000);
    ck_assert(replica_linked(e->rport));
    snprintf(path, sizeof(path), "%s/sentinel.conf", tmpdir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"
            "sentinel monitor mymaster 127.0.0.1 %d 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n",
            e->sport, tmpdir, e->mport);
    fclose(f);
    e->sentinel = spawn(argv);
    redisFree(cli(e->sport, NULL));
    WAIT_FOR(sentinel_knows_replica(e->sport), 15000);
    ck_assert(sentinel_knows_replica(e->sport));
}

static struct tn_conf_redis sentinel_conf(const struct sentinel_env *e, struct tn_conf_addr *sa,
                                          char *text, size_t len)
{
    struct tn_conf_redis c;

    memset(&c, 0, sizeof(c));
    /* the first sentinel listed is down: the client moves to the next */
    snprintf(text, len, "127.0.0.1:%d", free_port());
    ck_assert_int_eq(tn_conf_parse_addr(text, &sa[0]), TN_OK);
    sa[0].text = text;
    snprintf(text + 32, len - 32, "127.0.0.1:%d", e->sport);
    ck_assert_int_eq(tn_conf_parse_addr(text + 32, &sa[1]), TN_OK);
    sa[1].text = text + 32;
    c.sentinels = sa;
    c.nsentinels = 2;
    c.master = "mymaster";
    c.namespace_ = "sn";
    c.resync_ms = 1000;
    c.connect_timeout_ms = 1000;
    return c;
}

static int is_up_on(const struct probe *p, struct tn_redis *r, int port)
{
    char want[32];
    const char *m = tn_redis_master(r);

    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    return p->link == TN_REDIS_UP && m && strcmp(m, want) == 0;
}

static void sentinel_write_ok(struct tn_redis *r, struct probe *p)
{
    static const struct tn_redis_op ops[] = {{.hash = "weights", .field = "r", .value = "7"}};
    struct tn_redis_change ch = {.ops = ops, .nops = 1, .message = "weights"};
    int n = p->ndone;

    ck_assert_int_eq(tn_redis_write(r, &ch, on_done, p), TN_OK);
    WAIT_FOR(p->ndone > n, 5000);
    ck_assert_str_eq(p->done_err, "");
    ck_assert_uint_gt(p->done_version, 0);
}

START_TEST(redis_sentinel_failover_command)
{
    struct sentinel_env e;
    struct tn_conf_addr sa[2];
    char text[64], desc[160], want[96];
    struct tn_conf_redis c;
    struct probe p;
    struct tn_redis *r;
    redisContext *sc;
    redisReply *rp;
    uint64_t deadline;

    start_sentinel_env(&e);
    c = sentinel_conf(&e, sa, text, sizeof(text));
    r = client(&c, "n", &p);
    WAIT_FOR(is_up_on(&p, r, e.mport), 10000);
    ck_assert(is_up_on(&p, r, e.mport));
    snprintf(want, sizeof(want), "up 127.0.0.1:%d (sentinel master mymaster)", e.mport);
    ck_assert_str_eq(tn_redis_describe(r, desc, sizeof(desc)), want);
    sentinel_write_ok(r, &p);

    /* ask the sentinel to fail over (retried while it has no good replica yet) */
    sc = cli(e.sport, NULL);
    deadline = tn_now_ms() + 10000;
    for (;;) {
        rp = cmd(sc, "SENTINEL FAILOVER mymaster");
        if (rp->type == REDIS_REPLY_STATUS || tn_now_ms() > deadline)
            break;
        freeReplyObject(rp);
        WAIT_FOR(0, 100); /* let the loop run a little while the sentinel catches up */
    }
    ck_assert_int_eq(rp->type, REDIS_REPLY_STATUS);
    freeReplyObject(rp);
    redisFree(sc);
    WAIT_FOR(is_up_on(&p, r, e.rport), 30000);
    ck_assert_msg(is_up_on(&p, r, e.rport), "link %d master %s why %s", p.link,
                  tn_redis_master(r) ? tn_redis_master(r) : "-", p.why);
    sentinel_write_ok(r, &p);
    tn_redis_free(r);
}
END_TEST

START_TEST(redis_sentinel_master_killed)
{
    struct sentinel_env e;
    struct tn_conf_addr sa[2];
    char text[64];
    struct tn_conf_redis c;
    struct probe p;
    struct tn_redis *r;

    start_sentinel_env(&e);
    c = sentinel_conf(&e, sa, text, sizeof(text));
    r = client(&c, "n", &p);
    WAIT_FOR(is_up_on(&p, r, e.mport), 10000);
    ck_assert(is_up_on(&p, r, e.mport));

    kill_server(e.master);
    WAIT_FOR(p.ndown > 0, 5000);
    ck_assert_int_gt(p.ndown, 0);
    WAIT_FOR(is_up_on(&p, r, e.rport), 30000);
    ck_assert_msg(is_up_on(&p, r, e.rport), "link %d why %s", p.link, p.why);
    ck_assert_int_ge(p.nup, 2);
    sentinel_write_ok(r, &p);
    tn_redis_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("redis");
    SRunner *sr;
    int failed;

    signal(SIGPIPE, SIG_IGN);
    atexit(kill_all); /* a failed check exits the forked test: its servers go too */
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, redis_connects_and_reads_snapshot);
    tcase_add_test(tc, redis_changes_coalesce);
    tcase_add_test(tc, redis_write_is_one_multi_and_published);
    tcase_add_test(tc, redis_pending_writes_answered_on_free);
    tcase_add_test(tc, redis_free_inside_callback);
    tcase_add_test(tc, redis_auth);
    tcase_add_test(tc, redis_reconnects_after_restart);
    tcase_add_test(tc, redis_refused_and_timeout);
    tcase_add_test(tc, redis_report_and_resync);
    tcase_add_test(tc, redis_sentinel_failover_command);
    tcase_add_test(tc, redis_sentinel_master_killed);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
