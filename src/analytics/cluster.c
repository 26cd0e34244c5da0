/* Customer clustering: preparation, k-means, Gaussian mixture, Ward, choice of k (see cluster.h).
 *
 * Determinism: every pass over the rows is cut into fixed blocks of BLOCK rows; each block writes
 * its partial sums into its own slot and the slots are added in block order, so the floating-point
 * result does not depend on how many threads ran the blocks. Random draws come from the seeded
 * xoshiro streams of gen/rng.h, one stream per purpose. */
#include "analytics/cluster.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analytics/persona.h"
#include "core/buf.h"
#include "core/clock.h"
#include "gen/rng.h"

#define BLOCK ((size_t)16384)
#define MAX_THREADS 8 /* the blocks cap useful parallelism long before this */
#define AUTO_THREADS 2
#define PAR_MIN_ROWS ((size_t)200000) /* below this a second thread costs more than it saves */
#define LOG_2PI 1.8378770664093453

enum { STREAM_FIT = 1, STREAM_SIL, STREAM_WARD, STREAM_INIT };

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "pulse: out of memory (%zu x %zu bytes)\n", n, size);
        abort();
    }
    return p;
}

/* ---------------------------------------------------------------------------------------------
 * Blocked parallel passes. */

typedef void (*block_fn)(void *ctx, size_t block, size_t lo, size_t hi);

typedef struct par_t {
    block_fn fn;
    void *ctx;
    size_t n, b0, b1;
} par_t;

static void *par_run(void *arg)
{
    par_t *p = arg;
    for (size_t b = p->b0; b < p->b1; b++) {
        size_t lo = b * BLOCK, hi = lo + BLOCK < p->n ? lo + BLOCK : p->n;
        p->fn(p->ctx, b, lo, hi);
    }
    return NULL;
}

static size_t nblocks(size_t n)
{
    return (n + BLOCK - 1) / BLOCK;
}

/* Runs fn over every block of [0, n); threads take contiguous runs of blocks. */
static void par_blocks(int threads, size_t n, block_fn fn, void *ctx)
{
    size_t nb = nblocks(n);
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads < 2 || nb < 2) {
        par_t p = {fn, ctx, n, 0, nb};
        par_run(&p);
        return;
    }
    par_t parts[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++)
        parts[t] = (par_t){fn, ctx, n, nb * (size_t)t / (size_t)threads, nb * (size_t)(t + 1) / (size_t)threads};
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&tid[t], NULL, par_run, &parts[t]) == 0;
    par_run(&parts[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            par_run(&parts[t]); /* no thread to be had: same blocks, same sums, just slower */
    }
}

/* ---------------------------------------------------------------------------------------------
 * Preparation: finite check, skewness, log1p, standardisation into the working matrix z. */

#define SMALL_LOG 1024         /* whole numbers below this (orders, items) take their log1p from a table */
#define PREP_MAX_D ((size_t)8) /* columns a preparation pass takes at a time (sums in registers) */

typedef struct prep_t {
    double small_log[SMALL_LOG]; /* log1p(i), computed as transform_log computes it */
    const double *x;
    size_t n, d, da; /* da: active (non-constant) columns */
    const size_t *active;
    const int *logc;
    const double *mean, *tmean, *tsd;
    double *z;
    double *acc; /* per block: 3*d values */
    size_t *bad; /* per block: first row with a non-finite value, or SIZE_MAX */
    int stage;
} prep_t;

/* log1p of a value >= 0: log is several times cheaper than log1p, and as exact once 1 + v is. */
static inline double log1p_nonneg(double v)
{
    return v < 1e-3 ? log1p(v) : log(1.0 + v);
}

/* The same, bit for bit, with whole numbers (counts are most of them) looked up. */
static inline double transform_log(const prep_t *p, double v)
{
    if (v < SMALL_LOG) {
        size_t i = (size_t)v;
        if ((double)i == v)
            return p->small_log[i];
    }
    return log1p_nonneg(v);
}

/* The stages on columns j0 .. j0 + w - 1 (raw columns for stages 0 and 1, active ones for 2 and
 * 3). Always inlined so that each width gets a copy with w a constant: the per-column sums then
 * live in registers rather than going through memory every row (through p->acc, which the
 * compiler cannot tell apart from z). Each sum adds the same values in the same order as a
 * row-by-row pass: the results are the same to the bit. */
static inline __attribute__((always_inline)) void prep_cols(prep_t *p, size_t b, size_t lo, size_t hi, size_t j0, size_t w)
{
    const double *x = p->x;
    double *z = p->z, *a = p->acc + b * 3 * p->d;
    size_t d = p->d, da = p->da;
    double s1[PREP_MAX_D], s2[PREP_MAX_D], tm[PREP_MAX_D], sd[PREP_MAX_D];
    size_t col[PREP_MAX_D];
    int lg[PREP_MAX_D];
    for (size_t j = 0; j < w; j++) {
        s1[j] = 0;
        s2[j] = p->stage == 0 ? INFINITY : 0;
    }
    if (p->stage == 0) { /* finite, sum, min */
        size_t bad = p->bad[b];
        for (size_t i = lo; i < hi; i++)
#pragma GCC unroll 8
            for (size_t j = 0; j < w; j++) {
                double v = x[i * d + j0 + j];
                if (!isfinite(v)) {
                    if (i * d + j0 + j < bad)
                        bad = i * d + j0 + j;
                    continue;
                }
                s1[j] += v;
                if (v < s2[j])
                    s2[j] = v;
            }
        p->bad[b] = bad;
    } else if (p->stage == 1) { /* central moments 2 and 3 of the raw columns */
        for (size_t j = 0; j < w; j++)
            tm[j] = p->mean[j0 + j];
        for (size_t i = lo; i < hi; i++)
#pragma GCC unroll 8
            for (size_t j = 0; j < w; j++) {
                double c = x[i * d + j0 + j] - tm[j], c2 = c * c;
                s1[j] += c2;
                s2[j] += c2 * c;
            }
    } else if (p->stage == 2) { /* transform into z; sums around the transformed raw mean */
        for (size_t j = 0; j < w; j++) {
            tm[j] = p->tmean[j0 + j];
            col[j] = p->active[j0 + j];
            lg[j] = p->logc[col[j]];
        }
        for (size_t i = lo; i < hi; i++)
#pragma GCC unroll 8
            for (size_t j = 0; j < w; j++) {
                double v = x[i * d + col[j]];
                if (lg[j])
                    v = transform_log(p, v);
                z[i * da + j0 + j] = v;
                v -= tm[j];
                s1[j] += v;
                s2[j] += v * v;
            }
    } else { /* standardise */
        for (size_t j = 0; j < w; j++) {
            tm[j] = p->tmean[j0 + j];
            sd[j] = p->tsd[j0 + j];
        }
        for (size_t i = lo; i < hi; i++)
#pragma GCC unroll 8
            for (size_t j = 0; j < w; j++)
                z[i * da + j0 + j] = (z[i * da + j0 + j] - tm[j]) / sd[j];
    }
    for (size_t j = 0; j < w; j++) {
        a[j0 + j] = s1[j];
        a[d + j0 + j] = s2[j];
    }
}

