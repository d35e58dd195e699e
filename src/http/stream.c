/* Streams: one request from head parsed to log line, whatever codec
 * carried it. The stream copies the request head into its arena, routes it,
 * and makes attempts: each leases an upstream connection (h1up.c speaks
 * HTTP/1.1 on it). A request shifted to "to" that fails before any response
 * byte reached the client is replayed once on "from" (DESIGN.md
 * "Per-request rollback"), within the route's replay budget; for that the
 * body is copied into the arena (s->keep) as it streams, up to
 * rollback.max_body. The
 * response goes back through the codec's table. A stream ends with its
 * access log line and is freed by the worker's end-of-callback hook. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "turnout/accesslog.h"
#include "turnout/arena.h"
#include "turnout/budget.h"
#include "turnout/clientaddr.h"
#include "turnout/common.h"
#include "turnout/health.h"
#include "turnout/h1.h"
#include "turnout/h1up.h"
#include "turnout/io.h"
#include "turnout/log.h"
#include "turnout/pool.h"
#include "turnout/route.h"
#include "turnout/stats.h"
#include "turnout/stream.h"
#include "turnout/worker.h"

#define HIGH_WATER (256u << 10) /* upstream output above this: pause the codec */
#define LOW_WATER (64u << 10)   /* ... until it drains to this */
#define MAX_FREE_STREAMS 1024   /* recycled stream objects kept per worker */

static const char *const state_names[] = {
#define TN_X_NAME(s) #s,
    TN_STREAM_STATES(TN_X_NAME)
#undef TN_X_NAME
};

static const char *const error_names[] = {
#define TN_X_NAME(e, n) n,
    TN_ATTEMPT_ERRORS(TN_X_NAME)
#undef TN_X_NAME
};

static const char *const replay_names[] = {
#define TN_X_NAME(r, n) n,
    TN_REPLAY_REASONS(TN_X_NAME)
#undef TN_X_NAME
};

static const char *const noreplay_names[] = {
#define TN_X_NAME(r, n) n,
    TN_NOREPLAY_REASONS(TN_X_NAME)
#undef TN_X_NAME
};

#define BIT(s) (1u << TN_STREAM_##s)
/* Legal next states (staying put is always legal). */
static const unsigned legal_next[] = {
    [TN_STREAM_ROUTE] = BIT(CONNECT) | BIT(SEND) | BIT(WAIT_RESP) | BIT(HOLD) | BIT(DONE),
    [TN_STREAM_CONNECT] = BIT(SEND) | BIT(WAIT_RESP) | BIT(HOLD) | BIT(RESP) | BIT(DONE),
    [TN_STREAM_SEND] = BIT(CONNECT) | BIT(WAIT_RESP) | BIT(HOLD) | BIT(RESP) | BIT(DONE),
    [TN_STREAM_WAIT_RESP] = BIT(CONNECT) | BIT(SEND) | BIT(RESP) | BIT(HOLD) | BIT(DONE),
    [TN_STREAM_HOLD] = BIT(CONNECT) | BIT(WAIT_RESP) | BIT(DONE),
    [TN_STREAM_RESP] = BIT(DONE),
    [TN_STREAM_DONE] = 0,
};
#undef BIT

const char *tn_stream_state_name(enum tn_stream_state st)
{
    return state_names[st];
}

const char *tn_attempt_error_name(enum tn_attempt_error e)
{
    return error_names[e];
}

const char *tn_attempt_result_name(int result)
{
    if (result == 0)
        return "ok";
    if (result == 1)
        return "5xx";
    return result > 1 && result < TN_STATS_RESULTS ? error_names[result - 1] : "?";
}

const char *tn_replay_reason_name(int reason)
{
    return reason >= 0 && reason < TN_REPLAY_NREASONS ? replay_names[reason] : "?";
}

const char *tn_noreplay_reason_name(int reason)
{
    return reason >= 0 && reason < TN_NOREPLAY_NREASONS ? noreplay_names[reason] : "?";
}

static void set_state(struct tn_stream *s, enum tn_stream_state st)
{
    TN_BUG_ON(st != s->state && !(legal_next[s->state] & (1u << st)));
    s->state = st;
}

static void arm(struct tn_stream *s, const struct timeval *tv)
{
    evtimer_add(&s->timer, tv);
    s->flags |= TN_STREAM_F_TIMER;
}

static void disarm(struct tn_stream *s)
{
    if (s->flags & TN_STREAM_F_TIMER) {
        evtimer_del(&s->timer);
        s->flags &= ~TN_STREAM_F_TIMER;
    }
}

static struct tn_attempt *cur_attempt(struct tn_stream *s)
{
    return s->natt ? &s->att[s->natt - 1] : NULL;
}

static const struct tn_conf *conf_of(const struct tn_stream *s)
{
    return s->wp->plan->conf;
}

static struct tn_route_wstate *route_state(struct tn_stream *s)
{
    return tn_worker_route_state(s->w, s->wp->plan->routes[s->dec.route].id);
}

