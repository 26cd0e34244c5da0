/* Unit tests for src/analytics/segment.c: a hand-made store and lookup table through the whole
 * pipeline; every boundary (churn bands, signals above/below, trend thresholds, score clamping);
 * customers without a purchase; and the rule reaching the pipeline only as a table (no Lua call
 * per customer: this test links no Lua state at all); the thread count changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/segment.h"

static void add_tx(pulse_txstore_t *st, const char *c, int32_t day, double amount)
{
    pulse_tx_row_t r;
    memset(&r, 0, sizeof(r));
    r.customer = c;
    r.customer_len = strlen(c);
    r.day = day;
    r.amount = amount;
    r.quantity = NAN;
    pulse_txstore_add_transaction(st, &r);
}

static void add_ev(pulse_txstore_t *st, const char *c, int32_t day, const char *type)
{
    pulse_txstore_add_event(st, c, strlen(c), day, type, strlen(type), 1.0, NAN);
}

/* Segment index = band + 1 (names "none", "low", "medium", "high"); score = key / 5. */
static void band_table(pulse_segment_table_t *t)
{
    memset(t, 0, sizeof(*t));
    static const char *names[] = {"none", "low", "medium", "high"};
    for (size_t i = 0; i < 4; i++)
        t->names[i] = names[i];
    t->nnames = 4;
    for (unsigned k = 0; k < PULSE_SEGMENT_KEYS; k++) {
        t->segment[k] = (uint8_t)(k / 125 + 1);
        t->score[k] = (float)k / 5.0f;
    }
    t->churn_medium = 0.4;
    t->churn_high = 0.7;
}

static void test_bands(void **state)
{
    (void)state;
    pulse_segment_table_t t;
    band_table(&t);
    assert_int_equal(pulse_segment_band(&t, NAN), 0);
    assert_int_equal(pulse_segment_band(&t, 0.0), 1);
    assert_int_equal(pulse_segment_band(&t, 0.3999), 1);
    assert_int_equal(pulse_segment_band(&t, 0.4), 2);
    assert_int_equal(pulse_segment_band(&t, 0.6999), 2);
    assert_int_equal(pulse_segment_band(&t, 0.7), 3);
    assert_int_equal(pulse_segment_band(&t, 1.0), 3);
    assert_null(pulse_segment_band_name(0));
    assert_string_equal(pulse_segment_band_name(2), "medium");
    assert_int_equal(pulse_segment_key(0, 1, 1, 1), 0);
    assert_int_equal(pulse_segment_key(3, 5, 5, 5), 499);
    assert_int_equal(pulse_segment_key(1, 2, 3, 4), 125 + 25 + 10 + 3);
}

static void test_score_clamp(void **state)
{
    (void)state;
    pulse_score_term_t terms[] = {{"a", 0, 1, 2}, {"b", 0, 1, -1}};
    double x1[] = {10, NAN};
    assert_float_equal(pulse_segment_behaviour_score(terms, 2, x1), 50 + 50 * 2.0 / 3.0, 1e-9);
    double x2[] = {10, -10};
    assert_float_equal(pulse_segment_behaviour_score(terms, 2, x2), 100, 1e-9);
    double x3[] = {-10, 10};
    assert_float_equal(pulse_segment_behaviour_score(terms, 2, x3), 0, 1e-9);
    double x4[] = {0.5, 0};
    assert_float_equal(pulse_segment_behaviour_score(terms, 2, x4), 50 + 50 * 1.0 / 3.0, 1e-9);
    double x5[] = {1, -1}; /* exactly at the clamp */
    assert_float_equal(pulse_segment_behaviour_score(terms, 2, x5), 100, 1e-9);
    double x6[] = {NAN, NAN};
    assert_float_equal(pulse_segment_behaviour_score(terms, 2, x6), 50, 1e-9);
    assert_float_equal(pulse_segment_behaviour_score(NULL, 0, NULL), 50, 1e-9);
}

