/* Logistic regression by Newton's method (see logreg.h). */
#include "ml/logreg.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ml/bytes.h"

#define LOGREG_MAGIC "PLRG"
#define LOGREG_VERSION 1
#define LOGREG_MAX_COLS 100000
#define LOGREG_MAX_LEVELS 100000

typedef struct lr_col_t {
    int categorical;
    int k;         /* categories (categorical) */
    int n_slots;   /* categorical: one-hot columns (the max_levels most frequent categories) */
    int *slot_of;  /* categorical: k entries, the one-hot column of each code or -1 (no column) */
    int has_ind;   /* numeric with a missing indicator */
    double impute; /* numeric: training mean */
    size_t slot;   /* first encoded column */
} lr_col_t;

struct pulse_ml_logreg_t {
    size_t n_cols, p;
    lr_col_t *cols;
    double *mean, *sd, *beta; /* p each; slot 0 is the intercept (mean 0, sd 1) */
    double lambda;
    int iterations;
};

void pulse_ml_logreg_params_init(pulse_ml_logreg_params_t *p)
{
    p->lambda = 1.0;
    p->max_iter = 100;
    p->tol = 1e-9;
    p->max_levels = 64;
}

static size_t layout(lr_col_t *cols, size_t n_cols)
{
    size_t s = 1;
    for (size_t j = 0; j < n_cols; j++) {
        cols[j].slot = s;
        s += cols[j].categorical ? (size_t)cols[j].n_slots : 1 + (size_t)cols[j].has_ind;
    }
    return s;
}

/* Raw (unstandardised) encoding of one row into z[p]; get(j) reads feature j. */
static void encode_raw(const pulse_ml_logreg_t *m, const float *row, size_t stride, double *z)
{
    memset(z, 0, m->p * sizeof(double));
    z[0] = 1.0;
    for (size_t j = 0; j < m->n_cols; j++) {
        const lr_col_t *c = &m->cols[j];
        float v = row[j * stride];
        if (c->categorical) {
            /* Unknown or missing codes light no one-hot column: the row sits at "no category". */
            if (v >= 0 && v < (float)c->k && v == floorf(v) && c->slot_of[(size_t)v] >= 0)
                z[c->slot + (size_t)c->slot_of[(size_t)v]] = 1.0;
        } else if (isnan(v)) {
            z[c->slot] = c->impute;
            if (c->has_ind)
                z[c->slot + 1] = 1.0;
        } else {
            z[c->slot] = v;
        }
    }
}

static void standardise(const pulse_ml_logreg_t *m, double *z)
{
    for (size_t s = 1; s < m->p; s++)
        z[s] = (z[s] - m->mean[s]) / m->sd[s];
}

static double sigmoid(double t)
{
    if (t >= 0)
        return 1.0 / (1.0 + exp(-t));
    double e = exp(t);
    return e / (1.0 + e);
}

/* log(1 + exp(t)) without overflow. */
static double softplus(double t)
{
    return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t));
}

/* Rows folded into the Hessian together: each H[a][b] is loaded and stored once per group rather
 * than once per row (the update is memory-bound on H otherwise: it was most of the training time). */
#define HESS_ROWS 4

/* hess[a][b] (b <= a) += sum over the k rows of h[r] z_r[a] z_r[b]. */
static void hess_add_rows(double *hess, size_t p, const double *const *z, const double *h, size_t k)
{
    if (k < HESS_ROWS) {
        for (size_t r = 0; r < k; r++)
            for (size_t a = 0; a < p; a++) {
                double ha = h[r] * z[r][a];
                double *row = hess + a * p;
                for (size_t b = 0; b <= a; b++)
                    row[b] += ha * z[r][b];
            }
        return;
    }
    const double *z0 = z[0], *z1 = z[1], *z2 = z[2], *z3 = z[3];
    for (size_t a = 0; a < p; a++) {
        double h0 = h[0] * z0[a], h1 = h[1] * z1[a], h2 = h[2] * z2[a], h3 = h[3] * z3[a];
        double *row = hess + a * p;
        for (size_t b = 0; b <= a; b++)
            row[b] += h0 * z0[b] + h1 * z1[b] + h2 * z2[b] + h3 * z3[b];
    }
}

