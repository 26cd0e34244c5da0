/* Unit tests for src/analytics/features.c: every feature against a slow reference computed from the
 * unsorted rows, on the shipped fixture and on random data; windowed event aggregates (slope from
 * explicit weekly sums); RFM quintiles at boundaries and with ties; threads and blocks change nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/features.h"
#include "analytics/txfile.h"
#include "core/buf.h"

/* The rows as appended, before finish sorts them. */
typedef struct raw_t {
    uint32_t n, ne;
    uint32_t *cust, *cat, *prod, *ecust, *etype;
    int32_t *day, *eday;
    float *amount, *qty, *evalue, *eqty;
    uint8_t *flags;
} raw_t;

static void *dup_or_null(const void *p, size_t n)
{
    if (p == NULL)
        return NULL;
    void *d = malloc(n ? n : 1);
    memcpy(d, p, n);
    return d;
}

static raw_t snapshot(const pulse_txstore_t *st)
{
    raw_t r;
    r.n = st->ntx;
    r.ne = st->nev;
    r.cust = dup_or_null(st->tx_customer, r.n * 4);
    r.day = dup_or_null(st->tx_day, r.n * 4);
    r.amount = dup_or_null(st->tx_amount, r.n * 4);
    r.qty = dup_or_null(st->tx_quantity, r.n * 4);
    r.cat = dup_or_null(st->tx_category, r.n * 4);
    r.prod = dup_or_null(st->tx_product, r.n * 4);
    r.flags = dup_or_null(st->tx_flags, r.n);
    r.ecust = dup_or_null(st->ev_customer, r.ne * 4);
    r.eday = dup_or_null(st->ev_day, r.ne * 4);
    r.etype = dup_or_null(st->ev_type, r.ne * 4);
    r.evalue = dup_or_null(st->ev_value, r.ne * 4);
    r.eqty = dup_or_null(st->ev_quantity, r.ne * 4);
    return r;
}

static void raw_free(raw_t *r)
{
    void *p[] = {r->cust, r->day, r->amount, r->qty, r->cat, r->prod, r->flags, r->ecust, r->eday, r->etype, r->evalue, r->eqty};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++)
        free(p[i]);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static int count_distinct_u32(uint32_t *v, size_t n)
{
    int d = 0;
    for (size_t i = 0; i < n; i++) {
        int seen = v[i] == PULSE_TXSTORE_NONE;
        for (size_t j = 0; j < i && !seen; j++)
            seen = v[j] == v[i];
        d += !seen;
    }
    return d;
}

