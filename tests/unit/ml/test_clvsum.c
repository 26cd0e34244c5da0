/* Unit tests for src/ml/clvsum.c: x, t_x, T and zbar in days from hand-made rows (several rows a
 * day are one purchase; returns are not purchases; the first day's spend is not repeat spend). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "ml/clvsum.h"

static void buy(pulse_txstore_t *st, const char *who, int32_t day, double amount, unsigned flags)
{
    pulse_tx_row_t r;
    memset(&r, 0, sizeof(r));
    r.customer = who;
    r.customer_len = strlen(who);
    r.day = day;
    r.amount = amount;
    r.quantity = NAN;
    r.flags = flags;
    pulse_txstore_add_transaction(st, &r);
}

static void test_summaries(void **state)
{
    (void)state;
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    buy(&st, "a", 100, 50, 0);
    buy(&st, "a", 110, 20, 0);
    buy(&st, "a", 110, 10, 0); /* same day: one purchase of 30 */
    buy(&st, "a", 130, 60, 0);
    buy(&st, "a", 140, -60, PULSE_TX_RETURN);
    buy(&st, "once", 150, 25, 0);
    buy(&st, "refund-only", 120, -5, PULSE_TX_RETURN);
    buy(&st, "last", 199, 5, 0);
    pulse_txstore_finish(&st);
    pulse_clvsum_t s;
    pulse_clvsum_build(&st, &s);
    assert_int_equal(s.end_day, 200);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.customer[0], 0);
    assert_float_equal(s.x[0], 2, 0);
    assert_float_equal(s.t_x[0], 30, 0);
    assert_float_equal(s.T[0], 100, 0);
    assert_float_equal(s.zbar[0], 45, 1e-9);
    assert_float_equal(s.x[1], 0, 0);
    assert_float_equal(s.t_x[1], 0, 0);
    assert_float_equal(s.T[1], 50, 0);
    assert_float_equal(s.zbar[1], 0, 0);
    assert_float_equal(s.T[2], 1, 0);
    pulse_clvsum_free(&s);
    pulse_txstore_free(&st);
}

/* A time split: the summaries before day 130 see nothing from day 130 on, and the window counts
 * the purchases of [130, 200) by day. */
static void test_calibration_and_window(void **state)
{
    (void)state;
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    buy(&st, "a", 100, 50, 0);
    buy(&st, "a", 110, 20, 0);
    buy(&st, "a", 130, 60, 0);
    buy(&st, "a", 130, 5, 0);
    buy(&st, "a", 140, -60, PULSE_TX_RETURN);
    buy(&st, "a", 150, 7, 0);
    buy(&st, "late", 150, 25, 0);
    pulse_txstore_finish(&st);
    pulse_clvsum_t s;
    pulse_clvsum_build_before(&st, 130, &s);
    assert_int_equal(s.end_day, 130);
    assert_int_equal(s.n, 1); /* "late" first bought after the cutoff */
    assert_float_equal(s.x[0], 1, 0);
    assert_float_equal(s.t_x[0], 10, 0);
    assert_float_equal(s.T[0], 30, 0);
    assert_float_equal(s.zbar[0], 20, 0);
    pulse_clvsum_free(&s);
    double days, spend;
    pulse_clvsum_window(&st, 0, 130, 200, &days, &spend);
    assert_float_equal(days, 2, 0);
    assert_float_equal(spend, 72, 1e-9);
    pulse_clvsum_window(&st, 0, 100, 130, &days, &spend);
    assert_float_equal(days, 2, 0);
    assert_float_equal(spend, 70, 1e-9);
    pulse_clvsum_window(&st, 1, 100, 150, &days, &spend);
    assert_float_equal(days, 0, 0);
    pulse_txstore_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summaries),
        cmocka_unit_test(test_calibration_and_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
