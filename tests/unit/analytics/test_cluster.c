/* Unit tests for src/analytics/cluster.c and persona.c: planted Gaussian blobs recovered by
 * k-means, the mixture and Ward (given k and chosen k, Ward below and above its sample limit),
 * the capped refine on all rows, determinism across runs and thread counts, the log transform of a skewed column and centroids
 * back in original units, a non-decreasing EM log-likelihood, personas, and refused input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/cluster.h"
#include "analytics/persona.h"
#include "gen/rng.h"

/* n rows around k centres in d dimensions; centres on a spread-out grid, 10 sd apart or more. */
static double *blobs(size_t n, size_t d, size_t k, uint64_t seed, int **truth)
{
    pulse_rng_t r;
    pulse_rng_seed(&r, seed, 7, 0);
    double *x = malloc(n * d * sizeof(double));
    int *t = malloc(n * sizeof(int));
    assert_non_null(x);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        size_t q = pulse_rng_below(&r, (uint32_t)k);
        t[i] = (int)q;
        for (size_t j = 0; j < d; j++) {
            double centre = 12.0 * (double)(((q + j) * 7 + q * j) % 5) + (j == q % d ? 10.0 : 0.0);
            x[i * d + j] = centre + pulse_rng_normal(&r);
        }
    }
    *truth = t;
    return x;
}

static pulse_cluster_opts_t opts(pulse_cluster_method_t m, int k)
{
    pulse_cluster_opts_t o;
    pulse_cluster_opts_init(&o);
    o.method = m;
    o.k = k;
    o.seed = 42;
    return o;
}

static void recover(pulse_cluster_method_t m, int k, size_t n, size_t ward_sample)
{
    int *truth;
    double *x = blobs(n, 3, 4, 99, &truth);
    pulse_cluster_opts_t o = opts(m, k);
    if (ward_sample)
        o.ward_sample = ward_sample;
    pulse_cluster_result_t r;
    char err[256];
    assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.k, 4);
    double ari = pulse_cluster_adjusted_rand(r.labels, truth, n);
    if (ari < 0.9)
        fprintf(stderr, "%s k=%d n=%zu: ARI %.3f\n", pulse_cluster_method_name(m), k, n, ari);
    assert_true(ari >= 0.9);
    size_t total = 0;
    for (size_t q = 0; q < r.k; q++)
        total += r.sizes[q];
    assert_int_equal(total, n);
    assert_true(r.silhouette > 0.5);
    if (k == 0) {
        assert_int_equal(r.n_scores, 7);
        assert_int_equal(r.k_first, 2);
    } else {
        assert_int_equal(r.n_scores, 0);
    }
    pulse_cluster_result_free(&r);
    free(x);
    free(truth);
}

static void test_kmeans_given_k(void **state)
{
    recover(PULSE_CLUSTER_KMEANS, 4, 4000, 0);
}

static void test_kmeans_auto_k(void **state)
{
    recover(PULSE_CLUSTER_KMEANS, 0, 4000, 0);
}

static void test_kmeans_auto_k_sampled(void **state)
{
    /* above fit_sample: restarts and the choice of k on a sample, refined on every row */
    recover(PULSE_CLUSTER_KMEANS, 0, 150000, 0);
}

/* The refine on all rows after a sample fit stops after refine_iter Lloyd iterations: the labels
 * stay within a few border rows of full convergence, the inertia a hair above it. */
static void test_refine_capped(void **state)
{
    int *truth;
    size_t n = 150000;
    double *x = blobs(n, 3, 4, 5, &truth);
    pulse_rng_t rng;
    pulse_rng_seed(&rng, 11, 7, 0);
    for (size_t i = 0; i < n * 3; i++) /* blobs that overlap: borders the refine keeps moving */
        x[i] += 8.0 * pulse_rng_normal(&rng);
    pulse_cluster_opts_t o = opts(PULSE_CLUSTER_KMEANS, 4);
    o.fit_sample = 2000;
    pulse_cluster_result_t capped, full;
    char err[256];
    assert_int_equal(o.refine_iter, 2);
    assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &capped, err, sizeof(err)), 0);
    o.refine_iter = 0;
    assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &full, err, sizeof(err)), 0);
    assert_true(capped.iterations <= 2);
    assert_true(full.iterations > capped.iterations); /* the data needs more than the cap */
    assert_true(pulse_cluster_adjusted_rand(capped.labels, full.labels, n) >= 0.99);
    assert_true(capped.inertia >= full.inertia * (1 - 1e-12));
    assert_true(capped.inertia <= full.inertia * (1 + 1e-3));
    pulse_cluster_result_free(&capped);
    pulse_cluster_result_free(&full);
    o.refine_iter = -1;
    assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &full, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "refine_iter"));
    free(x);
    free(truth);
}

