/* BG/NBD and Gamma-Gamma lifetime-value models (see clv.h). */
#include "ml/clv.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

#define MAX_DIM 4
#define MAX_ITER 500
/* On the mean negative log-likelihood per customer: far below what three significant digits need,
 * far above the rounding noise of a sum of a few thousand terms. */
#define GTOL 1e-9
/* Log-parameters (on scaled data, started at 0) past this have run off towards a boundary of the
 * model (no heterogeneity, no drop-out): the gradient fades there, so a small gradient is no proof
 * of a maximum, and the figures would be meaningless. Reported as non-identified. */
#define THETA_MAX 16

/* ---------------------------------------------------------------------------------------------
 * Special functions. lgamma_r rather than lgamma: the latter writes the global signgam, a data race
 * when fits run on several worker threads. */

static double lgam(double x)
{
    int sign;
    return lgamma_r(x, &sign);
}

/* Digamma for x > 0: recurrence up to 10, then the asymptotic series (error below 1e-14 there). */
static double digamma(double x)
{
    double acc = 0;
    while (x < 10) {
        acc -= 1 / x;
        x += 1;
    }
    double f = 1 / (x * x);
    return acc + log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132)))));
}

/* Gauss 2F1(a, b; c; z) for c > 0 and 0 <= z < 1 by its series. The terms' ratio tends to z, so
 * the series converges geometrically; it stops once a term no longer moves the sum and the terms
 * are shrinking (a term can be tiny before the ratio climbs past 1, so size alone is not enough),
 * or when a term is exactly 0 (a or b a non-positive integer: a polynomial). NaN when it has not
 * converged within the guard (z within about 1e-5 of 1) or overflowed. */
static double hyp2f1(double a, double b, double c, double z)
{
    if (!(z >= 0 && z < 1) || !(c > 0))
        return NAN;
    double term = 1, sum = 1;
    for (long k = 0; k < 4000000; k++) {
        double ratio = (a + k) * (b + k) / ((c + k) * (k + 1)) * z;
        term *= ratio;
        sum += term;
        if (!isfinite(sum))
            return NAN;
        if (term == 0 || (fabs(ratio) < 1 && fabs(term) <= DBL_EPSILON * 0.5 * fabs(sum) * (1 - fabs(ratio))))
            return sum;
    }
    return NAN;
}

/* ---------------------------------------------------------------------------------------------
 * BFGS on an unconstrained objective of at most MAX_DIM variables with a strong-Wolfe line search
 * (Nocedal & Wright, algorithms 3.5 and 3.6). The curvature condition keeps s'y > 0, so the inverse
 * Hessian stays positive definite without damping. */

typedef double (*objective_fn)(void *ud, const double *theta, double *grad);

typedef struct opt_t {
    objective_fn f;
    void *ud;
    int n;
    const double *x0, *d; /* line origin and direction */
    double f0, dg0;
    double *xa, *ga; /* point and gradient of the last evaluation */
    double fa;
} opt_t;

static double dot(const double *u, const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += u[i] * v[i];
    return s;
}

static double norm_inf(const double *u, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(u[i]));
    return m;
}

/* Evaluates along the line at step a; returns the directional derivative (fa is set, +inf if the
 * objective is not finite there, as happens when a trial step overflows exp of a log-parameter). */
static double line_eval(opt_t *o, double a)
{
    for (int i = 0; i < o->n; i++)
        o->xa[i] = o->x0[i] + a * o->d[i];
    o->fa = o->f(o->ud, o->xa, o->ga);
    if (!isfinite(o->fa) || !isfinite(norm_inf(o->ga, o->n))) {
        o->fa = INFINITY;
        return NAN;
    }
    return dot(o->ga, o->d, o->n);
}

