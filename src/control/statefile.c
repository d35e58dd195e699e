/* The state file: the runtime model (percents with their source, ramps,
 * server states, pins, the version) as JSON, so that without Redis a
 * restart keeps what operators changed. Written atomically (temp file,
 * fsync, rename, fsync of the directory); read back with libyaml (JSON is
 * YAML's flow style). Control thread. */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/control.h"
#include "turnout/ident.h"
#include "turnout/json.h"
#include "turnout/overlay.h"
#include "turnout/route.h"

static void emit_routes(const struct tn_ctl *c, struct evbuffer *out)
{
    const char *sep = "";
    char p[16], sched[256];
    size_t i;

    evbuffer_add_printf(out, "  \"routes\": {");
    for (i = 0; i < c->plan->nroutes; i++) {
        const struct tn_ctl_route *cr = &c->routes[c->plan->routes[i].id];

        if (!cr->set)
            continue;
        evbuffer_add_printf(out, "%s\n    ", sep);
        tn_json_str(out, c->plan->routes[i].conf->name);
        evbuffer_add_printf(out, ": {\"percent\": \"%s\", \"source\": \"%s\", \"configured\": \"%s\"",
                            tn_percent_str(cr->percent_x100, p, sizeof(p)),
                            tn_source_name((enum tn_source)cr->source),
                            tn_percent_str(cr->conf_x100, sched, sizeof(sched)));
        if (cr->ramping) {
            tn_ramp_encode(&cr->ramp, sched, sizeof(sched));
            evbuffer_add_printf(out, ", \"ramp\": ");
            tn_json_str(out, sched);
        }
        evbuffer_add_printf(out, "}");
        sep = ",";
    }
    evbuffer_add_printf(out, "%s},\n", *sep ? "\n  " : "");
}

static void emit_servers(const struct tn_ctl *c, struct evbuffer *out)
{
    const char *sep = "";
    size_t b, s;

    evbuffer_add_printf(out, "  \"servers\": {");
    for (b = 0; b < c->plan->conf->nbackends; b++) {
        const struct tn_conf_backend *be = &c->plan->conf->backends[b];

        for (s = 0; s < be->nservers; s++) {
            const struct tn_ctl_server *cs = &c->servers[c->plan->server_ids[b][s]];
            char name[200];

            if (cs->state == TN_SERVER_READY)
                continue;
            snprintf(name, sizeof(name), "%s/%s", be->name, be->servers[s].name);
            evbuffer_add_printf(out, "%s\n    ", sep);
            tn_json_str(out, name);
            evbuffer_add_printf(out, ": \"%s\"",
                                tn_server_state_name((enum tn_server_state)cs->state));
            sep = ",";
        }
    }
    evbuffer_add_printf(out, "%s},\n", *sep ? "\n  " : "");
}

static void emit_pins(const struct tn_ctl *c, struct evbuffer *out)
{
    const char *sep = "";
    size_t i;

    evbuffer_add_printf(out, "  \"pins\": {");
    for (i = 0; i < c->npins; i++) {
        if (!c->pins[i].backend)
            continue;
        evbuffer_add_printf(out, "%s\n    ", sep);
        tn_json_str(out, c->pins[i].key);
        evbuffer_add_printf(out, ": ");
        tn_json_str(out, c->pins[i].backend);
        sep = ",";
    }
    evbuffer_add_printf(out, "%s}\n", *sep ? "\n  " : "");
}

/* Writes all of buf to fd. */
static int write_all(int fd, struct evbuffer *buf)
{
    while (evbuffer_get_length(buf)) {
        int n = evbuffer_write(buf, fd);

        if (n < 0 && errno != EINTR)
            return TN_ERR;
    }
    return TN_OK;
}

int tn_statefile_write(const struct tn_ctl *c, const char *path, const char **why)
{
    struct evbuffer *out = evbuffer_new();
    char tmp[4096], dir[4096];
    int fd = -1, rc = TN_ERR;

    if (!out) {
        *why = "out of memory";
        return TN_ERR;
    }
    evbuffer_add_printf(out, "{\n  \"format\": 1,\n  \"version\": %" PRIu64 ",\n  \"node\": ",
                        c->version);
    tn_json_str(out, c->node_id);
    evbuffer_add_printf(out, ",\n");
    emit_routes(c, out);
    emit_servers(c, out);
    emit_pins(c, out);
    evbuffer_add_printf(out, "}\n");
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    snprintf(dir, sizeof(dir), "%s", path);
    (void)mkdir(dirname(dir), 0755); /* a missing parent (one level), e.g. /var/lib/turnout */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, out) != TN_OK || fsync(fd) < 0) {
        *why = strerror(errno);
        goto done;
    }
    if (close(fd) < 0) {
        fd = -1;
        *why = strerror(errno);
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        *why = strerror(errno);
        goto done;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        fsync(fd); /* the rename itself survives a crash */
    rc = TN_OK;
done:
    if (fd >= 0)
        close(fd);
    if (rc != TN_OK)
        unlink(tmp);
    evbuffer_free(out);
    return rc;
}

