/* The segmentation pipeline on a finished txstore, pure C (no database, no Lua): features (with the
 * industry's event aggregates), RFM quintile scores over all customers, a churn band per customer,
 * the segment and its score by lookup in the rule's table (the rule was evaluated once per input
 * combination beforehand: no Lua call per customer), and the behaviour score, trend and risk
 * signals of the industry's declaration. Shared by the segment job, `pulse segment` and its bench. */
#ifndef PULSE_ANALYTICS_SEGMENT_H
#define PULSE_ANALYTICS_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "analytics/features.h"
#include "analytics/txstore.h"

#define PULSE_SEGMENT_KEYS 500       /* 4 churn bands x 5 x 5 x 5 RFM scores */
#define PULSE_SEGMENT_MAX_NAMES 64   /* segment indexes fit a byte */
#define PULSE_SEGMENT_MAX_SIGNALS 32 /* a customer's fired signals fit 4 bytes (14 MB at 3.5 M customers) */

/* The segments rule as a lookup table: key = band * 125 + (r-1) * 25 + (f-1) * 5 + (m-1) with band
 * 0 none, 1 low, 2 medium, 3 high (lua/rules.lua rules.segment_key). segment[key] is a 1-based index
 * into names (0: no segment), score[key] 0-100. Strings are borrowed. */
typedef struct pulse_segment_table_t {
    const char *names[PULSE_SEGMENT_MAX_NAMES];
    size_t nnames;
    uint8_t segment[PULSE_SEGMENT_KEYS];
    float score[PULSE_SEGMENT_KEYS];
    double churn_medium, churn_high; /* p >= high: high; p >= medium: medium; else low */
    int version;
} pulse_segment_table_t;

/* A behaviour declaration (industries/<name>.lua behaviour); strings are borrowed. */
typedef struct pulse_score_term_t {
    const char *feature;
    double center, scale, weight;
} pulse_score_term_t;

typedef struct pulse_signal_t {
    const char *name, *feature;
    int below; /* 0: fires when x > threshold; 1: when x < threshold */
    double threshold;
    const char *message;        /* "{value}", "{abs}" (its magnitude) and "{threshold}" are replaced */
    const char *recommendation; /* may be NULL */
} pulse_signal_t;

typedef struct pulse_behaviour_t {
    const pulse_agg_spec_t *aggregates;
    size_t naggregates;
    const pulse_score_term_t *score;
    size_t nscore;
    const char *trend_feature; /* NULL: no trend */
    double trend_increasing, trend_declining;
    const pulse_signal_t *signals;
    size_t nsignals; /* at most PULSE_SEGMENT_MAX_SIGNALS */
} pulse_behaviour_t;

typedef struct pulse_segment_opts_t {
    int32_t as_of; /* day number; 0: the store's default (pulse_features_default_as_of) */
    int threads;   /* 0 = 2 */
    const pulse_segment_table_t *table;
    const pulse_behaviour_t *behaviour; /* NULL: no aggregates, no behaviour (score 50, no trend) */
    const float *churn;                 /* churn probability per store customer, NaN none; NULL: none */
    int keep_features;                  /* keep the whole feature matrix in the result (the job writes it) */
} pulse_segment_opts_t;

enum { PULSE_TREND_NONE = -2, PULSE_TREND_DECLINING = -1, PULSE_TREND_STABLE = 0, PULSE_TREND_INCREASING = 1 };

/* Per-customer outputs, indexed by store customer. Everything is owned: pulse_segment_result_free.
 * A customer without a purchase (NaN recency) has r = f = m = 0 and segment 0 (none) but still a
 * behaviour score, trend and signals (from events). */
typedef struct pulse_segment_result_t {
    uint32_t n;
    int32_t as_of;
    size_t ncols;
    pulse_feature_info_t *info; /* ncols: the feature dictionary, in column order */
    float *features;            /* keep_features: ncols * n column-major (x[j * n + i]); else NULL */
    float *recency, *frequency, *monetary;
    uint8_t *r, *f, *m;   /* 1-5, 0 without a purchase */
    uint8_t *band;        /* 0 none, 1 low, 2 medium, 3 high */
    uint8_t *segment;     /* 1-based into table->names; 0 none */
    float *segment_score; /* NaN without a segment */
    float *behaviour_score;
    int8_t *trend;     /* PULSE_TREND_* */
    uint32_t *signals; /* bit s: signal s fired (its value is feature column sig_col[s]) */
    int sig_col[PULSE_SEGMENT_MAX_SIGNALS];
    size_t counts[PULSE_SEGMENT_MAX_NAMES + 1]; /* customers per segment index (0: none) */
    uint32_t segmented;
    double features_seconds, rfm_seconds, segment_seconds;
} pulse_segment_result_t;

/* Runs the pipeline on a finished store. Returns 0, or -1 with a message (a behaviour feature that
 * is not a feature, a bad aggregate, too many signals/names). */
int pulse_segment_run(const pulse_txstore_t *st, const pulse_segment_opts_t *opt, pulse_segment_result_t *out, char *err,
                      size_t errlen);
void pulse_segment_result_free(pulse_segment_result_t *r);

/* The lookup key of a combination (r, f, m 1-5; band 0-3). */
static inline unsigned pulse_segment_key(unsigned band, unsigned r, unsigned f, unsigned m)
{
    return band * 125u + (r - 1u) * 25u + (f - 1u) * 5u + (m - 1u);
}
/* The band of a churn probability (0 for NaN), compared in float precision (probabilities are stored
 * as real: 0.7f is at a 0.7 threshold). */
unsigned pulse_segment_band(const pulse_segment_table_t *t, double p);
const char *pulse_segment_band_name(unsigned band); /* NULL, "low", "medium", "high" */
const char *pulse_segment_trend_name(int trend);    /* NULL, "declining", "stable", "increasing" */

/* A behaviour score: 50 + 50 * sum(w * clamp((x - center) / scale, -1, 1)) / sum(|w|), clamped to
 * 0-100; x[t] is term t's feature value (NaN contributes 0). 50 without terms. */
double pulse_segment_behaviour_score(const pulse_score_term_t *terms, size_t n, const double *x);

/* Formats a value for a message by its feature's unit: "count"/"days" as whole numbers, "ratio" as
 * a percentage ("35%"), anything else with 2 decimals. */
void pulse_segment_format_value(double v, const char *unit, char *out, size_t outlen);
/* The message of a fired signal with {value}, {abs} and {threshold} replaced (formatted as above) into out. */
void pulse_segment_signal_message(const pulse_signal_t *s, double value, const char *unit, char *out, size_t outlen);

#endif
