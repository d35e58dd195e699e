/* Replay budget types: per route and per worker, a sliding window of
 * one-bucket-per-slice request and replay counts. */
#ifndef TURNOUT_BUDGET_T_H
#define TURNOUT_BUDGET_T_H

#include <stdint.h>

#define TN_BUDGET_SLOTS 64 /* window slices; a slice is at least 100 ms */

struct tn_budget {
    uint32_t ratio_x100;   /* replays may add this share of the requests (x100: 2000 = 20 %) */
    uint32_t floor_x1000;  /* plus this many replays per second, in thousandths */
    uint32_t window_ms;
    uint32_t slice_ms;     /* window_ms / nslots, at least 100 */
    uint32_t nslots;
    uint64_t cur;          /* index of the current slice since the epoch of tn_now_ms() */
    uint32_t req[TN_BUDGET_SLOTS], rep[TN_BUDGET_SLOTS];
    uint64_t req_sum, rep_sum; /* over the window */
};

#endif
