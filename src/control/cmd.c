/* The admin command language: one line in, one answer out (HAProxy
 * style). Parses and checks every argument before changing anything, so a
 * malformed command answers one "ERR ..." line and changes nothing; every
 * `show` also answers in JSON with a trailing `json`. Control thread. */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <strings.h>

#include "config.h"
#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/control-int.h"
#include "turnout/control.h"
#include "turnout/health.h"
#include "turnout/json.h"
#include "turnout/judge.h"
#include "turnout/overlay.h"
#include "turnout/route.h"
#include "turnout/setload.h"
#include "turnout/stats.h"
#include "turnout/statsview.h"
#include "turnout/strset.h"

#define MAX_ARGS 12
#define MAX_ARG 512

struct cmd {
    struct tn_ctl *c;
    const char *who;
    struct evbuffer *out;
    char *argv[MAX_ARGS];
    int argc;
    int json; /* a show command ended with "json" */
    char buf[4096];
};

static const char help_text[] =
    "help                                        this list\n"
    "show info [json]                            version, uptime, workers, versions, Redis\n"
    "show routes [json]                          match, from, to, percent and its source\n"
    "show backends [json]                        servers, states, health\n"
    "show segments [json]                        user segments and their Redis sets\n"
    "show stats [json]                           requests, statuses, latency per route and backend\n"
    "show rollback [ROUTE] [json]                the automatic rollback judge's recent windows\n"
    "show pins [PREFIX] [json]                   pinned users\n"
    "show events [N] [json]                      the latest N changes (default 20)\n"
    "set weight ROUTE PERCENT                    0 to 100, at most two decimals\n"
    "ramp ROUTE PERCENT over DURATION [step P]   walk the percent in steps (e.g. over 10m)\n"
    "ramp cancel ROUTE                           stop a ramp where it is\n"
    "rollback ROUTE|all                          percent 0: nobody new goes to \"to\"\n"
    "set server BACKEND/SERVER state ready|drain|maint\n"
    "pin KEY BACKEND|none                        send one user to a backend whatever the percent\n"
    "explain METHOD URL [client=ADDR] [Name: value]...\n"
    "                                            what such a request would get, and why\n"
    "reload                                      read the configuration file again\n";

static void err(struct cmd *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void err(struct cmd *k, const char *fmt, ...)
{
    va_list ap;

    evbuffer_add(k->out, "ERR ", 4);
    va_start(ap, fmt);
    evbuffer_add_vprintf(k->out, fmt, ap);
    va_end(ap);
    evbuffer_add(k->out, "\n", 1);
}

static uint64_t unix_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Splits line on blanks. Returns TN_ERR (answered) on too many or too long
 * words, or a control character. */
static int tokenize(struct cmd *k, const char *line)
{
    char *p;

    if (strlen(line) >= sizeof(k->buf)) {
        err(k, "command too long (at most %zu bytes)", sizeof(k->buf) - 1);
        return TN_ERR;
    }
    strcpy(k->buf, line);
    for (p = k->buf; *p; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            err(k, "control character in the command");
            return TN_ERR;
        }
    }
    for (p = strtok(k->buf, " \t"); p; p = strtok(NULL, " \t")) {
        if (k->argc == MAX_ARGS) {
            err(k, "too many words (at most %d)", MAX_ARGS);
            return TN_ERR;
        }
        if (strlen(p) > MAX_ARG) {
            err(k, "word too long (at most %d bytes)", MAX_ARG);
            return TN_ERR;
        }
        k->argv[k->argc++] = p;
    }
    return TN_OK;
}

static void answer(struct cmd *k, int rc, const char *msg)
{
    evbuffer_add_printf(k->out, "%s%s\n", rc == TN_OK ? "" : "ERR ", msg);
}

/* ---- show info ---- */