/* ---- ending ---- */

/* Ends the lease of the current attempt's connection. */
static void release_up(struct tn_stream *s)
{
    struct tn_upstream *u = s->up;

    if (!u)
        return;
    s->up = NULL;
    u->owner = NULL;
    tn_upstream_release(u);
}

/* The stream is over: log it, give the plan back, free it later. */
_Static_assert(TN_STATS_REPLAY_REASONS == TN_REPLAY_NREASONS, "replay reasons");
_Static_assert(TN_STATS_REFUSED_REASONS == TN_NOREPLAY_NREASONS, "refused reasons");
_Static_assert(TN_STATS_RESULTS == 2 + TN_ATTEMPT_E_CUT, "attempt results");

/* The side (0 from, 1 to) of a shifting route that backend is, or -1. */
static int side_of(const struct tn_conf_route *r, int backend)
{
    if (!r->has_shift)
        return -1;
    return backend == r->from_idx ? 0 : backend == r->to_idx ? 1 : -1;
}

/* Counts the finished request in the worker's statistics shard, for the
 * backend that answered (the last attempt's), by the route's and the
 * backend's stable identities; and each attempt for its own backend (a
 * stale pooled connection retried is not the server's doing: not counted
 * as an attempt result). */
static void count(const struct tn_stream *s)
{
    const struct tn_plan *p = s->wp ? s->wp->plan : NULL;
    int backend = s->natt ? s->att[s->natt - 1].backend : s->dec.backend;
    const struct tn_conf_route *r;
    uint32_t rid;
    int64_t sec;
    unsigned i;

#ifdef TN_STATS_OFF
    return; /* counting compiled out (the benchmark's baseline) */
#endif
    if (!p || s->dec.route < 0 || backend < 0)
        return;
    r = p->routes[s->dec.route].conf;
    rid = p->routes[s->dec.route].id;
    tn_stats_request(s->w->stats, rid, p->backend_ids[backend], s->status, s->bytes_in,
                     s->bytes_out, s->natt, tn_now_us() - s->start_us);
    if (!s->natt && !r->has_shift)
        return;
    sec = tn_stats_now_sec();
    if (s->dec.backend >= 0)
        tn_stats_routed(s->w->stats, rid, side_of(r, s->dec.backend), sec);
    for (i = 0; i < s->natt; i++) {
        const struct tn_attempt *a = &s->att[i];
        uint64_t end = a->first_byte_us ? a->first_byte_us : a->failed_us;
        int result = a->err != TN_ATTEMPT_E_NONE ? 1 + (int)a->err : a->status >= 500;

        if (a->stale || (!end && a->err == TN_ATTEMPT_E_NONE && !a->status))
            continue; /* retried, or never got anywhere (the client left) */
        tn_stats_attempt(s->w->stats, rid, p->backend_ids[a->backend], side_of(r, a->backend),
                         result, end > a->start_us ? end - a->start_us : 0, sec);
    }
}

/* Counts a replay (or why not) for the current attempt's backend. */
static void count_replay(struct tn_stream *s, int refused, int reason)
{
    const struct tn_plan *p = s->wp->plan;
    const struct tn_attempt *a = cur_attempt(s);
    uint32_t rid = p->routes[s->dec.route].id, bid = p->backend_ids[a ? a->backend : s->dec.backend];

    if (refused)
        tn_stats_refused(s->w->stats, rid, bid, reason);
    else
        tn_stats_replay(s->w->stats, rid, bid, reason);
}

static void finish(struct tn_stream *s)
{
    struct tn_worker *w = s->w;

    if (s->state == TN_STREAM_DONE)
        return;
    disarm(s);
    release_up(s);
    tn_accesslog_write(w->log, s);
    count(s);
    set_state(s, TN_STREAM_DONE);
    s->down = NULL;
    s->down_ctx = NULL;
    if (s->wp)
        tn_wplan_release(w, s->wp);
    s->wp = NULL;
    TAILQ_REMOVE(&w->streams, s, link);
    TAILQ_INSERT_TAIL(&w->dead_streams, s, link);
    w->nstreams--;
    tn_worker_stream_gone(w);
}

/* Answers an error of our own (nothing was sent yet) and ends. TN_ERR. */
static int fail_stream(struct tn_stream *s, int status, const char *why)
{
    const struct tn_stream_ops *down = s->down;

    release_up(s);
    s->status = status;
    if (!s->reason)
        s->reason = why;
    if (down)
        down->abort(s, status, why);
    finish(s);
    return TN_ERR;
}

/* Cuts a response that already started and ends. TN_ERR. */
static int cut_stream(struct tn_stream *s, const char *why)
{
    const struct tn_stream_ops *down = s->down;

    release_up(s);
    if (!s->reason)
        s->reason = why;
    if (down)
        down->abort(s, 0, why);
    finish(s);
    return TN_ERR;
}

