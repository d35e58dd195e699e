/* Unit tests for src/route: sticky buckets (cross-checked against xxhsum and
 * python3-xxhash), the shift split and its monotonicity, sticky key sources,
 * route matching, plan building and reference counting. Configurations are
 * built by hand so these tests do not depend on the YAML loader. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pcre2.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/route.h"

/* ---- hand-built configurations (freed by tn_conf_free through the plan) ---- */

static struct tn_conf *conf_new(void)
{
    struct tn_conf *c = tn_xcalloc(1, sizeof(*c));

    c->nbackends = 2;
    c->backends = tn_xcalloc(2, sizeof(*c->backends));
    c->backends[0].name = tn_xstrdup("legacy");
    c->backends[1].name = tn_xstrdup("new");
    return c;
}

static void strlist_add(struct tn_conf_strlist *l, const char *s)
{
    l->v = tn_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = tn_xstrdup(s);
}

/* Appends a route matching everything; the pointer is valid until the next
 * conf_route() call. */
static struct tn_conf_route *conf_route(struct tn_conf *c, const char *name)
{
    struct tn_conf_route *r;

    c->routes = tn_xrealloc(c->routes, (c->nroutes + 1) * sizeof(*c->routes));
    r = &c->routes[c->nroutes++];
    memset(r, 0, sizeof(*r));
    r->name = tn_xstrdup(name);
    r->backend_idx = r->from_idx = r->to_idx = -1;
    return r;
}

static void route_shift(struct tn_conf_route *r, uint32_t percent_x100)
{
    r->has_shift = 1;
    r->shift_from = tn_xstrdup("legacy");
    r->shift_to = tn_xstrdup("new");
    r->from_idx = 0;
    r->to_idx = 1;
    r->percent_x100 = percent_x100;
}

static void route_pin(struct tn_conf_route *r, const char *backend, int idx)
{
    r->backend = tn_xstrdup(backend);
    r->backend_idx = idx;
}

static void match_header(struct tn_conf_route *r, const char *name, const char *re)
{
    struct tn_conf_match *m = &r->match;

    m->headers = tn_xrealloc(m->headers, (m->nheaders + 1) * sizeof(*m->headers));
    m->headers[m->nheaders].name = tn_xstrdup(name);
    m->headers[m->nheaders].regex = tn_xstrdup(re);
    m->nheaders++;
}

static void sticky_add(struct tn_conf *c, enum tn_sticky_kind kind, const char *name)
{
    c->sticky = tn_xrealloc(c->sticky, (c->nsticky + 1) * sizeof(*c->sticky));
    c->sticky[c->nsticky].kind = kind;
    c->sticky[c->nsticky].name = name ? tn_xstrdup(name) : NULL;
    c->nsticky++;
}

static void assign_on(struct tn_conf *c)
{
    c->assign_cookie.enabled = 1;
    c->assign_cookie.name = tn_xstrdup("turnout_uid");
    c->assign_cookie.max_age_s = 90 * 86400;
}

static struct tn_plan *plan_ok(struct tn_conf *c)
{
    char *err = NULL;
    struct tn_plan *p = tn_plan_new(c, 1, &err);

    if (!p)
        ck_abort_msg("tn_plan_new failed: %s", err ? err : "(no error text)");
    ck_assert_ptr_null(err);
    return p;
}

/* ---- requests ---- */

struct treq {
    struct tn_route_req rq;
    struct tn_field hdrs[16];
};

static void req_init(struct treq *t, const char *method, const char *host, const char *target,
                     const char *ip)
{
    memset(t, 0, sizeof(*t));
    t->rq.method = method;
    t->rq.method_len = method ? strlen(method) : 0;
    t->rq.host = host;
    t->rq.host_len = host ? strlen(host) : 0;
    t->rq.target = target;
    t->rq.target_len = target ? strlen(target) : 0;
    t->rq.hdrs = t->hdrs;
    t->rq.client_ip = ip;
}

static void req_hdr(struct treq *t, const char *name, const char *value)
{
    struct tn_field *h = &t->hdrs[t->rq.nhdrs++];

    ck_assert_uint_le(t->rq.nhdrs, TN_ARRAY_LEN(t->hdrs));
    h->name = name;
    h->name_len = (uint32_t)strlen(name);
    h->value = value;
    h->value_len = (uint32_t)strlen(value);
}

static pcre2_match_data *md_new(void)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);

    ck_assert_ptr_nonnull(md);
    return md;
}

/* Decides a GET for target with one X-User-Id header (when key is set). */
static int decide_key(const struct tn_plan *p, pcre2_match_data *md, const char *target,
                      const char *key, struct tn_decision *d)
{
    struct treq t;

    req_init(&t, "GET", "example.com", target, "192.0.2.1");
    if (key)
        req_hdr(&t, "X-User-Id", key);
    return tn_route_decide(p, &t.rq, md, d);
}

