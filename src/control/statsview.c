/* What the statistics shards say, as the admin socket and /stats.json show
 * it: `show stats` rows (requests, classes, latency, attempt results,
 * replays), each server's connections, each listener's, a route's actual
 * split, the per-second series of shifting routes and the fleet's applied
 * versions. Control thread. */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/control-int.h"
#include "turnout/control.h"
#include "turnout/json.h"
#include "turnout/route.h"
#include "turnout/stats.h"
#include "turnout/stream.h"
#include "turnout/statsview.h"

#define SPLIT_WINDOW 60 /* seconds behind the actual split */

static void counts(struct evbuffer *out, const char *name, const _Atomic uint64_t *v, size_t n,
                   const char *(*label)(int))
{
    size_t i;

    evbuffer_add_printf(out, ",\"%s\":{", name);
    for (i = 0; i < n; i++)
        evbuffer_add_printf(out, "%s\"%s\":%" PRIu64, i ? "," : "", label((int)i),
                            (uint64_t)v[i]);
    evbuffer_add(out, "}", 1);
}

static void stats_row(struct evbuffer *out, int json, const char *route, const char *side,
                      const char *backend, const struct tn_stats_cell *c, int first)
{
    static const char *const cls[TN_STATS_CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    double p50 = tn_stats_quantile(c, 0.5) * 1000, p99 = tn_stats_quantile(c, 0.99) * 1000;
    uint64_t replays = 0;
    size_t i;

    if (!json) {
        for (i = 0; i < TN_STATS_REPLAY_REASONS; i++)
            replays += c->replays[i];
        evbuffer_add_printf(out, "%-16s %-6s %-10s %9" PRIu64, route, side, backend,
                            (uint64_t)c->requests);
        for (i = 1; i < TN_STATS_CLASSES; i++)
            evbuffer_add_printf(out, " %7" PRIu64, (uint64_t)c->status[i]);
        evbuffer_add_printf(out, " %7" PRIu64 " %8.2f %8.2f %9" PRIu64 " %8" PRIu64 "\n",
                            (uint64_t)c->status[0], p50, p99, (uint64_t)c->attempts, replays);
        return;
    }
    evbuffer_add_printf(out, "%s{\"route\":", first ? "" : ",");
    tn_json_str(out, route);
    evbuffer_add_printf(out, ",\"side\":\"%s\",\"backend\":", side);
    tn_json_str(out, backend);
    evbuffer_add_printf(out, ",\"requests\":%" PRIu64 ",\"status\":{", (uint64_t)c->requests);
    for (i = 0; i < TN_STATS_CLASSES; i++)
        evbuffer_add_printf(out, "%s\"%s\":%" PRIu64, i ? "," : "", cls[i],
                            (uint64_t)c->status[i]);
    evbuffer_add_printf(out,
                        "},\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"attempts\":%" PRIu64
                        ",\"latency\":{\"count\":%" PRIu64 ",\"sum_s\":%.6f,\"p50_ms\":%.3f,"
                        "\"p99_ms\":%.3f,\"buckets\":[",
                        (uint64_t)c->bytes_in, (uint64_t)c->bytes_out, (uint64_t)c->attempts,
                        (uint64_t)c->requests, (double)c->latency_sum_us / 1e6, p50, p99);
    for (i = 0; i < TN_STATS_BUCKETS; i++)
        evbuffer_add_printf(out, "%s%" PRIu64, i ? "," : "", (uint64_t)c->latency[i]);
    evbuffer_add(out, "]}", 2);
    counts(out, "upstream", c->results, TN_STATS_RESULTS, tn_attempt_result_name);
    counts(out, "replays", c->replays, TN_STATS_REPLAY_REASONS, tn_replay_reason_name);
    counts(out, "refused", c->refused, TN_STATS_REFUSED_REASONS, tn_noreplay_reason_name);
    evbuffer_add(out, "}", 1);
}

void tn_statsview_stats(const struct tn_ctl *c, struct evbuffer *out, int json)
{
    const struct tn_plan *p = c->plan;
    int first = 1;
    size_t i, b;

    if (!json)
        evbuffer_add_printf(out, "%-16s %-6s %-10s %9s %7s %7s %7s %7s %7s %7s %8s %8s %9s %8s\n",
                            "route", "side", "backend", "requests", "1xx", "2xx", "3xx", "4xx",
                            "5xx", "none", "p50_ms", "p99_ms", "attempts", "replays");
    else
        evbuffer_add(out, "[", 1);
    for (i = 0; i < p->nroutes; i++) {
        const struct tn_conf_route *r = p->routes[i].conf;

        for (b = 0; b < p->conf->nbackends; b++) {
            struct tn_stats_cell cell;
            int counted = tn_stats_sum(c->shards, c->nshards, p->routes[i].id, p->backend_ids[b],
                                       &cell);
            int configured = r->has_shift ? ((int)b == r->from_idx || (int)b == r->to_idx)
                                          : (int)b == r->backend_idx;

            if (!counted && !configured)
                continue;
            stats_row(out, json, r->name, tn_route_side_name(r, (int)b),
                      p->conf->backends[b].name, &cell, first);
            first = 0;
        }
    }
    if (json)
        evbuffer_add(out, "]\n", 2);
}

void tn_statsview_server(const struct tn_ctl *c, uint32_t server_id, struct evbuffer *out,
                         int json)
{
    struct tn_stats_server s;

    tn_stats_server_sum(c->shards, c->nshards, server_id, &s);
    if (json)
        evbuffer_add_printf(out,
                            ",\"active\":%" PRIu64 ",\"idle\":%" PRIu64 ",\"connects\":%" PRIu64
                            ",\"connect_errors\":%" PRIu64,
                            (uint64_t)s.active, (uint64_t)s.idle, (uint64_t)s.connects,
                            (uint64_t)s.connect_errors);
    else
        evbuffer_add_printf(out, " %6" PRIu64 " %6" PRIu64 " %9" PRIu64 " %9" PRIu64,
                            (uint64_t)s.active, (uint64_t)s.idle, (uint64_t)s.connects,
                            (uint64_t)s.connect_errors);
}

int tn_statsview_split(const struct tn_ctl *c, size_t route, uint64_t *routed, uint32_t *to_x100)
{
    struct tn_stats_second w[2][SPLIT_WINDOW];
    uint64_t n[2] = {0, 0};
    int64_t first = tn_stats_now_sec() - SPLIT_WINDOW;
    uint32_t id = c->plan->routes[route].id;
    int side;
    size_t k;

    for (side = 0; side < 2; side++) {
        tn_stats_seconds(c->shards, c->nshards, id, side, first, SPLIT_WINDOW, w[side]);
        for (k = 0; k < SPLIT_WINDOW; k++)
            n[side] += w[side][k].routed;
    }
    *routed = n[0] + n[1];
    if (!*routed)
        return 0;
    *to_x100 = (uint32_t)((n[1] * 10000 + *routed / 2) / *routed);
    return 1;
}

void tn_statsview_split_json(const struct tn_ctl *c, size_t route, struct evbuffer *out)
{
    uint64_t routed = 0;
    uint32_t x100 = 0;

    evbuffer_add_printf(out, ",\"actual\":");
    if (c->plan->routes[route].conf->has_shift && tn_statsview_split(c, route, &routed, &x100))
        tn_json_percent(out, x100);
    else
        evbuffer_add(out, "null", 4);
    evbuffer_add_printf(out, ",\"routed_60s\":%" PRIu64, routed);
}

void tn_statsview_listeners(const struct tn_ctl *c, struct evbuffer *out)
{
    const struct tn_conf *conf = c->plan->conf;
    size_t i;

    evbuffer_add(out, "[", 1);
    for (i = 0; i < conf->nlistens && i < TN_STATS_MAX_LISTENERS; i++) {
        struct tn_stats_listener l;

        tn_stats_listener_sum(c->shards, c->nshards, i, &l);
        evbuffer_add_printf(out, "%s{\"address\":", i ? "," : "");
        tn_json_str(out, conf->listens[i].addr.text);
        evbuffer_add_printf(out,
                            ",\"open\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"rejected\":%" PRIu64
                            "}",
                            (uint64_t)l.open, (uint64_t)l.accepted, (uint64_t)l.rejected);
    }
    evbuffer_add(out, "]", 1);
}

void tn_statsview_fleet(const struct tn_ctl *c, struct evbuffer *out)
{
    size_t i;

    evbuffer_add(out, "[", 1);
    for (i = 0; i < c->nfleet; i++) {
        evbuffer_add_printf(out, "%s{\"node\":", i ? "," : "");
        tn_json_str(out, c->fleet[i].id);
        evbuffer_add_printf(out, ",\"version\":%" PRIu64 ",\"seen\":%.3f,\"self\":%s}",
                            c->fleet[i].version, (double)c->fleet[i].seen_ms / 1000,
                            strcmp(c->fleet[i].id, c->node_id) ? "false" : "true");
    }
    evbuffer_add(out, "]", 1);
}

/* One figure per second of w, as a JSON array. */
static void series_array(struct evbuffer *out, const char *name,
                         const struct tn_stats_second *w, size_t n, int what)
{
    size_t k;

    evbuffer_add_printf(out, "%s\"%s\":[", what ? "," : "", name);
    for (k = 0; k < n; k++) {
        const char *sep = k ? "," : "";
        double q;

        switch (what) {
        case 0:
            evbuffer_add_printf(out, "%s%u", sep, (unsigned)w[k].routed);
            break;
        case 1:
            evbuffer_add_printf(out, "%s%u", sep, (unsigned)w[k].attempts);
            break;
        case 2:
            evbuffer_add_printf(out, "%s%u", sep, (unsigned)w[k].errors);
            break;
        default:
            q = tn_stats_sec_quantile(&w[k], what == 3 ? 0.5 : 0.99);
            if (q < 0)
                evbuffer_add_printf(out, "%snull", sep);
            else
                evbuffer_add_printf(out, "%s%.3f", sep, q * 1000);
        }
    }
    evbuffer_add(out, "]", 1);
}

void tn_statsview_series(const struct tn_ctl *c, struct evbuffer *out, size_t seconds)
{
    static const char *const names[] = {"routed", "attempts", "errors", "p50_ms", "p99_ms"};
    const struct tn_plan *p = c->plan;
    int64_t end = tn_stats_now_sec() - 1;
    struct tn_stats_second *w;
    int first = 1, side, what;
    size_t i;

    if (seconds < 1)
        seconds = 1;
    if (seconds > TN_STATS_SECONDS - 1) /* the oldest slot is being reused */
        seconds = TN_STATS_SECONDS - 1;
    evbuffer_add_printf(out, "{\"seconds\":%zu,\"end\":%" PRId64 ",\"routes\":[", seconds, end);
    if (!(w = calloc(seconds, sizeof(*w)))) {
        evbuffer_add(out, "]}", 2);
        return;
    }
    for (i = 0; i < p->nroutes; i++) {
        const struct tn_conf_route *r = p->routes[i].conf;

        if (!r->has_shift)
            continue;
        evbuffer_add_printf(out, "%s{\"route\":", first ? "" : ",");
        first = 0;
        tn_json_str(out, r->name);
        evbuffer_add_printf(out, ",\"from\":");
        tn_json_str(out, r->shift_from);
        evbuffer_add_printf(out, ",\"to\":");
        tn_json_str(out, r->shift_to);
        evbuffer_add_printf(out, ",\"sides\":{");
        for (side = 0; side < 2; side++) {
            tn_stats_seconds(c->shards, c->nshards, p->routes[i].id, side,
                             end - (int64_t)seconds + 1, seconds, w);
            evbuffer_add_printf(out, "%s\"%s\":{", side ? "," : "", side ? "to" : "from");
            for (what = 0; what < 5; what++)
                series_array(out, names[what], w, seconds, what);
            evbuffer_add(out, "}", 1);
        }
        evbuffer_add(out, "}}", 2);
    }
    free(w);
    evbuffer_add(out, "]}", 2);
}
