/* Per-worker statistics shards: allocation of cells on first use (never
 * moved, never freed before the worker), counting with relaxed atomics
 * (no lock, no shared cache line between workers), the per-second rings of
 * shifting routes, and the sums and quantiles the control thread reads. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnout/common.h"
#include "turnout/stats.h"

const double tn_stats_bounds[TN_STATS_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 1e300};

/* finer, for p99 and the rank test over short windows */
const double tn_stats_sec_bounds[TN_STATS_SEC_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1,    0.15,  0.2,   0.3,   0.5,   0.75,   1,    2,     5,    10,   30,   1e300};

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define BUMP(x, n) atomic_store_explicit(&(x), LOAD(x) + (n), memory_order_relaxed)

struct tn_stats *tn_stats_new(void)
{
    struct tn_stats *st;

    /* aligned: the listener cells live in the shard itself */
    if (posix_memalign((void **)&st, 64, sizeof(*st)))
        abort();
    memset(st, 0, sizeof(*st));
    return st;
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
        free(atomic_load(&rt->series));
        free(rt);
    }
    for (r = 0; r < TN_STATS_MAX_SERVERS; r++)
        free(atomic_load(&st->servers[r]));
    free(st);
}

int64_t tn_stats_now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec;
}

#ifndef TN_STATS_OFF
/* Memory aligned to a cache line and zeroed, or NULL. */
static void *cell_alloc(size_t size)
{
    void *p;

    if (posix_memalign(&p, 64, size))
        return NULL;
    memset(p, 0, size);
    return p;
}

static struct tn_stats_route *route(struct tn_stats *st, uint32_t route_id)
{
    struct tn_stats_route *rt;

    if (route_id >= TN_STATS_MAX_ROUTES)
        return NULL;
    rt = atomic_load_explicit(&st->routes[route_id], memory_order_relaxed);
    if (!rt && (rt = calloc(1, sizeof(*rt))))
        atomic_store_explicit(&st->routes[route_id], rt, memory_order_release);
    return rt;
}

/* The cell, created on first use; NULL when ids are out of range or
 * memory is short (that request is then not counted). Worker thread. */
static struct tn_stats_cell *cell(struct tn_stats *st, uint32_t route_id, uint32_t backend_id)
{
    struct tn_stats_route *rt = route(st, route_id);
    struct tn_stats_cell *c;

    if (!rt || backend_id >= TN_STATS_MAX_BACKENDS)
        return NULL;
    c = atomic_load_explicit(&rt->cells[backend_id], memory_order_relaxed);
    if (!c && (c = cell_alloc(sizeof(*c))))
        atomic_store_explicit(&rt->cells[backend_id], c, memory_order_release);
    return c;
}

/* The bounds in microseconds (the last, +Inf, is never compared). */
static const uint64_t bounds_us[TN_STATS_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000};
static const uint64_t sec_bounds_us[TN_STATS_SEC_BUCKETS - 1] = {
    500,    1000,   2000,   3000,   5000,    7500,    10000,   15000,
    20000,  30000,  50000,  75000,  100000,  150000,  200000,  300000,
    500000, 750000, 1000000, 2000000, 5000000, 10000000, 30000000};

/* The slot of second sec on a side of route_id, reset when it held an
 * older second; NULL when it cannot be had. Worker thread. */
