/* Unit tests for src/ml/metrics.c against values worked out by hand on tiny sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "ml/metrics.h"

/* 3 positives (0.9, 0.8, 0.4), 4 negatives (0.8, 0.6, 0.4, 0.2): two ties across classes. */
static const double P7[7] = {0.9, 0.8, 0.8, 0.6, 0.4, 0.4, 0.2};
static const float Y7[7] = {1, 1, 0, 0, 1, 0, 0};

static void test_auc_ties(void **state)
{
    (void)state;
    /* 0.9 beats 4; 0.8 beats 3 and ties 1; 0.4 beats 1 and ties 1: (4 + 3.5 + 1.5) / 12 */
    assert_float_equal(pulse_ml_roc_auc(P7, Y7, 7), 9.0 / 12.0, 1e-12);
    double flat[4] = {0.5, 0.5, 0.5, 0.5};
    float y4[4] = {1, 0, 1, 0};
    assert_float_equal(pulse_ml_roc_auc(flat, y4, 4), 0.5, 1e-12);
    float one[4] = {1, 1, 1, 1};
    assert_true(isnan(pulse_ml_roc_auc(flat, one, 4)));
    double perfect[4] = {0.9, 0.1, 0.8, 0.2};
    assert_float_equal(pulse_ml_roc_auc(perfect, y4, 4), 1.0, 1e-12);
}

static void test_pr_auc(void **state)
{
    (void)state;
    /* thresholds 0.9: R 1/3 P 1; 0.8: R 2/3 P 2/3; 0.4: R 1 P 3/6 -> 1/3 + 2/9 + 1/6 = 13/18 */
    assert_float_equal(pulse_ml_pr_auc(P7, Y7, 7), 13.0 / 18.0, 1e-12);
}

static void test_threshold_and_confusion(void **state)
{
    (void)state;
    double f1;
    double thr = pulse_ml_best_f1_threshold(P7, Y7, 7, &f1);
    assert_float_equal(thr, 0.8, 0); /* F1 2/3 at 0.8 and at 0.4: the first (higher) one is kept */
    assert_float_equal(f1, 2.0 / 3.0, 1e-12);
    pulse_ml_confusion_t cm;
    pulse_ml_confusion(P7, Y7, 7, thr, &cm);
    assert_int_equal(cm.tp, 2);
    assert_int_equal(cm.fp, 1);
    assert_int_equal(cm.fn, 1);
    assert_int_equal(cm.tn, 3);
    double acc, pr, rc, f;
    pulse_ml_rates(&cm, &acc, &pr, &rc, &f);
    assert_float_equal(acc, 5.0 / 7.0, 1e-12);
    assert_float_equal(pr, 2.0 / 3.0, 1e-12);
    assert_float_equal(rc, 2.0 / 3.0, 1e-12);
    assert_float_equal(f, 2.0 / 3.0, 1e-12);
}

static void test_losses(void **state)
{
    (void)state;
    double p[2] = {0.8, 0.3};
    float y[2] = {1, 0};
    assert_float_equal(pulse_ml_log_loss(p, y, 2), -(log(0.8) + log(0.7)) / 2, 1e-12);
    assert_float_equal(pulse_ml_brier(p, y, 2), (0.04 + 0.09) / 2, 1e-12);
    double certain[1] = {0.0};
    float pos[1] = {1};
    assert_true(isfinite(pulse_ml_log_loss(certain, pos, 1))); /* clipped */
    double pred[3] = {1, 2, 3}, mae, rmse;
    float t[3] = {2, 2, 5};
    pulse_ml_regression_metrics(pred, t, 3, &mae, &rmse);
    assert_float_equal(mae, 1.0, 1e-12);
    assert_float_equal(rmse, sqrt(5.0 / 3.0), 1e-12);
}

static void test_deciles(void **state)
{
    (void)state;
    double p[20];
    float y[20] = {0};
    for (int i = 0; i < 20; i++)
        p[i] = (20 - i) / 20.0;
    y[0] = y[1] = y[2] = y[5] = y[12] = 1; /* 5 positives, base rate 0.25 */
    pulse_ml_decile_t d[10];
    pulse_ml_deciles(p, y, 20, d);
    assert_int_equal(d[0].n, 2);
    assert_int_equal(d[0].positives, 2);
    assert_float_equal(d[0].lift, 4.0, 1e-12);
    assert_float_equal(d[0].cum_gain, 0.4, 1e-12);
    assert_float_equal(d[1].lift, 2.0, 1e-12);
    assert_float_equal(d[1].cum_gain, 0.6, 1e-12);
    assert_float_equal(d[2].cum_gain, 0.8, 1e-12);
    assert_float_equal(d[5].cum_gain, 0.8, 1e-12);
    assert_float_equal(d[6].cum_gain, 1.0, 1e-12);
    assert_float_equal(d[9].lift, 0.0, 1e-12);
}

static void test_calibration_curve(void **state)
{
    (void)state;
    double p[4] = {0.05, 0.15, 0.15, 1.0};
    float y[4] = {0, 1, 0, 1};
    pulse_ml_calbin_t c[10];
    pulse_ml_calibration_curve(p, y, 4, c);
    assert_int_equal(c[0].n, 1);
    assert_float_equal(c[0].mean_predicted, 0.05, 1e-12);
    assert_int_equal(c[1].n, 2);
    assert_float_equal(c[1].observed, 0.5, 1e-12);
    assert_int_equal(c[9].n, 1);
    assert_float_equal(c[9].observed, 1.0, 1e-12);
    assert_int_equal(c[5].n, 0);

    pulse_ml_metrics_t m;
    pulse_ml_metrics_compute(P7, Y7, 7, &m);
    assert_int_equal(m.n, 7);
    assert_int_equal(m.positives, 3);
    assert_float_equal(m.roc_auc, 0.75, 1e-12);
    assert_float_equal(m.threshold, 0.8, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auc_ties), cmocka_unit_test(test_pr_auc),  cmocka_unit_test(test_threshold_and_confusion),
        cmocka_unit_test(test_losses),   cmocka_unit_test(test_deciles), cmocka_unit_test(test_calibration_curve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
