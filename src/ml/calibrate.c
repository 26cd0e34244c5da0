/* Platt and isotonic calibration (see calibrate.h). */
#include "ml/calibrate.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml/bytes.h"
#include "ml/metrics.h"

#define CAL_MAX_POINTS 10000000u
/* Isotonic outputs stay off 0 and 1: one surprise at an end would make the log-loss infinite. */
#define ISO_EPS 1e-4
#define CV_FOLDS 5

void pulse_ml_calibration_init(pulse_ml_calibration_t *c)
{
    memset(c, 0, sizeof(*c));
    c->kind = PULSE_ML_CAL_NONE;
    c->a = 1.0;
}

void pulse_ml_calibration_free(pulse_ml_calibration_t *c)
{
    free(c->x);
    free(c->y);
    pulse_ml_calibration_init(c);
}

const char *pulse_ml_calibration_name(pulse_ml_cal_kind_t kind)
{
    switch (kind) {
    case PULSE_ML_CAL_PLATT:
        return "platt";
    case PULSE_ML_CAL_ISOTONIC:
        return "isotonic";
    default:
        return "none";
    }
}

static double logit_clip(double p)
{
    if (!(p > 1e-12))
        p = 1e-12;
    if (!(p < 1 - 1e-12))
        p = 1 - 1e-12;
    return log(p / (1 - p));
}

static double sigmoid(double t)
{
    if (t >= 0)
        return 1.0 / (1.0 + exp(-t));
    double e = exp(t);
    return e / (1.0 + e);
}

int pulse_ml_platt_fit(const double *p, const float *y, size_t n, double *a, double *b)
{
    double pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += y[i] > 0.5f;
    if (pos == 0 || pos == (double)n)
        return -1;
    double A = 1.0, B = 0.0;
    /* Newton on two parameters; a whisper of ridge keeps separable data from running away. */
    const double ridge = 1e-8;
    double f = 0;
    for (int it = 0; it < 100; it++) {
        double ga = ridge * (A - 1), gb = ridge * B, haa = ridge, hab = 0, hbb = ridge;
        f = 0.5 * ridge * ((A - 1) * (A - 1) + B * B);
        for (size_t i = 0; i < n; i++) {
            double s = logit_clip(p[i]), t = A * s + B, q = sigmoid(t), yi = y[i] > 0.5f;
            f += (t > 0 ? t + log1p(exp(-t)) : log1p(exp(t))) - yi * t;
            double g = q - yi, h = q * (1 - q);
            ga += g * s, gb += g;
            haa += h * s * s, hab += h * s, hbb += h;
        }
        double det = haa * hbb - hab * hab;
        if (!(det > 0))
            break;
        double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
        double step = 1.0;
        for (int h = 0; h < 30; h++) {
            double na = A - step * da, nb = B - step * db, fn = 0.5 * ridge * ((na - 1) * (na - 1) + nb * nb);
            for (size_t i = 0; i < n; i++) {
                double t = na * logit_clip(p[i]) + nb;
                fn += (t > 0 ? t + log1p(exp(-t)) : log1p(exp(t))) - (y[i] > 0.5f) * t;
            }
            if (fn <= f + 1e-12 * fabs(f))
                break;
            step *= 0.5;
        }
        A -= step * da;
        B -= step * db;
        if (fabs(step * da) + fabs(step * db) < 1e-10)
            break;
    }
    *a = A;
    *b = B;
    return 0;
}

typedef struct pt_t {
    double x, y, w;
} pt_t;

static int cmp_x(const void *a, const void *b)
{
    double x = ((const pt_t *)a)->x, y = ((const pt_t *)b)->x;
    return (x > y) - (x < y);
}

