/* The per-request routing decision: finds the first route whose match holds
 * (host, path, method, header regexes), then applies its backend pin or its
 * sticky percentage shift. Runs on every request in the workers: no
 * allocation, each input scanned at most once. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <string.h>

#include <pcre2.h>

#include "turnout/common.h"
#include <arpa/inet.h>
#include <strings.h>

#include "turnout/clientaddr.h"
#include "turnout/h1.h"
#include "turnout/module.h"
#include "turnout/overlay.h"
#include "turnout/route.h"

/* The parts of the request the matchers look at, computed on first use. */
struct req_view {
    const struct tn_route_req *rq;
    const char *host; /* host name without ":port" */
    size_t host_len;
    size_t path_len; /* target bytes before '?' */
    unsigned have_host : 1;
    unsigned have_path : 1;
};

/* Reason names as logs and headers show them, in TN_ROUTE_REASONS order. */
static const char *const reason_names[] = {"no_route", "route_pin", "shift_to", "shift_from",
                                            "user_pin", "to_down",   "override"};

#define TN_X_ONE(r) +1
_Static_assert(TN_ARRAY_LEN(reason_names) == 0 TN_ROUTE_REASONS(TN_X_ONE),
               "reason_names must follow TN_ROUTE_REASONS");
#undef TN_X_ONE

static const char *const sticky_names[] = {
    [TN_STICKY_COOKIE] = "cookie",     [TN_STICKY_HEADER] = "header",
    [TN_STICKY_QUERY] = "query",       [TN_STICKY_CLIENT_IP] = "client_ip",
    [TN_STICKY_ASSIGNED] = "assigned",
};

/* Length of the host name in a Host value: "a.example:8080" -> "a.example",
 * "[::1]:80" -> "[::1]". */
static size_t host_name_len(const char *h, size_t len)
{
    const char *end;

    if (len && h[0] == '[') {
        end = memchr(h, ']', len);
        return end ? (size_t)(end - h) + 1 : len;
    }
    end = memchr(h, ':', len);
    return end ? (size_t)(end - h) : len;
}

static void view_host(struct req_view *v)
{
    if (v->have_host)
        return;
    v->have_host = 1;
    v->host = v->rq->host;
    v->host_len = v->rq->host ? host_name_len(v->rq->host, v->rq->host_len) : 0;
}

static void view_path(struct req_view *v)
{
    const char *q;

    if (v->have_path)
        return;
    v->have_path = 1;
    v->path_len = 0;
    if (!v->rq->target)
        return;
    q = memchr(v->rq->target, '?', v->rq->target_len);
    v->path_len = q ? (size_t)(q - v->rq->target) : v->rq->target_len;
}

/* Unanchored search of re in s[0..len); 1 on a match. Match errors (limits)
 * count as no match. Uses the caller's match data: no allocation. */
static int re_search(const pcre2_code *re, const char *s, size_t len, pcre2_match_data *md)
{
    TN_BUG_ON(!md);
    return pcre2_match(re, (PCRE2_SPTR)(s ? s : ""), len, 0, 0, md, NULL) >= 0;
}

static int method_matches(const struct tn_conf_strlist *ms, const struct tn_route_req *rq)
{
    size_t i;

    if (!rq->method)
        return 0;
    for (i = 0; i < ms->n; i++) {
        const char *m = ms->v[i];

        if (strncmp(m, rq->method, rq->method_len) == 0 && m[rq->method_len] == '\0')
            return 1;
    }
    return 0;
}

static int code_in(const struct tn_conf_strlist *l, const char *code)
{
    size_t i;

    if (!code[0])
        return 0;
    for (i = 0; i < l->n; i++)
        if (!strcasecmp(l->v[i], code))
            return 1;
    return 0;
}