double pulse_ml_logreg_objective(const double *Z, const double *y, const double *w, size_t n, size_t p, const double *beta,
                                 double lambda, double *grad, double *hess)
{
    double f = 0;
    if (grad)
        memset(grad, 0, p * sizeof(double));
    if (hess)
        memset(hess, 0, p * p * sizeof(double));
    double hw[HESS_ROWS];
    const double *hz[HESS_ROWS];
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        const double *z = Z + i * p;
        double t = 0;
        for (size_t a = 0; a < p; a++)
            t += z[a] * beta[a];
        double wi = w ? w[i] : 1.0;
        /* -log p(y|t) = softplus(t) - y t */
        f += wi * (softplus(t) - y[i] * t);
        double pr = sigmoid(t);
        if (grad) {
            double g = wi * (pr - y[i]);
            for (size_t a = 0; a < p; a++)
                grad[a] += g * z[a];
        }
        if (hess && wi * pr * (1 - pr) != 0) {
            hw[pending] = wi * pr * (1 - pr);
            hz[pending++] = z;
            if (pending == HESS_ROWS) {
                hess_add_rows(hess, p, hz, hw, pending);
                pending = 0;
            }
        }
    }
    if (hess && pending > 0)
        hess_add_rows(hess, p, hz, hw, pending);
    for (size_t a = 1; a < p; a++) {
        f += 0.5 * lambda * beta[a] * beta[a];
        if (grad)
            grad[a] += lambda * beta[a];
        if (hess)
            hess[a * p + a] += lambda;
    }
    if (hess)
        for (size_t a = 0; a < p; a++)
            for (size_t b = 0; b < a; b++)
                hess[b * p + a] = hess[a * p + b];
    return f;
}

int pulse_ml_cholesky_solve(double *A, double *b, size_t p)
{
    for (size_t j = 0; j < p; j++) {
        double d = A[j * p + j];
        for (size_t k = 0; k < j; k++)
            d -= A[j * p + k] * A[j * p + k];
        if (!(d > 0))
            return -1;
        d = sqrt(d);
        A[j * p + j] = d;
        for (size_t i = j + 1; i < p; i++) {
            double s = A[i * p + j];
            for (size_t k = 0; k < j; k++)
                s -= A[i * p + k] * A[j * p + k];
            A[i * p + j] = s / d;
        }
    }
    for (size_t i = 0; i < p; i++) { /* L u = b */
        double s = b[i];
        for (size_t k = 0; k < i; k++)
            s -= A[i * p + k] * b[k];
        b[i] = s / A[i * p + i];
    }
    for (size_t i = p; i-- > 0;) { /* L' x = u */
        double s = b[i];
        for (size_t k = i + 1; k < p; k++)
            s -= A[k * p + i] * b[k];
        b[i] = s / A[i * p + i];
    }
    return 0;
}

/* One-hot columns for at most max_levels categories, the most frequent ones (ties: lower code):
 * a city or product column with thousands of values must not make the p x p Hessian explode.
 * The other categories share the "no column" baseline with missing values. */
