/* A lifetime-value model ready to score: see clvmodel.h. Payload: u32 horizon days, f64 monthly
 * discount, then for bgnbd the eight f64 r, alpha, a, b, p, q, gamma, spend_new, for clv_gbdt the
 * trees' own bytes ("PGBT"). */
#include "ml/clvmodel.h"

#include "analytics/features.h"
#include "core/buf.h"
#include "ml/bytes.h"
#include "ml/clvsum.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAYS_PER_MONTH 30.0

static const char *const summary_names[] = {"x", "t_x", "T", "zbar"};

static void put_terms(pulse_buf_t *b, pulse_ml_clv_terms_t t)
{
    pulse_ml_put_u32(b, (uint32_t)t.horizon);
    pulse_ml_put_f64(b, t.discount);
}

pulse_ml_model_t *pulse_ml_clv_pack_bgnbd(const pulse_ml_clv_bgnbd_t *m, pulse_ml_clv_terms_t terms)
{
    pulse_ml_model_t *c = pulse_ml_model_new(PULSE_ML_CLV_BGNBD);
    for (size_t j = 0; j < 4; j++)
        pulse_ml_model_add_feature(c, summary_names[j], 0, 0, NULL);
    pulse_buf_t b = PULSE_BUF_INIT;
    put_terms(&b, terms);
    const double v[] = {m->bg.r, m->bg.alpha, m->bg.a, m->bg.b, m->gg.p, m->gg.q, m->gg.gamma, m->spend_new};
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++)
        pulse_ml_put_f64(&b, v[k]);
    pulse_ml_model_set_payload(c, (const unsigned char *)b.data, b.len);
    pulse_buf_free(&b);
    return c;
}

pulse_ml_model_t *pulse_ml_clv_pack_gbdt(const pulse_gbdt_t *g, char *const *names, size_t n, pulse_ml_clv_terms_t terms)
{
    pulse_ml_model_t *c = pulse_ml_model_new(PULSE_ML_CLV_GBDT);
    for (size_t j = 0; j < n; j++)
        pulse_ml_model_add_feature(c, names[j], 0, 0, NULL);
    unsigned char *bytes;
    size_t len;
    pulse_gbdt_save(g, &bytes, &len);
    pulse_buf_t b = PULSE_BUF_INIT;
    put_terms(&b, terms);
    pulse_buf_append(&b, (const char *)bytes, len);
    free(bytes);
    pulse_ml_model_set_payload(c, (const unsigned char *)b.data, b.len);
    pulse_buf_free(&b);
    return c;
}

static int read_bgnbd(pulse_ml_reader_t *r, pulse_ml_clv_bgnbd_t *m, char *err, size_t errlen)
{
    double v[8];
    for (size_t k = 0; k < 8; k++)
        if (pulse_ml_get_f64(r, &v[k]) != 0 || !(isfinite(v[k]) && v[k] > 0))
            return pulse_fail(err, errlen, "the BG/NBD parameters are missing or not positive");
    memset(m, 0, sizeof(*m));
    m->bg.r = v[0], m->bg.alpha = v[1], m->bg.a = v[2], m->bg.b = v[3];
    m->gg.p = v[4], m->gg.q = v[5], m->gg.gamma = v[6];
    m->spend_new = v[7];
    if (r->left != 0)
        return pulse_fail(err, errlen, "%zu stray bytes after the BG/NBD parameters", r->left);
    return 0;
}

int pulse_ml_clv_open(pulse_ml_clv_t *c, const unsigned char *bytes, size_t len, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    c->model = pulse_ml_model_load(bytes, len, err, errlen);
    if (c->model == NULL)
        return -1;
    const pulse_ml_model_t *m = c->model;
    pulse_ml_reader_t r;
    pulse_ml_reader_init(&r, m->payload, m->payload_len);
    uint32_t horizon = 0;
    int ok = 0;
    if (m->kind != PULSE_ML_CLV_BGNBD && m->kind != PULSE_ML_CLV_GBDT)
        snprintf(err, errlen, "a %s model is not a lifetime-value model", pulse_ml_model_kind_name(m->kind));
    else if (pulse_ml_get_u32(&r, &horizon) != 0 || pulse_ml_get_f64(&r, &c->terms.discount) != 0 || horizon < 1 ||
             horizon > 3650 || !(c->terms.discount >= 0 && c->terms.discount < 1))
        snprintf(err, errlen, "the lifetime-value terms (horizon, discount) are missing or out of range");
    else if (m->kind == PULSE_ML_CLV_BGNBD && m->n_features != 4)
        snprintf(err, errlen, "a BG/NBD model lists %zu features, not x, t_x, T and zbar", m->n_features);
    else if (m->kind == PULSE_ML_CLV_BGNBD)
        ok = read_bgnbd(&r, &c->bg, err, errlen) == 0;
    else {
        c->gbdt = pulse_gbdt_load(r.p, r.left, err, errlen);
        if (c->gbdt && pulse_gbdt_n_features(c->gbdt) != m->n_features)
            snprintf(err, errlen, "the model expects %zu features, its container lists %zu", pulse_gbdt_n_features(c->gbdt),
                     m->n_features);
        else
            ok = c->gbdt != NULL;
    }
    c->terms.horizon = (int32_t)horizon;
    if (ok)
        return 0;
    pulse_ml_clv_close(c);
    return -1;
}

