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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
