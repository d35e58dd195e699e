/* Per-worker statistics: each worker counts into its own shard, lock-free
 * and with no cache line shared with another worker; readers on the
 * control thread sum the shards. Cells are keyed by stable identities
 * (route id x backend id), so counts survive reloads. A cell is allocated
 * the first time it is counted and never moves or goes away while the
 * worker lives, so a reader may follow its pointer at any time. */
#ifndef TURNOUT_STATS_H
#define TURNOUT_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TN_STATS_MAX_ROUTES 4096 /* route ids counted; larger ids are not */
#define TN_STATS_MAX_BACKENDS 64 /* backend ids counted per route */

/* Latency histogram bounds (seconds), Prometheus-style: le. */
#define TN_STATS_BUCKETS 14
extern const double tn_stats_bounds[TN_STATS_BUCKETS]; /* the last is +Inf */

/* Status classes: 1xx..5xx, and 0 for no response (turnout's own answer
 * before one, or a cut). */
#define TN_STATS_CLASSES 6

/* One route x backend of one worker. Written by the worker only (relaxed
 * atomics: plain loads and stores on x86-64), read by anyone. */
struct tn_stats_cell {
    _Atomic uint64_t requests;
    _Atomic uint64_t status[TN_STATS_CLASSES]; /* [0]: none, [1..5]: 1xx..5xx */
    _Atomic uint64_t bytes_in, bytes_out;
    _Atomic uint64_t attempts;
    _Atomic uint64_t latency_sum_us;
    _Atomic uint64_t latency[TN_STATS_BUCKETS]; /* not cumulative: [i] counts (b[i-1], b[i]] */
};

struct tn_stats_route {
    _Atomic(struct tn_stats_cell *) cells[TN_STATS_MAX_BACKENDS];
};

/* A worker's shard. */
struct tn_stats {
    _Atomic(struct tn_stats_route *) routes[TN_STATS_MAX_ROUTES];
};

struct tn_stats *tn_stats_new(void); /* aborts when memory is short (startup) */
void tn_stats_free(struct tn_stats *st);

/* Counts one finished request of route_id answered by backend_id (worker
 * thread). status: the final status sent, 0 when none. */
void tn_stats_request(struct tn_stats *st, uint32_t route_id, uint32_t backend_id, int status,
                      uint64_t bytes_in, uint64_t bytes_out, uint32_t attempts,
                      uint64_t latency_us);

/* The sum over n shards for route_id x backend_id (any thread). Returns 0
 * when no shard has counted it. */
int tn_stats_sum(struct tn_stats *const *shards, size_t n, uint32_t route_id, uint32_t backend_id,
                 struct tn_stats_cell *out);

/* The latency below which a fraction q (0..1) of the cell's requests
 * finished, interpolated within its bucket, in seconds. */
double tn_stats_quantile(const struct tn_stats_cell *c, double q);

#endif