static void pick_levels(lr_col_t *c, const float *x, size_t n, int max_levels)
{
    size_t k = (size_t)c->k;
    c->slot_of = pulse_xmalloc((k ? k : 1) * sizeof(int));
    if (max_levels < 1 || k <= (size_t)max_levels) {
        for (size_t a = 0; a < k; a++)
            c->slot_of[a] = (int)a;
        c->n_slots = (int)k;
        return;
    }
    size_t *cnt = pulse_xmalloc(k * sizeof(size_t));
    memset(cnt, 0, k * sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        if (x[i] >= 0 && x[i] < (float)k && x[i] == floorf(x[i]))
            cnt[(size_t)x[i]]++;
    for (size_t a = 0; a < k; a++)
        c->slot_of[a] = -1;
    for (int s = 0; s < max_levels; s++) { /* quadratic, but only for the rare wide column */
        size_t best = k;
        for (size_t a = 0; a < k; a++)
            if (c->slot_of[a] < 0 && (best == k || cnt[a] > cnt[best]))
                best = a;
        c->slot_of[best] = 0;
    }
    int s = 0;
    for (size_t a = 0; a < k; a++)
        if (c->slot_of[a] >= 0)
            c->slot_of[a] = s++;
    c->n_slots = s;
    free(cnt);
}

static pulse_ml_logreg_t *alloc_model(size_t n_cols)
{
    pulse_ml_logreg_t *m = pulse_xmalloc(sizeof(*m));
    memset(m, 0, sizeof(*m));
    m->n_cols = n_cols;
    m->cols = pulse_xmalloc((n_cols ? n_cols : 1) * sizeof(lr_col_t));
    memset(m->cols, 0, (n_cols ? n_cols : 1) * sizeof(lr_col_t));
    return m;
}

static void alloc_coefs(pulse_ml_logreg_t *m)
{
    m->p = layout(m->cols, m->n_cols);
    m->mean = pulse_xmalloc(m->p * sizeof(double));
    m->sd = pulse_xmalloc(m->p * sizeof(double));
    m->beta = pulse_xmalloc(m->p * sizeof(double));
    for (size_t s = 0; s < m->p; s++)
        m->mean[s] = 0, m->sd[s] = 1, m->beta[s] = 0;
}

int pulse_ml_logreg_train(const pulse_ml_data_t *d, const pulse_ml_logreg_params_t *params, pulse_ml_logreg_t **out, char *err,
                          size_t errlen)
{
    pulse_ml_logreg_params_t def;
    if (params == NULL) {
        pulse_ml_logreg_params_init(&def);
        params = &def;
    }
    size_t n = d->n_rows;
    if (d->y == NULL)
        return pulse_fail(err, errlen, "logistic regression needs labels");
    if (!(params->lambda >= 0) || params->max_iter < 1)
        return pulse_fail(err, errlen, "logistic regression: bad parameters (lambda %g, max_iter %d)", params->lambda,
                          params->max_iter);
    double wpos = 0, wsum = 0;
    for (size_t i = 0; i < n; i++) {
        if (d->y[i] != 0.0f && d->y[i] != 1.0f)
            return pulse_fail(err, errlen, "row %zu: label %g is not 0 or 1", i + 1, (double)d->y[i]);
        double wi = d->w ? d->w[i] : 1.0;
        if (!(wi >= 0) || isinf(wi))
            return pulse_fail(err, errlen, "row %zu: weight %g is not a finite non-negative number", i + 1, wi);
        wpos += wi * d->y[i];
        wsum += wi;
    }
    if (!(wpos > 0) || !(wpos < wsum))
        return pulse_fail(err, errlen, "logistic regression needs both classes in the training rows");

    pulse_ml_logreg_t *m = alloc_model(d->n_cols);
    m->lambda = params->lambda;
    for (size_t j = 0; j < d->n_cols; j++) {
        lr_col_t *c = &m->cols[j];
        const float *x = d->x + j * n;
        if (d->categorical && d->categorical[j]) {
            c->categorical = 1;
            c->k = d->n_categories ? d->n_categories[j] : 0;
            if (c->k < 0)
                c->k = 0;
            pick_levels(c, x, n, params->max_levels);
            continue;
        }
        double s = 0;
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++)
            if (!isnan(x[i]))
                s += x[i], cnt++;
        c->impute = cnt ? s / (double)cnt : 0.0;
        c->has_ind = cnt < n;
    }
    alloc_coefs(m);
    size_t p = m->p;

    /* Design matrix, standardised with the training means and deviations. */
    double *Z = pulse_xmalloc((n ? n : 1) * p * sizeof(double));
    double *yy = pulse_xmalloc((n ? n : 1) * sizeof(double));
    double *ww = NULL;
    for (size_t i = 0; i < n; i++) {
        encode_raw(m, d->x + i, n, Z + i * p);
        yy[i] = d->y[i];
    }
    if (d->w) {
        ww = pulse_xmalloc((n ? n : 1) * sizeof(double));
        for (size_t i = 0; i < n; i++)
            ww[i] = d->w[i];
    }
    for (size_t s = 1; s < p; s++) {
        double mu = 0, v = 0;
        for (size_t i = 0; i < n; i++)
            mu += (ww ? ww[i] : 1.0) * Z[i * p + s];
        mu /= wsum;
        for (size_t i = 0; i < n; i++) {
            double t = Z[i * p + s] - mu;
            v += (ww ? ww[i] : 1.0) * t * t;
        }
        double sd = sqrt(v / wsum);
        m->mean[s] = mu;
        m->sd[s] = sd > 1e-12 ? sd : 1.0; /* a constant column standardises to 0 and stays out */
    }
    for (size_t i = 0; i < n; i++)
        standardise(m, Z + i * p);

    double *beta = m->beta, *g = pulse_xmalloc(p * sizeof(double)), *H = pulse_xmalloc(p * p * sizeof(double));
    double *trial = pulse_xmalloc(p * sizeof(double));
    beta[0] = log(wpos / (wsum - wpos));
    double f = pulse_ml_logreg_objective(Z, yy, ww, n, p, beta, m->lambda, g, H);
    int it;
    for (it = 0; it < params->max_iter; it++) {
        /* The intercept is unpenalised: a small ridge keeps a degenerate Hessian factorable. */
        for (size_t a = 0; a < p; a++)
            H[a * p + a] += 1e-10 * (1.0 + H[a * p + a]);
        if (pulse_ml_cholesky_solve(H, g, p) != 0) {
            free(g), free(H), free(trial), free(Z), free(yy), free(ww);
            pulse_ml_logreg_free(m);
            return pulse_fail(err, errlen, "logistic regression: the Hessian is not positive definite (set lambda > 0)");
        }
        double step = 1.0, fn = f, maxd = 0;
        for (size_t a = 0; a < p; a++)
            maxd = fmax(maxd, fabs(g[a]));
        /* Step halving: Newton on a convex objective, but a far start can overshoot. */
        for (int h = 0; h < 30; h++) {
            for (size_t a = 0; a < p; a++)
                trial[a] = beta[a] - step * g[a];
            fn = pulse_ml_logreg_objective(Z, yy, ww, n, p, trial, m->lambda, NULL, NULL);
            if (fn <= f + 1e-12 * fabs(f))
                break;
            step *= 0.5;
        }
        memcpy(beta, trial, p * sizeof(double));
        double prev = f;
        f = pulse_ml_logreg_objective(Z, yy, ww, n, p, beta, m->lambda, g, H);
        if (maxd * step < params->tol || fabs(prev - f) <= 1e-15 * fabs(f)) {
            it++;
            break;
        }
    }
    m->iterations = it;
    free(g), free(H), free(trial), free(Z), free(yy), free(ww);
    *out = m;
    return 0;
}