/* ---- buckets ---- */

struct vector {
    const char *name;
    size_t name_rep; /* name is one char repeated, when non-zero */
    const char *key;
    size_t key_rep;
    uint32_t bucket;
};

/* Expected buckets from python3-xxhash:
 *   xxhash.xxh3_64_intdigest(name + b'\0' + key) % 1000000
 * and for the first one also `printf 'default\0u42' | xxhsum -H3`
 * = 14028707345e801e. Keys past 256 bytes are hashed on 256 bytes. */
static const struct vector vectors[] = {
    {"default", 0, "u42", 0, 109278},
    {"default", 0, "u7", 0, 547261}, /* f4a9c73488e66f7d: above 2^63 */
    {"default", 0, "", 0, 115735},
    {"tv-eu", 0, "10.0.0.1", 0, 687635},
    {"", 0, "x", 0, 182528},
    {"r", 0, "u1", 0, 720544},
    {"shift", 0, "u42", 0, 863153},
    {"beta", 0, "0123456789abcdef0123456789abcdef", 0, 138431},
    {"default", 0, "0123456789abcdef0123456789abcdef", 0, 593110},
    {"default", 0, "a", 256, 647043},
    {"default", 0, "a", 300, 647043}, /* truncated to 256: same bucket */
    {"n", 250, "k", 256, 273320},     /* 507 bytes: stack buffer */
    {"n", 300, "k", 256, 700715},     /* 557 bytes: streaming */
    {"n", 300, "k", 400, 700715},     /* streaming and truncated */
    {"r", 600, "u42", 0, 566366},     /* long route name: streaming */
};

static char *repeat(const char *s, size_t n)
{
    char *out;

    if (!n)
        return tn_xstrdup(s);
    out = tn_xmalloc(n + 1);
    memset(out, s[0], n);
    out[n] = '\0';
    return out;
}

START_TEST(bucket_vectors)
{
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(vectors); i++) {
        const struct vector *v = &vectors[i];
        char *name = repeat(v->name, v->name_rep);
        char *key = repeat(v->key, v->key_rep);

        ck_assert_msg(tn_route_bucket(name, key, strlen(key)) == v->bucket,
                      "vector %zu: got %u, want %u", i, tn_route_bucket(name, key, strlen(key)),
                      v->bucket);
        free(name);
        free(key);
    }
}
END_TEST

START_TEST(bucket_is_counted_not_terminated)
{
    /* the key is a counted string: bytes past key_len do not count */
    ck_assert_uint_eq(tn_route_bucket("default", "u42-and-more", 3), 109278);
    ck_assert_uint_lt(tn_route_bucket("default", "anything", 8), 1000000);
}
END_TEST

START_TEST(decision_bucket_worked_example)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_decision d;
    struct tn_plan *p;

    sticky_add(c, TN_STICKY_HEADER, "X-User-Id");
    route_shift(conf_route(c, "default"), 2500);
    p = plan_ok(c);
    /* docs/routing.md: "default" + "u42" -> bucket 109278 < 250000 -> to */
    ck_assert_int_eq(decide_key(p, md, "/", "u42", &d), TN_OK);
    ck_assert_int_eq(d.has_bucket, 1);
    ck_assert_uint_eq(d.bucket, 109278);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_TO);
    ck_assert_int_eq(d.backend, 1);
    ck_assert_int_eq(d.key_source, TN_STICKY_HEADER);
    /* the threshold is exclusive: 10.92 % -> 109200 keeps it, 10.93 % moves it */
    p->routes[0].percent_x100 = 1092;
    decide_key(p, md, "/", "u42", &d);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_FROM);
    ck_assert_int_eq(d.backend, 0);
    p->routes[0].percent_x100 = 1093;
    decide_key(p, md, "/", "u42", &d);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_TO);
    /* "u7" -> bucket 547261: "from" up to 54.72 %, "to" from 54.73 % */
    p->routes[0].percent_x100 = 2500;
    decide_key(p, md, "/", "u7", &d);
    ck_assert_uint_eq(d.bucket, 547261);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_FROM);
    p->routes[0].percent_x100 = 5472;
    decide_key(p, md, "/", "u7", &d);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_FROM);
    p->routes[0].percent_x100 = 5473;
    decide_key(p, md, "/", "u7", &d);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_TO);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

/* ---- shift split ---- */

