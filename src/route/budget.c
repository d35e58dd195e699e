/* Replay budgets. The window is cut in at most TN_BUDGET_SLOTS slices of at
 * least 100 ms; each slice counts requests and replays, and the sums over
 * the window are kept up to date as slices expire, so a check is O(1)
 * amortised and needs no allocation. */
#include <string.h>

#include "turnout/budget.h"

static void advance(struct tn_budget *b, uint64_t now_ms)
{
    uint64_t slice = now_ms / b->slice_ms, steps;

    if (slice <= b->cur)
        return;
    steps = slice - b->cur;
    if (steps >= b->nslots) {
        memset(b->req, 0, sizeof(b->req));
        memset(b->rep, 0, sizeof(b->rep));
        b->req_sum = b->rep_sum = 0;
    } else {
        while (b->cur < slice) {
            uint32_t i = (uint32_t)(++b->cur % b->nslots);

            b->req_sum -= b->req[i];
            b->rep_sum -= b->rep[i];
            b->req[i] = b->rep[i] = 0;
        }
    }
    b->cur = slice;
}

void tn_budget_setup(struct tn_budget *b, uint32_t ratio_x100, uint32_t window_ms,
                     uint32_t floor_x1000)
{
    uint32_t nslots, slice;

    if (!window_ms)
        window_ms = 1;
    nslots = window_ms / 100;
    if (nslots > TN_BUDGET_SLOTS)
        nslots = TN_BUDGET_SLOTS;
    if (nslots == 0)
        nslots = 1;
    slice = (window_ms + nslots - 1) / nslots;
    if (b->window_ms != window_ms || b->slice_ms != slice || b->nslots != nslots) {
        memset(b, 0, sizeof(*b));
        b->window_ms = window_ms;
        b->slice_ms = slice;
        b->nslots = nslots;
    }
    b->ratio_x100 = ratio_x100;
    b->floor_x1000 = floor_x1000;
}

void tn_budget_request(struct tn_budget *b, uint64_t now_ms)
{
    advance(b, now_ms);
    b->req[b->cur % b->nslots]++;
    b->req_sum++;
}

int tn_budget_take(struct tn_budget *b, uint64_t now_ms)
{
    /* everything x 10^7: ratio is x100 of a percent (10^4 = 100 %), the
     * floor is x1000 per second over window_ms milliseconds */
    uint64_t allowed, want;

    advance(b, now_ms);
    allowed = b->req_sum * b->ratio_x100 * 1000u + (uint64_t)b->floor_x1000 * b->window_ms * 10u;
    want = (b->rep_sum + 1) * 10000000u;
    if (want > allowed)
        return 0;
    b->rep[b->cur % b->nslots]++;
    b->rep_sum++;
    return 1;
}
