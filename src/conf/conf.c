/* The turnout configuration schema: one key table per YAML mapping, the
 * defaults, the second pass that resolves names (backends, segments, device
 * classes) and checks cross-key rules, and tn_conf_load, tn_conf_load_string and tn_conf_free.
 * Generic YAML walking and scalar parsing live in yaml.c. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "turnout/common.h"
#include "turnout/conf-yaml.h"
#include "turnout/conf.h"
#include "turnout/log.h"
#include "turnout/stats.h"
#include "turnout/tls.h"
#include "turnout/tlsclient.h"
#include "turnout/module.h"

#define MAX_FILE_SIZE (16u << 20) /* a configuration or device catalog larger is a mistake */

/* The load in progress: the generic context plus what the second pass needs. */
struct loader {
    struct tn_conf_ctx cx; /* first: handlers get &cx and cast back */
    struct tn_conf *c;
    yaml_node_t *routes_node; /* the routes sequence, for second-pass marks */
};

static struct loader *loader_of(struct tn_conf_ctx *cx)
{
    return (struct loader *)cx;
}

/* ---- small helpers ---- */

/* Returns the value node of key in mapping map, or NULL. */
static yaml_node_t *find_value(struct tn_conf_ctx *cx, yaml_node_t *map, const char *key)
{
    size_t i, len;

    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    len = tn_conf_map_len(map);
    for (i = 0; i < len; i++) {
        yaml_node_t *k = tn_conf_map_key(cx, map, i);

        if (k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
            return tn_conf_map_value(cx, map, i);
    }
    return NULL;
}

static const char *check_env_name(char *s)
{
    size_t i;

    for (i = 0; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (!(ch == '_' || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (i && ch >= '0' && ch <= '9')))
            return "an environment variable name like TURNOUT_TOKEN";
    }
    return NULL;
}

static const char *check_country(char *s)
{
    if (strlen(s) != 2)
        return "an ISO 3166-1 alpha-2 country code like DE";
    for (int i = 0; i < 2; i++) {
        if (s[i] >= 'a' && s[i] <= 'z')
            s[i] = (char)(s[i] - 32);
        if (s[i] < 'A' || s[i] > 'Z')
            return "an ISO 3166-1 alpha-2 country code like DE";
    }
    return NULL;
}

static const char *check_continent(char *s)
{
    static const char *const codes[] = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"};

    if (!check_country(s))
        for (size_t i = 0; i < TN_ARRAY_LEN(codes); i++)
            if (!strcmp(s, codes[i]))
                return NULL;
    return "a continent code: AF, AN, AS, EU, NA, OC or SA";
}

static const char *check_subdivision(char *s)
{
    size_t i;

    for (i = 0; s[i]; i++) {
        if (s[i] >= 'a' && s[i] <= 'z')
            s[i] = (char)(s[i] - 32);
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-') ||
            i >= 6)
            return "an ISO 3166-2 subdivision code like BY or DE-BY";
    }
    return NULL;
}

static const char *check_path(char *s)
{
    return s[0] == '/' ? NULL : "a path starting with /";
}

/* ---- listen ---- */

static int parse_certs(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const struct tn_conf_key cert_keys[] = {
        KREQ("cert", TN_CONF_STRING, struct tn_conf_cert, cert),
        KREQ("key", TN_CONF_STRING, struct tn_conf_cert, key),
        KEND,
    };
    struct tn_conf_listen *l = field;
    size_t i, len;

    if (tn_conf_want_seq(cx, n, "certificates") != TN_OK)
        return TN_ERR;
    len = tn_conf_seq_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one { cert, key } in certificates");
    l->certs = tn_xcalloc(len, sizeof(*l->certs));
    l->ncerts = len;
    for (i = 0; i < len; i++) {
        yaml_node_t *item = tn_conf_seq_at(cx, n, i);

        l->certs[i].mark = tn_conf_mark_of(item);
        tn_conf_walk(cx, item, "certificates", cert_keys, &l->certs[i], NULL);
    }
    return TN_OK;
}

static int parse_tls_version(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const char what[] = "\"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are not offered)";
    const char *v = tn_conf_scalar(cx, n, what);
    uint32_t *out = field;

    if (!v)
        return TN_ERR;
    if (!strcmp(v, "1.2") || !strcmp(v, "TLSv1.2"))
        *out = 0x0303;
    else if (!strcmp(v, "1.3") || !strcmp(v, "TLSv1.3"))
        *out = 0x0304;
    else
        return tn_conf_expect(cx, n, what);
    return TN_OK;
}

static const struct tn_conf_key tls_keys[] = {
    {.name = "certificates",
     .type = TN_CONF_FUNC,
     .off = 0,
     .fn = parse_certs,
     .flags = TN_CONF_K_REQUIRED},
    KFN("min_version", struct tn_conf_listen, tls_min_version, parse_tls_version),
    KEY("ciphers", TN_CONF_STRING, struct tn_conf_listen, tls_ciphers),
    KEY("ciphersuites", TN_CONF_STRING, struct tn_conf_listen, tls_ciphersuites),
    KMIN("handshake_timeout", TN_CONF_DURATION, struct tn_conf_listen, tls_handshake_ms, 1),
    KEY("session_tickets", TN_CONF_BOOL, struct tn_conf_listen, tls_tickets),
    KU32("session_cache", struct tn_conf_listen, tls_session_cache, 0, 10000000),
    KEY("h2", TN_CONF_BOOL, struct tn_conf_listen, tls_h2),
    KEND,
};

static const struct tn_conf_key listen_keys[] = {
    KREQ("address", TN_CONF_ADDR, struct tn_conf_listen, addr),
    {.name = "tls", .type = TN_CONF_MAP, .off = 0, .sub = tls_keys},
    KEY("h2c", TN_CONF_BOOL, struct tn_conf_listen, h2c),
    KEND,
};

static int same_sockaddr(const struct tn_conf_addr *a, const struct tn_conf_addr *b)
{
    return a->len && a->len == b->len && !memcmp(&a->ss, &b->ss, a->len);
}

static int parse_listen(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf *c = field;
    size_t i, j, len;

    if (tn_conf_want_seq(cx, n, "listen") != TN_OK)
        return TN_ERR;
    len = tn_conf_seq_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one listener in listen");
    c->listens = tn_xcalloc(len, sizeof(*c->listens));
    c->nlistens = len;
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *item = tn_conf_seq_at(cx, n, i);
        struct tn_conf_listen *l = &c->listens[i];
        struct tn_conf_key k = listen_keys[0];

        l->tls_min_version = 0x0303;
        l->tls_handshake_ms = 10000;
        l->tls_tickets = 1;
        l->tls_session_cache = 20480;
        l->tls_h2 = 1;
        l->h2c = 1;
        if (item->type == YAML_SCALAR_NODE) /* "- 0.0.0.0:8080" shorthand */
            tn_conf_value(cx, item, &k, &l->addr);
        else
            tn_conf_walk(cx, item, "listen", listen_keys, l, NULL);
        for (j = 0; j < i; j++)
            if (same_sockaddr(&c->listens[j].addr, &l->addr))
                tn_conf_err(cx, item, "duplicate listen address \"%s\"", l->addr.text);
    }
    return TN_OK;
}

