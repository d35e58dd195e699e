/* The automatic rollback judge: windows aligned to Unix time, judged one
 * second (and a bit) after they end, from the statistics shards' seconds
 * rings; consecutive bad windows roll the route back through the control
 * function, once for the whole fleet (a Redis SET NX per route and
 * window). Control thread. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/control-int.h"
#include "turnout/control.h"
#include "turnout/judge.h"
#include "turnout/json.h"
#include "turnout/log.h"
#include "turnout/redis.h"
#include "turnout/route-t.h"
#include "turnout/stats.h"

#define TICK_PHASE_MS 300 /* after the second: late requests of it are counted */
/* A run of bad windows expires after this many windows (or seconds, the
 * longer) without a new bad one. */
#define RUN_EXPIRY_WINDOWS 10
#define RUN_EXPIRY_S 300

/* One route's judging, by route id. */
struct judge_route {
    struct tn_judge_window hist[TN_JUDGE_HISTORY]; /* ring, newest at head - 1 */
    size_t nhist, head;
    int64_t last_end;   /* the end of the last window judged */
    int64_t last_bad_end; /* the end of the last bad window */
    uint32_t bad_run;   /* consecutive bad windows */
    uint64_t verdicts[TN_VERDICT_COUNT];
    uint64_t rollbacks;     /* this node's */
    uint64_t last_rollback_ms;
    int locking;            /* waiting for the Redis lock */
};

struct tn_judge {
    struct tn_ctl *c;
    struct event *tick;
    struct judge_route *routes; /* [route id] */
    uint32_t nroutes;
};

/* A lock request in flight (the judge may be freed before the answer). */
struct lock_req {
    struct tn_judge *jd;
    uint32_t route_id;
    char detail[400];
    int64_t end;
};

static struct judge_route *route_of(struct tn_judge *jd, uint32_t id)
{
    if (id >= jd->nroutes) {
        struct judge_route *grown = realloc(jd->routes, (id + 1) * sizeof(*grown));

        if (!grown)
            return NULL;
        memset(grown + jd->nroutes, 0, (id + 1 - jd->nroutes) * sizeof(*grown));
        jd->routes = grown;
        jd->nroutes = id + 1;
    }
    return &jd->routes[id];
}

/* Sums seconds [start, end) of a route's side. */
static void sum_side(const struct tn_ctl *c, uint32_t route_id, int side, int64_t start,
                     int64_t end, struct tn_window_side *out)
{
    struct tn_stats_second sec[TN_STATS_SECONDS];
    size_t n = (size_t)(end - start), k, b;

    memset(out, 0, sizeof(*out));
    tn_stats_seconds(c->shards, c->nshards, route_id, side, start, n, sec);
    for (k = 0; k < n; k++) {
        out->requests += sec[k].attempts;
        out->errors += sec[k].errors;
        for (b = 0; b < TN_STATS_SEC_BUCKETS; b++)
            out->latency[b] += sec[k].latency[b];
    }
}

/* The figures of a window, for events and logs. */
static void describe(const struct tn_judge_window *w, const struct tn_conf_route *r, char *buf,
                     size_t len)
{
    snprintf(buf, len,
             "window %" PRId64 "..%" PRId64 ": %s (%s): %" PRIu64 " requests, %.2f%% errors, "
             "p99 %.1f ms; %s (%s): %" PRIu64 " requests, %.2f%% errors, p99 %.1f ms; "
             "z %.2f p %.3g; U %.0f z %.2f p %.3g; %s",
             w->start, w->end, "to", r->shift_to, w->to.requests, w->j.to_rate * 100,
             w->j.to_p99_ms, "from", r->shift_from, w->from.requests, w->j.from_rate * 100,
             w->j.from_p99_ms, w->j.z, w->j.z_p, w->j.u, w->j.u_z, w->j.u_p, w->j.why);
}

/* Rolls the route back (this node won the lock, or there is no Redis). */
static void act(struct tn_judge *jd, uint32_t route_id, const char *detail)
{
    struct tn_ctl *c = jd->c;
    struct judge_route *jr = route_of(jd, route_id);
    char msg[256];
    size_t i;

    for (i = 0; i < c->plan->nroutes; i++)
        if (c->plan->routes[i].id == route_id)
            break;
    if (i == c->plan->nroutes || !jr)
        return; /* gone with a reload */
    if (tn_ctl_auto_rollback(c, i, detail, msg, sizeof(msg)) == TN_OK) {
        jr->rollbacks++;
        jr->last_rollback_ms = tn_ctl_unix_ms();
    }
}

