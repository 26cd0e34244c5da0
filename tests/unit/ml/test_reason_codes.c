/* Unit tests for src/ml/reason_codes.c: the reasons stored as codes render to exactly the JSON the
 * scoring job wrote from the whole row (text, value, effect, direction), including the "than
 * usual" comparison that reads another feature; without the model they keep effect and direction;
 * malformed codes or codes of another model are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml/reason_codes.h"

static pulse_ml_model_t *model(void)
{
    static char *levels[] = {"Month-to-month", "One year", "Two year"};
    pulse_ml_model_t *m = pulse_ml_model_new(PULSE_ML_CHURN_GBDT);
    pulse_ml_model_add_feature(m, "analytics.recency_days", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "analytics.trend_90", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "Contract", 1, 3, levels);
    pulse_ml_model_add_feature(m, "MonthlyCharges", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "analytics.return_rate", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "analytics.interpurchase_mean", 0, 0, NULL);
    pulse_ml_model_add_feature(m, "analytics.frequency", 0, 0, NULL);
    return m;
}

/* What the scoring job stored before: the JSON array rendered from the whole row. */
static void old_json(pulse_buf_t *b, const pulse_ml_model_t *m, const float *row, const pulse_ml_push_t *rk, size_t nr)
{
    pulse_buf_putc(b, '[');
    for (size_t k = 0; k < nr; k++) {
        if (k > 0)
            pulse_buf_putc(b, ',');
        pulse_ml_reason_json(b, m, row, rk[k].j, rk[k].v);
    }
    pulse_buf_putc(b, ']');
}

static void check_same_as_before(const pulse_ml_model_t *m, const float *row, const double *contrib)
{
    pulse_ml_push_t rk[7];
    size_t nr = pulse_ml_reasons(contrib, m->n_features, rk);
    pulse_buf_t codes = PULSE_BUF_INIT, want = PULSE_BUF_INIT, got = PULSE_BUF_INIT;
    pulse_ml_reason_codes_pack(&codes, m, row, rk, nr);
    old_json(&want, m, row, rk, nr);
    assert_int_equal(pulse_ml_reason_codes_json(&got, m, (const unsigned char *)codes.data, codes.len), 0);
    pulse_buf_putc(&want, '\0');
    pulse_buf_putc(&got, '\0');
    assert_string_equal(got.data, want.data);
    pulse_buf_free(&codes), pulse_buf_free(&want), pulse_buf_free(&got);
}

static void test_codes_render_as_before(void **state)
{
    (void)state;
    pulse_ml_model_t *m = model();
    /* recency compares with the usual gap, which is not among the reasons */
    float row[7] = {140, -0.75f, 0, 95.5f, 0.13f, 45, 1};
    double contrib[7] = {0.81234567891, 0.4, -0.3, 0.00004, -0.2, 0, 0.123456789};
    check_same_as_before(m, row, contrib);
    /* missing values, a category, effects that round at the fourth decimal */
    float row2[7] = {NAN, 0.2f, 2, NAN, 0.5f, NAN, 3};
    double contrib2[7] = {0.33335, -0.66665, 1.5, -0.0001, 0.25, -0.125, 2};
    check_same_as_before(m, row2, contrib2);
    /* nothing pushes: an empty list */
    double zero[7] = {0};
    check_same_as_before(m, row, zero);
    pulse_ml_model_free(m);
}

static void test_codes_are_small(void **state)
{
    (void)state;
    pulse_ml_model_t *m = model();
    float row[7] = {140, -0.75f, 0, 95.5f, 0.13f, 45, 1};
    double contrib[7] = {0.8, 0.4, -0.3, 0.2, -0.2, -0.1, 0.1};
    pulse_ml_push_t rk[7];
    size_t nr = pulse_ml_reasons(contrib, 7, rk);
    pulse_buf_t codes = PULSE_BUF_INIT;
    pulse_ml_reason_codes_pack(&codes, m, row, rk, nr);
    assert_int_equal(nr, 6);
    assert_int_equal(codes.len, 3 + 6 * 14 + 6); /* six reasons and the usual gap recency compares with */
    pulse_buf_free(&codes);
    pulse_ml_model_free(m);
}

