/* Server health. Active checks: HTTP GETs run on the control thread's
 * event_base (health_check: path, interval, timeout, expect, rise, fall),
 * reporting each up/down transition to a callback. Passive checks:
 * consecutive connect errors or 5xx answers reported by the workers eject
 * a server for passive.eject, doubling up to passive.max_eject while it
 * keeps failing; lock-free, any thread. Servers are keyed by their stable
 * identity (turnout/ident.h), so states survive reloads. */
#ifndef TURNOUT_HEALTH_H
#define TURNOUT_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/conf-t.h"

struct event_base;
struct tn_plan;
struct tn_health;

/* ---- active checks (control thread) ---- */

enum tn_health_state {
    TN_HEALTH_UNCHECKED, /* no health_check on its backend */
    TN_HEALTH_UP,
    TN_HEALTH_DOWN
};

/* Called on each transition; why: "HTTP 503", "connect: Connection
 * refused", "timeout after 1000 ms", "passed 2 checks". Also, from the loop
 * after tn_health_configure(), for a DOWN server whose check changed (UP,
 * "health check changed") or that is no longer checked (UNCHECKED, "no
 * longer checked"). The callback may call tn_health_configure() or
 * tn_health_free(). Control thread. */
typedef void tn_health_fn(void *arg, uint32_t server_id, enum tn_health_state state,
                          const char *why);

struct tn_health *tn_health_new(struct event_base *base, tn_health_fn *cb, void *arg);
void tn_health_free(struct tn_health *h); /* NULL is a no-op */

/* (Re)configures the checks from plan (borrowed; ids from plan->server_ids):
 * every server of a backend with health_check enabled is checked. A server
 * that keeps its address and check settings keeps its state and counters;
 * a new one starts UP (as HAProxy does) and is checked at once; servers no
 * longer in the plan stop being checked. */
void tn_health_configure(struct tn_health *h, const struct tn_plan *plan);

/* The state of server_id, and the last check's result for `show backends`
 * ("HTTP 200 in 1 ms"), or "" when unchecked. */
enum tn_health_state tn_health_get(const struct tn_health *h, uint32_t server_id,
                                   const char **last);

const char *tn_health_state_name(enum tn_health_state s); /* "unchecked" "up" "down" */

/* ---- passive checks (any thread) ---- */

/* Makes room for server ids below count. Control thread, before a plan
 * using them is published. */
void tn_passive_reserve(uint32_t count);

/* A request to server_id connected and got a non-5xx answer (failed = 0),
 * or failed to connect / got a 5xx (failed = 1). now_ms: monotonic ms.
 * Returns 1 when this report ejected the server (for a log line). */
int tn_passive_report(uint32_t server_id, int failed, const struct tn_conf_passive *pc,
                      uint64_t now_ms);

/* Whether server_id is ejected at now_ms. */
int tn_passive_ejected(uint32_t server_id, uint64_t now_ms);

struct tn_passive_view {
    uint32_t failures;    /* consecutive failures so far */
    uint64_t until_ms;    /* ejected until (monotonic ms), 0 when not */
    uint32_t backoff_ms;  /* the last ejection's length, 0 after a success */
    uint64_t ejections;   /* total ejections */
};

void tn_passive_get(uint32_t server_id, struct tn_passive_view *v);

/* Forgets server_id's passive state (set server ... state ready). */
void tn_passive_clear(uint32_t server_id);

#endif