/* ---- the request ---- */

/* Points into the arena copy b of m->base when p lies in m->base (the
 * usual case); copies p otherwise (a parser may point at a constant). */
static const char *rebase(struct tn_arena *a, const struct tn_msg *m, const char *b, const char *p,
                          size_t n)
{
    uintptr_t lo = (uintptr_t)m->base, at = (uintptr_t)p;

    if (!p)
        return NULL;
    if (b && at >= lo && at + n <= lo + m->base_len)
        return b + (at - lo);
    return tn_arena_strndup(a, p, n);
}

/* Copies request m into the arena: with m->base, one block holding the
 * fields and a copy of base, every pointer rebased (fields always lie in
 * base; the start line may point at a parser's constant). */
static int copy_request(struct tn_stream *s, const struct tn_msg *m)
{
    struct tn_arena *a = &s->arena;
    struct tn_msg *r = &s->req;
    size_t fsize = m->nfields * sizeof(*r->fields);
    char *b = NULL;
    unsigned i;

    *r = *m;
    r->extra = NULL;
    r->nextra = 0;
    if (m->base) {
        struct tn_field *f = tn_arena_alloc(a, fsize + m->base_len);
        uintptr_t lo = (uintptr_t)m->base;

        if (!f)
            return TN_ERR;
        b = (char *)(f + m->nfields);
        memcpy(b, m->base, m->base_len);
        memcpy(f, m->fields, fsize);
        for (i = 0; i < m->nfields; i++) {
            f[i].name = b + ((uintptr_t)f[i].name - lo);
            f[i].value = b + ((uintptr_t)f[i].value - lo);
        }
        r->fields = f;
        r->base = b;
    } else {
        r->fields = m->nfields ? tn_arena_alloc(a, fsize) : NULL;
        if (m->nfields && !r->fields)
            return TN_ERR;
        for (i = 0; i < m->nfields; i++) {
            r->fields[i] = m->fields[i];
            r->fields[i].name = tn_arena_strndup(a, m->fields[i].name, m->fields[i].name_len);
            r->fields[i].value = tn_arena_strndup(a, m->fields[i].value, m->fields[i].value_len);
            if (!r->fields[i].name || !r->fields[i].value)
                return TN_ERR;
        }
    }
    r->method_str = rebase(a, m, b, m->method_str, m->method_len);
    r->target = rebase(a, m, b, m->target, m->target_len);
    r->authority = rebase(a, m, b, m->authority, m->authority_len);
    if (!r->method_str || !r->target || (m->authority && !r->authority))
        return TN_ERR;
    return TN_OK;
}

static int method_listed(const struct tn_conf_strlist *l, const struct tn_msg *r)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        if (strlen(l->v[i]) == r->method_len && !memcmp(l->v[i], r->method_str, r->method_len))
            return 1;
    return 0;
}

/* Decides whether this request may be replayed should its attempt on "to"
 * fail, and whether its body must be kept for that. */
static void decide_replay(struct tn_stream *s)
{
    const struct tn_conf_rollback *rb = &conf_of(s)->rollback;
    const struct tn_conf_route *route;
    const struct tn_msg *r = &s->req;

    s->no_replay = -1;
    if (!rb->enabled || s->dec.reason != TN_ROUTE_SHIFT_TO)
        return;
    route = s->wp->plan->routes[s->dec.route].conf;
    if (route->from_idx == route->to_idx)
        return;
    if (!method_listed(&rb->methods, r) &&
        !(rb->idempotency_key && tn_h1_find(r->fields, r->nfields, "idempotency-key"))) {
        s->no_replay = TN_NOREPLAY_NOT_REPLAYABLE;
        return;
    }
    if (r->body == TN_BODY_LENGTH && r->content_length > rb->max_body) {
        s->no_replay = TN_NOREPLAY_BODY_TOO_LARGE;
        return;
    }
    s->flags |= TN_STREAM_F_REPLAYABLE;
    if (r->body == TN_BODY_NONE)
        return;
    /* a declared length gets its room at once; a stream of unknown length
     * starts small and doubles (up to max_body) */
    s->keep_len = 0;
    s->keep_cap = r->body == TN_BODY_LENGTH ? (size_t)r->content_length : 4096;
    if (s->keep_cap > rb->max_body)
        s->keep_cap = rb->max_body;
    s->keep = s->keep_cap ? tn_arena_alloc(&s->arena, s->keep_cap) : NULL;
    if (s->keep_cap && !s->keep) {
        s->flags &= ~TN_STREAM_F_REPLAYABLE;
        return;
    }
    s->flags |= TN_STREAM_F_KEEP;
}

/* Copies n bytes of src (left in place) into the kept body; stops keeping
 * (the body is too large) past rollback.max_body. */
