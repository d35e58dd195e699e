/* Runtime overlays: the immutable snapshot of percents, server states,
 * health and pins that the control thread publishes next to the plan, and
 * the pins table (open addressing, XXH3 hashes) the workers probe per
 * request when a user may be pinned. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "config.h"
#include "turnout/common.h"
#include "turnout/geodb.h"
#include "turnout/overlay.h"
#include "turnout/strset.h"

static const char *const source_names[] = {
#define TN_X_NAME(s, name) name,
    TN_SOURCES(TN_X_NAME)
#undef TN_X_NAME
};

static const char *const state_names[] = {
#define TN_X_NAME(s, name) name,
    TN_SERVER_STATES(TN_X_NAME)
#undef TN_X_NAME
};

static struct tn_pins *empty_pins(void)
{
    return tn_pins_new(NULL, NULL, 0);
}

struct tn_overlay *tn_overlay_new(uint32_t nroutes, uint32_t nservers)
{
    struct tn_overlay *ov = tn_xcalloc(1, sizeof(*ov));
    uint32_t i;

    atomic_init(&ov->refs, 1);
    ov->nroutes = nroutes;
    ov->routes = tn_xcalloc(nroutes ? nroutes : 1, sizeof(*ov->routes));
    for (i = 0; i < nroutes; i++)
        ov->routes[i].percent_x100 = -1;
    ov->nservers = nservers;
    ov->server_state = tn_xcalloc(nservers ? nservers : 1, 1);
    ov->server_down = tn_xcalloc(nservers ? nservers : 1, 1);
    ov->pins = empty_pins();
    return ov;
}

struct tn_overlay *tn_overlay_ref(struct tn_overlay *ov)
{
    if (ov)
        atomic_fetch_add_explicit(&ov->refs, 1, memory_order_relaxed);
    return ov;
}

void tn_overlay_unref(struct tn_overlay *ov)
{
    if (!ov || atomic_fetch_sub_explicit(&ov->refs, 1, memory_order_release) != 1)
        return;
    atomic_thread_fence(memory_order_acquire);
    free(ov->routes);
    free(ov->server_state);
    free(ov->server_down);
    tn_pins_unref(ov->pins);
#ifdef TN_WITH_GEO
    tn_geodb_unref(ov->geodb);
#endif
    for (size_t i = 0; i < ov->nsets; i++) {
        free(ov->sets[i].name);
        tn_strset_unref(ov->sets[i].set);
    }
    free(ov->sets);
    free(ov);
}

struct tn_pins *tn_pins_new(const char *const *keys, const uint32_t *backend_ids, size_t n)
{
    struct tn_pins *p = tn_xcalloc(1, sizeof(*p));
    size_t slots = 8, i, j;

    atomic_init(&p->refs, 1);
    if (!n)
        return p;
    while (slots < n * 2) /* load factor at most one half */
        slots <<= 1;
    p->slots = tn_xcalloc(slots, sizeof(*p->slots));
    p->mask = slots - 1;
    for (i = 0; i < n; i++) {
        size_t len = strlen(keys[i]);
        uint64_t h = XXH3_64bits(keys[i], len);

        for (j = h & p->mask;; j = (j + 1) & p->mask) {
            struct tn_pin *s = &p->slots[j];

            if (!s->key) {
                s->key = tn_xstrdup(keys[i]);
                s->hash = h;
                s->backend_id = backend_ids[i];
                p->n++;
                break;
            }
            if (s->hash == h && !strcmp(s->key, keys[i])) { /* a duplicate: the last wins */
                s->backend_id = backend_ids[i];
                break;
            }
        }
    }
    return p;
}

struct tn_pins *tn_pins_ref(struct tn_pins *p)
{
    if (p)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void tn_pins_unref(struct tn_pins *p)
{
    size_t i;

    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_release) != 1)
        return;
    atomic_thread_fence(memory_order_acquire);
    if (p->slots)
        for (i = 0; i <= p->mask; i++)
            free(p->slots[i].key);
    free(p->slots);
    free(p);
}

int64_t tn_pins_find(const struct tn_pins *p, const char *key, size_t len)
{
    uint64_t h;
    size_t j;

    if (!p || !p->n)
        return -1;
    h = XXH3_64bits(key, len);
    for (j = h & p->mask; p->slots[j].key; j = (j + 1) & p->mask) {
        const struct tn_pin *s = &p->slots[j];

        if (s->hash == h && !strncmp(s->key, key, len) && s->key[len] == '\0')
            return s->backend_id;
    }
    return -1;
}

const struct tn_strset *tn_overlay_set(const struct tn_overlay *ov, const char *name)
{
    size_t i;

    for (i = 0; ov && i < ov->nsets; i++)
        if (!strcmp(ov->sets[i].name, name))
            return ov->sets[i].set;
    return NULL;
}

const char *tn_source_name(enum tn_source s)
{
    return (unsigned)s < TN_ARRAY_LEN(source_names) ? source_names[s] : "?";
}

const char *tn_server_state_name(enum tn_server_state s)
{
    return (unsigned)s < TN_ARRAY_LEN(state_names) ? state_names[s] : "?";
}

int tn_server_state_parse(const char *s)
{
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(state_names); i++)
        if (!strcmp(s, state_names[i]))
            return (int)i;
    return -1;
}
