/* The training table every model in src/ml/ reads: a dense column-major float matrix (NaN is a
 * missing value), an optional label or target and optional row weights, with the feature names
 * and which columns hold category codes. Built by the caller (features, customer attributes, a
 * CSV in the benches); models never own it. */
#ifndef PULSE_ML_DATASET_H
#define PULSE_ML_DATASET_H

#include <stddef.h>

typedef struct pulse_ml_data_t {
    size_t n_rows;
    size_t n_cols;
    float *x;                   /* x[j * n_rows + i]: column j, row i; NaN = missing */
    float *y;                   /* label (0/1) or regression target per row; NULL when scoring */
    float *w;                   /* row weights; NULL = every row weighs 1 */
    char **names;               /* n_cols feature names (NUL-terminated) */
    unsigned char *categorical; /* n_cols flags, NULL = none: the column holds codes 0..k-1 as floats */
    int *n_categories;          /* per column: k when categorical (codes >= k are treated as missing) */
} pulse_ml_data_t;

/* Value of column j, row i. */
static inline float pulse_ml_at(const pulse_ml_data_t *d, size_t i, size_t j)
{
    return d->x[j * d->n_rows + i];
}

#endif
