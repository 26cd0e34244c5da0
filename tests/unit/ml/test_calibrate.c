/* Unit tests for src/ml/calibrate.c: Platt recovers a planted (a, b), isotonic output is monotone,
 * the choice follows the out-of-fold log-loss, bytes round-trip and bad bytes are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "gen/rng.h"
#include "ml/calibrate.h"

/* Scores p whose true probability is sigmoid(a logit(p) + b). */
static void planted(double a, double b, size_t n, double *p, float *y, uint64_t seed)
{
    pulse_rng_t r;
    pulse_rng_seed(&r, seed, 2, 0);
    for (size_t i = 0; i < n; i++) {
        double s = 3 * pulse_rng_normal(&r);
        p[i] = 1 / (1 + exp(-s));
        y[i] = pulse_rng_uniform(&r) < 1 / (1 + exp(-(a * s + b)));
    }
}

static void test_platt_recovers(void **state)
{
    (void)state;
    enum { N = 50000 };
    double *p = malloc(N * sizeof(double));
    float *y = malloc(N * sizeof(float));
    planted(0.6, -0.8, N, p, y, 1);
    double a, b;
    assert_int_equal(pulse_ml_platt_fit(p, y, N, &a, &b), 0);
    assert_float_equal(a, 0.6, 0.03);
    assert_float_equal(b, -0.8, 0.05);
    for (size_t i = 0; i < N; i++)
        y[i] = 1;
    assert_int_equal(pulse_ml_platt_fit(p, y, N, &a, &b), -1);
    free(p);
    free(y);
}

static void test_isotonic_monotone(void **state)
{
    (void)state;
    enum { N = 3000 };
    double p[N];
    float y[N];
    planted(1.0, 0.0, N, p, y, 2);
    for (size_t i = 0; i < N; i += 7)
        p[i] = 0.5; /* many ties */
    pulse_ml_calibration_t c;
    pulse_ml_calibration_init(&c);
    assert_int_equal(pulse_ml_isotonic_fit(p, y, N, &c), 0);
    assert_int_equal(c.kind, PULSE_ML_CAL_ISOTONIC);
    assert_true(c.n_points > 2);
    for (size_t k = 1; k < c.n_points; k++)
        assert_true(c.x[k] > c.x[k - 1] && c.y[k] >= c.y[k - 1]);
    double prev = -1;
    for (int i = 0; i <= 1000; i++) {
        double v = pulse_ml_calibration_apply(&c, i / 1000.0);
        assert_true(v >= prev && v > 0 && v < 1);
        prev = v;
    }
    /* a hand case: labels 0 1 0 1 1 at ascending scores pool to 0, 0.5, 0.5, 1, 1 */
    double hp[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
    float hy[5] = {0, 1, 0, 1, 1};
    assert_int_equal(pulse_ml_isotonic_fit(hp, hy, 5, &c), 0);
    assert_int_equal(c.n_points, 3);
    assert_float_equal(c.x[1], 0.25, 1e-12);
    assert_float_equal(c.y[1], 0.5, 1e-12);
    assert_float_equal(pulse_ml_calibration_apply(&c, 0.25), 0.5, 1e-12);
    assert_float_equal(pulse_ml_calibration_apply(&c, 0.175), (1e-4 + 0.5) / 2, 1e-12);
    pulse_ml_calibration_free(&c);
}

static void test_choice_and_bytes(void **state)
{
    (void)state;
    enum { N = 4000 };
    double p[N];
    float y[N];
    planted(0.5, 0.3, N, p, y, 3);
    pulse_ml_calibration_t c, d;
    char err[160];
    assert_int_equal(pulse_ml_calibration_fit(p, y, N, &c, err, sizeof(err)), 0);
    /* the planted distortion is exactly Platt-shaped: Platt wins the cross-fitted comparison */
    assert_int_equal(c.kind, PULSE_ML_CAL_PLATT);
    assert_true(c.cv_log_loss[PULSE_ML_CAL_PLATT] < c.cv_log_loss[PULSE_ML_CAL_NONE]);
    assert_true(c.cv_log_loss[PULSE_ML_CAL_PLATT] <= c.cv_log_loss[PULSE_ML_CAL_ISOTONIC]);

    /* already calibrated scores: neither curve beats them, they are left alone */
    double q[N];
    float z[N];
    planted(1.0, 0.0, N, q, z, 4);
    pulse_ml_calibration_t id;
    assert_int_equal(pulse_ml_calibration_fit(q, z, N, &id, err, sizeof(err)), 0);
    assert_int_equal(id.kind, PULSE_ML_CAL_NONE);
    assert_true(pulse_ml_calibration_apply(&id, 0.3) == 0.3);
    pulse_ml_calibration_free(&id);

    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_ml_calibration_save(&c, &b);
    assert_int_equal(pulse_ml_calibration_load((unsigned char *)b.data, b.len, &d, err, sizeof(err)), 0);
    assert_true(d.kind == c.kind && d.a == c.a && d.b == c.b);
    pulse_buf_free(&b);

    pulse_ml_isotonic_fit(p, y, N, &c);
    pulse_ml_calibration_save(&c, &b);
    assert_int_equal(pulse_ml_calibration_load((unsigned char *)b.data, b.len, &d, err, sizeof(err)), 0);
    assert_int_equal(d.n_points, c.n_points);
    assert_true(pulse_ml_calibration_apply(&d, 0.37) == pulse_ml_calibration_apply(&c, 0.37));
    pulse_ml_calibration_free(&d);
    assert_int_equal(pulse_ml_calibration_load((unsigned char *)b.data, b.len - 1, &d, err, sizeof(err)), -1);
    b.data[0] = 7;
    assert_int_equal(pulse_ml_calibration_load((unsigned char *)b.data, b.len, &d, err, sizeof(err)), -1);
    pulse_buf_free(&b);
    pulse_ml_calibration_free(&c);

    assert_int_equal(pulse_ml_calibration_fit(p, y, 5, &c, err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_platt_recovers),
        cmocka_unit_test(test_isotonic_monotone),
        cmocka_unit_test(test_choice_and_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
