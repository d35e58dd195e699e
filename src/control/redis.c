/* Redis fleet sync client (turnout/redis.h): owns the hiredis async
 * connections (commands, the `changes` subscription, the Sentinel question
 * and the Sentinel +switch-master subscription), the link state machine with
 * its backoff, the coalesced full reads, the MULTI writes, the generic
 * commands of other modules and the `nodes` report. Control thread only;
 * nothing here blocks. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/log.h"
#include "turnout/redis.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define GRAVE_MAX 16

#define REDIS_STATES(X)                                                                            \
    X(ASK)     /* asking a sentinel for the master address */                                      \
    X(CONNECT) /* master connections opening: AUTH, ROLE, SUBSCRIBE, first read */                 \
    X(UP)      /* ready: reads and writes flow */                                                  \
    X(WAIT)    /* failed or restarting; the timer starts the next attempt */                       \
    X(CLOSED)  /* tn_redis_free called: nothing reaches the user any more */

enum redis_state {
#define TN_X_ENUM(s) ST_##s,
    REDIS_STATES(TN_X_ENUM)
#undef TN_X_ENUM
};

static const char *const state_names[] = {
#define TN_X_NAME(s) #s,
    REDIS_STATES(TN_X_NAME)
#undef TN_X_NAME
};

/* Legal next states, one bit per state. */
static const unsigned state_next[] = {
    [ST_ASK] = 1u << ST_CONNECT | 1u << ST_WAIT | 1u << ST_CLOSED,
    [ST_CONNECT] = 1u << ST_UP | 1u << ST_WAIT | 1u << ST_CLOSED,
    [ST_UP] = 1u << ST_WAIT | 1u << ST_CLOSED,
    [ST_WAIT] = 1u << ST_ASK | 1u << ST_CONNECT | 1u << ST_WAIT | 1u << ST_CLOSED,
    [ST_CLOSED] = 0,
};

/* The keys a snapshot reads, in EXEC reply order; the last one is GET. */
enum { K_WEIGHTS, K_PINS, K_SERVERS, K_RAMPS, K_SOURCES, K_VERSION, K_EVENTS, K_NODES, K_COUNT };
static const char *const key_names[K_COUNT] = {"weights", "pins",   "servers", "ramps", "sources",
                                               "version", "events", "nodes"};

struct endpoint {
    char host[INET6_ADDRSTRLEN];
    int port;
};

/* One queued write, alive until its EXEC callback runs (hiredis calls every
 * callback exactly once, with NULL when the context goes away). */
struct write_rec {
    struct write_rec *prev, *next;
    struct tn_redis *r;
    tn_redis_done_fn *done; /* NULL once called */
    void *arg;
    size_t nops;   /* INCR's reply is at this position in EXEC's array */
    char *message; /* what to PUBLISH after EXEC */
};

/* One generic command (tn_redis_command), alive until its hiredis callback
 * runs; cb is NULL once called (e.g. early, by tn_redis_free). */
struct cmd_rec {
    struct cmd_rec *prev, *next;
    struct tn_redis *r;
    tn_redis_reply_fn *cb;
    void *arg;
};

struct tn_redis {
    struct event_base *base;
    struct tn_redis_cbs cbs;
    char *node_id;
    char *prefix;      /* "turnout:{ns}:" */
    char *password;    /* NULL: no AUTH */
    char *master_name; /* Sentinel master name, NULL without sentinels */
    char *key[K_COUNT];
    char *channel;
    struct endpoint direct;
    struct endpoint *sentinels;
    size_t nsentinels;
    uint32_t resync_ms, connect_timeout_ms;

    enum redis_state state;
    enum tn_redis_link link;      /* as last reported through on_link */
    redisAsyncContext *cmd, *sub; /* master: commands, `changes` subscription */
    redisAsyncContext *sen;       /* the Sentinel being asked (ASK) */
    redisAsyncContext *sensub;    /* +switch-master subscription on sentinels[sensub_idx] */
    size_t sensub_idx;
    redisAsyncContext *grave[GRAVE_MAX]; /* retired, freed by on_defer at top level */
    size_t ngrave;
    struct event *timer;  /* attempt timeout (ASK, CONNECT) or next attempt (WAIT) */
    struct event *resync; /* periodic full read and report, while UP */
    struct event *defer;  /* reaps the grave; frees r after a nested tn_redis_free */

    struct endpoint master; /* the address of the attempt or link */
    char master_text[INET6_ADDRSTRLEN + 8];
    size_t sen_start, sen_tries, sen_cur; /* Sentinel round: first, count, current */
    int cmd_pending;                      /* handshake replies awaited on cmd */
    int sub_ready;                        /* SUBSCRIBE confirmed */
    int reading, again;                   /* a full read in flight; one more wanted */
    unsigned warned;                      /* keys logged as holding the wrong type */
    int read_warned, report_warned;
    uint32_t backoff_ms, retry_ms;
    uint64_t retry_at;
    char why[256];     /* why the link is down */
    char logged[256];  /* the last down reason logged at WARN */
    char sen_why[192]; /* the last Sentinel failure of this round */
    uint64_t applied;
    int have_applied;
    struct write_rec *writes;
    struct cmd_rec *cmds;
    int busy; /* user callbacks on the stack */
    int dead; /* tn_redis_free called while busy */
};

static void start_attempt(struct tn_redis *r);
static void ask_next(struct tn_redis *r);
static void start_read(struct tn_redis *r);

/* ---- small helpers ---- */

static void set_state(struct tn_redis *r, enum redis_state s)
{
    TN_BUG_ON(!(state_next[r->state] & (1u << s)));
    tn_log(TN_LOG_DEBUG, "redis: %s -> %s", state_names[r->state], state_names[s]);
    r->state = s;
}

static int sentinel_mode(const struct tn_redis *r)
{
    return r->nsentinels > 0;
}