void pulse_ml_clv_close(pulse_ml_clv_t *c)
{
    pulse_gbdt_free(c->gbdt);
    pulse_ml_model_free(c->model);
    memset(c, 0, sizeof(*c));
}

double pulse_ml_clv_bgnbd_spend(const pulse_ml_clv_bgnbd_t *m, double x, double zbar)
{
    if (!(zbar > 0))
        x = 0;
    double s = pulse_clv_gamma_gamma_spend(&m->gg, x, zbar);
    return isfinite(s) ? s : m->spend_new;
}

/* End of step k (1-based) of the horizon, in days. */
static double step_end(pulse_ml_clv_terms_t t, int k)
{
    double e = k * DAYS_PER_MONTH;
    return e < t.horizon ? e : (double)t.horizon;
}

static int n_steps(pulse_ml_clv_terms_t t)
{
    return (int)ceil(t.horizon / DAYS_PER_MONTH);
}

double pulse_ml_clv_bgnbd_value(const pulse_ml_clv_bgnbd_t *m, pulse_ml_clv_terms_t terms, double x, double t_x, double T,
                                double zbar)
{
    double spend = pulse_ml_clv_bgnbd_spend(m, x, zbar), value = 0, prev = 0;
    for (int k = 1; k <= n_steps(terms); k++) {
        double t = step_end(terms, k), cum = pulse_clv_bgnbd_expected(&m->bg, t, x, t_x, T);
        value += spend * (cum - prev) / pow(1 + terms.discount, t / DAYS_PER_MONTH);
        prev = cum;
    }
    return value;
}

double pulse_ml_clv_discount_factor(pulse_ml_clv_terms_t terms)
{
    double f = 0, prev = 0;
    for (int k = 1; k <= n_steps(terms); k++) {
        double t = step_end(terms, k);
        f += (t - prev) / terms.horizon / pow(1 + terms.discount, t / DAYS_PER_MONTH);
        prev = t;
    }
    return f;
}

double pulse_ml_clv_value_row(const pulse_ml_clv_t *c, const float *row)
{
    if (c->gbdt) {
        double s = pulse_gbdt_predict_row(c->gbdt, row, 0);
        return (s > 0 ? s : 0) * pulse_ml_clv_discount_factor(c->terms);
    }
    double x = row[0], t_x = row[1], T = row[2], zbar = row[3];
    if (!(x >= 0 && t_x >= 0 && T > 0 && t_x <= T) || (x > 0 && !(t_x > 0)))
        return NAN;
    return pulse_ml_clv_bgnbd_value(&c->bg, c->terms, x, t_x, T, zbar == zbar ? zbar : 0);
}

/* The trees' columns for the customers, from a feature matrix by name ("analytics.<feature>"); a
 * feature the matrix lacks is missing. Column-major, n rows; malloc'd. */
static float *feature_rows(const pulse_ml_model_t *m, const pulse_feature_matrix_t *fm, const uint32_t *customer, size_t n)
{
    float *x = pulse_xmalloc((m->n_features * n + 1) * sizeof(float));
    for (size_t j = 0; j < m->n_features; j++) {
        const char *name = m->features[j].name;
        name += strncmp(name, "analytics.", 10) == 0 ? 10 : 0;
        long col = -1;
        for (size_t k = 0; k < fm->n_cols && col < 0; k++)
            if (strcmp(fm->info[k].name, name) == 0)
                col = (long)k;
        for (size_t i = 0; i < n; i++)
            x[j * n + i] = col < 0 ? NAN : fm->x[(size_t)col * fm->n_rows + (customer[i] - fm->first)];
    }
    return x;
}

int pulse_ml_clv_value_store(const pulse_ml_clv_t *c, const pulse_txstore_t *st, uint32_t **customer, double **value, size_t *n,
                             char *err, size_t errlen)
{
    pulse_clvsum_t sum;
    pulse_clvsum_build(st, &sum);
    double *v = pulse_xmalloc((sum.n + 1) * sizeof(double));
    if (c->gbdt) {
        pulse_features_opts_t fo;
        memset(&fo, 0, sizeof(fo));
        fo.as_of = sum.end_day;
        pulse_feature_matrix_t fm;
        if (pulse_features_compute(st, &fo, 0, 0, &fm, err, errlen) != 0) {
            free(v);
            pulse_clvsum_free(&sum);
            return -1;
        }
        /* the batch scorer, on both threads: bit-identical to pulse_ml_clv_value_row and ~100x
         * faster than walking every tree per row (3.5 M customers: minutes before) */
        pulse_ml_data_t d = {.n_rows = sum.n, .n_cols = c->model->n_features};
        d.x = feature_rows(c->model, &fm, sum.customer, sum.n);
        pulse_features_matrix_free(&fm);
        pulse_gbdt_predict_threads(c->gbdt, &d, v, 0, 2);
        double factor = pulse_ml_clv_discount_factor(c->terms);
        for (size_t i = 0; i < sum.n; i++)
            v[i] = (v[i] > 0 ? v[i] : 0) * factor;
        free(d.x);
    } else {
        for (size_t i = 0; i < sum.n; i++)
            v[i] = pulse_ml_clv_bgnbd_value(&c->bg, c->terms, sum.x[i], sum.t_x[i], sum.T[i], sum.zbar[i]);
    }
    *customer = sum.customer;
    sum.customer = NULL;
    *value = v;
    *n = sum.n;
    pulse_clvsum_free(&sum);
    return 0;
}