static void test_gmm_given_k(void **state)
{
    recover(PULSE_CLUSTER_GMM, 4, 4000, 0);
}

static void test_gmm_auto_k(void **state)
{
    recover(PULSE_CLUSTER_GMM, 0, 4000, 0);
}

static void test_ward_below_limit(void **state)
{
    recover(PULSE_CLUSTER_WARD, 4, 1500, 0);
    recover(PULSE_CLUSTER_WARD, 0, 1500, 0);
}

static void test_ward_above_limit(void **state)
{
    recover(PULSE_CLUSTER_WARD, 4, 30000, 800);
    recover(PULSE_CLUSTER_WARD, 0, 30000, 800);
}

static void same_result(const pulse_cluster_result_t *a, const pulse_cluster_result_t *b)
{
    assert_int_equal(a->k, b->k);
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->labels, b->labels, a->n * sizeof(int));
    assert_memory_equal(a->centroids_z, b->centroids_z, a->k * a->d * sizeof(double));
    assert_memory_equal(&a->inertia, &b->inertia, sizeof(double));
    assert_int_equal(a->iterations, b->iterations);
    if (a->loglik_trace)
        assert_memory_equal(&a->loglik, &b->loglik, sizeof(double));
}

static void test_deterministic(void **state)
{
    int *truth;
    size_t n = 120000;
    double *x = blobs(n, 3, 4, 5, &truth);
    pulse_cluster_method_t ms[] = {PULSE_CLUSTER_KMEANS, PULSE_CLUSTER_GMM, PULSE_CLUSTER_WARD};
    for (size_t m = 0; m < 3; m++) {
        pulse_cluster_opts_t o = opts(ms[m], m == 0 ? 0 : 4);
        o.fit_sample = 20000;
        o.ward_sample = 1000;
        pulse_cluster_result_t a, b, c, e;
        char err[256];
        o.threads = 1;
        assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &a, err, sizeof(err)), 0);
        assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &b, err, sizeof(err)), 0);
        o.threads = 2;
        assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &c, err, sizeof(err)), 0);
        o.threads = 3;
        assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &e, err, sizeof(err)), 0);
        same_result(&a, &b);
        same_result(&a, &c);
        same_result(&a, &e);
        pulse_cluster_result_free(&e);
        pulse_cluster_result_free(&a);
        pulse_cluster_result_free(&b);
        pulse_cluster_result_free(&c);
    }
    free(x);
    free(truth);
}

/* RFM-like: three planted segments with log-normal spread around known medians. */
static const double rfm_median[3][3] = {
    {8, 20, 2000}, /* recent, frequent, big spenders */
    {200, 2, 40},  /* lapsed, occasional, small */
    {60, 6, 300},  /* the middle */
};
static const char *const rfm_names[3] = {"recency_days", "frequency", "monetary"};

static double *rfm(size_t n, int **truth)
{
    pulse_rng_t r;
    pulse_rng_seed(&r, 11, 3, 0);
    double *x = malloc(n * 3 * sizeof(double));
    int *t = malloc(n * sizeof(int));
    assert_non_null(x);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        size_t q = i % 10 < 2 ? 0 : i % 10 < 6 ? 1 : 2;
        t[i] = (int)q;
        for (size_t j = 0; j < 3; j++)
            x[i * 3 + j] = expm1(log1p(rfm_median[q][j]) + 0.15 * pulse_rng_normal(&r));
    }
    *truth = t;
    return x;
}

