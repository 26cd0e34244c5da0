/* The feature rows of the churn model jobs (train_job.c, score_job.c): one row per customer built
 * from their attributes (numbers stay numbers, text and booleans become categories) and, when the
 * segment job has run, the stored per-customer features (customer_analytics), read as pulse_app in
 * the tenant's transaction; and the jobs' params. */
#ifndef PULSE_JOBS_ML_ROWS_H
#define PULSE_JOBS_ML_ROWS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "ml/model.h"
#include "ml/table.h"

/* Customers and their raw values, column by column (as pulse_ml_column_t wants them). */
typedef struct pulse_mlrows_t {
    size_t n_rows, n_cols;
    int64_t *ids;        /* customer ids, ascending */
    double *label;       /* 0/1 per row (NaN: unlabelled) */
    char **names;        /* n_cols column names: attribute names, "analytics.<feature>" */
    double **num;        /* per column: n_rows values, NaN = missing or not a number */
    char ***text;        /* per column: NULL while every value is a number (NaN: missing); else n_rows
                            strings or NULL (missing), numbers included */
    unsigned char *kind; /* per column: 0 all present values are numbers, 1 some are text */
    double *clv;         /* per row: the stored CLV (customer_analytics), NaN none */
    int64_t epoch;       /* pulse_derived_epoch read before the ids (-1: unknown) */
} pulse_mlrows_t;

/* Reads the tenant's customers: labelled_only keeps those with a churned label; ids (n_ids > 0)
 * restricts them to that list. Columns are in the order of the last customers file's header
 * (then any other attribute, then the stored features), so that training matches the same file
 * trained by pulse bench train. For scoring, only (not NULL) is the model: the labels are not
 * read (NaN), nor the attributes when it uses none, nor the stored features when it uses none.
 * Returns 0 and fills out (pulse_mlrows_free), or -1 with err. */
int pulse_mlrows_load(PGconn *c, const char *tenant, int labelled_only, const int64_t *ids, size_t n_ids,
                      const pulse_ml_model_t *only, pulse_mlrows_t *out, char *err, size_t errlen);
void pulse_mlrows_free(pulse_mlrows_t *r);

/* The training table: every column (text columns as categories, the label as "churned").
 * The caller frees it with pulse_ml_table_free. -1 with err. */
int pulse_mlrows_table(const pulse_mlrows_t *r, pulse_ml_table_t **out, char *err, size_t errlen);

/* The scoring matrix for a model's features (column-major, n_rows x m->n_features, NaN missing):
 * numeric features parsed, categorical ones coded with the model's levels (an unseen level is
 * missing), a feature the rows do not have is all missing. Returns a malloc'd array (free). */
float *pulse_mlrows_matrix(const pulse_mlrows_t *r, const pulse_ml_model_t *m);

/* One value of the job's params as text (jsonb ->> path, e.g. "{activate}"), or NULL; malloc'd. */
char *pulse_mljob_param(PGconn *ctl, const char *params_json, const char *path);

#endif
