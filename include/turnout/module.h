/* Classifier modules: geography, device, segments, each behind this one
 * small interface in modules/<name>/. A module owns its top-level
 * configuration keys (parsed by its own code into struct tn_conf), builds
 * its state with each plan, and fills request facts through a classify
 * hook that runs lazily: at most once per request, and only when a route
 * being matched needs one of its facts. A module can be left out at
 * configure time (--without-maxminddb); a configuration that needs a
 * left-out module fails with a clear error. */
#ifndef TURNOUT_MODULE_H
#define TURNOUT_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "turnout/module-t.h"

struct tn_conf;
struct tn_conf_key;
struct tn_plan;
struct tn_overlay;
struct tn_route_req;
struct tn_decision;
struct pcre2_real_match_data_8;

/* One request as the classifiers see it; all borrowed. */
struct tn_classify {
    const struct tn_plan *plan;
    const struct tn_overlay *ov; /* runtime: GeoIP database, segment sets */
    const struct tn_route_req *rq;
    struct tn_decision *d;       /* the sticky key, computed on demand */
    struct pcre2_real_match_data_8 *md;
    void **wk;                   /* per-worker state of each module (tn_modules order) */
    struct tn_facts facts;
};

struct tn_module {
    const char *name;
    unsigned facts;                    /* TN_FACT_* it fills */
    const struct tn_conf_key *keys;    /* its top-level keys, NULL-terminated */
    /* builds the module's state for plan (control thread); NULL state when
     * the plan does not use it. TN_OK, or TN_ERR with *err (malloc'd,
     * "file:line:column: ..." lines). */
    int (*init)(const struct tn_plan *plan, void **state, char **err);
    void (*free)(void *state);
    /* per-worker scratch (caches); may be NULL */
    void *(*worker_new)(void);
    void (*worker_free)(void *wk);
    /* fills its facts in cx->facts (worker thread; no allocation) */
    void (*classify)(const void *state, struct tn_classify *cx, void *wk);
};

/* The modules of this build, NULL-terminated. */
extern const struct tn_module *const tn_modules[];
#define TN_MODULE_MAX 8

/* Top-level keys of modules left out of this build: key -> why, for the
 * configuration error. NULL-terminated pairs. */
extern const char *const tn_modules_absent[];

/* Makes sure the facts in `want` are known, running the modules that fill
 * them (once per request). */
void tn_classify_need(struct tn_classify *cx, unsigned want);

/* The module filling fact, or NULL when none in this build. */
const struct tn_module *tn_module_for(unsigned fact);

#endif
