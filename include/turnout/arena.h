/* Per-stream arenas: bump allocation, no individual frees. Worker thread of
 * the owning stream. */
#ifndef TURNOUT_ARENA_H
#define TURNOUT_ARENA_H

#include "turnout/arena-t.h"

/* Returns n bytes aligned to 8 that live until the next reset, or NULL when
 * memory is short (the caller fails its stream). */
void *tn_arena_alloc(struct tn_arena *a, size_t n);

/* Copies s[0..n) and a NUL into the arena; NULL when memory is short. */
char *tn_arena_strndup(struct tn_arena *a, const char *s, size_t n);

/* Forgets every allocation; keeps the first block for the next user. */
void tn_arena_reset(struct tn_arena *a);

/* Frees everything; the arena may be used again (it starts empty). */
void tn_arena_deinit(struct tn_arena *a);

#endif