/* ---- admin, redis, geoip, overrides, trusted_proxies ---- */

static int parse_admin_allow(struct tn_conf_ctx *cx, yaml_node_t *n, void *field);

static int parse_admin_http(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const struct tn_conf_key k = {.name = "http", .type = TN_CONF_ADDR};
    struct tn_conf_admin *a = field;

    if (tn_conf_value(cx, n, &k, &a->http_addr) != TN_OK)
        return TN_ERR;
    free(a->http);
    a->http = tn_xstrdup(a->http_addr.text);
    return TN_OK;
}

static const struct tn_conf_key admin_keys[] = {
    KEY("socket", TN_CONF_STRING, struct tn_conf_admin, socket),
    KEY("socket_mode", TN_CONF_MODE, struct tn_conf_admin, socket_mode),
    {.name = "http", .type = TN_CONF_FUNC, .off = 0, .fn = parse_admin_http},
    {.name = "http_allow", .type = TN_CONF_FUNC, .off = 0, .fn = parse_admin_allow},
    KEND,
};

static int parse_redis_address(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const struct tn_conf_key k = {.name = "address", .type = TN_CONF_ADDR};
    struct tn_conf_redis *r = field;

    if (tn_conf_value(cx, n, &k, &r->addr) != TN_OK)
        return TN_ERR;
    free(r->address);
    r->address = tn_xstrdup(r->addr.text);
    return TN_OK;
}

static int parse_sentinels(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const struct tn_conf_key k = {.name = "sentinels", .type = TN_CONF_ADDR};
    struct tn_conf_redis *r = field;
    size_t i, len;

    if (tn_conf_want_seq(cx, n, "sentinels") != TN_OK)
        return TN_ERR;
    len = tn_conf_seq_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one sentinel address like 127.0.0.1:26379");
    r->sentinels = tn_xcalloc(len, sizeof(*r->sentinels));
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        if (tn_conf_value(cx, tn_conf_seq_at(cx, n, i), &k, &r->sentinels[r->nsentinels]) ==
            TN_OK)
            r->nsentinels++;
    }
    return TN_OK;
}

static const struct tn_conf_key redis_keys[] = {
    {.name = "address", .type = TN_CONF_FUNC, .off = 0, .fn = parse_redis_address},
    KCHK("password_env", TN_CONF_STRING, struct tn_conf_redis, password_env, check_env_name),
    KCHK("namespace", TN_CONF_STRING, struct tn_conf_redis, namespace_, tn_conf_check_name),
    {.name = "sentinels", .type = TN_CONF_FUNC, .off = 0, .fn = parse_sentinels},
    KCHK("master", TN_CONF_STRING, struct tn_conf_redis, master, tn_conf_check_name),
    KMIN("resync", TN_CONF_DURATION, struct tn_conf_redis, resync_ms, 100),
    KMIN("connect_timeout", TN_CONF_DURATION, struct tn_conf_redis, connect_timeout_ms, 1),
    KEND,
};

/* redis: needs an address or sentinels with a master name. */
static int parse_redis(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_redis *r = field;

    if (tn_conf_walk(cx, n, "redis", redis_keys, r, NULL) != TN_OK)
        return TN_ERR;
    if (!r->address && !r->nsentinels)
        return tn_conf_expect(cx, n, "redis.address or redis.sentinels");
    if (r->address && r->nsentinels)
        return tn_conf_expect(cx, n, "either redis.address or redis.sentinels, not both");
    if (r->nsentinels && !r->master)
        return tn_conf_expect(cx, n, "redis.master (the Sentinel master name) with sentinels");
    return TN_OK;
}

static const struct tn_conf_key overrides_keys[] = {
    KCHK("header", TN_CONF_STRING, struct tn_conf_overrides, header, tn_conf_check_token),
    KCHK("token_header", TN_CONF_STRING, struct tn_conf_overrides, token_header,
         tn_conf_check_token),
    KCHK("token_env", TN_CONF_STRING, struct tn_conf_overrides, token_env, check_env_name),
    KEND,
};

/* A network or a list of them (trusted_proxies, admin.http_allow). */
static int parse_networks(struct tn_conf_ctx *cx, yaml_node_t *n, struct tn_conf_cidr **out,
                          size_t *count)
{
    static const char what[] = "a network like 10.0.0.0/8 or ::1/128 (no host bits set)";
    size_t i, len = 1;

    if (n->type == YAML_SEQUENCE_NODE)
        len = tn_conf_seq_len(n);
    else if (n->type != YAML_SCALAR_NODE)
        return tn_conf_expect(cx, n, "a list of networks like 10.0.0.0/8");
    free(*out);
    *count = 0;
    *out = tn_xcalloc(len ? len : 1, sizeof(**out));
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *item = n->type == YAML_SEQUENCE_NODE ? tn_conf_seq_at(cx, n, i) : n;
        const char *s = tn_conf_scalar(cx, item, what);

        if (!s)
            continue;
        if (tn_conf_parse_cidr(s, &(*out)[*count]) != TN_OK)
            tn_conf_expect(cx, item, what);
        else
            (*count)++;
    }
    return TN_OK;
}

static int parse_trusted(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf *c = field;

    return parse_networks(cx, n, &c->trusted_proxies, &c->ntrusted_proxies);
}

static int parse_admin_allow(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_admin *a = field;

    return parse_networks(cx, n, &a->http_allow, &a->nhttp_allow);
}

/* ---- timeouts, limits ---- */

static const struct tn_conf_key timeout_keys[] = {
    KMIN("client_header", TN_CONF_DURATION, struct tn_conf_timeouts, client_header_ms, 1),
    KMIN("client_body", TN_CONF_DURATION, struct tn_conf_timeouts, client_body_ms, 1),
    KMIN("client_idle", TN_CONF_DURATION, struct tn_conf_timeouts, client_idle_ms, 1),
    KMIN("connect", TN_CONF_DURATION, struct tn_conf_timeouts, connect_ms, 1),
    KMIN("response", TN_CONF_DURATION, struct tn_conf_timeouts, response_ms, 1),
    KMIN("upstream_idle", TN_CONF_DURATION, struct tn_conf_timeouts, upstream_idle_ms, 1),
    KEY("drain", TN_CONF_DURATION, struct tn_conf_timeouts, drain_ms), /* 0: close at once */
    KEND,
};

