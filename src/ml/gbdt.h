/* Histogram gradient-boosted trees over a pulse_ml_data_t: binary log-loss (churn) or squared error
 * (next-horizon spend). Quantile bins per column (bin 0 = missing), leaf-wise best-first growth
 * capped by max_depth and max_leaves, learned missing direction, one-hot categorical splits, early
 * stopping on a validation set; a binned SIMD batch scorer, Saabas contributions and a validated
 * little-endian model format ("PGBT"). Refuses: empty tables, labels outside {0,1} for log-loss. */
#ifndef PULSE_ML_GBDT_H
#define PULSE_ML_GBDT_H

#include <stddef.h>

#include "ml/dataset.h"

typedef enum { PULSE_GBDT_LOGLOSS, PULSE_GBDT_SQUARED } pulse_gbdt_objective_t;

typedef struct {
    pulse_gbdt_objective_t objective;
    int n_trees;               /* upper bound on boosting rounds */
    int max_depth;             /* root = depth 0; a depth-d tree has at most 2^d leaves (1..16) */
    int max_leaves;            /* leaf-wise growth stops at this many leaves (2..65536) */
    int max_bins;              /* value bins per column, 2..255 (bin 0 is reserved for missing) */
    int early_stopping_rounds; /* with a validation set: stop after this many rounds without gain; <= 0: never */
    int threads;               /* training threads (>= 1); the model does not depend on it */
    double learning_rate;
    double min_child_weight; /* minimum hessian sum in a child */
    double lambda_l2;        /* L2 penalty on leaf values */
    double row_subsample;    /* fraction of rows drawn per tree, (0, 1] */
    double col_subsample;    /* fraction of columns drawn per tree, (0, 1] */
    double scale_pos_weight; /* log-loss: weight multiplier for label-1 rows (imbalance) */
    unsigned long long seed;
} pulse_gbdt_params_t;

/* Defaults for churn-sized data (thousands of rows, tens of columns): log-loss, 500 trees with
 * early stopping after 30 rounds, depth 4, 15 leaves, 255 bins, learning rate 0.1,
 * min_child_weight 1, lambda 1, 0.8 row and column subsampling, scale_pos_weight 1, 2 threads,
 * seed 42. */
void pulse_gbdt_params_init(pulse_gbdt_params_t *p);

typedef struct pulse_gbdt_t pulse_gbdt_t;

typedef struct {
    int trees_built;        /* rounds run before stopping */
    int best_iteration;     /* trees kept in the model (1-based count of the best round) */
    double best_valid_loss; /* mean log-loss or mean squared error on valid (weights w, no scale_pos_weight); NaN without valid */
    double train_loss;      /* the same on train for the kept trees */
    double train_seconds;
} pulse_gbdt_report_t;

/* Trains on train (y required; w optional). valid (same columns) enables early stopping and is
 * binned with train's bins. On success *out is a new model owned by the caller (pulse_gbdt_free);
 * rep may be NULL. Returns -1 with a message in err on bad data or parameters. */
int pulse_gbdt_train(const pulse_ml_data_t *train, const pulse_ml_data_t *valid, const pulse_gbdt_params_t *p, pulse_gbdt_t **out,
                     pulse_gbdt_report_t *rep, char *err, size_t errlen);

/* Batch scoring of d (n_cols must equal pulse_gbdt_n_features) into out[n_rows]: raw margin, or
 * probability (log-loss) when probability is set. One thread. */
void pulse_gbdt_predict(const pulse_gbdt_t *m, const pulse_ml_data_t *d, double *out, int probability);
/* The same on `threads` threads (rows split in contiguous ranges; results identical). */
void pulse_gbdt_predict_threads(const pulse_gbdt_t *m, const pulse_ml_data_t *d, double *out, int probability, int threads);
/* One row of n_cols raw values (NaN = missing). Bit-identical to the batch scorer. */
double pulse_gbdt_predict_row(const pulse_gbdt_t *m, const float *row, int probability);
/* Saabas attribution: contrib[j] is the change of the node expectation along the path credited to
 * feature j; contrib[n_cols] is the bias. Their sum is the raw margin. contrib has n_cols + 1. */
void pulse_gbdt_contributions(const pulse_gbdt_t *m, const float *row, double *contrib);
/* The same attribution for many rows at once, from the batch scorer's leaves: each leaf of each
 * compiled tree has its path's pushes per feature summed beforehand, so a row costs one lookup and
 * one vector add per tree instead of a walk down each tree (50x faster on 3.5 M rows). NULL when
 * the model is too deep for the batch scorer or the table would pass 256 MB: use
 * pulse_gbdt_contributions then. */
typedef struct pulse_gbdt_paths_t pulse_gbdt_paths_t;
pulse_gbdt_paths_t *pulse_gbdt_paths_new(const pulse_gbdt_t *m);
void pulse_gbdt_paths_free(pulse_gbdt_paths_t *p);
/* Rows row0..row0+nr of d into contrib[r * (n_cols + 1) + j], as pulse_gbdt_contributions would
 * give them (up to the rounding of adding a tree's pushes to a feature in another order). */
void pulse_gbdt_paths_contributions(const pulse_gbdt_paths_t *p, const pulse_ml_data_t *d, size_t row0, size_t nr, double *contrib);
/* Total split gain per feature over all trees into gain[n_cols]. */
void pulse_gbdt_importance(const pulse_gbdt_t *m, double *gain);
size_t pulse_gbdt_n_features(const pulse_gbdt_t *m);
size_t pulse_gbdt_n_trees(const pulse_gbdt_t *m);
pulse_gbdt_objective_t pulse_gbdt_objective(const pulse_gbdt_t *m);

/* Serializes m; *bytes is malloc'd and owned by the caller (free). Returns 0. */
int pulse_gbdt_save(const pulse_gbdt_t *m, unsigned char **bytes, size_t *len);
/* Parses and validates a pulse_gbdt_save buffer (never reads past len). Returns a new model owned
 * by the caller, or NULL with a message in err. */
pulse_gbdt_t *pulse_gbdt_load(const unsigned char *bytes, size_t len, char *err, size_t errlen);
void pulse_gbdt_free(pulse_gbdt_t *m);

/* Tests and benches (process-wide): 0 lets the batch scorer pick the best the CPU has (AVX-512
 * leaf lookup, AVX2), 1 forces the portable scalar scorer, 2 forces AVX2 without AVX-512. */
void pulse_gbdt_force_scalar(int on);

#endif