static void keep_body(struct tn_stream *s, struct evbuffer *src, size_t n)
{
    size_t max = conf_of(s)->rollback.max_body;

    if (s->keep_len + n > s->keep_cap) {
        size_t cap = s->keep_cap * 2 > s->keep_len + n ? s->keep_cap * 2 : s->keep_len + n;
        char *k;

        if (cap > max)
            cap = max;
        if (s->keep_len + n > cap || !(k = tn_arena_alloc(&s->arena, cap))) {
            s->keep = NULL;
            s->keep_len = s->keep_cap = 0;
            s->flags &= ~(TN_STREAM_F_KEEP | TN_STREAM_F_REPLAYABLE);
            s->no_replay = TN_NOREPLAY_BODY_TOO_LARGE;
            return;
        }
        if (s->keep_len)
            memcpy(k, s->keep, s->keep_len);
        s->keep = k;
        s->keep_cap = cap;
    }
    evbuffer_copyout(src, s->keep + s->keep_len, n);
    s->keep_len += n;
}

/* The override header and its token never reach a backend, honoured or
 * not. */
static void drop_override_fields(struct tn_stream *s, const struct tn_conf_overrides *o)
{
    size_t hl = strlen(o->header), tl = o->token_header ? strlen(o->token_header) : 0;
    unsigned i;

    for (i = 0; i < s->req.nfields; i++) {
        struct tn_field *f = &s->req.fields[i];

        if ((f->name_len == hl && !strncasecmp(f->name, o->header, hl)) ||
            (tl && f->name_len == tl && !strncasecmp(f->name, o->token_header, tl)))
            f->flags |= TN_FIELD_F_DROP;
    }
}

/* ---- attempts ---- */

static int attempt_failed(struct tn_stream *s, enum tn_attempt_error err, const char *why);

/* Tells passive health how the current attempt's server did: a connect
 * error or a 5xx is a failure, any other answer a success. */
static void observe_server(struct tn_stream *s, const struct tn_attempt *a, int failed)
{
    const struct tn_plan *p = s->wp->plan;

    if (tn_passive_report(p->server_ids[a->backend][a->server], failed,
                          &p->conf->backends[a->backend].passive, a->start_us / 1000))
        tn_log(TN_LOG_WARN, "server %s/%s ejected after failures (passive health)",
               p->conf->backends[a->backend].name,
               p->conf->backends[a->backend].servers[a->server].name);
}

/* Starts an attempt on backend (server < 0: the balancer picks), on a fresh
 * connection when fresh. Returns TN_OK, or TN_ERR when the stream ended. */
static int start_attempt(struct tn_stream *s, int backend, int server, int fresh)
{
    const struct tn_conf *conf = conf_of(s);
    struct tn_attempt *a;
    struct tn_upstream *u;
    struct tn_pool *pool;
    enum tn_body_kind kind = s->req.body;
    uint64_t len = s->req.content_length;
    const char *why = NULL;
    int resend = s->natt > 0;

    if (server < 0) {
        struct tn_worker *w = s->w;

        w->now_ms = (resend ? tn_now_us() : s->start_us) / 1000;
        if (tn_worker_usable_servers(w, s->wp, backend, w->usable))
            server = tn_balance_pick(&s->wp->balance[backend], &conf->backends[backend], w->usable);
    }
    if (server < 0)
        return fail_stream(s, 503, "no_server");
    TN_BUG_ON(s->natt >= TN_STREAM_MAX_ATTEMPTS);
    a = &s->att[s->natt++];
    memset(a, 0, sizeof(*a));
    a->backend = backend;
    a->server = server;
    /* the first attempt starts with the request (the codec read the clock) */
    a->start_us = resend ? tn_now_us() : s->start_us;
    pool = s->wp->pools[backend][server];
    u = fresh ? NULL : tn_pool_take(pool);
    if (u)
        a->reused = 1;
    else if (!(u = tn_upstream_connect(pool, conf->backends[backend].tls.ctx, &why)))
        return attempt_failed(s, TN_ATTEMPT_E_CONNECT_ERROR, why);
    s->up = u;
    if (resend && kind != TN_BODY_NONE) { /* the kept body, decoded */
        kind = TN_BODY_LENGTH;
        len = s->keep_len;
    }
    if (tn_h1up_start(u, s, kind, len) != TN_OK)
        return fail_stream(s, 431, "request_head_too_large");
    if (resend && kind != TN_BODY_NONE)
        tn_h1up_data_ref(u, s->keep, s->keep_len);
    if (s->flags & TN_STREAM_F_REQ_DONE)
        tn_h1up_end(u);
    if (!u->connected) {
        set_state(s, TN_STREAM_CONNECT);
        arm(s, s->wp->tv_connect);
    } else if (s->flags & TN_STREAM_F_REQ_DONE) {
        set_state(s, TN_STREAM_WAIT_RESP);
        arm(s, s->wp->tv_response);
    } else {
        set_state(s, TN_STREAM_SEND);
    }
    return TN_OK;
}

