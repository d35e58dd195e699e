/* Upstream connections and their per-worker pools: lease an idle
 * keep-alive connection or open a new one, give it back when the exchange
 * left it clean, close it otherwise. Worker thread only. */
#ifndef TURNOUT_POOL_H
#define TURNOUT_POOL_H

#include "turnout/pool-t.h"

struct tn_tlsclient;

/* Finds or creates the pool for address sa and TLS identity tls_id
 * (tn_tlsclient_id(), copied; NULL: plain) in worker w. Returns NULL on
 * allocation failure. */
struct tn_pool *tn_pool_get(struct tn_worker *w, const struct sockaddr *sa, socklen_t len,
                            const char *tls_id);

/* Takes an idle connection from the pool, or NULL when none is idle. The
 * connection's callbacks are cleared; the caller installs its own. */
struct tn_upstream *tn_pool_take(struct tn_pool *p);

/* Starts a new non-blocking connection to the pool's server; tls (borrowed:
 * the caller's plan's context, whose identity is the pool's) or NULL for a
 * plain pool. Returns NULL (with *why) when the socket cannot even be
 * created. */
struct tn_upstream *tn_upstream_connect(struct tn_pool *p, struct tn_tlsclient *tls,
                                        const char **why);

/* At TN_IO_EV_CONNECTED: starts the TLS handshake of a TLS connection
 * (TN_IO_EV_HANDSHAKE follows, or TN_IO_EV_ERROR). Returns 1 when it
 * started, 0 for a plain connection (connected now). */
int tn_upstream_start_tls(struct tn_upstream *u);

/* At TN_IO_EV_HANDSHAKE: the connection is usable. */
void tn_upstream_tls_done(struct tn_upstream *u);

/* Whether u failed during its TLS handshake (TCP connected, handshake not
 * done); then *why is the access-log reason (static), and the first failure
 * after a success on its pool is logged with OpenSSL's detail. */
int tn_upstream_tls_failed(struct tn_upstream *u, const char **why);

/* Gives a clean connection back to its pool (swept after upstream_idle),
 * or closes it when the pool is full or the worker drains. Takes ownership. */
void tn_pool_put(struct tn_upstream *u);

/* Closes a leased connection that cannot be reused and frees it. */
void tn_upstream_discard(struct tn_upstream *u);

/* Ends a lease: back to the pool when the exchange left it clean
 * (TN_UP_F_CLEAN), closed otherwise. Takes ownership. */
void tn_upstream_release(struct tn_upstream *u);

/* Closes the connection at once and frees it when the current callback
 * returns, without pool accounting (idle connections already unlinked);
 * NULL is a no-op. */
void tn_upstream_free(struct tn_upstream *u);

/* Frees the connections closed during the current callback (the worker's
 * end-of-callback hook). */
void tn_pool_reap(struct tn_worker *w);

/* Closes idle connections of w that were idle longer than idle_ms. */
void tn_pool_sweep(struct tn_worker *w, uint64_t now_ms, uint64_t idle_ms);

/* Closes every idle connection of every pool of w (drain, shutdown). */
void tn_pool_close_idle(struct tn_worker *w);

/* Frees every pool of w (their idle connections included). */
void tn_pool_free_all(struct tn_worker *w);

#endif