static const struct tn_conf_key limit_keys[] = {
    KMIN("header_size", TN_CONF_SIZE, struct tn_conf_limits, header_size, 1024),
    KU32("headers", struct tn_conf_limits, headers, 1, 10000),
    KMIN("uri", TN_CONF_SIZE, struct tn_conf_limits, uri, 64),
    KU32("connections", struct tn_conf_limits, connections, 1, 10000000),
    KEY("body", TN_CONF_SIZE, struct tn_conf_limits, body),
    KEND,
};

/* ---- backends ---- */

static const struct tn_conf_key server_keys[] = {
    KREQ("address", TN_CONF_ADDR, struct tn_conf_server, addr),
    KU32("weight", struct tn_conf_server, weight, 0, 256),
    KEY("name", TN_CONF_STRING, struct tn_conf_server, name),
    KEND,
};

/* A status code or a list of them (100..599) into *v / *n (replacing what
 * was there). TN_OK, or TN_ERR after reporting the bad entries. */
static int parse_statuses(struct tn_conf_ctx *cx, yaml_node_t *n, const char *example,
                          uint16_t **v, size_t *nv)
{
    size_t i, len = 1;
    int rc = TN_OK;

    if (n->type == YAML_SEQUENCE_NODE)
        len = tn_conf_seq_len(n);
    else if (n->type != YAML_SCALAR_NODE)
        return tn_conf_expect(cx, n, example);
    free(*v);
    *v = tn_xcalloc(len ? len : 1, sizeof(**v));
    *nv = 0;
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *item = n->type == YAML_SEQUENCE_NODE ? tn_conf_seq_at(cx, n, i) : n;
        uint32_t s;

        if (tn_conf_get_u32(cx, item, 100, 599, &s) == TN_OK)
            (*v)[(*nv)++] = (uint16_t)s;
        else
            rc = TN_ERR;
    }
    return rc;
}

/* health_check.expect: the statuses that count as healthy. */
static int parse_expect(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_health *h = field;

    return parse_statuses(cx, n, "a list of HTTP status codes like [200, 204]", &h->expect,
                          &h->nexpect);
}

static const struct tn_conf_key health_keys[] = {
    KCHK("path", TN_CONF_STRING, struct tn_conf_health, path, check_path),
    KMIN("interval", TN_CONF_DURATION, struct tn_conf_health, interval_ms, 1),
    KMIN("timeout", TN_CONF_DURATION, struct tn_conf_health, timeout_ms, 1),
    KU32("rise", struct tn_conf_health, rise, 1, 100),
    KU32("fall", struct tn_conf_health, fall, 1, 100),
    {.name = "expect", .type = TN_CONF_FUNC, .off = 0, .fn = parse_expect},
    KEND,
};

static const struct tn_conf_key passive_keys[] = {
    KU32("failures", struct tn_conf_passive, failures, 0, 1000000),
    KMIN("eject", TN_CONF_DURATION, struct tn_conf_passive, eject_ms, 1),
    KMIN("max_eject", TN_CONF_DURATION, struct tn_conf_passive, max_eject_ms, 1),
    KEND,
};

static int parse_servers(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_backend *b = field;
    size_t i, j, len;

    if (tn_conf_want_seq(cx, n, "servers") != TN_OK)
        return TN_ERR;
    len = tn_conf_seq_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one server in servers");
    b->servers = tn_xcalloc(len, sizeof(*b->servers));
    b->nservers = len;
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *item = tn_conf_seq_at(cx, n, i);
        struct tn_conf_server *s = &b->servers[i];

        s->weight = 1;
        if (item->type == YAML_SCALAR_NODE) /* "- 10.0.0.1:80" shorthand */
            tn_conf_value(cx, item, &server_keys[0], &s->addr);
        else
            tn_conf_walk(cx, item, "server", server_keys, s, NULL);
        if (!s->name && s->addr.text)
            s->name = tn_xstrdup(s->addr.text);
        if (!s->name)
            continue;
        for (j = 0; j < i; j++)
            if (b->servers[j].name && !strcmp(b->servers[j].name, s->name))
                tn_conf_err(cx, item, "duplicate server name \"%s\" in backend %s", s->name,
                            b->name);
    }
    return TN_OK;
}

static int parse_health(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_health *h = field;

    h->enabled = 1;
    if (tn_conf_walk(cx, n, "health_check", health_keys, h, NULL) != TN_OK)
        return TN_ERR;
    if (h->timeout_ms > h->interval_ms)
        tn_conf_err(cx, n,
                    "expected a health_check timeout not above its interval, got %ums > "
                    "%ums",
                    (unsigned)h->timeout_ms, (unsigned)h->interval_ms);
    return TN_OK;
}

/* A server name for SNI and verification: a DNS name (letters, digits,
 * hyphens, dots), lower-cased. */
static const char *check_server_name(char *s)
{
    static const char what[] = "a DNS name like api.example.com";
    size_t n = strlen(s);
    char *p;

    if (n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
        return what;
    for (p = s; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
        else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return what;
    }
    return NULL;
}

static const struct tn_conf_key upstream_tls_keys[] = {
    KEY("ca", TN_CONF_STRING, struct tn_conf_upstream_tls, ca),
    KCHK("server_name", TN_CONF_STRING, struct tn_conf_upstream_tls, server_name,
         check_server_name),
    KEY("verify", TN_CONF_BOOL, struct tn_conf_upstream_tls, verify),
    KEND,
};

/* tls: of a backend; checked and built by resolve_backend_tls(). */
static int parse_upstream_tls(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_upstream_tls *t = field;

    t->enabled = 1;
    t->verify = 1;
    t->mark = tn_conf_mark_of(n);
    return tn_conf_walk(cx, n, "tls", upstream_tls_keys, t, NULL);
}

static const struct tn_conf_key backend_keys[] = {
    {.name = "servers",
     .type = TN_CONF_FUNC,
     .off = 0,
     .fn = parse_servers,
     .flags = TN_CONF_K_REQUIRED},
    KFN("health_check", struct tn_conf_backend, health, parse_health),
    KMAP("passive", struct tn_conf_backend, passive, passive_keys),
    KFN("tls", struct tn_conf_backend, tls, parse_upstream_tls),
    KEND,
};

static int parse_backends(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf *c = field;
    size_t i, j, len;

    if (tn_conf_want_map(cx, n, "backends") != TN_OK)
        return TN_ERR;
    len = tn_conf_map_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one backend in backends");
    c->backends = tn_xcalloc(len, sizeof(*c->backends));
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *kn = tn_conf_map_key(cx, n, i);
        struct tn_conf_backend *b = &c->backends[c->nbackends];

        if (tn_conf_get_string(cx, kn, tn_conf_check_name, &b->name) != TN_OK)
            continue;
        for (j = 0; j < c->nbackends; j++)
            if (!strcmp(c->backends[j].name, b->name))
                break;
        if (j < c->nbackends) {
            tn_conf_err(cx, kn, "duplicate key \"%s\" in backends", b->name);
            free(b->name);
            b->name = NULL;
            continue;
        }
        b->mark = tn_conf_mark_of(kn);
        b->health.path = tn_xstrdup("/");
        b->health.interval_ms = 2000;
        b->health.timeout_ms = 1000;
        b->health.rise = 2;
        b->health.fall = 3;
        b->passive = (struct tn_conf_passive){
            .failures = 5, .eject_ms = 10000, .max_eject_ms = 300000};
        c->nbackends++;
        tn_conf_walk(cx, tn_conf_map_value(cx, n, i), "backend", backend_keys, b, NULL);
        if (b->tls.enabled) { /* errors about tls: point at the key */
            yaml_node_t *bn = tn_conf_map_value(cx, n, i);
            size_t k;

            for (k = 0; bn->type == YAML_MAPPING_NODE && k < tn_conf_map_len(bn); k++) {
                yaml_node_t *key = tn_conf_map_key(cx, bn, k);

                if (key->type == YAML_SCALAR_NODE &&
                    !strcmp((const char *)key->data.scalar.value, "tls"))
                    b->tls.mark = tn_conf_mark_of(key);
            }
        }
    }
    return TN_OK;
}