static void test_without_model(void **state)
{
    (void)state;
    pulse_ml_model_t *m = model();
    float row[7] = {140, -0.75f, 0, 95.5f, 0.13f, 45, 1};
    double contrib[7] = {0.5, 0, -0.25, 0, 0, 0, 0};
    pulse_ml_push_t rk[7];
    size_t nr = pulse_ml_reasons(contrib, 7, rk);
    pulse_buf_t codes = PULSE_BUF_INIT, got = PULSE_BUF_INIT;
    pulse_ml_reason_codes_pack(&codes, m, row, rk, nr);
    assert_int_equal(pulse_ml_reason_codes_json(&got, NULL, (const unsigned char *)codes.data, codes.len), 0);
    pulse_buf_putc(&got, '\0');
    assert_string_equal(got.data, "[{\"feature\":null,\"value\":null,\"effect\":0.5000,\"direction\":\"raises\",\"text\":null},"
                                  "{\"feature\":null,\"value\":null,\"effect\":-0.2500,\"direction\":\"lowers\",\"text\":null}]");
    pulse_buf_free(&codes), pulse_buf_free(&got);
    pulse_ml_model_free(m);
}

/* Feature indexes are stored in 16 bits: in a model wider than that, a reason past them is left out,
 * never stored as (and worded as) another feature's. */
static void test_wide_model_leaves_out_what_it_cannot_code(void **state)
{
    (void)state;
    const size_t nf = 70000;
    pulse_ml_model_t *m = pulse_ml_model_new(PULSE_ML_CHURN_GBDT);
    char name[32];
    for (size_t j = 0; j < nf; j++) {
        snprintf(name, sizeof(name), "f%zu", j);
        pulse_ml_model_add_feature(m, name, 0, 0, NULL);
    }
    float *row = calloc(nf, sizeof(float));
    row[3] = 7, row[65536 + 4] = 9;
    pulse_ml_push_t rk[2] = {{.j = 65536 + 4, .v = 0.9}, {.j = 3, .v = 0.5}};
    pulse_buf_t codes = PULSE_BUF_INIT, got = PULSE_BUF_INIT;
    pulse_ml_reason_codes_pack(&codes, m, row, rk, 2);
    assert_int_equal(pulse_ml_reason_codes_json(&got, m, (const unsigned char *)codes.data, codes.len), 0);
    pulse_buf_putc(&got, '\0');
    assert_non_null(strstr(got.data, "\"feature\":\"f3\""));
    assert_null(strstr(got.data, "\"feature\":\"f4\"")); /* 65540 wrapped to 4 */
    assert_null(strstr(got.data, "0.9000"));
    pulse_buf_free(&codes), pulse_buf_free(&got);
    free(row);
    pulse_ml_model_free(m);
}

/* A categorical value read back from storage out of the levels' range (or far past int's) words as
 * "another value" and is not shown as a level. */
static void test_categorical_out_of_range(void **state)
{
    (void)state;
    pulse_ml_model_t *m = model();
    float values[] = {3, -1, 2.86e28f, -2.86e28f};
    for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
        float row[7] = {140, -0.75f, values[v], 95.5f, 0.13f, 45, 1};
        pulse_ml_push_t rk[1] = {{.j = 2, .v = 0.6}};
        pulse_buf_t codes = PULSE_BUF_INIT, got = PULSE_BUF_INIT;
        pulse_ml_reason_codes_pack(&codes, m, row, rk, 1);
        assert_int_equal(pulse_ml_reason_codes_json(&got, m, (const unsigned char *)codes.data, codes.len), 0);
        pulse_buf_putc(&got, '\0');
        assert_non_null(strstr(got.data, "Contract: another value"));
        assert_null(strstr(got.data, "Two year"));
        pulse_buf_free(&codes), pulse_buf_free(&got);
    }
    pulse_ml_model_free(m);
}

