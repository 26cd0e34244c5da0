/* Churn training pipeline (see train.h). */
#include "ml/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "ml/churn.h"
#include "ml/logreg.h"
#include "ml/split.h"

/* Gradient-boosted trees (src/ml/gbdt.c) are part of this build; 0 trains logistic regression only. */
#define PULSE_ML_HAVE_GBDT 1

#if PULSE_ML_HAVE_GBDT
#include "ml/gbdt.h"
#endif

void pulse_ml_train_options_init(pulse_ml_train_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->seed = 42;
    o->test_fraction = 0.2;
    o->valid_fraction = 0.2;
    o->min_rows = 50;
    o->min_per_class = 10;
    o->use_gbdt = 1;
    o->logreg_lambda = 1.0;
    o->gbdt_threads = 2;
}

int pulse_ml_train_have_gbdt(void)
{
    return PULSE_ML_HAVE_GBDT;
}

static void shares(double *v, size_t n)
{
    double s = 0;
    for (size_t j = 0; j < n; j++)
        s += v[j] > 0 ? v[j] : 0;
    for (size_t j = 0; j < n; j++)
        v[j] = s > 0 && v[j] > 0 ? v[j] / s : 0;
}

/* Raw (uncalibrated) probabilities of a candidate on the validation and test rows: kept until
 * every candidate is trained, because the blend is made from its parts' scores. */
typedef struct scores_t {
    double *valid, *test;
} scores_t;

static void scores_free(scores_t *s)
{
    free(s->valid);
    free(s->test);
}

/* Calibrates on the validation scores and measures on the test scores (both raw probabilities;
 * pt is calibrated in place). */
static void evaluate(pulse_ml_candidate_t *c, const double *pv, const pulse_ml_data_t *valid, double *pt,
                     const pulse_ml_data_t *test)
{
    c->valid_auc = pulse_ml_roc_auc(pv, valid->y, valid->n_rows);
    /* Too few validation rows to fit a curve (a 50-row table leaves 8): the raw probabilities stay. */
    char why[160];
    if (pulse_ml_calibration_fit(pv, valid->y, valid->n_rows, &c->calibration, why, sizeof(why)) != 0)
        pulse_ml_calibration_init(&c->calibration);
    c->test_auc_raw = pulse_ml_roc_auc(pt, test->y, test->n_rows);
    for (size_t i = 0; i < test->n_rows; i++)
        pt[i] = pulse_ml_calibration_apply(&c->calibration, pt[i]);
    pulse_ml_metrics_compute(pt, test->y, test->n_rows, &c->test);
}

/* Evaluates a candidate from its raw scores, leaving them as they are. */
static void evaluate_scores(pulse_ml_candidate_t *c, const scores_t *sc, const pulse_ml_data_t *va, const pulse_ml_data_t *te)
{
    double *pt = pulse_xmalloc((te->n_rows + 1) * sizeof(double));
    memcpy(pt, sc->test, te->n_rows * sizeof(double));
    evaluate(c, sc->valid, va, pt, te);
    free(pt);
}

static int run_logreg(pulse_ml_candidate_t *c, scores_t *sc, const pulse_ml_data_t *tr, const pulse_ml_data_t *va,
                      const pulse_ml_data_t *te, const pulse_ml_train_options_t *o, char *err, size_t errlen)
{
    pulse_ml_logreg_params_t p;
    pulse_ml_logreg_params_init(&p);
    p.lambda = o->logreg_lambda;
    pulse_ml_logreg_t *m;
    double t0 = pulse_now_s(), c0 = pulse_cpu_s();
    if (pulse_ml_logreg_train(tr, &p, &m, err, errlen) != 0)
        return -1;
    c->train_seconds = pulse_now_s() - t0;
    c->train_cpu_seconds = pulse_cpu_s() - c0;
    c->iterations = pulse_ml_logreg_iterations(m);
    sc->valid = pulse_xmalloc((va->n_rows + 1) * sizeof(double));
    sc->test = pulse_xmalloc((te->n_rows + 1) * sizeof(double));
    pulse_ml_logreg_predict(m, va, sc->valid);
    pulse_ml_logreg_predict(m, te, sc->test);
    evaluate_scores(c, sc, va, te);
    c->importance = pulse_xmalloc((tr->n_cols + 1) * sizeof(double));
    pulse_ml_logreg_importance(m, c->importance);
    shares(c->importance, tr->n_cols);
    pulse_ml_logreg_save(m, &c->payload, &c->payload_len);
    pulse_ml_logreg_free(m);
    c->trained = 1;
    return 0;
}