static void test_skewed_and_persona(void **state)
{
    int *truth;
    size_t n = 6000;
    double *x = rfm(n, &truth);
    pulse_cluster_opts_t o = opts(PULSE_CLUSTER_KMEANS, 0);
    pulse_cluster_result_t r;
    char err[256];
    assert_int_equal(pulse_cluster_run(x, n, 3, rfm_names, &o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.k, 3);
    assert_true(pulse_cluster_adjusted_rand(r.labels, truth, n) >= 0.9);
    assert_true(r.features[2].log1p); /* monetary: 40 .. 2000, long right tail */
    assert_true(r.features[2].skewness > 1);
    assert_string_equal(r.features[2].name, "monetary");
    int found_recent = 0;
    for (size_t q = 0; q < r.k; q++) {
        /* which planted segment is this? the one with the nearest recency median */
        size_t best = 0;
        for (size_t s = 1; s < 3; s++)
            if (fabs(log(r.centroids[q * 3] / rfm_median[s][0])) < fabs(log(r.centroids[q * 3] / rfm_median[best][0])))
                best = s;
        for (size_t j = 0; j < 3; j++) {
            double c = r.centroids[q * 3 + j], want = rfm_median[best][j];
            if (r.features[j].log1p)
                assert_true(fabs(log1p(c) - log1p(want)) < 0.1); /* back-transformed centre ~ the median */
            else
                assert_true(fabs(c - r.means[q * 3 + j]) < 1e-6 * fabs(c) + 1e-9);
            assert_true(fabs(r.means[q * 3 + j] / want - 1) < 0.1); /* member mean near the planted value */
        }
        for (size_t p = 0; p < q; p++)
            assert_string_not_equal(r.personas[p].label, r.personas[q].label);
        assert_null(strstr(r.personas[q].label, "luster"));
        if (best == 0) {
            assert_non_null(strstr(r.personas[q].label, "recently active"));
            assert_non_null(strstr(r.personas[q].label, "high spenders"));
            assert_non_null(strstr(r.personas[q].action, "Reward"));
            found_recent = 1;
        }
        if (best == 1) {
            assert_non_null(strstr(r.personas[q].label, "low spenders"));
            assert_non_null(strstr(r.personas[q].action, "win-back"));
        }
    }
    assert_true(found_recent);
    pulse_cluster_result_free(&r);
    free(x);
    free(truth);
}

static void test_persona_direct(void **state)
{
    const char *names[] = {"recency_days", "frequency", "monetary", "support_tickets"};
    const double z[] = {
        -1.0, 1.2,  1.5,  0.0, /* frequent high spenders, recently active */
        1.6,  -0.8, -0.9, 0.0, /* inactive a long time, occasional low spenders */
        0.1,  0.0,  0.1,  0.9, /* unknown feature */
        0.1,  0.1,  0.2,  0.1, /* typical */
        -0.1, 0.0,  -0.2, 0.0, /* typical too: must be told apart */
    };
    pulse_cluster_persona_t p[5];
    size_t sizes[] = {10, 20, 30, 40, 50};
    pulse_cluster_persona(z, 5, 4, names, sizes, p);
    assert_string_equal(p[0].label, "frequent high spenders, recently active");
    assert_non_null(strstr(p[0].action, "Reward and upsell"));
    assert_string_equal(p[1].label, "occasional low spenders, inactive for a long time");
    assert_non_null(strstr(p[1].action, "Low-cost win-back"));
    assert_string_equal(p[2].label, "customers with high support tickets");
    for (size_t q = 0; q < 5; q++)
        for (size_t s = 0; s < q; s++)
            assert_string_not_equal(p[q].label, p[s].label);
    assert_non_null(strstr(p[3].label, "typical customers ("));
}

static void test_gmm_loglik_monotone(void **state)
{
    int *truth;
    size_t n = 5000;
    double *x = blobs(n, 3, 4, 77, &truth);
    /* overlapping start: squeeze the blobs together so EM has work to do */
    for (size_t i = 0; i < n * 3; i++)
        x[i] *= 0.25;
    pulse_cluster_opts_t o = opts(PULSE_CLUSTER_GMM, 4);
    pulse_cluster_result_t r;
    char err[256];
    assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &r, err, sizeof(err)), 0);
    assert_true(r.loglik_trace_len >= 2);
    for (int i = 1; i < r.loglik_trace_len; i++)
        assert_true(r.loglik_trace[i] >= r.loglik_trace[i - 1] - 1e-9 * fabs(r.loglik_trace[i - 1]));
    assert_true(r.loglik == r.loglik_trace[r.loglik_trace_len - 1]);
    assert_true(r.iterations >= 1);
    double p = 4 * 2 * 3 + 3;
    assert_true(fabs(r.bic - (-2 * r.loglik + p * log((double)n))) < 1e-6 * fabs(r.bic));
    double w = 0;
    for (size_t q = 0; q < r.k; q++)
        w += r.weights[q];
    assert_true(fabs(w - 1) < 1e-9);
    pulse_cluster_result_free(&r);
    free(x);
    free(truth);
}

static void test_constant_column_ignored(void **state)
{
    int *truth;
    size_t n = 2000;
    double *x = blobs(n, 3, 3, 8, &truth);
    for (size_t i = 0; i < n; i++)
        x[i * 3 + 1] = 5.0;
    pulse_cluster_opts_t o = opts(PULSE_CLUSTER_KMEANS, 3);
    pulse_cluster_result_t r;
    char err[256];
    assert_int_equal(pulse_cluster_run(x, n, 3, NULL, &o, &r, err, sizeof(err)), 0);
    assert_true(r.features[1].ignored);
    assert_false(r.features[0].ignored);
    for (size_t q = 0; q < r.k; q++) {
        assert_true(r.centroids_z[q * 3 + 1] == 0);
        assert_true(fabs(r.centroids[q * 3 + 1] - 5.0) < 1e-12);
    }
    pulse_cluster_result_free(&r);
    free(x);
    free(truth);
}

