/* Runtime overlays: building (control thread), reference counting (any
 * thread) and the lookups the workers do per request. */
#ifndef TURNOUT_OVERLAY_H
#define TURNOUT_OVERLAY_H

#include "turnout/overlay-t.h"

/* A new empty overlay for nroutes route ids and nservers server ids: no
 * percent set, every server ready and up, no pins. Control thread; aborts
 * when memory is short (like plan building). */
struct tn_overlay *tn_overlay_new(uint32_t nroutes, uint32_t nservers);

/* Takes one more reference / drops one (frees at the last). Any thread. */
struct tn_overlay *tn_overlay_ref(struct tn_overlay *ov);
void tn_overlay_unref(struct tn_overlay *ov);

/* Pins: a table from n (key, backend id) pairs (keys copied). */
struct tn_pins *tn_pins_new(const char *const *keys, const uint32_t *backend_ids, size_t n);
struct tn_pins *tn_pins_ref(struct tn_pins *p);
void tn_pins_unref(struct tn_pins *p);

/* The backend id pinned for key, or -1. Any thread; no allocation. */
int64_t tn_pins_find(const struct tn_pins *p, const char *key, size_t len);

/* The percent in force for route id, or -1 when the overlay sets none. */
static inline int32_t tn_overlay_percent(const struct tn_overlay *ov, uint32_t route_id)
{
    return ov && route_id < ov->nroutes ? ov->routes[route_id].percent_x100 : -1;
}

/* Whether server id may take a new request by its admin state and active
 * health (passive ejection is checked separately). */
static inline int tn_overlay_server_ok(const struct tn_overlay *ov, uint32_t server_id)
{
    if (!ov || server_id >= ov->nservers)
        return 1;
    return ov->server_state[server_id] == TN_SERVER_READY && !ov->server_down[server_id];
}

/* The loaded Redis set called name, or NULL. Any thread. */
const struct tn_strset *tn_overlay_set(const struct tn_overlay *ov, const char *name);

/* Names: "config", "admin", ...; "ready", "drain", "maint". */
const char *tn_source_name(enum tn_source s);
const char *tn_server_state_name(enum tn_server_state s);

/* Parses a state name; -1 when unknown. */
int tn_server_state_parse(const char *s);

#endif
