/* The segmentation pipeline (see segment.h). */
#include "analytics/segment.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"

/* Customers per feature block of a thread (1.5 MB of scratch with 24 columns). Not a power of two:
 * the block is column-major, and columns 2^k floats apart fall in the same cache sets, so the 24
 * stores of each customer evicted one another (the features pass took twice the CPU). */
#define BLOCK 16000u

unsigned pulse_segment_band(const pulse_segment_table_t *t, double p)
{
    if (isnan(p))
        return 0;
    /* in float: probabilities are stored as real, and 0.7f must reach a 0.7 threshold */
    if ((float)p >= (float)t->churn_high)
        return 3;
    if ((float)p >= (float)t->churn_medium)
        return 2;
    return 1;
}

const char *pulse_segment_band_name(unsigned band)
{
    static const char *names[] = {NULL, "low", "medium", "high"};
    return band < 4 ? names[band] : NULL;
}

const char *pulse_segment_trend_name(int trend)
{
    switch (trend) {
    case PULSE_TREND_DECLINING:
        return "declining";
    case PULSE_TREND_STABLE:
        return "stable";
    case PULSE_TREND_INCREASING:
        return "increasing";
    default:
        return NULL;
    }
}

double pulse_segment_behaviour_score(const pulse_score_term_t *terms, size_t n, const double *x)
{
    double sum = 0, wsum = 0;
    for (size_t t = 0; t < n; t++) {
        wsum += fabs(terms[t].weight);
        if (isnan(x[t]))
            continue;
        double z = (x[t] - terms[t].center) / terms[t].scale;
        z = z < -1 ? -1 : z > 1 ? 1 : z;
        sum += terms[t].weight * z;
    }
    if (wsum == 0)
        return 50.0;
    double s = 50.0 + 50.0 * sum / wsum;
    return s < 0 ? 0 : s > 100 ? 100 : s;
}

void pulse_segment_format_value(double v, const char *unit, char *out, size_t outlen)
{
    if (isnan(v)) {
        snprintf(out, outlen, "n/a");
    } else if (unit != NULL && (strcmp(unit, "count") == 0 || strcmp(unit, "days") == 0)) {
        snprintf(out, outlen, "%.0f", v);
    } else if (unit != NULL && strcmp(unit, "ratio") == 0) {
        snprintf(out, outlen, "%.0f%%", v * 100.0);
    } else {
        snprintf(out, outlen, "%.2f", v);
    }
    if (strcmp(out, "-0") == 0 || strcmp(out, "-0%") == 0)
        memmove(out, out + 1, strlen(out)); /* a rounded tiny negative reads as 0 */
}

void pulse_segment_signal_message(const pulse_signal_t *s, double value, const char *unit, char *out, size_t outlen)
{
    char v[48], th[48], mag[48];
    pulse_segment_format_value(value, unit, v, sizeof(v));
    pulse_segment_format_value(s->threshold, unit, th, sizeof(th));
    pulse_segment_format_value(fabs(value), unit, mag, sizeof(mag)); /* "fell by {abs}", not "by -75%" */
    size_t o = 0;
    const char *p = s->message ? s->message : "";
    while (*p && o + 1 < outlen) {
        const char *rep = NULL;
        size_t skip = 0;
        if (*p == '{') { /* the only character a placeholder starts with: the others are copied */
            if (strncmp(p, "{value}", 7) == 0)
                rep = v, skip = 7;
            else if (strncmp(p, "{threshold}", 11) == 0)
                rep = th, skip = 11;
            else if (strncmp(p, "{abs}", 5) == 0)
                rep = mag, skip = 5;
        }
        if (rep) {
            for (; *rep && o + 1 < outlen; rep++)
                out[o++] = *rep;
            p += skip;
        } else {
            out[o++] = *p++;
        }
    }
    if (outlen > 0)
        out[o < outlen ? o : outlen - 1] = '\0';
}

/* Column of a feature by name, or -1. */
static int column_of(const pulse_feature_info_t *info, size_t ncols, const char *name)
{
    for (size_t j = 0; j < ncols; j++)
        if (strcmp(info[j].name, name) == 0)
            return (int)j;
    return -1;
}

void pulse_segment_result_free(pulse_segment_result_t *r)
{
    free(r->info);
    free(r->features);
    free(r->recency);
    free(r->frequency);
    free(r->monetary);
    free(r->r);
    free(r->f);
    free(r->m);
    free(r->band);
    free(r->segment);
    free(r->segment_score);
    free(r->behaviour_score);
    free(r->trend);
    free(r->signals);
    memset(r, 0, sizeof(*r));
}