/* More columns than a preparation pass takes at once (8): taken in groups, same answer; the first
 * bad value in row order is reported even when a later group holds it. */
static void test_wide(void **state)
{
    int *truth;
    size_t n = 4000, d = 11;
    double *x = blobs(n, d, 4, 21, &truth);
    pulse_cluster_opts_t o = opts(PULSE_CLUSTER_KMEANS, 4);
    pulse_cluster_result_t r;
    char err[256];
    assert_int_equal(pulse_cluster_run(x, n, d, NULL, &o, &r, err, sizeof(err)), 0);
    assert_true(pulse_cluster_adjusted_rand(r.labels, truth, n) >= 0.9);
    pulse_cluster_result_free(&r);
    x[5 * d + 9] = NAN;
    x[7 * d + 0] = NAN;
    assert_int_equal(pulse_cluster_run(x, n, d, NULL, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "row 5, feature 'feature_10'"));
    free(x);
    free(truth);
}

static void test_bad_input(void **state)
{
    double x[6 * 2] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const char *names[] = {"recency_days", "frequency"};
    pulse_cluster_opts_t o = opts(PULSE_CLUSTER_KMEANS, 2);
    pulse_cluster_result_t r;
    char err[256];
    x[7] = NAN;
    assert_int_equal(pulse_cluster_run(x, 6, 2, names, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "row 3"));
    assert_non_null(strstr(err, "frequency"));
    assert_non_null(strstr(err, "NaN"));
    pulse_cluster_result_free(&r); /* safe on a refused run */
    x[7] = INFINITY;
    assert_int_equal(pulse_cluster_run(x, 6, 2, names, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "infinite"));
    x[7] = 8;
    assert_int_equal(pulse_cluster_run(x, 6, 0, names, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "d = 0"));
    o.k = 7;
    assert_int_equal(pulse_cluster_run(x, 6, 2, names, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "6 rows cannot make 7 clusters"));
    o.k = PULSE_CLUSTER_K_LIMIT + 1;
    assert_int_equal(pulse_cluster_run(x, 6, 2, names, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "out of range"));
    o.k = -1;
    assert_int_equal(pulse_cluster_run(x, 6, 2, names, &o, &r, err, sizeof(err)), -1);
    o.k = 0; /* auto needs k_max = 8 rows */
    assert_int_equal(pulse_cluster_run(x, 6, 2, names, &o, &r, err, sizeof(err)), -1);
    o.k_min = 1;
    o.k_max = 3;
    assert_int_equal(pulse_cluster_run(x, 6, 2, names, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "k range"));
    for (size_t i = 0; i < 6; i++)
        x[i * 2] = x[i * 2 + 1] = 3;
    o.k = 2;
    assert_int_equal(pulse_cluster_run(x, 6, 2, names, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "constant"));
}

static void test_adjusted_rand(void **state)
{
    int a[] = {0, 0, 0, 1, 1, 1, 2, 2};
    int b[] = {5, 5, 5, 3, 3, 3, 0, 0};
    int c[] = {0, 0, 1, 1, 2, 2, 0, 1};
    assert_true(fabs(pulse_cluster_adjusted_rand(a, b, 8) - 1) < 1e-12);
    /* sklearn.metrics.adjusted_rand_score([0,0,0,1,1,1,2,2],[0,0,1,1,2,2,0,1]) */
    double v = pulse_cluster_adjusted_rand(a, c, 8);
    assert_true(v < 0.2 && v > -0.5);
    int d[] = {0, 0, 1, 1};
    int e[] = {0, 1, 0, 1};
    assert_true(fabs(pulse_cluster_adjusted_rand(d, e, 4) - (-0.5)) < 1e-12);
    int neg[] = {0, -1, 0, 1};
    assert_true(isnan(pulse_cluster_adjusted_rand(d, neg, 4)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kmeans_given_k),
        cmocka_unit_test(test_kmeans_auto_k),
        cmocka_unit_test(test_kmeans_auto_k_sampled),
        cmocka_unit_test(test_refine_capped),
        cmocka_unit_test(test_gmm_given_k),
        cmocka_unit_test(test_gmm_auto_k),
        cmocka_unit_test(test_ward_below_limit),
        cmocka_unit_test(test_ward_above_limit),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_skewed_and_persona),
        cmocka_unit_test(test_persona_direct),
        cmocka_unit_test(test_gmm_loglik_monotone),
        cmocka_unit_test(test_constant_column_ignored),
        cmocka_unit_test(test_wide),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_adjusted_rand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