/* ---- loading ---- */

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *p;

    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);

        if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_source(const char *s)
{
    int i;

    for (i = 0; s && i < TN_SOURCE_COUNT; i++)
        if (!strcmp(s, tn_source_name((enum tn_source)i)))
            return i;
    return -1;
}

/* Restores one route's entry; unknown or stale ones are skipped. */
static void load_route(struct tn_ctl *c, yaml_document_t *d, const char *name, yaml_node_t *v)
{
    int i = tn_ctl_route_index(c, name), src = parse_source(scalar(get(d, v, "source")));
    const char *ramp = scalar(get(d, v, "ramp"));
    uint32_t x100, conf_x100;
    struct tn_ctl_route *cr;

    if (i < 0 || !c->plan->routes[i].conf->has_shift || src < 0 ||
        tn_conf_parse_percent(scalar(get(d, v, "percent")) ?: "", &x100) != TN_OK ||
        tn_conf_parse_percent(scalar(get(d, v, "configured")) ?: "", &conf_x100) != TN_OK)
        return;
    if (conf_x100 != c->plan->routes[i].percent_x100)
        return; /* the file changed this route's percent since: the file wins */
    cr = &c->routes[c->plan->routes[i].id];
    cr->set = 1;
    cr->percent_x100 = x100;
    cr->source = (uint8_t)src;
    cr->conf_x100 = conf_x100;
    if (ramp && tn_ramp_decode(ramp, &cr->ramp) == TN_OK)
        cr->ramping = 1;
}

static void load_servers(struct tn_ctl *c, yaml_document_t *d, yaml_node_t *map)
{
    yaml_node_pair_t *p;
    size_t b, s;

    if (!map || map->type != YAML_MAPPING_NODE)
        return;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(d, p->key));
        int st = tn_server_state_parse(scalar(yaml_document_get_node(d, p->value)) ?: "");

        if (!k || st < 0)
            continue;
        for (b = 0; b < c->plan->conf->nbackends; b++) {
            const struct tn_conf_backend *be = &c->plan->conf->backends[b];
            size_t bl = strlen(be->name);

            if (strncmp(k, be->name, bl) || k[bl] != '/')
                continue;
            for (s = 0; s < be->nservers; s++)
                if (!strcmp(k + bl + 1, be->servers[s].name))
                    c->servers[c->plan->server_ids[b][s]].state = (uint8_t)st;
        }
    }
}

int tn_statefile_load(struct tn_ctl *c, const char *path, char *why, size_t len)
{
    FILE *f = fopen(path, "rb");
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root, *map;
    yaml_node_pair_t *p;
    const char *v;
    size_t npins = 0;

    if (!f) {
        if (errno == ENOENT)
            return TN_OK; /* first start */
        snprintf(why, len, "%s", strerror(errno));
        return TN_ERR;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(why, len, "not valid JSON at line %zu: %s", parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        fclose(f);
        return TN_ERR;
    }
    root = yaml_document_get_root_node(&doc);
    if ((v = scalar(get(&doc, root, "version"))))
        c->version = strtoull(v, NULL, 10);
    map = get(&doc, root, "routes");
    if (map && map->type == YAML_MAPPING_NODE)
        for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
            if ((v = scalar(yaml_document_get_node(&doc, p->key))))
                load_route(c, &doc, v, yaml_document_get_node(&doc, p->value));
    load_servers(c, &doc, get(&doc, root, "servers"));
    map = get(&doc, root, "pins");
    if (map && map->type == YAML_MAPPING_NODE) {
        for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
            const char *k = scalar(yaml_document_get_node(&doc, p->key));
            const char *b = scalar(yaml_document_get_node(&doc, p->value));

            if (k && b && tn_conf_backend_index(c->plan->conf, b) >= 0) {
                tn_ctl_pin_restore(c, k, b);
                npins++;
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    tn_ctl_event_add(c, "state-file", "restored", path, "runtime state of the last run");
    (void)npins;
    return TN_OK;
}