static void prep_block(void *ctx, size_t b, size_t lo, size_t hi)
{
    prep_t *p = ctx;
    size_t w = p->stage < 2 ? p->d : p->da;
    if (p->stage == 0)
        p->bad[b] = SIZE_MAX;
    for (size_t j0 = 0; j0 < w; j0 += PREP_MAX_D) {
        size_t cw = w - j0 < PREP_MAX_D ? w - j0 : PREP_MAX_D;
        switch (cw) {
        case 1:
            prep_cols(p, b, lo, hi, j0, 1);
            break;
        case 2:
            prep_cols(p, b, lo, hi, j0, 2);
            break;
        case 3:
            prep_cols(p, b, lo, hi, j0, 3);
            break;
        case 4:
            prep_cols(p, b, lo, hi, j0, 4);
            break;
        default:
            prep_cols(p, b, lo, hi, j0, cw);
        }
    }
}

static void prep_pass(prep_t *p, int stage, int threads)
{
    memset(p->acc, 0, nblocks(p->n) * 3 * p->d * sizeof(double));
    p->stage = stage;
    par_blocks(threads, p->n, prep_block, p);
}

/* Fills r->features and returns the standardised matrix (n x *da, caller frees) and the active
 * column indices, or NULL with err set. */
static double *prepare(const double *x, size_t n, size_t d, pulse_cluster_result_t *r, size_t *active, size_t *da_out, int threads,
                       char *err, size_t errlen)
{
    size_t nb = nblocks(n), da = 0;
    prep_t p = {.x = x, .n = n, .d = d, .active = active};
    for (size_t i = 0; i < SMALL_LOG; i++)
        p.small_log[i] = log1p_nonneg((double)i);
    p.acc = xcalloc(nb * 3 * d, sizeof(double));
    p.bad = xcalloc(nb, sizeof(size_t));
    double *mean = xcalloc(d, sizeof(double)), *mn = xcalloc(d, sizeof(double));
    double *tmean = xcalloc(d, sizeof(double)), *tsd = xcalloc(d, sizeof(double));
    int *logc = xcalloc(d, sizeof(int));
    double *z = NULL;
    prep_pass(&p, 0, threads);
    for (size_t b = 0; b < nb; b++)
        if (p.bad[b] != SIZE_MAX) {
            size_t row = p.bad[b] / d, col = p.bad[b] % d;
            pulse_fail(err, errlen, "row %zu, feature '%s': value is %s", row, r->features[col].name,
                       isnan(x[p.bad[b]]) ? "NaN" : "infinite");
            goto out;
        }
    for (size_t j = 0; j < d; j++)
        mn[j] = INFINITY;
    for (size_t b = 0; b < nb; b++)
        for (size_t j = 0; j < d; j++) {
            mean[j] += p.acc[b * 3 * d + j];
            if (p.acc[b * 3 * d + d + j] < mn[j])
                mn[j] = p.acc[b * 3 * d + d + j];
        }
    for (size_t j = 0; j < d; j++)
        mean[j] /= (double)n;
    p.mean = mean;
    prep_pass(&p, 1, threads);
    for (size_t j = 0; j < d; j++) {
        double m2 = 0, m3 = 0;
        for (size_t b = 0; b < nb; b++) {
            m2 += p.acc[b * 3 * d + j];
            m3 += p.acc[b * 3 * d + d + j];
        }
        m2 /= (double)n;
        m3 /= (double)n;
        pulse_cluster_feature_t *f = &r->features[j];
        /* A spread below rounding noise of the mean is a constant column. */
        int constant = !(m2 > 0) || sqrt(m2) <= 1e-12 * fmax(1.0, fabs(mean[j]));
        f->skewness = constant ? 0 : m3 / pow(m2, 1.5);
        /* Spend and counts are long-tailed: without the log a few big customers make their own
         * clusters and everyone else shares one. */
        f->log1p = logc[j] = !constant && mn[j] >= 0 && f->skewness > 1.0;
        f->ignored = constant;
        if (!constant)
            active[da++] = j;
        else
            f->mean = mean[j];
    }
    if (da == 0) {
        pulse_fail(err, errlen, "every feature is constant: nothing to cluster on");
        goto out;
    }
    p.da = da;
    p.logc = logc;
    z = pulse_xmalloc(n * da * sizeof(double));
    p.z = z;
    /* One pass gives the transformed mean and variance: summing around the transform of the raw
     * mean, which is within a spread of the answer, keeps the variance free of cancellation. */
    for (size_t j = 0; j < da; j++)
        tmean[j] = logc[active[j]] ? log1p(mean[active[j]]) : mean[active[j]];
    p.tmean = tmean;
    prep_pass(&p, 2, threads);
    for (size_t j = 0; j < da; j++) {
        double s1 = 0, s2 = 0;
        for (size_t b = 0; b < nb; b++) {
            s1 += p.acc[b * 3 * d + j];
            s2 += p.acc[b * 3 * d + d + j];
        }
        s1 /= (double)n;
        tmean[j] += s1;
        double var = s2 / (double)n - s1 * s1;
        tsd[j] = sqrt(var > 0 ? var : 0);
        if (!(tsd[j] > 0))
            tsd[j] = 1; /* cannot happen for a non-constant column; keeps the division safe */
        r->features[active[j]].mean = tmean[j];
        r->features[active[j]].sd = tsd[j];
    }
    p.tsd = tsd;
    prep_pass(&p, 3, threads);
    *da_out = da;
out:
    free(p.acc);
    free(p.bad);
    free(mean);
    free(mn);
    free(tmean);
    free(tsd);
    free(logc);
    return z;
}

/* ---------------------------------------------------------------------------------------------
 * Samples. */

/* m distinct rows of [0, n) in random order: Floyd's algorithm (m draws, a bitmap of n bits
 * for the set) then a shuffle, so a sample of 2,000 from millions costs microseconds. */
