/* Fleet sync: what the control plane writes to Redis and how it applies
 * what Redis says (a full read after every `changes` message, every resync
 * and every reconnect). Redis's state replaces the node's runtime state,
 * except items changed here while Redis was down, which are written first
 * when it returns. Control thread only. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/control-int.h"
#include "turnout/control.h"
#include "turnout/log.h"
#include "turnout/overlay.h"
#include "turnout/ramp.h"
#include "turnout/redis.h"
#include "turnout/route.h"
#include "turnout/setload.h"
#include "turnout/strset.h"

static void on_written(void *arg, uint64_t version, const char *err)
{
    struct tn_ctl *c = arg;

    if (c->writes_in_flight)
        c->writes_in_flight--;
    if (!version) {
        tn_log(TN_LOG_WARN, "redis: a change was not written: %s", err ? err : "?");
    } else if (version > c->version) {
        c->version = version;
        tn_redis_report(c->redis, version);
    }
    if (!c->writes_in_flight && c->resync_after_writes) {
        c->resync_after_writes = 0;
        tn_redis_resync(c->redis);
    }
}

/* Writes cm's ops, version bump and event to Redis; 0 when not written. */
int tn_ctl_sync_write(struct tn_ctl *c, const struct tn_ctl_change *cm)
{
    char ts[24], ver[24];
    const char *ev[] = {"time", ts,       "node", c->node_id, "who",  cm->who, "what",
                        cm->what, "from", cm->from, "to", cm->to,   "base", ver,     "detail",
                        cm->detail, NULL};
    struct tn_redis_change ch = {cm->ops, cm->nops, ev, cm->message};

    if (!c->redis || !c->redis_up || !cm->message)
        return 0;
    if (!cm->detail)
        ev[14] = NULL; /* no "detail" field */
    snprintf(ts, sizeof(ts), "%" PRIu64, tn_ctl_unix_ms());
    snprintf(ver, sizeof(ver), "%" PRIu64, c->version);
    if (tn_redis_write(c->redis, &ch, on_written, c) != TN_OK)
        return 0;
    c->writes_in_flight++;
    return 1;
}

static const struct tn_redis_kv *kv_find(const struct tn_redis_kv *kv, size_t n, const char *k)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!strcmp(kv[i].key, k))
            return &kv[i];
    return NULL;
}

/* Applies one route's Redis weight and ramp; returns 1 when it changed. */
static int apply_route(struct tn_ctl *c, size_t i, const struct tn_redis_snapshot *sn)
{
    const char *name = c->plan->routes[i].conf->name;
    struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];
    const struct tn_redis_kv *w = kv_find(sn->weights, sn->nweights, name);
    const struct tn_redis_kv *r = kv_find(sn->ramps, sn->nramps, name);
    uint32_t before = tn_ctl_route_percent(c, i), x100;
    char a[16], b[16], what[96];
    struct tn_ramp ramp;

    snprintf(what, sizeof(what), "weight %s", name);
    if (r && tn_ramp_decode(r->value, &ramp) != TN_OK) {
        tn_ctl_event_add(c, "redis", what, "ignored", "unparsable ramp in redis");
        r = NULL;
    }
    if (r) {
        int changed = !cr->ramping || memcmp(&cr->ramp, &ramp, sizeof(ramp));

        cr->ramp = ramp;
        cr->ramping = 1;
        x100 = tn_ramp_percent(&ramp, tn_ctl_unix_ms());
        tn_ctl_set_route(c, i, x100, TN_SOURCE_RAMP);
        cr->dirty = 0;
        if (changed)
            tn_ctl_event_add(c, "redis", what, tn_percent_str(before, a, sizeof(a)), "ramp from redis");
        return changed || x100 != before;
    }
    cr->ramping = 0;
    if (w && tn_conf_parse_percent(w->value, &x100) != TN_OK) {
        tn_ctl_event_add(c, "redis", what, "ignored", "unparsable percent in redis");
        tn_log(TN_LOG_WARN, "redis: weights %s = \"%.40s\" is not a percent; ignored", name,
               w->value);
        return 0;
    }
    if (w) {
        const struct tn_redis_kv *src = kv_find(sn->sources, sn->nsources, name);
        enum tn_source s = src && !strcmp(src->value, tn_source_name(TN_SOURCE_AUTO_ROLLBACK))
                               ? TN_SOURCE_AUTO_ROLLBACK
                               : TN_SOURCE_REDIS;

        if (cr->set && cr->percent_x100 == x100) {
            /* the same percent (our own write read back, or another node's
             * equal one): keep our source, unless auto-rollback is on
             * either side of it */
            if (cr->source == s ||
                (s != TN_SOURCE_AUTO_ROLLBACK && cr->source != TN_SOURCE_AUTO_ROLLBACK))
                return 0;
            cr->source = (uint8_t)s;
            return 1;
        }
        tn_ctl_set_route(c, i, x100, s);
        cr->dirty = 0;
        tn_ctl_event_add(c, "redis", what, tn_percent_str(before, a, sizeof(a)), tn_percent_str(x100, b, sizeof(b)));
        return 1;
    }
    if (!cr->set)
        return 0;
    cr->set = 0; /* gone from Redis: the file's percent again */
    tn_ctl_event_add(c, "redis", what, tn_percent_str(before, a, sizeof(a)),
           tn_percent_str(c->plan->routes[i].percent_x100, b, sizeof(b)));
    return 1;
}

