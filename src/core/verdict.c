/* The automatic rollback judge's statistics: the two-proportion z-test on
 * error rates, the Mann-Whitney U test on latency histograms, and the
 * verdict of one window. Pure functions. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "turnout/verdict.h"

#define Z_ALPHA 0.01 /* errors: 99 % */
#define U_ALPHA 0.02 /* latency: 98 % */

static const char *const verdict_names[] = {
#define TN_X_NAME(v, n) n,
    TN_VERDICTS(TN_X_NAME)
#undef TN_X_NAME
};

const char *tn_verdict_name(enum tn_verdict v)
{
    return v < TN_VERDICT_COUNT ? verdict_names[v] : "?";
}

/* 1 - Phi(z): the upper tail of the standard normal. */
static double upper_tail(double z)
{
    return 0.5 * erfc(z / sqrt(2.0));
}

double tn_ztest_greater(uint64_t e1, uint64_t n1, uint64_t e2, uint64_t n2, double *p)
{
    double p1, p2, pool, se, z;

    *p = 1;
    if (!n1 || !n2)
        return 0;
    p1 = (double)e1 / (double)n1;
    p2 = (double)e2 / (double)n2;
    pool = (double)(e1 + e2) / (double)(n1 + n2);
    se = sqrt(pool * (1 - pool) * (1.0 / (double)n1 + 1.0 / (double)n2));
    if (se == 0) /* both 0 % or both 100 %: no difference */
        return 0;
    z = (p1 - p2) / se;
    *p = upper_tail(z);
    return z;
}

double tn_mannwhitney_greater(const uint64_t *a, const uint64_t *b, size_t nb, double *z,
                              double *p)
{
    double n1 = 0, n2 = 0, u = 0, below = 0, ties = 0, n, var;
    size_t k;

    for (k = 0; k < nb; k++) {
        n1 += (double)a[k];
        n2 += (double)b[k];
    }
    for (k = 0; k < nb; k++) {
        double t = (double)a[k] + (double)b[k];

        /* a's values in bucket k beat every b below it, tie with b's in it */
        u += (double)a[k] * (below + 0.5 * (double)b[k]);
        below += (double)b[k];
        ties += t * t * t - t;
    }
    *z = 0;
    *p = 1;
    if (!n1 || !n2)
        return u;
    n = n1 + n2;
    var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)));
    if (var <= 0)
        return u;
    *z = (u - n1 * n2 / 2.0 - 0.5) / sqrt(var);
    *p = upper_tail(*z);
    return u;
}

double tn_window_p99_ms(const struct tn_window_side *s)
{
    uint64_t total = 0, seen = 0;
    double rank;
    size_t k;

    for (k = 0; k < TN_STATS_SEC_BUCKETS; k++)
        total += s->latency[k];
    if (!total)
        return -1;
    rank = 0.99 * (double)total;
    for (k = 0; k < TN_STATS_SEC_BUCKETS; k++) {
        uint64_t n = s->latency[k];
        double lo = k ? tn_stats_sec_bounds[k - 1] : 0, hi = tn_stats_sec_bounds[k];

        if (n && (double)(seen + n) >= rank) {
            if (k == TN_STATS_SEC_BUCKETS - 1)
                return lo * 1000;
            return (lo + (hi - lo) * ((rank - (double)seen) / (double)n)) * 1000;
        }
        seen += n;
    }
    return tn_stats_sec_bounds[TN_STATS_SEC_BUCKETS - 2] * 1000;
}

void tn_judge_window(const struct tn_conf_auto_rollback *cfg, const struct tn_window_side *from,
                     const struct tn_window_side *to, struct tn_judgement *out)
{
    double max_rate = cfg->error_rate_x100 / 10000.0, margin = cfg->margin_x100 / 10000.0;
    double max_p99 = (double)cfg->p99_ms;

    memset(out, 0, sizeof(*out));
    out->to_rate = to->requests ? (double)to->errors / (double)to->requests : 0;
    out->from_rate = from->requests ? (double)from->errors / (double)from->requests : 0;
    out->to_p99_ms = tn_window_p99_ms(to);
    out->from_p99_ms = tn_window_p99_ms(from);
    out->z = tn_ztest_greater(to->errors, to->requests, from->errors, from->requests, &out->z_p);
    out->u = tn_mannwhitney_greater(to->latency, from->latency, TN_STATS_SEC_BUCKETS, &out->u_z,
                                    &out->u_p);
    out->from_judged = from->requests >= cfg->min_requests;
    if (to->requests < cfg->min_requests) {
        out->verdict = TN_VERDICT_INCONCLUSIVE;
        snprintf(out->why, sizeof(out->why), "%llu requests on to, fewer than %u",
                 (unsigned long long)to->requests, cfg->min_requests);
        return;
    }
    out->bad_errors = out->to_rate > max_rate;
    out->bad_latency = out->to_p99_ms > max_p99;
    if (out->from_judged) {
        out->bad_errors = out->bad_errors && out->to_rate - out->from_rate > margin &&
                          out->z_p < Z_ALPHA;
        out->bad_latency = out->bad_latency &&
                           out->to_p99_ms > out->from_p99_ms * (1 + margin) &&
                           out->u_p < U_ALPHA;
    }
    out->verdict = out->bad_errors || out->bad_latency ? TN_VERDICT_BAD : TN_VERDICT_GOOD;
    if (out->bad_errors)
        snprintf(out->why, sizeof(out->why),
                 "errors %.2f%% on to vs %.2f%% on from (bound %.2f%%, margin %.2f, z %.2f, "
                 "p %.2g)%s",
                 out->to_rate * 100, out->from_rate * 100, max_rate * 100, margin * 100, out->z,
                 out->z_p, out->from_judged ? "" : "; from has too few requests: bound only");
    else if (out->bad_latency)
        snprintf(out->why, sizeof(out->why),
                 "p99 %.1f ms on to vs %.1f ms on from (bound %.0f ms, U z %.2f, p %.2g)%s",
                 out->to_p99_ms, out->from_p99_ms, max_p99, out->u_z, out->u_p,
                 out->from_judged ? "" : "; from has too few requests: bound only");
    else
        snprintf(out->why, sizeof(out->why), "errors %.2f%% vs %.2f%%, p99 %.1f vs %.1f ms",
                 out->to_rate * 100, out->from_rate * 100, out->to_p99_ms, out->from_p99_ms);
}
