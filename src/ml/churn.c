/* A churn model ready to score: see churn.h. */
#include "ml/churn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml/bytes.h"

#define BLEND_MAGIC "PBLD"
#define BLEND_VERSION 1u

void pulse_ml_churn_blend_pack(double logreg_weight, const unsigned char *logreg, size_t logreg_len, const unsigned char *gbdt,
                               size_t gbdt_len, unsigned char **out, size_t *out_len)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_append(&b, BLEND_MAGIC, 4);
    pulse_ml_put_u32(&b, BLEND_VERSION);
    pulse_ml_put_f64(&b, logreg_weight);
    pulse_ml_put_u64(&b, logreg_len);
    pulse_buf_append(&b, (const char *)logreg, logreg_len);
    pulse_ml_put_u64(&b, gbdt_len);
    pulse_buf_append(&b, (const char *)gbdt, gbdt_len);
    *out = (unsigned char *)b.data;
    *out_len = b.len;
}

/* Opens both parts of a blend payload (every length checked against what is left). */
static int open_blend(pulse_ml_churn_t *c, const unsigned char *p, size_t len, char *err, size_t errlen)
{
    pulse_ml_reader_t r;
    pulse_ml_reader_init(&r, p, len);
    const unsigned char *magic, *lr, *gb;
    uint32_t version;
    uint64_t lr_len, gb_len;
    double w;
    if (pulse_ml_get_bytes(&r, 4, &magic) != 0 || memcmp(magic, BLEND_MAGIC, 4) != 0 || pulse_ml_get_u32(&r, &version) != 0 ||
        version != BLEND_VERSION || pulse_ml_get_f64(&r, &w) != 0 || !(w >= 0 && w <= 1) || pulse_ml_get_u64(&r, &lr_len) != 0 ||
        lr_len > r.left || pulse_ml_get_bytes(&r, (size_t)lr_len, &lr) != 0 || pulse_ml_get_u64(&r, &gb_len) != 0 ||
        gb_len != r.left || pulse_ml_get_bytes(&r, (size_t)gb_len, &gb) != 0) {
        snprintf(err, errlen, "the blended model's payload is malformed");
        return -1;
    }
    c->logreg_weight = w;
    c->logreg = pulse_ml_logreg_load(lr, (size_t)lr_len, err, errlen);
    if (c->logreg == NULL)
        return -1;
    c->gbdt = pulse_gbdt_load(gb, (size_t)gb_len, err, errlen);
    if (c->gbdt == NULL)
        return -1;
    if (pulse_gbdt_n_features(c->gbdt) != pulse_ml_logreg_n_features(c->logreg)) {
        snprintf(err, errlen, "the blended models disagree on the features");
        return -1;
    }
    return 0;
}

