/* The churn-model training pipeline: checks the table is fit to train on, splits it stratified
 * (test part, then a validation part taken from the rest), trains logistic regression and
 * gradient-boosted trees on the training part, blends them (ml/churn.h), keeps the one of the
 * three with the best validation ROC AUC,
 * calibrates each on the validation part, measures both on the test part (the data scientist sees
 * both), ranks features (|beta| for logistic regression, split gain for trees) and packs the
 * chosen model into a registry container. Also renders all of it as JSON for the API. */
#ifndef PULSE_ML_TRAIN_H
#define PULSE_ML_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "ml/calibrate.h"
#include "ml/metrics.h"
#include "ml/model.h"
#include "ml/table.h"

typedef struct pulse_ml_train_options_t {
    uint64_t seed;
    double test_fraction;  /* share of rows held out for the test metrics */
    double valid_fraction; /* share of the remaining rows for early stopping, selection, calibration */
    size_t min_rows;       /* refuse smaller tables */
    size_t min_per_class;  /* refuse tables with fewer rows of either class */
    int use_gbdt;          /* also train gradient-boosted trees (when this build has them) */
    double logreg_lambda;  /* L2 penalty of the logistic regression */
    int gbdt_threads;
    /* Asked before each candidate is trained (NULL: never) with its name; non-zero stops the
     * training there (a job that was cancelled, or whose server is stopping). */
    int (*interrupt)(void *ud, const char *candidate);
    void *interrupt_ud;
} pulse_ml_train_options_t;

/* seed 42, test 0.2, validation 0.2 of the rest, at least 50 rows and 10 of each class, trees
 * on, lambda 1, 2 threads. */
void pulse_ml_train_options_init(pulse_ml_train_options_t *o);

/* 1 when this build can train gradient-boosted trees. */
int pulse_ml_train_have_gbdt(void);

typedef struct pulse_ml_candidate_t {
    const char *name; /* "logreg", "gbdt", "blend" */
    pulse_ml_model_kind_t kind;
    int trained;
    double train_seconds;     /* wall clock */
    double train_cpu_seconds; /* CPU of the whole process (all training threads) */
    double valid_auc;
    int iterations;                     /* Newton steps, or trees kept */
    double blend_logreg_weight;         /* blend: the weight on the logistic regression */
    pulse_ml_calibration_t calibration; /* fitted on the validation rows */
    double test_auc_raw;                /* test ROC AUC before calibration */
    pulse_ml_metrics_t test;            /* on the test rows, calibrated probabilities */
    double *importance;                 /* per feature, as a share of the total (sums to 1) */
    unsigned char *payload;             /* the model's own bytes */
    size_t payload_len;
} pulse_ml_candidate_t;

typedef struct pulse_ml_train_result_t {
    uint64_t seed;
    size_t n_rows, n_positive, n_train, n_valid, n_test, n_features;
    pulse_ml_candidate_t cand[3];
    size_t n_cand;
    int chosen;              /* index in cand */
    pulse_ml_model_t *model; /* the chosen model's container (meta: the JSON report); owned */
    double seconds;          /* whole pipeline */
} pulse_ml_train_result_t;

/* Trains on t. Returns 0 and fills out (free with pulse_ml_train_result_free), -1 with a message:
 * too few rows ("at least 50 labelled rows are needed, there are 12"), a missing or rare class, or
 * 1 when o->interrupt stopped it (nothing to free). */
int pulse_ml_train_churn(const pulse_ml_table_t *t, const pulse_ml_train_options_t *o, pulse_ml_train_result_t *out, char *err,
                         size_t errlen);
void pulse_ml_train_result_free(pulse_ml_train_result_t *r);

/* The report as a JSON object appended to out: rows and split sizes, "chosen", and per model
 * "metrics" with keys roc_auc, pr_auc, log_loss, brier, accuracy, precision, recall, f1, plus
 * threshold, confusion, deciles (lift and cumulative gain), calibration curve and importance. */
void pulse_ml_train_json(const pulse_ml_train_result_t *r, pulse_buf_t *out);

/* Renders one metrics object (the keys above) to out. */
void pulse_ml_metrics_json(const pulse_ml_metrics_t *m, pulse_buf_t *out);

#endif