static void show_info(struct cmd *k)
{
    const struct tn_ctl *c = k->c;
    uint64_t up = (unix_ms() - c->started_ms) / 1000;
    char redis[256];

    tn_ctl_redis_describe(c, redis, sizeof(redis));
    if (!k->json) {
        evbuffer_add_printf(k->out,
                            "name: turnout\nversion: %s\nnode: %s\npid: %d\nuptime: %" PRIu64
                            "s\nworkers: %u\nconfig: %s\nconfig_generation: %" PRIu64
                            "\napplied_version: %" PRIu64 "\nredis: %s\nstate_file: %s\n"
                            "routes: %zu\nevents: %zu\n",
                            PACKAGE_VERSION, c->node_id, (int)getpid(), up, c->nworkers,
                            c->config_path ? c->config_path : "-", c->generation, c->version,
                            redis, c->state_file ? c->state_file : "none", c->plan->nroutes,
                            c->nevents);
        return;
    }
    evbuffer_add_printf(k->out, "{\"name\":\"turnout\",\"version\":");
    tn_json_str(k->out, PACKAGE_VERSION);
    evbuffer_add_printf(k->out, ",\"node\":");
    tn_json_str(k->out, c->node_id);
    evbuffer_add_printf(k->out,
                        ",\"pid\":%d,\"uptime_s\":%" PRIu64 ",\"workers\":%u,\"config\":", (int)getpid(),
                        up, c->nworkers);
    tn_json_str(k->out, c->config_path);
    evbuffer_add_printf(k->out, ",\"config_generation\":%" PRIu64 ",\"applied_version\":%" PRIu64
                                ",\"redis\":{\"configured\":%s,\"up\":%s,\"state\":",
                        c->generation, c->version, c->redis ? "true" : "false",
                        c->redis_up ? "true" : "false");
    tn_json_str(k->out, redis);
    evbuffer_add_printf(k->out, "},\"state_file\":");
    tn_json_str(k->out, c->state_file);
    evbuffer_add_printf(k->out, ",\"routes\":%zu,\"now\":%.3f}\n", c->plan->nroutes,
                        (double)tn_ctl_unix_ms() / 1000);
}

/* ---- show routes ---- */

static void list(char *buf, size_t len, size_t *off, const char *key,
                 const struct tn_conf_strlist *l)
{
    size_t i;

    if (!l->n || *off >= len)
        return;
    *off += (size_t)snprintf(buf + *off, len - *off, "%s%s=", *off ? " " : "", key);
    for (i = 0; i < l->n && *off < len; i++)
        *off += (size_t)snprintf(buf + *off, len - *off, "%s%s", i ? "," : "", l->v[i]);
}

static void one(char *buf, size_t len, size_t *off, const char *key, const char *v)
{
    if (v && *off < len)
        *off += (size_t)snprintf(buf + *off, len - *off, "%s%s=%s", *off ? " " : "", key, v);
}

/* "path=^/api/ device=smart-tv", or "*" when the route matches everything. */
static const char *match_summary(const struct tn_conf_match *m, char *buf, size_t len)
{
    size_t off = 0, i;
    char key[300];

    buf[0] = '\0';
    one(buf, len, &off, "host", m->host);
    one(buf, len, &off, "path", m->path);
    list(buf, len, &off, "method", &m->methods);
    for (i = 0; i < m->nheaders; i++) {
        snprintf(key, sizeof(key), "header.%s", m->headers[i].name);
        one(buf, len, &off, key, m->headers[i].regex);
    }
    list(buf, len, &off, "country", &m->country);
    list(buf, len, &off, "continent", &m->continent);
    list(buf, len, &off, "subdivision", &m->subdivision);
    one(buf, len, &off, "device", m->device);
    one(buf, len, &off, "segment", m->segment);
    if (!off)
        snprintf(buf, len, "*");
    return buf;
}

