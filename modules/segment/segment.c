/* The segment module: named user segments (`segments:`) from a header, a
 * cookie or a query parameter (a value, a list of values, or a regex), or
 * from a Redis set of sticky keys loaded into a local set by the control
 * plane (never looked up in Redis on the request path). Computes every
 * segment of a request at once, as a bit mask. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "turnout/common.h"
#include "turnout/conf-yaml.h"
#include "turnout/conf.h"
#include "turnout/h1.h"
#include "turnout/module.h"
#include "turnout/overlay.h"
#include "turnout/route.h"
#include "turnout/strset.h"

/* ---- configuration ---- */

struct segment_tmp {
    char *header, *cookie, *query, *redis_set, *regex;
    struct tn_conf_strlist equals;
};

static const struct tn_conf_key segment_keys[] = {
    KCHK("header", TN_CONF_STRING, struct segment_tmp, header, tn_conf_check_token),
    KCHK("cookie", TN_CONF_STRING, struct segment_tmp, cookie, tn_conf_check_token),
    KEY("query", TN_CONF_STRING, struct segment_tmp, query),
    KEY("redis_set", TN_CONF_STRING, struct segment_tmp, redis_set),
    KEY("equals", TN_CONF_STRLIST, struct segment_tmp, equals), /* a value or a list */
    KEY("regex", TN_CONF_REGEX, struct segment_tmp, regex),
    KEND,
};

static void segment_tmp_free(struct segment_tmp *t)
{
    free(t->header);
    free(t->cookie);
    free(t->query);
    free(t->redis_set);
    tn_conf_strlist_free(&t->equals);
    free(t->regex);
}

/* Turns the keys of one segment into s, checking the combination. */
static void segment_build(struct tn_conf_ctx *cx, yaml_node_t *n, struct segment_tmp *t,
                          struct tn_conf_segment *s)
{
    int nsrc = !!t->header + !!t->cookie + !!t->query + !!t->redis_set;

    if (nsrc != 1) {
        tn_conf_err(cx, n,
                    "expected exactly one of header, cookie, query or redis_set in "
                    "segment %s",
                    s->name);
    } else if (t->redis_set) {
        s->kind = TN_SEGMENT_REDIS_SET;
        s->source = t->redis_set;
        t->redis_set = NULL;
        if (t->equals.n || t->regex)
            tn_conf_err(cx, n, "expected no equals or regex with redis_set in segment %s", s->name);
    } else {
        s->kind = t->header ? TN_SEGMENT_HEADER : t->cookie ? TN_SEGMENT_COOKIE : TN_SEGMENT_QUERY;
        s->source = t->header ? t->header : t->cookie ? t->cookie : t->query;
        t->header = t->cookie = t->query = NULL;
        if (!t->equals.n == !t->regex)
            tn_conf_err(cx, n, "expected exactly one of equals or regex in segment %s", s->name);
        s->equals = t->equals;
        s->regex = t->regex;
        t->equals = (struct tn_conf_strlist){NULL, 0};
        t->regex = NULL;
    }
    segment_tmp_free(t);
}

static int parse_segments(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf *c = field;
    size_t i, j, len;

    if (tn_conf_want_map(cx, n, "segments") != TN_OK)
        return TN_ERR;
    len = tn_conf_map_len(n);
    c->segments = tn_xcalloc(len ? len : 1, sizeof(*c->segments));
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *kn = tn_conf_map_key(cx, n, i), *vn = tn_conf_map_value(cx, n, i);
        struct tn_conf_segment *s = &c->segments[c->nsegments];
        struct segment_tmp t = {0};

        if (tn_conf_get_string(cx, kn, tn_conf_check_name, &s->name) != TN_OK)
            continue;
        for (j = 0; j < c->nsegments && strcmp(c->segments[j].name, s->name); j++)
            ;
        if (j < c->nsegments) {
            tn_conf_err(cx, kn, "duplicate key \"%s\" in segments", s->name);
            free(s->name);
            s->name = NULL;
            continue;
        }
        c->nsegments++;
        if (tn_conf_walk(cx, vn, "segment", segment_keys, &t, NULL) == TN_OK)
            segment_build(cx, vn, &t, s);
        else
            segment_tmp_free(&t); /* errors already given */
    }
    return TN_OK;
}


static const struct tn_conf_key segment_top_keys[] = {
    {.name = "segments", .type = TN_CONF_FUNC, .off = 0, .fn = parse_segments},
    KEND,
};

/* ---- the module ---- */

struct seg_state {
    size_t n;
    pcre2_code **re; /* [segment]: regex segments, else NULL */
};

