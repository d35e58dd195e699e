/* The downstream HTTP/1.1 codec: turns a client connection's bytes into
 * streams (strict request heads, Content-Length and chunked bodies) and the
 * streams' responses back into HTTP/1.1 (framing for the client's version,
 * Via, Date, keep-alive), one request at a time; pipelined requests wait in
 * the input. Worker thread only. */
#ifndef TURNOUT_H1DOWN_H
#define TURNOUT_H1DOWN_H

#include "turnout/client-t.h"

/* Input arrived (or was kicked): parse heads, move body bytes. */
void tn_h1down_on_read(struct tn_client *c);

/* The output drained to the low watermark asked for. */
void tn_h1down_on_drained(struct tn_client *c);

/* The client half-closed its side. */
void tn_h1down_on_eof(struct tn_client *c);

/* The client timer fired in REQ_HEAD or REQ_BODY. */
void tn_h1down_on_timer(struct tn_client *c);

/* Answers status with a short text page for a request no stream took (a
 * malformed or late head), closes after it, and logs it with why. */
void tn_h1down_reject(struct tn_client *c, int status, const char *why);

#endif