/* The reference: straight loops over all rows for one customer. */
static void reference(const raw_t *r, uint32_t c, int32_t as_of, unsigned flags_seen, double *f)
{
    int32_t *days = malloc((r->n + 1) * sizeof(int32_t));
    uint32_t *prods = malloc((r->n + 1) * 4), *cats = malloc((r->n + 1) * 4);
    size_t nd = 0, np = 0;
    double money = 0, qty = 0;
    int prows = 0, rrows = 0, drows = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        if (r->cust[i] != c || r->day[i] >= as_of)
            continue;
        int ret = (r->flags && (r->flags[i] & PULSE_TX_RETURN)) || r->amount[i] < 0;
        if (ret) {
            money -= fabs(r->amount[i]);
            rrows++;
            continue;
        }
        money += r->amount[i];
        prows++;
        drows += r->flags && (r->flags[i] & PULSE_TX_DISCOUNTED);
        qty += r->qty && !isnan(r->qty[i]) ? r->qty[i] : 1;
        prods[np] = r->prod ? r->prod[i] : PULSE_TXSTORE_NONE;
        cats[np++] = r->cat ? r->cat[i] : PULSE_TXSTORE_NONE;
        days[nd++] = r->day[i];
    }
    qsort(days, nd, sizeof(int32_t), cmp_i32);
    size_t k = 0; /* distinct days */
    for (size_t i = 0; i < nd; i++)
        if (k == 0 || days[k - 1] != days[i])
            days[k++] = days[i];
    double mean = NAN, var = NAN;
    if (k >= 2) {
        mean = (double)(days[k - 1] - days[0]) / (double)(k - 1);
        var = 0;
        for (size_t i = 1; i < k; i++)
            var += ((days[i] - days[i - 1]) - mean) * ((days[i] - days[i - 1]) - mean);
        var /= (double)(k - 1);
    }
    int a30 = 0, a60 = 0, a90 = 0, p90 = 0;
    for (size_t i = 0; i < k; i++) {
        int32_t lo30 = as_of - 30, lo60 = as_of - 60, lo90 = as_of - 90, lo180 = as_of - 180;
        a30 += days[i] >= lo30;
        a60 += days[i] >= lo60;
        a90 += days[i] >= lo90;
        p90 += days[i] >= lo180 && days[i] < lo90;
    }
    f[PULSE_FEAT_RECENCY] = k ? as_of - days[k - 1] : NAN;
    f[PULSE_FEAT_FREQUENCY] = (double)k;
    f[PULSE_FEAT_MONETARY] = money;
    f[PULSE_FEAT_AVG_BASKET] = k ? money / (double)k : NAN;
    f[PULSE_FEAT_UNIQUE_PRODUCTS] = count_distinct_u32(prods, np);
    f[PULSE_FEAT_UNIQUE_CATEGORIES] = count_distinct_u32(cats, np);
    f[PULSE_FEAT_IPT_MEAN] = mean;
    f[PULSE_FEAT_IPT_VAR] = var;
    f[PULSE_FEAT_SPAN] = k ? days[k - 1] - days[0] : 0;
    f[PULSE_FEAT_TENURE] = k ? as_of - days[0] : NAN;
    f[PULSE_FEAT_RETURN_RATE] = (double)rrows / (prows > 0 ? prows : 1);
    f[PULSE_FEAT_DISCOUNT_SHARE] = (flags_seen & PULSE_TX_DISCOUNTED) && prows ? (double)drows / prows : 0;
    f[PULSE_FEAT_ACTIVE_30] = a30;
    f[PULSE_FEAT_ACTIVE_60] = a60;
    f[PULSE_FEAT_ACTIVE_90] = a90;
    f[PULSE_FEAT_ACTIVE_PREV90] = p90;
    f[PULSE_FEAT_TREND] = (double)(a90 - p90) / (p90 > 1 ? p90 : 1);
    f[PULSE_FEAT_OVERDUE] = k >= 2 ? f[PULSE_FEAT_RECENCY] - mean : 0;
    f[PULSE_FEAT_QUANTITY] = qty;
    free(days);
    free(prods);
    free(cats);
}

/* Spec reference: collect the window's events, weekly sums in an explicit array, textbook slope. */
static double reference_spec(const raw_t *r, const pulse_txstore_t *st, uint32_t c, int32_t as_of, const pulse_agg_spec_t *sp)
{
    int weeks = (sp->window_days + 6) / 7;
    double *y = calloc((size_t)weeks, sizeof(double));
    double n = 0, sum = 0;
    for (uint32_t i = 0; i < r->ne; i++) {
        size_t len;
        const char *t = pulse_strtab_get(&st->event_types, r->etype[i], &len);
        if (r->ecust[i] != c || len != strlen(sp->event_type) || memcmp(t, sp->event_type, len) != 0)
            continue;
        if (r->eday[i] >= as_of || r->eday[i] < as_of - sp->window_days)
            continue;
        double v = sp->field == PULSE_AGG_VALUE ? r->evalue[i] : (isnan(r->eqty[i]) ? 1 : r->eqty[i]);
        n++;
        sum += v;
        int back = (as_of - 1 - r->eday[i]) / 7; /* 0: the week just before as_of */
        y[weeks - 1 - back] += v;
    }
    double out;
    if (sp->op == PULSE_AGG_COUNT) {
        out = n;
    } else if (sp->op == PULSE_AGG_SUM) {
        out = sum;
    } else if (sp->op == PULSE_AGG_AVG) {
        out = n ? sum / n : NAN;
    } else if (weeks < 2) {
        out = 0;
    } else {
        double xm = 0, ym = 0;
        for (int w = 0; w < weeks; w++) {
            xm += w;
            ym += y[w];
        }
        xm /= weeks;
        ym /= weeks;
        double sxy = 0, sxx = 0;
        for (int w = 0; w < weeks; w++) {
            sxy += (w - xm) * (y[w] - ym);
            sxx += (w - xm) * (w - xm);
        }
        out = sxy / sxx;
    }
    free(y);
    return out;
}

