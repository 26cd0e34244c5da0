/* Lifetime-value training with a time split (see clvtrain.h). The trees' rows are the churn path's
 * (ml/churnlabel.c: customers with a purchase before the cutoff, features from rows strictly
 * before it) with holdout spend as the target; the BG/NBD rows are the same customers' calibration
 * summaries, so both candidates are measured on exactly the same held-out customers. */
#include "ml/clvtrain.h"

#include "core/clock.h"
#include "ml/churnlabel.h"
#include "ml/clvsum.h"
#include "ml/split.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pulse_ml_clv_options_init(pulse_ml_clv_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->terms.horizon = 90;
    o->terms.discount = 0.01;
    o->test_fraction = 0.25;
    o->valid_fraction = 0.2;
    o->seed = 42;
    o->min_customers = 50;
    o->threads = 2;
}

static void day_str(int32_t day, char out[16])
{
    time_t s = (time_t)day * 86400;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

void pulse_ml_clv_freq_table(const double *x, const double *pred_purchases, const double *actual_purchases,
                             const double *spend_bgnbd, const double *spend_gbdt, const double *actual_spend, size_t n,
                             pulse_ml_clv_freq_t table[PULSE_ML_CLV_FREQ_GROUPS])
{
    memset(table, 0, PULSE_ML_CLV_FREQ_GROUPS * sizeof(*table));
    for (size_t i = 0; i < n; i++) {
        size_t g = x[i] >= PULSE_ML_CLV_FREQ_GROUPS - 1 ? PULSE_ML_CLV_FREQ_GROUPS - 1 : (size_t)x[i];
        pulse_ml_clv_freq_t *t = &table[g];
        t->n++;
        t->pred_purchases += pred_purchases[i];
        t->actual_purchases += actual_purchases[i];
        t->pred_spend_bgnbd += spend_bgnbd[i];
        t->pred_spend_gbdt += spend_gbdt ? spend_gbdt[i] : NAN;
        t->actual_spend += actual_spend[i];
    }
    for (size_t g = 0; g < PULSE_ML_CLV_FREQ_GROUPS; g++) {
        pulse_ml_clv_freq_t *t = &table[g];
        double k = t->n ? (double)t->n : NAN;
        t->pred_purchases /= k, t->actual_purchases /= k, t->pred_spend_bgnbd /= k, t->pred_spend_gbdt /= k;
        t->actual_spend /= k;
    }
}

static void errors_of(pulse_ml_clv_candidate_t *c, const double *pred, const double *actual, size_t n)
{
    double ae = 0, se = 0, sp = 0;
    for (size_t i = 0; i < n; i++) {
        double d = pred[i] - actual[i];
        ae += fabs(d), se += d * d, sp += pred[i];
    }
    c->trained = n > 0;
    c->mae = ae / (double)n;
    c->rmse = sqrt(se / (double)n);
    c->mean_pred = sp / (double)n;
}

/* Fits BG/NBD and Gamma-Gamma on summaries; spend_new is the mean repeat spend. */
static int fit_bgnbd(const pulse_clvsum_t *s, pulse_ml_clv_bgnbd_t *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    /* Gamma-Gamma needs a positive mean spend: a repeat customer who spent nothing counts as one-off */
    double *gx = pulse_xmalloc((s->n + 1) * sizeof(double)), sum = 0;
    size_t repeat = 0;
    for (size_t i = 0; i < s->n; i++) {
        gx[i] = s->zbar[i] > 0 ? s->x[i] : 0;
        if (gx[i] > 0)
            repeat++, sum += s->zbar[i];
    }
    int rc = -1;
    if (repeat < 3)
        pulse_fail(err, errlen, "Gamma-Gamma needs at least 3 customers with repeat purchases; there are %zu", repeat);
    else if (pulse_clv_bgnbd_fit(s->x, s->t_x, s->T, s->n, &m->bg, err, errlen) == 0 &&
             pulse_clv_gamma_gamma_fit(gx, s->zbar, s->n, &m->gg, err, errlen) == 0)
        rc = 0;
    m->spend_new = repeat ? sum / (double)repeat : 0;
    free(gx);
    return rc;
}

/* The refuse-early checks: horizon, data, history. */
static int check_store(const pulse_txstore_t *st, const pulse_ml_clv_options_t *o, char *err, size_t errlen)
{
    int32_t h = o->terms.horizon;
    if (h < 1 || h > 3650)
        return pulse_fail(err, errlen, "the lifetime-value horizon must be 1 to 3650 days, not %d", (int)h);
    if (!(o->terms.discount >= 0 && o->terms.discount < 1))
        return pulse_fail(err, errlen, "the monthly discount rate must be in [0, 1), not %g", o->terms.discount);
    if (!st->finished || st->ntx == 0)
        return pulse_fail(err, errlen, "lifetime-value models are fitted on transactions: import a transactions file first");
    int32_t span = st->tx_max_day + 1 - st->tx_min_day, need = h + PULSE_CHURNLABEL_MIN_HISTORY;
    if (span < need) {
        char a[16], b[16];
        day_str(st->tx_min_day, a), day_str(st->tx_max_day, b);
        return pulse_fail(err, errlen,
                          "not enough history for a lifetime-value holdout: the transactions span %d days (%s to %s); a "
                          "%d-day horizon needs at least %d days (%d days of calibration before the %d-day holdout); "
                          "give a shorter horizon_days or import more history",
                          (int)span, a, b, (int)h, (int)need, PULSE_CHURNLABEL_MIN_HISTORY, (int)h);
    }
    return 0;
}

typedef struct holdout_t {
    double *purchases, *spend;
    float *bought; /* 0/1: the split's strata */
    size_t n_buyers;
} holdout_t;

static void holdout_of(const pulse_txstore_t *st, const pulse_clvsum_t *cal, int32_t from, int32_t to, holdout_t *h)
{
    h->purchases = pulse_xmalloc((cal->n + 1) * sizeof(double));
    h->spend = pulse_xmalloc((cal->n + 1) * sizeof(double));
    h->bought = pulse_xmalloc((cal->n + 1) * sizeof(float));
    h->n_buyers = 0;
    for (size_t i = 0; i < cal->n; i++) {
        pulse_clvsum_window(st, cal->customer[i], from, to, &h->purchases[i], &h->spend[i]);
        h->bought[i] = h->spend[i] > 0;
        h->n_buyers += h->spend[i] > 0;
    }
}

static void holdout_free(holdout_t *h)
{
    free(h->purchases), free(h->spend), free(h->bought);
}

static void gbdt_params(const pulse_ml_clv_options_t *o, pulse_gbdt_params_t *p)
{
    pulse_gbdt_params_init(p);
    p->objective = PULSE_GBDT_SQUARED;
    p->threads = o->threads > 0 ? o->threads : 1;
    p->seed = o->seed;
    p->learning_rate = 0.05;
    p->min_child_weight = 5; /* a hessian of 1 per row: at least 5 customers per leaf */
}

/* The trees on the split's training rows (early stopping on its validation rows), their holdout
 * spend predictions for the test rows into pred; the kept tree count into *trees. */
static int eval_gbdt(const pulse_ml_data_t *d, const pulse_ml_split_t *sp, const pulse_ml_clv_options_t *o, double *pred,
                     int *trees, char *err, size_t errlen)
{
    pulse_ml_data_t tr, va, te;
    pulse_ml_subset(d, sp->train, sp->n_train, &tr);
    pulse_ml_subset(d, sp->valid, sp->n_valid, &va);
    pulse_ml_subset(d, sp->test, sp->n_test, &te);
    pulse_gbdt_params_t p;
    gbdt_params(o, &p);
    pulse_gbdt_t *g = NULL;
    pulse_gbdt_report_t rep;
    int rc = pulse_gbdt_train(&tr, sp->n_valid ? &va : NULL, &p, &g, &rep, err, errlen);
    if (rc == 0) {
        pulse_gbdt_predict(g, &te, pred, 0);
        for (size_t i = 0; i < sp->n_test; i++)
            pred[i] = pred[i] > 0 ? pred[i] : 0;
        *trees = rep.best_iteration;
        pulse_gbdt_free(g);
    }
    pulse_ml_subset_free(&tr), pulse_ml_subset_free(&va), pulse_ml_subset_free(&te);
    return rc;
}

/* The chosen model refitted on all the data into out->model. */
static int refit(const pulse_txstore_t *st, const pulse_ml_data_t *d, char *const *names, const pulse_ml_clv_options_t *o,
                 pulse_ml_clv_result_t *out, char *err, size_t errlen)
{
    if (!out->chosen_gbdt) {
        pulse_clvsum_t all;
        pulse_clvsum_build(st, &all);
        out->n_full = all.n;
        int rc = fit_bgnbd(&all, &out->full, err, errlen);
        pulse_clvsum_free(&all);
        if (rc == 0)
            out->model = pulse_ml_clv_pack_bgnbd(&out->full, o->terms);
        return rc;
    }
    pulse_gbdt_params_t p;
    gbdt_params(o, &p);
    p.n_trees = out->gbdt_trees > 0 ? out->gbdt_trees : 1;
    pulse_gbdt_t *g = NULL;
    if (pulse_gbdt_train(d, NULL, &p, &g, NULL, err, errlen) != 0)
        return -1;
    out->n_full = d->n_rows;
    out->model = pulse_ml_clv_pack_gbdt(g, names, d->n_cols, o->terms);
    pulse_gbdt_free(g);
    return 0;
}

typedef struct eval_t {
    double *x, *pred_purchases, *actual_purchases, *bg, *gb, *actual;
} eval_t;

static void eval_alloc(eval_t *e, size_t n)
{
    double **cols[] = {&e->x, &e->pred_purchases, &e->actual_purchases, &e->bg, &e->gb, &e->actual};
    for (size_t k = 0; k < sizeof(cols) / sizeof(cols[0]); k++)
        *cols[k] = pulse_xmalloc((n + 1) * sizeof(double));
}

static void eval_free(eval_t *e)
{
    free(e->x), free(e->pred_purchases), free(e->actual_purchases), free(e->bg), free(e->gb), free(e->actual);
}

/* Both candidates on the held-out customers, the table, the choice. */
static void compare(const pulse_clvsum_t *cal, const holdout_t *h, const pulse_ml_split_t *sp, int bg_ok, int gb_ok, eval_t *e,
                    pulse_ml_clv_result_t *out)
{
    pulse_ml_clv_terms_t plain = {out->terms.horizon, 0};
    double sum = 0;
    for (size_t k = 0; k < sp->n_test; k++) {
        size_t i = sp->test[k];
        e->x[k] = cal->x[i];
        e->actual_purchases[k] = h->purchases[i];
        e->actual[k] = h->spend[i];
        sum += h->spend[i];
        e->pred_purchases[k] =
            bg_ok ? pulse_clv_bgnbd_expected(&out->cal.bg, out->terms.horizon, cal->x[i], cal->t_x[i], cal->T[i]) : NAN;
        e->bg[k] = bg_ok ? pulse_ml_clv_bgnbd_value(&out->cal, plain, cal->x[i], cal->t_x[i], cal->T[i], cal->zbar[i]) : NAN;
    }
    out->mean_actual = sp->n_test ? sum / (double)sp->n_test : 0;
    if (bg_ok)
        errors_of(&out->bgnbd, e->bg, e->actual, sp->n_test);
    if (gb_ok)
        errors_of(&out->gbdt, e->gb, e->actual, sp->n_test);
    /* a fit that gave a non-finite prediction cannot be ranked */
    out->bgnbd.trained = out->bgnbd.trained && isfinite(out->bgnbd.mae);
    out->gbdt.trained = out->gbdt.trained && isfinite(out->gbdt.mae);
    pulse_ml_clv_freq_table(e->x, e->pred_purchases, e->actual_purchases, e->bg, gb_ok ? e->gb : NULL, e->actual, sp->n_test,
                            out->freq);
    out->chosen_gbdt = out->gbdt.trained && (!out->bgnbd.trained || out->gbdt.mae < out->bgnbd.mae);
}

/* The features as of the cutoff with holdout spend as the target (rows = cal's customers). */
static int tree_table(const pulse_txstore_t *st, const pulse_clvsum_t *cal, const holdout_t *h, int32_t horizon,
                      pulse_ml_table_t **t, char *err, size_t errlen)
{
    pulse_churnlabel_info_t info;
    if (pulse_churnlabel_table(st, horizon, t, &info, err, errlen) != 0)
        return -1;
    int same = info.n_customers == cal->n;
    for (size_t i = 0; same && i < cal->n; i++)
        same = info.customer[i] == cal->customer[i];
    free(info.customer);
    if (!same) {
        pulse_ml_table_free(*t);
        *t = NULL;
        return pulse_fail(err, errlen, "the feature rows and the calibration summaries name different customers");
    }
    for (size_t i = 0; i < cal->n; i++)
        (*t)->data.y[i] = (float)h->spend[i];
    return 0;
}

int pulse_ml_clv_train(const pulse_txstore_t *st, const pulse_ml_clv_options_t *o, pulse_ml_clv_result_t *out, char *err,
                       size_t errlen)
{
    double t0 = pulse_now_s();
    memset(out, 0, sizeof(*out));
    if (check_store(st, o, err, errlen) != 0)
        return -1;
    out->terms = o->terms;
    out->first_day = st->tx_min_day;
    out->end_day = st->tx_max_day + 1;
    out->cutoff = out->end_day - o->terms.horizon;
    pulse_clvsum_t cal;
    pulse_clvsum_build_before(st, out->cutoff, &cal);
    out->n_customers = cal.n;
    for (size_t i = 0; i < cal.n; i++)
        out->n_repeat += cal.x[i] > 0;
    if (cal.n < o->min_customers) {
        char c[16];
        day_str(out->cutoff, c);
        pulse_clvsum_free(&cal);
        return pulse_fail(err, errlen,
                          "lifetime-value models need at least %zu customers with a purchase before the holdout (which "
                          "starts %s); there are %zu: import more customers or give a shorter horizon_days",
                          o->min_customers, c, out->n_customers);
    }
    holdout_t h;
    holdout_of(st, &cal, out->cutoff, out->end_day, &h);
    out->n_buyers = h.n_buyers;
    pulse_ml_split_t sp;
    memset(&sp, 0, sizeof(sp));
    pulse_ml_table_t *t = NULL;
    int rc = pulse_ml_split_stratified(h.bought, cal.n, o->test_fraction, o->valid_fraction, o->seed, &sp, err, errlen);
    if (rc == 0 && (sp.n_test == 0 || sp.n_train == 0))
        rc = pulse_fail(err, errlen, "the split left no customers to train or to test on");
    if (rc == 0)
        rc = tree_table(st, &cal, &h, o->terms.horizon, &t, err, errlen);
    if (rc == 0) {
        out->n_train = sp.n_train, out->n_valid = sp.n_valid, out->n_test = sp.n_test;
        int bg_ok = fit_bgnbd(&cal, &out->cal, out->bgnbd.error, sizeof(out->bgnbd.error)) == 0;
        eval_t e;
        eval_alloc(&e, sp.n_test);
        int gb_ok = eval_gbdt(&t->data, &sp, o, e.gb, &out->gbdt_trees, out->gbdt.error, sizeof(out->gbdt.error)) == 0;
        compare(&cal, &h, &sp, bg_ok, gb_ok, &e, out);
        eval_free(&e);
        if (!out->bgnbd.trained && !out->gbdt.trained)
            rc = pulse_fail(err, errlen, "neither lifetime-value model could be fitted: BG/NBD: %s; trees: %s",
                            out->bgnbd.error[0] ? out->bgnbd.error : "non-finite predictions",
                            out->gbdt.error[0] ? out->gbdt.error : "non-finite predictions");
        else
            rc = refit(st, &t->data, t->data.names, o, out, err, errlen);
    }
    if (rc == 0) {
        pulse_buf_t rep = PULSE_BUF_INIT;
        out->seconds = pulse_now_s() - t0;
        pulse_ml_clv_report_json(out, &rep);
        pulse_ml_model_set_meta(out->model, rep.data);
        pulse_buf_free(&rep);
    }
    pulse_ml_table_free(t);
    pulse_ml_split_free(&sp);
    holdout_free(&h);
    pulse_clvsum_free(&cal);
    if (rc != 0)
        pulse_ml_clv_result_free(out);
    return rc;
}

void pulse_ml_clv_result_free(pulse_ml_clv_result_t *r)
{
    pulse_ml_model_free(r->model);
    r->model = NULL;
}

/* A number, or null when it is not finite (JSON has no NaN). */
static void num(pulse_buf_t *b, double v)
{
    if (isfinite(v))
        pulse_buf_printf(b, "%.6g", v);
    else
        pulse_buf_puts(b, "null");
}

static void candidate_json(const pulse_ml_clv_candidate_t *c, double mean_actual, pulse_buf_t *b)
{
    pulse_buf_printf(b, "{\"trained\":%s", c->trained ? "true" : "false");
    if (c->trained) {
        pulse_buf_puts(b, ",\"metrics\":{\"mae\":");
        num(b, c->mae);
        pulse_buf_puts(b, ",\"rmse\":");
        num(b, c->rmse);
        pulse_buf_puts(b, ",\"mean_predicted\":");
        num(b, c->mean_pred);
        pulse_buf_puts(b, ",\"mean_actual\":");
        num(b, mean_actual);
        pulse_buf_putc(b, '}');
    } else {
        pulse_buf_puts(b, ",\"error\":\"");
        pulse_buf_json_escape(b, c->error, strlen(c->error));
        pulse_buf_putc(b, '"');
    }
}

static void params_json(const pulse_ml_clv_bgnbd_t *m, pulse_buf_t *b)
{
    pulse_buf_printf(b,
                     "{\"r\":%.9g,\"alpha\":%.9g,\"a\":%.9g,\"b\":%.9g,\"p\":%.9g,\"q\":%.9g,\"gamma\":%.9g,"
                     "\"log_likelihood\":%.9g,\"gamma_gamma_log_likelihood\":%.9g,\"spend_new\":%.6g,\"time_unit\":\"day\"}",
                     m->bg.r, m->bg.alpha, m->bg.a, m->bg.b, m->gg.p, m->gg.q, m->gg.gamma, m->bg.log_likelihood,
                     m->gg.log_likelihood, m->spend_new);
}

void pulse_ml_clv_metrics_json(const pulse_ml_clv_result_t *r, pulse_buf_t *out)
{
    const pulse_ml_clv_candidate_t *c = r->chosen_gbdt ? &r->gbdt : &r->bgnbd;
    pulse_buf_puts(out, "{\"mae\":");
    num(out, c->mae);
    pulse_buf_puts(out, ",\"rmse\":");
    num(out, c->rmse);
    pulse_buf_puts(out, ",\"mean_predicted\":");
    num(out, c->mean_pred);
    pulse_buf_puts(out, ",\"mean_actual\":");
    num(out, r->mean_actual);
    pulse_buf_printf(out, ",\"horizon_days\":%d,\"test_customers\":%zu}", (int)r->terms.horizon, r->n_test);
}

static void freq_json(const pulse_ml_clv_result_t *r, pulse_buf_t *b)
{
    pulse_buf_putc(b, '[');
    for (size_t g = 0; g < PULSE_ML_CLV_FREQ_GROUPS; g++) {
        const pulse_ml_clv_freq_t *f = &r->freq[g];
        pulse_buf_printf(b, "%s{\"repeat_purchases\":\"%zu%s\",\"customers\":%zu,\"predicted_purchases\":", g ? "," : "", g,
                         g == PULSE_ML_CLV_FREQ_GROUPS - 1 ? "+" : "", f->n);
        num(b, f->pred_purchases);
        pulse_buf_puts(b, ",\"actual_purchases\":");
        num(b, f->actual_purchases);
        pulse_buf_puts(b, ",\"predicted_spend_bgnbd\":");
        num(b, f->pred_spend_bgnbd);
        pulse_buf_puts(b, ",\"predicted_spend_clv_gbdt\":");
        num(b, f->pred_spend_gbdt);
        pulse_buf_puts(b, ",\"actual_spend\":");
        num(b, f->actual_spend);
        pulse_buf_putc(b, '}');
    }
    pulse_buf_putc(b, ']');
}

void pulse_ml_clv_report_json(const pulse_ml_clv_result_t *r, pulse_buf_t *out)
{
    char d0[16], c0[16], c1[16], e1[16];
    day_str(r->first_day, d0), day_str(r->cutoff - 1, c0), day_str(r->cutoff, c1), day_str(r->end_day - 1, e1);
    pulse_buf_printf(out,
                     "{\"horizon_days\":%d,\"discount\":%g,\"calibration\":[\"%s\",\"%s\"],\"holdout\":[\"%s\",\"%s\"],"
                     "\"customers\":%zu,\"repeat_customers\":%zu,\"holdout_buyers\":%zu,\"n_train\":%zu,\"n_valid\":%zu,"
                     "\"n_test\":%zu,\"chosen\":\"%s\",\"selection\":\"lower holdout MAE of spend over horizon_days on the "
                     "test customers\",\"models\":{\"bgnbd\":",
                     (int)r->terms.horizon, r->terms.discount, d0, c0, c1, e1, r->n_customers, r->n_repeat, r->n_buyers, r->n_train,
                     r->n_valid, r->n_test, r->chosen_gbdt ? "clv_gbdt" : "bgnbd");
    candidate_json(&r->bgnbd, r->mean_actual, out);
    if (r->bgnbd.trained) {
        pulse_buf_puts(out, ",\"params\":");
        params_json(&r->cal, out);
    }
    pulse_buf_puts(out, "},\"clv_gbdt\":");
    candidate_json(&r->gbdt, r->mean_actual, out);
    if (r->gbdt.trained)
        pulse_buf_printf(out, ",\"trees\":%d", r->gbdt_trees);
    pulse_buf_puts(out, "}},\"frequency_table\":");
    freq_json(r, out);
    pulse_buf_printf(out, ",\"refit\":{\"model\":\"%s\",\"on\":\"all data\",\"customers\":%zu",
                     r->chosen_gbdt ? "clv_gbdt" : "bgnbd", r->n_full);
    if (r->chosen_gbdt)
        pulse_buf_printf(out, ",\"trees\":%d,\"target\":\"spend in the %d days after the features\"}", r->gbdt_trees,
                         (int)r->terms.horizon);
    else {
        pulse_buf_puts(out, ",\"params\":");
        params_json(&r->full, out);
        pulse_buf_putc(out, '}');
    }
    pulse_buf_printf(out, ",\"seconds\":%.4f}", r->seconds);
}
