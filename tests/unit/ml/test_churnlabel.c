/* Unit tests for src/ml/churnlabel.c: no leakage (a customer's activity in the label window, however
 * large, leaves their features exactly as without it; the label comes from the window only), the
 * cutoff, who is a row, and the refusal of too short a history with the numbers in the message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ml/churnlabel.h"

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

/* Day 1000 to 1299: end 1300, a 90-day horizon puts the cutoff at 1210. */
static void build(pulse_txstore_t *st)
{
    pulse_txstore_init(st);
    const int32_t days[] = {1000, 1030, 1060, 1100, 1180};
    const double amounts[] = {20, 35, 12.5, 40, 18};
    for (int k = 0; k < 5; k++) {
        buy(st, "same-a", days[k], amounts[k], 0);
        buy(st, "same-b", days[k], amounts[k], 0);
    }
    /* a's only difference: huge activity from the cutoff day on */
    buy(st, "same-a", 1210, 1e6, 0);
    buy(st, "same-a", 1250, 5e5, 0);
    buy(st, "same-a", 1299, 7e5, 0);
    buy(st, "new-c", 1220, 10, 0);      /* first seen in the window: not a row */
    buy(st, "returner-d", 1100, 30, 0); /* only a return in the window: churned */
    buy(st, "returner-d", 1230, -30, PULSE_TX_RETURN);
    buy(st, "span-z", 1000, 5, 0);
    buy(st, "span-z", 1209, 5, 0); /* the day before the cutoff counts as history */
    buy(st, "span-z", 1299, 5, 0);
    pulse_txstore_finish(st);
}

static long row_of(const pulse_churnlabel_info_t *info, const pulse_txstore_t *st, const char *who)
{
    for (size_t i = 0; i < info->n_customers; i++) {
        size_t len;
        const char *s = pulse_strtab_get(&st->customers, info->customer[i], &len);
        if (len == strlen(who) && memcmp(s, who, len) == 0)
            return (long)i;
    }
    return -1;
}

static void test_no_leakage(void **state)
{
    (void)state;
    pulse_txstore_t st;
    build(&st);
    pulse_ml_table_t *t = NULL;
    pulse_churnlabel_info_t info;
    char err[512];
    if (pulse_churnlabel_table(&st, 90, &t, &info, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(info.cutoff, 1210);
    assert_int_equal(info.n_customers, 4);
    assert_int_equal(info.n_churned, 2);
    long a = row_of(&info, &st, "same-a"), b = row_of(&info, &st, "same-b"), d = row_of(&info, &st, "returner-d"),
         z = row_of(&info, &st, "span-z");
    assert_true(a >= 0 && b >= 0 && d >= 0 && z >= 0);
    assert_int_equal(row_of(&info, &st, "new-c"), -1);
    const pulse_ml_data_t *x = &t->data;
    assert_int_equal(x->n_rows, 4);
    assert_true(x->n_cols >= 19);
    for (size_t j = 0; j < x->n_cols; j++) {
        float va = x->x[j * x->n_rows + a], vb = x->x[j * x->n_rows + b];
        if (!(va == vb || (isnan(va) && isnan(vb))))
            fail_msg("feature %s differs: %g with window activity, %g without", x->names[j], va, vb);
        assert_non_null(strstr(x->names[j], "analytics."));
    }
    assert_int_equal(x->y[a], 0);
    assert_int_equal(x->y[b], 1);
    assert_int_equal(x->y[d], 1);
    assert_int_equal(x->y[z], 0);
    /* recency as of the cutoff: b's last purchase was day 1180 */
    int rj = pulse_ml_table_find(t, "analytics.recency_days");
    assert_true(rj >= 0);
    assert_float_equal(x->x[(size_t)rj * x->n_rows + b], 30, 0);
    assert_float_equal(x->x[(size_t)rj * x->n_rows + z], 1, 0);
    free(info.customer);
    pulse_ml_table_free(t);
    pulse_txstore_free(&st);
}

static void test_too_little_history(void **state)
{
    (void)state;
    pulse_txstore_t st;
    build(&st);
    pulse_ml_table_t *t = NULL;
    pulse_churnlabel_info_t info;
    char err[512];
    assert_int_equal(pulse_churnlabel_table(&st, 250, &t, &info, err, sizeof(err)), -1);
    assert_null(t);
    assert_non_null(strstr(err, "span 300 days"));
    assert_non_null(strstr(err, "at least 340 days"));
    assert_int_equal(pulse_churnlabel_table(&st, 0, &t, &info, err, sizeof(err)), -1);
    pulse_txstore_free(&st);

    pulse_txstore_init(&st);
    pulse_txstore_finish(&st);
    assert_int_equal(pulse_churnlabel_table(&st, 90, &t, &info, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "transactions"));
    pulse_txstore_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_leakage),
        cmocka_unit_test(test_too_little_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
