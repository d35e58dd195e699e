/* Streams: one request from head parsed to log line (DESIGN.md
 * "Architecture", layer 3). A codec creates a stream, drives it through
 * tn_stream_ops and gets the response through its own table; the stream
 * routes the request, makes its attempts on upstream connections, replays a
 * failed one on the route's "from" backend, and writes the access log line.
 * Worker thread only. */
#ifndef TURNOUT_STREAM_H
#define TURNOUT_STREAM_H

#include "turnout/stream-t.h"

struct tn_msg;

/* The stream's table: what a codec calls with the request. head copies the
 * request into the stream and starts the first attempt; data/end deliver
 * the body; abort gives up (client gone, bad body: status is what the codec
 * answers itself, for the log); pause/resume: the client cannot take more
 * response bytes / can again. */
extern const struct tn_stream_ops tn_stream_ops;

/* Creates a stream on w. down/down_ctx: the codec's table and connection
 * (borrowed until the stream calls down->end or down->abort, or until
 * tn_stream_detach); NULL for a stream with no client. client_ip and scheme
 * are copied / static; start_us: when the request began (0: now). Returns
 * NULL when memory is short. */
struct tn_stream *tn_stream_new(struct tn_worker *w, const struct tn_stream_ops *down,
                                void *down_ctx, const char *client_ip, const char *scheme,
                                uint64_t start_us);

/* Logs a request the codec refused before handing it over (status, why,
 * when it started, what the refusal cost in bytes) and ends s. */
void tn_stream_reject(struct tn_stream *s, int status, const char *why, uint64_t start_us,
                      uint64_t bytes_out);

/* The codec goes away: the stream stops talking to it. When the stream had
 * not finished, it ends now (logged with why, the upstream closed). */
void tn_stream_detach(struct tn_stream *s, const char *why);

const char *tn_stream_state_name(enum tn_stream_state st);
const char *tn_attempt_error_name(enum tn_attempt_error e);
/* Names of an attempt result (TN_STATS_RESULTS: "ok", "5xx", then the
 * attempt errors), a replay reason and a reason not to replay. */
const char *tn_attempt_result_name(int result);
const char *tn_replay_reason_name(int reason);
const char *tn_noreplay_reason_name(int reason);

/* ---- called by the upstream side (src/http/h1up.c) ----
 * Each may release s->up (the lease ends inside the call); those returning
 * int say TN_OK when the caller may go on with the connection, TN_ERR when
 * it is no longer the caller's to touch. */

/* The connection opened. */
void tn_stream_up_connected(struct tn_stream *s);
/* A response head (interim or final); m is valid for the call. */
int tn_stream_up_head(struct tn_stream *s, const struct tn_msg *m);
/* The first n bytes of src are response body. */
int tn_stream_up_data(struct tn_stream *s, struct evbuffer *src, size_t n);
/* The response is complete; the lease ends (pooled when u is clean). */
void tn_stream_up_end(struct tn_stream *s);
/* The attempt failed; the lease ends. why: static reason. */
void tn_stream_up_fail(struct tn_stream *s, enum tn_attempt_error err, const char *why);
/* The upstream output drained to the low watermark. */
void tn_stream_up_drained(struct tn_stream *s);

/* ---- worker housekeeping ---- */

/* Frees the streams that ended (end of every callback). */
void tn_stream_reap(struct tn_worker *w);

/* Ends every stream of w at once and frees all stream memory (stop). */
void tn_stream_free_all(struct tn_worker *w);

/* Adds the response fields turnout sets (respextra.c) to m, in the
 * stream's arena. Worker thread. */
void tn_stream_add_extra(struct tn_stream *s, struct tn_msg *m);

#endif
