/* The HTTP/1.1 side of an attempt on a leased upstream connection:
 * serializes the stream's request head, frames its body, parses the
 * response strictly (RFC 9112) and hands its head, body bytes and end to the
 * stream (tn_stream_up_*). Worker thread only. */
#ifndef TURNOUT_H1UP_H
#define TURNOUT_H1UP_H

#include <stdint.h>

#include "turnout/msg-t.h"
#include "turnout/pool-t.h"

struct evbuffer;
struct tn_stream;

/* Starts the exchange of s on u (borrowed while leased): takes over u's
 * callbacks and queues the request head with the body framed as body/len
 * (TN_BODY_STREAM: chunked). Returns TN_OK, or TN_ERR when the head does
 * not fit the worker's scratch space. */
int tn_h1up_start(struct tn_upstream *u, struct tn_stream *s, enum tn_body_kind body, uint64_t len);

/* Queues the first n bytes of src as request body (moved, framed). */
void tn_h1up_data(struct tn_upstream *u, struct evbuffer *src, size_t n);

/* Queues body[0..len) as request body by reference: the memory must stay
 * unchanged while u may still write it (a stream's arena: the lease ends
 * before the arena is reset, and a connection with output left is never
 * pooled). */
void tn_h1up_data_ref(struct tn_upstream *u, const char *body, size_t len);

/* The request body is complete. */
void tn_h1up_end(struct tn_upstream *u);

/* Stops / restarts reading the response (the client cannot take more);
 * resuming relays what is already buffered. */
void tn_h1up_pause(struct tn_upstream *u);
void tn_h1up_resume(struct tn_upstream *u);

const char *tn_upstream_state_name(enum tn_upstream_state st);

#endif
