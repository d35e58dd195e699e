/* Explaining a routing decision: the route, the conditions its match
 * holds on, what classification found (country, device, segments), the
 * sticky key source, the bucket and the reason, as one line for the
 * X-Turnout-Decision header, `explain` on the admin socket and logs. */
#include <stdio.h>
#include <string.h>

#include "turnout/device.h"
#include "turnout/module.h"
#include "turnout/route.h"

static const char *const override_names[] = {"", "honoured", "refused", "unknown_backend"};

size_t tn_route_match_keys(const struct tn_conf_match *m, char *buf, size_t len)
{
    static const char *const names[] = {"host", "path", "method", "header", "country",
                                        "continent", "subdivision", "device", "segment"};
    const int on[] = {!!m->host, !!m->path, m->methods.n > 0, m->nheaders > 0, m->country.n > 0,
                      m->continent.n > 0, m->subdivision.n > 0, !!m->device, !!m->segment};
    size_t i, off = 0;

    buf[0] = '\0';
    for (i = 0; i < sizeof(on) / sizeof(on[0]) && off < len; i++)
        if (on[i])
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "," : "", names[i]);
    if (!off)
        snprintf(buf, len, "*");
    return strlen(buf);
}

size_t tn_route_segment_names(const struct tn_plan *p, uint64_t bits, char *buf, size_t len)
{
    size_t i, off = 0;

    buf[0] = '\0';
    for (i = 0; i < p->conf->nsegments && i < TN_MAX_SEGMENTS && off < len; i++)
        if (bits >> i & 1)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "," : "",
                                    p->conf->segments[i].name);
    return off < len ? off : len - 1;
}

const char *tn_route_side_name(const struct tn_conf_route *r, int backend)
{
    if (!r->has_shift)
        return "pinned";
    return backend == r->from_idx ? "from" : backend == r->to_idx ? "to" : "pinned";
}

const char *tn_route_override_name(int override)
{
    return override >= 0 && override < 4 ? override_names[override] : "";
}

size_t tn_route_explain(const struct tn_plan *p, const struct tn_decision *d, char *buf,
                        size_t len)
{
    const struct tn_facts *f = &d->facts;
    char keys[128], segs[512];
    size_t off;

#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (off < len)                                                                             \
            off += (size_t)snprintf(buf + off, len - off, __VA_ARGS__);                            \
    } while (0)
    off = 0;
    buf[0] = '\0';
    if (d->route < 0) {
        ADD("route=none reason=no_route");
    } else {
        tn_route_match_keys(&p->conf->routes[d->route].match, keys, sizeof(keys));
        ADD("route=%s match=%s", p->conf->routes[d->route].name, keys);
    }
    if (f->have & TN_FACT_GEO)
        ADD(" country=%s continent=%s subdivision=%s", f->geo.country[0] ? f->geo.country : "-",
            f->geo.continent[0] ? f->geo.continent : "-",
            f->geo.subdivision[0] ? f->geo.subdivision : "-");
    if (f->have & TN_FACT_DEVICE) {
        const char *dev = f->device >= 0 ? tn_device_plan_name(p, f->device) : NULL;

        ADD(" device=%s", dev ? dev : "-");
    }
    if (f->have & TN_FACT_SEGMENTS) {
        tn_route_segment_names(p, f->segments, segs, sizeof(segs));
        ADD(" segments=%s", segs[0] ? segs : "-");
    }
    if (d->route >= 0) {
        if (d->key_source != TN_STICKY_NONE)
            ADD(" key=%s", tn_route_sticky_name(d->key_source));
        if (d->has_bucket)
            ADD(" bucket=%u", d->bucket);
        ADD(" reason=%s", tn_route_reason_name(d->reason));
        if (d->backend >= 0)
            ADD(" backend=%s", p->conf->backends[d->backend].name);
    }
    if (d->override)
        ADD(" override=%s", tn_route_override_name(d->override));
#undef ADD
    return off < len ? off : len - 1;
}
