/* Stable identities. Names are interned per kind in append-only tables:
 * the control thread adds names while it builds a plan; a worker reads a
 * name only for an id it got from a published plan. Chunks never move, so
 * a reader needs no lock. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/ident.h"

#define CHUNK 256
#define MAX_CHUNKS 256 /* 65 536 names per kind */

struct table {
    char **chunks[MAX_CHUNKS];
    atomic_uint count;
};

static struct table tables[3];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

uint32_t tn_ident_intern(enum tn_ident_kind kind, const char *name)
{
    struct table *t = &tables[kind];
    uint32_t i, n;

    pthread_mutex_lock(&lock);
    n = atomic_load(&t->count);
    for (i = 0; i < n; i++) {
        if (!strcmp(t->chunks[i / CHUNK][i % CHUNK], name)) {
            pthread_mutex_unlock(&lock);
            return i;
        }
    }
    TN_BUG_ON(n >= CHUNK * MAX_CHUNKS);
    if (!t->chunks[n / CHUNK])
        t->chunks[n / CHUNK] = tn_xcalloc(CHUNK, sizeof(char *));
    t->chunks[n / CHUNK][n % CHUNK] = tn_xstrdup(name);
    atomic_store(&t->count, n + 1);
    pthread_mutex_unlock(&lock);
    return n;
}

const char *tn_ident_name(enum tn_ident_kind kind, uint32_t id)
{
    struct table *t = &tables[kind];

    if (id >= atomic_load(&t->count))
        return NULL;
    return t->chunks[id / CHUNK][id % CHUNK];
}

uint32_t tn_ident_count(enum tn_ident_kind kind)
{
    return atomic_load(&tables[kind].count);
}
