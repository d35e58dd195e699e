/* The automatic rollback judge's statistics (DESIGN.md "Per-request
 * rollback"): one window of the new platform ("to") against legacy
 * ("from") on the same route, from the platforms' own per-second figures
 * before replay. Pure functions; any thread. */
#ifndef TURNOUT_VERDICT_H
#define TURNOUT_VERDICT_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/conf-t.h"
#include "turnout/stats.h"

/* One side over one window. */
struct tn_window_side {
    uint64_t requests, errors;
    uint64_t latency[TN_STATS_SEC_BUCKETS]; /* bounds: tn_stats_sec_bounds */
};

#define TN_VERDICTS(X)                                                                             \
    X(INCONCLUSIVE, "inconclusive") /* too few requests on "to": never a verdict */                \
    X(GOOD, "good")                                                                                \
    X(BAD, "bad")

enum tn_verdict {
#define TN_X_ENUM(v, n) TN_VERDICT_##v,
    TN_VERDICTS(TN_X_ENUM)
#undef TN_X_ENUM
    TN_VERDICT_COUNT
};

const char *tn_verdict_name(enum tn_verdict v);

/* A window's figures, test statistics and verdict. */
struct tn_judgement {
    enum tn_verdict verdict;
    int bad_errors, bad_latency; /* which test failed (with TN_VERDICT_BAD) */
    int from_judged;             /* "from" had min_requests: the relative tests ran */
    double to_rate, from_rate;   /* error rates, 0..1 */
    double to_p99_ms, from_p99_ms; /* -1 without requests */
    double z, z_p;               /* two-proportion z-test: statistic, one-sided p-value */
    double u, u_z, u_p;          /* Mann-Whitney U of "to" over "from", its z, one-sided p */
    char why[160];               /* one line: what decided */
};

/* One-sided two-proportion z-test of H1: e1/n1 > e2/n2 (pooled standard
 * error). Returns z and sets *p to the one-sided p-value (1 - Phi(z)).
 * z is 0 and *p 1 when either sample is empty or the pooled rate is 0 or
 * 1 with equal rates. */
double tn_ztest_greater(uint64_t e1, uint64_t n1, uint64_t e2, uint64_t n2, double *p);

/* One-sided Mann-Whitney U over two histograms with the same buckets, H1:
 * a's values are stochastically greater than b's. Ties (same bucket) count
 * one half; normal approximation with tie correction and continuity
 * correction (as scipy.stats.mannwhitneyu(alternative="greater",
 * method="asymptotic")). Returns U of a and sets *z and *p; with an empty
 * side or no variance *z is 0 and *p 1. */
double tn_mannwhitney_greater(const uint64_t *a, const uint64_t *b, size_t nbuckets, double *z,
                              double *p);

/* The p99 of a window side in milliseconds (interpolated in its bucket),
 * -1 when it has no requests. */
double tn_window_p99_ms(const struct tn_window_side *s);

/* Judges one window: inconclusive under min_requests on "to"; bad on
 * errors (rate above error_rate, above "from"'s by more than margin points,
 * z-test at 99 %) or on latency (p99 above p99, above 1 + margin times
 * "from"'s, Mann-Whitney at 98 %); "from" under min_requests: the absolute
 * bounds alone. */
void tn_judge_window(const struct tn_conf_auto_rollback *cfg, const struct tn_window_side *from,
                     const struct tn_window_side *to, struct tn_judgement *out);

#endif