static int apply_servers(struct tn_ctl *c, const struct tn_redis_snapshot *sn)
{
    char name[200], what[240];
    int changed = 0;
    size_t b, s;

    for (b = 0; b < c->plan->conf->nbackends; b++) {
        const struct tn_conf_backend *be = &c->plan->conf->backends[b];

        for (s = 0; s < be->nservers; s++) {
            struct tn_ctl_server *cs = &c->servers[c->plan->server_ids[b][s]];
            const struct tn_redis_kv *kv;
            int st = TN_SERVER_READY;

            if (cs->dirty)
                continue;
            snprintf(name, sizeof(name), "%s/%s", be->name, be->servers[s].name);
            snprintf(what, sizeof(what), "server %s state", name);
            kv = kv_find(sn->servers, sn->nservers, name);
            if (kv && (st = tn_server_state_parse(kv->value)) < 0) {
                tn_ctl_event_add(c, "redis", what, "ignored", "unparsable state in redis");
                continue;
            }
            if (st == cs->state)
                continue;
            tn_ctl_event_add(c, "redis", what, tn_server_state_name((enum tn_server_state)cs->state),
                   tn_server_state_name((enum tn_server_state)st));
            cs->state = (uint8_t)st;
            changed = 1;
        }
    }
    return changed;
}

static int apply_pins(struct tn_ctl *c, const struct tn_redis_snapshot *sn)
{
    int changed = 0;
    size_t i;

    /* drop the pins Redis no longer has (except ours not written yet) */
    for (i = c->npins; i-- > 0;) {
        if (c->pins[i].dirty || kv_find(sn->pins, sn->npins, c->pins[i].key))
            continue;
        tn_ctl_pin_put(c, c->pins[i].key, NULL, 0);
        changed = 1;
    }
    for (i = 0; i < sn->npins; i++) {
        int found;
        size_t at = tn_ctl_pin_pos(c, sn->pins[i].key, &found);

        if (found && (c->pins[at].dirty ||
                      (c->pins[at].backend && !strcmp(c->pins[at].backend, sn->pins[i].value))))
            continue;
        tn_ctl_pin_put(c, sn->pins[i].key, sn->pins[i].value, 0);
        changed = 1;
    }
    if (changed)
        tn_ctl_event_add(c, "redis", "pins", "", "updated from redis");
    return changed;
}

/* Keeps the fleet's applied versions (the `nodes` hash) for the stats. */
static void keep_fleet(struct tn_ctl *c, const struct tn_redis_snapshot *sn)
{
    struct tn_ctl_node *f = sn->nnodes ? calloc(sn->nnodes, sizeof(*f)) : NULL;
    size_t i, n = 0;

    if (sn->nnodes && !f)
        return; /* the old view stays */
    for (i = 0; i < sn->nnodes; i++) {
        unsigned long long v, seen;

        if (sscanf(sn->nodes[i].value, "{\"version\":%llu,\"seen\":%llu}", &v, &seen) != 2)
            continue;
        snprintf(f[n].id, sizeof(f[n].id), "%s", sn->nodes[i].key);
        f[n].version = v;
        f[n].seen_ms = seen;
        n++;
    }
    free(c->fleet);
    c->fleet = f;
    c->nfleet = n;
}