static int zoom(opt_t *o, double lo, double flo, double dglo, double hi, double fhi)
{
    const double c1 = 1e-4, c2 = 0.9;
    for (int j = 0; j < 60; j++) {
        double w = hi - lo, a = NAN;
        if (isfinite(fhi)) {
            double denom = 2 * (fhi - flo - dglo * w);
            if (denom > 0)
                a = lo - dglo * w * w / denom;
        }
        double lower = fmin(lo, hi) + 0.1 * fabs(w), upper = fmax(lo, hi) - 0.1 * fabs(w);
        if (!(a >= lower && a <= upper))
            a = lo + 0.5 * w;
        double dga = line_eval(o, a);
        if (!isfinite(o->fa) || o->fa > o->f0 + c1 * a * o->dg0 || o->fa >= flo) {
            hi = a;
            fhi = o->fa;
        } else {
            if (fabs(dga) <= -c2 * o->dg0)
                return 0;
            if (dga * w >= 0) {
                hi = lo;
                fhi = flo;
            }
            lo = a;
            flo = o->fa;
            dglo = dga;
        }
        if (fabs(hi - lo) <= 1e-14 * fmax(1, fabs(lo)))
            break;
    }
    /* The bracket collapsed at the precision of doubles: keep the best point if it decreased f. */
    if (lo > 0) {
        line_eval(o, lo);
        return isfinite(o->fa) && o->fa < o->f0 ? 0 : -1;
    }
    return -1;
}

static int line_search(opt_t *o, double a)
{
    const double c1 = 1e-4, c2 = 0.9;
    double a_prev = 0, f_prev = o->f0, dg_prev = o->dg0;
    for (int i = 0; i < 30; i++) {
        double dga = line_eval(o, a);
        if (!isfinite(o->fa) || o->fa > o->f0 + c1 * a * o->dg0 || (i > 0 && o->fa >= f_prev))
            return zoom(o, a_prev, f_prev, dg_prev, a, o->fa);
        if (fabs(dga) <= -c2 * o->dg0)
            return 0;
        if (dga >= 0)
            return zoom(o, a, o->fa, dga, a_prev, f_prev);
        a_prev = a;
        f_prev = o->fa;
        dg_prev = dga;
        a *= 2;
    }
    return 0; /* still descending after 2^30: the last point has sufficient decrease */
}

/* Minimises f from theta (overwritten with the minimiser). Returns 0 or -1 with err. */
static int bfgs(objective_fn f, void *ud, int n, double *theta, int *iterations, char *err, size_t errlen)
{
    double H[MAX_DIM * MAX_DIM], g[MAX_DIM], d[MAX_DIM], xa[MAX_DIM], ga[MAX_DIM], s[MAX_DIM], y[MAX_DIM], Hy[MAX_DIM];
    double fx = f(ud, theta, g);
    if (!isfinite(fx) || !isfinite(norm_inf(g, n)))
        return pulse_fail(err, errlen, "the likelihood is not finite at the starting point");
    int fresh = 1; /* H is the identity (no curvature information yet) */
    for (int it = 0; it < MAX_ITER; it++) {
        double gn = norm_inf(g, n);
        if (norm_inf(theta, n) > THETA_MAX)
            return pulse_fail(err, errlen,
                              "parameters ran off to a boundary after %d iterations (a log-parameter reached %.3g): "
                              "the data do not identify the model",
                              it, norm_inf(theta, n));
        if (gn < GTOL) {
            *iterations = it;
            return 0;
        }
        if (fresh)
            for (int i = 0; i < n * n; i++)
                H[i] = i % (n + 1) == 0 ? 1 : 0;
        for (int i = 0; i < n; i++)
            d[i] = -dot(H + i * n, g, n);
        double dg = dot(d, g, n);
        /* Log-parameters: a first step longer than 1 (a factor e) is rarely meant, and a long one
         * overflows; after that the BFGS step of 1 is the natural trial. */
        double a0 = 1, dn = norm_inf(d, n);
        if (fresh || dn > 4)
            a0 = fmin(1, 1 / dn);
        opt_t o = {f, ud, n, theta, d, fx, dg, xa, ga, 0};
        if (!(dg < 0) || line_search(&o, a0) != 0) {
            if (gn < 1e3 * GTOL) { /* at the minimum to within rounding: no step decreases f */
                *iterations = it;
                return 0;
            }
            if (fresh)
                return pulse_fail(err, errlen, "the line search failed after %d iterations (gradient %.3g)", it, gn);
            fresh = 1; /* restart from steepest descent once before giving up */
            continue;
        }
        for (int i = 0; i < n; i++) {
            s[i] = xa[i] - theta[i];
            y[i] = ga[i] - g[i];
        }
        double sy = dot(s, y, n), yy = dot(y, y, n);
        if (sy > 1e-12 * sqrt(dot(s, s, n) * yy)) {
            if (fresh) /* scale the identity to the curvature seen (N&W 6.20) */
                for (int i = 0; i < n * n; i++)
                    H[i] *= sy / yy;
            fresh = 0;
            for (int i = 0; i < n; i++)
                Hy[i] = dot(H + i * n, y, n);
            double yHy = dot(y, Hy, n), k = (sy + yHy) / (sy * sy);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    H[i * n + j] += k * s[i] * s[j] - (Hy[i] * s[j] + s[i] * Hy[j]) / sy;
        }
        memcpy(theta, xa, sizeof(double) * (size_t)n);
        memcpy(g, ga, sizeof(double) * (size_t)n);
        fx = o.fa;
    }
    return pulse_fail(err, errlen, "no convergence in %d iterations (gradient %.3g)", MAX_ITER, norm_inf(g, n));
}

