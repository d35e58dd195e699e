/* Smooth weighted round-robin (the NGINX algorithm): every pick adds each
 * server's weight to its current value, takes the largest and subtracts
 * the total from it. Spreads picks evenly (a,a,b rather than a,a,...,b).
 * The state is per worker, so no atomics. */
#include <stdlib.h>

#include "turnout/balance.h"
#include "turnout/common.h"

int tn_balance_init(struct tn_balance *bl, const struct tn_conf_backend *b)
{
    size_t i;

    bl->n = (uint32_t)b->nservers;
    bl->total = 0;
    bl->current = calloc(b->nservers ? b->nservers : 1, sizeof(*bl->current));
    if (!bl->current)
        return TN_ERR;
    for (i = 0; i < b->nservers; i++)
        bl->total += (int32_t)b->servers[i].weight;
    return TN_OK;
}

void tn_balance_deinit(struct tn_balance *bl)
{
    free(bl->current);
    bl->current = NULL;
}

int tn_balance_pick(struct tn_balance *bl, const struct tn_conf_backend *b, const uint8_t *usable)
{
    int32_t best_val = 0, total = 0;
    int best = -1;
    uint32_t i;

    if (bl->n == 1)
        return b->servers[0].weight && (!usable || usable[0]) ? 0 : -1;
    for (i = 0; i < bl->n; i++) {
        int32_t wgt = (int32_t)b->servers[i].weight;

        if (!wgt || (usable && !usable[i]))
            continue;
        total += wgt;
        bl->current[i] += wgt;
        if (best < 0 || bl->current[i] > best_val) {
            best = (int)i;
            best_val = bl->current[i];
        }
    }
    /* the total of the servers taking part keeps the smooth spread among
     * them while others are out */
    if (best >= 0)
        bl->current[best] -= total;
    return best;
}