#if PULSE_ML_HAVE_GBDT
static int run_gbdt(pulse_ml_candidate_t *c, scores_t *sc, const pulse_ml_data_t *tr, const pulse_ml_data_t *va,
                    const pulse_ml_data_t *te, const pulse_ml_train_options_t *o, char *err, size_t errlen)
{
    pulse_gbdt_params_t p;
    pulse_gbdt_params_init(&p);
    p.seed = o->seed;
    p.threads = o->gbdt_threads > 0 ? o->gbdt_threads : 1;
    pulse_gbdt_t *m;
    pulse_gbdt_report_t rep;
    double t0 = pulse_now_s(), c0 = pulse_cpu_s();
    if (pulse_gbdt_train(tr, va, &p, &m, &rep, err, errlen) != 0)
        return -1;
    c->train_seconds = pulse_now_s() - t0;
    c->train_cpu_seconds = pulse_cpu_s() - c0;
    c->iterations = rep.best_iteration;
    sc->valid = pulse_xmalloc((va->n_rows + 1) * sizeof(double));
    sc->test = pulse_xmalloc((te->n_rows + 1) * sizeof(double));
    pulse_gbdt_predict(m, va, sc->valid, 1);
    pulse_gbdt_predict(m, te, sc->test, 1);
    evaluate_scores(c, sc, va, te);
    c->importance = pulse_xmalloc((tr->n_cols + 1) * sizeof(double));
    pulse_gbdt_importance(m, c->importance);
    shares(c->importance, tr->n_cols);
    pulse_gbdt_save(m, &c->payload, &c->payload_len);
    pulse_gbdt_free(m);
    c->trained = 1;
    return 0;
}

/* Log-odds of a probability, clamped as the scorer clamps it (ml/churn.c). */
static double logit(double p)
{
    p = fmin(fmax(p, 1e-15), 1 - 1e-15);
    return log(p / (1 - p));
}

static void blend_scores(double w, const double *lr, const double *gb, size_t n, double *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = 1 / (1 + exp(-(w * logit(lr[i]) + (1 - w) * logit(gb[i]))));
}

/* The blend of the two trained candidates: the weight on the logistic regression picked from a
 * small grid by validation AUC (a coarse grid: a finer one would fit the validation rows more
 * than it would help). Often the best of the three on tabular churn data: the linear model sees
 * smooth trends the trees cut into steps, the trees see interactions it misses. */
static void run_blend(pulse_ml_candidate_t *c, const pulse_ml_candidate_t *lr, const scores_t *lr_sc,
                      const pulse_ml_candidate_t *gb, const scores_t *gb_sc, const pulse_ml_data_t *va, const pulse_ml_data_t *te,
                      size_t n_cols)
{
    static const double GRID[] = {0.25, 0.5, 0.75};
    double best_w = GRID[0], best_auc = -1;
    scores_t sc = {pulse_xmalloc((va->n_rows + 1) * sizeof(double)), pulse_xmalloc((te->n_rows + 1) * sizeof(double))};
    for (size_t k = 0; k < sizeof(GRID) / sizeof(GRID[0]); k++) {
        blend_scores(GRID[k], lr_sc->valid, gb_sc->valid, va->n_rows, sc.valid);
        double auc = pulse_ml_roc_auc(sc.valid, va->y, va->n_rows);
        if (auc > best_auc)
            best_auc = auc, best_w = GRID[k];
    }
    blend_scores(best_w, lr_sc->valid, gb_sc->valid, va->n_rows, sc.valid);
    blend_scores(best_w, lr_sc->test, gb_sc->test, te->n_rows, sc.test);
    c->train_seconds = lr->train_seconds + gb->train_seconds;
    c->train_cpu_seconds = lr->train_cpu_seconds + gb->train_cpu_seconds;
    c->iterations = gb->iterations;
    c->blend_logreg_weight = best_w;
    evaluate_scores(c, &sc, va, te);
    scores_free(&sc);
    c->importance = pulse_xmalloc((n_cols + 1) * sizeof(double));
    for (size_t j = 0; j < n_cols; j++)
        c->importance[j] = best_w * lr->importance[j] + (1 - best_w) * gb->importance[j];
    pulse_ml_churn_blend_pack(best_w, lr->payload, lr->payload_len, gb->payload, gb->payload_len, &c->payload, &c->payload_len);
    c->trained = 1;
}
#endif

static int interrupted(const pulse_ml_train_options_t *o, const char *candidate)
{
    return o->interrupt != NULL && o->interrupt(o->interrupt_ud, candidate) != 0;
}

