/* Smooth weighted round-robin among a backend's servers, state per worker
 * (no shared counters on the request path). */
#ifndef TURNOUT_BALANCE_H
#define TURNOUT_BALANCE_H

#include <stdint.h>

#include "turnout/conf-t.h"

struct tn_balance {
    int32_t *current; /* one per server */
    uint32_t n;
    int32_t total;
};

/* Prepares state for backend b. Returns TN_OK or TN_ERR (allocation). */
int tn_balance_init(struct tn_balance *bl, const struct tn_conf_backend *b);
void tn_balance_deinit(struct tn_balance *bl);

/* Picks the next server index of b among the usable ones (usable[i] != 0;
 * NULL: all), or -1 when no usable server has a weight. */
int tn_balance_pick(struct tn_balance *bl, const struct tn_conf_backend *b, const uint8_t *usable);

#endif
