/* Unit tests for src/ml/clvmodel.c: both containers round trip and score as the models they hold,
 * the discount on 30-day steps (lifetimes' formula on whole months, a short last step otherwise),
 * a whole store valued, and damaged or foreign containers refused with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml/clvmodel.h"
#include "analytics/features.h"
#include "ml/clvsum.h"

/* Roughly the CDNOW fit in days. */
static const pulse_ml_clv_bgnbd_t CD = {{0.2426, 4.4135 * 7, 0.7929, 2.4258, 0, 0}, {6.2488, 3.7446, 15.4477, 0, 0}, 35.0};

static pulse_ml_model_t *round_trip(pulse_ml_model_t *m, pulse_ml_clv_t *c)
{
    unsigned char *bytes;
    size_t len;
    pulse_ml_model_save(m, &bytes, &len);
    char err[256];
    assert_int_equal(pulse_ml_clv_open(c, bytes, len, err, sizeof(err)), 0);
    free(bytes);
    return m;
}

static void test_bgnbd_container_scores_the_formula(void **state)
{
    (void)state;
    pulse_ml_clv_terms_t terms = {90, 0.01};
    pulse_ml_model_t *m = pulse_ml_clv_pack_bgnbd(&CD, terms);
    pulse_ml_clv_t c;
    round_trip(m, &c);
    assert_int_equal(c.model->kind, PULSE_ML_CLV_BGNBD);
    assert_int_equal(c.terms.horizon, 90);
    assert_string_equal(c.model->features[2].name, "T");
    float row[4] = {3, 200, 300, 40};
    double v = pulse_ml_clv_value_row(&c, row);
    /* whole months: exactly lifetimes' customer_lifetime_value (pulse_clv_value) */
    double want = pulse_clv_value(&CD.bg, &CD.gg, 3, 200, 300, 40, 3, 0.01, 30.0);
    assert_true(fabs(v - want) < 1e-9 * want);
    /* no discount: expected purchases times expected spend */
    pulse_ml_clv_terms_t plain = {90, 0};
    double e = pulse_clv_bgnbd_expected(&CD.bg, 90, 3, 200, 300) * pulse_clv_gamma_gamma_spend(&CD.gg, 3, 40);
    assert_true(fabs(pulse_ml_clv_bgnbd_value(&CD, plain, 3, 200, 300, 40) - e) < 1e-9 * e);
    /* a short last step: 45 days = 30 + 15 */
    pulse_ml_clv_terms_t odd = {45, 0.02};
    double e30 = pulse_clv_bgnbd_expected(&CD.bg, 30, 3, 200, 300), e45 = pulse_clv_bgnbd_expected(&CD.bg, 45, 3, 200, 300);
    double s = pulse_clv_gamma_gamma_spend(&CD.gg, 3, 40);
    want = s * e30 / 1.02 + s * (e45 - e30) / pow(1.02, 1.5);
    assert_true(fabs(pulse_ml_clv_bgnbd_value(&CD, odd, 3, 200, 300, 40) - want) < 1e-9 * want);
    /* a repeat customer with no repeat spend is valued as a one-off's spend */
    assert_true(pulse_ml_clv_bgnbd_spend(&CD, 2, 0) == pulse_clv_gamma_gamma_spend(&CD.gg, 0, 0));
    /* nonsense summaries are not valued */
    float bad[4] = {2, 0, 100, 10};
    assert_true(isnan(pulse_ml_clv_value_row(&c, bad)));
    pulse_ml_clv_close(&c);
    pulse_ml_model_free(m);
}

static void test_discount_factor(void **state)
{
    (void)state;
    pulse_ml_clv_terms_t t = {90, 0.01};
    double want = (1 / 1.01 + 1 / pow(1.01, 2) + 1 / pow(1.01, 3)) / 3;
    assert_true(fabs(pulse_ml_clv_discount_factor(t) - want) < 1e-12);
    t.discount = 0;
    assert_true(fabs(pulse_ml_clv_discount_factor(t) - 1) < 1e-12);
}