int pulse_ml_train_churn(const pulse_ml_table_t *t, const pulse_ml_train_options_t *o, pulse_ml_train_result_t *out, char *err,
                         size_t errlen)
{
    pulse_ml_train_options_t def;
    if (o == NULL) {
        pulse_ml_train_options_init(&def);
        o = &def;
    }
    memset(out, 0, sizeof(*out));
    const pulse_ml_data_t *d = &t->data;
    size_t n = d->n_rows, pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += d->y[i] > 0.5f;
    size_t neg = n - pos;
    if (n < o->min_rows)
        return pulse_fail(err, errlen, "at least %zu labelled rows are needed to train, there are %zu", o->min_rows, n);
    if (pos == 0 || neg == 0)
        return pulse_fail(err, errlen, "the label '%s' has a single class (%zu rows %s): a churn model needs both",
                          t->label ? t->label : "label", n, pos ? "churned" : "retained");
    if (pos < o->min_per_class || neg < o->min_per_class)
        return pulse_fail(err, errlen, "at least %zu churned and %zu retained rows are needed, there are %zu and %zu",
                          o->min_per_class, o->min_per_class, pos, neg);
    if (d->n_cols == 0)
        return pulse_fail(err, errlen, "the table has no feature columns besides the label");

    double t0 = pulse_now_s();
    pulse_ml_split_t sp;
    if (pulse_ml_split_stratified(d->y, n, o->test_fraction, o->valid_fraction, o->seed, &sp, err, errlen) != 0)
        return -1;
    pulse_ml_data_t tr, va, te;
    pulse_ml_subset(d, sp.train, sp.n_train, &tr);
    pulse_ml_subset(d, sp.valid, sp.n_valid, &va);
    pulse_ml_subset(d, sp.test, sp.n_test, &te);
    out->seed = o->seed;
    out->n_rows = n;
    out->n_positive = pos;
    out->n_train = sp.n_train;
    out->n_valid = sp.n_valid;
    out->n_test = sp.n_test;
    out->n_features = d->n_cols;
    pulse_ml_split_free(&sp);

    int rc = 0;
    scores_t lr_sc = {NULL, NULL}, gb_sc = {NULL, NULL};
    pulse_ml_candidate_t *c = &out->cand[out->n_cand++];
    c->name = "logreg";
    c->kind = PULSE_ML_CHURN_LOGREG;
    pulse_ml_calibration_init(&c->calibration);
    rc = interrupted(o, c->name) ? 1 : run_logreg(c, &lr_sc, &tr, &va, &te, o, err, errlen);
#if PULSE_ML_HAVE_GBDT
    if (rc == 0 && o->use_gbdt) {
        c = &out->cand[out->n_cand++];
        c->name = "gbdt";
        c->kind = PULSE_ML_CHURN_GBDT;
        pulse_ml_calibration_init(&c->calibration);
        rc = interrupted(o, c->name) ? 1 : run_gbdt(c, &gb_sc, &tr, &va, &te, o, err, errlen);
    }
    if (rc == 0 && o->use_gbdt && interrupted(o, "blend"))
        rc = 1;
    if (rc == 0 && o->use_gbdt) {
        c = &out->cand[out->n_cand++];
        c->name = "blend";
        c->kind = PULSE_ML_CHURN_BLEND;
        pulse_ml_calibration_init(&c->calibration);
        run_blend(c, &out->cand[0], &lr_sc, &out->cand[1], &gb_sc, &va, &te, d->n_cols);
    }
#endif
    scores_free(&lr_sc);
    scores_free(&gb_sc);
    pulse_ml_subset_free(&tr);
    pulse_ml_subset_free(&va);
    pulse_ml_subset_free(&te);
    if (rc != 0) {
        pulse_ml_train_result_free(out);
        return rc > 0 ? 1 : -1;
    }
    /* Selection on validation AUC only: the test rows stay unseen until the report. A tie keeps
     * the simpler model (logistic regression, the one a person can read, then the trees). The
     * blend's weight was picked on the same rows, which flatters it a little; the grid is
     * coarse so that this stays small. */
    out->chosen = 0;
    for (size_t k = 1; k < out->n_cand; k++)
        if (out->cand[k].valid_auc > out->cand[out->chosen].valid_auc)
            out->chosen = (int)k;

    const pulse_ml_candidate_t *ch = &out->cand[out->chosen];
    pulse_ml_model_t *m = pulse_ml_model_new(ch->kind);
    for (size_t j = 0; j < d->n_cols; j++) {
        int cat = d->categorical && d->categorical[j];
        pulse_ml_model_add_feature(m, d->names[j], cat, cat ? d->n_categories[j] : 0, cat ? t->levels[j] : NULL);
    }
    pulse_ml_model_set_payload(m, ch->payload, ch->payload_len);
    m->calibration = ch->calibration;
    if (ch->calibration.n_points > 0) { /* the container owns its own copy of the curve */
        size_t np = ch->calibration.n_points;
        m->calibration.x = pulse_xmalloc(np * sizeof(double));
        m->calibration.y = pulse_xmalloc(np * sizeof(double));
        memcpy(m->calibration.x, ch->calibration.x, np * sizeof(double));
        memcpy(m->calibration.y, ch->calibration.y, np * sizeof(double));
    }
    out->model = m;
    out->seconds = pulse_now_s() - t0;
    pulse_buf_t js = PULSE_BUF_INIT;
    pulse_ml_train_json(out, &js);
    pulse_ml_model_set_meta(m, js.data);
    pulse_buf_free(&js);
    return 0;
}