static double logit_row(const pulse_ml_logreg_t *m, const float *row, size_t stride)
{
    double zbuf[256];
    double *z = m->p <= 256 ? zbuf : pulse_xmalloc(m->p * sizeof(double));
    encode_raw(m, row, stride, z);
    standardise(m, z);
    double t = 0;
    for (size_t s = 0; s < m->p; s++)
        t += m->beta[s] * z[s];
    if (z != zbuf)
        free(z);
    return t;
}

double pulse_ml_logreg_predict_row(const pulse_ml_logreg_t *m, const float *row)
{
    return sigmoid(logit_row(m, row, 1));
}

void pulse_ml_logreg_predict(const pulse_ml_logreg_t *m, const pulse_ml_data_t *d, double *out)
{
    for (size_t i = 0; i < d->n_rows; i++)
        out[i] = sigmoid(logit_row(m, d->x + i, d->n_rows));
}

double pulse_ml_logreg_contributions(const pulse_ml_logreg_t *m, const float *row, double *contrib)
{
    double *z = pulse_xmalloc(m->p * sizeof(double));
    encode_raw(m, row, 1, z);
    standardise(m, z);
    for (size_t j = 0; j < m->n_cols; j++) {
        const lr_col_t *c = &m->cols[j];
        size_t end = j + 1 < m->n_cols ? m->cols[j + 1].slot : m->p;
        double s = 0;
        for (size_t k = c->slot; k < end; k++)
            s += m->beta[k] * z[k];
        contrib[j] = s;
    }
    double b0 = m->beta[0];
    free(z);
    return b0;
}