static size_t *sample_rows(size_t n, size_t m, unsigned long long seed, int stream)
{
    pulse_rng_t rng;
    pulse_rng_seed(&rng, seed, (uint64_t)stream, 0);
    size_t *idx = pulse_xmalloc((m ? m : 1) * sizeof(size_t)), got = 0;
    unsigned char *seen = xcalloc(n / 8 + 1, 1);
    for (size_t j = n - m; j < n; j++) {
        size_t t = (size_t)(pulse_rng_uniform(&rng) * (double)(j + 1));
        if (t > j)
            t = j;
        if (seen[t / 8] & (1u << (t % 8)))
            t = j;
        seen[t / 8] |= (unsigned char)(1u << (t % 8));
        idx[got++] = t;
    }
    for (size_t i = got; i > 1; i--) {
        size_t j = (size_t)(pulse_rng_uniform(&rng) * (double)i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
    free(seen);
    return idx;
}

static double *gather(const double *z, size_t d, const size_t *idx, size_t m)
{
    double *s = pulse_xmalloc((m ? m : 1) * d * sizeof(double));
    for (size_t i = 0; i < m; i++)
        memcpy(s + i * d, z + idx[i] * d, d * sizeof(double));
    return s;
}

static inline __attribute__((always_inline)) double sqdist(const double *a, const double *b, size_t d)
{
    double s = 0;
#pragma GCC unroll 8
    for (size_t j = 0; j < d; j++) {
        double t = a[j] - b[j];
        s += t * t;
    }
    return s;
}

static inline __attribute__((always_inline)) int nearest(const double *row, const double *c, size_t k, size_t d, double *dist)
{
    int best = 0;
    double bd = sqdist(row, c, d);
    for (size_t q = 1; q < k; q++) {
        double t = sqdist(row, c + q * d, d);
        if (t < bd) {
            bd = t;
            best = (int)q;
        }
    }
    if (dist)
        *dist = bd;
    return best;
}

/* The same with d known at compile time for the usual small widths: the distance loop unrolls,
 * which is most of the cost of an assignment pass over millions of rows. */
static int nearest_fast(const double *row, const double *c, size_t k, size_t d, double *dist)
{
    switch (d) {
    case 1:
        return nearest(row, c, k, 1, dist);
    case 2:
        return nearest(row, c, k, 2, dist);
    case 3:
        return nearest(row, c, k, 3, dist);
    case 4:
        return nearest(row, c, k, 4, dist);
    case 5:
        return nearest(row, c, k, 5, dist);
    case 6:
        return nearest(row, c, k, 6, dist);
    case 8:
        return nearest(row, c, k, 8, dist);
    default:
        return nearest(row, c, k, d, dist);
    }
}

/* Mean silhouette of m rows (s x d) with labels lab in 0..k-1; a row alone in its cluster
 * scores 0 (Rousseeuw's convention). */
static double silhouette(const double *s, const int *lab, size_t m, size_t d, size_t k)
{
    double *sum = xcalloc(k, sizeof(double)), total = 0;
    size_t *cnt = xcalloc(k, sizeof(size_t));
    for (size_t i = 0; i < m; i++)
        cnt[lab[i]]++;
    for (size_t i = 0; i < m; i++) {
        memset(sum, 0, k * sizeof(double));
        for (size_t j = 0; j < m; j++)
            if (j != i)
                sum[lab[j]] += sqrt(sqdist(s + i * d, s + j * d, d));
        size_t own = (size_t)lab[i];
        if (cnt[own] < 2)
            continue;
        double a = sum[own] / (double)(cnt[own] - 1), b = INFINITY;
        for (size_t q = 0; q < k; q++)
            if (q != own && cnt[q] > 0 && sum[q] / (double)cnt[q] < b)
                b = sum[q] / (double)cnt[q];
        if (isfinite(b) && fmax(a, b) > 0)
            total += (b - a) / fmax(a, b);
    }
    free(sum);
    free(cnt);
    return m ? total / (double)m : 0;
}

/* ---------------------------------------------------------------------------------------------
 * k-means. */

/* k-means++: the first centre uniform, each next one drawn with probability proportional to the
 * squared distance to the nearest centre already chosen. */
static void kmeanspp(const double *x, size_t n, size_t d, size_t k, pulse_rng_t *rng, double *c)
{
    double *dist = pulse_xmalloc(n * sizeof(double));
    size_t first = (size_t)(pulse_rng_uniform(rng) * (double)n);
    memcpy(c, x + first * d, d * sizeof(double));
    for (size_t i = 0; i < n; i++)
        dist[i] = sqdist(x + i * d, c, d);
    for (size_t q = 1; q < k; q++) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += dist[i];
        size_t pick = 0;
        if (total > 0) {
            double u = pulse_rng_uniform(rng) * total, acc = 0;
            pick = n - 1;
            for (size_t i = 0; i < n; i++) {
                acc += dist[i];
                if (acc > u) {
                    pick = i;
                    break;
                }
            }
        } else {
            pick = (size_t)(pulse_rng_uniform(rng) * (double)n); /* all points coincide with centres */
        }
        memcpy(c + q * d, x + pick * d, d * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            double t = sqdist(x + i * d, c + q * d, d);
            if (t < dist[i])
                dist[i] = t;
        }
    }
    free(dist);
}

typedef struct lloyd_t {
    const double *x;
    size_t d, k, stride; /* stride: doubles per block slot */
    const double *c;
    int *labels;
    double *acc; /* per block: k*d sums, k counts, inertia, changed, farthest distance, its row */
} lloyd_t;

/* The body of an assignment pass; always inlined so that each call site below gets its own copy
 * with d a constant, whose distance loops unroll (most of the cost over millions of rows). */
static inline __attribute__((always_inline)) void lloyd_rows(lloyd_t *l, size_t b, size_t lo, size_t hi, size_t d)
{
    size_t k = l->k;
    double *a = l->acc + b * l->stride, *cnt = a + k * d, inertia = 0, far = -1, far_row = 0, changed = 0;
    memset(a, 0, l->stride * sizeof(double));
    for (size_t i = lo; i < hi; i++) {
        const double *row = l->x + i * d;
        double dist;
        int q = nearest(row, l->c, k, d, &dist);
        if (l->labels[i] != q) {
            l->labels[i] = q;
            changed++;
        }
        double *s = a + (size_t)q * d;
#pragma GCC unroll 8
        for (size_t j = 0; j < d; j++)
            s[j] += row[j];
        cnt[q] += 1;
        inertia += dist;
        if (dist > far) {
            far = dist;
            far_row = (double)i;
        }
    }
    cnt[k] = inertia;
    cnt[k + 1] = changed;
    cnt[k + 2] = far;
    cnt[k + 3] = far_row;
}

static void lloyd_block(void *ctx, size_t b, size_t lo, size_t hi)
{
    lloyd_t *l = ctx;
    switch (l->d) {
    case 2:
        lloyd_rows(l, b, lo, hi, 2);
        break;
    case 3:
        lloyd_rows(l, b, lo, hi, 3);
        break;
    case 4:
        lloyd_rows(l, b, lo, hi, 4);
        break;
    case 5:
        lloyd_rows(l, b, lo, hi, 5);
        break;
    case 6:
        lloyd_rows(l, b, lo, hi, 6);
        break;
    default:
        lloyd_rows(l, b, lo, hi, l->d);
    }
}

/* Lloyd iterations from the centres in c (k x d, updated in place). labels (n) start at -1 or a
 * previous assignment and end consistent with c. Returns the inertia; *iters the iterations. */
static double lloyd(const double *x, size_t n, size_t d, size_t k, double *c, int *labels, int max_iter, double tol, int threads,
                    int *iters)
{
    size_t nb = nblocks(n);
    lloyd_t l = {x, d, k, k * d + k + 4, c, labels, NULL};
    l.acc = pulse_xmalloc(nb * l.stride * sizeof(double));
    double *sum = pulse_xmalloc((k * d + k) * sizeof(double)), inertia = 0;
    char *used = xcalloc(nb, 1);
    double *old = pulse_xmalloc(d * sizeof(double));
    int it = 0;
    for (;;) {
        par_blocks(threads, n, lloyd_block, &l);
        memset(sum, 0, (k * d + k) * sizeof(double));
        double changed = 0;
        inertia = 0;
        for (size_t b = 0; b < nb; b++) {
            const double *a = l.acc + b * l.stride;
            for (size_t j = 0; j < k * d + k; j++)
                sum[j] += a[j];
            inertia += a[k * d + k];
            changed += a[k * d + k + 1];
        }
        if ((it > 0 && changed == 0) || it >= max_iter)
            break;
        it++;
        double shift = 0;
        memset(used, 0, nb);
        for (size_t q = 0; q < k; q++) {
            double *cq = c + q * d, cnt = sum[k * d + q];
            memcpy(old, cq, d * sizeof(double));
            if (cnt > 0) {
                for (size_t j = 0; j < d; j++)
                    cq[j] = sum[q * d + j] / cnt;
            } else {
                /* An empty cluster restarts at the worst-served point (farthest from its centre),
                 * a different block's worst for each empty cluster. */
                size_t best = nb;
                for (size_t b = 0; b < nb; b++)
                    if (!used[b] && (best == nb || l.acc[b * l.stride + k * d + k + 2] > l.acc[best * l.stride + k * d + k + 2]))
                        best = b;
                if (best < nb) {
                    used[best] = 1;
                    memcpy(cq, x + (size_t)l.acc[best * l.stride + k * d + k + 3] * d, d * sizeof(double));
                }
            }
            double s = sqdist(old, cq, d);
            if (s > shift)
                shift = s;
        }
        if (shift < tol * tol) {
            par_blocks(threads, n, lloyd_block, &l); /* labels and inertia for the final centres */
            inertia = 0;
            for (size_t b = 0; b < nb; b++)
                inertia += l.acc[b * l.stride + k * d + k];
            break;
        }
    }
    free(l.acc);
    free(sum);
    free(used);
    free(old);
    *iters = it;
    return inertia;
}

/* The restarts r = first, first + step, ... of kmeans_best, each a single-threaded Lloyd (the same
 * result as a threaded one: the blocks fix the sums), keeping this worker's best. */
typedef struct restarts_t {
    const double *x;
    size_t n, d, k;
    const pulse_cluster_opts_t *o;
    int first, step, restarts;
    double best; /* inertia of the best, INFINITY until one */
    int best_r;  /* its restart number */
    double *c;   /* k*d: its centres */
    int *labels; /* n: its labels, or NULL when not wanted */
} restarts_t;

static void *run_restarts(void *arg)
{
    restarts_t *w = arg;
    size_t n = w->n, d = w->d, k = w->k;
    double *cand = pulse_xmalloc(k * d * sizeof(double));
    int *lab = pulse_xmalloc(n * sizeof(int)), it;
    for (int r = w->first; r < w->restarts; r += w->step) {
        pulse_rng_t rng;
        pulse_rng_seed(&rng, w->o->seed, STREAM_INIT, (uint64_t)k * 1000 + (uint64_t)r);
        kmeanspp(w->x, n, d, k, &rng, cand);
        for (size_t i = 0; i < n; i++)
            lab[i] = -1;
        double in = lloyd(w->x, n, d, k, cand, lab, w->o->max_iter, w->o->tol, 1, &it);
        if (in < w->best) { /* strict: this worker's earliest restart wins a tie */
            w->best = in;
            w->best_r = r;
            memcpy(w->c, cand, k * d * sizeof(double));
            if (w->labels)
                memcpy(w->labels, lab, n * sizeof(int));
        }
    }
    free(cand);
    free(lab);
    return NULL;
}

/* Best of `restarts` k-means++ + Lloyd runs on x (n x d): centres into c, returns the inertia.
 * The restarts run side by side on the threads (they are independent; a restart on 100,000 rows
 * is too short to split its passes well); the lowest inertia wins and the earliest restart a tie,
 * so the result is that of running them in order whatever the thread count. */
static double kmeans_best(const double *x, size_t n, size_t d, size_t k, const pulse_cluster_opts_t *o, int threads, double *c,
                          int *labels_out)
{
    int restarts = o->restarts > 0 ? o->restarts : 1;
    int nw = threads < restarts ? threads : restarts;
    if (nw > MAX_THREADS)
        nw = MAX_THREADS;
    if (nw < 1)
        nw = 1;
    restarts_t w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < nw; t++) {
        w[t] = (restarts_t){x, n, d, k, o, t, nw, restarts, INFINITY, -1, NULL, NULL};
        w[t].c = pulse_xmalloc(k * d * sizeof(double));
        w[t].labels = labels_out ? pulse_xmalloc(n * sizeof(int)) : NULL;
    }
    for (int t = 1; t < nw; t++)
        started[t] = pthread_create(&tid[t], NULL, run_restarts, &w[t]) == 0;
    run_restarts(&w[0]);
    for (int t = 1; t < nw; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_restarts(&w[t]); /* no thread: same restarts, same result, later */
    }
    int win = -1;
    for (int t = 0; t < nw; t++)
        if (w[t].best_r >= 0 && (win < 0 || w[t].best < w[win].best || (w[t].best == w[win].best && w[t].best_r < w[win].best_r)))
            win = t;
    double best = INFINITY;
    if (win >= 0) {
        best = w[win].best;
        memcpy(c, w[win].c, k * d * sizeof(double));
        if (labels_out)
            memcpy(labels_out, w[win].labels, n * sizeof(int));
    }
    for (int t = 0; t < nw; t++) {
        free(w[t].c);
        free(w[t].labels);
    }
    return best;
}

