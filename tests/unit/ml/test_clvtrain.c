/* Unit tests for src/ml/clvtrain.c: on customers drawn from a BG/NBD-like process both candidates
 * are measured on the same held-out customers, the lower MAE is chosen and packed, BG/NBD's
 * predicted holdout purchases match the actual ones in total; the frequency table on a hand-made
 * set; refusals of too little history and too few customers with their figures; determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml/clvtrain.h"

#define DAY0 10000 /* 1997-05-19 */
#define SPAN 450

static uint64_t rng_state;

static double uniform(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
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

/* n customers joining over the first 200 days, buying at a personal rate (exponential, mean one
 * purchase a month) until they drop out (after each purchase, with a personal probability drawn
 * from Beta(1, 4)), each with a personal mean spend. */
static void synth(pulse_txstore_t *st, size_t n, uint64_t seed)
{
    rng_state = seed;
    pulse_txstore_init(st);
    for (size_t i = 0; i < n; i++) {
        char who[32];
        snprintf(who, sizeof(who), "c%zu", i);
        double rate = -log(uniform()) / 30.0, mean_spend = 20 + 60 * uniform(), drop = 1 - pow(uniform(), 0.25);
        double t = floor(200 * uniform());
        /* make sure every customer exists even with a near-zero rate */
        buy(st, who, DAY0 + (int32_t)t, mean_spend);
        for (;;) {
            if (uniform() < drop)
                break;
            t += -log(uniform()) / rate;
            if (t >= SPAN)
                break;
            buy(st, who, DAY0 + (int32_t)t, mean_spend * (0.5 + uniform()));
        }
    }
    pulse_txstore_finish(st);
}

static pulse_txstore_t store;

static int setup(void **state)
{
    (void)state;
    synth(&store, 1200, 7);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pulse_txstore_free(&store);
    return 0;
}

static void test_both_candidates_on_the_same_customers(void **state)
{
    (void)state;
    pulse_ml_clv_options_t o;
    pulse_ml_clv_options_init(&o);
    o.threads = 1;
    pulse_ml_clv_result_t r;
    char err[512];
    assert_int_equal(pulse_ml_clv_train(&store, &o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.cutoff, DAY0 + SPAN - 90 - (SPAN - (store.tx_max_day + 1 - DAY0)));
    if (!(r.bgnbd.trained && r.gbdt.trained))
        fail_msg("bgnbd: %s; trees: %s", r.bgnbd.error, r.gbdt.error);
    assert_true(r.n_test > 0.2 * r.n_customers && r.n_test < 0.3 * r.n_customers);
    size_t in_table = 0;
    double bg_pred = 0, actual = 0;
    for (size_t g = 0; g < PULSE_ML_CLV_FREQ_GROUPS; g++) {
        in_table += r.freq[g].n;
        if (r.freq[g].n) {
            bg_pred += r.freq[g].pred_purchases * r.freq[g].n;
            actual += r.freq[g].actual_purchases * r.freq[g].n;
        }
    }
    assert_int_equal(in_table, r.n_test);
    /* the data follows BG/NBD's story: its holdout purchases are right in total */
    assert_true(fabs(bg_pred - actual) < 0.25 * actual);
    for (int k = 0; k < 2; k++) {
        const pulse_ml_clv_candidate_t *c = k ? &r.gbdt : &r.bgnbd;
        assert_true(c->mae > 0 && c->rmse >= c->mae);
    }
    assert_int_equal(r.chosen_gbdt, r.gbdt.mae < r.bgnbd.mae);
    assert_int_equal(r.model->kind, r.chosen_gbdt ? PULSE_ML_CLV_GBDT : PULSE_ML_CLV_BGNBD);
    assert_non_null(strstr(r.model->meta, "\"frequency_table\":[{\"repeat_purchases\":\"0\""));
    assert_non_null(strstr(r.model->meta, "\"7+\""));
    assert_true(r.n_full >= r.n_customers);
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_ml_clv_metrics_json(&r, &b);
    char want[64];
    snprintf(want, sizeof(want), "{\"mae\":%.6g,", r.chosen_gbdt ? r.gbdt.mae : r.bgnbd.mae);
    assert_non_null(strstr(b.data, want));
    pulse_buf_free(&b);
    printf("synthetic 1200: bgnbd mae %.3f rmse %.3f, clv_gbdt mae %.3f rmse %.3f, mean actual %.3f, chosen %s\n", r.bgnbd.mae,
           r.bgnbd.rmse, r.gbdt.mae, r.gbdt.rmse, r.mean_actual, r.chosen_gbdt ? "clv_gbdt" : "bgnbd");

    /* the same seed, the same answer */
    pulse_ml_clv_result_t again;
    assert_int_equal(pulse_ml_clv_train(&store, &o, &again, err, sizeof(err)), 0);
    assert_true(again.bgnbd.mae == r.bgnbd.mae && again.gbdt.mae == r.gbdt.mae);
    pulse_ml_clv_result_free(&again);
    pulse_ml_clv_result_free(&r);
}

static void test_refusals_say_how_much(void **state)
{
    (void)state;
    pulse_ml_clv_options_t o;
    pulse_ml_clv_options_init(&o);
    o.threads = 1;
    pulse_ml_clv_result_t r;
    char err[512];
    o.terms.horizon = 400;
    assert_int_equal(pulse_ml_clv_train(&store, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not enough history"));
    assert_non_null(strstr(err, "at least 490 days"));
    o.terms.horizon = 90;
    o.min_customers = 5000;
    assert_int_equal(pulse_ml_clv_train(&store, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at least 5000 customers"));
    o.min_customers = 50;
    o.terms.discount = 1.5;
    assert_int_equal(pulse_ml_clv_train(&store, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "discount"));
    pulse_txstore_t empty;
    pulse_txstore_init(&empty);
    pulse_txstore_finish(&empty);
    o.terms.discount = 0.01;
    assert_int_equal(pulse_ml_clv_train(&empty, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "import a transactions file"));
    pulse_txstore_free(&empty);
}

static void test_frequency_table_by_hand(void **state)
{
    (void)state;
    const double x[] = {0, 0, 1, 7, 12, 3};
    const double pp[] = {0.2, 0.4, 1, 3, 5, 2}, ap[] = {0, 1, 1, 2, 6, 2};
    const double sb[] = {10, 20, 30, 100, 200, 50}, sg[] = {5, 15, 40, 90, 210, 60}, as[] = {0, 30, 25, 80, 300, 55};
    pulse_ml_clv_freq_t t[PULSE_ML_CLV_FREQ_GROUPS];
    pulse_ml_clv_freq_table(x, pp, ap, sb, sg, as, 6, t);
    assert_int_equal(t[0].n, 2);
    assert_true(fabs(t[0].pred_purchases - 0.3) < 1e-12 && t[0].actual_purchases == 0.5);
    assert_true(t[0].pred_spend_bgnbd == 15 && t[0].pred_spend_gbdt == 10 && t[0].actual_spend == 15);
    assert_int_equal(t[1].n, 1);
    assert_int_equal(t[2].n, 0);
    assert_true(isnan(t[2].actual_spend)); /* an empty group has no mean */
    assert_int_equal(t[3].n, 1);
    assert_int_equal(t[7].n, 2); /* 7 and 12 */
    assert_true(t[7].pred_purchases == 4 && t[7].actual_purchases == 4 && t[7].actual_spend == 190);
    pulse_ml_clv_freq_table(x, pp, ap, sb, NULL, as, 6, t);
    assert_true(isnan(t[0].pred_spend_gbdt));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_candidates_on_the_same_customers),
        cmocka_unit_test(test_refusals_say_how_much),
        cmocka_unit_test(test_frequency_table_by_hand),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
