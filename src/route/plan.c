/* Plans: the immutable routing snapshot built from one configuration. Owns
 * the configuration, the compiled (JIT) regexes of every route's match and
 * the runtime percents. Built on the control thread, shared by workers
 * through an atomic reference count. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/ident.h"
#include "turnout/module.h"
#include "turnout/route.h"

/* Error text being built: one line per problem, no trailing newline. */
struct errbuf {
    char *s;
    size_t len;
};

/* Appends one line "file:line:col: route NAME: <fmt>" to eb. */
__attribute__((format(printf, 4, 5))) static void plan_err(struct errbuf *eb,
                                                           const struct tn_conf *c,
                                                           const struct tn_conf_route *r,
                                                           const char *fmt, ...)
{
    char where[512] = "", msg[1024], line[2048];
    va_list ap;
    size_t n;

    if (c->file && r->mark.line)
        snprintf(where, sizeof(where), "%s:%u:%u: ", c->file, r->mark.line, r->mark.col);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s%sroute %s: %s", eb->len ? "\n" : "", where,
             r->name ? r->name : "?", msg);
    n = strlen(line);
    eb->s = tn_xrealloc(eb->s, eb->len + n + 1);
    memcpy(eb->s + eb->len, line, n + 1);
    eb->len += n;
}

/* Compiles one match regex (what names it in errors, e.g. "match.path").
 * JIT when the library allows, the interpreter otherwise. Returns the code
 * or NULL after adding an error line. */
static pcre2_code *compile_re(struct errbuf *eb, const struct tn_conf *c,
                              const struct tn_conf_route *r, const char *what, const char *re,
                              uint32_t options)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off = 0;
    pcre2_code *code;
    int rc;

    code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, options, &rc, &off, NULL);
    if (!code) {
        if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", rc);
        plan_err(eb, c, r, "%s: bad regex \"%s\" at offset %zu: %s", what, re, (size_t)off,
                 (const char *)msg);
        return NULL;
    }
    /* a JIT failure (no JIT support, no executable memory) is not fatal:
     * pcre2_match() then interprets the pattern */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    return code;
}

/* Records which facts route r needs, and rejects match keys whose
 * classifier this build left out or the configuration does not set up, so
 * such a route never silently matches everybody. */
static void check_classifiers(struct errbuf *eb, const struct tn_conf *c,
                              const struct tn_conf_route *r, struct tn_plan_route *pr)
{
    static const char left_out[] = "needs the geo module, left out of this build "
                                   "(configured --without-maxminddb)";
    const struct tn_conf_match *m = &r->match;
    const char *geo_key = m->country.n     ? "match.country"
                          : m->continent.n ? "match.continent"
                          : m->subdivision.n ? "match.subdivision"
                                             : NULL;

    pr->device = -1;
    pr->segment = -1;
    if (geo_key) {
        pr->needs |= TN_FACT_GEO;
        if (!tn_module_for(TN_FACT_GEO))
            plan_err(eb, c, r, "%s %s", geo_key, left_out);
        else if (!c->geoip_database)
            plan_err(eb, c, r, "%s needs a GeoIP database (geoip: { database: FILE })", geo_key);
    }
    if (m->device) {
        pr->needs |= TN_FACT_DEVICE;
        if (!c->ndevices)
            plan_err(eb, c, r, "match.device needs a device catalog (devices: FILE or a map)");
    }
    if (m->segment) {
        size_t i;

        pr->needs |= TN_FACT_SEGMENTS;
        for (i = 0; i < c->nsegments && strcmp(c->segments[i].name, m->segment); i++)
            ;
        if (i == c->nsegments)
            plan_err(eb, c, r, "match.segment: no segment named \"%s\" in segments", m->segment);
    }
}