/* Reads a whole regular file (at most MAX_FILE_SIZE). Returns malloc'd
 * text or NULL with errno set. */
char *tn_conf_read_file(const char *path, size_t *len)
{
    struct stat st;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");

    if (!f)
        return NULL;
    if (fstat(fileno(f), &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE_SIZE) {
        errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        goto fail;
    }
    buf = tn_xmalloc((size_t)st.st_size + 1);
    *len = fread(buf, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        errno = EIO;
        goto fail;
    }
    buf[*len] = '\0';
    fclose(f);
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* ---- sticky_key, assign_cookie, workers ---- */

static int parse_sticky(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const char what[] = "one key: { cookie: NAME }, { header: NAME }, { query: NAME } or "
                               "{ client_ip: true }";
    static const char *const kinds[] = {"cookie", "header", "query", "client_ip"};
    struct tn_conf *c = field;
    size_t i, j, len;

    if (tn_conf_want_seq(cx, n, "sticky_key") != TN_OK)
        return TN_ERR;
    len = tn_conf_seq_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one source in sticky_key");
    c->sticky = tn_xcalloc(len, sizeof(*c->sticky));
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *item = tn_conf_seq_at(cx, n, i), *kn, *vn;
        struct tn_conf_sticky *s = &c->sticky[c->nsticky];
        const char *k;
        int on = 0;

        if (item->type != YAML_MAPPING_NODE || tn_conf_map_len(item) != 1) {
            tn_conf_expect(cx, item, what);
            continue;
        }
        kn = tn_conf_map_key(cx, item, 0);
        vn = tn_conf_map_value(cx, item, 0);
        if (!(k = tn_conf_scalar(cx, kn, what)))
            continue;
        for (j = 0; j < TN_ARRAY_LEN(kinds) && strcmp(k, kinds[j]); j++)
            ;
        if (j == TN_ARRAY_LEN(kinds)) {
            tn_conf_err(cx, kn,
                        "unknown key \"%s\" in sticky_key; expected one of: cookie, "
                        "header, query, client_ip",
                        k);
            continue;
        }
        s->kind = (enum tn_sticky_kind)j;
        if (s->kind == TN_STICKY_CLIENT_IP) {
            if (tn_conf_get_bool(cx, vn, &on) != TN_OK)
                continue;
            if (!on) {
                tn_conf_expect(cx, vn, "client_ip: true");
                continue;
            }
        } else if (tn_conf_get_string(cx, vn,
                                      s->kind == TN_STICKY_QUERY ? NULL : tn_conf_check_token,
                                      &s->name) != TN_OK) {
            continue;
        }
        c->nsticky++;
    }
    return TN_OK;
}

static int parse_max_age(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const char what[] = "a duration in whole seconds like 3600s, 30d";
    const char *s = tn_conf_scalar(cx, n, what);
    uint64_t ms;

    if (!s)
        return TN_ERR;
    if (tn_conf_parse_duration(s, &ms) != TN_OK || ms % 1000)
        return tn_conf_expect(cx, n, what);
    *(uint64_t *)field = ms / 1000;
    return TN_OK;
}

static const struct tn_conf_key assign_keys[] = {
    KCHK("name", TN_CONF_STRING, struct tn_conf_assign_cookie, name, tn_conf_check_token),
    KFN("max_age", struct tn_conf_assign_cookie, max_age_s, parse_max_age),
    KEND,
};

static int parse_assign(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_assign_cookie *a = field;

    if (n->type == YAML_SCALAR_NODE)
        return tn_conf_get_bool(cx, n, &a->enabled);
    a->enabled = 1;
    return tn_conf_walk(cx, n, "assign_cookie", assign_keys, a, NULL);
}

static int parse_workers(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const char what[] = "\"auto\" or an integer from 1 to 256";
    const char *s = tn_conf_scalar(cx, n, what);
    char *end;
    unsigned long v;

    if (!s)
        return TN_ERR;
    if (!strcmp(s, "auto")) {
        *(uint32_t *)field = 0;
        return TN_OK;
    }
    errno = 0;
    v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end || errno || v < 1 || v > 256)
        return tn_conf_expect(cx, n, what);
    *(uint32_t *)field = (uint32_t)v;
    return TN_OK;
}

/* ---- routes ---- */

static int parse_header_match(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_match *m = field;
    size_t i, j, len;

    if (tn_conf_want_map(cx, n, "header") != TN_OK)
        return TN_ERR;
    len = tn_conf_map_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one NAME: REGEX in header");
    m->headers = tn_xcalloc(len, sizeof(*m->headers));
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *kn = tn_conf_map_key(cx, n, i);
        struct tn_conf_header_match *h = &m->headers[m->nheaders];

        if (tn_conf_get_string(cx, kn, tn_conf_check_token, &h->name) != TN_OK)
            continue;
        for (j = 0; j < m->nheaders; j++)
            if (tn_strieq(h->name, strlen(h->name), m->headers[j].name))
                break;
        if (j < m->nheaders) {
            tn_conf_err(cx, kn, "duplicate key \"%s\" in header", h->name);
        } else if (tn_conf_get_regex(cx, tn_conf_map_value(cx, n, i), &h->regex) == TN_OK) {
            m->nheaders++;
            continue;
        }
        free(h->name);
        h->name = NULL;
    }
    return TN_OK;
}

