/* Per-customer features from a finished txstore, relative to an "as of" day: RFM, engagement,
 * activity windows and trend, plus windowed aggregates over events declared as specs, in one pass
 * over each customer's day-ordered rows; and RFM quintile scores 1-5 with deterministic ties.
 * Rows on or after the as-of day are ignored, so features for a past date never see the future. */
#ifndef PULSE_ANALYTICS_FEATURES_H
#define PULSE_ANALYTICS_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "analytics/txstore.h"

/* Fixed transaction features: the first PULSE_FEAT_COUNT columns of the matrix, in this order.
 * A purchase is a row that is not a return (no PULSE_TX_RETURN flag and amount >= 0); a return is
 * the rest. "Purchase days" are the distinct days with at least one purchase: frequency counts
 * days rather than invoices because several lines of one basket, or two orders the same day, are
 * one visit for retention purposes, and the day is known for every source (CDNOW has no invoice). */
typedef enum pulse_feat_t {
    PULSE_FEAT_RECENCY = 0,       /* as_of - last purchase day; NaN without a purchase */
    PULSE_FEAT_FREQUENCY,         /* distinct purchase days */
    PULSE_FEAT_MONETARY,          /* net amount: purchases minus returns (a return counts -|amount|) */
    PULSE_FEAT_AVG_BASKET,        /* monetary / frequency; NaN without a purchase */
    PULSE_FEAT_UNIQUE_PRODUCTS,   /* distinct products bought (0 when the data has none) */
    PULSE_FEAT_UNIQUE_CATEGORIES, /* distinct categories bought */
    PULSE_FEAT_IPT_MEAN,          /* mean days between consecutive purchase days; NaN below 2 days */
    PULSE_FEAT_IPT_VAR,           /* population variance of those gaps; NaN below 2 days */
    PULSE_FEAT_SPAN,              /* last - first purchase day */
    PULSE_FEAT_TENURE,            /* as_of - first purchase day; NaN without a purchase */
    PULSE_FEAT_RETURN_RATE,       /* return rows / purchase rows (denominator at least 1) */
    PULSE_FEAT_DISCOUNT_SHARE,    /* discounted purchase rows / purchase rows; 0 when no row is flagged */
    PULSE_FEAT_ACTIVE_30,         /* purchase days in [as_of-30, as_of) */
    PULSE_FEAT_ACTIVE_60,
    PULSE_FEAT_ACTIVE_90,
    PULSE_FEAT_ACTIVE_PREV90, /* purchase days in [as_of-180, as_of-90) */
    PULSE_FEAT_TREND,         /* (active_90 - active_prev90) / max(active_prev90, 1) */
    PULSE_FEAT_OVERDUE,       /* recency - ipt_mean; 0 with fewer than 2 purchase days */
    PULSE_FEAT_QUANTITY,      /* units bought (purchase rows; rows without a quantity count 1) */
    PULSE_FEAT_COUNT
} pulse_feat_t;

typedef enum pulse_agg_op_t { PULSE_AGG_COUNT = 0, PULSE_AGG_SUM, PULSE_AGG_AVG, PULSE_AGG_SLOPE } pulse_agg_op_t;
typedef enum pulse_agg_field_t { PULSE_AGG_VALUE = 0, PULSE_AGG_QUANTITY } pulse_agg_field_t;

/* A windowed aggregate over one event type, on events with day in [as_of - window_days, as_of).
 * avg of no event is NaN. slope: least-squares slope (per week) of the per-week sums of field over
 * the window's W = ceil(window_days / 7) weeks counted back from as_of (week W-1 is the one just
 * before as_of; weeks with no event count as 0, the oldest may be partial); 0 when W < 2. */
typedef struct pulse_agg_spec_t {
    const char *name; /* column name (copied into the dictionary) */
    const char *event_type;
    pulse_agg_op_t op;
    pulse_agg_field_t field;
    int32_t window_days; /* >= 1 */
} pulse_agg_spec_t;