static void show_routes(struct cmd *k)
{
    const struct tn_ctl *c = k->c;
    char m[1024], p[16], q[16];
    size_t i;

    if (!k->json)
        evbuffer_add_printf(k->out, "%-16s %-8s %-8s %8s  %-13s %s\n", "route", "from", "to",
                            "percent", "source", "match");
    else
        evbuffer_add(k->out, "[", 1);
    for (i = 0; i < c->plan->nroutes; i++) {
        const struct tn_conf_route *r = c->plan->routes[i].conf;
        const struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];
        enum tn_source src = TN_SOURCE_CONFIG;
        uint32_t x100 = r->has_shift ? tn_ctl_percent(c, i, &src) : 10000;
        const char *from = r->has_shift ? r->shift_from : r->backend;
        const char *to = r->has_shift ? r->shift_to : r->backend;

        match_summary(&r->match, m, sizeof(m));
        if (!k->json) {
            evbuffer_add_printf(k->out, "%-16s %-8s %-8s %8s  %-13s %s", r->name, from, to,
                                tn_percent_str(x100, p, sizeof(p)), tn_source_name(src), m);
            if (cr->ramping)
                evbuffer_add_printf(k->out, "  (ramp to %s)",
                                    tn_percent_str(cr->ramp.to_x100, q, sizeof(q)));
            if (!r->has_shift)
                evbuffer_add_printf(k->out, "  (pins %s)", r->backend);
            evbuffer_add(k->out, "\n", 1);
            continue;
        }
        evbuffer_add_printf(k->out, "%s{\"name\":", i ? "," : "");
        tn_json_str(k->out, r->name);
        evbuffer_add_printf(k->out, ",\"match\":");
        tn_json_str(k->out, m);
        evbuffer_add_printf(k->out, ",\"from\":");
        tn_json_str(k->out, from);
        evbuffer_add_printf(k->out, ",\"to\":");
        tn_json_str(k->out, to);
        evbuffer_add_printf(k->out, ",\"backend\":");
        tn_json_str(k->out, r->has_shift ? NULL : r->backend);
        evbuffer_add_printf(k->out, ",\"percent\":");
        tn_json_percent(k->out, x100);
        evbuffer_add_printf(k->out, ",\"configured\":");
        tn_json_percent(k->out, c->plan->routes[i].percent_x100);
        evbuffer_add_printf(k->out, ",\"runtime\":");
        if (cr->set)
            tn_json_percent(k->out, cr->percent_x100);
        else
            evbuffer_add(k->out, "null", 4);
        evbuffer_add_printf(k->out, ",\"source\":\"%s\",\"ramp\":", tn_source_name(src));
        if (cr->ramping) {
            evbuffer_add_printf(k->out, "{\"from\":");
            tn_json_percent(k->out, cr->ramp.from_x100);
            evbuffer_add_printf(k->out, ",\"to\":");
            tn_json_percent(k->out, cr->ramp.to_x100);
            evbuffer_add_printf(k->out, ",\"step\":");
            tn_json_percent(k->out, cr->ramp.step_x100);
            evbuffer_add_printf(k->out, ",\"start_ms\":%" PRIu64 ",\"duration_ms\":%" PRIu64
                                        ",\"origin\":",
                                cr->ramp.start_ms, cr->ramp.duration_ms);
            tn_json_str(k->out, cr->ramp.origin);
            evbuffer_add(k->out, "}", 1);
        } else {
            evbuffer_add(k->out, "null", 4);
        }
        tn_statsview_split_json(c, i, k->out);
        evbuffer_add(k->out, "}", 1);
    }
    if (k->json)
        evbuffer_add(k->out, "]\n", 2);
}

/* ---- show backends ---- */