START_TEST(shift_ratio_25)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_decision d;
    struct tn_plan *p;
    unsigned i, to = 0, n = 100000;
    char key[32];

    sticky_add(c, TN_STICKY_HEADER, "X-User-Id");
    route_shift(conf_route(c, "default"), 2500);
    p = plan_ok(c);
    for (i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "user-%u", i);
        ck_assert_int_eq(decide_key(p, md, "/", key, &d), TN_OK);
        to += d.reason == TN_ROUTE_SHIFT_TO;
        ck_assert_int_eq(d.backend, d.reason == TN_ROUTE_SHIFT_TO ? 1 : 0);
    }
    /* within 0.5 percentage point of 25 % */
    ck_assert_msg(to >= 24500 && to <= 25500, "%u of %u went to \"to\"", to, n);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(shift_monotonic)
{
    static const uint32_t steps[] = {0, 100, 500, 2500, 5000, 9999, 10000};
    enum { NKEYS = 50000 };
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    unsigned char *was_to = calloc(NKEYS, 1);
    struct tn_decision d;
    struct tn_plan *p;
    unsigned i, s, count, prev_count = 0;
    char key[32];

    ck_assert_ptr_nonnull(was_to);
    sticky_add(c, TN_STICKY_COOKIE, "uid");
    sticky_add(c, TN_STICKY_HEADER, "X-User-Id");
    route_shift(conf_route(c, "tv-eu"), 0);
    p = plan_ok(c);
    for (s = 0; s < TN_ARRAY_LEN(steps); s++) {
        p->routes[0].percent_x100 = steps[s];
        count = 0;
        for (i = 0; i < NKEYS; i++) {
            int to;

            snprintf(key, sizeof(key), "k%u", i * 7919u);
            decide_key(p, md, "/", key, &d);
            to = d.reason == TN_ROUTE_SHIFT_TO;
            /* a key once on "to" never goes back when the percent grows */
            ck_assert_msg(!was_to[i] || to, "key %s moved back at %u", key, steps[s]);
            was_to[i] = (unsigned char)to;
            count += (unsigned)to;
        }
        ck_assert_uint_ge(count, prev_count);
        prev_count = count;
        if (steps[s] == 0)
            ck_assert_uint_eq(count, 0);
        if (steps[s] == 10000)
            ck_assert_uint_eq(count, NKEYS);
    }
    free(was_to);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

/* ---- sticky keys ---- */

static struct tn_plan *sticky_plan(int assign)
{
    struct tn_conf *c = conf_new();

    sticky_add(c, TN_STICKY_COOKIE, "uid");
    sticky_add(c, TN_STICKY_HEADER, "X-User-Id");
    sticky_add(c, TN_STICKY_QUERY, "u");
    sticky_add(c, TN_STICKY_CLIENT_IP, NULL);
    if (assign)
        assign_on(c);
    route_shift(conf_route(c, "default"), 5000);
    return plan_ok(c);
}

static void key_is(const struct tn_decision *d, enum tn_sticky_kind kind, const char *key)
{
    ck_assert_int_eq(d->key_source, kind);
    ck_assert_ptr_nonnull(d->key);
    ck_assert_uint_eq(d->key_len, strlen(key));
    ck_assert_int_eq(memcmp(d->key, key, d->key_len), 0);
}

START_TEST(sticky_precedence)
{
    struct tn_plan *p = sticky_plan(0);
    pcre2_match_data *md = md_new();
    struct tn_decision d;
    struct treq t;

    req_init(&t, "GET", "h", "/x?a=1&u=q77", "198.51.100.7");
    req_hdr(&t, "Cookie", "a=b; uid=c55");
    req_hdr(&t, "X-User-Id", "h66");
    ck_assert_int_eq(tn_route_decide(p, &t.rq, md, &d), TN_OK);
    key_is(&d, TN_STICKY_COOKIE, "c55");
    ck_assert_uint_eq(d.bucket, tn_route_bucket("default", "c55", 3));
    ck_assert_int_eq(d.set_cookie, 0);

    req_init(&t, "GET", "h", "/x?a=1&u=q77", "198.51.100.7");
    req_hdr(&t, "Cookie", "a=b");
    req_hdr(&t, "x-user-id", "h66");
    tn_route_decide(p, &t.rq, md, &d);
    key_is(&d, TN_STICKY_HEADER, "h66");

    /* an empty header counts as absent */
    req_init(&t, "GET", "h", "/x?a=1&u=q77", "198.51.100.7");
    req_hdr(&t, "X-User-Id", "");
    tn_route_decide(p, &t.rq, md, &d);
    key_is(&d, TN_STICKY_QUERY, "q77");

    /* an empty query parameter counts as absent */
    req_init(&t, "GET", "h", "/x?u=&a=1", "198.51.100.7");
    tn_route_decide(p, &t.rq, md, &d);
    key_is(&d, TN_STICKY_CLIENT_IP, "198.51.100.7");
    ck_assert_uint_eq(d.bucket, tn_route_bucket("default", "198.51.100.7", 12));
    ck_assert_int_eq(d.set_cookie, 0);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(sticky_sources_alone)
{
    struct tn_conf *c = conf_new();
    struct tn_decision d;
    struct tn_plan *p;
    struct treq t;

    sticky_add(c, TN_STICKY_QUERY, "user");
    route_shift(conf_route(c, "default"), 5000);
    p = plan_ok(c);
    req_init(&t, "GET", "h", "/p?user=abc", "192.0.2.9");
    req_hdr(&t, "Cookie", "user=zzz");
    tn_route_sticky_key(p, &t.rq, &d);
    key_is(&d, TN_STICKY_QUERY, "abc");
    /* no source at all: no key */
    req_init(&t, "GET", "h", "/p", "192.0.2.9");
    tn_route_sticky_key(p, &t.rq, &d);
    ck_assert_int_eq(d.key_source, TN_STICKY_NONE);
    ck_assert_ptr_null(d.key);
    ck_assert_int_eq(d.set_cookie, 0);
    tn_plan_unref(p);
}
END_TEST

START_TEST(sticky_keyless_shift)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_decision d;
    struct tn_plan *p;

    sticky_add(c, TN_STICKY_HEADER, "X-User-Id");
    route_shift(conf_route(c, "default"), 9999);
    p = plan_ok(c);
    /* nothing to stay sticky on: "from" unless the route is at 100 % */
    ck_assert_int_eq(decide_key(p, md, "/", NULL, &d), TN_OK);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_FROM);
    ck_assert_int_eq(d.has_bucket, 0);
    ck_assert_int_eq(d.key_source, TN_STICKY_NONE);
    p->routes[0].percent_x100 = 10000;
    decide_key(p, md, "/", NULL, &d);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_TO);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(sticky_long_key_truncated)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    char *k300 = repeat("a", 300);
    struct tn_decision d;
    struct tn_plan *p;

    sticky_add(c, TN_STICKY_HEADER, "X-User-Id");
    route_shift(conf_route(c, "default"), 5000);
    p = plan_ok(c);
    decide_key(p, md, "/", k300, &d);
    ck_assert_uint_eq(d.key_len, 300);   /* the key is reported whole */
    ck_assert_uint_eq(d.bucket, 647043); /* hashed on its first 256 bytes */
    free(k300);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