static enum tn_replay_reason replay_reason(enum tn_attempt_error err)
{
    switch (err) {
    case TN_ATTEMPT_E_CONNECT_ERROR:
    case TN_ATTEMPT_E_CONNECT_TIMEOUT:
        return TN_REPLAY_CONNECT;
    case TN_ATTEMPT_E_TIMEOUT:
        return TN_REPLAY_TIMEOUT;
    case TN_ATTEMPT_E_NONE:
        return TN_REPLAY_STATUS;
    default:
        return TN_REPLAY_RESET;
    }
}

/* Whether the failure of the current attempt may be replayed now; counts
 * the replay (or why not) and sets the log reason. */
static int replay_allowed(struct tn_stream *s, enum tn_replay_reason why)
{
    const struct tn_conf_rollback *rb = &conf_of(s)->rollback;
    struct tn_route_wstate *rs;

    if (s->flags & TN_STREAM_F_REPLAYED)
        return 0;
    if (!(s->flags & TN_STREAM_F_REPLAYABLE)) {
        if (s->no_replay >= 0) {
            count_replay(s, 1, s->no_replay);
            s->reason = noreplay_names[s->no_replay];
        }
        return 0;
    }
    if ((why == TN_REPLAY_CONNECT && !rb->on_connect_error) ||
        (why == TN_REPLAY_TIMEOUT && !rb->on_timeout))
        return 0;
    rs = route_state(s);
    if (!tn_budget_take(&rs->budget, tn_now_ms())) {
        count_replay(s, 1, TN_NOREPLAY_BUDGET);
        s->reason = noreplay_names[TN_NOREPLAY_BUDGET];
        return 0;
    }
    s->flags |= TN_STREAM_F_REPLAYED;
    s->replay_why = why;
    s->reason = replay_names[why];
    return 1;
}

/* Starts the replay attempt on the route's "from" and counts it. */
static int start_replay(struct tn_stream *s)
{
    count_replay(s, 0, s->replay_why);
    return start_attempt(s, s->wp->plan->routes[s->dec.route].conf->from_idx, -1, 0);
}

/* Replays on the route's "from" backend, at once or once the body is in.
 * The failed attempt's connection is already released. */
static int replay(struct tn_stream *s, int fail_status, const char *why)
{
    if (!(s->flags & TN_STREAM_F_REQ_DONE)) {
        s->fail_status = fail_status;
        s->fail_why = why;
        set_state(s, TN_STREAM_HOLD);
        if ((s->flags & TN_STREAM_F_REQ_PAUSED) && s->down) {
            s->flags &= ~TN_STREAM_F_REQ_PAUSED;
            s->down->resume(s);
        }
        return TN_OK;
    }
    return start_replay(s);
}

/* The current attempt failed before (or after) the response started.
 * Retries a stale pooled connection, replays, answers an error or cuts.
 * Returns TN_OK while the stream goes on, TN_ERR once it ended. */
static int attempt_failed(struct tn_stream *s, enum tn_attempt_error err, const char *why)
{
    struct tn_attempt *a = cur_attempt(s);
    int got_bytes = s->up && (s->up->flags & TN_UP_F_GOT_BYTES);
    int status = err == TN_ATTEMPT_E_TIMEOUT ? 504 : 502;

    a->err = err;
    a->why = err != TN_ATTEMPT_E_NONE ? why : NULL;
    a->failed_us = tn_now_us();
    if (err == TN_ATTEMPT_E_CONNECT_ERROR || err == TN_ATTEMPT_E_CONNECT_TIMEOUT) {
        struct tn_pool *pool = s->wp->pools[a->backend][a->server];

        if (pool && pool->st)
            TN_STATS_BUMP(pool->st->connect_errors);
    }
    /* gateway errors count against the server, as Envoy's outlier detection
     * counts them: no connection, no answer in time, a broken one -- but not
     * a pooled connection the server had closed (retried below) */
    if (err == TN_ATTEMPT_E_CONNECT_ERROR || err == TN_ATTEMPT_E_CONNECT_TIMEOUT ||
        (!(s->flags & TN_STREAM_F_RESP_STARTED) && !(a->reused && !got_bytes) &&
         (err == TN_ATTEMPT_E_TIMEOUT || err == TN_ATTEMPT_E_RESET ||
          err == TN_ATTEMPT_E_CLOSED || err == TN_ATTEMPT_E_BAD_RESPONSE)))
        observe_server(s, a, 1);
    release_up(s);
    disarm(s);
    if (s->flags & TN_STREAM_F_RESP_STARTED) {
        a->err = TN_ATTEMPT_E_CUT;
        if ((s->flags & TN_STREAM_F_REPLAYABLE) && !(s->flags & TN_STREAM_F_REPLAYED)) {
            count_replay(s, 1, TN_NOREPLAY_RESPONSE_STARTED);
            s->reason = noreplay_names[TN_NOREPLAY_RESPONSE_STARTED];
        }
        return cut_stream(s, why);
    }
    /* a pooled connection the server closed just before we reused it */
    if ((err == TN_ATTEMPT_E_RESET || err == TN_ATTEMPT_E_CLOSED) && a->reused && !got_bytes &&
        !(s->flags & TN_STREAM_F_RETRIED) &&
        (s->req.body == TN_BODY_NONE ||
         ((s->flags & TN_STREAM_F_REQ_DONE) && (s->flags & TN_STREAM_F_KEEP)))) {
        s->flags |= TN_STREAM_F_RETRIED;
        a->stale = 1;
        return start_attempt(s, a->backend, a->server, 1);
    }
    if (replay_allowed(s, replay_reason(err)))
        return replay(s, status, why);
    return fail_stream(s, status, why);
}