typedef struct pulse_features_opts_t {
    int32_t as_of; /* day number; 0 = default: last transaction day + 1 (last event day + 1 without any) */
    int threads;   /* 0 = 2; results do not depend on it */
    const pulse_agg_spec_t *specs;
    size_t nspecs;
} pulse_features_opts_t;

typedef struct pulse_feature_info_t {
    char name[64];
    const char *description;
    const char *unit; /* "days", "currency", "count", "ratio", "per week", ... */
} pulse_feature_info_t;

/* Column-major float matrix, the layout of pulse_ml_data_t: x[j * n_rows + i] is feature j of
 * customer first + i (customer index of the store). NaN = not defined for that customer. Columns:
 * the PULSE_FEAT_COUNT fixed features, then one per spec in spec order. */
typedef struct pulse_feature_matrix_t {
    uint32_t first; /* customer index of row 0 */
    size_t n_rows;
    size_t n_cols;
    float *x;                   /* owned */
    pulse_feature_info_t *info; /* n_cols entries, owned */
    int32_t as_of;
} pulse_feature_matrix_t;

/* Computes the features of customers [first, first+count) (count 0 = through the last customer)
 * into out (allocated here; free with pulse_features_matrix_free). The store must be finished.
 * Computing in blocks bounds memory: 3.5 M customers x 19 features is 266 MB at once.
 * Returns 0, or -1 with a message for a bad spec (unknown op/field, window < 1). */
int pulse_features_compute(const pulse_txstore_t *st, const pulse_features_opts_t *opt, uint32_t first, uint32_t count,
                           pulse_feature_matrix_t *out, char *err, size_t errlen);
void pulse_features_matrix_free(pulse_feature_matrix_t *m);

/* Number of matrix columns for these options (PULSE_FEAT_COUNT + nspecs). */
size_t pulse_features_ncols(const pulse_features_opts_t *opt);
/* The same computation into the caller's buffer x of count * pulse_features_ncols(opt) floats
 * (count must be given, > 0): a caller computing block after block reuses one buffer instead of
 * faulting in fresh pages for each. *as_of_out (may be NULL) receives the as-of day used. */
int pulse_features_compute_into(const pulse_txstore_t *st, const pulse_features_opts_t *opt, uint32_t first, uint32_t count,
                                float *x, int32_t *as_of_out, char *err, size_t errlen);

/* The default as-of day of a store (see opts.as_of). */
int32_t pulse_features_default_as_of(const pulse_txstore_t *st);

/* Static dictionary entry of a fixed feature. */
const pulse_feature_info_t *pulse_features_info(pulse_feat_t f);

/* Quintile scores 1-5 of n values: ordering ascending (or descending when higher_is_better is 0,
 * so for recency the lowest value scores 5), a value's score is 1 + floor(5 * r / n) where r is
 * the 0-based rank of the FIRST member of its group of equal values: equal values always share a
 * score, and the result depends on nothing but the values. NaN ranks as the worst value (score 1
 * side). Integer values in a range under 1 M (recency, frequency) are ranked by counting; others
 * by a radix selection of the four quintile boundaries on the float bits (no n-sized buffer). Both linear. */
void pulse_features_quintiles(const float *v, size_t n, int higher_is_better, uint8_t *score);

/* R, F and M scores of every row of m (which must hold the fixed columns): R from recency (lower is
 * better), F from frequency, M from monetary. Each output has m->n_rows entries. Scoring a block
 * ranks within the block only: score all customers in one matrix (or call pulse_features_quintiles
 * on whole columns). */
void pulse_features_rfm_scores(const pulse_feature_matrix_t *m, uint8_t *r, uint8_t *f, uint8_t *mon);
/* The same from three columns of n values (R and F on a second thread while M sorts). */
void pulse_features_rfm_scores_of(const float *recency, const float *frequency, const float *monetary, size_t n, uint8_t *r,
                                  uint8_t *f, uint8_t *mon);

#endif
