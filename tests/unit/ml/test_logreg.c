/* Unit tests for src/ml/logreg.c: gradient and Hessian against finite differences, planted
 * coefficients recovered, contributions that add up, byte round trip and refused bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen/rng.h"
#include "ml/logreg.h"

static void test_finite_differences(void **state)
{
    (void)state;
    enum { N = 40, P = 4 };
    double Z[N * P], y[N], w[N];
    pulse_rng_t r;
    pulse_rng_seed(&r, 3, 0, 0);
    for (int i = 0; i < N; i++) {
        Z[i * P] = 1;
        for (int a = 1; a < P; a++)
            Z[i * P + a] = pulse_rng_normal(&r);
        y[i] = pulse_rng_uniform(&r) < 0.4;
        w[i] = 0.5 + pulse_rng_uniform(&r);
    }
    double beta[P] = {0.3, -0.7, 1.2, 0.05}, g[P], H[P * P], gp[P], gm[P];
    const double lambda = 0.8, h = 1e-5;
    pulse_ml_logreg_objective(Z, y, w, N, P, beta, lambda, g, H);
    for (int a = 0; a < P; a++) {
        double save = beta[a];
        beta[a] = save + h;
        double fp = pulse_ml_logreg_objective(Z, y, w, N, P, beta, lambda, gp, NULL);
        beta[a] = save - h;
        double fm = pulse_ml_logreg_objective(Z, y, w, N, P, beta, lambda, gm, NULL);
        beta[a] = save;
        assert_float_equal(g[a], (fp - fm) / (2 * h), 1e-5 * (1 + fabs(g[a])));
        for (int b = 0; b < P; b++)
            assert_float_equal(H[b * P + a], (gp[b] - gm[b]) / (2 * h), 1e-5 * (1 + fabs(H[b * P + a])));
    }
}

static void test_cholesky(void **state)
{
    (void)state;
    double A[9] = {4, 2, 0.4, 2, 5, 1, 0.4, 1, 3}, b[3] = {1, 2, 3};
    const double A0[9] = {4, 2, 0.4, 2, 5, 1, 0.4, 1, 3};
    assert_int_equal(pulse_ml_cholesky_solve(A, b, 3), 0);
    for (int i = 0; i < 3; i++)
        assert_float_equal(A0[i * 3] * b[0] + A0[i * 3 + 1] * b[1] + A0[i * 3 + 2] * b[2], i + 1.0, 1e-12);
    double B[4] = {1, 2, 2, 1}, c[2] = {1, 1};
    assert_int_equal(pulse_ml_cholesky_solve(B, c, 2), -1);
}

/* n rows: x0 ~ N(0,1), x1 ~ N(2,3) with 10% missing, category c in 0..2; logit as planted. */
typedef struct synth_t {
    pulse_ml_data_t d;
    unsigned char cat[3];
    int ncat[3];
    char *names[3];
} synth_t;

static const double B0 = -0.5, B1 = 1.0, B2 = -0.6, BC[3] = {0, 0.8, -1.5};

static void synth(synth_t *s, size_t n, uint64_t seed)
{
    pulse_rng_t r;
    pulse_rng_seed(&r, seed, 1, 0);
    s->d.n_rows = n;
    s->d.n_cols = 3;
    s->d.x = malloc(3 * n * sizeof(float));
    s->d.y = malloc(n * sizeof(float));
    s->d.w = NULL;
    s->cat[0] = 0, s->cat[1] = 0, s->cat[2] = 1;
    s->ncat[0] = 0, s->ncat[1] = 0, s->ncat[2] = 3;
    s->names[0] = "x0", s->names[1] = "x1", s->names[2] = "c";
    s->d.names = s->names;
    s->d.categorical = s->cat;
    s->d.n_categories = s->ncat;
    for (size_t i = 0; i < n; i++) {
        double x0 = pulse_rng_normal(&r), x1 = 2 + 3 * pulse_rng_normal(&r);
        int c = (int)pulse_rng_below(&r, 3);
        double t = B0 + B1 * x0 + B2 * x1 + BC[c];
        s->d.x[i] = (float)x0;
        s->d.x[n + i] = pulse_rng_uniform(&r) < 0.1 ? NAN : (float)x1;
        s->d.x[2 * n + i] = (float)c;
        s->d.y[i] = pulse_rng_uniform(&r) < 1 / (1 + exp(-t));
    }
}

static void synth_free(synth_t *s)
{
    free(s->d.x);
    free(s->d.y);
}

static double raw_coef(const pulse_ml_logreg_t *m, int feature, int level)
{
    for (size_t k = 1; k < pulse_ml_logreg_n_coef(m); k++) {
        int f, l;
        double b, mu, sd;
        pulse_ml_logreg_coef(m, k, &f, &l, &b, &mu, &sd);
        if (f == feature && l == level)
            return b / sd;
    }
    fail_msg("no coefficient for feature %d level %d", feature, level);
    return 0;
}