/* subdivision: "DE-BY" (country and subdivision) or the bare "BY". */
static int subdivision_in(const struct tn_conf_strlist *l, const struct tn_geo *g)
{
    size_t i;

    if (!g->subdivision[0])
        return 0;
    for (i = 0; i < l->n; i++) {
        const char *v = l->v[i], *dash = strchr(v, '-');

        if (dash ? (size_t)(dash - v) == strlen(g->country) &&
                       !strncasecmp(v, g->country, (size_t)(dash - v)) &&
                       !strcasecmp(dash + 1, g->subdivision)
                 : !strcasecmp(v, g->subdivision))
            return 1;
    }
    return 0;
}

/* Compares a and b in time that depends on their lengths only. */
static int same_secret(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    size_t i;

    for (i = 0; i < alen && i < blen; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return !diff;
}

/* The override header: honoured with the right token, or from a trusted
 * address; otherwise ignored (and noted in d->override for the log). */
static int decide_override(const struct tn_plan *p, const struct tn_route_req *rq,
                           struct tn_decision *d)
{
    const struct tn_conf_overrides *o = &p->conf->overrides;
    const struct tn_field *h, *tok;
    size_t b;

    if (!o->header || !(h = tn_h1_find(rq->hdrs, rq->nhdrs, o->header)))
        return 0;
    tok = tn_h1_find(rq->hdrs, rq->nhdrs, o->token_header);
    if (!(p->override_token && tok &&
          same_secret(tok->value, tok->value_len, p->override_token, p->override_token_len)) &&
        !tn_client_ip_trusted(rq->client_ip, p->conf->trusted_proxies,
                              p->conf->ntrusted_proxies)) {
        d->override = TN_OVERRIDE_REFUSED;
        return 0;
    }
    for (b = 0; b < p->conf->nbackends; b++) {
        const char *name = p->conf->backends[b].name;

        if (strlen(name) == h->value_len && !memcmp(name, h->value, h->value_len)) {
            d->backend = (int)b;
            d->reason = TN_ROUTE_OVERRIDE;
            d->override = TN_OVERRIDE_HONOURED;
            return 1;
        }
    }
    d->override = TN_OVERRIDE_UNKNOWN;
    return 0;
}

/* The classified part of route pr's match: geography, device, segment. */
static int facts_match(const struct tn_plan_route *pr, struct tn_classify *cx)
{
    const struct tn_conf_match *m = &pr->conf->match;
    const struct tn_facts *f = &cx->facts;

    tn_classify_need(cx, pr->needs);
    if (m->country.n && !code_in(&m->country, f->geo.country))
        return 0;
    if (m->continent.n && !code_in(&m->continent, f->geo.continent))
        return 0;
    if (m->subdivision.n && !subdivision_in(&m->subdivision, &f->geo))
        return 0;
    if (m->device && (pr->device < 0 || f->device != pr->device))
        return 0;
    if (m->segment && (pr->segment < 0 || !(f->segments >> pr->segment & 1)))
        return 0;
    return 1;
}

/* Whether route pr's match holds for the request (all given keys must). */
static int route_matches(const struct tn_plan_route *pr, struct req_view *v, pcre2_match_data *md,
                         struct tn_classify *cx)
{
    const struct tn_conf_match *m = &pr->conf->match;
    const struct tn_route_req *rq = v->rq;
    size_t i;

    if (m->methods.n && !method_matches(&m->methods, rq))
        return 0;
    if (pr->host_re) {
        view_host(v);
        if (!v->host || !re_search(pr->host_re, v->host, v->host_len, md))
            return 0;
    }
    if (pr->path_re) {
        view_path(v);
        if (!re_search(pr->path_re, rq->target, v->path_len, md))
            return 0;
    }
    for (i = 0; i < m->nheaders; i++) {
        const struct tn_field *h = tn_h1_find(rq->hdrs, rq->nhdrs, m->headers[i].name);

        if (!h || !re_search(pr->header_re[i], h->value, h->value_len, md))
            return 0;
    }
    return !pr->needs || facts_match(pr, cx);
}

/* Applies route pr's shift: sticky key, bucket, side, with the overlay's
 * percent when it sets one. A user shifted to a "to" with no server up
 * goes to "from". */
static void decide_shift(const struct tn_plan *p, const struct tn_plan_route *pr,
                         const struct tn_route_req *rq, struct tn_decision *d)
{
    const struct tn_conf_route *r = pr->conf;
    int32_t rt = tn_overlay_percent(rq->ov, pr->id);
    uint32_t pct = rt >= 0 ? (uint32_t)rt : pr->percent_x100;
    int to;

    if (!d->key)
        tn_route_sticky_key(p, rq, d);
    if (d->key) {
        d->bucket = tn_route_bucket(r->name, d->key, d->key_len);
        d->has_bucket = 1;
        to = d->bucket < pct * 100u;
    } else {
        /* no key at all: nothing to keep sticky, so only 100 % moves it */
        to = pct >= 10000;
    }
    d->backend = to ? r->to_idx : r->from_idx;
    d->reason = to ? TN_ROUTE_SHIFT_TO : TN_ROUTE_SHIFT_FROM;
    if (to && rq->backend_up && !rq->backend_up(rq->up_ctx, r->to_idx)) {
        d->backend = r->from_idx;
        d->reason = TN_ROUTE_TO_DOWN;
    }
}

/* A pin on the user's sticky key, when the overlay has pins: fills d and
 * returns 1, or 0 when the user is not pinned (to a backend of this plan). */
static int decide_pin(const struct tn_plan *p, const struct tn_route_req *rq,
                      struct tn_decision *d)
{
    int64_t id;
    size_t b;

    if (!rq->ov || !rq->ov->pins->n)
        return 0;
    if (!d->key)
        tn_route_sticky_key(p, rq, d);
    if (!d->key || (id = tn_pins_find(rq->ov->pins, d->key, d->key_len)) < 0)
        return 0;
    for (b = 0; b < p->conf->nbackends; b++) {
        if (p->backend_ids[b] == (uint32_t)id) {
            d->backend = (int)b;
            d->reason = TN_ROUTE_USER_PIN;
            return 1;
        }
    }
    return 0;
}

int tn_route_decide(const struct tn_plan *p, const struct tn_route_req *rq,
                    struct pcre2_real_match_data_8 *md, struct tn_decision *d)
{
    struct req_view v = {.rq = rq};
    struct tn_classify cx = {.plan = p, .ov = rq->ov, .rq = rq, .d = d, .md = md, .wk = rq->mod_wk};
    size_t i;

    d->route = -1;
    d->backend = -1;
    d->reason = TN_ROUTE_NO_ROUTE;
    d->key_source = TN_STICKY_NONE;
    d->key = NULL;
    d->key_len = 0;
    d->key_buf[0] = '\0';
    d->set_cookie = 0;
    d->has_bucket = 0;
    d->bucket = 0;
    cx.facts.have = 0;
    cx.facts.device = -1;
    d->override = TN_OVERRIDE_NONE;
    for (i = 0; i < p->nroutes; i++) {
        const struct tn_plan_route *pr = &p->routes[i];

        if (!route_matches(pr, &v, md, &cx))
            continue;
        d->route = (int)i;
        d->facts = cx.facts;
        if (decide_pin(p, rq, d) || decide_override(p, rq, d))
            return TN_OK;
        if (pr->conf->has_shift) {
            decide_shift(p, pr, rq, d);
        } else {
            d->backend = pr->conf->backend_idx;
            d->reason = TN_ROUTE_ROUTE_PIN;
        }
        return TN_OK;
    }
    d->facts = cx.facts;
    return TN_ERR;
}

const char *tn_route_reason_name(enum tn_route_reason r)
{
    if ((unsigned)r >= TN_ARRAY_LEN(reason_names))
        return "?";
    return reason_names[r];
}

const char *tn_route_sticky_name(enum tn_sticky_kind k)
{
    if (k < 0 || (size_t)k >= TN_ARRAY_LEN(sticky_names) || !sticky_names[k])
        return "none";
    return sticky_names[k];
}
