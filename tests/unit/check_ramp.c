/* Ramp schedules and the runtime overlay's lookups: step arithmetic (the
 * default one-point step, at most one step a second, the exact landing on
 * the target, downward ramps), the text form, and the pins table. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/overlay.h"
#include "turnout/ramp.h"

START_TEST(ramp_default_step_is_one_point)
{
    struct tn_ramp r;

    tn_ramp_init(&r, 1000, 5000, 600000, 0, 1000000, "a");
    ck_assert_uint_eq(r.step_x100, 100);
    ck_assert_uint_eq(tn_ramp_steps(&r), 40);
    ck_assert_uint_eq(tn_ramp_interval_ms(&r), 15000);
    ck_assert_uint_eq(tn_ramp_percent(&r, 1000000), 1000);
    ck_assert_uint_eq(tn_ramp_percent(&r, 1000000 + 14999), 1000);
    ck_assert_uint_eq(tn_ramp_percent(&r, 1000000 + 15000), 1100);
    ck_assert_uint_eq(tn_ramp_percent(&r, 1000000 + 300000), 3000);
    ck_assert_uint_eq(tn_ramp_percent(&r, 1000000 + 599999), 4900);
    ck_assert_uint_eq(tn_ramp_percent(&r, 1000000 + 600000), 5000);
    ck_assert_uint_eq(tn_ramp_next_ms(&r, 1000000), 1015000);
    ck_assert_uint_eq(tn_ramp_next_ms(&r, 1000000 + 599999), 1600000);
    ck_assert_uint_eq(tn_ramp_next_ms(&r, 1600000), 0);
}
END_TEST

START_TEST(ramp_at_most_one_step_a_second)
{
    struct tn_ramp r;

    /* 0 -> 100 in 10 s: 100 one-point steps would be 100 ms apart */
    tn_ramp_init(&r, 0, 10000, 10000, 0, 0, "a");
    ck_assert_uint_eq(tn_ramp_steps(&r), 10);
    ck_assert_uint_eq(r.step_x100, 1000);
    ck_assert_uint_eq(tn_ramp_interval_ms(&r), 1000);
    ck_assert_uint_eq(tn_ramp_percent(&r, 5500), 5000);
    ck_assert_uint_eq(tn_ramp_percent(&r, 10000), 10000);
}
END_TEST

START_TEST(ramp_down_and_uneven_last_step)
{
    struct tn_ramp r;

    /* 50 -> 0 in steps of 15: 35, 20, 5, then 0 exactly */
    tn_ramp_init(&r, 5000, 0, 40000, 1500, 0, "a");
    ck_assert_uint_eq(tn_ramp_steps(&r), 4);
    ck_assert_uint_eq(tn_ramp_percent(&r, 9999), 5000);
    ck_assert_uint_eq(tn_ramp_percent(&r, 10000), 3500);
    ck_assert_uint_eq(tn_ramp_percent(&r, 30000), 500);
    ck_assert_uint_eq(tn_ramp_percent(&r, 39999), 500);
    ck_assert_uint_eq(tn_ramp_percent(&r, 40000), 0);
}
END_TEST

START_TEST(ramp_text_round_trip_and_bad_text)
{
    struct tn_ramp r, back;
    char buf[256];

    tn_ramp_init(&r, 1250, 7500, 3600000, 250, 1764530000123ull, "node-a");
    tn_ramp_encode(&r, buf, sizeof(buf));
    ck_assert_str_eq(buf, "from=12.50 to=75.00 step=2.50 start=1764530000123 duration=3600000 "
                          "origin=node-a");
    ck_assert_int_eq(tn_ramp_decode(buf, &back), TN_OK);
    ck_assert_int_eq(memcmp(&r, &back, sizeof(r)), 0);
    ck_assert_int_eq(tn_ramp_decode("from=10 to=20", &back), TN_ERR);
    ck_assert_int_eq(tn_ramp_decode("from=10 to=200 step=1 start=1 duration=1", &back), TN_ERR);
    ck_assert_int_eq(tn_ramp_decode("from=10 to=20 step=0 start=1 duration=1", &back), TN_ERR);
    ck_assert_int_eq(tn_ramp_decode("from=10 to=20 step=1 start=x duration=1", &back), TN_ERR);
    ck_assert_int_eq(tn_ramp_decode("garbage", &back), TN_ERR);
}
END_TEST

START_TEST(pins_find_exact_keys_only)
{
    const char *keys[] = {"alice", "bob", "carol", "bob"};
    uint32_t ids[] = {1, 2, 3, 7};
    struct tn_pins *p = tn_pins_new(keys, ids, 4);
    struct tn_overlay *ov = tn_overlay_new(4, 2);

    ck_assert_uint_eq(p->n, 3);
    ck_assert_int_eq(tn_pins_find(p, "alice", 5), 1);
    ck_assert_int_eq(tn_pins_find(p, "bob", 3), 7); /* the last one wins */
    ck_assert_int_eq(tn_pins_find(p, "carolx", 5), 3);
    ck_assert_int_eq(tn_pins_find(p, "caro", 4), -1);
    ck_assert_int_eq(tn_pins_find(p, "dave", 4), -1);
    ck_assert_int_eq(tn_pins_find(ov->pins, "alice", 5), -1);
    ck_assert_int_eq(tn_overlay_percent(ov, 3), -1);
    ck_assert_int_eq(tn_overlay_percent(ov, 99), -1);
    ov->routes[3].percent_x100 = 2500;
    ck_assert_int_eq(tn_overlay_percent(ov, 3), 2500);
    ck_assert(tn_overlay_server_ok(ov, 1));
    ov->server_state[1] = TN_SERVER_DRAIN;
    ck_assert(!tn_overlay_server_ok(ov, 1));
    ck_assert(tn_overlay_server_ok(ov, 50)); /* unknown ids: no runtime state */
    ck_assert_int_eq(tn_server_state_parse("maint"), TN_SERVER_MAINT);
    ck_assert_int_eq(tn_server_state_parse("down"), -1);
    ck_assert_str_eq(tn_source_name(TN_SOURCE_AUTO_ROLLBACK), "auto-rollback");
    tn_pins_unref(p);
    tn_overlay_unref(ov);
}
END_TEST

START_TEST(pins_many)
{
    enum { N = 20000 };
    char **keys = calloc(N, sizeof(char *));
    uint32_t *ids = calloc(N, sizeof(uint32_t));
    struct tn_pins *p;
    char k[32];
    int i;

    for (i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "user-%d", i);
        keys[i] = strdup(k);
        ids[i] = (uint32_t)(i % 5);
    }
    p = tn_pins_new((const char *const *)keys, ids, N);
    for (i = 0; i < N; i++)
        ck_assert_int_eq(tn_pins_find(p, keys[i], strlen(keys[i])), i % 5);
    ck_assert_int_eq(tn_pins_find(p, "user-20000", 10), -1);
    for (i = 0; i < N; i++)
        free(keys[i]);
    free(keys);
    free(ids);
    tn_pins_unref(p);
}
END_TEST

static Suite *ramp_suite(void)
{
    Suite *s = suite_create("ramp");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, ramp_default_step_is_one_point);
    tcase_add_test(tc, ramp_at_most_one_step_a_second);
    tcase_add_test(tc, ramp_down_and_uneven_last_step);
    tcase_add_test(tc, ramp_text_round_trip_and_bad_text);
    tcase_add_test(tc, pins_find_exact_keys_only);
    tcase_add_test(tc, pins_many);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ramp_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
