/* Evaluation of a churn model on held-out rows: ROC AUC (ties counted as half, exactly), PR AUC
 * (average precision), log-loss, Brier, the confusion matrix and accuracy/precision/recall/F1 at a
 * threshold, the threshold that maximises F1, lift and cumulative gain by decile, a 10-bin
 * calibration curve; MAE/RMSE for regression targets. Scores are probabilities in [0, 1]. */
#ifndef PULSE_ML_METRICS_H
#define PULSE_ML_METRICS_H

#include <stddef.h>

typedef struct pulse_ml_confusion_t {
    size_t tp, fp, tn, fn;
} pulse_ml_confusion_t;

typedef struct pulse_ml_decile_t {
    size_t n, positives;
    double rate;     /* positives / n */
    double lift;     /* rate / overall positive rate */
    double cum_gain; /* share of all positives in this decile and the ones above it */
} pulse_ml_decile_t;

typedef struct pulse_ml_calbin_t {
    size_t n;
    double mean_predicted, observed; /* 0 when n is 0 */
} pulse_ml_calbin_t;

typedef struct pulse_ml_metrics_t {
    size_t n, positives;
    double roc_auc, pr_auc, log_loss, brier;
    double threshold; /* the chosen threshold: the one maximising F1 */
    double accuracy, precision, recall, f1;
    pulse_ml_confusion_t confusion;
    pulse_ml_decile_t deciles[10];     /* [0] = the 10% highest scores */
    pulse_ml_calbin_t calibration[10]; /* bin b holds scores in [b/10, (b+1)/10), 1.0 in bin 9 */
} pulse_ml_metrics_t;

/* Area under the ROC curve: the probability that a random positive outscores a random negative,
 * a tie counting one half. NaN when a class is absent. */
double pulse_ml_roc_auc(const double *p, const float *y, size_t n);
/* Average precision: sum over distinct score thresholds (tied scores enter together) of
 * (recall gain) x precision. NaN without positives. */
double pulse_ml_pr_auc(const double *p, const float *y, size_t n);
/* Mean negative log-likelihood, probabilities clipped to [1e-15, 1 - 1e-15]. */
double pulse_ml_log_loss(const double *p, const float *y, size_t n);
double pulse_ml_brier(const double *p, const float *y, size_t n);
/* Predicted positive when p >= threshold. */
void pulse_ml_confusion(const double *p, const float *y, size_t n, double threshold, pulse_ml_confusion_t *cm);
/* Accuracy, precision, recall and F1 of a confusion matrix (0 where undefined). */
void pulse_ml_rates(const pulse_ml_confusion_t *cm, double *accuracy, double *precision, double *recall, double *f1);
/* The score threshold (one of the scores) with the highest F1; *f1 gets it when not NULL. */
double pulse_ml_best_f1_threshold(const double *p, const float *y, size_t n, double *f1);
/* Deciles by descending score; ties broken by row order, so a decile boundary may split a tie. */
void pulse_ml_deciles(const double *p, const float *y, size_t n, pulse_ml_decile_t out[10]);
void pulse_ml_calibration_curve(const double *p, const float *y, size_t n, pulse_ml_calbin_t out[10]);
/* Everything above; the rates at the F1-maximising threshold. */
void pulse_ml_metrics_compute(const double *p, const float *y, size_t n, pulse_ml_metrics_t *m);

void pulse_ml_regression_metrics(const double *pred, const float *y, size_t n, double *mae, double *rmse);

#endif
