/* The control plane's internals shared by its modules: control.c (the
 * model, commit, changes, ramps, health events) and sync.c (Redis). Only
 * src/control includes this. Control thread only. */
#ifndef TURNOUT_CONTROL_INT_H
#define TURNOUT_CONTROL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/control-t.h"
#include "turnout/health.h"
#include "turnout/redis.h"

#include <event2/util.h>

#define TN_CTL_MAX_OPS 12 /* Redis hash operations in one change */

/* A change on its way through commit(). */
struct tn_ctl_change {
    const char *who, *what, *from, *to;
    const char *detail; /* NULL, or the figures behind it (auto-rollback) */
    struct tn_redis_op ops[TN_CTL_MAX_OPS];
    size_t nops;
    const char *message; /* for the `changes` channel; NULL: not written to Redis */
};

/* Adds one Redis hash operation (value NULL: HDEL) to cm. A "weights"
 * operation also clears the route's entry in "sources"... */
void tn_ctl_op(struct tn_ctl_change *cm, const char *hash, const char *field, const char *value);
/* ... unless this names where the weight came from (auto-rollback only). */
void tn_ctl_op_source(struct tn_ctl_change *cm, const char *field, enum tn_source src);

uint64_t tn_ctl_unix_ms(void);
void tn_ctl_copy(char *dst, size_t len, const char *src);

/* Grows the per-id arrays to the identities that exist now. */
void tn_ctl_fit_ids(struct tn_ctl *c);
/* Redis is configured but not up: changes are marked to be written later. */
int tn_ctl_redis_offline(const struct tn_ctl *c);

/* The percent plan route i runs at (runtime or configured). */
uint32_t tn_ctl_route_percent(const struct tn_ctl *c, size_t i);
/* Sets plan route i's runtime percent (no commit). */
void tn_ctl_set_route(struct tn_ctl *c, size_t i, uint32_t x100, enum tn_source src);

/* Pins: the position of key in the sorted array (*found), and set/remove
 * (a removal made while Redis is down stays as a dirty tombstone). */
size_t tn_ctl_pin_pos(const struct tn_ctl *c, const char *key, int *found);
void tn_ctl_pin_put(struct tn_ctl *c, const char *key, const char *backend, int dirty);

/* Builds the overlay from the model and hands it to the workers. */
void tn_ctl_publish(struct tn_ctl *c);
/* Rewrites the state file (errors logged once). */
void tn_ctl_save(struct tn_ctl *c);
/* Arms the ramp timer for the next step of any running ramp. */
void tn_ctl_reschedule_ramps(struct tn_ctl *c);

/* The one control function: version, overlay, Redis, state file, event. */
void tn_ctl_commit(struct tn_ctl *c, const struct tn_ctl_change *cm);
/* Whether no server of backend b (plan index) can take a request now. */
int tn_ctl_backend_down(const struct tn_ctl *c, int b);

/* watch.c: the health check callback (tn_health_fn), the twice-a-second
 * tick, and taking the plan's GeoIP database as the one in force. */
void tn_ctl_on_health(void *arg, uint32_t id, enum tn_health_state st, const char *why);
void tn_ctl_on_tick(evutil_socket_t fd, short what, void *arg);
void tn_ctl_adopt_geodb(struct tn_ctl *c);

/* sync.c: writes cm to Redis when up (returns 1), starts the client, and
 * compares two redis configurations. */
int tn_ctl_sync_write(struct tn_ctl *c, const struct tn_ctl_change *cm);
void tn_ctl_sync_start(struct tn_ctl *c);
int tn_ctl_sync_same(const struct tn_conf_redis *a, const struct tn_conf_redis *b);
/* Loads every segment's Redis set again (the last loaded stays until each
 * load completes); frees the sets and the loader. */
void tn_ctl_sets_reload(struct tn_ctl *c);
void tn_ctl_sets_free(struct tn_ctl *c);

#endif