int pulse_ml_isotonic_fit(const double *p, const float *y, size_t n, pulse_ml_calibration_t *c)
{
    if (n == 0)
        return -1;
    pt_t *v = pulse_xmalloc(n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (pt_t){p[i], y[i] > 0.5f, 1.0};
    qsort(v, n, sizeof(*v), cmp_x);
    /* Equal scores are one point: otherwise their order would decide the fit. Then pool adjacent
     * violators; each block keeps its weighted mean score (x) and mean label (y, summed in y*w). */
    pt_t *blk = pulse_xmalloc(n * sizeof(*blk));
    double *sx = pulse_xmalloc(n * sizeof(double));
    size_t nb = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        double sy = 0;
        while (j < n && v[j].x == v[i].x)
            sy += v[j].y, j++;
        double w = (double)(j - i);
        blk[nb] = (pt_t){sy / w, 0, w};
        sx[nb] = v[i].x * w;
        nb++;
        while (nb > 1 && blk[nb - 2].x >= blk[nb - 1].x) { /* blk[].x holds the mean label here */
            pt_t *l = &blk[nb - 2], *r = &blk[nb - 1];
            double w2 = l->w + r->w;
            l->x = (l->x * l->w + r->x * r->w) / w2;
            l->w = w2;
            sx[nb - 2] += sx[nb - 1];
            nb--;
        }
        i = j;
    }
    free(c->x);
    free(c->y);
    c->kind = PULSE_ML_CAL_ISOTONIC;
    c->n_points = nb;
    c->x = pulse_xmalloc(nb * sizeof(double));
    c->y = pulse_xmalloc(nb * sizeof(double));
    for (size_t k = 0; k < nb; k++) {
        c->x[k] = sx[k] / blk[k].w;
        double yy = blk[k].x;
        c->y[k] = yy < ISO_EPS ? ISO_EPS : yy > 1 - ISO_EPS ? 1 - ISO_EPS : yy;
    }
    /* Block centres are strictly ascending in exact arithmetic; rounding can tie two of them. */
    size_t m = 0;
    for (size_t k = 0; k < nb; k++) {
        if (m > 0 && !(c->x[k] > c->x[m - 1]))
            continue;
        c->x[m] = c->x[k];
        c->y[m] = c->y[k];
        m++;
    }
    c->n_points = m;
    free(v);
    free(blk);
    free(sx);
    return 0;
}

