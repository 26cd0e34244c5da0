/* Per-customer features and RFM scores (see features.h). */
#include "analytics/features.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

static const pulse_feature_info_t fixed_info[PULSE_FEAT_COUNT] = {
    {"recency_days", "days from the last purchase day to the as-of day", "days"},
    {"frequency", "distinct purchase days", "count"},
    {"monetary", "net amount spent: purchases minus returns", "currency"},
    {"avg_basket", "monetary per purchase day", "currency"},
    {"unique_products", "distinct products bought", "count"},
    {"unique_categories", "distinct product categories bought", "count"},
    {"interpurchase_mean", "mean days between consecutive purchase days", "days"},
    {"interpurchase_var", "population variance of the days between purchase days", "days^2"},
    {"span_days", "last purchase day minus first purchase day", "days"},
    {"tenure_days", "days from the first purchase day to the as-of day", "days"},
    {"return_rate", "return rows per purchase row", "ratio"},
    {"discount_share", "share of purchase rows bought with a discount", "ratio"},
    {"active_days_30", "purchase days in the last 30 days", "count"},
    {"active_days_60", "purchase days in the last 60 days", "count"},
    {"active_days_90", "purchase days in the last 90 days", "count"},
    {"active_days_prev90", "purchase days 91-180 days before the as-of day", "count"},
    {"trend_90", "(active_days_90 - active_days_prev90) / max(active_days_prev90, 1)", "ratio"},
    {"days_overdue", "recency minus the mean interpurchase interval", "days"},
    {"quantity", "units bought", "count"},
};

const pulse_feature_info_t *pulse_features_info(pulse_feat_t f)
{
    return (unsigned)f < PULSE_FEAT_COUNT ? &fixed_info[f] : NULL;
}

