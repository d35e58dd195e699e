/* The proxied exchange of one client request: route it, lease an upstream
 * connection, forward the head, stream the body both ways with
 * backpressure, relay the response. Worker thread only. */
#ifndef TURNOUT_STREAM_H
#define TURNOUT_STREAM_H

#include "turnout/client-t.h"

/* Starts proxying the parsed request in c->req (head copy in c->head).
 * On error answers the client itself. */
void tn_stream_start(struct tn_client *c);

/* Client input arrived while the request body is being forwarded. */
void tn_stream_on_client_data(struct tn_client *c);

/* Client output drained below the low watermark: resume the response. */
void tn_stream_on_client_drained(struct tn_client *c);

/* Releases the upstream connection of c (to its pool when clean). */
void tn_stream_release_upstream(struct tn_client *c, int reusable);

/* The client timer fired in CONNECT/REQ_BODY/WAIT_RESP/RESP. */
void tn_stream_on_timeout(struct tn_client *c);

#endif