static void test_gbdt_container_scores_the_trees(void **state)
{
    (void)state;
    size_t n = 200;
    float *x = calloc(2 * n, sizeof(float)), *y = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(i % 20);
        x[n + i] = (float)(i % 7);
        y[i] = x[i] < 10 ? 0.0f : 100.0f;
    }
    char *names[] = {"analytics.frequency", "analytics.recency_days"};
    pulse_ml_data_t d = {n, 2, x, y, NULL, names, NULL, NULL};
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    p.objective = PULSE_GBDT_SQUARED;
    p.n_trees = 50;
    p.threads = 1;
    pulse_gbdt_t *g = NULL;
    char err[256];
    assert_int_equal(pulse_gbdt_train(&d, NULL, &p, &g, NULL, err, sizeof(err)), 0);
    pulse_ml_clv_terms_t terms = {60, 0.05};
    pulse_ml_model_t *m = pulse_ml_clv_pack_gbdt(g, names, 2, terms);
    pulse_ml_clv_t c;
    round_trip(m, &c);
    assert_int_equal(c.model->kind, PULSE_ML_CLV_GBDT);
    float row[2] = {15, 3};
    double v = pulse_ml_clv_value_row(&c, row);
    assert_true(fabs(v - pulse_gbdt_predict_row(g, row, 0) * pulse_ml_clv_discount_factor(terms)) < 1e-9);
    assert_true(v > 80);
    row[0] = 2;
    assert_true(pulse_ml_clv_value_row(&c, row) >= 0); /* never below zero */
    pulse_ml_clv_close(&c);
    pulse_ml_model_free(m);
    pulse_gbdt_free(g);
    free(x), free(y);
}