/* ---------------------------------------------------------------------------------------------
 * The per-customer passes, over contiguous ranges of customers on threads (each customer's
 * outputs depend on its own rows only, so the split changes nothing in the results). */

#define MAX_PARTS 8

typedef struct seg_part_t {
    uint32_t lo, hi; /* customers of this part */
    const pulse_txstore_t *st;
    const pulse_features_opts_t *fo;
    const pulse_behaviour_t *bh;
    const int *score_col;
    size_t nscore, nsig, ncols;
    int trend_col;
    const pulse_segment_table_t *table;
    const float *churn;
    pulse_segment_result_t *out;
    size_t counts[PULSE_SEGMENT_MAX_NAMES + 1]; /* lookup: customers per segment in this part */
    int rc;
    char err[256];
} seg_part_t;

/* Cuts the customers into parts of about as many rows (transactions + events: the work is per
 * row); fewer than 1,024 customers stay in one part. Returns the number of parts. */
static int split_customers(const pulse_txstore_t *st, int threads, seg_part_t *parts)
{
    uint32_t n = pulse_txstore_ncustomers(st);
    int np = threads > 0 ? threads : 2;
    if (np > MAX_PARTS)
        np = MAX_PARTS;
    if (n < 1024)
        np = 1;
    uint64_t rows = (uint64_t)st->tx_first[n] + st->ev_first[n];
    uint32_t c = 0;
    for (int p = 0; p < np; p++) {
        memset(&parts[p], 0, sizeof(parts[p]));
        parts[p].lo = c;
        if (p == np - 1) {
            c = n;
        } else {
            c = pulse_txstore_customer_at_row(st, c, n, rows * (uint64_t)(p + 1) / (uint64_t)np);
        }
        parts[p].hi = c;
    }
    return np;
}

/* Runs fn on every part, parts 1.. on threads and part 0 on this one; a part whose thread could
 * not be created runs here afterwards (the same result, later). */
static void run_parts(void *(*fn)(void *), seg_part_t *parts, int nparts)
{
    pthread_t tid[MAX_PARTS];
    int started[MAX_PARTS] = {0};
    for (int p = 1; p < nparts; p++)
        started[p] = pthread_create(&tid[p], NULL, fn, &parts[p]) == 0;
    fn(&parts[0]);
    for (int p = 1; p < nparts; p++) {
        if (started[p])
            pthread_join(tid[p], NULL);
        else
            fn(&parts[p]);
    }
}

/* Behaviour score, trend and signals of customers c0..c0+cnt-1 from their feature block. */
static void behaviour_rows(const seg_part_t *w, const float *block, uint32_t c0, uint32_t cnt)
{
    const pulse_behaviour_t *bh = w->bh;
    pulse_segment_result_t *out = w->out;
    double xv[64];
    for (uint32_t i = 0; i < cnt; i++) {
        for (size_t t = 0; t < w->nscore; t++)
            xv[t] = block[(size_t)w->score_col[t] * cnt + i];
        out->behaviour_score[c0 + i] = (float)pulse_segment_behaviour_score(bh ? bh->score : NULL, w->nscore, xv);
        int8_t tr = PULSE_TREND_NONE;
        if (w->trend_col >= 0) {
            float v = block[(size_t)w->trend_col * cnt + i];
            if (!isnan(v))
                tr = v >= bh->trend_increasing  ? PULSE_TREND_INCREASING
                     : v <= bh->trend_declining ? PULSE_TREND_DECLINING
                                                : PULSE_TREND_STABLE;
        }
        out->trend[c0 + i] = tr;
        uint32_t fired = 0;
        for (size_t s = 0; s < w->nsig; s++) {
            float v = block[(size_t)out->sig_col[s] * cnt + i];
            const pulse_signal_t *sg = &bh->signals[s];
            if (sg->below ? (double)v < sg->threshold : (double)v > sg->threshold) /* NaN compares false */
                fired |= (uint32_t)1 << s;
        }
        out->signals[c0 + i] = fired;
    }
}

/* Features of a part block by block into one scratch block (the matrix of 3.5 M customers never
 * exists at once), keeping R, F, M, the behaviour outputs and, when asked, every column. */