static void test_messages(void **state)
{
    (void)state;
    char out[200];
    pulse_segment_format_value(3.6, "count", out, sizeof(out));
    assert_string_equal(out, "4");
    pulse_segment_format_value(45.2, "days", out, sizeof(out));
    assert_string_equal(out, "45");
    pulse_segment_format_value(0.354, "ratio", out, sizeof(out));
    assert_string_equal(out, "35%");
    pulse_segment_format_value(-1.234, "per week", out, sizeof(out));
    assert_string_equal(out, "-1.23");
    pulse_segment_format_value(-0.001, "ratio", out, sizeof(out));
    assert_string_equal(out, "0%");
    pulse_signal_t s = {"r", "return_rate", 0, 0.3, "returns {value} of purchases (over {threshold}) {x}", NULL};
    pulse_segment_signal_message(&s, 0.5, "ratio", out, sizeof(out));
    assert_string_equal(out, "returns 50% of purchases (over 30%) {x}");
    char small[8];
    pulse_segment_signal_message(&s, 0.5, "ratio", small, sizeof(small));
    assert_string_equal(small, "returns");
    pulse_signal_t drop = {"d", "trend_90", 0, -0.5, "fell by {abs} (value {value})", NULL};
    pulse_segment_signal_message(&drop, -0.75, "ratio", out, sizeof(out));
    assert_string_equal(out, "fell by 75% (value -75%)");
}

/* Customers: a (2 purchase days), b (1), c (3), d (events only), e (a return only). */
static void build(pulse_txstore_t *st)
{
    pulse_txstore_init(st);
    add_tx(st, "a", 100, 10);
    add_tx(st, "a", 110, 20);
    add_tx(st, "b", 190, 100);
    add_tx(st, "c", 150, 5);
    add_tx(st, "c", 160, 5);
    add_tx(st, "c", 170, 5);
    add_ev(st, "d", 180, "cart_abandoned");
    add_ev(st, "d", 185, "cart_abandoned");
    add_ev(st, "d", 190, "cart_abandoned");
    add_ev(st, "c", 190, "cart_abandoned");
    add_tx(st, "e", 120, -30);
    pulse_txstore_finish(st);
}