static void on_lock(void *arg, const struct redisReply *reply, const char *err)
{
    struct lock_req *lr = arg;
    struct tn_judge *jd = lr->jd;

    if (err && !strcmp(err, "shutting down")) {
        free(lr);
        return;
    }
    if (jd) {
        struct judge_route *jr = route_of(jd, lr->route_id);

        if (jr)
            jr->locking = 0;
        if (err) /* Redis went away meanwhile: this node acts alone */
            act(jd, lr->route_id, lr->detail);
        else if (reply->type == REDIS_REPLY_STATUS)
            act(jd, lr->route_id, lr->detail);
        else
            tn_log(TN_LOG_INFO, "auto-rollback: another node rolled route id %u back for the "
                                "window ending %" PRId64,
                   lr->route_id, lr->end);
    }
    free(lr);
}

/* Bad windows enough: take the fleet-wide lock for this window, then act. */
static void verdict_reached(struct tn_judge *jd, size_t i, const struct tn_judge_window *w)
{
    struct tn_ctl *c = jd->c;
    const struct tn_conf_route *r = c->plan->routes[i].conf;
    const struct tn_conf_auto_rollback *cfg = &c->plan->conf->rollback.autorb;
    uint32_t id = c->plan->routes[i].id;
    struct judge_route *jr = route_of(jd, id);
    struct lock_req *lr;
    char key[256], val[96], px[24];
    const char *argv[6];

    if (!jr || jr->locking)
        return;
    lr = calloc(1, sizeof(*lr));
    if (!lr)
        return;
    lr->jd = jd;
    lr->route_id = id;
    lr->end = w->end;
    describe(w, r, lr->detail, sizeof(lr->detail));
    if (!c->redis || !c->redis_up) {
        act(jd, id, lr->detail);
        free(lr);
        return;
    }
    snprintf(key, sizeof(key), "%sautorollback:%s", tn_redis_prefix(c->redis), r->name);
    snprintf(val, sizeof(val), "%s %" PRId64, c->node_id, w->end);
    snprintf(px, sizeof(px), "%u", cfg->window_ms);
    argv[0] = "SET", argv[1] = key, argv[2] = val, argv[3] = "NX", argv[4] = "PX", argv[5] = px;
    if (tn_redis_command(c->redis, 6, argv, NULL, on_lock, lr) != TN_OK) {
        act(jd, id, lr->detail);
        free(lr);
        return;
    }
    jr->locking = 1;
}

static void judge_route(struct tn_judge *jd, size_t i, int64_t now)
{
    struct tn_ctl *c = jd->c;
    const struct tn_conf_auto_rollback *cfg = &c->plan->conf->rollback.autorb;
    int64_t w = cfg->window_ms / 1000, end = now / w * w;
    uint32_t id = c->plan->routes[i].id;
    struct judge_route *jr = route_of(jd, id);
    struct tn_judge_window *win;
    enum tn_source src;

    if (!jr || end <= jr->last_end)
        return;
    jr->last_end = end;
    win = &jr->hist[jr->head];
    jr->head = (jr->head + 1) % TN_JUDGE_HISTORY;
    if (jr->nhist < TN_JUDGE_HISTORY)
        jr->nhist++;
    memset(win, 0, sizeof(*win));
    win->start = end - w;
    win->end = end;
    sum_side(c, id, 0, win->start, win->end, &win->from);
    sum_side(c, id, 1, win->start, win->end, &win->to);
    tn_judge_window(cfg, &win->from, &win->to, &win->j);
    jr->verdicts[win->j.verdict]++;
    /* an inconclusive window is no verdict: it neither extends nor breaks a
     * run, unless the run's last bad window is old (the evidence expired) */
    if (win->j.verdict == TN_VERDICT_BAD) {
        jr->bad_run++;
        jr->last_bad_end = end;
    } else if (win->j.verdict == TN_VERDICT_GOOD ||
               end - jr->last_bad_end > (RUN_EXPIRY_WINDOWS * w > RUN_EXPIRY_S
                                             ? RUN_EXPIRY_WINDOWS * w
                                             : RUN_EXPIRY_S)) {
        jr->bad_run = 0;
    }
    if (jr->bad_run < cfg->windows)
        return;
    jr->bad_run = 0;
    /* never raises; nothing to do at 0 unless a ramp would raise it */
    if (tn_ctl_percent(c, i, &src) == 0 && !c->routes[id].ramping)
        return;
    if (src == TN_SOURCE_AUTO_ROLLBACK && c->routes[id].ramping)
        return; /* already ramping down */
    verdict_reached(jd, i, win);
}