/* ---------------------------------------------------------------------------------------------
 * Data in fitting form: identical rows merged with a weight (CDNOW's 1411 one-time buyers share ~80
 * (t_x, T) pairs), and the functions of x alone computed once per distinct x per evaluation. */

typedef struct row_t {
    double x, u, v; /* BG/NBD: x, t_x, T; Gamma-Gamma: x, zbar, unused */
} row_t;

typedef struct fit_data_t {
    size_t ng, nx;
    row_t *g;      /* ng merged rows (times or spends already scaled) */
    double *w;     /* ng weights */
    size_t *xi;    /* ng: index of the row's x in ux */
    double *ux;    /* nx distinct x */
    double *cache; /* per distinct x scratch, 8 per x */
    double sum_w, sum_wx, scale;
} fit_data_t;

static int row_cmp(const void *pa, const void *pb)
{
    const row_t *a = pa, *b = pb;
    if (a->x != b->x)
        return a->x < b->x ? -1 : 1;
    if (a->u != b->u)
        return a->u < b->u ? -1 : 1;
    if (a->v != b->v)
        return a->v < b->v ? -1 : 1;
    return 0;
}

/* Takes ownership of rows (n of them, freed here). */
static void data_build(fit_data_t *d, row_t *rows, size_t n, double scale)
{
    memset(d, 0, sizeof(*d));
    d->scale = scale;
    qsort(rows, n, sizeof(row_t), row_cmp);
    d->g = pulse_xmalloc(sizeof(row_t) * (n ? n : 1));
    d->w = pulse_xmalloc(sizeof(double) * (n ? n : 1));
    d->xi = pulse_xmalloc(sizeof(size_t) * (n ? n : 1));
    d->ux = pulse_xmalloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        if (d->ng > 0 && row_cmp(&rows[i], &d->g[d->ng - 1]) == 0) {
            d->w[d->ng - 1] += 1;
        } else {
            if (d->nx == 0 || d->ux[d->nx - 1] != rows[i].x)
                d->ux[d->nx++] = rows[i].x;
            d->g[d->ng] = rows[i];
            d->w[d->ng] = 1;
            d->xi[d->ng] = d->nx - 1;
            d->ng++;
        }
        d->sum_w += 1;
        d->sum_wx += rows[i].x;
    }
    d->cache = pulse_xmalloc(sizeof(double) * 8 * (d->nx ? d->nx : 1));
    free(rows);
}

