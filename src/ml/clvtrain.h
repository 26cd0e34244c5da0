/* Lifetime-value training with a time split: the last `horizon` days of a store's data are the
 * holdout, the days before it the calibration period. BG/NBD + Gamma-Gamma are fitted on the
 * calibration summaries, gradient-boosted trees (squared error) learn holdout spend from the churn
 * path's features as of the cutoff; both predict the holdout spend of the same held-out customers
 * (MAE, RMSE, a table by calibration frequency), the lower MAE wins and is refitted on all the data
 * into a registry container. Refuses too little history or too few customers, saying how much. */
#ifndef PULSE_ML_CLVTRAIN_H
#define PULSE_ML_CLVTRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "analytics/txstore.h"
#include "core/buf.h"
#include "ml/clvmodel.h"

typedef struct pulse_ml_clv_options_t {
    pulse_ml_clv_terms_t terms; /* horizon (also the holdout length) and the scoring discount */
    double test_fraction;       /* customers held out for the comparison */
    double valid_fraction;      /* of the rest, for the trees' early stopping */
    uint64_t seed;
    size_t min_customers; /* with a purchase before the cutoff */
    int threads;
} pulse_ml_clv_options_t;

/* 90 days, 1 % a month, test 0.25, validation 0.2, seed 42, 50 customers, 2 threads. */
void pulse_ml_clv_options_init(pulse_ml_clv_options_t *o);

/* Calibration repeat purchases 0, 1, ..., 6, and 7 or more. */
#define PULSE_ML_CLV_FREQ_GROUPS 8

/* One row of the calibration-vs-holdout table: means over the group's held-out customers. */
typedef struct pulse_ml_clv_freq_t {
    size_t n;
    double pred_purchases, actual_purchases; /* BG/NBD expected vs actual holdout purchase days */
    double pred_spend_bgnbd, pred_spend_gbdt, actual_spend;
} pulse_ml_clv_freq_t;

typedef struct pulse_ml_clv_candidate_t {
    int trained;
    double mae, rmse, mean_pred; /* holdout spend of the held-out customers */
    char error[200];             /* why it was not trained */
} pulse_ml_clv_candidate_t;

typedef struct pulse_ml_clv_result_t {
    pulse_ml_clv_terms_t terms;
    int32_t first_day, cutoff, end_day; /* holdout = [cutoff, end_day) */
    size_t n_customers;                 /* with a purchase before the cutoff */
    size_t n_repeat, n_buyers;          /* repeat customers in calibration; customers buying in the holdout */
    size_t n_train, n_valid, n_test;
    double mean_actual;       /* held-out customers' mean holdout spend */
    pulse_ml_clv_bgnbd_t cal; /* the calibration fit */
    int gbdt_trees;
    pulse_ml_clv_candidate_t bgnbd, gbdt;
    pulse_ml_clv_freq_t freq[PULSE_ML_CLV_FREQ_GROUPS];
    int chosen_gbdt;           /* 1: clv_gbdt, 0: bgnbd */
    pulse_ml_clv_bgnbd_t full; /* the all-data BG/NBD fit when it was chosen */
    size_t n_full;             /* customers the chosen model was refitted on */
    pulse_ml_model_t *model;   /* the refitted chosen model's container, meta = the report; owned */
    double seconds;
} pulse_ml_clv_result_t;

/* Trains on a finished store. 0 and out (pulse_ml_clv_result_free), or -1 with a message: a bad
 * horizon, no transactions, too little history or too few customers (with the figures), or neither
 * model could be fitted (both reasons). */
int pulse_ml_clv_train(const pulse_txstore_t *st, const pulse_ml_clv_options_t *o, pulse_ml_clv_result_t *out, char *err,
                       size_t errlen);
void pulse_ml_clv_result_free(pulse_ml_clv_result_t *r);

/* The chosen model's metrics as a JSON object: mae, rmse, mean_predicted, mean_actual, horizon_days. */
void pulse_ml_clv_metrics_json(const pulse_ml_clv_result_t *r, pulse_buf_t *out);
/* The report as a JSON object: the split, "chosen" and "selection", both candidates' metrics (and
 * the BG/NBD parameters), "frequency_table", and "refit". */
void pulse_ml_clv_report_json(const pulse_ml_clv_result_t *r, pulse_buf_t *out);

/* Fills the calibration-vs-holdout table from n held-out customers: calibration repeat purchases x,
 * BG/NBD predicted and actual holdout purchases, both models' predicted spend (gbdt may be NULL)
 * and the actual spend. */
void pulse_ml_clv_freq_table(const double *x, const double *pred_purchases, const double *actual_purchases,
                             const double *spend_bgnbd, const double *spend_gbdt, const double *actual_spend, size_t n,
                             pulse_ml_clv_freq_t table[PULSE_ML_CLV_FREQ_GROUPS]);

#endif
