/* Replay budgets (DESIGN.md "Per-request rollback"): replays may add
 * `ratio` of a route's requests over `window`, plus a floor of replays per
 * second so that a quiet route can still replay, as Linkerd's retry budget.
 * Pure and single-threaded: each worker keeps its own. */
#ifndef TURNOUT_BUDGET_H
#define TURNOUT_BUDGET_H

#include "turnout/budget-t.h"

/* (Re)configures b; counts already in the window are kept when only the
 * ratio or the floor changes, and cleared when the window changes.
 * floor_x1000: replays per second x 1000. */
void tn_budget_setup(struct tn_budget *b, uint32_t ratio_x100, uint32_t window_ms,
                     uint32_t floor_x1000);

/* Counts one request of the route at time now_ms. */
void tn_budget_request(struct tn_budget *b, uint64_t now_ms);

/* Returns 1 and counts a replay when one more fits the budget at now_ms:
 * (replays + 1) <= ratio x requests + floor x window; 0 otherwise. */
int tn_budget_take(struct tn_budget *b, uint64_t now_ms);

#endif