int pulse_ml_churn_open(pulse_ml_churn_t *c, const unsigned char *bytes, size_t len, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->model = pulse_ml_model_load(bytes, len, err, errlen);
    if (c->model == NULL)
        return -1;
    pulse_ml_model_t *m = c->model;
    int ok = 0;
    if (m->kind == PULSE_ML_CHURN_GBDT)
        ok = (c->gbdt = pulse_gbdt_load(m->payload, m->payload_len, err, errlen)) != NULL;
    else if (m->kind == PULSE_ML_CHURN_LOGREG)
        ok = (c->logreg = pulse_ml_logreg_load(m->payload, m->payload_len, err, errlen)) != NULL;
    else if (m->kind == PULSE_ML_CHURN_BLEND)
        ok = open_blend(c, m->payload, m->payload_len, err, errlen) == 0;
    else
        snprintf(err, errlen, "a %s model is not a churn model", pulse_ml_model_kind_name(m->kind));
    size_t nf = c->gbdt ? pulse_gbdt_n_features(c->gbdt) : c->logreg ? pulse_ml_logreg_n_features(c->logreg) : 0;
    if (ok && nf != m->n_features)
        snprintf(err, errlen, "the model expects %zu features, its container lists %zu", nf, m->n_features);
    else if (ok)
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

/* Log-odds of a logistic regression's probability; the clamp only matters past |z| ~ 34. */
static double logit(double p)
{
    p = fmin(fmax(p, 1e-15), 1 - 1e-15);
    return log(p / (1 - p));
}

static double blended(const pulse_ml_churn_t *c, double p_logreg, double margin_trees)
{
    double z = c->logreg_weight * logit(p_logreg) + (1 - c->logreg_weight) * margin_trees;
    return 1 / (1 + exp(-z));
}

void pulse_ml_churn_predict(const pulse_ml_churn_t *c, const pulse_ml_data_t *d, double *out, int threads)
{
    if (c->gbdt && c->logreg) {
        double *lr = pulse_xmalloc((d->n_rows + 1) * sizeof(double));
        pulse_ml_logreg_predict(c->logreg, d, lr);
        pulse_gbdt_predict_threads(c->gbdt, d, out, 0, threads);
        for (size_t i = 0; i < d->n_rows; i++)
            out[i] = blended(c, lr[i], out[i]);
        free(lr);
    } else if (c->gbdt) {
        pulse_gbdt_predict_threads(c->gbdt, d, out, 1, threads);
    } else {
        pulse_ml_logreg_predict(c->logreg, d, out);
    }
}

double pulse_ml_churn_predict_row(const pulse_ml_churn_t *c, const float *row)
{
    if (c->gbdt && c->logreg)
        return blended(c, pulse_ml_logreg_predict_row(c->logreg, row), pulse_gbdt_predict_row(c->gbdt, row, 0));
    return c->gbdt ? pulse_gbdt_predict_row(c->gbdt, row, 1) : pulse_ml_logreg_predict_row(c->logreg, row);
}

void pulse_ml_churn_contributions(const pulse_ml_churn_t *c, const float *row, double *contrib)
{
    size_t n = c->model->n_features;
    if (c->gbdt && c->logreg) {
        double *lr = pulse_xmalloc((n + 1) * sizeof(double));
        pulse_gbdt_contributions(c->gbdt, row, contrib);
        lr[n] = pulse_ml_logreg_contributions(c->logreg, row, lr);
        for (size_t j = 0; j <= n; j++)
            contrib[j] = c->logreg_weight * lr[j] + (1 - c->logreg_weight) * contrib[j];
        free(lr);
    } else if (c->gbdt) {
        pulse_gbdt_contributions(c->gbdt, row, contrib);
    } else {
        contrib[n] = pulse_ml_logreg_contributions(c->logreg, row, contrib);
    }
}

struct pulse_ml_explainer_t {
    const pulse_ml_churn_t *c;
    pulse_gbdt_paths_t *paths; /* NULL: the trees are walked row by row */
};

pulse_ml_explainer_t *pulse_ml_explainer_new(const pulse_ml_churn_t *c)
{
    pulse_ml_explainer_t *e = pulse_xmalloc(sizeof(*e));
    e->c = c;
    e->paths = c->gbdt ? pulse_gbdt_paths_new(c->gbdt) : NULL;
    return e;
}

void pulse_ml_explainer_free(pulse_ml_explainer_t *e)
{
    if (e == NULL)
        return;
    pulse_gbdt_paths_free(e->paths);
    free(e);
}

void pulse_ml_explain_block(const pulse_ml_explainer_t *e, const pulse_ml_data_t *d, size_t row0, size_t nr, double *contrib)
{
    const pulse_ml_churn_t *c = e->c;
    size_t n = c->model->n_features;
    float *row = pulse_xmalloc((n + 1) * sizeof(float));
    double *lr = pulse_xmalloc((n + 1) * sizeof(double));
    if (e->paths)
        pulse_gbdt_paths_contributions(e->paths, d, row0, nr, contrib);
    for (size_t r = 0; r < nr; r++) {
        double *out = contrib + r * (n + 1);
        if (e->paths && !c->logreg)
            continue;
        for (size_t j = 0; j < n; j++)
            row[j] = d->x[j * d->n_rows + row0 + r];
        if (!e->paths) {
            pulse_ml_churn_contributions(c, row, out);
            continue;
        }
        lr[n] = pulse_ml_logreg_contributions(c->logreg, row, lr); /* a blend, as pulse_ml_churn_contributions */
        for (size_t j = 0; j <= n; j++)
            out[j] = c->logreg_weight * lr[j] + (1 - c->logreg_weight) * out[j];
    }
    free(lr);
    free(row);
}

/* x comes before y: stronger, or as strong and an earlier feature. */
static int stronger(const pulse_ml_push_t *x, const pulse_ml_push_t *y)
{
    double ax = fabs(x->v), ay = fabs(y->v);
    return ax != ay ? ax > ay : x->j < y->j;
}

/* Puts p into list (strongest first, *len of at most PULSE_ML_REASONS_PER_SIDE), when it is
 * among the strongest. */
static void keep_strongest(pulse_ml_push_t *list, int *len, pulse_ml_push_t p)
{
    int k = *len;
    if (k == PULSE_ML_REASONS_PER_SIDE) {
        if (!stronger(&p, &list[k - 1]))
            return;
        k--; /* the weakest goes */
    } else {
        (*len)++;
    }
    for (; k > 0 && stronger(&p, &list[k - 1]); k--)
        list[k] = list[k - 1];
    list[k] = p;
}

size_t pulse_ml_reasons(const double *contrib, size_t n, pulse_ml_push_t *out)
{
    /* the strongest of each side in one pass, then merged: what sorting every push and walking
     * them gave, without the sort (it was 10% of a scoring run of 3.5 M rows) */
    pulse_ml_push_t up[PULSE_ML_REASONS_PER_SIDE], down[PULSE_ML_REASONS_PER_SIDE];
    int n_up = 0, n_down = 0;
    for (size_t j = 0; j < n; j++) {
        pulse_ml_push_t p = {contrib[j], j};
        if (fabs(p.v) < 1e-6)
            continue;
        if (p.v > 0)
            keep_strongest(up, &n_up, p);
        else
            keep_strongest(down, &n_down, p);
    }
    size_t k = 0;
    for (int a = 0, b = 0; a < n_up || b < n_down;)
        out[k++] = b == n_down || (a < n_up && stronger(&up[a], &down[b])) ? up[a++] : down[b++];
    return k;
}