/* ---------------------------------------------------------------------------------------------
 * Gaussian mixture, diagonal covariances. */

typedef struct gmm_t {
    size_t k, d;
    double *w, *mu, *var; /* k, k*d, k*d */
} gmm_t;

typedef struct em_t {
    const double *x;
    size_t d, k, stride;
    const double *mu, *ivar, *cst; /* cst[q] = log w_q - 0.5 sum_j log(2 pi var_qj) */
    int *labels;                   /* NULL: do not label */
    double *acc;                   /* per block: k counts, k*d sums, k*d squares, loglik */
} em_t;

static void em_block(void *ctx, size_t b, size_t lo, size_t hi)
{
    em_t *e = ctx;
    size_t d = e->d, k = e->k;
    double *a = e->acc + b * e->stride, *sx = a + k, *sxx = a + k + k * d, ll = 0;
    double lp[PULSE_CLUSTER_K_LIMIT];
    memset(a, 0, e->stride * sizeof(double));
    for (size_t i = lo; i < hi; i++) {
        const double *row = e->x + i * d;
        double mx = -INFINITY;
        int arg = 0;
        for (size_t q = 0; q < k; q++) {
            const double *m = e->mu + q * d, *iv = e->ivar + q * d;
            double s = 0;
            for (size_t j = 0; j < d; j++) {
                double t = row[j] - m[j];
                s += t * t * iv[j];
            }
            lp[q] = e->cst[q] - 0.5 * s;
            if (lp[q] > mx) {
                mx = lp[q];
                arg = (int)q;
            }
        }
        double tot = 0;
        for (size_t q = 0; q < k; q++)
            tot += (lp[q] = exp(lp[q] - mx));
        ll += mx + log(tot);
        if (e->labels)
            e->labels[i] = arg;
        double inv = 1.0 / tot;
        for (size_t q = 0; q < k; q++) {
            double r = lp[q] * inv;
            if (r < 1e-300)
                continue;
            a[q] += r;
            double *s1 = sx + q * d, *s2 = sxx + q * d;
            for (size_t j = 0; j < d; j++) {
                s1[j] += r * row[j];
                s2[j] += r * row[j] * row[j];
            }
        }
    }
    a[k + 2 * k * d] = ll;
}