static void show_backends(struct cmd *k)
{
    const struct tn_ctl *c = k->c;
    const struct tn_conf *conf = c->plan->conf;
    uint64_t now = tn_now_ms();
    int first = 1;
    size_t b, s;

    if (!k->json)
        evbuffer_add_printf(k->out, "%-10s %-22s %-22s %6s %-6s %-9s %-14s %6s %6s %9s %9s %s\n",
                            "backend", "server", "address", "weight", "state", "health",
                            "passive", "active", "idle", "connects", "conn_errs", "last_check");
    else
        evbuffer_add(k->out, "[", 1);
    for (b = 0; b < conf->nbackends; b++) {
        const struct tn_conf_backend *be = &conf->backends[b];

        for (s = 0; s < be->nservers; s++) {
            uint32_t id = c->plan->server_ids[b][s];
            const struct tn_ctl_server *cs = &c->servers[id];
            const char *last = "";
            enum tn_health_state hs = c->health ? tn_health_get(c->health, id, &last)
                                                : TN_HEALTH_UNCHECKED;
            uint64_t until = 0;
            int ej = tn_ctl_server_ejected(c, (int)b, (int)s, &until);
            char passive[48];

            if (ej)
                snprintf(passive, sizeof(passive), "ejected %" PRIu64 "s",
                         (until - now + 999) / 1000);
            else
                snprintf(passive, sizeof(passive), "ok");
            if (!k->json) {
                evbuffer_add_printf(k->out, "%-10s %-22s %-22s %6u %-6s %-9s %-14s", be->name,
                                    be->servers[s].name, be->servers[s].addr.text,
                                    be->servers[s].weight,
                                    tn_server_state_name((enum tn_server_state)cs->state),
                                    tn_health_state_name(hs), passive);
                tn_statsview_server(c, id, k->out, 0);
                evbuffer_add_printf(k->out, " %s\n", last ? last : "");
                continue;
            }
            evbuffer_add_printf(k->out, "%s{\"backend\":", first ? "" : ",");
            first = 0;
            tn_json_str(k->out, be->name);
            evbuffer_add_printf(k->out, ",\"server\":");
            tn_json_str(k->out, be->servers[s].name);
            evbuffer_add_printf(k->out, ",\"address\":");
            tn_json_str(k->out, be->servers[s].addr.text);
            evbuffer_add_printf(k->out,
                                ",\"weight\":%u,\"state\":\"%s\",\"health\":\"%s\",\"ejected\":%s,"
                                "\"ejected_for_ms\":%" PRIu64 ",\"usable\":%s,\"last_check\":",
                                be->servers[s].weight,
                                tn_server_state_name((enum tn_server_state)cs->state),
                                tn_health_state_name(hs), ej ? "true" : "false",
                                ej ? until - now : 0,
                                cs->state == TN_SERVER_READY && !cs->down && !ej ? "true"
                                                                                : "false");
            tn_json_str(k->out, last ? last : "");
            tn_statsview_server(c, id, k->out, 1);
            evbuffer_add(k->out, "}", 1);
        }
    }
    if (k->json)
        evbuffer_add(k->out, "]\n", 2);
}

/* ---- show segments ---- */

static const char *const segment_kinds[] = {"header", "cookie", "query", "redis_set"};

static const struct tn_ctl_set *find_set(const struct tn_ctl *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->nsets; i++)
        if (!strcmp(c->sets[i].name, name))
            return &c->sets[i];
    return NULL;
}

/* "equals beta,staff", "regex ^b", or the Redis set's state. */
static void segment_detail(const struct tn_ctl *c, const struct tn_conf_segment *sg, char *buf,
                           size_t len)
{
    const struct tn_ctl_set *cs;
    size_t i, off = 0, members = 0;

    buf[0] = '\0';
    if (sg->kind != TN_SEGMENT_REDIS_SET) {
        if (sg->regex) {
            snprintf(buf, len, "regex %s", sg->regex);
            return;
        }
        off = (size_t)snprintf(buf, len, "equals ");
        for (i = 0; i < sg->equals.n && off < len; i++)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", sg->equals.v[i]);
        return;
    }
    cs = find_set(c, sg->source);
    if (c->setload && tn_setload_busy(c->setload, sg->source, &members))
        snprintf(buf, len, "loading (%zu members so far)", members);
    else if (cs && cs->set)
        snprintf(buf, len, "%zu members", tn_strset_count(cs->set));
    else
        snprintf(buf, len, "not loaded%s%s", cs && cs->error[0] ? ": " : "",
                 cs && cs->error[0] ? cs->error : "");
}

static void show_segments(struct cmd *k)
{
    const struct tn_ctl *c = k->c;
    const struct tn_conf *conf = c->plan->conf;
    char detail[512];
    size_t i;

    if (k->json)
        evbuffer_add(k->out, "[", 1);
    for (i = 0; i < conf->nsegments; i++) {
        const struct tn_conf_segment *sg = &conf->segments[i];
        const struct tn_ctl_set *cs = find_set(c, sg->source);

        segment_detail(c, sg, detail, sizeof(detail));
        if (!k->json) {
            evbuffer_add_printf(k->out, "%-16s %-9s %-20s %s\n", sg->name, segment_kinds[sg->kind],
                                sg->source, detail);
            continue;
        }
        evbuffer_add_printf(k->out, "%s{\"name\":", i ? "," : "");
        tn_json_str(k->out, sg->name);
        evbuffer_add_printf(k->out, ",\"kind\":\"%s\",\"source\":", segment_kinds[sg->kind]);
        tn_json_str(k->out, sg->source);
        evbuffer_add_printf(k->out, ",\"detail\":");
        tn_json_str(k->out, detail);
        if (sg->kind == TN_SEGMENT_REDIS_SET)
            evbuffer_add_printf(k->out, ",\"members\":%zu,\"loaded_ms\":%" PRIu64,
                                cs && cs->set ? tn_strset_count(cs->set) : 0,
                                cs ? cs->loaded_ms : 0);
        evbuffer_add(k->out, "}", 1);
    }
    if (k->json)
        evbuffer_add(k->out, "]\n", 2);
}

