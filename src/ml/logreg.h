/* L2-regularised logistic regression, the interpretable churn model: category columns one-hot
 * encoded, a missing number imputed with the training mean plus a missing-indicator column (only
 * where the training data had a gap), every input standardised, fitted by Newton's method (IRLS,
 * Cholesky on the p x p Hessian) to convergence. Gives probabilities, per-feature contributions in
 * the original feature space (reason codes) and a byte format with validated lengths. Refuses a
 * table without labels or with a single class. */
#ifndef PULSE_ML_LOGREG_H
#define PULSE_ML_LOGREG_H

#include <stddef.h>

#include "ml/dataset.h"

typedef struct pulse_ml_logreg_params_t {
    double lambda;  /* L2 penalty on the standardised coefficients (not the intercept) */
    int max_iter;   /* Newton steps */
    double tol;     /* stop when the largest step on a coefficient is below this */
    int max_levels; /* one-hot columns per categorical feature: its most frequent categories (the
                       rest read as "no category"); <= 0: all */
} pulse_ml_logreg_params_t;

/* lambda 1, 100 steps, tol 1e-9, 64 levels. */
void pulse_ml_logreg_params_init(pulse_ml_logreg_params_t *p);

typedef struct pulse_ml_logreg_t pulse_ml_logreg_t;

/* Fits on d (y required, 0/1; w used when present). Returns 0 and a model the caller frees with
 * pulse_ml_logreg_free, or -1 with a message. */
int pulse_ml_logreg_train(const pulse_ml_data_t *d, const pulse_ml_logreg_params_t *p, pulse_ml_logreg_t **out, char *err,
                          size_t errlen);

/* Probability of class 1 for one row of n_cols raw values (NaN missing, category codes). */
double pulse_ml_logreg_predict_row(const pulse_ml_logreg_t *m, const float *row);
/* Probabilities for every row of d into out[n_rows]. */
void pulse_ml_logreg_predict(const pulse_ml_logreg_t *m, const pulse_ml_data_t *d, double *out);
/* Log-odds contributions of each original feature for one row, contrib[n_cols]: the sum of
 * beta_s * z_s over the feature's encoded columns (its one-hot columns, its missing indicator).
 * Returns the intercept: intercept + sum(contrib) is the row's log-odds. Zero means "average". */
double pulse_ml_logreg_contributions(const pulse_ml_logreg_t *m, const float *row, double *contrib);
/* Importance per original feature, imp[n_cols]: sum of |beta| over its standardised columns. */
void pulse_ml_logreg_importance(const pulse_ml_logreg_t *m, double *imp);

size_t pulse_ml_logreg_n_features(const pulse_ml_logreg_t *m);
/* Encoded columns, the intercept being column 0. */
size_t pulse_ml_logreg_n_coef(const pulse_ml_logreg_t *m);
/* Column k: its original feature (-1 for the intercept), its level (category code, -1 for the
 * value of a numeric feature, -2 for its missing indicator), the coefficient on the standardised
 * input, and the mean and standard deviation used to standardise it. */
void pulse_ml_logreg_coef(const pulse_ml_logreg_t *m, size_t k, int *feature, int *level, double *beta, double *mean, double *sd);
int pulse_ml_logreg_iterations(const pulse_ml_logreg_t *m);

/* Serialised model in *bytes (malloc'd, the caller frees it). Returns 0. */
int pulse_ml_logreg_save(const pulse_ml_logreg_t *m, unsigned char **bytes, size_t *len);
/* Checks magic, version, every length and value; NULL with a message when anything is off. */
pulse_ml_logreg_t *pulse_ml_logreg_load(const unsigned char *bytes, size_t len, char *err, size_t errlen);
void pulse_ml_logreg_free(pulse_ml_logreg_t *m);

/* The penalised negative log-likelihood at beta for a design matrix Z (n x p, row-major, column 0
 * the intercept's 1s), labels y, weights w (NULL = 1): returns the objective and, when not NULL,
 * fills grad[p] and hess[p*p]. Exposed for the tests' finite-difference checks. */
double pulse_ml_logreg_objective(const double *Z, const double *y, const double *w, size_t n, size_t p, const double *beta,
                                 double lambda, double *grad, double *hess);

/* Cholesky solve of the symmetric positive definite A (p x p, overwritten) x = b (overwritten
 * with x). Returns 0, or -1 when A is not positive definite. */
int pulse_ml_cholesky_solve(double *A, double *b, size_t p);

#endif