static const struct tn_conf_key match_keys[] = {
    KEY("host", TN_CONF_REGEX, struct tn_conf_match, host),
    KEY("path", TN_CONF_REGEX, struct tn_conf_match, path),
    KCHK("method", TN_CONF_STRLIST, struct tn_conf_match, methods, tn_conf_check_token),
    {.name = "header", .type = TN_CONF_FUNC, .off = 0, .fn = parse_header_match},
    KCHK("country", TN_CONF_STRLIST, struct tn_conf_match, country, check_country),
    KCHK("continent", TN_CONF_STRLIST, struct tn_conf_match, continent, check_continent),
    KCHK("subdivision", TN_CONF_STRLIST, struct tn_conf_match, subdivision, check_subdivision),
    KCHK("device", TN_CONF_STRING, struct tn_conf_match, device, tn_conf_check_name),
    KCHK("segment", TN_CONF_STRING, struct tn_conf_match, segment, tn_conf_check_name),
    KEND,
};

static const struct tn_conf_key shift_keys[] = {
    {.name = "from",
     .type = TN_CONF_STRING,
     .off = offsetof(struct tn_conf_route, shift_from),
     .flags = TN_CONF_K_REQUIRED,
     .check = tn_conf_check_name},
    {.name = "to",
     .type = TN_CONF_STRING,
     .off = offsetof(struct tn_conf_route, shift_to),
     .flags = TN_CONF_K_REQUIRED,
     .check = tn_conf_check_name},
    KREQ("percent", TN_CONF_PERCENT, struct tn_conf_route, percent_x100),
    KEND,
};

static int parse_shift(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_route *r = field;

    r->has_shift = 1;
    return tn_conf_walk(cx, n, "shift", shift_keys, r, NULL);
}

enum { ROUTE_K_NAME, ROUTE_K_MATCH, ROUTE_K_BACKEND, ROUTE_K_SHIFT }; /* route_keys order */

static const struct tn_conf_key route_keys[] = {
    [ROUTE_K_NAME] = {.name = "name",
                      .type = TN_CONF_STRING,
                      .off = offsetof(struct tn_conf_route, name),
                      .flags = TN_CONF_K_REQUIRED,
                      .check = tn_conf_check_name},
    [ROUTE_K_MATCH] = KMAP("match", struct tn_conf_route, match, match_keys),
    [ROUTE_K_BACKEND] =
        KCHK("backend", TN_CONF_STRING, struct tn_conf_route, backend, tn_conf_check_name),
    [ROUTE_K_SHIFT] = {.name = "shift", .type = TN_CONF_FUNC, .off = 0, .fn = parse_shift},
    KEND,
};

static int parse_routes(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf *c = field;
    size_t i, len;

    if (tn_conf_want_seq(cx, n, "routes") != TN_OK)
        return TN_ERR;
    len = tn_conf_seq_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one route in routes");
    loader_of(cx)->routes_node = n;
    c->routes = tn_xcalloc(len, sizeof(*c->routes));
    c->nroutes = len;
    for (i = 0; i < len; i++) {
        yaml_node_t *item = tn_conf_seq_at(cx, n, i);
        struct tn_conf_route *r = &c->routes[i];
        uint32_t seen = 0;

        r->backend_idx = r->from_idx = r->to_idx = -1;
        r->mark = tn_conf_mark_of(item);
        tn_conf_walk(cx, item, "route", route_keys, r, &seen);
        if (item->type == YAML_MAPPING_NODE &&
            !(seen & (1u << ROUTE_K_BACKEND)) == !(seen & (1u << ROUTE_K_SHIFT)))
            tn_conf_err(cx, item, "expected exactly one of backend or shift in route%s%s",
                        r->name ? " " : "", r->name ? r->name : "");
    }
    return TN_OK;
}

/* ---- rollback ---- */

static int parse_on_status(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_rollback *rb = field;

    return parse_statuses(cx, n, "a list of HTTP status codes like [502, 503, 504]",
                          &rb->on_status, &rb->non_status);
}

static const struct tn_conf_key budget_keys[] = {
    KEY("ratio", TN_CONF_PERCENT, struct tn_conf_budget, ratio_x100),
    KMIN("window", TN_CONF_DURATION, struct tn_conf_budget, window_ms, 1),
    KU32("min_per_second", struct tn_conf_budget, min_per_second, 0, 1000000),
    KEND,
};

/* The judge's window: made of one-second buckets, inside their ring. */
static int parse_judge_window(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    static const struct tn_conf_key k = {.name = "window", .type = TN_CONF_DURATION, .min = 1000};
    uint32_t *ms = field;

    if (tn_conf_value(cx, n, &k, field) != TN_OK)
        return TN_ERR;
    if (*ms % 1000 || *ms > (TN_STATS_SECONDS - 1) * 1000u) {
        tn_conf_err(cx, n, "rollback.auto.window: expected a whole number of seconds from 1s to %ds (the judge's windows are "
                           "made of one-second buckets)",
                    TN_STATS_SECONDS - 1);
        return TN_ERR;
    }
    return TN_OK;
}

static const struct tn_conf_key auto_keys[] = {
    KEY("error_rate", TN_CONF_PERCENT, struct tn_conf_auto_rollback, error_rate_x100),
    KEY("p99", TN_CONF_DURATION, struct tn_conf_auto_rollback, p99_ms),
    KEY("margin", TN_CONF_PERCENT, struct tn_conf_auto_rollback, margin_x100),
    KFN("window", struct tn_conf_auto_rollback, window_ms, parse_judge_window),
    KU32("windows", struct tn_conf_auto_rollback, windows, 1, 1000),
    KU32("min_requests", struct tn_conf_auto_rollback, min_requests, 1, 1000000000),
    KEY("ramp_down", TN_CONF_DURATION, struct tn_conf_auto_rollback, ramp_down_ms),
    KEND,
};

static int parse_auto(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf_auto_rollback *a = field;

    if (n->type == YAML_SCALAR_NODE)
        return tn_conf_get_bool(cx, n, &a->enabled);
    a->enabled = 1;
    return tn_conf_walk(cx, n, "auto", auto_keys, a, NULL);
}

static const struct tn_conf_key rollback_keys[] = {
    KEY("enabled", TN_CONF_BOOL, struct tn_conf_rollback, enabled),
    KEY("on_connect_error", TN_CONF_BOOL, struct tn_conf_rollback, on_connect_error),
    KEY("on_timeout", TN_CONF_BOOL, struct tn_conf_rollback, on_timeout),
    {.name = "on_status", .type = TN_CONF_FUNC, .off = 0, .fn = parse_on_status},
    KCHK("methods", TN_CONF_STRLIST, struct tn_conf_rollback, methods, tn_conf_check_token),
    KEY("max_body", TN_CONF_SIZE, struct tn_conf_rollback, max_body),
    KEY("idempotency_key", TN_CONF_BOOL, struct tn_conf_rollback, idempotency_key),
    KMAP("budget", struct tn_conf_rollback, budget, budget_keys),
    KFN("auto", struct tn_conf_rollback, autorb, parse_auto),
    KEND,
};