static void assert_close(double got, double want, const char *what, uint32_t c)
{
    if (isnan(want) || isnan(got)) {
        if (!(isnan(want) && isnan(got)))
            fail_msg("customer %u %s: got %.9g, want %.9g", c, what, got, want);
        return;
    }
    double tol = 1e-4 * (fabs(want) > 1 ? fabs(want) : 1);
    if (fabs(got - want) > tol)
        fail_msg("customer %u %s: got %.9g, want %.9g", c, what, got, want);
}

static void check_against_reference(const raw_t *r, const pulse_txstore_t *st, const pulse_features_opts_t *opt)
{
    char err[256];
    pulse_feature_matrix_t m;
    if (pulse_features_compute(st, opt, 0, 0, &m, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(m.n_rows, st->customers.n);
    assert_int_equal(m.n_cols, PULSE_FEAT_COUNT + opt->nspecs);
    double f[PULSE_FEAT_COUNT];
    for (uint32_t c = 0; c < st->customers.n; c++) {
        reference(r, c, m.as_of, st->tx_flags_seen, f);
        for (int j = 0; j < PULSE_FEAT_COUNT; j++)
            assert_close(m.x[(size_t)j * m.n_rows + c], f[j], m.info[j].name, c);
        for (size_t s = 0; s < opt->nspecs; s++)
            assert_close(m.x[(PULSE_FEAT_COUNT + s) * m.n_rows + c], reference_spec(r, st, c, m.as_of, &opt->specs[s]),
                         opt->specs[s].name, c);
    }
    pulse_features_matrix_free(&m);
}

static void load_fixture(pulse_txstore_t *st)
{
    char path[1024], err[256];
    snprintf(path, sizeof(path), "%s/analytics_tx.csv", PULSE_TEST_DATA_DIR);
    pulse_txfile_plan_t plan;
    pulse_txfile_plan_init(&plan);
    plan.has_header = 1;
    plan.col_customer = 0;
    plan.col_date = 1;
    plan.col_amount = 2;
    plan.col_category = 3;
    plan.col_quantity = 4;
    pulse_txstore_init(st);
    if (pulse_txfile_read(path, &plan, st, NULL, err, sizeof(err)) != 0)
        fail_msg("%s", err);
}

static void test_fixture_vs_reference(void **state)
{
    pulse_txstore_t st;
    load_fixture(&st);
    raw_t r = snapshot(&st);
    pulse_txstore_finish(&st);
    pulse_features_opts_t opt = {0};
    check_against_reference(&r, &st, &opt);
    opt.as_of = pulse_txstore_days_from_civil(2023, 12, 1); /* rows after it are the future */
    check_against_reference(&r, &st, &opt);

    /* hand-checked: C0099 has only a return, C0098 one zero-amount purchase */
    pulse_feature_matrix_t m;
    char err[256];
    opt.as_of = 0;
    assert_int_equal(pulse_features_compute(&st, &opt, 0, 0, &m, err, sizeof(err)), 0);
    assert_int_equal(m.as_of, st.tx_max_day + 1);
    for (uint32_t c = 0; c < st.customers.n; c++) {
        size_t len;
        const char *ref = pulse_strtab_get(&st.customers, c, &len);
        float *x = m.x + c;
        if (len == 5 && memcmp(ref, "C0099", 5) == 0) {
            assert_true(isnan(x[PULSE_FEAT_RECENCY * m.n_rows]));
            assert_float_equal(x[PULSE_FEAT_FREQUENCY * m.n_rows], 0, 0);
            assert_float_equal(x[PULSE_FEAT_MONETARY * m.n_rows], -12.5, 1e-6);
            assert_float_equal(x[PULSE_FEAT_RETURN_RATE * m.n_rows], 1, 0);
        }
        if (len == 5 && memcmp(ref, "C0098", 5) == 0) {
            assert_float_equal(x[PULSE_FEAT_FREQUENCY * m.n_rows], 1, 0);
            assert_float_equal(x[PULSE_FEAT_OVERDUE * m.n_rows], 0, 0);
            assert_true(isnan(x[PULSE_FEAT_IPT_MEAN * m.n_rows]));
            assert_float_equal(x[PULSE_FEAT_SPAN * m.n_rows], 0, 0);
        }
    }
    assert_string_equal(m.info[PULSE_FEAT_RECENCY].name, "recency_days");
    assert_string_equal(m.info[PULSE_FEAT_RECENCY].unit, "days");
    pulse_features_matrix_free(&m);
    raw_free(&r);
    pulse_txstore_free(&st);
}

static uint64_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static const pulse_agg_spec_t specs[] = {
    {"logins_30", "login", PULSE_AGG_COUNT, PULSE_AGG_VALUE, 30},
    {"spend_90", "purchase", PULSE_AGG_SUM, PULSE_AGG_VALUE, 90},
    {"support_qty_avg_60", "support", PULSE_AGG_AVG, PULSE_AGG_QUANTITY, 60},
    {"login_slope_28", "login", PULSE_AGG_SLOPE, PULSE_AGG_VALUE, 28},
    {"purchase_qty_slope_90", "purchase", PULSE_AGG_SLOPE, PULSE_AGG_QUANTITY, 90}, /* 13 weeks, oldest partial */
    {"login_slope_5", "login", PULSE_AGG_SLOPE, PULSE_AGG_VALUE, 5},                /* one week: 0 */
    {"nothing", "no_such_type", PULSE_AGG_COUNT, PULSE_AGG_VALUE, 10},
};

/* Random transactions and events in random order: customers, categories, products, flags. */
static void random_store(pulse_txstore_t *st, uint64_t seed, uint32_t ncust, uint32_t nrows)
{
    static const char *types[] = {"login", "purchase", "support", "other"};
    pulse_txstore_init(st);
    char ref[16], prod[16], cat[16];
    for (uint32_t i = 0; i < nrows; i++) {
        snprintf(ref, sizeof(ref), "u%llu", (unsigned long long)rnd(&seed) % ncust);
        snprintf(prod, sizeof(prod), "p%llu", (unsigned long long)rnd(&seed) % 50);
        snprintf(cat, sizeof(cat), "k%llu", (unsigned long long)rnd(&seed) % 6);
        uint64_t k = rnd(&seed);
        pulse_tx_row_t r = {ref,
                            strlen(ref),
                            (int32_t)(19000 + rnd(&seed) % 400),
                            (double)(rnd(&seed) % 20000) / 100.0,
                            k % 5 == 0 ? NAN : (double)(1 + k % 4),
                            k % 3 ? cat : NULL,
                            k % 4 ? prod : NULL,
                            strlen(cat),
                            strlen(prod),
                            (k % 13 == 0 ? PULSE_TX_RETURN : 0) | (k % 7 == 0 ? PULSE_TX_DISCOUNTED : 0)};
        if (k % 17 == 0)
            r.amount = -r.amount; /* a negative amount is a return without the flag */
        pulse_txstore_add_transaction(st, &r);
        if (k % 2 == 0) {
            const char *t = types[rnd(&seed) % 4];
            snprintf(ref, sizeof(ref), "u%llu", (unsigned long long)rnd(&seed) % (ncust + 5)); /* some event-only customers */
            pulse_txstore_add_event(st, ref, strlen(ref), (int32_t)(19200 + rnd(&seed) % 200), t, strlen(t),
                                    (double)((int64_t)(rnd(&seed) % 1000) - 300) / 10.0,
                                    rnd(&seed) % 3 ? (double)(rnd(&seed) % 5) : NAN);
        }
    }
}

static void test_random_vs_reference(void **state)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        pulse_txstore_t st;
        random_store(&st, seed, 150, 3000);
        raw_t r = snapshot(&st);
        pulse_txstore_finish(&st);
        pulse_features_opts_t opt = {0};
        opt.specs = specs;
        opt.nspecs = sizeof(specs) / sizeof(specs[0]);
        check_against_reference(&r, &st, &opt);
        opt.as_of = 19300; /* inside the data: the future is excluded */
        check_against_reference(&r, &st, &opt);
        raw_free(&r);
        pulse_txstore_free(&st);
    }
}

