/* Worker threads: each runs its own event loop with its own SO_REUSEPORT
 * listeners; the control thread hands plans over and asks it to drain. */
#ifndef TURNOUT_WORKER_H
#define TURNOUT_WORKER_H

#include "turnout/worker-t.h"

/* Creates worker id (of nworkers) with its event base and listeners on the
 * given fds (takes them). Returns NULL with *why on failure. Control thread. */
struct tn_worker *tn_worker_new(int id, uint32_t nworkers, int *fds, size_t nfds,
                                struct tn_plan *plan, const char **why);

/* Starts the worker thread. Returns TN_OK or TN_ERR. */
int tn_worker_start(struct tn_worker *w);

/* Hands plan (a new reference, taken by the worker) to w; the worker
 * adopts it for the next exchanges. Control thread. */
void tn_worker_publish(struct tn_worker *w, struct tn_plan *plan);

/* Asks w to stop accepting and finish what is in flight; the thread exits
 * when no client is left. Control thread. */
void tn_worker_drain(struct tn_worker *w);

/* Hands overlay ov (one reference, taken over) to w; w adopts it on its own
 * thread. Control thread; may be called before tn_worker_start. */
void tn_worker_publish_overlay(struct tn_worker *w, struct tn_overlay *ov);

/* Whether server (plan indexes) of view wp may take a new request now: its
 * admin state is ready, its active check does not say down and passive
 * checks have not ejected it (unless ignore_passive). Worker thread. */
int tn_worker_server_usable(const struct tn_worker *w, const struct tn_wplan *wp, int backend,
                            int server, uint64_t now_ms, int ignore_passive);

/* Fills usable[0..nservers) for backend of wp (at w->now_ms) and returns how many are
 * usable. When none is by health alone but some are ready, passive
 * ejections are ignored (a backend with no alternative is tried rather
 * than refused, as Envoy's panic threshold does). Worker thread. */
uint32_t tn_worker_usable_servers(const struct tn_worker *w, const struct tn_wplan *wp,
                                  int backend, uint8_t *usable);

/* For the router: whether backend of the current view has a server that is
 * up (ready, not down, not ejected at w->now_ms). ctx: the worker. */
int tn_worker_backend_up(void *ctx, int backend);

/* Asks w to exit its loop now. Control thread. */
void tn_worker_stop(struct tn_worker *w);

/* Waits for the thread and frees w. */
void tn_worker_join_free(struct tn_worker *w);

/* Worker thread: takes one user of the current plan view for an exchange. */
struct tn_wplan *tn_wplan_acquire(struct tn_worker *w);
void tn_wplan_release(struct tn_worker *w, struct tn_wplan *wp);

/* Worker thread: the current time as an IMF-fixdate ("Sun, 06 Nov 1994
 * 08:49:37 GMT"), formatted once a second. */
const char *tn_worker_http_date(struct tn_worker *w);

/* Worker thread: a client connection ended; may re-enable accepting or
 * finish a drain. */
void tn_worker_client_gone(struct tn_worker *w);

/* Worker thread: a stream ended; may finish a drain. */
void tn_worker_stream_gone(struct tn_worker *w);

/* Worker thread: w's state for the route with stable id `id` (sized when
 * a plan is adopted, so every route of a live plan has one). */
static inline struct tn_route_wstate *tn_worker_route_state(struct tn_worker *w, uint32_t id)
{
    return &w->rstate[id];
}

#endif