static void test_pipeline(void **state)
{
    (void)state;
    pulse_txstore_t st;
    build(&st);
    pulse_segment_table_t t;
    band_table(&t);
    pulse_agg_spec_t aggs[] = {{"carts_30d", "cart_abandoned", PULSE_AGG_COUNT, PULSE_AGG_VALUE, 30}};
    pulse_score_term_t terms[] = {{"frequency", 2, 1, 1}};
    pulse_signal_t sigs[] = {
        {"many_days", "frequency", 0, 2, "{value} days", "Reward them."},
        {"recent", "recency_days", 1, 10, "bought {value} days ago", NULL},
        {"carts", "carts_30d", 0, 2, "{value} carts", "Remind them."},
    };
    pulse_behaviour_t bh = {aggs, 1, terms, 1, "frequency", 3, 1, sigs, 3};
    float churn[5] = {0.7f, NAN, 0.4f, 0.9f, 0.1f};
    pulse_segment_opts_t o;
    memset(&o, 0, sizeof(o));
    o.as_of = 200;
    o.table = &t;
    o.behaviour = &bh;
    o.churn = churn;
    o.keep_features = 1;
    pulse_segment_result_t r;
    char err[256];
    assert_int_equal(pulse_segment_run(&st, &o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.ncols, PULSE_FEAT_COUNT + 1);
    assert_string_equal(r.info[PULSE_FEAT_COUNT].name, "carts_30d");
    /* a: recency 90, frequency 2; b: recency 10; c: recency 30, frequency 3 */
    assert_float_equal(r.recency[0], 90, 1e-6);
    assert_float_equal(r.recency[1], 10, 1e-6);
    assert_float_equal(r.frequency[2], 3, 1e-6);
    assert_true(isnan(r.recency[3]));
    /* bands from the churn array, segments by lookup */
    assert_int_equal(r.band[0], 3);
    assert_int_equal(r.band[1], 0);
    assert_int_equal(r.band[2], 2);
    for (uint32_t i = 0; i < r.n; i++) {
        if (isnan(r.recency[i])) {
            assert_int_equal(r.segment[i], 0);
            assert_int_equal(r.r[i], 0);
            assert_true(isnan(r.segment_score[i]));
            continue;
        }
        unsigned key = pulse_segment_key(r.band[i], r.r[i], r.f[i], r.m[i]);
        assert_int_equal(r.segment[i], t.segment[key]);
        assert_float_equal(r.segment_score[i], t.score[key], 1e-6);
        assert_int_equal(r.segment[i], r.band[i] + 1);
    }
    /* e has a return and no purchase: no segment either */
    assert_int_equal(r.segment[4], 0);
    assert_int_equal(r.segmented, 3);
    assert_int_equal(r.counts[0], 2);
    assert_int_equal(r.counts[4] + r.counts[3] + r.counts[1], 3);
    /* b: the most recent gets R = 5 */
    assert_int_equal(r.r[1], 5);
    /* trend on frequency: 3 is increasing (>=), 1 declining (<=), 2 stable */
    assert_int_equal(r.trend[0], PULSE_TREND_STABLE);
    assert_int_equal(r.trend[1], PULSE_TREND_DECLINING);
    assert_int_equal(r.trend[2], PULSE_TREND_INCREASING);
    /* signals: frequency 2 does not pass "above 2", 3 does; recency 10 is not "below 10";
     * d's 3 carts fire, c's 1 does not; d (no purchase) never fires on NaN recency */
    assert_int_equal(r.signals[0], 0);
    assert_int_equal(r.signals[1], 0);
    assert_int_equal(r.signals[2], 1);
    assert_int_equal(r.signals[3], 4);
    assert_int_equal(r.sig_col[2], PULSE_FEAT_COUNT);
    /* behaviour: frequency 3 -> 50 + 50 * 1 = 100; 1 -> 0; no purchase still scored */
    assert_float_equal(r.behaviour_score[2], 100, 1e-4);
    assert_float_equal(r.behaviour_score[1], 0, 1e-4);
    assert_false(isnan(r.behaviour_score[3]));
    /* kept features are the column-major matrix */
    assert_float_equal(r.features[(size_t)PULSE_FEAT_COUNT * r.n + 3], 3, 1e-6);
    pulse_segment_result_free(&r);

    /* recency below 91 on a: 90 fires "below" at 91 but not at 90 */
    pulse_signal_t s2[] = {{"x", "recency_days", 1, 91, "", NULL}, {"y", "recency_days", 1, 90, "", NULL}};
    pulse_behaviour_t bh2 = {NULL, 0, NULL, 0, NULL, 0, 0, s2, 2};
    o.behaviour = &bh2;
    o.churn = NULL;
    o.keep_features = 0;
    assert_int_equal(pulse_segment_run(&st, &o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.signals[0], 1);
    assert_null(r.features);
    assert_int_equal(r.trend[0], PULSE_TREND_NONE);
    assert_float_equal(r.behaviour_score[0], 50, 1e-6);
    assert_int_equal(r.band[0], 0);
    pulse_segment_result_free(&r);

    /* unknown feature names are refused with the path */
    pulse_signal_t s3[] = {{"x", "nope", 1, 91, "", NULL}};
    pulse_behaviour_t bh3 = {NULL, 0, NULL, 0, NULL, 0, 0, s3, 1};
    o.behaviour = &bh3;
    assert_int_equal(pulse_segment_run(&st, &o, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "signals[1]"));
    pulse_txstore_free(&st);
}

/* DESIGN.md: batch paths must not pay one Lua call per customer. The rule reaches the pipeline as
 * a 500-entry table only; 20 000 customers are segmented exactly by lookup. */
static void test_rules_are_a_table(void **state)
{
    (void)state;
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    char ref[32];
    uint64_t s = 7;
    for (int c = 0; c < 20000; c++) {
        snprintf(ref, sizeof(ref), "c%d", c);
        int days = 1 + (int)(c % 7);
        for (int d = 0; d < days; d++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            add_tx(&st, ref, (int32_t)(1000 + (s >> 40) % 365), (double)((s >> 20) % 1000) / 10.0);
        }
    }
    pulse_txstore_finish(&st);
    pulse_segment_table_t t;
    memset(&t, 0, sizeof(t));
    static const char *names[11] = {"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11"};
    for (int i = 0; i < 11; i++)
        t.names[i] = names[i];
    t.nnames = 11;
    for (unsigned k = 0; k < PULSE_SEGMENT_KEYS; k++) {
        t.segment[k] = (uint8_t)(1 + (k * 7) % 11);
        t.score[k] = (float)(k % 101);
    }
    t.churn_medium = 0.3;
    t.churn_high = 0.6;
    pulse_segment_opts_t o;
    memset(&o, 0, sizeof(o));
    o.table = &t;
    pulse_segment_result_t r;
    char err[256];
    assert_int_equal(pulse_segment_run(&st, &o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.n, 20000);
    assert_int_equal(r.segmented, 20000);
    size_t total = 0;
    for (uint32_t i = 0; i < r.n; i++) {
        unsigned key = pulse_segment_key(0, r.r[i], r.f[i], r.m[i]);
        assert_int_equal(r.segment[i], t.segment[key]);
    }
    for (size_t k = 0; k <= 11; k++)
        total += r.counts[k];
    assert_int_equal(total, 20000);
    pulse_segment_result_free(&r);
    /* a table naming an index past the names is refused */
    t.segment[3] = 12;
    assert_int_equal(pulse_segment_run(&st, &o, &r, err, sizeof(err)), -1);
    pulse_txstore_free(&st);
}

static void test_empty_store(void **state)
{
    (void)state;
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    pulse_txstore_finish(&st);
    pulse_segment_table_t t;
    band_table(&t);
    pulse_segment_opts_t o;
    memset(&o, 0, sizeof(o));
    o.table = &t;
    o.as_of = 10;
    pulse_segment_result_t r;
    char err[256];
    assert_int_equal(pulse_segment_run(&st, &o, &r, err, sizeof(err)), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.ncols, PULSE_FEAT_COUNT);
    pulse_segment_result_free(&r);
    pulse_txstore_free(&st);
}

/* Customers split over 1, 2 or 3 threads (40,000 customers: several feature blocks per thread)
 * give byte-identical results, features, counts included. */
static void test_threads_change_nothing(void **state)
{
    (void)state;
    enum { NC = 40000 };
    pulse_txstore_t st;
    pulse_txstore_init(&st);
    uint64_t rng = 12345;
    char id[16];
    for (uint32_t c = 0; c < NC; c++) {
        snprintf(id, sizeof(id), "c%u", c);
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned rows = (unsigned)(rng >> 60); /* 0-15: some customers only have events */
        for (unsigned k = 0; k < rows; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            add_tx(&st, id, (int32_t)(rng >> 55), (double)((rng >> 20) % 20000) / 100.0 - 10.0);
        }
        if ((rng >> 40) % 3 == 0)
            add_ev(&st, id, (int32_t)((rng >> 30) % 512), "cart_abandoned");
    }
    pulse_txstore_finish(&st);
    pulse_segment_table_t t;
    band_table(&t);
    pulse_agg_spec_t aggs[] = {{"carts_30d", "cart_abandoned", PULSE_AGG_COUNT, PULSE_AGG_VALUE, 30}};
    pulse_score_term_t terms[] = {{"frequency", 2, 1, 1}, {"carts_30d", 1, 1, -1}};
    pulse_signal_t sigs[] = {{"many_days", "frequency", 0, 2, "{value} days", NULL},
                             {"carts", "carts_30d", 0, 0, "{value} carts", NULL}};
    pulse_behaviour_t bh = {aggs, 1, terms, 2, "frequency", 3, 1, sigs, 2};
    float *churn = malloc(NC * sizeof(float));
    for (uint32_t c = 0; c < NC; c++)
        churn[c] = c % 7 == 0 ? NAN : (float)(c % 100) / 100.0f;
    pulse_segment_result_t r[3];
    char err[256];
    for (int k = 0; k < 3; k++) {
        pulse_segment_opts_t o;
        memset(&o, 0, sizeof(o));
        o.as_of = 520;
        o.threads = k + 1;
        o.table = &t;
        o.behaviour = &bh;
        o.churn = churn;
        o.keep_features = 1;
        assert_int_equal(pulse_segment_run(&st, &o, &r[k], err, sizeof(err)), 0);
    }
    assert_int_equal(r[0].n, pulse_txstore_ncustomers(&st)); /* some customers have no row at all */
    assert_true(r[0].n > NC * 9 / 10);
    assert_true(r[0].segmented > NC / 2 && r[0].segmented < r[0].n);
    for (int k = 1; k < 3; k++) {
        size_t n = r[0].n, nc = r[0].ncols;
        assert_memory_equal(r[k].features, r[0].features, nc * n * sizeof(float));
        assert_memory_equal(r[k].recency, r[0].recency, n * sizeof(float));
        assert_memory_equal(r[k].monetary, r[0].monetary, n * sizeof(float));
        assert_memory_equal(r[k].r, r[0].r, n);
        assert_memory_equal(r[k].f, r[0].f, n);
        assert_memory_equal(r[k].m, r[0].m, n);
        assert_memory_equal(r[k].band, r[0].band, n);
        assert_memory_equal(r[k].segment, r[0].segment, n);
        assert_memory_equal(r[k].segment_score, r[0].segment_score, n * sizeof(float));
        assert_memory_equal(r[k].behaviour_score, r[0].behaviour_score, n * sizeof(float));
        assert_memory_equal(r[k].trend, r[0].trend, n);
        assert_memory_equal(r[k].signals, r[0].signals, n * sizeof(uint32_t));
        assert_memory_equal(r[k].counts, r[0].counts, sizeof(r[0].counts));
        assert_int_equal(r[k].segmented, r[0].segmented);
    }
    for (int k = 0; k < 3; k++)
        pulse_segment_result_free(&r[k]);
    free(churn);
    pulse_txstore_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bands),
        cmocka_unit_test(test_score_clamp),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_rules_are_a_table),
        cmocka_unit_test(test_empty_store),
        cmocka_unit_test(test_threads_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