/* Returns a new "turnout:{ns}:{name}" (prefix is "turnout:{ns}:"). */
static char *join_key(const char *prefix, const char *name)
{
    size_t n = strlen(prefix) + strlen(name) + 1;
    char *k = malloc(n);

    if (k)
        snprintf(k, n, "%s%s", prefix, name);
    return k;
}

static int endpoint_from_conf(const struct tn_conf_addr *a, struct endpoint *ep)
{
    struct tn_conf_addr tmp;
    const struct sockaddr_storage *ss = &a->ss;

    if (ss->ss_family == AF_UNSPEC) {
        if (!a->text || tn_conf_parse_addr(a->text, &tmp) != TN_OK)
            return TN_ERR;
        ss = &tmp.ss;
    }
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

        inet_ntop(AF_INET, &in->sin_addr, ep->host, sizeof(ep->host));
        ep->port = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

        inet_ntop(AF_INET6, &in6->sin6_addr, ep->host, sizeof(ep->host));
        ep->port = ntohs(in6->sin6_port);
    } else {
        return TN_ERR;
    }
    return TN_OK;
}

static void set_why(char *dst, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *dst, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, len, fmt, ap);
    va_end(ap);
}

static uint64_t unix_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void arm(struct event *ev, uint32_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(ev, &tv);
}

/* ---- user callbacks: counted so a nested tn_redis_free is deferred ---- */

static void set_link(struct tn_redis *r, enum tn_redis_link link, const char *why)
{
    if (r->state == ST_CLOSED || r->link == link)
        return;
    r->link = link;
    if (r->cbs.on_link) {
        r->busy++;
        r->cbs.on_link(r->cbs.arg, link, why);
        r->busy--;
    }
}

/* Calls rec's done once (if still wanted); unlinks and frees rec. */
static void write_finish(struct write_rec *rec, uint64_t version, const char *err)
{
    struct tn_redis *r = rec->r;
    tn_redis_done_fn *done = rec->done;

    if (rec->prev)
        rec->prev->next = rec->next;
    else
        r->writes = rec->next;
    if (rec->next)
        rec->next->prev = rec->prev;
    rec->done = NULL;
    if (done) {
        r->busy++;
        done(rec->arg, version, err);
        r->busy--;
    }
    free(rec->message);
    free(rec);
}

/* Answers every pending write now; their records stay until EXEC's callback. */
static void writes_fail(struct tn_redis *r, const char *err)
{
    struct write_rec *rec;

    for (rec = r->writes; rec; rec = rec->next) {
        tn_redis_done_fn *done = rec->done;

        rec->done = NULL;
        if (done) {
            r->busy++;
            done(rec->arg, 0, err);
            r->busy--;
        }
    }
}

/* Calls rec's cb once (if still wanted); unlinks and frees rec. */
static void cmd_finish(struct cmd_rec *rec, const redisReply *rp, const char *err)
{
    struct tn_redis *r = rec->r;
    tn_redis_reply_fn *cb = rec->cb;

    if (rec->prev)
        rec->prev->next = rec->next;
    else
        r->cmds = rec->next;
    if (rec->next)
        rec->next->prev = rec->prev;
    rec->cb = NULL;
    if (cb) {
        r->busy++;
        cb(rec->arg, rp, err);
        r->busy--;
    }
    free(rec);
}

/* Answers every pending command now; their records stay until hiredis
 * answers them (with NULL when their context is freed). */
static void cmds_fail(struct tn_redis *r, const char *err)
{
    struct cmd_rec *rec;

    for (rec = r->cmds; rec; rec = rec->next) {
        tn_redis_reply_fn *cb = rec->cb;

        rec->cb = NULL;
        if (cb) {
            r->busy++;
            cb(rec->arg, NULL, err);
            r->busy--;
        }
    }
}

/* ---- contexts: open, retire, reap ---- */

static void on_connect(const redisAsyncContext *ac, int status);
static void on_disconnect(const redisAsyncContext *ac, int status);

