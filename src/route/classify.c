/* The classifier registry and the lazy classification of one request:
 * the modules of this build (configure decides which), and
 * tn_classify_need(), which runs a module's classify hook the first time
 * a route needs one of its facts. */
#include <stddef.h>

#include "config.h"
#include "turnout/common.h"
#include "turnout/module.h"
#include "turnout/route.h"

extern const struct tn_module tn_module_device;
extern const struct tn_module tn_module_segment;
#ifdef TN_WITH_GEO
extern const struct tn_module tn_module_geo;
#endif

const struct tn_module *const tn_modules[] = {
#ifdef TN_WITH_GEO
    &tn_module_geo,
#endif
    &tn_module_device,
    &tn_module_segment,
    NULL,
};

const char *const tn_modules_absent[] = {
#ifndef TN_WITH_GEO
    "geoip", "the geo module is not in this build (configured --without-maxminddb)",
#endif
    NULL,
};

const struct tn_module *tn_module_for(unsigned fact)
{
    size_t i;

    for (i = 0; tn_modules[i]; i++)
        if (tn_modules[i]->facts & fact)
            return tn_modules[i];
    return NULL;
}

void tn_classify_need(struct tn_classify *cx, unsigned want)
{
    size_t i;

    want &= ~cx->facts.have;
    if (!want)
        return;
    for (i = 0; tn_modules[i]; i++) {
        const struct tn_module *m = tn_modules[i];

        if (!(m->facts & want))
            continue;
        if (cx->plan->mod_state[i])
            m->classify(cx->plan->mod_state[i], cx, cx->wk ? cx->wk[i] : NULL);
        cx->facts.have |= m->facts;
    }
}