void pulse_ml_train_result_free(pulse_ml_train_result_t *r)
{
    for (size_t k = 0; k < r->n_cand; k++) {
        pulse_ml_calibration_free(&r->cand[k].calibration);
        free(r->cand[k].importance);
        free(r->cand[k].payload);
    }
    pulse_ml_model_free(r->model);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------------------------------
 * JSON: a flat emitter; NaN and infinities (an AUC over one class) become null. */

static void key(pulse_buf_t *b, const char *k)
{
    pulse_buf_putc(b, '"');
    pulse_buf_json_escape(b, k, strlen(k));
    pulse_buf_puts(b, "\":");
}

void pulse_ml_metrics_json(const pulse_ml_metrics_t *m, pulse_buf_t *b)
{
    pulse_buf_putc(b, '{');
    key(b, "roc_auc"), pulse_buf_json_number(b, m->roc_auc), pulse_buf_putc(b, ',');
    key(b, "pr_auc"), pulse_buf_json_number(b, m->pr_auc), pulse_buf_putc(b, ',');
    key(b, "log_loss"), pulse_buf_json_number(b, m->log_loss), pulse_buf_putc(b, ',');
    key(b, "brier"), pulse_buf_json_number(b, m->brier), pulse_buf_putc(b, ',');
    key(b, "accuracy"), pulse_buf_json_number(b, m->accuracy), pulse_buf_putc(b, ',');
    key(b, "precision"), pulse_buf_json_number(b, m->precision), pulse_buf_putc(b, ',');
    key(b, "recall"), pulse_buf_json_number(b, m->recall), pulse_buf_putc(b, ',');
    key(b, "f1"), pulse_buf_json_number(b, m->f1), pulse_buf_putc(b, ',');
    key(b, "threshold"), pulse_buf_json_number(b, m->threshold), pulse_buf_putc(b, ',');
    key(b, "n"), pulse_buf_put_uint(b, m->n), pulse_buf_putc(b, ',');
    key(b, "positives"), pulse_buf_put_uint(b, m->positives), pulse_buf_putc(b, ',');
    key(b, "confusion");
    pulse_buf_printf(b, "{\"tp\":%zu,\"fp\":%zu,\"tn\":%zu,\"fn\":%zu},", m->confusion.tp, m->confusion.fp, m->confusion.tn,
                     m->confusion.fn);
    key(b, "deciles");
    pulse_buf_putc(b, '[');
    for (int k = 0; k < 10; k++) {
        const pulse_ml_decile_t *d = &m->deciles[k];
        pulse_buf_printf(b, "%s{\"decile\":%d,\"n\":%zu,\"positives\":%zu,\"rate\":", k ? "," : "", k + 1, d->n, d->positives);
        pulse_buf_json_number(b, d->rate);
        pulse_buf_puts(b, ",\"lift\":");
        pulse_buf_json_number(b, d->lift);
        pulse_buf_puts(b, ",\"cumulative_gain\":");
        pulse_buf_json_number(b, d->cum_gain);
        pulse_buf_putc(b, '}');
    }
    pulse_buf_puts(b, "],");
    key(b, "calibration_curve");
    pulse_buf_putc(b, '[');
    for (int k = 0; k < 10; k++) {
        const pulse_ml_calbin_t *c = &m->calibration[k];
        pulse_buf_printf(b, "%s{\"bin\":%d,\"lower\":%.1f,\"upper\":%.1f,\"n\":%zu,\"mean_predicted\":", k ? "," : "", k, k / 10.0,
                         (k + 1) / 10.0, c->n);
        pulse_buf_json_number(b, c->mean_predicted);
        pulse_buf_puts(b, ",\"observed\":");
        pulse_buf_json_number(b, c->observed);
        pulse_buf_putc(b, '}');
    }
    pulse_buf_puts(b, "]}");
}

typedef struct ranked_t {
    double v;
    size_t j;
} ranked_t;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? 1 : -1;
    return (x->j > y->j) - (x->j < y->j);
}

