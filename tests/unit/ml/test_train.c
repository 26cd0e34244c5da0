/* Unit tests for src/ml/train.c: requirements refused with counts, a synthetic table trained end
 * to end (both models when built in), determinism for a seed, the container and the JSON keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/rng.h"
#include "ml/churn.h"
#include "ml/train.h"

/* n rows: tenure, charges (5% blank), a 3-level contract and a 2-level gender that means nothing. */
static pulse_ml_table_t *synthetic(size_t n, uint64_t seed, int only_class)
{
    static const char *contracts[3] = {"Month-to-month", "One year", "Two year"};
    static const char *genders[2] = {"Female", "Male"};
    double *tenure = malloc(n * sizeof(double)), *charges = malloc(n * sizeof(double)), *churn = malloc(n * sizeof(double));
    const char **contract = malloc(n * sizeof(char *)), **gender = malloc(n * sizeof(char *));
    pulse_rng_t r;
    pulse_rng_seed(&r, seed, 9, 0);
    for (size_t i = 0; i < n; i++) {
        int c = (int)pulse_rng_below(&r, 3);
        tenure[i] = floor(pulse_rng_uniform(&r) * 72);
        charges[i] = pulse_rng_uniform(&r) < 0.05 ? NAN : 20 + 90 * pulse_rng_uniform(&r);
        contract[i] = contracts[c];
        gender[i] = genders[pulse_rng_below(&r, 2)];
        double t = 0.5 - 0.05 * tenure[i] + (isnan(charges[i]) ? 0 : 0.02 * (charges[i] - 60)) - 1.2 * c;
        churn[i] = only_class >= 0 ? only_class : pulse_rng_uniform(&r) < 1 / (1 + exp(-t));
    }
    pulse_ml_column_t cols[5] = {{"tenure", tenure, NULL},
                                 {"MonthlyCharges", charges, NULL},
                                 {"Contract", NULL, contract},
                                 {"gender", NULL, gender},
                                 {"Churn", churn, NULL}};
    pulse_ml_table_options_t o = {"Churn", NULL};
    pulse_ml_table_t *t;
    char err[256];
    if (pulse_ml_table_from_columns(cols, 5, n, &o, &t, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    free(tenure), free(charges), free(churn), free(contract), free(gender);
    return t;
}

static void test_requirements(void **state)
{
    (void)state;
    pulse_ml_train_result_t r;
    char err[256];
    pulse_ml_table_t *t = synthetic(30, 1, -1);
    assert_int_equal(pulse_ml_train_churn(t, NULL, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at least 50"));
    assert_non_null(strstr(err, "there are 30"));
    pulse_ml_table_free(t);
    t = synthetic(200, 1, 0);
    assert_int_equal(pulse_ml_train_churn(t, NULL, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "single class"));
    pulse_ml_table_free(t);
    t = synthetic(200, 1, -1);
    for (size_t i = 0, pos = 0; i < t->data.n_rows; i++) /* keep 5 churned rows */
        if (t->data.y[i] == 1 && ++pos > 5)
            t->data.y[i] = 0;
    assert_int_equal(pulse_ml_train_churn(t, NULL, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at least 10 churned"));
    pulse_ml_table_free(t);
    /* the smallest table accepted trains (too few validation rows to calibrate: left as is) */
    t = synthetic(60, 3, -1);
    if (pulse_ml_train_churn(t, NULL, &r, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_true(r.n_cand >= 1);
    pulse_ml_train_result_free(&r);
    pulse_ml_table_free(t);
}

/* Stops before the candidate named in ud, counting the candidates asked about. */
typedef struct stop_at_t {
    const char *name;
    int asked;
} stop_at_t;

static int stop_at(void *ud, const char *candidate)
{
    stop_at_t *s = ud;
    s->asked++;
    return strcmp(candidate, s->name) == 0;
}

/* The job's hook between candidates: asked before each, and a stop ends the training with 1 and
 * nothing to free; never stopping changes nothing. */
static void test_interrupt(void **state)
{
    (void)state;
    pulse_ml_table_t *t = synthetic(400, 5, -1);
    pulse_ml_train_options_t o;
    pulse_ml_train_options_init(&o);
    pulse_ml_train_result_t r;
    char err[256] = "";
    stop_at_t s = {"logreg", 0};
    o.interrupt = stop_at;
    o.interrupt_ud = &s;
    assert_int_equal(pulse_ml_train_churn(t, &o, &r, err, sizeof(err)), 1);
    assert_int_equal(s.asked, 1);
    assert_null(r.model);
    assert_int_equal(r.n_cand, 0);
    if (pulse_ml_train_have_gbdt()) {
        s = (stop_at_t){"blend", 0};
        assert_int_equal(pulse_ml_train_churn(t, &o, &r, err, sizeof(err)), 1);
        assert_int_equal(s.asked, 3);
        assert_null(r.model);
    }
    s = (stop_at_t){"none", 0};
    if (pulse_ml_train_churn(t, &o, &r, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(s.asked, (int)r.n_cand);
    assert_non_null(r.model);
    pulse_ml_train_result_free(&r);
    pulse_ml_table_free(t);
}

static void test_end_to_end(void **state)
{
    (void)state;
    pulse_ml_table_t *t = synthetic(3000, 2, -1);
    pulse_ml_train_options_t o;
    pulse_ml_train_options_init(&o);
    o.seed = 5;
    pulse_ml_train_result_t r, r2;
    char err[256];
    if (pulse_ml_train_churn(t, &o, &r, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(r.n_train + r.n_valid + r.n_test, 3000);
    assert_int_equal(r.n_test, 600);
    assert_int_equal(r.n_cand, (size_t)(1 + 2 * pulse_ml_train_have_gbdt())); /* logreg, gbdt, blend */
    for (size_t k = 0; k < r.n_cand; k++) {
        assert_true(r.cand[k].trained);
        assert_true(r.cand[k].test.roc_auc > 0.75);
        assert_true(r.cand[k].valid_auc > 0.75);
        double s = 0;
        for (size_t j = 0; j < r.n_features; j++)
            s += r.cand[k].importance[j];
        assert_float_equal(s, 1.0, 1e-9);
    }
    /* gender means nothing: it ranks below tenure */
    assert_true(r.cand[0].importance[3] < r.cand[0].importance[0]);

    pulse_buf_t js = PULSE_BUF_INIT;
    pulse_ml_train_json(&r, &js);
    static const char *keys[] = {"\"roc_auc\":",   "\"pr_auc\":",     "\"log_loss\":",
                                 "\"brier\":",     "\"accuracy\":",   "\"precision\":",
                                 "\"recall\":",    "\"f1\":",         "\"threshold\":",
                                 "\"confusion\":", "\"deciles\":",    "\"calibration_curve\":",
                                 "\"chosen\":",    "\"importance\":", NULL};
    for (int i = 0; keys[i]; i++)
        if (strstr(js.data, keys[i]) == NULL)
            fail_msg("JSON lacks %s", keys[i]);
    assert_null(strstr(js.data, "nan"));

    /* the container loads back with the features, levels, calibration and report */
    unsigned char *bytes;
    size_t len;
    pulse_ml_model_save(r.model, &bytes, &len);
    pulse_ml_model_t *m = pulse_ml_model_load(bytes, len, err, sizeof(err));
    if (m == NULL)
        fail_msg("%s", err);
    assert_int_equal(m->n_features, 4);
    assert_string_equal(m->features[2].levels[0], "Month-to-month");
    assert_int_equal(m->calibration.kind, r.cand[r.chosen].calibration.kind);
    assert_non_null(m->meta);
    assert_string_equal(m->meta, js.data);
    pulse_ml_model_free(m);

    /* same seed, same everything except the timings */
    if (pulse_ml_train_churn(t, &o, &r2, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    for (size_t k = 0; k < r.n_cand; k++) {
        assert_int_equal(r.cand[k].payload_len, r2.cand[k].payload_len);
        assert_memory_equal(r.cand[k].payload, r2.cand[k].payload, r.cand[k].payload_len);
        assert_true(r.cand[k].test.roc_auc == r2.cand[k].test.roc_auc);
        assert_true(r.cand[k].test.log_loss == r2.cand[k].test.log_loss);
    }
    assert_int_equal(r.chosen, r2.chosen);
    free(bytes);
    pulse_buf_free(&js);
    pulse_ml_train_result_free(&r);
    pulse_ml_train_result_free(&r2);
    pulse_ml_table_free(t);
}

/* Opens a candidate's payload as a churn model with the table's features. */
static int open_candidate(const pulse_ml_table_t *t, const pulse_ml_candidate_t *c, pulse_ml_churn_t *out, char *err, size_t errlen)
{
    pulse_ml_model_t *m = pulse_ml_model_new(c->kind);
    for (size_t j = 0; j < t->data.n_cols; j++) {
        int cat = t->data.categorical && t->data.categorical[j];
        pulse_ml_model_add_feature(m, t->data.names[j], cat, cat ? t->data.n_categories[j] : 0, cat ? t->levels[j] : NULL);
    }
    pulse_ml_model_set_payload(m, c->payload, c->payload_len);
    unsigned char *bytes;
    size_t len;
    pulse_ml_model_save(m, &bytes, &len);
    pulse_ml_model_free(m);
    int rc = pulse_ml_churn_open(out, bytes, len, err, errlen);
    free(bytes);
    return rc;
}

/* The blend scores sigmoid(w logit(p_logreg) + (1 - w) margin_trees), row by row and in batch, and
 * its pushes add up to that log-odds; a damaged blend payload is refused. */
static void test_blend(void **state)
{
    (void)state;
    if (!pulse_ml_train_have_gbdt())
        skip();
    pulse_ml_table_t *t = synthetic(2000, 9, -1);
    pulse_ml_train_result_t r;
    char err[256];
    if (pulse_ml_train_churn(t, NULL, &r, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    const pulse_ml_candidate_t *b = &r.cand[2];
    assert_string_equal(b->name, "blend");
    assert_true(b->blend_logreg_weight > 0 && b->blend_logreg_weight < 1);
    pulse_ml_churn_t lr, gb, bl;
    if (open_candidate(t, &r.cand[0], &lr, err, sizeof(err)) != 0 || open_candidate(t, &r.cand[1], &gb, err, sizeof(err)) != 0 ||
        open_candidate(t, b, &bl, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_float_equal(bl.logreg_weight, b->blend_logreg_weight, 0);
    size_t nf = t->data.n_cols, n = t->data.n_rows;
    double *batch = malloc(n * sizeof(double)), *contrib = malloc((nf + 1) * sizeof(double));
    float *row = malloc(nf * sizeof(float));
    pulse_ml_churn_predict(&bl, &t->data, batch, 2);
    double w = b->blend_logreg_weight;
    for (size_t i = 0; i < n; i += 97) {
        for (size_t j = 0; j < nf; j++)
            row[j] = pulse_ml_at(&t->data, i, j);
        double p_lr = pulse_ml_churn_predict_row(&lr, row), p_gb = pulse_ml_churn_predict_row(&gb, row);
        double z = w * log(p_lr / (1 - p_lr)) + (1 - w) * log(p_gb / (1 - p_gb));
        double p = pulse_ml_churn_predict_row(&bl, row);
        assert_float_equal(p, 1 / (1 + exp(-z)), 1e-9);
        assert_float_equal(batch[i], p, 1e-9);
        pulse_ml_churn_contributions(&bl, row, contrib);
        double sum = 0;
        for (size_t j = 0; j <= nf; j++)
            sum += contrib[j];
        assert_float_equal(sum, z, 1e-6);
    }
    /* PULSE_FUZZ_SEED_DIR=tests/fuzz/corpus/model: leave a small blend for the fuzz target */
    const char *dir = getenv("PULSE_FUZZ_SEED_DIR");
    if (dir != NULL) {
        pulse_ml_table_t *small = synthetic(120, 3, -1);
        pulse_ml_train_result_t rs;
        if (pulse_ml_train_churn(small, NULL, &rs, err, sizeof(err)) != 0)
            fail_msg("%s", err);
        pulse_ml_model_t *m = pulse_ml_model_new(PULSE_ML_CHURN_BLEND);
        for (size_t j = 0; j < small->data.n_cols; j++) {
            int cat = small->data.categorical && small->data.categorical[j];
            pulse_ml_model_add_feature(m, small->data.names[j], cat, cat ? small->data.n_categories[j] : 0,
                                       cat ? small->levels[j] : NULL);
        }
        pulse_ml_model_set_payload(m, rs.cand[2].payload, rs.cand[2].payload_len);
        unsigned char *bytes;
        size_t len;
        pulse_ml_model_save(m, &bytes, &len);
        char path[4096];
        snprintf(path, sizeof(path), "%s/blend.pmdl", dir);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, len, f), len);
        fclose(f);
        free(bytes);
        pulse_ml_model_free(m);
        pulse_ml_train_result_free(&rs);
        pulse_ml_table_free(small);
    }
    /* a truncated or altered payload is an error, never a crash */
    pulse_ml_candidate_t bad = *b;
    for (size_t cut = 0; cut < b->payload_len; cut += 1 + cut / 3) {
        bad.payload_len = cut;
        pulse_ml_churn_t c;
        assert_int_equal(open_candidate(t, &bad, &c, err, sizeof(err)), -1);
    }
    free(batch);
    free(contrib);
    free(row);
    pulse_ml_churn_close(&lr);
    pulse_ml_churn_close(&gb);
    pulse_ml_churn_close(&bl);
    pulse_ml_train_result_free(&r);
    pulse_ml_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requirements),
        cmocka_unit_test(test_blend),
        cmocka_unit_test(test_interrupt),
        cmocka_unit_test(test_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