/* ---- the codec's calls (tn_stream_ops) ---- */

static int on_head(struct tn_stream *s, const struct tn_msg *m)
{
    struct tn_worker *w = s->w;
    const struct tn_conf *conf;
    struct tn_route_req rq;
    struct tn_route_wstate *rs;

    s->wp = tn_wplan_acquire(w);
    conf = conf_of(s);
    if (copy_request(s, m) != TN_OK)
        return fail_stream(s, 503, "out_of_memory");
    if (conf->limits.body && m->body == TN_BODY_LENGTH && m->content_length > conf->limits.body)
        return fail_stream(s, 413, "request_body_too_large");
    rq.method = s->req.method_str;
    rq.method_len = s->req.method_len;
    rq.host = s->req.authority;
    rq.host_len = s->req.authority_len;
    rq.target = s->req.target;
    rq.target_len = s->req.target_len;
    rq.hdrs = s->req.fields;
    rq.nhdrs = s->req.nfields;
    rq.client_ip = s->client_ip;
    rq.ov = w->ov;
    rq.mod_wk = w->mod_wk;
    w->now_ms = s->start_us / 1000;
    rq.backend_up = tn_worker_backend_up;
    rq.up_ctx = w;
    if (tn_route_decide(s->wp->plan, &rq, w->md, &s->dec) != TN_OK)
        return fail_stream(s, 503, "no_route");
    if (conf->overrides.header)
        drop_override_fields(s, &conf->overrides);
    rs = route_state(s);
    tn_budget_request(&rs->budget, s->start_us / 1000);
    decide_replay(s);
    if (s->req.body == TN_BODY_NONE)
        s->flags |= TN_STREAM_F_REQ_DONE;
    if ((s->req.flags & TN_MSG_F_EXPECT_CONTINUE) && (s->flags & TN_STREAM_F_KEEP) && s->down) {
        /* the body must come to us whatever the first attempt does */
        struct tn_msg cont = { .status = 100 };

        s->flags |= TN_STREAM_F_CONTINUE;
        if (s->down->head(s, &cont) != TN_OK)
            return TN_ERR;
    }
    return start_attempt(s, s->dec.backend, -1, 0);
}

static int on_data(struct tn_stream *s, struct evbuffer *src, size_t n)
{
    struct tn_upstream *u = s->up;

    s->progress++;
    if (s->flags & TN_STREAM_F_KEEP) {
        keep_body(s, src, n);
        if (s->state == TN_STREAM_HOLD && !(s->flags & TN_STREAM_F_KEEP)) {
            /* the replay waited for a body that turned out too large */
            evbuffer_drain(src, n);
            count_replay(s, 1, TN_NOREPLAY_BODY_TOO_LARGE);
            s->reason = noreplay_names[TN_NOREPLAY_BODY_TOO_LARGE];
            return fail_stream(s, s->fail_status, s->fail_why);
        }
    }
    if (!u || s->state == TN_STREAM_HOLD || (s->flags & TN_STREAM_F_BODY_IGNORED)) {
        evbuffer_drain(src, n);
        return TN_OK;
    }
    tn_h1up_data(u, src, n);
    if (evbuffer_get_length(u->io.out) >= HIGH_WATER && !(s->flags & TN_STREAM_F_REQ_PAUSED)) {
        s->flags |= TN_STREAM_F_REQ_PAUSED;
        if (s->down)
            s->down->pause(s);
        tn_io_notify_low(&u->io, LOW_WATER);
        if (s->state == TN_STREAM_SEND)
            arm(s, s->wp->tv_body); /* the backend must keep reading */
    }
    return TN_OK;
}

static int on_end(struct tn_stream *s)
{
    s->flags |= TN_STREAM_F_REQ_DONE;
    if (s->state == TN_STREAM_HOLD)
        return start_replay(s);
    if (!s->up || (s->flags & TN_STREAM_F_BODY_IGNORED))
        return TN_OK;
    tn_h1up_end(s->up);
    if (s->state == TN_STREAM_SEND) {
        set_state(s, TN_STREAM_WAIT_RESP);
        arm(s, s->wp->tv_response);
    }
    return TN_OK;
}