static struct tn_stats_second *second(struct tn_stats *st, uint32_t route_id, int side,
                                      int64_t sec)
{
    struct tn_stats_route *rt = route(st, route_id);
    struct tn_stats_series *ser;
    struct tn_stats_second *s;
    size_t k;

    if (!rt || side < 0 || side > 1 || sec < 0)
        return NULL;
    ser = atomic_load_explicit(&rt->series, memory_order_relaxed);
    if (!ser) {
        if (!(ser = cell_alloc(sizeof(*ser))))
            return NULL;
        for (k = 0; k < TN_STATS_SECONDS; k++) {
            atomic_init(&ser->side[0][k].sec, -1);
            atomic_init(&ser->side[1][k].sec, -1);
        }
        atomic_store_explicit(&rt->series, ser, memory_order_release);
    }
    s = &ser->side[side][sec % TN_STATS_SECONDS];
    if (LOAD(s->sec) != sec) {
        /* a reader that sees -1, or another second after copying, drops
         * what it copied */
        atomic_store_explicit(&s->sec, -1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
        atomic_store_explicit(&s->routed, 0, memory_order_relaxed);
        atomic_store_explicit(&s->attempts, 0, memory_order_relaxed);
        atomic_store_explicit(&s->errors, 0, memory_order_relaxed);
        for (k = 0; k < TN_STATS_SEC_BUCKETS; k++)
            atomic_store_explicit(&s->latency[k], 0, memory_order_relaxed);
        atomic_store_explicit(&s->sec, sec, memory_order_release);
    }
    return s;
}

void tn_stats_request(struct tn_stats *st, uint32_t route_id, uint32_t backend_id, int status,
                      uint64_t bytes_in, uint64_t bytes_out, uint32_t attempts,
                      uint64_t latency_us)
{
    struct tn_stats_cell *c = cell(st, route_id, backend_id);
    int cls = status >= 100 && status < 600 ? status / 100 : 0, b = 0;

    if (!c)
        return;
    while (b < TN_STATS_BUCKETS - 1 && latency_us > bounds_us[b])
        b++;
    BUMP(c->requests, 1);
    BUMP(c->status[cls], 1);
    BUMP(c->bytes_in, bytes_in);
    BUMP(c->bytes_out, bytes_out);
    BUMP(c->attempts, attempts);
    BUMP(c->latency_sum_us, latency_us);
    BUMP(c->latency[b], 1);
}

void tn_stats_attempt(struct tn_stats *st, uint32_t route_id, uint32_t backend_id, int side,
                      int result, uint64_t latency_us, int64_t sec)
{
    struct tn_stats_cell *c = cell(st, route_id, backend_id);
    struct tn_stats_second *s;
    int b = 0;

    if (c && result >= 0 && result < TN_STATS_RESULTS)
        BUMP(c->results[result], 1);
    if (side < 0 || !(s = second(st, route_id, side, sec)))
        return;
    while (b < TN_STATS_SEC_BUCKETS - 1 && latency_us > sec_bounds_us[b])
        b++;
    BUMP(s->attempts, 1);
    if (result)
        BUMP(s->errors, 1);
    BUMP(s->latency[b], 1);
}

void tn_stats_routed(struct tn_stats *st, uint32_t route_id, int side, int64_t sec)
{
    struct tn_stats_second *s = second(st, route_id, side, sec);

    if (s)
        BUMP(s->routed, 1);
}

void tn_stats_replay(struct tn_stats *st, uint32_t route_id, uint32_t backend_id, int reason)
{
    struct tn_stats_cell *c = cell(st, route_id, backend_id);

    if (c && reason >= 0 && reason < TN_STATS_REPLAY_REASONS)
        BUMP(c->replays[reason], 1);
}

void tn_stats_refused(struct tn_stats *st, uint32_t route_id, uint32_t backend_id, int reason)
{
    struct tn_stats_cell *c = cell(st, route_id, backend_id);

    if (c && reason >= 0 && reason < TN_STATS_REFUSED_REASONS)
        BUMP(c->refused[reason], 1);
}

struct tn_stats_server *tn_stats_server(struct tn_stats *st, uint32_t server_id)
{
    struct tn_stats_server *c;

    if (server_id >= TN_STATS_MAX_SERVERS)
        return NULL;
    c = atomic_load_explicit(&st->servers[server_id], memory_order_relaxed);
    if (!c && (c = cell_alloc(sizeof(*c))))
        atomic_store_explicit(&st->servers[server_id], c, memory_order_release);
    return c;
}

#endif /* TN_STATS_OFF */

/* ---- reading ---- */

#define ADD(a, b) BUMP(a, LOAD(b))

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
        ADD(out->requests, c->requests);
        for (k = 0; k < TN_STATS_CLASSES; k++)
            ADD(out->status[k], c->status[k]);
        ADD(out->bytes_in, c->bytes_in);
        ADD(out->bytes_out, c->bytes_out);
        ADD(out->attempts, c->attempts);
        ADD(out->latency_sum_us, c->latency_sum_us);
        for (k = 0; k < TN_STATS_BUCKETS; k++)
            ADD(out->latency[k], c->latency[k]);
        for (k = 0; k < TN_STATS_RESULTS; k++)
            ADD(out->results[k], c->results[k]);
        for (k = 0; k < TN_STATS_REPLAY_REASONS; k++)
            ADD(out->replays[k], c->replays[k]);
        for (k = 0; k < TN_STATS_REFUSED_REASONS; k++)
            ADD(out->refused[k], c->refused[k]);
    }
    return any;
}

int tn_stats_server_sum(struct tn_stats *const *shards, size_t n, uint32_t server_id,
                        struct tn_stats_server *out)
{
    size_t i;
    int any = 0;