void pulse_ml_train_json(const pulse_ml_train_result_t *r, pulse_buf_t *b)
{
    pulse_buf_putc(b, '{');
    key(b, "seed"), pulse_buf_put_uint(b, r->seed), pulse_buf_putc(b, ',');
    key(b, "rows"), pulse_buf_put_uint(b, r->n_rows), pulse_buf_putc(b, ',');
    key(b, "positives"), pulse_buf_put_uint(b, r->n_positive), pulse_buf_putc(b, ',');
    pulse_buf_printf(b, "\"split\":{\"train\":%zu,\"validation\":%zu,\"test\":%zu},", r->n_train, r->n_valid, r->n_test);
    key(b, "chosen");
    pulse_buf_printf(b, "\"%s\",", r->n_cand ? r->cand[r->chosen].name : "");
    key(b, "chosen_by"), pulse_buf_puts(b, "\"validation roc_auc\",");
    key(b, "seconds"), pulse_buf_json_number(b, r->seconds), pulse_buf_putc(b, ',');
    key(b, "models");
    pulse_buf_putc(b, '{');
    for (size_t k = 0; k < r->n_cand; k++) {
        const pulse_ml_candidate_t *c = &r->cand[k];
        if (k)
            pulse_buf_putc(b, ',');
        key(b, c->name);
        pulse_buf_putc(b, '{');
        key(b, "kind");
        pulse_buf_printf(b, "\"%s\",", pulse_ml_model_kind_name(c->kind));
        key(b, "train_seconds"), pulse_buf_json_number(b, c->train_seconds), pulse_buf_putc(b, ',');
        key(b, "train_cpu_seconds"), pulse_buf_json_number(b, c->train_cpu_seconds), pulse_buf_putc(b, ',');
        key(b, "iterations"), pulse_buf_printf(b, "%d,", c->iterations);
        if (c->kind == PULSE_ML_CHURN_BLEND)
            key(b, "logreg_weight"), pulse_buf_json_number(b, c->blend_logreg_weight), pulse_buf_putc(b, ',');
        key(b, "validation_roc_auc"), pulse_buf_json_number(b, c->valid_auc), pulse_buf_putc(b, ',');
        key(b, "test_roc_auc_uncalibrated"), pulse_buf_json_number(b, c->test_auc_raw), pulse_buf_putc(b, ',');
        key(b, "calibration");
        pulse_buf_printf(b,
                         "{\"method\":\"%s\",\"chosen_by\":\"validation log_loss (out-of-fold for the fitted "
                         "curves)\",\"log_loss_uncalibrated\":",
                         pulse_ml_calibration_name(c->calibration.kind));
        pulse_buf_json_number(b, c->calibration.cv_log_loss[PULSE_ML_CAL_NONE]);
        pulse_buf_puts(b, ",\"log_loss_platt\":");
        pulse_buf_json_number(b, c->calibration.cv_log_loss[PULSE_ML_CAL_PLATT]);
        pulse_buf_puts(b, ",\"log_loss_isotonic\":");
        pulse_buf_json_number(b, c->calibration.cv_log_loss[PULSE_ML_CAL_ISOTONIC]);
        pulse_buf_puts(b, "},");
        key(b, "metrics");
        pulse_ml_metrics_json(&c->test, b);
        pulse_buf_putc(b, ',');
        key(b, "importance");
        pulse_buf_putc(b, '[');
        if (c->importance != NULL && r->model != NULL) {
            ranked_t *rk = pulse_xmalloc((r->n_features + 1) * sizeof(*rk));
            for (size_t j = 0; j < r->n_features; j++)
                rk[j] = (ranked_t){c->importance[j], j};
            qsort(rk, r->n_features, sizeof(*rk), cmp_ranked);
            for (size_t j = 0; j < r->n_features; j++) {
                const char *nm = r->model->features[rk[j].j].name;
                pulse_buf_puts(b, j ? ",{\"feature\":\"" : "{\"feature\":\"");
                pulse_buf_json_escape(b, nm, strlen(nm));
                pulse_buf_puts(b, "\",\"share\":");
                pulse_buf_json_number(b, rk[j].v);
                pulse_buf_putc(b, '}');
            }
            free(rk);
        }
        pulse_buf_puts(b, "]}");
    }
    pulse_buf_puts(b, "}}");
}