static void on_abort(struct tn_stream *s, int status, const char *why)
{
    if (s->state == TN_STREAM_DONE)
        return;
    s->down = NULL; /* the codec answers for itself */
    if (status)
        s->status = status;
    if (!(s->flags & TN_STREAM_F_REPLAYED) || status)
        s->reason = why;
    finish(s);
}

static void on_pause(struct tn_stream *s)
{
    s->flags |= TN_STREAM_F_RESP_PAUSED;
    if (s->up)
        tn_h1up_pause(s->up);
}

static void on_resume(struct tn_stream *s)
{
    s->flags &= ~TN_STREAM_F_RESP_PAUSED;
    s->progress++;
    if (s->up)
        tn_h1up_resume(s->up);
}

const struct tn_stream_ops tn_stream_ops = {
    .head = on_head,
    .data = on_data,
    .end = on_end,
    .abort = on_abort,
    .pause = on_pause,
    .resume = on_resume,
};

/* ---- the upstream side's calls ---- */

static int status_listed(const struct tn_conf_rollback *rb, int status)
{
    size_t i;

    for (i = 0; i < rb->non_status; i++)
        if (rb->on_status[i] == status)
            return 1;
    return 0;
}

void tn_stream_up_connected(struct tn_stream *s)
{
    struct tn_attempt *a = cur_attempt(s);

    a->connected_us = tn_now_us();
    if (s->state != TN_STREAM_CONNECT)
        return;
    disarm(s);
    if (s->flags & TN_STREAM_F_REQ_DONE) {
        set_state(s, TN_STREAM_WAIT_RESP);
        arm(s, s->wp->tv_response);
    } else {
        set_state(s, TN_STREAM_SEND);
        if (s->flags & TN_STREAM_F_REQ_PAUSED)
            arm(s, s->wp->tv_body);
    }
}

int tn_stream_up_head(struct tn_stream *s, const struct tn_msg *m)
{
    struct tn_attempt *a = cur_attempt(s);
    const struct tn_conf_route *route;
    struct tn_msg fwd;

    if (!a->first_byte_us)
        a->first_byte_us = tn_now_us();
    if (m->status < 200) {
        /* a replay may still come: nothing of this attempt reaches the client */
        if ((s->flags & TN_STREAM_F_REPLAYABLE) && !(s->flags & TN_STREAM_F_REPLAYED))
            return TN_OK;
        if ((s->flags & TN_STREAM_F_CONTINUE) && m->status == 100)
            return TN_OK;
        return s->down ? s->down->head(s, m) : TN_OK;
    }
    a->status = m->status;
    observe_server(s, a, m->status >= 500);
    route = s->wp->plan->routes[s->dec.route].conf;
    if (s->dec.reason == TN_ROUTE_SHIFT_TO && a->backend == route->to_idx &&
        status_listed(&conf_of(s)->rollback, m->status) &&
        replay_allowed(s, TN_REPLAY_STATUS)) {
        release_up(s); /* its body is never read: the connection goes */
        disarm(s);
        replay(s, 502, "rollback_status");
        return TN_ERR;
    }
    if (!(s->flags & TN_STREAM_F_REQ_DONE)) {
        /* answered before the body ended: the rest of it is dropped */
        s->flags |= TN_STREAM_F_BODY_IGNORED;
        if (s->down && !(s->flags & TN_STREAM_F_REQ_PAUSED))
            s->down->pause(s);
    }
    s->flags |= TN_STREAM_F_RESP_STARTED;
    s->status = m->status;
    if (s->state != TN_STREAM_WAIT_RESP) /* early response: no response timer yet */
        arm(s, s->wp->tv_response);
    set_state(s, TN_STREAM_RESP);
    s->progress_seen = s->progress;
    if (!s->down)
        return TN_OK;
    fwd = *m;
    tn_stream_add_extra(s, &fwd);
    return s->down->head(s, &fwd) == TN_OK && s->up ? TN_OK : TN_ERR;
}

int tn_stream_up_data(struct tn_stream *s, struct evbuffer *src, size_t n)
{
    s->progress++;
    if (!s->down) {
        evbuffer_drain(src, n);
        return TN_OK;
    }
    return s->down->data(s, src, n) == TN_OK && s->up ? TN_OK : TN_ERR;
}

void tn_stream_up_end(struct tn_stream *s)
{
    const struct tn_stream_ops *down = s->down;

    release_up(s);
    if (down)
        down->end(s);
    finish(s);
}

void tn_stream_up_fail(struct tn_stream *s, enum tn_attempt_error err, const char *why)
{
    attempt_failed(s, err, why);
}

void tn_stream_up_drained(struct tn_stream *s)
{
    if (!(s->flags & TN_STREAM_F_REQ_PAUSED))
        return;
    s->flags &= ~TN_STREAM_F_REQ_PAUSED;
    s->progress++;
    if (s->state == TN_STREAM_SEND)
        disarm(s);
    if (s->down && !(s->flags & TN_STREAM_F_BODY_IGNORED))
        s->down->resume(s);
}