/* ---- http2 ---- */

static const struct tn_conf_key http2_keys[] = {
    KU32("max_concurrent_streams", struct tn_conf_http2, max_concurrent_streams, 1, 10000),
    KMIN("max_header_list_size", TN_CONF_SIZE, struct tn_conf_http2, max_header_list_size, 1024),
    KEND,
};

/* ---- the top level ---- */

static const struct tn_conf_key top_keys[] = {
    KFN("workers", struct tn_conf, workers, parse_workers),
    {.name = "listen", .type = TN_CONF_FUNC, .fn = parse_listen, .flags = TN_CONF_K_REQUIRED},
    KMAP("admin", struct tn_conf, admin, admin_keys),
    KEY("access_log", TN_CONF_STRING, struct tn_conf, access_log),
    KEY("state_file", TN_CONF_STRING, struct tn_conf, state_file),
    KFN("redis", struct tn_conf, redis, parse_redis),
    KCHK("node_id", TN_CONF_STRING, struct tn_conf, node_id, tn_conf_check_name),
    {.name = "trusted_proxies", .type = TN_CONF_FUNC, .fn = parse_trusted},
    KMAP("timeouts", struct tn_conf, timeouts, timeout_keys),
    KMAP("limits", struct tn_conf, limits, limit_keys),
    KMAP("http2", struct tn_conf, http2, http2_keys),
    {.name = "backends", .type = TN_CONF_FUNC, .fn = parse_backends, .flags = TN_CONF_K_REQUIRED},
    {.name = "sticky_key", .type = TN_CONF_FUNC, .fn = parse_sticky},
    KFN("assign_cookie", struct tn_conf, assign_cookie, parse_assign),
    {.name = "routes", .type = TN_CONF_FUNC, .fn = parse_routes, .flags = TN_CONF_K_REQUIRED},
    KMAP("rollback", struct tn_conf, rollback, rollback_keys),
    KMAP("overrides", struct tn_conf, overrides, overrides_keys),
    KEY("debug_headers", TN_CONF_BOOL, struct tn_conf, debug_headers),
    KEND,
};

/* Keys of modules left out of this build: accepted by the walk, reported
 * by check_absent() with the reason. */
static int parse_absent(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    (void)cx;
    (void)n;
    (void)field;
    return TN_OK;
}

/* The top level: the core keys, then each module's own keys (they live
 * with their module), then the keys of modules this build left out. */
static struct tn_conf_key top_table[32];

static void build_top_level(void)
{
    size_t n = 0, i, j;

    for (i = 0; top_keys[i].name; i++)
        top_table[n++] = top_keys[i];
    for (i = 0; tn_modules[i]; i++)
        for (j = 0; tn_modules[i]->keys && tn_modules[i]->keys[j].name; j++)
            top_table[n++] = tn_modules[i]->keys[j];
    for (i = 0; tn_modules_absent[i]; i += 2)
        top_table[n++] = (struct tn_conf_key){
            .name = tn_modules_absent[i], .type = TN_CONF_FUNC, .fn = parse_absent};
    TN_BUG_ON(n >= TN_ARRAY_LEN(top_table));
    top_table[n].name = NULL;
}

/* Reports each top-level key whose module this build left out. */
static void check_absent(struct tn_conf_ctx *cx, yaml_node_t *root)
{
    size_t i;
    yaml_node_t *v;

    for (i = 0; tn_modules_absent[i]; i += 2)
        if ((v = find_value(cx, root, tn_modules_absent[i])))
            tn_conf_err(cx, v, "%s: %s", tn_modules_absent[i], tn_modules_absent[i + 1]);
}

static char **strv(size_t n, const char *const *src)
{
    char **v = tn_xcalloc(n, sizeof(char *));

    for (size_t i = 0; i < n; i++)
        v[i] = tn_xstrdup(src[i]);
    return v;
}

static void set_defaults(struct tn_conf *c)
{
    static const char *const methods[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"};
    static const uint16_t statuses[] = {502, 503, 504};

    c->access_log = tn_xstrdup("stdout");
    c->admin.socket_mode = 0600;
    c->redis.namespace_ = tn_xstrdup("default");
    c->redis.resync_ms = 5000;
    c->overrides.token_header = tn_xstrdup("X-Turnout-Token");
    c->redis.connect_timeout_ms = 1000;
    c->timeouts = (struct tn_conf_timeouts){.client_header_ms = 10000,
                                            .client_body_ms = 30000,
                                            .client_idle_ms = 60000,
                                            .connect_ms = 2000,
                                            .response_ms = 30000,
                                            .upstream_idle_ms = 60000,
                                            .drain_ms = 30000};
    c->limits = (struct tn_conf_limits){
        .header_size = 16384, .headers = 100, .uri = 8192, .connections = 10000, .body = 0};
    c->http2.max_concurrent_streams = 100; /* max_header_list_size 0: limits.header_size */
    c->assign_cookie.name = tn_xstrdup("turnout_uid");
    c->assign_cookie.max_age_s = 90u * 86400u;
    c->rollback.enabled = 1;
    c->rollback.on_connect_error = 1;
    c->rollback.on_timeout = 1;
    c->rollback.on_status = tn_xmalloc(sizeof(statuses));
    memcpy(c->rollback.on_status, statuses, sizeof(statuses));
    c->rollback.non_status = TN_ARRAY_LEN(statuses);
    c->rollback.methods.v = strv(TN_ARRAY_LEN(methods), methods);
    c->rollback.methods.n = TN_ARRAY_LEN(methods);
    c->rollback.max_body = 65536;
    c->rollback.budget = (struct tn_conf_budget){
        .ratio_x100 = 2000, .window_ms = 10000, .min_per_second = 10};
    c->rollback.autorb = (struct tn_conf_auto_rollback){.error_rate_x100 = 500,
                                                        .p99_ms = 2000,
                                                        .margin_x100 = 200,
                                                        .window_ms = 30000,
                                                        .windows = 2,
                                                        .min_requests = 100};
}

/* ---- second pass: names and cross-key rules ---- */

/* The known-name lists below read each element's name as its first member. */
_Static_assert(offsetof(struct tn_conf_backend, name) == 0, "name first");
_Static_assert(offsetof(struct tn_conf_segment, name) == 0, "name first");
_Static_assert(offsetof(struct tn_conf_device, name) == 0, "name first");

/* Reports an unknown name with the list of the n known ones in array arr
 * (elements of stride bytes, name first; arr may be NULL when n is 0). */
static void unknown_name(struct tn_conf_ctx *cx, struct tn_conf_mark m, const char *kind,
                         const char *name, const char *route, const void *arr, size_t stride,
                         size_t n)
{
    char list[512];
    size_t o = 0, i;

    list[0] = '\0';
    for (i = 0; i < n && o < sizeof(list); i++) {
        const char *k = *(const char *const *)((const char *)arr + i * stride);

        if (k)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "", k);
    }
    if (n)
        tn_conf_err_mark(cx, m, "unknown %s \"%s\" in route %s; expected one of: %s", kind, name,
                         route, list);
    else
        tn_conf_err_mark(cx, m, "unknown %s \"%s\" in route %s; none are defined", kind, name,
                         route);
}

