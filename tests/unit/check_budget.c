/* Replay budgets: replays may add `ratio` of the requests in the window
 * plus a floor per second; the window slides, so spent budget comes back
 * when old requests and replays leave it. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/budget.h"

static struct tn_budget fresh(uint32_t ratio_x100, uint32_t window_ms, uint32_t floor_x1000)
{
    struct tn_budget b;

    memset(&b, 0, sizeof(b));
    tn_budget_setup(&b, ratio_x100, window_ms, floor_x1000);
    return b;
}

/* Counts how many of `tries` replays pass at time t. */
static int take_n(struct tn_budget *b, uint64_t t, int tries)
{
    int i, ok = 0;

    for (i = 0; i < tries; i++)
        ok += tn_budget_take(b, t);
    return ok;
}

START_TEST(budget_ratio_of_requests)
{
    struct tn_budget b = fresh(2000, 10000, 0); /* 20 %, 10 s, no floor */
    int i;

    for (i = 0; i < 1000; i++)
        tn_budget_request(&b, 100000);
    ck_assert_int_eq(take_n(&b, 100000, 1000), 200);
}
END_TEST

START_TEST(budget_interleaved_is_exact)
{
    /* a dead "to": every request fails and asks for a replay at once */
    struct tn_budget b = fresh(2000, 10000, 0);
    int i, ok = 0;

    for (i = 0; i < 1000; i++) {
        tn_budget_request(&b, 5000 + (uint64_t)i);
        ok += tn_budget_take(&b, 5000 + (uint64_t)i);
    }
    ck_assert_int_eq(ok, 200);
}
END_TEST

START_TEST(budget_floor_lets_a_quiet_route_replay)
{
    struct tn_budget b = fresh(2000, 10000, 10000); /* 10 replays/s over 10 s */

    /* no request counted at all: the floor alone allows 100 */
    ck_assert_int_eq(take_n(&b, 50000, 500), 100);
}
END_TEST

START_TEST(budget_floor_adds_to_ratio)
{
    struct tn_budget b = fresh(2000, 10000, 10000);
    int i;

    for (i = 0; i < 1000; i++)
        tn_budget_request(&b, 50000);
    ck_assert_int_eq(take_n(&b, 50000, 1000), 300);
}
END_TEST

START_TEST(budget_window_slides)
{
    struct tn_budget b = fresh(2000, 10000, 0);
    int i;

    for (i = 0; i < 100; i++)
        tn_budget_request(&b, 0);
    ck_assert_int_eq(take_n(&b, 0, 50), 20);
    /* 9 s later the window still holds them: nothing new */
    ck_assert_int_eq(take_n(&b, 9000, 5), 0);
    /* past the window: requests and replays left it, nothing is allowed
     * without new requests, and new ones earn budget again */
    ck_assert_int_eq(take_n(&b, 20000, 5), 0);
    for (i = 0; i < 10; i++)
        tn_budget_request(&b, 20000);
    ck_assert_int_eq(take_n(&b, 20000, 5), 2);
}
END_TEST

START_TEST(budget_zero_ratio_zero_floor_refuses)
{
    struct tn_budget b = fresh(0, 1000, 0);
    int i;

    for (i = 0; i < 100; i++)
        tn_budget_request(&b, 1);
    ck_assert_int_eq(take_n(&b, 1, 10), 0);
}
END_TEST

START_TEST(budget_reconfigure_keeps_counts)
{
    struct tn_budget b = fresh(2000, 10000, 0);
    int i;

    for (i = 0; i < 100; i++)
        tn_budget_request(&b, 1000);
    ck_assert_int_eq(take_n(&b, 1000, 100), 20);
    tn_budget_setup(&b, 5000, 10000, 0); /* 50 %: same window, counts kept */
    ck_assert_int_eq(take_n(&b, 1000, 100), 30);
    tn_budget_setup(&b, 5000, 20000, 0); /* a new window starts empty */
    ck_assert_int_eq(take_n(&b, 1000, 100), 0);
}
END_TEST

START_TEST(budget_short_window)
{
    struct tn_budget b = fresh(10000, 50, 0); /* 100 %, 50 ms: one slice */
    int i;

    for (i = 0; i < 10; i++)
        tn_budget_request(&b, 1000);
    ck_assert_int_eq(take_n(&b, 1000, 20), 10);
    ck_assert_int_eq(take_n(&b, 1100, 20), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("budget");
    TCase *tc = tcase_create("budget");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, budget_ratio_of_requests);
    tcase_add_test(tc, budget_interleaved_is_exact);
    tcase_add_test(tc, budget_floor_lets_a_quiet_route_replay);
    tcase_add_test(tc, budget_floor_adds_to_ratio);
    tcase_add_test(tc, budget_window_slides);
    tcase_add_test(tc, budget_zero_ratio_zero_floor_refuses);
    tcase_add_test(tc, budget_reconfigure_keeps_counts);
    tcase_add_test(tc, budget_short_window);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
