/* The control plane: the runtime model, and the one function every change
 * goes through (admin socket, Redis, ramps, health checks, reloads): it
 * builds and publishes a new overlay, bumps the version, writes the state
 * file, writes Redis and records an event. Control thread only. */
#ifndef TURNOUT_CONTROL_H
#define TURNOUT_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/control-t.h"

struct evbuffer;

/* Creates the control plane for plan (takes one reference). node_id NULL:
 * the configured one, or "<hostname>-<first listen port>". */
struct tn_ctl *tn_ctl_new(struct event_base *base, struct tn_plan *plan,
                          const struct tn_ctl_hooks *hooks);
void tn_ctl_free(struct tn_ctl *c); /* NULL is a no-op */

/* Restores the state file, publishes the first overlay, starts Redis and
 * the health checks. Call before the workers start. */
void tn_ctl_start(struct tn_ctl *c);

/* A reload put plan in force (takes one reference): runtime items the file
 * changed are dropped, the rest carries over; health checks and Redis are
 * reconfigured. */
void tn_ctl_set_plan(struct tn_ctl *c, struct tn_plan *plan);

/* Changes. Each returns TN_OK with a one-line summary in msg, or TN_ERR
 * with the reason in msg and nothing changed. who names the actor. */
int tn_ctl_set_weight(struct tn_ctl *c, const char *route, uint32_t x100, enum tn_source src,
                      const char *who, char *msg, size_t len);
int tn_ctl_ramp(struct tn_ctl *c, const char *route, uint32_t to_x100, uint64_t duration_ms,
                uint32_t step_x100, const char *who, char *msg, size_t len);
int tn_ctl_ramp_cancel(struct tn_ctl *c, const char *route, const char *who, char *msg,
                       size_t len);
/* The judge's verdict on plan route i: its percent to 0 now, or a ramp
 * down over rollback.auto.ramp_down; any ramp cancelled; an event with
 * detail (both sides' figures and the test statistics); source
 * auto-rollback here and on every node through Redis. */
int tn_ctl_auto_rollback(struct tn_ctl *c, size_t i, const char *detail, char *msg, size_t len);

/* route NULL: every shifting route. src: TN_SOURCE_ADMIN or AUTO_ROLLBACK. */
int tn_ctl_rollback(struct tn_ctl *c, const char *route, enum tn_source src, const char *who,
                    char *msg, size_t len);
int tn_ctl_set_server(struct tn_ctl *c, const char *backend, const char *server,
                      enum tn_server_state st, const char *who, char *msg, size_t len);
/* backend NULL: unpin. */
int tn_ctl_pin(struct tn_ctl *c, const char *key, const char *backend, const char *who, char *msg,
               size_t len);

/* Queries for the show commands. */
int tn_ctl_route_index(const struct tn_ctl *c, const char *name); /* plan index or -1 */
/* The percent in force for plan route i and where it came from. */
uint32_t tn_ctl_percent(const struct tn_ctl *c, size_t i, enum tn_source *src);
const struct tn_ctl_pin *tn_ctl_pin_find(const struct tn_ctl *c, const char *key);
/* The i-th most recent event (0: the latest), NULL past the end. */
const struct tn_event *tn_ctl_event(const struct tn_ctl *c, size_t i);
/* Whether server (plan indexes) is ejected by passive health now. */
int tn_ctl_server_ejected(const struct tn_ctl *c, int backend, int server, uint64_t *until_ms);
const char *tn_ctl_redis_describe(const struct tn_ctl *c, char *buf, size_t len);

/* For the router (explain): whether backend (plan index) has a usable
 * server. ctx: the control plane. */
int tn_ctl_backend_up(void *ctx, int backend);

/* Restores a pin without recording a change (state file). */
void tn_ctl_pin_restore(struct tn_ctl *c, const char *key, const char *backend);

/* Records an event (also logged, and added to Redis's events stream when
 * the change came from this node). */
void tn_ctl_event_add(struct tn_ctl *c, const char *who, const char *what, const char *from,
                      const char *to);

/* The admin command interpreter (tn_admin_exec_fn): one line in, the
 * answer out. Lives in cmd.c. */
void tn_ctl_exec(void *ctl, const char *line, const char *who, struct evbuffer *out);

/* State file (statefile.c): write the runtime model atomically (temp file,
 * fsync, rename); load it at start. TN_OK or TN_ERR with *why. */
int tn_statefile_write(const struct tn_ctl *c, const char *path, const char **why);
int tn_statefile_load(struct tn_ctl *c, const char *path, char *why, size_t len);

#endif