    memset(out, 0, sizeof(*out));
    if (server_id >= TN_STATS_MAX_SERVERS)
        return 0;
    for (i = 0; i < n; i++) {
        struct tn_stats_server *c =
            atomic_load_explicit(&shards[i]->servers[server_id], memory_order_acquire);

        if (!c)
            continue;
        any = 1;
        ADD(out->active, c->active);
        ADD(out->idle, c->idle);
        ADD(out->connects, c->connects);
        ADD(out->connect_errors, c->connect_errors);
    }
    return any;
}

void tn_stats_listener_sum(struct tn_stats *const *shards, size_t n, size_t l,
                           struct tn_stats_listener *out)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    if (l >= TN_STATS_MAX_LISTENERS)
        return;
    for (i = 0; i < n; i++) {
        ADD(out->open, shards[i]->listeners[l].open);
        ADD(out->accepted, shards[i]->listeners[l].accepted);
        ADD(out->rejected, shards[i]->listeners[l].rejected);
    }
}

void tn_stats_second_add(struct tn_stats_second *a, const struct tn_stats_second *b)
{
    size_t k;

    ADD(a->routed, b->routed);
    ADD(a->attempts, b->attempts);
    ADD(a->errors, b->errors);
    for (k = 0; k < TN_STATS_SEC_BUCKETS; k++)
        ADD(a->latency[k], b->latency[k]);
}

/* Adds slot s to out when it holds second sec from start to end of the copy. */
static void add_slot(struct tn_stats_second *out, const struct tn_stats_second *s, int64_t sec)
{
    struct tn_stats_second copy;

    if (atomic_load_explicit(&s->sec, memory_order_acquire) != sec)
        return;
    memset(&copy, 0, sizeof(copy));
    tn_stats_second_add(&copy, s);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->sec, memory_order_relaxed) != sec)
        return;
    tn_stats_second_add(out, &copy);
}

void tn_stats_seconds(struct tn_stats *const *shards, size_t n, uint32_t route_id, int side,
                      int64_t first, size_t count, struct tn_stats_second *out)
{
    size_t i, k;

    memset(out, 0, count * sizeof(*out));
    for (k = 0; k < count; k++)
        atomic_init(&out[k].sec, first + (int64_t)k);
    if (route_id >= TN_STATS_MAX_ROUTES || side < 0 || side > 1)
        return;
    for (i = 0; i < n; i++) {
        struct tn_stats_route *rt =
            atomic_load_explicit(&shards[i]->routes[route_id], memory_order_acquire);
        struct tn_stats_series *ser =
            rt ? atomic_load_explicit(&rt->series, memory_order_acquire) : NULL;

        if (!ser)
            continue;
        for (k = 0; k < count; k++) {
            int64_t sec = first + (int64_t)k;

            if (sec >= 0)
                add_slot(&out[k], &ser->side[side][sec % TN_STATS_SECONDS], sec);
        }
    }
}

/* The q quantile of a histogram of n buckets with the given bounds,
 * interpolated within its bucket; -1 when it is empty. */
static double quantile(const _Atomic uint64_t *h64, const _Atomic uint32_t *h32, size_t nb,
                       const double *bounds, double q)
{
    uint64_t total = 0, seen = 0;
    double rank;
    size_t k;

#define AT(k) (h64 ? LOAD(h64[k]) : (uint64_t)LOAD(h32[k]))
    for (k = 0; k < nb; k++)
        total += AT(k);
    if (!total)
        return -1;
    rank = q * (double)total;
    for (k = 0; k < nb; k++) {
        uint64_t n = AT(k);
        double lo = k ? bounds[k - 1] : 0, hi = bounds[k];

        if ((double)(seen + n) >= rank && n) {
            if (k == nb - 1) /* +Inf: the last finite bound */
                return lo;
            return lo + (hi - lo) * ((rank - (double)seen) / (double)n);
        }
        seen += n;
    }
#undef AT
    return bounds[nb - 2];
}

double tn_stats_quantile(const struct tn_stats_cell *c, double q)
{
    double v = quantile(c->latency, NULL, TN_STATS_BUCKETS, tn_stats_bounds, q);

    return v < 0 ? 0 : v;
}

double tn_stats_sec_quantile(const struct tn_stats_second *s, double q)
{
    return quantile(NULL, s->latency, TN_STATS_SEC_BUCKETS, tn_stats_sec_bounds, q);
}