/* ---- timer ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct tn_stream *s = arg;
    struct tn_worker *w = s->w;
    int stalled = s->progress == s->progress_seen;

    (void)fd;
    (void)what;
    s->flags &= ~TN_STREAM_F_TIMER;
    s->progress_seen = s->progress;
    switch (s->state) {
    case TN_STREAM_CONNECT:
        attempt_failed(s, TN_ATTEMPT_E_CONNECT_TIMEOUT, "connect_timeout");
        break;
    case TN_STREAM_SEND:
        if (!(s->flags & TN_STREAM_F_REQ_PAUSED))
            break;
        if (stalled) /* the backend stopped reading the body */
            attempt_failed(s, TN_ATTEMPT_E_TIMEOUT, "upstream_write_timeout");
        else
            arm(s, s->wp->tv_body);
        break;
    case TN_STREAM_WAIT_RESP:
        attempt_failed(s, TN_ATTEMPT_E_TIMEOUT, "response_timeout");
        break;
    case TN_STREAM_RESP:
        if (!stalled) {
            arm(s, s->wp->tv_response);
            break;
        }
        cur_attempt(s)->err = TN_ATTEMPT_E_CUT;
        cut_stream(s, (s->flags & TN_STREAM_F_RESP_PAUSED) ? "client_read_timeout"
                                                           : "response_timeout");
        break;
    default:
        break;
    }
    tn_ioq_settle(&w->ioq);
}

/* ---- lifecycle ---- */

struct tn_stream *tn_stream_new(struct tn_worker *w, const struct tn_stream_ops *down,
                                void *down_ctx, const char *client_ip, const char *scheme,
                                uint64_t start_us)
{
    struct tn_stream *s = TAILQ_FIRST(&w->free_streams);
    struct tn_arena arena = { 0 };

    if (s) {
        TAILQ_REMOVE(&w->free_streams, s, link);
        w->nfree_streams--;
        arena = s->arena;
    } else if ((s = malloc(sizeof(*s))) != NULL) {
        evtimer_assign(&s->timer, w->base, on_timer, s);
    } else {
        return NULL;
    }
    memset(s, 0, offsetof(struct tn_stream, att));
    s->natt = 0;
    s->up = NULL;
    s->keep = NULL;
    s->keep_len = s->keep_cap = 0;
    s->arena = arena;
    s->progress = s->progress_seen = 0;
    s->status = 0;
    s->reason = NULL;
    s->fail_why = NULL;
    s->fail_status = 0;
    s->no_replay = -1;
    s->bytes_in = s->bytes_out = 0;
    s->w = w;
    s->id = ++w->next_id;
    s->down = down;
    s->down_ctx = down_ctx;
    s->scheme = scheme;
    s->dec.route = s->dec.backend = -1;
    s->dec.key_source = TN_STICKY_NONE;
    if (client_ip) {
        size_t n = strnlen(client_ip, sizeof(s->client_ip) - 1);

        memcpy(s->client_ip, client_ip, n);
        s->client_ip[n] = '\0';
    }
    s->start_us = start_us ? start_us : tn_now_us();
    TAILQ_INSERT_TAIL(&w->streams, s, link);
    w->nstreams++;
    return s;
}

void tn_stream_reject(struct tn_stream *s, int status, const char *why, uint64_t start_us,
                      uint64_t bytes_out)
{
    s->down = NULL;
    s->status = status;
    s->reason = why;
    if (start_us)
        s->start_us = start_us;
    s->bytes_out = bytes_out;
    finish(s);
}

void tn_stream_detach(struct tn_stream *s, const char *why)
{
    if (s->state != TN_STREAM_DONE)
        on_abort(s, 0, why);
    s->down = NULL;
    s->down_ctx = NULL;
}

static void stream_free(struct tn_stream *s)
{
    tn_arena_deinit(&s->arena);
    free(s);
}

void tn_stream_reap(struct tn_worker *w)
{
    struct tn_stream *s;

    while ((s = TAILQ_FIRST(&w->dead_streams)) != NULL) {
        TAILQ_REMOVE(&w->dead_streams, s, link);
        if (w->nfree_streams >= MAX_FREE_STREAMS || w->draining) {
            stream_free(s);
            continue;
        }
        tn_arena_reset(&s->arena);
        TAILQ_INSERT_HEAD(&w->free_streams, s, link);
        w->nfree_streams++;
    }
}

void tn_stream_free_all(struct tn_worker *w)
{
    struct tn_stream *s;

    while ((s = TAILQ_FIRST(&w->streams)) != NULL) {
        s->down = NULL;
        finish(s);
    }
    tn_stream_reap(w);
    while ((s = TAILQ_FIRST(&w->free_streams)) != NULL) {
        TAILQ_REMOVE(&w->free_streams, s, link);
        stream_free(s);
    }
    w->nfree_streams = 0;
}