static int is_uid(const char *s, size_t len)
{
    size_t i;

    if (len != TN_ROUTE_UID_LEN || s[len] != '\0')
        return 0;
    for (i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

START_TEST(sticky_assign_cookie)
{
    struct tn_plan *p = sticky_plan(1);
    pcre2_match_data *md = md_new();
    struct tn_decision d, d2;
    struct treq t;

    /* configured sources still come first */
    req_init(&t, "GET", "h", "/x?u=q77", "198.51.100.7");
    req_hdr(&t, "Cookie", "turnout_uid=0123456789abcdef0123456789abcdef");
    tn_route_decide(p, &t.rq, md, &d);
    key_is(&d, TN_STICKY_QUERY, "q77");
    ck_assert_int_eq(d.set_cookie, 0);

    /* then the assign cookie, before client_ip */
    req_init(&t, "GET", "h", "/x", "198.51.100.7");
    req_hdr(&t, "Cookie", "turnout_uid=0123456789abcdef0123456789abcdef");
    tn_route_decide(p, &t.rq, md, &d);
    key_is(&d, TN_STICKY_ASSIGNED, "0123456789abcdef0123456789abcdef");
    ck_assert_int_eq(d.set_cookie, 0);
    ck_assert_uint_eq(d.bucket, 593110);

    /* absent: a fresh uid, to be set as a cookie; client_ip is never used */
    req_init(&t, "GET", "h", "/x", "198.51.100.7");
    tn_route_decide(p, &t.rq, md, &d);
    ck_assert_int_eq(d.key_source, TN_STICKY_ASSIGNED);
    ck_assert_int_eq(d.set_cookie, 1);
    ck_assert_ptr_eq(d.key, d.key_buf);
    ck_assert_msg(is_uid(d.key_buf, d.key_len), "bad uid \"%s\"", d.key_buf);
    ck_assert_int_eq(d.has_bucket, 1);
    ck_assert_uint_eq(d.bucket, tn_route_bucket("default", d.key_buf, TN_ROUTE_UID_LEN));
    tn_route_decide(p, &t.rq, md, &d2);
    ck_assert_msg(is_uid(d2.key_buf, d2.key_len), "bad uid \"%s\"", d2.key_buf);
    ck_assert_str_ne(d.key_buf, d2.key_buf);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

static void *uid_thread(void *arg)
{
    struct tn_plan *p = arg;
    struct tn_decision *d = tn_xcalloc(1, sizeof(*d));
    struct treq t;

    req_init(&t, "GET", "h", "/", "192.0.2.1");
    tn_route_sticky_key(p, &t.rq, d);
    return d;
}

START_TEST(sticky_uid_per_thread)
{
    struct tn_plan *p = sticky_plan(1);
    struct tn_decision *d[4];
    pthread_t th[4];
    int i, j;

    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, uid_thread, p), 0);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_join(th[i], (void **)&d[i]), 0);
    for (i = 0; i < 4; i++) {
        ck_assert(is_uid(d[i]->key_buf, d[i]->key_len));
        ck_assert_int_eq(d[i]->set_cookie, 1);
        for (j = 0; j < i; j++)
            ck_assert_str_ne(d[i]->key_buf, d[j]->key_buf);
    }
    for (i = 0; i < 4; i++)
        free(d[i]);
    tn_plan_unref(p);
}
END_TEST