/* ---- show pins / events ---- */

static void show_pins(struct cmd *k, const char *prefix)
{
    const struct tn_ctl *c = k->c;
    size_t i, plen = prefix ? strlen(prefix) : 0;
    int first = 1;

    if (k->json)
        evbuffer_add(k->out, "{", 1);
    for (i = 0; i < c->npins; i++) {
        const struct tn_ctl_pin *p = &c->pins[i];

        if (!p->backend || (plen && strncmp(p->key, prefix, plen)))
            continue;
        if (!k->json) {
            evbuffer_add_printf(k->out, "%s %s\n", p->key, p->backend);
            continue;
        }
        if (!first)
            evbuffer_add(k->out, ",", 1);
        first = 0;
        tn_json_str(k->out, p->key);
        evbuffer_add(k->out, ":", 1);
        tn_json_str(k->out, p->backend);
    }
    if (k->json)
        evbuffer_add(k->out, "}\n", 2);
}

static void show_events(struct cmd *k, size_t n)
{
    const struct tn_event *e;
    size_t i, total;

    for (total = 0; total < n && tn_ctl_event(k->c, total); total++)
        ;
    if (k->json)
        evbuffer_add(k->out, "[", 1);
    for (i = total; i-- > 0;) { /* oldest first */
        char when[40];
        time_t t;
        struct tm tm;

        e = tn_ctl_event(k->c, i);
        t = (time_t)(e->unix_ms / 1000);
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        if (!k->json) {
            evbuffer_add_printf(k->out, "%s.%03uZ v%" PRIu64 " %s: %s: %s -> %s%s%s%s\n", when,
                                (unsigned)(e->unix_ms % 1000), e->version, e->who, e->what,
                                e->from[0] ? e->from : "-", e->to[0] ? e->to : "-",
                                e->detail[0] ? " (" : "", e->detail, e->detail[0] ? ")" : "");
            continue;
        }
        evbuffer_add_printf(k->out, "%s{\"time_ms\":%" PRIu64 ",\"version\":%" PRIu64 ",\"who\":",
                            i + 1 == total ? "" : ",", e->unix_ms, e->version);
        tn_json_str(k->out, e->who);
        evbuffer_add_printf(k->out, ",\"what\":");
        tn_json_str(k->out, e->what);
        evbuffer_add_printf(k->out, ",\"from\":");
        tn_json_str(k->out, e->from);
        evbuffer_add_printf(k->out, ",\"to\":");
        tn_json_str(k->out, e->to);
        if (e->detail[0]) {
            evbuffer_add_printf(k->out, ",\"detail\":");
            tn_json_str(k->out, e->detail);
        }
        evbuffer_add(k->out, "}", 1);
    }
    if (k->json)
        evbuffer_add(k->out, "]\n", 2);
}

static int parse_count(const char *s, size_t *n)
{
    char *end;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return TN_ERR;
    v = strtoul(s, &end, 10);
    if (*end || v == 0 || v > TN_CTL_EVENTS)
        return TN_ERR;
    *n = v;
    return TN_OK;
}

