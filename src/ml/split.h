/* Stratified train/validation/test splits of a labelled table for a seed: each class is shuffled
 * with the project's own PRNG (src/gen/rng.h, never rand()) and cut in the same proportions, so the
 * churn rate is the same in every part and the same seed gives the same split on every machine. */
#ifndef PULSE_ML_SPLIT_H
#define PULSE_ML_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "ml/dataset.h"

typedef struct pulse_ml_split_t {
    size_t *train, *valid, *test; /* row indices, ascending; owned, freed by pulse_ml_split_free */
    size_t n_train, n_valid, n_test;
} pulse_ml_split_t;

/* Per class of y (0/1) with n_c rows: round(n_c * test_fraction) go to test, then
 * round((n_c - n_test_c) * valid_fraction) of the rest to validation, the others to train.
 * Fractions in [0, 1). Returns 0, or -1 with a message for a label that is not 0/1 or a bad fraction. */
int pulse_ml_split_stratified(const float *y, size_t n, double test_fraction, double valid_fraction, uint64_t seed,
                              pulse_ml_split_t *out, char *err, size_t errlen);
void pulse_ml_split_free(pulse_ml_split_t *s);

/* Copies rows[0..n) of d into out (x, y and w copied and owned by out; names, categorical and
 * n_categories shared with d, which must outlive out). Free with pulse_ml_subset_free. */
void pulse_ml_subset(const pulse_ml_data_t *d, const size_t *rows, size_t n, pulse_ml_data_t *out);
void pulse_ml_subset_free(pulse_ml_data_t *sub);

#endif
