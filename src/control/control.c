/* The control plane's runtime model and its one control function,
 * commit(): every change (admin socket, Redis, ramp step, health check,
 * reload) ends there, which publishes a new overlay to the workers, bumps
 * the version, writes the state file, writes Redis (one MULTI, then a
 * PUBLISH; sync.c) and records an event. Also runs the ramp timer and
 * turns health observations into events. Control thread only. */
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/control-int.h"
#include "turnout/control.h"
#include "turnout/judge.h"
#include "turnout/health.h"
#include "turnout/ident.h"
#include "turnout/log.h"
#include "turnout/overlay.h"
#include "turnout/redis.h"
#include "turnout/route.h"
#include "turnout/setload.h"
#include "turnout/strset.h"
#include "config.h"
#include "turnout/geodb.h"

uint64_t tn_ctl_unix_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- the model ---- */

/* Grows the per-id arrays to the ids that exist now. */
void tn_ctl_fit_ids(struct tn_ctl *c)
{
    uint32_t nr = tn_ident_count(TN_IDENT_ROUTE), ns = tn_ident_count(TN_IDENT_SERVER);

    if (nr > c->nroutes) {
        c->routes = tn_xrealloc(c->routes, nr * sizeof(*c->routes));
        memset(c->routes + c->nroutes, 0, (nr - c->nroutes) * sizeof(*c->routes));
        c->nroutes = nr;
    }
    if (ns > c->nservers) {
        c->servers = tn_xrealloc(c->servers, ns * sizeof(*c->servers));
        memset(c->servers + c->nservers, 0, (ns - c->nservers) * sizeof(*c->servers));
        c->nservers = ns;
    }
    tn_passive_reserve(ns);
}

int tn_ctl_redis_offline(const struct tn_ctl *c)
{
    return c->redis && !c->redis_up;
}

int tn_ctl_route_index(const struct tn_ctl *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->plan->nroutes; i++)
        if (!strcmp(c->plan->conf->routes[i].name, name))
            return (int)i;
    return -1;
}

int tn_ctl_backend_up(void *ctx, int b)
{
    return !tn_ctl_backend_down(ctx, b);
}

/* Whether every server of backend b (plan index) is unable to take a request. */
int tn_ctl_backend_down(const struct tn_ctl *c, int b)
{
    const struct tn_conf_backend *be = &c->plan->conf->backends[b];
    uint64_t now = tn_now_ms();
    size_t s;

    for (s = 0; s < be->nservers; s++) {
        uint32_t id = c->plan->server_ids[b][s];
        const struct tn_ctl_server *cs = &c->servers[id];

        if (be->servers[s].weight && cs->state == TN_SERVER_READY && !cs->down &&
            !tn_passive_ejected(id, now))
            return 0;
    }
    return 1;
}

uint32_t tn_ctl_percent(const struct tn_ctl *c, size_t i, enum tn_source *src)
{
    const struct tn_plan_route *pr = &c->plan->routes[i];
    const struct tn_ctl_route *cr = &c->routes[pr->id];

    if (pr->conf->has_shift && tn_ctl_backend_down(c, pr->conf->to_idx)) {
        *src = TN_SOURCE_HEALTH;
        return 0;
    }
    if (cr->set) {
        *src = cr->ramping && cr->ramp.auto_rollback ? TN_SOURCE_AUTO_ROLLBACK
                                                     : (enum tn_source)cr->source;
        return cr->percent_x100;
    }
    *src = TN_SOURCE_CONFIG;
    return pr->percent_x100;
}

/* The percent a route id runs at, runtime or configured (plan index i). */
uint32_t tn_ctl_route_percent(const struct tn_ctl *c, size_t i)
{
    const struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];

    return cr->set ? cr->percent_x100 : c->plan->routes[i].percent_x100;
}

/* ---- pins: a sorted array ---- */

