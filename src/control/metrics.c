/* /metrics: the control plane's figures and the sum of the workers'
 * statistics shards in the Prometheus text exposition format (version
 * 0.0.4): turnout_ prefix, _total counters, _seconds and _bytes units, the
 * request latency as a histogram. Control thread. */
#include <dirent.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "turnout/adminhttp.h"
#include "turnout/common.h"
#include "turnout/control-int.h"
#include "turnout/control.h"
#include "turnout/health.h"
#include "turnout/judge.h"
#include "turnout/overlay.h"
#include "turnout/route.h"
#include "turnout/stats.h"
#include "turnout/statsview.h"
#include "turnout/stream.h"

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format wants (backslash, quote, newline). */
static void label(struct evbuffer *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(out, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, v, 1);
    }
}

/* route="..",side="..",backend=".." */
static void rsb(struct evbuffer *out, const char *route, const char *side, const char *backend)
{
    evbuffer_add_printf(out, "route=\"");
    label(out, route);
    evbuffer_add_printf(out, "\",side=\"%s\",backend=\"", side);
    label(out, backend);
    evbuffer_add(out, "\"", 1);
}

/* Calls fn for every route x backend some worker counted. */
struct cell_ref {
    const struct tn_conf_route *route;
    const char *side, *backend;
    struct tn_stats_cell cell;
};

static size_t collect(struct tn_ctl *c, struct cell_ref *refs, size_t cap)
{
    const struct tn_plan *p = c->plan;
    size_t i, b, n = 0;

    for (i = 0; i < p->nroutes; i++) {
        for (b = 0; b < p->conf->nbackends && n < cap; b++) {
            struct cell_ref *r = &refs[n];

            if (!tn_stats_sum(c->shards, c->nshards, p->routes[i].id, p->backend_ids[b], &r->cell))
                continue;
            r->route = p->routes[i].conf;
            r->side = tn_route_side_name(r->route, (int)b);
            r->backend = p->conf->backends[b].name;
            n++;
        }
    }
    return n;
}

