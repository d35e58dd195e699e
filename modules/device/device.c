/* The device module: the `devices:` catalog (a file beside the
 * configuration, or an inline class -> regex map), compiled with each plan,
 * and the device class of a request from its User-Agent (first class that
 * matches; a per-worker cache of recent User-Agents). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "turnout/common.h"
#include "turnout/conf-yaml.h"
#include "turnout/conf.h"
#include "turnout/device.h"
#include "turnout/h1.h"
#include "turnout/module.h"
#include "turnout/route.h"

/* ---- configuration ---- */

static int parse_device_map(struct tn_conf_ctx *cx, yaml_node_t *n, struct tn_conf *c)
{
    size_t i, j, len;

    if (tn_conf_want_map(cx, n, "devices") != TN_OK)
        return TN_ERR;
    len = tn_conf_map_len(n);
    if (!len)
        return tn_conf_expect(cx, n, "at least one device class in devices");
    c->devices = tn_xcalloc(len, sizeof(*c->devices));
    for (i = 0; i < len; i++) {
        if (tn_conf_count_value(cx, n) != TN_OK)
            break;
        yaml_node_t *kn = tn_conf_map_key(cx, n, i);
        struct tn_conf_device *d = &c->devices[c->ndevices];

        if (tn_conf_get_string(cx, kn, tn_conf_check_name, &d->name) != TN_OK)
            continue;
        for (j = 0; j < c->ndevices && strcmp(c->devices[j].name, d->name); j++)
            ;
        if (j < c->ndevices || tn_conf_get_regex(cx, tn_conf_map_value(cx, n, i), &d->regex)) {
            if (j < c->ndevices)
                tn_conf_err(cx, kn, "duplicate key \"%s\" in devices", d->name);
            free(d->name);
            free(d->regex);
            d->name = d->regex = NULL;
            continue;
        }
        c->ndevices++;
    }
    return TN_OK;
}

/* Loads the device catalog file into c, reporting with that file's name. */
static void load_device_file(struct tn_conf_ctx *cx, yaml_node_t *at, struct tn_conf *c)
{
    const char *saved_file = cx->file;
    yaml_document_t *saved_doc = cx->doc, doc;
    yaml_parser_t p;
    size_t len = 0;
    char *text = tn_conf_read_file(c->devices_file, &len);

    if (!text) {
        tn_conf_err(cx, at, "cannot read device catalog %s: %s", c->devices_file, strerror(errno));
        return;
    }
    cx->file = c->devices_file;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        tn_conf_parser_err(cx, &p);
    } else {
        cx->doc = &doc;
        parse_device_map(cx, yaml_document_get_root_node(&doc), c);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&p);
    free(text);
    cx->file = saved_file;
    cx->doc = saved_doc;
}

static int parse_devices(struct tn_conf_ctx *cx, yaml_node_t *n, void *field)
{
    struct tn_conf *c = field;
    char *path;

    if (n->type != YAML_SCALAR_NODE)
        return parse_device_map(cx, n, c);
    if (tn_conf_get_string(cx, n, NULL, &c->devices_file) != TN_OK)
        return TN_ERR;
    path = tn_conf_path_beside(cx->file, c->devices_file);
    free(c->devices_file);
    c->devices_file = path;
    load_device_file(cx, n, c);
    return TN_OK;
}


static const struct tn_conf_key device_keys[] = {
    {.name = "devices", .type = TN_CONF_FUNC, .off = 0, .fn = parse_devices},
    KEND,
};

/* ---- the module ---- */

static int device_init(const struct tn_plan *plan, void **state, char **err)
{
    const struct tn_conf *c = plan->conf;
    struct tn_plan_route *routes = ((struct tn_plan *)plan)->routes;
    struct tn_devices *d;
    size_t i;

    *state = NULL;
    if (!c->ndevices)
        return TN_OK;
    if (!(d = tn_devices_new(c->devices, c->ndevices, err)))
        return TN_ERR;
    for (i = 0; i < plan->nroutes; i++)
        routes[i].device = routes[i].conf->match.device
                               ? tn_devices_find(d, routes[i].conf->match.device)
                               : -1;
    *state = d;
    return TN_OK;
}

static void device_free(void *state)
{
    tn_devices_free(state);
}

/* A worker's cache of User-Agent -> class, valid for one catalog. */
struct device_wk {
    const void *catalog;
    struct tn_device_cache *cache;
};

static void *device_worker_new(void)
{
    struct device_wk *wk = calloc(1, sizeof(*wk));

    if (wk && !(wk->cache = tn_device_cache_new(4096))) {
        free(wk);
        wk = NULL;
    }
    return wk;
}

static void device_worker_free(void *arg)
{
    struct device_wk *wk = arg;

    if (!wk)
        return;
    tn_device_cache_free(wk->cache);
    free(wk);
}

static void device_classify(const void *state, struct tn_classify *cx, void *arg)
{
    const struct tn_route_req *rq = cx->rq;
    const struct tn_field *ua = tn_h1_find(rq->hdrs, rq->nhdrs, "user-agent");
    struct device_wk *wk = arg;

    if (wk && wk->catalog != state) { /* a new plan: the cached classes are another catalog's */
        tn_device_cache_clear(wk->cache);
        wk->catalog = state;
    }
    cx->facts.device = ua ? tn_devices_classify(state, wk ? wk->cache : NULL, cx->md, ua->value,
                                                ua->value_len)
                          : -1;
}

const struct tn_module tn_module_device = {
    .name = "device",
    .facts = TN_FACT_DEVICE,
    .keys = device_keys,
    .init = device_init,
    .free = device_free,
    .worker_new = device_worker_new,
    .worker_free = device_worker_free,
    .classify = device_classify,
};

const char *tn_device_plan_name(const struct tn_plan *plan, int idx)
{
    size_t i;

    for (i = 0; tn_modules[i]; i++)
        if (tn_modules[i] == &tn_module_device && plan->mod_state[i])
            return idx >= 0 && (size_t)idx < tn_devices_count(plan->mod_state[i])
                       ? tn_devices_name(plan->mod_state[i], (size_t)idx)
                       : NULL;
    return NULL;
}
