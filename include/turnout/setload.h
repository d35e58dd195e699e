/* Loading Redis sets (segment members) into local string sets: SSCAN in
 * batches on the control thread's event_base through the fleet client,
 * yielding to the loop between batches, so a set of millions of members
 * never stalls anything. A load replaces the previous set only when it
 * completes; a failed load keeps the last one. Control thread only. */
#ifndef TURNOUT_SETLOAD_H
#define TURNOUT_SETLOAD_H

#include <stddef.h>
#include <stdint.h>

struct tn_redis;
struct tn_strset;
struct tn_setload;

/* Called when a load of set `name` ends: set is the new set (sealed, one
 * reference, taken over by the callee; empty when the key does not exist)
 * or NULL with err on failure ("WRONGTYPE ...", "redis connection lost",
 * "shutting down", "out of memory", "SSCAN: unexpected reply"). name and
 * err are borrowed until it returns. It may call tn_setload_start and
 * tn_setload_free. */
typedef void tn_setload_done_fn(void *arg, const char *name, struct tn_strset *set,
                                const char *err);

/* Returns a new loader using r (borrowed: free the loader before r; loads
 * still running when r is freed end with "shutting down"), or NULL when
 * memory is short or r or done is NULL. */
struct tn_setload *tn_setload_new(struct tn_redis *r, tn_setload_done_fn *done, void *arg);
/* Cancels loads in progress (their done is not called; each one's state is
 * kept until its pending reply comes back, at the latest from
 * tn_redis_free, and freed then). NULL is a no-op; allowed from done. */
void tn_setload_free(struct tn_setload *l);

/* Starts loading key (e.g. "turnout:ott:segment:staff") as `name` (both
 * copied): SCARD, then SSCAN key cursor COUNT 1000, one batch per reply. A
 * load of the same name already running restarts from the beginning once it
 * ends (coalesced, with the latest key): done comes for the running load,
 * then once more for the restart. Loads of different names run side by
 * side. TN_OK (done is called later, never from inside this call), or
 * TN_ERR when Redis is not up or memory is short. */
int tn_setload_start(struct tn_setload *l, const char *name, const char *key);

/* Whether a load of name is in progress, and how many members it read
 * (members may be NULL). */
int tn_setload_busy(const struct tn_setload *l, const char *name, size_t *members);

#endif