void pulse_ml_logreg_importance(const pulse_ml_logreg_t *m, double *imp)
{
    for (size_t j = 0; j < m->n_cols; j++) {
        size_t end = j + 1 < m->n_cols ? m->cols[j + 1].slot : m->p;
        double s = 0;
        for (size_t k = m->cols[j].slot; k < end; k++)
            s += fabs(m->beta[k]);
        imp[j] = s;
    }
}

size_t pulse_ml_logreg_n_features(const pulse_ml_logreg_t *m)
{
    return m->n_cols;
}

size_t pulse_ml_logreg_n_coef(const pulse_ml_logreg_t *m)
{
    return m->p;
}

void pulse_ml_logreg_coef(const pulse_ml_logreg_t *m, size_t k, int *feature, int *level, double *beta, double *mean, double *sd)
{
    int f = -1, l = -1;
    for (size_t j = 0; j < m->n_cols && k > 0; j++) {
        size_t end = j + 1 < m->n_cols ? m->cols[j + 1].slot : m->p;
        if (k >= m->cols[j].slot && k < end) {
            f = (int)j;
            size_t off = k - m->cols[j].slot;
            l = off == 0 ? -1 : -2;
            if (m->cols[j].categorical)
                for (int c = 0; c < m->cols[j].k; c++)
                    if (m->cols[j].slot_of[c] == (int)off)
                        l = c;
        }
    }
    if (feature)
        *feature = f;
    if (level)
        *level = l;
    if (beta)
        *beta = m->beta[k];
    if (mean)
        *mean = m->mean[k];
    if (sd)
        *sd = m->sd[k];
}

int pulse_ml_logreg_iterations(const pulse_ml_logreg_t *m)
{
    return m->iterations;
}

int pulse_ml_logreg_save(const pulse_ml_logreg_t *m, unsigned char **bytes, size_t *len)
{
    pulse_buf_t b = PULSE_BUF_INIT;
    pulse_buf_append(&b, LOGREG_MAGIC, 4);
    pulse_ml_put_u32(&b, LOGREG_VERSION);
    pulse_ml_put_u32(&b, (uint32_t)m->n_cols);
    for (size_t j = 0; j < m->n_cols; j++) {
        pulse_ml_put_u8(&b, (uint8_t)m->cols[j].categorical);
        pulse_ml_put_u32(&b, (uint32_t)m->cols[j].k);
        pulse_ml_put_u8(&b, (uint8_t)m->cols[j].has_ind);
        pulse_ml_put_f64(&b, m->cols[j].impute);
        if (m->cols[j].categorical) {
            pulse_ml_put_u32(&b, (uint32_t)m->cols[j].n_slots);
            for (int c = 0; c < m->cols[j].k; c++)
                pulse_ml_put_u32(&b, (uint32_t)m->cols[j].slot_of[c]);
        }
    }
    pulse_ml_put_u32(&b, (uint32_t)m->p);
    for (size_t s = 0; s < m->p; s++) {
        pulse_ml_put_f64(&b, m->mean[s]);
        pulse_ml_put_f64(&b, m->sd[s]);
        pulse_ml_put_f64(&b, m->beta[s]);
    }
    pulse_ml_put_f64(&b, m->lambda);
    pulse_ml_put_u32(&b, (uint32_t)m->iterations);
    *bytes = (unsigned char *)b.data;
    *len = b.len;
    return 0;
}

/* The code -> one-hot column map: every column used by exactly one code. */
static int read_slots(pulse_ml_reader_t *r, lr_col_t *c)
{
    uint32_t ns;
    if (pulse_ml_get_u32(r, &ns) != 0 || ns > (uint32_t)c->k || (size_t)c->k * 4 > r->left)
        return -1;
    c->n_slots = (int)ns;
    c->slot_of = pulse_xmalloc((c->k ? (size_t)c->k : 1) * sizeof(int));
    unsigned char *used = pulse_xmalloc(ns ? ns : 1);
    memset(used, 0, ns ? ns : 1);
    size_t n_used = 0;
    int rc = 0;
    for (int a = 0; a < c->k && rc == 0; a++) {
        uint32_t v;
        pulse_ml_get_u32(r, &v);
        if (v == UINT32_MAX) {
            c->slot_of[a] = -1;
        } else if (v < ns && !used[v]) {
            used[v] = 1;
            n_used++;
            c->slot_of[a] = (int)v;
        } else {
            rc = -1;
        }
    }
    free(used);
    return rc == 0 && n_used == ns ? 0 : -1;
}