static void test_threads_and_blocks_identical(void **state)
{
    pulse_txstore_t st;
    random_store(&st, 99, 5000, 60000);
    pulse_txstore_finish(&st);
    pulse_features_opts_t opt = {0};
    opt.specs = specs;
    opt.nspecs = sizeof(specs) / sizeof(specs[0]);
    char err[256];
    pulse_feature_matrix_t one, two;
    opt.threads = 1;
    assert_int_equal(pulse_features_compute(&st, &opt, 0, 0, &one, err, sizeof(err)), 0);
    for (int t = 2; t <= 3; t++) {
        opt.threads = t;
        assert_int_equal(pulse_features_compute(&st, &opt, 0, 0, &two, err, sizeof(err)), 0);
        assert_int_equal(two.n_rows, one.n_rows);
        assert_memory_equal(two.x, one.x, one.n_rows * one.n_cols * sizeof(float));
        pulse_features_matrix_free(&two);
    }
    /* a block: the same numbers as the matching rows of the whole */
    opt.threads = 2;
    assert_int_equal(pulse_features_compute(&st, &opt, 1200, 2000, &two, err, sizeof(err)), 0);
    assert_int_equal(two.first, 1200);
    assert_int_equal(two.n_rows, 2000);
    for (size_t j = 0; j < one.n_cols; j++)
        assert_memory_equal(two.x + j * two.n_rows, one.x + j * one.n_rows + 1200, 2000 * sizeof(float));
    pulse_features_matrix_free(&two);
    /* scores are the same with 1 or 2 threads too (computed on whole columns) */
    uint8_t *a = malloc(one.n_rows * 3), *b = malloc(one.n_rows * 3);
    pulse_features_rfm_scores(&one, a, a + one.n_rows, a + 2 * one.n_rows);
    pulse_features_quintiles(one.x + PULSE_FEAT_RECENCY * one.n_rows, one.n_rows, 0, b);
    pulse_features_quintiles(one.x + PULSE_FEAT_FREQUENCY * one.n_rows, one.n_rows, 1, b + one.n_rows);
    pulse_features_quintiles(one.x + PULSE_FEAT_MONETARY * one.n_rows, one.n_rows, 1, b + 2 * one.n_rows);
    assert_memory_equal(a, b, one.n_rows * 3);
    free(a);
    free(b);
    pulse_features_matrix_free(&one);
    pulse_txstore_free(&st);
}

