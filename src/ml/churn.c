/* A churn model ready to score: see churn.h. */
#include "ml/churn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pulse_ml_churn_open(pulse_ml_churn_t *c, const unsigned char *bytes, size_t len, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->model = pulse_ml_model_load(bytes, len, err, errlen);
    if (c->model == NULL)
        return -1;
    pulse_ml_model_t *m = c->model;
    if (m->kind == PULSE_ML_CHURN_GBDT)
        c->gbdt = pulse_gbdt_load(m->payload, m->payload_len, err, errlen);
    else if (m->kind == PULSE_ML_CHURN_LOGREG)
        c->logreg = pulse_ml_logreg_load(m->payload, m->payload_len, err, errlen);
    else
        snprintf(err, errlen, "a %s model is not a churn model", pulse_ml_model_kind_name(m->kind));
    size_t nf = c->gbdt ? pulse_gbdt_n_features(c->gbdt) : c->logreg ? pulse_ml_logreg_n_features(c->logreg) : 0;
    if ((c->gbdt || c->logreg) && nf != m->n_features)
        snprintf(err, errlen, "the model expects %zu features, its container lists %zu", nf, m->n_features);
    else if (c->gbdt || c->logreg)
        return 0;
    pulse_ml_churn_close(c);
    return -1;
}

void pulse_ml_churn_close(pulse_ml_churn_t *c)
{
    pulse_gbdt_free(c->gbdt);
    pulse_ml_logreg_free(c->logreg);
    pulse_ml_model_free(c->model);
    memset(c, 0, sizeof(*c));
}

void pulse_ml_churn_predict(const pulse_ml_churn_t *c, const pulse_ml_data_t *d, double *out, int threads)
{
    if (c->gbdt)
        pulse_gbdt_predict_threads(c->gbdt, d, out, 1, threads);
    else
        pulse_ml_logreg_predict(c->logreg, d, out);
}

double pulse_ml_churn_predict_row(const pulse_ml_churn_t *c, const float *row)
{
    return c->gbdt ? pulse_gbdt_predict_row(c->gbdt, row, 1) : pulse_ml_logreg_predict_row(c->logreg, row);
}

void pulse_ml_churn_contributions(const pulse_ml_churn_t *c, const float *row, double *contrib)
{
    if (c->gbdt)
        pulse_gbdt_contributions(c->gbdt, row, contrib);
    else
        pulse_ml_logreg_contributions(c->logreg, row, contrib);
}

static int by_abs_desc(const void *a, const void *b)
{
    const pulse_ml_push_t *x = a, *y = b;
    double ax = fabs(x->v), ay = fabs(y->v);
    if (ax != ay)
        return ax < ay ? 1 : -1;
    return (x->j > y->j) - (x->j < y->j);
}

size_t pulse_ml_reasons(const double *contrib, size_t n, pulse_ml_push_t *out)
{
    for (size_t j = 0; j < n; j++)
        out[j] = (pulse_ml_push_t){contrib[j], j};
    qsort(out, n, sizeof(*out), by_abs_desc);
    size_t k = 0;
    int up = 0, down = 0;
    for (size_t i = 0; i < n && (up < PULSE_ML_REASONS_PER_SIDE || down < PULSE_ML_REASONS_PER_SIDE); i++) {
        double v = out[i].v;
        if (fabs(v) < 1e-6 || (v > 0 && up >= PULSE_ML_REASONS_PER_SIDE) || (v < 0 && down >= PULSE_ML_REASONS_PER_SIDE))
            continue;
        v > 0 ? up++ : down++;
        out[k++] = out[i]; /* k <= i: the kept ones move forward in order */
    }
    return k;
}
