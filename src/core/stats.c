/* Per-worker statistics shards: allocation of cells on first use (never
 * moved, never freed before the worker), counting with relaxed atomics
 * (no lock, no shared cache line between workers), and the sums and
 * quantiles the control thread reads. */
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/stats.h"

const double tn_stats_bounds[TN_STATS_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 1e300};

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define BUMP(x, n) atomic_store_explicit(&(x), LOAD(x) + (n), memory_order_relaxed)

struct tn_stats *tn_stats_new(void)
{
    return tn_xcalloc(1, sizeof(struct tn_stats));
}

void tn_stats_free(struct tn_stats *st)
{
    size_t r, b;

    if (!st)
        return;
    for (r = 0; r < TN_STATS_MAX_ROUTES; r++) {
        struct tn_stats_route *rt = atomic_load(&st->routes[r]);

        if (!rt)
            continue;
        for (b = 0; b < TN_STATS_MAX_BACKENDS; b++)
            free(atomic_load(&rt->cells[b]));
        free(rt);
    }
    free(st);
}

/* The cell, created on first use; NULL when ids are out of range or
 * memory is short (that request is then not counted). Worker thread. */
static struct tn_stats_cell *cell(struct tn_stats *st, uint32_t route_id, uint32_t backend_id)
{
    struct tn_stats_route *rt;
    struct tn_stats_cell *c;

    if (route_id >= TN_STATS_MAX_ROUTES || backend_id >= TN_STATS_MAX_BACKENDS)
        return NULL;
    rt = atomic_load_explicit(&st->routes[route_id], memory_order_relaxed);
    if (!rt) {
        if (!(rt = calloc(1, sizeof(*rt))))
            return NULL;
        atomic_store_explicit(&st->routes[route_id], rt, memory_order_release);
    }
    c = atomic_load_explicit(&rt->cells[backend_id], memory_order_relaxed);
    if (!c) {
        /* aligned to a cache line: a cell is written by one worker only */
        if (posix_memalign((void **)&c, 64, sizeof(*c)))
            return NULL;
        memset(c, 0, sizeof(*c));
        atomic_store_explicit(&rt->cells[backend_id], c, memory_order_release);
    }
    return c;
}

void tn_stats_request(struct tn_stats *st, uint32_t route_id, uint32_t backend_id, int status,
                      uint64_t bytes_in, uint64_t bytes_out, uint32_t attempts,
                      uint64_t latency_us)
{
    struct tn_stats_cell *c = cell(st, route_id, backend_id);
    double secs = (double)latency_us / 1e6;
    int cls = status >= 100 && status < 600 ? status / 100 : 0, b = 0;

    if (!c)
        return;
    while (b < TN_STATS_BUCKETS - 1 && secs > tn_stats_bounds[b])
        b++;
    BUMP(c->requests, 1);
    BUMP(c->status[cls], 1);
    BUMP(c->bytes_in, bytes_in);
    BUMP(c->bytes_out, bytes_out);
    BUMP(c->attempts, attempts);
    BUMP(c->latency_sum_us, latency_us);
    BUMP(c->latency[b], 1);
}

int tn_stats_sum(struct tn_stats *const *shards, size_t n, uint32_t route_id, uint32_t backend_id,
                 struct tn_stats_cell *out)
{
    size_t i, k;
    int any = 0;

    memset(out, 0, sizeof(*out));
    if (route_id >= TN_STATS_MAX_ROUTES || backend_id >= TN_STATS_MAX_BACKENDS)
        return 0;
    for (i = 0; i < n; i++) {
        struct tn_stats_route *rt =
            atomic_load_explicit(&shards[i]->routes[route_id], memory_order_acquire);
        struct tn_stats_cell *c =
            rt ? atomic_load_explicit(&rt->cells[backend_id], memory_order_acquire) : NULL;

        if (!c)
            continue;
        any = 1;
        BUMP(out->requests, LOAD(c->requests));
        for (k = 0; k < TN_STATS_CLASSES; k++)
            BUMP(out->status[k], LOAD(c->status[k]));
        BUMP(out->bytes_in, LOAD(c->bytes_in));
        BUMP(out->bytes_out, LOAD(c->bytes_out));
        BUMP(out->attempts, LOAD(c->attempts));
        BUMP(out->latency_sum_us, LOAD(c->latency_sum_us));
        for (k = 0; k < TN_STATS_BUCKETS; k++)
            BUMP(out->latency[k], LOAD(c->latency[k]));
    }
    return any;
}

double tn_stats_quantile(const struct tn_stats_cell *c, double q)
{
    uint64_t total = 0, seen = 0, k;
    double rank;

    for (k = 0; k < TN_STATS_BUCKETS; k++)
        total += LOAD(c->latency[k]);
    if (!total)
        return 0;
    rank = q * (double)total;
    for (k = 0; k < TN_STATS_BUCKETS; k++) {
        uint64_t n = LOAD(c->latency[k]);
        double lo = k ? tn_stats_bounds[k - 1] : 0, hi = tn_stats_bounds[k];

        if ((double)(seen + n) >= rank && n) {
            if (k == TN_STATS_BUCKETS - 1) /* +Inf: the last finite bound */
                return lo;
            return lo + (hi - lo) * ((rank - (double)seen) / (double)n);
        }
        seen += n;
    }
    return tn_stats_bounds[TN_STATS_BUCKETS - 2];
}