static void test_bad_specs(void **state)
{
    pulse_txstore_t st;
    random_store(&st, 5, 10, 50);
    char err[256];
    pulse_feature_matrix_t m;
    pulse_features_opts_t opt = {0};
    assert_int_equal(pulse_features_compute(&st, &opt, 0, 0, &m, err, sizeof(err)), -1); /* not finished */
    pulse_txstore_finish(&st);
    pulse_agg_spec_t bad = {"w0", "login", PULSE_AGG_COUNT, PULSE_AGG_VALUE, 0};
    opt.specs = &bad;
    opt.nspecs = 1;
    assert_int_equal(pulse_features_compute(&st, &opt, 0, 0, &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "w0"));
    bad.window_days = 7;
    bad.op = (pulse_agg_op_t)9;
    assert_int_equal(pulse_features_compute(&st, &opt, 0, 0, &m, err, sizeof(err)), -1);
    pulse_txstore_free(&st);
}

static void scores_of(const float *v, size_t n, int hib, const uint8_t *want)
{
    uint8_t got[64];
    pulse_features_quintiles(v, n, hib, got);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("value %zu (%g): score %d, want %d", i, v[i], got[i], want[i]);
}

static void test_quintiles_boundaries_and_ties(void **state)
{
    const float asc[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    scores_of(asc, 10, 1, (const uint8_t[]){1, 1, 2, 2, 3, 3, 4, 4, 5, 5});
    scores_of(asc, 10, 0, (const uint8_t[]){5, 5, 4, 4, 3, 3, 2, 2, 1, 1}); /* recency: lowest is best */
    /* ties: the four 5s start at rank 4 -> 1 + floor(20/10) = 3 */
    const float tie[10] = {5, 5, 5, 5, 1, 2, 3, 4, 6, 7};
    scores_of(tie, 10, 1, (const uint8_t[]){3, 3, 3, 3, 1, 1, 2, 2, 5, 5});
    /* descending: 7 (rank 0), 6 (1), the 5s from rank 2 -> 2, then 4 (6) -> 4, ... */
    scores_of(tie, 10, 0, (const uint8_t[]){2, 2, 2, 2, 5, 5, 4, 4, 1, 1});
    const float same[5] = {3, 3, 3, 3, 3};
    scores_of(same, 5, 1, (const uint8_t[]){1, 1, 1, 1, 1});
    scores_of(same, 5, 0, (const uint8_t[]){1, 1, 1, 1, 1});
    const float one[1] = {42};
    scores_of(one, 1, 1, (const uint8_t[]){1});
    /* NaN is the worst either way; -0 and +0 are one value; negatives order correctly */
    const float odd[6] = {NAN, -0.0f, 0.0f, -5, 3, -1e30f};
    scores_of(odd, 6, 1, (const uint8_t[]){1, 3, 3, 2, 5, 1});
    scores_of(odd, 6, 0, (const uint8_t[]){1, 2, 2, 4, 1, 5});
    /* n = 7: boundaries 1 + floor(5r/7) = 1 1 2 3 3 4 5 */
    const float seven[7] = {70, 60, 50, 40, 30, 20, 10};
    scores_of(seven, 7, 1, (const uint8_t[]){5, 4, 3, 3, 2, 1, 1});
}

/* Many ties among many values: against an O(n^2) reference; equal values always share a score. */
static void test_quintiles_random_vs_reference(void **state)
{
    uint64_t seed = 7;
    size_t n = 3000;
    float *v = malloc(n * sizeof(float));
    uint8_t *s = malloc(n);
    for (int hib = 0; hib <= 1; hib++) {
        for (size_t i = 0; i < n; i++)
            v[i] = (float)(rnd(&seed) % 40) * 0.25f - 3.0f;
        pulse_features_quintiles(v, n, hib, s);
        for (size_t i = 0; i < n; i++) {
            size_t better_first = 0; /* rank of the first member of i's tie group */
            for (size_t j = 0; j < n; j++)
                better_first += hib ? v[j] < v[i] : v[j] > v[i];
            assert_int_equal(s[i], 1 + (5 * better_first) / n);
        }
    }
    /* wide-range values (every radix byte differs), negatives, duplicates and NaN */
    for (int hib = 0; hib <= 1; hib++) {
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd(&seed);
            v[i] = r % 97 == 0 ? NAN : (float)((double)(r % 2000003) * (r % 3 ? 1e-3 : -7.5) * (r % 5 ? 1 : 1e6));
            if (i % 10 == 9)
                v[i] = v[i / 2]; /* ties */
        }
        pulse_features_quintiles(v, n, hib, s);
        for (size_t i = 0; i < n; i++) {
            size_t better_first = 0;
            for (size_t j = 0; j < n; j++) {
                if (isnan(v[i]))
                    continue; /* NaN ranks first */
                better_first += isnan(v[j]) || (hib ? v[j] < v[i] : v[j] > v[i]);
            }
            assert_int_equal(s[i], 1 + (5 * better_first) / n);
        }
    }
    free(v);
    free(s);
}

