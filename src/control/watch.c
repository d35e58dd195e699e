/* Watching the world for the control plane: active health check results
 * (a commit each), and twice a second passive ejections and routes whose
 * "to" is entirely down (events), a replaced GeoIP database file (a new
 * overlay) and the periodic reload of segment sets. Control thread. */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/control-int.h"
#include "turnout/control.h"
#include "turnout/geodb.h"
#include "turnout/health.h"
#include "turnout/ident.h"
#include "turnout/log.h"
#include "turnout/route.h"

void tn_ctl_on_health(void *arg, uint32_t id, enum tn_health_state st, const char *why)
{
    struct tn_ctl *c = arg;
    const char *name = tn_ident_name(TN_IDENT_SERVER, id);
    char what[200];
    struct tn_ctl_change cm = {.who = "health", .what = what, .from = "", .to = why};

    tn_ctl_fit_ids(c);
    if (id >= c->nservers)
        return;
    if (c->servers[id].down == (st == TN_HEALTH_DOWN))
        return; /* no change for routing (e.g. a check removed from an up server) */
    c->servers[id].down = st == TN_HEALTH_DOWN;
    snprintf(what, sizeof(what), "server %s %s", name ? name : "?",
             st == TN_HEALTH_DOWN ? "down" : st == TN_HEALTH_UP ? "up" : "no longer checked");
    cm.from = st == TN_HEALTH_DOWN ? "up" : "down";
    tn_ctl_commit(c, &cm);
}

#define SETS_RELOAD_MS (5 * 60 * 1000) /* segment sets are read again this often */

/* The GeoIP database of plan, or NULL (the geo module keeps it). */
struct tn_geodb *tn_geo_plan_db(const struct tn_plan *plan);

/* Takes the database the plan opened as the one in force. */
void tn_ctl_adopt_geodb(struct tn_ctl *c)
{
#ifdef TN_WITH_GEO
    struct tn_geodb *db = tn_geo_plan_db(c->plan);

    if (db == c->geodb)
        return;
    tn_geodb_unref(c->geodb);
    c->geodb = tn_geodb_ref(db);
    c->geodb_failed = 0;
#else
    (void)c;
#endif
}

/* A new file at the database's path replaces it, without a reload; a file
 * that does not open (still being written) is tried again later. */
static void watch_geodb(struct tn_ctl *c)
{
#ifdef TN_WITH_GEO
    struct tn_geodb *db;
    char *err = NULL;

    if (!c->geodb || !tn_geodb_changed(c->geodb))
        return;
    db = tn_geodb_open(tn_geodb_path(c->geodb), &err);
    if (!db) {
        if (!c->geodb_failed)
            tn_log(TN_LOG_WARN, "geoip: %s; the database in force stays", err ? err : "?");
        c->geodb_failed = 1;
        free(err);
        return;
    }
    tn_geodb_unref(c->geodb);
    c->geodb = db;
    c->geodb_failed = 0;
    tn_ctl_publish(c);
    tn_ctl_event_add(c, "geoip", "geoip database", "replaced", tn_geodb_path(db));
#else
    (void)c;
#endif
}

/* Twice a second: passive ejections and routes whose "to" is entirely down
 * become events (the workers act on them by themselves). */
void tn_ctl_on_tick(evutil_socket_t fd, short what_, void *arg)
{
    struct tn_ctl *c = arg;
    uint64_t now = tn_now_ms();
    size_t b, s, i;

    (void)fd;
    (void)what_;
    watch_geodb(c);
    if (c->redis_up && c->nsets && now - c->sets_reloaded_ms >= SETS_RELOAD_MS)
        tn_ctl_sets_reload(c);
    for (b = 0; b < c->plan->conf->nbackends; b++) {
        const struct tn_conf_backend *be = &c->plan->conf->backends[b];

        for (s = 0; s < be->nservers; s++) {
            uint32_t id = c->plan->server_ids[b][s];
            int ej = tn_passive_ejected(id, now);
            char what[200];

            if (ej == c->servers[id].ejected)
                continue;
            c->servers[id].ejected = (uint8_t)ej;
            snprintf(what, sizeof(what), "server %s/%s passive health", be->name,
                     be->servers[s].name);
            tn_ctl_event_add(c, "health", what, ej ? "in" : "ejected",
                   ej ? "ejected (consecutive failures)" : "back in");
        }
    }
    for (i = 0; i < c->plan->nroutes; i++) {
        const struct tn_conf_route *r = c->plan->routes[i].conf;
        struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];
        int down;
        char what[200], to[200];

        if (!r->has_shift)
            continue;
        down = tn_ctl_backend_down(c, r->to_idx);
        if (down == (int)cr->to_down)
            continue;
        cr->to_down = (unsigned)down;
        snprintf(what, sizeof(what), "route %s", r->name);
        snprintf(to, sizeof(to), down ? "every server of %s is down: users go to %s"
                                      : "%s is up again: the percent applies",
                 r->shift_to, r->shift_from);
        tn_ctl_event_add(c, "health", what, down ? "normal" : "to down", to);
    }
}

