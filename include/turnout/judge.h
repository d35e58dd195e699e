/* The automatic rollback judge (rollback.auto; DESIGN.md "Per-request
 * rollback"): every window of `window` seconds, aligned to Unix time so
 * that every node judges the same seconds, each shifting route's "to" is
 * judged against its "from" on the per-second figures of the statistics
 * shards (verdict.c). After `windows` consecutive bad windows the route
 * goes to 0 (or ramps down over ramp_down) through the control function,
 * so the fleet follows through Redis; a Redis lock (SET NX) makes two
 * nodes reaching the verdict together one rollback and one event. Control
 * thread only. */
#ifndef TURNOUT_JUDGE_H
#define TURNOUT_JUDGE_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/verdict.h"

struct evbuffer;
struct tn_ctl;
struct tn_judge;

#define TN_JUDGE_HISTORY 30 /* windows kept per route for `show rollback` */

struct tn_judge_window {
    int64_t start, end; /* Unix seconds: [start, end) */
    struct tn_window_side from, to;
    struct tn_judgement j;
};

struct tn_judge *tn_judge_new(struct tn_ctl *c);
void tn_judge_free(struct tn_judge *jd); /* NULL is a no-op */

/* `show rollback [route] [json]`. Returns 0 when route names no shifting
 * route (nothing written). */
int tn_judge_show(const struct tn_judge *jd, const char *route, int json, struct evbuffer *out);

/* A route's windows by verdict (TN_VERDICT_COUNT of them), this node's
 * automatic rollbacks and the last one's time (Unix ms, 0: never).
 * Returns 0 when the route was never judged (zeros). */
int tn_judge_counts(const struct tn_judge *jd, uint32_t route_id, uint64_t *verdicts,
                    uint64_t *rollbacks, uint64_t *last_rollback_ms);

#endif