static void test_bad_codes_refused(void **state)
{
    (void)state;
    pulse_ml_model_t *m = model();
    float row[7] = {140, -0.75f, 0, 95.5f, 0.13f, 45, 1};
    double contrib[7] = {0, 0, 0, 0, 0, 0, 0.5};
    pulse_ml_push_t rk[7];
    size_t nr = pulse_ml_reasons(contrib, 7, rk);
    pulse_buf_t codes = PULSE_BUF_INIT, got = PULSE_BUF_INIT;
    pulse_ml_reason_codes_pack(&codes, m, row, rk, nr);
    const unsigned char *c = (const unsigned char *)codes.data;
    for (size_t cut = 0; cut < codes.len; cut++) /* truncated */
        assert_int_equal(pulse_ml_reason_codes_json(&got, m, c, cut), -1);
    assert_int_equal(got.len, 0);
    pulse_ml_model_t *small = pulse_ml_model_new(PULSE_ML_CHURN_GBDT); /* another model: feature 6 unknown */
    pulse_ml_model_add_feature(small, "analytics.recency_days", 0, 0, NULL);
    assert_int_equal(pulse_ml_reason_codes_json(&got, small, c, codes.len), -1);
    unsigned char bad[64];
    memcpy(bad, c, codes.len);
    bad[0] = 9; /* an unknown version */
    assert_int_equal(pulse_ml_reason_codes_json(&got, m, bad, codes.len), -1);
    assert_int_equal(got.len, 0);
    pulse_ml_model_free(small);
    pulse_buf_free(&codes), pulse_buf_free(&got);
    pulse_ml_model_free(m);
}

static int by_strength(const void *a, const void *b)
{
    const pulse_ml_push_t *x = a, *y = b;
    double ax = fabs(x->v), ay = fabs(y->v);
    if (ax != ay)
        return ax < ay ? 1 : -1;
    return (x->j > y->j) - (x->j < y->j);
}

/* The reasons as pulse_ml_reasons chose them before it selected without sorting: every push
 * sorted, then walked for up to three of each side, negligible ones skipped. */
static size_t reasons_by_sorting(const double *contrib, size_t n, pulse_ml_push_t *out)
{
    for (size_t j = 0; j < n; j++)
        out[j] = (pulse_ml_push_t){contrib[j], j};
    qsort(out, n, sizeof(*out), by_strength);
    size_t k = 0;
    int up = 0, down = 0;
    for (size_t i = 0; i < n; i++) {
        double v = out[i].v;
        if (fabs(v) < 1e-6 || (v > 0 && up >= 3) || (v < 0 && down >= 3))
            continue;
        v > 0 ? up++ : down++;
        out[k++] = out[i];
    }
    return k;
}

static void test_reasons_as_sorting_chose(void **state)
{
    (void)state;
    unsigned seed = 7;
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (size_t)(rand_r(&seed) % 40);
        double c[40];
        for (size_t j = 0; j < n; j++) /* few distinct magnitudes: many ties, some negligible */
            c[j] = ((int)(rand_r(&seed) % 9) - 4) * (rand_r(&seed) % 4 == 0 ? 1e-7 : 0.25);
        pulse_ml_push_t got[40], want[40];
        size_t ng = pulse_ml_reasons(c, n, got), nw = reasons_by_sorting(c, n, want);
        assert_int_equal(ng, nw);
        for (size_t k = 0; k < ng; k++) {
            assert_int_equal(got[k].j, want[k].j);
            assert_true(got[k].v == want[k].v);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_render_as_before),
        cmocka_unit_test(test_codes_are_small),
        cmocka_unit_test(test_without_model),
        cmocka_unit_test(test_wide_model_leaves_out_what_it_cannot_code),
        cmocka_unit_test(test_categorical_out_of_range),
        cmocka_unit_test(test_bad_codes_refused),
        cmocka_unit_test(test_reasons_as_sorting_chose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