static void on_snapshot(void *arg, const struct tn_redis_snapshot *sn)
{
    struct tn_ctl *c = arg;
    int changed = 0;
    size_t i;

    keep_fleet(c, sn);
    if (c->writes_in_flight) { /* it may predate our own write: read again after it */
        c->resync_after_writes = 1;
        return;
    }
    tn_ctl_fit_ids(c);
    if (sn->version != c->version) { /* first: the events below carry it */
        c->version = sn->version;
        changed = 1;
    }
    for (i = 0; i < c->plan->nroutes; i++)
        if (c->plan->routes[i].conf->has_shift && !c->routes[c->plan->routes[i].id].dirty)
            changed |= apply_route(c, i, sn);
    changed |= apply_servers(c, sn);
    changed |= apply_pins(c, sn);
    if (changed) {
        tn_ctl_publish(c);
        tn_ctl_save(c);
        tn_ctl_reschedule_ramps(c);
    }
    tn_redis_report(c->redis, c->version);
}

/* Redis came back: write what changed here while it was away. */
static void push_dirty(struct tn_ctl *c)
{
    size_t i, b, s;
    char buf[256];

    for (i = 0; i < c->plan->nroutes; i++) {
        struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];
        const char *name = c->plan->routes[i].conf->name;
        struct tn_ctl_change cm = {.who = "sync", .what = name, .from = "", .to = "",
                                   .message = "all"};
        char sched[256];

        if (!cr->dirty)
            continue;
        cr->dirty = 0;
        tn_ctl_op(&cm, "weights", name,
                  cr->set ? tn_percent_str(cr->percent_x100, buf, sizeof(buf)) : NULL);
        if (cr->set)
            tn_ctl_op_source(&cm, name, (enum tn_source)cr->source);
        if (cr->ramping)
            tn_ramp_encode(&cr->ramp, sched, sizeof(sched));
        tn_ctl_op(&cm, "ramps", name, cr->ramping ? sched : NULL);
        tn_ctl_sync_write(c, &cm);
    }
    for (b = 0; b < c->plan->conf->nbackends; b++) {
        const struct tn_conf_backend *be = &c->plan->conf->backends[b];

        for (s = 0; s < be->nservers; s++) {
            struct tn_ctl_server *cs = &c->servers[c->plan->server_ids[b][s]];
            struct tn_ctl_change cm = {.who = "sync", .what = buf, .from = "", .to = "",
                                .message = "all"};

            if (!cs->dirty)
                continue;
            cs->dirty = 0;
            snprintf(buf, sizeof(buf), "%s/%s", be->name, be->servers[s].name);
            tn_ctl_op(&cm, "servers", buf,
               cs->state == TN_SERVER_READY ? NULL
                                            : tn_server_state_name((enum tn_server_state)cs->state));
            tn_ctl_sync_write(c, &cm);
        }
    }
    for (i = c->npins; i-- > 0;) {
        struct tn_ctl_change cm = {.who = "sync", .what = "pin", .from = "", .to = "", .message = "all"};

        if (!c->pins[i].dirty)
            continue;
        tn_ctl_op(&cm, "pins", c->pins[i].key, c->pins[i].backend);
        tn_ctl_sync_write(c, &cm);
        if (c->pins[i].backend)
            c->pins[i].dirty = 0;
        else
            tn_ctl_pin_put(c, c->pins[i].key, NULL, 0);
    }
}

static void on_link(void *arg, enum tn_redis_link link, const char *why)
{
    struct tn_ctl *c = arg;
    int up = link == TN_REDIS_UP;

    tn_ctl_copy(c->redis_why, sizeof(c->redis_why), why);
    if (up == c->redis_up)
        return;
    c->redis_up = up;
    tn_ctl_event_add(c, "redis", "redis link", up ? "down" : "up", up ? "up" : (why ? why : "down"));
    if (up) {
        push_dirty(c);
        tn_redis_report(c->redis, c->version);
        tn_ctl_sets_reload(c);
    }
}

const char *tn_ctl_redis_describe(const struct tn_ctl *c, char *buf, size_t len)
{
    if (!c->redis) {
        snprintf(buf, len, "off");
        return buf;
    }
    return tn_redis_describe(c->redis, buf, len);
}

/* ---- segment sets ---- */

static struct tn_ctl_set *set_find(struct tn_ctl *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->nsets; i++)
        if (!strcmp(c->sets[i].name, name))
            return &c->sets[i];
    return NULL;
}