/* One E-step with the parameters in g: returns the log-likelihood, sums into sum (k + 2kd). */
static double em_pass(const double *x, size_t n, const gmm_t *g, int *labels, int threads, double *sum)
{
    size_t k = g->k, d = g->d, nb = nblocks(n);
    double *ivar = pulse_xmalloc(k * d * sizeof(double)), cst[PULSE_CLUSTER_K_LIMIT];
    for (size_t q = 0; q < k; q++) {
        double s = 0;
        for (size_t j = 0; j < d; j++) {
            ivar[q * d + j] = 1.0 / g->var[q * d + j];
            s += LOG_2PI + log(g->var[q * d + j]);
        }
        cst[q] = log(g->w[q]) - 0.5 * s;
    }
    em_t e = {x, d, k, k + 2 * k * d + 1, g->mu, ivar, cst, labels, NULL};
    e.acc = pulse_xmalloc(nb * e.stride * sizeof(double));
    par_blocks(threads, n, em_block, &e);
    double ll = 0;
    memset(sum, 0, (k + 2 * k * d) * sizeof(double));
    for (size_t b = 0; b < nb; b++) {
        const double *a = e.acc + b * e.stride;
        for (size_t j = 0; j < k + 2 * k * d; j++)
            sum[j] += a[j];
        ll += a[k + 2 * k * d];
    }
    free(e.acc);
    free(ivar);
    return ll;
}

static void gmm_alloc(gmm_t *g, size_t k, size_t d)
{
    g->k = k;
    g->d = d;
    g->w = pulse_xmalloc(k * sizeof(double));
    g->mu = pulse_xmalloc(k * d * sizeof(double));
    g->var = pulse_xmalloc(k * d * sizeof(double));
}

static void gmm_free(gmm_t *g)
{
    free(g->w);
    free(g->mu);
    free(g->var);
}

/* Weights, means and variances from a hard assignment (the k-means start). */
static void gmm_from_labels(gmm_t *g, const double *x, size_t n, const int *lab, const double *c, double floor_)
{
    size_t k = g->k, d = g->d;
    double *cnt = xcalloc(k, sizeof(double));
    memset(g->var, 0, k * d * sizeof(double));
    memcpy(g->mu, c, k * d * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        size_t q = (size_t)lab[i];
        cnt[q] += 1;
        for (size_t j = 0; j < d; j++) {
            double t = x[i * d + j] - c[q * d + j];
            g->var[q * d + j] += t * t;
        }
    }
    for (size_t q = 0; q < k; q++) {
        g->w[q] = (cnt[q] + 1.0) / ((double)n + (double)k); /* an empty start still gets a chance */
        for (size_t j = 0; j < d; j++) {
            double v = cnt[q] > 1 ? g->var[q * d + j] / cnt[q] : 1.0;
            g->var[q * d + j] = v > floor_ ? v : floor_;
        }
    }
    free(cnt);
}

/* EM from the parameters in g until the log-likelihood gains less than tol (relative). Leaves the
 * final parameters in g, labels (may be NULL) by largest responsibility under them, and returns
 * the log-likelihood of those parameters. trace (max_iter + 1 entries, may be NULL) receives the
 * log-likelihood before each M-step and the final one. */
static double em(const double *x, size_t n, gmm_t *g, const pulse_cluster_opts_t *o, int threads, int *labels, double *trace,
                 int *trace_len, int *iters)
{
    size_t k = g->k, d = g->d;
    double *sum = pulse_xmalloc((k + 2 * k * d) * sizeof(double));
    double prev = -INFINITY, ll = 0;
    int it = 0, len = 0;
    for (;;) {
        ll = em_pass(x, n, g, NULL, threads, sum);
        if (trace)
            trace[len++] = ll;
        if (it >= o->max_iter || (it > 0 && ll - prev <= o->gmm_tol * fabs(ll)))
            break;
        prev = ll;
        it++;
        for (size_t q = 0; q < k; q++) {
            double nq = sum[q];
            if (nq < 1e-9) { /* a component nobody belongs to keeps its place, with no weight */
                g->w[q] = 1e-300;
                continue;
            }
            g->w[q] = nq / (double)n;
            for (size_t j = 0; j < d; j++) {
                double m = sum[k + q * d + j] / nq;
                double v = sum[k + k * d + q * d + j] / nq - m * m;
                g->mu[q * d + j] = m;
                g->var[q * d + j] = v > o->var_floor ? v : o->var_floor;
            }
        }
    }
    if (labels)
        em_pass(x, n, g, labels, threads, sum); /* same parameters as the last pass: same ll */
    free(sum);
    if (trace_len)
        *trace_len = len;
    *iters = it;
    return ll;
}

static double gmm_bic(double ll, size_t n, size_t k, size_t d)
{
    double p = (double)(k * 2 * d + k - 1);
    return -2.0 * ll + p * log((double)n);
}

/* k-means (best of the restarts) then EM, on x. */
static double gmm_fit(const double *x, size_t n, size_t d, size_t k, const pulse_cluster_opts_t *o, int threads, gmm_t *g)
{
    double *c = pulse_xmalloc(k * d * sizeof(double));
    int *lab = pulse_xmalloc(n * sizeof(int)), it;
    kmeans_best(x, n, d, k, o, threads, c, lab);
    gmm_alloc(g, k, d);
    gmm_from_labels(g, x, n, lab, c, o->var_floor);
    double ll = em(x, n, g, o, threads, NULL, NULL, NULL, &it);
    free(c);
    free(lab);
    return ll;
}

/* ---------------------------------------------------------------------------------------------
 * Ward: nearest-neighbour chain. The Ward merge cost of clusters A and B is
 * |A||B| / (|A|+|B|) * ||c_A - c_B||^2 (the growth of the within-cluster sum of squares), which is
 * what the Lance-Williams update computes; working from centroids needs O(m d) memory instead of
 * an m^2 distance matrix. Ward's cost is reducible, so the chain finds the exact hierarchy. */

typedef struct merge_t {
    size_t a, b;
    double cost;
    size_t order;
} merge_t;