static int resolve_backend(struct tn_conf_ctx *cx, const struct tn_conf *c, const char *name,
                           yaml_node_t *at, const struct tn_conf_route *r)
{
    int idx = tn_conf_backend_index(c, name);

    if (idx < 0)
        unknown_name(cx, tn_conf_mark_of(at), "backend", name, r->name, c->backends,
                     sizeof(*c->backends), c->nbackends);
    return idx;
}

static int match_is_empty(const struct tn_conf_match *m)
{
    return !m->host && !m->path && !m->methods.n && !m->nheaders && !m->country.n &&
           !m->continent.n && !m->subdivision.n && !m->device && !m->segment;
}

static void resolve_match(struct tn_conf_ctx *cx, const struct tn_conf *c, struct tn_conf_route *r,
                          yaml_node_t *mn)
{
    const struct tn_conf_match *m = &r->match;
    size_t i;

    if (m->segment) {
        for (i = 0;
             i < c->nsegments && (!c->segments[i].name || strcmp(c->segments[i].name, m->segment));
             i++)
            ;
        if (i == c->nsegments)
            unknown_name(cx, tn_conf_mark_of(find_value(cx, mn, "segment")), "segment", m->segment,
                         r->name, c->segments, sizeof(*c->segments), c->nsegments);
    }
    if (m->device) {
        for (i = 0; i < c->ndevices && strcmp(c->devices[i].name, m->device); i++)
            ;
        if (i == c->ndevices)
            unknown_name(cx, tn_conf_mark_of(find_value(cx, mn, "device")), "device class",
                         m->device, r->name, c->devices, sizeof(*c->devices), c->ndevices);
    }
    if (!c->geoip_database) {
        static const char *const geo[] = {"country", "continent", "subdivision"};

        for (i = 0; i < 3; i++) {
            yaml_node_t *g = find_value(cx, mn, geo[i]);

            if (g && !tn_conf_is_null(g))
                tn_conf_err(cx, g,
                            tn_module_for(TN_FACT_GEO)
                                ? "route %s matches on %s but geoip.database is not set"
                                : "route %s matches on %s, which needs the geo module (left out "
                                  "of this build)",
                            r->name, geo[i]);
        }
    }
}

static void resolve_routes(struct loader *L)
{
    struct tn_conf_ctx *cx = &L->cx;
    struct tn_conf *c = L->c;
    int catchall = -1;
    size_t i, j;

    for (i = 0; i < c->nroutes; i++) {
        struct tn_conf_route *r = &c->routes[i];
        yaml_node_t *rn = tn_conf_seq_at(cx, L->routes_node, i), *sn;

        if (!r->name)
            continue; /* already reported */
        for (j = 0; j < i && (!c->routes[j].name || strcmp(c->routes[j].name, r->name)); j++)
            ;
        if (j < i)
            tn_conf_err(cx, find_value(cx, rn, "name"),
                        "duplicate route name \"%s\" (first used at line %u)", r->name,
                        c->routes[j].mark.line);
        if (catchall >= 0)
            tn_conf_err_mark(cx, r->mark,
                             "route %s is unreachable: route %s before it matches every request",
                             r->name, c->routes[catchall].name);
        else if (match_is_empty(&r->match))
            catchall = (int)i;
        if (r->backend)
            r->backend_idx = resolve_backend(cx, c, r->backend, find_value(cx, rn, "backend"), r);
        sn = find_value(cx, rn, "shift");
        if (r->shift_from)
            r->from_idx = resolve_backend(cx, c, r->shift_from, find_value(cx, sn, "from"), r);
        if (r->shift_to)
            r->to_idx = resolve_backend(cx, c, r->shift_to, find_value(cx, sn, "to"), r);
        if (r->shift_from && r->shift_to && !strcmp(r->shift_from, r->shift_to))
            tn_conf_err(cx, find_value(cx, sn, "to"),
                        "expected different backends in shift from and to of route %s, got "
                        "\"%s\" twice",
                        r->name, r->shift_to);
        resolve_match(cx, c, r, find_value(cx, rn, "match"));
    }
}

/* Checks each backend's tls: and builds its client context (second pass:
 * the CA file's errors come with OpenSSL's reason at the tls key). */
static void resolve_backend_tls(struct tn_conf_ctx *cx, struct tn_conf *c)
{
    size_t i;

    for (i = 0; i < c->nbackends; i++) {
        struct tn_conf_upstream_tls *t = &c->backends[i].tls;
        char why[512];

        if (!t->enabled)
            continue;
        if (t->verify && !t->server_name) {
            tn_conf_err_mark(cx, t->mark,
                             "expected server_name in tls of backend %s (the name sent and "
                             "verified), or verify: false to encrypt without verifying",
                             c->backends[i].name);
            continue;
        }
        if (cx->nerrors)
            continue;
        if (!(t->ctx = tn_tlsclient_new(t, c->file, why, sizeof(why)))) {
            tn_conf_err_mark(cx, t->mark, "tls of backend %s: %s", c->backends[i].name, why);
            continue;
        }
        if (!t->verify)
            tn_log(TN_LOG_WARN,
                   "%s:%u:%u: backend %s: tls verify is false: its servers' certificates are "
                   "not checked (encryption without authentication)",
                   cx->file, t->mark.line, t->mark.col, c->backends[i].name);
    }
}

