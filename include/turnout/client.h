/* Downstream HTTP/1.1 connections: accept, read and validate request heads,
 * answer errors, keep-alive and pipelining, timeouts, lingering close.
 * Worker thread only. */
#ifndef TURNOUT_CLIENT_H
#define TURNOUT_CLIENT_H

#include <sys/socket.h>

#include "turnout/client-t.h"

/* Takes an accepted socket fd from peer; returns TN_OK or TN_ERR (fd closed). */
int tn_client_accept(struct tn_worker *w, int fd, const struct sockaddr *peer, socklen_t len);

/* Sets c->state, checking the transition is legal. */
void tn_client_set_state(struct tn_client *c, enum tn_client_state s);
const char *tn_client_state_name(enum tn_client_state s);

/* Arms the client timer for d (a common timeout of the worker). */
void tn_client_arm(struct tn_client *c, const struct timeval *d);

/* Answers status with a short text body. close_after: add "Connection:
 * close" and close after the flush. Logs the exchange with reason. */
void tn_client_error(struct tn_client *c, int status, const char *reason, int close_after);

/* The current exchange is over (response fully queued): logs it, releases
 * the plan and either closes or goes back to reading the next request. */
void tn_client_exchange_done(struct tn_client *c);

/* Aborts the connection at once (no more bytes), e.g. a response broken
 * after its head was sent. */
void tn_client_abort(struct tn_client *c, const char *reason);

/* Resumes reading the client (request body backpressure released). */
void tn_client_resume_read(struct tn_client *c);

/* Frees c if it was marked dead; call at the end of every callback that may
 * have marked it. Returns 1 when freed. */
int tn_client_reap(struct tn_client *c);

/* Closes idle keep-alive clients of w (drain). */
void tn_client_close_idle(struct tn_worker *w);

/* Frees every client of w at once (forced stop). */
void tn_client_free_all(struct tn_worker *w);

#endif
