/* Downstream connections: accept, transport callbacks, timers, keep-alive,
 * lingering close and deferred frees. The bytes are the HTTP/1.1 codec's
 * (h1down.h). Worker thread only. */
#ifndef TURNOUT_CLIENT_H
#define TURNOUT_CLIENT_H

#include <sys/socket.h>

#include "turnout/client-t.h"

/* Takes an accepted socket fd from peer; returns TN_OK or TN_ERR (fd closed). */
struct tn_stats_listener;
struct tn_tls;

/* Takes an accepted connection: counted on lst (or NULL), TLS with tls's
 * contexts when tls is not NULL. */
int tn_client_accept(struct tn_worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                     struct tn_stats_listener *lst, struct tn_tls *tls);

/* Sets c->state, checking the transition is legal. */
void tn_client_set_state(struct tn_client *c, enum tn_client_state s);
const char *tn_client_state_name(enum tn_client_state s);

/* Arms the client timer for d (a common timeout of the worker). */
void tn_client_arm(struct tn_client *c, const struct timeval *d);

/* The current request and its response are over: closes (close_after,
 * half-closed client, draining) or waits for the next request. */
void tn_client_exchange_done(struct tn_client *c);

/* Ends the connection at once with a reset (a response cut after its head). */
void tn_client_abort(struct tn_client *c);

/* Marks c to be freed when the current callback returns. */
void tn_client_kill(struct tn_client *c);

/* Frees the clients marked dead (end of every callback). */
void tn_client_reap(struct tn_worker *w);

/* Closes idle keep-alive clients of w (drain). */
void tn_client_close_idle(struct tn_worker *w);

/* Frees every client of w at once (forced stop). */
void tn_client_free_all(struct tn_worker *w);

#endif