static void test_planted(void **state)
{
    (void)state;
    synth_t s;
    synth(&s, 40000, 11);
    pulse_ml_logreg_params_t p;
    pulse_ml_logreg_params_init(&p);
    p.lambda = 1e-6;
    pulse_ml_logreg_t *m;
    char err[256];
    if (pulse_ml_logreg_train(&s.d, &p, &m, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_true(pulse_ml_logreg_iterations(m) < 30);
    /* 1 intercept + x0 + x1 and its missing indicator + 3 one-hot columns */
    assert_int_equal(pulse_ml_logreg_n_coef(m), 7);
    assert_float_equal(raw_coef(m, 0, -1), B1, 0.05);
    assert_float_equal(raw_coef(m, 1, -1), B2, 0.03);
    assert_float_equal(raw_coef(m, 2, 1) - raw_coef(m, 2, 0), BC[1] - BC[0], 0.1);
    assert_float_equal(raw_coef(m, 2, 2) - raw_coef(m, 2, 0), BC[2] - BC[0], 0.1);

    /* contributions add up to the log-odds; importance ranks x1 (sd 3) first */
    float row[3] = {0.5f, NAN, 2};
    double contrib[3], imp[3];
    double b0 = pulse_ml_logreg_contributions(m, row, contrib);
    double pr = pulse_ml_logreg_predict_row(m, row);
    assert_float_equal(b0 + contrib[0] + contrib[1] + contrib[2], log(pr / (1 - pr)), 1e-9);
    pulse_ml_logreg_importance(m, imp);
    assert_true(imp[1] > imp[0]);

    /* round trip: same predictions bit for bit */
    unsigned char *bytes;
    size_t len;
    assert_int_equal(pulse_ml_logreg_save(m, &bytes, &len), 0);
    pulse_ml_logreg_t *m2 = pulse_ml_logreg_load(bytes, len, err, sizeof(err));
    if (m2 == NULL)
        fail_msg("%s", err);
    for (size_t i = 0; i < 100; i++) {
        float rr[3] = {pulse_ml_at(&s.d, i, 0), pulse_ml_at(&s.d, i, 1), pulse_ml_at(&s.d, i, 2)};
        assert_true(pulse_ml_logreg_predict_row(m, rr) == pulse_ml_logreg_predict_row(m2, rr));
    }
    /* every truncation and a few corruptions are refused without a crash */
    for (size_t cut = 0; cut < len; cut++) {
        pulse_ml_logreg_t *bad = pulse_ml_logreg_load(bytes, cut, err, sizeof(err));
        assert_null(bad);
    }
    bytes[0] = 'X';
    assert_null(pulse_ml_logreg_load(bytes, len, err, sizeof(err)));
    assert_non_null(strstr(err, "magic"));
    bytes[0] = 'P';
    bytes[4] = 9;
    assert_null(pulse_ml_logreg_load(bytes, len, err, sizeof(err)));
    assert_non_null(strstr(err, "version"));
    bytes[4] = 1;
    bytes[8] = 0xff; /* feature count */
    assert_null(pulse_ml_logreg_load(bytes, len, err, sizeof(err)));
    free(bytes);
    pulse_ml_logreg_free(m);
    pulse_ml_logreg_free(m2);
    synth_free(&s);
}

static void test_deterministic_and_refusals(void **state)
{
    (void)state;
    synth_t s;
    synth(&s, 2000, 5);
    pulse_ml_logreg_t *a, *b;
    char err[256];
    assert_int_equal(pulse_ml_logreg_train(&s.d, NULL, &a, err, sizeof(err)), 0);
    assert_int_equal(pulse_ml_logreg_train(&s.d, NULL, &b, err, sizeof(err)), 0);
    unsigned char *ba, *bb;
    size_t la, lb;
    pulse_ml_logreg_save(a, &ba, &la);
    pulse_ml_logreg_save(b, &bb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    free(ba);
    free(bb);
    pulse_ml_logreg_free(a);
    pulse_ml_logreg_free(b);

    for (size_t i = 0; i < s.d.n_rows; i++)
        s.d.y[i] = 1;
    assert_int_equal(pulse_ml_logreg_train(&s.d, NULL, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "both classes"));
    float *y = s.d.y;
    s.d.y = NULL;
    assert_int_equal(pulse_ml_logreg_train(&s.d, NULL, &a, err, sizeof(err)), -1);
    s.d.y = y;
    synth_free(&s);
}

static void test_wide_category_capped(void **state)
{
    (void)state;
    enum { N = 3000, K = 100 };
    float x[N], y[N];
    unsigned char cat = 1;
    int k = K;
    char *name = "city";
    pulse_rng_t r;
    pulse_rng_seed(&r, 4, 0, 0);
    for (int i = 0; i < N; i++) {
        /* codes 0..4 are common, the other 95 rare */
        int c = pulse_rng_uniform(&r) < 0.8 ? (int)pulse_rng_below(&r, 5) : 5 + (int)pulse_rng_below(&r, K - 5);
        x[i] = (float)c;
        y[i] = pulse_rng_uniform(&r) < (c < 5 ? 0.1 + 0.15 * c : 0.5);
    }
    pulse_ml_data_t d = {N, 1, x, y, NULL, &name, &cat, &k};
    pulse_ml_logreg_params_t p;
    pulse_ml_logreg_params_init(&p);
    p.max_levels = 5;
    pulse_ml_logreg_t *m;
    char err[256];
    if (pulse_ml_logreg_train(&d, &p, &m, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(pulse_ml_logreg_n_coef(m), 6);
    for (size_t c = 1; c < 6; c++) {
        int f, l;
        pulse_ml_logreg_coef(m, c, &f, &l, NULL, NULL, NULL);
        assert_int_equal(f, 0);
        assert_int_equal(l, (int)c - 1); /* the five common codes */
    }
    unsigned char *bytes;
    size_t len;
    pulse_ml_logreg_save(m, &bytes, &len);
    pulse_ml_logreg_t *m2 = pulse_ml_logreg_load(bytes, len, err, sizeof(err));
    if (m2 == NULL)
        fail_msg("%s", err);
    float row[1] = {42};
    assert_true(pulse_ml_logreg_predict_row(m, row) == pulse_ml_logreg_predict_row(m2, row));
    pulse_ml_logreg_free(m2);
    free(bytes);
    pulse_ml_logreg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_cholesky),
        cmocka_unit_test(test_planted),
        cmocka_unit_test(test_deterministic_and_refusals),
        cmocka_unit_test(test_wide_category_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