static void schedule(struct tn_judge *jd)
{
    uint64_t now = tn_ctl_unix_ms(), next = (now / 1000 + 1) * 1000 + TICK_PHASE_MS;
    struct timeval tv = {(time_t)((next - now) / 1000), (suseconds_t)((next - now) % 1000 * 1000)};

    evtimer_add(jd->tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct tn_judge *jd = arg;
    struct tn_ctl *c = jd->c;
    int64_t now = tn_stats_now_sec();
    size_t i;

    (void)fd;
    (void)what;
    if (c->plan->conf->rollback.autorb.enabled && c->plan->conf->rollback.autorb.window_ms >= 1000)
        for (i = 0; i < c->plan->nroutes; i++)
            if (c->plan->routes[i].conf->has_shift)
                judge_route(jd, i, now);
    schedule(jd);
}

struct tn_judge *tn_judge_new(struct tn_ctl *c)
{
    struct tn_judge *jd = tn_xcalloc(1, sizeof(*jd));

    jd->c = c;
    jd->tick = evtimer_new(c->base, on_tick, jd);
    if (!jd->tick)
        abort(); /* startup */
    schedule(jd);
    return jd;
}

void tn_judge_free(struct tn_judge *jd)
{
    if (!jd)
        return;
    event_free(jd->tick);
    free(jd->routes);
    free(jd);
}

/* ---- show rollback ---- */

static void side_json(struct evbuffer *out, const char *name, const struct tn_window_side *s,
                      double rate, double p99)
{
    evbuffer_add_printf(out, "\"%s\":{\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
                             ",\"error_rate\":%.6f,\"p99_ms\":",
                        name, s->requests, s->errors, rate);
    if (p99 < 0)
        evbuffer_add(out, "null", 4);
    else
        evbuffer_add_printf(out, "%.3f", p99);
    evbuffer_add(out, "}", 1);
}

/* A route's judging, or NULL when it was never judged. */
static const struct judge_route *judged(const struct tn_judge *jd, uint32_t id)
{
    return id < jd->nroutes ? &jd->routes[id] : NULL;
}

/* The k-th of the route's kept windows, oldest first. */
static const struct tn_judge_window *window_at(const struct judge_route *jr, size_t k)
{
    return &jr->hist[(jr->head + TN_JUDGE_HISTORY - jr->nhist + k) % TN_JUDGE_HISTORY];
}

static void route_json(const struct tn_judge *jd, size_t i, struct evbuffer *out)
{
    const struct tn_ctl *c = jd->c;
    const struct tn_conf_route *r = c->plan->routes[i].conf;
    const struct judge_route *jr = judged(jd, c->plan->routes[i].id);
    size_t k, n = jr ? jr->nhist : 0;

    evbuffer_add_printf(out, "{\"route\":");
    tn_json_str(out, r->name);
    evbuffer_add_printf(out, ",\"enabled\":%s,\"bad_run\":%u,\"rollbacks\":%" PRIu64
                             ",\"last_rollback_ms\":%" PRIu64 ",\"windows\":[",
                        c->plan->conf->rollback.autorb.enabled ? "true" : "false",
                        jr ? jr->bad_run : 0, jr ? jr->rollbacks : 0,
                        jr ? jr->last_rollback_ms : 0);
    for (k = 0; k < n; k++) { /* oldest first */
        const struct tn_judge_window *w = window_at(jr, k);

        evbuffer_add_printf(out, "%s{\"start\":%" PRId64 ",\"end\":%" PRId64 ",\"verdict\":\"%s\","
                                 "\"bad_errors\":%s,\"bad_latency\":%s,",
                            k ? "," : "", w->start, w->end, tn_verdict_name(w->j.verdict),
                            w->j.bad_errors ? "true" : "false",
                            w->j.bad_latency ? "true" : "false");
        side_json(out, "from", &w->from, w->j.from_rate, w->j.from_p99_ms);
        evbuffer_add(out, ",", 1);
        side_json(out, "to", &w->to, w->j.to_rate, w->j.to_p99_ms);
        evbuffer_add_printf(out, ",\"z\":%.4f,\"z_p\":%.6g,\"u\":%.1f,\"u_z\":%.4f,\"u_p\":%.6g,"
                                 "\"reason\":",
                            w->j.z, w->j.z_p, w->j.u, w->j.u_z, w->j.u_p);
        tn_json_str(out, w->j.why);
        evbuffer_add(out, "}", 1);
    }
    evbuffer_add(out, "]}", 2);
}

static void route_text(const struct tn_judge *jd, size_t i, struct evbuffer *out)
{
    const struct tn_ctl *c = jd->c;
    const struct tn_conf_route *r = c->plan->routes[i].conf;
    const struct judge_route *jr = judged(jd, c->plan->routes[i].id);
    size_t k, n = jr ? jr->nhist : 0;

    evbuffer_add_printf(out, "route %s (%s -> %s): auto-rollback %s, %u bad in a row, %" PRIu64
                             " rollbacks here\n",
                        r->name, r->shift_from, r->shift_to,
                        c->plan->conf->rollback.autorb.enabled ? "on" : "off",
                        jr ? jr->bad_run : 0, jr ? jr->rollbacks : 0);
    if (!n)
        return;
    evbuffer_add_printf(out, "  %-12s %-12s %8s %8s %9s %8s %8s %9s %7s %9s  %s\n", "window_end",
                        "verdict", "to_req", "to_err%", "to_p99ms", "from_req", "from_err%",
                        "from_p99", "z", "u_p", "reason");
    for (k = n; k-- > 0;) { /* newest first */
        const struct tn_judge_window *w = window_at(jr, k);

        evbuffer_add_printf(out, "  %-12" PRId64 " %-12s %8" PRIu64 " %8.2f %9.1f %8" PRIu64
                                 " %8.2f %9.1f %7.2f %9.2g  %s\n",
                            w->end, tn_verdict_name(w->j.verdict), w->to.requests,
                            w->j.to_rate * 100, w->j.to_p99_ms, w->from.requests,
                            w->j.from_rate * 100, w->j.from_p99_ms, w->j.z, w->j.u_p, w->j.why);
    }
}

int tn_judge_show(const struct tn_judge *jd, const char *route, int json, struct evbuffer *out)
{
    const struct tn_plan *p = jd->c->plan;
    size_t i, n = 0;

    if (route) {
        for (i = 0; i < p->nroutes; i++)
            if (p->routes[i].conf->has_shift && !strcmp(p->routes[i].conf->name, route))
                break;
        if (i == p->nroutes)
            return 0;
    }
    if (json)
        evbuffer_add(out, "[", 1);
    for (i = 0; i < p->nroutes; i++) {
        if (!p->routes[i].conf->has_shift || (route && strcmp(p->routes[i].conf->name, route)))
            continue;
        if (json) {
            if (n)
                evbuffer_add(out, ",", 1);
            route_json(jd, i, out);
        } else {
            route_text(jd, i, out);
        }
        n++;
    }
    if (json)
        evbuffer_add(out, "]\n", 2);
    return 1;
}

int tn_judge_counts(const struct tn_judge *jd, uint32_t route_id, uint64_t *verdicts,
                    uint64_t *rollbacks, uint64_t *last_rollback_ms)
{
    const struct judge_route *jr = judged(jd, route_id);
    size_t v;

    for (v = 0; v < TN_VERDICT_COUNT; v++)
        verdicts[v] = jr ? jr->verdicts[v] : 0;
    *rollbacks = jr ? jr->rollbacks : 0;
    *last_rollback_ms = jr ? jr->last_rollback_ms : 0;
    return jr != NULL;
}