static void data_free(fit_data_t *d)
{
    free(d->g);
    free(d->w);
    free(d->xi);
    free(d->ux);
    free(d->cache);
}

/* ---------------------------------------------------------------------------------------------
 * BG/NBD. Per customer (FHL 2005, eq. 6, in logs as in lifetimes):
 *   A1 = lnG(r+x) - lnG(r) + r ln(alpha)             A3 = -(r+x) ln(alpha+T)
 *   A2 = lnG(a+b) + lnG(b+x) - lnG(b) - lnG(a+b+x)   A4 = ln(a) - ln(b+x-1) - (r+x) ln(alpha+t_x)
 *   ll = A1 + A2 + ln(e^A3 + [x>0] e^A4)
 * The gradient weighs the two branches by their share of the last sum. */

static double bg_eval(const fit_data_t *d, const double lp[4], double grad[4])
{
    double r = exp(lp[0]), al = exp(lp[1]), a = exp(lp[2]), b = exp(lp[3]);
    double lal = log(al), lg_r = lgam(r), lg_b = lgam(b), lg_ab = lgam(a + b);
    double ps_r = digamma(r), ps_b = digamma(b), ps_ab = digamma(a + b), la = log(a);
    for (size_t k = 0; k < d->nx; k++) {
        double x = d->ux[k], *c = d->cache + 8 * k;
        c[0] = lgam(r + x) - lg_r + lg_ab + lgam(b + x) - lg_b - lgam(a + b + x); /* A1 + A2 - r ln(alpha) */
        c[1] = x > 0 ? la - log(b + x - 1) : 0;
        if (grad) {
            double ps_abx = digamma(a + b + x);
            c[2] = digamma(r + x) - ps_r;
            c[3] = ps_ab - ps_abx;
            c[4] = ps_ab + digamma(b + x) - ps_b - ps_abx;
            c[5] = x > 0 ? 1 / (b + x - 1) : 0;
        }
    }
    double ll = 0, gr = 0, gal = 0, ga = 0, gb = 0;
    for (size_t i = 0; i < d->ng; i++) {
        const row_t *row = &d->g[i];
        const double *c = d->cache + 8 * d->xi[i];
        double x = row->x, w = d->w[i], rx = r + x;
        double lT = log(al + row->v), A3 = -rx * lT, lse = A3, w4 = 0, lt = 0;
        if (x > 0) {
            lt = log(al + row->u);
            double A4 = c[1] - rx * lt, e = exp(-fabs(A3 - A4));
            lse = fmax(A3, A4) + log1p(e);
            w4 = A4 >= A3 ? 1 / (1 + e) : e / (1 + e);
        }
        ll += w * (c[0] + lse);
        if (grad) {
            double w3 = 1 - w4;
            gr += w * (c[2] - w3 * lT - w4 * lt);
            gal += w * (-rx * (w3 / (al + row->v) + (x > 0 ? w4 / (al + row->u) : 0)));
            ga += w * (c[3] + w4 / a);
            gb += w * (c[4] - w4 * c[5]);
        }
    }
    ll += d->sum_w * r * lal;
    if (grad) {
        gr += d->sum_w * lal;
        gal += d->sum_w * r / al;
        grad[0] = gr * r;
        grad[1] = gal * al;
        grad[2] = ga * a;
        grad[3] = gb * b;
    }
    return ll;
}

/* The optimiser minimises the mean negative log-likelihood: per customer, so that GTOL means the
 * same whatever the number of customers. */
static double bg_objective(void *ud, const double *theta, double *grad)
{
    const fit_data_t *d = ud;
    double ll = bg_eval(d, theta, grad);
    for (int i = 0; i < 4; i++)
        grad[i] = -grad[i] / d->sum_w;
    return -ll / d->sum_w;
}

