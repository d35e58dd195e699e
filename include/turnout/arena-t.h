/* Arena types: per-stream scratch memory, freed all at once when the stream
 * ends. The first block is kept across resets, so a reused stream
 * allocates nothing in the common case. */
#ifndef TURNOUT_ARENA_T_H
#define TURNOUT_ARENA_T_H

#include <stddef.h>

struct tn_arena_block;

struct tn_arena {
    char *base; /* first block, kept by tn_arena_reset */
    size_t cap, used;
    struct tn_arena_block *more; /* overflow blocks, freed by tn_arena_reset */
};

#endif