static void *features_part(void *arg)
{
    seg_part_t *w = arg;
    pulse_segment_result_t *out = w->out;
    uint32_t n = out->n;
    float *block = pulse_xmalloc((size_t)BLOCK * w->ncols * sizeof(float));
    for (uint32_t c0 = w->lo; c0 < w->hi; c0 += BLOCK) {
        uint32_t cnt = w->hi - c0 < BLOCK ? w->hi - c0 : BLOCK;
        if (pulse_features_compute_into(w->st, w->fo, c0, cnt, block, NULL, w->err, sizeof(w->err)) != 0) {
            w->rc = -1;
            break;
        }
        memcpy(out->recency + c0, block + (size_t)PULSE_FEAT_RECENCY * cnt, cnt * sizeof(float));
        memcpy(out->frequency + c0, block + (size_t)PULSE_FEAT_FREQUENCY * cnt, cnt * sizeof(float));
        memcpy(out->monetary + c0, block + (size_t)PULSE_FEAT_MONETARY * cnt, cnt * sizeof(float));
        behaviour_rows(w, block, c0, cnt);
        if (out->features)
            for (size_t j = 0; j < w->ncols; j++)
                memcpy(out->features + j * n + c0, block + j * cnt, cnt * sizeof(float));
    }
    free(block);
    return NULL;
}

/* Churn band, segment and its score of a part's customers, counting them per segment. */
static void *lookup_part(void *arg)
{
    seg_part_t *w = arg;
    const pulse_segment_table_t *tab = w->table;
    pulse_segment_result_t *out = w->out;
    for (uint32_t i = w->lo; i < w->hi; i++) {
        unsigned band = w->churn ? pulse_segment_band(tab, w->churn[i]) : 0;
        out->band[i] = (uint8_t)band;
        if (isnan(out->recency[i])) {
            out->r[i] = out->f[i] = out->m[i] = 0;
            out->segment[i] = 0;
            out->segment_score[i] = NAN;
        } else {
            unsigned key = pulse_segment_key(band, out->r[i], out->f[i], out->m[i]);
            out->segment[i] = tab->segment[key];
            out->segment_score[i] = out->segment[i] ? tab->score[key] : NAN;
        }
        w->counts[out->segment[i]]++;
    }
    return NULL;
}

