/* Classification and regression metrics (see metrics.h). */
#include "ml/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

typedef struct scored_t {
    double p;
    size_t i;
} scored_t;

/* Descending score, then row order: deterministic under ties. */
static int cmp_desc(const void *a, const void *b)
{
    const scored_t *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

static scored_t *sort_desc(const double *p, size_t n)
{
    scored_t *s = pulse_xmalloc((n ? n : 1) * sizeof(*s));
    for (size_t i = 0; i < n; i++)
        s[i] = (scored_t){p[i], i};
    qsort(s, n, sizeof(*s), cmp_desc);
    return s;
}

double pulse_ml_roc_auc(const double *p, const float *y, size_t n)
{
    scored_t *s = sort_desc(p, n);
    double pos = 0, neg = 0, area = 0;
    /* Walk groups of equal scores from the top: a positive outranks every negative below its
     * group and ties half of the negatives inside it. */
    for (size_t a = 0; a < n;) {
        size_t b = a;
        double gp = 0, gn = 0;
        while (b < n && s[b].p == s[a].p) {
            if (y[s[b].i] > 0.5f)
                gp++;
            else
                gn++;
            b++;
        }
        area += gn * (pos + 0.5 * gp);
        pos += gp;
        neg += gn;
        a = b;
    }
    free(s);
    if (pos == 0 || neg == 0)
        return NAN;
    return area / (pos * neg);
}

double pulse_ml_pr_auc(const double *p, const float *y, size_t n)
{
    scored_t *s = sort_desc(p, n);
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += y[i] > 0.5f;
    double tp = 0, seen = 0, ap = 0;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        double gp = 0;
        while (b < n && s[b].p == s[a].p) {
            gp += y[s[b].i] > 0.5f;
            b++;
        }
        tp += gp;
        seen += (double)(b - a);
        if (gp > 0)
            ap += (gp / total) * (tp / seen);
        a = b;
    }
    free(s);
    return total > 0 ? ap : NAN;
}

static double clip(double p)
{
    return p < 1e-15 ? 1e-15 : p > 1 - 1e-15 ? 1 - 1e-15 : p;
}

double pulse_ml_log_loss(const double *p, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s -= y[i] > 0.5f ? log(clip(p[i])) : log(1 - clip(p[i]));
    return n ? s / (double)n : NAN;
}

double pulse_ml_brier(const double *p, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (p[i] - y[i]) * (p[i] - y[i]);
    return n ? s / (double)n : NAN;
}

void pulse_ml_confusion(const double *p, const float *y, size_t n, double threshold, pulse_ml_confusion_t *cm)
{
    memset(cm, 0, sizeof(*cm));
    for (size_t i = 0; i < n; i++) {
        int pred = p[i] >= threshold, pos = y[i] > 0.5f;
        if (pred && pos)
            cm->tp++;
        else if (pred)
            cm->fp++;
        else if (pos)
            cm->fn++;
        else
            cm->tn++;
    }
}

void pulse_ml_rates(const pulse_ml_confusion_t *cm, double *accuracy, double *precision, double *recall, double *f1)
{
    double tp = (double)cm->tp, fp = (double)cm->fp, tn = (double)cm->tn, fn = (double)cm->fn;
    double n = tp + fp + tn + fn;
    double pr = tp + fp > 0 ? tp / (tp + fp) : 0, rc = tp + fn > 0 ? tp / (tp + fn) : 0;
    if (accuracy)
        *accuracy = n > 0 ? (tp + tn) / n : 0;
    if (precision)
        *precision = pr;
    if (recall)
        *recall = rc;
    if (f1)
        *f1 = pr + rc > 0 ? 2 * pr * rc / (pr + rc) : 0;
}

double pulse_ml_best_f1_threshold(const double *p, const float *y, size_t n, double *f1)
{
    scored_t *s = sort_desc(p, n);
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += y[i] > 0.5f;
    double tp = 0, seen = 0, best = -1, thr = 0.5;
    /* Threshold at each distinct score: everything at or above it is predicted positive. */
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && s[b].p == s[a].p) {
            tp += y[s[b].i] > 0.5f;
            b++;
        }
        seen += (double)(b - a);
        double f = total > 0 && tp > 0 ? 2 * tp / (seen + total) : 0;
        if (f > best) {
            best = f;
            thr = s[a].p;
        }
        a = b;
    }
    free(s);
    if (f1)
        *f1 = best < 0 ? 0 : best;
    return thr;
}

void pulse_ml_deciles(const double *p, const float *y, size_t n, pulse_ml_decile_t out[10])
{
    scored_t *s = sort_desc(p, n);
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += y[i] > 0.5f;
    double base = n ? total / (double)n : 0, cum = 0;
    for (size_t d = 0; d < 10; d++) {
        size_t a = d * n / 10, b = (d + 1) * n / 10;
        size_t pos = 0;
        for (size_t k = a; k < b; k++)
            pos += y[s[k].i] > 0.5f;
        cum += (double)pos;
        out[d].n = b - a;
        out[d].positives = pos;
        out[d].rate = b > a ? (double)pos / (double)(b - a) : 0;
        out[d].lift = base > 0 ? out[d].rate / base : 0;
        out[d].cum_gain = total > 0 ? cum / total : 0;
    }
    free(s);
}

void pulse_ml_calibration_curve(const double *p, const float *y, size_t n, pulse_ml_calbin_t out[10])
{
    double sp[10] = {0}, sy[10] = {0};
    memset(out, 0, 10 * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        double v = p[i];
        int b = v >= 1.0 ? 9 : v <= 0 ? 0 : (int)(v * 10);
        if (b > 9)
            b = 9;
        out[b].n++;
        sp[b] += v;
        sy[b] += y[i] > 0.5f;
    }
    for (int b = 0; b < 10; b++) {
        if (out[b].n == 0)
            continue;
        out[b].mean_predicted = sp[b] / (double)out[b].n;
        out[b].observed = sy[b] / (double)out[b].n;
    }
}

void pulse_ml_metrics_compute(const double *p, const float *y, size_t n, pulse_ml_metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    m->n = n;
    for (size_t i = 0; i < n; i++)
        m->positives += y[i] > 0.5f;
    m->roc_auc = pulse_ml_roc_auc(p, y, n);
    m->pr_auc = pulse_ml_pr_auc(p, y, n);
    m->log_loss = pulse_ml_log_loss(p, y, n);
    m->brier = pulse_ml_brier(p, y, n);
    m->threshold = pulse_ml_best_f1_threshold(p, y, n, NULL);
    pulse_ml_confusion(p, y, n, m->threshold, &m->confusion);
    pulse_ml_rates(&m->confusion, &m->accuracy, &m->precision, &m->recall, &m->f1);
    pulse_ml_deciles(p, y, n, m->deciles);
    pulse_ml_calibration_curve(p, y, n, m->calibration);
}

void pulse_ml_regression_metrics(const double *pred, const float *y, size_t n, double *mae, double *rmse)
{
    double a = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double e = pred[i] - y[i];
        a += fabs(e);
        s += e * e;
    }
    if (mae)
        *mae = n ? a / (double)n : NAN;
    if (rmse)
        *rmse = n ? sqrt(s / (double)n) : NAN;
}