size_t tn_ctl_pin_pos(const struct tn_ctl *c, const char *key, int *found)
{
    size_t lo = 0, hi = c->npins;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(c->pins[mid].key, key);

        if (!cmp) {
            *found = 1;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

const struct tn_ctl_pin *tn_ctl_pin_find(const struct tn_ctl *c, const char *key)
{
    int found;
    size_t i = tn_ctl_pin_pos(c, key, &found);

    return found && c->pins[i].backend ? &c->pins[i] : NULL;
}

/* Sets (backend) or removes (NULL) key's pin; a removal made while Redis is
 * down stays as a tombstone until written. */
void tn_ctl_pin_put(struct tn_ctl *c, const char *key, const char *backend, int dirty)
{
    int found;
    size_t i = tn_ctl_pin_pos(c, key, &found);

    c->pins_changed = 1;
    if (found) {
        free(c->pins[i].backend);
        c->pins[i].backend = backend ? tn_xstrdup(backend) : NULL;
        c->pins[i].dirty = dirty;
        if (!backend && !dirty) {
            free(c->pins[i].key);
            memmove(&c->pins[i], &c->pins[i + 1], (c->npins - i - 1) * sizeof(*c->pins));
            c->npins--;
        }
        return;
    }
    if (!backend && !dirty)
        return;
    if (c->npins == c->pins_cap) {
        c->pins_cap = c->pins_cap ? c->pins_cap * 2 : 64;
        c->pins = tn_xrealloc(c->pins, c->pins_cap * sizeof(*c->pins));
    }
    memmove(&c->pins[i + 1], &c->pins[i], (c->npins - i) * sizeof(*c->pins));
    c->pins[i].key = tn_xstrdup(key);
    c->pins[i].backend = backend ? tn_xstrdup(backend) : NULL;
    c->pins[i].dirty = dirty;
    c->npins++;
}

void tn_ctl_pin_restore(struct tn_ctl *c, const char *key, const char *backend)
{
    tn_ctl_pin_put(c, key, backend, 0);
}

static void pins_clear(struct tn_ctl *c)
{
    size_t i;

    for (i = 0; i < c->npins; i++) {
        free(c->pins[i].key);
        free(c->pins[i].backend);
    }
    c->npins = 0;
    c->pins_changed = 1;
}

/* ---- publishing ---- */

static struct tn_pins *build_pins(const struct tn_ctl *c)
{
    const char **keys = tn_xcalloc(c->npins ? c->npins : 1, sizeof(*keys));
    uint32_t *ids = tn_xcalloc(c->npins ? c->npins : 1, sizeof(*ids));
    struct tn_pins *p;
    size_t i, n = 0;

    for (i = 0; i < c->npins; i++) {
        if (!c->pins[i].backend)
            continue;
        keys[n] = c->pins[i].key;
        ids[n++] = tn_ident_intern(TN_IDENT_BACKEND, c->pins[i].backend);
    }
    p = tn_pins_new(keys, ids, n);
    free(keys);
    free(ids);
    return p;
}

/* Builds the overlay from the model and hands it to the workers. */
void tn_ctl_publish(struct tn_ctl *c)
{
    struct tn_overlay *ov;
    uint32_t i;

    tn_ctl_fit_ids(c);
    ov = tn_overlay_new(c->nroutes, c->nservers);
    ov->version = c->version;
    for (i = 0; i < c->nroutes; i++) {
        if (c->routes[i].set) {
            ov->routes[i].percent_x100 = (int32_t)c->routes[i].percent_x100;
            ov->routes[i].source = c->routes[i].source;
        }
    }
    for (i = 0; i < c->nservers; i++) {
        ov->server_state[i] = c->servers[i].state;
        ov->server_down[i] = c->servers[i].down;
    }
    if (c->pins_changed || !c->pins_table) {
        tn_pins_unref(c->pins_table);
        c->pins_table = build_pins(c);
        c->pins_changed = 0;
    }
    tn_pins_unref(ov->pins);
    ov->pins = tn_pins_ref(c->pins_table);
#ifdef TN_WITH_GEO
    ov->geodb = tn_geodb_ref(c->geodb);
#endif
    if (c->nsets) {
        ov->sets = tn_xcalloc(c->nsets, sizeof(*ov->sets));
        for (i = 0; i < c->nsets; i++) {
            if (!c->sets[i].set)
                continue;
            ov->sets[ov->nsets].name = tn_xstrdup(c->sets[i].name);
            ov->sets[ov->nsets++].set = tn_strset_ref(c->sets[i].set);
        }
    }
    tn_overlay_unref(c->ov);
    c->ov = tn_overlay_ref(ov);
    c->hooks.publish(c->hooks.arg, ov);
}

void tn_ctl_save(struct tn_ctl *c)
{
    const char *why = NULL;

    if (!c->state_file)
        return;
    if (tn_statefile_write(c, c->state_file, &why) != TN_OK) {
        if (!c->state_file_failed)
            tn_log(TN_LOG_ERR, "state file %s: %s", c->state_file, why);
        c->state_file_failed = 1;
        return;
    }
    c->state_file_failed = 0;
}

/* ---- events ---- */

void tn_ctl_copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

void tn_ctl_event_add(struct tn_ctl *c, const char *who, const char *what, const char *from,
                   const char *to)
{
    struct tn_event *e;

    if (!c->events)
        c->events = tn_xcalloc(TN_CTL_EVENTS, sizeof(*c->events));
    e = &c->events[c->events_head];
    c->events_head = (c->events_head + 1) % TN_CTL_EVENTS;
    if (c->nevents < TN_CTL_EVENTS)
        c->nevents++;
    e->unix_ms = tn_ctl_unix_ms();
    e->version = c->version;
    tn_ctl_copy(e->who, sizeof(e->who), who);
    tn_ctl_copy(e->what, sizeof(e->what), what);
    tn_ctl_copy(e->from, sizeof(e->from), from);
    tn_ctl_copy(e->to, sizeof(e->to), to);
    e->detail[0] = '\0';
    tn_log(TN_LOG_INFO, "event v%" PRIu64 ": %s: %s: %s -> %s", e->version, e->who, e->what,
           e->from, e->to);
}

const struct tn_event *tn_ctl_event(const struct tn_ctl *c, size_t i)
{
    if (i >= c->nevents)
        return NULL;
    return &c->events[(c->events_head + TN_CTL_EVENTS - 1 - i) % TN_CTL_EVENTS];
}

/* The one control function. The model already holds the change. */
void tn_ctl_commit(struct tn_ctl *c, const struct tn_ctl_change *cm)
{
    c->version++; /* Redis's counter replaces it when the write returns */
    tn_ctl_publish(c);
    tn_ctl_sync_write(c, cm); /* before the fsync of the state file: the fleet first */
    tn_ctl_save(c);
    tn_ctl_event_add(c, cm->who, cm->what, cm->from, cm->to);
    if (cm->detail) {
        struct tn_event *e = &c->events[(c->events_head + TN_CTL_EVENTS - 1) % TN_CTL_EVENTS];

        tn_ctl_copy(e->detail, sizeof(e->detail), cm->detail);
        tn_log(TN_LOG_WARN, "%s: %s", cm->what, cm->detail);
    }
}

void tn_ctl_op(struct tn_ctl_change *cm, const char *hash, const char *field, const char *value)
{
    TN_BUG_ON(cm->nops >= TN_CTL_MAX_OPS);
    cm->ops[cm->nops++] = (struct tn_redis_op){hash, field, value};
    /* a weight's origin goes with it: cleared unless tn_ctl_op_source says */
    if (!strcmp(hash, "weights"))
        tn_ctl_op(cm, "sources", field, NULL);
}

void tn_ctl_op_source(struct tn_ctl_change *cm, const char *field, enum tn_source src)
{
    size_t i;

    for (i = cm->nops; i-- > 0;)
        if (!strcmp(cm->ops[i].hash, "sources") && !strcmp(cm->ops[i].field, field)) {
            cm->ops[i].value = src == TN_SOURCE_AUTO_ROLLBACK ? tn_source_name(src) : NULL;
            return;
        }
}

/* ---- changes ---- */

__attribute__((format(printf, 3, 4))) static int errf(char *msg, size_t len, const char *fmt,
                                                      ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return TN_ERR;
}

/* Finds a shifting route by name, or explains why not. */
static int shift_route(struct tn_ctl *c, const char *name, char *msg, size_t len)
{
    int i = tn_ctl_route_index(c, name);

    if (i < 0)
        return errf(msg, len, "no route named \"%s\"", name), -1;
    if (!c->plan->routes[i].conf->has_shift)
        return errf(msg, len, "route %s pins backend %s; it has no percent", name,
                    c->plan->routes[i].conf->backend),
               -1;
    return i;
}

/* Ends a ramp on route id (no commit): its Redis entry goes in cm. */
static void stop_ramp(struct tn_ctl *c, uint32_t id, struct tn_ctl_change *cm, const char *name)
{
    if (!c->routes[id].ramping)
        return;
    c->routes[id].ramping = 0;
    if (cm)
        tn_ctl_op(cm, "ramps", name, NULL);
}

void tn_ctl_set_route(struct tn_ctl *c, size_t i, uint32_t x100, enum tn_source src)
{
    struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];

    cr->set = 1;
    cr->percent_x100 = x100;
    cr->source = (uint8_t)src;
    cr->conf_x100 = c->plan->routes[i].percent_x100;
    cr->dirty = tn_ctl_redis_offline(c);
}

int tn_ctl_set_weight(struct tn_ctl *c, const char *route, uint32_t x100, enum tn_source src,
                      const char *who, char *msg, size_t len)
{
    char from[16], to[16], what[96];
    struct tn_ctl_change cm = {.who = who, .what = what, .from = from, .to = to, .message = "weights"};
    int i = shift_route(c, route, msg, len);
    uint32_t id;
    int had_ramp;

    if (i < 0)
        return TN_ERR;
    if (x100 > 10000)
        return errf(msg, len, "percent must be between 0 and 100");
    id = c->plan->routes[i].id;
    had_ramp = c->routes[id].ramping;
    tn_percent_str(tn_ctl_route_percent(c, (size_t)i), from, sizeof(from));
    tn_percent_str(x100, to, sizeof(to));
    snprintf(what, sizeof(what), "weight %s", route);
    stop_ramp(c, id, &cm, route);
    tn_ctl_set_route(c, (size_t)i, x100, src);
    tn_ctl_op(&cm, "weights", route, to);
    tn_ctl_commit(c, &cm);
    if (had_ramp)
        tn_ctl_reschedule_ramps(c);
    snprintf(msg, len, "weight %s: %s -> %s%s%s", route, from, to,
             had_ramp ? " (ramp cancelled)" : "",
             tn_ctl_redis_offline(c) ? " (redis down: this node only until it returns)" : "");
    return TN_OK;
}

int tn_ctl_ramp(struct tn_ctl *c, const char *route, uint32_t to_x100, uint64_t duration_ms,
                uint32_t step_x100, const char *who, char *msg, size_t len)
{
    char from[16], to[16], what[96], sched[256], detail[160];
    struct tn_ctl_change cm = {.who = who, .what = what, .from = from, .to = detail, .message = "ramps"};
    int i = shift_route(c, route, msg, len);
    struct tn_ctl_route *cr;
    uint32_t cur;

    if (i < 0)
        return TN_ERR;
    if (to_x100 > 10000)
        return errf(msg, len, "percent must be between 0 and 100");
    if (!duration_ms)
        return errf(msg, len, "the duration must be above 0");
    cr = &c->routes[c->plan->routes[i].id];
    cur = tn_ctl_route_percent(c, (size_t)i);
    if (cur == to_x100)
        return errf(msg, len, "route %s is already at %s", route, tn_percent_str(cur, to, sizeof(to)));
    tn_ramp_init(&cr->ramp, cur, to_x100, duration_ms, step_x100, tn_ctl_unix_ms(), c->node_id);
    cr->ramping = 1;
    tn_ctl_set_route(c, (size_t)i, cur, TN_SOURCE_RAMP);
    tn_percent_str(cur, from, sizeof(from));
    tn_percent_str(to_x100, to, sizeof(to));
    snprintf(what, sizeof(what), "ramp %s", route);
    snprintf(detail, sizeof(detail), "%s over %" PRIu64 " s, %u steps of %u.%02u every %" PRIu64
             " ms", to, duration_ms / 1000, tn_ramp_steps(&cr->ramp), cr->ramp.step_x100 / 100,
             cr->ramp.step_x100 % 100, tn_ramp_interval_ms(&cr->ramp));
    tn_ramp_encode(&cr->ramp, sched, sizeof(sched));
    tn_ctl_op(&cm, "ramps", route, sched);
    tn_ctl_op(&cm, "weights", route, from);
    tn_ctl_commit(c, &cm);
    tn_ctl_reschedule_ramps(c);
    snprintf(msg, len, "ramp %s: %s -> %s", route, from, detail);
    return TN_OK;
}

int tn_ctl_ramp_cancel(struct tn_ctl *c, const char *route, const char *who, char *msg,
                       size_t len)
{
    char at[16], what[96];
    struct tn_ctl_change cm = {.who = who, .what = what, .from = "ramping", .to = at, .message = "ramps"};
    int i = shift_route(c, route, msg, len);
    uint32_t id;

    if (i < 0)
        return TN_ERR;
    id = c->plan->routes[i].id;
    if (!c->routes[id].ramping)
        return errf(msg, len, "route %s has no ramp running", route);
    stop_ramp(c, id, &cm, route);
    tn_ctl_set_route(c, (size_t)i, c->routes[id].percent_x100, TN_SOURCE_ADMIN);
    tn_percent_str(c->routes[id].percent_x100, at, sizeof(at));
    snprintf(what, sizeof(what), "ramp %s cancelled", route);
    tn_ctl_op(&cm, "weights", route, at);
    tn_ctl_commit(c, &cm);
    tn_ctl_reschedule_ramps(c);
    snprintf(msg, len, "ramp %s cancelled at %s", route, at);
    return TN_OK;
}

int tn_ctl_rollback(struct tn_ctl *c, const char *route, enum tn_source src, const char *who,
                    char *msg, size_t len)
{
    size_t i, n = 0, off = 0;

    if (route) {
        if (shift_route(c, route, msg, len) < 0)
            return TN_ERR;
    }
    msg[0] = '\0';
    for (i = 0; i < c->plan->nroutes; i++) {
        const struct tn_conf_route *r = c->plan->routes[i].conf;
        uint32_t id = c->plan->routes[i].id;
        char from[16], what[96];
        struct tn_ctl_change cm = {.who = who, .what = what, .from = from, .to = "0.00",
                            .message = "weights"};

        if (!r->has_shift || (route && strcmp(r->name, route)))
            continue;
        if (!route && tn_ctl_route_percent(c, i) == 0 && !c->routes[id].ramping)
            continue;
        tn_percent_str(tn_ctl_route_percent(c, i), from, sizeof(from));
        snprintf(what, sizeof(what), "rollback %s", r->name);
        stop_ramp(c, id, &cm, r->name);
        tn_ctl_set_route(c, i, 0, src);
        tn_ctl_op(&cm, "weights", r->name, "0.00");
        tn_ctl_commit(c, &cm);
        if (off < len)
            off += (size_t)snprintf(msg + off, len - off, "%s%s: %s -> 0.00", n ? "; " : "",
                                    r->name, from);
        n++;
    }
    tn_ctl_reschedule_ramps(c);
    if (!n)
        snprintf(msg, len, "nothing to roll back: every route is at 0");
    else
        tn_log(TN_LOG_WARN, "rollback by %s: %s", who, msg);
    return TN_OK;
}

int tn_ctl_auto_rollback(struct tn_ctl *c, size_t i, const char *detail, char *msg, size_t len)
{
    const struct tn_conf_route *r = c->plan->routes[i].conf;
    const struct tn_conf_auto_rollback *cfg = &c->plan->conf->rollback.autorb;
    uint32_t id = c->plan->routes[i].id, cur = tn_ctl_route_percent(c, i);
    struct tn_ctl_route *cr = &c->routes[id];
    char from[16], to[64], what[96], sched[256];
    struct tn_ctl_change cm = {.who = "auto-rollback", .what = what, .from = from, .to = to,
                               .detail = detail, .message = "weights"};

    if (!r->has_shift)
        return errf(msg, len, "route %s pins a backend", r->name);
    tn_percent_str(cur, from, sizeof(from));
    snprintf(what, sizeof(what), "auto-rollback %s", r->name);
    if (cfg->ramp_down_ms && cur > 0) {
        /* a ramp down, for a legacy side that needs to warm up */
        tn_ramp_init(&cr->ramp, cur, 0, cfg->ramp_down_ms, 0, tn_ctl_unix_ms(), c->node_id);
        cr->ramp.auto_rollback = 1;
        cr->ramping = 1;
        tn_ctl_set_route(c, i, cur, TN_SOURCE_RAMP);
        snprintf(to, sizeof(to), "0.00 over %u s, %u steps", cfg->ramp_down_ms / 1000,
                 tn_ramp_steps(&cr->ramp));
        tn_ramp_encode(&cr->ramp, sched, sizeof(sched));
        tn_ctl_op(&cm, "ramps", r->name, sched);
        tn_ctl_op(&cm, "weights", r->name, from);
        tn_ctl_op_source(&cm, r->name, TN_SOURCE_AUTO_ROLLBACK);
        cm.message = "ramps";
    } else {
        snprintf(to, sizeof(to), "0.00");
        stop_ramp(c, id, &cm, r->name);
        tn_ctl_set_route(c, i, 0, TN_SOURCE_AUTO_ROLLBACK);
        tn_ctl_op(&cm, "weights", r->name, "0.00");
        tn_ctl_op_source(&cm, r->name, TN_SOURCE_AUTO_ROLLBACK);
    }
    tn_ctl_commit(c, &cm);
    tn_ctl_reschedule_ramps(c);
    snprintf(msg, len, "%s: %s -> %s", what, from, to);
    return TN_OK;
}

int tn_ctl_set_server(struct tn_ctl *c, const char *backend, const char *server,
                      enum tn_server_state st, const char *who, char *msg, size_t len)
{
    char name[200], what[240];
    struct tn_ctl_change cm = {.who = who, .what = what, .message = "servers"};
    int b = tn_conf_backend_index(c->plan->conf, backend);
    const struct tn_conf_backend *be;
    struct tn_ctl_server *cs;
    size_t s;
    uint32_t id;

    if (b < 0)
        return errf(msg, len, "no backend named \"%s\"", backend);
    be = &c->plan->conf->backends[b];
    for (s = 0; s < be->nservers; s++)
        if (!strcmp(be->servers[s].name, server))
            break;
    if (s == be->nservers)
        return errf(msg, len, "backend %s has no server named \"%s\"", backend, server);
    id = c->plan->server_ids[b][s];
    cs = &c->servers[id];
    snprintf(name, sizeof(name), "%s/%s", backend, server);
    snprintf(what, sizeof(what), "server %s state", name);
    cm.from = tn_server_state_name((enum tn_server_state)cs->state);
    cm.to = tn_server_state_name(st);
    snprintf(msg, len, "server %s: %s -> %s", name, cm.from, cm.to);
    cs->state = (uint8_t)st;
    cs->dirty = (uint8_t)tn_ctl_redis_offline(c);
    if (st == TN_SERVER_READY)
        tn_passive_clear(id); /* an operator says it is fine: forget its failures */
    tn_ctl_op(&cm, "servers", name, st == TN_SERVER_READY ? NULL : cm.to);
    tn_ctl_commit(c, &cm);
    return TN_OK;
}

int tn_ctl_pin(struct tn_ctl *c, const char *key, const char *backend, const char *who, char *msg,
               size_t len)
{
    char what[300];
    const struct tn_ctl_pin *old = tn_ctl_pin_find(c, key);
    char from[80];
    struct tn_ctl_change cm = {.who = who, .what = what, .from = from, .message = "pins"};

    if (backend && tn_conf_backend_index(c->plan->conf, backend) < 0)
        return errf(msg, len, "no backend named \"%s\"", backend);
    tn_ctl_copy(from, sizeof(from), old ? old->backend : "none");
    cm.to = backend ? backend : "none";
    snprintf(what, sizeof(what), "pin %s", key);
    snprintf(msg, len, "pin %s: %s -> %s", key, from, cm.to);
    if (!old && !backend)
        return TN_OK; /* nothing to do */
    tn_ctl_pin_put(c, key, backend, tn_ctl_redis_offline(c));
    tn_ctl_op(&cm, "pins", key, backend);
    tn_ctl_commit(c, &cm);
    return TN_OK;
}

/* ---- ramps ---- */

/* Moves every running ramp to its step for now; the origin node writes each
 * step to Redis, every node records it. */
static void step_ramps(struct tn_ctl *c)
{
    uint64_t now = tn_ctl_unix_ms();
    size_t i;

    for (i = 0; i < c->plan->nroutes; i++) {
        const char *name = c->plan->routes[i].conf->name;
        struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];
        uint32_t p;
        int done, mine;
        char from[16], to[16], what[96];
        struct tn_ctl_change cm = {.who = "ramp", .what = what, .from = from, .to = to};

        if (!cr->ramping || !c->plan->routes[i].conf->has_shift)
            continue;
        p = tn_ramp_percent(&cr->ramp, now);
        done = !tn_ramp_next_ms(&cr->ramp, now);
        if (p == cr->percent_x100 && !done)
            continue;
        mine = !strcmp(cr->ramp.origin, c->node_id);
        tn_percent_str(cr->percent_x100, from, sizeof(from));
        tn_percent_str(p, to, sizeof(to));
        snprintf(what, sizeof(what), done ? "ramp %s done" : "ramp %s step", name);
        if (mine) {
            cm.message = done ? "ramps" : "weights";
            tn_ctl_op(&cm, "weights", name, to);
            if (cr->ramp.auto_rollback)
                tn_ctl_op_source(&cm, name, TN_SOURCE_AUTO_ROLLBACK);
            if (done)
                tn_ctl_op(&cm, "ramps", name, NULL);
        }
        if (done) {
            cr->ramping = 0;
            if (cr->ramp.auto_rollback)
                cr->source = TN_SOURCE_AUTO_ROLLBACK;
        }
        cr->percent_x100 = p;
        cr->set = 1;
        cr->source = TN_SOURCE_RAMP;
        tn_ctl_commit(c, &cm);
    }
}