START_TEST(sticky_uid_after_fork)
{
    struct tn_plan *p = sticky_plan(1);
    struct tn_decision d, mine;
    char theirs[TN_ROUTE_UID_LEN + 1] = "";
    struct treq t;
    int fds[2], status;
    pid_t pid;

    req_init(&t, "GET", "h", "/", "192.0.2.1");
    tn_route_sticky_key(p, &t.rq, &d); /* seeds this thread's generator */
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        tn_route_sticky_key(p, &t.rq, &d);
        _exit(write(fds[1], d.key_buf, TN_ROUTE_UID_LEN) == TN_ROUTE_UID_LEN ? 0 : 1);
    }
    tn_route_sticky_key(p, &t.rq, &mine);
    ck_assert_int_eq(read(fds[0], theirs, TN_ROUTE_UID_LEN), TN_ROUTE_UID_LEN);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* the child reseeded: it does not replay the parent's next uid */
    ck_assert_str_ne(mine.key_buf, theirs);
    close(fds[0]);
    close(fds[1]);
    tn_plan_unref(p);
}
END_TEST

/* ---- matching ---- */

static int decide_route(const struct tn_plan *p, pcre2_match_data *md, struct treq *t)
{
    struct tn_decision d;

    if (tn_route_decide(p, &t->rq, md, &d) != TN_OK) {
        ck_assert_int_eq(d.route, -1);
        ck_assert_int_eq(d.backend, -1);
        ck_assert_int_eq(d.reason, TN_ROUTE_NO_ROUTE);
        return -1;
    }
    return d.route;
}