/* Makes sure every redis_set segment of the plan has an entry. */
static void sets_fit(struct tn_ctl *c)
{
    const struct tn_conf *conf = c->plan->conf;
    size_t i;

    for (i = 0; i < conf->nsegments; i++) {
        const struct tn_conf_segment *sg = &conf->segments[i];

        if (sg->kind != TN_SEGMENT_REDIS_SET || set_find(c, sg->source))
            continue;
        c->sets = tn_xrealloc(c->sets, (c->nsets + 1) * sizeof(*c->sets));
        memset(&c->sets[c->nsets], 0, sizeof(*c->sets));
        c->sets[c->nsets++].name = tn_xstrdup(sg->source);
    }
}

static void set_load(struct tn_ctl *c, const char *name)
{
    char key[256];

    if (!c->setload || !set_find(c, name))
        return;
    snprintf(key, sizeof(key), "turnout:%s:segment:%s", c->plan->conf->redis.namespace_, name);
    if (tn_setload_start(c->setload, name, key) != TN_OK)
        tn_log(TN_LOG_WARN, "segment set %s: cannot load now (redis not up)", name);
}

void tn_ctl_sets_reload(struct tn_ctl *c)
{
    size_t i;

    sets_fit(c);
    for (i = 0; i < c->nsets; i++)
        set_load(c, c->sets[i].name);
    c->sets_reloaded_ms = tn_now_ms();
}

static void on_set_loaded(void *arg, const char *name, struct tn_strset *set, const char *err)
{
    struct tn_ctl *c = arg;
    struct tn_ctl_set *cs = set_find(c, name);
    char what[200], to[200];

    snprintf(what, sizeof(what), "segment set %s", name);
    if (!cs) {
        tn_strset_unref(set);
        return;
    }
    if (!set) { /* the last loaded set stays in force */
        tn_ctl_copy(cs->error, sizeof(cs->error), err);
        tn_log(TN_LOG_WARN, "segment set %s: load failed: %s; the last one stays", name,
               err ? err : "?");
        return;
    }
    snprintf(to, sizeof(to), "%zu members", tn_strset_count(set));
    tn_ctl_event_add(c, "redis", what,
                     cs->set ? "reloaded" : "loaded", to);
    tn_strset_unref(cs->set);
    cs->set = set;
    cs->loaded_ms = tn_ctl_unix_ms();
    cs->error[0] = '\0';
    tn_ctl_publish(c);
}

static void on_message(void *arg, const char *payload)
{
    struct tn_ctl *c = arg;

    if (!strncmp(payload, "segment:", 8))
        set_load(c, payload + 8);
}

void tn_ctl_sets_free(struct tn_ctl *c)
{
    size_t i;

    tn_setload_free(c->setload);
    c->setload = NULL;
    for (i = 0; i < c->nsets; i++) {
        free(c->sets[i].name);
        tn_strset_unref(c->sets[i].set);
    }
    free(c->sets);
    c->sets = NULL;
    c->nsets = 0;
}

void tn_ctl_sync_start(struct tn_ctl *c)
{
    static const struct tn_redis_cbs cbs_tmpl = {
        .on_snapshot = on_snapshot, .on_link = on_link, .on_message = on_message};
    struct tn_redis_cbs cbs = cbs_tmpl;
    const char *why = NULL;

    if (!c->plan->conf->redis.address && !c->plan->conf->redis.nsentinels)
        return;
    cbs.arg = c;
    c->redis = tn_redis_new(c->base, &c->plan->conf->redis, c->node_id, &cbs, &why);
    if (!c->redis) {
        tn_log(TN_LOG_ERR, "redis: %s; running without fleet sync", why ? why : "cannot start");
        return;
    }
    c->setload = tn_setload_new(c->redis, on_set_loaded, c);
    sets_fit(c);
}

int tn_ctl_sync_same(const struct tn_conf_redis *a, const struct tn_conf_redis *b)
{
    size_t i;

#define SAME(x) ((!a->x && !b->x) || (a->x && b->x && !strcmp(a->x, b->x)))
    if (!SAME(address) || !SAME(password_env) || !SAME(namespace_) || !SAME(master) ||
        a->nsentinels != b->nsentinels || a->resync_ms != b->resync_ms ||
        a->connect_timeout_ms != b->connect_timeout_ms)
        return 0;
#undef SAME
    for (i = 0; i < a->nsentinels; i++)
        if (strcmp(a->sentinels[i].text, b->sentinels[i].text))
            return 0;
    return 1;
}