int pulse_segment_run(const pulse_txstore_t *st, const pulse_segment_opts_t *opt, pulse_segment_result_t *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const pulse_segment_table_t *tab = opt->table;
    const pulse_behaviour_t *bh = opt->behaviour;
    if (tab == NULL || tab->nnames == 0 || tab->nnames > PULSE_SEGMENT_MAX_NAMES)
        return pulse_fail(err, errlen, "segments: the rule's table names no segments (or more than %d)", PULSE_SEGMENT_MAX_NAMES);
    for (unsigned k = 0; k < PULSE_SEGMENT_KEYS; k++)
        if (tab->segment[k] > tab->nnames)
            return pulse_fail(err, errlen, "segments: table entry %u names segment %u of %zu", k, tab->segment[k], tab->nnames);
    if (bh != NULL && bh->nsignals > PULSE_SEGMENT_MAX_SIGNALS)
        return pulse_fail(err, errlen, "behaviour: %zu signals, at most %d", bh->nsignals, PULSE_SEGMENT_MAX_SIGNALS);
    if (!st->finished)
        return pulse_fail(err, errlen, "segments: the store is not finished");

    pulse_features_opts_t fo;
    memset(&fo, 0, sizeof(fo));
    fo.as_of = opt->as_of;
    fo.threads = opt->threads;
    if (bh != NULL) {
        fo.specs = bh->aggregates;
        fo.nspecs = bh->naggregates;
    }
    uint32_t n = pulse_txstore_ncustomers(st);
    size_t ncols = pulse_features_ncols(&fo);
    out->n = n;
    out->ncols = ncols;
    out->as_of = fo.as_of ? fo.as_of : pulse_features_default_as_of(st);
    /* The dictionary (and the spec check) from a one-customer computation's info. */
    {
        pulse_feature_matrix_t probe;
        if (n > 0) {
            if (pulse_features_compute(st, &fo, 0, 1, &probe, err, errlen) != 0)
                return -1;
            out->info = probe.info;
            probe.info = NULL;
            pulse_features_matrix_free(&probe);
        } else {
            out->info = pulse_xmalloc(ncols * sizeof(pulse_feature_info_t));
            for (size_t j = 0; j < PULSE_FEAT_COUNT; j++)
                out->info[j] = *pulse_features_info((pulse_feat_t)j);
            for (size_t s = 0; s < fo.nspecs; s++) {
                snprintf(out->info[PULSE_FEAT_COUNT + s].name, sizeof(out->info[0].name), "%s", fo.specs[s].name);
                out->info[PULSE_FEAT_COUNT + s].description = "event aggregate";
                out->info[PULSE_FEAT_COUNT + s].unit = fo.specs[s].op == PULSE_AGG_COUNT ? "count" : "value";
            }
        }
    }
    int score_col[64], trend_col = -1;
    size_t nscore = bh ? bh->nscore : 0;
    if (nscore > 64)
        return pulse_segment_result_free(out), pulse_fail(err, errlen, "behaviour: %zu score terms, at most 64", nscore);
    for (size_t t = 0; t < nscore; t++)
        if ((score_col[t] = column_of(out->info, ncols, bh->score[t].feature)) < 0) {
            pulse_fail(err, errlen, "behaviour.score[%zu]: '%s' is not a feature", t + 1, bh->score[t].feature);
            return pulse_segment_result_free(out), -1;
        }
    if (bh != NULL && bh->trend_feature != NULL && (trend_col = column_of(out->info, ncols, bh->trend_feature)) < 0) {
        pulse_fail(err, errlen, "behaviour.trend: '%s' is not a feature", bh->trend_feature);
        return pulse_segment_result_free(out), -1;
    }
    size_t nsig = bh ? bh->nsignals : 0;
    for (size_t s = 0; s < nsig; s++)
        if ((out->sig_col[s] = column_of(out->info, ncols, bh->signals[s].feature)) < 0) {
            pulse_fail(err, errlen, "behaviour.signals[%zu]: '%s' is not a feature", s + 1, bh->signals[s].feature);
            return pulse_segment_result_free(out), -1;
        }

    size_t nn = (size_t)n + 1; /* never a zero-size allocation */
    out->recency = pulse_xmalloc(nn * sizeof(float));
    out->frequency = pulse_xmalloc(nn * sizeof(float));
    out->monetary = pulse_xmalloc(nn * sizeof(float));
    out->behaviour_score = pulse_xmalloc(nn * sizeof(float));
    out->trend = pulse_xmalloc(nn);
    out->signals = pulse_xmalloc(nn * sizeof(uint32_t));
    if (opt->keep_features)
        out->features = pulse_xmalloc(ncols * nn * sizeof(float));

    /* 1. features and behaviour, each thread over its own range of customers, block by block */
    double t0 = pulse_now_s();
    seg_part_t parts[MAX_PARTS];
    int nparts = split_customers(st, opt->threads, parts);
    fo.threads = 1; /* the parts are the parallelism */
    for (int p = 0; p < nparts; p++) {
        seg_part_t *w = &parts[p];
        w->st = st;
        w->fo = &fo;
        w->bh = bh;
        w->score_col = score_col;
        w->nscore = nscore;
        w->trend_col = trend_col;
        w->nsig = nsig;
        w->ncols = ncols;
        w->out = out;
        w->rc = 0;
    }
    run_parts(features_part, parts, nparts);
    for (int p = 0; p < nparts; p++)
        if (parts[p].rc != 0) {
            snprintf(err, errlen, "%s", parts[p].err);
            pulse_segment_result_free(out);
            return -1;
        }
    double t1 = pulse_now_s();
    out->features_seconds = t1 - t0;

    /* 2. RFM quintiles over all customers (a block would rank within itself) */
    out->r = pulse_xmalloc(nn);
    out->f = pulse_xmalloc(nn);
    out->m = pulse_xmalloc(nn);
    pulse_features_rfm_scores_of(out->recency, out->frequency, out->monetary, n, out->r, out->f, out->m);
    double t2 = pulse_now_s();
    out->rfm_seconds = t2 - t1;

    /* 3. churn band, segment by lookup (same parts; counts summed in part order) */
    out->band = pulse_xmalloc(nn);
    out->segment = pulse_xmalloc(nn);
    out->segment_score = pulse_xmalloc(nn * sizeof(float));
    for (int p = 0; p < nparts; p++) {
        parts[p].table = tab;
        parts[p].churn = opt->churn;
    }
    run_parts(lookup_part, parts, nparts);
    for (int p = 0; p < nparts; p++)
        for (size_t s = 0; s <= PULSE_SEGMENT_MAX_NAMES; s++)
            out->counts[s] += parts[p].counts[s];
    out->segmented = (uint32_t)(n - out->counts[0]);
    out->segment_seconds = pulse_now_s() - t2;
    return 0;
}
