/* An active churn model ready to score: the registry container (src/ml/model.h) opened together
 * with the model inside it (gradient-boosted trees, logistic regression, or a blend of both),
 * checked to agree on the features, with one set of calls whatever the algorithm; and the ranking
 * of per-feature pushes that reason codes are made from. Used by the scoring job and by
 * /api/v1/predict.
 *
 * A blend scores sigmoid(w * logit(p_logreg) + (1 - w) * margin_trees): averaging in log-odds
 * keeps both models' per-feature pushes additive, so a blend's reasons are the same weighted sum
 * of its parts' pushes. */
#ifndef PULSE_ML_CHURN_H
#define PULSE_ML_CHURN_H

#include <stddef.h>

#include "ml/dataset.h"
#include "ml/gbdt.h"
#include "ml/logreg.h"
#include "ml/model.h"

typedef struct pulse_ml_churn_t {
    pulse_ml_model_t *model; /* the container: features, calibration */
    pulse_gbdt_t *gbdt;      /* one or (a blend) both of gbdt and logreg are set once opened */
    pulse_ml_logreg_t *logreg;
    double logreg_weight; /* a blend's weight on the logistic regression (0..1); 0 for single models */
} pulse_ml_churn_t;

/* A blend's payload: the weight on the logistic regression and both models' own bytes, into
 * *out (malloc'd; the caller frees it). */
void pulse_ml_churn_blend_pack(double logreg_weight, const unsigned char *logreg, size_t logreg_len, const unsigned char *gbdt,
                               size_t gbdt_len, unsigned char **out, size_t *out_len);

/* Opens a stored churn model (container bytes). 0, or -1 with why in err (c left closed): a
 * damaged container, a non-churn kind, an unreadable payload, a feature count that disagrees. */
int pulse_ml_churn_open(pulse_ml_churn_t *c, const unsigned char *bytes, size_t len, char *err, size_t errlen);
void pulse_ml_churn_close(pulse_ml_churn_t *c);

/* Uncalibrated churn probabilities of every row of d (threads: for the trees). */
void pulse_ml_churn_predict(const pulse_ml_churn_t *c, const pulse_ml_data_t *d, double *out, int threads);
/* Uncalibrated churn probability of one row (model->n_features values). */
double pulse_ml_churn_predict_row(const pulse_ml_churn_t *c, const float *row);
/* Per-feature pushes on the row's log-odds: contrib[0..n_features-1], then the bias. */
void pulse_ml_churn_contributions(const pulse_ml_churn_t *c, const float *row, double *contrib);

/* The same pushes for many rows at a time (the scoring job): an explainer made once per model,
 * then blocks of rows of d (column-major, the model's features) into contrib[r * (n_features + 1)
 * + j]. Trees are explained from their leaves (pulse_gbdt_paths_new) when they allow it, else row
 * by row. */
typedef struct pulse_ml_explainer_t pulse_ml_explainer_t;
pulse_ml_explainer_t *pulse_ml_explainer_new(const pulse_ml_churn_t *c);
void pulse_ml_explainer_free(pulse_ml_explainer_t *e);
void pulse_ml_explain_block(const pulse_ml_explainer_t *e, const pulse_ml_data_t *d, size_t row0, size_t nr, double *contrib);

/* Reasons shown per direction (raising and lowering the risk). */
#define PULSE_ML_REASONS_PER_SIDE 3

/* A feature's push on the log-odds. */
typedef struct pulse_ml_push_t {
    double v;
    size_t j;
} pulse_ml_push_t;

/* The reasons of one prediction: from the n pushes in contrib, the strongest (by magnitude; ties
 * by feature index, so the choice is stable) up to PULSE_ML_REASONS_PER_SIDE raising and as many
 * lowering the risk, negligible ones left out, strongest first, into out (room for n). Returns how
 * many. */
size_t pulse_ml_reasons(const double *contrib, size_t n, pulse_ml_push_t *out);

#endif