/* Orders "worst first": NaN, then the worse values (lower, or higher when lower is better). */
static int g_hib;
static int cmp_worst_first(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    if (isnan(a) || isnan(b))
        return isnan(b) - isnan(a);
    if (a == b)
        return 0;
    return (g_hib ? a < b : a > b) ? -1 : 1;
}

/* Past 1 M values the sort's buckets are split between two threads: against a qsort reference. */
static void test_quintiles_large_vs_reference(void **state)
{
    (void)state;
    size_t n = ((size_t)1 << 20) + 123457;
    float *v = malloc(n * sizeof(float)), *sorted = malloc(n * sizeof(float));
    uint8_t *s = malloc(n);
    uint64_t seed = 11;
    for (int hib = 0; hib <= 1; hib++) {
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd(&seed);
            v[i] = r % 997 == 0 ? NAN : (float)((double)(r % 1000003) * (r % 3 ? 0.01 : -3.5));
            if (i % 7 == 6)
                v[i] = v[i / 3]; /* ties */
        }
        pulse_features_quintiles(v, n, hib, s);
        memcpy(sorted, v, n * sizeof(float));
        g_hib = hib;
        qsort(sorted, n, sizeof(float), cmp_worst_first);
        for (size_t i = 0; i < n; i += 97) {
            /* rank of the first member of v[i]'s tie group: binary search for it in sorted */
            size_t lo = 0, hi = n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (cmp_worst_first(&sorted[mid], &v[i]) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (s[i] != 1 + (5 * lo) / n)
                fail_msg("value %zu (%g): score %d, want %zu", i, v[i], s[i], 1 + (5 * lo) / n);
        }
    }
    free(v);
    free(sorted);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_vs_reference),          cmocka_unit_test(test_random_vs_reference),
        cmocka_unit_test(test_threads_and_blocks_identical),  cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_quintiles_boundaries_and_ties), cmocka_unit_test(test_quintiles_random_vs_reference),
        cmocka_unit_test(test_quintiles_large_vs_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