void tn_ctl_reschedule_ramps(struct tn_ctl *c)
{
    uint64_t now = tn_ctl_unix_ms(), next = 0;
    size_t i;

    for (i = 0; i < c->plan->nroutes; i++) {
        const struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];
        uint64_t t;

        if (!cr->ramping)
            continue;
        t = tn_ramp_next_ms(&cr->ramp, now);
        if (!t)
            t = now; /* over: settle it now */
        if (!next || t < next)
            next = t;
    }
    event_del(c->ramp_ev);
    if (next) {
        uint64_t d = next > now ? next - now : 0;
        struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};

        event_add(c->ramp_ev, &tv);
    }
}

static void on_ramp_timer(evutil_socket_t fd, short what, void *arg)
{
    struct tn_ctl *c = arg;

    (void)fd;
    (void)what;
    step_ramps(c);
    tn_ctl_reschedule_ramps(c);
}

int tn_ctl_server_ejected(const struct tn_ctl *c, int backend, int server, uint64_t *until_ms)
{
    struct tn_passive_view v;

    tn_passive_get(c->plan->server_ids[backend][server], &v);
    *until_ms = v.until_ms;
    return tn_passive_ejected(c->plan->server_ids[backend][server], tn_now_ms());
}

/* ---- lifecycle ---- */

