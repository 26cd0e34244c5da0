/* The training table of the churn pipeline: a CSV with a header (pulse bench train, uploads) or
 * columns handed over in memory (the server's features and customer attributes) turned into a
 * pulse_ml_data_t. A named label (Yes/No, 1/0, true/false, churned/retained) becomes 0/1; a row
 * without a readable label is refused with its line. Numbers stay floats (blank = NaN), other text
 * becomes category codes with the dictionary kept; an id column is dropped. */
#ifndef PULSE_ML_TABLE_H
#define PULSE_ML_TABLE_H

#include <stddef.h>

#include "ml/dataset.h"

typedef struct pulse_ml_table_t {
    pulse_ml_data_t data; /* owned: x, y, names, categorical, n_categories; w is NULL */
    char ***levels;       /* per column: the n_categories[j] category names, sorted bytewise
                             (code c is levels[j][c]); NULL for numeric columns */
    char *label;          /* name of the label column */
    char *id;             /* name of the dropped id column, NULL when there was none */
    size_t n_positive;    /* rows labelled 1 */
} pulse_ml_table_t;

typedef struct pulse_ml_table_options_t {
    const char *label; /* required: the label column's name */
    const char *id;    /* the id column's name; NULL: a text column whose values are all distinct
                          (and present, over at least 10 rows) is taken as the id */
} pulse_ml_table_options_t;

/* Reads the CSV at path (dialect sniffed; the first record is the header). Returns 0 and a table
 * the caller frees with pulse_ml_table_free, or -1 with a message naming the line: no such file,
 * no label column, a row with a missing or unknown label, a row with the wrong field count. */
int pulse_ml_table_load_csv(const char *path, const pulse_ml_table_options_t *opt, pulse_ml_table_t **out, char *err,
                            size_t errlen);
/* The same from a CSV already in memory (not retained). */
int pulse_ml_table_parse_csv(const char *buf, size_t len, const pulse_ml_table_options_t *opt, pulse_ml_table_t **out, char *err,
                             size_t errlen);

/* One column handed over in memory: exactly one of num (NaN = missing) and text (NULL = missing). */
typedef struct pulse_ml_column_t {
    const char *name;
    const double *num;
    const char *const *text;
} pulse_ml_column_t;

/* Builds a table from n_cols columns of n_rows values (copied, not retained). The label column is
 * the one named opt->label: numeric 0/1, or text read as in a CSV. Errors name the row (1-based). */
int pulse_ml_table_from_columns(const pulse_ml_column_t *cols, size_t n_cols, size_t n_rows, const pulse_ml_table_options_t *opt,
                                pulse_ml_table_t **out, char *err, size_t errlen);

/* Reads one label value: 0 or 1, or -1 when it is missing or not a label word. */
int pulse_ml_label_parse(const char *s, size_t n);

/* Index of the column called name, or -1. */
int pulse_ml_table_find(const pulse_ml_table_t *t, const char *name);

void pulse_ml_table_free(pulse_ml_table_t *t);

#endif