static void cmd_show(struct cmd *k)
{
    const char *what = k->argc > 1 ? k->argv[1] : "";
    int nargs;

    if (k->argc > 2 && !strcmp(k->argv[k->argc - 1], "json")) {
        k->json = 1;
        k->argc--;
    }
    nargs = k->argc - 2;
    if (!strcmp(what, "info") && !nargs)
        show_info(k);
    else if (!strcmp(what, "routes") && !nargs)
        show_routes(k);
    else if (!strcmp(what, "backends") && !nargs)
        show_backends(k);
    else if (!strcmp(what, "segments") && !nargs)
        show_segments(k);
    else if (!strcmp(what, "stats") && !nargs)
        tn_statsview_stats(k->c, k->out, k->json);
    else if (!strcmp(what, "pins") && nargs <= 1)
        show_pins(k, nargs ? k->argv[2] : NULL);
    else if (!strcmp(what, "rollback") && nargs <= 1) {
        if (!k->c->judge || !tn_judge_show(k->c->judge, nargs ? k->argv[2] : NULL, k->json, k->out))
            return err(k, "show rollback: no shifting route named \"%s\"",
                       nargs ? k->argv[2] : "");
    }
    else if (!strcmp(what, "events") && nargs <= 1) {
        size_t n = 20;

        if (nargs && parse_count(k->argv[2], &n) != TN_OK)
            return err(k, "show events: N must be a number from 1 to %d, got \"%s\"",
                       TN_CTL_EVENTS, k->argv[2]);
        show_events(k, n);
    } else if (!strcmp(what, "info") || !strcmp(what, "routes") || !strcmp(what, "backends") ||
               !strcmp(what, "pins") || !strcmp(what, "events") || !strcmp(what, "segments") ||
               !strcmp(what, "stats") || !strcmp(what, "rollback"))
        err(k, "show %s: unexpected argument \"%s\"", what, k->argv[k->argc - 1]);
    else
        err(k, "unknown show command \"%s\"; try: show "
               "info|routes|backends|segments|stats|rollback|pins|events",
            what);
}

/* ---- changes ---- */

static int parse_pct(struct cmd *k, const char *s, uint32_t *x100)
{
    if (tn_conf_parse_percent(s, x100) == TN_OK)
        return TN_OK;
    err(k, "bad percent \"%s\": expected a number from 0 to 100 with at most two decimals", s);
    return TN_ERR;
}

static void cmd_set(struct cmd *k)
{
    char msg[512];
    uint32_t x100;

    if (k->argc >= 2 && !strcmp(k->argv[1], "weight")) {
        if (k->argc != 4)
            return err(k, "usage: set weight ROUTE PERCENT");
        if (parse_pct(k, k->argv[3], &x100) != TN_OK)
            return;
        answer(k, tn_ctl_set_weight(k->c, k->argv[2], x100, TN_SOURCE_ADMIN, k->who, msg,
                                    sizeof(msg)),
               msg);
        return;
    }
    if (k->argc >= 2 && !strcmp(k->argv[1], "server")) {
        char *slash;
        int st;

        if (k->argc != 5 || strcmp(k->argv[3], "state"))
            return err(k, "usage: set server BACKEND/SERVER state ready|drain|maint");
        slash = strchr(k->argv[2], '/');
        if (!slash || slash == k->argv[2] || !slash[1])
            return err(k, "bad server \"%s\": expected BACKEND/SERVER", k->argv[2]);
        if ((st = tn_server_state_parse(k->argv[4])) < 0)
            return err(k, "bad state \"%s\": expected ready, drain or maint", k->argv[4]);
        *slash = '\0';
        answer(k, tn_ctl_set_server(k->c, k->argv[2], slash + 1, (enum tn_server_state)st,
                                    k->who, msg, sizeof(msg)),
               msg);
        return;
    }
    err(k, "unknown set command; try: set weight ROUTE PERCENT, set server B/S state S");
}

static void cmd_ramp(struct cmd *k)
{
    char msg[512];
    uint32_t to, step = 0;
    uint64_t ms;

    if (k->argc == 3 && !strcmp(k->argv[1], "cancel")) {
        answer(k, tn_ctl_ramp_cancel(k->c, k->argv[2], k->who, msg, sizeof(msg)), msg);
        return;
    }
    if ((k->argc != 5 && k->argc != 7) || strcmp(k->argv[3], "over") ||
        (k->argc == 7 && strcmp(k->argv[5], "step")))
        return err(k, "usage: ramp ROUTE PERCENT over DURATION [step PERCENT], ramp cancel ROUTE");
    if (parse_pct(k, k->argv[2], &to) != TN_OK)
        return;
    if (tn_conf_parse_duration(k->argv[4], &ms) != TN_OK || !ms || ms > 30ull * 86400 * 1000)
        return err(k, "bad duration \"%s\": expected e.g. 90s, 10m, 2h (at most 30d)", k->argv[4]);
    if (k->argc == 7 && (parse_pct(k, k->argv[6], &step) != TN_OK || !step)) {
        if (!step && evbuffer_get_length(k->out) == 0)
            err(k, "bad step \"%s\": expected a percent above 0", k->argv[6]);
        return;
    }
    answer(k, tn_ctl_ramp(k->c, k->argv[1], to, ms, step, k->who, msg, sizeof(msg)), msg);
}