double pulse_ml_calibration_apply(const pulse_ml_calibration_t *c, double p)
{
    if (c->kind == PULSE_ML_CAL_PLATT)
        return sigmoid(c->a * logit_clip(p) + c->b);
    if (c->kind != PULSE_ML_CAL_ISOTONIC || c->n_points == 0)
        return p;
    const double *x = c->x, *y = c->y;
    size_t n = c->n_points;
    if (!(p > x[0]))
        return y[0];
    if (!(p < x[n - 1]))
        return y[n - 1];
    size_t lo = 0, hi = n - 1; /* x[lo] < p < x[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (x[mid] <= p)
            lo = mid;
        else
            hi = mid;
    }
    double t = (p - x[lo]) / (x[hi] - x[lo]);
    return y[lo] + t * (y[hi] - y[lo]);
}

/* Out-of-fold log-loss of one kind: fold k holds the rows i with i % CV_FOLDS == k. */
static double cv_log_loss(const double *p, const float *y, size_t n, pulse_ml_cal_kind_t kind)
{
    double *tp = pulse_xmalloc(n * sizeof(double)), *out = pulse_xmalloc(n * sizeof(double));
    float *ty = pulse_xmalloc(n * sizeof(float));
    double loss = 0;
    for (int k = 0; k < CV_FOLDS; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if ((int)(i % CV_FOLDS) != k)
                tp[m] = p[i], ty[m] = y[i], m++;
        pulse_ml_calibration_t c;
        pulse_ml_calibration_init(&c);
        int ok = 0;
        if (kind == PULSE_ML_CAL_PLATT) {
            ok = pulse_ml_platt_fit(tp, ty, m, &c.a, &c.b) == 0;
            c.kind = PULSE_ML_CAL_PLATT;
        } else if (kind == PULSE_ML_CAL_ISOTONIC) {
            ok = pulse_ml_isotonic_fit(tp, ty, m, &c) == 0;
        }
        if (!ok)
            pulse_ml_calibration_free(&c); /* identity for a fold with one class */
        for (size_t i = k; i < n; i += CV_FOLDS)
            out[i] = pulse_ml_calibration_apply(&c, p[i]);
        pulse_ml_calibration_free(&c);
    }
    loss = pulse_ml_log_loss(out, y, n);
    free(tp);
    free(out);
    free(ty);
    return loss;
}

int pulse_ml_calibration_fit(const double *p, const float *y, size_t n, pulse_ml_calibration_t *c, char *err, size_t errlen)
{
    pulse_ml_calibration_init(c);
    if (n < 10)
        return pulse_fail(err, errlen, "calibration needs at least 10 held-out rows, there are %zu", n);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += y[i] > 0.5f;
    if (pos == 0 || pos == n)
        return pulse_fail(err, errlen, "calibration needs both classes in the held-out rows");
    c->cv_log_loss[PULSE_ML_CAL_NONE] = pulse_ml_log_loss(p, y, n);
    c->cv_log_loss[PULSE_ML_CAL_PLATT] = cv_log_loss(p, y, n, PULSE_ML_CAL_PLATT);
    c->cv_log_loss[PULSE_ML_CAL_ISOTONIC] = cv_log_loss(p, y, n, PULSE_ML_CAL_ISOTONIC);
    double keep[3];
    memcpy(keep, c->cv_log_loss, sizeof(keep));
    /* The raw probabilities need no fitting, so their log-loss on these rows is already an honest
     * out-of-sample figure: a model that is calibrated as it is (logistic regression usually is)
     * is left alone rather than bent by a curve that does not help. */
    if (keep[PULSE_ML_CAL_NONE] <= keep[PULSE_ML_CAL_PLATT] && keep[PULSE_ML_CAL_NONE] <= keep[PULSE_ML_CAL_ISOTONIC]) {
        /* identity */
    } else if (keep[PULSE_ML_CAL_ISOTONIC] < keep[PULSE_ML_CAL_PLATT]) {
        pulse_ml_isotonic_fit(p, y, n, c);
    } else {
        pulse_ml_platt_fit(p, y, n, &c->a, &c->b);
        c->kind = PULSE_ML_CAL_PLATT;
    }
    memcpy(c->cv_log_loss, keep, sizeof(keep));
    return 0;
}

void pulse_ml_calibration_save(const pulse_ml_calibration_t *c, pulse_buf_t *out)
{
    pulse_ml_put_u8(out, (uint8_t)c->kind);
    pulse_ml_put_f64(out, c->a);
    pulse_ml_put_f64(out, c->b);
    size_t n = c->kind == PULSE_ML_CAL_ISOTONIC ? c->n_points : 0;
    pulse_ml_put_u32(out, (uint32_t)n);
    for (size_t k = 0; k < n; k++) {
        pulse_ml_put_f64(out, c->x[k]);
        pulse_ml_put_f64(out, c->y[k]);
    }
}

int pulse_ml_calibration_load(const unsigned char *bytes, size_t len, pulse_ml_calibration_t *c, char *err, size_t errlen)
{
    pulse_ml_calibration_init(c);
    pulse_ml_reader_t r;
    pulse_ml_reader_init(&r, bytes, len);
    uint8_t kind;
    uint32_t n;
    double a, b;
    if (pulse_ml_get_u8(&r, &kind) || pulse_ml_get_f64(&r, &a) || pulse_ml_get_f64(&r, &b) || pulse_ml_get_u32(&r, &n))
        return pulse_fail(err, errlen, "calibration: truncated");
    if (kind > PULSE_ML_CAL_ISOTONIC)
        return pulse_fail(err, errlen, "calibration: unknown kind %u", (unsigned)kind);
    if (!isfinite(a) || !isfinite(b))
        return pulse_fail(err, errlen, "calibration: Platt parameters are not finite");
    if ((kind != PULSE_ML_CAL_ISOTONIC && n != 0) || (kind == PULSE_ML_CAL_ISOTONIC && n == 0) || n > CAL_MAX_POINTS ||
        (size_t)n * 16 != r.left)
        return pulse_fail(err, errlen, "calibration: %u points do not match %zu bytes", (unsigned)n, r.left);
    double *x = pulse_xmalloc((n ? n : 1) * sizeof(double)), *y = pulse_xmalloc((n ? n : 1) * sizeof(double));
    for (size_t k = 0; k < n; k++) {
        pulse_ml_get_f64(&r, &x[k]);
        pulse_ml_get_f64(&r, &y[k]);
        if (!isfinite(x[k]) || !(y[k] >= 0 && y[k] <= 1) || (k > 0 && !(x[k] > x[k - 1] && y[k] >= y[k - 1]))) {
            free(x);
            free(y);
            return pulse_fail(err, errlen, "calibration: point %zu breaks the isotonic curve", k + 1);
        }
    }
    c->kind = (pulse_ml_cal_kind_t)kind;
    c->a = a;
    c->b = b;
    c->n_points = n;
    if (n > 0) {
        c->x = x;
        c->y = y;
    } else {
        free(x);
        free(y);
    }
    return 0;
}
