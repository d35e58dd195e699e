/* The downstream HTTP/2 codec (RFC 9113) on nghttp2's server session: each
 * HTTP/2 stream becomes a protocol-neutral stream (stream.h) and goes
 * through the same classify, route, shift, replay and log path as an
 * HTTP/1.1 request; responses come back as HEADERS and DATA frames. Flow
 * control windows are the backpressure both ways. Independent of the
 * transport: it only uses c->io's buffers, plain (h2c) or TLS (ALPN h2).
 * Worker thread only. */
#ifndef TURNOUT_H2DOWN_H
#define TURNOUT_H2DOWN_H

#include "turnout/client-t.h"
#include "turnout/h2down-t.h"

struct evbuffer;

/* The 24 bytes every HTTP/2 connection starts with (RFC 9113 3.4). */
#define TN_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define TN_H2_PREFACE_LEN 24

/* Whether in starts with the connection preface: TN_OK (it does), TN_ERR
 * (it does not: HTTP/1), TN_AGAIN (the bytes so far match; more needed). */
int tn_h2down_sniff(struct evbuffer *in);

/* Makes c an HTTP/2 connection: a session, our SETTINGS, then whatever
 * input is already buffered (the preface included) is processed. c->h2 is
 * ours until tn_h2down_free. Returns TN_OK, or TN_ERR when memory is short
 * (the caller closes c). */
int tn_h2down_start(struct tn_client *c);

/* Input arrived in c->io.in. */
void tn_h2down_on_read(struct tn_client *c);

/* The output drained to the low watermark asked for. */
void tn_h2down_on_drained(struct tn_client *c);

/* The client closed its side. */
void tn_h2down_on_eof(struct tn_client *c);

/* The client timer fired: idle (no stream open for timeouts.client_idle:
 * GOAWAY, close) or a client_body period (streams trickling a body get 408,
 * a header block that stalled closes the connection). */
void tn_h2down_on_timer(struct tn_client *c);

/* Graceful shutdown (drain): GOAWAY with the last stream id; the open
 * streams finish, then the connection closes. */
void tn_h2down_drain(struct tn_client *c);

/* Ends every stream still attached (logged with why) and frees c->h2.
 * Called when c is freed, outside any callback of the session. */
void tn_h2down_free(struct tn_client *c, const char *why);

#endif
