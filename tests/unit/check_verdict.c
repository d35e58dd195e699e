/* The automatic rollback judge's statistics: the one-sided two-proportion
 * z-test and the one-sided Mann-Whitney U over latency histograms, against
 * values computed independently with scipy 1.10 (scipy.stats.norm.sf for
 * the z-test's tail; scipy.stats.mannwhitneyu(x, y, alternative="greater",
 * method="asymptotic", use_continuity=True) on the histograms expanded into
 * samples, one value per bucket), and the verdicts of whole windows. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/verdict.h"

static void near(double got, double want, double rel)
{
    ck_assert_msg(fabs(got - want) <= rel * fabs(want) + 1e-12, "got %.12g, want %.12g", got, want);
}

START_TEST(ztest_against_scipy)
{
    static const struct {
        uint64_t e1, n1, e2, n2;
        double z, p;
    } cases[] = {
        {40, 200, 10, 800, 10.8821437517, 7.0112872451e-28},
        {20, 1000, 20, 1000, 0.0, 0.5},
        {300, 1000, 290, 1000, 0.4903198051, 3.1195380730e-01},
        {5, 100, 1, 100, 1.6580533446, 4.8653349853e-02},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double p, z = tn_ztest_greater(cases[i].e1, cases[i].n1, cases[i].e2, cases[i].n2, &p);

        near(z, cases[i].z, 1e-8);
        near(p, cases[i].p, 1e-6);
    }
}
END_TEST

START_TEST(ztest_degenerate)
{
    double p, z;

    z = tn_ztest_greater(0, 100, 0, 100, &p); /* both 0 %: no difference */
    ck_assert(z == 0 && p == 1);
    z = tn_ztest_greater(5, 0, 0, 100, &p); /* an empty side */
    ck_assert(z == 0 && p == 1);
    z = tn_ztest_greater(1, 100, 50, 100, &p); /* "to" better: not significant */
    ck_assert(z < 0 && p > 0.99);
}
END_TEST

START_TEST(mannwhitney_against_scipy)
{
    static const struct {
        uint64_t a[6], b[6];
        double u, p;
    } cases[] = {
        {{0, 10, 30, 40, 15, 5}, {0, 30, 40, 20, 8, 2}, 6755.0, 3.9475200282e-06},
        {{5, 5, 5, 5, 0, 0}, {5, 5, 5, 5, 0, 0}, 200.0, 5.0557074472e-01},
        {{0, 0, 0, 10, 50, 40}, {20, 50, 25, 5, 0, 0}, 9975.0, 9.9124564408e-36},
        {{3, 0, 0, 0, 0, 0}, {0, 0, 3, 0, 0, 0}, 0.0, 9.9351368850e-01},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double z, p, u = tn_mannwhitney_greater(cases[i].a, cases[i].b, 6, &z, &p);

        near(u, cases[i].u, 1e-12);
        near(p, cases[i].p, 1e-6);
    }
}
END_TEST

START_TEST(mannwhitney_degenerate)
{
    uint64_t a[3] = {0, 4, 0}, b[3] = {0, 6, 0}, none[3] = {0, 0, 0};
    double z, p;

    tn_mannwhitney_greater(a, b, 3, &z, &p); /* all in one bucket: no variance */
    ck_assert(z == 0 && p == 1);
    tn_mannwhitney_greater(a, none, 3, &z, &p);
    ck_assert(z == 0 && p == 1);
}
END_TEST

/* A side of n requests, e of them errors, latencies all in the bucket of
 * `ms` milliseconds. */
static struct tn_window_side side(uint64_t n, uint64_t e, double ms)
{
    struct tn_window_side s;
    size_t k = 0;

    memset(&s, 0, sizeof(s));
    s.requests = n;
    s.errors = e;
    while (k < TN_STATS_SEC_BUCKETS - 1 && ms / 1000 > tn_stats_sec_bounds[k])
        k++;
    s.latency[k] = n;
    return s;
}