int32_t pulse_features_default_as_of(const pulse_txstore_t *st)
{
    if (st->ntx > 0)
        return st->tx_max_day + 1;
    if (st->nev > 0)
        return st->ev_max_day + 1;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The per-customer pass */

typedef struct acc_t {
    double n, sum, swy;
} acc_t;

typedef struct job_t {
    const pulse_txstore_t *st;
    const pulse_agg_spec_t *specs;
    size_t nspecs;
    const uint32_t *type_first; /* event type -> its specs: type_specs[type_first[t]..type_first[t+1]) */
    const uint32_t *type_specs;
    uint32_t ntypes;
    int32_t as_of;
    uint32_t first;  /* matrix row 0 */
    uint32_t lo, hi; /* customers of this job */
    size_t n_rows;
    float *x;
} job_t;

static void customer_tx(const job_t *j, uint32_t c, uint32_t *pstamp, uint32_t *cstamp, float *x, size_t ld)
{
    const pulse_txstore_t *st = j->st;
    const int32_t as_of = j->as_of;
    double monetary = 0, qty = 0, gsum = 0, gsq = 0;
    uint32_t pdays = 0, prows = 0, rrows = 0, drows = 0, uprod = 0, ucat = 0;
    uint32_t a30 = 0, a60 = 0, a90 = 0, p90 = 0;
    int32_t firstd = 0, lastd = 0;
    const uint32_t stamp = c + 1;
    for (uint32_t i = st->tx_first[c], end = st->tx_first[c + 1]; i < end; i++) {
        int32_t d = st->tx_day[i];
        if (d >= as_of)
            break; /* day order: the rest is the future */
        double a = st->tx_amount[i];
        unsigned fl = st->tx_flags ? st->tx_flags[i] : 0;
        if ((fl & PULSE_TX_RETURN) || a < 0) {
            monetary -= fabs(a);
            rrows++;
            continue;
        }
        monetary += a;
        prows++;
        drows += (fl & PULSE_TX_DISCOUNTED) != 0;
        if (st->tx_quantity) {
            float q = st->tx_quantity[i];
            qty += isnan(q) ? 1.0 : (double)q;
        } else {
            qty += 1.0;
        }
        if (st->tx_product) {
            uint32_t p = st->tx_product[i];
            if (p != PULSE_TXSTORE_NONE && pstamp[p] != stamp) {
                pstamp[p] = stamp;
                uprod++;
            }
        }
        if (st->tx_category) {
            uint32_t k = st->tx_category[i];
            if (k != PULSE_TXSTORE_NONE && cstamp[k] != stamp) {
                cstamp[k] = stamp;
                ucat++;
            }
        }
        if (pdays == 0 || d != lastd) {
            if (pdays == 0) {
                firstd = d;
            } else {
                double g = (double)(d - lastd);
                gsum += g;
                gsq += g * g;
            }
            pdays++;
            lastd = d;
            int32_t age = as_of - d; /* >= 1 */
            a30 += age <= 30;
            a60 += age <= 60;
            a90 += age <= 90;
            p90 += age > 90 && age <= 180;
        }
    }
    float nan = NAN;
    double recency = pdays ? (double)(as_of - lastd) : NAN;
    double iptm = nan, iptv = nan;
    if (pdays >= 2) {
        double k = pdays - 1;
        iptm = gsum / k;
        iptv = (gsq - gsum * gsum / k) / k;
        if (iptv < 0)
            iptv = 0;
    }
    x[PULSE_FEAT_RECENCY * ld] = (float)recency;
    x[PULSE_FEAT_FREQUENCY * ld] = (float)pdays;
    x[PULSE_FEAT_MONETARY * ld] = (float)monetary;
    x[PULSE_FEAT_AVG_BASKET * ld] = pdays ? (float)(monetary / pdays) : nan;
    x[PULSE_FEAT_UNIQUE_PRODUCTS * ld] = (float)uprod;
    x[PULSE_FEAT_UNIQUE_CATEGORIES * ld] = (float)ucat;
    x[PULSE_FEAT_IPT_MEAN * ld] = (float)iptm;
    x[PULSE_FEAT_IPT_VAR * ld] = (float)iptv;
    x[PULSE_FEAT_SPAN * ld] = (float)(lastd - firstd);
    x[PULSE_FEAT_TENURE * ld] = pdays ? (float)(as_of - firstd) : nan;
    x[PULSE_FEAT_RETURN_RATE * ld] = (float)((double)rrows / (prows ? prows : 1));
    x[PULSE_FEAT_DISCOUNT_SHARE * ld] = prows ? (float)((double)drows / prows) : 0.0f;
    x[PULSE_FEAT_ACTIVE_30 * ld] = (float)a30;
    x[PULSE_FEAT_ACTIVE_60 * ld] = (float)a60;
    x[PULSE_FEAT_ACTIVE_90 * ld] = (float)a90;
    x[PULSE_FEAT_ACTIVE_PREV90 * ld] = (float)p90;
    x[PULSE_FEAT_TREND * ld] = (float)(((double)a90 - p90) / (p90 > 1 ? p90 : 1));
    x[PULSE_FEAT_OVERDUE * ld] = pdays >= 2 ? (float)(recency - iptm) : 0.0f;
    x[PULSE_FEAT_QUANTITY * ld] = (float)qty;
}

static void customer_events(const job_t *j, uint32_t c, acc_t *acc, float *x, size_t ld)
{
    const pulse_txstore_t *st = j->st;
    const int32_t as_of = j->as_of;
    memset(acc, 0, j->nspecs * sizeof(acc_t));
    for (uint32_t i = st->ev_first[c], end = st->ev_first[c + 1]; i < end; i++) {
        int32_t d = st->ev_day[i];
        if (d >= as_of)
            break;
        uint32_t t = st->ev_type[i];
        if (t >= j->ntypes)
            continue;
        int32_t age = as_of - d;
        for (uint32_t k = j->type_first[t]; k < j->type_first[t + 1]; k++) {
            uint32_t s = j->type_specs[k];
            const pulse_agg_spec_t *sp = &j->specs[s];
            if (age > sp->window_days)
                continue;
            double v;
            if (sp->field == PULSE_AGG_VALUE) {
                v = st->ev_value[i];
            } else {
                float q = st->ev_quantity[i];
                v = isnan(q) ? 1.0 : (double)q;
            }
            acc[s].n += 1;
            acc[s].sum += v;
            if (sp->op == PULSE_AGG_SLOPE) {
                int32_t weeks = (sp->window_days + 6) / 7;
                acc[s].swy += (double)(weeks - 1 - (age - 1) / 7) * v;
            }
        }
    }
    for (size_t s = 0; s < j->nspecs; s++) {
        const pulse_agg_spec_t *sp = &j->specs[s];
        double out;
        switch (sp->op) {
        case PULSE_AGG_COUNT:
            out = acc[s].n;
            break;
        case PULSE_AGG_SUM:
            out = acc[s].sum;
            break;
        case PULSE_AGG_AVG:
            out = acc[s].n > 0 ? acc[s].sum / acc[s].n : NAN;
            break;
        default: {
            double w = (sp->window_days + 6) / 7;
            if (w < 2) {
                out = 0;
            } else {
                double xbar = (w - 1) / 2, sxx = w * (w * w - 1) / 12;
                out = (acc[s].swy - xbar * acc[s].sum) / sxx;
            }
        }
        }
        x[(PULSE_FEAT_COUNT + s) * ld] = (float)out;
    }
}

static void *run_job(void *arg)
{
    job_t *j = arg;
    const pulse_txstore_t *st = j->st;
    uint32_t *pstamp = st->tx_product ? calloc(st->products.n + 1, sizeof(uint32_t)) : NULL;
    uint32_t *cstamp = st->tx_category ? calloc(st->categories.n + 1, sizeof(uint32_t)) : NULL;
    acc_t *acc = pulse_xmalloc((j->nspecs + 1) * sizeof(acc_t));
    if ((st->tx_product && pstamp == NULL) || (st->tx_category && cstamp == NULL)) {
        fprintf(stderr, "pulse: out of memory (feature stamps)\n");
        abort();
    }
    for (uint32_t c = j->lo; c < j->hi; c++) {
        float *x = j->x + (c - j->first);
        customer_tx(j, c, pstamp, cstamp, x, j->n_rows);
        if (j->nspecs)
            customer_events(j, c, acc, x, j->n_rows);
    }
    free(pstamp);
    free(cstamp);
    free(acc);
    return NULL;
}

size_t pulse_features_ncols(const pulse_features_opts_t *opt)
{
    return PULSE_FEAT_COUNT + (opt ? opt->nspecs : 0);
}

static int check_specs(const pulse_features_opts_t *opt, char *err, size_t errlen)
{
    size_t nspecs = opt ? opt->nspecs : 0;
    for (size_t s = 0; s < nspecs; s++) {
        const pulse_agg_spec_t *sp = &opt->specs[s];
        if (sp->name == NULL || sp->name[0] == '\0' || sp->event_type == NULL)
            return pulse_fail(err, errlen, "features: spec %zu has no name or event type", s + 1);
        if ((unsigned)sp->op > PULSE_AGG_SLOPE || (unsigned)sp->field > PULSE_AGG_QUANTITY)
            return pulse_fail(err, errlen, "features: spec '%s' has an unknown op or field", sp->name);
        if (sp->window_days < 1)
            return pulse_fail(err, errlen, "features: spec '%s' needs a window of at least 1 day", sp->name);
    }
    return 0;
}

int pulse_features_compute_into(const pulse_txstore_t *st, const pulse_features_opts_t *opt, uint32_t first, uint32_t count,
                                float *x, int32_t *as_of_out, char *err, size_t errlen)
{
    if (!st->finished)
        return pulse_fail(err, errlen, "features: the store is not finished");
    uint32_t nc = st->customers.n;
    if (first > nc || count > nc - first)
        return pulse_fail(err, errlen, "features: customers %u..%u past the %u customers", first, first + count, nc);
    if (check_specs(opt, err, errlen) != 0)
        return -1;
    size_t nspecs = opt ? opt->nspecs : 0;
    const pulse_agg_spec_t *specs = opt ? opt->specs : NULL;
    int32_t as_of = opt && opt->as_of ? opt->as_of : pulse_features_default_as_of(st);
    if (as_of_out)
        *as_of_out = as_of;
    if (count == 0)
        return 0;
    /* event type -> specs (types are few: a linear name match is fine; the hash index is dropped) */
    uint32_t nt = st->event_types.n;
    uint32_t *type_first = pulse_xmalloc(((size_t)nt + 2) * sizeof(uint32_t));
    memset(type_first, 0, ((size_t)nt + 2) * sizeof(uint32_t));
    uint32_t *type_specs = pulse_xmalloc((nspecs + 1) * sizeof(uint32_t));
    uint32_t *spec_type = pulse_xmalloc((nspecs + 1) * sizeof(uint32_t));
    for (size_t s = 0; s < nspecs; s++) {
        spec_type[s] = PULSE_TXSTORE_NONE;
        size_t want = strlen(specs[s].event_type);
        for (uint32_t t = 0; t < nt; t++) {
            size_t len;
            const char *name = pulse_strtab_get(&st->event_types, t, &len);
            if (len == want && memcmp(name, specs[s].event_type, len) == 0) {
                spec_type[s] = t;
                type_first[t + 1]++;
                break;
            }
        }
    }
    for (uint32_t t = 0; t < nt; t++)
        type_first[t + 1] += type_first[t];
    {
        uint32_t *next = pulse_xmalloc(((size_t)nt + 1) * sizeof(uint32_t));
        memcpy(next, type_first, ((size_t)nt + 1) * sizeof(uint32_t));
        for (size_t s = 0; s < nspecs; s++)
            if (spec_type[s] != PULSE_TXSTORE_NONE)
                type_specs[next[spec_type[s]]++] = (uint32_t)s;
        free(next);
    }
    free(spec_type);

    int threads = opt && opt->threads > 0 ? opt->threads : 2;
    if (threads > 16)
        threads = 16;
    if (count < 1024)
        threads = 1;
    job_t jobs[16];
    pthread_t tid[16];
    /* split by rows, not customers: the work is per row */
    uint64_t r0 = (uint64_t)st->tx_first[first] + st->ev_first[first];
    uint64_t rows = (uint64_t)st->tx_first[first + count] + st->ev_first[first + count] - r0;
    uint32_t c = first;
    for (int t = 0; t < threads; t++) {
        job_t *j = &jobs[t];
        j->st = st;
        j->specs = specs;
        j->nspecs = nspecs;
        j->type_first = type_first;
        j->type_specs = type_specs;
        j->ntypes = nt;
        j->as_of = as_of;
        j->first = first;
        j->n_rows = count;
        j->x = x;
        j->lo = c;
        if (t == threads - 1) {
            c = first + count;
        } else {
            c = pulse_txstore_customer_at_row(st, c, first + count, r0 + rows * (uint64_t)(t + 1) / (uint64_t)threads);
        }
        j->hi = c;
    }
    int started = 0;
    for (int t = 1; t < threads; t++)
        if (pthread_create(&tid[t], NULL, run_job, &jobs[t]) == 0)
            started = t;
        else
            break;
    run_job(&jobs[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    for (int t = started + 1; t < threads; t++)
        run_job(&jobs[t]); /* no thread: same result, just slower */
    free(type_first);
    free(type_specs);
    return 0;
}

int pulse_features_compute(const pulse_txstore_t *st, const pulse_features_opts_t *opt, uint32_t first, uint32_t count,
                           pulse_feature_matrix_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!st->finished)
        return pulse_fail(err, errlen, "features: the store is not finished");
    uint32_t nc = st->customers.n;
    if (first > nc)
        return pulse_fail(err, errlen, "features: first customer %u past the %u customers", first, nc);
    if (count == 0 || count > nc - first)
        count = nc - first;
    if (check_specs(opt, err, errlen) != 0)
        return -1;
    size_t ncols = pulse_features_ncols(opt);
    float *x = pulse_xmalloc(((size_t)count ? count : 1) * ncols * sizeof(float));
    if (pulse_features_compute_into(st, opt, first, count, x, &out->as_of, err, errlen) != 0) {
        free(x);
        return -1;
    }
    out->first = first;
    out->n_rows = count;
    out->n_cols = ncols;
    out->x = x;
    out->info = pulse_xmalloc(ncols * sizeof(pulse_feature_info_t));
    for (size_t k = 0; k < PULSE_FEAT_COUNT; k++)
        out->info[k] = fixed_info[k];
    for (size_t s = 0; s + PULSE_FEAT_COUNT < ncols; s++) {
        const pulse_agg_spec_t *sp = &opt->specs[s];
        pulse_feature_info_t *fi = &out->info[PULSE_FEAT_COUNT + s];
        static const char *desc[] = {"events in the window", "sum over the window", "mean over the window",
                                     "least-squares slope of weekly sums over the window"};
        snprintf(fi->name, sizeof(fi->name), "%s", sp->name);
        fi->description = desc[sp->op];
        fi->unit = sp->op == PULSE_AGG_COUNT ? "count" : sp->op == PULSE_AGG_SLOPE ? "per week" : "value";
    }
    return 0;
}

void pulse_features_matrix_free(pulse_feature_matrix_t *m)
{
    free(m->x);
    free(m->info);
    memset(m, 0, sizeof(*m));
}

/* ---------------------------------------------------------------------------------------------
 * Quintiles */

static uint32_t sort_key(float v, int higher_is_better)
{
    if (isnan(v))
        return 0; /* worst in both directions */
    v += 0.0f;    /* -0 and +0 are equal values: one key */
    uint32_t u;
    memcpy(&u, &v, 4);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* IEEE order as unsigned order */
    if (!higher_is_better)
        u = ~u;
    return u == 0 ? 1 : u; /* 0 is reserved for NaN */
}

#define COUNTING_RANGE (1 << 20)

/* Integer values in a small range (recency days, frequency): counts per value give each value's
 * rank of the first of its ties directly. Returns 0 when the values do not qualify. */
static int quintiles_counting(const float *v, size_t n, int higher_is_better, uint8_t *score)
{
    float mn = INFINITY, mx = -INFINITY;
    size_t nans = 0;
    for (size_t i = 0; i < n; i++) {
        float x = v[i];
        if (isnan(x)) {
            nans++;
            continue;
        }
        if (!(x >= -2e9f && x <= 2e9f) || x != (float)(int32_t)x)
            return 0;
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    if (nans == n) {
        memset(score, 1, n);
        return 1;
    }
    int64_t lo = (int64_t)mn, range = (int64_t)mx - lo + 1;
    if (range > COUNTING_RANGE)
        return 0;
    uint32_t *cnt = pulse_xmalloc((size_t)range * sizeof(uint32_t));
    memset(cnt, 0, (size_t)range * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            cnt[(int64_t)v[i] - lo]++;
    uint8_t *bucket = pulse_xmalloc((size_t)range);
    uint64_t rank = nans; /* NaN ranks first: the worst */
    for (int64_t k = 0; k < range; k++) {
        int64_t b = higher_is_better ? k : range - 1 - k;
        bucket[b] = (uint8_t)(1 + (5 * rank) / n);
        rank += cnt[b];
    }
    for (size_t i = 0; i < n; i++)
        score[i] = isnan(v[i]) ? (uint8_t)1 : bucket[(int64_t)v[i] - lo];
    free(cnt);
    free(bucket);
    return 1;
}

/* The boundary keys of the quintiles: a value's score is 1 + floor(5 L / n) with L the number of
 * keys below its own (the rank of the first of its ties), so score >= s + 1 exactly when more
 * than q_s - 1 keys are below it, q_s = ceil(s n / 5), i.e. when its key is above the q_s-th
 * smallest key. Those four order statistics come from a radix selection: a histogram of the high
 * 16 bits finds each one's bucket, a second of the low 16 bits within those buckets its value.
 * Two passes and 1.3 MB of counters instead of sorting n 8-byte entries (28 MB at 3.5 M). */
static void quintile_bounds(const float *v, size_t n, int higher_is_better, uint32_t bound[4])
{
    uint32_t *hist = pulse_xmalloc(5 * 65536 * sizeof(uint32_t)), *low = hist + 65536;
    memset(hist, 0, 5 * 65536 * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        hist[sort_key(v[i], higher_is_better) >> 16]++;
    uint32_t hi[4], rest[4]; /* bucket of each target and its 0-based index inside it */
    for (int s = 0; s < 4; s++) {
        uint64_t want = (5 + (uint64_t)(s + 1) * n - 1) / 5 - 1, below = 0; /* q_s - 1 */
        uint32_t bk = 0;
        while (below + hist[bk] <= want)
            below += hist[bk++];
        hi[s] = bk;
        rest[s] = (uint32_t)(want - below);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t k = sort_key(v[i], higher_is_better);
        for (int s = 0; s < 4; s++)
            if ((k >> 16) == hi[s])
                low[(size_t)s * 65536 + (k & 0xffff)]++;
    }
    for (int s = 0; s < 4; s++) {
        const uint32_t *h = low + (size_t)s * 65536;
        uint32_t lo = 0, below = 0;
        while (below + h[lo] <= rest[s])
            below += h[lo++];
        bound[s] = hi[s] << 16 | lo;
    }
    free(hist);
}

void pulse_features_quintiles(const float *v, size_t n, int higher_is_better, uint8_t *score)
{
    if (n == 0 || quintiles_counting(v, n, higher_is_better, score))
        return;
    uint32_t bound[4];
    quintile_bounds(v, n, higher_is_better, bound);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = sort_key(v[i], higher_is_better);
        score[i] = (uint8_t)(1 + (k > bound[0]) + (k > bound[1]) + (k > bound[2]) + (k > bound[3]));
    }
}

typedef struct qjob_t {
    const float *v;
    size_t n;
    int hib;
    uint8_t *out;
} qjob_t;

static void *run_quintiles(void *arg)
{
    qjob_t *q = arg;
    pulse_features_quintiles(q->v, q->n, q->hib, q->out);
    return NULL;
}

typedef struct rf_job_t {
    qjob_t r, f;
} rf_job_t;

static void *run_rf(void *arg)
{
    rf_job_t *j = arg;
    run_quintiles(&j->r);
    run_quintiles(&j->f);
    return NULL;
}

void pulse_features_rfm_scores(const pulse_feature_matrix_t *m, uint8_t *r, uint8_t *f, uint8_t *mon)
{
    size_t n = m->n_rows;
    pulse_features_rfm_scores_of(m->x + PULSE_FEAT_RECENCY * n, m->x + PULSE_FEAT_FREQUENCY * n, m->x + PULSE_FEAT_MONETARY * n, n,
                                 r, f, mon);
}

void pulse_features_rfm_scores_of(const float *recency, const float *frequency, const float *monetary, size_t n, uint8_t *r,
                                  uint8_t *f, uint8_t *mon)
{
    rf_job_t rf = {{recency, n, 0, r}, {frequency, n, 1, f}};
    qjob_t jm = {monetary, n, 1, mon};
    /* R and F are integers (counting); M is the radix selection: they overlap */
    pthread_t t;
    int threaded = n >= 65536 && pthread_create(&t, NULL, run_rf, &rf) == 0;
    if (!threaded)
        run_rf(&rf);
    run_quintiles(&jm);
    if (threaded)
        pthread_join(t, NULL);
}