/* Builds each module's state for p; errors go to eb. */
static void init_modules(struct errbuf *eb, struct tn_plan *p)
{
    size_t i;

    for (i = 0; tn_modules[i]; i++) {
        char *err = NULL, *line, *save = NULL;

        TN_BUG_ON(i >= TN_ARRAY_LEN(p->mod_state));
        if (tn_modules[i]->init(p, &p->mod_state[i], &err) == TN_OK)
            continue;
        for (line = strtok_r(err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            size_t n = strlen(line);

            eb->s = tn_xrealloc(eb->s, eb->len + n + 2);
            if (eb->len)
                eb->s[eb->len++] = '\n';
            memcpy(eb->s + eb->len, line, n + 1);
            eb->len += n;
        }
        free(err);
    }
}

static void free_modules(struct tn_plan *p)
{
    size_t i;

    for (i = 0; tn_modules[i]; i++) {
        if (p->mod_state[i])
            tn_modules[i]->free(p->mod_state[i]);
        p->mod_state[i] = NULL;
    }
}

/* Checks the resolved backend indexes and the percent of one route. */
static void check_targets(struct errbuf *eb, const struct tn_conf *c, const struct tn_conf_route *r)
{
    int nb = (int)c->nbackends;

    if (!r->has_shift) {
        if (r->backend_idx < 0 || r->backend_idx >= nb)
            plan_err(eb, c, r, "backend \"%s\" is not defined", r->backend ? r->backend : "");
        return;
    }
    if (r->from_idx < 0 || r->from_idx >= nb)
        plan_err(eb, c, r, "shift.from \"%s\" is not defined", r->shift_from ? r->shift_from : "");
    if (r->to_idx < 0 || r->to_idx >= nb)
        plan_err(eb, c, r, "shift.to \"%s\" is not defined", r->shift_to ? r->shift_to : "");
    if (r->percent_x100 > 10000)
        plan_err(eb, c, r, "shift.percent must be between 0 and 100");
}

/* Fills one plan route from its configuration. Returns TN_OK or TN_ERR
 * (errors added to eb); partial results are freed by free_routes(). */
static int build_route(struct errbuf *eb, const struct tn_conf *c, const struct tn_conf_route *r,
                       struct tn_plan_route *pr)
{
    const struct tn_conf_match *m = &r->match;
    size_t before = eb->len, i;
    char what[300];

    pr->conf = r;
    pr->percent_x100 = r->percent_x100;
    check_classifiers(eb, c, r, pr);
    check_targets(eb, c, r);
    /* Host names are case-insensitive (RFC 9110 4.2.3), so is the host regex */
    if (m->host && !(pr->host_re = compile_re(eb, c, r, "match.host", m->host, PCRE2_CASELESS)))
        goto fail;
    if (m->path && !(pr->path_re = compile_re(eb, c, r, "match.path", m->path, 0)))
        goto fail;
    if (m->nheaders)
        pr->header_re = tn_xcalloc(m->nheaders, sizeof(*pr->header_re));
    for (i = 0; i < m->nheaders; i++) {
        if (!m->headers[i].name || !m->headers[i].regex) {
            plan_err(eb, c, r, "match.header: a header name and a regex are required");
            goto fail;
        }
        snprintf(what, sizeof(what), "match.header.%.256s", m->headers[i].name);
        pr->header_re[i] = compile_re(eb, c, r, what, m->headers[i].regex, 0);
        if (!pr->header_re[i])
            goto fail;
    }
    for (i = 0; i < m->methods.n; i++) {
        if (!m->methods.v[i] || !m->methods.v[i][0]) {
            plan_err(eb, c, r, "match.method: empty method");
            goto fail;
        }
    }
    return eb->len == before ? TN_OK : TN_ERR;
fail:
    return TN_ERR;
}

/* Frees the compiled regexes and the route array of p (not p or its conf). */
static void free_routes(struct tn_plan *p)
{
    size_t i, j;

    if (!p->routes)
        return;
    for (i = 0; i < p->nroutes; i++) {
        struct tn_plan_route *pr = &p->routes[i];

        pcre2_code_free(pr->host_re);
        pcre2_code_free(pr->path_re);
        if (pr->header_re) {
            for (j = 0; j < pr->conf->match.nheaders; j++)
                pcre2_code_free(pr->header_re[j]);
            free(pr->header_re);
        }
    }
    free(p->routes);
    p->routes = NULL;
}

/* Gives routes, backends and servers their stable identities. */
static void assign_ids(struct tn_plan *p)
{
    const struct tn_conf *c = p->conf;
    char name[512];
    size_t i, j;

    for (i = 0; i < p->nroutes; i++) {
        p->routes[i].id = tn_ident_intern(TN_IDENT_ROUTE, c->routes[i].name);
        if (p->routes[i].id + 1 > p->max_route_id)
            p->max_route_id = p->routes[i].id + 1;
    }
    p->backend_ids = tn_xcalloc(c->nbackends ? c->nbackends : 1, sizeof(*p->backend_ids));
    p->server_ids = tn_xcalloc(c->nbackends ? c->nbackends : 1, sizeof(*p->server_ids));
    for (i = 0; i < c->nbackends; i++) {
        const struct tn_conf_backend *b = &c->backends[i];

        p->backend_ids[i] = tn_ident_intern(TN_IDENT_BACKEND, b->name);
        p->server_ids[i] = tn_xcalloc(b->nservers ? b->nservers : 1, sizeof(**p->server_ids));
        for (j = 0; j < b->nservers; j++) {
            snprintf(name, sizeof(name), "%s/%s", b->name, b->servers[j].name);
            p->server_ids[i][j] = tn_ident_intern(TN_IDENT_SERVER, name);
        }
    }
}

static void free_ids(struct tn_plan *p)
{
    size_t i;

    if (p->server_ids)
        for (i = 0; i < p->conf->nbackends; i++)
            free(p->server_ids[i]);
    free(p->server_ids);
    free(p->backend_ids);
}

struct tn_plan *tn_plan_new(struct tn_conf *conf, uint64_t version, char **err)
{
    struct errbuf eb = {NULL, 0};
    struct tn_plan *p;
    size_t i;

    TN_BUG_ON(!conf);
    if (err)
        *err = NULL;
    p = tn_xcalloc(1, sizeof(*p));
    atomic_init(&p->refs, 1);
    p->version = version;
    p->conf = conf;
    p->nroutes = conf->nroutes;
    if (conf->nroutes)
        p->routes = tn_xcalloc(conf->nroutes, sizeof(*p->routes));
    for (i = 0; i < conf->nroutes; i++) {
        (void)build_route(&eb, conf, &conf->routes[i], &p->routes[i]);
        p->needs |= p->routes[i].needs;
    }
    if (eb.len)
        goto fail;
    init_modules(&eb, p);
    if (eb.len)
        goto fail;
    assign_ids(p);
    if (conf->overrides.header && conf->overrides.token_env) {
        const char *tok = getenv(conf->overrides.token_env);

        if (tok && *tok) {
            p->override_token = tn_xstrdup(tok);
            p->override_token_len = strlen(tok);
        }
    }
    return p;
fail:
    if (err)
        *err = eb.s;
    else
        free(eb.s);
    free_modules(p);
    free_routes(p);
    tn_conf_free(p->conf);
    free(p);
    return NULL;
}

struct tn_plan *tn_plan_ref(struct tn_plan *p)
{
    if (p)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void tn_plan_unref(struct tn_plan *p)
{
    if (!p)
        return;
    /* release: this thread's reads of the plan happen before the free */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_release) != 1)
        return;
    atomic_thread_fence(memory_order_acquire);
    free(p->override_token);
    free_modules(p);
    free_routes(p);
    free_ids(p);
    tn_conf_free(p->conf);
    free(p);
}