static void requests(struct evbuffer *out, const struct cell_ref *refs, size_t n)
{
    static const char *const cls[TN_STATS_CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    size_t i, k;

    family(out, "turnout_requests_total", "counter",
           "Client requests by route, the side and backend that answered, and status class "
           "(none: no response was sent).");
    for (i = 0; i < n; i++)
        for (k = 0; k < TN_STATS_CLASSES; k++) {
            evbuffer_add_printf(out, "turnout_requests_total{");
            rsb(out, refs[i].route->name, refs[i].side, refs[i].backend);
            evbuffer_add_printf(out, ",class=\"%s\"} %" PRIu64 "\n", cls[k],
                                (uint64_t)refs[i].cell.status[k]);
        }
    family(out, "turnout_request_duration_seconds", "histogram",
           "Time from a client request's first byte to the end of its response.");
    for (i = 0; i < n; i++) {
        uint64_t cum = 0;

        for (k = 0; k < TN_STATS_BUCKETS; k++) {
            cum += refs[i].cell.latency[k];
            evbuffer_add_printf(out, "turnout_request_duration_seconds_bucket{");
            rsb(out, refs[i].route->name, refs[i].side, refs[i].backend);
            if (k == TN_STATS_BUCKETS - 1)
                evbuffer_add_printf(out, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
            else
                evbuffer_add_printf(out, ",le=\"%g\"} %" PRIu64 "\n", tn_stats_bounds[k], cum);
        }
        evbuffer_add_printf(out, "turnout_request_duration_seconds_sum{");
        rsb(out, refs[i].route->name, refs[i].side, refs[i].backend);
        evbuffer_add_printf(out, "} %.6f\n", (double)refs[i].cell.latency_sum_us / 1e6);
        evbuffer_add_printf(out, "turnout_request_duration_seconds_count{");
        rsb(out, refs[i].route->name, refs[i].side, refs[i].backend);
        evbuffer_add_printf(out, "} %" PRIu64 "\n", cum);
    }
}

static void counter(struct evbuffer *out, const struct cell_ref *refs, size_t n, const char *name,
                    const char *help, size_t off)
{
    size_t i;

    family(out, name, "counter", help);
    for (i = 0; i < n; i++) {
        const _Atomic uint64_t *v = (const _Atomic uint64_t *)((const char *)&refs[i].cell + off);

        evbuffer_add_printf(out, "%s{", name);
        rsb(out, refs[i].route->name, refs[i].side, refs[i].backend);
        evbuffer_add_printf(out, "} %" PRIu64 "\n", (uint64_t)*v);
    }
}

/* A counter family with one more label over an array of the cell. */
static void by_label(struct evbuffer *out, const struct cell_ref *refs, size_t n,
                     const char *name, const char *help, const char *lab, size_t off, size_t count,
                     const char *(*value)(int))
{
    size_t i, k;

    family(out, name, "counter", help);
    for (i = 0; i < n; i++) {
        const _Atomic uint64_t *v = (const _Atomic uint64_t *)((const char *)&refs[i].cell + off);

        for (k = 0; k < count; k++) {
            evbuffer_add_printf(out, "%s{", name);
            rsb(out, refs[i].route->name, refs[i].side, refs[i].backend);
            evbuffer_add_printf(out, ",%s=\"%s\"} %" PRIu64 "\n", lab, value((int)k),
                                (uint64_t)v[k]);
        }
    }
}

/* backend="..",server=".." */
static void bs(struct evbuffer *out, const char *backend, const char *server)
{
    evbuffer_add_printf(out, "backend=\"");
    label(out, backend);
    evbuffer_add_printf(out, "\",server=\"");
    label(out, server);
    evbuffer_add(out, "\"", 1);
}

static void servers(struct tn_ctl *c, struct evbuffer *out)
{
    static const char *const names[] = {"turnout_server_connections", "turnout_server_connects_total",
                                        "turnout_server_connect_errors_total", "turnout_server_usable"};
    static const char *const types[] = {"gauge", "counter", "counter", "gauge"};
    static const char *const helps[] = {
        "Upstream connections to a server now: leased to a request (active) or pooled (idle).",
        "Upstream connections opened to a server.",
        "Upstream connects that failed (refused, unreachable, timed out).",
        "1 when the balancer may pick the server (ready, not down, not ejected)."};
    const struct tn_conf *conf = c->plan->conf;
    size_t f, b, s;

    for (f = 0; f < 4; f++) {
        family(out, names[f], types[f], helps[f]);
        for (b = 0; b < conf->nbackends; b++)
            for (s = 0; s < conf->backends[b].nservers; s++) {
                uint32_t id = c->plan->server_ids[b][s];
                struct tn_stats_server st;
                uint64_t until;

                tn_stats_server_sum(c->shards, c->nshards, id, &st);
                evbuffer_add_printf(out, "%s{", names[f]);
                bs(out, conf->backends[b].name, conf->backends[b].servers[s].name);
                if (f == 0) {
                    evbuffer_add_printf(out, ",state=\"active\"} %" PRIu64 "\n%s{",
                                        (uint64_t)st.active, names[f]);
                    bs(out, conf->backends[b].name, conf->backends[b].servers[s].name);
                    evbuffer_add_printf(out, ",state=\"idle\"} %" PRIu64 "\n", (uint64_t)st.idle);
                } else if (f == 3) {
                    evbuffer_add_printf(out, "} %d\n",
                                        c->servers[id].state == TN_SERVER_READY &&
                                            !c->servers[id].down &&
                                            !tn_ctl_server_ejected(c, (int)b, (int)s, &until));
                } else {
                    evbuffer_add_printf(out, "} %" PRIu64 "\n",
                                        (uint64_t)(f == 1 ? st.connects : st.connect_errors));
                }
            }
    }
}

static void listeners(struct tn_ctl *c, struct evbuffer *out)
{
    static const char *const names[] = {"turnout_listener_connections",
                                        "turnout_listener_accepted_total",
                                        "turnout_listener_rejected_total"};
    static const char *const helps[] = {
        "Client connections open on a listener now.", "Client connections accepted.",
        "Client connections closed at accept (draining, out of memory)."};
    const struct tn_conf *conf = c->plan->conf;
    size_t f, i;

    for (f = 0; f < 3; f++) {
        family(out, names[f], f ? "counter" : "gauge", helps[f]);
        for (i = 0; i < conf->nlistens && i < TN_STATS_MAX_LISTENERS; i++) {
            struct tn_stats_listener l;

            tn_stats_listener_sum(c->shards, c->nshards, i, &l);
            evbuffer_add_printf(out, "%s{listener=\"", names[f]);
            label(out, conf->listens[i].addr.text);
            evbuffer_add_printf(out, "\"} %" PRIu64 "\n",
                                (uint64_t)(f == 0 ? l.open : f == 1 ? l.accepted : l.rejected));
        }
    }
}

static void routes(struct tn_ctl *c, struct evbuffer *out)
{
    const struct tn_plan *p = c->plan;
    size_t i;

    family(out, "turnout_route_percent", "gauge",
           "The percent of a shifting route's users sent to \"to\" in force now.");
    for (i = 0; i < p->nroutes; i++) {
        enum tn_source src;
        uint32_t x100;

        if (!p->routes[i].conf->has_shift)
            continue;
        x100 = tn_ctl_percent(c, i, &src);
        evbuffer_add_printf(out, "turnout_route_percent{route=\"");
        label(out, p->routes[i].conf->name);
        evbuffer_add_printf(out, "\",source=\"%s\"} %u.%02u\n", tn_source_name(src), x100 / 100,
                            x100 % 100);
    }
    family(out, "turnout_route_configured_percent", "gauge",
           "The percent the configuration file gives a shifting route.");
    for (i = 0; i < p->nroutes; i++) {
        if (!p->routes[i].conf->has_shift)
            continue;
        evbuffer_add_printf(out, "turnout_route_configured_percent{route=\"");
        label(out, p->routes[i].conf->name);
        evbuffer_add_printf(out, "\"} %u.%02u\n", p->routes[i].percent_x100 / 100,
                            p->routes[i].percent_x100 % 100);
    }
    family(out, "turnout_route_actual_percent", "gauge",
           "The percent of a shifting route's requests routed to \"to\" over the last minute "
           "(absent when none were).");
    for (i = 0; i < p->nroutes; i++) {
        uint64_t routed;
        uint32_t x100;

        if (!p->routes[i].conf->has_shift || !tn_statsview_split(c, i, &routed, &x100))
            continue;
        evbuffer_add_printf(out, "turnout_route_actual_percent{route=\"");
        label(out, p->routes[i].conf->name);
        evbuffer_add_printf(out, "\"} %u.%02u\n", x100 / 100, x100 % 100);
    }
}

static void judge(struct tn_ctl *c, struct evbuffer *out)
{
    const struct tn_plan *p = c->plan;
    uint64_t verdicts[TN_VERDICT_COUNT], rollbacks, last_ms;
    size_t f, i, v;

    for (f = 0; f < 3; f++) {
        if (f == 0)
            family(out, "turnout_rollback_windows_total", "counter",
                   "Windows the automatic rollback judge closed, by verdict.");
        else if (f == 1)
            family(out, "turnout_auto_rollbacks_total", "counter",
                   "Routes this node rolled back automatically.");
        else
            family(out, "turnout_last_auto_rollback_timestamp_seconds", "gauge",
                   "When this node last rolled the route back automatically (Unix time; 0: never).");
        for (i = 0; i < p->nroutes; i++) {
            if (!p->routes[i].conf->has_shift || !c->judge)
                continue;
            tn_judge_counts(c->judge, p->routes[i].id, verdicts, &rollbacks, &last_ms);
            for (v = 0; v < (f ? 1u : (size_t)TN_VERDICT_COUNT); v++) {
                evbuffer_add_printf(out, "%s{route=\"",
                                    f == 0 ? "turnout_rollback_windows_total"
                                    : f == 1 ? "turnout_auto_rollbacks_total"
                                             : "turnout_last_auto_rollback_timestamp_seconds");
                label(out, p->routes[i].conf->name);
                if (f == 0)
                    evbuffer_add_printf(out, "\",verdict=\"%s\"} %" PRIu64 "\n",
                                        tn_verdict_name((enum tn_verdict)v), verdicts[v]);
                else if (f == 1)
                    evbuffer_add_printf(out, "\"} %" PRIu64 "\n", rollbacks);
                else
                    evbuffer_add_printf(out, "\"} %.3f\n", (double)last_ms / 1000);
            }
        }
    }
}

static void process(struct tn_ctl *c, struct evbuffer *out)
{
    family(out, "turnout_config_generation", "gauge", "Configuration files loaded so far.");
    evbuffer_add_printf(out, "turnout_config_generation %" PRIu64 "\n", c->generation);
    family(out, "turnout_applied_version", "gauge",
           "The runtime version (Redis's turnout:{ns}:version when synced) this node applied.");
    evbuffer_add_printf(out, "turnout_applied_version %" PRIu64 "\n", c->version);
    family(out, "turnout_redis_up", "gauge", "1 when the Redis link is up, 0 when not or none.");
    evbuffer_add_printf(out, "turnout_redis_up %d\n", c->redis_up);
    family(out, "turnout_workers", "gauge", "Worker threads.");
    evbuffer_add_printf(out, "turnout_workers %u\n", c->nworkers);
    family(out, "turnout_start_time_seconds", "gauge", "When this process started (Unix time).");
    evbuffer_add_printf(out, "turnout_start_time_seconds %.3f\n", (double)c->started_ms / 1000);
    family(out, "turnout_uptime_seconds", "gauge", "Seconds since this process started.");
    evbuffer_add_printf(out, "turnout_uptime_seconds %.3f\n",
                        (double)(tn_ctl_unix_ms() - c->started_ms) / 1000);
}

/* The conventional process_* families, from /proc/self. */
static void process_std(struct tn_ctl *c, struct evbuffer *out)
{
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0, tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    size_t fds = 0;
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    DIR *d;

    if (f) {
        if (fgets(buf, sizeof(buf), f)) {
            const char *p = strrchr(buf, ')'); /* after the command name */

            if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d "
                                   "%*d %*d %*d %*d %*u %lu %ld",
                            &utime, &stime, &vsize, &rss) != 4)
                utime = stime = vsize = 0, rss = 0;
        }
        fclose(f);
    }
    if ((d = opendir("/proc/self/fd")) != NULL) {
        struct dirent *e;

        while ((e = readdir(d)) != NULL)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory's own descriptor */
    }
    family(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
    evbuffer_add_printf(out, "process_cpu_seconds_total %.2f\n",
                        tick > 0 ? (double)(utime + stime) / (double)tick : 0);
    family(out, "process_resident_memory_bytes", "gauge", "Resident memory size.");
    evbuffer_add_printf(out, "process_resident_memory_bytes %ld\n", rss * page);
    family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size.");
    evbuffer_add_printf(out, "process_virtual_memory_bytes %lu\n", vsize);
    family(out, "process_open_fds", "gauge", "Open file descriptors.");
    evbuffer_add_printf(out, "process_open_fds %zu\n", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        family(out, "process_max_fds", "gauge", "The limit of open file descriptors.");
        evbuffer_add_printf(out, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    family(out, "process_start_time_seconds", "gauge", "Start time of the process (Unix time).");
    evbuffer_add_printf(out, "process_start_time_seconds %.3f\n", (double)c->started_ms / 1000);
}

void tn_metrics_write(struct tn_ctl *c, struct evbuffer *out)
{
    size_t cap = c->plan->nroutes * (c->plan->conf->nbackends ? c->plan->conf->nbackends : 1);
    struct cell_ref *refs = calloc(cap ? cap : 1, sizeof(*refs));
    size_t n;

    process(c, out);
    process_std(c, out);
    routes(c, out);
    judge(c, out);
    if (!refs)
        return;
    n = collect(c, refs, cap);
    requests(out, refs, n);
    counter(out, refs, n, "turnout_request_bytes_total",
            "Bytes received from clients (heads and bodies).",
            offsetof(struct tn_stats_cell, bytes_in));
    counter(out, refs, n, "turnout_response_bytes_total", "Bytes sent to clients.",
            offsetof(struct tn_stats_cell, bytes_out));
    counter(out, refs, n, "turnout_attempts_total",
            "Upstream attempts (a replay or a stale-connection retry is a second one).",
            offsetof(struct tn_stats_cell, attempts));
    by_label(out, refs, n, "turnout_upstream_attempts_total",
             "Upstream attempts by the backend that made them and their result, before any "
             "replay: ok, 5xx, or how the attempt failed.",
             "result", offsetof(struct tn_stats_cell, results), TN_STATS_RESULTS,
             tn_attempt_result_name);
    by_label(out, refs, n, "turnout_replays_total",
             "Failed attempts of this backend replayed on the route's \"from\", by reason.",
             "reason", offsetof(struct tn_stats_cell, replays), TN_STATS_REPLAY_REASONS,
             tn_replay_reason_name);
    by_label(out, refs, n, "turnout_replays_refused_total",
             "Failed attempts of this backend that could not be replayed, by reason.", "reason",
             offsetof(struct tn_stats_cell, refused), TN_STATS_REFUSED_REASONS,
             tn_noreplay_reason_name);
    free(refs);
    servers(c, out);
    listeners(c, out);
}
