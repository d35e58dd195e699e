/* Per-stream arenas. A stream's request head and fields are copied here so
 * the request can be sent again; the first block is sized by the first
 * requests and kept while the stream object is recycled, larger requests
 * get overflow blocks that the next reset frees. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/arena.h"

#define ARENA_MIN 4096

struct tn_arena_block {
    struct tn_arena_block *next;
    size_t cap, used;
    char data[];
};

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

void *tn_arena_alloc(struct tn_arena *a, size_t n)
{
    struct tn_arena_block *b;
    size_t cap;

    n = align8(n ? n : 1);
    if (!a->base) {
        cap = n > ARENA_MIN ? align8(n) : ARENA_MIN;
        a->base = malloc(cap);
        if (!a->base)
            return NULL;
        a->cap = cap;
        a->used = 0;
    }
    if (a->cap - a->used >= n) {
        void *p = a->base + a->used;

        a->used += n;
        return p;
    }
    if (a->used == 0) { /* the kept block is too small for this request: grow it */
        char *nb = realloc(a->base, n);

        if (!nb)
            return NULL;
        a->base = nb;
        a->cap = n;
        a->used = n;
        return nb;
    }
    b = a->more;
    if (b && b->cap - b->used >= n) {
        void *p = b->data + b->used;

        b->used += n;
        return p;
    }
    cap = n > ARENA_MIN ? n : ARENA_MIN;
    b = malloc(sizeof(*b) + cap);
    if (!b)
        return NULL;
    b->cap = cap;
    b->used = n;
    b->next = a->more;
    a->more = b;
    return b->data;
}

char *tn_arena_strndup(struct tn_arena *a, const char *s, size_t n)
{
    char *p = tn_arena_alloc(a, n + 1);

    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void tn_arena_reset(struct tn_arena *a)
{
    while (a->more) {
        struct tn_arena_block *b = a->more;

        a->more = b->next;
        free(b);
    }
    a->used = 0;
}

void tn_arena_deinit(struct tn_arena *a)
{
    tn_arena_reset(a);
    free(a->base);
    a->base = NULL;
    a->cap = 0;
}