pulse_ml_logreg_t *pulse_ml_logreg_load(const unsigned char *bytes, size_t len, char *err, size_t errlen)
{
    pulse_ml_reader_t r;
    pulse_ml_reader_init(&r, bytes, len);
    const unsigned char *magic;
    uint32_t version, n_cols, p, iters;
    if (pulse_ml_get_bytes(&r, 4, &magic) != 0 || memcmp(magic, LOGREG_MAGIC, 4) != 0) {
        pulse_fail(err, errlen, "not a logistic regression model (bad magic)");
        return NULL;
    }
    if (pulse_ml_get_u32(&r, &version) != 0 || version != LOGREG_VERSION) {
        pulse_fail(err, errlen, "logistic regression model: unsupported version %u", (unsigned)version);
        return NULL;
    }
    /* 14 bytes per column: a count beyond what is left is corruption, not an allocation to try. */
    if (pulse_ml_get_u32(&r, &n_cols) != 0 || n_cols > LOGREG_MAX_COLS || (size_t)n_cols * 14 > r.left) {
        pulse_fail(err, errlen, "logistic regression model: bad feature count");
        return NULL;
    }
    pulse_ml_logreg_t *m = alloc_model(n_cols);
    for (size_t j = 0; j < n_cols; j++) {
        uint8_t cat, ind;
        uint32_t k;
        double imp;
        if (pulse_ml_get_u8(&r, &cat) || pulse_ml_get_u32(&r, &k) || pulse_ml_get_u8(&r, &ind) || pulse_ml_get_f64(&r, &imp) ||
            cat > 1 || ind > 1 || k > LOGREG_MAX_LEVELS || (cat && ind) || (!cat && k != 0) || !isfinite(imp)) {
            pulse_fail(err, errlen, "logistic regression model: feature %zu is malformed", j + 1);
            pulse_ml_logreg_free(m);
            return NULL;
        }
        m->cols[j] = (lr_col_t){cat, (int)k, 0, NULL, ind, imp, 0};
        if (cat && read_slots(&r, &m->cols[j]) != 0) {
            pulse_fail(err, errlen, "logistic regression model: feature %zu has a bad category map", j + 1);
            pulse_ml_logreg_free(m);
            return NULL;
        }
    }
    /* The layout decides p; check it against the bytes left before allocating anything for it. */
    size_t want = layout(m->cols, m->n_cols);
    if (pulse_ml_get_u32(&r, &p) != 0 || p != want || (size_t)p * 24 > r.left) {
        pulse_fail(err, errlen, "logistic regression model: coefficient count does not match the features");
        pulse_ml_logreg_free(m);
        return NULL;
    }
    alloc_coefs(m);
    for (size_t s = 0; s < p; s++) {
        if (pulse_ml_get_f64(&r, &m->mean[s]) || pulse_ml_get_f64(&r, &m->sd[s]) || pulse_ml_get_f64(&r, &m->beta[s]) ||
            !isfinite(m->mean[s]) || !(m->sd[s] > 0) || !isfinite(m->sd[s]) || !isfinite(m->beta[s])) {
            pulse_fail(err, errlen, "logistic regression model: coefficient %zu is malformed", s);
            pulse_ml_logreg_free(m);
            return NULL;
        }
    }
    if (pulse_ml_get_f64(&r, &m->lambda) || pulse_ml_get_u32(&r, &iters) || !(m->lambda >= 0) || isinf(m->lambda) || r.left != 0) {
        pulse_fail(err, errlen, "logistic regression model: %s", r.left ? "trailing bytes" : "truncated");
        pulse_ml_logreg_free(m);
        return NULL;
    }
    m->iterations = (int)(iters > 1000000 ? 1000000 : iters);
    return m;
}

void pulse_ml_logreg_free(pulse_ml_logreg_t *m)
{
    if (m == NULL)
        return;
    for (size_t j = 0; j < m->n_cols; j++)
        free(m->cols[j].slot_of);
    free(m->cols);
    free(m->mean);
    free(m->sd);
    free(m->beta);
    free(m);
}