static int merge_cmp(const void *pa, const void *pb)
{
    const merge_t *a = pa, *b = pb;
    if (a->cost != b->cost)
        return a->cost < b->cost ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static double ward_cost(const double *c, const double *s, size_t i, size_t j, size_t d)
{
    return s[i] * s[j] / (s[i] + s[j]) * sqdist(c + i * d, c + j * d, d);
}

/* The m-1 merges of x (m x d), sorted by cost. Caller frees. */
static merge_t *ward_merges(const double *x, size_t m, size_t d)
{
    double *c = pulse_xmalloc(m * d * sizeof(double)), *s = pulse_xmalloc(m * sizeof(double));
    char *alive = pulse_xmalloc(m);
    size_t *chain = pulse_xmalloc(m * sizeof(size_t)), len = 0, nm = 0, next_start = 0;
    merge_t *mg = pulse_xmalloc((m ? m : 1) * sizeof(merge_t));
    memcpy(c, x, m * d * sizeof(double));
    for (size_t i = 0; i < m; i++) {
        s[i] = 1;
        alive[i] = 1;
    }
    while (nm + 1 < m) {
        if (len == 0) {
            while (!alive[next_start])
                next_start++;
            chain[len++] = next_start;
        }
        size_t a = chain[len - 1], best = SIZE_MAX;
        double bd = INFINITY;
        if (len >= 2) { /* on a tie, the previous link wins: the chain cannot cycle */
            best = chain[len - 2];
            bd = ward_cost(c, s, a, best, d);
        }
        for (size_t j = 0; j < m; j++) {
            if (!alive[j] || j == a)
                continue;
            double t = ward_cost(c, s, a, j, d);
            if (t < bd) {
                bd = t;
                best = j;
            }
        }
        if (len >= 2 && best == chain[len - 2]) {
            size_t b = best, keep = a < b ? a : b, drop = a < b ? b : a;
            len -= 2;
            mg[nm] = (merge_t){keep, drop, bd, nm};
            nm++;
            double tot = s[a] + s[b];
            for (size_t j = 0; j < d; j++)
                c[keep * d + j] = (s[a] * c[a * d + j] + s[b] * c[b * d + j]) / tot;
            s[keep] = tot;
            alive[drop] = 0;
        } else {
            chain[len++] = best;
        }
    }
    qsort(mg, nm, sizeof(merge_t), merge_cmp);
    free(c);
    free(s);
    free(alive);
    free(chain);
    return mg;
}

static size_t uf_find(size_t *p, size_t i)
{
    while (p[i] != i) {
        p[i] = p[p[i]];
        i = p[i];
    }
    return i;
}

/* Cuts the hierarchy at k clusters: labels 0..k-1 numbered by first appearance. */
static void ward_cut(const merge_t *mg, size_t m, size_t k, int *lab)
{
    size_t *p = pulse_xmalloc(m * sizeof(size_t));
    int *map = pulse_xmalloc(m * sizeof(int)), next = 0;
    for (size_t i = 0; i < m; i++) {
        p[i] = i;
        map[i] = -1;
    }
    for (size_t t = 0; t + k < m; t++) {
        size_t ra = uf_find(p, mg[t].a), rb = uf_find(p, mg[t].b);
        if (ra != rb)
            p[rb] = ra;
    }
    for (size_t i = 0; i < m; i++) {
        size_t r = uf_find(p, i);
        if (map[r] < 0)
            map[r] = next++;
        lab[i] = map[r];
    }
    free(p);
    free(map);
}

static void centres_of(const double *x, const int *lab, size_t m, size_t d, size_t k, double *c)
{
    double *cnt = xcalloc(k, sizeof(double));
    memset(c, 0, k * d * sizeof(double));
    for (size_t i = 0; i < m; i++) {
        cnt[lab[i]] += 1;
        for (size_t j = 0; j < d; j++)
            c[(size_t)lab[i] * d + j] += x[i * d + j];
    }
    for (size_t q = 0; q < k; q++)
        for (size_t j = 0; j < d; j++)
            c[q * d + j] /= cnt[q] > 0 ? cnt[q] : 1;
    free(cnt);
}

/* ---------------------------------------------------------------------------------------------
 * Final assignment and summary passes. */

typedef struct assign_t {
    const double *z;
    size_t d, k;
    const double *c;
    int *labels;
    const char *fixed; /* rows whose label is already decided (the Ward sample), or NULL */
} assign_t;

static void assign_block(void *ctx, size_t b, size_t lo, size_t hi)
{
    assign_t *a = ctx;
    for (size_t i = lo; i < hi; i++)
        if (a->fixed == NULL || !a->fixed[i])
            a->labels[i] = nearest_fast(a->z + i * a->d, a->c, a->k, a->d, NULL);
}

typedef struct summary_t {
    const double *z, *x;
    size_t da, d, k, stride;
    const int *labels;
    double *acc; /* per block: k counts, k*da z sums, k*da z squares, k*d raw sums */
} summary_t;

static void summary_block(void *ctx, size_t b, size_t lo, size_t hi)
{
    summary_t *s = ctx;
    size_t k = s->k, da = s->da, d = s->d;
    double *a = s->acc + b * s->stride, *sz = a + k, *sq = sz + k * da, *sr = sq + k * da;
    memset(a, 0, s->stride * sizeof(double));
    for (size_t i = lo; i < hi; i++) {
        size_t q = (size_t)s->labels[i];
        a[q] += 1;
        for (size_t j = 0; j < da; j++) {
            double v = s->z[i * da + j];
            sz[q * da + j] += v;
            sq[q * da + j] += v * v;
        }
        for (size_t j = 0; j < d; j++)
            sr[q * d + j] += s->x[i * d + j];
    }
}

/* Sizes, centroids (z, original units, raw means) and inertia from the final labels. fallback:
 * k*da centres for clusters left empty (a mixture component no row prefers). */
static void summarise(pulse_cluster_result_t *r, const double *x, const double *z, size_t da, const size_t *active,
                      const double *fallback, int threads)
{
    size_t k = r->k, d = r->d, n = r->n, nb = nblocks(n);
    summary_t s = {z, x, da, d, k, k + 2 * k * da + k * d, r->labels, NULL};
    s.acc = pulse_xmalloc(nb * s.stride * sizeof(double));
    par_blocks(threads, n, summary_block, &s);
    double *sum = xcalloc(s.stride, sizeof(double));
    for (size_t b = 0; b < nb; b++)
        for (size_t j = 0; j < s.stride; j++)
            sum[j] += s.acc[b * s.stride + j];
    double *sz = sum + k, *sq = sz + k * da, *sr = sq + k * da;
    r->inertia = 0;
    for (size_t q = 0; q < k; q++) {
        double cnt = sum[q];
        r->sizes[q] = (size_t)cnt;
        for (size_t j = 0; j < d; j++) {
            const pulse_cluster_feature_t *f = &r->features[j];
            r->centroids_z[q * d + j] = 0;
            r->centroids[q * d + j] = f->mean;
            r->means[q * d + j] = cnt > 0 ? sr[q * d + j] / cnt : NAN;
        }
        for (size_t j = 0; j < da; j++) {
            double m = cnt > 0 ? sz[q * da + j] / cnt : fallback[q * da + j];
            size_t c = active[j];
            const pulse_cluster_feature_t *f = &r->features[c];
            r->centroids_z[q * d + c] = m;
            double t = m * f->sd + f->mean;
            r->centroids[q * d + c] = f->log1p ? expm1(t) : t;
            if (cnt > 0)
                r->inertia += sq[q * da + j] - cnt * m * m;
        }
    }
    if (r->inertia < 0)
        r->inertia = 0;
    free(sum);
    free(s.acc);
}

/* Numbers clusters by decreasing size (ties: old number) so reports read the same way each run. */
static void renumber(pulse_cluster_result_t *r, size_t da)
{
    size_t k = r->k, d = r->d;
    int order[PULSE_CLUSTER_K_LIMIT], inv[PULSE_CLUSTER_K_LIMIT];
    for (size_t q = 0; q < k; q++)
        order[q] = (int)q;
    for (size_t i = 1; i < k; i++) /* insertion sort: k is small and it is stable */
        for (size_t j = i; j > 0 && r->sizes[order[j]] > r->sizes[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int identity = 1;
    for (size_t q = 0; q < k; q++) {
        inv[order[q]] = (int)q;
        identity &= order[q] == (int)q;
    }
    if (identity)
        return;
    for (size_t i = 0; i < r->n; i++)
        r->labels[i] = inv[r->labels[i]];
    size_t *sizes = pulse_xmalloc(k * sizeof(size_t));
    double *tmp = pulse_xmalloc(k * d * sizeof(double));
    for (size_t q = 0; q < k; q++)
        sizes[q] = r->sizes[order[q]];
    memcpy(r->sizes, sizes, k * sizeof(size_t));
    double *mats[] = {r->centroids_z, r->centroids, r->means, r->gmm_means, r->gmm_vars, r->weights};
    size_t widths[] = {d, d, d, da, da, 1};
    for (size_t m = 0; m < 6; m++) {
        if (mats[m] == NULL)
            continue;
        size_t w = widths[m];
        for (size_t q = 0; q < k; q++)
            memcpy(tmp + q * w, mats[m] + (size_t)order[q] * w, w * sizeof(double));
        memcpy(mats[m], tmp, k * w * sizeof(double));
    }
    free(sizes);
    free(tmp);
}

/* ---------------------------------------------------------------------------------------------
 * The run. */

void pulse_cluster_opts_init(pulse_cluster_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->method = PULSE_CLUSTER_KMEANS;
    o->k = 0;
    o->k_min = 2;
    o->k_max = 8;
    o->restarts = 4;
    o->max_iter = 300;
    o->refine_iter = 2;
    o->tol = 1e-4;
    o->gmm_tol = 1e-6;
    o->var_floor = 1e-4;
    o->seed = 1;
    o->fit_sample = 100000;
    o->ward_sample = 5000;
    o->silhouette_sample = 2000;
    o->threads = 0;
}

const char *pulse_cluster_method_name(pulse_cluster_method_t m)
{
    switch (m) {
    case PULSE_CLUSTER_KMEANS:
        return "kmeans";
    case PULSE_CLUSTER_GMM:
        return "gmm";
    case PULSE_CLUSTER_WARD:
        return "ward";
    }
    return "?";
}

void pulse_cluster_result_free(pulse_cluster_result_t *r)
{
    if (r == NULL)
        return;
    if (r->features)
        for (size_t j = 0; j < r->d; j++)
            free(r->features[j].name);
    free(r->features);
    free(r->labels);
    free(r->sizes);
    free(r->centroids_z);
    free(r->centroids);
    free(r->means);
    free(r->personas);
    free(r->weights);
    free(r->gmm_means);
    free(r->gmm_vars);
    free(r->loglik_trace);
    free(r->scores);
    memset(r, 0, sizeof(*r));
}

static int check_opts(const pulse_cluster_opts_t *o, size_t n, size_t d, char *err, size_t errlen)
{
    if (d == 0)
        return pulse_fail(err, errlen, "no features (d = 0)");
    if (n == 0)
        return pulse_fail(err, errlen, "no rows to cluster");
    if (o->method != PULSE_CLUSTER_KMEANS && o->method != PULSE_CLUSTER_GMM && o->method != PULSE_CLUSTER_WARD)
        return pulse_fail(err, errlen, "unknown clustering method %d", (int)o->method);
    if (o->k < 0 || o->k > PULSE_CLUSTER_K_LIMIT)
        return pulse_fail(err, errlen, "k = %d is out of range (1..%d, or 0 to choose)", o->k, PULSE_CLUSTER_K_LIMIT);
    if (o->k == 0 && (o->k_min < 2 || o->k_max < o->k_min || o->k_max > PULSE_CLUSTER_K_LIMIT))
        return pulse_fail(err, errlen, "k range %d..%d is out of range (2 <= k_min <= k_max <= %d)", o->k_min, o->k_max,
                          PULSE_CLUSTER_K_LIMIT);
    size_t need = o->k > 0 ? (size_t)o->k : (size_t)o->k_max;
    if (n < need)
        return pulse_fail(err, errlen, "%zu rows cannot make %zu clusters", n, need);
    if (o->max_iter < 1)
        return pulse_fail(err, errlen, "max_iter must be at least 1");
    if (o->refine_iter < 0)
        return pulse_fail(err, errlen, "refine_iter must be at least 0 (0: max_iter)");
    if (o->method == PULSE_CLUSTER_WARD && o->ward_sample < need)
        return pulse_fail(err, errlen, "ward_sample %zu is smaller than k = %zu", o->ward_sample, need);
    if (!(o->tol >= 0) || !(o->gmm_tol >= 0) || !(o->var_floor > 0))
        return pulse_fail(err, errlen, "tolerances must be >= 0 and the variance floor > 0");
    return 0;
}

int pulse_cluster_run(const double *x, size_t n, size_t d, const char *const *names, const pulse_cluster_opts_t *o,
                      pulse_cluster_result_t *out, char *err, size_t errlen)
{
    double t0 = pulse_now_s();
    memset(out, 0, sizeof(*out));
    if (x == NULL && n > 0)
        return pulse_fail(err, errlen, "no data");
    if (check_opts(o, n, d, err, errlen) != 0)
        return -1;
    pulse_cluster_result_t *r = out;
    int threads = o->threads > 0 ? o->threads : (n >= PAR_MIN_ROWS ? AUTO_THREADS : 1);
    r->method = o->method;
    r->n = n;
    r->d = d;
    r->features = xcalloc(d, sizeof(pulse_cluster_feature_t));
    for (size_t j = 0; j < d; j++) {
        char tmp[32];
        snprintf(tmp, sizeof(tmp), "feature_%zu", j + 1);
        r->features[j].name = pulse_xstrdup(names && names[j] ? names[j] : tmp);
    }
    size_t *active = pulse_xmalloc(d * sizeof(size_t)), da = 0;
    double *z = prepare(x, n, d, r, active, &da, threads, err, errlen);
    if (z == NULL) {
        free(active);
        pulse_cluster_result_free(r);
        return -1;
    }
    r->prep_seconds = pulse_now_s() - t0;

    /* The silhouette sample, and the fitting sample the restarts and the choice of k run on. */
    size_t ns = o->silhouette_sample < n ? o->silhouette_sample : n;
    if (ns < 2)
        ns = n < 2 ? n : 2;
    size_t *sil_idx = sample_rows(n, ns, o->seed, STREAM_SIL);
    double *sil = gather(z, da, sil_idx, ns);
    int *sil_lab = pulse_xmalloc(ns * sizeof(int));
    size_t nf = o->fit_sample > 0 && o->fit_sample < n ? o->fit_sample : n;
    if (o->k == 0 && nf < (size_t)o->k_max)
        nf = (size_t)o->k_max;
    double *fit = z;
    if (nf < n) {
        size_t *idx = sample_rows(n, nf, o->seed, STREAM_FIT);
        fit = gather(z, da, idx, nf);
        free(idx);
    }

    int kfirst = o->k > 0 ? o->k : o->k_min, klast = o->k > 0 ? o->k : o->k_max;
    if (o->k == 0) {
        r->k_first = kfirst;
        r->n_scores = klast - kfirst + 1;
        r->scores = xcalloc((size_t)r->n_scores, sizeof(double));
        r->criterion = o->method == PULSE_CLUSTER_GMM ? "bic" : "silhouette";
    }
    r->labels = pulse_xmalloc(n * sizeof(int));
    double *best_c = pulse_xmalloc((size_t)klast * da * sizeof(double)), *c = pulse_xmalloc((size_t)klast * da * sizeof(double));
    double best_score = 0;
    size_t best_k = 0;
    int iters = 0;
    double *fallback = NULL;

    if (o->method == PULSE_CLUSTER_KMEANS) {
        for (int k = kfirst; k <= klast; k++) {
            kmeans_best(fit, nf, da, (size_t)k, o, threads, c, NULL);
            double score = 0;
            if (o->k == 0) {
                for (size_t i = 0; i < ns; i++)
                    sil_lab[i] = nearest(sil + i * da, c, (size_t)k, da, NULL);
                score = silhouette(sil, sil_lab, ns, da, (size_t)k);
                r->scores[k - kfirst] = score;
            }
            if (best_k == 0 || score > best_score) {
                best_score = score;
                best_k = (size_t)k;
                memcpy(best_c, c, (size_t)k * da * sizeof(double));
            }
        }
        for (size_t i = 0; i < n; i++)
            r->labels[i] = -1;
        /* Refine the sample's best on every row. It starts at converged centres: the first
         * iterations move them most of the way, later ones relabel a handful of border rows for a
         * full pass each (on CDNOW x 150: 2 instead of 6 iterations, inertia +0.0002 %). */
        int refine = nf < n && o->refine_iter > 0 && o->refine_iter < o->max_iter ? o->refine_iter : o->max_iter;
        lloyd(z, n, da, best_k, best_c, r->labels, refine, o->tol, threads, &iters);
        fallback = best_c;
    } else if (o->method == PULSE_CLUSTER_GMM) {
        gmm_t best = {0};
        for (int k = kfirst; k <= klast; k++) {
            gmm_t g;
            double ll = gmm_fit(fit, nf, da, (size_t)k, o, threads, &g);
            double bic = gmm_bic(ll, nf, (size_t)k, da);
            if (o->k == 0)
                r->scores[k - kfirst] = bic;
            if (best_k == 0 || bic < best_score) {
                best_score = bic;
                best_k = (size_t)k;
                gmm_free(&best);
                best = g;
            } else {
                gmm_free(&g);
            }
        }
        r->loglik_trace = pulse_xmalloc(((size_t)o->max_iter + 1) * sizeof(double));
        r->loglik = em(z, n, &best, o, threads, r->labels, r->loglik_trace, &r->loglik_trace_len, &iters);
        r->bic = gmm_bic(r->loglik, n, best_k, da);
        r->weights = best.w;
        r->gmm_means = best.mu;
        r->gmm_vars = best.var;
        fallback = best.mu;
    } else {
        size_t m = o->ward_sample < n ? o->ward_sample : n;
        size_t *idx = sample_rows(n, m, o->seed, STREAM_WARD);
        double *ws = gather(z, da, idx, m);
        merge_t *mg = ward_merges(ws, m, da);
        int *lab = pulse_xmalloc(m * sizeof(int)), *best_lab = pulse_xmalloc(m * sizeof(int));
        size_t nsw = ns < m ? ns : m; /* the sample is in random order: its prefix is a sample too */
        for (int k = kfirst; k <= klast; k++) {
            ward_cut(mg, m, (size_t)k, lab);
            double score = 0;
            if (o->k == 0) {
                score = silhouette(ws, lab, nsw, da, (size_t)k);
                r->scores[k - kfirst] = score;
            }
            if (best_k == 0 || score > best_score) {
                best_score = score;
                best_k = (size_t)k;
                memcpy(best_lab, lab, m * sizeof(int));
            }
        }
        centres_of(ws, best_lab, m, da, best_k, best_c);
        char *fixed = xcalloc(n, 1);
        for (size_t i = 0; i < m; i++) {
            r->labels[idx[i]] = best_lab[i];
            fixed[idx[i]] = 1;
        }
        assign_t a = {z, da, best_k, best_c, r->labels, fixed};
        par_blocks(threads, n, assign_block, &a);
        fallback = best_c;
        free(fixed);
        free(lab);
        free(best_lab);
        free(mg);
        free(ws);
        free(idx);
    }

    r->k = best_k;
    r->iterations = iters;
    r->sizes = xcalloc(best_k, sizeof(size_t));
    r->centroids_z = xcalloc(best_k * d, sizeof(double));
    r->centroids = xcalloc(best_k * d, sizeof(double));
    r->means = xcalloc(best_k * d, sizeof(double));
    summarise(r, x, z, da, active, fallback, threads);
    renumber(r, da);
    for (size_t i = 0; i < ns; i++)
        sil_lab[i] = r->labels[sil_idx[i]];
    r->silhouette = silhouette(sil, sil_lab, ns, da, best_k);
    const char **nm = pulse_xmalloc(d * sizeof(char *));
    for (size_t j = 0; j < d; j++)
        nm[j] = r->features[j].name;
    r->personas = xcalloc(best_k, sizeof(pulse_cluster_persona_t));
    pulse_cluster_persona(r->centroids_z, best_k, d, nm, r->sizes, r->personas);
    free(nm);

    if (fit != z)
        free(fit);
    free(z);
    free(active);
    free(sil_idx);
    free(sil);
    free(sil_lab);
    free(best_c);
    free(c);
    r->seconds = pulse_now_s() - t0;
    return 0;
}

double pulse_cluster_adjusted_rand(const int *a, const int *b, size_t n)
{
    int ka = 0, kb = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] < 0 || b[i] < 0)
            return NAN;
        if (a[i] >= ka)
            ka = a[i] + 1;
        if (b[i] >= kb)
            kb = b[i] + 1;
    }
    if (n < 2)
        return 1;
    size_t *t = xcalloc((size_t)ka * (size_t)kb, sizeof(size_t));
    size_t *ra = xcalloc((size_t)ka, sizeof(size_t)), *rb = xcalloc((size_t)kb, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        t[(size_t)a[i] * (size_t)kb + (size_t)b[i]]++;
        ra[a[i]]++;
        rb[b[i]]++;
    }
#define C2(v) ((double)(v) * ((double)(v)-1.0) / 2.0)
    double sum_ij = 0, sum_a = 0, sum_b = 0;
    for (size_t i = 0; i < (size_t)ka * (size_t)kb; i++)
        sum_ij += C2(t[i]);
    for (int i = 0; i < ka; i++)
        sum_a += C2(ra[i]);
    for (int i = 0; i < kb; i++)
        sum_b += C2(rb[i]);
    double expected = sum_a * sum_b / C2(n), max = 0.5 * (sum_a + sum_b);
#undef C2
    free(t);
    free(ra);
    free(rb);
    if (max == expected)
        return 1; /* both labelings trivial (one cluster, or all singletons) */
    return (sum_ij - expected) / (max - expected);
}
