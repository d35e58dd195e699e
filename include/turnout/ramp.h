/* Ramps: a schedule that walks a route's percent from one value to another
 * in equal steps over a duration (DESIGN.md: one percentage point by
 * default, at most one step a second). Only the schedule is stored (state
 * file, Redis), never a timer: the percent at any time follows from it, so
 * a ramp survives reloads and restarts and every node computes the same
 * step at the same moment. Pure functions; any thread. */
#ifndef TURNOUT_RAMP_H
#define TURNOUT_RAMP_H

#include <stddef.h>
#include <stdint.h>

struct tn_ramp {
    uint32_t from_x100, to_x100; /* percents x100 */
    uint32_t step_x100;          /* the step asked for (after the one-a-second rule) */
    uint64_t start_ms;           /* wall clock (Unix ms) */
    uint64_t duration_ms;
    char origin[65];             /* node that started it: the one writing its steps to Redis */
    int auto_rollback;           /* the judge's ramp down ("by=auto-rollback" in the text) */
};

/* Fills r for a ramp starting now_ms. step_x100 0 means the default (one
 * point). Steps closer than one second are merged so that there are at
 * most duration/1 s of them. */
void tn_ramp_init(struct tn_ramp *r, uint32_t from_x100, uint32_t to_x100, uint64_t duration_ms,
                  uint32_t step_x100, uint64_t now_ms, const char *origin);

/* Number of steps, and the time between two. */
uint32_t tn_ramp_steps(const struct tn_ramp *r);
uint64_t tn_ramp_interval_ms(const struct tn_ramp *r);

/* The percent in force at now_ms (from before the first step, to at and
 * after the end). */
uint32_t tn_ramp_percent(const struct tn_ramp *r, uint64_t now_ms);

/* When the next step after now_ms happens; 0 when the ramp is over. */
uint64_t tn_ramp_next_ms(const struct tn_ramp *r, uint64_t now_ms);

/* Text form, for Redis and the state file:
 * "from=10.00 to=50.00 step=1.00 start=1764530000000 duration=600000 origin=node-a".
 * encode returns the length written (always NUL-terminated); decode returns
 * TN_OK or TN_ERR (unparsable, out of range). */
size_t tn_ramp_encode(const struct tn_ramp *r, char *buf, size_t len);
int tn_ramp_decode(const char *s, struct tn_ramp *r);

/* Formats a percent x100 as "12.50". */
const char *tn_percent_str(uint32_t x100, char *buf, size_t len);

#endif