static void cmd_rollback(struct cmd *k)
{
    char msg[2048];

    if (k->argc != 2)
        return err(k, "usage: rollback ROUTE|all");
    answer(k, tn_ctl_rollback(k->c, strcmp(k->argv[1], "all") ? k->argv[1] : NULL,
                              TN_SOURCE_ADMIN, k->who, msg, sizeof(msg)),
           msg);
}

static void cmd_pin(struct cmd *k)
{
    char msg[1024];

    if (k->argc != 3)
        return err(k, "usage: pin KEY BACKEND|none");
    answer(k, tn_ctl_pin(k->c, k->argv[1], strcmp(k->argv[2], "none") ? k->argv[2] : NULL,
                         k->who, msg, sizeof(msg)),
           msg);
}

static void cmd_reload(struct cmd *k)
{
    char *why = NULL, *p;

    if (k->argc != 1)
        return err(k, "usage: reload");
    if (k->c->hooks.reload(k->c->hooks.arg, &why) == TN_OK) {
        evbuffer_add_printf(k->out, "reloaded: configuration generation %" PRIu64 " in force\n",
                            k->c->generation);
        free(why);
        return;
    }
    for (p = why; p && *p; p++) /* one line */
        if (*p == '\n')
            *p = p[1] ? ';' : ' ';
    err(k, "reload rejected, the old configuration stays: %s", why ? why : "unknown error");
    free(why);
}

/* ---- explain ---- */

#define EXPLAIN_MAX_FIELDS 32

/* Whether w ends a header name: "User-Agent:". */
static int header_name(const char *w)
{
    size_t n = strlen(w), i;

    if (n < 2 || w[n - 1] != ':')
        return 0;
    for (i = 0; i < n - 1; i++)
        if (!((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= 'A' && w[i] <= 'Z') ||
              (w[i] >= '0' && w[i] <= '9') || strchr("!#$%&'*+-.^_`|~", w[i])))
            return 0;
    return 1;
}

/* explain METHOD URL [client=ADDR] [Name: value]...: what such a request
 * would get and why, without sending anything. The line is split here
 * (values may hold spaces): a word ending in ':' starts a header. */