static void test_refuses_damaged_and_foreign(void **state)
{
    (void)state;
    pulse_ml_clv_terms_t terms = {90, 0.01};
    pulse_ml_model_t *m = pulse_ml_clv_pack_bgnbd(&CD, terms);
    unsigned char *bytes;
    size_t len;
    pulse_ml_model_save(m, &bytes, &len);
    pulse_ml_clv_t c;
    char err[256];
    bytes[len / 2] ^= 0x5a;
    assert_int_equal(pulse_ml_clv_open(&c, bytes, len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "checksum"));
    free(bytes);
    /* a negative parameter inside a valid container */
    pulse_ml_clv_bgnbd_t neg = CD;
    neg.bg.a = -1;
    pulse_ml_model_t *mn = pulse_ml_clv_pack_bgnbd(&neg, terms);
    pulse_ml_model_save(mn, &bytes, &len);
    assert_int_equal(pulse_ml_clv_open(&c, bytes, len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not positive"));
    free(bytes);
    pulse_ml_model_free(mn);
    /* a churn container is not a CLV model */
    pulse_ml_model_t *churn = pulse_ml_model_new(PULSE_ML_CHURN_LOGREG);
    pulse_ml_model_save(churn, &bytes, &len);
    assert_int_equal(pulse_ml_clv_open(&c, bytes, len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a lifetime-value model"));
    free(bytes);
    pulse_ml_model_free(churn);
    pulse_ml_model_free(m);
}

static void buy(pulse_txstore_t *st, const char *who, int32_t day, double amount)
{
    pulse_tx_row_t r;
    memset(&r, 0, sizeof(r));
    r.customer = who;
    r.customer_len = strlen(who);
    r.day = day;
    r.amount = amount;
    r.quantity = NAN;
    pulse_txstore_add_transaction(st, &r);
}

static void test_values_a_store(void **state)
{
    (void)state;
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    buy(&st, "a", 100, 50);
    buy(&st, "a", 130, 30);
    buy(&st, "b", 150, 20);
    buy(&st, "c", 120, -5); /* a return only: not valued */
    buy(&st, "d", 199, 10);
    pulse_txstore_finish(&st);
    pulse_ml_clv_terms_t terms = {90, 0.01};
    pulse_ml_model_t *m = pulse_ml_clv_pack_bgnbd(&CD, terms);
    pulse_ml_clv_t c;
    round_trip(m, &c);
    uint32_t *cust;
    double *v;
    size_t n;
    char err[256];
    assert_int_equal(pulse_ml_clv_value_store(&c, &st, &cust, &v, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    /* a: x 1, t_x 30, T 100 (end = day 200), zbar 30 */
    assert_int_equal(cust[0], 0);
    assert_true(fabs(v[0] - pulse_ml_clv_bgnbd_value(&CD, terms, 1, 30, 100, 30)) < 1e-12);
    assert_int_equal(cust[2], 3);
    assert_true(v[2] > 0);
    free(cust), free(v);
    pulse_ml_clv_close(&c);
    pulse_ml_model_free(m);
    pulse_txstore_free(&st);
}

/* A clv_gbdt container values a whole store as it values each row (the batch scorer on two
 * threads against the tree walk), from the same features. */
static void test_gbdt_values_a_store_as_its_rows(void **state)
{
    (void)state;
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    char who[16];
    for (int k = 0; k < 3000; k++) {
        snprintf(who, sizeof(who), "c%d", k);
        for (int j = 0; j <= k % 9; j++)
            buy(&st, who, 10 + (k * 7 + j * 31) % 380, 5 + (k % 13) * 3 + j);
    }
    pulse_txstore_finish(&st);
    size_t n = 500;
    float *x = calloc(2 * n, sizeof(float)), *y = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(i % 10);
        x[n + i] = (float)(i % 400);
        y[i] = x[i] * 20.0f + (x[n + i] < 100 ? 50.0f : 0.0f);
    }
    char *names[] = {"analytics.frequency", "analytics.recency_days"};
    pulse_ml_data_t d = {n, 2, x, y, NULL, names, NULL, NULL};
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    p.objective = PULSE_GBDT_SQUARED;
    p.n_trees = 40;
    p.threads = 1;
    pulse_gbdt_t *g = NULL;
    char err[256];
    assert_int_equal(pulse_gbdt_train(&d, NULL, &p, &g, NULL, err, sizeof(err)), 0);
    pulse_ml_clv_terms_t terms = {90, 0.01};
    pulse_ml_model_t *m = pulse_ml_clv_pack_gbdt(g, names, 2, terms);
    pulse_ml_clv_t c;
    round_trip(m, &c);
    uint32_t *cust;
    double *v;
    size_t nv;
    assert_int_equal(pulse_ml_clv_value_store(&c, &st, &cust, &v, &nv, err, sizeof(err)), 0);
    assert_int_equal(nv, 3000);

    pulse_clvsum_t sum;
    pulse_clvsum_build(&st, &sum);
    pulse_features_opts_t fo;
    memset(&fo, 0, sizeof(fo));
    fo.as_of = sum.end_day;
    pulse_feature_matrix_t fm;
    assert_int_equal(pulse_features_compute(&st, &fo, 0, 0, &fm, err, sizeof(err)), 0);
    long cf = -1, cr = -1;
    for (size_t k = 0; k < fm.n_cols; k++) {
        cf = strcmp(fm.info[k].name, "frequency") == 0 ? (long)k : cf;
        cr = strcmp(fm.info[k].name, "recency_days") == 0 ? (long)k : cr;
    }
    assert_true(cf >= 0 && cr >= 0);
    size_t distinct = 0;
    for (size_t i = 0; i < nv; i++) {
        size_t r = cust[i] - fm.first;
        float row[2] = {fm.x[(size_t)cf * fm.n_rows + r], fm.x[(size_t)cr * fm.n_rows + r]};
        assert_true(v[i] == pulse_ml_clv_value_row(&c, row));
        distinct += i > 0 && v[i] != v[i - 1];
    }
    assert_true(distinct > 100); /* the values differ between customers: the test can fail */
    pulse_features_matrix_free(&fm);
    pulse_clvsum_free(&sum);
    free(cust), free(v);
    pulse_ml_clv_close(&c);
    pulse_ml_model_free(m);
    pulse_gbdt_free(g);
    pulse_txstore_free(&st);
    free(x), free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bgnbd_container_scores_the_formula),
        cmocka_unit_test(test_discount_factor),
        cmocka_unit_test(test_gbdt_container_scores_the_trees),
        cmocka_unit_test(test_refuses_damaged_and_foreign),
        cmocka_unit_test(test_values_a_store),
        cmocka_unit_test(test_gbdt_values_a_store_as_its_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