static void default_node_id(struct tn_ctl *c)
{
    const struct tn_conf *conf = c->plan->conf;
    char host[64] = "turnout";
    const char *port = "0", *colon;

    if (conf->node_id) {
        tn_ctl_copy(c->node_id, sizeof(c->node_id), conf->node_id);
        return;
    }
    gethostname(host, sizeof(host) - 1);
    if (conf->nlistens && (colon = strrchr(conf->listens[0].addr.text, ':')))
        port = colon + 1;
    snprintf(c->node_id, sizeof(c->node_id), "%.40s-%s", host, port);
}

struct tn_ctl *tn_ctl_new(struct event_base *base, struct tn_plan *plan,
                          const struct tn_ctl_hooks *hooks)
{
    struct tn_ctl *c = tn_xcalloc(1, sizeof(*c));

    c->base = base;
    c->plan = plan;
    c->hooks = *hooks;
    c->started_ms = tn_ctl_unix_ms();
    c->generation = 1;
    default_node_id(c);
    tn_ctl_fit_ids(c);
    c->ramp_ev = evtimer_new(base, on_ramp_timer, c);
    c->tick_ev = event_new(base, -1, EV_PERSIST, tn_ctl_on_tick, c);
    if (plan->conf->state_file)
        c->state_file = tn_xstrdup(plan->conf->state_file);
    return c;
}