static void resolve(struct loader *L)
{
    struct tn_conf_ctx *cx = &L->cx;
    struct tn_conf *c = L->c;
    size_t i;

    if (!c->nsticky && !c->sticky) {
        c->sticky = tn_xcalloc(1, sizeof(*c->sticky));
        c->sticky[0].kind = TN_STICKY_CLIENT_IP;
        c->nsticky = 1;
    }
    for (i = 0; i < c->nsegments; i++)
        if (c->segments[i].kind == TN_SEGMENT_REDIS_SET && c->segments[i].source &&
            !c->redis.address && !c->redis.nsentinels)
            tn_conf_err(cx, find_value(cx, find_value(cx, yaml_document_get_root_node(cx->doc),
                                                      "segments"),
                                       c->segments[i].name),
                        "segment %s uses redis_set but redis is not configured",
                        c->segments[i].name);
    if (L->routes_node)
        resolve_routes(L);
    for (i = 0; i < c->nlistens; i++) {
        struct tn_conf_listen *l = &c->listens[i];
        size_t bad = 0;
        char why[512];

        if (!l->ncerts || cx->nerrors)
            continue;
        if (!(l->tls = tn_tls_new(l, c->file, &bad, why, sizeof(why))))
            tn_conf_err_mark(cx, l->certs[bad].mark, "certificates: %s", why);
    }
    resolve_backend_tls(cx, c);
}

/* ---- loading ---- */

static struct tn_conf *load_text(const char *name, const char *text, size_t len, char **errors)
{
    struct loader L;
    yaml_parser_t p;
    yaml_document_t doc, extra;
    yaml_node_t *root;

    memset(&L, 0, sizeof(L));
    L.cx.file = name;
    L.c = tn_xcalloc(1, sizeof(*L.c));
    L.c->file = tn_xstrdup(name);
    set_defaults(L.c);
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        tn_conf_parser_err(&L.cx, &p);
        goto done;
    }
    L.cx.doc = &doc;
    root = yaml_document_get_root_node(&doc);
    if (!root) {
        tn_conf_err(&L.cx, NULL, "expected a mapping for the top level, got an empty file");
    } else {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, build_top_level);
        tn_conf_walk(&L.cx, root, "the top level", top_table, L.c, NULL);
        check_absent(&L.cx, root);
        resolve(&L);
        if (!yaml_parser_load(&p, &extra)) {
            tn_conf_parser_err(&L.cx, &p);
        } else {
            if ((root = yaml_document_get_root_node(&extra)) != NULL)
                tn_conf_err(&L.cx, root, "expected a single YAML document, got another one");
            yaml_document_delete(&extra);
        }
    }
    yaml_document_delete(&doc);
done:
    yaml_parser_delete(&p);
    if (L.cx.nerrors) {
        tn_conf_free(L.c);
        if (errors)
            *errors = tn_conf_take_errors(&L.cx);
        free(L.cx.diag);
        return NULL;
    }
    free(L.cx.diag);
    if (errors)
        *errors = NULL;
    return L.c;
}

struct tn_conf *tn_conf_load(const char *path, char **errors)
{
    size_t len = 0;
    char *text = tn_conf_read_file(path, &len);
    struct tn_conf *c;

    if (!text) {
        if (errors) {
            const char *why = strerror(errno);
            size_t n = strlen(path) + strlen(why) + 32;

            *errors = tn_xmalloc(n);
            snprintf(*errors, n, "%s: cannot read: %s\n", path, why);
        }
        return NULL;
    }
    c = load_text(path, text, len, errors);
    free(text);
    return c;
}

struct tn_conf *tn_conf_load_string(const char *name, const char *text, size_t len, char **errors)
{
    return load_text(name, text, len, errors);
}

static void free_addr(struct tn_conf_addr *a)
{
    free(a->text);
}

static void free_match(struct tn_conf_match *m)
{
    size_t i;

    free(m->host);
    free(m->path);
    tn_conf_strlist_free(&m->methods);
    for (i = 0; i < m->nheaders; i++) {
        free(m->headers[i].name);
        free(m->headers[i].regex);
    }
    free(m->headers);
    tn_conf_strlist_free(&m->country);
    tn_conf_strlist_free(&m->continent);
    tn_conf_strlist_free(&m->subdivision);
    free(m->device);
    free(m->segment);
}

static void free_backends(struct tn_conf *c)
{
    size_t i, j;

    for (i = 0; i < c->nbackends; i++) {
        struct tn_conf_backend *b = &c->backends[i];

        for (j = 0; j < b->nservers; j++) {
            free(b->servers[j].name);
            free_addr(&b->servers[j].addr);
        }
        free(b->servers);
        free(b->tls.ca);
        free(b->tls.server_name);
        tn_tlsclient_free(b->tls.ctx);
        free(b->health.path);
        free(b->health.expect);
        free(b->name);
    }
    free(c->backends);
}

void tn_conf_free(struct tn_conf *c)
{
    size_t i, j;

    if (!c)
        return;
    for (i = 0; i < c->nlistens; i++) {
        free_addr(&c->listens[i].addr);
        for (j = 0; j < c->listens[i].ncerts; j++) {
            free(c->listens[i].certs[j].cert);
            free(c->listens[i].certs[j].key);
        }
        free(c->listens[i].certs);
        free(c->listens[i].tls_ciphers);
        free(c->listens[i].tls_ciphersuites);
        tn_tls_free(c->listens[i].tls);
    }
    free(c->listens);
    free(c->admin.socket);
    free(c->admin.http);
    free(c->admin.http_allow);
    free_addr(&c->admin.http_addr);
    free(c->access_log);
    free(c->state_file);
    free(c->redis.address);
    free_addr(&c->redis.addr);
    free(c->redis.password_env);
    free(c->redis.namespace_);
    for (i = 0; i < c->redis.nsentinels; i++)
        free_addr(&c->redis.sentinels[i]);
    free(c->redis.sentinels);
    free(c->redis.master);
    free(c->node_id);
    free(c->geoip_database);
    free(c->trusted_proxies);
    free_backends(c);
    free(c->devices_file);
    for (i = 0; i < c->ndevices; i++) {
        free(c->devices[i].name);
        free(c->devices[i].regex);
    }
    free(c->devices);
    for (i = 0; i < c->nsegments; i++) {
        free(c->segments[i].name);
        free(c->segments[i].source);
        tn_conf_strlist_free(&c->segments[i].equals);
        free(c->segments[i].regex);
    }
    free(c->segments);
    for (i = 0; i < c->nsticky; i++)
        free(c->sticky[i].name);
    free(c->sticky);
    free(c->assign_cookie.name);
    for (i = 0; i < c->nroutes; i++) {
        struct tn_conf_route *r = &c->routes[i];

        free(r->name);
        free_match(&r->match);
        free(r->backend);
        free(r->shift_from);
        free(r->shift_to);
    }
    free(c->routes);
    free(c->rollback.on_status);
    tn_conf_strlist_free(&c->rollback.methods);
    free(c->overrides.header);
    free(c->overrides.token_header);
    free(c->overrides.token_env);
    free(c->file);
    free(c);
}

int tn_conf_backend_index(const struct tn_conf *c, const char *name)
{
    size_t i;

    if (!c || !name)
        return -1;
    for (i = 0; i < c->nbackends; i++)
        if (c->backends[i].name && !strcmp(c->backends[i].name, name))
            return (int)i;
    return -1;
}
