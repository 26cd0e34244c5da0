/* Unit tests for src/ml/reason_text.c: each kind of phrasing, the "than usual" comparison from
 * the same row, attributes and levels, missing values, and cutting to the buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "ml/reason_text.h"

static pulse_ml_model_t *model(void)
{
    static char *levels[] = {"Month-to-month", "One year", "Two year"};
    pulse_ml_model_t *m = pulse_ml_model_new(PULSE_ML_CHURN_GBDT);
    pulse_ml_model_add_feature(m, "analytics.recency_days", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "analytics.interpurchase_mean", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "analytics.trend_90", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "Contract", 1, 3, levels);
    pulse_ml_model_add_feature(m, "MonthlyCharges", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "analytics.return_rate", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "payment_delays_180d", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "analytics.frequency", 0, 0, NULL);
    return m;
}

static void expect(const pulse_ml_model_t *m, const float *row, size_t j, double effect, const char *want)
{
    char out[256];
    pulse_ml_reason_text(m, row, j, effect, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_purchase_rhythm(void **state)
{
    (void)state;
    pulse_ml_model_t *m = model();
    float row[8] = {140, 45, -0.75f, 0, 95.5f, 0.13f, 2, 1};
    expect(m, row, 0, 0.8, "no purchase for 140 days, 3.1× longer than usual — raises the risk");
    row[0] = 10;
    expect(m, row, 0, -0.3, "bought 10 days ago, sooner than their usual 45 days — lowers the risk");
    row[0] = 50;
    expect(m, row, 0, 0.1, "last purchase 50 days ago — raises the risk");
    row[1] = NAN; /* one purchase day: no rhythm to compare with */
    row[0] = 300;
    expect(m, row, 0, 0.1, "last purchase 300 days ago — raises the risk");
    expect(m, row, 2, 0.4, "purchase days down 75% in the last 90 days against the 90 before — raises the risk");
    expect(m, row, 5, 0.2, "returns 13% of purchases — raises the risk");
    expect(m, row, 7, 0.2, "a single purchase day — raises the risk");
    pulse_ml_model_free(m);
}

static void test_attributes(void **state)
{
    (void)state;
    pulse_ml_model_t *m = model();
    float row[8] = {1, 1, 0, 0, 95.5f, 0, 2, 3};
    expect(m, row, 3, 0.9, "Contract: Month-to-month — raises the risk");
    row[3] = 2;
    expect(m, row, 3, -0.9, "Contract: Two year — lowers the risk");
    row[3] = 7; /* a code the dictionary does not have */
    expect(m, row, 3, -0.9, "Contract: another value — lowers the risk");
    expect(m, row, 4, 0.2, "Monthly charges: 95.5 — raises the risk");
    expect(m, row, 6, 0.2, "Payment delays 180d: 2 — raises the risk");
    row[4] = NAN;
    expect(m, row, 4, 0.1, "Monthly charges: not known — raises the risk");
    char small[29]; /* room up to the dash's second byte: the dash goes whole, not half */
    pulse_ml_reason_text(m, row, 4, 0.1, small, sizeof(small));
    assert_string_equal(small, "Monthly charges: not known ");
    pulse_ml_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_purchase_rhythm),
        cmocka_unit_test(test_attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