static void cmd_explain(struct cmd *k, const char *line)
{
    char buf[4096], *w[256], *p, *save = NULL, out[1024], host[256] = "";
    struct tn_field f[EXPLAIN_MAX_FIELDS];
    struct tn_route_req rq;
    struct tn_decision d;
    const char *client = "127.0.0.1", *target;
    size_t nw = 0, i, nf = 0;
    pcre2_match_data_8 *md;

    snprintf(buf, sizeof(buf), "%s", line);
    for (p = strtok_r(buf, " \t", &save); p && nw < TN_ARRAY_LEN(w); p = strtok_r(NULL, " \t", &save))
        w[nw++] = p;
    if (nw < 3)
        return err(k, "usage: explain METHOD URL [client=ADDR] [Name: value]...");
    target = w[2];
    if (!strncmp(target, "http://", 7) || !strncmp(target, "https://", 8)) {
        const char *a = strstr(target, "//") + 2, *slash = strchr(a, '/');
        size_t hl = slash ? (size_t)(slash - a) : strlen(a);

        snprintf(host, sizeof(host), "%.*s", (int)(hl < sizeof(host) ? hl : sizeof(host) - 1), a);
        target = slash ? slash : "/";
    } else if (target[0] != '/') {
        return err(k, "bad URL \"%s\": expected /path or http://host/path", target);
    }
    i = 3;
    if (i < nw && !strncmp(w[i], "client=", 7))
        client = w[i++] + 7;
    for (; i < nw; i++) {
        size_t vlen = 0;
        char *v;

        if (!header_name(w[i]))
            return err(k, "expected a header like \"Name: value\" at \"%s\"", w[i]);
        if (nf == EXPLAIN_MAX_FIELDS)
            return err(k, "too many headers (at most %d)", EXPLAIN_MAX_FIELDS);
        w[i][strlen(w[i]) - 1] = '\0';
        f[nf].name = w[i];
        f[nf].name_len = (uint32_t)strlen(w[i]);
        v = i + 1 < nw && !header_name(w[i + 1]) ? w[i + 1] : NULL;
        f[nf].value = v ? v : "";
        for (; i + 1 < nw && !header_name(w[i + 1]); i++) /* the value runs to the next name */
            if (i + 2 < nw && !header_name(w[i + 2]))
                w[i + 1][strlen(w[i + 1])] = ' ';
        vlen = v ? strlen(v) : 0;
        f[nf].value_len = (uint32_t)vlen;
        f[nf++].flags = 0;
        if (!strcasecmp(f[nf - 1].name, "host") && !host[0])
            snprintf(host, sizeof(host), "%s", f[nf - 1].value);
    }
    memset(&rq, 0, sizeof(rq));
    rq.method = w[1];
    rq.method_len = strlen(w[1]);
    rq.host = host[0] ? host : NULL;
    rq.host_len = strlen(host);
    rq.target = target;
    rq.target_len = strlen(target);
    rq.hdrs = f;
    rq.nhdrs = (unsigned)nf;
    rq.client_ip = client;
    rq.ov = k->c->ov;
    rq.backend_up = tn_ctl_backend_up;
    rq.up_ctx = k->c;
    md = pcre2_match_data_create_8(1, NULL);
    if (!md)
        return err(k, "out of memory");
    memset(&d, 0, sizeof(d));
    tn_route_decide(k->c->plan, &rq, md, &d);
    pcre2_match_data_free_8(md);
    tn_route_explain(k->c->plan, &d, out, sizeof(out));
    if (!k->json) {
        evbuffer_add_printf(k->out, "%s\n", out);
        return;
    }
    evbuffer_add_printf(k->out, "{\"explain\":");
    tn_json_str(k->out, out);
    evbuffer_add_printf(k->out, ",\"route\":");
    tn_json_str(k->out, d.route >= 0 ? k->c->plan->conf->routes[d.route].name : NULL);
    evbuffer_add_printf(k->out, ",\"backend\":");
    tn_json_str(k->out, d.backend >= 0 ? k->c->plan->conf->backends[d.backend].name : NULL);
    evbuffer_add_printf(k->out, ",\"reason\":\"%s\"}\n",
                        d.route >= 0 ? tn_route_reason_name(d.reason) : "no_route");
}

void tn_ctl_exec(void *arg, const char *line, const char *who, struct evbuffer *out)
{
    struct cmd *k = calloc(1, sizeof(*k));
    const char *verb;

    if (!k) {
        evbuffer_add_printf(out, "ERR out of memory\n");
        return;
    }
    k->c = arg;
    k->who = who;
    k->out = out;
    if (!strncmp(line, "explain ", 8) || !strcmp(line, "explain")) {
        size_t n = strlen(line);

        k->json = n > 5 && !strcmp(line + n - 5, " json");
        if (k->json) { /* the json suffix is not a header */
            char *copy = strndup(line, n - 5);

            if (copy)
                cmd_explain(k, copy);
            free(copy);
        } else {
            cmd_explain(k, line);
        }
        goto done;
    }
    if (tokenize(k, line) != TN_OK || !k->argc)
        goto done;
    verb = k->argv[0];
    if (!strcmp(verb, "help"))
        evbuffer_add(out, help_text, sizeof(help_text) - 1);
    else if (!strcmp(verb, "show"))
        cmd_show(k);
    else if (!strcmp(verb, "set"))
        cmd_set(k);
    else if (!strcmp(verb, "ramp"))
        cmd_ramp(k);
    else if (!strcmp(verb, "rollback"))
        cmd_rollback(k);
    else if (!strcmp(verb, "pin"))
        cmd_pin(k);
    else if (!strcmp(verb, "reload"))
        cmd_reload(k);
    else
        err(k, "unknown command \"%s\"; type help for the list", verb);
done:
    free(k);
}