START_TEST(match_host)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_conf_route *r;
    struct tn_plan *p;
    struct treq t;

    r = conf_route(c, "api");
    r->match.host = tn_xstrdup("^api\\.example\\.com$");
    route_pin(r, "new", 1);
    r = conf_route(c, "v6");
    r->match.host = tn_xstrdup("^\\[::1\\]$");
    route_pin(r, "new", 1);
    p = plan_ok(c);

    req_init(&t, "GET", "api.example.com", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 0);
    req_init(&t, "GET", "api.example.com:8080", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 0);
    req_init(&t, "GET", "API.Example.COM", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 0); /* host names are case-insensitive */
    req_init(&t, "GET", "www.example.com", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    req_init(&t, "GET", "[::1]:80", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 1);
    req_init(&t, "GET", "[::1]", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 1);
    req_init(&t, "GET", NULL, "/", "192.0.2.1"); /* no Host: a host match cannot hold */
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(match_path)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_conf_route *r;
    struct tn_plan *p;
    struct treq t;

    r = conf_route(c, "api");
    r->match.path = tn_xstrdup("^/api/");
    route_pin(r, "new", 1);
    r = conf_route(c, "m3u8");
    r->match.path = tn_xstrdup("\\.m3u8$"); /* unanchored search, $ at the end of the path */
    route_pin(r, "new", 1);
    r = conf_route(c, "query");
    r->match.path = tn_xstrdup("token");
    route_pin(r, "new", 1);
    r = conf_route(c, "groups"); /* more groups than the 1-pair match data holds */
    r->match.path = tn_xstrdup("^/(live|vod)/(\\d+)$");
    route_pin(r, "new", 1);
    p = plan_ok(c);

    req_init(&t, "GET", "h", "/api/v1/items?x=1", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 0);
    req_init(&t, "GET", "h", "/v2/api/items", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    req_init(&t, "GET", "h", "/live/ch1/index.m3u8?token=abc", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 1);
    req_init(&t, "GET", "h", "/live?token=abc", "192.0.2.1"); /* the query is not searched */
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    req_init(&t, "GET", "h", "/token/x", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 2);
    req_init(&t, "GET", "h", "/vod/123?t=1", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 3);
    req_init(&t, "GET", "h", "/vod/12a", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(match_method)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_conf_route *r;
    struct tn_plan *p;
    struct treq t;

    r = conf_route(c, "reads");
    strlist_add(&r->match.methods, "GET");
    strlist_add(&r->match.methods, "HEAD");
    route_pin(r, "new", 1);
    p = plan_ok(c);

    req_init(&t, "GET", "h", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 0);
    req_init(&t, "HEAD", "h", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), 0);
    req_init(&t, "get", "h", "/", "192.0.2.1"); /* methods are case-sensitive */
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    req_init(&t, "POST", "h", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    req_init(&t, "GE", "h", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    req_init(&t, "GETX", "h", "/", "192.0.2.1");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(match_header_regex)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_conf_route *r;
    struct tn_plan *p;
    struct treq t;

    r = conf_route(c, "beta-tv");
    match_header(r, "X-Tier", "^beta$");
    match_header(r, "User-Agent", "SmartTV");
    route_pin(r, "new", 1);
    p = plan_ok(c);

    req_init(&t, "GET", "h", "/", "192.0.2.1");
    req_hdr(&t, "x-tier", "beta");
    req_hdr(&t, "User-Agent", "Mozilla/5.0 (SmartTV; Tizen)");
    ck_assert_int_eq(decide_route(p, md, &t), 0);
    /* both must hold */
    req_init(&t, "GET", "h", "/", "192.0.2.1");
    req_hdr(&t, "X-Tier", "beta");
    req_hdr(&t, "User-Agent", "curl/8");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    /* absent header: no match */
    req_init(&t, "GET", "h", "/", "192.0.2.1");
    req_hdr(&t, "User-Agent", "SmartTV");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    /* the first field with that name is the one tested */
    req_init(&t, "GET", "h", "/", "192.0.2.1");
    req_hdr(&t, "X-Tier", "gold");
    req_hdr(&t, "X-Tier", "beta");
    req_hdr(&t, "User-Agent", "SmartTV");
    ck_assert_int_eq(decide_route(p, md, &t), -1);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(match_first_wins_and_pin)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_conf_route *r;
    struct tn_decision d;
    struct tn_plan *p;

    sticky_add(c, TN_STICKY_HEADER, "X-User-Id");
    assign_on(c);
    r = conf_route(c, "api");
    r->match.path = tn_xstrdup("^/api/");
    route_pin(r, "legacy", 0);
    r = conf_route(c, "api-v2");
    r->match.path = tn_xstrdup("^/api/v2/");
    route_pin(r, "new", 1);
    route_shift(conf_route(c, "default"), 10000);
    p = plan_ok(c);

    /* /api/v2/ also matches route 1, but route 0 comes first */
    ck_assert_int_eq(decide_key(p, md, "/api/v2/x", "u42", &d), TN_OK);
    ck_assert_int_eq(d.route, 0);
    ck_assert_int_eq(d.backend, 0);
    ck_assert_int_eq(d.reason, TN_ROUTE_ROUTE_PIN);
    ck_assert_int_eq(d.key_source, TN_STICKY_NONE); /* a pin computes no key or bucket */
    ck_assert_ptr_null(d.key);
    ck_assert_int_eq(d.has_bucket, 0);
    ck_assert_int_eq(d.set_cookie, 0);
    decide_key(p, md, "/", "u42", &d);
    ck_assert_int_eq(d.route, 2);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_TO);
    ck_assert_int_eq(d.backend, 1);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(match_no_route)
{
    struct tn_conf *c = conf_new();
    pcre2_match_data *md = md_new();
    struct tn_conf_route *r;
    struct tn_decision d;
    struct tn_plan *p;

    r = conf_route(c, "api");
    r->match.path = tn_xstrdup("^/api/");
    route_shift(r, 5000);
    p = plan_ok(c);
    ck_assert_int_eq(decide_key(p, md, "/other", "u1", &d), TN_ERR);
    ck_assert_int_eq(d.reason, TN_ROUTE_NO_ROUTE);
    ck_assert_int_eq(d.route, -1);
    ck_assert_int_eq(d.backend, -1);
    ck_assert_int_eq(d.has_bucket, 0);
    ck_assert_str_eq(tn_route_reason_name(d.reason), "no_route");
    tn_plan_unref(p);

    /* an empty route list routes nothing */
    p = plan_ok(conf_new());
    ck_assert_int_eq(decide_key(p, md, "/", "u1", &d), TN_ERR);
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

/* ---- plans ---- */

/* Builds a plan expected to fail; returns the error text (caller frees). */
static char *plan_fails(struct tn_conf *c)
{
    char *err = NULL;

    ck_assert_ptr_null(tn_plan_new(c, 7, &err));
    ck_assert_ptr_nonnull(err);
    return err;
}

START_TEST(plan_rejects_bad_regex)
{
    struct tn_conf *c = conf_new();
    struct tn_conf_route *r;
    char *err;

    r = conf_route(c, "ok");
    r->match.path = tn_xstrdup("^/fine/");
    route_pin(r, "new", 1);
    r = conf_route(c, "bad");
    r->match.path = tn_xstrdup("^/api/(");
    route_pin(r, "new", 1);
    err = plan_fails(c);
    ck_assert_msg(strstr(err, "route bad: match.path") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "bad regex") != NULL, "%s", err);
    free(err);

    c = conf_new();
    r = conf_route(c, "hdr");
    match_header(r, "X-Tier", "[unclosed");
    route_pin(r, "new", 1);
    err = plan_fails(c);
    ck_assert_msg(strstr(err, "route hdr: match.header.X-Tier: bad regex") != NULL, "%s", err);
    free(err);

    c = conf_new();
    r = conf_route(c, "host");
    r->match.host = tn_xstrdup("*.example.com");
    route_pin(r, "new", 1);
    err = plan_fails(c);
    ck_assert_msg(strstr(err, "route host: match.host: bad regex") != NULL, "%s", err);
    free(err);
}
END_TEST

START_TEST(plan_rejects_classifier_matches_without_their_data)
{
    static const char geo[] = "needs a GeoIP database (geoip: { database: FILE })";
    struct tn_conf *c;
    struct tn_conf_route *r;
    char *err, want[200];

    c = conf_new();
    r = conf_route(c, "tv-eu");
    strlist_add(&r->match.country, "DE");
    strlist_add(&r->match.country, "FR");
    route_shift(r, 2500);
    err = plan_fails(c);
    snprintf(want, sizeof(want), "route tv-eu: match.country %s", geo);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    free(err);

    c = conf_new();
    r = conf_route(c, "eu");
    strlist_add(&r->match.continent, "EU");
    route_pin(r, "new", 1);
    r = conf_route(c, "by");
    strlist_add(&r->match.subdivision, "BY");
    route_pin(r, "new", 1);
    err = plan_fails(c);
    snprintf(want, sizeof(want), "route eu: match.continent %s", geo);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    snprintf(want, sizeof(want), "route by: match.subdivision %s", geo);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err); /* every error is reported */
    free(err);

    c = conf_new();
    r = conf_route(c, "tv");
    r->match.device = tn_xstrdup("smart-tv");
    route_pin(r, "new", 1);
    err = plan_fails(c);
    ck_assert_msg(strstr(err, "route tv: match.device needs a device catalog") != NULL, "%s",
                  err);
    free(err);

    c = conf_new();
    r = conf_route(c, "beta");
    r->match.segment = tn_xstrdup("beta");
    route_pin(r, "new", 1);
    err = plan_fails(c);
    ck_assert_msg(strstr(err, "route beta: match.segment: no segment named \"beta\"") != NULL,
                  "%s", err);
    free(err);
}
END_TEST

START_TEST(plan_rejects_bad_targets)
{
    struct tn_conf *c = conf_new();
    struct tn_conf_route *r;
    char *err;

    r = conf_route(c, "pin");
    r->backend = tn_xstrdup("nowhere");
    r = conf_route(c, "pct");
    route_shift(r, 10001);
    err = plan_fails(c);
    ck_assert_msg(strstr(err, "route pin: backend \"nowhere\" is not defined") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "route pct: shift.percent") != NULL, "%s", err);
    free(err);
    /* a NULL err pointer is allowed */
    c = conf_new();
    r = conf_route(c, "pin");
    r->backend = tn_xstrdup("nowhere");
    ck_assert_ptr_null(tn_plan_new(c, 1, NULL));
}
END_TEST

START_TEST(plan_fields_and_refs)
{
    struct tn_conf *c = conf_new();
    struct tn_conf_route *r;
    struct tn_plan *p;

    r = conf_route(c, "a");
    r->match.host = tn_xstrdup("example");
    r->match.path = tn_xstrdup("^/");
    match_header(r, "X-A", "1");
    route_shift(r, 1234);
    route_pin(conf_route(c, "b"), "legacy", 0);
    p = tn_plan_new(c, 42, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->version, 42);
    ck_assert_ptr_eq(p->conf, c);
    ck_assert_uint_eq(p->nroutes, 2);
    ck_assert_ptr_eq(p->routes[0].conf, &c->routes[0]);
    ck_assert_uint_eq(p->routes[0].percent_x100, 1234);
    ck_assert_ptr_nonnull(p->routes[0].host_re);
    ck_assert_ptr_nonnull(p->routes[0].path_re);
    ck_assert_ptr_nonnull(p->routes[0].header_re);
    ck_assert_ptr_nonnull(p->routes[0].header_re[0]);
    ck_assert_ptr_null(p->routes[1].host_re);
    ck_assert_ptr_null(p->routes[1].path_re);
    ck_assert_uint_eq(atomic_load(&p->refs), 1);
    ck_assert_ptr_eq(tn_plan_ref(p), p);
    ck_assert_ptr_eq(tn_plan_ref(p), p);
    ck_assert_uint_eq(atomic_load(&p->refs), 3);
    tn_plan_unref(p);
    tn_plan_unref(p);
    ck_assert_uint_eq(atomic_load(&p->refs), 1);
    tn_plan_unref(p); /* frees; ASan reports a leak or double free */
    ck_assert_ptr_null(tn_plan_ref(NULL));
    tn_plan_unref(NULL);
}
END_TEST

/* The same semantics through the real YAML loader. */
START_TEST(plan_from_yaml)
{
    static const char yaml[] =
        "listen:\n"
        "  - address: \"127.0.0.1:8080\"\n"
        "backends:\n"
        "  legacy: { servers: [ { address: \"127.0.0.1:9001\" } ] }\n"
        "  new: { servers: [ { address: \"127.0.0.1:9002\" } ] }\n"
        "sticky_key:\n"
        "  - { cookie: uid }\n"
        "  - { header: X-User-Id }\n"
        "routes:\n"
        "  - name: api\n"
        "    match: { host: '^api\\.', path: '^/api/', method: [GET, HEAD] }\n"
        "    backend: new\n"
        "  - name: default\n"
        "    shift: { from: legacy, to: new, percent: 25 }\n";
    pcre2_match_data *md = md_new();
    struct tn_decision d;
    struct tn_conf *c;
    struct tn_plan *p;
    struct treq t;
    char *err = NULL;

    c = tn_conf_load_string("route.yaml", yaml, sizeof(yaml) - 1, &err);
    ck_assert_msg(c != NULL, "load: %s", err ? err : "?");
    p = plan_ok(c);
    ck_assert_uint_eq(p->routes[1].percent_x100, 2500);
    req_init(&t, "GET", "api.example.com:443", "/api/x?u=1", "192.0.2.1");
    ck_assert_int_eq(tn_route_decide(p, &t.rq, md, &d), TN_OK);
    ck_assert_int_eq(d.route, 0);
    ck_assert_int_eq(d.reason, TN_ROUTE_ROUTE_PIN);
    ck_assert_int_eq(d.backend, tn_conf_backend_index(p->conf, "new"));
    req_init(&t, "POST", "api.example.com", "/api/x", "192.0.2.1");
    req_hdr(&t, "Cookie", "uid=u42");
    ck_assert_int_eq(tn_route_decide(p, &t.rq, md, &d), TN_OK);
    ck_assert_int_eq(d.route, 1);
    key_is(&d, TN_STICKY_COOKIE, "u42");
    ck_assert_uint_eq(d.bucket, 109278);
    ck_assert_int_eq(d.reason, TN_ROUTE_SHIFT_TO);
    ck_assert_int_eq(d.backend, tn_conf_backend_index(p->conf, "new"));
    tn_plan_unref(p);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(names)
{
    ck_assert_str_eq(tn_route_reason_name(TN_ROUTE_NO_ROUTE), "no_route");
    ck_assert_str_eq(tn_route_reason_name(TN_ROUTE_ROUTE_PIN), "route_pin");
    ck_assert_str_eq(tn_route_reason_name(TN_ROUTE_SHIFT_TO), "shift_to");
    ck_assert_str_eq(tn_route_reason_name(TN_ROUTE_SHIFT_FROM), "shift_from");
    ck_assert_str_eq(tn_route_sticky_name(TN_STICKY_NONE), "none");
    ck_assert_str_eq(tn_route_sticky_name(TN_STICKY_COOKIE), "cookie");
    ck_assert_str_eq(tn_route_sticky_name(TN_STICKY_HEADER), "header");
    ck_assert_str_eq(tn_route_sticky_name(TN_STICKY_QUERY), "query");
    ck_assert_str_eq(tn_route_sticky_name(TN_STICKY_CLIENT_IP), "client_ip");
    ck_assert_str_eq(tn_route_sticky_name(TN_STICKY_ASSIGNED), "assigned");
}
END_TEST

static Suite *route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, bucket_vectors);
    tcase_add_test(tc, bucket_is_counted_not_terminated);
    tcase_add_test(tc, decision_bucket_worked_example);
    tcase_add_test(tc, shift_ratio_25);
    tcase_add_test(tc, shift_monotonic);
    tcase_add_test(tc, sticky_precedence);
    tcase_add_test(tc, sticky_sources_alone);
    tcase_add_test(tc, sticky_keyless_shift);
    tcase_add_test(tc, sticky_long_key_truncated);
    tcase_add_test(tc, sticky_assign_cookie);
    tcase_add_test(tc, sticky_uid_per_thread);
    tcase_add_test(tc, sticky_uid_after_fork);
    tcase_add_test(tc, match_host);
    tcase_add_test(tc, match_path);
    tcase_add_test(tc, match_method);
    tcase_add_test(tc, match_header_regex);
    tcase_add_test(tc, match_first_wins_and_pin);
    tcase_add_test(tc, match_no_route);
    tcase_add_test(tc, plan_rejects_bad_regex);
    tcase_add_test(tc, plan_rejects_classifier_matches_without_their_data);
    tcase_add_test(tc, plan_rejects_bad_targets);
    tcase_add_test(tc, plan_fields_and_refs);
    tcase_add_test(tc, plan_from_yaml);
    tcase_add_test(tc, names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(route_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
