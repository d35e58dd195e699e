/* Smooth weighted round-robin: shares follow the weights exactly over a
 * cycle, picks interleave, weight 0 is never chosen. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/balance.h"
#include "turnout/common.h"

static struct tn_conf_backend *backend(const unsigned *weights, size_t n)
{
    struct tn_conf_backend *b = calloc(1, sizeof(*b));
    size_t i;

    b->servers = calloc(n, sizeof(*b->servers));
    b->nservers = n;
    for (i = 0; i < n; i++)
        b->servers[i].weight = weights[i];
    return b;
}

static void backend_free(struct tn_conf_backend *b)
{
    free(b->servers);
    free(b);
}

START_TEST(balance_follows_weights_over_a_cycle)
{
    static const unsigned w[] = { 5, 1, 1 };
    struct tn_conf_backend *b = backend(w, 3);
    struct tn_balance bl;
    int counts[3] = { 0 }, i;

    ck_assert_int_eq(tn_balance_init(&bl, b), TN_OK);
    for (i = 0; i < 7 * 100; i++)
        counts[tn_balance_pick(&bl, b, NULL)]++;
    ck_assert_int_eq(counts[0], 500);
    ck_assert_int_eq(counts[1], 100);
    ck_assert_int_eq(counts[2], 100);
    tn_balance_deinit(&bl);
    backend_free(b);
}
END_TEST

START_TEST(balance_interleaves_picks)
{
    static const unsigned w[] = { 5, 1, 1 };
    static const int expect[] = { 0, 0, 1, 0, 2, 0, 0 }; /* smooth, not 0,0,0,0,0,1,2 */
    struct tn_conf_backend *b = backend(w, 3);
    struct tn_balance bl;
    size_t i;

    ck_assert_int_eq(tn_balance_init(&bl, b), TN_OK);
    for (i = 0; i < TN_ARRAY_LEN(expect); i++)
        ck_assert_int_eq(tn_balance_pick(&bl, b, NULL), expect[i]);
    tn_balance_deinit(&bl);
    backend_free(b);
}
END_TEST

START_TEST(balance_skips_weight_zero)
{
    static const unsigned w[] = { 0, 3, 0 };
    static const unsigned none[] = { 0, 0 };
    struct tn_conf_backend *b = backend(w, 3), *z = backend(none, 2);
    struct tn_balance bl, bz;
    int i;

    ck_assert_int_eq(tn_balance_init(&bl, b), TN_OK);
    for (i = 0; i < 50; i++)
        ck_assert_int_eq(tn_balance_pick(&bl, b, NULL), 1);
    ck_assert_int_eq(tn_balance_init(&bz, z), TN_OK);
    ck_assert_int_eq(tn_balance_pick(&bz, z, NULL), -1);
    tn_balance_deinit(&bl);
    tn_balance_deinit(&bz);
    backend_free(b);
    backend_free(z);
}
END_TEST

START_TEST(balance_single_server)
{
    static const unsigned w[] = { 1 };
    struct tn_conf_backend *b = backend(w, 1);
    struct tn_balance bl;

    ck_assert_int_eq(tn_balance_init(&bl, b), TN_OK);
    ck_assert_int_eq(tn_balance_pick(&bl, b, NULL), 0);
    ck_assert_int_eq(tn_balance_pick(&bl, b, NULL), 0);
    tn_balance_deinit(&bl);
    backend_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("balance");
    TCase *tc = tcase_create("wrr");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, balance_follows_weights_over_a_cycle);
    tcase_add_test(tc, balance_interleaves_picks);
    tcase_add_test(tc, balance_skips_weight_zero);
    tcase_add_test(tc, balance_single_server);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
