/* The geo module: country, continent and subdivision of the client
 * address, from a GeoIP2/GeoLite2 database (`geoip: { database: ... }`,
 * relative to the configuration file's directory). The address is the
 * peer's, or the right-most untrusted X-Forwarded-For address when the
 * peer is in trusted_proxies (src/route/clientaddr.c). The database opened
 * with the plan checks the file; the control plane keeps the one in force
 * in the runtime overlay and replaces it when the file changes. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "turnout/clientaddr.h"
#include "turnout/common.h"
#include "turnout/conf-yaml.h"
#include "turnout/conf.h"
#include "turnout/geodb.h"
#include "turnout/module.h"
#include "turnout/overlay.h"
#include "turnout/route.h"

static const struct tn_conf_key database_keys[] = {
    KREQ("database", TN_CONF_STRING, struct tn_conf, geoip_database),
    KEND,
};

static const struct tn_conf_key geo_keys[] = {
    {.name = "geoip", .type = TN_CONF_MAP, .off = 0, .sub = database_keys},
    KEND,
};

struct geo_state {
    struct tn_geodb *db; /* opened with the plan (one reference) */
};

static int geo_init(const struct tn_plan *plan, void **state, char **err)
{
    const struct tn_conf *c = plan->conf;
    struct geo_state *st;
    char *path, *why = NULL;

    *state = NULL;
    if (!c->geoip_database)
        return TN_OK; /* routes that need it were refused by the plan */
    path = tn_conf_path_beside(c->file, c->geoip_database);
    st = tn_xcalloc(1, sizeof(*st));
    st->db = tn_geodb_open(path, &why);
    free(path);
    if (!st->db) {
        size_t n = strlen(why ? why : "") + 64;

        *err = tn_xmalloc(n);
        snprintf(*err, n, "geoip.database: %s\n", why ? why : "cannot open");
        free(why);
        free(st);
        return TN_ERR;
    }
    *state = st;
    return TN_OK;
}

static void geo_free(void *state)
{
    struct geo_state *st = state;

    if (!st)
        return;
    tn_geodb_unref(st->db);
    free(st);
}

/* The client address: the peer, or X-Forwarded-For from a trusted peer. */
static int client_sockaddr(const struct tn_classify *cx, struct sockaddr_storage *out,
                           int *from_xff)
{
    const struct tn_conf *c = cx->plan->conf;
    struct sockaddr_storage peer;

    if (tn_client_parse_ip(cx->rq->client_ip, &peer) != TN_OK)
        return TN_ERR;
    *from_xff = tn_client_addr((const struct sockaddr *)&peer, c->trusted_proxies,
                               c->ntrusted_proxies, cx->rq->hdrs, cx->rq->nhdrs, out);
    return TN_OK;
}

/* A worker's cache of address -> lookup result, valid for one database:
 * users send many requests from one address. */
#define GEO_CACHE 4096

struct geo_entry {
    uint8_t key[17]; /* family byte + address */
    uint8_t used, found;
    struct tn_geo geo;
};

struct geo_wk {
    const struct tn_geodb *db;
    struct geo_entry e[GEO_CACHE];
};

static void *geo_worker_new(void)
{
    return calloc(1, sizeof(struct geo_wk));
}

static void geo_worker_free(void *wk)
{
    free(wk);
}

/* The cache key of addr: family and address bytes. */
static void geo_key(const struct sockaddr_storage *addr, uint8_t key[17])
{
    memset(key, 0, 17);
    key[0] = (uint8_t)addr->ss_family;
    if (addr->ss_family == AF_INET)
        memcpy(key + 1, &((const struct sockaddr_in *)addr)->sin_addr, 4);
    else
        memcpy(key + 1, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
}

static void geo_classify(const void *state, struct tn_classify *cx, void *arg)
{
    const struct geo_state *st = state;
    const struct tn_geodb *db = cx->ov && cx->ov->geodb ? cx->ov->geodb : st->db;
    struct geo_wk *wk = arg;
    struct sockaddr_storage addr;
    struct geo_entry *e = NULL;
    uint8_t key[17];
    int xff = 0;

    memset(&cx->facts.geo, 0, sizeof(cx->facts.geo));
    if (client_sockaddr(cx, &addr, &xff) != TN_OK)
        return;
    cx->facts.geo_from_xff = xff;
    if (wk) {
        if (wk->db != db) { /* another database: forget what the old one said */
            memset(wk->e, 0, sizeof(wk->e));
            wk->db = db;
        }
        geo_key(&addr, key);
        e = &wk->e[XXH3_64bits(key, sizeof(key)) & (GEO_CACHE - 1)];
        if (e->used && !memcmp(e->key, key, sizeof(key))) {
            cx->facts.geo = e->geo;
            cx->facts.geo_found = e->found;
            return;
        }
    }
    cx->facts.geo_found = tn_geodb_lookup(db, (const struct sockaddr *)&addr, &cx->facts.geo);
    if (e) {
        memcpy(e->key, key, sizeof(key));
        e->used = 1;
        e->found = (uint8_t)cx->facts.geo_found;
        e->geo = cx->facts.geo;
    }
}

/* The database a plan opened (borrowed), for the control plane. */
struct tn_geodb *tn_geo_plan_db(const struct tn_plan *plan);

struct tn_geodb *tn_geo_plan_db(const struct tn_plan *plan)
{
    size_t i;

    for (i = 0; tn_modules[i]; i++)
        if (tn_modules[i]->facts & TN_FACT_GEO && plan->mod_state[i])
            return ((struct geo_state *)plan->mod_state[i])->db;
    return NULL;
}

const struct tn_module tn_module_geo = {
    .name = "geo",
    .facts = TN_FACT_GEO,
    .keys = geo_keys,
    .init = geo_init,
    .free = geo_free,
    .worker_new = geo_worker_new,
    .worker_free = geo_worker_free,
    .classify = geo_classify,
};