static row_t *bg_rows(const double *x, const double *t_x, const double *T, size_t n, double scale)
{
    row_t *rows = pulse_xmalloc(sizeof(row_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        rows[i] = (row_t){x[i], t_x[i] * scale, T[i] * scale};
    return rows;
}

double pulse_clv_bgnbd_loglik(const pulse_bgnbd_t *m, const double *x, const double *t_x, const double *T, size_t n,
                              double grad_log_params[4])
{
    fit_data_t d;
    data_build(&d, bg_rows(x, t_x, T, n, 1), n, 1);
    double lp[4] = {log(m->r), log(m->alpha), log(m->a), log(m->b)};
    double ll = bg_eval(&d, lp, grad_log_params);
    data_free(&d);
    return ll;
}

static int bad_count(double x)
{
    return !isfinite(x) || x < 0 || x != floor(x);
}

int pulse_clv_bgnbd_fit(const double *x, const double *t_x, const double *T, size_t n, pulse_bgnbd_t *out, char *err, size_t errlen)
{
    if (n < 4)
        return pulse_fail(err, errlen, "BG/NBD needs at least 4 customers (got %zu)", n);
    if (x == NULL || t_x == NULL || T == NULL || out == NULL)
        return pulse_fail(err, errlen, "BG/NBD: missing input array");
    size_t repeaters = 0;
    double max_T = 0;
    for (size_t i = 0; i < n; i++) {
        if (bad_count(x[i]))
            return pulse_fail(err, errlen, "customer %zu: x = %g is not a whole number >= 0", i, x[i]);
        if (!isfinite(t_x[i]) || t_x[i] < 0)
            return pulse_fail(err, errlen, "customer %zu: t_x = %g is not a finite number >= 0", i, t_x[i]);
        if (!isfinite(T[i]) || T[i] <= 0)
            return pulse_fail(err, errlen, "customer %zu: T = %g is not a finite number > 0", i, T[i]);
        if (t_x[i] > T[i])
            return pulse_fail(err, errlen, "customer %zu: t_x = %g is after T = %g", i, t_x[i], T[i]);
        if (x[i] > 0 && t_x[i] == 0)
            return pulse_fail(err, errlen, "customer %zu: x = %g repeat purchases but t_x = 0", i, x[i]);
        if (x[i] == 0 && t_x[i] != 0)
            return pulse_fail(err, errlen, "customer %zu: t_x = %g with no repeat purchase (x = 0)", i, t_x[i]);
        repeaters += x[i] > 0;
        max_T = fmax(max_T, T[i]);
    }
    if (repeaters == 0)
        return pulse_fail(err, errlen, "BG/NBD: no customer has a repeat purchase (x > 0); a and b cannot be estimated");
    /* Times scaled to a maximum age of 10 (as lifetimes does) so that alpha starts near 1 with the
     * others, whatever the time unit; alpha scales back exactly. */
    double scale = 10 / max_T;
    fit_data_t d;
    data_build(&d, bg_rows(x, t_x, T, n, scale), n, scale);
    double theta[4] = {0, 0, 0, 0};
    char why[200];
    int iters = 0;
    int rc = bfgs(bg_objective, &d, 4, theta, &iters, why, sizeof(why));
    if (rc == 0) {
        double g[4];
        /* The likelihood carries the density of x purchase times, hence x ln(scale) per customer. */
        out->log_likelihood = bg_eval(&d, theta, g) + d.sum_wx * log(scale);
        out->r = exp(theta[0]);
        out->alpha = exp(theta[1]) / scale;
        out->a = exp(theta[2]);
        out->b = exp(theta[3]);
        out->iterations = iters;
    }
    data_free(&d);
    if (rc != 0)
        return pulse_fail(err, errlen, "BG/NBD fit: %s", why);
    return 0;
}

double pulse_clv_bgnbd_p_alive(const pulse_bgnbd_t *m, double x, double t_x, double T)
{
    if (x <= 0)
        return 1;
    double rx = m->r + x;
    double lodds = log(m->a) - log(m->b + x - 1) + rx * (log(m->alpha + T) - log(m->alpha + t_x));
    return 1 / (1 + exp(lodds));
}

/* FHL eq. 10 for a != 1. Its (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z), z = t/(alpha+T+t), is taken
 * through Euler's transformation as (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z): the same value, but
 * the series no longer grows like (1-z)^-(r+x), which overflows for customers with hundreds of
 * purchases. At a = 1 the factor (a+b+x-1)/(a-1) and 1 - (...) both vanish; the caller averages two
 * nearby values there. */
static double bg_expected_at(double r, double al, double a, double b, double t, double x, double t_x, double T)
{
    double z = t / (al + T + t);
    double hyp = hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z);
    double term = exp((a - 1) * log1p(-z)) * hyp;
    double num = (a + b + x - 1) / (a - 1) * (1 - term);
    double den = 1;
    if (x > 0)
        den += exp(log(a) - log(b + x - 1) + (r + x) * (log(al + T) - log(al + t_x)));
    return num / den;
}

double pulse_clv_bgnbd_expected(const pulse_bgnbd_t *m, double t, double x, double t_x, double T)
{
    if (!(t > 0))
        return 0;
    if (fabs(m->a - 1) < 1e-6) {
        double h = 1e-4;
        return 0.5 * (bg_expected_at(m->r, m->alpha, 1 - h, m->b, t, x, t_x, T) +
                      bg_expected_at(m->r, m->alpha, 1 + h, m->b, t, x, t_x, T));
    }
    return bg_expected_at(m->r, m->alpha, m->a, m->b, t, x, t_x, T);
}

double pulse_clv_bgnbd_expected_new(const pulse_bgnbd_t *m, double t)
{
    /* FHL eq. 9 is eq. 10's numerator with no history: x = 0 at age 0. */
    return pulse_clv_bgnbd_expected(m, t, 0, 0, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Gamma-Gamma. Per customer with x > 0 (Fader & Hardie 2013, as lifetimes):
 *   ll = lnG(px+q) - lnG(px) - lnG(q) + q ln(gamma) + (px-1) ln(zbar) + px ln(x) - (px+q) ln(x zbar + gamma) */

static double gg_eval(const fit_data_t *d, const double lp[3], double grad[3])
{
    double p = exp(lp[0]), q = exp(lp[1]), gm = exp(lp[2]);
    double lg_q = lgam(q), ps_q = digamma(q), lgm = log(gm);
    for (size_t k = 0; k < d->nx; k++) {
        double x = d->ux[k], *c = d->cache + 8 * k;
        c[0] = lgam(p * x + q) - lgam(p * x) - lg_q + p * x * log(x);
        c[1] = log(x);
        if (grad) {
            double ps_pxq = digamma(p * x + q);
            c[2] = ps_pxq - digamma(p * x);
            c[3] = ps_pxq - ps_q;
        }
    }
    double ll = 0, gp = 0, gq = 0, gg = 0;
    for (size_t i = 0; i < d->ng; i++) {
        const row_t *row = &d->g[i];
        const double *c = d->cache + 8 * d->xi[i];
        double x = row->x, z = row->u, w = d->w[i], px = p * x;
        double s = x * z + gm, ls = log(s), lz = log(z);
        ll += w * (c[0] + q * lgm + (px - 1) * lz - (px + q) * ls);
        if (grad) {
            gp += w * x * (c[2] + lz + c[1] - ls);
            gq += w * (c[3] + lgm - ls);
            gg += w * (q / gm - (px + q) / s);
        }
    }
    if (grad) {
        grad[0] = gp * p;
        grad[1] = gq * q;
        grad[2] = gg * gm;
    }
    return ll;
}

static double gg_objective(void *ud, const double *theta, double *grad)
{
    const fit_data_t *d = ud;
    double ll = gg_eval(d, theta, grad);
    for (int i = 0; i < 3; i++)
        grad[i] = -grad[i] / d->sum_w;
    return -ll / d->sum_w;
}

/* Rows with x > 0 only, spends divided by scale. */
static size_t gg_rows(const double *x, const double *zbar, size_t n, double scale, row_t **out)
{
    row_t *rows = pulse_xmalloc(sizeof(row_t) * (n ? n : 1));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] > 0)
            rows[k++] = (row_t){x[i], zbar[i] / scale, 0};
    *out = rows;
    return k;
}

double pulse_clv_gamma_gamma_loglik(const pulse_gamma_gamma_t *m, const double *x, const double *zbar, size_t n,
                                    double grad_log_params[3])
{
    fit_data_t d;
    row_t *rows;
    size_t k = gg_rows(x, zbar, n, 1, &rows);
    data_build(&d, rows, k, 1);
    double lp[3] = {log(m->p), log(m->q), log(m->gamma)};
    double ll = gg_eval(&d, lp, grad_log_params);
    data_free(&d);
    return ll;
}

int pulse_clv_gamma_gamma_fit(const double *x, const double *zbar, size_t n, pulse_gamma_gamma_t *out, char *err, size_t errlen)
{
    if (x == NULL || zbar == NULL || out == NULL)
        return pulse_fail(err, errlen, "Gamma-Gamma: missing input array");
    size_t used = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (bad_count(x[i]))
            return pulse_fail(err, errlen, "customer %zu: x = %g is not a whole number >= 0", i, x[i]);
        if (!isfinite(zbar[i]) || zbar[i] < 0)
            return pulse_fail(err, errlen, "customer %zu: zbar = %g is not a finite number >= 0", i, zbar[i]);
        if (x[i] > 0 && zbar[i] == 0)
            return pulse_fail(err, errlen, "customer %zu: x = %g repeat purchases but mean spend zbar = 0", i, x[i]);
        if (x[i] > 0) {
            used++;
            sum += zbar[i];
        }
    }
    if (used < 3)
        return pulse_fail(err, errlen, "Gamma-Gamma needs at least 3 customers with x > 0 (got %zu)", used);
    /* Spends scaled to a mean of 1 so that gamma starts near the others; it scales back exactly. */
    double scale = sum / (double)used;
    fit_data_t d;
    row_t *rows;
    gg_rows(x, zbar, n, scale, &rows);
    data_build(&d, rows, used, scale);
    double theta[3] = {0, 0, 0};
    char why[200];
    int iters = 0;
    int rc = bfgs(gg_objective, &d, 3, theta, &iters, why, sizeof(why));
    if (rc == 0) {
        /* zbar is a density: dividing it by scale multiplied each customer's likelihood by scale. */
        out->log_likelihood = gg_eval(&d, theta, NULL) - d.sum_w * log(scale);
        out->p = exp(theta[0]);
        out->q = exp(theta[1]);
        out->gamma = exp(theta[2]) * scale;
        out->iterations = iters;
    }
    data_free(&d);
    if (rc != 0)
        return pulse_fail(err, errlen, "Gamma-Gamma fit: %s", why);
    return 0;
}

double pulse_clv_gamma_gamma_spend(const pulse_gamma_gamma_t *m, double x, double zbar)
{
    double den = m->p * x + m->q - 1;
    if (!(den > 0))
        return NAN;
    return (m->gamma + (x > 0 ? x * zbar : 0)) * m->p / den;
}

double pulse_clv_value(const pulse_bgnbd_t *bg, const pulse_gamma_gamma_t *gg, double x, double t_x, double T, double zbar,
                       int months, double discount, double units_per_month)
{
    double spend = pulse_clv_gamma_gamma_spend(gg, x, zbar), clv = 0, prev = 0;
    for (int k = 1; k <= months; k++) {
        double cum = pulse_clv_bgnbd_expected(bg, k * units_per_month, x, t_x, T);
        clv += spend * (cum - prev) / pow(1 + discount, k);
        prev = cum;
    }
    return clv;
}