/* Opens a non-blocking connection; NULL with err filled on failure. */
static redisAsyncContext *open_ctx(struct tn_redis *r, const struct endpoint *ep, char *err,
                                   size_t errlen)
{
    redisAsyncContext *ac = redisAsyncConnect(ep->host, ep->port);

    if (!ac) {
        set_why(err, errlen, "out of memory");
        return NULL;
    }
    if (ac->err) {
        set_why(err, errlen, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        set_why(err, errlen, "cannot attach to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

/* Detaches *slot; the context is freed from on_defer, outside any of its
 * own callbacks (hiredis 0.14 cannot free a context from its connect
 * callback, and frees it under us after a disconnect). */
static void retire(struct tn_redis *r, redisAsyncContext **slot)
{
    if (!*slot)
        return;
    TN_BUG_ON(r->ngrave == GRAVE_MAX);
    r->grave[r->ngrave++] = *slot;
    *slot = NULL;
    event_active(r->defer, 0, 0);
}

/* Frees the retired contexts; called from top-level events only. */
static void reap(struct tn_redis *r)
{
    while (r->ngrave) {
        redisAsyncContext *ac = r->grave[--r->ngrave];

        redisAsyncFree(ac); /* runs its callbacks with NULL replies */
    }
}

/* ---- link state ---- */

static void log_down(struct tn_redis *r)
{
    if (strcmp(r->logged, r->why) != 0) {
        tn_log(TN_LOG_WARN, "redis: down: %s; retry in %u ms", r->why, r->retry_ms);
        snprintf(r->logged, sizeof(r->logged), "%s", r->why);
    } else {
        tn_log(TN_LOG_DEBUG, "redis: still down: %s; retry in %u ms", r->why, r->retry_ms);
    }
}

/* The attempt or the link failed: drop the master connections, report DOWN
 * and schedule a retry with backoff (at once when `now`, e.g. a failover,
 * reported as a new CONNECTING attempt without DOWN). */
static void fail_ex(struct tn_redis *r, int now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_ex(struct tn_redis *r, int now, const char *fmt, ...)
{
    va_list ap;

    if (r->state != ST_ASK && r->state != ST_CONNECT && r->state != ST_UP)
        return;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    evtimer_del(r->timer);
    evtimer_del(r->resync);
    retire(r, &r->cmd);
    retire(r, &r->sub);
    retire(r, &r->sen);
    r->reading = r->again = 0;
    r->cmd_pending = r->sub_ready = 0;
    if (now) {
        r->retry_ms = 0;
    } else {
        r->retry_ms = r->backoff_ms;
        r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
    }
    r->retry_at = tn_now_ms() + r->retry_ms;
    set_state(r, ST_WAIT);
    arm(r->timer, r->retry_ms);
    if (now) {
        tn_log(TN_LOG_INFO, "redis: %s; reconnecting", r->why);
        return;
    }
    log_down(r);
    set_link(r, TN_REDIS_DOWN, r->why);
}

#define fail(r, ...) fail_ex((r), 0, __VA_ARGS__)

static void send_report(struct tn_redis *r);

static void go_up(struct tn_redis *r)
{
    char desc[256];

    set_state(r, ST_UP);
    r->backoff_ms = BACKOFF_MIN_MS;
    r->logged[0] = '\0';
    r->why[0] = '\0';
    evtimer_del(r->timer);
    arm(r->resync, r->resync_ms);
    if (r->have_applied)
        send_report(r);
    tn_log(TN_LOG_INFO, "redis: %s", tn_redis_describe(r, desc, sizeof(desc)));
    set_link(r, TN_REDIS_UP, NULL);
}

/* A context went away on its own (hiredis is freeing it): forget it. */
static void lost(struct tn_redis *r, const redisAsyncContext *ac, const char *why)
{
    size_t i;

    for (i = 0; i < r->ngrave; i++) {
        if (r->grave[i] == ac) {
            r->grave[i] = r->grave[--r->ngrave];
            return;
        }
    }
    if (ac == r->sen) {
        r->sen = NULL;
        set_why(r->sen_why, sizeof(r->sen_why), "sentinel %s:%d: %s", r->sentinels[r->sen_cur].host,
                r->sentinels[r->sen_cur].port, why);
        if (r->state == ST_ASK)
            ask_next(r);
    } else if (ac == r->sensub) {
        r->sensub = NULL;
        tn_log(TN_LOG_DEBUG, "redis: sentinel subscription lost: %s", why);
    } else if (ac == r->cmd) {
        r->cmd = NULL;
        fail(r, "%s: %s", r->master_text, why);
    } else if (ac == r->sub) {
        r->sub = NULL;
        fail(r, "%s: %s", r->master_text, why);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        lost(ac->data, ac, ac->errstr ? ac->errstr : "connect failed");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    lost(ac->data, ac, status == REDIS_OK || !ac->errstr ? "connection closed" : ac->errstr);
}

/* ---- Sentinel ---- */

static void on_switch(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;
    size_t nl = r->master_name ? strlen(r->master_name) : 0;
    const char *msg;

    if (!rp || ac != r->sensub || rp->type != REDIS_REPLY_ARRAY || rp->elements < 3 ||
        rp->element[0]->type != REDIS_REPLY_STRING || strcmp(rp->element[0]->str, "message") != 0 ||
        rp->element[2]->type != REDIS_REPLY_STRING)
        return;
    msg = rp->element[2]->str;
    if (strncmp(msg, r->master_name, nl) != 0 || msg[nl] != ' ')
        return;
    if (r->state == ST_WAIT) {
        tn_log(TN_LOG_INFO, "redis: sentinel: +switch-master %s; retrying now", msg);
        r->retry_ms = 0;
        r->retry_at = tn_now_ms();
        arm(r->timer, 0);
    } else if (r->state == ST_CONNECT || r->state == ST_UP) {
        fail_ex(r, 1, "sentinel: +switch-master %s", msg);
    }
}

/* Keeps a +switch-master subscription on sentinels[idx]. */
static void watch_sentinel(struct tn_redis *r, size_t idx)
{
    const char *argv[] = {"SUBSCRIBE", "+switch-master"};
    char err[128];

    if (r->sensub && r->sensub_idx == idx)
        return;
    retire(r, &r->sensub);
    r->sensub = open_ctx(r, &r->sentinels[idx], err, sizeof(err));
    if (!r->sensub) {
        tn_log(TN_LOG_DEBUG, "redis: sentinel subscription: %s", err);
        return;
    }
    r->sensub_idx = idx;
    if (redisAsyncCommandArgv(r->sensub, on_switch, r, 2, argv, NULL) != REDIS_OK)
        retire(r, &r->sensub);
}

static void connect_master(struct tn_redis *r);

/* A hostname would make hiredis resolve it with a blocking getaddrinfo(). */
static int numeric_host(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void on_master_addr(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;
    const struct endpoint *sen;
    char *end;
    long port;

    if (!rp || ac != r->sen || r->state != ST_ASK)
        return;
    sen = &r->sentinels[r->sen_cur];
    if (rp->type == REDIS_REPLY_ARRAY && rp->elements == 2 &&
        rp->element[0]->type == REDIS_REPLY_STRING && rp->element[1]->type == REDIS_REPLY_STRING &&
        rp->element[0]->len < sizeof(r->master.host)) {
        port = strtol(rp->element[1]->str, &end, 10);
        if (*end == '\0' && port > 0 && port < 65536 && numeric_host(rp->element[0]->str)) {
            memcpy(r->master.host, rp->element[0]->str, rp->element[0]->len + 1);
            r->master.port = (int)port;
            tn_log(TN_LOG_DEBUG, "redis: sentinel %s:%d: master %s is %s:%d", sen->host, sen->port,
                   r->master_name, r->master.host, r->master.port);
            retire(r, &r->sen);
            r->sen_start = r->sen_cur;
            watch_sentinel(r, r->sen_cur);
            connect_master(r);
            return;
        }
    }
    if (rp->type == REDIS_REPLY_ERROR)
        set_why(r->sen_why, sizeof(r->sen_why), "sentinel %s:%d: %s", sen->host, sen->port,
                rp->str);
    else if (rp->type == REDIS_REPLY_ARRAY && rp->elements == 2)
        set_why(r->sen_why, sizeof(r->sen_why),
                "sentinel %s:%d: master %s is not a numeric host:port", sen->host, sen->port,
                r->master_name);
    else
        set_why(r->sen_why, sizeof(r->sen_why), "sentinel %s:%d: unknown master %s", sen->host,
                sen->port, r->master_name);
    retire(r, &r->sen);
    ask_next(r);
}

/* Asks the next sentinel of this round; fails the attempt after the last. */
static void ask_next(struct tn_redis *r)
{
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->master_name};
    const struct endpoint *sen;
    char err[128];

    while (r->sen_tries < r->nsentinels) {
        r->sen_cur = (r->sen_start + r->sen_tries++) % r->nsentinels;
        sen = &r->sentinels[r->sen_cur];
        r->sen = open_ctx(r, sen, err, sizeof(err));
        if (!r->sen) {
            set_why(r->sen_why, sizeof(r->sen_why), "sentinel %s:%d: %s", sen->host, sen->port,
                    err);
            continue;
        }
        if (redisAsyncCommandArgv(r->sen, on_master_addr, r, 3, argv, NULL) != REDIS_OK) {
            retire(r, &r->sen);
            continue;
        }
        arm(r->timer, r->connect_timeout_ms);
        return;
    }
    fail(r, "no sentinel knows master %s (%s)", r->master_name, r->sen_why);
}

/* ---- master handshake ---- */

static void check_ready(struct tn_redis *r)
{
    if (r->state == ST_CONNECT && r->cmd_pending == 0 && r->sub_ready && !r->reading)
        start_read(r);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;

    if (!rp || ac != r->cmd || r->state != ST_CONNECT)
        return;
    if (rp->type == REDIS_REPLY_ERROR) {
        fail(r, "AUTH: %s", rp->str);
        return;
    }
    r->cmd_pending--;
    check_ready(r);
}

static void on_role(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;

    if (!rp || ac != r->cmd || r->state != ST_CONNECT)
        return;
    if (rp->type == REDIS_REPLY_ERROR) {
        fail(r, "ROLE: %s", rp->str);
        return;
    }
    if (rp->type != REDIS_REPLY_ARRAY || rp->elements < 1 ||
        rp->element[0]->type != REDIS_REPLY_STRING || strcmp(rp->element[0]->str, "master") != 0) {
        fail(r, "ROLE: %s is not the master", r->master_text);
        return;
    }
    r->cmd_pending--;
    check_ready(r);
}

static void request_read(struct tn_redis *r);

static void on_changes(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;
    const char *kind, *msg;

    if (!rp || ac != r->sub || rp->type != REDIS_REPLY_ARRAY || rp->elements < 3 ||
        rp->element[0]->type != REDIS_REPLY_STRING)
        return;
    kind = rp->element[0]->str;
    if (strcmp(kind, "subscribe") == 0 && r->state == ST_CONNECT) {
        r->sub_ready = 1;
        check_ready(r);
        return;
    }
    if (strcmp(kind, "message") != 0 || (r->state != ST_CONNECT && r->state != ST_UP))
        return;
    msg = rp->element[2]->type == REDIS_REPLY_STRING ? rp->element[2]->str : "";
    if (r->cbs.on_message) {
        r->busy++;
        r->cbs.on_message(r->cbs.arg, msg);
        r->busy--;
        if (ac != r->sub || r->state == ST_CLOSED)
            return; /* freed (deferred) or failed from the callback */
    }
    /* segment sets are loaded on their own (turnout/setload.h) */
    if (strncmp(msg, "segment:", 8) != 0)
        request_read(r);
}

static void subscribe_changes(struct tn_redis *r)
{
    const char *argv[] = {"SUBSCRIBE", r->channel};

    if (redisAsyncCommandArgv(r->sub, on_changes, r, 2, argv, NULL) != REDIS_OK)
        fail(r, "%s: cannot send SUBSCRIBE", r->master_text);
}

static void on_sub_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;

    if (!rp || ac != r->sub || r->state != ST_CONNECT)
        return;
    if (rp->type == REDIS_REPLY_ERROR)
        fail(r, "AUTH: %s", rp->str);
    else
        subscribe_changes(r);
}

static int send_auth(struct tn_redis *r, redisAsyncContext *ac, redisCallbackFn *fn)
{
    const char *argv[] = {"AUTH", r->password};

    return redisAsyncCommandArgv(ac, fn, r, 2, argv, NULL);
}

/* Opens both master connections: cmd (AUTH, ROLE with Sentinel) and sub
 * (AUTH, then SUBSCRIBE). The first read follows once all have answered. */
static void connect_master(struct tn_redis *r)
{
    const char *role[] = {"ROLE"};
    char err[128];

    set_state(r, ST_CONNECT);
    snprintf(r->master_text, sizeof(r->master_text),
             strchr(r->master.host, ':') ? "[%s]:%d" : "%s:%d", r->master.host, r->master.port);
    r->cmd_pending = r->sub_ready = r->reading = r->again = 0;
    arm(r->timer, r->connect_timeout_ms);
    r->cmd = open_ctx(r, &r->master, err, sizeof(err));
    if (!r->cmd) {
        fail(r, "%s: %s", r->master_text, err);
        return;
    }
    r->sub = open_ctx(r, &r->master, err, sizeof(err));
    if (!r->sub) {
        fail(r, "%s: %s", r->master_text, err);
        return;
    }
    if (r->password) {
        r->cmd_pending++;
        if (send_auth(r, r->cmd, on_auth) != REDIS_OK ||
            send_auth(r, r->sub, on_sub_auth) != REDIS_OK)
            goto fail;
    } else {
        subscribe_changes(r);
        if (r->state != ST_CONNECT)
            return;
    }
    if (sentinel_mode(r)) {
        r->cmd_pending++;
        if (redisAsyncCommandArgv(r->cmd, on_role, r, 1, role, NULL) != REDIS_OK)
            goto fail;
    }
    check_ready(r);
    return;
fail:
    fail(r, "%s: cannot queue the handshake", r->master_text);
}

static void start_attempt(struct tn_redis *r)
{
    reap(r);
    set_link(r, TN_REDIS_CONNECTING, NULL);
    if (r->state != ST_WAIT)
        return; /* on_link freed us (deferred) */
    if (sentinel_mode(r)) {
        set_state(r, ST_ASK);
        r->sen_tries = 0;
        r->sen_why[0] = '\0';
        ask_next(r);
    } else {
        r->master = r->direct;
        connect_master(r);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct tn_redis *r = arg;

    (void)fd;
    (void)what;
    switch (r->state) {
    case ST_ASK:
        set_why(r->sen_why, sizeof(r->sen_why), "sentinel %s:%d: no answer in %u ms",
                r->sentinels[r->sen_cur].host, r->sentinels[r->sen_cur].port,
                r->connect_timeout_ms);
        retire(r, &r->sen);
        ask_next(r);
        break;
    case ST_CONNECT:
        fail(r, "%s: not ready in %u ms", r->master_text, r->connect_timeout_ms);
        break;
    case ST_WAIT:
        start_attempt(r);
        break;
    case ST_UP:
    case ST_CLOSED:
        break;
    }
}

/* ---- full read ---- */

/* Fills kv from an HGETALL reply; a reply of another type counts as empty
 * and is logged once until the key reads as a hash again. */
static size_t hash_pairs(struct tn_redis *r, int k, const redisReply *rp, struct tn_redis_kv *kv)
{
    size_t i, n = 0;

    if (rp->type != REDIS_REPLY_ARRAY) {
        if (!(r->warned & (1u << k)))
            tn_log(TN_LOG_WARN, "redis: %s is not a hash (%s); read as empty", r->key[k],
                   rp->type == REDIS_REPLY_ERROR ? rp->str : "unexpected reply");
        r->warned |= 1u << k;
        return 0;
    }
    r->warned &= ~(1u << k);
    for (i = 0; i + 1 < rp->elements; i += 2) {
        if (rp->element[i]->type != REDIS_REPLY_STRING ||
            rp->element[i + 1]->type != REDIS_REPLY_STRING)
            continue;
        kv[n].key = rp->element[i]->str;
        kv[n].value = rp->element[i + 1]->str;
        n++;
    }
    return n;
}

static uint64_t read_version(struct tn_redis *r, const redisReply *rp)
{
    char *end;
    unsigned long long v;

    if (rp->type == REDIS_REPLY_NIL)
        return 0;
    if (rp->type != REDIS_REPLY_STRING) {
        if (!(r->warned & (1u << K_VERSION)))
            tn_log(TN_LOG_WARN, "redis: %s is not a string (%s); read as 0", r->key[K_VERSION],
                   rp->type == REDIS_REPLY_ERROR ? rp->str : "unexpected reply");
        r->warned |= 1u << K_VERSION;
        return 0;
    }
    r->warned &= ~(1u << K_VERSION);
    v = strtoull(rp->str, &end, 10);
    return *end == '\0' && rp->str[0] >= '0' && rp->str[0] <= '9' ? v : 0;
}

/* Builds the snapshot from EXEC's replies (five hashes, the version, the
 * nodes hash) and hands it over. */
static int deliver(struct tn_redis *r, const redisReply *rp)
{
    struct tn_redis_snapshot snap;
    const redisReply *nodes = rp->element[K_VERSION + 1];
    struct tn_redis_kv *kv, *at[K_VERSION], *node_kv;
    size_t count[K_VERSION], total = 0, nnodes;
    int k;

    for (k = K_WEIGHTS; k < K_VERSION; k++)
        if (rp->element[k]->type == REDIS_REPLY_ARRAY)
            total += rp->element[k]->elements / 2;
    if (nodes->type == REDIS_REPLY_ARRAY)
        total += nodes->elements / 2;
    kv = malloc((total ? total : 1) * sizeof(*kv));
    if (!kv)
        return TN_ERR;
    for (k = K_WEIGHTS, total = 0; k < K_VERSION; k++) {
        at[k] = kv + total;
        count[k] = hash_pairs(r, k, rp->element[k], at[k]);
        total += count[k];
    }
    node_kv = kv + total;
    nnodes = hash_pairs(r, K_NODES, nodes, node_kv);
    snap = (struct tn_redis_snapshot){.version = read_version(r, rp->element[K_VERSION]),
                                      .weights = at[K_WEIGHTS],
                                      .nweights = count[K_WEIGHTS],
                                      .pins = at[K_PINS],
                                      .npins = count[K_PINS],
                                      .servers = at[K_SERVERS],
                                      .nservers = count[K_SERVERS],
                                      .ramps = at[K_RAMPS],
                                      .nramps = count[K_RAMPS],
                                      .sources = at[K_SOURCES],
                                      .nsources = count[K_SOURCES],
                                      .nodes = node_kv,
                                      .nnodes = nnodes};
    if (r->cbs.on_snapshot) {
        r->busy++;
        r->cbs.on_snapshot(r->cbs.arg, &snap);
        r->busy--;
    }
    free(kv);
    return TN_OK;
}

static void on_read(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;
    const char *err = NULL;

    if (!rp || ac != r->cmd || (r->state != ST_CONNECT && r->state != ST_UP))
        return;
    r->reading = 0;
    if (rp->type == REDIS_REPLY_ERROR)
        err = rp->str;
    else if (rp->type != REDIS_REPLY_ARRAY || rp->elements != K_VERSION + 2)
        err = "unexpected EXEC reply";
    else if (deliver(r, rp) != TN_OK)
        err = "out of memory";
    if (err) {
        if (r->state == ST_CONNECT) {
            fail(r, "read: %s", err);
            return;
        }
        if (!r->read_warned)
            tn_log(TN_LOG_WARN, "redis: read failed: %s", err);
        r->read_warned = 1;
    } else {
        r->read_warned = 0;
    }
    if (r->state == ST_CONNECT)
        go_up(r);
    if (r->state == ST_UP && r->again) {
        r->again = 0;
        start_read(r);
    }
}

/* MULTI, HGETALL x5, GET version, HGETALL nodes, EXEC: one consistent
 * view of the keys. */
static void start_read(struct tn_redis *r)
{
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    const char *argv[2];
    int k, ok;

    if (!r->cmd || redisAsyncCommandArgv(r->cmd, NULL, NULL, 1, multi, NULL) != REDIS_OK)
        return;
    for (k = K_WEIGHTS, ok = 1; k <= K_VERSION; k++) {
        argv[0] = k == K_VERSION ? "GET" : "HGETALL";
        argv[1] = r->key[k];
        ok &= redisAsyncCommandArgv(r->cmd, NULL, NULL, 2, argv, NULL) == REDIS_OK;
    }
    argv[0] = "HGETALL";
    argv[1] = r->key[K_NODES];
    ok &= redisAsyncCommandArgv(r->cmd, NULL, NULL, 2, argv, NULL) == REDIS_OK;
    ok &= redisAsyncCommandArgv(r->cmd, on_read, r, 1, exec, NULL) == REDIS_OK;
    if (ok)
        r->reading = 1;
    else
        fail(r, "%s: cannot queue the read", r->master_text);
}

static void request_read(struct tn_redis *r)
{
    if (r->reading && (r->state == ST_UP || r->state == ST_CONNECT))
        r->again = 1;
    else if (r->state == ST_UP)
        start_read(r);
}

/* ---- report, resync ---- */

static void on_report(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;

    (void)ac;
    if (!rp || r->state == ST_CLOSED)
        return;
    if (rp->type == REDIS_REPLY_ERROR) {
        if (!r->report_warned)
            tn_log(TN_LOG_WARN, "redis: HSET %s: %s", r->key[K_NODES], rp->str);
        r->report_warned = 1;
    } else {
        r->report_warned = 0;
    }
}

static void send_report(struct tn_redis *r)
{
    char json[96];
    const char *argv[] = {"HSET", r->key[K_NODES], r->node_id, json};

    snprintf(json, sizeof(json), "{\"version\":%llu,\"seen\":%llu}", (unsigned long long)r->applied,
             (unsigned long long)unix_ms());
    if (r->cmd)
        redisAsyncCommandArgv(r->cmd, on_report, r, 4, argv, NULL);
}

static void on_resync(evutil_socket_t fd, short what, void *arg)
{
    struct tn_redis *r = arg;

    (void)fd;
    (void)what;
    if (r->state != ST_UP)
        return;
    request_read(r);
    if (r->have_applied)
        send_report(r);
    if (sentinel_mode(r) && !r->sensub)
        watch_sentinel(r, r->sen_start);
}

/* ---- writes ---- */

static void on_publish(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct tn_redis *r = privdata;
    redisReply *rp = reply;

    (void)ac;
    if (rp && rp->type == REDIS_REPLY_ERROR && r->state != ST_CLOSED)
        tn_log(TN_LOG_WARN, "redis: PUBLISH %s: %s", r->channel, rp->str);
}

/* EXEC's reply: the ops' results, INCR's at rec->nops, then XADD's. */
static void on_exec(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct write_rec *rec = privdata;
    struct tn_redis *r = rec->r;
    redisReply *rp = reply, *incr;
    const char *argv[] = {"PUBLISH", r->channel, rec->message};
    char err[256];
    size_t i;

    if (!rp) {
        write_finish(rec, 0, "redis connection lost");
        return;
    }
    if (rp->type == REDIS_REPLY_ERROR) {
        snprintf(err, sizeof(err), "EXEC: %s", rp->str);
        write_finish(rec, 0, err);
        return;
    }
    if (rp->type != REDIS_REPLY_ARRAY || rp->elements != rec->nops + 2) {
        write_finish(rec, 0, "EXEC: unexpected reply");
        return;
    }
    /* the transaction ran: tell the others even if one step failed */
    if (ac == r->cmd && r->state == ST_UP)
        redisAsyncCommandArgv(ac, on_publish, r, 3, argv, NULL);
    for (i = 0; i < rp->elements; i++) {
        if (rp->element[i]->type == REDIS_REPLY_ERROR) {
            snprintf(err, sizeof(err), "%s: %s",
                     i < rec->nops    ? "HSET/HDEL"
                     : i == rec->nops ? "INCR"
                                      : "XADD",
                     rp->element[i]->str);
            write_finish(rec, 0, err);
            return;
        }
    }
    incr = rp->element[rec->nops];
    if (incr->type != REDIS_REPLY_INTEGER || incr->integer <= 0) {
        write_finish(rec, 0, "INCR: unexpected reply");
        return;
    }
    write_finish(rec, (uint64_t)incr->integer, NULL);
}

/* Queues MULTI, the ops, INCR, XADD and EXEC; keys are built first so
 * nothing can fail half-way but hiredis itself (then DISCARD). */
static int queue_write(struct tn_redis *r, const struct tn_redis_change *ch, struct write_rec *rec,
                       char **keys, const char **xadd, size_t nxadd)
{
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"}, *discard[] = {"DISCARD"};
    const char *argv[4];
    size_t i;
    int ok;

    if (redisAsyncCommandArgv(r->cmd, NULL, NULL, 1, multi, NULL) != REDIS_OK)
        return TN_ERR;
    ok = 1;
    for (i = 0; i < ch->nops; i++) {
        argv[0] = ch->ops[i].value ? "HSET" : "HDEL";
        argv[1] = keys[i];
        argv[2] = ch->ops[i].field;
        argv[3] = ch->ops[i].value;
        ok &= redisAsyncCommandArgv(r->cmd, NULL, NULL, ch->ops[i].value ? 4 : 3, argv, NULL) ==
              REDIS_OK;
    }
    argv[0] = "INCR";
    argv[1] = r->key[K_VERSION];
    ok &= redisAsyncCommandArgv(r->cmd, NULL, NULL, 2, argv, NULL) == REDIS_OK;
    ok &= redisAsyncCommandArgv(r->cmd, NULL, NULL, (int)nxadd, xadd, NULL) == REDIS_OK;
    if (!ok || redisAsyncCommandArgv(r->cmd, on_exec, rec, 1, exec, NULL) != REDIS_OK) {
        redisAsyncCommandArgv(r->cmd, NULL, NULL, 1, discard, NULL);
        return TN_ERR;
    }
    return TN_OK;
}

static void destroy(struct tn_redis *r)
{
    redisAsyncContext **slots[] = {&r->cmd, &r->sub, &r->sen, &r->sensub};
    size_t i;
    int k;

    r->state = ST_CLOSED;
    r->dead = 1; /* a tn_redis_free from the callbacks below is a no-op */
    writes_fail(r, "shutting down");
    cmds_fail(r, "shutting down");
    for (i = 0; i < TN_ARRAY_LEN(slots); i++)
        retire(r, slots[i]);
    reap(r); /* the writes' and commands' callbacks free their records */
    TN_BUG_ON(r->writes != NULL);
    TN_BUG_ON(r->cmds != NULL);
    if (r->timer)
        event_free(r->timer);
    if (r->resync)
        event_free(r->resync);
    if (r->defer)
        event_free(r->defer);
    for (k = 0; k < K_COUNT; k++)
        free(r->key[k]);
    free(r->channel);
    free(r->prefix);
    free(r->node_id);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }
    free(r->master_name);
    free(r->sentinels);
    free(r);
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    struct tn_redis *r = arg;

    (void)fd;
    (void)what;
    if (r->dead)
        destroy(r);
    else
        reap(r);
}

/* Copies the direct address or the sentinels and master name. */
static int copy_endpoints(struct tn_redis *r, const struct tn_conf_redis *conf, const char **why)
{
    size_t i;

    if (!conf->nsentinels) {
        *why = "redis.address: not a numeric host:port";
        return endpoint_from_conf(&conf->addr, &r->direct);
    }
    r->master_name = strdup(conf->master);
    r->sentinels = calloc(conf->nsentinels, sizeof(*r->sentinels));
    if (!r->master_name || !r->sentinels) {
        *why = "out of memory";
        return TN_ERR;
    }
    r->nsentinels = conf->nsentinels;
    for (i = 0; i < conf->nsentinels; i++) {
        if (endpoint_from_conf(&conf->sentinels[i], &r->sentinels[i]) != TN_OK) {
            *why = "redis.sentinels: not a numeric host:port";
            return TN_ERR;
        }
    }
    return TN_OK;
}

/* ---- public ---- */

struct tn_redis *tn_redis_new(struct event_base *base, const struct tn_conf_redis *conf,
                              const char *node_id, const struct tn_redis_cbs *cbs, const char **why)
{
    struct tn_redis *r = NULL;
    const char *pw = NULL, *ns = conf->namespace_ ? conf->namespace_ : "default";
    static char envwhy[160];
    int k;

    if (conf->password_env) {
        pw = getenv(conf->password_env);
        if (!pw) {
            snprintf(envwhy, sizeof(envwhy),
                     "redis.password_env: environment variable %s is not set", conf->password_env);
            *why = envwhy;
            return NULL;
        }
    }
    if (!conf->nsentinels && !conf->address && conf->addr.ss.ss_family == AF_UNSPEC) {
        *why = "redis: no address and no sentinels";
        return NULL;
    }
    if (conf->nsentinels && !conf->master) {
        *why = "redis.master is required with sentinels";
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r)
        goto oom;
    r->base = base;
    if (cbs)
        r->cbs = *cbs;
    r->state = ST_WAIT;
    r->link = TN_REDIS_CONNECTING;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->resync_ms = conf->resync_ms ? conf->resync_ms : 5000;
    r->connect_timeout_ms = conf->connect_timeout_ms ? conf->connect_timeout_ms : 1000;
    r->node_id = strdup(node_id ? node_id : "turnout");
    r->password = pw ? strdup(pw) : NULL;
    r->prefix = malloc(strlen("turnout:") + strlen(ns) + 2);
    if (!r->prefix)
        goto oom;
    sprintf(r->prefix, "turnout:%s:", ns);
    r->channel = join_key(r->prefix, "changes");
    r->timer = evtimer_new(base, on_timer, r);
    r->resync = event_new(base, -1, EV_PERSIST, on_resync, r);
    r->defer = event_new(base, -1, 0, on_defer, r);
    if (!r->node_id || (pw && !r->password) || !r->channel || !r->timer || !r->resync || !r->defer)
        goto oom;
    for (k = 0; k < K_COUNT; k++)
        if (!(r->key[k] = join_key(r->prefix, key_names[k])))
            goto oom;
    if (copy_endpoints(r, conf, why) != TN_OK)
        goto fail;
    arm(r->timer, 0); /* the first attempt starts from the loop */
    return r;
oom:
    *why = "out of memory";
fail:
    if (r) {
        r->state = ST_CLOSED;
        destroy(r);
    }
    return NULL;
}

void tn_redis_free(struct tn_redis *r)
{
    if (!r || r->dead)
        return;
    if (r->busy) {
        /* inside one of our callbacks, with a hiredis callback under it */
        r->dead = 1;
        r->state = ST_CLOSED;
        writes_fail(r, "shutting down");
        cmds_fail(r, "shutting down");
        event_active(r->defer, 0, 0);
        return;
    }
    destroy(r);
}

int tn_redis_write(struct tn_redis *r, const struct tn_redis_change *ch, tn_redis_done_fn *done,
                   void *arg)
{
    struct write_rec *rec = NULL;
    const char **xadd = NULL;
    char **keys = NULL;
    size_t i, npairs, n = 0;
    int has_node = 0, rc = TN_ERR;

    if (!r || r->state != ST_UP || !r->cmd || !ch || (ch->nops && !ch->ops))
        return TN_ERR;
    for (i = 0; i < ch->nops; i++)
        if (!ch->ops[i].hash || !ch->ops[i].field)
            return TN_ERR;
    for (npairs = 0; ch->event && ch->event[2 * npairs]; npairs++) {
        if (!ch->event[2 * npairs + 1])
            return TN_ERR;
        has_node |= strcmp(ch->event[2 * npairs], "node") == 0;
    }
    rec = calloc(1, sizeof(*rec));
    keys = calloc(ch->nops + 1, sizeof(*keys));
    xadd = malloc((8 + 2 * npairs) * sizeof(*xadd));
    if (!rec || !keys || !xadd || !(rec->message = strdup(ch->message ? ch->message : "all")))
        goto out;
    for (i = 0; i < ch->nops; i++)
        if (!(keys[i] = join_key(r->prefix, ch->ops[i].hash)))
            goto out;
    xadd[n++] = "XADD";
    xadd[n++] = r->key[K_EVENTS];
    xadd[n++] = "MAXLEN";
    xadd[n++] = "~";
    xadd[n++] = "10000";
    xadd[n++] = "*";
    for (i = 0; i < 2 * npairs; i++)
        xadd[n++] = ch->event[i];
    if (!has_node) {
        xadd[n++] = "node";
        xadd[n++] = r->node_id;
    }
    rec->r = r;
    rec->done = done;
    rec->arg = arg;
    rec->nops = ch->nops;
    if (queue_write(r, ch, rec, keys, xadd, n) != TN_OK)
        goto out;
    rec->next = r->writes;
    if (r->writes)
        r->writes->prev = rec;
    r->writes = rec;
    rec = NULL;
    rc = TN_OK;
out:
    for (i = 0; keys && i < ch->nops; i++)
        free(keys[i]);
    free(keys);
    free(xadd);
    if (rec)
        free(rec->message);
    free(rec);
    return rc;
}

static void on_command(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct cmd_rec *rec = privdata;
    struct tn_redis *r = rec->r;
    redisReply *rp = reply;

    if (r->state == ST_CLOSED)
        cmd_finish(rec, NULL, "shutting down");
    else if (!rp || ac != r->cmd)
        cmd_finish(rec, NULL, "redis connection lost");
    else if (rp->type == REDIS_REPLY_ERROR)
        cmd_finish(rec, NULL, rp->str);
    else
        cmd_finish(rec, rp, NULL);
}

int tn_redis_command(struct tn_redis *r, int argc, const char **argv, const size_t *argvlen,
                     tn_redis_reply_fn *cb, void *arg)
{
    struct cmd_rec *rec;

    if (!r || r->state != ST_UP || !r->cmd || argc < 1 || !argv || !cb)
        return TN_ERR;
    rec = calloc(1, sizeof(*rec));
    if (!rec)
        return TN_ERR;
    rec->r = r;
    rec->cb = cb;
    rec->arg = arg;
    if (redisAsyncCommandArgv(r->cmd, on_command, rec, argc, argv, argvlen) != REDIS_OK) {
        free(rec);
        return TN_ERR;
    }
    rec->next = r->cmds;
    if (r->cmds)
        r->cmds->prev = rec;
    r->cmds = rec;
    return TN_OK;
}

void tn_redis_resync(struct tn_redis *r)
{
    if (r)
        request_read(r);
}

void tn_redis_report(struct tn_redis *r, uint64_t applied_version)
{
    if (!r)
        return;
    r->applied = applied_version;
    r->have_applied = 1;
    if (r->state == ST_UP)
        send_report(r);
}

const char *tn_redis_prefix(const struct tn_redis *r)
{
    return r->prefix;
}

enum tn_redis_link tn_redis_link_state(const struct tn_redis *r)
{
    return r ? r->link : TN_REDIS_DOWN;
}

const char *tn_redis_describe(const struct tn_redis *r, char *buf, size_t len)
{
    char extra[160] = "";
    uint64_t now;

    if (!len)
        return buf;
    if (r && sentinel_mode(r))
        snprintf(extra, sizeof(extra), " (sentinel master %s)", r->master_name);
    if (!r) {
        snprintf(buf, len, "off");
    } else if (r->state == ST_UP) {
        snprintf(buf, len, "up %s%s", r->master_text, extra);
    } else if (r->state == ST_CONNECT) {
        snprintf(buf, len, "connecting %s%s", r->master_text, extra);
    } else if (r->state == ST_ASK) {
        snprintf(buf, len, "connecting: asking sentinel %s:%d for master %s",
                 r->sentinels[r->sen_cur].host, r->sentinels[r->sen_cur].port, r->master_name);
    } else if (r->state == ST_WAIT && r->why[0]) {
        now = tn_now_ms();
        snprintf(buf, len, "%s: %s; retry in %llu ms",
                 r->link == TN_REDIS_DOWN ? "down" : "connecting", r->why,
                 (unsigned long long)(r->retry_at > now ? r->retry_at - now : 0));
    } else if (r->state == ST_WAIT) {
        snprintf(buf, len, "connecting");
    } else {
        snprintf(buf, len, "closed");
    }
    return buf;
}

const char *tn_redis_master(const struct tn_redis *r)
{
    if (!r || (r->state != ST_UP && r->state != ST_CONNECT))
        return NULL;
    return r->master_text;
}