static void segment_free(void *state)
{
    struct seg_state *st = state;
    size_t i;

    if (!st)
        return;
    for (i = 0; i < st->n; i++)
        pcre2_code_free(st->re[i]);
    free(st->re);
    free(st);
}

static int segment_init(const struct tn_plan *plan, void **state, char **err)
{
    const struct tn_conf *c = plan->conf;
    struct tn_plan_route *routes = ((struct tn_plan *)plan)->routes;
    struct seg_state *st;
    size_t i, j;

    *state = NULL;
    if (!c->nsegments)
        return TN_OK;
    if (c->nsegments > TN_MAX_SEGMENTS) {
        *err = tn_xstrdup("segments: at most 64 segments\n");
        return TN_ERR;
    }
    st = tn_xcalloc(1, sizeof(*st));
    st->n = c->nsegments;
    st->re = tn_xcalloc(st->n, sizeof(*st->re));
    for (i = 0; i < st->n; i++) {
        PCRE2_SIZE off;
        int rc;

        if (!c->segments[i].regex)
            continue;
        st->re[i] = pcre2_compile((PCRE2_SPTR)c->segments[i].regex, PCRE2_ZERO_TERMINATED, 0, &rc,
                                  &off, NULL);
        if (!st->re[i]) { /* the loader checked it compiles */
            segment_free(st);
            *err = tn_xstrdup("segments: a regex does not compile\n");
            return TN_ERR;
        }
        (void)pcre2_jit_compile(st->re[i], PCRE2_JIT_COMPLETE);
    }
    for (i = 0; i < plan->nroutes; i++) {
        routes[i].segment = -1;
        for (j = 0; routes[i].conf->match.segment && j < c->nsegments; j++)
            if (!strcmp(c->segments[j].name, routes[i].conf->match.segment))
                routes[i].segment = (int)j;
    }
    *state = st;
    return TN_OK;
}

/* The value a header/cookie/query segment looks at. */
static int segment_value(const struct tn_conf_segment *sg, const struct tn_route_req *rq,
                         const char **v, size_t *len)
{
    const struct tn_field *h;

    switch (sg->kind) {
    case TN_SEGMENT_HEADER:
        if (!(h = tn_h1_find(rq->hdrs, rq->nhdrs, sg->source)))
            return 0;
        *v = h->value;
        *len = h->value_len;
        return 1;
    case TN_SEGMENT_COOKIE:
        return tn_h1_cookie(rq->hdrs, rq->nhdrs, sg->source, v, len);
    case TN_SEGMENT_QUERY:
        return rq->target && tn_h1_query_param(rq->target, rq->target_len, sg->source, v, len);
    default:
        return 0;
    }
}

static int in_list(const struct tn_conf_strlist *l, const char *v, size_t len)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        if (strlen(l->v[i]) == len && !memcmp(l->v[i], v, len))
            return 1;
    return 0;
}

/* Whether the user's sticky key is in Redis set `name` (as loaded). */
static int in_redis_set(struct tn_classify *cx, const char *name)
{
    const struct tn_strset *set = tn_overlay_set(cx->ov, name);

    if (!set)
        return 0;
    if (!cx->d->key)
        tn_route_sticky_key(cx->plan, cx->rq, cx->d);
    return cx->d->key && tn_strset_has(set, cx->d->key, cx->d->key_len);
}

static void segment_classify(const void *state, struct tn_classify *cx, void *wk)
{
    const struct seg_state *st = state;
    const struct tn_conf *c = cx->plan->conf;
    uint64_t bits = 0;
    size_t i;

    (void)wk;
    for (i = 0; i < st->n; i++) {
        const struct tn_conf_segment *sg = &c->segments[i];
        const char *v = NULL;
        size_t len = 0;
        int in;

        if (sg->kind == TN_SEGMENT_REDIS_SET)
            in = in_redis_set(cx, sg->source);
        else if (!segment_value(sg, cx->rq, &v, &len))
            in = 0;
        else if (st->re[i])
            in = pcre2_match(st->re[i], (PCRE2_SPTR)v, len, 0, 0, cx->md, NULL) >= 0;
        else
            in = in_list(&sg->equals, v, len);
        if (in)
            bits |= (uint64_t)1 << i;
    }
    cx->facts.segments = bits;
}

const struct tn_module tn_module_segment = {
    .name = "segment",
    .facts = TN_FACT_SEGMENTS,
    .keys = segment_top_keys,
    .init = segment_init,
    .free = segment_free,
    .classify = segment_classify,
};