void tn_ctl_start(struct tn_ctl *c)
{
    struct timeval half = {0, 500 * 1000};
    char why[256];

    tn_ctl_adopt_geodb(c);
    if (c->state_file && tn_statefile_load(c, c->state_file, why, sizeof(why)) != TN_OK)
        tn_log(TN_LOG_WARN, "state file %s: %s; starting from the configuration", c->state_file,
               why);
    tn_ctl_publish(c);
    tn_ctl_reschedule_ramps(c);
    event_add(c->tick_ev, &half);
    c->health = tn_health_new(c->base, tn_ctl_on_health, c);
    tn_health_configure(c->health, c->plan);
    tn_ctl_sync_start(c);
    c->judge = tn_judge_new(c);
}

void tn_ctl_set_plan(struct tn_ctl *c, struct tn_plan *plan)
{
    struct tn_plan *old = c->plan;
    int redis_same = tn_ctl_sync_same(&old->conf->redis, &plan->conf->redis);
    size_t i;

    c->plan = plan;
    c->generation++;
    tn_ctl_fit_ids(c);
    for (i = 0; i < plan->nroutes; i++) {
        struct tn_ctl_route *cr = &c->routes[plan->routes[i].id];
        const char *name = plan->routes[i].conf->name;
        char a[16], b[16], what[96];
        struct tn_ctl_change cm = {.who = "reload", .what = what, .from = a, .to = b,
                            .message = "weights"};

        if (!cr->set || cr->conf_x100 == plan->routes[i].percent_x100)
            continue;
        /* the file changed this route's percent: the file wins */
        tn_percent_str(cr->percent_x100, a, sizeof(a));
        tn_percent_str(plan->routes[i].percent_x100, b, sizeof(b));
        snprintf(what, sizeof(what), "weight %s (the file changed it)", name);
        cr->set = 0;
        stop_ramp(c, plan->routes[i].id, &cm, name);
        tn_ctl_op(&cm, "weights", name, NULL);
        tn_ctl_commit(c, &cm);
    }
    tn_health_configure(c->health, plan);
    tn_ctl_adopt_geodb(c);
    if (!redis_same) {
        tn_setload_free(c->setload); /* before its client */
        c->setload = NULL;
        tn_redis_free(c->redis);
        c->redis = NULL;
        c->redis_up = 0;
        c->writes_in_flight = 0;
        tn_ctl_sync_start(c);
    } else if (c->redis_up) {
        tn_ctl_sets_reload(c); /* segments the new file added */
    }
    free(c->state_file);
    c->state_file = plan->conf->state_file ? tn_xstrdup(plan->conf->state_file) : NULL;
    tn_plan_unref(old);
    tn_ctl_publish(c);
    tn_ctl_reschedule_ramps(c);
    tn_ctl_event_add(c, "reload", "configuration", "", "plan in force");
}

void tn_ctl_free(struct tn_ctl *c)
{
    if (!c)
        return;
    tn_ctl_sets_free(c); /* the loader before its client */
    tn_redis_free(c->redis); /* before the judge: its lock callbacks run here */
    tn_judge_free(c->judge);
#ifdef TN_WITH_GEO
    tn_geodb_unref(c->geodb);
#endif
    tn_health_free(c->health);
    if (c->ramp_ev)
        event_free(c->ramp_ev);
    if (c->tick_ev)
        event_free(c->tick_ev);
    pins_clear(c);
    free(c->pins);
    tn_pins_unref(c->pins_table);
    tn_overlay_unref(c->ov);
    free(c->shards);
    free(c->routes);
    free(c->servers);
    free(c->events);
    free(c->fleet);
    free(c->state_file);
    tn_plan_unref(c->plan);
    free(c);
}