static struct tn_conf_auto_rollback cfg(void)
{
    return (struct tn_conf_auto_rollback){.enabled = 1, .error_rate_x100 = 500,
                                          .p99_ms = 100, .margin_x100 = 200,
                                          .window_ms = 10000, .windows = 2,
                                          .min_requests = 100};
}

START_TEST(judge_inconclusive_below_min_requests)
{
    struct tn_conf_auto_rollback c = cfg();
    struct tn_window_side from = side(1000, 0, 5), to = side(99, 99, 5000);
    struct tn_judgement j;

    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_INCONCLUSIVE);
    ck_assert_str_eq(tn_verdict_name(j.verdict), "inconclusive");
}
END_TEST

START_TEST(judge_bad_on_errors)
{
    struct tn_conf_auto_rollback c = cfg();
    struct tn_window_side from = side(800, 2, 5), to = side(200, 40, 5);
    struct tn_judgement j;

    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_BAD);
    ck_assert(j.bad_errors && !j.bad_latency && j.from_judged);
    ck_assert(j.z_p < 0.01);
    near(j.to_rate, 0.2, 1e-12);
}
END_TEST

START_TEST(judge_legacy_as_bad_is_not_blamed)
{
    struct tn_conf_auto_rollback c = cfg();
    struct tn_window_side from = side(1000, 300, 5), to = side(1000, 310, 5);
    struct tn_judgement j;

    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_GOOD); /* above the bound, not above legacy */
    from = side(1000, 20, 5);
    to = side(1000, 20, 5);
    tn_judge_window(&c, &from, &to, &j); /* 2 % each: under the bound */
    ck_assert_int_eq(j.verdict, TN_VERDICT_GOOD);
}
END_TEST

START_TEST(judge_margin_and_significance)
{
    struct tn_conf_auto_rollback c = cfg();
    struct tn_window_side from = side(1000, 50, 5), to = side(1000, 65, 5);
    struct tn_judgement j;

    /* 6.5 % vs 5 %: above the bound, but within the 2-point margin */
    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_GOOD);
    /* 7 % of 100 vs 1 % of 100: above bound and margin, but p = 0.0152
     * (scipy), not significant at 99 %; 8 % vs 1 %: p = 0.0085, bad */
    from = side(100, 1, 5);
    to = side(100, 7, 5);
    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_GOOD);
    near(j.z_p, 0.015191410988288745, 1e-6);
    to = side(100, 8, 5);
    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_BAD);
    near(j.z_p, 0.008477678432078436, 1e-6);
}
END_TEST

START_TEST(judge_bad_on_latency)
{
    struct tn_conf_auto_rollback c = cfg();
    struct tn_window_side from = side(1000, 0, 10), to = side(1000, 0, 150);
    struct tn_judgement j;

    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_BAD);
    ck_assert(j.bad_latency && !j.bad_errors);
    ck_assert(j.to_p99_ms > 100 && j.from_p99_ms < 20);
    /* legacy as slow: not blamed */
    from = side(1000, 0, 150);
    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_GOOD);
}
END_TEST

START_TEST(judge_from_too_small_uses_bounds_alone)
{
    struct tn_conf_auto_rollback c = cfg();
    struct tn_window_side from = side(10, 5, 5), to = side(1000, 80, 5);
    struct tn_judgement j;

    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_BAD); /* legacy worse, but too few to compare */
    ck_assert(!j.from_judged);
    to = side(1000, 40, 5);
    tn_judge_window(&c, &from, &to, &j);
    ck_assert_int_eq(j.verdict, TN_VERDICT_GOOD);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("verdict");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, ztest_against_scipy);
    tcase_add_test(tc, ztest_degenerate);
    tcase_add_test(tc, mannwhitney_against_scipy);
    tcase_add_test(tc, mannwhitney_degenerate);
    tcase_add_test(tc, judge_inconclusive_below_min_requests);
    tcase_add_test(tc, judge_bad_on_errors);
    tcase_add_test(tc, judge_legacy_as_bad_is_not_blamed);
    tcase_add_test(tc, judge_margin_and_significance);
    tcase_add_test(tc, judge_bad_on_latency);
    tcase_add_test(tc, judge_from_too_small_uses_bounds_alone);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
